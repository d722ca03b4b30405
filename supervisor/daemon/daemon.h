/*
 * The daemon: its options, its one libuv loop, the guests (one per profile),
 * the control socket and the signals. Everything qsupd does happens on
 * d->loop; nothing here blocks it.
 */
#ifndef SV_DAEMON_H
#define SV_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include <uv.h>

#include "guest.h"
#include "identity.h"
#include "request.h"
#include "util.h"

struct sv_guest;
struct sv_client;
struct sv_managed;
struct sv_netmgr;
struct sv_metrics;

struct sv_daemon_opts {
	const char *profile_dir;
	const char *networks_dir;   /* the managed networks' definitions */
	const char *run_dir;
	const char *socket_path;    /* NULL: RUN_DIR/qsupd.sock */
	const char *state_dir;      /* NULL: the default (see main.c) */
	const char *log_dir;        /* the guests' log files (guestlog.h) */
	uint64_t log_max;           /* rotate a guest's log past this (0: never) */
	bool log_max_set;
	bool stop_guests_on_exit;   /* default: guests outlive the daemon */
	bool no_autostart;
	uid_t uid_first;            /* per-guest uids (identity.h); count 0: */
	uint32_t uid_count;         /* the default range */
	mode_t socket_mode;         /* of the control socket; 0: SV_CONTROL_MODE */
	const char *socket_group;   /* as given (name or gid), for messages; NULL: none */
	gid_t socket_gid;           /* with socket_group: the socket's group, whose
	                             * members may use every verb */
	unsigned idle_timeout;      /* seconds a new client has to send a request;
	                             * 0: SV_CONTROL_IDLE_TIMEOUT */
	unsigned stats_interval;    /* seconds between stats rounds; 0: the default
	                             * (metrics.h) */
	const char *metrics_listen; /* ADDR:PORT of /metrics over HTTP; NULL: none */
};

struct sv_daemon {
	uv_loop_t *loop;
	struct sv_daemon_opts opts;
	char *profile_dir;          /* absolute */
	char *run_dir;              /* absolute */
	char *socket_path;
	char *state_dir;            /* absolute: the host key, image records */
	char *log_dir;              /* absolute: the guests' log files; NULL: none */
	char lock_dir[4096];        /* guest locks (lock.h) */
	uint8_t host_key[32];       /* authenticates save files (statedir.h) */
	int rundir_lock;            /* RUN_DIR/qsupd.lock, held for life */
	struct sv_id_config idc;    /* who QEMU runs as */
	/* Whether /dev/kvm can create a VM: known once the probe on the
	 * thread pool is back, or a start asked first (daemon.c) */
	bool kvm_known, kvm_usable;
	char kvm_why[256];          /* why KVM is not usable */
	uv_work_t kvm_work;
	uv_timer_t kvm_timer;       /* then the pool's probe */
	int kvm_work_rc;            /* the pool's probe: its answer and why */
	char kvm_work_why[256];

	struct sv_netmgr *netmgr;   /* the managed networks (netmgr.h) */
	struct sv_guest **guests;   /* sorted by name */
	size_t nguests, guests_cap;

	struct sv_route route;      /* answers and events to the clients (control.c) */
	struct sv_guest_env env;    /* what every guest sees of the above */
	uv_pipe_t server;
	bool server_open;
	struct sv_client *clients;
	size_t nclients;
	size_t max_clients;         /* see control.h */
	uint64_t refusal_log_at;    /* loop time before which refusals are counted, not logged */
	unsigned refusals_unlogged;
	struct sv_route self_route;    /* qsupd's own requests (managed.c) */
	struct sv_managed *managed;     /* managed restores in flight */
	uint64_t managed_peers;
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t trim;            /* sv_daemon_trim_later() */
	struct sv_waiting *waiting; /* requests waiting for a re-adoption (commands.c) */
	uv_timer_t rerun;           /* runs them again once it is over */
	bool rerun_ready;
	uv_timer_t flush;           /* state files due this loop turn (state.c) */
	bool flush_ready;
	struct sv_guest **dirty;    /* their guests, each held */
	size_t ndirty, dirty_cap;
	bool trim_ready;
	struct sv_metrics *metrics; /* stats and metrics (metrics.h) */
	bool exiting, finished;
	bool killing;               /* a second signal: guests are being killed */
	int exit_code;
};

/* Set up d on loop: resolve and create the dirs, probe KVM, load every
 * profile (bad ones are logged and skipped), listen on the control socket
 * (refusing when another qsupd answers there). Returns 0 or a negative
 * errno with the reason in err. */
int sv_daemon_init(struct sv_daemon *d, uv_loop_t *loop,
                   const struct sv_daemon_opts *o, struct sv_error *err);

/* Start the autostart guests, tell systemd READY=1 when NOTIFY_SOCKET is set,
 * and run the loop until a signal ends the daemon. Returns the exit code. */
int sv_daemon_run(struct sv_daemon *d);

/* Give free heap pages back to the system a second after activity (a
 * guest state change, a client gone) dies down. A burst of 50 starts leaves
 * some 400 KiB free but resident between live blocks. */
void sv_daemon_trim_later(struct sv_daemon *d);

/* Free what sv_daemon_init() allocated (the loop must be done). */
void sv_daemon_free(struct sv_daemon *d);

/* The guest named name, or NULL. */
struct sv_guest *sv_daemon_guest(struct sv_daemon *d, const char *name);

/* Re-read the profile dir. Fills result with {"added", "removed", "changed",
 * "errors"}; a running guest keeps the configuration it started with. */
json_t *sv_daemon_reload(struct sv_daemon *d);

/* The whole daemon: init, run until a signal, free. Logs errors; returns
 * the process exit code (0, or 1 when it could not start). */
int sv_daemon_main(const struct sv_daemon_opts *o);

/* Send a line to systemd when NOTIFY_SOCKET is set ("READY=1"...). */
void sv_notify(const char *state);

#endif
