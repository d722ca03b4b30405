/*
 * Live migration without shared storage (migrate --copy-storage) between
 * two real qsupd with separate profile, run, state and disk dirs, the tiny
 * guest under TCG writing a counter to its disk (diskcount: sector N holds
 * "QSUP-DISK N" once QSUP-DISKCOUNT N is on the console).
 *
 * - automatic copy-storage (the destination lacks the disk) while the
 *   guest writes, with a hot-plugged disk too: the destination continues
 *   the counter, and its disks, read after the guest is stopped, hold every
 *   write made before (and after) the switch-over and the data that was
 *   there before the migration;
 * - cancel during the mirror and during the RAM phase; the destination's
 *   QEMU killed during the mirror; the source qsupd SIGKILLed during the
 *   mirror: the guest runs on the source, writing on, no job or nbd node
 *   left in its QEMU, the destination stopped and its created image gone;
 * - a destination that holds a different image at the path: refused, the
 *   path named; --force overwrites it, over tcp to a qsupd in a second
 *   network namespace joined by veth (the NBD export on a tcp port there);
 * - [migration] tls = psk: the export refuses a client without the key;
 * - a guest with two snapshots (the counter's sectors written before
 *   each): a cancel while its backing layers are copied leaves it running
 *   on the source, its chain intact, the destination's created layers
 *   gone; then the copy: the counter goes on at the destination, which
 *   lists the same snapshots, on its own files; back and there again
 *   (each QEMU one the guest came into by migration); stopped, b's chain holds
 *   every write; a revert there to the first snapshot gives back the data
 *   of that point; copying it back then (the second snapshot's image off
 *   the running chain) is refused, the snapshot named; a delete there
 *   works.
 */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "netns.h"
#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define GUEST "cs"
#define DISK_MIB 64
#define DATA_AT (40u << 20)     /* the pattern written before the guest starts */
#define DATA_LEN (4u << 20)

struct fx {
	struct t_daemon a, b;
	struct t_ctl ca, cb;
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen;
	char img_a[700], img_b[700];
	struct t_netns_peer ns; /* b's namespace (here, there: -1 when none) */
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	t_pair_init(&x->a, &x->b, &x->ca, &x->cb);
	uv_loop_init(&x->loop);
	snprintf(x->img_a, sizeof(x->img_a), "%s/data.img", x->a.dir);
	snprintf(x->img_b, sizeof(x->img_b), "%s/data.img", x->b.dir);
	x->ns.here = x->ns.there = -1;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	t_serial_close(&x->ser);
	t_loop_finish(&x->loop);
	t_pair_finish(&x->a, &x->b, &x->ca, &x->cb);
	t_netns_peer_close(&x->ns);
	free(x);
	return 0;
}

static const char *mig_section = "";   /* [migration] for both profiles */

static void profile(struct t_daemon *d, const char *img)
{
	char extra[1024];
	snprintf(extra, sizeof(extra), "\n[disk.data]\nfile = %s\nformat = raw\n%s", img,
	         mig_section);
	t_daemon_tiny_profile(d, GUEST, extra);
}

/* A raw image of DISK_MIB with a pattern (byte c) at DATA_AT. */
static void make_image(const char *path, int c)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)DISK_MIB << 20), 0);
	char *buf = malloc(DATA_LEN);
	memset(buf, c, DATA_LEN);
	assert_int_equal(pwrite(fd, buf, DATA_LEN, DATA_AT), (ssize_t)DATA_LEN);
	free(buf);
	close(fd);
}

static json_t *status(struct t_ctl *c)
{
	json_t *s = t_ctl_do(c, "status", GUEST, 5000, NULL);
	assert_non_null(s);
	return s;
}

static void wait_state(struct fx *x, struct t_ctl *c, const char *want, int ms)
{
	if (t_ctl_poll_state(c, GUEST, want, ms) == 0)
		return;
	fail_msg("state %s, not %s\n-- a:\n%s\n-- b:\n%s", t_ctl_state(c, GUEST), want,
	         t_daemon_log(&x->a), t_daemon_log(&x->b));
}

static void expect_ok(json_t *r, const char *what, struct fx *x)
{
	if (!json_object_get(r, "return"))
		fail_msg("%s: %s\n-- a:\n%s\n-- b:\n%s", what, json_dumps(r, 0),
		         t_daemon_log(&x->a), t_daemon_log(&x->b));
}

/* "# note: " and v as JSON. */
static void note_json(json_t *v)
{
	char *text = json_dumps(v, 0);
	printf("# note: %s\n", text ? text : "?");
	free(text);
}

/* The highest QSUP-DISKCOUNT on the console so far. */
static long last_count(struct fx *x)
{
	return t_serial_highest(&x->ser, "QSUP-DISKCOUNT");
}

static void console(struct fx *x, struct t_ctl *c)
{
	assert_int_equal(t_ctl_console_reopen(c, GUEST, &x->loop, &x->ser, &x->seen), 0);
}

/* The disk counter goes on (a few more writes) on the console of c. A
 * console opened anew shows only what comes from then on: the counter may
 * be past before + 5 already (a slow migration), so any count from there
 * on does. */
