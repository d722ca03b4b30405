/*
 * The pieces of qsupctl, the client of qsupd's control socket, kept out of
 * qsupctl.c so that the unit tests reach them through libsv.a:
 *   ctl_conn_*   a blocking connection: greeting, requests with ids, replies
 *                matched by id, events (ctl_conn.c);
 *   ctl_fmt_*    the human-readable output, pure (ctl_fmt.c);
 *   ctl_console  the serial console attachment (ctl_console.c).
 * Client code only: qsupd never calls any of it.
 */
#ifndef SV_CTL_H
#define SV_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <jansson.h>

#include "qmp_parse.h"
#include "util.h"

/* qsupctl's exit statuses, as documented in qsupctl(8). */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_ERROR = 1,     /* qsupd answered with an error, or went away */
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_CONNECT = 3,   /* no qsupd to talk to */
	CTL_EXIT_SSH_NET = 4,   /* ssh: the host cannot be reached */
	CTL_EXIT_SSH_HOSTKEY = 5, /* ssh: host key verification failed */
	CTL_EXIT_SSH_AUTH = 6,  /* ssh: authentication failed */
};

/* Longest reply line accepted: a QMP passthrough reply can be large. */
#define CTL_MAX_LINE (64u << 20)

/* How long to wait for the greeting after connecting. */
#define CTL_GREETING_TIMEOUT_MS 10000

/* Write all n bytes to fd (blocking; EINTR retried). Returns 0 or -errno. */
int ctl_write_all(int fd, const char *p, size_t n);

/* The control socket qsupctl uses: opt (-s) if set, else env (QSUP_SOCKET)
 * if non-empty, else /run/qsup/qsupd.sock for root (euid 0), else
 * xdg/qsup/qsupd.sock (xdg is $XDG_RUNTIME_DIR). Writes it into buf.
 * Returns 0, -ENOENT (not root and no xdg) or -ENAMETOOLONG (the path does
 * not fit a unix socket address), with err set. */
int ctl_socket_path(const char *opt, const char *env, const char *xdg, uid_t euid,
                    char *buf, size_t size, struct sv_error *err);

/* One connection to qsupd. Zero-initialise, then ctl_conn_open(). */
struct ctl_conn {
	int fd;                 /* -1 when closed */
	struct qmp_framer framer;
	json_t *queue;          /* messages received but not yet taken */
	int64_t next_id;
};

/* Connect to the unix socket path and read qsupd's greeting, waiting at
 * most timeout_ms for it. Returns 0, or a negative errno with err set (the
 * message names the socket); c needs ctl_conn_close() either way. */
int ctl_conn_open(struct ctl_conn *c, const char *path, int timeout_ms,
                  struct sv_error *err);

/* The same over fd, a connected stream (ctl_ssh.c: the ssh bridge), taken
 * by c; label names it in messages. */
int ctl_conn_open_fd(struct ctl_conn *c, int fd, const char *label, int timeout_ms,
                     struct sv_error *err);

/* Send {"execute": execute, "arguments": args, "id": N}. Takes the
 * reference to args (NULL means {}). Stores N in *id. Returns 0, or a
 * negative errno with err set (-EPIPE: qsupd closed the connection). */
int ctl_conn_send(struct ctl_conn *c, const char *execute, json_t *args,
                  int64_t *id, struct sv_error *err);

/* Wait, without a time limit, for the reply carrying id; other messages
 * stay queued for ctl_conn_next(). Returns 0 with *reply (a new reference,
 * holding "return" or "error"), or a negative errno with err set
 * (-ECONNRESET: qsupd closed the connection; -EBADMSG: not JSON). */
int ctl_conn_reply(struct ctl_conn *c, int64_t id, json_t **reply,
                   struct sv_error *err);

/* The next message not yet taken (a new reference), waiting for it.
 * Returns 0, or a negative errno as for ctl_conn_reply(). */
int ctl_conn_next(struct ctl_conn *c, json_t **msg, struct sv_error *err);

/* The next message not yet taken, without waiting: what is queued, else
 * what one read of what has arrived completes. Returns 0 with *msg (a new
 * reference, or NULL when there is none yet), or a negative errno as for
 * ctl_conn_reply(). */
int ctl_conn_poll(struct ctl_conn *c, json_t **msg, struct sv_error *err);

/* Close the socket and free the queue. Safe on a zeroed or closed conn. */
void ctl_conn_close(struct ctl_conn *c);

