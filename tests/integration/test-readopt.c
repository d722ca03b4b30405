/*
 * Re-adoption at scale, against a real daemon and real QEMU (firmware-only
 * guests, accel kvm:tcg):
 *
 * - qsupd is SIGKILLed at random points while 50 guests are being started
 *   (the seed is printed; QSUP_TEST_SEED=N replays it), three times; the
 *   qsupd started last must end with every guest running on exactly one
 *   QEMU, and every QEMU of this run dir must be a guest's (none twice,
 *   none orphaned).
 * - the control socket answers while 50 guests are being re-adopted: one
 *   QEMU is frozen (SIGSTOP) across the qsupd restart, so its QMP cannot
 *   come back; list and status answer meanwhile and report it (and any
 *   other guest not yet back) as starting with "adopting": true, a pause
 *   sent for it waits until its re-adoption is over, then is carried out.
 */
#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "testutil.h"

#define N 50
#define FW "[guest]\nmemory = 16M\naccel = kvm:tcg\nhotplug-slots = 0\n"
#define str t_str

struct fx {
	struct t_daemon d;
	struct t_ctl c;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	char name[16];
	assert_int_equal(t_daemon_init(&x->d), 0);
	x->c.fd = -1;
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "g%02d", i);
		t_daemon_profile(&x->d, name, FW);
	}
	*state = x;
	return 0;
}

static int qemus_of_run(struct fx *x, int *pids, char names[][16], int max);

static int teardown(void **state)
{
	struct fx *x = *state;
	int pids[4 * N];
	char names[4 * N][16];
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	int status = t_daemon_finish(&x->d);
	/* Any QEMU left that its pid file did not name (a failure's). */
	for (int i = qemus_of_run(x, pids, names, 4 * N); i-- > 0;) {
		kill(pids[i], SIGKILL);
		kill(pids[i], SIGCONT);
	}
	assert_int_equal(status, 0);
	free(x);
	return 0;
}

static void start_daemon(struct fx *x)
{
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	if (t_daemon_start(&x->d, NULL) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
}

static json_t *list(struct fx *x)
{
	json_t *r = t_ctl_call(&x->c, "list", NULL, 20000);
	json_t *a = json_incref(json_object_get(r, "return"));
	json_decref(r);
	if (!json_is_array(a))
		fail_msg("list did not answer; log:\n%s", t_daemon_log(&x->d));
	return a;
}

/* The QEMUs of this test's run dir (their fd 6 is RUNDIR/NAME/qemu), as
 * pids and the guest=NAME they run. */
static int qemus_of_run(struct fx *x, int *pids, char names[][16], int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		int pid = atoi(e->d_name);
		char path[64], buf[16384];
		snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		bool qemu = strstr(buf, "qemu-system") != NULL;
		const char *guest = NULL;
		for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
			if (!strncmp(buf + i, "guest=", 6))
				guest = buf + i + 6;
		char link[1024] = "";
		snprintf(path, sizeof(path), "/proc/%d/fd/6", pid);
		ssize_t ln = readlink(path, link, sizeof(link) - 1);
		link[ln > 0 ? ln : 0] = '\0';
		bool ours = !strncmp(link, x->d.run, strlen(x->d.run));
		if (!qemu || !ours || !guest || !t_pid_alive(pid) || n == max)
			continue;
		pids[n] = pid;
		snprintf(names[n], 16, "%.*s", (int)strcspn(guest, ","), guest);
		n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* Every guest running, each on its own QEMU, and no other QEMU of this run
 * dir alive. Polls until then (QEMUs qsupd killed are still exiting), and
 * fails with what is wrong after the deadline. */
static void assert_each_once(struct fx *x, unsigned seed)
{
	char why[2048] = "";
	for (double end = t_now() + 60; t_now() < end; usleep(100000)) {
		int pids[4 * N];
		char names[4 * N][16];
		int nq = qemus_of_run(x, pids, names, 4 * N);
		json_t *a = list(x), *g;
		size_t i;
		int ok = 0;
		why[0] = '\0';
		json_array_foreach(a, i, g) {
			const char *name = str(g, "name");
			int pid = (int)json_integer_value(json_object_get(g, "pid")), seen = 0;
			for (int k = 0; k < nq; k++)
				seen += !strcmp(names[k], name);
			if (strcmp(str(g, "state"), "running") || seen != 1) {
				snprintf(why + strlen(why), sizeof(why) - strlen(why), " %s: %s, %d QEMUs;",
				         name, str(g, "state"), seen);
				continue;
			}
			for (int k = 0; k < nq; k++)
				ok += !strcmp(names[k], name) && pids[k] == pid;
		}
		if (json_array_size(a) == N && ok == N && nq == N) {
			json_decref(a);
			return;
		}
		if (nq != N)
			snprintf(why + strlen(why), sizeof(why) - strlen(why), " %d QEMUs for %d "
			         "guests", nq, N);
		json_decref(a);
	}
	/* The whole log (cmocka cuts its message short), then the failure. */
	fprintf(stderr, "qsupd's log:\n%s\n", t_daemon_log(&x->d));
	fail_msg("seed %u: not every guest runs exactly once:%s (qsupd's log above)", seed, why);
}

static void start_all_async(struct fx *x)
{
	char name[16];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "g%02d", i);
		t_ctl_send(&x->c, "start", json_pack("{s:s}", "name", name));
	}
}

