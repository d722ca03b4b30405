/*
 * Disk snapshots against a real daemon, real QEMU and the tiny guest
 * (TCG): the guest writes an 8-byte mark at the start of its qcow2 data
 * disk from its busybox shell, snapshots are taken live between marks, and
 * what the guest reads back after each revert, merge, crash-restart and
 * qsupd restart is the mark the chain must hold. Plus the record's check
 * (qsupd --check) and the refusals; with --memory, the guest's RAM: its
 * counter and a file in its RAM come back with a revert.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define str t_str

struct con {
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen;
};

/* The guest's console in its busybox shell; booted: wait for it to be
 * ready first (else it was long ago, and may be in the shell already). */
static void con_attach(struct t_fx *x, struct con *c, const char *name, bool booted)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(t_ctl_console(&x->c, name, &c->loop, &c->ser), 0);
	if (booted && t_serial_wait(&c->ser, "QSUP-GUEST-READY", &c->seen, 90000) < 0)
		fail_msg("no ready marker:\n%s", c->ser.buf ? c->ser.buf : "");
	assert_int_equal(t_serial_write(&c->ser, "sh"), 0);
	assert_int_equal(t_serial_write(&c->ser, "echo SH''-UP"), 0);
	if (t_serial_wait(&c->ser, "SH-UP", &c->seen, 20000) < 0)
		fail_msg("no shell:\n%s", c->ser.buf ? c->ser.buf : "");
}

static void con_open(struct t_fx *x, struct con *c, const char *name)
{
	con_attach(x, c, name, true);
}

static void con_close(struct con *c)
{
	t_serial_close(&c->ser);
	t_loop_finish(&c->loop);
}

/* The guest writes mark (8 bytes) at the start of /dev/dev, synced. */
static void dev_write(struct con *c, const char *dev, const char *mark)
{
	char line[200], done[32];
	snprintf(line, sizeof(line), "printf %s | dd of=/dev/%s conv=fsync 2>/dev/null && "
	         "echo WR''OTE-%s", mark, dev, mark);
	snprintf(done, sizeof(done), "WROTE-%s", mark);
	assert_int_equal(t_serial_write(&c->ser, line), 0);
	if (t_serial_wait(&c->ser, done, &c->seen, 30000) < 0)
		fail_msg("the write of %s did not complete:\n%s", mark, c->ser.buf);
}

/* What the guest reads at the start of /dev/dev must be mark. */
static void dev_expect(struct con *c, const char *dev, const char *mark)
{
	char want[32], line[200];
	snprintf(line, sizeof(line), "echo 3 > /proc/sys/vm/drop_caches; "
	         "echo DI''SK=$(head -c 8 /dev/%s).", dev);
	assert_int_equal(t_serial_write(&c->ser, line), 0);
	size_t from = c->seen;
	if (t_serial_wait(&c->ser, "DISK=", &from, 30000) < 0 ||
	    t_serial_wait(&c->ser, ".", &from, 5000) < 0)
		fail_msg("no read back:\n%s", c->ser.buf);
	snprintf(want, sizeof(want), "DISK=%s.", mark);
	const char *got = strstr(c->ser.buf + c->seen, "DISK=");
	if (!got || strncmp(got, want, strlen(want)))
		fail_msg("the disk holds %.20s, not %s", got ? got : "?", want);
	c->seen = from;
}

static void disk_write(struct con *c, const char *mark)
{
	dev_write(c, "vda", mark);
}

static void disk_expect(struct con *c, const char *mark)
{
	dev_expect(c, "vda", mark);
}

static json_t *snap(struct t_fx *x, const char *name, const char *action, const char *s,
                    bool force)
{
	json_t *args = json_pack("{s:s, s:s}", "name", name, "action", action);
	if (s)
		json_object_set_new(args, "snapshot", json_string(s));
	if (force)
		json_object_set_new(args, "force", json_true());
	return t_ctl_call(&x->c, "snapshot", args, 120000);
}

