/*
 * The control verbs (see qsupd(8), CONTROL PROTOCOL): one handler each, one
 * table. A handler checks its arguments, then answers now or hands the
 * request to the guest, which answers when the operation is over.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "argv.h"
#include "clone.h"
#include "commands.h"
#include "control.h"
#include "jsonout.h"
#include "log.h"
#include "request.h"
#include "daemon.h"
#include "display.h"
#include "guest.h"
#include "hotplug.h"
#include "managed.h"
#include "media.h"
#include "snapshot.h"
#include "backup.h"
#include "logview.h"
#include "metrics.h"
#include "migrate.h"
#include "netmgr.h"
#include "passthrough.h"
#include "resize.h"
#include "tune.h"

/* The guest named by args.name, or NULL after answering req. */
static struct sv_guest *guest_arg(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	json_t *name = json_object_get(args, "name");
	if (!json_is_string(name)) {
		sv_reply_err(req, "InvalidArgument", "%s needs {\"name\": string}", req->verb);
		return NULL;
	}
	struct sv_guest *g = sv_daemon_guest(d, json_string_value(name));
	if (!g)
		sv_reply_err(req, "NotFound", "no profile named %.64s", json_string_value(name));
	return g;
}


/* Answer req with the error of a guest operation that failed at once: rc
 * is the operation's word on the code, err its class and message. */
static void reply_failed(struct sv_request *req, int rc, struct sv_error *err)
{
	err->code = rc;
	sv_reply_error(req, err);
}

static void cmd_list(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_jsonbuf b = { 0 };
	size_t len;
	(void)args;
	/* An element at a time, each guest's tree freed before the next is
	 * made: 200 guests' trees at once (a few thousand small objects) cost
	 * more in malloc than the writing, and the heap a peak. */
	sv_jsonbuf_put(&b, "[", 1);
	for (size_t i = 0; i < d->nguests; i++) {
		json_t *st = sv_guest_status(d->guests[i]);
		json_object_set_new(st, "adopting", json_boolean(d->guests[i]->adopting));
		if (i)
			sv_jsonbuf_put(&b, ",", 1);
		sv_jsonbuf_value(&b, st);
		json_decref(st);
	}
	sv_jsonbuf_put(&b, "]", 1);
	char *text = sv_jsonbuf_take(&b, &len);
	sv_reply_ok_text(req, text, len);
}

static json_t *guest_addresses(struct sv_daemon *d, struct sv_guest *g);

/* What the daemon adds to a guest's status: its managed save, and when the
 * operator stopped it. */
