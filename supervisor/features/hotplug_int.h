/*
 * Internal to hot-plug (hotplug.c, hp_spec.c, hp_disknic.c, hp_cpumem.c,
 * hp_track.c): the device and operation records, and what the files share.
 *
 * hotplug.c   the per-guest queue (one operation at a time), its QMP
 *             steps, --persist, attach dispatch and detach
 * hp_spec.c   the checks of a device spec (attach arguments, overlay)
 * hp_disknic.c disks (qsupd opens the image chain, QEMU gets fds) and NICs
 * hp_cpumem.c vCPUs and memory
 * hp_track.c  what is plugged: list, QEMU's events, replay after a
 *             restart, export and import for state.json
 */
#ifndef SV_HOTPLUG_INT_H
#define SV_HOTPLUG_INT_H

#include "guest.h"
#include "hotplug.h"
#include "step.h"

#define DETACH_TIMEOUT_MS 10000u

enum dev_kind { DEV_DISK, DEV_NIC, DEV_CPU, DEV_MEM };

struct disk_open;

struct hp_dev {
	struct hp_dev *next;
	enum dev_kind kind;
	char id[SV_ID_MAX + 1];
	char backend[SV_ID_MAX + 8];    /* node or netdev name */
	char bus[32];
	char *desc;                     /* file, NIC type, vCPU type or memory size */
	const char *state;              /* attached, unplugging, pending-unplug */
	json_t *spec;                   /* the attach arguments, to replay */
	int fdsets[SV_CHAIN_MAX + 1];   /* disks: the fd sets of its layers */
	size_t nfdsets;
};

struct hp_op {
	struct hp_op *next;
	struct sv_guest *g;
	struct sv_request *req;
	json_t *args;
	bool detach;
	struct hp_dev *dev;             /* being attached or detached */
	json_t *error;                  /* QEMU's error, kept across a rollback */
	uv_timer_t *timer;
	bool deleted;                   /* DEVICE_DELETED came before device_del's reply */
	bool replay;                    /* re-adding a device after a restart: no request */
	char id[SV_ID_MAX + 1];
	json_t *todo;                   /* vCPUs: device_add arguments still to run */
	json_t *done;                   /* vCPUs: the devices added so far */
	bool writing;                   /* the overlay is being written for it */
	bool opening;                   /* a disk's files are being opened for it */
	struct disk_open *dopen;        /* ... and what was opened */
	bool backend_ok;                /* disks: blockdev-add went through */
	bool ret_error;                 /* ret is an error ({class, desc}) */
	bool orphaned;                  /* ... and QEMU went away meanwhile */
	json_t *ret;                    /* the reply once the overlay is written */
	json_t *old_overlay;            /* to put back if the write fails */
	struct hp_dev *announce;        /* attached: hp_op_done logs and tunes it (hp_dev_announce) */
};

struct sv_hp {
	struct hp_dev *devs;
	struct hp_op *head, *tail;
	bool busy;
	int next_fdset;                 /* hp_disknic.c: 0 until first needed */
	void (*replayed)(struct sv_guest *g);   /* when the replay queue drains */
	json_t *overlay;        /* the overlay's specs (read at start, or when first needed) */
	char *overlay_errs;     /* set: the file must not be rewritten (fix it first) */
};

/* Kinds: "disk"... and the prefix of a kind's backend name ("hpdrive"...). */
extern const char *const hp_kind_names[];
extern const char *const hp_backend_prefix[];
int hp_kind_parse(const char *s);
/* sv_hotplug_check; files: a disk's file is also checked with access()
 * (an overlay's); an attach leaves that to its open, off the loop. */
int hp_check(const struct sv_profile *p, json_t *spec, bool files, struct sv_error *err);

/* hotplug.c: the guest's record (allocated on first use), its devices, the
 * queue (enqueue runs op at once when the guest is idle), an operation's
 * ends (done: reply, then --persist add/drop; fail: an error of ours, or
 * QEMU's kept in op->error), its QMP steps and the backend teardown. */
struct sv_hp *hp_of(struct sv_guest *g);
struct hp_dev *hp_dev_find(struct sv_hp *hp, const char *id);
void hp_dev_unlink(struct sv_hp *hp, struct hp_dev *dev);
const char *hp_arg_str(json_t *args, const char *key);
struct hp_op *hp_enqueue(struct sv_guest *g, struct sv_request *req, json_t *args,
                         bool detach);
void hp_op_free(struct hp_op *op);
void hp_op_drop_dev(struct hp_op *op);
void hp_op_done(struct hp_op *op, json_t *ret, json_t *add, const char *drop);
void hp_op_fail(struct hp_op *op, const char *cls, const char *fmt, const char *arg)
	__attribute__((format(printf, 3, 0)));
void hp_op_fail_qemu(struct hp_op *op);
void hp_detach_done(struct hp_op *op);
void hp_step(struct hp_op *op, const char *cmd, json_t *args, sv_step_fn fn);
void hp_step_fd(struct hp_op *op, const char *cmd, json_t *args, int fd, sv_step_fn fn);
const char *hp_backend_del(const struct hp_dev *dev, json_t **args);
void hp_drop_backend(struct sv_guest *g, struct hp_dev *dev);
void hp_drop_fdsets(struct sv_guest *g, struct hp_dev *dev);
int hp_overlay_load(struct sv_guest *g, const struct sv_profile *p, json_t **ov);

/* hp_spec.c: the size of a memory spec in bytes (0: none or bad); how many
 * of the profile's drives sit on its SCSI controller. */
uint64_t hp_spec_size(json_t *spec);
unsigned hp_scsi_drives(const struct sv_profile *p);

/* hp_disknic.c: a device's listing, its record once QEMU has it, the
 * backend step's continuation, the spare ports, and the starts of a disk
 * (open the chain off the loop, add-fd each layer) and of a tap/bridge NIC;
 * the netdev of a user NIC. */
json_t *hp_dev_json(const struct hp_dev *d);
void hp_dev_add(struct hp_op *op, struct hp_dev *dev, json_t *spec);
/* The log line and the tuning (tune.c) of a device op attached. */
void hp_dev_announce(struct hp_op *op, struct hp_dev *dev);
void hp_attach_backend_added(void *ctx, const struct qmp_result *r);
bool hp_bus_used(struct sv_guest *g, const char *bus);
int hp_free_bus(struct sv_guest *g, bool scsi, char *bus, size_t size);
void hp_disk_start(struct hp_op *op, struct hp_dev *dev);
void hp_disk_open_free(struct disk_open *j);
void hp_bridge_start(struct hp_op *op, struct hp_dev *dev);
json_t *hp_nic_backend(struct hp_dev *dev);

/* hp_cpumem.c: attach vCPUs (the whole operation); a memory backend. */
void hp_cpu_start(struct hp_op *op);
json_t *hp_mem_backend(struct hp_op *op, struct hp_dev *dev);

#endif
