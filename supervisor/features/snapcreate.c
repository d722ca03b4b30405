/* Snapshot create and revert (snapshot_int.h; the whole is told in
 * snapshot.h): each disk's new overlay, the switch in QEMU, --memory's save
 * and restore. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdpass.h"
#include "hotplug.h"
#include "log.h"
#include "migrate.h"
#include "snaprec.h"
#include "snapshot_int.h"

/* ---- the new overlays: create, revert ---- */

/* qemu-img makes disk op->i's overlay (args); next(op, ok) when it ends. */
static void make_overlay(struct sv_snap_op *op, const char *const *args,
                         void (*next)(void *op, bool ok))
{
	int rc = sv_opwork_img(&op->work, args, next);
	if (rc < 0) {
		sv_error_set(&op->work.err, rc, "cannot run qemu-img: %s", uv_strerror(rc));
		snap_undo(op);
	}
}

/* qemu-img has ended for disk op->i's overlay, which is ours now (a partial
 * file too: snap_undo removes it). True: on to the next disk; false: undone. */
static bool overlay_made(struct sv_snap_op *op, bool ok)
{
	struct sdisk *d = &op->d[op->i];
	d->made = true;
	if (!ok) {
		char tail[600];
		sv_opwork_img_tail(&op->work, tail, sizeof(tail));
		sv_error_set(&op->work.err, -EIO, "disk %s: qemu-img create %s: %s", d->id,
		             d->over, tail);
		snap_undo(op);
		return false;
	}
	op->i++;
	return true;
}

/* The reply's "disks": each disk's new overlay. */
static json_t *overlays(struct sv_snap_op *op)
{
	json_t *disks = json_object();
	for (size_t i = 0; i < op->n; i++)
		json_object_set_new(disks, op->d[i].id, json_string(op->d[i].over));
	return disks;
}

/* ---- create ---- */

static void create_reply(struct sv_snap_op *op);
static void revert_reply(struct sv_snap_op *op);
static void save_memory(struct sv_snap_op *op);
static void restore_memory(struct sv_snap_op *op);

static void create_reply(struct sv_snap_op *op)
{
	sv_log(SV_LOG_INFO, op->g->name, "snapshot %s taken (%zu disk%s, %s)", op->snap, op->n,
	       op->n == 1 ? "" : "s", op->live ? "live" : "guest stopped");
	json_t *ret = json_pack("{s:s, s:s, s:o, s:b, s:s}", "snapshot", op->snap,
	                        "action", "create", "disks", overlays(op), "live", op->live,
	                        "freeze", op->live ? op->fz.how : "guest stopped: not needed");
	if (op->mem)
		json_object_set_new(ret, "memory", json_string(op->mem));
	json_object_set_new(ret, "state", json_string(sv_state_name(op->g->state)));
	sv_reply_ok(op->req, ret);
	op->req = NULL;
	snap_op_end(op);
}

static void drop_added(struct sv_snap_op *op)
{
	if (op->bitems)
		sv_blockadd_drop(op->g, op->bitems, op->n);
}

static void on_transaction(void *ctx, const struct qmp_result *r)
{
	struct sv_snap_op *op = ctx;
	sv_freeze_end(op->g, &op->fz);
	if (r->status != 0) {
		drop_added(op);
		sv_error_set(&op->work.err, -EIO, "QEMU refused the switch to the overlays: %s",
		             r->err_desc ? r->err_desc : qmp_strerror(r->status));
		snap_undo(op);
		return;
	}
	if (op->memory)
		save_memory(op);
	else
		create_reply(op);
}

/* The guest's file systems are frozen through its agent (agent.h) around
 * the switch, when it answers; the reply's "freeze" says what happened. A
 * freeze is thawed on every path after the switch, and by the agent code
 * itself at the latest SV_AGENT_FREEZE_MAX_MS later. */
static void do_switch(void *arg)
{
	struct sv_snap_op *op = arg;
	json_t *acts = json_array();
	for (size_t i = 0; i < op->n; i++)
		json_array_append_new(acts, json_pack("{s:s, s:{s:s, s:s}}", "type",
		                      "blockdev-snapshot", "data", "node", op->d[i].node, "overlay",
		                      op->d[i].newnode));
	sv_step(op->g->qmp, NULL, "transaction", json_pack("{s:o}", "actions", acts), -1,
	        on_transaction, op);
}

/* Each overlay into QEMU as a node of its own (blockadd.h), then the
 * switch. */
static void on_all_added(void *arg, const char *err)
{
	struct sv_snap_op *op = arg;
	if (err) {
		drop_added(op);
		sv_error_set(&op->work.err, op->ba.gone ? -ESRCH : -EIO, "%s", op->ba.gone
		             ? "QEMU ended during the snapshot" : err);
		snap_undo(op);
		return;
	}
	/* Freeze if the agent answers, then switch. With --memory the guest
	 * is paused: its RAM and disks are of one moment anyway. */
	sv_freeze_begin(op->g, &op->fz, op->paused_by_us, "snapshot", do_switch, op);
}

