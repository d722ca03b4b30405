/*
 * qsup-bench: the figures behind bench/start, bench/rpc and bench/rss.
 * Prints numbers; asserts nothing.
 *
 *   qsup-bench start [RUNS]   qsupd start-until-running vs raw QEMU
 *   qsup-bench rpc [GUESTS]   status round trips, 1 and 8 connections
 *   qsup-bench rss            qsupd RSS with 0, 10 and 50 guests
 *   qsup-bench restart [RUNS] kill -9 of QEMU to running again (delay 0)
 *   qsup-bench readopt        qsupd start to all running, 10 and 50 guests
 *   qsup-bench hotplug [RUNS] attach until device_add returned; detach until
 *                             DEVICE_DELETED (the tiny guest, TCG)
 *
 * Guests are firmware-only (-m 16), under KVM when usable, else TCG. The
 * raw-QEMU baseline starts the identical argv the way qsupd does (sockets
 * bound first and passed as fds 3 and 4, QMP negotiated, cont).
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp.h"
#include "tdaemon.h"
#include "testutil.h"

#define PROFILE "[guest]\nmemory = 16M\naccel = kvm:tcg\nhotplug-slots = 0\n"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	int i = (int)(p * (n - 1) + 0.5);
	return v[i];
}

static void fail(const char *what, struct t_daemon *d)
{
	fprintf(stderr, "qsup-bench: %s\n%s\n", what, d ? t_daemon_log(d) : "");
	if (d)
		t_daemon_cleanup(d);
	exit(1);
}

static void start_daemon(struct t_daemon *d, struct t_ctl *c, int guests)
{
	char name[32];
	if (t_daemon_init(d) < 0)
		fail("temp dir", NULL);
	for (int i = 0; i < guests; i++) {
		snprintf(name, sizeof(name), "b%02d", i);
		t_daemon_profile(d, name, PROFILE);
	}
	if (t_daemon_start(d, NULL) < 0 || t_ctl_open(c, d->sock) < 0)
		fail("qsupd did not start", d);
}

/* ---- raw QEMU baseline ---- */

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
		return -1;
	return fd;
}

struct raw { int exited, cont_done; };

static void raw_exit(uv_process_t *p, int64_t st, int sig)
{
	(void)st;
	(void)sig;
	((struct raw *)p->data)->exited = 1;
}

static void raw_cont(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	(void)c;
	(void)r;
	((struct raw *)arg)->cont_done = 1;
}

static void raw_ready(struct qmp_client *c, int status)
{
	if (status == 0)
		qmp_client_execute(c, "cont", NULL, 0, raw_cont, qmp_client_data(c));
}

static const struct qmp_callbacks raw_cbs = { .ready = raw_ready };

/* The identity qsupd runs QEMU as (raw QEMU gets the same one, so that
 * both sides pay what an unprivileged QEMU costs). */
static uid_t raw_uid;
static gid_t raw_gid;

static void learn_identity(json_t *status)
{
	raw_uid = (uid_t)json_integer_value(json_object_get(status, "uid"));
	raw_gid = (gid_t)json_integer_value(json_object_get(status, "gid"));
}

/* Start argv (with fds 3 and 4 expected) until cont returned, as qsupd's
 * QEMU identity; seconds. */
static double raw_start(char **argv, const char *dir)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char qpath[300], spath[300];
	snprintf(qpath, sizeof(qpath), "%s/raw-qmp.sock", dir);
	snprintf(spath, sizeof(spath), "%s/raw-serial.sock", dir);
	struct raw r = { 0 };
	double t0 = t_now();
	int qfd = listen_at(qpath), sfd = listen_at(spath);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	uv_stdio_container_t stdio[5] = {
		{ .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = null },
		{ .flags = UV_INHERIT_FD, .data.fd = null },
		{ .flags = UV_INHERIT_FD, .data.fd = qfd }, { .flags = UV_INHERIT_FD, .data.fd = sfd },
	};
	uv_process_t proc;
	proc.data = &r;
	uv_process_options_t o = { .exit_cb = raw_exit, .file = argv[0], .args = argv,
	                           .stdio = stdio, .stdio_count = 5, .cwd = "/" };
	if (raw_uid) {
		o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
		o.uid = raw_uid;
		o.gid = raw_gid;
	}
	if (uv_spawn(&loop, &proc, &o) < 0)
		fail("spawn raw QEMU", NULL);
	close(qfd);
	close(sfd);
	close(null);
	struct qmp_client *c = qmp_client_new(&loop, &raw_cbs, &r);
	qmp_client_connect(c, qpath);
	t_run_until_flag(&loop, &r.cont_done, 10000);
	double dt = t_now() - t0;
	qmp_client_close(c);
	uv_process_kill(&proc, SIGKILL);
	t_run_until_flag(&loop, &r.exited, 5000);
	uv_close((uv_handle_t *)&proc, NULL);
	t_loop_finish(&loop);
	return dt;
}

