/*
 * qsupctl's human-readable output: the list table, status lines, lifecycle
 * outcomes, event lines, the reload summary, and pieces the verbs share. Pure: JSON in, text out on a
 * FILE (the tests use memory streams). Values a reply lacks print as "-",
 * so a newer qsupd with more or fewer fields never breaks the client.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

void ctl_fmt_duration(double s, char *buf, size_t size)
{
	unsigned long long t;

	if (!(s >= 0) || s > 1e15) {   /* also catches NaN */
		snprintf(buf, size, "-");
		return;
	}
	t = (unsigned long long)s;   /* whole seconds, truncated */
	if (t < 60)
		snprintf(buf, size, "%llus", t);
	else if (t < 3600)
		snprintf(buf, size, "%llum%02llus", t / 60, t % 60);
	else if (t < 86400)
		snprintf(buf, size, "%lluh%02llum", t / 3600, t % 3600 / 60);
	else
		snprintf(buf, size, "%llud%02lluh", t / 86400, t % 86400 / 3600);
}

/* A scalar as text: strings as they are, null as "-", booleans as yes/no,
 * anything else as compact JSON. Returns a malloc'd string. */
static char *value_text(json_t *v)
{
	char *s = NULL;

	if (!v || json_is_null(v))
		return strdup("-");
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_boolean(v))
		return strdup(json_is_true(v) ? "yes" : "no");
	if (json_is_integer(v) && asprintf(&s, "%lld", (long long)json_integer_value(v)) >= 0)
		return s;
	return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

static void duration_of(json_t *v, char *buf, size_t size)
{
	ctl_fmt_duration(json_is_number(v) ? json_number_value(v) : -1, buf, size);
}

/* ------------------------------------------------------------ list */

enum { COL_NAME, COL_STATE, COL_PID, COL_UPTIME, COL_RESTARTS, NCOLS };

static const char *const col_title[NCOLS] = { "NAME", "STATE", "PID", "UPTIME", "RESTARTS" };
static const char *const col_key[NCOLS] = { "name", "state", "pid", "uptime", "restarts" };

static char *cell_text(json_t *row, int col)
{
	json_t *v = json_object_get(row, col_key[col]);
	char buf[32];

	if (col != COL_UPTIME)
		return value_text(v);
	duration_of(v, buf, sizeof(buf));
	return strdup(buf);
}

static int by_name(const void *a, const void *b)
{
	char *const *x = a, *const *y = b;

	return strcmp(x[COL_NAME] ? x[COL_NAME] : "", y[COL_NAME] ? y[COL_NAME] : "");
}

static void print_row(FILE *out, char *const *cells, const int *width)
{
	for (int c = 0; c < NCOLS; c++) {
		const char *s = cells[c] ? cells[c] : "-";

		if (c == NCOLS - 1)
			fprintf(out, "%s\n", s);
		else
			fprintf(out, "%-*s  ", width[c], s);
	}
}

void ctl_fmt_list(FILE *out, json_t *list)
{
	size_t n = json_array_size(list);
	char *(*rows)[NCOLS] = calloc(n ? n : 1, sizeof(*rows));
	int width[NCOLS];

	if (!rows)
		return;
	for (int c = 0; c < NCOLS; c++)
		width[c] = (int)strlen(col_title[c]);
	for (size_t i = 0; i < n; i++) {
		for (int c = 0; c < NCOLS; c++) {
			rows[i][c] = cell_text(json_array_get(list, i), c);
			if (rows[i][c] && (int)strlen(rows[i][c]) > width[c])
				width[c] = (int)strlen(rows[i][c]);
		}
	}
	qsort(rows, n, sizeof(*rows), by_name);
	print_row(out, (char *const *)col_title, width);
	for (size_t i = 0; i < n; i++) {
		print_row(out, rows[i], width);
		for (int c = 0; c < NCOLS; c++)
			free(rows[i][c]);
	}
	free(rows);
}

/* ------------------------------------------------------------ status */

static const struct {
	const char *key, *label;
} status_keys[] = {
	{ "name", "name" },
	{ "state", "state" },
	{ "pid", "pid" },
	{ "uptime", "uptime" },
	{ "restarts", "restarts" },
	{ "autostart", "autostart" },
	{ "saved_state", "saved state" },
	{ "operator_stop", NULL },   /* shown with autostart */
	{ "accel", "accel" },
	{ "addresses", "addresses" },
	{ "guest_addresses", "guest IPs" },
	{ "config_changed", "config changed" },
	{ "profile", "profile" },
	{ "console", "console" },
	{ "qmp", "qmp" },
	{ "reason", NULL },   /* shown with the state */
	{ "tainted", NULL },  /* the same */
	{ "taint", NULL },
	{ "log_tail", NULL }, /* last, indented (status_log_tail) */
	{ "io_error", NULL }, /* the paused state's reason names it */
};

