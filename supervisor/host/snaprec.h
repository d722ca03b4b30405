/*
 * The snapshot record: NAME.d/snapshots.json next to a guest's profile (as
 * the hot-plug overlay, NAME.d/hotplug.ini). qsup keeps every disk's chain
 * of external qcow2 overlays here; the profile's `file` stays the base.
 *
 *   {"version": 1, "seq": N, "current": SNAP or null,
 *    "active": {DISK: {"file": PATH, "format": "qcow2"}},
 *    "snapshots": [{"name": SNAP, "parent": SNAP or null, "created": ISO-TIME,
 *                   "layers": {DISK: {"file": PATH, "format": FMT}},
 *                   "memory": PATH or null}]}
 *
 * A snapshot's layer of a disk is the image that holds the disk as it was
 * when the snapshot was taken (read-only from then on: the overlays above
 * it take the writes); "active" is the image each disk boots from, whose
 * backing chain (the images' own headers) runs down through the current
 * snapshot's layer to the profile's file. seq numbers the overlay files.
 *
 * Disks hot-plugged with --persist (NAME.d/hotplug.ini) take part too; the
 * hot-plug replay boots their active overlays.
 *
 * Pure checks here, plus blocking file I/O (read, write, validate): run
 * those off the loop, except the small read of `list` and qsupd --check.
 */
#ifndef SV_SNAPREC_H
#define SV_SNAPREC_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "profile.h"
#include "util.h"

/* Does drive d take part in snapshots? A disk (not a CD-ROM) with a file,
 * writable. */
bool sv_snap_disk(const struct sv_drive *d);

/* The record's path for profile p: DIR/NAME.d/snapshots.json. Returns 0 or
 * -ENAMETOOLONG. */
int sv_snaprec_path(const struct sv_profile *p, char *buf, size_t size);

/* Read p's record into *rec (a new reference): *rec NULL and 0 when there
 * is none; a negative errno with the reason in err when it cannot be read
 * or its shape is wrong (sv_snaprec_shape). */
int sv_snaprec_read(const struct sv_profile *p, json_t **rec, struct sv_error *err);
/* The same at the record's path (sv_snaprec_path). */
int sv_snaprec_read_at(const char *path, json_t **rec, struct sv_error *err);

/* An empty record (a new reference). */
json_t *sv_snaprec_new(void);

/* Check rec's shape (pure): members and types, snapshot names valid and
 * unique, parents known. Returns 0 or -EINVAL with the reason in err. */
int sv_snaprec_shape(json_t *rec, struct sv_error *err);

/* Write rec for p atomically (write, fsync, rename; NAME.d is made, 0700).
 * Returns 0 or a negative errno with the reason in err (a full disk says
 * so); the old record is then intact. */
int sv_snaprec_write(const struct sv_profile *p, json_t *rec, struct sv_error *err);
/* The same at the record's path (sv_snaprec_path). */
int sv_snaprec_write_at(const char *path, json_t *rec, struct sv_error *err);

/* Remove p's record (no snapshot left). 0 or a negative errno. */
int sv_snaprec_remove(const struct sv_profile *p);

/* The record's snapshot named name, or NULL. */
json_t *sv_snaprec_find(json_t *rec, const char *name);

/* Disk id's active image in rec ({"file", "format"}), or NULL: the
 * profile's file. */
json_t *sv_snaprec_active(json_t *rec, const char *id);

/* Validate rec against p and the files (qsupd --check): the shape, every
 * disk a writable disk of p's or of more (the hot-plug overlay's disks,
 * {ID: {"file": absolute path}}; NULL: none), every layer and active image
 * present, each active image's backing chain reaching the current
 * snapshot's layer and the disk's file. Every problem is appended to *msgs (a malloc'd string of
 * lines "path: what is wrong"). Returns the number of problems. */
int sv_snaprec_validate(const struct sv_profile *p, json_t *more, json_t *rec, char **msgs);

#endif
