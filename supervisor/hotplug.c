/* Hot-plug of disks, NICs, vCPUs and memory: see hotplug.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "guest_int.h"
#include "hotplug.h"
#include "log.h"
#include "overlay.h"
#include "qmp.h"
#include "state.h"
#include "fdpass.h"
#include "image.h"
#include "tap.h"

#define DETACH_TIMEOUT_MS 10000u

enum dev_kind { DEV_DISK, DEV_NIC, DEV_CPU, DEV_MEM };

static const char *const kind_names[] = { "disk", "nic", "cpu", "memory" };
/* Backend names: "hpdrive.ID" (a block node), "hpnet.ID" (a netdev),
 * "hpmem.ID" (a memory backend object); vCPUs have none. */
static const char *const backend_prefix[] = { "hpdrive", "hpnet", "", "hpmem" };

static int kind_parse(const char *s)
{
	for (int k = DEV_DISK; k <= DEV_MEM; k++)
		if (s && strcmp(s, kind_names[k]) == 0)
			return k;
	return -1;
}

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
	bool ret_error;                 /* ret is an error ({class, desc}) */
	bool orphaned;                  /* ... and QEMU went away meanwhile */
	json_t *ret;                    /* the reply once the overlay is written */
	json_t *old_overlay;            /* to put back if the write fails */
};

