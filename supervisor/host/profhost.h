/*
 * qsupd --check's look at the host a profile will run on, after the pure
 * parser (profile.h) accepted it: what must exist does (disk images and
 * their backing chains, CD-ROM images, kernel, initrd, firmware, the
 * directories of files made at start), with the access qsupd needs
 * (qsupd opens each file itself, as its own user, and hands QEMU the fd:
 * QEMU's per-guest uid needs no access of its own), bridges exist; and
 * across profiles, what two guests cannot both have: a VNC display on the
 * same address, a host port forward, a MAC.
 *
 * Messages are the parser's "PATH:LINE: [section] key: what; what to do",
 * with "warning: " after the line for warnings. Synchronous file system
 * calls: --check only, never on the daemon's loop.
 */
#ifndef SV_PROFHOST_H
#define SV_PROFHOST_H

#include <stdbool.h>
#include <stdint.h>

#include "profile.h"
#include "util.h"

/* Check p against this host: errors (the start would fail) into errs,
 * warnings (a file made at the first start...) into warns. Returns the
 * number of errors. */
size_t sv_profhost_check(const struct sv_profile *p, struct sv_strv *errs,
                         struct sv_strv *warns);

/* What the profiles checked so far hold that another may not. Zero it. */
struct sv_profhost_claim;
struct sv_profhost_set {
	struct sv_profhost_claim *v;
	size_t n, cap;
};

/* Check p's VNC display, host port forwards and MACs against the profiles
 * added before it (each clash an error at p's line, naming the other),
 * then add p's. Returns the number of clashes. */
size_t sv_profhost_claim(struct sv_profhost_set *set, const struct sv_profile *p,
                         struct sv_strv *errs);

void sv_profhost_set_free(struct sv_profhost_set *set);

#endif
