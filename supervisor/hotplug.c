/* Hot-plug of disks and NICs: see hotplug.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "guest_int.h"
#include "hotplug.h"
#include "log.h"
#include "qmp.h"
#include "state.h"

#define DETACH_TIMEOUT_MS 10000u

enum dev_kind { DEV_DISK, DEV_NIC };

struct hp_dev {
	struct hp_dev *next;
	enum dev_kind kind;
	char id[SV_ID_MAX + 1];
	char backend[SV_ID_MAX + 8];    /* node or netdev name */
	char bus[32];
	char *desc;                     /* file, or NIC type */
	const char *state;              /* attached, unplugging, pending-unplug */
	json_t *spec;                   /* the attach arguments, to replay */
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
};

struct sv_hp {
	struct hp_dev *devs;
	struct hp_op *head, *tail;
	bool busy;
	void (*replayed)(struct sv_guest *g);   /* when the replay queue drains */
};

static void op_start(struct hp_op *op);

static struct sv_hp *hp_of(struct sv_guest *g)
{
	if (!g->hp)
		g->hp = calloc(1, sizeof(*g->hp));
	return g->hp;
}

static struct hp_dev *dev_find(struct sv_hp *hp, const char *id)
{
	for (struct hp_dev *d = hp ? hp->devs : NULL; d; d = d->next)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

static void dev_unlink(struct sv_hp *hp, struct hp_dev *dev)
{
	for (struct hp_dev **pp = &hp->devs; *pp; pp = &(*pp)->next) {
		if (*pp == dev) {
			*pp = dev->next;
			break;
		}
	}
	free(dev->desc);
	json_decref(dev->spec);
	free(dev);
}

/* ---- the queue: one operation at a time per guest ---- */

static void on_timer_closed(uv_handle_t *h)
{
	struct sv_guest *g = h->data;
	free(h);
	sv_guest_handle_gone(g);
}

static void op_finish(struct hp_op *op)
{
	struct sv_guest *g = op->g;
	struct sv_hp *hp = g->hp;
	if (op->timer) {
		op->timer->data = g;   /* the op is gone before the close callback */
		uv_close((uv_handle_t *)op->timer, on_timer_closed);
		op->timer = NULL;
	}
	hp->head = op->next;
	if (!hp->head)
		hp->tail = NULL;
	hp->busy = false;
	json_decref(op->args);
	json_decref(op->error);
	free(op);
	if (hp->head && !g->freeing) {
		hp->busy = true;
		op_start(hp->head);
	} else if (!hp->head && hp->replayed) {
		void (*done)(struct sv_guest *) = hp->replayed;
		hp->replayed = NULL;
		done(g);
	}
}

static void op_fail(struct hp_op *op, const char *cls, const char *fmt, const char *arg)
	__attribute__((format(printf, 3, 0)));
static void op_fail(struct hp_op *op, const char *cls, const char *fmt, const char *arg)
{
	if (op->req)
		sv_reply_err(op->req, cls, fmt, arg);
	else
		sv_log(SV_LOG_WARN, op->g->name, "could not re-add a hot-plugged device: %s", arg);
	op_finish(op);
}

static void op_fail_qemu(struct hp_op *op)
{
	if (op->req)
		sv_reply_error_obj(op->req, json_incref(op->error));
	else
		sv_log(SV_LOG_WARN, op->g->name, "could not re-add a hot-plugged device: %s",
		       json_string_value(json_object_get(op->error, "desc")));
	op_finish(op);
}

static struct hp_op *enqueue(struct sv_guest *g, struct sv_request *req, json_t *args,
                             bool detach)
{
	struct sv_hp *hp = hp_of(g);
	struct hp_op *op = hp ? calloc(1, sizeof(*op)) : NULL;
	if (!op) {
		if (req)
			sv_reply_err(req, "GenericError", "%s", "out of memory");
		return NULL;
	}
	op->g = g;
	op->req = req;
	op->args = json_incref(args);
	op->detach = detach;
	if (hp->tail)
		hp->tail->next = op;
	else
		hp->head = op;
	hp->tail = op;
	op->replay = !req;
	if (!hp->busy) {
		hp->busy = true;
		op_start(op);
	}
	return op;
}

/* ---- QMP steps ---- */

typedef void (*step_fn)(struct hp_op *op, const struct qmp_result *r);

struct step { struct hp_op *op; step_fn fn; };

static void on_step(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct step *s = arg;
	(void)c;
	struct hp_op *op = s->op;
	step_fn fn = s->fn;
	free(s);
	if (r->status == QMP_EREPLY && !op->error)
		op->error = json_pack("{s:s, s:s, s:b}", "class", r->err_class,
		                      "desc", r->err_desc, "qemu", 1);
	else if (r->status < 0 && !op->error)
		op->error = json_pack("{s:s, s:s}", "class", "GenericError",
		                      "desc", qmp_strerror(r->status));
	fn(op, r);
}

/* Run cmd (args taken); fn gets the result. */
static void step(struct hp_op *op, const char *cmd, json_t *args, step_fn fn)
{
	struct step *s = malloc(sizeof(*s));
	struct sv_guest *g = op->g;
	int rc = s && g->qmp ? qmp_client_execute(g->qmp, cmd, args, 0, on_step, s) : UV_ENOTCONN;
	json_decref(args);
	if (rc < 0) {
		free(s);
		struct qmp_result r = { .status = rc };
		if (!op->error)
			op->error = json_pack("{s:s, s:s}", "class", "GenericError",
			                      "desc", qmp_strerror(rc));
		fn(op, &r);
		return;
	}
	s->op = op;
	s->fn = fn;
}

/* Remove a device's backend once QEMU has deleted the device itself. */
static void drop_backend(struct sv_guest *g, struct hp_dev *dev)
{
	json_t *args = dev->kind == DEV_DISK ? json_pack("{s:s}", "node-name", dev->backend)
	                                     : json_pack("{s:s}", "id", dev->backend);
	const char *cmd = dev->kind == DEV_DISK ? "blockdev-del" : "netdev_del";
	if (g->qmp)
		qmp_client_execute(g->qmp, cmd, args, 0, NULL, NULL);
	json_decref(args);
	sv_log(SV_LOG_INFO, g->name, "%s detached", dev->id);
	dev_unlink(g->hp, dev);
	sv_state_save(g);
}

/* ---- attach ---- */

static json_t *dev_json(const struct hp_dev *d, const char *source)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}", "id", d->id,
	                 "kind", d->kind == DEV_DISK ? "disk" : "nic", "source", source,
	                 "state", d->state, "bus", d->bus, "backend", d->desc);
}

