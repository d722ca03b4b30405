/*
 * The control socket server: accepting clients within the limits, framing
 * their requests, checking who may run them, dispatching to commands.c,
 * and writing replies and events.
 *
 * Requests name their client by its id (request.h): an answer is routed
 * to the client with that id, and dropped when it has gone. A client
 * struct lives as long as its handles, its write or its shutdown (a
 * reference count).
 *
 * Output: messages are appended to one buffer per client (c->out), and at
 * most one uv_write is in flight (c->w, an earlier out); when it completes,
 * what accumulated meanwhile is written. What a client holds is what its
 * two buffers have allocated, and that is what SV_CONTROL_MAX_OUTPUT caps.
 * A client whose write failed (it has gone) becomes deaf: nothing more is
 * written to it, but its socket is read to the end and every complete
 * request in it is carried out.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "commands.h"
#include "control.h"
#include "jsonout.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "qmp_parse.h"
#include "request.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

struct sv_client {
	struct sv_client *next, *prev;
	struct sv_daemon *d;
	uv_pipe_t pipe;
	uv_timer_t idle;            /* runs until the first request */
	struct qmp_framer framer;
	unsigned long long id;      /* for the log, and the route to it (request.h) */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool exempt;                /* root or the daemon's uid: no per-uid limit */
	bool may_mutate;            /* those, or a member of the socket's group */
	int refs;                   /* the two handles, the write, the shutdown */
	bool connected;             /* in d->clients, handles open */
	bool subscribed;
	bool asked;                 /* sent a complete request: never idle */
	bool eof;                   /* the peer is done sending */
	bool deaf;                  /* a write failed: output is dropped */
	bool closing;               /* answered after EOF: flush, then shut down */
	bool writing;               /* wreq in flight */
	bool shutting;              /* shutdown requested */
	unsigned open_requests;
	char *out;                  /* output not yet handed to libuv */
	size_t out_len, out_cap;
	char *w;                    /* the buffer of the write in flight */
	size_t w_cap;
	uv_write_t wreq;
	uv_shutdown_t shutdown;
};

static unsigned long long next_client_id = 1;

static void client_unref(struct sv_client *c)
{
	if (--c->refs > 0)
		return;
	qmp_framer_free(&c->framer);
	free(c->out);
	free(c->w);
	free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
	client_unref(h->data);
}

/* Close both handles; the struct goes with the last reference. */
static void client_close_handles(struct sv_client *c)
{
	uv_close((uv_handle_t *)&c->pipe, on_handle_closed);
	uv_close((uv_handle_t *)&c->idle, on_handle_closed);
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
	sv_log(SV_LOG_DEBUG, NULL, "client %llu: disconnected (%s)", c->id, why);
	for (size_t i = 0; i < d->nguests; i++)
		if (d->guests[i]->console_peer == c->id)
			d->guests[i]->console_peer = 0;   /* its console is free */
	client_close_handles(c);
	sv_daemon_trim_later(d);
}

/* ---- writing ---- */

static void client_flush(struct sv_client *c);

/* The peer cannot be written to any more (it has gone): drop the output,
 * now and later, but keep reading: its requests are still carried out. */
static void client_deaf(struct sv_client *c, int status)
{
	if (c->deaf)
		return;
	c->deaf = true;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	sv_log(SV_LOG_DEBUG, NULL, "client %llu: %s; its output is dropped, its requests "
	       "still run", c->id, uv_strerror(status));
	if (c->eof)
		client_disconnect(c, "gone, every request read");
}

static void on_written(uv_write_t *w, int status)
{
	struct sv_client *c = w->data;
	c->writing = false;
	free(c->w);
	c->w = NULL;
	c->w_cap = 0;
	if (status < 0 && status != UV_ECANCELED)
		client_deaf(c, status);
	else
		client_flush(c);
	client_unref(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct sv_client *c = req->data;
	(void)status;
	client_disconnect(c, "EOF, every reply sent");
	client_unref(c);
}

static void client_shutdown(struct sv_client *c)
{
	if (c->shutting)
		return;
	c->shutting = true;
	c->shutdown.data = c;
	c->refs++;
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, on_shutdown) < 0) {
		client_unref(c);
		client_disconnect(c, "EOF");
	}
}

