/*
 * qsupctl top's pure pieces (ctl.h): the rows of two successive stats
 * answers, their order, the table, byte counts for people. No I/O but the
 * FILE given; unit-tested (tests/unit/test-top.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

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

double ctl_sum_of(json_t *arr, const char *key)
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
			rd = rate(ctl_sum_of(d0, "rd_bytes"), ctl_sum_of(d1, "rd_bytes"), dt);
			wr = rate(ctl_sum_of(d0, "wr_bytes"), ctl_sum_of(d1, "wr_bytes"), dt);
			if (json_array_size(n1)) {
				rx = rate(ctl_sum_of(n0, "rx_bytes"), ctl_sum_of(n1, "rx_bytes"), dt);
				tx = rate(ctl_sum_of(n0, "tx_bytes"), ctl_sum_of(n1, "tx_bytes"), dt);
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

