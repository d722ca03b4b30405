/* Scripted fake QMP server: see fakeqmp.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fakeqmp.h"

static void fake_update_poll(struct fake_qmp *f);

static int fake_on_line(json_t *msg, void *arg)
{
	struct fake_qmp *f = arg;
	json_array_append(f->received, msg);
	if (f->on_msg)
		f->on_msg(f, msg);
	return 0;
}

static void fake_read(struct fake_qmp *f)
{
	char buf[65536];
	char ctl[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	                     .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	ssize_t n = recvmsg(f->fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		f->eof = 1;
		fake_update_poll(f);
		return;
	}
	f->reads++;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && f->nfds < 8; i++)
			memcpy(&f->fds[f->nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	qmp_framer_feed(&f->framer, buf, (size_t)n, fake_on_line, f);
}

static void fake_write(struct fake_qmp *f)
{
	while (f->out_off < f->out_len) {
		ssize_t n = send(f->fd, f->out + f->out_off, f->out_len - f->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EPIPE || errno == ECONNRESET)
				f->out_off = f->out_len;   /* the client is gone */
			break;
		}
		f->out_off += (size_t)n;
	}
	if (f->out_off == f->out_len) {
		free(f->out);
		f->out = NULL;
		f->out_len = f->out_off = 0;
	}
}

static void fake_on_poll(uv_poll_t *p, int status, int events)
{
	struct fake_qmp *f = p->data;
	if (status < 0)
		return;
	if (events & UV_READABLE)
		fake_read(f);
	if (events & UV_WRITABLE)
		fake_write(f);
	fake_update_poll(f);
}

static void fake_update_poll(struct fake_qmp *f)
{
	if (f->closed || f->fd < 0)
		return;
	int ev = (f->eof ? 0 : UV_READABLE) | (f->out_len ? UV_WRITABLE : 0);
	if (ev)
		uv_poll_start(&f->poll, ev, fake_on_poll);
	else
		uv_poll_stop(&f->poll);
}

int fake_qmp_init(struct fake_qmp *f, uv_loop_t *loop)
{
	int sv[2];
	memset(f, 0, sizeof(*f));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return -errno;
	f->loop = loop;
	f->fd = sv[0];
	f->peer_fd = sv[1];
	f->received = json_array();
	f->on_msg = fake_qmp_auto_caps;
	qmp_framer_init(&f->framer, 64u << 20);
	uv_poll_init(loop, &f->poll, f->fd);
	f->poll.data = f;
	fake_update_poll(f);
	return 0;
}

void fake_qmp_send(struct fake_qmp *f, const char *bytes, size_t len)
{
	f->out = realloc(f->out, f->out_len + len);
	memcpy(f->out + f->out_len, bytes, len);
	f->out_len += len;
	fake_update_poll(f);
}

void fake_qmp_sends(struct fake_qmp *f, const char *text)
{
	fake_qmp_send(f, text, strlen(text));
}

static void fake_reply(struct fake_qmp *f, json_t *msg, json_t *reply)
{
	json_t *id = json_object_get(msg, "id");
	if (id)
		json_object_set(reply, "id", id);
	char *s = json_dumps(reply, JSON_COMPACT);
	fake_qmp_sends(f, s);
	fake_qmp_sends(f, "\r\n");
	free(s);
	json_decref(reply);
}

void fake_qmp_return(struct fake_qmp *f, json_t *msg, const char *ret)
{
	json_t *v = json_loads(ret ? ret : "{}", JSON_DECODE_ANY, NULL);
	fake_reply(f, msg, json_pack("{s:o}", "return", v ? v : json_object()));
}

void fake_qmp_error(struct fake_qmp *f, json_t *msg, const char *cls, const char *desc)
{
	fake_reply(f, msg, json_pack("{s:{s:s, s:s}}", "error", "class", cls, "desc", desc));
}

void fake_qmp_auto_caps(struct fake_qmp *f, json_t *msg)
{
	const char *cmd = json_string_value(json_object_get(msg, "execute"));
	if (cmd && strcmp(cmd, "qmp_capabilities") == 0)
		fake_qmp_return(f, msg, "{}");
}

size_t fake_qmp_count(struct fake_qmp *f, const char *cmd)
{
	size_t n = 0, i;
	json_t *m;
	json_array_foreach(f->received, i, m) {
		const char *c = json_string_value(json_object_get(m, "execute"));
		if (c && strcmp(c, cmd) == 0)
			n++;
	}
	return n;
}

json_t *fake_qmp_get(struct fake_qmp *f, size_t n)
{
	return json_array_get(f->received, n);
}

void fake_qmp_close(struct fake_qmp *f)
{
	if (f->closed)
		return;
	f->closed = 1;
	uv_close((uv_handle_t *)&f->poll, NULL);
	uv_run(f->loop, UV_RUN_NOWAIT);
	close(f->fd);
	f->fd = -1;
	if (f->peer_fd >= 0)
		close(f->peer_fd);
	for (int i = 0; i < f->nfds; i++)
		close(f->fds[i]);
	free(f->out);
	qmp_framer_free(&f->framer);
	json_decref(f->received);
}
