/* The pure QMP framing and classification layer (qmp/qmp_parse.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qmp_parse.h"

struct sink {
	json_t *msgs;
	int stop_after;   /* 0: never stop */
};

static int collect(json_t *msg, void *arg)
{
	struct sink *s = arg;
	json_array_append(s->msgs, msg);
	if (s->stop_after && (int)json_array_size(s->msgs) == s->stop_after)
		return 7;
	return 0;
}

static int setup(void **state)
{
	struct sink *s = calloc(1, sizeof(*s));
	s->msgs = json_array();
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct sink *s = *state;
	json_decref(s->msgs);
	free(s);
	return 0;
}

static int feed(struct qmp_framer *f, struct sink *s, const char *text)
{
	return qmp_framer_feed(f, text, strlen(text), collect, s);
}

static void test_one_line(void **state)
{
	struct sink *s = *state;
	struct qmp_framer f;
	qmp_framer_init(&f, 1024);
	assert_int_equal(feed(&f, s, "{\"return\": {}, \"id\": 1}\r\n"), 0);
	assert_int_equal(json_array_size(s->msgs), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(s->msgs, 0), "id")), 1);
	qmp_framer_free(&f);
}

static void test_byte_at_a_time(void **state)
{
	struct sink *s = *state;
	struct qmp_framer f;
	const char *text = "{\"event\": \"STOP\"}\n{\"event\": \"RESUME\"}\n";
	qmp_framer_init(&f, 1024);
	for (size_t i = 0; text[i]; i++)
		assert_int_equal(qmp_framer_feed(&f, &text[i], 1, collect, s), 0);
	assert_int_equal(json_array_size(s->msgs), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(s->msgs, 1), "event")), "RESUME");
	qmp_framer_free(&f);
}

static void test_many_in_one_chunk_and_a_tail(void **state)
{
	struct sink *s = *state;
	struct qmp_framer f;
	qmp_framer_init(&f, 1024);
	assert_int_equal(feed(&f, s, "{\"a\":1}\n\n  \r\n{\"a\":2}\n{\"a\""), 0);
	assert_int_equal(json_array_size(s->msgs), 2);   /* blank lines skipped */
	assert_int_equal(feed(&f, s, ":3}\n"), 0);
	assert_int_equal(json_array_size(s->msgs), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(s->msgs, 2), "a")), 3);
	qmp_framer_free(&f);
}

static void test_cap_boundary(void **state)
{
	struct sink *s = *state;
	struct qmp_framer f;
	char line[64];
	/* {"x":"aaaa..."} of exactly 32 bytes */
	memset(line, 0, sizeof(line));
	strcpy(line, "{\"x\":\"");
	memset(line + 6, 'a', 32 - 8);
	strcpy(line + 30, "\"}");
	assert_int_equal(strlen(line), 32);
	qmp_framer_init(&f, 32);
	assert_int_equal(feed(&f, s, line), 0);            /* buffered */
	assert_int_equal(feed(&f, s, "\n"), 0);
	assert_int_equal(json_array_size(s->msgs), 1);
	line[31] = 'a';
	strcpy(line + 32, "\"}");                          /* 33 bytes now */
	assert_int_equal(feed(&f, s, line), -EMSGSIZE);
	assert_int_equal(feed(&f, s, "{}\n"), -EMSGSIZE);  /* sticky */
	qmp_framer_free(&f);

	qmp_framer_init(&f, 32);                           /* whole line in one chunk */
	strcat(line, "\n");
	assert_int_equal(feed(&f, s, line), -EMSGSIZE);
	qmp_framer_free(&f);
}

static void test_malformed(void **state)
{
	struct sink *s = *state;
	const char *bad[] = { "{\"a\":\n", "[1,2]\n", "\"str\"\n", "{\"a\":1,\"a\":2}\n",
	                      "{\"a\":1} trailing\n", "\x01\x02\n", "{\"a\":\"\\ud800\"}\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct qmp_framer f;
		qmp_framer_init(&f, 1024);
		assert_int_equal(feed(&f, s, bad[i]), -EBADMSG);
		qmp_framer_free(&f);
	}
	assert_int_equal(json_array_size(s->msgs), 0);
}

static int count_bad(void *arg)
{
	struct sink *s = arg;
	json_array_append_new(s->msgs, json_string("bad"));
	return 0;
}

static void test_bad_line_callback(void **state)
{
	struct sink *s = *state;
	struct qmp_framer f;
	qmp_framer_init(&f, 1024);
	f.on_bad_line = count_bad;
	assert_int_equal(feed(&f, s, "garbage\n{\"a\":1}\n[1]\n{\"a\":2}\n"), 0);
	assert_int_equal(json_array_size(s->msgs), 4);
	assert_string_equal(json_string_value(json_array_get(s->msgs, 0)), "bad");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(s->msgs, 3), "a")), 2);
	/* An oversized line still fails the stream. */
	char big[1100];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(feed(&f, s, big), -EMSGSIZE);
	qmp_framer_free(&f);
}

static void test_stop_from_callback(void **state)
{
	struct sink *s = *state;
	struct qmp_framer f;
	s->stop_after = 1;
	qmp_framer_init(&f, 1024);
	assert_int_equal(feed(&f, s, "{\"a\":1}\n{\"a\":2}\n"), 7);
	assert_int_equal(json_array_size(s->msgs), 1);
	assert_int_equal(f.error, 0);                      /* a stop is no error */
	assert_int_equal(feed(&f, s, "{\"a\":3}\n"), 0);
	assert_int_equal(json_array_size(s->msgs), 2);
	qmp_framer_free(&f);
}

