/*
 * A guest: one profile, at most one QEMU process, its QMP connection, and
 * the state machine. Every state change goes through one transition
 * function that checks it against machine.c's table, logs it and emits a
 * GUEST_STATE event.
 *
 * Operations that take time (start, stop, kill, restart) finish through
 * waiters: control requests that are answered when the guest reaches the
 * state they wait for, or fails to.
 *
 * The guest core knows neither the daemon nor the features: its owner
 * gives it an environment (struct sv_guest_env: the loop, the host's
 * facts, callbacks up) and lists the features that observe it (struct
 * sv_guest_observer). Layers: tests/scripts/test-layers.sh.
 */
#ifndef SV_GUEST_H
#define SV_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "argv.h"
#include "identity.h"
#include "machine.h"            /* enum sv_state, sv_state_name, predicates */
#include "profile.h"
#include "restart.h"
#include "tap.h"

struct sv_request;
struct sv_prep;
struct sv_taint;
struct qmp_result;
struct sv_guest;

struct sv_error;

enum sv_wait { SV_WAIT_RUNNING, SV_WAIT_STOPPED, SV_WAIT_RESTART };

/* How long a stop waits for the guest after an observer's guest_shutdown
 * asked it to shut down, before quit. */
#define SV_GUEST_SHUTDOWN_MS 10000

struct sv_waiter {
	struct sv_waiter *next;
	struct sv_request *req;
	enum sv_wait kind;
};

/*
 * What a feature (hot-plug, migration, the qmp passthrough) hears of a
 * guest's life. Its owner lists the observers in the guest's environment;
 * the guest core calls each, in that order, and knows no feature by name.
 * Every hook may be NULL.
 */
struct sv_guest_observer {
	const char *name;
	/* A new QEMU is about to run for g. */
	void (*qemu_new)(struct sv_guest *g);
	/* QMP is up on a QEMU that qsupd started (still in -S). Return true to
	 * take the start over: g stays in -S until done(g) (hot-plug replays
	 * its devices; an incoming migration waits for its stream and never
	 * calls done). */
	bool (*qmp_ready)(struct sv_guest *g, void (*done)(struct sv_guest *g));
	/* QMP is back on a QEMU that an earlier qsupd started, in QEMU run
	 * state st (NULL: unknown). adopt: return true to take g's state over
	 * (a migration in flight); adopted: afterwards, whoever took it. */
	bool (*adopt)(struct sv_guest *g, const char *st);
	void (*adopted)(struct sv_guest *g);
	/* QEMU's answer to query-migrate, asked together with query-status
	 * when QMP came back (one round trip for both), after adopted(). */
	void (*adopt_migrate)(struct sv_guest *g, const struct qmp_result *r);
	/* A QMP event from g's QEMU. */
	void (*event)(struct sv_guest *g, const char *name, json_t *data);
	/* Did QEMU end because the feature ended it on purpose? true with
	 * *saved (to a file, or migrated) and *where set. */
	bool (*ended_by)(struct sv_guest *g, bool *saved, const char **where);
	/* g's QEMU is gone (before its ending is classified); or a start
	 * failed before QEMU ran. */
	void (*qemu_gone)(struct sv_guest *g);
	void (*start_failed)(struct sv_guest *g);
	/* g stopped for good: what lasts only until a stop goes. */
	void (*stopped)(struct sv_guest *g);
	/* A stop's ACPI presses went unanswered: ask the guest to shut down
	 * another way (the guest agent's guest-shutdown). Return true when
	 * asked: the stop waits SV_GUEST_SHUTDOWN_MS more before quit. */
	bool (*guest_shutdown)(struct sv_guest *g);
	/* Add the feature's members to g's status object. */
	void (*status)(struct sv_guest *g, json_t *st);
	/* g is being released: free what the feature keeps for it. */
	void (*release)(struct sv_guest *g);
};

/* A wait for g's record to be written (sv_guest_persist_then): storage of
 * the caller's, linked in g's queue while it waits. done is called once,
 * in the order the waits were asked, unless the wait is cancelled first
 * (sv_guest_persist_cancel). No allocation, so nothing can fail out of
 * order. */
struct sv_persist_wait {
	void (*done)(struct sv_persist_wait *w, struct sv_guest *g, int err);
	struct sv_persist_wait *next;
};

/* What a guest knows of the host it runs on: given by its owner (the
 * daemon) at creation, shared by every guest, read-only to them. */
