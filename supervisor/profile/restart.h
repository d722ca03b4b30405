/*
 * The restart policy as arithmetic: which endings restart, how long to wait,
 * and when a guest has crashed too often. No I/O, no clock: the caller
 * passes the time. Unit-tested on its own (tests/unit/test-restart.c).
 *
 *   delay(n)  = min(delay * 2^(n-1), max-delay) for the n-th consecutive
 *               restart, and never under SV_RESTART_MIN_GAP_MS after a
 *               start failure;
 *   n resets to 0 once a run lasted `stable`;
 *   quarantine: an ending that would restart, when `burst` restarts already
 *               happened within the last `interval`, leaves the guest failed.
 */
#ifndef SV_RESTART_H
#define SV_RESTART_H

#include <stdbool.h>
#include <stdint.h>

#include "profile.h"

/* Why a guest ended, decided before the policy is applied. */
enum sv_exit_class {
	SV_EXIT_NONE,           /* has not ended yet */
	SV_EXIT_POWEROFF,       /* SHUTDOWN with guest: true */
	SV_EXIT_PANIC,          /* GUEST_PANICKED */
	SV_EXIT_CRASH,          /* QEMU killed by a signal, non-zero exit, or EOF
	                           without SHUTDOWN */
	SV_EXIT_OPERATOR,       /* stop or kill */
	SV_EXIT_START_FAILURE,  /* QEMU died before it was running */
	SV_EXIT_QUIT,           /* QEMU quit on request (quit through qmp) */
	SV_EXIT_MIGRATED,       /* migrated to another QEMU: it runs there */
	SV_EXIT_SAVED,          /* saved to a file */
	SV_EXIT_INCOMING,       /* an incoming migration (or restore) failed */
	SV_EXIT_INTERNAL_ERROR, /* QEMU stopped the guest in run state
	                           internal-error (a KVM failure), and qsupd
	                           ended QEMU: a crash */
};

#define SV_EXIT_LAST SV_EXIT_INTERNAL_ERROR

/* Never respawn sooner than this after a start failure. */
#define SV_RESTART_MIN_GAP_MS 1000u

struct sv_restart_params {
	enum sv_restart_policy policy;
	uint64_t delay_ms, max_delay_ms, interval_ms, stable_ms;
	unsigned burst;
};

/* The running count of one guest. Zero-initialise. */
struct sv_restart_state {
	unsigned consecutive;           /* restarts since the last stable run */
	unsigned total;                 /* restarts ever (shown in status) */
	uint64_t *times;                /* ring of the last `burst` restart times */
	unsigned cap, head, count;
};

enum sv_restart_verdict {
	SV_RESTART_NO,          /* the policy does not restart this ending */
	SV_RESTART_YES,         /* restart after *delay_ms */
	SV_RESTART_QUARANTINE,  /* too many restarts: the guest is failed */
};

/* The name of a class, as shown in status and events ("crash"...). */
const char *sv_exit_class_name(enum sv_exit_class c);

/* Fill params from a profile. */
void sv_restart_params_from(struct sv_restart_params *pp, const struct sv_profile *p);

/* Does policy restart an ending of class c? */
bool sv_restart_wanted(enum sv_restart_policy policy, enum sv_exit_class c);

/* Decide what follows an ending of class c at time now_ms, after a run of
 * uptime_ms. On SV_RESTART_YES the restart is recorded in st and *delay_ms
 * set. Returns SV_RESTART_NO also when out of memory. */
enum sv_restart_verdict sv_restart_decide(const struct sv_restart_params *pp,
                                          struct sv_restart_state *st,
                                          enum sv_exit_class c, uint64_t now_ms,
                                          uint64_t uptime_ms, uint64_t *delay_ms);

/* Restarts recorded within interval_ms before now_ms. */
unsigned sv_restart_recent(const struct sv_restart_state *st, uint64_t now_ms,
                           uint64_t interval_ms);

/* The restart times in the window's ring, oldest first, into out (at most
 * max of them). Returns how many. */
unsigned sv_restart_times(const struct sv_restart_state *st, uint64_t *out, unsigned max);

/* Put a past restart at time t back into the ring (sized for burst), as
 * when a state file is read: call it oldest first. Returns 0, or -1 when
 * out of memory. */
int sv_restart_push(struct sv_restart_state *st, uint64_t t, unsigned burst);

/* Forget the window and the growth (reset-failed, or an operator start). */
void sv_restart_rearm(struct sv_restart_state *st);

/* Free the ring; st may be used again afterwards. */
void sv_restart_state_free(struct sv_restart_state *st);

#endif