/* Hand what accumulated to libuv, unless a write is in flight. With
 * nothing left to write and every request answered after EOF, shut down. */
static void client_flush(struct sv_client *c)
{
	if (!c->connected || c->writing || c->deaf)
		return;
	if (c->out_len == 0) {
		if (c->closing)
			client_shutdown(c);
		return;
	}
	uv_buf_t buf = uv_buf_init(c->out, (unsigned)c->out_len);
	c->w = c->out;
	c->w_cap = c->out_cap;
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	c->writing = true;
	c->wreq.data = c;
	c->refs++;
	int rc = uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &buf, 1, on_written);
	if (rc < 0) {
		c->writing = false;
		free(c->w);
		c->w = NULL;
		c->w_cap = 0;
		client_deaf(c, rc);
		client_unref(c);
	}
}

/* The allocation that holds need bytes, growing from cap. */
static size_t grow(size_t cap, size_t need)
{
	if (cap == 0)
		return need < 4096 ? 4096 : need;
	while (cap < need)
		cap *= 2;
	return cap;
}

/* Queue n bytes (whole lines) for c. A client with unsent output when the
 * buffers would then hold more than the cap is disconnected instead. */
static void client_queue(struct sv_client *c, const char *data, size_t n)
{
	if (!c->connected || c->deaf || c->closing)
		return;
	size_t unsent = c->out_len + uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe);
	size_t need = c->out_len + n;
	size_t cap = need > c->out_cap ? grow(c->out_cap, need) : c->out_cap;
	if (need > UINT_MAX / 2) {   /* uv_buf_t's length is an unsigned int */
		sv_log(SV_LOG_WARN, NULL, "client %llu: a message of %zu bytes; disconnecting",
		       c->id, n);
		client_disconnect(c, "message too large");
		return;
	}
	if (unsent > 0 && cap + c->w_cap > SV_CONTROL_MAX_OUTPUT) {
		sv_log(SV_LOG_WARN, NULL, "client %llu (uid %u) does not read its replies and "
		       "events; disconnecting (%zu KiB unsent)", c->id, (unsigned)c->uid,
		       unsent >> 10);
		client_disconnect(c, "output over the cap");
		return;
	}
	if (cap != c->out_cap) {
		char *nb = realloc(c->out, cap);
		if (!nb) {
			client_disconnect(c, "out of memory");
			return;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, n);
	c->out_len += n;
	client_flush(c);
}

/* msg (taken) dumped as one line, newline included: a malloc'd string with
 * its length in *n, or NULL. */
static char *dump_line(json_t *msg, size_t *n)
{
	char *text = sv_json_line(msg, n);
	json_decref(msg);
	return text;
}

/* Queue msg (taken) as one line to c. */
static void client_send(struct sv_client *c, json_t *msg)
{
	size_t n = 0;
	char *text = NULL;
	if (c->connected && !c->deaf && !c->closing)
		text = dump_line(json_incref(msg), &n);
	json_decref(msg);
	if (text)
		client_queue(c, text, n);
	free(text);
}

/* ---- requests and replies ---- */

/* The peer shut its side (as `socat` or `nc -N` do after the request):
 * answer what it asked, flush, then close. A deaf client is closed at once
 * (its requests run on; their answers had nowhere to go). */
static void close_when_answered(struct sv_client *c)
{
	if (c->connected && c->deaf) {
		client_disconnect(c, "gone, every request read");
		return;
	}
	if (!c->connected || c->open_requests > 0)
		return;
	c->closing = true;
	client_flush(c);
}

