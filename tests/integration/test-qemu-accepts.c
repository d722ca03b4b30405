/*
 * QEMU accepts what the argv builder produces: every example profile in
 * profiles/, and a profile full of commas and would-be option injections,
 * is started for real (uv_spawn, argv vector, no shell) with -S and the fds
 * the builder lists (opened as qsupd opens them, fdpass.h), checked over
 * QMP, and quit. query-block must show each drive on its fd set, and that
 * fd, seen from QEMU's /proc entry, must be exactly the intended file; for
 * the injection case the serial log must land in exactly its file, and the
 * QMP socket must be where the comma-laden run dir says.
 *
 * Image files are redirected into a temp dir (created with qemu-img), and
 * kernels come from $QSUP_GUESTDIR. When run as root the program moves into
 * private mount and network namespaces with a bridge br0, so server.ini's
 * bridge NIC really gets a tap on it; otherwise bridge NICs are swapped for
 * user NICs (and the log says so). KVM is used when /dev/kvm is usable, TCG otherwise
 * (profiles that say tcg keep it); each test prints which.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <net/if.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "argv.h"
#include "fdpass.h"
#include "host.h"
#include "profile.h"
#include "testutil.h"
#include "util.h"

struct fx {
	uv_loop_t loop;
	char *tmp;
};

struct child {
	uv_process_t proc;
	int exited;
	int64_t status;
	int sig;
};

static bool kvm_usable;
static bool have_bridge;        /* private netns with br0 allowed */

/* ------------------------------------------------------------ namespaces */

static int if_up(int s, const char *name)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	ifr.ifr_flags |= IFF_UP;
	return ioctl(s, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -errno;
}

/* As root: private mount + network namespaces (and /sys for the new one,
 * where tap.c looks bridges up), lo and br0 up. */
static bool bridge_ns_setup(void)
{
	int s, r;

	if (geteuid() != 0 || unshare(CLONE_NEWNS | CLONE_NEWNET) < 0)
		return false;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) < 0)
		return false;
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return false;
	r = if_up(s, "lo");
	if (r == 0 && ioctl(s, SIOCBRADDBR, "br0") < 0)
		r = -errno;
	if (r == 0)
		r = if_up(s, "br0");
	close(s);
	return r == 0;
}

/* ------------------------------------------------------------ processes */

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct child *c = p->data;

	c->exited = 1;
	c->status = status;
	c->sig = sig;
}

/* Spawn argv (no shell, scrubbed environment), output to log, with fds[i]
 * as its fd SV_FD_FIRST + i. */
static int spawn_fds(uv_loop_t *loop, struct child *c, char **argv, const char *log,
                     const int *fds, size_t nfds)
{
	static char *env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uv_stdio_container_t stdio[SV_FD_FIRST + 64] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_INHERIT_FD, .data.fd = fd },
		{ .flags = UV_INHERIT_FD, .data.fd = fd },
	};
	size_t n = nfds ? SV_FD_FIRST + nfds : 3;
	uv_process_options_t o = {
		.exit_cb = on_exit_cb, .file = argv[0], .args = argv, .env = env,
		.stdio = stdio, .stdio_count = (int)n,
	};
	int r;

	assert_true(nfds <= 64);
	for (size_t i = 3; i < n; i++) {
		int f = i < SV_FD_FIRST ? -1 : fds[i - SV_FD_FIRST];
		stdio[i].flags = f >= 0 ? UV_INHERIT_FD : UV_IGNORE;
		stdio[i].data.fd = f;
	}

	memset(c, 0, sizeof(*c));
	c->proc.data = c;
	if (fd < 0)
		return -errno;
	r = uv_spawn(loop, &c->proc, &o);
	close(fd);
	if (r < 0)
		uv_close((uv_handle_t *)&c->proc, NULL);
	return r;
}

static int spawn(uv_loop_t *loop, struct child *c, char **argv, const char *log)
{
	return spawn_fds(loop, c, argv, log, NULL, 0);
}