struct sv_hp {
	struct hp_dev *devs;
	struct hp_op *head, *tail;
	bool busy;
	void (*replayed)(struct sv_guest *g);   /* when the replay queue drains */
	json_t *overlay;        /* the overlay's specs (read at start, or when first needed) */
	char *overlay_errs;     /* set: the file must not be rewritten (fix it first) */
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

static void disk_open_free(struct disk_open *j);

static void op_free(struct hp_op *op)
{
	disk_open_free(op->dopen);
	json_decref(op->args);
	json_decref(op->error);
	json_decref(op->todo);
	json_decref(op->done);
	json_decref(op->ret);
	json_decref(op->old_overlay);
	free(op);
}

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
	op_free(op);
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

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
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

/* Run cmd (args taken), passing fd along when >= 0 (the caller keeps it);
 * fn gets the result. */
static void step_fd(struct hp_op *op, const char *cmd, json_t *args, int fd, step_fn fn)
{
	struct step *s = malloc(sizeof(*s));
	struct sv_guest *g = op->g;
	int rc = !s || !g->qmp ? UV_ENOTCONN
	       : fd >= 0 ? qmp_client_execute_fd(g->qmp, cmd, args, fd, 0, on_step, s)
	       : qmp_client_execute(g->qmp, cmd, args, 0, on_step, s);
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

static void step(struct hp_op *op, const char *cmd, json_t *args, step_fn fn)
{
	step_fd(op, cmd, args, -1, fn);
}

/* Remove a device's backend once QEMU has deleted the device itself. */
static const char *backend_del(const struct hp_dev *dev, json_t **args)
{
	static const char *const cmds[] = { "blockdev-del", "netdev_del", NULL, "object-del" };
	*args = dev->kind == DEV_CPU ? NULL
	      : json_pack("{s:s}", dev->kind == DEV_DISK ? "node-name" : "id", dev->backend);
	return cmds[dev->kind];
}

/* Close a disk's files in QEMU (after blockdev-del, or a failed attach):
 * the fds stay in their sets until removed. */
static void drop_fdsets(struct sv_guest *g, struct hp_dev *dev)
{
	for (size_t i = 0; g->qmp && i < dev->nfdsets; i++) {
		json_t *a = json_pack("{s:i}", "fdset-id", dev->fdsets[i]);
		qmp_client_execute(g->qmp, "remove-fd", a, 0, NULL, NULL);
		json_decref(a);
	}
	dev->nfdsets = 0;
}

static void drop_backend(struct sv_guest *g, struct hp_dev *dev)
{
	json_t *args;
	const char *cmd = backend_del(dev, &args);
	if (cmd && g->qmp)
		qmp_client_execute(g->qmp, cmd, args, 0, NULL, NULL);
	json_decref(args);
	drop_fdsets(g, dev);
	sv_log(SV_LOG_INFO, g->name, "%s detached", dev->id);
	dev_unlink(g->hp, dev);
	sv_state_save(g);
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
static int overlay_load(struct sv_guest *g, const struct sv_profile *p, json_t **ov)
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
		overlay_load(g, p, &hp->overlay);
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
		op_free(op);
		sv_guest_handle_gone(g);
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
	sv_guest_handle_gone(g);
}

/* An operation succeeded with reply ret (taken). Without --persist, reply;
 * with it, first bring the overlay in line (add the specs in `add`, or drop
 * device `drop`) and write it; the reply waits for the write. */
static void op_done(struct hp_op *op, json_t *ret, json_t *add, const char *drop)
{
	struct sv_guest *g = op->g;
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	if (op->replay || !json_is_true(json_object_get(op->args, "persist")) || !p) {
		reply(op, ret);
		op_finish(op);
		return;
	}
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
	g->handles++;
	if (sv_overlay_write_async(g->d->loop, path, text, persisted, op) < 0) {
		g->handles--;
		persisted(ENOMEM, op);
	}
}

/* ---- checks shared by the attach verb and the overlay ---- */

static const char *const disk_keys[] = { "file", "format", "readonly", "serial", "cache", "bus",
                                         NULL };
static const char *const nic_keys[] = { "type", "tap", "bridge", "mac", "model", NULL };
static const char *const cpu_keys[] = { "count", NULL };
static const char *const mem_keys[] = { "size", NULL };
static const char *const *const kind_keys[] = { disk_keys, nic_keys, cpu_keys, mem_keys };
static const char *const cache_modes[] = { "writeback", "none", "writethrough", "directsync",
                                           "unsafe", NULL };

static bool in_list(const char *const *list, const char *s)
{
	for (; s && *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

#define CHECK_FAIL(cls, ...) do { snprintf(msg, size, __VA_ARGS__); return cls; } while (0)

static uint64_t spec_size(json_t *spec)
{
	json_t *v = json_object_get(spec, "size");
	uint64_t b = 0;
	if (json_is_integer(v) && json_integer_value(v) > 0)
		b = (uint64_t)json_integer_value(v);
	else if (json_is_string(v) && sv_size_parse(json_string_value(v), &b) < 0)
		b = 0;
	return b;
}

/* How many of the profile's drives are on its SCSI controller (they take
 * SCSI ids 0 .. n-1). */
static unsigned scsi_drives(const struct sv_profile *p)
{
	unsigned n = 0;
	for (size_t i = 0; i < p->ndrives; i++)
		n += p->drives[i].bus == SV_BUS_SCSI;
	return n;
}

/* A vCPU id: "vcpuN"; returns N, or -1. */
static long vcpu_index(const char *id)
{
	char *end;
	if (!id || strncmp(id, "vcpu", 4) != 0 || id[4] < '0' || id[4] > '9')
		return -1;
	long n = strtol(id + 4, &end, 10);
	return *end || n > 4096 ? -1 : n;
}

const char *sv_hotplug_check(const struct sv_profile *p, json_t *spec, char *msg, size_t size)
{
	const char *kname = json_string_value(json_object_get(spec, "kind"));
	int kind = kind_parse(kname);
	if (kind < 0)
		CHECK_FAIL("InvalidArgument", "kind must be disk, nic, cpu or memory");
	const char *key;
	json_t *v;
	json_object_foreach(spec, key, v) {
		if (!strcmp(key, "name") || !strcmp(key, "kind") || !strcmp(key, "id") ||
		    in_list(kind_keys[kind], key))
			continue;
		if (!strcmp(key, "persist") && json_is_boolean(v))
			continue;
		char allowed[128] = "";
		for (const char *const *k = kind_keys[kind]; *k; k++)
			snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed),
			         "%s%s", k == kind_keys[kind] ? "" : ", ", *k);
		CHECK_FAIL("InvalidArgument", "%.40s: not a key for a %s (allowed: id, %s, persist)",
		           key, kname, allowed);
	}
	json_t *idj = json_object_get(spec, "id");
	const char *id = json_string_value(idj);
	if (idj && (!id || !sv_device_id_valid(id)))
		CHECK_FAIL("InvalidArgument", "id: 1 to 20 letters, digits, '_' or '-', starting "
		           "with a letter");
	if (!idj && kind != DEV_CPU && kind != DEV_MEM)
		CHECK_FAIL("InvalidArgument", "a %s needs an id", kname);
	if (id && sv_profile_find_device(p, id) >= 0)
		CHECK_FAIL("InvalidArgument", "%s is already a device of this guest (its profile)",
		           id);
	const char *file = json_string_value(json_object_get(spec, "file"));
	const char *fmt = json_string_value(json_object_get(spec, "format"));
	const char *type = json_string_value(json_object_get(spec, "type"));
	const char *s, *why;
	json_t *count = json_object_get(spec, "count");
	uint64_t bytes;
	char *path = NULL;
	uint8_t mac[6];
	long n;
	switch (kind) {
	case DEV_DISK:
		if (!file || !fmt)
			CHECK_FAIL("InvalidArgument", "a disk needs \"file\" and \"format\" (the "
			           "format is never probed)");
		if (!sv_format_valid(fmt))
			CHECK_FAIL("InvalidArgument", "format '%.32s' is not one of raw, qcow2, vmdk, "
			           "vdi, vhdx, vpc, qed", fmt);
		if ((v = json_object_get(spec, "readonly")) && !json_is_boolean(v))
			CHECK_FAIL("InvalidArgument", "readonly: use on or off");
		if ((v = json_object_get(spec, "bus")) && (!(s = json_string_value(v)) ||
		    (strcmp(s, "virtio") && strcmp(s, "scsi"))))
			CHECK_FAIL("InvalidArgument", "bus: use virtio or scsi");
		if (v && !strcmp(s, "scsi") && !scsi_drives(p))
			CHECK_FAIL("InvalidArgument", "bus=scsi needs the profile's SCSI controller: "
			           "the profile has no disk or CD-ROM with bus = scsi");
		if ((v = json_object_get(spec, "cache")) && !in_list(cache_modes, json_string_value(v)))
			CHECK_FAIL("InvalidArgument", "cache: use writeback, none, writethrough, "
			           "directsync or unsafe");
		if ((v = json_object_get(spec, "serial")) &&
		    (!(s = json_string_value(v)) || !*s || strlen(s) > 20 || !sv_text_clean(s) ||
		     strpbrk(s, " ,=\"\\")))
			CHECK_FAIL("InvalidArgument", "serial: 1 to 20 characters, no blanks, "
			           "commas, quotes or '='");
		if (!sv_text_clean(file) || sv_path_resolve(p->dir, file, &path, &why) < 0) {
			snprintf(msg, size, "file: %s", path ? why : "not a usable path");
			free(path);
			return "InvalidArgument";
		}
		bool ro = json_is_true(json_object_get(spec, "readonly"));
		if (access(path, ro ? R_OK : R_OK | W_OK) < 0) {
			snprintf(msg, size, "%s: %s", path, strerror(errno));
			free(path);
			return "NotFound";
		}
		free(path);
		return NULL;
	case DEV_NIC:
		if ((v = json_object_get(spec, "mac")) &&
		    (!(s = json_string_value(v)) || sv_mac_parse(s, mac) < 0))
			CHECK_FAIL("InvalidArgument", "mac: not a unicast MAC address "
			           "(like 52:54:00:12:34:56)");
		if ((v = json_object_get(spec, "model")) && (!(s = json_string_value(v)) ||
		    (strcmp(s, "virtio") && strcmp(s, "e1000e"))))
			CHECK_FAIL("InvalidArgument", "model: use virtio or e1000e (PCIe devices)");
		if (!type || !strcmp(type, "user")) {
			if (json_object_get(spec, "tap") || json_object_get(spec, "bridge"))
				CHECK_FAIL("InvalidArgument", "a user NIC takes no tap or bridge");
			return NULL;
		}
		const char *want = !strcmp(type, "tap") ? "tap" : !strcmp(type, "bridge") ? "bridge"
		                 : NULL;
		if (!want)
			CHECK_FAIL("InvalidArgument", "type must be user, tap or bridge");
		s = json_string_value(json_object_get(spec, want));
		if (!s || !sv_ifname_valid(s) || strpbrk(s, ",=") || s[0] == '-')
			CHECK_FAIL("InvalidArgument", "a %s NIC needs %s=NAME: an interface name "
			           "(1 to 15 ASCII characters, no '/', ':', '%%', ',', '=' or "
			           "blanks)", type, want);
		if (json_object_get(spec, strcmp(want, "tap") ? "tap" : "bridge"))
			CHECK_FAIL("InvalidArgument", "a %s NIC takes %s=, not both", type, want);
		return NULL;
	case DEV_CPU:
		if (p->max_cpus <= p->cpus)
			CHECK_FAIL("InvalidState", "the profile leaves no room for more vCPUs (set "
			           "max-cpus above cpus in [guest])");
		if (count && (!json_is_integer(count) || json_integer_value(count) < 1 ||
		              json_integer_value(count) > 1024))
			CHECK_FAIL("InvalidArgument", "count must be a number from 1 to 1024");
		if (id && count && json_integer_value(count) != 1)
			CHECK_FAIL("InvalidArgument", "give either id or count");
		if (id && ((n = vcpu_index(id)) < (long)p->cpus || n >= (long)p->max_cpus))
			CHECK_FAIL("InvalidArgument", "a hot-plugged vCPU is vcpuN, N from %u (cpus) "
			           "to %u (max-cpus - 1)", p->cpus, p->max_cpus - 1);
		return NULL;
	case DEV_MEM:
		if (!p->max_memory)
			CHECK_FAIL("InvalidState", "the profile leaves no room for more memory (set "
			           "max-memory and slots in [guest])");
		if (!(bytes = spec_size(spec)))
			CHECK_FAIL("InvalidArgument", "memory needs \"size\": a size such as 256M or "
			           "1G (a plain number is in bytes)");
		if (bytes % (2u << 20))
			CHECK_FAIL("InvalidArgument", "size must be a multiple of 2 MiB (Linux guests "
			           "use memory in 128 MiB blocks)");
		if (bytes > p->max_memory - p->memory)
			CHECK_FAIL("InvalidState", "size: more than max-memory leaves (%llu MiB)",
			           (unsigned long long)((p->max_memory - p->memory) >> 20));
		return NULL;
	}
	return NULL;
}

/* ---- disks and NICs ---- */

static json_t *dev_json(const struct hp_dev *d)
{
	const char *source = json_is_true(json_object_get(d->spec, "persist")) ? "overlay"
	                   : "hotplug";
	return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?}", "id", d->id,
	                 "kind", kind_names[d->kind], "source", source,
	                 "state", d->state, "bus", d->bus[0] ? d->bus : NULL, "backend", d->desc);
}

