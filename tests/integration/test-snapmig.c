/*
 * Snapshots and the rest of a guest's life, against real qsupd, real QEMU
 * and the tiny guest (TCG), which writes 8-byte marks at the start of its
 * qcow2 data disk from its busybox shell:
 *  - migrate --to another qsupd (its own profile dir, the same disk path:
 *    shared storage) of a guest with snapshots: the destination's record
 *    becomes the source's, `snapshot list` there shows them, the guest
 *    reads the marks the chain holds, a snapshot taken there works and its
 *    next start boots the active layer; a destination whose disk is
 *    another file is refused before anything moves;
 *  - save and restore keep the chain; a restore after a revert (the disks
 *    no longer hold what the memory expects) is refused;
 *  - one snapshot operation at a time: migrate, incoming, save, restore,
 *    clone, disk-resize and a disk attach or detach are refused while one runs ("a snapshot create is
 *    running"), and a snapshot while a disk-resize runs;
 *  - disk-resize of a disk with snapshots grows its active layer, live and
 *    stopped; the snapshot's layer keeps its size;
 *  - deleting the last snapshot puts the disk back on its own file, live
 *    and stopped: the record and the overlay go, the data stays, and the
 *    next start boots the profile's file.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define str t_str
#define G "sm"
#define DISK "[disk.data]\nfile = %s/vms/data.qcow2\nformat = qcow2\nsize = 16M\n"

struct fx {
	struct t_daemon a, b;
	struct t_ctl ca, cb;
	uv_loop_t loop;
	struct t_serial ser;
	size_t seen;
	bool con;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	t_pair_init(&x->a, &x->b, &x->ca, &x->cb);
	*state = x;
	return 0;
}

static void con_close(struct fx *x)
{
	if (!x->con)
		return;
	t_serial_close(&x->ser);
	t_loop_finish(&x->loop);
	x->con = false;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	con_close(x);
	t_pair_finish(&x->a, &x->b, &x->ca, &x->cb);
	free(x);
	return 0;
}

/* The profile on daemon d, its disk in a's dir (storage both share). */
static void profile(struct fx *x, struct t_daemon *d, const char *disk_dir)
{
	char extra[1024];
	snprintf(extra, sizeof(extra), DISK, disk_dir ? disk_dir : x->a.dir);
	t_daemon_tiny_profile(d, G, extra);
}

static json_t *must(struct fx *x, struct t_ctl *c, const char *verb, json_t *args, int ms)
{
	json_t *r = t_ctl_call(c, verb, args, ms);
	json_t *ret = json_incref(json_object_get(r, "return"));
	if (!ret)
		fail_msg("%s: %s\n-- a:\n%s\n-- b:\n%s", verb, r ? json_dumps(r, 0) : "no reply",
		         t_daemon_log(&x->a), t_daemon_log(&x->b));
	json_decref(r);
	return ret;
}

static json_t *name_args(void)
{
	return json_pack("{s:s}", "name", G);
}

static json_t *snap_args(const char *action, const char *s)
{
	json_t *a = json_pack("{s:s, s:s}", "name", G, "action", action);
	if (s)
		json_object_set_new(a, "snapshot", json_string(s));
	return a;
}

/* The snapshot names on c, space-separated, the current one starred. */
static void names(struct fx *x, struct t_ctl *c, char *out, size_t size)
{
	json_t *l = must(x, c, "snapshot", snap_args("list", NULL), 10000), *s;
	size_t i;
	out[0] = '\0';
	json_array_foreach(json_object_get(l, "snapshots"), i, s) {
		size_t n = strlen(out);
		snprintf(out + n, size - n, "%s%s%s", n ? " " : "", str(s, "name"),
		         json_is_true(json_object_get(s, "current")) ? "*" : "");
	}
	json_decref(l);
}

/* The guest's console on c, in its busybox shell; booted: wait for the
 * ready marker first. */