/* Wait for c to exit (killing it after ms) and close its handle. */
static void reap(uv_loop_t *loop, struct child *c, uint64_t ms)
{
	if (t_run_until_flag(loop, &c->exited, ms) < 0) {
		uv_process_kill(&c->proc, SIGKILL);
		t_run_until_flag(loop, &c->exited, 5000);
	}
	uv_close((uv_handle_t *)&c->proc, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

static void run_cmd(struct fx *x, char **argv)
{
	char log[512];
	struct child c;

	snprintf(log, sizeof(log), "%s/cmd.log", x->tmp);
	assert_int_equal(spawn(&x->loop, &c, argv, log), 0);
	reap(&x->loop, &c, 30000);
	if (c.status != 0 || c.sig)
		fail_msg("%s failed (%lld, signal %d): %s", argv[0], (long long)c.status,
		         c.sig, t_read_line(log));
}

static const char *last_lines(const char *path)
{
	static char buf[2048];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	buf[0] = '\0';
	if (f) {
		if (fseek(f, -(long)(sizeof(buf) - 1), SEEK_END) < 0)
			rewind(f);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

/* ------------------------------------------------------------ fixtures */

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	if (!x || uv_loop_init(&x->loop) < 0)
		return -1;
	x->tmp = t_mkdtemp("qsup-accepts");
	if (!x->tmp)
		return -1;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	t_rmtree(x->tmp);
	free(x->tmp);
	assert_int_equal(t_loop_finish(&x->loop), 0);
	free(x);
	return 0;
}

static char *tmp_path(struct fx *x, const char *name)
{
	char *p;

	assert_int_not_equal(asprintf(&p, "%s/%s", x->tmp, name), -1);
	return p;
}

static void replace(char **field, char *v)
{
	free(*field);
	*field = v;
}

static const char *guest_file(const char *name)
{
	static char path[2][512];
	static int i;
	char *p = path[i ^= 1];

	snprintf(p, sizeof(path[0]), "%s/%s", t_guestdir(), name);
	if (access(p, R_OK) < 0)
		skip();
	return p;
}

/* Create an image for d at its (already redirected) path. */
static void make_image(struct fx *x, const struct sv_drive *d)
{
	char *argv[] = { "qemu-img", "create", "-q", "-f", d->format, d->file, "64M", NULL };

	run_cmd(x, argv);
}

/* Point the profile's files into the temp dir, create them, and make the
 * kernel the test guest's. Bridge NICs become user NICs without br0. */
static void redirect(struct fx *x, struct sv_profile *p)
{
	char name[64];

	for (size_t i = 0; i < p->ndrives; i++) {
		struct sv_drive *d = &p->drives[i];

		if (!d->file)
			continue;
		snprintf(name, sizeof(name), "%s.%s", d->id, d->format);
		replace(&d->file, tmp_path(x, name));
		make_image(x, d);
	}
	if (p->serial_log)
		replace(&p->serial_log, tmp_path(x, "serial.log"));
	if (p->kernel)
		replace(&p->kernel, strdup(guest_file("vmlinux")));
	if (p->initrd)
		replace(&p->initrd, strdup(guest_file("initramfs.cpio.gz")));
	for (size_t i = 0; i < p->nnics && !have_bridge; i++) {
		if (p->nics[i].nforwards)
			print_message("# note: %s: [nic.%s] host port forwards dropped (no "
			              "private network namespace: the ports may be taken)\n",
			              p->name, p->nics[i].id);
		p->nics[i].nforwards = 0;
		if (p->nics[i].type != SV_NIC_BRIDGE)
			continue;
		print_message("# note: %s: [nic.%s] bridge %s replaced by a user NIC (no "
		              "root, so no private network namespace with a bridge)\n",
		              p->name, p->nics[i].id, p->nics[i].bridge);
		p->nics[i].type = SV_NIC_USER;
	}
}

static struct sv_profile *load(const char *path)
{
	struct sv_strv errs = { 0 };
	struct sv_profile *p = NULL;

	if (sv_profile_load(path, &p, &errs) < 0)
		fail_msg("%s: %s", path, errs.n ? errs.v[0] : "cannot load");
	sv_strv_free(&errs);
	return p;
}

/* ------------------------------------------------------------ the run */

typedef void (*check_fn)(struct fx *x, struct t_qmp *t, const struct sv_profile *p,
                         const struct sv_argv *a, int pid);

static void qmp_ok(struct t_qmp *t, const char *cmd, json_t *args, json_t **ret)
{
	int r = t_qmp_exec(t, cmd, args, ret);

	if (r != 0)
		fail_msg("%s: %s %s", cmd, qmp_strerror(r),
		         ret && *ret ? json_string_value(json_object_get(*ret, "desc")) : "");
}

/* Build p's argv for run_dir, start QEMU, check it over QMP, quit. */
static void start_and_quit(struct fx *x, struct sv_profile *p, const char *run_dir,
                           check_fn check)
{
	struct sv_error err = { 0 };
	struct sv_identity me = { .uid = getuid(), .gid = getgid() };
	struct sv_facts f;
	struct sv_argv a;
	struct t_qmp t;
	struct child c;
	json_t *ret = NULL;
	char dir[512], *log = tmp_path(x, "qemu.log");
	int r, fds[64];
	char taps[64][SV_IFNAMSIZ];

	assert_int_equal(sv_facts_init(&f, run_dir, p->name), 0);
	f.kvm_usable = kvm_usable;
	if (p->accel == SV_ACCEL_KVM && !kvm_usable) {
		print_message("# note: %s: accel kvm changed to kvm:tcg (no usable KVM)\n",
		              p->name);
		p->accel = SV_ACCEL_KVM_TCG;
	}
	if (sv_argv_build(p, &f, &a, &err) < 0)
		fail_msg("%s", err.msg);
	print_message("# using %s for %s\n", a.accel == SV_ACCEL_KVM ? "kvm" : "tcg",
	              p->name);
	snprintf(dir, sizeof(dir), "%s/%s", run_dir, p->name);
	assert_true(mkdir(run_dir, 0700) == 0 || errno == EEXIST);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_true(a.nfds <= 64);
	if (sv_fdpass_open(&a, &me, fds, taps, &err) < 0)
		fail_msg("%s", err.msg);
	for (size_t i = 0; i < a.nfds; i++)
		if (taps[i][0] && a.fds[i].kind == SV_FD_BRIDGE)
			print_message("# note: %s: tap %s on bridge %s\n", a.fds[i].what,
			              taps[i], a.fds[i].bridge);
	assert_int_equal(spawn_fds(&x->loop, &c, a.argv, log, fds, a.nfds), 0);
	sv_fdpass_close(fds, a.nfds);
	r = t_qmp_open(&x->loop, &t, f.qmp_path, 20000);
	if (r < 0) {
		reap(&x->loop, &c, 0);
		fail_msg("QMP %s: %s; QEMU said: %s", f.qmp_path, qmp_strerror(r),
		         last_lines(log));
	}
	qmp_ok(&t, "query-status", NULL, &ret);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "prelaunch");
	json_decref(ret);
	if (check)
		check(x, &t, p, &a, c.proc.pid);
	t_qmp_exec(&t, "quit", NULL, NULL);
	t_qmp_close(&t);
	reap(&x->loop, &c, 15000);
	if (c.status != 0 || c.sig)
		fail_msg("QEMU exited with %lld (signal %d): %s", (long long)c.status,
		         c.sig, last_lines(log));
	sv_argv_free(&a);
	free(log);
}

/* The file behind fd of process pid, resolved (static buffer). */
static const char *fd_target(int pid, int fd)
{
	static char buf[4096];
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/fd/%d", pid, fd);
	n = readlink(link, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* The fd QEMU keeps in fd set id (-add-fd dups the fd it inherits into the
 * set, and closes the original). */
static int fdset_fd(struct t_qmp *t, int id)
{
	json_t *ret = NULL, *set;
	size_t i;
	int fd = -1;

	qmp_ok(t, "query-fdsets", NULL, &ret);
	json_array_foreach(ret, i, set)
		if (json_integer_value(json_object_get(set, "fdset-id")) == id)
			fd = (int)json_integer_value(json_object_get(json_array_get(
			        json_object_get(set, "fds"), 0), "fd"));
	json_decref(ret);
	if (fd < 0)
		fail_msg("no fd set %d in QEMU", id);
	return fd;
}

/* The fd the builder gave drive d's image itself. */
static int drive_fd(const struct sv_argv *a, const struct sv_drive *d)
{
	char what[64];

	snprintf(what, sizeof(what), "%s %s", d->cdrom ? "cdrom" : "disk", d->id);
	for (size_t i = 0; i < a->nfds; i++)
		if (!strcmp(a->fds[i].what, what))
			return a->fds[i].fd;
	return -1;
}

/* query-block lists exactly the profile's drives, under our node names, each
 * on the fd set of its own fd, and that fd in QEMU is exactly the file. */
static void check_block(struct fx *x, struct t_qmp *t, const struct sv_profile *p,
                        const struct sv_argv *a, int pid)
{
	json_t *ret = NULL, *b;
	size_t i, n = 0;

	(void)x;
	qmp_ok(t, "query-block", NULL, &ret);
	json_array_foreach(ret, i, b) {
		json_t *ins = json_object_get(b, "inserted");
		const char *node = json_string_value(json_object_get(ins, "node-name"));
		const char *file = json_string_value(json_object_get(ins, "file"));
		bool found = false;

		if (!ins)
			continue;
		for (size_t j = 0; j < p->ndrives; j++) {
			char want[64];

			snprintf(want, sizeof(want), "drive.%s", p->drives[j].id);
			if (p->drives[j].file && node && !strcmp(node, want)) {
				char plain[64], quoted[80], real[4096];
				int fd = drive_fd(a, &p->drives[j]);

				/* A qcow2 node names its backing (null): QEMU then shows
				 * the file as json:{...} around the fd set's name. */
				snprintf(plain, sizeof(plain), "/dev/fdset/%d", fd);
				snprintf(quoted, sizeof(quoted), "\"%s\"", plain);
				if (strcmp(file, plain) && !(!strncmp(file, "json:", 5) &&
				                             strstr(file, quoted)))
					fail_msg("%s: %s, not on %s", want, file, plain);
				assert_non_null(realpath(p->drives[j].file, real));
				int qfd = fdset_fd(t, fd);
				if (strcmp(fd_target(pid, qfd), real))
					fail_msg("%s: fd set %d's fd %d in QEMU is %s, not %s", want,
					         fd, qfd, fd_target(pid, qfd), real);
				assert_true(json_is_true(json_object_get(ins, "ro")) ==
				            p->drives[j].read_only);
				found = true;
			}
		}
		if (!found)
			fail_msg("unexpected block node %s (%s)", node, file);
		n++;
	}
	for (size_t j = 0; j < p->ndrives; j++)
		n -= p->drives[j].file != NULL;
	assert_int_equal(n, 0);
	json_decref(ret);
}

/* ------------------------------------------------------------ tests */

static void run_example(void **state, const char *name)
{
	struct fx *x = *state;
	char path[512], *run = tmp_path(x, "run");
	struct sv_profile *p;

	snprintf(path, sizeof(path), "%s/profiles/%s.ini", t_srcdir(), name);
	p = load(path);
	redirect(x, p);
	start_and_quit(x, p, run, check_block);
	sv_profile_free(p);
	free(run);
}

static void test_demo(void **state) { run_example(state, "demo"); }
static void test_server(void **state) { run_example(state, "server"); }
static void test_installer(void **state) { run_example(state, "installer"); }
static void test_hotplug(void **state) { run_example(state, "hotplug"); }
static void test_install_from_iso(void **state) { run_example(state, "install-from-iso"); }

/* The injection profile: a comma in every place a value can hold one. */
static const char inject_ini[] =
	"[guest]\n"
	"accel = kvm:tcg\n"
	"kernel = k,ernel\n"
	"initrd = i,nitrd\n"
	"append = console=ttyS0,115200 quiet\n"
	"[disk.a]\n"
	"file = a,b.qcow2\n"
	"format = qcow2\n"
	"[disk.b]\n"
	"file = x.raw,file.filename=/etc/passwd\n"
	"format = raw\n"
	"bus = sata\n"
	"[cdrom.c]\n"
	"file = c.iso,if=none,id=evil\n"
	"[serial]\n"
	"log = log,file=evil.log\n";

/* The fd the builder gave the file called what. */
static int fd_of(const struct sv_argv *a, const char *what)
{
	for (size_t i = 0; i < a->nfds; i++)
		if (!strcmp(a->fds[i].what, what))
			return a->fds[i].fd;
	fail_msg("no fd for %s", what);
	return -1;
}

static void check_inject(struct fx *x, struct t_qmp *t, const struct sv_profile *p,
                         const struct sv_argv *a, int pid)
{
	json_t *ret = NULL, *args;
	char *log = tmp_path(x, "log,file=evil.log"), *bare = tmp_path(x, "log");
	char *evil = tmp_path(x, "evil.log");
	char want[64], real[4096];

	check_block(x, t, p, a, pid);
	assert_string_equal(fd_target(pid, fdset_fd(t, fd_of(a, "serial log"))), log);
	assert_int_equal(access(log, F_OK), 0);
	assert_int_equal(access(bare, F_OK), -1);
	assert_int_equal(access(evil, F_OK), -1);
	args = json_pack("{s:s,s:s}", "path", "/machine", "property", "kernel");
	qmp_ok(t, "qom-get", args, &ret);
	snprintf(want, sizeof(want), "/proc/self/fd/%d", fd_of(a, "kernel"));
	assert_string_equal(json_string_value(ret), want);
	assert_non_null(realpath(p->kernel, real));
	assert_string_equal(fd_target(pid, fd_of(a, "kernel")), real);
	assert_non_null(realpath(p->initrd, real));
	assert_string_equal(fd_target(pid, fd_of(a, "initrd")), real);
	json_decref(ret);
	json_decref(args);
	args = json_pack("{s:s,s:s}", "path", "/machine", "property", "append");
	qmp_ok(t, "qom-get", args, &ret);
	assert_string_equal(json_string_value(ret), "console=ttyS0,115200 quiet");
	json_decref(ret);
	json_decref(args);
	free(log);
	free(bare);
	free(evil);
}

static void test_commas_and_injection(void **state)
{
	struct fx *x = *state;
	char *ini = tmp_path(x, "inject.ini"), *run = tmp_path(x, "run,dir");
	char *dir = tmp_path(x, "x.raw,file.filename=");
	char *etc = tmp_path(x, "x.raw,file.filename=/etc");
	struct sv_profile *p;

	assert_int_equal(write_file(ini, inject_ini), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(etc, 0700), 0);
	p = load(ini);
	assert_int_equal(symlink(guest_file("vmlinux"), p->kernel), 0);
	assert_int_equal(symlink(guest_file("initramfs.cpio.gz"), p->initrd), 0);
	for (size_t i = 0; i < p->ndrives; i++)
		make_image(x, &p->drives[i]);
	start_and_quit(x, p, run, check_inject);
	sv_profile_free(p);
	free(ini);
	free(run);
	free(dir);
	free(etc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_demo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_installer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_install_from_iso, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hotplug, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commas_and_injection, setup, teardown),
	};
	struct sv_error err = { 0 };
	int r;

	kvm_usable = sv_host_kvm_probe(NULL, &err) == 0;
	if (!kvm_usable)
		printf("# note: KVM is not usable (%s); TCG everywhere\n", err.msg);
	have_bridge = bridge_ns_setup();
	printf("# note: %s\n", have_bridge ? "private network namespace with bridge br0 "
	       "for bridge NICs" : "no private network namespace (not root?): bridge "
	       "NICs become user NICs");
	fflush(stdout);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	return r;
}
