/*
 * The qmp verb's decision, without QEMU: the profile's policy, the commands
 * qsupd keeps, names qsupd tracks (profile devices and their nodes, fixed
 * devices, hot-plugged ones through a fake tracker), re-routed disks,
 * transactions, stop and cont during migrations; the taint list, its
 * state.json round trip, the profile key, and qsupctl's status line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ctl.h"
#include "guest.h"
#include "passthrough.h"
#include "profile.h"
#include "util.h"

static const char web1[] =
	"[guest]\nmemory = 64M\nfirmware = uefi\nuefi-code = /fw/code.fd\n"
	"uefi-vars = /fw/vars.fd\n"
	"[disk.root]\nfile = /srv/root.qcow2\nformat = qcow2\n"
	"[cdrom.cd]\n[nic.lan]\ntype = user\n";

static struct sv_profile *profile_of(const char *text, struct sv_strv *errs)
{
	struct sv_profile *p = NULL;
	sv_profile_parse("/etc/qsup/profiles/web1.ini", text, strlen(text), &p, errs);
	return p;
}

static struct sv_profile *profile(void)
{
	struct sv_strv errs = { 0 };
	struct sv_profile *p = profile_of(web1, &errs);
	assert_non_null(p);
	sv_strv_free(&errs);
	return p;
}

/* The fake hot-plug tracker: disk "data", memory "m1", bridge NIC "br". */
static bool fake_hotplug(void *ctx, const char *name)
{
	static const char *const names[] = { "data", "hpdrive.data", "m1", "hpmem.m1",
	                                     "br", "hpnet.br", "hpfd.br" };
	(void)ctx;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

static void facts(struct sv_pt_facts *f, const struct sv_profile *p,
                  enum sv_qmp_passthrough policy, const char *busy)
{
	memset(f, 0, sizeof(*f));
	f->policy = policy;
	f->guest = "web1";
	f->busy = busy;
	f->profile = p;
	f->hotplugged = fake_hotplug;
}

/* One case: command and arguments (JSON text or NULL) under a policy and a
 * busy state; allowed (cls NULL) or refused with cls and why containing
 * want (NULL: no check); taints only when allowed and not query-*. */
struct pcase {
	enum sv_qmp_passthrough policy;
	const char *busy, *cmd, *args, *cls, *want;
};

static void run_case(const struct sv_profile *p, const struct pcase *c)
{
	struct sv_pt_facts f;
	struct sv_pt_verdict v;
	json_t *args = c->args ? json_loads(c->args, 0, NULL) : NULL;
	if (c->args && !args)
		fail_msg("bad test JSON %s", c->args);
	facts(&f, p, c->policy, c->busy);
	sv_passthrough_decide(c->cmd, args, &f, &v);
	json_decref(args);
	if (!c->cls) {
		if (!v.allow)
			fail_msg("%s %s: refused (%s: %s)", c->cmd, c->args ? c->args : "", v.cls, v.why);
		assert_int_equal(v.taints, strncmp(c->cmd, "query-", 6) != 0);
		return;
	}
	if (v.allow)
		fail_msg("%s %s: allowed, expected %s", c->cmd, c->args ? c->args : "", c->cls);
	assert_false(v.taints);
	if (strcmp(v.cls, c->cls) != 0)
		fail_msg("%s: class %s, expected %s (%s)", c->cmd, v.cls, c->cls, v.why);
	if (c->want && !strstr(v.why, c->want))
		fail_msg("%s %s: \"%s\" lacks \"%s\"", c->cmd, c->args ? c->args : "", v.why, c->want);
}

static void run_cases(const struct pcase *cases, size_t n)
{
	struct sv_profile *p = profile();
	for (size_t i = 0; i < n; i++)
		run_case(p, &cases[i]);
	sv_profile_free(p);
}

#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))
#define DENIED "PermissionDenied"
#define FULL SV_QMP_FULL

static void test_policies(void **state)
{
	static const struct pcase cases[] = {
		{ FULL, NULL, "query-status", NULL, NULL, NULL },
		{ FULL, NULL, "blockdev-add", "{\"driver\": \"null-co\", \"node-name\": \"n\"}",
		  NULL, NULL },
		{ FULL, NULL, "qom-set", "{\"path\": \"/machine\", \"property\": \"x\", \"value\": 1}",
		  NULL, NULL },
		{ SV_QMP_QUERY, NULL, "query-status", NULL, NULL, NULL },
		{ SV_QMP_QUERY, NULL, "query-block", NULL, NULL, NULL },
		{ SV_QMP_QUERY, NULL, "qom-set", NULL, DENIED,
		  "qom-set: web1's profile has qmp-passthrough = query (query-* commands only)" },
		{ SV_QMP_QUERY, NULL, "x-query-virtio", NULL, DENIED, "= query" },
		{ SV_QMP_QUERY, NULL, "qom-get", NULL, DENIED, "= query" },
		{ SV_QMP_QUERY, NULL, "quit", NULL, DENIED, "= query" },
		{ SV_QMP_OFF, NULL, "query-status", NULL, DENIED,
		  "query-status: web1's profile has qmp-passthrough = off" },
		{ SV_QMP_OFF, NULL, "blockdev-add", NULL, DENIED, "= off" },
	};
	(void)state;
	RUN(cases);
}

static void test_bad_names(void **state)
{
	char longname[80];
	memset(longname, 'a', 65);
	longname[65] = '\0';
	struct pcase cases[] = {
		{ FULL, NULL, "", NULL, "InvalidArgument", "not a QMP command name" },
		{ FULL, NULL, "quit\nweb2: forged", NULL, "InvalidArgument", NULL },
		{ FULL, NULL, "query status", NULL, "InvalidArgument", NULL },
		{ FULL, NULL, "query-\x01", NULL, "InvalidArgument", NULL },
		{ FULL, NULL, longname, NULL, "InvalidArgument", NULL },
		{ SV_QMP_OFF, NULL, "a/b", NULL, "InvalidArgument", NULL },
	};
	(void)state;
	RUN(cases);
	struct sv_pt_facts f;
	struct sv_pt_verdict v;
	facts(&f, NULL, FULL, NULL);
	sv_passthrough_decide(NULL, NULL, &f, &v);
	assert_false(v.allow);
}

static void test_reserved(void **state)
{
	static const struct pcase cases[] = {
		{ FULL, NULL, "quit", NULL, DENIED, "quit: use qsupctl stop or kill" },
		{ FULL, NULL, "system_powerdown", NULL, DENIED, "system_powerdown: use qsupctl stop" },
		{ FULL, NULL, "system-powerdown", NULL, DENIED, "use qsupctl stop" },
		{ FULL, NULL, "human-monitor-command", "{\"command-line\": \"info status\"}", DENIED,
		  "human-monitor-command: HMP" },
		{ FULL, NULL, "migrate", "{\"uri\": \"exec:cat>/tmp/x\"}", DENIED,
		  "use qsupctl migrate or save" },
		{ FULL, NULL, "migrate-incoming", NULL, DENIED, "use qsupctl incoming or restore" },
		{ FULL, NULL, "migrate-start-postcopy", NULL, DENIED, "qsupctl migrate-postcopy" },
		{ FULL, NULL, "migrate_cancel", NULL, DENIED, "migrate_cancel: use qsupctl migrate-cancel" },
		{ FULL, NULL, "MIGRATE_CANCEL", NULL, DENIED, "migrate-cancel" },
		{ FULL, NULL, "migrate-recover", NULL, DENIED, "qsupd runs migrations" },
		{ FULL, NULL, "migrate-pause", NULL, DENIED, "qsupd runs migrations" },
		{ FULL, NULL, "migrate-continue", NULL, DENIED, "qsupd runs migrations" },
		{ FULL, NULL, "migrate-set-capabilities", NULL, DENIED, "[migration] capabilities" },
		{ FULL, NULL, "getfd", "{\"fdname\": \"x\"}", DENIED, "file descriptors" },
		{ FULL, NULL, "closefd", "{\"fdname\": \"hpfd.br\"}", DENIED, "file descriptors" },
		{ FULL, NULL, "add-fd", NULL, DENIED, "file descriptors" },
		{ FULL, NULL, "remove-fd", NULL, DENIED, "file descriptors" },
		{ FULL, NULL, "set-action", "{\"panic\": \"none\"}", DENIED, "default actions" },
		{ FULL, NULL, "watchdog-set-action", NULL, DENIED, "default actions" },
		/* Left to QEMU, and followed by qsupd. */
		{ FULL, NULL, "migrate-set-parameters", "{\"max-bandwidth\": 1000}", NULL, NULL },
		{ FULL, NULL, "system_reset", NULL, NULL, NULL },
		{ FULL, NULL, "stop", NULL, NULL, NULL },
		{ FULL, NULL, "cont", NULL, NULL, NULL },
		{ FULL, NULL, "qmp_capabilities", NULL, NULL, NULL },
	};
	(void)state;
	RUN(cases);
}

static void test_stop_cont_while_busy(void **state)
{
	static const struct pcase cases[] = {
		{ FULL, "incoming", "cont", NULL, "InvalidState",
		  "cont: web1 is incoming, and qsupd runs stop and cont itself" },
		{ FULL, "incoming", "stop", NULL, "InvalidState", "web1 is incoming" },
		{ FULL, "migrating", "cont", NULL, "InvalidState", "migrate-cancel" },
		{ FULL, "migrating", "stop", NULL, "InvalidState", "web1 is migrating" },
		{ FULL, "starting", "cont", NULL, "InvalidState", "web1 is starting" },
		{ FULL, "migrated", "cont", NULL, "InvalidState", "web1 is migrated" },
		{ FULL, "incoming", "system_reset", NULL, NULL, NULL },
		{ FULL, "migrating", "query-migrate", NULL, NULL, NULL },
		/* The policy comes first. */
		{ SV_QMP_QUERY, "incoming", "cont", NULL, DENIED, "= query" },
	};
	(void)state;
	RUN(cases);
}

static void test_profile_names(void **state)
{
	static const struct pcase cases[] = {
		{ FULL, NULL, "device_del", "{\"id\": \"root\"}", DENIED,
		  "device_del of disk root: it is a profile device; edit the profile" },
		{ FULL, NULL, "device_del", "{\"id\": \"lan\"}", DENIED, "of NIC lan: it is a profile" },
		{ FULL, NULL, "device_del", "{\"id\": \"cd\"}", DENIED, "of CD-ROM cd: " },
		{ FULL, NULL, "device_del", "{\"id\": \"port.root\"}", DENIED,
		  "of the root port port.root of disk root" },
		{ FULL, NULL, "device_del", "{\"id\": \"port.lan\"}", DENIED, "root port" },
		{ FULL, NULL, "device_del", "{\"id\": \"hotplug.0\"}", DENIED,
		  "the spare hot-plug port hotplug.0" },
		{ FULL, NULL, "device_del", "{\"id\": \"hotplug.27\"}", DENIED, "spare" },
		{ FULL, NULL, "device_del", "{\"id\": \"serial.0\"}", DENIED,
		  "of the serial port serial.0: qsupd relies on it" },
		{ FULL, NULL, "device_del", "{\"id\": \"pvpanic.0\"}", DENIED, "qsupd relies on it" },
		{ FULL, NULL, "device_del", "{\"id\": \"video.0\"}", DENIED, "profile" },
		{ FULL, NULL, "device_del", "{\"id\": \"usb.0\"}", DENIED, "profile" },
		{ FULL, NULL, "device_del", "{\"id\": \"tablet.0\"}", DENIED, "profile" },
		{ FULL, NULL, "device_del", "{\"id\": \"scsi.0\"}", DENIED, "profile" },
		{ FULL, NULL, "device_del", "{\"id\": \"sata.0\"}", DENIED, "profile" },
		{ FULL, NULL, "blockdev-del", "{\"node-name\": \"drive.root\"}", DENIED,
		  "blockdev-del of the block node drive.root of disk root" },
		{ FULL, NULL, "blockdev-del", "{\"node-name\": \"file.root\"}", DENIED, "file.root" },
		{ FULL, NULL, "x-blockdev-del", "{\"node-name\": \"drive.cd\"}", DENIED, "CD-ROM cd" },
		{ FULL, NULL, "blockdev-del", "{\"node-name\": \"fw.code\"}", DENIED, "UEFI code" },
		{ FULL, NULL, "blockdev-del", "{\"node-name\": \"fw.vars\"}", DENIED, "UEFI" },
		{ FULL, NULL, "blockdev-del", "{\"node-name\": \"fw.code.file\"}", DENIED, "UEFI" },
		{ FULL, NULL, "blockdev-del", "{\"node-name\": \"fw.vars.file\"}", DENIED, "UEFI" },
		{ FULL, NULL, "netdev_del", "{\"id\": \"net.lan\"}", DENIED,
		  "netdev_del of the netdev net.lan of NIC lan" },
		{ FULL, NULL, "chardev-remove", "{\"id\": \"qmp\"}", DENIED, "qsupd's QMP chardev" },
		{ FULL, NULL, "chardev-remove", "{\"id\": \"serial0\"}", DENIED, "console's chardev" },
		{ FULL, NULL, "chardev-change", "{\"id\": \"serial0\", \"backend\": {}}", DENIED,
		  "qsupd relies on it" },
		{ FULL, NULL, "object-del", "{\"id\": \"fw.code\"}", DENIED, NULL },
		/* Not qsupd's: QEMU decides. */
		{ FULL, NULL, "device_del", "{\"id\": \"nope\"}", NULL, NULL },
		{ FULL, NULL, "device_del", "{\"id\": \"rootx\"}", NULL, NULL },
		{ FULL, NULL, "device_del", "{\"id\": \"port.nope\"}", NULL, NULL },
		{ FULL, NULL, "device_del", "{\"id\": \"hotplug.x\"}", NULL, NULL },
		{ FULL, NULL, "device_del", NULL, NULL, NULL },
		{ FULL, NULL, "blockdev-del", "{\"node-name\": \"mine\"}", NULL, NULL },
		{ FULL, NULL, "netdev_del", "{\"id\": \"net.other\"}", NULL, NULL },
		{ FULL, NULL, "chardev-remove", "{\"id\": \"mychr\"}", NULL, NULL },
		{ FULL, NULL, "device_add", "{\"driver\": \"virtio-rng-pci\", \"id\": \"rng\"}",
		  NULL, NULL },
	};
	(void)state;
	RUN(cases);
}

/* device_del takes QOM paths too, which reach devices in many ways. */
static void test_device_paths(void **state)
{
	static const struct pcase cases[] = {
		{ FULL, NULL, "device_del", "{\"id\": \"/machine/peripheral/root\"}", DENIED,
		  "of disk root" },
		{ FULL, NULL, "device_del", "{\"id\": \"//machine//peripheral/root/\"}", DENIED,
		  "of disk root" },
		{ FULL, NULL, "device_del", "{\"id\": \"root/\"}", DENIED, "of disk root" },
		{ FULL, NULL, "device_del", "{\"id\": \"/machine/peripheral/data\"}", DENIED,
		  "qsupctl detach" },
		{ FULL, NULL, "device_del", "{\"id\": \"/machine/q35/pcie.0/child[3]\"}", DENIED,
		  "name the device by its id" },
		{ FULL, NULL, "device_del", "{\"id\": \"port.root/port.root.0/child[0]\"}", DENIED,
		  "name the device by its id" },
		{ FULL, NULL, "device_del", "{\"id\": \"/machine/peripheral/root/x/y\"}", DENIED,
		  "by its id" },
		{ FULL, NULL, "device_del", "{\"id\": \"/machine/peripheral/../peripheral/x\"}", DENIED,
		  "by its id" },
		{ FULL, NULL, "device_del", "{\"id\": \"/root\"}", DENIED, "by its id" },
		{ FULL, NULL, "device_del", "{\"id\": \"/machine/peripheral/mine\"}", NULL, NULL },
		{ FULL, NULL, "device_del", "{\"id\": \"/machine/peripheral-anon/device[0]\"}",
		  NULL, NULL },
	};
	(void)state;
	RUN(cases);
}

static void test_hotplugged_names(void **state)
{
	static const struct pcase cases[] = {
		{ FULL, NULL, "device_del", "{\"id\": \"data\"}", DENIED,
		  "device_del of data: it is hot-plugged; use qsupctl detach" },
		{ FULL, NULL, "blockdev-del", "{\"node-name\": \"hpdrive.data\"}", DENIED,
		  "blockdev-del of hpdrive.data: it is hot-plugged; use qsupctl detach" },
		{ FULL, NULL, "object-del", "{\"id\": \"hpmem.m1\"}", DENIED, "qsupctl detach" },
		{ FULL, NULL, "device_del", "{\"id\": \"m1\"}", DENIED, "qsupctl detach" },
		{ FULL, NULL, "netdev_del", "{\"id\": \"hpnet.br\"}", DENIED, "qsupctl detach" },
		{ FULL, NULL, "blockdev-del", "{\"node-name\": \"hpdrive.gone\"}", NULL, NULL },
	};
	(void)state;
	RUN(cases);
}

/* Moving one of qsupd's disks onto another image, directly or in a
 * transaction; copies and other block jobs are fine. */
static void test_reroutes(void **state)
{
	static const struct pcase cases[] = {
		{ FULL, NULL, "blockdev-snapshot-sync", "{\"device\": \"drive.root\", "
		  "\"snapshot-file\": \"/tmp/o.qcow2\"}", DENIED,
		  "blockdev-snapshot-sync of the block node drive.root of disk root: qsupd opens" },
		{ FULL, NULL, "blockdev-snapshot-sync", "{\"node-name\": \"hpdrive.data\"}", DENIED,
		  "blockdev-backup" },
		{ FULL, NULL, "blockdev-snapshot", "{\"node\": \"drive.root\", \"overlay\": \"o\"}",
		  DENIED, "drive.root" },
		{ FULL, NULL, "drive-mirror", "{\"device\": \"root\", \"target\": \"/tmp/m\"}", DENIED,
		  "of disk root" },
		{ FULL, NULL, "blockdev-mirror", "{\"device\": \"drive.root\", \"target\": \"t\"}",
		  DENIED, "drive.root" },
		{ FULL, NULL, "block-commit", "{\"device\": \"drive.root\"}", DENIED, "drive.root" },
		{ FULL, NULL, "block-commit", "{\"device\": \"drive.root\", \"top-node\": "
		  "\"drive.root\"}", DENIED, "drive.root" },
		{ FULL, NULL, "block-commit", "{\"device\": \"drive.root\", \"top-node\": "
		  "\"#block123\"}", NULL, NULL },
		{ FULL, NULL, "blockdev-reopen", "{\"options\": [{\"node-name\": \"mine\"}, "
		  "{\"node-name\": \"file.root\"}]}", DENIED, "file.root" },
		{ FULL, NULL, "blockdev-reopen", "{\"options\": [{\"node-name\": \"mine\"}]}",
		  NULL, NULL },
		{ FULL, NULL, "x-blockdev-change", "{\"parent\": \"drive.root\"}", DENIED, "drive.root" },
		{ FULL, NULL, "transaction", "{\"actions\": [{\"type\": \"blockdev-backup\", "
		  "\"data\": {\"device\": \"drive.root\", \"target\": \"b\"}}, {\"type\": "
		  "\"blockdev-snapshot-sync\", \"data\": {\"device\": \"drive.root\"}}]}", DENIED,
		  "transaction: blockdev-snapshot-sync of the block node drive.root" },
		{ FULL, NULL, "transaction", "{\"actions\": [{\"type\": \"blockdev-backup\", "
		  "\"data\": {\"device\": \"drive.root\", \"target\": \"b\"}}]}", NULL, NULL },
		{ FULL, NULL, "blockdev-backup", "{\"device\": \"drive.root\", \"target\": \"b\", "
		  "\"sync\": \"full\"}", NULL, NULL },
		{ FULL, NULL, "block-stream", "{\"device\": \"drive.root\"}", NULL, NULL },
		{ FULL, NULL, "block_resize", "{\"node-name\": \"drive.root\", \"size\": 1}", NULL, NULL },
		{ FULL, NULL, "blockdev-snapshot-sync", "{\"device\": \"mine\"}", NULL, NULL },
		{ FULL, NULL, "qom-set", "{\"path\": \"/machine/peripheral/root\", \"property\": "
		  "\"realized\", \"value\": false}", DENIED, "qom-set of realized" },
	};
	(void)state;
	RUN(cases);
}

/* No profile (the running one is unknown): only fixed names are qsupd's. */
static void test_owner_without_profile(void **state)
{
	struct sv_pt_facts f;
	char what[160];
	(void)state;
	facts(&f, NULL, FULL, NULL);
	f.hotplugged = NULL;
	assert_int_equal(sv_passthrough_owner(&f, "root", what, sizeof(what)), SV_PT_NOBODY);
	assert_string_equal(what, "root");
	assert_int_equal(sv_passthrough_owner(&f, "qmp", what, sizeof(what)), SV_PT_QSUPD);
	assert_int_equal(sv_passthrough_owner(&f, "hotplug.3", what, sizeof(what)),
	                 SV_PT_PROFILE);
	assert_int_equal(sv_passthrough_owner(&f, "hotplug.", what, sizeof(what)),
	                 SV_PT_NOBODY);
	assert_int_equal(sv_passthrough_owner(&f, "data", what, sizeof(what)), SV_PT_NOBODY);
}

static void test_taint_list(void **state)
{
	struct sv_taint t = { 0 };
	char name[32];
	(void)state;
	assert_true(sv_taint_add(&t, "blockdev-add"));
	assert_false(sv_taint_add(&t, "blockdev-add"));
	assert_true(sv_taint_add(&t, "qom-set"));
	assert_true(t.tainted);
	assert_int_equal(t.n, 2);
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "x-cmd-%d", i);
		sv_taint_add(&t, name);
	}
	assert_int_equal(t.n, SV_TAINT_MAX);
	assert_string_equal(t.cmds[0], "blockdev-add");
	assert_string_equal(t.cmds[SV_TAINT_MAX - 1], "x-cmd-13");
	sv_taint_clear(&t);
	assert_false(t.tainted);
	assert_int_equal(t.n, 0);
}

