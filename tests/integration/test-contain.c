/*
 * Containment and single ownership, with a real qsupd (as root) and real
 * QEMU: who QEMU runs as and what it holds, what it cannot open, one owner
 * per run dir, one QEMU per guest whatever the daemons do, a start that
 * never ends, restarts refused during a save or a migration, and re-adoption
 * from what the system shows when the state file is missing or damaged.
 * Firmware-only guests use KVM when /dev/kvm can create a VM, TCG otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "identity.h"
#include "sysutil.h"
#include "tdaemon.h"
#include "testutil.h"

#define FW "[guest]\nmemory = 64M\naccel = kvm:tcg\n[shutdown]\ntimeout = 1s\n"
#define str t_str

struct fx {
	struct t_daemon d;
	struct t_ctl c;
	struct t_daemon d2;
	bool have_d2;
};

static struct fx *cur;   /* the running test's */

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_int_equal(t_daemon_init(&x->d), 0);
	x->c.fd = -1;
	*state = cur = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	if (x->have_d2)
		t_daemon_finish(&x->d2);
	int status = t_daemon_finish(&x->d);
	assert_int_equal(status, 0);
	free(x);
	return 0;
}

static void start_daemon(struct fx *x)
{
	if (t_daemon_start(&x->d, NULL) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
}

static json_t *must(struct fx *x, const char *verb, const char *name, int ms)
{
	json_t *r = t_ctl_do(&x->c, verb, name, ms, NULL);
	if (!r)
		fail_msg("%s %s failed; daemon log:\n%s", verb, name, t_daemon_log(&x->d));
	return r;
}

static int start_guest(struct fx *x, const char *name)
{
	json_t *s = must(x, "start", name, 30000);
	int pid = (int)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	assert_true(pid > 0);
	return pid;
}

static json_t *status_of(struct t_ctl *c, const char *name)
{
	json_t *s = t_ctl_do(c, "status", name, 5000, NULL);
	assert_non_null(s);
	return s;
}

/* Wait until name is in state; returns its reason (static). */
static const char *wait_state(struct t_ctl *c, const char *name, const char *want, int ms)
{
	static char reason[1024];
	for (int waited = 0; waited <= ms; waited += 50) {
		json_t *s = status_of(c, name);
		bool ok = !strcmp(str(s, "state"), want);
		snprintf(reason, sizeof(reason), "%s: %s", str(s, "state"), str(s, "reason"));
		json_decref(s);
		if (ok)
			return strchr(reason, ':') + 2;
		usleep(50000);
	}
	fail_msg("%s never became %s (last %s)", name, want, reason);
	return NULL;
}

/* A line of /proc/PID/status after its key, e.g. "Uid:" (static). */
static const char *proc_field(int pid, const char *key)
{
	static char val[512];
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	val[0] = '\0';
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, strlen(key)) == 0) {
			const char *v = line + strlen(key);
			while (*v == ' ' || *v == '\t')
				v++;
			snprintf(val, sizeof(val), "%s", v);
			val[strcspn(val, "\n")] = '\0';
		}
	}
	if (f)
		fclose(f);
	return val;
}

/* Live (not zombie) processes whose command line names guest name and
 * that a qsupd on this test's run dirs started (their fd 6, QEMU's own dir,
 * is in one of them): QEMUs of earlier tests may still be on their way
 * out. */
static bool in_our_run_dirs(int pid)
{
	char link[64], target[4096];
	snprintf(link, sizeof(link), "/proc/%d/fd/6", pid);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	return !strncmp(target, cur->d.run, strlen(cur->d.run)) ||
	       (cur->have_d2 && !strncmp(target, cur->d2.run, strlen(cur->d2.run)));
}

static int count_qemus(const char *name)
{
	char want[96], path[64], buf[8192];
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	snprintf(want, sizeof(want), "guest=%s,", name);
	while (d && (e = readdir(d))) {
		int pid = atoi(e->d_name);
		if (pid <= 0 || !t_pid_alive(pid) || !in_our_run_dirs(pid))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		for (ssize_t i = 0; len > 0 && i < len; i += (ssize_t)strlen(buf + i) + 1) {
			buf[len] = '\0';
			if (!strncmp(buf + i, want, strlen(want))) {
				n++;
				break;
			}
		}
	}
	if (d)
		closedir(d);
	return n;
}

/* argv element after opt in pid's command line (static), or "". */
static const char *cmdline_after(int pid, const char *opt)
{
	static char val[1024];
	if (!sv_proc_arg_after(pid, opt, val, sizeof(val)))
		val[0] = '\0';
	return val;
}

static gid_t kvm_gid(void)
{
	struct group *gr = getgrnam("kvm");
	return gr ? gr->gr_gid : (gid_t)-1;
}

