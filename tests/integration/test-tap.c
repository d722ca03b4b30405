/*
 * sv_tap_open(): tap devices on a bridge, in a private network namespace
 * (and a private mount namespace with its own /sys, since sysfs shows the
 * namespace it was mounted in), so the host's network is never touched.
 * Needs root (CAP_SYS_ADMIN for the namespaces); skipped otherwise. Ends
 * with a real QEMU (TCG, -S, -sandbox spawn=deny) taking the tap fd over
 * QMP: getfd, netdev_add, device_add, then device_del and netdev_del.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <cmocka.h>

#include "netns.h"
#include "tap.h"
#include "testutil.h"

#define BR "qbr0"

/* Skip the test (saying why) when the namespaces could not be made. */
static void need_netns(void)
{
	if (t_netns_skip[0]) {
		printf("# skip: %s\n", t_netns_skip);
		skip();
	}
}

/* A hex number from /sys/class/net/NAME/FILE (flags, tun_flags), or -1. */
static long sysfs_hex(const char *name, const char *file)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%s/%s", name, file);
	const char *s = t_read_line(path);
	return s ? strtol(s, NULL, 16) : -1;
}

/* Every interface in the namespace, sorted, space-separated. */
static const char *interfaces(void)
{
	static char buf[1024];
	struct dirent **ents;
	int n = scandir("/sys/class/net", &ents, NULL, alphasort);
	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (ents[i]->d_name[0] != '.') {
			if (buf[0])
				strncat(buf, " ", sizeof(buf) - strlen(buf) - 1);
			strncat(buf, ents[i]->d_name, sizeof(buf) - strlen(buf) - 1);
		}
		free(ents[i]);
	}
	free(n >= 0 ? ents : NULL);
	return buf;
}

/* ---- fixture: a bridge that is up, and the taps a test opened ---- */

struct fx {
	int fds[4];
	int nfds;
	bool qemu;              /* loop, q and t are in use */
	bool serial;            /* ser too */
	uv_loop_t loop;
	struct t_qemu q;
	struct t_qmp t;
	struct t_serial ser;
	size_t seen;            /* console offset already matched */
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	*state = x;
	if (t_netns_skip[0])
		return 0;
	assert_string_equal(interfaces(), "lo");
	t_bridge_add(BR);
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	for (int i = 0; i < x->nfds; i++)
		if (x->fds[i] >= 0)
			close(x->fds[i]);
	if (x->serial)
		t_serial_close(&x->ser);
	if (x->qemu) {
		t_qmp_close(&x->t);
		t_qemu_reap(&x->loop, &x->q, 0);
		assert_int_equal(t_loop_finish(&x->loop), 0);
	}
	if (!t_netns_skip[0]) {
		if (t_if_exists(BR))
			t_bridge_del(BR);
		assert_string_equal(interfaces(), "lo");   /* no tap left behind */
	}
	free(x);
	return 0;
}

/* Open a tap on bridge (kept in the fixture to be closed on failure). */
static int tap_open_mac(struct fx *x, const char *bridge, const char *ifname,
                        const uint8_t *mac, char name[SV_IFNAMSIZ])
{
	struct sv_error err = { 0 };
	int fd = sv_tap_open(bridge, ifname, mac, name, &err);
	if (fd < 0)
		fail_msg("sv_tap_open(%s, %s): %d: %s", bridge, ifname ? ifname : "NULL",
		         fd, err.msg);
	assert_int_equal(err.code, 0);
	assert_true(x->nfds < 4);
	x->fds[x->nfds++] = fd;
	return fd;
}

static int tap_open(struct fx *x, const char *bridge, const char *ifname,
                    char name[SV_IFNAMSIZ])
{
	return tap_open_mac(x, bridge, ifname, NULL, name);
}

static void tap_close(struct fx *x, int fd)
{
	for (int i = 0; i < x->nfds; i++)
		if (x->fds[i] == fd)
			x->fds[i] = -1;
	assert_int_equal(close(fd), 0);
}

/* sv_tap_open() must fail with code and a message holding text, leaving
 * no interface behind. */
