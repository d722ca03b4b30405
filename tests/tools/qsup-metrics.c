/*
 * qsup-metrics: the figures behind bench/metrics. N halting guests (the
 * cli; hlt ROM of bench/halt-rom.sh, -m 16) under one qsupd, twice for
 * SECONDS each:
 *
 *   quiet    --stats-interval 3600: no stats round in the window
 *   stats    --stats-interval 10 (the default), and --metrics-listen
 *
 * For each: qsupd's CPU seconds per minute and its QEMUs' (the scheduler's
 * ns count, /proc/PID/task/TID/schedstat), qsupd's wakeups; for the second,
 * what a round takes on the loop (qsup_stats_collect_seconds: the lag it
 * adds), the loop lag seen (qsup_loop_lag_max_seconds), the stats rounds'
 * QMP round trips, and the latency of scraping /metrics (HTTP GET, one
 * connection each, SCRAPES times: median, p90, max) with the text's size.
 *
 *   qsup-metrics [GUESTS [SECONDS [SCRAPES]]]   (default 50 guests, 60 s, 200)
 *
 * Prints figures; asserts nothing. Machines shared with other work give
 * noisy figures.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tdaemon.h"
#include "testutil.h"

#define PROFILE "[guest]\nmemory = 16M\naccel = kvm:tcg\nhotplug-slots = 0\n"
#define MAXG 256

static void die(const char *what, struct t_daemon *d)
{
	fprintf(stderr, "qsup-metrics: %s\n%s\n", what, d ? t_daemon_log(d) : "");
	if (d)
		t_daemon_cleanup(d);
	exit(1);
}

/* CPU seconds pid's live threads have run (the scheduler's count); 0 for
 * a process that is gone. */
static double sched_s(pid_t pid)
{
	double c = t_sched_cpu_s(pid);
	return c > 0 ? c : 0;
}

static double sched_sum(const pid_t *pids, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++)
		s += sched_s(pids[i]);
	return s;
}

static long switches(pid_t pid)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	long n = 0, v;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
		    sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)
			n += v;
	if (f)
		fclose(f);
	return n;
}

static double sample(const char *text, const char *prefix)
{
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, prefix, strlen(prefix)) && p[strlen(prefix)] == ' ')
			return strtod(p + strlen(prefix) + 1, NULL);
	return -1;
}

