/* Snapshot delete (snapshot_int.h; the whole is told in snapshot.h): each
 * layer merged into the image above it, and the observer of the merges'
 * block jobs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockgraph.h"
#include "fdpass.h"
#include "hotplug.h"
#include "image.h"
#include "log.h"
#include "snapshot_int.h"

/* ---- delete ---- */

static void delete_merge(struct sv_snap_op *op);
static void delete_finished(void *arg);

/* Off the loop: each layer's backing file, and where it and the image
 * above sit in the running chain. */
void snap_delete_read(void *arg)
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
	snap_write_new(op);
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
		snap_op_fail(op, "GenericError", "the layers were merged, but the record could not "
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
	snap_op_end(op);
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
		snap_op_fail(op, "GenericError", "disk %s: qemu-img rebase %s: %s (nothing changed "
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
		snap_op_fail(op, "GenericError", "disk %s: block-stream: %s (nothing changed)",
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
		snap_op_fail(op, "GenericError", "disk %s: %s (nothing changed)", op->d[op->i].id,
		             why);
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
		snap_op_fail(op, "GenericError", "disk %s: add-fd: %s", d->id,
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
		snap_op_fail(op, "GenericError", "query-named-block-nodes: %s",
		             r->err_desc ? r->err_desc : qmp_strerror(r->status));
		return;
	}
	json_decref(op->result);
	op->result = json_incref(r->ret);
	snprintf(top, sizeof(top), "%s", d->node);
	if (!node_at(op, top, d->poschild, d->node, sizeof(d->node), &cfd) ||
	    !node_at(op, top, d->posbelow, d->bnode, sizeof(d->bnode), NULL) ||
	    !node_at(op, top, d->posbelow - 1, d->lnode, sizeof(d->lnode), &d->lfdset)) {
		snap_op_fail(op, "GenericError", "disk %s: QEMU's block graph does not match the "
		             "chain of %s", d->id, d->top);
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
		snap_op_fail(op, "GenericError", "x-debug-query-block-graph: %s", r->err_desc
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
		snap_op_fail(op, "GenericError", "disk %s is not in QEMU's block devices", d->id);
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
			snap_op_fail(op, "InvalidState", "QEMU ended during the delete");
			return;
		}
		sv_step(op->g->qmp, NULL, "query-block", NULL, -1, on_top, op);
		return;
	}
	if (op->live && sv_guest_active(op->g) && d->poschild >= 0) {
		snap_op_fail(op, "GenericError", "disk %s: the running chain does not hold %s "
		             "under %s", d->id, d->below, d->child);
		return;
	}
	/* Not in QEMU's chain (or the guest is stopped): qemu-img rebase copies
	 * what the layer holds into the image above, then re-points it. */
	const char *args[] = { "rebase", "-q", "-f", "qcow2", "-F", d->belowfmt, "-b", d->below,
	                       "--", d->child, NULL };
	progress(op, "merging", NULL);
	int rc = sv_opwork_img(&op->work, args, on_rebased);
	if (rc < 0)
		snap_op_fail(op, "GenericError", "cannot run qemu-img: %s", uv_strerror(rc));
}

void snap_delete_read_done(void *arg)
{
	struct sv_snap_op *op = arg;
	if (op->work.rc < 0) {
		snap_op_fail(op, "GenericError", "%s", op->work.err.msg);
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
		snap_op_fail(op, "GenericError", "disk %s: the merge (block-stream) failed: %s; "
		             "the chain is as it was", d->id, err ? err : "cancelled");
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
		snap_op_fail(op, "GenericError", "QEMU ended during the merge of disk %s; the "
		             "record is unchanged (the next start boots the same chain)",
		             op->d[op->i].id);
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
