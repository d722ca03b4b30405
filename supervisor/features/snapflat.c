/* The last snapshot deleted: each disk back on its own file (snapshot.h,
 * sv_snapflat). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdpass.h"
#include "guest.h"
#include "hotplug.h"
#include "image.h"
#include "log.h"
#include "request.h"
#include "blockgraph.h"
#include "snapshot.h"
#include "snaprec.h"
#include "step.h"
#include "subproc.h"

struct fdisk {
	char id[SV_ID_MAX + 1];
	char *top, *base;
	char node[64], bnode[64], tfile[64], bfile[64];
	int fd, bfdset, tfdset;
	bool skip, done;
	char why[600];
};

struct sv_snapflat {
	struct sv_snapflat *next;       /* the running ones (flats) */
	struct sv_guest *g;
	void (*done)(void *arg, json_t *result);
	void *arg;
	uv_work_t work;
	char recpath[4200];
	json_t *rec;
	json_t *graph, *named;
	struct fdisk *d;
	size_t n, i;
	bool live, waiting;
	char job[96];
};

static struct sv_snapflat *flats;

static void next_disk(struct sv_snapflat *f);

/* ---- the end ---- */

/* Off the loop: the record without the disks now on their files (none
 * left: no record), then their overlays go. */
static void finish_work(uv_work_t *w)
{
	struct sv_snapflat *f = w->data;
	json_t *active = json_object_get(f->rec, "active");
	struct sv_error e = { 0 };
	for (size_t i = 0; i < f->n; i++)
		if (f->d[i].done)
			json_object_del(active, f->d[i].id);
	int rc = 0;
	if (json_object_size(active) || json_array_size(json_object_get(f->rec, "snapshots")))
		rc = sv_snaprec_write_at(f->recpath, f->rec, &e);
	else if (unlink(f->recpath) < 0 && errno != ENOENT)
		rc = sv_error_set(&e, -errno, "cannot remove %s: %s", f->recpath, strerror(errno));
	for (size_t i = 0; i < f->n; i++) {
		struct fdisk *d = &f->d[i];
		if (!d->done)
			continue;
		if (rc < 0) {   /* the record still boots the overlay, which holds it all */
			d->done = false;
			snprintf(d->why, sizeof(d->why), "%s", e.msg);
		} else {
			unlink(d->top);
		}
	}
}

