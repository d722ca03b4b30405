/*
 * qsupctl against a fake qsupd: each test listens on a unix socket in a temp
 * dir, runs build/qsupctl -s SOCKET ... (fork+exec, stdout and stderr in
 * files), plays the daemon's side by hand (greeting, scripted replies,
 * events) and checks the requests sent, the output and the exit status.
 * The pure formatters (ctl_fmt_*) and the socket path rules are tested
 * directly. Blocking I/O with deadlines: this is test code, not the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "ctl.h"
#include "testutil.h"

#define DEADLINE_MS 10000
#define GREETING "{\"qsup\": {\"version\": \"0.1.0\", \"capabilities\": []}}\n"

struct run {
	char *dir;
	char sock[128], serial[128], out_path[160], err_path[160];
	int lfd, cfd;              /* the fake daemon: listening, accepted */
	int slfd, scfd;            /* the fake serial console */
	int in_fd;                 /* our end of the child's stdin, or -1 */
	int pty_slave;             /* kept open to read the termios, or -1 */
	struct termios tty_before; /* the pty's settings before qsupctl ran */
	pid_t pid;
	struct qmp_framer framer;
	json_t *inbox;             /* requests received, not yet read */
	char *out, *err;           /* the child's output, after finish() */
};

enum { SP_NO_SOCKET = 1, SP_STDIN_PIPE = 2, SP_STDIN_PTY = 4 };

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

static int setup(void **state)
{
	struct run *r = calloc(1, sizeof(*r));

	r->dir = t_mkdtemp("qsupctl");
	snprintf(r->sock, sizeof(r->sock), "%s/qsupd.sock", r->dir);
	snprintf(r->serial, sizeof(r->serial), "%s/serial.sock", r->dir);
	snprintf(r->out_path, sizeof(r->out_path), "%s/stdout", r->dir);
	snprintf(r->err_path, sizeof(r->err_path), "%s/stderr", r->dir);
	r->lfd = listen_at(r->sock);
	r->cfd = r->slfd = r->scfd = r->in_fd = r->pty_slave = -1;
	r->inbox = json_array();
	qmp_framer_init(&r->framer, 1 << 20);
	*state = r;
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int teardown(void **state)
{
	struct run *r = *state;

	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
	}
	close_fd(&r->lfd);
	close_fd(&r->cfd);
	close_fd(&r->slfd);
	close_fd(&r->scfd);
	close_fd(&r->in_fd);
	close_fd(&r->pty_slave);
	qmp_framer_free(&r->framer);
	json_decref(r->inbox);
	free(r->out);
	free(r->err);
	t_rmtree(r->dir);
	free(r->dir);
	free(r);
	return 0;
}

static const char *bin(void)
{
	static char path[512];
	const char *b = getenv("QSUP_BUILDDIR");

	snprintf(path, sizeof(path), "%s/qsupctl", b && *b ? b : "build");
	return path;
}

/* The child's environment: TZ=UTC, the sanitizer options with their exit
 * code set to SAN_EXIT (so that a leak on a path that exits 1 still shows),
 * and env. The strings live in bufs. */
