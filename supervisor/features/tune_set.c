/* The set verb (tune.h): its items applied live one after the other, and
 * with --persist recorded in NAME.d/set.ini. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "overlay.h"
#include "request.h"
#include "step.h"
#include "tune_int.h"

#define TUNE_MAX_ITEMS 64                /* in one set */

/* ---- the set verb ---- */

struct set_op {
	struct sv_guest *g;
	struct sv_request *req;
	struct sv_set_item *items;
	size_t n, next;
	bool *applied;
	json_t *done;                   /* the items applied, "KEY=VALUE" */
	bool persist, live;
	cpu_set_t old;                  /* a pinning's previous set */
	bool old_on;
	uint64_t merged[SV_IOTUNE_N];   /* a disk's limits being applied */
};

static void set_end(struct set_op *op)
{
	if (op->g->tune)
		op->g->tune->busy = false;
	sv_guest_unhold(op->g);
	json_decref(op->done);
	free(op->applied);
	free(op->items);
	free(op);
}

static void mark_applied(struct set_op *op, size_t i)
{
	char kv[300];
	op->applied[i] = true;
	if (op->g->tune && !op->g->tune->live_set) {
		op->g->tune->live_set = true;
		sv_guest_persist(op->g);
	}
	snprintf(kv, sizeof(kv), "%s=%s", op->items[i].key, op->items[i].value);
	json_array_append_new(op->done, json_string(kv));
}

static void set_fail(struct set_op *op, const char *key, const char *why)
{
	char applied[1024] = "", rest[1024] = "";
	for (size_t i = 0; i < op->n; i++) {
		char *b = op->applied[i] ? applied : rest;
		size_t o = strlen(b);
		snprintf(b + o, 1024 - o, "%s%s", o ? ", " : "", op->items[i].key);
	}
	sv_reply_err(op->req, "GenericError", "%s: set %s: %s; %s%s%s%s", op->g->name, key, why,
	             applied[0] ? "applied before it (in force now): " : "nothing was applied",
	             applied, rest[0] ? "; not applied: " : "", rest);
	sv_log(SV_LOG_WARN, op->g->name, "set %s: %s", key, why);
	set_end(op);
}

static void set_next(struct set_op *op);

static void on_written(int err, void *arg)
{
	struct set_op *op = arg;
	char path[4096];
	sv_tune_overlay_path(tune_prof(op->g), path, sizeof(path));
	if (err) {
		sv_reply_err(op->req, "GenericError", "%s: %s%s: %s", op->g->name,
		             op->live ? "set live, but not recorded in " : "cannot write ", path,
		             strerror(err));
	} else {
		sv_log(SV_LOG_INFO, op->g->name, "set --persist: recorded in %s", path);
		sv_reply_ok(op->req, json_pack("{s:O, s:b, s:b}", "applied", op->done, "live",
		            op->live, "persisted", true));
	}
	set_end(op);
}

/* --persist: the overlay's lines, each key's last value winning, then the
 * new items; written atomically off the loop. */
static void set_persist(struct set_op *op)
{
	const struct sv_profile *p = op->g->profile ? op->g->profile : tune_prof(op->g);
	struct sv_strv kv = { 0 }, errs = { 0 };
	int lines[TUNE_OVERLAY_LINES];
	char path[4096];
	size_t len = 0, cap = 256;
	char *text = malloc(cap);
	if (sv_tune_overlay_path(p, path, sizeof(path)) < 0 || !text ||
	    tune_overlay_lines(p, &kv, lines, &errs) < 0) {
		sv_reply_err(op->req, "GenericError", "%s: cannot read its set overlay: %s",
		             op->g->name, errs.n ? errs.v[0] : "out of memory");
		free(text);
		sv_strv_free(&kv);
		sv_strv_free(&errs);
		set_end(op);
		return;
	}
	for (size_t i = 0; i < op->n; i++) {
		char line[300];
		snprintf(line, sizeof(line), "%s=%s", op->items[i].key, op->items[i].value);
		sv_strv_push(&kv, line);
	}
	len = (size_t)snprintf(text, cap, "# qsupctl set --persist: applied at each start over "
	                       "the profile (qsup.ini(5))\n");
	for (size_t i = 0; i < kv.n; i++) {
		size_t klen = strcspn(kv.v[i], "=");
		bool later = false;
		for (size_t j = i + 1; j < kv.n && !later; j++)
			later = strcspn(kv.v[j], "=") == klen && !strncmp(kv.v[i], kv.v[j], klen);
		if (later)
			continue;
		size_t need = len + strlen(kv.v[i]) + 4;
		if (need >= cap) {
			char *grown = realloc(text, need * 2);
			if (!grown)
				break;
			text = grown;
			cap = need * 2;
		}
		len += (size_t)snprintf(text + len, cap - len, "%.*s = %s\n", (int)klen, kv.v[i],
		                        kv.v[i] + klen + 1);
	}
	sv_strv_free(&kv);
	sv_strv_free(&errs);
	if (sv_overlay_write_async(op->g->env->loop, path, text, on_written, op) < 0) {
		sv_reply_err(op->req, "GenericError", "%s: cannot write %s", op->g->name, path);
		set_end(op);
	}
}

