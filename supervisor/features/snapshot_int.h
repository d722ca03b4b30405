/*
 * Internal to snapshots (snapshot.h): an operation's record and what its
 * files share.
 *
 * snapshot.c    the operation (its end and failure, qsupd's own requests),
 *               the snapshot record, the verb (list, each action set up)
 * snapcreate.c  create and revert: the new overlays, the switch, --memory
 * snapdelete.c  delete: the merges (block-stream, qemu-img rebase), the
 *               observer of their block jobs
 */
#ifndef SV_SNAPSHOT_INT_H
#define SV_SNAPSHOT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "agent.h"
#include "blockadd.h"
#include "guest.h"
#include "opwork.h"
#include "request.h"
#include "snapshot.h"
#include "step.h"

enum { CREATE, REVERT, DELETE };

struct sdisk {
	char id[SV_ID_MAX + 1];
	char *base;                     /* the profile's file */
	char *top, *topfmt;             /* the active image now */
	char *layer, *layerfmt;         /* revert: the snapshot's; delete: the one to merge */
	char *over;                     /* create, revert: the new overlay */
	char *child;                    /* delete: the image above layer; NULL: none */
	char *below, *belowfmt;         /* delete: layer's backing file */
	int poschild, posbelow;         /* delete: their place in the running chain; -1 */
	char node[64], bnode[64], lnode[64];
	char newnode[48];
	uint64_t size;
	int fd, fdset, lfdset;
	bool made, added, skip, streamed;
};

struct sv_snap_op {
	struct sv_opwork work;          /* off the loop: rc, err */
	struct sv_guest *g;
	struct sv_request *req;
	int action;
	char snap[72];
	bool force, live, waiting_job, gone;
	bool memory, was_paused;        /* with the guest's RAM state */
	bool paused_by_us;              /* resume it on a failure */
	char *mem;                      /* its state file; NULL: none */
	void (*inext)(struct sv_snap_op *, json_t *msg);   /* an internal request's answer */
	char recpath[4200];
	json_t *rec;                    /* the record before (never NULL) */
	json_t *newrec;                 /* after */
	bool had_rec;
	struct sdisk *d;
	size_t n, i;
	struct sv_freeze fz;            /* the agent's freeze around the switch */
	struct sv_blockadd ba;          /* the new overlays into QEMU */
	struct sv_blockadd_item *bitems;
	struct sv_route route;          /* the internal stop of revert --force */
	json_t *nodes;
	json_t *result;
	json_t *hp;                     /* the hot-plug overlay's disks (sv_snapshot_hp_disks) */
	json_t *flat;                   /* delete of the last one: sv_snapflat's result */
	char why[600];
};

/* snapshot.c */

void snap_op_end(struct sv_snap_op *op);
/* Fail op (a guest paused for it resumed) and end it. */
void snap_op_fail(struct sv_snap_op *op, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A request whose answer goes to next(op, msg). NULL: out of memory. */
struct sv_request *snap_ireq(struct sv_snap_op *op, const char *verb,
                             void (*next)(struct sv_snap_op *, json_t *));
/* An internal request's error ("desc"), or NULL. */
const char *snap_answer_err(json_t *msg);
/* Is file some snapshot's layer in rec? */
bool snap_is_layer(json_t *rec, const char *file);
/* Off the loop: op->newrec written (removed when empty). */
void snap_write_new(void *arg);
/* Fail with op->work.err's message after undoing: the old record back,
 * the new overlays gone. */
void snap_undo(struct sv_snap_op *op);

/* snapcreate.c */

/* create: the overlays made (stopped), or QEMU's block devices first
 * (live: query-block's answer to snap_on_blocks); --memory: the guest's
 * pause answered first (snap_on_paused). */
void snap_create_img(struct sv_snap_op *op);
void snap_on_blocks(void *ctx, const struct qmp_result *r);
void snap_on_paused(struct sv_snap_op *op, json_t *msg);
/* revert: the overlays made (the guest stopped), or after the internal
 * stop of --force (snap_on_stopped, op->route's answer). */
void snap_revert_img(struct sv_snap_op *op);
void snap_on_stopped(void *arg, uint64_t peer, json_t *msg);

/* snapdelete.c */

/* delete: off the loop, each layer's chain read (snap_delete_read), then
 * the merges (snap_delete_read_done). */
void snap_delete_read(void *arg);
void snap_delete_read_done(void *arg);

#endif