static void con_open(struct fx *x, struct t_ctl *c, bool booted)
{
	con_close(x);
	memset(&x->ser, 0, sizeof(x->ser));
	memset(&x->loop, 0, sizeof(x->loop));
	x->seen = 0;
	assert_int_equal(t_ctl_console(c, G, &x->loop, &x->ser), 0);
	x->con = true;
	if (booted && t_serial_wait(&x->ser, "QSUP-GUEST-READY", &x->seen, 120000) < 0)
		fail_msg("no ready marker:\n%s", x->ser.buf ? x->ser.buf : "");
	assert_int_equal(t_serial_write(&x->ser, "sh"), 0);
	assert_int_equal(t_serial_write(&x->ser, "echo SH''-UP"), 0);
	if (t_serial_wait(&x->ser, "SH-UP", &x->seen, 30000) < 0)
		fail_msg("no shell:\n%s", x->ser.buf ? x->ser.buf : "");
}

static void disk_write(struct fx *x, const char *mark)
{
	char line[200], done[32];
	snprintf(line, sizeof(line), "printf %s | dd of=/dev/vda conv=fsync 2>/dev/null && "
	         "echo WR''OTE-%s", mark, mark);
	snprintf(done, sizeof(done), "WROTE-%s", mark);
	assert_int_equal(t_serial_write(&x->ser, line), 0);
	if (t_serial_wait(&x->ser, done, &x->seen, 30000) < 0)
		fail_msg("the write of %s did not complete:\n%s", mark, x->ser.buf);
}

/* The guest's answer to a shell line printing "TAG=value.". */
static const char *ask(struct fx *x, const char *line, const char *tag)
{
	static char got[64];
	size_t from = x->seen;
	assert_int_equal(t_serial_write(&x->ser, line), 0);
	if (t_serial_wait(&x->ser, tag, &from, 30000) < 0 ||
	    t_serial_wait(&x->ser, ".", &from, 5000) < 0)
		fail_msg("no answer to %s:\n%s", line, x->ser.buf);
	const char *p = strstr(x->ser.buf + x->seen, tag) + strlen(tag);
	size_t n = strcspn(p, ".");
	snprintf(got, sizeof(got), "%.*s", (int)(n < sizeof(got) ? n : sizeof(got) - 1), p);
	x->seen = from;
	return got;
}

static void disk_expect(struct fx *x, const char *mark)
{
	const char *got = ask(x, "echo 3 > /proc/sys/vm/drop_caches; "
	                      "echo DI''SK=$(head -c 8 /dev/vda).", "DISK=");
	if (strcmp(got, mark))
		fail_msg("the disk holds %s, not %s", got, mark);
}

static long long sectors(struct fx *x)
{
	return atoll(ask(x, "echo SEC''TORS=$(cat /sys/block/vda/size).", "SECTORS="));
}

static void start(struct fx *x, struct t_ctl *c)
{
	json_decref(must(x, c, "start", name_args(), 120000));
	con_open(x, c, true);
}

/* qemu-img info's virtual size of path. */
static long long virtual_size(const char *path)
{
	char out[16384];
	const char *argv[] = { "/usr/bin/qemu-img", "info", "-U", "--output=json", path, NULL };
	assert_int_equal(t_run_capture(argv, out, sizeof(out), 30000), 0);
	json_t *j = json_loads(out, 0, NULL);
	long long v = (long long)json_integer_value(json_object_get(j, "virtual-size"));
	json_decref(j);
	return v;
}

static json_t *migrate_to(struct fx *x, struct t_ctl *from, struct t_daemon *to)
{
	(void)x;
	return t_ctl_call(from, "migrate", json_pack("{s:s, s:s, s:b}", "name", G, "to",
	                  to->sock, "wait", 1), 180000);
}