/* The client with this id, if it is still connected. */
static struct sv_client *client_find(struct sv_daemon *d, uint64_t id)
{
	for (struct sv_client *c = d->clients; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

/* The route's answer (request.h): to the client, if it is still there. */
static void route_answer(void *arg, uint64_t peer, json_t *msg)
{
	struct sv_client *c = client_find(arg, peer);
	if (!c) {
		json_decref(msg);
		return;
	}
	client_send(c, msg);
	c->open_requests--;
	if (c->eof)
		close_when_answered(c);
}

/* The same for an answer written as a line already (request.h). */
static void route_answer_line(void *arg, uint64_t peer, char *line, size_t len)
{
	struct sv_client *c = client_find(arg, peer);
	if (!c) {
		free(line);
		return;
	}
	if (c->connected && !c->deaf && !c->closing)
		client_queue(c, line, len);
	free(line);
	c->open_requests--;
	if (c->eof)
		close_when_answered(c);
}

void sv_control_notify(struct sv_daemon *d, uint64_t peer, json_t *msg)
{
	struct sv_client *c = client_find(d, peer);
	uv_timeval64_t tv;
	if (!c || !msg) {
		json_decref(msg);
		return;
	}
	uv_gettimeofday(&tv);
	json_object_set_new(msg, "timestamp", json_pack("{s:I, s:I}", "seconds",
	                    (json_int_t)tv.tv_sec, "microseconds", (json_int_t)tv.tv_usec));
	client_send(c, msg);
}

bool sv_control_may_mutate(struct sv_daemon *d, uint64_t peer)
{
	struct sv_client *c = client_find(d, peer);
	return c && c->may_mutate;
}

static void route_subscribe(void *arg, uint64_t peer)
{
	struct sv_client *c = client_find(arg, peer);
	if (c)
		c->subscribed = true;
}

/* The route's stream to one client (request.h): false once it can take
 * nothing more. */
static bool route_deliver(void *arg, uint64_t peer, json_t *msg)
{
	struct sv_client *c = client_find(arg, peer);
	bool open = c && c->connected && !c->deaf && !c->closing;
	if (open && msg)
		client_send(c, msg);
	else
		json_decref(msg);
	return open && c->connected;   /* sending may have disconnected it */
}

/* The route's events: to every subscriber, dumped once. */
static void route_event(void *arg, json_t *event)
{
	struct sv_daemon *d = arg;
	char *text = NULL;
	size_t n = 0;
	sv_metrics_event(d, event);
	for (struct sv_client *c = d->clients, *next; c; c = next) {
		next = c->next;   /* queueing may disconnect c */
		if (!c->subscribed)
			continue;
		if (!text && !(text = dump_line(json_incref(event), &n)))
			break;
		client_queue(c, text, n);
	}
	free(text);
	json_decref(event);
}

/* The route's count of answers (request.h): the metrics. */
static void route_finished(void *arg, const struct sv_request *req, json_t *msg)
{
	sv_metrics_request_done(arg, req, msg);
}

static struct sv_request *request_new(struct sv_client *c, json_t *id, const char *verb)
{
	struct sv_request *req = sv_request_new(&c->d->route, c->id, c->uid, id, verb);
	if (req)
		c->open_requests++;
	return req;
}

/* Answer a request that could not even be parsed (no request object). */
static void reply_raw_error(struct sv_client *c, json_t *id, const struct sv_error *err)
{
	struct sv_request *req = request_new(c, id, "?");
	if (req)
		sv_reply_error(req, err);
}

/* Refuse req: c may not change anything. Says who may. */
static void deny(struct sv_request *req, const struct sv_client *c)
{
	const struct sv_daemon_opts *o = &c->d->opts;
	char uid[32] = "", group[300] = "";
	if (geteuid() != 0)
		snprintf(uid, sizeof(uid), "%s uid %u", o->socket_group ? "," : " or",
		         (unsigned)geteuid());
	if (o->socket_group)
		snprintf(group, sizeof(group), " or a member of group %s", o->socket_group);
	sv_reply_err(req, "PermissionDenied", "%s needs root%s%s (you are uid %u)",
	             req->verb, uid, group, (unsigned)c->uid);
}

static void dispatch(struct sv_client *c, json_t *msg)
{
	json_t *id = json_object_get(msg, "id"), *args;
	const struct sv_command *cmd;
	struct sv_error err = { 0 };
	if (sv_request_parse(msg, &cmd, &args, &err) < 0) {
		reply_raw_error(c, id, &err);
		return;
	}
	struct sv_request *req = request_new(c, id, cmd->name);
	if (!req)
		return;
	if ((cmd->flags & SV_CMD_MUTATES) && !c->may_mutate) {
		deny(req, c);
		return;
	}
	if (sv_command_check(cmd, args, &err) < 0) {
		sv_reply_error(req, &err);
		return;
	}
	json_t *empty = args ? NULL : json_object();
	sv_command_run(c->d, cmd, req, args ? args : empty);
	json_decref(empty);
}

/* ---- reading ---- */

static int on_request(json_t *msg, void *arg)
{
	struct sv_client *c = arg;
	if (!c->asked) {
		c->asked = true;
		uv_timer_stop(&c->idle);
	}
	if (sv_log_enabled(SV_LOG_DEBUG)) {
		char *s = json_dumps(msg, JSON_COMPACT);
		sv_log(SV_LOG_DEBUG, NULL, "client %llu -> %.400s", c->id, s ? s : "?");
		free(s);
	}
	dispatch(c, msg);
	sv_daemon_trim_later(c->d);   /* what its reply used goes back at rest */
	return c->connected ? 0 : 1;
}

static int on_bad_line(void *arg)
{
	struct sv_client *c = arg;
	struct sv_error err = { 0 };
	sv_error_setc(&err, -EINVAL, "GenericError", "invalid JSON: a request is one JSON "
	              "object per line");
	reply_raw_error(c, NULL, &err);
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
	if (n < 0) {
		/* EOF, or the peer left with our output unread (ECONNRESET):
		 * everything it sent has been read and dispatched. */
		uv_read_stop(s);
		c->eof = true;
		if (n != UV_EOF)
			client_deaf(c, (int)n);
		close_when_answered(c);
		return;
	}
	c->refs++;   /* dispatch may disconnect c */
	int rc = qmp_framer_feed(&c->framer, buf->base, (size_t)n, on_request, c);
	if (rc == -EMSGSIZE) {
		sv_log(SV_LOG_WARN, NULL, "client %llu sent a line over %d bytes; disconnecting",
		       c->id, SV_CONTROL_MAX_LINE);
		struct sv_error err = { 0 };
		sv_error_setc(&err, -EMSGSIZE, "GenericError", "request too large; disconnecting");
		reply_raw_error(c, NULL, &err);
		client_disconnect(c, "oversized request");
	} else if (rc < 0) {
		client_disconnect(c, strerror(-rc));
	}
	client_unref(c);
}

static unsigned idle_timeout(const struct sv_daemon *d)
{
	return d->opts.idle_timeout ? d->opts.idle_timeout : SV_CONTROL_IDLE_TIMEOUT;
}

static void on_idle(uv_timer_t *t)
{
	struct sv_client *c = t->data;
	sv_log(SV_LOG_DEBUG, NULL, "client %llu: no request within %u s; disconnecting", c->id,
	       idle_timeout(c->d));
	client_disconnect(c, "idle");
}

/* ---- accepting ---- */

/* Whether the peer behind fd has group want, as its primary group or as
 * one of its supplementary groups (SO_PEERGROUPS). */
static bool peer_in_group(int fd, gid_t primary, gid_t want)
{
	gid_t small[64], *g = small;
	socklen_t len = sizeof(small);
	bool found = primary == want;
	int rc = found ? -1 : getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len);
	if (rc < 0 && errno == ERANGE && !found && (g = malloc(len)))
		rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len);
	for (size_t i = 0; rc == 0 && i < len / sizeof(gid_t); i++)
		found = found || g[i] == want;
	if (g != small)
		free(g);
	return found;
}