#define STATUS_KEYS (sizeof(status_keys) / sizeof(status_keys[0]))
#define LABEL_WIDTH 16   /* "config changed: " */

/* ", tainted (blockdev-add, qom-set)" after the state of a guest that had
 * QMP commands passed through since its QEMU started; else "". */
static void taint_text(json_t *st, char *buf, size_t size)
{
	json_t *v;
	size_t i, o;

	buf[0] = '\0';
	if (!json_is_true(json_object_get(st, "tainted")))
		return;
	o = (size_t)snprintf(buf, size, ", tainted");
	json_array_foreach(json_object_get(st, "taint"), i, v) {
		if (o < size)
			o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : " (",
			                      json_is_string(v) ? json_string_value(v) : "?");
	}
	if (o < size && json_array_size(json_object_get(st, "taint")))
		snprintf(buf + o, size - o, ")");
}

static void status_line(FILE *out, const char *label, json_t *st, const char *key)
{
	json_t *v = json_object_get(st, key);
	char *text = value_text(v), dur[32], taint[1200];
	const char *reason = json_string_value(json_object_get(st, "reason"));

	if (!strcmp(key, "uptime")) {
		duration_of(v, dur, sizeof(dur));
		fprintf(out, "%-*s%s\n", LABEL_WIDTH, label, dur);
	} else if (!strcmp(key, "state")) {
		taint_text(st, taint, sizeof(taint));
		fprintf(out, "%-*s%s%s%s%s%s\n", LABEL_WIDTH, label, text ? text : "-",
		        reason && *reason ? " (" : "", reason && *reason ? reason : "",
		        reason && *reason ? ")" : "", taint);
	} else if (!strcmp(key, "autostart")) {
		const char *op = json_string_value(json_object_get(st, "operator_stop"));
		fprintf(out, "%-*s%s%s%s\n", LABEL_WIDTH, label, !json_is_boolean(v) ? "-"
		        : json_is_true(v) ? "yes" : "no",
		        op ? "; stopped by the operator at " : "", op ? op : "");
	} else if (!strcmp(key, "saved_state")) {
		if (text && json_is_string(v))
			fprintf(out, "%-*s%s (the next start resumes from it)\n", LABEL_WIDTH,
			        label, text);
	} else if (!strcmp(key, "media") && json_is_object(v)) {
		const char *id;
		json_t *m;
		int n = 0;
		fprintf(out, "%-*s", LABEL_WIDTH, label);   /* cd /srv/x.iso, spare empty */
		json_object_foreach(v, id, m)
			fprintf(out, "%s%s %s", n++ ? ", " : "", id,
			        json_is_string(m) ? json_string_value(m) : "?");
		fprintf(out, "%s\n", n ? "" : "-");
	} else if (!strcmp(key, "io_limits") && json_is_object(v)) {
		const char *id, *k;   /* root bps-write=10485760, data iops-total=100 */
		json_t *lim, *n;
		int d = 0;
		fprintf(out, "%-*s", LABEL_WIDTH, label);
		json_object_foreach(v, id, lim) {
			fprintf(out, "%s%s", d++ ? "; " : "", id);
			json_object_foreach(lim, k, n)
				fprintf(out, " %s=%lld", k, (long long)json_integer_value(n));
		}
		fprintf(out, "%s\n", d ? "" : "none");
	} else if (!strcmp(key, "balloon") && json_is_object(v)) {
		/* target 512 MiB, actual 512 MiB, guest free 301 of 480 MiB */
		json_t *a = json_object_get(v, "actual"), *gs = json_object_get(v, "stats");
		long long fr = (long long)json_integer_value(json_object_get(gs, "stat-free-memory"));
		long long tot = (long long)json_integer_value(json_object_get(gs, "stat-total-memory"));
		fprintf(out, "%-*starget %lld MiB", LABEL_WIDTH, label,
		        (long long)json_integer_value(json_object_get(v, "target")) >> 20);
		if (json_is_integer(a))
			fprintf(out, ", actual %lld MiB", (long long)json_integer_value(a) >> 20);
		if (fr > 0 && tot > 0)
			fprintf(out, ", guest free %lld of %lld MiB", fr >> 20, tot >> 20);
		fprintf(out, "\n");
	} else if (!strcmp(key, "pinned") && json_is_object(v)) {
		json_t *e = json_object_get(v, "error");
		fprintf(out, "%-*s%lld vCPU threads, %lld others%s%s\n", LABEL_WIDTH, label,
		        (long long)json_integer_value(json_object_get(v, "vcpu-threads")),
		        (long long)json_integer_value(json_object_get(v, "other-threads")),
		        json_is_string(e) ? "; failed: " : "", json_is_string(e) ? json_string_value(e) : "");
	} else if (!strcmp(key, "agent") && json_is_object(v)) {
		/* agent: connected (qemu-ga 7.2.22) | not connected | none */
		const char *ver = json_string_value(json_object_get(v, "version"));
		bool conn = json_is_true(json_object_get(v, "connected"));
		if (!json_is_true(json_object_get(v, "channel")))
			fprintf(out, "%-*snone ([guest] agent = no)\n", LABEL_WIDTH, label);
		else
			fprintf(out, "%-*s%s%s%s%s%s\n", LABEL_WIDTH, label,
			        conn ? "connected" : "not connected", conn && ver ? " (qemu-ga " : "",
			        conn && ver ? ver : "", conn && ver ? ")" : "",
			        json_is_true(json_object_get(v, "frozen")) ? ", file systems frozen" : "");
	} else if (!strcmp(key, "guest_addresses")) {
		json_t *m;
		size_t i;
		if (!json_array_size(v)) {   /* no agent, or none reported: no line */
			free(text);
			return;
		}
		json_array_foreach(v, i, m) {   /* eth0 10.0.2.15/24, ... (from the agent) */
			const char *ifc = json_string_value(json_object_get(m, "interface"));
			const char *addr = json_string_value(json_object_get(m, "address"));
			fprintf(out, "%-*s%s %s/%lld%s", i ? 0 : LABEL_WIDTH, i ? ", " : label,
			        ifc ? ifc : "?", addr ? addr : "?",
			        (long long)json_integer_value(json_object_get(m, "prefix")),
			        i + 1 == json_array_size(v) ? "\n" : "");
		}
	} else if (!strcmp(key, "created") && json_is_array(v)) {
		json_t *m;
		size_t i;
		json_array_foreach(v, i, m)   /* nothing when the last start made nothing */
			fprintf(out, "%-*s%s%s", i ? 0 : LABEL_WIDTH, i ? ", " : label,
			        json_is_string(m) ? json_string_value(m) : "?",
			        i + 1 == json_array_size(v) ? "\n" : "");
	} else if (!strcmp(key, "addresses")) {
		/* "192.168.123.45 (lan on default), ...": leased on managed networks */
		size_t i;
		json_t *a;
		if (!json_array_size(v)) {
			free(text);
			return;
		}
		fprintf(out, "%-*s", LABEL_WIDTH, label);
		json_array_foreach(v, i, a)
			fprintf(out, "%s%s (%s on %s)", i ? ", " : "",
			        json_string_value(json_object_get(a, "ip")),
			        json_string_value(json_object_get(a, "nic")),
			        json_string_value(json_object_get(a, "network")));
		fputc('\n', out);
	} else if (!strcmp(key, "config_changed") && json_is_true(v)) {
		fprintf(out, "%-*syes (restart the guest to apply the profile)\n",
		        LABEL_WIDTH, label);
	} else {
		fprintf(out, "%-*s%s\n", LABEL_WIDTH, label, text ? text : "-");
	}
	free(text);
}

