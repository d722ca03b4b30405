/* Hot-plug of disks and NICs (hotplug_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "request.h"
#include "hotplug_int.h"
#include "snaprec.h"
#include "log.h"
#include "fdpass.h"
#include "image.h"
#include "tune.h"

/* ---- disks and NICs ---- */

json_t *hp_dev_json(const struct hp_dev *d)
{
	const char *source = json_is_true(json_object_get(d->spec, "persist")) ? "overlay"
	                   : "hotplug";
	return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?}", "id", d->id,
	                 "kind", hp_kind_names[d->kind], "source", source,
	                 "state", d->state, "bus", d->bus[0] ? d->bus : NULL, "backend", d->desc,
	                 "network", json_string_value(json_object_get(d->spec, "network")),
	                 "mac", json_string_value(json_object_get(d->spec, "mac")));
}

/* dev is in QEMU: record it (spec: the attach arguments, for a replay). */
static void dev_record(struct hp_op *op, struct hp_dev *dev, json_t *spec)
{
	struct sv_hp *hp = op->g->hp;
	dev->state = "attached";
	dev->next = hp->devs;
	hp->devs = dev;
	op->dev = NULL;
	dev->spec = json_deep_copy(spec);
	json_object_del(dev->spec, "name");
	json_object_del(dev->spec, "count");
}

void hp_dev_announce(struct hp_op *op, struct hp_dev *dev)
{
	sv_log(SV_LOG_INFO, op->g->name, "%s %s%s%s", dev->id,
	       op->replay ? "re-added" : "attached", dev->bus[0] ? " on " : "", dev->bus);
	sv_tune_hotplugged(op->g, hp_kind_names[dev->kind], dev->id, dev->spec, op->replay);
}

void hp_dev_add(struct hp_op *op, struct hp_dev *dev, json_t *spec)
{
	dev_record(op, dev, spec);
	hp_dev_announce(op, dev);
}

static void attach_rolled_back(void *ctx, const struct qmp_result *r)
{
	struct hp_op *op = ctx;
	(void)r;
	hp_drop_fdsets(op->g, op->dev);
	hp_op_drop_dev(op);
	hp_op_fail_qemu(op);
}

static void attach_device_added(void *ctx, const struct qmp_result *r)
{
	struct hp_op *op = ctx;
	struct hp_dev *dev = op->dev;
	if (r->status != 0) {
		/* Roll back the backend this operation added. */
		sv_log(SV_LOG_WARN, op->g->name, "attach %s failed at device_add; rolling back",
		       dev->id);
		json_t *a;
		const char *cmd = hp_backend_del(dev, &a);
		hp_step(op, cmd, a, attach_rolled_back);
		return;
	}
	dev_record(op, dev, op->args);
	sv_guest_persist(op->g);   /* a later qsupd re-adopts the guest with it */
	op->announce = dev;   /* logged and tuned once answered: the answer first */
	json_t *add = json_pack("[O]", dev->spec);
	hp_op_done(op, hp_dev_json(dev), add, NULL);
	json_decref(add);
}

static json_t *device_args(struct hp_op *op);

static void nic_mac(struct hp_op *op, const char *id, uint8_t m[6])
{
	const char *given = hp_arg_str(op->args, "mac");
	if (!given || sv_mac_parse(given, m) < 0)
		sv_mac_stable(op->g->name, id, m);
}

