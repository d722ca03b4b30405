/*
 * The QEMU guest agent, for real: the tiny guest (TCG) runs Debian's
 * qemu-ga on its virtio port (tests/guest/init), and a real qsupd talks to
 * it. Status shows the agent connected with its version and the guest's
 * eth0 address (qsup.ip= on the kernel command line); the agent verb
 * passes commands through, and guest-fsfreeze-freeze/thaw through it go
 * by qsupd's freeze API (guest-fsfreeze-status shows frozen, then thawed;
 * an ext2 file system on the guest's disk is what freezes: qsup.fs=);
 * guest-shutdown stops a guest that ignores the power button
 * (qsup.noacpi: no acpid); a guest without the channel says so and stops
 * as before. Skips when the guest was built without qemu-ga.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

/* Whether the guest's initramfs holds qemu-ga (its cpio lists the path). */
static bool guest_has_agent(void)
{
	char cmd[1200], out[4096];
	snprintf(cmd, sizeof(cmd), "gzip -dc '%s/initramfs.cpio.gz' | cpio -t --quiet 2>/dev/null "
	         "| grep -c '^usr/sbin/qemu-ga$'", t_guestdir());
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	return t_run_capture(argv, out, sizeof(out), 60000) == 0 && atoi(out) > 0;
}

/* The tiny guest with flags on its kernel command line and more profile
 * text after [guest]. */
static void tiny_profile(struct t_fx *x, const char *name, const char *flags,
                         const char *guest_keys, const char *more)
{
	char path[600], text[8192];
	snprintf(path, sizeof(path), "%s/cmdline", t_guestdir());
	const char *cmdline = t_read_line(path);
	snprintf(text, sizeof(text), "[guest]\nmemory = 256M\naccel = tcg\nkernel = %s/vmlinux\n"
	         "initrd = %s/initramfs.cpio.gz\nappend = %s %s\n%s%s", t_guestdir(), t_guestdir(),
	         cmdline ? cmdline : "console=ttyS0", flags, guest_keys, more);
	t_daemon_profile(&x->d, name, text);
}

