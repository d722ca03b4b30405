/*
 * Metrics against a real qsupd, real QEMUs and the tiny guest (TCG): the
 * stats verb, `qsupctl metrics` checked by promtool with guests in several
 * states, a real Prometheus scraping --metrics-listen, a guest's disk
 * writes in the counters, `qsupctl top --batch`, a hung QEMU marked stale
 * (never waited for), and scrapers that connect and never read or open
 * hundreds of connections: qsupd stays responsive and its memory bounded.
 * Bad options end qsupd with a clear message.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <poll.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define str t_str

extern char **environ;

static bool have(const char *path)
{
	return access(path, X_OK) == 0;
}

/* A TCP port free on 127.0.0.1 just now. */
static unsigned free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof(a);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &n), 0);
	close(s);
	return ntohs(a.sin_port);
}

/* The port qsupd's log says it serves the metrics on. */
static unsigned metrics_port(struct t_fx *x)
{
	for (int i = 0; i < 100; i++) {
		const char *p = strstr(t_daemon_log(&x->d), "/metrics (port ");
		if (p)
			return (unsigned)strtoul(p + 15, NULL, 10);
		usleep(100000);
	}
	fail_msg("no metrics port in the log:\n%s", t_daemon_log(&x->d));
	return 0;
}

/* The stats of one guest from a stats answer (borrowed). */
static json_t *stats_of(json_t *arr, const char *name)
{
	json_t *e;
	size_t i;
	json_array_foreach(arr, i, e)
		if (!strcmp(str(e, "name"), name))
			return e;
	return NULL;
}

static json_t *stats(struct t_fx *x, int ms)
{
	json_t *r = t_ctl_call(&x->c, "stats", NULL, ms);
	assert_non_null(r);
	json_t *ret = json_incref(json_object_get(r, "return"));
	if (!ret)
		fail_msg("stats: %s", json_dumps(r, 0));
	json_decref(r);
	return ret;
}

static double disk_wr(json_t *g, const char *disk)
{
	json_t *e;
	size_t i;
	json_array_foreach(json_object_get(g, "disks"), i, e)
		if (!strcmp(str(e, "id"), disk))
			return json_number_value(json_object_get(e, "wr_bytes"));
	return -1;
}

static char out[1 << 20];

/* qsupctl ARGS... against x's daemon, output into out. */
static int qsupctl(struct t_fx *x, int ms, ...)
{
	const char *argv[16] = { t_qsupctl(), "-s", x->d.sock };
	int n = 3;
	va_list ap;
	va_start(ap, ms);
	for (const char *a; n < 15 && (a = va_arg(ap, const char *));)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return t_run_capture(argv, out, sizeof(out), ms);
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The value of the sample line that starts with prefix in text; -1: none. */
static double sample(const char *text, const char *prefix)
{
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, prefix, strlen(prefix)) && p[strlen(prefix)] == ' ')
			return strtod(p + strlen(prefix) + 1, NULL);
	return -1;
}

/* ---- Prometheus ---- */

static pid_t prometheus_start(const char *dir, unsigned target, unsigned port)
{
	char cfg[700], data[700], cfgarg[800], dataarg[800], listen[64];
	snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", dir);
	snprintf(data, sizeof(data), "%s/prom-data", dir);
	FILE *f = fopen(cfg, "w");
	assert_non_null(f);
	fprintf(f, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
	        "scrape_configs:\n  - job_name: qsup\n    static_configs:\n"
	        "      - targets: ['127.0.0.1:%u']\n", target);
	fclose(f);
	snprintf(cfgarg, sizeof(cfgarg), "--config.file=%s", cfg);
	snprintf(dataarg, sizeof(dataarg), "--storage.tsdb.path=%s", data);
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%u", port);
	char log[700];
	snprintf(log, sizeof(log), "%s/prometheus.log", dir);
	const char *argv[] = { "/usr/bin/prometheus", cfgarg, dataarg, listen,
	                       "--log.level=warn", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, (char **)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

static void prometheus_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Ask Prometheus' API for qsup_guest_up until it has n series (or 120 s):
 * the answer's JSON. */
static json_t *prometheus_query_up(unsigned port, size_t n)
{
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/v1/query?query=qsup_guest_up", port);
	const char *argv[] = { "/usr/bin/curl", "-s", "--max-time", "5", url, NULL };
	json_t *last = NULL;
	for (int i = 0; i < 240; i++) {
		if (t_run_capture(argv, out, sizeof(out), 10000) == 0) {
			json_decref(last);
			last = json_loads(out, 0, NULL);
			json_t *res = json_object_get(json_object_get(last, "data"), "result");
			if (json_array_size(res) >= n)
				return last;
		}
		usleep(500000);
	}
	return last;
}

/* ---- scrapers ---- */

static int tcp_connect(unsigned port, bool nonblock)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (s < 0)
		return -1;
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));   /* the smallest */
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		close(s);
		return -1;
	}
	return s;
}

