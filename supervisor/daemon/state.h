/*
 * Runtime state that outlives qsupd, and re-adoption.
 *
 * Each guest's RUNDIR/NAME/state.json records what a later qsupd needs:
 * QEMU's pid and its start time (/proc/PID/stat), the profile digest, the
 * restart counters and the restart window's times, a pending restart's
 * time, the last exit, and whether SHUTDOWN or GUEST_PANICKED was seen. It
 * is written atomically (write, rename) on libuv's thread pool, one write
 * in flight per guest, and at most once per loop turn however many
 * transitions the turn made; before a spawn it is written by preparation,
 * and waited for (the intent: a QEMU is on its way): a start that cannot
 * write it fails. The intent is the write that was due then, not one more
 * beside it (sv_state_own_begin). Nothing is fsynced: see save_work() in
 * state.c.
 *
 * On start, qsupd re-adopts a QEMU only when it can prove the QEMU is this
 * guest's: alive (not a zombie), its command line names the guest, and its
 * fd 5 is this guest's lock file (lock.h). Candidates come from state.json,
 * the pid file, and, when the lock is held but neither names its holder (a
 * qsupd killed right after the spawn), a scan of /proc; a damaged state
 * file therefore loses nothing. It then watches the exit through a pidfd
 * and reconnects QMP. It never signals a process it did not verify, and a
 * guest whose QMP cannot be recovered is killed (by pidfd), so that it
 * never runs twice. A QEMU found still in prelaunch (its start was cut
 * short) is killed and the guest started afresh; a restart pending in
 * backoff is resumed at its time.
 */
#ifndef SV_STATE_H
#define SV_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

struct sv_guest;

/* Write g's state file soon: when this loop turn ends, once however many
 * calls it saw, on the thread pool, one write in flight per guest (a call
 * while one is writes again when it is done). */
void sv_state_save(struct sv_guest *g);
/* sv_state_save, then w->done(w, g, 0) on the loop once a write that
 * began after this call has been renamed into place, or -errno when it
 * failed (or g went before it was written: -ECANCELED). Waits are told in
 * the order they were asked; sv_guest_persist_cancel() takes one back. */
struct sv_persist_wait;
void sv_state_save_then(struct sv_guest *g, struct sv_persist_wait *w);

/* Set up the daemon's writing of state files (before any guest exists). */
struct sv_daemon;
void sv_state_flush_init(struct sv_daemon *d);

/* Write g's pending state now (g is about to be released). */
void sv_state_flush_guest(struct sv_guest *g);

/* At exit, before the guests are released: write what is due, and close
 * the handle. */
void sv_state_flush_stop(struct sv_daemon *d);

/* g's state file as it is now (malloc'd). */
char *sv_state_text(struct sv_guest *g);

/* The intent before a spawn: g's state file as it is now (malloc'd; NULL
 * when out of memory), which the caller writes off the loop with
 * sv_state_file_write(), then reports with sv_state_own_end(g, 0 or
 * -errno; nonzero also when it did not write it). Unless a write was in
 * flight already, it is the write that was due: the waits asked before
 * are told when it ends, no other write of g begins until then, and what
 * changes meanwhile is written after it; where it is not written, the
 * due write is made the usual way. */
char *sv_state_own_begin(struct sv_guest *g);
void sv_state_own_end(struct sv_guest *g, int err);

/* At daemon start: read g's state file, restore its counters, and re-adopt
 * its QEMU, or account for one that ended while qsupd was down (the restart
 * policy then applies). */
void sv_state_restore(struct sv_guest *g);

/* Take back what a state file's text records (counters, the restart
 * window, whether SHUTDOWN or GUEST_PANICKED was seen, the taint) into g;
 * no I/O. Returns the file's JSON object (a new reference), or NULL with
 * the reason in why when it is not g's state file. */
json_t *sv_state_import(struct sv_guest *g, const char *text, size_t len, char *why,
                        size_t wsize);

#endif
