/* Metrics (metrics_int.h): the snapshot in the Prometheus text format, for
 * the metrics verb and --metrics-listen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"   /* first: backup.h needs <stdbool.h> */
#include "backup.h"
#include "migrate.h"

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
		if (val(d, g, metrics_slot_find(d->metrics, g->name), &v))
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
		struct gslot *s = metrics_slot_find(d->metrics, g->name);
		json_t *e;
		size_t k;
		if (!s || (nics && !s->have_proc))
			continue;
		json_array_foreach(nics ? s->nics : s->disks, k, e)
			sv_prom_sample(p, name, (const char *const[]){ "guest", g->name,
			               nics ? "nic" : "disk", json_string_value(json_object_get(e, "id")),
			               NULL }, json_number_value(json_object_get(e, key)));
	}
}

char *metrics_render(struct sv_daemon *d, size_t *len)
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
		struct gslot *s = metrics_slot_find(m, d->guests[i]->name);
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
		struct gslot *s = metrics_slot_find(m, g->name);
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
		struct gslot *s = metrics_slot_find(m, d->guests[i]->name);
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
	sv_prom_histogram(&p, "qsup_stats_collect_seconds", "The loop time a turn of a "
	                  "stats round (8 guests) takes to read /proc and /sys and send its "
	                  "queries (the lag it adds)",
	                  &m->collect);
	sv_prom_family(&p, "qsup_loop_lag_max_seconds", "gauge", "The largest loop lag seen "
	               "since qsupd started");
	sv_prom_sample(&p, "qsup_loop_lag_max_seconds", NULL, m->lag_max);
	double u = 0, sy = 0, rss = 0;
	metrics_proc_usage(0, &u, &sy, &rss);
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
