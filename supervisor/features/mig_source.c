/* Migration: the source (migrate_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate_int.h"
#include "snapshot.h"

/* ---- the source: migrate, save ---- */

static void out_end(struct sv_guest *g, json_t *info);

/* The figures of a query-migrate, for events and replies. */
json_t *mig_figures(struct sv_guest *g, json_t *info)
{
	json_t *ram = json_object_get(info, "ram");
	json_t *o = json_pack("{s:s, s:s, s:I}", "status", sv_or(mig_str(info, "status"), "?"), "uri",
	                      g->mig->uri, "elapsed-ms",
	                      (json_int_t)(uv_now(g->env->loop) - g->mig->started_ms));
	static const char *const keys[][2] = {
		{ "transferred", "transferred" }, { "remaining", "remaining" },
		{ "total", "total" }, { "dirty-pages-rate", "dirty-pages-rate" },
		{ "mbps", "mbps" }, { "dirty-sync-count", "passes" },
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(ram, keys[i][0]);
		if (v)
			json_object_set(o, keys[i][1], v);
	}
	static const char *const top[] = { "expected-downtime", "downtime", "total-time",
	                                   "setup-time", "error-desc" };
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		json_t *v = json_object_get(info, top[i]);
		if (v)
			json_object_set(o, top[i], v);
	}
	mc_figures(g, o);
	return o;
}


static void on_postcopy(void *arg, const struct qmp_result *r)
{
	struct sv_guest *g = arg;
	mig_step_warn(g, "migrate-start-postcopy", r);
}

/* Switch to postcopy: the destination runs the guest from now on, and
 * pulls the pages still missing. */
static void start_postcopy(struct sv_guest *g)
{
	g->mig->postcopy = true;
	sv_log(SV_LOG_INFO, g->name, "switching the migration to postcopy");
	mig_mstep(g, "migrate-start-postcopy", NULL, on_postcopy);
}

void mig_on_progress(void *arg, const struct qmp_result *r)
{
	struct sv_guest *g = arg;
	struct sv_mig *m = g->mig;
	if (!m || r->status != 0 || m->ending)
		return;
	/* Before our `migrate` (copy-storage: while the disks are mirrored,
	 * or the tunnel's ssh connects), query-migrate tells of an earlier
	 * migration: on a guest that came in by migration, "completed". */
	if (!m->started)
		return;
	const char *st = mig_str(r->ret, "status");
	if (!st)
		return;
	/* A QEMU the guest came into by migration answers query-migrate with
	 * that incoming migration's status, "completed", for good (QEMU 7.2):
	 * how this one ended is what its MIGRATION event said. (A source
	 * re-adopted in postmigrate had its event before: QEMU's word.) */
	bool over = !strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled");
	if (m->ev_end && strcmp(st, m->ev_end)) {
		st = m->ev_end;
		json_object_set_new(r->ret, "status", json_string(st));
	} else if (over && !m->ev_end && !m->post) {
		json_object_set_new(r->ret, "status", json_string("active"));
		st = "active";   /* not over until the event says so */
	}
	if (!strcmp(st, "completed") && !json_integer_value(json_object_get(r->ret, "total-time")) &&
	    m->final_tries++ < 50) {
		/* Right after the event QEMU may not have filled the figures in. */
		mig_poll_now(g);
		return;
	}
	json_decref(m->last);
	m->last = json_incref(r->ret);
	sv_emit(g->route, json_pack("{s:s, s:s, s:o}", "event", "MIGRATION_PROGRESS",
	                "guest", g->name, "data", mig_figures(g, r->ret)));
	json_int_t passes = json_integer_value(json_object_get(json_object_get(r->ret, "ram"),
	                                                       "dirty-sync-count"));
	if (m->postcopy_after && !m->postcopy && !strcmp(st, "active") &&
	    passes >= m->postcopy_after)
		start_postcopy(g);
	if (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))
		out_end(g, r->ret);
}

void mig_poll_now(struct sv_guest *g)
{
	mig_mstep(g, "query-migrate", NULL, mig_on_progress);
}