static void bench_start(int runs)
{
	struct t_daemon d;
	struct t_ctl c;
	start_daemon(&d, &c, 1);
	double *qs = calloc((size_t)runs, sizeof(double));
	double *raw = calloc((size_t)runs, sizeof(double));
	json_t *r = t_ctl_call(&c, "argv", json_pack("{s:s}", "name", "b00"), 5000);
	json_t *av = json_object_get(json_object_get(r, "return"), "argv");
	char **argv = calloc(json_array_size(av) + 1, sizeof(char *));
	for (size_t i = 0; i < json_array_size(av); i++)
		argv[i] = strdup(json_string_value(json_array_get(av, i)));
	json_decref(r);
	for (int i = 0; i < runs; i++) {
		double t0 = t_now();
		json_t *s = t_ctl_do(&c, "start", "b00", 20000, NULL);
		qs[i] = t_now() - t0;
		if (!s)
			fail("start failed", &d);
		if (i == 0) {
			printf("# qsupd chose %s; QEMU runs as uid %lld (raw QEMU too)\n",
			       json_string_value(json_object_get(s, "accel")),
			       (long long)json_integer_value(json_object_get(s, "uid")));
			learn_identity(s);
		}
		json_decref(s);
		json_decref(t_ctl_do(&c, "kill", "b00", 20000, NULL));
		raw[i] = raw_start(argv, d.dir);
	}
	double mq = pct(qs, runs, 0.5), mr = pct(raw, runs, 0.5);
	printf("start until running, median of %d:\n", runs);
	printf("  qsupd start (control socket)  %8.1f ms\n", mq * 1e3);
	printf("  raw QEMU, same argv, to cont  %8.1f ms\n", mr * 1e3);
	printf("  ratio                         %8.3f  (target <= 1.10)\n", mq / mr);
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
	free(qs);
	free(raw);
	t_ctl_close(&c);
	t_daemon_cleanup(&d);
}

/* ---- rpc ---- */

static void rpc_round(struct t_ctl *conns, int nconn, int per_conn, double *lat)
{
	int k = 0;
	for (int i = 0; i < per_conn; i++) {
		for (int j = 0; j < nconn; j++) {
			double t0 = t_now();
			json_t *r = t_ctl_call(&conns[j], "status", json_pack("{s:s}", "name", "b00"), 5000);
			lat[k++] = t_now() - t0;
			json_decref(r);
		}
	}
}

/* 8 connections in parallel: each sends, then all replies are read. */
static void rpc_parallel(struct t_ctl *conns, int nconn, int rounds, double *lat, double *wall)
{
	double start = t_now();
	int k = 0;
	for (int i = 0; i < rounds; i++) {
		double t0 = t_now();
		long long ids[16];
		for (int j = 0; j < nconn; j++)
			ids[j] = t_ctl_send(&conns[j], "status", json_pack("{s:s}", "name", "b00"));
		for (int j = 0; j < nconn; j++) {
			json_decref(t_ctl_reply(&conns[j], ids[j], 5000));
			lat[k++] = t_now() - t0;
		}
	}
	*wall = t_now() - start;
}

static void bench_rpc(int guests)
{
	struct t_daemon d;
	struct t_ctl conns[8];
	start_daemon(&d, &conns[0], guests);
	for (int i = 1; i < 8; i++)
		t_ctl_open(&conns[i], d.sock);
	char name[32];
	for (int i = 0; i < guests; i++) {
		snprintf(name, sizeof(name), "b%02d", i);
		json_decref(t_ctl_do(&conns[0], "start", name, 20000, NULL));
		/* Paused: firmware spinning on 2 cores would measure the host's
		 * scheduler, not qsupd. */
		json_decref(t_ctl_do(&conns[0], "pause", name, 20000, NULL));
	}
	int n = 20000;
	double *lat = calloc((size_t)n * 8, sizeof(double));
	double t0 = t_now();
	rpc_round(conns, 1, n, lat);
	double wall = t_now() - t0;
	printf("status over 1 connection, %d guests (paused):\n", guests);
	printf("  %.0f round trips/s, p50 %.1f us, p99 %.1f us  (target p50 < 200 us)\n",
	       n / wall, pct(lat, n, 0.5) * 1e6, pct(lat, n, 0.99) * 1e6);
	int rounds = n / 8;
	rpc_parallel(conns, 8, rounds, lat, &wall);
	printf("status over 8 connections (one request in flight on each):\n");
	printf("  %.0f requests/s, p50 %.1f us, p99 %.1f us\n", rounds * 8 / wall,
	       pct(lat, rounds * 8, 0.5) * 1e6, pct(lat, rounds * 8, 0.99) * 1e6);
	free(lat);
	for (int i = 0; i < 8; i++)
		t_ctl_close(&conns[i]);
	t_daemon_cleanup(&d);
}

