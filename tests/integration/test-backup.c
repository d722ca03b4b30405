/*
 * Backups against a real daemon, real QEMU and the tiny guest (TCG): the
 * guest writes random data to its qcow2 data disk from its busybox shell;
 * each backup is taken with the guest paused for a moment, so that a copy
 * of the disk made then (qemu-img convert -U) is the point in time the
 * backup must hold; the guest resumes and writes on while the job copies.
 * The chain restores with `qemu-img convert` alone, and with
 * backup-restore. Plus cancel, a full target disk, SIGKILL of qsupd during
 * a backup, the refusals, and the qsupctl verbs and flags.
 */
#include <dirent.h>
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
#define QEMU_IMG "/usr/bin/qemu-img"
#define MIB (1024LL * 1024)

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
	if (booted && t_serial_wait(&c->ser, "QSUP-GUEST-READY", &c->seen, 120000) < 0)
		fail_msg("no ready marker:\n%s", c->ser.buf ? c->ser.buf : "");
	assert_int_equal(t_serial_write(&c->ser, "sh"), 0);
	assert_int_equal(t_serial_write(&c->ser, "echo SH''-UP"), 0);
	if (t_serial_wait(&c->ser, "SH-UP", &c->seen, 30000) < 0)
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

/* The guest writes count MiB of random data at seek MiB of /dev/vda. */
static void guest_write(struct con *c, int seek, int count, const char *tag)
{
	char line[300], done[64];
	snprintf(line, sizeof(line), "dd if=/dev/urandom of=/dev/vda bs=1M count=%d seek=%d "
	         "conv=fsync 2>/dev/null && echo WR''OTE-%s", count, seek, tag);
	snprintf(done, sizeof(done), "WROTE-%s", tag);
	assert_int_equal(t_serial_write(&c->ser, line), 0);
	if (t_serial_wait(&c->ser, done, &c->seen, 120000) < 0)
		fail_msg("the write %s did not complete:\n%s", tag, c->ser.buf);
}

static json_t *backup(struct t_fx *x, const char *name, const char *dir, const char *kind,
                      bool wait, long long speed)
{
	json_t *a = json_pack("{s:s, s:s}", "name", name, "dir", dir);
	if (kind)
		json_object_set_new(a, "kind", json_string(kind));
	if (wait)
		json_object_set_new(a, "wait", json_true());
	if (speed)
		json_object_set_new(a, "speed", json_integer(speed));
	return t_ctl_call(&x->c, "backup", a, 600000);
}

static json_t *backup_ok(struct t_fx *x, const char *name, const char *dir, const char *kind,
                         bool wait, long long speed)
{
	json_t *r = backup(x, name, dir, kind, wait, speed);
	json_t *ret = json_incref(json_object_get(r, "return"));
	if (!ret)
		fail_msg("backup: %s (daemon log: %s)", str(json_object_get(r, "error"), "desc"),
		         t_daemon_log(&x->d));
	json_decref(r);
	return ret;
}

/* The error class of a refused call; its text into desc. */
static const char *call_err(struct t_fx *x, const char *verb, json_t *args, char *desc,
                            size_t size)
{
	static char cls[64];
	json_t *r = t_ctl_call(&x->c, verb, args, 60000);
	json_t *e = json_object_get(r, "error");
	if (!e)
		fail_msg("%s did not fail", verb);
	snprintf(cls, sizeof(cls), "%s", str(e, "class"));
	snprintf(desc, size, "%s", str(e, "desc"));
	printf("# note: %s: %s\n", verb, desc);
	json_decref(r);
	return cls;
}

/* qsupctl with args (NULL-terminated); its exit status, output in out. */
static int ctl(struct t_fx *x, char *out, size_t size, ...)
{
	const char *argv[20] = { t_qsupctl(), "-s", x->d.sock };
	size_t n = 3;
	va_list ap;
	va_start(ap, size);
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 19)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	int rc = t_run_capture(argv, out, size, 600000);
	printf("# qsupctl %s %s: %d: %s", argv[3], n > 4 ? argv[4] : "", rc, out);
	return rc;
}

static int img(char *out, size_t size, ...)
{
	const char *argv[20] = { QEMU_IMG };
	size_t n = 1;
	va_list ap;
	va_start(ap, size);
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 19)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return t_run_capture(argv, out, size, 300000);
}

