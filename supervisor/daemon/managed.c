/*
 * Saved states that qsupd keeps, and what happens once per host boot: see
 * managed.h.
 *
 * A managed restore is an ordinary restore (migrate.h) that qsupd asks for
 * itself: its request goes by the daemon's own route (self_answer), which
 * finishes the job once QEMU's answer is in, whatever became of the client
 * that started it: the file goes once the guest runs from it, and a file
 * that cannot be restored is set aside and the guest boots afresh, because
 * a guest that stays down is worse than one that lost its memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "managed.h"
#include "migrate.h"
#include "sysutil.h"

struct sv_managed {
	struct sv_managed *next;
	uint64_t peer;              /* of the daemon's own request */
	struct sv_daemon *d;
	char *name;
	char *file;
	struct sv_request *client;  /* to answer in the end; NULL: none */
	bool fallback;              /* boot afresh when the restore fails */
	char why[600];
	uv_fs_t fs;
};

void sv_managed_path(const struct sv_daemon *d, const char *name, char *buf, size_t size)
{
	snprintf(buf, size, "%s/save/%s.qsave", d->state_dir, name);
}

bool sv_managed_exists(const struct sv_daemon *d, const char *name)
{
	char path[4200];
	sv_managed_path(d, name, path, sizeof(path));
	/* One stat in qsupd's own state dir: a local file system. */
	return access(path, F_OK) == 0;
}

static void managed_free(struct sv_managed *m)
{
	free(m->name);
	free(m->file);
	free(m);
}

static struct sv_managed *take(struct sv_daemon *d, uint64_t peer)
{
	for (struct sv_managed **pp = &d->managed; *pp; pp = &(*pp)->next) {
		if ((*pp)->peer == peer) {
			struct sv_managed *m = *pp;
			*pp = m->next;
			return m;
		}
	}
	return NULL;
}

static void on_unlinked(uv_fs_t *fs)
{
	struct sv_managed *m = fs->data;
	if (fs->result < 0 && fs->result != UV_ENOENT)
		sv_log(SV_LOG_WARN, m->name, "removing %s: %s", m->file, uv_strerror((int)fs->result));
	uv_fs_req_cleanup(fs);
	managed_free(m);
}

/* The failed restore's file is out of the way: boot afresh. */
static void on_set_aside(uv_fs_t *fs)
{
	struct sv_managed *m = fs->data;
	struct sv_guest *g = sv_daemon_guest(m->d, m->name);
	struct sv_error err = { 0 };
	if (fs->result < 0)
		sv_log(SV_LOG_ERR, m->name, "setting %s aside: %s", m->file,
		       uv_strerror((int)fs->result));
	uv_fs_req_cleanup(fs);
	if (fs->result < 0 || !g) {
		if (m->client)
			sv_reply_err(m->client, "GenericError", "%s: restoring %s failed (%s)",
			             m->name, m->file, m->why);
	} else if (sv_guest_start(g, m->client, &err) < 0) {
		if (m->client)
			sv_reply_error(m->client, &err);
		else
			sv_log(SV_LOG_ERR, m->name, "start: %s", err.msg);
	}
	managed_free(m);
}

/* The daemon's own route: the answer to a managed restore. */
static void self_answer(void *arg, uint64_t peer, json_t *msg)
{
	struct sv_daemon *d = arg;
	struct sv_managed *m = take(d, peer);
	json_t *ret = json_object_get(msg, "return");
	if (!m) {
		json_decref(msg);
		return;
	}
	m->fs.data = m;
	if (ret) {
		sv_log(SV_LOG_INFO, m->name, "restored from %s; removing it", m->file);
		if (m->client) {
			json_t *st = json_deep_copy(ret);
			json_object_set_new(st, "restored_from", json_string(m->file));
			sv_reply_ok(m->client, st);
		}
		json_decref(msg);
		if (uv_fs_unlink(d->loop, &m->fs, m->file, on_unlinked) < 0)
			managed_free(m);
		return;
	}
	json_t *e = json_object_get(msg, "error");
	snprintf(m->why, sizeof(m->why), "%s", sv_jstr(e, "desc", "unknown error"));
	json_decref(msg);
	if (!m->fallback) {
		if (m->client)
			sv_reply_err(m->client, "GenericError", "%s: restoring %s failed: %s; the "
			             "file is kept", m->name, m->file, m->why);
		managed_free(m);
		return;
	}
	char bad[4300];
	snprintf(bad, sizeof(bad), "%s.bad", m->file);
	sv_log(SV_LOG_ERR, m->name, "restoring %s failed: %s; kept as %s, booting afresh",
	       m->file, m->why, bad);
	if (uv_fs_rename(d->loop, &m->fs, m->file, bad, on_set_aside) < 0) {
		m->fs.result = UV_EIO;
		on_set_aside(&m->fs);
	}
}