/* Who is connected, from SO_PEERCRED (uid -1 when unknown: no privilege). */
static void read_peer(struct sv_client *c)
{
	const struct sv_daemon_opts *o = &c->d->opts;
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t len = sizeof(cred);
	uv_os_fd_t fd = -1;
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		cred = (struct ucred){ .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->pid = cred.pid;
	c->exempt = c->uid == 0 || c->uid == geteuid();
	c->may_mutate = c->exempt || (o->socket_group && c->uid != (uid_t)-1 &&
	                              peer_in_group(fd, c->gid, o->socket_gid));
}

/* Why c may not be served now, written to why; false when it may. */
static bool over_limit(const struct sv_daemon *d, const struct sv_client *c,
                       char *why, size_t size)
{
	size_t mine = 0;
	if (d->nclients >= d->max_clients) {
		snprintf(why, size, "qsupd serves at most %zu clients at once", d->max_clients);
		return true;
	}
	if (c->exempt)
		return false;
	if (d->nclients >= d->max_clients - SV_CONTROL_RESERVED) {
		snprintf(why, size, "qsupd serves %zu clients; the last %d places are kept "
		         "for root", d->nclients, SV_CONTROL_RESERVED);
		return true;
	}
	for (const struct sv_client *o = d->clients; o; o = o->next)
		mine += o->uid == c->uid;
	if (mine >= SV_CONTROL_MAX_PER_UID) {
		snprintf(why, size, "uid %u already has %d connections, the most for a "
		         "user other than root", (unsigned)c->uid, SV_CONTROL_MAX_PER_UID);
		return true;
	}
	return false;
}

/* Log a refusal; under a flood, one line per 10 s with a count. */
static void log_refusal(struct sv_daemon *d, const struct sv_client *c, const char *why)
{
	uint64_t now = uv_now(d->loop);
	if (now < d->refusal_log_at) {
		d->refusals_unlogged++;
		return;
	}
	char more[64] = "";
	if (d->refusals_unlogged)
		snprintf(more, sizeof(more), " (and %u more in the last 10 s)", d->refusals_unlogged);
	sv_log(SV_LOG_WARN, NULL, "refused a client (uid %u, pid %d): %s%s", (unsigned)c->uid,
	       (int)c->pid, why, more);
	d->refusal_log_at = now + 10000;
	d->refusals_unlogged = 0;
}

/* Tell c why in one line (a fresh socket takes it at once), then close. */
static void client_refuse(struct sv_client *c, const char *why)
{
	size_t n = 0;
	char *text = dump_line(json_pack("{s:{s:s, s:s}}", "error", "class",
	                                 "TooManyConnections", "desc", why), &n);
	if (text) {
		uv_buf_t buf = uv_buf_init(text, (unsigned)n);
		uv_try_write((uv_stream_t *)&c->pipe, &buf, 1);
	}
	free(text);
	log_refusal(c->d, c, why);
	client_close_handles(c);
}

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
	c->refs = 2;   /* the pipe and the timer */
	uv_pipe_init(d->loop, &c->pipe, 0);
	uv_timer_init(d->loop, &c->idle);
	c->pipe.data = c->idle.data = c;
	char why[160];
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
		client_close_handles(c);
		return;
	}
	read_peer(c);
	if (over_limit(d, c, why, sizeof(why))) {
		client_refuse(c, why);
		return;
	}
	c->connected = true;
	c->next = d->clients;
	if (d->clients)
		d->clients->prev = c;
	d->clients = c;
	d->nclients++;
	qmp_framer_init(&c->framer, SV_CONTROL_MAX_LINE);
	c->framer.on_bad_line = on_bad_line;
	sv_log(SV_LOG_DEBUG, NULL, "client %llu: connected (uid %d, pid %d)", c->id,
	       (int)c->uid, (int)c->pid);
	uv_timer_start(&c->idle, on_idle, (uint64_t)idle_timeout(d) * 1000, 0);
	client_send(c, json_pack("{s:{s:s, s:[]}}", "qsup", "version", SV_VERSION,
	                         "capabilities"));
	if (c->connected)
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

