/*
 * libqmp client against the scripted fake server (tests/lib/fakeqmp.c) on a
 * socketpair, inside a real uv loop: negotiation, events, id matching,
 * framing across reads, caps, malformed input, EOF, deadlines, fd passing,
 * and the callback contract.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "fakeqmp.h"
#include "qmp.h"
#include "testutil.h"

struct reply {
	int calls, status;
	json_t *val;           /* return value, or {"class","desc"} */
};

struct fx {
	uv_loop_t loop;
	struct fake_qmp f;
	struct qmp_client *c;
	int ready_calls, ready_status;
	int closed_calls, closed_status;
	json_t *events;        /* event names, in order */
	json_t *order;         /* "event:NAME" / "reply:N" in callback order */
	int track_replied;     /* also "replied:COMMAND" in order */
	uint64_t replied_ns;   /* the sum of replied()'s times */
	char log[4096];
};

static void on_ready(struct qmp_client *c, int status)
{
	struct fx *x = qmp_client_data(c);
	x->ready_calls++;
	x->ready_status = status;
	json_array_append_new(x->order, json_string("ready"));
}

static void on_event(struct qmp_client *c, const char *name, json_t *data,
                     const struct qmp_timestamp *ts)
{
	struct fx *x = qmp_client_data(c);
	(void)data;
	(void)ts;
	json_array_append_new(x->events, json_string(name));
	json_array_append_new(x->order, json_sprintf("event:%s", name));
}

static void on_closed(struct qmp_client *c, int status)
{
	struct fx *x = qmp_client_data(c);
	x->closed_calls++;
	x->closed_status = status;
	x->c = NULL;
}

static void on_log(struct qmp_client *c, enum qmp_log_level lvl, const char *msg)
{
	struct fx *x = qmp_client_data(c);
	(void)lvl;
	strncat(x->log, msg, sizeof(x->log) - strlen(x->log) - 2);
	strcat(x->log, "\n");
}

static void on_replied(struct qmp_client *c, const char *command, uint64_t ns)
{
	struct fx *x = qmp_client_data(c);
	x->replied_ns += ns;
	if (x->track_replied)
		json_array_append_new(x->order, json_sprintf("replied:%s", command));
}

static const struct qmp_callbacks cbs = {
	.ready = on_ready, .event = on_event, .closed = on_closed, .log = on_log,
	.replied = on_replied,
};

static void on_reply(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct reply *rp = arg;
	struct fx *x = qmp_client_data(c);
	rp->calls++;
	rp->status = r->status;
	json_decref(rp->val);
	rp->val = NULL;
	if (r->status == 0)
		rp->val = json_incref(r->ret);
	else if (r->status == QMP_EREPLY)
		rp->val = json_pack("{s:s,s:s}", "class", r->err_class, "desc", r->err_desc);
	json_array_append_new(x->order, json_sprintf("reply:%d", r->status));
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	uv_loop_init(&x->loop);
	assert_int_equal(fake_qmp_init(&x->f, &x->loop), 0);
	x->events = json_array();
	x->order = json_array();
	x->c = qmp_client_new(&x->loop, &cbs, x);
	assert_non_null(x->c);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	if (x->c) {
		qmp_client_close(x->c);
		t_run_until_flag(&x->loop, &x->closed_calls, 2000);
	}
	fake_qmp_close(&x->f);
	assert_int_equal(t_loop_finish(&x->loop), 0);
	json_decref(x->events);
	json_decref(x->order);
	free(x);
	return 0;
}

/* Hand the socketpair end to the client and complete negotiation. */
static void adopt(struct fx *x)
{
	assert_int_equal(qmp_client_adopt(x->c, x->f.peer_fd), 0);
	x->f.peer_fd = -1;
}

static void negotiate(struct fx *x)
{
	adopt(x);
	fake_qmp_sends(&x->f, FAKEQMP_GREETING);
	assert_int_equal(t_run_until_flag(&x->loop, &x->ready_calls, 2000), 0);
	assert_int_equal(x->ready_status, 0);
}


/* Reply to the n-th received command with a return value. */
static json_t *nth_cmd(struct fx *x, const char *cmd, size_t nth)
{
	size_t seen = 0, i;
	json_t *m;
	json_array_foreach(x->f.received, i, m) {
		const char *c = json_string_value(json_object_get(m, "execute"));
		if (c && strcmp(c, cmd) == 0 && seen++ == nth)
			return m;
	}
	return NULL;
}

struct count_wait { struct fake_qmp *f; const char *cmd; size_t n; };
static int have_cmds(void *arg)
{
	struct count_wait *w = arg;
	return fake_qmp_count(w->f, w->cmd) >= w->n;
}
static void wait_cmds(struct fx *x, const char *cmd, size_t n)
{
	struct count_wait w = { &x->f, cmd, n };
	assert_int_equal(t_run_until(&x->loop, have_cmds, &w, 2000), 0);
}

/* ---- tests ---- */

