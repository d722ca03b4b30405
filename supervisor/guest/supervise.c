/*
 * What happens when a guest ends: why it ended (the exit class), what the
 * restart policy says (restart.c does the arithmetic), the backoff timer,
 * quarantine in `failed`, and the operator's restart that was waiting for
 * the exit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitclass.h"
#include "request.h"
#include "guest_int.h"
#include "log.h"
#include "machine.h"
#include "qmp.h"

/* Gather what sv_exit_classify() needs (exitclass.h), reading what this
 * run of QEMU wrote to the guest's log (runlog.c) and asking the
 * migration, and classify. */
enum sv_exit_class sv_guest_classify(struct sv_guest *g, enum sv_state was, int64_t status,
                                     int sig, char *what, size_t size)
{
	char tail[700];
	bool saved = false, migrated = false;
	const char *where = "";
	const struct sv_guest_observer *o;
	for (size_t i = 0; !migrated && (o = sv_observer(g, i)); i++)
		migrated = o->ended_by && o->ended_by(g, &saved, &where);
	sv_guest_run_tail(g, tail, sizeof(tail));
	struct sv_exit_facts f = {
		.was = was, .status = status, .sig = sig, .adopted = g->adopted,
		.force_kill = g->force_kill, .panicked = g->panicked,
		.internal_error = g->internal_error,
		.shutdown_seen = g->shutdown_seen, .guest_shutdown = g->guest_shutdown,
		.shutdown_reason = g->shutdown_reason, .start_fail = g->start_fail,
		.migrated = migrated, .saved = saved,
		.where = migrated ? where : "", .log_tail = tail,
	};
	return sv_exit_classify(&f, what, size);
}

static void on_backoff(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	struct sv_error err = { 0 };
	struct sv_restart_params pp;
	if (g->state != SV_BACKOFF)
		return;
	sv_restart_params_from(&pp, g->profile);
	snprintf(g->start_why, sizeof(g->start_why), "restart after %s %u/%u",
	         sv_exit_class_name(g->last_exit),
	         sv_restart_recent(&g->rs, uv_now(g->env->loop), pp.interval_ms), pp.burst);
	g->policy_start = true;
	int rc = sv_guest_start(g, NULL, &err);
	g->policy_start = false;
	if (rc == -EAGAIN) {   /* our last QEMU is still letting go of the lock */
		uv_timer_start(&g->timer, on_backoff, 100, 0);
		return;
	}
	if (rc < 0) {
		char what[600];
		snprintf(what, sizeof(what), "start failed: %s", err.msg);
		g->run_by_policy = true;   /* a restart's start: the policy goes on */
		sv_guest_ended(g, SV_EXIT_START_FAILURE, what);
	}
}

void sv_guest_backoff(struct sv_guest *g, uint64_t delay_ms, const char *reason)
{
	g->next_start_ms = uv_now(g->env->loop) + delay_ms;
	sv_guest_transition(g, SV_BACKOFF, reason);
	uv_timer_start(&g->timer, on_backoff, delay_ms, 0);
}

static int restart_start(struct sv_guest *g, struct sv_request *req, struct sv_error *err)
{
	snprintf(g->start_why, sizeof(g->start_why), "operator restart");
	return sv_guest_start(g, req, err);
}

/* Restart waiters (an operator's restart) start the guest again now;
 * never one that ended migrated or saved: it lives elsewhere now, and a
 * second QEMU would run it twice. The state says so too: a restart waiter
 * starts only what qsupd may start on its own (stopped, never migrated),
 * as the guest ended (the first waiter's start makes it starting). */
static bool run_restart_waiters(struct sv_guest *g, enum sv_exit_class c)
{
	bool any = false;
	bool refuse = c == SV_EXIT_MIGRATED || c == SV_EXIT_SAVED ||
	              !sv_state_may_autostart(g->state);
	struct sv_waiter **pp = &g->waiters;
	while (*pp) {
		struct sv_waiter *w = *pp;
		if (w->kind != SV_WAIT_RESTART) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		struct sv_error err = { 0 };
		if (refuse)
			sv_reply_err(w->req, "InvalidState", "%s: not restarted: %s", g->name,
			             g->reason);
		else if (any || g->state == SV_STARTING)
			sv_guest_add_waiter(g, w->req, SV_WAIT_RUNNING);
		else if (restart_start(g, w->req, &err) < 0)
			sv_reply_err(w->req, "GuestFailed", "%s", err.msg);
		any = true;
		free(w);
		pp = &g->waiters;   /* start may have changed the list */
	}
	return any;
}

