/*
 * The NIC counters of the stats (metrics.h): a tiny guest (TCG) with a
 * bridge NIC, inside a network and mount namespace of the test's own
 * (t_netns_enter), so the bridge and its tap exist only there. The guest
 * sends 2 MiB to a TCP listener on the bridge's address: its NIC's
 * transmit counters (the tap's receive) grow by as much, in the stats verb
 * and in the Prometheus text, under the NIC's id. A second NIC of type tap
 * is found by its ifname, and one hot-plugged on the bridge by its MAC.
 * Needs root; skipped otherwise.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "netns.h"
#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define str t_str
#define BR "qsupm0"
#define HOST_IP "10.77.0.1"
#define PORT 5599

static json_t *nic_of(json_t *stats, const char *guest, const char *nic)
{
	json_t *g, *n;
	size_t i, k;
	json_array_foreach(stats, i, g)
		if (!strcmp(str(g, "name"), guest))
			json_array_foreach(json_object_get(g, "nics"), k, n)
				if (!strcmp(str(n, "id"), nic))
					return n;
	return NULL;
}

static json_t *stats(struct t_fx *x)
{
	json_t *r = t_ctl_call(&x->c, "stats", NULL, 30000);
	json_t *ret = json_incref(json_object_get(r, "return"));
	assert_non_null(ret);
	json_decref(r);
	return ret;
}

/* A child that accepts one connection on HOST_IP:PORT and reads it to the
 * end. */
static pid_t drain(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	inet_pton(AF_INET, HOST_IP, &a.sin_addr);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 1), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(120);
		int c = accept(s, NULL, NULL);
		char buf[65536];
		while (c >= 0 && read(c, buf, sizeof(buf)) > 0)
			;
		_exit(0);
	}
	close(s);
	return pid;
}