/* SV_CONTROL_MAX_CLIENTS, or half the open-file limit when that is lower
 * (the rest is for guests), but room for the reserved places at least. */
static size_t client_cap(void)
{
	struct rlimit rl;
	size_t cap = SV_CONTROL_MAX_CLIENTS;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 2 < cap)
		cap = (size_t)rl.rlim_cur / 2;
	return cap < 2 * SV_CONTROL_RESERVED ? 2 * SV_CONTROL_RESERVED : cap;
}

/* The socket is bound but not listening (connections are refused until
 * then): give it its group and its exact mode. */
static int socket_perms(struct sv_daemon *d, const char *path, mode_t mode,
                        struct sv_error *err)
{
	const struct sv_daemon_opts *o = &d->opts;
	if (o->socket_group && chown(path, (uid_t)-1, o->socket_gid) < 0)
		return sv_error_set(err, -errno, "control socket %s: cannot give it to group %s: "
		                    "%s (qsupd must be root or a member of the group)", path,
		                    o->socket_group, strerror(errno));
	if (chmod(path, mode) < 0)
		return sv_error_set(err, -errno, "control socket %s: chmod %04o: %s", path,
		                    (unsigned)mode, strerror(errno));
	return 0;
}

int sv_control_listen(struct sv_daemon *d, const char *path, struct sv_error *err)
{
	d->route = (struct sv_route){ .answer = route_answer, .answer_line = route_answer_line,
	                              .event = route_event,
	                              .subscribe = route_subscribe, .arg = d,
	                              .deliver = route_deliver,
	                              .finished = route_finished };
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return sv_error_set(err, -ENAMETOOLONG, "control socket path too long: %s", path);
	if (socket_alive(path))
		return sv_error_set(err, -EADDRINUSE, "%s: another qsupd is already listening there", path);
	d->max_clients = client_cap();
	/* Bound and listening under a temporary name, then renamed over the
	 * old one: a client finds either the dead socket of a qsupd that went
	 * away, or this one ready to accept; never no socket at all. */
	char tmp[sizeof(((struct sockaddr_un *)0)->sun_path) + 32];
	int n = snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
	const char *bind_path = n > 0 && (size_t)n < sizeof(((struct sockaddr_un *)0)->sun_path)
	                      ? tmp : path;
	if (bind_path == path)
		unlink(path);
	else
		unlink(tmp);
	uv_pipe_init(d->loop, &d->server, 0);
	d->server.data = d;
	d->server_open = true;
	mode_t mode = d->opts.socket_mode ? d->opts.socket_mode : SV_CONTROL_MODE;
	mode_t old = umask(~mode & 0777);   /* the socket is born with mode */
	int rc = uv_pipe_bind(&d->server, bind_path);
	umask(old);
	if (rc < 0)
		return sv_error_set(err, rc, "control socket %s: %s", bind_path, uv_strerror(rc));
	if ((rc = socket_perms(d, bind_path, mode, err)) < 0 ||
	    (rc = uv_listen((uv_stream_t *)&d->server, 128, on_connection)) < 0) {
		if (bind_path != path)
			unlink(bind_path);
		return rc < 0 && !err->msg[0] ? sv_error_set(err, rc, "control socket %s: %s",
		                                             path, uv_strerror(rc)) : rc;
	}
	if (bind_path != path && rename(bind_path, path) < 0) {
		rc = -errno;
		unlink(bind_path);
		return sv_error_set(err, rc, "control socket %s: %s", path, strerror(-rc));
	}
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