static bool status_known(const char *key)
{
	for (size_t i = 0; i < STATUS_KEYS; i++)
		if (!strcmp(status_keys[i].key, key))
			return true;
	return false;
}

/* The last lines of a crashed or failed guest's last run, one per line,
 * indented under their label. */
static void status_log_tail(FILE *out, json_t *st)
{
	json_t *tail = json_object_get(st, "log_tail"), *v;
	size_t i;

	if (!json_array_size(tail))
		return;
	fprintf(out, "log tail:       (the last run's output)\n");
	json_array_foreach(tail, i, v)
		fprintf(out, "    %s\n", json_is_string(v) ? json_string_value(v) : "?");
}

void ctl_fmt_status(FILE *out, json_t *st)
{
	const char *key;
	json_t *v;
	char label[80];

	for (size_t i = 0; i < STATUS_KEYS; i++) {
		if (!status_keys[i].label)
			continue;
		snprintf(label, sizeof(label), "%s:", status_keys[i].label);
		status_line(out, label, st, status_keys[i].key);
	}
	json_object_foreach(st, key, v) {
		if (status_known(key))
			continue;
		snprintf(label, sizeof(label), "%s:", key);
		status_line(out, label, st, key);
	}
	status_log_tail(out, st);
}

void ctl_fmt_outcome(FILE *out, const char *name, json_t *st)
{
	const char *state = json_string_value(json_object_get(st, "state"));
	const char *reason = json_string_value(json_object_get(st, "reason"));

	fprintf(out, "%s: %s", name, state ? state : "done");
	if (reason && *reason)
		fprintf(out, " (%s)", reason);
	fputc('\n', out);
}