static json_t *snap_ok(struct t_fx *x, const char *name, const char *action, const char *s,
                       bool force)
{
	json_t *r = snap(x, name, action, s, force);
	json_t *ret = json_incref(json_object_get(r, "return"));
	if (!ret)
		fail_msg("snapshot %s %s: %s (daemon log: %s)", action, s ? s : "",
		         str(json_object_get(r, "error"), "desc"), t_daemon_log(&x->d));
	json_decref(r);
	return ret;
}

/* The error class of a refused snapshot call; its text into desc. */
static const char *snap_err(struct t_fx *x, const char *name, const char *action,
                            const char *s, bool force, char *desc, size_t size)
{
	static char cls[64];
	json_t *r = snap(x, name, action, s, force);
	json_t *e = json_object_get(r, "error");
	assert_non_null(e);
	snprintf(cls, sizeof(cls), "%s", str(e, "class"));
	snprintf(desc, size, "%s", str(e, "desc"));
	json_decref(r);
	return cls;
}

/* The names in a list reply, space-separated, current one starred. */
static void list_names(struct t_fx *x, const char *name, char *out, size_t size)
{
	json_t *l = snap_ok(x, name, "list", NULL, false), *s;
	size_t i;
	out[0] = '\0';
	json_array_foreach(json_object_get(l, "snapshots"), i, s) {
		size_t n = strlen(out);
		snprintf(out + n, size - n, "%s%s%s", n ? " " : "", str(s, "name"),
		         json_is_true(json_object_get(s, "current")) ? "*" : "");
	}
	json_decref(l);
}

static int pid_of(struct t_fx *x, const char *name)
{
	json_t *s = t_fx_must(x, "status", name, 5000);
	int pid = (int)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	return pid;
}

#define DISK "[disk.data]\nfile = %s/vms/data.qcow2\nformat = qcow2\nsize = 16M\n"