static void test_greeting_and_negotiation(void **state)
{
	struct fx *x = *state;
	negotiate(x);
	assert_true(qmp_client_is_ready(x->c));
	assert_int_equal(qmp_client_version(x->c), 70201);
	json_t *caps = json_object_get(qmp_client_greeting(x->c), "capabilities");
	assert_string_equal(json_string_value(json_array_get(caps, 0)), "oob");
	assert_int_equal(fake_qmp_count(&x->f, "qmp_capabilities"), 1);
	assert_int_equal(x->ready_calls, 1);
}

static void test_event_during_negotiation(void **state)
{
	struct fx *x = *state;
	x->f.on_msg = NULL;   /* answer qmp_capabilities by hand */
	adopt(x);
	fake_qmp_sends(&x->f, FAKEQMP_GREETING);
	wait_cmds(x, "qmp_capabilities", 1);
	json_t *caps = fake_qmp_get(&x->f, 0);
	assert_non_null(caps);
	fake_qmp_sends(&x->f, "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\n");
	fake_qmp_return(&x->f, caps, "{}");
	assert_int_equal(t_run_until_flag(&x->loop, &x->ready_calls, 2000), 0);
	assert_int_equal(x->ready_status, 0);
	assert_string_equal(json_string_value(json_array_get(x->order, 0)), "event:RESUME");
	assert_string_equal(json_string_value(json_array_get(x->order, 1)), "ready");
}

static void test_events_interleaved_with_replies(void **state)
{
	struct fx *x = *state;
	struct reply r1 = { 0 }, r2 = { 0 };
	negotiate(x);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r1), 0);
	json_t *args = json_pack("{s:s}", "id", "disk0");
	assert_int_equal(qmp_client_execute(x->c, "device_del", args, 0, on_reply, &r2), 0);
	json_decref(args);
	wait_cmds(x, "device_del", 1);
	json_t *m2 = nth_cmd(x, "device_del", 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(m2, "arguments"), "id")), "disk0");
	fake_qmp_sends(&x->f, "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\n");
	fake_qmp_return(&x->f, m2, "{}");
	fake_qmp_sends(&x->f, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"disk0\"}, "
	               "\"timestamp\": {\"seconds\": 1, \"microseconds\": 5}}\n");
	fake_qmp_return(&x->f, nth_cmd(x, "query-status", 0), "{\"status\": \"running\", \"running\": true}");
	assert_int_equal(t_run_until_flag(&x->loop, &r1.calls, 2000), 0);
	assert_int_equal(r1.calls, 1);
	assert_int_equal(r2.calls, 1);
	assert_int_equal(r1.status, 0);
	assert_string_equal(json_string_value(json_object_get(r1.val, "status")), "running");
	const char *want[] = { "ready", "event:STOP", "reply:0", "event:DEVICE_DELETED", "reply:0" };
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(json_string_value(json_array_get(x->order, i)), want[i]);
	json_decref(r1.val);
	json_decref(r2.val);
}

static void test_reply_split_across_reads(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	negotiate(x);
	assert_int_equal(qmp_client_execute(x->c, "query-name", NULL, 0, on_reply, &r), 0);
	wait_cmds(x, "query-name", 1);
	json_t *id = json_object_get(nth_cmd(x, "query-name", 0), "id");
	char text[128];
	snprintf(text, sizeof(text), "{\"return\": {\"name\": \"web1\"}, \"id\": %lld}\r\n",
	         (long long)json_integer_value(id));
	for (size_t i = 0; text[i]; i++) {
		fake_qmp_send(&x->f, &text[i], 1);
		t_run_for(&x->loop, 1);   /* lets the client read each byte alone */
		if (text[i + 1])
			assert_int_equal(r.calls, 0);
	}
	assert_int_equal(t_run_until_flag(&x->loop, &r.calls, 2000), 0);
	assert_string_equal(json_string_value(json_object_get(r.val, "name")), "web1");
	json_decref(r.val);
}

static void test_several_replies_in_one_read(void **state)
{
	struct fx *x = *state;
	struct reply r[3] = { { 0 } };
	negotiate(x);
	for (int i = 0; i < 3; i++)
		assert_int_equal(qmp_client_execute(x->c, "query-kvm", NULL, 0, on_reply, &r[i]), 0);
	wait_cmds(x, "query-kvm", 3);
	char buf[512] = "";
	for (int i = 2; i >= 0; i--) {   /* answered in reverse order */
		char one[128];
		snprintf(one, sizeof(one), "{\"return\": {\"n\": %d}, \"id\": %lld}\n", i,
		         (long long)json_integer_value(json_object_get(nth_cmd(x, "query-kvm", (size_t)i), "id")));
		strcat(buf, one);
	}
	fake_qmp_sends(&x->f, buf);
	assert_int_equal(t_run_until_flag(&x->loop, &r[0].calls, 2000), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(json_integer_value(json_object_get(r[i].val, "n")), i);
		json_decref(r[i].val);
	}
}

static void test_oversized_line(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	negotiate(x);
	assert_int_equal(qmp_client_execute(x->c, "query-qmp-schema", NULL, 0, on_reply, &r), 0);
	/* One line just over the default 10 MiB cap, never terminated. */
	size_t n = QMP_DEFAULT_MAX_LINE + 16;
	char *big = malloc(n);
	memcpy(big, "{\"return\": \"", 12);
	memset(big + 12, 'a', n - 12);
	fake_qmp_send(&x->f, big, n);
	free(big);
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 10000), 0);
	assert_int_equal(x->closed_status, UV_EPROTO);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.status, UV_EPROTO);
	assert_non_null(strstr(x->log, "exceeds"));
}

