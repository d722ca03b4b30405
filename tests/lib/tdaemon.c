/* Tests against a real qsupd: see tdaemon.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"
#include "tdaemon.h"
#include "testutil.h"

extern char **environ;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int t_daemon_init(struct t_daemon *d)
{
	memset(d, 0, sizeof(*d));
	d->dir = t_mkdtemp("qsup-d");
	if (!d->dir)
		return -1;
	snprintf(d->profiles, sizeof(d->profiles), "%s/profiles", d->dir);
	snprintf(d->run, sizeof(d->run), "%s/run", d->dir);
	snprintf(d->sock, sizeof(d->sock), "%s/run/qsupd.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/qsupd.log", d->dir);
	snprintf(d->state, sizeof(d->state), "%s/state", d->dir);
	snprintf(d->logs, sizeof(d->logs), "%s/logs", d->dir);
	snprintf(d->networks, sizeof(d->networks), "%s/networks", d->dir);
	return mkdir(d->profiles, 0755);
}

void t_daemon_profile(struct t_daemon *d, const char *name, const char *text)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s.ini", d->profiles, name);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

int t_daemon_halt_rom(struct t_daemon *d, char *rom, size_t size)
{
	char script[700], out[1024];
	snprintf(rom, size, "%s/halt.rom", d->dir);
	snprintf(script, sizeof(script), "%s/bench/halt-rom.sh", t_srcdir());
	const char *av[] = { "/bin/sh", script, rom, NULL };
	return t_run_capture(av, out, sizeof(out), 10000) == 0 ? 0 : -1;
}

static int spawn_qsupd(struct t_daemon *d, const char *const *extra)
{
	char bin[600];
	const char *b = getenv("QSUP_BUILDDIR");
	snprintf(bin, sizeof(bin), "%s/qsupd", b && *b ? b : "build");
	/* Tests hold control connections across long waits (a guest booting
	 * under TCG) before their first request: no idle timeout for them
	 * unless extra gives one (the last one counts). */
	const char *args[40] = { bin, "-f", "--profiles", d->profiles, "--run-dir", d->run,
	                         "--socket", d->sock, "--state-dir", d->state,
	                         "--idle-timeout", "3600", "--log-dir", d->logs,
	                         "--networks", d->networks };
	size_t n = 16;
	for (size_t i = 0; extra && extra[i] && n < 39; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	int rc = posix_spawn(&d->pid, bin, &fa, NULL, (char **)args, environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc == 0 ? 0 : -1;
}

int t_daemon_spawn(struct t_daemon *d, const char *const *extra)
{
	return spawn_qsupd(d, extra);
}

int t_daemon_exec(struct t_daemon *d, const char *const *extra, int ms)
{
	int status;
	if (spawn_qsupd(d, extra) < 0)
		return -1;
	for (long long end = now_ms() + ms; now_ms() < end; usleep(10000)) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
	}
	kill(d->pid, SIGKILL);
	waitpid(d->pid, &status, 0);
	d->pid = 0;
	return -1;
}

int t_daemon_start(struct t_daemon *d, const char *const *extra)
{
	if (spawn_qsupd(d, extra) < 0)
		return -1;
	/* Polled at 1 ms at first, then less often: benches time from here. */
	for (long long end = now_ms() + 10000, us = 1000; now_ms() < end; us = us < 10000 ? us * 2 : us) {
		struct t_ctl c;
		if (t_ctl_open(&c, d->sock) == 0) {
			t_ctl_close(&c);
			return 0;
		}
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			d->pid = 0;
			return -1;
		}
		usleep((useconds_t)us);
	}
	return -1;
}

int t_daemon_stop(struct t_daemon *d)
{
	int status = 0;
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	/* 20 s: under ASan the leak check at exit scans the whole heap, which
	 * on a loaded 2-core machine is not always quick. */
	for (int i = 0; i < 2000; i++) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		usleep(10000);
	}
	kill(d->pid, SIGKILL);
	waitpid(d->pid, &status, 0);
	d->pid = 0;
	return -1;
}