static void test_snapshot_revert_merge_crash(void **state)
{
	struct t_fx *x = *state;
	char extra[1024], names[256];
	snprintf(extra, sizeof(extra), DISK "[restart]\npolicy = on-failure\n", x->d.dir);
	t_daemon_tiny_profile(&x->d, "sn", extra);
	t_fx_up(x, NULL);
	struct t_ctl ev;
	assert_int_equal(t_ctl_open(&ev, x->d.sock), 0);
	json_decref(t_ctl_call(&ev, "subscribe", NULL, 5000));
	json_decref(t_fx_must(x, "start", "sn", 60000));
	struct con c;
	con_open(x, &c, "sn");

	/* A, s1, B, s2, C, s3, D: each snapshot holds the mark before it. */
	disk_write(&c, "MARK-AAA");
	json_t *r = snap_ok(x, "sn", "create", "s1", false);
	assert_true(json_is_true(json_object_get(r, "live")));
	assert_string_equal(str(r, "freeze"), "no guest agent connected: not frozen");
	char over[700];
	snprintf(over, sizeof(over), "%s/vms/data.qcow2.snap1.qcow2", x->d.dir);
	assert_string_equal(str(json_object_get(r, "disks"), "data"), over);
	json_decref(r);
	disk_write(&c, "MARK-BBB");
	json_decref(snap_ok(x, "sn", "create", "s2", false));
	disk_write(&c, "MARK-CCC");
	json_decref(snap_ok(x, "sn", "create", "s3", false));
	disk_write(&c, "MARK-DDD");
	disk_expect(&c, "MARK-DDD");
	list_names(x, "sn", names, sizeof(names));
	assert_string_equal(names, "s1 s2 s3*");

	/* The middle one goes while the guest runs: its layer is streamed into
	 * s3's, and nothing the guest sees changes. */
	json_t *m;
	while ((m = t_ctl_next(&ev, 300)))
		json_decref(m);
	r = snap_ok(x, "sn", "delete", "s2", false);
	assert_string_equal(str(json_object_get(r, "merged"), "data"), "block-stream");
	json_decref(r);
	bool merged = false;   /* the progress came as events, before the answer */
	while (!merged && (m = t_ctl_next(&ev, 2000))) {
		json_t *d = json_object_get(m, "data");
		merged = !strcmp(str(m, "event"), "SNAPSHOT_PROGRESS") &&
		         !strcmp(str(d, "snapshot"), "s2") && !strcmp(str(d, "disk"), "data") &&
		         !strcmp(str(d, "phase"), "merged");
		json_decref(m);
	}
	assert_true(merged);
	list_names(x, "sn", names, sizeof(names));
	assert_string_equal(names, "s1 s3*");
	char gone[700];
	snprintf(gone, sizeof(gone), "%s/vms/data.qcow2.snap1.qcow2", x->d.dir);
	assert_int_equal(access(gone, F_OK), -1);   /* s2's layer, merged */
	disk_expect(&c, "MARK-DDD");
	con_close(&c);

	/* kill -9 QEMU: the restarted guest boots the active overlay (D), not
	 * the profile's file (A). */
	while ((m = t_ctl_next(&ev, 300)))
		json_decref(m);
	int pid = pid_of(x, "sn");
	kill(pid, SIGKILL);
	t_fx_wait_state(x, &ev, "sn", "running", 60000);
	assert_int_not_equal(pid_of(x, "sn"), pid);
	con_open(x, &c, "sn");
	disk_expect(&c, "MARK-DDD");
	con_close(&c);

	/* revert of a running guest: refused without force. */
	char desc[600];
	assert_string_equal(snap_err(x, "sn", "revert", "s3", false, desc, sizeof(desc)),
	                    "InvalidState");
	assert_non_null(strstr(desc, "revert needs the guest stopped"));
	/* --force stops it, then reverts: s3 held C (and s2's merged layer under it). */
	r = snap_ok(x, "sn", "revert", "s3", true);
	assert_string_equal(str(r, "state"), "stopped");
	json_decref(r);
	json_decref(t_fx_must(x, "start", "sn", 60000));
	con_open(x, &c, "sn");
	disk_expect(&c, "MARK-CCC");
	con_close(&c);
	json_decref(t_fx_must(x, "stop", "sn", 60000));
	/* A stopped guest reverts at once: s1 held A. */
	json_decref(snap_ok(x, "sn", "revert", "s1", false));
	list_names(x, "sn", names, sizeof(names));
	assert_string_equal(names, "s1* s3");
	json_decref(t_fx_must(x, "start", "sn", 60000));
	con_open(x, &c, "sn");
	disk_expect(&c, "MARK-AAA");
	con_close(&c);
	t_ctl_close(&ev);
}

/* SIGKILL qsupd right after a snapshot: the next qsupd re-adopts the
 * guest, lists the same snapshots, takes another (the nodes QEMU has are
 * found again), and the next start boots the active overlay. */
/* With the guest agent: the file systems are frozen for the switch, and
 * thawed after it. */
static void test_snapshot_agent_freeze(void **state)
{
	struct t_fx *x = *state;
	char extra[1024];
	snprintf(extra, sizeof(extra), "agent = yes\n" DISK, x->d.dir);
	t_daemon_tiny_profile(&x->d, "ag", extra);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "ag", 60000));
	bool connected = false;
	for (int i = 0; i < 600 && !connected; i++) {
		json_t *st = t_ctl_do(&x->c, "status", "ag", 5000, NULL);
		connected = json_is_true(json_object_get(json_object_get(st, "agent"), "connected"));
		json_decref(st);
		if (!connected)
			usleep(100000);
	}
	if (!connected)
		fail_msg("the guest agent never connected: %s", t_daemon_log(&x->d));
	json_t *r = snap_ok(x, "ag", "create", "s1", false);
	printf("# note: freeze: %s\n", str(r, "freeze"));
	assert_int_equal(strncmp(str(r, "freeze"), "frozen (", 8), 0);
	json_decref(r);
	r = t_ctl_call(&x->c, "agent", json_pack("{s:s, s:s}", "name", "ag", "command",
	               "guest-fsfreeze-status"), 15000);
	if (!json_object_get(r, "return"))
		fail_msg("agent: %s", str(json_object_get(r, "error"), "desc"));
	assert_string_equal(json_string_value(json_object_get(r, "return")), "thawed");
	json_decref(r);
	json_t *st = t_ctl_do(&x->c, "status", "ag", 5000, NULL);
	assert_false(json_is_true(json_object_get(json_object_get(st, "agent"), "frozen")));
	json_decref(st);
}

