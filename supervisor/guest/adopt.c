/*
 * A QEMU that an earlier qsupd started (state.c finds and verifies it):
 * watched through its pidfd, since it is not our child, signalled through
 * it (never a reused pid), and its QMP taken back: QEMU's run state says
 * where the guest is, unless a feature takes it over (a migration in
 * flight).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "guest_int.h"
#include "log.h"
#include "machine.h"
#include "qmp.h"
#include "step.h"


void sv_adopted_release(struct sv_guest *g)
{
	if (g->pidfd_poll) {
		sv_guest_close_free(g, (uv_handle_t *)g->pidfd_poll);
		g->pidfd_poll = NULL;
	}
	if (g->pidfd >= 0) {
		close(g->pidfd);
		g->pidfd = -1;
	}
	g->adopted = g->adopting = false;
}

void sv_adopted_signal(struct sv_guest *g, int sig)
{
	if (g->pidfd >= 0 && pidfd_send_signal(g->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
		sv_log(SV_LOG_WARN, g->name, "signal %d: %s", sig, strerror(errno));
}

static void on_pidfd(uv_poll_t *p, int status, int events)
{
	struct sv_guest *g = p->data;
	(void)status;
	(void)events;
	/* Not our child: its exit status is not ours to read. */
	sv_guest_qemu_gone(g, 0, 0);
}

/* The replies to the commands a re-adoption sends first: the
 * connection ended before them or they were not even sent (step.h). */
static bool reply_lost(const struct qmp_result *r)
{
	return r->status == UV_ENOTCONN || r->status == UV_ENOMEM || r->status == UV_EINVAL ||
	       r->status == UV_EOF || r->status == UV_ECONNRESET || r->status == UV_EPROTO ||
	       r->status == UV_ECONNREFUSED || r->status == UV_ENOENT;
}

/* The answers are in: what QEMU runs (st, may be NULL), and whether a
 * migration runs (mig, query-migrate's reply; NULL where none can: see
 * sv_guest.adopt_ask_mig). The guest leaves starting only now, so that
 * nobody sees it running with a migration not yet looked at. */
static void adopt_done(struct sv_guest *g, const char *st, const struct qmp_result *mig)
{
	char reason[128];
	if (st && strcmp(st, "prelaunch") == 0) {
		/* Its start was cut short by the qsupd before us: the guest never
		 * ran. Start it afresh, through the whole start. */
		sv_log(SV_LOG_WARN, g->name, "pid %d is still in prelaunch (its start was "
		       "interrupted); killing it and starting the guest afresh", g->pid);
		g->reborn = true;
		g->force_kill = true;
		sv_adopted_signal(g, SIGKILL);
		return;
	}
	sv_guest_start_done(g);
	if (g->state != SV_STARTING)
		return;   /* stopped or killed meanwhile: the stop goes on */
	bool taken = false;   /* by a feature: a migration in flight */
	const struct sv_guest_observer *o;
	for (size_t i = 0; !taken && (o = sv_observer(g, i)); i++)
		taken = o->adopt && o->adopt(g, st);
	if (!taken) {
		snprintf(reason, sizeof(reason), "re-adopted (pid %d%s%s)", g->pid,
		         st && strcmp(st, "running") ? ", QEMU status " : "",
		         st && strcmp(st, "running") ? st : "");
		enum sv_state to = st && strcmp(st, "running") == 0 ? SV_RUNNING : SV_PAUSED;
		/* Where it is what state.json says already, nothing a later qsupd
		 * reads changes (the reason is only shown): no write, so that
		 * re-adopting many guests costs no file writes. */
		g->persist_quiet = strcmp(g->adopt_was, sv_state_name(to)) == 0;
		sv_guest_transition(g, to, reason);
		g->persist_quiet = false;
	}
	for (size_t i = 0; (o = sv_observer(g, i)); i++)
		if (o->adopted)
			o->adopted(g);
	for (size_t i = 0; (o = sv_observer(g, i)); i++)
		if (o->adopt_migrate)
			o->adopt_migrate(g, mig);
	if (!taken && st && strcmp(st, "internal-error") == 0)
		sv_guest_runstate(g, st, NULL);   /* broken while we were away: end it */
}

static void on_query_migrate(void *arg, const struct qmp_result *r);

static void adopted_qmp_lost(struct sv_guest *g, int status);

/* No answer before QMP's deadline (or no greeting: the negotiation timed
 * out and the connection ends). QEMU lives (its pidfd says so) but is
 * frozen or starved: what it runs is unknown, so the guest stays in its
 * re-adoption, and the question goes out again on a new connection once
 * this one is closed (sv_adopted_qmp_closed). */
