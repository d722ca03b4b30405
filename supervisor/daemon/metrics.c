/*
 * Metrics (metrics.h): the stats rounds, the snapshot they leave, qsupd's
 * own counters, and their two spellings (the stats verb's JSON here, the
 * Prometheus text of the metrics verb and of --metrics-listen in
 * metrics_prom.c; the /proc and /sys reads in metrics_proc.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "log.h"
#include "metrics.h"
#include "metrics_int.h"
#include "probe.h"
#include "qmp.h"
#include "request.h"
#include "tune.h"

/* Rounds go on for this many intervals after the last stats or metrics
 * request (top asks every few seconds); with --metrics-listen, always. */
#define WANTED_INTERVALS 6

/* A round reads and asks this many guests per turn of the loop. */
#define ROUND_TURN 8

static const double req_bounds[] = { 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10,
                                     30, 60, 300 };
static const double rtt_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25, 0.5, 1, 2.5 };
static const double lag_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5, 1, 2.5 };
#define NB(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the slots ---- */

struct gslot *metrics_slot_find(struct sv_metrics *m, const char *name)
{
	for (size_t i = 0; i < m->nslots; i++)
		if (!strcmp(m->slots[i]->name, name))
			return m->slots[i];
	return NULL;
}

static struct gslot *slot_get(struct sv_metrics *m, const char *name)
{
	struct gslot *s = metrics_slot_find(m, name);
	if (s)
		return s;
	if (m->nslots == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct gslot **v = realloc(m->slots, cap * sizeof(*v));
		if (!v)
			return NULL;
		m->slots = v;
		m->cap = cap;
	}
	if (!(s = calloc(1, sizeof(*s))) || !(s->name = strdup(name))) {
		free(s);
		return NULL;
	}
	s->gen = ++m->next_gen;
	s->disks = json_array();
	s->nics = json_array();
	s->taps = json_object();
	m->slots[m->nslots++] = s;
	return s;
}

static void slot_free(struct gslot *s)
{
	json_decref(s->disks);
	json_decref(s->nics);
	json_decref(s->balloon);
	json_decref(s->taps);
	free(s->name);
	free(s);
}

/* ---- the QMP round ---- */

struct qctx {
	struct sv_daemon *d;
	uint64_t gen;
	char name[];
};

static void round_done(struct sv_daemon *d);

/* The profile's disk id of a query-blockstats entry: its node "drive.ID"
 * (argv.c), else its device's qdev path "/machine/peripheral/ID[/...]",
 * else the drive's name. NULL: none. */
static const char *disk_id(json_t *e, char *buf, size_t size)
{
	const char *node = json_string_value(json_object_get(e, "node-name"));
	const char *qdev = json_string_value(json_object_get(e, "qdev"));
	const char *dev = json_string_value(json_object_get(e, "device"));
	if (node && !strncmp(node, "drive.", 6) && !strchr(node + 6, '.')) {
		snprintf(buf, size, "%s", node + 6);
		return buf;
	}
	if (qdev && !strncmp(qdev, "/machine/peripheral/", 20)) {
		snprintf(buf, size, "%.*s", (int)strcspn(qdev + 20, "/"), qdev + 20);
		return buf;
	}
	if (dev && *dev)
		return dev;
	if (node && *node)
		return node;
	return qdev && *qdev ? qdev : NULL;
}

static double jnum(json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static json_t *disks_from(json_t *ret)
{
	json_t *out = json_array(), *e;
	size_t i;
	json_array_foreach(ret, i, e) {
		char buf[128];
		const char *id = disk_id(e, buf, sizeof(buf));
		json_t *st = json_object_get(e, "stats");
		if (!id || !json_is_object(st))
			continue;
		json_array_append_new(out, json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
		        "id", id, "rd_bytes", jnum(st, "rd_bytes"), "wr_bytes", jnum(st, "wr_bytes"),
		        "rd_operations", jnum(st, "rd_operations"),
		        "wr_operations", jnum(st, "wr_operations"),
		        "flush_operations", jnum(st, "flush_operations"),
		        "rd_total_time", jnum(st, "rd_total_time_ns") / 1e9,
		        "wr_total_time", jnum(st, "wr_total_time_ns") / 1e9));
	}
	return out;
}

