/*
 * A guest's states and the one table of the transitions between them
 * (machine.c). sv_guest_transition() (guest.c) refuses, and logs as a bug,
 * any change the table does not list; qsupd(8) lists the same table under
 * GUESTS, and tests/unit/test-machine.c checks that the two agree.
 *
 * The predicates name what the code asks of a state ("may it be started?")
 * instead of lists of states scattered over the callers. No I/O here.
 */
#ifndef SV_MACHINE_H
#define SV_MACHINE_H

#include <stdbool.h>

enum sv_state {
	SV_STOPPED, SV_STARTING, SV_RUNNING, SV_PAUSED, SV_STOPPING,
	SV_BACKOFF, SV_FAILED, SV_MIGRATING, SV_INCOMING, SV_MIGRATED,
};

#define SV_NSTATES (SV_MIGRATED + 1)

/* The state's name: "running", "stopped"... ("?" for no state). */
const char *sv_state_name(enum sv_state s);

/* May a guest in from go to to? A same-state change is legal only where
 * the table says so (a new reason for the same state). False for values
 * that are no state. */
bool sv_transition_legal(enum sv_state from, enum sv_state to);

/* Start (sv_guest_start): stopped, failed, backoff, or migrated (an
 * operator's start runs a migrated guest here again). */
bool sv_state_can_start(enum sv_state s);

/* An operator's start there is a fresh beginning that re-arms the restart
 * window (commands.c): stopped or failed. (In backoff the start only comes
 * sooner; a migrated guest keeps its history.) */
bool sv_state_start_rearms(enum sv_state s);

/* Start QEMU for an incoming migration or a restore: stopped, failed or
 * migrated (not backoff: its own restart is due). */
bool sv_state_can_receive(enum sv_state s);

/* qsupd may start the guest on its own, without an operator's start:
 * autostart, a start a qsupd restart cut short, an operator's restart that
 * waited for the exit. Only stopped: never failed (quarantined), nor
 * migrated (it runs elsewhere: a second QEMU would run the guest twice). */
bool sv_state_may_autostart(enum sv_state s);

/* QEMU runs the guest here: running or paused. */
bool sv_state_is_up(enum sv_state s);

/* pause needs running; resume needs paused; reset either (is_up). */
bool sv_state_can_pause(enum sv_state s);
bool sv_state_can_resume(enum sv_state s);

/* Migrate it away or save it: running or paused. */
bool sv_state_can_migrate(enum sv_state s);

/* Hot-plug or unplug: running or paused; while starting or incoming too
 * when the devices of an earlier run are being re-added (replay). */
bool sv_state_can_hotplug(enum sv_state s, bool replay);

/* A QEMU has been launched but does not run the guest yet: starting or
 * incoming (the start deadline applies, a broken QMP fails the start). */
bool sv_state_is_launching(enum sv_state s);

/* A migration stream is in flight, out or in: migrating or incoming. */
bool sv_state_in_migration(enum sv_state s);

/* qsupd drives QEMU's vCPUs itself (it sends stop and cont): starting,
 * incoming, migrating, migrated. qmp passthrough refuses stop and cont. */
bool sv_state_holds_runstate(enum sv_state s);

/* Ended, and nothing restarts it on its own: stopped, failed, migrated.
 * (backoff is not: hot-plugged devices outlive a restart, not a stop.) */
bool sv_state_is_down(enum sv_state s);

#endif
