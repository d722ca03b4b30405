/*
 * A guest's log file around its runs (the file itself: guestlog.h). When a
 * start is accepted: rotate the file if it is over the cap, then a start
 * line with the reason. At the spawn: the file again, for appending, as
 * QEMU's stdout and stderr, with the offset where this run's output
 * begins (and the file's inode) recorded: what the exit is classified by
 * and what `status` shows is read from there on only, never an older
 * run's text. When the run ends: an end line with the class and what the
 * restart policy made of it, and the run's last lines kept for `status`.
 *
 * These are a few small writes per start, done at once like the pid file's
 * (a log file on a local disk); a write that fails (a full disk) is logged
 * once per start and never stops a guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest_int.h"
#include "guestlog.h"
#include "log.h"

#define TAIL_LINES 10           /* status: log_tail */
#define JOIN_LINES 4            /* in the exit's description */
#define TAIL_BYTES (64u << 10)  /* read at most this much of a run's end */

/* Harmless on nested or paravirtual KVM, one per CPU feature: left out of
 * what a run left, as it only hides the cause. */
static bool noise(const char *line)
{
	return strstr(line, "warning: host doesn't support requested feature") != NULL;
}

int sv_guest_log_path(const struct sv_guest *g, char *buf, size_t size)
{
	if (!g->env->log_dir)
		return -ENOENT;
	return sv_glog_path(g->env->log_dir, g->name, buf, size);
}

/* A problem with the log file: said once per start, the guest goes on. */
static void problem(struct sv_guest *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct sv_guest *g, const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	if (g->log_warned)
		return;
	g->log_warned = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sv_log(SV_LOG_WARN, g->name, "log: %s; the guest runs on, its log misses this", msg);
}

/* One lifecycle line to fd (or to the file at path when fd < 0). */
static void write_line(struct sv_guest *g, int fd, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void write_line(struct sv_guest *g, int fd, const char *path, const char *fmt, ...)
{
	char line[SV_GLOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	size_t n = sv_glog_vformat(line, sizeof(line), fmt, ap);
	va_end(ap);
	int rc = sv_glog_append(fd, path, line, n);
	if (rc < 0)
		problem(g, "cannot write %s: %s", path, strerror(-rc));
}

void sv_guest_log_line(struct sv_guest *g, const char *fmt, ...)
{
	char path[4200], text[SV_GLOG_LINE_MAX];
	va_list ap;
	if (sv_guest_log_path(g, path, sizeof(path)) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	write_line(g, -1, path, "%s", text);
}

void sv_guest_log_begin(struct sv_guest *g, const char *why)
{
	char path[4200];
	struct sv_error err = { 0 };
	bool rotated = false;
	snprintf(g->run_why, sizeof(g->run_why), "%s", why && why[0] ? why
	         : g->start_incoming ? "incoming migration" : "operator");
	g->log_warned = false;
	g->log_offset = -1;
	g->log_ino = 0;
	g->run_pid = 0;
	json_decref(g->last_tail);
	g->last_tail = NULL;
	int rc = sv_guest_log_path(g, path, sizeof(path));
	if (rc == -ENAMETOOLONG)
		problem(g, "%s/%s.log: the path is too long", g->env->log_dir, g->name);
	if (rc < 0)
		return;
	int fd = sv_glog_open_run(path, g->env->log_max, &rotated, &err);
	if (fd < 0) {
		problem(g, "%s", err.msg);
		return;
	}
	if (rotated)
		sv_log(SV_LOG_INFO, g->name, "%s was over %llu bytes: it is %s.1 now", path,
		       (unsigned long long)g->env->log_max, path);
	write_line(g, fd, path, "start (reason: %s)", g->run_why);
	close(fd);
}

int sv_guest_log_qemu_fd(struct sv_guest *g)
{
	char path[4200];
	struct sv_error err = { 0 };
	struct stat st;
	bool rotated;
	if (sv_guest_log_path(g, path, sizeof(path)) < 0)
		return -1;
	int fd = sv_glog_open_run(path, 0, &rotated, &err);   /* never rotated here */
	if (fd < 0) {
		problem(g, "%s (QEMU's output goes to /dev/null)", err.msg);
		return -1;
	}
	if (fstat(fd, &st) == 0) {
		g->log_offset = (int64_t)st.st_size;
		g->log_ino = (uint64_t)st.st_ino;
	}
	return fd;
}

void sv_guest_log_ended(struct sv_guest *g, enum sv_exit_class c)
{
	if (g->run_pid > 0)
		sv_guest_log_line(g, "exit pid %d (class %s): %s", g->run_pid,
		                  sv_exit_class_name(c), g->reason);
	else
		sv_guest_log_line(g, "end (class %s): %s", sv_exit_class_name(c), g->reason);
	g->run_pid = 0;
}

/* The current run's lines (noise left out), or none when its file is gone
 * or is another one now. */
static void run_lines(struct sv_guest *g, struct sv_strv *lines)
{
	char path[4200];
	struct stat st;
	if (g->log_offset < 0 || sv_guest_log_path(g, path, sizeof(path)) < 0)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_ino == g->log_ino &&
	    st.st_size >= g->log_offset) {
		struct sv_strv all = { 0 };
		sv_glog_tail(fd, g->log_offset, st.st_size, 64, TAIL_BYTES, true, false, &all,
		             NULL);
		for (size_t i = 0; i < all.n; i++)
			if (!noise(all.v[i]))
				sv_strv_push(lines, all.v[i]);
		sv_strv_free(&all);
	}
	close(fd);
}

void sv_guest_run_tail(struct sv_guest *g, char *joined, size_t size)
{
	struct sv_strv lines = { 0 };
	size_t o = 0;
	joined[0] = '\0';
	json_decref(g->last_tail);
	g->last_tail = NULL;
	run_lines(g, &lines);
	if (lines.n)
		g->last_tail = json_array();
	for (size_t i = lines.n > TAIL_LINES ? lines.n - TAIL_LINES : 0; i < lines.n; i++)
		json_array_append_new(g->last_tail, json_string(lines.v[i]));
	/* The last few, as one line, so that the reason stays one line. */
	for (size_t i = lines.n > JOIN_LINES ? lines.n - JOIN_LINES : 0; i < lines.n; i++) {
		int w = snprintf(joined + o, size - o, "%s%s", o ? "; " : "", lines.v[i]);
		if (w < 0 || (size_t)w >= size - o)
			break;
		o += (size_t)w;
	}
	sv_strv_free(&lines);
}

void sv_guest_log_status(struct sv_guest *g, json_t *st)
{
	char path[4200];
	bool bad = g->state == SV_FAILED || g->last_exit == SV_EXIT_CRASH ||
	           g->last_exit == SV_EXIT_PANIC || g->last_exit == SV_EXIT_START_FAILURE ||
	           g->last_exit == SV_EXIT_INCOMING || g->last_exit == SV_EXIT_INTERNAL_ERROR;
	if (sv_guest_log_path(g, path, sizeof(path)) == 0)
		json_object_set_new(st, "log", json_string(path));
	if (bad && !sv_guest_active(g) && !g->prepping && json_array_size(g->last_tail))
		json_object_set(st, "log_tail", g->last_tail);
}