static void test_line_at_cap_is_accepted(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	qmp_client_set_limits(x->c, 0, 200);
	negotiate(x);
	assert_int_equal(qmp_client_execute(x->c, "x", NULL, 0, on_reply, &r), 0);
	wait_cmds(x, "x", 1);
	char line[256];
	int len = snprintf(line, sizeof(line), "{\"return\": \"%%s\", \"id\": %lld}",
	                   (long long)json_integer_value(json_object_get(nth_cmd(x, "x", 0), "id")));
	char pad[256];
	memset(pad, 'p', sizeof(pad));
	pad[200 - (len - 2)] = '\0';   /* the finished line is exactly 200 bytes */
	char full[512];
	snprintf(full, sizeof(full), line, pad);
	assert_int_equal(strlen(full), 200);
	strcat(full, "\n");
	fake_qmp_sends(&x->f, full);
	assert_int_equal(t_run_until_flag(&x->loop, &r.calls, 2000), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(x->closed_calls, 0);
	json_decref(r.val);
}

static void test_malformed_json(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	negotiate(x);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r), 0);
	fake_qmp_sends(&x->f, "{\"return\": {\"status\": \n");
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 2000), 0);
	assert_int_equal(x->closed_status, UV_EPROTO);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.status, UV_EPROTO);
	assert_non_null(strstr(x->log, "malformed"));
}

static void test_eof_with_commands_pending(void **state)
{
	struct fx *x = *state;
	struct reply r[3] = { { 0 } };
	negotiate(x);
	for (int i = 0; i < 3; i++)
		assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r[i]), 0);
	assert_int_equal(qmp_client_pending(x->c), 3);
	wait_cmds(x, "query-status", 3);
	fake_qmp_close(&x->f);
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 2000), 0);
	assert_int_equal(x->closed_status, UV_EOF);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].status, UV_EOF);
	}
	t_run_for(&x->loop, 20);
	assert_int_equal(x->closed_calls, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(r[i].calls, 1);
}

/* A peer that exits with our bytes unread makes the kernel send a reset;
 * QEMU does this after quit. It is a hang-up, reported as UV_EOF. */
static void test_reset_is_eof(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	negotiate(x);
	x->f.eof = 1;                 /* the fake stops reading... */
	uv_poll_stop(&x->f.poll);
	assert_int_equal(qmp_client_execute(x->c, "quit", NULL, 0, on_reply, &r), 0);
	t_run_for(&x->loop, 20);
	fake_qmp_close(&x->f);        /* ...and closes with input unread */
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 2000), 0);
	assert_int_equal(x->closed_status, UV_EOF);
	assert_int_equal(r.status, UV_EOF);
	assert_null(strstr(x->log, "reset"));
}

static void test_timeout_then_success(void **state)
{
	struct fx *x = *state;
	struct reply slow = { 0 }, fast = { 0 };
	negotiate(x);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 50, on_reply, &slow), 0);
	assert_int_equal(t_run_until_flag(&x->loop, &slow.calls, 2000), 0);
	assert_int_equal(slow.status, UV_ETIMEDOUT);
	assert_int_equal(qmp_client_pending(x->c), 0);
	/* The late reply is dropped and logged; the connection stays usable. */
	fake_qmp_return(&x->f, nth_cmd(x, "query-status", 0), "{\"status\": \"running\"}");
	assert_int_equal(qmp_client_execute(x->c, "query-name", NULL, 0, on_reply, &fast), 0);
	wait_cmds(x, "query-name", 1);
	fake_qmp_return(&x->f, nth_cmd(x, "query-name", 0), "{\"name\": \"ok\"}");
	assert_int_equal(t_run_until_flag(&x->loop, &fast.calls, 2000), 0);
	assert_int_equal(fast.status, 0);
	assert_string_equal(json_string_value(json_object_get(fast.val, "name")), "ok");
	assert_int_equal(slow.calls, 1);
	assert_non_null(strstr(x->log, "timed out"));
	assert_non_null(strstr(x->log, "unknown id"));
	assert_int_equal(x->closed_calls, 0);
	json_decref(fast.val);
}

static void test_unknown_id_dropped(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	negotiate(x);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r), 0);
	fake_qmp_sends(&x->f, "{\"return\": {}, \"id\": 999}\n{\"return\": {}, \"id\": \"x\"}\n{\"return\": {}}\n");
	t_run_for(&x->loop, 50);
	assert_int_equal(r.calls, 0);
	assert_int_equal(qmp_client_pending(x->c), 1);
	assert_non_null(strstr(x->log, "unknown id 999"));
	assert_non_null(strstr(x->log, "unknown id \"x\""));
	fake_qmp_return(&x->f, nth_cmd(x, "query-status", 0), "{}");
	assert_int_equal(t_run_until_flag(&x->loop, &r.calls, 2000), 0);
	assert_int_equal(r.status, 0);
	json_decref(r.val);
}

