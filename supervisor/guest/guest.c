/*
 * Guests: the state machine, QEMU's QMP connection, the stop ladder, and
 * answering the control requests that wait on a guest. (Starting QEMU is
 * launch.c's; what follows its end, supervise.c's.)
 *
 * A start negotiates QMP with the QEMU launch.c spawned -S, re-adds the
 * hot-plugged devices, then conts: the guest is running only once cont has
 * succeeded. A QMP connection that fails during the start ends it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "argv.h"
#include "request.h"
#include "guest.h"
#include "guest_int.h"
#include "lock.h"
#include "log.h"
#include "machine.h"
#include "prepare.h"
#include "qmp.h"

#define STEP_MS 5000            /* between quit, SIGTERM and SIGKILL */
#define SV_REPRESS_MS 5000      /* between two ACPI presses in one stop */
#define QMP_TIMEOUT_MS 10000   /* negotiation, and each command */

/* QMP's deadline for a command (and the negotiation): QMP_TIMEOUT_MS, but
 * while a start is under way its start-timeout, which the start's own
 * deadline timer (launch.c) enforces. A host busy starting many guests at
 * once can leave a QEMU more than 10 s from its QMP greeting, and such a
 * start must fail at the start-timeout the profile sets, not earlier. */
static uint64_t qmp_deadline(const struct sv_guest *g)
{
	if (sv_state_is_launching(g->state) && !g->adopting && g->run_profile &&
	    g->run_profile->start_timeout_ms > QMP_TIMEOUT_MS)
		return g->run_profile->start_timeout_ms;
	return QMP_TIMEOUT_MS;
}

bool sv_guest_active(const struct sv_guest *g)
{
	return g->pid > 0;
}

bool sv_guest_qmp_up(const struct sv_guest *g)
{
	return sv_state_is_up(g->state) && g->qmp && qmp_client_is_ready(g->qmp) && !g->adopting;
}

const struct sv_profile *sv_guest_profile_now(const struct sv_guest *g)
{
	return sv_guest_active(g) && g->run_profile ? g->run_profile : g->profile;
}

/* The one transition function: every state change is checked against the
 * table (machine.c), logged and emitted. */
bool sv_guest_transition(struct sv_guest *g, enum sv_state to, const char *reason)
{
	enum sv_state from = g->state;
	if (!sv_transition_legal(from, to)) {
		sv_log(SV_LOG_ERR, g->name, "BUG: illegal transition %s -> %s (%s)",
		       sv_state_name(from), sv_state_name(to), reason);
		return false;
	}
	g->state = to;
	if (g->qmp)
		qmp_client_set_limits(g->qmp, qmp_deadline(g), 0);
	snprintf(g->reason, sizeof(g->reason), "%s", reason);
	sv_log(SV_LOG_INFO, g->name, "%s -> %s (%s)", sv_state_name(from),
	       sv_state_name(to), reason);
	sv_guest_persist(g);
	g->env->activity(g->env->owner);
	sv_emit(g->route, json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}}",
	                "event", "GUEST_STATE", "guest", g->name, "data", "name", g->name,
	                "state", sv_state_name(to), "previous", sv_state_name(from),
	                "reason", reason));
	return true;
}

json_t *sv_guest_status(struct sv_guest *g)
{
	bool up = sv_guest_active(g);
	double uptime = up ? (double)(uv_now(g->env->loop) - g->started_ms) / 1000.0 : 0;
	const struct sv_profile *p = g->profile ? g->profile : g->run_profile;
	uint64_t now = uv_now(g->env->loop);
	json_t *next = g->state == SV_BACKOFF && g->next_start_ms > now
	             ? json_real((double)(g->next_start_ms - now) / 1000.0)
	             : g->state == SV_BACKOFF ? json_real(0) : json_null();
	json_t *st = json_pack("{s:s, s:s, s:s, s:o, s:o, s:i, s:i, s:s, s:o, s:b, s:s, s:b, s:o, s:s, s:s, s:b, s:b}",
	                 "name", g->name, "state", sv_state_name(g->state),
	                 "reason", g->reason,
	                 "pid", up ? json_integer(g->pid) : json_null(),
	                 "uptime", up ? json_real(uptime) : json_null(),
	                 "restarts", (int)g->rs.total,
	                 "reboots", (int)g->reboots,
	                 "last_exit", sv_exit_class_name(g->last_exit),
	                 "next_start", next,
	                 "autostart", p && p->autostart,
	                 "profile", g->profile_path,
	                 "config_changed", up && (g->removed || g->digest != g->run_digest),
	                 "accel", up ? json_string(g->accel) : json_null(),
	                 "console", g->serial_path, "qmp", g->qmp_path, "adopted", g->adopted,
	                 "unresponsive", g->unresponsive);
	const struct sv_guest_observer *o;
	for (size_t i = 0; (o = sv_observer(g, i)); i++)
		if (o->status)
			o->status(g, st);   /* "migration", "tainted", "taint" */
	sv_guest_log_status(g, st);   /* "log", "log_tail" */
	json_object_set_new(st, "io_error", g->io_disk[0] ? json_pack("{s:s, s:s, s:s}",
	                    "disk", g->io_disk, "operation", g->io_op, "error", g->io_error)
	                    : json_null());
	/* Whom QEMU runs as (ps shows a per-guest uid as a bare number). */
	json_object_set_new(st, "uid", up ? json_integer(g->ident.uid) : json_null());
	json_object_set_new(st, "gid", up ? json_integer(g->ident.gid) : json_null());
	/* What the last start made: disk images (size =) and their dirs. */
	json_object_set_new(st, "created", g->created ? json_incref(g->created) : json_array());
	return st;
}

