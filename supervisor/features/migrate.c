/* Migration: the record, the agreement, steps, events, adoption (migrate_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate_int.h"

const char *const mig_role_names[] = { "source", "destination", "save", "restore" };

const struct sv_profile *mig_prof(struct sv_guest *g)
{
	return g->run_profile ? g->run_profile : g->profile;
}

const char *mig_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- the context ---- */

void mig_free(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!m)
		return;
	g->mig = NULL;
	if (m->intent_go)   /* still waiting for its record */
		sv_guest_persist_cancel(g, &m->intent);
	if ((m->role == ROLE_OUT || m->role == ROLE_SAVE) && g->mig_out) {
		g->mig_out = false;   /* nothing more to ask a re-adopted QEMU */
		sv_guest_persist(g);
	}
	mc_release(g, m);
	if (m->timer) {
		sv_guest_close_free(g, (uv_handle_t *)m->timer);
	}
	if (m->peer)
		sv_peer_cancel(m->peer);
	sv_sshlink_close(m->link, m->completed);   /* completed: let it drain */
	for (size_t i = 0; i < m->nnbd_links; i++)
		sv_sshlink_close(m->nbd_links[i], false);   /* the mirrors are over */
	free(m->nbd_links);
	if (m->tmp)   /* a save that did not complete */
		sv_savefile_discard(g->env->loop, m->fd, m->tmp);
	else if (m->fd >= 0)
		close(m->fd);
	if (m->req)
		sv_reply_err(m->req, "InvalidState", "%s: the migration ended (%s)", g->name,
		             g->reason);
	json_decref(m->args);
	json_decref(m->last);
	json_decref(m->fig);
	free(m->to);
	free(m->file);
	free(m->header);
	free(m->tmp);
	free(m);
}

struct sv_mig *mig_new(struct sv_guest *g, enum role role, struct sv_request *req,
                              json_t *args)
{
	struct sv_mig *m = calloc(1, sizeof(*m));
	if (!m) {
		sv_reply_err(req, "GenericError", "%s", "out of memory");
		return NULL;
	}
	m->role = role;
	m->req = req;
	m->args = json_incref(args);
	m->fd = -1;
	m->nbd_fd = -1;
	m->started_ms = uv_now(g->env->loop);
	g->mig = m;
	return m;
}

/* mig_free cancels the wait of a migration that ends first. */
static void intent_recorded(struct sv_persist_wait *w, struct sv_guest *g, int err)
{
	struct sv_mig *m = (struct sv_mig *)((char *)w - offsetof(struct sv_mig, intent));
	if (g->freeing || m != g->mig || !m->intent_go)
		return;
	void (*go)(struct sv_guest *g) = m->intent_go;
	m->intent_go = NULL;
	if (err < 0) {
		char why[600];
		snprintf(why, sizeof(why), "cannot record the migration in %.400s/state.json "
		         "before it starts: %s", g->rundir, strerror(-err));
		mig_answer_err(g, "GenericError", why);
		mig_free(g);
		return;
	}
	go(g);
}

void mig_out_intent(struct sv_guest *g, void (*go)(struct sv_guest *g))
{
	struct sv_mig *m = g->mig;
	g->mig_out = true;
	m->intent_go = go;
	m->intent.done = intent_recorded;
	sv_guest_persist_then(g, &m->intent);
}

/* Answer the waiting request (if any) with ok / the error. */
void mig_answer_ok(struct sv_guest *g, json_t *ret)
{
	struct sv_mig *m = g->mig;
	if (m && m->req)
		sv_reply_ok(m->req, ret);
	else
		json_decref(ret);
	if (m)
		m->req = NULL;
}

void mig_answer_err(struct sv_guest *g, const char *cls, const char *msg)
{
	struct sv_mig *m = g->mig;
	sv_log(SV_LOG_WARN, g->name, "%s", msg);
	if (m && m->req)
		sv_reply_err(m->req, cls, "%s", msg);
	if (m)
		m->req = NULL;
}

/* ---- what both ends must agree on ---- */

/* The QEMU command line the profile gives, with this host's accelerator
 * but a fixed runtime dir: both ends must have the same one. */
json_t *mig_profile_argv(struct sv_guest *g, struct sv_error *err)
{
	struct sv_argv a = { 0 };
	if (!mig_prof(g)) {
		sv_error_set(err, -ENOENT, "%s: its profile was removed", g->name);
		return NULL;
	}
	if (sv_guest_argv(g, mig_prof(g), "/run/qsup", false, &a, err) < 0)
		return NULL;
	json_t *list = sv_argv_json(&a);
	sv_argv_free(&a);
	return list;
}

