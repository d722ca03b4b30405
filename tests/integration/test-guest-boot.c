/*
 * The tiny test guest (tests/guest/) booted for real under TCG, driven over
 * libqmp: the ready marker, ACPI power-off through system_powerdown, the
 * hot-plug markers, and a panic on demand seen by QMP through pvpanic.
 * TCG because a guest kernel needs it on hosts whose KVM cannot boot Linux;
 * the guest boots in 2 to 6 s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "qmp.h"
#include "testutil.h"

#define BOOT_MS 60000

struct fx {
	uv_loop_t loop;
	struct t_qemu q;
	struct t_qmp t;
	struct t_serial s;
	size_t seen;     /* serial offset already matched */
	size_t ev;       /* event index already matched */
	char dir[256];
};

static char kernel[512], initrd[512], append[1024];

static int group_setup(void **state)
{
	(void)state;
	const char *g = t_guestdir();
	snprintf(kernel, sizeof(kernel), "%s/vmlinux", g);
	snprintf(initrd, sizeof(initrd), "%s/initramfs.cpio.gz", g);
	char path[512];
	snprintf(path, sizeof(path), "%s/cmdline", g);
	const char *cmdline = t_read_line(path);
	if (!cmdline || access(kernel, R_OK) || access(initrd, R_OK)) {
		fprintf(stderr, "test guest missing in %s: run sh tests/guest/build.sh %s\n", g, g);
		return -1;
	}
	snprintf(append, sizeof(append), "%s", cmdline);
	printf("# using tcg (a guest kernel: KVM is not assumed to boot Linux)\n");
	return 0;
}

/* Boot with -S, attach QMP and the serial console, then cont, and wait for
 * the ready marker. extra_append is added to the kernel command line. */
static void boot(struct fx *x, const char *extra_append)
{
	char app[1200];
	snprintf(app, sizeof(app), "%s%s%s", append, extra_append ? " " : "",
	         extra_append ? extra_append : "");
	const char *extra[] = {
		"-S", "-accel", "tcg", "-M", "q35", "-m", "256",
		"-kernel", kernel, "-initrd", initrd, "-append", app,
		"-device", "pvpanic",
		"-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1",
		"-device", "pcie-root-port,id=rp2,bus=pcie.0,chassis=2",
		NULL,
	};
	uv_loop_init(&x->loop);
	if (t_qemu_spawn(&x->loop, &x->q, extra) < 0)
		fail_msg("cannot spawn qemu-system-x86_64");
	int rc = t_qmp_open(&x->loop, &x->t, x->q.qmp_path, 10000);
	if (rc < 0)
		fail_msg("QMP: %s; QEMU said: %s", qmp_strerror(rc), t_qemu_stderr(&x->q));
	assert_int_equal(t_serial_open(&x->loop, &x->s, x->q.serial_path, 5000), 0);
	double t0 = t_now();
	assert_int_equal(t_qmp_exec(&x->t, "cont", NULL, NULL), 0);
	if (t_serial_wait(&x->s, "QSUP-GUEST-READY", &x->seen, BOOT_MS) < 0)
		fail_msg("no ready marker; console:\n%s", x->s.buf ? x->s.buf : "(nothing)");
	printf("# note: guest ready %.2f s after cont\n", t_now() - t0);
}

static int setup(void **state)
{
	*state = calloc(1, sizeof(struct fx));
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	t_serial_close(&x->s);
	t_qmp_close(&x->t);
	t_qemu_reap(&x->loop, &x->q, 0);
	assert_int_equal(t_loop_finish(&x->loop), 0);
	free(x);
	return 0;
}

static void test_boot_and_acpi_powerdown(void **state)
{
	struct fx *x = *state;
	boot(x, NULL);
	double t0 = t_now();
	assert_int_equal(t_qmp_exec(&x->t, "system_powerdown", NULL, NULL), 0);
	json_t *d = t_qmp_wait_event(&x->t, "SHUTDOWN", &x->ev, 30000);
	if (!d)
		fail_msg("no SHUTDOWN after system_powerdown; console:\n%s", x->s.buf);
	assert_true(json_is_true(json_object_get(d, "guest")));
	assert_string_equal(json_string_value(json_object_get(d, "reason")), "guest-shutdown");
	assert_int_equal(t_run_until_flag(&x->loop, &x->q.exited, 10000), 0);
	assert_int_equal(x->q.exit_status, 0);
	assert_int_equal(x->q.term_signal, 0);
	assert_int_equal(t_run_until_flag(&x->loop, &x->t.closed, 5000), 0);
	assert_int_equal(x->t.closed_status, UV_EOF);
	printf("# note: powered off %.2f s after system_powerdown\n", t_now() - t0);
}

