/* Disk snapshots: see snapshot.h. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "fdpass.h"
#include "guest.h"
#include "hotplug.h"
#include "image.h"
#include "log.h"
#include "migrate.h"
#include "opwork.h"
#include "overlay.h"
#include "request.h"
#include "snapshot.h"
#include "snaprec.h"
#include "step.h"
#include "subproc.h"
#include "blockadd.h"
#include "blockgraph.h"

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

static void op_free(struct sv_snap_op *op)
{
	for (size_t i = 0; i < op->n; i++) {
		struct sdisk *d = &op->d[i];
		free(d->base);
		free(d->top);
		free(d->topfmt);
		free(d->layer);
		free(d->layerfmt);
		free(d->over);
		free(d->child);
		free(d->below);
		free(d->belowfmt);
		if (d->fd >= 0)
			close(d->fd);
	}
	free(op->d);
	free(op->bitems);
	free(op->mem);
	json_decref(op->rec);
	json_decref(op->newrec);
	json_decref(op->nodes);
	json_decref(op->result);
	json_decref(op->hp);
	json_decref(op->flat);
	free(op);
}

static void op_end(struct sv_snap_op *op)
{
	struct sv_guest *g = op->g;
	if (g->snap == op)
		g->snap = NULL;
	op_free(op);
	sv_guest_unhold(g);
}

static void op_fail(struct sv_snap_op *op, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void drop_answer(void *arg, uint64_t peer, json_t *msg)
{
	(void)arg, (void)peer;
	json_decref(msg);
}

/* Answers nobody waits for. */
static const struct sv_route drop_route = { .answer = drop_answer };