static long count_goes_on(struct fx *x, struct t_ctl *c, long before, bool reopen)
{
	if (reopen)
		console(x, c);
	double t0 = t_now();
	while (last_count(x) < before + 5 && t_now() - t0 < 30)
		t_serial_wait(&x->ser, "QSUP-DISKCOUNT", &x->seen, 1000);
	if (last_count(x) < before + 5)
		fail_msg("the disk counter did not go on from %ld:\n%s", before,
		         x->ser.buf ? x->ser.buf : "");
	if (strstr(x->ser.buf, "QSUP-DISKCOUNT failed"))
		fail_msg("the guest's disk write failed:\n%s", x->ser.buf);
	return last_count(x);
}

/* The source with the disk (the pattern at DATA_AT), the destination's
 * profile naming its own path; the guest writes its counter on vda. */
static void start_source(struct fx *x, bool made)
{
	if (!made)
		make_image(x->img_a, 0xa5);
	profile(&x->a, x->img_a);
	profile(&x->b, x->img_b);
	t_daemon_up(&x->a, &x->ca);
	if (x->ns.there >= 0)   /* b's qsupd and QEMU live in the other namespace */
		assert_int_equal(setns(x->ns.there, CLONE_NEWNET), 0);
	t_daemon_up(&x->b, &x->cb);
	if (x->ns.there >= 0)
		assert_int_equal(setns(x->ns.here, CLONE_NEWNET), 0);
	json_t *s = t_ctl_do(&x->ca, "start", GUEST, 60000, NULL);
	if (!s)
		fail_msg("start failed:\n%s", t_daemon_log(&x->a));
	json_decref(s);
	console(x, &x->ca);
	if (t_serial_wait(&x->ser, "QSUP-GUEST-READY", &x->seen, 60000) < 0)
		fail_msg("no READY:\n%s", x->ser.buf ? x->ser.buf : "");
	assert_int_equal(t_serial_write(&x->ser, "diskcount vda"), 0);
	if (t_serial_wait(&x->ser, "QSUP-DISKCOUNT 3", &x->seen, 30000) < 0)
		fail_msg("no disk counter:\n%s", x->ser.buf ? x->ser.buf : "");
	printf("# using tcg (the tiny guest writing a counter to its disk)\n");
}

static json_t *migrate(struct fx *x, const char *uri, const char *bandwidth, bool copy,
                       bool force, bool wait)
{
	json_t *a = json_pack("{s:s, s:b, s:s}", "name", GUEST, "wait", wait, "to", x->b.sock);
	if (uri)
		json_object_set_new(a, "uri", json_string(uri));
	if (bandwidth)
		json_object_set_new(a, "bandwidth", json_string(bandwidth));
	if (copy)
		json_object_set_new(a, "copy-storage", json_true());
	if (force)
		json_object_set_new(a, "force", json_true());
	return t_ctl_call(&x->ca, "migrate", a, 180000);
}

/* Every sector 1..n of img holds "QSUP-DISK i"; the pattern is there. */
static void check_disk(const char *img, long n, int c)
{
	int fd = open(img, O_RDONLY);
	assert_true(fd >= 0);
	char sec[513], want[64];
	for (long i = 1; i <= n; i++) {
		assert_int_equal(pread(fd, sec, 512, (off_t)i * 512), 512);
		sec[512] = '\0';
		snprintf(want, sizeof(want), "QSUP-DISK %ld\n", i);
		if (strncmp(sec, want, strlen(want)))
			fail_msg("%s: sector %ld holds '%.20s', not '%s' (of %ld writes)", img, i, sec,
			         want, n);
	}
	char *buf = malloc(DATA_LEN);
	assert_int_equal(pread(fd, buf, DATA_LEN, DATA_AT), (ssize_t)DATA_LEN);
	for (size_t i = 0; i < DATA_LEN; i++)
		if ((unsigned char)buf[i] != c)
			fail_msg("%s: byte %zu of the pattern is %#x, not %#x", img, i,
			         (unsigned char)buf[i], c);
	free(buf);
	close(fd);
}

/* The source's QEMU has no mirror job nor nbd node left. */
static void no_leftovers(struct fx *x)
{
	for (int i = 0; i < 100; i++) {
		json_t *r = t_ctl_call(&x->ca, "qmp", json_pack("{s:s, s:s}", "name", GUEST, "command",
		                       "query-named-block-nodes"), 10000);
		expect_ok(r, "query-named-block-nodes", x);
		char *text = json_dumps(json_object_get(r, "return"), 0);
		json_decref(r);
		r = t_ctl_call(&x->ca, "qmp", json_pack("{s:s, s:s}", "name", GUEST, "command",
		               "query-jobs"), 10000);
		expect_ok(r, "query-jobs", x);
		size_t jobs = json_array_size(json_object_get(r, "return"));
		json_decref(r);
		bool clean = !strstr(text, "qsup-mirror") && !strstr(text, "qsup-layer") &&
		             jobs == 0;
		free(text);
		if (clean)
			return;
		usleep(100000);
	}
	fail_msg("mirror jobs or nbd nodes left in the source's QEMU");
}

