/* Snapshots and the rest of a guest's life: migration, save and restore
 * carry the chain; one predicate keeps other disk operations off a running
 * snapshot operation (snapshot.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"
#include "migrate_int.h"
#include "log.h"
#include "request.h"
#include "backup.h"
#include "snapshot.h"
#include "snaprec.h"

bool sv_snapshot_refuse(struct sv_guest *g, struct sv_request *req)
{
	const char *a = sv_snapshot_running(g);
	if (!a && sv_backup_busy(g)) {   /* its jobs run on the disks too */
		sv_reply_err(req, "InvalidState", "guest %s: a backup is running; try again once "
		             "it has ended, or backup-cancel it (qsupctl status %s shows it)",
		             g->name, g->name);
		return true;
	}
	if (!a)
		return false;
	sv_reply_err(req, "InvalidState", "guest %s: a snapshot %s is running; try again once "
	             "it has ended (qsupctl status %s shows it)", g->name, a, g->name);
	return true;
}

bool sv_snapmig_busy(struct sv_guest *g)
{
	/* Being prepared (a save opening its file, a destination taking the
	 * chain, the source asking its destination), or under way. A
	 * re-adopting qsupd's question to QEMU (a migration record marked
	 * started, the guest not migrating) is no migration. */
	return g->state == SV_MIGRATING || g->state == SV_INCOMING ||
	       (g->mig && !g->mig->started);
}

json_t *sv_snapmig_export(struct sv_guest *g, struct sv_error *err)
{
	const struct sv_profile *p = sv_guest_profile_now(g);
	json_t *rec = NULL;
	if (p && sv_snaprec_read(p, &rec, err) < 0)
		return NULL;
	return rec ? rec : json_null();
}

/* ---- the destination ---- */

struct imp {
	uv_work_t work;
	struct sv_guest *g;
	const void *mig;                /* g->mig when it began */
	json_t *args;
	bool restore;
	void (*done)(struct sv_guest *, json_t *, const char *);
	char recpath[4200];
	struct sv_profile fake;         /* path and name only: the record's place */
	json_t *src;                    /* the source's record, or null */
	json_t *disks;                  /* every writable disk: {ID: {"file", "format"}} */
	char *why;                      /* set: refused */
	char note[200];
};

static char *msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *msg(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s ? s : strdup("out of memory");
}

/* Disk id's active image in rec: its overlay, else the disk's own file. */
static const char *active_of(struct imp *im, json_t *rec, const char *id)
{
	json_t *a = sv_snaprec_active(rec, id);
	return a ? sv_jstr(a, "file", "") : sv_jstr(json_object_get(im->disks, id), "file", "");
}

/* The record carried is the one to boot: valid here (the same disks, every
 * image at the same path), then written. */
static void adopt(struct imp *im)
{
	char *m = NULL;
	struct sv_error e = { 0 };
	if (sv_snaprec_validate(&im->fake, im->disks, im->src, &m) > 0) {
		im->why = msg("the %s's snapshot chain cannot be used here (its images must be on "
		              "storage both share, at the same paths): %s", im->restore
		              ? "saved guest" : "source", m ? m : "");
		free(m);
		return;
	}
	free(m);
	if (sv_snaprec_write_at(im->recpath, im->src, &e) < 0)
		im->why = msg("%s", e.msg);
	else
		snprintf(im->note, sizeof(im->note), "the snapshot record is the %s's (%zu "
		         "snapshot%s)", im->restore ? "saved guest" : "source",
		         json_array_size(json_object_get(im->src, "snapshots")),
		         json_array_size(json_object_get(im->src, "snapshots")) == 1 ? "" : "s");
}

/* restore: the saved memory belongs to the disks as they were saved. The
 * record here stays when each disk still boots that image, or an empty
 * overlay over it (a snapshot taken since, while stopped); a revert or a
 * merge since then would resume the memory on other data: refused. */
static void restore_check(struct imp *im, json_t *local)
{
	json_t *cur = sv_snaprec_find(local, sv_jstr(local, "current", ""));
	json_t *ids = json_object(), *v;
	const char *id;
	json_object_update(ids, json_object_get(local, "active"));
	json_object_update(ids, json_object_get(im->src, "active"));
	json_object_foreach(ids, id, v) {
		const char *saved = active_of(im, im->src, id), *now = active_of(im, local, id);
		const char *layer = sv_jstr(json_object_get(json_object_get(cur, "layers"), id),
		                            "file", "");
		if (strcmp(saved, now) && strcmp(saved, layer)) {
			im->why = msg("disk %s was saved running on %s, and now boots %s (a "
			              "snapshot revert or delete since the save): the saved memory "
			              "would resume on other disk contents; revert to the chain of "
			              "the save, or start the guest afresh", id, saved, now);
			break;
		}
	}
	json_decref(ids);
}

