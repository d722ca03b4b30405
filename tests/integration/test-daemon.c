/*
 * qsupd for real: a daemon process with its own dirs, driven over its
 * control socket, running real QEMU. Firmware-only guests (no OS) use KVM
 * where /dev/kvm can create a VM and TCG otherwise; the tiny Linux guest
 * uses TCG.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define FW_PROFILE "[guest]\nmemory = 64M\naccel = kvm:tcg\n[shutdown]\ntimeout = 1s\n"

static void start_daemon(struct t_fx *x, const char *const *extra)
{
	t_fx_up(x, extra);
	assert_string_equal(json_string_value(json_object_get(
	        json_object_get(x->c.greeting, "qsup"), "version")), "0.1.0");
}

#define str t_str

/* verb on name must succeed; returns the status it answered with. */
static void expect_state(struct t_fx *x, const char *verb, const char *name,
                         const char *state, int ms)
{
	json_t *r = t_fx_must(x, verb, name, ms);
	if (strcmp(str(r, "state"), state) != 0)
		fail_msg("%s %s: state %s, expected %s (%s)", verb, name, str(r, "state"),
		         state, str(r, "reason"));
	json_decref(r);
}

/* /dev/kvm is probed by the first start that needs it (the lifecycle test
 * starts at once), or on the thread pool a second after qsupd started: a
 * start after that gets the same answer as a probe of the test's own, and
 * `argv` spells the same accelerator. */
static void test_kvm_probed_later(void **state)
{
	struct t_fx *x = *state;
	static const char *const debug[] = { "--log-level", "debug", NULL };
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	start_daemon(x, debug);
	assert_null(strstr(t_daemon_log(&x->d), "/dev/kvm "));   /* not at startup */
	for (int i = 0; i < 50 && !strstr(t_daemon_log(&x->d), "(probed on the thread pool)"); i++)
		usleep(100 * 1000);
	if (!strstr(t_daemon_log(&x->d), "(probed on the thread pool)"))
		fail_msg("no probe on the thread pool:\n%s", t_daemon_log(&x->d));
	json_t *a = t_fx_must(x, "argv", "fw", 5000);
	char *text = json_dumps(a, 0);
	printf("# note: accel %s; argv asks for %s\n", t_accel(),
	       strstr(text, "\"kvm\"") ? "kvm" : "tcg");
	assert_non_null(strstr(text, !strcmp(t_accel(), "kvm") ? "\"kvm\"" : "\"tcg\""));
	free(text);
	json_decref(a);
	json_t *s = t_fx_must(x, "start", "fw", 20000);
	assert_string_equal(str(s, "accel"), t_accel());
	json_decref(s);
}

static void test_lifecycle_firmware_guest(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	start_daemon(x, NULL);
	struct t_ctl ev;
	assert_int_equal(t_ctl_open(&ev, x->d.sock), 0);
	json_decref(t_ctl_call(&ev, "subscribe", NULL, 5000));

	json_t *s = t_fx_must(x, "start", "fw", 20000);
	assert_string_equal(str(s, "state"), "running");
	assert_true(json_integer_value(json_object_get(s, "pid")) > 0);
	printf("# using %s (qsupd chose it for accel kvm:tcg)\n", str(s, "accel"));
	assert_string_equal(str(s, "accel"), t_accel());
	pid_t pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	assert_true(t_pid_alive(pid));

	const char *cls;
	/* start of a guest that is up succeeds, as systemctl's does, and says so;
	 * the same QEMU goes on. */
	s = t_fx_must(x, "start", "fw", 5000);
	assert_string_equal(str(s, "state"), "running");
	assert_true(json_is_true(json_object_get(s, "already")));
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid);
	json_decref(s);
	expect_state(x, "status", "fw", "running", 5000);
	expect_state(x, "pause", "fw", "paused", 5000);
	expect_state(x, "status", "fw", "paused", 5000);
	s = t_fx_must(x, "start", "fw", 5000);
	assert_string_equal(str(s, "state"), "paused");   /* start does not resume */
	assert_true(json_is_true(json_object_get(s, "already")));
	json_decref(s);
	assert_null(t_ctl_do(&x->c, "pause", "fw", 5000, &cls));
	assert_string_equal(cls, "InvalidState");
	expect_state(x, "resume", "fw", "running", 5000);
	expect_state(x, "reset", "fw", "running", 5000);
	s = t_fx_must(x, "kill", "fw", 10000);
	assert_string_equal(str(s, "state"), "stopped");
	assert_string_equal(str(s, "reason"), "killed by operator");
	assert_null(json_object_get(s, "already"));
	json_decref(s);
	assert_false(t_pid_alive(pid));
	/* stop and kill of a stopped guest succeed too, "already". */
	s = t_fx_must(x, "stop", "fw", 5000);
	assert_string_equal(str(s, "state"), "stopped");
	assert_true(json_is_true(json_object_get(s, "already")));
	json_decref(s);
	s = t_fx_must(x, "kill", "fw", 5000);
	assert_true(json_is_true(json_object_get(s, "already")));
	json_decref(s);

	/* The subscriber saw every transition, in order. */
	const char *want[] = { "starting", "running", "paused", "running", "stopping", "stopped" };
	for (size_t i = 0; i < 6; i++) {
		json_t *e = t_ctl_wait_state(&ev, "fw", want[i], 5000);
		if (!e)
			fail_msg("no GUEST_STATE %s event", want[i]);
		json_decref(e);
	}
	t_ctl_close(&ev);
}

