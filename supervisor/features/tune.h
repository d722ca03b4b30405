/*
 * Live resource control: disk I/O limits, vCPU and emulator thread
 * pinning, the memory balloon, and the set verb (qsupctl set NAME
 * KEY=VALUE...). The keys, their bounds and rules are setkeys.h's.
 *
 * I/O limits go through QMP block_set_io_throttle on the disk's device
 * (its BlockBackend's throttling): any disk can be limited and unlimited
 * live, whether or not its profile gave limits, the block graph stays as
 * the profile built it (snapshots, resize, backups see the same nodes),
 * and a hot-plugged disk gets its attach keys' limits once device_add is
 * through. qsupd sends them while QEMU waits in -S, before cont.
 *
 * Pinning: the vCPU threads (their ids from query-cpus-fast) get
 * cpu-affinity, every other thread of QEMU (/proc/PID/task)
 * emulator-affinity, with sched_setaffinity; after each start (and
 * crash-restart), after every vCPU hot-plug, and on set.
 *
 * The balloon ([guest] balloon = yes): QMP balloon sets its target;
 * BALLOON_CHANGE events and a 5 s poll (query-balloon, and qom-get of the
 * device's guest-stats, polled by QEMU every 5 s) keep actual and the
 * guest's memory statistics for the status.
 *
 * What set changes lasts for the running guest and its crash-restarts (as
 * hot-plugged devices do) and goes at a stop. set --persist records the
 * items in NAME.d/set.ini next to the profile ("KEY = VALUE" lines, as set
 * takes them), which every start applies over the profile; qsupd --check
 * validates that file.
 */
#ifndef SV_TUNE_FEATURE_H
#define SV_TUNE_FEATURE_H

#include <stdbool.h>
#include <jansson.h>

#include "util.h"

struct sv_guest;
struct sv_request;
struct sv_profile;

/* The set verb: args {name, set: ["KEY=VALUE"...], persist: bool}. Every
 * item is checked before any is applied; then they are applied in order.
 * Answers {applied: ["KEY=VALUE"...], live: bool, persisted: bool}, or an
 * error that says which items were applied before the one that failed. */
void sv_tune_set_verb(struct sv_guest *g, struct sv_request *req, json_t *args);

/* The path of p's set overlay, DIR/NAME.d/set.ini. 0 or -ENAMETOOLONG. */
int sv_tune_overlay_path(const struct sv_profile *p, char *buf, size_t size);

/* qsupd --check: p's set overlay, if it has one, checked against p and
 * this host's CPUs; one message per bad line in errs. Returns 0, or
 * -EINVAL. */
int sv_tune_check_overlay(const struct sv_profile *p, struct sv_strv *errs);

/* Hot-plug's word: device id of kind ("disk", "cpu"...) is in QEMU now,
 * attached with spec (its attach keys), replayed after a restart or not. */
void sv_tune_hotplugged(struct sv_guest *g, const char *kind, const char *id, json_t *spec,
                        bool replay);

/* What state.json keeps for a re-adopting qsupd: the balloon's target and
 * whether QEMU may run with what the profile and set.ini do not say
 * ({"balloon-target": bytes, "live": true}, or NULL for neither), and its
 * reading before the guest is re-adopted. */
json_t *sv_tune_export(const struct sv_guest *g);
void sv_tune_import(struct sv_guest *g, json_t *saved);

/* Does g's running QEMU have a balloon device? (For the stats.) */
bool sv_guest_has_balloon(const struct sv_guest *g);

/* Its figures, as the status shows them ({target, actual, stats}, bytes;
 * what the 5 s poll last saw), or NULL without a running balloon. */
json_t *sv_tune_balloon(const struct sv_guest *g);

extern const struct sv_guest_observer sv_tune_observer;

#endif
