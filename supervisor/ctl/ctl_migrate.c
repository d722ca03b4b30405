/* qsupctl's migration verbs: migrate (with progress), incoming,
 * migrate-cancel, save and restore (ctl.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

/* KEY=VALUE words for migration: capabilities=a,b becomes a list. */
static int migrate_args(json_t *req, char **words, int n)
{
	if (ctl_kv_args(req, words, n) < 0)
		return -1;
	json_t *caps = json_object_get(req, "capabilities");
	if (json_is_string(caps)) {
		json_t *list = json_array();
		char *copy = strdup(json_string_value(caps)), *save = NULL;
		for (char *t = copy ? strtok_r(copy, ", ", &save) : NULL; t;
		     t = strtok_r(NULL, ", ", &save))
			json_array_append_new(list, json_string(t));
		free(copy);
		json_object_set_new(req, "capabilities", list);
	}
	return 0;
}

/* One MIGRATION_PROGRESS line: a bar on a terminal, else plain lines. */
static void show_progress(json_t *d, bool tty)
{
	json_int_t total = json_integer_value(json_object_get(d, "total"));
	json_int_t left = json_integer_value(json_object_get(d, "remaining"));
	int pct = total > 0 ? (int)(100 * (total - left) / total) : 0;
	char bar[21];
	ctl_fmt_bar(pct, bar);
	bool lead = tty;
	if (json_object_get(d, "disk-total")) {   /* copy-storage: the disks too */
		json_int_t dt = json_integer_value(json_object_get(d, "disk-total"));
		json_int_t dd = json_integer_value(json_object_get(d, "disk-transferred"));
		fprintf(stderr, "%sdisks %3d%% (%.0f of %.0f MiB)  ", tty ? "\r" : "",
		        dt > 0 ? (int)(100 * dd / dt) : 0, ctl_mib(d, "disk-transferred"),
		        ctl_mib(d, "disk-total"));
		if (!strcmp(sv_jstr(d, "status", ""), "mirroring")) {
			fprintf(stderr, "mirroring%s", tty ? "\033[K" : "\n");
			return;
		}
		lead = false;   /* the RAM's figures follow on the same line */
	}
	fprintf(stderr, "%s%-9s [%s] %3d%%  sent %.0f MiB  left %.0f MiB  dirty %lld pages/s  "
	        "expected downtime %lld ms  pass %lld%s",
	        lead ? "\r" : "", sv_jstr(d, "status", "?"), bar, pct,
	        ctl_mib(d, "transferred"), ctl_mib(d, "remaining"),
	        (long long)json_integer_value(json_object_get(d, "dirty-pages-rate")),
	        (long long)json_integer_value(json_object_get(d, "expected-downtime")),
	        (long long)json_integer_value(json_object_get(d, "passes")), tty ? "\033[K" : "\n");
}

static void show_migrated(struct ctl *c, const char *what, json_t *ret)
{
	(void)c;
	const char *st = json_string_value(json_object_get(ret, "status"));
	if (st && !strcmp(st, "completed"))
		printf("%s: done in %lld ms, downtime %lld ms, %.1f MiB sent\n", what,
		       (long long)json_integer_value(json_object_get(ret, "total-time")),
		       (long long)json_integer_value(json_object_get(ret, "downtime")),
		       ctl_mib(ret, "transferred"));
	else if (st && !strcmp(st, "listening"))
		printf("%s: waiting on %s\n", what,
		       sv_jstr(ret, "uri", "?"));
	else if (st)
		printf("%s: %s (%s)\n", what, st, sv_jstr(ret, "uri", ""));
	else
		ctl_fmt_outcome(stdout, what, ret);
}