struct sv_guest_env {
	uv_loop_t *loop;
	const struct sv_route *route;   /* requests and events (request.h) */
	const char *run_dir;            /* absolute: the guests' runtime dirs are under it */
	const char *state_dir;          /* absolute: the image records */
	const char *lock_dir;           /* the guest locks (lock.h) */
	const uint8_t *host_key;        /* 32 bytes: authenticates save files */
	const char *log_dir;            /* the guests' log files (guestlog.h); NULL: none */
	uint64_t log_max;               /* rotate NAME.log past this size (0: never) */
	const struct sv_id_config *idc; /* who QEMU runs as */
	/* Whether /dev/kvm can create a VM (the owner may find out only
	 * now); NULL: it cannot. */
	bool (*kvm_usable)(void *owner);
	bool vhost_net;                 /* /dev/vhost-net can be opened (argv.h) */
	bool exiting;                   /* the owner is going away: no restarts */
	/* The way up, to the owner: g is stopped for good (the owner may
	 * finish an exit, or drop g); a state changed (tidy memory later); the
	 * uids of the other guests that run or are being started (a malloc'd
	 * array of *n, or NULL when out of memory). */
	void (*idle)(void *owner, struct sv_guest *g);
	void (*activity)(void *owner);
	/* A QMP reply came, ns after its command went out (for the QMP
	 * round-trip figures). NULL: nobody counts. */
	void (*qmp_replied)(void *owner, uint64_t ns);
	/* g's record changed: write it (state.json) soon. */
	void (*persist)(void *owner, struct sv_guest *g);
	/* The same, then w->done(w, g, 0) once a record written after this
	 * call is in place (or -errno when it could not be written). */
	void (*persist_then)(void *owner, struct sv_guest *g, struct sv_persist_wait *w);
	/* A start's intent (prepare.c): g's record as it is now (malloc'd
	 * text; NULL when out of memory), which the caller writes itself
	 * before the spawn, as the write that was due; record_end(g, err)
	 * once it tried, err 0 when it is in place. In between, no other
	 * write of the record begins; what changes is written after. */
	char *(*record_begin)(void *owner, struct sv_guest *g);
	void (*record_end)(void *owner, struct sv_guest *g, int err);
	uid_t *(*uids_taken)(void *owner, const struct sv_guest *except, size_t *n);
	/* Before a start's preparation: bring up the managed networks that
	 * g->run_profile's type = network NICs use, then done(g, 0, NULL), or
	 * done(g, -errno, why) (later, from the loop). NULL: no networks. */
	void (*networks_up)(void *owner, struct sv_guest *g,
	                    void (*done)(struct sv_guest *g, int rc, const char *msg));
	/* Bring the managed network up (hot-plug of a type = network NIC);
	 * done(arg, 0 or -errno, why) later, from the loop. */
	void (*network_up)(void *owner, const char *network,
	                   void (*done)(void *arg, int rc, const char *msg), void *arg);
	/* The bridge of a managed network, for the argv builder (sv_facts). */
	const char *(*net_bridge)(void *ctx, const char *network);
	void *net_ctx;
	void *owner;
	/* The features that observe every guest (NULL-terminated; NULL: none). */
	const struct sv_guest_observer *const *observers;
};

/* What qsupd writes on a QMP socket it connects to at start-up, before it
 * knows the QEMU there is ours (qmp_presend): the question a re-adoption
 * asks first, so that every QEMU answers while qsupd checks the next one.
 * A query changes nothing in QEMU; a connection not taken is closed. */
extern const char *const sv_guest_presend[1];

struct sv_guest {
	const struct sv_guest_env *env;
	const struct sv_route *route;   /* env->route */
	char *name;
	char *profile_path;
	struct sv_profile *profile;     /* as on disk now; NULL once removed */
	uint64_t digest;                /* of the profile file's bytes */
	struct sv_profile *run_profile; /* the one QEMU was started with */
	uint64_t run_digest;
	bool removed;                   /* profile gone: drop when stopped */

	enum sv_state state;
	char reason[1024];
	char accel[8];                  /* what the running QEMU uses */
	char rundir[4096];
	char qmp_path[108], serial_path[108];
	char *lock_path;                /* the guest lock (lock.h); NULL: none */
	int lock_fd;                    /* held by us (and our QEMU), or -1 */
	int qmp_prefd;                  /* start-up: QMP connected before the checks, with
	                                   sv_guest_presend written on it; or -1 */
	struct sv_identity ident;       /* QEMU's (the running one, or the last) */

