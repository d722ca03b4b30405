/* Private network namespaces and bridges for tests: see netns.h. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <cmocka.h>

#include "netns.h"

char t_netns_skip[256];

/* Unshare the network and mount namespaces and mount a fresh sysfs on /sys
 * (private propagation: the host's mounts are not affected). Must run while
 * the process has one thread. */
void t_netns_enter(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0) {
		snprintf(t_netns_skip, sizeof(t_netns_skip), "unshare(CLONE_NEWNET|CLONE_NEWNS): "
		         "%s (these tests need root to create a private network namespace)",
		         strerror(errno));
		return;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		snprintf(t_netns_skip, sizeof(t_netns_skip), "mounting a private sysfs for the "
		         "new network namespace: %s", strerror(errno));
}

int t_if_sock(void)
{
	int s = socket(AF_LOCAL, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	return s;
}

int t_if_do(unsigned long req, const char *name, struct ifreq *ifr)
{
	int s = t_if_sock();
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", name);
	int r = ioctl(s, req, ifr) < 0 ? -errno : 0;
	close(s);
	return r;
}

int t_if_mtu(const char *name)
{
	struct ifreq ifr = { 0 };
	assert_int_equal(t_if_do(SIOCGIFMTU, name, &ifr), 0);
	return ifr.ifr_mtu;
}

void t_if_set_mtu(const char *name, int mtu)
{
	struct ifreq ifr = { .ifr_mtu = mtu };
	assert_int_equal(t_if_do(SIOCSIFMTU, name, &ifr), 0);
}

void t_if_up(const char *name)
{
	struct ifreq ifr = { 0 };
	assert_int_equal(t_if_do(SIOCGIFFLAGS, name, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(t_if_do(SIOCSIFFLAGS, name, &ifr), 0);
}

void t_bridge_add(const char *name)
{
	int s = t_if_sock();
	if (ioctl(s, SIOCBRADDBR, name) < 0)
		fail_msg("SIOCBRADDBR %s: %s", name, strerror(errno));
	close(s);
	t_if_up(name);
}

void t_bridge_del(const char *name)
{
	struct ifreq ifr = { 0 };
	if (t_if_do(SIOCGIFFLAGS, name, &ifr) == 0) {
		ifr.ifr_flags &= ~IFF_UP;
		t_if_do(SIOCSIFFLAGS, name, &ifr);
	}
	int s = t_if_sock();
	int r = ioctl(s, SIOCBRDELBR, name);
	close(s);
	assert_int_equal(r, 0);
}

bool t_if_exists(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	return access(path, F_OK) == 0;
}

/* The bridge name tap's master link points to ("" when it has none). */
const char *t_if_master(const char *tap)
{
	static char buf[PATH_MAX];
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%s/master", tap);
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return "";
	buf[n] = '\0';
	char *slash = strrchr(buf, '/');
	return slash ? slash + 1 : buf;
}

