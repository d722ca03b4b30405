/*
 * qsupctl's verbs over many guests: start, stop, kill and save with --all
 * (every guest the verb applies to), --parallel N (at most N at a time),
 * and the progress of stops as qsupd reports it (STOP_PROGRESS events).
 * Outcomes are printed in the order of the names (--all: of `list`), each
 * as soon as those before it are in; --all ends with one summary line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* Does --all take a guest in state st for verb? */
static bool applies(const char *verb, const char *st)
{
	if (!st)
		return false;
	if (!strcmp(verb, "start"))
		return !strcmp(st, "stopped");
	if (!strcmp(verb, "save"))
		return !strcmp(st, "running") || !strcmp(st, "paused");
	/* stop, kill: whatever is not down already */
	return strcmp(st, "stopped") && strcmp(st, "failed") && strcmp(st, "migrated");
}

/* The names --all stands for, from `list` (malloc'd array of strings in
 * *list's storage: valid while *list lives). Returns the count, or -1 with
 * the exit status in *rc. */
static int all_names(struct ctl *c, json_t **list, char ***names, int *rc)
{
	json_t *reply = NULL, *st;
	size_t i;
	int n = 0;
	*rc = ctl_call(c, "list", NULL, NULL, &reply);
	if (*rc != CTL_EXIT_OK)
		return -1;
	if (json_object_get(reply, "error")) {
		*rc = ctl_handle_reply(c, NULL, reply, NULL);
		json_decref(reply);
		return -1;
	}
	*list = json_incref(json_object_get(reply, "return"));
	json_decref(reply);
	*names = calloc(json_array_size(*list) + 1, sizeof(**names));
	if (!*names) {
		*rc = CTL_EXIT_ERROR;
		return -1;
	}
	json_array_foreach(*list, i, st) {
		const char *name = json_string_value(json_object_get(st, "name"));
		if (name && applies(c->cmd->name, json_string_value(json_object_get(st, "state"))))
			(*names)[n++] = (char *)name;
	}
	return n;
}

static void show_progress(struct ctl *c, json_t *ev)
{
	json_t *d = json_object_get(ev, "data");
	const char *g = json_string_value(json_object_get(ev, "guest"));
	const char *stage = json_string_value(json_object_get(d, "stage"));
	int presses = (int)json_integer_value(json_object_get(d, "presses"));
	double elapsed = json_number_value(json_object_get(d, "elapsed"));
	double timeout = json_number_value(json_object_get(d, "timeout"));
	if (c->json) {
		ctl_print_json(ev, 0);
		return;
	}
	if (!g || !stage)
		return;
	if (!strcmp(stage, "acpi") && presses <= 1)
		fprintf(stderr, "%s: ACPI power-off sent; waiting up to %.0f s\n", g, timeout);
	else if (!strcmp(stage, "acpi") && presses == 2)   /* once: the rest are the same */
		fprintf(stderr, "%s: no power-off after %.0f s; pressed the power button again, "
		        "and every 5 s\n", g, elapsed);
	else if (!strcmp(stage, "acpi"))
		return;
	else if (!strcmp(stage, "agent"))
		fprintf(stderr, "%s: no power-off; asked the guest agent to shut the guest down, "
		        "waiting up to %.0f s\n", g, timeout);
	else if (!strcmp(stage, "quit"))
		fprintf(stderr, "%s: no power-off; asking QEMU to quit\n", g);
	else
		fprintf(stderr, "%s: QEMU still running; sending %s\n", g,
		        !strcmp(stage, "sigterm") ? "SIGTERM" : "SIGKILL");
}

static json_t *request_args(struct ctl *c, const char *name)
{
	json_t *a = json_pack("{s:s}", "name", name);
	if (c->force)
		json_object_set_new(a, "force", json_true());
	if (c->timeout > 0)
		json_object_set_new(a, "timeout", json_integer(c->timeout));
	return a;
}