/* The guest's disk as it is now (paused), as a raw file. */
static void disk_copy(const char *disk, const char *out)
{
	char buf[2048];
	if (img(buf, sizeof(buf), "convert", "-U", "-f", "qcow2", "-O", "raw", disk, out, NULL))
		fail_msg("qemu-img convert -U %s: %s", disk, buf);
}

/* file (a backup, with its chain) restored by qemu-img convert alone must
 * be the same disk as copy. */
static void expect_same(const char *file, const char *copy, const char *tmp)
{
	char buf[2048];
	unlink(tmp);
	if (img(buf, sizeof(buf), "convert", "-f", "qcow2", "-O", "raw", file, tmp, NULL))
		fail_msg("qemu-img convert %s: %s", file, buf);
	int rc = img(buf, sizeof(buf), "compare", "-f", "raw", "-F", "raw", copy, tmp, NULL);
	if (rc != 0)
		fail_msg("%s restored differs from %s: %s", file, copy, buf);
}

static json_t *manifest(const char *path)
{
	json_t *m = json_load_file(path, 0, NULL);
	if (!m)
		fail_msg("no manifest %s", path);
	return m;
}

/* Files in dir whose name contains part. */
static int count_files(const char *dir, const char *part)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)))
		n += strstr(e->d_name, part) != NULL;
	closedir(d);
	return n;
}

static json_t *wait_end(struct t_fx *x, struct t_ctl *ev, const char *name, int ms)
{
	json_t *m;
	(void)x;
	while ((m = t_ctl_next(ev, ms))) {
		if (!strcmp(str(m, "event"), "BACKUP_END") && !strcmp(str(m, "guest"), name)) {
			json_t *d = json_incref(json_object_get(m, "data"));
			json_decref(m);
			return d;
		}
		json_decref(m);
	}
	fail_msg("no BACKUP_END for %s (daemon log: %s)", name, t_daemon_log(&x->d));
	return NULL;
}

static bool has_bitmap(struct t_fx *x, const char *name, const char *bitmap)
{
	json_t *r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", name, "command",
	                       "query-block"), 30000);
	json_t *b, *bm;
	size_t i, k;
	bool found = false;
	json_array_foreach(json_object_get(r, "return"), i, b)
		json_array_foreach(json_object_get(json_object_get(b, "inserted"), "dirty-bitmaps"),
		                   k, bm)
			found |= !strcmp(str(bm, "name"), bitmap);
	json_decref(r);
	return found;
}

#define DISK "[disk.data]\nfile = %s/vms/data.qcow2\nformat = qcow2\nsize = 64M\n" \
             "[restart]\npolicy = never\n"

/* Full, then two incrementals while the guest writes; each restored by
 * qemu-img convert alone equals the disk at its point in time; the
 * incrementals hold about what changed; backup-restore writes the disk back. */
