/* qsupd's ssh processes and links: see sshlink.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "sshlink.h"

#define READY_LINE "QSUP-CONNECTED\n"

static const char *ssh_config;

void sv_ssh_set_config(const char *file)
{
	ssh_config = file && *file ? file : NULL;
}

const char *sv_ssh_config(void)
{
	return ssh_config;
}

struct sv_sshproc {
	uv_process_t proc;
	uv_timer_t grace;               /* released gracefully: kill after it */
	int handles;                    /* open handles; freed at 0 */
	char host[256];
	int errfd;                      /* its stderr */
	bool exited, released;
	int64_t status;
	int sig;
	void (*on_exit)(struct sv_sshproc *s, void *arg);
	void *arg;
};

static void proc_closed(uv_handle_t *h)
{
	struct sv_sshproc *s = h->data;
	if (--s->handles > 0)
		return;
	if (s->errfd >= 0)
		close(s->errfd);
	free(s);
}

static void proc_close(struct sv_sshproc *s)
{
	uv_close((uv_handle_t *)&s->grace, proc_closed);
	uv_close((uv_handle_t *)&s->proc, proc_closed);
}

static void grace_over(uv_timer_t *t)
{
	struct sv_sshproc *s = t->data;
	if (!s->exited)
		uv_process_kill(&s->proc, SIGTERM);
}

static void proc_exited(uv_process_t *p, int64_t status, int sig)
{
	struct sv_sshproc *s = p->data;
	s->exited = true;
	s->status = status;
	s->sig = sig;
	if (s->released) {
		proc_close(s);
		return;
	}
	if (s->on_exit)
		s->on_exit(s, s->arg);
}

int sv_sshproc_spawn(uv_loop_t *loop, const struct sv_ssh_uri *u, const char *const *remote,
                     void (*on_exit)(struct sv_sshproc *s, void *arg), void *arg, int *fd,
                     struct sv_sshproc **out, struct sv_error *err)
{
	int sv[2], rc;
	char **argv = sv_ssh_argv(NULL, ssh_config, u, remote);
	struct sv_sshproc *s = calloc(1, sizeof(*s));
	if (!argv || !s) {
		sv_ssh_argv_free(argv);
		free(s);
		return sv_error_set(err, -ENOMEM, "out of memory");
	}
	s->errfd = memfd_create("qsupd-ssh-stderr", MFD_CLOEXEC);
	if (s->errfd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = sv_error_set(err, -errno, "ssh: %s", strerror(errno));
		if (s->errfd >= 0)
			close(s->errfd);
		free(s);
		sv_ssh_argv_free(argv);
		return rc;
	}
	snprintf(s->host, sizeof(s->host), "%s", u->host);
	s->on_exit = on_exit;
	s->arg = arg;
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_INHERIT_FD, .data.fd = sv[1] },
		{ .flags = UV_INHERIT_FD, .data.fd = sv[1] },
		{ .flags = UV_INHERIT_FD, .data.fd = s->errfd },
	};
	/* qsupd's environment: HOME, SSH_AUTH_SOCK and PATH as ssh expects */
	uv_process_options_t o = { .exit_cb = proc_exited, .file = argv[0], .args = argv,
	                           .stdio = stdio, .stdio_count = 3 };
	s->proc.data = s->grace.data = s;
	s->handles = 2;
	uv_timer_init(loop, &s->grace);
	rc = uv_spawn(loop, &s->proc, &o);
	close(sv[1]);
	sv_ssh_argv_free(argv);
	if (rc < 0) {
		close(sv[0]);
		s->released = true;
		proc_close(s);
		return sv_error_set(err, -EIO, "cannot run ssh: %s%s", uv_strerror(rc),
		                    rc == UV_ENOENT ? " (install the OpenSSH client)" : "");
	}
	*fd = sv[0];
	*out = s;
	return 0;
}

bool sv_sshproc_exited(const struct sv_sshproc *s)
{
	return s->exited;
}

