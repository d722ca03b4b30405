/* The restart policy's arithmetic: see restart.h. */
#include <stdlib.h>
#include <string.h>

#include "restart.h"

const char *sv_exit_class_name(enum sv_exit_class c)
{
	static const char *const names[] = {
		[SV_EXIT_NONE] = "none", [SV_EXIT_POWEROFF] = "poweroff",
		[SV_EXIT_PANIC] = "panic", [SV_EXIT_CRASH] = "crash",
		[SV_EXIT_OPERATOR] = "operator", [SV_EXIT_START_FAILURE] = "start-failure",
		[SV_EXIT_QUIT] = "quit", [SV_EXIT_MIGRATED] = "migrated",
		[SV_EXIT_SAVED] = "saved", [SV_EXIT_INCOMING] = "incoming-failed",
		[SV_EXIT_INTERNAL_ERROR] = "internal-error",
	};
	return names[c];
}

void sv_restart_params_from(struct sv_restart_params *pp, const struct sv_profile *p)
{
	pp->policy = p->restart_policy;
	pp->delay_ms = p->restart_delay_ms;
	pp->max_delay_ms = p->restart_max_delay_ms;
	pp->interval_ms = p->restart_interval_ms;
	pp->stable_ms = p->restart_stable_ms;
	pp->burst = p->restart_burst;
}

bool sv_restart_wanted(enum sv_restart_policy policy, enum sv_exit_class c)
{
	bool failure = c == SV_EXIT_CRASH || c == SV_EXIT_PANIC || c == SV_EXIT_START_FAILURE ||
	               c == SV_EXIT_INTERNAL_ERROR;
	switch (policy) {
	case SV_RESTART_ON_FAILURE:
		return failure;
	case SV_RESTART_ALWAYS:
		return failure || c == SV_EXIT_POWEROFF;
	default:
		return false;
	}
}

unsigned sv_restart_recent(const struct sv_restart_state *st, uint64_t now_ms,
                           uint64_t interval_ms)
{
	unsigned n = 0;
	for (unsigned i = 0; i < st->count; i++) {
		uint64_t t = st->times[(st->head + st->cap - 1 - i) % st->cap];
		if (now_ms >= t && now_ms - t >= interval_ms)
			break;   /* the ones before it are older still */
		n++;
	}
	return n;
}

/* Keep room for the last `burst` times, in order. */
static int ring_fit(struct sv_restart_state *st, unsigned burst)
{
	if (st->cap == burst)
		return 0;
	uint64_t *v = calloc(burst, sizeof(*v));
	if (!v)
		return -1;
	unsigned keep = st->count < burst ? st->count : burst;
	for (unsigned i = 0; i < keep; i++)   /* newest last */
		v[keep - 1 - i] = st->times[(st->head + st->cap - 1 - i) % st->cap];
	free(st->times);
	st->times = v;
	st->cap = burst;
	st->count = keep;
	st->head = keep % burst;
	return 0;
}

/* delay * 2^(n-1), capped, without overflowing. */
static uint64_t backoff(const struct sv_restart_params *pp, unsigned n)
{
	uint64_t d = pp->delay_ms;
	for (unsigned i = 1; i < n && d < pp->max_delay_ms; i++)
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	return d < pp->max_delay_ms ? d : pp->max_delay_ms;
}

enum sv_restart_verdict sv_restart_decide(const struct sv_restart_params *pp,
                                          struct sv_restart_state *st,
                                          enum sv_exit_class c, uint64_t now_ms,
                                          uint64_t uptime_ms, uint64_t *delay_ms)
{
	if (!sv_restart_wanted(pp->policy, c))
		return SV_RESTART_NO;
	if (pp->burst == 0)     /* no restart allowed; and a ring of 0 divides by 0 */
		return SV_RESTART_QUARANTINE;
	if (ring_fit(st, pp->burst) < 0)
		return SV_RESTART_NO;
	if (c != SV_EXIT_START_FAILURE && uptime_ms >= pp->stable_ms)
		st->consecutive = 0;
	if (sv_restart_recent(st, now_ms, pp->interval_ms) >= pp->burst)
		return SV_RESTART_QUARANTINE;
	st->consecutive++;
	st->total++;
	uint64_t d = backoff(pp, st->consecutive);
	if (c == SV_EXIT_START_FAILURE && d < SV_RESTART_MIN_GAP_MS)
		d = SV_RESTART_MIN_GAP_MS;
	*delay_ms = d;
	st->times[st->head] = now_ms;
	st->head = (st->head + 1) % st->cap;
	if (st->count < st->cap)
		st->count++;
	return SV_RESTART_YES;
}

unsigned sv_restart_times(const struct sv_restart_state *st, uint64_t *out, unsigned max)
{
	unsigned n = st->count < max ? st->count : max;
	for (unsigned i = 0; i < n; i++)   /* the newest n, oldest first */
		out[n - 1 - i] = st->times[(st->head + st->cap - 1 - i) % st->cap];
	return n;
}

int sv_restart_push(struct sv_restart_state *st, uint64_t t, unsigned burst)
{
	if (burst == 0 || ring_fit(st, burst) < 0)
		return -1;
	st->times[st->head] = t;
	st->head = (st->head + 1) % st->cap;
	if (st->count < st->cap)
		st->count++;
	return 0;
}

void sv_restart_rearm(struct sv_restart_state *st)
{
	st->consecutive = 0;
	st->count = st->head = 0;
}

void sv_restart_state_free(struct sv_restart_state *st)
{
	free(st->times);
	st->times = NULL;
	st->cap = st->count = st->head = 0;
}
