/* Test helpers: see testutil.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include "testutil.h"

static void on_deadline(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

int t_run_until(uv_loop_t *loop, int (*done)(void *), void *arg, uint64_t ms)
{
	int expired = 0;
	uv_timer_t timer;
	uv_timer_init(loop, &timer);
	timer.data = &expired;
	/* Repeat after expiry: a timer that fires before the poll phase would
	 * otherwise leave UV_RUN_ONCE blocked with no timeout. */
	uv_timer_start(&timer, on_deadline, ms, 10);
	while (!done(arg) && !expired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return done(arg) ? 0 : -1;
}

static int flag_set(void *arg)
{
	return *(const int *)arg != 0;
}

int t_run_until_flag(uv_loop_t *loop, const int *flag, uint64_t ms)
{
	return t_run_until(loop, flag_set, (void *)flag, ms);
}

static int never(void *arg)
{
	(void)arg;
	return 0;
}

void t_run_for(uv_loop_t *loop, uint64_t ms)
{
	t_run_until(loop, never, NULL, ms);
}

static void close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int t_loop_finish(uv_loop_t *loop)
{
	uv_walk(loop, close_any, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	return uv_loop_close(loop);
}

char *t_mkdtemp(const char *prefix)
{
	const char *tmp = getenv("TMPDIR");
	char *path;
	if (asprintf(&path, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix) < 0)
		return NULL;
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	/* A file system a test mounted in its own namespace (a full or
	 * read-only tmpfs) is still mounted here: detached, so that its mount
	 * point goes too and no empty directory is left in /tmp. */
	if (remove(p) < 0 && errno == EBUSY && umount2(p, MNT_DETACH) == 0)
		remove(p);
	return 0;
}

void t_rmtree(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *t_srcdir(void)
{
	const char *s = getenv("QSUP_SRCDIR");
	return s && *s ? s : ".";
}

const char *t_guestdir(void)
{
	static char abs[4096];
	const char *s = getenv("QSUP_GUESTDIR");
	if (!abs[0] && !realpath(s && *s ? s : "build/guest", abs))
		snprintf(abs, sizeof(abs), "%s", s && *s ? s : "build/guest");
	return abs;
}

const char *t_accel(void)
{
	static const char *accel;
	if (accel)
		return accel;
	accel = "tcg";
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		int vm = ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION
		         ? ioctl(fd, KVM_CREATE_VM, 0) : -1;
		if (vm >= 0) {
			accel = "kvm";
			close(vm);
		}
		close(fd);
	}
	printf("# using %s (%s)\n", accel, strcmp(accel, "kvm") == 0
	       ? "/dev/kvm can create a VM" : "/dev/kvm is missing or unusable");
	fflush(stdout);
	return accel;
}

/* ---- QEMU ---- */

static void on_qemu_exit(uv_process_t *p, int64_t status, int sig)
{
	struct t_qemu *q = p->data;
	q->exited = 1;
	q->exit_status = status;
	q->term_signal = sig;
}

int t_qemu_spawn(uv_loop_t *loop, struct t_qemu *q, const char *const *extra)
{
	memset(q, 0, sizeof(*q));
	q->dir = t_mkdtemp("qsup-test");
	if (!q->dir)
		return UV_EIO;
	snprintf(q->qmp_path, sizeof(q->qmp_path), "%s/qmp.sock", q->dir);
	snprintf(q->serial_path, sizeof(q->serial_path), "%s/serial.sock", q->dir);
	char qmp_opt[300], serial_opt[300], log[300];
	snprintf(qmp_opt, sizeof(qmp_opt), "unix:%s,server=on,wait=off", q->qmp_path);
	snprintf(serial_opt, sizeof(serial_opt), "unix:%s,server=on,wait=off", q->serial_path);
	snprintf(log, sizeof(log), "%s/stderr.log", q->dir);

	const char *args[64] = {
		"qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
		"-qmp", qmp_opt, "-serial", serial_opt,
	};
	size_t n = 9;
	for (size_t i = 0; extra && extra[i] && n < 63; i++)
		args[n++] = extra[i];
	args[n] = NULL;

	int errfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE }, { .flags = UV_IGNORE },
		{ .flags = UV_INHERIT_FD, .data.fd = errfd },
	};
	uv_process_options_t o = {
		.exit_cb = on_qemu_exit, .file = args[0], .args = (char **)args,
		.stdio = stdio, .stdio_count = 3,
	};
	q->proc.data = q;
	int rc = uv_spawn(loop, &q->proc, &o);
	close(errfd);
	if (rc < 0) {
		uv_close((uv_handle_t *)&q->proc, NULL);
		return rc;
	}
	q->spawned = 1;
	return 0;
}

