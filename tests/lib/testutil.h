/*
 * Helpers shared by the test programs: running a uv loop until something
 * happens, temporary dirs, spawning QEMU with uv_spawn, and a synchronous
 * wrapper around libqmp for linear test code. Test code only.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include <uv.h>

#include "qmp.h"

/* Run loop until done(arg) is non-zero or ms milliseconds passed. Returns 0
 * when done, -1 on timeout. */
int t_run_until(uv_loop_t *loop, int (*done)(void *), void *arg, uint64_t ms);

/* Run until *flag is non-zero. Returns 0, or -1 on timeout. */
int t_run_until_flag(uv_loop_t *loop, const int *flag, uint64_t ms);

/* Run the loop for ms milliseconds, whatever happens. */
void t_run_for(uv_loop_t *loop, uint64_t ms);

/* Close every handle left on loop, run it dry and close it. Returns the
 * uv_loop_close() result (0 when nothing leaked). */
int t_loop_finish(uv_loop_t *loop);

/* mkdtemp under $TMPDIR (or /tmp) with the given prefix; returns a malloc'd
 * path. t_rmtree() removes it and everything below. */
char *t_mkdtemp(const char *prefix);
void t_rmtree(const char *path);

/* Source, build and guest dirs (QSUP_SRCDIR etc., with defaults for running
 * a test binary by hand from the repo root). */
const char *t_srcdir(void);
const char *t_guestdir(void);

/* "kvm" when /dev/kvm can create a VM, else "tcg". Prints "# using ..." once
 * as a TAP comment, so the test log says which was used. */
const char *t_accel(void);

/* A QEMU child process. dir holds qmp.sock, serial.sock and stderr.log. */
struct t_qemu {
	uv_process_t proc;
	int spawned, exited, closed;
	int64_t exit_status;
	int term_signal;
	char *dir;
	char qmp_path[256];
	char serial_path[256];
};

/* Spawn qemu-system-x86_64 -nodefaults -no-user-config -display none with a
 * QMP server socket and a serial server socket in a fresh temp dir, then
 * extra (NULL-terminated). Returns 0 or a negative uv error. */
int t_qemu_spawn(uv_loop_t *loop, struct t_qemu *q, const char *const *extra);

/* Wait for exit (up to ms), then SIGKILL if still running, close the process
 * handle and remove the temp dir. Returns 0 if it had exited by itself. */
int t_qemu_reap(uv_loop_t *loop, struct t_qemu *q, uint64_t ms);

/* The last 4 KiB of a file (static buffer; "" when unreadable). */
const char *t_file_tail(const char *path);

/* The last lines of QEMU's stderr log, for failure messages (static buffer). */
const char *t_qemu_stderr(struct t_qemu *q);

/* A libqmp client driven synchronously, recording every event. */
struct t_qmp {
	uv_loop_t *loop;
	struct qmp_client *c;
	int ready, ready_status, closed, closed_status;
	json_t *events;       /* array of {"event", "data"} in arrival order */
};

/* Connect to path, retrying while the socket does not exist yet, until
 * negotiated or ms passed. Returns 0, or a negative error. */
int t_qmp_open(uv_loop_t *loop, struct t_qmp *t, const char *path, uint64_t ms);

/* Execute and wait for the reply. Returns the status; *ret (if not NULL)
 * gets a new reference to the return value (or the error object). */
int t_qmp_exec(struct t_qmp *t, const char *cmd, json_t *args, json_t **ret);

/* Wait until an event named name has arrived (counting from index *from;
 * *from is moved past it). Returns its data (borrowed) or NULL on timeout. */
json_t *t_qmp_wait_event(struct t_qmp *t, const char *name, size_t *from, uint64_t ms);

/* Close the client and wait for closed(). */
void t_qmp_close(struct t_qmp *t);

/* A QEMU serial console read from its unix socket; output accumulates. */
struct t_serial {
	uv_loop_t *loop;
	uv_pipe_t pipe;
	int open, connected, eof;
	char *buf;
	size_t len;
};

/* Connect to the serial socket at path (retrying while it does not exist),
 * within ms. Returns 0 or a negative error. */
int t_serial_open(uv_loop_t *loop, struct t_serial *s, const char *path, uint64_t ms);

/* Wait until text appears in the output after offset *from (moved past the
 * match). Returns 0, or -1 on timeout. */
int t_serial_wait(struct t_serial *s, const char *text, size_t *from, uint64_t ms);

/* Write a line to the console (a newline is appended). */
int t_serial_write(struct t_serial *s, const char *line);

void t_serial_close(struct t_serial *s);
/* The highest N of "TAG N" in what s received so far, or -1. */
long t_serial_highest(const struct t_serial *s, const char *tag);

/* Read a small text file into a static buffer, without a trailing newline;
 * NULL if it cannot be read. */
const char *t_read_line(const char *path);

/* A process's resident set (VmRSS) in KiB, or -1. */
long t_rss_kib(int pid);
/* A "kB" field of /proc/PID/status (VmRSS, RssAnon...), or -1. */
long t_status_kib(int pid, const char *field);

/* CPU seconds pid's live threads have run so far, from the scheduler's
 * own nanosecond count (/proc/PID/task/TID/schedstat): far finer than the
 * clock ticks of utime + stime, which charge a whole tick to whichever
 * task it lands on. Threads that ended are missing from it. -1: gone. */
double t_sched_cpu_s(int pid);

/* Seconds since an arbitrary start, as a double, for printed figures. */
double t_now(void);

#endif