static json_t *status(struct t_fx *x, const char *name)
{
	json_t *st = t_ctl_do(&x->c, "status", name, 10000, NULL);
	if (!st)
		fail_msg("status failed:\n%s", t_daemon_log(&x->d));
	return st;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll the status until the agent is connected (and, with addr, the guest
 * reports that address); returns the status. */
static json_t *wait_agent(struct t_fx *x, const char *name, const char *addr)
{
	long long end = now_ms() + 120000;
	for (;;) {
		json_t *st = status(x, name);
		json_t *ag = json_object_get(st, "agent");
		bool ok = json_is_true(json_object_get(ag, "connected"));
		if (ok && addr) {
			size_t i;
			json_t *a;
			ok = false;
			json_array_foreach(json_object_get(st, "guest_addresses"), i, a)
				ok |= !strcmp(t_str(a, "address"), addr);
		}
		if (ok)
			return st;
		json_decref(st);
		if (now_ms() > end)
			fail_msg("the agent never connected%s%s:\n%s", addr ? " with " : "",
			         addr ? addr : "", t_daemon_log(&x->d));
		usleep(300 * 1000);
	}
}

/* agent verb: the whole reply. */
static json_t *agent(struct t_fx *x, const char *name, const char *cmd, json_t *args)
{
	json_t *a = json_pack("{s:s, s:s}", "name", name, "command", cmd);
	if (args)
		json_object_set_new(a, "arguments", args);
	json_t *r = t_ctl_call(&x->c, "agent", a, 60000);
	if (!r)
		fail_msg("agent %s: no reply:\n%s", cmd, t_daemon_log(&x->d));
	return r;
}

static const char *err_class(json_t *r)
{
	return t_str(json_object_get(r, "error"), "class");
}

static const char *fsstatus(struct t_fx *x, const char *name)
{
	static char out[32];
	json_t *r = agent(x, name, "guest-fsfreeze-status", NULL);
	snprintf(out, sizeof(out), "%s", json_is_string(json_object_get(r, "return"))
	         ? json_string_value(json_object_get(r, "return")) : "(error)");
	json_decref(r);
	return out;
}

static void test_agent_status_and_freeze(void **state)
{
	struct t_fx *x = *state;
	char img[600], more[800];
	if (!guest_has_agent()) {
		printf("# skip: the guest in %s has no qemu-ga (rebuild it)\n", t_guestdir());
		skip();
	}
	snprintf(img, sizeof(img), "%s/fs.raw", x->d.dir);
	int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 32 << 20), 0);
	close(fd);
	snprintf(more, sizeof(more), "[disk.fs]\nfile = %s\nformat = raw\n[nic.lan]\ntype = user\n",
	         img);
	tiny_profile(x, "ga", "qsup.ip=10.0.2.15/24 qsup.fs=vda", "agent = yes\n", more);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "ga", 120000));

	json_t *st = wait_agent(x, "ga", "10.0.2.15");
	json_t *ag = json_object_get(st, "agent");
	assert_true(json_is_true(json_object_get(ag, "channel")));
	assert_true(json_is_string(json_object_get(ag, "version")));
	char *addrs = json_dumps(json_object_get(st, "guest_addresses"), JSON_COMPACT);
	printf("# note: qemu-ga %s, addresses %s\n", t_str(ag, "version"), addrs);
	free(addrs);
	assert_false(json_is_true(json_object_get(ag, "frozen")));
	json_decref(st);
	assert_true(t_fx_log_has(x, " answers"));

	/* Passthrough; the agent's own error; qsupd's own commands refused. */
	json_t *r = agent(x, "ga", "guest-ping", NULL);
	assert_non_null(json_object_get(r, "return"));
	json_decref(r);
	r = agent(x, "ga", "guest-no-such-command", NULL);
	assert_string_equal(err_class(r), "AgentError");
	json_decref(r);
	r = agent(x, "ga", "guest-sync-delimited", json_pack("{s:i}", "id", 1));
	assert_string_equal(err_class(r), "InvalidArgument");
	json_decref(r);
	r = agent(x, "ga", "guest-info", json_pack("{s:i}", "bogus", 1));
	assert_string_equal(err_class(r), "AgentError");   /* the agent's word on it */
	json_decref(r);
	/* The stream is still in sync after the errors. */
	assert_string_equal(fsstatus(x, "ga"), "thawed");
	/* A command whose deadline (1 ms) passes before the agent answers: its
	 * late answer must never be taken for the next command's (qsupd syncs
	 * again, dropping what came before the 0xFF sentinel). Whether each
	 * deadline passes is up to the machine: only the answers are checked. */
	int timeouts = 0;
	for (int i = 0; i < 5; i++) {
		json_t *a = json_pack("{s:s, s:s, s:i}", "name", "ga", "command", "guest-info",
		                      "timeout", 1);
		r = t_ctl_call(&x->c, "agent", a, 60000);
		assert_non_null(r);
		if (json_object_get(r, "error")) {
			assert_string_equal(err_class(r), "AgentTimeout");
			timeouts++;
		} else {
			assert_true(json_is_string(json_object_get(json_object_get(r, "return"),
			                                           "version")));
		}
		json_decref(r);
		assert_string_equal(fsstatus(x, "ga"), "thawed");
	}
	printf("# note: %d of 5 guest-info calls passed their 1 ms deadline\n", timeouts);

	/* Freeze (qsupd's API underneath): the ext2 on vda freezes. */
	r = agent(x, "ga", "guest-fsfreeze-freeze", NULL);
	if (!json_is_integer(json_object_get(r, "return")))
		fail_msg("freeze: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->d));
	assert_true(json_integer_value(json_object_get(r, "return")) >= 1);
	json_decref(r);
	assert_string_equal(fsstatus(x, "ga"), "frozen");
	st = status(x, "ga");
	assert_true(json_is_true(json_object_get(json_object_get(st, "agent"), "frozen")));
	json_decref(st);
	r = agent(x, "ga", "guest-fsfreeze-thaw", NULL);
	assert_true(json_integer_value(json_object_get(r, "return")) >= 1);
	json_decref(r);
	assert_string_equal(fsstatus(x, "ga"), "thawed");
	st = status(x, "ga");
	assert_false(json_is_true(json_object_get(json_object_get(st, "agent"), "frozen")));
	json_decref(st);
	assert_true(t_fx_log_has(x, "guest file systems frozen"));
	assert_true(t_fx_log_has(x, "guest file systems thawed"));

	/* qsupctl: the verb and the status lines. */
	char out[8192];
	const char *ping[] = { t_qsupctl(), "-s", x->d.sock, "agent", "ga", "guest-fsfreeze-status",
	                       NULL };
	assert_int_equal(t_run_capture(ping, out, sizeof(out), 30000), 0);
	assert_non_null(strstr(out, "thawed"));
	const char *show[] = { t_qsupctl(), "-s", x->d.sock, "status", "ga", NULL };
	assert_int_equal(t_run_capture(show, out, sizeof(out), 30000), 0);
	assert_non_null(strstr(out, "agent:          connected (qemu-ga "));
	assert_non_null(strstr(out, "guest IPs:      eth0 10.0.2.15/24"));
	const char *bad[] = { t_qsupctl(), "-s", x->d.sock, "agent", "ga", "guest-info", "[1]",
	                      NULL };
	assert_int_not_equal(t_run_capture(bad, out, sizeof(out), 30000), 0);
	assert_non_null(strstr(out, "JSON-ARGS must be a JSON object"));

	json_decref(t_fx_must(x, "stop", "ga", 120000));
}