int t_run_capture(const char *const *argv, char *out, size_t size, int ms)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char **)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		return -1;
	}
	size_t len = 0;
	long long end = now_ms() + ms;
	for (;;) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		int left = (int)(end - now_ms());
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			break;
		char tmp[4096];
		ssize_t n = read(p[0], tmp, sizeof(tmp));
		if (n <= 0)
			break;
		size_t take = len + (size_t)n < size - 1 ? (size_t)n : size - 1 - len;
		memcpy(out + len, tmp, take);
		len += take;
	}
	out[len] = '\0';
	close(p[0]);
	int status;
	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		usleep(5000);
	}
}

const char *t_qsupctl(void)
{
	static char bin[600];
	const char *b = getenv("QSUP_BUILDDIR");
	snprintf(bin, sizeof(bin), "%s/qsupctl", b && *b ? b : "build");
	return bin;
}

const char *t_qsupd(void)
{
	static char bin[600];
	const char *b = getenv("QSUP_BUILDDIR");
	snprintf(bin, sizeof(bin), "%s/qsupd", b && *b ? b : "build");
	return bin;
}

void t_daemon_kill9(struct t_daemon *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

bool t_pid_alive(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* The guest locks of d's profiles (lock.h: named after the profile dir's
 * device and inode): wait until the killed QEMUs have let them go (a QEMU's
 * threads may still hold its fds after the main one shows as a zombie),
 * then remove them, so that a later test whose temp dir gets the same inode
 * finds them free, and /run/lock/qsup does not fill up. */
static void release_guest_locks(struct t_daemon *d)
{
	char dir[600], prefix[64];
	struct stat st;
	if (stat(d->profiles, &st) < 0)
		return;
	sv_lock_dir_default(dir, sizeof(dir), geteuid(), d->run);
	snprintf(prefix, sizeof(prefix), "%llx-%llx-", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	DIR *ld = opendir(dir);
	struct dirent *e;
	while (ld && (e = readdir(ld))) {
		char path[1024];
		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		for (int i = 0; fd >= 0 && i < 500 && flock(fd, LOCK_EX | LOCK_NB) < 0; i++)
			usleep(10000);
		unlink(path);
		if (fd >= 0)
			close(fd);
	}
	if (ld)
		closedir(ld);
}

void t_daemon_cleanup(struct t_daemon *d)
{
	if (d->pid > 0)
		t_daemon_stop(d);
	DIR *dir = opendir(d->run);
	struct dirent *e;
	while (dir && (e = readdir(dir))) {
		char path[1024];
		int pid = 0;
		snprintf(path, sizeof(path), "%s/%s/pid", d->run, e->d_name);
		FILE *f = fopen(path, "r");
		if (f && fscanf(f, "%d", &pid) == 1 && pid > 0 && t_pid_alive(pid))
			kill(pid, SIGKILL);
		if (f)
			fclose(f);
	}
	if (dir)
		closedir(dir);
	release_guest_locks(d);
	t_rmtree(d->dir);
	free(d->dir);
	d->dir = NULL;
}

int t_daemon_finish(struct t_daemon *d)
{
	int status = d->pid > 0 ? t_daemon_stop(d) : 0;
	if (status != 0)
		fprintf(stderr, "qsupd exited with %d:\n%s\n", status, t_daemon_log(d));
	t_daemon_cleanup(d);
	return status;
}

void t_daemon_tiny_profile(struct t_daemon *d, const char *name, const char *extra)
{
	char path[600], text[4096];
	snprintf(path, sizeof(path), "%s/cmdline", t_guestdir());
	const char *cmdline = t_read_line(path);
	snprintf(text, sizeof(text), "[guest]\nmemory = 256M\naccel = tcg\nkernel = %s/vmlinux\n"
	         "initrd = %s/initramfs.cpio.gz\nappend = %s\n%s", t_guestdir(), t_guestdir(),
	         cmdline ? cmdline : "console=ttyS0", extra);
	t_daemon_profile(d, name, text);
}

const char *t_str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : "(none)";
}

const char *t_daemon_log(struct t_daemon *d)
{
	return t_file_tail(d->log);
}

bool t_daemon_log_has(struct t_daemon *d, const char *text)
{
	FILE *f = fopen(d->log, "r");
	char line[4096];
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* ---- control connection ---- */

int t_ctl_open(struct t_ctl *c, const char *path)
{
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(c->fd);
		c->fd = -1;
		return -e;
	}
	c->queue = json_array();
	c->next_id = 1;
	c->greeting = t_ctl_next(c, 5000);
	if (c->greeting)
		return 0;
	t_ctl_close(c);   /* no greeting (yet): nothing stays open */
	return -EPROTO;
}

void t_ctl_close(struct t_ctl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	json_decref(c->greeting);
	json_decref(c->queue);
	c->greeting = c->queue = NULL;
}

int t_ctl_send_raw(struct t_ctl *c, const char *bytes, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, bytes, len, MSG_NOSIGNAL);
		if (n < 0)
			return -errno;
		bytes += n;
		len -= (size_t)n;
	}
	return 0;
}