void sv_managed_init(struct sv_daemon *d)
{
	d->self_route = (struct sv_route){ .answer = self_answer, .event = NULL,
	                                   .subscribe = NULL, .arg = d };
}

void sv_managed_free(struct sv_daemon *d)
{
	while (d->managed) {
		struct sv_managed *m = d->managed;
		d->managed = m->next;
		if (m->client)
			sv_reply_err(m->client, "GenericError", "%s: qsupd is exiting", m->name);
		managed_free(m);
	}
}

int sv_managed_restore(struct sv_daemon *d, struct sv_guest *g, struct sv_request *client,
                       bool fallback)
{
	struct sv_managed *m = calloc(1, sizeof(*m));
	char path[4200];
	sv_managed_path(d, g->name, path, sizeof(path));
	struct sv_request *ir = m ? sv_request_new(&d->self_route, ++d->managed_peers, 0, NULL,
	                                           "restore") : NULL;
	json_t *args = json_pack("{s:s}", "file", path);
	if (!ir || !(m->name = strdup(g->name)) || !(m->file = strdup(path)) || !args) {
		free(ir);
		json_decref(args);
		if (m)
			managed_free(m);
		return -ENOMEM;
	}
	m->d = d;
	m->peer = ir->peer;
	m->client = client;
	m->fallback = fallback;
	m->next = d->managed;
	d->managed = m;
	sv_log(SV_LOG_INFO, g->name, "restoring from its saved state %s", path);
	sv_migrate_restore(g, ir, args);
	json_decref(args);
	return 0;
}

int sv_managed_start(struct sv_daemon *d, struct sv_guest *g, struct sv_request *req,
                     struct sv_error *err)
{
	if (sv_state_can_receive(g->state) && g->state != SV_MIGRATED &&
	    sv_managed_exists(d, g->name)) {
		int rc = sv_managed_restore(d, g, req, true);
		return rc < 0 ? sv_error_set(err, rc, "out of memory") : 0;
	}
	return sv_guest_start(g, req, err);
}

/* ---- once per boot ---- */

void sv_managed_boot(struct sv_daemon *d)
{
	char boot[40] = "";
	int rc = sv_boot_id(NULL, boot, sizeof(boot));
	if (rc < 0)
		sv_log(SV_LOG_WARN, NULL, "cannot read the boot id (%s): autostart applies at "
		       "every qsupd start", strerror(-rc));
	for (size_t i = 0; i < d->nguests; i++) {
		struct sv_guest *g = d->guests[i];
		struct sv_error err = { 0 };
		if (boot[0] && strcmp(g->autostart_boot, boot) == 0) {
			sv_log(SV_LOG_DEBUG, g->name, "autostart: done already in this boot");
			continue;
		}
		/* Every guest this qsupd finds is marked, started or not: a later
		 * qsupd of the same boot leaves them all as they are. */
		snprintf(g->autostart_boot, sizeof(g->autostart_boot), "%s", boot);
		g->operator_stop_ms = 0;   /* remembered until the next boot */
		sv_guest_persist(g);
		bool saved = sv_managed_exists(d, g->name);
		if (!(g->profile->autostart || saved) || !sv_state_may_autostart(g->state) ||
		    g->pending_start)
			continue;
		snprintf(g->start_why, sizeof(g->start_why), "autostart");
		if (sv_managed_start(d, g, NULL, &err) < 0)
			sv_log(SV_LOG_ERR, g->name, "autostart: %s", err.msg);
	}
}
