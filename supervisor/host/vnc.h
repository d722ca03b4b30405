/*
 * What qsupd does on the host for a guest's VNC display: find a free
 * display for vnc-display = auto, read a password file, generate a
 * password. All of it may block (name lookups, files): thread pool only.
 * A password never goes to QEMU's command line or to a log: qsupd sets it
 * over QMP (set_password) before the guest runs.
 */
#ifndef SV_VNC_H
#define SV_VNC_H

#include <stddef.h>

#include "util.h"

/* VNC passwords are at most 8 characters (the protocol's DES key). */
#define SV_VNC_PASSWORD_MAX 8
/* The generated password's file in the guest's run dir (0600). */
#define SV_VNC_PASSWORD_FILE "vnc-password"

/* The first display N (0..99) whose TCP port 5900 + N can be bound on every
 * address listen resolves to, as QEMU will bind it. Returns N, or a negative
 * errno with err set (-EADDRINUSE: all taken; -ENOENT: listen does not
 * resolve). */
int sv_vnc_free_display(const char *listen, struct sv_error *err);

/* The password in the file at path: its first line, 1 to 8 characters of
 * printable ASCII. Writes it into pw (size > SV_VNC_PASSWORD_MAX). Returns 0
 * or a negative errno with err set (the message never holds the password). */
int sv_vnc_password_read(const char *path, char *pw, size_t size, struct sv_error *err);

/* A new random password of 8 letters and digits into pw, written (with a
 * newline) to DIR/vnc-password, mode 0600, replacing any earlier one.
 * Returns 0 or a negative errno with err set. */
int sv_vnc_password_generate(const char *dir, char *pw, size_t size, struct sv_error *err);

#endif
