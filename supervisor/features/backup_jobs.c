/*
 * Backups: a backup in flight (backup_int.h; the whole is told in
 * backup.h): its record in STATE-DIR, its end (the files named complete
 * with their manifest, or dropped; the older chains' bitmaps), its
 * progress, the observer, and the pick-up after a qsupd restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_int.h"
#include "log.h"
#include "request.h"
#include "step.h"

#define PROGRESS_MS 1000

/* ---- the record of a backup in flight (STATE-DIR/NAME.backup.json) ---- */

void bk_record_path(struct sv_guest *g, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s.backup.json", g->env->state_dir, g->name);
}

/* A record left by a backup whose QEMU ended while no qsupd watched it
 * (found when the guest's next QEMU starts): its files go. */
struct stale {
	uv_work_t work;
	char path[4200];
	char name[256];
	char backup[64];
	int removed;
};

static void stale_work(uv_work_t *w)
{
	struct stale *s = w->data;
	json_t *rec = json_load_file(s->path, 0, NULL), *d;
	size_t i;
	if (!rec)
		return;
	snprintf(s->backup, sizeof(s->backup), "%s", sv_jstr(rec, "backup", "?"));
	json_array_foreach(json_object_get(rec, "disks"), i, d) {
		const char *part = json_string_value(json_object_get(d, "part"));
		if (part && unlink(part) == 0)
			s->removed++;
	}
	json_decref(rec);
	unlink(s->path);
}

static void stale_done(uv_work_t *w, int status)
{
	struct stale *s = w->data;
	if (status == 0 && s->backup[0])
		sv_log(SV_LOG_WARN, s->name, "backup %s failed: QEMU ended while no qsupd watched "
		       "it (%d unfinished file%s removed); take a full backup", s->backup,
		       s->removed, s->removed == 1 ? "" : "s");
	free(s);
}

static void bk_qemu_new(struct sv_guest *g)
{
	struct stale *s = g->backup ? NULL : calloc(1, sizeof(*s));
	if (!s)
		return;
	bk_record_path(g, s->path, sizeof(s->path));
	snprintf(s->name, sizeof(s->name), "%s", g->name);
	s->work.data = s;
	if (uv_queue_work(g->env->loop, &s->work, stale_work, stale_done) < 0)
		free(s);
}

json_t *bk_state_json(struct sv_backup_op *op)
{
	json_t *disks = json_array();
	for (size_t i = 0; i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		json_array_append_new(disks, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s?, "
		                      "s:i, s:s, s:s, s:O}", "id", d->id, "node", d->node, "driver",
		                      d->drv, "size", (json_int_t)d->size, "part", d->part, "final",
		                      d->final, "backing", d->backing, "fdset", d->fdset, "tnode",
		                      d->tnode, "job", d->job, "bitmaps", d->bitmaps ? d->bitmaps
		                      : json_null()));
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "dir", op->dir, "backup",
	                 op->id, "kind", op->full ? "full" : "incremental", "chain", op->chain,
	                 "bitmap", op->bitmap, "parent", op->parent, "created", op->created,
	                 "disks", disks);
}

int bk_write_json_atomic(const char *path, json_t *v, struct sv_error *err)
{
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.part", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return sv_error_set(err, -errno, "cannot write %s: %s", tmp, strerror(errno));
	char *text = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
	size_t len = text ? strlen(text) : 0;
	bool ok = text && write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 &&
	          fsync(fd) == 0;
	int e = errno;
	free(text);
	if (close(fd) < 0 && ok) {
		ok = false;
		e = errno;
	}
	if (!ok || rename(tmp, path) < 0) {
		e = ok ? errno : e;
		unlink(tmp);
		return sv_error_set(err, -(e ? e : EIO), "cannot write %s: %s", path,
		                    strerror(e ? e : EIO));
	}
	return 0;
}

/* ---- the end of a backup ---- */

