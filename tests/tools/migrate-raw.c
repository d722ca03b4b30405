/*
 * migrate-raw: live-migrate a guest between two plain QEMU processes over
 * QMP, the "raw QEMU" baseline for qsup's migrate. Prints one JSON line.
 *
 *   migrate-raw [OPTIONS] -- QEMU-ARGV...
 *
 * QEMU-ARGV is the source's full command line, e.g. from
 *     mapfile -t argv < <(qsupd --print-argv demo)
 * The destination runs the same argv plus -incoming defer. Two QEMUs on one
 * host cannot share socket paths (the second one would silently take the
 * path over), so the path= of every -chardev socket moves into a directory
 * per side (same base name), and each side gets one more QMP monitor, ours.
 * Other host resources (a hostfwd port, a disk image lock) are the caller's
 * business: see --dst-sub. qsupd's argv names fds rather than paths: a
 * -chardev socket with fd=N gets a path= in the side's directory instead
 * (named after its id), and --fds opens the files the others stand for.
 *
 * Options:
 *   --uri unix:PATH|tcp:HOST:PORT  migration stream (default: a unix socket
 *                                  in the temp dir; tcp port 0 picks one)
 *   --cap NAME[=on|off]            migrate-set-capabilities, both sides
 *                                  ("events" is always on: we wait on them)
 *   --param NAME=VALUE             migrate-set-parameters, both sides; digits
 *                                  make a number, on/off a boolean
 *   --dst-sub FROM=TO              replace FROM (no '=' in it) with TO in the
 *                                  destination's argv (e.g. a hostfwd port:
 *                                  --dst-sub :2222-=:2223-)
 *   --wait TEXT                    wait for TEXT on the console (-chardev
 *                                  id=serial0) before migrating, and report
 *                                  the console lines around the switch
 *   --delay MS                     then let the guest run MS more
 *   --timeout S                    give up after S seconds (default 300)
 *   --fds FILE                     what qsupd --print-argv writes on stderr
 *                                  ("# fd N: WHAT: read|file PATH ..."):
 *                                  each side gets PATH opened as fd N
 *
 * Sequence: both QEMUs spawned; capabilities and parameters set on both;
 * migrate-incoming on the destination; cont on the source (if -S); migrate;
 * MIGRATION events until completed, failed or cancelled; query-migrate on
 * the source; cont on the destination if it was started with -S.
 *
 * Output fields: status, uri, caps (those on), params (as given), total_ms
 * (migrate sent until the destination runs, our clock), qemu_total_ms,
 * setup_ms, downtime_ms (QEMU's query-migrate), transferred and ram_total
 * (bytes), passes (dirty-sync-count), mbps, src_state and dst_state (run
 * states afterwards), error (when failed), console (with --wait).
 * Exit status 0 when the migration completed and the destination runs;
 * otherwise the destination's stderr goes to ours (the source only sees a
 * broken stream).
 */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qmp.h"
#include "testutil.h"

struct side {
	const char *name;
	char dir[128], qmp_path[PATH_MAX], serial_path[PATH_MAX];
	char **argv;
	uv_process_t proc;
	int spawned, exited;
	struct t_qmp qmp;
	struct t_serial con;
	size_t ev;                  /* next event to look at */
	const char *status;         /* the final MIGRATION status */
	double t_stop, t_resume;    /* t_now() when STOP, RESUME arrived */
};

static uv_loop_t *loop;
static uint64_t deadline;       /* uv_now() value */
static char *tmp;               /* our temp dir */
static struct side src = { .name = "source" }, dst = { .name = "destination" };

static void print_stderr(const struct side *s)
{
	char log[PATH_MAX];
	snprintf(log, sizeof(log), "%s/stderr.log", s->dir);
	fprintf(stderr, "%s QEMU's stderr:\n%s\n", s->name, t_file_tail(log));
}

