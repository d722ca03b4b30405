/*
 * qmp-bench: figures for libqmp against real QEMU, printed, never asserted.
 *
 *   qmp-bench [-n STARTS] [-r ROUNDTRIPS] [-a kvm|tcg]
 *
 * For each start: spawn qemu-system-x86_64 -S (no disk, no kernel), connect
 * as soon as the socket exists, negotiate, then cont and quit. It reports
 * spawn-to-QMP-ready times, then the round-trip time of query-status over
 * one connection, and this process's peak RSS.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "qmp.h"
#include "testutil.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void print_stats(const char *what, double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += v[i];
	printf("%-28s n=%-5d min %8.3f ms  median %8.3f ms  mean %8.3f ms  max %8.3f ms\n",
	       what, n, v[0] * 1e3, v[n / 2] * 1e3, sum / n * 1e3, v[n - 1] * 1e3);
}

struct rt { int done; };
static void on_rt(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	(void)c;
	(void)r;
	((struct rt *)arg)->done = 1;
}

int main(int argc, char **argv)
{
	int starts = 10, rounds = 2000, opt;
	const char *accel = NULL;
	while ((opt = getopt(argc, argv, "n:r:a:")) != -1) {
		if (opt == 'n')
			starts = atoi(optarg);
		else if (opt == 'r')
			rounds = atoi(optarg);
		else if (opt == 'a')
			accel = optarg;
		else {
			fprintf(stderr, "usage: qmp-bench [-n STARTS] [-r ROUNDTRIPS] [-a kvm|tcg]\n");
			return 2;
		}
	}
	if (starts < 1 || rounds < 1)
		return 2;
	if (!accel)
		accel = t_accel();
	printf("accel: %s\n", accel);
	uv_loop_t loop;
	uv_loop_init(&loop);
	double *ready = calloc((size_t)starts, sizeof(double));
	const char *extra[] = { "-S", "-M", "q35", "-m", "64", "-accel", accel, NULL };
	for (int i = 0; i < starts; i++) {
		struct t_qemu q;
		struct t_qmp t;
		double t0 = t_now();
		if (t_qemu_spawn(&loop, &q, extra) < 0 || t_qmp_open(&loop, &t, q.qmp_path, 10000) < 0) {
			fprintf(stderr, "start %d failed: %s\n", i, t_qemu_stderr(&q));
			return 1;
		}
		ready[i] = t_now() - t0;
		if (i == 0) {
			double *rt = calloc((size_t)rounds, sizeof(double));
			for (int k = 0; k < rounds; k++) {
				struct rt w = { 0 };
				double s = t_now();
				qmp_client_execute(t.c, "query-status", NULL, 0, on_rt, &w);
				t_run_until_flag(&loop, &w.done, 5000);
				rt[k] = t_now() - s;
			}
			print_stats("query-status round trip", rt, rounds);
			free(rt);
		}
		t_qmp_exec(&t, "quit", NULL, NULL);
		t_qmp_close(&t);
		t_qemu_reap(&loop, &q, 5000);
	}
	print_stats("spawn -> QMP ready", ready, starts);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("%-28s %ld KiB\n", "client peak RSS", ru.ru_maxrss);
	free(ready);
	t_loop_finish(&loop);
	return 0;
}