long long t_ctl_send(struct t_ctl *c, const char *verb, json_t *args)
{
	long long id = c->next_id++;
	json_t *req = json_pack("{s:s, s:I}", "execute", verb, "id", (json_int_t)id);
	if (args)
		json_object_set_new(req, "arguments", args);
	char *s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	/* One send, newline included, as qsupctl sends: a request split in
	 * two would cost the daemon a wake-up more (and benches would count
	 * it against qsupd). */
	size_t len = s ? strlen(s) : 0;
	char *line = s ? realloc(s, len + 2) : NULL;
	if (line) {
		line[len] = '\n';
		t_ctl_send_raw(c, line, len + 1);
	}
	free(line ? line : s);
	return id;
}

/* Read one line from the socket into a JSON object, or NULL. */
static json_t *read_line(struct t_ctl *c, int ms)
{
	long long end = now_ms() + ms;
	for (;;) {
		char *nl = c->buf ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			json_t *j = json_loadb(c->buf, n, 0, NULL);
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return j ? j : json_pack("{s:s}", "unparsable", "line");
		}
		int left = (int)(end - now_ms());
		if (left <= 0 || c->fd < 0)
			return NULL;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, left) <= 0)
			continue;
		char tmp[65536];
		ssize_t r = recv(c->fd, tmp, sizeof(tmp), 0);
		if (r <= 0)
			return NULL;
		c->buf = realloc(c->buf, c->len + (size_t)r);
		memcpy(c->buf + c->len, tmp, (size_t)r);
		c->len += (size_t)r;
	}
}

json_t *t_ctl_next(struct t_ctl *c, int ms)
{
	if (json_array_size(c->queue) > 0) {
		json_t *m = json_incref(json_array_get(c->queue, 0));
		json_array_remove(c->queue, 0);
		return m;
	}
	return read_line(c, ms);
}

/* Find and take the first queued message matching pred, else read on. */
static json_t *take(struct t_ctl *c, bool (*pred)(json_t *, const void *), const void *arg, int ms)
{
	size_t i;
	json_t *m;
	json_array_foreach(c->queue, i, m) {
		if (pred(m, arg)) {
			json_incref(m);
			json_array_remove(c->queue, i);
			return m;
		}
	}
	long long end = now_ms() + ms;
	while (now_ms() < end) {
		m = read_line(c, (int)(end - now_ms()));
		if (!m)
			return NULL;
		if (pred(m, arg))
			return m;
		json_array_append_new(c->queue, m);
	}
	return NULL;
}

static bool has_id(json_t *m, const void *arg)
{
	json_t *id = json_object_get(m, "id");
	return json_is_integer(id) && json_integer_value(id) == *(const long long *)arg;
}

json_t *t_ctl_reply(struct t_ctl *c, long long id, int ms)
{
	return take(c, has_id, &id, ms);
}

json_t *t_ctl_call(struct t_ctl *c, const char *verb, json_t *args, int ms)
{
	return t_ctl_reply(c, t_ctl_send(c, verb, args), ms);
}

