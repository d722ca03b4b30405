/* Disk snapshots (snapshot.h): an operation's life, the snapshot record,
 * the verb; create and revert are in snapcreate.c, delete in snapdelete.c
 * (snapshot_int.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hotplug.h"
#include "log.h"
#include "overlay.h"
#include "snaprec.h"
#include "snapshot_int.h"

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

void snap_op_end(struct sv_snap_op *op)
{
	struct sv_guest *g = op->g;
	if (g->snap == op)
		g->snap = NULL;
	op_free(op);
	sv_guest_unhold(g);
}

static void drop_answer(void *arg, uint64_t peer, json_t *msg)
{
	(void)arg, (void)peer;
	json_decref(msg);
}

/* Answers nobody waits for. */
static const struct sv_route drop_route = { .answer = drop_answer };

void snap_op_fail(struct sv_snap_op *op, const char *cls, const char *fmt, ...)
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
	snap_op_end(op);
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
struct sv_request *snap_ireq(struct sv_snap_op *op, const char *verb,
                             void (*next)(struct sv_snap_op *, json_t *))
{
	op->route = (struct sv_route){ .answer = on_internal, .arg = op };
	op->inext = next;
	return sv_request_new(&op->route, 0, 0, NULL, verb);
}

const char *snap_answer_err(json_t *msg)
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
bool snap_is_layer(json_t *rec, const char *file)
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

void snap_write_new(void *arg)
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
	snap_op_fail(op, "GenericError", "%s", op->work.err.msg);
}

/* Fail with err's message after undoing. */
void snap_undo(struct sv_snap_op *op)
{
	sv_opwork_run(&op->work, undo_work, undo_done);   /* undo_work leaves err as it is */
}

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
			snap_op_fail(op, "InvalidArgument", "disk %s is the block device %s: qsup "
			             "puts overlays next to the disk's file, and cannot next to a "
			             "device", ids[i], base);
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
		snap_op_fail(op, "InvalidArgument", "%s has no writable disk to snapshot", g->name);
		return false;
	}
	if (overlay_paths(op) < 0) {
		json_decref(layers);
		snap_op_fail(op, "InvalidArgument", "an overlay's path would be too long");
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
		snap_op_fail(op, "InvalidArgument", "an overlay's path would be too long");
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
		snap_op_fail(op, "InvalidState", "it has %zu children (later snapshots%s on it); "
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
			struct sv_request *r = snap_ireq(op, "pause", snap_on_paused);
			if (!r || sv_guest_simple(g, "pause", r, &e) < 0)
				snap_op_fail(op, "GenericError", "pause: %s", r ? e.msg
				             : "out of memory");
		} else if (op->live) {
			sv_step(g->qmp, NULL, "query-block", NULL, -1, snap_on_blocks, op);
		} else {
			snap_create_img(op);
		}
		return;
	}
	if (act == REVERT) {
		if (!setup_revert(op, p, s))
			return;
		if (!sv_guest_active(g)) {
			snap_revert_img(op);
			return;
		}
		op->route = (struct sv_route){ .answer = snap_on_stopped, .arg = op };
		struct sv_request *sr = sv_request_new(&op->route, 0, 0, NULL, "stop");
		if (!sr || sv_guest_stop(g, true, 0, sr, &e) < 0)
			snap_op_fail(op, "GenericError", "cannot stop the guest: %s", sr ? e.msg
			             : "out of memory");
		return;
	}
	if (!setup_delete(op, p, s))
		return;
	sv_opwork_run(&op->work, snap_delete_read, snap_delete_read_done);
}

const char *sv_snapshot_running(struct sv_guest *g)
{
	return !g->snap ? NULL : g->snap->action == CREATE ? "create"
	       : g->snap->action == REVERT ? "revert" : "delete";
}
