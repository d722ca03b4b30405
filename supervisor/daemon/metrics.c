/*
 * Metrics (metrics.h): the stats rounds, the snapshot they leave, qsupd's
 * own counters, and their two spellings (the stats verb's JSON, the
 * Prometheus text of the metrics verb and of --metrics-listen).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "commands.h"
#include "daemon.h"
#include "guest.h"
#include "hotplug.h"
#include "log.h"
#include "backup.h"
#include "metrics.h"
#include "migrate.h"
#include "tune.h"
#include "metrics_http.h"
#include "probe.h"
#include "promtext.h"
#include "qmp.h"
#include "request.h"

/* One guest's last figures. */
struct gslot {
	char *name;
	uint64_t gen;                   /* tells a slot from a later one of the same name */
	bool seen;                      /* still a guest at this round */
	unsigned inflight;              /* QMP commands of ours still out */
	bool stale;                     /* QEMU did not answer the last round */
	bool have_proc;
	double time;                    /* monotonic seconds of the /proc read */
	double cpu_user, cpu_system;    /* seconds */
	double rss;                     /* bytes */
	json_t *disks;                  /* array, from query-blockstats */
	json_t *nics;                   /* array, from /sys/class/net */
	json_t *balloon;                /* object, from query-balloon; NULL: none */
	json_t *taps;                   /* {nic id: tap name} found by MAC */
	uint64_t restarts[SV_EXIT_LAST + 1];    /* by the class of the ending */
};

struct swait {
	struct swait *next;
	struct sv_request *req;
	json_t *names;                  /* NULL: every guest */
	bool text;                      /* the metrics verb: the Prometheus text */
};

struct sv_metrics {
	struct sv_daemon *d;
	uv_timer_t timer;
	bool timer_ready, closing;
	uint64_t interval_ms;
	uint64_t due_hr;                /* uv_hrtime() the tick is due */
	struct gslot **slots;
	size_t nslots, cap;
	uint64_t next_gen;
	unsigned round_out;             /* a round is out: its commands, plus one while sending */
	struct swait *waiting;
	struct sv_http *http;
	json_t *requests;               /* {verb: {result: count}} */
	struct sv_hist req_lat, qmp_rtt, lag, collect;
	double lag_max;
	uint64_t rounds;
	uint64_t wanted_until;          /* uv_now(): rounds run until then (no http) */
	uint64_t last_round;            /* uv_now() the last round ended, or 0 */
};

/* Rounds go on for this many intervals after the last stats or metrics
 * request (top asks every few seconds); with --metrics-listen, always. */
#define WANTED_INTERVALS 6

static const double req_bounds[] = { 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10,
                                     30, 60, 300 };
static const double rtt_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25, 0.5, 1, 2.5 };
static const double lag_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5, 1, 2.5 };
#define NB(a) (sizeof(a) / sizeof((a)[0]))

static double mono_s(void)
{
	return (double)uv_hrtime() / 1e9;
}

/* ---- the slots ---- */

static struct gslot *slot_find(struct sv_metrics *m, const char *name)
{
	for (size_t i = 0; i < m->nslots; i++)
		if (!strcmp(m->slots[i]->name, name))
			return m->slots[i];
	return NULL;
}