void bk_finish_fail_work(void *arg)
{
	struct sv_backup_op *op = arg;
	for (size_t i = 0; i < op->n; i++)
		if (op->d[i].part)
			unlink(op->d[i].part);
	unlink(op->statepath);
}

static void finish_fail_done(void *arg)
{
	struct sv_backup_op *op = arg;
	sv_emit(op->g->route, json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "event", "BACKUP_END",
	        "guest", op->g->name, "data", "backup", op->id, "status", op->cancelling
	        ? "cancelled" : "failed", "error", op->why));
	bk_answer_err(op, op->cancelling ? "Cancelled" : "GenericError", op->why);
	bk_op_end(op);
}

/* QEMU lets the targets go (the jobs are dismissed first) and the new
 * bitmap of a failed full backup goes; the older chain's stays. */
static void qemu_cleanup(struct sv_backup_op *op, bool ok)
{
	struct qmp_client *q = op->g->qmp;
	for (size_t i = 0; q && sv_guest_qmp_up(op->g) && i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		sv_qmp_fire(q, "job-dismiss", json_pack("{s:s}", "id", d->job));
		sv_qmp_fire(q, "blockdev-del", json_pack("{s:s}", "node-name", d->tnode));
		if (d->fdset >= 0)
			sv_qmp_fire(q, "remove-fd", json_pack("{s:i}", "fdset-id", d->fdset));
		if (!op->full || strcmp(d->drv, "qcow2"))
			continue;
		if (!ok) {
			sv_qmp_fire(q, "block-dirty-bitmap-remove",
			            json_pack("{s:s, s:s}", "node", d->node, "name", op->bitmap));
			continue;
		}
		json_t *b;
		size_t k;
		json_array_foreach(d->bitmaps, k, b) {
			const char *name = json_string_value(b);
			if (!name || strncmp(name, BITMAP_PREFIX, strlen(BITMAP_PREFIX)) ||
			    !strcmp(name, op->bitmap))
				continue;
			sv_qmp_fire(q, "block-dirty-bitmap-remove",
			            json_pack("{s:s, s:s}", "node", d->node, "name", name));
		}
	}
}

static void fail_now(struct sv_backup_op *op)
{
	if (op->timer)
		uv_timer_stop(op->timer);
	qemu_cleanup(op, false);
	sv_opwork_run(&op->work, bk_finish_fail_work, finish_fail_done);
}

static void finish_ok_work(void *arg)
{
	struct sv_backup_op *op = arg;
	json_t *disks = json_object();
	for (size_t i = 0; i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		struct stat st;
		int fd = open(d->part, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0 || fstat(fd, &st) < 0) {
			op->work.rc = sv_error_set(&op->work.err, -errno, "%s: %s", d->part,
			                           strerror(errno));
			if (fd >= 0)
				close(fd);
			json_decref(disks);
			return;
		}
		close(fd);
		const char *base = strrchr(d->final, '/') + 1;
		json_object_set_new(disks, d->id, json_pack("{s:s, s:s, s:s?, s:I, s:I, s:s, s:b}",
		                    "file", base, "format", "qcow2", "backing", d->backing,
		                    "virtual-size", (json_int_t)d->size, "file-size",
		                    (json_int_t)((uint64_t)st.st_blocks * 512), "source-format",
		                    d->drv, "bitmap", !strcmp(d->drv, "qcow2")));
	}
	for (size_t i = 0; i < op->n; i++)
		if (rename(op->d[i].part, op->d[i].final) < 0) {
			op->work.rc = sv_error_set(&op->work.err, -errno, "cannot rename %s: %s",
			                           op->d[i].part, strerror(errno));
			for (size_t k = 0; k < i; k++)   /* nothing named complete without its manifest */
				rename(op->d[k].final, op->d[k].part);
			json_decref(disks);
			return;
		}
	char fin[32], path[4400];
	json_t *m = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s?, s:s, s:s, s:s, s:o, s:b}",
	                      "version", 1, "guest", op->g->name, "backup", op->id, "kind",
	                      op->full ? "full" : "incremental", "chain", op->chain, "parent",
	                      op->parent[0] ? op->parent : NULL, "bitmap", op->bitmap, "started",
	                      op->created, "finished", sv_opwork_now(fin, sizeof(fin)), "disks",
	                      disks, "picked-up", op->recovered);
	snprintf(path, sizeof(path), "%s/%s-%s%s", op->dir, op->g->name, op->id, BK_MANIFEST_SUFFIX);
	op->work.rc = bk_write_json_atomic(path, m, &op->work.err);
	json_decref(m);
	if (op->work.rc < 0) {
		for (size_t k = 0; k < op->n; k++)
			rename(op->d[k].final, op->d[k].part);
		return;
	}
	int dfd = open(op->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	unlink(op->statepath);
}

