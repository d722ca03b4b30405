/*
 * Hot-plug through the real daemon: disks, NICs, vCPUs and memory into the
 * tiny guest (TCG), which reports them on its console; failures, rollback,
 * a guest that never releases a device (firmware only: KVM when usable),
 * the --persist overlay, and bridge NICs. The tests run in a network
 * namespace of their own (with a bridge made for the bridge test), so the
 * host's network is never touched.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "netns.h"
#include "tdaemon.h"
#include "testutil.h"

struct fx {
	struct t_daemon d;
	struct t_ctl c;
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_int_equal(t_daemon_init(&x->d), 0);
	x->c.fd = -1;
	uv_loop_init(&x->loop);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	t_serial_close(&x->ser);
	t_loop_finish(&x->loop);
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	int status = t_daemon_finish(&x->d);
	assert_int_equal(status, 0);
	free(x);
	return 0;
}

#define str t_str

static void start_with(struct fx *x, const char *name, const char *const *args)
{
	if (t_daemon_start(&x->d, args) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
	json_t *s = t_ctl_do(&x->c, "start", name, 60000, NULL);
	if (!s)
		fail_msg("start failed:\n%s", t_daemon_log(&x->d));
	json_decref(s);
}

static void start(struct fx *x, const char *name)
{
	start_with(x, name, NULL);
}

/* Boot the tiny guest and keep its console open. */
static void start_tiny_with(struct fx *x, const char *extra)
{
	t_daemon_tiny_profile(&x->d, "tiny", extra);
	start(x, "tiny");
	t_loop_finish(&x->loop);   /* t_ctl_console() sets it up afresh */
	assert_int_equal(t_ctl_console(&x->c, "tiny", &x->loop, &x->ser), 0);
	if (t_serial_wait(&x->ser, "QSUP-GUEST-READY", &x->seen, 60000) < 0)
		fail_msg("no ready marker:\n%s", x->ser.buf ? x->ser.buf : "");
	printf("# using tcg (the guest must see the devices)\n");
}

static void start_tiny(struct fx *x)
{
	start_tiny_with(x, "");
}

static void console_shows(struct fx *x, const char *marker)
{
	if (t_serial_wait(&x->ser, marker, &x->seen, 30000) < 0)
		fail_msg("console never showed '%s':\n%s", marker, x->ser.buf ? x->ser.buf : "");
}

/* A 16 MiB raw image in the test dir. */
static void make_image(struct fx *x, const char *name, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", x->d.dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 << 20), 0);
	close(fd);
}

/* expect_err() on a reply nobody else keeps. */
static void expect_err_take(json_t *r, const char *cls);

static json_t *attach_disk(struct fx *x, const char *name, const char *id,
                           const char *file, const char *format)
{
	return t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", name,
	                  "kind", "disk", "id", id, "file", file, "format", format), 30000);
}

static json_t *detach(struct fx *x, const char *name, const char *id, int timeout)
{
	json_t *a = json_pack("{s:s, s:s}", "name", name, "id", id);
	if (timeout)
		json_object_set_new(a, "timeout", json_integer(timeout));
	return t_ctl_call(&x->c, "detach", a, 60000);
}

static void expect_ok(json_t *r, const char *what)
{
	if (!json_object_get(r, "return"))
		fail_msg("%s: %s", what, json_dumps(r, 0));
}

static void expect_err(json_t *r, const char *cls)
{
	json_t *e = json_object_get(r, "error");
	if (!e || strcmp(str(e, "class"), cls) != 0)
		fail_msg("expected %s, got %s", cls, json_dumps(r, 0));
	printf("# note: %s: %s\n", cls, str(e, "desc"));
}

static void expect_err_take(json_t *r, const char *cls)
{
	expect_err(r, cls);
	json_decref(r);
}

/* How many block nodes QEMU has whose name starts with prefix. */
static int nodes(struct fx *x, const char *name, const char *prefix)
{
	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", name, "command",
	                       "query-named-block-nodes"), 10000);
	int n = 0;
	size_t i;
	json_t *node;
	json_array_foreach(json_object_get(r, "return"), i, node)
		n += strncmp(str(node, "node-name"), prefix, strlen(prefix)) == 0;
	json_decref(r);
	return n;
}

/* How many of QEMU's fd sets are hot-plug's (ids of nine digits, from
 * 10^8 up: so a set named otherwise is missed, and the count wrong) and
 * still hold an fd. */
static int hp_fdsets(struct fx *x, const char *name)
{
	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", name, "command",
	                       "query-fdsets"), 10000);
	int n = 0;
	size_t i;
	json_t *set;
	json_array_foreach(json_object_get(r, "return"), i, set)
		n += json_integer_value(json_object_get(set, "fdset-id")) >= 100000000 &&
		     json_integer_value(json_object_get(set, "fdset-id")) < 1000000000 &&
		     json_array_size(json_object_get(set, "fds")) > 0;
	json_decref(r);
	return n;
}

/* The ro flag of QEMU's block node named node: 1, 0, or -1 when there is
 * no such node. */
static int node_ro(struct fx *x, const char *name, const char *node_name)
{
	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", name, "command",
	                       "query-named-block-nodes"), 10000);
	int ro = -1;
	size_t i;
	json_t *node;
	json_array_foreach(json_object_get(r, "return"), i, node)
		if (!strcmp(str(node, "node-name"), node_name))
			ro = json_is_true(json_object_get(node, "ro"));
	json_decref(r);
	return ro;
}

static int count_fds_once(pid_t pid);


/* qsupd's open fds, the least of a few looks: a state file being written on
 * the thread pool holds one for a moment. */
static int count_fds(pid_t pid)
{
	int least = 1 << 30;
	for (int i = 0; i < 10; i++) {
		int n = count_fds_once(pid);
		least = n < least ? n : least;
		usleep(20000);
	}
	return least;
}

