/*
 * Logging with a real qsupd and real QEMU (firmware-only guests, KVM when
 * it can create a VM, else TCG):
 *  - qsupd's own log: with $JOURNAL_STREAM naming its stderr and a journal
 *    socket there, native journal entries with PRIORITY, QSUP_GUEST,
 *    SYSLOG_IDENTIFIER and the message ids; with no journal socket, stderr
 *    (said once); without $JOURNAL_STREAM, timestamped stderr lines. The
 *    journal is a private one: this test process runs in its own mount
 *    namespace (as root) with a tmpfs on /run/systemd holding its own
 *    SOCK_DGRAM receiver at /run/systemd/journal/socket, read by a thread;
 *    nothing on the host changes;
 *  - guest log files: a crash and the automatic restart keep the previous
 *    run's QEMU output (qsupctl log shows both runs, in order, with qsupd's
 *    start and end lines); status shows the last run's lines only, and a
 *    failed start is described by its own run's output only; rotation at a
 *    start past --log-max-size, followed by `log` with follow across it;
 *    qsupctl log -f ends on Ctrl-C with 0, and with 1 when qsupd exits;
 *  - a log dir that is full (a small tmpfs) or is no directory: a clear
 *    warning, and the guests run all the same.
 * The guests' QEMU is a shell wrapper around the real one that says which
 * run it is (its pid) on stderr first.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "tdaemon.h"
#include "testutil.h"
#include "util.h"

#define FW "[guest]\nmemory = 64M\naccel = kvm:tcg\n[shutdown]\ntimeout = 1s\n"
#define str t_str
#define QEMU "/usr/bin/qemu-system-x86_64"
#define JOURNAL_DIR "/run/systemd"

extern char **environ;

static bool in_ns;   /* this process has a mount namespace of its own */

/* ---- a private journal ---- */

struct journal {
	int fd;
	pthread_t th;
	bool running, mounted;
	volatile int stop;
	pthread_mutex_t mu;
	json_t *entries;            /* one object per entry, its fields as strings */
};

/* One entry of journald's native protocol: KEY=VALUE lines, or KEY, a
 * 64-bit little-endian length, the value and a newline. */
static json_t *parse_entry(const char *p, size_t n)
{
	json_t *e = json_object();
	size_t i = 0;
	while (i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		const char *eq = memchr(p + i, '=', nl ? (size_t)(nl - (p + i)) : n - i);
		if (!nl)
			break;
		if (eq) {
			char *k = strndup(p + i, (size_t)(eq - (p + i)));
			json_object_set_new(e, k, json_stringn(eq + 1, (size_t)(nl - eq - 1)));
			free(k);
			i = (size_t)(nl - p) + 1;
			continue;
		}
		uint64_t len = 0;
		if ((size_t)(nl - p) + 9 > n)
			break;
		for (int b = 7; b >= 0; b--)
			len = len << 8 | (unsigned char)nl[1 + b];
		if ((size_t)(nl - p) + 9 + len > n)
			break;
		char *k = strndup(p + i, (size_t)(nl - (p + i)));
		json_object_set_new(e, k, json_stringn(nl + 9, len));
		free(k);
		i = (size_t)(nl - p) + 9 + len + 1;
	}
	return e;
}

