/*
 * The files of `save` and `restore`, opened off the loop and trusted only
 * when this host's qsupd wrote them.
 *
 * A save file is one header line, then QEMU's migration stream:
 *
 *     QSUP-SAVE-2 MAC {"name": ..., "argv": [...], "devices": [...], ...}\n
 *
 * MAC is the hex HMAC-SHA-256, under the host key (statedir.h), of
 * everything on the line before it and after it ("QSUP-SAVE-2 " and the
 * JSON). restore re-attaches the header's devices with qsupd's rights, so
 * a header it cannot authenticate is refused: a crafted one could name any
 * file of the host.
 *
 * save writes a new file (0600, O_EXCL, a name of its own next to the
 * target) and renames it over the target only once the stream is complete
 * and on disk; it never follows a symlink, never writes into a FIFO or a
 * device, and never replaces a file that is not itself a qsupd save file.
 * restore opens without following symlinks, regular files only.
 */
#ifndef SV_SAVEFILE_H
#define SV_SAVEFILE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#define SV_SAVE_MAGIC "QSUP-SAVE-2 "
#define SV_SAVE_HEADER_MAX (1u << 20)
#define SV_SAVE_KEY_LEN 32

/* The header line for h under key (malloc'd, with its newline), or NULL
 * when out of memory. Pure. */
char *sv_savefile_header(const uint8_t key[SV_SAVE_KEY_LEN], json_t *h);

/* Check the header at the start of buf (len bytes): returns its JSON object
 * (a new reference) with *hlen the header's length including the newline,
 * or NULL with the reason in why (no header, an older qsupd's, a MAC that
 * does not verify, not JSON). Pure. */
json_t *sv_savefile_parse(const uint8_t key[SV_SAVE_KEY_LEN], const char *buf, size_t len,
                          size_t *hlen, char *why, size_t wsize);

/* Off the loop: make a new file next to path for a save and write header
 * (taken) into it. done(arg, fd, tmp, NULL) gets the open file (positioned
 * after the header) and its temporary name, or done(arg, -1, NULL, why). */
typedef void (*sv_save_opened_fn)(void *arg, int fd, const char *tmp, const char *why);
int sv_savefile_create(uv_loop_t *loop, const char *path, char *header,
                       sv_save_opened_fn done, void *arg);

/* Off the loop: fsync and close fd, then rename tmp over path.
 * done(arg, NULL) or done(arg, why); fd is closed either way. */
typedef void (*sv_save_done_fn)(void *arg, const char *why);
int sv_savefile_commit(uv_loop_t *loop, int fd, const char *tmp, const char *path,
                       sv_save_done_fn done, void *arg);

/* Off the loop: close fd and remove tmp (a save that did not complete).
 * Fire and forget. */
void sv_savefile_discard(uv_loop_t *loop, int fd, const char *tmp);

/* Off the loop: open path for a restore and read its header.
 * done(arg, fd, header, hlen, NULL): fd positioned after the header line,
 * header its bytes (the callee's until done returns); or done(arg, -1,
 * NULL, 0, why). */
typedef void (*sv_restore_opened_fn)(void *arg, int fd, const char *buf, size_t len,
                                     const char *why);
int sv_savefile_open(uv_loop_t *loop, const char *path, sv_restore_opened_fn done,
                     void *arg);

#endif