/* A dir every uid may enter, with a raw image of 1 MiB (0600) in it. */
static void open_dir_image(struct fx *x, const char *name, char *path, size_t size)
{
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/images", x->d.dir);
	chmod(x->d.dir, 0755);
	assert_true(mkdir(dir, 0755) == 0 || errno == EEXIST);
	snprintf(path, size, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
}

/* ---- who QEMU runs as ---- */

static void check_identity(int pid, uid_t uid, gid_t gid)
{
	char want[128];
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", uid, uid, uid, uid);
	assert_string_equal(proc_field(pid, "Uid:"), want);
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", gid, gid, gid, gid);
	assert_string_equal(proc_field(pid, "Gid:"), want);
	assert_string_equal(proc_field(pid, "Groups:"), "");
	assert_string_equal(proc_field(pid, "CapEff:"), "0000000000000000");
	assert_string_equal(proc_field(pid, "CapPrm:"), "0000000000000000");
	assert_string_equal(proc_field(pid, "CapInh:"), "0000000000000000");
	assert_string_equal(proc_field(pid, "CapAmb:"), "0000000000000000");
	assert_string_equal(proc_field(pid, "NoNewPrivs:"), "1");
	const char *sandbox = cmdline_after(pid, "-sandbox");
	assert_true(!strncmp(sandbox, "on,", 3) && strstr(sandbox, "spawn=deny") &&
	            strstr(sandbox, "elevateprivileges=deny"));
}

static void test_qemu_identity(void **state)
{
	struct fx *x = *state;
	gid_t kvm = kvm_gid();
	assert_true(kvm != (gid_t)-1);
	t_daemon_profile(&x->d, "one", FW);
	t_daemon_profile(&x->d, "two", FW);
	t_daemon_profile(&x->d, "pinned", FW "[qemu]\nuser = nobody\n");
	t_daemon_profile(&x->d, "rooted", FW "[qemu]\nuser = root\n");
	start_daemon(x);
	int p1 = start_guest(x, "one"), p2 = start_guest(x, "two");
	int p3 = start_guest(x, "pinned"), p4 = start_guest(x, "rooted");
	printf("# using %s\n", t_accel());
	json_t *s1 = status_of(&x->c, "one"), *s2 = status_of(&x->c, "two");
	uid_t u1 = (uid_t)json_integer_value(json_object_get(s1, "uid"));
	uid_t u2 = (uid_t)json_integer_value(json_object_get(s2, "uid"));
	json_decref(s1);
	json_decref(s2);
	printf("# note: one runs as uid %u, two as %u (gid %u, kvm)\n", u1, u2, kvm);
	assert_true(u1 >= SV_UID_FIRST && u1 - SV_UID_FIRST < SV_UID_COUNT);
	assert_true(u2 >= SV_UID_FIRST && u2 - SV_UID_FIRST < SV_UID_COUNT);
	assert_int_not_equal(u1, u2);
	assert_int_equal(u1, sv_identity_hash_uid("one", SV_UID_FIRST, SV_UID_COUNT));
	check_identity(p1, u1, kvm);
	check_identity(p2, u2, kvm);
	check_identity(p3, 65534, kvm);
	/* user = root, written so: QEMU keeps root, the sandbox stays. */
	assert_string_equal(proc_field(p4, "Uid:"), "0\t0\t0\t0");
	assert_string_equal(proc_field(p4, "NoNewPrivs:"), "1");
	/* The same uid at the next start: stable for the name. */
	json_decref(must(x, "kill", "one", 10000));
	p1 = start_guest(x, "one");
	check_identity(p1, u1, kvm);
	/* qsupd --check warns about user = root. */
	char out[8192], path[700];
	snprintf(path, sizeof(path), "%s/rooted.ini", x->d.profiles);
	const char *argv[] = { t_qsupd(), "--check", path, NULL };
	assert_int_equal(t_run_capture(argv, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "user = root"));
}

/* ---- what QEMU holds, and what it cannot open ---- */

static void test_qemu_cannot_open_other_files(void **state)
{
	struct fx *x = *state;
	char a[700], b[700], text[2048];
	open_dir_image(x, "a.img", a, sizeof(a));
	open_dir_image(x, "b.img", b, sizeof(b));
	snprintf(text, sizeof(text), FW "[disk.data]\nfile = %s\nformat = raw\n", a);
	t_daemon_profile(&x->d, "ga", text);
	snprintf(text, sizeof(text), FW "[disk.data]\nfile = %s\nformat = raw\n", b);
	t_daemon_profile(&x->d, "gb", text);
	start_daemon(x);
	int pa = start_guest(x, "ga");
	start_guest(x, "gb");
	printf("# using %s\n", t_accel());
	/* Through ga's QEMU (the passthrough is as strong as QEMU): gb's image,
	 * ga's own image by name, and a root-only file are all refused. */
	const char *files[] = { b, a, "/etc/shadow" };
	for (size_t i = 0; i < 3; i++) {
		json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}}",
		                       "name", "ga", "command", "blockdev-add", "arguments",
		                       "driver", "raw", "node-name", "probe", "file", "driver",
		                       "file", "filename", files[i]), 10000);
		const char *desc = str(json_object_get(r, "error"), "desc");
		printf("# note: blockdev-add %s: %s\n", files[i], desc);
		assert_non_null(strstr(desc, "Permission denied"));
		json_decref(r);
	}
	/* What ga's QEMU holds: its own image (through an fd set), its
	 * sockets, its lock; nothing of gb, of the control socket or of qsupd's
	 * state files. */
	char dir[64], link[700], target[4096];
	bool own_image = false;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", pa);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		own_image |= !strcmp(target, a);
		if (!strcmp(target, b) || strstr(target, "qsupd.sock") || strstr(target, "state.json") ||
		    strstr(target, "qsupd.lock") || strstr(target, "/gb/"))
			fail_msg("ga's QEMU holds %s as fd %s", target, e->d_name);
	}
	if (d)
		closedir(d);
	assert_true(own_image);
	/* The image itself stays root's, 0600. */
	struct stat st;
	assert_int_equal(stat(a, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

/* ---- one owner ---- */

/* A second qsupd on x's dirs with another socket and log. */
static int second_daemon_same_rundir(struct fx *x, char *log, size_t size)
{
	struct t_daemon d2 = x->d;
	snprintf(d2.sock, sizeof(d2.sock), "%s/other.sock", x->d.dir);
	snprintf(d2.log, sizeof(d2.log), "%s/second.log", x->d.dir);
	d2.pid = 0;
	int rc = t_daemon_exec(&d2, NULL, 5000);
	snprintf(log, size, "%s", t_file_tail(d2.log));
	return rc;
}

static void test_one_owner_per_run_dir(void **state)
{
	struct fx *x = *state;
	char log[4200];
	t_daemon_profile(&x->d, "fw", FW);
	start_daemon(x);
	int pid = start_guest(x, "fw");
	int rc = second_daemon_same_rundir(x, log, sizeof(log));
	printf("# note: second qsupd: exit %d: %s", rc, log);
	assert_int_equal(rc, 1);
	char want[700];
	snprintf(want, sizeof(want), "another qsupd (pid %d) owns %s", x->d.pid, x->d.run);
	assert_non_null(strstr(log, want));
	/* It touched nothing: the guest runs on, one QEMU, the same one. */
	assert_null(strstr(log, "fw:"));
	json_t *s = status_of(&x->c, "fw");
	assert_string_equal(str(s, "state"), "running");
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid);
	json_decref(s);
	assert_int_equal(count_qemus("fw"), 1);
	assert_true(t_pid_alive(pid));
}

/* A second daemon with its own run dir and state dir, on x's profiles. */
static void start_second(struct fx *x, struct t_ctl *c2)
{
	assert_int_equal(t_daemon_init(&x->d2), 0);
	x->have_d2 = true;
	/* The same profile dir, through a symlink: the guest lock is named
	 * after the directory itself, so both daemons find the same lock. */
	size_t len = strlen(x->d2.profiles);
	assert_true(len + 6 <= sizeof(x->d2.profiles));
	memcpy(x->d2.profiles + len, "-link", 6);
	assert_int_equal(symlink(x->d.profiles, x->d2.profiles), 0);
	if (t_daemon_start(&x->d2, NULL) < 0)
		fail_msg("second qsupd did not start:\n%s", t_daemon_log(&x->d2));
	assert_int_equal(t_ctl_open(c2, x->d2.sock), 0);
}

static void test_one_qemu_per_guest_across_daemons(void **state)
{
	struct fx *x = *state;
	struct t_ctl c2;
	const char *cls;
	t_daemon_profile(&x->d, "fw", FW);
	start_daemon(x);
	int pid = start_guest(x, "fw");
	start_second(x, &c2);
	/* The second daemon sees the profile, but the guest lock is held. */
	json_t *r = t_ctl_call(&c2, "start", json_pack("{s:s}", "name", "fw"), 10000);
	const char *desc = str(json_object_get(r, "error"), "desc");
	printf("# note: %s\n", desc);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "InvalidState");
	assert_non_null(strstr(desc, "holds the lock of guest fw"));
	json_decref(r);
	assert_int_equal(count_qemus("fw"), 1);
	/* The first daemon dies; its QEMU goes on holding the lock. */
	t_daemon_kill9(&x->d);
	assert_null(t_ctl_do(&c2, "start", "fw", 10000, &cls));
	assert_string_equal(cls, "InvalidState");
	assert_int_equal(count_qemus("fw"), 1);
	/* Once that QEMU is gone, the guest may run under the second. (The
	 * main thread's zombie can show before the vCPU threads have let go
	 * of the fds: retry while the lock is still held.) */
	kill(pid, SIGKILL);
	json_t *s = NULL;
	for (int i = 0; i < 100 && !s; i++) {
		s = t_ctl_do(&c2, "start", "fw", 30000, &cls);
		if (!s)
			usleep(100000);
	}
	if (!s)
		fail_msg("start after the QEMU died: %s\n%s", cls, t_daemon_log(&x->d2));
	json_decref(s);
	assert_int_equal(count_qemus("fw"), 1);
	json_decref(t_ctl_do(&c2, "kill", "fw", 10000, NULL));
	t_ctl_close(&c2);
}

