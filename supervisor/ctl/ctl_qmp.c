/* qsupctl's verbs that reach into a guest's QEMU (ctl.h): qmp and agent
 * (one command, passed through) and argv (the command line start would
 * use). */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* QEMU's reply: a string (human-monitor-command) as text, else indented
 * JSON. */
static void show_qmp(struct ctl *c, const char *what, json_t *ret)
{
	const char *s = json_string_value(ret);

	(void)c, (void)what;
	if (!s) {
		ctl_print_json(ret, JSON_INDENT(2));
		return;
	}
	fputs(s, stdout);
	if (*s && s[strlen(s) - 1] != '\n')
		putchar('\n');
}

/* {"name": NAME, "command": COMMAND, "arguments": JSON-ARGS} of the qmp
 * and agent verbs, or NULL after saying what is wrong with JSON-ARGS. */
static json_t *command_request(const char *verb, char **args, int nargs)
{
	json_t *qargs = NULL, *req;
	json_error_t jerr;
	if (nargs > 2) {
		qargs = json_loads(args[2], JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(qargs)) {
			fprintf(stderr, "qsupctl: %s: JSON-ARGS must be a JSON object%s%s\n", verb,
			        qargs ? "" : ": ", qargs ? "" : jerr.text);
			json_decref(qargs);
			return NULL;
		}
	}
	req = json_pack("{s:s, s:s}", "name", args[0], "command", args[1]);
	if (qargs)
		json_object_set_new(req, "arguments", qargs);
	return req;
}

/* qmp and agent NAME COMMAND [JSON-ARGS]: QEMU's or the agent's reply.
 * --timeout (agent only: qmp does not take it, so 0 there) bounds the
 * wait for the agent. */
static int command_verb(struct ctl *c, const char *verb, char **args, int nargs)
{
	json_t *req = command_request(verb, args, nargs);
	char what[160];

	if (!req)
		return CTL_EXIT_USAGE;
	if (c->timeout > 0)
		json_object_set_new(req, "timeout", json_integer((json_int_t)c->timeout * 1000));
	snprintf(what, sizeof(what), "%s %s", args[0], args[1]);
	return ctl_request(c, verb, req, what, show_qmp);
}

int ctl_qmp(struct ctl *c, char **args, int nargs)
{
	return command_verb(c, "qmp", args, nargs);
}

int ctl_agent(struct ctl *c, char **args, int nargs)
{
	return command_verb(c, "agent", args, nargs);
}

static void show_argv(struct ctl *c, const char *what, json_t *ret)
{
	(void)c, (void)what;
	ctl_fmt_lines(stdout, json_object_get(ret, "argv"));
}

int ctl_argv(struct ctl *c, char **args, int nargs)
{
	return ctl_per_name(c, args, nargs, show_argv);
}
