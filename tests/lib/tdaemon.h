/*
 * Tests against a real qsupd: start one in the foreground with its own
 * profile dir, run dir and socket under a temp dir, and talk to its control
 * socket synchronously (blocking reads with a deadline). Test code only.
 */
#ifndef TDAEMON_H
#define TDAEMON_H

#include <stdbool.h>
#include <sys/types.h>
#include <jansson.h>
#include <uv.h>

#include "testutil.h"

struct t_daemon {
	pid_t pid;
	char *dir;
	char profiles[512], run[512], sock[512], log[512], state[512];
	char logs[512];         /* --log-dir: the guests' log files */
	char networks[512];     /* --networks: DIR/networks (none unless a test
	                           writes some), never the host's /etc/qsup */
};

/* Create the dirs (profiles are written with t_daemon_profile()). */
int t_daemon_init(struct t_daemon *d);

/* Write DIR/profiles/NAME.ini with the given text. */
void t_daemon_profile(struct t_daemon *d, const char *name, const char *text);

/* Spawn build/qsupd -f with the dirs (--log-dir DIR/logs and --networks
 * DIR/networks too) and --idle-timeout 3600, plus extra args
 * (NULL-terminated; a later --idle-timeout, --log-dir or --networks wins),
 * and wait until its socket answers.
 * Returns 0 or -1 (the log explains). */
int t_daemon_start(struct t_daemon *d, const char *const *extra);

/* Spawn it the same way and return at once (0, or -1): for a caller that
 * waits for the socket itself (bench/readopt polls it finely). */
int t_daemon_spawn(struct t_daemon *d, const char *const *extra);

/* Run qsupd with the dirs plus extra as above and wait (up to ms) for it to
 * exit. Returns its exit status, or -1 if it had to be killed. */
int t_daemon_exec(struct t_daemon *d, const char *const *extra, int ms);

/* SIGTERM the daemon and wait for it (20 s, then SIGKILL). Returns its exit
 * status, or -1 if it had to be killed. */
int t_daemon_stop(struct t_daemon *d);

/* SIGKILL the daemon (no chance to clean up) and reap it. */
void t_daemon_kill9(struct t_daemon *d);

/* Kill every QEMU whose pid file is in the run dir, stop the daemon if it
 * still runs, and remove the temp dir. */
void t_daemon_cleanup(struct t_daemon *d);

/* The end of a test: SIGTERM the daemon if it runs (it must exit 0:
 * sanitizers report there too; the log is printed otherwise), kill the
 * QEMUs it left, remove the temp dir. Returns the daemon's exit status. */
int t_daemon_finish(struct t_daemon *d);

/* Write the 64 KiB ROM of bench/halt-rom.sh (cli; hlt) into d's dir, its
 * path in rom. A guest booted from it (bios = ROM) halts at once: no guest
 * code runs, under KVM or TCG. Returns 0, or -1 when the script failed. */
int t_daemon_halt_rom(struct t_daemon *d, char *rom, size_t size);

/* Write a profile NAME.ini booting the tiny test guest under TCG, with
 * extra appended (more sections or keys; may be ""). */
void t_daemon_tiny_profile(struct t_daemon *d, const char *name, const char *extra);

/* A string member of obj, or "(none)". */
const char *t_str(json_t *obj, const char *key);

/* The daemon's log (static buffer, last 4 KiB). */
const char *t_daemon_log(struct t_daemon *d);

/* Whether the daemon's whole log holds text (on one line). */
bool t_daemon_log_has(struct t_daemon *d, const char *text);

/* Run argv (a program path and its arguments) with stdout and stderr
 * captured into out (NUL-terminated, truncated to size), up to ms. Returns
 * the exit status, or -1 on a timeout (the program is killed). */
int t_run_capture(const char *const *argv, char *out, size_t size, int ms);

/* Paths of build/qsupctl and build/qsupd (QSUP_BUILDDIR). Static storage. */
const char *t_qsupctl(void);
const char *t_qsupd(void);

/* True if process pid exists and is not a zombie. */
bool t_pid_alive(pid_t pid);

/* A control connection. Messages that arrive while waiting for something
 * else are kept in order and looked at first next time. */
struct t_ctl {
	int fd;
	char *buf;
	size_t len;
	json_t *greeting;
	json_t *queue;          /* messages read but not yet consumed */
	long long next_id;
};

/* Connect and read the greeting. Returns 0 or -errno. */
int t_ctl_open(struct t_ctl *c, const char *path);
void t_ctl_close(struct t_ctl *c);

/* Write raw bytes. */
int t_ctl_send_raw(struct t_ctl *c, const char *bytes, size_t len);

/* Send {"execute": verb, "arguments": args (taken, may be NULL), "id": N};
 * returns N. */
long long t_ctl_send(struct t_ctl *c, const char *verb, json_t *args);

/* The next message of any kind, or NULL after ms (or on EOF). */
json_t *t_ctl_next(struct t_ctl *c, int ms);

/* The reply with id (queued events and other replies are kept), or NULL. */
json_t *t_ctl_reply(struct t_ctl *c, long long id, int ms);

/* send + reply. The whole reply object: check "return" or "error". */
json_t *t_ctl_call(struct t_ctl *c, const char *verb, json_t *args, int ms);

/* name's state ("running"...) from its status, in a static buffer ("?"
 * when the status fails); its QEMU's pid, or 0. */
const char *t_ctl_state(struct t_ctl *c, const char *name);
int t_ctl_pid(struct t_ctl *c, const char *name);

/* call with {"name": name} and return the reply's "return" (new ref) or
 * NULL; on error *cls gets the error class (static storage). */
json_t *t_ctl_do(struct t_ctl *c, const char *verb, const char *name, int ms,
                 const char **cls);

/* Wait for a GUEST_STATE event for guest name entering state. Returns the
 * event (new ref) or NULL. */
json_t *t_ctl_wait_state(struct t_ctl *c, const char *name, const char *state, int ms);

/* Ask for guest name's console and connect ser to it on loop (initialised
 * here). Returns 0 or a negative error. */
int t_ctl_console(struct t_ctl *c, const char *name, uv_loop_t *loop, struct t_serial *ser);
/* The same after closing ser and finishing loop (a console reopened, on
 * the same daemon or another); *seen back to 0. */
int t_ctl_console_reopen(struct t_ctl *c, const char *name, uv_loop_t *loop,
                         struct t_serial *ser, size_t *seen);

/* Poll name's state (every 50 ms, up to ms) until it is want: 0, or -1
 * (t_ctl_state then says what it is). */
int t_ctl_poll_state(struct t_ctl *c, const char *name, const char *want, int ms);

/* The file behind fd set id of guest name's QEMU (query-fdsets through the
 * qmp verb, then its /proc entry), into buf; returns buf, or NULL. */
const char *t_guest_fdset_file(struct t_ctl *c, const char *name, int id, char *buf,
                               size_t size);

/* True when the connection was closed by the daemon (reads EOF within ms). */
bool t_ctl_eof(struct t_ctl *c, int ms);

#endif