static void test_migrate_with_snapshots(void **state)
{
	struct fx *x = *state;
	char ln[256], lb[256], other[700];
	profile(x, &x->a, NULL);
	/* b's disk is another file first: the chain cannot be used there */
	snprintf(other, sizeof(other), "%s/elsewhere", x->b.dir);
	profile(x, &x->b, other);
	t_daemon_up(&x->a, &x->ca);
	t_daemon_up(&x->b, &x->cb);
	start(x, &x->ca);
	disk_write(x, "MARK-AAA");
	json_decref(must(x, &x->ca, "snapshot", snap_args("create", "s1"), 120000));
	disk_write(x, "MARK-BBB");
	json_decref(must(x, &x->ca, "snapshot", snap_args("create", "s2"), 120000));
	disk_write(x, "MARK-CCC");

	json_t *r = migrate_to(x, &x->ca, &x->b);
	json_t *e = json_object_get(r, "error");
	if (!e)
		fail_msg("a destination with another disk file took the guest: %s",
		         json_dumps(r, 0));
	printf("# note: refused: %s\n", str(e, "desc"));
	assert_non_null(strstr(str(e, "desc"), "snapshot chain cannot be used here"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, G), "running");
	assert_string_equal(t_ctl_state(&x->cb, G), "stopped");

	/* b with the same disk path (shared storage) */
	profile(x, &x->b, NULL);
	json_decref(must(x, &x->cb, "reload", json_object(), 10000));
	r = migrate_to(x, &x->ca, &x->b);
	if (!json_object_get(r, "return"))
		fail_msg("migrate: %s\n-- a:\n%s\n-- b:\n%s", json_dumps(r, 0), t_daemon_log(&x->a),
		         t_daemon_log(&x->b));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, G), "migrated");
	assert_string_equal(t_ctl_state(&x->cb, G), "running");
	names(x, &x->ca, ln, sizeof(ln));
	names(x, &x->cb, lb, sizeof(lb));
	assert_string_equal(lb, "s1 s2*");
	assert_string_equal(lb, ln);
	json_t *la = must(x, &x->ca, "snapshot", snap_args("list", NULL), 10000);
	json_t *lbj = must(x, &x->cb, "snapshot", snap_args("list", NULL), 10000);
	assert_true(json_equal(json_object_get(la, "active"), json_object_get(lbj, "active")));
	json_decref(la);
	json_decref(lbj);

	/* The guest runs on at b on the same chain, takes a snapshot there, and
	 * its next start there boots the active layer. */
	con_open(x, &x->cb, false);
	disk_expect(x, "MARK-CCC");
	json_decref(must(x, &x->cb, "snapshot", snap_args("create", "s3"), 120000));
	disk_write(x, "MARK-DDD");
	json_decref(must(x, &x->cb, "stop", name_args(), 120000));
	start(x, &x->cb);
	disk_expect(x, "MARK-DDD");
	names(x, &x->cb, lb, sizeof(lb));
	assert_string_equal(lb, "s1 s2 s3*");

	/* and back to a, whose record then is b's again */
	r = migrate_to(x, &x->cb, &x->a);
	if (!json_object_get(r, "return"))
		fail_msg("migrate back: %s\n-- a:\n%s\n-- b:\n%s", json_dumps(r, 0),
		         t_daemon_log(&x->a), t_daemon_log(&x->b));
	json_decref(r);
	names(x, &x->ca, ln, sizeof(ln));
	assert_string_equal(ln, "s1 s2 s3*");
	con_open(x, &x->ca, false);
	disk_expect(x, "MARK-DDD");
	json_decref(must(x, &x->ca, "stop", name_args(), 120000));
	/* qsupd --check on a accepts the record it got */
	char ini[700], out[8192];
	snprintf(ini, sizeof(ini), "%s/%s.ini", x->a.profiles, G);
	const char *check[] = { t_qsupd(), "--check", ini, NULL };
	if (t_run_capture(check, out, sizeof(out), 30000) != 0)
		fail_msg("qsupd --check: %s", out);
	assert_non_null(strstr(out, "ok (3 snapshots, current s3)"));
}

