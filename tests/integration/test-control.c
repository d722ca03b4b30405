/*
 * The control socket under pressure and across users, against a real qsupd:
 * who may use which verb (every verb of the command table, as an unprivileged
 * uid and as a member of --socket-group), --socket-mode, the per-uid
 * connection limit, the idle timeout, requests from clients that leave at
 * once, subscribers that never read, and input that must not crash it.
 * Needs root (it switches to uid 65534 in child processes).
 */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "commands.h"
#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define FW_PROFILE "[guest]\nmemory = 64M\naccel = kvm:tcg\n[shutdown]\ntimeout = 1s\n"
#define NOBODY 65534
#define GROUP 61234      /* a gid no user has, given as a number */
#define GROUP_S "61234"
#define PER_UID 32       /* qsupd's limit for a uid other than root and its own */

static void need_root(void)
{
	if (geteuid() != 0) {
		printf("# note: not root: cannot switch users; skipped\n");
		skip();
	}
}

/* Start qsupd with extra args; let other users reach its socket's dir. */
static void start_daemon(struct t_fx *x, const char *const *extra)
{
	if (t_daemon_start(&x->d, extra) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	chmod(x->d.dir, 0755);
	chmod(x->d.run, 0755);
}

static void open_root(struct t_fx *x)
{
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
}

/* Run fn(arg) in a child as uid/gid with the given supplementary groups.
 * Returns the child's exit status (100: could not switch). */
static int as_user(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
                   int (*fn)(void *), void *arg)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(ngroups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(100);
		int rc = fn(arg);
		fflush(stdout);
		_exit(rc);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A connection that has not read anything (not even the greeting). */
static int raw_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static const char *error_class(json_t *reply)
{
	json_t *err = json_object_get(reply, "error");
	return err ? t_str(err, "class") : NULL;
}

/* ---- who may do what ---- */

/* In the child: every verb of the table, with {"name": "fw"}. Mutating
 * verbs must be refused with a message naming who may use them; read-only
 * ones must get some other answer. Returns the number of mistakes. */
static int every_verb(void *arg)
{
	const char *sock = arg;
	struct t_ctl c;
	int bad = 0;
	if (t_ctl_open(&c, sock) < 0)
		return 90;
	const struct sv_command *cmd;
	for (size_t i = 0; (cmd = sv_command_at(i)); i++) {
		json_t *r = t_ctl_call(&c, cmd->name, json_pack("{s:s}", "name", "fw"), 20000);
		const char *cls = error_class(r);
		bool denied = cls && strcmp(cls, "PermissionDenied") == 0;
		bool mutates = cmd->flags & SV_CMD_MUTATES;
		const char *desc = t_str(json_object_get(r, "error"), "desc");
		if (!r || denied != mutates) {
			fprintf(stderr, "# %s (%s): %s %s\n", cmd->name,
			        mutates ? "mutating" : "read-only", r ? cls ? cls : "ok" : "no answer",
			        r ? desc : "");
			bad++;
		} else if (denied && (!strstr(desc, "root") || !strstr(desc, "group " GROUP_S) ||
		                      !strstr(desc, "uid 65534"))) {
			fprintf(stderr, "# %s: the refusal does not say who may: %s\n", cmd->name, desc);
			bad++;
		}
		if (i == 0 || (denied && strcmp(cmd->name, "reload") == 0))
			printf("# note: %s: %s\n", cmd->name, denied ? desc : "answered");
		json_decref(r);
	}
	t_ctl_close(&c);
	return bad > 50 ? 50 : bad;
}

/* --socket-mode 0666 lets uid 65534 in; it may use the read-only verbs
 * and no other (every verb of the command table is tried). */
static void test_readonly_user_and_every_verb(void **state)
{
	struct t_fx *x = *state;
	need_root();
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	const char *args[] = { "--socket-mode", "0666", "--socket-group", GROUP_S, NULL };
	start_daemon(x, args);
	struct stat st;
	assert_int_equal(stat(x->d.sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0666);
	assert_int_equal(st.st_gid, GROUP);
	size_t n = 0;
	while (sv_command_at(n))
		n++;
	printf("# note: %zu verbs in the command table\n", n);
	assert_true(n >= 20);
	assert_int_equal(as_user(NOBODY, NOBODY, NULL, 0, every_verb, x->d.sock), 0);
	/* Nothing changed. */
	open_root(x);
	json_t *s = t_ctl_do(&x->c, "status", "fw", 5000, NULL);
	assert_string_equal(t_str(s, "state"), "stopped");
	json_decref(s);
}

/* In the child (read-only): console names the socket but lends nothing,
 * and taking it over is refused. Returns the number of mistakes. */
static int readonly_console(void *arg)
{
	struct t_ctl c;
	int bad = 0;
	if (t_ctl_open(&c, arg) < 0)
		return 90;
	json_t *r = t_ctl_call(&c, "console", json_pack("{s:s}", "name", "fw"), 5000);
	json_t *ret = json_object_get(r, "return");
	bad += !ret || !json_is_string(json_object_get(ret, "path")) ||
	       json_object_get(ret, "client");
	json_decref(r);
	r = t_ctl_call(&c, "console", json_pack("{s:s, s:b}", "name", "fw", "force", 1), 5000);
	const char *cls = error_class(r);
	bad += !cls || strcmp(cls, "PermissionDenied");
	json_decref(r);
	t_ctl_close(&c);
	return bad;
}

/* The console is lent only to clients that may change things: a read-only
 * one can neither hold it (and lock root out) nor take it over. */
static void test_readonly_console(void **state)
{
	struct t_fx *x = *state;
	need_root();
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	const char *args[] = { "--socket-mode", "0666", NULL };
	start_daemon(x, args);
	open_root(x);
	json_t *mine = t_ctl_do(&x->c, "console", "fw", 5000, NULL);
	assert_non_null(mine);
	json_int_t id = json_integer_value(json_object_get(mine, "client"));
	json_decref(mine);
	assert_int_equal(as_user(NOBODY, NOBODY, NULL, 0, readonly_console, x->d.sock), 0);
	struct t_ctl other;
	assert_int_equal(t_ctl_open(&other, x->d.sock), 0);
	json_t *r = t_ctl_call(&other, "console", json_pack("{s:s}", "name", "fw"), 5000);
	char want[64];
	snprintf(want, sizeof(want), "console busy (client %lld)", (long long)id);
	assert_string_equal(t_str(json_object_get(r, "error"), "desc"), want);   /* still root's */
	json_decref(r);
	t_ctl_close(&other);
}

/* In the child: connecting must be refused by the socket's mode. */
static int cannot_connect(void *arg)
{
	int fd = raw_connect(arg);
	if (fd >= 0)
		close(fd);
	return fd == -EACCES ? 0 : 1;
}

/* In the child: reload (a mutating verb) must succeed. */
static int may_reload(void *arg)
{
	struct t_ctl c;
	if (t_ctl_open(&c, arg) < 0)
		return 90;
	json_t *r = t_ctl_call(&c, "reload", NULL, 10000);
	int rc = json_object_get(r, "return") ? 0 : 1;
	if (rc)
		fprintf(stderr, "# reload: %s\n", r ? json_dumps(r, 0) : "no answer");
	json_decref(r);
	t_ctl_close(&c);
	return rc;
}

/* --socket-group: the socket is that group's (0660), and its members may
 * change things, whether it is their primary or a supplementary group. */
static void test_socket_group(void **state)
{
	struct t_fx *x = *state;
	need_root();
	const char *args[] = { "--socket-group", GROUP_S, NULL };
	start_daemon(x, args);
	struct stat st;
	assert_int_equal(stat(x->d.sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_gid, GROUP);
	gid_t g = GROUP;
	assert_int_equal(as_user(NOBODY, NOBODY, NULL, 0, cannot_connect, x->d.sock), 0);
	assert_int_equal(as_user(NOBODY, NOBODY, &g, 1, may_reload, x->d.sock), 0);
	assert_int_equal(as_user(NOBODY, GROUP, NULL, 0, may_reload, x->d.sock), 0);
}

/* Bad values are usage errors (status 2) found before anything is
 * created; a group name is looked up. */
static void test_socket_options_checked(void **state)
{
	struct t_fx *x = *state;
	const char *bad[][3] = {   /* option, value, what the error names */
		{ "--socket-mode", "0668", "0668" }, { "--socket-mode", "rw", "octal" },
		{ "--socket-mode", "01660", "01660" }, { "--socket-mode", "0066", "owner" },
		{ "--socket-mode", "", "octal" },
		{ "--socket-group", "no-such-group-qsup", "no group named 'no-such-group-qsup'" },
		{ "--socket-group", "", "no group named ''" }, { "--socket-group", "-5", "'-5'" },
		{ "--idle-timeout", "0", "'0'" }, { "--idle-timeout", "ten", "'ten'" },
		{ "--idle-timeout", "-1", "'-1'" }, { "--idle-timeout", "99999999999", "99999999999" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[] = { bad[i][0], bad[i][1], NULL };
		int rc = t_daemon_exec(&x->d, args, 10000);
		const char *log = t_daemon_log(&x->d);
		if (rc != 2 || !strstr(log, bad[i][2]))
			fail_msg("qsupd %s '%s' exited with %d:\n%s", bad[i][0], bad[i][1], rc, log);
		assert_int_equal(access(x->d.run, F_OK), -1);   /* nothing created */
		assert_int_equal(truncate(x->d.log, 0), 0);
	}
	struct group *gr = getgrnam("nogroup");
	if (!gr || geteuid() != 0) {
		printf("# note: no group 'nogroup', or not root: the name lookup is not tried\n");
		return;
	}
	gid_t gid = gr->gr_gid;
	const char *args[] = { "--socket-group", "nogroup", "--socket-mode", "0640", NULL };
	start_daemon(x, args);
	struct stat st;
	assert_int_equal(stat(x->d.sock, &st), 0);
	assert_int_equal(st.st_gid, gid);
	assert_int_equal(st.st_mode & 07777, 0640);
}

/* ---- connection limits ---- */

struct holder {
	const char *sock;
	int ready, go;       /* pipes to and from the parent */
};

/* In the child: open 300 connections and keep them. The first PER_UID are
 * greeted, every later one gets one error line and is closed; so is a
 * qsupctl run then. */
static int hold_300(void *arg)
{
	struct holder *h = arg;
	static struct t_ctl c[300];
	int bad = 0;
	for (int i = 0; i < 300; i++) {
		if (t_ctl_open(&c[i], h->sock) < 0) {
			fprintf(stderr, "# connection %d: nothing read\n", i + 1);
			return 10;
		}
		bool greeted = json_object_get(c[i].greeting, "qsup") != NULL;
		const char *cls = error_class(c[i].greeting);
		if (i < PER_UID ? !greeted :
		    !cls || strcmp(cls, "TooManyConnections") != 0 || !t_ctl_eof(&c[i], 5000)) {
			if (bad++ < 3)
				fprintf(stderr, "# connection %d: %s\n", i + 1,
				        json_dumps(c[i].greeting, 0));
		}
		if (i == PER_UID)
			printf("# note: connection %d: %s\n", i + 1,
			       t_str(json_object_get(c[i].greeting, "error"), "desc"));
	}
	/* qsupctl, refused the same way, says why, and exits 3. */
	char out[2048] = "";
	const char *list[] = { t_qsupctl(), "-s", h->sock, "list", NULL };
	int ctl = t_run_capture(list, out, sizeof(out), 10000);
	if (ctl != 3 || !strstr(out, "qsupd refused the connection: uid ")) {
		fprintf(stderr, "# qsupctl list as uid %d: exit %d: %s\n", (int)getuid(), ctl, out);
		bad++;
	}
	char b = 'r';
	if (write(h->ready, &b, 1) != 1 || read(h->go, &b, 1) != 1)
		return 11;
	for (int i = 0; i < 300; i++)
		t_ctl_close(&c[i]);
	return bad ? 12 : 0;
}

/* 300 connections of uid 65534 do not lock root out: that uid gets 32, and
 * root (exempt) still gets in, as often as it likes. */
static void test_per_uid_limit(void **state)
{
	struct t_fx *x = *state;
	need_root();
	const char *args[] = { "--socket-mode", "0666", "--idle-timeout", "300", NULL };
	start_daemon(x, args);
	int up[2], down[2];
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		struct holder h = { x->d.sock, up[1], down[0] };
		close(up[0]);
		close(down[1]);
		if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
			_exit(100);
		int rc = hold_300(&h);
		fflush(stdout);
		_exit(rc);
	}
	close(up[1]);
	close(down[0]);
	char b;
	struct pollfd p = { .fd = up[0], .events = POLLIN };
	bool ready = poll(&p, 1, 60000) == 1 && read(up[0], &b, 1) == 1;

	/* Root, while the 300 are held: its own connections, and qsupctl. */
	static struct t_ctl rc[40];
	int greeted = 0;
	for (int i = 0; ready && i < 40; i++)
		if (t_ctl_open(&rc[i], x->d.sock) == 0 && json_object_get(rc[i].greeting, "qsup"))
			greeted++;
	json_t *l = ready ? t_ctl_call(&rc[0], "list", NULL, 5000) : NULL;
	char out[4096] = "";
	const char *list[] = { t_qsupctl(), "-s", x->d.sock, "list", NULL };
	int ctl = ready ? t_run_capture(list, out, sizeof(out), 10000) : -1;
	for (int i = 0; ready && i < 40; i++)
		t_ctl_close(&rc[i]);

	assert_int_equal(write(down[1], "g", 1), 1);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(up[0]);
	close(down[1]);
	assert_true(ready);
	assert_int_equal(greeted, 40);
	assert_non_null(json_object_get(l, "return"));
	json_decref(l);
	if (ctl != 0)
		fail_msg("qsupctl list exited %d: %s", ctl, out);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- idle clients ---- */

/* A client that sends no complete request within --idle-timeout is
 * dropped; one that subscribed stays, however long it is quiet. */
static void test_idle_timeout(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	const char *args[] = { "--idle-timeout", "1", "--log-level", "debug", NULL };
	start_daemon(x, args);
	struct t_ctl sub, silent, partial;
	assert_int_equal(t_ctl_open(&sub, x->d.sock), 0);
	json_t *r = t_ctl_call(&sub, "subscribe", NULL, 5000);
	assert_non_null(json_object_get(r, "return"));
	json_decref(r);
	assert_int_equal(t_ctl_open(&silent, x->d.sock), 0);
	assert_int_equal(t_ctl_open(&partial, x->d.sock), 0);
	t_ctl_send_raw(&partial, "{\"execute\": \"li", 15);
	assert_true(t_ctl_eof(&silent, 30000));
	assert_true(t_ctl_eof(&partial, 30000));
	sleep(2);   /* well past the timeout for the subscriber too */
	open_root(x);
	json_decref(t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "fw"), 30000));
	json_t *e = t_ctl_wait_state(&sub, "fw", "running", 30000);
	if (!e)
		fail_msg("the subscriber got no event; log:\n%s", t_daemon_log(&x->d));
	json_decref(e);
	assert_true(t_fx_log_has(x, "no request within 1 s"));
	t_ctl_close(&sub);
	t_ctl_close(&silent);
	t_ctl_close(&partial);
}

/* ---- clients that leave at once ---- */

/* 40 requests, each on its own connection that is closed right after the
 * request is written, before the greeting is read: all are carried out.
 * Each is waited for (its GUEST_STATE event) before the next is sent, so a
 * lost one cannot be made up by another. */
static void test_fire_and_forget(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	start_daemon(x, NULL);
	open_root(x);
	struct t_ctl sub;
	assert_int_equal(t_ctl_open(&sub, x->d.sock), 0);
	json_decref(t_ctl_call(&sub, "subscribe", NULL, 5000));
	json_t *s = t_ctl_do(&x->c, "start", "fw", 30000, NULL);
	assert_string_equal(t_str(s, "state"), "running");
	json_decref(s);
	json_decref(t_ctl_wait_state(&sub, "fw", "running", 5000));
	int done = 0;
	for (int i = 0; i < 40; i++) {
		const char *verb = i % 2 ? "resume" : "pause";
		char line[128];
		int n = snprintf(line, sizeof(line), "{\"execute\": \"%s\", \"arguments\": "
		                 "{\"name\": \"fw\"}}\n", verb);
		int fd = raw_connect(x->d.sock);
		assert_true(fd >= 0);
		assert_int_equal(send(fd, line, (size_t)n, MSG_NOSIGNAL), n);
		close(fd);
		json_t *e = t_ctl_wait_state(&sub, "fw", i % 2 ? "running" : "paused", 20000);
		if (!e) {
			printf("# note: %s number %d was lost\n", verb, i + 1);
			break;
		}
		json_decref(e);
		done++;
	}
	assert_int_equal(done, 40);
	t_ctl_close(&sub);
}

/* ---- subscribers that never read ---- */

static bool hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

/* 5 subscribers never read while events flood in (QEMU's STOP and RESUME,
 * and the GUEST_STATE changes they cause, from pipelined QMP stop and cont
 * through the qmp verb): each is disconnected once its unread output is
 * over the cap, qsupd's memory stays bounded and comes back, and it keeps
 * answering. */
static void test_nonreading_subscribers(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	start_daemon(x, NULL);
	open_root(x);
	json_t *s = t_ctl_do(&x->c, "start", "fw", 30000, NULL);
	assert_string_equal(t_str(s, "state"), "running");
	json_decref(s);
	int subs[5];
	for (int i = 0; i < 5; i++) {
		subs[i] = raw_connect(x->d.sock);
		assert_true(subs[i] >= 0);
		const char *line = "{\"execute\": \"subscribe\"}\n";
		assert_int_equal(send(subs[i], line, strlen(line), MSG_NOSIGNAL), (ssize_t)strlen(line));
	}
	long rss0 = t_rss_kib(x->d.pid), peak = rss0;
	int gone = 0, sent = 0;
	double t0 = t_now();
	while (gone < 5 && t_now() - t0 < 240) {
		long long ids[400];
		for (int i = 0; i < 400; i++)
			ids[i] = t_ctl_send(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "fw",
			                    "command", i % 2 ? "cont" : "stop"));
		for (int i = 0; i < 400; i++) {
			json_t *r = t_ctl_reply(&x->c, ids[i], 30000);
			if (!json_object_get(r, "return"))
				fail_msg("qmp: %s\n%s", r ? json_dumps(r, 0) : "no answer",
				         t_daemon_log(&x->d));
			json_decref(r);
		}
		sent += 200;
		long rss = t_rss_kib(x->d.pid);
		peak = rss > peak ? rss : peak;
		gone = 0;
		for (int i = 0; i < 5; i++)
			gone += hung_up(subs[i]);
	}
	usleep(1500 * 1000);   /* at rest: qsupd trims its heap 1 s after activity */
	long rss1 = t_rss_kib(x->d.pid);
	printf("# note: %d stop/cont; qsupd RSS %ld KiB before, at most %ld KiB during, %ld KiB "
	       "at rest after the subscribers were dropped\n", sent, rss0, peak, rss1);
	assert_int_equal(gone, 5);
	json_t *l = t_ctl_call(&x->c, "list", NULL, 5000);
	assert_non_null(json_object_get(l, "return"));
	json_decref(l);
	assert_true(t_fx_log_has(x, "does not read"));
#ifdef __SANITIZE_ADDRESS__
	printf("# note: RSS bounds not asserted under ASan (shadow memory and quarantine)\n");
#else
	assert_true(peak < 64 * 1024);
	assert_true(rss1 < rss0 + 8 * 1024);   /* the buffers went back to the system */
#endif
	for (int i = 0; i < 5; i++)
		close(subs[i]);
}

/* One message larger than the output cap (a QMP reply of several MiB) goes
 * to a client that has nothing else pending. */
static void test_large_reply(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	start_daemon(x, NULL);
	open_root(x);
	json_decref(t_ctl_do(&x->c, "start", "fw", 30000, NULL));
	/* 12000 small block nodes (pipelined), then the list of them: about
	 * 400 bytes each, 4.7 MiB in one reply. */
	json_t *r;
	for (int batch = 0; batch < 24; batch++) {   /* 500 at a time: QMP deadlines */
		long long last = 0;
		for (int i = 0; i < 500; i++) {
			char node[32];
			snprintf(node, sizeof(node), "n%d", batch * 500 + i);
			last = t_ctl_send(&x->c, "qmp", json_pack("{s:s, s:s, s:{s:s, s:s}}", "name",
			                  "fw", "command", "blockdev-add", "arguments", "driver",
			                  "null-co", "node-name", node));
		}
		r = t_ctl_reply(&x->c, last, 60000);
		if (!json_object_get(r, "return"))
			fail_msg("blockdev-add: %s", r ? json_dumps(r, 0) : "no reply");
		json_decref(r);
		while ((r = t_ctl_next(&x->c, 0)))   /* the other replies */
			json_decref(r);
	}
	r = t_ctl_call(&x->c, "qmp", json_pack("{s:s, s:s}", "name", "fw", "command",
	               "query-named-block-nodes"), 30000);
	char *text = json_dumps(json_object_get(r, "return"), JSON_COMPACT);
	size_t n = text ? strlen(text) : 0;
	free(text);
	printf("# note: a reply of %zu KiB\n", n >> 10);
	if (n <= 4u << 20)
		fail_msg("no large reply: %s", r ? "too short" : "none");
	json_decref(r);
	r = t_ctl_call(&x->c, "list", NULL, 5000);
	assert_non_null(json_object_get(r, "return"));
	json_decref(r);
}

/* ---- any input ---- */

/* Send raw bytes on a fresh connection and read until the daemon has
 * answered or closed; the daemon must survive it. */
static void blast(struct t_fx *x, const char *bytes, size_t n)
{
	struct t_ctl c;
	assert_int_equal(t_ctl_open(&c, x->d.sock), 0);
	t_ctl_send_raw(&c, bytes, n);
	shutdown(c.fd, SHUT_WR);
	t_ctl_eof(&c, 10000);
	t_ctl_close(&c);
	assert_true(t_pid_alive(x->d.pid));
}

static void test_any_input(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	start_daemon(x, NULL);
	open_root(x);
#define L(s) { s, sizeof(s) - 1 }
	static const struct { const char *s; size_t n; } lines[] = {
		L("\n\n\r\n   \t\n"), L("{}\n"), L("null\n"), L("\"x\"\n"), L("{\"execute\": null}\n"),
		L("{\"execute\": \"\"}\n"), L("{\"execute\": \"list\", \"execute\": \"list\"}\n"),
		L("{\"execute\": \"list\", \"arguments\": null}\n"), L("{\"execute\": [\"list\"]}\n"),
		L("{\"execute\": \"status\", \"arguments\": {\"name\": 1e999}}\n"),
		L("{\"execute\": \"list\", \"id\": 1e999}\n"), L("{\"execute\": \"list\", \"id\": null}\n"),
		L("{\"execute\": \"\\u0000\"}\n"), L("{\"execute\": \"\xff\xfe\"}\n"),
		L("{\"execute\": \"list\"}\0{\"execute\": \"list\"}\n"), L("\0\0\0\n"),
		L("{\"execute\": \"%s%n%s%n\"}\n"), L("{\"execute\": \"list\"}{\"execute\": \"list\"}\n"),
		L("{\"execute\": \"list\", \"id\": \"\\ud800\"}\n"), L("{\"execute\": \"list\""),
	};
#undef L
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		blast(x, lines[i].s, lines[i].n);
	/* Deep nesting, in the request and in the id. */
	size_t n = 200000;
	char *deep = malloc(2 * n + 64);
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\n';
	blast(x, deep, 2 * n + 1);
	int k = sprintf(deep, "{\"execute\": \"list\", \"id\": ");
	memset(deep + k, '[', 3000);
	memset(deep + k + 3000, ']', 3000);
	memcpy(deep + k + 6000, "}\n", 2);
	blast(x, deep, (size_t)k + 6002);
	/* Random bytes, with newlines now and then. */
	unsigned seed = 12345;
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < 65536; i++) {
			seed = seed * 1103515245 + 12345;
			deep[i] = (char)(seed >> 16);
		}
		blast(x, deep, 65536);
	}
	free(deep);
	/* Error messages quote the request, cut short: never in the middle of
	 * a character (jansson would refuse the reply, and none would come). */
	char verb[200] = "";
	for (int i = 0; i < 60; i++)
		strcat(verb, "\xc3\xa9");   /* é */
	for (int shift = 0; shift < 2; shift++) {   /* cut between characters, then inside one */
		json_t *r = t_ctl_call(&x->c, verb, NULL, 5000);
		if (!r || strcmp(t_str(json_object_get(r, "error"), "class"),
		                 "CommandNotFound"))
			fail_msg("unknown verb (cut %s): %s", shift ? "inside" : "between",
			         r ? json_dumps(r, 0) : "no answer");
		json_decref(r);
		r = t_ctl_call(&x->c, "status", json_pack("{s:s}", "name", verb), 5000);
		if (!r || strcmp(t_str(json_object_get(r, "error"), "class"), "NotFound"))
			fail_msg("status (cut %s): %s", shift ? "inside" : "between",
			         r ? json_dumps(r, 0) : "no answer");
		json_decref(r);
		memmove(verb + 1, verb, strlen(verb) + 1);
		verb[0] = 'x';
	}
	json_t *l = t_ctl_call(&x->c, "list", NULL, 5000);
	assert_non_null(json_object_get(l, "return"));
	json_decref(l);
}

