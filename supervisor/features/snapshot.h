/*
 * Disk snapshots: the snapshot verb (create, list, revert, delete), with
 * external qcow2 overlays whose chain qsupd keeps in the snapshot record
 * (snaprec.h, NAME.d/snapshots.json next to the profile).
 *
 * create: for every writable disk, qsupd makes an overlay next to the
 * profile's file (BASE.snapSEQ.qcow2, qemu-img create -b TOP -F FMT,
 * spawned), records the new chain, then, when QEMU runs, opens each overlay
 * itself, hands it over (add-fd), blockdev-add's it with backing null and
 * switches every disk at once in one QMP transaction of blockdev-snapshot
 * actions. The record is written before the switch: a crash between them
 * leaves an empty overlay over the snapshot's layer, which boots the same
 * data. A failed switch takes the overlays back out and restores the record.
 * Works on raw bases too (an overlay over a raw file).
 *
 * revert: only while the guest is stopped (force stops it first, quit at
 * once): each disk gets a new empty overlay over the snapshot's layer, the
 * old active overlays go.
 *
 * delete: the snapshot's layer of each disk is merged into the image above
 * it (its one child: the next snapshot's layer or the active overlay):
 * QEMU's block-stream job when that image is in the running chain, else
 * qemu-img rebase (spawned). The profile's file itself is never removed:
 * deleting a snapshot whose layer is the base only forgets its name.
 * Deleting the last one commits each active overlay back into its disk's
 * file (sv_snapflat, below): no record, no overlay left.
 *
 * Every later start boots the active overlays (prepare.c reads the record;
 * the hot-plug replay for disks attached with --persist, which take part).
 *
 * --memory (create): the guest is paused, its disks switch, its state is
 * saved to BASE.snapSEQ.qsave by the save verb's machinery (QEMU ends),
 * restored from it at once on the new overlays, and resumed; a revert of
 * such a snapshot restores that file after the disks. The guest agent's
 * freeze is not wired yet (freeze(): one call site).
 */
#ifndef SV_SNAPSHOT_H
#define SV_SNAPSHOT_H

#include <stdbool.h>
#include <jansson.h>

struct sv_guest;
struct sv_request;

/* The snapshot verb: args {name, action: create | list | revert | delete,
 * snapshot (not for list), force (revert: stop a running guest first)}. */
void sv_snapshot_cmd(struct sv_guest *g, struct sv_request *req, json_t *args);

/* Check its arguments (pure). Returns 0 or -EINVAL with err set. */
struct sv_error;
int sv_snapshot_check(json_t *args, struct sv_error *err);

/* The writable disks of p's hot-plug overlay (attach --persist), which
 * take part in snapshots: {ID: {"file": absolute path, "format"}} (a new
 * reference; empty when there is no overlay). Reads the overlay file. */
struct sv_profile;
json_t *sv_snapshot_hp_disks(const struct sv_profile *p);

/* The action of the snapshot operation running on g ("create", "revert",
 * "delete"), or NULL. */
const char *sv_snapshot_running(struct sv_guest *g);

/* The one check other disk operations make (migrate, incoming, save,
 * restore, clone, attach and detach of a disk, disk-resize): while a snapshot
 * operation runs on g, answer req with InvalidState "guest NAME: a
 * snapshot delete is running; ..." and return true; else false.
 * (snapmig.c) */
bool sv_snapshot_refuse(struct sv_guest *g, struct sv_request *req);

/* Is a migration, save or restore of g's being prepared or under way?
 * (snapmig.c) */
bool sv_snapmig_busy(struct sv_guest *g);

/* Migration and save/restore carry the chain (snapmig.c). The record of
 * g's disks to hand over: its snapshot record, or JSON null when it has
 * none (a new reference); NULL with err set when it cannot be read. A
 * small read on the loop, as `snapshot list`. */
json_t *sv_snapmig_export(struct sv_guest *g, struct sv_error *err);

/* The destination of a migration (restore false) or a restore: args as
 * handed over, with "snapshots" (the source's record, or null). Off the
 * loop: a migration makes that record the guest's here, after checking it
 * against this profile and the files (the images must be at the same
 * paths: shared storage); a null drops the record here. A restore keeps
 * the record here when each disk still boots the image it was saved on
 * (or an empty overlay over it), takes the saved one when there is none
 * here, and refuses when a revert or merge changed what a disk boots.
 * Then done(g, args, NULL), or done(g, args, why): refused. Returns false,
 * without calling done, when there is nothing to do: no "snapshots" (a
 * manual incoming keeps the record here), or a snapshot operation of g's
 * restores its own memory. */
bool sv_snapmig_import(struct sv_guest *g, json_t *args, bool restore,
                       void (*done)(struct sv_guest *g, json_t *args, const char *why));

/* Every writable disk of p's that takes part in snapshots: the profile's,
 * its hot-plug overlay's, and the --persist disks of devices (a handover's
 * list, or NULL): {ID: {"file": absolute path, "format"}}, a new reference.
 * Reads the overlay file. (snapmig.c) */
json_t *sv_snapshot_disks(const struct sv_profile *p, json_t *devices);

/* The last snapshot is deleted (rec, as written at recpath, has none):
 * each disk's active overlay is committed into the disk's own file (QEMU's
 * active block-commit while the guest runs, after a blockdev-reopen of the
 * base read-write when qsupd opened it read-only at boot, as libvirt does;
 * qemu-img commit when it is stopped), the record loses that disk (none left: it goes) and the
 * overlay file goes, so the guest runs and boots on its profile's files
 * as before its first snapshot. A disk whose overlay is not right on its
 * file, or whose commit fails, stays on its overlay (the record still
 * says so). done(arg, {ID: "back on FILE" | "kept on OVERLAY: why"}) at
 * the end, the result taken by done. (snapflat.c) */
void sv_snapflat(struct sv_guest *g, const char *recpath, json_t *rec,
                 void (*done)(void *arg, json_t *result), void *arg);
extern const struct sv_guest_observer sv_snapflat_observer;

/* Make g's format node `node` writable for a block job (a merge into it)
 * when QEMU holds it read-only as qsupd opened it at boot (a -blockdev
 * backing layer): its file node's fd set `fdset` holds a read-write fd
 * already (add-fd, which answered with its number, keep); the file and
 * format nodes are reopened read-write (blockdev-reopen, the options
 * they were opened with, as libvirt does), then the set's other fds are
 * removed (QEMU's image locks sit on their open file description). Nodes
 * already read-write, or named by QEMU (inheriting read-write from a
 * hot-plugged parent), are left as they are. done(arg, NULL), or
 * done(arg, why). (snapflat.c) */
void sv_snap_writable(struct sv_guest *g, const char *node, int fdset, int keep,
                      void (*done)(void *arg, const char *why), void *arg);

extern const struct sv_guest_observer sv_snapshot_observer;

#endif