static void on_tick(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	struct sv_mig *m = g->mig;
	if (!m)
		return;
	if (m->timeout_ms && m->started && !m->ending &&
	    uv_now(g->env->loop) - m->started_ms > m->timeout_ms) {
		sv_log(SV_LOG_WARN, g->name, "migration timed out after %g s; cancelling",
		       (double)m->timeout_ms / 1000.0);
		m->timeout_ms = 0;
		m->status = "timeout";
		if (g->qmp)
			qmp_client_execute(g->qmp, "migrate_cancel", NULL, 0, NULL, NULL);
	}
	/* Not before QEMU migrates (copy-storage's mirrors come first): until
	 * then query-migrate tells of this QEMU's last migration, which may
	 * well be the incoming one that brought the guest here, completed. */
	if ((m->role == ROLE_OUT || m->role == ROLE_SAVE) && m->started)
		mig_poll_now(g);
	mc_poll(g);
}

void mig_timer_start(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (m->timer || !(m->timer = malloc(sizeof(*m->timer))))
		return;
	uv_timer_init(g->env->loop, m->timer);
	m->timer->data = g;
	sv_guest_hold(g);
	uv_timer_start(m->timer, on_tick, PROGRESS_MS, PROGRESS_MS);
}

/* The destination of migrate --to is of no use any more: kill its QEMU. */
static void on_peer_killed(json_t *reply, const char *why, void *arg)
{
	(void)reply;
	(void)why;
	(void)arg;
}

void mig_kill_destination(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!m || !m->to)
		return;
	json_t *a = json_pack("{s:s}", "name", g->name);
	sv_log(SV_LOG_INFO, g->name, "killing the destination's QEMU (through %s)", m->to);
	sv_peer_call(g->env->loop, m->to, "kill", a, PEER_TIMEOUT_MS, on_peer_killed, NULL, NULL);
	json_decref(a);
}

/* The source's migration (or save) did not happen: say why, drop the
 * destination's QEMU (migrate --to) or the half-written file (save). */
void mig_out_abort(struct sv_guest *g, const char *cls, const char *why)
{
	struct sv_mig *m = g->mig;
	m->ending = true;
	mig_answer_err(g, cls, why);
	mig_kill_destination(g);
	mig_free(g);   /* a save's new file goes: half a stream is no use */
}

/* The migration is over (info: the last query-migrate). */
static void out_end(struct sv_guest *g, json_t *info)
{
	struct sv_mig *m = g->mig;
	const char *st = sv_or(mig_str(info, "status"), "failed");
	if (m->ending)
		return;
	m->ending = true;
	json_t *fig = mig_figures(g, info);
	if (!strcmp(st, "completed")) {
		m->completed = true;
		sv_log_event(SV_LOG_INFO, g->name, m->role == ROLE_SAVE ? NULL : SV_MSGID_MIGRATED,
		             "%s to %s completed in %lld ms (downtime %lld ms)",
		             m->role == ROLE_SAVE ? "save" : "migration", m->uri,
		             (long long)json_integer_value(json_object_get(info, "total-time")),
		             (long long)json_integer_value(json_object_get(info, "downtime")));
		m->fig = fig;   /* the answer waits until this QEMU is gone */
		/* The guest now lives elsewhere (or in the file): QEMU quits, and
		 * the guest is migrated (or stopped), never restarted here. */
		if (g->qmp)
			qmp_client_execute(g->qmp, "quit", NULL, 0, NULL, NULL);
		return;
	}
	char why[700];
	snprintf(why, sizeof(why), "%s %s: %s", m->role == ROLE_SAVE ? "save to" : "migration to",
	         m->uri, m->status && !strcmp(m->status, "timeout") ? "timed out (cancelled)"
	         : !strcmp(st, "cancelled") ? "cancelled"
	         : sv_or(mig_str(info, "error-desc"), "failed"));
	json_decref(fig);
	if (g->state == SV_MIGRATING)   /* not when a stop came meanwhile */
		sv_guest_transition(g, m->was_paused ? SV_PAUSED : SV_RUNNING, why);
	mig_out_abort(g, "MigrationFailed", why);
}

