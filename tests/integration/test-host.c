/*
 * qsup on a host that boots and shuts down, against a real qsupd and real
 * QEMU: the guests unit's stop actions (contrib/qsup-guests: shutdown and
 * save, as systemd would run them), the stop ladder's repeated ACPI presses
 * for a guest still booting, bulk verbs (--all, --parallel, --timeout),
 * managed saves, and autostart once per boot with the operator's stop
 * remembered.
 *
 * A host reboot is played by what it does to qsupd's files: the run dir
 * is a tmpfs and comes back empty (state.json gone), or, for a run dir
 * that survives, the boot id recorded in state.json differs from the
 * kernel's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "testutil.h"

struct fx {
	struct t_daemon d;
	struct t_ctl c, ev;
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen;
	char defaults[600];
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_int_equal(t_daemon_init(&x->d), 0);
	x->c.fd = x->ev.fd = -1;
	uv_loop_init(&x->loop);
	snprintf(x->defaults, sizeof(x->defaults), "%s/defaults", x->d.dir);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	t_serial_close(&x->ser);
	t_loop_finish(&x->loop);
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	if (x->ev.fd >= 0)
		t_ctl_close(&x->ev);
	assert_int_equal(t_daemon_finish(&x->d), 0);
	free(x);
	return 0;
}

static void up(struct fx *x)
{
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	x->c.fd = -1;
	if (t_daemon_start(&x->d, NULL) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
}

static void down(struct fx *x)
{
	t_ctl_close(&x->c);
	x->c.fd = -1;
	assert_int_equal(t_daemon_stop(&x->d), 0);
}

static json_t *status(struct fx *x, const char *name)
{
	json_t *s = t_ctl_do(&x->c, "status", name, 5000, NULL);
	if (!s)
		fail_msg("status %s failed:\n%s", name, t_daemon_log(&x->d));
	return s;
}

static void start(struct fx *x, const char *name)
{
	json_t *s = t_ctl_do(&x->c, "start", name, 60000, NULL);
	if (!s)
		fail_msg("start %s failed:\n%s", name, t_daemon_log(&x->d));
	json_decref(s);
}

static void expect_state(struct fx *x, const char *name, const char *state, const char *reason)
{
	json_t *s = status(x, name);
	if (strcmp(t_str(s, "state"), state) || (reason && !strstr(t_str(s, "reason"), reason)))
		fail_msg("%s: %s (%s), not %s (%s)\n%s", name, t_str(s, "state"), t_str(s, "reason"),
		         state, reason ? reason : "any", t_daemon_log(&x->d));
	json_decref(s);
}

/* Wait up to 30 s for guest name to run (an autostart or a restore that
 * qsupd began on its own), then insist. */