static void test_backup_chain_restore(void **state)
{
	struct t_fx *x = *state;
	char extra[1024], dir[600], disk[600], copy[3][700], tmp[700], out[4096], path[900];
	snprintf(extra, sizeof(extra), DISK, x->d.dir);
	snprintf(dir, sizeof(dir), "%s/backups", x->d.dir);
	snprintf(disk, sizeof(disk), "%s/vms/data.qcow2", x->d.dir);
	snprintf(tmp, sizeof(tmp), "%s/restored.raw", x->d.dir);
	for (int i = 0; i < 3; i++)
		snprintf(copy[i], sizeof(copy[i]), "%s/copy%d.raw", x->d.dir, i);
	assert_int_equal(mkdir(dir, 0755), 0);
	t_daemon_tiny_profile(&x->d, "bk", extra);
	t_fx_up(x, NULL);
	struct t_ctl ev;
	assert_int_equal(t_ctl_open(&ev, x->d.sock), 0);
	json_decref(t_ctl_call(&ev, "subscribe", NULL, 5000));
	json_decref(t_fx_must(x, "start", "bk", 60000));
	struct con c;
	con_open(x, &c, "bk");

	/* full, with --wait's events */
	guest_write(&c, 0, 8, "A");
	json_decref(t_fx_must(x, "pause", "bk", 30000));
	json_t *r = backup_ok(x, "bk", dir, "full", true, 0);
	disk_copy(disk, copy[0]);
	json_decref(t_fx_must(x, "resume", "bk", 30000));
	assert_string_equal(str(r, "status"), "completed");
	assert_string_equal(str(r, "kind"), "full");
	assert_string_equal(str(r, "freeze"), "the guest is paused: not needed");
	char full_id[64], full_file[800];
	snprintf(full_id, sizeof(full_id), "%s", str(r, "backup"));
	snprintf(full_file, sizeof(full_file), "%s", str(json_object_get(r, "disks"), "data"));
	snprintf(path, sizeof(path), "%s", str(r, "manifest"));
	json_decref(r);
	json_t *m = manifest(path);
	assert_string_equal(str(m, "kind"), "full");
	assert_string_equal(str(m, "guest"), "bk");
	assert_true(json_is_null(json_object_get(m, "parent")));
	json_t *md = json_object_get(json_object_get(m, "disks"), "data");
	assert_int_equal(json_integer_value(json_object_get(md, "virtual-size")), 64 * MIB);
	assert_true(json_integer_value(json_object_get(md, "file-size")) >= 8 * MIB);
	json_decref(m);
	expect_same(full_file, copy[0], tmp);

	/* incremental (the default once DIR has a backup), throttled, without
	 * --wait: the guest overwrites the same data while the job copies */
	guest_write(&c, 16, 4, "B");
	json_t *e;
	while ((e = t_ctl_next(&ev, 200)))
		json_decref(e);
	json_decref(t_fx_must(x, "pause", "bk", 30000));
	r = backup_ok(x, "bk", dir, NULL, false, 1 * MIB);
	disk_copy(disk, copy[1]);
	json_decref(t_fx_must(x, "resume", "bk", 30000));
	assert_string_equal(str(r, "status"), "running");
	assert_string_equal(str(r, "kind"), "incremental");
	char inc1_file[800], inc1_id[64];
	snprintf(inc1_file, sizeof(inc1_file), "%s", str(json_object_get(r, "disks"), "data"));
	snprintf(inc1_id, sizeof(inc1_id), "%s", str(r, "backup"));
	json_decref(r);
	guest_write(&c, 16, 4, "B2");
	json_t *end = wait_end(x, &ev, "bk", 300000);
	assert_string_equal(str(end, "status"), "completed");
	snprintf(path, sizeof(path), "%s", str(end, "manifest"));
	json_decref(end);
	m = manifest(path);
	assert_string_equal(str(m, "kind"), "incremental");
	assert_string_equal(str(m, "parent"), full_id);
	md = json_object_get(json_object_get(m, "disks"), "data");
	assert_string_equal(str(md, "backing"), strrchr(full_file, '/') + 1);
	long long size1 = json_integer_value(json_object_get(md, "file-size"));
	printf("# note: incremental of 4 MiB changed: %lld bytes\n", size1);
	assert_true(size1 >= 4 * MIB && size1 < 6 * MIB);
	json_decref(m);
	expect_same(inc1_file, copy[1], tmp);

	/* the second incremental, through qsupctl --incremental -w (6 MiB at
	 * 2 MiB/s: some progress lines on its stderr) */
	guest_write(&c, 40, 2, "C");
	json_decref(t_fx_must(x, "pause", "bk", 30000));
	assert_int_equal(ctl(x, out, sizeof(out), "backup", "--incremental", "-w", "bk", dir,
	                     "speed=2M", NULL), 0);
	disk_copy(disk, copy[2]);
	json_decref(t_fx_must(x, "resume", "bk", 30000));
	assert_non_null(strstr(out, "(incremental) completed"));
	assert_non_null(strstr(out, "incremental [#"));
	con_close(&c);
	char *mp = strstr(out, "manifest: ");
	assert_non_null(mp);
	snprintf(path, sizeof(path), "%.*s", (int)strcspn(mp + 10, "\n"), mp + 10);
	m = manifest(path);
	assert_string_equal(str(m, "parent"), inc1_id);
	md = json_object_get(json_object_get(m, "disks"), "data");
	/* C, and B2 (written after the first incremental's point) */
	long long size2 = json_integer_value(json_object_get(md, "file-size"));
	printf("# note: incremental of 6 MiB changed: %lld bytes\n", size2);
	assert_true(size2 >= 6 * MIB && size2 < 8 * MIB);
	char inc2_file[900];
	snprintf(inc2_file, sizeof(inc2_file), "%s/%s", dir, str(md, "file"));
	json_decref(m);
	expect_same(inc2_file, copy[2], tmp);
	assert_int_equal(count_files(dir, ".part"), 0);
	assert_int_equal(count_files(dir, ".backup.json"), 3);

	/* backup-restore: refused while the guest runs; then the disk goes back
	 * to the first incremental's point */
	char desc[600];
	assert_string_equal(call_err(x, "backup-restore", json_pack("{s:s, s:s}", "name", "bk",
	                    "dir", dir), desc, sizeof(desc)), "InvalidState");
	assert_non_null(strstr(desc, "needs the guest stopped"));
	json_decref(t_fx_must(x, "stop", "bk", 60000));
	assert_string_equal(call_err(x, "backup-restore", json_pack("{s:s, s:s, s:s}", "name",
	                    "bk", "dir", dir, "backup", "19990101T000000Z"), desc, sizeof(desc)),
	                    "NotFound");
	assert_int_equal(ctl(x, out, sizeof(out), "backup-restore", "bk", dir, inc1_id, NULL), 0);
	assert_non_null(strstr(out, "restored"));
	int rc = img(out, sizeof(out), "compare", "-f", "qcow2", "-F", "raw", disk, copy[1], NULL);
	if (rc != 0)
		fail_msg("the restored disk differs from the first incremental's point: %s", out);
	/* and without an ID: the newest */
	assert_int_equal(ctl(x, out, sizeof(out), "backup-restore", "bk", dir, NULL), 0);
	rc = img(out, sizeof(out), "compare", "-f", "qcow2", "-F", "raw", disk, copy[2], NULL);
	if (rc != 0)
		fail_msg("the restored disk differs from the newest backup's point: %s", out);
	json_decref(t_fx_must(x, "start", "bk", 60000));
	t_ctl_close(&ev);
}