static json_t *status_of(struct sv_daemon *d, struct sv_guest *g)
{
	json_t *st = sv_guest_status(g);
	char path[4200];
	/* QMP not yet back after a qsupd restart (state "starting"). */
	json_object_set_new(st, "adopting", json_boolean(g->adopting));
	sv_managed_path(d, g->name, path, sizeof(path));
	json_object_set_new(st, "saved_state", sv_managed_exists(d, g->name)
	                    ? json_string(path) : json_null());
	json_t *op = json_null();
	if (g->operator_stop_ms && !sv_guest_active(g)) {
		char when[40];
		time_t t = (time_t)(g->operator_stop_ms / 1000);
		struct tm tm;
		if (gmtime_r(&t, &tm) && strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
			op = json_string(when);
	}
	json_object_set_new(st, "operator_stop", op);
	json_object_set_new(st, "addresses", guest_addresses(d, g));
	return st;
}

static void cmd_status(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_guest *g = guest_arg(d, req, args);
	if (g)
		sv_reply_ok(req, status_of(d, g));
}

/* ---- managed networks (netmgr.h) ---- */


/* Does g (running, or on its way) use network name? */
static bool uses_network(const struct sv_guest *g, const char *name)
{
	const struct sv_profile *p = sv_guest_profile_now(g);
	if (!p || !(sv_guest_active(g) || g->prepping))
		return false;
	for (size_t i = 0; i < p->nnics; i++)
		if (p->nics[i].type == SV_NIC_NETWORK && !strcmp(p->nics[i].network, name))
			return true;
	/* and the NICs hot-plugged on it */
	json_t *devs = sv_hotplug_list((struct sv_guest *)g), *v;
	size_t i;
	bool used = false;
	json_array_foreach(devs, i, v) {
		const char *net = json_string_value(json_object_get(v, "network"));
		used |= net && !strcmp(net, name);
	}
	json_decref(devs);
	return used;
}

static json_t *net_guests(struct sv_daemon *d, const char *name)
{
	json_t *a = json_array();
	for (size_t i = 0; i < d->nguests; i++)
		if (uses_network(d->guests[i], name))
			json_array_append_new(a, json_string(d->guests[i]->name));
	return a;
}

/* The guest and NIC whose MAC is mac, on network name ("" when none). */
static json_t *guest_by_mac(struct sv_daemon *d, const char *mac)
{
	uint8_t m[6];
	if (sv_mac_parse(mac, m) < 0)
		return json_null();
	for (size_t i = 0; i < d->nguests; i++) {
		const struct sv_profile *p = sv_guest_profile_now(d->guests[i]);
		for (size_t j = 0; p && j < p->nnics; j++)
			if (!memcmp(p->nics[j].mac, m, 6))
				return json_string(d->guests[i]->name);
	}
	return json_null();
}

/* The addresses of g's type = network NICs, from the networks' leases. */
static json_t *guest_addresses(struct sv_daemon *d, struct sv_guest *g)
{
	const struct sv_profile *p = sv_guest_profile_now(g);
	json_t *a = json_array();
	for (size_t i = 0; p && i < p->nnics; i++) {
		const struct sv_nic *n = &p->nics[i];
		struct sv_net *net = n->type == SV_NIC_NETWORK
		                     ? sv_netmgr_find(d->netmgr, n->network) : NULL;
		const char *ip = net ? sv_net_lease_ip(net, n->mac) : NULL;
		char mac[18];
		if (!ip)
			continue;
		sv_mac_format(n->mac, mac);
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s}", "nic", n->id,
		                      "network", n->network, "mac", mac, "ip", ip));
	}
	/* hot-plugged NICs on managed networks: their MAC given, or the
	 * stable one (as attach chose it) */
	json_t *devs = sv_hotplug_list(g), *v;
	size_t i;
	json_array_foreach(devs, i, v) {
		const char *net = json_string_value(json_object_get(v, "network"));
		const char *id = json_string_value(json_object_get(v, "id"));
		const char *given = json_string_value(json_object_get(v, "mac"));
		struct sv_net *nn = sv_netmgr_find(d->netmgr, net);
		uint8_t m[6];
		char mac[18];
		if (!nn || !id)
			continue;
		if (!given || sv_mac_parse(given, m) < 0)
			sv_mac_stable(g->name, id, m);
		const char *ip = sv_net_lease_ip(nn, m);
		if (!ip)
			continue;
		sv_mac_format(m, mac);
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s}", "nic", id,
		                      "network", net, "mac", mac, "ip", ip));
	}
	json_decref(devs);
	return a;
}

static struct sv_net *net_arg(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	const char *name = json_string_value(json_object_get(args, "name"));
	struct sv_net *n;
	if (!name) {
		sv_reply_err(req, "InvalidArgument", "%s needs {\"name\": string}", req->verb);
		return NULL;
	}
	if (!(n = sv_netmgr_find(d->netmgr, name)))
		sv_reply_err(req, "NotFound", "no network named %.64s (no %.64s.ini in %s)",
		             name, name, d->netmgr ? sv_netmgr_dir(d->netmgr) : "the networks dir");
	return n;
}

static json_t *net_entry(struct sv_daemon *d, struct sv_net *n, bool leases)
{
	json_t *o = sv_net_json(n, leases);
	json_t *l = json_object_get(o, "leases");
	size_t i;
	json_t *v;
	json_object_set_new(o, "guests", net_guests(d, sv_net_def(n)->name));
	json_array_foreach(l, i, v)
		json_object_set_new(v, "guest", guest_by_mac(d, json_string_value(
		                    json_object_get(v, "mac"))));
	return o;
}