static void on_qmp_reply(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct qctx *x = arg;
	struct sv_daemon *d = x->d;
	struct sv_metrics *m = d->metrics;
	(void)c;
	struct gslot *s = m ? metrics_slot_find(m, x->name) : NULL;
	if (s && s->gen != x->gen)
		s = NULL;
	if (s) {
		s->inflight--;
		if (r->status == UV_ETIMEDOUT) {
			s->stale = true;
		} else if (r->status == 0) {
			json_decref(s->disks);
			s->disks = disks_from(r->ret);
		}
	}
	free(x);
	if (m && m->round_out && --m->round_out == 0)
		round_done(d);
}

static int send_query(struct sv_daemon *d, struct gslot *s, struct sv_guest *g,
                      const char *cmd)
{
	size_t n = strlen(g->name) + 1;
	struct qctx *x = malloc(sizeof(*x) + n);
	if (!x)
		return -ENOMEM;
	*x = (struct qctx){ .d = d, .gen = s->gen };
	memcpy(x->name, g->name, n);
	int rc = qmp_client_execute(g->qmp, cmd, NULL, SV_PROBE_DEADLINE_MS, on_qmp_reply, x);
	if (rc < 0) {
		free(x);
		return rc;
	}
	s->inflight++;
	d->metrics->round_out++;
	return 0;
}

static void collect_qmp(struct sv_daemon *d, struct gslot *s, struct sv_guest *g)
{
	if (!sv_guest_qmp_up(g)) {
		s->stale = false;
		json_decref(s->disks);
		s->disks = json_array();
		json_decref(s->balloon);
		s->balloon = NULL;
		return;
	}
	if (g->unresponsive || s->inflight) {   /* never waited for */
		s->stale = true;
		return;
	}
	s->stale = false;
	if (send_query(d, s, g, "query-blockstats") < 0)
		s->stale = true;
	/* The balloon's figures from its own 5 s poll (tune.h): no query. */
	json_decref(s->balloon);
	s->balloon = sv_tune_balloon(g);
}

static void round_names_free(struct sv_metrics *m)
{
	for (size_t i = 0; i < m->round_n; i++)
		free(m->round_names[i]);
	free(m->round_names);
	m->round_names = NULL;
	m->round_n = m->round_next = 0;
}

/* Every query of the round is out: the slots of guests gone are dropped. */
static void round_sent(struct sv_daemon *d)
{
	struct sv_metrics *m = d->metrics;
	size_t k = 0;
	round_names_free(m);
	for (size_t i = 0; i < m->nslots; i++)
		if (m->slots[i]->seen)
			m->slots[k++] = m->slots[i];
		else
			slot_free(m->slots[i]);
	m->nslots = k;
	m->rounds++;
	if (--m->round_out == 0)
		round_done(d);
}

/* One turn of the round: ROUND_TURN guests read and asked, then the loop
 * goes on with whatever else waits (a QMP write wakes that QEMU, which
 * can cost the writer half a millisecond on a busy or paravirtual host:
 * 200 guests in one go held the loop for about 100 ms). A guest gone
 * since the round began is passed over. */
static void round_turn(uv_timer_t *t)
{
	struct sv_daemon *d = t->data;
	struct sv_metrics *m = d->metrics;
	uint64_t t0 = uv_hrtime();
	for (int k = 0; k < ROUND_TURN && m->round_next < m->round_n; k++) {
		struct sv_guest *g = sv_daemon_guest(d, m->round_names[m->round_next++]);
		struct gslot *s = g ? slot_get(m, g->name) : NULL;
		if (!s)
			continue;
		s->seen = true;
		metrics_collect_host(s, g);
		collect_qmp(d, s, g);
	}
	sv_hist_observe(&m->collect, (double)(uv_hrtime() - t0) / 1e9);
	if (m->round_next < m->round_n && m->turn_ready && !m->closing)
		uv_timer_start(&m->turn, round_turn, 0, 0);
	else
		round_sent(d);
}