/* ---- re-adoption from what the system shows ---- */

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_readopt_without_records(void **state)
{
	struct fx *x = *state;
	char path[700];
	t_daemon_profile(&x->d, "fw", FW);
	t_daemon_profile(&x->d, "fw2", FW);
	start_daemon(x);
	int pid = start_guest(x, "fw"), pid2 = start_guest(x, "fw2");
	t_daemon_kill9(&x->d);
	/* As if qsupd had died right after the spawn: no pid anywhere. */
	snprintf(path, sizeof(path), "%s/fw/pid", x->d.run);
	unlink(path);
	snprintf(path, sizeof(path), "%s/fw/state.json", x->d.run);
	write_text(path, "{\"version\": 2, \"name\": \"fw\", \"state\": \"starting\", \"pid\": 0}\n");
	/* And a state file damaged beyond reading. */
	snprintf(path, sizeof(path), "%s/fw2/state.json", x->d.run);
	write_text(path, "{\"version\": 2, \"pid\": 12");
	start_daemon(x);
	wait_state(&x->c, "fw", "running", 10000);
	wait_state(&x->c, "fw2", "running", 10000);
	json_t *s = status_of(&x->c, "fw");
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid);
	assert_true(json_is_true(json_object_get(s, "adopted")));
	json_decref(s);
	s = status_of(&x->c, "fw2");
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid2);
	json_decref(s);
	assert_int_equal(count_qemus("fw"), 1);
	assert_int_equal(count_qemus("fw2"), 1);
	assert_non_null(strstr(t_daemon_log(&x->d), "is damaged"));
	/* Adopted, and still the guest's: stop works. */
	json_decref(must(x, "kill", "fw", 10000));
	assert_false(t_pid_alive(pid));
}

/* A QEMU whose start the last qsupd never finished (still -S): killed and
 * the guest started afresh. The daemon is frozen the moment its QEMU
 * appears, before QMP can cont it; that race is retried a few times. */
static void test_prelaunch_started_afresh(void **state)
{
	struct fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW);
	start_daemon(x);
	for (int attempt = 0; attempt < 8; attempt++) {
		t_ctl_send(&x->c, "start", json_pack("{s:s}", "name", "fw"));
		int pid = 0;
		for (int i = 0; i < 5000 && !pid; i++) {
			json_t *s = NULL;
			(void)s;
			char want[64], path[64], buf[4096];
			snprintf(want, sizeof(want), "guest=fw,");
			DIR *d = opendir("/proc");
			struct dirent *e;
			while (d && !pid && (e = readdir(d))) {
				int p = atoi(e->d_name);
				snprintf(path, sizeof(path), "/proc/%d/cmdline", p);
				int fd = p > 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
				ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
				if (fd >= 0)
					close(fd);
				if (n > 0 && in_our_run_dirs(p)) {
					buf[n] = '\0';
					for (ssize_t k = 0; k < n; k += (ssize_t)strlen(buf + k) + 1)
						if (!strncmp(buf + k, want, strlen(want)))
							pid = p;
				}
			}
			if (d)
				closedir(d);
		}
		assert_true(pid > 0);
		kill(x->d.pid, SIGSTOP);
		t_daemon_kill9(&x->d);
		t_ctl_close(&x->c);
		x->c.fd = -1;
		start_daemon(x);
		wait_state(&x->c, "fw", "running", 20000);
		json_t *s = status_of(&x->c, "fw");
		int now = (int)json_integer_value(json_object_get(s, "pid"));
		json_decref(s);
		assert_int_equal(count_qemus("fw"), 1);
		if (strstr(t_daemon_log(&x->d), "still in prelaunch")) {
			printf("# note: caught in prelaunch at attempt %d: pid %d killed, %d runs\n",
			       attempt + 1, pid, now);
			assert_int_not_equal(now, pid);
			assert_false(t_pid_alive(pid));
			return;
		}
		printf("# note: attempt %d: QEMU was already running (re-adopted)\n", attempt + 1);
		assert_int_equal(now, pid);
		json_decref(must(x, "kill", "fw", 10000));
	}
	fail_msg("never caught a QEMU in prelaunch");
}