static int count_fds_once(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	int n = 0;
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

static void test_disk_and_nic_in_the_guest(void **state)
{
	struct fx *x = *state;
	char img[600];
	start_tiny(x);
	make_image(x, "data1.img", img, sizeof(img));
	json_t *r = attach_disk(x, "tiny", "data1", img, "raw");
	expect_ok(r, "attach");
	assert_string_equal(str(json_object_get(r, "return"), "state"), "attached");
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG add block vda");
	r = t_ctl_call(&x->c, "devices", json_pack("{s:s}", "name", "tiny"), 5000);
	json_t *d = json_array_get(json_object_get(r, "return"), 0);
	assert_string_equal(str(d, "id"), "data1");
	assert_string_equal(str(d, "source"), "hotplug");
	json_decref(r);
	double t0 = t_now();
	r = detach(x, "tiny", "data1", 0);
	expect_ok(r, "detach");
	printf("# note: detach to DEVICE_DELETED in %.2f s\n", t_now() - t0);
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG remove block vda");
	assert_int_equal(nodes(x, "tiny", "hpdrive."), 0);

	/* Cycles: nothing grows in QEMU or in qsupd. */
	int fds0 = count_fds(x->d.pid);
	long rss0 = t_rss_kib(x->d.pid);
	for (int i = 0; i < 20; i++) {
		r = attach_disk(x, "tiny", "data1", img, "raw");
		expect_ok(r, "attach (cycle)");
		json_decref(r);
		r = detach(x, "tiny", "data1", 0);
		expect_ok(r, "detach (cycle)");
		json_decref(r);
	}
	assert_int_equal(nodes(x, "tiny", "hpdrive."), 0);
	assert_int_equal(count_fds(x->d.pid), fds0);
	long rss1 = t_rss_kib(x->d.pid);
	printf("# note: qsupd RSS %ld KiB before 20 cycles, %ld KiB after\n", rss0, rss1);
#ifdef __SANITIZE_ADDRESS__
	printf("# note: RSS not asserted under ASan (its quarantine keeps freed memory)\n");
#else
	assert_true(rss1 - rss0 < 512);   /* no per-cycle growth (allocator noise aside) */
#endif

	r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s}", "name", "tiny",
	               "kind", "nic", "id", "lan1", "type", "user"), 30000);
	expect_ok(r, "attach nic");
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG add net eth0");
	r = detach(x, "tiny", "lan1", 0);
	expect_ok(r, "detach nic");
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG remove net eth0");
}

/* Ask the guest's console cmd; returns the number after marker. */
static long ask(struct fx *x, const char *cmd, const char *marker)
{
	assert_int_equal(t_serial_write(&x->ser, cmd), 0);
	console_shows(x, marker);
	size_t at = x->seen;
	console_shows(x, "\n");   /* the whole line */
	const char *p = x->ser.buf + at;
	char *end;
	long v = strtol(p, &end, 10);
	if (end == p)
		fail_msg("no number after '%s':\n%s", marker, x->ser.buf);
	return v;
}

static json_t *attach_kv(struct fx *x, const char *kind, const char *key, json_t *value)
{
	json_t *a = json_pack("{s:s, s:s}", "name", "tiny", "kind", kind);
	if (key)
		json_object_set_new(a, key, value);
	return t_ctl_call(&x->c, "attach", a, 30000);
}

/* vCPUs and memory: the guest's CPU count and MemTotal grow; the limits of
 * the profile give clear errors; a vCPU cannot be unplugged under TCG
 * (QEMU 7.2 crashes), so qsupd refuses; memory unplugs. */
static void test_cpu_and_memory_in_the_guest(void **state)
{
	struct fx *x = *state;
	start_tiny_with(x, "max-cpus = 3\nmax-memory = 768M\nslots = 2\n");
	assert_int_equal(ask(x, "cpus", "QSUP-CPUS "), 1);
	json_t *r = attach_kv(x, "cpu", "count", json_integer(2));
	expect_ok(r, "attach cpu count=2");
	json_t *devs = json_object_get(json_object_get(r, "return"), "devices");
	assert_int_equal(json_array_size(devs), 2);
	assert_string_equal(str(json_array_get(devs, 0), "id"), "vcpu1");
	assert_string_equal(str(json_array_get(devs, 1), "id"), "vcpu2");
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG add cpu cpu2");
	usleep(200000);
	assert_int_equal(ask(x, "cpus", "QSUP-CPUS "), 3);
	r = attach_kv(x, "cpu", NULL, NULL);
	expect_err(r, "InvalidState");   /* max-cpus reached */
	assert_non_null(strstr(str(json_object_get(r, "error"), "desc"), "max-cpus"));
	json_decref(r);
	r = detach(x, "tiny", "vcpu2", 0);
	expect_err(r, "InvalidState");
	assert_non_null(strstr(str(json_object_get(r, "error"), "desc"), "TCG"));
	json_decref(r);

	long kib0 = ask(x, "mem", "QSUP-MEM ");
	expect_err_take(attach_kv(x, "memory", "size", json_string("3M")), "InvalidArgument");
	expect_err_take(attach_kv(x, "memory", "size", json_string("lots")), "InvalidArgument");
	r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s}", "name", "tiny", "kind",
	               "memory", "id", "mem1", "size", "256M"), 30000);
	expect_ok(r, "attach memory");
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG add memory");
	usleep(300000);
	long kib1 = ask(x, "mem", "QSUP-MEM ");
	printf("# note: guest MemTotal %ld KiB -> %ld KiB\n", kib0, kib1);
	assert_true(kib1 - kib0 >= 250 * 1024);
	/* 256M + 256M + 512M would pass max-memory (768M). */
	r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s}", "name", "tiny", "kind",
	               "memory", "id", "mem2", "size", "512M"), 30000);
	expect_err(r, "InvalidState");
	assert_non_null(strstr(str(json_object_get(r, "error"), "desc"), "max-memory"));
	json_decref(r);
	r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "tiny", "command",
	               "query-memory-devices"), 10000);
	assert_int_equal(json_array_size(json_object_get(r, "return")), 1);
	json_decref(r);
	/* The guest onlined it movable, so it can give it back. */
	r = detach(x, "tiny", "mem1", 0);
	expect_ok(r, "detach memory");
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG remove memory");
	usleep(300000);
	assert_true(ask(x, "mem", "QSUP-MEM ") < kib1);
	r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s, s:{s:s}}", "name", "tiny", "command",
	               "qom-list", "arguments", "path", "/objects"), 10000);
	char *objs = json_dumps(json_object_get(r, "return"), 0);
	assert_null(strstr(objs, "hpmem.mem1"));
	free(objs);
	json_decref(r);
	/* The devices list, also through qsupctl. */
	char out[4096];
	const char *devs_argv[] = { t_qsupctl(), "-s", x->d.sock, "devices", "tiny", NULL };
	assert_int_equal(t_run_capture(devs_argv, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "vcpu1"));
	assert_non_null(strstr(out, "cpu"));
	const char *nomem[] = { t_qsupctl(), "-s", x->d.sock, "attach", "tiny", "memory", NULL };
	assert_int_equal(t_run_capture(nomem, out, sizeof(out), 10000), 1);
	assert_non_null(strstr(out, "size"));
}

