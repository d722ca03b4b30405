/*
 * Internal to backups (backup.h tells the whole): the operation and what
 * its files share.
 *
 * backup.c          the operation (made, answered, ended), the manifests,
 *                   the backup verb's start, backup-cancel
 * backup_jobs.c     a backup in flight: its record, how it ends (complete
 *                   or failed), its progress, the observer, the pick-up
 *                   after a qsupd restart
 * backup_restore.c  backup-restore
 */
#ifndef SV_BACKUP_INT_H
#define SV_BACKUP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "agent.h"
#include "backup.h"
#include "blockadd.h"
#include "guest.h"
#include "opwork.h"

#define BITMAP_PREFIX "qsup-backup-"
#define IMG_LOG "qemu-img-backup.log"   /* in RUNDIR/NAME */

enum { RES_PENDING, RES_OK, RES_FAILED };

struct bdisk {
	char id[SV_ID_MAX + 1];
	char node[64];                  /* the disk's top format node */
	char drv[32];                   /* its driver (qcow2, raw) */
	uint64_t size;
	json_t *bitmaps;                /* the node's dirty bitmaps' names (array) */
	char *part, *final;             /* DIR/NAME-ID.DISK.qcow2(.part) */
	char *backing;                  /* incremental: the previous file (basename) */
	char tnode[48], job[48];
	int fd, fdset;
	bool made, added;
	int result;
	char *err;
	int64_t cur, total;
	/* restore */
	char *src;                      /* the chain's newest file */
	char *dst, *dstfmt;             /* the disk's image (bk_op_new: a backup's too) */
};

struct sv_backup_op {
	struct sv_opwork work;          /* off the loop: rc, err */
	uv_timer_t *timer;
	struct sv_guest *g;
	struct sv_request *req;         /* the backup (restore) request; NULL: answered */
	struct sv_request *cancel_req;  /* a backup-cancel waiting for the end */
	bool restore;
	bool full, autokind, wait, started, cancelling, failed, recovered;
	bool in_txn;                    /* the transaction's answer is awaited */
	bool ending;                    /* every job is over: completing or cleaning up */
	int inflight;                   /* progress queries not answered yet */
	bool dead;                      /* over: freed once they are answered */
	int64_t speed;
	char dir[4096];
	char id[48];                    /* this backup's */
	char chain[48];                 /* its chain's full backup's ID */
	char bitmap[72];                /* the chain's bitmap */
	char parent[48];                /* the previous backup's ID; "": none */
	char created[32];
	char statepath[4200];
	json_t *pmanifest;              /* the previous backup's manifest (incremental) */
	json_t *rec;                    /* restore: the manifest of ID */
	struct bdisk *d;
	size_t n, i;
	struct sv_freeze fz;            /* the agent's freeze around the transaction */
	struct sv_blockadd ba;          /* the targets into QEMU */
	struct sv_blockadd_item *bitems;
	char why[900];
	uint64_t t0;
};

/* backup.c */

/* The manifest's name: DIR/NAME-ID followed by this. */
extern const char *BK_MANIFEST_SUFFIX;
/* g->busy_op while a restore writes g's disks. */
extern const char bk_restore_busy[];
/* The operation is over: g let go, op freed (once its progress queries
 * are answered). */
void bk_op_end(struct sv_backup_op *op);
/* op freed, with its disks' names and fds and the manifests it holds. */
void bk_op_free(struct sv_backup_op *op);
/* The next disk of op (op->d has room), named id. */
struct bdisk *bk_disk_new(struct sv_backup_op *op, const char *id);
/* Answer (and log) an error; the operation goes on (the caller ends it). */
void bk_answer_err(struct sv_backup_op *op, const char *cls, const char *msg);
/* Answer (and log) an error, then end the operation. */
void bk_op_fail(struct sv_backup_op *op, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The work off the loop failed: its error is the answer. */
void bk_work_failed(struct sv_backup_op *op);
/* Every complete manifest of guest in dir, oldest first (by "finished",
 * then ID). Off the loop. */
json_t *bk_read_manifests(const char *dir, const char *guest);
/* The manifest of backup id in all (NULL: none). */
json_t *bk_find_manifest(json_t *all, const char *id);
/* The answer of a failed start or restore, once its files are gone: the
 * class in err.cls, the message in why. */
void bk_fail_done(void *arg);
/* An operation on p's writable disks: the profile's, then those
 * hot-plugged with --persist. NULL: req is answered. */
struct sv_backup_op *bk_op_new(struct sv_guest *g, struct sv_request *req,
                               const struct sv_profile *p);
/* Answers req when g has no profile or is busy (verb: the message's). */
bool bk_refused(struct sv_guest *g, struct sv_request *req, const struct sv_profile *p,
                const char *verb);

/* backup_jobs.c */

/* The record of g's backup in flight: STATE-DIR/NAME.backup.json. */
void bk_record_path(struct sv_guest *g, char *buf, size_t size);
/* The record's content: op's jobs, target nodes and files. */
json_t *bk_state_json(struct sv_backup_op *op);
/* v written to path (as path.part, synced, then renamed); 0 or -errno. */
int bk_write_json_atomic(const char *path, json_t *v, struct sv_error *err);
/* Off the loop: op's .part files and its record removed. */
void bk_finish_fail_work(void *arg);
/* Once every job has its result: the backup completed, or cleaned up. */
void bk_maybe_finish(struct sv_backup_op *op);
/* The jobs not over yet cancelled. */
void bk_cancel_pending(struct sv_backup_op *op);
/* BACKUP_PROGRESS every second while the jobs run. */
void bk_start_timer(struct sv_backup_op *op);

#endif