static void cmd_net_list(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	(void)args;
	json_t *list = json_array();
	for (size_t i = 0; i < sv_netmgr_count(d->netmgr); i++)
		json_array_append_new(list, net_entry(d, sv_netmgr_at(d->netmgr, i), false));
	sv_reply_ok(req, list);
}

static void cmd_net_status(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_net *n = net_arg(d, req, args);
	if (n)
		sv_reply_ok(req, net_entry(d, n, true));
}

struct net_req {
	struct sv_daemon *d;
	struct sv_request *req;
	struct sv_net *n;
};

static void net_done(void *arg, int rc, const char *msg)
{
	struct net_req *r = arg;
	if (rc < 0)
		sv_reply_err(r->req, rc == -EBUSY ? "InvalidState" : "GenericError", "%s",
		             msg ? msg : strerror(-rc));
	else
		sv_reply_ok(r->req, net_entry(r->d, r->n, false));
	free(r);
}

static void cmd_net_start_stop(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_net *n = net_arg(d, req, args);
	bool stop = !strcmp(req->verb, "net-stop");
	struct net_req *r;
	if (!n)
		return;
	if (stop) {
		json_t *users = net_guests(d, sv_net_def(n)->name);
		if (json_array_size(users)) {
			char *list = json_dumps(users, JSON_COMPACT);
			sv_reply_err(req, "InvalidState", "network %s is in use by %s; stop "
			             "%s first", sv_net_def(n)->name, list ? list : "guests",
			             json_array_size(users) == 1 ? "it" : "them");
			free(list);
			json_decref(users);
			return;
		}
		json_decref(users);
		/* a network that is down is taken down all the same: what a failed
		 * start left (a bridge, a table) goes too */
	}
	if (!(r = malloc(sizeof(*r)))) {
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	*r = (struct net_req){ d, req, n };
	if (stop)
		sv_net_down(n, net_done, r);
	else
		sv_net_up(n, net_done, r);
}

static void cmd_start(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_guest *g = guest_arg(d, req, args);
	struct sv_error err = { 0 };
	int rc;
	if (!g)
		return;
	/* The operator's start is a fresh beginning: a failed guest is re-armed,
	 * one waiting in backoff starts now. */
	if (sv_state_start_rearms(g->state))
		sv_restart_rearm(&g->rs);
	g->operator_stop_ms = 0;
	/* Up or starting: "already"; else from a managed save or afresh. */
	if (sv_state_is_up(g->state) || g->state == SV_STARTING)
		rc = sv_guest_start_op(g, req, &err);
	else
		rc = sv_managed_start(d, g, req, &err);
	if (rc < 0)
		reply_failed(req, rc, &err);
}

static void cmd_reset_failed(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_guest *g = guest_arg(d, req, args);
	if (g)
		sv_guest_reset_failed(g, req);
}

/* The operator stopped g (stop, kill): remembered until the next boot or
 * an explicit start, so that autostart does not undo it (qsupd(8)). */
static void operator_stopped(struct sv_guest *g)
{
	uv_timeval64_t tv;
	uv_gettimeofday(&tv);
	g->operator_stop_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
	sv_guest_persist(g);
}

static void cmd_stop(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	json_t *force = json_object_get(args, "force");   /* checked: a boolean */
	json_t *timeout = json_object_get(args, "timeout");   /* checked: seconds > 0 */
	struct sv_guest *g = guest_arg(d, req, args);
	struct sv_error err = { 0 };
	int rc;
	if (!g)
		return;
	operator_stopped(g);
	if ((rc = sv_guest_stop(g, json_is_true(force), (uint64_t)json_integer_value(timeout) * 1000,
	                        req, &err)) < 0)
		reply_failed(req, rc, &err);
}

/* A verb that is one guest operation answering req itself (or failing now);
 * stopped: the operator stopped the guest (true) or wants it up (false). */
static void guest_op(struct sv_daemon *d, struct sv_request *req, json_t *args, bool stopped,
                     int (*op)(struct sv_guest *, struct sv_request *, struct sv_error *))
{
	struct sv_guest *g = guest_arg(d, req, args);
	struct sv_error err = { 0 };
	int rc;
	if (!g)
		return;
	if (stopped)
		operator_stopped(g);
	else
		g->operator_stop_ms = 0;
	if ((rc = op(g, req, &err)) < 0)
		reply_failed(req, rc, &err);
}

static void cmd_kill(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	guest_op(d, req, args, true, sv_guest_kill);
}

static void cmd_restart(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	guest_op(d, req, args, false, sv_guest_restart);
}

/* save and restore: without a file, the guest's managed save (managed.h). */
static void cmd_save(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_guest *g = guest_arg(d, req, args);
	if (!g || sv_snapshot_refuse(g, req))
		return;
	if (json_object_get(args, "file")) {
		sv_command_find(req->verb)->on_guest(g, req, args);
		return;
	}
	if (strcmp(req->verb, "restore") == 0) {
		if (!sv_managed_exists(d, g->name))
			sv_reply_err(req, "NotFound", "%s has no saved state (save it first, or "
			             "give a file)", g->name);
		else if (sv_managed_restore(d, g, req, false) < 0)
			sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	char path[4200];
	sv_managed_path(d, g->name, path, sizeof(path));
	json_t *a = json_copy(args);
	json_object_set_new(a, "file", json_string(path));
	sv_migrate_save(g, req, a);
	json_decref(a);
}

/* pause, resume and reset differ only in the QMP command. */
static void cmd_simple(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_guest *g = guest_arg(d, req, args);
	struct sv_error err = { 0 };
	int rc;
	if (g && (rc = sv_guest_simple(g, req->verb, req, &err)) < 0)
		reply_failed(req, rc, &err);
}

static void cmd_reload(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	(void)args;
	sv_reply_ok(req, sv_daemon_reload(d));
}

static void cmd_clone(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	sv_clone(d, req, args);
}

static void cmd_subscribe(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	(void)d;
	(void)args;
	sv_request_subscribe(req);
	sv_reply_ok(req, json_object());
}

static void cmd_argv(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_guest *g = guest_arg(d, req, args);
	if (!g)
		return;
	if (!g->profile) {
		sv_reply_err(req, "NotFound", "%s: its profile was removed", g->name);
		return;
	}
	struct sv_argv av = { 0 };
	struct sv_error err = { 0 };
	int rc = sv_guest_argv(g, g->profile, d->run_dir, false, &av, &err);
	if (rc < 0) {
		reply_failed(req, rc, &err);
		return;
	}
	json_t *list = sv_argv_json(&av), *warn = json_array(), *fds = sv_argv_fds_json(&av);
	for (size_t i = 0; i < av.warnings.n; i++)
		json_array_append_new(warn, json_string(av.warnings.v[i]));
	sv_argv_free(&av);
	sv_reply_ok(req, json_pack("{s:o, s:o, s:o}", "argv", list, "fds", fds, "warnings", warn));
}

/* QEMU serves its serial socket to one client at a time, and a second one
 * would wait unseen: the console is lent to one control client at a time,
 * until it disconnects. Another is refused (ConsoleBusy), or with "force"
 * takes it over: the holder is told (CONSOLE_TAKEN) and lets go. A client
 * that may change nothing only learns the path (the socket's permissions
 * decide): it can neither hold the console nor take it. */
static void cmd_console(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_guest *g = guest_arg(d, req, args);
	bool force = json_is_true(json_object_get(args, "force"));
	if (!g)
		return;
	if (!sv_control_may_mutate(d, req->peer)) {
		if (force)
			sv_reply_err(req, "PermissionDenied", "console with force needs the right "
			             "to change things (you are uid %u)", (unsigned)req->uid);
		else
			sv_reply_ok(req, json_pack("{s:s, s:s}", "path", g->serial_path,
			                           "state", sv_state_name(g->state)));
		return;
	}
	uint64_t holder = g->console_peer;
	if (holder && holder != req->peer) {
		if (!force) {
			sv_reply_err(req, "ConsoleBusy", "console busy (client %llu)",
			             (unsigned long long)holder);
			return;
		}
		sv_log(SV_LOG_INFO, g->name, "console taken over by client %llu (uid %u) from "
		       "client %llu", (unsigned long long)req->peer, (unsigned)req->uid,
		       (unsigned long long)holder);
		sv_control_notify(d, holder, json_pack("{s:s, s:s, s:{s:s, s:I}}", "event",
		                  "CONSOLE_TAKEN", "guest", g->name, "data", "name", g->name,
		                  "by", (json_int_t)req->peer));
	}
	g->console_peer = req->peer;
	sv_reply_ok(req, json_pack("{s:s, s:s, s:I}", "path", g->serial_path,
	                           "state", sv_state_name(g->state),
	                           "client", (json_int_t)req->peer));
}

/* The verbs that hand the request to the guest's own module (hot-plug,
 * migration, qmp passthrough): the table names the function. */
static void cmd_on_guest(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_guest *g = guest_arg(d, req, args);
	if (g)
		sv_command_find(req->verb)->on_guest(g, req, args);
}

/* display: the VNC address; the password only to a client that may change
 * things (the socket's permissions decide, as for the console). */
static void cmd_display(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	struct sv_guest *g = guest_arg(d, req, args);
	if (!g)
		return;
	if (json_is_true(json_object_get(args, "password")) &&
	    !sv_control_may_mutate(d, req->peer)) {
		sv_reply_err(req, "PermissionDenied", "the VNC password needs the right to "
		             "change things (you are uid %u)", (unsigned)req->uid);
		return;
	}
	sv_display_cmd(g, req, args);
}

/* ---- waiting for a re-adoption ---- */

struct sv_waiting {
	struct sv_waiting *next;
	const struct sv_command *cmd;
	struct sv_request *req;
	json_t *args;
	char name[256];
	unsigned tries;                 /* the guest's adopt_tries when it came */
};

static bool waits(struct sv_daemon *d, const struct sv_command *cmd, json_t *args)
{
	if ((cmd->flags & (SV_CMD_GUEST | SV_CMD_MUTATES)) != (SV_CMD_GUEST | SV_CMD_MUTATES) ||
	    !strcmp(cmd->name, "start") || !strcmp(cmd->name, "stop") ||
	    !strcmp(cmd->name, "kill"))
		return false;
	const char *name = json_string_value(json_object_get(args, "name"));
	struct sv_guest *g = name ? sv_daemon_guest(d, name) : NULL;
	return g && g->adopting && !d->exiting;
}

void sv_command_run(struct sv_daemon *d, const struct sv_command *cmd,
                    struct sv_request *req, json_t *args)
{
	struct sv_waiting *w;
	if (!waits(d, cmd, args) || !(w = calloc(1, sizeof(*w)))) {
		cmd->fn(d, req, args);
		return;
	}
	w->cmd = cmd;
	w->req = req;
	w->args = json_incref(args);
	snprintf(w->name, sizeof(w->name), "%s",
	         json_string_value(json_object_get(args, "name")));
	w->tries = sv_daemon_guest(d, w->name)->adopt_tries;
	sv_log(SV_LOG_DEBUG, w->name, "%s waits for the re-adoption", cmd->name);
	struct sv_waiting **end = &d->waiting;   /* in the order they came */
	while (*end)
		end = &(*end)->next;
	*end = w;
}

static void on_rerun(uv_timer_t *t)
{
	struct sv_daemon *d = t->data;
	struct sv_waiting *w = d->waiting, *keep = NULL, **tail = &keep;
	d->waiting = NULL;
	while (w) {
		struct sv_waiting *next = w->next;
		w->next = NULL;
		struct sv_guest *g = sv_daemon_guest(d, w->name);
		bool wait = waits(d, w->cmd, w->args);
		if (wait && g->adopt_tries > w->tries) {
			/* An attempt ended without QEMU's answer since it came: a
			 * frozen QEMU may never answer, so the wait ends here. */
			sv_reply_err(w->req, "GenericError", "%s is still being re-adopted: QEMU "
			             "(pid %d) gave no QMP answer in time; try again later, or stop "
			             "or kill the guest", w->name, g->pid);
			json_decref(w->args);
			free(w);
		} else if (wait) {
			*tail = w;
			tail = &w->next;
		} else {
			w->cmd->fn(d, w->req, w->args);   /* NotFound if its profile went */
			json_decref(w->args);
			free(w);
		}
		w = next;
	}
	*tail = d->waiting;   /* those that came meanwhile, after */
	d->waiting = keep;
}

void sv_commands_adoption_progress(struct sv_daemon *d)
{
	if (!d->waiting)
		return;
	if (!d->rerun_ready) {
		uv_timer_init(d->loop, &d->rerun);
		d->rerun.data = d;
		d->rerun_ready = true;
	}
	if (!uv_is_active((uv_handle_t *)&d->rerun))
		uv_timer_start(&d->rerun, on_rerun, 0, 0);
}

void sv_commands_drop_waiting(struct sv_daemon *d)
{
	while (d->waiting) {
		struct sv_waiting *w = d->waiting;
		d->waiting = w->next;
		sv_reply_err(w->req, "GenericError", "qsupd is exiting");
		json_decref(w->args);
		free(w);
	}
	if (d->rerun_ready) {
		d->rerun_ready = false;
		uv_close((uv_handle_t *)&d->rerun, NULL);
	}
}

/* ---- argument checks, before any handler (pure; fuzzed) ---- */

#define FAIL(cls, ...) return sv_error_setc(err, -EINVAL, cls, __VA_ARGS__)

static bool opt_type(json_t *args, const char *key, bool (*is)(const json_t *))
{
	json_t *v = json_object_get(args, key);
	return !v || is(v);
}

static bool is_bool(const json_t *v) { return json_is_boolean(v); }
static bool is_string(const json_t *v) { return json_is_string(v); }
static bool is_object(const json_t *v) { return json_is_object(v); }

static bool is_positive(const json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) > 0;
}

static int check_stop(json_t *args, struct sv_error *err)
{
	if (!opt_type(args, "force", is_bool))
		FAIL("InvalidArgument", "\"force\" must be true or false");
	json_t *t = json_object_get(args, "timeout");
	if (t && (!is_positive(t) || json_integer_value(t) > 86400))
		FAIL("InvalidArgument", "\"timeout\" must be a number of seconds, 1 to 86400");
	return 0;
}

static int check_console(json_t *args, struct sv_error *err)
{
	if (!opt_type(args, "force", is_bool))
		FAIL("InvalidArgument", "\"force\" must be true or false");
	return 0;
}

static int check_qmp(json_t *args, struct sv_error *err)
{
	if (!json_is_string(json_object_get(args, "command")) ||
	    !opt_type(args, "arguments", is_object))
		FAIL("InvalidArgument", "qmp needs {\"name\": string, \"command\": string, "
		     "\"arguments\": optional object}");
	return 0;
}

static int check_attach(json_t *args, struct sv_error *err)
{
	static const char *const kinds[] = { "disk", "nic", "cpu", "memory" };
	const char *kind = json_string_value(json_object_get(args, "kind"));
	bool known = false;
	for (size_t i = 0; kind && i < 4; i++)
		known |= !strcmp(kind, kinds[i]);
	if (!known)
		FAIL("InvalidArgument", "kind must be disk, nic, cpu or memory");
	if (!opt_type(args, "id", is_string) || !opt_type(args, "persist", is_bool))
		FAIL("InvalidArgument", "id must be a string, persist true or false");
	return 0;
}

static int check_cdrom(json_t *args, struct sv_error *err)
{
	const char *action = json_string_value(json_object_get(args, "action"));
	if (!json_is_string(json_object_get(args, "id")) || !action ||
	    (strcmp(action, "insert") && strcmp(action, "eject")))
		FAIL("InvalidArgument", "cdrom needs {\"name\", \"id\", \"action\": \"insert\" "
		     "or \"eject\"}");
	if (!opt_type(args, "file", is_string) || !opt_type(args, "format", is_string) ||
	    !opt_type(args, "force", is_bool))
		FAIL("InvalidArgument", "file and format must be strings, force true or false");
	if (!strcmp(action, "insert") && !json_object_get(args, "file"))
		FAIL("InvalidArgument", "insert needs a file (an absolute path)");
	return 0;
}

static int check_agent(json_t *args, struct sv_error *err)
{
	if (!json_is_string(json_object_get(args, "command")) ||
	    !opt_type(args, "arguments", is_object) || !opt_type(args, "timeout", is_positive))
		FAIL("InvalidArgument", "agent needs {\"name\": string, \"command\": string, "
		     "\"arguments\": optional object, \"timeout\": optional milliseconds}");
	return 0;
}

static int check_clone(json_t *args, struct sv_error *err)
{
	if (!json_is_string(json_object_get(args, "new")) || !opt_type(args, "linked", is_bool))
		FAIL("InvalidArgument", "clone needs {\"name\", \"new\": string, \"linked\": "
		     "optional true or false}");
	return 0;
}

static int check_resize(json_t *args, struct sv_error *err)
{
	json_t *size = json_object_get(args, "size");
	if (!json_is_string(json_object_get(args, "id")) ||
	    (!json_is_string(size) && !is_positive(size)))
		FAIL("InvalidArgument", "disk-resize needs {\"name\", \"id\": string, \"size\": "
		     "bytes or a size string such as \"20G\"}");
	return 0;
}

static int check_set(json_t *args, struct sv_error *err)
{
	json_t *set = json_object_get(args, "set");
	if (!json_is_array(set) || !json_array_size(set) || !opt_type(args, "persist", is_bool))
		FAIL("InvalidArgument", "set needs {\"name\", \"set\": [\"KEY=VALUE\", ...], "
		     "\"persist\": optional true or false}");
	return 0;
}

static int check_display(json_t *args, struct sv_error *err)
{
	if (!opt_type(args, "password", is_bool))
		FAIL("InvalidArgument", "\"password\" must be true or false");
	return 0;
}

static int check_detach(json_t *args, struct sv_error *err)
{
	if (!json_is_string(json_object_get(args, "id")))
		FAIL("InvalidArgument", "detach needs {\"name\", \"id\"}");
	if (!opt_type(args, "timeout", is_positive) || !opt_type(args, "persist", is_bool))
		FAIL("InvalidArgument", "timeout must be a number of milliseconds, persist "
		     "true or false");
	return 0;
}

static int check_migration(json_t *args, struct sv_error *err)
{
	const char *bad = sv_migrate_args_bad(args);
	if (bad)
		FAIL("InvalidArgument", "%s", bad);
	if (!opt_type(args, "to", is_string) || !opt_type(args, "file", is_string))
		FAIL("InvalidArgument", "to and file must be strings (absolute paths)");
	return 0;
}

#undef FAIL

int sv_request_parse(json_t *msg, const struct sv_command **cmd, json_t **args,
                     struct sv_error *err)
{
	json_t *exec = json_object_get(msg, "execute");
	*cmd = NULL;
	*args = json_object_get(msg, "arguments");
	if (!json_is_string(exec))
		return sv_error_setc(err, -EINVAL, "GenericError", "a request is an object with an "
		                     "\"execute\" string, optional \"arguments\" object and optional "
		                     "\"id\"");
	if (*args && !json_is_object(*args))
		return sv_error_setc(err, -EINVAL, "InvalidArgument",
		                     "\"arguments\" must be an object");
	if (!(*cmd = sv_command_find(json_string_value(exec))))
		return sv_error_setc(err, -ENOENT, "CommandNotFound", "unknown command '%.64s'",
		                     json_string_value(exec));
	return 0;
}

int sv_command_check(const struct sv_command *cmd, json_t *args, struct sv_error *err)
{
	if ((cmd->flags & SV_CMD_GUEST) && !json_is_string(json_object_get(args, "name")))
		return sv_error_setc(err, -EINVAL, "InvalidArgument", "%s needs {\"name\": string}",
		                     cmd->name);
	return cmd->check ? cmd->check(args, err) : 0;
}

#define G SV_CMD_GUEST
#define M SV_CMD_MUTATES
static const struct sv_command commands[] = {
	{ "agent", cmd_on_guest, G | M, sv_agent_verb, check_agent },
	{ "argv", cmd_argv, G, NULL, NULL },
	{ "attach", cmd_on_guest, G | M, sv_hotplug_attach, check_attach },
	{ "backup", cmd_on_guest, G | M, sv_backup_cmd, sv_backup_check },
	{ "backup-cancel", cmd_on_guest, G | M, sv_backup_cancel, NULL },
	{ "backup-restore", cmd_on_guest, G | M, sv_backup_restore, sv_backup_restore_check },
	{ "cdrom", cmd_on_guest, G | M, sv_media_cdrom, check_cdrom },
	{ "clone", cmd_clone, G | M, NULL, check_clone },
	{ "detach", cmd_on_guest, G | M, sv_hotplug_detach, check_detach },
	{ "devices", cmd_on_guest, G, sv_hotplug_devices, NULL },
	{ "disk-resize", cmd_on_guest, G | M, sv_resize_verb, check_resize },
	{ "display", cmd_display, G, NULL, check_display },
	{ "incoming", cmd_on_guest, G | M, sv_migrate_in, check_migration },
	{ "console", cmd_console, G, NULL, check_console },
	{ "kill", cmd_kill, G | M, NULL, NULL },
	{ "list", cmd_list, 0, NULL, NULL },
	{ "log", cmd_on_guest, G, sv_logview_cmd, sv_logview_check },
	{ "migrate", cmd_on_guest, G | M, sv_migrate_out, check_migration },
	{ "net-list", cmd_net_list, 0, NULL, NULL },
	{ "net-start", cmd_net_start_stop, M, NULL, NULL },
	{ "net-status", cmd_net_status, 0, NULL, NULL },
	{ "net-stop", cmd_net_start_stop, M, NULL, NULL },
	{ "migrate-cancel", cmd_on_guest, G | M, sv_migrate_cancel, NULL },
	{ "migrate-postcopy", cmd_on_guest, G | M, sv_migrate_postcopy, NULL },
	{ "pause", cmd_simple, G | M, NULL, NULL },
	{ "qmp", cmd_on_guest, G | M, sv_passthrough_qmp, check_qmp },
	{ "reload", cmd_reload, M, NULL, NULL },
	{ "reset", cmd_simple, G | M, NULL, NULL },
	{ "reset-failed", cmd_reset_failed, G | M, NULL, NULL },
	{ "restart", cmd_restart, G | M, NULL, NULL },
	{ "restore", cmd_save, G | M, sv_migrate_restore, check_migration },
	{ "resume", cmd_simple, G | M, NULL, NULL },
	{ "save", cmd_save, G | M, sv_migrate_save, check_migration },
	{ "set", cmd_on_guest, G | M, sv_tune_set_verb, check_set },
	{ "snapshot", cmd_on_guest, G | M, sv_snapshot_cmd, sv_snapshot_check },
	{ "start", cmd_start, G | M, NULL, NULL },
	{ "status", cmd_status, G, NULL, NULL },
	{ "stop", cmd_stop, G | M, NULL, check_stop },
	{ "subscribe", cmd_subscribe, 0, NULL, NULL },
	{ "stats", sv_metrics_stats_cmd, 0, NULL, sv_metrics_stats_check },
	{ "metrics", sv_metrics_metrics_cmd, 0, NULL, NULL },
};
#undef G
#undef M

const struct sv_command *sv_command_find(const char *verb)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, verb) == 0)
			return &commands[i];
	return NULL;
}

const struct sv_command *sv_command_at(size_t i)
{
	return i < sizeof(commands) / sizeof(commands[0]) ? &commands[i] : NULL;
}
