/*
 * `qsupctl console`: the terminal attached to a guest's serial socket.
 * qsupd lends the console to the control connection that asked for it; that
 * connection is watched too, and when qsupd says another client took the
 * console over, the socket is let go at once (QEMU serves one client).
 * The terminal is put in raw mode only when stdin is a tty, and restored on
 * every way out. The terminating signals stay blocked except inside ppoll,
 * so a signal ends the copy loop instead of the process; the terminal is
 * restored first, and the caller re-raises the signal after cleaning up.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "ctl.h"

#define ESCAPE 0x1d        /* Ctrl-] */
#define DRAIN_MS 500       /* after stdin ends: quiet time before leaving */

static volatile sig_atomic_t console_sig;
static const int console_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define NSIGS (sizeof(console_sigs) / sizeof(console_sigs[0]))

enum outcome { GO = 1, DETACHED = 2, CLOSED = 3, DRAINED = 4, TAKEN = 5 };

struct console {
	const char *name;
	struct ctl_conn *ctl;       /* qsupd's connection, watched; NULL: none */
	long long taken_by;         /* the client that took the console over */
	int sock, in, out;
	bool in_open;
	bool tty;
	struct termios saved;
	sigset_t oldmask;
	struct sigaction oldact[NSIGS], oldpipe;
};

static void on_signal(int sig)
{
	console_sig = sig;
}

static void signals_take(struct console *c)
{
	struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART */
	sigset_t set;

	console_sig = 0;
	sigemptyset(&set);
	for (size_t i = 0; i < NSIGS; i++)
		sigaddset(&set, console_sigs[i]);
	sigprocmask(SIG_BLOCK, &set, &c->oldmask);
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NSIGS; i++)
		sigaction(console_sigs[i], &sa, &c->oldact[i]);
	/* A closed stdout or socket must not kill us with the terminal raw. */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &c->oldpipe);
}

/* Unblock first, with our handler still in place: a signal that came while
 * blocked is recorded rather than killing us before the caller cleans up. */
static void signals_give_back(struct console *c)
{
	sigprocmask(SIG_SETMASK, &c->oldmask, NULL);
	for (size_t i = 0; i < NSIGS; i++)
		sigaction(console_sigs[i], &c->oldact[i], NULL);
	sigaction(SIGPIPE, &c->oldpipe, NULL);
}

static int raw_mode(struct console *c, struct sv_error *err)
{
	struct termios raw;

	if (!isatty(c->in))
		return 0;
	if (tcgetattr(c->in, &c->saved) < 0)
		return sv_error_set(err, -errno, "tcgetattr: %s", strerror(errno));
	raw = c->saved;
	cfmakeraw(&raw);
	if (tcsetattr(c->in, TCSANOW, &raw) < 0)
		return sv_error_set(err, -errno, "tcsetattr: %s", strerror(errno));
	c->tty = true;
	return 0;
}

static void raw_mode_end(struct console *c)
{
	if (c->tty)
		tcsetattr(c->in, TCSADRAIN, &c->saved);
	c->tty = false;
}

static int sock_to_out(struct console *c, struct sv_error *err)
{
	char buf[4096];
	ssize_t n;
	int r;

	while ((n = read(c->sock, buf, sizeof(buf))) < 0 && errno == EINTR)
		;
	if (n < 0 && errno == ECONNRESET)
		return CLOSED;
	if (n < 0)
		return sv_error_set(err, -errno, "reading the console: %s", strerror(errno));
	if (n == 0)
		return CLOSED;
	if ((r = ctl_write_all(c->out, buf, (size_t)n)) < 0)
		return sv_error_set(err, r, "writing to stdout: %s", strerror(-r));
	return GO;
}