static void test_snapshot_survives_qsupd_sigkill(void **state)
{
	struct t_fx *x = *state;
	char extra[1024], names[256];
	snprintf(extra, sizeof(extra), DISK "[restart]\npolicy = never\n", x->d.dir);
	t_daemon_tiny_profile(&x->d, "sk", extra);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "sk", 60000));
	struct con c;
	con_open(x, &c, "sk");
	disk_write(&c, "MARK-AAA");
	json_decref(snap_ok(x, "sk", "create", "before", false));
	disk_write(&c, "MARK-BBB");
	con_close(&c);
	int pid = pid_of(x, "sk");

	t_ctl_close(&x->c);
	t_daemon_kill9(&x->d);
	t_fx_up(x, NULL);
	json_t *st = t_fx_must(x, "status", "sk", 30000);
	assert_int_equal(json_integer_value(json_object_get(st, "pid")), pid);
	json_decref(st);
	list_names(x, "sk", names, sizeof(names));
	assert_string_equal(names, "before*");
	/* wait for the re-adoption to be over before a verb that needs QMP */
	for (int i = 0; i < 100; i++) {
		st = t_fx_must(x, "status", "sk", 5000);
		bool adopting = json_is_true(json_object_get(st, "adopting"));
		json_decref(st);
		if (!adopting)
			break;
		usleep(100000);
	}
	json_decref(snap_ok(x, "sk", "create", "after", false));
	con_attach(x, &c, "sk", false);
	disk_write(&c, "MARK-CCC");
	con_close(&c);
	json_decref(t_fx_must(x, "stop", "sk", 60000));
	json_decref(t_fx_must(x, "start", "sk", 60000));
	con_open(x, &c, "sk");
	disk_expect(&c, "MARK-CCC");
	con_close(&c);
	list_names(x, "sk", names, sizeof(names));
	assert_string_equal(names, "before after*");
}

