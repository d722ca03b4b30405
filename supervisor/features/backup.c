/* Backups: see backup.h (and backup_int.h for its files): the operation, the
 * manifests, the backup verb's start, backup-cancel. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "backup_int.h"
#include "blockadd.h"
#include "fdpass.h"
#include "guest.h"
#include "hotplug.h"
#include "log.h"
#include "opwork.h"
#include "request.h"
#include "snapshot.h"
#include "snaprec.h"
#include "step.h"
#include "subproc.h"

const char bk_restore_busy[] = "a backup-restore writes its disks";

bool sv_backup_busy(const struct sv_guest *g)
{
	return g->backup != NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
	free(h);
}

void bk_op_free(struct sv_backup_op *op)
{
	for (size_t i = 0; i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		json_decref(d->bitmaps);
		free(d->part);
		free(d->final);
		free(d->backing);
		free(d->err);
		free(d->src);
		free(d->dst);
		free(d->dstfmt);
		if (d->fd >= 0)
			close(d->fd);
	}
	free(op->d);
	free(op->bitems);
	json_decref(op->pmanifest);
	json_decref(op->rec);
	free(op);
}

void bk_op_end(struct sv_backup_op *op)
{
	struct sv_guest *g = op->g;
	if (op->timer) {
		uv_timer_stop(op->timer);
		uv_close((uv_handle_t *)op->timer, on_timer_closed);
		op->timer = NULL;
	}
	if (g->backup == op)
		g->backup = NULL;
	if (op->restore && g->busy_op == bk_restore_busy)
		g->busy_op = NULL;
	op->dead = true;
	if (!op->inflight)
		bk_op_free(op);
	sv_guest_unhold(g);
}

struct bdisk *bk_disk_new(struct sv_backup_op *op, const char *id)
{
	struct bdisk *d = &op->d[op->n++];
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->fd = d->fdset = -1;
	snprintf(d->tnode, sizeof(d->tnode), "backup-target.%s", id);
	snprintf(d->job, sizeof(d->job), "qsup-backup.%s", id);
	return d;
}

static const char *what(struct sv_backup_op *op)
{
	return op->restore ? "backup-restore" : "backup";
}

/* Answer (and log) an error; the operation goes on (the caller ends it). */
void bk_answer_err(struct sv_backup_op *op, const char *cls, const char *msg)
{
	const char *sp = op->id[0] ? " " : "";
	sv_log(SV_LOG_WARN, op->g->name, "%s%s%s: %s", what(op), sp, op->id, msg);
	if (op->req)
		sv_reply_err(op->req, cls, "%s: %s%s%s: %s", op->g->name, what(op), sp, op->id, msg);
	op->req = NULL;
	if (op->cancel_req)
		sv_reply_ok(op->cancel_req, json_pack("{s:s, s:s, s:s}", "name", op->g->name,
		            "backup", op->id, "status", "cancelled"));
	op->cancel_req = NULL;
}

