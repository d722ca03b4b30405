/* Migration: save to a file, restore from one (migrate_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate_int.h"

/* save: the header line, then QEMU's stream through getfd; the new file
 * takes the target's name once the stream is complete (savefile.h). */
static void save_fd_passed(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	char why[700];
	if (r->status != 0) {
		mig_step_error(r, "getfd", why, sizeof(why));
		mig_out_abort(g, "GenericError", why);
		return;
	}
	mig_out_begin(g);
}

static void on_save_opened(void *arg, int fd, const char *tmp, const char *why)
{
	struct sv_guest *g = arg;
	struct sv_mig *m = g->mig;
	bool gone = g->freeing || !m || m->role != ROLE_SAVE || m->tmp;
	sv_guest_unhold(g);
	if (gone) {
		if (fd >= 0)
			sv_savefile_discard(g->env->loop, fd, tmp);
		return;
	}
	if (fd < 0) {
		mig_answer_err(g, "GenericError", why);
		mig_free(g);
		return;
	}
	m->fd = fd;
	m->tmp = strdup(tmp);
	if (!sv_state_can_migrate(g->state)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s became %s meanwhile", g->name,
		         sv_state_name(g->state));
		mig_out_abort(g, "InvalidState", msg);
		return;
	}
	mig_mstep_fd(g, "getfd", json_pack("{s:s}", "fdname", "qsup-save"), fd, save_fd_passed);
}

static void save_go(struct sv_guest *g);

void sv_migrate_save(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *file = mig_str(args, "file");
	struct sv_error err = { 0 };
	if (!mig_source_ready(g, req, args))
		return;
	if (!file || file[0] != '/' || !sv_text_clean(file) || strlen(file) >= 4000) {
		sv_reply_err(req, "InvalidArgument", "%s", "save needs file: an absolute path");
		return;
	}
	if (!g->snap && !mig_snaprec_ok(g, req))   /* the header carries the chain */
		return;
	json_t *argv = mig_profile_argv(g, &err);
	if (!argv) {
		sv_reply_err(req, "GenericError", "%s", err.msg);
		return;
	}
	json_t *h = mig_handover(g, argv);
	char *header = sv_savefile_header(g->env->host_key, h);
	json_decref(h);
	struct sv_mig *m = header ? mig_new(g, ROLE_SAVE, req, args) : NULL;
	if (!m) {
		if (!header)
			sv_reply_err(req, "GenericError", "%s", "out of memory");
		free(header);
		return;
	}
	m->file = strdup(file);
	m->wait = true;
	m->header = header;
	snprintf(m->uri, sizeof(m->uri), "fd:qsup-save");
	mig_out_intent(g, save_go);
}

/* On record (mig_out_intent): the new file, off the loop (it takes the
 * header). */
static void save_go(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	char *header = m->header;
	m->header = NULL;
	sv_guest_hold(g);
	if (sv_savefile_create(g->env->loop, m->file, header, on_save_opened, g) < 0) {
		sv_guest_unhold(g);
		mig_answer_err(g, "GenericError", "out of memory");
		mig_free(g);
	}
}


/* The file is open and its header read (off the loop): check it, then
 * start QEMU waiting for the stream. */
static void on_restore_opened(void *arg, int fd, const char *buf, size_t len, const char *err)
{
	struct sv_guest *g = arg;
	struct sv_mig *m = g->mig;
	char why[600];
	size_t hlen = 0;
	bool gone = g->freeing || !m || m->role != ROLE_RESTORE || m->fd >= 0;
	sv_guest_unhold(g);
	if (gone) {
		if (fd >= 0)
			close(fd);
		return;
	}
	json_t *h = fd >= 0 ? sv_savefile_parse(g->env->host_key, buf, len, &hlen, why, sizeof(why))
	          : NULL;
	if (fd < 0 || !h || lseek(fd, (off_t)hlen, SEEK_SET) != (off_t)hlen) {
		if (fd >= 0 && h)
			snprintf(why, sizeof(why), "%s", strerror(errno));
		json_decref(h);
		if (fd >= 0)
			close(fd);
		char msg[1200];
		snprintf(msg, sizeof(msg), fd < 0 ? "%s" : "%s: %s", fd < 0 ? err : m->file, why);
		mig_answer_err(g, fd < 0 ? "NotFound" : "InvalidArgument", msg);
		mig_free(g);
		return;
	}
	const char *name = mig_str(h, "name");
	char *bad = name && strcmp(name, g->name) == 0 ? mig_argv_mismatch(g, json_object_get(h, "argv"))
	          : NULL;
	if (!name || strcmp(name, g->name) || bad) {
		char msg[1200];
		if (!bad)
			snprintf(msg, sizeof(msg), "%s holds guest %.64s, not %s", m->file,
			         name ? name : "?", g->name);
		mig_answer_err(g, bad ? "ProfileMismatch" : "InvalidArgument", bad ? bad : msg);
		free(bad);
		json_decref(h);
		close(fd);
		mig_free(g);
		return;
	}
	m->fd = fd;
	mig_dest_start(g, h);
	json_decref(h);
}

void sv_migrate_restore(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *file = mig_str(args, "file");
	if (!file || file[0] != '/' || strlen(file) >= 4000) {
		sv_reply_err(req, "InvalidArgument", "%s", "restore needs file: an absolute "
		             "path");
		return;
	}
	json_t *pass = json_pack("{s:O*}", "capabilities", json_object_get(args, "capabilities"));
	bool ok = mig_dest_ready(g, req, pass);
	json_decref(pass);
	if (!ok)
		return;
	struct sv_mig *m = mig_new(g, ROLE_RESTORE, req, args);
	if (!m)
		return;
	m->file = strdup(file);
	snprintf(m->uri, sizeof(m->uri), "fd:qsup-restore");
	sv_guest_hold(g);
	if (sv_savefile_open(g->env->loop, file, on_restore_opened, g) < 0) {
		sv_guest_unhold(g);
		mig_answer_err(g, "GenericError", "out of memory");
		mig_free(g);
	}
}
