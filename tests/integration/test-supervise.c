/*
 * Crash supervision against a real daemon and real QEMU: why a guest ended,
 * restarts with backoff, the crash loop that ends in `failed`, guest power
 * off and panic under each policy.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "probe.h"
#include "tdaemon.h"
#include "testutil.h"

struct fx {
	struct t_daemon d;
	struct t_ctl c, ev;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_int_equal(t_daemon_init(&x->d), 0);
	x->c.fd = x->ev.fd = -1;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	if (x->ev.fd >= 0)
		t_ctl_close(&x->ev);
	int status = t_daemon_finish(&x->d);
	assert_int_equal(status, 0);
	free(x);
	return 0;
}

static void start_daemon_with(struct fx *x, const char *const *extra)
{
	if (t_daemon_start(&x->d, extra) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
	assert_int_equal(t_ctl_open(&x->ev, x->d.sock), 0);
	json_decref(t_ctl_call(&x->ev, "subscribe", NULL, 5000));
}

static void start_daemon(struct fx *x)
{
	start_daemon_with(x, NULL);
}

#define str t_str

static json_t *status(struct fx *x, const char *name)
{
	json_t *s = t_ctl_do(&x->c, "status", name, 5000, NULL);
	assert_non_null(s);
	return s;
}

static pid_t pid_of(struct fx *x, const char *name)
{
	json_t *s = status(x, name);
	pid_t pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	return pid;
}

/* The next GUEST_STATE event of name entering state; returns its reason
 * (static copy). */
static const char *wait_state(struct fx *x, const char *name, const char *state, int ms)
{
	static char reason[1024];
	json_t *e = t_ctl_wait_state(&x->ev, name, state, ms);
	if (!e)
		fail_msg("%s never became %s; log:\n%s", name, state, t_daemon_log(&x->d));
	snprintf(reason, sizeof(reason), "%s", str(json_object_get(e, "data"), "reason"));
	json_decref(e);
	return reason;
}

static void start_guest(struct fx *x, const char *name)
{
	json_t *s = t_ctl_do(&x->c, "start", name, 60000, NULL);
	if (!s)
		fail_msg("start %s failed; log:\n%s", name, t_daemon_log(&x->d));
	json_decref(s);
	wait_state(x, name, "starting", 1000);
	wait_state(x, name, "running", 1000);
}

#define FW "[guest]\nmemory = 64M\naccel = kvm:tcg\n"

/* kill -9 QEMU: restarted after delay, delay doubling per consecutive crash
 * up to max-delay, and back to delay after a stable run. */
static void test_kill9_backoff_and_stable_reset(void **state)
{
	struct fx *x = *state;
	t_daemon_profile(&x->d, "crashy", FW "[restart]\npolicy = on-failure\ndelay = 200ms\n"
	                 "max-delay = 700ms\nburst = 10\ninterval = 60s\nstable = 2s\n");
	start_daemon(x);
	printf("# using %s\n", t_accel());
	start_guest(x, "crashy");
	const char *want[] = { "0.2s", "0.4s", "0.7s" };
	for (int i = 0; i < 3; i++) {
		pid_t pid = pid_of(x, "crashy");
		kill(pid, SIGKILL);
		const char *why = wait_state(x, "crashy", "backoff", 5000);
		if (!strstr(why, "QEMU crashed: killed by signal 9 (SIGKILL)") ||
		    !strstr(why, want[i]))
			fail_msg("crash %d: reason '%s', expected a delay of %s", i + 1, why, want[i]);
		json_t *s = status(x, "crashy");
		assert_string_equal(str(s, "last_exit"), "crash");
		json_decref(s);
		wait_state(x, "crashy", "running", 10000);
		assert_true(pid_of(x, "crashy") != pid);
	}
	json_t *s = status(x, "crashy");
	assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 3);
	json_decref(s);
	sleep(3);   /* longer than stable = 2s */
	kill(pid_of(x, "crashy"), SIGKILL);
	const char *why = wait_state(x, "crashy", "backoff", 5000);
	if (!strstr(why, "restarting in 0.2s"))
		fail_msg("after a stable run the delay should be back to 0.2s: %s", why);
	wait_state(x, "crashy", "running", 10000);
}

