/*
 * One QMP step: run a command on a guest's QMP connection (with an fd
 * passed along, or not) and hand the result to a function. Hot-plug,
 * migration, save/restore and their replay and adoption chain their QMP
 * commands as steps.
 *
 * A step's owner says, through its kind, whether it is still there when
 * the reply comes (a migration may have ended meanwhile: the step is then
 * dropped) and what it makes of every result before the step's own
 * function runs (hot-plug keeps QEMU's first error for its reply). A
 * command that cannot even be sent (no connection, out of memory) completes
 * at once with that status. While a step waits for its reply, the guest's
 * health probe comes sooner (probe.h); a step that gets no reply by its
 * deadline marks the guest unresponsive.
 */
#ifndef SV_STEP_H
#define SV_STEP_H

#include <stdbool.h>
#include <jansson.h>

#include "qmp.h"

typedef void (*sv_step_fn)(void *ctx, const struct qmp_result *r);

struct sv_step_kind {
	/* May the step's function still run? NULL: always. */
	bool (*live)(void *ctx);
	/* Sees every result before the step's function. NULL: nothing. */
	void (*seen)(void *ctx, const struct qmp_result *r);
};

/* Run cmd with args (taken; NULL for none) on qmp (NULL: not connected),
 * passing fd along when >= 0 (the caller keeps it); fn(ctx, result) once
 * it is over, unless kind->live(ctx) says the owner is gone. */
void sv_step(struct qmp_client *qmp, const struct sv_step_kind *kind, const char *cmd,
             json_t *args, int fd, sv_step_fn fn, void *ctx);

/* A command whose answer nobody waits for, on qmp (NULL: dropped); args
 * taken (NULL for none). */
void sv_qmp_fire(struct qmp_client *qmp, const char *cmd, json_t *args);

#endif
