/* Running a helper program: see subproc.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "subproc.h"

/* A helper's environment: the system's bin dirs, messages in English. */
static char *helper_env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                              "LC_ALL=C", NULL };

int sv_spawn_logged(uv_loop_t *loop, uv_process_t *proc, char *const argv[], int fd,
                    uv_exit_cb cb)
{
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_INHERIT_FD, .data.fd = fd },
		{ .flags = UV_INHERIT_FD, .data.fd = fd },
	};
	uv_process_options_t o = { .exit_cb = cb, .file = argv[0], .args = (char **)argv,
	                           .env = helper_env, .stdio = stdio, .stdio_count = 3 };
	mode_t old = umask(077);
	int rc = uv_spawn(loop, proc, &o);
	umask(old);
	return rc;
}

struct img {
	uv_process_t proc;      /* first: the handle is the struct */
	void (*done)(void *data, bool ok);
	void *data;
	uv_process_t **handle;
};

static void on_img_closed(uv_handle_t *h)
{
	free(h);
}

static void on_img_exit(uv_process_t *p, int64_t status, int sig)
{
	struct img *m = (struct img *)p;
	*m->handle = NULL;
	void (*done)(void *, bool) = m->done;
	void *data = m->data;
	uv_close((uv_handle_t *)p, on_img_closed);
	done(data, status == 0 && sig == 0);
}

int sv_qemu_img(uv_loop_t *loop, const char *log, const char *const *args,
                void (*done)(void *data, bool ok), void *data, uv_process_t **handle)
{
	char *argv[24];
	size_t n = 0;
	argv[n++] = "qemu-img";
	while (*args && n < 23)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	struct img *m = calloc(1, sizeof(*m));
	if (!m) {
		close(fd);
		return -ENOMEM;
	}
	*m = (struct img){ .done = done, .data = data, .handle = handle };
	int rc = sv_spawn_logged(loop, &m->proc, argv, fd, on_img_exit);
	close(fd);
	if (rc < 0) {
		uv_close((uv_handle_t *)&m->proc, on_img_closed);
		return rc;
	}
	*handle = &m->proc;
	return 0;
}

struct run {
	uv_process_t proc;
	uv_pipe_t pipe[2];      /* stdout, stderr */
	char *buf;
	size_t len;
	int open;               /* streams not yet at EOF */
	int handles;            /* handles not yet closed */
	bool exited;
	int64_t status;
	int sig;
	sv_run_cb cb;
	void *arg;
};

static void on_closed(uv_handle_t *h)
{
	struct run *r = h->data;
	if (--r->handles == 0) {
		free(r->buf);
		free(r);
	}
}

static void maybe_done(struct run *r)
{
	if (!r->exited || r->open > 0)
		return;
	r->buf[r->len] = '\0';
	r->cb(r->status, r->sig, r->buf, r->arg);
	uv_close((uv_handle_t *)&r->proc, on_closed);
	uv_close((uv_handle_t *)&r->pipe[0], on_closed);
	uv_close((uv_handle_t *)&r->pipe[1], on_closed);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct run *r = p->data;
	r->exited = true;
	r->status = status;
	r->sig = sig;
	maybe_done(r);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	(void)hint;
	buf->base = malloc(16384);
	buf->len = buf->base ? 16384 : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct run *r = s->data;
	if (n > 0) {
		size_t k = (size_t)n;
		if (k > SV_RUN_MAX - r->len)
			k = SV_RUN_MAX - r->len;
		memcpy(r->buf + r->len, buf->base, k);
		r->len += k;
	} else if (n < 0) {
		uv_read_stop(s);
		r->open--;
		maybe_done(r);
	}
	free(buf->base);
}

int sv_run(uv_loop_t *loop, char *const argv[], sv_run_cb cb, void *arg)
{
	struct run *r = calloc(1, sizeof(*r));
	if (!r || !(r->buf = malloc(SV_RUN_MAX + 1))) {
		free(r);
		return UV_ENOMEM;
	}
	r->cb = cb;
	r->arg = arg;
	for (int i = 0; i < 2; i++) {
		uv_pipe_init(loop, &r->pipe[i], 0);
		r->pipe[i].data = r;
	}
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->pipe[0] },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->pipe[1] },
	};
	uv_process_options_t o = { .exit_cb = on_exit_cb, .file = argv[0],
	                           .args = (char **)argv, .env = helper_env, .stdio = stdio,
	                           .stdio_count = 3 };
	r->proc.data = r;
	int rc = uv_spawn(loop, &r->proc, &o);
	if (rc < 0) {
		r->handles = 3;
		r->cb = NULL;
		uv_close((uv_handle_t *)&r->proc, on_closed);
		uv_close((uv_handle_t *)&r->pipe[0], on_closed);
		uv_close((uv_handle_t *)&r->pipe[1], on_closed);
		return rc;
	}
	r->handles = 3;
	r->open = 2;
	for (int i = 0; i < 2; i++)
		if (uv_read_start((uv_stream_t *)&r->pipe[i], on_alloc, on_read) < 0)
			r->open--;
	return 0;
}
