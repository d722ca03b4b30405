/* A storage operation's work off the loop: see opwork.h. */
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "guest.h"
#include "opwork.h"
#include "subproc.h"

void sv_opwork_init(struct sv_opwork *w, struct sv_guest *g, void *op, const char *imglog)
{
	w->uw.data = w;
	w->g = g;
	w->op = op;
	w->imglog = imglog;
}

/* ---- work on the thread pool ---- */

static void work_cb(uv_work_t *uw)
{
	struct sv_opwork *w = uw->data;
	w->rc = 0;
	w->fn(w->op);
}

static void after_cb(uv_work_t *uw, int status)
{
	struct sv_opwork *w = uw->data;
	if (status < 0)
		w->rc = sv_error_set(&w->err, status, "%s", uv_strerror(status));
	w->after(w->op);
}

void sv_opwork_run(struct sv_opwork *w, void (*fn)(void *op), void (*after)(void *op))
{
	w->fn = fn;
	w->after = after;
	int rc = uv_queue_work(w->g->env->loop, &w->uw, work_cb, after_cb);
	if (rc < 0) {
		w->rc = sv_error_set(&w->err, rc, "cannot queue work");
		after(w->op);
	}
}

/* ---- qemu-img, spawned ---- */

static void on_img_done(void *data, bool ok)
{
	struct sv_opwork *w = data;
	w->img_next(w->op, ok);
}

int sv_opwork_img(struct sv_opwork *w, const char *const *args,
                  void (*next)(void *op, bool ok))
{
	char log[4300];
	mkdir(w->g->rundir, 0755);
	snprintf(log, sizeof(log), "%s/%s", w->g->rundir, w->imglog);
	w->img_next = next;
	return sv_qemu_img(w->g->env->loop, log, args, on_img_done, w, &w->proc);
}

void sv_opwork_img_tail(struct sv_opwork *w, char *buf, size_t size)
{
	sv_guest_log_tail(w->g, w->imglog, buf, size);
	if (!buf[0])
		snprintf(buf, size, "failed");
}

char *sv_opwork_now(char *buf, size_t size)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}