	uv_process_t *proc;             /* one per QEMU: a closing handle is
	                                   never reused by the next start */
	int pid;
	uint64_t started_ms;            /* uv_now() at spawn */
	uint64_t up_ms;                 /* uv_now() when its start ended (a re-adopted
	                                   QEMU: started_ms); 0 until then */
	struct qmp_client *qmp;
	bool guest_shutdown;            /* SHUTDOWN with guest: true seen */
	bool force_kill;                /* kill requested */
	bool panicked;                  /* GUEST_PANICKED seen */
	bool internal_error;            /* QEMU in run state internal-error: ended */
	/* The last I/O error that stopped the guest (BLOCK_IO_ERROR with
	 * action stop): the profile's disk id, QEMU's words for it, and the
	 * operation. Empty: none since the guest last ran. */
	char io_disk[72], io_error[128], io_op[8];
	bool shutdown_seen;             /* any SHUTDOWN seen */
	char shutdown_reason[32];       /* the first SHUTDOWN's reason */
	unsigned reboots;               /* resets from inside the guest */
	enum sv_exit_class last_exit;
	unsigned long long proc_starttime;      /* /proc/PID/stat field 22 */
	/* Re-adoption (state.c): a QEMU started by an earlier qsupd. */
	bool adopted;                   /* not our child: watched by pidfd */
	bool adopting;                  /* QMP not yet back (both answers, adopt.c) */
	bool adopt_st_seen;             /* adopt.c: query-status answered */
	char adopt_st[32];              /* what it said ("" when it gave no status) */
	char adopt_was[16];             /* the state its state.json gave */
	bool adopt_ask_mig;             /* whether a migration may run: ask QEMU (adopt.c) */
	bool adopt_again;               /* adopt.c: no answer in time: reconnect, ask again */
	unsigned adopt_tries;           /* adopt.c: connections that gave no answer
	                                   (a verb waiting on the re-adoption ends) */
	bool mig_out;                   /* an outgoing migration or save may run in QEMU
	                                   (migrate.c): state.json says so before it starts */
	/* state.c: persist_then's waits, for the next write, and for the
	 * write in flight */
	struct sv_persist_wait *state_waiters, *state_writing;
	char *state_last;               /* state.c: the record as it was at exit,
	                                   written once the write in flight is done */
	bool persist_quiet;             /* this transition leaves state.json as it is */
	int pidfd;
	uv_poll_t *pidfd_poll;
	bool state_busy, state_dirty;   /* state.json write in flight / due */
	bool state_own;                 /* the write in flight is record_begin's */
	bool pending_start;             /* a start a qsupd restart interrupted */
	/* Health (probe.h): a query-status when QEMU has been silent too
	 * long; no reply within its deadline marks the guest unresponsive
	 * until QEMU answers again. */
	uv_timer_t probe;
	bool probing, unresponsive;
	uint64_t probe_done, probe_busy_since;
	uint64_t probe_look;             /* probe.c: the last look found it idle */
	uint32_t probe_seed, probe_rnd;
	struct sv_hp *hp;               /* hot-plug (hotplug.c); NULL: none */
	struct sv_mig *mig;             /* a migration, save or restore (migrate.c) */
	bool start_incoming;            /* the start is for an incoming migration */
	struct sv_taint *taint;         /* qmp passthrough (passthrough.c); NULL: none */
	struct sv_media *media;         /* CD-ROM media (media.c); NULL: none yet */
	struct sv_agent *agent;         /* the guest agent (agent.c); NULL: none */
	const char *busy_op;            /* an offline disk operation runs on the
	                                   guest's images (clone, disk-resize):
	                                   starts are refused; NULL: none */
	struct sv_snap_op *snap;        /* a snapshot operation (snapshot_int.h); NULL: none */
	struct sv_tune *tune;           /* limits, pinning, balloon (tune.c); NULL: none yet */
	struct sv_backup_op *backup;    /* a backup or backup-restore (backup.c); NULL: none */
	/* VNC: the display QEMU listens on (chosen at start for vnc-display =
	 * auto, read back with query-vnc after a re-adoption; -1: none or not
	 * known), and the password to set over QMP before cont (wiped once
	 * sent; "": none). */
	int vnc_display;
	char vnc_password[16];
	json_t *created;                /* what the last start created: image files
	                                   and directories (paths); NULL: nothing */
	uint64_t console_peer;          /* the control client that holds the
	                                   console (the daemon's); 0: none */
	struct sv_restart_state rs;
	uint64_t next_start_ms;         /* backoff: uv_now() of the next try */
	enum sv_state expect;           /* an operator's pause/resume in flight */
	const char *expect_reason;