/* SCSI: on the controller of a profile with a SCSI disk, the next target. */
static void test_scsi_disk(void **state)
{
	struct fx *x = *state;
	char root[600], img[600], extra[800];
	make_image(x, "root.img", root, sizeof(root));
	make_image(x, "s1.img", img, sizeof(img));
	snprintf(extra, sizeof(extra), "[disk.root]\nfile = %s\nformat = raw\nbus = scsi\n", root);
	start_tiny_with(x, extra);
	json_t *r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name",
	                       "tiny", "kind", "disk", "id", "s1", "file", img, "format", "raw",
	                       "bus", "scsi"), 30000);
	expect_ok(r, "attach scsi");
	assert_string_equal(str(json_object_get(r, "return"), "bus"), "scsi:1");
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG add block sdb");
	r = detach(x, "tiny", "s1", 0);
	expect_ok(r, "detach scsi");
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG remove block sdb");
	assert_int_equal(nodes(x, "tiny", "hpdrive."), 0);
	expect_err_take(t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
	                "name", "tiny", "kind", "disk", "id", "s2", "file", img, "format", "raw",
	                "bus", "ide"), 30000), "InvalidArgument");
	/* readonly, the old spelling of the profile's read-only, still works;
	 * both at once are refused. */
	expect_err_take(t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, "
	                "s:b}", "name", "tiny", "kind", "disk", "id", "s2", "file", img, "format",
	                "raw", "readonly", 1, "read-only", 1), 30000), "InvalidArgument");
	r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "name",
	               "tiny", "kind", "disk", "id", "s3", "file", img, "format", "raw", "bus",
	               "scsi", "readonly", 1), 30000);
	expect_ok(r, "attach scsi readonly");
	json_decref(r);
	assert_int_equal(node_ro(x, "tiny", "hpdrive.s3"), 1);
}

#define FW "[guest]\nmemory = 64M\naccel = kvm:tcg\n"

/* The block nodes QEMU has that are not in seen (node names), added to
 * seen; a new array. */
static json_t *new_nodes(struct fx *x, const char *name, json_t *seen)
{
	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", name, "command",
	                       "query-named-block-nodes"), 10000);
	json_t *out = json_array();
	size_t i;
	json_t *node;
	json_array_foreach(json_object_get(r, "return"), i, node) {
		const char *nn = str(node, "node-name");
		if (json_object_get(seen, nn))
			continue;
		json_object_set_new(seen, nn, json_true());
		json_array_append(out, node);
	}
	json_decref(r);
	return out;
}

/* Every node of a disk just attached (count of them), as QEMU opened it:
 * the top node read-only or not, each backing format node read-only, as
 * many read-only file nodes as that, and the cache flags on all. */
static void expect_nodes(struct fx *x, json_t *seen, const char *id, int count, bool ro,
                         bool direct, bool no_flush)
{
	char top[64];
	snprintf(top, sizeof(top), "hpdrive.%s", id);
	json_t *a = new_nodes(x, "fw", seen);
	size_t i;
	json_t *node;
	int tops = 0, backings = 0, files = 0, ro_files = 0;
	printf("# %s: %zu nodes\n", id, json_array_size(a));
	assert_int_equal(json_array_size(a), count);
	json_array_foreach(a, i, node) {
		json_t *c = json_object_get(node, "cache");
		const char *nn = str(node, "node-name");
		bool node_ro = json_is_true(json_object_get(node, "ro"));
		if (json_is_true(json_object_get(c, "direct")) != direct ||
		    json_is_true(json_object_get(c, "no-flush")) != no_flush)
			fail_msg("%s: node %s has cache %s", id, nn, json_dumps(c, 0));
		if (!strcmp(nn, top)) {
			tops++;
			if (node_ro != ro)
				fail_msg("%s: the top node's ro is %d", id, node_ro);
		} else if (strcmp(str(node, "drv"), "file") != 0) {
			backings++;
			if (!node_ro)
				fail_msg("%s: backing node %s is read-write", id, nn);
		} else {
			files++;
			ro_files += node_ro;
		}
	}
	assert_int_equal(tops, 1);
	assert_int_equal(files, count / 2);
	assert_int_equal(ro_files, backings + ro);
	json_decref(a);
}

/* qsupd spells out in blockdev-add only what differs from QEMU's defaults;
 * QEMU still opens every node as the cache and read-only options say:
 * the file child inherits them from the top node, the backing layers the
 * cache flags (and are read-only). */
static void test_disk_options_as_opened(void **state)
{
	struct fx *x = *state;
	char base[600], ov[600], raw1[600], raw2[600], ov2[600];
	t_daemon_profile(&x->d, "fw", FW "hotplug-slots = 4\n");
	start(x, "fw");
	make_image(x, "r1.img", raw1, sizeof(raw1));
	make_image(x, "r2.img", raw2, sizeof(raw2));
	snprintf(base, sizeof(base), "%s/base.qcow2", x->d.dir);
	snprintf(ov, sizeof(ov), "%s/ov.qcow2", x->d.dir);
	snprintf(ov2, sizeof(ov2), "%s/ov2.qcow2", x->d.dir);
	const char *mk[] = { "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", base, "16M", NULL };
	const char *mk2[] = { "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
	                      base, ov, NULL };
	const char *mk3[] = { "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
	                      base, ov2, NULL };
	char out[1024];
	assert_int_equal(t_run_capture(mk, out, sizeof(out), 20000), 0);
	assert_int_equal(t_run_capture(mk2, out, sizeof(out), 20000), 0);
	assert_int_equal(t_run_capture(mk3, out, sizeof(out), 20000), 0);
	json_t *seen = json_object();
	json_decref(new_nodes(x, "fw", seen));   /* the profile's own, if any */
	json_t *r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}",
	               "name", "fw", "kind", "disk", "id", "c1", "file", raw1, "format", "raw",
	               "cache", "none", "read-only", 1), 30000);
	expect_ok(r, "attach cache=none read-only");
	json_decref(r);
	expect_nodes(x, seen, "c1", 2, true, true, false);
	r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
	               "name", "fw", "kind", "disk", "id", "c2", "file", raw2, "format", "raw",
	               "cache", "unsafe"), 30000);
	expect_ok(r, "attach cache=unsafe");
	json_decref(r);
	expect_nodes(x, seen, "c2", 2, false, false, true);
	expect_ok(r = attach_disk(x, "fw", "c3", ov, "qcow2"), "attach qcow2 over a base");
	json_decref(r);
	expect_nodes(x, seen, "c3", 4, false, false, false);
	r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
	               "name", "fw", "kind", "disk", "id", "c4", "file", ov2, "format", "qcow2",
	               "cache", "directsync"), 30000);
	expect_ok(r, "attach qcow2 cache=directsync");
	json_decref(r);
	expect_nodes(x, seen, "c4", 4, false, true, false);
	json_decref(seen);
}