static void op_fail(struct sv_snap_op *op, const char *cls, const char *fmt, ...)
{
	char msg[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sv_log(SV_LOG_WARN, op->g->name, "snapshot %s: %s", op->snap, msg);
	if (op->paused_by_us && op->g->state == SV_PAUSED && sv_guest_qmp_up(op->g)) {
		struct sv_error e = { 0 };
		struct sv_request *r = sv_request_new(&drop_route, 0, 0, NULL, "resume");
		if (r && sv_guest_simple(op->g, "resume", r, &e) < 0)
			sv_log(SV_LOG_WARN, op->g->name, "resume: %s", e.msg);
	}
	if (op->req)
		sv_reply_err(op->req, cls, "%s: snapshot %s: %s", op->g->name, op->snap, msg);
	op->req = NULL;
	op_end(op);
}

/* ---- internal requests: verbs qsupd runs for itself ---- */

static void on_internal(void *arg, uint64_t peer, json_t *msg)
{
	struct sv_snap_op *op = arg;
	(void)peer;
	op->inext(op, msg);
	json_decref(msg);
}

/* A request whose answer goes to next(op, msg). NULL: out of memory. */
static struct sv_request *ireq(struct sv_snap_op *op, const char *verb,
                               void (*next)(struct sv_snap_op *, json_t *))
{
	op->route = (struct sv_route){ .answer = on_internal, .arg = op };
	op->inext = next;
	return sv_request_new(&op->route, 0, 0, NULL, verb);
}

static const char *answer_err(json_t *msg)
{
	json_t *e = json_object_get(msg, "error");
	return e ? sv_jstr(e, "desc", "failed") : NULL;
}

/* ---- the record ---- */

static json_t *layer_obj(const char *file, const char *fmt)
{
	return json_pack("{s:s, s:s}", "file", file, "format", fmt);
}

/* Is file some snapshot's layer in rec? */
static bool is_layer(json_t *rec, const char *file)
{
	json_t *s, *l;
	const char *id;
	size_t i;
	json_array_foreach(json_object_get(rec, "snapshots"), i, s)
		json_object_foreach(json_object_get(s, "layers"), id, l)
			if (!strcmp(sv_jstr(l, "file", ""), file))
				return true;
	return false;
}

static void write_new(void *arg)
{
	struct sv_snap_op *op = arg;
	if (!json_array_size(json_object_get(op->newrec, "snapshots")) &&
	    !json_object_size(json_object_get(op->newrec, "active"))) {
		if (unlink(op->recpath) < 0 && errno != ENOENT)
			op->work.rc = sv_error_set(&op->work.err, -errno, "cannot remove %s: %s",
			                           op->recpath, strerror(errno));
		return;
	}
	op->work.rc = sv_snaprec_write_at(op->recpath, op->newrec, &op->work.err);
}

/* The old record back (a failed switch), and the new overlays gone. */
static void undo_work(void *arg)
{
	struct sv_snap_op *op = arg;
	struct sv_error e = { 0 };
	if (op->had_rec)
		sv_snaprec_write_at(op->recpath, op->rec, &e);
	else
		unlink(op->recpath);
	for (size_t i = 0; i < op->n; i++)
		if (op->d[i].made && op->d[i].over)
			unlink(op->d[i].over);
}

static void undo_done(void *arg)
{
	struct sv_snap_op *op = arg;
	op_fail(op, "GenericError", "%s", op->work.err.msg);
}

/* Fail with err's message after undoing. */
static void undo(struct sv_snap_op *op)
{
	sv_opwork_run(&op->work, undo_work, undo_done);   /* undo_work leaves err as it is */
}

/* ---- the new overlays: create, revert ---- */

/* qemu-img makes disk op->i's overlay (args); next(op, ok) when it ends. */
static void make_overlay(struct sv_snap_op *op, const char *const *args,
                         void (*next)(void *op, bool ok))
{
	int rc = sv_opwork_img(&op->work, args, next);
	if (rc < 0) {
		sv_error_set(&op->work.err, rc, "cannot run qemu-img: %s", uv_strerror(rc));
		undo(op);
	}
}

/* qemu-img has ended for disk op->i's overlay, which is ours now (a partial
 * file too: undo removes it). True: on to the next disk; false: undone. */
static bool overlay_made(struct sv_snap_op *op, bool ok)
{
	struct sdisk *d = &op->d[op->i];
	d->made = true;
	if (!ok) {
		char tail[600];
		sv_opwork_img_tail(&op->work, tail, sizeof(tail));
		sv_error_set(&op->work.err, -EIO, "disk %s: qemu-img create %s: %s", d->id,
		             d->over, tail);
		undo(op);
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
	op_end(op);
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
		undo(op);
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
		undo(op);
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
		undo(op);
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
	write_new(op);
}

static void create_written(void *arg)
{
	struct sv_snap_op *op = arg;
	if (op->work.rc < 0) {
		undo(op);
		return;
	}
	if (!op->live) {
		create_reply(op);
		return;
	}
	op->i = 0;
	add_next(op);
}

static void create_img(struct sv_snap_op *op);

static void on_created(void *arg, bool ok)
{
	if (overlay_made(arg, ok))
		create_img(arg);
}

static void create_img(struct sv_snap_op *op)
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

static void on_blocks(void *ctx, const struct qmp_result *r)
{
	struct sv_snap_op *op = ctx;
	if (r->status != 0) {
		op_fail(op, "GenericError", "query-block: %s", r->err_desc ? r->err_desc
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
			op_fail(op, "GenericError", "disk %s is not in QEMU's block devices", d->id);
			return;
		}
	}
	op->i = 0;
	create_img(op);
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
	struct sv_request *r = ireq(op, verb, next);
	if (!r) {
		json_decref(args);
		op_fail(op, "GenericError", "out of memory");
		return;
	}
	run(op->g, r, args);
	json_decref(args);
}

static void on_resumed(struct sv_snap_op *op, json_t *msg)
{
	const char *e = answer_err(msg);
	if (e) {
		op_fail(op, "GenericError", "the snapshot is taken, but the guest stays paused: "
		        "resume: %s", e);
		return;
	}
	reply(op);
}

static void resume(struct sv_snap_op *op)
{
	struct sv_error e = { 0 };
	struct sv_request *r = op->was_paused ? NULL : ireq(op, "resume", on_resumed);
	if (op->was_paused) {
		reply(op);
		return;
	}
	if (!r || sv_guest_simple(op->g, "resume", r, &e) < 0)
		op_fail(op, "GenericError", "the guest stays paused: resume: %s", r ? e.msg
		        : "out of memory");
}

static void on_restored(struct sv_snap_op *op, json_t *msg)
{
	const char *e = answer_err(msg);
	if (e) {
		op_fail(op, "GenericError", "the guest's state is in %s, but it could not be "
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
	op_fail(op, "GenericError", "the disks are snapshotted, but the memory could not be "
	        "saved (the snapshot has none): %s", op->why);
}

static void on_saved(struct sv_snap_op *op, json_t *msg)
{
	const char *e = answer_err(msg);
	if (e) {
		/* The disks are snapshotted already: the snapshot stays, without
		 * its memory, and the guest goes on (op_fail resumes it). */
		snprintf(op->why, sizeof(op->why), "%s", e);
		json_object_set_new(sv_snaprec_find(op->newrec, op->snap), "memory", json_null());
		sv_opwork_run(&op->work, write_new, memory_failed);
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
static void on_paused(struct sv_snap_op *op, json_t *msg)
{
	const char *e = answer_err(msg);
	if (e) {
		op_fail(op, "GenericError", "pause: %s", e);
		return;
	}
	op->paused_by_us = true;
	if (!sv_guest_qmp_up(op->g)) {
		op_fail(op, "InvalidState", "QEMU ended before the snapshot");
		return;
	}
	sv_step(op->g->qmp, NULL, "query-block", NULL, -1, on_blocks, op);
}

/* ---- revert ---- */

static void revert_work(void *arg)
{
	struct sv_snap_op *op = arg;
	write_new(op);
	if (op->work.rc < 0)
		return;
	for (size_t i = 0; i < op->n; i++) {
		struct sdisk *d = &op->d[i];
		if (d->top && strcmp(d->top, d->base) && !is_layer(op->newrec, d->top))
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
	op_end(op);
}

static void revert_done(void *arg)
{
	struct sv_snap_op *op = arg;
	if (op->work.rc < 0) {
		undo(op);
		return;
	}
	if (op->mem)
		restore_memory(op);
	else
		revert_reply(op);
}

static void revert_img(struct sv_snap_op *op);

static void on_reverted_img(void *arg, bool ok)
{
	if (overlay_made(arg, ok))
		revert_img(arg);
}

static void revert_img(struct sv_snap_op *op)
{
	if (sv_guest_active(op->g)) {
		sv_error_set(&op->work.err, -EBUSY, "the guest was started meanwhile; nothing "
		             "reverted");
		undo(op);
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
static void on_stopped(void *arg, uint64_t peer, json_t *msg)
{
	struct sv_snap_op *op = arg;
	(void)peer;
	json_t *e = json_object_get(msg, "error");
	if (e || sv_guest_active(op->g)) {
		op_fail(op, "GenericError", "the guest could not be stopped: %s",
		        sv_jstr(e, "desc", "it still runs"));
	} else {
		sv_log(SV_LOG_INFO, op->g->name, "stopped for snapshot revert --force");
		op->i = 0;
		revert_img(op);
	}
	json_decref(msg);
}

/* ---- delete ---- */

static void delete_merge(struct sv_snap_op *op);
static void delete_finished(void *arg);

/* Off the loop: each layer's backing file, and where it and the image
 * above sit in the running chain. */
static void delete_read(void *arg)
{
	struct sv_snap_op *op = arg;
	for (size_t i = 0; i < op->n; i++) {
		struct sdisk *d = &op->d[i];
		struct sv_chain ch;
		d->poschild = d->posbelow = -1;
		if (d->skip)
			continue;
		if (sv_image_chain(d->layer, d->layerfmt, &ch, &op->work.err) < 0) {
			op->work.rc = -EIO;
			return;
		}
		if (ch.n == 0) {
			sv_chain_free(&ch);
			op->work.rc = sv_error_set(&op->work.err, -EINVAL, "disk %s: %s has no "
			                           "backing file", d->id, d->layer);
			return;
		}
		d->below = strdup(ch.layers[0].path);
		d->belowfmt = strdup(ch.layers[0].format);
		sv_chain_free(&ch);
		if (!d->child || !op->live || !d->top)
			continue;
		if (sv_image_chain(d->top, d->topfmt, &ch, &op->work.err) < 0) {
			op->work.rc = -EIO;
			return;
		}
		for (size_t k = 0; k <= ch.n; k++) {
			const char *f = k ? ch.layers[k - 1].path : d->top;
			if (!strcmp(f, d->child))
				d->poschild = (int)k;
			if (!strcmp(f, d->below))
				d->posbelow = (int)k;
		}
		sv_chain_free(&ch);
		if (d->poschild > 0 && d->posbelow > d->poschild &&
		    (d->fd = sv_fdpass_file(d->child, O_RDWR, &op->work.err)) < 0) {
			op->work.rc = d->fd;
			d->fd = -1;
			return;
		}
	}
}

static void delete_finish_work(void *arg)
{
	struct sv_snap_op *op = arg;
	write_new(op);
	if (op->work.rc < 0)
		return;
	for (size_t i = 0; i < op->n; i++)
		if (!op->d[i].skip && strcmp(op->d[i].layer, op->d[i].base))
			unlink(op->d[i].layer);
	if (op->mem)
		unlink(op->mem);
}

static void on_flat(void *arg, json_t *result)
{
	struct sv_snap_op *op = arg;
	op->flat = result;
	delete_finished(op);
}

static void delete_finished(void *arg)
{
	struct sv_snap_op *op = arg;
	if (op->work.rc < 0) {
		op_fail(op, "GenericError", "the layers were merged, but the record could not "
		        "be written (qsupd --check shows the state): %s", op->work.err.msg);
		return;
	}
	/* The last one: the disks go back on their files (sv_snapflat). */
	if (!op->flat && !json_array_size(json_object_get(op->newrec, "snapshots")) &&
	    json_object_size(json_object_get(op->newrec, "active"))) {
		sv_snapflat(op->g, op->recpath, op->newrec, on_flat, op);
		return;
	}
	json_t *merged = json_object();
	for (size_t i = 0; i < op->n; i++) {
		struct sdisk *d = &op->d[i];
		json_object_set_new(merged, d->id, d->skip ? json_string("kept (the profile's file)")
		                    : json_string(d->child ? (d->streamed ? "block-stream"
		                                                          : "qemu-img rebase")
		                                           : "removed"));
	}
	sv_log(SV_LOG_INFO, op->g->name, "snapshot %s deleted", op->snap);
	json_t *ret = json_pack("{s:s, s:s, s:o}", "snapshot", op->snap, "action", "delete",
	                        "merged", merged);
	if (op->flat)
		json_object_set(ret, "disks", op->flat);
	sv_reply_ok(op->req, ret);
	op->req = NULL;
	op_end(op);
}

static void progress(struct sv_snap_op *op, const char *phase, json_t *extra)
{
	json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "name", op->g->name, "snapshot",
	                         op->snap, "disk", op->d[op->i].id, "phase", phase);
	if (extra)
		json_object_update(data, extra);
	json_decref(extra);
	sv_emit(op->g->route, json_pack("{s:s, s:o}", "event", "SNAPSHOT_PROGRESS", "data", data));
}

static void next_disk(struct sv_snap_op *op)
{
	op->i++;
	delete_merge(op);
}

static void on_rebased(void *arg, bool ok)
{
	struct sv_snap_op *op = arg;
	struct sdisk *d = &op->d[op->i];
	if (!ok) {
		char tail[600];
		sv_opwork_img_tail(&op->work, tail, sizeof(tail));
		op_fail(op, "GenericError", "disk %s: qemu-img rebase %s: %s (nothing changed "
		        "in the record)", d->id, d->child, tail);
		return;
	}
	progress(op, "merged", NULL);
	next_disk(op);
}

/* The format node at place pos (0: the top) of the chain under node top
 * in QEMU's graph, and the fd set of its file node. */
static bool node_at(struct sv_snap_op *op, const char *top, int pos, char *out, size_t size,
                    int *fdset)
{
	json_int_t id = sv_graph_id(op->nodes, top);
	for (int k = 0; id >= 0 && k < pos; k++)
		id = sv_graph_child(op->nodes, id, "backing");
	if (id < 0)
		return false;
	snprintf(out, size, "%s", sv_graph_name(op->nodes, id));
	if (fdset) {
		const char *fnode = sv_graph_name(op->nodes, sv_graph_child(op->nodes, id, "file"));
		json_t *n;
		size_t i;
		*fdset = -1;
		json_array_foreach(op->result, i, n)
			if (!strcmp(sv_jstr(n, "node-name", ""), fnode)) {
				const char *f = sv_jstr(n, "file", "");
				*fdset = !strncmp(f, "/dev/fdset/", 11) ? atoi(f + 11) : -1;
			}
	}
	return true;
}

static void on_stream(void *ctx, const struct qmp_result *r)
{
	struct sv_snap_op *op = ctx;
	if (r->status != 0) {
		op->waiting_job = false;
		op_fail(op, "GenericError", "disk %s: block-stream: %s (nothing changed)",
		        op->d[op->i].id, r->err_desc ? r->err_desc : qmp_strerror(r->status));
		return;
	}
	progress(op, "merging", NULL);
}

static void stream(struct sv_snap_op *op)
{
	struct sdisk *d = &op->d[op->i];
	char job[80];
	snprintf(job, sizeof(job), "snapshot-delete.%s", d->id);
	op->waiting_job = true;
	sv_step(op->g->qmp, NULL, "block-stream", json_pack("{s:s, s:s, s:s, s:s}", "job-id", job,
	        "device", d->node, "base-node", d->bnode, "backing-file", d->below), -1,
	        on_stream, op);
}

static void on_child_rw(void *arg, const char *why)
{
	struct sv_snap_op *op = arg;
	if (why)
		op_fail(op, "GenericError", "disk %s: %s (nothing changed)", op->d[op->i].id, why);
	else
		stream(op);
}

static void on_rw_fd(void *ctx, const struct qmp_result *r)
{
	struct sv_snap_op *op = ctx;
	struct sdisk *d = &op->d[op->i];
	close(d->fd);
	d->fd = -1;
	if (r->status != 0) {
		op_fail(op, "GenericError", "disk %s: add-fd: %s", d->id,
		        r->err_desc ? r->err_desc : qmp_strerror(r->status));
		return;
	}
	/* booted read-only (a backing layer): writable for the merge */
	sv_snap_writable(op->g, d->node, (int)json_integer_value(json_object_get(r->ret,
	                 "fdset-id")), (int)json_integer_value(json_object_get(r->ret, "fd")),
	                 on_child_rw, op);
}

/* The merged layer's nodes go (they were the monitor's: -blockdev), and
 * its fd set. */
static void drop_layer_nodes(struct sv_snap_op *op, struct sdisk *d)
{
	char fnode[80];
	snprintf(fnode, sizeof(fnode), "file.%s", d->lnode + 6);
	const char *nodes[] = { d->lnode, fnode };
	for (size_t k = 0; k < 2 && op->g->qmp; k++) {
		sv_qmp_fire(op->g->qmp, "blockdev-del", json_pack("{s:s}", "node-name", nodes[k]));
	}
	if (d->lfdset >= 0 && op->g->qmp)
		sv_qmp_fire(op->g->qmp, "remove-fd", json_pack("{s:i}", "fdset-id", d->lfdset));
}

static void on_named(void *ctx, const struct qmp_result *r)
{
	struct sv_snap_op *op = ctx;
	struct sdisk *d = &op->d[op->i];
	int cfd = -1;
	char top[64];
	if (r->status != 0) {
		op_fail(op, "GenericError", "query-named-block-nodes: %s", r->err_desc ? r->err_desc
		        : qmp_strerror(r->status));
		return;
	}
	json_decref(op->result);
	op->result = json_incref(r->ret);
	snprintf(top, sizeof(top), "%s", d->node);
	if (!node_at(op, top, d->poschild, d->node, sizeof(d->node), &cfd) ||
	    !node_at(op, top, d->posbelow, d->bnode, sizeof(d->bnode), NULL) ||
	    !node_at(op, top, d->posbelow - 1, d->lnode, sizeof(d->lnode), &d->lfdset)) {
		op_fail(op, "GenericError", "disk %s: QEMU's block graph does not match the chain "
		        "of %s", d->id, d->top);
		return;
	}
	d->streamed = true;
	if (d->poschild == 0 || d->fd < 0) {
		stream(op);
		return;
	}
	/* An intermediate image takes the merge: QEMU reopens it read-write,
	 * through a read-write fd added to its fd set. */
	sv_step(op->g->qmp, NULL, "add-fd", json_pack("{s:i, s:s}", "fdset-id", cfd, "opaque",
	        d->child), d->fd, on_rw_fd, op);
}

static void on_graph(void *ctx, const struct qmp_result *r)
{
	struct sv_snap_op *op = ctx;
	if (r->status != 0) {
		op_fail(op, "GenericError", "x-debug-query-block-graph: %s", r->err_desc
		        ? r->err_desc : qmp_strerror(r->status));
		return;
	}
	json_decref(op->nodes);
	op->nodes = json_incref(r->ret);
	sv_step(op->g->qmp, NULL, "query-named-block-nodes", json_pack("{s:b}", "flat", true),
	        -1, on_named, op);
}

/* The merge's QEMU side: the disk's top node (query-block), its chain in
 * the block graph, the fd sets (query-named-block-nodes). */
static void on_top(void *ctx, const struct qmp_result *r)
{
	struct sv_snap_op *op = ctx;
	struct sdisk *d = &op->d[op->i];
	json_t *in = sv_block_inserted(r->status == 0 ? r->ret : NULL, d->id);
	snprintf(d->node, sizeof(d->node), "%s", sv_jstr(in, "node-name", ""));
	if (!d->node[0]) {
		op_fail(op, "GenericError", "disk %s is not in QEMU's block devices", d->id);
		return;
	}
	sv_step(op->g->qmp, NULL, "x-debug-query-block-graph", NULL, -1, on_graph, op);
}

static void delete_merge(struct sv_snap_op *op)
{
	if (op->i == op->n) {
		sv_opwork_run(&op->work, delete_finish_work, delete_finished);
		return;
	}
	struct sdisk *d = &op->d[op->i];
	if (d->skip || !d->child) {
		next_disk(op);
		return;
	}
	if (op->live && d->poschild >= 0 && d->posbelow > d->poschild) {
		if (!sv_guest_qmp_up(op->g)) {
			op_fail(op, "InvalidState", "QEMU ended during the delete");
			return;
		}
		sv_step(op->g->qmp, NULL, "query-block", NULL, -1, on_top, op);
		return;
	}
	if (op->live && sv_guest_active(op->g) && d->poschild >= 0) {
		op_fail(op, "GenericError", "disk %s: the running chain does not hold %s under %s",
		        d->id, d->below, d->child);
		return;
	}
	/* Not in QEMU's chain (or the guest is stopped): qemu-img rebase copies
	 * what the layer holds into the image above, then re-points it. */
	const char *args[] = { "rebase", "-q", "-f", "qcow2", "-F", d->belowfmt, "-b", d->below,
	                       "--", d->child, NULL };
	progress(op, "merging", NULL);
	int rc = sv_opwork_img(&op->work, args, on_rebased);
	if (rc < 0)
		op_fail(op, "GenericError", "cannot run qemu-img: %s", uv_strerror(rc));
}

static void delete_read_done(void *arg)
{
	struct sv_snap_op *op = arg;
	if (op->work.rc < 0) {
		op_fail(op, "GenericError", "%s", op->work.err.msg);
		return;
	}
	op->i = 0;
	delete_merge(op);
}

/* ---- the observer: block job events ---- */

static void snap_event(struct sv_guest *g, const char *name, json_t *data)
{
	struct sv_snap_op *op = g->snap;
	char job[80];
	if (!op || !op->waiting_job || op->i >= op->n)
		return;
	struct sdisk *d = &op->d[op->i];
	snprintf(job, sizeof(job), "snapshot-delete.%s", d->id);
	if (strcmp(sv_jstr(data, "device", ""), job))
		return;
	if (strcmp(name, "BLOCK_JOB_COMPLETED") && strcmp(name, "BLOCK_JOB_CANCELLED"))
		return;
	op->waiting_job = false;
	const char *err = json_string_value(json_object_get(data, "error"));
	if (!strcmp(name, "BLOCK_JOB_CANCELLED") || err) {
		op_fail(op, "GenericError", "disk %s: the merge (block-stream) failed: %s; the "
		        "chain is as it was", d->id, err ? err : "cancelled");
		return;
	}
	progress(op, "merged", json_pack("{s:I}", "bytes",
	         json_integer_value(json_object_get(data, "len"))));
	drop_layer_nodes(op, d);
	next_disk(op);
}

static void snap_gone(struct sv_guest *g)
{
	struct sv_snap_op *op = g->snap;
	if (op && op->waiting_job) {
		op->waiting_job = false;
		op_fail(op, "GenericError", "QEMU ended during the merge of disk %s; the record "
		        "is unchanged (the next start boots the same chain)", op->d[op->i].id);
	}
}

static void snap_status(struct sv_guest *g, json_t *st)
{
	if (g->snap)
		json_object_set_new(st, "snapshot_op", json_pack("{s:s, s:s}", "snapshot",
		                    g->snap->snap, "action", g->snap->action == CREATE ? "create"
		                    : g->snap->action == REVERT ? "revert" : "delete"));
}

const struct sv_guest_observer sv_snapshot_observer = {
	.name = "snapshot",
	.event = snap_event,
	.qemu_gone = snap_gone,
	.status = snap_status,
};

/* ---- the verb ---- */

json_t *sv_snapshot_hp_disks(const struct sv_profile *p)
{
	json_t *out = json_object(), *specs = NULL, *e;
	char *errs = NULL;
	size_t i;
	sv_overlay_read(p, &specs, &errs);
	free(errs);
	json_array_foreach(specs, i, e) {
		const char *file = json_string_value(json_object_get(e, "file"));
		const char *why = NULL;
		char *abs = NULL;
		if (strcmp(sv_jstr(e, "kind", ""), "disk") || !file ||
		    json_is_true(json_object_get(e, "read-only")) ||
		    !strcmp(sv_jstr(e, "read-only", ""), "on") ||
		    sv_path_resolve(p->dir, file, &abs, &why) < 0)
			continue;
		json_object_set_new(out, sv_jstr(e, "id", ""), json_pack("{s:s, s:s}", "file", abs,
		                    "format", sv_jstr(e, "format", "raw")));
		free(abs);
	}
	json_decref(specs);
	return out;
}

/* Disk id's base file and format: a writable drive of p's, or a disk of
 * the hot-plug overlay (hp); NULL. */
static const char *base_of(const struct sv_profile *p, json_t *hp, const char *id,
                           const char **fmt)
{
	int k = sv_profile_find_device(p, id);
	if (k >= 0 && (size_t)k < p->ndrives && sv_snap_disk(&p->drives[k])) {
		*fmt = p->drives[k].format;
		return p->drives[k].file;
	}
	json_t *d = json_object_get(hp, id);
	*fmt = sv_jstr(d, "format", "raw");
	return json_string_value(json_object_get(d, "file"));
}

int sv_snapshot_check(json_t *args, struct sv_error *err)
{
	const char *a = json_string_value(json_object_get(args, "action"));
	json_t *s = json_object_get(args, "snapshot"), *f = json_object_get(args, "force");
	if (!a || (strcmp(a, "create") && strcmp(a, "list") && strcmp(a, "revert") &&
	    strcmp(a, "delete")))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "snapshot needs {\"name\", "
		                     "\"action\": \"create\", \"list\", \"revert\" or \"delete\", "
		                     "\"snapshot\"}");
	if (strcmp(a, "list") && !json_is_string(s))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "snapshot %s needs "
		                     "\"snapshot\": the snapshot's name", a);
	if (s && (!json_is_string(s) || !sv_name_valid(json_string_value(s))))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "a snapshot name is 1 to 64 "
		                     "of A-Z a-z 0-9 _ . -, starting with a letter or digit");
	json_t *m = json_object_get(args, "memory");
	if ((f && !json_is_boolean(f)) || (m && !json_is_boolean(m)))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "\"force\" and \"memory\" "
		                     "must be true or false");
	if (json_is_true(m) && strcmp(a, "create"))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "\"memory\" is for create "
		                     "(revert and delete follow the snapshot)");
	return 0;
}

static void list(struct sv_guest *g, struct sv_request *req, json_t *rec)
{
	json_t *out = json_array(), *s;
	size_t i;
	const char *cur = sv_jstr(rec, "current", "");
	json_array_foreach(json_object_get(rec, "snapshots"), i, s) {
		json_t *disks = json_object(), *l;
		const char *id;
		json_object_foreach(json_object_get(s, "layers"), id, l)
			json_object_set_new(disks, id, json_string(sv_jstr(l, "file", "")));
		json_t *mem = json_object_get(s, "memory");
		json_array_append_new(out, json_pack("{s:s, s:O, s:s, s:b, s:o, s:O}", "name",
		                      sv_jstr(s, "name", ""), "parent", json_object_get(s, "parent"),
		                      "created", sv_jstr(s, "created", ""), "current",
		                      !strcmp(cur, sv_jstr(s, "name", "")), "disks", disks,
		                      "memory", mem ? mem : json_null()));
	}
	json_t *active = json_object(), *l;
	const char *id;
	json_object_foreach(json_object_get(rec, "active"), id, l)
		json_object_set_new(active, id, json_string(sv_jstr(l, "file", "")));
	sv_reply_ok(req, json_pack("{s:s, s:o, s:o, s:O}", "name", g->name, "snapshots", out,
	            "active", active, "current", json_object_get(rec, "current")));
}

static struct sdisk *disk_new(struct sv_snap_op *op, const char *id, const char *base)
{
	struct sdisk *d = &op->d[op->n++];
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->base = strdup(base);
	d->fd = d->fdset = d->lfdset = -1;
	d->poschild = d->posbelow = -1;
	return d;
}

/* The new overlays' paths next to their bases: BASE.snapSEQ.qcow2, SEQ the
 * record's next number for which no disk has a file yet. */
static int overlay_paths(struct sv_snap_op *op)
{
	json_int_t seq = json_integer_value(json_object_get(op->newrec, "seq"));
	char path[4200];
	bool taken = true;
	while (taken) {
		seq++;
		taken = false;
		for (size_t i = 0; i < op->n && !taken; i++) {
			if (snprintf(path, sizeof(path), "%s.snap%lld.qcow2", op->d[i].base,
			             (long long)seq) >= (int)sizeof(path))
				return -ENAMETOOLONG;
			taken = access(path, F_OK) == 0 || errno != ENOENT;
		}
	}
	json_object_set_new(op->newrec, "seq", json_integer(seq));
	for (size_t i = 0; i < op->n; i++) {
		snprintf(path, sizeof(path), "%s.snap%lld.qcow2", op->d[i].base, (long long)seq);
		if (!(op->d[i].over = strdup(path)))
			return -ENOMEM;
	}
	return 0;
}

static bool setup_create(struct sv_snap_op *op, const struct sv_profile *p)
{
	struct sv_guest *g = op->g;
	json_t *layers = json_object(), *active = json_object_get(op->newrec, "active");
	/* The profile's writable disks, then those hot-plugged with --persist. */
	size_t nhp = json_object_size(op->hp);
	const char **ids = calloc(p->ndrives + nhp + 1, sizeof(*ids)), *id;
	size_t nids = 0;
	json_t *v;
	for (size_t i = 0; ids && i < p->ndrives; i++)
		if (sv_snap_disk(&p->drives[i]))
			ids[nids++] = p->drives[i].id;
	json_object_foreach(op->hp, id, v)
		if (ids && sv_profile_find_device(p, id) < 0)
			ids[nids++] = id;
	for (size_t i = 0; i < nids; i++) {
		const char *fmt, *base = base_of(p, op->hp, ids[i], &fmt);
		if (!strncmp(base, "/dev/", 5)) {
			op_fail(op, "InvalidArgument", "disk %s is the block device %s: qsup puts "
			        "overlays next to the disk's file, and cannot next to a device",
			        ids[i], base);
			json_decref(layers);
			free(ids);
			return false;
		}
		struct sdisk *d = disk_new(op, ids[i], base);
		json_t *a = sv_snaprec_active(op->rec, ids[i]);
		d->top = strdup(a ? sv_jstr(a, "file", "") : base);
		d->topfmt = strdup(a ? sv_jstr(a, "format", "") : fmt);
	}
	free(ids);
	if (!op->n) {
		json_decref(layers);
		op_fail(op, "InvalidArgument", "%s has no writable disk to snapshot", g->name);
		return false;
	}
	if (overlay_paths(op) < 0) {
		json_decref(layers);
		op_fail(op, "InvalidArgument", "an overlay's path would be too long");
		return false;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct sdisk *d = &op->d[i];
		json_object_set_new(layers, d->id, layer_obj(d->top, d->topfmt));
		json_object_set_new(active, d->id, layer_obj(d->over, "qcow2"));
		snprintf(d->newnode, sizeof(d->newnode), "drive.%s.s%lld", d->id,
		         (long long)json_integer_value(json_object_get(op->newrec, "seq")));
	}
	char t[32];
	if (op->memory && asprintf(&op->mem, "%s.snap%lld.qsave", op->d[0].base,
	    (long long)json_integer_value(json_object_get(op->newrec, "seq"))) < 0)
		op->mem = NULL;
	json_array_append_new(json_object_get(op->newrec, "snapshots"),
	                      json_pack("{s:s, s:O, s:s, s:o, s:o}", "name", op->snap, "parent",
	                      json_object_get(op->rec, "current"), "created",
	                      sv_opwork_now(t, sizeof(t)), "layers", layers, "memory",
	                      op->mem ? json_string(op->mem) : json_null()));
	json_object_set_new(op->newrec, "current", json_string(op->snap));
	return true;
}

static bool setup_revert(struct sv_snap_op *op, const struct sv_profile *p, json_t *s)
{
	const char *mem = json_string_value(json_object_get(s, "memory"));
	op->mem = mem ? strdup(mem) : NULL;
	json_t *l, *active = json_object_get(op->newrec, "active");
	const char *id;
	json_object_foreach(json_object_get(s, "layers"), id, l) {
		const char *fmt, *base = base_of(p, op->hp, id, &fmt);
		if (!base)
			continue;   /* a disk the profile no longer has */
		struct sdisk *d = disk_new(op, id, base);
		json_t *a = sv_snaprec_active(op->rec, id);
		d->top = a ? strdup(sv_jstr(a, "file", "")) : NULL;
		d->layer = strdup(sv_jstr(l, "file", ""));
		d->layerfmt = strdup(sv_jstr(l, "format", ""));
	}
	if (overlay_paths(op) < 0) {
		op_fail(op, "InvalidArgument", "an overlay's path would be too long");
		return false;
	}
	for (size_t i = 0; i < op->n; i++)
		json_object_set_new(active, op->d[i].id, layer_obj(op->d[i].over, "qcow2"));
	json_object_set_new(op->newrec, "current", json_string(op->snap));
	return true;
}

static bool setup_delete(struct sv_snap_op *op, const struct sv_profile *p, json_t *s)
{
	const char *mem = json_string_value(json_object_get(s, "memory"));
	op->mem = mem ? strdup(mem) : NULL;
	json_t *snaps = json_object_get(op->newrec, "snapshots"), *c, *l;
	json_t *children = json_array();
	const char *id;
	size_t i;
	bool current = !strcmp(sv_jstr(op->rec, "current", ""), op->snap);
	json_array_foreach(snaps, i, c)
		if (!strcmp(sv_jstr(c, "parent", ""), op->snap))
			json_array_append(children, c);
	size_t nchild = json_array_size(children) + current;
	json_t *child = json_array_get(children, 0);
	bool merge = false;
	json_object_foreach(json_object_get(s, "layers"), id, l) {
		const char *fmt, *base = sv_or(base_of(p, op->hp, id, &fmt), "");
		struct sdisk *d = disk_new(op, id, base);
		json_t *a = sv_snaprec_active(op->rec, id);
		d->layer = strdup(sv_jstr(l, "file", ""));
		d->layerfmt = strdup(sv_jstr(l, "format", ""));
		d->top = a ? strdup(sv_jstr(a, "file", "")) : NULL;
		d->topfmt = a ? strdup(sv_jstr(a, "format", "")) : NULL;
		json_t *cl = child ? json_object_get(json_object_get(child, "layers"), id) : NULL;
		d->child = current && a ? strdup(sv_jstr(a, "file", ""))
		         : cl ? strdup(sv_jstr(cl, "file", "")) : NULL;
		/* The profile's file stays: only the name goes. */
		d->skip = !strcmp(d->layer, base) || !*base;
		merge |= !d->skip;
	}
	/* A layer under two images cannot be merged into both. */
	if (merge && nchild > 1) {
		json_decref(children);
		op_fail(op, "InvalidState", "it has %zu children (later snapshots%s on it); "
		        "delete them first, or revert elsewhere", nchild,
		        current ? " and the running state" : "");
		return false;
	}
	json_array_foreach(children, i, c)
		json_object_set(c, "parent", json_object_get(s, "parent"));
	json_decref(children);
	if (current)
		json_object_set(op->newrec, "current", json_object_get(s, "parent"));
	for (i = 0; i < json_array_size(snaps); i++)
		if (!strcmp(sv_jstr(json_array_get(snaps, i), "name", ""), op->snap)) {
			json_array_remove(snaps, i);
			break;
		}
	return true;
}

void sv_snapshot_cmd(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const struct sv_profile *p = sv_guest_profile_now(g);
	const char *action = sv_jstr(args, "action", "");
	const char *name = sv_jstr(args, "snapshot", "");
	struct sv_error e = { 0 };
	json_t *rec = NULL;
	if (!p) {
		sv_reply_err(req, "NotFound", "%s has no profile", g->name);
		return;
	}
	if (sv_snaprec_read(p, &rec, &e) < 0) {
		sv_reply_err(req, "GenericError", "%s: the snapshot record cannot be used: %s "
		             "(qsupd --check %s)", g->name, e.msg, g->name);
		return;
	}
	if (!rec)
		rec = sv_snaprec_new();
	if (!strcmp(action, "list")) {
		list(g, req, rec);
		json_decref(rec);
		return;
	}
	json_t *s = sv_snaprec_find(rec, name);
	int act = !strcmp(action, "create") ? CREATE : !strcmp(action, "revert") ? REVERT : DELETE;
	char busy[96];   /* disk-resize, clone: they run on the disks */
	snprintf(busy, sizeof(busy), "a %s is running", g->busy_op ? g->busy_op : "");
	const char *refuse = g->snap ? "another snapshot operation is under way"
	                   : g->backup ? "a backup (or backup-restore) is under way"
	                   : sv_snapmig_busy(g) ? "a migration, save or restore is under way"
	                   : g->busy_op ? busy
	                   : sv_hotplug_disk_busy(g) ? "a disk hot-plug or unplug is running"
	                   : g->adopting ? "it is being re-adopted; try again"
	                   : act == CREATE && s ? "a snapshot of that name exists"
	                   : act != CREATE && !s ? "no snapshot of that name (snapshot NAME "
	                                           "list shows them)"
	                   : NULL;
	if (!refuse && sv_guest_active(g) && !sv_guest_qmp_up(g) && act != REVERT)
		refuse = "QEMU is not running yet; try again once it runs";
	if (refuse) {
		json_decref(rec);
		sv_reply_err(req, act == CREATE && s ? "InvalidArgument" : !s && act != CREATE
		             ? "NotFound" : "InvalidState", "%s: snapshot %s: %s", g->name, name,
		             refuse);
		return;
	}
	bool force = json_is_true(json_object_get(args, "force"));
	bool memory = json_is_true(json_object_get(args, "memory"));
	if (memory && !sv_guest_qmp_up(g)) {
		json_decref(rec);
		sv_reply_err(req, "InvalidState", "%s is %s: a snapshot with memory needs the guest "
		             "running (or paused)", g->name, sv_state_name(g->state));
		return;
	}
	if (act == REVERT && sv_guest_active(g) && !force) {
		json_decref(rec);
		sv_reply_err(req, "InvalidState", "%s is %s: revert needs the guest stopped "
		             "(stop it, or revert --force to stop it at once)", g->name,
		             sv_state_name(g->state));
		return;
	}
	struct sv_snap_op *op = calloc(1, sizeof(*op));
	json_t *hp = sv_snapshot_hp_disks(p);
	if (op)
		op->d = calloc(p->ndrives + json_object_size(hp) +
		               json_object_size(json_object_get(s, "layers")) + 1, sizeof(*op->d));
	if (op)
		op->hp = hp;
	else
		json_decref(hp);
	if (!op || !op->d || sv_snaprec_path(p, op->recpath, sizeof(op->recpath)) < 0) {
		if (op)
			free(op->d);
		free(op);
		json_decref(rec);
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	op->g = g;
	sv_opwork_init(&op->work, g, op, "qemu-img-snapshot.log");   /* in RUNDIR/NAME */
	op->req = req;
	op->action = act;
	op->force = force;
	op->memory = memory;
	op->was_paused = act == CREATE && g->state == SV_PAUSED;
	op->rec = rec;
	op->had_rec = access(op->recpath, F_OK) == 0;
	op->newrec = json_deep_copy(rec);
	op->live = sv_guest_qmp_up(g);
	snprintf(op->snap, sizeof(op->snap), "%s", name);
	g->snap = op;
	sv_guest_hold(g);
	if (act == CREATE) {
		if (!setup_create(op, p))
			return;
		if (op->memory && !op->was_paused) {
			struct sv_request *r = ireq(op, "pause", on_paused);
			if (!r || sv_guest_simple(g, "pause", r, &e) < 0)
				op_fail(op, "GenericError", "pause: %s", r ? e.msg : "out of memory");
		} else if (op->live) {
			sv_step(g->qmp, NULL, "query-block", NULL, -1, on_blocks, op);
		} else {
			create_img(op);
		}
		return;
	}
	if (act == REVERT) {
		if (!setup_revert(op, p, s))
			return;
		if (!sv_guest_active(g)) {
			revert_img(op);
			return;
		}
		op->route = (struct sv_route){ .answer = on_stopped, .arg = op };
		struct sv_request *sr = sv_request_new(&op->route, 0, 0, NULL, "stop");
		if (!sr || sv_guest_stop(g, true, 0, sr, &e) < 0)
			op_fail(op, "GenericError", "cannot stop the guest: %s", sr ? e.msg
			        : "out of memory");
		return;
	}
	if (!setup_delete(op, p, s))
		return;
	sv_opwork_run(&op->work, delete_read, delete_read_done);
}

const char *sv_snapshot_running(struct sv_guest *g)
{
	return !g->snap ? NULL : g->snap->action == CREATE ? "create"
	       : g->snap->action == REVERT ? "revert" : "delete";
}
