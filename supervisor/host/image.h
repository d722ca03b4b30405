/*
 * Disk images as qsupd must know them to hand QEMU an fd per file: the
 * backing chain under a qcow2 image, read from the images' own headers.
 * QEMU never opens a backing file by name (it could not: its images are
 * /dev/fdset/N, and it runs as an identity that may not read them), so
 * qsupd follows the chain and opens every layer itself.
 *
 * A backing file's format must be recorded in the image above it (the
 * backing-format header extension, which qemu-img create -F and rebase -F
 * write): qsup never probes a format. Only qcow2 layers are followed; a
 * layer of another format ends the chain.
 */
#ifndef SV_IMAGE_H
#define SV_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "argv.h"
#include "util.h"

/* Bytes of an image's start that sv_qcow2_backing() needs at most. */
#define SV_QCOW2_HEADER_MAX 65536

/* Parse a qcow2 header (the first len bytes of the image, len up to
 * SV_QCOW2_HEADER_MAX). Pure. Returns 1 with the backing file's name (as
 * recorded: absolute, or relative to the image's directory) in name and
 * its format in fmt; 0 when the image has no backing file; or a negative
 * errno with the reason in err (not qcow2, a backing file without a
 * recorded format, an external data file, a name or layout qsup does not
 * follow). */
int sv_qcow2_backing(const uint8_t *buf, size_t len, char *name, size_t nsize, char *fmt,
                     size_t fsize, struct sv_error *err);

/* Follow the backing chain of the image at path (format fmt) into *out
 * (zeroed first; free with sv_chain_free()): nothing for a format other
 * than qcow2. Reads files: run it off the loop. Returns 0, or a negative
 * errno with the reason in err (a missing or unreadable layer, a loop, a
 * chain deeper than SV_CHAIN_MAX, or what sv_qcow2_backing() refuses). */
int sv_image_chain(const char *path, const char *fmt, struct sv_chain *out,
                   struct sv_error *err);

#endif
