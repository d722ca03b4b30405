/*
 * Managed networks (netmgr.h) against a real qsupd, real QEMU (the tiny
 * guest under TCG), real dnsmasq and nftables: all inside a network and
 * mount namespace of the test's own (t_netns_enter), so the bridges, the
 * tables and dnsmasq exist only there, and no packet leaves the machine.
 * The "uplink" is a veth pair into a second namespace (ip netns), with an
 * address there that guests of a NAT network reach and guests of an
 * isolated one do not. Needs root, dnsmasq and nft; skipped otherwise.
 */
#include <errno.h>
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

static char upns[32];    /* the uplink's namespace: qsupt-up-PID */
static void uplink_del(void);
#define FAR "10.88.0.2"         /* the address behind the uplink */

struct tguest {
	const char *name;
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen;
	bool open;
	char ip[16];
};

struct fx {
	struct t_daemon d;
	struct t_ctl c;
	char netdir[600];
	struct tguest g[2];
};

static void need_tools(void)
{
	if (t_netns_skip[0]) {
		printf("# skip: %s\n", t_netns_skip);
		skip();
	}
	if (access("/usr/sbin/dnsmasq", X_OK) < 0 || access("/usr/sbin/nft", X_OK) < 0) {
		printf("# skip: needs /usr/sbin/dnsmasq (dnsmasq-base) and /usr/sbin/nft\n");
		skip();
	}
}

