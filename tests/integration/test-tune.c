/*
 * Live resource control, for real (qsupctl set; tune.h): the tiny guest
 * (TCG) with real QEMU.
 *
 * I/O limits: the guest writes 8 MiB to its disk with direct I/O while
 * bps-write = 512K is set live: the write takes at least 8 s (a rate of at
 * most twice the limit; QEMU's own pace is about 14 s), and query-blockstats'
 * counter grows by the 8 MiB. Lifted, the same write beats the limit (under
 * 16 s, the limit's own pace). These are the only time bounds, and both are
 * a factor of 2 from what the limit gives.
 * Pinning: Cpus_allowed_list of every QEMU thread (/proc/PID/task, vCPU
 * threads named "CPU N/TCG") after start, after a vCPU hot-plug, after set,
 * and after a crash-restart (kill -9), which keeps what set changed.
 * Balloon: set balloon=192M, QEMU's actual follows; the guest's memory
 * statistics show in the status.
 * Bad input and --persist: refused items leave everything as it was; a
 * stopped guest needs --persist; NAME.d/set.ini is what the next start
 * applies, and qsupd --check validates it.
 * A qsupd restart: the limits are read back from the re-adopted QEMU.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

struct fx {
	struct t_fx *tp;
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen;
	bool console;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	void *inner;
	assert_non_null(x);
	t_fx_setup(&inner);
	x->tp = inner;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	if (x->console) {
		t_serial_close(&x->ser);
		t_loop_finish(&x->loop);
	}
	void *p = x->tp;
	free(x);
	return t_fx_teardown(&p);
}

static void console(struct fx *x, const char *name)
{
	assert_int_equal(t_ctl_console(&x->tp->c, name, &x->loop, &x->ser), 0);
	x->console = true;
	x->seen = 0;
	if (t_serial_wait(&x->ser, "QSUP-GUEST-READY", &x->seen, 180000) < 0)
		fail_msg("no ready marker:\n%s", x->ser.buf ? x->ser.buf : "");
}

static json_t *set(struct fx *x, const char *name, bool persist, const char *const *items)
{
	json_t *list = json_array();
	for (size_t i = 0; items[i]; i++)
		json_array_append_new(list, json_string(items[i]));
	json_t *r = t_ctl_call(&x->tp->c, "set", json_pack("{s:s, s:o, s:b}", "name", name, "set",
	                       list, "persist", persist), 60000);
	if (!r)
		fail_msg("set: no reply:\n%s", t_daemon_log(&x->tp->d));
	return r;
}

static void set_ok(struct fx *x, const char *name, bool persist, const char *const *items)
{
	json_t *r = set(x, name, persist, items);
	if (!json_object_get(r, "return"))
		fail_msg("set %s: %s\n%s", items[0], json_dumps(r, 0), t_daemon_log(&x->tp->d));
	json_decref(r);
}

/* set must fail with class cls and a message holding text. */
static void set_refused(struct fx *x, const char *name, bool persist, const char *const *items,
                        const char *cls, const char *text)
{
	json_t *r = set(x, name, persist, items);
	json_t *e = json_object_get(r, "error");
	if (!e || strcmp(t_str(e, "class"), cls) || !strstr(t_str(e, "desc"), text))
		fail_msg("set %s: expected %s with \"%s\", got %s", items[0], cls, text,
		         json_dumps(r, 0));
	json_decref(r);
}