static void start_round(struct sv_daemon *d)
{
	struct sv_metrics *m = d->metrics;
	m->round_out = 1;   /* until every query is sent */
	for (size_t i = 0; i < m->nslots; i++)
		m->slots[i]->seen = false;
	round_names_free(m);
	m->round_names = calloc(d->nguests + 1, sizeof(*m->round_names));
	for (size_t i = 0; m->round_names && i < d->nguests; i++)
		if ((m->round_names[m->round_n] = strdup(d->guests[i]->name)))
			m->round_n++;
	m->turn.data = d;
	round_turn(&m->turn);
}

/* ---- the stats verb's JSON ---- */

static json_t *guest_stats(struct sv_daemon *d, struct sv_guest *g)
{
	struct gslot *s = metrics_slot_find(d->metrics, g->name);
	const struct sv_profile *p = sv_guest_profile_now(g);
	bool up = sv_state_is_up(g->state);
	double uptime = sv_guest_active(g) && g->started_ms
	              ? (double)(uv_now(d->loop) - g->started_ms) / 1000.0 : 0;
	json_t *o = json_pack("{s:s, s:s, s:b, s:b, s:f, s:i, s:i, s:I}", "name", g->name,
	                      "state", sv_state_name(g->state), "up", up,
	                      "stale", s && s->stale, "uptime", uptime,
	                      "restarts", (int)g->rs.total, "cpus", p ? (int)p->cpus : 0,
	                      "memory", (json_int_t)(p ? p->memory : 0));
	if (!o)
		return NULL;
	json_t *byclass = json_object();
	for (int c = 0; s && c <= SV_EXIT_LAST; c++)
		if (s->restarts[c])
			json_object_set_new(byclass, sv_exit_class_name((enum sv_exit_class)c),
			                    json_integer((json_int_t)s->restarts[c]));
	json_object_set_new(o, "restarts_by_class", byclass);
	if (s && s->have_proc && sv_guest_active(g)) {
		json_object_set_new(o, "time", json_real(s->time));
		json_object_set_new(o, "pid", json_integer(g->pid));
		json_object_set_new(o, "cpu_user", json_real(s->cpu_user));
		json_object_set_new(o, "cpu_system", json_real(s->cpu_system));
		json_object_set_new(o, "rss", json_real(s->rss));
	}
	json_object_set_new(o, "disks", s ? json_incref(s->disks) : json_array());
	json_object_set_new(o, "nics", s && s->have_proc && sv_guest_active(g)
	                    ? json_incref(s->nics) : json_array());
	if (s && s->balloon)
		json_object_set(o, "balloon", s->balloon);
	return o;
}

static bool wanted(json_t *names, const char *name)
{
	json_t *v;
	size_t i;
	if (!names)
		return true;
	json_array_foreach(names, i, v)
		if (!strcmp(json_string_value(v), name))
			return true;
	return false;
}

static void answer_stats(struct sv_daemon *d, struct sv_request *req, json_t *names)
{
	json_t *out = json_array();
	for (size_t i = 0; i < d->nguests; i++)
		if (wanted(names, d->guests[i]->name))
			json_array_append_new(out, guest_stats(d, d->guests[i]));
	sv_reply_ok(req, out);
}

/* ---- rounds, the timer ---- */

static void answer_text(struct sv_daemon *d, struct sv_request *req);

static void round_done(struct sv_daemon *d)
{
	struct sv_metrics *m = d->metrics;
	struct swait *w = m->waiting;
	m->waiting = NULL;
	m->last_round = uv_now(d->loop);
	while (w) {
		struct swait *next = w->next;
		if (w->text)
			answer_text(d, w->req);
		else
			answer_stats(d, w->req, w->names);
		json_decref(w->names);
		free(w);
		w = next;
	}
	if (m->http) {
		size_t len;
		char *text = metrics_render(d, &len);
		if (text)
			sv_http_publish(m->http, text, len);
	}
	if (m->waiting_next && !m->closing) {   /* their round, started after them */
		m->waiting = m->waiting_next;
		m->waiting_next = NULL;
		start_round(d);
	}
}