static void add_next(struct sv_snap_op *op)
{
	op->bitems = calloc(op->n ? op->n : 1, sizeof(*op->bitems));
	if (!op->bitems) {
		sv_error_set(&op->work.err, -ENOMEM, "out of memory");
		snap_undo(op);
		return;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct sdisk *d = &op->d[i];
		struct sv_blockadd_item *it = &op->bitems[i];
		*it = (struct sv_blockadd_item){ .disk = d->id, .path = d->over, .node = d->newnode,
		                                 .fd = &d->fd, .fdset = &d->fdset, .added = &d->added };
		snprintf(it->fnode, sizeof(it->fnode), "file.%s", d->newnode + 6);
	}
	op->ba = (struct sv_blockadd){ .g = op->g, .items = op->bitems, .n = op->n,
	                               .done = on_all_added, .arg = op };
	sv_blockadd_run(&op->ba);
}

/* Off the loop: the record with the new chain (before the switch: see
 * snapshot.h), and the overlays opened for QEMU. */
static void create_work(void *arg)
{
	struct sv_snap_op *op = arg;
	for (size_t i = 0; op->live && i < op->n; i++)
		if ((op->d[i].fd = sv_fdpass_file(op->d[i].over, O_RDWR, &op->work.err)) < 0) {
			op->work.rc = op->d[i].fd;
			op->d[i].fd = -1;
			return;
		}
	snap_write_new(op);
}

static void create_written(void *arg)
{
	struct sv_snap_op *op = arg;
	if (op->work.rc < 0) {
		snap_undo(op);
		return;
	}
	if (!op->live) {
		create_reply(op);
		return;
	}
	op->i = 0;
	add_next(op);
}

static void on_created(void *arg, bool ok)
{
	if (overlay_made(arg, ok))
		snap_create_img(arg);
}

void snap_create_img(struct sv_snap_op *op)
{
	if (op->i == op->n) {
		sv_opwork_run(&op->work, create_work, create_written);
		return;
	}
	struct sdisk *d = &op->d[op->i];
	char size[32];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)d->size);
	/* Live: the size from QEMU and -u, since QEMU holds the top image's
	 * lock; stopped: qemu-img reads the size from it. */
	const char *live[] = { "create", "-q", "-f", "qcow2", "-F", d->topfmt, "-b", d->top, "-u",
	                       "--", d->over, size, NULL };
	const char *off[] = { "create", "-q", "-f", "qcow2", "-F", d->topfmt, "-b", d->top, "--",
	                      d->over, NULL };
	make_overlay(op, op->live ? live : off, on_created);
}

void snap_on_blocks(void *ctx, const struct qmp_result *r)
{
	struct sv_snap_op *op = ctx;
	if (r->status != 0) {
		snap_op_fail(op, "GenericError", "query-block: %s", r->err_desc ? r->err_desc
		             : qmp_strerror(r->status));
		return;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct sdisk *d = &op->d[i];
		json_t *in = sv_block_inserted(r->ret, d->id);
		if (in) {
			snprintf(d->node, sizeof(d->node), "%s", sv_jstr(in, "node-name", ""));
			d->size = (uint64_t)json_integer_value(json_object_get(json_object_get(in,
			          "image"), "virtual-size"));
		}
		if (!d->node[0] || !d->size) {
			snap_op_fail(op, "GenericError", "disk %s is not in QEMU's block devices",
			             d->id);
			return;
		}
	}
	op->i = 0;
	snap_create_img(op);
}

/* ---- --memory: the guest's RAM state, a save-style file ---- */

/* The guest was paused for the snapshot (unless it was already): the disk
 * overlays switch, then `save` writes its state (QEMU then ends), then
 * `restore` brings it back from that file at once, on the new overlays,
 * and `resume` (the file holds a paused guest). */
static void reply(struct sv_snap_op *op)
{
	if (op->action == CREATE)
		create_reply(op);
	else
		revert_reply(op);
}

/* verb ("save", "restore") of the guest's state in op->mem, as a request of
 * qsupd's own: run(g, request, args); its answer to next. */
static void memory_verb(struct sv_snap_op *op, const char *verb,
                        void (*run)(struct sv_guest *, struct sv_request *, json_t *),
                        void (*next)(struct sv_snap_op *, json_t *))
{
	json_t *args = json_pack("{s:s, s:s}", "name", op->g->name, "file", op->mem);
	struct sv_request *r = snap_ireq(op, verb, next);
	if (!r) {
		json_decref(args);
		snap_op_fail(op, "GenericError", "out of memory");
		return;
	}
	run(op->g, r, args);
	json_decref(args);
}

static void on_resumed(struct sv_snap_op *op, json_t *msg)
{
	const char *e = snap_answer_err(msg);
	if (e) {
		snap_op_fail(op, "GenericError", "the snapshot is taken, but the guest stays "
		             "paused: resume: %s", e);
		return;
	}
	reply(op);
}

static void resume(struct sv_snap_op *op)
{
	struct sv_error e = { 0 };
	struct sv_request *r = op->was_paused ? NULL : snap_ireq(op, "resume", on_resumed);
	if (op->was_paused) {
		reply(op);
		return;
	}
	if (!r || sv_guest_simple(op->g, "resume", r, &e) < 0)
		snap_op_fail(op, "GenericError", "the guest stays paused: resume: %s", r ? e.msg
		             : "out of memory");
}

