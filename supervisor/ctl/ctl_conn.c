/*
 * qsupctl's connection to qsupd: blocking unix socket I/O, newline-framed
 * JSON through the pure framer of libqmp, requests with ids, and replies
 * matched by id (messages that are not the awaited reply are queued). A
 * short-lived client, so plain poll(2) and blocking writes are enough.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"

#define DEFAULT_ROOT_SOCKET "/run/qsup/qsupd.sock"

int ctl_socket_path(const char *opt, const char *env, const char *xdg, uid_t euid,
                    char *buf, size_t size, struct sv_error *err)
{
	int n;

	if (!opt && env && *env)
		opt = env;
	if (opt)
		n = snprintf(buf, size, "%s", opt);
	else if (euid == 0)
		n = snprintf(buf, size, "%s", DEFAULT_ROOT_SOCKET);
	else if (xdg && *xdg)
		n = snprintf(buf, size, "%s/qsup/qsupd.sock", xdg);
	else
		return sv_error_set(err, -ENOENT, "XDG_RUNTIME_DIR is not set, so the "
		                    "default socket is unknown; use -s SOCKET or set QSUP_SOCKET");
	if (n < 0 || (size_t)n >= size || (size_t)n >= SV_SOCK_PATH_MAX)
		return sv_error_set(err, -ENAMETOOLONG, "the socket path is too long for a "
		                    "unix socket (at most %d bytes)", SV_SOCK_PATH_MAX - 1);
	if (!*buf)
		return sv_error_set(err, -ENOENT, "empty socket path");
	return 0;
}

static int queue_msg(json_t *msg, void *arg)
{
	struct ctl_conn *c = arg;

	return json_array_append(c->queue, msg) < 0 ? -ENOMEM : 0;
}

/* Read once (waiting at most timeout_ms; -1: forever) and queue every
 * complete message. Returns 0 or a negative errno with err set. */
static int conn_fill(struct ctl_conn *c, int timeout_ms, struct sv_error *err)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	char buf[65536];
	ssize_t n;
	int r;

	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return sv_error_set(err, -errno, "poll: %s", strerror(errno));
	if (r == 0)
		return sv_error_set(err, -ETIMEDOUT, "no answer from qsupd");
	while ((n = read(c->fd, buf, sizeof(buf))) < 0 && errno == EINTR)
		;
	if (n < 0)
		return sv_error_set(err, -errno, "reading from qsupd: %s", strerror(errno));
	if (n == 0)
		return sv_error_set(err, -ECONNRESET, "qsupd closed the connection");
	r = qmp_framer_feed(&c->framer, buf, (size_t)n, queue_msg, c);
	if (r == -EMSGSIZE)
		return sv_error_set(err, r, "qsupd sent a line over %u MiB", CTL_MAX_LINE >> 20);
	if (r < 0)
		return sv_error_set(err, -EBADMSG, "qsupd sent something that is not a JSON object");
	return 0;
}

/* Take queued message i out of the queue (a new reference), or NULL. */
static json_t *queue_take(struct ctl_conn *c, size_t i)
{
	json_t *m = json_incref(json_array_get(c->queue, i));

	if (m)
		json_array_remove(c->queue, i);
	return m;
}

