/* Private network namespaces and bridges for tests: see netns.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <cmocka.h>

#include "netns.h"
#include "tdaemon.h"

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


const char *t_tool(const char *name)
{
	static char buf[4][64];
	static int next;
	const char *dirs[] = { "/usr/sbin", "/usr/bin", "/sbin", "/bin" };
	for (size_t i = 0; i < 4; i++) {
		char *b = buf[next % 4];
		snprintf(b, sizeof(buf[0]), "%s/%s", dirs[i], name);
		if (access(b, X_OK) == 0) {
			next++;
			return b;
		}
	}
	return NULL;
}

void t_tool_run(const char *const *argv)
{
	char out[2048];
	const char *path = t_tool(argv[0]);
	const char *v[16] = { path };
	for (size_t i = 1; i < 15 && argv[i]; i++)
		v[i] = argv[i];
	if (!path)
		fail_msg("%s: not installed (iproute2, util-linux)", argv[0]);
	if (t_run_capture(v, out, sizeof(out), 10000) != 0)
		fail_msg("%s %s %s: %s", argv[0], argv[1], argv[2] ? argv[2] : "", out);
}

void t_netns_peer(struct t_netns_peer *p, const char *ifname_here, const char *ifname_there,
                  const char *net)
{
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	p->holder = fork();
	assert_true(p->holder >= 0);
	if (p->holder == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive the test */
		int null = open("/dev/null", O_RDWR);
		dup2(null, 1);
		dup2(null, 2);
		char c = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
		if (write(pipefd[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	char c = 0;
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	close(pipefd[0]);
	close(pipefd[1]);
	assert_int_equal(c, 'y');
	char ns2[64], pidstr[16], ipath[64], a[32], b[32];
	snprintf(ns2, sizeof(ns2), "--net=/proc/%d/ns/net", (int)p->holder);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)p->holder);
	snprintf(a, sizeof(a), "%s.1/24", net);
	snprintf(b, sizeof(b), "%s.2/24", net);
	const char *ip = t_tool("ip");
	snprintf(ipath, sizeof(ipath), "%s", ip ? ip : "ip");
	p->here = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	p->there = open(ns2 + 6, O_RDONLY | O_CLOEXEC);
	assert_true(p->here >= 0 && p->there >= 0);
	const char *cmds[][12] = {
		{ "ip", "link", "add", ifname_here, "type", "veth", "peer", "name", ifname_there,
		  NULL },
		{ "ip", "link", "set", ifname_there, "netns", pidstr, NULL },
		{ "ip", "addr", "add", a, "dev", ifname_here, NULL },
		{ "ip", "link", "set", ifname_here, "up", NULL },
		{ "nsenter", ns2, ipath, "addr", "add", b, "dev", ifname_there, NULL },
		{ "nsenter", ns2, ipath, "link", "set", ifname_there, "up", NULL },
		{ "nsenter", ns2, ipath, "link", "set", "lo", "up", NULL },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		t_tool_run(cmds[i]);
}

void t_netns_peer_close(struct t_netns_peer *p)
{
	if (p->holder > 0) {
		kill(p->holder, SIGKILL);
		waitpid(p->holder, NULL, 0);
		p->holder = 0;
	}
	if (p->here >= 0)
		close(p->here);
	if (p->there >= 0)
		close(p->there);
	p->here = p->there = -1;
}
