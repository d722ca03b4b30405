/*
 * Everything between a start request and QEMU's exec, with nothing that
 * touches a file on the loop. Usually one step on libuv's thread pool:
 *
 *   1. QEMU's identity (identity.h; NSS may block), a per-guest uid that
 *      another guest of this daemon has moved on to the next; which sized
 *      disk images are missing; any of those that qsupd created before
 *      refuses the start: a disk that vanished is never re-created blank
 *      (statedir.h keeps the record);
 *   2. only when images are missing, back on the loop: qemu-img create for
 *      each (spawned, umask 077) and the UEFI vars copy (uv_fs_copyfile),
 *      then the thread pool again; an existing file is never touched;
 *   3. the new images recorded; each qcow2 image's backing chain (image.h);
 *      the argv with those chains; every fd QEMU inherits opened
 *      (fdpass.h); RUNDIR/NAME/qemu made QEMU's own; last, the state file
 *      written (the intent: a later qsupd must know that a QEMU is on its
 *      way), so that a start that cannot record it never spawns;
 *   4. back on the loop, sv_guest_prepared(g, 0, NULL) launches.
 *
 * A stop or kill meanwhile (g->prep_abort) ends it at the next step.
 */
#ifndef SV_PREPARE_H
#define SV_PREPARE_H

struct sv_guest;

/* Work through the steps for g->run_profile, then call
 * sv_guest_prepared(g, 0, NULL) with g->start_argv, g->pass_fds and
 * g->ident set, or sv_guest_prepared(g, -errno, message) at the first
 * failure. The call happens later, from the loop. */
void sv_prepare_run(struct sv_guest *g);

/* Drop what preparation still holds (the guest is being released): a
 * running qemu-img is left to finish, its result dropped. */
void sv_prepare_release(struct sv_guest *g);

/* Close the fds opened for QEMU (after the spawn, or when it failed), and
 * drop what preparation found. */
void sv_prepare_close_fds(struct sv_guest *g);

/* The fd of RUNDIR/NAME/qemu opened for QEMU (until sv_prepare_close_fds),
 * or -1. */
int sv_prepare_qemudir_fd(struct sv_guest *g);

/* Free what preparation holds; the guest's last handle is gone. */
void sv_prepare_free(struct sv_guest *g);

#endif
