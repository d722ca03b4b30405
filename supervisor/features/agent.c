/* The QEMU guest agent: see agent.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent.h"
#include "guest.h"
#include "log.h"
#include "qmp_parse.h"
#include "request.h"

#define SYNC_MS 5000            /* guest-sync-delimited's deadline */
#define RETRY_MS 10000          /* no answer yet: sync again */
#define REFRESH_MS 30000        /* answering: the addresses again */
#define STATUS_REFRESH_MS 5000  /* and on a status, when older than this */
#define MAX_LINE (4u << 20)

struct agent_cmd {
	struct agent_cmd *next;
	char *line;             /* what goes on the wire */
	size_t len;
	char name[64];
	bool sync, no_reply;
	json_int_t sync_id;
	uint64_t timeout_ms;
	sv_agent_cb cb;
	void *arg;
};

struct sv_agent {
	uv_pipe_t *pipe;        /* NULL: not connected (nor connecting) */
	bool up;                /* the socket is connected */
	bool synced;            /* the agent answered the last sync */
	bool want_sync;         /* sync even with nothing queued */
	bool seen_ff;           /* this sync's sentinel arrived */
	bool frozen;            /* frozen through qsupd */
	struct qmp_framer fr;
	struct agent_cmd *cur;  /* in flight */
	struct agent_cmd *head, **tail;
	uv_timer_t *deadline, *tick, *thaw;
	json_int_t next_id;
	char version[64];
	json_t *addresses;
	uint64_t addr_asked;    /* uv_now() of the last interfaces request */
};

static void pump(struct sv_guest *g);
static void conn_lost(struct sv_guest *g, const char *why);

static bool has_channel(struct sv_guest *g)
{
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	return p && p->agent;
}

static uv_timer_t *timer_new(struct sv_guest *g)
{
	uv_timer_t *t = malloc(sizeof(*t));
	if (!t)
		return NULL;
	uv_timer_init(g->env->loop, t);
	t->data = g;
	sv_guest_hold(g);
	return t;
}

static void cmd_free(struct agent_cmd *c)
{
	if (c) {
		free(c->line);
		free(c);
	}
}

/* Call c's callback with a failure, then free it. */
static void cmd_fail(struct sv_guest *g, struct agent_cmd *c, int status, const char *desc)
{
	if (c->cb)
		c->cb(g, status, NULL, NULL, desc, c->arg);
	cmd_free(c);
}

/* Fail every queued command (not the one in flight). */
static void fail_queue(struct sv_guest *g, struct sv_agent *a, int status, const char *desc)
{
	while (a->head) {
		struct agent_cmd *c = a->head;
		a->head = c->next;
		if (!a->head)
			a->tail = &a->head;
		cmd_fail(g, c, status, desc);
	}
}

static void agent_free(struct sv_guest *g, int status, const char *why)
{
	struct sv_agent *a = g->agent;
	if (!a)
		return;
	g->agent = NULL;   /* callbacks below find no agent */
	if (a->pipe)
		sv_guest_close_free(g, (uv_handle_t *)a->pipe);
	sv_guest_close_free(g, (uv_handle_t *)a->deadline);
	sv_guest_close_free(g, (uv_handle_t *)a->tick);
	sv_guest_close_free(g, (uv_handle_t *)a->thaw);
	if (a->cur)
		cmd_fail(g, a->cur, status, why);
	fail_queue(g, a, status, why);
	qmp_framer_free(&a->fr);
	json_decref(a->addresses);
	free(a);
}

static void on_tick(uv_timer_t *t);

static struct sv_agent *agent_new(struct sv_guest *g)
{
	struct sv_agent *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->tail = &a->head;
	a->next_id = 1000 + (json_int_t)(uv_hrtime() % 1000000);
	a->addresses = json_array();
	qmp_framer_init(&a->fr, MAX_LINE);
	a->deadline = timer_new(g);
	a->tick = timer_new(g);
	a->thaw = timer_new(g);
	g->agent = a;
	if (!a->deadline || !a->tick || !a->thaw || !a->addresses) {
		uv_timer_t *t[3] = { a->deadline, a->tick, a->thaw };
		for (int i = 0; i < 3; i++)
			if (t[i])
				sv_guest_close_free(g, (uv_handle_t *)t[i]);
		json_decref(a->addresses);
		free(a);
		g->agent = NULL;
		sv_log(SV_LOG_ERR, g->name, "guest agent: out of memory");
		return NULL;
	}
	return a;
}