static void finish_ok_done(void *arg)
{
	struct sv_backup_op *op = arg;
	if (op->work.rc < 0) {
		snprintf(op->why, sizeof(op->why), "%s", op->work.err.msg);
		fail_now(op);
		return;
	}
	qemu_cleanup(op, true);
	json_t *disks = json_object();
	int64_t total = 0;
	for (size_t i = 0; i < op->n; i++) {
		json_object_set_new(disks, op->d[i].id, json_string(op->d[i].final));
		total += op->d[i].total;
	}
	double secs = (double)(uv_now(op->g->env->loop) - op->t0) / 1000.0;
	sv_log(SV_LOG_INFO, op->g->name, "backup %s (%s) complete in %s: %zu disk%s%s", op->id,
	       op->full ? "full" : "incremental", op->dir, op->n, op->n == 1 ? "" : "s",
	       op->recovered ? " (picked up after a qsupd restart)" : "");
	char path[4400];
	snprintf(path, sizeof(path), "%s/%s-%s%s", op->dir, op->g->name, op->id, BK_MANIFEST_SUFFIX);
	json_t *ret = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:f, s:s}", "name",
	                        op->g->name, "backup", op->id, "kind", op->full ? "full"
	                        : "incremental", "status", "completed", "manifest", path, "disks",
	                        disks, "bytes", (json_int_t)total, "seconds", secs, "freeze",
	                        op->fz.how ? op->fz.how : "unknown (picked up after a restart)");
	sv_emit(op->g->route, json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "event", "BACKUP_END",
	        "guest", op->g->name, "data", "backup", op->id, "status", "completed",
	        "manifest", path));
	if (op->req)
		sv_reply_ok(op->req, ret);
	else
		json_decref(ret);
	op->req = NULL;
	if (op->cancel_req)
		sv_reply_err(op->cancel_req, "InvalidState", "%s: backup %s completed before it "
		             "could be cancelled", op->g->name, op->id);
	op->cancel_req = NULL;
	bk_op_end(op);
}

/* The targets' nodes must be gone (closed, so flushed) before the files
 * are named complete. */
static void on_barrier(void *ctx, const struct qmp_result *r)
{
	struct sv_backup_op *op = ctx;
	json_t *n;
	size_t k;
	const char *left = r->status != 0 ? "(QEMU did not answer)" : NULL;
	json_array_foreach(r->status == 0 ? r->ret : NULL, k, n)
		for (size_t i = 0; i < op->n; i++)
			if (!strcmp(sv_jstr(n, "node-name", ""), op->d[i].tnode))
				left = op->d[i].id;
	if (left) {
		snprintf(op->why, sizeof(op->why), "the jobs completed, but QEMU did not close the "
		         "target of disk %s: nothing kept", left);
		fail_now(op);
		return;
	}
	sv_opwork_run(&op->work, finish_ok_work, finish_ok_done);
}

