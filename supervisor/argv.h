/*
 * The argv builder: a pure function from a validated profile plus the facts
 * about the host and the guest's runtime dir to the exact QEMU argv. It reads
 * no environment, clock, file or host state, so the same input always gives
 * the same argv (the golden tests in tests/argv/ rely on it).
 */
#ifndef SV_ARGV_H
#define SV_ARGV_H

#include <stdbool.h>

#include <jansson.h>

#include "profile.h"
#include "util.h"

/* What the builder needs to know beyond the profile. Fill it with
 * sv_facts_init() and adjust. */
struct sv_facts {
	bool kvm_usable;        /* /dev/kvm can create a VM (see host.h) */
	/* QMP and serial console: a unix socket path QEMU listens on, or, when
	 * the fd is >= 0, a listening socket QEMU inherits as that fd. */
	char qmp_path[SV_SOCK_PATH_MAX];
	char serial_path[SV_SOCK_PATH_MAX];
	int qmp_fd;
	int serial_fd;
	/* Wait for an incoming migration (-incoming defer, after the extra
	 * arguments): qsupd then sets it up over QMP. */
	bool incoming;
};

/* Set facts for guest name with its runtime files in RUN_DIR/NAME/
 * (qmp.sock, serial.sock), fds unused, KVM assumed usable. Returns 0, or
 * -ENAMETOOLONG when a socket path would not fit in a sockaddr_un. */
int sv_facts_init(struct sv_facts *f, const char *run_dir, const char *name);

/* A built command line. argv[0] is the QEMU binary; argv is NULL-terminated.
 * warnings are for the log, one line each (they do not stop the guest). */
struct sv_argv {
	char **argv;
	size_t argc;
	struct sv_strv warnings;
	enum sv_accel accel;    /* what was chosen: SV_ACCEL_KVM or SV_ACCEL_TCG */
};

/* Build QEMU's argv for profile p on a host described by f. Returns 0 with
 * *out filled (release with sv_argv_free()), or: -ENODEV when the profile
 * needs KVM and f says it is unusable, -ENAMETOOLONG for a socket path too
 * long, -ENOMEM. On error err->msg holds the whole message, in the profile's
 * "path:line: [section] key: ..." form, and *out is left empty. */
int sv_argv_build(const struct sv_profile *p, const struct sv_facts *f,
                  struct sv_argv *out, struct sv_error *err);

/* The argv as a JSON array of strings (a new reference). */
json_t *sv_argv_json(const struct sv_argv *a);

/* Free what sv_argv_build() filled; leaves *a empty. */
void sv_argv_free(struct sv_argv *a);

#endif