#define SAN_EXIT 97
static void build_env(const char **envp, size_t max, char bufs[3][512],
                      const char *const *env)
{
	static const char *const san[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" };
	size_t n = 0;

	envp[n++] = "TZ=UTC";
	for (size_t i = 0; i < 3; i++) {
		const char *v = getenv(san[i]);

		snprintf(bufs[i], 512, "%s=%s%sexitcode=%d", san[i], v ? v : "",
		         v && *v ? ":" : "", SAN_EXIT);
		envp[n++] = bufs[i];
	}
	for (; env && *env && n + 1 < max; env++)
		envp[n++] = *env;
	envp[n] = NULL;
}

/* Open the child's stdin: /dev/null, a pipe, or a pty's slave. */
static int child_stdin(struct run *r, unsigned flags)
{
	int fds[2];

	if (flags & SP_STDIN_PIPE) {
		assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
		r->in_fd = fds[1];
		return fds[0];
	}
	if (flags & SP_STDIN_PTY) {
		r->in_fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		assert_true(r->in_fd >= 0);
		assert_int_equal(grantpt(r->in_fd), 0);
		assert_int_equal(unlockpt(r->in_fd), 0);
		r->pty_slave = open(ptsname(r->in_fd), O_RDWR | O_NOCTTY | O_CLOEXEC);
		assert_true(r->pty_slave >= 0);
		assert_int_equal(tcgetattr(r->pty_slave, &r->tty_before), 0);
		assert_true(r->tty_before.c_lflag & ICANON);
		return dup(r->pty_slave);
	}
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Start qsupctl [-s SOCKET] args... (NULL-terminated) with env added. */
static void spawn(struct run *r, const char *const *env, unsigned flags, ...)
{
	const char *argv[32], *envp[16];
	char bufs[3][512];
	size_t n = 0;
	va_list ap;
	int in = child_stdin(r, flags);

	argv[n++] = bin();
	if (!(flags & SP_NO_SOCKET)) {
		argv[n++] = "-s";
		argv[n++] = r->sock;
	}
	va_start(ap, flags);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 31;)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	build_env(envp, 16, bufs, env);
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		int out = open(r->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open(r->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
		    dup2(err, 2) < 0)
			_exit(99);
		execve(argv[0], (char **)argv, (char **)envp);
		_exit(98);
	}
	close(in);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t n = 0;

	if (!f)
		return strdup("");
	if (getdelim(&s, &n, '\0', f) < 0) {
		free(s);
		s = strdup("");
	}
	fclose(f);
	return s;
}

/* Wait for the child; load its output. Returns the exit status, or 128 +
 * the signal that killed it. */
static int finish(struct run *r)
{
	uint64_t end = now_ms() + DEADLINE_MS;
	int st = 0;
	pid_t p;

	while ((p = waitpid(r->pid, &st, WNOHANG)) == 0 && now_ms() < end)
		usleep(5000);
	if (p == 0)
		fail_msg("qsupctl did not exit in time");
	assert_int_equal(p, r->pid);
	r->pid = 0;
	r->out = slurp(r->out_path);
	r->err = slurp(r->err_path);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	if (WEXITSTATUS(st) == SAN_EXIT)
		fail_msg("a sanitizer fired in qsupctl:\n%s", r->err);
	if (WEXITSTATUS(st) >= 98)
		fail_msg("could not run %s (status %d)", bin(), WEXITSTATUS(st));
	return WEXITSTATUS(st);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* Accept qsupctl's connection on lfd. */
static int accept_on(int lfd)
{
	int fd;

	if (!readable(lfd, DEADLINE_MS))
		fail_msg("qsupctl did not connect");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void send_text(struct run *r, const char *text)
{
	size_t n = strlen(text);

	assert_int_equal(send(r->cfd, text, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Accept and greet. */
static void serve(struct run *r)
{
	r->cfd = accept_on(r->lfd);
	send_text(r, GREETING);
}

static int inbox_add(json_t *msg, void *arg)
{
	json_array_append((json_t *)arg, msg);
	return 0;
}

/* The next request qsupctl sent (a new reference). */
static json_t *request(struct run *r)
{
	uint64_t end = now_ms() + DEADLINE_MS;
	char buf[4096];
	json_t *m;

	while (json_array_size(r->inbox) == 0) {
		ssize_t n;

		if (now_ms() >= end || !readable(r->cfd, (int)(end - now_ms())))
			fail_msg("no request from qsupctl");
		n = read(r->cfd, buf, sizeof(buf));
		if (n <= 0)
			fail_msg("qsupctl closed the connection");
		assert_int_equal(qmp_framer_feed(&r->framer, buf, (size_t)n, inbox_add, r->inbox), 0);
	}
	m = json_incref(json_array_get(r->inbox, 0));
	json_array_remove(r->inbox, 0);
	return m;
}

/* Read a request and check its verb and arguments (a JSON text). */
static json_t *expect(struct run *r, const char *execute, const char *args)
{
	json_t *m = request(r), *want = json_loads(args, 0, NULL);

	assert_non_null(want);
	assert_string_equal(json_string_value(json_object_get(m, "execute")), execute);
	assert_true(json_is_integer(json_object_get(m, "id")));
	if (!json_equal(json_object_get(m, "arguments"), want)) {
		char *got = json_dumps(json_object_get(m, "arguments"), JSON_ENCODE_ANY);

		fail_msg("%s: arguments %s, expected %s", execute, got, args);
	}
	json_decref(want);
	return m;
}

static void reply_raw(struct run *r, json_t *req, const char *key, json_t *value)
{
	json_t *rep = json_pack("{s:o, s:O}", key, value, "id", json_object_get(req, "id"));
	char *text = json_dumps(rep, 0);
	char line[1 << 16];

	snprintf(line, sizeof(line), "%s\n", text);
	send_text(r, line);
	free(text);
	json_decref(rep);
}

/* Reply to req with {"return": ret} (ret a JSON text), and drop req. */
static void reply(struct run *r, json_t *req, const char *ret)
{
	json_t *v = json_loads(ret, JSON_DECODE_ANY, NULL);

	assert_non_null(v);
	reply_raw(r, req, "return", v);
	json_decref(req);
}

static void reply_error(struct run *r, json_t *req, const char *cls, const char *desc)
{
	reply_raw(r, req, "error", json_pack("{s:s, s:s}", "class", cls, "desc", desc));
	json_decref(req);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("expected to find \"%s\" in:\n%s", needle, hay);
}

/* No connection was made to the fake daemon. */
static void assert_not_connected(struct run *r)
{
	assert_false(readable(r->lfd, 0));
}

#define STATUS_WEB1 \
	"{\"name\": \"web1\", \"state\": \"running\", \"reason\": \"started\", " \
	"\"pid\": 1234, \"uptime\": 12.5, \"restarts\": 0, \"autostart\": false, " \
	"\"profile\": \"/etc/qsup/profiles/web1.ini\", \"config_changed\": false, " \
	"\"accel\": \"kvm\", \"console\": \"/run/qsup/web1/serial.sock\", " \
	"\"qmp\": \"/run/qsup/web1/qmp.sock\"}"

#define STATUS_OF(name, state, reason) \
	"{\"name\": \"" name "\", \"state\": \"" state "\", \"reason\": \"" reason "\"}"

/* ------------------------------------------------------------ usage */

static void test_help_lists_every_verb(void **state)
{
	static const char *const verbs[] = { "list", "status", "start", "stop", "kill",
		"pause", "resume", "reset", "restart", "reload", "events", "qmp", "argv",
		"console", "log", "cdrom", "display", "snapshot", "set", "backup", "backup-cancel",
		"backup-restore" };
	struct run *r = *state;
	char line[64];

	spawn(r, NULL, 0, "--help", NULL);
	assert_int_equal(finish(r), 0);
	assert_contains(r->out, "usage: qsupctl");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		snprintf(line, sizeof(line), "\n  %s ", verbs[i]);
		assert_contains(r->out, line);
	}
	assert_contains(r->out, "--json");
	free(r->out);
	free(r->err);
	spawn(r, NULL, SP_NO_SOCKET, "-h", NULL);
	assert_int_equal(finish(r), 0);
	assert_contains(r->out, "  console [-f] NAME");
	assert_not_connected(r);
}

static void test_version(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "--version", NULL);
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "qsupctl " SV_VERSION "\n");
	assert_not_connected(r);
}

/* Each argument vector is a usage error: exit 2, and qsupd never hears. */
static void usage_case(struct run *r, const char *what, const char *a1, const char *a2,
                       const char *a3, const char *a4)
{
	spawn(r, NULL, 0, a1, a2, a3, a4, NULL);
	assert_int_equal(finish(r), 2);
	assert_contains(r->err, what);
	assert_string_equal(r->out, "");
	assert_not_connected(r);
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

static void test_usage_errors_do_not_connect(void **state)
{
	struct run *r = *state;

	usage_case(r, "unknown verb 'strat'; did you mean 'start'?", "strat", "web1", NULL, NULL);
	usage_case(r, "unknown verb 'frobnicate'", "frobnicate", NULL, NULL, NULL);
	usage_case(r, "start: missing arguments", "start", NULL, NULL, NULL);
	usage_case(r, "usage: qsupctl", "-j", NULL, NULL, NULL);
	usage_case(r, "'a b' is not a valid guest name", "status", "a b", NULL, NULL);
	usage_case(r, "'-x' is not", "stop", "--", "-x", NULL);
	usage_case(r, "list: too many arguments", "list", "web1", NULL, NULL);
	usage_case(r, "argv: too many arguments", "argv", "a", "b", NULL);
	usage_case(r, "start: unknown option '-f'", "start", "-f", "web1", NULL);
	usage_case(r, "unknown option '--bogus'", "--bogus", "list", NULL, NULL);
	usage_case(r, "qmp: missing arguments", "qmp", "web1", NULL, NULL);
	usage_case(r, "JSON-ARGS must be a JSON object", "qmp", "web1", "x", "{bad");
	usage_case(r, "JSON-ARGS must be a JSON object", "qmp", "web1", "x", "[1]");
	usage_case(r, "migrate: give a URI", "migrate", "web1", NULL, NULL);
	usage_case(r, "migrate: give a URI", "migrate", "web1", "downtime=3", NULL);
	usage_case(r, "'timeout' is not KEY=VALUE", "migrate", "web1", "unix:/x", "timeout");
	usage_case(r, "save: missing arguments", "save", NULL, NULL, NULL);
	usage_case(r, "save: give --all or names, not both", "save", "--all", "web1", NULL);
	usage_case(r, "stop: --timeout must be a number of seconds", "stop", "--timeout", "0", "a");
	usage_case(r, "stop: --parallel must be a number", "stop", "--parallel", "-2", "a");
	usage_case(r, "restart: unknown option '--all'", "restart", "--all", NULL, NULL);
	usage_case(r, "attach: unknown option '-w'", "attach", "-w", "web1", "cpu");
	usage_case(r, "log: -n: 'many' is not a number of lines", "log", "-n", "many", "web1");
	usage_case(r, "log: -n: '10001' is not a number of lines", "log", "-n", "10001", "web1");
	usage_case(r, "status: unknown option '-n'", "status", "-n", "3", "web1");
	usage_case(r, "cdrom: use cdrom NAME ID insert FILE", "cdrom", "web1", "cd", "shake");
	usage_case(r, "cdrom: use cdrom NAME ID insert FILE", "cdrom", "web1", "cd", "insert");
	usage_case(r, "cdrom: missing arguments", "cdrom", "web1", "cd", NULL);
	usage_case(r, "display: unknown option '--format'", "display", "--format", "raw", "a");
	usage_case(r, "snapshot: use snapshot NAME create|revert|delete SNAP", "snapshot", "web1",
	           "take", "s1");
	usage_case(r, "snapshot: use snapshot NAME create|revert|delete SNAP", "snapshot", "web1",
	           "create", NULL);
	usage_case(r, "snapshot: use snapshot NAME create|revert|delete SNAP", "snapshot", "-f",
	           "web1", "create");
	usage_case(r, "snapshot: missing arguments", "snapshot", "web1", NULL, NULL);
	usage_case(r, "snapshot: use snapshot NAME create|revert|delete SNAP", "snapshot",
	           "--memory", "web1", "list");
	usage_case(r, "status: unknown option '--memory'", "status", "--memory", "a", NULL);
	usage_case(r, "status: unknown option '--password'", "status", "--password", "a", NULL);
}

static void test_verb_help(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "stop", "--help", NULL);
	assert_int_equal(finish(r), 0);
	assert_contains(r->out, "usage: qsupctl stop [-f] [--timeout S] [--all] [--parallel N] "
	                "NAME...");
	assert_contains(r->out, "--force");
	assert_not_connected(r);
}

/* ------------------------------------------------------------ connecting */

static void test_no_socket_exits_3(void **state)
{
	struct run *r = *state;
	char path[200];

	snprintf(path, sizeof(path), "%s/nothere.sock", r->dir);
	spawn(r, NULL, SP_NO_SOCKET, "-s", path, "list", NULL);
	assert_int_equal(finish(r), 3);
	assert_contains(r->err, path);
	assert_contains(r->err, "No such file or directory");
	assert_contains(r->err, "qsupd running?");
}

static void test_refused_exits_3(void **state)
{
	struct run *r = *state;

	close_fd(&r->lfd);   /* the socket file stays; nobody listens */
	spawn(r, NULL, 0, "status", "web1", NULL);
	assert_int_equal(finish(r), 3);
	assert_contains(r->err, "Connection refused");
	assert_contains(r->err, r->sock);
}

static void test_wrong_greeting_exits_3(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "list", NULL);
	r->cfd = accept_on(r->lfd);
	send_text(r, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n");
	assert_int_equal(finish(r), 3);
	assert_contains(r->err, "not a qsupd control socket");
}

static void test_closed_before_greeting_exits_3(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "list", NULL);
	r->cfd = accept_on(r->lfd);
	close_fd(&r->cfd);
	assert_int_equal(finish(r), 3);
	assert_contains(r->err, "qsupd closed the connection");
}

static void test_closed_mid_request_exits_1(void **state)
{
	struct run *r = *state;
	json_t *req;

	spawn(r, NULL, 0, "start", "web1", NULL);
	serve(r);
	req = expect(r, "start", "{\"name\": \"web1\"}");
	json_decref(req);
	send_text(r, "{\"return\": {}, \"id\": 9999}\n{\"event\": \"X\", \"data\": {}}\n");
	close_fd(&r->cfd);
	assert_int_equal(finish(r), 1);
	assert_string_equal(r->err, "qsupctl: start web1: qsupd closed the connection\n");
}

/* qsupd's refusal (too many clients), sent in place of the greeting, is
 * said as such, with exit 3. */
static void test_refusal_said(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "list", NULL);
	r->cfd = accept_on(r->lfd);
	send_text(r, "{\"error\": {\"class\": \"TooManyConnections\", \"desc\": "
	          "\"qsupd serves at most 2 clients at once\"}}\n");
	close_fd(&r->cfd);
	assert_int_equal(finish(r), 3);
	assert_contains(r->err, "qsupd refused the connection: qsupd serves at most 2 clients");
	assert_contains(r->err, r->sock);
}

static void test_qsup_socket_env(void **state)
{
	struct run *r = *state;
	char env[200], *envv[] = { env, NULL };

	snprintf(env, sizeof(env), "QSUP_SOCKET=%s", r->sock);
	spawn(r, (const char *const *)envv, SP_NO_SOCKET, "list", NULL);
	serve(r);
	reply(r, expect(r, "list", "{}"), "[]");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "NAME  STATE  PID  UPTIME  RESTARTS\n");
}