/* Let a slow copy finish quickly: the mirror uncapped, then, once the RAM
 * phase has begun (qsupd sets the migration's bandwidth when it starts it),
 * the RAM too. A long RAM phase is not only slow: on this TCG (QEMU 7.2),
 * a busy guest whose RAM took 20 s to migrate on a loaded host came out
 * with its memory corrupted in about one run of three (a kernel oops or a
 * soft lockup at once on the destination), after a plain migration as
 * after copy-storage, with or without a qsupd restart: QEMU's dirty
 * tracking under TCG, not qsup's sequence, which is the same either way.
 * So the RAM goes in as few passes as may be: no bandwidth cap, and a
 * downtime limit (10 s) that lets QEMU stop the guest and send the rest as
 * soon as one pass is over, where the default 300 ms makes it pass over
 * the RAM the guest dirtied again and again on a loaded host. */
static void finish_quickly(struct fx *x)
{
	json_t *r = t_ctl_call(&x->ca, "qmp", json_pack("{s:s, s:s, s:{s:s, s:i}}", "name", GUEST,
	                       "command", "block-job-set-speed", "arguments", "device",
	                       "qsup-mirror-data", "speed", 0), 10000);
	expect_ok(r, "block-job-set-speed", x);
	json_decref(r);
	for (int i = 0; i < 1200; i++) {
		json_t *s = status(&x->ca);
		json_t *p = json_object_get(json_object_get(s, "migration"), "progress");
		bool ram = p != NULL;
		json_decref(s);
		if (ram || !strcmp(t_ctl_state(&x->ca, GUEST), "migrated"))
			break;
		usleep(100000);
	}
	r = t_ctl_call(&x->ca, "qmp", json_pack("{s:s, s:s, s:{s:I, s:I}}", "name", GUEST,
	               "command", "migrate-set-parameters", "arguments", "max-bandwidth",
	               (json_int_t)1 << 40, "downtime-limit", (json_int_t)10000), 10000);
	json_decref(r);   /* refused once the migration is over: nothing left to hurry */
}

/* After a failed or cancelled copy: the guest runs on the source (same
 * QEMU), writing on; the destination is stopped and its image gone. */
static void back_on_source(struct fx *x, int pid)
{
	wait_state(x, &x->ca, "running", 30000);
	assert_int_equal(t_ctl_pid(&x->ca, GUEST), pid);
	wait_state(x, &x->cb, "stopped", 30000);
	no_leftovers(x);
	struct stat st;
	for (int i = 0; i < 100 && stat(x->img_b, &st) == 0; i++)
		usleep(100000);
	if (stat(x->img_b, &st) == 0)
		fail_msg("the destination kept %s\n-- b:\n%s", x->img_b, t_daemon_log(&x->b));
	long n = count_goes_on(x, &x->ca, last_count(x), false);
	printf("# note: the source writes on (%ld)\n", n);
}

static void test_copy_while_writing(void **state)
{
	struct fx *x = *state;
	start_source(x, false);
	/* a hot-plugged disk, with a pattern of its own */
	char hp[700];
	snprintf(hp, sizeof(hp), "%s/extra.img", x->a.dir);
	make_image(hp, 0x3c);
	json_t *r = t_ctl_call(&x->ca, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name",
	                       GUEST, "kind", "disk", "id", "extra", "file", hp, "format", "raw"),
	                       30000);
	expect_ok(r, "attach", x);
	json_decref(r);
	long before = last_count(x);
	/* automatic: b lacks the disk; through qsupctl, with its progress */
	char out[16384];
	const char *argv[] = { t_qsupctl(), "-s", x->a.sock, "migrate", "--wait", "--to",
	                       x->b.sock, GUEST, NULL };
	if (t_run_capture(argv, out, sizeof(out), 180000) != 0)
		fail_msg("qsupctl migrate: %s\n-- a:\n%s\n-- b:\n%s", out, t_daemon_log(&x->a),
		         t_daemon_log(&x->b));
	printf("# note: %s", strstr(out, "done in") ? strstr(out, "done in") : out);
	assert_non_null(strstr(out, "done in"));
	assert_non_null(strstr(out, "disks "));   /* the disks' progress was shown */
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "migrated");
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "running");
	assert_non_null(strstr(t_daemon_log(&x->b), "this host lacks the disks"));
	/* the destination continues the counter, on its own copy */
	long after = count_goes_on(x, &x->cb, before, true);
	long first = strtol(strstr(x->ser.buf, "QSUP-DISKCOUNT ") + 15, NULL, 10);
	printf("# note: disk counter %ld before, %ld first seen after, %ld last\n", before, first,
	       after);
	assert_true(first > before && first <= before + 30);
	json_t *s = t_ctl_do(&x->cb, "stop", GUEST, 60000, NULL);
	json_decref(s);
	wait_state(x, &x->cb, "stopped", 60000);
	/* every write the guest reported, on both sides, is on b's disk */
	after = last_count(x);
	check_disk(x->img_b, after, 0xa5);
	char hp_b[700];
	snprintf(hp_b, sizeof(hp_b), "%s/%s.copied/extra.img", x->b.state, GUEST);
	int fd = open(hp_b, O_RDONLY);
	if (fd < 0)
		fail_msg("no %s\n-- b:\n%s", hp_b, t_daemon_log(&x->b));
	close(fd);
	check_disk(hp_b, 0, 0x3c);
	/* and the source's disk was never written by the destination */
	check_disk(x->img_a, before, 0xa5);
}