static void test_error_reply(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	negotiate(x);
	assert_int_equal(qmp_client_execute(x->c, "device_del", NULL, 0, on_reply, &r), 0);
	wait_cmds(x, "device_del", 1);
	fake_qmp_error(&x->f, nth_cmd(x, "device_del", 0), "DeviceNotFound", "Device 'x' not found");
	assert_int_equal(t_run_until_flag(&x->loop, &r.calls, 2000), 0);
	assert_int_equal(r.status, QMP_EREPLY);
	assert_string_equal(json_string_value(json_object_get(r.val, "class")), "DeviceNotFound");
	assert_string_equal(json_string_value(json_object_get(r.val, "desc")), "Device 'x' not found");
	json_decref(r.val);
}

static void test_fd_passing(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	int p[2];
	negotiate(x);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	json_t *args = json_pack("{s:s}", "fdname", "mig");
	/* A plain command queued first must still go out before the fd one. */
	struct reply r0 = { 0 };
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r0), 0);
	assert_int_equal(qmp_client_execute_fd(x->c, "getfd", args, p[1], 0, on_reply, &r), 0);
	json_decref(args);
	close(p[1]);   /* the client holds its own duplicate */
	wait_cmds(x, "getfd", 1);
	assert_int_equal(x->f.nfds, 1);
	assert_string_equal(json_string_value(json_object_get(fake_qmp_get(&x->f, 1), "execute")), "query-status");
	/* The received fd is the pipe's write end: prove it by writing. */
	assert_int_equal(write(x->f.fds[0], "hi", 2), 2);
	char buf[4] = "";
	assert_int_equal(read(p[0], buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "hi", 2);
	fake_qmp_return(&x->f, nth_cmd(x, "getfd", 0), "{}");
	fake_qmp_return(&x->f, nth_cmd(x, "query-status", 0), "{}");
	assert_int_equal(t_run_until_flag(&x->loop, &r0.calls, 2000), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.status, 0);
	json_decref(r.val);
	json_decref(r0.val);
	close(p[0]);
	assert_int_equal(qmp_client_execute_fd(x->c, "getfd", NULL, -1, 0, on_reply, &r), UV_EBADF);
}

/* Corked, commands wait; uncorked, they go out in one write, the fd with
 * the first (one sendmsg, one read on QEMU's side), and each reply still
 * reaches its own callback. */
static void test_cork_batches(void **state)
{
	struct fx *x = *state;
	struct reply r[3] = { 0 };
	int p[2];
	negotiate(x);
	size_t before = json_array_size(x->f.received);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	qmp_client_cork(x->c);
	json_t *args = json_pack("{s:s}", "fdname", "f");
	assert_int_equal(qmp_client_execute_fd(x->c, "getfd", args, p[1], 0, on_reply, &r[0]), 0);
	json_decref(args);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r[1]), 0);
	assert_int_equal(qmp_client_execute(x->c, "query-name", NULL, 0, on_reply, &r[2]), 0);
	close(p[1]);
	t_run_for(&x->loop, 50);
	assert_int_equal(json_array_size(x->f.received), before);   /* held */
	int reads = x->f.reads;
	qmp_client_uncork(x->c);
	wait_cmds(x, "query-name", 1);
	assert_int_equal(x->f.reads - reads, 1);
	assert_int_equal(x->f.nfds, 1);
	assert_string_equal(json_string_value(json_object_get(fake_qmp_get(&x->f, before),
	                    "execute")), "getfd");
	fake_qmp_return(&x->f, nth_cmd(x, "query-name", 0), "{\"name\": \"n\"}");
	fake_qmp_return(&x->f, nth_cmd(x, "getfd", 0), "{}");
	fake_qmp_error(&x->f, nth_cmd(x, "query-status", 0), "GenericError", "no");
	assert_int_equal(t_run_until_flag(&x->loop, &r[1].calls, 2000), 0);
	assert_int_equal(r[0].status, 0);
	assert_int_equal(r[1].status, QMP_EREPLY);
	assert_int_equal(r[2].status, 0);
	assert_string_equal(json_string_value(json_object_get(r[2].val, "name")), "n");
	/* Uncorked, a command goes out at once, on its own. */
	reads = x->f.reads;
	assert_int_equal(qmp_client_execute(x->c, "query-kvm", NULL, 0, on_reply, &r[0]), 0);
	wait_cmds(x, "query-kvm", 1);
	assert_int_equal(x->f.reads - reads, 1);
	r[0].calls = 0;
	fake_qmp_return(&x->f, nth_cmd(x, "query-kvm", 0), "{}");
	assert_int_equal(t_run_until_flag(&x->loop, &r[0].calls, 2000), 0);
	for (int i = 0; i < 3; i++)
		json_decref(r[i].val);
	close(p[0]);
}

static void test_contract_errors_never_call_back(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	/* Not connected yet. */
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r), UV_ENOTCONN);
	negotiate(x);
	json_t *arr = json_array();
	assert_int_equal(qmp_client_execute(x->c, "query-status", arr, 0, on_reply, &r), UV_EINVAL);
	assert_int_equal(qmp_client_execute(x->c, "", NULL, 0, on_reply, &r), UV_EINVAL);
	json_decref(arr);
	assert_int_equal(qmp_client_adopt(x->c, 0), UV_EINVAL);
	assert_int_equal(qmp_client_connect(x->c, "/tmp/x"), UV_EINVAL);
	t_run_for(&x->loop, 20);
	assert_int_equal(r.calls, 0);
}