static void exec_ok(struct fx *x, const char *cmd, const char *json_args)
{
	json_t *args = json_loads(json_args, 0, NULL);
	json_t *err = NULL;
	assert_non_null(args);
	int rc = t_qmp_exec(&x->t, cmd, args, &err);
	json_decref(args);
	if (rc != 0)
		fail_msg("%s: %s %s", cmd, qmp_strerror(rc),
		         json_string_value(json_object_get(err, "desc")));
	json_decref(err);
}

/* A virtio disk and NIC plugged into pcie-root-ports: the guest prints a
 * marker for each arrival and departure, and QEMU confirms the unplug. */
static void test_hotplug_markers(void **state)
{
	struct fx *x = *state;
	boot(x, NULL);
	exec_ok(x, "blockdev-add", "{\"driver\": \"null-co\", \"node-name\": \"hp0\", \"size\": 1048576}");
	exec_ok(x, "device_add", "{\"driver\": \"virtio-blk-pci\", \"id\": \"disk1\", \"drive\": \"hp0\", \"bus\": \"rp1\"}");
	if (t_serial_wait(&x->s, "QSUP-HOTPLUG add block vda", &x->seen, 30000) < 0)
		fail_msg("no disk add marker; console:\n%s", x->s.buf);
	exec_ok(x, "device_del", "{\"id\": \"disk1\"}");
	assert_non_null(t_qmp_wait_event(&x->t, "DEVICE_DELETED", &x->ev, 30000));
	if (t_serial_wait(&x->s, "QSUP-HOTPLUG remove block vda", &x->seen, 30000) < 0)
		fail_msg("no disk remove marker; console:\n%s", x->s.buf);

	exec_ok(x, "netdev_add", "{\"type\": \"user\", \"id\": \"hn0\"}");
	exec_ok(x, "device_add", "{\"driver\": \"virtio-net-pci\", \"id\": \"nic1\", \"netdev\": \"hn0\", \"bus\": \"rp2\"}");
	if (t_serial_wait(&x->s, "QSUP-HOTPLUG add net eth0", &x->seen, 30000) < 0)
		fail_msg("no NIC add marker; console:\n%s", x->s.buf);
	exec_ok(x, "device_del", "{\"id\": \"nic1\"}");
	if (t_serial_wait(&x->s, "QSUP-HOTPLUG remove net eth0", &x->seen, 30000) < 0)
		fail_msg("no NIC remove marker; console:\n%s", x->s.buf);
}

/* The serial command "panic" makes the kernel panic; pvpanic turns that
 * into GUEST_PANICKED, which is how qsupd will tell a panic from a crash. */
static void test_panic_on_demand(void **state)
{
	struct fx *x = *state;
	boot(x, NULL);
	assert_int_equal(t_serial_write(&x->s, "panic"), 0);
	json_t *d = t_qmp_wait_event(&x->t, "GUEST_PANICKED", &x->ev, 30000);
	if (!d)
		fail_msg("no GUEST_PANICKED; console:\n%s", x->s.buf);
	printf("# note: GUEST_PANICKED action=%s\n",
	       json_string_value(json_object_get(d, "action")));
}

/* The same from the kernel command line flag qsup.panic. */
static void test_panic_flag(void **state)
{
	struct fx *x = *state;
	boot(x, "qsup.panic");
	assert_non_null(t_qmp_wait_event(&x->t, "GUEST_PANICKED", &x->ev, 30000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_boot_and_acpi_powerdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hotplug_markers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_panic_on_demand, setup, teardown),
		cmocka_unit_test_setup_teardown(test_panic_flag, setup, teardown),
	};
	return cmocka_run_group_tests_name("guest-boot", tests, group_setup, NULL);
}
