/* Live resource control: see tune.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"
#include "hotplug.h"
#include "log.h"
#include "overlay.h"
#include "request.h"
#include "setkeys.h"
#include "step.h"
#include "tune.h"

#define TUNE_MAX_ITEMS 64                /* in one set */
#define TUNE_OVERLAY_LINES 1024          /* KEY = VALUE lines in set.ini */
#define TUNE_OVERLAY_MAX (64 * 1024)
#define BALLOON_POLL_MS 5000
#define BALLOON_STATS_S 5
#define BALLOON_PATH "/machine/peripheral/balloon.0"

struct tune_disk {
	char id[SV_ID_MAX + 1];
	uint64_t v[SV_IOTUNE_N];
	/* block_set_io_throttle's id: the device that holds the BlockBackend,
	 * a virtio-blk-pci's inner virtio-blk-device, else the device itself */
	char qdev[SV_ID_MAX + 48];
};

struct sv_tune {
	bool loaded;                    /* the values below are this run's */
	struct tune_disk *disks;        /* the profile's disks, then hot-plugged ones */
	size_t ndisks;
	bool cpu_on, emu_on;
	cpu_set_t cpu, emu;
	uint64_t target;                /* the balloon's target; 0: never set */
	uint64_t saved_target;          /* from state.json, for a re-adoption */
	/* QEMU may run with what the profile and set.ini do not say (a set, a
	 * hot-plugged disk's limits): a re-adopting qsupd reads it all back.
	 * Without, it asks QEMU only about what they configure. */
	bool live_set, saved_live;
	long long actual;               /* the balloon's actual; -1: not known */
	json_t *stats;                  /* the guest's memory statistics, or NULL */
	int vcpus_pinned, threads_pinned;
	char pin_error[256];
	uv_timer_t *poll;
	bool polling;
	bool busy;                      /* a set runs */
};

static const struct sv_profile *prof(const struct sv_guest *g)
{
	return g->run_profile ? g->run_profile : g->profile;
}

static struct sv_tune *tune_of(struct sv_guest *g)
{
	if (!g->tune && (g->tune = calloc(1, sizeof(*g->tune))))
		g->tune->actual = -1;
	return g->tune;
}

static struct tune_disk *disk_find(struct sv_tune *t, const char *id)
{
	for (size_t i = 0; i < t->ndisks; i++)
		if (!strcmp(t->disks[i].id, id))
			return &t->disks[i];
	return NULL;
}

static struct tune_disk *disk_add(struct sv_tune *t, const char *id)
{
	struct tune_disk *d = disk_find(t, id);
	if (d)
		return d;
	d = realloc(t->disks, (t->ndisks + 1) * sizeof(*d));
	if (!d)
		return NULL;
	t->disks = d;
	d = &t->disks[t->ndisks++];
	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "%s", id);
	snprintf(d->qdev, sizeof(d->qdev), "/machine/peripheral/%s/virtio-backend", id);
	return d;
}

/* The disk is on a SCSI, IDE or SATA bus: the device holds its backend. */
static void disk_not_virtio(struct tune_disk *d)
{
	snprintf(d->qdev, sizeof(d->qdev), "%s", d->id);
}

static void host_cpus(cpu_set_t *set)
{
	CPU_ZERO(set);
	if (sched_getaffinity(0, sizeof(*set), set) < 0)
		for (long i = 0, n = sysconf(_SC_NPROCESSORS_ONLN); i < n && i < CPU_SETSIZE; i++)
			CPU_SET(i, set);
}

/* ---- the overlay, NAME.d/set.ini ---- */