static void test_close_with_pending_cancels_once(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	negotiate(x);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r), 0);
	qmp_client_close(x->c);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.status, UV_ECANCELED);
	qmp_client_close(x->c);   /* idempotent before the free */
	assert_int_equal(qmp_client_execute(x->c, "x", NULL, 0, on_reply, &r), UV_ENOTCONN);
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 2000), 0);
	assert_int_equal(x->closed_status, 0);
	assert_int_equal(r.calls, 1);
}

static void close_in_reply(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	on_reply(c, r, arg);
	qmp_client_close(c);
}

static void test_close_from_callback(void **state)
{
	struct fx *x = *state;
	struct reply a = { 0 }, b = { 0 };
	negotiate(x);
	assert_int_equal(qmp_client_execute(x->c, "a", NULL, 0, close_in_reply, &a), 0);
	assert_int_equal(qmp_client_execute(x->c, "b", NULL, 0, on_reply, &b), 0);
	wait_cmds(x, "b", 1);
	/* Both replies in one read: the second must not be dispatched. */
	char buf[256];
	snprintf(buf, sizeof(buf), "{\"return\": {}, \"id\": %lld}\n{\"event\": \"STOP\"}\n{\"return\": {}, \"id\": %lld}\n",
	         (long long)json_integer_value(json_object_get(nth_cmd(x, "a", 0), "id")),
	         (long long)json_integer_value(json_object_get(nth_cmd(x, "b", 0), "id")));
	fake_qmp_sends(&x->f, buf);
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 2000), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.status, UV_ECANCELED);
	assert_int_equal(json_array_size(x->events), 0);
	json_decref(a.val);
}

static void test_negotiation_timeout(void **state)
{
	struct fx *x = *state;
	qmp_client_set_limits(x->c, 100, 0);
	adopt(x);   /* the fake never greets */
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 3000), 0);
	assert_int_equal(x->ready_calls, 1);
	assert_int_equal(x->ready_status, UV_ETIMEDOUT);
	assert_int_equal(x->closed_status, UV_ETIMEDOUT);
}

static void test_not_a_greeting(void **state)
{
	struct fx *x = *state;
	adopt(x);
	fake_qmp_sends(&x->f, "{\"hello\": 1}\n");
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 2000), 0);
	assert_int_equal(x->ready_status, UV_EPROTO);
	assert_int_equal(x->closed_status, UV_EPROTO);
}

static void test_capabilities_refused(void **state)
{
	struct fx *x = *state;
	x->f.on_msg = NULL;
	adopt(x);
	fake_qmp_sends(&x->f, FAKEQMP_GREETING);
	wait_cmds(x, "qmp_capabilities", 1);
	fake_qmp_error(&x->f, fake_qmp_get(&x->f, 0), "CommandNotFound", "nope");
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 2000), 0);
	assert_int_equal(x->ready_calls, 1);
	assert_int_equal(x->ready_status, UV_EPROTO);
}

/* connect() by path: a listening socket whose accepted connection becomes
 * the fake server's end. */
static void test_connect_by_path(void **state)
{
	struct fx *x = *state;
	char *dir = t_mkdtemp("qsup-unit");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/qmp.sock", dir);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ls, 1), 0);
	assert_int_equal(qmp_client_connect(x->c, sa.sun_path), 0);
	t_run_for(&x->loop, 20);
	int conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	assert_true(conn >= 0);
	/* Swap the fake's socketpair end for the accepted connection. */
	uv_poll_stop(&x->f.poll);
	uv_close((uv_handle_t *)&x->f.poll, NULL);
	uv_run(&x->loop, UV_RUN_NOWAIT);
	close(x->f.fd);
	x->f.fd = conn;
	uv_poll_init(&x->loop, &x->f.poll, conn);
	x->f.poll.data = &x->f;
	fake_qmp_sends(&x->f, FAKEQMP_GREETING);
	assert_int_equal(t_run_until_flag(&x->loop, &x->ready_calls, 2000), 0);
	assert_int_equal(x->ready_status, 0);
	close(ls);
	t_rmtree(dir);
	free(dir);
}

static void test_connect_missing_socket(void **state)
{
	struct fx *x = *state;
	assert_int_equal(qmp_client_connect(x->c, "/nonexistent/qsup/qmp.sock"), 0);
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 2000), 0);
	assert_int_equal(x->ready_calls, 1);
	assert_int_equal(x->ready_status, UV_ENOENT);
	assert_int_equal(x->closed_status, UV_ENOENT);
	char longpath[200];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	struct qmp_client *c2 = qmp_client_new(&x->loop, &cbs, x);
	assert_int_equal(qmp_client_connect(c2, longpath), UV_EINVAL);
	qmp_client_close(c2);
	x->c = NULL;
	x->closed_calls = 0;
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 2000), 0);
	assert_int_equal(x->ready_calls, 1);   /* connect failed: no ready() */
}

/* ---- eager negotiation ---- */

struct eager { char *dir; int ls, conn; char got[4096]; size_t len; };