/* --check on the record, the refusals, a raw base, a stopped guest. */
static void test_snapshot_check_and_bad_input(void **state)
{
	struct t_fx *x = *state;
	char extra[2048], raw[700], desc[600], out[8192], prof[700];
	snprintf(raw, sizeof(raw), "%s/raw.img", x->d.dir);
	int fd = open(raw, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8 << 20), 0);
	close(fd);
	snprintf(extra, sizeof(extra), DISK "[disk.raw]\nfile = %s\nformat = raw\n",
	         x->d.dir, raw);
	t_daemon_tiny_profile(&x->d, "ck", extra);
	t_fx_up(x, NULL);

	/* Names and actions are checked before anything happens. */
	assert_string_equal(snap_err(x, "ck", "create", "../x", false, desc, sizeof(desc)),
	                    "InvalidArgument");
	assert_string_equal(snap_err(x, "ck", "create", "", false, desc, sizeof(desc)),
	                    "InvalidArgument");
	assert_string_equal(snap_err(x, "ck", "frobnicate", "a", false, desc, sizeof(desc)),
	                    "InvalidArgument");
	assert_string_equal(snap_err(x, "ck", "revert", "nope", false, desc, sizeof(desc)),
	                    "NotFound");
	assert_string_equal(snap_err(x, "ck", "delete", "nope", false, desc, sizeof(desc)),
	                    "NotFound");

	/* Stopped: qemu-img makes the overlays, over the qcow2 (created at
	 * the first start) and over the raw base alike. */
	json_decref(t_fx_must(x, "start", "ck", 60000));
	json_decref(t_fx_must(x, "stop", "ck", 60000));
	json_t *r = snap_ok(x, "ck", "create", "one", false);
	assert_false(json_is_true(json_object_get(r, "live")));
	char rawover[800];
	snprintf(rawover, sizeof(rawover), "%s.snap1.qcow2", raw);
	assert_string_equal(str(json_object_get(r, "disks"), "raw"), rawover);
	json_decref(r);
	assert_string_equal(snap_err(x, "ck", "create", "one", false, desc, sizeof(desc)),
	                    "InvalidArgument");
	assert_non_null(strstr(desc, "exists"));

	snprintf(prof, sizeof(prof), "%s/ck.ini", x->d.profiles);
	const char *check[] = { t_qsupd(), "--check", prof, NULL };
	int rc = t_run_capture(check, out, sizeof(out), 30000);
	if (rc != 0 || !strstr(out, "ck.d/snapshots.json: ok (1 snapshot, current one)"))
		fail_msg("--check: %d\n%s", rc, out);

	/* The guest boots both overlays. */
	json_decref(t_fx_must(x, "start", "ck", 60000));
	json_t *q = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "ck", "command",
	                       "query-block"), 10000);
	char *text = json_dumps(q, 0);
	assert_non_null(strstr(text, raw));            /* the raw base under its overlay */
	free(text);
	json_decref(q);
	/* Migration, save and restore carry the chain: test-snapmig.c. */
	json_decref(t_fx_must(x, "stop", "ck", 60000));

	/* A damaged record: the active overlay gone. */
	assert_int_equal(unlink(rawover), 0);
	rc = t_run_capture(check, out, sizeof(out), 30000);
	if (rc == 0 || !strstr(out, "disk raw: its active image"))
		fail_msg("--check passed a record whose overlay is gone: %d\n%s", rc, out);
	/* ... and the start says why rather than booting something else. */
	json_t *s = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "ck"), 60000);
	assert_non_null(json_object_get(s, "error"));
	json_decref(s);
	/* A record that is not JSON. */
	char rec[800];
	snprintf(rec, sizeof(rec), "%s/ck.d/snapshots.json", x->d.profiles);
	FILE *f = fopen(rec, "w");
	assert_non_null(f);
	fputs("{\"version\": 1, \"seq\": ", f);
	fclose(f);
	rc = t_run_capture(check, out, sizeof(out), 30000);
	if (rc == 0 || !strstr(out, "snapshots.json"))
		fail_msg("--check passed a truncated record: %d\n%s", rc, out);
	assert_string_equal(snap_err(x, "ck", "list", NULL, false, desc, sizeof(desc)),
	                    "GenericError");
	assert_non_null(strstr(desc, "the snapshot record cannot be used"));
}


/* The next QSUP-COUNTER line after c->seen: its value. */
static long next_counter(struct con *c)
{
	size_t from = c->seen;
	if (t_serial_wait(&c->ser, "QSUP-COUNTER ", &from, 30000) < 0 ||
	    t_serial_wait(&c->ser, "\n", &from, 5000) < 0)
		fail_msg("the counter does not run:\n%s", c->ser.buf);
	long v = strtol(strstr(c->ser.buf + c->seen, "QSUP-COUNTER ") + 13, NULL, 10);
	c->seen = from;
	return v;
}

static void ram_expect(struct con *c, const char *mark)
{
	char want[64];
	assert_int_equal(t_serial_write(&c->ser, "echo RA''M=$(cat /run/mark)."), 0);
	snprintf(want, sizeof(want), "RAM=%s.", mark);
	size_t from = c->seen;
	if (t_serial_wait(&c->ser, want, &from, 30000) < 0)
		fail_msg("the guest's memory does not hold %s:\n%s", mark, c->ser.buf + c->seen);
	c->seen = from;
}

