/*
 * Internal to migration (migrate.c, mig_source.c, mig_dest.c, mig_save.c,
 * mig_copy*.c):
 * the record of a migration, save or restore in progress, and what the
 * files share.
 *
 * migrate.c    the record, the answers, what both ends must agree on, the
 *              QMP steps, QEMU's events, re-adoption and the end
 * mig_source.c the source of a live migration (and its progress, postcopy,
 *              cancel)
 * mig_dest.c   the destination (incoming)
 * mig_save.c   save to a file and restore from one
 * mig_copy.c   without shared storage (copy-storage): the destination's
 *              new images and NBD exports, the source's mirrors into them
 *              (with mig_copy_source.c, mig_copy_dest.c: mig_copy_int.h)
 */
#ifndef SV_MIGRATE_INT_H
#define SV_MIGRATE_INT_H

#include "argv.h"
#include "request.h"
#include "guest.h"
#include "hotplug.h"
#include "log.h"
#include "migrate.h"
#include "peer.h"
#include "qmp.h"
#include "savefile.h"
#include "sshlink.h"
#include "step.h"

#define PROGRESS_MS 500u
#define PEER_TIMEOUT_MS 60000u
/* qsup's default bandwidth cap: none to speak of (QEMU's own default,
 * 128 MiB/s, is far below what a local or LAN link carries). */
#define DEFAULT_BANDWIDTH (1ull << 40)

enum role { ROLE_OUT, ROLE_IN, ROLE_SAVE, ROLE_RESTORE };
extern const char *const mig_role_names[];   /* "source"... */

struct sv_mig {
	enum role role;
	struct sv_request *req;         /* answered at the end (or, incoming: listening) */
	bool wait;                      /* migrate: answer at the end */
	json_t *args;                   /* the verb's arguments */
	char uri[640];
	char qemu_uri[640];             /* incoming: what QEMU listens on, when it
	                                   differs from uri (its dir's fd path) */
	char *to;                       /* migrate --to: the destination's control socket */
	struct sv_peer *peer;
	bool tunnel;                    /* migrate --to ssh:// --tunnel: the stream
	                                   through ssh (link) */
	struct sv_sshlink *link;
	char *file;                     /* save, restore */
	char *header;                   /* save: the file's header, until it is made */
	char *tmp;                      /* save: the new file, until renamed */
	int fd;                         /* save: the new file; restore: until
	                                   QEMU has it */
	bool was_paused;                /* source; destination: the source's */
	bool started;                   /* QEMU is migrating (source) */
	bool ending, completed;
	bool post;                      /* re-adopted in postmigrate: the source's end */
	const char *ev_end;             /* source: how QEMU's MIGRATION event said it
	                                   ended (completed, failed, cancelled); NULL */
	bool adopt_query;               /* re-adopted: waits for query-migrate's answer */
	struct sv_persist_wait intent;  /* source, save: its mig_out_intent (migrate.c) */
	void (*intent_go)(struct sv_guest *g);   /* ... and what follows once recorded */
	bool postcopy;                  /* switched to postcopy */
	int final_tries;                /* query-migrate until the figures are in */
	json_int_t postcopy_after;      /* switch after this many passes (0: never) */
	const char *status;             /* QEMU's last migration status */
	uv_timer_t *timer;              /* progress and timeout */
	uint64_t started_ms, timeout_ms;
	json_t *last;                   /* the last query-migrate */
	json_t *fig;                    /* completed: the reply, once QEMU is gone */
	/* copy-storage (mig_copy*.c) */
	json_t *handover;               /* source: what `incoming` gets, until sent */
	bool copy;                      /* the disks travel too */
	bool mirroring;                 /* source: the mirrors run (before RAM, or with it) */
	bool switching;                 /* source: paused before switch-over, mirrors ending */
	bool in_done;                   /* destination: the stream is in (keep the images) */
	json_t *disks;                  /* [{id, node, format, size, file, ...}] */
	size_t ci;                      /* the disk being set up (or created) */
	size_t nready, nended;          /* source: mirrors in sync; finished */
	char nbd[640];                  /* the destination's NBD address (unix:/tcp:) */
	struct sv_sshlink **nbd_links;  /* source, to an ssh:// host with a unix NBD */
	size_t nnbd_links;              /* export: each disk's connection, through ssh */
	json_t *created;                /* destination: the images it made, for a failure */
	uv_process_t *img;              /* destination: qemu-img create running */
	int nbd_fd;                     /* destination: its listening socket until QEMU has it */
	json_int_t disk_done, disk_total;   /* source: the mirrors' progress */
	json_t *answer;                 /* source: the destination's, while TLS is set up */
	json_t *layers;                 /* snapshot chains: the backing layers to copy
	                                   (source), the images to create (destination) */
	size_t li;                      /* the layer being copied (or created) */
	bool layering;                  /* source: the backing layers are being copied */
	char psk[65];                   /* [migration] tls = psk: this migration's key (hex) */
	void (*tls_next)(struct sv_guest *g);   /* once the credentials are in QEMU */
};

/* migrate.c: the profile QEMU runs with; a string member; the record's
 * life and answers; what both ends compare and set; steps (dropped once
 * the migration is over); a failed step's message. */