static void on_tick(uv_timer_t *t)
{
	struct sv_daemon *d = t->data;
	struct sv_metrics *m = d->metrics;
	uint64_t now = uv_hrtime();
	double lag = now > m->due_hr ? (double)(now - m->due_hr) / 1e9 : 0;
	sv_hist_observe(&m->lag, lag);
	if (lag > m->lag_max)
		m->lag_max = lag;
	m->due_hr = now + m->interval_ms * 1000000u;
	uv_timer_start(&m->timer, on_tick, m->interval_ms, 0);
	/* Nobody reads the figures: no round, so that no QEMU is woken for
	 * them (an idle host costs what the health probe costs). */
	if (!m->round_out && (m->http || uv_now(d->loop) < m->wanted_until))
		start_round(d);
}

/* A reader: rounds run for a while; a fresh round starts when the last
 * one is older than an interval (or there was none), and the request
 * waits for it. Returns true when req was queued for that round. */
static bool want(struct sv_daemon *d, struct sv_request *req, json_t *names, bool text)
{
	struct sv_metrics *m = d->metrics;
	uint64_t now = uv_now(d->loop);
	m->wanted_until = now + WANTED_INTERVALS * m->interval_ms;
	if (text && !m->round_out && m->last_round && now - m->last_round < m->interval_ms)
		return false;   /* the figures are fresh enough */
	struct swait *w = calloc(1, sizeof(*w));
	if (!w)
		return false;
	w->req = req;
	w->names = names ? json_incref(names) : NULL;
	w->text = text;
	/* A round already out began before the request: what changed since
	 * (a NIC just attached) is not in it. The next round answers. */
	struct swait **list = m->round_out ? &m->waiting_next : &m->waiting;
	w->next = *list;
	*list = w;
	if (!m->round_out)
		start_round(d);
	return true;
}

/* ---- the verbs ---- */

int sv_metrics_stats_check(json_t *args, struct sv_error *err)
{
	json_t *names = json_object_get(args, "names"), *v;
	size_t i;
	if (!names)
		return 0;
	if (!json_is_array(names))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "stats: \"names\" must be "
		                     "an array of guest names");
	json_array_foreach(names, i, v)
		if (!json_is_string(v) || !sv_name_valid(json_string_value(v)))
			return sv_error_setc(err, -EINVAL, "InvalidArgument", "stats: \"names\" must "
			                     "be an array of guest names");
	return 0;
}

void sv_metrics_stats_cmd(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_metrics *m = d->metrics;
	json_t *names = json_object_get(args, "names"), *v;
	size_t i;
	json_array_foreach(names, i, v)
		if (!sv_daemon_guest(d, json_string_value(v))) {
			sv_reply_err(req, "NotFound", "no profile named %.64s", json_string_value(v));
			return;
		}
	if (!m || m->closing) {
		sv_reply_err(req, "GenericError", "qsupd is exiting");
		return;
	}
	if (!want(d, req, json_array_size(names) ? names : NULL, false))
		sv_reply_err(req, "GenericError", "out of memory");
}

