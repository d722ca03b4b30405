/*
 * Links, addresses and routes through rtnetlink (libmnl): what qsupd does
 * to interfaces. Bridges for managed networks (network.h), and the bridge
 * side of taps (tap.c): MAC, MTU, master, up. Tap creation itself stays an
 * ioctl (TUNSETIFF on /dev/net/tun), as it must.
 *
 * Each call opens its own NETLINK_ROUTE socket, sends one request and reads
 * the answer: synchronous and quick, but a system call round trip, so qsupd
 * calls these from the thread pool. All act in the caller's network
 * namespace. Errors: a negative errno with the reason in err.
 */
#ifndef SV_NETLINK_H
#define SV_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct sv_nl_link {
	int index;
	int mtu;
	int master;             /* ifindex of its bridge, 0: none */
	bool up;                /* IFF_UP */
	bool bridge;            /* IFLA_INFO_KIND "bridge" */
	uint8_t mac[6];
	bool has_mac;
};

/* The link called name: 0 and *out, -ENODEV when there is none. */
int sv_nl_link_get(const char *name, struct sv_nl_link *out, struct sv_error *err);

/* Create the bridge name (down, no address): -EEXIST when a link of that
 * name exists already. */
int sv_nl_bridge_add(const char *name, struct sv_error *err);

/* Delete the link name; -ENODEV when there is none. */
int sv_nl_link_del(const char *name, struct sv_error *err);

/* Change the link at index: each of mac (6 bytes), mtu (> 0), master
 * (> 0: enslave to that ifindex) and up (true) when given, one request
 * each, in that order. what names the link in messages. */
int sv_nl_link_set(int index, const char *what, const uint8_t *mac, int mtu, int master,
                   bool up, struct sv_error *err);

/* Add the IPv4 address addr/prefix (network byte order) to the link at
 * index; an address that is there already is fine. */
int sv_nl_addr_add(int index, uint32_t addr, int prefix, struct sv_error *err);

/* Does the IPv4 subnet net/prefix overlap a route of the main table (the
 * default route excepted, and routes through the link except_index, which
 * are the network's own)? 1 with a sentence in why ("192.168.1.0/24 dev
 * eth0"), 0 no, or a negative errno. */
int sv_nl_route_conflict(uint32_t net, int prefix, int except_index, char *why, size_t size,
                         struct sv_error *err);

#endif