/* --memory: the guest's RAM too. Revert brings back the shell's file in
 * RAM and the counter where they were, on the snapshot's disk. */
static void test_snapshot_memory(void **state)
{
	struct t_fx *x = *state;
	char extra[1024], names[256];
	snprintf(extra, sizeof(extra), DISK "[restart]\npolicy = never\n", x->d.dir);
	t_daemon_tiny_profile(&x->d, "mem", extra);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "mem", 60000));
	struct con c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(t_ctl_console(&x->c, "mem", &c.loop, &c.ser), 0);
	if (t_serial_wait(&c.ser, "QSUP-GUEST-READY", &c.seen, 90000) < 0)
		fail_msg("no ready marker:\n%s", c.ser.buf ? c.ser.buf : "");
	assert_int_equal(t_serial_write(&c.ser, "count"), 0);
	if (t_serial_wait(&c.ser, "QSUP-COUNTER 3", &c.seen, 30000) < 0)
		fail_msg("no counter:\n%s", c.ser.buf);
	assert_int_equal(t_serial_write(&c.ser, "sh"), 0);
	assert_int_equal(t_serial_write(&c.ser, "echo RAM-ONE > /run/mark; echo SH''-UP"), 0);
	if (t_serial_wait(&c.ser, "SH-UP", &c.seen, 20000) < 0)
		fail_msg("no shell:\n%s", c.ser.buf);
	disk_write(&c, "MARK-AAA");
	long before = next_counter(&c);
	assert_true(before >= 3);

	json_t *args = json_pack("{s:s, s:s, s:s, s:b}", "name", "mem", "action", "create",
	                         "snapshot", "m1", "memory", true);
	json_t *r = t_ctl_call(&x->c, "snapshot", args, 120000);
	json_t *ret = json_object_get(r, "return");
	if (!ret)
		fail_msg("snapshot --memory: %s\n%s", str(json_object_get(r, "error"), "desc"),
		         t_daemon_log(&x->d));
	char mem[700];
	snprintf(mem, sizeof(mem), "%s/vms/data.qcow2.snap1.qsave", x->d.dir);
	assert_string_equal(str(ret, "memory"), mem);
	assert_string_equal(str(ret, "state"), "running");
	assert_int_equal(access(mem, F_OK), 0);
	json_decref(r);
	con_close(&c);   /* QEMU was restarted from the state file */

	/* The guest goes on from there: change its RAM and its disk. */
	con_attach(x, &c, "mem", false);
	long after = next_counter(&c);
	assert_true(after > before);
	assert_int_equal(t_serial_write(&c.ser, "echo RAM-TWO > /run/mark"), 0);
	ram_expect(&c, "RAM-TWO");
	disk_write(&c, "MARK-BBB");
	con_close(&c);

	/* Revert (forced: the guest runs): RAM, counter and disk as at m1. */
	args = json_pack("{s:s, s:s, s:s, s:b}", "name", "mem", "action", "revert", "snapshot",
	                 "m1", "force", true);
	r = t_ctl_call(&x->c, "snapshot", args, 120000);
	ret = json_object_get(r, "return");
	if (!ret)
		fail_msg("revert: %s\n%s", str(json_object_get(r, "error"), "desc"),
		         t_daemon_log(&x->d));
	assert_string_equal(str(ret, "state"), "running");
	json_decref(r);
	con_attach(x, &c, "mem", false);
	long resumed = next_counter(&c);
	printf("# note: counter %ld at the snapshot, %ld after it, %ld after the revert\n",
	       before, after, resumed);
	assert_true(resumed > before);   /* counting on: not a fresh boot (no counter) */
	ram_expect(&c, "RAM-ONE");
	disk_expect(&c, "MARK-AAA");
	con_close(&c);
	list_names(x, "mem", names, sizeof(names));
	assert_string_equal(names, "m1*");
	json_t *l = snap_ok(x, "mem", "list", NULL, false);
	assert_string_equal(str(json_array_get(json_object_get(l, "snapshots"), 0), "memory"), mem);
	json_decref(l);
	/* Deleting it removes its state file too. */
	json_decref(snap_ok(x, "mem", "delete", "m1", false));
	assert_int_equal(access(mem, F_OK), -1);
	/* --memory of a stopped guest, or with revert: refused. */
	json_decref(t_fx_must(x, "stop", "mem", 60000));
	char desc[600];
	r = t_ctl_call(&x->c, "snapshot", json_pack("{s:s, s:s, s:s, s:b}", "name", "mem",
	               "action", "create", "snapshot", "m2", "memory", true), 10000);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "InvalidState");
	json_decref(r);
	r = t_ctl_call(&x->c, "snapshot", json_pack("{s:s, s:s, s:s, s:b}", "name", "mem",
	               "action", "revert", "snapshot", "m2", "memory", true), 10000);
	snprintf(desc, sizeof(desc), "%s", str(json_object_get(r, "error"), "desc"));
	assert_non_null(strstr(desc, "\"memory\" is for create"));
	json_decref(r);
}

