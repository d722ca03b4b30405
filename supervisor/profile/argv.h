/*
 * The argv builder: a pure function from a validated profile plus the facts
 * about the host and the guest's runtime dir to the exact QEMU argv. It reads
 * no environment, clock, file or host state, so the same input always gives
 * the same argv (the golden tests in tests/argv/ rely on it).
 */
#ifndef SV_ARGV_H
#define SV_ARGV_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "profile.h"
#include "util.h"

/* The fds every QEMU qsupd starts inherits (besides stdio): the listening
 * QMP and serial sockets, the guest lock (held for QEMU's whole life, see
 * lock.h), and the directory QEMU may create files in (RUNDIR/NAME/qemu,
 * reached as /proc/self/fd/6). The files the profile names follow from
 * SV_FD_FIRST, one per file, in the order the builder lists them. */
#define SV_FD_QMP 3
#define SV_FD_SERIAL 4
#define SV_FD_LOCK 5
#define SV_FD_QEMUDIR 6
#define SV_FD_FIRST 7

/* Longest backing chain qsupd follows under a disk image (layers below the
 * image itself). */
#define SV_CHAIN_MAX 8

/* One layer under a disk image: its backing file and that file's format,
 * as recorded in the image above it. */
struct sv_layer {
	char *path;             /* absolute */
	char *format;           /* qcow2, raw, ... (never probed) */
};

/* A drive's backing chain, top-down: layers[0] backs the image itself. */
struct sv_chain {
	struct sv_layer layers[SV_CHAIN_MAX];
	size_t n;
};

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
	/* The guest agent's channel ([guest] agent = yes): a unix socket path
	 * QEMU listens on, or, with agent_pass, one qsupd binds and listens on
	 * (an SV_FD_SOCKET in the argv's fds) and QEMU inherits. */
	char agent_path[SV_SOCK_PATH_MAX];
	bool agent_pass;
	/* Wait for an incoming migration (-incoming defer, after the extra
	 * arguments): qsupd then sets it up over QMP. */
	bool incoming;
	/* The backing chains of the profile's drives, indexed like
	 * p->drives, as read from the images (image.h); NULL: no drive has a
	 * backing file. Only qcow2 images get an explicit chain. */
	const struct sv_chain *chains;
	/* The image each drive boots from, indexed like p->drives: NULL (or a
	 * NULL entry) is the profile's file; else a qcow2 overlay over it (a
	 * snapshot's active layer, snaprec.h), whose chain is in chains. */
	const char *const *tops;
	/* The VNC display chosen for vnc-display = auto (a free one, found at
	 * start); -1: the profile's (auto without a choice: 0). */
	int vnc_display;
	/* The bridge of a managed network (type = network NICs), or NULL when
	 * the host has no such network; NULL: none known. Called from any
	 * thread: the answer must not change while the daemon runs. */
	const char *(*net_bridge)(void *ctx, const char *network);
	void *net_ctx;
	/* /dev/vhost-net can be opened: virtio NICs on taps get a vhostfd. */
	bool vhost_net;
};

/* Set facts for guest name with its runtime files in RUN_DIR/NAME/
 * (qmp.sock, serial.sock, agent.sock), fds unused, KVM assumed usable, no backing
 * chains, the profile's VNC display. Returns 0, or -ENAMETOOLONG when a socket path would not fit in
 * a sockaddr_un. */
int sv_facts_init(struct sv_facts *f, const char *run_dir, const char *name);

/* How qsupd gets QEMU an fd (the builder names it; qsupd opens it, see
 * fdpass.h): QEMU never opens the profile's files by path. */
enum sv_fd_kind {
	SV_FD_FILE,             /* open(path, flags): disk layers, CD-ROMs,
	                           firmware, the serial log (-add-fd, then
	                           /dev/fdset/N) */
	SV_FD_READ,             /* a file QEMU reads as /proc/self/fd/N (kernel,
	                           initrd, bios): the file itself when QEMU's
	                           identity may read it, else a sealed copy */
	SV_FD_TAP,              /* the tap device ifname (made if missing) */
	SV_FD_BRIDGE,           /* a new tap on bridge, with the NIC's MAC */
	SV_FD_VHOST,            /* open(path = /dev/vhost-net, O_RDWR): a vhostfd */
	SV_FD_SOCKET,           /* a unix socket qsupd binds and listens on at
	                           path (the guest agent's channel) */
};

struct sv_fd_need {
	int fd;                 /* its number in QEMU */
	enum sv_fd_kind kind;
	int flags;              /* SV_FD_FILE: open(2) access flags */
	char *path;             /* SV_FD_FILE, SV_FD_READ */
	char *ifname;           /* SV_FD_TAP */
	char *bridge;           /* SV_FD_BRIDGE */
	char *network;          /* SV_FD_BRIDGE of a type = network NIC: its network */
	uint8_t mac[6];         /* SV_FD_BRIDGE */
	char *what;             /* for messages: "disk root", "kernel", ... */
};

/* A built command line. argv[0] is the QEMU binary; argv is NULL-terminated.
 * warnings are for the log, one line each (they do not stop the guest).
 * fds lists what QEMU must inherit beyond SV_FD_QMP .. SV_FD_QEMUDIR, in
 * fd order from SV_FD_FIRST. */
struct sv_argv {
	char **argv;
	size_t argc;
	struct sv_strv warnings;
	enum sv_accel accel;    /* what was chosen: SV_ACCEL_KVM or SV_ACCEL_TCG */
	struct sv_fd_need *fds;
	size_t nfds;
};

/* Build QEMU's argv for profile p on a host described by f. Returns 0 with
 * *out filled (release with sv_argv_free()), or: -ENODEV when the profile
 * needs KVM and f says it is unusable, -ENAMETOOLONG for a socket path too
 * long, -ENOMEM. On error err->msg holds the whole message, in the profile's
 * "path:line: [section] key: ..." form, and *out is left empty. */
int sv_argv_build(const struct sv_profile *p, const struct sv_facts *f,
                  struct sv_argv *out, struct sv_error *err);

/* The fds as a JSON array of {fd, kind, path | ifname | bridge, mode,
 * what} (a new reference), for the argv verb and --print-argv. */
json_t *sv_argv_fds_json(const struct sv_argv *a);

/* The device id behind a block node QEMU names (BLOCK_IO_ERROR's
 * "node-name"): the builder's "drive.ID", "file.ID" and their backing
 * layers "drive.ID.bN", the snapshot overlays "drive.ID.sN", and hot-plug's "hpdrive.ID", all give ID. Writes
 * it into id (size bytes) and returns true; a name of another shape is
 * copied as it is (false). Pure. */
bool sv_argv_node_device(const char *node, char *id, size_t size);

/* Free the strings of a chain (the struct itself is the caller's). */
void sv_chain_free(struct sv_chain *c);

/* The argv as a JSON array of strings (a new reference). */
json_t *sv_argv_json(const struct sv_argv *a);

/* Free what sv_argv_build() filled; leaves *a empty. */
void sv_argv_free(struct sv_argv *a);

#endif