static void test_stop_ladder_without_acpi(void **state)
{
	struct t_fx *x = *state;
	/* Firmware only: nothing answers the power button. */
	t_daemon_profile(&x->d, "deaf", FW_PROFILE);
	start_daemon(x, NULL);
	json_decref(t_fx_must(x, "start", "deaf", 20000));
	json_t *s = t_fx_must(x, "stop", "deaf", 30000);
	assert_string_equal(str(s, "state"), "stopped");
	assert_string_equal(str(s, "reason"), "stopped by operator (QEMU exited with status 0)");
	json_decref(s);
	const char *log = t_daemon_log(&x->d);
	assert_non_null(strstr(log, "deaf: sending ACPI power-off"));
	assert_non_null(strstr(log, "deaf: sending quit"));
	assert_null(strstr(log, "SIGKILL"));
	assert_null(strstr(log, "SIGTERM"));

	/* --force goes straight to quit. */
	json_decref(t_fx_must(x, "start", "deaf", 20000));
	json_t *r = t_ctl_call(&x->c, "stop", json_pack("{s:s, s:b}", "name", "deaf", "force", 1), 10000);
	assert_string_equal(str(json_object_get(r, "return"), "state"), "stopped");
	json_decref(r);
}

/* The tiny guest powers off through ACPI: no quit, no signal. Its console
 * is read through the socket that the console verb names. */
static void test_graceful_stop_and_console(void **state)
{
	struct t_fx *x = *state;
	t_daemon_tiny_profile(&x->d, "tiny", "[shutdown]\ntimeout = 60s\n");
	start_daemon(x, NULL);
	json_t *s = t_fx_must(x, "start", "tiny", 30000);
	json_decref(s);
	uv_loop_t loop;
	struct t_serial ser;
	assert_int_equal(t_ctl_console(&x->c, "tiny", &loop, &ser), 0);
	size_t seen = 0;
	if (t_serial_wait(&ser, "QSUP-GUEST-READY", &seen, 60000) < 0)
		fail_msg("no ready marker on the console:\n%s", ser.buf ? ser.buf : "");
	double t0 = t_now();
	s = t_fx_must(x, "stop", "tiny", 90000);
	printf("# note: graceful stop took %.2f s\n", t_now() - t0);
	assert_string_equal(str(s, "state"), "stopped");
	assert_string_equal(str(s, "reason"), "stopped by operator (guest powered off)");
	json_decref(s);
	const char *log = t_daemon_log(&x->d);
	assert_null(strstr(log, "tiny: sending quit"));
	assert_null(strstr(log, "SIGKILL"));
	t_serial_close(&ser);
	t_loop_finish(&loop);
}

/* A qsupctl console running in the background: its stdin is a pipe we
 * write to, its stdout and stderr go to files under dir. */
struct bg_console {
	pid_t pid;
	int in;
	char out[600], err[600];
};