static void apply_policy(struct sv_guest *g, enum sv_exit_class c, const char *what,
                         const struct sv_restart_params *pp, uint64_t uptime_ms)
{
	uint64_t now = uv_now(g->env->loop), delay = 0;
	char reason[sizeof(g->reason)];
	switch (sv_restart_decide(pp, &g->rs, c, now, uptime_ms, &delay)) {
	case SV_RESTART_YES:
		snprintf(reason, sizeof(reason), "%s; restarting in %.1fs (%u of %u in %llus)",
		         what, (double)delay / 1000.0,
		         sv_restart_recent(&g->rs, now, pp->interval_ms), pp->burst,
		         (unsigned long long)(pp->interval_ms / 1000));
		sv_log_event(SV_LOG_INFO, g->name, SV_MSGID_RESTART, "restart scheduled in %.1fs "
		             "(%u of %u in %llus)", (double)delay / 1000.0,
		             sv_restart_recent(&g->rs, now, pp->interval_ms), pp->burst,
		             (unsigned long long)(pp->interval_ms / 1000));
		sv_guest_backoff(g, delay, reason);
		break;
	case SV_RESTART_QUARANTINE:
		snprintf(reason, sizeof(reason), "%s; failed: %u restart%s within %llus "
		         "(reset-failed or start re-arms it)", what, pp->burst,
		         pp->burst == 1 ? "" : "s", (unsigned long long)(pp->interval_ms / 1000));
		sv_log_event(SV_LOG_ERR, g->name, SV_MSGID_FAILED, "too many restarts (%u within "
		             "%llus); failed, not restarting", pp->burst,
		             (unsigned long long)(pp->interval_ms / 1000));
		sv_guest_transition(g, SV_FAILED, reason);
		break;
	default:
		sv_guest_transition(g, SV_STOPPED, what);
	}
}

void sv_guest_ended(struct sv_guest *g, enum sv_exit_class c, const char *what)
{
	struct sv_restart_params pp;
	const struct sv_profile *p = g->run_profile ? g->run_profile : g->profile;
	uint64_t uptime = g->up_ms ? uv_now(g->env->loop) - g->up_ms : 0;   /* since running */
	sv_restart_params_from(&pp, p);
	g->last_exit = c;
	if (g->run_profile != g->profile)
		sv_profile_free(g->run_profile);
	g->run_profile = NULL;
	g->started_ms = g->up_ms = 0;
	bool restart_waiting = false;
	for (struct sv_waiter *w = g->waiters; w; w = w->next)
		restart_waiting |= w->kind == SV_WAIT_RESTART;
	bool reborn = g->reborn && !g->env->exiting && g->profile;
	g->reborn = false;
	/* A start that failed before the guest ran (a missing file, a port in
	 * use, a bad format, QEMU's refusal of its command line...) fails once:
	 * it would fail the same way again. The restart policy is for guests
	 * that ran: only a restart it started goes on under it (burst, then
	 * failed). */
	bool never_ran = c == SV_EXIT_START_FAILURE && !g->run_by_policy;
	g->run_by_policy = false;
	char stopped[sizeof(g->reason)];
	if (never_ran || g->start_config_error)
		snprintf(stopped, sizeof(stopped), "%s; not restarted: %s (fix the cause, "
		         "then start it)", what, never_ran ? "the guest never ran"
		         : "its profile cannot run on this host");
	if (c == SV_EXIT_MIGRATED)
		sv_guest_transition(g, SV_MIGRATED, what);   /* it runs elsewhere now */
	else if (reborn)
		sv_guest_transition(g, SV_STOPPED, "its start was cut short by a qsupd "
		                    "restart; starting afresh");
	else if (restart_waiting || g->env->exiting || g->removed || !g->profile)
		sv_guest_transition(g, SV_STOPPED, what);
	else if (never_ran || g->start_config_error)
		sv_guest_transition(g, SV_STOPPED, stopped);
	else
		apply_policy(g, c, what, &pp, uptime);
	sv_guest_log_ended(g, c);   /* with the outcome: g->reason */
	sv_guest_finish_waiters(g, SV_WAIT_STOPPED, true);
	sv_guest_finish_waiters(g, SV_WAIT_RUNNING, false);
	run_restart_waiters(g, c);
	const struct sv_guest_observer *o;
	for (size_t i = 0; sv_state_is_down(g->state) && (o = sv_observer(g, i)); i++)
		if (o->stopped)
			o->stopped(g);   /* hot-plugged devices last until a stop */
	if (!sv_guest_active(g) && !g->prepping && g->state != SV_BACKOFF)
		sv_guest_lock_drop(g);
	struct sv_error err = { 0 };
	if (reborn)
		snprintf(g->start_why, sizeof(g->start_why), "its start was cut short by a "
		         "qsupd restart");
	if (reborn && sv_guest_start(g, NULL, &err) < 0)
		sv_log(SV_LOG_ERR, g->name, "start: %s", err.msg);
	if (!sv_guest_active(g) && !g->prepping && g->state != SV_BACKOFF)
		g->env->idle(g->env->owner, g);
}

bool sv_guest_cancel_backoff(struct sv_guest *g, struct sv_request *req)
{
	if (g->state != SV_BACKOFF)
		return false;
	uv_timer_stop(&g->timer);
	sv_guest_transition(g, SV_STOPPED, "stopped by operator (restart cancelled)");
	sv_guest_lock_drop(g);
	if (req)
		sv_reply_ok(req, sv_guest_status(g));
	g->env->idle(g->env->owner, g);
	return true;
}

void sv_guest_reset_failed(struct sv_guest *g, struct sv_request *req)
{
	sv_restart_rearm(&g->rs);
	if (g->state == SV_FAILED)
		sv_guest_transition(g, SV_STOPPED, "re-armed by operator (reset-failed)");
	if (req)
		sv_reply_ok(req, sv_guest_status(g));
}
