/*
 * Network definitions (network.h): defaults, every check, and the
 * "path:line: [network] key: ..." messages, from text (no files).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "network.h"

static struct sv_network_def *parse(const char *path, const char *text, struct sv_strv *errs)
{
	struct sv_network_def *n = NULL;
	int r = sv_network_parse(path, text, strlen(text), &n, errs);
	assert_true(r == 0 ? n != NULL : n == NULL);
	return n;
}

static const char *ip(uint32_t a)
{
	static char buf[4][16];
	static int k;
	k = (k + 1) % 4;
	sv_ip4_str(a, buf[k], sizeof(buf[k]));
	return buf[k];
}

/* The one error of text, or fail. */
static void one_error(const char *path, const char *text, const char *want)
{
	struct sv_strv errs = { 0 };
	assert_null(parse(path, text, &errs));
	if (errs.n != 1 || strcmp(errs.v[0], want)) {
		for (size_t i = 0; i < errs.n; i++)
			printf("# got: %s\n", errs.v[i]);
		fail_msg("want: %s", want);
	}
	sv_strv_free(&errs);
}

static void test_defaults(void **state)
{
	(void)state;
	struct sv_strv errs = { 0 };
	struct sv_network_def *n = parse("/etc/qsup/networks/default.ini",
	                                 "[network]\naddress = 192.168.122.1/24\n", &errs);
	assert_non_null(n);
	assert_int_equal(errs.n, 0);
	assert_string_equal(n->name, "default");
	assert_int_equal(n->mode, SV_NET_NAT);
	assert_string_equal(n->bridge, "qsup-default");
	assert_string_equal(ip(n->addr), "192.168.122.1");
	assert_int_equal(n->prefix, 24);
	assert_string_equal(ip(n->range_start), "192.168.122.2");
	assert_string_equal(ip(n->range_end), "192.168.122.254");
	assert_true(n->dns);
	assert_false(n->autostart);
	assert_string_equal(n->uplink, "");
	char sub[24];
	sv_network_subnet(n, sub, sizeof(sub));
	assert_string_equal(sub, "192.168.122.0/24");
	sv_network_free(n);

	/* a long name: the bridge is cut to 15 characters; the range starts
	 * after the bridge's address */
	n = parse("n/laboratory-network.ini", "[network]\nmode = isolated\n"
	          "address = 10.1.2.2/16\ndns = no\nautostart = yes\n", &errs);
	assert_non_null(n);
	assert_string_equal(n->bridge, "qsup-laboratory");
	assert_int_equal(strlen(n->bridge), 15);
	assert_int_equal(n->mode, SV_NET_ISOLATED);
	assert_string_equal(ip(n->range_start), "10.1.2.3");
	assert_string_equal(ip(n->range_end), "10.1.255.254");
	assert_false(n->dns);
	assert_true(n->autostart);
	sv_network_free(n);

	/* a bridge on the last address: the range is below it */
	n = parse("n/top.ini", "[network]\naddress = 10.9.9.254/24\n", &errs);
	assert_non_null(n);
	assert_string_equal(ip(n->range_start), "10.9.9.1");
	assert_string_equal(ip(n->range_end), "10.9.9.253");
	sv_network_free(n);

	n = parse("n/lan.ini", "[network]\nmode = bridge\nbridge = br0\n", &errs);
	assert_non_null(n);
	assert_string_equal(n->bridge, "br0");
	assert_int_equal(n->mode, SV_NET_BRIDGE);
	sv_network_free(n);

	n = parse("n/x.ini", "; comment\n[network]\n  mode = nat\n  address = 172.16.0.1/12\n"
	          "dhcp-range = 172.16.0.10-172.16.0.20\nuplink = eth0\n", &errs);
	assert_non_null(n);
	assert_string_equal(ip(n->range_start), "172.16.0.10");
	assert_string_equal(ip(n->range_end), "172.16.0.20");
	assert_string_equal(n->uplink, "eth0");
	sv_network_free(n);
	assert_int_equal(errs.n, 0);
}