/* The debug line of qsupd's open of attach id's image (the test dir's
 * file): 1 on the loop, 0 off it, -1 none. The whole log is searched, as
 * the QMP traffic logged after the line can be long. */
static int opened_on_loop(struct fx *x, const char *id, const char *file)
{
	char on[800], off[800];
	snprintf(on, sizeof(on), "%s: %s opened on the loop", id, file);
	snprintf(off, sizeof(off), "%s: %s opened off the loop", id, file);
	return t_daemon_log_has(&x->d, on) ? 1 : t_daemon_log_has(&x->d, off) ? 0 : -1;
}

/* A raw image whose path is all in the kernel's cache is opened on the
 * loop (no thread-pool hop); one whose path is not (dentries dropped), a
 * qcow2 image (its header is read) or a FIFO goes off the loop, with the
 * same outcome and the same errors as before. */
static void test_disk_opened_where_it_cannot_wait(void **state)
{
	struct fx *x = *state;
	static const char *const debug[] = { "--log-level", "debug", NULL };
	char raw1[600], raw2[600], cow[600], fifo[600];
	t_daemon_profile(&x->d, "fw", FW "hotplug-slots = 4\n");
	start_with(x, "fw", debug);
	make_image(x, "o1.img", raw1, sizeof(raw1));
	make_image(x, "o2.img", raw2, sizeof(raw2));
	snprintf(cow, sizeof(cow), "%s/o3.qcow2", x->d.dir);
	const char *mk[] = { "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", cow, "16M", NULL };
	char out[1024];
	assert_int_equal(t_run_capture(mk, out, sizeof(out), 20000), 0);

	json_t *r = attach_disk(x, "fw", "o1", raw1, "raw");
	expect_ok(r, "attach of a cached raw image");
	json_decref(r);
	assert_int_equal(opened_on_loop(x, "o1", raw1), 1);
	assert_int_equal(node_ro(x, "fw", "hpdrive.o1"), 0);

	/* Unused dentries and inodes dropped: o2.img's lookup needs the disk. */
	int dc = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (dc >= 0) {
		sync();
		assert_int_equal(write(dc, "2", 1), 1);
		close(dc);
		r = attach_disk(x, "fw", "o2", raw2, "raw");
		expect_ok(r, "attach of a raw image out of the cache");
		json_decref(r);
		assert_int_equal(opened_on_loop(x, "o2", raw2), 0);
		assert_int_equal(node_ro(x, "fw", "hpdrive.o2"), 0);
	} else {
		printf("# not root: the dropped-cache case is not checked (%s)\n", strerror(errno));
	}

	expect_ok(r = attach_disk(x, "fw", "o3", cow, "qcow2"), "attach of a qcow2 image");
	json_decref(r);
	assert_int_equal(opened_on_loop(x, "o3", cow), 0);

	/* A FIFO and a missing file: the errors of the open off the loop. */
	snprintf(fifo, sizeof(fifo), "%s/o4.img", x->d.dir);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	r = attach_disk(x, "fw", "o4", fifo, "raw");
	expect_err(r, "InvalidArgument");
	assert_non_null(strstr(str(json_object_get(r, "error"), "desc"), "not a regular file"));
	json_decref(r);
	assert_int_equal(opened_on_loop(x, "o4", fifo), -1);
	strcat(fifo, ".missing");
	expect_err_take(attach_disk(x, "fw", "o5", fifo, "raw"), "NotFound");
	assert_int_equal(nodes(x, "fw", "hpdrive.o4"), 0);
	assert_int_equal(hp_fdsets(x, "fw"), 3);
}

static void test_failures_leave_nothing_behind(void **state)
{
	struct fx *x = *state;
	char img[600];
	t_daemon_profile(&x->d, "fw", FW "hotplug-slots = 3\n[nic.lan]\ntype = user\n");
	start(x, "fw");
	make_image(x, "a.img", img, sizeof(img));
	expect_err_take(attach_disk(x, "fw", "d1", "/nonexistent/x.img", "raw"), "NotFound");
	expect_err_take(attach_disk(x, "fw", "d1", img, "floppy"), "InvalidArgument");
	expect_err_take(attach_disk(x, "fw", "d1", "json:{}", "raw"), "InvalidArgument");
	expect_err_take(attach_disk(x, "fw", "9bad", img, "raw"), "InvalidArgument");
	expect_err_take(attach_disk(x, "fw", "lan", img, "raw"), "InvalidArgument");   /* profile's */
	json_t *sc = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name",
	                        "fw", "kind", "disk", "id", "s1", "file", img, "format", "raw",
	                        "bus", "scsi"), 30000);
	expect_err(sc, "InvalidArgument");   /* no SCSI controller in the profile */
	assert_non_null(strstr(str(json_object_get(sc, "error"), "desc"), "SCSI controller"));
	json_decref(sc);
	/* qsupd reads a qcow2 header itself (it follows the backing chain): a
	 * qcow2 view of a raw file is refused before QEMU sees it. */
	json_t *r = attach_disk(x, "fw", "d1", img, "qcow2");
	expect_err(r, "InvalidArgument");
	assert_non_null(strstr(str(json_object_get(r, "error"), "desc"), "not a qcow2 image"));
	json_decref(r);
	/* QEMU's own refusal comes back intact: a vmdk view of a raw file. */
	r = attach_disk(x, "fw", "d1", img, "vmdk");
	expect_err(r, "GenericError");
	assert_true(json_is_true(json_object_get(json_object_get(r, "error"), "qemu")));
	json_decref(r);
	/* device_add fails after blockdev-add succeeded: a device named d9 was
	 * added behind qsup's back, so QEMU refuses the id; the backend is
	 * rolled back. */
	r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "name", "fw",
	               "command", "device_add", "arguments", "driver", "virtio-rng-pci",
	               "id", "d9", "bus", "hotplug.2"), 10000);
	expect_ok(r, "foreign device");
	json_decref(r);
	r = attach_disk(x, "fw", "d9", img, "raw");
	expect_err(r, "GenericError");
	assert_non_null(strstr(str(json_object_get(r, "error"), "desc"), "d9"));
	json_decref(r);
	assert_int_equal(nodes(x, "fw", "hpdrive."), 0);
	assert_non_null(strstr(t_daemon_log(&x->d), "rolling back"));
	assert_int_equal(hp_fdsets(x, "fw"), 0);   /* no file left open in QEMU */
	/* A duplicate id. */
	expect_ok(r = attach_disk(x, "fw", "d1", img, "raw"), "d1");   /* hotplug.0 */
	json_decref(r);
	char img2[600];
	make_image(x, "b.img", img2, sizeof(img2));
	expect_ok(r = attach_disk(x, "fw", "d2", img2, "raw"), "d2");   /* hotplug.1 */
	json_decref(r);
	expect_err_take(attach_disk(x, "fw", "d2", img2, "raw"), "InvalidArgument");
	assert_int_equal(hp_fdsets(x, "fw"), 2);   /* d1's and d2's */
	r = t_ctl_call(&x->c, "devices", json_pack("{s:s}", "name", "fw"), 5000);
	assert_int_equal(json_array_size(json_object_get(r, "return")), 3);   /* lan, d1, d2 */
	json_decref(r);
	/* The same through qsupctl. */
	char out[4096];
	const char *devs[] = { t_qsupctl(), "-s", x->d.sock, "devices", "fw", NULL };
	assert_int_equal(t_run_capture(devs, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "d2 "));
	assert_non_null(strstr(out, "hotplug"));
	const char *bad[] = { t_qsupctl(), "-s", x->d.sock, "attach", "fw", "disk", "id=d7",
	                      "file=/nonexistent.img", "format=raw", NULL };
	assert_int_equal(t_run_capture(bad, out, sizeof(out), 10000), 1);
	assert_non_null(strstr(out, "/nonexistent.img"));
	expect_err_take(t_ctl_call(&x->c, "detach", json_pack("{s:s, s:s}", "name", "fw", "id", "lan"),
	                      5000), "InvalidArgument");
	expect_err_take(t_ctl_call(&x->c, "detach", json_pack("{s:s, s:s}", "name", "fw", "id", "zz"),
	                      5000), "NotFound");
}

