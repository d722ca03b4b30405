/*
 * Runtime state that outlives qsupd, and re-adoption.
 *
 * Each guest's RUNDIR/NAME/state.json records what a later qsupd needs:
 * QEMU's pid and its start time (/proc/PID/stat), the profile digest, the
 * restart counters, the last exit, and whether SHUTDOWN or GUEST_PANICKED
 * was seen. It is written atomically (write, fsync, rename) on libuv's
 * thread pool, one write in flight per guest.
 *
 * On start, qsupd re-adopts a QEMU only when its pid is alive, its start
 * time matches and its command line names this guest; it then watches the
 * exit through a pidfd and reconnects QMP. It never signals a process it
 * did not verify, and a guest whose QMP cannot be recovered is killed (by
 * pidfd), so that it never runs twice.
 */
#ifndef SV_STATE_H
#define SV_STATE_H

#include <stdbool.h>

struct sv_guest;

/* Write g's state file (coalesced: a call while a write is in flight
 * writes again when it is done). */
void sv_state_save(struct sv_guest *g);

/* At daemon start: read g's state file, restore its counters, and re-adopt
 * its QEMU, or account for one that ended while qsupd was down (the restart
 * policy then applies). */
void sv_state_restore(struct sv_guest *g);

/* /proc/PID/stat's start time (clock ticks since boot), 0 if unknown. */
unsigned long long sv_proc_starttime(int pid);

/* Does live process pid's command line name guest `name`
 * (-name guest=NAME,...)? */
bool sv_proc_is_guest(int pid, const char *name);

/* Signal an adopted QEMU through its pidfd. */
void sv_adopted_signal(struct sv_guest *g, int sig);

/* Close the pidfd watch (QEMU itself is left alone). Safe when none. */
void sv_adopted_release(struct sv_guest *g);

/* guest.c's QMP callbacks hand over while adopting: QMP is back (read the
 * live state), or it could not be recovered (kill). */
void sv_adopted_qmp_ready(struct sv_guest *g);
void sv_adopted_qmp_lost(struct sv_guest *g, int status);

#endif