static void test_option_beats_env(void **state)
{
	struct run *r = *state;
	const char *const env[] = { "QSUP_SOCKET=/nonexistent/qsupd.sock", NULL };

	spawn(r, env, SP_NO_SOCKET, "-j", "list", "-s", r->sock, NULL);   /* after the verb */
	serve(r);
	reply(r, expect(r, "list", "{}"), "[]");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "[]\n");
}

static void test_socket_path_rules(void **state)
{
	char buf[SV_SOCK_PATH_MAX], longp[300];
	struct sv_error err = { 0 };

	(void)state;
	assert_int_equal(ctl_socket_path("/a.sock", "/b.sock", "/x", 1000, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "/a.sock");
	assert_int_equal(ctl_socket_path(NULL, "/b.sock", "/x", 0, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "/b.sock");
	assert_int_equal(ctl_socket_path(NULL, "", "/x", 0, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "/run/qsup/qsupd.sock");
	assert_int_equal(ctl_socket_path(NULL, NULL, "/run/user/1000", 1000, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "/run/user/1000/qsup/qsupd.sock");
	assert_int_equal(ctl_socket_path(NULL, NULL, NULL, 1000, buf, sizeof(buf), &err), -ENOENT);
	assert_contains(err.msg, "XDG_RUNTIME_DIR is not set");
	assert_contains(err.msg, "-s SOCKET");
	assert_int_equal(ctl_socket_path(NULL, NULL, "", 1000, buf, sizeof(buf), &err), -ENOENT);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(ctl_socket_path(longp, NULL, NULL, 0, buf, sizeof(buf), &err),
	                 -ENAMETOOLONG);
	longp[100] = '\0';   /* under the limit */
	assert_int_equal(ctl_socket_path(NULL, NULL, longp, 1000, buf, sizeof(buf), &err),
	                 -ENAMETOOLONG);
}

/* ------------------------------------------------------------ list, status */

#define THREE_GUESTS \
	"[{\"name\": \"web2\", \"state\": \"stopped\", \"pid\": null, \"uptime\": null, " \
	"\"restarts\": 0}, {\"name\": \"db\", \"state\": \"running\", \"pid\": 4242, " \
	"\"uptime\": 192.5, \"restarts\": 3}, {\"name\": \"a-very-long-name\", " \
	"\"state\": \"backoff\", \"pid\": null, \"restarts\": 12}]"

static void test_list_table(void **state)
{
	struct run *r = *state;
	json_t *req;
	char line[1024];

	spawn(r, NULL, 0, "list", NULL);
	serve(r);
	req = expect(r, "list", "{}");
	snprintf(line, sizeof(line), "{\"return\": %s, \"id\": %lld}\n", THREE_GUESTS,
	         (long long)json_integer_value(json_object_get(req, "id")));
	json_decref(req);
	/* The reply arrives in two pieces, cut mid-line. */
	send_text(r, "{\"event\": \"STOP\", \"guest\": \"db\", \"data\": {}}\n");
	line[0] = '\0';
	send_text(r, "{");
	usleep(20000);
	send_text(r, line + 1);
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out,
		"NAME              STATE    PID   UPTIME  RESTARTS\n"
		"a-very-long-name  backoff  -     -       12\n"
		"db                running  4242  3m12s   3\n"
		"web2              stopped  -     -       0\n");
	assert_string_equal(r->err, "");
}

static void test_list_json(void **state)
{
	struct run *r = *state;
	json_t *got, *want = json_loads(THREE_GUESTS, 0, NULL);

	spawn(r, NULL, 0, "list", "--json", NULL);
	serve(r);
	reply(r, expect(r, "list", "{}"), THREE_GUESTS);
	assert_int_equal(finish(r), 0);
	assert_non_null(strchr(r->out, '\n'));
	assert_ptr_equal(strchr(r->out, '\n'), r->out + strlen(r->out) - 1);   /* one line */
	got = json_loads(r->out, 0, NULL);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
}

static void test_status_lines(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "status", "web1", NULL);
	serve(r);
	reply(r, expect(r, "status", "{\"name\": \"web1\"}"), STATUS_WEB1);
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out,
		"name:           web1\n"
		"state:          running (started)\n"
		"pid:            1234\n"
		"uptime:         12s\n"
		"restarts:       0\n"
		"autostart:      no\n"
		"accel:          kvm\n"
		"config changed: no\n"
		"profile:        /etc/qsup/profiles/web1.ini\n"
		"console:        /run/qsup/web1/serial.sock\n"
		"qmp:            /run/qsup/web1/qmp.sock\n");
}

/* A guest's CD-ROM media and what its start created, one line each;
 * nothing created: no line. */
static void test_status_media_created(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "status", "inst", NULL);
	serve(r);
	reply(r, expect(r, "status", "{\"name\": \"inst\"}"),
	      "{\"name\": \"inst\", \"display\": \"vnc://127.0.0.1:5901\", "
	      "\"media\": {\"cd\": \"/srv/iso/x.iso\", \"spare\": \"empty\"}, "
	      "\"created\": [\"/srv/vm\", \"/srv/vm/root.qcow2\"]}");
	assert_int_equal(finish(r), 0);
	assert_contains(r->out, "\ndisplay:        vnc://127.0.0.1:5901\n");
	assert_contains(r->out, "\nmedia:          cd /srv/iso/x.iso, spare empty\n");
	assert_contains(r->out, "\ncreated:        /srv/vm, /srv/vm/root.qcow2\n");
	free(r->out);
	free(r->err);
	spawn(r, NULL, 0, "status", "inst", NULL);
	serve(r);
	reply(r, expect(r, "status", "{\"name\": \"inst\"}"),
	      "{\"name\": \"inst\", \"created\": []}");
	assert_int_equal(finish(r), 0);
	assert_contains(r->out, "name:           inst\n");
	assert_null(strstr(r->out, "created"));
}