/* ---- a start that never ends ---- */

/* build/tools/fake-qemu copied to a dir every uid may enter, as NAME. */
static void fake_qemu(struct fx *x, const char *name, char *path, size_t size)
{
	char src[600], dir[600];
	const char *bd = getenv("QSUP_BUILDDIR");
	snprintf(src, sizeof(src), "%s/tools/fake-qemu", bd ? bd : "build");
	snprintf(dir, sizeof(dir), "%s/bin", x->d.dir);
	chmod(x->d.dir, 0755);
	assert_true(mkdir(dir, 0755) == 0 || errno == EEXIST);
	snprintf(path, size, "%s/%s", dir, name);
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	assert_true(in >= 0 && out >= 0);
	char buf[65536];
	for (ssize_t n; (n = read(in, buf, sizeof(buf))) > 0;)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

static void test_start_deadline(void **state)
{
	struct fx *x = *state;
	char hang[700], junk[700], text[2048];
	fake_qemu(x, "fake-qemu-hang", hang, sizeof(hang));
	fake_qemu(x, "fake-qemu-garbage", junk, sizeof(junk));
	snprintf(text, sizeof(text), FW "[restart]\npolicy = never\n[qemu]\nbinary = %s\n"
	         "start-timeout = 2s\n", hang);
	t_daemon_profile(&x->d, "hang", text);
	snprintf(text, sizeof(text), FW "[restart]\npolicy = never\n[qemu]\nbinary = %s\n", junk);
	t_daemon_profile(&x->d, "junk", text);
	start_daemon(x);
	/* Never answers QMP: killed at the deadline, a failed start. */
	json_t *r = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "hang"), 20000);
	const char *desc = str(json_object_get(r, "error"), "desc");
	printf("# note: %s\n", desc);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "GuestFailed");
	assert_non_null(strstr(desc, "not running within 2s"));
	json_decref(r);
	json_t *s = status_of(&x->c, "hang");
	assert_string_equal(str(s, "state"), "stopped");
	assert_string_equal(str(s, "last_exit"), "start-failure");
	json_decref(s);
	assert_int_equal(count_qemus("hang"), 0);
	/* Writes garbage on QMP: killed at once, long before the deadline. */
	r = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "junk"), 20000);
	desc = str(json_object_get(r, "error"), "desc");
	printf("# note: %s\n", desc);
	assert_non_null(strstr(desc, "QMP"));
	json_decref(r);
	assert_int_equal(count_qemus("junk"), 0);
	json_decref(must(x, "list", "", 5000));
}

/* A QEMU that greets on QMP only 12 s after its spawn, as on a host busy
 * starting many guests at once: the start waits for it up to its
 * start-timeout (60 s here), past the 10 s deadline of a command to a
 * running guest. Once it runs, that 10 s deadline is back: a command to
 * its SIGSTOPped QEMU fails long before 60 s. */
static void test_start_slow_greeting(void **state)
{
	struct fx *x = *state;
	char late[700], text[2048];
	fake_qemu(x, "fake-qemu-late", late, sizeof(late));
	snprintf(text, sizeof(text), FW "[restart]\npolicy = never\n[qemu]\nbinary = %s\n"
	         "start-timeout = 60s\n", late);
	t_daemon_profile(&x->d, "late", text);
	start_daemon(x);
	double t0 = t_now();
	json_t *r = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "late"), 90000);
	if (!json_object_get(r, "return"))
		fail_msg("start: %s\n%s", r ? json_dumps(r, 0) : "no reply", t_daemon_log(&x->d));
	assert_string_equal(str(json_object_get(r, "return"), "state"), "running");
	double took = t_now() - t0;
	printf("# note: running %.1f s after the start request (QEMU exec'd after 12 s)\n", took);
	assert_true(took >= 12.0);   /* the wait really was past the 10 s */
	json_decref(r);
	json_t *s = status_of(&x->c, "late");
	pid_t pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	assert_true(pid > 0);
	kill(pid, SIGSTOP);
	t0 = t_now();
	r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "late",
	               "command", "query-status"), 40000);
	if (!r || !json_object_get(r, "error"))
		fail_msg("a command to the stopped QEMU: %s", r ? json_dumps(r, 0) : "no reply in 40 s");
	printf("# note: a command to the SIGSTOPped QEMU failed after %.1f s: %s\n", t_now() - t0,
	       str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	kill(pid, SIGCONT);
	json_decref(must(x, "kill", "late", 10000));
}

/* The reason of name's next backoff, once it is in backoff (static). */
static const char *backoff_reason(struct fx *x, const char *name)
{
	static char why[1024];
	for (int i = 0; i < 200; i++) {
		json_t *s = status_of(&x->c, name);
		bool in = !strcmp(str(s, "state"), "backoff");
		snprintf(why, sizeof(why), "%s", str(s, "reason"));
		json_decref(s);
		if (in)
			return why;
		usleep(50000);
	}
	fail_msg("%s never went into backoff (%s)\n%s", name, why, t_daemon_log(&x->d));
	return why;   /* not reached */
}

/* A run counts as stable from the end of its start, not from the spawn: a
 * QEMU that takes 3 s to start (longer than stable = 1s) and crashes as
 * soon as it runs makes the delay grow (0.2 s, then 0.4 s), where counting
 * from the spawn would have reset it to 0.2 s. */