/* No OS answers the unplug request: pending-unplug after the timeout, and
 * nothing left once the guest stops. */
static void test_guest_never_releases(void **state)
{
	struct fx *x = *state;
	char img[600];
	t_daemon_profile(&x->d, "deaf", FW "hotplug-slots = 1\ncpus = 1\nmax-cpus = 2\n"
	                 "[shutdown]\ntimeout = 1s\n");
	start(x, "deaf");
	printf("# using %s (firmware only: nothing answers the unplug)\n", t_accel());
	/* A vCPU: under TCG qsupd refuses its unplug; under KVM it is asked
	 * for, and QEMU refuses it itself while no OS has switched its ACPI CPU
	 * hot-plug to the modern interface (firmware only here): its own error
	 * comes back. */
	json_t *c = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s}", "name", "deaf", "kind",
	                       "cpu"), 30000);
	expect_ok(c, "attach cpu");
	json_decref(c);
	bool kvm = strcmp(t_accel(), "kvm") == 0;
	c = detach(x, "deaf", "vcpu1", 1000);
	expect_err(c, kvm ? "GenericError" : "InvalidState");
	assert_true(json_is_true(json_object_get(json_object_get(c, "error"), "qemu")) == kvm);
	json_decref(c);
	make_image(x, "p.img", img, sizeof(img));
	json_t *r = attach_disk(x, "deaf", "p1", img, "raw");
	expect_ok(r, "attach");
	json_decref(r);
	expect_err_take(detach(x, "deaf", "p1", 1000), "PendingUnplug");
	r = t_ctl_call(&x->c, "devices", json_pack("{s:s}", "name", "deaf"), 5000);
	assert_string_equal(str(json_array_get(json_object_get(r, "return"), 0), "state"),
	                    "pending-unplug");
	json_decref(r);
	expect_err_take(detach(x, "deaf", "p1", 1000), "InvalidState");
	/* The queue went on; the pending device still holds the only slot. */
	char img2[600];
	make_image(x, "q.img", img2, sizeof(img2));
	r = attach_disk(x, "deaf", "p2", img2, "raw");
	expect_err(r, "InvalidState");
	assert_non_null(strstr(str(json_object_get(r, "error"), "desc"), "no free hot-plug slot"));
	json_decref(r);
	json_decref(t_ctl_do(&x->c, "stop", "deaf", 30000, NULL));
	r = t_ctl_call(&x->c, "devices", json_pack("{s:s}", "name", "deaf"), 5000);
	assert_int_equal(json_array_size(json_object_get(r, "return")), 0);
	json_decref(r);
}

static void qsupd_check(struct fx *x, const char *name, int want, const char *expect)
{
	char bin[600], prof[600], out[8192];
	const char *b = getenv("QSUP_BUILDDIR");
	snprintf(bin, sizeof(bin), "%s/qsupd", b && *b ? b : "build");
	snprintf(prof, sizeof(prof), "%s/%s.ini", x->d.profiles, name);
	const char *argv[] = { bin, "--check", prof, NULL };
	int rc = t_run_capture(argv, out, sizeof(out), 20000);
	if (rc != want || !strstr(out, expect))
		fail_msg("qsupd --check %s: exit %d (want %d), no '%s' in:\n%s", name, rc, want,
		         expect, out);
}

static int count_memdevs(struct fx *x, const char *name)
{
	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", name, "command",
	                       "query-memory-devices"), 10000);
	int n = (int)json_array_size(json_object_get(r, "return"));
	json_decref(r);
	return n;
}

static int count_cpus(struct fx *x, const char *name)
{
	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", name, "command",
	                       "query-cpus-fast"), 10000);
	int n = (int)json_array_size(json_object_get(r, "return"));
	json_decref(r);
	return n;
}

static void stop_start(struct fx *x, const char *name)
{
	json_decref(t_ctl_do(&x->c, "stop", name, 30000, NULL));
	json_t *s = t_ctl_do(&x->c, "start", name, 30000, NULL);
	if (!s)
		fail_msg("start failed:\n%s", t_daemon_log(&x->d));
	json_decref(s);
}

/* --persist: the overlay NAME.d/hotplug.ini keeps devices across stop and
 * start; without it they go; qsupd --check validates the overlay. */
