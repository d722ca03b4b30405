/*
 * Tune's values (tune_int.h): the profile's, the disks of its hot-plug
 * overlay, and the overlay NAME.d/set.ini over them, read and checked as
 * set checks its items.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "hotplug.h"
#include "overlay.h"
#include "tune_int.h"

#define TUNE_OVERLAY_MAX (64 * 1024)


struct sv_tune *tune_of(struct sv_guest *g)
{
	if (!g->tune && (g->tune = calloc(1, sizeof(*g->tune))))
		g->tune->actual = -1;
	return g->tune;
}

struct tune_disk *tune_disk_find(struct sv_tune *t, const char *id)
{
	for (size_t i = 0; i < t->ndisks; i++)
		if (!strcmp(t->disks[i].id, id))
			return &t->disks[i];
	return NULL;
}

struct tune_disk *tune_disk_add(struct sv_tune *t, const char *id)
{
	struct tune_disk *d = tune_disk_find(t, id);
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
void tune_disk_not_virtio(struct tune_disk *d)
{
	snprintf(d->qdev, sizeof(d->qdev), "%s", d->id);
}

/* A hot-plugged disk's bus and limits from its attach spec: its limits are
 * the attach keys' (checked as attach checks them), a value that does not
 * parse leaves its limit alone. */
void tune_disk_spec(struct tune_disk *d, json_t *spec)
{
	const char *key;
	json_t *v;
	if (!strcmp(sv_jstr(spec, "bus", "virtio"), "scsi"))
		tune_disk_not_virtio(d);
	json_object_foreach(spec, key, v) {
		char why[200];
		int k = sv_iotune_index(key);
		if (k >= 0 && json_is_string(v))
			sv_iotune_parse(k, json_string_value(v), &d->v[k], why, sizeof(why));
	}
}

void tune_host_cpus(cpu_set_t *set)
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
int tune_overlay_lines(const struct sv_profile *p, struct sv_strv *kv, int *lines,
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

void tune_item_merge(struct sv_tune *t, const struct sv_set_item *it)
{
	struct tune_disk *d;
	switch (it->kind) {
	case SV_SET_IOTUNE:
		if ((d = tune_disk_add(t, it->disk)))
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
bool tune_disk_present(struct sv_guest *g, const struct tune_disk *d)
{
	return !g || sv_profile_find_device(tune_prof(g), d->id) >= 0 || sv_hotplug_tracks(g, d->id);
}

/* Check items against t's values (g: only the disks g has now); 0 or
 * -EINVAL with why. */
int tune_check_items(struct sv_guest *g, const struct sv_profile *p, struct sv_tune *t,
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
		if (!tune_disk_present(g, &t->disks[i]))
			continue;
		ids[k] = t->disks[i].id;
		memcpy(cur[k++], t->disks[i].v, sizeof(cur[0]));
	}
	tune_host_cpus(&host);
	r = sv_set_check(p, items, n, ids, (const uint64_t (*)[SV_IOTUNE_N])cur, k, &host,
	                 why, size);
	free(ids);
	free(cur);
	return r;
}

/* t's values from profile p alone. */
void tune_base_load(struct sv_tune *t, const struct sv_profile *p)
{
	t->ndisks = 0;
	t->cpu_on = t->emu_on = false;
	t->target = 0;
	for (size_t i = 0; i < p->ndrives; i++) {
		struct tune_disk *d;
		if (!p->drives[i].cdrom && (d = tune_disk_add(t, p->drives[i].id))) {
			memcpy(d->v, p->drives[i].iotune, sizeof(d->v));
			if (p->drives[i].bus != SV_BUS_VIRTIO)
				tune_disk_not_virtio(d);
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
int tune_overlay_load(struct sv_tune *t, const struct sv_profile *p, struct sv_strv *errs)
{
	struct sv_strv kv = { 0 };
	int lines[TUNE_OVERLAY_LINES], bad = 0;
	char path[4096], why[400], msg[4600];
	size_t before = errs->n;
	tune_overlay_lines(p, &kv, lines, errs);
	bad += (int)(errs->n - before);
	sv_tune_overlay_path(p, path, sizeof(path));
	for (size_t i = 0; i < kv.n; i++) {
		struct sv_set_item it;
		if (sv_set_parse(kv.v[i], &it, why, sizeof(why)) < 0 ||
		    tune_check_items(NULL, p, t, &it, 1, why, sizeof(why)) < 0) {
			snprintf(msg, sizeof(msg), "%s:%d: %s", path, lines[i], why);
			sv_strv_push(errs, msg);
			bad++;
			continue;
		}
		tune_item_merge(t, &it);
	}
	sv_strv_free(&kv);
	return bad;
}


void tune_load(struct sv_guest *g, struct sv_tune *t)
{
	struct sv_strv errs = { 0 };
	const struct sv_profile *p = tune_prof(g);
	if (!p)
		return;
	tune_base_load(t, p);
	tune_hp_overlay_disks(t, p);
	tune_overlay_load(t, p, &errs);
	for (size_t i = 0; i < errs.n; i++)
		sv_log(SV_LOG_WARN, g->name, "set overlay: %s (left out)", errs.v[i]);
	sv_strv_free(&errs);
	t->loaded = true;
}

/* The disks of p's hot-plug overlay (attach --persist), with their attach
 * keys' limits: a start re-adds them, and set.ini may name them. */
void tune_hp_overlay_disks(struct sv_tune *t, const struct sv_profile *p)
{
	json_t *specs = NULL, *s;
	char *hperrs = NULL;
	size_t i;
	if (sv_overlay_read(p, &specs, &hperrs) >= -1)
		json_array_foreach(specs, i, s) {
			struct tune_disk *d;
			if (!strcmp(sv_jstr(s, "kind", ""), "disk") &&
			    (d = tune_disk_add(t, sv_jstr(s, "id", ""))))
				tune_disk_spec(d, s);
		}
	json_decref(specs);
	free(hperrs);
}

int sv_tune_check_overlay(const struct sv_profile *p, struct sv_strv *errs)
{
	struct sv_tune t = { 0 };
	tune_base_load(&t, p);
	tune_hp_overlay_disks(&t, p);
	int bad = tune_overlay_load(&t, p, errs);
	free(t.disks);
	return bad ? -EINVAL : 0;
}
