/*
 * disk-resize: grow one of a guest's disks.
 *
 * A running (or paused) guest: QMP block_resize on the disk's format node
 * (the profile's "drive.ID", a hot-plugged "hpdrive.ID"); QEMU grows the
 * image file and the guest sees the new capacity at once (virtio-blk tells
 * it). A stopped guest: qemu-img resize on the profile's image, spawned on
 * the loop (qemu-img info first, for its current size); starts are refused
 * meanwhile. The image file is the record of the size: qsupd never
 * rewrites the profile, whose size = only says what to create when the
 * image is missing. Shrinking is refused (a guest's file systems do not
 * shrink with its disk), and so are CD-ROMs, read-only disks, and sizes
 * that are not a multiple of 512 bytes.
 *
 * A disk with snapshots (snaprec.h): its active layer grows, live (the
 * top node QEMU runs, from query-block) or stopped (the record's active
 * overlay); the snapshots' layers keep their size, so a revert brings the
 * size the snapshot had back with its data. Refused while a snapshot
 * operation runs (sv_snapshot_refuse); a live resize holds busy_op too,
 * which keeps snapshot operations off it.
 */
#ifndef SV_RESIZE_H
#define SV_RESIZE_H

#include <jansson.h>

struct sv_guest;
struct sv_request;

/* The disk-resize verb: args {name, id, size: bytes (number) or a size
 * string such as "20G"}. Answers req with {id, file, old_size, size,
 * live: bool, changed: bool}. */
void sv_resize_verb(struct sv_guest *g, struct sv_request *req, json_t *args);

#endif