/* Every job has its result: complete, or clean up. */
void bk_maybe_finish(struct sv_backup_op *op)
{
	bool ok = true;
	if (op->in_txn || op->ending)
		return;   /* in_txn: a job that had nothing to copy; on_transaction comes back */
	for (size_t i = 0; i < op->n; i++) {
		if (op->d[i].result == RES_PENDING)
			return;
		ok &= op->d[i].result == RES_OK;
	}
	op->ending = true;
	if (op->timer)
		uv_timer_stop(op->timer);
	if (!ok || op->cancelling) {
		if (!op->why[0]) {
			size_t k = 0;
			for (size_t i = 0; i < op->n; i++)
				if (op->d[i].result == RES_FAILED && op->d[i].err)
					k += (size_t)snprintf(op->why + k, k < sizeof(op->why) ?
					     sizeof(op->why) - k : 0, "%sdisk %s: %s", k ? "; " : "",
					     op->d[i].id, op->d[i].err);
			if (!op->why[0])
				snprintf(op->why, sizeof(op->why), "cancelled");
		}
		if (op->cancelling && !strstr(op->why, "cancel"))
			snprintf(op->why + strlen(op->why), sizeof(op->why) - strlen(op->why),
			         " (cancelled)");
		if (!op->full)
			snprintf(op->why + strlen(op->why), sizeof(op->why) - strlen(op->why),
			         "; nothing kept, the bitmap is as it was");
		else
			snprintf(op->why + strlen(op->why), sizeof(op->why) - strlen(op->why),
			         "; nothing kept, the previous chain stays usable");
		fail_now(op);
		return;
	}
	/* The targets' nodes go first (QEMU flushes them), then the files are
	 * renamed: a barrier after those commands (QMP answers in order). */
	struct qmp_client *q = op->g->qmp;
	for (size_t i = 0; i < op->n; i++) {
		sv_qmp_fire(q, "job-dismiss", json_pack("{s:s}", "id", op->d[i].job));
		sv_qmp_fire(q, "blockdev-del", json_pack("{s:s}", "node-name", op->d[i].tnode));
	}
	sv_step(q, NULL, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), -1,
	        on_barrier, op);
}

void bk_cancel_pending(struct sv_backup_op *op)
{
	for (size_t i = 0; op->g->qmp && i < op->n; i++)
		if (op->d[i].result == RES_PENDING)
			sv_qmp_fire(op->g->qmp, "job-cancel",
			            json_pack("{s:s}", "id", op->d[i].job));
}

/* ---- progress ---- */

static void on_jobs(void *ctx, const struct qmp_result *r)
{
	struct sv_backup_op *op = ctx;
	json_t *j;
	size_t k;
	op->inflight--;
	if (op->dead) {
		if (!op->inflight)
			bk_op_free(op);
		return;
	}
	if (r->status != 0 || !op->started || op->ending)
		return;
	int64_t cur = 0, total = 0;
	for (size_t i = 0; i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		json_array_foreach(r->ret, k, j)
			if (!strcmp(sv_jstr(j, "id", ""), d->job)) {
				d->cur = json_integer_value(json_object_get(j, "current-progress"));
				d->total = json_integer_value(json_object_get(j, "total-progress"));
			}
		cur += d->cur;
		total += d->total;
	}
	sv_emit(op->g->route, json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:I, s:I}}", "event",
	        "BACKUP_PROGRESS", "guest", op->g->name, "data", "name", op->g->name, "backup",
	        op->id, "kind", op->full ? "full" : "incremental", "done", (json_int_t)cur,
	        "total", (json_int_t)total));
}

static void on_tick(uv_timer_t *t)
{
	struct sv_backup_op *op = t->data;
	if (op->started && !op->ending && !op->inflight && sv_guest_qmp_up(op->g)) {
		op->inflight++;
		sv_step(op->g->qmp, NULL, "query-jobs", NULL, -1, on_jobs, op);
	}
}

void bk_start_timer(struct sv_backup_op *op)
{
	if (op->timer)
		return;
	op->timer = calloc(1, sizeof(*op->timer));
	if (!op->timer)
		return;
	uv_timer_init(op->g->env->loop, op->timer);
	op->timer->data = op;
	uv_timer_start(op->timer, on_tick, PROGRESS_MS, PROGRESS_MS);
}

