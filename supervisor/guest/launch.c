/*
 * Starting a guest's QEMU: the checks of a start request, the guest lock,
 * preparation (prepare.c), then the spawn: qsupd binds the QMP and serial
 * sockets itself and QEMU inherits them as fds 3 and 4, with the guest lock
 * as fd 5, its own dir as fd 6, and every file and tap of the profile from
 * fd 7 (argv.h). QEMU runs -S in its own session with a scrubbed
 * environment, its stdout and stderr appended to the guest's log file
 * LOGDIR/NAME.log (runlog.c), "/" as its cwd, and, under a root qsupd, as
 * its own identity (identity.h). The start has a deadline
 * ([qemu] start-timeout) from the spawn until the guest runs: a QEMU that
 * never answers QMP is killed and the start counts as failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "argv.h"
#include "guest_int.h"
#include "lock.h"
#include "log.h"
#include "machine.h"
#include "prepare.h"
#include "sysutil.h"

static int bind_listen(const char *path, struct sv_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sv_error_set(err, -errno, "socket: %s", strerror(errno));
	unlink(path);
	/* Only root (qsupd) may connect: QEMU has the listening socket. */
	mode_t old = umask(077);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 8) < 0) {
		int e = errno;
		close(fd);
		return sv_error_set(err, -e, "%s: %s", path, strerror(e));
	}
	return fd;
}

static void write_pidfile(struct sv_guest *g)
{
	char path[4200], text[32];
	snprintf(path, sizeof(path), "%s/pid", g->rundir);
	int n = snprintf(text, sizeof(text), "%d\n", g->pid);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || write(fd, text, (size_t)n) != n)
		sv_log(SV_LOG_WARN, g->name, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	sv_guest_qemu_gone(p->data, status, sig);
}

static int spawn(struct sv_guest *g, int qmp_fd, int serial_fd, struct sv_error *err)
{
	char **argv = g->start_argv.argv;
	size_t n = SV_FD_FIRST + g->start_argv.nfds;
	/* A log that cannot be opened never fails the start: libuv gives
	 * QEMU /dev/null instead (runlog.c has said why). */
	int logfd = sv_guest_log_qemu_fd(g);
	uv_stdio_container_t *stdio = calloc(n, sizeof(*stdio));
	g->proc = calloc(1, sizeof(*g->proc));
	if (!stdio || !g->proc) {
		free(stdio);
		free(g->proc);
		g->proc = NULL;
		if (logfd >= 0)
			close(logfd);
		return sv_error_set(err, -ENOMEM, "out of memory");
	}
	int inherit[SV_FD_FIRST] = { -1, logfd, logfd, qmp_fd, serial_fd, g->lock_fd,
	                             sv_prepare_qemudir_fd(g) };
	for (size_t i = 0; i < n; i++) {
		int fd = i < SV_FD_FIRST ? inherit[i] : g->pass_fds[i - SV_FD_FIRST];
		stdio[i].flags = fd >= 0 ? UV_INHERIT_FD : UV_IGNORE;
		stdio[i].data.fd = fd;
	}
	static char *env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	                       "LC_ALL=C", NULL };
	uv_process_options_t o = {
		.exit_cb = on_exit_cb, .file = argv[0], .args = argv, .env = env, .cwd = "/",
		.stdio = stdio, .stdio_count = (int)n, .flags = UV_PROCESS_DETACHED,
	};
	if (g->ident.drop) {
		/* libuv drops the supplementary groups too (setgroups(0)). */
		o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
		o.uid = g->ident.uid;
		o.gid = g->ident.gid;
	}
	g->proc->data = g;
	int rc = uv_spawn(g->env->loop, g->proc, &o);
	if (logfd >= 0)
		close(logfd);
	free(stdio);
	sv_guest_hold(g);
	if (rc < 0) {
		sv_guest_close_proc(g);
		return sv_error_set(err, rc, "cannot run %s: %s", argv[0], uv_strerror(rc));
	}
	g->pid = g->proc->pid;
	return 0;
}

/* A start that ended before QEMU ran (preparation or spawn failed, or the
 * operator cancelled it). A failed incoming start (migration or restore)
 * counts as the incoming migration's failure, as when its QEMU exits: never
 * restarted here (a fresh boot while the source still runs the guest would
 * run it twice), and the migration it was for is over. */
static void fail_start(struct sv_guest *g, enum sv_exit_class c, const char *why)
{
	bool incoming = g->state == SV_INCOMING;
	if (incoming && c == SV_EXIT_START_FAILURE)
		c = SV_EXIT_INCOMING;
	sv_log_event(SV_LOG_WARN, g->name, SV_MSGID_EXITED, "%s", why);
	sv_prepare_close_fds(g);
	sv_argv_free(&g->start_argv);
	sv_guest_ended(g, c, why);
	const struct sv_guest_observer *o;
	for (size_t i = 0; incoming && (o = sv_observer(g, i)); i++)
		if (o->start_failed)
			o->start_failed(g);   /* the migration answers its request, with why */
}

