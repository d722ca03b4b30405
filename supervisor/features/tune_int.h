/*
 * Internal to tune (tune.c, tune_file.c, tune_set.c): a guest's tuning
 * record and what the files share.
 *
 * tune.c       applying (I/O limits, pinning), the balloon's poll, the
 *              observer (start, re-adoption, status) and hot-plug
 * tune_file.c  the values a start applies: the profile's, its hot-plug
 *              overlay's disks, the overlay NAME.d/set.ini (read, checked)
 * tune_set.c   the set verb (live, --persist: set.ini written)
 */
#ifndef SV_TUNE_INT_H
#define SV_TUNE_INT_H

#include <sched.h>

#include "guest.h"
#include "setkeys.h"
#include "tune.h"

#define TUNE_OVERLAY_LINES 1024          /* KEY = VALUE lines in set.ini */

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

static inline const struct sv_profile *tune_prof(const struct sv_guest *g)
{
	return g->run_profile ? g->run_profile : g->profile;
}

/* tune_file.c */

/* g's record, made on first use (NULL: out of memory). */
struct sv_tune *tune_of(struct sv_guest *g);
struct tune_disk *tune_disk_find(struct sv_tune *t, const char *id);
/* Disk id's entry, added (all limits 0) when t has none; NULL: out of
 * memory. */
struct tune_disk *tune_disk_add(struct sv_tune *t, const char *id);
/* The disk is on a SCSI, IDE or SATA bus: the device holds its backend. */
void tune_disk_not_virtio(struct tune_disk *d);
/* A hot-plugged disk's bus and limits from its attach spec (the keys
 * that parse). */
void tune_disk_spec(struct tune_disk *d, json_t *spec);
void tune_host_cpus(cpu_set_t *set);
/* The overlay's lines as "KEY=VALUE" strings (kv) and their line numbers;
 * a line that is not KEY = VALUE goes to errs. Returns 0 (a missing file
 * is empty), or -errno when it cannot be read. */
int tune_overlay_lines(const struct sv_profile *p, struct sv_strv *kv, int *lines,
                       struct sv_strv *errs);
void tune_item_merge(struct sv_tune *t, const struct sv_set_item *it);
/* Is disk d still there: the profile's, or hot-plugged and not detached
 * since? (g NULL: the profile and its overlays, all there.) */
bool tune_disk_present(struct sv_guest *g, const struct tune_disk *d);
/* Check items against t's values (g: only the disks g has now); 0 or
 * -EINVAL with why. */
int tune_check_items(struct sv_guest *g, const struct sv_profile *p, struct sv_tune *t,
                     const struct sv_set_item *items, size_t n, char *why, size_t size);
/* t's values from profile p alone; then the disks of its hot-plug
 * overlay; then set.ini's items over them (the failures to errs, their
 * number returned). */
void tune_base_load(struct sv_tune *t, const struct sv_profile *p);
void tune_hp_overlay_disks(struct sv_tune *t, const struct sv_profile *p);
int tune_overlay_load(struct sv_tune *t, const struct sv_profile *p, struct sv_strv *errs);
/* All three for g's profile, what set.ini has wrong logged. */
void tune_load(struct sv_guest *g, struct sv_tune *t);

/* tune.c */

/* block_set_io_throttle's arguments for disk d with limits v. */
json_t *tune_throttle_args(const struct tune_disk *d, const uint64_t v[SV_IOTUNE_N]);
/* Pin g's threads as t says (query-cpus-fast first); done(arg, 0 or
 * -errno, why). */
void tune_pin_now(struct sv_guest *g, void (*done)(void *arg, int rc, const char *why),
                  void *arg);

#endif
