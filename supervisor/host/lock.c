/* Run dir and guest locks: see lock.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "argv.h"
#include "lock.h"
#include "sysutil.h"

/* The pid written in a lock file, or 0. */
static int read_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return atoi(buf);
}

/* Informative only. Written over the old pid, and cut only where that was
 * longer: a truncation to 0 costs a journal commit on a disk file system
 * (0.3 ms here), at every start. */
static void write_pid(int fd, int pid)
{
	char buf[32];
	struct stat st;
	int n = snprintf(buf, sizeof(buf), "%d\n", pid);
	if (pwrite(fd, buf, (size_t)n, 0) != n || fstat(fd, &st) < 0 || st.st_size <= n)
		return;
	if (ftruncate(fd, n) < 0)
		return;   /* a longer old pid's tail stays: harmless */
}

/* Open path and flock it; check that path still names the file locked.
 * Returns the fd, -EWOULDBLOCK (*holder: the pid inside) or -errno. */
static int take(const char *path, int *holder)
{
	for (int tries = 0; tries < 10; tries++) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int e = errno;
			*holder = read_pid(fd);
			close(fd);
			return e == EWOULDBLOCK ? -EWOULDBLOCK : -e;
		}
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			return fd;
		close(fd);   /* released and unlinked meanwhile: try the new file */
	}
	return -EAGAIN;
}

int sv_rundir_lock(const char *run_dir, struct sv_error *err)
{
	char path[PATH_MAX];
	int holder = 0;
	snprintf(path, sizeof(path), "%s/qsupd.lock", run_dir);
	int fd = take(path, &holder);
	/* A qsupd killed while it was spawning leaves, for a few ms, a forked
	 * child that shares the lock until it execs: a lock whose holder has
	 * died is waited for (at startup, before the loop runs), up to 3 s. */
	for (int i = 0; fd == -EWOULDBLOCK && holder > 0 && !sv_pid_alive(holder) && i < 150; i++) {
		nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
		fd = take(path, &holder);
	}
	if (fd == -EWOULDBLOCK)
		return sv_error_set(err, -EBUSY, "another qsupd (pid %d) owns %s", holder, run_dir);
	if (fd < 0)
		return sv_error_set(err, fd, "%s: %s", path, strerror(-fd));
	write_pid(fd, (int)getpid());
	return fd;
}

void sv_lock_dir_default(char *buf, size_t size, uid_t me, const char *run_dir)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (me == 0)
		snprintf(buf, size, "/run/lock/qsup");
	else if (xdg && xdg[0] == '/')
		snprintf(buf, size, "%s/qsup/locks", xdg);
	else
		snprintf(buf, size, "%s/locks", run_dir);
}

int sv_lock_dir_prepare(const char *dir, struct sv_error *err)
{
	struct stat st;
	int r = sv_mkdir_p(dir, 0755);
	if (r < 0)
		return sv_error_set(err, r, "lock dir %s: %s", dir, strerror(-r));
	if (lstat(dir, &st) < 0)
		return sv_error_set(err, -errno, "lock dir %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
		return sv_error_set(err, -EPERM, "lock dir %s: not a directory of uid %u that "
		                    "only it may write; remove it", dir, (unsigned)geteuid());
	return 0;
}

int sv_guest_lock_path(const char *lock_dir, const char *profile_path, const char *name,
                       char *out, size_t size, struct sv_error *err)
{
	char real[PATH_MAX];
	struct stat st;
	/* The directory the file really is in: where the profile is no
	 * symlink, its dirname (stat follows a symlinked directory to the
	 * same inode), without realpath's readlink of every component. */
	if (lstat(profile_path, &st) == 0 && !S_ISLNK(st.st_mode) &&
	    snprintf(real, sizeof(real), "%s", profile_path) < (int)sizeof(real)) {
		if (!strchr(real, '/'))
			snprintf(real, sizeof(real), "./%s", profile_path);
	} else if (!realpath(profile_path, real)) {
		return sv_error_set(err, -errno, "%s: %s", profile_path, strerror(errno));
	}
	if (stat(dirname(real), &st) < 0)
		return sv_error_set(err, -errno, "%s: %s", real, strerror(errno));
	int n = snprintf(out, size, "%s/%llx-%llx-%s.lock", lock_dir,
	                 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, name);
	if (n < 0 || (size_t)n >= size)
		return sv_error_set(err, -ENAMETOOLONG, "lock dir %s: path too long", lock_dir);
	return 0;
}

int sv_guest_lock_take(const char *path, const char *name, struct sv_error *err)
{
	int holder = 0;
	int fd = take(path, &holder);
	if (fd == -EWOULDBLOCK && holder > 0 && !sv_proc_starttime(holder))
		return sv_error_set(err, -EAGAIN, "the last QEMU of guest %s (pid %d) is still "
		                    "exiting (%s); try again in a moment", name, holder, path);
	if (fd == -EWOULDBLOCK)
		return sv_error_set(err, -EBUSY, "another process (pid %d) holds the lock of "
		                    "guest %s (%s): a QEMU for it runs outside this qsupd",
		                    holder, name, path);
	if (fd < 0)
		return sv_error_set(err, fd, "guest lock %s: %s", path, strerror(-fd));
	write_pid(fd, (int)getpid());
	return fd;
}

void sv_guest_lock_set_pid(int fd, int pid)
{
	if (fd >= 0)
		write_pid(fd, pid);
}

void sv_guest_lock_release(const char *path, int fd)
{
	if (fd < 0)
		return;
	unlink(path);
	close(fd);
}

int sv_guest_lock_held(const char *path, int *pid)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	*pid = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int r = 0;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? 1 : -errno;
		*pid = read_pid(fd);
	}
	close(fd);   /* drops our lock, if we got it */
	return r;
}

/* Is /proc/PID/fd/FD the file at st? */
static bool fd_is(int pid, int fd, const struct stat *st)
{
	char p[64];
	struct stat f;
	snprintf(p, sizeof(p), "/proc/%d/fd/%d", pid, fd);
	return stat(p, &f) == 0 && f.st_dev == st->st_dev && f.st_ino == st->st_ino;
}

bool sv_proc_holds_lock(int pid, const char *path)
{
	struct stat st;
	return pid > 0 && stat(path, &st) == 0 && fd_is(pid, SV_FD_LOCK, &st);
}

bool sv_proc_has_dir(int pid, const char *dir)
{
	struct stat st;
	return pid > 0 && stat(dir, &st) == 0 && fd_is(pid, SV_FD_QEMUDIR, &st);
}

int sv_lock_find_holder(const char *path, const char *name, const char *dir)
{
	struct stat st, ds;
	DIR *d;
	struct dirent *e;
	int found = 0;
	if (stat(path, &st) < 0 || stat(dir, &ds) < 0 || !(d = opendir("/proc")))
		return 0;
	while (!found && (e = readdir(d))) {
		int pid = atoi(e->d_name);
		if (pid > 0 && fd_is(pid, SV_FD_LOCK, &st) && fd_is(pid, SV_FD_QEMUDIR, &ds) &&
		    sv_proc_starttime(pid) && sv_proc_is_guest(pid, name))
			found = pid;
	}
	closedir(d);
	return found;
}