/* A slow copy (bandwidth caps the mirror too): 16 MiB of data to mirror. */
static void start_slow(struct fx *x, const char *bw)
{
	json_t *r = migrate(x, NULL, bw, true, false, false);
	expect_ok(r, "migrate --copy-storage (slow)", x);
	assert_string_equal(t_str(json_object_get(r, "return"), "status"), "mirroring");
	json_decref(r);
	wait_state(x, &x->ca, "migrating", 10000);
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "incoming");
	struct stat st;
	assert_int_equal(stat(x->img_b, &st), 0);   /* created there */
	/* the mirror runs: some of the disk is across */
	json_int_t done = 0;
	for (int i = 0; i < 300 && done <= 0; i++) {
		json_t *s = status(&x->ca);
		done = json_integer_value(json_object_get(json_object_get(s, "migration"),
		                                          "disk-transferred"));
		json_decref(s);
		if (done <= 0)
			usleep(100000);
	}
	if (done <= 0)
		fail_msg("the mirror did not start\n-- a:\n%s", t_daemon_log(&x->a));
}

static void fill(struct fx *x)
{
	/* more data to copy than the cap lets through quickly */
	int fd = open(x->img_a, O_RDWR);
	assert_true(fd >= 0);
	char *buf = malloc(16u << 20);
	memset(buf, 0x77, 16u << 20);
	assert_int_equal(pwrite(fd, buf, 16u << 20, 8u << 20), (ssize_t)(16u << 20));
	free(buf);
	close(fd);
}

static void test_cancel_during_mirror(void **state)
{
	struct fx *x = *state;
	make_image(x->img_a, 0xa5);
	fill(x);
	start_source(x, true);
	int pid = t_ctl_pid(&x->ca, GUEST);
	start_slow(x, "2M");
	json_t *st = status(&x->ca);
	note_json(json_object_get(st, "migration"));
	json_decref(st);
	json_t *r = t_ctl_call(&x->ca, "migrate-cancel", json_pack("{s:s}", "name", GUEST), 10000);
	expect_ok(r, "migrate-cancel", x);
	json_decref(r);
	back_on_source(x, pid);
	assert_non_null(strstr(t_daemon_log(&x->a), "cancelled (while copying the disks)"));
	assert_non_null(strstr(t_daemon_log(&x->b), "removed 1 image"));
}

static void test_cancel_during_ram(void **state)
{
	struct fx *x = *state;
	start_source(x, false);
	int pid = t_ctl_pid(&x->ca, GUEST);
	/* the disk (64 MiB, mostly holes) is in sync quickly; 256 MiB of RAM
	 * at 4 MiB/s is not */
	start_slow(x, "4M");
	json_t *st = NULL;
	for (int i = 0; i < 600; i++) {
		st = status(&x->ca);
		json_t *p = json_object_get(json_object_get(st, "migration"), "progress");
		if (p && !strcmp(t_str(p, "status"), "active"))
			break;
		json_decref(st);
		st = NULL;
		usleep(100000);
	}
	if (!st)
		fail_msg("the RAM phase did not begin\n-- a:\n%s", t_daemon_log(&x->a));
	note_json(json_object_get(json_object_get(st, "migration"), "progress"));
	json_decref(st);
	json_t *r = t_ctl_call(&x->ca, "migrate-cancel", json_pack("{s:s}", "name", GUEST), 10000);
	expect_ok(r, "migrate-cancel", x);
	json_decref(r);
	back_on_source(x, pid);
}

static void test_destination_killed_during_mirror(void **state)
{
	struct fx *x = *state;
	make_image(x->img_a, 0xa5);
	fill(x);
	start_source(x, true);
	int pid = t_ctl_pid(&x->ca, GUEST);
	start_slow(x, "2M");
	int dpid = t_ctl_pid(&x->cb, GUEST);
	assert_true(dpid > 0);
	kill(dpid, SIGKILL);
	back_on_source(x, pid);
	const char *note = strstr(t_daemon_log(&x->a), "migration to ");
	printf("# note: %.*s\n", note ? (int)strcspn(note, "\n") : 1, note ? note : "?");
	assert_non_null(note);
}

static void test_source_qsupd_killed_during_mirror(void **state)
{
	struct fx *x = *state;
	make_image(x->img_a, 0xa5);
	fill(x);
	start_source(x, true);
	int pid = t_ctl_pid(&x->ca, GUEST);
	start_slow(x, "2M");
	t_ctl_close(&x->ca);
	t_daemon_kill9(&x->a);
	t_daemon_up(&x->a, &x->ca);
	console(x, &x->ca);
	back_on_source(x, pid);
	assert_non_null(strstr(t_daemon_log(&x->a), "was under way when qsupd went away"));
}

/* The destination's qsupd dies during the mirror. (1) Its QEMU dies too
 * before it comes back: the copy fails, the guest runs on here, and the
 * qsupd that comes back removes the image it had created (its record in
 * the state dir). (2) Its QEMU lives on: the qsupd that comes back takes
 * the incoming copy over, and once the stream is in the guest runs there,
 * on the image it created, which it keeps. */
