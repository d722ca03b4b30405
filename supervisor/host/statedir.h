/*
 * The state dir (/var/lib/qsup for root; qsupd --state-dir): what must
 * outlive a reboot, unlike the run dir.
 *
 *   host.key        32 random bytes (0600): authenticates the header of the
 *                   files `save` writes, so that `restore` trusts only files
 *                   this host's qsupd wrote (HMAC-SHA-256, hmac.h).
 *   NAME.images     the disk images qsupd created for guest NAME (JSON: a
 *                   list of {"path", "created"}): such an image that has
 *                   vanished is never re-created blank.
 *
 * Files are written atomically (write, fsync, rename). Blocking calls: run
 * them off the loop, except at daemon start.
 */
#ifndef SV_STATEDIR_H
#define SV_STATEDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define SV_HOST_KEY_LEN 32

/* Make the dir (0700) if missing. Returns 0 or a negative errno. */
int sv_statedir_prepare(const char *dir, struct sv_error *err);

/* Read DIR/host.key, or make it when missing. Returns 0 or a negative
 * errno with the reason in err. */
int sv_statedir_host_key(const char *dir, uint8_t key[SV_HOST_KEY_LEN], struct sv_error *err);

/* Did qsupd create image path for guest name? */
bool sv_statedir_image_created(const char *dir, const char *name, const char *path);

/* Record that qsupd created image path for guest name. Returns 0 or a
 * negative errno with the reason in err. */
int sv_statedir_image_record(const char *dir, const char *name, const char *path,
                             struct sv_error *err);

/* The record file of guest name (for messages). */
void sv_statedir_images_path(const char *dir, const char *name, char *buf, size_t size);

/* Write text as RUNDIR/state.json (a guest's record) through the
 * temporary file tmpname, from any thread: whole or not at all (rename).
 * Returns 0 or an errno. */
int sv_state_file_write(const char *rundir, const char *tmpname, const char *text);

#endif