/* ---- the wire ---- */

struct wreq {
	uv_write_t req;
	struct sv_guest *g;
	char data[];
};

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct sv_guest *g = w->g;
	struct sv_agent *a = g->agent;
	if (a && a->pipe == (uv_pipe_t *)req->handle) {
		if (status < 0) {
			conn_lost(g, uv_strerror(status));
		} else if (a->cur && a->cur->no_reply && a->cur->line == NULL) {
			/* a command that answers nothing: sent is done */
			struct agent_cmd *c = a->cur;
			a->cur = NULL;
			uv_timer_stop(a->deadline);
			if (c->cb)
				c->cb(g, 0, json_null(), NULL, NULL, c->arg);
			cmd_free(c);
			pump(g);
		}
	}
	free(w);
	sv_guest_unhold(g);
}

static int send_bytes(struct sv_guest *g, const char *data, size_t len)
{
	struct sv_agent *a = g->agent;
	struct wreq *w = malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	w->g = g;
	memcpy(w->data, data, len);
	uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
	int rc = uv_write(&w->req, (uv_stream_t *)a->pipe, &b, 1, on_write);
	if (rc < 0) {
		free(w);
		return rc;
	}
	sv_guest_hold(g);
	return 0;
}

static void on_deadline(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	struct sv_agent *a = g->agent;
	if (!a || !a->cur)
		return;
	struct agent_cmd *c = a->cur;
	char desc[160];
	a->cur = NULL;
	/* A late answer may still come: the stream is not to be trusted
	 * until the next sync. */
	bool was = a->synced;
	a->synced = false;
	if (c->timeout_ms % 1000)
		snprintf(desc, sizeof(desc), "the guest agent did not answer %s within %llu ms",
		         c->name, (unsigned long long)c->timeout_ms);
	else
		snprintf(desc, sizeof(desc), "the guest agent did not answer %s within %llu s",
		         c->name, (unsigned long long)(c->timeout_ms / 1000));
	if (was || !c->sync)
		sv_log(SV_LOG_INFO, g->name, "%s", desc);
	if (c->sync)
		fail_queue(g, a, -ETIMEDOUT, desc);
	cmd_fail(g, c, -ETIMEDOUT, desc);
	if (g->agent == a && a->up)
		uv_timer_start(a->tick, on_tick, RETRY_MS, 0);
	pump(g);
}

static void finish_cur(struct sv_guest *g, int status, json_t *ret, const char *cls,
                       const char *desc)
{
	struct sv_agent *a = g->agent;
	struct agent_cmd *c = a->cur;
	a->cur = NULL;
	uv_timer_stop(a->deadline);
	if (c->cb)
		c->cb(g, status, ret, cls, desc, c->arg);
	cmd_free(c);
	pump(g);
}

static void start_cmd(struct sv_guest *g, struct agent_cmd *c)
{
	struct sv_agent *a = g->agent;
	a->cur = c;
	a->seen_ff = false;
	int rc = send_bytes(g, c->line, c->len);
	if (c->no_reply) {   /* on_write finishes it */
		free(c->line);
		c->line = NULL;
	}
	if (rc < 0) {
		conn_lost(g, uv_strerror(rc));
		return;
	}
	uv_timer_start(a->deadline, on_deadline, c->timeout_ms, 0);
}

