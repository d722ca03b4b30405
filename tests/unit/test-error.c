/*
 * Unit tests for qsup's one error type (supervisor/lib/util.h): set and
 * setc, the class a code implies, context prefixed on the way up (and cut,
 * never overflowing), NULL accepted everywhere, and the reply it becomes
 * (sv_reply_error through a request's route).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "request.h"
#include "util.h"

static void test_set_and_class(void **state)
{
	(void)state;
	static const struct { int code; const char *cls; } table[] = {
		{ -EBUSY, "InvalidState" }, { -EEXIST, "InvalidState" },
		{ -ENOTCONN, "InvalidState" }, { -EAGAIN, "InvalidState" },
		{ -EINVAL, "InvalidArgument" }, { -ENODEV, "InvalidArgument" },
		{ -ENOENT, "NotFound" }, { -ENOMEM, "GenericError" }, { -EIO, "GenericError" },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct sv_error err = { 0 };
		assert_int_equal(sv_error_set(&err, table[i].code, "x %d", 1), table[i].code);
		assert_string_equal(err.msg, "x 1");
		assert_string_equal(sv_error_class(&err), table[i].cls);
	}
	struct sv_error err = { 0 };
	assert_int_equal(sv_error_setc(&err, -EINVAL, "PermissionDenied", "no"), -EINVAL);
	assert_string_equal(sv_error_class(&err), "PermissionDenied");
	/* set after setc: the class is the code's again */
	sv_error_set(&err, -ENOENT, "gone");
	assert_string_equal(sv_error_class(&err), "NotFound");
	assert_int_equal(sv_error_set(NULL, -EIO, "x"), -EIO);
	assert_int_equal(sv_error_setc(NULL, -EIO, "X", "x"), -EIO);
	assert_int_equal(sv_error_wrap(NULL, "x"), 0);
}

static void test_wrap(void **state)
{
	(void)state;
	struct sv_error err = { 0 };
	sv_error_setc(&err, -ENOENT, "NotFound", "/x/a.img: No such file");
	assert_int_equal(sv_error_wrap(&err, "disk %s", "d1"), -ENOENT);
	assert_int_equal(sv_error_wrap(&err, "start failed"), -ENOENT);
	assert_string_equal(err.msg, "start failed: disk d1: /x/a.img: No such file");
	assert_string_equal(sv_error_class(&err), "NotFound");   /* kept */

	/* A message that fills the buffer: the context stays whole, the end of
	 * the old message goes, and the result is terminated. */
	memset(err.msg, 'm', sizeof(err.msg) - 1);
	err.msg[sizeof(err.msg) - 1] = '\0';
	sv_error_wrap(&err, "ctx");
	assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
	assert_memory_equal(err.msg, "ctx: mmm", 8);
	/* A context longer than the buffer: cut, still terminated. */
	char big[2 * sizeof(err.msg)];
	memset(big, 'c', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sv_error_set(&err, -EIO, "tail");
	sv_error_wrap(&err, "%s", big);
	assert_true(strlen(err.msg) < sizeof(err.msg));
	assert_int_equal(err.msg[0], 'c');
}

/* A route that keeps the last answer. */
static json_t *answered;
static uint64_t answered_peer;

static void keep(void *arg, uint64_t peer, json_t *msg)
{
	(void)arg;
	json_decref(answered);
	answered = msg;
	answered_peer = peer;
}

static void test_reply(void **state)
{
	(void)state;
	struct sv_route r = { .answer = keep };
	struct sv_error err = { 0 };
	sv_error_set(&err, -EBUSY, "web1 is starting");
	sv_error_wrap(&err, "stop");
	json_t *id = json_integer(7);
	struct sv_request *req = sv_request_new(&r, 42, 0, id, "stop");
	assert_non_null(req);
	sv_reply_error(req, &err);
	assert_int_equal(answered_peer, 42);
	json_t *e = json_object_get(answered, "error");
	assert_string_equal(json_string_value(json_object_get(e, "class")), "InvalidState");
	assert_string_equal(json_string_value(json_object_get(e, "desc")),
	                    "stop: web1 is starting");
	assert_true(json_equal(json_object_get(answered, "id"), id));
	json_decref(id);
	json_decref(answered);
	answered = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_and_class),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