json_t *t_ctl_do(struct t_ctl *c, const char *verb, const char *name, int ms, const char **cls)
{
	static char last_class[64];
	json_t *r = t_ctl_call(c, verb, name ? json_pack("{s:s}", "name", name) : NULL, ms);
	json_t *ret = json_incref(json_object_get(r, "return"));
	json_t *err = json_object_get(r, "error");
	snprintf(last_class, sizeof(last_class), "%s",
	         err ? json_string_value(json_object_get(err, "class")) : (r ? "" : "timeout"));
	if (cls)
		*cls = last_class;
	if (err)
		fprintf(stderr, "# %s %s: %s: %s\n", verb, name ? name : "", last_class,
		        json_string_value(json_object_get(err, "desc")));
	json_decref(r);
	return ret;
}

struct state_want { const char *name, *state; };

static bool is_state(json_t *m, const void *arg)
{
	const struct state_want *w = arg;
	json_t *data = json_object_get(m, "data");
	const char *ev = json_string_value(json_object_get(m, "event"));
	return ev && strcmp(ev, "GUEST_STATE") == 0 &&
	       strcmp(json_string_value(json_object_get(data, "name")), w->name) == 0 &&
	       strcmp(json_string_value(json_object_get(data, "state")), w->state) == 0;
}

json_t *t_ctl_wait_state(struct t_ctl *c, const char *name, const char *state, int ms)
{
	struct state_want w = { name, state };
	return take(c, is_state, &w, ms);
}

int t_ctl_console(struct t_ctl *c, const char *name, uv_loop_t *loop, struct t_serial *ser)
{
	json_t *con = t_ctl_do(c, "console", name, 5000, NULL);
	uv_loop_init(loop);
	int rc = con ? t_serial_open(loop, ser, t_str(con, "path"), 5000) : -ENOENT;
	json_decref(con);
	return rc;
}

int t_ctl_console_reopen(struct t_ctl *c, const char *name, uv_loop_t *loop,
                         struct t_serial *ser, size_t *seen)
{
	t_serial_close(ser);
	t_loop_finish(loop);
	memset(ser, 0, sizeof(*ser));
	*seen = 0;
	return t_ctl_console(c, name, loop, ser);
}

bool t_ctl_eof(struct t_ctl *c, int ms)
{
	long long end = now_ms() + ms;
	while (now_ms() < end) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			continue;
		char tmp[4096];
		ssize_t r = recv(c->fd, tmp, sizeof(tmp), 0);
		if (r <= 0)
			return true;
	}
	return false;
}

const char *t_guest_fdset_file(struct t_ctl *c, const char *name, int id, char *buf,
                               size_t size)
{
	json_t *st = t_ctl_do(c, "status", name, 5000, NULL);
	int pid = (int)json_integer_value(json_object_get(st, "pid")), fd = -1;
	json_decref(st);
	json_t *r = t_ctl_call(c, "qmp", json_pack("{s:s, s:s}", "name", name, "command",
	                       "query-fdsets"), 5000), *set;
	size_t i;
	json_array_foreach(json_object_get(r, "return"), i, set)
		if (json_integer_value(json_object_get(set, "fdset-id")) == id)
			fd = (int)json_integer_value(json_object_get(json_array_get(
			        json_object_get(set, "fds"), 0), "fd"));
	json_decref(r);
	char link[64];
	snprintf(link, sizeof(link), "/proc/%d/fd/%d", pid, fd);
	ssize_t n = pid > 0 && fd >= 0 ? readlink(link, buf, size - 1) : -1;
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

const char *t_ctl_state(struct t_ctl *c, const char *name)
{
	static char buf[32];
	json_t *s = t_ctl_do(c, "status", name, 5000, NULL);
	const char *st = json_string_value(json_object_get(s, "state"));
	snprintf(buf, sizeof(buf), "%s", st ? st : "?");
	json_decref(s);
	return buf;
}

int t_ctl_poll_state(struct t_ctl *c, const char *name, const char *want, int ms)
{
	for (int i = 0; i < ms / 50; i++) {
		if (!strcmp(t_ctl_state(c, name), want))
			return 0;
		usleep(50000);
	}
	return strcmp(t_ctl_state(c, name), want) ? -1 : 0;
}

int t_ctl_pid(struct t_ctl *c, const char *name)
{
	json_t *s = t_ctl_do(c, "status", name, 5000, NULL);
	int pid = (int)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	return pid;
}