static void *journal_run(void *arg)
{
	struct journal *j = arg;
	static char buf[1 << 20];
	while (!j->stop) {
		struct pollfd pf = { .fd = j->fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
		                    .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(j->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			continue;
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		if (c && c->cmsg_type == SCM_RIGHTS) {   /* a large entry, as a memfd */
			int fd;
			memcpy(&fd, CMSG_DATA(c), sizeof(fd));
			n = pread(fd, buf, sizeof(buf), 0);
			close(fd);
		}
		if (n <= 0)
			continue;
		json_t *e = parse_entry(buf, (size_t)n);
		pthread_mutex_lock(&j->mu);
		json_array_append_new(j->entries, e);
		pthread_mutex_unlock(&j->mu);
	}
	return NULL;
}

/* A tmpfs on /run/systemd, with a receiver on journal/socket when listen. */
static void journal_start(struct journal *j, bool listen)
{
	struct stat st;
	memset(j, 0, sizeof(*j));
	j->fd = -1;
	if (!in_ns || stat(JOURNAL_DIR, &st) < 0) {
		printf("# note: no mount namespace of our own (not root?) or no %s; skipped\n",
		       JOURNAL_DIR);
		skip();
	}
	assert_int_equal(mount("tmpfs", JOURNAL_DIR, "tmpfs", 0, "mode=0755,size=1m"), 0);
	j->mounted = true;
	if (!listen)
		return;
	assert_int_equal(mkdir(JOURNAL_DIR "/journal", 0755), 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), JOURNAL_DIR "/journal/socket");
	j->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(j->fd >= 0);
	int big = 8 << 20;
	setsockopt(j->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	assert_int_equal(bind(j->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	pthread_mutex_init(&j->mu, NULL);
	j->entries = json_array();
	assert_int_equal(pthread_create(&j->th, NULL, journal_run, j), 0);
	j->running = true;
}

static void journal_stop(struct journal *j)
{
	if (j->running) {
		j->stop = 1;
		pthread_join(j->th, NULL);
		j->running = false;
		pthread_mutex_destroy(&j->mu);
		json_decref(j->entries);
	}
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	if (j->mounted)
		umount2(JOURNAL_DIR, MNT_DETACH);
	j->mounted = false;
}

/* The entry whose fields include every KEY=VALUE given (a value ending in
 * '*' matches as a prefix), waiting up to 10 s for it; a new reference or
 * NULL. */
static json_t *journal_find(struct journal *j, const char *const *want)
{
	for (int tries = 0; tries < 100; tries++, usleep(100000)) {
		json_t *found = NULL, *e;
		size_t i;
		pthread_mutex_lock(&j->mu);
		json_array_foreach(j->entries, i, e) {
			bool all = true;
			for (size_t k = 0; all && want[k]; k++) {
				const char *eq = strchr(want[k], '=');
				char key[64];
				snprintf(key, sizeof(key), "%.*s", (int)(eq - want[k]), want[k]);
				const char *v = json_string_value(json_object_get(e, key));
				size_t vl = strlen(eq + 1);
				if (!strcmp(eq + 1, "-"))   /* "-": the field is absent */
					all = !v;
				else if (vl && eq[vl] == '*')
					all = v && !strncmp(v, eq + 1, vl - 1);
				else
					all = v && !strcmp(v, eq + 1);
			}
			if (all && !found)
				found = json_incref(e);
		}
		pthread_mutex_unlock(&j->mu);
		if (found)
			return found;
	}
	return NULL;
}

static size_t journal_count(struct journal *j, const char *key, const char *value)
{
	json_t *e;
	size_t i, n = 0;
	pthread_mutex_lock(&j->mu);
	json_array_foreach(j->entries, i, e)
		n += !strcmp(sv_or(json_string_value(json_object_get(e, key)), ""), value);
	pthread_mutex_unlock(&j->mu);
	return n;
}

/* ---- fixture ---- */

struct fx {
	struct t_daemon d;
	struct t_ctl c;
	struct t_daemon d2;         /* a migration's destination */
	bool have_d2;
	struct journal j;
	char mnt[720];              /* a tmpfs of this test's, or "" */
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_int_equal(t_daemon_init(&x->d), 0);
	x->c.fd = -1;
	x->j.fd = -1;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	if (x->c.fd >= 0)
		t_ctl_close(&x->c);
	int status = x->d.pid > 0 ? t_daemon_stop(&x->d) : 0;
	if (status != 0)
		fprintf(stderr, "qsupd exited with %d:\n%s\n", status, t_daemon_log(&x->d));
	if (x->have_d2)
		t_daemon_finish(&x->d2);
	journal_stop(&x->j);
	if (x->mnt[0])
		umount2(x->mnt, MNT_DETACH);
	t_daemon_finish(&x->d);
	free(x);
	assert_int_equal(status, 0);
	return 0;
}

static void up(struct fx *x, const char *const *extra)
{
	if (t_daemon_start(&x->d, extra) < 0)
		fail_msg("qsupd did not start:\n%s", t_daemon_log(&x->d));
	assert_int_equal(t_ctl_open(&x->c, x->d.sock), 0);
}

/* qsupd's stderr (the daemon's log file) will be the journal's stream:
 * $JOURNAL_STREAM names it, for the spawn that follows. */
static void stream_env(struct fx *x)
{
	char v[64];
	struct stat st;
	int fd = open(x->d.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
}

/* The text of a file (malloc'd), or NULL. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;
	if (!f)
		return NULL;
	if (getdelim(&text, &cap, '\0', f) < 0) {
		free(text);
		text = strdup("");
	}
	fclose(f);
	return text;
}

/* The whole daemon log (t_daemon_log keeps only its end); static. */
static const char *whole_log(struct fx *x)
{
	static char text[1 << 20];
	int fd = open(x->d.log, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : 0;
	if (fd >= 0)
		close(fd);
	text[n > 0 ? n : 0] = '\0';
	return text;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static json_t *status_of(struct fx *x, const char *name)
{
	json_t *s = t_ctl_do(&x->c, "status", name, 5000, NULL);
	if (!s)
		fail_msg("status %s failed; log:\n%s", name, t_daemon_log(&x->d));
	return s;
}

static int pid_of(struct fx *x, const char *name)
{
	json_t *s = status_of(x, name);
	int pid = (int)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	return pid;
}

static json_t *must(struct fx *x, const char *verb, const char *name, int ms)
{
	json_t *r = t_ctl_do(&x->c, verb, name, ms, NULL);
	if (!r)
		fail_msg("%s %s failed; log:\n%s", verb, name, t_daemon_log(&x->d));
	return r;
}

/* Wait until name is in state with a pid other than not_pid (0: any). */
static int wait_running(struct fx *x, const char *name, int not_pid)
{
	for (int i = 0; i < 600; i++, usleep(50000)) {
		json_t *s = status_of(x, name);
		int pid = (int)json_integer_value(json_object_get(s, "pid"));
		bool ok = !strcmp(str(s, "state"), "running") && pid > 0 && pid != not_pid;
		json_decref(s);
		if (ok)
			return pid;
	}
	fail_msg("%s never ran again; log:\n%s", name, t_daemon_log(&x->d));
	return 0;
}

static void wait_state(struct fx *x, const char *name, const char *state)
{
	for (int i = 0; i < 600; i++, usleep(50000)) {
		json_t *s = status_of(x, name);
		bool ok = !strcmp(str(s, "state"), state);
		json_decref(s);
		if (ok)
			return;
	}
	fail_msg("%s never became %s; log:\n%s", name, state, t_daemon_log(&x->d));
}

/* DIR/bin/NAME: QEMU, after saying "RUN-MARKER pid PID" (its own pid,
 * which exec keeps) on stderr, preceded by pre (shell lines). A dir every
 * uid may enter: QEMU runs as the guest's own. */
static void wrapper(struct fx *x, const char *name, const char *pre, char *path, size_t size)
{
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/bin", x->d.dir);
	chmod(x->d.dir, 0755);
	assert_true(mkdir(dir, 0755) == 0 || errno == EEXIST);
	snprintf(path, size, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\necho \"RUN-MARKER pid $$\" >&2\nexec " QEMU " \"$@\"\n", pre);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
}

static void profile_with(struct fx *x, const char *name, const char *binary, const char *more)
{
	char text[2048];
	snprintf(text, sizeof(text), FW "[qemu]\nbinary = %s\n%s", binary, more);
	t_daemon_profile(&x->d, name, text);
}

/* qsupctl -s SOCK args... with output captured; returns its status. */
static int qsupctl(struct fx *x, char *out, size_t size, const char *a1, const char *a2,
                   const char *a3, const char *a4, const char *a5)
{
	const char *argv[] = { t_qsupctl(), "-s", x->d.sock, a1, a2, a3, a4, a5, NULL };
	return t_run_capture(argv, out, size, 20000);
}

/* The texts appear in out in this order. */
static void in_order(const char *out, const char *const *texts)
{
	const char *at = out;
	for (size_t i = 0; texts[i]; i++) {
		const char *p = strstr(at, texts[i]);
		if (!p)
			fail_msg("'%s' is missing after position %td of:\n%s", texts[i], at - out, out);
		at = p + strlen(texts[i]);
	}
}

static bool matches(const char *re, const char *s)
{
	regex_t r;
	assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	bool m = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return m;
}

#define STDERR_LINE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}" \
	"[+-][0-9]{2}:[0-9]{2} qsupd\\[[0-9]+\\]: (debug|info|warning|error): "

/* ---- qsupd's own log ---- */

/* No journal: every line has the time, the pid and a level. */
static void test_stderr_lines_have_time_and_level(void **state)
{
	struct fx *x = *state;
	unsetenv("JOURNAL_STREAM");
	t_daemon_profile(&x->d, "fw", FW);
	up(x, NULL);
	json_decref(must(x, "start", "fw", 30000));
	json_decref(must(x, "kill", "fw", 30000));
	assert_int_equal(t_daemon_stop(&x->d), 0);
	char *text = strdup(whole_log(x)), *save = NULL;
	size_t lines = 0;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save), lines++)
		if (!matches(STDERR_LINE, l))
			fail_msg("not a log line: '%s'", l);
	free(text);
	printf("# note: %zu lines, e.g. %.*s\n", lines, (int)strcspn(whole_log(x), "\n"),
	       whole_log(x));
	assert_true(lines >= 6);
	assert_non_null(strstr(whole_log(x), "]: info: fw: QEMU started (pid "));
	assert_non_null(strstr(whole_log(x), "]: info: fw: QEMU ended (operator): killed by "
	                       "operator"));
}

/* A journal socket there: native entries with their fields. */
static void test_journal_entries(void **state)
{
	struct fx *x = *state;
	journal_start(&x->j, true);
	t_daemon_profile(&x->d, "crashy", FW "[restart]\npolicy = on-failure\ndelay = 200ms\n"
	                 "burst = 5\ninterval = 60s\n");
	t_daemon_profile(&x->d, "loop", FW "[qemu]\nextra-arg = -device\n"
	                 "extra-arg = no-such-device\n[restart]\ndelay = 0\nburst = 1\n"
	                 "interval = 60s\n");
	/* A file name with a newline: its error goes out in the protocol's
	 * binary form (a length, then the value), whole. */
	char nlpath[700];
	snprintf(nlpath, sizeof(nlpath), "%s/bad\nname.ini", x->d.profiles);
	FILE *nl = fopen(nlpath, "w");
	assert_non_null(nl);
	fputs("[guest]\nmemory = 64M\n", nl);
	fclose(nl);
	t_daemon_profile(&x->d, "quar", FW "[disk.root]\nfile = quar.img\nformat = raw\n"
	                 "[restart]\ndelay = 0\nburst = 1\ninterval = 60s\n");
	char img[700];
	snprintf(img, sizeof(img), "%s/quar.img", x->d.profiles);
	int ifd = open(img, O_WRONLY | O_CREAT, 0600);
	assert_true(ifd >= 0);
	close(ifd);
	stream_env(x);
	up(x, NULL);
	unsetenv("JOURNAL_STREAM");
	printf("# using %s\n", t_accel());
	json_decref(must(x, "start", "crashy", 30000));
	int pid = pid_of(x, "crashy");
	kill(pid, SIGKILL);
	wait_running(x, "crashy", pid);

	static const char *const started[] = { "MESSAGE_ID=" SV_MSGID_STARTED,
		"QSUP_GUEST=crashy", "PRIORITY=6", "SYSLOG_IDENTIFIER=qsupd",
		"MESSAGE=crashy: QEMU started (pid *", "CODE_FILE=-", NULL };
	static const char *const exited[] = { "MESSAGE_ID=" SV_MSGID_EXITED,
		"QSUP_GUEST=crashy", "PRIORITY=4",
		"MESSAGE=crashy: QEMU ended (crash): QEMU crashed: killed by signal 9 (SIGKILL)",
		NULL };
	static const char *const restart[] = { "MESSAGE_ID=" SV_MSGID_RESTART,
		"QSUP_GUEST=crashy", "PRIORITY=6", "MESSAGE=crashy: restart scheduled in 0.2s *",
		NULL };
	static const char *const daemon_only[] = { "MESSAGE=listening on *", "PRIORITY=6",
		"SYSLOG_IDENTIFIER=qsupd", "QSUP_GUEST=-", "MESSAGE_ID=-", NULL };
	static const char *const transition[] = { "MESSAGE=crashy: running -> backoff *",
		"QSUP_GUEST=crashy", "PRIORITY=6", "MESSAGE_ID=-", NULL };
	const char *const *want[] = { started, exited, restart, daemon_only, transition };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		json_t *e = journal_find(&x->j, want[i]);
		if (!e)
			fail_msg("no journal entry with %s %s; stderr:\n%s", want[i][0], want[i][1],
			         t_daemon_log(&x->d));
		char *s = json_dumps(e, JSON_COMPACT);
		printf("# note: %s\n", s);
		free(s);
		json_decref(e);
	}
	assert_int_equal(journal_count(&x->j, "MESSAGE_ID", SV_MSGID_STARTED), 2);
	char nlmsg[800];
	snprintf(nlmsg, sizeof(nlmsg), "MESSAGE=%s: \"bad\nname\" (the file name) is not a "
	         "valid guest name*", nlpath);
	const char *const newline[] = { nlmsg, "PRIORITY=3", "SYSLOG_IDENTIFIER=qsupd", NULL };
	json_t *ne = journal_find(&x->j, newline);
	if (!ne)
		fail_msg("no journal entry with the newline; stderr:\n%s", t_daemon_log(&x->d));
	json_decref(ne);

	/* A guest that ran, crashed, and whose restart fails (its disk went
	 * away): restarted once, then quarantined. */
	json_decref(must(x, "start", "quar", 30000));
	assert_int_equal(unlink(img), 0);
	kill(pid_of(x, "quar"), SIGKILL);
	wait_state(x, "quar", "failed");
	static const char *const failed[] = { "MESSAGE_ID=" SV_MSGID_FAILED, "QSUP_GUEST=quar",
		"PRIORITY=3", "MESSAGE=quar: too many restarts (1 within 60s); failed, not "
		"restarting", NULL };
	/* A QEMU that never starts: its start fails once, not retried. */
	json_decref(t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "loop"), 30000));
	wait_state(x, "loop", "stopped");
	static const char *const start_failed[] = { "MESSAGE_ID=" SV_MSGID_EXITED,
		"QSUP_GUEST=loop", "PRIORITY=4", "MESSAGE=loop: QEMU ended (start-failure): *",
		NULL };
	json_t *e = journal_find(&x->j, failed);
	assert_non_null(e);
	json_decref(e);
	assert_non_null(e = journal_find(&x->j, start_failed));
	printf("# note: %s\n", json_string_value(json_object_get(e, "MESSAGE")));
	json_decref(e);
	/* Its status shows what QEMU said, last run only. */
	json_t *st = status_of(x, "loop");
	char *tail = json_dumps(json_object_get(st, "log_tail"), 0);
	printf("# note: log_tail %s\n", tail);
	assert_non_null(strstr(tail, "no-such-device"));
	assert_int_equal(json_array_size(json_object_get(st, "log_tail")), 1);
	free(tail);
	json_decref(st);

	/* A migration to another qsupd (logging to stderr) completes. */
	assert_int_equal(t_daemon_init(&x->d2), 0);
	x->have_d2 = true;
	t_daemon_profile(&x->d2, "crashy", FW "[restart]\npolicy = on-failure\ndelay = 200ms\n"
	                 "burst = 5\ninterval = 60s\n");
	if (t_daemon_start(&x->d2, NULL) < 0)
		fail_msg("the second qsupd did not start:\n%s", t_daemon_log(&x->d2));
	json_t *r = t_ctl_call(&x->c, "migrate", json_pack("{s:s, s:s, s:b}", "name", "crashy",
	                       "to", x->d2.sock, "wait", 1), 120000);
	if (!json_object_get(r, "return"))
		fail_msg("migrate: %s\n-- b:\n%s", json_dumps(r, 0), t_daemon_log(&x->d2));
	json_decref(r);
	static const char *const migrated[] = { "MESSAGE_ID=" SV_MSGID_MIGRATED,
		"QSUP_GUEST=crashy", "PRIORITY=6", "MESSAGE=crashy: migration to unix:*", NULL };
	e = journal_find(&x->j, migrated);
	assert_non_null(e);
	printf("# note: %s\n", json_string_value(json_object_get(e, "MESSAGE")));
	json_decref(e);
	/* Each side's guest log says so. */
	char path[700];
	snprintf(path, sizeof(path), "%s/crashy.log", x->d.logs);
	char *a = read_file(path);
	snprintf(path, sizeof(path), "%s/crashy.log", x->d2.logs);
	char *b = read_file(path);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(strstr(a, " (class migrated): migrated to unix:"));
	assert_non_null(strstr(b, " qsup: start (reason: migration)\n"));
	free(a);
	free(b);
	assert_int_equal(t_daemon_stop(&x->d), 0);
	/* Everything went to the journal: nothing on stderr. */
	assert_string_equal(whole_log(x), "");
	assert_true(journal_count(&x->j, "MESSAGE", "exited") == 1);
}

/* $JOURNAL_STREAM says journal, but no journal answers: stderr, said once. */
static void test_no_journal_there(void **state)
{
	struct fx *x = *state;
	journal_start(&x->j, false);
	t_daemon_profile(&x->d, "fw", FW);
	stream_env(x);
	up(x, NULL);
	unsetenv("JOURNAL_STREAM");
	json_decref(must(x, "start", "fw", 30000));
	json_decref(must(x, "stop", "fw", 30000));
	assert_int_equal(t_daemon_stop(&x->d), 0);
	const char *log = whole_log(x);
	printf("# note: %.*s\n", (int)strcspn(log, "\n"), log);
	assert_int_equal(count(log, "the journal refuses messages (No such file or directory); "
	                       "logging to stderr instead"), 1);
	assert_non_null(strstr(log, "]: info: fw: QEMU started (pid "));
	assert_non_null(strstr(log, "]: info: exited"));
}

/* ---- guest log files ---- */

/* A crash and the automatic restart: the crashed run's output is still
 * there, and qsupctl log shows both runs in order. */
static void test_crash_restart_keeps_previous_run(void **state)
{
	struct fx *x = *state;
	char bin[700], out[65536], t[6][200];
	wrapper(x, "qemu-marker", "", bin, sizeof(bin));
	profile_with(x, "crashy", bin, "[restart]\npolicy = on-failure\ndelay = 200ms\n"
	             "burst = 5\ninterval = 60s\n");
	up(x, NULL);
	json_decref(must(x, "start", "crashy", 30000));
	int pid1 = pid_of(x, "crashy");
	kill(pid1, SIGKILL);
	int pid2 = wait_running(x, "crashy", pid1);
	assert_int_equal(qsupctl(x, out, sizeof(out), "log", "-n", "200", "crashy", NULL), 0);
	printf("# qsupctl log:\n%s", out);
	snprintf(t[0], sizeof(t[0]), "qsup: start (reason: operator)");
	snprintf(t[1], sizeof(t[1]), "RUN-MARKER pid %d\n", pid1);
	snprintf(t[2], sizeof(t[2]), "qsup: exit pid %d (class crash): QEMU crashed: killed by "
	         "signal 9 (SIGKILL); restarting in 0.2s (1 of 5 in 60s)", pid1);
	snprintf(t[3], sizeof(t[3]), "qsup: start (reason: restart after crash 1/5)");
	snprintf(t[4], sizeof(t[4]), "RUN-MARKER pid %d\n", pid2);
	const char *const order[] = { t[0], t[1], t[2], t[3], t[4], NULL };
	in_order(out, order);
	snprintf(t[5], sizeof(t[5]), "qsup: QEMU pid %d (", pid1);
	assert_non_null(strstr(out, t[5]));
	/* The file is the guest's, in the log dir. */
	json_t *s = status_of(x, "crashy");
	char file[700];
	snprintf(file, sizeof(file), "%s/crashy.log", x->d.logs);
	assert_string_equal(str(s, "log"), file);
	assert_null(json_object_get(s, "log_tail"));   /* running again */
	json_decref(s);
	/* -j: the reply as JSON. */
	assert_int_equal(qsupctl(x, out, sizeof(out), "-j", "log", "-n", "2", "crashy"), 0);
	json_t *r = json_loads(out, 0, NULL);
	assert_non_null(r);
	assert_int_equal(json_array_size(json_object_get(r, "lines")), 2);
	assert_string_equal(str(r, "file"), file);
	json_decref(r);
}

/* status shows the last run's lines, never an earlier run's; a failed
 * start is described by its own output only. */
static void test_status_tail_is_the_last_run(void **state)
{
	struct fx *x = *state;
	char bin[700], pre[800], fail[700], out[16384], m1[64], m2[64];
	snprintf(fail, sizeof(fail), "%s/bin/fail", x->d.dir);
	snprintf(pre, sizeof(pre), "[ -e %s ] && exit 1", fail);
	wrapper(x, "qemu-marker", pre, bin, sizeof(bin));
	profile_with(x, "once", bin, "[restart]\npolicy = never\n");
	up(x, NULL);
	json_decref(must(x, "start", "once", 30000));
	snprintf(m1, sizeof(m1), "RUN-MARKER pid %d", pid_of(x, "once"));
	json_decref(must(x, "stop", "once", 30000));
	json_t *s = status_of(x, "once");
	assert_string_equal(str(s, "last_exit"), "operator");
	assert_null(json_object_get(s, "log_tail"));   /* a stop is no crash */
	json_decref(s);
	json_decref(must(x, "start", "once", 30000));
	int pid2 = pid_of(x, "once");
	snprintf(m2, sizeof(m2), "RUN-MARKER pid %d", pid2);
	kill(pid2, SIGKILL);
	wait_state(x, "once", "stopped");
	s = status_of(x, "once");
	assert_string_equal(str(s, "last_exit"), "crash");
	json_t *tail = json_object_get(s, "log_tail"), *v;
	size_t i;
	bool seen = false;
	assert_true(json_array_size(tail) >= 1 && json_array_size(tail) <= 10);
	json_array_foreach(tail, i, v) {
		printf("# log_tail: %s\n", json_string_value(v));
		seen |= !strcmp(json_string_value(v), m2);
		assert_null(strstr(json_string_value(v), m1));
		assert_null(strstr(json_string_value(v), "qsup:"));
	}
	assert_true(seen);
	json_decref(s);
	assert_int_equal(qsupctl(x, out, sizeof(out), "status", "once", NULL, NULL, NULL), 0);
	char line[100];
	snprintf(line, sizeof(line), "log tail:       (the last run's output)\n");
	assert_non_null(strstr(out, line));
	snprintf(line, sizeof(line), "\n    %s\n", m2);
	assert_non_null(strstr(out, line));
	/* A start whose QEMU says nothing and fails: described as such, not
	 * with what earlier runs wrote. */
	int fd = open(fail, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	json_t *r = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", "once"), 30000);
	const char *desc = str(json_object_get(r, "error"), "desc");
	printf("# note: %s\n", desc);
	assert_non_null(strstr(desc, "nothing on stderr"));
	assert_null(strstr(desc, "RUN-MARKER"));
	json_decref(r);
	s = status_of(x, "once");
	assert_string_equal(str(s, "last_exit"), "start-failure");
	assert_null(json_object_get(s, "log_tail"));
	json_decref(s);
	assert_int_equal(qsupctl(x, out, sizeof(out), "log", "once", NULL, NULL, NULL), 0);
	assert_non_null(strstr(out, " (class start-failure): start failed: "));
}

/* Rotation at a start, and a follower that sees every line across it. */
static void test_rotation_followed(void **state)
{
	struct fx *x = *state;
	char bin[700], pre[300], path[700], old[720], t[5][160];
	snprintf(pre, sizeof(pre), "head -c 3000 /dev/zero | tr '\\0' x >&2; echo >&2");
	wrapper(x, "qemu-big", pre, bin, sizeof(bin));
	profile_with(x, "big", bin, "");
	const char *args[] = { "--log-max-size", "2K", "--log-level", "debug", NULL };
	up(x, args);
	/* Follow before the file exists. */
	struct t_ctl f;
	assert_int_equal(t_ctl_open(&f, x->d.sock), 0);
	json_t *r = t_ctl_call(&f, "log", json_pack("{s:s, s:b, s:i}", "name", "big", "follow", 1,
	                                            "lines", 5), 10000);
	json_t *ret = json_object_get(r, "return");
	assert_non_null(ret);
	assert_int_equal(json_array_size(json_object_get(ret, "lines")), 0);
	assert_true(json_is_true(json_object_get(ret, "follow")));
	json_decref(r);
	json_decref(must(x, "start", "big", 30000));
	int pid1 = pid_of(x, "big");
	json_decref(must(x, "stop", "big", 30000));
	json_decref(must(x, "start", "big", 30000));   /* over 2K: rotated first */
	int pid2 = pid_of(x, "big");
	/* The follower's lines, until the second run's marker. */
	char seen[65536] = "";
	snprintf(t[4], sizeof(t[4]), "RUN-MARKER pid %d\n", pid2);
	for (int i = 0; i < 400 && !strstr(seen, t[4]); i++) {
		json_t *e = t_ctl_next(&f, 100);
		if (!e)
			continue;
		assert_string_equal(str(e, "event"), "LOG");
		assert_string_equal(str(e, "guest"), "big");
		assert_non_null(json_object_get(e, "timestamp"));
		const char *line = str(json_object_get(e, "data"), "line");
		if (strlen(seen) + strlen(line) + 2 < sizeof(seen) && strlen(line) < 200) {
			strcat(seen, line);
			strcat(seen, "\n");
		}
		json_decref(e);
	}
	printf("# followed:\n%s", seen);
	snprintf(t[0], sizeof(t[0]), "qsup: start (reason: operator)");
	snprintf(t[1], sizeof(t[1]), "RUN-MARKER pid %d\n", pid1);
	snprintf(t[2], sizeof(t[2]), "qsup: exit pid %d (class operator)", pid1);
	snprintf(t[3], sizeof(t[3]), "qsup: start (reason: operator)");
	const char *const order[] = { t[0], t[1], t[2], t[3], t[4], NULL };
	in_order(seen, order);
	/* The files: the first run in .1, the second from the start of .log. */
	snprintf(path, sizeof(path), "%s/big.log", x->d.logs);
	snprintf(old, sizeof(old), "%s.1", path);
	char *a = read_file(old), *b = read_file(path);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(strstr(a, t[1]));
	assert_null(strstr(a, t[4]));
	assert_non_null(strstr(b, t[4]));
	assert_null(strstr(b, t[1]));
	assert_non_null(strstr(b, " qsup: start (reason: operator)\n"));
	assert_true(strstr(b, " qsup: start") < strstr(b, "RUN-MARKER"));
	free(a);
	free(b);
	assert_non_null(strstr(whole_log(x), "big.log was over 2048 bytes: it is "));
	/* Lines from both files when the newer has fewer than asked. */
	r = t_ctl_call(&x->c, "log", json_pack("{s:s, s:i}", "name", "big", "lines", 10000),
	               10000);
	char *all = json_dumps(json_object_get(r, "return"), 0);
	assert_non_null(strstr(all, "RUN-MARKER pid"));
	snprintf(t[0], sizeof(t[0]), "\"RUN-MARKER pid %d\"", pid1);
	snprintf(t[1], sizeof(t[1]), "\"RUN-MARKER pid %d\"", pid2);
	assert_non_null(strstr(all, t[0]));
	assert_true(strstr(all, t[0]) < strstr(all, t[1]));
	free(all);
	json_decref(r);
	/* The follower goes with its client. */
	t_ctl_close(&f);
	for (int i = 0; i < 100 && !strstr(whole_log(x), "log: client "); i++)
		usleep(50000);
	for (int i = 0; i < 100 && !strstr(whole_log(x), "no longer follows it"); i++)
		usleep(50000);
	assert_non_null(strstr(whole_log(x), "big: log: client "));
	assert_non_null(strstr(whole_log(x), "no longer follows it"));
}

/* qsupctl log -f NAME with its stdout (and stderr) into a pipe. */
static pid_t spawn_follow(struct fx *x, const char *name, int *rfd)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	const char *argv[] = { t_qsupctl(), "-s", x->d.sock, "log", "-f", name, NULL };
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, (char **)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	*rfd = p[0];
	return pid;
}

/* Read fd into out (appending) until want appears or fd ends (10 s). */
static void read_until(int fd, char *out, size_t size, const char *want)
{
	size_t len = strlen(out);
	for (int i = 0; i < 100 && !(want && strstr(out, want)); i++) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t n = read(fd, out + len, size - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		out[len] = '\0';
	}
}

static int exit_status(pid_t pid)
{
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* qsupctl log -f: the lines as they come; Ctrl-C ends it with 0; the
 * daemon's exit with 1 (and the daemon exits cleanly while followed). */
static void test_qsupctl_follow(void **state)
{
	struct fx *x = *state;
	char out[8192] = "", out2[8192] = "";
	int fd, fd2;
	t_daemon_profile(&x->d, "fw", FW);
	up(x, NULL);
	pid_t pid = spawn_follow(x, "fw", &fd), pid2 = spawn_follow(x, "fw", &fd2);
	usleep(300000);   /* connected and following (the lines would come anyway) */
	json_decref(must(x, "start", "fw", 30000));
	read_until(fd, out, sizeof(out), "qsup: QEMU pid ");
	printf("# qsupctl log -f:\n%s", out);
	assert_non_null(strstr(out, "qsup: start (reason: operator)\n"));
	assert_non_null(strstr(out, "qsup: QEMU pid "));
	kill(pid, SIGINT);
	assert_int_equal(exit_status(pid), 0);
	close(fd);
	read_until(fd2, out2, sizeof(out2), "qsup: QEMU pid ");
	json_decref(must(x, "kill", "fw", 30000));
	read_until(fd2, out2, sizeof(out2), "killed by operator\n");
	assert_int_equal(t_daemon_stop(&x->d), 0);
	read_until(fd2, out2, sizeof(out2), NULL);
	printf("# the other one:\n%s", out2);
	assert_non_null(strstr(out2, "(class operator): killed by operator\n"));
	assert_non_null(strstr(out2, "qsupctl: log fw: qsupd closed the connection"));
	assert_int_equal(exit_status(pid2), 1);
	close(fd2);
}

/* The verb's arguments, and qsupctl's, checked before anything is read. */
static void test_bad_arguments(void **state)
{
	struct fx *x = *state;
	char out[4096];
	t_daemon_profile(&x->d, "fw", FW);
	up(x, NULL);
	json_t *odd[] = { json_integer(0), json_integer(10001), json_string("5"), json_true() };
	for (size_t i = 0; i < 4; i++) {
		json_t *r = t_ctl_call(&x->c, "log", json_pack("{s:s, s:O}", "name", "fw", "lines",
		                                              odd[i]), 5000);
		assert_string_equal(str(json_object_get(r, "error"), "class"), "InvalidArgument");
		json_decref(r);
		json_decref(odd[i]);
	}
	json_t *r = t_ctl_call(&x->c, "log", json_pack("{s:s, s:s}", "name", "fw", "follow",
	                                               "yes"), 5000);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "InvalidArgument");
	json_decref(r);
	r = t_ctl_call(&x->c, "log", json_pack("{s:s}", "name", "nope"), 5000);
	assert_string_equal(str(json_object_get(r, "error"), "class"), "NotFound");
	json_decref(r);
	/* A guest that never ran has no file yet: no lines, no error. */
	r = t_ctl_call(&x->c, "log", json_pack("{s:s}", "name", "fw"), 5000);
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "return"), "lines")),
	                 0);
	json_decref(r);
	assert_int_equal(qsupctl(x, out, sizeof(out), "log", "-n", "0", "fw", NULL), 2);
	assert_non_null(strstr(out, "qsupctl: log: -n: '0' is not a number of lines"));
	assert_int_equal(qsupctl(x, out, sizeof(out), "log", "--lines", "x", "fw", NULL), 2);
	assert_int_equal(qsupctl(x, out, sizeof(out), "log", "-n", "3", NULL, NULL), 2);
	assert_int_equal(qsupctl(x, out, sizeof(out), "start", "--follow", "fw", NULL, NULL), 2);
	assert_int_equal(qsupctl(x, out, sizeof(out), "log", "nope", NULL, NULL, NULL), 1);
	assert_non_null(strstr(out, "qsupctl: log nope: no profile named nope"));
}