/* Compare the source's command line with ours; NULL, or why not. */
char *mig_argv_mismatch(struct sv_guest *g, json_t *theirs)
{
	struct sv_error err = { 0 };
	json_t *ours = mig_profile_argv(g, &err);
	char *why = NULL;
	if (!ours) {
		why = strdup(err.msg);
	} else if (!json_is_array(theirs)) {
		why = strdup("the source sent no QEMU command line to compare");
	} else {
		size_t n = json_array_size(ours), k = json_array_size(theirs), i;
		for (i = 0; i < n && i < k; i++)
			if (!json_equal(json_array_get(ours, i), json_array_get(theirs, i)))
				break;
		if (i < n || i < k) {
			const char *a = json_string_value(json_array_get(theirs, i));
			const char *b = json_string_value(json_array_get(ours, i));
			if (asprintf(&why, "the profile of %s here differs from the source's: its "
			             "QEMU command line has '%.200s' where the source has '%.200s' "
			             "(argument %zu)", g->name, b ? b : "(end)", a ? a : "(end)",
			             i) < 0)
				why = NULL;
		}
	}
	json_decref(ours);
	return why;
}

/* migrate-set-capabilities: events (qsupd follows them), return-path over
 * a socket (without it, a destination that fails at the very end, on a
 * device it lacks, leaves the source "completed" with the guest stopped on
 * both sides; with it the source fails and runs on), then the profile's
 * and the request's. */
json_t *mig_caps_json(struct sv_guest *g, json_t *args, bool file)
{
	const struct sv_profile *p = mig_prof(g);
	json_t *list = json_pack("[{s:s, s:b}]", "capability", "events", "state", 1);
	if (!file)
		json_array_append_new(list, json_pack("{s:s, s:b}", "capability", "return-path",
		                                      "state", 1));
	/* copy-storage (mig_copy.c): the source stops before switch-over to end
	 * its mirrors; the destination activates its disks only at cont, once
	 * its NBD exports are gone. */
	if (g->mig && g->mig->copy)
		json_array_append_new(list, json_pack("{s:s, s:b}", "capability", g->mig->role ==
		                      ROLE_OUT ? "pause-before-switchover" : "late-block-activate",
		                      "state", 1));
	json_t *extra = json_object_get(args, "capabilities"), *e;
	size_t i;
	for (size_t k = 0; p && k < p->migrate_caps.n; k++) {
		if (file && !strcmp(p->migrate_caps.v[k], "multifd"))
			continue;   /* no multifd into a file */
		json_array_append_new(list, json_pack("{s:s, s:b}", "capability",
		                      p->migrate_caps.v[k], "state", 1));
	}
	json_array_foreach(extra, i, e)
		if (json_is_string(e))
			json_array_append_new(list, json_pack("{s:O, s:b}", "capability", e, "state", 1));
	return json_pack("{s:o}", "capabilities", list);
}

/* migrate-set-parameters: the request's, else the profile's, else qsup's. */
json_t *mig_params_json(struct sv_guest *g, json_t *args)
{
	const struct sv_profile *p = mig_prof(g);
	json_t *o = json_object();
	json_t *v = json_object_get(args, "downtime");
	if (json_is_integer(v))
		json_object_set(o, "downtime-limit", v);
	else if (p && p->migrate_downtime_ms)
		json_object_set_new(o, "downtime-limit", json_integer((json_int_t)p->migrate_downtime_ms));
	uint64_t bw = p && p->migrate_bandwidth ? p->migrate_bandwidth : DEFAULT_BANDWIDTH;
	v = json_object_get(args, "bandwidth");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		bw = (uint64_t)json_integer_value(v);
	else if (json_is_string(v))
		sv_size_parse(json_string_value(v), &bw);
	json_object_set_new(o, "max-bandwidth", json_integer((json_int_t)bw));
	/* [migration] tls: this migration's credentials (mig_copy.c), else none */
	json_object_set_new(o, "tls-creds", json_string(g->mig && g->mig->psk[0] ? "qsup-tls"
	                                                 : ""));
	v = json_object_get(args, "multifd-channels");
	if (json_is_integer(v))
		json_object_set(o, "multifd-channels", v);
	else if (p && p->migrate_multifd_channels)
		json_object_set_new(o, "multifd-channels",
		                    json_integer((json_int_t)p->migrate_multifd_channels));
	return o;
}

