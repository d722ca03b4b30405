/* disk-resize: see resize.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "guest.h"
#include "hotplug.h"
#include "log.h"
#include "request.h"
#include "resize.h"
#include "snapshot.h"
#include "snaprec.h"
#include "subproc.h"
#include "step.h"

struct rs_op {
	struct sv_guest *g;
	struct sv_request *req;
	char id[SV_ID_MAX + 1];
	char node[SV_ID_MAX + 16];
	char *file, *format;
	uint64_t size, old;
};

static void op_end(struct rs_op *op)
{
	if (op->g->busy_op && !strcmp(op->g->busy_op, "disk-resize"))
		op->g->busy_op = NULL;
	sv_guest_unhold(op->g);
	free(op->file);
	free(op->format);
	free(op);
}

static void reply_done(struct rs_op *op, bool live, bool changed)
{
	sv_reply_ok(op->req, json_pack("{s:s, s:s?, s:I, s:I, s:b, s:b}", "id", op->id, "file",
	            op->file, "old_size", (json_int_t)op->old, "size", (json_int_t)op->size,
	            "live", live, "changed", changed));
}

/* Shrinking or an unchanged size: answered here (true). */
static bool refused_or_same(struct rs_op *op, bool live)
{
	if (op->size < op->old) {
		sv_reply_err(op->req, "InvalidArgument", "%s: disk %s is %llu bytes; shrinking it to "
		             "%llu is refused (the guest's file systems do not shrink with it)",
		             op->g->name, op->id, (unsigned long long)op->old,
		             (unsigned long long)op->size);
		return true;
	}
	if (op->size == op->old) {
		reply_done(op, live, false);
		return true;
	}
	return false;
}

/* ---- live: block_resize ---- */

static void on_resized(void *ctx, const struct qmp_result *r)
{
	struct rs_op *op = ctx;
	if (r->status != 0) {
		sv_reply_err(op->req, r->err_class ? r->err_class : "GenericError",
		             "%s: block_resize of %s: %s", op->g->name, op->id,
		             r->err_desc ? r->err_desc : qmp_strerror(r->status));
	} else {
		sv_log(SV_LOG_INFO, op->g->name, "disk %s grown from %llu to %llu bytes (live)",
		       op->id, (unsigned long long)op->old, (unsigned long long)op->size);
		reply_done(op, true, true);
	}
	op_end(op);
}

/* Disk id's image as qsup boots it: its snapshot record's active layer
 * (snaprec.h) when it has one, else the profile's file (NULL: none). A
 * small read on the loop, as `snapshot list`. */
static void image_of(struct rs_op *op, const struct sv_profile *p, bool *layer)
{
	json_t *rec = NULL, *a;
	struct sv_error e = { 0 };
	free(op->file);
	free(op->format);
	op->file = op->format = NULL;
	*layer = false;
	if (p && sv_snaprec_read(p, &rec, &e) == 0 && (a = sv_snaprec_active(rec, op->id))) {
		op->file = strdup(sv_jstr(a, "file", ""));
		op->format = strdup(sv_jstr(a, "format", "qcow2"));
		*layer = true;
	}
	for (size_t k = 0; !op->file && p && k < p->ndrives; k++)
		if (!strcmp(p->drives[k].id, op->id) && p->drives[k].file) {
			op->file = strdup(p->drives[k].file);
			op->format = strdup(p->drives[k].format);
		}
	json_decref(rec);
}

/* The disk's top node as QEMU runs it now (query-block): after a live
 * snapshot that is the active overlay's, not the profile's drive.ID. */