/* dev is in QEMU: record it (spec: the attach arguments, for a replay). */
static void dev_add(struct hp_op *op, struct hp_dev *dev, json_t *spec)
{
	struct sv_hp *hp = op->g->hp;
	dev->state = "attached";
	dev->next = hp->devs;
	hp->devs = dev;
	op->dev = NULL;
	dev->spec = json_deep_copy(spec);
	json_object_del(dev->spec, "name");
	json_object_del(dev->spec, "count");
	sv_log(SV_LOG_INFO, op->g->name, "%s %s%s%s", dev->id,
	       op->replay ? "re-added" : "attached", dev->bus[0] ? " on " : "", dev->bus);
}

static void attach_rolled_back(struct hp_op *op, const struct qmp_result *r)
{
	(void)r;
	drop_fdsets(op->g, op->dev);
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
		json_t *a;
		const char *cmd = backend_del(dev, &a);
		step(op, cmd, a, attach_rolled_back);
		return;
	}
	dev_add(op, dev, op->args);
	sv_state_save(op->g);   /* a later qsupd re-adopts the guest with it */
	json_t *add = json_pack("[O]", dev->spec);
	op_done(op, dev_json(dev), add, NULL);
	json_decref(add);
}

static void nic_mac(struct hp_op *op, const char *id, uint8_t m[6])
{
	const char *given = arg_str(op->args, "mac");
	if (!given || sv_mac_parse(given, m) < 0)
		sv_mac_stable(op->g->name, id, m);
}