/* Refusals: unknown guest, stopped guest, bad dirs, no chain yet, a raw
 * disk (full works, incremental names it); usage errors of qsupctl. */
static void test_backup_bad_input(void **state)
{
	struct t_fx *x = *state;
	char extra[1024], dir[600], desc[600], out[4096];
	snprintf(extra, sizeof(extra), "[disk.data]\nfile = %s/vms/data.qcow2\nformat = qcow2\n"
	         "size = 16M\n[disk.scratch]\nfile = %s/vms/scratch.raw\nformat = raw\n"
	         "size = 8M\n[restart]\npolicy = never\n", x->d.dir, x->d.dir);
	snprintf(dir, sizeof(dir), "%s/backups", x->d.dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	t_daemon_tiny_profile(&x->d, "rw", extra);
	t_fx_up(x, NULL);
	assert_string_equal(call_err(x, "backup", json_pack("{s:s, s:s}", "name", "nosuch", "dir",
	                    dir), desc, sizeof(desc)), "NotFound");
	assert_string_equal(call_err(x, "backup", json_pack("{s:s, s:s}", "name", "rw", "dir",
	                    dir), desc, sizeof(desc)), "InvalidState");
	assert_non_null(strstr(desc, "needs the guest running"));
	assert_string_equal(call_err(x, "backup-cancel", json_pack("{s:s}", "name", "rw"), desc,
	                    sizeof(desc)), "InvalidState");
	json_decref(t_fx_must(x, "start", "rw", 60000));
	assert_string_equal(call_err(x, "backup", json_pack("{s:s, s:s}", "name", "rw", "dir",
	                    "relative/dir"), desc, sizeof(desc)), "InvalidArgument");
	char missing[700];
	snprintf(missing, sizeof(missing), "%s/missing", x->d.dir);
	assert_string_equal(call_err(x, "backup", json_pack("{s:s, s:s}", "name", "rw", "dir",
	                    missing), desc, sizeof(desc)), "InvalidArgument");
	assert_non_null(strstr(desc, "No such file or directory"));
	assert_string_equal(call_err(x, "backup", json_pack("{s:s, s:s, s:s}", "name", "rw",
	                    "dir", dir, "kind", "incremental"), desc, sizeof(desc)),
	                    "InvalidState");
	assert_non_null(strstr(desc, "take a full one first"));
	assert_string_equal(call_err(x, "backup", json_pack("{s:s, s:s, s:s}", "name", "rw",
	                    "dir", dir, "kind", "weekly"), desc, sizeof(desc)), "InvalidArgument");
	/* a raw disk: the full backup copies it, without a bitmap */
	json_t *r = backup_ok(x, "rw", dir, NULL, true, 0);
	assert_string_equal(str(r, "kind"), "full");
	json_t *m = manifest(str(r, "manifest"));
	json_decref(r);
	json_t *disks = json_object_get(m, "disks");
	assert_true(json_is_true(json_object_get(json_object_get(disks, "data"), "bitmap")));
	assert_true(json_is_false(json_object_get(json_object_get(disks, "scratch"), "bitmap")));
	assert_string_equal(str(json_object_get(disks, "scratch"), "source-format"), "raw");
	json_decref(m);
	assert_string_equal(call_err(x, "backup", json_pack("{s:s, s:s}", "name", "rw", "dir",
	                    dir), desc, sizeof(desc)), "InvalidArgument");
	assert_non_null(strstr(desc, "disk scratch is raw"));
	assert_int_equal(count_files(dir, ".backup.json"), 1);
	assert_int_equal(count_files(dir, ".part"), 0);
	json_t *st = t_fx_must(x, "status", "rw", 5000);
	assert_string_equal(str(st, "state"), "running");
	json_decref(st);
	/* qsupctl's own checks */
	assert_int_equal(ctl(x, out, sizeof(out), "backup", "--full", "--incremental", "rw", dir,
	                     NULL), 2);
	assert_non_null(strstr(out, "not both"));
	assert_int_equal(ctl(x, out, sizeof(out), "backup", "rw", dir, "speed=fast", NULL), 2);
	assert_int_equal(ctl(x, out, sizeof(out), "backup-restore", "rw", dir, NULL), 1);
	assert_non_null(strstr(out, "needs the guest stopped"));
}

/* backup-cancel: nothing is left, the bitmap stays, the next incremental
 * holds what changed since the full backup; a second backup, a snapshot
 * and a migration are refused meanwhile; status shows it. */
static void test_backup_cancel(void **state)
{
	struct t_fx *x = *state;
	char extra[1024], dir[600], desc[600], out[4096];
	snprintf(extra, sizeof(extra), DISK, x->d.dir);
	snprintf(dir, sizeof(dir), "%s/backups", x->d.dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	t_daemon_tiny_profile(&x->d, "cx", extra);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "cx", 60000));
	struct con c;
	con_open(x, &c, "cx");
	guest_write(&c, 0, 2, "A");
	assert_int_equal(ctl(x, out, sizeof(out), "backup", "--full", "--wait", "cx", dir, NULL),
	                 0);
	json_t *m0 = NULL;
	{
		char *mp = strstr(out, "manifest: ");
		char path[900];
		assert_non_null(mp);
		snprintf(path, sizeof(path), "%.*s", (int)strcspn(mp + 10, "\n"), mp + 10);
		m0 = manifest(path);
	}
	char bitmap[128];
	snprintf(bitmap, sizeof(bitmap), "%s", str(m0, "bitmap"));
	json_decref(m0);
	assert_true(has_bitmap(x, "cx", bitmap));
	guest_write(&c, 8, 8, "B");
	con_close(&c);
	/* 8 MiB at 64 KiB/s: it runs until cancelled */
	assert_int_equal(ctl(x, out, sizeof(out), "backup", "cx", dir, "speed=64K", NULL), 0);
	assert_non_null(strstr(out, "(incremental) running"));
	json_t *st = t_fx_must(x, "status", "cx", 5000);
	json_t *op = json_object_get(st, "backup_op");
	assert_non_null(op);
	assert_string_equal(str(op, "kind"), "incremental");
	json_decref(st);
	assert_string_equal(call_err(x, "backup", json_pack("{s:s, s:s}", "name", "cx", "dir",
	                    dir), desc, sizeof(desc)), "InvalidState");
	assert_non_null(strstr(desc, "another backup"));
	assert_string_equal(call_err(x, "snapshot", json_pack("{s:s, s:s, s:s}", "name", "cx",
	                    "action", "create", "snapshot", "s1"), desc, sizeof(desc)),
	                    "InvalidState");
	assert_non_null(strstr(desc, "backup"));
	assert_string_equal(call_err(x, "save", json_pack("{s:s, s:s}", "name", "cx", "file",
	                    "/tmp/qsup-test-never.sav"), desc, sizeof(desc)), "InvalidState");
	assert_non_null(strstr(desc, "backup"));
	/* its progress is in the metrics while it runs */
	static const char key[] = "qsup_guest_backup_total_bytes{guest=\"cx\","
	                          "kind=\"incremental\"} ";
	double total = 0;
	for (int i = 0; i < 100 && total <= 0; i++) {   /* its jobs report every second */
		json_t *mr = t_ctl_call(&x->c, "metrics", NULL, 30000);
		const char *text = str(json_object_get(mr, "return"), "text");
		const char *tot = strstr(text, key);
		if (!tot || !strstr(text, "qsup_guest_backup_done_bytes{guest=\"cx\","))
			fail_msg("no backup progress in the metrics:\n%s", text);
		total = strtod(tot + strlen(key), NULL);
		json_decref(mr);
		if (total <= 0)
			usleep(100000);
	}
	printf("# note: the backup's total in the metrics: %.0f bytes\n", total);
	assert_true(total > 0);
	/* nor may a disk under the backup's job change size */
	assert_string_equal(call_err(x, "disk-resize", json_pack("{s:s, s:s, s:s}", "name", "cx",
	                    "id", "data", "size", "128M"), desc, sizeof(desc)), "InvalidState");
	assert_non_null(strstr(desc, "a backup is running"));
	assert_int_equal(ctl(x, out, sizeof(out), "backup-cancel", "cx", NULL), 0);
	assert_non_null(strstr(out, "cancelled"));
	assert_int_equal(count_files(dir, ".part"), 0);
	assert_int_equal(count_files(dir, ".backup.json"), 1);
	assert_int_equal(count_files(dir, ".qcow2"), 1);
	st = t_fx_must(x, "status", "cx", 5000);
	assert_null(json_object_get(st, "backup_op"));
	assert_string_equal(str(st, "state"), "running");
	json_decref(st);
	assert_true(has_bitmap(x, "cx", bitmap));
	/* the retry holds all 8 MiB written since the full backup */
	json_t *r = backup_ok(x, "cx", dir, "incremental", true, 0);
	json_t *m = manifest(str(r, "manifest"));
	json_decref(r);
	long long size = json_integer_value(json_object_get(json_object_get(json_object_get(m,
	                 "disks"), "data"), "file-size"));
	printf("# note: the retried incremental: %lld bytes\n", size);
	assert_true(size >= 8 * MIB && size < 10 * MIB);
	json_decref(m);
}

