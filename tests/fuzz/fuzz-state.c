/*
 * libFuzzer harness for the state file (RUNDIR/NAME/state.json), which a
 * restarted qsupd reads back and which may be damaged: the input is taken
 * back into a real guest (sv_state_import: counters, restart window,
 * taint), its hot-plugged devices imported and exported again, and its
 * status formatted. Nothing may crash or leak, every device exported must
 * have a valid id and kind, and the status must be a JSON object. No
 * adoption, no process, no file of the host is touched (the guest's run
 * dir does not exist).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "daemon.h"
#include "guest.h"
#include "hotplug.h"
#include "log.h"
#include "migrate.h"
#include "passthrough.h"
#include "profile.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_fail(const char *what) __attribute__((noreturn));
static void fz_fail(const char *what)
{
	fprintf(stderr, "fuzz-state: %s\n", what);
	abort();
}

static struct sv_profile *fz_profile(void)
{
	static const char text[] =
		"[guest]\nmemory = 512M\nmax-memory = 2G\nslots = 4\ncpus = 1\nmax-cpus = 4\n"
		"hotplug-slots = 4\n[disk.root]\nfile = /dev/null\nformat = raw\nbus = scsi\n"
		"[nic.lan]\ntype = user\n[restart]\nburst = 5\n";
	struct sv_profile *p = NULL;
	struct sv_strv errs = { 0 };
	if (sv_profile_parse("/nonexistent/qsup-fuzz/web1.ini", text, sizeof(text) - 1, &p,
	                     &errs) < 0)
		fz_fail(errs.n ? errs.v[0] : "the fixed profile does not parse");
	sv_strv_free(&errs);
	return p;
}

static void no_persist(void *owner, struct sv_guest *g)
{
	(void)owner;
	(void)g;
}

static const struct sv_guest_observer *const observers[] = {
	&sv_hotplug_observer, &sv_migrate_observer, &sv_passthrough_observer, NULL,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uv_loop_t loop;
	static struct sv_id_config idc;
	static struct sv_guest_env env;
	static bool ready;
	char why[300];
	if (!ready) {
		uv_loop_init(&loop);
		env.loop = &loop;
		env.run_dir = "/nonexistent/qsup-fuzz/run";
		env.lock_dir = "/nonexistent/qsup-fuzz/locks";
		env.idc = &idc;
		env.persist = no_persist;
		env.observers = observers;
		sv_log_set_level(SV_LOG_ERR + 1);   /* quiet: the guest has no lock file */
		ready = true;
	}
	struct sv_profile *p = fz_profile();
	struct sv_guest *g = sv_guest_new(&env, "/nonexistent/qsup-fuzz/web1.ini", p, p->digest);
	if (!g)
		fz_fail("no guest");
	json_t *saved = sv_state_import(g, (const char *)data, size, why, sizeof(why));
	if (!saved && !why[0])
		fz_fail("a refusal without a reason");
	if (saved) {
		sv_hotplug_import(g, json_object_get(saved, "hotplug"));
		json_t *exp = sv_hotplug_export(g), *e;
		size_t i;
		json_array_foreach(exp, i, e) {
			json_t *spec = json_object_get(e, "spec");
			const char *id = json_string_value(json_object_get(spec, "id"));
			const char *kind = json_string_value(json_object_get(spec, "kind"));
			if (!id || !sv_device_id_valid(id) || !kind)
				fz_fail("an imported device without a valid id or kind");
		}
		json_decref(exp);
		json_decref(sv_hotplug_list(g));
	}
	json_t *st = sv_guest_status(g);
	if (!json_is_object(st))
		fz_fail("no status");
	json_decref(st);
	json_decref(saved);
	sv_guest_release(g);
	uv_run(&loop, UV_RUN_NOWAIT);   /* the close callbacks free the guest */
	return 0;
}