static void test_destination_qsupd_killed_during_mirror(void **state)
{
	struct fx *x = *state;
	char rec[800];
	struct stat st;
	make_image(x->img_a, 0xa5);
	fill(x);
	start_source(x, true);
	int pid = t_ctl_pid(&x->ca, GUEST);
	snprintf(rec, sizeof(rec), "%s/%s.copy-in.json", x->b.state, GUEST);
	/* (1) */
	start_slow(x, "2M");
	int dpid = t_ctl_pid(&x->cb, GUEST);
	assert_int_equal(stat(rec, &st), 0);   /* what b made, on record */
	t_ctl_close(&x->cb);
	t_daemon_kill9(&x->b);
	kill(dpid, SIGKILL);
	for (int i = 0; i < 300 && strcmp(t_ctl_state(&x->ca, GUEST), "running"); i++)
		usleep(100000);   /* the mirror fails: the guest stays here */
	t_daemon_up(&x->b, &x->cb);
	back_on_source(x, pid);
	assert_non_null(strstr(t_daemon_log(&x->b), "removing the 1 image created for it"));
	for (int i = 0; i < 100 && stat(rec, &st) == 0; i++)
		usleep(100000);
	assert_int_not_equal(stat(rec, &st), 0);
	/* (2): the mirror at 4 MiB/s takes long enough for b's qsupd to come back.
	 * The console is let go meanwhile: one nobody reads fills up, and a
	 * guest whose serial line is stuck when it leaves stays stuck there. */
	long before = last_count(x);
	t_serial_close(&x->ser);
	start_slow(x, "4M");
	dpid = t_ctl_pid(&x->cb, GUEST);
	t_ctl_close(&x->cb);
	t_daemon_kill9(&x->b);
	t_daemon_up(&x->b, &x->cb);
	wait_state(x, &x->cb, "incoming", 30000);   /* re-adopted */
	assert_int_equal(t_ctl_pid(&x->cb, GUEST), dpid);
	assert_non_null(strstr(t_daemon_log(&x->b), "kept if the stream comes in"));
	finish_quickly(x);
	wait_state(x, &x->cb, "running", 120000);
	wait_state(x, &x->ca, "migrated", 30000);
	assert_int_equal(t_ctl_pid(&x->cb, GUEST), dpid);
	console(x, &x->cb);
	/* (by time: a guest paused long may print a stall warning first) */
	for (time_t end = time(NULL) + 60; time(NULL) < end && last_count(x) <= before + 3;)
		t_serial_wait(&x->ser, "QSUP-DISKCOUNT", &x->seen, 1000);
	long n = last_count(x);
	if (n <= before + 3 || strstr(x->ser.buf ? x->ser.buf : "", "QSUP-DISKCOUNT failed"))
		fail_msg("the disk counter did not go on on b from %ld:\n%s\n-- a:\n%s\n-- b:\n%s",
		         before, x->ser.buf ? x->ser.buf : "", t_daemon_log(&x->a),
		         t_daemon_log(&x->b));
	assert_int_equal(stat(x->img_b, &st), 0);
	assert_int_not_equal(stat(rec, &st), 0);
	json_decref(t_ctl_do(&x->cb, "kill", GUEST, 30000, NULL));
	wait_state(x, &x->cb, "stopped", 30000);
	check_disk(x->img_b, n, 0xa5);
	printf("# note: the copy went on across b's qsupd restart; %ld writes on b's image\n", n);
}