static void out_migrating(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	char why[700];
	if (r->status != 0) {
		mig_step_error(r, "migrate", why, sizeof(why));
		mig_out_abort(g, "MigrationFailed", why);
		return;
	}
	m->started = true;
	if (!(m->copy && g->state == SV_MIGRATING) &&
	    !sv_state_can_migrate(g->state)) {   /* a stop or kill came meanwhile */
		snprintf(why, sizeof(why), "%s is %s", g->name, sv_state_name(g->state));
		mig_out_abort(g, "InvalidState", why);
		return;
	}
	snprintf(why, sizeof(why), "%s %s", m->role == ROLE_SAVE ? "saving to" : "migrating to",
	         m->role == ROLE_SAVE ? m->file : m->uri);
	if (g->state != SV_MIGRATING)
		sv_guest_transition(g, SV_MIGRATING, why);
	if (!m->wait && m->role == ROLE_OUT)
		mig_answer_ok(g, json_pack("{s:s, s:s}", "status", "active", "uri", m->uri));
	mig_timer_start(g);
	mig_poll_now(g);
}

/* A unix socket is connected by qsupd and handed to QEMU (fd:), so that
 * QEMU's identity needs no access to the destination's path; multifd opens
 * channels of its own, so QEMU connects itself then. */
struct mconn {
	uv_pipe_t pipe;
	uv_connect_t req;
	struct sv_guest *g;
	mig_conn_fn fn;
};

static void on_mconn_closed(uv_handle_t *h)
{
	struct mconn *mc = h->data;
	struct sv_guest *g = mc->g;
	free(mc);
	sv_guest_unhold(g);
}

static void on_mconn(uv_connect_t *c, int status)
{
	struct mconn *mc = c->data;
	struct sv_guest *g = mc->g;
	uv_os_fd_t fd = -1;
	if (!g->freeing && g->mig && !g->mig->ending) {
		if (status == 0 && uv_fileno((uv_handle_t *)&mc->pipe, &fd) != 0)
			status = UV_EBADF;
		mc->fn(g, status < 0 ? -1 : fd, status);
	}
	uv_close((uv_handle_t *)&mc->pipe, on_mconn_closed);   /* QEMU has its copy */
}

void mig_unix_connect(struct sv_guest *g, const char *path, mig_conn_fn fn)
{
	struct mconn *mc = calloc(1, sizeof(*mc));
	if (!mc) {
		fn(g, -1, UV_ENOMEM);
		return;
	}
	mc->g = g;
	mc->fn = fn;
	mc->req.data = mc;
	uv_pipe_init(g->env->loop, &mc->pipe, 0);
	mc->pipe.data = mc;
	sv_guest_hold(g);
	uv_pipe_connect(&mc->req, &mc->pipe, path, on_mconn);
}

static void out_fd_passed(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	char why[700];
	if (r->status != 0) {
		mig_step_error(r, "getfd", why, sizeof(why));
		mig_out_abort(g, "MigrationFailed", why);
		return;
	}
	mig_mstep(g, "migrate", json_pack("{s:s}", "uri", "fd:qsup-migrate"), out_migrating);
}

static void out_connected(struct sv_guest *g, int fd, int status)
{
	char why[800];
	if (status < 0) {
		snprintf(why, sizeof(why), "migrate: %s: %s", g->mig->uri + 5, uv_strerror(status));
		mig_out_abort(g, "MigrationFailed", why);
		return;
	}
	mig_mstep_fd(g, "getfd", json_pack("{s:s}", "fdname", "qsup-migrate"), fd, out_fd_passed);
}

static bool multifd_on(struct sv_guest *g)
{
	json_t *caps = mig_caps_json(g, g->mig->args, false), *e;
	size_t i;
	bool on = false;
	json_array_foreach(json_object_get(caps, "capabilities"), i, e)
		on |= !strcmp(sv_or(mig_str(e, "capability"), ""), "multifd");
	json_decref(caps);
	return on;
}

/* migrate --to ssh:// --tunnel: an fd to the destination QEMU's unix
 * socket through ssh (sshlink.h), handed to QEMU as for a local socket. */
static void on_tunnel(int fd, const char *why, void *arg)
{
	struct sv_guest *g = arg;
	struct sv_mig *m = g->mig;
	char msg[900];
	if (!m || m->ending || g->freeing) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "migrate --tunnel: %s", why);
		mig_out_abort(g, "MigrationFailed", msg);
		return;
	}
	sv_log(SV_LOG_INFO, g->name, "the stream goes through ssh to %s", m->uri + 5);
	mig_mstep_fd(g, "getfd", json_pack("{s:s}", "fdname", "qsup-migrate"), fd, out_fd_passed);
	close(fd);   /* QEMU has its copy */
}

