/*
 * Live migration between two real qsupd (separate profile dirs, run dirs
 * and sockets) with the tiny guest under TCG running its counter, which
 * dirties memory and prints QSUP-COUNTER N every second: over unix and tcp
 * loopback, refused before anything starts when the destination's profile
 * is missing or differs, cancelled mid-stream, the destination's QEMU
 * SIGKILLed mid-stream, save and restore, and the source qsupd SIGKILLed
 * mid-migration. And across "hosts": the test runs in a network namespace
 * of its own, and one qsupd goes into a second one, joined to the first by
 * a veth pair; the guest moves over tcp between the two namespaces'
 * addresses (the host's network is never touched).
 */

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "netns.h"
#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define GUEST "mig"
#define EXTRA "append = qsup.counter\n"

struct fx {
	struct t_daemon a, b;
	struct t_ctl ca, cb;
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	t_pair_init(&x->a, &x->b, &x->ca, &x->cb);
	uv_loop_init(&x->loop);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	t_serial_close(&x->ser);
	t_loop_finish(&x->loop);
	t_pair_finish(&x->a, &x->b, &x->ca, &x->cb);
	free(x);
	return 0;
}

/* Both daemons with the same profile; the guest runs on a, its console open. */
static void start_both(struct fx *x, const char *b_extra)
{
	t_daemon_tiny_profile(&x->a, GUEST, EXTRA);
	if (b_extra)
		t_daemon_tiny_profile(&x->b, GUEST, b_extra);
	t_daemon_up(&x->a, &x->ca);
	t_daemon_up(&x->b, &x->cb);
	json_t *s = t_ctl_do(&x->ca, "start", GUEST, 60000, NULL);
	if (!s)
		fail_msg("start failed:\n%s", t_daemon_log(&x->a));
	json_decref(s);
	t_loop_finish(&x->loop);
	assert_int_equal(t_ctl_console(&x->ca, GUEST, &x->loop, &x->ser), 0);
	if (t_serial_wait(&x->ser, "QSUP-COUNTER 2", &x->seen, 60000) < 0)
		fail_msg("no counter:\n%s", x->ser.buf ? x->ser.buf : "");
	printf("# using tcg (a guest kernel with its counter)\n");
}

static json_t *status(struct t_ctl *c)
{
	json_t *s = t_ctl_do(c, "status", GUEST, 5000, NULL);
	assert_non_null(s);
	return s;
}

static void wait_state(struct t_ctl *c, const char *want, int ms)
{
	if (t_ctl_poll_state(c, GUEST, want, ms) < 0)
		fail_msg("state %s, not %s", t_ctl_state(c, GUEST), want);
}

/* The highest QSUP-COUNTER on the console so far. */
static long last_counter(struct fx *x)
{
	return t_serial_highest(&x->ser, "QSUP-COUNTER");
}

/* Reopen the console on the daemon behind c. */
static void console(struct fx *x, struct t_ctl *c)
{
	assert_int_equal(t_ctl_console_reopen(c, GUEST, &x->loop, &x->ser, &x->seen), 0);
}

/* After a move: the counter goes on from where it was (no reboot). */
static void counter_goes_on(struct fx *x, struct t_ctl *c, long before)
{
	console(x, c);
	char want[64];
	snprintf(want, sizeof(want), "QSUP-COUNTER %ld", before + 2);
	if (t_serial_wait(&x->ser, want, &x->seen, 20000) < 0)
		fail_msg("counter did not go on from %ld:\n%s", before,
		         x->ser.buf ? x->ser.buf : "");
	assert_null(strstr(x->ser.buf, "QSUP-GUEST-READY"));   /* no new boot */
	long first = strtol(strstr(x->ser.buf, "QSUP-COUNTER ") + 13, NULL, 10);
	printf("# note: counter %ld before, %ld first seen after\n", before, first);
	assert_true(first >= before && first <= before + 3);
}

static json_t *migrate(struct fx *x, struct t_ctl *c, const char *to, const char *uri,
                       const char *bandwidth, bool wait)
{
	json_t *a = json_pack("{s:s, s:b}", "name", GUEST, "wait", wait);
	if (to)
		json_object_set_new(a, "to", json_string(to));
	if (uri)
		json_object_set_new(a, "uri", json_string(uri));
	if (bandwidth)
		json_object_set_new(a, "bandwidth", json_string(bandwidth));
	(void)x;
	return t_ctl_call(c, "migrate", a, 120000);
}

