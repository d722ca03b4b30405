/*
 * qsupctl stats, metrics and top (ctl.h). top asks qsupd for `stats` every
 * --delay seconds and shows the rates between two successive answers: CPU
 * as a percentage of one core, disk and network bytes per second. On a
 * terminal it redraws the screen and reads single keys (the terminal in
 * raw mode, restored on every way out, signals included); with --batch it
 * prints plain frames, -n of them.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

/* ---- pure: rows, sorting, formatting ---- */

void ctl_fmt_bytes(double v, char *buf, size_t size)
{
	static const char units[] = "BKMGTP";
	int u = 0;
	if (v < 0) {
		snprintf(buf, size, "-");
		return;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%.0fB", v);
	else
		snprintf(buf, size, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

static double sum_of(json_t *arr, const char *key)
{
	double s = 0;
	json_t *e;
	size_t i;
	json_array_foreach(arr, i, e)
		s += json_number_value(json_object_get(e, key));
	return s;
}

static json_t *find_guest(json_t *list, const char *name)
{
	json_t *e;
	size_t i;
	json_array_foreach(list, i, e)
		if (!strcmp(sv_jstr(e, "name", ""), name))
			return e;
	return NULL;
}

/* (b - a) per second of dt, or -1 when unknown. */
static double rate(double a, double b, double dt)
{
	return dt > 0 && b >= a ? (b - a) / dt : -1;
}

json_t *ctl_top_rows(json_t *prev, json_t *cur)
{
	json_t *rows = json_array(), *g;
	size_t i;
	json_array_foreach(cur, i, g) {
		const char *name = sv_jstr(g, "name", "?");
		json_t *p = prev ? find_guest(prev, name) : NULL;
		json_t *t1 = json_object_get(g, "time"), *t0 = p ? json_object_get(p, "time") : NULL;
		/* the same QEMU in both: its counters only grow */
		bool same = t0 && t1 && json_integer_value(json_object_get(p, "pid")) ==
		            json_integer_value(json_object_get(g, "pid"));
		double dt = same ? json_number_value(t1) - json_number_value(t0) : 0;
		double cpu = -1, rd = -1, wr = -1, rx = -1, tx = -1;
		if (same) {
			double c0 = json_number_value(json_object_get(p, "cpu_user")) +
			            json_number_value(json_object_get(p, "cpu_system"));
			double c1 = json_number_value(json_object_get(g, "cpu_user")) +
			            json_number_value(json_object_get(g, "cpu_system"));
			double r = rate(c0, c1, dt);
			cpu = r < 0 ? -1 : r * 100;
			json_t *d0 = json_object_get(p, "disks"), *d1 = json_object_get(g, "disks");
			json_t *n0 = json_object_get(p, "nics"), *n1 = json_object_get(g, "nics");
			rd = rate(sum_of(d0, "rd_bytes"), sum_of(d1, "rd_bytes"), dt);
			wr = rate(sum_of(d0, "wr_bytes"), sum_of(d1, "wr_bytes"), dt);
			if (json_array_size(n1)) {
				rx = rate(sum_of(n0, "rx_bytes"), sum_of(n1, "rx_bytes"), dt);
				tx = rate(sum_of(n0, "tx_bytes"), sum_of(n1, "tx_bytes"), dt);
			}
		}
		json_t *rss = json_object_get(g, "rss");
		json_array_append_new(rows, json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, "
		                      "s:f, s:I, s:b}", "name", name,
		                      "state", sv_jstr(g, "state", "?"), "cpu", cpu,
		                      "mem", rss ? json_number_value(rss) : -1.0,
		                      "rd", rd, "wr", wr, "rx", rx, "tx", tx,
		                      "uptime", json_number_value(json_object_get(g, "uptime")),
		                      "restarts", json_integer_value(json_object_get(g, "restarts")),
		                      "stale", json_is_true(json_object_get(g, "stale"))));
	}
	return rows;
}

static char sort_key = 'c';

static double sort_value(json_t *r)
{
	switch (sort_key) {
	case 'm': return json_number_value(json_object_get(r, "mem"));
	case 'd': return json_number_value(json_object_get(r, "rd")) +
	                 json_number_value(json_object_get(r, "wr"));
	case 'n': return json_number_value(json_object_get(r, "rx")) +
	                 json_number_value(json_object_get(r, "tx"));
	case 'u': return json_number_value(json_object_get(r, "uptime"));
	default: return json_number_value(json_object_get(r, "cpu"));
	}
}

static int cmp_rows(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	if (sort_key != 'a') {
		double vx = sort_value(x), vy = sort_value(y);
		if (vx != vy)
			return vx < vy ? 1 : -1;   /* largest first */
	}
	return strcmp(sv_jstr(x, "name", ""), sv_jstr(y, "name", ""));
}

void ctl_top_sort(json_t *rows, char key)
{
	size_t n = json_array_size(rows);
	json_t **v = n ? malloc(n * sizeof(*v)) : NULL;
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(rows, i));
	sort_key = strchr("cmdnua", key) ? key : 'c';
	qsort(v, n, sizeof(*v), cmp_rows);
	json_array_clear(rows);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(rows, v[i]);
	free(v);
}

static void fmt_rate(json_t *r, const char *key, char *buf, size_t size)
{
	double v = json_number_value(json_object_get(r, key));
	if (v < 0) {
		snprintf(buf, size, "-");
		return;
	}
	ctl_fmt_bytes(v, buf, size);
}

void ctl_top_print(FILE *out, json_t *rows, char key)
{
	json_t *r;
	size_t i;
	fprintf(out, "%-20s %-9s %6s %7s %7s %7s %7s %7s %8s %8s\n", "NAME", "STATE",
	        key == 'c' ? "%CPU*" : "%CPU", key == 'm' ? "MEM*" : "MEM",
	        key == 'd' ? "RD/s*" : "RD/s", "WR/s", key == 'n' ? "RX/s*" : "RX/s", "TX/s",
	        key == 'u' ? "UPTIME*" : "UPTIME", "RESTARTS");
	json_array_foreach(rows, i, r) {
		char cpu[16], mem[16], rd[16], wr[16], rx[16], tx[16], up[16];
		double c = json_number_value(json_object_get(r, "cpu"));
		double m = json_number_value(json_object_get(r, "mem"));
		const char *state = sv_jstr(r, "state", "?");
		if (c < 0)
			snprintf(cpu, sizeof(cpu), "-");
		else
			snprintf(cpu, sizeof(cpu), "%.1f", c);
		if (m < 0)
			snprintf(mem, sizeof(mem), "-");
		else
			ctl_fmt_bytes(m, mem, sizeof(mem));
		fmt_rate(r, "rd", rd, sizeof(rd));
		fmt_rate(r, "wr", wr, sizeof(wr));
		fmt_rate(r, "rx", rx, sizeof(rx));
		fmt_rate(r, "tx", tx, sizeof(tx));
		double u = json_number_value(json_object_get(r, "uptime"));
		if (u > 0)
			ctl_fmt_duration(u, up, sizeof(up));
		else
			snprintf(up, sizeof(up), "-");
		fprintf(out, "%-20s %-9s %6s %7s %7s %7s %7s %7s %8s %8lld%s\n",
		        sv_jstr(r, "name", "?"), state, cpu, mem, rd, wr, rx, tx, up,
		        (long long)json_integer_value(json_object_get(r, "restarts")),
		        json_is_true(json_object_get(r, "stale")) ? " (stale)" : "");
	}
}

/* ---- stats and metrics ---- */

static json_t *stats_args(char **names, int n)
{
	json_t *args = json_object(), *arr = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, json_string(names[i]));
	json_object_set_new(args, "names", arr);
	return args;
}

