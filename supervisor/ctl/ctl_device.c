/* qsupctl's device verbs (ctl.h): attach, detach, devices, cdrom, and the
 * guest's display and serial console. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

/* KEY=VALUE words into args: on/off/yes/no/true/false become booleans,
 * digits a number. Returns 0, or -1 for a word without '='. */
int ctl_kv_args(json_t *args, char **words, int n)
{
	for (int i = 0; i < n; i++) {
		char *eq = strchr(words[i], '=');
		if (!eq || eq == words[i]) {
			fprintf(stderr, "qsupctl: '%s' is not KEY=VALUE\n", words[i]);
			return -1;
		}
		char key[64];
		snprintf(key, sizeof(key), "%.*s", (int)(eq - words[i]), words[i]);
		const char *v = eq + 1;
		json_t *j;
		if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
			j = json_true();
		else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
			j = json_false();
		else if (*v && strspn(v, "0123456789") == strlen(v) && strlen(v) < 18)
			j = json_integer(strtoll(v, NULL, 10));
		else
			j = json_string(v);
		json_object_set_new(args, key, j);
	}
	return 0;
}

static void show_device(struct ctl *c, const char *what, json_t *ret)
{
	json_t *devs = json_object_get(ret, "devices"), *d;
	size_t i;
	if (json_is_array(devs)) {   /* attach cpu count=N */
		json_array_foreach(devs, i, d)
			show_device(c, what, d);
		return;
	}
	printf("%s: %s %s\n", what, sv_jstr(ret, "id", "?"),
	       sv_jstr(ret, "state", "?"));
}

/* verb with req (taken) plus the KEY=VALUE words; prints the device. */
static int device_verb(struct ctl *c, const char *verb, json_t *req, char **words, int n,
                       const char *name)
{
	char what[160];
	if (ctl_kv_args(req, words, n) < 0) {
		json_decref(req);
		return CTL_EXIT_USAGE;
	}
	if (c->persist)
		json_object_set_new(req, "persist", json_true());
	snprintf(what, sizeof(what), "%s", name);   /* qsupctl: attach web1: ... */
	return ctl_request(c, verb, req, what, show_device);
}

int ctl_attach(struct ctl *c, char **args, int nargs)
{
	return device_verb(c, "attach", json_pack("{s:s, s:s}", "name", args[0], "kind", args[1]),
	                   args + 2, nargs - 2, args[0]);
}

int ctl_detach(struct ctl *c, char **args, int nargs)
{
	return device_verb(c, "detach", json_pack("{s:s, s:s}", "name", args[0], "id", args[1]),
	                   args + 2, nargs - 2, args[0]);
}

static void show_devices(struct ctl *c, const char *what, json_t *ret)
{
	json_t *d;
	size_t i;
	(void)c, (void)what;
	printf("%-20s %-6s %-8s %-15s %s\n", "ID", "KIND", "SOURCE", "STATE", "BACKEND");
	json_array_foreach(ret, i, d)
		printf("%-20s %-6s %-8s %-15s %s\n",
		       sv_jstr(d, "id", "-"),
		       sv_jstr(d, "kind", "-"),
		       sv_jstr(d, "source", "-"),
		       sv_jstr(d, "state", "-"),
		       json_is_true(json_object_get(d, "empty")) ? "(empty)"
		       : sv_jstr(d, "backend", "-"));
}

int ctl_devices(struct ctl *c, char **args, int nargs)
{
	return ctl_per_name(c, args, nargs, show_devices);
}

/* cdrom NAME ID insert FILE | NAME ID eject: FILE is made absolute here
 * (qsupd opens it, from its own directory). */
static void show_cdrom(struct ctl *c, const char *what, json_t *ret)
{
	(void)c;
	printf("%s: %s: %s\n", what, sv_jstr(ret, "id", "?"), sv_jstr(ret, "medium", "?"));
}

