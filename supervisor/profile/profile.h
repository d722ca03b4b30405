/*
 * Profiles: one INI file per guest (web1.ini defines the guest web1), parsed
 * with libinih into a validated struct sv_profile. Every problem is reported
 * as "path:line: [section] key: what is wrong, and what is allowed", and all
 * of them are collected, not just the first. The schema is documented in
 * qsup.ini(5); keep the two in step.
 */
#ifndef SV_PROFILE_H
#define SV_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Longest disk, CD-ROM or NIC id: block node names ("file.ID") must stay
 * under QEMU's 32 characters. */
#define SV_ID_MAX 20
/* Profile files larger than this are refused. */
#define SV_PROFILE_MAX_BYTES (1024 * 1024)

enum sv_accel { SV_ACCEL_KVM, SV_ACCEL_TCG, SV_ACCEL_KVM_TCG };
enum sv_machine_family { SV_MACHINE_Q35, SV_MACHINE_PC };
enum sv_firmware { SV_FIRMWARE_BIOS, SV_FIRMWARE_UEFI };
enum sv_bus { SV_BUS_VIRTIO, SV_BUS_SCSI, SV_BUS_IDE, SV_BUS_SATA };
enum sv_cache {
	SV_CACHE_WRITEBACK, SV_CACHE_NONE, SV_CACHE_WRITETHROUGH,
	SV_CACHE_DIRECTSYNC, SV_CACHE_UNSAFE,
};
enum sv_aio { SV_AIO_THREADS, SV_AIO_NATIVE, SV_AIO_IO_URING };
enum sv_nic_type { SV_NIC_USER, SV_NIC_BRIDGE, SV_NIC_TAP, SV_NIC_NETWORK };
enum sv_nic_model { SV_NIC_VIRTIO, SV_NIC_E1000E, SV_NIC_E1000, SV_NIC_RTL8139 };
enum sv_restart_policy { SV_RESTART_NEVER, SV_RESTART_ON_FAILURE, SV_RESTART_ALWAYS };
enum sv_spawn { SV_SPAWN_AUTO, SV_SPAWN_ALLOW, SV_SPAWN_DENY };
/* How much of the qmp passthrough verb the guest allows (passthrough.h). */
enum sv_qmp_passthrough { SV_QMP_FULL, SV_QMP_QUERY, SV_QMP_OFF };

/* I/O limits per disk (setkeys.h names and bounds them). */
#define SV_IOTUNE_N 18

/* A [disk.ID] or [cdrom.ID] section. */
struct sv_drive {
	char *id;
	int line;               /* of the section header */
	bool cdrom;
	char *file;             /* absolute path; NULL: an empty CD-ROM drive */
	char *format;           /* raw, qcow2, ... (CD-ROM: raw by default) */
	enum sv_bus bus;
	enum sv_cache cache;
	enum sv_aio aio;
	bool read_only;         /* always true for a CD-ROM */
	char *serial;           /* NULL: none */
	int boot_index;         /* -1: none */
	uint64_t size;          /* bytes; 0: the image must already exist */
	uint64_t iotune[SV_IOTUNE_N];   /* I/O limits (setkeys.h); 0: none */
};

/* A host port forward of a user NIC: proto:haddr:hport-[gaddr]:gport. */
struct sv_forward {
	bool udp;
	char host_addr[16];     /* IPv4, never empty (127.0.0.1 by default) */
	uint16_t host_port;
	char guest_addr[16];    /* IPv4, or "" for the guest's DHCP address */
	uint16_t guest_port;
};

/* A [nic.ID] section. */
struct sv_nic {
	char *id;
	int line;
	enum sv_nic_type type;
	enum sv_nic_model model;
	uint8_t mac[6];         /* given, or sv_mac_stable(name, id) */
	char *bridge;           /* bridge: the bridge to join */
	char *ifname;           /* tap: the pre-made tap device */
	char *network;          /* network: the managed network's name (network.h) */
	struct sv_forward *forwards;    /* user: host port forwards */
	size_t nforwards;
	int boot_index;         /* -1: none */
};

struct sv_profile {
	char *path;             /* as given */
	char *dir;              /* absolute dir of the profile: relative paths' base */
	char *name;             /* the file stem */
	uint64_t digest;        /* of the file's bytes: tells an edited profile */

	/* [guest] */
	int guest_line;         /* 0 when the section is absent */
	uint64_t memory;        /* bytes, multiple of 1 MiB */
	uint64_t max_memory;    /* 0: no memory hot-plug */
	unsigned slots;         /* memory hot-plug slots, 0 without max_memory */
	unsigned cpus, max_cpus;
	char *machine;          /* QEMU machine type, e.g. "q35" */
	enum sv_machine_family family;
	enum sv_accel accel;
	int accel_line;         /* 0: accel was not given */
	char *cpu_model;        /* NULL: QEMU's default */
	enum sv_firmware firmware;
	char *bios;             /* NULL: QEMU's SeaBIOS */
	char *uefi_code, *uefi_vars, *uefi_vars_template;
	char *kernel, *initrd, *append;
	struct sv_strv boot_order;      /* device ids, first boots first */
	unsigned hotplug_slots; /* spare pcie-root-ports (q35) */
	bool autostart;
	bool agent;             /* the QEMU guest agent's channel (virtio-serial) */
	char *cpu_affinity;     /* CPU list for the vCPU threads; NULL: not pinned */
	char *emulator_affinity;        /* ... for QEMU's other threads */
	bool balloon;           /* a virtio-balloon-pci device */
	bool balloon_free_page_reporting;

