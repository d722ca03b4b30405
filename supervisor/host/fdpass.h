/*
 * Opening the files and taps a QEMU gets as fds (the argv builder's list,
 * argv.h): qsupd opens them with its own rights and QEMU inherits them, so
 * QEMU needs no access to the files' paths at all, and one guest's QEMU
 * cannot open another guest's disk even by QMP.
 *
 *   SV_FD_FILE    open(path, flags); a regular file or a block device.
 *   SV_FD_READ    a regular file QEMU reads as /proc/self/fd/N: the file
 *                 itself when QEMU's identity may read it (opening a
 *                 /proc/self/fd link checks the file's own permission, not
 *                 its directories'), else a sealed memfd copy of it.
 *   SV_FD_TAP     the tap device of that name (attached, or made).
 *   SV_FD_BRIDGE  a new tap on the bridge (tap.h).
 *   SV_FD_VHOST   /dev/vhost-net, opened read-write (a NIC's vhostfd).
 *   SV_FD_SOCKET  a unix socket bound at path (replacing what was there),
 *                 0600, listening: QEMU accepts on it, qsupd connects.
 *
 * Blocking calls: run them off the loop.
 */
#ifndef SV_FDPASS_H
#define SV_FDPASS_H

#include <stddef.h>

#include "argv.h"
#include "identity.h"
#include "tap.h"
#include "util.h"

/* Open every fd a lists for a QEMU running as id: fds[i] for a->fds[i],
 * and taps[i] the tap's name for tap kinds (else ""). Returns 0, or a
 * negative errno with the reason in err ("disk root: /srv/x.img: No such
 * file or directory"); then nothing is left open. */
int sv_fdpass_open(const struct sv_argv *a, const struct sv_identity *id, int *fds,
                   char (*taps)[SV_IFNAMSIZ], struct sv_error *err);

/* Open one file for QEMU as SV_FD_FILE or SV_FD_READ does (for hot-plug).
 * Returns the fd or a negative errno with the reason in err. */
int sv_fdpass_file(const char *path, int flags, struct sv_error *err);

/* sv_fdpass_file, but only where it cannot wait: a regular file on a
 * local file system (ext2/3/4, xfs, btrfs, tmpfs), every component of
 * its path already in the kernel's lookup cache (openat2 RESOLVE_CACHED,
 * as io_uring opens inline). On the loop, this spares a thread-pool hop.
 * Returns the fd, or -EAGAIN where that is not so (or on any error):
 * then open with sv_fdpass_file off the loop, which gives the reason. */
int sv_fdpass_file_cached(const char *path, int flags);

/* Bind a listening unix socket at path (0600; a file there is replaced).
 * Returns the fd or a negative errno with the reason in err. */
int sv_fdpass_listen(const char *path, struct sv_error *err);

/* Close the n fds (those that are >= 0) and set them to -1. */
void sv_fdpass_close(int *fds, size_t n);

#endif