void bk_op_fail(struct sv_backup_op *op, const char *cls, const char *fmt, ...)
{
	char msg[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bk_answer_err(op, cls, msg);
	bk_op_end(op);
}

/* The work off the loop failed: its error is the answer. */
void bk_work_failed(struct sv_backup_op *op)
{
	const struct sv_error *e = &op->work.err;
	bk_op_fail(op, e->cls ? e->cls : "GenericError", "%s", e->msg);
}

/* ---- manifests ---- */

const char *BK_MANIFEST_SUFFIX = ".backup.json";

/* Every complete manifest of guest in dir, oldest first (by "finished",
 * then ID). Off the loop. */
json_t *bk_read_manifests(const char *dir, const char *guest)
{
	json_t *out = json_array();
	DIR *dh = opendir(dir);
	struct dirent *e;
	size_t gl = strlen(guest), sl = strlen(BK_MANIFEST_SUFFIX);
	if (!dh)
		return out;
	while ((e = readdir(dh))) {
		size_t l = strlen(e->d_name);
		if (l <= gl + 1 + sl || strncmp(e->d_name, guest, gl) || e->d_name[gl] != '-' ||
		    strcmp(e->d_name + l - sl, BK_MANIFEST_SUFFIX))
			continue;
		char path[4400];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		json_t *m = json_load_file(path, 0, NULL);
		if (json_is_object(m) && !strcmp(sv_jstr(m, "guest", ""), guest) &&
		    json_is_string(json_object_get(m, "backup")))
			json_array_append(out, m);
		json_decref(m);
	}
	closedir(dh);
	/* insertion sort: a handful of entries */
	size_t n = json_array_size(out);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0; j--) {
			json_t *a = json_array_get(out, j - 1), *b = json_array_get(out, j);
			int c = strcmp(sv_jstr(a, "finished", ""), sv_jstr(b, "finished", ""));
			if (!c)
				c = strcmp(sv_jstr(a, "backup", ""), sv_jstr(b, "backup", ""));
			if (c <= 0)
				break;
			json_incref(a);
			json_array_set(out, j - 1, b);
			json_array_set_new(out, j, a);
		}
	return out;
}

json_t *bk_find_manifest(json_t *all, const char *id)
{
	json_t *m;
	size_t i;
	json_array_foreach(all, i, m)
		if (!strcmp(sv_jstr(m, "backup", ""), id))
			return m;
	return NULL;
}

/* ---- the backup's start ---- */

/* The answer of a failed start or restore, once its files are gone: the
 * class in err.cls, the message in why. */
void bk_fail_done(void *arg)
{
	struct sv_backup_op *op = arg;
	bk_answer_err(op, op->work.err.cls ? op->work.err.cls : "GenericError", op->why);
	bk_op_end(op);
}

/* Before the jobs: drop what was made (targets in QEMU, files, the record). */
static void setup_fail(struct sv_backup_op *op, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void setup_fail(struct sv_backup_op *op, const char *cls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->why, sizeof(op->why), fmt, ap);
	va_end(ap);
	op->work.err.cls = cls;
	if (op->bitems)
		sv_blockadd_drop(op->g, op->bitems, op->n);
	for (size_t i = 0; i < op->n; i++)
		if (!op->d[i].made) {
			free(op->d[i].part);   /* not ours: another backup's, or none */
			op->d[i].part = NULL;
		}
	sv_opwork_run(&op->work, bk_finish_fail_work, bk_fail_done);
}

static void on_transaction(void *ctx, const struct qmp_result *r)
{
	struct sv_backup_op *op = ctx;
	sv_freeze_end(op->g, &op->fz);
	op->in_txn = false;
	if (r->status != 0) {
		op->started = false;
		const char *e = r->err_desc ? r->err_desc : qmp_strerror(r->status);
		setup_fail(op, "GenericError", "QEMU refused to start the backup: %s%s", e,
		           strstr(e, "inconsistent") ? " (QEMU ended without storing it: take a "
		           "full backup)" : "");
		return;
	}
	bk_start_timer(op);
	sv_log(SV_LOG_INFO, op->g->name, "backup %s (%s) started into %s (%s)", op->id,
	       op->full ? "full" : "incremental", op->dir, op->fz.how);
	if (!op->wait) {
		json_t *disks = json_object();
		for (size_t i = 0; i < op->n; i++)
			json_object_set_new(disks, op->d[i].id, json_string(op->d[i].final));
		sv_reply_ok(op->req, json_pack("{s:s, s:s, s:s, s:s, s:o, s:s}", "name",
		            op->g->name, "backup", op->id, "kind", op->full ? "full"
		            : "incremental", "status", "running", "disks", disks, "freeze",
		            op->fz.how));
		op->req = NULL;
	}
	bk_maybe_finish(op);   /* jobs may be over already (events come before the answer) */
}

