/* qsupctl's backup verbs: backup (with progress), backup-cancel,
 * backup-restore (ctl.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

/* DIR made absolute (qsupd has its own cwd); NULL: out of memory. */
static char *abs_dir(const char *dir)
{
	char cwd[4096], *out = NULL;
	if (dir[0] == '/')
		return strdup(dir);
	if (!getcwd(cwd, sizeof(cwd)) || asprintf(&out, "%s/%s", cwd, dir) < 0)
		return NULL;
	return out;
}

/* {"name": NAME, "dir": DIR made absolute} of backup and backup-restore,
 * or NULL after saying why not. */
static json_t *dir_request(struct ctl *c, char **args)
{
	char *dir = abs_dir(args[1]);
	if (!dir) {
		fprintf(stderr, "qsupctl: %s: %s\n", c->cmd->name, strerror(errno ? errno : ENOMEM));
		return NULL;
	}
	json_t *req = json_pack("{s:s, s:s}", "name", args[0], "dir", dir);
	free(dir);
	return req;
}

/* speed=N[K|M|G] (bytes per second per disk). -1: not a size. */
static long long parse_speed(const char *v)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno || end == v || n < 0)
		return -1;
	int shift = !*end ? 0 : !strcmp(end, "K") || !strcmp(end, "k") ? 10 : !strcmp(end, "M")
	          ? 20 : !strcmp(end, "G") ? 30 : -1;
	if (shift < 0 || n > (1LL << (62 - shift)))
		return -1;
	return n << shift;
}

static void show_progress(json_t *d, bool tty)
{
	json_int_t total = json_integer_value(json_object_get(d, "total"));
	json_int_t done = json_integer_value(json_object_get(d, "done"));
	int pct = total > 0 ? (int)(100 * done / total) : 0;
	char bar[21];
	ctl_fmt_bar(pct, bar);
	fprintf(stderr, "%s%-11s [%s] %3d%%  %.0f of %.0f MiB%s", tty ? "\r" : "",
	        sv_jstr(d, "kind", "?"), bar, pct, ctl_mib(d, "done"), ctl_mib(d, "total"),
	        tty ? "\033[K" : "\n");
}

static void show_backup(struct ctl *c, const char *what, json_t *ret)
{
	json_t *v;
	const char *k;
	(void)c;
	const char *st = sv_jstr(ret, "status", "?");
	if (!strcmp(st, "completed"))
		printf("%s: backup %s (%s) completed in %.1f s, %.1f MiB copied\n  manifest: %s\n",
		       what, sv_jstr(ret, "backup", "?"), sv_jstr(ret, "kind", "?"),
		       json_number_value(json_object_get(ret, "seconds")),
		       ctl_mib(ret, "bytes"), sv_jstr(ret, "manifest", "?"));
	else if (!strcmp(st, "cancelled"))
		printf("%s: backup %s cancelled\n", what, sv_jstr(ret, "backup", "?"));
	else
		printf("%s: backup %s (%s) %s\n", what, sv_jstr(ret, "backup", "?"),
		       sv_jstr(ret, "kind", "restore"), st);
	json_object_foreach(json_object_get(ret, "disks"), k, v)
		printf("  %s: %s\n", k, json_string_value(v));
	if (json_object_get(ret, "freeze"))
		printf("  freeze: %s\n", sv_jstr(ret, "freeze", ""));
}

/* backup NAME DIR [speed=N]: with --wait, the progress (events) until the
 * reply comes. */
int ctl_backup(struct ctl *c, char **args, int nargs)
{
	if (c->kind_full && c->kind_incremental) {
		fprintf(stderr, "qsupctl: backup: give --full or --incremental, not both\n");
		return CTL_EXIT_USAGE;
	}
	json_t *req = dir_request(c, args);
	if (!req)
		return CTL_EXIT_ERROR;
	for (int i = 2; i < nargs; i++) {
		long long sp = strncmp(args[i], "speed=", 6) ? -2 : parse_speed(args[i] + 6);
		if (sp < 0) {
			fprintf(stderr, "qsupctl: backup: %s '%s' (speed=BYTES[K|M|G] per second "
			        "is the one)\n", sp == -2 ? "unknown argument" : "not a speed",
			        args[i]);
			json_decref(req);
			return CTL_EXIT_USAGE;
		}
		json_object_set_new(req, "speed", json_integer(sp));
	}
	if (c->kind_full || c->kind_incremental)
		json_object_set_new(req, "kind", json_string(c->kind_full ? "full" : "incremental"));
	if (!c->wait)
		return ctl_request(c, "backup", req, args[0], show_backup);
	json_object_set_new(req, "wait", json_true());
	return ctl_call_progress(c, "backup", req, args[0], args[0], "BACKUP_PROGRESS",
	                         show_progress, show_backup);
}

int ctl_backup_cancel(struct ctl *c, char **args, int nargs)
{
	return ctl_per_name(c, args, nargs, show_backup);
}

/* backup-restore NAME DIR [ID] */
int ctl_backup_restore(struct ctl *c, char **args, int nargs)
{
	json_t *req = dir_request(c, args);
	if (!req)
		return CTL_EXIT_ERROR;
	if (nargs > 2)
		json_object_set_new(req, "backup", json_string(args[2]));
	return ctl_request(c, "backup-restore", req, args[0], show_backup);
}
