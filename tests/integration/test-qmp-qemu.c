/*
 * libqmp against a real qemu-system-x86_64: -S, no disk, KVM when /dev/kvm
 * can create a VM and TCG otherwise (the log says which). Drives the
 * lifecycle over QMP and checks the replies and events QEMU really sends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "qmp.h"
#include "testutil.h"

struct fx {
	uv_loop_t loop;
	struct t_qemu q;
	struct t_qmp t;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	uv_loop_init(&x->loop);
	const char *accel = t_accel();
	const char *extra[] = { "-S", "-M", "q35", "-m", "64", "-accel", accel, NULL };
	int rc = t_qemu_spawn(&x->loop, &x->q, extra);
	if (rc < 0)
		fail_msg("spawn qemu-system-x86_64: %s", uv_strerror(rc));
	rc = t_qmp_open(&x->loop, &x->t, x->q.qmp_path, 10000);
	if (rc < 0)
		fail_msg("QMP: %s; QEMU said: %s", qmp_strerror(rc), t_qemu_stderr(&x->q));
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	t_qmp_close(&x->t);
	t_qemu_reap(&x->loop, &x->q, 0);
	assert_int_equal(t_loop_finish(&x->loop), 0);
	free(x);
	return 0;
}

static void on_exec(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct { int done, status; json_t *ret; } *w = arg;
	(void)c;
	w->done = 1;
	w->status = r->status;
	w->ret = json_incref(r->ret);
}

static const char *status_of(struct fx *x)
{
	static char buf[32];
	json_t *ret = NULL;
	assert_int_equal(t_qmp_exec(&x->t, "query-status", NULL, &ret), 0);
	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(ret, "status")));
	json_decref(ret);
	return buf;
}

static void test_greeting_version(void **state)
{
	struct fx *x = *state;
	json_t *g = qmp_client_greeting(x->t.c);
	assert_non_null(json_object_get(json_object_get(g, "version"), "qemu"));
	assert_true(qmp_client_version(x->t.c) >= 60000);
	printf("# note: QEMU %d.%d.%d\n", qmp_client_version(x->t.c) / 10000,
	       qmp_client_version(x->t.c) / 100 % 100, qmp_client_version(x->t.c) % 100);
}

static void test_prelaunch_cont_stop_resume(void **state)
{
	struct fx *x = *state;
	size_t from = 0;
	assert_string_equal(status_of(x), "prelaunch");
	assert_int_equal(t_qmp_exec(&x->t, "cont", NULL, NULL), 0);
	assert_non_null(t_qmp_wait_event(&x->t, "RESUME", &from, 5000));
	assert_string_equal(status_of(x), "running");
	assert_int_equal(t_qmp_exec(&x->t, "stop", NULL, NULL), 0);
	assert_non_null(t_qmp_wait_event(&x->t, "STOP", &from, 5000));
	assert_string_equal(status_of(x), "paused");
	assert_int_equal(t_qmp_exec(&x->t, "cont", NULL, NULL), 0);
	assert_non_null(t_qmp_wait_event(&x->t, "RESUME", &from, 5000));
	assert_string_equal(status_of(x), "running");
}

static void test_query_kvm(void **state)
{
	struct fx *x = *state;
	json_t *ret = NULL;
	assert_int_equal(t_qmp_exec(&x->t, "query-kvm", NULL, &ret), 0);
	assert_true(json_is_boolean(json_object_get(ret, "enabled")));
	assert_int_equal(json_is_true(json_object_get(ret, "enabled")),
	                 strcmp(t_accel(), "kvm") == 0);
	json_decref(ret);
}

static void test_error_from_qemu(void **state)
{
	struct fx *x = *state;
	json_t *err = NULL;
	json_t *args = json_pack("{s:s}", "id", "no-such-device");
	assert_int_equal(t_qmp_exec(&x->t, "device_del", args, &err), QMP_EREPLY);
	assert_string_equal(json_string_value(json_object_get(err, "class")), "DeviceNotFound");
	json_decref(args);
	json_decref(err);
	assert_int_equal(t_qmp_exec(&x->t, "no-such-command", NULL, &err), QMP_EREPLY);
	assert_string_equal(json_string_value(json_object_get(err, "class")), "CommandNotFound");
	json_decref(err);
	assert_string_equal(status_of(x), "prelaunch");   /* still usable */
}

static void test_big_reply(void **state)
{
	struct fx *x = *state;
	json_t *ret = NULL;
	assert_int_equal(t_qmp_exec(&x->t, "query-qmp-schema", NULL, &ret), 0);
	assert_true(json_array_size(ret) > 500);
	json_decref(ret);
}

/* SCM_RIGHTS into a real QEMU: add-fd puts the passed fd into an fd set,
 * which query-fdsets then lists. */
static void test_fd_passing_add_fd(void **state)
{
	struct fx *x = *state;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	json_t *args = json_pack("{s:i, s:s}", "fdset-id", 7, "opaque", "qsup-test");
	struct exec { int done, status; json_t *ret; } w = { 0 };
	assert_int_equal(qmp_client_execute_fd(x->t.c, "add-fd", args, p[1], 0, on_exec, &w), 0);
	json_decref(args);
	close(p[1]);
	assert_int_equal(t_run_until_flag(&x->loop, &w.done, 5000), 0);
	assert_int_equal(w.status, 0);
	assert_int_equal(json_integer_value(json_object_get(w.ret, "fdset-id")), 7);
	json_decref(w.ret);
	json_t *sets = NULL;
	assert_int_equal(t_qmp_exec(&x->t, "query-fdsets", NULL, &sets), 0);
	json_t *set = json_array_get(sets, 0);
	assert_int_equal(json_integer_value(json_object_get(set, "fdset-id")), 7);
	json_t *fd = json_array_get(json_object_get(set, "fds"), 0);
	assert_string_equal(json_string_value(json_object_get(fd, "opaque")), "qsup-test");
	json_decref(sets);
	close(p[0]);
}

static void test_quit_shutdown_then_eof(void **state)
{
	struct fx *x = *state;
	size_t from = 0;
	assert_int_equal(t_qmp_exec(&x->t, "quit", NULL, NULL), 0);
	json_t *d = t_qmp_wait_event(&x->t, "SHUTDOWN", &from, 5000);
	assert_non_null(d);
	assert_false(json_is_true(json_object_get(d, "guest")));
	assert_string_equal(json_string_value(json_object_get(d, "reason")), "host-qmp-quit");
	assert_int_equal(t_run_until_flag(&x->loop, &x->t.closed, 5000), 0);
	assert_int_equal(x->t.closed_status, UV_EOF);
	assert_int_equal(t_run_until_flag(&x->loop, &x->q.exited, 5000), 0);
	assert_int_equal(x->q.exit_status, 0);
	assert_int_equal(x->q.term_signal, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_greeting_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prelaunch_cont_stop_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_kvm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_from_qemu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_passing_add_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quit_shutdown_then_eof, setup, teardown),
	};
	return cmocka_run_group_tests_name("qmp-qemu", tests, NULL, NULL);
}