static struct gslot *slot_get(struct sv_metrics *m, const char *name)
{
	struct gslot *s = slot_find(m, name);
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

/* ---- /proc and /sys: small reads of in-memory files ---- */

static ssize_t read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Field `want` (1-based, as proc(5) counts) of /proc/PID/stat's text: the
 * fields resume after the last ')' (comm may hold anything), at field 3. */
static bool stat_field(const char *buf, int want, unsigned long long *out)
{
	const char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return false;
	p += 2;
	for (int field = 3; field < want; field++)
		if (!(p = strchr(p, ' ')))
			return false;
		else
			p++;
	char *end;
	*out = strtoull(p, &end, 10);
	return end != p;
}

/* CPU seconds (user, system) and RSS bytes of process pid ("self" when 0). */
static bool proc_usage(int pid, double *user, double *sys, double *rss)
{
	char path[64], buf[1024];
	unsigned long long ut, st, pages;
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/stat");
	if (read_small(path, buf, sizeof(buf)) <= 0 || !stat_field(buf, 14, &ut) ||
	    !stat_field(buf, 15, &st))
		return false;
	*user = (double)ut / (double)(tick > 0 ? tick : 100);
	*sys = (double)st / (double)(tick > 0 ? tick : 100);
	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/statm");
	const char *p = buf;
	if (read_small(path, buf, sizeof(buf)) <= 0 || !(p = strchr(buf, ' ')))
		return false;
	pages = strtoull(p + 1, NULL, 10);
	*rss = (double)pages * (double)(page > 0 ? page : 4096);
	return true;
}

static bool sys_counter(const char *ifname, const char *what, double *out)
{
	char path[160], buf[32];
	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", ifname, what);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return false;
	*out = (double)strtoull(buf, NULL, 10);
	return true;
}

/* Is interface ifname a tap (it has tun_flags) carrying the MAC qsupd gives
 * a guest NIC's tap (tap.h: the guest's, first byte 0xfe)? A bridge whose
 * only port is that tap has its MAC too. */
static bool tap_has_mac(const char *ifname, const char *want)
{
	char path[160], buf[32];
	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	if (read_small(path, buf, sizeof(buf)) < 17 || strncmp(buf, want, 17))
		return false;
	snprintf(path, sizeof(path), "/sys/class/net/%s/tun_flags", ifname);
	return read_small(path, buf, sizeof(buf)) > 0;
}

/* The tap of a bridge or network NIC, by its MAC: the cached name while it
 * still matches, else one walk of /sys/class/net. */
static bool tap_of(struct gslot *s, const struct sv_nic *n, char out[SV_IFNAMSIZ])
{
	char want[18];
	uint8_t mac[6];
	memcpy(mac, n->mac, 6);
	mac[0] = 0xfe;
	sv_mac_format(mac, want);
	const char *cached = json_string_value(json_object_get(s->taps, n->id));
	if (cached && tap_has_mac(cached, want)) {
		snprintf(out, SV_IFNAMSIZ, "%.15s", cached);
		return true;
	}
	DIR *dir = opendir("/sys/class/net");
	struct dirent *e;
	bool found = false;
	while (dir && !found && (e = readdir(dir))) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= SV_IFNAMSIZ)
			continue;
		if ((found = tap_has_mac(e->d_name, want)))
			snprintf(out, SV_IFNAMSIZ, "%.15s", e->d_name);
	}
	if (dir)
		closedir(dir);
	if (found)
		json_object_set_new(s->taps, n->id, json_string(out));
	else
		json_object_del(s->taps, n->id);
	return found;
}

/* NIC id's counters, from its tap, onto nics. The tap's receive is the
 * guest's transmit: counted as the guest sees them (as virsh domifstat
 * does). */
static void nic_counters(json_t *nics, const char *id, const char *tap)
{
	double rxb, txb, rxp, txp;
	if (sys_counter(tap, "tx_bytes", &rxb) && sys_counter(tap, "rx_bytes", &txb) &&
	    sys_counter(tap, "tx_packets", &rxp) && sys_counter(tap, "rx_packets", &txp))
		json_array_append_new(nics, json_pack("{s:s, s:s, s:f, s:f, s:f, s:f}", "id", id,
		                      "tap", tap, "rx_bytes", rxb, "tx_bytes", txb,
		                      "rx_packets", rxp, "tx_packets", txp));
}

/* The hot-plugged NICs of g on a tap: one qsupd made (bridge, network),
 * found by its MAC (the one given to attach, or the stable one it chose),
 * or the operator's (type tap: its backend is "tap NAME"). */