static void bg_console(struct bg_console *b, const char *dir, const char *tag,
                       const char *sock, bool force)
{
	int p[2];
	snprintf(b->out, sizeof(b->out), "%s/%s.out", dir, tag);
	snprintf(b->err, sizeof(b->err), "%s/%s.err", dir, tag);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	b->pid = fork();
	assert_true(b->pid >= 0);
	if (b->pid == 0) {
		int o = open(b->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(b->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (o < 0 || e < 0 || dup2(p[0], 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(99);
		execl(t_qsupctl(), t_qsupctl(), "-s", sock, "console", force ? "-f" : "tiny",
		      force ? "tiny" : NULL, (char *)NULL);
		_exit(98);
	}
	close(p[0]);
	b->in = p[1];
}

/* Wait until text is in file (up to ms). */
static void wait_in_file(const char *path, const char *text, int ms)
{
	for (int i = 0; i < ms / 20; i++) {
		if (strstr(t_file_tail(path), text))
			return;
		usleep(20000);
	}
	fail_msg("\"%s\" never appeared in %s:\n%s", text, path, t_file_tail(path));
}

/* Wait for b to exit (up to ms); its exit status. */
static int bg_wait(struct bg_console *b, int ms)
{
	int st = 0;
	for (int i = 0; i < ms / 20; i++) {
		if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
			b->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(20000);
	}
	kill(b->pid, SIGKILL);
	waitpid(b->pid, NULL, 0);
	fail_msg("qsupctl console did not exit:\n%s", t_file_tail(b->err));
	return -1;
}

static void bg_say(struct bg_console *b, const char *line)
{
	assert_int_equal(write(b->in, line, strlen(line)), (ssize_t)strlen(line));
}

/* QEMU serves its console to one client at a time: qsupd lends it to one
 * control connection. A second is refused with ConsoleBusy and who holds
 * it, or with force takes it over: the holder hears CONSOLE_TAKEN and,
 * being qsupctl, lets go, so that the new one really gets the guest. */
static void test_console_one_holder(void **state)
{
	struct t_fx *x = *state;
	t_daemon_tiny_profile(&x->d, "tiny", "");
	start_daemon(x, NULL);
	json_decref(t_fx_must(x, "start", "tiny", 30000));

	/* The protocol: the holder is the connection that asked. */
	struct t_ctl a, b;
	assert_int_equal(t_ctl_open(&a, x->d.sock), 0);
	assert_int_equal(t_ctl_open(&b, x->d.sock), 0);
	json_t *ra = t_ctl_do(&a, "console", "tiny", 5000, NULL);
	assert_non_null(ra);
	json_int_t ida = json_integer_value(json_object_get(ra, "client"));
	assert_true(ida > 0);
	json_decref(ra);
	json_decref(t_ctl_do(&a, "console", "tiny", 5000, NULL));   /* its own: fine */
	json_t *r = t_ctl_call(&b, "console", json_pack("{s:s}", "name", "tiny"), 5000);
	json_t *e = json_object_get(r, "error");
	char want[64];
	snprintf(want, sizeof(want), "console busy (client %lld)", (long long)ida);
	assert_string_equal(str(e, "class"), "ConsoleBusy");
	assert_string_equal(str(e, "desc"), want);
	json_decref(r);
	r = t_ctl_call(&b, "console", json_pack("{s:s, s:b}", "name", "tiny", "force", 1), 5000);
	json_int_t idb = json_integer_value(json_object_get(json_object_get(r, "return"),
	                                                     "client"));
	assert_true(idb > 0 && idb != ida);
	json_decref(r);
	json_t *ev = t_ctl_next(&a, 5000);   /* a never subscribed: told all the same */
	assert_string_equal(str(ev, "event"), "CONSOLE_TAKEN");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ev, "data"), "by")),
	                 idb);
	json_decref(ev);
	r = t_ctl_call(&a, "console", json_pack("{s:s}", "name", "tiny"), 5000);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "ConsoleBusy");
	json_decref(r);
	t_ctl_close(&b);   /* the holder leaves: the console is free */
	usleep(100000);
	json_decref(t_fx_must(x, "console", "tiny", 5000));
	t_ctl_close(&a);
	t_ctl_close(&x->c);   /* x->c held it last: free it for qsupctl */
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);

	/* qsupctl: the first one talks to the guest... */
	struct bg_console p1, p3;
	bg_console(&p1, x->d.dir, "p1", x->d.sock, false);
	wait_in_file(p1.err, "Connected to tiny's console", 10000);
	wait_in_file(p1.out, "QSUP-GUEST-READY", 60000);
	bg_say(&p1, "echo HELLO-P1\n");
	wait_in_file(p1.out, "HELLO-P1", 10000);
	/* ...a second is refused at once, and says who holds it... */
	char out[4096];
	const char *p2[] = { t_qsupctl(), "-s", x->d.sock, "console", "tiny", NULL };
	assert_int_equal(t_run_capture(p2, out, sizeof(out), 10000), 1);
	assert_non_null(strstr(out, "qsupctl: console tiny: console busy (client "));
	assert_non_null(strstr(out, "console -f tiny takes it over"));
	assert_null(strstr(out, "Connected"));
	/* ...and -f takes it over: the first ends cleanly, the new one gets the
	 * guest's answers. */
	bg_console(&p3, x->d.dir, "p3", x->d.sock, true);
	assert_int_equal(bg_wait(&p1, 10000), 0);
	assert_non_null(strstr(t_file_tail(p1.err), "tiny's console taken over by client "));
	close(p1.in);
	wait_in_file(p3.err, "Connected to tiny's console", 10000);
	bg_say(&p3, "echo HELLO-P3\n");
	wait_in_file(p3.out, "HELLO-P3", 10000);
	close(p3.in);   /* stdin ends: it drains and leaves */
	assert_int_equal(bg_wait(&p3, 10000), 0);
	assert_non_null(strstr(t_daemon_log(&x->d), "tiny: console taken over by client "));
}

static void test_ten_guests_two_clients_pipelined(void **state)
{
	struct t_fx *x = *state;
	char name[16];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "g%d", i);
		t_daemon_profile(&x->d, name, FW_PROFILE);
	}
	start_daemon(x, NULL);
	struct t_ctl b;
	assert_int_equal(t_ctl_open(&b, x->d.sock), 0);
	long long ids[10], sids[10];
	for (int i = 0; i < 10; i++) {   /* all sent before any reply is read */
		snprintf(name, sizeof(name), "g%d", i);
		ids[i] = t_ctl_send(&x->c, "start", json_pack("{s:s}", "name", name));
		sids[i] = t_ctl_send(&b, "status", json_pack("{s:s}", "name", name));
	}
	for (int i = 0; i < 10; i++) {
		json_t *r = t_ctl_reply(&b, sids[i], 10000);
		snprintf(name, sizeof(name), "g%d", i);
		assert_string_equal(str(json_object_get(r, "return"), "name"), name);
		json_decref(r);
	}
	for (int i = 0; i < 10; i++) {
		json_t *r = t_ctl_reply(&x->c, ids[i], 30000);
		if (!json_object_get(r, "return"))
			fail_msg("start g%d failed; log:\n%s", i, t_daemon_log(&x->d));
		assert_string_equal(str(json_object_get(r, "return"), "state"), "running");
		json_decref(r);
	}
	json_t *list = t_ctl_call(&b, "list", NULL, 5000);
	json_t *arr = json_object_get(list, "return");
	assert_int_equal(json_array_size(arr), 10);
	size_t i;
	json_t *g;
	json_array_foreach(arr, i, g)
		assert_string_equal(str(g, "state"), "running");
	json_decref(list);
	for (int k = 0; k < 10; k++) {
		snprintf(name, sizeof(name), "g%d", k);
		ids[k] = t_ctl_send(&b, "kill", json_pack("{s:s}", "name", name));
	}
	for (int k = 0; k < 10; k++) {
		json_t *r = t_ctl_reply(&b, ids[k], 10000);
		assert_string_equal(str(json_object_get(r, "return"), "state"), "stopped");
		json_decref(r);
	}
	t_ctl_close(&b);
}

