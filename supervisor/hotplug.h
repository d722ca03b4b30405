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
 * Not yet: vCPU and memory, recording devices across restarts (--persist),
 * reconciliation after re-adoption. Devices are forgotten when QEMU ends.
 */
#ifndef SV_HOTPLUG_H
#define SV_HOTPLUG_H

#include <jansson.h>

struct sv_guest;
struct sv_request;

/* The attach verb: args {name, kind: "disk"|"nic", id, ...}. Answers req. */
void sv_hotplug_attach(struct sv_guest *g, struct sv_request *req, json_t *args);

/* The detach verb: args {name, id, timeout (ms, optional)}. Answers req. */
void sv_hotplug_detach(struct sv_guest *g, struct sv_request *req, json_t *args);

/* The devices verb: the profile's devices and the hot-plugged ones. */
json_t *sv_hotplug_list(struct sv_guest *g);

/* QMP events of g (DEVICE_DELETED, DEVICE_UNPLUG_GUEST_ERROR). */
void sv_hotplug_event(struct sv_guest *g, const char *name, json_t *data);

/* QEMU is gone: fail queued operations, forget the devices. */
void sv_hotplug_reset(struct sv_guest *g);

#endif
