/*
 * The networks qsupd manages (qsup-network.ini(5)): one definition per
 * file in the networks dir (network.h), brought up when the first guest
 * that uses one starts (or at daemon start with autostart = yes), taken
 * down by net-stop. For nat and isolated networks, up means:
 *
 *   - the bridge, its address, link up: rtnetlink (netlink.h), on the
 *     thread pool, after a check that the subnet collides with no host
 *     route; nat also turns on /proc/sys/net/ipv4/ip_forward (logged);
 *   - the rules: a table of qsup's own, `table ip qsup-NAME`, in a file
 *     fed to `nft -f` (spawned): masquerade and forwarding for nat, no
 *     forwarding for isolated; no other table is ever touched;
 *   - dnsmasq (DHCP, and DNS with dns = yes) spawned with an argv, its
 *     lease file, pid file and record (dnsmasq.json: pid and start time)
 *     in RUNDIR/net/NAME; restarted when it dies; the lease file watched.
 *
 * A qsupd restart adopts a running dnsmasq by its record (pid, start time,
 * command line) through a pidfd, and leaves the bridge and table as they
 * are. mode = bridge: up means only that the existing bridge is there.
 *
 * Everything that blocks runs on the thread pool or in a spawned process;
 * all calls are on the loop.
 */
#ifndef SV_NETMGR_H
#define SV_NETMGR_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "network.h"
#include "profile.h"
#include "util.h"

struct sv_netmgr;
struct sv_net;

#define SV_DNSMASQ "/usr/sbin/dnsmasq"
#define SV_NFT "/usr/sbin/nft"

/* Load every *.ini in net_dir (a missing dir is no network); bad files are
 * appended to errs and skipped. Adopts the dnsmasq of each network that a
 * previous qsupd left running (run_dir/net/NAME). NULL when out of
 * memory. */
struct sv_netmgr *sv_netmgr_new(uv_loop_t *loop, const char *run_dir, const char *net_dir,
                                struct sv_strv *errs);

/* Bring up the autostart networks (and those whose dnsmasq died while no
 * qsupd was there). */
void sv_netmgr_autostart(struct sv_netmgr *m);

/* Stop watching and supervising (the daemon exits; dnsmasq, the bridges and
 * tables stay for the next qsupd), close the handles, then free m. */
void sv_netmgr_free(struct sv_netmgr *m);

/* The bridge of network name, or NULL: for the argv builder (sv_facts). */
const char *sv_netmgr_bridge(void *m, const char *name);

struct sv_net *sv_netmgr_find(struct sv_netmgr *m, const char *name);
size_t sv_netmgr_count(struct sv_netmgr *m);
struct sv_net *sv_netmgr_at(struct sv_netmgr *m, size_t i);
const char *sv_netmgr_dir(struct sv_netmgr *m);

/* What sv_net_up/sv_net_down report: rc 0, or a negative errno and msg. */
typedef void (*sv_net_cb)(void *arg, int rc, const char *msg);

/* Bring n up; cb once it is up (at once when it is) or failed. */
void sv_net_up(struct sv_net *n, sv_net_cb cb, void *arg);

/* Take n down (dnsmasq, table, bridge); cb once done. The caller checks
 * that no guest uses it. */
void sv_net_down(struct sv_net *n, sv_net_cb cb, void *arg);

/* Every network a profile's type = network NICs name, up; cb once all are
 * (or at the first that fails: "nic lan: network default: ..."). */
void sv_netmgr_profile_up(struct sv_netmgr *m, const struct sv_profile *p, sv_net_cb cb,
                          void *arg);

const struct sv_network_def *sv_net_def(const struct sv_net *n);
/* "down", "starting", "up", "stopping". */
const char *sv_net_state(const struct sv_net *n);
bool sv_net_is_up(const struct sv_net *n);

/* {name, mode, bridge, subnet, address, dhcp_range, dns, uplink,
 * autostart, state, dnsmasq_pid, error} and, with leases, "leases":
 * [{mac, ip, hostname, expiry}]. */
json_t *sv_net_json(const struct sv_net *n, bool leases);

/* The address leased to mac on n, or NULL. */
const char *sv_net_lease_ip(const struct sv_net *n, const uint8_t mac[6]);

#endif
