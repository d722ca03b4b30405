/*
 * Hot-plug of disks and NICs over QMP, one operation at a time per guest.
 *
 * attach disk: blockdev-add (explicit format, never probed), then device_add
 * on a free spare pcie-root-port (hotplug.N; pci.0 on -M pc). attach nic:
 * netdev_add, then device_add. A failed step rolls back what the operation
 * added. detach: device_del, then the guest's DEVICE_DELETED, then
 * blockdev-del or netdev_del; a guest that does not release the device in
 * time leaves it pending-unplug, and the cleanup runs when the event comes.
 *
 * Hot-plugged devices come back when the guest is restarted (a crash, a
 * restart): they are re-added over QMP while the new QEMU waits in -S,
 * before cont. A stop drops them. They are recorded in state.json, so a
 * re-adopting qsupd lists them again (and reconciles with QEMU's own list).
 * vCPUs: query-hotpluggable-cpus, then device_add per vCPU (ids vcpuN, N
 * its slot in topology order). Memory: object-add of a memory-backend-ram,
 * then device_add of a pc-dimm; detach ends with object-del.
 */
#ifndef SV_HOTPLUG_H
#define SV_HOTPLUG_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

struct sv_guest;
struct sv_profile;
struct sv_request;

/* Check attach arguments (or an overlay section, as the same JSON) against
 * the guest's profile: kind, id, the keys allowed for the kind and their
 * values; a disk's file must exist. Limits that depend on what is attached already (free slots,
 * vCPUs and memory left) are checked when the attach runs. Returns 0, or
 * a negative errno with err's class and message set. A disk's readonly
 * (the old spelling) becomes read-only in spec. */
struct sv_error;
int sv_hotplug_check(const struct sv_profile *p, json_t *spec, struct sv_error *err);

/* The attach verb: args {name, kind: "disk"|"nic", id, ...}. Answers req. */
void sv_hotplug_attach(struct sv_guest *g, struct sv_request *req, json_t *args);

/* The detach verb: args {name, id, timeout (ms, optional)}. Answers req. */
void sv_hotplug_detach(struct sv_guest *g, struct sv_request *req, json_t *args);

/* Is an attach or detach of a disk queued or running? */
bool sv_hotplug_disk_busy(struct sv_guest *g);

/* Whether name is a hot-plugged device qsupd tracks (or is attaching),
 * or one of its backends: "hpdrive.ID", "hpnet.ID", "hpmem.ID", "hpfd.ID". */
bool sv_hotplug_tracks(struct sv_guest *g, const char *name);

/* The profile's devices and the hot-plugged ones, as the profile and
 * hot-plug know them. */
json_t *sv_hotplug_list(struct sv_guest *g);

/* The devices verb: sv_hotplug_list() with each CD-ROM's medium as QEMU
 * has it now (query-block, while QEMU runs): ejected, "backend" null and
 * "empty" true; changed (over the qmp passthrough), QEMU's file name.
 * Answers req. */
void sv_hotplug_devices(struct sv_guest *g, struct sv_request *req, json_t *args);

/* QMP events of g (DEVICE_DELETED, DEVICE_UNPLUG_GUEST_ERROR). */
void sv_hotplug_event(struct sv_guest *g, const char *name, json_t *data);

/* Free everything (the guest is being released). */
void sv_hotplug_reset(struct sv_guest *g);

/* QEMU is gone: fail queued operations; attached devices are kept, to be
 * re-added if the guest is started again by a restart. */
void sv_hotplug_qemu_gone(struct sv_guest *g);

/* Re-add the kept devices into the new QEMU (stopped with -S, before
 * cont); done(g) is called once they are all in (failures are logged).
 * Returns false, without calling done, when there is nothing to re-add. */
bool sv_hotplug_replay(struct sv_guest *g, void (*done)(struct sv_guest *g));

/* For state.json: the hot-plugged devices, as [{spec, bus, state}]. */
json_t *sv_hotplug_export(struct sv_guest *g);

/* Re-adoption: take back the devices a state file recorded (as exported),
 * then, once QMP is back, drop those QEMU no longer has (unplugged while
 * qsupd was down) together with their backends. */
void sv_hotplug_import(struct sv_guest *g, json_t *saved);

/* A migration's destination (or a restore): the source's devices (as
 * exported), to be re-added into the waiting QEMU, and no overlay. */
void sv_hotplug_handover(struct sv_guest *g, json_t *saved);
void sv_hotplug_reconcile(struct sv_guest *g);

/* What hot-plug hears of a guest (guest.h): it replays its devices before
 * cont, follows DEVICE_* events, reconciles after a re-adoption, and
 * drops its devices when the guest stops or is released. */
extern const struct sv_guest_observer sv_hotplug_observer;

/* Is b (a query-block entry) the block device of the device id? Its qdev is
 * the id, or a QOM path under /machine/peripheral/ID. */
bool sv_block_of(json_t *b, const char *id);

/* The "inserted" object (node-name, drv, image...) of the device id's
 * block device in blocks (query-block's answer, or NULL), or NULL where it
 * has none or no medium in it. QEMU lists one a device; of more, the last. */
json_t *sv_block_inserted(json_t *blocks, const char *id);

#endif