static void hotplugged_nics(struct gslot *s, struct sv_guest *g, json_t *nics)
{
	json_t *devs = sv_hotplug_list(g), *v;
	size_t i;
	json_array_foreach(devs, i, v) {
		const char *id = json_string_value(json_object_get(v, "id"));
		const char *given = json_string_value(json_object_get(v, "mac"));
		char tap[SV_IFNAMSIZ];
		if (!id || strcmp(sv_jstr(v, "kind", ""), "nic") ||
		    !strcmp(sv_jstr(v, "source", ""), "profile") ||
		    strcmp(sv_jstr(v, "state", ""), "attached"))
			continue;
		const char *backend = sv_jstr(v, "backend", "");
		if (!strncmp(backend, "tap ", 4)) {
			snprintf(tap, sizeof(tap), "%.15s", backend + 4);
			nic_counters(nics, id, tap);
			continue;
		}
		struct sv_nic n = { .id = (char *)id, .type = SV_NIC_BRIDGE };
		if (!given || sv_mac_parse(given, n.mac) < 0)
			sv_mac_stable(g->name, id, n.mac);
		if (tap_of(s, &n, tap))
			nic_counters(nics, id, tap);
	}
	json_decref(devs);
}

static void collect_host(struct gslot *s, struct sv_guest *g)
{
	json_t *nics = json_array();
	s->have_proc = false;
	if (sv_guest_active(g) && g->pid > 0) {
		s->time = mono_s();
		s->have_proc = proc_usage(g->pid, &s->cpu_user, &s->cpu_system, &s->rss);
	}
	const struct sv_profile *p = sv_guest_profile_now(g);
	for (size_t i = 0; s->have_proc && p && i < p->nnics; i++) {
		const struct sv_nic *n = &p->nics[i];
		char tap[SV_IFNAMSIZ];
		if (n->type == SV_NIC_TAP && n->ifname)
			snprintf(tap, sizeof(tap), "%.15s", n->ifname);
		else if ((n->type != SV_NIC_BRIDGE && n->type != SV_NIC_NETWORK) || !tap_of(s, n, tap))
			continue;
		nic_counters(nics, n->id, tap);
	}
	if (s->have_proc && g->hp)
		hotplugged_nics(s, g, nics);
	json_decref(s->nics);
	s->nics = nics;
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
	struct gslot *s = m ? slot_find(m, x->name) : NULL;
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

static void start_round(struct sv_daemon *d)
{
	struct sv_metrics *m = d->metrics;
	uint64_t t0 = uv_hrtime();
	m->round_out = 1;   /* until every query is sent */
	for (size_t i = 0; i < m->nslots; i++)
		m->slots[i]->seen = false;
	for (size_t i = 0; i < d->nguests; i++) {
		struct sv_guest *g = d->guests[i];
		struct gslot *s = slot_get(m, g->name);
		if (!s)
			continue;
		s->seen = true;
		collect_host(s, g);
		collect_qmp(d, s, g);
	}
	size_t k = 0;
	for (size_t i = 0; i < m->nslots; i++)
		if (m->slots[i]->seen)
			m->slots[k++] = m->slots[i];
		else
			slot_free(m->slots[i]);
	m->nslots = k;
	m->rounds++;
	sv_hist_observe(&m->collect, (double)(uv_hrtime() - t0) / 1e9);
	if (--m->round_out == 0)
		round_done(d);
}

/* ---- the stats verb's JSON ---- */

static json_t *guest_stats(struct sv_daemon *d, struct sv_guest *g)
{
	struct gslot *s = slot_find(d->metrics, g->name);
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

/* ---- the Prometheus text ---- */

static void family_guest(struct sv_prom *p, struct sv_daemon *d, const char *name,
                         const char *type, const char *help,
                         bool (*val)(struct sv_daemon *, struct sv_guest *, struct gslot *,
                                     double *))
{
	sv_prom_family(p, name, type, help);
	for (size_t i = 0; i < d->nguests; i++) {
		struct sv_guest *g = d->guests[i];
		double v;
		if (val(d, g, slot_find(d->metrics, g->name), &v))
			sv_prom_sample(p, name, (const char *const[]){ "guest", g->name, NULL }, v);
	}
}

static bool v_up(struct sv_daemon *d, struct sv_guest *g, struct gslot *s, double *v)
{
	(void)d, (void)s;
	*v = sv_state_is_up(g->state);
	return true;
}

static bool v_stale(struct sv_daemon *d, struct sv_guest *g, struct gslot *s, double *v)
{
	(void)d, (void)g;
	*v = s && s->stale;
	return true;
}

static bool v_uptime(struct sv_daemon *d, struct sv_guest *g, struct gslot *s, double *v)
{
	(void)s;
	*v = sv_guest_active(g) && g->started_ms
	   ? (double)(uv_now(d->loop) - g->started_ms) / 1000.0 : 0;
	return true;
}

static bool v_cpus(struct sv_daemon *d, struct sv_guest *g, struct gslot *s, double *v)
{
	(void)d, (void)s;
	const struct sv_profile *p = sv_guest_profile_now(g);
	*v = p ? p->cpus : 0;
	return p != NULL;
}

static bool v_memory(struct sv_daemon *d, struct sv_guest *g, struct gslot *s, double *v)
{
	(void)d, (void)s;
	const struct sv_profile *p = sv_guest_profile_now(g);
	*v = p ? (double)p->memory : 0;
	return p != NULL;
}

static bool v_rss(struct sv_daemon *d, struct sv_guest *g, struct gslot *s, double *v)
{
	(void)d;
	*v = s ? s->rss : 0;
	return s && s->have_proc && sv_guest_active(g);
}

static bool v_balloon(struct sv_daemon *d, struct sv_guest *g, struct gslot *s, double *v)
{
	(void)d, (void)g;
	json_t *a = s && s->balloon ? json_object_get(s->balloon, "actual") : NULL;
	*v = json_is_integer(a) ? (double)json_integer_value(a) : 0;
	return json_is_integer(a);
}

static bool v_balloon_target(struct sv_daemon *d, struct sv_guest *g, struct gslot *s,
                             double *v)
{
	(void)d, (void)g;
	json_t *t = s && s->balloon ? json_object_get(s->balloon, "target") : NULL;
	*v = json_is_integer(t) ? (double)json_integer_value(t) : 0;
	return json_is_integer(t);
}

/* A family over the guests' disks or NICs (array member arr of the slot:
 * "disks" or "nics"), label lab, value key. */
static void family_dev(struct sv_prom *p, struct sv_daemon *d, bool nics, const char *name,
                       const char *help, const char *key)
{
	sv_prom_family(p, name, "counter", help);
	for (size_t i = 0; i < d->nguests; i++) {
		struct sv_guest *g = d->guests[i];
		struct gslot *s = slot_find(d->metrics, g->name);
		json_t *e;
		size_t k;
		if (!s || (nics && !s->have_proc))
			continue;
		json_array_foreach(nics ? s->nics : s->disks, k, e)
			sv_prom_sample(p, name, (const char *const[]){ "guest", g->name,
			               nics ? "nic" : "disk", json_string_value(json_object_get(e, "id")),
			               NULL }, jnum(e, key));
	}
}

static char *render(struct sv_daemon *d, size_t *len)
{
	struct sv_metrics *m = d->metrics;
	struct sv_prom p = { 0 };
	unsigned by_state[SV_NSTATES] = { 0 };

	sv_prom_family(&p, "qsup_guest_state", "gauge",
	               "The guest's state: 1 for the state it is in, 0 for the others");
	for (size_t i = 0; i < d->nguests; i++) {
		struct sv_guest *g = d->guests[i];
		by_state[g->state]++;
		for (int st = 0; st < SV_NSTATES; st++)
			sv_prom_sample(&p, "qsup_guest_state", (const char *const[]){ "guest", g->name,
			               "state", sv_state_name((enum sv_state)st), NULL },
			               g->state == (enum sv_state)st);
	}
	family_guest(&p, d, "qsup_guest_up", "gauge", "1 when QEMU runs the guest (running "
	             "or paused)", v_up);
	family_guest(&p, d, "qsup_guest_stats_stale", "gauge", "1 when QEMU did not answer "
	             "the last stats round (its disk figures are older)", v_stale);
	family_guest(&p, d, "qsup_guest_uptime_seconds", "gauge", "Seconds since QEMU "
	             "started (0 when it does not run)", v_uptime);
	sv_prom_family(&p, "qsup_guest_restarts_total", "counter", "Restarts by the restart "
	               "policy since qsupd started, by the class of the ending");
	for (size_t i = 0; i < d->nguests; i++) {
		struct gslot *s = slot_find(m, d->guests[i]->name);
		for (int c = 0; s && c <= SV_EXIT_LAST; c++)
			if (s->restarts[c])
				sv_prom_sample(&p, "qsup_guest_restarts_total", (const char *const[]){
				               "guest", s->name, "class",
				               sv_exit_class_name((enum sv_exit_class)c), NULL },
				               (double)s->restarts[c]);
	}
	family_guest(&p, d, "qsup_guest_vcpus", "gauge", "Configured vCPUs", v_cpus);
	family_guest(&p, d, "qsup_guest_memory_bytes", "gauge", "Configured memory", v_memory);
	sv_prom_family(&p, "qsup_guest_cpu_seconds_total", "counter", "CPU time of the "
	               "guest's QEMU process, by mode (user, system)");
	for (size_t i = 0; i < d->nguests; i++) {
		struct sv_guest *g = d->guests[i];
		struct gslot *s = slot_find(m, g->name);
		if (!s || !s->have_proc || !sv_guest_active(g))
			continue;
		sv_prom_sample(&p, "qsup_guest_cpu_seconds_total", (const char *const[]){
		               "guest", g->name, "mode", "user", NULL }, s->cpu_user);
		sv_prom_sample(&p, "qsup_guest_cpu_seconds_total", (const char *const[]){
		               "guest", g->name, "mode", "system", NULL }, s->cpu_system);
	}
	family_guest(&p, d, "qsup_guest_resident_memory_bytes", "gauge", "Resident memory "
	             "of the guest's QEMU process", v_rss);
	family_dev(&p, d, false, "qsup_guest_disk_read_bytes_total", "Bytes read by the "
	           "guest from the disk (query-blockstats)", "rd_bytes");
	family_dev(&p, d, false, "qsup_guest_disk_written_bytes_total", "Bytes written by the "
	           "guest to the disk", "wr_bytes");
	family_dev(&p, d, false, "qsup_guest_disk_reads_total", "Read operations",
	           "rd_operations");
	family_dev(&p, d, false, "qsup_guest_disk_writes_total", "Write operations",
	           "wr_operations");
	family_dev(&p, d, false, "qsup_guest_disk_flushes_total", "Flush operations",
	           "flush_operations");
	family_dev(&p, d, false, "qsup_guest_disk_read_time_seconds_total", "Time spent on "
	           "reads", "rd_total_time");
	family_dev(&p, d, false, "qsup_guest_disk_write_time_seconds_total", "Time spent on "
	           "writes", "wr_total_time");
	family_dev(&p, d, true, "qsup_guest_nic_receive_bytes_total", "Bytes the guest "
	           "received on a tap-backed NIC (the tap's transmit counter)", "rx_bytes");
	family_dev(&p, d, true, "qsup_guest_nic_transmit_bytes_total", "Bytes the guest "
	           "sent on a tap-backed NIC (the tap's receive counter)", "tx_bytes");
	family_dev(&p, d, true, "qsup_guest_nic_receive_packets_total", "Packets the guest "
	           "received on a tap-backed NIC", "rx_packets");
	family_dev(&p, d, true, "qsup_guest_nic_transmit_packets_total", "Packets the guest "
	           "sent on a tap-backed NIC", "tx_packets");
	family_guest(&p, d, "qsup_guest_balloon_actual_bytes", "gauge", "Guest memory as the "
	             "balloon leaves it (query-balloon)", v_balloon);
	family_guest(&p, d, "qsup_guest_balloon_target_bytes", "gauge", "The balloon's target "
	             "(the profile's memory, or set balloon=)", v_balloon_target);
	/* The guest's own memory statistics through the balloon (QEMU's
	 * guest-stats; -1 where the guest does not report one). */
	static const char *const mem_stats[][2] = {
		{ "stat-total-memory", "total" }, { "stat-free-memory", "free" },
		{ "stat-available-memory", "available" }, { "stat-disk-caches", "disk_caches" },
	};
	sv_prom_family(&p, "qsup_guest_balloon_memory_bytes", "gauge", "The guest's memory "
	               "as it reports it through the balloon, by kind");
	for (size_t i = 0; i < d->nguests; i++) {
		struct gslot *s = slot_find(m, d->guests[i]->name);
		json_t *st = s && s->balloon ? json_object_get(s->balloon, "stats") : NULL;
		for (size_t k = 0; st && k < sizeof(mem_stats) / sizeof(mem_stats[0]); k++) {
			json_t *v = json_object_get(st, mem_stats[k][0]);
			if (json_is_integer(v) && json_integer_value(v) >= 0)
				sv_prom_sample(&p, "qsup_guest_balloon_memory_bytes", (const char *const[]){
				               "guest", s->name, "kind", mem_stats[k][1], NULL },
				               (double)json_integer_value(v));
		}
	}

	/* Migrations while they run (the figures of the migration's own poll). */
	static const char *const mig_keys[][3] = {
		{ "transferred", "qsup_guest_migration_transferred_bytes", "Bytes of RAM sent so far" },
		{ "remaining", "qsup_guest_migration_remaining_bytes", "Bytes of RAM still to send" },
		{ "total", "qsup_guest_migration_total_bytes", "The guest's RAM to migrate" },
	};
	for (size_t k = 0; k < sizeof(mig_keys) / sizeof(mig_keys[0]); k++) {
		sv_prom_family(&p, mig_keys[k][1], "gauge", mig_keys[k][2]);
		for (size_t i = 0; i < d->nguests; i++) {
			json_t *mig = sv_migrate_status(d->guests[i]);
			json_t *v = json_object_get(json_object_get(mig, "progress"), mig_keys[k][0]);
			if (json_is_integer(v))
				sv_prom_sample(&p, mig_keys[k][1], (const char *const[]){ "guest",
				               d->guests[i]->name, "role", json_string_value(
				               json_object_get(mig, "role")), NULL },
				               (double)json_integer_value(v));
			json_decref(mig);
		}
	}

	/* Backups while they run (their jobs' last progress). */
	for (int k = 0; k < 2; k++) {
		const char *name = k ? "qsup_guest_backup_total_bytes" : "qsup_guest_backup_done_bytes";
		sv_prom_family(&p, name, "gauge", k ? "What a running backup copies in all, over "
		               "the guest's disks" : "What a running backup copied so far");
		for (size_t i = 0; i < d->nguests; i++) {
			int64_t done, total;
			const char *kind;
			if (sv_backup_progress(d->guests[i], &done, &total, &kind))
				sv_prom_sample(&p, name, (const char *const[]){ "guest", d->guests[i]->name,
				               "kind", kind, NULL }, (double)(k ? total : done));
		}
	}

	/* qsupd itself */
	sv_prom_family(&p, "qsup_guests", "gauge", "Guests by state");
	for (int st = 0; st < SV_NSTATES; st++)
		sv_prom_sample(&p, "qsup_guests", (const char *const[]){ "state",
		               sv_state_name((enum sv_state)st), NULL }, by_state[st]);
	sv_prom_family(&p, "qsup_control_clients", "gauge", "Clients connected to the "
	               "control socket");
	sv_prom_sample(&p, "qsup_control_clients", NULL, (double)d->nclients);
	sv_prom_family(&p, "qsup_requests_total", "counter", "Control requests answered, by "
	               "verb and result (ok, or the error class)");
	const char *verb, *res;
	json_t *byres, *n;
	json_object_foreach(m->requests, verb, byres)
		json_object_foreach(byres, res, n)
			sv_prom_sample(&p, "qsup_requests_total", (const char *const[]){ "verb", verb,
			               "result", res, NULL }, (double)json_integer_value(n));
	sv_prom_histogram(&p, "qsup_request_duration_seconds", "Control requests: from the "
	                  "request to its answer", &m->req_lat);
	sv_prom_histogram(&p, "qsup_qmp_roundtrip_seconds", "Every QMP command qsupd sent "
	                  "to a QEMU: from sending to the reply", &m->qmp_rtt);
	sv_prom_histogram(&p, "qsup_loop_lag_seconds", "How late the stats timer fired: the "
	                  "event loop's lag", &m->lag);
	sv_prom_histogram(&p, "qsup_stats_collect_seconds", "The loop time a stats round "
	                  "takes to read /proc and /sys and send its queries (the lag it adds)",
	                  &m->collect);
	sv_prom_family(&p, "qsup_loop_lag_max_seconds", "gauge", "The largest loop lag seen "
	               "since qsupd started");
	sv_prom_sample(&p, "qsup_loop_lag_max_seconds", NULL, m->lag_max);
	double u = 0, sy = 0, rss = 0;
	proc_usage(0, &u, &sy, &rss);
	sv_prom_family(&p, "qsup_process_cpu_seconds_total", "counter", "qsupd's own CPU "
	               "time, by mode (user, system)");
	sv_prom_sample(&p, "qsup_process_cpu_seconds_total", (const char *const[]){ "mode",
	               "user", NULL }, u);
	sv_prom_sample(&p, "qsup_process_cpu_seconds_total", (const char *const[]){ "mode",
	               "system", NULL }, sy);
	sv_prom_family(&p, "qsup_process_resident_memory_bytes", "gauge", "qsupd's own "
	               "resident memory");
	sv_prom_sample(&p, "qsup_process_resident_memory_bytes", NULL, rss);
	sv_prom_family(&p, "qsup_stats_interval_seconds", "gauge", "How often the stats are "
	               "gathered (--stats-interval)");
	sv_prom_sample(&p, "qsup_stats_interval_seconds", NULL, (double)m->interval_ms / 1000);
	sv_prom_family(&p, "qsup_stats_rounds_total", "counter", "Stats rounds started");
	sv_prom_sample(&p, "qsup_stats_rounds_total", NULL, (double)m->rounds);
	return sv_prom_take(&p, len);
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
		char *text = render(d, &len);
		if (text)
			sv_http_publish(m->http, text, len);
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
	w->next = m->waiting;
	m->waiting = w;
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
	char *text = d->metrics ? render(d, &len) : NULL;
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
	sv_http_stop(m->http);
	m->http = NULL;
	struct swait *w = m->waiting;
	m->waiting = NULL;
	while (w) {
		struct swait *next = w->next;
		sv_reply_err(w->req, "GenericError", "qsupd is exiting");
		json_decref(w->names);
		free(w);
		w = next;
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
	json_decref(m->requests);
	free(m);
	d->metrics = NULL;
}