/* A full disk: the overlay cannot be made. The error says so, the guest
 * runs on, nothing is recorded or left behind; once there is room, the
 * same snapshot is taken. The tmpfs is in a private mount namespace (this
 * test is the last: the namespace stays for the process). Needs root. */
static void test_snapshot_full_disk(void **state)
{
	struct t_fx *x = *state;
	char dir[600], image[700], filler[700], extra[1024], desc[600], names[256];
	if (geteuid() != 0) {
		printf("# note: not root: cannot mount a tmpfs; skipped\n");
		skip();
	}
	snprintf(dir, sizeof(dir), "%s/full", x->d.dir);
	assert_int_equal(unshare(CLONE_NEWNS), 0);
	assert_int_equal(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0755"), 0);
	snprintf(image, sizeof(image), "%s/data.qcow2", dir);
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	snprintf(extra, sizeof(extra), "[disk.data]\nfile = %s\nformat = qcow2\nsize = 16M\n"
	         "[restart]\npolicy = never\n", image);
	t_daemon_tiny_profile(&x->d, "full", extra);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "full", 60000));
	/* Fill what is left. */
	int fd = open(filler, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	static char block[64 << 10];
	memset(block, 0x5a, sizeof(block));
	while (write(fd, block, sizeof(block)) > 0)
		;
	while (write(fd, block, 512) > 0)
		;
	close(fd);

	assert_string_equal(snap_err(x, "full", "create", "s1", false, desc, sizeof(desc)),
	                    "GenericError");
	printf("# note: %s\n", desc);
	assert_non_null(strstr(desc, "No space left on device"));
	json_t *st = t_fx_must(x, "status", "full", 5000);
	assert_string_equal(str(st, "state"), "running");
	json_decref(st);
	list_names(x, "full", names, sizeof(names));
	assert_string_equal(names, "");
	char over[800], rec[800];
	snprintf(over, sizeof(over), "%s.snap1.qcow2", image);
	snprintf(rec, sizeof(rec), "%s/full.d/snapshots.json", x->d.profiles);
	assert_int_equal(access(over, F_OK), -1);
	assert_int_equal(access(rec, F_OK), -1);

	assert_int_equal(unlink(filler), 0);
	json_t *r = snap_ok(x, "full", "create", "s1", false);
	assert_string_equal(str(json_object_get(r, "disks"), "data"), over);
	json_decref(r);
	list_names(x, "full", names, sizeof(names));
	assert_string_equal(names, "s1*");
}

/* A disk hot-plugged with --persist takes part: its overlay is made with
 * the others, the replay at the next start boots it, a revert goes back. */