static void answer_text(struct sv_daemon *d, struct sv_request *req)
{
	size_t len;
	char *text = d->metrics ? metrics_render(d, &len) : NULL;
	if (!text) {
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	json_t *s = json_stringn_nocheck(text, len);
	free(text);
	sv_reply_ok(req, json_pack("{s:o}", "text", s));
}

void sv_metrics_metrics_cmd(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	(void)args;
	if (!d->metrics || d->metrics->closing) {
		sv_reply_err(req, "GenericError", "qsupd is exiting");
		return;
	}
	if (!want(d, req, NULL, true))
		answer_text(d, req);
}

/* ---- counting ---- */

void sv_metrics_request_done(struct sv_daemon *d, const struct sv_request *req, json_t *msg)
{
	struct sv_metrics *m = d->metrics;
	if (!m || !msg)
		return;
	json_t *e = json_object_get(msg, "error");
	const char *res = e ? json_string_value(json_object_get(e, "class")) : "ok";
	const char *verb = sv_command_find(req->verb) ? req->verb : "unknown";
	json_t *byres = json_object_get(m->requests, verb);
	if (!byres) {
		byres = json_object();
		json_object_set_new(m->requests, verb, byres);
	}
	json_t *n = json_object_get(byres, res ? res : "error");
	json_object_set_new(byres, res ? res : "error",
	                    json_integer(json_integer_value(n) + 1));
	if (req->t0)
		sv_hist_observe(&m->req_lat, (double)(uv_hrtime() - req->t0) / 1e9);
}

void sv_metrics_qmp_replied(struct sv_daemon *d, uint64_t ns)
{
	if (d->metrics)
		sv_hist_observe(&d->metrics->qmp_rtt, (double)ns / 1e9);
}

void sv_metrics_event(struct sv_daemon *d, json_t *event)
{
	struct sv_metrics *m = d->metrics;
	const char *ev = json_string_value(json_object_get(event, "event"));
	if (!m || !ev || strcmp(ev, "GUEST_STATE"))
		return;
	json_t *data = json_object_get(event, "data");
	const char *state = json_string_value(json_object_get(data, "state"));
	const char *name = json_string_value(json_object_get(data, "name"));
	struct sv_guest *g = name ? sv_daemon_guest(d, name) : NULL;
	if (!g || !state || strcmp(state, "backoff"))
		return;
	struct gslot *s = slot_get(m, name);
	if (s && g->last_exit <= SV_EXIT_LAST)
		s->restarts[g->last_exit]++;
}

/* ---- life ---- */

int sv_metrics_init(struct sv_daemon *d, struct sv_error *err)
{
	struct sv_metrics *m = calloc(1, sizeof(*m));
	if (!m || !(m->requests = json_object())) {
		free(m);
		return sv_error_set(err, -ENOMEM, "out of memory");
	}
	d->metrics = m;
	m->d = d;
	m->interval_ms = (d->opts.stats_interval ? d->opts.stats_interval
	                                          : SV_STATS_INTERVAL_S) * 1000u;
	sv_hist_init(&m->req_lat, req_bounds, NB(req_bounds));
	sv_hist_init(&m->qmp_rtt, rtt_bounds, NB(rtt_bounds));
	sv_hist_init(&m->lag, lag_bounds, NB(lag_bounds));
	sv_hist_init(&m->collect, rtt_bounds, NB(rtt_bounds));
	if (d->opts.metrics_listen) {
		struct sockaddr_storage ss;
		int rc = sv_http_parse_listen(d->opts.metrics_listen, &ss, err);
		if (rc < 0)
			return rc;
		if (!(m->http = sv_http_start(&ss, d->opts.metrics_listen, err)))
			return err->code ? err->code : -EADDRINUSE;
		sv_log(SV_LOG_INFO, NULL, "metrics: http://%s/metrics (port %u)",
		       d->opts.metrics_listen, sv_http_port(m->http));
	}
	uv_timer_init(d->loop, &m->timer);
	m->timer.data = d;
	m->timer_ready = true;
	uv_unref((uv_handle_t *)&m->timer);   /* never keeps the loop alive alone */
	uv_timer_init(d->loop, &m->turn);
	m->turn.data = d;
	m->turn_ready = true;
	uv_unref((uv_handle_t *)&m->turn);
	/* The first round soon, so that a scrape finds figures. */
	m->due_hr = uv_hrtime() + 1000000000u;
	uv_timer_start(&m->timer, on_tick, 1000, 0);
	return 0;
}

void sv_metrics_close(struct sv_daemon *d)
{
	struct sv_metrics *m = d->metrics;
	if (!m || m->closing)
		return;
	m->closing = true;
	if (m->timer_ready) {
		m->timer_ready = false;
		uv_close((uv_handle_t *)&m->timer, NULL);
	}
	if (m->turn_ready) {
		m->turn_ready = false;
		uv_close((uv_handle_t *)&m->turn, NULL);
	}
	sv_http_stop(m->http);
	m->http = NULL;
	for (int k = 0; k < 2; k++) {
		struct swait *w = k ? m->waiting_next : m->waiting;
		if (k)
			m->waiting_next = NULL;
		else
			m->waiting = NULL;
		while (w) {
			struct swait *next = w->next;
			sv_reply_err(w->req, "GenericError", "qsupd is exiting");
			json_decref(w->names);
			free(w);
			w = next;
		}
	}
}

void sv_metrics_free(struct sv_daemon *d)
{
	struct sv_metrics *m = d->metrics;
	if (!m)
		return;
	sv_metrics_close(d);
	for (size_t i = 0; i < m->nslots; i++)
		slot_free(m->slots[i]);
	free(m->slots);
	round_names_free(m);
	json_decref(m->requests);
	free(m);
	d->metrics = NULL;
}