const char *sv_migrate_args_bad(json_t *args)
{
	json_t *v;
	if ((v = json_object_get(args, "uri")) && !json_is_string(v))
		return "uri must be a string (unix:PATH or tcp:HOST:PORT)";
	if ((v = json_object_get(args, "downtime")) &&
	    (!json_is_integer(v) || json_integer_value(v) < 1))
		return "downtime must be a number of milliseconds";
	if ((v = json_object_get(args, "bandwidth")) && !json_is_integer(v) && !json_is_string(v))
		return "bandwidth must be bytes per second, or a size such as 1G";
	if ((v = json_object_get(args, "multifd-channels")) &&
	    (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 255))
		return "multifd-channels must be a number from 1 to 255";
	if ((v = json_object_get(args, "capabilities")) && !json_is_array(v))
		return "capabilities must be a list of QEMU migration capability names";
	if ((v = json_object_get(args, "timeout")) &&
	    (!json_is_integer(v) || json_integer_value(v) < 1))
		return "timeout must be a number of milliseconds";
	if ((v = json_object_get(args, "wait")) && !json_is_boolean(v))
		return "wait must be true or false";
	if ((v = json_object_get(args, "copy-storage")) && !json_is_boolean(v))
		return "copy-storage must be true or false";
	if ((v = json_object_get(args, "force")) && !json_is_boolean(v))
		return "force must be true or false";
	if ((v = json_object_get(args, "postcopy-after")) &&
	    (!json_is_integer(v) || json_integer_value(v) < 1))
		return "postcopy-after must be a number of passes (with the postcopy-ram capability)";
	return NULL;
}

/* ---- QMP steps ---- */

/* A step of a migration that has ended meanwhile is dropped. */
static bool mig_live(void *ctx)
{
	return ((struct sv_guest *)ctx)->mig != NULL;
}

static const struct sv_step_kind mig_step = { .live = mig_live };

/* Run cmd (args taken; fd passed along when >= 0). */
void mig_mstep_fd(struct sv_guest *g, const char *cmd, json_t *args, int fd, sv_step_fn fn)
{
	sv_step(g->qmp, &mig_step, cmd, args, fd, fn, g);
}

void mig_mstep(struct sv_guest *g, const char *cmd, json_t *args, sv_step_fn fn)
{
	sv_step(g->qmp, &mig_step, cmd, args, -1, fn, g);
}

/* The error of a failed step, as a message. */
void mig_step_error(const struct qmp_result *r, const char *what, char *buf, size_t size)
{
	snprintf(buf, size, "%s: %s", what, r->status == QMP_EREPLY ? r->err_desc
	         : qmp_strerror(r->status));
}

/* A step that may fail without ending anything (a clean-up): logged. */
void mig_step_warn(struct sv_guest *g, const char *what, const struct qmp_result *r)
{
	if (r->status != 0)
		sv_log(SV_LOG_WARN, g->name, "%s: %s", what, r->status == QMP_EREPLY
		       ? r->err_desc : qmp_strerror(r->status));
}

/* ---- events, re-adoption, the end ---- */

void sv_migrate_event(struct sv_guest *g, json_t *data)
{
	struct sv_mig *m = g->mig;
	const char *st = mig_str(data, "status");
	if (!m || !st)
		return;
	m->status = m->status && (!strcmp(m->status, "timeout") || !strcmp(m->status, "cancel"))
	          ? m->status : NULL;
	if (m->role == ROLE_IN || m->role == ROLE_RESTORE) {
		if (!strcmp(st, "completed") && g->state == SV_INCOMING)
			mig_in_completed(g);
		return;   /* a failed stream ends the destination's QEMU */
	}
	if (!strcmp(st, "pre-switchover"))
		mc_out_switchover(g);
	if (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled")) {
		m->ev_end = !strcmp(st, "completed") ? "completed" : !strcmp(st, "failed")
		            ? "failed" : "cancelled";
		mig_poll_now(g);   /* the final figures */
	}
}