/* In the agent's freeze (sv_freeze_begin), if it answers. */
static void do_transaction(void *arg)
{
	struct sv_backup_op *op = arg;
	if (!sv_guest_qmp_up(op->g)) {
		sv_freeze_end(op->g, &op->fz);
		setup_fail(op, "InvalidState", "QEMU ended before the backup started");
		return;
	}
	json_t *acts = json_array();
	for (size_t i = 0; i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		if (op->full && !strcmp(d->drv, "qcow2"))
			json_array_append_new(acts, json_pack("{s:s, s:{s:s, s:s, s:b}}", "type",
			                      "block-dirty-bitmap-add", "data", "node", d->node, "name",
			                      op->bitmap, "persistent", 1));
		json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:b}", "job-id", d->job, "device",
		                      d->node, "target", d->tnode, "sync", op->full ? "full"
		                      : "incremental", "auto-dismiss", 0);
		if (!op->full) {
			json_object_set_new(b, "bitmap", json_string(op->bitmap));
			json_object_set_new(b, "bitmap-mode", json_string("on-success"));
		}
		if (op->speed > 0)
			json_object_set_new(b, "speed", json_integer(op->speed));
		json_array_append_new(acts, json_pack("{s:s, s:o}", "type", "blockdev-backup",
		                      "data", b));
	}
	op->started = op->in_txn = true;   /* the jobs' events may come before the answer */
	sv_step(op->g->qmp, NULL, "transaction", json_pack("{s:o}", "actions", acts), -1,
	        on_transaction, op);
}

/* Each target into QEMU as a node of its own (blockadd.h), then the
 * freeze and the transaction. */
static void on_all_added(void *arg, const char *err)
{
	struct sv_backup_op *op = arg;
	if (err)
		setup_fail(op, op->ba.gone ? "InvalidState" : "GenericError", "%s", op->ba.gone
		           ? "QEMU ended before the backup started" : err);
	else
		sv_freeze_begin(op->g, &op->fz, false, "backup", do_transaction, op);
}

static void add_next(struct sv_backup_op *op)
{
	op->bitems = calloc(op->n ? op->n : 1, sizeof(*op->bitems));
	if (!op->bitems) {
		setup_fail(op, "GenericError", "out of memory");
		return;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		struct sv_blockadd_item *it = &op->bitems[i];
		*it = (struct sv_blockadd_item){ .disk = d->id, .path = d->part, .node = d->tnode,
		                                 .fd = &d->fd, .fdset = &d->fdset, .added = &d->added };
		snprintf(it->fnode, sizeof(it->fnode), "%s.file", d->tnode);
	}
	op->ba = (struct sv_blockadd){ .g = op->g, .items = op->bitems, .n = op->n,
	                               .done = on_all_added, .arg = op };
	sv_blockadd_run(&op->ba);
}

/* Off the loop: the targets opened for QEMU, the record of the backup in
 * flight written (before the jobs: a restarted qsupd finds them). */
static void open_work(void *arg)
{
	struct sv_backup_op *op = arg;
	for (size_t i = 0; i < op->n; i++)
		if ((op->d[i].fd = sv_fdpass_file(op->d[i].part, O_RDWR, &op->work.err)) < 0) {
			op->work.rc = op->d[i].fd;
			op->d[i].fd = -1;
			return;
		}
	json_t *s = bk_state_json(op);
	op->work.rc = bk_write_json_atomic(op->statepath, s, &op->work.err);
	json_decref(s);
}

static void open_done(void *arg)
{
	struct sv_backup_op *op = arg;
	if (op->work.rc < 0) {
		setup_fail(op, "GenericError", "%s", op->work.err.msg);
		return;
	}
	op->i = 0;
	add_next(op);
}

static void create_next(struct sv_backup_op *op);

static void on_created(void *arg, bool ok)
{
	struct sv_backup_op *op = arg;
	struct bdisk *d = &op->d[op->i];
	d->made = true;
	if (!ok) {
		char tail[600];
		sv_opwork_img_tail(&op->work, tail, sizeof(tail));
		setup_fail(op, "GenericError", "disk %s: qemu-img create %s: %s", d->id, d->part,
		           tail);
		return;
	}
	op->i++;
	create_next(op);
}

