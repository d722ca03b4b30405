/* New qcow2 images into a running QEMU (blockadd.h). */
#include <stdio.h>
#include <unistd.h>

#include "blockadd.h"
#include "guest.h"
#include "qmp.h"
#include "step.h"

static void next(struct sv_blockadd *b);

static void fail(struct sv_blockadd *b, const char *what, const struct qmp_result *r)
{
	struct sv_blockadd_item *it = &b->items[b->i];
	snprintf(b->err, sizeof(b->err), "disk %s: %s of %s: %s", it->disk, what, it->path,
	         r->err_desc ? r->err_desc : qmp_strerror(r->status));
	b->done(b->arg, b->err);
}

static void on_added(void *ctx, const struct qmp_result *r)
{
	struct sv_blockadd *b = ctx;
	if (r->status != 0) {
		fail(b, "blockdev-add", r);
		return;
	}
	*b->items[b->i].added = true;
	b->i++;
	next(b);
}

static void on_fd_added(void *ctx, const struct qmp_result *r)
{
	struct sv_blockadd *b = ctx;
	struct sv_blockadd_item *it = &b->items[b->i];
	close(*it->fd);
	*it->fd = -1;
	if (r->status != 0) {
		fail(b, "add-fd", r);
		return;
	}
	*it->fdset = (int)json_integer_value(json_object_get(r->ret, "fdset-id"));
	char fname[32];
	snprintf(fname, sizeof(fname), "/dev/fdset/%d", *it->fdset);
	sv_step(b->g->qmp, NULL, "blockdev-add", json_pack("{s:s, s:s, s:n, s:{s:s, s:s, s:s}}",
	        "driver", "qcow2", "node-name", it->node, "backing", "file", "driver", "file",
	        "filename", fname, "node-name", it->fnode), -1, on_added, b);
}

static void next(struct sv_blockadd *b)
{
	if (!sv_guest_qmp_up(b->g)) {
		b->gone = true;
		snprintf(b->err, sizeof(b->err), "%s", b->ended ? b->ended : "QEMU ended");
		b->done(b->arg, b->err);
		return;
	}
	if (b->i == b->n) {
		b->done(b->arg, NULL);
		return;
	}
	struct sv_blockadd_item *it = &b->items[b->i];
	sv_step(b->g->qmp, NULL, "add-fd", json_pack("{s:s}", "opaque", it->path), *it->fd,
	        on_fd_added, b);
}

void sv_blockadd_run(struct sv_blockadd *b)
{
	b->i = 0;
	b->gone = false;
	next(b);
}

void sv_blockadd_drop(struct sv_guest *g, struct sv_blockadd_item *items, size_t n)
{
	for (size_t i = 0; g->qmp && i < n; i++) {
		if (*items[i].added)
			sv_qmp_fire(g->qmp, "blockdev-del",
			            json_pack("{s:s}", "node-name", items[i].node));
		if (*items[i].fdset >= 0)
			sv_qmp_fire(g->qmp, "remove-fd",
			            json_pack("{s:i}", "fdset-id", *items[i].fdset));
	}
}
