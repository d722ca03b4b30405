/*
 * Network definitions: one INI file per network qsup manages (default.ini
 * defines the network "default"), in the networks dir, parsed with libinih
 * like profiles and with the same "path:line: [network] key: what is wrong"
 * messages, all of them collected. The schema is qsup-network.ini(5).
 *
 *   [network]
 *   mode = nat | isolated | bridge
 *   bridge = NAME          (nat, isolated: default qsup-NAME, cut to 15)
 *   address = 192.168.123.1/24
 *   dhcp-range = 192.168.123.2-192.168.123.254
 *   dns = yes | no
 *   uplink = IFNAME        (nat: masquerade only out of it)
 *   autostart = yes | no
 *
 * Pure: no host state is read here (the route check is the daemon's).
 */
#ifndef SV_NETWORK_DEF_H
#define SV_NETWORK_DEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define SV_NETWORK_MAX_BYTES (64 * 1024)

enum sv_net_mode { SV_NET_NAT, SV_NET_ISOLATED, SV_NET_BRIDGE };

struct sv_network_def {
	char *path;
	char *name;             /* the file stem */
	uint64_t digest;        /* of the file's bytes */
	enum sv_net_mode mode;
	char bridge[16];
	/* nat, isolated (network byte order): the bridge's address, its
	 * prefix length, the DHCP range (inclusive). */
	uint32_t addr;
	int prefix;
	uint32_t range_start, range_end;
	bool dns;
	char uplink[16];        /* "": any interface but the bridge */
	bool autostart;
};

/* Parse buf (len bytes) as read from path. 0 and *out (free with
 * sv_network_free()), or -EINVAL with one message per problem in errs
 * (-ENOMEM). */
int sv_network_parse(const char *path, const char *buf, size_t len,
                     struct sv_network_def **out, struct sv_strv *errs);

/* Read the file (at most SV_NETWORK_MAX_BYTES) and parse it. */
int sv_network_load(const char *path, struct sv_network_def **out, struct sv_strv *errs);

void sv_network_free(struct sv_network_def *n);

/* "nat", "isolated", "bridge". */
const char *sv_net_mode_name(enum sv_net_mode m);

/* "192.168.123.0/24" (the subnet) and "192.168.123.1" (an address), into
 * buf of size (at least 19 for the subnet). */
void sv_network_subnet(const struct sv_network_def *n, char *buf, size_t size);
void sv_ip4_str(uint32_t addr, char *buf, size_t size);

/* The mask of a prefix length, in network byte order. */
uint32_t sv_ip4_mask(int prefix);

#endif