static void test_refused_then_forced_across_namespaces(void **state)
{
	struct fx *x = *state;
	if (t_netns_skip[0]) {
		printf("# skip: %s\n", t_netns_skip);
		skip();
	}
	/* b in a second namespace, as test-migrate does */
	t_netns_peer(&x->ns, "qcs0", "qcs1", "10.78.0");
	make_image(x->img_b, 0x11);   /* a different image where b's profile points */
	start_source(x, false);
	printf("# b in another network namespace, joined by veth: 10.78.0.1 (a), 10.78.0.2 (b)\n");
	long before = last_count(x);
	/* a disk with a backing chain: copy-storage refuses it, by name */
	char base[700], top[700], out0[4096];
	snprintf(base, sizeof(base), "%s/base.img", x->a.dir);
	snprintf(top, sizeof(top), "%s/chained.qcow2", x->a.dir);
	make_image(base, 0x22);
	const char *mk[] = { "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F",
	                     "raw", top, NULL };
	assert_int_equal(t_run_capture(mk, out0, sizeof(out0), 30000), 0);
	json_t *r = t_ctl_call(&x->ca, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name",
	                       GUEST, "kind", "disk", "id", "chained", "file", top, "format",
	                       "qcow2"), 30000);
	expect_ok(r, "attach (with a backing file)", x);
	json_decref(r);
	r = migrate(x, NULL, NULL, true, true, true);
	json_t *e = json_object_get(r, "error");
	if (!e)
		fail_msg("a disk with a backing chain was copied: %s", json_dumps(r, 0));
	printf("# note: %s\n", t_str(e, "desc"));
	assert_non_null(strstr(t_str(e, "desc"), "disk chained has a backing chain"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "running");
	r = t_ctl_call(&x->ca, "detach", json_pack("{s:s, s:s}", "name", GUEST, "id", "chained"),
	               30000);
	expect_ok(r, "detach", x);
	json_decref(r);
	/* an image that is there already: refused, the path named */
	r = migrate(x, NULL, NULL, true, false, true);
	e = json_object_get(r, "error");
	if (!e)
		fail_msg("not refused: %s", json_dumps(r, 0));
	printf("# note: %s\n", t_str(e, "desc"));
	assert_non_null(strstr(t_str(e, "desc"), x->img_b));
	assert_non_null(strstr(t_str(e, "desc"), "--force"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "running");
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "stopped");
	/* without --copy-storage: b has the file, so no copy; and no
	 * --copy-storage without --to */
	const char *argv[] = { t_qsupctl(), "-s", x->a.sock, "migrate", "--copy-storage", GUEST,
	                       "unix:/nonexistent", NULL };
	char out[4096];
	assert_int_not_equal(t_run_capture(argv, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "--to"));
	/* --force: overwritten, over tcp to the other namespace (NBD on a tcp
	 * port there) */
	r = migrate(x, "tcp:10.78.0.2:4445", NULL, true, true, true);
	expect_ok(r, "migrate --copy-storage --force (tcp)", x);
	json_t *ret = json_object_get(r, "return");
	printf("# note: tcp: %lld ms, downtime %lld ms, disks %lld of %lld bytes\n",
	       (long long)json_integer_value(json_object_get(ret, "total-time")),
	       (long long)json_integer_value(json_object_get(ret, "downtime")),
	       (long long)json_integer_value(json_object_get(ret, "disk-transferred")),
	       (long long)json_integer_value(json_object_get(ret, "disk-total")));
	assert_true(json_is_true(json_object_get(ret, "copy-storage")));
	json_decref(r);
	assert_non_null(strstr(t_daemon_log(&x->b), "exported on tcp:10.78.0.2:"));
	/* b's QEMU really is in the other namespace */
	char mine[64], its[64], path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", t_ctl_pid(&x->cb, GUEST));
	ssize_t n1 = readlink("/proc/thread-self/ns/net", mine, sizeof(mine) - 1);
	ssize_t n2 = readlink(path, its, sizeof(its) - 1);
	assert_true(n1 > 0 && n2 > 0);
	mine[n1] = its[n2] = '\0';
	assert_string_not_equal(mine, its);
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "running");
	count_goes_on(x, &x->cb, before, true);
	json_decref(t_ctl_do(&x->cb, "stop", GUEST, 60000, NULL));
	wait_state(x, &x->cb, "stopped", 60000);
	check_disk(x->img_b, last_count(x), 0xa5);
}

/* [migration] tls = psk: a key per migration, in a 0600 file on both
 * sides while it runs; the NBD export refuses a client without it; the
 * copy completes over TLS; the key files go afterwards. */