int t_qemu_reap(uv_loop_t *loop, struct t_qemu *q, uint64_t ms)
{
	int by_itself = 0;
	if (q->spawned) {
		by_itself = t_run_until_flag(loop, &q->exited, ms) == 0;
		if (!q->exited) {
			uv_process_kill(&q->proc, SIGKILL);
			t_run_until_flag(loop, &q->exited, 5000);
		}
		uv_close((uv_handle_t *)&q->proc, NULL);
		uv_run(loop, UV_RUN_NOWAIT);
		q->spawned = 0;
	}
	t_rmtree(q->dir);
	free(q->dir);
	q->dir = NULL;
	return by_itself ? 0 : -1;
}

const char *t_qemu_stderr(struct t_qemu *q)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/stderr.log", q->dir ? q->dir : "/nonexistent");
	return t_file_tail(path);
}

const char *t_file_tail(const char *path)
{
	static char buf[4096];
	buf[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return buf;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, sz > (long)sizeof(buf) - 1 ? sz - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* ---- synchronous QMP ---- */

static void tq_ready(struct qmp_client *c, int status)
{
	struct t_qmp *t = qmp_client_data(c);
	t->ready = 1;
	t->ready_status = status;
}

static void tq_event(struct qmp_client *c, const char *name, json_t *data,
                     const struct qmp_timestamp *ts)
{
	struct t_qmp *t = qmp_client_data(c);
	(void)ts;
	json_array_append_new(t->events, json_pack("{s:s, s:O?}", "event", name,
	                                           "data", data));
}

static void tq_closed(struct qmp_client *c, int status)
{
	struct t_qmp *t = qmp_client_data(c);
	t->closed = 1;
	t->closed_status = status;
	t->c = NULL;
}

static const struct qmp_callbacks tq_callbacks = {
	.ready = tq_ready, .event = tq_event, .closed = tq_closed,
};

int t_qmp_open(uv_loop_t *loop, struct t_qmp *t, const char *path, uint64_t ms)
{
	uint64_t end = uv_now(loop) + ms;
	memset(t, 0, sizeof(*t));
	t->loop = loop;
	t->events = json_array();
	for (;;) {
		t->ready = t->closed = 0;
		t->c = qmp_client_new(loop, &tq_callbacks, t);
		int rc = qmp_client_connect(t->c, path);
		if (rc < 0) {
			qmp_client_close(t->c);
			t_run_until_flag(loop, &t->closed, 1000);
			return rc;
		}
		t_run_until_flag(loop, &t->ready, end - uv_now(loop) + 1);
		if (t->ready && t->ready_status == 0)
			return 0;
		t_run_until_flag(loop, &t->closed, 1000);
		rc = t->ready ? t->ready_status : UV_ETIMEDOUT;
		uv_update_time(loop);
		if ((rc != UV_ENOENT && rc != UV_ECONNREFUSED) || uv_now(loop) >= end)
			return rc;
		t_run_for(loop, 20);
	}
}

struct exec_wait {
	int done, status;
	json_t *val;
};

static void tq_reply(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct exec_wait *w = arg;
	(void)c;
	w->done = 1;
	w->status = r->status;
	if (r->status == 0)
		w->val = json_incref(r->ret);
	else if (r->status == QMP_EREPLY)
		w->val = json_pack("{s:s, s:s}", "class", r->err_class, "desc", r->err_desc);
}

int t_qmp_exec(struct t_qmp *t, const char *cmd, json_t *args, json_t **ret)
{
	struct exec_wait w = { 0 };
	if (!t->c)
		return UV_ENOTCONN;
	int rc = qmp_client_execute(t->c, cmd, args, 0, tq_reply, &w);
	if (rc < 0)
		return rc;
	t_run_until_flag(t->loop, &w.done, QMP_DEFAULT_TIMEOUT_MS + 5000);
	if (ret)
		*ret = w.val;
	else
		json_decref(w.val);
	return w.status;
}

struct event_wait {
	struct t_qmp *t;
	const char *name;
	size_t *from;
	json_t *found;
};

static int event_arrived(void *arg)
{
	struct event_wait *w = arg;
	if (w->found)
		return 1;
	size_t n = json_array_size(w->t->events);
	for (size_t i = *w->from; i < n; i++) {
		json_t *e = json_array_get(w->t->events, i);
		if (strcmp(json_string_value(json_object_get(e, "event")), w->name) == 0) {
			*w->from = i + 1;
			w->found = e;
			return 1;
		}
	}
	return 0;
}

json_t *t_qmp_wait_event(struct t_qmp *t, const char *name, size_t *from, uint64_t ms)
{
	struct event_wait w = { t, name, from, NULL };
	t_run_until(t->loop, event_arrived, &w, ms);
	if (!w.found)
		return NULL;
	json_t *data = json_object_get(w.found, "data");
	return data ? data : json_null();
}

void t_qmp_close(struct t_qmp *t)
{
	if (t->c) {
		qmp_client_close(t->c);
		t_run_until_flag(t->loop, &t->closed, 5000);
	}
	json_decref(t->events);
	t->events = NULL;
}

/* ---- serial console ---- */

static void ser_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	static char mem[65536];
	(void)h;
	(void)size;
	*buf = uv_buf_init(mem, sizeof(mem));
}

static void ser_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct t_serial *s = st->data;
	if (n < 0) {
		s->eof = 1;
		uv_read_stop(st);
		return;
	}
	s->buf = realloc(s->buf, s->len + (size_t)n + 1);
	memcpy(s->buf + s->len, buf->base, (size_t)n);
	s->len += (size_t)n;
	s->buf[s->len] = '\0';
	if (getenv("QSUP_TEST_VERBOSE"))
		fwrite(buf->base, 1, (size_t)n, stderr);
}

