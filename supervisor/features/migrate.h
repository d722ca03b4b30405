/*
 * Live migration, save and restore, over QMP.
 *
 * Source (`migrate NAME URI`): capabilities and parameters from the
 * profile's [migration] and the request, then `migrate`; state migrating;
 * progress from query-migrate twice a second, emitted to subscribers as
 * MIGRATION_PROGRESS. Completed: QEMU quits and the guest is `migrated`
 * (never restarted here). Failed, cancelled or timed out: it stays running.
 *
 * Destination (`incoming NAME URI`): QEMU from the guest's profile with
 * -incoming defer, the hot-plugged devices handed over re-added while it
 * waits, then capabilities, parameters and migrate-incoming; state incoming.
 * Completed: cont (unless the source was paused); running. QEMU ending
 * meanwhile (a broken stream) leaves the guest stopped, never restarted.
 *
 * `migrate NAME --to SOCKET` asks the destination qsupd for `incoming`
 * itself (same profile, checked by comparing QEMU command lines, and the
 * hot-plugged devices), and kills the destination's QEMU if the migration
 * fails.
 *
 * save / restore: the same stream into a file, handed to QEMU as an fd
 * (getfd, fd:NAME), since QEMU's sandbox forbids exec:. The file starts
 * with one line of qsup's own (the profile's command line, the devices,
 * whether the guest was paused); QEMU's stream follows.
 */
#ifndef SV_MIGRATE_H
#define SV_MIGRATE_H

#include <stdbool.h>
#include <jansson.h>

struct sv_guest;
struct sv_request;

/* The optional arguments of migrate, incoming, save and restore (uri,
 * downtime, bandwidth, multifd-channels, capabilities, timeout, wait,
 * postcopy-after): NULL when fine, else why not. Pure. */
const char *sv_migrate_args_bad(json_t *args);

/* The verbs; each answers req. */
void sv_migrate_out(struct sv_guest *g, struct sv_request *req, json_t *args);
void sv_migrate_in(struct sv_guest *g, struct sv_request *req, json_t *args);
void sv_migrate_cancel(struct sv_guest *g, struct sv_request *req, json_t *args);
/* Switch an outgoing migration to postcopy (the postcopy-ram capability
 * must be on); also automatic with migrate's "postcopy-after": N passes. */
void sv_migrate_postcopy(struct sv_guest *g, struct sv_request *req, json_t *args);
void sv_migrate_save(struct sv_guest *g, struct sv_request *req, json_t *args);
void sv_migrate_restore(struct sv_guest *g, struct sv_request *req, json_t *args);

/* guest.c: QMP is up for a QEMU started for an incoming migration (state
 * incoming): set it up. */
void sv_migrate_qmp_ready(struct sv_guest *g);

/* guest.c: a MIGRATION event. */
void sv_migrate_event(struct sv_guest *g, json_t *data);

/* state.c: a re-adopted QEMU in QEMU status st: pick up a migration in
 * progress, finish one that completed while qsupd was down. Returns true
 * when it took over the guest's state. */
bool sv_migrate_adopt(struct sv_guest *g, const char *st);
/* Start-up, after g's state was restored (state.c): a guest with no QEMU
 * to adopt loses the images a copy-storage into it had created (its
 * record in the state dir), which no stream will complete now. */
void sv_migrate_restored(struct sv_guest *g);

/* QEMU is gone, or the guest is freed: fail what waits, stop the timers. */
void sv_migrate_qemu_gone(struct sv_guest *g);
void sv_migrate_free(struct sv_guest *g);

/* supervise.c: did the migration (or save) complete? *saved: a save. */
bool sv_migrate_completed(struct sv_guest *g, bool *saved);
/* Where it went: the URI, or the file. */
const char *sv_migrate_where(struct sv_guest *g);

/* For status: {role, uri, status} of a migration in progress, or NULL. */
json_t *sv_migrate_status(struct sv_guest *g);

/* What migration hears of a guest (guest.h): an incoming QEMU's QMP, the
 * MIGRATION events, a migration in flight at re-adoption, QEMU gone
 * (migrated or saved: ended_by), the status's "migration". */
extern const struct sv_guest_observer sv_migrate_observer;

#endif