static void test_tls_psk(void **state)
{
	struct fx *x = *state;
	mig_section = "[migration]\ntls = psk\n";
	make_image(x->img_a, 0xa5);
	fill(x);
	start_source(x, true);
	mig_section = "";
	start_slow(x, "2M");
	char keys[2][900];
	struct stat st;
	snprintf(keys[0], sizeof(keys[0]), "%s/%s/qemu/tls/keys.psk", x->a.run, GUEST);
	snprintf(keys[1], sizeof(keys[1]), "%s/%s/qemu/tls/keys.psk", x->b.run, GUEST);
	for (int i = 0; i < 2; i++) {
		if (stat(keys[i], &st) < 0)
			fail_msg("no %s", keys[i]);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	/* the same key on both sides, 64 hex digits */
	char ka[128] = "", kb[128] = "";
	FILE *f = fopen(keys[0], "r");
	assert_non_null(fgets(ka, sizeof(ka), f));
	fclose(f);
	f = fopen(keys[1], "r");
	assert_non_null(fgets(kb, sizeof(kb), f));
	fclose(f);
	assert_string_equal(ka, kb);
	assert_int_equal(strlen(ka), strlen("qsup:") + 64 + 1);
	/* a client without the key is refused by the export */
	char url[900], out[4096];
	snprintf(url, sizeof(url), "nbd+unix:///data?socket=%s/%s/qemu/nbd.sock", x->b.run, GUEST);
	const char *argv[] = { "/usr/bin/qemu-img", "info", url, NULL };
	int rc = t_run_capture(argv, out, sizeof(out), 20000);
	printf("# note: qemu-img info without the key: exit %d: %.*s\n", rc,
	       (int)strcspn(out, "\n"), out);
	assert_int_not_equal(rc, 0);
	finish_quickly(x);
	wait_state(x, &x->ca, "migrated", 120000);
	wait_state(x, &x->cb, "running", 30000);
	assert_non_null(strstr(t_daemon_log(&x->a), "TLS-PSK"));
	assert_non_null(strstr(t_daemon_log(&x->b), "TLS-PSK"));
	long before = last_count(x);
	count_goes_on(x, &x->cb, before, true);
	json_decref(t_ctl_do(&x->cb, "stop", GUEST, 60000, NULL));
	wait_state(x, &x->cb, "stopped", 60000);
	check_disk(x->img_b, last_count(x), 0xa5);
	for (int i = 0; i < 2; i++) {
		for (int k = 0; k < 50 && stat(keys[i], &st) == 0; k++)
			usleep(100000);
		if (stat(keys[i], &st) == 0)
			fail_msg("%s is still there", keys[i]);
	}
}

/* ---- snapshot chains ---- */

static json_t *snap(struct fx *x, struct t_ctl *c, const char *action, const char *name)
{
	json_t *a = json_pack("{s:s, s:s}", "name", GUEST, "action", action);
	if (name)
		json_object_set_new(a, "snapshot", json_string(name));
	json_t *r = t_ctl_call(c, "snapshot", a, 180000);
	expect_ok(r, action, x);
	json_t *ret = json_incref(json_object_get(r, "return"));
	json_decref(r);
	return ret;
}

/* snapshot list: "NAME<PARENT ..." each, the current one starred; its
 * active image of disk data into active (if not NULL). */
static void snap_names(struct fx *x, struct t_ctl *c, char *out, size_t size, char *active,
                       size_t asize)
{
	json_t *l = snap(x, c, "list", NULL), *e;
	size_t i;
	out[0] = '\0';
	json_array_foreach(json_object_get(l, "snapshots"), i, e)
		snprintf(out + strlen(out), size - strlen(out), "%s<%s%s ", t_str(e, "name"),
		         json_is_string(json_object_get(e, "parent")) ? t_str(e, "parent") : "-",
		         json_is_true(json_object_get(e, "current")) ? "*" : "");
	if (active)
		snprintf(active, asize, "%s", t_str(json_object_get(l, "active"), "data"));
	json_decref(l);
}

/* What the guest sees on a chain: qemu-img convert to a raw file. */
static void flatten(const char *img, const char *raw)
{
	char out[4096];
	const char *argv[] = { "/usr/bin/qemu-img", "convert", "-U", "-O", "raw", img, raw, NULL };
	if (t_run_capture(argv, out, sizeof(out), 60000) != 0)
		fail_msg("qemu-img convert %s: %s", img, out);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void test_snapshot_chain(void **state)
{
	struct fx *x = *state;
	char la[512], lb[512], act_a[700], act_b[700], raw[800], s1b[800], s2b[800];
	make_image(x->img_a, 0xa5);
	fill(x);
	start_source(x, true);
	int pid = t_ctl_pid(&x->ca, GUEST);
	/* two snapshots, the counter's sectors written before each */
	long c1 = last_count(x);
	json_decref(snap(x, &x->ca, "create", "s1"));
	long c1b = count_goes_on(x, &x->ca, last_count(x), false);
	json_decref(snap(x, &x->ca, "create", "s2"));
	long c2 = count_goes_on(x, &x->ca, last_count(x), false);
	snap_names(x, &x->ca, la, sizeof(la), act_a, sizeof(act_a));
	printf("# note: on a: %s(active %s); counter %ld at s1, %ld after\n", la, act_a, c1, c2);
	assert_string_equal(la, "s1<- s2<s1* ");
	snprintf(s1b, sizeof(s1b), "%s.snap1.qcow2", x->img_b);
	snprintf(s2b, sizeof(s2b), "%s.snap2.qcow2", x->img_b);

	/* cancelled while the backing layers are copied (2 MiB/s: the base's
	 * 64 MiB take a while): the guest runs on here, on its chain, and
	 * what b created is gone */
	json_t *r = migrate(x, NULL, "2M", true, false, false);
	expect_ok(r, "migrate --copy-storage (slow)", x);
	json_decref(r);
	wait_state(x, &x->ca, "migrating", 10000);
	json_int_t done = 0;
	for (int i = 0; i < 300 && done <= 0; i++) {
		json_t *st = status(&x->ca);
		done = json_integer_value(json_object_get(json_object_get(st, "migration"),
		                                          "disk-transferred"));
		json_decref(st);
		if (done <= 0)
			usleep(100000);
	}
	if (done <= 0 || !strstr(t_daemon_log(&x->a), "copy-storage: backing layer data.l0"))
		fail_msg("the backing layer's copy did not start\n-- a:\n%s", t_daemon_log(&x->a));
	assert_null(strstr(t_daemon_log(&x->a), "every disk is in sync"));
	assert_true(exists(x->img_b) && exists(s1b) && exists(s2b));   /* created there */
	r = t_ctl_call(&x->ca, "migrate-cancel", json_pack("{s:s}", "name", GUEST), 10000);
	expect_ok(r, "migrate-cancel", x);
	json_decref(r);
	back_on_source(x, pid);
	for (int i = 0; i < 100 && (exists(s1b) || exists(s2b)); i++)
		usleep(100000);
	assert_false(exists(s1b) || exists(s2b));
	assert_non_null(strstr(t_daemon_log(&x->b), "removed 3 images"));
	snap_names(x, &x->ca, lb, sizeof(lb), NULL, 0);
	assert_string_equal(lb, la);
	assert_true(exists(act_a));

	/* the copy: the destination goes on, with the same snapshots */
	long before = last_count(x);
	r = migrate(x, NULL, NULL, true, false, true);
	expect_ok(r, "migrate --copy-storage (snapshots)", x);
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, GUEST), "migrated");
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "running");
	assert_non_null(strstr(t_daemon_log(&x->a), "2 backing layers (snapshots)"));
	long after = count_goes_on(x, &x->cb, before, true);
	printf("# note: disk counter %ld before, %ld after\n", before, after);
	snap_names(x, &x->cb, lb, sizeof(lb), act_b, sizeof(act_b));
	printf("# note: on b: %s(active %s)\n", lb, act_b);
	assert_string_equal(lb, la);
	assert_string_equal(act_b, s2b);
	/* back to a and to b again, over the images left on each (--force),
	 * each time from a QEMU the guest came into by migration */
	struct t_ctl *from[] = { &x->cb, &x->ca }, *to[] = { &x->ca, &x->cb };
	const char *tosock[] = { x->a.sock, x->b.sock };
	for (int i = 0; i < 2; i++) {
		before = last_count(x);
		r = t_ctl_call(from[i], "migrate", json_pack("{s:s, s:b, s:s, s:b, s:b}", "name",
		               GUEST, "wait", 1, "to", tosock[i], "copy-storage", 1, "force", 1),
		               180000);
		expect_ok(r, i ? "migrate a -> b again" : "migrate b -> a", x);
		json_decref(r);
		assert_string_equal(t_ctl_state(from[i], GUEST), "migrated");
		assert_string_equal(t_ctl_state(to[i], GUEST), "running");
		after = count_goes_on(x, to[i], before, true);
		printf("# note: %s: disk counter %ld before, %ld after\n", i ? "a -> b" : "b -> a",
		       before, after);
	}
	snap_names(x, &x->cb, lb, sizeof(lb), act_b, sizeof(act_b));
	assert_string_equal(lb, la);
	assert_string_equal(act_b, s2b);
	json_t *s = t_ctl_do(&x->cb, "stop", GUEST, 60000, NULL);
	json_decref(s);
	wait_state(x, &x->cb, "stopped", 60000);
	after = last_count(x);
	snprintf(raw, sizeof(raw), "%s/flat.raw", x->b.dir);
	flatten(act_b, raw);
	check_disk(raw, after, 0xa5);   /* every write, through b's chain */
	/* back to s1 there: the data of that point */
	json_decref(snap(x, &x->cb, "revert", "s1"));
	snap_names(x, &x->cb, lb, sizeof(lb), act_b, sizeof(act_b));
	printf("# note: on b after the revert: %s(active %s)\n", lb, act_b);
	assert_string_equal(lb, "s1<-* s2<s1 ");
	flatten(act_b, raw);
	check_disk(raw, c1, 0xa5);
	int fd = open(raw, O_RDONLY);
	char sec[64] = "", want[64];
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, sec, sizeof(sec) - 1, (off_t)c1b * 512), (ssize_t)sizeof(sec) - 1);
	close(fd);
	snprintf(want, sizeof(want), "QSUP-DISK %ld\n", c1b);
	assert_true(strncmp(sec, want, strlen(want)) != 0);   /* written after s1 */
	/* s2's image is no longer under the chain b runs on: copying that
	 * guest back is refused, before a thing is made, s2 named */
	s = t_ctl_do(&x->cb, "start", GUEST, 60000, NULL);
	json_decref(s);
	wait_state(x, &x->cb, "running", 60000);
	r = t_ctl_call(&x->cb, "migrate", json_pack("{s:s, s:b, s:s, s:b, s:b}", "name", GUEST,
	               "wait", 1, "to", x->a.sock, "copy-storage", 1, "force", 1), 60000);
	json_t *e = json_object_get(r, "error");
	if (!e)
		fail_msg("a snapshot tree was copied: %s", json_dumps(r, 0));
	printf("# note: %s\n", t_str(e, "desc"));
	assert_non_null(strstr(t_str(e, "desc"), "snapshot s2"));
	assert_non_null(strstr(t_str(e, "desc"), "not in the chain the guest runs on"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->cb, GUEST), "running");
	s = t_ctl_do(&x->cb, "stop", GUEST, 60000, NULL);
	json_decref(s);
	wait_state(x, &x->cb, "stopped", 60000);
	/* and a delete there */
	json_decref(snap(x, &x->cb, "delete", "s2"));
	snap_names(x, &x->cb, lb, sizeof(lb), NULL, 0);
	assert_string_equal(lb, "s1<-* ");
	unlink(raw);
}

int main(void)
{
	t_netns_enter();
	if (!t_netns_skip[0])
		t_if_up("lo");
	if (getenv("QSUP_TEST_FILTER"))
		cmocka_set_test_filter(getenv("QSUP_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_copy_while_writing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_during_mirror, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_during_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destination_killed_during_mirror, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_destination_qsupd_killed_during_mirror, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_source_qsupd_killed_during_mirror, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_refused_then_forced_across_namespaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_psk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_chain, setup, teardown),
	};
	return cmocka_run_group_tests_name("copystorage", tests, NULL, NULL);
}
