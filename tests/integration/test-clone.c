/*
 * clone, for real: a stopped tiny guest with a qcow2 disk and a raw one
 * (patterns written with qemu-io), a read-only disk, a CD-ROM and two NICs
 * is cloned in full and linked. The copies hold the same data (qemu-img
 * compare), a linked disk is a qcow2 overlay backed by the source's image,
 * the NICs get new MACs, the daemon lists the clones, and both boot. A
 * running source, an existing name or file, an invalid name are refused,
 * and a refused clone leaves no file behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

static void run_ok(const char *const *argv)
{
	char out[8192];
	int rc = t_run_capture(argv, out, sizeof(out), 60000);
	if (rc != 0)
		fail_msg("%s %s: exit %d: %s", argv[0], argv[1], rc, out);
}

static json_t *clone_call(struct t_fx *x, const char *name, const char *neu, bool linked)
{
	json_t *r = t_ctl_call(&x->c, "clone", json_pack("{s:s, s:s, s:b}", "name", name, "new",
	                       neu, "linked", linked), 120000);
	if (!r)
		fail_msg("clone: no reply:\n%s", t_daemon_log(&x->d));
	return r;
}

static const char *err_class(json_t *r)
{
	return t_str(json_object_get(r, "error"), "class");
}

static json_t *disk_of(json_t *ret, const char *id)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(ret, "disks"), i, v)
		if (!strcmp(t_str(v, "id"), id))
			return v;
	fail_msg("no disk %s in %s", id, json_dumps(ret, 0));
	return NULL;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void boots(struct t_fx *x, const char *name)
{
	json_t *r = t_ctl_do(&x->c, "start", name, 120000, NULL);
	if (!r)
		fail_msg("%s did not start:\n%s", name, t_daemon_log(&x->d));
	assert_string_equal(t_str(r, "state"), "running");
	json_decref(r);
	json_decref(t_fx_must(x, "stop", name, 120000));
}

static void test_clone_full_and_linked(void **state)
{
	struct t_fx *x = *state;
	char root[600], data[600], ro[600], more[3000], c1root[600], c1data[600], c2root[600],
	     c2data[600], c3root[600], path[700];
	const char *dir = x->d.dir;
	snprintf(root, sizeof(root), "%s/src-root.qcow2", dir);
	snprintf(data, sizeof(data), "%s/data.raw", dir);
	snprintf(ro, sizeof(ro), "%s/ro.raw", dir);
	snprintf(c1root, sizeof(c1root), "%s/c1-root.qcow2", dir);
	snprintf(c1data, sizeof(c1data), "%s/c1-data.raw", dir);
	snprintf(c2root, sizeof(c2root), "%s/c2-root.qcow2", dir);
	snprintf(c2data, sizeof(c2data), "%s/c2-data.raw", dir);
	snprintf(c3root, sizeof(c3root), "%s/c3-root.qcow2", dir);
	const char *mk1[] = { "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", root, "32M", NULL };
	const char *mk2[] = { "/usr/bin/qemu-img", "create", "-q", "-f", "raw", data, "16M", NULL };
	const char *mk3[] = { "/usr/bin/qemu-img", "create", "-q", "-f", "raw", ro, "1M", NULL };
	const char *w1[] = { "/usr/bin/qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 2M", root,
	                     NULL };
	const char *w2[] = { "/usr/bin/qemu-io", "-f", "raw", "-c", "write -P 0xa5 0 4M", data,
	                     NULL };
	run_ok(mk1);
	run_ok(mk2);
	run_ok(mk3);
	run_ok(w1);
	run_ok(w2);
	snprintf(more, sizeof(more), "[disk.root]\nfile = %s\nformat = qcow2\n"
	         "[disk.data]\nfile = %s\nformat = raw\n"
	         "[disk.ro]\nfile = %s\nformat = raw\nread-only = yes\n"
	         "[cdrom.cd]\n[nic.lan]\ntype = user\nmac = 52:54:00:aa:bb:cc\n"
	         "[nic.two]\ntype = user\n", root, data, ro);
	t_daemon_tiny_profile(&x->d, "src", more);
	t_fx_up(x, NULL);

	/* Running: refused. */
	json_decref(t_fx_must(x, "start", "src", 120000));
	json_t *r = clone_call(x, "src", "c1", false);
	assert_string_equal(err_class(r), "Busy");
	printf("# note: %s\n", t_str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	json_decref(t_fx_must(x, "stop", "src", 120000));

	/* Full. */
	r = clone_call(x, "src", "c1", false);
	json_t *ret = json_object_get(r, "return");
	if (!ret)
		fail_msg("clone: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->d));
	assert_string_equal(t_str(ret, "name"), "c1");
	assert_string_equal(t_str(disk_of(ret, "root"), "file"), c1root);
	assert_string_equal(t_str(disk_of(ret, "root"), "how"), "copied");
	assert_string_equal(t_str(disk_of(ret, "data"), "file"), c1data);
	assert_string_equal(t_str(disk_of(ret, "ro"), "how"), "shared");
	assert_string_equal(t_str(disk_of(ret, "ro"), "file"), ro);
	json_t *nics = json_object_get(ret, "nics");
	assert_int_equal(json_object_size(nics), 2);
	assert_string_not_equal(json_string_value(json_object_get(nics, "lan")),
	                        "52:54:00:aa:bb:cc");
	assert_null(json_object_get(ret, "note"));
	json_decref(r);
	const char *cmp1[] = { "/usr/bin/qemu-img", "compare", "-q", "-f", "qcow2", "-F", "qcow2",
	                       root, c1root, NULL };
	const char *cmp2[] = { "/usr/bin/qemu-img", "compare", "-q", "-f", "raw", "-F", "raw",
	                       data, c1data, NULL };
	run_ok(cmp1);
	run_ok(cmp2);
	/* The daemon knows it, its profile has the new MACs and files. */
	json_t *st = t_ctl_do(&x->c, "status", "c1", 10000, NULL);
	assert_non_null(st);
	json_decref(st);
	snprintf(path, sizeof(path), "%s/c1.ini", x->d.profiles);
	const char *grep[] = { "/bin/grep", "-c", "52:54:00:aa:bb:cc", path, NULL };
	char out[8192];
	assert_int_not_equal(t_run_capture(grep, out, sizeof(out), 10000), 0);
	boots(x, "c1");

	/* Linked: overlays backed by the source's images. */
	const char *cli[] = { t_qsupctl(), "-s", x->d.sock, "clone", "--linked", "src", "c2", NULL };
	int rc = t_run_capture(cli, out, sizeof(out), 120000);
	if (rc != 0)
		fail_msg("qsupctl clone --linked: %s\n%s", out, t_daemon_log(&x->d));
	assert_non_null(strstr(out, "cloned to c2"));
	assert_non_null(strstr(out, "(linked)"));
	assert_non_null(strstr(out, "must never change"));
	const char *info[] = { "/usr/bin/qemu-img", "info", "--output=json", c2data, NULL };
	assert_int_equal(t_run_capture(info, out, sizeof(out), 30000), 0);
	json_t *j = json_loads(out, 0, NULL);
	assert_string_equal(t_str(j, "format"), "qcow2");
	assert_string_equal(t_str(j, "backing-filename"), data);
	json_decref(j);
	const char *cmp3[] = { "/usr/bin/qemu-img", "compare", "-q", "-f", "qcow2", "-F", "qcow2",
	                       root, c2root, NULL };
	const char *cmp4[] = { "/usr/bin/qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2",
	                       data, c2data, NULL };
	run_ok(cmp3);
	run_ok(cmp4);
	boots(x, "c2");

	/* Refusals, and nothing left behind. */
	r = clone_call(x, "src", "c1", false);
	assert_string_equal(err_class(r), "Exists");
	json_decref(r);
	r = clone_call(x, "src", ".bad", false);
	assert_string_equal(err_class(r), "InvalidArgument");
	json_decref(r);
	r = clone_call(x, "nope", "c9", false);
	assert_string_equal(err_class(r), "NotFound");
	json_decref(r);
	int fd = open(c3root, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	close(fd);
	r = clone_call(x, "src", "c3", false);
	assert_string_equal(err_class(r), "Exists");
	assert_non_null(strstr(t_str(json_object_get(r, "error"), "desc"), c3root));
	json_decref(r);
	snprintf(path, sizeof(path), "%s/c3.ini", x->d.profiles);
	assert_false(exists(path));
	snprintf(path, sizeof(path), "%s/c3-data.raw", dir);
	assert_false(exists(path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clone_full_and_linked, t_fx_setup, t_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