/* ---- top on a terminal ---- */

/* Read the pty master into buf (appending) until text shows, up to ms. */
static bool pty_wait(int fd, char *buf, size_t size, size_t *len, const char *text, int ms)
{
	double end = t_now() + ms / 1000.0;
	while (!memmem(buf, *len, text, strlen(text))) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)((end - t_now()) * 1000);
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return false;
		ssize_t n = read(fd, buf + *len, size - 1 - *len);
		if (n <= 0)
			return false;
		*len += (size_t)n;
		if (*len >= size - 1)
			*len = 0;   /* keep reading: what matters is still to come */
	}
	return true;
}

/* qsupctl top on a pseudo-terminal: raw mode while it runs, a key changes
 * the sort, then q (or the signal sig, when not 0) ends it, and the
 * terminal is as it was. */
static void top_on_pty(struct t_fx *x, int sig)
{
	int master, slave;
	assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
	struct termios before, during, after;
	assert_int_equal(tcgetattr(slave, &before), 0);
	assert_true(before.c_lflag & ICANON);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setsid();
		ioctl(slave, TIOCSCTTY, 0);
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		execl(t_qsupctl(), t_qsupctl(), "-s", x->d.sock, "top", "-d", "0.5", (char *)NULL);
		_exit(127);
	}
	static char buf[1 << 16];
	size_t len = 0;
	if (!pty_wait(master, buf, sizeof(buf), &len, "RESTARTS", 30000))
		fail_msg("top drew nothing: %.*s", (int)len, buf);
	assert_int_equal(tcgetattr(slave, &during), 0);
	assert_false(during.c_lflag & ICANON);
	assert_false(during.c_lflag & ECHO);
	assert_int_equal(write(master, "m", 1), 1);
	len = 0;
	if (!pty_wait(master, buf, sizeof(buf), &len, "MEM*", 30000))
		fail_msg("the m key did not sort by memory: %.*s", (int)len, buf);
	int status;
	if (sig)
		kill(pid, sig);
	else
		assert_int_equal(write(master, "q", 1), 1);
	for (int i = 0; i < 300 && waitpid(pid, &status, WNOHANG) != pid; i++)
		usleep(100000);
	if (sig) {
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), sig);
	} else {
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(tcgetattr(slave, &after), 0);
	assert_int_equal(after.c_lflag, before.c_lflag);
	assert_int_equal(after.c_cc[VMIN], before.c_cc[VMIN]);
	close(slave);
	close(master);
}