static void test_persist_overlay(void **state)
{
	struct fx *x = *state;
	char img[600], img2[600], ov[700];
	t_daemon_profile(&x->d, "keep", FW "max-memory = 512M\nslots = 2\ncpus = 1\n"
	                 "max-cpus = 2\nhotplug-slots = 2\n[shutdown]\ntimeout = 1s\n");
	start(x, "keep");
	printf("# using %s (firmware only: QEMU's side of the devices)\n", t_accel());
	make_image(x, "keep.img", img, sizeof(img));
	make_image(x, "gone.img", img2, sizeof(img2));
	snprintf(ov, sizeof(ov), "%s/keep.d/hotplug.ini", x->d.profiles);
	/* read-only: the profile's spelling of the key, as attach takes it */
	json_t *r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b}",
	               "name", "keep", "kind", "disk", "id", "pd1", "file", img, "format", "raw",
	               "persist", 1, "cache", "none", "read-only", 1), 30000);
	expect_ok(r, "attach --persist");
	assert_string_equal(str(json_object_get(r, "return"), "source"), "overlay");
	json_decref(r);
	assert_int_equal(node_ro(x, "keep", "hpdrive.pd1"), 1);
	expect_ok(r = attach_disk(x, "keep", "td1", img2, "raw"), "attach (not persisted)");
	json_decref(r);
	/* memory and a vCPU through qsupctl --persist */
	char out[4096];
	const char *mem[] = { t_qsupctl(), "-s", x->d.sock, "attach", "--persist", "keep",
	                      "memory", "size=128M", NULL };
	if (t_run_capture(mem, out, sizeof(out), 20000) != 0)
		fail_msg("qsupctl attach memory: %s", out);
	const char *cpu[] = { t_qsupctl(), "-s", x->d.sock, "attach", "keep", "cpu", "--persist",
	                      NULL };
	if (t_run_capture(cpu, out, sizeof(out), 20000) != 0)
		fail_msg("qsupctl attach cpu: %s", out);
	assert_non_null(strstr(out, "vcpu1"));
	const char *text = t_file_tail(ov);
	printf("# overlay:\n%s", text);
	assert_non_null(strstr(text, "[disk.pd1]"));
	assert_non_null(strstr(text, "cache = none"));
	assert_non_null(strstr(text, "read-only = yes"));
	assert_non_null(strstr(text, "[memory.mem0]"));
	assert_non_null(strstr(text, "[cpu.vcpu1]"));
	assert_null(strstr(text, "td1"));
	qsupd_check(x, "keep", 0, "hotplug.ini: ok (3 devices)");

	stop_start(x, "keep");
	assert_int_equal(nodes(x, "keep", "hpdrive.pd1"), 1);
	assert_int_equal(node_ro(x, "keep", "hpdrive.pd1"), 1);   /* replayed read-only */
	assert_int_equal(nodes(x, "keep", "hpdrive.td1"), 0);
	assert_int_equal(count_memdevs(x, "keep"), 1);
	assert_int_equal(count_cpus(x, "keep"), 2);
	r = t_ctl_call(&x->c, "devices", json_pack("{s:s}", "name", "keep"), 5000);
	assert_int_equal(json_array_size(json_object_get(r, "return")), 3);
	json_decref(r);

	/* detach --persist: out of the overlay at once, even though the
	 * firmware never releases the device (pending-unplug). */
	expect_err_take(t_ctl_call(&x->c, "detach", json_pack("{s:s, s:s, s:b, s:i}", "name",
	                "keep", "id", "pd1", "persist", 1, "timeout", 500), 10000), "PendingUnplug");
	assert_null(strstr(t_file_tail(ov), "[disk.pd1]"));
	stop_start(x, "keep");
	assert_int_equal(nodes(x, "keep", "hpdrive."), 0);
	assert_int_equal(count_memdevs(x, "keep"), 1);

	/* A persisted disk whose file went away: its re-add fails and is
	 * logged, --check names it, the section stays until detach --persist. */
	expect_ok(r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}",
	          "name", "keep", "kind", "disk", "id", "pd2", "file", img2, "format", "raw",
	          "persist", 1), 30000), "attach pd2 --persist");
	json_decref(r);
	json_decref(t_ctl_do(&x->c, "stop", "keep", 30000, NULL));
	assert_int_equal(unlink(img2), 0);
	json_decref(t_ctl_do(&x->c, "start", "keep", 30000, NULL));
	assert_int_equal(nodes(x, "keep", "hpdrive."), 0);
	assert_int_equal(count_memdevs(x, "keep"), 1);
	assert_non_null(strstr(t_daemon_log(&x->d), "could not re-add"));
	qsupd_check(x, "keep", 1, "[disk.pd2]");
	r = t_ctl_call(&x->c, "detach", json_pack("{s:s, s:s, s:b}", "name", "keep", "id", "pd2",
	               "persist", 1), 10000);
	expect_ok(r, "detach --persist of a device that is only in the overlay");
	assert_string_equal(str(json_object_get(r, "return"), "state"), "removed from the overlay");
	json_decref(r);
	qsupd_check(x, "keep", 0, "hotplug.ini: ok (2 devices)");

	/* A broken overlay: --check says where; the guest starts with the
	 * sections that are right; qsupd will not rewrite the file. */
	FILE *f = fopen(ov, "a");
	fprintf(f, "\n[nic.n1]\ntype = user\ncolour = blue\n\n[gadget]\nx = 1\n");
	fclose(f);
	qsupd_check(x, "keep", 1, "[nic.n1] colour: not a key for a nic");
	qsupd_check(x, "keep", 1, "[gadget] sections are KIND.ID");
	stop_start(x, "keep");
	assert_int_equal(count_memdevs(x, "keep"), 1);
	assert_non_null(strstr(t_daemon_log(&x->d), "[gadget]"));
	make_image(x, "pd3.img", img2, sizeof(img2));
	r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "name", "keep",
	               "kind", "disk", "id", "pd3", "file", img2, "format", "raw", "persist", 1),
	               30000);
	expect_err(r, "InvalidState");
	assert_non_null(strstr(str(json_object_get(r, "error"), "desc"), "not persisted"));
	json_decref(r);
	assert_non_null(strstr(t_file_tail(ov), "[gadget]"));
	assert_null(strstr(t_file_tail(ov), "pd3"));
}

static json_t *status_of(struct fx *x, const char *name)
{
	json_t *s = t_ctl_do(&x->c, "status", name, 5000, NULL);
	assert_non_null(s);
	return s;
}

/* A hot-plugged disk comes back when the guest is restarted after a crash
 * or by restart; a stop drops it. */