/* A guest that ran and crashed is restarted by its policy, also when its
 * restarts fail before the guest runs (its disk went away): those count,
 * each after the minimum gap, and burst of them leave it failed, with no
 * more spawns; reset-failed re-arms it. (A start by anyone else that fails
 * before the guest runs is never retried: test-startfail.c.) */
static void test_crash_loop_to_failed(void **state)
{
	struct fx *x = *state;
	char img[700];
	t_daemon_profile(&x->d, "loop", FW "[disk.root]\nfile = loop.img\nformat = raw\n"
	                 "[restart]\ndelay = 0\nburst = 3\ninterval = 60s\n");
	snprintf(img, sizeof(img), "%s/loop.img", x->d.profiles);
	FILE *f = fopen(img, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 1 << 20), 0);
	fclose(f);
	start_daemon(x);
	start_guest(x, "loop");
	assert_int_equal(unlink(img), 0);
	kill(pid_of(x, "loop"), SIGKILL);
	const char *why = wait_state(x, "loop", "backoff", 5000);
	assert_non_null(strstr(why, "QEMU crashed"));
	for (int i = 0; i < 2; i++) {   /* restarts 1 and 2 fail, and go on */
		wait_state(x, "loop", "starting", 5000);
		why = wait_state(x, "loop", "backoff", 10000);
		assert_non_null(strstr(why, "start failed"));
		assert_non_null(strstr(why, "loop.img"));
		assert_non_null(strstr(why, "restarting in 1.0s"));   /* the minimum gap */
	}
	wait_state(x, "loop", "starting", 5000);   /* restart 3 fails too */
	why = wait_state(x, "loop", "failed", 10000);
	printf("# note: %s\n", why);
	assert_non_null(strstr(why, "3 restarts within 60s"));
	json_t *s = status(x, "loop");
	assert_string_equal(str(s, "state"), "failed");
	assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 3);
	json_decref(s);
	/* No further spawn. */
	json_t *e = t_ctl_wait_state(&x->ev, "loop", "starting", 2500);
	assert_null(e);
	s = t_ctl_do(&x->c, "reset-failed", "loop", 5000, NULL);
	assert_string_equal(str(s, "state"), "stopped");
	json_decref(s);
}

static void write_tiny(struct fx *x, const char *name, const char *policy)
{
	char extra[128];
	snprintf(extra, sizeof(extra), "[restart]\npolicy = %s\ndelay = 0\n", policy);
	t_daemon_tiny_profile(&x->d, name, extra);
}

/* Wait for the guest's ready marker on its console. */
static void wait_ready(struct fx *x, const char *name)
{
	uv_loop_t loop;
	struct t_serial ser;
	assert_int_equal(t_ctl_console(&x->c, name, &loop, &ser), 0);
	/* The console keeps nothing for a late reader: ask until it answers. */
	size_t seen = 0;
	for (int i = 0; i < 30; i++) {
		t_serial_write(&ser, "ping");
		if (t_serial_wait(&ser, "QSUP-PONG", &seen, 2000) == 0)
			break;
		seen = 0;
		if (t_serial_wait(&ser, "QSUP-GUEST-READY", &seen, 0) == 0)
			break;
	}
	if (!ser.buf || (!strstr(ser.buf, "QSUP-PONG") && !strstr(ser.buf, "QSUP-GUEST-READY")))
		fail_msg("%s: not ready:\n%s", name, ser.buf ? ser.buf : "");
	t_serial_close(&ser);
	t_loop_finish(&loop);
}

/* The guest powers itself off (ACPI S5, as after the power button): qsupd's
 * qmp verb refuses system_powerdown, so ask the guest on its console. */
static void guest_poweroff(struct fx *x, const char *name)
{
	uv_loop_t loop;
	struct t_serial ser;
	assert_int_equal(t_ctl_console(&x->c, name, &loop, &ser), 0);
	assert_int_equal(t_serial_write(&ser, "poweroff"), 0);
	t_run_for(&loop, 100);
	t_serial_close(&ser);
	t_loop_finish(&loop);
}