	struct sv_drive *drives;        /* disks and CD-ROMs, in file order */
	size_t ndrives;
	struct sv_nic *nics;
	size_t nnics;

	/* [serial] */
	char *serial_log;       /* NULL: no log file */

	/* [display] */
	bool vnc;
	char *vnc_listen;       /* address, IPv6 without brackets */
	unsigned vnc_display;
	bool vnc_display_auto;  /* vnc-display = auto: a free one at each start */
	char *vnc_password_file;        /* NULL: none */
	bool vnc_password_generate;     /* password = generate */

	/* [restart] */
	enum sv_restart_policy restart_policy;
	uint64_t restart_delay_ms, restart_max_delay_ms, restart_interval_ms;
	uint64_t restart_stable_ms;     /* uptime that resets the delay's growth */
	unsigned restart_burst;

	/* [shutdown] */
	uint64_t shutdown_timeout_ms;

	/* [migration] */
	struct sv_strv migrate_caps;
	uint64_t migrate_downtime_ms;   /* 0: QEMU's default */
	uint64_t migrate_bandwidth;     /* bytes/s; 0: QEMU's default */
	unsigned migrate_multifd_channels;      /* 0: QEMU's default */
	int migrate_tls;                /* [migration] tls: 0 none, 1 psk (mig_copy.c) */

	/* [qemu] */
	char *binary;
	char *user, *group;     /* NULL: qsupd's choice (see identity.h) */
	uint64_t start_timeout_ms;      /* spawn until running */
	bool sandbox;
	enum sv_spawn sandbox_spawn;
	struct sv_strv extra_args;
	enum sv_qmp_passthrough qmp_passthrough;

	/* Where each section and key was written, for messages about the
	 * profile that come later (qsupd --check's host checks): one
	 * "SECTION\tKEY\tLINE" per key, "SECTION\t\tLINE" per header. */
	struct sv_strv lines;
};

/* Parse and validate the profile in buf (len bytes, may hold NULs, which are
 * reported), as if read from path: path names the guest (its stem), is the
 * prefix of every message, and its directory is the base of relative paths
 * (a relative path is taken from the current directory). On success returns
 * 0 and sets *out (free with sv_profile_free()). Otherwise appends one
 * message per problem to errs and returns -EINVAL (or -ENOMEM). */
int sv_profile_parse(const char *path, const char *buf, size_t len,
                     struct sv_profile **out, struct sv_strv *errs);

/* Read the file at path (at most SV_PROFILE_MAX_BYTES) and parse it as above.
 * A symlink is followed, and its target's directory is the base of relative
 * paths (the link must have the target's name).
 * Returns 0, -EINVAL (messages in errs), or -errno when the file cannot be
 * read (with a message in errs too). */
int sv_profile_load(const char *path, struct sv_profile **out, struct sv_strv *errs);

/* The rules profiles apply, for hot-plug to apply the same: a disk, CD-ROM
 * or NIC id ([A-Za-z][A-Za-z0-9_-]*, at most SV_ID_MAX), and a disk image
 * format qsup accepts (raw, qcow2, vmdk, vdi, vhdx, vpc, qed). */
bool sv_device_id_valid(const char *id);
bool sv_format_valid(const char *fmt);

/* Free a profile (NULL is fine). */
void sv_profile_free(struct sv_profile *p);

/* The index of the drive or NIC with this id: drives count from 0, NICs
 * from ndrives. Returns -1 when there is none. */
int sv_profile_find_device(const struct sv_profile *p, const char *id);

/* One key of a device section ("disk", "cdrom" or "nic"), checked by the
 * profile's own key table: the one definition of a device's keys and
 * values, which the attach verb and the --persist overlay use too. value
 * is as an INI file would hold it. Returns 0, -ENOENT when the section has
 * no such key, or -EINVAL when the value is refused; err (class
 * InvalidArgument) says why in the profile's words ("serial: \"a b\" is
 * not allowed; use ..."). */
struct sv_error;
int sv_profile_device_key(const char *section, const char *key, const char *value,
                          struct sv_error *err);

/* The line of key in section ("disk.root", "guest"...) as written; the
 * section header's line when the key was not given (key NULL: the
 * header's); 0 when the section was not written either. */
int sv_profile_line(const struct sv_profile *p, const char *section, const char *key);

/* The passthrough policy's name, as written in profiles. */
const char *sv_qmp_passthrough_name(enum sv_qmp_passthrough q);

#endif