/* status and state.json, through a guest that is only its taint, and the
 * observer's other hooks: a new QEMU clears the taint, release frees it. */
static void test_taint_status_and_state(void **state)
{
	const struct sv_guest_observer *o = &sv_passthrough_observer;
	struct sv_guest *g = calloc(1, sizeof(*g));
	json_t *st = json_object(), *js = json_object();
	(void)state;
	o->status(g, st);   /* no taint record yet */
	assert_true(json_is_false(json_object_get(st, "tainted")));
	assert_int_equal(json_array_size(json_object_get(st, "taint")), 0);
	sv_passthrough_save(g, js);
	assert_null(json_object_get(js, "taint"));   /* untainted: nothing saved */
	g->taint = calloc(1, sizeof(*g->taint));
	sv_taint_add(g->taint, "blockdev-add");
	sv_taint_add(g->taint, "qom-set");
	o->status(g, st);
	assert_true(json_is_true(json_object_get(st, "tainted")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(st, "taint"), 1)),
	                    "qom-set");
	sv_passthrough_save(g, js);
	sv_taint_clear(g->taint);
	sv_passthrough_restore(g, js);
	assert_true(g->taint->tainted);
	assert_int_equal(g->taint->n, 2);
	assert_string_equal(g->taint->cmds[0], "blockdev-add");
	/* A state file from before taint existed, or a damaged one. */
	json_object_del(js, "taint");
	sv_passthrough_restore(g, js);
	assert_false(g->taint->tainted);
	json_object_set_new(js, "taint", json_pack("[s, i, s]", "bad name\n", 5, "ok"));
	sv_passthrough_restore(g, js);
	assert_true(g->taint->tainted);
	assert_int_equal(g->taint->n, 1);
	assert_string_equal(g->taint->cmds[0], "ok");
	o->qemu_new(g);   /* a new QEMU: no passthrough yet */
	assert_false(g->taint->tainted);
	assert_int_equal(g->taint->n, 0);
	o->release(g);
	assert_null(g->taint);
	json_decref(st);
	json_decref(js);
	free(g);
}

