/*
 * Unit tests for a guest's log file (supervisor/host/guestlog.c): the
 * path, rotation past the cap (and nothing else rotated or followed), the
 * lifecycle line and its mark, appends that fail (a full device), and
 * reading the last lines of a byte range: from a run's offset only, qsupd's
 * lines left out or not, a last line without newline, bytes that are not
 * text, a range larger than what may be read, a large file. And qsupd's
 * own stderr lines (supervisor/lib/log.c): time, pid, level, guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "guestlog.h"
#include "log.h"
#include "testutil.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = t_mkdtemp("qsup-glog");
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	t_rmtree(dir);
	free(dir);
	return 0;
}

static void path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static off_t size_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static bool matches(const char *re, const char *s)
{
	regex_t r;
	assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	bool m = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	if (!m)
		printf("# '%s' does not match /%s/\n", s, re);
	return m;
}

#define TIME_RE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
#define ZONE_RE "[+-][0-9]{2}:[0-9]{2}"

/* ---- the file ---- */

static void test_path(void **state)
{
	char buf[64];
	(void)state;
	assert_int_equal(sv_glog_path("/var/log/qsup", "web1", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/var/log/qsup/web1.log");
	assert_int_equal(sv_glog_path("/var/log/qsup", "web1", buf, 22), -ENAMETOOLONG);
	/* Room for ".1" is part of fitting. */
	assert_int_equal(sv_glog_path("/var/log/qsup", "web1", buf, 24), -ENAMETOOLONG);
	assert_int_equal(sv_glog_path("/var/log/qsup", "web1", buf, 25), 0);
}

static void test_rotates_only_past_the_cap(void **state)
{
	char p[600], old[620];
	char data[101];
	bool rotated = true;
	struct sv_error err = { 0 };
	(void)state;
	path_in(p, sizeof(p), "web1.log");
	snprintf(old, sizeof(old), "%s.1", p);
	/* Missing: created, nothing rotated. */
	int fd = sv_glog_open_run(p, 100, &rotated, &err);
	assert_true(fd >= 0);
	assert_false(rotated);
	memset(data, 'a', sizeof(data));
	assert_int_equal(write(fd, data, 100), 100);
	close(fd);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	/* At the cap: kept. */
	fd = sv_glog_open_run(p, 100, &rotated, &err);
	assert_true(fd >= 0);
	assert_false(rotated);
	/* Appending: O_APPEND whatever the offset. */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(write(fd, "b", 1), 1);
	close(fd);
	assert_int_equal(size_of(p), 101);
	assert_int_equal(size_of(old), -1);
	/* Past it, and with no cap: never. */
	fd = sv_glog_open_run(p, 0, &rotated, &err);
	assert_true(fd >= 0 && !rotated);
	close(fd);
	/* Past it: the file becomes .1, a new one begins. */
	fd = sv_glog_open_run(p, 100, &rotated, &err);
	assert_true(fd >= 0);
	assert_true(rotated);
	assert_int_equal(size_of(old), 101);
	assert_int_equal(size_of(p), 0);
	assert_int_equal(write(fd, data, 101), 101);
	close(fd);
	/* Once more: the older .1 is replaced. */
	fd = sv_glog_open_run(p, 100, &rotated, &err);
	assert_true(fd >= 0 && rotated);
	close(fd);
	assert_int_equal(size_of(old), 101);
	assert_int_equal(size_of(p), 0);
}

static void test_never_a_link_or_a_dir(void **state)
{
	char p[600], target[600];
	struct sv_error err = { 0 };
	bool rotated;
	(void)state;
	path_in(p, sizeof(p), "link.log");
	path_in(target, sizeof(target), "elsewhere");
	write_file(target, "precious\n", 9);
	assert_int_equal(symlink(target, p), 0);
	assert_true(sv_glog_open_run(p, 1, &rotated, &err) < 0);
	assert_false(rotated);   /* not a regular file: never renamed either */
	assert_non_null(strstr(err.msg, p));
	printf("# note: %s\n", err.msg);
	assert_int_equal(size_of(target), 9);
	path_in(p, sizeof(p), "dir.log");
	assert_int_equal(mkdir(p, 0755), 0);
	assert_true(sv_glog_open_run(p, 0, &rotated, &err) < 0);
	assert_non_null(strstr(err.msg, p));
	path_in(p, sizeof(p), "nodir/web1.log");
	assert_int_equal(sv_glog_open_run(p, 0, &rotated, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "No such file or directory"));
}

/* ---- lines ---- */

static size_t fmt(char *buf, size_t size, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	size_t n = sv_glog_vformat(buf, size, f, ap);
	va_end(ap);
	return n;
}

static void test_line_and_mark(void **state)
{
	char line[SV_GLOG_LINE_MAX], text[5000];
	(void)state;
	size_t n = fmt(line, sizeof(line), "start (reason: %s)", "two\nlines\r");
	assert_int_equal(n, strlen(line));
	assert_true(line[n - 1] == '\n');
	line[n - 1] = '\0';
	assert_true(matches("^" TIME_RE "\\.[0-9]{3}" ZONE_RE " qsup: start \\(reason: two "
	                    "lines \\)$", line));
	assert_true(sv_glog_is_ours(line, strlen(line)));
	/* Too long: cut, still one line. */
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	n = fmt(line, sizeof(line), "%s", text);
	assert_int_equal(n, SV_GLOG_LINE_MAX - 1);
	assert_true(line[n - 1] == '\n' && memchr(line, '\n', n - 1) == NULL);
	/* QEMU's own lines, even with its time stamps, are not ours. */
	static const char *const theirs[] = {
		"2026-11-30T10:44:49.527961Z qemu-system-x86_64: warning: host doesn't support",
		"qemu-system-x86_64: -device foo: 'foo' is not a valid device model name",
		"qsup: start (reason: operator)", " qsup: x", "", "2026-11-30T10:44:49Z",
		"2026-11-30 10:44:49 qsup: spaced",
	};
	for (size_t i = 0; i < sizeof(theirs) / sizeof(theirs[0]); i++)
		assert_false(sv_glog_is_ours(theirs[i], strlen(theirs[i])));
	const char *ours = "2026-11-30T10:36:23+01:00 qsup: exit pid 1 (class crash): x";
	assert_true(sv_glog_is_ours(ours, strlen(ours)));
}

static void test_append_fails_cleanly(void **state)
{
	char p[600];
	(void)state;
	/* A full device: ENOSPC, and nothing else goes wrong. */
	assert_int_equal(sv_glog_append(-1, "/dev/full", "x\n", 2), -ENOSPC);
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(sv_glog_append(fd, NULL, "x\n", 2), -ENOSPC);
	close(fd);
	path_in(p, sizeof(p), "missing/web1.log");
	assert_int_equal(sv_glog_append(-1, p, "x\n", 2), -ENOENT);
	path_in(p, sizeof(p), "ok.log");
	assert_int_equal(sv_glog_append(-1, p, "one\n", 4), 0);
	assert_int_equal(sv_glog_append(-1, p, "two\n", 4), 0);
	assert_int_equal(size_of(p), 8);
}

/* ---- reading ---- */

static void expect_lines(const struct sv_strv *got, const char *const *want, size_t n)
{
	for (size_t i = 0; i < got->n; i++)
		printf("# line %zu: '%s'\n", i, got->v[i]);
	assert_int_equal(got->n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(got->v[i], want[i]);
}

static void test_tail_of_a_run(void **state)
{
	char p[600];
	static const char before[] = "old crash text\nqemu: older\n";
	static const char run[] = "2026-11-30T10:36:23.123+01:00 qsup: QEMU pid 7 (kvm)\n"
	                          "new1\r\nne\0w2\nbad\xff\xfe\n" "2026-11-30T10:36:24.000+01:00"
	                          " qsup: exit pid 7 (class crash): x\npart";
	(void)state;
	path_in(p, sizeof(p), "run.log");
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, before, sizeof(before) - 1), (ssize_t)sizeof(before) - 1);
	int64_t from = sizeof(before) - 1, end = from + (int64_t)sizeof(run) - 1, complete = -7;
	assert_int_equal(write(fd, run, sizeof(run) - 1), (ssize_t)sizeof(run) - 1);

	struct sv_strv got = { 0 };
	assert_int_equal(sv_glog_tail(fd, from, end, 10, 1 << 20, true, false, &got, NULL), 0);
	const char *const want1[] = { "new1", "ne?w2", "bad??", "part" };
	expect_lines(&got, want1, 4);
	sv_strv_free(&got);

	/* Without the last line that has no newline yet; where whole lines end. */
	assert_int_equal(sv_glog_tail(fd, from, end, 10, 1 << 20, false, false, &got,
	                              &complete), 0);
	expect_lines(&got, want1, 3);
	assert_int_equal(complete, end - 4);
	sv_strv_free(&got);

	/* With qsupd's lines; only the last n. */
	assert_int_equal(sv_glog_tail(fd, from, end, 2, 1 << 20, false, true, &got, NULL), 0);
	const char *const want2[] = { "bad??", "2026-11-30T10:36:24.000+01:00 qsup: exit pid 7 "
	                              "(class crash): x" };
	expect_lines(&got, want2, 2);
	sv_strv_free(&got);

	/* The whole file: the older run's lines are there; from the run's
	 * offset they never are. */
	assert_int_equal(sv_glog_tail(fd, 0, end, 100, 1 << 20, true, false, &got, NULL), 0);
	assert_string_equal(got.v[0], "old crash text");
	sv_strv_free(&got);
	assert_int_equal(sv_glog_tail(fd, from, end, 100, 1 << 20, true, false, &got, NULL), 0);
	for (size_t i = 0; i < got.n; i++)
		assert_null(strstr(got.v[i], "old"));
	sv_strv_free(&got);

	/* Nothing to read. */
	assert_int_equal(sv_glog_tail(fd, end, end, 10, 1 << 20, true, false, &got, &complete), 0);
	assert_int_equal(got.n, 0);
	assert_int_equal(complete, end);
	close(fd);
}

static void test_tail_of_a_large_file(void **state)
{
	char p[600], want[32];
	(void)state;
	path_in(p, sizeof(p), "large.log");
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	for (int i = 0; i < 200000; i++)
		fprintf(f, "line %06d\n", i);   /* 12 bytes each */
	fclose(f);
	int64_t end = 200000 * 12;
	int fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	struct sv_strv got = { 0 };
	/* 10000 lines: more than the first read holds. */
	assert_int_equal(sv_glog_tail(fd, 0, end, 10000, 8 << 20, true, false, &got, NULL), 0);
	assert_int_equal(got.n, 10000);
	assert_string_equal(got.v[0], "line 190000");
	assert_string_equal(got.v[9999], "line 199999");
	sv_strv_free(&got);
	/* At most 100 bytes read: the line cut at their start is dropped. */
	assert_int_equal(sv_glog_tail(fd, 0, end, 100, 100, true, false, &got, NULL), 0);
	assert_int_equal(got.n, 8);
	snprintf(want, sizeof(want), "line %06d", 199992);
	assert_string_equal(got.v[0], want);
	sv_strv_free(&got);
	close(fd);
}

static void test_split(void **state)
{
	struct sv_strv got = { 0 };
	(void)state;
	assert_int_equal(sv_glog_split("a\nb\r\nc", 6, &got), 5);
	const char *const want[] = { "a", "b" };
	expect_lines(&got, want, 2);
	sv_strv_free(&got);
	assert_int_equal(sv_glog_split("no newline", 10, &got), 0);
	assert_int_equal(got.n, 0);
}

/* ---- qsupd's own log, on stderr ---- */

/* Run sv_log calls with stderr in a temporary file; returns its text. */
static char *captured(void (*fn)(void))
{
	static char text[4096];
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	unsetenv("JOURNAL_STREAM");
	assert_false(sv_log_open());
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	size_t n = fread(text, 1, sizeof(text) - 1, tmp);
	text[n] = '\0';
	fclose(tmp);
	return text;
}

static void some_messages(void)
{
	sv_log_set_level(SV_LOG_INFO);
	sv_log(SV_LOG_WARN, "web1", "QEMU ended (%s): %s", "crash", "killed");
	sv_log(SV_LOG_INFO, NULL, "listening on %s", "/run/qsup/qsupd.sock");
	sv_log(SV_LOG_DEBUG, "web1", "not shown at info");
	sv_log_event(SV_LOG_ERR, "db", SV_MSGID_FAILED, "too many restarts");
	sv_log_set_level(SV_LOG_DEBUG);
	sv_log(SV_LOG_DEBUG, "web1", "shown at debug");
	sv_log_set_level(SV_LOG_INFO);
}

static void test_stderr_lines(void **state)
{
	char re[200], *save = NULL;
	(void)state;
	char *text = captured(some_messages);
	static const char *const rest[] = {
		"warning: web1: QEMU ended \\(crash\\): killed", "info: listening on /run/qsup/qsupd.sock",
		"error: db: too many restarts", "debug: web1: shown at debug",
	};
	size_t i = 0;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		assert_true(i < 4);
		snprintf(re, sizeof(re), "^" TIME_RE "\\.[0-9]{3}" ZONE_RE " qsupd\\[%ld\\]: %s$",
		         (long)getpid(), rest[i++]);
		assert_true(matches(re, line));
	}
	assert_int_equal(i, 4);
}