static json_t *status(struct fx *x, const char *name)
{
	return t_fx_must(x->tp, "status", name, 10000);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- I/O limits ---- */

static long long wr_bytes(struct fx *x, const char *name, const char *dev)
{
	json_t *r = t_ctl_call(&x->tp->c, "qmp", json_pack("{s:s, s:s}", "name", name, "command",
	                       "query-blockstats"), 30000), *b;
	size_t i;
	long long n = -1;
	json_array_foreach(json_object_get(r, "return"), i, b)
		if (strstr(t_str(b, "qdev"), dev))
			n = (long long)json_integer_value(json_object_get(json_object_get(b, "stats"),
			                                  "wr_bytes"));
	json_decref(r);
	return n;
}

/* The guest writes mib MiB to vda; seconds it took. */
static double guest_write(struct fx *x, int mib)
{
	char cmd[64], want[64];
	snprintf(cmd, sizeof(cmd), "write vda %d", mib);
	snprintf(want, sizeof(want), "QSUP-WRITE vda %d ", mib);
	size_t from = x->ser.len;
	double t0 = now_s();
	assert_int_equal(t_serial_write(&x->ser, cmd), 0);
	if (t_serial_wait(&x->ser, want, &from, 300000) < 0)
		fail_msg("no answer to %s:\n%s", cmd, x->ser.buf ? x->ser.buf : "");
	double dt = now_s() - t0;
	size_t nl = from;
	assert_int_equal(t_serial_wait(&x->ser, "\n", &nl, 10000), 0);
	assert_int_equal(strncmp(x->ser.buf + from, "ok", 2), 0);
	return dt;
}

static void test_io_limits_live(void **state)
{
	struct fx *x = *state;
	char img[600], more[1400];
	snprintf(img, sizeof(img), "%s/io.img", x->tp->d.dir);
	int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 << 20), 0);
	close(fd);
	snprintf(more, sizeof(more), "[disk.a]\nfile = %s\nformat = raw\n[cdrom.cd]\n", img);
	t_daemon_tiny_profile(&x->tp->d, "io", more);
	t_fx_up(x->tp, NULL);
	json_decref(t_fx_must(x->tp, "start", "io", 180000));
	console(x, "io");

	/* Limited live: the write takes at least twice as long as it would at
	 * 1 MiB/s, twice the limit. */
	set_ok(x, "io", false, (const char *[]){ "disk.a.bps-write=512K", NULL });
	json_t *st = status(x, "io");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(st,
	                 "io_limits"), "a"), "bps-write")), 512 << 10);
	json_decref(st);
	long long before = wr_bytes(x, "io", "/a/");
	double limited = guest_write(x, 8);
	long long after = wr_bytes(x, "io", "/a/");
	printf("# 8 MiB at bps-write=512K: %.1f s (%.0f KiB/s)\n", limited, 8192 / limited);
	assert_true(after - before >= 8ll << 20);
	if (limited < 8.0)
		fail_msg("8 MiB written in %.1f s with bps-write=512K: above twice the limit",
		         limited);

	/* Lifted: faster than the limit itself would allow (16 s). */
	set_ok(x, "io", false, (const char *[]){ "disk.a.bps-write=0", NULL });
	st = status(x, "io");
	assert_null(json_object_get(json_object_get(st, "io_limits"), "a"));
	json_decref(st);
	double free_run = guest_write(x, 8);
	printf("# 8 MiB without a limit: %.1f s\n", free_run);
	if (free_run >= 16.0)
		fail_msg("8 MiB took %.1f s with the limit lifted: no faster than 512K/s", free_run);

	/* Bad input: nothing applied, the limits as they were. */
	set_refused(x, "io", false, (const char *[]){ "disk.a.bps-write=100", NULL },
	            "InvalidArgument", "too small");
	set_refused(x, "io", false, (const char *[]){ "disk.a.bps-write=2T", NULL },
	            "InvalidArgument", "too large");
	set_refused(x, "io", false, (const char *[]){ "disk.a.bps-write=1M,bps-read=1", NULL },
	            "InvalidArgument", "not a size");
	set_refused(x, "io", false, (const char *[]){ "disk.a.iops-total=many", NULL },
	            "InvalidArgument", "not a whole number");
	set_refused(x, "io", false, (const char *[]){ "disk.cd.bps-write=1M", NULL },
	            "InvalidArgument", "CD-ROM");
	set_refused(x, "io", false, (const char *[]){ "disk.zz.bps-write=1M", NULL },
	            "InvalidArgument", "no disk zz");
	set_refused(x, "io", false, (const char *[]){ "disk.a.bps-write=1M",
	            "disk.a.bps-total=2M", NULL }, "InvalidArgument", "cannot be given with");
	set_refused(x, "io", false, (const char *[]){ "disk.a.bps-write=1M",
	            "disk.a.bps-write-max=512K", NULL }, "InvalidArgument", "is below");
	set_refused(x, "io", false, (const char *[]){ "disk.a.bps-write=1M", "colour=red",
	            NULL }, "InvalidArgument", "not a key for set");
	st = status(x, "io");
	assert_int_equal(json_object_size(json_object_get(st, "io_limits")), 0);
	json_decref(st);

	/* A hot-plugged disk takes its attach keys' limits; set changes them. */
	char img2[600];
	snprintf(img2, sizeof(img2), "%s/hp.img", x->tp->d.dir);
	fd = open(img2, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 << 20), 0);
	close(fd);
	json_t *r = t_ctl_call(&x->tp->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
	                       "name", "io", "kind", "disk", "id", "hp", "file", img2, "format",
	                       "raw", "iops-write", "50"), 120000);
	if (!json_object_get(r, "return"))
		fail_msg("attach: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->tp->d));
	json_decref(r);
	r = t_ctl_call(&x->tp->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
	               "name", "io", "kind", "disk", "id", "hp2", "file", img2, "format", "raw",
	               "bps-read", "1k"), 120000);
	assert_string_equal(t_str(json_object_get(r, "error"), "class"), "InvalidArgument");
	json_decref(r);
	set_ok(x, "io", false, (const char *[]){ "disk.hp.iops-write-max=80", NULL });
	r = t_ctl_call(&x->tp->c, "qmp", json_pack("{s:s, s:s}", "name", "io", "command",
	               "query-block"), 30000);
	json_t *b;
	size_t i;
	bool seen = false;
	json_array_foreach(json_object_get(r, "return"), i, b) {
		json_t *in = json_object_get(b, "inserted");
		if (!strstr(t_str(b, "qdev"), "/hp/"))
			continue;
		seen = true;
		assert_int_equal(json_integer_value(json_object_get(in, "iops_wr")), 50);
		assert_int_equal(json_integer_value(json_object_get(in, "iops_wr_max")), 80);
	}
	assert_true(seen);
	json_decref(r);
	json_decref(t_fx_must(x->tp, "stop", "io", 120000));
}