static void on_block(void *ctx, const struct qmp_result *r)
{
	struct rs_op *op = ctx;
	size_t i;
	json_t *b, *in = NULL;
	bool cd = false, layer;
	if (r->status != 0) {
		sv_reply_err(op->req, "GenericError", "%s: query-block: %s", op->g->name,
		             r->err_desc ? r->err_desc : qmp_strerror(r->status));
		op_end(op);
		return;
	}
	json_array_foreach(r->ret, i, b)
		if (sv_block_of(b, op->id)) {
			cd = json_is_true(json_object_get(b, "removable"));
			in = json_object_get(b, "inserted");
		}
	if (!in || cd) {
		sv_reply_err(op->req, "NotFound", "%s has no disk %s (a CD-ROM cannot be resized)",
		             op->g->name, op->id);
		op_end(op);
		return;
	}
	if (json_is_true(json_object_get(in, "ro"))) {
		sv_reply_err(op->req, "InvalidArgument", "%s: disk %s is read-only", op->g->name,
		             op->id);
		op_end(op);
		return;
	}
	snprintf(op->node, sizeof(op->node), "%s", sv_jstr(in, "node-name", ""));
	op->old = (uint64_t)json_integer_value(json_object_get(json_object_get(in, "image"),
	                                                       "virtual-size"));
	/* The path qsup knows rather than QEMU's /dev/fdset/N. */
	image_of(op, op->g->run_profile, &layer);
	if (!op->file && json_is_string(json_object_get(in, "file")))
		op->file = strdup(sv_jstr(in, "file", ""));
	if (refused_or_same(op, true)) {
		op_end(op);
		return;
	}
	sv_step(op->g->qmp, NULL, "block_resize", json_pack("{s:s, s:I}", "node-name", op->node,
	        "size", (json_int_t)op->size), -1, on_resized, op);
}

/* ---- offline: qemu-img info, then qemu-img resize ---- */

static void on_img_resized(int64_t status, int sig, const char *out, void *arg)
{
	struct rs_op *op = arg;
	if (status != 0 || sig) {
		sv_reply_err(op->req, "GenericError", "%s: qemu-img resize %s: %s", op->g->name,
		             op->file, *out ? out : "failed");
	} else {
		sv_log(SV_LOG_INFO, op->g->name, "disk %s (%s) grown from %llu to %llu bytes",
		       op->id, op->file, (unsigned long long)op->old, (unsigned long long)op->size);
		reply_done(op, false, true);
	}
	op_end(op);
}

static void on_img_info(int64_t status, int sig, const char *out, void *arg)
{
	struct rs_op *op = arg;
	json_error_t jerr;
	json_t *info = status == 0 && !sig ? json_loads(out, 0, &jerr) : NULL;
	json_t *vs = json_object_get(info, "virtual-size");
	if (!json_is_integer(vs)) {
		sv_reply_err(op->req, "GenericError", "%s: qemu-img info %s: %s", op->g->name,
		             op->file, info ? "no virtual-size" : *out ? out : "failed");
		json_decref(info);
		op_end(op);
		return;
	}
	op->old = (uint64_t)json_integer_value(vs);
	json_decref(info);
	if (refused_or_same(op, false)) {
		op_end(op);
		return;
	}
	char size[32];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)op->size);
	char *argv[] = { "qemu-img", "resize", "-q", "-f", op->format, "--", op->file, size,
	                 NULL };
	int rc = sv_run(op->g->env->loop, argv, on_img_resized, op);
	if (rc < 0) {
		sv_reply_err(op->req, "GenericError", "%s: cannot run qemu-img: %s", op->g->name,
		             uv_strerror(rc));
		op_end(op);
	}
}

