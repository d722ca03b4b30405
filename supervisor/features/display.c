/* A guest's VNC display: see display.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "display.h"
#include "guest.h"
#include "log.h"
#include "request.h"
#include "step.h"
#include "vnc.h"

static const struct sv_profile *prof(struct sv_guest *g)
{
	return g->run_profile ? g->run_profile : g->profile;
}

static const char *auth_name(const struct sv_profile *p)
{
	return p->vnc_password_file ? "password-file" : p->vnc_password_generate ? "generated"
	       : "none";
}

bool sv_display_uri(struct sv_guest *g, char *buf, size_t size)
{
	const struct sv_profile *p = prof(g);
	if (!p || !p->vnc || g->vnc_display < 0 || !sv_guest_active(g) || g->adopting)
		return false;
	snprintf(buf, size, strchr(p->vnc_listen, ':') ? "vnc://[%s]:%d" : "vnc://%s:%d",
	         p->vnc_listen, 5900 + g->vnc_display);
	return true;
}

/* ---- the password, before cont ---- */

static void on_password_set(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0)
		sv_log(SV_LOG_WARN, g->name, "VNC: set_password failed (%s); VNC refuses every "
		       "client until a password is set", r->err_desc ? r->err_desc
		       : qmp_strerror(r->status));
	else
		sv_log(SV_LOG_INFO, g->name, "VNC password set (%s)", auth_name(prof(g)));
	sv_guest_unhold(g);
}

/* Sent before cont (commands run in order): the guest never runs with a
 * VNC that anyone could use. Never takes the start over. */
static bool display_qmp_ready(struct sv_guest *g, void (*done)(struct sv_guest *g))
{
	(void)done;
	if (!g->vnc_password[0])
		return false;
	json_t *a = json_pack("{s:s, s:s}", "protocol", "vnc", "password", g->vnc_password);
	explicit_bzero(g->vnc_password, sizeof(g->vnc_password));
	sv_guest_hold(g);
	sv_step(g->qmp, NULL, "set_password", a, -1, on_password_set, g);
	return false;
}

/* ---- re-adoption: which display QEMU listens on ---- */

static void on_query_vnc(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	const char *service = r->status == 0 ? json_string_value(json_object_get(r->ret,
	                      "service")) : NULL;
	long port = service ? strtol(service, NULL, 10) : 0;
	if (port >= 5900 && port < 6000)
		g->vnc_display = (int)(port - 5900);
	else
		sv_log(SV_LOG_WARN, g->name, "VNC: query-vnc gave no display (%s)",
		       r->err_desc ? r->err_desc : "no service");
	sv_guest_unhold(g);
}

static void display_adopted(struct sv_guest *g)
{
	const struct sv_profile *p = prof(g);
	g->vnc_display = -1;
	if (!p || !p->vnc || !g->qmp)
		return;
	sv_guest_hold(g);
	sv_step(g->qmp, NULL, "query-vnc", NULL, -1, on_query_vnc, g);
}

static void display_status(struct sv_guest *g, json_t *st)
{
	char uri[128];
	const struct sv_profile *p = prof(g);
	json_object_set_new(st, "display", sv_display_uri(g, uri, sizeof(uri)) ? json_string(uri)
	                    : json_null());
	json_object_set_new(st, "display_auth", p && p->vnc ? json_string(auth_name(p))
	                    : json_null());
}

static void display_gone(struct sv_guest *g)
{
	explicit_bzero(g->vnc_password, sizeof(g->vnc_password));
}

const struct sv_guest_observer sv_display_observer = {
	.name = "display",
	.qmp_ready = display_qmp_ready,
	.adopted = display_adopted,
	.status = display_status,
	.qemu_gone = display_gone,
	.start_failed = display_gone,
};

/* ---- the display verb ---- */

struct pw_read {
	uv_work_t work;
	struct sv_guest *g;
	struct sv_request *req;
	json_t *ret;
	char path[4200];
	char pw[16];
	int rc;
	struct sv_error err;
};

static void pw_work(uv_work_t *w)
{
	struct pw_read *j = w->data;
	j->rc = sv_vnc_password_read(j->path, j->pw, sizeof(j->pw), &j->err);
}

static void pw_done(uv_work_t *w, int status)
{
	struct pw_read *j = w->data;
	if (status < 0 || j->rc < 0) {
		sv_reply_err(j->req, j->rc == -ENOENT ? "NotFound" : "GenericError", "%s",
		             status < 0 ? uv_strerror(status) : j->err.msg);
		json_decref(j->ret);
	} else {
		json_object_set_new(j->ret, "password", json_string(j->pw));
		sv_reply_ok(j->req, j->ret);
	}
	explicit_bzero(j->pw, sizeof(j->pw));
	sv_guest_unhold(j->g);
	free(j);
}

void sv_display_cmd(struct sv_guest *g, struct sv_request *req, json_t *args)
{
	const struct sv_profile *p = prof(g);
	char uri[128];
	if (!p || !p->vnc) {
		sv_reply_err(req, "NotFound", "%s has no display ([display] vnc = no)", g->name);
		return;
	}
	if (!sv_display_uri(g, uri, sizeof(uri))) {
		sv_reply_err(req, "InvalidState", "%s is %s: no display until it runs", g->name,
		             g->adopting ? "being re-adopted" : sv_state_name(g->state));
		return;
	}
	json_t *ret = json_pack("{s:s, s:s, s:i, s:i, s:s}", "display", uri, "host",
	                        p->vnc_listen, "port", 5900 + g->vnc_display, "vnc_display",
	                        g->vnc_display, "auth", auth_name(p));
	if (!json_is_true(json_object_get(args, "password"))) {
		sv_reply_ok(req, ret);
		return;
	}
	if (!p->vnc_password_file && !p->vnc_password_generate) {
		json_decref(ret);
		sv_reply_err(req, "NotFound", "%s's VNC has no password (set [display] "
		             "password = generate or password-file = PATH)", g->name);
		return;
	}
	struct pw_read *j = calloc(1, sizeof(*j));
	if (!j) {
		json_decref(ret);
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	j->g = g;
	j->req = req;
	j->ret = ret;
	j->work.data = j;
	if (p->vnc_password_file)
		snprintf(j->path, sizeof(j->path), "%s", p->vnc_password_file);
	else
		snprintf(j->path, sizeof(j->path), "%s/%s", g->rundir, SV_VNC_PASSWORD_FILE);
	sv_guest_hold(g);
	if (uv_queue_work(g->env->loop, &j->work, pw_work, pw_done) < 0) {
		sv_guest_unhold(g);
		json_decref(ret);
		free(j);
		sv_reply_err(req, "GenericError", "cannot queue work");
	}
}