/* One GET /metrics: seconds, and the body's size into *bytes; -1 on error. */
static double scrape(unsigned port, size_t *bytes)
{
	static char buf[1 << 20];
	double t0 = t_now();
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static const char get[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    write(s, get, sizeof(get) - 1) != (ssize_t)(sizeof(get) - 1)) {
		if (s >= 0)
			close(s);
		return -1;
	}
	size_t n = 0;
	ssize_t r;
	while ((r = read(s, buf, sizeof(buf))) > 0)
		n += (size_t)r;
	close(s);
	*bytes = n;
	return r < 0 ? -1 : t_now() - t0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The metrics text, through the control socket (malloc'd). */
static char *metrics_text(struct t_daemon *d)
{
	struct t_ctl c;
	char *text = NULL;
	if (t_ctl_open(&c, d->sock) == 0) {
		json_t *r = t_ctl_call(&c, "metrics", NULL, 30000);
		const char *t = json_string_value(json_object_get(json_object_get(r, "return"),
		                                                  "text"));
		text = strdup(t ? t : "");
		json_decref(r);
		t_ctl_close(&c);
	}
	return text ? text : strdup("");
}

/* The port of --metrics-listen 127.0.0.1:0, from the daemon's whole log. */
static unsigned log_port(struct t_daemon *d)
{
	static char buf[1 << 20];
	FILE *f = fopen(d->log, "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	const char *p = strstr(buf, "/metrics (port ");
	return p ? (unsigned)strtoul(p + 15, NULL, 10) : 0;
}

struct run {
	double qsupd, qemus;    /* CPU s over the window */
	long wakeups;
	char *metrics0, *metrics;       /* the metrics text at the window's start, end */
	double scrape_p50, scrape_p90, scrape_max;
	size_t scrape_bytes;
	int scrapes_ok;
};

static void run(int nguests, int seconds, int scrapes, const char *profile, bool stats,
                struct run *out)
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
	const char *quiet[] = { "--stats-interval", "3600", NULL };
	const char *loud[] = { "--stats-interval", "10", "--metrics-listen", "127.0.0.1:0", NULL };
	if (t_daemon_start(&d, stats ? loud : quiet) < 0 || t_ctl_open(&c, d.sock) < 0)
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
		json_decref(r);
	}
	t_ctl_close(&c);
	sleep(3);
	out->metrics0 = metrics_text(&d);
	double d0 = sched_s(d.pid), q0 = sched_sum(pids, nguests);
	long w0 = switches(d.pid);
	sleep((unsigned)seconds);
	out->wakeups = switches(d.pid) - w0;
	out->qsupd = sched_s(d.pid) - d0;
	out->qemus = sched_sum(pids, nguests) - q0;
	out->metrics = metrics_text(&d);
	if (stats) {
		unsigned port = log_port(&d);
		double *lat = calloc((size_t)scrapes, sizeof(*lat));
		out->scrapes_ok = 0;
		for (int i = 0; port && i < scrapes; i++) {
			double t = scrape(port, &out->scrape_bytes);
			if (t >= 0)
				lat[out->scrapes_ok++] = t;
		}
		qsort(lat, (size_t)out->scrapes_ok, sizeof(*lat), cmp_d);
		if (out->scrapes_ok) {
			out->scrape_p50 = lat[out->scrapes_ok / 2];
			out->scrape_p90 = lat[out->scrapes_ok * 9 / 10];
			out->scrape_max = lat[out->scrapes_ok - 1];
		}
		free(lat);
	}
	t_daemon_cleanup(&d);
}

int main(int argc, char **argv)
{
	int nguests = argc > 1 ? atoi(argv[1]) : 50, seconds = argc > 2 ? atoi(argv[2]) : 60;
	int scrapes = argc > 3 ? atoi(argv[3]) : 200;
	if (nguests < 1 || nguests > MAXG || seconds < 1 || scrapes < 1) {
		fprintf(stderr, "usage: qsup-metrics [GUESTS (1-%d) [SECONDS [SCRAPES]]]\n", MAXG);
		return 2;
	}
	char dir[] = "/tmp/qsup-metrics-XXXXXX";
	if (!mkdtemp(dir))
		die("temp dir", NULL);
	char script[600], rom[300], text[1024], out[512];
	snprintf(script, sizeof(script), "%s/bench/halt-rom.sh", t_srcdir());
	snprintf(rom, sizeof(rom), "%s/halt.rom", dir);
	const char *const av[] = { "/bin/sh", script, rom, NULL };
	if (t_run_capture(av, out, sizeof(out), 10000) != 0)
		die("bench/halt-rom.sh failed", NULL);
	snprintf(text, sizeof(text), "%sbios = %s\n", PROFILE, rom);

	struct run quiet = { 0 }, loud = { 0 };
	printf("%d halting guests, %d s each run, CPU by the scheduler's count:\n", nguests,
	       seconds);
	fflush(stdout);
	run(nguests, seconds, scrapes, text, false, &quiet);
	run(nguests, seconds, scrapes, text, true, &loud);
	unlink(rom);
	rmdir(dir);
	double pm = 60.0 / seconds;
	printf("  --stats-interval 3600 (no round)  qsupd %.4f CPU s/min, QEMUs %.4f, "
	       "qsupd wakeups %.0f/min\n", quiet.qsupd * pm, quiet.qemus * pm,
	       (double)quiet.wakeups * pm);
	printf("  --stats-interval 10 (default)     qsupd %.4f CPU s/min, QEMUs %.4f, "
	       "qsupd wakeups %.0f/min\n", loud.qsupd * pm, loud.qemus * pm,
	       (double)loud.wakeups * pm);
	printf("  stats collection costs qsupd %.4f CPU s/min, the QEMUs %.4f (%d guests)\n",
	       (loud.qsupd - quiet.qsupd) * pm, (loud.qemus - quiet.qemus) * pm, nguests);
	/* the window's share of the histograms: end less start */
	const char *m = loud.metrics, *m0 = loud.metrics0;
#define D(name) (sample(m, name) - sample(m0, name))
	double cs = D("qsup_stats_collect_seconds_sum"), cn = D("qsup_stats_collect_seconds_count");
	double rs = D("qsup_qmp_roundtrip_seconds_sum"), rn = D("qsup_qmp_roundtrip_seconds_count");
	double ls = D("qsup_loop_lag_seconds_sum"), ln = D("qsup_loop_lag_seconds_count");
	double l10 = D("qsup_loop_lag_seconds_bucket{le=\"0.01\"}");
	double rounds = D("qsup_stats_rounds_total");
#undef D
	printf("  in the window: a turn of a round (8 guests; the lag it adds) mean %.3f ms over "
	       "%.0f turns, %.3f ms of loop time per round over %.0f rounds; loop lag mean %.3f ms, "
	       "%.0f of %.0f ticks within 10 ms; QMP round trip mean %.3f ms over %.0f\n",
	       cn > 0 ? cs / cn * 1000 : -1, cn, rounds > 0 ? cs / rounds * 1000 : -1, rounds,
	       ln > 0 ? ls / ln * 1000 : -1, l10, ln, rn > 0 ? rs / rn * 1000 : -1, rn);
	printf("  scrape of /metrics (%zu bytes with headers, %d of %d answered): median "
	       "%.3f ms, p90 %.3f ms, max %.3f ms\n", loud.scrape_bytes, loud.scrapes_ok,
	       scrapes, loud.scrape_p50 * 1000, loud.scrape_p90 * 1000, loud.scrape_max * 1000);
	free(quiet.metrics);
	free(quiet.metrics0);
	free(loud.metrics);
	free(loud.metrics0);
	return 0;
}
