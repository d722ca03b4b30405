/*
 * The qmp verb against a real qsupd and real QEMU (firmware-only guests:
 * KVM when usable, else TCG): each qmp-passthrough policy; every class of
 * command qsupd refuses, with the guest running on untouched; a hot-plugged
 * disk's nodes; the taint (status, qsupctl, a restart clears it, a
 * re-adopting qsupd keeps it); the log line with the client's uid.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define FW "[guest]\nmemory = 64M\naccel = kvm:tcg\n[shutdown]\ntimeout = 1s\n"

#define str t_str

/* Start name; returns QEMU's pid. */
static json_int_t start_guest(struct t_fx *x, const char *name)
{
	json_t *s = t_fx_must(x, "start", name, 30000);
	json_int_t pid = json_integer_value(json_object_get(s, "pid"));
	assert_string_equal(str(s, "state"), "running");
	json_decref(s);
	return pid;
}

/* The qmp verb: the whole reply. args (taken) may be NULL. */
static json_t *qmp(struct t_fx *x, const char *name, const char *cmd, json_t *args)
{
	json_t *a = json_pack("{s:s, s:s}", "name", name, "command", cmd);
	if (args)
		json_object_set_new(a, "arguments", args);
	return t_ctl_call(&x->c, "qmp", a, 10000);
}

static void qmp_ok(struct t_fx *x, const char *name, const char *cmd, json_t *args)
{
	json_t *r = qmp(x, name, cmd, args);
	if (!json_object_get(r, "return"))
		fail_msg("qmp %s %s: %s", name, cmd, json_dumps(r, 0));
	json_decref(r);
}

/* Refused by qsupd (not by QEMU) with cls, the description holding want. */
static void qmp_refused(struct t_fx *x, const char *name, const char *cmd, json_t *args,
                        const char *cls, const char *want)
{
	json_t *r = qmp(x, name, cmd, args);
	json_t *err = json_object_get(r, "error");
	if (!err || strcmp(str(err, "class"), cls) != 0 || json_object_get(err, "qemu") ||
	    !strstr(str(err, "desc"), "refused by qsupd: ") || !strstr(str(err, "desc"), want))
		fail_msg("qmp %s %s: expected %s \"%s\", got %s", name, cmd, cls, want,
		         json_dumps(r, 0));
	json_decref(r);
}

/* The guest is running with the same QEMU; returns its status. */
static json_t *untouched(struct t_fx *x, const char *name, json_int_t pid)
{
	json_t *s = t_fx_must(x, "status", name, 5000);
	assert_string_equal(str(s, "state"), "running");
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid);
	assert_true(t_pid_alive((pid_t)pid));
	return s;
}