/* ---- the observer ---- */

static struct bdisk *disk_of_job(struct sv_backup_op *op, const char *job)
{
	for (size_t i = 0; i < op->n; i++)
		if (!strcmp(op->d[i].job, job))
			return &op->d[i];
	return NULL;
}

static void bk_event(struct sv_guest *g, const char *name, json_t *data)
{
	struct sv_backup_op *op = g->backup;
	if (!op || op->restore || !op->started || op->ending)
		return;
	bool done = !strcmp(name, "BLOCK_JOB_COMPLETED");
	if (!done && strcmp(name, "BLOCK_JOB_CANCELLED"))
		return;
	struct bdisk *d = disk_of_job(op, sv_jstr(data, "device", ""));
	if (!d || d->result != RES_PENDING)
		return;
	const char *err = json_string_value(json_object_get(data, "error"));
	d->cur = json_integer_value(json_object_get(data, "offset"));
	d->total = json_integer_value(json_object_get(data, "len"));
	if (done && !err) {
		d->result = RES_OK;
	} else {
		d->result = RES_FAILED;
		free(d->err);
		d->err = strdup(err ? err : "cancelled");
		if (!op->cancelling && !op->failed) {
			op->failed = true;
			bk_cancel_pending(op);   /* one failed: the backup is over */
		}
	}
	bk_maybe_finish(op);
}

static void bk_gone(struct sv_guest *g)
{
	struct sv_backup_op *op = g->backup;
	if (!op || op->restore || !op->started || op->in_txn || op->ending)
		return;   /* in_txn: on_transaction hears of it; ending: on its way out */
	op->started = false;
	op->ending = true;
	snprintf(op->why, sizeof(op->why), "QEMU ended during the backup; nothing kept, the "
	         "bitmap is as QEMU last stored it");
	if (op->timer)
		uv_timer_stop(op->timer);
	sv_opwork_run(&op->work, bk_finish_fail_work, finish_fail_done);
}

bool sv_backup_progress(const struct sv_guest *g, int64_t *done, int64_t *total,
                        const char **kind)
{
	const struct sv_backup_op *op = g->backup;
	if (!op || op->restore)
		return false;
	*done = *total = 0;
	for (size_t i = 0; i < op->n; i++) {
		*done += op->d[i].cur;
		*total += op->d[i].total;
	}
	*kind = op->full ? "full" : "incremental";
	return true;
}

static void bk_status(struct sv_guest *g, json_t *st)
{
	struct sv_backup_op *op = g->backup;
	if (!op)
		return;
	if (op->restore) {
		json_object_set_new(st, "backup_op", json_pack("{s:s, s:s, s:s}", "action",
		                    "restore", "backup", op->id, "dir", op->dir));
		return;
	}
	int64_t cur, total;
	const char *kind;
	sv_backup_progress(g, &cur, &total, &kind);
	json_object_set_new(st, "backup_op", json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}",
	                    "action", "backup", "backup", op->id, "kind", kind, "dir", op->dir,
	                    "phase", op->cancelling ? "cancelling" : op->started ? "copying"
	                    : "preparing", "done",
	                    (json_int_t)cur, "total", (json_int_t)total));
}

/* ---- picked up after a qsupd restart ---- */