static void on_adopt_query(void *arg, const struct qmp_result *r)
{
	struct sv_guest *g = arg;
	const char *st = r->status == 0 ? mig_str(r->ret, "status") : NULL;
	if (!g->mig)
		return;
	/* A QEMU that never migrated answers {}, without a status. */
	if (r->status == 0 && !st)
		st = "none";
	if (!st) {
		mig_free(g);   /* no answer: nothing known to be in flight */
	} else if (!strcmp(st, "completed") && g->mig->post) {
		mig_on_progress(g, r);   /* quits QEMU: the guest runs on the destination */
	} else if (!strcmp(st, "completed") || !strcmp(st, "failed") ||
	           !strcmp(st, "cancelled") || !strcmp(st, "none")) {
		/* Nothing in flight (a guest that came in by migration also says
		 * completed: that was the incoming one). */
		mig_free(g);
	} else if (sv_state_can_migrate(g->state) || g->state == SV_MIGRATING) {
		sv_guest_transition(g, SV_MIGRATING, "migrating (picked up after a qsupd restart)");
		mig_timer_start(g);
	} else {   /* stopped or killed meanwhile: QEMU goes, and the migration with it */
		mig_free(g);
	}
}

bool sv_migrate_adopt(struct sv_guest *g, const char *st)
{
	if (!st || g->mig)
		return false;
	if (!strcmp(st, "inmigrate")) {
		/* qsupd went away while the guest was coming in: wait for it. */
		if (!mig_new(g, ROLE_IN, NULL, NULL))
			return false;
		snprintf(g->mig->uri, sizeof(g->mig->uri), "(as before the qsupd restart)");
		mc_in_adopt(g);   /* a copy-storage: the images it created */
		sv_guest_transition(g, SV_INCOMING, "incoming migration (picked up after a qsupd "
		                    "restart)");
		return true;
	}
	/* Running, or done migrating out: ask QEMU whether a migration runs,
	 * unless state.json says none can (adopt.c did not ask then). */
	if (!g->adopt_ask_mig)
		return false;
	if (!mig_new(g, ROLE_OUT, NULL, NULL))
		return false;
	g->mig->started = true;
	snprintf(g->mig->uri, sizeof(g->mig->uri), "(as before the qsupd restart)");
	g->mig->post = !strcmp(st, "postmigrate") || !strcmp(st, "finish-migrate");
	g->mig->was_paused = strcmp(st, "running") != 0 && !g->mig->post;
	if (g->mig->post)
		sv_guest_transition(g, SV_MIGRATING, "finishing a migration (picked up after a "
		                    "qsupd restart)");
	g->mig->adopt_query = true;   /* adopt.c asked query-migrate already */
	return g->mig->post;
}

static void adopt_migrate(struct sv_guest *g, const struct qmp_result *r)
{
	if (!r) {   /* not asked: none ran (state.json), but a record may be left */
		if (!g->mig)   /* (an incoming one has its own: mc_in_adopt) */
			mc_adopt(g);
		return;
	}
	if (!g->mig || !g->mig->adopt_query)
		return;
	g->mig->adopt_query = false;
	on_adopt_query(g, r);
	mc_adopt(g);   /* a copy-storage left by a qsupd that died: cancelled */
}

/* After a completed migrate --to: answer once the destination runs the
 * guest (its qsupd conts it when the stream is in), or after 10 s. */
struct dest_wait {
	uv_timer_t timer;
	struct sv_request *req;
	json_t *fig;
	char *to, *name;
	int tries;
};

static void dw_poll(uv_timer_t *t);

static void dw_closed(uv_handle_t *h)
{
	struct dest_wait *w = h->data;
	json_decref(w->fig);
	free(w->to);
	free(w->name);
	free(w);
}

static void dw_status(json_t *reply, const char *why, void *arg)
{
	struct dest_wait *w = arg;
	const char *st = mig_str(json_object_get(reply, "return"), "state");
	(void)why;
	if (st && strcmp(st, "incoming") && strcmp(st, "starting")) {
		json_object_set_new(w->fig, "destination", json_string(st));
	} else if (++w->tries < 100) {
		uv_timer_start(&w->timer, dw_poll, 100, 0);
		return;
	} else {
		json_object_set_new(w->fig, "destination", json_string(st ? st : "unknown"));
	}
	sv_reply_ok(w->req, json_incref(w->fig));
	uv_close((uv_handle_t *)&w->timer, dw_closed);
}

static void dw_poll(uv_timer_t *t)
{
	struct dest_wait *w = t->data;
	json_t *a = json_pack("{s:s}", "name", w->name);
	if (sv_peer_call(t->loop, w->to, "status", a, 5000, dw_status, w, NULL) < 0)
		dw_status(NULL, "out of memory", w);
	json_decref(a);
}