static void mig_tunnel_open(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	struct sv_error err = { 0 };
	if (multifd_on(g)) {
		mig_out_abort(g, "InvalidArgument", "--tunnel carries one stream: it cannot be "
		              "used with the multifd capability");
		return;
	}
	if (sv_sshlink_open(g->env->loop, m->to, m->uri + 5, PEER_TIMEOUT_MS, on_tunnel, g,
	                    &m->link, &err) < 0)
		mig_out_abort(g, "MigrationFailed", err.msg);
}

static void out_params_set(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	char why[700];
	if (r->status != 0) {
		mig_step_error(r, "migrate-set-parameters", why, sizeof(why));
		mig_out_abort(g, "InvalidArgument", why);
		return;
	}
	if (m->to && sv_ssh_uri_is(m->to) && !strncmp(m->uri, "unix:", 5)) {
		mig_tunnel_open(g);   /* the destination's socket, through ssh */
		return;
	}
	if (strncmp(m->uri, "unix:", 5) || m->role != ROLE_OUT || multifd_on(g)) {
		mig_mstep(g, "migrate", json_pack("{s:s}", "uri", m->uri), out_migrating);
		return;
	}
	mig_unix_connect(g, m->uri + 5, out_connected);
}

static void out_caps_set(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	char why[700];
	if (r->status != 0) {
		mig_step_error(r, "migrate-set-capabilities", why, sizeof(why));
		mig_out_abort(g, "InvalidArgument", why);
		return;
	}
	mig_mstep(g, "migrate-set-parameters", mig_params_json(g, g->mig->args), out_params_set);
}

void mig_out_begin(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!m->copy) {   /* copy-storage: set when the mirrors began */
		m->was_paused = g->state == SV_PAUSED;
		m->started_ms = uv_now(g->env->loop);
	}
	mig_mstep(g, "migrate-set-capabilities", mig_caps_json(g, m->args, m->role == ROLE_SAVE),
	      out_caps_set);
}

/* The destination qsupd answered `incoming`. */
static void on_peer_incoming(json_t *reply, const char *why, void *arg)
{
	struct sv_guest *g = arg;
	struct sv_mig *m = g->mig;
	char msg[900];
	m->peer = NULL;
	json_t *err = json_object_get(reply, "error");
	if (!reply || err) {
		snprintf(msg, sizeof(msg), "destination %s: %s", m->to, reply ? sv_or(mig_str(err, "desc"), "?")
		         : why);
		free(m->to);
		m->to = NULL;   /* nothing there to kill */
		mig_answer_err(g, reply ? sv_or(mig_str(err, "class"), "GenericError") : "GenericError", msg);
		mig_free(g);
		return;
	}
	if (!sv_state_can_migrate(g->state)) {
		snprintf(msg, sizeof(msg), "%s became %s while the destination got ready", g->name,
		         sv_state_name(g->state));
		mig_answer_err(g, "InvalidState", msg);
		mig_kill_destination(g);
		mig_free(g);
		return;
	}
	snprintf(m->uri, sizeof(m->uri), "%s",
	         sv_or(mig_str(json_object_get(reply, "return"), "uri"), ""));
	mc_out_answered(g, json_object_get(reply, "return"));   /* TLS, copy-storage */
}

/* migrate --to ssh:// (no --tunnel): the stream over TCP to the address
 * the ssh connection reached the destination at (its bridge's
 * SSH_CONNECTION), on a port its QEMU picks. A bridge that does not say
 * leaves the default (a unix socket there), reached through ssh. */
static void peer_over_tcp(json_t *greeting, json_t *args, void *arg)
{
	struct sv_guest *g = arg;
	const char *server = mig_str(json_object_get(greeting, "ssh"), "server");
	char uri[160];
	if (!server || !*server || strlen(server) > 100 || strchr(server, ',')) {
		sv_log(SV_LOG_WARN, g->name, "the destination's ssh bridge did not say its "
		       "address: the stream goes through ssh");
		return;
	}
	bool v6 = strchr(server, ':') != NULL;
	snprintf(uri, sizeof(uri), "tcp:%s%s%s:0", v6 ? "[" : "", server, v6 ? "]" : "");
	json_object_set_new(args, "uri", json_string(uri));
}

/* The arguments the destination needs: what `incoming` takes, and the
 * snapshot record (snapshot.h: the destination boots the same chain). */
