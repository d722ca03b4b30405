/*
 * The control socket server: accepting clients, framing their requests,
 * checking them, dispatching to commands.c, writing replies and events.
 *
 * A client struct lives as long as its connection or any of its requests,
 * whichever is longer (a reference count), so a reply that arrives after
 * the client left finds a valid struct and is dropped.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "commands.h"
#include "control.h"
#include "daemon.h"
#include "log.h"
#include "qmp_parse.h"

struct sv_client {
	struct sv_client *next, *prev;
	struct sv_daemon *d;
	uv_pipe_t pipe;
	struct qmp_framer framer;
	unsigned id;                /* for the log */
	uid_t uid;
	int refs;                   /* the connection + each open request */
	bool connected;             /* pipe open, not yet closing */
	bool subscribed;
	bool eof;                   /* the peer is done sending */
	unsigned open_requests;
	uv_shutdown_t shutdown;
};

static unsigned next_client_id = 1;

uid_t sv_client_uid(const struct sv_client *c) { return c->uid; }
void sv_client_subscribe(struct sv_client *c) { c->subscribed = true; }

static void client_unref(struct sv_client *c)
{
	if (--c->refs > 0)
		return;
	qmp_framer_free(&c->framer);
	free(c);
}

static void on_client_closed(uv_handle_t *h)
{
	client_unref(h->data);
}

static void client_disconnect(struct sv_client *c, const char *why)
{
	if (!c->connected)
		return;
	c->connected = false;
	struct sv_daemon *d = c->d;
	if (c->prev)
		c->prev->next = c->next;
	else
		d->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	d->nclients--;
	sv_log(SV_LOG_DEBUG, NULL, "client %u: disconnected (%s)", c->id, why);
	uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

/* ---- writing ---- */

struct wreq {
	uv_write_t req;
	struct sv_client *c;
	char data[];
};

static void on_written(uv_write_t *w, int status)
{
	struct wreq *r = (struct wreq *)w;
	if (status < 0 && status != UV_ECANCELED)
		client_disconnect(r->c, uv_strerror(status));
	client_unref(r->c);
	free(r);
}

/* Queue msg (taken) as one line to c. */
static void client_send(struct sv_client *c, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text || !c->connected) {
		free(text);
		return;
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > SV_CONTROL_MAX_QUEUED) {
		free(text);
		sv_log(SV_LOG_WARN, NULL, "client %u does not read its replies; disconnecting", c->id);
		client_disconnect(c, "output queue full");
		return;
	}
	size_t n = strlen(text);
	struct wreq *r = malloc(sizeof(*r) + n + 1);
	if (!r) {
		free(text);
		return;
	}
	memcpy(r->data, text, n);
	r->data[n] = '\n';
	free(text);
	r->c = c;
	c->refs++;
	uv_buf_t buf = uv_buf_init(r->data, (unsigned)n + 1);
	if (uv_write(&r->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0) {
		client_unref(c);
		free(r);
		client_disconnect(c, "write failed");
	}
}

/* ---- requests and replies ---- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct sv_client *c = req->data;
	(void)status;
	client_disconnect(c, "EOF, every reply sent");
	client_unref(c);
}

/* The peer shut its side (as `socat` or `nc -N` do after the request):
 * answer what it asked, flush, then close. */
static void close_when_answered(struct sv_client *c)
{
	if (!c->connected || c->open_requests > 0)
		return;
	c->shutdown.data = c;
	c->refs++;
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, on_shutdown) < 0) {
		client_unref(c);
		client_disconnect(c, "EOF");
	}
}

static void request_finish(struct sv_request *req, json_t *msg)
{
	struct sv_client *c = req->client;
	if (req->id)
		json_object_set(msg, "id", req->id);
	client_send(c, msg);
	c->open_requests--;
	if (c->eof)
		close_when_answered(c);
	client_unref(c);
	json_decref(req->id);
	free(req);
}