/* An eager client connected by path to a listening socket: the accepted
 * end in e->conn, the client not yet run. */
static void eager_connect(struct fx *x, struct eager *e)
{
	e->dir = t_mkdtemp("qsup-unit");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/qmp.sock", e->dir);
	e->ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(e->ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(e->ls, 1), 0);
	qmp_client_set_eager(x->c, 1);
	assert_int_equal(qmp_client_connect(x->c, sa.sun_path), 0);
	e->conn = accept4(e->ls, NULL, NULL, SOCK_CLOEXEC);
	assert_true(e->conn >= 0);
}

/* What the client wrote so far, without running its loop. */
static const char *eager_read(struct eager *e)
{
	ssize_t n = recv(e->conn, e->got + e->len, sizeof(e->got) - 1 - e->len, MSG_DONTWAIT);
	if (n > 0)
		e->len += (size_t)n;
	e->got[e->len] = '\0';
	return e->got;
}

static void eager_done(struct eager *e)
{
	close(e->conn);
	close(e->ls);
	t_rmtree(e->dir);
	free(e->dir);
}

/* qmp_capabilities is written before connect returns, a command is taken
 * before ready() and written at once behind it; ready() comes first. */
static void test_eager_negotiation(void **state)
{
	struct fx *x = *state;
	struct eager e = { 0 };
	struct reply r = { 0 };
	eager_connect(x, &e);
	assert_non_null(strstr(eager_read(&e), "\"qmp_capabilities\""));
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r), 0);
	assert_non_null(strstr(eager_read(&e), "\"query-status\""));
	assert_true(strstr(e.got, "qmp_capabilities") < strstr(e.got, "query-status"));
	assert_int_equal(x->ready_calls, 0);
	const char *answer = FAKEQMP_GREETING "{\"return\": {}, \"id\": 1}\n"
	                     "{\"return\": {\"status\": \"running\"}, \"id\": 2}\n";
	assert_int_equal(write(e.conn, answer, strlen(answer)), (ssize_t)strlen(answer));
	assert_int_equal(t_run_until_flag(&x->loop, &r.calls, 2000), 0);
	assert_int_equal(x->ready_status, 0);
	assert_int_equal(r.status, 0);
	assert_string_equal(json_string_value(json_object_get(r.val, "status")), "running");
	char *order = json_dumps(x->order, JSON_COMPACT);
	assert_string_equal(order, "[\"ready\",\"reply:0\"]");
	free(order);
	assert_int_equal(qmp_client_version(x->c), 70201);
	json_decref(r.val);
	eager_done(&e);
}

/* Negotiation refused: ready() gets the error, then the early command. */
static void test_eager_refused(void **state)
{
	struct fx *x = *state;
	struct eager e = { 0 };
	struct reply r = { 0 };
	eager_connect(x, &e);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r), 0);
	const char *answer = FAKEQMP_GREETING "{\"error\": {\"class\": \"GenericError\", "
	                     "\"desc\": \"no\"}, \"id\": 1}\n";
	assert_int_equal(write(e.conn, answer, strlen(answer)), (ssize_t)strlen(answer));
	assert_int_equal(t_run_until_flag(&x->loop, &x->closed_calls, 2000), 0);
	assert_int_equal(x->ready_status, UV_EPROTO);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.status, UV_EPROTO);
	char *order = json_dumps(x->order, JSON_COMPACT);
	printf("# order %s\n", order);
	assert_string_equal(json_string_value(json_array_get(x->order, 0)), "ready");
	free(order);
	eager_done(&e);
}

/* Eager on a socket connected by the caller (qsupd connects every QMP
 * socket at start-up, before it reads the profiles): qmp_capabilities
 * and an early command go out from qmp_client_adopt() itself, and the
 * greeting QEMU wrote meanwhile is read as usual. */
static void answer_all(struct fake_qmp *f, json_t *msg)
{
	fake_qmp_return(f, msg, strcmp(json_string_value(json_object_get(msg, "execute")),
	                               "query-status") ? "{}" : "{\"status\": \"running\"}");
}

static void test_eager_adopt(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	x->f.on_msg = answer_all;
	fake_qmp_sends(&x->f, FAKEQMP_GREETING);   /* already waiting */
	qmp_client_set_eager(x->c, 1);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r),
	                 UV_ENOTCONN);   /* not connected yet */
	adopt(x);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r), 0);
	assert_int_equal(x->ready_calls, 0);
	assert_int_equal(t_run_until_flag(&x->loop, &r.calls, 2000), 0);
	assert_int_equal(x->ready_status, 0);
	assert_int_equal(r.status, 0);
	assert_string_equal(json_string_value(json_object_get(r.val, "status")), "running");
	assert_int_equal(fake_qmp_count(&x->f, "qmp_capabilities"), 1);
	char *order = json_dumps(x->order, JSON_COMPACT);
	assert_string_equal(order, "[\"ready\",\"reply:0\"]");
	free(order);
	json_decref(r.val);
}

/* replied() sees every reply, a return or an error, with its command and
 * the time since it was sent, just before the command's own callback; a
 * command that got no reply (the connection ended) is not reported. */