static void test_slow_start_is_not_a_stable_run(void **state)
{
	struct fx *x = *state;
	char slow[700], text[2048];
	fake_qemu(x, "fake-qemu-slow", slow, sizeof(slow));
	snprintf(text, sizeof(text), FW "[restart]\npolicy = on-failure\ndelay = 200ms\n"
	         "max-delay = 10s\nstable = 1s\nburst = 10\n[qemu]\nbinary = %s\n", slow);
	t_daemon_profile(&x->d, "slowrun", text);
	start_daemon(x);
	const char *want[] = { "restarting in 0.2s", "restarting in 0.4s" };
	json_decref(must(x, "start", "slowrun", 60000));
	for (int i = 0; i < 2; i++) {
		json_t *s = status_of(&x->c, "slowrun");
		pid_t pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
		assert_string_equal(str(s, "state"), "running");
		json_decref(s);
		kill(pid, SIGKILL);
		const char *why = backoff_reason(x, "slowrun");
		printf("# note: crash %d: %s\n", i + 1, why);
		if (!strstr(why, want[i]))
			fail_msg("crash %d: '%s', expected '%s'", i + 1, why, want[i]);
		if (i == 0) {   /* the restart takes 3 s again */
			json_t *e = NULL;
			for (int k = 0; k < 300; k++) {
				e = status_of(&x->c, "slowrun");
				bool up = !strcmp(str(e, "state"), "running");
				json_decref(e);
				if (up)
					break;
				usleep(50000);
			}
		}
	}
	json_decref(must(x, "kill", "slowrun", 10000));
}

/* qsupd going away never kills a QEMU, not even one whose start is in
 * flight (its cont unanswered): closing QMP fails the cont, and that
 * failure must not count as a failed start. The next qsupd finds it in
 * prelaunch and starts the guest afresh. */
static void test_exit_leaves_a_starting_qemu(void **state)
{
	struct fx *x = *state;
	char nocont[700], text[2048];
	fake_qemu(x, "fake-qemu-nocont", nocont, sizeof(nocont));
	snprintf(text, sizeof(text), FW "[qemu]\nbinary = %s\nstart-timeout = 60s\n", nocont);
	t_daemon_profile(&x->d, "slow", text);
	start_daemon(x);
	long long id = t_ctl_send(&x->c, "start", json_pack("{s:s}", "name", "slow"));
	assert_true(id > 0);
	int pid = 0;
	for (int i = 0; i < 200 && !pid; i++) {   /* spawned */
		usleep(50000);
		json_t *s = status_of(&x->c, "slow");
		pid = (int)json_integer_value(json_object_get(s, "pid"));
		json_decref(s);
	}
	assert_true(pid > 0);
	usleep(1000000);   /* its QMP up, the cont in flight: the fake never answers it */
	json_t *s = status_of(&x->c, "slow");
	assert_string_equal(str(s, "state"), "starting");
	json_decref(s);
	assert_int_equal(t_daemon_stop(&x->d), 0);
	if (!t_pid_alive(pid))
		fail_msg("qsupd's exit killed the starting QEMU:\n%s", t_daemon_log(&x->d));
	assert_null(strstr(t_daemon_log(&x->d), "killing QEMU"));
	kill(pid, SIGKILL);
}

/* ---- no restart from a migration or a save ---- */

static void test_restart_refused_while_saving(void **state)
{
	struct fx *x = *state;
	char file[700];
	const char *cls;
	t_daemon_profile(&x->d, "fw", FW);
	start_daemon(x);
	int pid = start_guest(x, "fw");
	snprintf(file, sizeof(file), "%s/fw.save", x->d.dir);
	/* A slow save: 64 KiB/s. */
	long long id = t_ctl_send(&x->c, "save", json_pack("{s:s, s:s, s:s}", "name", "fw",
	                                                   "file", file, "bandwidth", "64K"));
	wait_state(&x->c, "fw", "migrating", 10000);
	assert_null(t_ctl_do(&x->c, "restart", "fw", 5000, &cls));
	assert_string_equal(cls, "InvalidState");
	json_t *r = t_ctl_reply(&x->c, id, 120000);
	if (!json_object_get(r, "return"))
		fail_msg("save: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->d));
	json_decref(r);
	/* Saved: stopped, and it stays so (its state is in the file now). */
	assert_non_null(strstr(wait_state(&x->c, "fw", "stopped", 5000), "saved to "));
	usleep(1500000);
	json_t *s = status_of(&x->c, "fw");
	assert_string_equal(str(s, "state"), "stopped");
	json_decref(s);
	assert_false(t_pid_alive(pid));
	assert_int_equal(count_qemus("fw"), 0);
}

/* ---- the state survives qsupd restarts ---- */

static void test_backoff_and_window_survive(void **state)
{
	struct fx *x = *state;
	t_daemon_profile(&x->d, "crashy", FW "[restart]\ndelay = 3s\nburst = 2\ninterval = 10m\n");
	start_daemon(x);
	int pid = start_guest(x, "crashy");
	/* One crash: back in 3 s; qsupd dies meanwhile, the next one keeps the
	 * pending restart. */
	kill(pid, SIGKILL);
	wait_state(&x->c, "crashy", "backoff", 5000);
	t_daemon_kill9(&x->d);
	start_daemon(x);
	json_t *s = status_of(&x->c, "crashy");
	assert_string_equal(str(s, "state"), "backoff");
	double next = json_real_value(json_object_get(s, "next_start"));
	printf("# note: after the qsupd restart: backoff, next start in %.1f s\n", next);
	assert_true(next > 0 && next <= 3.0);
	json_decref(s);
	wait_state(&x->c, "crashy", "running", 10000);
	/* Second crash: the window (burst 2 in 10 min) holds the first too. */
	s = status_of(&x->c, "crashy");
	pid = (int)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	kill(pid, SIGKILL);
	wait_state(&x->c, "crashy", "backoff", 5000);
	wait_state(&x->c, "crashy", "running", 10000);
	t_daemon_stop(&x->d);   /* a plain qsupd restart */
	start_daemon(x);
	wait_state(&x->c, "crashy", "running", 10000);
	s = status_of(&x->c, "crashy");
	pid = (int)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	kill(pid, SIGKILL);
	const char *why = wait_state(&x->c, "crashy", "failed", 10000);
	printf("# note: %s\n", why);
	assert_non_null(strstr(why, "2 restarts within"));
}

/* ---- a created disk that vanishes ---- */

static void test_vanished_disk_not_recreated(void **state)
{
	struct fx *x = *state;
	char img[700], rec[700];
	const char *cls;
	t_daemon_profile(&x->d, "disky", FW "[disk.root]\nfile = root.qcow2\nformat = qcow2\n"
	                 "size = 16M\n[restart]\ndelay = 1s\nburst = 1\n");
	start_daemon(x);
	int pid = start_guest(x, "disky");
	snprintf(img, sizeof(img), "%s/root.qcow2", x->d.profiles);
	assert_int_equal(access(img, F_OK), 0);
	unlink(img);
	kill(pid, SIGKILL);
	/* The crash-restart does not make a blank disk. */
	const char *why = wait_state(&x->c, "disky", "failed", 10000);
	printf("# note: %s\n", why);
	assert_non_null(strstr(why, "created by qsupd and has disappeared"));
	assert_int_equal(access(img, F_OK), -1);
	/* Nor does an operator's start. */
	assert_null(t_ctl_do(&x->c, "start", "disky", 10000, &cls));
	assert_int_equal(access(img, F_OK), -1);
	/* Taken out of the record, it is made anew. */
	snprintf(rec, sizeof(rec), "%s/disky.images", x->d.state);
	assert_int_equal(unlink(rec), 0);
	start_guest(x, "disky");
	assert_int_equal(access(img, F_OK), 0);
}

/* ---- interface names ---- */

static void test_tap_names_checked(void **state)
{
	struct fx *x = *state;
	t_daemon_profile(&x->d, "fw", "[guest]\nmemory = 64M\naccel = kvm:tcg\n"
	                 "hotplug-slots = 1\n");
	start_daemon(x);
	start_guest(x, "fw");
	const char *bad[] = { "qsup%d", "tap\xc3\xa9", "a b", "-x" };
	for (size_t i = 0; i < 4; i++) {
		json_t *r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}",
		                       "name", "fw", "kind", "nic", "id", "n1", "type", "tap",
		                       "tap", bad[i]), 10000);
		assert_string_equal(str(json_object_get(r, "error"), "class"), "InvalidArgument");
		json_decref(r);
	}
}