static void expect_refused(const char *bridge, const char *ifname, int code,
                           const char *text)
{
	char before[1024];
	char name[SV_IFNAMSIZ] = "untouched";
	struct sv_error err = { 0 };
	snprintf(before, sizeof(before), "%s", interfaces());
	int r = sv_tap_open(bridge, ifname, NULL, name, &err);
	if (r >= 0)
		close(r);
	if (r != code || err.code != code || !strstr(err.msg, text))
		fail_msg("sv_tap_open(%s, %s) = %d (\"%s\"), expected %d with \"%s\"",
		         bridge ? bridge : "NULL", ifname ? ifname : "NULL", r, err.msg,
		         code, text);
	assert_string_equal(name, "untouched");
	assert_string_equal(interfaces(), before);
}

/* ---- the tests ---- */

static void test_open_enslaves_and_up(void **state)
{
	struct fx *x = *state;
	char name[SV_IFNAMSIZ] = "";
	need_netns();
	int fd = tap_open(x, BR, NULL, name);
	assert_int_equal(strncmp(name, "qsup", 4), 0);
	assert_true(t_if_exists(name));
	assert_string_equal(t_if_master(name), BR);
	assert_true(sysfs_hex(name, "flags") & IFF_UP);
	long tf = sysfs_hex(name, "tun_flags");
	assert_int_equal(tf & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR),
	                 IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
	assert_false(tf & IFF_PERSIST);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* The fd is the tap: TUNGETIFF names it. */
	struct ifreq ifr = { 0 };
	assert_int_equal(ioctl(fd, TUNGETIFF, &ifr), 0);
	assert_string_equal(ifr.ifr_name, name);
	/* A second one gets another name on the same bridge. */
	char name2[SV_IFNAMSIZ] = "";
	int fd2 = tap_open(x, BR, NULL, name2);
	assert_string_not_equal(name, name2);
	assert_string_equal(t_if_master(name2), BR);
	/* Closing the fd removes the tap. */
	tap_close(x, fd);
	assert_false(t_if_exists(name));
	assert_true(t_if_exists(name2));
	tap_close(x, fd2);
	assert_false(t_if_exists(name2));
	assert_string_equal(interfaces(), "lo " BR);
}

/* The tap takes the bridge's MTU, smaller or larger than the default (a
 * bridge whose MTU was set keeps it when a port joins). */
static void test_mtu_copied(void **state)
{
	struct fx *x = *state;
	static const int mtus[] = { 1400, 9000, 1500 };
	need_netns();
	for (size_t i = 0; i < sizeof(mtus) / sizeof(mtus[0]); i++) {
		char name[SV_IFNAMSIZ];
		t_if_set_mtu(BR, mtus[i]);
		assert_int_equal(t_if_mtu(BR), mtus[i]);
		int fd = tap_open(x, BR, NULL, name);
		assert_int_equal(t_if_mtu(name), mtus[i]);
		assert_int_equal(t_if_mtu(BR), mtus[i]);
		assert_string_equal(t_if_master(name), BR);
		tap_close(x, fd);
	}
}

static void test_given_name(void **state)
{
	struct fx *x = *state;
	char name[SV_IFNAMSIZ] = "";
	need_netns();
	int fd = tap_open(x, BR, "vm-web.0_x", name);
	assert_string_equal(name, "vm-web.0_x");
	assert_string_equal(t_if_master("vm-web.0_x"), BR);
	/* 15 characters is the longest. */
	int fd2 = tap_open(x, BR, "abcdefghijklmno", name);
	assert_string_equal(name, "abcdefghijklmno");
	/* Taken: refused, and the first one is untouched. */
	expect_refused(BR, "vm-web.0_x", -EEXIST, "tap vm-web.0_x: an interface of "
	               "that name exists already");
	expect_refused(BR, BR, -EEXIST, "exists already");
	expect_refused(BR, "lo", -EEXIST, "exists already");
	assert_string_equal(t_if_master("vm-web.0_x"), BR);
	tap_close(x, fd);
	tap_close(x, fd2);
	/* Free again. */
	fd = tap_open(x, BR, "vm-web.0_x", NULL);
	tap_close(x, fd);
	assert_false(t_if_exists("vm-web.0_x"));
}

static const char *address_of(const char *name)
{
	static char buf[2][32];
	static int i;
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%s/address", name);
	const char *s = t_read_line(path);
	i ^= 1;
	snprintf(buf[i], sizeof(buf[i]), "%s", s ? s : "");
	return buf[i];
}

/* The tap's MAC starts with fe (the guest's MAC otherwise), so that a
 * bridge whose MAC was not set keeps the lowest one, its uplink's. */
