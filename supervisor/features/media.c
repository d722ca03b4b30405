/* CD-ROM media changes: see media.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdpass.h"
#include "guest.h"
#include "hotplug.h"
#include "log.h"
#include "media.h"
#include "request.h"
#include "step.h"

struct medium {
	char id[SV_ID_MAX + 1];
	char *file;             /* NULL: empty */
	int fdset;              /* the fd set of a medium qsupd inserted; -1 */
};

struct sv_media {
	struct medium *m;
	size_t n;
	bool busy;              /* a cdrom operation runs */
};

/* One cdrom operation. */
struct media_op {
	uv_work_t work;
	struct sv_guest *g;
	struct sv_request *req;
	char id[SV_ID_MAX + 1];
	struct medium *m;       /* valid only after op_live() */
	bool eject, force;
	char *path;
	char format[16];
	int fd, fdset;
	struct sv_error err;
};

static const struct sv_profile *prof(struct sv_guest *g)
{
	return g->run_profile ? g->run_profile : g->profile;
}

static void media_free(struct sv_guest *g)
{
	struct sv_media *md = g->media;
	if (!md)
		return;
	for (size_t i = 0; i < md->n; i++)
		free(md->m[i].file);
	free(md->m);
	free(md);
	g->media = NULL;
}

/* The CD-ROMs of the profile QEMU runs with, with their profile's media. */
static struct sv_media *media_reset(struct sv_guest *g)
{
	const struct sv_profile *p = prof(g);
	bool busy = g->media && g->media->busy;
	media_free(g);
	struct sv_media *md = calloc(1, sizeof(*md));
	if (!md)
		return NULL;
	md->busy = busy;
	md->m = calloc(p ? p->ndrives + 1 : 1, sizeof(*md->m));
	if (!md->m) {
		free(md);
		return NULL;
	}
	for (size_t i = 0; p && i < p->ndrives; i++) {
		if (!p->drives[i].cdrom)
			continue;
		struct medium *m = &md->m[md->n++];
		snprintf(m->id, sizeof(m->id), "%s", p->drives[i].id);
		m->file = p->drives[i].file ? strdup(p->drives[i].file) : NULL;
		m->fdset = -1;
	}
	g->media = md;
	return md;
}

static struct medium *medium_find(struct sv_guest *g, const char *id)
{
	for (size_t i = 0; g->media && i < g->media->n; i++)
		if (!strcmp(g->media->m[i].id, id))
			return &g->media->m[i];
	return NULL;
}

const char *sv_media_file(struct sv_guest *g, const char *id)
{
	struct medium *m = medium_find(g, id);
	return m ? m->file : NULL;
}

static void medium_set(struct medium *m, const char *file, int fdset)
{
	free(m->file);
	m->file = file ? strdup(file) : NULL;
	m->fdset = fdset;
}

/* Give an fd set back to QEMU's keeping (its medium is out): remove-fd. */
static void fdset_drop(struct sv_guest *g, int fdset)
{
	if (fdset < 0 || !g->qmp)
		return;
	sv_qmp_fire(g->qmp, "remove-fd", json_pack("{s:i}", "fdset-id", fdset));
}

/* ---- reading the media back from QEMU ---- */

struct refresh {
	struct sv_guest *g;
	json_t *blocks;
};

/* The path an fd set stands for: the opaque qsupd gave it (a path), else
 * NULL. */
static const char *fdset_path(json_t *fdsets, int id)
{
	json_t *s, *f;
	size_t i, j;
	json_array_foreach(fdsets, i, s) {
		if (json_integer_value(json_object_get(s, "fdset-id")) != id)
			continue;
		json_array_foreach(json_object_get(s, "fds"), j, f) {
			const char *o = json_string_value(json_object_get(f, "opaque"));
			if (o && o[0] == '/')
				return o;
		}
	}
	return NULL;
}

static void on_fdsets(void *ctx, const struct qmp_result *r)
{
	struct refresh *q = ctx;
	struct sv_guest *g = q->g;
	const struct sv_profile *p = prof(g);
	json_t *b;
	size_t i;
	for (size_t k = 0; r->status == 0 && g->media && !g->media->busy && k < g->media->n; k++) {
		struct medium *m = &g->media->m[k];
		char mine[SV_ID_MAX + 8];
		snprintf(mine, sizeof(mine), "drive.%s", m->id);
		json_array_foreach(q->blocks, i, b) {
			if (!sv_block_of(b, m->id))
				continue;
			json_t *in = json_object_get(b, "inserted");
			const char *file = sv_jstr(in, "file", "");
			int d = sv_profile_find_device(p, m->id);
			if (!in)
				medium_set(m, NULL, m->fdset);
			else if (!strcmp(sv_jstr(in, "node-name", ""), mine) && d >= 0)
				medium_set(m, p->drives[d].file, -1);
			else if (!strncmp(file, "/dev/fdset/", 11)) {
				int id = atoi(file + 11);
				medium_set(m, sv_or(fdset_path(r->ret, id), file), id);
			} else
				medium_set(m, file, -1);
			break;
		}
	}
	json_decref(q->blocks);
	sv_guest_unhold(g);
	free(q);
}

