/* Hot-plug: the checks of a device spec (hotplug_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "request.h"
#include "hotplug_int.h"
#include "setkeys.h"

/* ---- checks shared by the attach verb and the overlay ---- */

static const char *const disk_keys[] = { "file", "format", "read-only", "serial", "cache", "bus",
	"bps-total", "bps-read", "bps-write", "iops-total", "iops-read", "iops-write",
	"bps-total-max", "bps-read-max", "bps-write-max",
	"iops-total-max", "iops-read-max", "iops-write-max",
	"bps-total-max-length", "bps-read-max-length", "bps-write-max-length",
	"iops-total-max-length", "iops-read-max-length", "iops-write-max-length", NULL };
static const char *const nic_keys[] = { "type", "ifname", "bridge", "network", "mac", "model",
	                                NULL };
static const char *const cpu_keys[] = { "count", NULL };
static const char *const mem_keys[] = { "size", NULL };
static const char *const *const kind_keys[] = { disk_keys, nic_keys, cpu_keys, mem_keys };

static bool in_list(const char *const *list, const char *s)
{
	for (; s && *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

#define CHECK_FAIL(cls, ...) return sv_error_setc(err, -EINVAL, cls, __VA_ARGS__)

uint64_t hp_spec_size(json_t *spec)
{
	json_t *v = json_object_get(spec, "size");
	uint64_t b = 0;
	if (json_is_integer(v) && json_integer_value(v) > 0)
		b = (uint64_t)json_integer_value(v);
	else if (json_is_string(v) && sv_size_parse(json_string_value(v), &b) < 0)
		b = 0;
	return b;
}

/* How many of the profile's drives are on its SCSI controller (they take
 * SCSI ids 0 .. n-1). */
unsigned hp_scsi_drives(const struct sv_profile *p)
{
	unsigned n = 0;
	for (size_t i = 0; i < p->ndrives; i++)
		n += p->drives[i].bus == SV_BUS_SCSI;
	return n;
}

/* A vCPU id: "vcpuN"; returns N, or -1. */
static long vcpu_index(const char *id)
{
	char *end;
	if (!id || strncmp(id, "vcpu", 4) != 0 || id[4] < '0' || id[4] > '9')
		return -1;
	long n = strtol(id + 4, &end, 10);
	return *end || n > 4096 ? -1 : n;
}

/* Unknown keys, the id, and the profile's own devices. */
static int check_common(const struct sv_profile *p, json_t *spec, int kind,
                        struct sv_error *err)
{
	const char *kname = hp_kind_names[kind];
	const char *key;
	json_t *v;
	json_object_foreach(spec, key, v) {
		if (!strcmp(key, "name") || !strcmp(key, "kind") || !strcmp(key, "id") ||
		    in_list(kind_keys[kind], key))
			continue;
		if (!strcmp(key, "persist") && json_is_boolean(v))
			continue;
		char allowed[192] = "";
		for (const char *const *k = kind_keys[kind]; *k; k++)
			snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed),
			         "%s%s", k == kind_keys[kind] ? "" : ", ", strcmp(*k, "bps-total") ? *k
			         : "the I/O limits (bps-*, iops-*: qsup.ini(5))");
		char *lim = strstr(allowed, " (bps-*, iops-*: qsup.ini(5))");
		if (lim)
			lim[strlen(" (bps-*, iops-*: qsup.ini(5))")] = '\0';
		CHECK_FAIL("InvalidArgument", "%.40s: not a key for a %s (allowed: id, %s, persist)",
		           key, kname, allowed);
	}
	json_t *idj = json_object_get(spec, "id");
	const char *id = json_string_value(idj);
	if (idj && (!id || !sv_device_id_valid(id)))
		CHECK_FAIL("InvalidArgument", "id: 1 to 20 letters, digits, '_' or '-', starting "
		           "with a letter");
	if (!idj && kind != DEV_CPU && kind != DEV_MEM)
		CHECK_FAIL("InvalidArgument", "a %s needs an id", kname);
	if (id && sv_profile_find_device(p, id) >= 0)
		CHECK_FAIL("InvalidArgument", "%s is already a device of this guest (its profile)",
		           id);
	return 0;
}

/* The file a disk spec names must be a clean path, and (files) there,
 * readable (and writable unless read-only) by qsupd. An attach leaves the
 * second to its open on the thread pool: a path on a mount that hangs
 * never holds the loop. */