/* ---- pinning ---- */

/* Each QEMU thread of pid: vCPU threads (comm "CPU N/TCG") must have
 * Cpus_allowed_list vcpu, the others other. Returns the vCPU threads. */
static int check_affinity(pid_t pid, const char *vcpu, const char *other)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	int vcpus = 0;
	for (int tries = 0; tries < 2; tries++) {
		DIR *d = opendir(dir);
		struct dirent *e;
		assert_non_null(d);
		vcpus = 0;
		while ((e = readdir(d))) {
			char path[400], comm[64] = "", *line = NULL;
			size_t cap = 0;
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
			FILE *f = fopen(path, "r");
			if (!f)
				continue;   /* a worker thread that just ended */
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = '\0';
			fclose(f);
			comm[strcspn(comm, "\n")] = '\0';
			snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
			if (!(f = fopen(path, "r")))
				continue;
			const char *want = !strncmp(comm, "CPU ", 4) ? vcpu : other;
			vcpus += !strncmp(comm, "CPU ", 4);
			while (getline(&line, &cap, f) > 0)
				if (!strncmp(line, "Cpus_allowed_list:", 18)) {
					char *v = line + 18;
					v += strspn(v, " \t");
					v[strcspn(v, "\n")] = '\0';
					if (strcmp(v, want))
						fail_msg("thread %s (%s): Cpus_allowed_list %s, expected %s",
						         e->d_name, comm, v, want);
				}
			free(line);
			fclose(f);
		}
		closedir(d);
	}
	return vcpus;
}

static pid_t pid_of(struct fx *x, const char *name)
{
	json_t *st = status(x, name);
	pid_t pid = (pid_t)json_integer_value(json_object_get(st, "pid"));
	json_decref(st);
	return pid;
}