static void test_profile_key(void **state)
{
	struct sv_strv errs = { 0 };
	char text[512];
	struct sv_profile *p;
	(void)state;
	p = profile_of("[guest]\nmemory = 64M\n", &errs);
	assert_int_equal(p->qmp_passthrough, SV_QMP_FULL);
	sv_profile_free(p);
	static const char *const vals[] = { "full", "query", "off" };
	for (int i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "[qemu]\nqmp-passthrough = %s\n", vals[i]);
		p = profile_of(text, &errs);
		assert_non_null(p);
		assert_int_equal(p->qmp_passthrough, i);
		assert_string_equal(sv_qmp_passthrough_name(p->qmp_passthrough), vals[i]);
		sv_profile_free(p);
	}
	assert_null(profile_of("[qemu]\nqmp-passthrough = some\n", &errs));
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0], "/etc/qsup/profiles/web1.ini:2: [qemu] qmp-passthrough: "
	                    "\"some\" is not allowed; use full, query or off");
	sv_strv_free(&errs);
}

static char *fmt_status(const char *json)
{
	json_t *v = json_loads(json, 0, NULL);
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	assert_non_null(v);
	ctl_fmt_status(f, v);
	fclose(f);
	json_decref(v);
	return text;
}

static void test_qsupctl_status_line(void **state)
{
	(void)state;
	char *s = fmt_status("{\"name\": \"web1\", \"state\": \"running\", \"reason\": "
	                     "\"started\", \"tainted\": true, \"taint\": [\"blockdev-add\", "
	                     "\"qom-set\"]}");
	assert_non_null(strstr(s, "state:          running (started), tainted (blockdev-add, "
	                       "qom-set)\n"));
	assert_null(strstr(s, "taint:"));
	free(s);
	s = fmt_status("{\"name\": \"web1\", \"state\": \"running\", \"tainted\": false, "
	               "\"taint\": []}");
	assert_non_null(strstr(s, "state:          running\n"));
	assert_null(strstr(s, "taint"));
	free(s);
	s = fmt_status("{\"name\": \"web1\", \"state\": \"stopped\", \"tainted\": true}");
	assert_non_null(strstr(s, "state:          stopped, tainted\n"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_reserved),
		cmocka_unit_test(test_stop_cont_while_busy),
		cmocka_unit_test(test_profile_names),
		cmocka_unit_test(test_device_paths),
		cmocka_unit_test(test_hotplugged_names),
		cmocka_unit_test(test_reroutes),
		cmocka_unit_test(test_owner_without_profile),
		cmocka_unit_test(test_taint_list),
		cmocka_unit_test(test_taint_status_and_state),
		cmocka_unit_test(test_profile_key),
		cmocka_unit_test(test_qsupctl_status_line),
	};
	return cmocka_run_group_tests_name("passthrough", tests, NULL, NULL);
}