static int check_disk_file(const struct sv_profile *p, json_t *spec, bool files,
                           struct sv_error *err)
{
	const char *file = json_string_value(json_object_get(spec, "file"));
	const char *why;
	char *path = NULL;
	if (!sv_text_clean(file) || sv_path_resolve(p->dir, file, &path, &why) < 0) {
		sv_error_setc(err, -EINVAL, "InvalidArgument", "file: %s",
		              path ? why : "not a usable path");
		free(path);
		return -EINVAL;
	}
	bool ro = json_is_true(json_object_get(spec, "read-only"));
	if (files && access(path, ro ? R_OK : R_OK | W_OK) < 0) {
		int e = -errno;
		sv_error_setc(err, e, "NotFound", "%s: %s", path, strerror(-e));
		free(path);
		return e;
	}
	free(path);
	return 0;
}

/* The spec's value as an INI file would hold it: a string as it is, a
 * boolean yes or no; NULL for anything else. */
static const char *ini_value(json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : json_is_true(v) ? "yes"
	     : json_is_false(v) ? "no" : NULL;
}

/* Every device key of spec through the profile's own table for section
 * (profile.h): one definition of a disk's and a NIC's keys and values. */
static int check_by_profile(json_t *spec, const char *section, struct sv_error *err)
{
	const char *key, *v;
	json_t *jv;
	json_object_foreach(spec, key, jv) {
		if (!strcmp(key, "name") || !strcmp(key, "kind") || !strcmp(key, "id") ||
		    !strcmp(key, "persist"))
			continue;
		if (!(v = ini_value(jv)))
			CHECK_FAIL("InvalidArgument", "%.40s: give a string, or true or false", key);
		int rc = sv_profile_device_key(section, key, v, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Then what hot-plug itself needs of a disk: file and format, a boolean
 * read-only, a bus it can plug into. */
static int check_disk(const struct sv_profile *p, json_t *spec, bool files,
                      struct sv_error *err)
{
	const char *bus = json_string_value(json_object_get(spec, "bus"));
	json_t *v;
	int rc = check_by_profile(spec, "disk", err);
	if (rc < 0)
		return rc;
	if (!json_object_get(spec, "file") || !json_object_get(spec, "format"))
		CHECK_FAIL("InvalidArgument", "a disk needs \"file\" and \"format\" (the "
		           "format is never probed)");
	if ((v = json_object_get(spec, "read-only")) && !json_is_boolean(v))
		CHECK_FAIL("InvalidArgument", "read-only: use on or off");
	if (bus && strcmp(bus, "virtio") && strcmp(bus, "scsi"))
		CHECK_FAIL("InvalidArgument", "bus: use virtio or scsi (a hot-plugged disk)");
	uint64_t lim[SV_IOTUNE_N] = { 0 };
	char why[200];
	for (int i = 0; i < SV_IOTUNE_N; i++) {
		const char *lv = json_string_value(json_object_get(spec, sv_iotune_keys[i]));
		if (lv && sv_iotune_parse(i, lv, &lim[i], why, sizeof(why)) < 0)
			CHECK_FAIL("InvalidArgument", "%s: %s", sv_iotune_keys[i], why);
	}
	if (sv_iotune_check(lim, why, sizeof(why)) < 0)
		CHECK_FAIL("InvalidArgument", "%s", why);
	if (bus && !strcmp(bus, "scsi") && !hp_scsi_drives(p))
		CHECK_FAIL("InvalidArgument", "bus=scsi needs the profile's SCSI controller: "
		           "the profile has no disk or CD-ROM with bus = scsi");
	return check_disk_file(p, spec, files, err);
}

/* Then what hot-plug itself needs of a NIC: a PCIe model, and the name its
 * type needs (ifname for a tap, bridge for a bridge), not the other. */
static int check_nic(json_t *spec, struct sv_error *err)
{
	const char *type = sv_or(json_string_value(json_object_get(spec, "type")), "user");
	const char *model = json_string_value(json_object_get(spec, "model"));
	int rc = check_by_profile(spec, "nic", err);
	if (rc < 0)
		return rc;
	if (model && strcmp(model, "virtio") && strcmp(model, "e1000e"))
		CHECK_FAIL("InvalidArgument", "model: use virtio or e1000e (PCIe devices)");
	bool ifname = json_object_get(spec, "ifname"), bridge = json_object_get(spec, "bridge");
	bool network = json_object_get(spec, "network");
	if (!strcmp(type, "user") && (ifname || bridge || network))
		CHECK_FAIL("InvalidArgument", "a user NIC takes no ifname (tap), bridge or "
		           "network");
	if (!strcmp(type, "tap") && (!ifname || bridge || network))
		CHECK_FAIL("InvalidArgument", "a tap NIC needs ifname=NAME (or tap=NAME), and "
		           "no bridge or network");
	if (!strcmp(type, "bridge") && (!bridge || ifname || network))
		CHECK_FAIL("InvalidArgument", "a bridge NIC needs bridge=NAME, and no ifname or "
		           "network");
	if (!strcmp(type, "network") && (!network || ifname || bridge))
		CHECK_FAIL("InvalidArgument", "a network NIC needs network=NAME (a managed "
		           "network), and no ifname or bridge");
	return 0;
}

static int check_cpu(const struct sv_profile *p, json_t *spec, struct sv_error *err)
{
	const char *id = json_string_value(json_object_get(spec, "id"));
	json_t *count = json_object_get(spec, "count");
	long n;
	if (p->max_cpus <= p->cpus)
		CHECK_FAIL("InvalidState", "the profile leaves no room for more vCPUs (set "
		           "max-cpus above cpus in [guest])");
	if (count && (!json_is_integer(count) || json_integer_value(count) < 1 ||
	              json_integer_value(count) > 1024))
		CHECK_FAIL("InvalidArgument", "count must be a number from 1 to 1024");
	if (id && count && json_integer_value(count) != 1)
		CHECK_FAIL("InvalidArgument", "give either id or count");
	if (id && ((n = vcpu_index(id)) < (long)p->cpus || n >= (long)p->max_cpus))
		CHECK_FAIL("InvalidArgument", "a hot-plugged vCPU is vcpuN, N from %u (cpus) "
		           "to %u (max-cpus - 1)", p->cpus, p->max_cpus - 1);
	return 0;
}

static int check_mem(const struct sv_profile *p, json_t *spec, struct sv_error *err)
{
	uint64_t bytes;
	if (!p->max_memory)
		CHECK_FAIL("InvalidState", "the profile leaves no room for more memory (set "
		           "max-memory and slots in [guest])");
	if (!(bytes = hp_spec_size(spec)))
		CHECK_FAIL("InvalidArgument", "memory needs \"size\": a size such as 256M or "
		           "1G (a plain number is in bytes)");
	if (bytes % (2u << 20))
		CHECK_FAIL("InvalidArgument", "size must be a multiple of 2 MiB (Linux guests "
		           "use memory in 128 MiB blocks)");
	if (bytes > p->max_memory - p->memory)
		CHECK_FAIL("InvalidState", "size: more than max-memory leaves (%llu MiB)",
		           (unsigned long long)((p->max_memory - p->memory) >> 20));
	return 0;
}

int hp_check(const struct sv_profile *p, json_t *spec, bool files, struct sv_error *err)
{
	int kind = hp_kind_parse(json_string_value(json_object_get(spec, "kind")));
	if (kind < 0)
		CHECK_FAIL("InvalidArgument", "kind must be disk, nic, cpu or memory");
	/* The profile's spellings; readonly and tap are their old aliases. */
	static const char *const alias[][3] = {
		{ "disk", "readonly", "read-only" }, { "nic", "tap", "ifname" },
	};
	for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++) {
		json_t *old = json_object_get(spec, alias[i][1]);
		if (strcmp(hp_kind_names[kind], alias[i][0]) || !old)
			continue;
		if (json_object_get(spec, alias[i][2]))
			CHECK_FAIL("InvalidArgument", "%s: given twice (%s is its old spelling)",
			           alias[i][2], alias[i][1]);
		json_object_set(spec, alias[i][2], old);
		json_object_del(spec, alias[i][1]);
	}
	int rc = check_common(p, spec, kind, err);
	if (rc < 0)
		return rc;
	switch (kind) {
	case DEV_DISK:
		return check_disk(p, spec, files, err);
	case DEV_NIC:
		return check_nic(spec, err);
	case DEV_CPU:
		return check_cpu(p, spec, err);
	default:
		return check_mem(p, spec, err);
	}
}

int sv_hotplug_check(const struct sv_profile *p, json_t *spec, struct sv_error *err)
{
	return hp_check(p, spec, true, err);
}