/* Print the message (and s's stderr), kill both QEMUs, exit 1. */
static void die(const char *fmt, const char *arg, struct side *s)
{
	fprintf(stderr, "migrate-raw: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	if (s)
		print_stderr(s);
	if (src.spawned && !src.exited)
		uv_process_kill(&src.proc, SIGKILL);
	if (dst.spawned && !dst.exited)
		uv_process_kill(&dst.proc, SIGKILL);
	t_rmtree(tmp);
	exit(1);
}

static uint64_t left_ms(void)
{
	uv_update_time(loop);
	return uv_now(loop) < deadline ? deadline - uv_now(loop) : 1;
}

/* Replace every occurrence of from in s by to (a new string). */
static char *subst(const char *s, const char *from, const char *to)
{
	size_t n = 0, from_len = strlen(from), to_len = strlen(to);
	for (const char *p = s; (p = strstr(p, from)); p += from_len)
		n++;
	char *out = malloc(strlen(s) + n * to_len + 1), *o = out;
	for (const char *p; (p = strstr(s, from)); s = p + from_len) {
		memcpy(o, s, (size_t)(p - s));
		o += p - s;
		memcpy(o, to, to_len);
		o += to_len;
	}
	strcpy(o, s);
	return out;
}

/* fds the argv names (--fds): number, open file, both sides. */
static int fd_num[64], fd_file[64];
static size_t nfds;

static void read_fds(const char *file)
{
	FILE *f = fopen(file, "r");
	char line[PATH_MAX + 128], kind[16], path[PATH_MAX];
	int n;
	if (!f)
		die("cannot read %s", file, NULL);
	while (fgets(line, sizeof(line), f)) {
		const char *c = strchr(line, ':');
		c = c ? strchr(c + 1, ':') : NULL;
		if (sscanf(line, "# fd %d:", &n) != 1 || !c ||
		    sscanf(c + 1, " %15s %4095s", kind, path) != 2)
			continue;
		if (strcmp(kind, "read") != 0 && strcmp(kind, "file") != 0)
			die("%s: only files can be passed", line, NULL);
		if (nfds == sizeof(fd_num) / sizeof(fd_num[0]) || n < 3 || n > 200)
			die("%s: too many fds, or out of range", line, NULL);
		int flags = strstr(line, "(read-write)") ? O_RDWR
		            : strstr(line, "(append)") ? O_WRONLY | O_APPEND : O_RDONLY;
		fd_num[nfds] = n;
		if ((fd_file[nfds++] = open(path, flags | O_CLOEXEC)) < 0)
			die("cannot open %s", path, NULL);
	}
	fclose(f);
}

/* A -chardev socket option with its path= moved into dir, or with fd=N
 * (qsupd's bound socket) replaced by a path= there named after its id; notes
 * the console's new path. Escaped commas (",,") in the path are not handled. */
static char *move_socket(struct side *s, const char *opt)
{
	const char *fd = strstr(opt, ",fd="), *id = strstr(opt, ",id=");
	if (strncmp(opt, "socket,", 7) == 0 && fd && id) {
		id += 4;
		size_t idlen = strcspn(id, ",");
		const char *rest = fd + 4 + strspn(fd + 4, "0123456789");
		char *out;
		if (asprintf(&out, "%.*s,path=%s/%.*s.sock%s", (int)(fd - opt), opt, s->dir,
		             (int)idlen, id, rest) < 0)
			die("%s", "out of memory", NULL);
		if (idlen == 7 && strncmp(id, "serial0", 7) == 0)
			snprintf(s->serial_path, sizeof(s->serial_path), "%s/serial0.sock", s->dir);
		return out;
	}
	const char *p = strstr(opt, ",path=");
	if (strncmp(opt, "socket,", 7) != 0 || !p)
		return strdup(opt);
	p += 6;
	size_t len = strcspn(p, ",");
	const char *base = memrchr(p, '/', len);
	base = base ? base + 1 : p;
	char *out;
	if (asprintf(&out, "%.*s%s/%.*s%s", (int)(p - opt), opt, s->dir,
	             (int)(p + len - base), base, p + len) < 0)
		die("%s", "out of memory", NULL);
	if (strstr(opt, ",id=serial0,") || strncmp(opt, "socket,id=serial0,", 18) == 0)
		snprintf(s->serial_path, sizeof(s->serial_path), "%s/%.*s", s->dir,
		         (int)(p + len - base), base);
	return out;
}

/* The side's argv: QEMU-ARGV with sockets moved and subs (FROM, TO pairs)
 * applied, our QMP monitor, and extra (NULL-terminated). */
static void build_argv(struct side *s, char **qargv, int qargc, char **subs,
                       int nsubs, const char *const *extra)
{
	size_t n = 0;
	s->argv = calloc((size_t)qargc + 8, sizeof(char *));
	for (int i = 0; i < qargc; i++) {
		char *a = i > 0 && strcmp(qargv[i - 1], "-chardev") == 0
		          ? move_socket(s, qargv[i]) : strdup(qargv[i]);
		for (int k = 0; k < nsubs; k++) {
			char *b = subst(a, subs[2 * k], subs[2 * k + 1]);
			free(a);
			a = b;
		}
		s->argv[n++] = a;
	}
	snprintf(s->qmp_path, sizeof(s->qmp_path), "%s/migrate-raw.sock", s->dir);
	s->argv[n++] = strdup("-qmp");
	if (asprintf(&s->argv[n++], "unix:%s,server=on,wait=off", s->qmp_path) < 0)
		die("%s", "out of memory", NULL);
	for (size_t i = 0; extra[i]; i++)
		s->argv[n++] = strdup(extra[i]);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct side *s = p->data;
	(void)status;
	(void)sig;
	s->exited = 1;
}

static void spawn(struct side *s)
{
	char log[PATH_MAX];
	snprintf(log, sizeof(log), "%s/stderr.log", s->dir);
	FILE *f = fopen(log, "w");
	if (!f)
		die("cannot create %s", log, NULL);
	uv_stdio_container_t stdio[201] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_INHERIT_FD, .data.fd = fileno(f) },
		{ .flags = UV_INHERIT_FD, .data.fd = fileno(f) },
	};
	int count = 3;
	for (int i = 3; i < 201; i++)
		stdio[i].flags = UV_IGNORE;
	for (size_t i = 0; i < nfds; i++) {
		stdio[fd_num[i]] = (uv_stdio_container_t){ .flags = UV_INHERIT_FD,
		                                            .data.fd = fd_file[i] };
		if (fd_num[i] + 1 > count)
			count = fd_num[i] + 1;
	}
	uv_process_options_t o = {
		.exit_cb = on_exit_cb, .file = s->argv[0], .args = s->argv,
		.stdio = stdio, .stdio_count = count,
	};
	s->proc.data = s;
	int rc = uv_spawn(loop, &s->proc, &o);
	fclose(f);
	if (rc < 0)
		die("cannot spawn QEMU: %s", uv_strerror(rc), NULL);
	s->spawned = 1;
}

