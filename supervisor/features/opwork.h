/*
 * The work a storage operation (a backup, a snapshot) does off the loop:
 * steps on libuv's thread pool, each leaving its result (rc, err) to the
 * step after it on the loop, and qemu-img spawned with its output in a log
 * of the guest's. Embedded in the operation; each callback is handed the
 * operation itself.
 */
#ifndef SV_OPWORK_H
#define SV_OPWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "util.h"

struct sv_guest;

struct sv_opwork {
	uv_work_t uw;
	uv_process_t *proc;             /* qemu-img while it runs */
	struct sv_guest *g;
	void *op;                       /* the operation: each callback's argument */
	const char *imglog;             /* qemu-img's log, in RUNDIR/NAME */
	void (*fn)(void *op);
	void (*after)(void *op);
	void (*img_next)(void *op, bool ok);
	int rc;                         /* the last step's: 0, or a negative errno (err) */
	struct sv_error err;
};

/* w for op on guest g; imglog (a constant) names qemu-img's log. */
void sv_opwork_init(struct sv_opwork *w, struct sv_guest *g, void *op, const char *imglog);

/* fn(op) on the thread pool (rc 0 before it), then after(op) on the loop.
 * When the work cannot run, rc and err say why, and after(op) is called at
 * once. */
void sv_opwork_run(struct sv_opwork *w, void (*fn)(void *op), void (*after)(void *op));

/* qemu-img with args (sv_qemu_img), its output into the log; next(op, ok)
 * when it ends. Returns 0, or a negative errno (next is not called). */
int sv_opwork_img(struct sv_opwork *w, const char *const *args,
                  void (*next)(void *op, bool ok));

/* The end of that log (why qemu-img failed), or "failed". */
void sv_opwork_img_tail(struct sv_opwork *w, char *buf, size_t size);

/* Now in UTC, as the records and manifests give times (ISO 8601). */
char *sv_opwork_now(char *buf, size_t size);

#endif
