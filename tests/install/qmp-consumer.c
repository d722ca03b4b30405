/*
 * A program outside qsup's tree that uses the installed libqmp, built by
 * tests/scripts/test-install.sh with nothing but
 *   cc $(pkg-config --cflags qsup-qmp) qmp-consumer.c $(pkg-config --libs qsup-qmp)
 * It plays a QMP server on one end of a socketpair (its lines split by the
 * installed framer), and the installed client on the other end negotiates,
 * runs query-status and closes. Prints "qmp-consumer: ok" and exits 0, or
 * says what went wrong and exits 1.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <qsup/qmp.h>
#include <qsup/qmp_parse.h>

static int server_fd = -1;
static int step;        /* 1 ready, 2 status seen, 3 closed */
static int failed;

static void fail(const char *what)
{
	fprintf(stderr, "qmp-consumer: %s\n", what);
	failed = 1;
}

static void send_line(const char *line)
{
	size_t n = strlen(line);

	if (write(server_fd, line, n) != (ssize_t)n || write(server_fd, "\n", 1) != 1)
		fail("server: write failed");
}

/* The server side: answer each command with the same id. */
static int on_command(json_t *msg, void *arg)
{
	const char *cmd = json_string_value(json_object_get(msg, "execute"));
	json_t *reply;
	char *text;

	(void)arg;
	if (!cmd) {
		fail("server: a line without execute");
		return -1;
	}
	if (!strcmp(cmd, "query-status"))
		reply = json_pack("{s:{s:s,s:b}}", "return", "status", "running", "running", 1);
	else
		reply = json_pack("{s:{}}", "return");
	if (json_object_get(msg, "id"))
		json_object_set(reply, "id", json_object_get(msg, "id"));
	/* The reply is a message the installed classifier knows. */
	if (qmp_msg_kind(reply) != QMP_MSG_RETURN)
		fail("qmp_msg_kind: a reply is not QMP_MSG_RETURN");
	text = json_dumps(reply, JSON_COMPACT);
	send_line(text);
	free(text);
	json_decref(reply);
	return 0;
}

static void on_status(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	(void)arg;
	if (r->status != 0)
		fail(qmp_strerror(r->status));
	else if (!json_is_string(json_object_get(r->ret, "status")) ||
	         strcmp(json_string_value(json_object_get(r->ret, "status")), "running"))
		fail("query-status: not running");
	else
		step = 2;
	qmp_client_close(c);
}

static void on_ready(struct qmp_client *c, int status)
{
	if (status != 0) {
		fail(qmp_strerror(status));
		return;
	}
	step = 1;
	if (qmp_client_version(c) != 70200)
		fail("qmp_client_version: not 70200");
	if (qmp_client_execute(c, "query-status", NULL, 0, on_status, NULL) != 0)
		fail("qmp_client_execute failed");
}

static void on_closed(struct qmp_client *c, int status)
{
	(void)c;
	if (status != 0)
		fail(qmp_strerror(status));
	if (step == 2)
		step = 3;
}

int main(void)
{
	struct qmp_callbacks cb = { .ready = on_ready, .closed = on_closed };
	struct qmp_framer fr;
	uv_loop_t loop;
	struct qmp_client *c;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || uv_loop_init(&loop) < 0)
		return fail("socketpair or uv_loop_init failed"), 1;
	server_fd = sv[1];
	qmp_framer_init(&fr, QMP_DEFAULT_MAX_LINE);
	if (!(c = qmp_client_new(&loop, &cb, NULL)) || qmp_client_adopt(c, sv[0]) != 0)
		return fail("qmp_client_new or qmp_client_adopt failed"), 1;
	send_line("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, "
	          "\"micro\": 0}, \"package\": \"\"}, \"capabilities\": []}}");
	/* Bounded: a client that stops talking fails the test, never hangs it. */
	for (int i = 0; i < 1000 && step < 3 && !failed; i++) {
		struct pollfd p = { .fd = server_fd, .events = POLLIN };
		char buf[4096];
		ssize_t n;

		uv_run(&loop, UV_RUN_NOWAIT);
		if (poll(&p, 1, 10) > 0 && (n = read(server_fd, buf, sizeof(buf))) > 0 &&
		    qmp_framer_feed(&fr, buf, (size_t)n, on_command, NULL) < 0)
			fail("qmp_framer_feed: a bad line from the client");
	}
	uv_run(&loop, UV_RUN_NOWAIT);
	qmp_framer_free(&fr);
	close(server_fd);
	if (!failed && step != 3)
		fail("the client did not negotiate, query and close");
	if (failed)
		return 1;
	printf("qmp-consumer: ok\n");
	return 0;
}