static void create_next(struct sv_backup_op *op)
{
	if (op->i == op->n) {
		sv_opwork_run(&op->work, open_work, open_done);
		return;
	}
	struct bdisk *d = &op->d[op->i];
	char size[32];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)d->size);
	const char *full[] = { "create", "-q", "-f", "qcow2", "--", d->part, size, NULL };
	const char *inc[] = { "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", d->backing,
	                      "-u", "--", d->part, size, NULL };
	int rc = sv_opwork_img(&op->work, op->full ? full : inc, on_created);
	if (rc < 0)
		setup_fail(op, "GenericError", "cannot run qemu-img: %s", uv_strerror(rc));
}

/* Off the loop: the target directory, its manifests, the kind, the names. */
static void prepare_work(void *arg)
{
	struct sv_backup_op *op = arg;
	struct stat st;
	if (stat(op->dir, &st) < 0) {
		op->work.rc = sv_error_setc(&op->work.err, -errno, "InvalidArgument", "the target "
		                            "directory %s: %s", op->dir, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		op->work.rc = sv_error_setc(&op->work.err, -ENOTDIR, "InvalidArgument", "%s is not "
		                            "a directory", op->dir);
		return;
	}
	if (access(op->dir, W_OK) < 0) {
		op->work.rc = sv_error_setc(&op->work.err, -errno, "InvalidArgument", "the target "
		                            "directory %s is not writable: %s", op->dir,
		                            strerror(errno));
		return;
	}
	json_t *all = bk_read_manifests(op->dir, op->g->name);
	json_t *last = json_array_get(all, json_array_size(all) - 1);
	if (op->autokind)
		op->full = !last;
	if (!op->full && !last) {
		json_decref(all);
		op->work.rc = sv_error_setc(&op->work.err, -ENOENT, "InvalidState", "%s holds no "
		                            "backup of %s to be incremental to: take a full one "
		                            "first", op->dir, op->g->name);
		return;
	}
	/* The ID: the time, unique among the dir's names. */
	char stamp[32], probe[4400];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(op->id, sizeof(op->id), "%s", stamp);
	for (int k = 2; ; k++) {
		bool taken = false;
		snprintf(probe, sizeof(probe), "%s/%s-%s%s", op->dir, op->g->name, op->id,
		         BK_MANIFEST_SUFFIX);
		taken |= access(probe, F_OK) == 0;
		for (size_t i = 0; i < op->n && !taken; i++) {
			snprintf(probe, sizeof(probe), "%s/%s-%s.%s.qcow2", op->dir, op->g->name,
			         op->id, op->d[i].id);
			taken |= access(probe, F_OK) == 0;
			strcat(probe, ".part");
			taken |= access(probe, F_OK) == 0;
		}
		if (!taken)
			break;
		snprintf(op->id, sizeof(op->id), "%s-%d", stamp, k);
	}
	sv_opwork_now(op->created, sizeof(op->created));
	if (op->full) {
		snprintf(op->chain, sizeof(op->chain), "%s", op->id);
	} else {
		op->pmanifest = json_incref(last);
		snprintf(op->chain, sizeof(op->chain), "%s", sv_jstr(last, "chain", ""));
		snprintf(op->parent, sizeof(op->parent), "%s", sv_jstr(last, "backup", ""));
	}
	snprintf(op->bitmap, sizeof(op->bitmap), BITMAP_PREFIX "%s", op->chain);
	json_decref(all);
	for (size_t i = 0; i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		if (asprintf(&d->final, "%s/%s-%s.%s.qcow2", op->dir, op->g->name, op->id, d->id) < 0 ||
		    asprintf(&d->part, "%s.part", d->final) < 0) {
			d->final = d->part = NULL;
			op->work.rc = sv_error_set(&op->work.err, -ENOMEM, "out of memory");
			return;
		}
	}
}

static bool has_bitmap(struct bdisk *d, const char *name)
{
	json_t *b;
	size_t k;
	json_array_foreach(d->bitmaps, k, b)
		if (!strcmp(sv_or(json_string_value(b), ""), name))
			return true;
	return false;
}

static void prepare_done(void *arg)
{
	struct sv_backup_op *op = arg;
	if (op->work.rc < 0) {
		bk_work_failed(op);
		return;
	}
	for (size_t i = 0; !op->full && i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		json_t *pd = json_object_get(json_object_get(op->pmanifest, "disks"), d->id);
		if (strcmp(d->drv, "qcow2")) {
			bk_op_fail(op, "InvalidArgument", "disk %s is %s, not qcow2: it has no dirty "
			           "bitmap, so no incremental backup (take a full one)", d->id, d->drv);
			return;
		}
		if (!pd) {
			bk_op_fail(op, "InvalidState", "disk %s is not in the previous backup %s: take a "
			           "full one", d->id, op->parent);
			return;
		}
		if (!has_bitmap(d, op->bitmap)) {
			bk_op_fail(op, "InvalidState", "disk %s has no dirty bitmap %s (the chain of %s; "
			           "a snapshot since, or a newer full backup elsewhere?): take a full "
			           "one", d->id, op->bitmap, op->chain);
			return;
		}
		d->backing = strdup(sv_jstr(pd, "file", ""));
	}
	op->i = 0;
	create_next(op);
}

static void on_blocks(void *ctx, const struct qmp_result *r)
{
	struct sv_backup_op *op = ctx;
	json_t *bm;
	size_t m;
	if (r->status != 0) {
		bk_op_fail(op, "GenericError", "query-block: %s", r->err_desc ? r->err_desc
		           : qmp_strerror(r->status));
		return;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		json_t *in = sv_block_inserted(r->ret, d->id);
		if (in) {
			snprintf(d->node, sizeof(d->node), "%s", sv_jstr(in, "node-name", ""));
			snprintf(d->drv, sizeof(d->drv), "%s", sv_jstr(in, "drv", ""));
			d->size = (uint64_t)json_integer_value(json_object_get(json_object_get(in,
			          "image"), "virtual-size"));
			d->bitmaps = json_array();
			json_array_foreach(json_object_get(in, "dirty-bitmaps"), m, bm)
				json_array_append_new(d->bitmaps, json_string(sv_jstr(bm, "name", "")));
		}
		if (!d->node[0] || !d->size) {
			bk_op_fail(op, "GenericError", "disk %s is not in QEMU's block devices", d->id);
			return;
		}
	}
	sv_opwork_run(&op->work, prepare_work, prepare_done);
}

/* An operation on p's writable disks: the profile's, then those hot-plugged
 * with --persist. NULL: req is answered. */
struct sv_backup_op *bk_op_new(struct sv_guest *g, struct sv_request *req,
                               const struct sv_profile *p)
{
	json_t *hp = sv_snapshot_hp_disks(p), *v;
	const char *id;
	struct sv_backup_op *op = calloc(1, sizeof(*op));
	if (op)
		op->d = calloc(p->ndrives + json_object_size(hp) + 1, sizeof(*op->d));
	if (!op || !op->d) {
		free(op);
		json_decref(hp);
		sv_reply_err(req, "GenericError", "out of memory");
		return NULL;
	}
	op->g = g;
	sv_opwork_init(&op->work, g, op, IMG_LOG);
	op->req = req;
	op->t0 = uv_now(g->env->loop);
	bk_record_path(g, op->statepath, sizeof(op->statepath));
	for (size_t i = 0; i < p->ndrives; i++)
		if (sv_snap_disk(&p->drives[i])) {
			struct bdisk *d = bk_disk_new(op, p->drives[i].id);
			d->dst = strdup(p->drives[i].file);
			d->dstfmt = strdup(p->drives[i].format);
		}
	json_object_foreach(hp, id, v)
		if (sv_profile_find_device(p, id) < 0) {
			struct bdisk *d = bk_disk_new(op, id);
			d->dst = strdup(sv_jstr(v, "file", ""));
			d->dstfmt = strdup(sv_jstr(v, "format", "raw"));
		}
	json_decref(hp);
	return op;
}

/* Refused while another storage operation runs on g; NULL: go. */
static const char *busy(struct sv_guest *g)
{
	return g->backup ? (g->backup->restore ? "a backup-restore is under way"
	                                       : "another backup is under way")
	     : g->snap ? "a snapshot operation is under way"
	     : g->mig || g->state == SV_MIGRATING || g->state == SV_INCOMING
	       ? "a migration, save or restore is under way"
	     : g->busy_op ? g->busy_op
	     : g->adopting ? "it is being re-adopted; try again" : NULL;
}

/* Answers req when g has no profile or is busy (verb: the message's). */
bool bk_refused(struct sv_guest *g, struct sv_request *req, const struct sv_profile *p,
                const char *verb)
{
	const char *refuse = busy(g);
	if (!p)
		sv_reply_err(req, "NotFound", "%s has no profile", g->name);
	else if (refuse)
		sv_reply_err(req, "InvalidState", "%s: %s: %s", g->name, verb, refuse);
	return !p || refuse;
}

int sv_backup_check(json_t *args, struct sv_error *err)
{
	json_t *dir = json_object_get(args, "dir"), *kind = json_object_get(args, "kind");
	json_t *speed = json_object_get(args, "speed"), *wait = json_object_get(args, "wait");
	if (!json_is_string(dir) || json_string_value(dir)[0] != '/')
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "backup needs {\"name\", "
		                     "\"dir\": the target directory, an absolute path}");
	if (kind && (!json_is_string(kind) || (strcmp(json_string_value(kind), "full") &&
	    strcmp(json_string_value(kind), "incremental"))))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "\"kind\" must be \"full\" or "
		                     "\"incremental\"");
	if (speed && (!json_is_integer(speed) || json_integer_value(speed) < 0))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "\"speed\" must be a number of "
		                     "bytes per second (0: no limit)");
	if (wait && !json_is_boolean(wait))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "\"wait\" must be true or "
		                     "false");
	return 0;
}