static void expect_error(struct t_ctl *c, const char *raw, const char *cls)
{
	assert_int_equal(t_ctl_send_raw(c, raw, strlen(raw)), 0);
	json_t *r = t_ctl_next(c, 5000);
	if (!r)
		fail_msg("no reply to %s", raw);
	json_t *err = json_object_get(r, "error");
	if (!err || strcmp(str(err, "class"), cls) != 0)
		fail_msg("%s: expected %s, got %s", raw, cls, json_dumps(r, 0));
	json_decref(r);
}

static void test_malformed_input(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	t_daemon_profile(&x->d, "fw2", FW_PROFILE);
	start_daemon(x, NULL);
	json_t *s = t_fx_must(x, "start", "fw", 20000);
	pid_t pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);

	expect_error(&x->c, "garbage\n", "GenericError");
	expect_error(&x->c, "{\"execute\": \n", "GenericError");
	expect_error(&x->c, "[1, 2]\n", "GenericError");
	expect_error(&x->c, "{\"execute\": 5}\n", "GenericError");
	expect_error(&x->c, "{\"arguments\": {}}\n", "GenericError");
	expect_error(&x->c, "{\"execute\": \"status\", \"arguments\": [1]}\n", "InvalidArgument");
	expect_error(&x->c, "{\"execute\": \"status\", \"arguments\": {\"name\": 5}}\n", "InvalidArgument");
	expect_error(&x->c, "{\"execute\": \"status\"}\n", "InvalidArgument");
	expect_error(&x->c, "{\"execute\": \"stop\", \"arguments\": {\"name\": \"fw\", \"force\": \"yes\"}}\n", "InvalidArgument");
	expect_error(&x->c, "{\"execute\": \"qmp\", \"arguments\": {\"name\": \"fw\"}}\n", "InvalidArgument");
	expect_error(&x->c, "{\"execute\": \"no-such-verb\", \"id\": 1}\n", "CommandNotFound");
	expect_error(&x->c, "{\"execute\": \"start\", \"arguments\": {\"name\": \"nobody\"}}\n", "NotFound");
	expect_error(&x->c, "{\"execute\": \"status\", \"arguments\": {\"name\": \"\\u0000x\"}}\n", "GenericError");
	expect_error(&x->c, "{\"execute\": \"status\", \"arguments\": {\"name\": \"../etc\"}}\n", "NotFound");
	/* The id is echoed whatever its type. */
	const char *odd_id = "{\"execute\": \"list\", \"id\": {\"a\": [1]}}\n";
	t_ctl_send_raw(&x->c, odd_id, strlen(odd_id));
	json_t *r = t_ctl_next(&x->c, 5000);
	assert_non_null(json_object_get(json_object_get(r, "id"), "a"));
	json_decref(r);

	/* A client that leaves mid-request, and one that leaves before its
	 * reply: neither hurts the daemon. */
	struct t_ctl gone;
	assert_int_equal(t_ctl_open(&gone, x->d.sock), 0);
	t_ctl_send_raw(&gone, "{\"execute\": \"sta", 16);
	t_ctl_close(&gone);
	assert_int_equal(t_ctl_open(&gone, x->d.sock), 0);
	t_ctl_send(&gone, "start", json_pack("{s:s}", "name", "fw2"));
	t_ctl_close(&gone);
	json_t *st = NULL;
	for (int i = 0; i < 200; i++) {   /* the orphaned start still completes */
		json_decref(st);
		st = t_fx_must(x, "status", "fw2", 5000);
		if (strcmp(str(st, "state"), "running") == 0)
			break;
		usleep(50000);
	}
	assert_string_equal(str(st, "state"), "running");
	json_decref(st);
	/* Over the 1 MiB cap: an error, then the connection is closed. */
	struct t_ctl big;
	assert_int_equal(t_ctl_open(&big, x->d.sock), 0);
	size_t n = 1100 * 1024;
	char *blob = malloc(n);
	memset(blob, 'x', n);
	t_ctl_send_raw(&big, blob, n);
	free(blob);
	assert_true(t_ctl_eof(&big, 5000));
	t_ctl_close(&big);

	/* Still up, guest untouched. */
	assert_true(t_pid_alive(pid));
	s = t_fx_must(x, "status", "fw", 5000);
	assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid);
	assert_string_equal(str(s, "state"), "running");
	json_decref(s);
}