static int conn_connect(struct ctl_conn *c, const char *path, struct sv_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return sv_error_set(err, -ENAMETOOLONG, "cannot connect to %s: path too long",
		                    path);
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return sv_error_set(err, -errno, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return 0;
	int e = errno;
	const char *hint = "";

	close(c->fd);
	c->fd = -1;
	if (e == ENOENT || e == ECONNREFUSED)
		hint = " (is qsupd running? start it, or give its socket with -s)";
	else if (e == EACCES)
		hint = " (the socket is for root and its group)";
	return sv_error_set(err, -e, "cannot connect to %s: %s%s", path, strerror(e), hint);
}

/* Greeted on c->fd (connected, or -1 after r < 0). */
static int conn_greeted(struct ctl_conn *c, const char *path, int r, int timeout_ms,
                        struct sv_error *err)
{
	const char *desc;
	json_t *g;

	while (r == 0 && json_array_size(c->queue) == 0)
		r = conn_fill(c, timeout_ms, err);
	if (r < 0 && c->fd >= 0 && err) {   /* connected, then no usable greeting */
		char why[sizeof(err->msg)];

		memcpy(why, err->msg, sizeof(why));
		sv_error_set(err, r, "%s: %s", path, why);
	}
	if (r < 0)
		return r;
	g = queue_take(c, 0);
	desc = json_string_value(json_object_get(json_object_get(g, "error"), "desc"));
	r = json_is_object(json_object_get(g, "qsup")) ? 0 : desc ?
	    /* qsupd's refusal (too many clients) in place of the greeting */
	    sv_error_set(err, -ECONNREFUSED, "%s: qsupd refused the connection: %s", path,
	                 desc) :
	    sv_error_set(err, -EPROTO, "%s: unexpected greeting; not a qsupd control "
	                 "socket?", path);
	json_decref(g);
	return r;
}

static int conn_init(struct ctl_conn *c, struct sv_error *err)
{
	c->fd = -1;
	c->next_id = 1;
	c->queue = json_array();
	qmp_framer_init(&c->framer, CTL_MAX_LINE);
	return c->queue ? 0 : sv_error_set(err, -ENOMEM, "out of memory");
}

int ctl_conn_open(struct ctl_conn *c, const char *path, int timeout_ms,
                  struct sv_error *err)
{
	int r = conn_init(c, err);

	if (r < 0)
		return r;
	return conn_greeted(c, path, conn_connect(c, path, err), timeout_ms, err);
}

int ctl_conn_open_fd(struct ctl_conn *c, int fd, const char *label, int timeout_ms,
                     struct sv_error *err)
{
	int r = conn_init(c, err);

	if (r < 0) {
		close(fd);
		return r;
	}
	c->fd = fd;
	return conn_greeted(c, label, 0, timeout_ms, err);
}

int ctl_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t n, struct sv_error *err)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return sv_error_set(err, -EPIPE, "qsupd closed the connection");
		if (w < 0)
			return sv_error_set(err, -errno, "writing to qsupd: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int ctl_conn_send(struct ctl_conn *c, const char *execute, json_t *args,
                  int64_t *id, struct sv_error *err)
{
	json_t *req;
	char *text;
	int r;

	*id = c->next_id++;
	req = json_pack("{s:s, s:o, s:I}", "execute", execute,
	                "arguments", args ? args : json_object(), "id", (json_int_t)*id);
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text)
		return sv_error_set(err, -ENOMEM, "out of memory");
	/* One write for the line and its newline: requests are small. */
	size_t n = strlen(text);
	char *line = realloc(text, n + 2);

	if (!line) {
		free(text);
		return sv_error_set(err, -ENOMEM, "out of memory");
	}
	memcpy(line + n, "\n", 2);
	r = write_all(c->fd, line, n + 1, err);
	free(line);
	return r;
}

/* Index in the queue of the reply to id, or -1. */
static ssize_t queue_find(struct ctl_conn *c, int64_t id)
{
	for (size_t i = 0; i < json_array_size(c->queue); i++) {
		json_t *m = json_array_get(c->queue, i);
		json_t *mid = json_object_get(m, "id");
		enum qmp_msg_kind k = qmp_msg_kind(m);

		if ((k == QMP_MSG_RETURN || k == QMP_MSG_ERROR) &&
		    json_is_integer(mid) && json_integer_value(mid) == id)
			return (ssize_t)i;
	}
	return -1;
}

int ctl_conn_reply(struct ctl_conn *c, int64_t id, json_t **reply, struct sv_error *err)
{
	ssize_t i;
	int r;

	while ((i = queue_find(c, id)) < 0)
		if ((r = conn_fill(c, -1, err)) < 0)
			return r;
	*reply = queue_take(c, (size_t)i);
	return 0;
}

int ctl_conn_next(struct ctl_conn *c, json_t **msg, struct sv_error *err)
{
	int r;

	while (json_array_size(c->queue) == 0)
		if ((r = conn_fill(c, -1, err)) < 0)
			return r;
	*msg = queue_take(c, 0);
	return 0;
}

int ctl_conn_poll(struct ctl_conn *c, json_t **msg, struct sv_error *err)
{
	int r = 0;

	*msg = NULL;
	if (json_array_size(c->queue) == 0 && (r = conn_fill(c, 0, err)) == -ETIMEDOUT)
		r = 0;
	if (r < 0)
		return r;
	*msg = queue_take(c, 0);
	return 0;
}

void ctl_conn_close(struct ctl_conn *c)
{
	/* fd 0 is taken to mean a zeroed, never opened conn: stdin is open. */
	if (c->fd > 0)
		close(c->fd);
	c->fd = -1;
	json_decref(c->queue);
	c->queue = NULL;
	qmp_framer_free(&c->framer);
}