static void test_save_restore_with_snapshots(void **state)
{
	struct fx *x = *state;
	char l[256], file[700], out[8192];
	profile(x, &x->a, NULL);
	t_daemon_up(&x->a, &x->ca);
	start(x, &x->ca);
	disk_write(x, "MARK-AAA");
	json_decref(must(x, &x->ca, "snapshot", snap_args("create", "s1"), 120000));
	disk_write(x, "MARK-BBB");
	con_close(x);
	snprintf(file, sizeof(file), "%s/sm.save", x->a.dir);
	const char *save[] = { t_qsupctl(), "-s", x->a.sock, "save", G, file, NULL };
	if (t_run_capture(save, out, sizeof(out), 120000) != 0)
		fail_msg("qsupctl save: %s\n%s", out, t_daemon_log(&x->a));
	const char *restore[] = { t_qsupctl(), "-s", x->a.sock, "restore", G, file, NULL };
	if (t_run_capture(restore, out, sizeof(out), 120000) != 0)
		fail_msg("qsupctl restore: %s\n%s", out, t_daemon_log(&x->a));
	assert_string_equal(t_ctl_state(&x->ca, G), "running");
	names(x, &x->ca, l, sizeof(l));
	assert_string_equal(l, "s1*");

	con_open(x, &x->ca, false);
	disk_expect(x, "MARK-BBB");
	disk_write(x, "MARK-CCC");
	con_close(x);

	/* Saved again, then reverted while stopped: the saved memory does not
	 * belong to what the disk now holds. */
	if (t_run_capture(save, out, sizeof(out), 120000) != 0)
		fail_msg("qsupctl save: %s\n%s", out, t_daemon_log(&x->a));
	json_decref(must(x, &x->ca, "snapshot", snap_args("revert", "s1"), 120000));
	json_t *r = t_ctl_call(&x->ca, "restore", json_pack("{s:s, s:s}", "name", G, "file", file),
	                       120000);
	json_t *e = json_object_get(r, "error");
	if (!e)
		fail_msg("a restore over a reverted disk: %s", json_dumps(r, 0));
	printf("# note: refused: %s\n", str(e, "desc"));
	assert_string_equal(str(e, "class"), "InvalidState");
	assert_non_null(strstr(str(e, "desc"), "would resume on other disk contents"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, G), "stopped");
	/* the guest starts afresh on the reverted disk */
	start(x, &x->ca);
	disk_expect(x, "MARK-AAA");
	json_decref(must(x, &x->ca, "stop", name_args(), 120000));
}

/* Send verb with args without waiting (its id). */
static long long post(struct t_ctl *c, const char *verb, json_t *args)
{
	long long id = t_ctl_send(c, verb, args);   /* args taken */
	assert_true(id > 0);
	return id;
}

static json_t *reply(struct fx *x, struct t_ctl *c, long long id)
{
	json_t *r = t_ctl_reply(c, id, 180000);
	if (!r)
		fail_msg("no reply:\n%s", t_daemon_log(&x->a));
	return r;
}

/* r is refused because a snapshot create runs. */
static void refused_by_snapshot(json_t *r, const char *verb)
{
	json_t *e = json_object_get(r, "error");
	if (!e)
		fail_msg("%s ran under a snapshot create: %s", verb, json_dumps(r, 0));
	printf("# note: %s: %s\n", verb, str(e, "desc"));
	assert_string_equal(str(e, "class"), "InvalidState");
	assert_non_null(strstr(str(e, "desc"), "guest " G ": a snapshot create is running"));
	json_decref(r);
}