static void expect_ok(json_t *r, const char *what, struct fx *x)
{
	if (!json_object_get(r, "return"))
		fail_msg("%s: %s\n-- a:\n%s\n-- b:\n%s", what, json_dumps(r, 0),
		         t_daemon_log(&x->a), t_daemon_log(&x->b));
}

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t len = sizeof(sa);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(s, (struct sockaddr *)&sa, &len);
	close(s);
	return ntohs(sa.sin_port);
}

/* A 16 MiB raw image in d's dir, hot-plugged into the guest as id. */
static void attach_disk(struct fx *x, struct t_daemon *d, struct t_ctl *c, const char *id)
{
	char img[700];
	snprintf(img, sizeof(img), "%s/%s.img", d->dir, id);
	FILE *f = fopen(img, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 16 << 20), 0);
	fclose(f);
	json_t *r = t_ctl_call(c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", GUEST,
	                       "kind", "disk", "id", id, "file", img, "format", "raw"), 30000);
	expect_ok(r, "attach", x);
	json_decref(r);
}

static void test_unix_then_tcp_back(void **state)
{
	struct fx *x = *state;
	start_both(x, EXTRA);
	/* a hot-plugged disk goes along, on the same slot (the second one) */
	attach_disk(x, &x->a, &x->ca, "gone");
	attach_disk(x, &x->a, &x->ca, "data");
	json_decref(t_ctl_call(&x->ca, "detach", json_pack("{s:s, s:s}", "name", GUEST, "id",
	                       "gone"), 30000));
	long before = last_counter(x);
	json_t *r = migrate(x, &x->ca, x->b.sock, NULL, NULL, true);
	expect_ok(r, "migrate --to (unix)", x);
	json_t *ret = json_object_get(r, "return");
	assert_string_equal(t_str(ret, "status"), "completed");
	assert_string_equal(t_str(ret, "destination"), "running");
	assert_non_null(strstr(t_str(ret, "uri"), "unix:"));
	printf("# note: unix: %lld ms, downtime %lld ms, %lld bytes\n",
	       (long long)json_integer_value(json_object_get(ret, "total-time")),
	       (long long)json_integer_value(json_object_get(ret, "downtime")),
	       (long long)json_integer_value(json_object_get(ret, "transferred")));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "migrated");
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "running");
	/* Both QEMUs ran as the guest's own identity, not root. */
	json_t *st = status(&x->cb);
	assert_true(json_integer_value(json_object_get(st, "uid")) > 0);
	json_decref(st);
	/* A migrated guest is not restarted by an operator's restart either:
	 * that takes an explicit start. */
	json_t *rr = t_ctl_call(&x->ca, "restart", json_pack("{s:s}", "name", GUEST), 5000);
	assert_string_equal(t_str(json_object_get(rr, "error"), "class"), "InvalidState");
	json_decref(rr);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "migrated");
	json_t *devs = t_ctl_call(&x->cb, "devices", json_pack("{s:s}", "name", GUEST), 5000);
	json_t *d = json_array_get(json_object_get(devs, "return"), 0);
	assert_string_equal(t_str(d, "id"), "data");
	assert_string_equal(t_str(d, "bus"), "hotplug.1");
	json_decref(devs);
	counter_goes_on(x, &x->cb, before);

	/* and back over tcp on loopback, through qsupctl */
	before = last_counter(x);
	char uri[64], out[8192];
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", free_port());
	const char *argv[] = { t_qsupctl(), "-s", x->b.sock, "migrate", "--wait", "--to",
	                       x->a.sock, GUEST, uri, "downtime=500", NULL };
	if (t_run_capture(argv, out, sizeof(out), 120000) != 0)
		fail_msg("qsupctl migrate: %s\n%s", out, t_daemon_log(&x->b));
	printf("# note: qsupctl: %s", strrchr(out, '\n') > out ? out : out);
	assert_non_null(strstr(out, "done in"));
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "migrated");
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "running");
	counter_goes_on(x, &x->ca, before);
	/* A migrated guest is never restarted by its old qsupd. */
	json_t *s = status(&x->cb);
	assert_string_equal(t_str(s, "last_exit"), "migrated");
	json_decref(s);
}