/* ---- save and restore files ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static const char *read_small(const char *path)
{
	static char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* save or restore file; returns the error class (static), or NULL. */
static const char *save_restore(struct fx *x, const char *verb, const char *file, char *desc,
                                size_t size)
{
	static char cls[64];
	json_t *r = t_ctl_call(&x->c, verb, json_pack("{s:s, s:s}", "name", "fw", "file", file),
	                       60000);
	json_t *e = json_object_get(r, "error");
	snprintf(cls, sizeof(cls), "%s", str(e, "class"));
	if (desc)
		snprintf(desc, size, "%s", e ? str(e, "desc") : "");
	bool ok = json_object_get(r, "return") != NULL;
	json_decref(r);
	return ok ? NULL : cls;
}

/* A copy of the save file src at dst whose header names another device,
 * the MAC left as it was. */
static void forge(const char *src, const char *dst)
{
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	char *line = NULL;
	size_t cap = 0;
	assert_true(in && out && getline(&line, &cap, in) > 80);
	const char *json = strchr(line + strlen("QSUP-SAVE-2 "), ' ') + 1;
	json_t *h = json_loads(json, 0, NULL);
	assert_non_null(h);
	json_array_append_new(json_object_get(h, "devices"), json_pack("{s:{s:s, s:s, s:s, s:s, "
	                      "s:b}, s:s, s:s}", "spec", "kind", "disk", "id", "loot", "file",
	                      "/etc/shadow", "format", "raw", "readonly", 1, "bus", "hotplug.0",
	                      "state", "attached"));
	char *text = json_dumps(h, JSON_COMPACT);
	fprintf(out, "%.*s%s\n", (int)(json - line), line, text);
	free(text);
	json_decref(h);
	char buf[65536];
	for (size_t n; (n = fread(buf, 1, sizeof(buf), in)) > 0;)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
	free(line);
}