static void test_replied(void **state)
{
	struct fx *x = *state;
	struct reply a = { 0 }, b = { 0 }, c = { 0 };
	negotiate(x);
	x->track_replied = 1;
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &a), 0);
	assert_int_equal(qmp_client_execute(x->c, "a-command-name-longer-than-thirty-one-bytes",
	                                    NULL, 0, on_reply, &b), 0);
	assert_int_equal(qmp_client_execute(x->c, "never-answered", NULL, 0, on_reply, &c), 0);
	t_run_for(&x->loop, 20);
	usleep(2000);
	fake_qmp_return(&x->f, fake_qmp_get(&x->f, 1), "{\"status\": \"running\"}");
	fake_qmp_error(&x->f, fake_qmp_get(&x->f, 2), "CommandNotFound", "no");
	assert_int_equal(t_run_until_flag(&x->loop, &b.calls, 2000), 0);
	char *order = json_dumps(x->order, JSON_COMPACT);
	assert_string_equal(order, "[\"ready\",\"replied:query-status\",\"reply:0\","
	                    "\"replied:a-command-name-longer-than-thir\",\"reply:1\"]");
	free(order);
	assert_true(x->replied_ns >= 2000000);   /* both waited at least the 2 ms slept */
	fake_qmp_close(&x->f);   /* the third never gets a reply */
	assert_int_equal(t_run_until_flag(&x->loop, &c.calls, 2000), 0);
	assert_int_equal(json_array_size(x->order), 6);   /* reply:error, no replied */
	json_decref(a.val);
	json_decref(b.val);
}

/* Not eager (the default): nothing goes out before the greeting, and
 * commands are refused until ready(). */
static void test_not_eager_waits(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	adopt(x);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r),
	                 UV_ENOTCONN);
	t_run_for(&x->loop, 20);
	assert_int_equal(fake_qmp_count(&x->f, "qmp_capabilities"), 0);
	assert_int_equal(r.calls, 0);
}

/* Every message from the peer is proof of life: the greeting, a reply, a
 * late reply that is dropped, an event. Nothing before the greeting. */
static void test_last_input(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 };
	assert_int_equal(qmp_client_last_input(x->c), 0);
	adopt(x);
	t_run_for(&x->loop, 20);
	assert_int_equal(qmp_client_last_input(x->c), 0);   /* connected, silent */
	fake_qmp_sends(&x->f, FAKEQMP_GREETING);
	assert_int_equal(t_run_until_flag(&x->loop, &x->ready_calls, 2000), 0);
	uint64_t t = qmp_client_last_input(x->c);
	assert_true(t > 0 && t <= uv_now(&x->loop));
	/* A late reply moves it although nobody is told of the reply. */
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 20, on_reply, &r), 0);
	assert_int_equal(t_run_until_flag(&x->loop, &r.calls, 2000), 0);
	assert_int_equal(r.status, UV_ETIMEDOUT);
	t_run_for(&x->loop, 5);
	uv_update_time(&x->loop);
	uint64_t sent = uv_now(&x->loop);
	assert_true(sent > t);
	fake_qmp_return(&x->f, nth_cmd(x, "query-status", 0), "{\"status\": \"running\"}");
	for (int i = 0; i < 200 && qmp_client_last_input(x->c) < sent; i++)
		t_run_for(&x->loop, 10);
	assert_true(qmp_client_last_input(x->c) >= sent);
	assert_non_null(strstr(x->log, "unknown id"));
	/* An event moves it too. */
	t = qmp_client_last_input(x->c);
	t_run_for(&x->loop, 5);
	uv_update_time(&x->loop);
	sent = uv_now(&x->loop);
	assert_true(sent > t);
	fake_qmp_sends(&x->f, "{\"event\": \"STOP\", \"timestamp\": "
	               "{\"seconds\": 1, \"microseconds\": 2}}\n");
	for (int i = 0; i < 200 && json_array_size(x->events) == 0; i++)
		t_run_for(&x->loop, 10);
	assert_int_equal(json_array_size(x->events), 1);
	assert_true(qmp_client_last_input(x->c) >= sent);
}

/* ---- written before the client: qmp_presend, qmp_client_adopt_sent ---- */

static const char *const presend_status[1] = { "query-status" };

/* What qsupd does at start-up: negotiation and a query written on a fresh
 * connection, the client made later. The query executed first is taken as
 * written: one of each reaches the server, with ids 1 and 2, and its reply
 * comes to its callback after ready(); a command after it goes out with
 * the next id. */