/* The guest powering itself off is no failure: on-failure leaves it off,
 * always starts it again. */
static void test_guest_poweroff_by_policy(void **state)
{
	struct fx *x = *state;
	write_tiny(x, "calm", "on-failure");
	write_tiny(x, "eager", "always");
	start_daemon(x);
	printf("# using tcg (a guest kernel)\n");
	start_guest(x, "calm");
	start_guest(x, "eager");
	wait_ready(x, "calm");
	wait_ready(x, "eager");
	guest_poweroff(x, "calm");
	guest_poweroff(x, "eager");
	assert_string_equal(wait_state(x, "calm", "stopped", 30000), "guest powered off");
	json_t *s = status(x, "calm");
	assert_string_equal(str(s, "last_exit"), "poweroff");
	json_decref(s);
	assert_non_null(strstr(wait_state(x, "eager", "backoff", 30000), "guest powered off"));
	wait_state(x, "eager", "running", 30000);
	s = status(x, "eager");
	assert_string_equal(str(s, "last_exit"), "poweroff");
	assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 1);
	json_decref(s);
}

/* A panic (pvpanic's GUEST_PANICKED) is a failure: restarted. */
static void test_guest_panic_restarted(void **state)
{
	struct fx *x = *state;
	write_tiny(x, "panicky", "on-failure");
	start_daemon(x);
	start_guest(x, "panicky");
	uv_loop_t loop;
	struct t_serial ser;
	assert_int_equal(t_ctl_console(&x->c, "panicky", &loop, &ser), 0);
	size_t seen = 0;
	if (t_serial_wait(&ser, "QSUP-GUEST-READY", &seen, 60000) < 0)
		fail_msg("no ready marker:\n%s", ser.buf ? ser.buf : "");
	assert_int_equal(t_serial_write(&ser, "panic"), 0);
	t_run_for(&loop, 100);
	const char *why = wait_state(x, "panicky", "backoff", 30000);
	printf("# note: %s\n", why);
	assert_non_null(strstr(why, "guest panicked"));
	json_t *s = status(x, "panicky");
	assert_string_equal(str(s, "last_exit"), "panic");
	json_decref(s);
	wait_state(x, "panicky", "running", 30000);
	t_serial_close(&ser);
	t_loop_finish(&loop);
}

/* SIGTERM from outside qsup: QEMU shuts down cleanly (SHUTDOWN host-signal),
 * but the guest was killed: a crash, restarted. A quit asked over QMP (a
 * monitor of the profile's own, since qsupd's qmp verb refuses quit) is
 * not. */
static void test_outside_sigterm_is_a_crash(void **state)
{
	struct fx *x = *state;
	char text[1024], mon[600];
	/* A second monitor in the one dir QEMU's identity may write in, which
	 * it reaches through the fd it inherits (RUNDIR/NAME/qemu). */
	snprintf(mon, sizeof(mon), "%s/term/qemu/extra-qmp.sock", x->d.run);
	snprintf(text, sizeof(text), FW "[restart]\ndelay = 0\n[qemu]\nextra-arg = -qmp\n"
	         "extra-arg = unix:/proc/self/fd/6/extra-qmp.sock,server=on,wait=off\n");
	t_daemon_profile(&x->d, "term", text);
	start_daemon(x);
	start_guest(x, "term");
	kill(pid_of(x, "term"), SIGTERM);
	const char *why = wait_state(x, "term", "backoff", 10000);
	assert_non_null(strstr(why, "host-signal"));
	wait_state(x, "term", "running", 10000);
	json_t *s = status(x, "term");
	assert_string_equal(str(s, "last_exit"), "crash");
	json_decref(s);
	uv_loop_t loop;
	struct t_qmp q;
	uv_loop_init(&loop);
	assert_int_equal(t_qmp_open(&loop, &q, mon, 5000), 0);
	t_qmp_exec(&q, "quit", NULL, NULL);   /* QEMU may go before it replies */
	t_qmp_close(&q);
	t_loop_finish(&loop);
	assert_string_equal(wait_state(x, "term", "stopped", 10000), "QEMU quit (SHUTDOWN host-qmp-quit)");
	s = status(x, "term");
	assert_string_equal(str(s, "last_exit"), "quit");
	json_decref(s);
}