static struct agent_cmd *cmd_new(const char *command, json_t *args, uint64_t timeout_ms,
                                 sv_agent_cb cb, void *arg, json_int_t sync_id)
{
	struct agent_cmd *c = calloc(1, sizeof(*c));
	json_t *msg = json_pack("{s:s}", "execute", command);
	if (!c || !msg) {
		free(c);
		json_decref(msg);
		json_decref(args);
		return NULL;
	}
	if (args)
		json_object_set_new(msg, "arguments", args);
	char *text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text || asprintf(&c->line, "%s%s\n", sync_id ? "\xff" : "", text) < 0) {
		free(text);
		free(c);
		return NULL;
	}
	free(text);
	c->len = strlen(c->line);
	snprintf(c->name, sizeof(c->name), "%s", command);
	c->timeout_ms = timeout_ms ? timeout_ms : SV_AGENT_TIMEOUT_MS;
	c->cb = cb;
	c->arg = arg;
	c->sync = sync_id != 0;
	c->sync_id = sync_id;
	c->no_reply = !strcmp(command, "guest-shutdown") ||
	              !strncmp(command, "guest-suspend-", 14);
	return c;
}

static void on_synced(struct sv_guest *g, int status, json_t *ret, const char *cls,
                      const char *desc, void *arg);

static void pump(struct sv_guest *g)
{
	struct sv_agent *a = g->agent;
	if (!a || !a->up || a->cur)
		return;
	if (!a->synced) {
		if (!a->head && !a->want_sync)
			return;
		if (uv_stream_get_write_queue_size((uv_stream_t *)a->pipe) > 0) {
			/* QEMU reads the channel only while the guest has the
			 * port open: no agent, nothing drains it. Never pile up
			 * syncs there, and never keep a command waiting on it. */
			fail_queue(g, a, -ETIMEDOUT, "the guest agent's channel does not drain: "
			           "no agent reads it");
			return;
		}
		a->want_sync = false;
		json_int_t id = a->next_id++;
		struct agent_cmd *c = cmd_new("guest-sync-delimited", json_pack("{s:I}", "id", id),
		                              SYNC_MS, on_synced, NULL, id);
		if (!c) {
			fail_queue(g, a, -ENOMEM, "out of memory");
			return;
		}
		start_cmd(g, c);
		return;
	}
	struct agent_cmd *c = a->head;
	if (!c)
		return;
	a->head = c->next;
	if (!a->head)
		a->tail = &a->head;
	start_cmd(g, c);
}

/* One line from the agent. */
static int on_line(json_t *msg, void *arg)
{
	struct sv_guest *g = arg;
	struct sv_agent *a = g->agent;
	struct agent_cmd *c = a ? a->cur : NULL;
	if (!c || c->no_reply)
		return 0;   /* stale: nobody asked */
	json_t *ret = json_object_get(msg, "return");
	if (c->sync) {
		if (a->seen_ff && json_is_integer(ret) && json_integer_value(ret) == c->sync_id)
			finish_cur(g, 0, ret, NULL, NULL);
		return 0;   /* anything else is from before the sync */
	}
	switch (qmp_msg_kind(msg)) {
	case QMP_MSG_RETURN:
		finish_cur(g, 0, ret, NULL, NULL);
		break;
	case QMP_MSG_ERROR: {
		json_t *e = json_object_get(msg, "error");
		finish_cur(g, -EREMOTEIO, NULL, json_string_value(json_object_get(e, "class")),
		           json_string_value(json_object_get(e, "desc")));
		break;
	}
	default:
		break;
	}
	return 0;
}

static int on_bad_line(void *arg)
{
	(void)arg;
	return 0;   /* not JSON: dropped (a sync sorts the stream out) */
}

