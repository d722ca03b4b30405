/* qsupctl's verbs on guests' state (ctl.h): list, status, the lifecycle
 * verbs (start, stop, kill, pause, resume, reset, restart, reset-failed;
 * --all through ctl_bulk), reload and events (with ctl_subscribe, which
 * the --wait verbs share). */
#include <stdio.h>

#include "ctl.h"

static void show_list(struct ctl *c, const char *what, json_t *ret)
{
	(void)c, (void)what;
	ctl_fmt_list(stdout, ret);
}

int ctl_list(struct ctl *c, char **args, int nargs)
{
	(void)args, (void)nargs;
	return ctl_request(c, c->cmd->name, NULL, NULL, show_list);
}

static void show_status(struct ctl *c, const char *name, json_t *ret)
{
	(void)name;
	if (c->shown++)
		putchar('\n');
	ctl_fmt_status(stdout, ret);
}

int ctl_status(struct ctl *c, char **args, int nargs)
{
	return ctl_per_name(c, args, nargs, show_status);
}

static void show_outcome(struct ctl *c, const char *name, json_t *ret)
{
	(void)c;
	ctl_fmt_outcome(stdout, name, ret);
}

int ctl_lifecycle(struct ctl *c, char **args, int nargs)
{
	if (c->cmd->flags & CTL_F_ALL)
		return ctl_bulk(c, args, nargs, show_outcome);
	return ctl_per_name(c, args, nargs, show_outcome);
}

/* Profile errors fail the command (also with --json, where they are only in
 * the printed object), so that scripts see them in the exit status. */
int ctl_reload(struct ctl *c, char **args, int nargs)
{
	json_t *reply = NULL, *ret;
	int r = ctl_call(c, "reload", NULL, NULL, &reply);

	(void)args, (void)nargs;
	if (r == CTL_EXIT_OK && !(ret = json_object_get(reply, "return"))) {
		r = ctl_handle_reply(c, NULL, reply, NULL);
	} else if (r == CTL_EXIT_OK) {
		if (c->json)
			ctl_print_json(ret, 0);
		if (c->json ? json_array_size(json_object_get(ret, "errors")) > 0 :
		    ctl_fmt_reload(stdout, stderr, ret) > 0)
			r = CTL_EXIT_ERROR;
	}
	json_decref(reply);
	return r;
}

/* Subscribe this connection to qsupd's events; an error reply is said as
 * the verb's (what: as for ctl_handle_reply). Returns the exit status. */
int ctl_subscribe(struct ctl *c, const char *what)
{
	json_t *reply = NULL;
	int r = ctl_call(c, "subscribe", NULL, what, &reply);

	if (r == CTL_EXIT_OK && json_object_get(reply, "error"))
		r = ctl_handle_reply(c, what, reply, NULL);
	json_decref(reply);
	return r;
}

int ctl_events(struct ctl *c, char **args, int nargs)
{
	struct sv_error err = { 0 };
	json_t *ev;
	int r = ctl_subscribe(c, NULL);

	if (r != CTL_EXIT_OK)
		return r;
	while (ctl_conn_next(&c->conn, &ev, &err) == 0) {
		if (qmp_msg_kind(ev) == QMP_MSG_EVENT && ctl_event_match(ev, args, nargs)) {
			if (c->json)
				ctl_print_json(ev, 0);
			else
				ctl_fmt_event(stdout, ev);
			fflush(stdout);
		}
		json_decref(ev);
	}
	return ctl_lost(c, NULL, &err);
}