static void test_devices_survive_restarts(void **state)
{
	struct fx *x = *state;
	char img[600];
	t_daemon_profile(&x->d, "dur", FW "[restart]\ndelay = 0\n[shutdown]\ntimeout = 1s\n");
	start(x, "dur");
	make_image(x, "dur.img", img, sizeof(img));
	json_t *r = attach_disk(x, "dur", "keep1", img, "raw");
	expect_ok(r, "attach");
	json_decref(r);
	json_t *s = status_of(x, "dur");
	pid_t pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	kill(pid, SIGKILL);
	for (int i = 0; i < 200; i++) {   /* back, with a new QEMU */
		s = status_of(x, "dur");
		bool back = strcmp(str(s, "state"), "running") == 0 &&
		            json_integer_value(json_object_get(s, "pid")) != pid;
		json_decref(s);
		if (back)
			break;
		usleep(50000);
	}
	assert_int_equal(nodes(x, "dur", "hpdrive.keep1"), 1);
	r = t_ctl_call(&x->c, "devices", json_pack("{s:s}", "name", "dur"), 5000);
	json_t *d = json_array_get(json_object_get(r, "return"), 0);
	assert_string_equal(str(d, "id"), "keep1");
	assert_string_equal(str(d, "state"), "attached");
	json_decref(r);
	assert_non_null(strstr(t_daemon_log(&x->d), "keep1 re-added on hotplug.0"));
	json_decref(t_ctl_do(&x->c, "restart", "dur", 30000, NULL));
	assert_int_equal(nodes(x, "dur", "hpdrive.keep1"), 1);
	json_decref(t_ctl_do(&x->c, "stop", "dur", 30000, NULL));
	json_decref(t_ctl_do(&x->c, "start", "dur", 30000, NULL));
	assert_int_equal(nodes(x, "dur", "hpdrive."), 0);
	r = t_ctl_call(&x->c, "devices", json_pack("{s:s}", "name", "dur"), 5000);
	assert_int_equal(json_array_size(json_object_get(r, "return")), 0);
	json_decref(r);
}

/* Attach, SIGKILL qsupd, start it again: the re-adopted guest still lists
 * the disk and detach works; a disk unplugged meanwhile is reconciled. */
static void test_devices_after_readoption(void **state)
{
	struct fx *x = *state;
	char a[600], b[600];
	start_tiny(x);
	make_image(x, "ra.img", a, sizeof(a));
	make_image(x, "rb.img", b, sizeof(b));
	json_t *r = attach_disk(x, "tiny", "ra", a, "raw");
	expect_ok(r, "attach ra");
	json_decref(r);
	r = attach_disk(x, "tiny", "rb", b, "raw");
	expect_ok(r, "attach rb");
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG add block vdb");
	usleep(300000);   /* the state file is written off the loop */
	t_ctl_close(&x->c);
	t_daemon_kill9(&x->d);
	/* While nobody supervises, rb leaves by QEMU's own hand. */
	struct t_qmp q;
	char qmp[700];
	snprintf(qmp, sizeof(qmp), "%s/tiny/qmp.sock", x->d.run);
	assert_int_equal(t_qmp_open(&x->loop, &q, qmp, 5000), 0);
	json_t *args = json_pack("{s:s}", "id", "rb");
	assert_int_equal(t_qmp_exec(&q, "device_del", args, NULL), 0);
	json_decref(args);
	size_t from = 0;
	assert_non_null(t_qmp_wait_event(&q, "DEVICE_DELETED", &from, 10000));
	t_qmp_close(&q);
	if (t_daemon_start(&x->d, NULL) < 0)
		fail_msg("qsupd did not start again:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
	for (int i = 0; i < 100; i++) {
		json_t *s = t_ctl_do(&x->c, "status", "tiny", 5000, NULL);
		bool up = strcmp(str(s, "state"), "running") == 0;
		json_decref(s);
		if (up)
			break;
		usleep(50000);
	}
	usleep(300000);   /* reconciliation runs right after re-adoption */
	r = t_ctl_call(&x->c, "devices", json_pack("{s:s}", "name", "tiny"), 5000);
	json_t *list = json_object_get(r, "return");
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(str(json_array_get(list, 0), "id"), "ra");
	json_decref(r);
	assert_int_equal(nodes(x, "tiny", "hpdrive.rb"), 0);
	assert_int_equal(hp_fdsets(x, "tiny"), 1);   /* ra's; rb's went with its node */
	/* A disk attached now gets fd sets of its own, not one of ra's. */
	char img[600];
	make_image(x, "rc.img", img, sizeof(img));
	expect_ok(r = attach_disk(x, "tiny", "rc", img, "raw"), "attach after re-adoption");
	json_decref(r);
	assert_int_equal(hp_fdsets(x, "tiny"), 2);
	r = detach(x, "tiny", "ra", 0);
	expect_ok(r, "detach after re-adoption");
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG remove block vda");
	assert_int_equal(hp_fdsets(x, "tiny"), 1);   /* rc's */
}

/* ---- bridge NICs, in a network namespace of the test's own ---- */

#define BR "qsupbr0"

static json_t *attach_bridge(struct fx *x, const char *id, const char *bridge)
{
	return t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "tiny",
	                  "kind", "nic", "id", id, "type", "bridge", "bridge", bridge), 30000);
}

/* The tap named in a device's backend ("bridge BR, tap NAME"). */
static void tap_of(json_t *dev, char *tap, size_t size)
{
	const char *b = json_string_value(json_object_get(dev, "backend"));
	const char *t = b ? strstr(b, "tap ") : NULL;
	assert_non_null(t);
	snprintf(tap, size, "%s", t + 4);
}

static bool gone_within(const char *ifname, int ms)
{
	for (int i = 0; i < ms / 20; i++) {
		if (!t_if_exists(ifname))
			return true;
		usleep(20000);
	}
	return false;
}