static void test_mac(void **state)
{
	struct fx *x = *state;
	static const uint8_t guest[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	char name[SV_IFNAMSIZ];
	need_netns();
	/* The "uplink": a tap of the test's own with a low MAC. */
	int up = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	assert_true(up >= 0);
	x->fds[x->nfds++] = up;
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "uplink0");
	assert_int_equal(ioctl(up, TUNSETIFF, &ifr), 0);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, "\x02\x00\x00\x00\x00\x01", 6);
	assert_int_equal(t_if_do(SIOCSIFHWADDR, "uplink0", &ifr), 0);
	assert_int_equal(t_if_do(SIOCGIFINDEX, "uplink0", &ifr), 0);
	assert_int_equal(t_if_do(SIOCBRADDIF, BR, &ifr), 0);
	assert_string_equal(address_of(BR), "02:00:00:00:00:01");

	int fd = tap_open_mac(x, BR, NULL, guest, name);
	assert_string_equal(address_of(name), "fe:54:00:12:34:56");
	assert_string_equal(address_of(BR), "02:00:00:00:00:01");
	int fd2 = tap_open(x, BR, NULL, name);
	assert_int_equal(strncmp(address_of(name), "fe:", 3), 0);
	assert_string_not_equal(address_of(name), "fe:54:00:12:34:56");
	assert_string_equal(address_of(BR), "02:00:00:00:00:01");
	tap_close(x, fd);
	tap_close(x, fd2);
	tap_close(x, up);
}

/* A persistent tap of that name (made by someone else) is not taken over:
 * TUNSETIFF would attach to it. */
static void test_existing_persistent_tap(void **state)
{
	(void)state;
	need_netns();
	int t = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	assert_true(t >= 0);
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "ptap0");
	assert_int_equal(ioctl(t, TUNSETIFF, &ifr), 0);
	assert_int_equal(ioctl(t, TUNSETPERSIST, 1), 0);
	close(t);
	assert_true(t_if_exists("ptap0"));
	expect_refused(BR, "ptap0", -EEXIST, "tap ptap0: an interface of that name "
	               "exists already");
	assert_string_equal(t_if_master("ptap0"), "");
	t = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	assert_int_equal(ioctl(t, TUNSETIFF, &ifr), 0);
	assert_int_equal(ioctl(t, TUNSETPERSIST, 0), 0);
	close(t);
	assert_false(t_if_exists("ptap0"));
}

static void test_bad_names(void **state)
{
	static const char *const bad[] = {
		"", ".", "..", "a/b", "a b", " a", "a\tb", "a\nb", "abcdefghijklmnop",
		"a:1", "tap%d", "t\x7f", "t\xc3\xa9",
	};
	(void)state;
	need_netns();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(sv_ifname_valid(bad[i]));
		expect_refused(BR, bad[i], -EINVAL, "not a valid interface name");
		expect_refused(bad[i], NULL, -EINVAL, "not a valid interface name");
	}
	assert_false(sv_ifname_valid(NULL));
	expect_refused(NULL, NULL, -EINVAL, "bridge \"\": not a valid interface name");
	expect_refused(BR, "a/b", -EINVAL, "tap \"a/b\": not a valid interface name");
	assert_true(sv_ifname_valid("abcdefghijklmno"));
	assert_true(sv_ifname_valid("..."));
	assert_true(sv_ifname_valid("br-lan.10"));
	/* A NULL err is fine. */
	assert_int_equal(sv_tap_open(BR, "a b", NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sv_tap_open("nobr0", NULL, NULL, NULL, NULL), -ENODEV);
}

static void test_missing_bridge(void **state)
{
	(void)state;
	need_netns();
	expect_refused("nobr0", NULL, -ENODEV, "bridge nobr0: no such bridge");
	expect_refused("nobr0", "qsupx", -ENODEV, "bridge nobr0: no such bridge");
	t_bridge_del(BR);
	expect_refused(BR, NULL, -ENODEV, "bridge " BR ": no such bridge");
}

static void test_not_a_bridge(void **state)
{
	struct fx *x = *state;
	char name[SV_IFNAMSIZ];
	need_netns();
	expect_refused("lo", NULL, -EOPNOTSUPP, "bridge lo: lo is not a bridge");
	/* Nor is a tap (here a bridge port itself). */
	int fd = tap_open(x, BR, "port0", name);
	expect_refused("port0", NULL, -EOPNOTSUPP, "bridge port0: port0 is not a bridge");
	tap_close(x, fd);
}

