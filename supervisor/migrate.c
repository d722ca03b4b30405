/* Live migration, save and restore: see migrate.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "argv.h"
#include "control.h"
#include "daemon.h"
#include "guest_int.h"
#include "hotplug.h"
#include "log.h"
#include "migrate.h"
#include "peer.h"
#include "qmp.h"
#include "savefile.h"

#define PROGRESS_MS 500u
#define PEER_TIMEOUT_MS 60000u
/* qsup's default bandwidth cap: none to speak of (QEMU's own default,
 * 128 MiB/s, is far below what a local or LAN link carries). */
#define DEFAULT_BANDWIDTH (1ull << 40)

enum role { ROLE_OUT, ROLE_IN, ROLE_SAVE, ROLE_RESTORE };
static const char *const role_names[] = { "source", "destination", "save", "restore" };

struct sv_mig {
	enum role role;
	struct sv_request *req;         /* answered at the end (or, incoming: listening) */
	bool wait;                      /* migrate: answer at the end */
	json_t *args;                   /* the verb's arguments */
	char uri[640];
	char qemu_uri[640];             /* incoming: what QEMU listens on, when it
	                                   differs from uri (its dir's fd path) */
	char *to;                       /* migrate --to: the destination's control socket */
	struct sv_peer *peer;
	char *file;                     /* save, restore */
	char *tmp;                      /* save: the new file, until renamed */
	int fd;                         /* save: the new file; restore: until
	                                   QEMU has it */
	bool was_paused;                /* source; destination: the source's */
	bool started;                   /* QEMU is migrating (source) */
	bool ending, completed;
	bool post;                      /* re-adopted in postmigrate: the source's end */
	bool postcopy;                  /* switched to postcopy */
	int final_tries;                /* query-migrate until the figures are in */
	json_int_t postcopy_after;      /* switch after this many passes (0: never) */
	const char *status;             /* QEMU's last migration status */
	uv_timer_t *timer;              /* progress and timeout */
	uint64_t started_ms, timeout_ms;
	json_t *last;                   /* the last query-migrate */
	json_t *fig;                    /* completed: the reply, once QEMU is gone */
};

static const struct sv_profile *prof(struct sv_guest *g)
{
	return g->run_profile ? g->run_profile : g->profile;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- the context ---- */

static void on_timer_closed(uv_handle_t *h)
{
	struct sv_guest *g = h->data;
	free(h);
	sv_guest_handle_gone(g);
}

static void mig_free(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!m)
		return;
	g->mig = NULL;
	if (m->timer) {
		m->timer->data = g;
		uv_close((uv_handle_t *)m->timer, on_timer_closed);
	}
	if (m->peer)
		sv_peer_cancel(m->peer);
	if (m->tmp)   /* a save that did not complete */
		sv_savefile_discard(g->d->loop, m->fd, m->tmp);
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
	free(m->tmp);
	free(m);
}

static struct sv_mig *mig_new(struct sv_guest *g, enum role role, struct sv_request *req,
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
	m->started_ms = uv_now(g->d->loop);
	g->mig = m;
	return m;
}

/* Answer the waiting request (if any) with ok / the error. */
static void answer_ok(struct sv_guest *g, json_t *ret)
{
	struct sv_mig *m = g->mig;
	if (m && m->req)
		sv_reply_ok(m->req, ret);
	else
		json_decref(ret);
	if (m)
		m->req = NULL;
}

static void answer_err(struct sv_guest *g, const char *cls, const char *msg)
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
static json_t *profile_argv(struct sv_guest *g, struct sv_error *err)
{
	struct sv_argv a = { 0 };
	if (!prof(g)) {
		sv_error_set(err, -ENOENT, "%s: its profile was removed", g->name);
		return NULL;
	}
	if (sv_guest_argv(g, prof(g), "/run/qsup", false, &a, err) < 0)
		return NULL;
	json_t *list = sv_argv_json(&a);
	sv_argv_free(&a);
	return list;
}