static void test_pinning(void **state)
{
	struct fx *x = *state;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 2)
		skip();
	t_daemon_tiny_profile(&x->tp->d, "pin", "cpus = 2\nmax-cpus = 3\ncpu-affinity = 1\n"
	                      "emulator-affinity = 0\n[restart]\npolicy = on-failure\n"
	                      "delay = 200ms\n");
	t_fx_up(x->tp, NULL);
	json_decref(t_fx_must(x->tp, "start", "pin", 180000));
	pid_t pid = pid_of(x, "pin");
	assert_int_equal(check_affinity(pid, "1", "0"), 2);
	json_t *st = status(x, "pin");
	assert_string_equal(t_str(st, "cpu_affinity"), "1");
	assert_string_equal(t_str(st, "emulator_affinity"), "0");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "pinned"),
	                 "vcpu-threads")), 2);
	json_decref(st);

	/* A vCPU hot-plugged: pinned as well. */
	json_t *r = t_ctl_call(&x->tp->c, "attach", json_pack("{s:s, s:s}", "name", "pin", "kind",
	                       "cpu"), 120000);
	if (!json_object_get(r, "return"))
		fail_msg("attach cpu: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->tp->d));
	json_decref(r);
	int vcpus = 0;
	for (int i = 0; i < 100 && vcpus < 3; i++) {   /* the reply may beat the repin */
		usleep(100000);
		st = status(x, "pin");
		vcpus = (int)json_integer_value(json_object_get(json_object_get(st, "pinned"),
		                                "vcpu-threads"));
		json_decref(st);
	}
	assert_int_equal(check_affinity(pid, "1", "0"), 3);

	/* Live: the vCPUs on both CPUs; a CPU the host lacks is refused. */
	set_ok(x, "pin", false, (const char *[]){ "cpu-affinity=0-1", NULL });
	assert_int_equal(check_affinity(pid, "0-1", "0"), 3);
	char bad[64];
	snprintf(bad, sizeof(bad), "cpu-affinity=0,%ld", ncpu);
	set_refused(x, "pin", false, (const char *[]){ bad, NULL }, "InvalidArgument",
	            "the host has no CPU");
	set_refused(x, "pin", false, (const char *[]){ "emulator-affinity=1-0", NULL },
	            "InvalidArgument", "not a CPU list");
	assert_int_equal(check_affinity(pid, "0-1", "0"), 3);

	/* A crash-restart keeps what set changed, and the hot-plugged vCPU. */
	kill(pid, SIGKILL);
	pid_t again = 0;
	for (int i = 0; i < 1800 && (again == 0 || again == pid); i++) {
		usleep(100000);
		st = status(x, "pin");
		if (!strcmp(t_str(st, "state"), "running"))
			again = (pid_t)json_integer_value(json_object_get(st, "pid"));
		json_decref(st);
	}
	if (again == 0 || again == pid)
		fail_msg("no crash-restart:\n%s", t_daemon_log(&x->tp->d));
	vcpus = 0;
	for (int i = 0; i < 300 && vcpus < 3; i++) {   /* the vCPU comes back with the replay */
		usleep(100000);
		st = status(x, "pin");
		vcpus = (int)json_integer_value(json_object_get(json_object_get(st, "pinned"),
		                                "vcpu-threads"));
		json_decref(st);
	}
	assert_int_equal(check_affinity(again, "0-1", "0"), 3);
	st = status(x, "pin");
	assert_string_equal(t_str(st, "cpu_affinity"), "0-1");
	json_decref(st);

	/* A stop ends what set changed: the next start has the profile's. */
	json_decref(t_fx_must(x->tp, "stop", "pin", 120000));
	json_decref(t_fx_must(x->tp, "start", "pin", 180000));
	assert_int_equal(check_affinity(pid_of(x, "pin"), "1", "0"), 2);
	json_decref(t_fx_must(x->tp, "stop", "pin", 120000));
}

/* ---- balloon ---- */

