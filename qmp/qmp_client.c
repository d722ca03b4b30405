/*
 * libqmp client: connection, negotiation, id-matched commands with deadlines,
 * events, fd passing, and teardown. The byte-level work is in qmp_parse.c.
 *
 * Teardown is the delicate part. Whatever ends the connection (the caller,
 * EOF, a protocol error, the negotiation deadline) goes through
 * client_teardown(), which fails every pending command once, calls ready()
 * if it is still owed, and closes the handles. The struct is freed only in
 * the last handle's close callback, after closed(), so a callback that calls
 * qmp_client_close() never pulls the client from under the code that called
 * it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp.h"
#include "qmp_line.h"
#include "qmp_parse.h"

#define READ_CHUNK 65536
#define FD_RETRY_MS 5

enum client_state {
	ST_NEW,          /* not yet connected */
	ST_CONNECTING,   /* uv_pipe_connect() under way */
	ST_GREETING,     /* waiting for {"QMP": ...} */
	ST_NEGOTIATING,  /* qmp_capabilities sent */
	ST_READY,
	ST_CLOSING,      /* handles closing; closed() not yet called */
};

/* A command sent (or queued) and waiting for its reply. */
struct pending {
	struct pending *next, *prev;
	uint64_t id;
	uint64_t deadline;      /* in uv_now() milliseconds */
	uint64_t sent;          /* uv_hrtime() when queued */
	qmp_reply_cb cb;
	void *arg;
	char command[32];       /* for replied(), cut short */
};

/* A line waiting to be written. Lines go out in order; one carrying an fd
 * waits until the writes before it have left, then goes out by sendmsg(). */
struct outmsg {
	struct outmsg *next;
	struct qmp_client *c;
	uv_write_t req;
	char *data;
	size_t len;
	int fd;                 /* -1: none */
};

struct qmp_client {
	uv_loop_t *loop;
	struct qmp_callbacks cb;
	void *data;
	enum client_state state;
	int ready_called;
	int close_status;
	int debug;
	int eager;              /* qmp_capabilities without waiting for the greeting */
	int nego_sent;          /* qmp_capabilities is on its way */

	uv_pipe_t pipe;
	int pipe_open;          /* pipe initialized: needs closing */
	uv_connect_t connect_req;
	uv_timer_t timer;       /* the earliest deadline */
	uv_timer_t fd_retry;    /* retry of a sendmsg() that met EAGAIN */
	int handles;            /* handles not yet through their close cb */

	struct qmp_framer framer;
	json_t *greeting;
	int version;

	uint64_t next_id;
	uint64_t nego_id;
	uint64_t nego_deadline;
	uint64_t timeout_ms;
	struct pending *pending; /* oldest first */
	struct pending *pending_tail;
	size_t npending;
	uint64_t last_input;     /* uv_now() of the last message read; 0: none */

	struct outmsg *outq, *outq_tail;
	int writes_in_flight;
	int corked;             /* qmp_client_cork(): lines wait for the uncork */

	/* qmp_client_adopt_sent(): the commands qmp_presend() wrote, and how
	 * many of them an execute() has taken as its own so far. */
	char sent[QMP_PRESEND_MAX][QMP_PRESEND_NAME_MAX];
	size_t nsent, sent_taken;
};

static void client_teardown(struct qmp_client *c, int status);
static void timer_rearm(struct qmp_client *c);
static void outq_flush(struct qmp_client *c);

static void client_log(struct qmp_client *c, enum qmp_log_level lvl,
                       const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void client_log(struct qmp_client *c, enum qmp_log_level lvl,
                       const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->cb.log)
		c->cb.log(c, lvl, msg);
	else if (lvl >= QMP_LOG_WARN)
		fprintf(stderr, "libqmp: %s\n", msg);
}

const char *qmp_strerror(int status)
{
	if (status == 0)
		return "success";
	if (status == QMP_EREPLY)
		return "QEMU returned an error";
	if (status == UV_ETIMEDOUT)
		return "no reply from QEMU before the deadline";
	if (status == UV_EOF)
		return "QMP connection closed by QEMU";
	if (status == UV_EPROTO)
		return "QMP protocol error";
	if (status == UV_ECANCELED)
		return "QMP connection closed";
	return uv_strerror(status);
}

