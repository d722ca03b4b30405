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

static void op_free(struct sv_backup_op *op)
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
		op_free(op);
	sv_guest_unhold(g);
}

static struct bdisk *disk_new(struct sv_backup_op *op, const char *id)
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
static void answer_err(struct sv_backup_op *op, const char *cls, const char *msg)
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
	answer_err(op, cls, msg);
	bk_op_end(op);
}

/* The work off the loop failed: its error is the answer. */
void bk_work_failed(struct sv_backup_op *op)
{
	const struct sv_error *e = &op->work.err;
	bk_op_fail(op, e->cls ? e->cls : "GenericError", "%s", e->msg);
}

/* ---- manifests ---- */

static const char *MANIFEST_SUFFIX = ".backup.json";

/* Every complete manifest of guest in dir, oldest first (by "finished",
 * then ID). Off the loop. */
json_t *bk_read_manifests(const char *dir, const char *guest)
{
	json_t *out = json_array();
	DIR *dh = opendir(dir);
	struct dirent *e;
	size_t gl = strlen(guest), sl = strlen(MANIFEST_SUFFIX);
	if (!dh)
		return out;
	while ((e = readdir(dh))) {
		size_t l = strlen(e->d_name);
		if (l <= gl + 1 + sl || strncmp(e->d_name, guest, gl) || e->d_name[gl] != '-' ||
		    strcmp(e->d_name + l - sl, MANIFEST_SUFFIX))
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

/* ---- the record of a backup in flight (STATE-DIR/NAME.backup.json) ---- */

static void record_path(struct sv_guest *g, char *buf, size_t size)
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
	record_path(g, s->path, sizeof(s->path));
	snprintf(s->name, sizeof(s->name), "%s", g->name);
	s->work.data = s;
	if (uv_queue_work(g->env->loop, &s->work, stale_work, stale_done) < 0)
		free(s);
}

static json_t *state_json(struct sv_backup_op *op)
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

static int write_json_atomic(const char *path, json_t *v, struct sv_error *err)
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

static void finish_fail_work(void *arg)
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
	answer_err(op, op->cancelling ? "Cancelled" : "GenericError", op->why);
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
	sv_opwork_run(&op->work, finish_fail_work, finish_fail_done);
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
	snprintf(path, sizeof(path), "%s/%s-%s%s", op->dir, op->g->name, op->id, MANIFEST_SUFFIX);
	op->work.rc = write_json_atomic(path, m, &op->work.err);
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
	snprintf(path, sizeof(path), "%s/%s-%s%s", op->dir, op->g->name, op->id, MANIFEST_SUFFIX);
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
static void maybe_finish(struct sv_backup_op *op)
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

static void cancel_pending(struct sv_backup_op *op)
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
			op_free(op);
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

static void start_timer(struct sv_backup_op *op)
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
			cancel_pending(op);   /* one failed: the backup is over */
		}
	}
	maybe_finish(op);
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
	sv_opwork_run(&op->work, finish_fail_work, finish_fail_done);
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
		cancel_pending(op);
	}
	start_timer(op);
	maybe_finish(op);
}

static void bk_adopted(struct sv_guest *g)
{
	char path[4200];
	if (g->backup || !sv_guest_qmp_up(g))
		return;
	record_path(g, path, sizeof(path));
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
		struct bdisk *d = disk_new(op, sv_jstr(e, "id", "?"));
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

/* ---- the backup's start ---- */

/* The answer of a failed start or restore, once its files are gone: the
 * class in err.cls, the message in why. */
void bk_fail_done(void *arg)
{
	struct sv_backup_op *op = arg;
	answer_err(op, op->work.err.cls ? op->work.err.cls : "GenericError", op->why);
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
	sv_opwork_run(&op->work, finish_fail_work, bk_fail_done);
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
	start_timer(op);
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
	maybe_finish(op);   /* jobs may be over already (events come before the answer) */
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
	json_t *s = state_json(op);
	op->work.rc = write_json_atomic(op->statepath, s, &op->work.err);
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
		         MANIFEST_SUFFIX);
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
	record_path(g, op->statepath, sizeof(op->statepath));
	for (size_t i = 0; i < p->ndrives; i++)
		if (sv_snap_disk(&p->drives[i])) {
			struct bdisk *d = disk_new(op, p->drives[i].id);
			d->dst = strdup(p->drives[i].file);
			d->dstfmt = strdup(p->drives[i].format);
		}
	json_object_foreach(hp, id, v)
		if (sv_profile_find_device(p, id) < 0) {
			struct bdisk *d = disk_new(op, id);
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
		op_free(op);
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
	cancel_pending(op);
}
