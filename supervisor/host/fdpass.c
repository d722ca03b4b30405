/* The fds QEMU inherits: see fdpass.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fdpass.h"

int sv_fdpass_file(const char *path, int flags, struct sv_error *err)
{
	/* O_NONBLOCK: a FIFO put where a file should be never blocks us. */
	int fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
	struct stat st;
	if (fd < 0)
		return sv_error_set(err, -errno, "%s: %s", path, strerror(errno));
	/* e: fstat's errno, or 0 for a file of the wrong kind (errno left by
	 * an earlier call is not looked at). */
	int e = fstat(fd, &st) < 0 ? errno : S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ? -1 : 0;
	if (e >= 0) {
		close(fd);
		return e ? sv_error_set(err, -e, "%s: %s", path, strerror(e))
		         : sv_error_set(err, -EINVAL, "%s: not a regular file or block device",
		                        path);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

static int open_cached(const char *path, int flags)
{
	struct open_how how = { .flags = (uint64_t)flags, .resolve = RESOLVE_CACHED };
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* File systems whose open of a cached inode does no I/O: not overlayfs
 * (an open for writing copies the file up), not FUSE or NFS (a server). */
static bool local_fs(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0)
		return false;
	switch ((unsigned long)sf.f_type) {
	case EXT4_SUPER_MAGIC:   /* also ext2 and ext3 */
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case TMPFS_MAGIC:
		return true;
	default:
		return false;
	}
}

int sv_fdpass_file_cached(const char *path, int flags)
{
	struct stat st, seen;
	/* O_PATH first: what the path names is looked at without opening it
	 * (the open of a device may wait). */
	int p = open_cached(path, O_PATH | O_CLOEXEC);
	if (p < 0)
		return -EAGAIN;
	bool plain = fstat(p, &seen) == 0 && S_ISREG(seen.st_mode) && local_fs(p);
	close(p);
	if (!plain)
		return -EAGAIN;
	int fd = open_cached(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -EAGAIN;
	/* The very inode looked at (so on that file system), or the path was
	 * replaced meanwhile: then off the loop after all. */
	if (fstat(fd, &st) < 0 || st.st_dev != seen.st_dev || st.st_ino != seen.st_ino) {
		close(fd);
		return -EAGAIN;
	}
	fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);   /* the status flags asked for */
	return fd;
}

/* A sealed in-memory copy of the file open on fd (size bytes). */
static int memfd_copy(int fd, off_t size, const char *path, struct sv_error *err)
{
	int m = memfd_create("qsup-copy", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (m < 0)
		return sv_error_set(err, -errno, "%s: memfd_create: %s", path, strerror(errno));
	off_t off = 0;
	while (off < size) {
		ssize_t n = sendfile(m, fd, &off, (size_t)(size - off));
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(m);
			return sv_error_set(err, -e, "%s: copying: %s", path, strerror(e));
		}
	}
	if (fcntl(m, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int e = errno;
		close(m);
		return sv_error_set(err, -e, "%s: sealing its copy: %s", path, strerror(e));
	}
	return m;
}

/* A file QEMU reads through /proc/self/fd/N as identity id. */
static int read_fd(const char *path, const struct sv_identity *id, struct sv_error *err)
{
	int fd = sv_fdpass_file(path, O_RDONLY, err);
	struct stat st;
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return sv_error_set(err, -EINVAL, "%s: not a regular file", path);
	}
	if (sv_identity_can_read(id, st.st_uid, st.st_gid, st.st_mode))
		return fd;
	int m = memfd_copy(fd, st.st_size, path, err);
	close(fd);
	return m;
}

int sv_fdpass_listen(const char *path, struct sv_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return sv_error_set(err, -ENAMETOOLONG, "%s: too long for a unix socket", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sv_error_set(err, -errno, "socket: %s", strerror(errno));
	unlink(path);
	/* Only root (qsupd) may connect (the run dir is root's too); chmod,
	 * not umask, which is the whole process's. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 8) < 0) {
		int e = errno;
		close(fd);
		return sv_error_set(err, -e, "%s: %s", path, strerror(e));
	}
	return fd;
}

static int open_one(const struct sv_fd_need *n, const struct sv_identity *id,
                    char tap[SV_IFNAMSIZ], struct sv_error *err)
{
	switch (n->kind) {
	case SV_FD_FILE:
		return sv_fdpass_file(n->path, n->flags, err);
	case SV_FD_READ:
		return read_fd(n->path, id, err);
	case SV_FD_TAP:
		snprintf(tap, SV_IFNAMSIZ, "%s", n->ifname);
		return sv_tap_attach(n->ifname, err);
	case SV_FD_BRIDGE:
		return sv_tap_open(n->bridge, NULL, n->mac, tap, err);
	case SV_FD_VHOST: {
		int fd = open(n->path, O_RDWR | O_CLOEXEC);
		return fd >= 0 ? fd : sv_error_set(err, -errno, "%s: %s", n->path,
		                                   strerror(errno));
	}
	case SV_FD_SOCKET:
		return sv_fdpass_listen(n->path, err);
	}
	return sv_error_set(err, -EINVAL, "unknown fd kind");
}

int sv_fdpass_open(const struct sv_argv *a, const struct sv_identity *id, int *fds,
                   char (*taps)[SV_IFNAMSIZ], struct sv_error *err)
{
	for (size_t i = 0; i < a->nfds; i++) {
		fds[i] = -1;
		taps[i][0] = '\0';
	}
	for (size_t i = 0; i < a->nfds; i++) {
		struct sv_error e = { 0 };
		fds[i] = open_one(&a->fds[i], id, taps[i], &e);
		if (fds[i] < 0) {
			int r = fds[i];
			fds[i] = -1;
			sv_fdpass_close(fds, a->nfds);
			return sv_error_set(err, r, "%s: %s", a->fds[i].what, e.msg);
		}
	}
	return 0;
}

void sv_fdpass_close(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}
