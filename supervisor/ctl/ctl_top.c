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
		ctl_fmt_bytes(ctl_sum_of(json_object_get(g, "disks"), "rd_bytes"), rd, sizeof(rd));
		ctl_fmt_bytes(ctl_sum_of(json_object_get(g, "disks"), "wr_bytes"), wr, sizeof(wr));
		ctl_fmt_bytes(ctl_sum_of(json_object_get(g, "nics"), "rx_bytes"), rx, sizeof(rx));
		ctl_fmt_bytes(ctl_sum_of(json_object_get(g, "nics"), "tx_bytes"), tx, sizeof(tx));
		char cu[16] = "-", cs[16] = "-";
		if (json_object_get(g, "pid")) {
			snprintf(cu, sizeof(cu), "%.2f", json_number_value(json_object_get(g, "cpu_user")));
			snprintf(cs, sizeof(cs), "%.2f",
			         json_number_value(json_object_get(g, "cpu_system")));
		}
		printf("%-20s %-9s %8s %8s %8s %7s %7s %7s %7s %8s%s\n", sv_jstr(g, "name", "?"),
		       sv_jstr(g, "state", "?"), up, cu, cs, mem, rd, wr, rx, tx,
		       json_is_true(json_object_get(g, "stale")) ? " (stale)" : "");
	}
}

int ctl_stats(struct ctl *c, char **args, int nargs)
{
	return ctl_request(c, "stats", stats_args(args, nargs), NULL, show_stats);
}

static void show_metrics(struct ctl *c, const char *what, json_t *ret)
{
	(void)c, (void)what;
	fputs(sv_jstr(ret, "text", ""), stdout);
}

int ctl_metrics(struct ctl *c, char **args, int nargs)
{
	(void)args, (void)nargs;
	return ctl_request(c, "metrics", NULL, NULL, show_metrics);
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