static void test_qmp_passthrough(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	start_daemon(x, NULL);
	json_decref(t_fx_must(x, "start", "fw", 20000));
	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "fw",
	                       "command", "query-status"), 5000);
	assert_string_equal(str(json_object_get(r, "return"), "status"), "running");
	json_decref(r);
	r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s, s:{s:s}}", "name", "fw",
	               "command", "device_del", "arguments", "id", "nope"), 5000);
	json_t *err = json_object_get(r, "error");
	assert_string_equal(str(err, "class"), "DeviceNotFound");
	assert_non_null(strstr(str(err, "desc"), "nope"));
	assert_true(json_is_true(json_object_get(err, "qemu")));
	json_decref(r);
	r = t_ctl_call(&x->c, "argv", json_pack("{s:s}", "name", "fw"), 5000);
	json_t *argv = json_object_get(json_object_get(r, "return"), "argv");
	assert_true(json_array_size(argv) > 5);
	json_decref(r);
}

static void test_start_failure_reports_qemu_stderr(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "bad", "[guest]\nmemory = 64M\naccel = kvm:tcg\n"
	                 "[qemu]\nextra-arg = -device\nextra-arg = no-such-device-model\n");
	start_daemon(x, NULL);
	json_t *r = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "bad"), 20000);
	json_t *err = json_object_get(r, "error");
	assert_non_null(err);
	printf("# note: %s\n", str(err, "desc"));
	assert_non_null(strstr(str(err, "desc"), "start failed"));
	assert_non_null(strstr(str(err, "desc"), "no-such-device-model"));
	json_decref(r);
	/* A start that fails before the guest ran is not retried (on-failure,
	 * the default, is for guests that ran): stopped, with QEMU's words. */
	json_t *s = t_fx_must(x, "status", "bad", 5000);
	assert_string_equal(str(s, "state"), "stopped");
	assert_string_equal(str(s, "last_exit"), "start-failure");
	assert_non_null(strstr(str(s, "reason"), "no-such-device-model"));
	assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 0);
	json_decref(s);
}

static void test_sigterm_leaves_guests_running(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "keep", FW_PROFILE);
	t_daemon_profile(&x->d, "auto", "[guest]\nmemory = 64M\naccel = kvm:tcg\nautostart = yes\n");
	start_daemon(x, NULL);
	json_t *s = t_fx_must(x, "start", "keep", 20000);
	pid_t pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	s = t_fx_must(x, "status", "auto", 5000);
	json_t *ap = json_object_get(s, "pid");
	/* autostart: running, or on its way */
	assert_true(json_is_integer(ap));
	pid_t apid = (pid_t)json_integer_value(ap);
	json_decref(s);
	assert_int_equal(t_daemon_stop(&x->d), 0);
	if (!t_pid_alive(pid) || !t_pid_alive(apid))
		fail_msg("a guest did not outlive qsupd:\n%s", t_daemon_log(&x->d));
	assert_non_null(strstr(t_daemon_log(&x->d), "keep: left running"));
}

static void test_second_daemon_refused(void **state)
{
	struct t_fx *x = *state;
	start_daemon(x, NULL);
	struct t_daemon other = x->d;
	other.pid = 0;
	assert_int_equal(t_daemon_exec(&other, NULL, 10000), 1);
	assert_non_null(strstr(t_daemon_log(&x->d), "another qsupd"));
	json_t *l = t_ctl_call(&x->c, "list", NULL, 5000);   /* the first is fine */
	assert_non_null(json_object_get(l, "return"));
	json_decref(l);
}

static void test_restart_and_reload(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	start_daemon(x, NULL);
	json_t *s = t_fx_must(x, "start", "fw", 20000);
	json_int_t pid1 = json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	s = t_fx_must(x, "restart", "fw", 30000);
	assert_string_equal(str(s, "state"), "running");
	assert_true(json_integer_value(json_object_get(s, "pid")) != pid1);
	assert_false(json_is_true(json_object_get(s, "config_changed")));
	json_decref(s);

	/* Edit the profile, add one, add a broken one, then reload. */
	t_daemon_profile(&x->d, "fw", "[guest]\nmemory = 96M\naccel = kvm:tcg\n[shutdown]\ntimeout = 1s\n");
	t_daemon_profile(&x->d, "new", FW_PROFILE);
	t_daemon_profile(&x->d, "broken", "[guest]\nmemory = lots\n");
	json_t *r = t_ctl_call(&x->c, "reload", NULL, 5000);
	json_t *ret = json_object_get(r, "return");
	assert_string_equal(json_string_value(json_array_get(json_object_get(ret, "changed"), 0)), "fw");
	assert_string_equal(json_string_value(json_array_get(json_object_get(ret, "added"), 0)), "new");
	assert_non_null(strstr(json_string_value(json_array_get(json_object_get(ret, "errors"), 0)),
	                       "broken.ini:2: [guest] memory"));
	json_decref(r);
	s = t_fx_must(x, "status", "fw", 5000);
	assert_true(json_is_true(json_object_get(s, "config_changed")));
	json_decref(s);
	/* The running QEMU still has 64 MiB until restarted. */
	r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "fw", "command",
	               "query-memory-size-summary"), 5000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"),
	                 "base-memory")), 64 << 20);
	json_decref(r);
	json_decref(t_fx_must(x, "restart", "fw", 30000));
	r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "fw", "command",
	               "query-memory-size-summary"), 5000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"),
	                 "base-memory")), 96 << 20);
	json_decref(r);
	s = t_fx_must(x, "status", "fw", 5000);
	assert_false(json_is_true(json_object_get(s, "config_changed")));
	json_decref(s);
	const char *cls;
	assert_null(t_ctl_do(&x->c, "status", "broken", 5000, &cls));
	assert_string_equal(cls, "NotFound");
}