static void test_presend_adopt(void **state)
{
	struct fx *x = *state;
	struct reply r = { 0 }, n = { 0 };
	x->f.on_msg = answer_all;
	fake_qmp_sends(&x->f, FAKEQMP_GREETING);
	assert_int_equal(qmp_presend(x->f.peer_fd, presend_status, 1), 0);
	t_run_for(&x->loop, 20);   /* the server answers before the client exists */
	qmp_client_set_debug(x->c, 1);   /* the trace shows what was written before too */
	assert_int_equal(qmp_client_adopt_sent(x->c, x->f.peer_fd, presend_status, 1), 0);
	x->f.peer_fd = -1;
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &r), 0);
	assert_non_null(strstr(x->log, "-> {\"execute\":\"qmp_capabilities\",\"id\":1} "
	                       "(written at connect)"));
	assert_non_null(strstr(x->log, "-> {\"execute\":\"query-status\",\"id\":2} "
	                       "(written at connect)"));
	assert_int_equal(qmp_client_execute(x->c, "query-name", NULL, 0, on_reply, &n), 0);
	assert_int_equal(t_run_until_flag(&x->loop, &n.calls, 2000), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.status, 0);
	assert_string_equal(json_string_value(json_object_get(r.val, "status")), "running");
	assert_int_equal(fake_qmp_count(&x->f, "qmp_capabilities"), 1);
	assert_int_equal(fake_qmp_count(&x->f, "query-status"), 1);
	assert_int_equal(json_integer_value(json_object_get(nth_cmd(x, "qmp_capabilities", 0),
	                                                    "id")), 1);
	assert_int_equal(json_integer_value(json_object_get(nth_cmd(x, "query-status", 0),
	                                                    "id")), 2);
	assert_int_equal(json_integer_value(json_object_get(nth_cmd(x, "query-name", 0),
	                                                    "id")), 3);
	char *order = json_dumps(x->order, JSON_COMPACT);
	assert_string_equal(order, "[\"ready\",\"reply:0\",\"reply:0\"]");
	free(order);
	assert_null(strstr(x->log, "unknown id"));
	json_decref(r.val);
	json_decref(n.val);
}

/* The first command is another one: it goes out, and the reply to the
 * query written before is dropped without a word. Arguments never match. */
static void test_presend_not_taken(void **state)
{
	struct fx *x = *state;
	struct reply a = { 0 }, b = { 0 };
	x->f.on_msg = answer_all;
	fake_qmp_sends(&x->f, FAKEQMP_GREETING);
	assert_int_equal(qmp_presend(x->f.peer_fd, presend_status, 1), 0);
	assert_int_equal(qmp_client_adopt_sent(x->c, x->f.peer_fd, presend_status, 1), 0);
	x->f.peer_fd = -1;
	json_t *args = json_pack("{s:b}", "x", 1);   /* borrowed by execute */
	assert_int_equal(qmp_client_execute(x->c, "query-status", args, 0, on_reply, &a), 0);
	json_decref(args);
	assert_int_equal(qmp_client_execute(x->c, "query-status", NULL, 0, on_reply, &b), 0);
	assert_int_equal(t_run_until_flag(&x->loop, &b.calls, 2000), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(fake_qmp_count(&x->f, "query-status"), 3);   /* none taken */
	assert_int_equal(json_integer_value(json_object_get(nth_cmd(x, "query-status", 1),
	                                                    "id")), 3);
	t_run_for(&x->loop, 20);
	assert_null(strstr(x->log, "unknown id"));
	char *order = json_dumps(x->order, JSON_COMPACT);
	assert_string_equal(order, "[\"ready\",\"reply:0\",\"reply:0\"]");
	free(order);
	json_decref(a.val);
	json_decref(b.val);
}

static void test_presend_bad_arguments(void **state)
{
	struct fx *x = *state;
	const char *const many[QMP_PRESEND_MAX + 1] = { "a", "b", "c", "d", "e" };
	const char *const empty[1] = { "" };
	assert_int_equal(qmp_presend(x->f.peer_fd, many, QMP_PRESEND_MAX + 1), UV_EINVAL);
	assert_int_equal(qmp_presend(x->f.peer_fd, empty, 1), UV_EINVAL);
	assert_int_equal(qmp_presend(-1, presend_status, 1), UV_EBADF);
	assert_int_equal(qmp_client_adopt_sent(x->c, x->f.peer_fd, many, QMP_PRESEND_MAX + 1),
	                 UV_EINVAL);
	assert_int_equal(qmp_client_adopt_sent(x->c, -1, presend_status, 1), UV_EINVAL);
	t_run_for(&x->loop, 20);
	assert_int_equal(json_array_size(x->f.received), 0);   /* nothing written */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_greeting_and_negotiation),
		T(test_presend_adopt),
		T(test_presend_not_taken),
		T(test_presend_bad_arguments),
		T(test_event_during_negotiation),
		T(test_events_interleaved_with_replies),
		T(test_reply_split_across_reads),
		T(test_several_replies_in_one_read),
		T(test_oversized_line),
		T(test_line_at_cap_is_accepted),
		T(test_malformed_json),
		T(test_eof_with_commands_pending),
		T(test_reset_is_eof),
		T(test_timeout_then_success),
		T(test_unknown_id_dropped),
		T(test_error_reply),
		T(test_fd_passing),
		T(test_cork_batches),
		T(test_contract_errors_never_call_back),
		T(test_close_with_pending_cancels_once),
		T(test_close_from_callback),
		T(test_negotiation_timeout),
		T(test_not_a_greeting),
		T(test_capabilities_refused),
		T(test_connect_by_path),
		T(test_connect_missing_socket),
		T(test_last_input),
		T(test_eager_negotiation),
		T(test_eager_refused),
		T(test_eager_adopt),
		T(test_replied),
		T(test_not_eager_waits),
	};
	return cmocka_run_group_tests_name("qmp-client", tests, NULL, NULL);
}