/* migrate: with --wait, the progress (events) until the reply comes. */
int ctl_migrate(struct ctl *c, char **args, int nargs)
{
	json_t *req = json_pack("{s:s}", "name", args[0]);
	int first = 1;
	char what[160];
	if (nargs > 1 && !strchr(args[1], '=')) {
		json_object_set_new(req, "uri", json_string(args[1]));
		first = 2;
	}
	if (!c->to && first == 1) {
		json_decref(req);
		fprintf(stderr, "qsupctl: migrate: give a URI (unix:PATH, tcp:HOST:PORT) or "
		        "--to SOCKET\n");
		return CTL_EXIT_USAGE;
	}
	if (migrate_args(req, args + first, nargs - first) < 0) {
		json_decref(req);
		return CTL_EXIT_USAGE;
	}
	if (c->tunnel && (!c->to || strncmp(c->to, "ssh://", 6))) {
		json_decref(req);
		fprintf(stderr, "qsupctl: migrate: --tunnel needs --to ssh://HOST\n");
		return CTL_EXIT_USAGE;
	}
	if ((c->copy_storage || c->force) && !c->to) {
		json_decref(req);
		fprintf(stderr, "qsupctl: migrate: --copy-storage and --force need --to SOCKET "
		        "or --to ssh://HOST (the destination qsupd creates the disks)\n");
		return CTL_EXIT_USAGE;
	}
	if (c->to)
		json_object_set_new(req, "to", json_string(c->to));
	if (c->tunnel)
		json_object_set_new(req, "tunnel", json_true());
	if (c->copy_storage)
		json_object_set_new(req, "copy-storage", json_true());
	if (c->force)
		json_object_set_new(req, "force", json_true());
	if (c->wait)
		json_object_set_new(req, "wait", json_true());
	snprintf(what, sizeof(what), "%s", args[0]);
	if (!c->wait)
		return ctl_request(c, "migrate", req, what, show_migrated);
	return ctl_call_progress(c, "migrate", req, what, args[0], "MIGRATION_PROGRESS",
	                         show_progress, show_migrated);
}

int ctl_incoming(struct ctl *c, char **args, int nargs)
{
	json_t *req = json_pack("{s:s}", "name", args[0]);
	int first = 1;
	if (nargs > 1 && !strchr(args[1], '=')) {
		json_object_set_new(req, "uri", json_string(args[1]));
		first = 2;
	}
	if (migrate_args(req, args + first, nargs - first) < 0) {
		json_decref(req);
		return CTL_EXIT_USAGE;
	}
	return ctl_request(c, "incoming", req, args[0], show_migrated);
}

int ctl_migrate_cancel(struct ctl *c, char **args, int nargs)
{
	return ctl_per_name(c, args, nargs, show_migrated);
}

/* save and restore: FILE is made absolute here (qsupd has its own cwd). */
int ctl_save(struct ctl *c, char **args, int nargs)
{
	if (c->all)
		return ctl_bulk(c, args, nargs, show_migrated);
	if (nargs == 1)   /* the guest's managed save (qsupd keeps the file) */
		return ctl_request(c, c->cmd->name, json_pack("{s:s}", "name", args[0]), args[0],
		                   show_migrated);
	char *file = args[1][0] == '/' ? strdup(args[1]) : NULL;
	if (!file) {
		char cwd[4096];
		if (!getcwd(cwd, sizeof(cwd)) || asprintf(&file, "%s/%s", cwd, args[1]) < 0) {
			fprintf(stderr, "qsupctl: %s: %s\n", c->cmd->name, strerror(errno));
			return CTL_EXIT_ERROR;
		}
	}
	int r = ctl_request(c, c->cmd->name, json_pack("{s:s, s:s}", "name", args[0], "file",
	                                               file), args[0], show_migrated);
	free(file);
	return r;
}

int ctl_call_progress(struct ctl *c, const char *verb, json_t *req, const char *what,
                      const char *guest, const char *event, void (*progress)(json_t *, bool),
                      void (*show)(struct ctl *, const char *, json_t *))
{
	struct sv_error err = { 0 };
	json_t *reply = NULL, *msg;
	int r = ctl_subscribe(c, what);
	int64_t id;
	if (r != CTL_EXIT_OK || ctl_conn_send(&c->conn, verb, req, &id, &err) < 0) {
		if (r != CTL_EXIT_OK)
			json_decref(req);
		return r != CTL_EXIT_OK ? r : ctl_lost(c, what, &err);
	}
	bool tty = isatty(STDERR_FILENO), shown = false;
	while (!reply) {
		if (ctl_conn_next(&c->conn, &msg, &err) < 0)
			return ctl_lost(c, what, &err);
		if (json_integer_value(json_object_get(msg, "id")) == id &&
		    (json_object_get(msg, "return") || json_object_get(msg, "error"))) {
			reply = msg;
			break;
		}
		const char *ev = json_string_value(json_object_get(msg, "event"));
		const char *g = json_string_value(json_object_get(msg, "guest"));
		if (ev && g && !strcmp(g, guest) && !strcmp(ev, event)) {
			if (c->json)
				ctl_print_json(msg, 0);
			else
				progress(json_object_get(msg, "data"), tty);
			shown = true;
		}
		json_decref(msg);
	}
	if (shown && tty && !c->json)
		fputc('\n', stderr);
	r = ctl_handle_reply(c, what, reply, show);
	json_decref(reply);
	return r;
}