static void expect_log(struct t_fx *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void expect_log(struct t_fx *x, const char *fmt, ...)
{
	char want[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	for (int i = 0; i < 40 && !t_fx_log_has(x, want); i++)
		usleep(50000);   /* stderr is written as it happens; be patient anyway */
	if (!t_fx_log_has(x, want))
		fail_msg("no \"%s\" in the log:\n%s", want, t_daemon_log(&x->d));
}

static bool tainted(struct t_fx *x, const char *name, const char *const *cmds, size_t n)
{
	json_t *s = t_fx_must(x, "status", name, 5000);
	bool t = json_is_true(json_object_get(s, "tainted"));
	json_t *list = json_object_get(s, "taint");
	assert_int_equal(json_array_size(list), n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(json_string_value(json_array_get(list, i)), cmds[i]);
	json_decref(s);
	return t;
}

static void test_policies(void **state)
{
	struct t_fx *x = *state;
	unsigned uid = (unsigned)getuid();
	t_daemon_profile(&x->d, "full", FW);
	t_daemon_profile(&x->d, "query", FW "[qemu]\nqmp-passthrough = query\n");
	t_daemon_profile(&x->d, "off", FW "[qemu]\nqmp-passthrough = off\n");
	t_fx_up(x, NULL);
	json_int_t pf = start_guest(x, "full"), pq = start_guest(x, "query");
	json_int_t po = start_guest(x, "off");
	printf("# using %s\n", t_accel());

	qmp_ok(x, "full", "query-status", NULL);
	assert_false(tainted(x, "full", NULL, 0));
	qmp_ok(x, "full", "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"));
	const char *ql[] = { "qom-list" };
	assert_true(tainted(x, "full", ql, 1));
	qmp_refused(x, "full", "quit", NULL, "PermissionDenied", "quit: use qsupctl stop or kill");

	qmp_ok(x, "query", "query-status", NULL);
	qmp_refused(x, "query", "qom-list", json_pack("{s:s}", "path", "/machine"),
	            "PermissionDenied", "qom-list: query's profile has qmp-passthrough = query");
	assert_false(tainted(x, "query", NULL, 0));

	qmp_refused(x, "off", "query-status", NULL, "PermissionDenied",
	            "query-status: off's profile has qmp-passthrough = off");
	qmp_refused(x, "off", "quit", NULL, "PermissionDenied", "= off");
	assert_false(tainted(x, "off", NULL, 0));

	json_decref(untouched(x, "full", pf));
	json_decref(untouched(x, "query", pq));
	json_decref(untouched(x, "off", po));
	expect_log(x, "full: qmp passthrough by uid %u: query-status", uid);
	expect_log(x, "full: qmp passthrough by uid %u: qom-list", uid);
	expect_log(x, "full: qmp passthrough by uid %u: refused: quit: use qsupctl stop or kill",
	           uid);
	expect_log(x, "off: qmp passthrough by uid %u: refused: query-status: off's profile "
	           "has qmp-passthrough = off", uid);

	/* A reload applies a tightened policy to the running guest at once. */
	t_daemon_profile(&x->d, "full", FW "[qemu]\nqmp-passthrough = off\n");
	json_decref(t_ctl_call(&x->c, "reload", NULL, 10000));
	qmp_refused(x, "full", "query-status", NULL, "PermissionDenied", "= off");
	json_decref(untouched(x, "full", pf));
}

/* A 1 MiB raw image in the test dir. */
static void make_image(struct t_fx *x, const char *name, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", x->d.dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
}

/* Every class qsupd refuses: QEMU never sees the command, the guest runs on
 * with the same QEMU, devices and nodes. */
static void test_refusals_leave_guest_alone(void **state)
{
	struct t_fx *x = *state;
	char img[600], text[1024];
	make_image(x, "root.img", img, sizeof(img));
	snprintf(text, sizeof(text), FW "[disk.root]\nfile = %s\nformat = raw\n"
	         "[nic.lan]\ntype = user\n", img);
	t_daemon_profile(&x->d, "fw", text);
	t_fx_up(x, NULL);
	json_int_t pid = start_guest(x, "fw");
	static const struct {
		const char *cmd, *args, *want;
	} denied[] = {
		{ "quit", NULL, "quit: use qsupctl stop or kill" },
		{ "system_powerdown", NULL, "system_powerdown: use qsupctl stop" },
		{ "human-monitor-command", "{\"command-line\": \"quit\"}", "HMP" },
		{ "migrate", "{\"uri\": \"exec:cat > /dev/null\"}", "use qsupctl migrate" },
		{ "migrate-incoming", "{\"uri\": \"tcp:127.0.0.1:1\"}", "qsupctl incoming" },
		{ "migrate-start-postcopy", NULL, "qsupctl migrate-postcopy" },
		{ "migrate_cancel", NULL, "qsupctl migrate-cancel" },
		{ "migrate-recover", "{\"uri\": \"tcp:127.0.0.1:1\"}", "qsupd runs migrations" },
		{ "migrate-pause", NULL, "qsupd runs migrations" },
		{ "migrate-set-capabilities", "{\"capabilities\": []}", "[migration]" },
		{ "getfd", "{\"fdname\": \"x\"}", "file descriptors" },
		{ "closefd", "{\"fdname\": \"x\"}", "file descriptors" },
		{ "add-fd", NULL, "file descriptors" },
		{ "remove-fd", "{\"fdset-id\": 0}", "file descriptors" },
		{ "set-action", "{\"panic\": \"none\"}", "default actions" },
		{ "device_del", "{\"id\": \"root\"}",
		  "device_del of disk root: it is a profile device; edit the profile" },
		{ "device_del", "{\"id\": \"/machine/peripheral/lan\"}", "of NIC lan" },
		{ "device_del", "{\"id\": \"port.root\"}", "root port port.root" },
		{ "device_del", "{\"id\": \"hotplug.0\"}", "spare hot-plug port" },
		{ "device_del", "{\"id\": \"serial.0\"}", "qsupd relies on it" },
		{ "device_del", "{\"id\": \"/machine/q35/pcie.0/child[0]\"}", "by its id" },
		{ "blockdev-del", "{\"node-name\": \"drive.root\"}", "block node drive.root" },
		{ "blockdev-del", "{\"node-name\": \"file.root\"}", "block node file.root" },
		{ "netdev_del", "{\"id\": \"net.lan\"}", "netdev net.lan of NIC lan" },
		{ "chardev-remove", "{\"id\": \"serial0\"}", "console's chardev" },
		{ "object-del", "{\"id\": \"net.lan\"}", "NIC lan" },
		{ "blockdev-snapshot-sync", "{\"node-name\": \"drive.root\", \"snapshot-file\": "
		  "\"/tmp/qsup-never.qcow2\"}", "blockdev-backup" },
		{ "qom-set", "{\"path\": \"root\", \"property\": \"realized\", \"value\": false}",
		  "realized" },
	};
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		qmp_refused(x, "fw", denied[i].cmd,
		            denied[i].args ? json_loads(denied[i].args, 0, NULL) : NULL,
		            "PermissionDenied", denied[i].want);
	json_t *s = untouched(x, "fw", pid);
	assert_false(json_is_true(json_object_get(s, "tainted")));   /* nothing was sent */
	json_decref(s);
	/* QEMU still has every device and node (asked without qsupd's help
	 * would be the same: these are queries). */
	json_t *r = qmp(x, "fw", "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"));
	char *list = json_dumps(json_object_get(r, "return"), 0);
	assert_non_null(strstr(list, "\"root\""));
	assert_non_null(strstr(list, "\"lan\""));
	assert_non_null(strstr(list, "\"port.root\""));
	free(list);
	json_decref(r);
	r = qmp(x, "fw", "query-named-block-nodes", json_pack("{s:b}", "flat", 1));
	list = json_dumps(json_object_get(r, "return"), 0);
	assert_non_null(strstr(list, "\"drive.root\""));
	json_decref(r);
	free(list);
	assert_int_equal(access("/tmp/qsup-never.qcow2", F_OK), -1);
	expect_log(x, "fw: qmp passthrough by uid %u: refused: device_del of disk root",
	           (unsigned)getuid());
	/* What qsupd follows stays allowed. */
	qmp_ok(x, "fw", "stop", NULL);
	for (int i = 0; i < 40; i++) {   /* the STOP event makes it paused */
		s = t_fx_must(x, "status", "fw", 5000);
		bool paused = !strcmp(str(s, "state"), "paused");
		json_decref(s);
		if (paused)
			break;
		usleep(50000);
	}
	qmp_ok(x, "fw", "cont", NULL);
	qmp_ok(x, "fw", "system_reset", NULL);
	for (int i = 0; i < 40; i++) {
		s = t_fx_must(x, "status", "fw", 5000);
		bool running = !strcmp(str(s, "state"), "running");
		json_decref(s);
		if (running)
			break;
		usleep(50000);
	}
	json_decref(untouched(x, "fw", pid));
}

/* While qsupd waits for an incoming migration, stop and cont are its own. */
static void test_stop_cont_while_incoming(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "dst", FW);
	t_fx_up(x, NULL);
	json_t *r = t_ctl_call(&x->c, "incoming", json_pack("{s:s}", "name", "dst"), 30000);
	if (!json_object_get(r, "return"))
		fail_msg("incoming: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->d));
	json_decref(r);
	json_t *s = t_fx_must(x, "status", "dst", 5000);
	assert_string_equal(str(s, "state"), "incoming");
	json_int_t pid = json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	qmp_refused(x, "dst", "cont", NULL, "InvalidState", "cont: dst is incoming");
	qmp_refused(x, "dst", "stop", NULL, "InvalidState", "stop: dst is incoming");
	qmp_refused(x, "dst", "migrate-incoming", json_pack("{s:s}", "uri", "tcp:127.0.0.1:1"),
	            "PermissionDenied", "qsupctl incoming");
	r = qmp(x, "dst", "query-status", NULL);
	assert_string_equal(str(json_object_get(r, "return"), "status"), "inmigrate");
	json_decref(r);
	s = t_fx_must(x, "status", "dst", 5000);
	assert_string_equal(str(s, "state"), "incoming");
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid);
	json_decref(s);
	json_decref(t_fx_must(x, "kill", "dst", 10000));
}