void hp_attach_backend_added(void *ctx, const struct qmp_result *r)
{
	struct hp_op *op = ctx;
	struct hp_dev *dev = op->dev;
	if (r->status != 0 && dev->kind == DEV_NIC && op->g->qmp &&
	    strcmp(sv_or(hp_arg_str(op->args, "type"), "user"), "user")) {
		/* The tap fd stays in QEMU's named fds until closed. */
		char fdname[SV_ID_MAX + 16];
		snprintf(fdname, sizeof(fdname), "hpfd.%s", dev->id);
		sv_qmp_fire(op->g->qmp, "closefd", json_pack("{s:s}", "fdname", fdname));
	}
	if (r->status != 0) {
		hp_drop_fdsets(op->g, dev);
		hp_op_drop_dev(op);
		hp_op_fail_qemu(op);
		return;
	}
	if (dev->kind == DEV_MEM) {
		hp_step(op, "device_add", json_pack("{s:s, s:s, s:s}", "driver", "pc-dimm", "id",
		                                 dev->id, "memdev", dev->backend),
		     attach_device_added);
		return;
	}
	hp_step(op, "device_add", device_args(op), attach_device_added);
}

/* device_add's arguments for op's disk or NIC, over its backend. */
static json_t *device_args(struct hp_op *op)
{
	struct hp_dev *dev = op->dev;
	const char *model = hp_arg_str(op->args, "model");
	bool scsi = !strncmp(dev->bus, "scsi:", 5);
	json_t *a = json_pack("{s:s, s:s, s:s}", "id", dev->id, "bus", scsi ? "scsi.0.0" : dev->bus,
	                      "driver", scsi ? "scsi-hd" : dev->kind == DEV_DISK ? "virtio-blk-pci"
	                      : model && !strcmp(model, "e1000e") ? "e1000e" : "virtio-net-pci");
	if (scsi)
		json_object_set_new(a, "scsi-id", json_integer(strtol(dev->bus + 5, NULL, 10)));
	if (dev->kind == DEV_DISK) {
		const char *cache = sv_or(hp_arg_str(op->args, "cache"), "");
		json_object_set_new(a, "drive", json_string(dev->backend));
		json_t *serial = json_object_get(op->args, "serial");
		if (json_is_string(serial))
			json_object_set(a, "serial", serial);
		if (!strcmp(cache, "writethrough") || !strcmp(cache, "directsync"))
			json_object_set_new(a, "write-cache", json_string("off"));
	} else {
		char mac[18];
		uint8_t m[6];
		nic_mac(op, dev->id, m);
		sv_mac_format(m, mac);
		json_object_set_new(a, "netdev", json_string(dev->backend));
		json_object_set_new(a, "mac", json_string(mac));
	}
	return a;
}

static void bridge_fd_passed(void *ctx, const struct qmp_result *r)
{
	struct hp_op *op = ctx;
	struct hp_dev *dev = op->dev;
	if (r->status != 0) {
		hp_op_drop_dev(op);
		hp_op_fail_qemu(op);
		return;
	}
	char fdname[SV_ID_MAX + 16];
	snprintf(fdname, sizeof(fdname), "hpfd.%s", dev->id);
	hp_step(op, "netdev_add", json_pack("{s:s, s:s, s:s}", "type", "tap", "id", dev->backend,
	                                 "fd", fdname), hp_attach_backend_added);
}

bool hp_bus_used(struct sv_guest *g, const char *bus)
{
	for (struct hp_dev *d = g->hp->devs; d; d = d->next)
		if (strcmp(d->bus, bus) == 0 && strcmp(bus, "pci.0") != 0)
			return true;
	return false;
}

/* A free spare port (q35), or pci.0 (pc); for a SCSI disk, a free target
 * on the profile's controller ("scsi:N"). Returns 0, or -ENOSPC. */
int hp_free_bus(struct sv_guest *g, bool scsi, char *bus, size_t size)
{
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	for (unsigned i = hp_scsi_drives(p); scsi && i < 256; i++) {
		snprintf(bus, size, "scsi:%u", i);
		if (!hp_bus_used(g, bus))
			return 0;
	}
	if (scsi)
		return -ENOSPC;
	if (p->family != SV_MACHINE_Q35) {
		snprintf(bus, size, "pci.0");
		return 0;
	}
	for (unsigned i = 0; i < p->hotplug_slots; i++) {
		snprintf(bus, size, "hotplug.%u", i);
		if (!hp_bus_used(g, bus))
			return 0;
	}
	return -ENOSPC;
}

