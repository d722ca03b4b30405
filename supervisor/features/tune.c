/* Live resource control: see tune.h (and tune_int.h for its files). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hotplug.h"
#include "log.h"
#include "step.h"
#include "tune_int.h"

#define BALLOON_POLL_MS 5000
#define BALLOON_STATS_S 5
#define BALLOON_PATH "/machine/peripheral/balloon.0"

/* ---- applying ---- */

struct logged {
	struct sv_guest *g;
	char what[96];
};

static void on_logged(void *ctx, const struct qmp_result *r)
{
	struct logged *l = ctx;
	if (r->status != 0)
		sv_log(SV_LOG_WARN, l->g->name, "%s: %s", l->what,
		       r->err_desc ? r->err_desc : qmp_strerror(r->status));
	sv_guest_unhold(l->g);
	free(l);
}

/* Run cmd, logging a failure as "what: QEMU's words". */
static void step_logged(struct sv_guest *g, const char *cmd, json_t *args, const char *what)
{
	struct logged *l = calloc(1, sizeof(*l));
	if (!l) {
		json_decref(args);
		return;
	}
	l->g = g;
	snprintf(l->what, sizeof(l->what), "%s", what);
	sv_guest_hold(g);
	sv_step(g->qmp, NULL, cmd, args, -1, on_logged, l);
}

json_t *tune_throttle_args(const struct tune_disk *d, const uint64_t v[SV_IOTUNE_N])
{
	json_t *a = json_pack("{s:s}", "id", d->qdev);
	for (int i = 0; a && i < SV_IOTUNE_N; i++)
		if (i < 6 || v[i])   /* the six limits are mandatory; 0: none */
			json_object_set_new(a, sv_iotune_qmp[i], json_integer((json_int_t)v[i]));
	return a;
}

/* The next thread in QEMU's /proc/PID/task (d) that is not one of its
 * vCPU threads tids[0..n): the emulator threads, which pinning and
 * re-adoption both walk. 0 at the end. */
static pid_t next_other_thread(DIR *d, const pid_t *tids, size_t n)
{
	struct dirent *e;
	while ((e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);
		bool vcpu = false;
		for (size_t i = 0; i < n; i++)
			vcpu |= tids[i] == tid;
		if (tid > 0 && !vcpu)
			return tid;
	}
	return 0;
}

/* Pin g's threads: the vCPU threads of cpus (query-cpus-fast's reply) to
 * cpu-affinity (to every host CPU when only emulator-affinity is given),
 * QEMU's other threads to emulator-affinity. 0, or -errno with why. */