static void attach_rolled_back(struct hp_op *op, const struct qmp_result *r)
{
	(void)r;
	free(op->dev->desc);
	free(op->dev);
	op->dev = NULL;
	op_fail_qemu(op);
}

static void attach_device_added(struct hp_op *op, const struct qmp_result *r)
{
	struct hp_dev *dev = op->dev;
	if (r->status != 0) {
		/* Roll back the backend this operation added. */
		sv_log(SV_LOG_WARN, op->g->name, "attach %s failed at device_add; rolling back",
		       dev->id);
		json_t *a = dev->kind == DEV_DISK ? json_pack("{s:s}", "node-name", dev->backend)
		                                  : json_pack("{s:s}", "id", dev->backend);
		step(op, dev->kind == DEV_DISK ? "blockdev-del" : "netdev_del", a, attach_rolled_back);
		return;
	}
	struct sv_hp *hp = op->g->hp;
	dev->state = "attached";
	dev->next = hp->devs;
	hp->devs = dev;
	op->dev = NULL;
	dev->spec = json_deep_copy(op->args);
	json_object_del(dev->spec, "name");
	sv_log(SV_LOG_INFO, op->g->name, "%s %s on %s", dev->id,
	       op->replay ? "re-added" : "attached", dev->bus);
	sv_state_save(op->g);   /* a later qsupd re-adopts the guest with it */
	if (op->req)
		sv_reply_ok(op->req, dev_json(dev, "hotplug"));
	op_finish(op);
}