/* A shell command in this namespace (ip, nft): its exit status. */
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* The output of a shell command, in a static buffer. */
static const char *out_of(const char *cmd)
{
	static char buf[16384];
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	buf[0] = '\0';
	t_run_capture(argv, buf, sizeof(buf), 20000);
	return buf;
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	x->c.fd = -1;
	assert_int_equal(t_daemon_init(&x->d), 0);
	snprintf(x->netdir, sizeof(x->netdir), "%s/networks", x->d.dir);
	assert_int_equal(sh("mkdir -p %s", x->netdir), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	for (int i = 0; i < 2; i++)
		if (x->g[i].open) {
			t_serial_close(&x->g[i].ser);
			t_loop_finish(&x->g[i].loop);
		}
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	int status = t_daemon_finish(&x->d);
	/* what a test left behind: dnsmasq of its run dir, bridges, tables */
	sh("pkill -f -- '--dhcp-leasefile=%s/' >/dev/null 2>&1", x->d.run);
	sh("for t in $(nft list tables 2>/dev/null | awk '{print $3}'); do "
	   "nft delete table ip $t; done >/dev/null 2>&1");
	sh("for b in qsup-default qsup-iso; do ip link del $b; done >/dev/null 2>&1");
	uplink_del();
	free(x);
	assert_int_equal(status, 0);
	return 0;
}

static void net_file(struct fx *x, const char *name, const char *text)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s.ini", x->netdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void daemon_up(struct fx *x)
{
	const char *extra[] = { "--networks", x->netdir, NULL };
	if (t_daemon_start(&x->d, extra) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
}

/* The uplink: veth up0 here (10.88.0.1/24), its peer in namespace UPNS
 * with FAR and a route back to nowhere but us. */
static void uplink(void)
{
	snprintf(upns, sizeof(upns), "qsupt-up-%d", (int)getpid());
	sh("ip netns del %s >/dev/null 2>&1", upns);
	assert_int_equal(sh("ip netns add %s", upns), 0);
	assert_int_equal(sh("ip link add up0 type veth peer name up1 && "
	                    "ip link set up1 netns %s && "
	                    "ip addr add 10.88.0.1/24 dev up0 && ip link set up0 up && "
	                    "ip netns exec %s ip addr add " FAR "/24 dev up1 && "
	                    "ip netns exec %s ip link set up1 up && "
	                    "ip netns exec %s ip link set lo up", upns, upns, upns, upns), 0);
}

static void uplink_del(void)
{
	if (upns[0])
		sh("ip link del up0 >/dev/null 2>&1; ip netns del %s >/dev/null 2>&1", upns);
	upns[0] = '\0';
}

/* A tiny guest with one NIC on network net, booted, console open. */
static void guest_boot(struct fx *x, int i, const char *name, const char *net)
{
	struct tguest *g = &x->g[i];
	char extra[256];
	g->name = name;
	snprintf(extra, sizeof(extra), "[nic.lan]\ntype = network\nnetwork = %s\n", net);
	t_daemon_tiny_profile(&x->d, name, extra);
	json_t *r = t_ctl_call(&x->c, "reload", NULL, 10000);
	json_decref(r);
	json_t *s = t_ctl_do(&x->c, "start", name, 120000, NULL);
	if (!s)
		fail_msg("start %s failed:\n%s", name, t_daemon_log(&x->d));
	json_decref(s);
	assert_int_equal(t_ctl_console(&x->c, name, &g->loop, &g->ser), 0);
	g->open = true;
	if (t_serial_wait(&g->ser, "QSUP-GUEST-READY", &g->seen, 120000) < 0)
		fail_msg("%s never got ready:\n%.*s", name, (int)g->ser.len, g->ser.buf);
	/* the banner before READY lists the network commands of a guest built
	 * from this tests/guest/init; an older build has none */
	if (!memmem(g->ser.buf, g->seen, "dhcp [IF] | netping", 19)) {
		printf("# skip: the tiny guest in %s predates its dhcp command: rebuild it "
		       "(make guest, or tests/guest/build.sh DIR)\n", t_guestdir());
		skip();
	}
}

/* Run a console command and wait for its answer's prefix; the rest of that
 * line into out. */
static void guest_cmd(struct tguest *g, const char *cmd, const char *prefix, char *out,
                      size_t size, int ms)
{
	assert_int_equal(t_serial_write(&g->ser, cmd), 0);
	if (t_serial_wait(&g->ser, prefix, &g->seen, (uint64_t)ms) < 0)
		fail_msg("%s: no \"%s\" after \"%s\":\n%.*s", g->name, prefix, cmd,
		         (int)g->ser.len, g->ser.buf);
	size_t eol = g->seen;   /* the whole line */
	if (t_serial_wait(&g->ser, "\n", &eol, (uint64_t)ms) < 0)
		fail_msg("%s: no end of line after \"%s\"", g->name, prefix);
	size_t n = strcspn(g->ser.buf + g->seen, "\r\n");
	snprintf(out, size, "%.*s", (int)n, g->ser.buf + g->seen);
}

static void guest_dhcp(struct tguest *g, const char *want_prefix)
{
	char got[64];
	guest_cmd(g, "dhcp", "QSUP-DHCP eth0 ", got, sizeof(got), 60000);
	if (strncmp(got, want_prefix, strlen(want_prefix)))
		fail_msg("%s: DHCP gave \"%s\", not an address in %s*", g->name, got,
		         want_prefix);
	snprintf(g->ip, sizeof(g->ip), "%.15s", got);
	printf("# %s: DHCP address %s\n", g->name, g->ip);
}

/* "ok" or "failed": one ping from guest g to addr. */
static bool guest_ping(struct tguest *g, const char *addr)
{
	char cmd[64], prefix[64], got[32];
	snprintf(cmd, sizeof(cmd), "netping %s", addr);
	snprintf(prefix, sizeof(prefix), "QSUP-NETPING %s ", addr);
	guest_cmd(g, cmd, prefix, got, sizeof(got), 30000);
	return !strcmp(got, "ok");
}

static json_t *net_call(struct fx *x, const char *verb, const char *name, const char **cls)
{
	return t_ctl_do(&x->c, verb, name, 60000, cls);
}

/* The guest's "addresses" in status hold ip (the lease file is read when
 * dnsmasq rewrites it: wait a little for it). */
static bool status_has_ip(struct fx *x, const char *name, const char *ip)
{
	for (int i = 0; i < 100; i++) {
		json_t *st = t_ctl_do(&x->c, "status", name, 10000, NULL);
		json_t *a = json_object_get(st, "addresses"), *v;
		size_t k;
		bool found = false;
		json_array_foreach(a, k, v)
			found |= !strcmp(t_str(v, "ip"), ip) && !strcmp(t_str(v, "nic"), "lan");
		json_decref(st);
		if (found)
			return true;
		usleep(100 * 1000);
	}
	return false;
}

static int count_dnsmasq(struct fx *x)
{
	char cmd[700];
	/* [-]: the shell running pgrep does not match itself */
	snprintf(cmd, sizeof(cmd), "pgrep -c -f -- '[-]-dhcp-leasefile=%s/' || true", x->d.run);
	return atoi(out_of(cmd));
}

/* ---- NAT: DHCP, each other, the host, the uplink; rules; stop refused,
 * then everything gone ---- */
static void test_nat(void **state)
{
	struct fx *x = *state;
	need_tools();
	uplink();
	net_file(x, "default", "[network]\nmode = nat\naddress = 192.168.123.1/24\n"
	         "dhcp-range = 192.168.123.50-192.168.123.99\n");
	daemon_up(x);
	guest_boot(x, 0, "n1", "default");
	guest_boot(x, 1, "n2", "default");
	guest_dhcp(&x->g[0], "192.168.123.");
	guest_dhcp(&x->g[1], "192.168.123.");
	assert_string_not_equal(x->g[0].ip, x->g[1].ip);
	assert_true(guest_ping(&x->g[0], x->g[1].ip));
	assert_true(guest_ping(&x->g[1], x->g[0].ip));
	assert_true(guest_ping(&x->g[0], "192.168.123.1"));
	assert_true(guest_ping(&x->g[1], FAR));   /* out of the uplink, masqueraded */
	assert_true(status_has_ip(x, "n1", x->g[0].ip));
	assert_true(status_has_ip(x, "n2", x->g[1].ip));

	/* qsupctl's words for the same */
	char cmd[1024], want[128];
	snprintf(cmd, sizeof(cmd), "%s -s %s status n1", t_qsupctl(), x->d.sock);
	snprintf(want, sizeof(want), "addresses:      %s (lan on default)\n", x->g[0].ip);
	assert_non_null(strstr(out_of(cmd), want));
	snprintf(cmd, sizeof(cmd), "%s -s %s net-list", t_qsupctl(), x->d.sock);
	const char *list = out_of(cmd);
	printf("%s", list);
	assert_non_null(strstr(list, "default          nat       qsup-default    "
	                       "192.168.123.0/24   up        n1,n2\n"));
	snprintf(cmd, sizeof(cmd), "%s -s %s net-status default", t_qsupctl(), x->d.sock);
	const char *nst = out_of(cmd);
	printf("%s", nst);
	snprintf(want, sizeof(want), " %-15s n1 ", x->g[0].ip);
	assert_non_null(strstr(nst, want));
	assert_non_null(strstr(nst, "Table:      ip qsup-default\n"));

	/* net-status: the leases with their guests */
	json_t *ns = net_call(x, "net-status", "default", NULL);
	assert_non_null(ns);
	assert_string_equal(t_str(ns, "state"), "up");
	assert_string_equal(t_str(ns, "bridge"), "qsup-default");
	json_t *l = json_object_get(ns, "leases"), *v;
	size_t k;
	int named = 0;
	json_array_foreach(l, k, v)
		named += !strcmp(t_str(v, "guest"), "n1") || !strcmp(t_str(v, "guest"), "n2");
	assert_int_equal(named, 2);
	json_decref(ns);

	/* the masquerade rule: in qsup's table, and nowhere else */
	const char *rules = out_of("nft list ruleset");
	const char *m = strstr(rules, "masquerade");
	assert_non_null(m);
	assert_null(strstr(m + 1, "masquerade"));
	assert_non_null(strstr(rules, "table ip qsup-default {"));
	assert_string_equal(out_of("nft list tables"), "table ip qsup-default\n");

	/* hot-plug: a second NIC on the network, a tap on its bridge */
	assert_string_equal(out_of("ls /sys/class/net/qsup-default/brif | wc -l"), "2\n");
	json_t *args = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "n1", "kind", "nic",
	                         "id", "lan2", "type", "network", "network", "default");
	json_t *ar = t_ctl_call(&x->c, "attach", args, 60000);
	if (!json_object_get(ar, "return"))
		fail_msg("attach: %s", json_dumps(ar, 0));
	json_decref(ar);
	assert_int_equal(t_serial_wait(&x->g[0].ser, "QSUP-HOTPLUG add net eth1", &x->g[0].seen,
	                               30000), 0);
	assert_string_equal(out_of("ls /sys/class/net/qsup-default/brif | wc -l"), "3\n");
	/* its lease shows in status too */
	char ip2[64];
	guest_cmd(&x->g[0], "dhcp eth1", "QSUP-DHCP eth1 ", ip2, sizeof(ip2), 60000);
	assert_true(!strncmp(ip2, "192.168.123.", 12));
	bool seen2 = false;
	for (int i = 0; i < 100 && !seen2; i++) {
		json_t *st = t_ctl_do(&x->c, "status", "n1", 10000, NULL), *a2;
		size_t k2;
		json_array_foreach(json_object_get(st, "addresses"), k2, a2)
			seen2 |= !strcmp(t_str(a2, "nic"), "lan2") && !strcmp(t_str(a2, "ip"), ip2);
		json_decref(st);
		if (!seen2)
			usleep(100 * 1000);
	}
	assert_true(seen2);
	args = json_pack("{s:s, s:s, s:s, s:s}", "name", "n1", "kind", "nic", "id", "lan3",
	                 "type", "network");
	ar = t_ctl_call(&x->c, "attach", args, 10000);
	assert_string_equal(t_str(json_object_get(ar, "error"), "class"), "InvalidArgument");
	json_decref(ar);
	args = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "n1", "kind", "nic", "id", "lan3",
	                 "type", "network", "network", "nosuch");
	ar = t_ctl_call(&x->c, "attach", args, 10000);
	assert_string_equal(t_str(json_object_get(ar, "error"), "class"), "NotFound");
	json_decref(ar);

	/* in use: refused */
	const char *cls = NULL;
	json_t *r = net_call(x, "net-stop", "default", &cls);
	assert_null(r);
	assert_string_equal(cls, "InvalidState");
	assert_true(t_if_exists("qsup-default"));
	assert_int_equal(count_dnsmasq(x), 1);

	for (int i = 0; i < 2; i++) {
		json_t *s = t_ctl_do(&x->c, "stop", x->g[i].name, 60000, NULL);
		assert_non_null(s);
		json_decref(s);
	}
	r = net_call(x, "net-stop", "default", NULL);
	assert_non_null(r);
	assert_string_equal(t_str(r, "state"), "down");
	json_decref(r);
	assert_false(t_if_exists("qsup-default"));
	assert_int_equal(count_dnsmasq(x), 0);
	assert_string_equal(out_of("nft list tables"), "");
	uplink_del();
}