void sv_reply_ok(struct sv_request *req, json_t *ret)
{
	request_finish(req, json_pack("{s:o}", "return", ret ? ret : json_object()));
}

void sv_reply_error_obj(struct sv_request *req, json_t *error)
{
	request_finish(req, json_pack("{s:o}", "error", error));
}

void sv_reply_err(struct sv_request *req, const char *cls, const char *fmt, ...)
{
	char desc[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	sv_log(SV_LOG_DEBUG, NULL, "%s: %s: %s", req->verb, cls, desc);
	sv_reply_error_obj(req, json_pack("{s:s, s:s}", "class", cls, "desc", desc));
}

static struct sv_request *request_new(struct sv_client *c, json_t *id, const char *verb)
{
	struct sv_request *req = calloc(1, sizeof(*req));
	if (!req)
		return NULL;
	req->d = c->d;
	req->client = c;
	req->uid = c->uid;
	req->id = json_incref(id);
	snprintf(req->verb, sizeof(req->verb), "%s", verb);
	c->refs++;
	c->open_requests++;
	return req;
}

/* Answer a request that could not even be parsed (no request object). */
static void reply_raw_error(struct sv_client *c, json_t *id, const char *cls, const char *desc)
{
	struct sv_request *req = request_new(c, id, "?");
	if (req)
		sv_reply_err(req, cls, "%s", desc);
}

void sv_control_emit(struct sv_daemon *d, json_t *event)
{
	uv_timeval64_t tv;
	uv_gettimeofday(&tv);
	json_object_set_new(event, "timestamp", json_pack("{s:I, s:I}",
	                    "seconds", (json_int_t)tv.tv_sec,
	                    "microseconds", (json_int_t)tv.tv_usec));
	for (struct sv_client *c = d->clients, *next; c; c = next) {
		next = c->next;   /* a send may disconnect c */
		if (c->subscribed)
			client_send(c, json_incref(event));
	}
	json_decref(event);
}

static bool may_mutate(const struct sv_client *c)
{
	return c->uid == 0 || c->uid == geteuid();
}

static void dispatch(struct sv_client *c, json_t *msg)
{
	json_t *id = json_object_get(msg, "id");
	json_t *exec = json_object_get(msg, "execute");
	json_t *args = json_object_get(msg, "arguments");
	if (!json_is_string(exec)) {
		reply_raw_error(c, id, "GenericError",
		                "a request is an object with an \"execute\" string, "
		                "optional \"arguments\" object and optional \"id\"");
		return;
	}
	const char *verb = json_string_value(exec);
	if (args && !json_is_object(args)) {
		reply_raw_error(c, id, "InvalidArgument", "\"arguments\" must be an object");
		return;
	}
	const struct sv_command *cmd = sv_command_find(verb);
	if (!cmd) {
		char desc[128];
		snprintf(desc, sizeof(desc), "unknown command '%.64s'", verb);
		reply_raw_error(c, id, "CommandNotFound", desc);
		return;
	}
	struct sv_request *req = request_new(c, id, cmd->name);
	if (!req)
		return;
	if ((cmd->flags & SV_CMD_MUTATES) && !may_mutate(c)) {
		sv_reply_err(req, "PermissionDenied", "%s needs root or uid %u (you are uid %u)",
		             cmd->name, (unsigned)geteuid(), (unsigned)c->uid);
		return;
	}
	json_t *empty = args ? NULL : json_object();
	cmd->fn(req, args ? args : empty);
	json_decref(empty);
}

/* ---- reading ---- */

static int on_request(json_t *msg, void *arg)
{
	struct sv_client *c = arg;
	if (sv_log_enabled(SV_LOG_DEBUG)) {
		char *s = json_dumps(msg, JSON_COMPACT);
		sv_log(SV_LOG_DEBUG, NULL, "client %u -> %.400s", c->id, s ? s : "?");
		free(s);
	}
	dispatch(c, msg);
	return c->connected ? 0 : 1;
}

static int on_bad_line(void *arg)
{
	struct sv_client *c = arg;
	reply_raw_error(c, NULL, "GenericError", "invalid JSON: a request is one JSON object per line");
	return c->connected ? 0 : 1;
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	static char mem[65536];   /* the loop is single-threaded; feed copies */
	(void)h;
	(void)size;
	*buf = uv_buf_init(mem, sizeof(mem));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct sv_client *c = s->data;
	if (n == UV_EOF) {
		uv_read_stop(s);
		c->eof = true;
		close_when_answered(c);
		return;
	}
	if (n < 0) {
		client_disconnect(c, uv_strerror((int)n));
		return;
	}
	c->refs++;   /* dispatch may disconnect c */
	int rc = qmp_framer_feed(&c->framer, buf->base, (size_t)n, on_request, c);
	if (rc == -EMSGSIZE) {
		sv_log(SV_LOG_WARN, NULL, "client %u sent a line over %d bytes; disconnecting",
		       c->id, SV_CONTROL_MAX_LINE);
		reply_raw_error(c, NULL, "GenericError", "request too large; disconnecting");
		client_disconnect(c, "oversized request");
	}
	client_unref(c);
}

/* ---- accepting ---- */

static void on_connection(uv_stream_t *server, int status)
{
	struct sv_daemon *d = server->data;
	if (status < 0)
		return;
	struct sv_client *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->d = d;
	c->id = next_client_id++;
	c->refs = 1;
	uv_pipe_init(d->loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
		uv_close((uv_handle_t *)&c->pipe, on_client_closed);
		return;
	}
	c->connected = true;
	c->next = d->clients;
	if (d->clients)
		d->clients->prev = c;
	d->clients = c;
	d->nclients++;
	if (d->nclients > SV_CONTROL_MAX_CLIENTS) {
		sv_log(SV_LOG_WARN, NULL, "more than %d clients; refusing one", SV_CONTROL_MAX_CLIENTS);
		client_disconnect(c, "too many clients");
		return;
	}
	uv_os_fd_t fd;
	struct ucred cred = { .uid = (uid_t)-1 };
	socklen_t len = sizeof(cred);
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0)
		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
	c->uid = cred.uid;
	qmp_framer_init(&c->framer, SV_CONTROL_MAX_LINE);
	c->framer.on_bad_line = on_bad_line;
	sv_log(SV_LOG_DEBUG, NULL, "client %u: connected (uid %d, pid %d)", c->id,
	       (int)cred.uid, (int)cred.pid);
	client_send(c, json_pack("{s:{s:s, s:[]}}", "qsup", "version", SV_VERSION,
	                         "capabilities"));
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* Is a daemon answering at path? */
static bool socket_alive(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return alive;
}

int sv_control_listen(struct sv_daemon *d, const char *path, struct sv_error *err)
{
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return sv_error_set(err, -ENAMETOOLONG, "control socket path too long: %s", path);
	if (socket_alive(path))
		return sv_error_set(err, -EADDRINUSE, "%s: another qsupd is already listening there", path);
	unlink(path);
	uv_pipe_init(d->loop, &d->server, 0);
	d->server.data = d;
	d->server_open = true;
	mode_t old = umask(0117);   /* the socket is born 0660 */
	int rc = uv_pipe_bind(&d->server, path);
	umask(old);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&d->server, 64, on_connection);
	if (rc < 0)
		return sv_error_set(err, rc, "control socket %s: %s", path, uv_strerror(rc));
	return 0;
}

void sv_control_close(struct sv_daemon *d)
{
	if (d->server_open) {
		uv_close((uv_handle_t *)&d->server, NULL);
		d->server_open = false;
		unlink(d->socket_path);
	}
	while (d->clients)
		client_disconnect(d->clients, "daemon exiting");
}