static void attach_backend_added(struct hp_op *op, const struct qmp_result *r)
{
	struct hp_dev *dev = op->dev;
	if (r->status != 0) {
		free(dev->desc);
		free(dev);
		op->dev = NULL;
		op_fail_qemu(op);
		return;
	}
	json_t *a = json_pack("{s:s, s:s, s:s}", "id", dev->id, "bus", dev->bus,
	                      "driver", dev->kind == DEV_DISK ? "virtio-blk-pci" : "virtio-net-pci");
	if (dev->kind == DEV_DISK) {
		json_object_set_new(a, "drive", json_string(dev->backend));
		json_t *serial = json_object_get(op->args, "serial");
		if (json_is_string(serial))
			json_object_set(a, "serial", serial);
	} else {
		char mac[18];
		uint8_t m[6];
		json_t *given = json_object_get(op->args, "mac");
		if (!json_is_string(given) || sv_mac_parse(json_string_value(given), m) < 0)
			sv_mac_stable(op->g->name, dev->id, m);
		sv_mac_format(m, mac);
		json_object_set_new(a, "netdev", json_string(dev->backend));
		json_object_set_new(a, "mac", json_string(mac));
	}
	step(op, "device_add", a, attach_device_added);
}

/* A free spare port (q35), or pci.0 (pc). Returns 0, or -ENOSPC. */
static int free_bus(struct sv_guest *g, char *bus, size_t size)
{
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	if (p->family != SV_MACHINE_Q35) {
		snprintf(bus, size, "pci.0");
		return 0;
	}
	for (unsigned i = 0; i < p->hotplug_slots; i++) {
		snprintf(bus, size, "hotplug.%u", i);
		bool used = false;
		for (struct hp_dev *d = g->hp->devs; d; d = d->next)
			used |= strcmp(d->bus, bus) == 0;
		if (!used)
			return 0;
	}
	return -ENOSPC;
}

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

/* Check a disk's arguments and build its blockdev-add; NULL after failing op. */
static json_t *disk_backend(struct hp_op *op, struct hp_dev *dev)
{
	const struct sv_profile *p = op->g->run_profile ? op->g->run_profile : op->g->profile;
	const char *file = arg_str(op->args, "file"), *fmt = arg_str(op->args, "format"), *why;
	json_t *ro = json_object_get(op->args, "readonly");
	char *path = NULL;
	if (!file || !fmt) {
		op_fail(op, "InvalidArgument", "%s", "a disk needs \"file\" and \"format\" "
		        "(the format is never probed)");
		return NULL;
	}
	if (!sv_format_valid(fmt)) {
		op_fail(op, "InvalidArgument", "format '%.32s' is not one of raw, qcow2, vmdk, "
		        "vdi, vhdx, vpc, qed", fmt);
		return NULL;
	}
	if ((ro && !json_is_boolean(ro)) || !sv_text_clean(file) ||
	    sv_path_resolve(p->dir, file, &path, &why) < 0) {
		op_fail(op, "InvalidArgument", "file: %s", path ? why : "not a usable path");
		free(path);
		return NULL;
	}
	if (access(path, json_is_true(ro) ? R_OK : R_OK | W_OK) < 0) {
		char msg[600];
		snprintf(msg, sizeof(msg), "%s: %s", path, strerror(errno));
		free(path);
		op_fail(op, "NotFound", "%s", msg);
		return NULL;
	}
	dev->desc = path;
	return json_pack("{s:s, s:s, s:b, s:{s:s, s:s, s:b}}", "driver", fmt,
	                 "node-name", dev->backend, "read-only", json_is_true(ro),
	                 "file", "driver", strncmp(path, "/dev/", 5) ? "file" : "host_device",
	                 "filename", path, "read-only", json_is_true(ro));
}

