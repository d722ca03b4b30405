/* The state file and re-adoption: see state.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "guest_int.h"
#include "hotplug.h"
#include "log.h"
#include "migrate.h"
#include "qmp.h"
#include "state.h"

/* ---- writing ---- */

struct save_job {
	uv_work_t work;
	struct sv_guest *g;
	char path[4200], tmp[4200];
	char *text;
	int err;
};

static int64_t wall_ms(void)
{
	uv_timeval64_t tv;
	uv_gettimeofday(&tv);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static json_t *state_json(struct sv_guest *g)
{
	char digest[17];
	snprintf(digest, sizeof(digest), "%016" PRIx64, g->run_profile ? g->run_digest : g->digest);
	int64_t started = sv_guest_active(g) && g->started_ms
	                ? wall_ms() - (int64_t)(uv_now(g->d->loop) - g->started_ms) : 0;
	json_t *js = json_pack("{s:i, s:s, s:i, s:I, s:s, s:i, s:i, s:s, s:s, s:s, s:I, s:s, "
	                 "s:b, s:b, s:b, s:s, s:o}",
	                 "version", 1, "name", g->name, "pid", g->pid,
	                 "starttime", (json_int_t)g->proc_starttime, "digest", digest,
	                 "restarts", (int)g->rs.total, "consecutive", (int)g->rs.consecutive,
	                 "last_exit", sv_exit_class_name(g->last_exit),
	                 "state", sv_state_name(g->state), "reason", g->reason,
	                 "started", (json_int_t)started, "accel", g->accel,
	                 "guest_shutdown", g->guest_shutdown, "shutdown_seen", g->shutdown_seen,
	                 "panicked", g->panicked, "shutdown_reason", g->shutdown_reason,
	                 "hotplug", sv_hotplug_export(g));
	sv_passthrough_save(g, js);   /* "taint", when tainted */
	return js;
}

static void save_work(uv_work_t *w)
{
	struct save_job *j = w->data;
	int fd = open(j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	size_t len = strlen(j->text);
	if (fd < 0 || write(fd, j->text, len) != (ssize_t)len || fsync(fd) < 0 ||
	    rename(j->tmp, j->path) < 0)
		j->err = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
}

static void save_done(uv_work_t *w, int status)
{
	struct save_job *j = w->data;
	struct sv_guest *g = j->g;
	(void)status;
	if (j->err && !g->freeing)
		sv_log(SV_LOG_WARN, g->name, "cannot write %s: %s", j->path, strerror(j->err));
	free(j->text);
	free(j);
	g->state_busy = false;
	if (g->state_dirty && !g->freeing)
		sv_state_save(g);
	sv_guest_handle_gone(g);
}

void sv_state_save(struct sv_guest *g)
{
	if (g->state_busy) {
		g->state_dirty = true;
		return;
	}
	struct save_job *j = calloc(1, sizeof(*j));
	json_t *js = state_json(g);
	if (!j || !js || !(j->text = json_dumps(js, JSON_INDENT(1)))) {
		json_decref(js);
		free(j);
		return;
	}
	json_decref(js);
	snprintf(j->path, sizeof(j->path), "%s/state.json", g->rundir);
	snprintf(j->tmp, sizeof(j->tmp), "%s/.state.json.tmp", g->rundir);
	j->g = g;
	j->work.data = j;
	g->state_busy = true;
	g->state_dirty = false;
	g->handles++;
	if (uv_queue_work(g->d->loop, &j->work, save_work, save_done) < 0) {
		free(j->text);
		free(j);
		g->state_busy = false;
		g->handles--;
	}
}

/* ---- the process ---- */

unsigned long long sv_proc_starttime(int pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields resume after the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return 0;   /* gone, or a zombie waiting for its reaper */
	unsigned long long start = 0;
	/* field 3 is the state; the start time is field 22 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
	                  "%*d %*d %*d %*d %llu", &start) != 1)
		return 0;
	return start;
}

bool sv_proc_is_guest(int pid, const char *name)
{
	char path[64], buf[16384], want[96];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	snprintf(want, sizeof(want), "guest=%s,", name);
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		if (strncmp(buf + i, want, strlen(want)) == 0)
			return true;
	return false;
}

/* ---- adopted QEMU ---- */

static void on_pidfd_closed(uv_handle_t *h)
{
	struct sv_guest *g = h->data;
	free(h);
	sv_guest_handle_gone(g);
}

void sv_adopted_release(struct sv_guest *g)
{
	if (g->pidfd_poll) {
		uv_close((uv_handle_t *)g->pidfd_poll, on_pidfd_closed);
		g->pidfd_poll = NULL;
	}
	if (g->pidfd >= 0) {
		close(g->pidfd);
		g->pidfd = -1;
	}
	g->adopted = g->adopting = false;
}

void sv_adopted_signal(struct sv_guest *g, int sig)
{
	if (g->pidfd >= 0 && pidfd_send_signal(g->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
		sv_log(SV_LOG_WARN, g->name, "signal %d: %s", sig, strerror(errno));
}

static void on_pidfd(uv_poll_t *p, int status, int events)
{
	struct sv_guest *g = p->data;
	(void)status;
	(void)events;
	/* Not our child: its exit status is not ours to read. */
	sv_guest_qemu_gone(g, 0, 0);
}

static void on_query_status(struct qmp_client *c, const struct qmp_result *r, void *arg)
{
	struct sv_guest *g = arg;
	char reason[128];
	(void)c;
	if (!g->adopting)
		return;
	g->adopting = false;
	const char *st = r->status == 0 ? json_string_value(json_object_get(r->ret, "status")) : NULL;
	if (sv_migrate_adopt(g, st)) {   /* it took the state over */
		sv_hotplug_reconcile(g);
		return;
	}
	snprintf(reason, sizeof(reason), "re-adopted (pid %d%s%s)", g->pid,
	         st && strcmp(st, "running") ? ", QEMU status " : "",
	         st && strcmp(st, "running") ? st : "");
	sv_guest_transition(g, st && strcmp(st, "running") == 0 ? SV_RUNNING : SV_PAUSED, reason);
	sv_hotplug_reconcile(g);
}

void sv_adopted_qmp_ready(struct sv_guest *g)
{
	if (qmp_client_execute(g->qmp, "query-status", NULL, 0, on_query_status, g) < 0)
		sv_adopted_qmp_lost(g, UV_EIO);
}

void sv_adopted_qmp_lost(struct sv_guest *g, int status)
{
	if (!g->adopting)
		return;
	g->adopting = false;
	sv_log(SV_LOG_ERR, g->name, "cannot recover QMP of pid %d (%s); killing it so that "
	       "the guest never runs twice", g->pid, qmp_strerror(status));
	sv_adopted_signal(g, SIGKILL);
}

/* Watch a verified live QEMU and reconnect to it. */
static void adopt(struct sv_guest *g, json_t *saved, int pid, int pidfd)
{
	g->pid = pid;
	g->pidfd = pidfd;
	sv_hotplug_import(g, json_object_get(saved, "hotplug"));
	g->adopted = g->adopting = true;
	g->proc_starttime = sv_proc_starttime(pid);
	g->run_profile = g->profile;
	g->run_digest = strtoull(json_string_value(json_object_get(saved, "digest")) ?: "0",
	                         NULL, 16);
	snprintf(g->accel, sizeof(g->accel), "%s",
	         json_string_value(json_object_get(saved, "accel")) ?: "");
	int64_t started = json_integer_value(json_object_get(saved, "started"));
	int64_t ago = started > 0 ? wall_ms() - started : 0;
	uint64_t now = uv_now(g->d->loop);
	g->started_ms = ago > 0 && (uint64_t)ago < now ? now - (uint64_t)ago : 1;
	g->pidfd_poll = calloc(1, sizeof(*g->pidfd_poll));
	if (g->pidfd_poll && uv_poll_init(g->d->loop, g->pidfd_poll, pidfd) == 0) {
		g->pidfd_poll->data = g;
		g->handles++;
		uv_poll_start(g->pidfd_poll, UV_READABLE, on_pidfd);
	} else {
		free(g->pidfd_poll);
		g->pidfd_poll = NULL;
	}
	char reason[96];
	snprintf(reason, sizeof(reason), "re-adopting QEMU pid %d", pid);
	sv_guest_transition(g, SV_STARTING, reason);
	sv_guest_qmp_connect(g);
}

/* The QEMU recorded for g is gone (or is not g's any more): account for the
 * ending while qsupd was down. */
static void ended_while_down(struct sv_guest *g, json_t *saved, int pid, const char *why)
{
	const char *was = json_string_value(json_object_get(saved, "state"));
	enum sv_exit_class c = SV_EXIT_CRASH;
	const char *what = "QEMU ended while qsupd was down (no SHUTDOWN recorded)";
	if (json_is_true(json_object_get(saved, "panicked"))) {
		c = SV_EXIT_PANIC;
		what = "guest panicked while qsupd was down";
	} else if (json_is_true(json_object_get(saved, "guest_shutdown"))) {
		c = SV_EXIT_POWEROFF;
		what = "guest powered off while qsupd was down";
	} else if (was && strcmp(was, "stopping") == 0) {
		c = SV_EXIT_OPERATOR;
		what = "stopped by operator (ended while qsupd was down)";
	} else if (was && strcmp(was, "migrating") == 0) {
		/* It may well run on the destination now: never restart it here. */
		c = SV_EXIT_OPERATOR;
		what = "QEMU ended during a migration while qsupd was down; not restarted "
		       "(the guest may run on the destination)";
	} else if (was && strcmp(was, "incoming") == 0) {
		c = SV_EXIT_INCOMING;
		what = "QEMU ended during an incoming migration while qsupd was down";
	}
	sv_log(SV_LOG_WARN, g->name, "pid %d %s: %s", pid, why, what);
	g->started_ms = 0;
	sv_guest_ended(g, c, what);
}

static enum sv_exit_class class_by_name(const char *s)
{
	for (int c = SV_EXIT_NONE; c <= SV_EXIT_INCOMING; c++)
		if (s && strcmp(s, sv_exit_class_name(c)) == 0)
			return c;
	return SV_EXIT_NONE;
}

void sv_state_restore(struct sv_guest *g)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/state.json", g->rundir);
	json_t *saved = json_load_file(path, 0, NULL);
	if (!json_is_object(saved)) {
		json_decref(saved);
		return;
	}
	g->rs.total = (unsigned)json_integer_value(json_object_get(saved, "restarts"));
	g->rs.consecutive = (unsigned)json_integer_value(json_object_get(saved, "consecutive"));
	g->last_exit = class_by_name(json_string_value(json_object_get(saved, "last_exit")));
	g->guest_shutdown = json_is_true(json_object_get(saved, "guest_shutdown"));
	g->shutdown_seen = json_is_true(json_object_get(saved, "shutdown_seen"));
	snprintf(g->shutdown_reason, sizeof(g->shutdown_reason), "%s",
	         json_string_value(json_object_get(saved, "shutdown_reason")) ?: "");
	g->panicked = json_is_true(json_object_get(saved, "panicked"));
	sv_passthrough_restore(g, saved);
	int pid = (int)json_integer_value(json_object_get(saved, "pid"));
	unsigned long long start = (unsigned long long)json_integer_value(
	        json_object_get(saved, "starttime"));
	const char *was = json_string_value(json_object_get(saved, "state"));
	if (pid > 0) {
		unsigned long long now_start = sv_proc_starttime(pid);
		int fd = -1;
		if (now_start == 0)
			ended_while_down(g, saved, pid, "is gone");
		else if (now_start != start || !sv_proc_is_guest(pid, g->name))
			ended_while_down(g, saved, pid, "now belongs to another process (not touched)");
		else if ((fd = pidfd_open(pid, 0)) < 0)
			ended_while_down(g, saved, pid, "is gone");
		else
			adopt(g, saved, pid, fd);
	} else if (was && strcmp(was, "failed") == 0) {
		sv_guest_transition(g, SV_FAILED, "failed before qsupd restarted "
		                    "(reset-failed or start re-arms it)");
	} else if (was && strcmp(was, "migrated") == 0) {
		/* It runs elsewhere: never autostarted here. */
		sv_guest_transition(g, SV_MIGRATED, "migrated away before qsupd restarted");
	}
	json_decref(saved);
}