/* ---- disks: qsupd opens the image and its backing chain, QEMU gets fds ---- */

struct disk_open {
	uv_work_t work;
	struct hp_op *op;
	char *path;
	char format[16];
	bool ro;
	char *record;                   /* a --persist disk: the snapshot record to follow */
	char id[SV_ID_MAX + 1];
	struct sv_chain chain;
	int fds[SV_CHAIN_MAX + 1];      /* [0] the image, [i] backing layer i */
	size_t nfds, next;              /* opened; the next to hand to QEMU */
	int rc;
	struct sv_error err;
};

void hp_disk_open_free(struct disk_open *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->nfds; i++)
		if (j->fds[i] >= 0)
			close(j->fds[i]);
	sv_chain_free(&j->chain);
	free(j->path);
	free(j->record);
	free(j);
}

static void disk_open_work(uv_work_t *w)
{
	struct disk_open *j = w->data;
	/* A disk with snapshots boots its active overlay (snaprec.h). */
	json_t *rec = NULL, *a;
	if (j->record && (j->rc = sv_snaprec_read_at(j->record, &rec, &j->err)) < 0)
		return;
	if (rec && !j->ro && (a = sv_snaprec_active(rec, j->id))) {
		char *top = strdup(sv_jstr(a, "file", ""));
		if (top) {
			free(j->path);
			j->path = top;
			snprintf(j->format, sizeof(j->format), "qcow2");
		}
	}
	json_decref(rec);
	j->fds[0] = sv_fdpass_file(j->path, j->ro ? O_RDONLY : O_RDWR, &j->err);
	if ((j->rc = j->fds[0]) < 0)
		return;
	j->nfds = 1;
	if ((j->rc = sv_image_chain(j->path, j->format, &j->chain, &j->err)) < 0)
		return;
	for (size_t i = 0; i < j->chain.n; i++, j->nfds++) {
		j->fds[j->nfds] = sv_fdpass_file(j->chain.layers[i].path, O_RDONLY, &j->err);
		if ((j->rc = j->fds[j->nfds]) < 0)
			return;
	}
	j->rc = 0;
}

/* The blockdev-add of layer i and those under it (nested): the image's
 * format node over a file node on its fd set, its backing spelled out.
 * Only what differs from QEMU's defaults is spelled out: blockdev-add
 * opens its top node read-write with cache.direct and cache.no-flush off;
 * a nested "file" child inherits read-only and both cache flags from its
 * parent, a nested "backing" child the cache flags and read-only on
 * (block.c, bdrv_inherited_options). So read-only and cache are set
 * on the top node alone, and only when on. */
static json_t *layer_json(struct hp_op *op, struct hp_dev *dev, size_t i)
{
	struct disk_open *j = op->dopen;
	const char *cache = sv_or(hp_arg_str(op->args, "cache"), "writeback");
	const char *fmt = i ? j->chain.layers[i - 1].format : j->format;
	bool cow = !strcmp(fmt, "qcow2");
	char fdset[32];
	const char *path = i ? j->chain.layers[i - 1].path : j->path;
	snprintf(fdset, sizeof(fdset), "/dev/fdset/%d", dev->fdsets[i]);
	json_t *r = json_pack("{s:s, s:{s:s, s:s}}", "driver", fmt, "file", "driver",
	                      strncmp(path, "/dev/", 5) ? "file" : "host_device",
	                      "filename", fdset);
	if (!i) {
		/* cache= as in profiles: O_DIRECT for none/directsync, no
		 * flushes for unsafe; writethrough/directsync turn the
		 * device's write cache off (device_add). */
		json_object_set_new(r, "node-name", json_string(dev->backend));
		if (j->ro)
			json_object_set_new(r, "read-only", json_true());
		if (!strcmp(cache, "none") || !strcmp(cache, "directsync"))
			json_object_set_new(r, "cache", json_pack("{s:b}", "direct", true));
		else if (!strcmp(cache, "unsafe"))
			json_object_set_new(r, "cache", json_pack("{s:b}", "no-flush", true));
	}
	if (cow)
		json_object_set_new(r, "backing", i < j->chain.n ? layer_json(op, dev, i + 1)
		                    : json_null());
	return r;
}