/* A guest that ignores the power button: the stop's ACPI step times out,
 * qsupd asks the agent for guest-shutdown, and the guest powers off
 * before qsupd would quit QEMU. */
static void test_agent_shutdown_without_acpi(void **state)
{
	struct t_fx *x = *state;
	if (!guest_has_agent()) {
		printf("# skip: the guest in %s has no qemu-ga (rebuild it)\n", t_guestdir());
		skip();
	}
	char img[600];
	tiny_profile(x, "noacpi", "qsup.noacpi", "agent = yes\n", "");
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "noacpi", 120000));
	json_decref(wait_agent(x, "noacpi", NULL));
	/* A persistent hot-plugged disk: the next start replays it (hot-plug
	 * takes that start over), and the agent connects all the same. */
	snprintf(img, sizeof(img), "%s/hp.raw", x->d.dir);
	int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	json_t *a = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "name",
	                       "noacpi", "kind", "disk", "id", "hp", "file", img, "format", "raw",
	                       "persist", 1), 60000);
	if (!json_object_get(a, "return"))
		fail_msg("attach: %s\n%s", json_dumps(a, 0), t_daemon_log(&x->d));
	json_decref(a);
	json_t *r = t_ctl_call(&x->c, "stop", json_pack("{s:s, s:i}", "name", "noacpi",
	                       "timeout", 2), 120000);
	if (!json_object_get(r, "return"))
		fail_msg("stop: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->d));
	json_decref(r);
	json_t *st = status(x, "noacpi");
	assert_string_equal(t_str(st, "state"), "stopped");
	assert_non_null(strstr(t_str(st, "reason"), "guest powered off"));
	json_decref(st);
	assert_true(t_fx_log_has(x, "asked the guest to shut down (agent)"));
	assert_false(t_fx_log_has(x, "sending quit"));
	json_decref(t_fx_must(x, "start", "noacpi", 120000));
	json_decref(wait_agent(x, "noacpi", NULL));
	r = t_ctl_call(&x->c, "stop", json_pack("{s:s, s:b}", "name", "noacpi", "force", 1),
	               120000);
	assert_non_null(json_object_get(r, "return"));
	json_decref(r);
}

/* qsupd dies (SIGKILL) with the guest frozen: the next qsupd re-adopts the
 * guest, reconnects to its agent, finds it frozen (not by itself) and
 * thaws it. */