/* A full target directory: the backup fails, the guest runs on, nothing
 * half-written is left, the bitmap is kept: with room again, the next
 * incremental works. */
static void test_backup_full_target(void **state)
{
	struct t_fx *x = *state;
	char extra[1024], dir[600], desc[600], filler[700], disk[600], copy[700], tmp[700];
	if (geteuid() != 0) {
		printf("# note: not root: cannot mount a tmpfs; skipped\n");
		skip();
	}
	snprintf(dir, sizeof(dir), "%s/small", x->d.dir);
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	snprintf(disk, sizeof(disk), "%s/vms/data.qcow2", x->d.dir);
	snprintf(copy, sizeof(copy), "%s/copy.raw", x->d.dir);
	snprintf(tmp, sizeof(tmp), "%s/restored.raw", x->d.dir);
	assert_int_equal(unshare(CLONE_NEWNS), 0);
	assert_int_equal(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mount("tmpfs", dir, "tmpfs", 0, "size=24m,mode=0755"), 0);
	char ro[700];   /* a read-only file system: refused up front */
	snprintf(ro, sizeof(ro), "%s/ro", x->d.dir);
	assert_int_equal(mkdir(ro, 0755), 0);
	assert_int_equal(mount("tmpfs", ro, "tmpfs", MS_RDONLY, "size=1m,mode=0755"), 0);
	snprintf(extra, sizeof(extra), DISK, x->d.dir);
	t_daemon_tiny_profile(&x->d, "ft", extra);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "ft", 60000));
	assert_string_equal(call_err(x, "backup", json_pack("{s:s, s:s}", "name", "ft", "dir",
	                    ro), desc, sizeof(desc)), "InvalidArgument");
	assert_non_null(strstr(desc, "is not writable: Read-only file system"));
	struct con c;
	con_open(x, &c, "ft");
	guest_write(&c, 0, 4, "A");
	json_t *r = backup_ok(x, "ft", dir, "full", true, 0);
	json_t *m = manifest(str(r, "manifest"));
	json_decref(r);
	char bitmap[128];
	snprintf(bitmap, sizeof(bitmap), "%s", str(m, "bitmap"));
	json_decref(m);
	/* fill what is left */
	int fd = open(filler, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	static char block[64 << 10];
	memset(block, 0x5a, sizeof(block));
	while (write(fd, block, sizeof(block)) > 0)
		;
	while (write(fd, block, 512) > 0)
		;
	/* room for the target's header, not for its data */
	off_t end = lseek(fd, 0, SEEK_END);
	assert_int_equal(ftruncate(fd, end > 1 * MIB ? end - 1 * MIB : 0), 0);
	close(fd);
	guest_write(&c, 16, 4, "B");
	r = backup(x, "ft", dir, NULL, true, 0);
	json_t *err = json_object_get(r, "error");
	assert_non_null(err);
	snprintf(desc, sizeof(desc), "%s", str(err, "desc"));
	json_decref(r);
	printf("# note: %s\n", desc);
	assert_non_null(strstr(desc, "No space left on device"));
	json_t *st = t_fx_must(x, "status", "ft", 5000);
	assert_string_equal(str(st, "state"), "running");
	json_decref(st);
	assert_int_equal(count_files(dir, ".part"), 0);
	assert_int_equal(count_files(dir, ".backup.json"), 1);
	assert_int_equal(count_files(dir, ".qcow2"), 1);
	assert_true(has_bitmap(x, "ft", bitmap));
	/* room again: the incremental holds B */
	assert_int_equal(unlink(filler), 0);
	json_decref(t_fx_must(x, "pause", "ft", 30000));
	r = backup_ok(x, "ft", dir, NULL, true, 0);
	disk_copy(disk, copy);
	json_decref(t_fx_must(x, "resume", "ft", 30000));
	assert_string_equal(str(r, "kind"), "incremental");
	char file[800];
	snprintf(file, sizeof(file), "%s", str(json_object_get(r, "disks"), "data"));
	json_decref(r);
	expect_same(file, copy, tmp);
	con_close(&c);
}