/* READY=1 and STOPPING=1 reach the socket named by NOTIFY_SOCKET. */
static void test_sd_notify(void **state)
{
	struct t_fx *x = *state;
	char path[100];
	assert_true(snprintf(path, sizeof(path), "%s/notify.sock", x->d.dir) < (int)sizeof(path));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	start_daemon(x, NULL);
	unsetenv("NOTIFY_SOCKET");
	char buf[64] = "";
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_true(recv(fd, buf, sizeof(buf) - 1, 0) > 0);
	assert_string_equal(buf, "READY=1");
	assert_int_equal(t_daemon_stop(&x->d), 0);
	memset(buf, 0, sizeof(buf));
	assert_true(recv(fd, buf, sizeof(buf) - 1, 0) > 0);
	assert_string_equal(buf, "STOPPING=1");
	close(fd);
}

/* The socket is born 0660; a peer that is neither root nor the daemon's uid
 * may read but not change anything. */
static void test_socket_access(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	start_daemon(x, NULL);
	struct stat st;
	assert_int_equal(stat(x->d.sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	if (geteuid() != 0) {
		printf("# note: not root: the other-uid half is not run\n");
		return;
	}
	/* Let uid 65534 in through the group, as an admin would with chgrp. */
	assert_int_equal(chown(x->d.sock, 0, 65534), 0);
	chmod(x->d.dir, 0755);
	chmod(x->d.run, 0755);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(10);
		struct t_ctl c;
		if (t_ctl_open(&c, x->d.sock) < 0)
			_exit(11);
		const char *cls = NULL;
		json_t *ok = t_ctl_do(&c, "status", "fw", 5000, NULL);
		json_t *no = t_ctl_do(&c, "start", "fw", 5000, &cls);
		_exit(!ok ? 12 : no ? 13 : strcmp(cls, "PermissionDenied") ? 14 : 0);
	}
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	expect_state(x, "status", "fw", "stopped", 5000);
}

/* qsupctl against the real daemon, as a user types it. */
static void test_qsupctl_with_real_daemon(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	t_daemon_profile(&x->d, "fw2", FW_PROFILE);
	t_daemon_profile(&x->d, "slow", "[guest]\nmemory = 64M\naccel = kvm:tcg\n"
	                 "[shutdown]\ntimeout = 60s\n");
	start_daemon(x, NULL);
	char out[8192];
	const char *ctl = t_qsupctl();
	const char *start[] = { ctl, "-s", x->d.sock, "start", "fw", "fw2", NULL };
	int rc = t_run_capture(start, out, sizeof(out), 30000);
	if (rc != 0)
		fail_msg("qsupctl start: %d\n%s", rc, out);
	const char *list[] = { ctl, "-s", x->d.sock, "list", NULL };
	assert_int_equal(t_run_capture(list, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "NAME"));
	assert_non_null(strstr(out, "fw2"));
	assert_non_null(strstr(out, "running"));
	const char *js[] = { ctl, "-s", x->d.sock, "--json", "status", "fw", NULL };
	assert_int_equal(t_run_capture(js, out, sizeof(out), 10000), 0);
	json_t *j = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
	assert_string_equal(str(j, "state"), "running");
	json_decref(j);
	const char *q[] = { ctl, "-s", x->d.sock, "qmp", "fw", "query-status", NULL };
	assert_int_equal(t_run_capture(q, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "running"));
	const char *bad[] = { ctl, "-s", x->d.sock, "start", "nobody", NULL };
	assert_int_equal(t_run_capture(bad, out, sizeof(out), 10000), 1);
	assert_non_null(strstr(out, "no profile named nobody"));
	/* start of a running guest and stop of a stopped one both exit 0 and
	 * say so on stderr (and in the JSON reply). */
	const char *again[] = { ctl, "-s", x->d.sock, "start", "fw", NULL };
	assert_int_equal(t_run_capture(again, out, sizeof(out), 10000), 0);
	assert_string_equal(out, "qsupctl: start fw: already running\nfw: running (started)\n");
	const char *stop[] = { ctl, "-s", x->d.sock, "stop", "--force", "fw", "fw2", NULL };
	assert_int_equal(t_run_capture(stop, out, sizeof(out), 30000), 0);
	expect_state(x, "status", "fw2", "stopped", 5000);
	const char *stop2[] = { ctl, "-s", x->d.sock, "stop", "fw2", NULL };
	assert_int_equal(t_run_capture(stop2, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "qsupctl: stop fw2: already stopped\n"));
	const char *stopj[] = { ctl, "-s", x->d.sock, "-j", "stop", "fw2", NULL };
	assert_int_equal(t_run_capture(stopj, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "\"already\": true"));
	/* A state where start is an error stays one: exit 1. The firmware
	 * ignores the power button, so the stop waits out its 60 s timeout. */
	json_decref(t_fx_must(x, "start", "slow", 30000));
	long long id = t_ctl_send(&x->c, "stop", json_pack("{s:s}", "name", "slow"));
	expect_state(x, "status", "slow", "stopping", 5000);
	const char *busy[] = { ctl, "-s", x->d.sock, "start", "slow", NULL };
	assert_int_equal(t_run_capture(busy, out, sizeof(out), 10000), 1);
	assert_string_equal(out, "qsupctl: start slow: slow is stopping\n");
	const char *force[] = { ctl, "-s", x->d.sock, "stop", "-f", "slow", NULL };
	assert_int_equal(t_run_capture(force, out, sizeof(out), 30000), 0);
	json_decref(t_ctl_reply(&x->c, id, 10000));
}

/* The device of id in a devices reply (borrowed), or NULL. */
static json_t *device(json_t *list, const char *id)
{
	json_t *d;
	size_t i;
	json_array_foreach(list, i, d)
		if (!strcmp(str(d, "id"), id))
			return d;
	return NULL;
}

/* devices shows each CD-ROM's medium as QEMU has it: after an eject
 * (through the qmp passthrough) none, after a change the new file. */
static void test_cdrom_medium_in_devices(void **state)
{
	struct t_fx *x = *state;
	char one[600], two[600], profile[1600];
	snprintf(one, sizeof(one), "%s/one.iso", x->d.dir);
	snprintf(two, sizeof(two), "%s/two.iso", x->d.dir);
	for (int i = 0; i < 2; i++) {   /* QEMU runs as a uid of its own: readable */
		FILE *f = fopen(i ? two : one, "w");
		assert_non_null(f);
		assert_int_equal(fseek(f, (1 << 20) - 1, SEEK_SET), 0);
		fputc(0, f);
		fclose(f);
		chmod(i ? two : one, 0644);
	}
	chmod(x->d.dir, 0755);
	snprintf(profile, sizeof(profile), "%s[cdrom.cd]\nfile = %s\n[cdrom.spare]\n",
	         FW_PROFILE, one);
	t_daemon_profile(&x->d, "cd", profile);
	start_daemon(x, NULL);
	json_t *l = t_fx_must(x, "devices", "cd", 5000);   /* stopped: the profile's */
	assert_string_equal(str(device(l, "cd"), "backend"), one);
	assert_true(json_is_true(json_object_get(device(l, "spare"), "empty")));
	json_decref(l);
	json_decref(t_fx_must(x, "start", "cd", 20000));
	l = t_fx_must(x, "devices", "cd", 5000);
	assert_string_equal(str(device(l, "cd"), "backend"), one);
	assert_null(json_object_get(device(l, "cd"), "empty"));
	json_decref(l);

	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s, s:{s:s}}", "name", "cd",
	                       "command", "eject", "arguments", "id", "cd"), 5000);
	assert_non_null(json_object_get(r, "return"));
	json_decref(r);
	l = t_fx_must(x, "devices", "cd", 5000);
	assert_true(json_is_null(json_object_get(device(l, "cd"), "backend")));
	assert_true(json_is_true(json_object_get(device(l, "cd"), "empty")));
	json_decref(l);
	char out[4096];
	const char *ctl[] = { t_qsupctl(), "-s", x->d.sock, "devices", "cd", NULL };
	assert_int_equal(t_run_capture(ctl, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "(empty)"));
	assert_null(strstr(out, "one.iso"));

	r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "name", "cd",
	               "command", "blockdev-change-medium", "arguments", "id", "cd",
	               "filename", two, "format", "raw"), 10000);
	if (!json_object_get(r, "return"))
		fail_msg("blockdev-change-medium: %s", str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "name", "cd",
	               "command", "blockdev-change-medium", "arguments", "id", "spare",
	               "filename", one, "format", "raw"), 10000);
	assert_non_null(json_object_get(r, "return"));
	json_decref(r);
	l = t_fx_must(x, "devices", "cd", 5000);
	assert_string_equal(str(device(l, "cd"), "backend"), two);
	assert_string_equal(str(device(l, "spare"), "backend"), one);
	assert_null(json_object_get(device(l, "spare"), "empty"));
	json_decref(l);
	assert_int_equal(t_run_capture(ctl, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "two.iso"));
	assert_null(strstr(out, "(empty)"));
}

