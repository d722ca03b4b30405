/*
 * qmp-boot: boot one QEMU in the foreground under libqmp. It is what
 * `make run` uses until qsupd can run guests itself.
 *
 *   qmp-boot QMP_SOCKET SERIAL_SOCKET -- qemu-system-x86_64 ARGS... -S ...
 *
 * It spawns QEMU (uv_spawn, no shell), connects to the QMP socket that ARGS
 * define, sends cont, copies the serial console to stdout and prints QMP
 * events. SIGINT or SIGTERM asks the guest to power off (system_powerdown);
 * a second signal, or 30 s without a shutdown, sends quit. The exit status is
 * QEMU's. QEMU runs in its own session, so a terminal's Ctrl-C reaches
 * only us.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmp.h"

struct boot {
	uv_loop_t *loop;
	uv_process_t proc;
	uv_signal_t sigint, sigterm, sighup;
	uv_timer_t retry, grace;
	uv_pipe_t serial;
	struct qmp_client *qmp;
	const char *qmp_path, *serial_path;
	int exited, exit_status, serial_connected, signals;
};

static void connect_qmp(struct boot *b);
static void connect_serial(struct boot *b);

static void say(const char *fmt, const char *arg)
{
	fprintf(stderr, "qmp-boot: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
}

static void on_reply(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	(void)c;
	if (r->status == QMP_EREPLY)
		fprintf(stderr, "qmp-boot: %s: %s\n", (const char *)arg, r->err_desc);
	else if (r->status < 0)
		fprintf(stderr, "qmp-boot: %s: %s\n", (const char *)arg, qmp_strerror(r->status));
}

static void on_ready(struct qmp_client *c, int status)
{
	struct boot *b = qmp_client_data(c);
	if (status < 0)
		return;   /* closed() retries */
	say("%s", "QMP ready; sending cont");
	qmp_client_execute(c, "cont", NULL, 0, on_reply, "cont");
	connect_serial(b);
}

static void on_event(struct qmp_client *c, const char *name, json_t *data,
                     const struct qmp_timestamp *ts)
{
	(void)c;
	char *s = data ? json_dumps(data, JSON_COMPACT) : NULL;
	fprintf(stderr, "qmp-boot: event %s %s (at %lld.%06lld)\n", name, s ? s : "",
	        (long long)ts->seconds, (long long)ts->microseconds);
	free(s);
}

static void on_retry(uv_timer_t *t)
{
	connect_qmp(t->data);
}

static void on_closed(struct qmp_client *c, int status)
{
	struct boot *b = qmp_client_data(c);
	b->qmp = NULL;
	/* QEMU creates its socket during start-up: retry until it is there. */
	if (!b->exited && (status == UV_ENOENT || status == UV_ECONNREFUSED))
		uv_timer_start(&b->retry, on_retry, 20, 0);
}

static const struct qmp_callbacks callbacks = {
	.ready = on_ready, .event = on_event, .closed = on_closed,
};

static void connect_qmp(struct boot *b)
{
	b->qmp = qmp_client_new(b->loop, &callbacks, b);
	if (!b->qmp || qmp_client_connect(b->qmp, b->qmp_path) < 0) {
		say("cannot connect to %s", b->qmp_path);
		exit(1);
	}
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	static char mem[4096];
	(void)h;
	(void)size;
	*buf = uv_buf_init(mem, sizeof(mem));
}

static void on_serial(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n > 0) {
		fwrite(buf->base, 1, (size_t)n, stdout);
		fflush(stdout);
	} else if (n < 0) {
		uv_read_stop(s);
	}
}

static void on_serial_connect(uv_connect_t *req, int status)
{
	struct boot *b = req->data;
	free(req);
	if (status == 0)
		uv_read_start((uv_stream_t *)&b->serial, on_alloc, on_serial);
	else
		say("serial console: %s", uv_strerror(status));
}

static void connect_serial(struct boot *b)
{
	if (b->serial_connected++)
		return;
	uv_connect_t *req = malloc(sizeof(*req));
	req->data = b;
	uv_pipe_init(b->loop, &b->serial, 0);
	uv_pipe_connect(req, &b->serial, b->serial_path, on_serial_connect);
}

static void on_grace(uv_timer_t *t)
{
	struct boot *b = t->data;
	say("no shutdown after %s; sending quit", "30 s");
	if (b->qmp)
		qmp_client_execute(b->qmp, "quit", NULL, 0, on_reply, "quit");
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct boot *b = s->data;
	(void)signum;
	if (!b->qmp || !qmp_client_is_ready(b->qmp)) {
		uv_process_kill(&b->proc, SIGTERM);
		return;
	}
	if (b->signals++ == 0) {
		say("%s", "asking the guest to power off (again to force)");
		qmp_client_execute(b->qmp, "system_powerdown", NULL, 0, on_reply, "system_powerdown");
		uv_timer_start(&b->grace, on_grace, 30000, 0);
	} else {
		on_grace(&b->grace);
	}
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct boot *b = p->data;
	b->exited = 1;
	b->exit_status = sig ? 128 + sig : (int)status;
	fprintf(stderr, "qmp-boot: QEMU exited (%s %d)\n", sig ? "signal" : "status",
	        sig ? sig : (int)status);
	uv_close((uv_handle_t *)&b->sigint, NULL);
	uv_close((uv_handle_t *)&b->sigterm, NULL);
	uv_close((uv_handle_t *)&b->sighup, NULL);
	uv_close((uv_handle_t *)&b->retry, NULL);
	uv_close((uv_handle_t *)&b->grace, NULL);
	uv_close((uv_handle_t *)p, NULL);
	if (b->serial_connected)
		uv_close((uv_handle_t *)&b->serial, NULL);
	if (b->qmp)
		qmp_client_close(b->qmp);
}

int main(int argc, char **argv)
{
	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "usage: qmp-boot QMP_SOCKET SERIAL_SOCKET -- QEMU ARGS...\n");
		return 2;
	}
	struct boot b = { .loop = uv_default_loop(), .qmp_path = argv[1],
	                  .serial_path = argv[2] };
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = 2 },
		{ .flags = UV_INHERIT_FD, .data.fd = 2 },
	};
	uv_process_options_t o = {
		.exit_cb = on_exit_cb, .file = argv[4], .args = &argv[4],
		.stdio = stdio, .stdio_count = 3,
		/* Its own session: Ctrl-C reaches us, and we power off cleanly. */
		.flags = UV_PROCESS_DETACHED,
	};
	b.proc.data = b.sigint.data = b.sigterm.data = b.sighup.data = b.retry.data = b.grace.data = &b;
	int rc = uv_spawn(b.loop, &b.proc, &o);
	if (rc < 0) {
		fprintf(stderr, "qmp-boot: %s: %s\n", argv[4], uv_strerror(rc));
		return 1;
	}
	uv_signal_init(b.loop, &b.sigint);
	uv_signal_init(b.loop, &b.sigterm);
	uv_signal_start(&b.sigint, on_signal, SIGINT);
	uv_signal_start(&b.sigterm, on_signal, SIGTERM);
	uv_signal_init(b.loop, &b.sighup);
	uv_signal_start(&b.sighup, on_signal, SIGHUP);
	uv_timer_init(b.loop, &b.retry);
	uv_timer_init(b.loop, &b.grace);
	connect_qmp(&b);
	uv_run(b.loop, UV_RUN_DEFAULT);
	uv_loop_close(b.loop);
	return b.exit_status;
}
