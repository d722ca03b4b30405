/*
 * qsupctl over SSH (-c ssh://...): the system's ssh client is spawned with
 * an argv (posix_spawnp, no shell here), its stdin and stdout one end of a
 * socketpair, its stderr a memfd read only when something fails; on the
 * remote host `qsupctl --stdio` bridges the socketpair's bytes to qsupd's
 * control socket, and `qsupctl --stdio-connect PATH` to another unix socket
 * (a guest's console). Both bridges are here too.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "sshuri.h"

extern char **environ;

#define SSH_GREETING_TIMEOUT_MS 60000
#define READY_LINE "QSUP-CONNECTED\n"

/* The ssh processes of this run, reaped at the end (ctl_ssh_reap). */
static struct child {
	pid_t pid;
	int errfd;              /* its stderr (a memfd) */
} kids[4];

static struct child *kid_of(int i)
{
	return i >= 0 && i < 4 && kids[i].pid > 0 ? &kids[i] : NULL;
}

/* Spawn ssh for u running remote; returns our end of its stdio, and its
 * slot in *slot. */
static int ssh_spawn(const struct sv_ssh_uri *u, const char *const *remote, int *slot,
                     struct sv_error *err)
{
	const char *config = getenv("QSUP_SSH_CONFIG");
	char **argv = NULL;
	int sv[2] = { -1, -1 }, efd = -1, i, rc;
	posix_spawn_file_actions_t fa;
	pid_t pid;

	for (i = 0; i < 4 && kids[i].pid > 0; i++)
		;
	if (i == 4)
		return sv_error_set(err, -EMFILE, "too many ssh connections");
	argv = sv_ssh_argv(getenv("QSUP_SSH"), config, u, remote);
	if (!argv)
		return sv_error_set(err, -ENOMEM, "out of memory");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    (efd = memfd_create("qsupctl-ssh-stderr", MFD_CLOEXEC)) < 0) {
		rc = sv_error_set(err, -errno, "socketpair: %s", strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
	posix_spawn_file_actions_adddup2(&fa, efd, 2);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		rc = sv_error_set(err, -rc, "cannot run %s: %s%s", argv[0], strerror(rc),
		                  rc == ENOENT ? " (install the OpenSSH client)" : "");
		goto out;
	}
	kids[i] = (struct child){ .pid = pid, .errfd = efd };
	efd = -1;
	*slot = i;
	rc = sv[0];
	sv[0] = -1;
out:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (efd >= 0)
		close(efd);
	sv_ssh_argv_free(argv);
	return rc;
}

/* Wait (at most ms; then SIGTERM, and wait) for ssh slot i to exit: its
 * wait status, or -1. */
static int kid_wait(int i, int ms)
{
	struct child *k = kid_of(i);
	int st = -1;

	if (!k)
		return -1;
	for (int t = 0; t <= ms; t += 20) {
		pid_t r = waitpid(k->pid, &st, WNOHANG);
		if (r == k->pid || (r < 0 && errno != EINTR))
			goto reaped;
		usleep(20000);
	}
	kill(k->pid, SIGTERM);
	while (waitpid(k->pid, &st, 0) < 0 && errno == EINTR)
		;
reaped:
	k->pid = 0;
	return st;
}

/* What ssh slot i wrote on stderr (static buffer). */
static const char *kid_stderr(int i)
{
	static char buf[4096];
	ssize_t n = kids[i].errfd >= 0 ? pread(kids[i].errfd, buf, sizeof(buf) - 1, 0) : -1;

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* The link to host through ssh slot i did not work (why: what our side
 * saw): wait for ssh, and say why on stderr; the exit status. */
static int ssh_failed(int i, const char *host, const char *why)
{
	int st = kid_wait(i, 5000), code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	const char *text = kid_stderr(i);
	enum sv_ssh_fail f = sv_ssh_classify(text);
	char last[600];

	sv_last_line(text, last, sizeof(last));
	if (f != SV_SSH_OTHER || code == 255) {
		fprintf(stderr, "qsupctl: ssh to %s: %s%s%s\n", host, sv_ssh_fail_name(f),
		        last[0] ? ": " : "", last);
		return f == SV_SSH_HOSTKEY ? CTL_EXIT_SSH_HOSTKEY : f == SV_SSH_AUTH
		       ? CTL_EXIT_SSH_AUTH : CTL_EXIT_SSH_NET;
	}
	if (code == 127) {
		fprintf(stderr, "qsupctl: %s: qsupctl is not installed there (or not in the "
		        "PATH of ssh's commands)%s%s\n", host, last[0] ? ": " : "", last);
		return CTL_EXIT_CONNECT;
	}
	if (last[0]) {   /* the remote qsupctl's own message (no qsupd there...) */
		fprintf(stderr, "qsupctl: %s: %s\n", host,
		        !strncmp(last, "qsupctl: ", 9) ? last + 9 : last);
		return code == CTL_EXIT_CONNECT || code == CTL_EXIT_USAGE ? CTL_EXIT_CONNECT
		       : CTL_EXIT_ERROR;
	}
	fprintf(stderr, "qsupctl: %s: %s\n", host, why);
	return CTL_EXIT_CONNECT;
}

static int uri_of(const char *uri, struct sv_ssh_uri *u)
{
	struct sv_error err = { 0 };

	if (sv_ssh_uri_parse(uri, u, &err) < 0) {
		fprintf(stderr, "qsupctl: %s\n", err.msg);
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_OK;
}

int ctl_ssh_open(struct ctl_conn *c, const char *uri)
{
	struct sv_ssh_uri u;
	struct sv_error err = { 0 };
	const char *remote[] = { "qsupctl", "--stdio", NULL, NULL, NULL };
	int r = uri_of(uri, &u), slot = -1, fd;

	if (r)
		return r;
	if (u.path[0]) {
		remote[1] = "-s";
		remote[2] = u.path;
		remote[3] = "--stdio";
	}
	fd = ssh_spawn(&u, remote, &slot, &err);
	if (fd < 0) {
		fprintf(stderr, "qsupctl: %s\n", err.msg);
		return CTL_EXIT_SSH_NET;
	}
	if (ctl_conn_open_fd(c, fd, u.host, SSH_GREETING_TIMEOUT_MS, &err) < 0)
		return ssh_failed(slot, u.host, err.msg);
	return CTL_EXIT_OK;
}

int ctl_ssh_connect(const char *uri, const char *path, int *out)
{
	struct sv_ssh_uri u;
	struct sv_error err = { 0 };
	const char *remote[] = { "qsupctl", "--stdio-connect", path, NULL };
	char line[sizeof(READY_LINE)];
	size_t got = 0;
	int r = uri_of(uri, &u), slot = -1, fd;

	if (r)
		return r;
	fd = ssh_spawn(&u, remote, &slot, &err);
	if (fd < 0) {
		fprintf(stderr, "qsupctl: %s\n", err.msg);
		return CTL_EXIT_SSH_NET;
	}
	/* the bridge says it is connected before any byte of the socket's */
	while (got < sizeof(line) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, SSH_GREETING_TIMEOUT_MS) <= 0)
			break;
		n = read(fd, line + got, 1);
		if (n <= 0)
			break;
		got++;
	}
	line[got] = '\0';
	if (strcmp(line, READY_LINE)) {
		close(fd);
		return ssh_failed(slot, u.host, "the bridge did not answer");
	}
	*out = fd;
	return CTL_EXIT_OK;
}

