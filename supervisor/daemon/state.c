/* The state file and re-adoption: see state.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "guest_int.h"
#include "hotplug.h"
#include "jsonout.h"
#include "tune.h"
#include "lock.h"
#include "log.h"
#include "passthrough.h"
#include "state.h"
#include "statedir.h"
#include "sysutil.h"

/* ---- writing ---- */

struct save_job {
	uv_work_t work;
	struct sv_guest *g;
	char rundir[4096];
	char *text;
	int err;
};

/* Tell the waits in *head, in order, each taken out first: a done may
 * cancel a wait further on, or ask a new one (which joins the next write). */
static void tell_waiters(struct sv_guest *g, struct sv_persist_wait **head, int err)
{
	struct sv_persist_wait *w;
	while ((w = *head)) {
		*head = w->next;
		w->next = NULL;
		w->done(w, g, err);
	}
}

/* Move g's waits onto the write about to begin. */
static void waiters_to_writing(struct sv_guest *g)
{
	struct sv_persist_wait **tail = &g->state_writing;
	while (*tail)
		tail = &(*tail)->next;
	*tail = g->state_waiters;
	g->state_waiters = NULL;
}

static int64_t wall_ms(void)
{
	uv_timeval64_t tv;
	uv_gettimeofday(&tv);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* A loop time (uv_now) as wall-clock ms, and back (0: not representable). */
static int64_t to_wall(struct sv_guest *g, uint64_t t)
{
	uint64_t now = uv_now(g->env->loop);
	return wall_ms() - (int64_t)(now - t);
}

static uint64_t from_wall(struct sv_guest *g, int64_t w)
{
	int64_t ago = wall_ms() - w;
	uint64_t now = uv_now(g->env->loop);
	return ago >= 0 && (uint64_t)ago < now ? now - (uint64_t)ago : 0;
}

static json_t *restart_times_json(struct sv_guest *g)
{
	uint64_t t[64];
	unsigned n = sv_restart_times(&g->rs, t, 64);
	json_t *list = json_array();
	for (unsigned i = 0; i < n; i++)
		json_array_append_new(list, json_integer((json_int_t)to_wall(g, t[i])));
	return list;
}

static json_t *state_json(struct sv_guest *g)
{
	char digest[17];
	snprintf(digest, sizeof(digest), "%016" PRIx64, g->run_profile ? g->run_digest : g->digest);
	int64_t started = sv_guest_active(g) && g->started_ms ? to_wall(g, g->started_ms) : 0;
	json_t *o = json_pack("{s:i, s:s, s:i, s:I, s:s, s:i, s:i, s:s, s:s, s:s, s:I, s:s, "
	                      "s:b, s:b, s:b, s:s, s:o, s:o, s:I, s:I}",
	                      "version", 2, "name", g->name, "pid", g->pid,
	                      "starttime", (json_int_t)g->proc_starttime, "digest", digest,
	                      "restarts", (int)g->rs.total, "consecutive", (int)g->rs.consecutive,
	                      "last_exit", sv_exit_class_name(g->last_exit),
	                      "state", sv_state_name(g->state), "reason", g->reason,
	                      "started", (json_int_t)started, "accel", g->accel,
	                      "guest_shutdown", g->guest_shutdown, "shutdown_seen", g->shutdown_seen,
	                      "panicked", g->panicked, "shutdown_reason", g->shutdown_reason,
	                      "hotplug", sv_hotplug_export(g),
	                      "restart_times", restart_times_json(g),
	                      "uid", (json_int_t)g->ident.uid, "gid", (json_int_t)g->ident.gid);
	json_t *tune = o ? sv_tune_export(g) : NULL;
	if (tune)
		json_object_set_new(o, "tune", tune);
	if (o && g->internal_error)
		json_object_set_new(o, "internal_error", json_true());
	/* Whether an outgoing migration or save may run: written before QEMU
	 * is asked for one, so that a re-adopting qsupd asks QEMU only then. */
	if (o)
		json_object_set_new(o, "mig_out", json_boolean(g->mig_out));
	if (o && g->state == SV_BACKOFF)
		json_object_set_new(o, "next_start", json_integer(to_wall(g, g->next_start_ms)));
	if (o && g->operator_stop_ms)
		json_object_set_new(o, "operator_stop", json_integer(g->operator_stop_ms));
	if (o && g->autostart_boot[0])
		json_object_set_new(o, "autostart_boot", json_string(g->autostart_boot));
	if (o) {   /* the guest's log file: where this run's output begins */
		json_object_set_new(o, "log_offset", json_integer((json_int_t)g->log_offset));
		json_object_set_new(o, "log_ino", json_integer((json_int_t)g->log_ino));
		if (g->last_tail)
			json_object_set(o, "log_tail", g->last_tail);
	}
	sv_passthrough_save(g, o);
	return o;
}

/* No fsync, here or for the intent (prepare.c): the file only matters to a
 * later qsupd on this same boot, since the QEMUs do not outlive the host.
 * Once rename() has returned, the new file is the kernel's, and a qsupd
 * that dies (even by SIGKILL) loses nothing of it; only a host crash could,
 * and it takes the QEMUs with it (the run dir is a tmpfs by default, where
 * fsync does nothing anyway). */
static void save_work(uv_work_t *w)
{
	struct save_job *j = w->data;
	j->err = sv_state_file_write(j->rundir, ".state.json.tmp", j->text);
}

static void queue_dirty(struct sv_guest *g);
static void save_text(struct sv_guest *g, char *text);
static void write_over(struct sv_guest *g, int err);

static void save_done(uv_work_t *w, int status)
{
	struct save_job *j = w->data;
	struct sv_guest *g = j->g;
	(void)status;
	if (j->err && !g->freeing)
		sv_log(SV_LOG_WARN, g->name, "cannot write %s/state.json: %s", j->rundir,
		       strerror(j->err));
	int err = j->err ? -j->err : 0;
	free(j->text);
	free(j);
	write_over(g, err);
	sv_guest_unhold(g);
}

/* The write in flight (a save's or the caller's own) is over, err its
 * outcome: tell its waits; write again what changed meanwhile. */
static void write_over(struct sv_guest *g, int err)
{
	g->state_busy = false;
	/* Changed while this write was in flight: written again, after the
	 * waits are told (a done that asks for a write meanwhile finds it due). */
	bool again = g->state_dirty && !g->freeing;
	tell_waiters(g, &g->state_writing, err);
	if (again) {
		queue_dirty(g);
	} else if (g->state_last) {   /* qsupd exits: what changed during this write */
		char *text = g->state_last;
		g->state_last = NULL;
		save_text(g, text);
	}
	if (g->freeing)   /* nothing more is written for it */
		tell_waiters(g, &g->state_waiters, -ECANCELED);
}

char *sv_state_own_begin(struct sv_guest *g)
{
	char *text = sv_state_text(g);
	g->state_own = false;
	if (!text || g->state_busy)
		return text;   /* beside the write in flight, which is written again after */
	/* The caller's write is the one that was due: its waits wait for it,
	 * and nothing else is written until it is over. */
	g->state_own = true;
	g->state_busy = true;
	g->state_dirty = false;
	waiters_to_writing(g);
	return text;
}

void sv_state_own_end(struct sv_guest *g, int err)
{
	if (!g->state_own)
		return;
	g->state_own = false;
	if (err) {
		/* Not written: its waits go back to the front, for the write
		 * that is due now. */
		struct sv_persist_wait **tail = &g->state_writing;
		while (*tail)
			tail = &(*tail)->next;
		*tail = g->state_waiters;
		g->state_waiters = g->state_writing;
		g->state_writing = NULL;
		g->state_dirty = true;
	}
	write_over(g, 0);
}

char *sv_state_text(struct sv_guest *g)
{
	json_t *js = state_json(g);
	struct sv_jsonbuf b = { 0 };
	size_t len;
	sv_jsonbuf_value(&b, js);   /* json_dumps' bytes, written faster (jsonout.h) */
	json_decref(js);
	return sv_jsonbuf_take(&b, &len);
}

/* Write g's state now, on the thread pool (g is not busy). */
static void save_now(struct sv_guest *g)
{
	waiters_to_writing(g);
	g->state_dirty = false;
	save_text(g, sv_state_text(g));
}

/* Write text (taken; NULL: out of memory) as g's state, on the pool. */
static void save_text(struct sv_guest *g, char *text)
{
	struct save_job *j = text ? calloc(1, sizeof(*j)) : NULL;
	if (!j) {
		free(text);
		tell_waiters(g, &g->state_writing, -ENOMEM);
		return;
	}
	j->text = text;
	snprintf(j->rundir, sizeof(j->rundir), "%s", g->rundir);
	j->g = g;
	j->work.data = j;
	g->state_busy = true;
	sv_guest_hold(g);
	if (uv_queue_work(g->env->loop, &j->work, save_work, save_done) < 0) {
		free(j->text);
		free(j);
		g->state_busy = false;
		tell_waiters(g, &g->state_writing, -ENOMEM);
		sv_guest_unhold(g);
	}
}

/* The guests whose state changed this loop turn are written when it ends
 * (a timer of 0 ms: the loop does not block in between), each once however
 * many transitions it made. */
static void on_flush(uv_timer_t *t)
{
	struct sv_daemon *d = t->data;
	size_t n = d->ndirty;
	struct sv_guest **v = d->dirty;
	d->dirty = NULL;
	d->ndirty = d->dirty_cap = 0;
	for (size_t i = 0; i < n; i++) {
		struct sv_guest *g = v[i];
		if (!g->freeing && g->state_dirty && !g->state_busy)
			save_now(g);
		else if (g->freeing)   /* never written now */
			tell_waiters(g, &g->state_waiters, -ECANCELED);
		sv_guest_unhold(g);
	}
	free(v);
}

static void queue_dirty(struct sv_guest *g)
{
	struct sv_daemon *d = g->env->owner;
	if (!d->flush_ready) {   /* not a daemon's guest (tests): at once */
		save_now(g);
		return;
	}
	if (d->ndirty == d->dirty_cap) {
		size_t cap = d->dirty_cap ? d->dirty_cap * 2 : 16;
		struct sv_guest **v = realloc(d->dirty, cap * sizeof(*v));
		if (!v) {
			save_now(g);
			return;
		}
		d->dirty = v;
		d->dirty_cap = cap;
	}
	sv_guest_hold(g);
	d->dirty[d->ndirty++] = g;
	if (!uv_is_active((uv_handle_t *)&d->flush))
		uv_timer_start(&d->flush, on_flush, 0, 0);
}

void sv_state_save(struct sv_guest *g)
{
	if (g->state_dirty)
		return;   /* queued already, or due once the write in flight is done */
	g->state_dirty = true;
	if (!g->state_busy)
		queue_dirty(g);
}

void sv_state_save_then(struct sv_guest *g, struct sv_persist_wait *w)
{
	struct sv_persist_wait **tail = &g->state_waiters;
	w->next = NULL;
	while (*tail)
		tail = &(*tail)->next;
	*tail = w;
	/* A write in flight began before this call: the next one (due once
	 * it ends) takes the waiter. */
	sv_state_save(g);
}

void sv_state_flush_init(struct sv_daemon *d)
{
	uv_timer_init(d->loop, &d->flush);
	d->flush.data = d;
	d->flush_ready = true;
}

void sv_state_flush_guest(struct sv_guest *g)
{
	if (g->state_dirty && !g->state_busy)
		save_now(g);
}

void sv_state_flush_stop(struct sv_daemon *d)
{
	if (!d->flush_ready)
		return;
	d->flush_ready = false;
	uv_timer_stop(&d->flush);
	on_flush(&d->flush);   /* the last changes still go out */
	/* A change made while a write was in flight is due once that write is
	 * done, and the guest is released before then (its features with it):
	 * its record is taken now, and written then. */
	for (size_t i = 0; i < d->nguests; i++) {
		struct sv_guest *g = d->guests[i];
		if (g->state_busy && g->state_dirty && !g->freeing) {
			free(g->state_last);
			g->state_last = sv_state_text(g);
			g->state_dirty = false;
		}
	}
	uv_close((uv_handle_t *)&d->flush, NULL);
}

static void set_ident(struct sv_guest *g, uid_t uid, gid_t gid)
{
	g->ident.uid = uid;
	g->ident.gid = gid;
	g->ident.drop = uid != geteuid();
	g->ident.dynamic = uid - g->env->idc->first < g->env->idc->count;
}

/* QEMU's identity, from /proc/PID/status. */
static bool status_id(const char *text, const char *key, unsigned *out)
{
	const char *p = strstr(text, key);   /* "\nUid:\treal\teffective\t..." */
	char *end;
	if (!p)
		return false;
	p += strlen(key);
	strtoul(p, &end, 10);   /* the real id */
	unsigned long v = strtoul(end, &end, 10);
	if (end == p || v > UINT_MAX)
		return false;
	*out = (unsigned)v;
	return true;
}

static void read_ident(struct sv_guest *g, int pid)
{
	char path[64], text[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, text, sizeof(text) - 1);   /* Uid and Gid are in the first lines */
	close(fd);
	if (n <= 0)
		return;
	text[n] = '\0';
	uid_t uid = g->ident.uid;
	gid_t gid = g->ident.gid;
	status_id(text, "\nUid:", &uid);
	status_id(text, "\nGid:", &gid);
	set_ident(g, uid, gid);
}

/* Watch a verified live QEMU and reconnect to it. saved may be NULL (a
 * damaged or missing state file). */
static void adopt(struct sv_guest *g, json_t *saved, int pid, unsigned long long start,
                  int pidfd)
{
	g->pid = pid;
	g->pidfd = pidfd;
	sv_hotplug_import(g, json_object_get(saved, "hotplug"));
	sv_tune_import(g, json_object_get(saved, "tune"));
	g->adopted = g->adopting = true;
	g->proc_starttime = start;
	/* query-migrate costs QEMU more than the rest of a re-adoption: asked
	 * only where a migration may run (or the record is older than the
	 * mig_out key, or gone). */
	json_t *mo = json_object_get(saved, "mig_out");
	g->mig_out = json_is_true(mo);
	g->adopt_ask_mig = g->mig_out || !json_is_boolean(mo);
	g->run_profile = g->profile;
	const char *digest = json_string_value(json_object_get(saved, "digest"));
	g->run_digest = digest ? strtoull(digest, NULL, 16) : g->digest;
	snprintf(g->accel, sizeof(g->accel), "%s",
	         sv_jstr(saved, "accel", ""));
	if (!g->accel[0])
		sv_proc_arg_after(pid, "-accel", g->accel, sizeof(g->accel));
	json_t *uid = json_object_get(saved, "uid"), *gid = json_object_get(saved, "gid");
	if (json_integer_value(json_object_get(saved, "pid")) == pid &&
	    (unsigned long long)json_integer_value(json_object_get(saved, "starttime")) == start &&
	    json_is_integer(uid) && json_is_integer(gid))
		/* Recorded for this very process (qsupd sets it before the exec,
		 * and QEMU never changes it): no need to ask /proc. */
		set_ident(g, (uid_t)json_integer_value(uid), (gid_t)json_integer_value(gid));
	else
		read_ident(g, pid);
	int64_t started = json_integer_value(json_object_get(saved, "started"));
	uint64_t now = uv_now(g->env->loop), at = 0;
	if (started > 0)
		at = from_wall(g, started);
	else   /* the process's own start, in clock ticks since boot */
		at = g->proc_starttime * 1000 / (uint64_t)sysconf(_SC_CLK_TCK);
	g->started_ms = at && at <= now ? at : 1;
	sv_adopted_watch(g);
	g->run_pid = pid;
	sv_guest_log_line(g, "re-adopting QEMU pid %d (qsupd restarted)", pid);
	char reason[96];
	snprintf(reason, sizeof(reason), "re-adopting QEMU pid %d", pid);
	/* Not written: state.json goes on saying what the guest was (a qsupd
	 * killed now finds the same), and adopt.c writes what QEMU says only
	 * where that differs. */
	snprintf(g->adopt_was, sizeof(g->adopt_was), "%s", sv_jstr(saved, "state", ""));
	g->persist_quiet = true;
	sv_guest_transition(g, SV_STARTING, reason);
	g->persist_quiet = false;
	sv_adopted_connect(g);
}

/* The QEMU recorded for g is gone (or is not g's any more): account for the
 * ending while qsupd was down. */
static void ended_while_down(struct sv_guest *g, json_t *saved, int pid, const char *why)
{
	const char *was = json_string_value(json_object_get(saved, "state"));
	enum sv_exit_class c = SV_EXIT_CRASH;
	const char *what = "QEMU ended while qsupd was down (no SHUTDOWN recorded)";
	if (json_is_true(json_object_get(saved, "internal_error"))) {
		c = SV_EXIT_INTERNAL_ERROR;
		what = "crashed: QEMU internal error (run state internal-error); QEMU ended "
		       "while qsupd was down";
	} else if (json_is_true(json_object_get(saved, "panicked"))) {
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
	sv_log_event(SV_LOG_WARN, g->name, SV_MSGID_EXITED, "pid %d %s: %s", pid, why, what);
	g->started_ms = g->up_ms = 0;
	g->run_pid = pid;
	char tail[8];
	sv_guest_run_tail(g, tail, sizeof(tail));   /* what it left, for status */
	/* Someone else runs the guest now: not ours to restart. (A holder that
	 * is itself gone is our dead QEMU still letting go of its fds: the
	 * restart's own start takes the lock once it has.) */
	int holder = 0;
	if (sv_guest_hold_lock(g, NULL) < 0 && c != SV_EXIT_OPERATOR && c != SV_EXIT_INCOMING &&
	    g->lock_path && sv_guest_lock_held(g->lock_path, &holder) == 1 && holder > 0 &&
	    sv_proc_starttime(holder)) {
		sv_guest_transition(g, SV_STOPPED, "another process holds the guest lock");
		return;
	}
	sv_guest_ended(g, c, what);
}

static enum sv_exit_class class_by_name(const char *s)
{
	for (int c = SV_EXIT_NONE; c <= SV_EXIT_LAST; c++)
		if (s && strcmp(s, sv_exit_class_name(c)) == 0)
			return c;
	return SV_EXIT_NONE;
}

static void restore_counters(struct sv_guest *g, json_t *saved)
{
	json_t *e;
	size_t i;
	g->rs.total = (unsigned)json_integer_value(json_object_get(saved, "restarts"));
	g->rs.consecutive = (unsigned)json_integer_value(json_object_get(saved, "consecutive"));
	g->last_exit = class_by_name(json_string_value(json_object_get(saved, "last_exit")));
	g->guest_shutdown = json_is_true(json_object_get(saved, "guest_shutdown"));
	g->shutdown_seen = json_is_true(json_object_get(saved, "shutdown_seen"));
	snprintf(g->shutdown_reason, sizeof(g->shutdown_reason), "%s",
	         sv_jstr(saved, "shutdown_reason", ""));
	g->panicked = json_is_true(json_object_get(saved, "panicked"));
	json_int_t op = json_integer_value(json_object_get(saved, "operator_stop"));
	g->operator_stop_ms = op > 0 ? op : 0;
	const char *boot = sv_jstr(saved, "autostart_boot", "");
	snprintf(g->autostart_boot, sizeof(g->autostart_boot), "%s",
	         sv_boot_id_valid(boot) ? boot : "");
	json_t *off = json_object_get(saved, "log_offset"), *tail = json_object_get(saved, "log_tail");
	g->log_offset = json_is_integer(off) ? (int64_t)json_integer_value(off) : -1;
	g->log_ino = (uint64_t)json_integer_value(json_object_get(saved, "log_ino"));
	json_decref(g->last_tail);
	g->last_tail = NULL;
	for (size_t k = 0; json_is_array(tail) && k < json_array_size(tail) && k < 64; k++) {
		if (!json_is_string(json_array_get(tail, k)))
			continue;
		if (!g->last_tail)
			g->last_tail = json_array();
		json_array_append(g->last_tail, json_array_get(tail, k));
	}
	sv_passthrough_restore(g, saved);
	/* The restart window survives qsupd restarts: a crash loop stays one. */
	json_array_foreach(json_object_get(saved, "restart_times"), i, e) {
		uint64_t t = json_is_integer(e) ? from_wall(g, json_integer_value(e)) : 0;
		if (t && g->profile)
			sv_restart_push(&g->rs, t, g->profile->restart_burst);
	}
}

/* RUNDIR/NAME/qemu, QEMU's own dir, which it holds as its fd 6. */
static void qemu_dir(struct sv_guest *g, char *buf, size_t size)
{
	snprintf(buf, size, "%s/qemu", g->rundir);
}

/* A process that is provably this guest's QEMU, started by a qsupd on this
 * run dir: alive, holding the guest lock as its fd 5 and this run dir's
 * RUNDIR/NAME/qemu as its fd 6 (another run dir's QEMU of the same profile
 * holds the lock too, and is not ours to adopt; only a QEMU qsupd spawned
 * holds both, so its command line adds nothing). Without a lock file, the
 * recorded start time and the guest's name on the command line stand in.
 * Returns its start time (clock ticks since boot), or 0 when it is not. */
static unsigned long long ours(struct sv_guest *g, int pid, unsigned long long start)
{
	unsigned long long now = pid > 0 ? sv_proc_starttime(pid) : 0;
	if (!now)
		return 0;
	if (g->lock_path) {
		char dir[4200];
		qemu_dir(g, dir, sizeof(dir));
		return sv_proc_holds_lock(pid, g->lock_path) && sv_proc_has_dir(pid, dir) ? now : 0;
	}
	return start && now == start && sv_proc_is_guest(pid, g->name) ? now : 0;
}

static int pidfile_pid(struct sv_guest *g)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/pid", g->rundir);
	FILE *f = fopen(path, "re");
	int pid = 0;
	if (f && fscanf(f, "%d", &pid) != 1)
		pid = 0;
	if (f)
		fclose(f);
	return pid;
}

/* This guest's live QEMU, from what the system shows, or 0; its start
 * time in *start. */
static int live_qemu(struct sv_guest *g, json_t *saved, unsigned long long *start)
{
	int pid = (int)json_integer_value(json_object_get(saved, "pid"));
	unsigned long long rec = (unsigned long long)json_integer_value(
	        json_object_get(saved, "starttime"));
	int holder = 0;
	if ((*start = ours(g, pid, rec)))
		return pid;
	if ((*start = ours(g, pid = pidfile_pid(g), 0)))
		return pid;
	if (!g->lock_path || sv_guest_lock_held(g->lock_path, &holder) != 1)
		return 0;
	if ((*start = ours(g, holder, 0)))
		return holder;
	/* Held, but by nobody on record: a QEMU spawned just before the last
	 * qsupd died, or one of another qsupd (then it is not found here). */
	char dir[4200];
	qemu_dir(g, dir, sizeof(dir));
	pid = sv_lock_find_holder(g->lock_path, g->name, dir);
	*start = pid > 0 ? sv_proc_starttime(pid) : 0;
	return *start ? pid : 0;
}

/* A restart that was waiting in backoff when qsupd went away. */
static void resume_backoff(struct sv_guest *g, json_t *saved)
{
	int64_t at = json_integer_value(json_object_get(saved, "next_start"));
	int64_t left = at - wall_ms();
	const char *reason = json_string_value(json_object_get(saved, "reason"));
	struct sv_error err = { 0 };
	if (sv_guest_hold_lock(g, &err) < 0) {
		sv_guest_transition(g, SV_STOPPED, err.msg);
		return;
	}
	sv_guest_backoff(g, left > 0 ? (uint64_t)left : 0, reason ? reason
	                 : "restart pending before qsupd restarted");
}

json_t *sv_state_import(struct sv_guest *g, const char *text, size_t len, char *why,
                        size_t wsize)
{
	json_error_t jerr;
	json_t *saved = json_loadb(text, len, 0, &jerr);
	if (!json_is_object(saved) || (json_object_get(saved, "name") &&
	    !json_is_string(json_object_get(saved, "name")))) {
		snprintf(why, wsize, "%s", json_is_object(saved) ? "name is not a string"
		         : saved ? "not a JSON object" : jerr.text[0] ? jerr.text : "not JSON");
		json_decref(saved);
		return NULL;
	}
	const char *name = json_string_value(json_object_get(saved, "name"));
	if (name && strcmp(name, g->name)) {
		snprintf(why, wsize, "it is guest %.64s's", name);
		json_decref(saved);
		return NULL;
	}
	restore_counters(g, saved);
	return saved;
}

/* The state file's text (at most 16 MiB), or NULL with *missing set when
 * there is none. */
static char *read_state(const char *path, size_t *len, bool *missing, char *why, size_t wsize)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	*missing = fd < 0 && errno == ENOENT;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
		snprintf(why, wsize, "%s", fd < 0 ? strerror(errno) : "not a regular file, or "
		         "too large");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	close(fd);
	if (n < 0) {
		snprintf(why, wsize, "%s", strerror(errno ? errno : ENOMEM));
		free(buf);
		return NULL;
	}
	*len = (size_t)n;
	return buf;
}