/* Start guests b00..b(n-1), pipelined, and wait for every reply. */
static void start_all(struct t_ctl *c, int n)
{
	char name[32];
	long long ids[64];
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "b%02d", i);
		ids[i] = t_ctl_send(c, "start", json_pack("{s:s}", "name", name));
	}
	for (int i = 0; i < n; i++)
		json_decref(t_ctl_reply(c, ids[i], 60000));
}

/* ---- rss ---- */


static void bench_rss(void)
{
	int counts[] = { 0, 10, 50 };
	printf("qsupd RSS (firmware-only guests, -m 16); anon = qsupd's own, the rest\n"
	       "is shared library text:\n");
	for (size_t k = 0; k < 3; k++) {
		struct t_daemon d;
		struct t_ctl c;
		start_daemon(&d, &c, counts[k]);
		start_all(&c, counts[k]);
		json_decref(t_ctl_call(&c, "list", NULL, 5000));
		usleep(1500 * 1000);    /* at rest: qsupd trims its heap 1 s after activity */
		printf("  %2d guests: %6ld KiB, anon %5ld KiB  (target < 4096 KiB at 50)\n",
		       counts[k], t_rss_kib(d.pid), t_status_kib(d.pid, "RssAnon"));
		t_ctl_close(&c);
		t_daemon_cleanup(&d);
	}
}

/* ---- restart ---- */

static double median_of(double *v, int n)
{
	return pct(v, n, 0.5);
}

/* argv of guest name, as start would run it (NULL-terminated, malloc'd). */
static char **guest_argv(struct t_ctl *c, const char *name)
{
	json_t *r = t_ctl_call(c, "argv", json_pack("{s:s}", "name", name), 5000);
	json_t *av = json_object_get(json_object_get(r, "return"), "argv");
	char **argv = calloc(json_array_size(av) + 1, sizeof(char *));
	for (size_t i = 0; i < json_array_size(av); i++)
		argv[i] = strdup(json_string_value(json_array_get(av, i)));
	json_decref(r);
	return argv;
}

static void free_argv(char **argv)
{
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
}

static void bench_restart(int runs)
{
	struct t_daemon d;
	struct t_ctl c, ev;
	if (t_daemon_init(&d) < 0)
		fail("temp dir", NULL);
	t_daemon_profile(&d, "b00", PROFILE "[restart]\ndelay = 0\nburst = 1000\n");
	if (t_daemon_start(&d, NULL) < 0 || t_ctl_open(&c, d.sock) < 0 || t_ctl_open(&ev, d.sock) < 0)
		fail("qsupd did not start", &d);
	json_decref(t_ctl_call(&ev, "subscribe", NULL, 5000));
	json_t *s0 = t_ctl_do(&c, "start", "b00", 20000, NULL);
	learn_identity(s0);
	json_decref(s0);
	json_decref(t_ctl_wait_state(&ev, "b00", "running", 5000));
	double *v = calloc((size_t)runs, sizeof(double)), *raw = calloc((size_t)runs, sizeof(double));
	char **argv = guest_argv(&c, "b00");
	for (int i = 0; i < runs; i++) {
		json_t *s = t_ctl_do(&c, "status", "b00", 5000, NULL);
		pid_t pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
		json_decref(s);
		double t0 = t_now();
		kill(pid, SIGKILL);
		json_t *e = t_ctl_wait_state(&ev, "b00", "running", 20000);
		v[i] = t_now() - t0;
		if (!e)
			fail("no restart", &d);
		json_decref(e);
		raw[i] = raw_start(argv, d.dir);
	}
	double mv = median_of(v, runs), mr = median_of(raw, runs);
	printf("kill -9 of QEMU until running again (delay 0), median of %d:\n", runs);
	printf("  qsupd restart                 %8.1f ms\n", mv * 1e3);
	printf("  raw QEMU start, same argv     %8.1f ms\n", mr * 1e3);
	printf("  ratio                         %8.3f\n", mv / mr);
	free_argv(argv);
	free(v);
	free(raw);
	t_ctl_close(&c);
	t_ctl_close(&ev);
	t_daemon_cleanup(&d);
}

/* ---- readopt ---- */

static bool all_running(struct t_ctl *c, int n)
{
	json_t *r = t_ctl_call(c, "list", NULL, 5000);
	json_t *a = json_object_get(r, "return");
	int up = 0;
	size_t i;
	json_t *g;
	json_array_foreach(a, i, g)
		up += strcmp(json_string_value(json_object_get(g, "state")), "running") == 0;
	json_decref(r);
	return up == n;
}