static bool adopt_timed_out(struct sv_guest *g, const struct qmp_result *r)
{
	if (r->status != UV_ETIMEDOUT)
		return false;
	if (g->adopting && !g->adopt_again && g->qmp) {
		g->adopt_again = true;
		qmp_client_close(g->qmp);   /* a no-op where it is closing already */
	}
	return true;
}

static void on_query_status(void *arg, const struct qmp_result *r)
{
	struct sv_guest *g = arg;
	if (r->status == UV_ECANCELED)
		return;   /* qsupd closed the connection: it is exiting, or asks again */
	if (adopt_timed_out(g, r))
		return;
	if (reply_lost(r)) {
		adopted_qmp_lost(g, r->status);
		return;
	}
	if (!g->adopting)
		return;
	const char *st = r->status == 0 ? json_string_value(json_object_get(r->ret, "status")) : NULL;
	snprintf(g->adopt_st, sizeof(g->adopt_st), "%s", st ? st : "");
	g->adopt_st_seen = true;
	if (g->adopt_ask_mig)
		return;   /* on_query_migrate, next, goes on */
	if (st && (!strcmp(st, "postmigrate") || !strcmp(st, "finish-migrate"))) {
		/* A migration out ended or ends: which way, QEMU says. */
		g->adopt_ask_mig = true;
		sv_step(g->qmp, NULL, "query-migrate", NULL, -1, on_query_migrate, g);
		return;
	}
	g->adopting = false;
	g->adopt_st_seen = false;
	adopt_done(g, st, NULL);
}

/* After on_query_status (both went out together, QEMU answers in order):
 * the re-adoption ends here. */
static void on_query_migrate(void *arg, const struct qmp_result *r)
{
	struct sv_guest *g = arg;
	if (r->status == UV_ECANCELED)
		return;
	if (adopt_timed_out(g, r))
		return;
	if (reply_lost(r)) {
		adopted_qmp_lost(g, r->status);
		return;
	}
	if (!g->adopting || !g->adopt_st_seen)
		return;
	g->adopting = false;
	g->adopt_st_seen = false;
	adopt_done(g, g->adopt_st[0] ? g->adopt_st : NULL, r);
}

void sv_adopted_connect(struct sv_guest *g)
{
	g->adopt_again = false;
	sv_guest_qmp_connect(g, true);
	/* In one write with the negotiation (eager, corked): one wake-up of
	 * QEMU, which answers them in one go. */
	g->adopt_st_seen = false;
	sv_step(g->qmp, NULL, "query-status", NULL, -1, on_query_status, g);
	if (g->adopt_ask_mig)
		sv_step(g->qmp, NULL, "query-migrate", NULL, -1, on_query_migrate, g);
	if (g->qmp)
		qmp_client_uncork(g->qmp);
}

void sv_adopted_qmp_closed(struct sv_guest *g, int status)
{
	if (!g->adopting)
		return;
	if (!g->adopt_again) {
		adopted_qmp_lost(g, status);
		return;
	}
	g->adopt_tries++;
	sv_log(SV_LOG_WARN, g->name, "QEMU pid %d gave no QMP answer in time (frozen, or the "
	       "host is overloaded; %u attempt%s so far): its state is unknown, so the guest "
	       "stays in its re-adoption; asking again", g->pid, g->adopt_tries,
	       g->adopt_tries == 1 ? "" : "s");
	g->env->activity(g->env->owner);   /* the verbs waiting on it get their answer */
	sv_adopted_connect(g);   /* no connection: its query-status fails, QEMU is killed */
}

static void adopted_qmp_lost(struct sv_guest *g, int status)
{
	if (!g->adopting)
		return;
	g->adopting = false;
	sv_log(SV_LOG_ERR, g->name, "cannot recover QMP of pid %d (%s); killing it so that "
	       "the guest never runs twice", g->pid, qmp_strerror(status));
	sv_adopted_signal(g, SIGKILL);
}

void sv_adopted_watch(struct sv_guest *g)
{
	g->pidfd_poll = calloc(1, sizeof(*g->pidfd_poll));
	if (g->pidfd_poll && uv_poll_init(g->env->loop, g->pidfd_poll, g->pidfd) == 0) {
		g->pidfd_poll->data = g;
		sv_guest_hold(g);
		uv_poll_start(g->pidfd_poll, UV_READABLE, on_pidfd);
	} else {
		free(g->pidfd_poll);
		g->pidfd_poll = NULL;
	}
}