static void wait_running(struct fx *x, const char *name)
{
	for (int i = 0; i < 600; i++) {
		json_t *s = status(x, name);
		bool running = !strcmp(t_str(s, "state"), "running");
		json_decref(s);
		if (running)
			return;
		usleep(50000);
	}
	expect_state(x, name, "running", NULL);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Run argv (a qsupctl or the guests script) with QSUP_SOCKET and the
 * settings file set; its output into out. Returns the exit status. */
static int run(struct fx *x, const char *const *argv, char *out, size_t size, int ms)
{
	char ctl[600];
	snprintf(ctl, sizeof(ctl), "%s", t_qsupctl());
	setenv("QSUP_SOCKET", x->d.sock, 1);
	setenv("QSUP_DEFAULTS", x->defaults, 1);
	setenv("QSUPCTL", ctl, 1);
	int rc = t_run_capture(argv, out, size, ms);
	printf("# %s %s: exit %d\n", argv[0], argv[1] ? argv[1] : "", rc);
	return rc;
}

static int guests_unit(struct fx *x, const char *action, char *out, size_t size)
{
	char script[600];
	snprintf(script, sizeof(script), "%s/contrib/qsup-guests", t_srcdir());
	const char *argv[] = { script, action, NULL };
	return run(x, argv, out, size, 150000);
}

/* The highest QSUP-COUNTER on the console so far. */
static long last_counter(struct fx *x)
{
	long n = -1;
	for (const char *p = x->ser.buf; p && (p = strstr(p, "QSUP-COUNTER ")); p++)
		n = strtol(p + 13, NULL, 10) > n ? strtol(p + 13, NULL, 10) : n;
	return n;
}

static void console(struct fx *x, const char *name)
{
	t_serial_close(&x->ser);
	t_loop_finish(&x->loop);
	memset(&x->ser, 0, sizeof(x->ser));
	x->seen = 0;
	assert_int_equal(t_ctl_console(&x->c, name, &x->loop, &x->ser), 0);
}

/* The run dir's record of guest name: replace its boot id, as if the
 * host had rebooted with a run dir that outlived the reboot. */
static void other_boot(struct fx *x, const char *name)
{
	char path[700], *text;
	snprintf(path, sizeof(path), "%s/%s/state.json", x->d.run, name);
	json_error_t je;
	json_t *st = json_load_file(path, 0, &je);
	if (!st)
		fail_msg("%s: %s", path, je.text);
	assert_non_null(json_object_get(st, "autostart_boot"));   /* it was recorded */
	json_object_set_new(st, "autostart_boot",
	                    json_string("00000000-0000-4000-8000-000000000000"));
	text = json_dumps(st, 0);
	write_file(path, text);
	free(text);
	json_decref(st);
}

/* The settings file's shutdown action: two tiny guests stopped while
 * they are still booting. The first ACPI press comes before the kernel
 * listens and is lost; the ladder presses again, and both power off
 * through ACPI (not quit or signals), stopped in parallel. */
static void test_unit_shutdown_while_booting(void **state)
{
	struct fx *x = *state;
	char out[16384];
	t_daemon_tiny_profile(&x->d, "h1", "");
	t_daemon_tiny_profile(&x->d, "h2", "");
	write_file(x->defaults, "ON_SHUTDOWN=shutdown\nPARALLEL=0\nSHUTDOWN_TIMEOUT=90\n");
	up(x);
	start(x, "h1");
	start(x, "h2");
	printf("# using tcg (the tiny guest's kernel must see the ACPI button)\n");
	int rc = guests_unit(x, "stop", out, sizeof(out));
	printf("%s", out);
	if (rc != 0 || !strstr(out, "stop: 2 guests: 2 done, 0 failed"))
		fail_msg("qsup-guests stop: exit %d:\n%s\n%s", rc, out, t_daemon_log(&x->d));
	assert_non_null(strstr(out, "h1: ACPI power-off sent; waiting up to 90 s"));
	assert_non_null(strstr(out, "pressed the power button again"));
	assert_null(strstr(out, "asking QEMU to quit"));
	expect_state(x, "h1", "stopped", "guest powered off");
	expect_state(x, "h2", "stopped", "guest powered off");
	/* Nothing left to stop: still a success, said so. */
	rc = guests_unit(x, "stop", out, sizeof(out));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "stop: no guest to stop"));
}

/* The save action: the guest is saved at shutdown; a qsupd restarted in
 * the same boot leaves it alone; after a reboot qsupd resumes it (its
 * counter goes on, no new boot) and removes the file. */
static void test_unit_save_then_boot(void **state)
{
	struct fx *x = *state;
	char out[16384], saved[700];
	t_daemon_tiny_profile(&x->d, "s1", "append = qsup.counter\n");
	write_file(x->defaults, "ON_SHUTDOWN=save\n");
	up(x);
	start(x, "s1");
	console(x, "s1");
	if (t_serial_wait(&x->ser, "QSUP-COUNTER 2", &x->seen, 60000) < 0)
		fail_msg("no counter:\n%s", x->ser.buf ? x->ser.buf : "");
	printf("# using tcg (a guest kernel with its counter)\n");
	int rc = guests_unit(x, "stop", out, sizeof(out));
	printf("%s", out);
	if (rc != 0 || !strstr(out, "save: 1 guest: 1 done, 0 failed"))
		fail_msg("qsup-guests stop (save): exit %d:\n%s\n%s", rc, out, t_daemon_log(&x->d));
	assert_non_null(strstr(out, "stop: no guest to stop"));
	long before = last_counter(x);
	json_t *s = status(x, "s1");
	assert_string_equal(t_str(s, "state"), "stopped");
	snprintf(saved, sizeof(saved), "%s", t_str(s, "saved_state"));
	json_decref(s);
	assert_true(access(saved, F_OK) == 0);
	printf("# note: saved to %s at counter %ld\n", saved, before);

	/* qsupd restarts, same boot: the saved guest stays down. */
	down(x);
	up(x);
	expect_state(x, "s1", "stopped", NULL);
	assert_true(access(saved, F_OK) == 0);

	/* The host reboots: the run dir's tmpfs comes back empty. */
	down(x);
	char path[700];
	snprintf(path, sizeof(path), "%s/s1/state.json", x->d.run);
	assert_int_equal(unlink(path), 0);
	up(x);
	wait_running(x, "s1");   /* the restore takes a moment */
	expect_state(x, "s1", "running", "restored from");
	assert_true(access(saved, F_OK) != 0);   /* removed once it ran */
	console(x, "s1");
	char want[64];
	snprintf(want, sizeof(want), "QSUP-COUNTER %ld", before + 2);
	if (t_serial_wait(&x->ser, want, &x->seen, 20000) < 0)
		fail_msg("counter did not go on from %ld:\n%s", before, x->ser.buf ? x->ser.buf : "");
	assert_null(strstr(x->ser.buf, "QSUP-GUEST-READY"));   /* resumed, not booted */
	/* The boot action only reports. */
	rc = guests_unit(x, "start", out, sizeof(out));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "s1"));
}