static void test_metrics(void **state)
{
	struct t_fx *x = *state;
	if (!have("/usr/bin/promtool") || !have("/usr/bin/prometheus") || !have("/usr/bin/curl")) {
		printf("# note: promtool, prometheus or curl missing (install-deps.sh); skipped\n");
		skip();
	}
	char extra[1024], img[700];
	const char *names[] = { "g1", "g2", "g3" };
	for (int i = 0; i < 3; i++) {
		snprintf(img, sizeof(img), "%s/%s.img", x->d.dir, names[i]);
		snprintf(extra, sizeof(extra), "[disk.data]\nfile = %s\nformat = raw\nsize = 32M\n"
		         "[restart]\npolicy = never\n", img);
		t_daemon_tiny_profile(&x->d, names[i], extra);
	}
	const char *opts[] = { "--stats-interval", "1", "--metrics-listen", "127.0.0.1:0", NULL };
	t_fx_up(x, opts);
	unsigned port = metrics_port(x);
	json_decref(t_fx_must(x, "start", "g1", 120000));
	json_decref(t_fx_must(x, "start", "g2", 120000));
	json_decref(t_fx_must(x, "pause", "g2", 20000));

	/* stats: one object per guest, QEMU's figures for those that run */
	json_t *st = stats(x, 30000);
	assert_int_equal(json_array_size(st), 3);
	json_t *g1 = stats_of(st, "g1"), *g3 = stats_of(st, "g3");
	assert_string_equal(str(stats_of(st, "g2"), "state"), "paused");
	assert_true(json_integer_value(json_object_get(g1, "pid")) > 0);
	assert_true(json_number_value(json_object_get(g1, "rss")) > 1 << 20);
	assert_true(json_number_value(json_object_get(g1, "cpu_user")) +
	            json_number_value(json_object_get(g1, "cpu_system")) > 0);
	assert_true(disk_wr(g1, "data") >= 0);
	assert_null(json_object_get(g3, "pid"));
	assert_int_equal(json_array_size(json_object_get(g3, "disks")), 0);
	json_decref(st);
	json_t *r = t_ctl_call(&x->c, "stats", json_pack("{s:[s]}", "names", "nope"), 10000);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "NotFound");
	json_decref(r);
	r = t_ctl_call(&x->c, "stats", json_pack("{s:s}", "names", "g1"), 10000);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "InvalidArgument");
	json_decref(r);
	r = t_ctl_call(&x->c, "stats", json_pack("{s:[s]}", "names", "g3"), 10000);
	assert_int_equal(json_array_size(json_object_get(r, "return")), 1);
	json_decref(r);

	/* a guest writing to its disk: the write counters grow */
	st = stats(x, 30000);
	double before = disk_wr(stats_of(st, "g1"), "data");
	json_decref(st);
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen = 0;
	assert_int_equal(t_ctl_console(&x->c, "g1", &loop, &ser), 0);
	if (t_serial_wait(&ser, "QSUP-GUEST-READY", &seen, 120000) < 0)
		fail_msg("no ready marker:\n%s", ser.buf ? ser.buf : "");
	assert_int_equal(t_serial_write(&ser, "write vda 4"), 0);
	if (t_serial_wait(&ser, "QSUP-WRITE vda 4 ok", &seen, 120000) < 0)
		fail_msg("the write did not complete:\n%s", ser.buf ? ser.buf : "");
	t_serial_close(&ser);
	t_loop_finish(&loop);
	st = stats(x, 30000);
	double after = disk_wr(stats_of(st, "g1"), "data");
	json_decref(st);
	printf("# note: g1's disk: %.0f bytes written before, %.0f after\n", before, after);
	assert_true(after >= before + 4 * 1048576.0);

	/* qsupctl metrics: promtool's check, guests in three states */
	assert_int_equal(qsupctl(x, 30000, "metrics", NULL), 0);
	char path[700];
	snprintf(path, sizeof(path), "%s/metrics.txt", x->d.dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(out, f);
	fclose(f);
	assert_true(sample(out, "qsup_guest_up{guest=\"g1\"}") == 1);
	assert_true(sample(out, "qsup_guest_up{guest=\"g3\"}") == 0);
	assert_true(sample(out, "qsup_guest_state{guest=\"g2\",state=\"paused\"}") == 1);
	assert_true(sample(out, "qsup_guest_state{guest=\"g3\",state=\"stopped\"}") == 1);
	assert_true(sample(out, "qsup_guest_disk_written_bytes_total{guest=\"g1\",disk=\"data\"}")
	            >= after);
	assert_true(sample(out, "qsup_guests{state=\"running\"}") == 1);
	assert_true(sample(out, "qsup_requests_total{verb=\"stats\",result=\"NotFound\"}") == 1);
	assert_true(sample(out, "qsup_control_clients") >= 1);
	char cmd[900];
	snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < '%s' 2>&1", path);
	FILE *p = popen(cmd, "r");
	char promtool[4096] = "";
	size_t pn = fread(promtool, 1, sizeof(promtool) - 1, p);
	promtool[pn] = '\0';
	int prc = pclose(p);
	if (prc != 0)
		fail_msg("promtool check metrics: %s", promtool);

	/* qsupctl top --batch: two frames of three guests, rates in the second */
	assert_int_equal(qsupctl(x, 60000, "top", "--batch", "-n", "2", "-d", "1", NULL), 0);
	printf("%s", out);
	assert_int_equal(count(out, "qsupctl top - "), 2);
	assert_int_equal(count(out, "\ng1 "), 2);
	assert_int_equal(count(out, "\ng2 "), 2);
	assert_int_equal(count(out, "\ng3 "), 2);
	const char *second = strstr(strstr(out, "qsupctl top - ") + 1, "qsupctl top - ");
	const char *row = strstr(second, "\ng1 ");
	assert_non_null(row);
	char rname[32], rstate[32], rcpu[32];
	assert_int_equal(sscanf(row + 1, "%31s %31s %31s", rname, rstate, rcpu), 3);
	assert_string_equal(rstate, "running");
	assert_true(rcpu[0] >= '0' && rcpu[0] <= '9');   /* a rate, not "-" */
	assert_int_not_equal(qsupctl(x, 10000, "top", "-d", "0", NULL), 0);
	top_on_pty(x, 0);
	top_on_pty(x, SIGTERM);
	assert_int_not_equal(qsupctl(x, 10000, "top", "-n", "x", NULL), 0);

	/* a real Prometheus scrapes --metrics-listen */
	unsigned pport = free_port();
	pid_t prom = prometheus_start(x->d.dir, port, pport);
	json_t *q = prometheus_query_up(pport, 3);
	prometheus_stop(prom);
	json_t *res = json_object_get(json_object_get(q, "data"), "result");
	if (json_array_size(res) != 3) {
		char lp[800];
		snprintf(lp, sizeof(lp), "%s/prometheus.log", x->d.dir);
		fail_msg("prometheus: %s\n%s", q ? json_dumps(q, 0) : "no answer", t_file_tail(lp));
	}
	bool seen_g[3] = { false };
	json_t *e;
	size_t i;
	json_array_foreach(res, i, e) {
		const char *gname = str(json_object_get(e, "metric"), "guest");
		const char *v = json_string_value(json_array_get(json_object_get(e, "value"), 1));
		for (int k = 0; k < 3; k++)
			if (!strcmp(gname, names[k])) {
				seen_g[k] = true;
				assert_string_equal(v, k == 2 ? "0" : "1");
			}
	}
	assert_true(seen_g[0] && seen_g[1] && seen_g[2]);
	json_decref(q);

	/* /metrics only, GET and HEAD only */
	char murl[64], ourl[64];
	snprintf(murl, sizeof(murl), "http://127.0.0.1:%u/metrics", port);
	snprintf(ourl, sizeof(ourl), "http://127.0.0.1:%u/other", port);
	const char *c404[] = { "/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
	                       ourl, NULL };
	assert_int_equal(t_run_capture(c404, out, sizeof(out), 20000), 0);
	assert_string_equal(out, "404");
	const char *c405[] = { "/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
	                       "-X", "POST", murl, NULL };
	assert_int_equal(t_run_capture(c405, out, sizeof(out), 20000), 0);
	assert_string_equal(out, "405");
	const char *chead[] = { "/usr/bin/curl", "-s", "-I", murl, NULL };
	assert_int_equal(t_run_capture(chead, out, sizeof(out), 20000), 0);
	assert_non_null(strstr(out, "200"));
	assert_non_null(strstr(out, "text/plain; version=0.0.4"));

	/* slow scrapers (connect and never read, or never even ask) and a
	 * flood of connections: the loop goes on, memory stays bounded */
	long rss0 = t_rss_kib(x->d.pid);
	int socks[600];
	int ns = 0;
	static const char get[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	for (int k = 0; k < 20; k++) {
		int s = tcp_connect(port, false);
		if (s >= 0) {
			if (k % 2 && write(s, get, sizeof(get) - 1) < 0)
				(void)0;
			socks[ns++] = s;
		}
	}
	for (int k = 0; k < 500 && ns < 600; k++) {
		int s = tcp_connect(port, true);
		if (s >= 0) {
			if (write(s, get, sizeof(get) - 1) < 0)
				(void)0;
			socks[ns++] = s;
		}
	}
	/* while they hang on: the control socket answers, the stats go on */
	for (int k = 0; k < 3; k++) {
		st = stats(x, 30000);
		assert_int_equal(json_array_size(st), 3);
		json_decref(st);
		sleep(1);
	}
	const char *argv[] = { "/usr/bin/curl", "-s", "--max-time", "20", NULL, NULL };
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", port);
	argv[4] = url;
	long rss1 = t_rss_kib(x->d.pid);
	for (int k = 0; k < ns; k++)
		close(socks[k]);
	sleep(2);
	/* once they are gone, a scrape is served again */
	int crc = -1;
	for (int k = 0; k < 20 && crc != 0; k++)
		if ((crc = t_run_capture(argv, out, sizeof(out), 30000)) != 0)
			sleep(1);
	assert_int_equal(crc, 0);
	assert_non_null(strstr(out, "qsup_guest_up{guest=\"g1\"} 1"));
	double lag = sample(out, "qsup_loop_lag_max_seconds");
	printf("# note: %d scraper connections; qsupd RSS %ld KiB before, %ld KiB with them; "
	       "loop lag max %.4f s\n", ns, rss0, rss1, lag);
	assert_true(rss1 - rss0 < 64 * 1024);   /* bounded: 32 connections of 32 KiB */
	assert_true(t_pid_alive(x->d.pid));

	/* a hung QEMU: stats answer anyway, its figures marked stale */
	json_t *s1 = t_fx_must(x, "status", "g1", 10000);
	int qpid = (int)json_integer_value(json_object_get(s1, "pid"));
	json_decref(s1);
	assert_true(qpid > 1);
	assert_int_equal(kill(qpid, SIGSTOP), 0);
	st = stats(x, 30000);   /* the round's deadline (3 s) ends the wait */
	bool stale = json_is_true(json_object_get(stats_of(st, "g1"), "stale"));
	json_decref(st);
	if (!stale) {   /* this round's query was answered before the stop took */
		st = stats(x, 30000);
		stale = json_is_true(json_object_get(stats_of(st, "g1"), "stale"));
		json_decref(st);
	}
	kill(qpid, SIGCONT);
	assert_true(stale);
	assert_int_equal(qsupctl(x, 30000, "metrics", NULL), 0);
	printf("# note: %s\n", strstr(out, "qsup_guest_stats_stale{guest=\"g1\"}")
	       ? "stale gauge present" : "no stale gauge");
	json_decref(t_fx_must(x, "kill", "g1", 30000));
	json_decref(t_fx_must(x, "kill", "g2", 30000));
}

/* Restarts by the class of the ending: a QEMU killed from outside is a
 * crash, restarted by the policy; stats and metrics count it so. A halting
 * guest (bench/halt-rom.sh's ROM), quick under KVM or TCG. */
static void test_restarts_by_class(void **state)
{
	struct t_fx *x = *state;
	char rom[700], text[1024];
	assert_int_equal(t_daemon_halt_rom(&x->d, rom, sizeof(rom)), 0);
	snprintf(text, sizeof(text), "[guest]\nmemory = 16M\naccel = kvm:tcg\nbios = %s\n"
	         "[restart]\npolicy = on-failure\ndelay = 100ms\n", rom);
	t_daemon_profile(&x->d, "r1", text);
	t_fx_up(x, NULL);
	struct t_ctl ev;
	assert_int_equal(t_ctl_open(&ev, x->d.sock), 0);
	json_decref(t_ctl_call(&ev, "subscribe", NULL, 5000));
	json_decref(t_fx_must(x, "start", "r1", 60000));
	json_t *s = t_fx_must(x, "status", "r1", 10000);
	int pid = (int)json_integer_value(json_object_get(s, "pid"));
	if (pid <= 1)
		fail_msg("no pid: %s\n%s", json_dumps(s, 0), t_daemon_log(&x->d));
	json_decref(s);
	for (int round = 0; round < 2; round++) {
		assert_true(pid > 1);   /* never kill(0) or kill(-1) */
		assert_int_equal(kill(pid, SIGKILL), 0);
		t_fx_wait_state(x, &ev, "r1", "backoff", 30000);
		int old = pid;
		for (int i = 0; i < 600 && (pid <= 1 || pid == old); i++) {   /* running again */
			usleep(100000);
			s = t_fx_must(x, "status", "r1", 10000);
			pid = (int)json_integer_value(json_object_get(s, "pid"));
			if (strcmp(str(s, "state"), "running"))
				pid = 0;
			json_decref(s);
		}
	}
	t_ctl_close(&ev);
	json_t *st = stats(x, 30000);
	json_t *g = stats_of(st, "r1");
	assert_int_equal(json_integer_value(json_object_get(g, "restarts")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(g,
	                 "restarts_by_class"), "crash")), 2);
	json_decref(st);
	assert_int_equal(qsupctl(x, 30000, "metrics", NULL), 0);
	assert_true(sample(out, "qsup_guest_restarts_total{guest=\"r1\",class=\"crash\"}") == 2);
	json_decref(t_fx_must(x, "kill", "r1", 30000));
}

