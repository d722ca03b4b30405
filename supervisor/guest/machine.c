/*
 * The state machine as data: see machine.h. Each row says who makes each
 * of its transitions; qsupd(8) (GUESTS) lists the same table.
 */
#include <stddef.h>

#include "machine.h"

static const char *const state_names[SV_NSTATES] = {
	[SV_STOPPED] = "stopped", [SV_STARTING] = "starting", [SV_RUNNING] = "running",
	[SV_PAUSED] = "paused", [SV_STOPPING] = "stopping", [SV_BACKOFF] = "backoff",
	[SV_FAILED] = "failed", [SV_MIGRATING] = "migrating", [SV_INCOMING] = "incoming",
	[SV_MIGRATED] = "migrated",
};

static bool valid(enum sv_state s)
{
	return (unsigned)s < SV_NSTATES;
}

const char *sv_state_name(enum sv_state s)
{
	return valid(s) ? state_names[s] : "?";
}

#define TO(s) [SV_##s] = true

/* legal[from][to]. "Ended" is sv_guest_ended() (supervise.c): QEMU exited,
 * or a start failed before QEMU ran, and the restart policy chose stopped,
 * backoff or failed (migrated: the migration had completed). */
static const bool legal[SV_NSTATES][SV_NSTATES] = {
	/* start, incoming (migrate-in, restore); after a qsupd restart
	 * (state.c): re-adopt a live QEMU (starting), put a recorded state
	 * back (backoff, failed, migrated), or account for a QEMU that ended
	 * while qsupd was down (ended: stopped again with its reason, backoff,
	 * failed). */
	[SV_STOPPED] = { TO(STOPPED), TO(STARTING), TO(INCOMING), TO(BACKOFF), TO(FAILED),
	                 TO(MIGRATED) },
	/* cont succeeded (running); re-adoption found QEMU running, paused,
	 * in an incoming or outgoing migration; stop or kill; ended. */
	[SV_STARTING] = { TO(RUNNING), TO(PAUSED), TO(INCOMING), TO(MIGRATING), TO(STOPPING),
	                  TO(STOPPED), TO(BACKOFF), TO(FAILED) },
	/* pause (QMP STOP, or the probe sees it); stop or kill; migrate or
	 * save; ended. */
	[SV_RUNNING] = { TO(PAUSED), TO(STOPPING), TO(MIGRATING), TO(STOPPED), TO(BACKOFF),
	                 TO(FAILED) },
	[SV_PAUSED] = { TO(RUNNING), TO(STOPPING), TO(MIGRATING), TO(STOPPED), TO(BACKOFF),
	                TO(FAILED) },
	/* QEMU exited: stopped by the operator; migrated when the migration
	 * had completed just before a stop --force or kill. Never restarted. */
	[SV_STOPPING] = { TO(STOPPED), TO(MIGRATED) },
	/* The restart's start; stop or kill cancel it; a start that fails at
	 * once ends again (backoff anew with a new delay, or failed). */
	[SV_BACKOFF] = { TO(STARTING), TO(STOPPED), TO(BACKOFF), TO(FAILED) },
	/* reset-failed; start re-arms; incoming. */
	[SV_FAILED] = { TO(STOPPED), TO(STARTING), TO(INCOMING) },
	/* Failed or cancelled: back as it was (running or paused); stop
	 * --force or kill; completed: migrated (or stopped, saved); QEMU
	 * crashed; a migration picked up after a qsupd restart gets its
	 * reason anew (migrating). */
	[SV_MIGRATING] = { TO(RUNNING), TO(PAUSED), TO(MIGRATING), TO(STOPPING), TO(STOPPED),
	                   TO(BACKOFF), TO(FAILED), TO(MIGRATED) },
	/* The stream is in (running, or paused as on the source); stop or
	 * kill; failed: stopped, never restarted (the guest runs at the
	 * source, or is in its save file). */
	[SV_INCOMING] = { TO(RUNNING), TO(PAUSED), TO(STOPPING), TO(STOPPED) },
	/* Only an operator's start, or a migration back in: never a restart
	 * (sv_state_may_autostart). */
	[SV_MIGRATED] = { TO(STARTING), TO(INCOMING) },
};

#undef TO

bool sv_transition_legal(enum sv_state from, enum sv_state to)
{
	return valid(from) && valid(to) && legal[from][to];
}

#define BIT(s) (1u << (s))

static bool in(enum sv_state s, unsigned set)
{
	return valid(s) && (BIT(s) & set) != 0;
}

bool sv_state_can_start(enum sv_state s)
{
	return in(s, BIT(SV_STOPPED) | BIT(SV_FAILED) | BIT(SV_BACKOFF) | BIT(SV_MIGRATED));
}

bool sv_state_start_rearms(enum sv_state s)
{
	return in(s, BIT(SV_STOPPED) | BIT(SV_FAILED));
}

bool sv_state_can_receive(enum sv_state s)
{
	return in(s, BIT(SV_STOPPED) | BIT(SV_FAILED) | BIT(SV_MIGRATED));
}

bool sv_state_may_autostart(enum sv_state s)
{
	return in(s, BIT(SV_STOPPED));
}

bool sv_state_is_up(enum sv_state s)
{
	return in(s, BIT(SV_RUNNING) | BIT(SV_PAUSED));
}

bool sv_state_can_pause(enum sv_state s)
{
	return in(s, BIT(SV_RUNNING));
}

bool sv_state_can_resume(enum sv_state s)
{
	return in(s, BIT(SV_PAUSED));
}

bool sv_state_can_migrate(enum sv_state s)
{
	return in(s, BIT(SV_RUNNING) | BIT(SV_PAUSED));
}

bool sv_state_can_hotplug(enum sv_state s, bool replay)
{
	return in(s, BIT(SV_RUNNING) | BIT(SV_PAUSED)) ||
	       (replay && in(s, BIT(SV_STARTING) | BIT(SV_INCOMING)));
}

bool sv_state_is_launching(enum sv_state s)
{
	return in(s, BIT(SV_STARTING) | BIT(SV_INCOMING));
}

bool sv_state_in_migration(enum sv_state s)
{
	return in(s, BIT(SV_MIGRATING) | BIT(SV_INCOMING));
}

bool sv_state_holds_runstate(enum sv_state s)
{
	return in(s, BIT(SV_STARTING) | BIT(SV_INCOMING) | BIT(SV_MIGRATING) | BIT(SV_MIGRATED));
}

bool sv_state_is_down(enum sv_state s)
{
	return in(s, BIT(SV_STOPPED) | BIT(SV_FAILED) | BIT(SV_MIGRATED));
}