/* ---- a qsupd killed and started again adopts the running network ---- */
static void test_readopt(void **state)
{
	struct fx *x = *state;
	need_tools();
	net_file(x, "default", "[network]\nmode = nat\naddress = 192.168.123.1/24\n");
	daemon_up(x);
	json_t *r = net_call(x, "net-start", "default", NULL);
	assert_non_null(r);
	json_decref(r);
	json_t *ns = net_call(x, "net-status", "default", NULL);
	json_int_t pid = json_integer_value(json_object_get(ns, "dnsmasq_pid"));
	json_decref(ns);
	assert_true(pid > 0);
	t_ctl_close(&x->c);
	x->c.fd = -1;
	t_daemon_kill9(&x->d);
	assert_true(t_pid_alive((pid_t)pid));
	daemon_up(x);
	ns = net_call(x, "net-status", "default", NULL);
	assert_non_null(ns);
	assert_string_equal(t_str(ns, "state"), "up");
	assert_int_equal(json_integer_value(json_object_get(ns, "dnsmasq_pid")), pid);
	json_decref(ns);
	assert_int_equal(count_dnsmasq(x), 1);
	assert_non_null(strstr(t_daemon_log(&x->d), "adopted its running dnsmasq"));
	/* qsupctl --json: the same entry */
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s -s %s --json net-list", t_qsupctl(), x->d.sock);
	json_t *j = json_loads(out_of(cmd), 0, NULL);
	assert_true(json_is_array(j));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0),
	                                                    "dnsmasq_pid")), pid);
	assert_string_equal(t_str(json_array_get(j, 0), "table"), "ip qsup-default");
	json_decref(j);
	/* and supervised: killed, it comes back */
	kill((pid_t)pid, SIGKILL);
	json_int_t again = 0;
	for (int i = 0; i < 100 && (again == 0 || again == pid); i++) {
		usleep(100 * 1000);
		ns = net_call(x, "net-status", "default", NULL);
		again = json_integer_value(json_object_get(ns, "dnsmasq_pid"));
		json_decref(ns);
	}
	assert_true(again > 0 && again != pid);
	assert_int_equal(count_dnsmasq(x), 1);
	r = net_call(x, "net-stop", "default", NULL);
	assert_non_null(r);
	json_decref(r);
	assert_int_equal(count_dnsmasq(x), 0);
}