const struct sv_profile *mig_prof(struct sv_guest *g);
const char *mig_str(json_t *o, const char *key);
void mig_free(struct sv_guest *g);
struct sv_mig *mig_new(struct sv_guest *g, enum role role, struct sv_request *req,
                       json_t *args);
void mig_answer_ok(struct sv_guest *g, json_t *ret);
void mig_answer_err(struct sv_guest *g, const char *cls, const char *msg);
json_t *mig_profile_argv(struct sv_guest *g, struct sv_error *err);
char *mig_argv_mismatch(struct sv_guest *g, json_t *theirs);
json_t *mig_caps_json(struct sv_guest *g, json_t *args, bool file);
json_t *mig_params_json(struct sv_guest *g, json_t *args);
void mig_mstep_fd(struct sv_guest *g, const char *cmd, json_t *args, int fd, sv_step_fn fn);
void mig_mstep(struct sv_guest *g, const char *cmd, json_t *args, sv_step_fn fn);
void mig_step_error(const struct qmp_result *r, const char *what, char *buf, size_t size);
/* A failed step that ends nothing, logged as a warning (nothing when it
 * went well). */
void mig_step_warn(struct sv_guest *g, const char *what, const struct qmp_result *r);
/* Source and save: before QEMU is asked for anything of it, state.json
 * says that a migration may run (sv_guest.mig_out), so that a qsupd that
 * re-adopts the guest asks QEMU (adopt.c); then go(g). A record that
 * cannot be written ends the migration with an error. */
void mig_out_intent(struct sv_guest *g, void (*go)(struct sv_guest *g));
/* Connects to the unix socket path on the loop, the guest held meanwhile,
 * and calls fn with the connected fd (to hand to QEMU with getfd; closed
 * once fn returns) or -1 and status < 0. fn is not called when the guest
 * is being freed or its migration ended meanwhile. */
typedef void (*mig_conn_fn)(struct sv_guest *g, int fd, int status);
void mig_unix_connect(struct sv_guest *g, const char *path, mig_conn_fn fn);
/* mig_source.c: the figures of a query-migrate; progress polling; the
 * source's abort and start; the argv handed to the destination; the
 * source's checks (answering req when it is not ready). */
json_t *mig_figures(struct sv_guest *g, json_t *info);
void mig_on_progress(void *arg, const struct qmp_result *r);
void mig_poll_now(struct sv_guest *g);
void mig_timer_start(struct sv_guest *g);
void mig_kill_destination(struct sv_guest *g);
void mig_out_abort(struct sv_guest *g, const char *cls, const char *why);
void mig_out_begin(struct sv_guest *g);
json_t *mig_handover(struct sv_guest *g, json_t *argv);
bool mig_snaprec_ok(struct sv_guest *g, struct sv_request *req);
bool mig_source_ready(struct sv_guest *g, struct sv_request *req, json_t *args);
/* mig_dest.c: the incoming stream is complete; the destination's setup
 * failed (answered with why, its QEMU ended); the destination's checks;
 * start QEMU to wait for the stream. */
void mig_in_completed(struct sv_guest *g);
void mig_in_abort(struct sv_guest *g, const char *cls, const char *why);
bool mig_dest_ready(struct sv_guest *g, struct sv_request *req, json_t *args);
void mig_dest_start(struct sv_guest *g, json_t *args);
void mig_in_setup_caps(struct sv_guest *g);
void mig_in_resume(struct sv_guest *g);
/* mig_source.c: send the handover to the destination (m->handover). */
void mig_ask_destination(struct sv_guest *g);
/* mig_copy*.c. Source: the disks into m->handover (query-block first),
 * then mig_ask_destination; the mirrors once the destination answered
 * copy-storage; the MIGRATION pre-switchover status; block job events;
 * the disk figures. Destination: decide (true: answered, or underway),
 * the exports once QEMU waits, the end. Both: the release of what copy-
 * storage holds when the migration record goes; re-adoption. */
void mc_out_prepare(struct sv_guest *g);
void mc_out_begin(struct sv_guest *g, json_t *ret);
void mc_out_switchover(struct sv_guest *g);
void mc_job_event(struct sv_guest *g, const char *name, json_t *data);
void mc_poll(struct sv_guest *g);
void mc_figures(struct sv_guest *g, json_t *o);
bool mc_in_prepare(struct sv_guest *g, json_t *args);
void mc_in_export(struct sv_guest *g);
void mc_in_completed(struct sv_guest *g);
void mc_release(struct sv_guest *g, struct sv_mig *m);
void mc_adopt(struct sv_guest *g);
/* Destination: a re-adopted incoming QEMU takes the record of the images
 * created for it (mc_in_adopt); a guest whose QEMU is gone has them
 * removed (mc_in_stale). */
void mc_in_adopt(struct sv_guest *g);
void mc_in_stale(struct sv_guest *g);
/* TLS-PSK ([migration] tls = psk). Source: the key into m->handover;
 * after the destination's answer (kept), the credentials, then the copy
 * or the stream. Destination: take the source's key (true: refused); the
 * credentials once QEMU waits, then in_next. */
void mc_out_answered(struct sv_guest *g, json_t *ret);
bool mc_in_tls(struct sv_guest *g, json_t *args);
void mc_in_tls_setup(struct sv_guest *g, void (*in_next)(struct sv_guest *g));

#endif