/* size = creates a missing image with qemu-img when the guest starts, and
 * never touches it again; a failure reports qemu-img's own words. */
static void test_disk_created_on_first_start(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "disky", "[guest]\nmemory = 64M\naccel = kvm:tcg\n"
	                 "[disk.root]\nfile = root,1.qcow2\nformat = qcow2\nsize = 64M\n"
	                 "[shutdown]\ntimeout = 1s\n");
	/* sysfs takes no new files, not even from root: qemu-img fails (a
	 * missing directory would be made, see test-iso). */
	t_daemon_profile(&x->d, "nodir", "[guest]\nmemory = 64M\naccel = kvm:tcg\n"
	                 "[disk.root]\nfile = /sys/kernel/qsup-test-root.qcow2\nformat = qcow2\n"
	                 "size = 64M\n[restart]\npolicy = never\n");
	start_daemon(x, NULL);
	json_decref(t_fx_must(x, "start", "disky", 30000));
	char img[700];
	snprintf(img, sizeof(img), "%s/root,1.qcow2", x->d.profiles);
	assert_int_equal(access(img, F_OK), 0);
	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "disky",
	                       "command", "query-block"), 5000);
	json_t *dev = NULL, *b;
	size_t i;
	json_array_foreach(json_object_get(r, "return"), i, b)
		if (json_object_get(b, "inserted"))
			dev = json_object_get(json_object_get(b, "inserted"), "image");
	assert_non_null(dev);
	/* QEMU has the image as an fd (fd set 7), not by its name. */
	char real[4096], file[4096];
	assert_string_equal(str(dev, "filename"), "/dev/fdset/7");
	assert_non_null(realpath(img, real));
	assert_non_null(t_guest_fdset_file(&x->c, "disky", 7, file, sizeof(file)));
	assert_string_equal(file, real);
	struct stat st;
	assert_int_equal(stat(img, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);   /* born 0600: only qsupd opens it */
	assert_string_equal(str(dev, "format"), "qcow2");
	assert_int_equal(json_integer_value(json_object_get(dev, "virtual-size")), 64 << 20);
	json_decref(r);
	json_decref(t_fx_must(x, "restart", "disky", 30000));
	const char *log = t_daemon_log(&x->d);
	const char *first = strstr(log, "disky: created");
	assert_non_null(first);
	assert_null(strstr(first + 1, "disky: created"));

	r = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "nodir"), 30000);
	json_t *err = json_object_get(r, "error");
	assert_non_null(err);
	printf("# note: %s\n", str(err, "desc"));
	assert_non_null(strstr(str(err, "desc"), "qemu-img create"));
	assert_non_null(strstr(str(err, "desc"), "/sys/kernel/qsup-test-root.qcow2"));
	json_decref(r);
	expect_state(x, "status", "nodir", "stopped", 5000);
}

