/* qsupctl's verbs that change what a guest is made of (ctl.h): clone,
 * disk-resize, set and snapshot. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static void show_resize(struct ctl *c, const char *what, json_t *ret)
{
	(void)c;
	if (!json_is_true(json_object_get(ret, "changed")))
		printf("%s: disk %s is already %lld bytes\n", what,
		       json_string_value(json_object_get(ret, "id")),
		       (long long)json_integer_value(json_object_get(ret, "size")));
	else
		printf("%s: disk %s grown from %lld to %lld bytes%s\n", what,
		       json_string_value(json_object_get(ret, "id")),
		       (long long)json_integer_value(json_object_get(ret, "old_size")),
		       (long long)json_integer_value(json_object_get(ret, "size")),
		       json_is_true(json_object_get(ret, "live")) ? " (live)" : "");
}

static void show_clone(struct ctl *c, const char *what, json_t *ret)
{
	json_t *v;
	size_t i;
	(void)c;
	printf("%s: cloned to %s (%s)\n", what, json_string_value(json_object_get(ret, "name")),
	       json_string_value(json_object_get(ret, "profile")));
	json_array_foreach(json_object_get(ret, "disks"), i, v)
		printf("  disk %s: %s (%s)\n", json_string_value(json_object_get(v, "id")),
		       json_string_value(json_object_get(v, "file")),
		       json_string_value(json_object_get(v, "how")));
	const char *id;
	json_object_foreach(json_object_get(ret, "nics"), id, v)
		printf("  nic %s: mac %s\n", id, json_string_value(v));
	if (json_is_string(json_object_get(ret, "note")))
		printf("note: %s\n", json_string_value(json_object_get(ret, "note")));
}

/* clone [--linked] NAME NEW */
int ctl_clone(struct ctl *c, char **args, int nargs)
{
	(void)nargs;
	json_t *req = json_pack("{s:s, s:s, s:b}", "name", args[0], "new", args[1], "linked",
	                        c->linked);
	return ctl_request(c, "clone", req, args[0], show_clone);
}

/* disk-resize NAME ID SIZE */
int ctl_disk_resize(struct ctl *c, char **args, int nargs)
{
	(void)nargs;
	json_t *req = json_pack("{s:s, s:s, s:s}", "name", args[0], "id", args[1], "size",
	                        args[2]);
	return ctl_request(c, "disk-resize", req, args[0], show_resize);
}

static void show_set(struct ctl *c, const char *what, json_t *ret)
{
	json_t *v;
	size_t i;
	bool live = json_is_true(json_object_get(ret, "live"));
	bool persisted = json_is_true(json_object_get(ret, "persisted"));
	(void)c;
	json_array_foreach(json_object_get(ret, "applied"), i, v)
		printf("%s: %s%s\n", what, sv_or(json_string_value(v), "?"),
		       live && persisted ? " (live, and recorded for its next start)"
		       : live ? " (live, until it stops)" : " (recorded for its next start)");
}

/* set [-p] NAME KEY=VALUE... */
int ctl_set(struct ctl *c, char **args, int nargs)
{
	json_t *list = json_array();
	for (int i = 1; i < nargs; i++) {
		if (!strchr(args[i], '=')) {
			fprintf(stderr, "qsupctl: set: \"%s\": use KEY=VALUE, such as "
			        "disk.root.bps-write=10M, cpu-affinity=0-1 or balloon=512M\n", args[i]);
			json_decref(list);
			return CTL_EXIT_USAGE;
		}
		json_array_append_new(list, json_string(args[i]));
	}
	json_t *req = json_pack("{s:s, s:o, s:b}", "name", args[0], "set", list, "persist",
	                        c->persist);
	return ctl_request(c, "set", req, args[0], show_set);
}

/* snapshot NAME create|list|revert|delete [SNAP] */
static void show_snapshot(struct ctl *c, const char *what, json_t *ret)
{
	json_t *s, *v;
	const char *k;
	size_t i;
	(void)c;
	if (json_object_get(ret, "snapshots")) {
		printf("%-20s %-20s %-21s %-7s %s\n", "SNAPSHOT", "PARENT", "CREATED", "MEMORY",
		       "CURRENT");
		json_array_foreach(json_object_get(ret, "snapshots"), i, s)
			printf("%-20s %-20s %-21s %-7s %s\n", sv_jstr(s, "name", "?"),
			       sv_jstr(s, "parent", "-"), sv_jstr(s, "created", "?"),
			       json_is_string(json_object_get(s, "memory")) ? "yes" : "no",
			       json_is_true(json_object_get(s, "current")) ? "*" : "");
		json_object_foreach(json_object_get(ret, "active"), k, v)
			printf("active %s: %s\n", k, json_string_value(v));
		return;
	}
	printf("%s: snapshot %s: %s\n", what, sv_jstr(ret, "snapshot", "?"),
	       sv_jstr(ret, "action", "?"));
	json_object_foreach(json_object_get(ret, "disks"), k, v)
		printf("  %s: %s\n", k, json_string_value(v));
	json_object_foreach(json_object_get(ret, "merged"), k, v)
		printf("  %s: %s\n", k, json_string_value(v));
	if (json_object_get(ret, "memory"))
		printf("  memory: %s\n", sv_jstr(ret, "memory", ""));
	if (json_object_get(ret, "freeze"))
		printf("  freeze: %s\n", sv_jstr(ret, "freeze", ""));
	if (json_object_get(ret, "state"))
		printf("  state: %s\n", sv_jstr(ret, "state", ""));
}

int ctl_snapshot(struct ctl *c, char **args, int nargs)
{
	const char *a = args[1];
	bool list = !strcmp(a, "list");
	if ((strcmp(a, "create") && !list && strcmp(a, "revert") && strcmp(a, "delete")) ||
	    (list && nargs != 2) || (!list && nargs != 3) || (c->force && strcmp(a, "revert")) ||
	    (c->memory && strcmp(a, "create"))) {
		fprintf(stderr, "qsupctl: snapshot: use snapshot NAME create|revert|delete SNAP, "
		        "snapshot NAME list (-f: revert only; --memory: create only)\n");
		return CTL_EXIT_USAGE;
	}
	json_t *req = json_pack("{s:s, s:s}", "name", args[0], "action", a);
	if (!list)
		json_object_set_new(req, "snapshot", json_string(args[2]));
	if (c->force)
		json_object_set_new(req, "force", json_true());
	if (c->memory)
		json_object_set_new(req, "memory", json_true());
	return ctl_request(c, "snapshot", req, args[0], show_snapshot);
}