static void offline(struct rs_op *op)
{
	const struct sv_profile *p = op->g->profile;
	const struct sv_drive *d = NULL;
	struct stat st;
	for (size_t k = 0; p && k < p->ndrives; k++)
		if (!strcmp(p->drives[k].id, op->id))
			d = &p->drives[k];
	if (!d || d->cdrom) {
		sv_reply_err(op->req, "NotFound", "%s has no disk %s in its profile%s", op->g->name,
		             op->id, d ? " (a CD-ROM cannot be resized)" : "");
		op_end(op);
		return;
	}
	if (d->read_only) {
		sv_reply_err(op->req, "InvalidArgument", "%s: disk %s is read-only", op->g->name,
		             op->id);
		op_end(op);
		return;
	}
	json_t *rec = NULL;
	struct sv_error e = { 0 };
	if (sv_snaprec_read(p, &rec, &e) < 0) {
		sv_reply_err(op->req, "GenericError", "%s: the snapshot record cannot be used: %s "
		             "(qsupd --check %s)", op->g->name, e.msg, op->g->name);
		op_end(op);
		return;
	}
	json_decref(rec);
	if (stat(d->file, &st) < 0) {
		sv_reply_err(op->req, "NotFound", "%s: disk %s: %s: %s (qsupd creates a missing "
		             "image at the next start from the profile's size =: change that "
		             "instead)", op->g->name, op->id, d->file, strerror(errno));
		op_end(op);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		sv_reply_err(op->req, "InvalidArgument", "%s: disk %s: %s is not an image file",
		             op->g->name, op->id, d->file);
		op_end(op);
		return;
	}
	/* With snapshots, the active layer grows (what the guest boots); the
	 * snapshots' layers keep the size they had. */
	bool layer;
	image_of(op, p, &layer);
	if (!op->file || !op->format) {
		sv_reply_err(op->req, "GenericError", "out of memory");
		op_end(op);
		return;
	}
	op->g->busy_op = "disk-resize";
	char *argv[] = { "qemu-img", "info", "--output=json", "-f", op->format, "--", op->file,
	                 NULL };
	int rc = sv_run(op->g->env->loop, argv, on_img_info, op);
	if (rc < 0) {
		sv_reply_err(op->req, "GenericError", "%s: cannot run qemu-img: %s", op->g->name,
		             uv_strerror(rc));
		op_end(op);
	}
}

void sv_resize_verb(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *id = json_string_value(json_object_get(args, "id"));
	json_t *sz = json_object_get(args, "size");
	uint64_t size = 0;
	if (!id || !sv_device_id_valid(id) || (!json_is_string(sz) && !json_is_integer(sz))) {
		sv_reply_err(req, "InvalidArgument", "disk-resize needs {\"name\", \"id\": a disk id, "
		             "\"size\": bytes or a size such as \"20G\"}");
		return;
	}
	if (json_is_integer(sz) ? json_integer_value(sz) <= 0
	    : sv_size_parse(json_string_value(sz), &size) < 0) {
		sv_reply_err(req, "InvalidArgument", "size: use bytes or a number with K, M, G or T");
		return;
	}
	if (json_is_integer(sz))
		size = (uint64_t)json_integer_value(sz);
	if (size % 512) {
		sv_reply_err(req, "InvalidArgument", "size: %llu is not a multiple of 512 bytes",
		             (unsigned long long)size);
		return;
	}
	if (g->busy_op) {
		sv_reply_err(req, "Busy", "%s: a %s runs on its disks", g->name, g->busy_op);
		return;
	}
	if (sv_snapshot_refuse(g, req))
		return;
	bool up = g->state == SV_RUNNING || g->state == SV_PAUSED;
	if (!up && (sv_guest_active(g) || g->prepping)) {
		sv_reply_err(req, "Busy", "%s is %s: resize it once it runs or has stopped", g->name,
		             sv_state_name(g->state));
		return;
	}
	struct rs_op *op = calloc(1, sizeof(*op));
	if (!op) {
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	op->g = g;
	op->req = req;
	op->size = size;
	snprintf(op->id, sizeof(op->id), "%s", id);
	sv_guest_hold(g);
	if (up) {
		g->busy_op = "disk-resize";   /* snapshots wait (snapshot.h) */
		sv_step(g->qmp, NULL, "query-block", NULL, -1, on_block, op);
	} else {
		offline(op);
	}
}
