/*
 * New qcow2 images into a running QEMU, one block node each, before a
 * transaction puts them to use (snapshot overlays, backup targets): each
 * image's fd, opened by qsupd, goes in with add-fd, then a qcow2 node over
 * it with blockdev-add, one image after the other. What went in can be
 * taken out again.
 */
#ifndef SV_BLOCKADD_H
#define SV_BLOCKADD_H

#include <stdbool.h>
#include <stddef.h>

struct sv_guest;

/* One image; the pointers are into the caller's own disk record. */
struct sv_blockadd_item {
	const char *disk;       /* the disk's id, for messages */
	const char *path;       /* the image (add-fd's opaque, messages) */
	const char *node;       /* the qcow2 node to add (no backing: the caller links it) */
	char fnode[64];         /* its file node's name */
	int *fd;                /* the opened image: closed, and -1, once handed over */
	int *fdset;             /* out: QEMU's fd set, or -1 */
	bool *added;            /* out: the node is in QEMU */
};

struct sv_blockadd {
	struct sv_guest *g;
	struct sv_blockadd_item *items;   /* the caller's, n of them */
	size_t n, i;
	/* Once every image is in (err NULL), or at the first failure: err
	 * says which image and why; what went in before stays (drop it). */
	void (*done)(void *arg, const char *err);
	void *arg;
	const char *ended;      /* the message when QEMU is gone meanwhile */
	bool gone;              /* out: that is why it stopped */
	char err[700];
};

/* Add b's images, b filled in by the caller (i is set here). */
void sv_blockadd_run(struct sv_blockadd *b);

/* blockdev-del and remove-fd of what went in (answers not awaited). */
void sv_blockadd_drop(struct sv_guest *g, struct sv_blockadd_item *items, size_t n);

#endif