static json_t *nic_backend(struct hp_op *op, struct hp_dev *dev)
{
	const char *type = arg_str(op->args, "type") ?: "user";
	const char *tap = arg_str(op->args, "tap"), *mac = arg_str(op->args, "mac");
	uint8_t m[6];
	if (mac && sv_mac_parse(mac, m) < 0) {
		op_fail(op, "InvalidArgument", "mac '%.32s' is not a unicast MAC address", mac);
		return NULL;
	}
	dev->desc = strdup(type);
	if (strcmp(type, "user") == 0)
		return json_pack("{s:s, s:s}", "type", "user", "id", dev->backend);
	if (strcmp(type, "tap") == 0 && tap && sv_text_clean(tap) && tap[0] != '-')
		return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "tap", "id", dev->backend,
		                 "ifname", tap, "script", "no", "downscript", "no");
	op_fail(op, "InvalidArgument", "%s", strcmp(type, "tap") == 0
	        ? "a tap NIC needs \"tap\": the name of an existing tap device"
	        : "type must be user or tap (bridge NICs: in the profile)");
	return NULL;
}

static void attach_start(struct hp_op *op)
{
	struct sv_guest *g = op->g;
	const char *kind = arg_str(op->args, "kind"), *id = arg_str(op->args, "id");
	bool disk = kind && strcmp(kind, "disk") == 0;
	if (!kind || (!disk && strcmp(kind, "nic") != 0))
		return op_fail(op, "InvalidArgument", "%s", "kind must be disk or nic");
	if (!id || !sv_device_id_valid(id))
		return op_fail(op, "InvalidArgument", "id: %s", "1 to 20 letters, digits, '_' or "
		               "'-', starting with a letter");
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	if (dev_find(g->hp, id) || (p && sv_profile_find_device(p, id) >= 0))
		return op_fail(op, "InvalidArgument", "%s is already a device of this guest", id);
	struct hp_dev *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return op_fail(op, "GenericError", "%s", "out of memory");
	dev->kind = disk ? DEV_DISK : DEV_NIC;
	snprintf(dev->id, sizeof(dev->id), "%s", id);
	snprintf(dev->backend, sizeof(dev->backend), "%s.%s", disk ? "hpdrive" : "hpnet", id);
	if (free_bus(g, dev->bus, sizeof(dev->bus)) < 0) {
		free(dev);
		return op_fail(op, "InvalidState", "no free hot-plug slot: all %s spare ports "
		               "are taken (raise hotplug-slots in the profile)", "the");
	}
	op->dev = dev;
	json_t *backend = disk ? disk_backend(op, dev) : nic_backend(op, dev);
	if (!backend) {   /* op already answered and finished */
		free(dev->desc);
		free(dev);
		return;
	}
	step(op, disk ? "blockdev-add" : "netdev_add", backend, attach_backend_added);
}

/* ---- detach ---- */

static void on_detach_timeout(uv_timer_t *t)
{
	struct hp_op *op = t->data;
	op->dev->state = "pending-unplug";
	sv_log(SV_LOG_WARN, op->g->name, "%s: the guest has not released it; pending-unplug",
	       op->dev->id);
	sv_reply_err(op->req, "PendingUnplug", "the guest has not released %s in time; it "
	             "stays pending-unplug and is removed once the guest lets it go",
	             op->dev->id);
	op->dev = NULL;
	op_finish(op);
}

static void detach_done(struct hp_op *op)
{
	sv_reply_ok(op->req, json_pack("{s:s, s:s}", "id", op->id, "state", "detached"));
	op->dev = NULL;
	op_finish(op);
}

static void detach_requested(struct hp_op *op, const struct qmp_result *r)
{
	if (op->deleted)   /* the guest was quicker than QEMU's reply */
		return detach_done(op);
	if (r->status != 0) {
		op->dev->state = "attached";
		return op_fail_qemu(op);
	}
	uint64_t ms = DETACH_TIMEOUT_MS;
	json_t *t = json_object_get(op->args, "timeout");
	if (json_is_integer(t) && json_integer_value(t) > 0)
		ms = (uint64_t)json_integer_value(t);
	op->timer = malloc(sizeof(*op->timer));
	uv_timer_init(op->g->d->loop, op->timer);
	op->timer->data = op;
	op->g->handles++;
	uv_timer_start(op->timer, on_detach_timeout, ms, 0);
}

