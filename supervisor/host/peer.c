/* A request to another qsupd: see peer.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"
#include "sshlink.h"

#define PEER_MAX_LINE (1u << 20)

struct sv_peer {
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_connect_t conn;
	uv_write_t wr;
	char *out;              /* the request line */
	char *verb;
	json_t *args;           /* until the request line is made */
	struct sv_sshproc *ssh; /* over ssh: the ssh process */
	bool eof_wait;          /* ssh ended the link: wait for its exit status */
	sv_peer_prepare_fn prepare;
	char *early_why;        /* failed before anything was sent */
	char *in;               /* bytes read, not yet a line */
	size_t inlen;
	bool greeted, finished, cancelled;
	int closing;            /* handles still to close */
	void (*done)(json_t *reply, const char *why, void *arg);
	void *arg;
};

static void on_closed(uv_handle_t *h)
{
	struct sv_peer *p = h->data;
	if (--p->closing == 0) {
		free(p->out);
		free(p->in);
		free(p->verb);
		free(p->early_why);
		json_decref(p->args);
		free(p);
	}
}

static void finish(struct sv_peer *p, json_t *reply, const char *why)
{
	if (p->finished)
		return;
	p->finished = true;
	if (!p->cancelled)
		p->done(reply, why, p->arg);
	sv_sshproc_release(p->ssh);
	p->ssh = NULL;
	p->closing = 2;
	uv_close((uv_handle_t *)&p->timer, on_closed);
	uv_close((uv_handle_t *)&p->pipe, on_closed);
}

void sv_peer_cancel(struct sv_peer *p)
{
	p->cancelled = true;
	finish(p, NULL, "cancelled");
}

/* Over ssh, why the link ended: ssh's stderr and status say. */
static void finish_ssh(struct sv_peer *p)
{
	char why[700];
	sv_sshproc_why(p->ssh, why, sizeof(why));
	finish(p, NULL, why);
}

static void on_ssh_exit(struct sv_sshproc *s, void *arg)
{
	struct sv_peer *p = arg;
	(void)s;
	if (p->eof_wait)
		finish_ssh(p);
}

static void on_timeout(uv_timer_t *t)
{
	struct sv_peer *p = t->data;
	if (p->early_why)
		finish(p, NULL, p->early_why);
	else if (p->eof_wait)
		finish_ssh(p);
	else
		finish(p, NULL, "no answer in time");
}

/* The request line, once the greeting is known (prepare may change the
 * arguments after it). */
static int make_request(struct sv_peer *p, json_t *greeting)
{
	if (p->prepare)
		p->prepare(greeting, p->args, p->arg);
	json_t *req = json_pack("{s:s, s:O, s:i}", "execute", p->verb, "arguments", p->args,
	                        "id", 1);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	int r = text && asprintf(&p->out, "%s\n", text) >= 0 ? 0 : -ENOMEM;
	free(text);
	return r;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	buf->base = malloc(hint);
	buf->len = buf->base ? hint : 0;
}

static void on_written(uv_write_t *w, int status)
{
	struct sv_peer *p = w->data;
	if (status < 0) {
		char why[128];
		snprintf(why, sizeof(why), "sending the request: %s", uv_strerror(status));
		finish(p, NULL, why);
	}
}

