/* Hot-plug of vCPUs and memory (hotplug_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "request.h"
#include "hotplug_int.h"

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

static void cpu_added(void *ctx, const struct qmp_result *r)
{
	struct hp_op *op = ctx;
	struct hp_dev *dev = op->dev;
	if (r->status != 0) {
		/* vCPUs added before this one stay: taking them out again needs
		 * the guest's help (and crashes QEMU 7.2 under TCG). */
		hp_op_drop_dev(op);
		if (json_array_size(op->done) && op->req)
			json_object_set_new(op->error, "added", json_incref(op->done));
		if (json_array_size(op->done))
			sv_guest_persist(op->g);
		hp_op_fail_qemu(op);
		return;
	}
	json_t *spec = json_pack("{s:s, s:s, s:O*}", "kind", "cpu", "id", dev->id, "persist",
	                         json_object_get(op->args, "persist"));
	hp_dev_add(op, dev, spec);
	json_decref(spec);
	json_array_append_new(op->done, hp_dev_json(dev));
	cpu_next(op);
}

static void cpu_next(struct hp_op *op)
{
	if (!json_array_size(op->todo)) {
		sv_guest_persist(op->g);
		json_t *add = json_array(), *d;
		size_t i;
		json_array_foreach(op->done, i, d)
			json_array_append_new(add, json_pack("{s:s, s:O}", "kind", "cpu", "id",
			                                     json_object_get(d, "id")));
		hp_op_done(op, json_pack("{s:s, s:O}", "kind", "cpu", "devices", op->done), add, NULL);
		json_decref(add);
		return;
	}
	json_t *a = json_incref(json_array_get(op->todo, 0));
	json_array_remove(op->todo, 0);
	struct hp_dev *dev = calloc(1, sizeof(*dev));
	if (!dev) {
		json_decref(a);
		hp_op_fail(op, "GenericError", "%s", "out of memory");
		return;
	}
	dev->kind = DEV_CPU;
	snprintf(dev->id, sizeof(dev->id), "%s", json_string_value(json_object_get(a, "id")));
	dev->desc = strdup(json_string_value(json_object_get(a, "driver")));
	op->dev = dev;
	hp_step(op, "device_add", a, cpu_added);
}

static void cpu_listed(void *ctx, const struct qmp_result *r)
{
	struct hp_op *op = ctx;
	struct sv_guest *g = op->g;
	if (r->status != 0) {
		hp_op_fail_qemu(op);
		return;
	}
	size_t n = json_array_size(r->ret), free_slots = 0;
	json_t **slots = calloc(n + 1, sizeof(*slots));
	if (!slots) {
		hp_op_fail(op, "GenericError", "%s", "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++)
		slots[i] = json_array_get(r->ret, i);
	qsort(slots, n, sizeof(*slots), cpu_cmp);
	const char *want = hp_arg_str(op->args, "id");
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
		if (json_object_get(slots[i], "qom-path") || hp_dev_find(g->hp, id))
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
		hp_op_fail(op, "InvalidArgument", "%s is not a free vCPU slot", want);
		return;
	}
	if ((json_int_t)json_array_size(op->todo) < count) {
		char msg[160];
		snprintf(msg, sizeof(msg), "asked for %lld more vCPUs, but only %zu of max-cpus "
		         "%zu are free", (long long)count, free_slots, n);
		hp_op_fail(op, "InvalidState", "%s", msg);
		return;
	}
	cpu_next(op);
}

void hp_cpu_start(struct hp_op *op)
{
	hp_step(op, "query-hotpluggable-cpus", NULL, cpu_listed);
}

/* ---- memory: a memory-backend-ram object, then a pc-dimm ---- */

/* A memory attach's object-add, once the limits allow it; NULL after
 * failing op. */
json_t *hp_mem_backend(struct hp_op *op, struct hp_dev *dev)
{
	const struct sv_profile *p = op->g->run_profile ? op->g->run_profile : op->g->profile;
	uint64_t bytes = hp_spec_size(op->args), total = p->memory;
	unsigned used = 0;
	for (struct hp_dev *d = op->g->hp->devs; d; d = d->next) {
		if (d->kind == DEV_MEM) {
			used++;
			total += hp_spec_size(d->spec);
		}
	}
	if (used >= p->slots)
		return hp_op_fail(op, "InvalidState", "%s", "no free memory slot: all the profile's "
		               "slots are in use (raise slots in [guest])"), NULL;
	if (total + bytes > p->max_memory) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%llu MiB more would make %llu MiB, over max-memory "
		         "(%llu MiB)", (unsigned long long)(bytes >> 20),
		         (unsigned long long)((total + bytes) >> 20),
		         (unsigned long long)(p->max_memory >> 20));
		return hp_op_fail(op, "InvalidState", "%s", msg), NULL;
	}
	if (asprintf(&dev->desc, "%lluM", (unsigned long long)(bytes >> 20)) < 0)
		dev->desc = NULL;
	return json_pack("{s:s, s:s, s:I}", "qom-type", "memory-backend-ram", "id", dev->backend,
	                 "size", (json_int_t)bytes);
}