static void show_stats(struct ctl *c, const char *what, json_t *ret)
{
	json_t *g;
	size_t i;
	(void)c, (void)what;
	printf("%-20s %-9s %8s %8s %8s %7s %7s %7s %7s %8s\n", "NAME", "STATE", "UPTIME",
	       "CPU-USER", "CPU-SYS", "MEM", "READ", "WRITTEN", "RX", "TX");
	json_array_foreach(ret, i, g) {
		char up[16], mem[16], rd[16], wr[16], rx[16], tx[16];
		json_t *rss = json_object_get(g, "rss");
		double u = json_number_value(json_object_get(g, "uptime"));
		if (u > 0)
			ctl_fmt_duration(u, up, sizeof(up));
		else
			snprintf(up, sizeof(up), "-");
		if (rss)
			ctl_fmt_bytes(json_number_value(rss), mem, sizeof(mem));
		else
			snprintf(mem, sizeof(mem), "-");
		ctl_fmt_bytes(sum_of(json_object_get(g, "disks"), "rd_bytes"), rd, sizeof(rd));
		ctl_fmt_bytes(sum_of(json_object_get(g, "disks"), "wr_bytes"), wr, sizeof(wr));
		ctl_fmt_bytes(sum_of(json_object_get(g, "nics"), "rx_bytes"), rx, sizeof(rx));
		ctl_fmt_bytes(sum_of(json_object_get(g, "nics"), "tx_bytes"), tx, sizeof(tx));
		printf("%-20s %-9s %8s %8.2f %8.2f %7s %7s %7s %7s %8s%s\n", sv_jstr(g, "name", "?"),
		       sv_jstr(g, "state", "?"), up,
		       json_number_value(json_object_get(g, "cpu_user")),
		       json_number_value(json_object_get(g, "cpu_system")), mem, rd, wr, rx, tx,
		       json_is_true(json_object_get(g, "stale")) ? " (stale)" : "");
	}
}