static void test_refused_before_anything(void **state)
{
	struct fx *x = *state;
	start_both(x, NULL);   /* b has no profile for the guest */
	int pid = t_ctl_pid(&x->ca, GUEST);
	json_t *r = migrate(x, &x->ca, x->b.sock, NULL, NULL, true);
	assert_string_equal(t_str(json_object_get(r, "error"), "class"), "NotFound");
	printf("# note: %s\n", t_str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "running");
	assert_int_equal(t_ctl_pid(&x->ca, GUEST), pid);

	/* a different profile there: one more QEMU argument */
	t_daemon_tiny_profile(&x->b, GUEST, EXTRA);
	char path[700];
	snprintf(path, sizeof(path), "%s/%s.ini", x->b.profiles, GUEST);
	FILE *f = fopen(path, "a");
	fprintf(f, "[qemu]\nextra-arg = -no-hpet\n");
	fclose(f);
	json_decref(t_ctl_call(&x->cb, "reload", json_object(), 10000));
	r = migrate(x, &x->ca, x->b.sock, NULL, NULL, true);
	assert_string_equal(t_str(json_object_get(r, "error"), "class"), "ProfileMismatch");
	printf("# note: %s\n", t_str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "running");
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "stopped");
	assert_int_equal(t_ctl_pid(&x->ca, GUEST), pid);

	/* By hand, a destination without the source's hot-plugged disk: QEMU
	 * fails at the very end; with return-path the source learns it and the
	 * guest runs on there. */
	t_daemon_tiny_profile(&x->b, GUEST, EXTRA);
	json_decref(t_ctl_call(&x->cb, "reload", json_object(), 10000));
	attach_disk(x, &x->a, &x->ca, "extra");
	r = t_ctl_call(&x->cb, "incoming", json_pack("{s:s}", "name", GUEST), 30000);
	expect_ok(r, "incoming", x);
	char uri[700];
	snprintf(uri, sizeof(uri), "%s", t_str(json_object_get(r, "return"), "uri"));
	json_decref(r);
	r = migrate(x, &x->ca, NULL, uri, NULL, true);
	assert_string_equal(t_str(json_object_get(r, "error"), "class"), "MigrationFailed");
	printf("# note: a destination without the disk: %s\n",
	       t_str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "running");
	assert_int_equal(t_ctl_pid(&x->ca, GUEST), pid);
	wait_state(&x->cb, "stopped", 20000);

	/* bad arguments, and no such destination */
	r = migrate(x, &x->ca, NULL, "ftp:somewhere", NULL, true);
	assert_string_equal(t_str(json_object_get(r, "error"), "class"), "InvalidArgument");
	json_decref(r);
	r = migrate(x, &x->ca, "/nonexistent/qsupd.sock", NULL, NULL, true);
	assert_non_null(json_object_get(r, "error"));
	printf("# note: %s\n", t_str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "running");
	assert_int_equal(t_ctl_pid(&x->ca, GUEST), pid);
	/* the guest still answers */
	assert_int_equal(t_serial_write(&x->ser, "ping"), 0);
	assert_int_equal(t_serial_wait(&x->ser, "QSUP-PONG", &x->seen, 10000), 0);
}

/* A slow migration (a few MiB/s) to break in the middle. */
static void start_slow(struct fx *x)
{
	json_t *r = migrate(x, &x->ca, x->b.sock, NULL, "4M", false);
	expect_ok(r, "migrate (slow)", x);
	json_decref(r);
	wait_state(&x->ca, "migrating", 10000);
	usleep(1500000);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "migrating");
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "incoming");
}