static void test_sigkill_during_starts(void **state)
{
	struct fx *x = *state;
	const char *env = getenv("QSUP_TEST_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
	printf("# seed %u (QSUP_TEST_SEED=%u replays it), using %s\n", seed, seed, t_accel());
	srand(seed);
	for (int round = 0; round < 3; round++) {
		start_daemon(x);
		start_all_async(x);   /* the first, then "already" */
		int ms = rand() % 1500;
		printf("# round %d: SIGKILL of qsupd %d ms after the starts were sent\n", round, ms);
		usleep((useconds_t)ms * 1000);
		t_daemon_kill9(&x->d);
	}
	/* The last qsupd: whatever it re-adopts, restarts or finds cut short,
	 * then every guest started (those never spawned yet). */
	start_daemon(x);
	start_all_async(x);
	assert_each_once(x, seed);
	json_t *a = list(x), *g;
	size_t i, adopted = 0;
	json_array_foreach(a, i, g)
		adopted += json_is_true(json_object_get(g, "adopted"));
	printf("# %zu of %d guests re-adopted by the last qsupd, the others started by it\n",
	       adopted, N);
	json_decref(a);
}

static void test_list_while_readopting(void **state)
{
	struct fx *x = *state;
	pid_t pids[N];
	char name[16];
	start_daemon(x);
	start_all_async(x);
	assert_each_once(x, 0);
	json_t *a = list(x), *g;
	size_t i;
	json_array_foreach(a, i, g)
		pids[i] = (pid_t)json_integer_value(json_object_get(g, "pid"));
	json_decref(a);
	t_daemon_kill9(&x->d);
	kill(pids[7], SIGSTOP);   /* g07: its QMP cannot answer until SIGCONT */
	start_daemon(x);          /* connects as soon as the socket takes it */
	a = list(x);
	assert_int_equal(json_array_size(a), N);
	int adopting = 0;
	json_array_foreach(a, i, g) {
		bool ing = json_is_true(json_object_get(g, "adopting"));
		assert_int_equal(json_integer_value(json_object_get(g, "pid")), pids[i]);
		assert_true(json_is_true(json_object_get(g, "adopted")));
		if (ing) {
			adopting++;
			assert_string_equal(str(g, "state"), "starting");
			assert_non_null(strstr(str(g, "reason"), "re-adopting QEMU pid"));
		} else {
			assert_string_equal(str(g, "state"), "running");
		}
	}
	json_t *g07 = json_array_get(a, 7);
	assert_true(json_is_true(json_object_get(g07, "adopting")));
	printf("# list answered with %d of %d guests still being re-adopted\n", adopting, N);
	json_decref(a);
	json_t *s = t_ctl_do(&x->c, "status", "g07", 5000, NULL);
	assert_non_null(s);
	assert_string_equal(str(s, "state"), "starting");
	assert_true(json_is_true(json_object_get(s, "adopting")));
	json_decref(s);
	/* A pause waits for the re-adoption: no answer while QEMU is frozen
	 * (it cannot finish), the paused guest once it is thawed. */
	long long id = t_ctl_send(&x->c, "pause", json_pack("{s:s}", "name", "g07"));
	json_t *r = t_ctl_reply(&x->c, id, 500);
	if (r)
		fail_msg("pause answered during the re-adoption: %s", json_dumps(r, 0));
	kill(pids[7], SIGCONT);
	r = t_ctl_reply(&x->c, id, 15000);
	assert_non_null(r);
	assert_string_equal(str(json_object_get(r, "return"), "state"), "paused");
	json_decref(r);
	s = t_ctl_do(&x->c, "status", "g07", 5000, NULL);
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pids[7]);
	assert_false(json_is_true(json_object_get(s, "adopting")));
	json_decref(s);
	for (int k = 0; k < N; k++) {
		snprintf(name, sizeof(name), "g%02d", k);
		s = t_ctl_do(&x->c, "status", name, 5000, NULL);
		assert_int_equal(json_integer_value(json_object_get(s, "pid")), pids[k]);
		json_decref(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sigkill_during_starts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_while_readopting, setup, teardown),
	};
	return cmocka_run_group_tests_name("readopt", tests, NULL, NULL);
}