static void test_save_restore_files(void **state)
{
	struct fx *x = *state;
	char victim[700], link[700], other[700], fifo[700], good[700], evil[700], desc[2048];
	t_daemon_profile(&x->d, "fw", "[guest]\nmemory = 64M\naccel = kvm:tcg\n"
	                 "hotplug-slots = 1\n");
	start_daemon(x);
	start_guest(x, "fw");
	printf("# using %s\n", t_accel());
	snprintf(victim, sizeof(victim), "%s/victim", x->d.dir);
	snprintf(link, sizeof(link), "%s/link.save", x->d.dir);
	snprintf(other, sizeof(other), "%s/notes.txt", x->d.dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo.save", x->d.dir);
	snprintf(good, sizeof(good), "%s/good.save", x->d.dir);
	snprintf(evil, sizeof(evil), "%s/evil.save", x->d.dir);
	write_file(victim, "precious\n", 0600);
	assert_int_equal(symlink(victim, link), 0);
	write_file(other, "notes\n", 0644);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* Never through a link, never over another file, never into a FIFO. */
	assert_string_equal(save_restore(x, "save", link, desc, sizeof(desc)), "GenericError");
	printf("# note: save to a link: %s\n", desc);
	assert_string_equal(read_small(victim), "precious\n");
	assert_string_equal(save_restore(x, "save", other, desc, sizeof(desc)), "GenericError");
	printf("# note: save over a file: %s\n", desc);
	assert_string_equal(read_small(other), "notes\n");
	assert_string_equal(save_restore(x, "save", fifo, desc, sizeof(desc)), "GenericError");
	printf("# note: save to a FIFO: %s\n", desc);
	json_t *s = status_of(&x->c, "fw");
	assert_string_equal(str(s, "state"), "running");
	json_decref(s);
	/* A real save: a new file, 0600. */
	assert_null(save_restore(x, "save", good, NULL, 0));
	struct stat st;
	assert_int_equal(stat(good, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(strncmp(read_small(good), "QSUP-SAVE-2 ", 12), 0);
	/* restore: no links, no FIFOs, no headers this host did not sign. */
	unlink(link);
	assert_int_equal(symlink(good, link), 0);
	assert_string_equal(save_restore(x, "restore", link, desc, sizeof(desc)), "NotFound");
	printf("# note: restore from a link: %s\n", desc);
	assert_string_equal(save_restore(x, "restore", fifo, desc, sizeof(desc)), "NotFound");
	printf("# note: restore from a FIFO: %s\n", desc);
	forge(good, evil);
	assert_string_equal(save_restore(x, "restore", evil, desc, sizeof(desc)),
	                    "InvalidArgument");
	printf("# note: restore of a forged header: %s\n", desc);
	assert_non_null(strstr(desc, "signature"));
	assert_int_equal(count_qemus("fw"), 0);
	/* The genuine file restores; saving again replaces it with a new
	 * file (0600 even though the old one was made 0644). */
	assert_null(save_restore(x, "restore", good, NULL, 0));
	wait_state(&x->c, "fw", "running", 10000);
	chmod(good, 0644);
	ino_t before = st.st_ino;
	assert_null(save_restore(x, "save", good, NULL, 0));
	assert_int_equal(stat(good, &st), 0);
	assert_int_not_equal(st.st_ino, before);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_null(save_restore(x, "restore", good, NULL, 0));
	wait_state(&x->c, "fw", "running", 10000);
}

/* ---- the flags and the offline modes ---- */

static void test_uid_range_and_offline_views(void **state)
{
	struct fx *x = *state;
	char a[700], b[700], text[2048], out[16384], path[700];
	open_dir_image(x, "a.img", a, sizeof(a));   /* root's, 0600 */
	open_dir_image(x, "b.img", b, sizeof(b));
	chmod(b, 0644);                              /* readable by every user */
	snprintf(text, sizeof(text), FW "[disk.data]\nfile = %s\nformat = raw\n"
	         "[disk.shared]\nfile = %s\nformat = raw\n", a, b);
	t_daemon_profile(&x->d, "one", text);
	snprintf(text, sizeof(text), FW "[disk.other]\nfile = %s\nformat = raw\n", b);
	t_daemon_profile(&x->d, "two", text);
	/* --check: the image every user may read, the one both profiles write. */
	const char *check[] = { t_qsupd(), "--check", "-d", x->d.profiles, "-r", x->d.run, NULL };
	assert_int_equal(t_run_capture(check, out, sizeof(out), 10000), 0);
	printf("# note: --check:\n%s", out);
	assert_non_null(strstr(out, "is readable by every user"));
	assert_non_null(strstr(out, "is a writable disk of both one [disk.shared] and two "
	                       "[disk.other]"));
	/* --print-argv lists the fds on standard error. */
	snprintf(path, sizeof(path), "%s/one.ini", x->d.profiles);
	const char *print[] = { t_qsupd(), "--print-argv", path, "-r", x->d.run, NULL };
	assert_int_equal(t_run_capture(print, out, sizeof(out), 10000), 0);
	char want[900];
	snprintf(want, sizeof(want), "# fd 7: disk data: file %s (read-write)", a);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "/dev/fdset/7"));
	/* --uid-range: the guest's uid comes from it. */
	const char *bad[] = { "0-5", "9-3", "x", "5", NULL };
	for (size_t i = 0; bad[i]; i++) {
		const char *args[] = { "--uid-range", bad[i], NULL };
		assert_int_equal(t_daemon_exec(&x->d, args, 5000), 2);
	}
	const char *range[] = { "--uid-range", "1900000000-1900000003", NULL };
	if (t_daemon_start(&x->d, range) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
	int pid = start_guest(x, "one");
	json_t *s = status_of(&x->c, "one");
	uid_t uid = (uid_t)json_integer_value(json_object_get(s, "uid"));
	json_decref(s);
	printf("# note: --uid-range 1900000000-1900000003: uid %u\n", uid);
	assert_true(uid >= 1900000000 && uid <= 1900000003);
	check_identity(pid, uid, kvm_gid());
	/* The argv verb lists the fds as start hands them over. */
	json_t *r = t_ctl_call(&x->c, "argv", json_pack("{s:s}", "name", "one"), 5000);
	json_t *fd = json_array_get(json_object_get(json_object_get(r, "return"), "fds"), 0);
	assert_int_equal(json_integer_value(json_object_get(fd, "fd")), 7);
	assert_string_equal(str(fd, "kind"), "file");
	assert_string_equal(str(fd, "path"), a);
	assert_string_equal(str(fd, "mode"), "read-write");
	json_decref(r);
}

/* ---- a qsupd that is not root ---- */

static void test_unprivileged_daemon(void **state)
{
	struct fx *x = *state;
	char home[600], prof[700], xdg[700], stdir[700], sock[800], log[800], path[800];
	snprintf(home, sizeof(home), "%s/nobody", x->d.dir);
	snprintf(prof, sizeof(prof), "%s/profiles", home);
	snprintf(xdg, sizeof(xdg), "%s/xdg", home);
	snprintf(stdir, sizeof(stdir), "%s/state", home);
	snprintf(sock, sizeof(sock), "%s/qsup/qsupd.sock", xdg);
	snprintf(log, sizeof(log), "%s/qsupd.log", x->d.dir);
	chmod(x->d.dir, 0755);
	assert_int_equal(mkdir(home, 0700), 0);
	assert_int_equal(mkdir(prof, 0755), 0);
	assert_int_equal(mkdir(xdg, 0700), 0);
	snprintf(path, sizeof(path), "%s/fw.ini", prof);
	write_file(path, FW, 0644);
	snprintf(path, sizeof(path), "%s/rooted.ini", prof);
	write_file(path, FW "[qemu]\nuser = root\n", 0644);
	const char *chown_args[] = { "/bin/chown", "-R", "65534:65534", home, NULL };
	char out[1024];
	assert_int_equal(t_run_capture(chown_args, out, sizeof(out), 5000), 0);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		char e1[800], e2[800], e3[800];
		snprintf(e1, sizeof(e1), "XDG_RUNTIME_DIR=%s", xdg);
		snprintf(e2, sizeof(e2), "XDG_STATE_HOME=%s", stdir);
		snprintf(e3, sizeof(e3), "HOME=%s", home);
		char *env[] = { e1, e2, e3, "PATH=/usr/bin:/bin", NULL };
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(99);
		execle(t_qsupd(), "qsupd", "-f", "-d", prof, (char *)NULL, env);
		_exit(98);
	}
	struct t_ctl c;
	int up = -1;
	for (int i = 0; i < 500 && up < 0; i++) {
		up = t_ctl_open(&c, sock);
		if (up < 0)
			usleep(20000);
	}
	if (up < 0)
		fail_msg("qsupd as uid 65534 did not start:\n%s", t_file_tail(log));
	json_t *s = t_ctl_do(&c, "start", "fw", 30000, NULL);
	if (!s)
		fail_msg("start:\n%s", t_file_tail(log));
	int qpid = (int)json_integer_value(json_object_get(s, "pid"));
	printf("# note: qsupd as uid 65534: QEMU uid %lld (%s)\n",
	       (long long)json_integer_value(json_object_get(s, "uid")), str(s, "accel"));
	assert_int_equal(json_integer_value(json_object_get(s, "uid")), 65534);
	json_decref(s);
	assert_string_equal(proc_field(qpid, "Uid:"), "65534\t65534\t65534\t65534");
	json_t *r = t_ctl_call(&c, "start", json_pack("{s:s}", "name", "rooted"), 10000);
	const char *desc = str(json_object_get(r, "error"), "desc");
	printf("# note: %s\n", desc);
	assert_non_null(strstr(desc, "needs qsupd to run as root"));
	json_decref(r);
	json_t *rs = t_ctl_do(&c, "status", "rooted", 5000, NULL);
	assert_string_equal(str(rs, "state"), "stopped");   /* not retried: the profile's fault */
	json_decref(rs);
	json_decref(t_ctl_do(&c, "kill", "fw", 10000, NULL));
	t_ctl_close(&c);
	kill(pid, SIGTERM);
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(path, sizeof(path), "%s/qsup/locks", xdg);
	assert_int_equal(access(path, F_OK), 0);   /* its guest locks live there */
	snprintf(path, sizeof(path), "%s/qsup/host.key", stdir);
	assert_int_equal(access(path, F_OK), 0);
}

/* ---- a run dir that is full ---- */

/* Fill the file system of path: write until it is full, then again after a
 * pause, as a state write of qsupd's still in flight may free a page when
 * its rename replaces the old file. */
static void fill_up(const char *path)
{
	char block[4096] = { 0 };
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	for (int round = 0; round < 3; round++) {
		if (round)
			usleep(200 * 1000);
		while (write(fd, block, sizeof(block)) > 0)
			;
	}
	close(fd);
}

static void test_full_run_dir(void **state)
{
	struct fx *x = *state;
	char filler[700], desc[2048];
	/* A 256 KiB tmpfs as the run dir, in a mount namespace of our own. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail_msg("mount namespace: %s", strerror(errno));
	assert_true(mkdir(x->d.run, 0755) == 0 || errno == EEXIST);
	assert_int_equal(mount("tmpfs", x->d.run, "tmpfs", 0, "size=256k,mode=0755"), 0);
	t_daemon_profile(&x->d, "fw", FW "[restart]\npolicy = never\n");
	start_daemon(x);
	snprintf(filler, sizeof(filler), "%s/filler", x->d.run);
	fill_up(filler);
	json_t *r = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "fw"), 20000);
	snprintf(desc, sizeof(desc), "%s", str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	printf("# note: start on a full run dir: %s\n", desc);
	assert_non_null(strstr(desc, "cannot record the guest's state"));
	assert_int_equal(count_qemus("fw"), 0);
	unlink(filler);
	start_guest(x, "fw");
	assert_int_equal(count_qemus("fw"), 1);
	/* A save must be on record in state.json before QEMU is asked for it
	 * (a re-adopting qsupd asks QEMU then): refused, the guest runs on. */
	char save[800];
	snprintf(save, sizeof(save), "%s/fw.save", x->d.dir);
	fill_up(filler);
	r = t_ctl_call(&x->c, "save", json_pack("{s:s, s:s}", "name", "fw", "file", save), 20000);
	snprintf(desc, sizeof(desc), "%s", str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	printf("# note: save on a full run dir: %s\n", desc);
	assert_non_null(strstr(desc, "cannot record the migration"));
	assert_int_equal(access(save, F_OK), -1);
	unlink(filler);
	json_t *st = t_ctl_do(&x->c, "status", "fw", 5000, NULL);
	assert_string_equal(str(st, "state"), "running");
	json_decref(st);
	json_decref(must(x, "kill", "fw", 10000));
	t_ctl_close(&x->c);
	x->c.fd = -1;
	t_daemon_stop(&x->d);
	umount2(x->d.run, MNT_DETACH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_qemu_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qemu_cannot_open_other_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_owner_per_run_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_qemu_per_guest_across_daemons, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_readopt_without_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prelaunch_started_afresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_leaves_a_starting_qemu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_slow_greeting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_start_is_not_a_stable_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_refused_while_saving, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff_and_window_survive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vanished_disk_not_recreated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tap_names_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_restore_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uid_range_and_offline_views, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unprivileged_daemon, setup, teardown),
		/* last: it moves the program into a mount namespace of its own */
		cmocka_unit_test_setup_teardown(test_full_run_dir, setup, teardown),
	};
	if (geteuid() != 0) {
		printf("1..0 # SKIP containment tests need root (QEMU's identity)\n");
		return 0;
	}
	return cmocka_run_group_tests_name("contain", tests, NULL, NULL);
}