static void feed(struct sv_guest *g, const char *p, size_t n)
{
	while (n > 0 && g->agent) {
		struct sv_agent *a = g->agent;
		const char *ff = memchr(p, 0xff, n);
		size_t len = ff ? (size_t)(ff - p) : n;
		bool syncing = a->cur && a->cur->sync;
		if (len && (!syncing || a->seen_ff)) {
			int rc = qmp_framer_feed(&a->fr, p, len, on_line, g);
			if (rc < 0 && g->agent == a) {
				sv_log(SV_LOG_WARN, g->name, "guest agent: %s", strerror(-rc));
				qmp_framer_free(&a->fr);
				qmp_framer_init(&a->fr, MAX_LINE);
				a->fr.on_bad_line = on_bad_line;
				a->synced = false;
			}
		}
		if (!ff)
			return;
		/* The sentinel: whatever was half-read before it is stale. */
		if (g->agent) {
			a = g->agent;
			qmp_framer_free(&a->fr);
			qmp_framer_init(&a->fr, MAX_LINE);
			a->fr.on_bad_line = on_bad_line;
			a->seen_ff = true;
		}
		p = ff + 1;
		n -= len + 1;
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	(void)hint;
	buf->base = malloc(65536);
	buf->len = buf->base ? 65536 : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct sv_guest *g = s->data;
	if (nread > 0)
		feed(g, buf->base, (size_t)nread);
	else if (nread < 0)
		conn_lost(g, nread == UV_EOF ? "closed by QEMU" : uv_strerror((int)nread));
	free(buf->base);
}

/* The socket closed: everything waiting fails; the tick reconnects while
 * QEMU runs. */
static void conn_lost(struct sv_guest *g, const char *why)
{
	struct sv_agent *a = g->agent;
	char desc[160];
	if (!a || !a->pipe)
		return;
	sv_log(SV_LOG_INFO, g->name, "guest agent channel lost: %s", why);
	snprintf(desc, sizeof(desc), "the guest agent's connection closed: %s", why);
	sv_guest_close_free(g, (uv_handle_t *)a->pipe);
	a->pipe = NULL;
	a->up = a->synced = false;
	uv_timer_stop(a->deadline);
	if (a->cur) {
		struct agent_cmd *c = a->cur;
		a->cur = NULL;
		cmd_fail(g, c, -EPIPE, desc);
	}
	if (g->agent == a)
		fail_queue(g, a, -EPIPE, desc);
	if (g->agent == a)
		uv_timer_start(a->tick, on_tick, RETRY_MS, 0);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct sv_guest *g = req->data;
	struct sv_agent *a = g->agent;
	uv_pipe_t *pipe = (uv_pipe_t *)req->handle;
	free(req);
	if (a && a->pipe == pipe) {
		if (status < 0) {
			sv_log(SV_LOG_DEBUG, g->name, "guest agent channel: %s", uv_strerror(status));
			sv_guest_close_free(g, (uv_handle_t *)a->pipe);
			a->pipe = NULL;
			uv_timer_start(a->tick, on_tick, RETRY_MS, 0);
		} else if (uv_read_start((uv_stream_t *)pipe, on_alloc, on_read) < 0) {
			conn_lost(g, "cannot read");
		} else {
			sv_log(SV_LOG_DEBUG, g->name, "guest agent channel connected");
			a->up = true;
			a->want_sync = true;
			qmp_framer_free(&a->fr);
			qmp_framer_init(&a->fr, MAX_LINE);
			a->fr.on_bad_line = on_bad_line;
			pump(g);
		}
	}
	sv_guest_unhold(g);
}

static void agent_connect(struct sv_guest *g)
{
	struct sv_agent *a = g->agent;
	char path[4200];
	if (!a || a->pipe)
		return;
	snprintf(path, sizeof(path), "%s/agent.sock", g->rundir);
	uv_pipe_t *pipe = malloc(sizeof(*pipe));
	uv_connect_t *req = malloc(sizeof(*req));
	if (!pipe || !req) {
		free(pipe);
		free(req);
		return;
	}
	uv_pipe_init(g->env->loop, pipe, 0);
	pipe->data = g;
	sv_guest_hold(g);
	a->pipe = pipe;
	req->data = g;
	sv_guest_hold(g);
	uv_pipe_connect(req, pipe, path, on_connect);
}

/* ---- what qsupd asks by itself ---- */

static void on_info(struct sv_guest *g, int status, json_t *ret, const char *cls,
                    const char *desc, void *arg)
{
	(void)cls;
	(void)arg;
	struct sv_agent *a = g->agent;
	if (!a)
		return;
	if (status < 0) {
		sv_log(SV_LOG_DEBUG, g->name, "guest agent: guest-info: %s", desc ? desc : "");
		return;
	}
	const char *v = json_string_value(json_object_get(ret, "version"));
	if (v && strcmp(v, a->version))
		sv_log(SV_LOG_INFO, g->name, "guest agent %s answers", v);
	snprintf(a->version, sizeof(a->version), "%s", v ? v : "");
}

static void on_ifaces(struct sv_guest *g, int status, json_t *ret, const char *cls,
                      const char *desc, void *arg);

/* Ask for the guest's addresses (its answer updates the status). */
static void ask_addresses(struct sv_guest *g)
{
	if (sv_agent_command(g, "guest-network-get-interfaces", NULL, 0, on_ifaces, NULL) == 0)
		g->agent->addr_asked = uv_now(g->env->loop);
}

static void on_ifaces(struct sv_guest *g, int status, json_t *ret, const char *cls,
                      const char *desc, void *arg)
{
	(void)cls;
	(void)arg;
	struct sv_agent *a = g->agent;
	size_t i, j;
	json_t *ifc, *ip;
	if (!a)
		return;
	if (status < 0) {
		sv_log(SV_LOG_DEBUG, g->name, "guest agent: guest-network-get-interfaces: %s",
		       desc ? desc : "");
		return;
	}
	json_t *list = json_array();
	json_array_foreach(ret, i, ifc) {
		const char *name = json_string_value(json_object_get(ifc, "name"));
		if (!name || !strcmp(name, "lo"))
			continue;
		json_array_foreach(json_object_get(ifc, "ip-addresses"), j, ip) {
			const char *addr = json_string_value(json_object_get(ip, "ip-address"));
			const char *type = json_string_value(json_object_get(ip, "ip-address-type"));
			json_t *prefix = json_object_get(ip, "prefix");
			if (!addr || !type || !strncasecmp(addr, "fe80:", 5) ||
			    !strncmp(addr, "127.", 4) || !strcmp(addr, "::1"))
				continue;
			json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:s}", "interface",
			                      name, "address", addr, "prefix",
			                      (json_int_t)json_integer_value(prefix), "family",
			                      type));
		}
	}
	json_decref(a->addresses);
	a->addresses = list;
}

