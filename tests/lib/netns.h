/*
 * Tests that need a network of their own: a private network namespace (and
 * mount namespace with a fresh /sys, since sysfs shows the namespace it was
 * mounted in), bridges made with ioctls, and a look at interfaces. Nothing
 * touches the host's network. Test code only; failures end the test.
 */
#ifndef T_NETNS_H
#define T_NETNS_H

#include <stdbool.h>
#include <sys/types.h>
#include <net/if.h>

/* Why t_netns_enter() failed ("" when it worked). */
extern char t_netns_skip[256];

/* Unshare the network and mount namespaces and mount a private sysfs. Call
 * it first in main(), while the process has one thread. */
void t_netns_enter(void);

/* A second network namespace, held by a child that dies with the test,
 * joined to the test's own by a veth pair: ifname_here with NET.1/24 here,
 * ifname_there with NET.2/24 there (NET as "10.77.0"). here and there are
 * fds for setns(2). Needs ip and nsenter; fails the test otherwise. */
struct t_netns_peer {
	pid_t holder;
	int here, there;
};
void t_netns_peer(struct t_netns_peer *p, const char *ifname_here, const char *ifname_there,
                  const char *net);
void t_netns_peer_close(struct t_netns_peer *p);   /* idempotent */
/* The path of a system tool in /usr/sbin, /usr/bin, /sbin or /bin, or
 * NULL (four results stay valid at a time). */
const char *t_tool(const char *name);
/* Runs argv (argv[0] found by t_tool); fails the test when it fails. */
void t_tool_run(const char *const *argv);

int t_if_sock(void);
/* ioctl req on interface name; 0 or -errno. */
int t_if_do(unsigned long req, const char *name, struct ifreq *ifr);
int t_if_mtu(const char *name);
void t_if_set_mtu(const char *name, int mtu);
void t_if_up(const char *name);
void t_bridge_add(const char *name);   /* and bring it up */
void t_bridge_del(const char *name);
bool t_if_exists(const char *name);
/* The bridge an interface is enslaved to ("" when none). */
const char *t_if_master(const char *name);

#endif
