/*
 * qsup-bench: the figures behind bench/start, bench/rpc and bench/rss.
 * Prints numbers; asserts nothing.
 *
 *   qsup-bench start [RUNS]   start until running vs raw QEMU: `qsupctl
 *                             start` as a process (the goal's figure), and
 *                             the same request on an open control socket;
 *                             and the floor of any client process
 *   qsup-bench rpc [GUESTS]   status round trips, 1 and 8 connections
 *   qsup-bench rss            qsupd RSS with 0, 10 and 50 guests
 *   qsup-bench restart [RUNS] kill -9 of QEMU to running again (delay 0),
 *                             against raw QEMU killed, waited for, started
 *   qsup-bench readopt [N [RUNS]] qsupd start to all running, 10, 50 (and
 *                             N) guests, against the QMP reconnect floor;
 *                             each measured at once after the last hang-up,
 *                             or SETTLE_MS later (a service manager's
 *                             restart delay, 100 ms under systemd)
 *   qsup-bench scale [N [RUNS]] N (200) halting guests: starts sequential
 *                             (one by one in turn with raw QEMU's) and
 *                             parallel (the two batches in turn) against
 *                             raw QEMU (RUNS times, 3; 0 for none), qsupd
 *                             RSS, list and status p99, event fan-out to 10
 *                             clients
 *   qsup-bench hotplug [RUNS] attach until device_add returned; detach until
 *                             DEVICE_DELETED (the tiny guest, TCG)
 *   qsup-bench attach [RUNS]  attach into a halting guest (KVM when usable):
 *                             QMP only, so steady; against raw QEMU sending
 *                             qsupd's own add-fd, blockdev-add and device_add,
 *                             and the floor of any daemon (one round trip)
 *
 * Guests are firmware-only (-m 16), under KVM when usable, else TCG; all
 * but bench/start's boot the cli; hlt ROM of bench/halt-rom.sh, so running
 * guests cost no CPU. The
 * raw-QEMU baseline starts the identical argv the way qsupd does (sockets
 * bound first and passed as fds 3 and 4, QMP negotiated, cont).
 * Their files (run dirs, sockets, locks) are on a tmpfs, as /run is on a
 * host (files_on_tmpfs). Programs timed as processes (qsupctl, the floor)
 * are started with posix_spawn, as a shell does.
 * Runs interleave qsupd's with the baseline's; a goal's ratio is the
 * median of the runs' own ratios (paired()), the ratio of the medians is
 * printed after it in parentheses. start and scale let the machine settle
 * between runs (50 ms, 2 s), so that no run pays for its predecessor's
 * teardown.
 */
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp.h"
#include "tdaemon.h"
#include "testutil.h"

#define PROFILE "[guest]\nmemory = 16M\naccel = kvm:tcg\nhotplug-slots = 0\n"

/* The time a start may take, on both sides alike (start_daemon's profiles,
 * raw QEMU's negotiation in raw_spawn): the benches time starts, and on a
 * loaded host (200 QEMUs at once under TCG) neither side's deadline may
 * stand in for a figure. */
#define START_TIMEOUT_S 120
#define QEMU_SECTION "[qemu]\nstart-timeout = 120s\n"

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

/* The median of a[i] / b[i]: each run against the baseline run next to
 * it, so that a drift of the machine over the bench (a QEMU still
 * exiting, page cache, frequency) falls on both sides of each ratio. The
 * goals are judged on this figure; the ratio of the medians is shown
 * beside it. */
static double paired(const double *a, const double *b, int n)
{
	double *r = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
	if (!r)
		return 0;
	for (int i = 0; i < n; i++)
		r[i] = b[i] > 0 ? a[i] / b[i] : 0;
	double m = n > 0 ? pct(r, n, 0.5) : 0;
	free(r);
	return m;
}

static void fail(const char *what, struct t_daemon *d)
{
	fprintf(stderr, "qsup-bench: %s\n%s\n", what, d ? t_daemon_log(d) : "");
	if (d)
		t_daemon_cleanup(d);
	exit(1);
}

/* ---- where the bench's files live ---- */

static char tmpfs_dir[64];

static void tmpfs_leave(void)
{
	umount2(tmpfs_dir, MNT_DETACH);
	rmdir(tmpfs_dir);
}

