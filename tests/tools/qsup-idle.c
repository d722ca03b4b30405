/*
 * qsup-idle: the figures behind bench/idle. What N idle guests cost per
 * minute in CPU seconds (utime + stime from /proc/PID/stat, children not
 * included), in three runs of the same QEMUs (same argv, same identity):
 *
 *   raw floor    N QEMUs started as qsupd starts them, each with its QMP
 *                monitor connected and negotiated, then silent
 *   raw + 2 s    the same, with a query-status to each every 2 s (what
 *                qsupd's health probe did before it probed only silence)
 *   qsup         qsupd supervising N guests: qsupd's CPU and its QEMUs'
 *
 *   qsup-idle [GUESTS [SECONDS]]     (default 50 guests, 60 s)
 *
 * The guests: QSUP_BENCH_PROFILE is the profile text of every guest
 * (default: -m 16, KVM when usable, and the cli; hlt BIOS that
 * bench/halt-rom.sh makes where the tree has it, else SeaBIOS). SeaBIOS with no boot
 * device does not halt for good (its timer wakes the vCPU 18 times a
 * second), so with it every guest is paused once running: a paused
 * QEMU's vCPU costs nothing, its monitor answers as usual. With a profile
 * whose guest halts (the ROM, or QSUP_BENCH_PROFILE's), the guests are left
 * running.
 * QSUP_BENCH_PAUSE=1 or 0 overrides either default.
 *
 * Prints figures; asserts nothing. Machines shared with other work give
 * noisy figures.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp.h"
#include "tdaemon.h"
#include "testutil.h"

#define DEFAULT_PROFILE "[guest]\nmemory = 16M\naccel = kvm:tcg\nhotplug-slots = 0\n"
#define MAXG 256
#define RAW_MAXFD 32

static void die(const char *what, struct t_daemon *d)
{
	fprintf(stderr, "qsup-idle: %s\n%s\n", what, d ? t_daemon_log(d) : "");
	if (d)
		t_daemon_cleanup(d);
	exit(1);
}

/* CPU seconds pid has used so far (utime + stime), or -1. */
static double cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');   /* comm may hold spaces */
	unsigned long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	                 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double cpu_sum(const pid_t *pids, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++) {
		double c = cpu_s(pids[i]);
		if (c >= 0)
			s += c;
	}
	return s;
}

static double sched_sum(const pid_t *pids, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++) {
		double c = t_sched_cpu_s(pids[i]);
		if (c >= 0)
			s += c;
	}
	return s;
}

/* CPU seconds of a set of processes, both ways. */
struct cpu {
	double tick, sched;
};

static struct cpu cpu_now(const pid_t *pids, int n)
{
	return (struct cpu){ cpu_sum(pids, n), sched_sum(pids, n) };
}

static struct cpu cpu_since(struct cpu before, const pid_t *pids, int n)
{
	struct cpu now = cpu_now(pids, n);
	return (struct cpu){ now.tick - before.tick, now.sched - before.sched };
}

/* Context switches of pid so far (voluntary + not): each is a wakeup of an
 * otherwise sleeping process, counted finer than CPU ticks. -1: gone. */
static long switches(pid_t pid)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	long n = 0, v;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
		    sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)
			n += v;
	fclose(f);
	return n;
}

static int nguests = 50, seconds = 60, pause_guests = 1;
static json_t *guest_fds[MAXG];   /* the argv verb's "fds": files at fd numbers */
static const char *profile = DEFAULT_PROFILE;

/* ---- qsup ---- */

