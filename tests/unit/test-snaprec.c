/*
 * The snapshot record (snaprec.h): its path, its shape checks, the atomic
 * write and read back, and the validation qsupd --check runs against the
 * profile and the files (qcow2 headers written here by hand).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "profile.h"
#include "snaprec.h"
#include "testutil.h"
#include "util.h"

static struct sv_profile *profile(const char *dir)
{
	char text[1024], path[600];
	snprintf(text, sizeof(text), "[guest]\nmemory = 256M\n[disk.root]\nfile = %s/root.qcow2\n"
	         "format = qcow2\n[disk.ro]\nfile = %s/ro.img\nformat = raw\nread-only = on\n",
	         dir, dir);
	snprintf(path, sizeof(path), "%s/web1.ini", dir);
	struct sv_profile *p = NULL;
	struct sv_strv errs = { 0 };
	assert_int_equal(sv_profile_parse(path, text, strlen(text), &p, &errs), 0);
	sv_strv_free(&errs);
	return p;
}

static void test_path_and_disks(void **state)
{
	(void)state;
	struct sv_profile *p = profile("/srv/vms");
	char buf[256];
	assert_int_equal(sv_snaprec_path(p, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/vms/web1.d/snapshots.json");
	assert_int_equal(sv_snaprec_path(p, buf, 10), -ENAMETOOLONG);
	assert_true(sv_snap_disk(&p->drives[0]));
	assert_false(sv_snap_disk(&p->drives[1]));   /* read-only */
	sv_profile_free(p);
}

static int shape(const char *text, char *why)
{
	json_error_t je;
	json_t *r = json_loads(text, 0, &je);
	struct sv_error e = { 0 };
	assert_non_null(r);
	int rc = sv_snaprec_shape(r, &e);
	json_decref(r);
	snprintf(why, 512, "%s", e.msg);
	return rc;
}

#define SNAP(n, parent) "{\"name\": \"" n "\", \"parent\": " parent ", \"created\": \"t\", " \
	"\"layers\": {\"root\": {\"file\": \"/v/" n "\", \"format\": \"qcow2\"}}, \"memory\": null}"
#define REC(cur, snaps) "{\"version\": 1, \"seq\": 2, \"current\": " cur ", \"active\": " \
	"{\"root\": {\"file\": \"/v/a\", \"format\": \"qcow2\"}}, \"snapshots\": [" snaps "]}"

static void test_shape(void **state)
{
	(void)state;
	char why[512];
	assert_int_equal(shape(REC("\"b\"", SNAP("a", "null") ", " SNAP("b", "\"a\"")), why), 0);
	assert_int_equal(shape(REC("null", ""), why), 0);
	assert_int_equal(shape("{\"version\": 2}", why), -EINVAL);
	assert_non_null(strstr(why, "version 1"));
	assert_int_equal(shape(REC("null", SNAP("a", "null") ", " SNAP("a", "null")), why),
	                 -EINVAL);
	assert_non_null(strstr(why, "recorded twice"));
	assert_int_equal(shape(REC("null", SNAP("a", "\"zz\"")), why), -EINVAL);
	assert_non_null(strstr(why, "parent"));
	assert_int_equal(shape(REC("\"zz\"", SNAP("a", "null")), why), -EINVAL);
	assert_non_null(strstr(why, "current"));
	assert_int_equal(shape(REC("null", SNAP("../a", "null")), why), -EINVAL);
	assert_non_null(strstr(why, "bad name"));
	assert_int_equal(shape("{\"version\": 1, \"seq\": 0, \"current\": null, \"active\": "
	                       "{\"root\": {\"file\": \"rel\", \"format\": \"qcow2\"}}, "
	                       "\"snapshots\": []}", why), -EINVAL);
	assert_non_null(strstr(why, "absolute path"));
	assert_int_equal(shape("{\"version\": 1, \"seq\": 0, \"current\": null, \"active\": "
	                       "{\"root\": {\"file\": \"/a\", \"format\": \"probe\"}}, "
	                       "\"snapshots\": []}", why), -EINVAL);
}

/* A minimal qcow2 v3 header at path, backed by backing (format bfmt), or
 * not (NULL). */
