/*
 * disk-resize, for real: the tiny guest (TCG) with a 16 MiB raw disk and a
 * 16 MiB qcow2 one. Live: block_resize grows each, and the guest's
 * /sys/block/vdX/size (the init's blocksize command) shows the new size at
 * once. Stopped: qemu-img resize grows the image, the next boot sees it.
 * Shrinking, CD-ROMs, unknown disks and odd sizes are refused, and the
 * image files keep their size then.
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
#include <uv.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

struct fx {
	struct t_fx *tp;
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen;
	bool console;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	void *inner;
	assert_non_null(x);
	t_fx_setup(&inner);
	x->tp = inner;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	if (x->console) {
		t_serial_close(&x->ser);
		t_loop_finish(&x->loop);
	}
	void *p = x->tp;
	free(x);
	return t_fx_teardown(&p);
}

/* The guest's view of /dev/dev: its size in 512-byte sectors. */
static long long guest_sectors(struct fx *x, const char *dev)
{
	char cmd[64], want[64];
	snprintf(cmd, sizeof(cmd), "blocksize %s", dev);
	snprintf(want, sizeof(want), "QSUP-BLOCKSIZE %s ", dev);
	size_t from = x->ser.len;
	assert_int_equal(t_serial_write(&x->ser, cmd), 0);
	if (t_serial_wait(&x->ser, want, &from, 30000) < 0)
		fail_msg("no answer to %s:\n%s", cmd, x->ser.buf ? x->ser.buf : "");
	/* from is past the match: the number follows, once its line is in */
	size_t nl = from;
	if (t_serial_wait(&x->ser, "\n", &nl, 10000) < 0)
		fail_msg("no end of line");
	return atoll(x->ser.buf + from);
}

static void boot(struct fx *x)
{
	json_decref(t_fx_must(x->tp, "start", "rs", 120000));
	if (x->console) {
		t_serial_close(&x->ser);
		t_loop_finish(&x->loop);
	}
	assert_int_equal(t_ctl_console(&x->tp->c, "rs", &x->loop, &x->ser), 0);
	x->console = true;
	x->seen = 0;
	if (t_serial_wait(&x->ser, "QSUP-GUEST-READY", &x->seen, 120000) < 0)
		fail_msg("no ready marker:\n%s", x->ser.buf ? x->ser.buf : "");
}

static json_t *resize(struct fx *x, const char *id, json_t *size)
{
	json_t *r = t_ctl_call(&x->tp->c, "disk-resize", json_pack("{s:s, s:s, s:o}", "name", "rs",
	                       "id", id, "size", size), 120000);
	if (!r)
		fail_msg("disk-resize: no reply:\n%s", t_daemon_log(&x->tp->d));
	return r;
}

static const char *err_class(json_t *r)
{
	return t_str(json_object_get(r, "error"), "class");
}

static long long file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (long long)st.st_size;
}

/* qemu-img info's virtual size of path. */
static long long virtual_size(const char *path)
{
	char out[16384];
	const char *argv[] = { "/usr/bin/qemu-img", "info", "--output=json", path, NULL };
	assert_int_equal(t_run_capture(argv, out, sizeof(out), 30000), 0);
	json_t *j = json_loads(out, 0, NULL);
	long long v = (long long)json_integer_value(json_object_get(j, "virtual-size"));
	json_decref(j);
	return v;
}