static void run_qsup(char ***argvs, uid_t *uid, gid_t *gid, struct cpu *qsupd_cpu,
                     struct cpu *qemu_cpu, long *qsupd_wakeups)
{
	struct t_daemon d;
	struct t_ctl c;
	char name[32];
	if (t_daemon_init(&d) < 0)
		die("temp dir", NULL);
	for (int i = 0; i < nguests; i++) {
		snprintf(name, sizeof(name), "b%03d", i);
		t_daemon_profile(&d, name, profile);
	}
	if (t_daemon_start(&d, NULL) < 0 || t_ctl_open(&c, d.sock) < 0)
		die("qsupd did not start", &d);
	long long ids[MAXG];
	for (int i = 0; i < nguests; i++) {
		snprintf(name, sizeof(name), "b%03d", i);
		ids[i] = t_ctl_send(&c, "start", json_pack("{s:s}", "name", name));
	}
	pid_t pids[MAXG];
	for (int i = 0; i < nguests; i++) {
		json_t *r = t_ctl_reply(&c, ids[i], 120000);
		json_t *st = json_object_get(r, "return");
		if (!st)
			die("a guest did not start", &d);
		pids[i] = (pid_t)json_integer_value(json_object_get(st, "pid"));
		*uid = (uid_t)json_integer_value(json_object_get(st, "uid"));
		*gid = (gid_t)json_integer_value(json_object_get(st, "gid"));
		json_decref(r);
	}
	for (int i = 0; i < nguests; i++) {
		snprintf(name, sizeof(name), "b%03d", i);
		json_t *r = t_ctl_call(&c, "argv", json_pack("{s:s}", "name", name), 5000);
		json_t *av = json_object_get(json_object_get(r, "return"), "argv");
		argvs[i] = calloc(json_array_size(av) + 1, sizeof(char *));
		for (size_t k = 0; k < json_array_size(av); k++)
			argvs[i][k] = strdup(json_string_value(json_array_get(av, k)));
		guest_fds[i] = json_incref(json_object_get(json_object_get(r, "return"), "fds"));
		json_decref(r);
		if (pause_guests)
			json_decref(t_ctl_do(&c, "pause", name, 10000, NULL));
	}
	t_ctl_close(&c);          /* nobody waits on any guest: all idle */
	sleep(3);                 /* past start-up's last wakeups */
	struct cpu d0 = cpu_now(&d.pid, 1), q0 = cpu_now(pids, nguests);
	long w0 = switches(d.pid);
	sleep((unsigned)seconds);
	*qsupd_wakeups = switches(d.pid) - w0;
	*qsupd_cpu = cpu_since(d0, &d.pid, 1);
	*qemu_cpu = cpu_since(q0, pids, nguests);
	t_daemon_cleanup(&d);
}

/* ---- raw QEMU ---- */

struct raw {
	uv_process_t proc;
	struct qmp_client *qmp;
	int ready, done, exited;
};

static void raw_exit(uv_process_t *p, int64_t st, int sig)
{
	(void)st;
	(void)sig;
	((struct raw *)p->data)->exited = 1;
}

static void raw_done(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	(void)c;
	(void)r;
	((struct raw *)arg)->done++;
}

static void raw_ready(struct qmp_client *c, int status)
{
	struct raw *r = qmp_client_data(c);
	r->ready = status == 0 ? 1 : -1;
	if (status == 0)
		qmp_client_execute(c, pause_guests ? "query-status" : "cont", NULL, 0, raw_done, r);
}

static const struct qmp_callbacks raw_cbs = { .ready = raw_ready };

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
		return -1;
	return fd;
}

static int all_done(struct raw *r, int want)
{
	for (int i = 0; i < nguests; i++)
		if (r[i].done < want)
			return 0;
	return 1;
}

/* Run loop until every QEMU answered want commands (or 30 s passed). */
static void wait_done(uv_loop_t *loop, struct raw *r, int want)
{
	double t0 = t_now();
	while (!all_done(r, want) && t_now() - t0 < 30)
		uv_run(loop, UV_RUN_ONCE);
}

/* The QEMUs of argvs as qsupd starts them (paused in -S: left so when
 * pausing, else cont), each with a negotiated monitor; then one minute
 * silent (floor) and one with query-status every probe_ms to each. */