/* ---- isolated: each other yes, the uplink no ---- */
static void test_isolated(void **state)
{
	struct fx *x = *state;
	need_tools();
	uplink();
	net_file(x, "iso", "[network]\nmode = isolated\naddress = 10.77.0.1/24\n");
	daemon_up(x);
	guest_boot(x, 0, "i1", "iso");
	guest_boot(x, 1, "i2", "iso");
	guest_dhcp(&x->g[0], "10.77.0.");
	guest_dhcp(&x->g[1], "10.77.0.");
	assert_true(guest_ping(&x->g[0], x->g[1].ip));
	assert_true(guest_ping(&x->g[1], "10.77.0.1"));
	assert_false(guest_ping(&x->g[0], FAR));
	assert_false(guest_ping(&x->g[1], FAR));
	assert_null(strstr(out_of("nft list ruleset"), "masquerade"));
	uplink_del();
}

/* ---- bad files, unknown networks, duplicate MACs, a colliding subnet ---- */
static void test_bad_files(void **state)
{
	struct fx *x = *state;
	char cmd[2048];
	need_tools();
	net_file(x, "bad", "[network]\nmode = nat\naddress = 192.168.300.1/24\ncolour = red\n");
	net_file(x, "range", "[network]\nmode = nat\naddress = 10.1.0.1/24\n"
	         "dhcp-range = 10.1.1.2-10.1.1.9\n");
	net_file(x, "br", "[network]\nmode = bridge\n");
	t_daemon_tiny_profile(&x->d, "a", "[nic.lan]\ntype = network\nnetwork = nosuch\n");
	t_daemon_tiny_profile(&x->d, "b", "[nic.lan]\ntype = network\nnetwork = range\n"
	                      "mac = 52:54:00:00:00:01\n");
	t_daemon_tiny_profile(&x->d, "c", "[nic.lan]\ntype = user\nmac = 52:54:00:00:00:01\n");
	snprintf(cmd, sizeof(cmd), "%s --check -d %s --networks %s 2>&1; echo rc=$?",
	         t_qsupd(), x->d.profiles, x->netdir);
	const char *o = out_of(cmd);
	printf("%s", o);
	assert_non_null(strstr(o, "/bad.ini:3: [network] address: \"192.168.300.1/24\" is "
	                       "not an IPv4 address"));
	assert_non_null(strstr(o, "/bad.ini:4: [network] colour: unknown key"));
	assert_non_null(strstr(o, "/range.ini:4: [network] dhcp-range: 10.1.1.2-10.1.1.9 is "
	                       "outside the subnet 10.1.0.0/24"));
	assert_non_null(strstr(o, "/br.ini:2: [network] bridge: missing"));
	assert_non_null(strstr(o, "/a.ini:7: [nic.lan] network: no network named nosuch"));
	assert_non_null(strstr(o, "/c.ini:"));
	assert_non_null(strstr(o, "[nic.lan] mac: MAC 52:54:00:00:00:01 is also "
	                       "used by b"));
	assert_non_null(strstr(o, "rc=1"));

	/* a subnet that a host route covers: refused, with the route */
	assert_int_equal(sh("ip link add d0 type veth peer name d1 && "
	                    "ip addr add 10.9.0.1/16 dev d0 && ip link set d1 up && "
	                    "ip link set d0 up"), 0);
	net_file(x, "clash", "[network]\nmode = nat\naddress = 10.9.1.1/24\n");
	daemon_up(x);
	const char *cls = NULL;
	assert_null(net_call(x, "net-start", "clash", &cls));
	json_t *ns = net_call(x, "net-status", "clash", NULL);
	printf("# %s\n", t_str(ns, "error"));
	assert_non_null(strstr(t_str(ns, "error"), "the subnet 10.9.1.0/24 collides with the "
	                       "host route 10.9.0.0/16 dev d0"));
	assert_string_equal(t_str(ns, "state"), "down");
	json_decref(ns);
	assert_false(t_if_exists("qsup-clash"));
	/* and a guest on it fails to start at once, with that message, not
	 * retried */
	t_daemon_tiny_profile(&x->d, "g", "[nic.lan]\ntype = network\nnetwork = clash\n");
	json_decref(t_ctl_call(&x->c, "reload", NULL, 10000));
	assert_null(t_ctl_do(&x->c, "start", "g", 60000, &cls));
	json_t *st = t_ctl_do(&x->c, "status", "g", 10000, NULL);
	printf("# g: %s: %s\n", t_str(st, "state"), t_str(st, "reason"));
	/* a configuration error: stopped at once, not retried (no backoff) */
	assert_string_equal(t_str(st, "state"), "stopped");
	assert_non_null(strstr(t_str(st, "reason"), "collides with the host route"));
	json_decref(st);
	sh("ip link del d0");
}

int main(void)
{
	t_netns_enter();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readopt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_isolated, setup, teardown),
	};
	printf("# accel: tcg (the tiny guest always runs under TCG here)\n");
	return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
