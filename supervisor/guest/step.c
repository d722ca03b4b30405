/* One QMP step (step.h). */
#include <stdlib.h>

#include "guest_int.h"
#include "step.h"

struct step {
	const struct sv_step_kind *kind;
	sv_step_fn fn;
	void *ctx;
};

static void step_end(const struct sv_step_kind *kind, sv_step_fn fn, void *ctx,
                     const struct qmp_result *r)
{
	if (kind && kind->live && !kind->live(ctx))
		return;
	if (kind && kind->seen)
		kind->seen(ctx, r);
	fn(ctx, r);
}

static void on_step(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct step s = *(struct step *)arg;
	free(arg);
	/* No reply by its deadline: QEMU hangs, whatever the probe says yet. */
	if (r->status == UV_ETIMEDOUT)
		sv_guest_set_unresponsive(qmp_client_data(c), true);
	step_end(s.kind, s.fn, s.ctx, r);
}

void sv_step(struct qmp_client *qmp, const struct sv_step_kind *kind, const char *cmd,
             json_t *args, int fd, sv_step_fn fn, void *ctx)
{
	struct step *s = malloc(sizeof(*s));
	int rc = UV_ENOTCONN;
	if (s) {
		*s = (struct step){ kind, fn, ctx };
		if (qmp)
			rc = fd >= 0 ? qmp_client_execute_fd(qmp, cmd, args, fd, 0, on_step, s)
			             : qmp_client_execute(qmp, cmd, args, 0, on_step, s);
	}
	json_decref(args);
	if (rc == 0)   /* the probe comes sooner while the reply is due */
		sv_guest_probe_kick(qmp_client_data(qmp));
	if (rc < 0) {
		free(s);
		struct qmp_result r = { .status = rc };
		step_end(kind, fn, ctx, &r);
	}
}

void sv_qmp_fire(struct qmp_client *qmp, const char *cmd, json_t *args)
{
	if (qmp)
		qmp_client_execute(qmp, cmd, args, 0, NULL, NULL);
	json_decref(args);
}