static void on_thawed(struct sv_guest *g, int status, json_t *ret, const char *cls,
                      const char *desc, void *arg);

static void on_fsstatus(struct sv_guest *g, int status, json_t *ret, const char *cls,
                        const char *desc, void *arg)
{
	(void)cls;
	(void)desc;
	(void)arg;
	struct sv_agent *a = g->agent;
	const char *st = json_string_value(ret);
	if (!a || status < 0 || !st || strcmp(st, "frozen") || a->frozen)
		return;
	/* Frozen, and not by this qsupd: by one that died holding it. */
	sv_log(SV_LOG_WARN, g->name, "the guest's file systems are frozen, not by this qsupd: "
	       "thawing them");
	sv_agent_command(g, "guest-fsfreeze-thaw", NULL, 0, on_thawed, NULL);
}

static void on_synced(struct sv_guest *g, int status, json_t *ret, const char *cls,
                      const char *desc, void *arg)
{
	(void)ret;
	(void)cls;
	(void)desc;
	(void)arg;
	struct sv_agent *a = g->agent;
	if (!a || status < 0)
		return;
	a->synced = true;
	/* The version, whether it is frozen, the addresses: once per sync. */
	sv_agent_command(g, "guest-info", NULL, 0, on_info, NULL);
	sv_agent_command(g, "guest-fsfreeze-status", NULL, 0, on_fsstatus, NULL);
	ask_addresses(g);
	uv_timer_start(a->tick, on_tick, REFRESH_MS, 0);
}

static void on_tick(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	struct sv_agent *a = g->agent;
	if (!a || !sv_guest_active(g))
		return;
	if (!a->pipe) {
		agent_connect(g);
	} else if (a->up && !a->synced) {
		a->want_sync = true;
		pump(g);
		uv_timer_start(a->tick, on_tick, RETRY_MS, 0);
	} else if (a->up) {
		ask_addresses(g);
		uv_timer_start(a->tick, on_tick, REFRESH_MS, 0);
	}
}