/* An operator's stop never restarts, whatever the policy. */
static void test_operator_stop_never_restarts(void **state)
{
	struct fx *x = *state;
	t_daemon_profile(&x->d, "keep", FW "[restart]\npolicy = always\ndelay = 0\n"
	                 "[shutdown]\ntimeout = 1s\n");
	start_daemon(x);
	start_guest(x, "keep");
	json_t *s = t_ctl_do(&x->c, "kill", "keep", 10000, NULL);
	assert_string_equal(str(s, "state"), "stopped");
	assert_string_equal(str(s, "last_exit"), "operator");
	json_decref(s);
	assert_null(t_ctl_wait_state(&x->ev, "keep", "starting", 1500));
}

/* Wait (polling status) until name is in state; returns its status. */
static json_t *poll_state(struct fx *x, const char *name, const char *state, int ms)
{
	char last[1200] = "";
	for (int waited = 0; waited <= ms; waited += 50) {
		json_t *s = status(x, name);
		if (strcmp(str(s, "state"), state) == 0)
			return s;
		snprintf(last, sizeof(last), "%s (%s)", str(s, "state"), str(s, "reason"));
		json_decref(s);
		usleep(50000);
	}
	const char *log = t_daemon_log(&x->d);
	fail_msg("%s never became %s, last %s; log:\n%s", name, state, last,
	         strlen(log) > 2000 ? log + strlen(log) - 2000 : log);
	return NULL;
}

/* SIGKILL qsupd with 10 guests running (and an 11th that is killed while
 * qsupd is down), start qsupd again: 10 of 10 re-adopted with the same pids
 * and nothing restarted; the dead one detected and restarted per policy. */
static void test_readopt_after_daemon_sigkill(void **state)
{
	struct fx *x = *state;
	char name[16];
	pid_t pids[11];   /* r0..r9 live on; r10 dies while qsupd is down */
	for (int i = 0; i < 11; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		t_daemon_profile(&x->d, name, FW "[restart]\ndelay = 0\n");
	}
	start_daemon(x);
	for (int i = 0; i < 11; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		start_guest(x, name);
		pids[i] = pid_of(x, name);
	}
	t_ctl_close(&x->c);
	t_ctl_close(&x->ev);
	t_daemon_kill9(&x->d);
	for (int i = 0; i < 11; i++)
		assert_true(t_pid_alive(pids[i]));
	kill(pids[10], SIGKILL);   /* dies while nobody watches */
	double t0 = t_now();
	start_daemon(x);
	for (int i = 0; i < 11; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		json_t *s = poll_state(x, name, "running", 20000);
		if (i == 10) {
			assert_true(json_integer_value(json_object_get(s, "pid")) != pids[10]);
			if (strcmp(str(s, "last_exit"), "crash") != 0)
				fail_msg("r10: last exit %s (%s)", str(s, "last_exit"), str(s, "reason"));
			assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 1);
		} else {
			assert_int_equal(json_integer_value(json_object_get(s, "pid")), pids[i]);
			assert_non_null(strstr(str(s, "reason"), "re-adopted"));
			assert_true(json_is_true(json_object_get(s, "adopted")));
			assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 0);
		}
		json_decref(s);
	}
	printf("# note: 10 of 10 re-adopted, 1 restarted, %.2f s after qsupd started again\n",
	       t_now() - t0);
	/* An adopted guest is still fully driven: pause over QMP, then kill. */
	json_t *s = t_ctl_do(&x->c, "pause", "r0", 5000, NULL);
	assert_string_equal(str(s, "state"), "paused");
	json_decref(s);
	s = t_ctl_do(&x->c, "kill", "r0", 10000, NULL);
	assert_string_equal(str(s, "state"), "stopped");
	assert_string_equal(str(s, "last_exit"), "operator");
	json_decref(s);
	assert_false(t_pid_alive(pids[0]));
	/* And one that crashes after adoption is restarted. */
	kill(pids[1], SIGKILL);
	wait_state(x, "r1", "backoff", 10000);
	wait_state(x, "r1", "running", 10000);
}

