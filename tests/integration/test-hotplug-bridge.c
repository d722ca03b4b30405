/*
 * Bridge NIC hot-plug through the real daemon, in a private network
 * namespace with a bridge of its own (the host's network is never
 * touched): qsupd makes the tap, puts it on the bridge and passes it to
 * QEMU, whose sandbox forbids spawning qemu-bridge-helper. The tiny guest
 * (TCG) sees the NIC come and go; the tap leaves the bridge with it, and a
 * crash-restart brings the NIC back on a new tap.
 */
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

#define BR "qsupbr0"

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
	assert_int_equal(t_daemon_finish(&x->d), 0);
	free(x);
	return 0;
}

static void console_shows(struct fx *x, const char *marker)
{
	if (t_serial_wait(&x->ser, marker, &x->seen, 30000) < 0)
		fail_msg("console never showed '%s':\n%s", marker, x->ser.buf ? x->ser.buf : "");
}

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

int main(void)
{
	t_netns_enter();   /* first: the process has one thread */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bridge_nic, setup, teardown),
	};
	return cmocka_run_group_tests_name("hotplug-bridge", tests, NULL, NULL);
}