json_t *mig_handover(struct sv_guest *g, json_t *argv)
{
	struct sv_error err = { 0 };
	json_t *rec = sv_snapmig_export(g, &err);
	if (!rec)
		sv_log(SV_LOG_WARN, g->name, "the snapshot record cannot be sent: %s", err.msg);
	return json_pack("{s:s, s:o, s:o, s:b, s:o}", "name", g->name, "argv", argv,
	                 "devices", sv_hotplug_export(g), "paused", g->state == SV_PAUSED,
	                 "snapshots", rec ? rec : json_null());
}

bool mig_snaprec_ok(struct sv_guest *g, struct sv_request *req)
{
	struct sv_error err = { 0 };
	json_t *rec = sv_snapmig_export(g, &err);
	json_decref(rec);
	if (!rec)
		sv_reply_err(req, "InvalidState", "%s: the snapshot record cannot be used: %s "
		             "(qsupd --check %s)", g->name, err.msg, g->name);
	return rec != NULL;
}

bool mig_source_ready(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *bad = sv_migrate_args_bad(args);
	if (bad) {
		sv_reply_err(req, "InvalidArgument", "%s", bad);
		return false;
	}
	if (g->mig) {
		sv_reply_err(req, "InvalidState", "%s: a migration (%s) is in progress", g->name,
		             mig_role_names[g->mig->role]);
		return false;
	}
	if (g->backup) {   /* (a snapshot's --memory saves through here) */
		sv_reply_err(req, "InvalidState", "%s: a backup is in progress", g->name);
		return false;
	}
	if (!sv_state_can_migrate(g->state)) {
		sv_reply_err(req, "InvalidState", "%s is %s; it must be running or paused", g->name,
		             sv_state_name(g->state));
		return false;
	}
	return true;
}

static void out_go(struct sv_guest *g);

void sv_migrate_out(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *uri = mig_str(args, "uri"), *to = mig_str(args, "to");
	json_t *tj = json_object_get(args, "to");
	if (!mig_source_ready(g, req, args))
		return;
	/* Not under a snapshot operation; the chain goes with the guest
	 * (mig_handover), so its record must be readable. */
	if (sv_snapshot_refuse(g, req) || !mig_snaprec_ok(g, req))
		return;
	if (tj && (!to || (to[0] != '/' && !sv_ssh_uri_is(to)))) {
		sv_reply_err(req, "InvalidArgument", "%s", "to must be the absolute path of "
		             "the destination qsupd's control socket, or "
		             "ssh://[USER@]HOST[:PORT][/SOCKET]");
		return;
	}
	json_t *tun = json_object_get(args, "tunnel");
	if (tun && (!json_is_boolean(tun) || (json_is_true(tun) && (!sv_ssh_uri_is(to) || uri)))) {
		sv_reply_err(req, "InvalidArgument", "%s", "tunnel (true or false) goes with "
		             "to ssh://..., and without uri");
		return;
	}
	struct sv_ssh_uri su;
	struct sv_error uerr = { 0 };
	if (sv_ssh_uri_is(to) && sv_ssh_uri_parse(to, &su, &uerr) < 0) {
		sv_reply_err(req, "InvalidArgument", "%s", uerr.msg);
		return;
	}
	if (!to && (json_is_true(json_object_get(args, "copy-storage")) ||
	            json_is_true(json_object_get(args, "force")))) {
		sv_reply_err(req, "InvalidArgument", "%s", "copy-storage and force need to (the "
		             "destination qsupd's socket): it creates and exports the disks");
		return;
	}
	if (!uri && !to) {
		sv_reply_err(req, "InvalidArgument", "%s", "migrate needs a uri "
		             "(unix:PATH or tcp:HOST:PORT), or to (another qsupd's socket)");
		return;
	}
	if (uri && strncmp(uri, "unix:", 5) && strncmp(uri, "tcp:", 4)) {
		sv_reply_err(req, "InvalidArgument", "uri '%.100s': use unix:PATH or "
		             "tcp:HOST:PORT", uri);
		return;
	}
	struct sv_mig *m = mig_new(g, ROLE_OUT, req, args);
	if (!m)
		return;
	m->wait = json_is_true(json_object_get(args, "wait"));
	m->postcopy_after = json_integer_value(json_object_get(args, "postcopy-after"));
	m->timeout_ms = (uint64_t)json_integer_value(json_object_get(args, "timeout"));
	m->tunnel = json_is_true(tun);
	snprintf(m->uri, sizeof(m->uri), "%s", uri ? uri : "");
	mig_out_intent(g, out_go);
}