static void test_cancel_mid_stream(void **state)
{
	struct fx *x = *state;
	start_both(x, EXTRA);
	int pid = t_ctl_pid(&x->ca, GUEST);
	start_slow(x);
	/* No restart on either side while the guest is on its way: the source
	 * would come back on top of the destination (two QEMUs). */
	json_t *r = t_ctl_call(&x->ca, "restart", json_pack("{s:s}", "name", GUEST), 5000);
	assert_string_equal(t_str(json_object_get(r, "error"), "class"), "InvalidState");
	json_decref(r);
	r = t_ctl_call(&x->cb, "restart", json_pack("{s:s}", "name", GUEST), 5000);
	assert_string_equal(t_str(json_object_get(r, "error"), "class"), "InvalidState");
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "migrating");
	/* The migration's figures are in the metrics while it runs. */
	r = t_ctl_call(&x->ca, "metrics", NULL, 30000);
	const char *text = t_str(json_object_get(r, "return"), "text");
	char key[128];
	snprintf(key, sizeof(key), "qsup_guest_migration_remaining_bytes{guest=\"%s\","
	         "role=\"source\"} ", GUEST);
	const char *at = strstr(text, key);
	if (!at)
		fail_msg("no %s in the metrics:\n%s", key, text);
	printf("# note: %.*s\n", (int)strcspn(at, "\n"), at);
	assert_true(strtod(at + strlen(key), NULL) > 0);
	json_decref(r);
	r = t_ctl_call(&x->ca, "migrate-cancel", json_pack("{s:s}", "name", GUEST), 10000);
	expect_ok(r, "migrate-cancel", x);
	json_decref(r);
	wait_state(&x->ca, "running", 20000);
	assert_int_equal(t_ctl_pid(&x->ca, GUEST), pid);
	wait_state(&x->cb, "stopped", 20000);   /* its QEMU killed and reaped */
	assert_int_equal(t_ctl_pid(&x->cb, GUEST), 0);
	long before = last_counter(x);
	char want[64];
	snprintf(want, sizeof(want), "QSUP-COUNTER %ld", before + 2);
	assert_int_equal(t_serial_wait(&x->ser, want, &x->seen, 20000), 0);
	assert_non_null(strstr(t_daemon_log(&x->a), "cancelled"));
}

static void test_destination_killed_mid_stream(void **state)
{
	struct fx *x = *state;
	start_both(x, EXTRA);
	int pid = t_ctl_pid(&x->ca, GUEST);
	start_slow(x);
	int dpid = t_ctl_pid(&x->cb, GUEST);
	assert_true(dpid > 0);
	kill(dpid, SIGKILL);
	wait_state(&x->ca, "running", 30000);
	assert_int_equal(t_ctl_pid(&x->ca, GUEST), pid);
	wait_state(&x->cb, "stopped", 20000);
	/* Not restarted: ended by the broken stream, or by the source's kill
	 * when that came first. */
	json_t *s = status(&x->cb);
	printf("# note: destination: %s (%s)\n", t_str(s, "last_exit"), t_str(s, "reason"));
	assert_true(!strcmp(t_str(s, "last_exit"), "incoming-failed") ||
	            !strcmp(t_str(s, "last_exit"), "operator"));
	assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 0);
	json_decref(s);
	usleep(1500000);   /* and still not, a moment later */
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "stopped");
	assert_int_equal(t_serial_write(&x->ser, "ping"), 0);
	assert_int_equal(t_serial_wait(&x->ser, "QSUP-PONG", &x->seen, 10000), 0);
	const char *note = strstr(t_daemon_log(&x->a), "migration to");
	printf("# note: %s\n", note ? note : "?");
}

/* Postcopy: slow precopy, switched after the first pass; the destination
 * runs the guest and pulls the rest. */
/* vm.unprivileged_userfaultfd: postcopy needs it for an unprivileged QEMU. */
static char ufd_saved = '0';

static void ufd_set(char v)
{
	const char *path = "/proc/sys/vm/unprivileged_userfaultfd";
	int fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	if (v != '0' && v != '1')
		assert_int_equal(read(fd, &ufd_saved, 1), 1);
	else
		assert_int_equal(write(fd, &v, 1), 1);
	close(fd);
}

