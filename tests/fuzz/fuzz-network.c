/*
 * libFuzzer harness for network definitions (network.h): any bytes, NULs
 * included, parsed as /fuzz/net.ini. The contract of sv_network_parse():
 *
 * - it returns 0 with a definition and no message, or -EINVAL with none and
 *   at least one message, each naming the file first;
 * - an accepted nat or isolated network has a prefix from 8 to 30, an
 *   address that is neither the subnet's network nor its broadcast
 *   address, a DHCP range inside the subnet, in order, without the bridge's
 *   address, and a bridge name of 1 to 15 characters; a bridge network has
 *   a bridge and nothing else.
 *
 * A broken rule prints what is wrong and aborts (libFuzzer and the replay in
 * make check, tests/unit/test-fuzz-replay.c, both notice).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "network.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_PATH "/fuzz/net.ini"

static void fz_fail(const char *what) __attribute__((noreturn));
static void fz_fail(const char *what)
{
	fprintf(stderr, "fuzz-network: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sv_network_def *n = NULL;
	struct sv_strv errs = { 0 };
	int r = sv_network_parse(FZ_PATH, (const char *)data, size, &n, &errs);
	if (r == -ENOMEM)
		goto out;
	if (r != 0 && r != -EINVAL)
		fz_fail("neither 0 nor -EINVAL");
	if ((r == 0) != (n != NULL) || (r == 0) != (errs.n == 0))
		fz_fail("a result without its definition, or messages with it");
	for (size_t i = 0; i < errs.n; i++)
		if (strncmp(errs.v[i], FZ_PATH ":", strlen(FZ_PATH) + 1))
			fz_fail("a message that does not name the file first");
	if (!n)
		goto out;
	size_t bl = strlen(n->bridge);
	if (bl < 1 || bl > 15)
		fz_fail("a bridge name of a bad length");
	if (n->mode != SV_NET_BRIDGE) {
		uint32_t m = sv_ip4_mask(n->prefix), a = ntohl(n->addr);
		uint32_t net = a & ntohl(m), bc = net | ~ntohl(m);
		uint32_t s = ntohl(n->range_start), e = ntohl(n->range_end);
		if (n->prefix < 8 || n->prefix > 30)
			fz_fail("a prefix out of 8..30");
		if (a == net || a == bc)
			fz_fail("the bridge on the network or broadcast address");
		if (s <= net || e >= bc || s > e)
			fz_fail("a DHCP range outside the subnet, or backwards");
		if (a >= s && a <= e)
			fz_fail("the bridge's address in the DHCP range");
	} else if (n->addr || n->prefix || n->uplink[0]) {
		fz_fail("a bridge network with an address or an uplink");
	}
out:
	sv_network_free(n);
	sv_strv_free(&errs);
	return 0;
}
