/*
 * Internal to copy-storage (migrate_int.h): what its files share.
 *
 * mig_copy.c        the records, what a failed source leaves in QEMU,
 *                   TLS-PSK, the release and re-adoption
 * mig_copy_source.c the source: the disks, the destination's answer, the
 *                   backing layers, the mirrors, switch-over, progress
 * mig_copy_dest.c   the destination: the new images, the NBD exports
 */
#ifndef SV_MIG_COPY_INT_H
#define SV_MIG_COPY_INT_H

#include "migrate_int.h"

/* The names of what the source adds to QEMU, each followed by the id of
 * a disk (or of a backing layer: ID.lK): its mirror (or backup) job, the
 * nbd node it copies into, a backing layer's own read-only node. */
#define MC_JOB_PREFIX "qsup-mirror-"
#define MC_NODE_PREFIX "qsup-mirror."
#define MC_LAYER_PREFIX "qsup-layer."

/* A QMP step of a copy-storage (dropped once m->copy is over). */
void mc_step(struct sv_guest *g, const char *cmd, json_t *args, int fd, sv_step_fn fn);
/* A disk's id in the handover ("?" without one). */
const char *mc_disk_id(json_t *d);
/* This host's boot id (empty when unknown): the same file on both ends
 * only if they are one host. */
void mc_boot_id(char *buf, size_t size);
/* The host of "HOST:PORT" (s, cut in place; brackets of IPv6 gone), the
 * port in *port (NULL without a colon). */
char *mc_host_port(char *s, char **port);
/* A snapshot layer on its own node: its file (path, opened with flags)
 * into an fd set (add-fd, then fn; -errno when it cannot be opened);
 * then, given add-fd's answer r, the node over it (blockdev-add of l's
 * format, backing: null, then fn). */
int mc_layer_fd(struct sv_guest *g, const char *path, int flags, sv_step_fn fn);
void mc_layer_node(struct sv_guest *g, json_t *l, const char *node, bool writable,
                   const struct qmp_result *r, sv_step_fn fn);
/* The ids of what is copied: each disk's, and each backing layer's. */
json_t *mc_disk_ids(json_t *disks, json_t *layers);
/* Write (text, freed) or remove (NULL) the source's record (in: false)
 * or the destination's (in: true). */
void mc_record(struct sv_guest *g, bool in, char *text);
/* mig_copy_source.c: the source gives up (the guest runs on here). */
void mc_out_fail(struct sv_guest *g, const char *why);
/* mig_copy_dest.c: the destination refuses before anything was made
 * (true, for return). */
bool mc_refuse(struct sv_guest *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
