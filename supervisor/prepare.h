/*
 * Before QEMU starts: create the disk images that the profile sizes but
 * that do not exist yet (qemu-img create, spawned and not waited on), and
 * copy the UEFI variable template to the guest's vars file when missing
 * (uv_fs_copyfile, on libuv's thread pool). An existing file is never
 * touched. Nothing here blocks the loop.
 */
#ifndef SV_PREPARE_H
#define SV_PREPARE_H

struct sv_guest;

/* Work through what g->run_profile needs, then call
 * sv_guest_prepared(g, 0, NULL), or sv_guest_prepared(g, -errno, message)
 * at the first failure. The call may happen before this returns (nothing
 * to do) or later from the loop. */
void sv_prepare_run(struct sv_guest *g);

/* Called from the loop when the handles prepare uses are done with. */
void sv_prepare_release(struct sv_guest *g);

#endif