/* One line from the peer: the greeting, an event, or our reply. */
static void on_line(struct sv_peer *p, const char *line)
{
	json_t *msg = json_loads(line, 0, NULL);
	if (!json_is_object(msg)) {
		json_decref(msg);
		finish(p, NULL, "not a qsupd control socket (bad JSON)");
		return;
	}
	if (!p->greeted) {
		p->greeted = true;
		bool qsup = json_object_get(msg, "qsup") != NULL;
		int mr = qsup ? make_request(p, msg) : 0;
		json_decref(msg);
		if (!qsup) {
			finish(p, NULL, "not a qsupd control socket (no qsup greeting)");
			return;
		}
		if (mr < 0) {
			finish(p, NULL, "out of memory");
			return;
		}
		uv_buf_t b = uv_buf_init(p->out, (unsigned)strlen(p->out));
		p->wr.data = p;
		int r = uv_write(&p->wr, (uv_stream_t *)&p->pipe, &b, 1, on_written);
		if (r < 0)
			finish(p, NULL, uv_strerror(r));
		return;
	}
	if (json_integer_value(json_object_get(msg, "id")) == 1)
		finish(p, msg, NULL);
	json_decref(msg);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct sv_peer *p = s->data;
	if (n < 0) {
		free(buf->base);
		if (p->ssh && !p->greeted) {   /* ssh failed, or the remote end did */
			uv_read_stop(s);
			p->eof_wait = true;
			if (sv_sshproc_exited(p->ssh))
				finish_ssh(p);
			return;
		}
		finish(p, NULL, n == UV_EOF ? "the peer closed the connection"
		                             : uv_strerror((int)n));
		return;
	}
	char *in = realloc(p->in, p->inlen + (size_t)n + 1);
	if (!in) {
		free(buf->base);
		finish(p, NULL, "out of memory");
		return;
	}
	memcpy(in + p->inlen, buf->base, (size_t)n);
	free(buf->base);
	p->in = in;
	p->inlen += (size_t)n;
	p->in[p->inlen] = '\0';
	char *nl;
	while (!p->finished && (nl = memchr(p->in, '\n', p->inlen))) {
		*nl = '\0';
		on_line(p, p->in);
		size_t rest = p->inlen - (size_t)(nl + 1 - p->in);
		memmove(p->in, nl + 1, rest);
		p->inlen = rest;
	}
	if (!p->finished && p->inlen > PEER_MAX_LINE)
		finish(p, NULL, "reply too long");
}

static void on_connect(uv_connect_t *c, int status)
{
	struct sv_peer *p = c->data;
	if (p->finished)
		return;
	if (status < 0) {
		char why[160];
		snprintf(why, sizeof(why), "cannot connect: %s", uv_strerror(status));
		finish(p, NULL, why);
		return;
	}
	int r = uv_read_start((uv_stream_t *)&p->pipe, on_alloc, on_read);
	if (r < 0)
		finish(p, NULL, uv_strerror(r));
}

int sv_peer_call(uv_loop_t *loop, const char *sock, const char *verb, json_t *args,
                 uint64_t timeout_ms, void (*done)(json_t *reply, const char *why, void *arg),
                 void *arg, struct sv_peer **out)
{
	return sv_peer_call_prep(loop, sock, verb, args, timeout_ms, NULL, done, arg, out);
}

int sv_peer_call_prep(uv_loop_t *loop, const char *sock, const char *verb, json_t *args,
                      uint64_t timeout_ms, sv_peer_prepare_fn prepare,
                      void (*done)(json_t *reply, const char *why, void *arg),
                      void *arg, struct sv_peer **out)
{
	struct sv_peer *p = calloc(1, sizeof(*p));
	if (!p || !(p->verb = strdup(verb)) || !(p->args = json_deep_copy(args))) {
		if (p)
			free(p->verb);
		free(p);
		return -ENOMEM;
	}
	p->done = done;
	p->arg = arg;
	p->prepare = prepare;
	uv_pipe_init(loop, &p->pipe, 0);
	uv_timer_init(loop, &p->timer);
	p->pipe.data = p->timer.data = p->conn.data = p;
	uv_timer_start(&p->timer, on_timeout, timeout_ms, 0);
	if (out)
		*out = p;
	if (!sv_ssh_uri_is(sock)) {
		uv_pipe_connect(&p->conn, &p->pipe, sock, on_connect);
		return 0;
	}
	/* ssh://: the remote end's `qsupctl --stdio` bridges to its qsupd */
	struct sv_ssh_uri u;
	struct sv_error err = { 0 };
	const char *remote[] = { "qsupctl", "--stdio", NULL, NULL, NULL };
	int fd = -1, r;
	r = sv_ssh_uri_parse(sock, &u, &err);
	if (r == 0 && u.path[0]) {
		remote[1] = "-s";
		remote[2] = u.path;
		remote[3] = "--stdio";
	}
	if (r == 0)
		r = sv_sshproc_spawn(loop, &u, remote, on_ssh_exit, p, &fd, &p->ssh, &err);
	if (r == 0 && (r = uv_pipe_open(&p->pipe, fd)) < 0) {
		close(fd);
		snprintf(err.msg, sizeof(err.msg), "%s", uv_strerror(r));
	}
	if (r == 0 && (r = uv_read_start((uv_stream_t *)&p->pipe, on_alloc, on_read)) < 0)
		snprintf(err.msg, sizeof(err.msg), "%s", uv_strerror(r));
	if (r < 0) {   /* done says why, as for a socket, from the loop */
		p->early_why = strdup(err.msg);
		uv_timer_start(&p->timer, on_timeout, 0, 0);
	}
	return 0;
}
