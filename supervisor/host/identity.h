/*
 * Who a guest's QEMU runs as.
 *
 * Under a root qsupd, a profile without [qemu] user gets an identity of its
 * own, in the spirit of systemd's DynamicUser: a uid from a reserved range
 * (SV_UID_FIRST .. +SV_UID_COUNT by default, qsupd --uid-range), chosen by a
 * hash of the guest's name so that it is the same at every start and on
 * every host, with the next free one taken when two guests of one daemon
 * collide. Its gid is the kvm group (so that /dev/kvm opens), or [qemu]
 * group. QEMU gets no supplementary groups and no capabilities, and runs
 * with no_new_privs (qsupd sets it for everything it spawns).
 *
 * [qemu] user = NAME|UID pins an account (its gid is [qemu] group, else the
 * kvm group); user = root keeps QEMU as root, only when written so.
 * A qsupd that is not root runs QEMU as itself; a profile naming another
 * user then cannot start.
 */
#ifndef SV_IDENTITY_H
#define SV_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "profile.h"
#include "util.h"

/* The default range of per-guest uids: 2^24 uids from 0x70000000, a block
 * systemd documents as unused (above the container ranges, below the
 * foreign-image range). */
#define SV_UID_FIRST 1879048192u
#define SV_UID_COUNT 16777216u

/* What qsupd knows when it picks identities. */
struct sv_id_config {
	bool root;              /* qsupd runs as root: it can switch */
	uid_t first;            /* the per-guest range */
	uint32_t count;
	gid_t kvm_gid;          /* the kvm group; with have_kvm false, the uid */
	bool have_kvm;
};

struct sv_identity {
	uid_t uid;
	gid_t gid;
	bool drop;              /* switch to uid/gid before exec */
	bool dynamic;           /* a per-guest uid from the range */
};

/* Fill cfg for a daemon with euid me, the range first..first+count-1
 * (count 0: the default), looking the kvm group up (NSS: once, at start). */
void sv_id_config_init(struct sv_id_config *cfg, uid_t me, uid_t first, uint32_t count);

/* The per-guest uid of name before collisions are settled: first + the
 * FNV-1a hash of "qsup-guest:" name, modulo count. Pure. */
uid_t sv_identity_hash_uid(const char *name, uid_t first, uint32_t count);

/* The next uid of the range after uid (wrapping), for collisions. */
uid_t sv_identity_next_uid(uid_t uid, uid_t first, uint32_t count);

/* Parse a range "FIRST-LAST" (inclusive, both above 0 and below 2^31).
 * Returns 0 or -EINVAL. */
int sv_identity_range_parse(const char *s, uid_t *first, uint32_t *count);

/* The identity for p's QEMU (guest name), looking names up through NSS:
 * it may block, so run it off the loop. A dynamic uid is the hash uid; the
 * caller settles collisions. Returns 0, or a negative errno with the
 * reason in err (an unknown user or group, or a user other than qsupd's
 * own under a qsupd that is not root). */
int sv_identity_resolve(const struct sv_profile *p, const char *name,
                        const struct sv_id_config *cfg, struct sv_identity *out,
                        struct sv_error *err);

/* Can the identity read a file with this owner and mode (its permission
 * bits only: an ACL that would allow more is not seen)? */
bool sv_identity_can_read(const struct sv_identity *id, uid_t owner, gid_t group,
                          mode_t mode);

#endif