/* Without CAP_NET_ADMIN (a child turned into nobody): refused with the
 * reason, and nothing left behind. */
static void test_unprivileged(void **state)
{
	int p[2];
	(void)state;
	need_netns();
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sv_error err = { 0 };
		char name[SV_IFNAMSIZ];
		int r = -1;
		if (setgroups(0, NULL) == 0 && setresgid(65534, 65534, 65534) == 0 &&
		    setresuid(65534, 65534, 65534) == 0)
			r = sv_tap_open(BR, NULL, NULL, name, &err);
		else
			snprintf(err.msg, sizeof(err.msg), "dropping privileges: %s",
			         strerror(errno));
		if (write(p[1], err.msg, strlen(err.msg)) < 0)
			_exit(3);
		_exit(r == -EPERM ? 0 : r >= 0 ? 1 : 2);
	}
	close(p[1]);
	char msg[300] = "";
	ssize_t n = read(p[0], msg, sizeof(msg) - 1);
	close(p[0]);
	msg[n > 0 ? n : 0] = '\0';
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("unprivileged sv_tap_open: status %#x, \"%s\"", status, msg);
	assert_non_null(strstr(msg, "creating a tap device needs CAP_NET_ADMIN"));
	assert_string_equal(interfaces(), "lo " BR);
}

/* ---- end to end: QEMU takes the fd ---- */

struct exec {
	int done, status;
	json_t *ret;
};

static void on_exec(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct exec *w = arg;
	(void)c;
	w->done = 1;
	w->status = r->status;
	w->ret = r->status == QMP_EREPLY
	         ? json_pack("{s:s, s:s}", "class", r->err_class, "desc", r->err_desc)
	         : json_incref(r->ret);
}

static int exec_fd(struct t_qmp *t, const char *cmd, json_t *args, int fd, json_t **ret)
{
	struct exec w = { 0 };
	int rc = qmp_client_execute_fd(t->c, cmd, args, fd, 0, on_exec, &w);
	json_decref(args);
	if (rc < 0)
		return rc;
	assert_int_equal(t_run_until_flag(t->loop, &w.done, 10000), 0);
	if (ret)
		*ret = w.ret;
	else
		json_decref(w.ret);
	return w.status;
}

/* Run a command, taking args; fail with QEMU's error unless it succeeds. */
static json_t *qmp_ok(struct t_qemu *q, struct t_qmp *t, const char *cmd, json_t *args)
{
	json_t *ret = NULL;
	int rc = t_qmp_exec(t, cmd, args, &ret);
	json_decref(args);
	if (rc != 0)
		fail_msg("%s: %s %s; QEMU said: %s", cmd, qmp_strerror(rc),
		         json_string_value(json_object_get(ret, "desc")), t_qemu_stderr(q));
	return ret;
}

static const char *hmp(struct t_qemu *q, struct t_qmp *t, const char *line)
{
	static char buf[4096];
	json_t *ret = qmp_ok(q, t, "human-monitor-command",
	                     json_pack("{s:s}", "command-line", line));
	snprintf(buf, sizeof(buf), "%s", json_string_value(ret));
	json_decref(ret);
	return buf;
}

static bool gone(const char *name)
{
	for (int i = 0; i < 100 && t_if_exists(name); i++)
		usleep(20000);
	return !t_if_exists(name);
}

/* Does the virtio-net device offer checksum offload to the guest? QEMU
 * does only when the tap has vnet headers. NULL when it cannot be told. */
static const char *guest_csum(struct t_qmp *t)
{
	json_t *ret = NULL;
	json_t *args = json_pack("{s:s}", "path", "/machine/peripheral/nic0/virtio-backend");
	int rc = t_qmp_exec(t, "x-query-virtio-status", args, &ret);
	json_decref(args);
	const char *r = NULL;
	if (rc == 0) {
		char *dump = json_dumps(ret, JSON_COMPACT);
		r = dump && strstr(dump, "VIRTIO_NET_F_GUEST_CSUM") ? "yes" : "no";
		free(dump);
	}
	json_decref(ret);
	return r;
}

/* QEMU as it runs under qsupd: unprivileged (qsupd drops privileges
 * before exec; here -runas does it, so elevateprivileges stays allowed),
 * sandboxed without spawn, TCG, one spare pcie-root-port. Stopped (-S)
 * without a guest; with one (the tiny test guest, skipped when it is not
 * built), booted until its ready marker. */