static void test_balloon(void **state)
{
	struct fx *x = *state;
	t_daemon_tiny_profile(&x->tp->d, "bal", "balloon = yes\n");
	t_daemon_tiny_profile(&x->tp->d, "nob", "");
	t_fx_up(x->tp, NULL);
	json_decref(t_fx_must(x->tp, "start", "bal", 180000));
	console(x, "bal");   /* the virtio_balloon driver is loaded by now */
	set_ok(x, "bal", false, (const char *[]){ "balloon=192M", NULL });
	long long actual = 0, total = 0;
	for (int i = 0; i < 1200 && (actual != 192 << 20 || total <= 0); i++) {
		usleep(250000);
		json_t *st = status(x, "bal"), *b = json_object_get(st, "balloon");
		assert_int_equal(json_integer_value(json_object_get(b, "target")), 192 << 20);
		actual = (long long)json_integer_value(json_object_get(b, "actual"));
		total = (long long)json_integer_value(json_object_get(json_object_get(b, "stats"),
		                                      "stat-total-memory"));
		json_decref(st);
	}
	if (actual != 192 << 20)
		fail_msg("balloon actual %lld, target %d\n%s", actual, 192 << 20,
		         t_daemon_log(&x->tp->d));
	printf("# balloon actual %lld MiB; the guest's total memory %lld MiB\n", actual >> 20,
	       total >> 20);
	assert_true(total > 0);   /* polled every 5 s: it may predate the inflation */
	/* The same figures in the metrics (from the balloon's own poll). */
	json_t *mr = t_ctl_call(&x->tp->c, "metrics", NULL, 30000);
	const char *text = t_str(json_object_get(mr, "return"), "text");
	assert_non_null(strstr(text, "qsup_guest_balloon_target_bytes{guest=\"bal\"} 201326592\n"));
	assert_non_null(strstr(text, "qsup_guest_balloon_actual_bytes{guest=\"bal\"} 201326592\n"));
	assert_non_null(strstr(text, "qsup_guest_balloon_memory_bytes{guest=\"bal\",kind=\"total\"} "));
	json_decref(mr);
	/* back up to the whole memory */
	set_ok(x, "bal", false, (const char *[]){ "balloon=256M", NULL });
	for (int i = 0; i < 1200 && actual != 256 << 20; i++) {
		usleep(250000);
		json_t *st = status(x, "bal");
		actual = (long long)json_integer_value(json_object_get(json_object_get(st, "balloon"),
		                                       "actual"));
		json_decref(st);
	}
	assert_int_equal(actual, 256 << 20);

	set_refused(x, "bal", false, (const char *[]){ "balloon=512M", NULL }, "InvalidArgument",
	            "above the guest's memory");
	set_refused(x, "bal", false, (const char *[]){ "balloon=8M", NULL }, "InvalidArgument",
	            "too small");
	set_refused(x, "bal", false, (const char *[]){ "balloon=lots", NULL }, "InvalidArgument",
	            "not a size");
	set_refused(x, "nob", true, (const char *[]){ "balloon=128M", NULL }, "InvalidArgument",
	            "has no balloon");
	json_decref(t_fx_must(x->tp, "stop", "bal", 120000));
}

/* ---- a stopped guest, --persist, --check ---- */