/* ------------------------------------------------------------ events */

static void event_time(json_t *ev, char buf[16])
{
	json_t *secs = json_object_get(json_object_get(ev, "timestamp"), "seconds");
	time_t t;
	struct tm tm;

	if (!json_is_integer(secs)) {
		strcpy(buf, "--:--:--");
		return;
	}
	t = (time_t)json_integer_value(secs);
	if (!localtime_r(&t, &tm) || !strftime(buf, 16, "%H:%M:%S", &tm))
		strcpy(buf, "--:--:--");
}

/* The guest an event is about: data.name for GUEST_STATE, else "guest". */
static const char *event_guest(json_t *ev)
{
	const char *g = json_string_value(json_object_get(ev, "guest"));

	if (!g)
		g = json_string_value(json_object_get(json_object_get(ev, "data"), "name"));
	return g;
}

void ctl_fmt_event(FILE *out, json_t *ev)
{
	const char *name = json_string_value(json_object_get(ev, "event"));
	const char *guest = event_guest(ev);
	json_t *data = json_object_get(ev, "data");
	char when[16];

	event_time(ev, when);
	fprintf(out, "%s %s ", when, guest ? guest : "-");
	if (name && !strcmp(name, "GUEST_STATE")) {
		const char *state = json_string_value(json_object_get(data, "state"));
		const char *reason = json_string_value(json_object_get(data, "reason"));

		fprintf(out, "%s", state ? state : "?");
		if (reason && *reason)
			fprintf(out, " (%s)", reason);
	} else {
		fprintf(out, "%s", name ? name : "?");
		if (data && !(json_is_object(data) && json_object_size(data) == 0)) {
			char *text = json_dumps(data, JSON_ENCODE_ANY);

			if (text)
				fprintf(out, " %s", text);
			free(text);
		}
	}
	fputc('\n', out);
}

bool ctl_event_match(json_t *ev, char *const *names, int n)
{
	const char *g = event_guest(ev);

	if (n == 0)
		return true;
	for (int i = 0; g && i < n; i++)
		if (!strcmp(names[i], g))
			return true;
	return false;
}

/* ------------------------------------------------------------ reload */

static bool names_line(FILE *out, const char *label, json_t *arr)
{
	size_t i;
	json_t *v;

	if (json_array_size(arr) == 0)
		return false;
	fprintf(out, "%s:", label);
	json_array_foreach(arr, i, v)
		fprintf(out, " %s", json_is_string(v) ? json_string_value(v) : "?");
	fputc('\n', out);
	return true;
}

size_t ctl_fmt_reload(FILE *out, FILE *err, json_t *ret)
{
	json_t *errors = json_object_get(ret, "errors"), *v;
	bool any = false;
	size_t i;

	any |= names_line(out, "added", json_object_get(ret, "added"));
	any |= names_line(out, "removed", json_object_get(ret, "removed"));
	any |= names_line(out, "changed", json_object_get(ret, "changed"));
	if (!any)
		fprintf(out, "no changes\n");
	json_array_foreach(errors, i, v)
		fprintf(err, "qsupctl: reload: %s\n", json_is_string(v) ? json_string_value(v) : "?");
	return json_array_size(errors);
}

void ctl_fmt_lines(FILE *out, json_t *arr)
{
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v)
		fprintf(out, "%s\n", sv_or(json_string_value(v), ""));
}

double ctl_mib(json_t *o, const char *key)
{
	return (double)json_integer_value(json_object_get(o, key)) / (1024.0 * 1024.0);
}

void ctl_fmt_bar(int pct, char bar[21])
{
	for (int i = 0; i < 20; i++)
		bar[i] = i < pct / 5 ? '#' : '.';
	bar[20] = '\0';
}
