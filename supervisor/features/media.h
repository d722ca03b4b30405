/*
 * CD-ROM media: the cdrom verb changes the disc in a profile's [cdrom.ID]
 * drive of a running guest, as an installer needs (insert the ISO, eject it
 * to boot the installed disk).
 *
 * insert: qsupd opens the file itself, off the loop (QEMU never opens a
 * profile's file by path, and runs as a uid of its own), hands it over with
 * add-fd (a new fd set, its opaque the file's path), then
 * blockdev-change-medium on "/dev/fdset/N", read-only: the tray opens, the
 * old medium goes, the new one goes in, the tray closes. eject: QMP eject.
 * A tray the guest's OS has locked refuses both: the guest holds it; force
 * (--force) opens it anyway. The fd set of a medium qsupd inserted is
 * removed once that medium is out.
 *
 * The medium of every CD-ROM shows in the status ("media": {ID: PATH or
 * "empty"}). qsupd reads it back from QEMU (query-block, then query-fdsets
 * for the path behind a fd set) after a re-adoption and whenever the tray
 * moves, so a change made otherwise (the guest's eject, the qmp
 * passthrough) shows too.
 */
#ifndef SV_MEDIA_H
#define SV_MEDIA_H

#include <jansson.h>

struct sv_guest;
struct sv_request;

/* The cdrom verb: args {name, id, action: "insert" | "eject", file (insert:
 * an absolute path), format (default raw), force (bool)}. Answers req with
 * {id, medium: PATH or "empty"}. */
void sv_media_cdrom(struct sv_guest *g, struct sv_request *req, json_t *args);

/* The path of the medium in CD-ROM id as qsupd knows it; NULL when the
 * drive is empty or not known. */
const char *sv_media_file(struct sv_guest *g, const char *id);

extern const struct sv_guest_observer sv_media_observer;

#endif