static void test_postcopy(void **state)
{
	struct fx *x = *state;
	start_both(x, EXTRA);
	long before = last_counter(x);
	json_t *a = json_pack("{s:s, s:s, s:s, s:[s], s:i, s:b}", "name", GUEST, "to", x->b.sock,
	                      "bandwidth", "4M", "capabilities", "postcopy-ram", "postcopy-after", 1,
	                      "wait", 1);
	/* The destination's QEMU is unprivileged: without the sysctl, a clear
	 * refusal before anything starts; with it, postcopy works. */
	ufd_set('?');
	ufd_set('0');
	json_t *r = t_ctl_call(&x->ca, "migrate", json_deep_copy(a), 30000);
	assert_non_null(strstr(t_str(json_object_get(r, "error"), "desc"),
	                       "vm.unprivileged_userfaultfd"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "running");
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "stopped");
	ufd_set('1');
	r = t_ctl_call(&x->ca, "migrate", a, 120000);
	ufd_set(ufd_saved);
	expect_ok(r, "migrate with postcopy", x);
	printf("# note: postcopy after pass 1 at 4 MiB/s: %lld ms for %lld bytes\n",
	       (long long)json_integer_value(json_object_get(json_object_get(r, "return"),
	                                                     "total-time")),
	       (long long)json_integer_value(json_object_get(json_object_get(r, "return"),
	                                                     "transferred")));
	json_decref(r);
	assert_non_null(strstr(t_daemon_log(&x->a), "switching the migration to postcopy"));
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "migrated");
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "running");
	counter_goes_on(x, &x->cb, before);
	/* not while nothing migrates */
	r = t_ctl_call(&x->cb, "migrate-postcopy", json_pack("{s:s}", "name", GUEST), 5000);
	assert_string_equal(t_str(json_object_get(r, "error"), "class"), "InvalidState");
	json_decref(r);
}

static void test_save_restore(void **state)
{
	struct fx *x = *state;
	start_both(x, NULL);
	attach_disk(x, &x->a, &x->ca, "kept");   /* comes back with the restore */
	char file[700], out[4096];
	snprintf(file, sizeof(file), "%s/mig.save", x->a.dir);
	long before = last_counter(x);
	const char *save[] = { t_qsupctl(), "-s", x->a.sock, "save", GUEST, file, NULL };
	if (t_run_capture(save, out, sizeof(out), 60000) != 0)
		fail_msg("qsupctl save: %s\n%s", out, t_daemon_log(&x->a));
	printf("# note: save: %s", out);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "stopped");
	assert_int_equal(t_ctl_pid(&x->ca, GUEST), 0);
	json_t *s = status(&x->ca);
	assert_string_equal(t_str(s, "last_exit"), "saved");
	json_decref(s);
	json_t *r = t_ctl_call(&x->ca, "restore", json_pack("{s:s, s:s}", "name", GUEST, "file",
	                       file), 60000);
	expect_ok(r, "restore", x);
	assert_string_equal(t_str(json_object_get(r, "return"), "state"), "running");
	json_decref(r);
	r = t_ctl_call(&x->ca, "devices", json_pack("{s:s}", "name", GUEST), 5000);
	assert_string_equal(t_str(json_array_get(json_object_get(r, "return"), 0), "id"), "kept");
	json_decref(r);
	counter_goes_on(x, &x->ca, before);
	/* not a save file */
	r = t_ctl_call(&x->cb, "restore", json_pack("{s:s, s:s}", "name", GUEST, "file",
	               x->a.log), 10000);
	assert_non_null(json_object_get(r, "error"));
	json_decref(r);
}

/* A guest re-adopted after a qsupd restart, with no migration ever run,
 * shows none and can be saved: QEMU answers query-migrate with {} then,
 * which once left a phantom "migration in progress" behind. */
static void test_save_after_qsupd_restart(void **state)
{
	struct fx *x = *state;
	start_both(x, NULL);
	int pid = t_ctl_pid(&x->ca, GUEST);
	t_ctl_close(&x->ca);
	t_daemon_kill9(&x->a);
	t_daemon_up(&x->a, &x->ca);
	wait_state(&x->ca, "running", 10000);
	assert_int_equal(t_ctl_pid(&x->ca, GUEST), pid);
	json_t *s = status(&x->ca);
	assert_true(json_is_true(json_object_get(s, "adopted")));
	assert_true(json_is_null(json_object_get(s, "migration")));
	json_decref(s);
	char file[700], out[4096];
	snprintf(file, sizeof(file), "%s/readopted.save", x->a.dir);
	const char *save[] = { t_qsupctl(), "-s", x->a.sock, "save", GUEST, file, NULL };
	if (t_run_capture(save, out, sizeof(out), 60000) != 0)
		fail_msg("qsupctl save after the restart: %s\n%s", out, t_daemon_log(&x->a));
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "stopped");
	s = status(&x->ca);
	assert_string_equal(t_str(s, "last_exit"), "saved");
	json_decref(s);
}