/* A completed save: the new file on disk under its name, then the answer. */
struct save_commit {
	struct sv_request *req;
	json_t *fig;
};

static void on_save_committed(void *arg, const char *why)
{
	struct save_commit *sc = arg;
	if (why && sc->req)
		sv_reply_err(sc->req, "GenericError", "the guest was saved, but %s", why);
	else if (sc->req)
		sv_reply_ok(sc->req, json_incref(sc->fig));
	json_decref(sc->fig);
	free(sc);
}

static void commit_save(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	struct save_commit *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return;   /* mig_free answers, and drops the file */
	sc->req = m->req;
	sc->fig = json_incref(m->fig);
	if (sv_savefile_commit(g->env->loop, m->fd, m->tmp, m->file, on_save_committed, sc) < 0) {
		json_decref(sc->fig);
		free(sc);
		m->fd = -1;   /* closed by the failed commit */
		return;
	}
	m->req = NULL;
	m->fd = -1;
	free(m->tmp);
	m->tmp = NULL;
}

void sv_migrate_qemu_gone(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!m)
		return;
	if (m->role == ROLE_SAVE && m->completed && m->tmp)
		commit_save(g);
	if (m->role == ROLE_OUT && (m->started || m->copy) && !m->completed)
		mig_kill_destination(g);   /* (copy-storage: also while mirroring) */
	struct dest_wait *w = m->completed && m->req && m->to ? calloc(1, sizeof(*w)) : NULL;
	if (w) {
		w->req = m->req;
		w->fig = m->fig;
		w->to = m->to;
		w->name = strdup(g->name);
		m->req = NULL;
		m->fig = NULL;
		m->to = NULL;
		uv_timer_init(g->env->loop, &w->timer);
		w->timer.data = w;
		dw_poll(&w->timer);
	} else if (m->completed) {
		mig_answer_ok(g, json_incref(m->fig));
	}
	mig_free(g);
}

void sv_migrate_free(struct sv_guest *g)
{
	mig_free(g);
}

bool sv_migrate_completed(struct sv_guest *g, bool *saved)
{
	struct sv_mig *m = g->mig;
	*saved = m && m->role == ROLE_SAVE;
	return m && m->completed;
}

const char *sv_migrate_where(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	return !m ? "" : m->role == ROLE_SAVE || m->role == ROLE_RESTORE ? sv_or(m->file, "") : m->uri;
}

json_t *sv_migrate_status(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!m)
		return NULL;
	json_t *o = json_pack("{s:s, s:s}", "role", mig_role_names[m->role], "uri", m->uri);
	if (m->last)
		json_object_set_new(o, "progress", mig_figures(g, m->last));
	mc_figures(g, o);   /* copy-storage: the disks' figures */
	return o;
}

/* ---- what migration hears of a guest (guest.h) ---- */

static bool on_qmp_ready(struct sv_guest *g, void (*done)(struct sv_guest *g))
{
	(void)done;   /* an incoming QEMU runs when its stream is in */
	if (g->state != SV_INCOMING)
		return false;
	sv_migrate_qmp_ready(g);
	return true;
}

static void on_event(struct sv_guest *g, const char *name, json_t *data)
{
	if (strcmp(name, "MIGRATION") == 0)
		sv_migrate_event(g, data);
	else if (strncmp(name, "BLOCK_JOB_", 10) == 0)
		mc_job_event(g, name, data);
}

static bool ended_by(struct sv_guest *g, bool *saved, const char **where)
{
	if (!sv_migrate_completed(g, saved))
		return false;
	*where = sv_migrate_where(g);
	return true;
}

static void status(struct sv_guest *g, json_t *st)
{
	json_t *m = sv_migrate_status(g);
	json_object_set_new(st, "migration", m ? m : json_null());
}

void sv_migrate_restored(struct sv_guest *g)
{
	if (!g->adopted)
		mc_in_stale(g);   /* a copy-storage in that no QEMU finishes */
}

const struct sv_guest_observer sv_migrate_observer = {
	.name = "migrate", .qmp_ready = on_qmp_ready, .adopt = sv_migrate_adopt,
	.adopt_migrate = adopt_migrate,
	.event = on_event, .ended_by = ended_by, .qemu_gone = sv_migrate_qemu_gone,
	.start_failed = sv_migrate_free, .status = status, .release = sv_migrate_free,
};