static void imp_work(uv_work_t *w)
{
	struct imp *im = w->data;
	struct sv_error e = { 0 };
	json_t *local = NULL;
	if (sv_snaprec_read_at(im->recpath, &local, &e) < 0 && im->restore) {
		im->why = msg("%s", e.msg);
		return;
	}
	if (im->restore && local) {
		restore_check(im, local);
	} else if (!json_is_null(im->src)) {
		adopt(im);
	} else if (local) {
		/* The source runs on its profile's files: so does the guest here. */
		if (unlink(im->recpath) < 0 && errno != ENOENT)
			im->why = msg("cannot remove %s: %s", im->recpath, strerror(errno));
		else
			snprintf(im->note, sizeof(im->note), "the source has no snapshots: the "
			         "record here is dropped");
	}
	json_decref(local);
}

static void imp_done(uv_work_t *w, int status)
{
	struct imp *im = w->data;
	struct sv_guest *g = im->g;
	if (status < 0 && !im->why)
		im->why = msg("cannot queue work: %s", uv_strerror(status));
	if (!g->freeing && (const void *)g->mig == im->mig) {
		if (im->note[0])
			sv_log(SV_LOG_INFO, g->name, "%s", im->note);
		im->done(g, im->args, im->why);
	}
	json_decref(im->args);
	json_decref(im->src);
	json_decref(im->disks);
	free(im->fake.path);
	free(im->fake.name);
	free(im->why);
	free(im);
	sv_guest_unhold(g);
}

/* Every writable disk the guest here has: the profile's, its hot-plug
 * overlay's, and the persistent disks handed over (devices). */
json_t *sv_snapshot_disks(const struct sv_profile *p, json_t *devices)
{
	json_t *out = sv_snapshot_hp_disks(p), *e;
	size_t i;
	for (size_t k = 0; k < p->ndrives; k++)
		if (sv_snap_disk(&p->drives[k]))
			json_object_set_new(out, p->drives[k].id, json_pack("{s:s, s:s}", "file",
			                    p->drives[k].file, "format", p->drives[k].format));
	json_array_foreach(devices, i, e) {
		json_t *s = json_object_get(e, "spec");
		const char *file = json_string_value(json_object_get(s, "file")), *why = NULL;
		char *abs = NULL;
		if (strcmp(sv_jstr(s, "kind", ""), "disk") || !file ||
		    !json_is_true(json_object_get(s, "persist")) ||
		    json_is_true(json_object_get(s, "read-only")) ||
		    sv_path_resolve(p->dir, file, &abs, &why) < 0)
			continue;
		json_object_set_new(out, sv_jstr(s, "id", ""), json_pack("{s:s, s:s}", "file", abs,
		                    "format", sv_jstr(s, "format", "raw")));
		free(abs);
	}
	return out;
}

bool sv_snapmig_import(struct sv_guest *g, json_t *args, bool restore,
                       void (*done)(struct sv_guest *, json_t *, const char *))
{
	const struct sv_profile *p = g->profile;
	json_t *src = json_object_get(args, "snapshots");
	struct sv_error e = { 0 };
	/* No chain sent (a manual incoming): the record here, as it is. A
	 * snapshot operation restoring its own memory keeps its record. */
	if (!src || g->snap || !p)
		return false;
	struct imp *im = calloc(1, sizeof(*im));
	if (!im) {
		done(g, args, "out of memory");
		return true;
	}
	im->g = g;
	im->mig = g->mig;
	im->args = json_incref(args);
	im->restore = restore;
	im->done = done;
	im->src = json_incref(src);
	im->disks = sv_snapshot_disks(p, json_object_get(args, "devices"));
	im->fake.path = strdup(p->path);
	im->fake.name = strdup(p->name);
	im->work.data = im;
	if (!json_is_null(src) && sv_snaprec_shape(src, &e) < 0)
		im->why = msg("the %s's snapshot record: %s", restore ? "saved guest" : "source",
		              e.msg);
	else if (!im->fake.path || !im->fake.name ||
	         sv_snaprec_path(p, im->recpath, sizeof(im->recpath)) < 0)
		im->why = msg("out of memory");
	sv_guest_hold(g);
	if (im->why) {
		imp_done(&im->work, 0);
		return true;
	}
	int rc = uv_queue_work(g->env->loop, &im->work, imp_work, imp_done);
	if (rc < 0)
		imp_done(&im->work, rc);
	return true;
}