static const char *firmware_profile = "[guest]\nmemory = 64M\naccel = kvm:tcg\nautostart = yes\n";

/* Autostart once per boot: an operator's stop survives a qsupd restart
 * (status says who stopped it, and when), a new boot starts it again. */
static void test_autostart_once_per_boot(void **state)
{
	struct fx *x = *state;
	t_daemon_profile(&x->d, "a1", firmware_profile);
	t_daemon_profile(&x->d, "a2", firmware_profile);
	up(x);
	printf("# accel kvm:tcg, firmware only: %s\n", t_accel());
	wait_running(x, "a1");   /* autostart is under way */
	wait_running(x, "a2");
	json_t *s = t_ctl_do(&x->c, "kill", "a1", 10000, NULL);
	assert_non_null(s);
	json_decref(s);
	s = status(x, "a1");
	assert_true(json_is_true(json_object_get(s, "autostart")));
	assert_true(json_is_string(json_object_get(s, "operator_stop")));
	printf("# note: a1 stopped by the operator at %s\n", t_str(s, "operator_stop"));
	json_decref(s);

	/* The qsupd restart of an upgrade: a2 is re-adopted, a1 stays down. */
	down(x);
	up(x);
	usleep(300000);
	expect_state(x, "a1", "stopped", NULL);
	s = status(x, "a1");
	assert_true(json_is_string(json_object_get(s, "operator_stop")));
	json_decref(s);
	s = status(x, "a2");
	assert_true(json_is_true(json_object_get(s, "adopted")));
	json_decref(s);

	/* The table says it too. */
	char out[8192];
	const char *argv[] = { t_qsupctl(), "status", "a1", NULL };
	assert_int_equal(run(x, argv, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "autostart:      yes; stopped by the operator at "));

	/* A reboot with a run dir that survived it: a1 starts again. */
	down(x);
	other_boot(x, "a1");
	up(x);
	wait_running(x, "a1");
	s = status(x, "a1");
	assert_true(json_is_null(json_object_get(s, "operator_stop")));
	json_decref(s);
	/* An explicit start forgets the operator's stop as well. */
	s = t_ctl_do(&x->c, "kill", "a2", 10000, NULL);
	json_decref(s);
	start(x, "a2");
	s = status(x, "a2");
	assert_true(json_is_null(json_object_get(s, "operator_stop")));
	json_decref(s);
	const char *kill_all[] = { t_qsupctl(), "kill", "--all", NULL };
	assert_int_equal(run(x, kill_all, out, sizeof(out), 20000), 0);
	assert_non_null(strstr(out, "kill: 2 guests: 2 done, 0 failed"));
}

/* --parallel 1: one stop at a time (each guest's stop ends before the next
 * begins, in the daemon's own events); --timeout bounds the ACPI wait of a
 * guest that has no OS to hear it, then the ladder goes on to quit. */