	/* Before QEMU: prepare.c's work, the argv it will run and the fds it
	 * will inherit (pass_fds[i] for start_argv.fds[i]). */
	bool prepping;
	bool prep_abort, prep_vars_done, prep_copying, prep_working;
	size_t prep_index;
	uv_process_t *prep_proc;
	uv_fs_t prep_fs;
	struct sv_prep *prep;           /* what the thread-pool steps found */
	struct sv_argv start_argv;
	int *pass_fds;
	char (*pass_taps)[SV_IFNAMSIZ];
	uv_timer_t deadline;            /* spawn until running: start-timeout */
	char start_fail[256];           /* why qsupd ended a start (deadline...) */
	bool start_config_error;        /* the start failed on the profile itself */
	/* Who started this run: the restart policy (the guest ran before and
	 * ended), or anyone else (the operator, autostart, a restore...). A
	 * start that fails before the guest runs is retried by the policy only
	 * when the policy started it: else the start fails once, with its
	 * message, and the guest is stopped (supervise.c). */
	bool policy_start;              /* set just before sv_guest_start() by the
	                                   restart timer, which it clears */
	bool run_by_policy;             /* this run's start came from the policy */
	bool reborn;                    /* found in prelaunch: kill, start afresh */

	/* The guest's log file, LOGDIR/NAME.log (runlog.c): why the next and
	 * the current run started, where this run's QEMU output begins (and
	 * the file's inode then), what the last run left (status). */
	char start_why[96];             /* set just before sv_guest_start() by the
	                                   one who starts (autostart, restart...),
	                                   which clears it; "": the operator */
	char run_why[96];
	int run_pid;                    /* the QEMU of the lines, 0: none */
	int64_t log_offset;             /* -1: unknown */
	uint64_t log_ino;
	bool log_warned;                /* a write failed this run: said once */
	json_t *last_tail;              /* array of the last run's last lines */

	uv_timer_t timer;               /* the stop ladder */
	int stop_step;
	uint64_t stop_began;            /* uv_now() of the first ACPI press */
	uint64_t stop_timeout_ms;       /* this stop's ACPI wait; 0: the profile's */
	unsigned presses;               /* ACPI presses in this stop */
	bool stop_asked;                /* this stop asked an observer's guest_shutdown */
	/* Who stopped it last: the operator's stop (wall-clock ms; 0 when the
	 * last stop was not the operator's), and the host boot (boot_id) in
	 * which autostart last applied to it: once per boot (qsupd(8)). */
	int64_t operator_stop_ms;
	char autostart_boot[40];
	struct sv_waiter *waiters;
	int handles;                    /* holds (sv_guest_hold), for freeing */
	bool freeing;
};

/* Allocate a guest in env for profile p (taken) read from path, with the file's
 * digest. Returns NULL when out of memory (or when its run dir paths would
 * be too long). */
struct sv_guest *sv_guest_new(const struct sv_guest_env *env, const char *path,
                              struct sv_profile *p, uint64_t digest);

/* Close the guest's handles and free it once they are closed. QEMU is left
 * running (the daemon's default on exit). */
void sv_guest_release(struct sv_guest *g);

/* Start QEMU (the guest must be stopped or failed). req, if not NULL, is
 * answered once the guest runs or the start fails. Returns 0, or a negative
 * errno with the reason in err (req is then not answered). */
int sv_guest_start(struct sv_guest *g, struct sv_request *req, struct sv_error *err);

/* The operator's start (the start verb): a guest that is up (running or
 * paused) answers req at once with its status and "already": true; one
 * being started answers it when that start is over; else sv_guest_start().
 * Returns 0, or a negative errno with the reason in err. */
int sv_guest_start_op(struct sv_guest *g, struct sv_request *req, struct sv_error *err);

/* The QEMU argv qsupd runs for g with profile p, its runtime files under
 * run_dir, the sockets handed over as fds 3 and 4 (sv_argv_build's
 * result), without backing chains (those are read from the images at
 * start). */
int sv_guest_argv(struct sv_guest *g, const struct sv_profile *p, const char *run_dir,
                  bool incoming, struct sv_argv *out, struct sv_error *err);

/* The argv builder's facts for g on this host (its run dir, fds 3 and 4). */
void sv_guest_facts(struct sv_guest *g, bool incoming, struct sv_facts *f);

/* Stop: ACPI power-off, pressed again every few seconds until timeout_ms
 * (0: the profile's shutdown-timeout) is spent, then the guest agent's
 * guest-shutdown when an agent answers (SV_GUEST_SHUTDOWN_MS), then quit,
 * SIGTERM, SIGKILL; force starts at quit. Each step is a STOP_PROGRESS event. req
 * is answered once QEMU has exited; at once, with "already": true in the
 * status, when no QEMU runs. */