/* ---- allocation and accessors ---- */

struct qmp_client *qmp_client_new(uv_loop_t *loop, const struct qmp_callbacks *cb,
                                  void *data)
{
	struct qmp_client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loop = loop;
	c->cb = *cb;
	c->data = data;
	c->next_id = 1;
	c->timeout_ms = QMP_DEFAULT_TIMEOUT_MS;
	qmp_framer_init(&c->framer, QMP_DEFAULT_MAX_LINE);
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->fd_retry);
	c->timer.data = c->fd_retry.data = c;
	c->handles = 2;
	return c;
}

void *qmp_client_data(const struct qmp_client *c) { return c->data; }
json_t *qmp_client_greeting(const struct qmp_client *c) { return c->greeting; }
int qmp_client_version(const struct qmp_client *c) { return c->version; }
int qmp_client_is_ready(const struct qmp_client *c) { return c->state == ST_READY; }
size_t qmp_client_pending(const struct qmp_client *c) { return c->npending; }
uint64_t qmp_client_last_input(const struct qmp_client *c) { return c->last_input; }
void qmp_client_set_debug(struct qmp_client *c, int on) { c->debug = on; }

void qmp_client_set_eager(struct qmp_client *c, int on)
{
	if (c->state == ST_NEW)
		c->eager = on;
}

void qmp_client_set_limits(struct qmp_client *c, uint64_t timeout_ms, size_t max_line)
{
	if (timeout_ms)
		c->timeout_ms = timeout_ms;
	if (max_line)
		c->framer.max_line = max_line;
}

/* ---- pending commands ---- */

static void pending_unlink(struct qmp_client *c, struct pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		c->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		c->pending_tail = p->prev;
	c->npending--;
}