void ctl_ssh_reap(void)
{
	for (int i = 0; i < 4; i++) {
		if (kid_of(i))
			kid_wait(i, 3000);
		if (kids[i].errfd > 0)
			close(kids[i].errfd);
		kids[i].errfd = -1;
	}
}

/* ---- the remote end: stdin/stdout <-> a unix socket ---- */

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "qsupctl: cannot connect to %s: path too long\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	fprintf(stderr, "qsupctl: cannot connect to %s: %s%s\n", path, strerror(errno),
	        errno == ENOENT || errno == ECONNREFUSED ? " (is qsupd running there?)" : "");
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The greeting, with what SSH_CONNECTION says of the way in added as
 * "ssh": {"client", "server"} (the source of a migration over ssh makes
 * the destination listen on "server"). Returns what followed it in buf. */
static int pass_greeting(int sock, char *buf, size_t size, size_t *rest)
{
	size_t len = 0;
	char *nl = NULL;

	while (!nl) {
		ssize_t n = len < size - 1 ? read(sock, buf + len, size - 1 - len) : -1;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "qsupctl: --stdio: no greeting from qsupd\n");
			return -1;
		}
		len += (size_t)n;
		buf[len] = '\0';
		nl = memchr(buf, '\n', len);
	}
	*nl = '\0';
	json_t *g = json_loads(buf, 0, NULL);
	const char *sc = getenv("SSH_CONNECTION");
	char cl[64], sv[64];
	int r;

	if (json_is_object(g) && sc && sscanf(sc, "%63s %*s %63s", cl, sv) == 2)
		json_object_set_new(g, "ssh", json_pack("{s:s, s:s}", "client", cl, "server", sv));
	char *text = json_is_object(g) ? json_dumps(g, JSON_COMPACT) : NULL;
	json_decref(g);
	if (text) {
		r = ctl_write_all(1, text, strlen(text));
		free(text);
	} else {
		r = ctl_write_all(1, buf, strlen(buf));
	}
	if (r == 0)
		r = ctl_write_all(1, "\n", 1);
	*rest = len - (size_t)(nl + 1 - buf);
	memmove(buf, nl + 1, *rest);
	return r;
}

int ctl_stdio_bridge(const char *path, bool control)
{
	static char buf[65536];
	size_t rest = 0;
	bool in_open = true;
	int sock = unix_connect(path);

	signal(SIGPIPE, SIG_IGN);
	if (sock < 0)
		return CTL_EXIT_CONNECT;
	if (control ? pass_greeting(sock, buf, sizeof(buf), &rest) < 0
	    : ctl_write_all(1, READY_LINE, strlen(READY_LINE)) < 0)
		return CTL_EXIT_CONNECT;
	if (rest && ctl_write_all(1, buf, rest) < 0)
		return CTL_EXIT_ERROR;
	for (;;) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN },
		                       { .fd = in_open ? 0 : -1, .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return CTL_EXIT_ERROR;
		}
		if (p[0].revents) {
			n = read(sock, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || ctl_write_all(1, buf, (size_t)n) < 0)
				break;   /* the socket ended (or stdout did) */
		}
		if (p[1].revents) {
			n = read(0, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {   /* the client is done: say so, drain the rest */
				in_open = false;
				shutdown(sock, SHUT_WR);
			} else if (ctl_write_all(sock, buf, (size_t)n) < 0) {
				break;
			}
		}
	}
	close(sock);
	return CTL_EXIT_OK;
}
