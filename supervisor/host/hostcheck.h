/*
 * `qsupctl host-check`: can this host run qsup's guests? A table of checks,
 * each PASS, WARN or FAIL with a detail and, when not PASS, a one-line fix
 * (in the spirit of libvirt's virt-host-validate). It runs without a
 * daemon, in the client: synchronous, and it may fork (the KVM probe as
 * the user QEMU will run as) and run `QEMU --version`; qsupd never calls
 * it. The KVM probe is qsupd's own (sv_host_kvm_probe, host.h).
 *
 * This is the one header of the host layer that qsupctl may include
 * (tests/scripts/test-layers.sh): it exposes nothing but the table.
 */
#ifndef SV_HOSTCHECK_H
#define SV_HOSTCHECK_H

#include <stddef.h>
#include <sys/types.h>

enum sv_hc_result { SV_HC_PASS, SV_HC_WARN, SV_HC_FAIL };

struct sv_hc_item {
	char name[32];          /* "kvm-device", ... (stable: scripts match it) */
	enum sv_hc_result result;
	char detail[400];
	char fix[300];          /* "" when PASS */
};

struct sv_hc_opts {
	const char *profile_dir;        /* NULL: qsupd's default for this user */
	const char *run_dir;            /* NULL: qsupd's default for this user */
};

/* Run every check, in a fixed order. Returns the number of items, stored
 * in *items (free() it), or -ENOMEM. */
int sv_hostcheck_run(const struct sv_hc_opts *o, struct sv_hc_item **items);

/* "PASS", "WARN" or "FAIL". */
const char *sv_hc_result_name(enum sv_hc_result r);

/* qsupd's default profile and run dirs for euid (root: /etc/qsup/profiles
 * and /run/qsup; else under $XDG_CONFIG_HOME and $XDG_RUNTIME_DIR), into
 * the buffers; "" when the environment gives none. */
void sv_hostcheck_default_dirs(uid_t euid, char *pdir, char *rdir, size_t size);

#endif
