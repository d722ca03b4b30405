/*
 * Saved states that qsupd keeps ("managed saves", as libvirt calls them),
 * and what happens once per host boot.
 *
 * `save` without a file writes STATE_DIR/save/NAME.qsave. The next start
 * of the guest, by the operator or by autostart, resumes it from that file
 * instead of booting it, and removes the file once the guest runs; a file
 * that cannot be restored (damaged, another host's, a changed profile) is
 * renamed NAME.qsave.bad and the guest boots afresh. This is how the guests
 * unit's save action (contrib/qsup-guests) brings guests back after a host
 * reboot.
 *
 * Autostart applies once per host boot (/proc/sys/kernel/random/boot_id),
 * recorded per guest in its state file: a qsupd restarted within the same
 * boot leaves alone the guests the operator stopped. A guest with a managed
 * save is started at boot as if it had autostart = yes: it was running
 * when it was saved.
 */
#ifndef SV_MANAGED_H
#define SV_MANAGED_H

#include <stdbool.h>
#include <stddef.h>

struct sv_daemon;
struct sv_guest;
struct sv_request;
struct sv_error;

/* Set up the daemon's own route (before any managed restore). */
void sv_managed_init(struct sv_daemon *d);

/* Forget the managed restores in flight (at exit). */
void sv_managed_free(struct sv_daemon *d);

/* STATE_DIR/save/NAME.qsave into buf. */
void sv_managed_path(const struct sv_daemon *d, const char *name, char *buf, size_t size);

/* True when guest name has a managed save. */
bool sv_managed_exists(const struct sv_daemon *d, const char *name);

/* Restore g from its managed save; client (may be NULL) is answered when
 * it runs (the reply's "restored_from" names the file) or the restore
 * failed. fallback: boot afresh when it fails (the file is set aside).
 * Returns 0 or -ENOMEM. */
int sv_managed_restore(struct sv_daemon *d, struct sv_guest *g, struct sv_request *client,
                       bool fallback);

/* Start g: from its managed save when it has one, else as sv_guest_start(). */
int sv_managed_start(struct sv_daemon *d, struct sv_guest *g, struct sv_request *req,
                     struct sv_error *err);

/* At daemon start: start the autostart guests and those with a managed
 * save, unless that was done already in this boot. */
void sv_managed_boot(struct sv_daemon *d);

#endif