static void on_deadline(uv_timer_t *t)
{
	struct sv_guest *g = t->data;
	if (!sv_guest_active(g) || !sv_state_is_launching(g->state) || g->adopting)
		return;
	snprintf(g->start_fail, sizeof(g->start_fail), "it was not running within %llus "
	         "([qemu] start-timeout)", (unsigned long long)(g->run_profile
	         ? g->run_profile->start_timeout_ms / 1000 : 0));
	sv_log(SV_LOG_ERR, g->name, "%s; killing it", g->start_fail);
	sv_guest_signal(g, SIGKILL);
}

void sv_guest_start_failed(struct sv_guest *g, const char *why)
{
	/* A guest being released (qsupd's exit) keeps its QEMU whatever its
	 * start was doing: closing QMP fails a cont in flight, which is no
	 * failed start. The next qsupd finds it in prelaunch and starts the
	 * guest afresh. */
	if (!sv_guest_active(g) || g->start_fail[0] || g->freeing)
		return;
	snprintf(g->start_fail, sizeof(g->start_fail), "%s", why);
	sv_log(SV_LOG_ERR, g->name, "%s; killing QEMU", why);
	sv_guest_signal(g, SIGKILL);
}

/* Preparation done: bind the sockets, spawn QEMU, connect QMP. */
static void launch(struct sv_guest *g)
{
	struct sv_error err = { 0 };
	int qfd = bind_listen(g->qmp_path, &err);
	int sfd = qfd < 0 ? -1 : bind_listen(g->serial_path, &err);
	int rc = sfd < 0 ? err.code : spawn(g, qfd, sfd, &err);
	if (qfd >= 0)
		close(qfd);
	if (sfd >= 0)
		close(sfd);
	if (rc < 0) {
		char why[600];
		snprintf(why, sizeof(why), "start failed: %s", err.msg);
		fail_start(g, SV_EXIT_START_FAILURE, why);
		return;
	}
	sv_prepare_close_fds(g);   /* QEMU has them now */
	sv_argv_free(&g->start_argv);
	g->started_ms = uv_now(g->env->loop);
	write_pidfile(g);
	sv_guest_lock_set_pid(g->lock_fd, g->pid);
	g->proc_starttime = sv_proc_starttime(g->pid);
	sv_guest_persist(g);
	char who[64] = "";
	if (g->ident.drop)
		snprintf(who, sizeof(who), ", uid %u gid %u", (unsigned)g->ident.uid,
		         (unsigned)g->ident.gid);
	sv_log_event(SV_LOG_INFO, g->name, SV_MSGID_STARTED, "QEMU started (pid %d, %s%s)",
	             g->pid, g->accel, who);
	g->run_pid = g->pid;
	sv_guest_log_line(g, "QEMU pid %d (%s%s)", g->pid, g->accel, who);
	uv_timer_start(&g->deadline, on_deadline, g->run_profile->start_timeout_ms, 0);
	sv_guest_qmp_connect(g, false);
}

void sv_guest_prepared(struct sv_guest *g, int status, const char *msg)
{
	g->prepping = false;
	if (g->prep_abort)
		fail_start(g, SV_EXIT_OPERATOR, "start cancelled by operator");
	else if (status < 0)
		fail_start(g, SV_EXIT_START_FAILURE, msg);
	else
		launch(g);
}

static void facts_at(struct sv_guest *g, const char *run_dir, bool incoming,
                     struct sv_facts *f)
{
	sv_facts_init(f, run_dir, g->name);
	f->kvm_usable = g->env->kvm_usable && g->env->kvm_usable(g->env->owner);
	f->qmp_fd = SV_FD_QMP;
	f->serial_fd = SV_FD_SERIAL;
	f->agent_pass = true;
	f->incoming = incoming;
	f->net_bridge = g->env->net_bridge;
	f->net_ctx = g->env->net_ctx;
	f->vhost_net = g->env->vhost_net;
}

void sv_guest_facts(struct sv_guest *g, bool incoming, struct sv_facts *f)
{
	facts_at(g, g->env->run_dir, incoming, f);
}

int sv_guest_argv(struct sv_guest *g, const struct sv_profile *p, const char *run_dir,
                  bool incoming, struct sv_argv *out, struct sv_error *err)
{
	struct sv_facts f;
	facts_at(g, run_dir, incoming, &f);
	return sv_argv_build(p, &f, out, err);
}

void sv_guest_start_done(struct sv_guest *g)
{
	uv_timer_stop(&g->deadline);
	/* A run counts as stable (restart.h) from here: the time its start took
	 * (long on a loaded host) is no proof that the guest keeps running. */
	g->up_ms = g->adopted ? g->started_ms : uv_now(g->env->loop);
}