static bool on_tmpfs(const char *path)
{
	struct statfs sf;
	return statfs(path, &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

/* The run dirs, sockets and guest locks of every guest the bench starts,
 * qsupd's and raw QEMU's alike, on a tmpfs, as /run (where qsupd keeps
 * them by default) and /run/lock are on a host; some machines have them
 * on disk, where each state.json rename starts the disk. A tmpfs of the
 * bench's own, in a mount namespace of its own: nothing outside sees it,
 * and it goes with the bench. QSUP_BENCH_DISK=1 keeps them where they
 * are. Says which it did. */
static void files_on_tmpfs(void)
{
	const char *why = NULL;
	bool run_lock = on_tmpfs("/run/lock");
	snprintf(tmpfs_dir, sizeof(tmpfs_dir), "/tmp/qsup-bench.XXXXXX");
	if (getenv("QSUP_BENCH_DISK") && *getenv("QSUP_BENCH_DISK"))
		why = "QSUP_BENCH_DISK is set";
	else if (!mkdtemp(tmpfs_dir))
		why = "no directory in /tmp";
	else if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	         mount("qsup-bench", tmpfs_dir, "tmpfs", 0, "mode=0755") < 0 ||
	         (!run_lock && mount("qsup-bench", "/run/lock", "tmpfs", 0, "mode=1777") < 0)) {
		why = "no mount namespace of its own (not root?)";
		rmdir(tmpfs_dir);
	}
	if (why) {
		printf("# files in %s/run/lock on disk: %s\n",
		       on_tmpfs(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") ? "" : "TMPDIR and ",
		       why);
		return;
	}
	setenv("TMPDIR", tmpfs_dir, 1);
	atexit(tmpfs_leave);
	printf("# files on a tmpfs, as in /run: run dirs, sockets, locks (QSUP_BENCH_DISK=1: "
	       "on disk)\n");
}

/* The halting ROM (bench/halt-rom.sh) in d's dir; its path in rom. */
static void halt_rom(struct t_daemon *d, char *rom, size_t size)
{
	if (t_daemon_halt_rom(d, rom, size) < 0)
		fail("bench/halt-rom.sh failed", NULL);
}

/* Guests b00.. (b000.. from 100 on); halting: the cli; hlt ROM as their
 * BIOS, so that running guests cost no CPU. */
static void guest_name(char *name, size_t size, int i, int n)
{
	snprintf(name, size, n > 100 ? "b%03d" : "b%02d", i);
}

static void start_daemon(struct t_daemon *d, struct t_ctl *c, int guests, bool halting)
{
	char name[32], rom[600], text[1024];
	if (t_daemon_init(d) < 0)
		fail("temp dir", NULL);
	snprintf(text, sizeof(text), "%s", PROFILE QEMU_SECTION);
	if (halting) {
		halt_rom(d, rom, sizeof(rom));
		snprintf(text, sizeof(text), "%sbios = %s\n" QEMU_SECTION, PROFILE, rom);
	}
	for (int i = 0; i < guests; i++) {
		guest_name(name, sizeof(name), i, guests);
		t_daemon_profile(d, name, text);
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

/* One raw QEMU: the argv qsupd would run, its sockets bound by us and
 * passed as fds 3 and 4, the files the argv names opened and passed at
 * their numbers; QMP negotiated, then cont. */
struct raw {
	uv_process_t proc;
	struct qmp_client *c;
	int exited, cont_done, spawned;
	int failed;             /* no negotiation, or cont refused: why says */
	char why[200];
	double t0, t1;          /* spawn, cont returned */
	char qpath[300];
};

/* A guest's command line as the argv verb gives it: argv and the fds. */
struct cmd {
	char **argv;
	json_t *fds;
};

static void raw_exit(uv_process_t *p, int64_t st, int sig)
{
	(void)st;
	(void)sig;
	((struct raw *)p->data)->exited = 1;
}

static void raw_cont(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	(void)c;
	struct raw *w = arg;
	w->t1 = t_now();
	if (r->status != 0) {
		w->failed = 1;
		snprintf(w->why, sizeof(w->why), "cont: %s", r->err_desc ? r->err_desc
		         : qmp_strerror(r->status));
	}
	w->cont_done = 1;
}

static void raw_ready(struct qmp_client *c, int status)
{
	struct raw *w = qmp_client_data(c);
	if (status == 0) {
		qmp_client_execute(c, "cont", NULL, 0, raw_cont, w);
		return;
	}
	/* No greeting or negotiation: no figure. The wait ends now, not at
	 * its own deadline, and the bench says so (raw_wait). */
	w->failed = 1;
	snprintf(w->why, sizeof(w->why), "QMP negotiation: %s", qmp_strerror(status));
	w->cont_done = 1;
}

/* The connection ended (QEMU killed, say): libqmp has freed the client. */
static void raw_closed(struct qmp_client *c, int status)
{
	(void)status;
	((struct raw *)qmp_client_data(c))->c = NULL;
}

static const struct qmp_callbacks raw_cbs = { .ready = raw_ready, .closed = raw_closed };

/* The identity qsupd runs QEMU as (raw QEMU gets the same one, so that
 * both sides pay what an unprivileged QEMU costs). */
static uid_t raw_uid;
static gid_t raw_gid;

static void learn_identity(json_t *status)
{
	raw_uid = (uid_t)json_integer_value(json_object_get(status, "uid"));
	raw_gid = (gid_t)json_integer_value(json_object_get(status, "gid"));
}

#define RAW_MAXFD 32

/* Spawn w (argv with fds 3 and 4 expected, and cmd's files) as qsupd's
 * QEMU identity; idx makes its socket names unique in dir. */
static void raw_spawn(uv_loop_t *loop, struct raw *w, const struct cmd *cmd, const char *dir,
                      int idx, const struct qmp_callbacks *cbs)
{
	char spath[300];
	memset(w, 0, sizeof(*w));
	snprintf(w->qpath, sizeof(w->qpath), "%s/raw%d-qmp.sock", dir, idx);
	snprintf(spath, sizeof(spath), "%s/raw%d-serial.sock", dir, idx);
	w->t0 = t_now();
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	uv_stdio_container_t stdio[RAW_MAXFD];
	int opened[RAW_MAXFD], n = 5;
	for (int i = 0; i < RAW_MAXFD; i++) {
		stdio[i].flags = UV_IGNORE;
		opened[i] = -1;
	}
	stdio[1] = (uv_stdio_container_t){ .flags = UV_INHERIT_FD, .data.fd = null };
	stdio[2] = (uv_stdio_container_t){ .flags = UV_INHERIT_FD, .data.fd = null };
	opened[3] = listen_at(w->qpath);
	opened[4] = listen_at(spath);
	size_t i;
	json_t *f;
	json_array_foreach(cmd->fds, i, f) {
		int fd = (int)json_integer_value(json_object_get(f, "fd"));
		const char *mode = json_string_value(json_object_get(f, "mode"));
		const char *path = json_string_value(json_object_get(f, "path"));
		int fl = !mode || !strcmp(mode, "read-only") ? O_RDONLY
		         : !strcmp(mode, "append") ? O_WRONLY | O_APPEND | O_CREAT : O_RDWR;
		if (fd < 5 || fd >= RAW_MAXFD || !path)
			fail("raw QEMU: an fd the bench cannot pass", NULL);
		char alt[600];
		if (fl & O_APPEND) {   /* a log of its own, not the guest's */
			snprintf(alt, sizeof(alt), "%s/raw%d.log", dir, idx);
			path = alt;
		}
		opened[fd] = open(path, fl | O_CLOEXEC, 0644);
		if (fd + 1 > n)
			n = fd + 1;
	}
	for (int k = 3; k < n; k++)
		if (opened[k] >= 0)
			stdio[k] = (uv_stdio_container_t){ .flags = UV_INHERIT_FD, .data.fd = opened[k] };
	w->proc.data = w;
	uv_process_options_t o = { .exit_cb = raw_exit, .file = cmd->argv[0], .args = cmd->argv,
	                           .stdio = stdio, .stdio_count = n, .cwd = "/" };
	if (raw_uid) {
		o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
		o.uid = raw_uid;
		o.gid = raw_gid;
	}
	if (uv_spawn(loop, &w->proc, &o) < 0)
		fail("spawn raw QEMU", NULL);
	w->spawned = 1;
	for (int k = 3; k < n; k++)
		if (opened[k] >= 0)
			close(opened[k]);
	close(null);
	w->c = qmp_client_new(loop, cbs, w);
	qmp_client_set_eager(w->c, 1);   /* as qsupd negotiates */
	qmp_client_set_limits(w->c, START_TIMEOUT_S * 1000u, 0);
	qmp_client_connect(w->c, w->qpath);
}

/* Kill w and wait for it. */
static void raw_reap(uv_loop_t *loop, struct raw *w)
{
	if (!w->spawned)
		return;
	qmp_client_close(w->c);   /* NULL once it ended by itself (raw_closed) */
	w->c = NULL;
	uv_process_kill(&w->proc, SIGKILL);
	t_run_until_flag(loop, &w->exited, 5000);
	uv_close((uv_handle_t *)&w->proc, NULL);
	w->spawned = 0;
}

/* Wait until w's cont returned; a raw QEMU that failed or gave no answer
 * within ms ends the bench (a figure from it would be its deadline's). */
static void raw_wait(uv_loop_t *loop, struct raw *w, uint64_t ms)
{
	t_run_until_flag(loop, &w->cont_done, ms);
	if (!w->cont_done || w->failed) {
		fprintf(stderr, "qsup-bench: raw QEMU (%s): %s\n", w->qpath,
		        w->failed ? w->why : "cont did not return in time");
		exit(1);
	}
}

/* Start one raw QEMU until cont returned; seconds. */
static double raw_start(const struct cmd *cmd, const char *dir)
{
	uv_loop_t loop;
	struct raw w;
	uv_loop_init(&loop);
	raw_spawn(&loop, &w, cmd, dir, 0, &raw_cbs);
	raw_wait(&loop, &w, 10000);
	double dt = w.t1 - w.t0;
	raw_reap(&loop, &w);
	t_loop_finish(&loop);
	return dt;
}

/* The floor of a restart: a raw QEMU (started untimed) killed with SIGKILL,
 * its exit waited for (the kernel tears its memory down first), then a new
 * one started until cont returned; seconds from the kill. */
static double raw_restart(const struct cmd *cmd, const char *dir)
{
	uv_loop_t loop;
	struct raw old, w;
	uv_loop_init(&loop);
	raw_spawn(&loop, &old, cmd, dir, 0, &raw_cbs);
	raw_wait(&loop, &old, 10000);
	double t0 = t_now();
	uv_process_kill(&old.proc, SIGKILL);
	t_run_until_flag(&loop, &old.exited, 5000);
	raw_spawn(&loop, &w, cmd, dir, 1, &raw_cbs);
	raw_wait(&loop, &w, 10000);
	double dt = w.t1 - t0;
	raw_reap(&loop, &old);   /* exited: its handles closed */
	raw_reap(&loop, &w);
	t_loop_finish(&loop);
	return dt;
}

/* guest's command line, as start would run it. */
static struct cmd guest_cmd(struct t_ctl *c, const char *name)
{
	struct cmd cmd;
	json_t *r = t_ctl_call(c, "argv", json_pack("{s:s}", "name", name), 5000);
	json_t *ret = json_object_get(r, "return");
	json_t *av = json_object_get(ret, "argv");
	if (!av)
		fail("argv failed", NULL);
	cmd.argv = calloc(json_array_size(av) + 1, sizeof(char *));
	for (size_t i = 0; i < json_array_size(av); i++)
		cmd.argv[i] = strdup(json_string_value(json_array_get(av, i)));
	cmd.fds = json_incref(json_object_get(ret, "fds"));
	json_decref(r);
	return cmd;
}

static void cmd_free(struct cmd *cmd)
{
	for (size_t i = 0; cmd->argv[i]; i++)
		free(cmd->argv[i]);
	free(cmd->argv);
	json_decref(cmd->fds);
}

/* Run argv as a process of its own (stdin and stdout on /dev/null) and
 * wait for it; seconds from the spawn to its exit, or -1 when it failed.
 * posix_spawn, as a shell or a script's runtime starts a program: a fork
 * of this process (its loops and their thread pool) would cost more than
 * the program being timed. */
static double spawn_timed(const char *const *argv)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status = 1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	double t0 = t_now();
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0 || waitpid(pid, &status, 0) < 0 || status != 0)
		return -1;
	return t_now() - t0;
}

/* `qsupctl -s SOCK VERB NAME` as a process of its own, as a script runs
 * it; seconds, or -1 when it failed. */
static double qsupctl_run(const char *sock, const char *verb, const char *name)
{
	const char *argv[] = { t_qsupctl(), "-s", sock, verb, name, NULL };
	return spawn_timed(argv);
}

/* Each start of bench_start begins once the one before is over: the
 * kernel's teardown of the QEMU just killed, and what qsupd does after
 * its exit (its files, state.json), would otherwise fall on the next
 * start, which in a rotation of three is mostly the same one. */
#define START_SETTLE_US 50000

static void bench_start(int runs)
{
	struct t_daemon d;
	struct t_ctl c;
	start_daemon(&d, &c, 1, false);
	double *qs = calloc((size_t)runs, sizeof(double));
	double *qc = calloc((size_t)runs, sizeof(double));
	double *raw = calloc((size_t)runs, sizeof(double));
	struct cmd cmd = guest_cmd(&c, "b00");
	bool learned = false;
	double cpu = 0;   /* qsupd's, over its starts and kills by the control socket */
	for (int i = 0; i < runs; i++) {
		/* The three in turn, each first in one run of three: whatever
		 * the one before leaves behind (a QEMU just killed) falls on
		 * each alike. */
		for (int k = 0; k < 3; k++) {
			int which = (i + k) % 3;
			usleep(START_SETTLE_US);
			if (which == 0) {   /* the qsupctl process: its start also waits until running */
				if ((qc[i] = qsupctl_run(d.sock, "start", "b00")) < 0)
					fail("qsupctl start failed", &d);
				json_decref(t_ctl_do(&c, "kill", "b00", 20000, NULL));
			} else if (which == 1) {
				double c0 = t_sched_cpu_s(d.pid);
				double t0 = t_now();
				json_t *s = t_ctl_do(&c, "start", "b00", 20000, NULL);
				qs[i] = t_now() - t0;
				if (!s)
					fail("start failed", &d);
				if (!learned) {
					learned = true;
					printf("# qsupd chose %s; QEMU runs as uid %lld (raw QEMU too)\n",
					       json_string_value(json_object_get(s, "accel")),
					       (long long)json_integer_value(json_object_get(s, "uid")));
					learn_identity(s);
				}
				json_decref(s);
				json_decref(t_ctl_do(&c, "kill", "b00", 20000, NULL));
				cpu += t_sched_cpu_s(d.pid) - c0;
			} else {
				raw[i] = raw_start(&cmd, d.dir);
			}
		}
	}
	/* What any client process costs by itself (spawn, exec, exit), run
	 * as qsupctl is: the floor under the qsupctl row, with the raw start. */
	double *tr = calloc((size_t)runs, sizeof(double));
	const char *const true_argv[] = { "/bin/true", NULL };
	for (int i = 0; i < runs; i++)
		if ((tr[i] = spawn_timed(true_argv)) < 0)
			fail("/bin/true failed", &d);
	double pc = paired(qc, raw, runs), pq = paired(qs, raw, runs);   /* before the sorts */
	double mq = pct(qs, runs, 0.5), mr = pct(raw, runs, 0.5), mc = pct(qc, runs, 0.5);
	printf("start until running (SeaBIOS), median of %d, interleaved in turn; ratio: paired\n"
	       "(the median of each run against the raw run next to it), then of the medians:\n",
	       runs);
	printf("  qsupctl start (its process)   %8.1f ms  ratio %6.3f (%5.3f)  (goal <= 1.03)\n",
	       mc * 1e3, pc, mc / mr);
	printf("  qsupd start (control socket)  %8.1f ms  ratio %6.3f (%5.3f)\n", mq * 1e3, pq,
	       mq / mr);
	printf("  raw QEMU, same argv, to cont  %8.1f ms\n", mr * 1e3);
	double mt = pct(tr, runs, 0.5);
	printf("  a client process alone (/bin/true spawned and waited for): %.2f ms, so any\n"
	       "  client's floor is raw + that = %.1f ms, ratio %.3f; qsupctl start against that"
	       " floor: %.3f\n", mt * 1e3, (mr + mt) * 1e3, (mr + mt) / mr, mc / (mr + mt));
	printf("  qsupd's CPU per start and kill (all its threads, the scheduler's count): "
	       "%.0f us\n", cpu / runs * 1e6);
	cmd_free(&cmd);
	free(tr);
	free(qc);
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
	start_daemon(&d, &conns[0], guests, true);
	for (int i = 1; i < 8; i++)
		t_ctl_open(&conns[i], d.sock);
	char name[32];
	for (int i = 0; i < guests; i++) {
		guest_name(name, sizeof(name), i, guests);
		json_decref(t_ctl_do(&conns[0], "start", name, 20000, NULL));
		/* Paused, and halting anyway: spinning firmware would measure
		 * the host's scheduler, not qsupd. */
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

/* Start (or another verb) guests 0..n-1, pipelined, and wait for every
 * reply; seconds. */
static double all_do(struct t_ctl *c, const char *verb, int n)
{
	char name[32];
	long long *ids = calloc((size_t)n, sizeof(long long));
	double t0 = t_now();
	for (int i = 0; i < n; i++) {
		guest_name(name, sizeof(name), i, n);
		ids[i] = t_ctl_send(c, verb, json_pack("{s:s}", "name", name));
	}
	for (int i = 0; i < n; i++) {
		json_t *r = t_ctl_reply(c, ids[i], 120000);
		if (!json_object_get(r, "return"))
			fprintf(stderr, "qsup-bench: %s: %s\n", verb, r ? json_dumps(r, 0) : "no reply");
		json_decref(r);
	}
	free(ids);
	return t_now() - t0;
}

static void start_all(struct t_ctl *c, int n)
{
	all_do(c, "start", n);
}

/* ---- rss ---- */

static void bench_rss(void)
{
	int counts[] = { 0, 10, 50 };
	printf("qsupd RSS (halting guests, -m 16); anon = qsupd's own, the rest\n"
	       "is shared library text:\n");
	for (size_t k = 0; k < 3; k++) {
		struct t_daemon d;
		struct t_ctl c;
		start_daemon(&d, &c, counts[k], true);
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

static void bench_restart(int runs)
{
	struct t_daemon d;
	struct t_ctl c, ev;
	char rom[600], text[1024];
	if (t_daemon_init(&d) < 0)
		fail("temp dir", NULL);
	halt_rom(&d, rom, sizeof(rom));
	snprintf(text, sizeof(text), PROFILE "bios = %s\n[restart]\ndelay = 0\nburst = 1000\n", rom);
	t_daemon_profile(&d, "b00", text);
	if (t_daemon_start(&d, NULL) < 0 || t_ctl_open(&c, d.sock) < 0 || t_ctl_open(&ev, d.sock) < 0)
		fail("qsupd did not start", &d);
	json_decref(t_ctl_call(&ev, "subscribe", NULL, 5000));
	json_t *s0 = t_ctl_do(&c, "start", "b00", 20000, NULL);
	learn_identity(s0);
	json_decref(s0);
	json_decref(t_ctl_wait_state(&ev, "b00", "running", 5000));
	double *v = calloc((size_t)runs, sizeof(double)), *raw = calloc((size_t)runs, sizeof(double));
	double *rr = calloc((size_t)runs, sizeof(double));
	struct cmd cmd = guest_cmd(&c, "b00");
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
		/* the restarted guest halts: the raw runs below have the CPU */
		raw[i] = raw_start(&cmd, d.dir);
		rr[i] = raw_restart(&cmd, d.dir);
	}
	double mv = median_of(v, runs), mr = median_of(raw, runs), mrr = median_of(rr, runs);
	printf("kill -9 of QEMU until running again (delay 0; halting guest), median of %d, "
	       "interleaved:\n", runs);
	printf("  qsupd restart                         %8.1f ms\n", mv * 1e3);
	printf("  raw QEMU: kill -9, its exit, a start  %8.1f ms  ratio %.3f (the floor)\n",
	       mrr * 1e3, mv / mrr);
	printf("  raw QEMU start alone, same argv       %8.1f ms  ratio %.3f\n", mr * 1e3, mv / mr);
	cmd_free(&cmd);
	free(v);
	free(raw);
	free(rr);
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

struct floor_conn { int ready, done, closed; };

static void floor_status(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	(void)c;
	(void)r;
	((struct floor_conn *)arg)->done = 1;
}

static void floor_ready(struct qmp_client *c, int status)
{
	struct floor_conn *f = qmp_client_data(c);
	f->ready = 1;
	if (status != 0)
		f->done = 1;
}

/* The connection ended by itself: libqmp has freed the client. */
static void floor_closed(struct qmp_client *c, int status)
{
	(void)status;
	struct floor_conn *f = qmp_client_data(c);
	f->closed = f->done = 1;
}

static const struct qmp_callbacks floor_cbs = { .ready = floor_ready, .closed = floor_closed };

struct floor { struct floor_conn *f; int n; };

static int floor_done(void *arg)
{
	struct floor *fl = arg;
	for (int i = 0; i < fl->n; i++)
		if (!fl->f[i].done)
			return 0;
	return 1;
}

/* The reconnect floor: QMP to every guest's QEMU at once, negotiated,
 * one query-status each, as re-adoption needs at least, pipelined as
 * qsupd does (eager: both written at connect); seconds. */
static double reconnect_floor(const char *run, int n)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct floor fl = { calloc((size_t)n, sizeof(struct floor_conn)), n };
	struct qmp_client **cs = calloc((size_t)n, sizeof(*cs));
	char name[32], path[700];
	double t0 = t_now();
	for (int i = 0; i < n; i++) {
		guest_name(name, sizeof(name), i, n);
		snprintf(path, sizeof(path), "%s/%s/qmp.sock", run, name);
		cs[i] = qmp_client_new(&loop, &floor_cbs, &fl.f[i]);
		qmp_client_set_eager(cs[i], 1);
		if (qmp_client_connect(cs[i], path) < 0 ||
		    qmp_client_execute(cs[i], "query-status", NULL, 0, floor_status, &fl.f[i]) < 0)
			fl.f[i].done = 1;
	}
	t_run_until(&loop, floor_done, &fl, 30000);
	double dt = t_now() - t0;
	for (int i = 0; i < n; i++)
		if (!fl.f[i].closed)
			qmp_client_close(cs[i]);
	t_loop_finish(&loop);
	free(cs);
	free(fl.f);
	return dt;
}

/* The same floor as a program of its own, timed from its spawn to its
 * exit, as qsupd is timed from its spawn: `qsup-bench floor RUN N`. */
static double reconnect_floor_process(const char *run, int n)
{
	char count[16];
	snprintf(count, sizeof(count), "%d", n);
	const char *argv[] = { "/proc/self/exe", "floor", count, run, NULL };
	double dt = spawn_timed(argv);
	if (dt < 0)
		fail("the floor program failed", NULL);
	return dt;
}

static bool is_running_event(json_t *m)
{
	return !strcmp(t_str(m, "event"), "GUEST_STATE") &&
	       !strcmp(t_str(json_object_get(m, "data"), "state"), "running");
}

/* qsupd started on the guests of a killed one until every guest is
 * running again, as a client would wait for it: subscribed, one list,
 * then the GUEST_STATE events (no polling, which would load the daemon
 * it measures); seconds. */
static double readopt_once(struct t_daemon *d, int n)
{
	struct t_ctl c;
	double t0 = t_now();
	/* The socket polled every 0.2 ms (t_daemon_start backs off to 10 ms,
	 * which would add up to that much to a figure of a few ms). */
	if (t_daemon_spawn(d, NULL) < 0)
		fail("qsupd did not start again", d);
	while (t_ctl_open(&c, d->sock) < 0) {
		if (t_now() - t0 > 10 || waitpid(d->pid, NULL, WNOHANG) == d->pid)
			fail("qsupd did not start again", d);
		usleep(200);
	}
	json_decref(t_ctl_call(&c, "subscribe", NULL, 5000));
	json_t *running = json_object(), *r = t_ctl_call(&c, "list", NULL, 5000), *g;
	size_t i;
	json_array_foreach(json_object_get(r, "return"), i, g)
		if (!strcmp(t_str(g, "state"), "running"))
			json_object_set_new(running, t_str(g, "name"), json_true());
	json_decref(r);
	while ((int)json_object_size(running) < n && t_now() - t0 < 60) {
		json_t *m = t_ctl_next(&c, 60000);
		if (!m)
			break;
		if (is_running_event(m))
			json_object_set_new(running, t_str(json_object_get(m, "data"), "name"),
			                    json_true());
		json_decref(m);
	}
	double dt = t_now() - t0;
	if ((int)json_object_size(running) < n)
		fail("not every guest came back", d);
	json_decref(running);
	t_ctl_close(&c);
	return dt;
}

static void bench_readopt(int big, int runs)
{
	int counts[] = { 10, 50, big };
	useconds_t settle = getenv("SETTLE_MS") ? (useconds_t)atoi(getenv("SETTLE_MS")) * 1000 : 0;
	printf("re-adoption after SIGKILL of qsupd (halting guests), median of %d: qsupd's\n"
	       "spawn until every guest is running again, against the reconnect floor (QMP\n"
	       "to every QEMU at once, one query-status each) run as a program of its own\n"
	       "and timed from its spawn, as qsupd is; the floor inside this process is\n"
	       "shown too. Measured in the same run, each %s; ratio: paired\n"
	       "(the median of each run against the floor run next to it), then of the medians:\n",
	       runs,
	       settle ? "SETTLE_MS after the previous hang-up" : "at once after the previous hang-up");
	for (size_t k = 0; k < 3; k++) {
		struct t_daemon d;
		struct t_ctl c;
		if (counts[k] <= 0)
			continue;
		start_daemon(&d, &c, counts[k], true);
		start_all(&c, counts[k]);
		t_ctl_close(&c);
		double *q = calloc((size_t)runs, sizeof(double));
		double *fp = calloc((size_t)runs, sizeof(double));
		double *fi = calloc((size_t)runs, sizeof(double));
		for (int i = 0; i < runs; i++) {   /* interleaved */
			t_daemon_kill9(&d);
			usleep(settle);
			fi[i] = reconnect_floor(d.run, counts[k]);
			usleep(settle);
			fp[i] = reconnect_floor_process(d.run, counts[k]);
			usleep(settle);
			q[i] = readopt_once(&d, counts[k]);
		}
		double pp = paired(q, fp, runs), pi = paired(q, fi, runs);   /* before the sorts */
		double mq = median_of(q, runs), mp = median_of(fp, runs), mi = median_of(fi, runs);
		printf("  %3d guests: qsupd %7.1f ms, floor %7.1f ms, ratio %5.2f (%4.2f) (goal <= 1.3); "
		       "in-process floor %7.1f ms, ratio %5.2f (%4.2f)\n", counts[k], mq * 1e3,
		       mp * 1e3, pp, mq / mp, mi * 1e3, pi, mq / mi);
		free(q);
		free(fp);
		free(fi);
		t_daemon_cleanup(&d);
	}
}

/* ---- hotplug ---- */

/* The tiny guest's profile in d, and an image of 16 MiB at img. */
static void tiny_setup(struct t_daemon *d, char *img, size_t size)
{
	char path[512], text[2048];
	if (t_daemon_init(d) < 0)
		fail("temp dir", NULL);
	snprintf(path, sizeof(path), "%s/cmdline", t_guestdir());
	const char *cmdline = t_read_line(path);
	if (!cmdline)
		fail("no test guest: sh tests/guest/build.sh build/guest", NULL);
	snprintf(text, sizeof(text), "[guest]\nmemory = 256M\naccel = tcg\nkernel = %s/vmlinux\n"
	         "initrd = %s/initramfs.cpio.gz\nappend = %s\n", t_guestdir(), t_guestdir(), cmdline);
	t_daemon_profile(d, "tiny", text);
	snprintf(img, size, "%s/bench.img", d->dir);
	FILE *f = fopen(img, "w");
	if (!f || ftruncate(fileno(f), 16 << 20) < 0)
		fail("image", NULL);
	fclose(f);
}

/* Start the tiny guest under d and wait until its OS is up (unplug needs
 * its ACPI handling). */
static void tiny_boot(struct t_daemon *d, struct t_ctl *c, uv_loop_t *loop, struct t_serial *ser)
{
	size_t seen = 0;
	if (t_daemon_start(d, NULL) < 0 || t_ctl_open(c, d->sock) < 0)
		fail("qsupd did not start", d);
	json_t *s = t_ctl_do(c, "start", "tiny", 60000, NULL);
	if (!s)
		fail("start failed", d);
	learn_identity(s);
	json_decref(s);
	json_t *con = t_ctl_do(c, "console", "tiny", 5000, NULL);
	if (t_serial_open(loop, ser, json_string_value(json_object_get(con, "path")), 5000) < 0 ||
	    t_serial_wait(ser, "QSUP-GUEST-READY", &seen, 60000) < 0)
		fail("the guest did not boot", d);
	json_decref(con);
}

static double qsupd_attach(struct t_daemon *d, struct t_ctl *c, const char *img, double *de)
{
	double t0 = t_now();
	json_t *r = t_ctl_call(c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "tiny",
	                       "kind", "disk", "id", "b", "file", img, "format", "raw"), 30000);
	double at = t_now() - t0;
	if (!json_object_get(r, "return"))
		fail("attach failed", d);
	json_decref(r);
	if (!de)
		return at;   /* attached only */
	t0 = t_now();
	r = t_ctl_call(c, "detach", json_pack("{s:s, s:s}", "name", "tiny", "id", "b"), 60000);
	*de = t_now() - t0;
	if (!json_object_get(r, "return"))
		fail("detach failed", d);
	json_decref(r);
	return at;
}

/* The blockdev-add and device_add qsupd sent for the attach, read back
 * from its debug log, with their ids dropped. */
static json_t *attach_commands(struct t_daemon *d)
{
	json_t *cmds = json_array();
	const char *log = t_daemon_log(d), *p = log;
	while ((p = strstr(p, "QMP: -> "))) {
		p += 8;
		const char *nl = strchr(p, '\n');
		json_t *m = json_loadb(p, nl ? (size_t)(nl - p) : strlen(p), 0, NULL);
		const char *ex = json_string_value(json_object_get(m, "execute"));
		if (ex && (!strcmp(ex, "blockdev-add") || !strcmp(ex, "device_add"))) {
			json_object_del(m, "id");
			json_array_append(cmds, m);
		}
		json_decref(m);
		if (json_array_size(cmds) == 2)
			break;
	}
	if (json_array_size(cmds) != 2)
		fail("no blockdev-add and device_add in qsupd's debug log", d);
	return cmds;
}

/* An fd set path in args (a file qsupd opened) becomes the image's path:
 * raw QEMU opens the file itself. */
static void use_path(json_t *v, const char *img)
{
	const char *k;
	json_t *e;
	json_object_foreach(v, k, e) {
		if (json_is_string(e) && !strncmp(json_string_value(e), "/dev/fdset/", 11))
			json_object_set_new(v, k, json_string(img));
		else if (json_is_object(e))
			use_path(e, img);
	}
}

#define SETTLE_US 200000

struct raw_hp { struct raw w; int done, status, deleted; char dev[64], why[300]; };

static void raw_hp_reply(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	(void)c;
	struct raw_hp *h = arg;
	h->status = r->status;
	snprintf(h->why, sizeof(h->why), "%s", r->err_desc ? r->err_desc : qmp_strerror(r->status));
	h->done = 1;
}

static void raw_hp_event(struct qmp_client *c, const char *name, json_t *data,
                         const struct qmp_timestamp *ts)
{
	struct raw_hp *h = qmp_client_data(c);
	(void)ts;
	if (!strcmp(name, "DEVICE_DELETED") &&
	    !strcmp(t_str(data, "device"), h->dev))
		h->deleted = 1;
}

static const struct qmp_callbacks raw_hp_cbs = { .ready = raw_ready, .event = raw_hp_event,
                                                  .closed = raw_closed };

static void raw_cmd(uv_loop_t *loop, struct raw_hp *h, const char *ex, json_t *args)
{
	h->done = 0;
	if (qmp_client_execute(h->w.c, ex, args, 30000, raw_hp_reply, h) < 0)
		fail("raw QEMU: cannot send", NULL);
	t_run_until_flag(loop, &h->done, 30000);
	if (!h->done || h->status != 0) {
		fprintf(stderr, "qsup-bench: raw QEMU: %s: %s\n", ex, h->done ? h->why : "no reply");
		exit(1);
	}
}

static void bench_hotplug(int runs)
{
	struct t_daemon d, dbg;
	struct t_ctl c;
	char img[600], dimg[600], spath[300];
	uv_loop_t loop;
	struct t_serial ser;
	uv_loop_init(&loop);
	/* What qsupd sends to QEMU for an attach: once, from a debug qsupd. */
	static const char *const debug[] = { "--log-level", "debug", NULL };
	struct t_ctl dc;
	tiny_setup(&dbg, dimg, sizeof(dimg));
	if (t_daemon_start(&dbg, debug) < 0 || t_ctl_open(&dc, dbg.sock) < 0)
		fail("qsupd did not start", &dbg);
	json_decref(t_ctl_do(&dc, "start", "tiny", 60000, NULL));
	qsupd_attach(&dbg, &dc, dimg, NULL);
	json_t *cmds = attach_commands(&dbg);
	struct cmd cmd = guest_cmd(&dc, "tiny");
	t_ctl_close(&dc);
	t_daemon_cleanup(&dbg);

	tiny_setup(&d, img, sizeof(img));
	tiny_boot(&d, &c, &loop, &ser);
	t_serial_close(&ser);
	double *at = calloc((size_t)runs, sizeof(double)), *de = calloc((size_t)runs, sizeof(double));
	double *ra = calloc((size_t)runs, sizeof(double));

	/* Raw QEMU: the same argv, booted the same way, the same two commands
	 * (the image opened by QEMU itself, as qsupd's QEMU would be), unplugged
	 * between runs; interleaved with qsupd's. */
	struct raw_hp h = { 0 };
	char rimg[700];
	json_t *bd = json_array_get(cmds, 0), *dv = json_array_get(cmds, 1);
	json_t *bargs = json_deep_copy(json_object_get(bd, "arguments"));
	json_t *fargs = json_object_get(bd, "arguments");   /* with qsupd's fd set path */
	json_t *dargs = json_object_get(dv, "arguments");
	snprintf(rimg, sizeof(rimg), "%s.raw", img);
	use_path(bargs, rimg);
	snprintf(h.dev, sizeof(h.dev), "%s", t_str(dargs, "id"));
	FILE *f = fopen(rimg, "w");
	if (!f || ftruncate(fileno(f), 16 << 20) < 0 || fchown(fileno(f), raw_uid, raw_gid) < 0 ||
	    chmod(d.dir, 0711) < 0)
		fail("the raw QEMU's image", NULL);
	fclose(f);
	raw_spawn(&loop, &h.w, &cmd, d.dir, 0, &raw_hp_cbs);
	snprintf(spath, sizeof(spath), "%s/raw0-serial.sock", d.dir);
	size_t seen = 0;
	if (t_serial_open(&loop, &ser, spath, 5000) < 0 ||
	    t_serial_wait(&ser, "QSUP-GUEST-READY", &seen, 60000) < 0)
		fail("raw QEMU: the guest did not boot", NULL);
	for (int i = 0; i < runs; i++) {
		/* Each attach once both guests are quiet again: a guest's own
		 * handling of the last unplug (ACPI, its driver) under TCG takes
		 * the CPU from the other's QEMU for a while after DEVICE_DELETED. */
		usleep(SETTLE_US);
		at[i] = qsupd_attach(&d, &c, img, &de[i]);
		usleep(SETTLE_US);
		/* Three ways, in turn, each against the qsupd run next to it:
		 * waiting for each reply; both commands at once (a QEMU that may
		 * open the image itself); and the very QMP qsupd sends, in one
		 * write (the image opened here and handed over with add-fd into
		 * an fd set, as qsupd's unprivileged QEMU needs it). */
		double t0 = t_now();
		int mode = i % 3, fdset = 100 + i;
		if (mode == 0) {
			raw_cmd(&loop, &h, "blockdev-add", json_incref(bargs));
			raw_cmd(&loop, &h, "device_add", json_incref(dargs));
		} else {
			struct raw_hp first = { 0 }, fdh = { 0 };
			json_t *b = json_deep_copy(mode == 2 ? fargs : bargs);
			int fd = -1;
			qmp_client_cork(h.w.c);
			if (mode == 2) {
				char set[64];
				snprintf(set, sizeof(set), "/dev/fdset/%d", fdset);
				use_path(b, set);
				if ((fd = open(rimg, O_RDWR | O_CLOEXEC)) < 0 ||
				    qmp_client_execute_fd(h.w.c, "add-fd", json_pack("{s:i}", "fdset-id",
				                          fdset), fd, 30000, raw_hp_reply, &fdh) < 0)
					fail("raw QEMU: cannot pass the image", NULL);
			}
			if (qmp_client_execute(h.w.c, "blockdev-add", b, 30000, raw_hp_reply,
			                       &first) < 0)
				fail("raw QEMU: cannot send", NULL);
			json_decref(b);
			h.done = 0;
			if (qmp_client_execute(h.w.c, "device_add", json_incref(dargs), 30000,
			                       raw_hp_reply, &h) < 0)
				fail("raw QEMU: cannot send", NULL);
			qmp_client_uncork(h.w.c);
			t_run_until_flag(&loop, &h.done, 30000);
			if (fd >= 0)
				close(fd);
			if (!first.done || first.status != 0 || !h.done || h.status != 0 ||
			    (mode == 2 && (!fdh.done || fdh.status != 0)))
				fail("raw QEMU: the attach failed", NULL);
		}
		ra[i] = t_now() - t0;
		h.deleted = 0;
		raw_cmd(&loop, &h, "device_del", json_pack("{s:s}", "id", h.dev));
		t_run_until_flag(&loop, &h.deleted, 60000);
		raw_cmd(&loop, &h, "blockdev-del", json_pack("{s:s}", "node-name",
		        t_str(bargs, "node-name")));
		if (mode == 2)
			raw_cmd(&loop, &h, "remove-fd", json_pack("{s:i}", "fdset-id", fdset));
	}
	t_serial_close(&ser);
	raw_reap(&loop, &h.w);
	t_ctl_close(&c);
	const char *how[3] = { "blockdev-add, then device_add",
	                       "both sent at once",
	                       "add-fd with both, at once" };
	double *q = calloc((size_t)runs, sizeof(double)), *r = calloc((size_t)runs, sizeof(double));
	printf("hot-plug of a virtio disk into the tiny guest (TCG), median of %d; ratio: paired\n"
	       "(the median of each run against the raw run next to it), then of the medians:\n",
	       runs);
	printf("  qsupd attach, until device_add returned     %8.1f ms\n",
	       median_of(memcpy(q, at, (size_t)runs * sizeof(double)), runs) * 1e3);
	for (int m = 0; m < 3; m++) {
		int n = 0;
		for (int i = m; i < runs; i += 3) {
			q[n] = at[i];
			r[n++] = ra[i];
		}
		if (!n)
			continue;
		double pr = paired(q, r, n), mq = median_of(q, n), mr = median_of(r, n);
		printf("  raw QEMU: %-33s %8.1f ms  ratio %6.3f (%5.3f)  (%d runs)\n", how[m],
		       mr * 1e3, pr, mq / mr, n);
	}
	free(q);
	free(r);
	printf("  qsupd detach, until DEVICE_DELETED          %8.1f ms\n",
	       median_of(de, runs) * 1e3);
	json_decref(bargs);
	json_decref(cmds);
	cmd_free(&cmd);
	free(at);
	free(de);
	free(ra);
	t_loop_finish(&loop);
	t_daemon_cleanup(&d);
}

/* ---- attach without a guest OS ---- */

/* v with the names of attach 0 (id a0, node *.a0, port hotplug.0, fd set
 * path) made those of attach k (fd set fdset). */
static void attach_names(json_t *v, int k, int fdset)
{
	const char *key;
	json_t *e;
	json_object_foreach(v, key, e) {
		const char *str = json_string_value(e);
		char buf[300];
		size_t n = str ? strlen(str) : 0;
		if (json_is_object(e)) {
			attach_names(e, k, fdset);
			continue;
		}
		if (!str)
			continue;
		if (!strcmp(str, "a0"))
			snprintf(buf, sizeof(buf), "a%d", k);
		else if (n > 3 && !strcmp(str + n - 3, ".a0"))
			snprintf(buf, sizeof(buf), "%.*s.a%d", (int)(n - 3), str, k);
		else if (!strcmp(str, "hotplug.0"))
			snprintf(buf, sizeof(buf), "hotplug.%d", k);
		else if (!strncmp(str, "/dev/fdset/", 11))
			snprintf(buf, sizeof(buf), "/dev/fdset/%d", fdset);
		else
			continue;
		json_object_set_new(v, key, json_string(buf));
	}
}

/* The fd set id in v (a blockdev-add's arguments), or -1. */
static int fdset_in(json_t *v)
{
	const char *key;
	json_t *e;
	json_object_foreach(v, key, e) {
		const char *str = json_string_value(e);
		int id = json_is_object(e) ? fdset_in(e) : str && !strncmp(str, "/dev/fdset/", 11)
		         ? atoi(str + 11) : -1;
		if (id >= 0)
			return id;
	}
	return -1;
}

#define ATTACH_SLOTS 27

/* The image of attach k, on side ("q" for qsupd's, "r" for raw QEMU's):
 * one each, as QEMU locks an image it has open for writing. */
static void attach_img(struct t_daemon *d, const char *side, int k, char *out, size_t size)
{
	snprintf(out, size, "%s/att-%s%d.img", d->dir, side, k);
}

static double qsupd_attach_id(struct t_daemon *d, struct t_ctl *c, int k)
{
	char img[700], id[16];
	attach_img(d, "q", k, img, sizeof(img));
	snprintf(id, sizeof(id), "a%d", k);
	/* The request's arguments made before the clock starts, as raw QEMU's
	 * commands are (raw_attach_id): each side's time covers writing its
	 * JSON out, not building its tree. */
	json_t *args = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "h", "kind", "disk", "id",
	                         id, "file", img, "format", "raw");
	double t0 = t_now();
	json_t *r = t_ctl_call(c, "attach", args, 30000);
	double dt = t_now() - t0;
	if (!json_object_get(r, "return"))
		fail("attach failed", d);
	json_decref(r);
	return dt;
}

/* qsupd's very QMP for attach k, from raw QEMU: add-fd (the image opened
 * here), blockdev-add and device_add in one write; seconds until
 * device_add returned. */
static double raw_attach_id(struct t_daemon *d, uv_loop_t *loop, struct raw_hp *h,
                            json_t *cmds, int k, int fdset)
{
	char img[700];
	struct raw_hp fdh = { 0 }, bd = { 0 };
	json_t *b = json_deep_copy(json_object_get(json_array_get(cmds, 0), "arguments"));
	json_t *dv = json_deep_copy(json_object_get(json_array_get(cmds, 1), "arguments"));
	attach_names(b, k, fdset);
	attach_names(dv, k, fdset);
	attach_img(d, "r", k, img, sizeof(img));
	double t0 = t_now();
	int fd = open(img, O_RDWR | O_CLOEXEC);
	h->done = 0;
	qmp_client_cork(h->w.c);
	if (fd < 0 ||
	    qmp_client_execute_fd(h->w.c, "add-fd", json_pack("{s:i}", "fdset-id", fdset), fd,
	                          30000, raw_hp_reply, &fdh) < 0 ||
	    qmp_client_execute(h->w.c, "blockdev-add", b, 30000, raw_hp_reply, &bd) < 0 ||
	    qmp_client_execute(h->w.c, "device_add", dv, 30000, raw_hp_reply, h) < 0)
		fail("raw QEMU: cannot send the attach", NULL);
	qmp_client_uncork(h->w.c);
	if (fd >= 0)
		close(fd);
	t_run_until_flag(loop, &h->done, 30000);
	double dt = t_now() - t0;
	if (!fdh.done || fdh.status || !bd.done || bd.status || !h->done || h->status) {
		fprintf(stderr, "qsup-bench: raw QEMU: attach %d: %s / %s / %s\n", k, fdh.why, bd.why,
		        h->why);
		exit(1);
	}
	json_decref(b);
	json_decref(dv);
	return dt;
}

/* Attach into a halting guest under KVM (no guest OS: nothing but QMP and
 * QEMU's own work, so the figure is steady): rounds of ATTACH_SLOTS
 * attaches into fresh guests, qsupd's and raw QEMU's in turn, each first
 * every other time. Each round starts the two guests in turn too, each
 * first every other round: the QEMU started first in a round spent about
 * 60 us more CPU on each of its attaches than the other (measured both
 * ways round on this host; the cause is not known), so a fixed order
 * charged that to one side. Raw QEMU's fd set ids have as many digits as
 * qsupd's (from its first one on): QEMU reads QMP a byte at a time, at
 * about 2 us a byte here, so a shorter id alone made raw QEMU faster. */
static void bench_attach(int runs)
{
	struct t_daemon d, dbg;
	struct t_ctl c, dc;
	char rom[600], text[1024], img[700];
	static const char *const debug[] = { "--log-level", "debug", NULL };
	struct t_daemon *both[2] = { &dbg, &d };
	for (int i = 0; i < 2; i++) {
		if (t_daemon_init(both[i]) < 0)
			fail("temp dir", NULL);
		halt_rom(both[i], rom, sizeof(rom));
		snprintf(text, sizeof(text), "[guest]\nmemory = 16M\naccel = kvm:tcg\n"
		         "hotplug-slots = %d\nbios = %s\n", ATTACH_SLOTS, rom);
		t_daemon_profile(both[i], "h", text);
		for (int k = 0; k < ATTACH_SLOTS; k++)
			for (int side = 0; side < 2; side++) {
				attach_img(both[i], side ? "r" : "q", k, img, sizeof(img));
				FILE *f = fopen(img, "w");
				if (!f || ftruncate(fileno(f), 1 << 20) < 0)
					fail("image", NULL);
				fclose(f);
			}
	}
	/* What qsupd sends: once, from a debug qsupd. */
	if (t_daemon_start(&dbg, debug) < 0 || t_ctl_open(&dc, dbg.sock) < 0)
		fail("qsupd did not start", &dbg);
	json_decref(t_ctl_do(&dc, "start", "h", 20000, NULL));
	qsupd_attach_id(&dbg, &dc, 0);
	json_t *cmds = attach_commands(&dbg);
	int fdset0 = fdset_in(json_object_get(json_array_get(cmds, 0), "arguments"));
	if (fdset0 < 0)
		fail("no fd set in qsupd's blockdev-add", &dbg);
	t_ctl_close(&dc);
	t_daemon_cleanup(&dbg);

	if (t_daemon_start(&d, NULL) < 0 || t_ctl_open(&c, d.sock) < 0)
		fail("qsupd did not start", &d);
	struct cmd cmd = guest_cmd(&c, "h");
	double *q = calloc((size_t)runs, sizeof(double)), *r = calloc((size_t)runs, sizeof(double));
	bool *qfirst = calloc((size_t)runs, sizeof(bool));
	double cpu = 0;
	int n = 0;
	for (int round = 0; n < runs; round++) {
		uv_loop_t loop;
		struct raw_hp h = { 0 };
		uv_loop_init(&loop);
		/* Round 0 starts qsupd's guest first: raw QEMU runs as the
		 * identity qsupd gave it (learn_identity). */
		for (int side = round % 2; side < round % 2 + 2; side++) {
			if (side % 2) {
				raw_spawn(&loop, &h.w, &cmd, d.dir, 0, &raw_hp_cbs);
				raw_wait(&loop, &h.w, 10000);
				continue;
			}
			json_t *s = t_ctl_do(&c, "start", "h", 20000, NULL);
			if (!s)
				fail("start failed", &d);
			learn_identity(s);
			if (round == 0)
				printf("# the guest under %s\n",
				       json_string_value(json_object_get(s, "accel")));
			json_decref(s);
		}
		for (int k = 0; k < ATTACH_SLOTS && n < runs; k++, n++) {
			/* qsupd's CPU over the pair: its attach, and what follows
			 * it (the state write) while raw QEMU attaches. */
			double c0 = t_sched_cpu_s(d.pid);
			qfirst[n] = k % 2 == 0;
			if (k % 2) {
				r[n] = raw_attach_id(&d, &loop, &h, cmds, k, fdset0 + k);
				q[n] = qsupd_attach_id(&d, &c, k);
			} else {
				q[n] = qsupd_attach_id(&d, &c, k);
				r[n] = raw_attach_id(&d, &loop, &h, cmds, k, fdset0 + k);
			}
			cpu += t_sched_cpu_s(d.pid) - c0;
		}
		json_decref(t_ctl_do(&c, "kill", "h", 20000, NULL));
		raw_reap(&loop, &h.w);
		t_loop_finish(&loop);
	}
	/* One round trip over the control socket (a status of a guest that
	 * is not running): what any daemon between client and QEMU adds. */
	double *hop = calloc((size_t)runs, sizeof(double));
	for (int i = 0; i < runs; i++) {
		double t0 = t_now();
		json_decref(t_ctl_call(&c, "status", json_pack("{s:s}", "name", "h"), 5000));
		hop[i] = t_now() - t0;
	}
	double mh = median_of(hop, runs);
	free(hop);
	/* The pairs of each order apart (before median_of sorts q and r):
	 * qsupd first, its attach comes right after its own and raw QEMU's
	 * after qsupd's (and its state write); raw QEMU first, raw's comes
	 * after its own and qsupd's after raw's, a qsupd idle meanwhile. */
	double by_order[2] = { 0, 0 };
	int n_order[2] = { 0, 0 };
	for (int first = 0; first < 2; first++) {
		double *a = calloc((size_t)runs, sizeof(double)), *b = calloc((size_t)runs, sizeof(double));
		for (int i = 0; i < runs; i++)
			if (qfirst[i] == (first == 0)) {
				a[n_order[first]] = q[i];
				b[n_order[first]++] = r[i];
			}
		by_order[first] = paired(a, b, n_order[first]);
		free(a);
		free(b);
	}
	double pr = paired(q, r, runs), mq = median_of(q, runs), mr = median_of(r, runs);
	printf("attach of a virtio disk into a halting guest (no OS: QMP and QEMU's own work), "
	       "median of %d,\nin rounds of %d into fresh guests (each started first every "
	       "other round), each side\nfirst every other time; ratio: paired, then of the "
	       "medians:\n", runs, ATTACH_SLOTS);
	printf("  qsupd attach, until device_add returned     %8.2f ms\n", mq * 1e3);
	printf("  raw QEMU: add-fd with both, at once         %8.2f ms  ratio %6.3f (%5.3f)"
	       "  (goal <= 1.05)\n", mr * 1e3, pr, mq / mr);
	printf("  the pairs with qsupd first (%d): ratio %.3f; with raw QEMU first (%d): %.3f\n",
	       n_order[0], by_order[0], n_order[1], by_order[1]);
	printf("  qsupd's CPU per attach (all its threads, the scheduler's count): %.0f us\n",
	       cpu / runs * 1e6);
	printf("  one control-socket round trip (status, back to back): %.3f ms, so any\n"
	       "  daemon's floor is raw + that = %.2f ms, ratio %.3f; qsupd attach against that"
	       " floor: %.3f\n", mh * 1e3,
	       (mr + mh) * 1e3, (mr + mh) / mr, mq / (mr + mh));
	json_decref(cmds);
	cmd_free(&cmd);
	free(q);
	free(r);
	free(qfirst);
	t_ctl_close(&c);
	t_daemon_cleanup(&d);
}

/* ---- scale ---- */

/* Raw QEMU for guests 0..n-1 (cmds), all at once; seconds until the last
 * cont returned. */
static double raw_many(struct cmd *cmds, int n, const char *dir)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct raw *w = calloc((size_t)n, sizeof(*w));
	double t0 = t_now();
	for (int i = 0; i < n; i++)
		raw_spawn(&loop, &w[i], &cmds[i], dir, i, &raw_cbs);
	for (int i = 0; i < n; i++)
		raw_wait(&loop, &w[i], 60000);
	double dt = t_now() - t0;
	for (int i = 0; i < n; i++)
		raw_reap(&loop, &w[i]);
	t_loop_finish(&loop);
	free(w);
	return dt;
}

/* 200 sequential starts on each side, one by one in turn (each side first
 * every other time), so that both start every guest with as many of both
 * running and in the same state of the host: a batch of one side after a
 * batch of the other measured the host's drift (page cache, reclaim) as
 * much as qsupd. Sums of the starts' times into *q and *r, seconds. */
static void seq_interleaved(struct t_ctl *c, struct cmd *cmds, int n, const char *dir,
                            double *q, double *r)
{
	uv_loop_t loop;
	char name[32];
	struct raw *w = calloc((size_t)n, sizeof(*w));
	uv_loop_init(&loop);
	*q = *r = 0;
	for (int i = 0; i < n; i++)
		for (int k = 0; k < 2; k++) {
			double t0 = t_now();
			if ((i + k) % 2 == 0) {
				guest_name(name, sizeof(name), i, n);
				json_t *x = t_ctl_do(c, "start", name, 60000, NULL);
				*q += t_now() - t0;
				if (!x)
					fail("start failed", NULL);
				if (!raw_uid)   /* raw QEMU runs as qsupd's QEMU does */
					learn_identity(x);
				json_decref(x);
			} else {
				raw_spawn(&loop, &w[i], &cmds[i], dir, i, &raw_cbs);
				raw_wait(&loop, &w[i], 20000);
				*r += t_now() - t0;
			}
		}
	for (int i = 0; i < n; i++)
		raw_reap(&loop, &w[i]);
	t_loop_finish(&loop);
	free(w);
}

/* p50 and p99 of a verb's round trip over one connection, cycling through
 * the guests (NULL name: no arguments). */
/* One request's reply line, read straight off the socket (c has no events
 * and no queued lines): the time is taken when its last byte is in, and
 * the client's own JSON parsing comes after. */
static json_t *timed_call(struct t_ctl *c, const char *verb, json_t *args, double *dt)
{
	static char *buf;
	static size_t cap;
	size_t len = 0;
	double t0 = t_now();
	t_ctl_send(c, verb, args);
	for (;;) {
		if (cap - len < 65536 && !(buf = realloc(buf, cap = cap * 2 + 65536)))
			fail("out of memory", NULL);
		ssize_t r = recv(c->fd, buf + len, cap - len, 0);
		if (r <= 0)
			fail("the control socket closed", NULL);
		len += (size_t)r;
		if (buf[len - 1] == '\n')
			break;
	}
	*dt = t_now() - t0;
	return json_loadb(buf, len - 1, 0, NULL);
}

static void verb_latency(struct t_ctl *c, const char *verb, int guests, int n, bool named)
{
	double *lat = calloc((size_t)n, sizeof(double));
	char name[32];
	for (int i = 0; i < n; i++) {
		guest_name(name, sizeof(name), i % guests, guests);
		json_t *r = timed_call(c, verb, named ? json_pack("{s:s}", "name", name) : NULL,
		                       &lat[i]);
		if (!json_object_get(r, "return"))
			fail(verb, NULL);
		json_decref(r);
	}
	double p50 = pct(lat, n, 0.5), p99 = pct(lat, n, 0.99);
	printf("  %-6s over the socket, %d calls: p50 %7.3f ms, p99 %7.3f ms", verb, n,
	       p50 * 1e3, p99 * 1e3);
	free(lat);
	if (!strcmp(verb, "list"))
		printf("  (goal p99 <= 5 ms)\n");
	else
		printf("  (goal p99 <= 1 ms)\n");
}

/* 10 subscribers while all guests pause, then resume (pipelined on another
 * connection): the GUEST_STATE events each gets, and the longest time from
 * a request's send to an event about its guest reaching a subscriber. */
static void fanout(struct t_daemon *d, struct t_ctl *c, int n)
{
	enum { SUBS = 10 };
	struct t_ctl sub[SUBS];
	for (int i = 0; i < SUBS; i++) {
		if (t_ctl_open(&sub[i], d->sock) < 0)
			fail("subscriber connect", d);
		json_decref(t_ctl_call(&sub[i], "subscribe", NULL, 5000));
	}
	double *sent = calloc((size_t)n * 2, sizeof(double));
	int got[SUBS] = { 0 };
	double worst[SUBS] = { 0 };
	long long *ids = calloc((size_t)n * 2, sizeof(long long));
	char name[32];
	/* Pauses pipelined, then resumes pipelined once every pause is
	 * answered: a resume that overtakes its guest's pause finds it running
	 * and is refused (InvalidState), so it would make no event. */
	int failed = 0;
	char first_err[256] = "";
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < n; i++) {
			guest_name(name, sizeof(name), i, n);
			sent[round * n + i] = t_now();
			ids[round * n + i] = t_ctl_send(c, round ? "resume" : "pause",
			                                json_pack("{s:s}", "name", name));
		}
		for (int i = 0; i < n; i++) {
			json_t *r = t_ctl_reply(c, ids[round * n + i], 60000);
			json_t *e = json_object_get(r, "error");
			if (!r || e) {
				if (!failed++)
					snprintf(first_err, sizeof(first_err), "%s",
					         e ? json_string_value(json_object_get(e, "desc")) : "no reply");
			}
			json_decref(r);
		}
	}
	/* Events: paused and running for each guest (2n), read round-robin. */
	double t0 = t_now();
	int total = 0;
	while (total < SUBS * 2 * n && t_now() - t0 < 60) {
		struct pollfd pf[SUBS];
		for (int s = 0; s < SUBS; s++)
			pf[s] = (struct pollfd){ .fd = sub[s].fd, .events = POLLIN };
		bool buffered = false;
		for (int s = 0; s < SUBS; s++)
			buffered |= sub[s].len && memchr(sub[s].buf, '\n', sub[s].len);
		if (!buffered && poll(pf, SUBS, 100) <= 0)
			continue;
		for (int s = 0; s < SUBS; s++) {
			if (!(pf[s].revents & POLLIN) &&
			    !(sub[s].len && memchr(sub[s].buf, '\n', sub[s].len)))
				continue;
			json_t *m = t_ctl_next(&sub[s], 1);
			if (!m)
				continue;
			const char *ev = json_string_value(json_object_get(m, "event"));
			json_t *data = json_object_get(m, "data");
			const char *st = json_string_value(json_object_get(data, "state"));
			const char *gn = json_string_value(json_object_get(data, "name"));
			if (ev && !strcmp(ev, "GUEST_STATE") && st && gn &&
			    (!strcmp(st, "paused") || !strcmp(st, "running"))) {
				int idx = atoi(gn + 1);
				double lat = t_now() - sent[(!strcmp(st, "running") ? n : 0) + idx];
				if (lat > worst[s])
					worst[s] = lat;
				got[s]++;
				total++;
			}
			json_decref(m);
		}
	}
	if (failed)
		printf("  %d of the %d pause/resume requests failed, the first: %s\n", failed, 2 * n,
		       first_err);
	int minc = got[0], maxc = got[0];
	double maxl = 0;
	for (int s = 0; s < SUBS; s++) {
		minc = got[s] < minc ? got[s] : minc;
		maxc = got[s] > maxc ? got[s] : maxc;
		maxl = worst[s] > maxl ? worst[s] : maxl;
	}
	printf("  event fan-out, %d subscribers, %d pauses pipelined, then %d resumes:\n"
	       "    events per subscriber min %d max %d (expected %d each), "
	       "longest request-to-event %.1f ms\n", SUBS, n, n, minc, maxc, 2 * n, maxl * 1e3);
	for (int s = 0; s < SUBS; s++)
		t_ctl_close(&sub[s]);
	free(sent);
	free(ids);
}