/* The source qsupd is SIGKILLed mid-migration and started again: it picks
 * the migration up, and the guest ends up running on exactly one side. */
static void test_source_qsupd_killed(void **state)
{
	struct fx *x = *state;
	start_both(x, EXTRA);
	int pid = t_ctl_pid(&x->ca, GUEST);
	start_slow(x);
	t_serial_close(&x->ser);
	memset(&x->ser, 0, sizeof(x->ser));
	t_loop_finish(&x->loop);
	uv_loop_init(&x->loop);   /* teardown finishes it */
	t_ctl_close(&x->ca);
	t_daemon_kill9(&x->a);
	t_daemon_up(&x->a, &x->ca);
	printf("# note: after the restart the source is %s\n", t_ctl_state(&x->ca, GUEST));
	wait_state(&x->ca, "migrating", 10000);   /* once QMP is back */
	assert_int_equal(t_ctl_pid(&x->ca, GUEST), pid);
	/* let it finish quickly */
	json_t *r = t_ctl_call(&x->ca, "qmp", json_pack("{s:s, s:s, s:{s:I}}", "name", GUEST,
	                       "command", "migrate-set-parameters", "arguments", "max-bandwidth",
	                       (json_int_t)1 << 40), 10000);
	expect_ok(r, "max-bandwidth", x);
	json_decref(r);
	wait_state(&x->ca, "migrated", 60000);
	wait_state(&x->cb, "running", 20000);
	assert_false(t_pid_alive(pid));
}

static void test_across_namespaces(void **state)
{
	struct fx *x = *state;
	if (t_netns_skip[0]) {
		printf("# skip: %s\n", t_netns_skip);
		skip();
	}
	/* A second namespace, joined by veth. */
	struct t_netns_peer ns;
	t_netns_peer(&ns, "qmv0", "qmv1", "10.77.0");
	t_daemon_tiny_profile(&x->a, GUEST, EXTRA);
	t_daemon_tiny_profile(&x->b, GUEST, EXTRA);
	t_daemon_up(&x->a, &x->ca);
	assert_int_equal(setns(ns.there, CLONE_NEWNET), 0);   /* b's qsupd and QEMU live there */
	t_daemon_up(&x->b, &x->cb);
	assert_int_equal(setns(ns.here, CLONE_NEWNET), 0);
	json_t *s = t_ctl_do(&x->ca, "start", GUEST, 60000, NULL);
	assert_non_null(s);
	json_decref(s);
	console(x, &x->ca);
	assert_int_equal(t_serial_wait(&x->ser, "QSUP-COUNTER 2", &x->seen, 60000), 0);
	printf("# using tcg; namespaces joined by veth: 10.77.0.1 (a) and 10.77.0.2 (b)\n");
	long before = last_counter(x);
	json_t *r = migrate(x, &x->ca, x->b.sock, "tcp:10.77.0.2:4444", NULL, true);
	expect_ok(r, "migrate to the other namespace", x);
	printf("# note: tcp between namespaces: %lld ms, downtime %lld ms\n",
	       (long long)json_integer_value(json_object_get(json_object_get(r, "return"),
	                                                     "total-time")),
	       (long long)json_integer_value(json_object_get(json_object_get(r, "return"),
	                                                     "downtime")));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "migrated");
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "running");
	counter_goes_on(x, &x->cb, before);
	/* b's QEMU really is in the other namespace */
	char mine[64], its[64], path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", t_ctl_pid(&x->cb, GUEST));
	ssize_t n1 = readlink("/proc/thread-self/ns/net", mine, sizeof(mine) - 1);
	ssize_t n2 = readlink(path, its, sizeof(its) - 1);
	assert_true(n1 > 0 && n2 > 0);
	mine[n1] = its[n2] = '\0';
	assert_string_not_equal(mine, its);
	t_netns_peer_close(&ns);
}