/* The id of a new fd set for g's hot-plug. QEMU names the fd sets of the
 * command line after their fd numbers, and add-fd without an id takes the
 * lowest free one (other features do): hot-plug names its own, counting up
 * from a random point between 10^8 and 10^9 and above every set its
 * devices hold, so that it can name them before QEMU answers. (/dev/fdset/N
 * takes N up to INT_MAX.) A set of a device that qsupd lost track of (a
 * damaged state.json) is missed only by that chance. Nine digits, whatever
 * the draw: QEMU reads QMP a byte at a time (some 2 us a byte on a small
 * host), so an attach costs the same every time. */
#define FDSET_LOW 100000000

static int fdset_next(struct sv_guest *g)
{
	struct sv_hp *hp = g->hp;
	if (!hp->next_fdset) {
		uint32_t r = 0;
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
			r = (uint32_t)uv_hrtime();
		hp->next_fdset = FDSET_LOW + (int)(r % (9 * FDSET_LOW));
		for (struct hp_dev *d = hp->devs; d; d = d->next)
			for (size_t i = 0; i < d->nfdsets; i++)
				if (d->fdsets[i] >= hp->next_fdset && d->fdsets[i] < INT_MAX - 1024)
					hp->next_fdset = d->fdsets[i] + 1;
	}
	if (hp->next_fdset >= INT_MAX - 1)
		hp->next_fdset = FDSET_LOW;
	return hp->next_fdset++;
}

static void disk_device_added(void *ctx, const struct qmp_result *r)
{
	struct hp_op *op = ctx;
	if (r->status != 0 && !op->backend_ok) {   /* nothing of it in QEMU but fds */
		hp_drop_fdsets(op->g, op->dev);
		hp_op_drop_dev(op);
		hp_op_fail_qemu(op);
		return;
	}
	attach_device_added(ctx, r);   /* done, or the backend rolled back */
}

static void disk_backend_added(void *ctx, const struct qmp_result *r)
{
	((struct hp_op *)ctx)->backend_ok = r->status == 0;
}

static void disk_fd_added(void *ctx, const struct qmp_result *r)
{
	struct hp_op *op = ctx;
	struct disk_open *j = op->dopen;
	(void)r;   /* an error is kept for the reply (op_seen); blockdev-add fails on it */
	close(j->fds[j->next]);   /* QEMU has its copy (or the step failed) */
	j->fds[j->next++] = -1;
}

/* Hand QEMU every opened file (add-fd, into fd sets named here), the
 * block node over them and the device, without waiting for a reply in
 * between: QEMU runs them in order, a failure fails what follows, and the
 * last reply decides (done, or the rollback of what went in). A round trip
 * per command less than waiting for each. The files go in a write of
 * their own, before the rest is even built: QEMU reads QMP a byte at a
 * time (some 2 us a byte), so it is still reading add-fd when the second
 * write, blockdev-add and device_add, reaches it, and building them
 * overlaps that reading. */
static void disk_send(struct hp_op *op)
{
	struct disk_open *j = op->dopen;
	struct hp_dev *dev = op->dev;
	for (size_t i = 0; i < j->nfds; i++)
		dev->fdsets[i] = fdset_next(op->g);
	dev->nfdsets = j->nfds;
	op->backend_ok = false;
	struct qmp_client *q = op->g->qmp;
	if (q)   /* the fds of a chain in one write */
		qmp_client_cork(q);
	for (size_t i = 0; i < j->nfds; i++)
		hp_step_fd(op, "add-fd", json_pack("{s:i}", "fdset-id", dev->fdsets[i]), j->fds[i],
		           disk_fd_added);
	if (q == op->g->qmp && q) {
		qmp_client_uncork(q);
		qmp_client_cork(q);
	}
	hp_step(op, "blockdev-add", layer_json(op, dev, 0), disk_backend_added);
	hp_step(op, "device_add", device_args(op), disk_device_added);
	if (q == op->g->qmp && q)
		qmp_client_uncork(q);
}