static void on_blocks(void *ctx, const struct qmp_result *r)
{
	struct refresh *q = ctx;
	if (r->status != 0 || !q->g->qmp) {
		sv_guest_unhold(q->g);
		free(q);
		return;
	}
	q->blocks = json_incref(r->ret);
	sv_step(q->g->qmp, NULL, "query-fdsets", NULL, -1, on_fdsets, q);
}

static void refresh(struct sv_guest *g)
{
	struct refresh *q;
	if (!g->media || !g->media->n || !g->qmp || !(q = calloc(1, sizeof(*q))))
		return;
	q->g = g;
	sv_guest_hold(g);
	sv_step(g->qmp, NULL, "query-block", NULL, -1, on_blocks, q);
}

/* ---- the observer ---- */

static void media_qemu_new(struct sv_guest *g)
{
	media_reset(g);
}

static void media_adopted(struct sv_guest *g)
{
	if (media_reset(g))
		refresh(g);
}

static void media_event(struct sv_guest *g, const char *name, json_t *data)
{
	(void)data;
	if (!strcmp(name, "DEVICE_TRAY_MOVED") && g->media && !g->media->busy)
		refresh(g);
}

static void media_status(struct sv_guest *g, json_t *st)
{
	const struct sv_profile *p = prof(g);
	json_t *o = json_object();
	bool up = sv_guest_active(g) && g->media;
	for (size_t i = 0; p && i < p->ndrives; i++) {
		const struct sv_drive *d = &p->drives[i];
		if (!d->cdrom)
			continue;
		const char *file = up ? sv_media_file(g, d->id) : d->file;
		json_object_set_new(o, d->id, json_string(file ? file : "empty"));
	}
	json_object_set_new(st, "media", o);
}

static void media_release(struct sv_guest *g)
{
	media_free(g);
}

const struct sv_guest_observer sv_media_observer = {
	.name = "media",
	.qemu_new = media_qemu_new,
	.adopted = media_adopted,
	.event = media_event,
	.status = media_status,
	.release = media_release,
};

/* ---- the cdrom verb ---- */

static void op_end(struct media_op *op)
{
	struct sv_guest *g = op->g;
	if (op->fd >= 0)
		close(op->fd);
	if (g->media)
		g->media->busy = false;
	free(op->path);
	sv_guest_unhold(g);
	free(op);
}

static void op_reply(struct media_op *op)
{
	struct medium *m = op->m;
	sv_reply_ok(op->req, json_pack("{s:s, s:s}", "id", op->id, "medium",
	                               m && m->file ? m->file : "empty"));
	op_end(op);
}

/* QEMU's refusal, in the operator's words: a locked tray is the guest's. */
static void op_fail_qemu(struct media_op *op, const struct qmp_result *r)
{
	const char *desc = r->err_desc ? r->err_desc : qmp_strerror(r->status);
	if (strstr(desc, "is locked"))
		sv_reply_err(op->req, "DeviceLocked", "%s: the guest holds the tray of %s locked "
		             "(its OS uses the disc); eject it from inside the guest, or use "
		             "force (qsupctl cdrom --force)", op->g->name, op->id);
	else
		sv_reply_err(op->req, r->err_class ? r->err_class : "GenericError", "%s: %s: %s",
		             op->g->name, op->id, desc);
	op_end(op);
}

static bool op_live(struct media_op *op)
{
	if (op->g->qmp && (op->m = medium_find(op->g, op->id)))
		return true;
	sv_reply_err(op->req, "InvalidState", "%s: QEMU ended during the media change",
	             op->g->name);
	op_end(op);
	return false;
}

static void on_ejected(void *ctx, const struct qmp_result *r)
{
	struct media_op *op = ctx;
	if (r->status != 0) {
		op_fail_qemu(op, r);
		return;
	}
	if (!op_live(op))
		return;
	fdset_drop(op->g, op->m->fdset);
	medium_set(op->m, NULL, -1);
	sv_log(SV_LOG_INFO, op->g->name, "%s: ejected%s", op->id, op->force ? " (forced)" : "");
	op_reply(op);
}

static void on_changed(void *ctx, const struct qmp_result *r)
{
	struct media_op *op = ctx;
	if (r->status != 0) {
		fdset_drop(op->g, op->fdset);
		op_fail_qemu(op, r);
		return;
	}
	if (!op_live(op))
		return;
	fdset_drop(op->g, op->m->fdset);
	medium_set(op->m, op->path, op->fdset);
	sv_log(SV_LOG_INFO, op->g->name, "%s: inserted %s", op->id, op->path);
	op_reply(op);
}