void sv_sshproc_why(const struct sv_sshproc *s, char *buf, size_t size)
{
	char text[4096], last[600];
	ssize_t n = pread(s->errfd, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	enum sv_ssh_fail f = sv_ssh_classify(text);
	sv_last_line(text, last, sizeof(last));
	if (f != SV_SSH_OTHER || (s->exited && s->status == 255))
		snprintf(buf, size, "ssh to %s: %s%s%s", s->host, sv_ssh_fail_name(f),
		         last[0] ? ": " : "", last);
	else if (s->exited && s->status == 127)
		snprintf(buf, size, "%s: qsupctl is not installed there (or not in the PATH of "
		         "ssh's commands)", s->host);
	else if (last[0])
		snprintf(buf, size, "%s: %s", s->host, !strncmp(last, "qsupctl: ", 9)
		         ? last + 9 : last);
	else
		snprintf(buf, size, "%s: the ssh connection ended", s->host);
}

void sv_sshproc_release_after(struct sv_sshproc *s, uint64_t grace_ms)
{
	if (!s || s->released)
		return;
	s->released = true;
	if (s->exited) {
		proc_close(s);
		return;
	}
	if (grace_ms)   /* it ends by itself once its stdin has ended; or then */
		uv_timer_start(&s->grace, grace_over, grace_ms, 0);
	else
		uv_process_kill(&s->proc, SIGTERM);   /* closed once reaped */
}

void sv_sshproc_release(struct sv_sshproc *s)
{
	sv_sshproc_release_after(s, 0);
}

/* ---- an fd to a remote unix socket ---- */

struct sv_sshlink {
	struct sv_sshproc *ssh;
	uv_poll_t poll;
	uv_timer_t timer;
	int fd;
	char got[sizeof(READY_LINE)];
	size_t ngot;
	bool finished, closing_requested, eof;
	int open_handles;
	void (*done)(int fd, const char *why, void *arg);
	void *arg;
};

static void link_handle_closed(uv_handle_t *h)
{
	struct sv_sshlink *l = h->data;
	if (--l->open_handles == 0 && l->closing_requested)
		free(l);
}

/* The ready line came (fd handed over), or the link failed (why). */
static void link_finish(struct sv_sshlink *l, const char *why)
{
	if (l->finished)
		return;
	l->finished = true;
	uv_poll_stop(&l->poll);
	uv_timer_stop(&l->timer);
	uv_close((uv_handle_t *)&l->poll, link_handle_closed);
	uv_close((uv_handle_t *)&l->timer, link_handle_closed);
	int fd = l->fd;
	l->fd = -1;
	if (!why) {
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0)
			fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	} else {
		close(fd);
		fd = -1;
	}
	if (!l->closing_requested)
		l->done(fd, why, l->arg);
}

static void link_failed(struct sv_sshlink *l)
{
	char why[700];
	sv_sshproc_why(l->ssh, why, sizeof(why));
	link_finish(l, why);
}

static void link_ssh_exited(struct sv_sshproc *s, void *arg)
{
	(void)s;
	struct sv_sshlink *l = arg;
	if (!l->finished && l->eof)
		link_failed(l);
}

static void link_readable(uv_poll_t *p, int status, int events)
{
	struct sv_sshlink *l = p->data;
	(void)events;
	if (status < 0) {
		link_finish(l, uv_strerror(status));
		return;
	}
	/* one byte at a time: what follows the line is the stream's */
	while (l->ngot < sizeof(l->got) - 1) {
		ssize_t n = read(l->fd, l->got + l->ngot, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* ssh ends: its stderr says why once it has exited */
			uv_poll_stop(&l->poll);
			l->eof = true;
			if (sv_sshproc_exited(l->ssh))
				link_failed(l);
			return;
		}
		l->ngot++;
		if (l->got[l->ngot - 1] == '\n')
			break;
	}
	l->got[l->ngot] = '\0';
	link_finish(l, strcmp(l->got, READY_LINE) ? "the remote end of the ssh link said "
	            "something unexpected (is qsup there as recent as here?)" : NULL);
}

static void link_timeout(uv_timer_t *t)
{
	struct sv_sshlink *l = t->data;
	if (l->eof)
		link_failed(l);
	else
		link_finish(l, "the ssh link was not up in time");
}

int sv_sshlink_open(uv_loop_t *loop, const char *uri, const char *path, uint64_t timeout_ms,
                    void (*done)(int fd, const char *why, void *arg), void *arg,
                    struct sv_sshlink **out, struct sv_error *err)
{
	struct sv_ssh_uri u;
	int rc = sv_ssh_uri_parse(uri, &u, err);
	if (rc < 0)
		return rc;
	struct sv_sshlink *l = calloc(1, sizeof(*l));
	if (!l)
		return sv_error_set(err, -ENOMEM, "out of memory");
	const char *remote[] = { "qsupctl", "--stdio-connect", path, NULL };
	rc = sv_sshproc_spawn(loop, &u, remote, link_ssh_exited, l, &l->fd, &l->ssh, err);
	if (rc < 0) {
		free(l);
		return rc;
	}
	fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK);
	l->done = done;
	l->arg = arg;
	uv_poll_init(loop, &l->poll, l->fd);
	uv_timer_init(loop, &l->timer);
	l->poll.data = l->timer.data = l;
	l->open_handles = 2;
	uv_poll_start(&l->poll, UV_READABLE, link_readable);
	uv_timer_start(&l->timer, link_timeout, timeout_ms, 0);
	*out = l;
	return 0;
}

void sv_sshlink_close(struct sv_sshlink *l, bool drain)
{
	if (!l)
		return;
	l->closing_requested = true;
	sv_sshproc_release_after(l->ssh, drain && l->finished ? SV_SSHLINK_DRAIN_MS : 0);
	l->ssh = NULL;
	if (!l->finished)
		link_finish(l, "closed");
	else if (l->open_handles == 0)
		free(l);
}