static void on_adopt_jobs(void *ctx, const struct qmp_result *r)
{
	struct sv_backup_op *op = ctx;
	json_t *j;
	size_t k;
	for (size_t i = 0; i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		bool found = false;
		json_array_foreach(r->status == 0 ? r->ret : NULL, k, j) {
			if (strcmp(sv_jstr(j, "id", ""), d->job))
				continue;
			found = true;
			const char *st = sv_jstr(j, "status", "");
			const char *err = json_string_value(json_object_get(j, "error"));
			d->cur = json_integer_value(json_object_get(j, "current-progress"));
			d->total = json_integer_value(json_object_get(j, "total-progress"));
			if (!strcmp(st, "concluded") || !strcmp(st, "null")) {
				d->result = err ? RES_FAILED : RES_OK;
				if (err)
					d->err = strdup(err);
			}
		}
		if (!found) {
			d->result = RES_FAILED;
			d->err = strdup("its job is gone from QEMU (lost with the earlier qsupd)");
		}
	}
	sv_log(SV_LOG_INFO, op->g->name, "backup %s: picked up after a qsupd restart", op->id);
	bool failed = false;
	for (size_t i = 0; i < op->n; i++)
		failed |= op->d[i].result == RES_FAILED;
	if (failed) {
		op->failed = true;
		bk_cancel_pending(op);
	}
	bk_start_timer(op);
	bk_maybe_finish(op);
}

static void bk_adopted(struct sv_guest *g)
{
	char path[4200];
	if (g->backup || !sv_guest_qmp_up(g))
		return;
	bk_record_path(g, path, sizeof(path));
	json_t *s = json_load_file(path, 0, NULL);   /* small */
	if (!s)
		return;
	json_t *disks = json_object_get(s, "disks"), *e;
	size_t i;
	struct sv_backup_op *op = calloc(1, sizeof(*op));
	if (op)
		op->d = calloc(json_array_size(disks) + 1, sizeof(*op->d));
	if (!op || !op->d) {
		free(op);
		json_decref(s);
		return;
	}
	op->g = g;
	sv_opwork_init(&op->work, g, op, IMG_LOG);
	op->recovered = op->started = true;
	op->full = !strcmp(sv_jstr(s, "kind", ""), "full");
	op->t0 = uv_now(g->env->loop);
	snprintf(op->statepath, sizeof(op->statepath), "%s", path);
	snprintf(op->dir, sizeof(op->dir), "%s", sv_jstr(s, "dir", ""));
	snprintf(op->id, sizeof(op->id), "%s", sv_jstr(s, "backup", ""));
	snprintf(op->chain, sizeof(op->chain), "%s", sv_jstr(s, "chain", ""));
	snprintf(op->bitmap, sizeof(op->bitmap), "%s", sv_jstr(s, "bitmap", ""));
	snprintf(op->parent, sizeof(op->parent), "%s", sv_jstr(s, "parent", ""));
	snprintf(op->created, sizeof(op->created), "%s", sv_jstr(s, "created", ""));
	json_array_foreach(disks, i, e) {
		struct bdisk *d = bk_disk_new(op, sv_jstr(e, "id", "?"));
		snprintf(d->node, sizeof(d->node), "%s", sv_jstr(e, "node", ""));
		snprintf(d->drv, sizeof(d->drv), "%s", sv_jstr(e, "driver", ""));
		snprintf(d->tnode, sizeof(d->tnode), "%s", sv_jstr(e, "tnode", ""));
		snprintf(d->job, sizeof(d->job), "%s", sv_jstr(e, "job", ""));
		d->size = (uint64_t)json_integer_value(json_object_get(e, "size"));
		d->part = strdup(sv_jstr(e, "part", ""));
		d->final = strdup(sv_jstr(e, "final", ""));
		const char *b = json_string_value(json_object_get(e, "backing"));
		d->backing = b ? strdup(b) : NULL;
		d->fdset = (int)json_integer_value(json_object_get(e, "fdset"));
		d->bitmaps = json_incref(json_object_get(e, "bitmaps"));
	}
	json_decref(s);
	g->backup = op;
	sv_guest_hold(g);
	sv_step(g->qmp, NULL, "query-jobs", NULL, -1, on_adopt_jobs, op);
}

const struct sv_guest_observer sv_backup_observer = {
	.name = "backup",
	.qemu_new = bk_qemu_new,
	.adopted = bk_adopted,
	.event = bk_event,
	.qemu_gone = bk_gone,
	.status = bk_status,
};
