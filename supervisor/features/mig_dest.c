/* Migration: the destination (migrate_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate_int.h"
#include "snapshot.h"

/* ---- the destination: incoming, restore ---- */

/* The destination's setup failed: say why, and end its QEMU (the guest
 * ends stopped, never restarted). */
void mig_in_abort(struct sv_guest *g, const char *cls, const char *why)
{
	mig_answer_err(g, cls, why);
	g->force_kill = true;
	sv_guest_signal(g, SIGKILL);
}

static void in_listening_now(struct sv_guest *g);

/* tcp:HOST:0 (migrate --to ssh://): the port QEMU picked, from
 * query-migrate's socket-address, goes into the uri answered. */
static bool port_zero(const char *uri)
{
	size_t n = strlen(uri);
	return !strncmp(uri, "tcp:", 4) && n > 6 && !strcmp(uri + n - 2, ":0");
}

static void in_port_known(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	json_t *sa = json_array_get(json_object_get(r->ret, "socket-address"), 0);
	const char *port = mig_str(sa, "port");
	if (r->status != 0 || !port || !strcmp(port, "0")) {
		mig_in_abort(g, "GenericError", "migrate-incoming on port 0: QEMU did not say "
		             "which port it listens on");
		return;
	}
	size_t n = strlen(m->uri);
	snprintf(m->uri + n - 1, sizeof(m->uri) - n + 1, "%s", port);
	in_listening_now(g);
}

static void in_listening(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	char why[700];
	if (r->status != 0) {
		mig_step_error(r, "migrate-incoming", why, sizeof(why));
		mig_in_abort(g, "GenericError", why);
		return;
	}
	if (port_zero(m->uri) && !m->qemu_uri[0]) {
		mig_mstep(g, "query-migrate", NULL, in_port_known);
		return;
	}
	in_listening_now(g);
}

static void in_listening_now(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	sv_guest_start_done(g);   /* waiting for the stream may take long */
	sv_log(SV_LOG_INFO, g->name, "waiting for the migration on %s", m->uri);
	if (m->role == ROLE_IN && m->copy)
		mig_answer_ok(g, json_pack("{s:s, s:s, s:b, s:s}", "status", "listening", "uri",
		                           m->uri, "copy-storage", 1, "nbd", m->nbd));
	else if (m->role == ROLE_IN)
		mig_answer_ok(g, json_pack("{s:s, s:s}", "status", "listening", "uri", m->uri));
	mig_timer_start(g);
}

static void in_params_set(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	char why[700];
	if (r->status != 0) {
		mig_step_error(r, "migrate-set-parameters", why, sizeof(why));
		mig_in_abort(g, "InvalidArgument", why);
		return;
	}
	mig_mstep(g, "migrate-incoming", json_pack("{s:s}", "uri", g->mig->qemu_uri[0]
	      ? g->mig->qemu_uri : g->mig->uri), in_listening);
}

static void in_caps_set(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	char why[700];
	if (r->status != 0) {
		mig_step_error(r, "migrate-set-capabilities", why, sizeof(why));
		mig_in_abort(g, "InvalidArgument", why);
		return;
	}
	mig_mstep(g, "migrate-set-parameters", mig_params_json(g, g->mig->args), in_params_set);
}

static void in_fd_passed(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	char why[700];
	close(m->fd);
	m->fd = -1;
	if (r->status != 0) {
		mig_step_error(r, "getfd", why, sizeof(why));
		mig_in_abort(g, "GenericError", why);
		return;
	}
	mig_mstep(g, "migrate-set-capabilities", mig_caps_json(g, m->args, true), in_caps_set);
}

static void in_next(struct sv_guest *g)
{
	if (g->mig->copy)
		mc_in_export(g);   /* then mig_in_setup_caps */
	else
		mig_in_setup_caps(g);
}

/* The devices are in (or there were none): set up and listen. */
static void in_setup(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!m || g->state != SV_INCOMING)
		return;
	if (m->role == ROLE_RESTORE)
		mig_mstep_fd(g, "getfd", json_pack("{s:s}", "fdname", "qsup-restore"), m->fd,
		         in_fd_passed);
	else
		mc_in_tls_setup(g, in_next);   /* TLS credentials first, when asked */
}