static bool is_one_of(const char *g, char **names, int n)
{
	for (int i = 0; g && i < n; i++)
		if (!strcmp(g, names[i]))
			return true;
	return false;
}

/* Print the replies that are in, in the order of the names. */
static int flush_in_order(struct ctl *c, char **names, json_t **replies, int n, int *cursor,
                          void (*show)(struct ctl *, const char *, json_t *))
{
	int failed = 0;
	while (*cursor < n && replies[*cursor]) {
		failed += ctl_handle_reply(c, names[*cursor], replies[*cursor], show) != CTL_EXIT_OK;
		json_decref(replies[*cursor]);
		replies[(*cursor)++] = NULL;
	}
	return failed;
}

int ctl_bulk(struct ctl *c, char **names, int n,
             void (*show)(struct ctl *, const char *, json_t *))
{
	struct sv_error err = { 0 };
	json_t *list = NULL, *reply = NULL, **replies = NULL;
	char **all = NULL;
	/* A stop's progress, unless forced (then it is quit, at once). */
	bool progress = !strcmp(c->cmd->name, "stop") && !c->force;
	int r = CTL_EXIT_OK, failed = 0, done = 0, inflight = 0, next = 0, cursor = 0;
	if (c->all) {
		if ((n = all_names(c, &list, &all, &r)) < 0) {
			free(all);
			json_decref(list);
			return r;
		}
		names = all;
	} else if ((r = ctl_connect(c)) != CTL_EXIT_OK) {
		return r;
	}
	int64_t *ids = calloc((size_t)n + 1, sizeof(*ids));
	replies = calloc((size_t)n + 1, sizeof(*replies));
	if (!ids || !replies)
		r = CTL_EXIT_ERROR;
	/* Subscribe first, so that no step of a stop goes unseen. */
	if (r == CTL_EXIT_OK && progress && n > 0) {
		r = ctl_call(c, "subscribe", NULL, NULL, &reply);
		json_decref(reply);
	}
	int window = c->parallel > 0 ? c->parallel : n;
	while (r == CTL_EXIT_OK && done < n) {
		while (inflight < window && next < n) {
			if (ctl_conn_send(&c->conn, c->cmd->name, request_args(c, names[next]),
			                  &ids[next], &err) < 0) {
				r = ctl_lost(c, names[next], &err);
				break;
			}
			next++, inflight++;
		}
		json_t *msg = NULL;
		if (r != CTL_EXIT_OK || ctl_conn_next(&c->conn, &msg, &err) < 0) {
			if (r == CTL_EXIT_OK)   /* named after the first still unanswered */
				r = ctl_lost(c, names[cursor], &err);
			break;
		}
		json_t *id = json_object_get(msg, "id");
		const char *ev = json_string_value(json_object_get(msg, "event"));
		if (ev && !strcmp(ev, "STOP_PROGRESS") &&
		    is_one_of(json_string_value(json_object_get(msg, "guest")), names, next))
			show_progress(c, msg);
		for (int i = 0; json_is_integer(id) && i < next; i++) {
			if (ids[i] < 0 || ids[i] != json_integer_value(id))
				continue;
			replies[i] = json_incref(msg);
			ids[i] = -1;
			done++, inflight--;
			break;
		}
		json_decref(msg);
		failed += flush_in_order(c, names, replies, n, &cursor, show);
	}
	if (r == CTL_EXIT_OK && c->all && !c->json) {
		if (n == 0)
			printf("%s: no guest to %s\n", c->cmd->name, c->cmd->name);
		else
			printf("%s: %d guest%s: %d done, %d failed\n", c->cmd->name, n,
			       n == 1 ? "" : "s", n - failed, failed);
	}
	for (int i = 0; replies && i < n; i++)
		json_decref(replies[i]);
	free(replies);
	free(ids);
	free(all);
	json_decref(list);
	return r != CTL_EXIT_OK ? r : failed ? CTL_EXIT_ERROR : CTL_EXIT_OK;
}