/* A QEMU frozen (SIGSTOP) across a qsupd restart cannot answer its
 * re-adoption within QMP's deadline (10 s): what it runs is unknown, so
 * the guest stays starting ("adopting": true) and qsupd asks again, never
 * calling it paused or killing it; once thawed it is re-adopted, running,
 * with the same pid. The guest halts at once (no guest code runs): what is
 * tested is QMP, and SeaBIOS thawed under the paravirtual KVM of the test
 * hosts may stop on an internal error, whose new QEMU is not the point. */
static void test_readopt_frozen_qemu(void **state)
{
	struct fx *x = *state;
	char rom[700], text[1024];
	assert_int_equal(t_daemon_halt_rom(&x->d, rom, sizeof(rom)), 0);
	snprintf(text, sizeof(text), FW "bios = %s\n", rom);
	t_daemon_profile(&x->d, "frz", text);
	start_daemon(x);
	start_guest(x, "frz");
	pid_t pid = pid_of(x, "frz");
	t_ctl_close(&x->c);
	t_ctl_close(&x->ev);
	t_daemon_kill9(&x->d);
	kill(pid, SIGSTOP);
	double t0 = t_now();
	start_daemon(x);
	/* A verb that waits for the re-adoption gets an error once an attempt
	 * ends without QEMU's answer, not a wait without end. */
	long long id = t_ctl_send(&x->c, "pause", json_pack("{s:s}", "name", "frz"));
	json_t *r = t_ctl_reply(&x->c, id, 40000);
	assert_non_null(r);
	if (!json_object_get(r, "error") ||
	    !strstr(str(json_object_get(r, "error"), "desc"), "still being re-adopted"))
		fail_msg("pause during a frozen re-adoption: %s", json_dumps(r, 0));
	printf("# note: a pause waiting on the re-adoption got its error %.1f s on\n",
	       t_now() - t0);
	json_decref(r);
	const char *again = "gave no QMP answer in time";
	for (int waited = 0; !t_daemon_log_has(&x->d, again); waited += 100) {
		if (waited > 40000) {
			kill(pid, SIGCONT);
			fail_msg("no second attempt 40 s on; log:\n%s", t_daemon_log(&x->d));
		}
		usleep(100000);
	}
	printf("# note: first re-adoption attempt gave up %.1f s after qsupd started\n",
	       t_now() - t0);
	usleep(300000);
	json_t *s = status(x, "frz");
	assert_string_equal(str(s, "state"), "starting");
	assert_true(json_is_true(json_object_get(s, "adopting")));
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid);
	json_decref(s);
	assert_true(t_pid_alive(pid));
	kill(pid, SIGCONT);
	s = poll_state(x, "frz", "running", 20000);
	if (json_integer_value(json_object_get(s, "pid")) != pid)
		fail_msg("running again, but as pid %lld, not the frozen %d; log:\n%s",
		         (long long)json_integer_value(json_object_get(s, "pid")), (int)pid,
		         t_daemon_log(&x->d));
	assert_false(json_is_true(json_object_get(s, "adopting")));
	assert_non_null(strstr(str(s, "reason"), "re-adopted"));
	json_decref(s);
	s = t_ctl_do(&x->c, "pause", "frz", 5000, NULL);   /* QMP is back */
	assert_string_equal(str(s, "state"), "paused");
	json_decref(s);
}

/* A state file whose pid now belongs to an unrelated process: that process
 * is neither adopted nor signalled. */
