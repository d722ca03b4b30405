/*
 * Host facts that the argv builder must not probe itself: whether KVM is
 * usable. Kept apart from argv.c so that the builder stays pure.
 */
#ifndef SV_HOST_H
#define SV_HOST_H

#include "util.h"

/* The KVM device, unless a test points elsewhere. */
#define SV_KVM_DEVICE "/dev/kvm"

/* Probe whether dev (NULL: SV_KVM_DEVICE) can run a guest: it opens, answers
 * KVM_GET_API_VERSION with the stable API (12), and KVM_CREATE_VM succeeds.
 * Returns 0 when usable, else a negative errno (-ENOENT, -EACCES, -ENOTTY,
 * -EPROTO for a wrong API version, or KVM_CREATE_VM's error) with the reason
 * in err. Note that a usable /dev/kvm does not prove that every guest boots
 * under KVM (nested or paravirtual KVM may lack features). */
int sv_host_kvm_probe(const char *dev, struct sv_error *err);

#endif