/* A duration in seconds as "45s", "3m12s", "5h02m" or "2d03h"; "-" when
 * negative or not a number. buf holds at least 16 bytes. */
void ctl_fmt_duration(double seconds, char *buf, size_t size);

/* The `list` table: NAME STATE PID UPTIME RESTARTS, one row per status
 * object in the array, sorted by name; missing values print as "-". */
void ctl_fmt_list(FILE *out, json_t *list);

/* A status object as aligned "key: value" lines: the known keys in a fixed
 * order, then any others. */
void ctl_fmt_status(FILE *out, json_t *status);

/* The one-line outcome of a lifecycle verb: "web1: running (started)". */
void ctl_fmt_outcome(FILE *out, const char *name, json_t *status);

/* One event as a line: "12:00:01 web1 running (started)" for GUEST_STATE,
 * "12:00:01 web1 STOP" (plus its data as JSON, if any) for a guest's QMP
 * event. The time is local, from the event's timestamp. */
void ctl_fmt_event(FILE *out, json_t *event);

/* Non-zero if event concerns one of the n names (always, when n is 0). */
bool ctl_event_match(json_t *event, char *const *names, int n);

/* The reload summary on out ("added: a b" ..., or "no changes"), and each
 * profile error on err as "qsupctl: reload: <error>". Returns the number of
 * profile errors. */
size_t ctl_fmt_reload(FILE *out, FILE *err, json_t *ret);

/* Each string of the array on a line of its own on out (anything else: an
 * empty line): log's lines, argv's words. */
void ctl_fmt_lines(FILE *out, json_t *arr);

/* Member key of o, a count of bytes, in MiB (0 when not an integer). */
double ctl_mib(json_t *o, const char *key);

/* A progress bar of 20 cells, a '#' for every 5 % of pct, the rest '.'
 * (the --wait progress of migrate and backup). */
void ctl_fmt_bar(int pct, char bar[21]);

/* Attach the terminal (in, out) to the serial console of guest name, the
 * unix stream socket at path. Once connected, print a hint line on stderr,
 * then copy bytes both ways until Ctrl-] (0x1d) is read from in, the socket
 * closes, in ends (then output is drained until it has been quiet for half
 * a second), or qsupd says on ctl (the connection that lent the console;
 * NULL: none) that another client took the console over (CONSOLE_TAKEN;
 * said on stderr, and the console socket is closed at once so that QEMU
 * serves the new holder). When in is a tty it is put in raw mode, and
 * restored on every way out. SIGINT, SIGTERM, SIGHUP and SIGQUIT end the
 * attachment too. Returns 0, the number of the signal that ended it (the
 * caller re-raises it after cleaning up), or a negative errno with err
 * set. */
int ctl_console(const char *name, const char *path, struct ctl_conn *ctl, int in, int out,
                struct sv_error *err);
/* The same on sock, a connected stream to the console (taken: closed). */
int ctl_console_fd(const char *name, int sock, struct ctl_conn *ctl, int in, int out,
                   struct sv_error *err);

/* ---- qsupctl's verbs (the table, the options and the replies: qsupctl.c;
 * the verbs themselves in ctl_*.c, by group) ---- */

struct ctl;

struct ctl_cmd {
	const char *name;
	int (*fn)(struct ctl *c, char **args, int nargs);
	const char *args;       /* for the usage text */
	const char *help;
	int min, max;           /* positional arguments; max -1: no limit */
	unsigned flags;
};

enum {
	CTL_F_NAMES = 1,        /* every positional argument is a guest name */
	CTL_F_NAME1 = 2,        /* the first one is */
	CTL_F_FORCE = 4,        /* takes --force */
	CTL_F_PERSIST = 8,      /* takes --persist */
	CTL_F_MIGRATE = 16,     /* takes --to SOCKET and --wait */
	CTL_F_ALL = 32,         /* takes --all and --parallel N (ctl_bulk) */
	CTL_F_TIMEOUT = 64,     /* takes --timeout SECONDS */
	CTL_F_LOG = 128,         /* takes -n LINES and -f (follow) */
	CTL_F_FORMAT = 256,     /* takes --format FMT */
	CTL_F_PASSWORD = 512,   /* takes --password */
	CTL_F_HOSTCHECK = 1024, /* takes -d DIR and -r DIR; needs no qsupd */
	CTL_F_LINKED = 2048,    /* takes --linked */
	CTL_F_MEMORY = 4096,    /* takes --memory */
	CTL_F_TOP = 65536,      /* takes -d/--delay SECONDS, -b/--batch, -n N */
	CTL_F_BACKUP = 8192,    /* takes --full, --incremental and --wait */
	CTL_F_TUNNEL = 131072,  /* takes --tunnel (migrate --to ssh://) */
	CTL_F_COPY_STORAGE = 262144,   /* takes --copy-storage (and --force) */
};