static void qemu_start(struct fx *x, bool guest)
{
	char kernel[600], initrd[600], path[600], append[1024];
	const char *extra[24] = {
		"-S", "-machine", "q35", "-accel", "tcg", "-m", guest ? "256" : "64",
		"-sandbox", "on,obsolete=deny,spawn=deny,resourcecontrol=deny",
		"-runas", "nobody",
		"-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1",
	};
	size_t n = 13;
	if (guest) {
		snprintf(kernel, sizeof(kernel), "%s/vmlinux", t_guestdir());
		snprintf(initrd, sizeof(initrd), "%s/initramfs.cpio.gz", t_guestdir());
		snprintf(path, sizeof(path), "%s/cmdline", t_guestdir());
		const char *cmdline = t_read_line(path);
		if (!cmdline || access(kernel, R_OK) || access(initrd, R_OK)) {
			printf("# skip: no test guest in %s (make guest)\n", t_guestdir());
			skip();
		}
		snprintf(append, sizeof(append), "%s", cmdline);
		extra[n++] = "-kernel";
		extra[n++] = kernel;
		extra[n++] = "-initrd";
		extra[n++] = initrd;
		extra[n++] = "-append";
		extra[n++] = append;
	}
	extra[n] = NULL;
	uv_loop_init(&x->loop);
	x->qemu = true;
	int rc = t_qemu_spawn(&x->loop, &x->q, extra);
	if (rc < 0)
		fail_msg("spawn qemu-system-x86_64: %s", uv_strerror(rc));
	rc = t_qmp_open(&x->loop, &x->t, x->q.qmp_path, 10000);
	if (rc < 0)
		fail_msg("QMP: %s; QEMU said: %s", qmp_strerror(rc), t_qemu_stderr(&x->q));
	if (!guest)
		return;
	x->serial = true;
	assert_int_equal(t_serial_open(&x->loop, &x->ser, x->q.serial_path, 5000), 0);
	json_decref(qmp_ok(&x->q, &x->t, "cont", NULL));
	if (t_serial_wait(&x->ser, "QSUP-GUEST-READY", &x->seen, 60000) < 0)
		fail_msg("no ready marker; console:\n%s", x->ser.buf ? x->ser.buf : "");
}

/* Open a tap called ifname on the bridge and give it to QEMU as fdname;
 * our copy is closed. */
static void give_tap(struct fx *x, const char *ifname, const char *fdname)
{
	int fd = tap_open(x, BR, ifname, NULL);
	int rc = exec_fd(&x->t, "getfd", json_pack("{s:s}", "fdname", fdname), fd, NULL);
	if (rc != 0)
		fail_msg("getfd: %s; QEMU said: %s", qmp_strerror(rc), t_qemu_stderr(&x->q));
	tap_close(x, fd);
	assert_true(t_if_exists(ifname));   /* QEMU holds it now */
}

