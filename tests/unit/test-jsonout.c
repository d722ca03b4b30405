/*
 * The control socket's JSON writer (supervisor/lib/jsonout.c) against
 * jansson's json_dumps(JSON_COMPACT), byte for byte: every escape, UTF-8 up
 * to four bytes, strings and keys with NULs, integer and real edge cases,
 * nesting, every JSON document of the fuzz corpora (control requests, QMP
 * streams, state files), thousands of random trees; and invalid UTF-8,
 * refused by both.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonout.h"
#include "request.h"
#include "testutil.h"

/* v written both ways: the same bytes (jansson's, plus a newline). */
static void same(json_t *v)
{
	size_t n = 0;
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	char *got = sv_json_line(v, &n);
	assert_non_null(want);
	if (!got)
		fail_msg("sv_json_line refused what jansson writes: %s", want);
	assert_int_equal(n, strlen(want) + 1);
	assert_int_equal(got[n - 1], '\n');
	assert_int_equal(got[n], '\0');
	if (memcmp(got, want, n - 1))
		fail_msg("differ:\n  jansson %s\n  ours    %.*s", want, (int)n - 1, got);
	free(want);
	free(got);
}

static void test_scalars(void **state)
{
	(void)state;
	static const double reals[] = { 0.0, -0.0, 1.0, -1.5, 0.1, 97.288, 1e21, 1e22, 1e-7,
		1.5e300, -2.5e-300, 123456789012345678.0, 3.14159265358979, 1e100, 5e-324 };
	static const json_int_t ints[] = { 0, 1, -1, 9, 10, 99, 1000000, -123456789,
		INT64_MAX, INT64_MIN, INT64_MIN + 1 };
	for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
		json_t *v = json_real(reals[i]);
		same(v);
		json_decref(v);
	}
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		json_t *v = json_integer(ints[i]);
		same(v);
		json_decref(v);
	}
	json_t *v = json_pack("[b, b, n, {}, [], s]", 1, 0, "");
	same(v);
	json_decref(v);
}

static void test_strings(void **state)
{
	(void)state;
	char all[128];
	for (int i = 0; i < 127; i++)
		all[i] = (char)(i + 1);   /* every ASCII byte but NUL, 0x7f included */
	all[127] = '\0';
	static const char *const texts[] = { "plain", "a \"quote\" and a \\ backslash",
		"tab\tnewline\nreturn\rff\fbs\b", "\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac "
		"\xf0\x9f\x98\x80", "/slash/", "" };
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		json_t *v = json_pack("{s:s}", texts[i], texts[i]);
		same(v);
		json_decref(v);
	}
	json_t *v = json_string(all);
	same(v);
	json_decref(v);
	v = json_stringn("nul\0inside", 10);   /* a NUL in a string */
	same(v);
	json_decref(v);
	v = json_object();
	json_object_setn_new(v, "k\0ey", 4, json_true());   /* and in a key */
	same(v);
	json_decref(v);
}

static void test_invalid_utf8_refused(void **state)
{
	(void)state;
	static const char *const bad[] = { "\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "ab\xc3", "\xe2\x82" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *v = json_pack("[o]", json_stringn_nocheck(bad[i], strlen(bad[i])));
		size_t n;
		char *j = json_dumps(v, JSON_COMPACT), *o = sv_json_line(v, &n);
		assert_null(j);
		assert_null(o);
		json_decref(v);
	}
}

