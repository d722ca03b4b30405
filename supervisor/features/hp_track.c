/* Hot-plug: what is plugged, replay, export and import (hotplug_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "request.h"
#include "hotplug_int.h"
#include "log.h"
#include "media.h"
#include "overlay.h"

static bool dev_named(const struct hp_dev *d, const char *name)
{
	return d && (!strcmp(d->id, name) || !strcmp(d->backend, name) ||
	             (!strncmp(name, "hpfd.", 5) && !strcmp(name + 5, d->id)));
}

bool sv_hotplug_tracks(struct sv_guest *g, const char *name)
{
	struct sv_hp *hp = g->hp;
	for (struct hp_dev *d = hp ? hp->devs : NULL; d; d = d->next)
		if (dev_named(d, name))
			return true;
	return hp && hp->head && dev_named(hp->head->dev, name);
}

json_t *sv_hotplug_list(struct sv_guest *g)
{
	json_t *list = json_array();
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	for (size_t i = 0; p && i < p->ndrives; i++) {
		json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s?}", "id", p->drives[i].id,
		                      "kind", p->drives[i].cdrom ? "cdrom" : "disk",
		                      "source", "profile", "state", "attached",
		                      "backend", p->drives[i].file);
		if (d && !p->drives[i].file)
			json_object_set_new(d, "empty", json_true());   /* a CD-ROM drive */
		json_array_append_new(list, d);
	}
	for (size_t i = 0; p && i < p->nnics; i++)
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "id", p->nics[i].id,
		                      "kind", "nic", "source", "profile", "state", "attached"));
	for (struct hp_dev *d = g->hp ? g->hp->devs : NULL; d; d = d->next)
		json_array_append_new(list, hp_dev_json(d));
	return list;
}

struct devices_q {
	struct sv_guest *g;
	struct sv_request *req;
};

bool sv_block_of(json_t *b, const char *id)
{
	const char *q = sv_jstr(b, "qdev", "");
	size_t n = strlen(id);
	if (!strcmp(q, id))
		return true;
	return !strncmp(q, "/machine/peripheral/", 20) && !strncmp(q + 20, id, n) &&
	       (q[20 + n] == '\0' || q[20 + n] == '/');
}

json_t *sv_block_inserted(json_t *blocks, const char *id)
{
	json_t *b, *in, *found = NULL;
	size_t i;
	json_array_foreach(blocks, i, b)
		if (sv_block_of(b, id) && (in = json_object_get(b, "inserted")))
			found = in;
	return found;
}

/* A CD-ROM's medium as QEMU reports it: none ("backend" null, "empty"),
 * the profile's own (its node "drive.ID": left as it is), or another one
 * inserted since (its file, as QEMU opened it). */
static void set_medium(struct sv_guest *g, json_t *dev, json_t *blocks)
{
	const char *id = sv_jstr(dev, "id", "");
	char mine[80];
	json_t *b;
	size_t i;
	snprintf(mine, sizeof(mine), "drive.%s", id);
	json_array_foreach(blocks, i, b) {
		json_t *in = json_object_get(b, "inserted");
		if (!sv_block_of(b, id))
			continue;
		if (!in) {
			json_object_set_new(dev, "backend", json_null());
			json_object_set_new(dev, "empty", json_true());
		} else if (strcmp(sv_jstr(in, "node-name", ""), mine) != 0) {
			/* One the cdrom verb inserted is on a fd set: its path. */
			const char *file = sv_jstr(in, "file", "?");
			if (!strncmp(file, "/dev/fdset/", 11) && sv_media_file(g, id))
				file = sv_media_file(g, id);
			json_object_set_new(dev, "backend", json_string(file));
			json_object_del(dev, "empty");
		}
		return;
	}
}

static void on_devices_blocks(void *ctx, const struct qmp_result *r)
{
	struct devices_q *q = ctx;
	json_t *list = sv_hotplug_list(q->g), *dev;
	size_t i;
	json_array_foreach(list, i, dev)
		if (r->status == 0 && !strcmp(sv_jstr(dev, "kind", ""), "cdrom"))
			set_medium(q->g, dev, r->ret);
	sv_reply_ok(q->req, list);
	sv_guest_unhold(q->g);
	free(q);
}