/* ---- the API ---- */

int sv_agent_command(struct sv_guest *g, const char *command, json_t *args,
                     uint64_t timeout_ms, sv_agent_cb cb, void *arg)
{
	struct sv_agent *a = g->agent;
	if (!strcmp(command, "guest-sync") || !strcmp(command, "guest-sync-delimited")) {
		json_decref(args);
		return -EPERM;
	}
	if (!a || !a->up) {
		json_decref(args);
		return -ENOTCONN;
	}
	struct agent_cmd *c = cmd_new(command, args, timeout_ms, cb, arg, 0);
	if (!c)
		return -ENOMEM;
	*a->tail = c;
	a->tail = &c->next;
	pump(g);
	return 0;
}

bool sv_agent_connected(struct sv_guest *g)
{
	return g->agent && g->agent->up && g->agent->synced;
}

struct fz {
	sv_agent_cb cb;
	void *arg;
};

static void on_thaw_deadline(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	if (!g->agent || !g->agent->frozen)
		return;
	sv_log(SV_LOG_WARN, g->name, "the guest's file systems have been frozen for %d s: "
	       "thawing them", SV_AGENT_FREEZE_MAX_MS / 1000);
	if (sv_agent_thaw(g, NULL, NULL) < 0)
		g->agent->frozen = false;
}

static void on_thawed(struct sv_guest *g, int status, json_t *ret, const char *cls,
                      const char *desc, void *arg)
{
	struct fz *f = arg;
	if (g->agent && status == 0) {
		g->agent->frozen = false;
		uv_timer_stop(g->agent->thaw);
		sv_log(SV_LOG_INFO, g->name, "guest file systems thawed (%lld)",
		       (long long)json_integer_value(ret));
	} else if (status < 0) {
		sv_log(SV_LOG_WARN, g->name, "guest-fsfreeze-thaw: %s", desc ? desc : "failed");
	}
	if (f && f->cb)
		f->cb(g, status, ret, cls, desc, f->arg);
	free(f);
}

static void on_frozen(struct sv_guest *g, int status, json_t *ret, const char *cls,
                      const char *desc, void *arg)
{
	struct fz *f = arg;
	struct sv_agent *a = g->agent;
	if (a && status == 0) {
		a->frozen = true;
		uv_timer_start(a->thaw, on_thaw_deadline, SV_AGENT_FREEZE_MAX_MS, 0);
		sv_log(SV_LOG_INFO, g->name, "guest file systems frozen (%lld)",
		       (long long)json_integer_value(ret));
	} else if (a && status < 0) {
		/* It may have frozen some: thaw, whatever the answer. */
		sv_log(SV_LOG_WARN, g->name, "guest-fsfreeze-freeze: %s; thawing",
		       desc ? desc : "failed");
		a->frozen = true;
		sv_agent_thaw(g, NULL, NULL);
	}
	if (f->cb)
		f->cb(g, status, ret, cls, desc, f->arg);
	free(f);
}

static int fz_command(struct sv_guest *g, const char *command, uint64_t timeout_ms,
                      sv_agent_cb done, sv_agent_cb cb, void *arg)
{
	struct fz *f = malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->cb = cb;
	f->arg = arg;
	int rc = sv_agent_command(g, command, NULL, timeout_ms, done, f);
	if (rc < 0)
		free(f);
	return rc;
}

int sv_agent_freeze(struct sv_guest *g, sv_agent_cb cb, void *arg)
{
	return fz_command(g, "guest-fsfreeze-freeze", SV_AGENT_FREEZE_TIMEOUT_MS, on_frozen,
	                  cb, arg);
}

int sv_agent_thaw(struct sv_guest *g, sv_agent_cb cb, void *arg)
{
	return fz_command(g, "guest-fsfreeze-thaw", SV_AGENT_FREEZE_TIMEOUT_MS, on_thawed,
	                  cb, arg);
}

/* ---- the agent verb ---- */

