/*
 * Backups: backup-restore (backup_int.h; the whole is told in backup.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_int.h"
#include "log.h"
#include "request.h"
#include "snaprec.h"

int sv_backup_restore_check(json_t *args, struct sv_error *err)
{
	json_t *dir = json_object_get(args, "dir"), *b = json_object_get(args, "backup");
	if (!json_is_string(dir) || json_string_value(dir)[0] != '/')
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "backup-restore needs "
		                     "{\"name\", \"dir\": the backups' directory, an absolute "
		                     "path, \"backup\": an ID (optional)}");
	if (b && (!json_is_string(b) || !json_string_length(b) || strchr(json_string_value(b),
	    '/')))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "\"backup\" must be a "
		                     "backup's ID");
	return 0;
}

static void restore_next(struct sv_backup_op *op);

static void restore_fail_work(void *arg)
{
	struct sv_backup_op *op = arg;
	for (size_t i = 0; i < op->n; i++)
		if (op->d[i].part)
			unlink(op->d[i].part);
}

static void restore_fail(struct sv_backup_op *op, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void restore_fail(struct sv_backup_op *op, const char *cls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->why, sizeof(op->why), fmt, ap);
	va_end(ap);
	op->work.err.cls = cls;
	sv_opwork_run(&op->work, restore_fail_work, bk_fail_done);
}

static void rename_work(void *arg)
{
	struct sv_backup_op *op = arg;
	for (size_t i = 0; i < op->n; i++) {
		struct bdisk *d = &op->d[i];
		if (rename(d->part, d->dst) < 0) {
			op->work.rc = sv_error_set(&op->work.err, -errno, "disk %s: cannot rename "
			                           "%s: %s (disks before it are restored)", d->id,
			                           d->part, strerror(errno));
			return;
		}
		free(d->part);
		d->part = NULL;
	}
}

static void rename_done(void *arg)
{
	struct sv_backup_op *op = arg;
	if (op->work.rc < 0) {
		restore_fail(op, "GenericError", "%s", op->work.err.msg);
		return;
	}
	json_t *disks = json_object();
	for (size_t i = 0; i < op->n; i++)
		json_object_set_new(disks, op->d[i].id, json_string(op->d[i].dst));
	sv_log(SV_LOG_INFO, op->g->name, "restored from backup %s in %s", op->id, op->dir);
	sv_reply_ok(op->req, json_pack("{s:s, s:s, s:s, s:o}", "name", op->g->name, "backup",
	            op->id, "status", "restored", "disks", disks));
	op->req = NULL;
	bk_op_end(op);
}

static void on_converted(void *arg, bool ok)
{
	struct sv_backup_op *op = arg;
	struct bdisk *d = &op->d[op->i];
	if (!ok) {
		char tail[600];
		sv_opwork_img_tail(&op->work, tail, sizeof(tail));
		restore_fail(op, "GenericError", "disk %s: qemu-img convert %s: %s (the disk's "
		             "image is unchanged)", d->id, d->src, tail);
		return;
	}
	op->i++;
	restore_next(op);
}

static void restore_next(struct sv_backup_op *op)
{
	if (op->i == op->n) {
		sv_opwork_run(&op->work, rename_work, rename_done);
		return;
	}
	struct bdisk *d = &op->d[op->i];
	const char *args[] = { "convert", "-q", "-f", "qcow2", "-O", d->dstfmt, "--", d->src,
	                       d->part, NULL };
	int rc = sv_opwork_img(&op->work, args, on_converted);
	if (rc < 0)
		restore_fail(op, "GenericError", "cannot run qemu-img: %s", uv_strerror(rc));
}

/* Off the loop: the manifest of the backup asked for (or the newest), each
 * disk's file checked along its chain. */