void sv_backup_cmd(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const struct sv_profile *p = sv_guest_profile_now(g);
	if (bk_refused(g, req, p, "backup"))
		return;
	if (!sv_guest_qmp_up(g)) {
		sv_reply_err(req, "InvalidState", "%s is %s: a backup needs the guest running (or "
		             "paused); a stopped guest's images can be copied as they are",
		             g->name, sv_state_name(g->state));
		return;
	}
	struct sv_backup_op *op = bk_op_new(g, req, p);
	if (!op)
		return;
	if (!op->n) {
		sv_reply_err(req, "InvalidArgument", "%s has no writable disk to back up", g->name);
		bk_op_free(op);
		return;
	}
	const char *kind = json_string_value(json_object_get(args, "kind"));
	snprintf(op->dir, sizeof(op->dir), "%s", sv_jstr(args, "dir", ""));
	op->full = kind && !strcmp(kind, "full");
	op->wait = json_is_true(json_object_get(args, "wait"));
	op->speed = json_integer_value(json_object_get(args, "speed"));
	op->autokind = !kind;   /* incremental when the dir holds a backup of g */
	g->backup = op;
	sv_guest_hold(g);
	sv_step(g->qmp, NULL, "query-block", NULL, -1, on_blocks, op);
}

/* ---- backup-cancel ---- */

void sv_backup_cancel(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	struct sv_backup_op *op = g->backup;
	(void)args;
	if (!op || op->restore) {
		sv_reply_err(req, "InvalidState", "%s: no backup is under way", g->name);
		return;
	}
	if (op->cancel_req) {
		sv_reply_err(req, "InvalidState", "%s: backup %s is being cancelled already",
		             g->name, op->id);
		return;
	}
	if (!op->started) {
		sv_reply_err(req, "InvalidState", "%s: backup %s is starting; cancel it once it "
		             "runs (status shows it)", g->name, op->id);
		return;
	}
	op->cancel_req = req;
	op->cancelling = true;
	bk_cancel_pending(op);
}
