/*
 * clone: a new guest from a stopped one.
 *
 * NEW.ini is written in the profile dir from the source's profile text
 * (comments and keys kept) with: a new MAC for every NIC (52:54:00 and
 * three random bytes), a new file for every writable disk, in the source
 * image's directory (the source's name in the file name replaced by NEW,
 * else NEW- put before it), and a new uefi-vars path (the vars file is
 * copied when it exists). Full: each disk is copied with qemu-img convert
 * (same format). Linked: each new disk is a qcow2 overlay backed by the
 * source's image (qemu-img create -b); the source image must then never
 * change (no start of the source with that disk writable, no resize): the
 * reply, the log and a comment at the top of NEW.ini say so. Read-only
 * disks and CD-ROMs are shared, a disk whose image does not exist yet (size
 * =) is created by the clone's first start. qemu-img runs spawned on the
 * loop (sv_run), one disk after the other, and the source cannot start
 * meanwhile. Then the daemon reloads its profiles: the clone is there.
 *
 * Refused: a source that is not stopped (its disks would be copied
 * mid-write), an invalid NEW, a NEW that exists (profile, guest or a clone
 * under way), a new disk file that exists, a disk on a block device. A
 * failed copy removes what it had created, and no profile is written.
 */
#ifndef SV_CLONE_H
#define SV_CLONE_H

#include <jansson.h>

struct sv_daemon;
struct sv_request;

/* The clone verb: args {name, new, linked: bool (default false)}. Answers
 * req with {name: NEW, profile, from, linked, disks: [{id, file, from,
 * how: "copied" | "linked" | "shared" | "created at first start"}], nics:
 * [{id, mac}], note (linked: the source's images must not change)}. */
void sv_clone(struct sv_daemon *d, struct sv_request *req, json_t *args);

#endif