static void bench_readopt(void)
{
	int counts[] = { 10, 50 };
	printf("qsupd start until every guest is running again (re-adopted):\n");
	for (size_t k = 0; k < 2; k++) {
		struct t_daemon d;
		struct t_ctl c;
		start_daemon(&d, &c, counts[k]);
		start_all(&c, counts[k]);
		t_ctl_close(&c);
		t_daemon_kill9(&d);
		double t0 = t_now();
		if (t_daemon_start(&d, NULL) < 0 || t_ctl_open(&c, d.sock) < 0)
			fail("qsupd did not start again", &d);
		while (!all_running(&c, counts[k]) && t_now() - t0 < 60)
			usleep(2000);
		printf("  %2d guests: %8.1f ms\n", counts[k], (t_now() - t0) * 1e3);
		t_ctl_close(&c);
		t_daemon_cleanup(&d);
	}
}

/* ---- hotplug ---- */

static void bench_hotplug(int runs)
{
	struct t_daemon d;
	struct t_ctl c;
	char path[512], text[2048], img[600];
	if (t_daemon_init(&d) < 0)
		fail("temp dir", NULL);
	snprintf(path, sizeof(path), "%s/cmdline", t_guestdir());
	const char *cmdline = t_read_line(path);
	if (!cmdline)
		fail("no test guest: sh tests/guest/build.sh build/guest", NULL);
	snprintf(text, sizeof(text), "[guest]\nmemory = 256M\naccel = tcg\nkernel = %s/vmlinux\n"
	         "initrd = %s/initramfs.cpio.gz\nappend = %s\n", t_guestdir(), t_guestdir(), cmdline);
	t_daemon_profile(&d, "tiny", text);
	snprintf(img, sizeof(img), "%s/bench.img", d.dir);
	FILE *f = fopen(img, "w");
	if (!f || ftruncate(fileno(f), 16 << 20) < 0)
		fail("image", NULL);
	fclose(f);
	if (t_daemon_start(&d, NULL) < 0 || t_ctl_open(&c, d.sock) < 0)
		fail("qsupd did not start", &d);
	json_decref(t_ctl_do(&c, "start", "tiny", 60000, NULL));
	/* Wait for the guest to boot: unplug needs its ACPI handling. */
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen = 0;
	uv_loop_init(&loop);
	json_t *con = t_ctl_do(&c, "console", "tiny", 5000, NULL);
	if (t_serial_open(&loop, &ser, json_string_value(json_object_get(con, "path")), 5000) < 0 ||
	    t_serial_wait(&ser, "QSUP-GUEST-READY", &seen, 60000) < 0)
		fail("the guest did not boot", &d);
	json_decref(con);
	double *at = calloc((size_t)runs, sizeof(double)), *de = calloc((size_t)runs, sizeof(double));
	for (int i = 0; i < runs; i++) {
		double t0 = t_now();
		json_t *r = t_ctl_call(&c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name",
		                       "tiny", "kind", "disk", "id", "b", "file", img, "format", "raw"),
		                       30000);
		at[i] = t_now() - t0;
		if (!json_object_get(r, "return"))
			fail("attach failed", &d);
		json_decref(r);
		t0 = t_now();
		r = t_ctl_call(&c, "detach", json_pack("{s:s, s:s}", "name", "tiny", "id", "b"), 60000);
		de[i] = t_now() - t0;
		if (!json_object_get(r, "return"))
			fail("detach failed", &d);
		json_decref(r);
	}
	printf("hot-plug of a virtio disk into the tiny guest (TCG), median of %d:\n", runs);
	printf("  attach until device_add returned   %8.1f ms\n", median_of(at, runs) * 1e3);
	printf("  detach until DEVICE_DELETED         %8.1f ms\n", median_of(de, runs) * 1e3);
	free(at);
	free(de);
	t_serial_close(&ser);
	t_loop_finish(&loop);
	t_ctl_close(&c);
	t_daemon_cleanup(&d);
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	int n = argc > 2 ? atoi(argv[2]) : 0;
	printf("# %s\n", t_accel());
	if (strcmp(what, "start") == 0)
		bench_start(n > 0 ? n : 20);
	else if (strcmp(what, "rpc") == 0)
		bench_rpc(n > 0 ? n : 20);
	else if (strcmp(what, "rss") == 0)
		bench_rss();
	else if (strcmp(what, "restart") == 0)
		bench_restart(n > 0 ? n : 20);
	else if (strcmp(what, "readopt") == 0)
		bench_readopt();
	else if (strcmp(what, "hotplug") == 0)
		bench_hotplug(n > 0 ? n : 20);
	else {
		fprintf(stderr, "usage: qsup-bench start [RUNS] | rpc [GUESTS] | rss | "
		        "restart [RUNS] | readopt | hotplug [RUNS]\n");
		return 2;
	}
	return 0;
}