static void attach_backend_added(struct hp_op *op, const struct qmp_result *r)
{
	struct hp_dev *dev = op->dev;
	if (r->status != 0 && dev->kind == DEV_NIC && op->g->qmp &&
	    strcmp(sv_or(arg_str(op->args, "type"), "user"), "user")) {
		/* The tap fd stays in QEMU's named fds until closed. */
		char fdname[SV_ID_MAX + 16];
		snprintf(fdname, sizeof(fdname), "hpfd.%s", dev->id);
		json_t *a = json_pack("{s:s}", "fdname", fdname);
		qmp_client_execute(op->g->qmp, "closefd", a, 0, NULL, NULL);
		json_decref(a);
	}
	if (r->status != 0) {
		drop_fdsets(op->g, dev);
		free(dev->desc);
		free(dev);
		op->dev = NULL;
		op_fail_qemu(op);
		return;
	}
	if (dev->kind == DEV_MEM) {
		step(op, "device_add", json_pack("{s:s, s:s, s:s}", "driver", "pc-dimm", "id",
		                                 dev->id, "memdev", dev->backend),
		     attach_device_added);
		return;
	}
	const char *model = arg_str(op->args, "model");
	bool scsi = !strncmp(dev->bus, "scsi:", 5);
	json_t *a = json_pack("{s:s, s:s, s:s}", "id", dev->id, "bus", scsi ? "scsi.0.0" : dev->bus,
	                      "driver", scsi ? "scsi-hd" : dev->kind == DEV_DISK ? "virtio-blk-pci"
	                      : model && !strcmp(model, "e1000e") ? "e1000e" : "virtio-net-pci");
	if (scsi)
		json_object_set_new(a, "scsi-id", json_integer(strtol(dev->bus + 5, NULL, 10)));
	if (dev->kind == DEV_DISK) {
		const char *cache = sv_or(arg_str(op->args, "cache"), "");
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
	step(op, "device_add", a, attach_device_added);
}

static void bridge_fd_passed(struct hp_op *op, const struct qmp_result *r)
{
	struct hp_dev *dev = op->dev;
	if (r->status != 0) {
		free(dev->desc);
		free(dev);
		op->dev = NULL;
		op_fail_qemu(op);
		return;
	}
	char fdname[SV_ID_MAX + 16];
	snprintf(fdname, sizeof(fdname), "hpfd.%s", dev->id);
	step(op, "netdev_add", json_pack("{s:s, s:s, s:s}", "type", "tap", "id", dev->backend,
	                                 "fd", fdname), attach_backend_added);
}

static bool bus_used(struct sv_guest *g, const char *bus)
{
	for (struct hp_dev *d = g->hp->devs; d; d = d->next)
		if (strcmp(d->bus, bus) == 0 && strcmp(bus, "pci.0") != 0)
			return true;
	return false;
}

/* A free spare port (q35), or pci.0 (pc); for a SCSI disk, a free target
 * on the profile's controller ("scsi:N"). Returns 0, or -ENOSPC. */
static int free_bus(struct sv_guest *g, bool scsi, char *bus, size_t size)
{
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	for (unsigned i = scsi_drives(p); scsi && i < 256; i++) {
		snprintf(bus, size, "scsi:%u", i);
		if (!bus_used(g, bus))
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
		if (!bus_used(g, bus))
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
	struct sv_chain chain;
	int fds[SV_CHAIN_MAX + 1];      /* [0] the image, [i] backing layer i */
	size_t nfds, next;              /* opened; the next to hand to QEMU */
	int rc;
	struct sv_error err;
};

static void disk_open_free(struct disk_open *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->nfds; i++)
		if (j->fds[i] >= 0)
			close(j->fds[i]);
	sv_chain_free(&j->chain);
	free(j->path);
	free(j);
}

static void disk_open_work(uv_work_t *w)
{
	struct disk_open *j = w->data;
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
 * format node over a file node on its fd set, its backing spelled out. */
static json_t *layer_json(struct hp_op *op, struct hp_dev *dev, size_t i)
{
	struct disk_open *j = op->dopen;
	const char *cache = sv_or(arg_str(op->args, "cache"), "writeback");
	const char *fmt = i ? j->chain.layers[i - 1].format : j->format;
	bool ro = i ? true : j->ro, cow = !strcmp(fmt, "qcow2");
	char fdset[32];
	/* cache= as in profiles: O_DIRECT for none/directsync, no flushes for
	 * unsafe; writethrough/directsync turn the device's write cache off. */
	bool direct = !strcmp(cache, "none") || !strcmp(cache, "directsync");
	json_t *c = json_pack("{s:b, s:b}", "direct", direct, "no-flush", !strcmp(cache, "unsafe"));
	const char *path = i ? j->chain.layers[i - 1].path : j->path;
	snprintf(fdset, sizeof(fdset), "/dev/fdset/%d", dev->fdsets[i]);
	json_t *r = json_pack("{s:s, s:b, s:O, s:{s:s, s:s, s:b, s:O}}", "driver", fmt,
	                      "read-only", ro, "cache", c, "file", "driver",
	                      strncmp(path, "/dev/", 5) ? "file" : "host_device",
	                      "filename", fdset, "read-only", ro, "cache", c);
	json_decref(c);
	if (!i)
		json_object_set_new(r, "node-name", json_string(dev->backend));
	if (cow)
		json_object_set_new(r, "backing", i < j->chain.n ? layer_json(op, dev, i + 1)
		                    : json_null());
	return r;
}

static void disk_fd_added(struct hp_op *op, const struct qmp_result *r);

/* Hand the next opened file to QEMU (add-fd, a new fd set), or, when all
 * are in, add the block node over them. */
static void disk_next_fd(struct hp_op *op)
{
	struct disk_open *j = op->dopen;
	struct hp_dev *dev = op->dev;
	if (j->next < j->nfds) {
		step_fd(op, "add-fd", json_object(), j->fds[j->next], disk_fd_added);
		return;
	}
	step(op, "blockdev-add", layer_json(op, dev, 0), attach_backend_added);
}

static void disk_fd_added(struct hp_op *op, const struct qmp_result *r)
{
	struct disk_open *j = op->dopen;
	struct hp_dev *dev = op->dev;
	close(j->fds[j->next]);   /* QEMU has its copy (or the step failed) */
	j->fds[j->next] = -1;
	if (r->status != 0) {
		drop_fdsets(op->g, dev);
		free(dev->desc);
		free(dev);
		op->dev = NULL;
		op_fail_qemu(op);
		return;
	}
	dev->fdsets[dev->nfdsets++] = (int)json_integer_value(json_object_get(r->ret, "fdset-id"));
	j->next++;
	disk_next_fd(op);
}

static void disk_open_done(uv_work_t *w, int status)
{
	struct disk_open *j = w->data;
	struct hp_op *op = j->op;
	struct sv_guest *g = op->g;
	op->opening = false;
	if (op->orphaned) {   /* QEMU went away meanwhile: the queue is gone */
		op_free(op);
		sv_guest_handle_gone(g);
		return;
	}
	sv_guest_handle_gone(g);
	if (status < 0 || j->rc < 0) {
		free(op->dev->desc);
		free(op->dev);
		op->dev = NULL;
		op_fail(op, j->rc == -ENOENT ? "NotFound" : j->rc == -EINVAL ||
		        j->rc == -EOPNOTSUPP || j->rc == -ELOOP ? "InvalidArgument"
		        : "GenericError", "%s", status < 0 ? uv_strerror(status)
		        : j->err.msg);
		return;
	}
	disk_next_fd(op);
}

/* A disk attach: open its files off the loop, then add-fd each and
 * blockdev-add (dev is op's from here on). */
static void disk_start(struct hp_op *op, struct hp_dev *dev)
{
	const struct sv_profile *p = op->g->run_profile ? op->g->run_profile : op->g->profile;
	const char *why;
	char *path = NULL;
	struct disk_open *j = calloc(1, sizeof(*j));
	if (!j || sv_path_resolve(p->dir, arg_str(op->args, "file"), &path, &why) < 0) {
		free(dev);
		op->dev = NULL;
		op_fail(op, j ? "InvalidArgument" : "GenericError", "file: %s", !j ? "out of memory"
		        : path ? why : "not a usable path");
		free(path);
		free(j);
		return;
	}
	dev->desc = strdup(path);
	j->path = path;
	snprintf(j->format, sizeof(j->format), "%s", arg_str(op->args, "format"));
	j->ro = json_is_true(json_object_get(op->args, "readonly"));
	j->op = op;
	j->work.data = j;
	op->dopen = j;
	op->opening = true;
	op->g->handles++;
	if (uv_queue_work(op->g->d->loop, &j->work, disk_open_work, disk_open_done) < 0) {
		op->opening = false;
		op->g->handles--;
		op_fail(op, "GenericError", "%s", "cannot queue work");
	}
}

static void bridge_fd_passed(struct hp_op *op, const struct qmp_result *r);

/* A bridge or tap NIC: qsupd makes (bridge) or opens (tap) the tap itself
 * and passes it over QMP (QEMU runs unprivileged, and its sandbox forbids
 * qemu-bridge-helper); netdev_add follows getfd. dev is op's from here on
 * (freed on failure). */
static void bridge_start(struct hp_op *op, struct hp_dev *dev)
{
	struct sv_error err = { 0 };
	char tap[SV_IFNAMSIZ];
	uint8_t m[6];
	const char *bridge = arg_str(op->args, "bridge");
	nic_mac(op, dev->id, m);
	int fd = bridge ? sv_tap_open(bridge, NULL, m, tap, &err)
	       : sv_tap_attach(arg_str(op->args, "tap"), &err);
	if (!bridge)
		snprintf(tap, sizeof(tap), "%s", arg_str(op->args, "tap"));
	if (fd < 0) {
		free(dev);
		op->dev = NULL;
		op_fail(op, fd == -ENODEV || fd == -EOPNOTSUPP ? "NotFound" : "GenericError",
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
	step_fd(op, "getfd", json_pack("{s:s}", "fdname", fdname), fd, bridge_fd_passed);
	close(fd);   /* QEMU has its copy (or the step failed): the tap lives in QEMU */
}

/* A user NIC's netdev_add (taps: bridge_start). */
static json_t *nic_backend(struct hp_dev *dev)
{
	dev->desc = strdup("user");
	return json_pack("{s:s, s:s}", "type", "user", "id", dev->backend);
}

/* ---- vCPUs: query-hotpluggable-cpus, then a device_add per vCPU ---- */

/* The props of a possible vCPU, as a sort key: socket, die, core, thread. */
static long long cpu_key(json_t *slot)
{
	static const char *const keys[] = { "socket-id", "die-id", "core-id", "thread-id" };
	json_t *props = json_object_get(slot, "props");
	long long k = 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		k = k * 1024 + (json_integer_value(json_object_get(props, keys[i])) & 1023);
	return k;
}

static int cpu_cmp(const void *a, const void *b)
{
	long long x = cpu_key(*(json_t *const *)a), y = cpu_key(*(json_t *const *)b);
	return (x > y) - (x < y);
}

static void cpu_next(struct hp_op *op);

static void cpu_added(struct hp_op *op, const struct qmp_result *r)
{
	struct hp_dev *dev = op->dev;
	if (r->status != 0) {
		/* vCPUs added before this one stay: taking them out again needs
		 * the guest's help (and crashes QEMU 7.2 under TCG). */
		free(dev->desc);
		free(dev);
		op->dev = NULL;
		if (json_array_size(op->done) && op->req)
			json_object_set_new(op->error, "added", json_incref(op->done));
		if (json_array_size(op->done))
			sv_state_save(op->g);
		op_fail_qemu(op);
		return;
	}
	json_t *spec = json_pack("{s:s, s:s, s:O?}", "kind", "cpu", "id", dev->id, "persist",
	                         json_object_get(op->args, "persist"));
	dev_add(op, dev, spec);
	json_decref(spec);
	json_array_append_new(op->done, dev_json(dev));
	cpu_next(op);
}

static void cpu_next(struct hp_op *op)
{
	if (!json_array_size(op->todo)) {
		sv_state_save(op->g);
		json_t *add = json_array(), *d;
		size_t i;
		json_array_foreach(op->done, i, d)
			json_array_append_new(add, json_pack("{s:s, s:O}", "kind", "cpu", "id",
			                                     json_object_get(d, "id")));
		op_done(op, json_pack("{s:s, s:O}", "kind", "cpu", "devices", op->done), add, NULL);
		json_decref(add);
		return;
	}
	json_t *a = json_incref(json_array_get(op->todo, 0));
	json_array_remove(op->todo, 0);
	struct hp_dev *dev = calloc(1, sizeof(*dev));
	if (!dev) {
		json_decref(a);
		op_fail(op, "GenericError", "%s", "out of memory");
		return;
	}
	dev->kind = DEV_CPU;
	snprintf(dev->id, sizeof(dev->id), "%s", json_string_value(json_object_get(a, "id")));
	dev->desc = strdup(json_string_value(json_object_get(a, "driver")));
	op->dev = dev;
	step(op, "device_add", a, cpu_added);
}

static void cpu_listed(struct hp_op *op, const struct qmp_result *r)
{
	struct sv_guest *g = op->g;
	if (r->status != 0) {
		op_fail_qemu(op);
		return;
	}
	size_t n = json_array_size(r->ret), free_slots = 0;
	json_t **slots = calloc(n + 1, sizeof(*slots));
	if (!slots) {
		op_fail(op, "GenericError", "%s", "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++)
		slots[i] = json_array_get(r->ret, i);
	qsort(slots, n, sizeof(*slots), cpu_cmp);
	const char *want = arg_str(op->args, "id");
	json_int_t count = json_integer_value(json_object_get(op->args, "count"));
	if (count == 0)
		count = 1;
	op->todo = json_array();
	op->done = json_array();
	/* The vCPU in slot i (in topology order) is "vcpuI": the boot vCPUs
	 * are vcpu0 .. vcpuN-1, so the first hot-plugged one is vcpuN. */
	for (size_t i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "vcpu%zu", i);
		if (json_object_get(slots[i], "qom-path") || dev_find(g->hp, id))
			continue;
		free_slots++;
		if (want ? strcmp(want, id) != 0 : (json_int_t)json_array_size(op->todo) >= count)
			continue;
		json_t *a = json_deep_copy(json_object_get(slots[i], "props"));
		json_object_set_new(a, "driver", json_string(sv_jstr(slots[i], "type", "?")));
		json_object_set_new(a, "id", json_string(id));
		json_array_append_new(op->todo, a);
	}
	free(slots);
	if (want && !json_array_size(op->todo)) {
		op_fail(op, "InvalidArgument", "%s is not a free vCPU slot", want);
		return;
	}
	if ((json_int_t)json_array_size(op->todo) < count) {
		char msg[160];
		snprintf(msg, sizeof(msg), "asked for %lld more vCPUs, but only %zu of max-cpus "
		         "%zu are free", (long long)count, free_slots, n);
		op_fail(op, "InvalidState", "%s", msg);
		return;
	}
	cpu_next(op);
}

static void cpu_start(struct hp_op *op)
{
	step(op, "query-hotpluggable-cpus", NULL, cpu_listed);
}

/* ---- memory: a memory-backend-ram object, then a pc-dimm ---- */

/* A memory attach's object-add, once the limits allow it; NULL after
 * failing op. */
static json_t *mem_backend(struct hp_op *op, struct hp_dev *dev)
{
	const struct sv_profile *p = op->g->run_profile ? op->g->run_profile : op->g->profile;
	uint64_t bytes = spec_size(op->args), total = p->memory;
	unsigned used = 0;
	for (struct hp_dev *d = op->g->hp->devs; d; d = d->next) {
		if (d->kind == DEV_MEM) {
			used++;
			total += spec_size(d->spec);
		}
	}
	if (used >= p->slots)
		return op_fail(op, "InvalidState", "%s", "no free memory slot: all the profile's "
		               "slots are in use (raise slots in [guest])"), NULL;
	if (total + bytes > p->max_memory) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%llu MiB more would make %llu MiB, over max-memory "
		         "(%llu MiB)", (unsigned long long)(bytes >> 20),
		         (unsigned long long)((total + bytes) >> 20),
		         (unsigned long long)(p->max_memory >> 20));
		return op_fail(op, "InvalidState", "%s", msg), NULL;
	}
	if (asprintf(&dev->desc, "%lluM", (unsigned long long)(bytes >> 20)) < 0)
		dev->desc = NULL;
	return json_pack("{s:s, s:s, s:I}", "qom-type", "memory-backend-ram", "id", dev->backend,
	                 "size", (json_int_t)bytes);
}

/* ---- attach ---- */

static void attach_start(struct hp_op *op)
{
	struct sv_guest *g = op->g;
	const char *id = arg_str(op->args, "id");
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	char msg[600], want_bus[32] = "";
	if (!p) {
		op_fail(op, "InvalidState", "%s", "the guest's profile is gone");
		return;
	}
	if (op->replay && arg_str(op->args, "slot")) {
		snprintf(want_bus, sizeof(want_bus), "%s", arg_str(op->args, "slot"));
		json_object_del(op->args, "slot");
	}
	const char *cls = sv_hotplug_check(p, op->args, msg, sizeof(msg));
	if (cls) {
		op_fail(op, cls, "%s", msg);
		return;
	}
	int kind = kind_parse(arg_str(op->args, "kind"));
	if (kind == DEV_CPU) {
		cpu_start(op);
		return;
	}
	char auto_id[16];
	if (kind == DEV_MEM && !json_object_get(op->args, "id")) {
		/* Memory needs no name from the caller: mem0, mem1, ... */
		for (unsigned i = 0; !id; i++) {
			snprintf(auto_id, sizeof(auto_id), "mem%u", i);
			if (!dev_find(g->hp, auto_id) && !(p && sv_profile_find_device(p, auto_id) >= 0))
				id = auto_id;
		}
		json_object_set_new(op->args, "id", json_string(id));
	}
	if (dev_find(g->hp, id)) {
		op_fail(op, "InvalidArgument", "%s is already a device of this guest", id);
		return;
	}
	struct hp_dev *dev = calloc(1, sizeof(*dev));
	if (!dev) {
		op_fail(op, "GenericError", "%s", "out of memory");
		return;
	}
	dev->kind = kind;
	snprintf(dev->id, sizeof(dev->id), "%s", id);
	snprintf(dev->backend, sizeof(dev->backend), "%s.%s", backend_prefix[kind], id);
	if (want_bus[0] && !bus_used(g, want_bus))
		snprintf(dev->bus, sizeof(dev->bus), "%s", want_bus);
	else if (kind != DEV_MEM && free_bus(g, kind == DEV_DISK && !strcmp(sv_or(arg_str(op->args,
	         "bus"), ""), "scsi"), dev->bus, sizeof(dev->bus)) < 0) {
		free(dev);
		op_fail(op, "InvalidState", "no free hot-plug slot: all %s spare ports "
		        "are taken (raise hotplug-slots in the profile)", "the");
		return;
	}
	op->dev = dev;
	if (kind == DEV_NIC && strcmp(sv_or(arg_str(op->args, "type"), "user"), "user")) {
		bridge_start(op, dev);
		return;
	}
	if (kind == DEV_DISK) {
		disk_start(op, dev);
		return;
	}
	json_t *backend = kind == DEV_NIC ? nic_backend(dev) : mem_backend(op, dev);
	if (!backend) {   /* op already answered and finished */
		free(dev->desc);
		free(dev);
		return;
	}
	static const char *const add[] = { "blockdev-add", "netdev_add", NULL, "object-add" };
	step(op, add[kind], backend, attach_backend_added);
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
	op_done(op, json_pack("{s:s, s:s}", "class", "PendingUnplug", "desc", desc), NULL, op->id);
}

static void detach_done(struct hp_op *op)
{
	op->dev = NULL;
	op_done(op, json_pack("{s:s, s:s}", "id", op->id, "state", "detached"), NULL, op->id);
}

static void detach_requested(struct hp_op *op, const struct qmp_result *r)
{
	if (op->deleted) {   /* the guest was quicker than QEMU's reply */
		detach_done(op);
		return;
	}
	if (r->status != 0) {
		op->dev->state = "attached";
		op_fail_qemu(op);
		return;
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
	if (!id) {
		op_fail(op, "InvalidArgument", "%s", "detach needs {\"name\", \"id\"}");
		return;
	}
	if (!dev && p && sv_profile_find_device(p, id) >= 0) {
		op_fail(op, "InvalidArgument", "%s comes from the profile; edit the profile "
		        "and restart the guest to remove it", id);
		return;
	}
	if (!dev && json_is_true(json_object_get(op->args, "persist"))) {
		/* Not in the guest (its replay failed, say), but in the overlay. */
		json_t *e;
		size_t i;
		json_array_foreach(overlay_of(g), i, e)
			if (!strcmp(sv_jstr(e, "id", ""), id)) {
				op_done(op, json_pack("{s:s, s:s}", "id", id, "state",
				        "removed from the overlay"), NULL, id);
				return;
			}
	}
	if (!dev) {
		op_fail(op, "NotFound", "no hot-plugged device %.32s", id);
		return;
	}
	if (strcmp(dev->state, "attached") != 0) {
		op_fail(op, "InvalidState", "%s is already being unplugged", id);
		return;
	}
	if (dev->kind == DEV_CPU && strcmp(g->accel, "kvm") != 0) {
		op_fail(op, "InvalidState", "%s: QEMU cannot unplug a vCPU under TCG (7.2 "
		        "never completes it and crashes on the next plug); stop and start "
		        "the guest to drop it", id);
		return;
	}
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
	    !(op->replay && (g->state == SV_STARTING || g->state == SV_INCOMING))) {
		op_fail(op, "InvalidState", "%s is not running", sv_state_name(g->state));
		return;
	}
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
		json_array_append_new(list, dev_json(d));
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
		op->req = NULL;
		if (op->writing || op->opening)
			op->orphaned = true;   /* persisted() or disk_open_done() ends it */
		else
			op_free(op);
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
			dev_unlink(hp, d);
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
			overlay_load(g, p, &ov);
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
			enqueue(g, NULL, spec, false);
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
			present |= strcmp(sv_jstr(e, "name", ""), d->id) == 0;
		if (!present) {
			sv_log(SV_LOG_INFO, g->name, "%s was unplugged while qsupd was down", d->id);
			drop_backend(g, d);
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
		int kind = kind_parse(json_string_value(json_object_get(spec, "kind")));
		const char *st = json_string_value(json_object_get(e, "state"));
		struct sv_hp *hp = hp_of(g);
		struct hp_dev *dev = hp && id && sv_device_id_valid(id) && kind >= 0
		                   ? calloc(1, sizeof(*dev)) : NULL;
		if (!dev)
			continue;
		dev->kind = kind;
		snprintf(dev->id, sizeof(dev->id), "%s", id);
		snprintf(dev->backend, sizeof(dev->backend), "%s.%s", backend_prefix[kind], id);
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
	json_t *args = json_pack("{s:s}", "path", "/machine/peripheral");
	qmp_client_execute(g->qmp, "qom-list", args, 0, on_peripherals, g);
	json_decref(args);
}