/* Profiles a and b (b may be NULL) of guests that halt at once (the ROM of
 * bench/halt-rom.sh): they cost no CPU. */
static void halting_profiles(struct t_fx *x, const char *a, const char *b)
{
	char rom[700], text[1024];
	assert_int_equal(t_daemon_halt_rom(&x->d, rom, sizeof(rom)), 0);
	snprintf(text, sizeof(text), "[guest]\nmemory = 16M\naccel = kvm:tcg\nbios = %s\n", rom);
	t_daemon_profile(&x->d, a, text);
	if (b)
		t_daemon_profile(&x->d, b, text);
}

/* Without --metrics-listen, rounds run only while somebody reads the
 * figures: an idle host's QEMUs are not woken for them. */
static void test_rounds_only_for_readers(void **state)
{
	struct t_fx *x = *state;
	halting_profiles(x, "h1", NULL);
	const char *opts[] = { "--stats-interval", "1", NULL };
	t_fx_up(x, opts);
	json_decref(t_fx_must(x, "start", "h1", 60000));
	sleep(3);   /* three ticks, nobody reading */
	assert_int_equal(qsupctl(x, 30000, "metrics", NULL), 0);
	double first = sample(out, "qsup_stats_rounds_total");
	printf("# rounds after 3 s unread: %.0f (the one this request started)\n", first);
	assert_true(first == 1);
	assert_true(sample(out, "qsup_guest_up{guest=\"h1\"}") == 1);
	/* Every QMP reply counts in the round-trip figures, not only the
	 * rounds' own: five passthrough commands, then the figures again
	 * (fresh: no round of their own). */
	double rtt0 = sample(out, "qsup_qmp_roundtrip_seconds_count");
	for (int i = 0; i < 5; i++)
		json_decref(t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "h1",
		                       "command", "query-status"), 10000));
	assert_int_equal(qsupctl(x, 30000, "metrics", NULL), 0);
	double rtt1 = sample(out, "qsup_qmp_roundtrip_seconds_count");
	printf("# QMP replies counted: %.0f, then %.0f\n", rtt0, rtt1);
	assert_true(rtt1 - rtt0 >= 5);
	sleep(3);   /* read a moment ago: the timer's rounds go on */
	assert_int_equal(qsupctl(x, 30000, "metrics", NULL), 0);
	double later = sample(out, "qsup_stats_rounds_total");
	printf("# rounds 3 s later: %.0f\n", later);
	assert_true(later >= 3);
	json_decref(t_fx_must(x, "kill", "h1", 30000));
}