void mig_in_setup_caps(struct sv_guest *g)
{
	mig_mstep(g, "migrate-set-capabilities", mig_caps_json(g, g->mig->args, false),
	          in_caps_set);
}

void sv_migrate_qmp_ready(struct sv_guest *g)
{
	if (!sv_hotplug_replay(g, in_setup))
		in_setup(g);
}

static void on_in_cont(void *arg, const struct qmp_result *r)
{
	struct sv_guest *g = arg;
	struct sv_mig *m = g->mig;
	if (!m || g->state != SV_INCOMING)
		return;
	if (r->status != 0) {
		char why[700];
		mig_step_error(r, "cont", why, sizeof(why));
		mig_answer_err(g, "GenericError", why);
		sv_guest_transition(g, SV_PAUSED, why);
		mig_free(g);
		return;
	}
	char why[700];
	snprintf(why, sizeof(why), "%s %s", m->role == ROLE_RESTORE ? "restored from"
	         : "migrated in from", m->role == ROLE_RESTORE ? m->file : m->uri);
	sv_guest_transition(g, SV_RUNNING, why);
	mig_answer_ok(g, sv_guest_status(g));
	mig_free(g);
}

/* The stream is in: run the guest (or leave it paused, as it was). */
void mig_in_completed(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (m->ending)
		return;
	m->ending = true;
	if (m->copy && !m->in_done) {
		mc_in_completed(g);   /* its NBD server goes, then mig_in_resume */
		return;
	}
	mig_in_resume(g);
}

void mig_in_resume(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (m->was_paused) {
		sv_guest_transition(g, SV_PAUSED, m->role == ROLE_RESTORE
		                    ? "restored (paused, as it was saved)"
		                    : "migrated in (paused, as on the source)");
		mig_answer_ok(g, sv_guest_status(g));
		mig_free(g);
		return;
	}
	if (!g->qmp) {
		mig_answer_err(g, "GenericError", "cont: no QMP connection");
		mig_free(g);
		return;
	}
	mig_mstep(g, "cont", NULL, on_in_cont);
}

/* Common to incoming and restore: the guest is stopped, its profile here. */
bool mig_dest_ready(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *bad = sv_migrate_args_bad(args);
	json_t *devs = json_object_get(args, "devices"), *paused = json_object_get(args, "paused");
	if (!bad && devs && !json_is_array(devs))
		bad = "devices must be a list (as in state.json)";
	if (!bad && paused && !json_is_boolean(paused))
		bad = "paused must be true or false";
	if (bad) {
		sv_reply_err(req, "InvalidArgument", "%s", bad);
		return false;
	}
	if (g->mig || sv_guest_active(g) || g->prepping ||
	    !sv_state_can_receive(g->state)) {
		sv_reply_err(req, "InvalidState", "%s is %s here; it must be stopped, failed or "
		             "migrated", g->name, sv_state_name(g->state));
		return false;
	}
	return true;
}

/* Start QEMU waiting for the stream, with the handed-over devices. */
static void dest_start(struct sv_guest *g, json_t *args)
{
	struct sv_error err = { 0 };
	struct sv_mig *m = g->mig;
	m->was_paused = json_is_true(json_object_get(args, "paused"));
	sv_hotplug_handover(g, json_object_get(args, "devices"));
	g->start_incoming = true;
	snprintf(g->start_why, sizeof(g->start_why), "%s", m->role == ROLE_RESTORE
	         ? "restore" : "migration");
	int rc = sv_guest_start(g, NULL, &err);
	g->start_incoming = false;
	if (rc < 0) {
		mig_answer_err(g, "InvalidState", err.msg);
		sv_hotplug_reset(g);
		mig_free(g);
	}
}