void sv_state_restore(struct sv_guest *g)
{
	char path[4200], why[300] = "";
	size_t len = 0;
	bool missing = false;
	snprintf(path, sizeof(path), "%s/state.json", g->rundir);
	char *text = read_state(path, &len, &missing, why, sizeof(why));
	json_t *saved = text ? sv_state_import(g, text, len, why, sizeof(why)) : NULL;
	free(text);
	if (!saved && !missing)
		sv_log(SV_LOG_WARN, g->name, "%s is damaged (%s); going by the guest lock and "
		       "the pid file", path, why);
	unsigned long long start = 0;
	int live = live_qemu(g, saved, &start), fd = -1;
	int pid = (int)json_integer_value(json_object_get(saved, "pid"));
	const char *was = json_string_value(json_object_get(saved, "state"));
	if (live > 0 && (fd = pidfd_open(live, 0)) >= 0)
		adopt(g, saved, live, start, fd);
	else if (pid > 0)
		ended_while_down(g, saved, pid, live > 0 || sv_proc_starttime(pid) ?
		                 "now belongs to another process (not touched)" : "is gone");
	else if (was && strcmp(was, "starting") == 0)
		g->pending_start = true;   /* cut short before the spawn: run it */
	else if (was && strcmp(was, "backoff") == 0)
		resume_backoff(g, saved);
	else if (was && strcmp(was, "failed") == 0)
		sv_guest_transition(g, SV_FAILED, "failed before qsupd restarted "
		                    "(reset-failed or start re-arms it)");
	else if (was && strcmp(was, "migrated") == 0)
		/* It runs elsewhere: never autostarted here. */
		sv_guest_transition(g, SV_MIGRATED, "migrated away before qsupd restarted");
	json_decref(saved);
}
