/*
 * Tap devices for bridge NICs: see tap.h. The steps are libvirt's: create
 * the tap (TUNSETIFF), copy the bridge's MTU, enslave it, bring it up; all
 * but the first through rtnetlink (netlink.h).
 * The tap is never persistent, so closing the fd on any failure undoes all.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/if_tun.h>

#include "netlink.h"
#include "tap.h"

_Static_assert(SV_IFNAMSIZ == IFNAMSIZ, "SV_IFNAMSIZ must be IFNAMSIZ");

#define TUN_DEVICE "/dev/net/tun"
#define TAP_FLAGS (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)

bool sv_ifname_valid(const char *s)
{
	size_t n = s ? strnlen(s, IFNAMSIZ) : 0;

	if (n == 0 || n >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '%')
			return false;
	}
	return true;
}

/* Check the bridge, and that ifname is free; *br gets the bridge's link. */
static int check_names(const char *bridge, const char *ifname, struct sv_nl_link *br,
                       struct sv_error *err)
{
	struct sv_nl_link l;
	struct sv_error e = { 0 };
	int r;

	r = sv_nl_link_get(bridge, br, &e);
	if (r == -ENODEV)
		return sv_error_set(err, r, "bridge %s: no such bridge", bridge);
	if (r < 0)
		return sv_error_set(err, r, "bridge %s: %s", bridge, e.msg);
	if (!br->bridge)
		return sv_error_set(err, -EOPNOTSUPP, "bridge %s: %s is not a bridge",
		                    bridge, bridge);
	if (ifname) {
		r = sv_nl_link_get(ifname, &l, &e);
		if (r == 0)
			return sv_error_set(err, -EEXIST, "tap %s: an interface of that "
			                    "name exists already", ifname);
		if (r != -ENODEV)
			return sv_error_set(err, r, "tap %s: %s", ifname, e.msg);
	}
	return 0;
}

/* Create the tap on fd: name (pattern or not) into name_out. */
static int create_tap(int fd, const char *name, char name_out[IFNAMSIZ],
                      struct sv_error *err)
{
	struct ifreq ifr = { 0 };
	int r;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = TAP_FLAGS;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		if (r == -EPERM || r == -EACCES)
			return sv_error_set(err, -EPERM, "tap %s: creating a tap device "
			                    "needs CAP_NET_ADMIN", name);
		if ((r == -EBUSY || r == -EINVAL) && !strchr(name, '%'))
			/* a tun in use, or an interface that is not a tun */
			return sv_error_set(err, -EEXIST, "tap %s: an interface of that "
			                    "name exists already", name);
		return sv_error_set(err, r, "tap %s: TUNSETIFF: %s", name, strerror(-r));
	}
	memcpy(name_out, ifr.ifr_name, IFNAMSIZ);
	name_out[IFNAMSIZ - 1] = '\0';
	/* TUNSETIFF also attaches to an existing persistent tap of that name
	 * (one created after check_names() looked): that one is not ours. */
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
		r = -errno;
		return sv_error_set(err, r, "tap %s: TUNGETIFF: %s", name_out, strerror(-r));
	}
	if (ifr.ifr_flags & IFF_PERSIST)
		return sv_error_set(err, -EEXIST, "tap %s: an interface of that name "
		                    "exists already", name_out);
	if ((ifr.ifr_flags & TAP_FLAGS) != TAP_FLAGS)
		return sv_error_set(err, -EPROTO, "tap %s: the kernel did not keep "
		                    "IFF_TAP|IFF_NO_PI|IFF_VNET_HDR", name_out);
	return 0;
}

/* MAC, MTU, bridge, up: through rtnetlink (netlink.h). */
static int setup_tap(const char *bridge, const struct sv_nl_link *br, const char *tap,
                     const uint8_t *mac, struct sv_error *err)
{
	struct sv_nl_link l;
	uint8_t m[6];
	char what[48];
	int r;

	r = sv_nl_link_get(tap, &l, err);
	if (r < 0)
		return r;
	/* A bridge without a MAC set by hand takes the lowest of its ports':
	 * a first byte of 0xfe keeps the taps out of the race (libvirt's
	 * rule), so the bridge's MAC does not change as guests come and go. */
	memcpy(m, mac ? mac : l.mac, 6);
	m[0] = 0xfe;
	snprintf(what, sizeof(what), "tap %s", tap);
	r = sv_nl_link_set(l.index, what, m, l.mtu != br->mtu ? br->mtu : 0, 0, false, err);
	if (r < 0)
		return r;
	r = sv_nl_link_set(l.index, what, NULL, 0, br->index, false, err);
	if (r == -EOPNOTSUPP)
		return sv_error_set(err, r, "bridge %s: %s is not a bridge", bridge, bridge);
	if (r == -ENODEV)
		return sv_error_set(err, r, "bridge %s: no such bridge", bridge);
	if (r < 0)
		return sv_error_wrap(err, "bridge %s", bridge);
	return l.up ? 0 : sv_nl_link_set(l.index, what, NULL, 0, 0, true, err);
}

int sv_tap_open(const char *bridge, const char *ifname, const uint8_t *mac,
                char name_out[SV_IFNAMSIZ], struct sv_error *err)
{
	char name[IFNAMSIZ] = "";
	struct sv_nl_link br;
	int fd = -1, r;

	if (!sv_ifname_valid(bridge))
		return sv_error_set(err, -EINVAL, "bridge \"%.32s\": not a valid interface "
		                    "name", bridge ? bridge : "");
	if (ifname && !sv_ifname_valid(ifname))
		return sv_error_set(err, -EINVAL, "tap \"%.32s\": not a valid interface "
		                    "name (1-15 characters, no '/', ':', '%%' or spaces)",
		                    ifname);
	r = check_names(bridge, ifname, &br, err);
	if (r < 0)
		return r;

	fd = open(TUN_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT || r == -ENXIO || r == -ENODEV)
			sv_error_set(err, r, TUN_DEVICE ": %s (is the tun module loaded?)",
			             strerror(-r));
		else
			sv_error_set(err, r, TUN_DEVICE ": %s", strerror(-r));
		return r;
	}
	r = create_tap(fd, ifname ? ifname : SV_TAP_PATTERN, name, err);
	if (r == 0)
		r = setup_tap(bridge, &br, name, mac, err);
	if (r < 0) {
		close(fd);   /* not persistent: the tap goes with its last fd */
		return r;
	}
	if (name_out)
		memcpy(name_out, name, IFNAMSIZ);
	return fd;
}

int sv_tap_attach(const char *ifname, struct sv_error *err)
{
	struct ifreq ifr = { 0 };
	int fd, r;

	if (!sv_ifname_valid(ifname))
		return sv_error_set(err, -EINVAL, "tap \"%.32s\": not a valid interface "
		                    "name (1-15 characters, no '/', ':', '%%' or spaces)",
		                    ifname ? ifname : "");
	fd = open(TUN_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return sv_error_set(err, r, TUN_DEVICE ": %s", strerror(-r));
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_flags = TAP_FLAGS;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		close(fd);
		if (r == -EPERM || r == -EACCES)
			return sv_error_set(err, -EPERM, "tap %s: opening it needs "
			                    "CAP_NET_ADMIN, or a tap owned by qsupd's user",
			                    ifname);
		if (r == -EBUSY || r == -EINVAL)
			return sv_error_set(err, -EEXIST, "tap %s: an interface of that "
			                    "name exists and is not a free tap", ifname);
		return sv_error_set(err, r, "tap %s: TUNSETIFF: %s", ifname, strerror(-r));
	}
	return fd;
}
