/*
 * Tap devices for bridge NICs, created by qsupd itself (it runs as root)
 * because a guest's QEMU runs with -sandbox spawn=deny and so cannot run
 * qemu-bridge-helper. sv_tap_open() creates the tap, puts it on the bridge
 * and brings it up; the caller hands the fd to QEMU (getfd over SCM_RIGHTS,
 * then netdev_add {"type": "tap", "fd": NAME}, without "vnet_hdr": QEMU
 * refuses vnet_hdr= together with fd= and reads the flag from the fd) and
 * closes its own copy. The tap is not persistent: it vanishes with the last
 * fd, i.e. when QEMU drops the netdev (netdev_del) or exits.
 *
 * Synchronous and quick (a few ioctls); acts in the caller's network
 * namespace.
 */
#ifndef SV_TAP_H
#define SV_TAP_H

#include <stdbool.h>

#include "util.h"

/* IFNAMSIZ (checked in tap.c): names have at most 15 characters. */
#define SV_IFNAMSIZ 16

/* The name pattern of kernel-chosen tap names (qsup0, qsup1, ...). */
#define SV_TAP_PATTERN "qsup%d"

/* Non-zero if s is a usable interface name: 1 to 15 printable ASCII
 * characters, none of them '/', ':', '%' or a space, and not "." or "..".
 * (The kernel's own rule, plus: no '%', so a name is never a pattern.) */
bool sv_ifname_valid(const char *s);

/* Create a tap device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) named ifname, or
 * SV_TAP_PATTERN when ifname is NULL; give it the bridge's MTU and a MAC
 * address whose first byte is 0xfe (the rest from mac, the guest's, when
 * not NULL, else the kernel's random one), so that it never becomes the
 * bridge's own MAC; enslave it to bridge and bring it up. Its name goes to
 * name_out (if not NULL). Returns the tun fd (O_CLOEXEC, blocking) or a
 * negative errno with the reason in err:
 *   -EINVAL      a bad bridge or interface name
 *   -ENODEV      no interface called bridge ("bridge br0: no such bridge")
 *   -EOPNOTSUPP  bridge is not a bridge ("bridge lo: lo is not a bridge")
 *   -EEXIST      an interface called ifname exists already
 *   -EPERM       no CAP_NET_ADMIN ("... creating a tap device needs
 *                CAP_NET_ADMIN")
 *   other        the failing step's errno ("/dev/net/tun: ...", ...)
 * On failure nothing is left behind (the fd is closed, so the tap is gone). */
int sv_tap_open(const char *bridge, const char *ifname, const uint8_t *mac,
                char name_out[SV_IFNAMSIZ], struct sv_error *err);

/* Open the tap device ifname (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR): attach
 * to it when it exists (a persistent tap made beforehand), else make it
 * (it then vanishes with its last fd). It is not put on a bridge or brought
 * up: that is its owner's business, as with QEMU's own ifname=. Returns the
 * fd (O_CLOEXEC) or a negative errno with the reason in err (-EINVAL for a
 * bad name, -EEXIST for an interface that is not a tap, -EPERM without
 * CAP_NET_ADMIN for a tap we do not own). */
int sv_tap_attach(const char *ifname, struct sv_error *err);

#endif