static void on_verb(struct sv_guest *g, int status, json_t *ret, const char *cls,
                    const char *desc, void *arg)
{
	struct sv_request *req = arg;
	if (status == 0)
		sv_reply_ok(req, json_is_null(ret) ? json_object() : json_incref(ret));
	else if (status == -EREMOTEIO)
		sv_reply_err(req, "AgentError", "%s: guest agent: %s%s%s", g->name,
		             cls ? cls : "", cls ? ": " : "", desc ? desc : "error");
	else if (status == -ETIMEDOUT)
		sv_reply_err(req, "AgentTimeout", "%s: %s", g->name, desc ? desc : "timed out");
	else
		sv_reply_err(req, "AgentNotConnected", "%s: %s", g->name, desc ? desc
		             : strerror(-status));
}

void sv_agent_verb(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *cmd = json_string_value(json_object_get(args, "command"));
	json_t *cargs = json_object_get(args, "arguments");
	json_t *tmo = json_object_get(args, "timeout");
	uint64_t timeout = 0;
	int rc;

	if (!cmd || !*cmd || (cargs && !json_is_object(cargs)) ||
	    (tmo && (!json_is_integer(tmo) || json_integer_value(tmo) <= 0 ||
	             json_integer_value(tmo) > 3600000))) {
		sv_reply_err(req, "InvalidArgument", "agent needs {\"name\", \"command\": string, "
		             "\"arguments\": optional object, \"timeout\": optional milliseconds "
		             "(1 to 3600000)}");
		return;
	}
	if (tmo)
		timeout = (uint64_t)json_integer_value(tmo);
	if (!has_channel(g)) {
		sv_reply_err(req, "AgentNotConnected", "%s has no guest agent channel (set "
		             "[guest] agent = yes in its profile, then restart it)", g->name);
		return;
	}
	if (!sv_guest_active(g) || !g->agent) {
		sv_reply_err(req, "AgentNotConnected", "%s is not running: no guest agent",
		             g->name);
		return;
	}
	if (!strcmp(cmd, "guest-fsfreeze-freeze") && !cargs)
		rc = fz_command(g, cmd, timeout ? timeout : SV_AGENT_FREEZE_TIMEOUT_MS, on_frozen,
		                on_verb, req);
	else if (!strcmp(cmd, "guest-fsfreeze-thaw") && !cargs)
		rc = fz_command(g, cmd, timeout ? timeout : SV_AGENT_FREEZE_TIMEOUT_MS, on_thawed,
		                on_verb, req);
	else
		rc = sv_agent_command(g, cmd, cargs ? json_incref(cargs) : NULL, timeout, on_verb,
		                      req);
	if (rc == -EPERM)
		sv_reply_err(req, "InvalidArgument", "%s is qsupd's own: it keeps the agent's "
		             "stream in sync itself", cmd);
	else if (rc == -ENOTCONN)
		sv_reply_err(req, "AgentNotConnected", "%s: the guest agent channel is not "
		             "connected yet", g->name);
	else if (rc < 0)
		sv_reply_err(req, "GenericError", "%s: %s", g->name, strerror(-rc));
}

/* ---- the observer ---- */

static bool obs_qmp_ready(struct sv_guest *g, void (*done)(struct sv_guest *g))
{
	(void)done;
	if (has_channel(g) && !g->agent && agent_new(g))
		agent_connect(g);
	return false;
}

static void obs_adopted(struct sv_guest *g)
{
	if (has_channel(g) && sv_guest_active(g) && !g->agent && agent_new(g))
		agent_connect(g);
}

static void obs_event(struct sv_guest *g, const char *name, json_t *data)
{
	struct sv_agent *a = g->agent;
	const char *id = json_string_value(json_object_get(data, "id"));
	if (!a || strcmp(name, "VSERPORT_CHANGE") || !id || strcmp(id, "agent.port"))
		return;
	if (json_is_true(json_object_get(data, "open"))) {
		/* The agent (re)opened its port: a new agent, perhaps. */
		sv_log(SV_LOG_DEBUG, g->name, "the guest opened the agent's port");
		if (!a->cur || !a->cur->sync)
			a->synced = false;
		a->want_sync = true;
		pump(g);
	} else {
		sv_log(SV_LOG_INFO, g->name, "the guest closed the agent's port");
		a->synced = false;
		a->frozen = false;
	}
}