static void on_fd_added(void *ctx, const struct qmp_result *r)
{
	struct media_op *op = ctx;
	close(op->fd);   /* QEMU has its copy (or the step failed) */
	op->fd = -1;
	if (r->status != 0) {
		op_fail_qemu(op, r);
		return;
	}
	op->fdset = (int)json_integer_value(json_object_get(r->ret, "fdset-id"));
	if (!op_live(op)) {
		return;
	}
	char fname[32];
	snprintf(fname, sizeof(fname), "/dev/fdset/%d", op->fdset);
	sv_step(op->g->qmp, NULL, "blockdev-change-medium", json_pack("{s:s, s:s, s:s, s:s}",
	        "id", op->id, "filename", fname, "format", op->format, "read-only-mode",
	        "read-only"), -1, on_changed, op);
}

static void insert_now(struct media_op *op)
{
	sv_step(op->g->qmp, NULL, "add-fd", json_pack("{s:s}", "opaque", op->path), op->fd,
	        on_fd_added, op);
}

/* --force: the tray opens and the old medium goes first, whatever the guest
 * thinks; then the insert as usual. */
static void on_forced_out(void *ctx, const struct qmp_result *r)
{
	struct media_op *op = ctx;
	if (r->status != 0) {
		op_fail_qemu(op, r);
		return;
	}
	if (!op_live(op))
		return;
	fdset_drop(op->g, op->m->fdset);
	medium_set(op->m, NULL, -1);
	insert_now(op);
}

static void open_work(uv_work_t *w)
{
	struct media_op *op = w->data;
	op->fd = sv_fdpass_file(op->path, O_RDONLY, &op->err);
}

static void open_done(uv_work_t *w, int status)
{
	struct media_op *op = w->data;
	if (status < 0 || op->fd < 0) {
		int e = op->fd;
		op->fd = -1;
		sv_reply_err(op->req, e == -ENOENT ? "NotFound" : e == -EACCES ? "PermissionDenied"
		             : "InvalidArgument", "%s: cannot insert into %s: %s", op->g->name,
		             op->id, status < 0 ? uv_strerror(status) : op->err.msg);
		op_end(op);
		return;
	}
	if (!op_live(op))
		return;
	if (op->force)
		sv_step(op->g->qmp, NULL, "eject", json_pack("{s:s, s:b}", "id", op->id,
		        "force", true), -1, on_forced_out, op);
	else
		insert_now(op);
}

void sv_media_cdrom(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const struct sv_profile *p = prof(g);
	const char *id = sv_jstr(args, "id", "");
	const char *action = sv_jstr(args, "action", "");
	const char *file = json_string_value(json_object_get(args, "file"));
	const char *format = sv_jstr(args, "format", "raw");
	int i = p ? sv_profile_find_device(p, id) : -1;
	if (i < 0 || (size_t)i >= p->ndrives) {
		sv_reply_err(req, "NotFound", "%s has no CD-ROM drive %.64s (its profile's "
		             "[cdrom.ID] sections are its drives)", g->name, id);
		return;
	}
	if (!p->drives[i].cdrom) {
		sv_reply_err(req, "InvalidArgument", "%s: %s is a disk, not a CD-ROM drive", g->name,
		             id);
		return;
	}
	bool eject = !strcmp(action, "eject");
	if (!eject && (!file || file[0] != '/' || !sv_format_valid(format))) {
		sv_reply_err(req, "InvalidArgument", "%s", !file ? "insert needs a file"
		             : file[0] != '/' ? "file must be an absolute path"
		             : "format: use raw, qcow2, vmdk, vdi, vhdx, vpc or qed");
		return;
	}
	if (!sv_state_is_up(g->state) || !g->qmp || !qmp_client_is_ready(g->qmp) || g->adopting) {
		sv_reply_err(req, "InvalidState", "%s is %s; a disc can be changed only while it "
		             "runs (it starts with its profile's [cdrom.%s] file)", g->name,
		             sv_state_name(g->state), id);
		return;
	}
	if (!g->media)
		media_reset(g);
	struct medium *m = medium_find(g, id);
	struct media_op *op = m ? calloc(1, sizeof(*op)) : NULL;
	if (!op || (!eject && !(op->path = strdup(file)))) {
		free(op);
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	if (g->media->busy) {
		free(op->path);
		free(op);
		sv_reply_err(req, "InvalidState", "%s: another media change is under way; try "
		             "again when it is over", g->name);
		return;
	}
	g->media->busy = true;
	op->g = g;
	op->req = req;
	snprintf(op->id, sizeof(op->id), "%s", id);
	op->eject = eject;
	op->force = json_is_true(json_object_get(args, "force"));
	op->fd = op->fdset = -1;
	snprintf(op->format, sizeof(op->format), "%s", format);
	sv_guest_hold(g);
	if (eject) {
		sv_step(g->qmp, NULL, "eject", json_pack("{s:s, s:b}", "id", id, "force", op->force),
		        -1, on_ejected, op);
		return;
	}
	op->work.data = op;
	if (uv_queue_work(g->env->loop, &op->work, open_work, open_done) < 0) {
		sv_reply_err(req, "GenericError", "cannot queue work");
		op_end(op);
	}
}