/* Each batch of bench_scale begins once the one before is over: the
 * kernel's teardown of its QEMUs, and qsupd's work after their exits,
 * take a while with 200 of them, and would fall on the next batch. */
#define SCALE_SETTLE_US 2000000

static void bench_scale(int n, int runs)
{
	struct t_daemon d;
	struct t_ctl c;
	char name[32];
	start_daemon(&d, &c, n, true);
	struct cmd *cmds = calloc((size_t)n, sizeof(*cmds));
	for (int i = 0; i < n; i++) {
		guest_name(name, sizeof(name), i, n);
		cmds[i] = guest_cmd(&c, name);
	}
	double *qs = calloc((size_t)runs, sizeof(double)), *rs = calloc((size_t)runs, sizeof(double));
	double *qp = calloc((size_t)runs, sizeof(double)), *rp = calloc((size_t)runs, sizeof(double));
	printf("%d halting guests (-m 16, cli; hlt ROM):\n", n);
	for (int r = 0; r < runs; r++) {
		usleep(SCALE_SETTLE_US);
		seq_interleaved(&c, cmds, n, d.dir, &qs[r], &rs[r]);
		all_do(&c, "kill", n);
		/* All at once cannot go one by one: the two batches in turn,
		 * each first every other run. */
		for (int k = 0; k < 2; k++) {
			usleep(SCALE_SETTLE_US);
			if ((r + k) % 2 == 0) {
				qp[r] = all_do(&c, "start", n);   /* pipelined on one connection */
				all_do(&c, "kill", n);
			} else {
				rp[r] = raw_many(cmds, n, d.dir);
			}
		}
	}
	if (runs > 0) {   /* RUNS 0: only the figures of n running guests */
		double pqs = paired(qs, rs, runs), pqp = paired(qp, rp, runs);   /* before the sorts */
		double mqs = pct(qs, runs, 0.5), mrs = pct(rs, runs, 0.5);
		double mqp = pct(qp, runs, 0.5), mrp = pct(rp, runs, 0.5);
		printf("  %d sequential starts, one by one in turn with raw's, median of %d:\n"
		       "                                  qsupd %8.1f ms, raw %8.1f ms, ratio %.3f"
		       " (%.3f)  (goal <= 1.05)\n", n, runs, mqs * 1e3, mrs * 1e3, pqs, mqs / mrs);
		printf("  %d parallel starts, the batches in turn, median of %d:\n"
		       "                                  qsupd %8.1f ms, raw %8.1f ms, ratio %.3f"
		       " (%.3f)  (goal <= 1.05)\n", n, runs, mqp * 1e3, mrp * 1e3, pqp, mqp / mrp);
		printf("  (ratio: paired, the median of each run against the raw run next to it; then "
		       "of the medians)\n");
	}
	start_all(&c, n);
	if (!all_running(&c, n))
		fail("not every guest is running", &d);
	json_decref(t_ctl_call(&c, "list", NULL, 5000));
	usleep(1500 * 1000);    /* at rest: qsupd trims its heap 1 s after activity */
	printf("  qsupd RSS %ld KiB, anon %ld KiB  (goal <= 8192 KiB)\n", t_rss_kib(d.pid),
	       t_status_kib(d.pid, "RssAnon"));
	verb_latency(&c, "list", n, 1000, false);
	verb_latency(&c, "status", n, 4000, true);
	fanout(&d, &c, n);
	for (int i = 0; i < n; i++)
		cmd_free(&cmds[i]);
	free(cmds);
	free(qs);
	free(rs);
	free(qp);
	free(rp);
	t_ctl_close(&c);
	t_daemon_cleanup(&d);
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	int n = argc > 2 ? atoi(argv[2]) : 0;
	if (strcmp(what, "floor") == 0 && argc > 3)   /* for readopt: nothing else in its time */
		return reconnect_floor(argv[3], n) > 0 ? 0 : 1;
	printf("# %s\n", t_accel());
	files_on_tmpfs();
	if (strcmp(what, "start") == 0)
		bench_start(n > 0 ? n : 41);
	else if (strcmp(what, "rpc") == 0)
		bench_rpc(n > 0 ? n : 20);
	else if (strcmp(what, "rss") == 0)
		bench_rss();
	else if (strcmp(what, "restart") == 0)
		bench_restart(n > 0 ? n : 20);
	else if (strcmp(what, "readopt") == 0)
		bench_readopt(n, argc > 3 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 31);
	else if (strcmp(what, "scale") == 0)
		bench_scale(n > 0 ? n : 200, argc > 3 && atoi(argv[3]) >= 0 ? atoi(argv[3]) : 3);
	else if (strcmp(what, "attach") == 0)
		bench_attach(n > 0 ? n : 108);
	else if (strcmp(what, "hotplug") == 0)
		bench_hotplug(n > 0 ? n : 60);
	else {
		fprintf(stderr, "usage: qsup-bench start [RUNS] | rpc [GUESTS] | rss | "
		        "restart [RUNS] | readopt [GUESTS [RUNS]] | hotplug [RUNS] | attach [RUNS] | "
		        "scale [GUESTS [RUNS]]\n");
		return 2;
	}
	return 0;
}