static void test_status_error(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "status", "nope", NULL);
	serve(r);
	reply_error(r, expect(r, "status", "{\"name\": \"nope\"}"), "NotFound",
	            "no profile named nope");
	assert_int_equal(finish(r), 1);
	assert_string_equal(r->out, "");
	assert_string_equal(r->err, "qsupctl: status nope: no profile named nope\n");
}

/* ------------------------------------------------------------ lifecycle */

static void test_start_one(void **state)
{
	struct run *r = *state;
	json_t *req;

	spawn(r, NULL, 0, "start", "web1", NULL);
	serve(r);
	req = expect(r, "start", "{\"name\": \"web1\"}");
	send_text(r, "{\"event\": \"GUEST_STATE\", \"data\": {\"name\": \"web1\"}}\n");
	reply(r, req, STATUS_WEB1);
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "web1: running (started)\n");
	assert_string_equal(r->err, "");
}

static void test_start_error_json(void **state)
{
	struct run *r = *state;
	json_t *got;

	spawn(r, NULL, 0, "--json", "start", "web1", NULL);
	serve(r);
	reply_error(r, expect(r, "start", "{\"name\": \"web1\"}"), "GenericError",
	            "qemu-system-x86_64: -drive file=x: No such file");
	assert_int_equal(finish(r), 1);
	got = json_loads(r->out, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(got, "class")), "GenericError");
	json_decref(got);
	assert_string_equal(r->err,
		"qsupctl: start web1: qemu-system-x86_64: -drive file=x: No such file\n");
}

/* Three names: all three requests are on the wire before any reply, the
 * replies come back out of order, and the report follows the names. */
static void test_start_pipelined(void **state)
{
	struct run *r = *state;
	json_t *a, *b, *c;

	spawn(r, NULL, 0, "start", "a", "b", "c", NULL);
	serve(r);
	a = expect(r, "start", "{\"name\": \"a\"}");
	b = expect(r, "start", "{\"name\": \"b\"}");
	c = expect(r, "start", "{\"name\": \"c\"}");
	assert_true(json_integer_value(json_object_get(a, "id")) !=
	            json_integer_value(json_object_get(b, "id")));
	reply(r, c, STATUS_OF("c", "running", "started"));
	reply_error(r, b, "InvalidState", "b is stopping");
	reply(r, a, STATUS_OF("a", "running", "started"));
	assert_int_equal(finish(r), 1);
	assert_string_equal(r->out, "a: running (started)\nc: running (started)\n");
	assert_string_equal(r->err, "qsupctl: start b: b is stopping\n");
}

/* start of a guest that is up, stop of one that is down: success (exit
 * 0), said on stderr, as systemctl does. */
static void test_already(void **state)
{
	static const struct { const char *verb, *ret, *out, *err; } cases[] = {
		{ "start", "{\"name\": \"a\", \"state\": \"running\", \"reason\": \"started\", "
		  "\"already\": true}", "a: running (started)\n",
		  "qsupctl: start a: already running\n" },
		{ "start", "{\"state\": \"paused\", \"reason\": \"paused by operator\", "
		  "\"already\": true}", "a: paused (paused by operator)\n",
		  "qsupctl: start a: already running (paused)\n" },
		{ "stop", "{\"state\": \"stopped\", \"reason\": \"not started\", "
		  "\"already\": true}", "a: stopped (not started)\n",
		  "qsupctl: stop a: already stopped\n" },
		{ "kill", "{\"state\": \"failed\", \"reason\": \"x\", \"already\": true}",
		  "a: failed (x)\n", "qsupctl: kill a: already stopped (failed)\n" },
		{ "stop", "{\"state\": \"stopped\", \"reason\": \"x\", \"already\": false}",
		  "a: stopped (x)\n", "" },
	};
	struct run *r = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		spawn(r, NULL, 0, cases[i].verb, "a", NULL);
		serve(r);
		if (!strcmp(cases[i].verb, "stop"))   /* for the stop's progress */
			reply(r, expect(r, "subscribe", "{}"), "{}");
		reply(r, expect(r, cases[i].verb, "{\"name\": \"a\"}"), cases[i].ret);
		assert_int_equal(finish(r), 0);
		assert_string_equal(r->out, cases[i].out);
		assert_string_equal(r->err, cases[i].err);
		free(r->out);
		free(r->err);
		r->out = r->err = NULL;
		close_fd(&r->cfd);
	}
	/* --json: the reply as it is (with "already"), the note on stderr. */
	spawn(r, NULL, 0, "-j", "start", "a", NULL);
	serve(r);
	reply(r, expect(r, "start", "{\"name\": \"a\"}"),
	      "{\"state\": \"running\", \"already\": true}");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "{\"state\": \"running\", \"already\": true}\n");
	assert_string_equal(r->err, "qsupctl: start a: already running\n");
}