void sv_hotplug_devices(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	bool cdrom = false;
	struct devices_q *q;
	(void)args;
	for (size_t i = 0; p && i < p->ndrives; i++)
		cdrom |= p->drives[i].cdrom;
	if (!cdrom || !sv_state_is_up(g->state) || !g->qmp || !qmp_client_is_ready(g->qmp) ||
	    !(q = calloc(1, sizeof(*q)))) {
		sv_reply_ok(req, sv_hotplug_list(g));
		return;
	}
	q->g = g;
	q->req = req;
	sv_guest_hold(g);
	sv_step(g->qmp, NULL, "query-block", NULL, -1, on_devices_blocks, q);
}

void sv_hotplug_event(struct sv_guest *g, const char *name, json_t *data)
{
	/* virtio sends one event for its backend path first, without "device". */
	const char *id = json_string_value(json_object_get(data, "device"));
	struct hp_dev *dev = id ? hp_dev_find(g->hp, id) : NULL;
	if (!dev)
		return;
	struct hp_op *op = g->hp->head;
	bool waiting = op && op->detach && op->dev == dev;
	if (strcmp(name, "DEVICE_UNPLUG_GUEST_ERROR") == 0) {
		dev->state = "attached";
		if (waiting && op->timer)
			hp_op_fail(op, "GenericError", "the guest refused to release %s "
			        "(DEVICE_UNPLUG_GUEST_ERROR)", id);
		return;
	}
	if (strcmp(name, "DEVICE_DELETED") != 0)
		return;
	hp_drop_backend(g, dev);
	if (!waiting)
		return;
	op->dev = NULL;
	if (op->timer)
		hp_detach_done(op);
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
			sv_guest_close_free(g, (uv_handle_t *)op->timer);
		}
		if (op->dev && !op->detach) {
			free(op->dev->desc);
			free(op->dev);
		}
		if (op->req)
			sv_reply_err(op->req, "InvalidState", "%s", "QEMU ended during the operation");
		op->req = NULL;
		if (op->writing || op->opening)
			op->orphaned = true;   /* persisted() or disk_open_done() ends it */
		else
			hp_op_free(op);
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
		hp_dev_unlink(hp, hp->devs);
	json_decref(hp->overlay);
	free(hp->overlay_errs);
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
			hp_dev_unlink(hp, d);
		else
			d->state = "to-replay";
	}
}

bool sv_hotplug_replay(struct sv_guest *g, void (*done)(struct sv_guest *g))
{
	struct sv_hp *hp = g->hp;
	if (!hp) {
		/* A start (not a restart): the overlay's devices. */
		const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
		json_t *ov = NULL;
		char path[1024];
		if (p)
			hp_overlay_load(g, p, &ov);
		if (!json_array_size(ov) || !(hp = hp_of(g))) {
			json_decref(ov);
			return false;
		}
		hp->overlay = ov;
		sv_overlay_path(p, path, sizeof(path));
		sv_log(SV_LOG_INFO, g->name, "adding %zu device(s) from %s", json_array_size(ov),
		       path);
		hp->replayed = done;
		size_t i;
		json_t *spec;
		json_array_foreach(ov, i, spec)
			hp_enqueue(g, NULL, spec, false);
		return true;
	}
	if (!hp->devs)
		return false;
	json_t *specs = json_array();
	while (hp->devs) {
		/* The same slot as before: a migration's destination must match
		 * the source device for device. */
		json_t *spec = json_deep_copy(hp->devs->spec);
		if (hp->devs->bus[0])
			json_object_set_new(spec, "slot", json_string(hp->devs->bus));
		json_array_append_new(specs, spec);
		hp_dev_unlink(hp, hp->devs);
	}
	hp->replayed = done;
	size_t i;
	json_t *spec;
	/* The list was newest first: re-add oldest first, as they came. */
	for (i = json_array_size(specs); i-- > 0;) {
		spec = json_array_get(specs, i);
		hp_enqueue(g, NULL, spec, false);
	}
	json_decref(specs);
	return true;
}