static void qcow2(const char *path, const char *backing, const char *bfmt)
{
	uint8_t h[512] = { 0 };
	size_t off = 104;
	h[0] = 0x51, h[1] = 0x46, h[2] = 0x49, h[3] = 0xfb;
	h[7] = 3;
	h[103] = 104;   /* header length */
	if (backing) {
		size_t n = strlen(bfmt);
		h[off] = 0xe2, h[off + 1] = 0x79, h[off + 2] = 0x2a, h[off + 3] = 0xca;
		h[off + 7] = (uint8_t)n;
		memcpy(h + off + 8, bfmt, n);
		off += 8 + ((n + 7) & ~(size_t)7);
	}
	off += 8;   /* the end extension */
	if (backing) {
		size_t n = strlen(backing);
		h[15] = (uint8_t)off;      /* backing file offset */
		h[19] = (uint8_t)n;        /* its size */
		memcpy(h + off, backing, n);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	close(fd);
}

static void test_write_read_validate(void **state)
{
	(void)state;
	char *dir = t_mkdtemp("qsup-snaprec");
	char base[600], o1[600], o2[600], path[700];
	struct sv_profile *p = profile(dir);
	struct sv_error e = { 0 };
	json_t *rec = NULL;
	snprintf(base, sizeof(base), "%s/root.qcow2", dir);
	snprintf(o1, sizeof(o1), "%s/root.qcow2.snap1.qcow2", dir);
	snprintf(o2, sizeof(o2), "%s/root.qcow2.snap2.qcow2", dir);
	qcow2(base, NULL, NULL);
	qcow2(o1, base, "qcow2");
	qcow2(o2, o1, "qcow2");

	assert_int_equal(sv_snaprec_read(p, &rec, &e), 0);   /* none yet */
	assert_null(rec);
	rec = json_pack("{s:i, s:i, s:s, s:{s:{s:s, s:s}}, s:[{s:s, s:n, s:s, s:{s:{s:s, s:s}}, "
	                "s:n}, {s:s, s:s, s:s, s:{s:{s:s, s:s}}, s:n}]}", "version", 1, "seq", 2,
	                "current", "s2", "active", "root", "file", o2, "format", "qcow2",
	                "snapshots", "name", "s1", "parent", "created", "t", "layers", "root",
	                "file", base, "format", "qcow2", "memory", "name", "s2", "parent", "s1",
	                "created", "t", "layers", "root", "file", o1, "format", "qcow2", "memory");
	assert_non_null(rec);
	assert_int_equal(sv_snaprec_write(p, rec, &e), 0);
	json_t *back = NULL;
	assert_int_equal(sv_snaprec_read(p, &back, &e), 0);
	assert_true(json_equal(rec, back));
	assert_string_equal(sv_jstr(sv_snaprec_active(back, "root"), "file", ""), o2);
	assert_non_null(sv_snaprec_find(back, "s1"));
	assert_null(sv_snaprec_find(back, "s3"));
	json_decref(back);

	char *msgs = NULL;
	assert_int_equal(sv_snaprec_validate(p, NULL, rec, &msgs), 0);
	assert_null(msgs);

	/* The current snapshot's layer is not under the active overlay. */
	json_object_set_new(rec, "current", json_string("s1"));
	assert_int_equal(sv_snaprec_validate(p, NULL, rec, &msgs), 1);
	assert_non_null(strstr(msgs, "is not backed by"));
	free(msgs);
	msgs = NULL;
	json_object_set_new(rec, "current", json_string("s2"));

	/* A layer gone, the active's chain broken with it. */
	assert_int_equal(unlink(o1), 0);
	assert_int_equal(sv_snaprec_validate(p, NULL, rec, &msgs), 2);
	assert_non_null(strstr(msgs, "snapshot s2: disk root: its image"));
	assert_non_null(strstr(msgs, "disk root: its active image"));
	free(msgs);
	msgs = NULL;

	/* An active overlay over another file than the profile's. */
	qcow2(o1, "/elsewhere.qcow2", "qcow2");
	assert_true(sv_snaprec_validate(p, NULL, rec, &msgs) >= 1);
	free(msgs);
	msgs = NULL;

	/* A disk that is not the profile's. */
	qcow2(o1, base, "qcow2");
	json_object_set_new(json_object_get(rec, "active"), "ro",
	                    json_pack("{s:s, s:s}", "file", o2, "format", "qcow2"));
	assert_int_equal(sv_snaprec_validate(p, NULL, rec, &msgs), 1);
	assert_non_null(strstr(msgs, "ro is no writable disk"));
	free(msgs);
	msgs = NULL;
	/* ... unless the hot-plug overlay has it. */
	json_t *more = json_pack("{s:{s:s}}", "ro", "file", base);
	assert_int_equal(sv_snaprec_validate(p, more, rec, &msgs), 0);
	json_decref(more);

	/* A record that is not JSON is refused when read. */
	sv_snaprec_path(p, path, sizeof(path));
	FILE *f = fopen(path, "w");
	fputs("{\"version\": 1,", f);
	fclose(f);
	assert_int_equal(sv_snaprec_read(p, &back, &e), -EINVAL);
	assert_null(back);
	assert_non_null(strstr(e.msg, "snapshots.json"));
	assert_int_equal(sv_snaprec_remove(p), 0);
	assert_int_equal(access(path, F_OK), -1);

	json_decref(rec);
	sv_profile_free(p);
	t_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_and_disks),
		cmocka_unit_test(test_shape),
		cmocka_unit_test(test_write_read_validate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