/* A stats request that comes while a round is out waits for the next one:
 * the round out began before the request, and what changed since (here a
 * guest started) is not in it. A SIGSTOPped QEMU holds the first round
 * for its query's 3 s deadline. */
static void test_stats_after_request(void **state)
{
	struct t_fx *x = *state;
	halting_profiles(x, "s1", "s2");
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "s1", 60000));
	pid_t p1 = t_ctl_pid(&x->c, "s1");
	assert_true(p1 > 0);
	kill(p1, SIGSTOP);
	long long a = t_ctl_send(&x->c, "stats", NULL);   /* its round waits on s1 */
	usleep(200000);
	double t0 = t_now();
	json_decref(t_fx_must(x, "start", "s2", 60000));
	pid_t p2 = t_ctl_pid(&x->c, "s2");
	long long b = t_ctl_send(&x->c, "stats", NULL);
	double sent = t_now() - t0;
	json_t *ra = t_ctl_reply(&x->c, a, 30000), *rb = t_ctl_reply(&x->c, b, 30000);
	kill(p1, SIGCONT);
	json_t *ga = stats_of(json_object_get(ra, "return"), "s2");
	json_t *gb = stats_of(json_object_get(rb, "return"), "s2");
	assert_non_null(ga);
	assert_non_null(gb);
	printf("# note: s2 started and the second request sent %.2f s into the first round; "
	       "s2's pid in the first answer: %s, in the second: %lld (pid %d)\n", sent,
	       json_object_get(ga, "pid") ? "yes" : "no",
	       (long long)json_integer_value(json_object_get(gb, "pid")), (int)p2);
	if (sent >= 2.5)
		printf("# note: s2's start took long: the first round may have ended before it\n");
	else
		assert_null(json_object_get(ga, "pid"));   /* the first round began before s2 */
	assert_int_equal(json_integer_value(json_object_get(gb, "pid")), p2);
	json_decref(ra);
	json_decref(rb);
	json_decref(t_fx_must(x, "kill", "s1", 30000));
	json_decref(t_fx_must(x, "kill", "s2", 30000));
}