json_t *sv_hotplug_export(struct sv_guest *g)
{
	json_t *list = json_array();
	for (struct hp_dev *d = g->hp ? g->hp->devs : NULL; d; d = d->next) {
		if (!d->spec)
			continue;
		json_t *sets = json_array();
		for (size_t i = 0; i < d->nfdsets; i++)
			json_array_append_new(sets, json_integer(d->fdsets[i]));
		json_array_append_new(list, json_pack("{s:O, s:s, s:s, s:s?, s:o}", "spec", d->spec,
		                      "bus", d->bus, "state", d->state, "desc", d->desc,
		                      "fdsets", sets));
	}
	return list;
}

static void on_peripherals(void *arg, const struct qmp_result *r)
{
	struct sv_guest *g = arg;
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
			present |= strcmp(sv_jstr(e, "name", ""), d->id) == 0;
		if (!present) {
			sv_log(SV_LOG_INFO, g->name, "%s was unplugged while qsupd was down", d->id);
			hp_drop_backend(g, d);
		}
	}
}

void sv_hotplug_import(struct sv_guest *g, json_t *saved)
{
	/* saved is newest first, like the list: prepend oldest first. */
	for (size_t i = json_array_size(saved); i-- > 0;) {
		json_t *e = json_array_get(saved, i);
		json_t *spec = json_object_get(e, "spec");
		const char *id = json_string_value(json_object_get(spec, "id"));
		int kind = hp_kind_parse(json_string_value(json_object_get(spec, "kind")));
		const char *st = json_string_value(json_object_get(e, "state"));
		struct sv_hp *hp = hp_of(g);
		struct hp_dev *dev = hp && id && sv_device_id_valid(id) && kind >= 0
		                   ? calloc(1, sizeof(*dev)) : NULL;
		if (!dev)
			continue;
		dev->kind = kind;
		snprintf(dev->id, sizeof(dev->id), "%s", id);
		snprintf(dev->backend, sizeof(dev->backend), "%s.%s", hp_backend_prefix[kind], id);
		snprintf(dev->bus, sizeof(dev->bus), "%s",
		         sv_jstr(e, "bus", ""));
		const char *desc = json_string_value(json_object_get(e, "desc"));
		dev->desc = desc ? strdup(desc) : NULL;
		dev->state = st && strcmp(st, "pending-unplug") == 0 ? "pending-unplug" : "attached";
		dev->spec = json_deep_copy(spec);
		json_t *set;
		size_t k;
		json_array_foreach(json_object_get(e, "fdsets"), k, set)
			if (json_is_integer(set) && dev->nfdsets <= SV_CHAIN_MAX)
				dev->fdsets[dev->nfdsets++] = (int)json_integer_value(set);
		dev->next = hp->devs;
		hp->devs = dev;
	}
}

void sv_hotplug_handover(struct sv_guest *g, json_t *saved)
{
	if (hp_of(g))
		sv_hotplug_import(g, saved);
}

void sv_hotplug_reconcile(struct sv_guest *g)
{
	if (!g->hp || !g->hp->devs || !g->qmp)
		return;
	sv_step(g->qmp, NULL, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), -1,
	        on_peripherals, g);
}

/* ---- what hot-plug hears of a guest (guest.h) ---- */

static bool on_qmp_ready(struct sv_guest *g, void (*done)(struct sv_guest *g))
{
	return g->state == SV_STARTING && sv_hotplug_replay(g, done);
}

static void on_event(struct sv_guest *g, const char *name, json_t *data)
{
	if (strncmp(name, "DEVICE_", 7) == 0)
		sv_hotplug_event(g, name, data);
}

const struct sv_guest_observer sv_hotplug_observer = {
	.name = "hotplug", .qmp_ready = on_qmp_ready, .adopted = sv_hotplug_reconcile,
	.event = on_event, .qemu_gone = sv_hotplug_qemu_gone, .stopped = sv_hotplug_reset,
	.release = sv_hotplug_reset,
};