static void test_snapshot_hotplugged_disk(void **state)
{
	struct t_fx *x = *state;
	char extra[1024], img[700], out[4096], over[800], prof[700];
	snprintf(img, sizeof(img), "%s/extra.qcow2", x->d.dir);
	const char *mk[] = { "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", img, "16M", NULL };
	assert_int_equal(t_run_capture(mk, out, sizeof(out), 30000), 0);
	snprintf(extra, sizeof(extra), "hotplug-slots = 2\n" DISK "[restart]\npolicy = never\n",
	         x->d.dir);
	t_daemon_tiny_profile(&x->d, "hp", extra);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "hp", 60000));
	struct con c;
	con_open(x, &c, "hp");
	json_t *r = t_ctl_call(&x->c, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "name",
	                       "hp", "kind", "disk", "id", "extra", "file", img, "format", "qcow2",
	                       "persist", true), 30000);
	if (!json_object_get(r, "return"))
		fail_msg("attach: %s", str(json_object_get(r, "error"), "desc"));
	json_decref(r);
	if (t_serial_wait(&c.ser, "QSUP-HOTPLUG add block vdb", &c.seen, 30000) < 0)
		fail_msg("no vdb:\n%s", c.ser.buf);
	dev_write(&c, "vdb", "HOTP-AAA");
	r = snap_ok(x, "hp", "create", "s1", false);
	snprintf(over, sizeof(over), "%s.snap1.qcow2", img);
	assert_string_equal(str(json_object_get(r, "disks"), "extra"), over);
	json_decref(r);
	dev_write(&c, "vdb", "HOTP-BBB");
	con_close(&c);

	/* The next start re-adds it from the overlay: on its active overlay. */
	json_decref(t_fx_must(x, "stop", "hp", 60000));
	json_decref(t_fx_must(x, "start", "hp", 60000));
	con_open(x, &c, "hp");
	dev_expect(&c, "vdb", "HOTP-BBB");
	con_close(&c);
	snprintf(prof, sizeof(prof), "%s/hp.ini", x->d.profiles);
	const char *check[] = { t_qsupd(), "--check", prof, NULL };
	int rc = t_run_capture(check, out, sizeof(out), 30000);
	if (rc != 0 || !strstr(out, "hp.d/snapshots.json: ok (1 snapshot, current s1)"))
		fail_msg("--check: %d\n%s", rc, out);

	json_decref(snap_ok(x, "hp", "revert", "s1", true));
	json_decref(t_fx_must(x, "start", "hp", 60000));
	con_open(x, &c, "hp");
	dev_expect(&c, "vdb", "HOTP-AAA");
	dev_write(&c, "vdb", "HOTP-CCC");

	/* The last snapshot deleted live: the hot-plugged disk is committed
	 * back into its file too, and the next start's replay boots that. */
	r = snap_ok(x, "hp", "delete", "s1", false);
	char want[800];
	snprintf(want, sizeof(want), "back on %s", img);
	printf("# note: %s, %s\n", str(json_object_get(r, "disks"), "data"),
	       str(json_object_get(r, "disks"), "extra"));
	assert_string_equal(str(json_object_get(r, "disks"), "extra"), want);
	snprintf(want, sizeof(want), "back on %s/vms/data.qcow2", x->d.dir);
	assert_string_equal(str(json_object_get(r, "disks"), "data"), want);
	json_decref(r);
	dev_expect(&c, "vdb", "HOTP-CCC");
	con_close(&c);
	char rec[800];
	snprintf(rec, sizeof(rec), "%s/hp.d/snapshots.json", x->d.profiles);
	assert_int_equal(access(rec, F_OK), -1);
	json_decref(t_fx_must(x, "stop", "hp", 60000));
	json_decref(t_fx_must(x, "start", "hp", 60000));
	con_open(x, &c, "hp");
	dev_expect(&c, "vdb", "HOTP-CCC");
	con_close(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshot_revert_merge_crash, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_survives_qsupd_sigkill, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_check_and_bad_input, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_memory, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_agent_freeze, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_hotplugged_disk, t_fx_setup,
		                                t_fx_teardown),
		/* last: it leaves the process in a mount namespace of its own */
		cmocka_unit_test_setup_teardown(test_snapshot_full_disk, t_fx_setup, t_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