/* A round reads and asks 8 guests per turn of the loop (metrics.c), so that
 * 200 guests never hold the loop in one go: 20 guests with a disk each take
 * three turns (the collect histogram counts turns), one round (the rounds
 * counter), and every guest's disk figures come from its own QMP query. */
static void test_round_in_turns(void **state)
{
	struct t_fx *x = *state;
	enum { N = 20 };
	char name[16], img[700], rom[700], text[2048];
	assert_int_equal(t_daemon_halt_rom(&x->d, rom, sizeof(rom)), 0);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "t%02d", i);
		snprintf(img, sizeof(img), "%s/%s.img", x->d.dir, name);
		snprintf(text, sizeof(text), "[guest]\nmemory = 16M\naccel = kvm:tcg\nbios = %s\n"
		         "[disk.d%02d]\nfile = %s\nformat = raw\nsize = 1M\n", rom, i, img);
		t_daemon_profile(&x->d, name, text);
	}
	const char *opts[] = { "--stats-interval", "3600", NULL };   /* no round but ours */
	t_fx_up(x, opts);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "t%02d", i);
		json_decref(t_fx_must(x, "start", name, 60000));
	}
	json_t *st = stats(x, 60000);
	for (int i = 0; i < N; i++) {
		char id[16];
		snprintf(name, sizeof(name), "t%02d", i);
		snprintf(id, sizeof(id), "d%02d", i);
		json_t *g = stats_of(st, name), *disks = json_object_get(g, "disks");
		assert_non_null(g);
		assert_int_equal(json_array_size(disks), 1);
		assert_string_equal(str(json_array_get(disks, 0), "id"), id);
		assert_true(json_integer_value(json_object_get(g, "pid")) > 0);
	}
	json_decref(st);
	assert_int_equal(qsupctl(x, 30000, "metrics", NULL), 0);
	double rounds = sample(out, "qsup_stats_rounds_total");
	double turns = sample(out, "qsup_stats_collect_seconds_count");
	printf("# note: %d guests: %.0f round(s) in %.0f turns of the loop\n", N, rounds, turns);
	assert_true(rounds == 1);
	assert_true(turns == 3);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "t%02d", i);
		json_decref(t_fx_must(x, "kill", name, 30000));
	}
}

static void test_bad_options(void **state)
{
	struct t_fx *x = *state;
	const char *bad[][3] = {
		{ "--metrics-listen", "localhost:9100", NULL },
		{ "--metrics-listen", "127.0.0.1:99999", NULL },
		{ "--metrics-listen", "127.0.0.1:", NULL },
		{ "--stats-interval", "0", NULL },
		{ "--stats-interval", "10s", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = t_daemon_exec(&x->d, bad[i], 10000);
		printf("# note: %s %s: exit %d\n", bad[i][0], bad[i][1], rc);
		assert_true(rc > 0);
	}
	/* a port that is taken: qsupd does not start, and says why */
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof(a);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 1), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &n), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(a.sin_port));
	const char *taken[] = { "--metrics-listen", addr, NULL };
	assert_int_equal(t_daemon_exec(&x->d, taken, 20000), 1);
	close(s);
	assert_true(t_fx_log_has(x, "cannot listen"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_options, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_restarts_by_class, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_rounds_only_for_readers, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_stats_after_request, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_metrics, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_round_in_turns, t_fx_setup, t_fx_teardown),
	};
	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