/* SIGKILL of qsupd during a (throttled) backup: the next qsupd re-adopts
 * the guest, picks the backup up and completes it; the guest runs on. */
static void test_backup_qsupd_sigkill(void **state)
{
	struct t_fx *x = *state;
	char extra[1024], dir[600], disk[600], copy[700], tmp[700], rec[700];
	snprintf(extra, sizeof(extra), DISK, x->d.dir);
	snprintf(dir, sizeof(dir), "%s/backups", x->d.dir);
	snprintf(disk, sizeof(disk), "%s/vms/data.qcow2", x->d.dir);
	snprintf(copy, sizeof(copy), "%s/copy.raw", x->d.dir);
	snprintf(tmp, sizeof(tmp), "%s/restored.raw", x->d.dir);
	snprintf(rec, sizeof(rec), "%s/sk.backup.json", x->d.state);
	assert_int_equal(mkdir(dir, 0755), 0);
	t_daemon_tiny_profile(&x->d, "sk", extra);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "sk", 60000));
	struct con c;
	con_open(x, &c, "sk");
	guest_write(&c, 0, 8, "A");
	con_close(&c);
	json_decref(t_fx_must(x, "pause", "sk", 30000));
	json_t *r = backup_ok(x, "sk", dir, "full", false, 512 * 1024);
	disk_copy(disk, copy);
	json_decref(t_fx_must(x, "resume", "sk", 30000));
	char file[800], id[64];
	snprintf(file, sizeof(file), "%s", str(json_object_get(r, "disks"), "data"));
	snprintf(id, sizeof(id), "%s", str(r, "backup"));
	json_decref(r);
	assert_int_equal(access(rec, F_OK), 0);
	json_t *st0 = t_fx_must(x, "status", "sk", 5000);
	int pid = (int)json_integer_value(json_object_get(st0, "pid"));
	json_decref(st0);
	t_ctl_close(&x->c);
	t_daemon_kill9(&x->d);
	assert_int_equal(access(file, F_OK), -1);   /* not complete yet */
	t_fx_up(x, NULL);
	char mpath[900];
	snprintf(mpath, sizeof(mpath), "%s/sk-%s.backup.json", dir, id);
	for (int i = 0; i < 3000 && access(mpath, F_OK) < 0; i++)
		usleep(100000);
	json_t *m = manifest(mpath);
	assert_true(json_is_true(json_object_get(m, "picked-up")));
	json_decref(m);
	assert_int_equal(access(rec, F_OK), -1);
	json_t *st = t_fx_must(x, "status", "sk", 5000);
	assert_string_equal(str(st, "state"), "running");
	assert_int_equal(json_integer_value(json_object_get(st, "pid")), pid);
	json_decref(st);
	assert_true(t_fx_log_has(x, "picked up after a qsupd restart"));
	expect_same(file, copy, tmp);
	assert_int_equal(count_files(dir, ".part"), 0);

	/* Both qsupd and QEMU killed during an incremental backup: the next
	 * start fails it (its .part file goes); the bitmap was never stored by
	 * that QEMU, so the next incremental is refused: a full one works. */
	con_attach(x, &c, "sk", false);
	guest_write(&c, 24, 2, "Z");
	con_close(&c);
	r = backup_ok(x, "sk", dir, "incremental", false, 1024);
	json_decref(r);
	st = t_fx_must(x, "status", "sk", 5000);
	pid = (int)json_integer_value(json_object_get(st, "pid"));
	json_decref(st);
	assert_int_equal(count_files(dir, ".part"), 1);
	t_ctl_close(&x->c);
	t_daemon_kill9(&x->d);
	assert_int_equal(kill(pid, SIGKILL), 0);
	for (int i = 0; i < 300 && t_pid_alive(pid); i++)
		usleep(100000);
	t_fx_up(x, NULL);
	assert_int_equal(access(rec, F_OK), 0);   /* nothing to adopt: kept */
	/* (the killed QEMU's threads may hold its lock a moment longer) */
	for (int i = 0; i < 120; i++) {
		r = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "sk"), 180000);
		if (!strstr(str(json_object_get(r, "error"), "desc"), "still exiting"))
			break;
		json_decref(r);
		usleep(500000);
	}
	if (!json_object_get(r, "return"))
		fail_msg("start: %s", json_dumps(r, 0));
	json_decref(r);
	for (int i = 0; i < 300 && access(rec, F_OK) == 0; i++)
		usleep(100000);
	assert_int_equal(access(rec, F_OK), -1);
	assert_int_equal(count_files(dir, ".part"), 0);
	assert_int_equal(count_files(dir, ".backup.json"), 1);
	assert_true(t_fx_log_has(x, "QEMU ended while no qsupd watched it"));
	char desc[600];
	assert_string_equal(call_err(x, "backup", json_pack("{s:s, s:s}", "name", "sk", "dir",
	                    dir), desc, sizeof(desc)), "InvalidState");
	assert_non_null(strstr(desc, "take a full one"));
	json_decref(backup_ok(x, "sk", dir, "full", true, 0));
	assert_int_equal(count_files(dir, ".backup.json"), 2);
}