static void test_stale_state_file_not_adopted(void **state)
{
	struct fx *x = *state;
	t_daemon_profile(&x->d, "old", FW "[restart]\npolicy = never\n");
	pid_t other = fork();
	if (other == 0) {
		execlp("sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	char dir[600], path[700], text[512];
	snprintf(dir, sizeof(dir), "%s/old", x->d.run);
	mkdir(x->d.run, 0755);
	mkdir(dir, 0750);
	snprintf(path, sizeof(path), "%s/state.json", dir);
	snprintf(text, sizeof(text), "{\"version\": 1, \"name\": \"old\", \"pid\": %d, "
	         "\"starttime\": 12345, \"state\": \"running\", \"restarts\": 2}\n", (int)other);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	start_daemon(x);
	json_t *s = status(x, "old");
	assert_string_equal(str(s, "state"), "stopped");
	assert_string_equal(str(s, "last_exit"), "crash");
	assert_true(json_is_null(json_object_get(s, "pid")));
	json_decref(s);
	assert_non_null(strstr(t_daemon_log(&x->d), "now belongs to another process (not touched)"));
	usleep(200000);
	assert_true(t_pid_alive(other));
	kill(other, SIGKILL);
	waitpid(other, NULL, 0);
}

static json_t *wait_event(struct fx *x, const char *event, const char *guest, int ms)
{
	for (int waited = 0; waited < ms; waited += 100) {
		json_t *e = t_ctl_next(&x->ev, 100);
		if (!e)
			continue;
		if (strcmp(str(e, "event"), event) == 0 && strcmp(str(e, "guest"), guest) == 0)
			return e;
		json_decref(e);
	}
	fail_msg("no %s for %s; log:\n%s", event, guest, t_daemon_log(&x->d));
	return NULL;
}

/* Margin over a stated bound for a loaded machine (the bound itself is
 * probe.h's; the test fails only past bound + margin). */
#define PROBE_MARGIN_MS 7000

/* A SIGSTOPped QEMU of an idle guest (nobody waits on it) becomes
 * unresponsive within the idle bound, without slowing anyone else; it
 * comes back by itself after SIGCONT; kill and stop --force still end it.
 * Meanwhile the idle guest that is fine is looked at, never asked: its
 * QEMU is not woken (the debug log shows each QMP command). */
static void test_hung_qemu(void **state)
{
	struct fx *x = *state;
	t_daemon_profile(&x->d, "hung", FW "[restart]\npolicy = never\n");
	t_daemon_profile(&x->d, "fine", FW);
	const char *debug[] = { "--log-level", "debug", NULL };
	start_daemon_with(x, debug);
	start_guest(x, "hung");
	start_guest(x, "fine");
	pid_t pid = pid_of(x, "hung");
	kill(pid, SIGSTOP);
	double t0 = t_now();
	json_decref(wait_event(x, "GUEST_UNRESPONSIVE", "hung",
	                       SV_PROBE_IDLE_MS + SV_PROBE_DEADLINE_MS + PROBE_MARGIN_MS));
	printf("# note: idle: unresponsive %.1f s after SIGSTOP (bound %u s)\n", t_now() - t0,
	       (SV_PROBE_IDLE_MS + SV_PROBE_DEADLINE_MS) / 1000);
	/* hung was asked (its look found it stopped); fine, as idle all along,
	 * is only looked at (due at most SV_PROBE_IDLE_MS after it ran): no
	 * query-status once it ran. */
	assert_true(t_daemon_log_has(&x->d, "hung: QMP: -> {\"execute\":\"query-status\""));
	for (int waited = 0; !t_daemon_log_has(&x->d, "fine: probe: QEMU waits in its event "
	                                       "loop (not asked)"); waited += 100) {
		if (waited > (int)SV_PROBE_IDLE_MS)
			fail_msg("the idle guest was never looked at; log:\n%s", t_daemon_log(&x->d));
		usleep(100000);
	}
	if (t_daemon_log_has(&x->d, "fine: QMP: -> {\"execute\":\"query-status\""))
		fail_msg("the idle guest was asked query-status; log:\n%s", t_daemon_log(&x->d));
	json_t *s = status(x, "hung");
	assert_true(json_is_true(json_object_get(s, "unresponsive")));
	json_decref(s);
	s = status(x, "fine");   /* answered while the other one hangs */
	assert_string_equal(str(s, "state"), "running");
	assert_false(json_is_true(json_object_get(s, "unresponsive")));
	json_decref(s);
	/* A passthrough command fails by its deadline instead of hanging. */
	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "hung",
	                       "command", "query-status"), 60000);
	assert_non_null(json_object_get(r, "error"));
	json_decref(r);

	kill(pid, SIGCONT);
	t0 = t_now();
	json_decref(wait_event(x, "GUEST_RESPONSIVE", "hung",
	                       SV_PROBE_BUSY_MS + SV_PROBE_DEADLINE_MS + PROBE_MARGIN_MS));
	printf("# note: responsive again %.1f s after SIGCONT\n", t_now() - t0);
	s = status(x, "hung");
	assert_string_equal(str(s, "state"), "running");
	assert_false(json_is_true(json_object_get(s, "unresponsive")));
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid);
	json_decref(s);

	kill(pid, SIGSTOP);
	t0 = t_now();
	r = t_ctl_call(&x->c, "stop", json_pack("{s:s, s:b}", "name", "hung", "force", 1), 60000);
	assert_string_equal(str(json_object_get(r, "return"), "state"), "stopped");
	printf("# note: stop --force of a stopped QEMU took %.1f s\n", t_now() - t0);
	json_decref(r);
	assert_false(t_pid_alive(pid));
	s = status(x, "hung");   /* no QEMU: nothing is unresponsive */
	assert_false(json_is_true(json_object_get(s, "unresponsive")));
	json_decref(s);

	pid = pid_of(x, "fine");
	kill(pid, SIGSTOP);
	s = t_ctl_do(&x->c, "kill", "fine", 10000, NULL);
	assert_string_equal(str(s, "state"), "stopped");
	json_decref(s);
}