struct ctl {
	const struct ctl_cmd *cmd;
	const char *socket_opt;     /* -s, or NULL */
	const char *uri;            /* -c URI (or QSUP_URI), or NULL */
	bool tunnel;                /* migrate --tunnel */
	bool json;
	bool force;
	bool persist;
	bool wait;
	bool all;                   /* --all */
	int parallel;               /* --parallel N; 0: no limit */
	int timeout;                /* --timeout SECONDS; 0: the profile's */
	const char *to;
	bool copy_storage;          /* migrate --copy-storage */
	const char *lines;          /* log -n, as given (NULL: qsupd's default) */
	bool follow;                /* log -f */
	const char *format;         /* cdrom --format */
	bool password;              /* display --password */
	const char *profile_dir;    /* host-check -d */
	const char *run_dir;        /* host-check -r */
	bool linked;                /* clone --linked */
	bool memory;                /* snapshot --memory */
	double delay;               /* top --delay SECONDS; 0: the default (3) */
	bool batch;                 /* top --batch */
	long iterations;            /* top -n N; 0: until q or a signal */
	bool kind_full, kind_incremental;   /* backup --full, --incremental */
	int shown;                  /* replies shown so far */
	int signal;                 /* ended the console; main re-raises it */
	struct ctl_conn conn;
};

/* Print a JSON value; handle a reply (show it with show, or print its
 * error) and return the exit code; report a lost connection; call one
 * verb and wait for its reply; turn KEY=VALUE words into args; run a verb
 * per guest name, pipelined. */
int ctl_handle_reply(struct ctl *c, const char *what, json_t *reply,
                        void (*show)(struct ctl *, const char *, json_t *));
void ctl_print_json(json_t *v, size_t flags);
int ctl_lost(struct ctl *c, const char *what, const struct sv_error *err);
int ctl_call(struct ctl *c, const char *execute, json_t *args, const char *what,
                json_t **reply);
int ctl_kv_args(json_t *args, char **words, int n);   /* ctl_device.c */
/* ctl_call, then ctl_handle_reply with show; the exit status. */
int ctl_request(struct ctl *c, const char *execute, json_t *args, const char *what,
                void (*show)(struct ctl *, const char *, json_t *));
/* Subscribe to qsupd's events (an error reply said as the verb's;
 * ctl_lifecycle.c, with events). */
int ctl_subscribe(struct ctl *c, const char *what);
/* Subscribe, send verb with req (taken), draw the guest's event progress
 * events with progress (data, stderr is a tty) until the reply, which show
 * shows; the exit code (ctl_migrate.c: migrate --wait, backup -w). */
int ctl_call_progress(struct ctl *c, const char *verb, json_t *req, const char *what,
                      const char *guest, const char *event, void (*progress)(json_t *, bool),
                      void (*show)(struct ctl *, const char *, json_t *));
int ctl_per_name(struct ctl *c, char **names, int n,
                    void (*show)(struct ctl *, const char *, json_t *));
/* Connect (once) to qsupd; returns an exit status. */
int ctl_connect(struct ctl *c);

/* ctl_ssh.c: qsupd on another host through the system's ssh client
 * (QSUP_SSH: the program, default ssh; QSUP_SSH_CONFIG: its -F file):
 * open c through `qsupctl [-s PATH] --stdio` run there; connect *fd to
 * the remote unix socket path through `qsupctl --stdio-connect PATH` (a
 * console). Each returns an exit status, the error said on stderr (ssh's
 * failures as CTL_EXIT_SSH_*). ctl_ssh_reap() waits for the ssh processes
 * at the end. ctl_stdio_bridge() is the remote end: stdin and stdout to
 * the unix socket path (control: qsupd's, whose greeting gets the "ssh"
 * member from SSH_CONNECTION; else a line QSUP-CONNECTED first). */
int ctl_ssh_open(struct ctl_conn *c, const char *uri);
int ctl_ssh_connect(const char *uri, const char *path, int *fd);
void ctl_ssh_reap(void);
int ctl_stdio_bridge(const char *path, bool control);