static void test_agent_readopt_thaws(void **state)
{
	struct t_fx *x = *state;
	char img[600], more[800];
	if (!guest_has_agent()) {
		printf("# skip: the guest in %s has no qemu-ga (rebuild it)\n", t_guestdir());
		skip();
	}
	snprintf(img, sizeof(img), "%s/fs.raw", x->d.dir);
	int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 32 << 20), 0);
	close(fd);
	snprintf(more, sizeof(more), "[disk.fs]\nfile = %s\nformat = raw\n", img);
	tiny_profile(x, "ra", "qsup.fs=vda", "agent = yes\n", more);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "ra", 120000));
	json_decref(wait_agent(x, "ra", NULL));
	json_t *r = agent(x, "ra", "guest-fsfreeze-freeze", NULL);
	assert_true(json_integer_value(json_object_get(r, "return")) >= 1);
	json_decref(r);
	assert_string_equal(fsstatus(x, "ra"), "frozen");

	t_daemon_kill9(&x->d);
	t_fx_up(x, NULL);
	json_t *st = wait_agent(x, "ra", NULL);
	assert_true(json_is_true(json_object_get(st, "adopted")));
	json_decref(st);
	long long end = now_ms() + 60000;
	while (strcmp(fsstatus(x, "ra"), "thawed")) {
		if (now_ms() > end)
			fail_msg("the guest stayed frozen:\n%s", t_daemon_log(&x->d));
		usleep(300 * 1000);
	}
	assert_true(t_fx_log_has(x, "not by this qsupd: thawing them"));
	json_decref(t_fx_must(x, "stop", "ra", 120000));
}

/* No channel: status says so, the verb refuses clearly, stop works. */
static void test_no_agent(void **state)
{
	struct t_fx *x = *state;
	tiny_profile(x, "plain", "", "", "");
	tiny_profile(x, "chan", "qsup.noacpi", "agent = yes\n", "");
	t_fx_up(x, NULL);
	json_t *r = agent(x, "chan", "guest-ping", NULL);   /* not running */
	assert_string_equal(err_class(r), "AgentNotConnected");
	printf("# note: %s\n", t_str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	json_decref(t_fx_must(x, "start", "plain", 120000));
	json_t *st = status(x, "plain");
	json_t *ag = json_object_get(st, "agent");
	assert_false(json_is_true(json_object_get(ag, "channel")));
	assert_false(json_is_true(json_object_get(ag, "connected")));
	assert_true(json_is_null(json_object_get(ag, "version")));
	assert_int_equal(json_array_size(json_object_get(st, "guest_addresses")), 0);
	json_decref(st);
	r = agent(x, "plain", "guest-ping", NULL);
	assert_string_equal(err_class(r), "AgentNotConnected");
	assert_non_null(strstr(t_str(json_object_get(r, "error"), "desc"), "agent = yes"));
	json_decref(r);
	r = t_ctl_call(&x->c, "agent", json_pack("{s:s}", "name", "plain"), 10000);
	assert_string_equal(err_class(r), "InvalidArgument");
	json_decref(r);
	char out[4096];
	const char *cli[] = { t_qsupctl(), "-s", x->d.sock, "agent", "plain", "guest-ping", NULL };
	assert_int_not_equal(t_run_capture(cli, out, sizeof(out), 30000), 0);
	assert_non_null(strstr(out, "no guest agent channel"));
	/* A channel nobody answers on (a firmware guest: no OS, no agent):
	 * the verb fails by its deadline, status says not connected, and the
	 * stop goes from ACPI straight to quit. */
	t_daemon_profile(&x->d, "fw", "[guest]\nmemory = 64M\naccel = kvm:tcg\nagent = yes\n"
	                 "[shutdown]\ntimeout = 1s\n");
	json_decref(t_fx_must(x, "reload", NULL, 10000));
	json_decref(t_fx_must(x, "start", "fw", 120000));
	r = agent(x, "fw", "guest-ping", NULL);
	assert_string_equal(err_class(r), "AgentTimeout");
	printf("# note: %s\n", t_str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	st = status(x, "fw");
	ag = json_object_get(st, "agent");
	assert_true(json_is_true(json_object_get(ag, "channel")));
	assert_false(json_is_true(json_object_get(ag, "connected")));
	json_decref(st);
	json_decref(t_fx_must(x, "stop", "fw", 120000));
	assert_false(t_fx_log_has(x, "asked the guest to shut down"));
	assert_true(t_fx_log_has(x, "fw: sending quit"));
	/* The power button works: the stop needs no agent. */
	json_t *s = t_ctl_call(&x->c, "stop", json_pack("{s:s, s:i}", "name", "plain",
	                       "timeout", 60), 120000);
	assert_non_null(json_object_get(s, "return"));
	json_decref(s);
	assert_false(t_fx_log_has(x, "asked the guest to shut down"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_agent_status_and_freeze, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_agent_shutdown_without_acpi, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_agent_readopt_thaws, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_no_agent, t_fx_setup, t_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
