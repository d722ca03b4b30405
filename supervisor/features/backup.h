/*
 * Backups: the backup, backup-cancel and backup-restore verbs.
 *
 * backup NAME DIR [full|incremental]: every writable disk of a running (or
 * paused) guest is copied into DIR by QEMU's blockdev-backup jobs, all
 * started in one QMP transaction (a point-in-time copy: the job's
 * copy-before-write filter keeps the old data of what the guest writes
 * meanwhile), with the guest's file systems frozen through the guest agent
 * around that transaction when it answers.
 *
 * full: sync=full into a new qcow2 per disk; the same transaction adds a
 * persistent dirty bitmap "qsup-backup-ID" (ID: this full backup's) to each
 * qcow2 disk node. Once the backup is complete, the bitmaps of older
 * chains go; a failed full backup drops its new bitmap and the older chain
 * stays usable.
 *
 * incremental: sync=incremental with the chain's bitmap and
 * bitmap-mode=on-success (a failed or cancelled one leaves the bitmap as it
 * was, to retry), into a qcow2 whose backing file is the previous backup of
 * that disk (relative name, same directory): `qemu-img convert` of the
 * newest file restores the disk. Raw disks have no bitmap: incremental
 * refuses them by name; a full backup copies them.
 *
 * Files: DIR/NAME-ID.DISK.qcow2 and the manifest DIR/NAME-ID.backup.json
 * are written under a .part name and renamed only once complete (the
 * manifest last). ID is the start time, UTC (YYYYmmddTHHMMSSZ).
 *
 * A backup in flight is recorded in STATE-DIR/NAME.backup.json (the jobs,
 * the target nodes, the files): a restarted qsupd that re-adopts the guest
 * picks it up (query-jobs): still running, it waits for it and completes
 * it; over, it completes it or fails it cleanly (the jobs are created with
 * auto-dismiss off, so that their outcome outlives the qsupd that started
 * them). A record whose QEMU ended meanwhile is failed when the guest's
 * next QEMU starts: its .part files go.
 *
 * backup-restore NAME DIR [ID]: the chain ending at ID (default: the
 * newest backup of NAME in DIR) becomes each disk's image again (qemu-img
 * convert, spawned, into FILE.restore.part, then renamed over the
 * profile's file), for a stopped guest without snapshots.
 */
#ifndef SV_BACKUP_H
#define SV_BACKUP_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

struct sv_guest;
struct sv_request;
struct sv_error;

/* backup: args {name, dir (absolute), kind: "full" | "incremental" (absent:
 * incremental when DIR holds a backup of the guest, else full), wait (reply
 * when done, with BACKUP_PROGRESS events meanwhile), speed (bytes/s per
 * disk; 0 or absent: no limit)}. */
void sv_backup_cmd(struct sv_guest *g, struct sv_request *req, json_t *args);
int sv_backup_check(json_t *args, struct sv_error *err);

/* backup-cancel: args {name}: the backup's jobs cancelled; the reply comes
 * once it is over (nothing left named as complete, the bitmap kept). */
void sv_backup_cancel(struct sv_guest *g, struct sv_request *req, json_t *args);

/* backup-restore: args {name, dir (absolute), backup (an ID; optional)}. */
void sv_backup_restore(struct sv_guest *g, struct sv_request *req, json_t *args);
int sv_backup_restore_check(json_t *args, struct sv_error *err);

/* Is a backup (or a restore) under way on g? */
bool sv_backup_busy(const struct sv_guest *g);

/* A running backup's bytes copied and to copy over all its disks (from
 * its jobs' last progress), and its kind; false when none runs. */
bool sv_backup_progress(const struct sv_guest *g, int64_t *done, int64_t *total,
                        const char **kind);

extern const struct sv_guest_observer sv_backup_observer;

#endif