static void test_pipelined_json_keeps_order(void **state)
{
	struct run *r = *state;
	json_t *a, *b;

	spawn(r, NULL, 0, "status", "-j", "a", "b", NULL);
	serve(r);
	a = expect(r, "status", "{\"name\": \"a\"}");
	b = expect(r, "status", "{\"name\": \"b\"}");
	reply(r, b, "{\"name\": \"b\"}");
	reply(r, a, "{\"name\": \"a\"}");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "{\"name\": \"a\"}\n{\"name\": \"b\"}\n");
}

static void test_stop_force(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "stop", "web1", "--force", NULL);
	serve(r);
	reply(r, expect(r, "stop", "{\"name\": \"web1\", \"force\": true}"),
	      STATUS_OF("web1", "stopped", "stopped by operator"));
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "web1: stopped (stopped by operator)\n");
	free(r->out);
	free(r->err);
	close_fd(&r->cfd);
	/* Without --force, the stop's progress: subscribe first, then each
	 * STOP_PROGRESS event of the guest on stderr (not another guest's). */
	spawn(r, NULL, 0, "stop", "web1", NULL);
	serve(r);
	reply(r, expect(r, "subscribe", "{}"), "{}");
	json_t *req = expect(r, "stop", "{\"name\": \"web1\"}");
	send_text(r, "{\"event\": \"STOP_PROGRESS\", \"guest\": \"web1\", \"data\": {\"stage\": "
	          "\"acpi\", \"presses\": 1, \"elapsed\": 0, \"timeout\": 60}}\n"
	          "{\"event\": \"STOP_PROGRESS\", \"guest\": \"db\", \"data\": {\"stage\": "
	          "\"quit\", \"presses\": 0, \"elapsed\": 0, \"timeout\": 5}}\n"
	          "{\"event\": \"STOP_PROGRESS\", \"guest\": \"web1\", \"data\": {\"stage\": "
	          "\"acpi\", \"presses\": 2, \"elapsed\": 5, \"timeout\": 60}}\n"
	          "{\"event\": \"STOP_PROGRESS\", \"guest\": \"web1\", \"data\": {\"stage\": "
	          "\"sigterm\", \"presses\": 2, \"elapsed\": 65, \"timeout\": 5}}\n");
	reply(r, req, "{\"state\": \"stopped\"}");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "web1: stopped\n");
	assert_string_equal(r->err, "web1: ACPI power-off sent; waiting up to 60 s\n"
	                    "web1: no power-off after 5 s; pressed the power button again, and every 5 s\n"
	                    "web1: QEMU still running; sending SIGTERM\n");
}

static void test_each_lifecycle_verb(void **state)
{
	static const char *const verbs[] = { "kill", "pause", "resume", "reset", "restart" };
	struct run *r = *state;

	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		spawn(r, NULL, 0, verbs[i], "web1", NULL);
		serve(r);
		reply(r, expect(r, verbs[i], "{\"name\": \"web1\"}"),
		      STATUS_OF("web1", "paused", "x"));
		assert_int_equal(finish(r), 0);
		assert_string_equal(r->out, "web1: paused (x)\n");
		free(r->out);
		free(r->err);
		r->out = r->err = NULL;
		close_fd(&r->cfd);
	}
}

/* attach and detach name the guest once: "qsupctl: attach web1: ...". */
static void test_attach_detach_words(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "attach", "web1", "disk", "id=data", "file=/x.img", "format=raw",
	      "read-only=on", NULL);
	serve(r);
	reply(r, expect(r, "attach", "{\"name\": \"web1\", \"kind\": \"disk\", \"id\": "
	      "\"data\", \"file\": \"/x.img\", \"format\": \"raw\", \"read-only\": true}"),
	      "{\"id\": \"data\", \"state\": \"attached\"}");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "web1: data attached\n");
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
	close_fd(&r->cfd);
	spawn(r, NULL, 0, "detach", "web1", "data", NULL);
	serve(r);
	reply_error(r, expect(r, "detach", "{\"name\": \"web1\", \"id\": \"data\"}"),
	            "PendingUnplug", "data: the guest did not release it within 10 s");
	assert_int_equal(finish(r), 1);
	assert_string_equal(r->err, "qsupctl: detach web1: data: the guest did not release it "
	                    "within 10 s\n");
}

/* ------------------------------------------------------------ reload */

static void test_reload(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "reload", NULL);
	serve(r);
	reply(r, expect(r, "reload", "{}"), "{\"added\": [\"a\", \"b\"], \"removed\": [], "
	      "\"changed\": [\"web1\"], \"errors\": []}");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "added: a b\nchanged: web1\n");
	free(r->out);
	free(r->err);
	close_fd(&r->cfd);
	spawn(r, NULL, 0, "reload", NULL);
	serve(r);
	reply(r, expect(r, "reload", "{}"), "{\"added\": [], \"removed\": [], \"changed\": [], "
	      "\"errors\": [\"/p/x.ini:3: memory: not a size\"]}");
	assert_int_equal(finish(r), 1);
	assert_string_equal(r->out, "no changes\n");
	assert_string_equal(r->err, "qsupctl: reload: /p/x.ini:3: memory: not a size\n");
}

/* ------------------------------------------------------------ migration */

#define EV_PROGRESS(guest, status, sent, left) \
	"{\"event\": \"MIGRATION_PROGRESS\", \"guest\": \"" guest "\", \"data\": {\"status\": \"" \
	status "\", \"transferred\": " #sent ", \"remaining\": " #left ", \"total\": 268435456, " \
	"\"dirty-pages-rate\": 120, \"expected-downtime\": 30, \"passes\": 2}}\n"

static void test_migrate_wait_progress(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "migrate", "--wait", "--to", "/x/b.sock", "web1", "downtime=300",
	      "capabilities=multifd,xbzrle", NULL);
	serve(r);
	reply(r, expect(r, "subscribe", "{}"), "{}");
	json_t *req = expect(r, "migrate", "{\"name\": \"web1\", \"downtime\": 300, \"capabilities\": "
	                     "[\"multifd\", \"xbzrle\"], \"to\": \"/x/b.sock\", \"wait\": true}");
	send_text(r, EV_PROGRESS("web1", "active", 134217728, 134217728));
	send_text(r, EV_PROGRESS("db", "active", 1, 1));
	send_text(r, EV_PROGRESS("web1", "completed", 268435456, 0));
	reply(r, req, "{\"status\": \"completed\", \"total-time\": 1200, \"downtime\": 30, "
	      "\"transferred\": 104857600}");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "web1: done in 1200 ms, downtime 30 ms, 100.0 MiB sent\n");
	assert_contains(r->err, "active    [##########..........]  50%  sent 128 MiB  left 128 "
	                "MiB  dirty 120 pages/s  expected downtime 30 ms  pass 2\n");
	assert_contains(r->err, "completed [####################] 100%");
	assert_null(strstr(r->err, "sent 0 MiB"));   /* db's event is not shown */
}

static void test_migrate_failure_and_uri(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "migrate", "web1", "tcp:10.0.0.2:4444", "bandwidth=1G", NULL);
	serve(r);
	reply_error(r, expect(r, "migrate", "{\"name\": \"web1\", \"uri\": \"tcp:10.0.0.2:4444\", "
	            "\"bandwidth\": \"1G\"}"), "MigrationFailed", "migration to tcp:10.0.0.2:4444: "
	            "Connection refused");
	assert_int_equal(finish(r), 1);
	assert_string_equal(r->err, "qsupctl: migrate web1: migration to tcp:10.0.0.2:4444: "
	                    "Connection refused\n");
}