/* The status, for a request that found nothing to do ("already": true):
 * a start of a guest that runs, a stop or kill of one that does not. */
static json_t *status_already(struct sv_guest *g)
{
	json_t *st = sv_guest_status(g);
	json_object_set_new(st, "already", json_true());
	return st;
}

/* ---- waiters ---- */

void sv_guest_add_waiter(struct sv_guest *g, struct sv_request *req, enum sv_wait kind)
{
	if (!req)
		return;
	struct sv_waiter *w = calloc(1, sizeof(*w));
	if (!w) {
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	w->req = req;
	w->kind = kind;
	w->next = g->waiters;
	g->waiters = w;
	sv_guest_probe_kick(g);   /* someone waits on QEMU now */
}

/* Answer the waiters of kind: with the status when ok, else with an error
 * carrying the guest's reason. */
void sv_guest_finish_waiters(struct sv_guest *g, enum sv_wait kind, bool ok)
{
	struct sv_waiter **pp = &g->waiters;
	while (*pp) {
		struct sv_waiter *w = *pp;
		if (w->kind != kind) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (ok)
			sv_reply_ok(w->req, sv_guest_status(g));
		else
			sv_reply_err(w->req, "GuestFailed", "%s: %s", g->name, g->reason);
		free(w);
	}
}

/* ---- files in the runtime dir ---- */

void sv_guest_log_tail(struct sv_guest *g, const char *file, char *buf, size_t size)
{
	char path[4200], raw[2048];
	snprintf(path, sizeof(path), "%s/%s", g->rundir, file);
	buf[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)sizeof(raw) - 1 ? end - (off_t)sizeof(raw) + 1 : 0;
	ssize_t n = pread(fd, raw, sizeof(raw) - 1, from);
	close(fd);
	if (n <= 0)
		return;
	raw[n] = '\0';
	while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r'))
		raw[--n] = '\0';
	/* Join the last lines with "; " so the reason stays one line. */
	const char *start = raw;
	int lines = 0;
	for (char *p = raw + n; p > raw; p--) {
		if (p[-1] == '\n' && ++lines == 4) {
			start = p;
			break;
		}
	}
	size_t o = 0;
	for (char *line = strtok((char *)start, "\r\n"); line; line = strtok(NULL, "\r\n")) {
		/* Harmless on nested or paravirtual KVM; it only hides the cause. */
		if (strstr(line, "warning: host doesn't support requested feature"))
			continue;
		int w = snprintf(buf + o, size - o, "%s%s", o ? "; " : "", line);
		if (w < 0 || (size_t)w >= size - o)
			break;
		o += (size_t)w;
	}
}

/* ---- QMP ---- */


static void on_cont(struct qmp_client *c, const struct qmp_result *r, void *arg);

/* The guest is set up: let it run. */
static void send_cont(struct sv_guest *g)
{
	if (g->state == SV_STARTING && (!g->qmp ||
	    qmp_client_execute(g->qmp, "cont", NULL, 0, on_cont, g) < 0))
		sv_guest_start_failed(g, "cont could not be sent");
}

static void on_qmp_ready(struct qmp_client *c, int status)
{
	struct sv_guest *g = qmp_client_data(c);
	if (status < 0) {
		char why[300];
		sv_log(SV_LOG_WARN, g->name, "QMP: %s", qmp_strerror(status));
		/* A QEMU that speaks no QMP is hung or not QEMU; one that is
		 * exiting is gone by the time the kill lands. */
		snprintf(why, sizeof(why), "QMP: %s", qmp_strerror(status));
		if (sv_state_is_launching(g->state) && !g->adopting &&
		    status != UV_EOF && status != UV_ECONNRESET && status != UV_ECANCELED)
			sv_guest_start_failed(g, why);
		return;
	}
	sv_log(SV_LOG_DEBUG, g->name, "QMP ready");
	if (g->adopting)
		return;   /* its query-status went out with the connect (adopt.c) */
	const struct sv_guest_observer *o;
	for (size_t i = 0; (o = sv_observer(g, i)); i++)
		if (o->qmp_ready && o->qmp_ready(g, send_cont))
			return;   /* it calls send_cont (or a migration takes over) */
	if (g->state == SV_STARTING)
		send_cont(g);
}

static void on_cont(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	(void)c;
	if (g->state != SV_STARTING)
		return;
	if (r->status != 0) {
		char why[300];
		snprintf(why, sizeof(why), "cont: %s", r->err_desc ? r->err_desc
		         : qmp_strerror(r->status));
		sv_guest_start_failed(g, why);
		return;
	}
	sv_guest_start_done(g);
	sv_guest_transition(g, SV_RUNNING, "started");
	sv_guest_finish_waiters(g, SV_WAIT_RUNNING, true);
}

static void on_qmp_event(struct qmp_client *c, const char *name, json_t *data,
                         const struct qmp_timestamp *ts)
{
	struct sv_guest *g = qmp_client_data(c);
	if (strcmp(name, "SHUTDOWN") == 0 && !g->shutdown_seen) {
		/* Only the first counts: QEMU can send another after SIGTERM. */
		g->shutdown_seen = true;
		g->guest_shutdown = json_is_true(json_object_get(data, "guest"));
		snprintf(g->shutdown_reason, sizeof(g->shutdown_reason), "%s",
		         sv_jstr(data, "reason", ""));
		sv_guest_persist(g);   /* a later re-adoption must know */
	} else if (strcmp(name, "GUEST_PANICKED") == 0) {
		g->panicked = true;
		sv_log(SV_LOG_WARN, g->name, "guest panicked");
		sv_guest_persist(g);
	} else if (strcmp(name, "RESET") == 0 && json_is_true(json_object_get(data, "guest"))) {
		g->reboots++;
	}
	else if (strcmp(name, "BLOCK_IO_ERROR") == 0)
		sv_guest_io_error(g, data);
	else if (strcmp(name, "STOP") == 0 && g->state == SV_RUNNING && g->expect == SV_PAUSED)
		sv_guest_transition(g, SV_PAUSED, g->expect_reason);
	else if (strcmp(name, "STOP") == 0 && g->state == SV_RUNNING)
		sv_guest_stopped_by_qemu(g);   /* not the operator's: QEMU says why */
	else if (strcmp(name, "RESUME") == 0) {
		g->io_disk[0] = g->io_error[0] = g->io_op[0] = '\0';
		if (g->state == SV_PAUSED)
			sv_guest_transition(g, SV_RUNNING, g->expect == SV_RUNNING
			                    ? g->expect_reason : "resumed (QMP RESUME event)");
	}
	const struct sv_guest_observer *o;
	for (size_t i = 0; (o = sv_observer(g, i)); i++)
		if (o->event)
			o->event(g, name, data);
	sv_emit(g->route, json_pack("{s:s, s:s, s:O?, s:{s:I, s:I}}", "event", name,
	                "guest", g->name, "data", data, "qemu-timestamp",
	                "seconds", (json_int_t)ts->seconds,
	                "microseconds", (json_int_t)ts->microseconds));
}

static void on_qmp_closed(struct qmp_client *c, int status)
{
	struct sv_guest *g = qmp_client_data(c);
	if (g->qmp == c)
		g->qmp = NULL;
	if (status != 0 && status != UV_EOF)
		sv_log(SV_LOG_WARN, g->name, "QMP connection lost: %s", qmp_strerror(status));
	if (g->adopting && sv_guest_active(g))
		sv_adopted_qmp_closed(g, status);
	sv_guest_unhold(g);   /* the client counts as a handle: g outlives it */
}

static void on_qmp_log(struct qmp_client *c, enum qmp_log_level lvl, const char *msg)
{
	struct sv_guest *g = qmp_client_data(c);
	static const enum sv_log_level map[] = { SV_LOG_DEBUG, SV_LOG_INFO, SV_LOG_WARN, SV_LOG_ERR };
	/* A VNC password never reaches a log, not even the debug one. */
	if (strstr(msg, "\"set_password\"") || strstr(msg, "\"change-vnc-password\""))
		msg = "-> (a set_password command: arguments not logged)";
	sv_log(map[lvl], g->name, "QMP: %s", msg);
}

static void on_qmp_replied(struct qmp_client *c, const char *command, uint64_t ns)
{
	struct sv_guest *g = qmp_client_data(c);
	(void)command;
	if (g->env->qmp_replied)
		g->env->qmp_replied(g->env->owner, ns);
}

static const struct qmp_callbacks qmp_cbs = {
	.ready = on_qmp_ready, .event = on_qmp_event, .closed = on_qmp_closed,
	.log = on_qmp_log, .replied = on_qmp_replied,
};

const char *const sv_guest_presend[1] = { "query-status" };

void sv_guest_qmp_connect(struct sv_guest *g, bool cork)
{
	g->qmp = qmp_client_new(g->env->loop, &qmp_cbs, g);
	if (!g->qmp)
		return;
	sv_guest_hold(g);
	qmp_client_set_limits(g->qmp, qmp_deadline(g), 0);
	qmp_client_set_debug(g->qmp, sv_log_enabled(SV_LOG_DEBUG));
	/* qmp_capabilities goes out without waiting for the greeting: a round
	 * trip less per start, and for a re-adoption the query that follows is
	 * written at once, so every QEMU answers while qsupd checks the next. */
	qmp_client_set_eager(g->qmp, 1);
	if (cork)
		qmp_client_cork(g->qmp);
	/* At start-up the daemon may have connected already (sv_daemon_init). */
	int fd = g->qmp_prefd, rc;
	g->qmp_prefd = -1;
	if (fd >= 0 && (rc = qmp_client_adopt_sent(g->qmp, fd, sv_guest_presend, 1)) < 0)
		close(fd);   /* never taken by the handle */
	else if (fd < 0)
		rc = qmp_client_connect(g->qmp, g->qmp_path);
	if (rc < 0) {
		qmp_client_close(g->qmp);
		g->qmp = NULL;
		return;
	}
	sv_guest_probe_kick(g);
}

/* ---- process exit ---- */

void sv_guest_persist(struct sv_guest *g)
{
	if (!g->persist_quiet)
		g->env->persist(g->env->owner, g);
}

void sv_guest_persist_then(struct sv_guest *g, struct sv_persist_wait *w)
{
	w->next = NULL;
	if (g->env->persist_then)
		g->env->persist_then(g->env->owner, g, w);
	else
		w->done(w, g, 0);   /* an owner that keeps no record (tests) */
}

static bool unlink_wait(struct sv_persist_wait **head, struct sv_persist_wait *w)
{
	for (; *head; head = &(*head)->next) {
		if (*head == w) {
			*head = w->next;
			w->next = NULL;
			return true;
		}
	}
	return false;
}

void sv_guest_persist_cancel(struct sv_guest *g, struct sv_persist_wait *w)
{
	if (!unlink_wait(&g->state_waiters, w))
		unlink_wait(&g->state_writing, w);
}

void sv_guest_hold(struct sv_guest *g)
{
	g->handles++;
}

static void on_close_free(uv_handle_t *h)
{
	struct sv_guest *g = h->data;
	free(h);
	sv_guest_unhold(g);
}

void sv_guest_close_free(struct sv_guest *g, uv_handle_t *h)
{
	h->data = g;
	uv_close(h, on_close_free);
}

void sv_guest_unhold(struct sv_guest *g)
{
	if (--g->handles == 0 && g->freeing) {
		sv_prepare_free(g);     /* first: it reads the profile it was for */
		if (g->run_profile != g->profile)
			sv_profile_free(g->run_profile);
		sv_profile_free(g->profile);
		sv_restart_state_free(&g->rs);
		json_decref(g->last_tail);
		json_decref(g->created);
		free(g->state_last);
		free(g->lock_path);
		free(g->profile_path);
		free(g->name);
		free(g);
	}
}

static void on_handle_closed(uv_handle_t *h)
{
	sv_guest_unhold(h->data);
}

void sv_guest_close_proc(struct sv_guest *g)
{
	if (g->proc) {
		sv_guest_close_free(g, (uv_handle_t *)g->proc);
		g->proc = NULL;
	}
}

void sv_guest_signal(struct sv_guest *g, int sig)
{
	if (g->proc)
		uv_process_kill(g->proc, sig);
	else
		sv_adopted_signal(g, sig);   /* by pidfd: never a reused pid */
}

void sv_guest_qemu_gone(struct sv_guest *g, int64_t status, int sig)
{
	char what[sizeof(g->reason)];
	enum sv_exit_class c = sv_guest_classify(g, g->state, status, sig, what, sizeof(what));
	bool normal = c == SV_EXIT_OPERATOR || c == SV_EXIT_POWEROFF || c == SV_EXIT_QUIT ||
	              c == SV_EXIT_MIGRATED || c == SV_EXIT_SAVED;
	sv_log_event(normal ? SV_LOG_INFO : SV_LOG_WARN, g->name, SV_MSGID_EXITED,
	             "QEMU ended (%s): %s", sv_exit_class_name(c), what);
	g->pid = 0;
	uv_timer_stop(&g->timer);
	uv_timer_stop(&g->deadline);
	sv_guest_close_proc(g);
	sv_adopted_release(g);
	if (g->qmp)
		qmp_client_close(g->qmp);
	/* No QEMU, no health to watch: the next one starts afresh. */
	uv_timer_stop(&g->probe);
	g->unresponsive = false;
	g->probe_done = g->probe_busy_since = g->probe_look = 0;
	const struct sv_guest_observer *o;
	for (size_t i = 0; (o = sv_observer(g, i)); i++)
		if (o->qemu_gone)
			o->qemu_gone(g);
	sv_guest_ended(g, c, what);
}

/* ---- stop ladder ---- */

static void stop_step(struct sv_guest *g, int step);

static void on_stop_timer(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	/* The ACPI step repeats itself until its time is spent. */
	stop_step(g, g->stop_step == 0 ? 0 : g->stop_step + 1);
}

static void ignore_reply(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	(void)c;
	if (r->status != 0 && r->status != UV_EOF && r->status != UV_ECANCELED)
		sv_log(SV_LOG_WARN, g->name, "%s", r->err_desc ? r->err_desc : qmp_strerror(r->status));
}

/* Tell the waiting clients (subscribers) how far a stop has got. */
static void stop_progress(struct sv_guest *g, const char *stage, uint64_t timeout_ms)
{
	uint64_t now = uv_now(g->env->loop);
	sv_emit(g->route, json_pack("{s:s, s:s, s:{s:s, s:i, s:f, s:f}}", "event",
	        "STOP_PROGRESS", "guest", g->name, "data", "stage", stage,
	        "presses", (int)g->presses,
	        "elapsed", g->stop_began ? (double)(now - g->stop_began) / 1000.0 : 0.0,
	        "timeout", (double)timeout_ms / 1000.0));
}

static void on_asked_timer(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	sv_log(SV_LOG_INFO, g->name, "no power-off %d s after the guest was asked to shut "
	       "down", SV_GUEST_SHUTDOWN_MS / 1000);
	stop_step(g, 1);
}

/* ACPI went unanswered: an observer (the guest agent) may ask the guest to
 * shut down; wait SV_GUEST_SHUTDOWN_MS for it then. Once per stop. */
static bool ask_guest_shutdown(struct sv_guest *g)
{
	const struct sv_guest_observer *o;
	g->stop_asked = true;
	for (size_t i = 0; (o = sv_observer(g, i)); i++) {
		if (o->guest_shutdown && o->guest_shutdown(g)) {
			sv_log(SV_LOG_INFO, g->name, "asked the guest to shut down (%s); waiting "
			       "up to %d s", o->name, SV_GUEST_SHUTDOWN_MS / 1000);
			stop_progress(g, o->name, SV_GUEST_SHUTDOWN_MS);
			uv_timer_start(&g->timer, on_asked_timer, SV_GUEST_SHUTDOWN_MS, 0);
			return true;
		}
	}
	return false;
}

/* The ACPI step: press the power button, and again every SV_REPRESS_MS
 * until the stop's timeout is spent (a press while the guest still boots,
 * before its OS listens, is lost: systemd-style ladders press again). */
static void press_power(struct sv_guest *g)
{
	uint64_t timeout = g->stop_timeout_ms ? g->stop_timeout_ms
	                 : g->run_profile ? g->run_profile->shutdown_timeout_ms : 60000;
	uint64_t now = uv_now(g->env->loop);
	if (g->presses == 0)
		g->stop_began = now;
	uint64_t spent = now - g->stop_began;
	if (spent >= timeout) {
		sv_log(SV_LOG_INFO, g->name, "no power-off after %llu s and %u ACPI presses",
		       (unsigned long long)(spent / 1000), g->presses);
		if (!g->stop_asked && ask_guest_shutdown(g))
			return;
		stop_step(g, 1);
		return;
	}
	g->presses++;
	if (g->presses == 1)
		sv_log(SV_LOG_INFO, g->name, "sending ACPI power-off; waiting up to %llu.%01llu s",
		       (unsigned long long)(timeout / 1000),
		       (unsigned long long)(timeout % 1000 / 100));
	else   /* said once; the later presses at debug level */
		sv_log(g->presses == 2 ? SV_LOG_INFO : SV_LOG_DEBUG, g->name, "no power-off after "
		       "%llu s; pressing the power button again (%u)%s",
		       (unsigned long long)(spent / 1000), g->presses,
		       g->presses == 2 ? ", and every 5 s" : "");
	qmp_client_execute(g->qmp, "system_powerdown", NULL, 0, ignore_reply, g);
	stop_progress(g, "acpi", timeout);
	uint64_t left = timeout - spent;
	uv_timer_start(&g->timer, on_stop_timer, left < SV_REPRESS_MS ? left : SV_REPRESS_MS, 0);
}

/* 0: ACPI power-off (pressed again until the timeout), 1: quit, 2: SIGTERM,
 * 3: SIGKILL. */
static void stop_step(struct sv_guest *g, int step)
{
	if (!sv_guest_active(g))
		return;
	bool qmp_ok = g->qmp && qmp_client_is_ready(g->qmp);
	if (step <= 1 && !qmp_ok)
		step = 2;   /* no QMP to ask: go on to signals */
	g->stop_step = step;
	switch (step) {
	case 0:
		press_power(g);
		return;
	case 1:
		sv_log(SV_LOG_INFO, g->name, "sending quit");
		qmp_client_execute(g->qmp, "quit", NULL, STEP_MS, ignore_reply, g);
		stop_progress(g, "quit", STEP_MS);
		break;
	case 2:
		sv_log(SV_LOG_WARN, g->name, "QEMU still running; sending SIGTERM");
		sv_guest_signal(g, SIGTERM);
		stop_progress(g, "sigterm", STEP_MS);
		break;
	default:
		sv_log(SV_LOG_WARN, g->name, "QEMU still running; sending SIGKILL");
		sv_guest_signal(g, SIGKILL);
		stop_progress(g, "sigkill", 0);
		return;
	}
	uv_timer_start(&g->timer, on_stop_timer, STEP_MS, 0);
}

/* A stop or kill while the start is still preparing files: cancel it
 * there; the waiter is answered when preparation returns. */
static bool cancel_prepare(struct sv_guest *g, struct sv_request *req)
{
	if (!g->prepping)
		return false;
	sv_guest_add_waiter(g, req, SV_WAIT_STOPPED);
	g->prep_abort = true;
	return true;
}

/* What stop and kill share: cancel a start still preparing, answer at once
 * when no QEMU runs, else wait for the exit. Returns true when done. */
static bool stop_done_or_wait(struct sv_guest *g, struct sv_request *req)
{
	if (cancel_prepare(g, req) || sv_guest_cancel_backoff(g, req))
		return true;
	if (!sv_guest_active(g)) {
		if (req)
			sv_reply_ok(req, status_already(g));
		return true;
	}
	sv_guest_add_waiter(g, req, SV_WAIT_STOPPED);
	return false;
}

int sv_guest_start_op(struct sv_guest *g, struct sv_request *req, struct sv_error *err)
{
	if (sv_state_is_up(g->state)) {
		if (req)
			sv_reply_ok(req, status_already(g));
		return 0;
	}
	if (g->state == SV_STARTING && !g->adopting) {
		sv_guest_add_waiter(g, req, SV_WAIT_RUNNING);   /* that start's outcome */
		return 0;
	}
	return sv_guest_start(g, req, err);
}

int sv_guest_stop(struct sv_guest *g, bool force, uint64_t timeout_ms, struct sv_request *req,
                  struct sv_error *err)
{
	if (g->state == SV_MIGRATING && !force)
		return sv_error_set(err, -EBUSY, "%s is migrating: migrate-cancel it first, or "
		                    "stop --force", g->name);
	if (stop_done_or_wait(g, req))
		return 0;
	if (g->state == SV_STOPPING) {
		if (force && g->stop_step < 1)
			stop_step(g, 1);
		return 0;
	}
	enum sv_state was = g->state;
	g->presses = 0;
	g->stop_asked = false;
	g->stop_began = 0;
	g->stop_timeout_ms = timeout_ms;
	sv_guest_transition(g, SV_STOPPING, force ? "forced stop requested" : "stop requested");
	/* A paused or still starting guest cannot act on the power button. */
	stop_step(g, force || was != SV_RUNNING ? 1 : 0);
	return 0;
}

int sv_guest_kill(struct sv_guest *g, struct sv_request *req, struct sv_error *err)
{
	(void)err;
	if (stop_done_or_wait(g, req))
		return 0;
	g->force_kill = true;
	if (g->state != SV_STOPPING)
		sv_guest_transition(g, SV_STOPPING, "kill requested");
	uv_timer_stop(&g->timer);
	g->stop_step = 3;
	sv_guest_signal(g, SIGKILL);
	return 0;
}

int sv_guest_restart(struct sv_guest *g, struct sv_request *req, struct sv_error *err)
{
	if (g->prepping)
		return sv_error_set(err, -EBUSY, "%s is starting", g->name);
	/* Never queue a restart that the stop would refuse: the request would
	 * be answered now and again when the guest ends. */
	if (sv_state_in_migration(g->state) || g->mig)
		return sv_error_set(err, -EBUSY, "%s is %s: migrate-cancel it first, or wait "
		                    "for the end", g->name, g->mig && !sv_state_in_migration(g->state)
		                    ? "being migrated or saved" : sv_state_name(g->state));
	if (g->state == SV_MIGRATED)
		return sv_error_set(err, -EBUSY, "%s was migrated away: start it explicitly if "
		                    "it must run here", g->name);
	if (!sv_guest_active(g))
		return sv_guest_start(g, req, err);
	int rc = sv_guest_stop(g, false, 0, NULL, err);
	if (rc == 0)
		sv_guest_add_waiter(g, req, SV_WAIT_RESTART);
	return rc;
}

/* ---- pause, resume, reset, passthrough ---- */

struct qmp_op {
	struct sv_guest *g;
	struct sv_request *req;
	enum sv_state to;           /* SV_STOPPED: no state change */
	const char *reason;
	bool raw;                   /* passthrough: answer with QEMU's reply */
};

static void on_op_reply(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct qmp_op *op = arg;
	struct sv_guest *g = op->g;
	(void)c;
	if (op->to != SV_STOPPED)
		g->expect = SV_STOPPED;
	if (r->status == QMP_EREPLY) {
		sv_reply_error_obj(op->req, json_pack("{s:s, s:s, s:b}", "class", r->err_class,
		                   "desc", r->err_desc, "qemu", 1));
	} else if (r->status < 0) {
		if (r->status == UV_ETIMEDOUT)
			sv_guest_set_unresponsive(g, true);
		sv_reply_err(op->req, "GenericError", "%s: %s", g->name, qmp_strerror(r->status));
	} else if (op->raw) {
		sv_reply_ok(op->req, json_incref(r->ret));
	} else {
		if (op->to != SV_STOPPED && g->state != op->to && sv_state_is_up(g->state))
			sv_guest_transition(g, op->to, op->reason);
		sv_reply_ok(op->req, sv_guest_status(g));
	}
	free(op);
}

static int qmp_op(struct sv_guest *g, const char *cmd, json_t *args, struct qmp_op *tmpl,
                  struct sv_error *err)
{
	if (!g->qmp || !qmp_client_is_ready(g->qmp))
		return sv_error_set(err, -ENOTCONN, "%s is %s: no QMP connection", g->name,
		                    sv_state_name(g->state));
	struct qmp_op *op = malloc(sizeof(*op));
	if (!op)
		return sv_error_set(err, -ENOMEM, "out of memory");
	*op = *tmpl;
	op->g = g;
	if (op->to != SV_STOPPED) {
		/* QEMU's event usually comes before the reply: name the cause. */
		g->expect = op->to;
		g->expect_reason = op->reason;
	}
	int rc = qmp_client_execute(g->qmp, cmd, args, 0, on_op_reply, op);
	if (rc < 0) {
		free(op);
		return sv_error_set(err, rc, "%s: %s", cmd, qmp_strerror(rc));
	}
	sv_guest_probe_kick(g);
	return 0;
}

int sv_guest_simple(struct sv_guest *g, const char *verb, struct sv_request *req,
                    struct sv_error *err)
{
	struct qmp_op op = { .req = req, .to = SV_STOPPED };
	const char *cmd;
	enum sv_state need = SV_RUNNING;    /* for the message */
	bool ok;
	if (strcmp(verb, "pause") == 0) {
		cmd = "stop";
		op.to = SV_PAUSED;
		op.reason = "paused by operator";
		ok = sv_state_can_pause(g->state);
	} else if (strcmp(verb, "resume") == 0) {
		cmd = "cont";
		need = SV_PAUSED;
		op.to = SV_RUNNING;
		op.reason = "resumed by operator";
		ok = sv_state_can_resume(g->state);
	} else {
		cmd = "system_reset";
		sv_log(SV_LOG_INFO, g->name, "reset by operator");
		ok = sv_state_is_up(g->state);
	}
	if (!ok)
		return sv_error_set(err, -EBUSY, "%s is %s; %s needs it %s", g->name,
		                    sv_state_name(g->state), verb, sv_state_name(need));
	return qmp_op(g, cmd, NULL, &op, err);
}

int sv_guest_qmp(struct sv_guest *g, const char *command, json_t *args,
                 struct sv_request *req, struct sv_error *err)
{
	struct qmp_op op = { .req = req, .to = SV_STOPPED, .raw = true };
	return qmp_op(g, command, args, &op, err);
}

/* ---- life of the struct ---- */

struct sv_guest *sv_guest_new(const struct sv_guest_env *env, const char *path,
                              struct sv_profile *p, uint64_t digest)
{
	struct sv_guest *g = calloc(1, sizeof(*g));
	if (!g || !(g->name = strdup(p->name)) || !(g->profile_path = strdup(path))) {
		if (g)
			free(g->name);
		free(g);
		return NULL;
	}
	g->env = env;
	g->route = env->route;
	g->profile = p;
	g->digest = digest;
	g->state = SV_STOPPED;
	g->pidfd = -1;
	g->lock_fd = -1;
	g->qmp_prefd = -1;
	g->log_offset = -1;
	g->vnc_display = -1;
	snprintf(g->reason, sizeof(g->reason), "not started");
	snprintf(g->rundir, sizeof(g->rundir), "%s/%s", env->run_dir, g->name);
	struct sv_facts f;
	if (sv_facts_init(&f, env->run_dir, g->name) < 0) {
		sv_log(SV_LOG_ERR, g->name, "socket paths under %s would be too long", env->run_dir);
		free(g->profile_path);
		free(g->name);
		free(g);
		return NULL;
	}
	memcpy(g->qmp_path, f.qmp_path, sizeof(g->qmp_path));
	memcpy(g->serial_path, f.serial_path, sizeof(g->serial_path));
	struct sv_error err = { 0 };
	char lock[4096];
	if (sv_guest_lock_path(env->lock_dir, path, g->name, lock, sizeof(lock), &err) == 0) {
		g->lock_path = strdup(lock);
	} else {
		sv_log(SV_LOG_ERR, g->name, "no guest lock, so it cannot start: %s", err.msg);
	}
	uv_timer_init(env->loop, &g->timer);
	g->timer.data = g;
	uv_timer_init(env->loop, &g->deadline);
	g->deadline.data = g;
	g->handles = 2;
	sv_guest_probe_init(g);
	return g;
}

void sv_guest_release(struct sv_guest *g)
{
	g->freeing = true;
	while (g->waiters) {
		struct sv_waiter *w = g->waiters;
		g->waiters = w->next;
		sv_reply_err(w->req, "GenericError", "qsupd is exiting");
		free(w);
	}
	if (g->qmp)
		qmp_client_close(g->qmp);
	const struct sv_guest_observer *o;
	for (size_t i = 0; (o = sv_observer(g, i)); i++)
		if (o->release)
			o->release(g);
	sv_guest_close_proc(g);   /* QEMU goes on */
	sv_adopted_release(g);
	sv_prepare_release(g);
	sv_argv_free(&g->start_argv);
	if (g->lock_fd >= 0)
		close(g->lock_fd);   /* a QEMU of ours holds it on; else it is free */
	g->lock_fd = -1;
	uv_close((uv_handle_t *)&g->timer, on_handle_closed);
	uv_close((uv_handle_t *)&g->deadline, on_handle_closed);
	uv_close((uv_handle_t *)&g->probe, on_handle_closed);
}