/* The verb for the n names, or, with --all, for every guest it applies to
 * (start: stopped ones; stop, kill: those not down; save: running or
 * paused), at most --parallel at a time, outcomes printed in order,
 * stops' progress on stderr; --all ends with a summary line
 * ("stop: 3 guests: 3 done, 0 failed"). ctl_bulk.c. */
int ctl_bulk(struct ctl *c, char **names, int n,
             void (*show)(struct ctl *, const char *, json_t *));

/* list, status, start/stop/kill/pause/resume/reset/restart/reset-failed,
 * reload, events (ctl_lifecycle.c). */
int ctl_list(struct ctl *c, char **args, int nargs);
int ctl_status(struct ctl *c, char **args, int nargs);
int ctl_lifecycle(struct ctl *c, char **args, int nargs);
int ctl_reload(struct ctl *c, char **args, int nargs);
int ctl_events(struct ctl *c, char **args, int nargs);

/* qmp, agent, argv (ctl_qmp.c). */
int ctl_qmp(struct ctl *c, char **args, int nargs);
int ctl_agent(struct ctl *c, char **args, int nargs);
int ctl_argv(struct ctl *c, char **args, int nargs);

/* clone, disk-resize, set, snapshot (ctl_guest.c). */
int ctl_clone(struct ctl *c, char **args, int nargs);
int ctl_disk_resize(struct ctl *c, char **args, int nargs);
int ctl_set(struct ctl *c, char **args, int nargs);
int ctl_snapshot(struct ctl *c, char **args, int nargs);

/* attach, detach, devices, cdrom, display, console (ctl_device.c). */
int ctl_attach(struct ctl *c, char **args, int nargs);
int ctl_detach(struct ctl *c, char **args, int nargs);
int ctl_devices(struct ctl *c, char **args, int nargs);
int ctl_cdrom(struct ctl *c, char **args, int nargs);
int ctl_display(struct ctl *c, char **args, int nargs);
int ctl_console_cmd(struct ctl *c, char **args, int nargs);

/* net-list, net-status, net-start, net-stop (ctl_net.c). */
int ctl_net_list(struct ctl *c, char **args, int nargs);
int ctl_net_status(struct ctl *c, char **args, int nargs);
int ctl_net_startstop(struct ctl *c, char **args, int nargs);

/* log NAME [-n LINES] [-f] (ctl_log.c). */
int ctl_log(struct ctl *c, char **args, int nargs);

/* host-check [-d DIR] [-r DIR]: the table, or --json; no qsupd needed
 * (ctl_hostcheck.c). Exit 1 when a check FAILs. */
int ctl_host_check(struct ctl *c, char **args, int nargs);

/* stats [NAME...] (a table, or --json), metrics (the Prometheus text), top
 * (ctl_top.c). */
int ctl_stats(struct ctl *c, char **args, int nargs);
int ctl_metrics(struct ctl *c, char **args, int nargs);
int ctl_top(struct ctl *c, char **args, int nargs);

/* top's pieces, pure: a byte count as "512B", "1.5K", "163M" ("-" when
 * negative); the rows of two successive stats answers (prev NULL: no rates
 * yet), each {name, state, cpu (% of one core), mem, rd, wr, rx, tx (bytes
 * per second), uptime, restarts, stale}, -1 where unknown; sorted by key
 * (c cpu, m mem, d disk, n net, u uptime: largest first; a name); the
 * table (ctl_topfmt.c). */
void ctl_fmt_bytes(double v, char *buf, size_t size);
/* The sum of member key over the objects of array arr. */
double ctl_sum_of(json_t *arr, const char *key);
json_t *ctl_top_rows(json_t *prev, json_t *cur);
void ctl_top_sort(json_t *rows, char key);
void ctl_top_print(FILE *out, json_t *rows, char key);

/* The migration verbs: migrate, incoming, migrate-cancel, save/restore. */
int ctl_save(struct ctl *c, char **args, int nargs);
int ctl_migrate_cancel(struct ctl *c, char **args, int nargs);
int ctl_incoming(struct ctl *c, char **args, int nargs);
int ctl_migrate(struct ctl *c, char **args, int nargs);
/* ctl_backup.c */
int ctl_backup(struct ctl *c, char **args, int nargs);
int ctl_backup_cancel(struct ctl *c, char **args, int nargs);
int ctl_backup_restore(struct ctl *c, char **args, int nargs);

#endif
