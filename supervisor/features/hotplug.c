/* Hot-plug: the queue, its steps, --persist, attach and detach (hotplug_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "request.h"
#include "hotplug_int.h"
#include "log.h"
#include "overlay.h"
#include "snapshot.h"

const char *const hp_kind_names[] = { "disk", "nic", "cpu", "memory" };
/* Backend names: "hpdrive.ID" (a block node), "hpnet.ID" (a netdev),
 * "hpmem.ID" (a memory backend object); vCPUs have none. */
const char *const hp_backend_prefix[] = { "hpdrive", "hpnet", "", "hpmem" };

int hp_kind_parse(const char *s)
{
	for (int k = DEV_DISK; k <= DEV_MEM; k++)
		if (s && strcmp(s, hp_kind_names[k]) == 0)
			return k;
	return -1;
}


struct sv_hp *hp_of(struct sv_guest *g)
{
	if (!g->hp)
		g->hp = calloc(1, sizeof(*g->hp));
	return g->hp;
}

struct hp_dev *hp_dev_find(struct sv_hp *hp, const char *id)
{
	for (struct hp_dev *d = hp ? hp->devs : NULL; d; d = d->next)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

void hp_dev_unlink(struct sv_hp *hp, struct hp_dev *dev)
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

static void op_start(struct hp_op *op);

/* The device op was adding never made it (not yet in the guest's list):
 * free it. */
void hp_op_drop_dev(struct hp_op *op)
{
	if (op->dev)
		free(op->dev->desc);
	free(op->dev);
	op->dev = NULL;
}

/* ---- the queue: one operation at a time per guest ---- */


void hp_op_free(struct hp_op *op)
{
	hp_disk_open_free(op->dopen);
	json_decref(op->args);
	json_decref(op->error);
	json_decref(op->todo);
	json_decref(op->done);
	json_decref(op->ret);
	json_decref(op->old_overlay);
	free(op);
}

static void op_finish(struct hp_op *op)
{
	struct sv_guest *g = op->g;
	struct sv_hp *hp = g->hp;
	if (op->timer) {
		sv_guest_close_free(g, (uv_handle_t *)op->timer);
		op->timer = NULL;
	}
	hp->head = op->next;
	if (!hp->head)
		hp->tail = NULL;
	hp->busy = false;
	hp_op_free(op);
	if (hp->head && !g->freeing) {
		hp->busy = true;
		op_start(hp->head);
	} else if (!hp->head && hp->replayed) {
		void (*done)(struct sv_guest *) = hp->replayed;
		hp->replayed = NULL;
		done(g);
	}
}

void hp_op_fail(struct hp_op *op, const char *cls, const char *fmt, const char *arg)
{
	if (op->req)
		sv_reply_err(op->req, cls, fmt, arg);
	else
		sv_log(SV_LOG_WARN, op->g->name, "could not re-add a hot-plugged device: %s", arg);
	op_finish(op);
}

void hp_op_fail_qemu(struct hp_op *op)
{
	if (op->req)
		sv_reply_error_obj(op->req, json_incref(op->error));
	else
		sv_log(SV_LOG_WARN, op->g->name, "could not re-add a hot-plugged device: %s",
		       json_string_value(json_object_get(op->error, "desc")));
	op_finish(op);
}

struct hp_op *hp_enqueue(struct sv_guest *g, struct sv_request *req, json_t *args,
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

const char *hp_arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

/* ---- QMP steps (step.h) ---- */

/* Keep QEMU's first error (or the connection's) for the reply. */
static void op_seen(void *ctx, const struct qmp_result *r)
{
	struct hp_op *op = ctx;
	if (op->error || r->status == 0)
		return;
	op->error = r->status == QMP_EREPLY
	          ? json_pack("{s:s, s:s, s:b}", "class", r->err_class, "desc", r->err_desc,
	                      "qemu", 1)
	          : json_pack("{s:s, s:s}", "class", "GenericError", "desc",
	                      qmp_strerror(r->status));
}

static const struct sv_step_kind op_step = { .seen = op_seen };

/* Run cmd (args taken), passing fd along when >= 0 (the caller keeps it);
 * fn gets the result. */
void hp_step_fd(struct hp_op *op, const char *cmd, json_t *args, int fd, sv_step_fn fn)
{
	sv_step(op->g->qmp, &op_step, cmd, args, fd, fn, op);
}

void hp_step(struct hp_op *op, const char *cmd, json_t *args, sv_step_fn fn)
{
	sv_step(op->g->qmp, &op_step, cmd, args, -1, fn, op);
}

const char *hp_backend_del(const struct hp_dev *dev, json_t **args)
{
	static const char *const cmds[] = { "blockdev-del", "netdev_del", NULL, "object-del" };
	*args = dev->kind == DEV_CPU ? NULL
	      : json_pack("{s:s}", dev->kind == DEV_DISK ? "node-name" : "id", dev->backend);
	return cmds[dev->kind];
}

/* Close a disk's files in QEMU (after blockdev-del, or a failed attach):
 * the fds stay in their sets until removed. */
void hp_drop_fdsets(struct sv_guest *g, struct hp_dev *dev)
{
	for (size_t i = 0; g->qmp && i < dev->nfdsets; i++) {
		sv_qmp_fire(g->qmp, "remove-fd", json_pack("{s:i}", "fdset-id", dev->fdsets[i]));
	}
	dev->nfdsets = 0;
}

void hp_drop_backend(struct sv_guest *g, struct hp_dev *dev)
{
	json_t *args;
	const char *cmd = hp_backend_del(dev, &args);
	if (cmd)
		sv_qmp_fire(g->qmp, cmd, args);
	else
		json_decref(args);
	hp_drop_fdsets(g, dev);
	sv_log(SV_LOG_INFO, g->name, "%s detached", dev->id);
	hp_dev_unlink(g->hp, dev);
	sv_guest_persist(g);
}

/* ---- the overlay (--persist) ---- */

static void log_lines(struct sv_guest *g, const char *text)
{
	while (text && *text) {
		size_t n = strcspn(text, "\n");
		sv_log(SV_LOG_WARN, g->name, "%.*s", (int)n, text);
		text += n + (text[n] == '\n');
	}
}

/* Read p's overlay into *ov; errors are logged, and kept when they forbid
 * rewriting the file. Returns sv_overlay_read's result. */
int hp_overlay_load(struct sv_guest *g, const struct sv_profile *p, json_t **ov)
{
	char *errs = NULL;
	int r = sv_overlay_read(p, ov, &errs);
	if (r < 0)
		log_lines(g, errs);
	if (r == -2 && hp_of(g)) {
		free(g->hp->overlay_errs);
		g->hp->overlay_errs = errs;
	} else {
		free(errs);
	}
	return r;
}

/* The overlay's specs, read when first needed (a bad section is left out,
 * and logged). */
static json_t *overlay_of(struct sv_guest *g)
{
	struct sv_hp *hp = g->hp;
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	if (!hp->overlay && p)
		hp_overlay_load(g, p, &hp->overlay);
	if (!hp->overlay)
		hp->overlay = json_array();
	return hp->overlay;
}

static void reply(struct hp_op *op, json_t *ret)
{
	if (!op->req)
		json_decref(ret);
	else if (op->ret_error)
		sv_reply_error_obj(op->req, ret);
	else
		sv_reply_ok(op->req, ret);
}

static void persisted(int err, void *arg)
{
	struct hp_op *op = arg;
	struct sv_guest *g = op->g;
	op->writing = false;
	if (op->orphaned) {
		hp_op_free(op);
		sv_guest_unhold(g);
		return;
	}
	if (err) {
		char path[1024] = "the overlay";
		const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
		if (p)
			sv_overlay_path(p, path, sizeof(path));
		json_decref(g->hp->overlay);
		g->hp->overlay = op->old_overlay;
		op->old_overlay = NULL;
		sv_log(SV_LOG_WARN, g->name, "cannot write %s: %s", path, strerror(err));
		if (op->req)
			sv_reply_err(op->req, "GenericError", "done on the running guest, but not "
			             "persisted: %s: %s", path, strerror(err));
	} else if (op->req) {
		reply(op, json_incref(op->ret));
	}
	op_finish(op);
	sv_guest_unhold(g);
}

/* op's device attached (op->announce), logged and tuned. */
static void announce(struct hp_op *op)
{
	if (op->announce)
		hp_dev_announce(op, op->announce);
	op->announce = NULL;
}

/* An operation succeeded with reply ret (taken). Without --persist, reply;
 * with it, first bring the overlay in line (add the specs in `add`, or drop
 * device `drop`) and write it; the reply waits for the write. */
void hp_op_done(struct hp_op *op, json_t *ret, json_t *add, const char *drop)
{
	struct sv_guest *g = op->g;
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	if (op->replay || !json_is_true(json_object_get(op->args, "persist")) || !p) {
		reply(op, ret);   /* first: the rest is not the client's to wait for */
		announce(op);
		op_finish(op);
		return;
	}
	announce(op);   /* the reply waits for the overlay's write */
	json_t *ov = overlay_of(g);
	if (g->hp->overlay_errs) {
		char path[1024] = "the overlay";
		sv_overlay_path(p, path, sizeof(path));
		if (op->req)
			sv_reply_err(op->req, "InvalidState", "done on the running guest, but not "
			             "persisted: %s has errors that a rewrite would lose; fix it "
			             "(qsupd --check shows them): %.200s", path, g->hp->overlay_errs);
		json_decref(ret);
		op_finish(op);
		return;
	}
	op->old_overlay = json_deep_copy(ov);
	op->ret = ret;
	size_t i;
	json_t *e;
	if (drop) {
		for (i = json_array_size(ov); i-- > 0;)
			if (!strcmp(sv_jstr(json_array_get(ov, i), "id", ""),
			            drop))
				json_array_remove(ov, i);
	}
	json_array_foreach(add, i, e) {
		json_t *spec = json_deep_copy(e);
		json_object_del(spec, "name");
		json_object_del(spec, "count");
		json_object_set_new(spec, "persist", json_true());
		json_array_append_new(ov, spec);
	}
	char path[1024];
	char *text = sv_overlay_format(g->name, ov);
	if (!text || sv_overlay_path(p, path, sizeof(path)) < 0) {
		free(text);
		json_decref(g->hp->overlay);
		g->hp->overlay = op->old_overlay;
		op->old_overlay = NULL;
		if (op->req)
			sv_reply_err(op->req, "InvalidArgument", "%s", "done on the running guest, but "
			             "not persisted: a value cannot be written to an INI file (a line "
			             "break, a ';' after a blank, or a line over 198 characters)");
		op_finish(op);
		return;
	}
	op->writing = true;
	sv_guest_hold(g);
	if (sv_overlay_write_async(g->env->loop, path, text, persisted, op) < 0) {
		sv_guest_unhold(g);
		persisted(ENOMEM, op);
	}
}

/* ---- attach ---- */

static void attach_start(struct hp_op *op)
{
	struct sv_guest *g = op->g;
	const char *id = hp_arg_str(op->args, "id");
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	char want_bus[32] = "";
	if (!p) {
		hp_op_fail(op, "InvalidState", "%s", "the guest's profile is gone");
		return;
	}
	if (op->replay && hp_arg_str(op->args, "slot")) {
		snprintf(want_bus, sizeof(want_bus), "%s", hp_arg_str(op->args, "slot"));
		json_object_del(op->args, "slot");
	}
	struct sv_error err = { 0 };
	if (hp_check(p, op->args, false, &err) < 0) {
		hp_op_fail(op, sv_error_class(&err), "%s", err.msg);
		return;
	}
	int kind = hp_kind_parse(hp_arg_str(op->args, "kind"));
	if (kind == DEV_CPU) {
		hp_cpu_start(op);
		return;
	}
	char auto_id[16];
	if (kind == DEV_MEM && !json_object_get(op->args, "id")) {
		/* Memory needs no name from the caller: mem0, mem1, ... */
		for (unsigned i = 0; !id; i++) {
			snprintf(auto_id, sizeof(auto_id), "mem%u", i);
			if (!hp_dev_find(g->hp, auto_id) && !(p && sv_profile_find_device(p, auto_id) >= 0))
				id = auto_id;
		}
		json_object_set_new(op->args, "id", json_string(id));
	}
	if (hp_dev_find(g->hp, id)) {
		hp_op_fail(op, "InvalidArgument", "%s is already a device of this guest", id);
		return;
	}
	struct hp_dev *dev = calloc(1, sizeof(*dev));
	if (!dev) {
		hp_op_fail(op, "GenericError", "%s", "out of memory");
		return;
	}
	dev->kind = kind;
	snprintf(dev->id, sizeof(dev->id), "%s", id);
	snprintf(dev->backend, sizeof(dev->backend), "%s.%s", hp_backend_prefix[kind], id);
	if (want_bus[0] && !hp_bus_used(g, want_bus))
		snprintf(dev->bus, sizeof(dev->bus), "%s", want_bus);
	else if (kind != DEV_MEM && hp_free_bus(g, kind == DEV_DISK && !strcmp(sv_or(hp_arg_str(op->args,
	         "bus"), ""), "scsi"), dev->bus, sizeof(dev->bus)) < 0) {
		free(dev);
		hp_op_fail(op, "InvalidState", "no free hot-plug slot: all %s spare ports "
		        "are taken (raise hotplug-slots in the profile)", "the");
		return;
	}
	op->dev = dev;
	if (kind == DEV_NIC && strcmp(sv_or(hp_arg_str(op->args, "type"), "user"), "user")) {
		hp_bridge_start(op, dev);
		return;
	}
	if (kind == DEV_DISK) {
		hp_disk_start(op, dev);
		return;
	}
	json_t *backend = kind == DEV_NIC ? hp_nic_backend(dev) : hp_mem_backend(op, dev);
	if (!backend) {   /* op already answered and finished */
		free(dev->desc);
		free(dev);
		return;
	}
	static const char *const add[] = { "blockdev-add", "netdev_add", NULL, "object-add" };
	hp_step(op, add[kind], backend, hp_attach_backend_added);
}

/* ---- detach ---- */

static void on_detach_timeout(uv_timer_t *t)
{
	struct hp_op *op = t->data;
	op->dev->state = "pending-unplug";
	sv_log(SV_LOG_WARN, op->g->name, "%s: the guest has not released it; pending-unplug",
	       op->dev->id);
	char desc[200];
	snprintf(desc, sizeof(desc), "the guest has not released %s in time; it stays "
	         "pending-unplug and is removed once the guest lets it go", op->dev->id);
	op->dev = NULL;
	op->ret_error = true;
	hp_op_done(op, json_pack("{s:s, s:s}", "class", "PendingUnplug", "desc", desc), NULL, op->id);
}

void hp_detach_done(struct hp_op *op)
{
	op->dev = NULL;
	hp_op_done(op, json_pack("{s:s, s:s}", "id", op->id, "state", "detached"), NULL, op->id);
}

static void detach_requested(void *ctx, const struct qmp_result *r)
{
	struct hp_op *op = ctx;
	if (op->deleted) {   /* the guest was quicker than QEMU's reply */
		hp_detach_done(op);
		return;
	}
	if (r->status != 0) {
		op->dev->state = "attached";
		hp_op_fail_qemu(op);
		return;
	}
	uint64_t ms = DETACH_TIMEOUT_MS;
	json_t *t = json_object_get(op->args, "timeout");
	if (json_is_integer(t) && json_integer_value(t) > 0)
		ms = (uint64_t)json_integer_value(t);
	op->timer = malloc(sizeof(*op->timer));
	uv_timer_init(op->g->env->loop, op->timer);
	op->timer->data = op;
	sv_guest_hold(op->g);
	uv_timer_start(op->timer, on_detach_timeout, ms, 0);
}

static void detach_start(struct hp_op *op)
{
	struct sv_guest *g = op->g;
	const char *id = hp_arg_str(op->args, "id");
	struct hp_dev *dev = id ? hp_dev_find(g->hp, id) : NULL;
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	if (!id) {
		hp_op_fail(op, "InvalidArgument", "%s", "detach needs {\"name\", \"id\"}");
		return;
	}
	if (!dev && p && sv_profile_find_device(p, id) >= 0) {
		hp_op_fail(op, "InvalidArgument", "%s comes from the profile; edit the profile "
		        "and restart the guest to remove it", id);
		return;
	}
	if (!dev && json_is_true(json_object_get(op->args, "persist"))) {
		/* Not in the guest (its replay failed, say), but in the overlay. */
		json_t *e;
		size_t i;
		json_array_foreach(overlay_of(g), i, e)
			if (!strcmp(sv_jstr(e, "id", ""), id)) {
				hp_op_done(op, json_pack("{s:s, s:s}", "id", id, "state",
				        "removed from the overlay"), NULL, id);
				return;
			}
	}
	if (!dev) {
		hp_op_fail(op, "NotFound", "no hot-plugged device %.32s", id);
		return;
	}
	if (strcmp(dev->state, "attached") != 0) {
		hp_op_fail(op, "InvalidState", "%s is already being unplugged", id);
		return;
	}
	if (dev->kind == DEV_CPU && strcmp(g->accel, "kvm") != 0) {
		hp_op_fail(op, "InvalidState", "%s: QEMU cannot unplug a vCPU under TCG (7.2 "
		        "never completes it and crashes on the next plug); stop and start "
		        "the guest to drop it", id);
		return;
	}
	dev->state = "unplugging";
	op->dev = dev;
	snprintf(op->id, sizeof(op->id), "%s", id);
	hp_step(op, "device_del", json_pack("{s:s}", "id", id), detach_requested);
}

/* ---- entry points ---- */

static void op_start(struct hp_op *op)
{
	struct sv_guest *g = op->g;
	if (!sv_state_can_hotplug(g->state, op->replay)) {
		hp_op_fail(op, "InvalidState", "%s is not running", sv_state_name(g->state));
		return;
	}
	if (op->detach)
		detach_start(op);
	else
		attach_start(op);
}

/* Does the attach or detach args concern a disk? */
static bool op_disk(struct sv_guest *g, json_t *args, bool detach)
{
	if (!detach)
		return !strcmp(sv_or(hp_arg_str(args, "kind"), ""), "disk");
	struct hp_dev *d = g->hp ? hp_dev_find(g->hp, sv_or(hp_arg_str(args, "id"), "")) : NULL;
	return d && d->kind == DEV_DISK;
}

bool sv_hotplug_disk_busy(struct sv_guest *g)
{
	for (struct hp_op *op = g->hp ? g->hp->head : NULL; op; op = op->next)
		if (op_disk(g, op->args, op->detach))
			return true;
	return false;
}

/* Disks are not attached or detached under a snapshot operation. */
void sv_hotplug_attach(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	if (!op_disk(g, args, false) || !sv_snapshot_refuse(g, req))
		hp_enqueue(g, req, args, false);
}

void sv_hotplug_detach(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	if (!op_disk(g, args, true) || !sv_snapshot_refuse(g, req))
		hp_enqueue(g, req, args, true);
}