static void run_raw(char ***argvs, uid_t uid, gid_t gid, const char *dir, int probe_ms,
                    struct cpu *floor_cpu, struct cpu *probed_cpu)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct raw *r = calloc((size_t)nguests, sizeof(*r));
	pid_t pids[MAXG];
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	for (int i = 0; i < nguests; i++) {
		char qpath[300], spath[300];
		snprintf(qpath, sizeof(qpath), "%s/raw-%d-qmp.sock", dir, i);
		snprintf(spath, sizeof(spath), "%s/raw-%d-serial.sock", dir, i);
		int qfd = listen_at(qpath), sfd = listen_at(spath);
		if (qfd < 0 || sfd < 0)
			die("raw sockets", NULL);
		/* fds 3 and 4: the sockets; above: the files the argv names
		 * (firmware, a bios), opened as qsupd opens them. */
		uv_stdio_container_t stdio[RAW_MAXFD];
		int opened[RAW_MAXFD], n = 5;
		for (int k = 0; k < RAW_MAXFD; k++) {
			stdio[k].flags = UV_IGNORE;
			opened[k] = -1;
		}
		stdio[1] = (uv_stdio_container_t){ .flags = UV_INHERIT_FD, .data.fd = null };
		stdio[2] = stdio[1];
		opened[3] = qfd;
		opened[4] = sfd;
		size_t fi;
		json_t *f;
		json_array_foreach(guest_fds[i], fi, f) {
			int fd = (int)json_integer_value(json_object_get(f, "fd"));
			const char *mode = json_string_value(json_object_get(f, "mode"));
			const char *path = json_string_value(json_object_get(f, "path"));
			int fl = !mode || !strcmp(mode, "read-only") ? O_RDONLY
			         : !strcmp(mode, "append") ? O_WRONLY | O_APPEND : O_RDWR;
			if (fd < 5 || fd >= RAW_MAXFD || !path)
				die("raw QEMU: an fd this bench cannot pass", NULL);
			if (fl & O_APPEND)
				path = "/dev/null";   /* a log: not the guest's */
			if ((opened[fd] = open(path, fl | O_CLOEXEC)) < 0)
				die("raw QEMU: a file of the argv cannot be opened", NULL);
			if (fd + 1 > n)
				n = fd + 1;
		}
		for (int k = 3; k < n; k++)
			if (opened[k] >= 0)
				stdio[k] = (uv_stdio_container_t){ .flags = UV_INHERIT_FD,
				                                   .data.fd = opened[k] };
		uv_process_options_t o = { .exit_cb = raw_exit, .file = argvs[i][0],
		                           .args = argvs[i], .stdio = stdio, .stdio_count = n,
		                           .cwd = "/" };
		if (uid) {
			o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
			o.uid = uid;
			o.gid = gid;
		}
		r[i].proc.data = &r[i];
		if (uv_spawn(&loop, &r[i].proc, &o) < 0)
			die("spawn raw QEMU", NULL);
		pids[i] = r[i].proc.pid;
		for (int k = 3; k < n; k++)
			if (opened[k] >= 0)
				close(opened[k]);
		r[i].qmp = qmp_client_new(&loop, &raw_cbs, &r[i]);
		qmp_client_connect(r[i].qmp, qpath);
	}
	close(null);
	wait_done(&loop, r, 1);
	if (!all_done(r, 1))
		die("raw QEMUs did not all answer", NULL);
	t_run_for(&loop, 3000);

	struct cpu q0 = cpu_now(pids, nguests);
	sleep((unsigned)seconds);                  /* the loop is not run: silence */
	*floor_cpu = cpu_since(q0, pids, nguests);

	/* Probes at the old fixed interval, every guest at once as the old
	 * timers (all started together) did. */
	q0 = cpu_now(pids, nguests);
	double t0 = t_now();
	for (int k = 2; t_now() - t0 < seconds; k++) {
		t_run_for(&loop, (uint64_t)probe_ms);
		for (int i = 0; i < nguests; i++)
			qmp_client_execute(r[i].qmp, "query-status", NULL, 0, raw_done, &r[i]);
		wait_done(&loop, r, k);
	}
	*probed_cpu = cpu_since(q0, pids, nguests);

	for (int i = 0; i < nguests; i++) {
		qmp_client_close(r[i].qmp);
		uv_process_kill(&r[i].proc, SIGKILL);
	}
	for (int i = 0; i < nguests; i++) {
		t_run_until_flag(&loop, &r[i].exited, 5000);
		uv_close((uv_handle_t *)&r[i].proc, NULL);
	}
	t_loop_finish(&loop);
	free(r);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		nguests = atoi(argv[1]);
	if (argc > 2)
		seconds = atoi(argv[2]);
	if (nguests < 1 || nguests > MAXG || seconds < 1) {
		fprintf(stderr, "usage: qsup-idle [GUESTS (1-%d) [SECONDS]]\n", MAXG);
		return 2;
	}
	char dir[] = "/tmp/qsup-idle-XXXXXX";
	if (!mkdtemp(dir))
		die("temp dir", NULL);
	const char *p = getenv("QSUP_BENCH_PROFILE"), *what = "firmware only, -m 16";
	char script[600], rom[300], text[1024], out[512];
	snprintf(script, sizeof(script), "%s/bench/halt-rom.sh", t_srcdir());
	snprintf(rom, sizeof(rom), "%s/halt.rom", dir);
	if (p && *p) {
		profile = p;
		pause_guests = 0;
		what = "QSUP_BENCH_PROFILE";
	} else if (access(script, R_OK) == 0) {
		/* A cli; hlt BIOS where the source tree has its maker: halting
		 * guests that may stay running. */
		const char *const av[] = { "/bin/sh", script, rom, NULL };
		if (t_run_capture(av, out, sizeof(out), 10000) != 0)
			die("bench/halt-rom.sh failed", NULL);
		snprintf(text, sizeof(text), "%sbios = %s\n", DEFAULT_PROFILE, rom);
		profile = text;
		pause_guests = 0;
		what = "-m 16, the cli; hlt ROM of bench/halt-rom.sh";
	}
	const char *pz = getenv("QSUP_BENCH_PAUSE");
	if (pz && *pz)
		pause_guests = atoi(pz) != 0;

	char ***argvs = calloc((size_t)nguests, sizeof(char **));
	uid_t uid = 0;
	gid_t gid = 0;
	struct cpu qsupd_cpu, qemu_cpu, floor_cpu, probed_cpu;
	long wakeups;
	printf("%d idle guests (%s; %s), CPU seconds over %d s:\n", nguests,
	       what,
	       pause_guests ? "paused once running" : "left running", seconds);
	fflush(stdout);
	run_qsup(argvs, &uid, &gid, &qsupd_cpu, &qemu_cpu, &wakeups);
	run_raw(argvs, uid, gid, dir, 2000, &floor_cpu, &probed_cpu);
	t_rmtree(dir);   /* the ROM and the raw QEMUs' sockets */
	double per_min = 60.0 / seconds;
	printf("  (ticks: utime + stime, 10 ms each; sched: the scheduler's ns count)\n");
	printf("                                          ticks   sched\n");
	printf("  raw QEMU floor (QMP open, silent)      %6.3f  %6.3f  QEMUs\n",
	       floor_cpu.tick, floor_cpu.sched);
	printf("  raw QEMU + query-status every 2 s      %6.3f  %6.3f  QEMUs (the old probe)\n",
	       probed_cpu.tick, probed_cpu.sched);
	printf("  qsup                                   %6.3f  %6.3f  qsupd\n",
	       qsupd_cpu.tick, qsupd_cpu.sched);
	printf("                                         %6.3f  %6.3f  its QEMUs\n",
	       qemu_cpu.tick, qemu_cpu.sched);
	struct cpu all = { qsupd_cpu.tick + qemu_cpu.tick, qsupd_cpu.sched + qemu_cpu.sched };
	printf("                                         %6.3f  %6.3f  all\n", all.tick, all.sched);
	printf("  qsupd woke %ld times (context switches): %.1f per guest per minute\n",
	       wakeups, (double)wakeups * per_min / nguests);
	printf("  qsup per minute, QEMUs included: %.3f CPU s by ticks, %.3f by sched; over "
	       "the floor %.3f, %.3f (goal <= 0.1 for 50 guests)\n", all.tick * per_min,
	       all.sched * per_min, (all.tick - floor_cpu.tick) * per_min,
	       (all.sched - floor_cpu.sched) * per_min);
	for (int i = 0; i < nguests; i++) {
		for (size_t k = 0; argvs[i] && argvs[i][k]; k++)
			free(argvs[i][k]);
		free(argvs[i]);
		json_decref(guest_fds[i]);
	}
	free(argvs);
	return 0;
}