int ctl_stats(struct ctl *c, char **args, int nargs)
{
	json_t *reply = NULL;
	int r = ctl_call(c, "stats", stats_args(args, nargs), NULL, &reply);
	if (r == CTL_EXIT_OK)
		r = ctl_handle_reply(c, NULL, reply, show_stats);
	json_decref(reply);
	return r;
}

static void show_metrics(struct ctl *c, const char *what, json_t *ret)
{
	(void)c, (void)what;
	fputs(sv_jstr(ret, "text", ""), stdout);
}

int ctl_metrics(struct ctl *c, char **args, int nargs)
{
	json_t *reply = NULL;
	(void)args, (void)nargs;
	int r = ctl_call(c, "metrics", NULL, NULL, &reply);
	if (r == CTL_EXIT_OK)
		r = ctl_handle_reply(c, NULL, reply, show_metrics);
	json_decref(reply);
	return r;
}

/* ---- top ---- */

static volatile sig_atomic_t top_signal;

static void on_top_signal(int sig)
{
	top_signal = sig;
}

/* One stats answer, or NULL (the error said). */
static json_t *top_stats(struct ctl *c, char **names, int n, int *rc)
{
	json_t *reply = NULL;
	*rc = ctl_call(c, "stats", stats_args(names, n), NULL, &reply);
	if (*rc != CTL_EXIT_OK)
		return NULL;
	json_t *ret = json_incref(json_object_get(reply, "return"));
	if (!ret) {
		bool json = c->json;
		c->json = false;
		*rc = ctl_handle_reply(c, NULL, reply, NULL);
		c->json = json;
	}
	json_decref(reply);
	return ret;
}

static void top_frame(FILE *out, json_t *rows, char key, bool batch, double delay)
{
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (!batch)
		fputs("\033[H\033[2J", out);
	fprintf(out, "qsupctl top - %s, %zu guest%s, every %gs%s\n\n", when,
	        json_array_size(rows), json_array_size(rows) == 1 ? "" : "s", delay,
	        batch ? "" : "  (sort: c cpu, m mem, d disk, n net, u uptime, a name; q quits)");
	ctl_top_print(out, rows, key);
	if (batch)
		fputc('\n', out);
	fflush(out);
}

int ctl_top(struct ctl *c, char **args, int nargs)
{
	double delay = c->delay > 0 ? c->delay : 3;
	bool batch = c->batch || !isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO);
	struct termios saved, raw;
	bool raw_on = false;
	struct sigaction sa = { .sa_handler = on_top_signal }, old[4];
	static const int sigs[4] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	json_t *prev = NULL;
	char key = 'c';
	int rc = CTL_EXIT_OK;

	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &sa, &old[i]);
	if (!batch && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		raw_on = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
	}
	for (long frame = 0; !top_signal && (c->iterations <= 0 || frame < c->iterations);
	     frame++) {
		json_t *cur = top_stats(c, args, nargs, &rc);
		if (!cur)
			break;
		json_t *rows = ctl_top_rows(prev, cur);
		ctl_top_sort(rows, key);
		top_frame(stdout, rows, key, batch, delay);
		json_decref(rows);
		json_decref(prev);
		prev = cur;
		if (c->iterations > 0 && frame + 1 >= c->iterations)
			break;
		/* wait delay seconds, or for a key */
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			double left = delay - ((double)(t1.tv_sec - t0.tv_sec) +
			                       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
			if (left <= 0 || top_signal)
				break;
			struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
			int n = poll(&p, batch ? 0 : 1, (int)(left * 1000) + 1);
			if (n <= 0 || !(p.revents & POLLIN))
				continue;
			char k;
			if (read(STDIN_FILENO, &k, 1) != 1)
				continue;
			if (k == 'q' || k == 'Q')
				goto out;
			if (strchr("cmdnua", k)) {
				key = k;   /* the next frame at once, in the new order */
				break;
			}
		}
	}
out:
	json_decref(prev);
	if (raw_on)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &old[i], NULL);
	if (top_signal) {
		c->signal = top_signal;
		return CTL_EXIT_OK;
	}
	return rc;
}
