/*
 * Live resource control, the pure part: disk I/O limits, CPU lists and the
 * KEY=VALUE items of `qsupctl set` (the profile keys of the same names are
 * in profile_keys.c; the live side is features/tune.h, the set verb). qsup.ini(5) and
 * qsupctl(8) document the names, bounds and rules given here.
 *
 * I/O limits: 18 per disk, named as QEMU's -drive throttling.* options
 * (bps-total, bps-read, bps-write, iops-..., each with -max and
 * -max-length), applied with QMP block_set_io_throttle (whose argument
 * names are sv_iotune_qmp). 0 means no limit.
 */
#ifndef SV_SETKEYS_H
#define SV_SETKEYS_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"

/* Indices into sv_drive.iotune: avg 0-5, max 6-11, max-length 12-17; in
 * each group total, read, write for bytes, then for operations. */
enum {
	SV_IOT_BPS, SV_IOT_BPS_RD, SV_IOT_BPS_WR, SV_IOT_IOPS, SV_IOT_IOPS_RD, SV_IOT_IOPS_WR,
	SV_IOT_MAX = 6, SV_IOT_LEN = 12,
};

/* Bounds qsup applies (QEMU's own ceiling is 10^15; it has no floor, but a
 * byte limit under one 4 KiB block a second stalls a guest). */
#define SV_IOT_BPS_MIN 4096ull
#define SV_IOT_BPS_MAX (1ull << 40)             /* 1T per second */
#define SV_IOT_IOPS_MAX 100000000ull            /* 10^8 per second */
#define SV_IOT_LEN_MAX 3600ull                  /* seconds */
#define SV_IOT_QEMU_MAX 1000000000000000ull     /* QEMU's ceiling: a burst's size too */

extern const char *const sv_iotune_keys[SV_IOTUNE_N];
extern const char *const sv_iotune_qmp[SV_IOTUNE_N];

/* The index of an I/O limit key ("bps-write"), or -1. */
int sv_iotune_index(const char *key);

/* Parse value for limit i: bytes per second with an optional K, M, G, T
 * suffix (bps keys), a whole number of operations per second (iops keys)
 * or of seconds (-max-length keys); 0 (or "none") is no limit. Returns 0,
 * or -EINVAL with what is allowed in why. */
int sv_iotune_parse(int i, const char *value, uint64_t *out, char *why, size_t size);

/* The rules between one disk's limits (QEMU's): a total limit and a read
 * or write one of the same kind exclude each other; a -max needs its limit
 * and is at least that; a -max-length needs its -max, and the burst (-max
 * times -max-length) is at most QEMU's 10^15. Returns 0, or
 * -EINVAL with the first broken rule in why. */
int sv_iotune_check(const uint64_t v[SV_IOTUNE_N], char *why, size_t size);

/* Any limit set? */
bool sv_iotune_any(const uint64_t v[SV_IOTUNE_N]);

/* A CPU list: "0-3,6", numbers and ranges separated by commas. Returns 0,
 * or -EINVAL with why. The canonical spelling of a set (ranges merged,
 * ascending) into buf. */
int sv_cpulist_parse(const char *s, cpu_set_t *set, char *why, size_t size);
void sv_cpulist_format(const cpu_set_t *set, char *buf, size_t size);

/* One KEY=VALUE of `qsupctl set` (and of NAME.d/set.ini):
 *   disk.ID.LIMIT=VALUE      an I/O limit of disk ID (sv_iotune_keys)
 *   cpu-affinity=LIST        the vCPU threads' CPUs
 *   emulator-affinity=LIST   QEMU's other threads' CPUs
 *   balloon=SIZE             the balloon's target (the guest's memory) */
enum sv_set_kind { SV_SET_IOTUNE, SV_SET_CPU, SV_SET_EMULATOR, SV_SET_BALLOON };

struct sv_set_item {
	enum sv_set_kind kind;
	char key[SV_ID_MAX + 32];       /* as given, before the '=' */
	char value[128];                /* as given (a CPU list: canonical) */
	char disk[SV_ID_MAX + 1];       /* SV_SET_IOTUNE */
	int index;                      /* SV_SET_IOTUNE: into sv_iotune_keys */
	uint64_t n;                     /* the limit, or the balloon's bytes */
	cpu_set_t cpus;                 /* SV_SET_CPU, SV_SET_EMULATOR */
};

/* Parse "KEY=VALUE" (the text alone: whether the disk exists or the
 * balloon fits is the guest's to say). Returns 0, or -EINVAL with why (the
 * item named in it). */
int sv_set_parse(const char *kv, struct sv_set_item *it, char *why, size_t size);

/* The checks of items against profile p and the limits in force: ids[i]
 * is a disk (the profile's, or hot-plugged) whose limits are now cur[i]
 * (n of them): the disk exists and is no CD-ROM, its limits merged with
 * the items pass sv_iotune_check, p has a balloon and the target is at
 * most its memory, the CPUs are in host (NULL: not checked). Returns 0, or
 * -EINVAL with why. */
int sv_set_check(const struct sv_profile *p, const struct sv_set_item *items, size_t n,
                 const char *const *ids, const uint64_t (*cur)[SV_IOTUNE_N], size_t ndisks,
                 const cpu_set_t *host, char *why, size_t size);

#endif