static void detach_start(struct hp_op *op)
{
	struct sv_guest *g = op->g;
	const char *id = arg_str(op->args, "id");
	struct hp_dev *dev = id ? dev_find(g->hp, id) : NULL;
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	if (!id)
		return op_fail(op, "InvalidArgument", "%s", "detach needs {\"name\", \"id\"}");
	if (!dev && p && sv_profile_find_device(p, id) >= 0)
		return op_fail(op, "InvalidArgument", "%s comes from the profile; edit the profile "
		               "and restart the guest to remove it", id);
	if (!dev)
		return op_fail(op, "NotFound", "no hot-plugged device %.32s", id);
	if (strcmp(dev->state, "attached") != 0)
		return op_fail(op, "InvalidState", "%s is already being unplugged", id);
	dev->state = "unplugging";
	op->dev = dev;
	snprintf(op->id, sizeof(op->id), "%s", id);
	step(op, "device_del", json_pack("{s:s}", "id", id), detach_requested);
}

/* ---- entry points ---- */

static void op_start(struct hp_op *op)
{
	struct sv_guest *g = op->g;
	if (g->state != SV_RUNNING && g->state != SV_PAUSED &&
	    !(op->replay && g->state == SV_STARTING))
		return op_fail(op, "InvalidState", "%s is not running", sv_state_name(g->state));
	if (op->detach)
		detach_start(op);
	else
		attach_start(op);
}

void sv_hotplug_attach(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	enqueue(g, req, args, false);
}

void sv_hotplug_detach(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	enqueue(g, req, args, true);
}

json_t *sv_hotplug_list(struct sv_guest *g)
{
	json_t *list = json_array();
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	for (size_t i = 0; p && i < p->ndrives; i++)
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s?}",
		                      "id", p->drives[i].id,
		                      "kind", p->drives[i].cdrom ? "cdrom" : "disk",
		                      "source", "profile", "state", "attached",
		                      "backend", p->drives[i].file));
	for (size_t i = 0; p && i < p->nnics; i++)
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "id", p->nics[i].id,
		                      "kind", "nic", "source", "profile", "state", "attached"));
	for (struct hp_dev *d = g->hp ? g->hp->devs : NULL; d; d = d->next)
		json_array_append_new(list, dev_json(d, "hotplug"));
	return list;
}

void sv_hotplug_event(struct sv_guest *g, const char *name, json_t *data)
{
	/* virtio sends one event for its backend path first, without "device". */
	const char *id = json_string_value(json_object_get(data, "device"));
	struct hp_dev *dev = id ? dev_find(g->hp, id) : NULL;
	if (!dev)
		return;
	struct hp_op *op = g->hp->head;
	bool waiting = op && op->detach && op->dev == dev;
	if (strcmp(name, "DEVICE_UNPLUG_GUEST_ERROR") == 0) {
		dev->state = "attached";
		if (waiting && op->timer)
			op_fail(op, "GenericError", "the guest refused to release %s "
			        "(DEVICE_UNPLUG_GUEST_ERROR)", id);
		return;
	}
	if (strcmp(name, "DEVICE_DELETED") != 0)
		return;
	drop_backend(g, dev);
	if (!waiting)
		return;
	op->dev = NULL;
	if (op->timer)
		detach_done(op);
	else
		op->deleted = true;   /* device_del's reply finishes the operation */
}

/* Fail every queued operation (QMP is closed by now, so none of their steps
 * is in flight). */
static void fail_queue(struct sv_guest *g)
{
	struct sv_hp *hp = g->hp;
	struct hp_op *op = hp->head;
	hp->head = hp->tail = NULL;
	hp->busy = false;
	hp->replayed = NULL;
	while (op) {
		struct hp_op *next = op->next;
		if (op->timer) {
			op->timer->data = g;
			uv_close((uv_handle_t *)op->timer, on_timer_closed);
		}
		if (op->dev && !op->detach) {
			free(op->dev->desc);
			free(op->dev);
		}
		if (op->req)
			sv_reply_err(op->req, "InvalidState", "%s", "QEMU ended during the operation");
		json_decref(op->args);
		json_decref(op->error);
		free(op);
		op = next;
	}
}

void sv_hotplug_reset(struct sv_guest *g)
{
	struct sv_hp *hp = g->hp;
	if (!hp)
		return;
	fail_queue(g);
	while (hp->devs)
		dev_unlink(hp, hp->devs);
	free(hp);
	g->hp = NULL;
}