static void test_persist_and_check(void **state)
{
	struct fx *x = *state;
	char img[600], more[1400], ini[700], out[8192];
	snprintf(img, sizeof(img), "%s/p.img", x->tp->d.dir);
	int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 << 20), 0);
	close(fd);
	snprintf(more, sizeof(more), "cpus = 2\nballoon = yes\n[disk.a]\nfile = %s\nformat = raw\n"
	         "bps-write = 1M\n", img);
	t_daemon_tiny_profile(&x->tp->d, "per", more);
	t_fx_up(x->tp, NULL);
	snprintf(ini, sizeof(ini), "%s/per.d/set.ini", x->tp->d.profiles);

	/* Stopped: only with --persist. */
	set_refused(x, "per", false, (const char *[]){ "disk.a.bps-write=2M", NULL },
	            "InvalidState", "--persist");
	assert_int_equal(access(ini, F_OK), -1);
	set_refused(x, "per", true, (const char *[]){ "disk.a.bps-write=2M", "balloon=1G", NULL },
	            "InvalidArgument", "above the guest's memory");
	assert_int_equal(access(ini, F_OK), -1);   /* all checked first: nothing written */
	set_ok(x, "per", true, (const char *[]){ "disk.a.bps-write=2M", "balloon=200M", NULL });
	char prof[700];
	snprintf(prof, sizeof(prof), "%s/per.ini", x->tp->d.profiles);
	const char *check1[] = { t_qsupd(), "--check", prof, NULL };
	if (t_run_capture(check1, out, sizeof(out), 60000) != 0)
		fail_msg("qsupd --check: %s", out);
	assert_non_null(strstr(out, "set.ini: ok"));

	/* The next start applies it over the profile. */
	json_decref(t_fx_must(x->tp, "start", "per", 180000));
	json_t *st = status(x, "per");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(st,
	                 "io_limits"), "a"), "bps-write")), 2 << 20);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "balloon"),
	                 "target")), 200 << 20);
	json_decref(st);

	/* Live with --persist (through qsupctl): in force now and after a stop. */
	const char *cli[] = { t_qsupctl(), "-s", x->tp->d.sock, "set", "--persist", "per",
	                      "cpu-affinity=0", "disk.a.bps-write=0", NULL };
	if (t_run_capture(cli, out, sizeof(out), 60000) != 0)
		fail_msg("qsupctl set: %s", out);
	assert_non_null(strstr(out, "per: cpu-affinity=0 (live, and recorded for its next start)"));
	/* Without: only until the stop. */
	set_ok(x, "per", false, (const char *[]){ "balloon=180M", NULL });
	json_decref(t_fx_must(x->tp, "stop", "per", 120000));
	json_decref(t_fx_must(x->tp, "start", "per", 180000));
	st = status(x, "per");
	assert_int_equal(json_object_size(json_object_get(st, "io_limits")), 0);
	assert_string_equal(t_str(st, "cpu_affinity"), "0");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "balloon"),
	                 "target")), 200 << 20);
	json_decref(st);

	/* A disk attached with --persist, its limits from the attach keys, one
	 * more set with --persist: both at the next start. */
	char img2[600];
	snprintf(img2, sizeof(img2), "%s/hp.img", x->tp->d.dir);
	fd = open(img2, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 << 20), 0);
	close(fd);
	json_t *r = t_ctl_call(&x->tp->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}",
	                       "name", "per", "kind", "disk", "id", "hp", "file", img2, "format",
	                       "raw", "iops-write", "50", "persist", 1), 120000);
	if (!json_object_get(r, "return"))
		fail_msg("attach: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->tp->d));
	json_decref(r);
	set_ok(x, "per", true, (const char *[]){ "disk.hp.iops-write-max=80", NULL });
	json_decref(t_fx_must(x->tp, "stop", "per", 120000));
	json_decref(t_fx_must(x->tp, "start", "per", 180000));
	bool seen = false;
	for (int i = 0; i < 300 && !seen; i++) {   /* the replay runs before cont */
		r = t_ctl_call(&x->tp->c, "qmp", json_pack("{s:s, s:s}", "name", "per", "command",
		               "query-block"), 30000);
		json_t *b;
		size_t k;
		json_array_foreach(json_object_get(r, "return"), k, b) {
			json_t *in = json_object_get(b, "inserted");
			if (!strstr(t_str(b, "qdev"), "/hp/"))
				continue;
			seen = true;
			assert_int_equal(json_integer_value(json_object_get(in, "iops_wr")), 50);
			assert_int_equal(json_integer_value(json_object_get(in, "iops_wr_max")), 80);
		}
		json_decref(r);
		if (!seen)
			usleep(100000);
	}
	assert_true(seen);
	json_decref(t_fx_must(x->tp, "stop", "per", 120000));

	/* --check finds a bad line (a CPU this host lacks, not KEY = VALUE). */
	FILE *f = fopen(ini, "a");
	assert_non_null(f);
	fprintf(f, "cpu-affinity = %ld\nwhatever\n", sysconf(_SC_NPROCESSORS_ONLN));
	fclose(f);
	assert_int_not_equal(t_run_capture(check1, out, sizeof(out), 60000), 0);
	assert_non_null(strstr(out, "the host has no CPU"));
	assert_non_null(strstr(out, "not KEY = VALUE"));
	/* qsupctl's words for a refusal: exit status non-zero, the reason. */
	const char *bad[] = { t_qsupctl(), "-s", x->tp->d.sock, "set", "per", "balloon=100M", NULL };
	assert_int_not_equal(t_run_capture(bad, out, sizeof(out), 60000), 0);
	assert_non_null(strstr(out, "--persist"));
	const char *usage[] = { t_qsupctl(), "-s", x->tp->d.sock, "set", "per", "balloon", NULL };
	assert_int_not_equal(t_run_capture(usage, out, sizeof(out), 60000), 0);
	assert_non_null(strstr(out, "use KEY=VALUE"));
}

/* ---- a qsupd restart ---- */

/* A guest re-adopted by a new qsupd: the limits a set without --persist
 * gave are read back from QEMU (query-block); a crash-restart then applies
 * them again. */