static int pin_threads(struct sv_guest *g, json_t *cpus, char *why, size_t size)
{
	struct sv_tune *t = g->tune;
	size_t n = json_array_size(cpus), i;
	pid_t *tids = calloc(n + 1, sizeof(*tids));
	cpu_set_t vset;
	json_t *c;
	int rc = 0, threads = 0;
	if (!tids) {
		snprintf(why, size, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(cpus, i, c)
		tids[i] = (pid_t)json_integer_value(json_object_get(c, "thread-id"));
	if (t->cpu_on)
		vset = t->cpu;
	else
		tune_host_cpus(&vset);
	for (i = 0; i < n && (t->cpu_on || t->emu_on); i++)
		if (tids[i] > 0 && sched_setaffinity(tids[i], sizeof(vset), &vset) < 0 && !rc) {
			rc = -errno;
			snprintf(why, size, "vCPU thread %d: sched_setaffinity: %s", (int)tids[i],
			         strerror(errno));
		}
	if (t->emu_on && g->pid > 0) {
		char dir[64];
		snprintf(dir, sizeof(dir), "/proc/%d/task", g->pid);
		DIR *d = opendir(dir);
		pid_t tid;
		while (d && (tid = next_other_thread(d, tids, n)) > 0) {
			if (sched_setaffinity(tid, sizeof(t->emu), &t->emu) == 0)
				threads++;
			else if (errno != ESRCH && !rc) {
				rc = -errno;
				snprintf(why, size, "thread %d: sched_setaffinity: %s", (int)tid,
				         strerror(errno));
			}
		}
		if (d)
			closedir(d);
		else if (!rc) {
			rc = -errno;
			snprintf(why, size, "%s: %s", dir, strerror(errno));
		}
	}
	t->vcpus_pinned = t->cpu_on || t->emu_on ? (int)n : 0;
	t->threads_pinned = threads;
	snprintf(t->pin_error, sizeof(t->pin_error), "%s", rc ? why : "");
	free(tids);
	return rc;
}

struct pin_op {
	struct sv_guest *g;
	void (*done)(void *arg, int rc, const char *why);
	void *arg;
};

static void on_cpus(void *ctx, const struct qmp_result *r)
{
	struct pin_op *op = ctx;
	char why[256] = "";
	int rc;
	if (r->status != 0) {
		snprintf(why, sizeof(why), "query-cpus-fast: %s", r->err_desc ? r->err_desc
		         : qmp_strerror(r->status));
		rc = -EIO;
	} else {
		rc = pin_threads(op->g, r->ret, why, sizeof(why));
	}
	op->done(op->arg, rc, why);
	sv_guest_unhold(op->g);
	free(op);
}

void tune_pin_now(struct sv_guest *g, void (*done)(void *arg, int rc, const char *why),
                  void *arg)
{
	struct pin_op *op = calloc(1, sizeof(*op));
	if (!op) {
		done(arg, -ENOMEM, "out of memory");
		return;
	}
	op->g = g;
	op->done = done;
	op->arg = arg;
	sv_guest_hold(g);
	sv_step(g->qmp, NULL, "query-cpus-fast", NULL, -1, on_cpus, op);
}

static void pin_logged(void *arg, int rc, const char *why)
{
	struct sv_guest *g = arg;
	if (rc < 0)
		sv_log(SV_LOG_WARN, g->name, "pinning: %s", why);
	sv_guest_unhold(g);
}

static void repin(struct sv_guest *g)
{
	struct sv_tune *t = g->tune;
	if (!t || (!t->cpu_on && !t->emu_on))
		return;
	sv_guest_hold(g);
	tune_pin_now(g, pin_logged, g);
}

/* ---- the balloon's poll ---- */

static void on_stats(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_tune *t = g->tune;
	if (t && r->status == 0) {
		json_decref(t->stats);
		t->stats = json_incref(json_object_get(r->ret, "stats"));
	}
	if (t)
		t->polling = false;
	sv_guest_unhold(g);
}

static void on_balloon(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_tune *t = g->tune;
	if (t && r->status == 0)
		t->actual = (long long)json_integer_value(json_object_get(r->ret, "actual"));
	if (!t || !g->qmp) {
		if (t)
			t->polling = false;
		sv_guest_unhold(g);
		return;
	}
	sv_step(g->qmp, NULL, "qom-get", json_pack("{s:s, s:s}", "path", BALLOON_PATH,
	        "property", "guest-stats"), -1, on_stats, g);
}

static void poll_tick(uv_timer_t *h)
{
	struct sv_guest *g = h->data;
	struct sv_tune *t = g->tune;
	if (!t || t->polling || !g->qmp || !sv_guest_active(g))
		return;
	t->polling = true;
	sv_guest_hold(g);
	sv_step(g->qmp, NULL, "query-balloon", NULL, -1, on_balloon, g);
}

static void poll_start(struct sv_guest *g, struct sv_tune *t)
{
	if (!t->poll) {
		if (!(t->poll = malloc(sizeof(*t->poll))))
			return;
		uv_timer_init(g->env->loop, t->poll);
		t->poll->data = g;
		sv_guest_hold(g);
	}
	uv_timer_start(t->poll, poll_tick, 0, BALLOON_POLL_MS);
}

/* The balloon's figures: target, actual and the guest's statistics once
 * known (t NULL: the guest does not run; the profile's memory). */
static json_t *balloon_json(const struct sv_profile *p, const struct sv_tune *t)
{
	json_t *b = json_pack("{s:I}", "target", (json_int_t)(t && t->target ? t->target
	                      : p->memory));
	if (t && t->actual >= 0)
		json_object_set_new(b, "actual", json_integer(t->actual));
	if (t && t->stats)
		json_object_set(b, "stats", t->stats);
	return b;
}

json_t *sv_tune_export(const struct sv_guest *g)
{
	const struct sv_tune *t = g->tune;
	if (!t || !sv_guest_active(g) || (!t->target && !t->live_set))
		return NULL;
	json_t *o = json_object();
	if (t->target)
		json_object_set_new(o, "balloon-target", json_integer((json_int_t)t->target));
	if (t->live_set)
		json_object_set_new(o, "live", json_true());
	return o;
}

void sv_tune_import(struct sv_guest *g, json_t *saved)
{
	json_t *v = json_object_get(saved, "balloon-target");
	struct sv_tune *t = json_is_object(saved) ? tune_of(g) : NULL;
	if (!t)
		return;
	if (json_is_integer(v) && json_integer_value(v) > 0)
		t->saved_target = (uint64_t)json_integer_value(v);
	t->saved_live = json_is_true(json_object_get(saved, "live"));
}

json_t *sv_tune_balloon(const struct sv_guest *g)
{
	return sv_guest_has_balloon(g) && g->tune ? balloon_json(tune_prof(g), g->tune) : NULL;
}

bool sv_guest_has_balloon(const struct sv_guest *g)
{
	const struct sv_profile *p = tune_prof(g);
	return p && p->balloon && sv_guest_active(g) && !g->adopting;
}

/* ---- the observer ---- */

static void apply_all(struct sv_guest *g, struct sv_tune *t, bool hot_too)
{
	const struct sv_profile *p = tune_prof(g);
	char what[96];
	for (size_t i = 0; i < t->ndisks; i++) {
		const struct tune_disk *d = &t->disks[i];
		bool hot = sv_profile_find_device(p, d->id) < 0;
		if (!sv_iotune_any(d->v) || (hot && !hot_too))
			continue;
		snprintf(what, sizeof(what), "I/O limits of disk %s", d->id);
		step_logged(g, "block_set_io_throttle", tune_throttle_args(d, d->v), what);
	}
	if (p && p->balloon) {
		step_logged(g, "qom-set", json_pack("{s:s, s:s, s:i}", "path", BALLOON_PATH,
		            "property", "guest-stats-polling-interval", "value", BALLOON_STATS_S),
		            "balloon stats polling");
		if (t->target)
			step_logged(g, "balloon", json_pack("{s:I}", "value", (json_int_t)t->target),
			            "balloon target");
		poll_start(g, t);
	}
	repin(g);
}

/* Before hot-plug replays its devices (which come with their limits, see
 * sv_tune_hotplugged): the profile's disks, the balloon, the pinning. */
static bool tune_qmp_ready(struct sv_guest *g, void (*done)(struct sv_guest *g))
{
	struct sv_tune *t = tune_of(g);
	(void)done;
	if (!t)
		return false;
	if (!t->loaded)
		tune_load(g, t);
	t->actual = -1;
	json_decref(t->stats);
	t->stats = NULL;
	apply_all(g, t, false);
	return false;
}

/* A QEMU of an earlier qsupd: what it runs with is read back from it (the
 * limits: query-block; the threads' affinity: the kernel's), the balloon's
 * target from state.json (QEMU does not tell it), so that a set without
 * --persist is still shown as it is. */
static void on_adopt_blocks(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_tune *t = g->tune;
	json_t *b;
	size_t i;
	json_array_foreach(r->status == 0 && t ? r->ret : NULL, i, b) {
		const char *q = sv_jstr(b, "qdev", "");
		char id[SV_ID_MAX + 1];
		json_t *in = json_object_get(b, "inserted");
		struct tune_disk *d;
		if (!strncmp(q, "/machine/peripheral/", 20))
			q += 20;
		size_t n = strcspn(q, "/");
		if (!in || n == 0 || n > SV_ID_MAX)
			continue;
		memcpy(id, q, n);
		id[n] = '\0';
		if (!sv_device_id_valid(id) || !(d = tune_disk_add(t, id)))
			continue;
		snprintf(d->qdev, sizeof(d->qdev), "%s", sv_jstr(b, "qdev", id));
		for (int k = 0; k < SV_IOTUNE_N; k++)
			d->v[k] = (uint64_t)json_integer_value(json_object_get(in, sv_iotune_qmp[k]));
		for (int k = SV_IOT_LEN; k < SV_IOTUNE_N; k++)
			if (!d->v[k - SV_IOT_LEN + SV_IOT_MAX])
				d->v[k] = 0;   /* QEMU reports its default length 1 */
	}
	sv_guest_unhold(g);
}

/* The vCPU threads' affinity (their ids from query-cpus-fast) and the
 * other threads', as the kernel has them: pinned where they differ from
 * qsupd's own CPUs. */
static void on_adopt_cpus(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_tune *t = g->tune;
	size_t n = r->status == 0 ? json_array_size(r->ret) : 0, i;
	if (!t || !n || g->pid <= 0) {
		sv_guest_unhold(g);
		return;
	}
	cpu_set_t host, set;
	pid_t *tids = calloc(n, sizeof(*tids));
	json_t *c;
	int vcpus = 0, threads = 0;
	tune_host_cpus(&host);
	json_array_foreach(r->ret, i, c)
		if (tids)
			tids[i] = (pid_t)json_integer_value(json_object_get(c, "thread-id"));
	for (i = 0; tids && i < n; i++) {
		if (tids[i] <= 0 || sched_getaffinity(tids[i], sizeof(set), &set) < 0)
			continue;
		if (i == 0 && (t->cpu_on = !CPU_EQUAL(&set, &host)))
			t->cpu = set;
		vcpus += CPU_EQUAL(&set, t->cpu_on ? &t->cpu : &host);
	}
	if (sched_getaffinity(g->pid, sizeof(set), &set) == 0 &&
	    (t->emu_on = !CPU_EQUAL(&set, &host)))
		t->emu = set;
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/task", g->pid);
	DIR *d = t->emu_on && tids ? opendir(dir) : NULL;
	pid_t tid;
	while (d && (tid = next_other_thread(d, tids, n)) > 0)
		threads += sched_getaffinity(tid, sizeof(set), &set) == 0 && CPU_EQUAL(&set, &t->emu);
	if (d)
		closedir(d);
	t->vcpus_pinned = t->cpu_on || t->emu_on ? vcpus : 0;
	t->threads_pinned = threads;
	free(tids);
	sv_guest_unhold(g);
}

static void tune_adopted(struct sv_guest *g)
{
	struct sv_tune *t = tune_of(g);
	if (!t || !g->qmp)
		return;
	tune_load(g, t);
	if (t->saved_target)
		t->target = t->saved_target;
	t->saved_target = 0;
	t->live_set = t->saved_live;
	t->saved_live = false;
	/* Only what may differ from the profile and set.ini is asked: a guest
	 * never tuned costs its re-adoption no query. */
	bool limits = t->live_set;
	for (size_t i = 0; i < t->ndisks && !limits; i++)
		limits = sv_iotune_any(t->disks[i].v);
	if (limits) {
		sv_guest_hold(g);
		sv_step(g->qmp, NULL, "query-block", NULL, -1, on_adopt_blocks, g);
	}
	if (t->live_set || t->cpu_on || t->emu_on) {
		sv_guest_hold(g);
		sv_step(g->qmp, NULL, "query-cpus-fast", NULL, -1, on_adopt_cpus, g);
	}
	const struct sv_profile *p = tune_prof(g);
	if (p && p->balloon)
		poll_start(g, t);
}

static void tune_event(struct sv_guest *g, const char *name, json_t *data)
{
	if (!strcmp(name, "BALLOON_CHANGE") && g->tune)
		g->tune->actual = (long long)json_integer_value(json_object_get(data, "actual"));
}

static void tune_qemu_gone(struct sv_guest *g)
{
	if (g->tune && g->tune->poll)
		uv_timer_stop(g->tune->poll);
	if (g->tune) {
		g->tune->actual = -1;
		g->tune->vcpus_pinned = g->tune->threads_pinned = 0;
	}
}

/* A stop for good: what set changed goes (the next start reads the profile
 * and the overlay again). */
static void tune_stopped(struct sv_guest *g)
{
	if (g->tune)
		g->tune->loaded = g->tune->live_set = false;
}

static json_t *limits_json(const uint64_t v[SV_IOTUNE_N])
{
	json_t *o = json_object();
	for (int i = 0; i < SV_IOTUNE_N; i++)
		if (v[i])
			json_object_set_new(o, sv_iotune_keys[i], json_integer((json_int_t)v[i]));
	return o;
}

static void tune_status(struct sv_guest *g, json_t *st)
{
	const struct sv_profile *p = tune_prof(g);
	struct sv_tune *t = g->tune;
	bool live = t && t->loaded && sv_guest_active(g);
	json_t *io = json_object();
	char list[256];
	if (!p)
		return;
	if (live) {
		for (size_t i = 0; i < t->ndisks; i++)
			if (sv_iotune_any(t->disks[i].v) && tune_disk_present(g, &t->disks[i]))
				json_object_set_new(io, t->disks[i].id, limits_json(t->disks[i].v));
	} else {
		for (size_t i = 0; i < p->ndrives; i++)
			if (sv_iotune_any(p->drives[i].iotune))
				json_object_set_new(io, p->drives[i].id, limits_json(p->drives[i].iotune));
	}
	json_object_set_new(st, "io_limits", io);
	if (live && t->cpu_on) {
		sv_cpulist_format(&t->cpu, list, sizeof(list));
		json_object_set_new(st, "cpu_affinity", json_string(list));
	} else if (!live && p->cpu_affinity) {
		json_object_set_new(st, "cpu_affinity", json_string(p->cpu_affinity));
	}
	if (live && t->emu_on) {
		sv_cpulist_format(&t->emu, list, sizeof(list));
		json_object_set_new(st, "emulator_affinity", json_string(list));
	} else if (!live && p->emulator_affinity) {
		json_object_set_new(st, "emulator_affinity", json_string(p->emulator_affinity));
	}
	if (live && (t->cpu_on || t->emu_on))
		json_object_set_new(st, "pinned", json_pack("{s:i, s:i, s:s?}", "vcpu-threads",
		                    t->vcpus_pinned, "other-threads", t->threads_pinned, "error",
		                    t->pin_error[0] ? t->pin_error : NULL));
	if (p->balloon)
		json_object_set_new(st, "balloon", balloon_json(p, live ? t : NULL));
}

static void tune_release(struct sv_guest *g)
{
	struct sv_tune *t = g->tune;
	if (!t)
		return;
	if (t->poll)
		sv_guest_close_free(g, (uv_handle_t *)t->poll);
	json_decref(t->stats);
	free(t->disks);
	free(t);
	g->tune = NULL;
}

const struct sv_guest_observer sv_tune_observer = {
	.name = "tune",
	.qmp_ready = tune_qmp_ready,
	.adopted = tune_adopted,
	.event = tune_event,
	.qemu_gone = tune_qemu_gone,
	.stopped = tune_stopped,
	.status = tune_status,
	.release = tune_release,
};

/* ---- hot-plug ---- */

void sv_tune_hotplugged(struct sv_guest *g, const char *kind, const char *id, json_t *spec,
                        bool replay)
{
	struct sv_tune *t = tune_of(g);
	struct tune_disk *d;
	if (!t || !g->qmp)
		return;
	if (!t->loaded)
		tune_load(g, t);
	if (!strcmp(kind, "cpu")) {
		repin(g);
		return;
	}
	if (strcmp(kind, "disk"))
		return;
	/* A replay keeps what set made of the disk's limits; a new attach
	 * takes its keys' (an old disk of the same id is gone). */
	if (!(d = tune_disk_find(t, id)) || !replay) {
		if (!(d = tune_disk_add(t, id)))
			return;
		memset(d->v, 0, sizeof(d->v));
		tune_disk_spec(d, spec);
	}
	if (sv_iotune_any(d->v)) {
		char what[96];
		if (!t->live_set) {
			t->live_set = true;
			sv_guest_persist(g);
		}
		snprintf(what, sizeof(what), "I/O limits of disk %s", d->id);
		step_logged(g, "block_set_io_throttle", tune_throttle_args(d, d->v), what);
	}
}