struct ser_conn { struct t_serial *s; int done, status; };

static void ser_connected(uv_connect_t *req, int status)
{
	struct ser_conn *w = req->data;
	w->done = 1;
	w->status = status;
}

int t_serial_open(uv_loop_t *loop, struct t_serial *s, const char *path, uint64_t ms)
{
	uint64_t end = uv_now(loop) + ms;
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	for (;;) {
		struct ser_conn w = { s, 0, 0 };
		uv_connect_t req;
		req.data = &w;
		uv_pipe_init(loop, &s->pipe, 0);
		s->pipe.data = s;
		uv_pipe_connect(&req, &s->pipe, path, ser_connected);
		t_run_until_flag(loop, &w.done, 5000);
		if (w.status == 0) {
			s->open = s->connected = 1;
			return uv_read_start((uv_stream_t *)&s->pipe, ser_alloc, ser_read);
		}
		uv_close((uv_handle_t *)&s->pipe, NULL);
		uv_run(loop, UV_RUN_NOWAIT);
		uv_update_time(loop);
		if (uv_now(loop) >= end)
			return w.status;
		t_run_for(loop, 20);
	}
}

struct ser_wait { struct t_serial *s; const char *text; size_t *from; int found; };

static int ser_found(void *arg)
{
	struct ser_wait *w = arg;
	if (w->found || !w->s->buf || *w->from > w->s->len)
		return w->found;
	char *p = strstr(w->s->buf + *w->from, w->text);
	if (p) {
		*w->from = (size_t)(p - w->s->buf) + strlen(w->text);
		w->found = 1;
	}
	return w->found;
}

int t_serial_wait(struct t_serial *s, const char *text, size_t *from, uint64_t ms)
{
	struct ser_wait w = { s, text, from, 0 };
	return t_run_until(s->loop, ser_found, &w, ms);
}

static void ser_written(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

int t_serial_write(struct t_serial *s, const char *line)
{
	size_t n = strlen(line);
	uv_write_t *req = malloc(sizeof(*req) + n + 1);
	char *data = (char *)(req + 1);
	memcpy(data, line, n);
	data[n] = '\n';
	uv_buf_t buf = uv_buf_init(data, (unsigned)n + 1);
	int rc = uv_write(req, (uv_stream_t *)&s->pipe, &buf, 1, ser_written);
	if (rc < 0)
		free(req);
	return rc;
}

void t_serial_close(struct t_serial *s)
{
	if (s->open) {
		uv_close((uv_handle_t *)&s->pipe, NULL);
		uv_run(s->loop, UV_RUN_NOWAIT);
		s->open = 0;
	}
	free(s->buf);
	s->buf = NULL;
}

long t_serial_highest(const struct t_serial *s, const char *tag)
{
	long n = -1;
	size_t len = strlen(tag);
	for (const char *p = s->buf; p && (p = strstr(p, tag)); p += len) {
		if (p[len] != ' ')
			continue;
		long v = strtol(p + len + 1, NULL, 10);
		if (v > n)
			n = v;
	}
	return n;
}

const char *t_read_line(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

double t_now(void)
{
	return (double)uv_hrtime() / 1e9;
}

long t_status_kib(int pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			kib = strtol(line + n + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return kib;
}

double t_sched_cpu_s(int pid)
{
	char path[320];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	unsigned long long ns = 0, v;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", pid, e->d_name);
		FILE *f = fopen(path, "re");
		if (f && fscanf(f, "%llu", &v) == 1)
			ns += v;
		if (f)
			fclose(f);
	}
	closedir(d);
	return (double)ns / 1e9;
}

long t_rss_kib(int pid)
{
	return t_status_kib(pid, "VmRSS");
}

/* QSUP_TEST_FILTER=PATTERN runs only the tests of a program whose names
 * match (cmocka's filter: * and ? wildcards), for debugging one test. */
void cmocka_set_test_filter(const char *pattern) __attribute__((weak));
__attribute__((constructor)) static void t_test_filter(void)
{
	const char *f = getenv("QSUP_TEST_FILTER");
	if (f && *f && cmocka_set_test_filter)   /* tools link no cmocka */
		cmocka_set_test_filter(f);
}