int sv_guest_stop(struct sv_guest *g, bool force, uint64_t timeout_ms,
                  struct sv_request *req, struct sv_error *err);

/* SIGKILL QEMU now; req is answered once it has exited (at once, with
 * "already": true, when no QEMU runs). */
int sv_guest_kill(struct sv_guest *g, struct sv_request *req, struct sv_error *err);

/* Stop if running, then start; req is answered once it runs again. */
int sv_guest_restart(struct sv_guest *g, struct sv_request *req, struct sv_error *err);

/* Leave `failed` for `stopped`, forgetting the restart window (the state of
 * other guests is left alone). req gets the status. */
void sv_guest_reset_failed(struct sv_guest *g, struct sv_request *req);

/* pause (QMP stop), resume (cont), reset (system_reset): req is answered
 * with the status once QEMU has replied. */
int sv_guest_simple(struct sv_guest *g, const char *verb, struct sv_request *req,
                    struct sv_error *err);

/* Pass one QMP command through; req gets QEMU's reply or error intact.
 * The checks come first: the qmp verb is sv_passthrough_qmp(). */
int sv_guest_qmp(struct sv_guest *g, const char *command, json_t *args,
                 struct sv_request *req, struct sv_error *err);

/* The status object of the control protocol (a new reference). */
json_t *sv_guest_status(struct sv_guest *g);

/* True while a QEMU process exists for the guest. */
bool sv_guest_active(const struct sv_guest *g);

/* True while g's QEMU is up and its QMP takes commands: not while a
 * re-adoption still waits for its answers (g->adopting). */
bool sv_guest_qmp_up(const struct sv_guest *g);

/* The profile g's QEMU runs with while there is one, else the current one
 * (what a start would use). Not the started one during preparation:
 * g->run_profile is set from then on. */
const struct sv_profile *sv_guest_profile_now(const struct sv_guest *g);

/* For prepare.c: preparation finished (status 0) or failed (msg says why). */
void sv_guest_prepared(struct sv_guest *g, int status, const char *msg);

/* g's record changed (a device, a taint, a SHUTDOWN seen): the owner
 * writes it soon, so that a later qsupd re-adopts the guest with it. */
void sv_guest_persist(struct sv_guest *g);
/* The same, then w->done(w, g, err) once it is written (err 0) or could
 * not be (-errno; -ECANCELED when g went first): for what must be on
 * record before QEMU is asked to do it. w stays the caller's, and must
 * stay valid until done is called or the wait is cancelled. */
void sv_guest_persist_then(struct sv_guest *g, struct sv_persist_wait *w);
/* Take w out of g's queue (its done is not called); nothing if it is not
 * there. */
void sv_guest_persist_cancel(struct sv_guest *g, struct sv_persist_wait *w);

/* The guest's holds: every libuv handle, request or thread-pool job that
 * refers to g holds it, sv_guest_hold() when it starts and
 * sv_guest_unhold() once it is over (or did not start after all). A
 * released guest is freed when its last hold goes. */
void sv_guest_hold(struct sv_guest *g);
void sv_guest_unhold(struct sv_guest *g);

/* Close h, a malloc'd handle holding g (its data is overwritten), then
 * free it and drop the hold. */
void sv_guest_close_free(struct sv_guest *g, uv_handle_t *h);

/* The last lines of a log file in g's runtime dir, joined with "; ". */
void sv_guest_log_tail(struct sv_guest *g, const char *file, char *buf, size_t size);

/* g's log file (LOGDIR/NAME.log) into buf. Returns 0, or -ENOENT when
 * there is no log dir, -ENAMETOOLONG. */
int sv_guest_log_path(const struct sv_guest *g, char *buf, size_t size);

/* Append a lifecycle line "TIME qsup: TEXT" to g's log file (guestlog.h).
 * A failure is logged, once per start: it never stops the guest. */
void sv_guest_log_line(struct sv_guest *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- for the features: what they may do to a guest ---- */

/* The one transition function: check it against the table of legal
 * transitions (machine.h), then set, log, save and emit GUEST_STATE.
 * An illegal transition is a bug: it is logged as one and refused (state
 * and reason unchanged, nothing saved or emitted). Returns true when the
 * transition was made. */
bool sv_guest_transition(struct sv_guest *g, enum sv_state to, const char *reason);

/* Send sig to QEMU: through the process handle for our child, through the
 * pidfd for an adopted one. */
void sv_guest_signal(struct sv_guest *g, int sig);

/* The start is over (running, or an incoming QEMU listening): no deadline. */
void sv_guest_start_done(struct sv_guest *g);

#endif