/* A hang while qsupd waits on QEMU is seen by the probe within the busy
 * bound, before the command's own deadline (10 s) would show it: the
 * GUEST_UNRESPONSIVE event comes while the pause is still unanswered. */
static void test_hung_qemu_busy(void **state)
{
	struct fx *x = *state;
	t_daemon_profile(&x->d, "hung", FW "[restart]\npolicy = never\n");
	start_daemon(x);
	start_guest(x, "hung");
	pid_t pid = pid_of(x, "hung");
	kill(pid, SIGSTOP);
	double t0 = t_now();
	long long id = t_ctl_send(&x->ev, "pause", json_pack("{s:s}", "name", "hung"));
	assert_true(id > 0);
	for (;;) {
		json_t *e = t_ctl_next(&x->ev, 30000);
		if (!e)
			fail_msg("no GUEST_UNRESPONSIVE; log:\n%s", t_daemon_log(&x->d));
		assert_null(json_object_get(e, "id"));   /* not the pause's answer yet */
		bool hit = json_object_get(e, "event") &&
		           strcmp(str(e, "event"), "GUEST_UNRESPONSIVE") == 0;
		json_decref(e);
		if (hit)
			break;
	}
	printf("# note: busy: unresponsive %.1f s after the pause was sent (bound %u s)\n",
	       t_now() - t0, (SV_PROBE_BUSY_MS + SV_PROBE_DEADLINE_MS) / 1000);
	/* Still unanswered right after: the probe saw the hang, not the
	 * pause's deadline. */
	json_t *e = t_ctl_next(&x->ev, 1000);
	assert_true(e == NULL || !json_object_get(e, "id"));
	json_decref(e);
	json_t *r = t_ctl_reply(&x->ev, id, 30000);
	assert_non_null(json_object_get(r, "error"));
	json_decref(r);
	kill(pid, SIGCONT);
	json_decref(wait_event(x, "GUEST_RESPONSIVE", "hung",
	                       SV_PROBE_BUSY_MS + SV_PROBE_DEADLINE_MS + PROBE_MARGIN_MS));
	json_t *s = t_ctl_do(&x->c, "kill", "hung", 10000, NULL);
	assert_string_equal(str(s, "state"), "stopped");
	json_decref(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill9_backoff_and_stable_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_loop_to_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_operator_stop_never_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outside_sigterm_is_a_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_poweroff_by_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_panic_restarted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readopt_after_daemon_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readopt_frozen_qemu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_state_file_not_adopted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hung_qemu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hung_qemu_busy, setup, teardown),
	};
	return cmocka_run_group_tests_name("supervise", tests, NULL, NULL);
}
