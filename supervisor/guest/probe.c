/*
 * The health probe (probe.h): when it is due, and the timer that looks at
 * QEMU or sends `query-status` then. The timer runs only while the guest
 * has a QMP connection, and wakes once per interval, not more: traffic
 * pushes the next probe back when the timer fires, not when the traffic
 * comes.
 */
#include <stdio.h>

#include "guest_int.h"
#include "log.h"
#include "probe.h"
#include "qmp.h"
#include "request.h"
#include "sysutil.h"

uint64_t sv_probe_idle_ms(uint32_t rnd)
{
	return SV_PROBE_IDLE_MS - rnd % (SV_PROBE_IDLE_MS / 4);
}

uint64_t sv_probe_due_in(const struct sv_probe_in *in)
{
	uint64_t anchor = in->last_input, due;
	if (in->last_probe > anchor)
		anchor = in->last_probe;
	if (in->unresponsive) {
		due = anchor + SV_PROBE_BUSY_MS;
	} else if (in->busy_since) {
		if (in->busy_since > anchor)
			anchor = in->busy_since;
		due = anchor + SV_PROBE_BUSY_MS;
	} else {
		if (in->last_look > anchor)
			anchor = in->last_look;
		due = anchor + sv_probe_idle_ms(in->rnd);
		uint64_t slot = due - due % SV_PROBE_SLOT_MS;   /* never later */
		if (slot > anchor)
			due = slot;
	}
	return due > in->now ? due - in->now : 0;
}

bool sv_probe_may_look(const struct sv_probe_in *in)
{
	uint64_t heard = in->last_input > in->last_probe ? in->last_input : in->last_probe;
	return !in->unresponsive && !in->busy_since && in->now < heard + SV_PROBE_ASK_MS;
}

uint32_t sv_probe_rand(uint32_t *state)
{
	uint32_t x = *state ? *state : 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

/* ---- the guest's probe ---- */

void sv_guest_set_unresponsive(struct sv_guest *g, bool on)
{
	if (g->unresponsive == on)
		return;
	g->unresponsive = on;
	if (on)
		sv_log(SV_LOG_WARN, g->name, "QEMU does not answer QMP within %g s: unresponsive",
		       SV_PROBE_DEADLINE_MS / 1000.0);
	else
		sv_log(SV_LOG_INFO, g->name, "QEMU answers again");
	sv_emit(g->route, json_pack("{s:s, s:s, s:{s:s, s:s}}", "event",
	                on ? "GUEST_UNRESPONSIVE" : "GUEST_RESPONSIVE", "guest", g->name,
	                "data", "name", g->name, "state", sv_state_name(g->state)));
	sv_guest_probe_kick(g);
}

/* Can the probe be sent now? (Else the timer comes back soon.) */
static bool can_probe(const struct sv_guest *g)
{
	return qmp_client_is_ready(g->qmp) && !g->adopting && sv_state_is_up(g->state);
}

static void on_probe(uv_timer_t *t);

/* What sv_probe_due_in() needs, now; the busy wait starts now if it must. */
static struct sv_probe_in probe_input(struct sv_guest *g)
{
	uint64_t now = uv_now(g->env->loop);
	if (qmp_client_pending(g->qmp) == 0 && !g->waiters)
		g->probe_busy_since = 0;
	else if (!g->probe_busy_since)
		g->probe_busy_since = now;
	return (struct sv_probe_in){
		.now = now, .last_input = qmp_client_last_input(g->qmp),
		.last_probe = g->probe_done, .busy_since = g->probe_busy_since,
		.last_look = g->probe_look, .unresponsive = g->unresponsive, .rnd = g->probe_rnd,
	};
}

/* Arm the timer for the next probe, with a new jitter draw; none without a
 * QMP connection, nor while a probe is out (its reply comes back here). */
static void schedule(struct sv_guest *g)
{
	if (g->freeing || !g->qmp || g->probing) {
		uv_timer_stop(&g->probe);
		return;
	}
	g->probe_rnd = sv_probe_rand(&g->probe_seed);
	uint64_t due = SV_PROBE_BUSY_MS;   /* not up yet: look again soon */
	if (can_probe(g)) {
		struct sv_probe_in in = probe_input(g);
		due = sv_probe_due_in(&in);
	}
	uv_timer_start(&g->probe, on_probe, due, 0);
}

static void on_probe_reply(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	(void)c;
	g->probing = false;
	g->probe_done = uv_now(g->env->loop);
	if (r->status == UV_ETIMEDOUT) {
		sv_guest_set_unresponsive(g, true);
		schedule(g);
		return;
	}
	if (r->status != 0)
		return;   /* closed: the exit is handled elsewhere */
	sv_guest_set_unresponsive(g, false);
	/* Back to QEMU's real state, should it differ from ours. */
	sv_guest_runstate(g, json_string_value(json_object_get(r->ret, "status")), NULL);
	schedule(g);
}

static void on_probe(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	if (g->freeing || !g->qmp || g->probing)
		return;
	if (can_probe(g)) {
		/* The draw the timer was armed with: due now unless QEMU spoke
		 * (or a wait began) since, which puts the probe off. */
		struct sv_probe_in in = probe_input(g);
		if (sv_probe_due_in(&in) > 0) {
			/* put off: schedule() below */
		} else if (sv_probe_may_look(&in) && sv_proc_waits_for_events(g->pid)) {
			g->probe_look = in.now;   /* idle in its event loop: it would answer */
			sv_log(SV_LOG_DEBUG, g->name, "probe: QEMU waits in its event loop (not asked)");
		} else {
			if (qmp_client_execute(g->qmp, "query-status", NULL, SV_PROBE_DEADLINE_MS,
			                       on_probe_reply, g) == 0) {
				g->probing = true;
				return;
			}
			/* Not sent (out of memory): try again later, not at once. */
			uv_timer_start(&g->probe, on_probe, SV_PROBE_BUSY_MS, 0);
			return;
		}
	}
	schedule(g);
}

void sv_guest_probe_kick(struct sv_guest *g)
{
	if (g && !g->probing)
		schedule(g);
}

void sv_guest_probe_init(struct sv_guest *g)
{
	uv_timer_init(g->env->loop, &g->probe);
	g->probe.data = g;
	sv_guest_hold(g);
	uv_unref((uv_handle_t *)&g->probe);   /* never keeps the loop alive alone */
	uint32_t seed = (uint32_t)uv_hrtime();
	for (const char *p = g->name; *p; p++)
		seed = seed * 31u + (unsigned char)*p;
	g->probe_seed = seed ? seed : 1;
}