static void finished(uv_work_t *w, int status)
{
	struct sv_snapflat *f = w->data;
	json_t *out = json_object();
	(void)status;
	for (struct sv_snapflat **p = &flats; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	for (size_t i = 0; i < f->n; i++) {
		struct fdisk *d = &f->d[i];
		char *text = NULL;
		int n = d->done ? asprintf(&text, "back on %s", d->base)
		      : asprintf(&text, "kept on %s: %s", d->top, d->why);
		if (n < 0)
			text = NULL;
		if (!d->done)
			sv_log(SV_LOG_WARN, f->g->name, "disk %s stays on its overlay %s: %s", d->id,
			       d->top, d->why);
		json_object_set_new(out, d->id, json_string(text ? text : "?"));
		free(text);
	}
	size_t back = 0;
	for (size_t i = 0; i < f->n; i++)
		back += f->d[i].done;
	if (back)
		sv_log(SV_LOG_INFO, f->g->name, "the last snapshot is gone: %zu disk%s back on "
		       "%s file%s", back, back == 1 ? "" : "s", back == 1 ? "its" : "their",
		       back == 1 ? "" : "s");
	f->done(f->arg, out);
	for (size_t i = 0; i < f->n; i++) {
		free(f->d[i].top);
		free(f->d[i].base);
		if (f->d[i].fd >= 0)
			close(f->d[i].fd);
	}
	free(f->d);
	json_decref(f->rec);
	json_decref(f->graph);
	json_decref(f->named);
	sv_guest_unhold(f->g);
	free(f);
}

static void disk_failed(struct sv_snapflat *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void disk_failed(struct sv_snapflat *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->d[f->i].why, sizeof(f->d[f->i].why), fmt, ap);
	va_end(ap);
	f->i++;
	next_disk(f);
}

/* ---- stopped: qemu-img commit ---- */

static void on_committed(int64_t status, int sig, const char *out, void *arg)
{
	struct sv_snapflat *f = arg;
	if (f->g->busy_op && !strcmp(f->g->busy_op, "snapshot commit"))
		f->g->busy_op = NULL;
	if (status != 0 || sig) {
		disk_failed(f, "qemu-img commit: %s", *out ? out : "failed");
		return;
	}
	f->d[f->i].done = true;
	f->i++;
	next_disk(f);
}

/* ---- live: an active block-commit, then block-job-complete ---- */

/* The fd set QEMU opened the file node fnode from, or -1. */
static int fdset_of(struct sv_snapflat *f, const char *fnode)
{
	json_t *n;
	size_t i;
	json_array_foreach(f->named, i, n)
		if (!strcmp(sv_jstr(n, "node-name", ""), fnode)) {
			const char *file = sv_jstr(n, "file", "");
			return !strncmp(file, "/dev/fdset/", 11) ? atoi(file + 11) : -1;
		}
	return -1;
}


/* The job is over (ok: the device runs on the base node now). */
static void job_over(struct sv_snapflat *f, const char *err)
{
	struct fdisk *d = &f->d[f->i];
	f->waiting = false;
	if (err) {
		disk_failed(f, "block-commit: %s", err);
		return;
	}
	/* The overlay's nodes were the monitor's (-blockdev, blockdev-add). */
	sv_qmp_fire(f->g->qmp, "blockdev-del", json_pack("{s:s}", "node-name", d->node));
	if (d->tfile[0])
		sv_qmp_fire(f->g->qmp, "blockdev-del", json_pack("{s:s}", "node-name", d->tfile));
	if (d->tfdset >= 0)
		sv_qmp_fire(f->g->qmp, "remove-fd", json_pack("{s:i}", "fdset-id", d->tfdset));
	d->done = true;
	f->i++;
	next_disk(f);
}

static void on_commit(void *ctx, const struct qmp_result *r)
{
	struct sv_snapflat *f = ctx;
	if (r->status != 0)
		job_over(f, r->err_desc ? r->err_desc : qmp_strerror(r->status));
}

static void commit(struct sv_snapflat *f)
{
	struct fdisk *d = &f->d[f->i];
	snprintf(f->job, sizeof(f->job), "snapshot-flatten.%s", d->id);
	f->waiting = true;
	sv_step(f->g->qmp, NULL, "block-commit", json_pack("{s:s, s:s, s:s}", "job-id", f->job,
	        "device", d->node, "base-node", d->bnode), -1, on_commit, f);
}

/* ---- reopening a node read-write ---- */

struct reo {
	struct sv_guest *g;
	char node[64];
	int fdset, keep;                /* after the reopen, the set's other fds go */
	json_t *graph;
	void (*done)(void *arg, const char *why);
	void *arg;
};

static void reo_end(struct reo *o, const char *why)
{
	o->done(o->arg, why);
	json_decref(o->graph);
	sv_guest_unhold(o->g);
	free(o);
}

/* The read-only fds the node was opened from leave its set: QEMU's image
 * locks sit on their open file description, which the set keeps open, and
 * would keep a job from writing (running guests: QEMU closes removed fds
 * at once). */
static void on_fdsets(void *ctx, const struct qmp_result *r)
{
	struct reo *o = ctx;
	json_t *s, *fd;
	size_t i, k;
	json_array_foreach(r->status == 0 ? r->ret : NULL, i, s) {
		if (json_integer_value(json_object_get(s, "fdset-id")) != o->fdset)
			continue;
		json_array_foreach(json_object_get(s, "fds"), k, fd) {
			json_int_t n = json_integer_value(json_object_get(fd, "fd"));
			if (n == o->keep || !o->g->qmp)
				continue;
			sv_qmp_fire(o->g->qmp, "remove-fd",
			            json_pack("{s:i, s:I}", "fdset-id", o->fdset, "fd", n));
		}
	}
	reo_end(o, NULL);
}

static void on_reopened(void *ctx, const struct qmp_result *r)
{
	struct reo *o = ctx;
	char why[600];
	if (r->status != 0) {
		snprintf(why, sizeof(why), "blockdev-reopen of %s read-write: %s", o->node,
		         r->err_desc ? r->err_desc : qmp_strerror(r->status));
		reo_end(o, why);
		return;
	}
	if (o->fdset < 0 || o->keep < 0 || !o->g->qmp) {
		reo_end(o, NULL);
		return;
	}
	sv_step(o->g->qmp, NULL, "query-fdsets", NULL, -1, on_fdsets, o);
}

/* An entry of query-named-block-nodes, or NULL. */
static json_t *named_in(json_t *list, const char *name)
{
	json_t *n;
	size_t i;
	json_array_foreach(list, i, n)
		if (!strcmp(sv_jstr(n, "node-name", ""), name))
			return n;
	return NULL;
}

/* The cache options of a node as QEMU reports them, for a reopen. */
static json_t *cache_of(json_t *n)
{
	json_t *c = json_object_get(n, "cache");
	return json_pack("{s:b, s:b}", "direct", json_is_true(json_object_get(c, "direct")),
	                 "no-flush", json_is_true(json_object_get(c, "no-flush")));
}

/* Its file node and itself, read-write, with the options they were opened
 * with (-blockdev: driver, file name, cache, aio as the profile says). */
static void reo_named(void *ctx, const struct qmp_result *r)
{
	struct reo *o = ctx;
	if (r->status != 0) {
		reo_end(o, "query-named-block-nodes failed");
		return;
	}
	json_int_t id = sv_graph_id(o->graph, o->node);
	const char *fname = sv_graph_name(o->graph, sv_graph_child(o->graph, id, "file"));
	json_t *bn = named_in(r->ret, o->node), *fn = named_in(r->ret, fname);
	if (o->node[0] == '#' || !bn || !fn || !json_is_true(json_object_get(bn, "ro"))) {
		reo_end(o, NULL);   /* read-write already, or inheriting it */
		return;
	}
	const struct sv_profile *p = o->g->run_profile;
	enum sv_aio aio = SV_AIO_THREADS;
	for (size_t k = 0; p && k < p->ndrives; k++) {
		size_t n = strlen(p->drives[k].id);
		if (!strncmp(o->node, "drive.", 6) && !strncmp(o->node + 6, p->drives[k].id, n) &&
		    (!o->node[6 + n] || o->node[6 + n] == '.'))
			aio = p->drives[k].aio;
	}
	json_t *file = json_pack("{s:s, s:s, s:s, s:b, s:o}", "driver", sv_jstr(fn, "drv", "file"),
	                         "node-name", fname, "filename", sv_jstr(fn, "file", ""),
	                         "read-only", false, "cache", cache_of(fn));
	if (aio != SV_AIO_THREADS)
		json_object_set_new(file, "aio", json_string(aio == SV_AIO_NATIVE ? "native"
		                                                                  : "io_uring"));
	json_t *fmt = json_pack("{s:s, s:s, s:s, s:b, s:o}", "driver", sv_jstr(bn, "drv", "raw"),
	                        "node-name", o->node, "file", fname, "read-only", false,
	                        "cache", cache_of(bn));
	json_int_t below = sv_graph_child(o->graph, id, "backing");
	if (below >= 0)
		json_object_set_new(fmt, "backing", json_string(sv_graph_name(o->graph, below)));
	else if (!strcmp(sv_jstr(bn, "drv", ""), "qcow2"))
		json_object_set_new(fmt, "backing", json_null());
	sv_step(o->g->qmp, NULL, "blockdev-reopen", json_pack("{s:[o, o]}", "options", file, fmt),
	        -1, on_reopened, o);
}

static void reo_graph(void *ctx, const struct qmp_result *r)
{
	struct reo *o = ctx;
	if (r->status != 0 || !o->g->qmp) {
		reo_end(o, "x-debug-query-block-graph failed");
		return;
	}
	o->graph = json_incref(r->ret);
	sv_step(o->g->qmp, NULL, "query-named-block-nodes", json_pack("{s:b}", "flat", true), -1,
	        reo_named, o);
}

void sv_snap_writable(struct sv_guest *g, const char *node, int fdset, int keep,
                      void (*done)(void *arg, const char *why), void *arg)
{
	struct reo *o = calloc(1, sizeof(*o));
	if (!o || !g->qmp) {
		free(o);
		done(arg, "out of memory, or no QMP");
		return;
	}
	o->g = g;
	o->fdset = fdset;
	o->keep = keep;
	snprintf(o->node, sizeof(o->node), "%s", node);
	o->done = done;
	o->arg = arg;
	sv_guest_hold(g);
	sv_step(g->qmp, NULL, "x-debug-query-block-graph", NULL, -1, reo_graph, o);
}

static void on_base_rw(void *arg, const char *why)
{
	struct sv_snapflat *f = arg;
	if (why)
		disk_failed(f, "%s", why);
	else
		commit(f);
}

static void on_rw_fd(void *ctx, const struct qmp_result *r)
{
	struct sv_snapflat *f = ctx;
	struct fdisk *d = &f->d[f->i];
	close(d->fd);
	d->fd = -1;
	if (r->status != 0) {
		disk_failed(f, "add-fd: %s", r->err_desc ? r->err_desc : qmp_strerror(r->status));
		return;
	}
	/* A base qsupd opened read-only at boot (a -blockdev backing layer)
	 * cannot take the commit until it is reopened read-write, as libvirt
	 * does. */
	sv_snap_writable(f->g, d->bnode, d->bfdset,
	                 (int)json_integer_value(json_object_get(r->ret, "fd")), on_base_rw, f);
}

static void on_named(void *ctx, const struct qmp_result *r)
{
	struct sv_snapflat *f = ctx;
	struct fdisk *d = &f->d[f->i];
	if (r->status != 0) {
		disk_failed(f, "query-named-block-nodes: %s", r->err_desc ? r->err_desc : "failed");
		return;
	}
	json_decref(f->named);
	f->named = json_incref(r->ret);
	json_int_t top = sv_graph_id(f->graph, d->node);
	json_int_t base = sv_graph_child(f->graph, top, "backing");
	if (top < 0 || base < 0) {
		disk_failed(f, "%s", "QEMU's block graph has no backing node under the overlay");
		return;
	}
	snprintf(d->bnode, sizeof(d->bnode), "%s", sv_graph_name(f->graph, base));
	snprintf(d->tfile, sizeof(d->tfile), "%s",
	         sv_graph_name(f->graph, sv_graph_child(f->graph, top, "file")));
	d->tfdset = fdset_of(f, d->tfile);
	snprintf(d->bfile, sizeof(d->bfile), "%s",
	         sv_graph_name(f->graph, sv_graph_child(f->graph, base, "file")));
	d->bfdset = fdset_of(f, d->bfile);
	if (d->bfdset < 0) {
		disk_failed(f, "%s", "the base is not an fd qsupd handed over");
		return;
	}
	/* QEMU reopens the base read-write: through a read-write fd in its set. */
	sv_step(f->g->qmp, NULL, "add-fd", json_pack("{s:i, s:s}", "fdset-id", d->bfdset, "opaque",
	        d->base), d->fd, on_rw_fd, f);
}

static void on_graph(void *ctx, const struct qmp_result *r)
{
	struct sv_snapflat *f = ctx;
	if (r->status != 0) {
		disk_failed(f, "x-debug-query-block-graph: %s", r->err_desc ? r->err_desc : "failed");
		return;
	}
	json_decref(f->graph);
	f->graph = json_incref(r->ret);
	sv_step(f->g->qmp, NULL, "query-named-block-nodes", json_pack("{s:b}", "flat", true), -1,
	        on_named, f);
}

static void on_block(void *ctx, const struct qmp_result *r)
{
	struct sv_snapflat *f = ctx;
	struct fdisk *d = &f->d[f->i];
	json_t *in = sv_block_inserted(r->status == 0 ? r->ret : NULL, d->id);
	snprintf(d->node, sizeof(d->node), "%s", sv_jstr(in, "node-name", ""));
	if (!d->node[0]) {
		disk_failed(f, "%s", "the disk is not in QEMU's block devices");
		return;
	}
	sv_step(f->g->qmp, NULL, "x-debug-query-block-graph", NULL, -1, on_graph, f);
}

static void on_completing(void *ctx, const struct qmp_result *r)
{
	struct sv_snapflat *f = ctx;
	if (r->status != 0 && f->waiting)
		job_over(f, r->err_desc ? r->err_desc : qmp_strerror(r->status));
}

static void flat_event(struct sv_guest *g, const char *name, json_t *data)
{
	struct sv_snapflat *f = flats;
	while (f && f->g != g)
		f = f->next;
	if (!f || !f->waiting || strcmp(sv_jstr(data, "device", ""), f->job))
		return;
	if (!strcmp(name, "BLOCK_JOB_READY")) {
		sv_step(g->qmp, NULL, "block-job-complete", json_pack("{s:s}", "device", f->job), -1,
		        on_completing, f);
	} else if (!strcmp(name, "BLOCK_JOB_COMPLETED")) {
		job_over(f, json_string_value(json_object_get(data, "error")));
	} else if (!strcmp(name, "BLOCK_JOB_CANCELLED")) {
		job_over(f, "cancelled");
	}
}

static void flat_gone(struct sv_guest *g)
{
	for (struct sv_snapflat *f = flats; f; f = f->next)
		if (f->g == g && f->waiting) {
			f->waiting = false;
			disk_failed(f, "%s", "QEMU ended during the commit");
			return;
		}
}

const struct sv_guest_observer sv_snapflat_observer = {
	.name = "snapflat",
	.event = flat_event,
	.qemu_gone = flat_gone,
};

/* ---- the disks, one after the other ---- */

static void next_disk(struct sv_snapflat *f)
{
	if (f->i == f->n) {
		f->work.data = f;
		if (uv_queue_work(f->g->env->loop, &f->work, finish_work, finished) < 0) {
			for (size_t i = 0; i < f->n; i++)
				f->d[i].done = false;
			finished(&f->work, -1);
		}
		return;
	}
	struct fdisk *d = &f->d[f->i];
	if (d->skip) {
		f->i++;
		next_disk(f);
		return;
	}
	if (f->live) {
		if (!sv_guest_qmp_up(f->g)) {
			disk_failed(f, "%s", "QEMU is not running");
			return;
		}
		sv_step(f->g->qmp, NULL, "query-block", NULL, -1, on_block, f);
		return;
	}
	if (sv_guest_active(f->g) || f->g->prepping || f->g->busy_op) {
		disk_failed(f, "the guest was started meanwhile (or a %s runs)",
		            f->g->busy_op ? f->g->busy_op : "start");
		return;
	}
	/* -d: the overlay is not emptied (it goes once the record is written). */
	char *argv[] = { "qemu-img", "commit", "-q", "-f", "qcow2", "-d", "--", d->top, NULL };
	f->g->busy_op = "snapshot commit";   /* no start meanwhile */
	int rc = sv_run(f->g->env->loop, argv, on_committed, f);
	if (rc < 0) {
		f->g->busy_op = NULL;
		disk_failed(f, "cannot run qemu-img: %s", uv_strerror(rc));
	}
}

/* Off the loop: each overlay must sit right on its disk's file; the live
 * ones get a read-write fd of that file for QEMU. */
static void check_work(uv_work_t *w)
{
	struct sv_snapflat *f = w->data;
	for (size_t i = 0; i < f->n; i++) {
		struct fdisk *d = &f->d[i];
		struct sv_chain ch;
		struct sv_error e = { 0 };
		if (d->skip)
			continue;
		if (sv_image_chain(d->top, "qcow2", &ch, &e) < 0) {
			d->skip = true;
			snprintf(d->why, sizeof(d->why), "%s", e.msg);
			continue;
		}
		if (ch.n != 1 || strcmp(ch.layers[0].path, d->base)) {
			d->skip = true;
			snprintf(d->why, sizeof(d->why), "its backing chain is not the overlay right "
			         "on %s", d->base);
		}
		sv_chain_free(&ch);
		if (!d->skip && f->live && (d->fd = sv_fdpass_file(d->base, O_RDWR, &e)) < 0) {
			d->skip = true;
			d->fd = -1;
			snprintf(d->why, sizeof(d->why), "%s", e.msg);
		}
	}
}

static void checked(uv_work_t *w, int status)
{
	struct sv_snapflat *f = w->data;
	for (size_t i = 0; status < 0 && i < f->n; i++) {
		f->d[i].skip = true;
		snprintf(f->d[i].why, sizeof(f->d[i].why), "%s", uv_strerror(status));
	}
	f->i = 0;
	next_disk(f);
}

void sv_snapflat(struct sv_guest *g, const char *recpath, json_t *rec,
                 void (*done)(void *arg, json_t *result), void *arg)
{
	const struct sv_profile *p = sv_guest_profile_now(g);
	json_t *active = json_object_get(rec, "active"), *l;
	json_t *disks = p ? sv_snapshot_disks(p, NULL) : json_object();
	struct sv_snapflat *f = calloc(1, sizeof(*f));
	const char *id;
	if (f)
		f->d = calloc(json_object_size(active) + 1, sizeof(*f->d));
	if (!f || !f->d) {
		if (f)
			free(f->d);
		free(f);
		json_decref(disks);
		done(arg, json_pack("{s:s}", "error", "out of memory"));
		return;
	}
	f->g = g;
	f->live = sv_guest_qmp_up(g);
	f->done = done;
	f->arg = arg;
	f->rec = json_deep_copy(rec);
	snprintf(f->recpath, sizeof(f->recpath), "%s", recpath);
	json_object_foreach(active, id, l) {
		struct fdisk *d = &f->d[f->n++];
		const char *base = json_string_value(json_object_get(json_object_get(disks, id),
		                                                     "file"));
		snprintf(d->id, sizeof(d->id), "%s", id);
		d->top = strdup(sv_jstr(l, "file", ""));
		d->base = strdup(base ? base : "");
		d->fd = d->bfdset = d->tfdset = -1;
		if (!base) {
			d->skip = true;
			snprintf(d->why, sizeof(d->why), "no longer a writable disk of the guest");
		}
	}
	json_decref(disks);
	f->next = flats;
	flats = f;
	sv_guest_hold(g);
	f->work.data = f;
	int rc = uv_queue_work(g->env->loop, &f->work, check_work, checked);
	if (rc < 0)
		checked(&f->work, rc);
}