static void test_one_at_a_time_and_resize(void **state)
{
	struct fx *x = *state;
	char l[256], over[700], base[700];
	profile(x, &x->a, NULL);
	t_daemon_up(&x->a, &x->ca);
	start(x, &x->ca);
	disk_write(x, "MARK-AAA");
	/* a hot-plugged raw disk (no --persist: not in the snapshots) */
	char hp[700];
	snprintf(hp, sizeof(hp), "%s/hp.img", x->a.dir);
	FILE *fh = fopen(hp, "w");
	assert_non_null(fh);
	assert_int_equal(ftruncate(fileno(fh), 1 << 20), 0);
	fclose(fh);
	json_decref(must(x, &x->ca, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", G,
	            "kind", "disk", "id", "hp", "file", hp, "format", "raw"), 30000));

	/* Requests sent right behind a snapshot create (one connection, in
	 * order): each is refused, and the snapshot is taken. */
	long long s = post(&x->ca, "snapshot", snap_args("create", "s1"));
	long long m = post(&x->ca, "migrate", json_pack("{s:s, s:s}", "name", G, "uri",
	                   "unix:/nonexistent.sock"));
	long long rs = post(&x->ca, "disk-resize", json_pack("{s:s, s:s, s:s}", "name", G, "id",
	                    "data", "size", "32M"));
	long long sv = post(&x->ca, "save", json_pack("{s:s, s:s}", "name", G, "file",
	                    "/nonexistent/x.save"));
	long long at = post(&x->ca, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", G,
	                    "kind", "disk", "id", "more", "file", hp, "format",
	                    "raw"));
	long long dt = post(&x->ca, "detach", json_pack("{s:s, s:s}", "name", G, "id", "hp"));
	long long s2 = post(&x->ca, "snapshot", snap_args("create", "s2"));
	json_t *r = reply(x, &x->ca, s);
	if (!json_object_get(r, "return"))
		fail_msg("snapshot: %s", json_dumps(r, 0));
	json_decref(r);
	refused_by_snapshot(reply(x, &x->ca, m), "migrate");
	refused_by_snapshot(reply(x, &x->ca, rs), "disk-resize");
	refused_by_snapshot(reply(x, &x->ca, sv), "save");
	refused_by_snapshot(reply(x, &x->ca, at), "attach");
	refused_by_snapshot(reply(x, &x->ca, dt), "detach");
	r = reply(x, &x->ca, s2);
	assert_non_null(strstr(str(json_object_get(r, "error"), "desc"),
	                       "another snapshot operation is under way"));
	json_decref(r);
	assert_string_equal(t_ctl_state(&x->ca, G), "running");
	names(x, &x->ca, l, sizeof(l));
	assert_string_equal(l, "s1*");

	/* A snapshot right behind a disk hot-plug: refused, the disk comes. */
	snprintf(hp, sizeof(hp), "%s/hp2.img", x->a.dir);
	fh = fopen(hp, "w");
	assert_non_null(fh);
	assert_int_equal(ftruncate(fileno(fh), 1 << 20), 0);
	fclose(fh);
	at = post(&x->ca, "attach", json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", G, "kind",
	          "disk", "id", "hp2", "file", hp, "format", "raw"));
	s = post(&x->ca, "snapshot", snap_args("create", "s2"));
	r = reply(x, &x->ca, at);
	if (!json_object_get(r, "return"))
		fail_msg("attach: %s", json_dumps(r, 0));
	json_decref(r);
	r = reply(x, &x->ca, s);
	if (!json_object_get(r, "error"))
		fail_msg("a snapshot ran under a disk hot-plug: %s", json_dumps(r, 0));
	printf("# note: snapshot: %s\n", str(json_object_get(r, "error"), "desc"));
	assert_non_null(strstr(str(json_object_get(r, "error"), "desc"),
	                       "a disk hot-plug or unplug is running"));
	json_decref(r);

	/* A snapshot right behind a live disk-resize: refused; the resize
	 * grows the active layer (the top node QEMU runs after the snapshot). */
	rs = post(&x->ca, "disk-resize", json_pack("{s:s, s:s, s:s}", "name", G, "id", "data",
	          "size", "32M"));
	s = post(&x->ca, "snapshot", snap_args("create", "s2"));
	r = reply(x, &x->ca, rs);
	if (!json_object_get(r, "return"))
		fail_msg("disk-resize: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->a));
	snprintf(over, sizeof(over), "%s/vms/data.qcow2.snap1.qcow2", x->a.dir);
	snprintf(base, sizeof(base), "%s/vms/data.qcow2", x->a.dir);
	assert_string_equal(str(json_object_get(r, "return"), "file"), over);
	json_decref(r);
	r = reply(x, &x->ca, s);
	json_t *e = json_object_get(r, "error");
	if (!e)
		fail_msg("a snapshot ran under a disk-resize: %s", json_dumps(r, 0));
	printf("# note: snapshot: %s\n", str(e, "desc"));
	assert_non_null(strstr(str(e, "desc"), "a disk-resize is running"));
	json_decref(r);
	assert_int_equal(sectors(x), 65536);
	assert_int_equal(virtual_size(over), 32 << 20);
	assert_int_equal(virtual_size(base), 16 << 20);   /* s1's layer keeps its size */
	disk_expect(x, "MARK-AAA");

	/* Stopped: a snapshot running on the stopped guest keeps restore and
	 * disk-resize off; then the resize grows the active layer. */
	json_decref(must(x, &x->ca, "stop", name_args(), 120000));
	con_close(x);
	s = post(&x->ca, "snapshot", snap_args("create", "s2"));
	rs = post(&x->ca, "disk-resize", json_pack("{s:s, s:s, s:s}", "name", G, "id", "data",
	          "size", "48M"));
	long long re = post(&x->ca, "restore", json_pack("{s:s, s:s}", "name", G, "file",
	                    "/nonexistent/x.save"));
	long long in = post(&x->ca, "incoming", json_pack("{s:s}", "name", G));
	long long cl = post(&x->ca, "clone", json_pack("{s:s, s:s}", "name", G, "new", "sm2"));
	r = reply(x, &x->ca, s);
	if (!json_object_get(r, "return"))
		fail_msg("snapshot (stopped): %s", json_dumps(r, 0));
	json_decref(r);
	refused_by_snapshot(reply(x, &x->ca, rs), "disk-resize (stopped)");
	refused_by_snapshot(reply(x, &x->ca, re), "restore");
	refused_by_snapshot(reply(x, &x->ca, in), "incoming");
	refused_by_snapshot(reply(x, &x->ca, cl), "clone");
	r = must(x, &x->ca, "disk-resize", json_pack("{s:s, s:s, s:s}", "name", G, "id", "data",
	         "size", "48M"), 120000);
	snprintf(over, sizeof(over), "%s/vms/data.qcow2.snap2.qcow2", x->a.dir);
	assert_string_equal(str(r, "file"), over);
	assert_int_equal(json_integer_value(json_object_get(r, "old_size")), 32 << 20);
	json_decref(r);
	assert_int_equal(virtual_size(over), 48 << 20);
	start(x, &x->ca);
	assert_int_equal(sectors(x), 98304);
	disk_expect(x, "MARK-AAA");
	json_decref(must(x, &x->ca, "stop", name_args(), 120000));
	/* A revert brings the size the snapshot had back with its data. */
	json_decref(must(x, &x->ca, "snapshot", snap_args("revert", "s1"), 120000));
	start(x, &x->ca);
	assert_int_equal(sectors(x), 32768);
	json_decref(must(x, &x->ca, "stop", name_args(), 120000));
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* Deleting the last snapshot puts each disk back on its own file: live
 * (block-commit) and stopped (qemu-img commit); the record and the
 * overlay go, and the next start boots the profile's file. */
static void test_last_snapshot_delete(void **state)
{
	struct fx *x = *state;
	char l[256], base[700], rec[700], over1[800], over2[800], want[800];
	profile(x, &x->a, NULL);
	t_daemon_up(&x->a, &x->ca);
	snprintf(base, sizeof(base), "%s/vms/data.qcow2", x->a.dir);
	snprintf(rec, sizeof(rec), "%s/%s.d/snapshots.json", x->a.profiles, G);
	snprintf(over1, sizeof(over1), "%s.snap1.qcow2", base);
	snprintf(over2, sizeof(over2), "%s.snap2.qcow2", base);
	snprintf(want, sizeof(want), "back on %s", base);
	start(x, &x->ca);
	disk_write(x, "MARK-AAA");
	json_decref(must(x, &x->ca, "snapshot", snap_args("create", "s1"), 120000));
	disk_write(x, "MARK-BBB");
	json_decref(must(x, &x->ca, "snapshot", snap_args("create", "s2"), 120000));
	disk_write(x, "MARK-CCC");
	/* Not the last one: merged, the disk stays on its overlay. */
	json_t *r = must(x, &x->ca, "snapshot", snap_args("delete", "s2"), 120000);
	assert_null(json_object_get(r, "disks"));
	json_decref(r);
	assert_true(exists(rec));
	/* The last one, live: the overlay is committed into the file. */
	r = must(x, &x->ca, "snapshot", snap_args("delete", "s1"), 120000);
	printf("# note: %s\n", str(json_object_get(r, "disks"), "data"));
	assert_string_equal(str(json_object_get(r, "disks"), "data"), want);
	json_decref(r);
	assert_false(exists(rec));
	assert_false(exists(over1));
	assert_false(exists(over2));
	names(x, &x->ca, l, sizeof(l));
	assert_string_equal(l, "");
	disk_expect(x, "MARK-CCC");
	disk_write(x, "MARK-DDD");
	/* the guest runs on: a new snapshot works on the file again */
	json_decref(must(x, &x->ca, "snapshot", snap_args("create", "s3"), 120000));
	assert_true(exists(over1));   /* the record starts over: its first overlay */
	disk_write(x, "MARK-EEE");
	json_decref(must(x, &x->ca, "stop", name_args(), 120000));
	con_close(x);
	/* The last one, stopped: qemu-img commit; qsupctl's words. */
	char out[8192], line[900];
	const char *del[] = { t_qsupctl(), "-s", x->a.sock, "snapshot", G, "delete", "s3", NULL };
	if (t_run_capture(del, out, sizeof(out), 120000) != 0)
		fail_msg("qsupctl snapshot delete: %s\n%s", out, t_daemon_log(&x->a));
	snprintf(line, sizeof(line), "data: %s\n", want);
	if (!strstr(out, line))
		fail_msg("qsupctl printed: %s", out);
	assert_false(exists(rec));
	assert_false(exists(over1));
	/* The next start boots the profile's file, which holds it all. */
	start(x, &x->ca);
	disk_expect(x, "MARK-EEE");
	json_decref(must(x, &x->ca, "stop", name_args(), 120000));
}

/* A middle snapshot deleted after a restart: the chain was opened by qsupd
 * at boot (read-only backing layers), and the merge into the layer above
 * it still goes. */
static void test_delete_middle_after_restart(void **state)
{
	struct fx *x = *state;
	char l[256];
	profile(x, &x->a, NULL);
	t_daemon_up(&x->a, &x->ca);
	start(x, &x->ca);
	disk_write(x, "MARK-AAA");
	json_decref(must(x, &x->ca, "snapshot", snap_args("create", "s1"), 120000));
	disk_write(x, "MARK-BBB");
	json_decref(must(x, &x->ca, "snapshot", snap_args("create", "s2"), 120000));
	disk_write(x, "MARK-CCC");
	json_decref(must(x, &x->ca, "snapshot", snap_args("create", "s3"), 120000));
	disk_write(x, "MARK-DDD");
	json_decref(must(x, &x->ca, "stop", name_args(), 120000));
	start(x, &x->ca);
	json_t *r = t_ctl_call(&x->ca, "snapshot", snap_args("delete", "s2"), 120000);
	if (!json_object_get(r, "return"))
		fail_msg("delete s2 after a restart: %s\n%s", json_dumps(r, 0), t_daemon_log(&x->a));
	json_decref(r);
	names(x, &x->ca, l, sizeof(l));
	assert_string_equal(l, "s1 s3*");
	disk_expect(x, "MARK-DDD");
	json_decref(must(x, &x->ca, "stop", name_args(), 120000));
	json_decref(must(x, &x->ca, "snapshot", snap_args("revert", "s3"), 120000));
	start(x, &x->ca);
	disk_expect(x, "MARK-CCC");
	json_decref(must(x, &x->ca, "stop", name_args(), 120000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrate_with_snapshots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_restore_with_snapshots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_at_a_time_and_resize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_snapshot_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_middle_after_restart, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