static void test_journal_stream_is_stderrs(void **state)
{
	struct stat st;
	char v[64];
	(void)state;
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	setenv("JOURNAL_STREAM", "1:2", 1);
	assert_false(sv_log_open());
	setenv("JOURNAL_STREAM", "garbage", 1);
	assert_false(sv_log_open());
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	assert_true(sv_log_open());   /* decided only: nothing is sent here */
	snprintf(v, sizeof(v), "%llu:%llux", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	assert_false(sv_log_open());
	unsetenv("JOURNAL_STREAM");
	assert_false(sv_log_open());
}

static void test_time(void **state)
{
	char buf[40];
	(void)state;
	assert_true(matches("^" TIME_RE "\\.[0-9]{3}" ZONE_RE "$", sv_log_time(buf, sizeof(buf),
	                                                                     true)));
	assert_true(matches("^" TIME_RE ZONE_RE "$", sv_log_time(buf, sizeof(buf), false)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test_setup_teardown(test_rotates_only_past_the_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_never_a_link_or_a_dir, setup, teardown),
		cmocka_unit_test(test_line_and_mark),
		cmocka_unit_test_setup_teardown(test_append_fails_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_of_a_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_of_a_large_file, setup, teardown),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_stderr_lines),
		cmocka_unit_test(test_journal_stream_is_stderrs),
		cmocka_unit_test(test_time),
	};
	return cmocka_run_group_tests_name("guestlog", tests, NULL, NULL);
}