static void test_readopt_keeps_limits(void **state)
{
	struct fx *x = *state;
	char img[600], more[1400];
	snprintf(img, sizeof(img), "%s/ro.img", x->tp->d.dir);
	int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 << 20), 0);
	close(fd);
	snprintf(more, sizeof(more), "cpus = 2\nballoon = yes\n[disk.a]\nfile = %s\n"
	         "format = raw\n[restart]\npolicy = on-failure\ndelay = 200ms\n", img);
	t_daemon_tiny_profile(&x->tp->d, "ro", more);
	t_fx_up(x->tp, NULL);
	json_decref(t_fx_must(x->tp, "start", "ro", 180000));
	set_ok(x, "ro", false, (const char *[]){ "disk.a.bps-read=3M", "disk.a.iops-write=70",
	       "cpu-affinity=1", "emulator-affinity=0", "balloon=200M", NULL });
	pid_t pid = pid_of(x, "ro");
	assert_int_equal(t_daemon_stop(&x->tp->d), 0);   /* QEMU keeps running */
	assert_true(t_pid_alive(pid));
	t_fx_up(x->tp, NULL);
	json_t *st = NULL;
	for (int i = 0; i < 600; i++) {
		json_decref(st);
		st = status(x, "ro");
		if (!strcmp(t_str(st, "state"), "running") &&
		    json_object_get(json_object_get(st, "io_limits"), "a"))
			break;
		usleep(100000);
	}
	assert_true(json_is_true(json_object_get(st, "adopted")));
	json_t *a = json_object_get(json_object_get(st, "io_limits"), "a");
	assert_int_equal(json_integer_value(json_object_get(a, "bps-read")), 3 << 20);
	assert_int_equal(json_integer_value(json_object_get(a, "iops-write")), 70);
	assert_int_equal(json_object_size(a), 2);
	/* The pinning as the kernel has it, the balloon's target from
	 * state.json: what the live set made them, not the profile's. */
	for (int i = 0; i < 100 && !json_object_get(st, "pinned"); i++) {
		usleep(100000);
		json_decref(st);
		st = status(x, "ro");
	}
	char *pinned = json_dumps(json_object_get(st, "pinned"), JSON_COMPACT);
	printf("# note: re-adopted: cpu_affinity %s, emulator_affinity %s, pinned %s\n",
	       t_str(st, "cpu_affinity"), t_str(st, "emulator_affinity"), pinned);
	free(pinned);
	assert_string_equal(t_str(st, "cpu_affinity"), "1");
	assert_string_equal(t_str(st, "emulator_affinity"), "0");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "pinned"),
	                 "vcpu-threads")), 2);
	assert_true(json_integer_value(json_object_get(json_object_get(st, "pinned"),
	            "other-threads")) > 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "balloon"),
	                 "target")), 200 << 20);
	json_decref(st);
	kill(pid, SIGKILL);
	pid_t again = 0;
	for (int i = 0; i < 1800 && (again == 0 || again == pid); i++) {
		usleep(100000);
		st = status(x, "ro");
		if (!strcmp(t_str(st, "state"), "running"))
			again = (pid_t)json_integer_value(json_object_get(st, "pid"));
		json_decref(st);
	}
	if (again == 0 || again == pid)
		fail_msg("no crash-restart:\n%s", t_daemon_log(&x->tp->d));
	json_t *r = t_ctl_call(&x->tp->c, "qmp", json_pack("{s:s, s:s}", "name", "ro", "command",
	                       "query-block"), 30000), *b;
	size_t i;
	bool seen = false;
	json_array_foreach(json_object_get(r, "return"), i, b) {
		json_t *in = json_object_get(b, "inserted");
		if (!strstr(t_str(b, "qdev"), "/a/"))
			continue;
		seen = true;
		assert_int_equal(json_integer_value(json_object_get(in, "bps_rd")), 3 << 20);
		assert_int_equal(json_integer_value(json_object_get(in, "iops_wr")), 70);
	}
	assert_true(seen);
	json_decref(r);
	json_decref(t_fx_must(x->tp, "stop", "ro", 120000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_io_limits_live, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pinning, setup, teardown),
		cmocka_unit_test_setup_teardown(test_balloon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist_and_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readopt_keeps_limits, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