static int refuse(json_t *msg, void *arg)
{
	(void)msg;
	(*(int *)arg)++;
	return -EPERM;
}

static int stop_bad(void *arg)
{
	(*(int *)arg)++;
	return 3;
}

/* A negative callback value fails the stream like the framer's own errors;
 * on_bad_line's values count like the callback's. */
static void test_callback_error_is_sticky(void **state)
{
	struct sink *s = *state;
	struct qmp_framer f;
	int calls = 0;
	qmp_framer_init(&f, 1024);
	assert_int_equal(qmp_framer_feed(&f, "{}\n{}\n", 6, refuse, &calls), -EPERM);
	assert_int_equal(calls, 1);
	assert_int_equal(f.error, -EPERM);
	assert_int_equal(qmp_framer_feed(&f, "{}\n", 3, refuse, &calls), -EPERM);
	assert_int_equal(calls, 1);
	qmp_framer_free(&f);
	qmp_framer_free(&f);                               /* safe twice */

	qmp_framer_init(&f, 1024);                         /* a new stream */
	assert_int_equal(f.error, 0);
	f.on_bad_line = stop_bad;
	calls = 0;
	assert_int_equal(qmp_framer_feed(&f, "x\n{}\n", 5, refuse, &calls), 3);
	assert_int_equal(calls, 1);                        /* {} was dropped */
	assert_int_equal(feed(&f, s, "{\"a\":1}\n"), 0);
	assert_int_equal(json_array_size(s->msgs), 1);
	qmp_framer_free(&f);
}

/* QEMU's uint64 values above INT64_MAX (a balloon's guest-stats holds -1
 * for each statistic not yet reported) arrive as their int64 two's
 * complement; digits inside strings, reals and integers beyond UINT64_MAX
 * are left alone (the last one refused, as before). */
static void test_uint64_wraps(void **state)
{
	struct sink *s = *state;
	struct qmp_framer f;
	qmp_framer_init(&f, 4096);
	assert_int_equal(feed(&f, s, "{\"return\": {\"stats\": {\"stat-free-memory\": "
	                 "18446744073709551615, \"stat-total-memory\": 9223372036854775808, "
	                 "\"ok\": 9223372036854775807, \"s\": \"18446744073709551615\", "
	                 "\"r\": 1.8446744073709551615e19}}}\n"), 0);
	assert_int_equal(json_array_size(s->msgs), 1);
	json_t *st = json_object_get(json_object_get(json_array_get(s->msgs, 0), "return"),
	                             "stats");
	assert_int_equal(json_integer_value(json_object_get(st, "stat-free-memory")), -1);
	assert_true(json_integer_value(json_object_get(st, "stat-total-memory")) == INT64_MIN);
	assert_true(json_integer_value(json_object_get(st, "ok")) == INT64_MAX);
	assert_string_equal(json_string_value(json_object_get(st, "s")), "18446744073709551615");
	assert_true(json_is_real(json_object_get(st, "r")));
	qmp_framer_free(&f);
	qmp_framer_init(&f, 4096);
	assert_int_equal(feed(&f, s, "{\"x\": 18446744073709551616}\n"), -EBADMSG);
	qmp_framer_free(&f);
}

static void test_classify(void **state)
{
	(void)state;
	struct { const char *json; enum qmp_msg_kind kind; } cases[] = {
		{ "{\"QMP\": {\"version\": {}, \"capabilities\": []}}", QMP_MSG_GREETING },
		{ "{\"QMP\": 1}", QMP_MSG_INVALID },
		{ "{\"return\": {}, \"id\": 1}", QMP_MSG_RETURN },
		{ "{\"return\": [], \"id\": 1}", QMP_MSG_RETURN },
		{ "{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}", QMP_MSG_ERROR },
		{ "{\"error\": {\"class\": 1, \"desc\": \"x\"}}", QMP_MSG_INVALID },
		{ "{\"error\": \"x\"}", QMP_MSG_INVALID },
		{ "{\"event\": \"STOP\", \"timestamp\": {}}", QMP_MSG_EVENT },
		{ "{\"event\": 5}", QMP_MSG_INVALID },
		{ "{}", QMP_MSG_INVALID },
		/* The first key present decides, in the order QMP, return, error, event. */
		{ "{\"QMP\": {}, \"return\": {}}", QMP_MSG_GREETING },
		{ "{\"event\": \"STOP\", \"return\": {}}", QMP_MSG_RETURN },
		{ "{\"error\": 1, \"event\": \"STOP\"}", QMP_MSG_INVALID },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = json_loads(cases[i].json, 0, NULL);
		assert_non_null(j);
		assert_int_equal(qmp_msg_kind(j), cases[i].kind);
		json_decref(j);
	}
	assert_int_equal(qmp_msg_kind(NULL), QMP_MSG_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_byte_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_in_one_chunk_and_a_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_boundary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_error_is_sticky, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_line_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uint64_wraps, setup, teardown),
		cmocka_unit_test(test_classify),
	};
	return cmocka_run_group_tests_name("qmp-parse", tests, NULL, NULL);
}