static void test_parallel_and_timeout(void **state)
{
	struct fx *x = *state;
	char out[16384];
	const char *fw = "[guest]\nmemory = 64M\naccel = kvm:tcg\n";
	t_daemon_profile(&x->d, "p1", fw);
	t_daemon_profile(&x->d, "p2", fw);
	up(x);
	printf("# accel kvm:tcg, firmware only: %s\n", t_accel());
	start(x, "p1");
	start(x, "p2");
	assert_int_equal(t_ctl_open(&x->ev, x->d.sock), 0);
	json_t *r = t_ctl_call(&x->ev, "subscribe", NULL, 5000);
	json_decref(r);
	const char *argv[] = { t_qsupctl(), "stop", "--all", "--parallel", "1", "--timeout", "1",
	                       NULL };
	int rc = run(x, argv, out, sizeof(out), 60000);
	printf("%s", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "stop: 2 guests: 2 done, 0 failed"));
	assert_non_null(strstr(out, "p1: ACPI power-off sent; waiting up to 1 s"));
	assert_non_null(strstr(out, "p1: no power-off; asking QEMU to quit"));
	/* The order of the daemon's state changes. */
	int seq = 0, p1_stopped = 0, p2_stopping = 0;
	json_t *ev;
	while ((!p1_stopped || !p2_stopping) && (ev = t_ctl_next(&x->ev, 5000))) {
		const char *e = json_string_value(json_object_get(ev, "event"));
		json_t *d = json_object_get(ev, "data");
		if (e && !strcmp(e, "GUEST_STATE")) {
			seq++;
			if (!strcmp(t_str(d, "name"), "p1") && !strcmp(t_str(d, "state"), "stopped"))
				p1_stopped = seq;
			if (!strcmp(t_str(d, "name"), "p2") && !strcmp(t_str(d, "state"), "stopping"))
				p2_stopping = seq;
		}
		json_decref(ev);
	}
	assert_true(p1_stopped > 0 && p2_stopping > p1_stopped);
	expect_state(x, "p1", "stopped", NULL);
	expect_state(x, "p2", "stopped", NULL);
}

/* Bad input: the CLI refuses before connecting, the daemon refuses a bad
 * timeout and stays up, the guests script refuses a bad setting, and a
 * settings file it cannot read leaves the defaults. */