/* a's log from byte off on (the file grows across restarts). */
static char *log_from(struct fx *x, long off)
{
	FILE *f = fopen(x->a.log, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long end = ftell(f);
	char *buf = calloc(1, (size_t)(end - off) + 1);
	fseek(f, off, SEEK_SET);
	size_t n = fread(buf, 1, (size_t)(end - off), f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static long log_size(struct fx *x)
{
	struct stat st;
	return stat(x->a.log, &st) == 0 ? (long)st.st_size : 0;
}

/* a's state.json for the guest (NULL when unreadable). */
static json_t *record_of(struct fx *x)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s/state.json", x->a.run, GUEST);
	return json_load_file(path, 0, NULL);
}

/* SIGKILL a's qsupd (unless it is down already), start it again with the
 * QMP trace (--log-level debug), wait for the guest: what the new qsupd
 * logged. */
static char *readopt_traced(struct fx *x)
{
	const char *dbg[] = { "--log-level", "debug", NULL };
	if (x->ca.fd >= 0)
		t_ctl_close(&x->ca);
	x->ca.fd = -1;
	if (x->a.pid > 0)
		t_daemon_kill9(&x->a);
	long off = log_size(x);
	if (t_daemon_start(&x->a, dbg) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->a));
	assert_int_equal(t_ctl_open(&x->ca, x->a.sock), 0);
	for (int i = 0; i < 200 && strcmp(t_ctl_state(&x->ca, GUEST), "running"); i++)
		usleep(50000);
	return log_from(x, off);
}

/* state.json says whether an outgoing migration may run (mig_out),
 * before QEMU is asked for one; a re-adopting qsupd asks QEMU
 * (query-migrate, which costs QEMU more than the rest of a re-adoption)
 * only then, or where the record predates the key. */
static void test_mig_out_on_record(void **state)
{
	struct fx *x = *state;
	start_both(x, EXTRA);
	json_t *rec = record_of(x);
	assert_true(json_is_false(json_object_get(rec, "mig_out")));
	char *log = readopt_traced(x);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "running");
	assert_non_null(strstr(log, "\"query-status\""));   /* the trace is on */
	if (strstr(log, "\"query-migrate\""))
		fail_msg("query-migrate asked with mig_out false:\n%s", log);
	free(log);

	/* a record from before the key: asked */
	t_ctl_close(&x->ca);
	x->ca.fd = -1;
	t_daemon_kill9(&x->a);
	char path[700];
	snprintf(path, sizeof(path), "%s/%s/state.json", x->a.run, GUEST);
	json_object_del(rec, "mig_out");
	assert_int_equal(json_dump_file(rec, path, JSON_COMPACT), 0);
	json_decref(rec);
	log = readopt_traced(x);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "running");
	if (!strstr(log, "\"query-migrate\""))
		fail_msg("query-migrate not asked for a record without mig_out:\n%s", log);
	free(log);

	/* on record while a migration runs, and a re-adoption picks it up */
	t_serial_close(&x->ser);
	memset(&x->ser, 0, sizeof(x->ser));
	t_loop_finish(&x->loop);
	uv_loop_init(&x->loop);   /* teardown finishes it */
	start_slow(x);
	rec = record_of(x);
	assert_true(json_is_true(json_object_get(rec, "mig_out")));
	json_decref(rec);
	log = readopt_traced(x);
	free(log);
	wait_state(&x->ca, "migrating", 10000);
	json_t *r = t_ctl_call(&x->ca, "migrate-cancel", json_pack("{s:s}", "name", GUEST), 10000);
	expect_ok(r, "migrate-cancel", x);
	json_decref(r);
	wait_state(&x->ca, "running", 20000);
	bool off = false;
	for (int i = 0; i < 100 && !off; i++) {   /* written on the thread pool */
		rec = record_of(x);
		off = json_is_false(json_object_get(rec, "mig_out"));
		json_decref(rec);
		if (!off)
			usleep(20000);
	}
	assert_true(off);
	wait_state(&x->cb, "stopped", 20000);
	printf("# note: mig_out false, true while migrating, false after the cancel; "
	       "query-migrate asked only where it may run\n");
}

int main(void)
{
	/* First, while the process has one thread: a network namespace of our
	 * own (with lo up, for the loopback tests), unless we may not. */
	t_netns_enter();
	if (!t_netns_skip[0])
		t_if_up("lo");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unix_then_tcp_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_before_anything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_mid_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destination_killed_mid_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_postcopy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_source_qsupd_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_after_qsupd_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mig_out_on_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_across_namespaces, setup, teardown),
	};
	return cmocka_run_group_tests_name("migrate", tests, NULL, NULL);
}