/* The snapshot record is the source's (or refused). */
static void on_chain(struct sv_guest *g, json_t *args, const char *why)
{
	if (!why) {
		dest_start(g, args);
		return;
	}
	char msg[1500];
	snprintf(msg, sizeof(msg), "%s: %s", g->name, why);
	mig_answer_err(g, "InvalidState", msg);
	mig_free(g);
}

/* The source's snapshot chain first (snapshot.h), then QEMU. */
void mig_dest_start(struct sv_guest *g, json_t *args)
{
	if (!sv_snapmig_import(g, args, g->mig->role == ROLE_RESTORE, on_chain))
		dest_start(g, args);
}

/* Postcopy needs userfaultfd in the destination's QEMU, which the kernel
 * gives an unprivileged process only with vm.unprivileged_userfaultfd = 1
 * (QEMU 7.2 has no /dev/userfaultfd). Say so rather than QEMU's "Postcopy
 * is not supported". NULL when fine. */
static const char *postcopy_blocked(struct sv_guest *g, json_t *args)
{
	const struct sv_profile *p = mig_prof(g);
	json_t *caps = mig_caps_json(g, args, false), *e;
	size_t i;
	bool post = false;
	json_array_foreach(json_object_get(caps, "capabilities"), i, e)
		post |= !strcmp(sv_or(mig_str(e, "capability"), ""), "postcopy-ram");
	json_decref(caps);
	bool root = p && p->user && (!strcmp(p->user, "root") || !strcmp(p->user, "0"));
	if (!post || !g->env->idc->root || root)
		return NULL;
	char v = '0';
	int fd = open("/proc/sys/vm/unprivileged_userfaultfd", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && read(fd, &v, 1) != 1)
		v = '0';
	if (fd >= 0)
		close(fd);
	return v == '1' ? NULL : "postcopy-ram needs userfaultfd in QEMU, which runs "
	       "unprivileged: set the sysctl vm.unprivileged_userfaultfd = 1 on this host, "
	       "or run the guest as root ([qemu] user = root)";
}

void sv_migrate_in(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const char *uri = mig_str(args, "uri");
	if (!mig_dest_ready(g, req, args) || sv_snapshot_refuse(g, req))
		return;
	const char *nopost = postcopy_blocked(g, args);
	if (nopost) {
		sv_reply_err(req, "InvalidState", "%s", nopost);
		return;
	}
	char *why = mig_argv_mismatch(g, json_object_get(args, "argv"));
	if (why && json_object_get(args, "argv")) {
		sv_reply_err(req, "ProfileMismatch", "%s", why);
		free(why);
		return;
	}
	free(why);   /* no command line given: a manual incoming, the operator's word */
	/* By default QEMU listens in its own dir, RUNDIR/NAME/qemu, which it
	 * reaches through the fd it inherits (so no directory above it need
	 * be open to QEMU's identity); the source's qsupd connects for it. */
	char auto_uri[640];
	bool automatic = !uri || !strcmp(uri, "unix");
	if (automatic) {
		int n = snprintf(auto_uri, sizeof(auto_uri), "unix:%s/qemu/migrate.sock", g->rundir);
		if (n < 0 || (size_t)n - 5 >= 108) {
			sv_reply_err(req, "InvalidArgument", "%s", "the run dir is too long for "
			             "a unix socket; give uri");
			return;
		}
		uri = auto_uri;
	} else if (strncmp(uri, "unix:", 5) && strncmp(uri, "tcp:", 4)) {
		sv_reply_err(req, "InvalidArgument", "uri '%.100s': use unix:PATH or "
		             "tcp:HOST:PORT", uri);
		return;
	}
	struct sv_mig *m = mig_new(g, ROLE_IN, req, args);
	if (!m)
		return;
	snprintf(m->uri, sizeof(m->uri), "%s", uri);
	if (automatic)
		snprintf(m->qemu_uri, sizeof(m->qemu_uri), "unix:/proc/self/fd/%d/migrate.sock",
		         SV_FD_QEMUDIR);
	if (mc_in_tls(g, args) || mc_in_prepare(g, args))
		return;   /* TLS refused; copy-storage: the images first (or refused) */
	mig_dest_start(g, args);
}