static void obs_gone(struct sv_guest *g)
{
	agent_free(g, -EPIPE, "QEMU is gone");
}

static void obs_release(struct sv_guest *g)
{
	agent_free(g, -ECANCELED, "qsupd is letting the guest go");
}

static bool obs_shutdown(struct sv_guest *g)
{
	return sv_agent_connected(g) &&
	       sv_agent_command(g, "guest-shutdown", NULL, 0, NULL, NULL) == 0;
}

static void obs_status(struct sv_guest *g, json_t *st)
{
	struct sv_agent *a = g->agent;
	/* Someone looks: the addresses again, for the next look (at most
	 * every STATUS_REFRESH_MS, never behind other commands). */
	if (a && sv_agent_connected(g) && !a->cur && !a->head &&
	    uv_now(g->env->loop) - a->addr_asked >= STATUS_REFRESH_MS)
		ask_addresses(g);
	json_object_set_new(st, "agent", json_pack("{s:b, s:b, s:o, s:b}", "channel",
	                    has_channel(g), "connected", sv_agent_connected(g), "version",
	                    a && a->version[0] ? json_string(a->version) : json_null(),
	                    "frozen", a && a->frozen));
	json_object_set_new(st, "guest_addresses", a && a->addresses && sv_guest_active(g)
	                    ? json_incref(a->addresses) : json_array());
}

const struct sv_guest_observer sv_agent_observer = {
	.name = "agent",
	.qmp_ready = obs_qmp_ready,
	.adopted = obs_adopted,
	.event = obs_event,
	.qemu_gone = obs_gone,
	.start_failed = obs_gone,
	.guest_shutdown = obs_shutdown,
	.status = obs_status,
	.release = obs_release,
};

/* ---- a freeze around a storage operation ---- */

static void on_freeze_thawed(struct sv_guest *g, int status, json_t *ret, const char *cls,
                             const char *desc, void *arg)
{
	(void)ret, (void)cls;
	if (status < 0)
		sv_log(SV_LOG_WARN, g->name, "%s: thaw: %s (qsupd thaws the guest within %d s "
		       "of the freeze in any case)", (const char *)arg, desc ? desc
		       : strerror(-status), SV_AGENT_FREEZE_MAX_MS / 1000);
}

static void on_freeze_frozen(struct sv_guest *g, int status, json_t *ret, const char *cls,
                             const char *desc, void *arg)
{
	struct sv_freeze *f = arg;
	(void)g, (void)cls;
	if (status == 0) {
		f->frozen = true;
		snprintf(f->buf, sizeof(f->buf), "frozen (%lld file system%s, through the guest "
		         "agent)", (long long)json_integer_value(ret),
		         json_integer_value(ret) == 1 ? "" : "s");
	} else {
		snprintf(f->buf, sizeof(f->buf), "the guest agent did not freeze (%s): not frozen",
		         desc ? desc : strerror(-status));
	}
	f->how = f->buf;
	f->go(f->arg);
}

void sv_freeze_begin(struct sv_guest *g, struct sv_freeze *f, bool paused, const char *what,
                     void (*go)(void *arg), void *arg)
{
	f->what = what;
	f->go = go;
	f->arg = arg;
	f->frozen = false;
	/* A paused guest writes nothing meanwhile (and its agent would not
	 * answer). */
	if (paused || g->state != SV_RUNNING) {
		f->how = "the guest is paused: not needed";
		go(arg);
		return;
	}
	if (sv_agent_connected(g) && sv_agent_freeze(g, on_freeze_frozen, f) == 0)
		return;
	f->how = "no guest agent connected: not frozen";
	go(arg);
}

void sv_freeze_end(struct sv_guest *g, struct sv_freeze *f)
{
	if (!f->frozen)
		return;
	f->frozen = false;
	sv_agent_thaw(g, on_freeze_thawed, (void *)f->what);
}