static void test_qemu_takes_the_fd(void **state)
{
	struct fx *x = *state;
	json_t *ret;
	need_netns();
	qemu_start(x, false);
	struct t_qemu *q = &x->q;
	struct t_qmp *t = &x->t;

	give_tap(x, "qsupvm0", "tap-nic0");
	/* vnet_hdr= is refused with fd=: QEMU reads the flag from the fd. */
	json_t *args = json_pack("{s:s, s:s, s:s, s:b}", "type", "tap", "id", "net0",
	                         "fd", "tap-nic0", "vnet_hdr", 1);
	int rc = t_qmp_exec(t, "netdev_add", args, &ret);
	json_decref(args);
	assert_int_equal(rc, QMP_EREPLY);
	const char *desc = json_string_value(json_object_get(ret, "desc"));
	printf("# note: netdev_add with fd= and vnet_hdr=: %s\n", desc);
	assert_non_null(strstr(desc, "vnet_hdr"));
	json_decref(ret);

	json_decref(qmp_ok(q, t, "netdev_add", json_pack("{s:s, s:s, s:s}", "type", "tap",
	                   "id", "net0", "fd", "tap-nic0")));
	json_decref(qmp_ok(q, t, "device_add", json_pack("{s:s, s:s, s:s, s:s}",
	                   "driver", "virtio-net-pci", "id", "nic0", "netdev", "net0",
	                   "bus", "rp0")));
	const char *net = hmp(q, t, "info network");
	if (!strstr(net, "nic0") || !strstr(net, "net0: index=0,type=tap,fd="))
		fail_msg("info network: %s", net);
	const char *csum = guest_csum(t);
	printf("# note: virtio-net offers GUEST_CSUM (vnet headers in use): %s\n",
	       csum ? csum : "cannot tell");
	if (csum)
		assert_string_equal(csum, "yes");
	assert_string_equal(t_if_master("qsupvm0"), BR);
	assert_true(sysfs_hex("qsupvm0", "flags") & IFF_UP);

	/* The guest never ran, so it cannot release the NIC: device_del stays
	 * pending (as with a guest that ignores it). netdev_del still closes
	 * the tap at once; the NIC stays, with its link down. */
	json_decref(qmp_ok(q, t, "device_del", json_pack("{s:s}", "id", "nic0")));
	json_decref(qmp_ok(q, t, "netdev_del", json_pack("{s:s}", "id", "net0")));
	assert_true(gone("qsupvm0"));
	assert_string_equal(interfaces(), "lo " BR);
	net = hmp(q, t, "info network");
	printf("# note: info network after netdev_del: %s\n", net);
	assert_non_null(strstr(net, "nic0"));

	/* A tap QEMU still has goes when QEMU exits. */
	give_tap(x, "qsupvm1", "tap-nic1");
	json_decref(qmp_ok(q, t, "netdev_add", json_pack("{s:s, s:s, s:s}", "type", "tap",
	                   "id", "net1", "fd", "tap-nic1")));
	json_decref(qmp_ok(q, t, "quit", NULL));
	assert_int_equal(t_run_until_flag(&x->loop, &q->exited, 10000), 0);
	assert_true(gone("qsupvm1"));
}

/* With a guest: it sees the NIC, releases it on device_del, and the tap
 * goes at the netdev_del that follows DEVICE_DELETED (hotplug.c's order). */
static void test_guest_plug_unplug(void **state)
{
	struct fx *x = *state;
	need_netns();
	qemu_start(x, true);
	struct t_qemu *q = &x->q;
	struct t_qmp *t = &x->t;

	give_tap(x, "qsupvm2", "tap-nic2");
	json_decref(qmp_ok(q, t, "netdev_add", json_pack("{s:s, s:s, s:s}", "type", "tap",
	                   "id", "net2", "fd", "tap-nic2")));
	json_decref(qmp_ok(q, t, "device_add", json_pack("{s:s, s:s, s:s, s:s}",
	                   "driver", "virtio-net-pci", "id", "nic2", "netdev", "net2",
	                   "bus", "rp0")));
	if (t_serial_wait(&x->ser, "QSUP-HOTPLUG add net ", &x->seen, 30000) < 0)
		fail_msg("the guest did not see the NIC; console:\n%s", x->ser.buf);
	const char *csum = guest_csum(t);
	if (csum)
		assert_string_equal(csum, "yes");
	assert_string_equal(t_if_master("qsupvm2"), BR);

	size_t from = json_array_size(t->events);
	json_decref(qmp_ok(q, t, "device_del", json_pack("{s:s}", "id", "nic2")));
	if (!t_qmp_wait_event(t, "DEVICE_DELETED", &from, 30000))
		fail_msg("no DEVICE_DELETED for nic2; console:\n%s", x->ser.buf);
	if (t_serial_wait(&x->ser, "QSUP-HOTPLUG remove net ", &x->seen, 10000) < 0)
		fail_msg("the guest did not report the NIC gone; console:\n%s", x->ser.buf);
	assert_true(t_if_exists("qsupvm2"));   /* the netdev still holds it */
	json_decref(qmp_ok(q, t, "netdev_del", json_pack("{s:s}", "id", "net2")));
	assert_true(gone("qsupvm2"));
	assert_string_equal(interfaces(), "lo " BR);
}

int main(void)
{
	t_netns_enter();
	if (t_netns_skip[0])
		printf("# note: skipping: %s\n", t_netns_skip);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_enslaves_and_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mtu_copied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_given_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mac, setup, teardown),
		cmocka_unit_test_setup_teardown(test_existing_persistent_tap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_bridge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_bridge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unprivileged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qemu_takes_the_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_plug_unplug, setup, teardown),
	};
	return cmocka_run_group_tests_name("tap", tests, NULL, NULL);
}