static void test_save_makes_the_path_absolute(void **state)
{
	struct run *r = *state;
	char cwd[1024], args[1200];

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	spawn(r, NULL, 0, "save", "web1", "web1.state", NULL);
	serve(r);
	snprintf(args, sizeof(args), "{\"name\": \"web1\", \"file\": \"%s/web1.state\"}", cwd);
	reply(r, expect(r, "save", args), "{\"status\": \"completed\", \"total-time\": 80, "
	      "\"downtime\": 80, \"transferred\": 1048576}");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "web1: done in 80 ms, downtime 80 ms, 1.0 MiB sent\n");
}

/* ------------------------------------------------------------ events */

#define EV_STATE(name, state, reason, secs) \
	"{\"event\": \"GUEST_STATE\", \"data\": {\"name\": \"" name "\", \"state\": \"" \
	state "\", \"previous\": \"starting\", \"reason\": \"" reason "\"}, " \
	"\"timestamp\": {\"seconds\": " #secs ", \"microseconds\": 5}}\n"

#define EV_STOP \
	"{\"event\": \"STOP\", \"guest\": \"web1\", \"data\": {}, " \
	"\"timestamp\": {\"seconds\": 43262, \"microseconds\": 0}}\n"

#define EV_SHUTDOWN \
	"{\"event\": \"SHUTDOWN\", \"guest\": \"web1\", \"data\": {\"guest\": true}, " \
	"\"timestamp\": {\"seconds\": 43263, \"microseconds\": 0}}\n"

static void test_events_readable(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "events", "web1", NULL);
	serve(r);
	reply(r, expect(r, "subscribe", "{}"), "{}");
	send_text(r, EV_STATE("web1", "running", "started", 43201));
	send_text(r, EV_STATE("db", "running", "started", 43202));
	send_text(r, EV_STOP EV_SHUTDOWN);
	close_fd(&r->cfd);
	assert_int_equal(finish(r), 1);
	assert_string_equal(r->out,
		"12:00:01 web1 running (started)\n"
		"12:01:02 web1 STOP\n"
		"12:01:03 web1 SHUTDOWN {\"guest\": true}\n");
	assert_string_equal(r->err, "qsupctl: events: qsupd closed the connection\n");
}

static void test_events_json(void **state)
{
	struct run *r = *state;
	json_t *want = json_loads(EV_STOP, 0, NULL), *got;
	char *nl;

	spawn(r, NULL, 0, "-j", "events", NULL);
	serve(r);
	reply(r, expect(r, "subscribe", "{}"), "{}");
	send_text(r, EV_STATE("db", "stopped", "guest poweroff", 0) EV_STOP);
	close_fd(&r->cfd);
	assert_int_equal(finish(r), 1);
	nl = strchr(r->out, '\n');
	assert_non_null(nl);
	assert_ptr_equal(strchr(nl + 1, '\n'), r->out + strlen(r->out) - 1);   /* two lines */
	got = json_loads(nl + 1, 0, NULL);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
}

/* ------------------------------------------------------------ qmp, argv */

static void test_qmp_passthrough(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "qmp", "web1", "query-status", "{\"x\": 1}", NULL);
	serve(r);
	reply(r, expect(r, "qmp", "{\"name\": \"web1\", \"command\": \"query-status\", "
	                "\"arguments\": {\"x\": 1}}"), "{\"status\": \"running\", \"running\": true}");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "{\n  \"status\": \"running\",\n  \"running\": true\n}\n");
}

static void test_qmp_qemu_error(void **state)
{
	struct run *r = *state;
	json_t *req, *got;

	spawn(r, NULL, 0, "--json", "qmp", "web1", "query-nothing", NULL);
	serve(r);
	req = expect(r, "qmp", "{\"name\": \"web1\", \"command\": \"query-nothing\"}");
	reply_raw(r, req, "error", json_pack("{s:s, s:s, s:b}", "class", "CommandNotFound",
	          "desc", "The command query-nothing has not been found", "qemu", 1));
	json_decref(req);
	assert_int_equal(finish(r), 1);
	got = json_loads(r->out, 0, NULL);
	assert_true(json_is_true(json_object_get(got, "qemu")));
	json_decref(got);
	assert_string_equal(r->err, "qsupctl: qmp web1 query-nothing: "
	                    "The command query-nothing has not been found\n");
}

static void test_qmp_text_reply(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "qmp", "web1", "human-monitor-command",
	      "{\"command-line\": \"info status\"}", NULL);
	serve(r);
	reply(r, request(r), "\"VM status: running\\r\\n\"");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "VM status: running\r\n");
}

static void test_argv_lines(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "argv", "web1", NULL);
	serve(r);
	reply(r, expect(r, "argv", "{\"name\": \"web1\"}"),
	      "{\"argv\": [\"qemu-system-x86_64\", \"-name\", \"guest=web1\", \"-m\", \"64M\"]}");
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "qemu-system-x86_64\n-name\nguest=web1\n-m\n64M\n");
}

/* ------------------------------------------------------------ console */

static void wait_file_contains(const char *path, const char *text)
{
	uint64_t end = now_ms() + DEADLINE_MS;

	for (;;) {
		char *s = slurp(path);
		bool found = strstr(s, text) != NULL;

		free(s);
		if (found)
			return;
		if (now_ms() >= end)
			fail_msg("\"%s\" never appeared in %s", text, path);
		usleep(5000);
	}
}

/* Read from fd until n bytes came, or EOF when n is 0. Returns a malloc'd
 * string. */