static void set_finish(struct set_op *op)
{
	if (op->persist) {
		set_persist(op);
		return;
	}
	sv_log(SV_LOG_INFO, op->g->name, "set: %zu item(s) applied live", op->n);
	sv_reply_ok(op->req, json_pack("{s:O, s:b, s:b}", "applied", op->done, "live", op->live,
	            "persisted", false));
	set_end(op);
}

static const char *qmp_why(const struct qmp_result *r)
{
	return r->err_desc ? r->err_desc : qmp_strerror(r->status);
}

static void on_set_disk(void *ctx, const struct qmp_result *r)
{
	struct set_op *op = ctx;
	const struct sv_set_item *it = &op->items[op->next];
	struct tune_disk *d = op->g->tune ? tune_disk_find(op->g->tune, it->disk) : NULL;
	if (r->status != 0 || !d) {
		set_fail(op, it->key, r->status ? qmp_why(r) : "the disk is gone");
		return;
	}
	memcpy(d->v, op->merged, sizeof(d->v));
	for (size_t j = op->next; j < op->n; j++)
		if (op->items[j].kind == SV_SET_IOTUNE && !strcmp(op->items[j].disk, it->disk))
			mark_applied(op, j);
	set_next(op);
}

static void on_set_pinned(void *arg, int rc, const char *why)
{
	struct set_op *op = arg;
	struct sv_tune *t = op->g->tune;
	const struct sv_set_item *it = &op->items[op->next];
	if (rc < 0) {
		if (t && it->kind == SV_SET_CPU)
			t->cpu = op->old, t->cpu_on = op->old_on;
		else if (t)
			t->emu = op->old, t->emu_on = op->old_on;
		set_fail(op, it->key, why);
		return;
	}
	mark_applied(op, op->next);
	set_next(op);
}

static void on_set_balloon(void *ctx, const struct qmp_result *r)
{
	struct set_op *op = ctx;
	const struct sv_set_item *it = &op->items[op->next];
	if (r->status != 0) {
		set_fail(op, it->key, qmp_why(r));
		return;
	}
	if (op->g->tune)
		op->g->tune->target = it->n;
	sv_guest_persist(op->g);   /* state.json keeps it for a re-adopting qsupd */
	mark_applied(op, op->next);
	set_next(op);
}

static void set_next(struct set_op *op)
{
	struct sv_guest *g = op->g;
	struct sv_tune *t = g->tune;
	while (op->next < op->n && op->applied[op->next])
		op->next++;
	if (op->next >= op->n || !op->live) {
		set_finish(op);
		return;
	}
	const struct sv_set_item *it = &op->items[op->next];
	if (!t || !g->qmp || !sv_guest_active(g)) {
		set_fail(op, it->key, "QEMU is gone");
		return;
	}
	switch (it->kind) {
	case SV_SET_IOTUNE: {
		struct tune_disk *d = tune_disk_find(t, it->disk);
		if (!d) {
			set_fail(op, it->key, "the disk is gone");
			return;
		}
		memcpy(op->merged, d->v, sizeof(op->merged));
		for (size_t j = op->next; j < op->n; j++)
			if (op->items[j].kind == SV_SET_IOTUNE && !strcmp(op->items[j].disk, it->disk))
				op->merged[op->items[j].index] = op->items[j].n;
		sv_step(g->qmp, NULL, "block_set_io_throttle", tune_throttle_args(d, op->merged),
		        -1, on_set_disk, op);
		return;
	}
	case SV_SET_CPU:
	case SV_SET_EMULATOR:
		op->old = it->kind == SV_SET_CPU ? t->cpu : t->emu;
		op->old_on = it->kind == SV_SET_CPU ? t->cpu_on : t->emu_on;
		tune_item_merge(t, it);
		tune_pin_now(g, on_set_pinned, op);
		return;
	case SV_SET_BALLOON:
		sv_step(g->qmp, NULL, "balloon", json_pack("{s:I}", "value", (json_int_t)it->n), -1,
		        on_set_balloon, op);
		return;
	}
}

