/* qsupctl log NAME [-n LINES] [-f] (ctl.h): the end of a guest's log file,
 * as qsupd reads it (QEMU's output and qsupd's start and end lines), and
 * with -f every line written to it afterwards, until Ctrl-C (exit 0) or
 * until qsupd goes away (exit 1). Lines are printed as they are, one per
 * line; with --json the reply, then each LOG event, as JSON. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

static void show_lines(struct ctl *c, const char *what, json_t *ret)
{
	(void)c, (void)what;
	ctl_fmt_lines(stdout, json_object_get(ret, "lines"));
}

/* Every line is flushed as it is printed, so ending here loses none. */
static void on_stop(int sig)
{
	(void)sig;
	_exit(CTL_EXIT_OK);
}

static bool is_line_of(json_t *ev, const char *name)
{
	return qmp_msg_kind(ev) == QMP_MSG_EVENT &&
	       !strcmp(sv_jstr(ev, "event", ""), "LOG") && !strcmp(sv_jstr(ev, "guest", ""), name);
}

/* -f: print the LOG events of name until qsupd closes the connection. */
static int follow(struct ctl *c, const char *name)
{
	struct sv_error err = { 0 };
	json_t *ev;

	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	while (ctl_conn_next(&c->conn, &ev, &err) == 0) {
		if (is_line_of(ev, name)) {
			if (c->json)
				ctl_print_json(ev, 0);
			else
				printf("%s\n", sv_jstr(json_object_get(ev, "data"), "line", ""));
			fflush(stdout);
		}
		json_decref(ev);
	}
	return ctl_lost(c, name, &err);
}

int ctl_log(struct ctl *c, char **args, int nargs)
{
	uint64_t n = 0;
	json_t *req;
	int r;

	(void)nargs;
	if (c->lines && sv_uint_parse(c->lines, 1, 10000, &n) < 0) {
		fprintf(stderr, "qsupctl: log: -n: '%s' is not a number of lines from 1 to "
		        "10000\n", c->lines);
		return CTL_EXIT_USAGE;
	}
	req = json_pack("{s:s}", "name", args[0]);
	if (c->lines)
		json_object_set_new(req, "lines", json_integer((json_int_t)n));
	if (c->follow)
		json_object_set_new(req, "follow", json_true());
	r = ctl_request(c, "log", req, args[0], show_lines);
	if (r != CTL_EXIT_OK || !c->follow)
		return r;
	return follow(c, args[0]);
}