/* An incoming start whose preparation fails (its disk cannot be created:
 * the directory it would go in is a file)
 * is the incoming migration's failure: the request is answered, the guest
 * stopped and never restarted here (restarting it would boot a second copy
 * of a guest its source still runs), even under restart = always. */
static void test_incoming_start_failure(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "dst", "[guest]\nmemory = 64M\naccel = kvm:tcg\n"
	                 "[disk.root]\nfile = missing/root.qcow2\nformat = qcow2\nsize = 64M\n"
	                 "[restart]\npolicy = always\ndelay = 100ms\n");
	char notdir[700];
	snprintf(notdir, sizeof(notdir), "%s/missing", x->d.profiles);
	FILE *f = fopen(notdir, "w");
	assert_non_null(f);
	fclose(f);
	start_daemon(x, NULL);
	json_t *r = t_ctl_call(&x->c, "incoming", json_pack("{s:s}", "name", "dst"), 30000);
	json_t *err = json_object_get(r, "error");
	assert_non_null(err);   /* answered, with why */
	printf("# note: %s\n", str(err, "desc"));
	assert_non_null(strstr(str(err, "desc"), "missing/root.qcow2: Not a directory"));
	json_decref(r);
	expect_state(x, "status", "dst", "stopped", 5000);
	usleep(1000000);   /* ten restart delays: still not restarted */
	r = t_ctl_call(&x->c, "status", json_pack("{s:s}", "name", "dst"), 5000);
	json_t *st = json_object_get(r, "return");
	assert_string_equal(str(st, "state"), "stopped");
	assert_string_equal(str(st, "last_exit"), "incoming-failed");
	assert_int_equal(json_integer_value(json_object_get(st, "restarts")), 0);
	json_decref(r);
	assert_null(strstr(t_daemon_log(&x->d), "dst: stopped -> backoff"));
	assert_null(strstr(t_daemon_log(&x->d), "dst: incoming -> backoff"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lifecycle_firmware_guest, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_kvm_probed_later, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_stop_ladder_without_acpi, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_graceful_stop_and_console, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_console_one_holder, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_ten_guests_two_clients_pipelined, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_input, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_qmp_passthrough, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_start_failure_reports_qemu_stderr, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_leaves_guests_running, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_second_daemon_refused, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_restart_and_reload, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_sd_notify, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_socket_access, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_qsupctl_with_real_daemon, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_disk_created_on_first_start, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_cdrom_medium_in_devices, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_incoming_start_failure, t_fx_setup, t_fx_teardown),
	};
	return cmocka_run_group_tests_name("daemon", tests, NULL, NULL);
}