/* Compare the source's command line with ours; NULL, or why not. */
static char *argv_mismatch(struct sv_guest *g, json_t *theirs)
{
	struct sv_error err = { 0 };
	json_t *ours = profile_argv(g, &err);
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
static json_t *caps_json(struct sv_guest *g, json_t *args, bool file)
{
	const struct sv_profile *p = prof(g);
	json_t *list = json_pack("[{s:s, s:b}]", "capability", "events", "state", 1);
	if (!file)
		json_array_append_new(list, json_pack("{s:s, s:b}", "capability", "return-path",
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
static json_t *params_json(struct sv_guest *g, json_t *args)
{
	const struct sv_profile *p = prof(g);
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
	if ((v = json_object_get(args, "postcopy-after")) &&
	    (!json_is_integer(v) || json_integer_value(v) < 1))
		return "postcopy-after must be a number of passes (with the postcopy-ram capability)";
	return NULL;
}

/* ---- QMP steps ---- */

typedef void (*mstep_fn)(struct sv_guest *g, const struct qmp_result *r);

struct mstep { struct sv_guest *g; mstep_fn fn; };

static void on_mstep(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct mstep *s = arg;
	(void)c;
	struct sv_guest *g = s->g;
	mstep_fn fn = s->fn;
	free(s);
	if (g->mig)
		fn(g, r);
}

/* Run cmd (args taken; fd passed along when >= 0). */
static void mstep_fd(struct sv_guest *g, const char *cmd, json_t *args, int fd, mstep_fn fn)
{
	struct mstep *s = malloc(sizeof(*s));
	int rc = !s || !g->qmp ? UV_ENOTCONN
	       : fd >= 0 ? qmp_client_execute_fd(g->qmp, cmd, args, fd, 0, on_mstep, s)
	       : qmp_client_execute(g->qmp, cmd, args, 0, on_mstep, s);
	json_decref(args);
	if (rc < 0) {
		free(s);
		struct qmp_result r = { .status = rc };
		fn(g, &r);
		return;
	}
	s->g = g;
	s->fn = fn;
}

static void mstep(struct sv_guest *g, const char *cmd, json_t *args, mstep_fn fn)
{
	mstep_fd(g, cmd, args, -1, fn);
}

/* The error of a failed step, as a message. */
static void step_error(const struct qmp_result *r, const char *what, char *buf, size_t size)
{
	snprintf(buf, size, "%s: %s", what, r->status == QMP_EREPLY ? r->err_desc
	         : qmp_strerror(r->status));
}

/* ---- the source: migrate, save ---- */

static void out_end(struct sv_guest *g, json_t *info);

/* The figures of a query-migrate, for events and replies. */
static json_t *figures(struct sv_guest *g, json_t *info)
{
	json_t *ram = json_object_get(info, "ram");
	json_t *o = json_pack("{s:s, s:s, s:I}", "status", sv_or(str(info, "status"), "?"), "uri",
	                      g->mig->uri, "elapsed-ms",
	                      (json_int_t)(uv_now(g->d->loop) - g->mig->started_ms));
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
	return o;
}

static void poll_now(struct sv_guest *g);

static void on_postcopy(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	(void)c;
	if (r->status != 0)
		sv_log(SV_LOG_WARN, g->name, "migrate-start-postcopy: %s", r->status == QMP_EREPLY
		       ? r->err_desc : qmp_strerror(r->status));
}

/* Switch to postcopy: the destination runs the guest from now on, and
 * pulls the pages still missing. */
static int start_postcopy(struct sv_guest *g)
{
	g->mig->postcopy = true;
	sv_log(SV_LOG_INFO, g->name, "switching the migration to postcopy");
	return g->qmp ? qmp_client_execute(g->qmp, "migrate-start-postcopy", NULL, 0,
	                                   on_postcopy, g) : UV_ENOTCONN;
}

static void on_progress(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	(void)c;
	struct sv_mig *m = g->mig;
	if (!m || r->status != 0 || m->ending)
		return;
	const char *st = str(r->ret, "status");
	if (!st)
		return;
	if (!strcmp(st, "completed") && !json_integer_value(json_object_get(r->ret, "total-time")) &&
	    m->final_tries++ < 50) {
		/* Right after the event QEMU may not have filled the figures in. */
		poll_now(g);
		return;
	}
	json_decref(m->last);
	m->last = json_incref(r->ret);
	sv_control_emit(g->d, json_pack("{s:s, s:s, s:o}", "event", "MIGRATION_PROGRESS",
	                "guest", g->name, "data", figures(g, r->ret)));
	json_int_t passes = json_integer_value(json_object_get(json_object_get(r->ret, "ram"),
	                                                       "dirty-sync-count"));
	if (m->postcopy_after && !m->postcopy && !strcmp(st, "active") &&
	    passes >= m->postcopy_after)
		start_postcopy(g);
	if (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))
		out_end(g, r->ret);
}

static void poll_now(struct sv_guest *g)
{
	if (g->qmp)
		qmp_client_execute(g->qmp, "query-migrate", NULL, 0, on_progress, g);
}

static void on_tick(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	struct sv_mig *m = g->mig;
	if (!m)
		return;
	if (m->timeout_ms && m->started && !m->ending &&
	    uv_now(g->d->loop) - m->started_ms > m->timeout_ms) {
		sv_log(SV_LOG_WARN, g->name, "migration timed out after %llu ms; cancelling",
		       (unsigned long long)m->timeout_ms);
		m->timeout_ms = 0;
		m->status = "timeout";
		if (g->qmp)
			qmp_client_execute(g->qmp, "migrate_cancel", NULL, 0, NULL, NULL);
	}
	if (m->role == ROLE_OUT || m->role == ROLE_SAVE)
		poll_now(g);
}

static void timer_start(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (m->timer || !(m->timer = malloc(sizeof(*m->timer))))
		return;
	uv_timer_init(g->d->loop, m->timer);
	m->timer->data = g;
	g->handles++;
	uv_timer_start(m->timer, on_tick, PROGRESS_MS, PROGRESS_MS);
}

/* The destination of migrate --to is of no use any more: kill its QEMU. */
static void on_peer_killed(json_t *reply, const char *why, void *arg)
{
	(void)reply;
	(void)why;
	(void)arg;
}

static void kill_destination(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!m || !m->to)
		return;
	json_t *a = json_pack("{s:s}", "name", g->name);
	sv_log(SV_LOG_INFO, g->name, "killing the destination's QEMU (through %s)", m->to);
	sv_peer_call(g->d->loop, m->to, "kill", a, PEER_TIMEOUT_MS, on_peer_killed, NULL, NULL);
	json_decref(a);
}

/* The source's migration (or save) did not happen: say why, drop the
 * destination's QEMU (migrate --to) or the half-written file (save). */
static void out_abort(struct sv_guest *g, const char *cls, const char *why)
{
	struct sv_mig *m = g->mig;
	m->ending = true;
	answer_err(g, cls, why);
	kill_destination(g);
	mig_free(g);   /* a save's new file goes: half a stream is no use */
}

/* The migration is over (info: the last query-migrate). */
static void out_end(struct sv_guest *g, json_t *info)
{
	struct sv_mig *m = g->mig;
	const char *st = sv_or(str(info, "status"), "failed");
	if (m->ending)
		return;
	m->ending = true;
	json_t *fig = figures(g, info);
	if (!strcmp(st, "completed")) {
		m->completed = true;
		sv_log(SV_LOG_INFO, g->name, "%s to %s completed in %lld ms (downtime %lld ms)",
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
	         : sv_or(str(info, "error-desc"), "failed"));
	json_decref(fig);
	sv_guest_transition(g, m->was_paused ? SV_PAUSED : SV_RUNNING, why);
	out_abort(g, "MigrationFailed", why);
}

static void out_migrating(struct sv_guest *g, const struct qmp_result *r)
{
	struct sv_mig *m = g->mig;
	char why[700];
	if (r->status != 0) {
		step_error(r, "migrate", why, sizeof(why));
		out_abort(g, "MigrationFailed", why);
		return;
	}
	m->started = true;
	snprintf(why, sizeof(why), "%s %s", m->role == ROLE_SAVE ? "saving to" : "migrating to",
	         m->role == ROLE_SAVE ? m->file : m->uri);
	sv_guest_transition(g, SV_MIGRATING, why);
	if (!m->wait && m->role == ROLE_OUT)
		answer_ok(g, json_pack("{s:s, s:s}", "status", "active", "uri", m->uri));
	timer_start(g);
	poll_now(g);
}

/* A unix socket is connected by qsupd and handed to QEMU (fd:), so that
 * QEMU's identity needs no access to the destination's path; multifd opens
 * channels of its own, so QEMU connects itself then. */
struct mconn {
	uv_pipe_t pipe;
	uv_connect_t req;
	struct sv_guest *g;
};

static void on_mconn_closed(uv_handle_t *h)
{
	struct mconn *mc = h->data;
	struct sv_guest *g = mc->g;
	free(mc);
	sv_guest_handle_gone(g);
}

static void out_fd_passed(struct sv_guest *g, const struct qmp_result *r)
{
	char why[700];
	if (r->status != 0) {
		step_error(r, "getfd", why, sizeof(why));
		out_abort(g, "MigrationFailed", why);
		return;
	}
	mstep(g, "migrate", json_pack("{s:s}", "uri", "fd:qsup-migrate"), out_migrating);
}

static void out_connected(uv_connect_t *c, int status)
{
	struct mconn *mc = c->data;
	struct sv_guest *g = mc->g;
	struct sv_mig *m = g->mig;
	uv_os_fd_t fd;
	char why[800];
	if (!g->freeing && m && !m->ending) {
		if (status < 0) {
			snprintf(why, sizeof(why), "migrate: %s: %s", m->uri + 5, uv_strerror(status));
			out_abort(g, "MigrationFailed", why);
		} else if (uv_fileno((uv_handle_t *)&mc->pipe, &fd) == 0) {
			mstep_fd(g, "getfd", json_pack("{s:s}", "fdname", "qsup-migrate"), fd,
			         out_fd_passed);
		}
	}
	uv_close((uv_handle_t *)&mc->pipe, on_mconn_closed);   /* QEMU has its copy */
}

static bool multifd_on(struct sv_guest *g)
{
	json_t *caps = caps_json(g, g->mig->args, false), *e;
	size_t i;
	bool on = false;
	json_array_foreach(json_object_get(caps, "capabilities"), i, e)
		on |= !strcmp(sv_or(str(e, "capability"), ""), "multifd");
	json_decref(caps);
	return on;
}

static void out_params_set(struct sv_guest *g, const struct qmp_result *r)
{
	struct sv_mig *m = g->mig;
	char why[700];
	if (r->status != 0) {
		step_error(r, "migrate-set-parameters", why, sizeof(why));
		out_abort(g, "InvalidArgument", why);
		return;
	}
	if (strncmp(m->uri, "unix:", 5) || m->role != ROLE_OUT || multifd_on(g)) {
		mstep(g, "migrate", json_pack("{s:s}", "uri", m->uri), out_migrating);
		return;
	}
	struct mconn *mc = calloc(1, sizeof(*mc));
	if (!mc) {
		out_abort(g, "GenericError", "out of memory");
		return;
	}
	mc->g = g;
	mc->req.data = mc;
	uv_pipe_init(g->d->loop, &mc->pipe, 0);
	mc->pipe.data = mc;
	g->handles++;
	uv_pipe_connect(&mc->req, &mc->pipe, m->uri + 5, out_connected);
}

static void out_caps_set(struct sv_guest *g, const struct qmp_result *r)
{
	char why[700];
	if (r->status != 0) {
		step_error(r, "migrate-set-capabilities", why, sizeof(why));
		out_abort(g, "InvalidArgument", why);
		return;
	}
	mstep(g, "migrate-set-parameters", params_json(g, g->mig->args), out_params_set);
}

static void out_begin(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	m->was_paused = g->state == SV_PAUSED;
	m->started_ms = uv_now(g->d->loop);
	mstep(g, "migrate-set-capabilities", caps_json(g, m->args, m->role == ROLE_SAVE),
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
		snprintf(msg, sizeof(msg), "destination %s: %s", m->to, reply ? sv_or(str(err, "desc"), "?")
		         : why);
		free(m->to);
		m->to = NULL;   /* nothing there to kill */
		answer_err(g, reply ? sv_or(str(err, "class"), "GenericError") : "GenericError", msg);
		mig_free(g);
		return;
	}
	if (g->state != SV_RUNNING && g->state != SV_PAUSED) {
		snprintf(msg, sizeof(msg), "%s became %s while the destination got ready", g->name,
		         sv_state_name(g->state));
		answer_err(g, "InvalidState", msg);
		kill_destination(g);
		mig_free(g);
		return;
	}
	snprintf(m->uri, sizeof(m->uri), "%s",
	         sv_or(str(json_object_get(reply, "return"), "uri"), ""));
	out_begin(g);
}

/* The arguments the destination needs: what `incoming` takes. */
static json_t *handover(struct sv_guest *g, json_t *argv)
{
	return json_pack("{s:s, s:o, s:o, s:b}", "name", g->name, "argv", argv,
	                 "devices", sv_hotplug_export(g), "paused", g->state == SV_PAUSED);
}

static bool source_ready(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *bad = sv_migrate_args_bad(args);
	if (bad) {
		sv_reply_err(req, "InvalidArgument", "%s", bad);
		return false;
	}
	if (g->mig) {
		sv_reply_err(req, "InvalidState", "%s: a migration (%s) is in progress", g->name,
		             role_names[g->mig->role]);
		return false;
	}
	if (g->state != SV_RUNNING && g->state != SV_PAUSED) {
		sv_reply_err(req, "InvalidState", "%s is %s; it must be running or paused", g->name,
		             sv_state_name(g->state));
		return false;
	}
	return true;
}

void sv_migrate_out(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *uri = str(args, "uri"), *to = str(args, "to");
	json_t *tj = json_object_get(args, "to");
	if (!source_ready(g, req, args))
		return;
	if (tj && (!to || to[0] != '/')) {
		sv_reply_err(req, "InvalidArgument", "%s", "to must be the absolute path of "
		             "the destination qsupd's control socket");
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
	snprintf(m->uri, sizeof(m->uri), "%s", uri ? uri : "");
	if (!to) {
		out_begin(g);
		return;
	}
	/* Prepare the destination first: nothing here changes until it is. */
	struct sv_error err = { 0 };
	json_t *argv = profile_argv(g, &err);
	if (!argv) {
		answer_err(g, "InvalidState", err.msg);
		mig_free(g);
		return;
	}
	m->to = strdup(to);
	json_t *a = handover(g, argv);
	if (uri)
		json_object_set_new(a, "uri", json_string(uri));
	static const char *const pass[] = { "capabilities", "downtime", "bandwidth",
	                                    "multifd-channels" };
	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
		if (json_object_get(args, pass[i]))
			json_object_set(a, pass[i], json_object_get(args, pass[i]));
	sv_log(SV_LOG_INFO, g->name, "asking %s to get ready for it", to);
	int rc = sv_peer_call(g->d->loop, to, "incoming", a, PEER_TIMEOUT_MS, on_peer_incoming, g,
	                      &m->peer);
	json_decref(a);
	if (rc < 0) {
		free(m->to);
		m->to = NULL;
		answer_err(g, "GenericError", "out of memory");
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

/* save: the header line, then QEMU's stream through getfd; the new file
 * takes the target's name once the stream is complete (savefile.h). */
static void save_fd_passed(struct sv_guest *g, const struct qmp_result *r)
{
	char why[700];
	if (r->status != 0) {
		step_error(r, "getfd", why, sizeof(why));
		out_abort(g, "GenericError", why);
		return;
	}
	out_begin(g);
}

static void on_save_opened(void *arg, int fd, const char *tmp, const char *why)
{
	struct sv_guest *g = arg;
	struct sv_mig *m = g->mig;
	bool gone = g->freeing || !m || m->role != ROLE_SAVE || m->tmp;
	sv_guest_handle_gone(g);
	if (gone) {
		if (fd >= 0)
			sv_savefile_discard(g->d->loop, fd, tmp);
		return;
	}
	if (fd < 0) {
		answer_err(g, "GenericError", why);
		mig_free(g);
		return;
	}
	m->fd = fd;
	m->tmp = strdup(tmp);
	if (g->state != SV_RUNNING && g->state != SV_PAUSED) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s became %s meanwhile", g->name,
		         sv_state_name(g->state));
		out_abort(g, "InvalidState", msg);
		return;
	}
	mstep_fd(g, "getfd", json_pack("{s:s}", "fdname", "qsup-save"), fd, save_fd_passed);
}

void sv_migrate_save(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *file = str(args, "file");
	struct sv_error err = { 0 };
	if (!source_ready(g, req, args))
		return;
	if (!file || file[0] != '/' || !sv_text_clean(file) || strlen(file) >= 4000) {
		sv_reply_err(req, "InvalidArgument", "%s", "save needs file: an absolute path");
		return;
	}
	json_t *argv = profile_argv(g, &err);
	if (!argv) {
		sv_reply_err(req, "GenericError", "%s", err.msg);
		return;
	}
	json_t *h = handover(g, argv);
	char *header = sv_savefile_header(g->d->host_key, h);
	json_decref(h);
	struct sv_mig *m = header ? mig_new(g, ROLE_SAVE, req, args) : NULL;
	if (!m) {
		if (!header)
			sv_reply_err(req, "GenericError", "%s", "out of memory");
		free(header);
		return;
	}
	m->file = strdup(file);
	m->wait = true;
	snprintf(m->uri, sizeof(m->uri), "fd:qsup-save");
	g->handles++;
	if (sv_savefile_create(g->d->loop, file, header, on_save_opened, g) < 0) {
		g->handles--;
		answer_err(g, "GenericError", "out of memory");
		mig_free(g);
	}
}

/* ---- the destination: incoming, restore ---- */

/* The destination's setup failed: say why, and end its QEMU (the guest
 * ends stopped, never restarted). */
static void in_abort(struct sv_guest *g, const char *cls, const char *why)
{
	answer_err(g, cls, why);
	g->force_kill = true;
	sv_guest_signal(g, SIGKILL);
}

static void in_listening(struct sv_guest *g, const struct qmp_result *r)
{
	struct sv_mig *m = g->mig;
	char why[700];
	if (r->status != 0) {
		step_error(r, "migrate-incoming", why, sizeof(why));
		in_abort(g, "GenericError", why);
		return;
	}
	sv_guest_start_done(g);   /* waiting for the stream may take long */
	sv_log(SV_LOG_INFO, g->name, "waiting for the migration on %s", m->uri);
	if (m->role == ROLE_IN)
		answer_ok(g, json_pack("{s:s, s:s}", "status", "listening", "uri", m->uri));
	timer_start(g);
}

static void in_params_set(struct sv_guest *g, const struct qmp_result *r)
{
	char why[700];
	if (r->status != 0) {
		step_error(r, "migrate-set-parameters", why, sizeof(why));
		in_abort(g, "InvalidArgument", why);
		return;
	}
	mstep(g, "migrate-incoming", json_pack("{s:s}", "uri", g->mig->qemu_uri[0]
	      ? g->mig->qemu_uri : g->mig->uri), in_listening);
}

static void in_caps_set(struct sv_guest *g, const struct qmp_result *r)
{
	char why[700];
	if (r->status != 0) {
		step_error(r, "migrate-set-capabilities", why, sizeof(why));
		in_abort(g, "InvalidArgument", why);
		return;
	}
	mstep(g, "migrate-set-parameters", params_json(g, g->mig->args), in_params_set);
}

static void in_fd_passed(struct sv_guest *g, const struct qmp_result *r)
{
	struct sv_mig *m = g->mig;
	char why[700];
	close(m->fd);
	m->fd = -1;
	if (r->status != 0) {
		step_error(r, "getfd", why, sizeof(why));
		in_abort(g, "GenericError", why);
		return;
	}
	mstep(g, "migrate-set-capabilities", caps_json(g, m->args, true), in_caps_set);
}

/* The devices are in (or there were none): set up and listen. */
static void in_setup(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!m || g->state != SV_INCOMING)
		return;
	if (m->role == ROLE_RESTORE)
		mstep_fd(g, "getfd", json_pack("{s:s}", "fdname", "qsup-restore"), m->fd,
		         in_fd_passed);
	else
		mstep(g, "migrate-set-capabilities", caps_json(g, m->args, false), in_caps_set);
}

void sv_migrate_qmp_ready(struct sv_guest *g)
{
	if (!sv_hotplug_replay(g, in_setup))
		in_setup(g);
}

static void on_in_cont(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	(void)c;
	struct sv_mig *m = g->mig;
	if (!m || g->state != SV_INCOMING)
		return;
	if (r->status != 0) {
		char why[700];
		step_error(r, "cont", why, sizeof(why));
		answer_err(g, "GenericError", why);
		sv_guest_transition(g, SV_PAUSED, why);
		mig_free(g);
		return;
	}
	char why[700];
	snprintf(why, sizeof(why), "%s %s", m->role == ROLE_RESTORE ? "restored from"
	         : "migrated in from", m->role == ROLE_RESTORE ? m->file : m->uri);
	sv_guest_transition(g, SV_RUNNING, why);
	answer_ok(g, sv_guest_status(g));
	mig_free(g);
}

/* The stream is in: run the guest (or leave it paused, as it was). */
static void in_completed(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (m->ending)
		return;
	m->ending = true;
	if (m->was_paused) {
		sv_guest_transition(g, SV_PAUSED, m->role == ROLE_RESTORE
		                    ? "restored (paused, as it was saved)"
		                    : "migrated in (paused, as on the source)");
		answer_ok(g, sv_guest_status(g));
		mig_free(g);
		return;
	}
	if (!g->qmp || qmp_client_execute(g->qmp, "cont", NULL, 0, on_in_cont, g) < 0) {
		answer_err(g, "GenericError", "cont: no QMP connection");
		mig_free(g);
	}
}

/* Common to incoming and restore: the guest is stopped, its profile here. */
static bool dest_ready(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *bad = sv_migrate_args_bad(args);
	json_t *devs = json_object_get(args, "devices"), *paused = json_object_get(args, "paused");
	if (!bad && devs && !json_is_array(devs))
		bad = "devices must be a list (as in state.json)";
	if (!bad && paused && !json_is_boolean(paused))
		bad = "paused must be true or false";
	if (bad) {
		sv_reply_err(req, "InvalidArgument", "%s", bad);
		return false;
	}
	if (g->mig || sv_guest_active(g) || g->prepping ||
	    (g->state != SV_STOPPED && g->state != SV_FAILED && g->state != SV_MIGRATED)) {
		sv_reply_err(req, "InvalidState", "%s is %s here; it must be stopped, failed or "
		             "migrated", g->name, sv_state_name(g->state));
		return false;
	}
	return true;
}

/* Start QEMU waiting for the stream, with the handed-over devices. */
static void dest_start(struct sv_guest *g, json_t *args)
{
	struct sv_error err = { 0 };
	struct sv_mig *m = g->mig;
	m->was_paused = json_is_true(json_object_get(args, "paused"));
	sv_hotplug_handover(g, json_object_get(args, "devices"));
	g->start_incoming = true;
	int rc = sv_guest_start(g, NULL, &err);
	g->start_incoming = false;
	if (rc < 0) {
		answer_err(g, "InvalidState", err.msg);
		sv_hotplug_reset(g);
		mig_free(g);
	}
}

/* Postcopy needs userfaultfd in the destination's QEMU, which the kernel
 * gives an unprivileged process only with vm.unprivileged_userfaultfd = 1
 * (QEMU 7.2 has no /dev/userfaultfd). Say so rather than QEMU's "Postcopy
 * is not supported". NULL when fine. */
static const char *postcopy_blocked(struct sv_guest *g, json_t *args)
{
	const struct sv_profile *p = prof(g);
	json_t *caps = caps_json(g, args, false), *e;
	size_t i;
	bool post = false;
	json_array_foreach(json_object_get(caps, "capabilities"), i, e)
		post |= !strcmp(sv_or(str(e, "capability"), ""), "postcopy-ram");
	json_decref(caps);
	bool root = p && p->user && (!strcmp(p->user, "root") || !strcmp(p->user, "0"));
	if (!post || !g->d->idc.root || root)
		return NULL;
	char v = '0';
	int fd = open("/proc/sys/vm/unprivileged_userfaultfd", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && read(fd, &v, 1) != 1)
		v = '0';
	if (fd >= 0)
		close(fd);
	return v == '1' ? NULL : "postcopy-ram needs userfaultfd in QEMU, which runs "
	       "unprivileged: set the sysctl vm.unprivileged_userfaultfd = 1 on this host, "
	       "or run the guest as root ([qemu] user = root)";
}

void sv_migrate_in(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *uri = str(args, "uri");
	if (!dest_ready(g, req, args))
		return;
	const char *nopost = postcopy_blocked(g, args);
	if (nopost) {
		sv_reply_err(req, "InvalidState", "%s", nopost);
		return;
	}
	char *why = argv_mismatch(g, json_object_get(args, "argv"));
	if (why && json_object_get(args, "argv")) {
		sv_reply_err(req, "ProfileMismatch", "%s", why);
		free(why);
		return;
	}
	free(why);   /* no command line given: a manual incoming, the operator's word */
	/* By default QEMU listens in its own dir, RUNDIR/NAME/qemu, which it
	 * reaches through the fd it inherits (so no directory above it need
	 * be open to QEMU's identity); the source's qsupd connects for it. */
	char auto_uri[640];
	bool automatic = !uri || !strcmp(uri, "unix");
	if (automatic) {
		int n = snprintf(auto_uri, sizeof(auto_uri), "unix:%s/qemu/migrate.sock", g->rundir);
		if (n < 0 || (size_t)n - 5 >= 108) {
			sv_reply_err(req, "InvalidArgument", "%s", "the run dir is too long for "
			             "a unix socket; give uri");
			return;
		}
		uri = auto_uri;
	} else if (strncmp(uri, "unix:", 5) && strncmp(uri, "tcp:", 4)) {
		sv_reply_err(req, "InvalidArgument", "uri '%.100s': use unix:PATH or "
		             "tcp:HOST:PORT", uri);
		return;
	}
	struct sv_mig *m = mig_new(g, ROLE_IN, req, args);
	if (!m)
		return;
	snprintf(m->uri, sizeof(m->uri), "%s", uri);
	if (automatic)
		snprintf(m->qemu_uri, sizeof(m->qemu_uri), "unix:/proc/self/fd/%d/migrate.sock",
		         SV_FD_QEMUDIR);
	dest_start(g, args);
}

/* The file is open and its header read (off the loop): check it, then
 * start QEMU waiting for the stream. */
static void on_restore_opened(void *arg, int fd, const char *buf, size_t len, const char *err)
{
	struct sv_guest *g = arg;
	struct sv_mig *m = g->mig;
	char why[600];
	size_t hlen = 0;
	bool gone = g->freeing || !m || m->role != ROLE_RESTORE || m->fd >= 0;
	sv_guest_handle_gone(g);
	if (gone) {
		if (fd >= 0)
			close(fd);
		return;
	}
	json_t *h = fd >= 0 ? sv_savefile_parse(g->d->host_key, buf, len, &hlen, why, sizeof(why))
	          : NULL;
	if (fd < 0 || !h || lseek(fd, (off_t)hlen, SEEK_SET) != (off_t)hlen) {
		if (fd >= 0 && h)
			snprintf(why, sizeof(why), "%s", strerror(errno));
		json_decref(h);
		if (fd >= 0)
			close(fd);
		char msg[1200];
		snprintf(msg, sizeof(msg), fd < 0 ? "%s" : "%s: %s", fd < 0 ? err : m->file, why);
		answer_err(g, fd < 0 ? "NotFound" : "InvalidArgument", msg);
		mig_free(g);
		return;
	}
	const char *name = str(h, "name");
	char *bad = name && strcmp(name, g->name) == 0 ? argv_mismatch(g, json_object_get(h, "argv"))
	          : NULL;
	if (!name || strcmp(name, g->name) || bad) {
		char msg[1200];
		if (!bad)
			snprintf(msg, sizeof(msg), "%s holds guest %.64s, not %s", m->file,
			         name ? name : "?", g->name);
		answer_err(g, bad ? "ProfileMismatch" : "InvalidArgument", bad ? bad : msg);
		free(bad);
		json_decref(h);
		close(fd);
		mig_free(g);
		return;
	}
	m->fd = fd;
	dest_start(g, h);
	json_decref(h);
}

void sv_migrate_restore(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *file = str(args, "file");
	if (!file || file[0] != '/' || strlen(file) >= 4000) {
		sv_reply_err(req, "InvalidArgument", "%s", "restore needs file: an absolute "
		             "path");
		return;
	}
	json_t *pass = json_pack("{s:O*}", "capabilities", json_object_get(args, "capabilities"));
	bool ok = dest_ready(g, req, pass);
	json_decref(pass);
	if (!ok)
		return;
	struct sv_mig *m = mig_new(g, ROLE_RESTORE, req, args);
	if (!m)
		return;
	m->file = strdup(file);
	snprintf(m->uri, sizeof(m->uri), "fd:qsup-restore");
	g->handles++;
	if (sv_savefile_open(g->d->loop, file, on_restore_opened, g) < 0) {
		g->handles--;
		answer_err(g, "GenericError", "out of memory");
		mig_free(g);
	}
}

/* ---- events, re-adoption, the end ---- */

void sv_migrate_event(struct sv_guest *g, json_t *data)
{
	struct sv_mig *m = g->mig;
	const char *st = str(data, "status");
	if (!m || !st)
		return;
	m->status = m->status && (!strcmp(m->status, "timeout") || !strcmp(m->status, "cancel"))
	          ? m->status : NULL;
	if (m->role == ROLE_IN || m->role == ROLE_RESTORE) {
		if (!strcmp(st, "completed") && g->state == SV_INCOMING)
			in_completed(g);
		return;   /* a failed stream ends the destination's QEMU */
	}
	if (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))
		poll_now(g);   /* the final figures */
}

static void on_adopt_query(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	(void)c;
	const char *st = r->status == 0 ? str(r->ret, "status") : NULL;
	if (!st || !g->mig)
		return;
	if (!strcmp(st, "completed") && g->mig->post) {
		on_progress(c, r, g);   /* quits QEMU: the guest runs on the destination */
	} else if (!strcmp(st, "completed") || !strcmp(st, "failed") ||
	           !strcmp(st, "cancelled") || !strcmp(st, "none")) {
		/* Nothing in flight (a guest that came in by migration also says
		 * completed: that was the incoming one). */
		mig_free(g);
	} else {
		sv_guest_transition(g, SV_MIGRATING, "migrating (picked up after a qsupd restart)");
		timer_start(g);
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
		sv_guest_transition(g, SV_INCOMING, "incoming migration (picked up after a qsupd "
		                    "restart)");
		return true;
	}
	/* Running, or done migrating out: ask QEMU whether a migration runs. */
	if (!mig_new(g, ROLE_OUT, NULL, NULL))
		return false;
	g->mig->started = true;
	snprintf(g->mig->uri, sizeof(g->mig->uri), "(as before the qsupd restart)");
	g->mig->post = !strcmp(st, "postmigrate") || !strcmp(st, "finish-migrate");
	g->mig->was_paused = strcmp(st, "running") != 0 && !g->mig->post;
	if (g->mig->post)
		sv_guest_transition(g, SV_MIGRATING, "finishing a migration (picked up after a "
		                    "qsupd restart)");
	if (g->qmp)
		qmp_client_execute(g->qmp, "query-migrate", NULL, 0, on_adopt_query, g);
	return g->mig->post;
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
	const char *st = str(json_object_get(reply, "return"), "state");
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
	if (sv_savefile_commit(g->d->loop, m->fd, m->tmp, m->file, on_save_committed, sc) < 0) {
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
	if (m->role == ROLE_OUT && m->started && !m->completed)
		kill_destination(g);
	struct dest_wait *w = m->completed && m->req && m->to ? calloc(1, sizeof(*w)) : NULL;
	if (w) {
		w->req = m->req;
		w->fig = m->fig;
		w->to = m->to;
		w->name = strdup(g->name);
		m->req = NULL;
		m->fig = NULL;
		m->to = NULL;
		uv_timer_init(g->d->loop, &w->timer);
		w->timer.data = w;
		dw_poll(&w->timer);
	} else if (m->completed) {
		answer_ok(g, json_incref(m->fig));
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
	json_t *o = json_pack("{s:s, s:s}", "role", role_names[m->role], "uri", m->uri);
	if (m->last)
		json_object_set_new(o, "progress", figures(g, m->last));
	return o;
}
