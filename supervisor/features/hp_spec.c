/* Hot-plug: the checks of a device spec (hotplug_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "request.h"
#include "hotplug_int.h"

/* ---- checks shared by the attach verb and the overlay ---- */

static const char *const disk_keys[] = { "file", "format", "read-only", "serial", "cache", "bus",
                                         NULL };
static const char *const nic_keys[] = { "type", "tap", "bridge", "mac", "model", NULL };
static const char *const cpu_keys[] = { "count", NULL };
static const char *const mem_keys[] = { "size", NULL };
static const char *const *const kind_keys[] = { disk_keys, nic_keys, cpu_keys, mem_keys };
static const char *const cache_modes[] = { "writeback", "none", "writethrough", "directsync",
                                           "unsafe", NULL };

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
		char allowed[128] = "";
		for (const char *const *k = kind_keys[kind]; *k; k++)
			snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed),
			         "%s%s", k == kind_keys[kind] ? "" : ", ", *k);
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

/* The file a disk spec names must be there, readable (and writable unless
 * read-only) by qsupd. */
static int check_disk_file(const struct sv_profile *p, json_t *spec, struct sv_error *err)
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
	if (access(path, ro ? R_OK : R_OK | W_OK) < 0) {
		int e = -errno;
		sv_error_setc(err, e, "NotFound", "%s: %s", path, strerror(-e));
		free(path);
		return e;
	}
	free(path);
	return 0;
}

static int check_disk(const struct sv_profile *p, json_t *spec, struct sv_error *err)
{
	const char *fmt = json_string_value(json_object_get(spec, "format"));
	const char *s;
	json_t *v;
	if (!json_object_get(spec, "file") || !fmt)
		CHECK_FAIL("InvalidArgument", "a disk needs \"file\" and \"format\" (the "
		           "format is never probed)");
	if (!sv_format_valid(fmt))
		CHECK_FAIL("InvalidArgument", "format '%.32s' is not one of raw, qcow2, vmdk, "
		           "vdi, vhdx, vpc, qed", fmt);
	if ((v = json_object_get(spec, "read-only")) && !json_is_boolean(v))
		CHECK_FAIL("InvalidArgument", "read-only: use on or off");
	if ((v = json_object_get(spec, "bus")) && (!(s = json_string_value(v)) ||
	    (strcmp(s, "virtio") && strcmp(s, "scsi"))))
		CHECK_FAIL("InvalidArgument", "bus: use virtio or scsi");
	if (v && !strcmp(s, "scsi") && !hp_scsi_drives(p))
		CHECK_FAIL("InvalidArgument", "bus=scsi needs the profile's SCSI controller: "
		           "the profile has no disk or CD-ROM with bus = scsi");
	if ((v = json_object_get(spec, "cache")) && !in_list(cache_modes, json_string_value(v)))
		CHECK_FAIL("InvalidArgument", "cache: use writeback, none, writethrough, "
		           "directsync or unsafe");
	if ((v = json_object_get(spec, "serial")) &&
	    (!(s = json_string_value(v)) || !*s || strlen(s) > 20 || !sv_text_clean(s) ||
	     strpbrk(s, " ,=\"\\")))
		CHECK_FAIL("InvalidArgument", "serial: 1 to 20 characters, no blanks, "
		           "commas, quotes or '='");
	return check_disk_file(p, spec, err);
}

static int check_nic(json_t *spec, struct sv_error *err)
{
	const char *type = json_string_value(json_object_get(spec, "type"));
	const char *s;
	uint8_t mac[6];
	json_t *v;
	if ((v = json_object_get(spec, "mac")) &&
	    (!(s = json_string_value(v)) || sv_mac_parse(s, mac) < 0))
		CHECK_FAIL("InvalidArgument", "mac: not a unicast MAC address "
		           "(like 52:54:00:12:34:56)");
	if ((v = json_object_get(spec, "model")) && (!(s = json_string_value(v)) ||
	    (strcmp(s, "virtio") && strcmp(s, "e1000e"))))
		CHECK_FAIL("InvalidArgument", "model: use virtio or e1000e (PCIe devices)");
	if (!type || !strcmp(type, "user")) {
		if (json_object_get(spec, "tap") || json_object_get(spec, "bridge"))
			CHECK_FAIL("InvalidArgument", "a user NIC takes no tap or bridge");
		return 0;
	}
	const char *want = !strcmp(type, "tap") ? "tap" : !strcmp(type, "bridge") ? "bridge"
	                 : NULL;
	if (!want)
		CHECK_FAIL("InvalidArgument", "type must be user, tap or bridge");
	s = json_string_value(json_object_get(spec, want));
	if (!s || !sv_ifname_valid(s) || strpbrk(s, ",=") || s[0] == '-')
		CHECK_FAIL("InvalidArgument", "a %s NIC needs %s=NAME: an interface name "
		           "(1 to 15 ASCII characters, no '/', ':', '%%', ',', '=' or "
		           "blanks)", type, want);
	if (json_object_get(spec, strcmp(want, "tap") ? "tap" : "bridge"))
		CHECK_FAIL("InvalidArgument", "a %s NIC takes %s=, not both", type, want);
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

int sv_hotplug_check(const struct sv_profile *p, json_t *spec, struct sv_error *err)
{
	int kind = hp_kind_parse(json_string_value(json_object_get(spec, "kind")));
	if (kind < 0)
		CHECK_FAIL("InvalidArgument", "kind must be disk, nic, cpu or memory");
	/* The profile's spelling, read-only; readonly is its old alias. */
	json_t *ro = json_object_get(spec, "readonly");
	if (kind == DEV_DISK && ro) {
		if (json_object_get(spec, "read-only"))
			CHECK_FAIL("InvalidArgument", "read-only: given twice (readonly is its "
			           "old spelling)");
		json_object_set(spec, "read-only", ro);
		json_object_del(spec, "readonly");
	}
	int rc = check_common(p, spec, kind, err);
	if (rc < 0)
		return rc;
	switch (kind) {
	case DEV_DISK:
		return check_disk(p, spec, err);
	case DEV_NIC:
		return check_nic(spec, err);
	case DEV_CPU:
		return check_cpu(p, spec, err);
	default:
		return check_mem(p, spec, err);
	}
}
