/*
 * The hot-plug overlay: NAME.d/hotplug.ini next to a guest's profile.
 *
 * `attach --persist` records a device there, `detach --persist` takes it
 * out; at each start (not a crash-restart, which keeps what the guest had)
 * qsupd re-adds the overlay's devices while QEMU waits in -S, before cont.
 * One section per device, named KIND.ID, with the attach verb's keys:
 *
 *     [disk.data1]            [nic.lan2]       [cpu.vcpu1]    [memory.mem0]
 *     file = /srv/data1.img   type = user                     size = 256M
 *     format = raw            mac = 52:54:...
 *
 * Pure text here (parse, format); the file I/O is in sv_overlay_read and
 * sv_overlay_write_async.
 */
#ifndef SV_OVERLAY_H
#define SV_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <uv.h>

struct sv_profile;

/* The overlay's path for profile p: DIR/NAME.d/hotplug.ini, DIR being the
 * directory the profile was found in (a symlink's own, not its target's).
 * Returns 0, or -ENAMETOOLONG. */
int sv_overlay_path(const struct sv_profile *p, char *buf, size_t size);

/* Parse overlay text into attach specs ({kind, id, key: value...}, in file
 * order, each with "persist": true). Every section is checked as the attach
 * verb checks its arguments (sv_hotplug_check); errors go to *errs as
 * "path:line: [section] what is wrong" lines (malloc'd). Returns 0; -1 when
 * a section failed the check (it is in *specs all the same: its file may
 * come back, and a rewrite must keep it); -2 when the file holds something
 * a rewrite would lose (not INI, a bad section name, a key twice): then it
 * must not be rewritten. */
int sv_overlay_parse(const struct sv_profile *p, const char *path, const char *text,
                     json_t **specs, char **errs);

/* Read and parse p's overlay; a missing file is an empty overlay, an
 * unreadable one returns -2 with *specs NULL. */
int sv_overlay_read(const struct sv_profile *p, json_t **specs, char **errs);

/* The file's text for specs (malloc'd), or NULL when a value cannot be
 * written as INI (a newline, a comment sign after blanks...). */
char *sv_overlay_format(const char *name, json_t *specs);

/* Write text to path atomically (write, fsync, rename; the directory is
 * created) on libuv's thread pool; done(err, arg) runs on the loop with 0
 * or a positive errno. text is taken. */
int sv_overlay_write_async(uv_loop_t *loop, const char *path, char *text,
                           void (*done)(int err, void *arg), void *arg);

#endif