static void test_bad_input(void **state)
{
	struct fx *x = *state;
	char out[8192];
	t_daemon_profile(&x->d, "b1", "[guest]\nmemory = 64M\naccel = kvm:tcg\n");
	up(x);
	static const char *const bad[][8] = {
		{ "stop", "--all", "b1", NULL },
		{ "stop", "--parallel", "x", "--all", NULL },
		{ "stop", "--timeout", "0", "b1", NULL },
		{ "stop", "--timeout", "1e3", "b1", NULL },
		{ "start", "--timeout", "5", "b1", NULL },
		{ "pause", "--all", NULL },
		{ "save", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[10] = { t_qsupctl() };
		for (int j = 0; bad[i][j]; j++)
			argv[j + 1] = bad[i][j];
		int rc = run(x, argv, out, sizeof(out), 10000);
		if (rc != 2)
			fail_msg("qsupctl %s %s: exit %d, not 2:\n%s", bad[i][0], bad[i][1], rc, out);
		assert_non_null(strstr(out, "qsupctl:"));
	}
	const char *cls = NULL;
	json_t *r = t_ctl_call(&x->c, "stop", json_pack("{s:s, s:i}", "name", "b1", "timeout", -1),
	                       5000);
	assert_non_null(r);
	cls = json_string_value(json_object_get(json_object_get(r, "error"), "class"));
	assert_non_null(cls);
	assert_string_equal(cls, "InvalidArgument");
	json_decref(r);
	r = t_ctl_call(&x->c, "restore", json_pack("{s:s}", "name", "b1"), 5000);
	assert_non_null(strstr(t_str(json_object_get(r, "error"), "desc"), "no saved state"));
	json_decref(r);
	expect_state(x, "b1", "stopped", NULL);   /* and the daemon is up */

	write_file(x->defaults, "ON_SHUTDOWN=hibernate\n");
	assert_int_equal(guests_unit(x, "stop", out, sizeof(out)), 2);
	assert_non_null(strstr(out, "ON_SHUTDOWN must be shutdown, save or none, not 'hibernate'"));
	write_file(x->defaults, "PARALLEL=two\n");
	assert_int_equal(guests_unit(x, "stop", out, sizeof(out)), 2);
	assert_non_null(strstr(out, "PARALLEL must be a whole number"));
	assert_int_equal(guests_unit(x, "reboot", out, sizeof(out)), 2);
	write_file(x->defaults, "ON_SHUTDOWN=none\n");
	assert_int_equal(guests_unit(x, "stop", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "leaving the guests running"));
	/* A settings file that cannot be read: a directory stands in for one
	 * (root reads any file). */
	assert_int_equal(unlink(x->defaults), 0);
	assert_int_equal(mkdir(x->defaults, 0700), 0);
	assert_int_equal(guests_unit(x, "stop", out, sizeof(out)), 0);
	printf("%s", out);
	assert_non_null(strstr(out, "stop: no guest to stop"));
	rmdir(x->defaults);
	/* No qsupd: nothing to stop is not a failure of the unit. */
	down(x);
	assert_int_equal(guests_unit(x, "stop", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "qsupd is not running"));
	up(x);
}

/* A profile dir that is not there (a fresh host, a typo): qsupd says so,
 * keeps running, and a reload once it exists picks the profiles up. */
static void test_missing_profile_dir(void **state)
{
	struct fx *x = *state;
	char out[8192], dir[700];
	snprintf(dir, sizeof(dir), "%s/not-yet", x->d.dir);
	const char *const extra[] = { "--profiles", dir, NULL };
	if (t_daemon_start(&x->d, extra) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_non_null(strstr(t_daemon_log(&x->d), "not-yet: No such file or directory; create "
	                       "it, add profiles, then reload (SIGHUP)"));
	const char *reload[] = { t_qsupctl(), "reload", NULL };
	assert_int_equal(run(x, reload, out, sizeof(out), 10000), 1);
	assert_non_null(strstr(out, "not-yet: No such file or directory"));
	assert_int_equal(mkdir(dir, 0755), 0);
	char path[800];
	snprintf(path, sizeof(path), "%s/late.ini", dir);
	write_file(path, "[guest]\nmemory = 64M\naccel = kvm:tcg\n");
	assert_int_equal(run(x, reload, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "late"));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
	expect_state(x, "late", "stopped", NULL);
}

/* Wait up to ms for qsupd to exit; its exit status, or -1. */
static int daemon_exit(struct fx *x, int ms)
{
	int st;
	for (int i = 0; i < ms / 10; i++) {
		if (waitpid(x->d.pid, &st, WNOHANG) == x->d.pid) {
			x->d.pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(10000);
	}
	return -1;
}

/* Wait until the log (one file for every qsupd of the test) holds text
 * n times. */
static bool log_says(struct fx *x, const char *text, int n, int ms)
{
	for (int i = 0; i < ms / 20; i++) {
		int seen = 0;
		for (const char *p = t_daemon_log(&x->d); (p = strstr(p, text)); p++)
			seen++;
		if (seen >= n)
			return true;
		usleep(20000);
	}
	return false;
}

/* make run: qsupd --stop-guests-on-exit. Ctrl-C while the guest boots
 * says what it does and ends with the guest powered off (the ladder
 * presses again); with a guest that never powers off, a second Ctrl-C
 * kills it and qsupd exits, leaving no QEMU. */
static void test_ctrl_c_twice(void **state)
{
	struct fx *x = *state;
	const char *const extra[] = { "--stop-guests-on-exit", NULL };
	t_daemon_tiny_profile(&x->d, "boot", "");
	t_daemon_profile(&x->d, "fw", "[guest]\nmemory = 64M\naccel = kvm:tcg\n");
	if (t_daemon_start(&x->d, extra) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
	start(x, "boot");
	json_t *s = status(x, "boot");
	pid_t qemu = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	printf("# using tcg (the tiny guest boots while Ctrl-C comes)\n");
	kill(x->d.pid, SIGINT);
	if (!log_says(x, "stopping 1 guest (ACPI power-off, pressed again every 5 s), then "
	              "exiting; a second signal (Ctrl-C) kills them", 1, 5000))
		fail_msg("no word of the stop:\n%s", t_daemon_log(&x->d));
	int rc = daemon_exit(x, 90000);
	if (rc != 0)
		fail_msg("qsupd: %d:\n%s", rc, t_daemon_log(&x->d));
	assert_non_null(strstr(t_daemon_log(&x->d), "guest powered off"));
	assert_false(t_pid_alive(qemu));

	t_ctl_close(&x->c);
	x->c.fd = -1;
	if (t_daemon_start(&x->d, extra) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
	start(x, "fw");
	s = status(x, "fw");
	qemu = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	printf("# accel kvm:tcg, firmware only: %s\n", t_accel());
	kill(x->d.pid, SIGINT);
	/* The second qsupd's word, before the second signal (two signals that
	 * come before the first is handled are one). */
	assert_true(log_says(x, "a second signal (Ctrl-C) kills them", 2, 5000));
	kill(x->d.pid, SIGINT);
	rc = daemon_exit(x, 20000);
	if (rc != 0)
		fail_msg("qsupd: %d:\n%s", rc, t_daemon_log(&x->d));
	assert_non_null(strstr(t_daemon_log(&x->d), "second signal: killing the guests"));
	assert_false(t_pid_alive(qemu));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unit_shutdown_while_booting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unit_save_then_boot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_autostart_once_per_boot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parallel_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl_c_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_profile_dir, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