static void test_nic_counters(void **state)
{
	struct t_fx *x = *state;
	if (t_netns_skip[0]) {
		printf("# skip: %s\n", t_netns_skip);
		skip();
	}
	t_bridge_add(BR);
	const char *argv[] = { "/sbin/ip", "addr", "add", HOST_IP "/24", "dev", BR, NULL };
	char out[4096];
	if (t_run_capture(argv, out, sizeof(out), 10000) != 0)
		fail_msg("ip addr add: %s", out);
	char path[600], text[4096];
	snprintf(path, sizeof(path), "%s/cmdline", t_guestdir());
	const char *cmdline = t_read_line(path);
	snprintf(text, sizeof(text), "[guest]\nmemory = 256M\naccel = tcg\nkernel = %s/vmlinux\n"
	         "initrd = %s/initramfs.cpio.gz\nappend = %s qsup.ip=10.77.0.2/24\n"
	         "[nic.lan]\ntype = bridge\nbridge = " BR "\n"
	         "[nic.side]\ntype = tap\nifname = qsupmt0\n[restart]\npolicy = never\n",
	         t_guestdir(), t_guestdir(), cmdline ? cmdline : "console=ttyS0");
	t_daemon_profile(&x->d, "n1", text);
	const char *opts[] = { "--stats-interval", "1", NULL };
	t_fx_up(x, opts);
	json_decref(t_fx_must(x, "start", "n1", 120000));
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen = 0;
	assert_int_equal(t_ctl_console(&x->c, "n1", &loop, &ser), 0);
	if (t_serial_wait(&ser, "QSUP-GUEST-READY", &seen, 120000) < 0)
		fail_msg("no ready marker:\n%s", ser.buf ? ser.buf : "");
	if (!memmem(ser.buf, seen, "netsend", 7)) {
		printf("# skip: the tiny guest in %s has no netsend command: rebuild it\n",
		       t_guestdir());
		skip();
	}
	json_t *st = stats(x);
	json_t *n = nic_of(st, "n1", "lan");
	if (!n)
		fail_msg("no NIC lan in the stats: %s", json_dumps(st, 0));
	char tap[32];
	snprintf(tap, sizeof(tap), "%s", str(n, "tap"));
	printf("# note: NIC lan on tap %s\n", tap);
	assert_true(strlen(tap) > 0);
	assert_string_not_equal(tap, BR);   /* the bridge has the tap's MAC too */
	/* a tap NIC (type = tap): its own interface, by name */
	json_t *side = nic_of(st, "n1", "side");
	assert_non_null(side);
	assert_string_equal(str(side, "tap"), "qsupmt0");
	assert_true(json_is_number(json_object_get(side, "rx_packets")));
	double tx0 = json_number_value(json_object_get(n, "tx_bytes"));
	double txp0 = json_number_value(json_object_get(n, "tx_packets"));
	json_decref(st);

	pid_t child = drain();
	assert_int_equal(t_serial_write(&ser, "netsend " HOST_IP " 5599 2"), 0);
	if (t_serial_wait(&ser, "QSUP-NETSEND ok", &seen, 120000) < 0)
		fail_msg("netsend failed:\n%s", ser.buf ? ser.buf : "");
	waitpid(child, NULL, 0);
	st = stats(x);
	n = nic_of(st, "n1", "lan");
	assert_non_null(n);
	double tx1 = json_number_value(json_object_get(n, "tx_bytes"));
	double txp1 = json_number_value(json_object_get(n, "tx_packets"));
	double rx1 = json_number_value(json_object_get(n, "rx_bytes"));
	printf("# note: the guest sent %.0f bytes in %.0f packets, received %.0f bytes\n",
	       tx1 - tx0, txp1 - txp0, rx1);
	assert_true(tx1 - tx0 >= 2 * 1048576.0);
	assert_true(txp1 - txp0 >= 2 * 1048576.0 / 65536);
	assert_true(rx1 > 0);   /* the TCP acknowledgements */
	json_decref(st);

	/* a NIC hot-plugged on the bridge: its tap is found too */
	json_t *r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name",
	                       "n1", "kind", "nic", "id", "hp1", "type", "bridge", "bridge", BR),
	                       60000);
	if (!json_object_get(r, "return"))
		fail_msg("attach: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->d));
	json_decref(r);
	st = stats(x);
	n = nic_of(st, "n1", "hp1");
	if (!n)
		fail_msg("no hot-plugged NIC in the stats: %s", json_dumps(st, 0));
	printf("# note: hot-plugged NIC hp1 on tap %s\n", str(n, "tap"));
	assert_string_not_equal(str(n, "tap"), BR);
	assert_string_not_equal(str(n, "tap"), tap);
	json_decref(st);
	/* and one hot-plugged on a tap of the operator's (type tap), by name */
	r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "n1",
	               "kind", "nic", "id", "hp2", "type", "tap", "ifname", "qsupmt1"), 60000);
	if (!json_object_get(r, "return"))
		fail_msg("attach: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->d));
	json_decref(r);
	st = stats(x);
	n = nic_of(st, "n1", "hp2");
	if (!n)
		fail_msg("no hot-plugged tap NIC in the stats: %s", json_dumps(st, 0));
	assert_string_equal(str(n, "tap"), "qsupmt1");
	assert_true(json_is_number(json_object_get(n, "tx_packets")));
	json_decref(st);

	r = t_ctl_call(&x->c, "metrics", NULL, 30000);
	const char *m = str(json_object_get(r, "return"), "text");
	const char *line = strstr(m, "qsup_guest_nic_transmit_bytes_total{guest=\"n1\",nic=\"lan\"} ");
	assert_non_null(line);
	assert_true(strtod(strchr(line, '}') + 2, NULL) >= tx1);
	json_decref(r);
	t_serial_close(&ser);
	t_loop_finish(&loop);
	json_decref(t_fx_must(x, "kill", "n1", 30000));
	t_bridge_del(BR);
}

int main(void)
{
	t_netns_enter();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_nic_counters, t_fx_setup, t_fx_teardown),
	};
	return cmocka_run_group_tests_name("metrics-net", tests, NULL, NULL);
}