static int in_to_sock(struct console *c, struct sv_error *err)
{
	char buf[4096], *esc;
	ssize_t n;
	int r;

	while ((n = read(c->in, buf, sizeof(buf))) < 0 && errno == EINTR)
		;
	if (n < 0)
		return sv_error_set(err, -errno, "reading stdin: %s", strerror(errno));
	if (n == 0) {
		c->in_open = false;   /* keep showing output until it goes quiet */
		return GO;
	}
	esc = memchr(buf, ESCAPE, (size_t)n);
	r = ctl_write_all(c->sock, buf, esc ? (size_t)(esc - buf) : (size_t)n);
	if (r == -EPIPE || r == -ECONNRESET)
		return CLOSED;
	if (r < 0)
		return sv_error_set(err, r, "writing to the console: %s", strerror(-r));
	return esc ? DETACHED : GO;
}

/* What qsupd says on the connection that lent the console: only a take
 * over matters. A connection that breaks (qsupd restarting) is no longer
 * watched; the console goes on. */
static int ctl_msgs(struct console *c)
{
	struct sv_error err = { 0 };
	json_t *m = NULL;
	int r;

	while ((r = ctl_conn_poll(c->ctl, &m, &err)) == 0 && m) {
		json_t *data = json_object_get(m, "data");
		bool taken = !strcmp(sv_jstr(m, "event", ""), "CONSOLE_TAKEN") &&
		             !strcmp(sv_jstr(data, "name", ""), c->name);

		if (taken)
			c->taken_by = (long long)json_integer_value(json_object_get(data, "by"));
		json_decref(m);
		if (taken)
			return TAKEN;
	}
	if (r < 0)
		c->ctl = NULL;
	return GO;
}

static int copy_loop(struct console *c, struct sv_error *err)
{
	const struct timespec drain = { 0, DRAIN_MS * 1000000L };
	struct pollfd p[3];
	int r = GO;

	while (r == GO) {
		if (console_sig)
			return GO;
		p[0] = (struct pollfd){ .fd = c->sock, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = c->in_open ? c->in : -1, .events = POLLIN };
		p[2] = (struct pollfd){ .fd = c->ctl ? c->ctl->fd : -1, .events = POLLIN };
		r = ppoll(p, 3, c->in_open ? NULL : &drain, &c->oldmask);
		if (r < 0 && errno == EINTR) {
			r = GO;
			continue;
		}
		if (r < 0)
			return sv_error_set(err, -errno, "ppoll: %s", strerror(errno));
		if (r == 0)
			return DRAINED;
		r = GO;
		if (p[2].revents)
			r = ctl_msgs(c);
		if (r == GO && p[0].revents)
			r = sock_to_out(c, err);
		if (r == GO && p[1].revents)
			r = in_to_sock(c, err);
	}
	return r;
}

static int console_connect(const char *name, const char *path, struct sv_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path))
		return sv_error_set(err, -ENAMETOOLONG, "console socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sv_error_set(err, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	e = errno;
	close(fd);
	return sv_error_set(err, -e, "cannot connect to %s's console at %s: %s",
	                    name, path, strerror(e));
}

int ctl_console(const char *name, const char *path, struct ctl_conn *ctl, int in, int out,
                struct sv_error *err)
{
	int sock = console_connect(name, path, err);

	return sock < 0 ? sock : ctl_console_fd(name, sock, ctl, in, out, err);
}

int ctl_console_fd(const char *name, int sock, struct ctl_conn *ctl, int in, int out,
                   struct sv_error *err)
{
	struct console c = { .name = name, .ctl = ctl && ctl->fd >= 0 ? ctl : NULL,
	                     .in = in, .out = out, .in_open = true, .sock = sock };
	int r;

	fprintf(stderr, "Connected to %s's console; Ctrl-] to detach\n", name);
	signals_take(&c);
	r = raw_mode(&c, err);
	if (r == 0)
		r = copy_loop(&c, err);
	raw_mode_end(&c);
	signals_give_back(&c);
	close(c.sock);
	if (console_sig)
		return console_sig;
	if (r == DETACHED)
		fprintf(stderr, "%sDetached from %s's console\n", isatty(in) ? "\n" : "", name);
	else if (r == CLOSED)
		fprintf(stderr, "%s%s's console closed\n", isatty(in) ? "\n" : "", name);
	else if (r == TAKEN)
		fprintf(stderr, "%s%s's console taken over by client %lld\n",
		        isatty(in) ? "\n" : "", name, c.taken_by);
	return r < 0 ? r : 0;
}