static char *read_bytes(int fd, size_t n)
{
	uint64_t end = now_ms() + DEADLINE_MS;
	char *buf = calloc(1, 4096);
	size_t got = 0;

	while (n == 0 || got < n) {
		ssize_t k;

		if (now_ms() >= end || !readable(fd, (int)(end - now_ms())))
			fail_msg("the console sent %zu bytes of %zu", got, n);
		k = read(fd, buf + got, 4095 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return buf;
}

static void write_in(struct run *r, const char *text)
{
	assert_int_equal(write(r->in_fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* Start `qsupctl console web1` and be its daemon and its guest. */
static void console_start(struct run *r, unsigned flags)
{
	char ret[256];

	r->slfd = listen_at(r->serial);
	spawn(r, NULL, flags, "console", "web1", NULL);
	serve(r);
	snprintf(ret, sizeof(ret), "{\"path\": \"%s\"}", r->serial);
	reply(r, expect(r, "console", "{\"name\": \"web1\"}"), ret);
	r->scfd = accept_on(r->slfd);
}

static void test_console_both_ways(void **state)
{
	struct run *r = *state;
	char *got;

	console_start(r, SP_STDIN_PIPE);
	write_in(r, "hello");
	got = read_bytes(r->scfd, 5);
	assert_string_equal(got, "hello");
	free(got);
	assert_int_equal(send(r->scfd, "login: ", 7, 0), 7);
	wait_file_contains(r->out_path, "login: ");
	write_in(r, "root\x1d" "after");   /* Ctrl-] ends it; "after" is not sent */
	assert_int_equal(finish(r), 0);
	got = read_bytes(r->scfd, 0);
	assert_string_equal(got, "root");
	free(got);
	assert_string_equal(r->out, "login: ");
	assert_contains(r->err, "Connected to web1's console; Ctrl-] to detach\n");
	assert_contains(r->err, "Detached from web1's console\n");
}

static void test_console_guest_side_closes(void **state)
{
	struct run *r = *state;

	console_start(r, SP_STDIN_PIPE);
	assert_int_equal(send(r->scfd, "bye\r\n", 5, 0), 5);
	close_fd(&r->scfd);
	assert_int_equal(finish(r), 0);
	assert_string_equal(r->out, "bye\r\n");
	assert_contains(r->err, "web1's console closed");
}

static void test_console_stdin_ends(void **state)
{
	struct run *r = *state;
	char *got;

	console_start(r, SP_STDIN_PIPE);
	write_in(r, "poweroff\n");
	close_fd(&r->in_fd);
	got = read_bytes(r->scfd, 9);
	assert_string_equal(got, "poweroff\n");
	free(got);
	assert_int_equal(send(r->scfd, "ok\n", 3, 0), 3);   /* still shown */
	assert_int_equal(finish(r), 0);   /* after half a second of quiet */
	assert_string_equal(r->out, "ok\n");
}

/* qsupd says on the control connection that another client took the
 * console: qsupctl lets go of the socket at once (QEMU then serves the new
 * holder) and ends cleanly. A take-over of another guest's console, or a
 * control connection that breaks, changes nothing. */
static void test_console_taken_over(void **state)
{
	struct run *r = *state;
	char *got;

	console_start(r, SP_STDIN_PIPE);
	send_text(r, "{\"event\": \"CONSOLE_TAKEN\", \"data\": {\"name\": \"db\", \"by\": 9}}\n");
	write_in(r, "still\n");
	got = read_bytes(r->scfd, 6);
	assert_string_equal(got, "still\n");
	free(got);
	send_text(r, "{\"event\": \"CONSOLE_TAKEN\", \"guest\": \"web1\", "
	          "\"data\": {\"name\": \"web1\", \"by\": 7}}\n");
	got = read_bytes(r->scfd, 0);   /* EOF: qsupctl closed its end */
	assert_string_equal(got, "");
	free(got);
	assert_int_equal(finish(r), 0);
	assert_contains(r->err, "web1's console taken over by client 7\n");
}

static void test_console_survives_daemon_going(void **state)
{
	struct run *r = *state;
	char *got;

	console_start(r, SP_STDIN_PIPE);
	close_fd(&r->cfd);   /* qsupd restarts; QEMU and its console go on */
	write_in(r, "ping\n");
	got = read_bytes(r->scfd, 5);
	assert_string_equal(got, "ping\n");
	free(got);
	assert_int_equal(send(r->scfd, "QSUP-PONG\n", 10, 0), 10);
	wait_file_contains(r->out_path, "QSUP-PONG");
	write_in(r, "\x1d");
	assert_int_equal(finish(r), 0);
	assert_contains(r->err, "Detached from web1's console\n");
}

/* Busy: exit 1 with qsupd's words and the way out; -f asks to take over. */
static void test_console_busy_and_force(void **state)
{
	struct run *r = *state;
	char ret[256];

	spawn(r, NULL, 0, "console", "web1", NULL);
	serve(r);
	reply_error(r, expect(r, "console", "{\"name\": \"web1\"}"), "ConsoleBusy",
	            "console busy (client 3)");
	assert_int_equal(finish(r), 1);
	assert_string_equal(r->err, "qsupctl: console web1: console busy (client 3)\n"
	                    "qsupctl: console -f web1 takes it over\n");
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
	close_fd(&r->cfd);
	r->slfd = listen_at(r->serial);
	spawn(r, NULL, SP_STDIN_PIPE, "console", "--force", "web1", NULL);
	serve(r);
	snprintf(ret, sizeof(ret), "{\"path\": \"%s\", \"client\": 4}", r->serial);
	reply(r, expect(r, "console", "{\"name\": \"web1\", \"force\": true}"), ret);
	r->scfd = accept_on(r->slfd);
	write_in(r, "\x1d");
	assert_int_equal(finish(r), 0);
}

static void test_console_errors(void **state)
{
	struct run *r = *state;

	spawn(r, NULL, 0, "console", "nope", NULL);
	serve(r);
	reply_error(r, expect(r, "console", "{\"name\": \"nope\"}"), "NotFound",
	            "no profile named nope");
	assert_int_equal(finish(r), 1);
	assert_string_equal(r->err, "qsupctl: console nope: no profile named nope\n");
	free(r->out);
	free(r->err);
	close_fd(&r->cfd);
	spawn(r, NULL, 0, "console", "web1", NULL);   /* nobody at the path */
	serve(r);
	reply(r, expect(r, "console", "{\"name\": \"web1\"}"), "{\"path\": \"/nonexistent.sock\"}");
	assert_int_equal(finish(r), 1);
	assert_contains(r->err, "cannot connect to web1's console at /nonexistent.sock");
}

static void wait_raw(struct run *r)
{
	uint64_t end = now_ms() + DEADLINE_MS;
	struct termios t;

	do {
		assert_int_equal(tcgetattr(r->pty_slave, &t), 0);
		if (!(t.c_lflag & (ICANON | ECHO)))
			return;
		usleep(5000);
	} while (now_ms() < end);
	fail_msg("the terminal never went raw");
}

static void assert_termios_equal(const struct termios *a, const struct termios *b)
{
	assert_int_equal(a->c_iflag, b->c_iflag);
	assert_int_equal(a->c_oflag, b->c_oflag);
	assert_int_equal(a->c_cflag, b->c_cflag);
	assert_int_equal(a->c_lflag, b->c_lflag);
}

static void test_console_tty_raw_and_restored(void **state)
{
	struct run *r = *state;
	struct termios after;
	char *got;

	console_start(r, SP_STDIN_PTY);
	wait_raw(r);
	write_in(r, "ls\r");   /* raw: sent at once, no line editing */
	got = read_bytes(r->scfd, 3);
	assert_string_equal(got, "ls\r");
	free(got);
	write_in(r, "\x1d");
	assert_int_equal(finish(r), 0);
	assert_int_equal(tcgetattr(r->pty_slave, &after), 0);
	assert_termios_equal(&r->tty_before, &after);
}

static void test_console_signal_restores_tty(void **state)
{
	struct run *r = *state;
	struct termios after;

	console_start(r, SP_STDIN_PTY);
	wait_raw(r);
	kill(r->pid, SIGTERM);
	assert_int_equal(finish(r), 128 + SIGTERM);
	assert_int_equal(tcgetattr(r->pty_slave, &after), 0);
	assert_termios_equal(&r->tty_before, &after);
}

/* ------------------------------------------------------------ formatters */

static void test_duration(void **state)
{
	static const struct { double s; const char *want; } cases[] = {
		{ 0, "0s" }, { 59.9, "59s" }, { 60, "1m00s" }, { 192.5, "3m12s" },
		{ 3599, "59m59s" }, { 3600, "1h00m" }, { 86399, "23h59m" },
		{ 90061, "1d01h" }, { 400 * 86400.0, "400d00h" }, { -1, "-" }, { NAN, "-" },
	};
	char buf[16];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ctl_fmt_duration(cases[i].s, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
}

/* Run fn(out, v) on a memory stream; returns the text (malloc'd). */
static char *fmt(void (*fn)(FILE *, json_t *), const char *json)
{
	json_t *v = json_loads(json, 0, NULL);
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);

	assert_non_null(v);
	fn(f, v);
	fclose(f);
	json_decref(v);
	return text;
}

static void test_fmt_status_extras(void **state)
{
	char *s = fmt(ctl_fmt_status, "{\"name\": \"db\", \"state\": \"failed\", \"pid\": null, "
	              "\"uptime\": null, \"config_changed\": true, \"future\": [1, 2], "
	              "\"note\": \"hi\", \"io_error\": {\"disk\": \"data\"}}");

	(void)state;
	assert_string_equal(s,
		"name:           db\n"
		"state:          failed\n"
		"pid:            -\n"
		"uptime:         -\n"
		"restarts:       -\n"
		"autostart:      -\n"
		"accel:          -\n"
		"config changed: yes (restart the guest to apply the profile)\n"
		"profile:        -\n"
		"console:        -\n"
		"qmp:            -\n"
		"future:         [1,2]\n"
		"note:           hi\n");
	free(s);
}

/* set's members: the limits per disk, the balloon, the pinning. */
static void test_fmt_status_tune(void **state)
{
	char *s = fmt(ctl_fmt_status, "{\"name\": \"db\", \"io_limits\": {\"root\": "
	              "{\"bps-write\": 10485760, \"iops-total\": 100}, \"data\": {\"bps-read\": "
	              "4096}}, \"cpu_affinity\": \"0-1\", \"pinned\": {\"vcpu-threads\": 2, "
	              "\"other-threads\": 4, \"error\": null}, \"balloon\": {\"target\": "
	              "536870912, \"actual\": 268435456, \"stats\": {\"stat-free-memory\": "
	              "104857600, \"stat-total-memory\": 209715200}}}");

	(void)state;
	assert_non_null(strstr(s, "\nio_limits:      root bps-write=10485760 iops-total=100; "
	                       "data bps-read=4096\n"));
	assert_non_null(strstr(s, "\ncpu_affinity:   0-1\n"));
	assert_non_null(strstr(s, "\npinned:         2 vCPU threads, 4 others\n"));
	assert_non_null(strstr(s, "\nballoon:        target 512 MiB, actual 256 MiB, guest free "
	                       "100 of 200 MiB\n"));
	free(s);
	s = fmt(ctl_fmt_status, "{\"name\": \"db\", \"io_limits\": {}, \"balloon\": "
	        "{\"target\": 536870912}, \"pinned\": {\"vcpu-threads\": 1, "
	        "\"other-threads\": 0, \"error\": \"thread 7: gone\"}}");
	assert_non_null(strstr(s, "\nio_limits:      none\n"));
	assert_non_null(strstr(s, "\nballoon:        target 512 MiB\n"));
	assert_non_null(strstr(s, "\npinned:         1 vCPU threads, 0 others; failed: thread 7: "
	                       "gone\n"));
	free(s);
}

/* A crashed guest's last lines come last, indented; "log" is a plain line. */
static void test_fmt_status_log_tail(void **state)
{
	char *s = fmt(ctl_fmt_status, "{\"name\": \"db\", \"state\": \"backoff\", "
	              "\"log\": \"/var/log/qsup/db.log\", \"log_tail\": [\"qemu: one\", "
	              "\"qemu: two\"]}");

	(void)state;
	assert_non_null(strstr(s, "\nlog:            /var/log/qsup/db.log\n"));
	assert_non_null(strstr(s, "\nlog tail:       (the last run's output)\n"
	                       "    qemu: one\n    qemu: two\n"));
	assert_int_equal(strlen(strstr(s, "log tail:")), strlen("log tail:       (the last "
	                 "run's output)\n    qemu: one\n    qemu: two\n"));   /* last */
	free(s);
	s = fmt(ctl_fmt_status, "{\"name\": \"db\", \"log_tail\": []}");
	assert_null(strstr(s, "log tail"));
	free(s);
}

static void test_fmt_events(void **state)
{
	char *s;

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	s = fmt(ctl_fmt_event, "{\"event\": \"GUEST_STATE\", \"data\": {\"name\": \"a\", "
	        "\"state\": \"stopped\"}, \"timestamp\": {\"seconds\": 3661}}");
	assert_string_equal(s, "01:01:01 a stopped\n");
	free(s);
	s = fmt(ctl_fmt_event, "{\"event\": \"HOST_THING\", \"data\": {\"x\": 1}}");
	assert_string_equal(s, "--:--:-- - HOST_THING {\"x\": 1}\n");
	free(s);
}

static void test_event_match(void **state)
{
	char *names[] = { "a", "b" };
	json_t *st = json_loads("{\"event\": \"GUEST_STATE\", \"data\": {\"name\": \"b\"}}", 0, NULL);
	json_t *q = json_loads("{\"event\": \"STOP\", \"guest\": \"c\", \"data\": {}}", 0, NULL);
	json_t *host = json_loads("{\"event\": \"X\"}", 0, NULL);

	(void)state;
	assert_true(ctl_event_match(st, names, 2));
	assert_false(ctl_event_match(q, names, 2));
	assert_true(ctl_event_match(q, names, 0));
	assert_false(ctl_event_match(host, names, 1));
	json_decref(st);
	json_decref(q);
	json_decref(host);
}

static void test_fmt_list_empty_and_odd(void **state)
{
	char *s;

	(void)state;
	s = fmt(ctl_fmt_list, "[]");
	assert_string_equal(s, "NAME  STATE  PID  UPTIME  RESTARTS\n");
	free(s);
	/* Rows that are not objects, or lack fields, print dashes. */
	s = fmt(ctl_fmt_list, "[{\"name\": \"x\", \"uptime\": 5}, 7]");
	assert_string_equal(s,
		"NAME  STATE  PID  UPTIME  RESTARTS\n"
		"-     -      -    -       -\n"
		"x     -      -    5s      -\n");
	free(s);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_help_lists_every_verb),
		T(test_version),
		T(test_usage_errors_do_not_connect),
		T(test_verb_help),
		T(test_no_socket_exits_3),
		T(test_refused_exits_3),
		T(test_wrong_greeting_exits_3),
		T(test_closed_before_greeting_exits_3),
		T(test_closed_mid_request_exits_1),
		T(test_refusal_said),
		T(test_qsup_socket_env),
		T(test_option_beats_env),
		cmocka_unit_test(test_socket_path_rules),
		T(test_list_table),
		T(test_list_json),
		T(test_status_lines),
		T(test_status_media_created),
		T(test_status_error),
		T(test_start_one),
		T(test_start_error_json),
		T(test_start_pipelined),
		T(test_already),
		T(test_attach_detach_words),
		T(test_pipelined_json_keeps_order),
		T(test_stop_force),
		T(test_each_lifecycle_verb),
		T(test_reload),
		T(test_events_readable),
		T(test_events_json),
		T(test_migrate_wait_progress),
		T(test_migrate_failure_and_uri),
		T(test_save_makes_the_path_absolute),
		T(test_qmp_passthrough),
		T(test_qmp_qemu_error),
		T(test_qmp_text_reply),
		T(test_argv_lines),
		T(test_console_both_ways),
		T(test_console_guest_side_closes),
		T(test_console_stdin_ends),
		T(test_console_errors),
		T(test_console_taken_over),
		T(test_console_survives_daemon_going),
		T(test_console_busy_and_force),
		T(test_console_tty_raw_and_restored),
		T(test_console_signal_restores_tty),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_fmt_status_extras),
		cmocka_unit_test(test_fmt_status_tune),
		cmocka_unit_test(test_fmt_status_log_tail),
		cmocka_unit_test(test_fmt_events),
		cmocka_unit_test(test_event_match),
		cmocka_unit_test(test_fmt_list_empty_and_odd),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