int sv_tune_overlay_path(const struct sv_profile *p, char *buf, size_t size)
{
	const char *slash = strrchr(p->path, '/');
	int n = slash ? snprintf(buf, size, "%.*s/%s.d/set.ini", (int)(slash - p->path), p->path,
	                         p->name)
	              : snprintf(buf, size, "%s.d/set.ini", p->name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static char *trim(char *s)
{
	char *e = s + strlen(s);
	while (*s == ' ' || *s == '\t')
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* The overlay's lines as "KEY=VALUE" strings (kv) and their line numbers;
 * a line that is not KEY = VALUE goes to errs. Returns 0 (a missing file
 * is empty), or -errno when it cannot be read. */
static int overlay_lines(const struct sv_profile *p, struct sv_strv *kv, int *lines,
                         struct sv_strv *errs)
{
	char path[4096], *buf = NULL, msg[4400];
	if (sv_tune_overlay_path(p, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 || !(buf = malloc(TUNE_OVERLAY_MAX + 1))) {
		int e = fd < 0 ? -errno : -ENOMEM;
		snprintf(msg, sizeof(msg), "%s: %s", path, strerror(-e));
		sv_strv_push(errs, msg);
		if (fd >= 0)
			close(fd);
		return e;
	}
	ssize_t n = read(fd, buf, TUNE_OVERLAY_MAX + 1);
	close(fd);
	if (n < 0 || n > TUNE_OVERLAY_MAX) {
		snprintf(msg, sizeof(msg), "%s: %s", path, n < 0 ? strerror(errno)
		         : "larger than 64 KiB");
		sv_strv_push(errs, msg);
		free(buf);
		return n < 0 ? -EIO : -EFBIG;
	}
	buf[n] = '\0';
	int lineno = 0;
	for (char *line = buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		char *s = trim(line), *eq;
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (!(eq = strchr(s, '=')) || kv->n >= TUNE_OVERLAY_LINES) {
			snprintf(msg, sizeof(msg), "%s:%d: %s", path, lineno, eq ? "too many lines"
			         : "not KEY = VALUE");
			sv_strv_push(errs, msg);
			continue;
		}
		*eq = '\0';
		char item[512];
		snprintf(item, sizeof(item), "%s=%s", trim(s), trim(eq + 1));
		lines[kv->n] = lineno;
		sv_strv_push(kv, item);
	}
	free(buf);
	return 0;
}

static void item_merge(struct sv_tune *t, const struct sv_set_item *it)
{
	struct tune_disk *d;
	switch (it->kind) {
	case SV_SET_IOTUNE:
		if ((d = disk_add(t, it->disk)))
			d->v[it->index] = it->n;
		break;
	case SV_SET_CPU:
		t->cpu_on = true;
		t->cpu = it->cpus;
		break;
	case SV_SET_EMULATOR:
		t->emu_on = true;
		t->emu = it->cpus;
		break;
	case SV_SET_BALLOON:
		t->target = it->n;
		break;
	}
}

/* Is disk d still there: the profile's, or hot-plugged and not detached
 * since? (g NULL: the profile and its overlays, all there.) */
static bool disk_present(struct sv_guest *g, const struct tune_disk *d)
{
	return !g || sv_profile_find_device(prof(g), d->id) >= 0 || sv_hotplug_tracks(g, d->id);
}

/* Check items against t's values (g: only the disks g has now); 0 or
 * -EINVAL with why. */
static int check_items(struct sv_guest *g, const struct sv_profile *p, struct sv_tune *t,
                       const struct sv_set_item *items, size_t n, char *why, size_t size)
{
	const char **ids = calloc(t->ndisks + 1, sizeof(*ids));
	uint64_t (*cur)[SV_IOTUNE_N] = calloc(t->ndisks + 1, sizeof(*cur));
	cpu_set_t host;
	int r;
	if (!ids || !cur) {
		free(ids);
		free(cur);
		snprintf(why, size, "out of memory");
		return -ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < t->ndisks; i++) {
		if (!disk_present(g, &t->disks[i]))
			continue;
		ids[k] = t->disks[i].id;
		memcpy(cur[k++], t->disks[i].v, sizeof(cur[0]));
	}
	host_cpus(&host);
	r = sv_set_check(p, items, n, ids, (const uint64_t (*)[SV_IOTUNE_N])cur, k, &host,
	                 why, size);
	free(ids);
	free(cur);
	return r;
}

/* t's values from profile p alone. */
static void base_load(struct sv_tune *t, const struct sv_profile *p)
{
	t->ndisks = 0;
	t->cpu_on = t->emu_on = false;
	t->target = 0;
	for (size_t i = 0; i < p->ndrives; i++) {
		struct tune_disk *d;
		if (!p->drives[i].cdrom && (d = disk_add(t, p->drives[i].id))) {
			memcpy(d->v, p->drives[i].iotune, sizeof(d->v));
			if (p->drives[i].bus != SV_BUS_VIRTIO)
				disk_not_virtio(d);
		}
	}
	char why[200];
	if (p->cpu_affinity && sv_cpulist_parse(p->cpu_affinity, &t->cpu, why, sizeof(why)) == 0)
		t->cpu_on = true;
	if (p->emulator_affinity &&
	    sv_cpulist_parse(p->emulator_affinity, &t->emu, why, sizeof(why)) == 0)
		t->emu_on = true;
}

/* Then the overlay's items over them, each checked as set checks it;
 * what fails goes to errs ("path:line: why"). Returns the number of
 * failures. */
static int overlay_load(struct sv_tune *t, const struct sv_profile *p, struct sv_strv *errs)
{
	struct sv_strv kv = { 0 };
	int lines[TUNE_OVERLAY_LINES], bad = 0;
	char path[4096], why[400], msg[4600];
	size_t before = errs->n;
	overlay_lines(p, &kv, lines, errs);
	bad += (int)(errs->n - before);
	sv_tune_overlay_path(p, path, sizeof(path));
	for (size_t i = 0; i < kv.n; i++) {
		struct sv_set_item it;
		if (sv_set_parse(kv.v[i], &it, why, sizeof(why)) < 0 ||
		    check_items(NULL, p, t, &it, 1, why, sizeof(why)) < 0) {
			snprintf(msg, sizeof(msg), "%s:%d: %s", path, lines[i], why);
			sv_strv_push(errs, msg);
			bad++;
			continue;
		}
		item_merge(t, &it);
	}
	sv_strv_free(&kv);
	return bad;
}

static void hp_overlay_disks(struct sv_tune *t, const struct sv_profile *p);

static void tune_load(struct sv_guest *g, struct sv_tune *t)
{
	struct sv_strv errs = { 0 };
	const struct sv_profile *p = prof(g);
	if (!p)
		return;
	base_load(t, p);
	hp_overlay_disks(t, p);
	overlay_load(t, p, &errs);
	for (size_t i = 0; i < errs.n; i++)
		sv_log(SV_LOG_WARN, g->name, "set overlay: %s (left out)", errs.v[i]);
	sv_strv_free(&errs);
	t->loaded = true;
}

/* The disks of p's hot-plug overlay (attach --persist), with their attach
 * keys' limits: a start re-adds them, and set.ini may name them. */
static void hp_overlay_disks(struct sv_tune *t, const struct sv_profile *p)
{
	json_t *specs = NULL, *s;
	char *hperrs = NULL;
	size_t i;
	if (sv_overlay_read(p, &specs, &hperrs) >= -1)
		json_array_foreach(specs, i, s) {
			struct tune_disk *d;
			const char *key;
			json_t *v;
			if (strcmp(sv_jstr(s, "kind", ""), "disk") ||
			    !(d = disk_add(t, sv_jstr(s, "id", ""))))
				continue;
			if (!strcmp(sv_jstr(s, "bus", "virtio"), "scsi"))
				disk_not_virtio(d);
			json_object_foreach(s, key, v) {
				char why[200];
				int k = sv_iotune_index(key);
				if (k >= 0 && json_is_string(v))
					sv_iotune_parse(k, json_string_value(v), &d->v[k], why, sizeof(why));
			}
		}
	json_decref(specs);
	free(hperrs);
}

int sv_tune_check_overlay(const struct sv_profile *p, struct sv_strv *errs)
{
	struct sv_tune t = { 0 };
	base_load(&t, p);
	hp_overlay_disks(&t, p);
	int bad = overlay_load(&t, p, errs);
	free(t.disks);
	return bad ? -EINVAL : 0;
}

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

static json_t *throttle_args(const struct tune_disk *d, const uint64_t v[SV_IOTUNE_N])
{
	json_t *a = json_pack("{s:s}", "id", d->qdev);
	for (int i = 0; a && i < SV_IOTUNE_N; i++)
		if (i < 6 || v[i])   /* the six limits are mandatory; 0: none */
			json_object_set_new(a, sv_iotune_qmp[i], json_integer((json_int_t)v[i]));
	return a;
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
		host_cpus(&vset);
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
		struct dirent *e;
		while (d && (e = readdir(d))) {
			pid_t tid = (pid_t)atoi(e->d_name);
			bool vcpu = false;
			for (i = 0; i < n; i++)
				vcpu |= tids[i] == tid;
			if (tid <= 0 || vcpu)
				continue;
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

static void pin_now(struct sv_guest *g, void (*done)(void *arg, int rc, const char *why),
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
	pin_now(g, pin_logged, g);
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
	return sv_guest_has_balloon(g) && g->tune ? balloon_json(prof(g), g->tune) : NULL;
}

bool sv_guest_has_balloon(const struct sv_guest *g)
{
	const struct sv_profile *p = prof(g);
	return p && p->balloon && sv_guest_active(g) && !g->adopting;
}

/* ---- the observer ---- */

static void apply_all(struct sv_guest *g, struct sv_tune *t, bool hot_too)
{
	const struct sv_profile *p = prof(g);
	char what[96];
	for (size_t i = 0; i < t->ndisks; i++) {
		const struct tune_disk *d = &t->disks[i];
		bool hot = sv_profile_find_device(p, d->id) < 0;
		if (!sv_iotune_any(d->v) || (hot && !hot_too))
			continue;
		snprintf(what, sizeof(what), "I/O limits of disk %s", d->id);
		step_logged(g, "block_set_io_throttle", throttle_args(d, d->v), what);
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
		if (!sv_device_id_valid(id) || !(d = disk_add(t, id)))
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
	host_cpus(&host);
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
	struct dirent *e;
	while (d && (e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);
		bool vcpu = false;
		for (i = 0; i < n; i++)
			vcpu |= tids[i] == tid;
		threads += tid > 0 && !vcpu && sched_getaffinity(tid, sizeof(set), &set) == 0 &&
		           CPU_EQUAL(&set, &t->emu);
	}
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
	const struct sv_profile *p = prof(g);
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
	const struct sv_profile *p = prof(g);
	struct sv_tune *t = g->tune;
	bool live = t && t->loaded && sv_guest_active(g);
	json_t *io = json_object();
	char list[256];
	if (!p)
		return;
	if (live) {
		for (size_t i = 0; i < t->ndisks; i++)
			if (sv_iotune_any(t->disks[i].v) && disk_present(g, &t->disks[i]))
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
	if (!(d = disk_find(t, id)) || !replay) {
		if (!(d = disk_add(t, id)))
			return;
		memset(d->v, 0, sizeof(d->v));
		if (!strcmp(sv_jstr(spec, "bus", "virtio"), "scsi"))
			disk_not_virtio(d);
		const char *key;
		json_t *v;
		json_object_foreach(spec, key, v) {
			char why[200];
			int k = sv_iotune_index(key);
			if (k >= 0 && json_is_string(v))
				sv_iotune_parse(k, json_string_value(v), &d->v[k], why, sizeof(why));
		}
	}
	if (sv_iotune_any(d->v)) {
		char what[96];
		if (!t->live_set) {
			t->live_set = true;
			sv_guest_persist(g);
		}
		snprintf(what, sizeof(what), "I/O limits of disk %s", d->id);
		step_logged(g, "block_set_io_throttle", throttle_args(d, d->v), what);
	}
}

/* ---- the set verb ---- */

struct set_op {
	struct sv_guest *g;
	struct sv_request *req;
	struct sv_set_item *items;
	size_t n, next;
	bool *applied;
	json_t *done;                   /* the items applied, "KEY=VALUE" */
	bool persist, live;
	cpu_set_t old;                  /* a pinning's previous set */
	bool old_on;
	uint64_t merged[SV_IOTUNE_N];   /* a disk's limits being applied */
};

static void set_end(struct set_op *op)
{
	if (op->g->tune)
		op->g->tune->busy = false;
	sv_guest_unhold(op->g);
	json_decref(op->done);
	free(op->applied);
	free(op->items);
	free(op);
}

static void mark_applied(struct set_op *op, size_t i)
{
	char kv[300];
	op->applied[i] = true;
	if (op->g->tune && !op->g->tune->live_set) {
		op->g->tune->live_set = true;
		sv_guest_persist(op->g);
	}
	snprintf(kv, sizeof(kv), "%s=%s", op->items[i].key, op->items[i].value);
	json_array_append_new(op->done, json_string(kv));
}

static void set_fail(struct set_op *op, const char *key, const char *why)
{
	char applied[1024] = "", rest[1024] = "";
	for (size_t i = 0; i < op->n; i++) {
		char *b = op->applied[i] ? applied : rest;
		size_t o = strlen(b);
		snprintf(b + o, 1024 - o, "%s%s", o ? ", " : "", op->items[i].key);
	}
	sv_reply_err(op->req, "GenericError", "%s: set %s: %s; %s%s%s%s", op->g->name, key, why,
	             applied[0] ? "applied before it (in force now): " : "nothing was applied",
	             applied, rest[0] ? "; not applied: " : "", rest);
	sv_log(SV_LOG_WARN, op->g->name, "set %s: %s", key, why);
	set_end(op);
}

static void set_next(struct set_op *op);

static void on_written(int err, void *arg)
{
	struct set_op *op = arg;
	char path[4096];
	sv_tune_overlay_path(prof(op->g), path, sizeof(path));
	if (err) {
		sv_reply_err(op->req, "GenericError", "%s: %s%s: %s", op->g->name,
		             op->live ? "set live, but not recorded in " : "cannot write ", path,
		             strerror(err));
	} else {
		sv_log(SV_LOG_INFO, op->g->name, "set --persist: recorded in %s", path);
		sv_reply_ok(op->req, json_pack("{s:O, s:b, s:b}", "applied", op->done, "live",
		            op->live, "persisted", true));
	}
	set_end(op);
}

/* --persist: the overlay's lines, each key's last value winning, then the
 * new items; written atomically off the loop. */
static void set_persist(struct set_op *op)
{
	const struct sv_profile *p = op->g->profile ? op->g->profile : prof(op->g);
	struct sv_strv kv = { 0 }, errs = { 0 };
	int lines[TUNE_OVERLAY_LINES];
	char path[4096];
	size_t len = 0, cap = 256;
	char *text = malloc(cap);
	if (sv_tune_overlay_path(p, path, sizeof(path)) < 0 || !text ||
	    overlay_lines(p, &kv, lines, &errs) < 0) {
		sv_reply_err(op->req, "GenericError", "%s: cannot read its set overlay: %s",
		             op->g->name, errs.n ? errs.v[0] : "out of memory");
		free(text);
		sv_strv_free(&kv);
		sv_strv_free(&errs);
		set_end(op);
		return;
	}
	for (size_t i = 0; i < op->n; i++) {
		char line[300];
		snprintf(line, sizeof(line), "%s=%s", op->items[i].key, op->items[i].value);
		sv_strv_push(&kv, line);
	}
	len = (size_t)snprintf(text, cap, "# qsupctl set --persist: applied at each start over "
	                       "the profile (qsup.ini(5))\n");
	for (size_t i = 0; i < kv.n; i++) {
		size_t klen = strcspn(kv.v[i], "=");
		bool later = false;
		for (size_t j = i + 1; j < kv.n && !later; j++)
			later = strcspn(kv.v[j], "=") == klen && !strncmp(kv.v[i], kv.v[j], klen);
		if (later)
			continue;
		size_t need = len + strlen(kv.v[i]) + 4;
		if (need >= cap) {
			char *grown = realloc(text, need * 2);
			if (!grown)
				break;
			text = grown;
			cap = need * 2;
		}
		len += (size_t)snprintf(text + len, cap - len, "%.*s = %s\n", (int)klen, kv.v[i],
		                        kv.v[i] + klen + 1);
	}
	sv_strv_free(&kv);
	sv_strv_free(&errs);
	if (sv_overlay_write_async(op->g->env->loop, path, text, on_written, op) < 0) {
		sv_reply_err(op->req, "GenericError", "%s: cannot write %s", op->g->name, path);
		set_end(op);
	}
}

static void set_finish(struct set_op *op)
{
	if (op->persist) {
		set_persist(op);
		return;
	}
	sv_log(SV_LOG_INFO, op->g->name, "set: %zu item(s) applied live", op->n);
	sv_reply_ok(op->req, json_pack("{s:O, s:b, s:b}", "applied", op->done, "live", op->live,
	            "persisted", false));
	set_end(op);
}

static const char *qmp_why(const struct qmp_result *r)
{
	return r->err_desc ? r->err_desc : qmp_strerror(r->status);
}

static void on_set_disk(void *ctx, const struct qmp_result *r)
{
	struct set_op *op = ctx;
	const struct sv_set_item *it = &op->items[op->next];
	struct tune_disk *d = op->g->tune ? disk_find(op->g->tune, it->disk) : NULL;
	if (r->status != 0 || !d) {
		set_fail(op, it->key, r->status ? qmp_why(r) : "the disk is gone");
		return;
	}
	memcpy(d->v, op->merged, sizeof(d->v));
	for (size_t j = op->next; j < op->n; j++)
		if (op->items[j].kind == SV_SET_IOTUNE && !strcmp(op->items[j].disk, it->disk))
			mark_applied(op, j);
	set_next(op);
}

static void on_set_pinned(void *arg, int rc, const char *why)
{
	struct set_op *op = arg;
	struct sv_tune *t = op->g->tune;
	const struct sv_set_item *it = &op->items[op->next];
	if (rc < 0) {
		if (t && it->kind == SV_SET_CPU)
			t->cpu = op->old, t->cpu_on = op->old_on;
		else if (t)
			t->emu = op->old, t->emu_on = op->old_on;
		set_fail(op, it->key, why);
		return;
	}
	mark_applied(op, op->next);
	set_next(op);
}

static void on_set_balloon(void *ctx, const struct qmp_result *r)
{
	struct set_op *op = ctx;
	const struct sv_set_item *it = &op->items[op->next];
	if (r->status != 0) {
		set_fail(op, it->key, qmp_why(r));
		return;
	}
	if (op->g->tune)
		op->g->tune->target = it->n;
	sv_guest_persist(op->g);   /* state.json keeps it for a re-adopting qsupd */
	mark_applied(op, op->next);
	set_next(op);
}

static void set_next(struct set_op *op)
{
	struct sv_guest *g = op->g;
	struct sv_tune *t = g->tune;
	while (op->next < op->n && op->applied[op->next])
		op->next++;
	if (op->next >= op->n || !op->live) {
		set_finish(op);
		return;
	}
	const struct sv_set_item *it = &op->items[op->next];
	if (!t || !g->qmp || !sv_guest_active(g)) {
		set_fail(op, it->key, "QEMU is gone");
		return;
	}
	switch (it->kind) {
	case SV_SET_IOTUNE: {
		struct tune_disk *d = disk_find(t, it->disk);
		if (!d) {
			set_fail(op, it->key, "the disk is gone");
			return;
		}
		memcpy(op->merged, d->v, sizeof(op->merged));
		for (size_t j = op->next; j < op->n; j++)
			if (op->items[j].kind == SV_SET_IOTUNE && !strcmp(op->items[j].disk, it->disk))
				op->merged[op->items[j].index] = op->items[j].n;
		sv_step(g->qmp, NULL, "block_set_io_throttle", throttle_args(d, op->merged),
		        -1, on_set_disk, op);
		return;
	}
	case SV_SET_CPU:
	case SV_SET_EMULATOR:
		op->old = it->kind == SV_SET_CPU ? t->cpu : t->emu;
		op->old_on = it->kind == SV_SET_CPU ? t->cpu_on : t->emu_on;
		item_merge(t, it);
		pin_now(g, on_set_pinned, op);
		return;
	case SV_SET_BALLOON:
		sv_step(g->qmp, NULL, "balloon", json_pack("{s:I}", "value", (json_int_t)it->n), -1,
		        on_set_balloon, op);
		return;
	}
}

void sv_tune_set_verb(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	json_t *list = json_object_get(args, "set"), *v;
	bool persist = json_is_true(json_object_get(args, "persist"));
	size_t n = json_array_size(list), i;
	char why[600];
	if (!json_is_array(list) || n == 0 || n > TUNE_MAX_ITEMS) {
		sv_reply_err(req, "InvalidArgument", "set needs {\"name\", \"set\": [\"KEY=VALUE\", "
		             "...] (1 to %d), \"persist\": bool}", TUNE_MAX_ITEMS);
		return;
	}
	struct sv_set_item *items = calloc(n, sizeof(*items));
	if (!items) {
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	json_array_foreach(list, i, v) {
		if (!json_is_string(v) || sv_set_parse(json_string_value(v), &items[i], why,
		                                       sizeof(why)) < 0) {
			sv_reply_err(req, "InvalidArgument", "%s: %s; nothing was applied", g->name,
			             json_is_string(v) ? why : "each item is a \"KEY=VALUE\" string");
			free(items);
			return;
		}
	}
	bool up = g->state == SV_RUNNING || g->state == SV_PAUSED;
	struct sv_tune *t = tune_of(g);
	if (!t) {
		free(items);
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	if (!up && (sv_guest_active(g) || g->prepping)) {
		free(items);
		sv_reply_err(req, "Busy", "%s is %s: set it once it runs, or once it has stopped "
		             "(with --persist)", g->name, sv_state_name(g->state));
		return;
	}
	if (!up && !persist) {
		free(items);
		sv_reply_err(req, "InvalidState", "%s is %s: set changes a running guest; give "
		             "--persist to record it for its next start", g->name,
		             sv_state_name(g->state));
		return;
	}
	if (t->busy) {
		free(items);
		sv_reply_err(req, "Busy", "%s: another set is being applied", g->name);
		return;
	}
	if (up && !t->loaded)
		tune_load(g, t);
	/* Live: against what runs. --persist: also against the profile and
	 * its overlay, as the next start will see them. */
	int r = up ? check_items(g, prof(g), t, items, n, why, sizeof(why)) : 0;
	if (r == 0 && persist && g->profile) {
		struct sv_tune base = { 0 };
		struct sv_strv errs = { 0 };
		base_load(&base, g->profile);
		hp_overlay_disks(&base, g->profile);
		overlay_load(&base, g->profile, &errs);
		if (up)   /* hot-plugged disks may be set, with --persist too */
			for (size_t k = 0; k < t->ndisks; k++)
				if (!disk_find(&base, t->disks[k].id) && disk_present(g, &t->disks[k]))
					disk_add(&base, t->disks[k].id);
		r = check_items(NULL, g->profile, &base, items, n, why, sizeof(why));
		sv_strv_free(&errs);
		free(base.disks);
	} else if (r == 0 && persist) {
		snprintf(why, sizeof(why), "its profile is gone");
		r = -EINVAL;
	}
	if (r < 0) {
		free(items);
		sv_reply_err(req, "InvalidArgument", "%s: %s; nothing was applied", g->name, why);
		return;
	}
	struct set_op *op = calloc(1, sizeof(*op));
	if (!op || !(op->applied = calloc(n, sizeof(bool))) || !(op->done = json_array())) {
		if (op)
			free(op->applied);
		free(op);
		free(items);
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	op->g = g;
	op->req = req;
	op->items = items;
	op->n = n;
	op->persist = persist;
	op->live = up;
	t->busy = true;
	sv_guest_hold(g);
	if (!up)
		for (i = 0; i < n; i++)
			mark_applied(op, i);
	set_next(op);
}