int ctl_cdrom(struct ctl *c, char **args, int nargs)
{
	bool insert = !strcmp(args[2], "insert");
	char *abs = NULL;
	if ((!insert && strcmp(args[2], "eject")) || (insert && nargs != 4) ||
	    (!insert && nargs != 3) || (insert && c->force) || (!insert && c->format)) {
		fprintf(stderr, "qsupctl: cdrom: use cdrom NAME ID insert FILE [--format FMT], "
		        "or cdrom NAME ID eject [-f]\n");
		return CTL_EXIT_USAGE;
	}
	json_t *req = json_pack("{s:s, s:s, s:s}", "name", args[0], "id", args[1],
	                        "action", args[2]);
	if (insert) {
		if (args[3][0] != '/' && !(abs = realpath(args[3], NULL))) {
			char cwd[4096];
			if (getcwd(cwd, sizeof(cwd)) && asprintf(&abs, "%s/%s", cwd, args[3]) < 0)
				abs = NULL;
		}
		json_object_set_new(req, "file", json_string(abs ? abs : args[3]));
		if (c->format)
			json_object_set_new(req, "format", json_string(c->format));
	} else if (c->force) {
		json_object_set_new(req, "force", json_true());
	}
	free(abs);
	return ctl_request(c, "cdrom", req, args[0], show_cdrom);
}

/* display [--password] NAME: the address (and the password) alone, for a
 * viewer's command line. */
static void show_display(struct ctl *c, const char *what, json_t *ret)
{
	(void)c, (void)what;
	printf("%s\n", sv_jstr(ret, "display", "?"));
	if (json_object_get(ret, "password"))
		printf("%s\n", sv_jstr(ret, "password", ""));
}

int ctl_display(struct ctl *c, char **args, int nargs)
{
	json_t *req = json_pack("{s:s}", "name", args[0]);
	(void)nargs;
	if (c->password)
		json_object_set_new(req, "password", json_true());
	return ctl_request(c, "display", req, args[0], show_display);
}

/* Asks for the console (qsupd lends it to this connection, which stays
 * open while attached: qsupd says there when another client takes it
 * over), then attaches; --json does not apply. */
int ctl_console_cmd(struct ctl *c, char **args, int nargs)
{
	struct sv_error err = { 0 };
	json_t *reply = NULL, *req = json_pack("{s:s}", "name", args[0]);
	const char *path;
	int r, s = 0;

	(void)nargs;
	if (c->force)
		json_object_set_new(req, "force", json_true());
	r = ctl_call(c, "console", req, args[0], &reply);
	c->json = false;
	if (r == CTL_EXIT_OK && json_object_get(reply, "error")) {
		r = ctl_handle_reply(c, args[0], reply, NULL);
		if (!strcmp(sv_jstr(json_object_get(reply, "error"), "class", ""), "ConsoleBusy"))
			fprintf(stderr, "qsupctl: console -f %s takes it over\n", args[0]);
	}
	path = json_string_value(json_object_get(json_object_get(reply, "return"), "path"));
	if (r == CTL_EXIT_OK && !path) {
		fprintf(stderr, "qsupctl: console %s: qsupd gave no socket path\n", args[0]);
		r = CTL_EXIT_ERROR;
	}
	if (r == CTL_EXIT_OK && c->uri && !strncmp(c->uri, "ssh://", 6)) {
		/* a second ssh, to the console's socket over there */
		int fd = -1;

		r = ctl_ssh_connect(c->uri, path, &fd);
		if (r == CTL_EXIT_OK)
			s = ctl_console_fd(args[0], fd, &c->conn, STDIN_FILENO, STDOUT_FILENO,
			                   &err);
	} else if (r == CTL_EXIT_OK) {
		s = ctl_console(args[0], path, &c->conn, STDIN_FILENO, STDOUT_FILENO, &err);
	}
	if (r == CTL_EXIT_OK && s < 0) {
		fprintf(stderr, "qsupctl: console %s: %s\n", args[0], err.msg);
		r = CTL_EXIT_ERROR;
	}
	c->signal = s > 0 ? s : 0;
	json_decref(reply);
	return r;
}