static void disk_open_done(uv_work_t *w, int status)
{
	struct disk_open *j = w->data;
	struct hp_op *op = j->op;
	struct sv_guest *g = op->g;
	op->opening = false;
	if (op->orphaned) {   /* QEMU went away meanwhile: the queue is gone */
		hp_op_free(op);
		sv_guest_unhold(g);
		return;
	}
	sv_guest_unhold(g);
	if (status < 0 || j->rc < 0) {
		hp_op_drop_dev(op);
		/* a file missing or out of reach: NotFound, as the check said */
		hp_op_fail(op, j->rc == -ENOENT || j->rc == -EACCES || j->rc == -EPERM ||
		        j->rc == -ENOTDIR || j->rc == -EROFS ? "NotFound" : j->rc == -EINVAL ||
		        j->rc == -EOPNOTSUPP || j->rc == -ELOOP ? "InvalidArgument"
		        : "GenericError", "%s", status < 0 ? uv_strerror(status)
		        : j->err.msg);
		return;
	}
	sv_log(SV_LOG_DEBUG, g->name, "%s: %s opened off the loop", j->id, j->path);
	disk_send(op);
}

/* A disk attach: open its files off the loop, then add-fd each and
 * blockdev-add (dev is op's from here on). */
void hp_disk_start(struct hp_op *op, struct hp_dev *dev)
{
	const struct sv_profile *p = op->g->run_profile ? op->g->run_profile : op->g->profile;
	const char *why;
	char *path = NULL;
	struct disk_open *j = calloc(1, sizeof(*j));
	if (!j || sv_path_resolve(p->dir, hp_arg_str(op->args, "file"), &path, &why) < 0) {
		free(dev);
		op->dev = NULL;
		hp_op_fail(op, j ? "InvalidArgument" : "GenericError", "file: %s", !j ? "out of memory"
		        : path ? why : "not a usable path");
		free(path);
		free(j);
		return;
	}
	dev->desc = strdup(path);
	j->path = path;
	snprintf(j->format, sizeof(j->format), "%s", hp_arg_str(op->args, "format"));
	j->ro = json_is_true(json_object_get(op->args, "read-only"));
	snprintf(j->id, sizeof(j->id), "%s", dev->id);
	char rec[4200];
	if (json_is_true(json_object_get(op->args, "persist")) &&
	    sv_snaprec_path(p, rec, sizeof(rec)) == 0)
		j->record = strdup(rec);
	j->op = op;
	j->work.data = j;
	op->dopen = j;
	/* A raw image whose open cannot wait is opened here: a thread-pool
	 * hop less (a qcow2 image's header is read, a --persist disk's record
	 * too: those go off the loop). */
	if (!j->record && strcmp(j->format, "qcow2") &&
	    (j->fds[0] = sv_fdpass_file_cached(j->path, j->ro ? O_RDONLY : O_RDWR)) >= 0) {
		j->nfds = 1;
		sv_log(SV_LOG_DEBUG, op->g->name, "%s: %s opened on the loop", j->id, j->path);
		disk_send(op);
		return;
	}
	op->opening = true;
	sv_guest_hold(op->g);
	if (uv_queue_work(op->g->env->loop, &j->work, disk_open_work, disk_open_done) < 0) {
		op->opening = false;
		sv_guest_unhold(op->g);
		hp_op_fail(op, "GenericError", "%s", "cannot queue work");
	}
}

static void bridge_fd_passed(void *ctx, const struct qmp_result *r);