/* On record (mig_out_intent): the stream to a uri at once; or to another
 * qsupd, once it is ready (and the disks first, with copy-storage). */
static void out_go(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	json_t *args = m->args;
	const char *uri = mig_str(args, "uri"), *to = mig_str(args, "to");
	if (!to) {
		mig_out_begin(g);
		return;
	}
	/* Prepare the destination first: nothing here changes until it is. */
	struct sv_error err = { 0 };
	json_t *argv = mig_profile_argv(g, &err);
	if (!argv) {
		mig_answer_err(g, "InvalidState", err.msg);
		mig_free(g);
		return;
	}
	m->to = strdup(to);
	json_t *a = mig_handover(g, argv);
	if (uri)
		json_object_set_new(a, "uri", json_string(uri));
	static const char *const pass[] = { "capabilities", "downtime", "bandwidth",
	                                    "multifd-channels" };
	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
		if (json_object_get(args, pass[i]))
			json_object_set(a, pass[i], json_object_get(args, pass[i]));
	m->handover = a;
	/* The disks first (mig_copy.c), in case they must travel too. */
	mc_out_prepare(g);
}

/* Hand the destination what it needs (m->handover). */
void mig_ask_destination(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	json_t *a = m->handover;
	m->handover = NULL;
	sv_log(SV_LOG_INFO, g->name, "asking %s to get ready for it", m->to);
	/* Over ssh, without --tunnel: the destination listens on TCP, on the
	 * address the ssh connection reached it at (peer_over_tcp). */
	bool tcp = sv_ssh_uri_is(m->to) && !m->tunnel && !mig_str(m->args, "uri");
	int rc = sv_peer_call_prep(g->env->loop, m->to, "incoming", a, PEER_TIMEOUT_MS,
	                           tcp ? peer_over_tcp : NULL, on_peer_incoming, g, &m->peer);
	json_decref(a);
	if (rc < 0) {
		free(m->to);
		m->to = NULL;
		mig_answer_err(g, "GenericError", "out of memory");
		mig_free(g);
	}
}

void sv_migrate_postcopy(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	(void)args;
	struct sv_mig *m = g->mig;
	if (!m || m->role != ROLE_OUT || !m->started || m->ending) {
		sv_reply_err(req, "InvalidState", "%s: no outgoing migration in progress",
		             g->name);
		return;
	}
	if (m->postcopy) {
		sv_reply_err(req, "InvalidState", "%s: already in postcopy", g->name);
		return;
	}
	m->postcopy = true;
	sv_log(SV_LOG_INFO, g->name, "switching the migration to postcopy (operator)");
	struct sv_error err = { 0 };
	int rc = sv_guest_qmp(g, "migrate-start-postcopy", NULL, req, &err);
	if (rc < 0)
		sv_reply_err(req, "GenericError", "%s", err.msg);
}

void sv_migrate_cancel(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	(void)args;
	struct sv_mig *m = g->mig;
	if (m && m->role == ROLE_OUT && m->copy && m->mirroring && !m->started && !m->ending) {
		char why[800];
		sv_log(SV_LOG_INFO, g->name, "migration cancelled by operator (copying the disks)");
		sv_reply_ok(req, json_pack("{s:s}", "status", "cancelling"));
		snprintf(why, sizeof(why), "migration to %s: cancelled (while copying the disks)",
		         m->to);
		sv_guest_transition(g, m->was_paused ? SV_PAUSED : SV_RUNNING, why);
		mig_out_abort(g, "MigrationFailed", why);
		return;
	}
	if (!m || (m->role != ROLE_OUT && m->role != ROLE_SAVE) || !m->started || m->ending) {
		sv_reply_err(req, "InvalidState", "%s: no outgoing migration in progress",
		             g->name);
		return;
	}
	m->status = "cancel";
	sv_log(SV_LOG_INFO, g->name, "migration cancelled by operator");
	if (g->qmp)
		qmp_client_execute(g->qmp, "migrate_cancel", NULL, 0, NULL, NULL);
	sv_reply_ok(req, json_pack("{s:s}", "status", "cancelling"));
}