static struct pending *pending_find(struct qmp_client *c, uint64_t id)
{
	for (struct pending *p = c->pending; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

/* Take p off the list, then call its callback and free it. */
static void pending_finish(struct qmp_client *c, struct pending *p,
                           const struct qmp_result *r)
{
	pending_unlink(c, p);
	if (p->cb)
		p->cb(c, r, p->arg);
	free(p);
}

static void pending_fail(struct qmp_client *c, struct pending *p, int status)
{
	struct qmp_result r = { .status = status };
	pending_finish(c, p, &r);
}

/* ---- deadlines ---- */

static void on_timer(uv_timer_t *t)
{
	struct qmp_client *c = t->data;
	uint64_t now = uv_now(c->loop);

	if (c->state != ST_READY && c->state != ST_CLOSING && c->nego_deadline &&
	    now >= c->nego_deadline) {
		client_log(c, QMP_LOG_ERROR, "no QMP greeting and negotiation within %llu ms",
		           (unsigned long long)c->timeout_ms);
		client_teardown(c, UV_ETIMEDOUT);
		return;
	}
	/* Rescan after each callback: it may execute commands or close. */
	while (c->state == ST_READY) {
		struct pending *p = c->pending;
		while (p && p->deadline > now)
			p = p->next;
		if (!p)
			break;
		client_log(c, QMP_LOG_WARN, "command id %llu timed out",
		           (unsigned long long)p->id);
		pending_fail(c, p, UV_ETIMEDOUT);
	}
	timer_rearm(c);
}

static void timer_rearm(struct qmp_client *c)
{
	if (c->state == ST_CLOSING)
		return;
	uint64_t earliest = 0;
	if (c->state != ST_READY && c->state != ST_NEW)
		earliest = c->nego_deadline;
	for (struct pending *p = c->pending; p; p = p->next)
		if (!earliest || p->deadline < earliest)
			earliest = p->deadline;
	if (!earliest) {
		uv_timer_stop(&c->timer);
		return;
	}
	uint64_t now = uv_now(c->loop);
	uv_timer_start(&c->timer, on_timer, earliest > now ? earliest - now : 0, 0);
}

/* ---- writing ---- */

static void outmsg_free(struct outmsg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	free(m->data);
	free(m);
}

/* m and the lines chained after it (a batch, outq_flush). */
static void free_chain(struct outmsg *m)
{
	while (m) {
		struct outmsg *next = m->next;
		outmsg_free(m);
		m = next;
	}
}

static void on_write(uv_write_t *req, int status)
{
	struct outmsg *m = req->data;
	struct qmp_client *c = m->c;
	c->writes_in_flight--;
	free_chain(m);   /* the lines written together (outq_flush) */
	if (status < 0 && status != UV_ECANCELED && c->state != ST_CLOSING) {
		client_log(c, QMP_LOG_ERROR, "write failed: %s", uv_strerror(status));
		client_teardown(c, status);
		return;
	}
	if (c->state != ST_CLOSING)
		outq_flush(c);
}

#define BATCH_MAX 16

/* Write m and the lines chained after it (m->next..., at most BATCH_MAX,
 * none with an fd) in one go: one writev, so one wake-up of QEMU. */
static int write_plain(struct qmp_client *c, struct outmsg *m, size_t off)
{
	uv_buf_t bufs[BATCH_MAX];
	unsigned n = 0;
	bufs[n++] = uv_buf_init(m->data + off, (unsigned)(m->len - off));
	for (struct outmsg *o = m->next; o && n < BATCH_MAX; o = o->next)
		bufs[n++] = uv_buf_init(o->data, (unsigned)o->len);
	m->req.data = m;
	int rc = uv_write(&m->req, (uv_stream_t *)&c->pipe, bufs, n, on_write);
	if (rc == 0)
		c->writes_in_flight++;
	return rc;
}

static void on_fd_retry(uv_timer_t *t)
{
	outq_flush(t->data);
}

/* Send m (and the lines chained after it) with m's fd attached, in one
 * sendmsg(). Returns bytes sent, 0 to retry later, or a negative error. */
static ssize_t send_with_fd(struct qmp_client *c, struct outmsg *m)
{
	uv_os_fd_t sock;
	if (uv_fileno((uv_handle_t *)&c->pipe, &sock) < 0)
		return UV_EBADF;
	char ctl[CMSG_SPACE(sizeof(int))];
	memset(ctl, 0, sizeof(ctl));
	struct iovec iov[BATCH_MAX];
	int n = 0;
	for (struct outmsg *o = m; o && n < BATCH_MAX; o = o->next)
		iov[n++] = (struct iovec){ .iov_base = o->data, .iov_len = o->len };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n,
	                     .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &m->fd, sizeof(int));
	ssize_t r;
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
	return r;
}

/* Push queued lines out, in order: up to BATCH_MAX at a time in one write
 * (one wake-up of the peer), a line with an fd first in its batch and
 * only once the writes before it have left. */
static void outq_flush(struct qmp_client *c)
{
	struct outmsg *m;
	if (c->corked)
		return;
	while ((m = c->outq)) {
		if (m->fd >= 0 && c->writes_in_flight > 0)
			return;   /* on_write() calls us again */
		/* The batch: m and the plain lines after it, taken off the queue. */
		struct outmsg *last = m;
		for (int k = 1; k < BATCH_MAX && last->next && last->next->fd < 0; k++)
			last = last->next;
		c->outq = last->next;
		if (!c->outq)
			c->outq_tail = NULL;
		last->next = NULL;
		size_t off = 0;
		if (m->fd >= 0) {
			ssize_t n = send_with_fd(c, m);
			if (n == 0) {   /* back at the head, until the retry */
				last->next = c->outq;
				c->outq = m;
				if (!c->outq_tail)
					c->outq_tail = last;
				uv_timer_start(&c->fd_retry, on_fd_retry, FD_RETRY_MS, 0);
				return;
			}
			if (n < 0) {
				free_chain(m);
				client_log(c, QMP_LOG_ERROR, "sendmsg: %s", uv_strerror((int)n));
				client_teardown(c, (int)n);
				return;
			}
			close(m->fd);
			m->fd = -1;
			/* Drop the lines that went whole; the rest is written. */
			off = (size_t)n;
			while (m && off >= m->len) {
				struct outmsg *next = m->next;
				off -= m->len;
				outmsg_free(m);
				m = next;
			}
			if (!m)
				continue;
		}
		int rc = write_plain(c, m, off);
		if (rc < 0) {
			free_chain(m);
			client_log(c, QMP_LOG_ERROR, "write: %s", uv_strerror(rc));
			client_teardown(c, rc);
			return;
		}
	}
}

/* Serialize {"execute": command, "arguments": args, "id": id} and queue it. */
static int send_command(struct qmp_client *c, const char *command, json_t *args,
                        uint64_t id, int fd)
{
	size_t len;
	char *line = qmp_command_line(command, args, id, &len);
	if (!line)
		return UV_ENOMEM;
	struct outmsg *m = calloc(1, sizeof(*m));
	if (!m) {
		free(line);
		return UV_ENOMEM;
	}
	size_t n = len - 1;
	m->data = line;
	m->len = len;
	m->c = c;
	m->fd = -1;
	if (fd >= 0 && (m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		int err = -errno;
		outmsg_free(m);
		return err;
	}
	if (c->debug)
		client_log(c, QMP_LOG_DEBUG, "-> %.*s", (int)n, m->data);
	if (c->outq_tail)
		c->outq_tail->next = m;
	else
		c->outq = m;
	c->outq_tail = m;
	outq_flush(c);
	return 0;
}

/* Commands may be sent: negotiated, or negotiating eagerly (they follow
 * qmp_capabilities on the stream). */
static int may_send(const struct qmp_client *c)
{
	return c->state == ST_READY || (c->nego_sent && (c->state == ST_CONNECTING ||
	       c->state == ST_GREETING || c->state == ST_NEGOTIATING));
}

/* The trace (qmp_client_set_debug) of a line qmp_presend() wrote: what
 * went to the peer is in it, however it went. */
static void log_written(struct qmp_client *c, const char *command, uint64_t id)
{
	size_t len;
	char *line = c->debug ? qmp_command_line(command, NULL, id, &len) : NULL;
	if (line)
		client_log(c, QMP_LOG_DEBUG, "-> %.*s (written at connect)", (int)len - 1, line);
	free(line);
}

static void pending_add(struct qmp_client *c, struct pending *p)
{
	p->prev = c->pending_tail;
	if (c->pending_tail)
		c->pending_tail->next = p;
	else
		c->pending = p;
	c->pending_tail = p;
	c->npending++;
	timer_rearm(c);
}

/* The commands qmp_presend() wrote that no execute() took: their replies
 * are awaited with no callback, and nothing matches any more. */
static int sent_drop_rest(struct qmp_client *c)
{
	while (c->sent_taken < c->nsent) {
		struct pending *p = calloc(1, sizeof(*p));
		if (!p)
			return UV_ENOMEM;
		p->id = c->next_id++;
		p->deadline = uv_now(c->loop) + c->timeout_ms;
		p->sent = uv_hrtime();
		snprintf(p->command, sizeof(p->command), "%s", c->sent[c->sent_taken++]);
		pending_add(c, p);
	}
	return 0;
}

static int execute(struct qmp_client *c, const char *command, json_t *args, int fd,
                   uint64_t timeout_ms, qmp_reply_cb cb, void *arg)
{
	if (!may_send(c))
		return UV_ENOTCONN;
	if (!command || !*command || (args && !json_is_object(args)))
		return UV_EINVAL;
	bool written = false;   /* by qmp_presend() */
	if (c->sent_taken < c->nsent) {
		if (!args && fd < 0 && strcmp(command, c->sent[c->sent_taken]) == 0)
			written = true;
		else if (sent_drop_rest(c) < 0)
			return UV_ENOMEM;
	}
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return UV_ENOMEM;
	p->id = c->next_id++;
	p->cb = cb;
	p->arg = arg;
	p->deadline = uv_now(c->loop) + (timeout_ms ? timeout_ms : c->timeout_ms);
	p->sent = uv_hrtime();
	snprintf(p->command, sizeof(p->command), "%s", command);
	int rc = written ? 0 : send_command(c, command, args, p->id, fd);
	if (rc < 0) {
		free(p);
		return rc;
	}
	/* A write error during the send tears the client down synchronously;
	 * the command was never pending, so its callback must not run. */
	if (!may_send(c)) {
		free(p);
		return UV_ENOTCONN;
	}
	if (written) {
		c->sent_taken++;
		log_written(c, command, p->id);
	}
	pending_add(c, p);
	return 0;
}

void qmp_client_cork(struct qmp_client *c)
{
	c->corked = 1;
}

void qmp_client_uncork(struct qmp_client *c)
{
	c->corked = 0;
	if (c->state != ST_CLOSING && c->pipe_open)
		outq_flush(c);
}

int qmp_client_execute(struct qmp_client *c, const char *command, json_t *args,
                       uint64_t timeout_ms, qmp_reply_cb cb, void *arg)
{
	return execute(c, command, args, -1, timeout_ms, cb, arg);
}

int qmp_client_execute_fd(struct qmp_client *c, const char *command, json_t *args,
                          int fd, uint64_t timeout_ms, qmp_reply_cb cb, void *arg)
{
	if (fd < 0)
		return UV_EBADF;
	return execute(c, command, args, fd, timeout_ms, cb, arg);
}

/* ---- reading and dispatch ---- */

static void call_ready(struct qmp_client *c, int status)
{
	if (c->ready_called)
		return;
	c->ready_called = 1;
	c->cb.ready(c, status);
}

static void parse_version(struct qmp_client *c)
{
	json_t *q = json_object_get(json_object_get(c->greeting, "version"), "qemu");
	c->version = (int)(json_integer_value(json_object_get(q, "major")) * 10000 +
	                   json_integer_value(json_object_get(q, "minor")) * 100 +
	                   json_integer_value(json_object_get(q, "micro")));
}

/* qmp_capabilities, with the id its reply is known by. */
static int send_capabilities(struct qmp_client *c)
{
	c->nego_id = c->next_id++;
	c->nego_sent = 1;
	return send_command(c, "qmp_capabilities", NULL, c->nego_id, -1);
}

static void handle_greeting(struct qmp_client *c, json_t *msg)
{
	c->greeting = json_incref(json_object_get(msg, "QMP"));
	parse_version(c);
	c->state = ST_NEGOTIATING;
	if (c->nego_sent)
		return;   /* eager: on its way already */
	int rc = send_capabilities(c);
	if (rc < 0 && c->state != ST_CLOSING)
		client_teardown(c, rc);
}

static void handle_event(struct qmp_client *c, json_t *msg)
{
	if (!c->cb.event)
		return;
	json_t *ts = json_object_get(msg, "timestamp");
	struct qmp_timestamp t = {
		.seconds = json_integer_value(json_object_get(ts, "seconds")),
		.microseconds = json_integer_value(json_object_get(ts, "microseconds")),
	};
	json_t *data = json_object_get(msg, "data");
	c->cb.event(c, json_string_value(json_object_get(msg, "event")), data, &t);
}

static void handle_reply(struct qmp_client *c, json_t *msg, enum qmp_msg_kind kind)
{
	json_t *idv = json_object_get(msg, "id");
	uint64_t id = json_is_integer(idv) ? (uint64_t)json_integer_value(idv) : 0;

	if (c->state == ST_NEGOTIATING && id == c->nego_id) {
		if (kind == QMP_MSG_ERROR) {
			client_log(c, QMP_LOG_ERROR, "qmp_capabilities refused: %s",
			           json_string_value(json_object_get(json_object_get(msg, "error"), "desc")));
			client_teardown(c, UV_EPROTO);
			return;
		}
		c->state = ST_READY;
		timer_rearm(c);
		call_ready(c, 0);
		return;
	}
	struct pending *p = id ? pending_find(c, id) : NULL;
	if (!p) {
		char *s = json_dumps(idv ? idv : json_null(), JSON_ENCODE_ANY);
		client_log(c, QMP_LOG_WARN, "dropping a reply with unknown id %s "
		           "(late reply to a timed-out command, or not ours)", s ? s : "?");
		free(s);
		return;
	}
	struct qmp_result r = { .status = 0 };
	if (kind == QMP_MSG_RETURN) {
		r.ret = json_object_get(msg, "return");
	} else {
		json_t *e = json_object_get(msg, "error");
		r.status = QMP_EREPLY;
		r.err_class = json_string_value(json_object_get(e, "class"));
		r.err_desc = json_string_value(json_object_get(e, "desc"));
	}
	if (c->cb.replied)
		c->cb.replied(c, p->command, uv_hrtime() - p->sent);
	if (c->state == ST_CLOSING)   /* replied() closed it: the teardown failed p */
		return;
	pending_finish(c, p, &r);
	timer_rearm(c);
}

/* One message from the stream. Returns non-zero to stop the feed once the
 * client is closing, so nothing is dispatched after teardown. */
static int on_message(json_t *msg, void *arg)
{
	struct qmp_client *c = arg;
	enum qmp_msg_kind kind = qmp_msg_kind(msg);

	c->last_input = uv_now(c->loop);
	if (c->debug) {
		char *s = json_dumps(msg, JSON_COMPACT);
		client_log(c, QMP_LOG_DEBUG, "<- %s", s ? s : "?");
		free(s);
	}
	if (c->state == ST_GREETING) {
		if (kind != QMP_MSG_GREETING) {
			client_log(c, QMP_LOG_ERROR, "peer did not start with a QMP greeting");
			client_teardown(c, UV_EPROTO);
		} else {
			handle_greeting(c, msg);
		}
	} else if (kind == QMP_MSG_EVENT) {
		handle_event(c, msg);
	} else if (kind == QMP_MSG_RETURN || kind == QMP_MSG_ERROR) {
		handle_reply(c, msg, kind);
	} else {
		client_log(c, QMP_LOG_WARN, "ignoring a message that is neither a reply "
		           "nor an event");
	}
	return c->state == ST_CLOSING;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	/* One buffer for every client: libuv hands it to on_read straight
	 * after this, and on_read is done with it (the framer parses complete
	 * lines in place and copies a partial one) before the loop reads from
	 * any other stream. A buffer per client would cost 64 KiB each for
	 * nothing. Clients live on one loop thread (qmp.h); thread-local storage
	 * would instead cost every libuv pool thread 64 KiB of zeroed stack. */
	static char rbuf[READ_CHUNK];
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(rbuf, READ_CHUNK);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct qmp_client *c = s->data;
	if (c->state == ST_CLOSING)
		return;
	if (nread < 0) {
		/* QEMU reads its monitor input a byte at a time and stops reading
		 * once it runs a command; when that command is quit, the newline
		 * after it is still unread as QEMU exits, and the kernel reports a
		 * reset. That is a hang-up like any other. */
		if (nread == UV_ECONNRESET)
			nread = UV_EOF;
		if (nread != UV_EOF)
			client_log(c, QMP_LOG_ERROR, "read: %s", uv_strerror((int)nread));
		client_teardown(c, (int)nread);
		return;
	}
	int rc = qmp_framer_feed(&c->framer, buf->base, (size_t)nread, on_message, c);
	if (rc < 0) {
		client_log(c, QMP_LOG_ERROR, rc == -EMSGSIZE
		           ? "a QMP line exceeds %zu bytes; disconnecting"
		           : "malformed JSON from QMP peer (limit %zu); disconnecting",
		           c->framer.max_line);
		client_teardown(c, UV_EPROTO);
	}
}

/* ---- connecting ---- */

static int start_reading(struct qmp_client *c)
{
	c->state = ST_GREETING;
	int rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	if (rc < 0)
		client_teardown(c, rc);
	return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
	struct qmp_client *c = req->data;
	if (c->state == ST_CLOSING)
		return;
	if (status < 0) {
		client_log(c, QMP_LOG_INFO, "connect: %s", uv_strerror(status));
		client_teardown(c, status);
		return;
	}
	start_reading(c);
}

static void begin(struct qmp_client *c)
{
	c->nego_deadline = uv_now(c->loop) + c->timeout_ms;
	timer_rearm(c);
}

static int pipe_init(struct qmp_client *c)
{
	int rc = uv_pipe_init(c->loop, &c->pipe, 0);
	if (rc < 0)
		return rc;
	c->pipe.data = c;
	c->pipe_open = 1;
	c->handles++;
	return 0;
}

/* A unix socket connected to path now, or -1 (errno set): a server that
 * listens accepts into its backlog at once. */
static int connect_now(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int qmp_client_connect(struct qmp_client *c, const char *path)
{
	if (c->state != ST_NEW || !path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return UV_EINVAL;
	int rc = pipe_init(c);
	if (rc < 0)
		return rc;
	/* Eager, on a socket that accepts at once: qmp_capabilities (and what
	 * the caller sends before ready()) is written before this returns, so
	 * QEMU works on it while the caller goes on. Otherwise, or when that
	 * connect fails, libuv connects, reporting any error as usual. */
	int fd = c->eager ? connect_now(path) : -1;
	if (fd >= 0 && uv_pipe_open(&c->pipe, fd) < 0) {
		close(fd);
		fd = -1;
	}
	if (fd >= 0) {
		start_reading(c);
	} else {
		c->state = ST_CONNECTING;
		c->connect_req.data = c;
		uv_pipe_connect(&c->connect_req, &c->pipe, path, on_connect);
	}
	if (c->state == ST_CLOSING)
		return 0;   /* ready() follows with the error */
	begin(c);
	if (c->eager && (rc = send_capabilities(c)) < 0 && c->state != ST_CLOSING)
		client_teardown(c, rc);   /* queued behind the connect otherwise */
	return 0;
}

/* qmp_client_adopt(), or with sent qmp_client_adopt_sent(): qmp_capabilities
 * and the n cmds are on the stream already. */
static int adopt(struct qmp_client *c, int fd, bool sent, const char *const *cmds, size_t n)
{
	if (c->state != ST_NEW || fd < 0 || n > QMP_PRESEND_MAX)
		return UV_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!cmds[i] || snprintf(c->sent[i], sizeof(c->sent[i]), "%s", cmds[i]) >=
		    (int)sizeof(c->sent[i]))
			return UV_EINVAL;
	int rc = pipe_init(c);
	if (rc < 0)
		return rc;
	rc = uv_pipe_open(&c->pipe, fd);
	if (rc < 0)
		return rc;   /* the handle never took fd; close() releases it */
	if (sent) {
		c->eager = 1;
		c->nsent = n;
	}
	start_reading(c);
	if (c->state != ST_GREETING)
		return 0;   /* ready() follows with the error */
	begin(c);
	if (sent) {
		c->nego_id = c->next_id++;   /* 1, as qmp_presend() numbered it */
		c->nego_sent = 1;
		log_written(c, "qmp_capabilities", c->nego_id);
	} else if (c->eager && (rc = send_capabilities(c)) < 0 && c->state != ST_CLOSING) {
		client_teardown(c, rc);
	}
	return 0;
}

int qmp_client_adopt(struct qmp_client *c, int fd)
{
	return adopt(c, fd, false, NULL, 0);
}

int qmp_client_adopt_sent(struct qmp_client *c, int fd, const char *const *cmds, size_t n)
{
	return adopt(c, fd, true, cmds, n);
}

/* ---- teardown ---- */

static void on_handle_closed(uv_handle_t *h)
{
	struct qmp_client *c = h->data;
	if (--c->handles > 0)
		return;
	if (c->cb.closed)
		c->cb.closed(c, c->close_status);
	qmp_framer_free(&c->framer);
	json_decref(c->greeting);
	free(c);
}

static void client_teardown(struct qmp_client *c, int status)
{
	if (c->state == ST_CLOSING)
		return;
	int was_new = c->state == ST_NEW;
	c->state = ST_CLOSING;
	c->close_status = status;
	int fail = status == 0 ? UV_ECANCELED : status;

	if (c->pipe_open)
		uv_read_stop((uv_stream_t *)&c->pipe);
	uv_timer_stop(&c->timer);
	uv_timer_stop(&c->fd_retry);
	/* ready() first: an eager client's commands may be pending before it. */
	if (!was_new)
		call_ready(c, fail);
	while (c->pending)
		pending_fail(c, c->pending, fail);
	while (c->outq) {
		struct outmsg *m = c->outq;
		c->outq = m->next;
		outmsg_free(m);
	}
	c->outq_tail = NULL;
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->fd_retry, on_handle_closed);
	if (c->pipe_open)
		uv_close((uv_handle_t *)&c->pipe, on_handle_closed);
}

void qmp_client_close(struct qmp_client *c)
{
	if (c)
		client_teardown(c, 0);
}