void sv_hotplug_qemu_gone(struct sv_guest *g)
{
	struct sv_hp *hp = g->hp;
	if (!hp)
		return;
	fail_queue(g);
	/* Devices that were (being) unplugged are gone with QEMU; the others
	 * come back if the guest is started again by a restart. */
	for (struct hp_dev *d = hp->devs, *next; d; d = next) {
		next = d->next;
		if (strcmp(d->state, "attached") != 0 || !d->spec)
			dev_unlink(hp, d);
		else
			d->state = "to-replay";
	}
}

bool sv_hotplug_replay(struct sv_guest *g, void (*done)(struct sv_guest *g))
{
	struct sv_hp *hp = g->hp;
	if (!hp || !hp->devs)
		return false;
	json_t *specs = json_array();
	while (hp->devs) {
		json_array_append(specs, hp->devs->spec);
		dev_unlink(hp, hp->devs);
	}
	hp->replayed = done;
	size_t i;
	json_t *spec;
	/* The list was newest first: re-add oldest first, as they came. */
	for (i = json_array_size(specs); i-- > 0;) {
		spec = json_array_get(specs, i);
		enqueue(g, NULL, spec, false);
	}
	json_decref(specs);
	return true;
}

json_t *sv_hotplug_export(struct sv_guest *g)
{
	json_t *list = json_array();
	for (struct hp_dev *d = g->hp ? g->hp->devs : NULL; d; d = d->next)
		if (d->spec)
			json_array_append_new(list, json_pack("{s:O, s:s, s:s}", "spec", d->spec,
			                      "bus", d->bus, "state", d->state));
	return list;
}

static void on_peripherals(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	(void)c;
	if (r->status != 0 || !g->hp)
		return;
	/* Devices QEMU no longer has were unplugged while qsupd was down:
	 * finish the job (their backends go too). */
	for (struct hp_dev *d = g->hp->devs, *next; d; d = next) {
		next = d->next;
		bool present = false;
		size_t i;
		json_t *e;
		json_array_foreach(r->ret, i, e)
			present |= strcmp(json_string_value(json_object_get(e, "name")) ?: "", d->id) == 0;
		if (!present) {
			sv_log(SV_LOG_INFO, g->name, "%s was unplugged while qsupd was down", d->id);
			drop_backend(g, d);
		}
	}
}

void sv_hotplug_import(struct sv_guest *g, json_t *saved)
{
	size_t i;
	json_t *e;
	json_array_foreach(saved, i, e) {
		json_t *spec = json_object_get(e, "spec");
		const char *id = json_string_value(json_object_get(spec, "id"));
		const char *kind = json_string_value(json_object_get(spec, "kind"));
		const char *st = json_string_value(json_object_get(e, "state"));
		struct sv_hp *hp = hp_of(g);
		struct hp_dev *dev = hp && id && sv_device_id_valid(id) && kind
		                   ? calloc(1, sizeof(*dev)) : NULL;
		if (!dev)
			continue;
		bool disk = strcmp(kind, "disk") == 0;
		dev->kind = disk ? DEV_DISK : DEV_NIC;
		snprintf(dev->id, sizeof(dev->id), "%s", id);
		snprintf(dev->backend, sizeof(dev->backend), "%s.%s", disk ? "hpdrive" : "hpnet", id);
		snprintf(dev->bus, sizeof(dev->bus), "%s",
		         json_string_value(json_object_get(e, "bus")) ?: "");
		const char *desc = json_string_value(json_object_get(spec, disk ? "file" : "type"));
		dev->desc = desc ? strdup(desc) : NULL;
		dev->state = st && strcmp(st, "pending-unplug") == 0 ? "pending-unplug" : "attached";
		dev->spec = json_deep_copy(spec);
		dev->next = hp->devs;
		hp->devs = dev;
	}
}

void sv_hotplug_reconcile(struct sv_guest *g)
{
	if (!g->hp || !g->hp->devs || !g->qmp)
		return;
	json_t *args = json_pack("{s:s}", "path", "/machine/peripheral");
	qmp_client_execute(g->qmp, "qom-list", args, 0, on_peripherals, g);
	json_decref(args);
}
