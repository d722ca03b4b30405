/* Processes and directories, through /proc and the file system: see
 * sysutil.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sysutil.h"

int sv_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Past the next n fields of /proc/PID/stat's text at p; NULL when there
 * are fewer. */
static char *skip_fields(char *p, int n)
{
	while (n-- > 0 && p)
		if ((p = strchr(p, ' ')))
			p++;
	return p;
}

/* /proc/PID/FILE read into buf (NUL-terminated, truncated to size); its
 * length, or -1 (no such process or file, unreadable, empty). */
static ssize_t proc_read(int pid, const char *file, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	int fd = pid > 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	ssize_t n = fd >= 0 ? read(fd, buf, size - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* pid's /proc/PID/stat read into buf, and its flags field (field 9), when
 * pid is a live process: NULL when it is gone, a zombie waiting for its
 * reaper, or in its exit (PF_EXITING). Killed, a process is no zombie yet
 * while its threads end, its memory goes and its files close; a flock it
 * held is released only late in that (a QEMU's guest lock: the process
 * is gone for every purpose of qsupd's, and is waited for, not taken for
 * another holder). */
static char *live_stat(int pid, char *buf, size_t size)
{
	if (proc_read(pid, "stat", buf, size) < 0)
		return NULL;
	/* comm may hold spaces and parentheses: fields resume after the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return NULL;
	/* field 3 is the state, 6 fields before the flags (counted by hand:
	 * sscanf's skipping costs more than the read) */
	p = skip_fields(p + 2, 6);
	return p && !(strtoul(p, NULL, 10) & 0x4) ? p : NULL;   /* PF_EXITING, linux/sched.h */
}

unsigned long long sv_proc_starttime(int pid)
{
	char buf[1024];
	char *p = live_stat(pid, buf, sizeof(buf));
	if (p)
		p = skip_fields(p, 22 - 9);   /* the start time, field 22 */
	if (!p)
		return 0;
	char *end;
	unsigned long long start = strtoull(p, &end, 10);
	return end != p && (*end == ' ' || *end == '\0' || *end == '\n') ? start : 0;
}

bool sv_proc_waits_for_events(int pid)
{
	char buf[1024];
	if (!live_stat(pid, buf, sizeof(buf)) || strrchr(buf, ')')[2] != 'S')
		return false;   /* running, stopped, in the disk's wait: not idle */
	if (proc_read(pid, "syscall", buf, sizeof(buf)) < 0)
		return false;
	/* "NR args... sp pc" while in a syscall; "running", or -1 outside one */
	char *end;
	long nr = strtol(buf, &end, 10);
	if (end == buf || *end != ' ')
		return false;
	static const long waits[] = {
#ifdef SYS_poll
		SYS_poll,
#endif
#ifdef SYS_select
		SYS_select,
#endif
#ifdef SYS_epoll_wait
		SYS_epoll_wait,
#endif
		SYS_ppoll, SYS_pselect6, SYS_epoll_pwait,
	};
	for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++)
		if (nr == waits[i])
			return true;
	return false;
}

bool sv_proc_is_guest(int pid, const char *name)
{
	char buf[16384], want[96];
	ssize_t n = proc_read(pid, "cmdline", buf, sizeof(buf));
	snprintf(want, sizeof(want), "guest=%s,", name);
	for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(buf + i) + 1)
		if (strncmp(buf + i, want, strlen(want)) == 0)
			return true;
	return false;
}

bool sv_proc_arg_after(int pid, const char *opt, char *out, size_t size)
{
	char buf[16384];
	ssize_t n = proc_read(pid, "cmdline", buf, sizeof(buf));
	for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(buf + i) + 1) {
		ssize_t next = i + (ssize_t)strlen(buf + i) + 1;
		if (!strcmp(buf + i, opt) && next < n) {
			snprintf(out, size, "%s", buf + next);
			return true;
		}
	}
	return false;
}

bool sv_boot_id_valid(const char *s)
{
	size_t n = strlen(s);
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isxdigit((unsigned char)s[i]) || (s[i] == '-' && (i == 8 || i == 13 ||
		      i == 18 || i == 23))))
			return false;
	return true;
}

int sv_boot_id(const char *path, char *buf, size_t size)
{
	int fd = open(path ? path : "/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	char tmp[64];
	ssize_t n = fd >= 0 ? read(fd, tmp, sizeof(tmp) - 1) : -1;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (n < 0)
		return -e;
	tmp[n] = 0;
	tmp[strcspn(tmp, "\n")] = 0;
	if (!sv_boot_id_valid(tmp) || size < 37)
		return -EBADMSG;
	snprintf(buf, size, "%s", tmp);
	return 0;
}

bool sv_pid_alive(int pid)
{
	char buf[512];
	return live_stat(pid, buf, sizeof(buf)) != NULL;
}