/* Execute cmd on s; dies on error. Returns the reply (a new reference). */
static json_t *exec(struct side *s, const char *cmd, json_t *args)
{
	json_t *ret = NULL;
	int rc = t_qmp_exec(&s->qmp, cmd, args, &ret);
	json_decref(args);
	if (rc != 0) {
		char *e = ret ? json_dumps(ret, JSON_COMPACT) : strdup(qmp_strerror(rc));
		fprintf(stderr, "migrate-raw: %s: %s: %s\n", s->name, cmd, e);
		free(e);
		die("%s failed", cmd, s);
	}
	return ret;
}

static int is(json_t *v, const char *s)
{
	return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* The run state ("running", "paused", "postmigrate", ...), or "gone". */
static json_t *run_state(struct side *s)
{
	json_t *st = NULL;
	if (s->exited || t_qmp_exec(&s->qmp, "query-status", NULL, &st) != 0) {
		json_decref(st);
		return json_string("gone");
	}
	json_t *v = json_incref(json_object_get(st, "status"));
	json_decref(st);
	return v;
}

/* Note s's new events: the final MIGRATION status, STOP and RESUME times. */
static void scan(struct side *s)
{
	for (; s->ev < json_array_size(s->qmp.events); s->ev++) {
		json_t *e = json_array_get(s->qmp.events, s->ev), *name = json_object_get(e, "event");
		json_t *st = json_object_get(json_object_get(e, "data"), "status");
		if (is(name, "STOP") && !s->t_stop)
			s->t_stop = t_now();
		else if (is(name, "RESUME") && !s->t_resume)
			s->t_resume = t_now();
		else if (is(name, "MIGRATION") && !s->status &&
		         (is(st, "completed") || is(st, "failed") || is(st, "cancelled")))
			s->status = json_string_value(st);
	}
}

/* The source is done, and so is the destination unless the source failed. */
static int migration_over(void *arg)
{
	(void)arg;
	scan(&src);
	scan(&dst);
	if (!src.status)
		return src.exited;
	return strcmp(src.status, "completed") != 0 || dst.status || dst.exited;
}

static int dst_resumed(void *arg)
{
	(void)arg;
	scan(&dst);
	return dst.t_resume > 0 || dst.exited;
}

/* query-migrate on the source. QEMU announces "completed" a moment before
 * it fills in total-time and downtime: ask until they are there. */
static json_t *query_migrate(void)
{
	for (int i = 0;; i++) {
		json_t *info = exec(&src, "query-migrate", NULL);
		if (!is(json_object_get(info, "status"), "completed") || i == 100 ||
		    json_integer_value(json_object_get(info, "total-time")) > 0)
			return info;
		json_decref(info);
		t_run_for(loop, 10);
	}
}

/* The console line around offset at. */
static json_t *console_line(const struct t_serial *c, size_t at)
{
	if (!c->buf || at > c->len)
		return json_null();
	size_t a = at, b = at;
	while (a > 0 && c->buf[a - 1] != '\n')
		a--;
	b += strcspn(c->buf + b, "\r\n");
	return json_stringn(c->buf + a, b - a);
}

/* The last complete line of the console output so far. */
static size_t last_line_at(const struct t_serial *c)
{
	size_t end = c->len;
	while (end > 0 && (c->buf[end - 1] == '\n' || c->buf[end - 1] == '\r'))
		end--;
	return end;
}

static json_t *ms(double seconds)
{
	return json_integer((json_int_t)(seconds * 1000 + 0.5));
}

static json_t *param_value(const char *v)
{
	if (!strcmp(v, "on") || !strcmp(v, "true"))
		return json_true();
	if (!strcmp(v, "off") || !strcmp(v, "false"))
		return json_false();
	if (*v && v[strspn(v, "0123456789")] == '\0')
		return json_integer(strtoll(v, NULL, 10));
	return json_string(v);
}

static void finish(struct side *s)
{
	if (!s->spawned)
		return;
	if (!s->exited && s->qmp.c)
		t_qmp_exec(&s->qmp, "quit", NULL, NULL);
	t_run_until_flag(loop, &s->exited, 5000);
	if (!s->exited) {
		uv_process_kill(&s->proc, SIGKILL);
		t_run_until_flag(loop, &s->exited, 5000);
	}
	if (s->con.open)
		t_serial_close(&s->con);
	t_qmp_close(&s->qmp);
	uv_close((uv_handle_t *)&s->proc, NULL);
	for (char **a = s->argv; *a; a++)
		free(*a);
	free(s->argv);
}

static void usage(void)
{
	fprintf(stderr, "usage: migrate-raw [--uri unix:PATH|tcp:HOST:PORT] "
	        "[--cap NAME[=on|off]]... [--param NAME=VALUE]...\n"
	        "                   [--dst-sub FROM=TO]... [--wait TEXT] [--delay MS] "
	        "[--timeout S] [--fds FILE]\n"
	        "                   -- QEMU-ARGV...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "uri", required_argument, NULL, 'u' },
		{ "cap", required_argument, NULL, 'c' },
		{ "param", required_argument, NULL, 'p' },
		{ "dst-sub", required_argument, NULL, 's' },
		{ "wait", required_argument, NULL, 'w' },
		{ "delay", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' },
		{ "fds", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *uri = NULL, *wait_text = NULL;
	long delay_ms = 0, timeout_s = 300;
	json_t *caps = json_pack("[{s:s, s:b}]", "capability", "events", "state", 1);
	json_t *params = json_object();
	char **subs = calloc((size_t)argc * 2, sizeof(char *));
	int nsubs = 0, opt;

	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		char *eq = optarg ? strchr(optarg, '=') : NULL;
		switch (opt) {
		case 'u': uri = optarg; break;
		case 'c':
			if (eq)
				*eq = '\0';
			json_array_append_new(caps, json_pack("{s:s, s:b}", "capability", optarg,
			                      "state", !eq || !strcmp(eq + 1, "on")));
			break;
		case 'p':
			if (!eq)
				usage();
			*eq = '\0';
			json_object_set_new(params, optarg, param_value(eq + 1));
			break;
		case 's':
			if (!eq || eq == optarg)
				usage();
			*eq = '\0';
			subs[2 * nsubs] = optarg;
			subs[2 * nsubs++ + 1] = eq + 1;
			break;
		case 'w': wait_text = optarg; break;
		case 'd': delay_ms = atol(optarg); break;
		case 't': timeout_s = atol(optarg); break;
		case 'f': read_fds(optarg); break;
		default: usage();
		}
	}
	if (optind >= argc || strcmp(argv[optind - 1], "--") != 0)
		usage();
	if (uri && strncmp(uri, "unix:", 5) != 0 && strncmp(uri, "tcp:", 4) != 0)
		die("%s: only unix: and tcp: URIs", uri, NULL);

	loop = uv_default_loop();
	deadline = uv_now(loop) + (uint64_t)timeout_s * 1000;
	tmp = t_mkdtemp("migrate-raw");
	if (!tmp || strlen(tmp) > 80)   /* sockets: sun_path has 108 bytes */
		die("%s", "cannot create a short temp dir (TMPDIR?)", NULL);
	char default_uri[PATH_MAX + 32];
	snprintf(default_uri, sizeof(default_uri), "unix:%s/migrate.sock", tmp);
	if (!uri)
		uri = default_uri;

	snprintf(src.dir, sizeof(src.dir), "%.80s/src", tmp);
	snprintf(dst.dir, sizeof(dst.dir), "%.80s/dst", tmp);
	if (mkdir(src.dir, 0700) < 0 || mkdir(dst.dir, 0700) < 0)
		die("cannot create %s", dst.dir, NULL);
	static const char *const no_extra[] = { NULL };
	static const char *const incoming[] = { "-incoming", "defer", NULL };
	build_argv(&src, &argv[optind], argc - optind, NULL, 0, no_extra);
	build_argv(&dst, &argv[optind], argc - optind, subs, nsubs, incoming);
	spawn(&src);
	spawn(&dst);
	if (t_qmp_open(loop, &src.qmp, src.qmp_path, 15000) < 0)
		die("cannot connect to %s", src.qmp_path, &src);
	if (t_qmp_open(loop, &dst.qmp, dst.qmp_path, 15000) < 0)
		die("cannot connect to %s", dst.qmp_path, &dst);
	if (wait_text) {
		if (!src.serial_path[0])
			die("%s: no -chardev socket,id=serial0,path=...", "--wait", NULL);
		if (t_serial_open(loop, &src.con, src.serial_path, 5000) < 0 ||
		    t_serial_open(loop, &dst.con, dst.serial_path, 5000) < 0)
			die("cannot connect to the console at %s", src.serial_path, NULL);
	}

	/* Both ends: capabilities before migrate-incoming (multifd must be on
	 * at both ends), parameters (multifd-channels must match). */
	struct side *both[2] = { &src, &dst };
	for (int i = 0; i < 2; i++) {
		json_decref(exec(both[i], "migrate-set-capabilities",
		                 json_pack("{s:O}", "capabilities", caps)));
		if (json_object_size(params))
			json_decref(exec(both[i], "migrate-set-parameters", json_incref(params)));
	}
	json_decref(exec(&dst, "migrate-incoming", json_pack("{s:s}", "uri", uri)));

	/* tcp port 0: the port the destination listens on. */
	json_t *in = exec(&dst, "query-migrate", NULL);
	json_t *addr = json_array_get(json_object_get(in, "socket-address"), 0);
	char src_uri[PATH_MAX + 32];
	if (is(json_object_get(addr, "type"), "inet"))
		snprintf(src_uri, sizeof(src_uri), "tcp:%s:%s",
		         json_string_value(json_object_get(addr, "host")),
		         json_string_value(json_object_get(addr, "port")));
	else
		snprintf(src_uri, sizeof(src_uri), "%s", uri);
	json_decref(in);

	json_t *state = run_state(&src);
	if (!is(state, "running"))
		json_decref(exec(&src, "cont", NULL));
	json_decref(state);
	size_t con_at = 0;
	if (wait_text && t_serial_wait(&src.con, wait_text, &con_at, left_ms()) < 0)
		die("no \"%s\" on the console", wait_text, &src);
	if (delay_ms > 0)
		t_run_for(loop, (uint64_t)delay_ms);

	src.ev = json_array_size(src.qmp.events);
	dst.ev = json_array_size(dst.qmp.events);
	double t0 = t_now();
	json_decref(exec(&src, "migrate", json_pack("{s:s}", "uri", src_uri)));
	if (t_run_until(loop, migration_over, NULL, left_ms()) < 0)
		die("%s", "timed out", NULL);
	if (!src.status)
		die("%s", "the source exited", &src);
	size_t src_con_end = src.con.open ? last_line_at(&src.con) : 0;
	json_t *info = query_migrate();

	/* The destination runs by itself (RESUME comes before its "completed"),
	 * or, started with -S, waits in "paused" for cont. */
	if (dst.status && !strcmp(dst.status, "completed") && !dst.t_resume) {
		state = run_state(&dst);
		if (is(state, "paused"))
			json_decref(exec(&dst, "cont", NULL));
		json_decref(state);
		t_run_until(loop, dst_resumed, NULL, left_ms());
	}

	json_t *out = json_pack("{s:s, s:s}", "status", src.status, "uri", src_uri);
	json_t *on = json_array(), *cap_list = exec(&src, "query-migrate-capabilities", NULL);
	for (size_t i = 0; i < json_array_size(cap_list); i++) {
		json_t *c = json_array_get(cap_list, i);
		if (json_is_true(json_object_get(c, "state")))
			json_array_append(on, json_object_get(c, "capability"));
	}
	json_decref(cap_list);
	json_object_set_new(out, "caps", on);
	json_object_set(out, "params", params);
	if (dst.t_resume > 0) {
		json_object_set_new(out, "total_ms", ms(dst.t_resume - t0));
		if (src.t_stop > 0)
			json_object_set_new(out, "paused_ms", ms(dst.t_resume - src.t_stop));
	}
	json_t *ram = json_object_get(info, "ram");
	static const char *const fields[][3] = {
		{ "qemu_total_ms", NULL, "total-time" }, { "setup_ms", NULL, "setup-time" },
		{ "downtime_ms", NULL, "downtime" }, { "transferred", "ram", "transferred" },
		{ "ram_total", "ram", "total" }, { "passes", "ram", "dirty-sync-count" },
		{ "mbps", "ram", "mbps" }, { "error", NULL, "error-desc" },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		json_t *v = json_object_get(fields[i][1] ? ram : info, fields[i][2]);
		if (v)
			json_object_set(out, fields[i][0], v);
	}
	json_decref(info);
	json_object_set_new(out, "src_state", run_state(&src));
	state = run_state(&dst);
	int ok = dst.t_resume > 0 && is(state, "running");
	json_object_set_new(out, "dst_state", state);
	if (wait_text && dst.t_resume > 0) {
		/* The first line the guest prints on the destination. */
		size_t from = 0;
		t_serial_wait(&dst.con, "\n", &from, 3000);
		json_object_set_new(out, "console", json_pack("{s:o, s:o}",
			"src_last", console_line(&src.con, src_con_end),
			"dst_first", dst.con.len ? console_line(&dst.con, 0) : json_null()));
	}

	char *line = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
	puts(line);
	fflush(stdout);
	free(line);
	if (!ok)
		print_stderr(&dst);
	json_decref(out);
	json_decref(caps);
	json_decref(params);
	free(subs);
	finish(&src);
	finish(&dst);
	t_rmtree(tmp);
	free(tmp);
	t_loop_finish(loop);
	return ok ? 0 : 1;
}