static void test_bridge_nic(void **state)
{
	struct fx *x = *state;
	if (t_netns_skip[0]) {
		printf("# skip: %s\n", t_netns_skip);
		skip();
	}
	t_bridge_add(BR);
	t_daemon_tiny_profile(&x->d, "tiny", "[restart]\ndelay = 0\n");
	if (t_daemon_start(&x->d, NULL) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
	json_t *r = t_ctl_do(&x->c, "start", "tiny", 60000, NULL);
	if (!r)
		fail_msg("start failed:\n%s", t_daemon_log(&x->d));
	json_decref(r);
	t_loop_finish(&x->loop);   /* t_ctl_console() sets it up afresh */
	assert_int_equal(t_ctl_console(&x->c, "tiny", &x->loop, &x->ser), 0);
	console_shows(x, "QSUP-GUEST-READY");
	printf("# using tcg (the guest must see the NIC)\n");

	/* Clear errors first: no such bridge, not a bridge. */
	r = attach_bridge(x, "nb1", "nobr0");
	assert_string_equal(t_str(json_object_get(r, "error"), "class"), "NotFound");
	printf("# note: %s\n", t_str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	r = attach_bridge(x, "nb1", "lo");
	assert_string_equal(t_str(json_object_get(r, "error"), "class"), "NotFound");
	printf("# note: %s\n", t_str(json_object_get(r, "error"), "desc"));
	json_decref(r);

	char tap[32];
	r = attach_bridge(x, "br1", BR);
	if (!json_object_get(r, "return"))
		fail_msg("attach: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->d));
	tap_of(json_object_get(r, "return"), tap, sizeof(tap));
	json_decref(r);
	printf("# note: tap %s on %s\n", tap, t_if_master(tap));
	assert_string_equal(t_if_master(tap), BR);
	console_shows(x, "QSUP-HOTPLUG add net eth0");

	/* A crash-restart: the NIC comes back, on a new tap on the bridge;
	 * the old tap went with the old QEMU. */
	json_t *s = t_ctl_do(&x->c, "status", "tiny", 5000, NULL);
	pid_t pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	kill(pid, SIGKILL);
	for (int i = 0; i < 400; i++) {
		s = t_ctl_do(&x->c, "status", "tiny", 5000, NULL);
		bool back = !strcmp(t_str(s, "state"), "running") &&
		            json_integer_value(json_object_get(s, "pid")) != pid;
		json_decref(s);
		if (back)
			break;
		usleep(50000);
	}
	assert_true(gone_within(tap, 5000) || strcmp(t_if_master(tap), BR) == 0);
	r = t_ctl_call(&x->c, "devices", json_pack("{s:s}", "name", "tiny"), 5000);
	json_t *d = json_array_get(json_object_get(r, "return"), 0);
	assert_string_equal(t_str(d, "id"), "br1");
	tap_of(d, tap, sizeof(tap));
	json_decref(r);
	assert_string_equal(t_if_master(tap), BR);
	printf("# note: after the restart: tap %s on %s\n", tap, t_if_master(tap));

	/* The new guest boots with it; detach, and the tap is gone. */
	t_serial_close(&x->ser);
	t_loop_finish(&x->loop);
	x->seen = 0;
	assert_int_equal(t_ctl_console(&x->c, "tiny", &x->loop, &x->ser), 0);
	/* READY may have gone by before the console was open: ping instead. */
	bool pong = false;
	for (int i = 0; i < 60 && !pong; i++) {
		assert_int_equal(t_serial_write(&x->ser, "ping"), 0);
		pong = t_serial_wait(&x->ser, "QSUP-PONG", &x->seen, 1000) == 0;
	}
	if (!pong)
		fail_msg("the restarted guest does not answer:\n%s", x->ser.buf ? x->ser.buf : "");
	r = t_ctl_call(&x->c, "detach", json_pack("{s:s, s:s}", "name", "tiny", "id", "br1"),
	               30000);
	if (!json_object_get(r, "return"))
		fail_msg("detach: %s", json_dumps(r, 0));
	json_decref(r);
	console_shows(x, "QSUP-HOTPLUG remove net eth0");
	assert_true(gone_within(tap, 5000));
	t_bridge_del(BR);
}


/* Bridge and tap NICs in the profile: qsupd makes the taps at start and
 * hands them over (QEMU runs unprivileged, with spawn denied); a tap NIC
 * hot-plugged the same way. */
static void test_taps_at_start(void **state)
{
	struct fx *x = *state;
	if (t_netns_skip[0]) {
		printf("# skip: %s\n", t_netns_skip);
		skip();
	}
	t_bridge_add(BR);
	t_daemon_tiny_profile(&x->d, "tiny", "[nic.b]\ntype = bridge\nbridge = " BR "\n"
	                      "[nic.t]\ntype = tap\nifname = qtap0\n");
	if (t_daemon_start(&x->d, NULL) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
	json_t *r = t_ctl_do(&x->c, "start", "tiny", 60000, NULL);
	if (!r)
		fail_msg("start failed:\n%s", t_daemon_log(&x->d));
	assert_true(json_integer_value(json_object_get(r, "uid")) > 0);
	json_decref(r);
	printf("# using tcg (the guest must see the NIC)\n");
	const char *log = t_daemon_log(&x->d), *at = strstr(log, "nic b: tap ");
	char tap[32];
	assert_non_null(at);
	sscanf(at + strlen("nic b: tap "), "%31s", tap);
	printf("# note: nic b: tap %s on %s; nic t: qtap0 %s\n", tap, t_if_master(tap),
	       t_if_exists("qtap0") ? "exists" : "missing");
	assert_string_equal(t_if_master(tap), BR);
	assert_true(t_if_exists("qtap0"));
	t_loop_finish(&x->loop);
	assert_int_equal(t_ctl_console(&x->c, "tiny", &x->loop, &x->ser), 0);
	console_shows(x, "QSUP-GUEST-READY");
	/* ifname: the profile's spelling (test-contain uses the old tap=) */
	r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "tiny",
	               "kind", "nic", "id", "t2", "type", "tap", "ifname", "qtap1"), 30000);
	if (!json_object_get(r, "return"))
		fail_msg("attach tap: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->d));
	json_decref(r);
	assert_true(t_if_exists("qtap1"));
	console_shows(x, "QSUP-HOTPLUG add net");
	json_decref(t_ctl_do(&x->c, "kill", "tiny", 10000, NULL));
	/* qsupd made them; they went with QEMU's fds. */
	assert_true(gone_within(tap, 5000));
	assert_true(gone_within("qtap0", 5000));
	assert_true(gone_within("qtap1", 5000));
	t_bridge_del(BR);
}

int main(void)
{
	t_netns_enter();   /* first, while the process has one thread */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_disk_and_nic_in_the_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cpu_and_memory_in_the_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scsi_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failures_leave_nothing_behind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_options_as_opened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_opened_where_it_cannot_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_never_releases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_devices_survive_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist_overlay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_devices_after_readoption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bridge_nic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_taps_at_start, setup, teardown),
	};
	return cmocka_run_group_tests_name("hotplug", tests, NULL, NULL);
}
