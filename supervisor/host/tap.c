/*
 * Tap devices for bridge NICs: see tap.h. The steps are libvirt's: create
 * the tap, copy the bridge's MTU, enslave it (SIOCBRADDIF), bring it up.
 * The tap is never persistent, so closing the fd on any failure undoes all.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/if_arp.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>

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

/* An interface ioctl on the control socket: 0 or -errno. */
static int if_ioctl(int sock, unsigned long req, struct ifreq *ifr, const char *name)
{
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", name);
	return ioctl(sock, req, ifr) < 0 ? -errno : 0;
}

/* -EPERM and -EACCES read better as the capability they lack. */
static const char *why(int r)
{
	return r == -EPERM || r == -EACCES ? "needs CAP_NET_ADMIN" : strerror(-r);
}

/* Is bridge (which exists) a bridge? 1 yes, 0 no, -1 cannot tell: sysfs
 * does not show it, as when it belongs to another network namespace than
 * ours; SIOCBRADDIF then decides. */
static int is_bridge(const char *bridge)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", bridge);
	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode);
	snprintf(path, sizeof(path), "/sys/class/net/%s", bridge);
	return stat(path, &st) == 0 ? 0 : -1;
}

/* Check the bridge, and that ifname is free; *mtu gets the bridge's MTU. */
static int check_names(int sock, const char *bridge, const char *ifname, int *mtu,
                       struct sv_error *err)
{
	struct ifreq ifr = { 0 };
	int r;

	r = if_ioctl(sock, SIOCGIFINDEX, &ifr, bridge);
	if (r == -ENODEV)
		return sv_error_set(err, r, "bridge %s: no such bridge", bridge);
	if (r < 0)
		return sv_error_set(err, r, "bridge %s: %s", bridge, strerror(-r));
	if (is_bridge(bridge) == 0)
		return sv_error_set(err, -EOPNOTSUPP, "bridge %s: %s is not a bridge",
		                    bridge, bridge);
	r = if_ioctl(sock, SIOCGIFMTU, &ifr, bridge);
	if (r < 0)
		return sv_error_set(err, r, "bridge %s: reading its MTU: %s", bridge,
		                    strerror(-r));
	*mtu = ifr.ifr_mtu;
	if (ifname) {
		r = if_ioctl(sock, SIOCGIFINDEX, &ifr, ifname);
		if (r == 0)
			return sv_error_set(err, -EEXIST, "tap %s: an interface of that "
			                    "name exists already", ifname);
		if (r != -ENODEV)
			return sv_error_set(err, r, "tap %s: %s", ifname, strerror(-r));
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

/* MAC, MTU, bridge, up. */
static int setup_tap(int sock, const char *bridge, const char *tap, const uint8_t *mac,
                     int mtu, struct sv_error *err)
{
	struct ifreq ifr = { 0 };
	int r;

	/* A bridge without a MAC set by hand takes the lowest of its ports':
	 * a first byte of 0xfe keeps the taps out of the race (libvirt's
	 * rule), so the bridge's MAC does not change as guests come and go. */
	r = if_ioctl(sock, SIOCGIFHWADDR, &ifr, tap);
	if (r == 0) {
		if (mac)
			memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
		ifr.ifr_hwaddr.sa_data[0] = (char)0xfe;
		ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
		r = if_ioctl(sock, SIOCSIFHWADDR, &ifr, tap);
	}
	if (r < 0)
		return sv_error_set(err, r, "tap %s: setting its MAC address: %s", tap, why(r));

	r = if_ioctl(sock, SIOCGIFMTU, &ifr, tap);
	if (r == 0 && ifr.ifr_mtu != mtu) {
		ifr.ifr_mtu = mtu;
		r = if_ioctl(sock, SIOCSIFMTU, &ifr, tap);
	}
	if (r < 0)
		return sv_error_set(err, r, "tap %s: setting the MTU to %d (bridge %s's): "
		                    "%s", tap, mtu, bridge, why(r));

	r = if_ioctl(sock, SIOCGIFINDEX, &ifr, tap);
	if (r < 0)
		return sv_error_set(err, r, "tap %s: %s", tap, strerror(-r));
	r = if_ioctl(sock, SIOCBRADDIF, &ifr, bridge);   /* ifr_ifindex: the tap */
	if (r == -EOPNOTSUPP)
		return sv_error_set(err, r, "bridge %s: %s is not a bridge", bridge, bridge);
	if (r == -ENODEV)
		return sv_error_set(err, r, "bridge %s: no such bridge", bridge);
	if (r < 0)
		return sv_error_set(err, r, "bridge %s: adding %s: %s", bridge, tap, why(r));

	r = if_ioctl(sock, SIOCGIFFLAGS, &ifr, tap);
	if (r == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		r = if_ioctl(sock, SIOCSIFFLAGS, &ifr, tap);
	}
	if (r < 0)
		return sv_error_set(err, r, "tap %s: bringing it up: %s", tap, why(r));
	return 0;
}

int sv_tap_open(const char *bridge, const char *ifname, const uint8_t *mac,
                char name_out[SV_IFNAMSIZ], struct sv_error *err)
{
	char name[IFNAMSIZ] = "";
	int sock, fd = -1, mtu = 0, r;

	if (!sv_ifname_valid(bridge))
		return sv_error_set(err, -EINVAL, "bridge \"%.32s\": not a valid interface "
		                    "name", bridge ? bridge : "");
	if (ifname && !sv_ifname_valid(ifname))
		return sv_error_set(err, -EINVAL, "tap \"%.32s\": not a valid interface "
		                    "name (1-15 characters, no '/', ':', '%%' or spaces)",
		                    ifname);
	sock = socket(AF_LOCAL, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		r = -errno;
		return sv_error_set(err, r, "socket(AF_LOCAL): %s", strerror(-r));
	}
	r = check_names(sock, bridge, ifname, &mtu, err);
	if (r < 0)
		goto out;

	fd = open(TUN_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT || r == -ENXIO || r == -ENODEV)
			sv_error_set(err, r, TUN_DEVICE ": %s (is the tun module loaded?)",
			             strerror(-r));
		else
			sv_error_set(err, r, TUN_DEVICE ": %s", strerror(-r));
		goto out;
	}
	r = create_tap(fd, ifname ? ifname : SV_TAP_PATTERN, name, err);
	if (r == 0)
		r = setup_tap(sock, bridge, name, mac, mtu, err);
	if (r < 0) {
		close(fd);   /* not persistent: the tap goes with its last fd */
		fd = -1;
		goto out;
	}
	if (name_out)
		memcpy(name_out, name, IFNAMSIZ);
out:
	close(sock);
	return fd >= 0 ? fd : r;
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