static void test_errors(void **state)
{
	(void)state;
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1\n", "n/a.ini:2: [network] address: "
	          "\"10.0.0.1\" is not an IPv4 address with a prefix length from 8 to 30, "
	          "such as 192.168.123.1/24");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/31\n", "n/a.ini:2: [network] address: "
	          "\"10.0.0.1/31\" is not an IPv4 address with a prefix length from 8 to 30, "
	          "such as 192.168.123.1/24");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.0/24\n", "n/a.ini:2: [network] address: "
	          "10.0.0.0 is the subnet's network address; give the bridge's own address, "
	          "such as 192.168.123.1/24");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.255/24\n", "n/a.ini:2: [network] "
	          "address: 10.0.0.255 is the subnet's broadcast address; give the bridge's "
	          "own address, such as 192.168.123.1/24");
	one_error("n/a.ini", "[network]\nmode = routed\naddress = 10.0.0.1/24\n", "n/a.ini:2: "
	          "[network] mode: \"routed\" is not a mode; use nat, isolated or bridge");
	one_error("n/a.ini", "[network]\n", "n/a.ini: [network] address: missing: nat needs the "
	          "bridge's address and prefix, such as address = 192.168.123.1/24");
	one_error("n/a.ini", "mode = nat\n", "n/a.ini:1: mode: keys must follow the [network] "
	          "header");
	one_error("n/a.ini", "", "n/a.ini: no [network] section; a network file holds [network] "
	          "with at least mode (and address for nat and isolated)");
	one_error("n/a.ini", "[net]\n", "n/a.ini:1: [net]: unknown section; a network file has "
	          "only [network]");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/24\nmtu = 9000\n", "n/a.ini:3: "
	          "[network] mtu: unknown key; use mode, bridge, address, dhcp-range, dns, "
	          "uplink or autostart");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/24\naddress = 10.0.0.2/24\n",
	          "n/a.ini:3: [network] address: given twice (first at line 2); give each key "
	          "once");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/24\nbridge = a/b\n", "n/a.ini:3: "
	          "[network] bridge: \"a/b\" is not an interface name; use 1-15 of A-Z a-z 0-9 "
	          "_ . -");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/24\nbridge = bridge-name-too-long\n",
	          "n/a.ini:3: [network] bridge: \"bridge-name-too-long\" is not an interface "
	          "name; use 1-15 of A-Z a-z 0-9 _ . -");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/24\ndns = maybe\n", "n/a.ini:3: "
	          "[network] dns: \"maybe\" is not yes or no");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/24\ndhcp-range = 10.0.1.2-10.0.1.9\n",
	          "n/a.ini:3: [network] dhcp-range: 10.0.1.2-10.0.1.9 is outside the subnet "
	          "10.0.0.0/24 (of address); give addresses between its network and broadcast "
	          "addresses");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/24\ndhcp-range = 10.0.0.0-10.0.0.9\n",
	          "n/a.ini:3: [network] dhcp-range: 10.0.0.0-10.0.0.9 is outside the subnet "
	          "10.0.0.0/24 (of address); give addresses between its network and broadcast "
	          "addresses");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/24\ndhcp-range = 10.0.0.9-10.0.0.2\n",
	          "n/a.ini:3: [network] dhcp-range: 10.0.0.9-10.0.0.2: the start is after the end");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.5/24\ndhcp-range = 10.0.0.2-10.0.0.9\n",
	          "n/a.ini:3: [network] dhcp-range: 10.0.0.2-10.0.0.9 holds the bridge's own "
	          "address 10.0.0.5; leave it out of the range");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/24\ndhcp-range = 10.0.0.2\n",
	          "n/a.ini:3: [network] dhcp-range: \"10.0.0.2\" is not START-END (two IPv4 "
	          "addresses), such as 192.168.123.2-192.168.123.254");
	one_error("n/a.ini", "[network]\nmode = isolated\naddress = 10.0.0.1/24\nuplink = eth0\n",
	          "n/a.ini:4: [network] uplink: not for mode = isolated (it forwards nothing); "
	          "remove the line or use mode = nat");
	one_error("n/a.ini", "[network]\nmode = bridge\n", "n/a.ini:2: [network] bridge: "
	          "missing: mode = bridge needs the existing bridge to join, such as bridge = br0");
	one_error("n/a.ini", "[network]\nmode = bridge\nbridge = br0\naddress = 10.0.0.1/24\n",
	          "n/a.ini:4: [network] address: not for mode = bridge (qsup only joins the "
	          "bridge; its network is someone else's)");
	one_error("n/a.txt", "[network]\naddress = 10.0.0.1/24\n", "n/a.txt: a network file's "
	          "name must end in .ini (default.ini defines the network default)");
	one_error("n/-x.ini", "[network]\naddress = 10.0.0.1/24\n", "n/-x.ini: \"-x\" (the file "
	          "name) is not a valid network name; use 1-64 of A-Z a-z 0-9 _ . -, starting "
	          "with a letter or digit");
	one_error("n/a.ini", "[network]\naddress = 10.0.0.1/24\nnonsense\n",
	          "n/a.ini:3: syntax error; use key = value");

	/* several problems: all reported, in line order */
	struct sv_strv errs = { 0 };
	assert_null(parse("n/b.ini", "[network]\nmode = x\ndns = 2\ncolour = red\n", &errs));
	assert_int_equal(errs.n, 3);
	assert_non_null(strstr(errs.v[0], "b.ini:2: [network] mode"));
	assert_non_null(strstr(errs.v[1], "b.ini:3: [network] dns"));
	assert_non_null(strstr(errs.v[2], "b.ini:4: [network] colour"));
	sv_strv_free(&errs);
	/* a NUL byte */
	struct sv_network_def *n = NULL;
	assert_int_equal(sv_network_parse("n/c.ini", "[network]\n\0", 11, &n, &errs), -EINVAL);
	assert_non_null(strstr(errs.v[0], "c.ini:2: a NUL byte"));
	sv_strv_free(&errs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests_name("network", tests, NULL, NULL);
}