/* qsupd's own options: a bad size or an empty dir is a usage error. */
static void test_daemon_options(void **state)
{
	struct fx *x = *state;
	const char *bad_size[] = { "--log-max-size", "1X", NULL };
	assert_int_equal(t_daemon_exec(&x->d, bad_size, 10000), 2);
	assert_non_null(strstr(whole_log(x), "qsupd: --log-max-size: '1X' is not a size"));
	const char *empty[] = { "--log-dir", "", NULL };
	assert_int_equal(t_daemon_exec(&x->d, empty, 10000), 2);
	assert_non_null(strstr(whole_log(x), "qsupd: --log-dir: an empty path"));
	char out[4096];
	const char *help[] = { t_qsupd(), "--help", NULL };
	assert_int_equal(t_run_capture(help, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, "--log-dir DIR"));
	assert_non_null(strstr(out, "--log-max-size SIZE"));
}

/* ---- a log dir that cannot be written ---- */

/* A full filesystem: one clear warning per start, the guest runs. */
static void test_log_dir_full(void **state)
{
	struct fx *x = *state;
	char logs[700], filler[720];
	if (!in_ns) {
		printf("# note: no mount namespace of our own (not root?); skipped\n");
		skip();
	}
	snprintf(logs, sizeof(logs), "%s/full", x->d.dir);
	assert_int_equal(mkdir(logs, 0755), 0);
	assert_int_equal(mount("tmpfs", logs, "tmpfs", 0, "size=64k"), 0);
	snprintf(x->mnt, sizeof(x->mnt), "%s", logs);
	snprintf(filler, sizeof(filler), "%s/filler", logs);
	int fd = open(filler, O_WRONLY | O_CREAT, 0644);
	char block[4096] = { 0 };
	while (write(fd, block, sizeof(block)) > 0)
		;
	assert_int_equal(errno, ENOSPC);
	close(fd);
	t_daemon_profile(&x->d, "fw", FW);
	const char *args[] = { "--log-dir", logs, NULL };
	up(x, args);
	json_t *s = must(x, "start", "fw", 30000);
	assert_string_equal(str(s, "state"), "running");
	json_decref(s);
	json_decref(must(x, "stop", "fw", 30000));
	json_decref(must(x, "start", "fw", 30000));
	char want[900];
	snprintf(want, sizeof(want), "%s/fw.log: No space left on device; the guest runs on", logs);
	const char *log = whole_log(x);
	const char *w = strstr(log, "warning: fw: log: ");
	printf("# note: %.*s\n", w ? (int)strcspn(w, "\n") : 0, w ? w : "");
	assert_int_equal(count(log, "warning: fw: log: "), 2);   /* once per start */
	assert_int_equal(count(log, want), 2);
	assert_string_equal(str(s = status_of(x, "fw"), "state"), "running");
	json_decref(s);
	json_decref(must(x, "kill", "fw", 30000));
}