/* Every document of a corpus dir that jansson reads. */
static int corpus(const char *name)
{
	char dir[700];
	int n = 0;
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", t_srcdir(), name);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[1024];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "r");
		char line[65536];
		while (f && fgets(line, sizeof(line), f)) {   /* a line each, or the file */
			json_t *v = json_loads(line, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
			if (v) {
				same(v);
				n++;
				json_decref(v);
			}
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

static void test_fuzz_corpora(void **state)
{
	(void)state;
	int n = corpus("control") + corpus("qmp-stream") + corpus("state");
	printf("# %d documents from the fuzz corpora\n", n);
	assert_true(n > 20);
}

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static json_t *random_value(int depth)
{
	char s[24];
	size_t len;
	switch (next() % (depth > 4 ? 5 : 7)) {
	case 0:
		return json_integer((json_int_t)next());
	case 1:
		return json_real((double)(int64_t)next() / (double)(1 + next() % 100000));
	case 2:
		len = next() % sizeof(s);
		for (size_t i = 0; i < len; i++)   /* ASCII, controls and quotes included */
			s[i] = (char)(1 + next() % 127);
		return json_stringn(s, len);
	case 3:
		return next() % 2 ? json_true() : json_null();
	case 4:
		return json_string("\xc3\xa9t\xc3\xa9 \xe2\x98\x83");
	case 5: {
		json_t *a = json_array();
		for (int i = (int)(next() % 5); i > 0; i--)
			json_array_append_new(a, random_value(depth + 1));
		return a;
	}
	default: {
		json_t *o = json_object();
		for (int i = (int)(next() % 5); i > 0; i--) {
			snprintf(s, sizeof(s), "k%u\t\"", (unsigned)(next() % 1000));
			json_object_set_new(o, s, random_value(depth + 1));
		}
		return o;
	}
	}
}

static void test_random_trees(void **state)
{
	(void)state;
	for (int i = 0; i < 3000; i++) {
		json_t *v = random_value(0);
		same(v);
		json_decref(v);
	}
}

/* An array written an element at a time (sv_jsonbuf, as the list verb
 * writes it) is what jansson writes for the whole array; an element that
 * is not UTF-8 spoils the lot. */
static void test_piecewise(void **state)
{
	(void)state;
	for (int i = 0; i < 300; i++) {
		json_t *a = json_array();
		struct sv_jsonbuf b = { 0 };
		size_t n;
		int k = i % 7;
		sv_jsonbuf_put(&b, "[", 1);
		for (int e = 0; e < k; e++) {
			json_t *v = random_value(1);
			if (e)
				sv_jsonbuf_put(&b, ",", 1);
			sv_jsonbuf_value(&b, v);
			json_array_append_new(a, v);
		}
		sv_jsonbuf_put(&b, "]", 1);
		char *want = json_dumps(a, JSON_COMPACT), *got = sv_jsonbuf_take(&b, &n);
		assert_non_null(got);
		assert_int_equal(n, strlen(want));
		assert_string_equal(got, want);
		assert_null(b.p);   /* taken: b is empty again */
		free(want);
		free(got);
		json_decref(a);
	}
	struct sv_jsonbuf b = { 0 };
	size_t n = 99;
	json_t *bad = json_stringn_nocheck("\xc0\xaf", 2);
	sv_jsonbuf_put(&b, "[", 1);
	sv_jsonbuf_value(&b, bad);
	sv_jsonbuf_put(&b, "]", 1);
	assert_null(sv_jsonbuf_take(&b, &n));
	sv_jsonbuf_value(&b, NULL);
	assert_null(sv_jsonbuf_take(&b, &n));
	json_decref(bad);
}

/* sv_reply_ok_text: a route that takes lines gets {"return":R,"id":ID}
 * and a newline, as sv_reply_ok's reply would be written; one that takes
 * messages only gets R read back; text that is no JSON, or NULL, is
 * answered with an error. The metrics hook sees an answer without error. */
struct seen { json_t *msg, *fin; char *line; size_t len; int answers; };

static void seen_answer(void *arg, uint64_t peer, json_t *msg)
{
	struct seen *s = arg;
	(void)peer;
	s->msg = msg;
	s->answers++;
}

static void seen_line(void *arg, uint64_t peer, char *line, size_t len)
{
	struct seen *s = arg;
	(void)peer;
	s->line = line;
	s->len = len;
	s->answers++;
}

static void seen_finished(void *arg, const struct sv_request *req, json_t *msg)
{
	struct seen *s = arg;
	(void)req;
	s->fin = json_deep_copy(msg);
}

static void test_reply_text(void **state)
{
	(void)state;
	struct seen s = { 0 };
	struct sv_route lines = { .answer = seen_answer, .answer_line = seen_line,
	                          .finished = seen_finished, .arg = &s };
	struct sv_route msgs = { .answer = seen_answer, .finished = seen_finished, .arg = &s };
	json_t *id = json_integer(7);
	static const char text[] = "[{\"a\":\"\\n\"},2]";
	sv_reply_ok_text(sv_request_new(&lines, 1, 0, id, "list"), strdup(text), strlen(text));
	assert_int_equal(s.answers, 1);
	assert_null(s.msg);
	json_t *whole = json_pack("{s:[{s:s},i], s:i}", "return", "a", "\n", 2, "id", 7);
	char *want = json_dumps(whole, JSON_COMPACT);
	assert_int_equal(s.len, strlen(want) + 1);
	assert_memory_equal(s.line, want, s.len - 1);
	assert_int_equal(s.line[s.len - 1], '\n');
	assert_null(json_object_get(s.fin, "error"));
	free(s.line);
	json_decref(s.fin);
	s = (struct seen){ 0 };
	sv_reply_ok_text(sv_request_new(&msgs, 1, 0, id, "list"), strdup(text), strlen(text));
	assert_int_equal(s.answers, 1);
	assert_true(json_equal(s.msg, whole));
	json_decref(s.msg);
	json_decref(s.fin);
	for (int k = 0; k < 2; k++) {
		s = (struct seen){ 0 };
		sv_reply_ok_text(sv_request_new(&msgs, 1, 0, NULL, "list"), k ? strdup("[1,") : NULL, 3);
		assert_int_equal(s.answers, 1);
		assert_non_null(json_object_get(s.msg, "error"));
		json_decref(s.msg);
		json_decref(s.fin);
	}
	free(want);
	json_decref(whole);
	json_decref(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_invalid_utf8_refused),
		cmocka_unit_test(test_fuzz_corpora),
		cmocka_unit_test(test_random_trees),
		cmocka_unit_test(test_piecewise),
		cmocka_unit_test(test_reply_text),
	};
	return cmocka_run_group_tests_name("jsonout", tests, NULL, NULL);
}