/* A hot-plugged disk and its node are qsupd's until detached. */
static void test_hotplugged_disk(void **state)
{
	struct t_fx *x = *state;
	char img[600];
	make_image(x, "data.img", img, sizeof(img));
	t_daemon_profile(&x->d, "fw", FW);
	t_fx_up(x, NULL);
	json_int_t pid = start_guest(x, "fw");
	json_t *r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name",
	                       "fw", "kind", "disk", "id", "data", "file", img, "format", "raw"),
	                       30000);
	if (!json_object_get(r, "return"))
		fail_msg("attach: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->d));
	json_decref(r);
	qmp_refused(x, "fw", "blockdev-del", json_pack("{s:s}", "node-name", "hpdrive.data"),
	            "PermissionDenied", "blockdev-del of hpdrive.data: it is hot-plugged; use "
	            "qsupctl detach");
	qmp_refused(x, "fw", "device_del", json_pack("{s:s}", "id", "data"), "PermissionDenied",
	            "device_del of data: it is hot-plugged; use qsupctl detach");
	qmp_refused(x, "fw", "blockdev-mirror", json_pack("{s:s, s:s, s:s}", "device",
	            "hpdrive.data", "target", "x", "sync", "full"), "PermissionDenied",
	            "hpdrive.data");
	r = t_ctl_call(&x->c, "devices", json_pack("{s:s}", "name", "fw"), 5000);
	json_t *e;
	size_t i;
	bool listed = false;
	json_array_foreach(json_object_get(r, "return"), i, e)
		listed |= !strcmp(str(e, "id"), "data") && !strcmp(str(e, "state"), "attached");
	assert_true(listed);
	json_decref(r);
	r = qmp(x, "fw", "query-named-block-nodes", json_pack("{s:b}", "flat", 1));
	char *nodes = json_dumps(json_object_get(r, "return"), 0);
	assert_non_null(strstr(nodes, "\"hpdrive.data\""));
	free(nodes);
	json_decref(r);
	json_decref(untouched(x, "fw", pid));
}

