/*
 * The daemon: directories, profiles and guests, signals, autostart, reload,
 * systemd notification, and the two ways of exiting (guests keep running,
 * the default; or they are stopped first).
 *
 * Profiles are small files read at start-up and on reload; reading them is
 * the only file I/O the loop does besides the runtime dir's tiny files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "commands.h"
#include "control.h"
#include "daemon.h"
#include "display.h"
#include "media.h"
#include "snapshot.h"
#include "backup.h"
#include "guest.h"
#include "host.h"
#include "hotplug.h"
#include "log.h"
#include "lock.h"
#include "managed.h"
#include "metrics.h"
#include "migrate.h"
#include "passthrough.h"
#include "profile.h"
#include "qmp.h"
#include "netmgr.h"
#include "state.h"
#include "statedir.h"
#include "sysutil.h"
#include "tune.h"

/* ---- profiles ---- */

/* d->guests is kept sorted by name: where name is, or would go. */
static size_t guest_slot(struct sv_daemon *d, const char *name, bool *found)
{
	size_t lo = 0, hi = d->nguests;
	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(d->guests[mid]->name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct sv_guest *sv_daemon_guest(struct sv_daemon *d, const char *name)
{
	bool found;
	size_t i = guest_slot(d, name, &found);
	return found ? d->guests[i] : NULL;
}

static int add_guest(struct sv_daemon *d, struct sv_guest *g)
{
	bool found;
	if (d->nguests == d->guests_cap) {
		size_t cap = d->guests_cap ? d->guests_cap * 2 : 16;
		struct sv_guest **v = realloc(d->guests, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->guests = v;
		d->guests_cap = cap;
	}
	size_t i = guest_slot(d, g->name, &found);
	memmove(&d->guests[i + 1], &d->guests[i], (d->nguests - i) * sizeof(g));
	d->guests[i] = g;
	d->nguests++;
	return 0;
}

static void drop_guest(struct sv_daemon *d, struct sv_guest *g)
{
	for (size_t i = 0; i < d->nguests; i++) {
		if (d->guests[i] == g) {
			memmove(&d->guests[i], &d->guests[i + 1], (d->nguests - i - 1) * sizeof(g));
			d->nguests--;
			sv_state_flush_guest(g);
			sv_guest_release(g);
			return;
		}
	}
}

/* Replace g's profile with p (taken), keeping the one QEMU runs with. */
static void swap_profile(struct sv_guest *g, struct sv_profile *p, uint64_t digest)
{
	if (g->profile != g->run_profile)
		sv_profile_free(g->profile);
	g->profile = p;
	g->digest = digest;
}

/* A unix socket connected to path at once, or -1: QEMU's QMP listener
 * takes it into its backlog, whether or not its main loop runs yet. */
static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Start-up, before any profile or state file is read: a connection to the
 * QMP socket of every guest the run dir may hold a QEMU for (fds[i] for
 * ents[i], or -1), with the negotiation and the re-adoption's first query
 * written on it (sv_guest_presend). Every QEMU left by the qsupd before us
 * then accepts, greets and answers while this one reads and checks; the fd
 * is used only once the guest's QEMU is proven ours (state.c), and closed
 * otherwise. */
static void preconnect(struct sv_daemon *d, struct dirent **ents, int n, int *fds)
{
	for (int i = 0; i < n; i++) {
		const char *f = ents[i]->d_name;
		size_t len = strlen(f);
		char name[256];
		struct sv_facts facts;
		fds[i] = -1;
		if (f[0] == '.' || len < 5 || len - 4 >= sizeof(name) || strcmp(f + len - 4, ".ini"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(len - 4), f);
		if (sv_facts_init(&facts, d->env.run_dir, name) == 0)
			fds[i] = connect_unix(facts.qmp_path);
		if (fds[i] >= 0 && qmp_presend(fds[i], sv_guest_presend, 1) < 0) {
			close(fds[i]);   /* part of a line may be on it: connect later */
			fds[i] = -1;
		}
	}
}

/* Scan the profile dir. With result NULL (start-up) errors are only logged. */
static void scan_profiles(struct sv_daemon *d, json_t *result)
{
	struct dirent **ents;
	int n = scandir(d->profile_dir, &ents, NULL, alphasort);
	if (n < 0) {
		/* Not fatal: the guests that run go on; a reload reads it again. */
		int e = errno;
		sv_log(SV_LOG_ERR, NULL, "profile dir %s: %s; %s", d->profile_dir, strerror(e),
		       e == ENOENT ? "create it, add profiles, then reload (SIGHUP)"
		       : "fix it, then reload (SIGHUP)");
		if (result)
			json_array_append_new(json_object_get(result, "errors"), json_sprintf(
			        "profile dir %s: %s", d->profile_dir, strerror(e)));
		return;
	}
	for (size_t i = 0; i < d->nguests; i++)
		d->guests[i]->removed = true;   /* until seen again */
	int *pre = !result && d->nguests == 0 ? malloc((size_t)(n ? n : 1) * sizeof(int)) : NULL;
	if (pre)
		preconnect(d, ents, n, pre);
	for (int i = 0; i < n; i++) {
		const char *f = ents[i]->d_name;
		size_t len = strlen(f);
		char path[PATH_MAX];
		char name[256];
		bool skip = f[0] == '.' || len < 5 || strcmp(f + len - 4, ".ini") != 0 ||
		            snprintf(path, sizeof(path), "%s/%s", d->profile_dir, f) >= (int)sizeof(path);
		if (!skip)
			snprintf(name, sizeof(name), "%.*s", (int)(len - 4), f);
		free(ents[i]);   /* f points into it: not used past here */
		if (skip)
			continue;
		struct sv_profile *p = NULL;
		struct sv_strv errs = { 0 };
		struct sv_guest *g = sv_daemon_guest(d, name);
		if (g)
			g->removed = false;   /* a bad edit keeps the old profile */
		if (sv_profile_load(path, &p, &errs) < 0) {
			for (size_t k = 0; k < errs.n; k++) {
				sv_log(SV_LOG_ERR, NULL, "%s", errs.v[k]);
				json_array_append_new(json_object_get(result, "errors"), json_string(errs.v[k]));
			}
			sv_strv_free(&errs);
			continue;
		}
		sv_strv_free(&errs);
		uint64_t digest = p->digest;
		if (!g) {
			g = sv_guest_new(&d->env, path, p, digest);
			if (!g || add_guest(d, g) < 0) {
				sv_profile_free(p);
				continue;
			}
			g->qmp_prefd = pre ? pre[i] : -1;
			if (pre)
				pre[i] = -1;
			sv_state_restore(g);   /* a QEMU left by an earlier qsupd */
			sv_migrate_restored(g);
			if (g->qmp_prefd >= 0) {   /* not adopted */
				close(g->qmp_prefd);
				g->qmp_prefd = -1;
			}
			json_array_append_new(json_object_get(result, "added"), json_string(name));
		} else if (g->digest != digest) {
			swap_profile(g, p, digest);
			json_array_append_new(json_object_get(result, "changed"), json_string(name));
			if (sv_guest_active(g))
				sv_log(SV_LOG_INFO, name, "profile changed; the running guest keeps its "
				       "configuration until restarted");
		} else {
			sv_profile_free(p);
		}
	}
	free(ents);
	for (int i = 0; pre && i < n; i++)
		if (pre[i] >= 0)
			close(pre[i]);   /* its profile did not load */
	free(pre);
	for (size_t i = d->nguests; i-- > 0;) {
		struct sv_guest *g = d->guests[i];
		if (!g->removed)
			continue;
		json_array_append_new(json_object_get(result, "removed"), json_string(g->name));
		if (sv_guest_active(g))
			sv_log(SV_LOG_INFO, g->name, "profile removed; the guest is dropped once it stops");
		else
			drop_guest(d, g);
	}
}

json_t *sv_daemon_reload(struct sv_daemon *d)
{
	json_t *r = json_pack("{s:[], s:[], s:[], s:[]}", "added", "removed", "changed", "errors");
	scan_profiles(d, r);
	size_t nerr = json_array_size(json_object_get(r, "errors"));
	sv_log(SV_LOG_INFO, NULL, "reloaded: %zu added, %zu removed, %zu changed, %zu error%s",
	       json_array_size(json_object_get(r, "added")),
	       json_array_size(json_object_get(r, "removed")),
	       json_array_size(json_object_get(r, "changed")), nerr, nerr == 1 ? "" : "s");
	return r;
}

/* ---- exit ---- */

static void finish_exit(struct sv_daemon *d)
{
	if (d->finished)
		return;
	d->finished = true;
	sv_notify("STOPPING=1");
	sv_control_close(d);
	sv_metrics_close(d);
	sv_commands_drop_waiting(d);
	sv_state_flush_stop(d);   /* before the guests are released */
	for (size_t i = 0; i < d->nguests; i++) {
		if (sv_guest_active(d->guests[i]))
			sv_log(SV_LOG_INFO, d->guests[i]->name, "left running (pid %d)",
			       d->guests[i]->pid);
		sv_guest_release(d->guests[i]);
	}
	d->nguests = 0;
	sv_netmgr_free(d->netmgr);   /* dnsmasq and the bridges stay: adopted next time */
	d->netmgr = NULL;
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->sighup, NULL);
	if (d->trim_ready) {
		d->trim_ready = false;
		uv_close((uv_handle_t *)&d->trim, NULL);
		uv_close((uv_handle_t *)&d->kvm_timer, NULL);
	}
}

static bool any_active(struct sv_daemon *d)
{
	for (size_t i = 0; i < d->nguests; i++)
		if (sv_guest_active(d->guests[i]) || d->guests[i]->prepping)
			return true;
	return false;
}

/* The features, in the order they hear of a guest's life. */
static const struct sv_guest_observer *const observers[] = {
	&sv_display_observer,   /* first: its set_password goes before any replay */
	&sv_agent_observer,     /* before those whose qmp_ready takes the start over */
	&sv_tune_observer,      /* limits, pinning, balloon: before hot-plug's replay */
	&sv_hotplug_observer, &sv_migrate_observer, &sv_passthrough_observer,
	&sv_media_observer, &sv_snapshot_observer, &sv_snapflat_observer, &sv_backup_observer,
	NULL,
};

/* The guests' way up (struct sv_guest_env): g stopped for good, so an exit
 * may finish, or a guest whose profile was removed go. */
static void guest_idle(void *owner, struct sv_guest *g)
{
	struct sv_daemon *d = owner;
	if (d->exiting) {
		if (!any_active(d))
			finish_exit(d);
		return;
	}
	if (g->removed)
		drop_guest(d, g);
}

static void guest_persist(void *owner, struct sv_guest *g)
{
	(void)owner;
	sv_state_save(g);
}

/* Whether /dev/kvm can create a VM, asked once: by the first start that
 * needs the answer, or on the thread pool a second after startup (for the
 * log). Not at startup: KVM_CREATE_VM and the VM's teardown took 0.3 ms
 * here, and hold the process's memory map meanwhile, which re-adoption
 * need not wait for. */
#define KVM_PROBE_DELAY_MS 1000
static void kvm_known(struct sv_daemon *d, int rc, const char *why, const char *by)
{
	d->kvm_known = true;
	d->kvm_usable = rc == 0;
	snprintf(d->kvm_why, sizeof(d->kvm_why), "%.255s", d->kvm_usable ? "" : why);
	sv_log(SV_LOG_DEBUG, NULL, "/dev/kvm %s (probed %s)", d->kvm_usable ? "can create a VM"
	       : "is not usable", by);
	if (!d->kvm_usable)
		sv_log(SV_LOG_WARN, NULL, "KVM is not usable (%s); profiles with accel kvm will "
		       "not start, kvm:tcg falls back to TCG", d->kvm_why);
}

static bool guest_kvm_usable(void *owner)
{
	struct sv_daemon *d = owner;
	if (!d->kvm_known) {
		struct sv_error err = { 0 };
		kvm_known(d, sv_host_kvm_probe(NULL, &err), err.msg, "when first needed");
	}
	return d->kvm_usable;
}

static void kvm_probe_work(uv_work_t *w)
{
	struct sv_daemon *d = w->data;
	struct sv_error err = { 0 };
	d->kvm_work_rc = sv_host_kvm_probe(NULL, &err);
	snprintf(d->kvm_work_why, sizeof(d->kvm_work_why), "%.255s", err.msg);
}

static void kvm_probe_done(uv_work_t *w, int status)
{
	struct sv_daemon *d = w->data;
	if (!d->kvm_known)
		kvm_known(d, status < 0 ? status : d->kvm_work_rc,
		          status < 0 ? uv_strerror(status) : d->kvm_work_why, "on the thread pool");
}

static void kvm_probe_later(uv_timer_t *t)
{
	struct sv_daemon *d = t->data;
	if (!d->kvm_known && uv_queue_work(d->loop, &d->kvm_work, kvm_probe_work,
	                                   kvm_probe_done) < 0)
		guest_kvm_usable(d);
}

static void guest_persist_then(void *owner, struct sv_guest *g, struct sv_persist_wait *w)
{
	(void)owner;
	sv_state_save_then(g, w);
}

static char *guest_record_begin(void *owner, struct sv_guest *g)
{
	(void)owner;
	return sv_state_own_begin(g);
}

static void guest_record_end(void *owner, struct sv_guest *g, int err)
{
	(void)owner;
	sv_state_own_end(g, err);
}

static void guest_qmp_replied(void *owner, uint64_t ns)
{
	sv_metrics_qmp_replied(owner, ns);
}

static void guest_activity(void *owner)
{
	sv_daemon_trim_later(owner);
	sv_commands_adoption_progress(owner);   /* a re-adoption may be over */
}

/* The uids of the guests other than except that run or are being started. */
/* A start's managed networks (netmgr.h): up before its preparation. */
struct net_start {
	struct sv_guest *g;
	void (*done)(struct sv_guest *g, int rc, const char *msg);
};

static void networks_started(void *arg, int rc, const char *msg)
{
	struct net_start *s = arg;
	s->done(s->g, rc, msg);
	free(s);
}

static void networks_up(void *owner, struct sv_guest *g,
                        void (*done)(struct sv_guest *g, int rc, const char *msg))
{
	struct sv_daemon *d = owner;
	struct net_start *s = malloc(sizeof(*s));
	if (!s) {
		done(g, -ENOMEM, "out of memory");
		return;
	}
	s->g = g;
	s->done = done;
	sv_netmgr_profile_up(d->netmgr, g->run_profile, networks_started, s);
}

static void network_up(void *owner, const char *network,
                       void (*done)(void *arg, int rc, const char *msg), void *arg)
{
	struct sv_daemon *d = owner;
	struct sv_net *n = sv_netmgr_find(d->netmgr, network);
	if (!n) {
		done(arg, -ENOENT, "no such network");
		return;
	}
	sv_net_up(n, done, arg);
}

static uid_t *uids_taken(void *owner, const struct sv_guest *except, size_t *n)
{
	struct sv_daemon *d = owner;
	uid_t *taken = calloc(d->nguests + 1, sizeof(*taken));
	*n = 0;
	for (size_t i = 0; taken && i < d->nguests; i++) {
		struct sv_guest *o = d->guests[i];
		if (o != except && (sv_guest_active(o) || o->prepping))
			taken[(*n)++] = o->ident.uid;
	}
	return taken;
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct sv_daemon *d = s->data;
	if (signum == SIGHUP) {
		json_decref(sv_daemon_reload(d));
		return;
	}
	if (d->exiting && d->opts.stop_guests_on_exit && !d->killing) {
		/* Ctrl-C again (make run): do not leave a QEMU behind. */
		d->killing = true;
		sv_log(SV_LOG_WARN, NULL, "second signal: killing the guests (SIGKILL); a third "
		       "exits at once, leaving them as they are");
		for (size_t i = 0; i < d->nguests; i++)
			if (sv_guest_active(d->guests[i]) || d->guests[i]->prepping)
				sv_guest_kill(d->guests[i], NULL, NULL);
		return;
	}
	if (d->exiting) {
		sv_log(SV_LOG_WARN, NULL, "another signal: exiting now, guests left as they are");
		finish_exit(d);
		return;
	}
	d->exiting = true;
	d->env.exiting = true;
	if (!d->opts.stop_guests_on_exit || !any_active(d)) {
		sv_log(SV_LOG_INFO, NULL, "signal %d: exiting%s", signum,
		       d->opts.stop_guests_on_exit ? "" : "; guests keep running");
		finish_exit(d);
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < d->nguests; i++)
		n += sv_guest_active(d->guests[i]) || d->guests[i]->prepping;
	sv_log(SV_LOG_INFO, NULL, "signal %d: stopping %zu guest%s (ACPI power-off, pressed "
	       "again every 5 s), then exiting; a second signal (Ctrl-C) kills them", signum, n,
	       n == 1 ? "" : "s");
	sv_notify("STOPPING=1");
	for (size_t i = 0; i < d->nguests; i++)
		if (sv_guest_active(d->guests[i]) || d->guests[i]->prepping)
			sv_guest_stop(d->guests[i], false, 0, NULL, NULL);
}

/* ---- systemd ---- */

void sv_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';   /* abstract namespace */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		sv_log(SV_LOG_WARN, NULL, "NOTIFY_SOCKET %s: %s", path, strerror(errno));
	close(fd);
}

/* ---- set-up ---- */

/* The guests' log dir (0750). One that cannot be made is no reason not to
 * run the guests: each start says that its log cannot be opened. */
static void prepare_log_dir(struct sv_daemon *d)
{
	struct stat st;
	int rc = d->log_dir ? sv_mkdir_p(d->log_dir, 0750) : 0;
	if (rc == 0 && d->log_dir && (stat(d->log_dir, &st) < 0 || !S_ISDIR(st.st_mode)))
		rc = -ENOTDIR;
	if (rc < 0)
		sv_log(SV_LOG_WARN, NULL, "log dir %s: %s; the guests run on, but their QEMU "
		       "output and lifecycle lines are lost until it can be written", d->log_dir,
		       strerror(-rc));
}

static char *absolute(const char *path)
{
	if (path[0] == '/')
		return strdup(path);
	char cwd[PATH_MAX], *out;
	if (!getcwd(cwd, sizeof(cwd)) || asprintf(&out, "%s/%s", cwd, path) < 0)
		return NULL;
	return out;
}

int sv_daemon_init(struct sv_daemon *d, uv_loop_t *loop, const struct sv_daemon_opts *o,
                   struct sv_error *err)
{
	memset(d, 0, sizeof(*d));
	d->rundir_lock = -1;
	d->loop = loop;
	d->opts = *o;
	d->profile_dir = absolute(o->profile_dir);
	d->run_dir = absolute(o->run_dir);
	if (!d->profile_dir || !d->run_dir)
		return sv_error_set(err, -ENOMEM, "out of memory");
	if (o->socket_path)
		d->socket_path = absolute(o->socket_path);
	else if (asprintf(&d->socket_path, "%s/qsupd.sock", d->run_dir) < 0)
		d->socket_path = NULL;
	if (!d->socket_path)
		return sv_error_set(err, -ENOMEM, "out of memory");
	int rc = sv_mkdir_p(d->run_dir, 0755);
	if (rc < 0)
		return sv_error_set(err, rc, "run dir %s: %s", d->run_dir, strerror(-rc));
	/* One owner: nothing of the run dir is read before this. */
	if ((d->rundir_lock = sv_rundir_lock(d->run_dir, err)) < 0)
		return d->rundir_lock;
	/* The control socket first, before the profiles are read and the
	 * guests of an earlier qsupd re-adopted: a client that connects
	 * meanwhile waits in the backlog for its answer instead of being
	 * refused, and sees every guest, those still being re-adopted as
	 * starting ("adopting": true). */
	if ((rc = sv_control_listen(d, d->socket_path, err)) < 0)
		return rc;
	/* The stats timer, and --metrics-listen's port: taken, qsupd ends
	 * here before it touches a guest. */
	if ((rc = sv_metrics_init(d, err)) < 0)
		return rc;
	if (!(d->state_dir = absolute(o->state_dir)))
		return sv_error_set(err, -ENOMEM, "out of memory");
	if ((rc = sv_statedir_prepare(d->state_dir, err)) < 0 ||
	    (rc = sv_statedir_host_key(d->state_dir, d->host_key, err)) < 0)
		return rc;
	char save_dir[4200];
	snprintf(save_dir, sizeof(save_dir), "%s/save", d->state_dir);
	if ((rc = sv_mkdir_p(save_dir, 0700)) < 0)
		return sv_error_set(err, rc, "save dir %s: %s", save_dir, strerror(-rc));
	sv_managed_init(d);
	if (o->log_dir && !(d->log_dir = absolute(o->log_dir)))
		return sv_error_set(err, -ENOMEM, "out of memory");
	prepare_log_dir(d);
	sv_lock_dir_default(d->lock_dir, sizeof(d->lock_dir), geteuid(), d->run_dir);
	if ((rc = sv_lock_dir_prepare(d->lock_dir, err)) < 0)
		return rc;
	sv_id_config_init(&d->idc, geteuid(), o->uid_first, o->uid_count);
	sv_state_flush_init(d);
	/* Nothing qsupd spawns may gain privileges (setuid bits, file caps). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return sv_error_set(err, -errno, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	d->env = (struct sv_guest_env){ .loop = d->loop, .route = &d->route,
	                                .run_dir = d->run_dir, .state_dir = d->state_dir,
	                                .lock_dir = d->lock_dir, .host_key = d->host_key,
	                                .log_dir = d->log_dir, .log_max = o->log_max,
	                                .idc = &d->idc, .kvm_usable = guest_kvm_usable,
	                                .idle = guest_idle, .activity = guest_activity,
	                                .qmp_replied = guest_qmp_replied,
	                                .persist = guest_persist, .record_begin = guest_record_begin,
	                                .record_end = guest_record_end,
	                                .persist_then = guest_persist_then,
	                                .observers = observers,
	                                .uids_taken = uids_taken, .owner = d,
	                                .networks_up = networks_up,
	                                .network_up = network_up,
	                                .net_bridge = sv_netmgr_bridge };
	if (o->networks_dir) {
		struct sv_strv nerrs = { 0 };
		d->netmgr = sv_netmgr_new(d->loop, d->run_dir, o->networks_dir, &nerrs);
		if (!d->netmgr)
			return sv_error_set(err, -ENOMEM, "out of memory");
		for (size_t i = 0; i < nerrs.n; i++)
			sv_log(SV_LOG_ERR, NULL, "%s (network skipped)", nerrs.v[i]);
		sv_strv_free(&nerrs);
		d->env.net_ctx = d->netmgr;
		sv_log(SV_LOG_INFO, NULL, "%zu network%s in %s", sv_netmgr_count(d->netmgr),
		       sv_netmgr_count(d->netmgr) == 1 ? "" : "s", o->networks_dir);
	}
	int vfd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
	if (vfd >= 0) {
		d->env.vhost_net = true;
		close(vfd);
		sv_log(SV_LOG_DEBUG, NULL, "vhost-net: /dev/vhost-net usable; virtio NICs on "
		       "taps get a vhostfd");
	} else {
		sv_log(SV_LOG_DEBUG, NULL, "vhost-net: /dev/vhost-net: %s; NICs on taps run "
		       "without vhost (QEMU moves the packets)", strerror(errno));
	}
	scan_profiles(d, NULL);
	sv_log(SV_LOG_INFO, NULL, "%zu guest profile%s in %s", d->nguests,
	       d->nguests == 1 ? "" : "s", d->profile_dir);
	uv_signal_init(loop, &d->sigterm);
	uv_signal_init(loop, &d->sigint);
	uv_signal_init(loop, &d->sighup);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_signal, SIGINT);
	uv_signal_start(&d->sighup, on_signal, SIGHUP);
	uv_timer_init(loop, &d->trim);
	d->trim.data = d;
	uv_timer_init(loop, &d->kvm_timer);
	d->kvm_timer.data = d;
	d->kvm_work.data = d;
	uv_timer_start(&d->kvm_timer, kvm_probe_later, KVM_PROBE_DELAY_MS, 0);
	uv_unref((uv_handle_t *)&d->kvm_timer);   /* never keeps the loop alive */
	d->trim_ready = true;
	return 0;
}

static void on_trim(uv_timer_t *t)
{
	(void)t;
	malloc_trim(0);
}

void sv_daemon_trim_later(struct sv_daemon *d)
{
	/* A walk of a heap this small takes microseconds; once a second at
	 * most, and only after something happened. */
	if (d->trim_ready && !uv_is_active((uv_handle_t *)&d->trim))
		uv_timer_start(&d->trim, on_trim, 1000, 0);
}

int sv_daemon_run(struct sv_daemon *d)
{
	sv_log(SV_LOG_INFO, NULL, "listening on %s", d->socket_path);
	if (d->netmgr)
		sv_netmgr_autostart(d->netmgr);
	if (!d->opts.no_autostart)
		sv_managed_boot(d);
	for (size_t i = 0; i < d->nguests; i++) {
		/* A start the last qsupd recorded but never spawned. */
		struct sv_guest *g = d->guests[i];
		struct sv_error err = { 0 };
		if (g->pending_start && sv_state_may_autostart(g->state)) {
			sv_log(SV_LOG_INFO, g->name, "its start was cut short by a qsupd restart; "
			       "starting it");
			snprintf(g->start_why, sizeof(g->start_why), "its start was cut short by a "
			         "qsupd restart");
			if (sv_guest_start(g, NULL, &err) < 0)
				sv_log(SV_LOG_ERR, g->name, "start: %s", err.msg);
		}
		g->pending_start = false;
	}
	sv_notify("READY=1");
	uv_run(d->loop, UV_RUN_DEFAULT);
	return d->exit_code;
}

void sv_daemon_free(struct sv_daemon *d)
{
	if (d->rundir_lock >= 0)
		close(d->rundir_lock);
	sv_managed_free(d);
	sv_metrics_free(d);
	free(d->state_dir);
	free(d->log_dir);
	free(d->guests);
	free(d->profile_dir);
	free(d->run_dir);
	free(d->socket_path);
}

int sv_daemon_main(const struct sv_daemon_opts *o)
{
	struct sv_daemon d;
	struct sv_error err = { 0 };
	uv_loop_t *loop = uv_default_loop();
	signal(SIGPIPE, SIG_IGN);
	/* Memory stays small with many guests:
	 * - one malloc arena. glibc gives each of libuv's pool threads (which
	 *   prepare starts and write state) an arena of its own, ~100 KiB
	 *   resident apiece, for work that is a few short jobs per start;
	 * - fixed thresholds, and no trim on free. glibc's adaptive mmap
	 *   threshold would rise after the first large free; its trim on free
	 *   gave the heap's top back after every reply, which the next one
	 *   faulted in again (a list of 200 guests, 130 KiB of output, cost
	 *   brk calls and over a hundred page faults each time, 3 ms here).
	 *   Output buffers up to 1 MiB now stay in the heap, and the heap is
	 *   trimmed once a second after activity (sv_daemon_trim_later), so
	 *   qsupd at rest is as small as before. */
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	if (sv_daemon_init(&d, loop, o, &err) < 0) {
		sv_log(SV_LOG_ERR, NULL, "%s", err.msg);
		sv_control_close(&d);
		sv_metrics_close(&d);
		sv_state_flush_stop(&d);
		for (size_t i = 0; i < d.nguests; i++)
			sv_guest_release(d.guests[i]);
		sv_netmgr_free(d.netmgr);
		uv_run(loop, UV_RUN_DEFAULT);
		uv_loop_close(loop);
		sv_daemon_free(&d);
		return 1;
	}
	int rc = sv_daemon_run(&d);
	uv_run(loop, UV_RUN_DEFAULT);   /* the last close callbacks */
	if (uv_loop_close(loop) != 0)
		sv_log(SV_LOG_DEBUG, NULL, "handles left open at exit");
	sv_daemon_free(&d);
	sv_log(SV_LOG_INFO, NULL, "exited");
	return rc;
}