/* Every verb with arguments of every type: the guest does not exist, or
 * it exists (running to begin with; the verbs change that as they go).
 * Each gets an answer, and the daemon lives on. */
static void test_every_verb_odd_arguments(void **state)
{
	struct t_fx *x = *state;
	t_daemon_profile(&x->d, "fw", FW_PROFILE);
	start_daemon(x, NULL);
	open_root(x);
	json_decref(t_ctl_do(&x->c, "start", "fw", 30000, NULL));   /* running, to begin with */
	json_t *odd[] = { json_integer(-1), json_real(1e308), json_null(), json_true(),
	                  json_array(), json_pack("{s:[i]}", "a", 1), json_string("../x"),
	                  json_string("") };
	const char *keys[] = { "force", "command", "arguments", "kind", "id", "file",
	                       "format", "bus", "type", "count", "size", "persist",
	                       "timeout", "uri", "to", "wait", "devices", "paused", "argv",
	                       "downtime", "bandwidth", "capabilities", "tap", "mac",
	                       "lines", "follow" };
	const struct sv_command *cmd;
	for (size_t i = 0; (cmd = sv_command_at(i)); i++) {
		char word[40];
		snprintf(word, sizeof(word), " %s ", cmd->name);
		for (size_t v = 0; v < sizeof(odd) / sizeof(odd[0]); v++) {
			for (int named = 0; named < 3; named++) {
				if (named == 2 && v > 0 && strstr(" start stop kill restart ", word))
					continue;   /* they read only the name; each takes seconds */
				json_t *args = json_object();
				for (size_t kk = 0; kk < sizeof(keys) / sizeof(keys[0]); kk++)
					json_object_set(args, keys[kk], odd[v]);
				if (named == 0)
					json_object_set(args, "name", odd[v]);
				else
					json_object_set_new(args, "name", json_string(named == 1 ? "nope" : "fw"));
				json_t *r = t_ctl_call(&x->c, cmd->name, args, 60000);
				if (!r)
					fail_msg("%s (%zu, %d): no answer; log:\n%s", cmd->name, v, named,
					         t_daemon_log(&x->d));
				json_decref(r);
			}
		}
	}
	for (size_t v = 0; v < sizeof(odd) / sizeof(odd[0]); v++)
		json_decref(odd[v]);
	json_t *l = t_ctl_call(&x->c, "list", NULL, 5000);
	assert_non_null(json_object_get(l, "return"));
	json_decref(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_readonly_user_and_every_verb, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_readonly_console, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_socket_group, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_socket_options_checked, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_per_uid_limit, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_fire_and_forget, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_nonreading_subscribers, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_large_reply, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_any_input, t_fx_setup, t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_every_verb_odd_arguments, t_fx_setup, t_fx_teardown),
	};
	if (getenv("QSUP_TEST_FILTER"))   /* e.g. "test_idle*" */
		cmocka_set_test_filter(getenv("QSUP_TEST_FILTER"));
	return cmocka_run_group_tests_name("control", tests, NULL, NULL);
}