/* A bridge or tap NIC: qsupd makes (bridge) or opens (tap) the tap itself
 * and passes it over QMP (QEMU runs unprivileged, and its sandbox forbids
 * qemu-bridge-helper); netdev_add follows getfd. dev is op's from here on
 * (freed on failure). */
static void bridge_open(struct hp_op *op, struct hp_dev *dev, const char *bridge);

/* A type=network NIC's network is up (or not): on to its tap. */
static void network_up_done(void *arg, int rc, const char *msg)
{
	struct hp_op *op = arg;
	struct sv_guest *g = op->g;
	op->opening = false;
	if (op->orphaned) {   /* QEMU went away meanwhile: the queue is gone */
		hp_op_free(op);
		sv_guest_unhold(g);
		return;
	}
	sv_guest_unhold(g);
	const char *net = hp_arg_str(op->args, "network");
	const char *bridge = g->env->net_bridge ? g->env->net_bridge(g->env->net_ctx, net) : NULL;
	if (rc < 0 || !bridge) {
		hp_op_drop_dev(op);
		hp_op_fail(op, "GenericError", "%s", msg ? msg : "the network is gone");
		return;
	}
	struct hp_dev *dev = op->dev;
	op->dev = NULL;
	bridge_open(op, dev, bridge);
}

void hp_bridge_start(struct hp_op *op, struct hp_dev *dev)
{
	const struct sv_guest_env *env = op->g->env;
	if (!strcmp(sv_or(hp_arg_str(op->args, "type"), ""), "network")) {
		/* a managed network: up first (netmgr.h), then a tap on its bridge */
		const char *net = hp_arg_str(op->args, "network");
		if (!env->net_bridge || !env->network_up || !env->net_bridge(env->net_ctx, net)) {
			free(dev);
			op->dev = NULL;
			hp_op_fail(op, "NotFound", "network: no network named %s", net);
			return;
		}
		op->dev = dev;
		op->opening = true;
		sv_guest_hold(op->g);
		env->network_up(env->owner, net, network_up_done, op);
		return;
	}
	bridge_open(op, dev, hp_arg_str(op->args, "bridge"));
}

static void bridge_open(struct hp_op *op, struct hp_dev *dev, const char *bridge)
{
	struct sv_error err = { 0 };
	char tap[SV_IFNAMSIZ];
	uint8_t m[6];
	nic_mac(op, dev->id, m);
	int fd = bridge ? sv_tap_open(bridge, NULL, m, tap, &err)
	       : sv_tap_attach(hp_arg_str(op->args, "ifname"), &err);
	if (!bridge)
		snprintf(tap, sizeof(tap), "%s", hp_arg_str(op->args, "ifname"));
	if (fd < 0) {
		free(dev);
		op->dev = NULL;
		hp_op_fail(op, fd == -ENODEV || fd == -EOPNOTSUPP ? "NotFound" : "GenericError",
		        "%s", err.msg);
		return;
	}
	char fdname[SV_ID_MAX + 16];
	snprintf(fdname, sizeof(fdname), "hpfd.%s", dev->id);
	if (bridge && asprintf(&dev->desc, "bridge %s, tap %s", bridge, tap) < 0)
		dev->desc = NULL;
	else if (!bridge && asprintf(&dev->desc, "tap %s", tap) < 0)
		dev->desc = NULL;
	if (bridge)
		sv_log(SV_LOG_INFO, op->g->name, "%s: tap %s on bridge %s", dev->id, tap, bridge);
	op->dev = dev;
	hp_step_fd(op, "getfd", json_pack("{s:s}", "fdname", fdname), fd, bridge_fd_passed);
	close(fd);   /* QEMU has its copy (or the step failed): the tap lives in QEMU */
}

/* A user NIC's netdev_add (taps: hp_bridge_start). */
json_t *hp_nic_backend(struct hp_dev *dev)
{
	dev->desc = strdup("user");
	return json_pack("{s:s, s:s}", "type", "user", "id", dev->backend);
}