void sv_tune_set_verb(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	json_t *list = json_object_get(args, "set"), *v;
	bool persist = json_is_true(json_object_get(args, "persist"));
	size_t n = json_array_size(list), i;
	char why[600];
	if (!json_is_array(list) || n == 0 || n > TUNE_MAX_ITEMS) {
		sv_reply_err(req, "InvalidArgument", "set needs {\"name\", \"set\": [\"KEY=VALUE\", "
		             "...] (1 to %d), \"persist\": bool}", TUNE_MAX_ITEMS);
		return;
	}
	struct sv_set_item *items = calloc(n, sizeof(*items));
	if (!items) {
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	json_array_foreach(list, i, v) {
		if (!json_is_string(v) || sv_set_parse(json_string_value(v), &items[i], why,
		                                       sizeof(why)) < 0) {
			sv_reply_err(req, "InvalidArgument", "%s: %s; nothing was applied", g->name,
			             json_is_string(v) ? why : "each item is a \"KEY=VALUE\" string");
			free(items);
			return;
		}
	}
	bool up = g->state == SV_RUNNING || g->state == SV_PAUSED;
	struct sv_tune *t = tune_of(g);
	if (!t) {
		free(items);
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	if (!up && (sv_guest_active(g) || g->prepping)) {
		free(items);
		sv_reply_err(req, "Busy", "%s is %s: set it once it runs, or once it has stopped "
		             "(with --persist)", g->name, sv_state_name(g->state));
		return;
	}
	if (!up && !persist) {
		free(items);
		sv_reply_err(req, "InvalidState", "%s is %s: set changes a running guest; give "
		             "--persist to record it for its next start", g->name,
		             sv_state_name(g->state));
		return;
	}
	if (t->busy) {
		free(items);
		sv_reply_err(req, "Busy", "%s: another set is being applied", g->name);
		return;
	}
	if (up && !t->loaded)
		tune_load(g, t);
	/* Live: against what runs. --persist: also against the profile and
	 * its overlay, as the next start will see them. */
	int r = up ? tune_check_items(g, tune_prof(g), t, items, n, why, sizeof(why)) : 0;
	if (r == 0 && persist && g->profile) {
		struct sv_tune base = { 0 };
		struct sv_strv errs = { 0 };
		tune_base_load(&base, g->profile);
		tune_hp_overlay_disks(&base, g->profile);
		tune_overlay_load(&base, g->profile, &errs);
		if (up)   /* hot-plugged disks may be set, with --persist too */
			for (size_t k = 0; k < t->ndisks; k++)
				if (!tune_disk_find(&base, t->disks[k].id) && tune_disk_present(g, &t->disks[k]))
					tune_disk_add(&base, t->disks[k].id);
		r = tune_check_items(NULL, g->profile, &base, items, n, why, sizeof(why));
		sv_strv_free(&errs);
		free(base.disks);
	} else if (r == 0 && persist) {
		snprintf(why, sizeof(why), "its profile is gone");
		r = -EINVAL;
	}
	if (r < 0) {
		free(items);
		sv_reply_err(req, "InvalidArgument", "%s: %s; nothing was applied", g->name, why);
		return;
	}
	struct set_op *op = calloc(1, sizeof(*op));
	if (!op || !(op->applied = calloc(n, sizeof(bool))) || !(op->done = json_array())) {
		if (op)
			free(op->applied);
		free(op);
		free(items);
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	op->g = g;
	op->req = req;
	op->items = items;
	op->n = n;
	op->persist = persist;
	op->live = up;
	t->busy = true;
	sv_guest_hold(g);
	if (!up)
		for (i = 0; i < n; i++)
			mark_applied(op, i);
	set_next(op);
}