/* A log dir that is no directory: said at start-up and at each start; the
 * guest runs; the log verb says why it has nothing. */
static void test_log_dir_unusable(void **state)
{
	struct fx *x = *state;
	char file[700], logs[720];
	snprintf(file, sizeof(file), "%s/a-file", x->d.dir);
	int fd = open(file, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	snprintf(logs, sizeof(logs), "%s/logs", file);
	t_daemon_profile(&x->d, "fw", FW);
	const char *args[] = { "--log-dir", logs, NULL };
	up(x, args);
	char want[900];
	snprintf(want, sizeof(want), "warning: log dir %s: Not a directory; the guests run on",
	         logs);
	assert_non_null(strstr(whole_log(x), want));
	json_t *s = must(x, "start", "fw", 30000);
	assert_string_equal(str(s, "state"), "running");
	json_decref(s);
	snprintf(want, sizeof(want), "warning: fw: log: %s/fw.log: Not a directory; the guest "
	         "runs on", logs);
	assert_int_equal(count(whole_log(x), want), 1);
	json_t *r = t_ctl_call(&x->c, "log", json_pack("{s:s}", "name", "fw"), 5000);
	const char *desc = str(json_object_get(r, "error"), "desc");
	printf("# note: %s\n", desc);
	assert_non_null(strstr(desc, "Not a directory"));
	json_decref(r);
	json_decref(must(x, "kill", "fw", 30000));
}

int main(void)
{
	/* A mount namespace of our own: the tmpfs mounts of the tests (a
	 * private /run/systemd, a small full filesystem) never reach the host. */
	in_ns = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
	        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stderr_lines_have_time_and_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_journal_there, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_restart_keeps_previous_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_tail_is_the_last_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_followed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qsupctl_follow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_dir_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_dir_unusable, setup, teardown),
	};
	if (getenv("QSUP_TEST_FILTER"))
		cmocka_set_test_filter(getenv("QSUP_TEST_FILTER"));
	return cmocka_run_group_tests_name("logging", tests, NULL, NULL);
}