/* With the guest agent: the file systems are frozen around the
 * transaction and thawed after it; the backup restores to a disk with
 * what the guest wrote before it. */
static void test_backup_agent_freeze(void **state)
{
	struct t_fx *x = *state;
	char extra[1024], dir[600];
	snprintf(extra, sizeof(extra), "agent = yes\n" DISK, x->d.dir);
	snprintf(dir, sizeof(dir), "%s/backups", x->d.dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	t_daemon_tiny_profile(&x->d, "ag", extra);
	t_fx_up(x, NULL);
	json_decref(t_fx_must(x, "start", "ag", 60000));
	bool connected = false;
	for (int i = 0; i < 1200 && !connected; i++) {
		json_t *st = t_ctl_do(&x->c, "status", "ag", 5000, NULL);
		connected = json_is_true(json_object_get(json_object_get(st, "agent"), "connected"));
		json_decref(st);
		if (!connected)
			usleep(100000);
	}
	if (!connected)
		fail_msg("the guest agent never connected: %s", t_daemon_log(&x->d));
	json_t *r = backup_ok(x, "ag", dir, "full", true, 0);
	printf("# note: freeze: %s\n", str(r, "freeze"));
	assert_int_equal(strncmp(str(r, "freeze"), "frozen (", 8), 0);
	assert_string_equal(str(r, "status"), "completed");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_backup_chain_restore, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_backup_bad_input, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_backup_cancel, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_backup_full_target, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_backup_qsupd_sigkill, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_backup_agent_freeze, t_fx_setup,
		                                t_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