static void on_restored(struct sv_snap_op *op, json_t *msg)
{
	const char *e = snap_answer_err(msg);
	if (e) {
		snap_op_fail(op, "GenericError", "the guest's state is in %s, but it could not be "
		             "restored from it (qsupctl restore %s %s): %s", op->mem, op->g->name,
		             op->mem, e);
		return;
	}
	resume(op);
}

static void restore_memory(struct sv_snap_op *op)
{
	op->paused_by_us = false;   /* a new QEMU: resume() resumes it */
	memory_verb(op, "restore", sv_migrate_restore, on_restored);
}

static void memory_failed(void *arg)
{
	struct sv_snap_op *op = arg;
	if (op->work.rc < 0)
		sv_log(SV_LOG_WARN, op->g->name, "%s", op->work.err.msg);
	snap_op_fail(op, "GenericError", "the disks are snapshotted, but the memory could not be "
	             "saved (the snapshot has none): %s", op->why);
}

static void on_saved(struct sv_snap_op *op, json_t *msg)
{
	const char *e = snap_answer_err(msg);
	if (e) {
		/* The disks are snapshotted already: the snapshot stays, without
		 * its memory, and the guest goes on (snap_op_fail resumes it). */
		snprintf(op->why, sizeof(op->why), "%s", e);
		json_object_set_new(sv_snaprec_find(op->newrec, op->snap), "memory", json_null());
		sv_opwork_run(&op->work, snap_write_new, memory_failed);
		return;
	}
	restore_memory(op);
}

static void save_memory(struct sv_snap_op *op)
{
	memory_verb(op, "save", sv_migrate_save, on_saved);
}

/* --memory: the guest is paused before the disks switch, so that its RAM
 * and its disks are of the same moment. */
void snap_on_paused(struct sv_snap_op *op, json_t *msg)
{
	const char *e = snap_answer_err(msg);
	if (e) {
		snap_op_fail(op, "GenericError", "pause: %s", e);
		return;
	}
	op->paused_by_us = true;
	if (!sv_guest_qmp_up(op->g)) {
		snap_op_fail(op, "InvalidState", "QEMU ended before the snapshot");
		return;
	}
	sv_step(op->g->qmp, NULL, "query-block", NULL, -1, snap_on_blocks, op);
}

/* ---- revert ---- */

static void revert_work(void *arg)
{
	struct sv_snap_op *op = arg;
	snap_write_new(op);
	if (op->work.rc < 0)
		return;
	for (size_t i = 0; i < op->n; i++) {
		struct sdisk *d = &op->d[i];
		if (d->top && strcmp(d->top, d->base) && !snap_is_layer(op->newrec, d->top))
			unlink(d->top);
	}
}

static void revert_reply(struct sv_snap_op *op)
{
	sv_log(SV_LOG_INFO, op->g->name, "reverted to snapshot %s%s", op->snap,
	       op->mem ? " (with its memory)" : "");
	json_t *ret = json_pack("{s:s, s:s, s:o, s:s}", "snapshot", op->snap, "action",
	                        "revert", "disks", overlays(op), "state",
	                        sv_state_name(op->g->state));
	if (op->mem)
		json_object_set_new(ret, "memory", json_string(op->mem));
	sv_reply_ok(op->req, ret);
	op->req = NULL;
	snap_op_end(op);
}

static void revert_done(void *arg)
{
	struct sv_snap_op *op = arg;
	if (op->work.rc < 0) {
		snap_undo(op);
		return;
	}
	if (op->mem)
		restore_memory(op);
	else
		revert_reply(op);
}

static void on_reverted_img(void *arg, bool ok)
{
	if (overlay_made(arg, ok))
		snap_revert_img(arg);
}

void snap_revert_img(struct sv_snap_op *op)
{
	if (sv_guest_active(op->g)) {
		sv_error_set(&op->work.err, -EBUSY, "the guest was started meanwhile; nothing "
		             "reverted");
		snap_undo(op);
		return;
	}
	if (op->i == op->n) {
		sv_opwork_run(&op->work, revert_work, revert_done);
		return;
	}
	struct sdisk *d = &op->d[op->i];
	const char *args[] = { "create", "-q", "-f", "qcow2", "-F", d->layerfmt, "-b", d->layer,
	                       "--", d->over, NULL };
	make_overlay(op, args, on_reverted_img);
}

/* The internal stop of revert --force has ended. */
void snap_on_stopped(void *arg, uint64_t peer, json_t *msg)
{
	struct sv_snap_op *op = arg;
	(void)peer;
	json_t *e = json_object_get(msg, "error");
	if (e || sv_guest_active(op->g)) {
		snap_op_fail(op, "GenericError", "the guest could not be stopped: %s",
		             sv_jstr(e, "desc", "it still runs"));
	} else {
		sv_log(SV_LOG_INFO, op->g->name, "stopped for snapshot revert --force");
		op->i = 0;
		snap_revert_img(op);
	}
	json_decref(msg);
}