static void test_resize_live_and_offline(void **state)
{
	struct fx *x = *state;
	char raw[600], q2[600], more[2400];
	snprintf(raw, sizeof(raw), "%s/raw.img", x->tp->d.dir);
	snprintf(q2, sizeof(q2), "%s/q2.qcow2", x->tp->d.dir);
	int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 << 20), 0);
	close(fd);
	char out[4096];
	const char *mk[] = { "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", q2, "16M", NULL };
	assert_int_equal(t_run_capture(mk, out, sizeof(out), 30000), 0);
	snprintf(more, sizeof(more), "[disk.a]\nfile = %s\nformat = raw\n[disk.b]\nfile = %s\n"
	         "format = qcow2\n[cdrom.cd]\n", raw, q2);
	t_daemon_tiny_profile(&x->tp->d, "rs", more);
	t_fx_up(x->tp, NULL);
	boot(x);
	assert_int_equal(guest_sectors(x, "vda"), 32768);
	assert_int_equal(guest_sectors(x, "vdb"), 32768);

	/* Live: both grow, the guest sees it. */
	json_t *r = resize(x, "a", json_string("32M"));
	if (!json_object_get(r, "return"))
		fail_msg("resize a: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->tp->d));
	json_t *ret = json_object_get(r, "return");
	assert_true(json_is_true(json_object_get(ret, "live")));
	assert_int_equal(json_integer_value(json_object_get(ret, "old_size")), 16 << 20);
	assert_int_equal(json_integer_value(json_object_get(ret, "size")), 32 << 20);
	assert_string_equal(t_str(ret, "file"), raw);
	json_decref(r);
	r = resize(x, "b", json_integer(48 << 20));
	assert_non_null(json_object_get(r, "return"));
	json_decref(r);
	assert_int_equal(guest_sectors(x, "vda"), 65536);
	assert_int_equal(guest_sectors(x, "vdb"), 98304);
	assert_int_equal(file_size(raw), 32 << 20);

	/* Refusals, live: shrinking, a CD-ROM, no such disk, odd sizes. */
	r = resize(x, "a", json_string("16M"));
	assert_string_equal(err_class(r), "InvalidArgument");
	assert_non_null(strstr(t_str(json_object_get(r, "error"), "desc"), "shrinking"));
	json_decref(r);
	r = resize(x, "cd", json_string("1G"));
	assert_string_equal(err_class(r), "NotFound");
	json_decref(r);
	r = resize(x, "nope", json_string("1G"));
	assert_string_equal(err_class(r), "NotFound");
	json_decref(r);
	r = resize(x, "a", json_integer(40000001));
	assert_string_equal(err_class(r), "InvalidArgument");
	json_decref(r);
	r = resize(x, "a", json_string("lots"));
	assert_string_equal(err_class(r), "InvalidArgument");
	json_decref(r);
	/* The same size: nothing to do. */
	r = resize(x, "a", json_string("32M"));
	assert_false(json_is_true(json_object_get(json_object_get(r, "return"), "changed")));
	json_decref(r);
	assert_int_equal(guest_sectors(x, "vda"), 65536);

	/* Stopped: qemu-img grows the images; the next boot sees them. */
	json_decref(t_fx_must(x->tp, "stop", "rs", 120000));
	r = resize(x, "a", json_string("64M"));
	if (!json_object_get(r, "return"))
		fail_msg("offline resize: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->tp->d));
	assert_false(json_is_true(json_object_get(json_object_get(r, "return"), "live")));
	json_decref(r);
	r = resize(x, "b", json_string("20M"));   /* it is 48M now */
	assert_string_equal(err_class(r), "InvalidArgument");
	json_decref(r);
	assert_int_equal(virtual_size(q2), 48 << 20);
	/* qsupctl's words */
	const char *cli[] = { t_qsupctl(), "-s", x->tp->d.sock, "disk-resize", "rs", "b", "64M",
	                      NULL };
	assert_int_equal(t_run_capture(cli, out, sizeof(out), 60000), 0);
	assert_non_null(strstr(out, "grown from 50331648 to 67108864 bytes"));
	assert_int_equal(virtual_size(raw), 64 << 20);
	assert_int_equal(virtual_size(q2), 64 << 20);
	const char *shrink[] = { t_qsupctl(), "-s", x->tp->d.sock, "disk-resize", "rs", "a", "1M",
	                         NULL };
	assert_int_not_equal(t_run_capture(shrink, out, sizeof(out), 60000), 0);
	assert_non_null(strstr(out, "shrinking"));
	boot(x);
	assert_int_equal(guest_sectors(x, "vda"), 131072);
	assert_int_equal(guest_sectors(x, "vdb"), 131072);
	json_decref(t_fx_must(x->tp, "stop", "rs", 120000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resize_live_and_offline, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