/* Taint: a query does not, blockdev-add of a harmless node does; status and
 * qsupctl show it; a re-adopting qsupd keeps it; a new QEMU clears it. */
static void test_taint(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW);
	t_fx_up(x, NULL);
	json_int_t pid = start_guest(x, "fw");
	qmp_ok(x, "fw", "query-status", NULL);
	assert_false(tainted(x, "fw", NULL, 0));
	qmp_ok(x, "fw", "blockdev-add", json_pack("{s:s, s:s}", "driver", "null-co",
	                                           "node-name", "scratch"));
	qmp_ok(x, "fw", "blockdev-add", json_pack("{s:s, s:s}", "driver", "null-co",
	                                           "node-name", "scratch2"));
	/* QEMU's own refusal still taints: the command was sent. */
	json_t *r = qmp(x, "fw", "qom-set", json_pack("{s:s, s:s, s:i}", "path", "/machine",
	                "property", "no-such-property", "value", 1));
	assert_true(json_is_true(json_object_get(json_object_get(r, "error"), "qemu")));
	json_decref(r);
	const char *want[] = { "blockdev-add", "qom-set" };
	assert_true(tainted(x, "fw", want, 2));
	r = t_ctl_call(&x->c, "list", NULL, 5000);
	assert_true(json_is_true(json_object_get(json_array_get(json_object_get(r, "return"), 0),
	                                         "tainted")));
	json_decref(r);
	char out[4096];
	const char *st[] = { t_qsupctl(), "-s", x->d.sock, "status", "fw", NULL };
	assert_int_equal(t_run_capture(st, out, sizeof(out), 10000), 0);
	if (!strstr(out, "running (started), tainted (blockdev-add, qom-set)"))
		fail_msg("qsupctl status:\n%s", out);
	/* qsupctl reports a refusal with qsupd's reason, and fails. */
	const char *q[] = { t_qsupctl(), "-s", x->d.sock, "qmp", "fw", "quit", NULL };
	assert_int_equal(t_run_capture(q, out, sizeof(out), 10000), 1);
	if (!strstr(out, "qsupctl: qmp fw quit: refused by qsupd: quit: use qsupctl stop or kill"))
		fail_msg("qsupctl qmp quit:\n%s", out);

	/* qsupd goes away (the guest runs on) and comes back: it re-adopts the
	 * guest, taint and all. */
	usleep(300000);   /* the state file is written off the loop */
	t_ctl_close(&x->c);
	assert_int_equal(t_daemon_stop(&x->d), 0);
	assert_true(t_pid_alive((pid_t)pid));
	t_fx_up(x, NULL);
	json_t *s = NULL;
	for (int i = 0; i < 100; i++) {
		json_decref(s);
		s = t_fx_must(x, "status", "fw", 5000);
		if (!strcmp(str(s, "state"), "running"))
			break;
		usleep(50000);
	}
	assert_string_equal(str(s, "state"), "running");
	assert_true(json_is_true(json_object_get(s, "adopted")));
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid);
	json_decref(s);
	assert_true(tainted(x, "fw", want, 2));

	/* stop + start: a new QEMU, no taint. */
	json_decref(t_fx_must(x, "stop", "fw", 30000));
	assert_true(tainted(x, "fw", want, 2));   /* until the next start */
	json_int_t pid2 = start_guest(x, "fw");
	assert_true(pid2 != pid);
	assert_false(tainted(x, "fw", NULL, 0));
	assert_int_equal(t_run_capture(st, out, sizeof(out), 10000), 0);
	assert_null(strstr(out, "tainted"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_policies, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_refusals_leave_guest_alone, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_stop_cont_while_incoming, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_hotplugged_disk, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_taint, t_fx_setup, t_fx_teardown),
	};
	return cmocka_run_group_tests_name("passthrough", tests, NULL, NULL);
}