/* RUNDIR/NAME: qsupd's own files for the guest (root's; QEMU gets fds). */
static int prepare_rundir(struct sv_guest *g, struct sv_error *err)
{
	struct stat st;
	if (mkdir(g->rundir, 0755) < 0 && errno != EEXIST)
		return sv_error_set(err, -errno, "%s: %s", g->rundir, strerror(errno));
	if (lstat(g->rundir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return sv_error_set(err, -EPERM, "%s: not a directory of uid %u", g->rundir,
		                    (unsigned)geteuid());
	return 0;
}

int sv_guest_hold_lock(struct sv_guest *g, struct sv_error *err)
{
	if (g->lock_fd >= 0)
		return 0;
	if (!g->lock_path)
		return sv_error_set(err, -ENOENT, "%s: no guest lock (its profile's directory "
		                    "cannot be found)", g->name);
	int fd = sv_guest_lock_take(g->lock_path, g->name, err);
	if (fd < 0)
		return fd;
	g->lock_fd = fd;
	return 0;
}

void sv_guest_lock_drop(struct sv_guest *g)
{
	if (g->lock_fd >= 0 && !sv_guest_active(g) && !g->prepping)
		sv_guest_lock_release(g->lock_path, g->lock_fd);
	if (!sv_guest_active(g) && !g->prepping)
		g->lock_fd = -1;
}

/* The managed networks are up (or not): on to the preparation. */
static void networks_done(struct sv_guest *g, int rc, const char *msg)
{
	if (g->freeing) {
		sv_guest_unhold(g);
		return;
	}
	sv_guest_unhold(g);
	if (g->prep_abort) {
		sv_guest_prepared(g, -ECANCELED, "start cancelled by operator");
	} else if (rc < 0) {
		char m[700];
		snprintf(m, sizeof(m), "start failed: %s", msg ? msg : strerror(-rc));
		g->start_config_error = true;   /* the same every time: no retry */
		sv_guest_prepared(g, rc, m);
	} else {
		sv_prepare_run(g);
	}
}

int sv_guest_start(struct sv_guest *g, struct sv_request *req, struct sv_error *err)
{
	char why[sizeof(g->start_why)];
	snprintf(why, sizeof(why), "%s", g->start_why);   /* for this start only */
	g->start_why[0] = '\0';
	bool by_policy = g->policy_start;
	g->policy_start = false;
	bool can = g->start_incoming ? sv_state_can_receive(g->state)
	                             : sv_state_can_start(g->state);
	if (!can)
		return sv_error_set(err, -EBUSY, "%s is %s", g->name, sv_state_name(g->state));
	if (sv_guest_active(g) || g->prepping)
		return sv_error_set(err, -EBUSY, "%s: its QEMU is still there", g->name);
	if (!g->profile)
		return sv_error_set(err, -ENOENT, "%s: its profile was removed", g->name);
	if (g->busy_op)
		return sv_error_set(err, -EBUSY, "%s: a %s runs on its disks; start it once "
		                    "that is over", g->name, g->busy_op);
	if (prepare_rundir(g, err) < 0)
		return err ? err->code : -EIO;
	/* The command line now, without backing chains: a profile this host
	 * cannot run is refused before anything happens. */
	int rc = sv_guest_argv(g, g->profile, g->env->run_dir, g->start_incoming, &g->start_argv,
	                       err);
	if (rc < 0)
		return rc;
	if ((rc = sv_guest_hold_lock(g, err)) < 0) {
		sv_argv_free(&g->start_argv);
		return rc;
	}
	for (size_t i = 0; i < g->start_argv.warnings.n; i++)
		sv_log(SV_LOG_WARN, g->name, "%s", g->start_argv.warnings.v[i]);
	snprintf(g->accel, sizeof(g->accel), "%s",
	         g->start_argv.accel == SV_ACCEL_KVM ? "kvm" : "tcg");
	uv_timer_stop(&g->timer);   /* a pending restart, if any */
	g->guest_shutdown = g->force_kill = g->panicked = g->shutdown_seen = false;
	g->internal_error = false;
	g->io_disk[0] = g->io_error[0] = g->io_op[0] = '\0';
	g->shutdown_reason[0] = g->start_fail[0] = '\0';
	g->start_config_error = false;
	g->run_by_policy = by_policy;
	const struct sv_guest_observer *o;
	for (size_t i = 0; (o = sv_observer(g, i)); i++)
		if (o->qemu_new)
			o->qemu_new(g);   /* no passthrough yet, say */
	g->run_profile = g->profile;
	g->run_digest = g->digest;
	sv_guest_log_begin(g, why);   /* the start line, before anything can fail */
	sv_guest_transition(g, g->start_incoming ? SV_INCOMING : SV_STARTING,
	                    g->start_incoming ? "waiting for an incoming migration"
	                                      : "start requested");
	sv_guest_add_waiter(g, req, SV_WAIT_RUNNING);
	g->prepping = true;
	if (g->env->networks_up) {
		sv_guest_hold(g);
		g->env->networks_up(g->env->owner, g, networks_done);
	} else {
		sv_prepare_run(g);
	}
	return 0;
}