static void restore_read(void *arg)
{
	struct sv_backup_op *op = arg;
	json_t *all = bk_read_manifests(op->dir, op->g->name);
	json_t *m = op->id[0] ? bk_find_manifest(all, op->id)
	          : json_array_get(all, json_array_size(all) - 1);
	if (!m) {
		op->work.rc = sv_error_setc(&op->work.err, -ENOENT, "NotFound", op->id[0]
		                            ? "%s holds no backup %s of %s"
		                            : "%s holds no backup of %s%s", op->dir, op->id[0]
		                            ? op->id : op->g->name, op->id[0] ? op->g->name : "");
		json_decref(all);
		return;
	}
	snprintf(op->id, sizeof(op->id), "%s", sv_jstr(m, "backup", ""));
	op->rec = json_incref(m);
	json_decref(all);
	json_t *dd;
	const char *id;
	json_object_foreach(json_object_get(m, "disks"), id, dd) {
		struct bdisk *d = NULL;
		for (size_t i = 0; i < op->n; i++)
			if (!strcmp(op->d[i].id, id))
				d = &op->d[i];
		if (!d)
			continue;   /* a disk the guest no longer has */
		char path[4400];
		/* the chain: each file's backing, in the same dir */
		const char *file = sv_jstr(dd, "file", "");
		if (asprintf(&d->src, "%s/%s", op->dir, file) < 0) {
			d->src = NULL;
			op->work.rc = sv_error_set(&op->work.err, -ENOMEM, "out of memory");
			return;
		}
		snprintf(path, sizeof(path), "%s", d->src);
		if (access(path, R_OK) < 0) {
			op->work.rc = sv_error_setc(&op->work.err, -errno, "NotFound", "disk %s: "
			                            "%s: %s", id, path, strerror(errno));
			return;
		}
	}
}

static void restore_read_done(void *arg)
{
	struct sv_backup_op *op = arg;
	if (op->work.rc < 0) {
		bk_work_failed(op);
		return;
	}
	/* only the disks the backup has */
	size_t k = 0;
	for (size_t i = 0; i < op->n; i++) {
		if (op->d[i].src) {
			if (k != i) {
				op->d[k] = op->d[i];
				memset(&op->d[i], 0, sizeof(op->d[i]));
				op->d[i].fd = -1;
			}
			k++;
		} else {
			free(op->d[i].dst);
			free(op->d[i].dstfmt);
			op->d[i].dst = op->d[i].dstfmt = NULL;
		}
	}
	op->n = k;
	if (!op->n) {
		bk_op_fail(op, "InvalidArgument", "backup %s holds none of %s's disks", op->id,
		           op->g->name);
		return;
	}
	for (size_t i = 0; i < op->n; i++)
		if (asprintf(&op->d[i].part, "%s.restore.part", op->d[i].dst) < 0) {
			op->d[i].part = NULL;
			bk_op_fail(op, "GenericError", "out of memory");
			return;
		}
	op->i = 0;
	restore_next(op);
}

void sv_backup_restore(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const struct sv_profile *p = sv_guest_profile_now(g);
	struct sv_error e = { 0 };
	json_t *rec = NULL;
	if (bk_refused(g, req, p, "backup-restore"))
		return;
	if (sv_guest_active(g)) {
		sv_reply_err(req, "InvalidState", "%s is %s: backup-restore needs the guest "
		             "stopped (qsupctl stop %s)", g->name, sv_state_name(g->state), g->name);
		return;
	}
	if (sv_snaprec_read(p, &rec, &e) < 0 || json_object_size(json_object_get(rec,
	    "active"))) {
		json_decref(rec);
		sv_reply_err(req, "InvalidState", "%s has disk snapshots (qsupctl snapshot %s "
		             "list): its disks boot overlays a restore would not reach; delete "
		             "the snapshots first", g->name, g->name);
		return;
	}
	json_decref(rec);
	struct sv_backup_op *op = bk_op_new(g, req, p);
	if (!op)
		return;
	op->restore = true;
	snprintf(op->dir, sizeof(op->dir), "%s", sv_jstr(args, "dir", ""));
	snprintf(op->id, sizeof(op->id), "%s", sv_jstr(args, "backup", ""));
	g->backup = op;
	g->busy_op = bk_restore_busy;
	sv_guest_hold(g);
	sv_opwork_run(&op->work, restore_read, restore_read_done);
}
