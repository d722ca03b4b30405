/*
 * Migration without shared storage: copy-storage (migrate_int.h,
 * mig_copy_int.h).
 *
 * The source lists the guest's writable disks (the profile's and the
 * hot-plugged ones: id, format, virtual size, file, whether it has a
 * backing chain) in what it hands the destination. The destination
 * decides: copy-storage when asked, or when it lacks every one of those
 * files; it creates each image (qemu-img create, same format and virtual
 * size) at the path its own profile names (a hot-plugged disk: at the
 * source's path), refusing a path that already holds a file unless
 * --force, starts QEMU waiting for the stream and exports each disk node
 * writable over NBD (nbd-server-start on a socket qsupd made and handed
 * over: a unix socket in the guest's QEMU dir when the stream is unix, the
 * stream's tcp host on a free port otherwise; block-export-add per disk).
 *
 * The source connects to that export (unix: qsupd connects and passes the
 * fd, getfd; tcp: QEMU connects), adds an nbd node per disk and mirrors
 * each disk into it (blockdev-mirror sync=full); once every mirror is in
 * sync (BLOCK_JOB_READY) the RAM migration starts with
 * pause-before-switchover. At pre-switchover (the guest paused) each
 * mirror is ended with block-job-cancel on a ready job, which copies what
 * is still dirty and then finishes without switching the guest over to
 * the target; once every one has completed, the targets go and
 * migrate-continue lets the migration complete. The destination (with
 * late-block-activate) stops its NBD server before it resumes the guest.
 *
 * Snapshot chains: the source sends each disk's chain too (layers bottom
 * to top: the file behind QEMU's fd set, format, virtual size). The
 * destination maps it onto its own disk's path by qsup's overlay naming
 * (FILE.snapN.qcow2 next to FILE; any other backing file is refused),
 * creates the layers bottom-up (each overlay -b the one below, -F its
 * format), rewrites the snapshot record to those paths (refusing a memory
 * state, or an image off the running chain) and exports every layer
 * through a writable node of its own (backing: null, over an fd of its
 * own): the chain QEMU will run on stays inactive, and reads the copied
 * layers when the guest resumes; those nodes go after the NBD server.
 * The source first copies each backing layer, which the guest does not
 * write, from a read-only node of its own (backing: null) with a backup
 * job sync=top (its own clusters), one after the other, then mirrors the
 * active images with sync=top.
 *
 * Failures: any mirror error, a cancel, the destination's QEMU or the
 * stream ending: the source cancels what runs (migrate_cancel, the jobs
 * with force), drops the nbd nodes and has the destination's QEMU killed;
 * the guest runs on here. The destination removes the images it created
 * (its own record, in memory) when its QEMU ends before the stream is in.
 * A source qsupd that dies meanwhile leaves STATE-DIR/NAME.copy-storage.json
 * ({to, disks}); the qsupd that re-adopts the guest cancels the migration
 * and the jobs and has the destination's QEMU killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mig_copy_int.h"

/* ---- what both sides share ---- */

static bool mc_live(void *ctx)
{
	struct sv_guest *g = ctx;
	return g->mig != NULL && g->mig->copy;
}

static const struct sv_step_kind mc_kind = { .live = mc_live };

void mc_step(struct sv_guest *g, const char *cmd, json_t *args, int fd, sv_step_fn fn)
{
	sv_step(g->qmp, &mc_kind, cmd, args, fd, fn, g);
}

const char *mc_disk_id(json_t *d)
{
	return sv_jstr(d, "id", "?");
}

void mc_boot_id(char *buf, size_t size)
{
	buf[0] = '\0';
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* "HOST:PORT" (s, cut in place): HOST, without an IPv6 address's
 * brackets; *port after the last colon, NULL without one. */
char *mc_host_port(char *s, char **port)
{
	char *colon = strrchr(s, ':');
	*port = colon ? colon + 1 : NULL;
	if (colon)
		*colon = '\0';
	size_t n = strlen(s);
	if (s[0] == '[' && n > 1 && s[n - 1] == ']') {
		s[n - 1] = '\0';
		s++;
	}
	return s;
}

/* A snapshot layer's file (path) opened once more and handed to QEMU as
 * an fd set (add-fd: fn gets the set), for a node of its own; -errno
 * when it cannot be opened. */
int mc_layer_fd(struct sv_guest *g, const char *path, int flags, sv_step_fn fn)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	mc_step(g, "add-fd", json_pack("{s:s}", "opaque", path), fd, fn);
	close(fd);
	return 0;
}

/* The layer l's own node over the fd set of add-fd's answer r: l's own
 * clusters only (backing: null), read-only unless writable; then fn. */
void mc_layer_node(struct sv_guest *g, json_t *l, const char *node, bool writable,
                   const struct qmp_result *r, sv_step_fn fn)
{
	char fname[32];
	json_int_t set = json_integer_value(json_object_get(r->ret, "fdset-id"));
	snprintf(fname, sizeof(fname), "/dev/fdset/%lld", (long long)set);
	json_t *a = json_pack("{s:s, s:s, s:b, s:{s:s, s:s, s:s}}", "driver", sv_jstr(l, "format",
	                      "raw"), "node-name", node, "read-only", !writable, "file", "driver",
	                      "file", "filename", fname, "locking", "off");
	if (!strcmp(sv_jstr(l, "format", ""), "qcow2"))
		json_object_set_new(a, "backing", json_null());
	mc_step(g, "blockdev-add", a, -1, fn);
	/* the node holds its own fd: the set goes once it is closed */
	sv_qmp_fire(g->qmp, "remove-fd", json_pack("{s:I}", "fdset-id", set));
}

/* ---- the record a source qsupd leaves while the mirrors run ---- */

struct rec_job {
	uv_work_t work;
	char path[4200];
	char *text;             /* NULL: remove */
	char tmp[4300];
	struct sv_guest *g;
};

/* The source's record (a copy-storage under way: cancelled by the qsupd
 * that re-adopts the guest), or the destination's (in: the images it
 * created, removed unless the stream came in). */
static void record_path(struct sv_guest *g, bool in, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s.copy-%s.json", g->env->state_dir, g->name,
	         in ? "in" : "storage");
}

static void rec_work(uv_work_t *w)
{
	struct rec_job *j = w->data;
	if (!j->text) {
		unlink(j->path);
		return;
	}
	snprintf(j->tmp, sizeof(j->tmp), "%s.tmp", j->path);
	int fd = open(j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	size_t len = strlen(j->text);
	bool ok = write(fd, j->text, len) == (ssize_t)len && fsync(fd) == 0;
	close(fd);
	if (!ok || rename(j->tmp, j->path) < 0)
		unlink(j->tmp);
}

static void rec_after(uv_work_t *w, int status)
{
	struct rec_job *j = w->data;
	(void)status;
	if (j->g)
		sv_guest_unhold(j->g);
	free(j->text);
	free(j);
}

/* Write (text) or remove (NULL) a record. */
void mc_record(struct sv_guest *g, bool in, char *text)
{
	struct rec_job *j = calloc(1, sizeof(*j));
	if (!j) {
		free(text);
		return;
	}
	record_path(g, in, j->path, sizeof(j->path));
	j->text = text;
	j->g = g;
	j->work.data = j;
	sv_guest_hold(g);
	if (uv_queue_work(g->env->loop, &j->work, rec_work, rec_after) < 0) {
		sv_guest_unhold(g);
		free(j->text);
		free(j);
	}
}

/* ---- the source: after a failure, what QEMU still has ---- */

struct mclean {
	uv_timer_t timer;
	struct sv_guest *g;
	json_t *ids;            /* the disks' ids */
	int tries;
};

static void clean_closed(uv_handle_t *h)
{
	struct mclean *c = h->data;
	json_decref(c->ids);
	sv_guest_unhold(c->g);
	free(c);
}

static void clean_tick(uv_timer_t *t);

static void on_jobs(struct qmp_client *qc, const struct qmp_result *r, void *arg)
{
	struct mclean *c = arg;
	(void)qc;
	bool left = false;
	size_t i;
	json_t *e;
	if (r->status == 0)
		json_array_foreach(r->ret, i, e)
			left |= !strncmp(sv_jstr(e, "id", ""), MC_JOB_PREFIX, strlen(MC_JOB_PREFIX)) &&
			        strcmp(sv_jstr(e, "status", ""), "concluded");
	if (left && ++c->tries < 100 && !c->g->freeing) {
		uv_timer_start(&c->timer, clean_tick, 100, 0);
		return;
	}
	/* The jobs are over: the targets go (and an fd never used). */
	json_array_foreach(c->ids, i, e) {
		char name[96];
		snprintf(name, sizeof(name), "%s%s", MC_JOB_PREFIX, json_string_value(e));
		sv_qmp_fire(c->g->qmp, "job-dismiss", json_pack("{s:s}", "id", name));
		snprintf(name, sizeof(name), "%s%s", MC_NODE_PREFIX, json_string_value(e));
		sv_qmp_fire(c->g->qmp, "blockdev-del", json_pack("{s:s}", "node-name", name));
		snprintf(name, sizeof(name), "qsup-nbd-%s", json_string_value(e));
		sv_qmp_fire(c->g->qmp, "closefd", json_pack("{s:s}", "fdname", name));
		snprintf(name, sizeof(name), "%s%s", MC_LAYER_PREFIX, json_string_value(e));
		if (strchr(json_string_value(e), '.'))   /* a backing layer's */
			sv_qmp_fire(c->g->qmp, "blockdev-del", json_pack("{s:s}", "node-name", name));
	}
	uv_close((uv_handle_t *)&c->timer, clean_closed);
}

static void clean_tick(uv_timer_t *t)
{
	struct mclean *c = t->data;
	if (!c->g->qmp || qmp_client_execute(c->g->qmp, "query-jobs", NULL, 0, on_jobs, c) < 0)
		uv_close((uv_handle_t *)&c->timer, clean_closed);
}

/* Cancel the mirrors of the disks ids (force: no final copy), then drop
 * their targets once the jobs are gone. */
static void clean_start(struct sv_guest *g, json_t *ids)
{
	struct mclean *c = g->qmp ? calloc(1, sizeof(*c)) : NULL;
	if (!c)
		return;
	c->g = g;
	c->ids = json_incref(ids);
	size_t i;
	json_t *e;
	json_array_foreach(ids, i, e) {
		char job[96];
		snprintf(job, sizeof(job), "%s%s", MC_JOB_PREFIX, json_string_value(e));
		sv_qmp_fire(g->qmp, "block-job-cancel",
		            json_pack("{s:s, s:b}", "device", job, "force", 1));
	}
	sv_guest_hold(g);
	uv_timer_init(g->env->loop, &c->timer);
	c->timer.data = c;
	uv_timer_start(&c->timer, clean_tick, 100, 0);
}

/* The ids of what is copied: each disk's, and each backing layer's. */
json_t *mc_disk_ids(json_t *disks, json_t *layers)
{
	json_t *ids = json_array(), *d;
	size_t i;
	json_array_foreach(disks, i, d)
		json_array_append_new(ids, json_string(mc_disk_id(d)));
	json_array_foreach(layers, i, d)
		json_array_append_new(ids, json_string(sv_jstr(d, "id", "?")));
	return ids;
}

/* ---- the end of the record ---- */

struct unlinks {
	uv_work_t work;
	json_t *paths;
	char name[256];
	char record[4200];      /* removed once they are */
	int removed;
};

static void unlink_work(uv_work_t *w)
{
	struct unlinks *u = w->data;
	size_t i;
	json_t *e;
	json_array_foreach(u->paths, i, e)
		if (json_is_string(e) && unlink(json_string_value(e)) == 0)
			u->removed++;
	unlink(u->record);
}

static void unlink_after(uv_work_t *w, int status)
{
	struct unlinks *u = w->data;
	(void)status;
	sv_log(SV_LOG_INFO, u->name, "copy-storage: the migration did not complete; removed %d "
	       "image%s created for it", u->removed, u->removed == 1 ? "" : "s");
	json_decref(u->paths);
	free(u);
}

/* Remove the images the destination created (paths), then its record. */
static void remove_created(struct sv_guest *g, json_t *paths)
{
	struct unlinks *u = calloc(1, sizeof(*u));
	if (u) {
		u->paths = json_incref(paths);
		snprintf(u->name, sizeof(u->name), "%s", g->name);
		record_path(g, true, u->record, sizeof(u->record));
		u->work.data = u;
		if (uv_queue_work(g->env->loop, &u->work, unlink_work, unlink_after) < 0) {
			json_decref(u->paths);
			free(u);
		}
	}
}

/* ---- TLS-PSK: the key in a 0600 file of QEMU's dir, a tls-creds-psk object ---- */

struct pskjob {
	uv_work_t work;
	struct sv_guest *g;
	char dir[4200];
	char key[65];
	bool remove;
	int err;
};

static void psk_work(uv_work_t *w)
{
	struct pskjob *j = w->data;
	char file[4300], line[80];
	snprintf(file, sizeof(file), "%s/keys.psk", j->dir);
	if (j->remove) {
		unlink(file);
		rmdir(j->dir);
		return;
	}
	/* owned by QEMU's identity, as its dir (RUNDIR/NAME/qemu) is */
	char parent[4200];
	snprintf(parent, sizeof(parent), "%s", j->dir);
	*strrchr(parent, '/') = '\0';
	struct stat st;
	if (stat(parent, &st) < 0 || (mkdir(j->dir, 0700) < 0 && errno != EEXIST) ||
	    chown(j->dir, st.st_uid, st.st_gid) < 0) {
		j->err = errno;
		return;
	}
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int n = snprintf(line, sizeof(line), "qsup:%s\n", j->key);
	if (fd < 0 || fchown(fd, st.st_uid, st.st_gid) < 0 || write(fd, line, (size_t)n) != n)
		j->err = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	explicit_bzero(line, sizeof(line));
}

static void tls_fail(struct sv_guest *g, const char *why)
{
	if (g->mig->role == ROLE_OUT)
		mc_out_fail(g, why);
	else
		mig_in_abort(g, "GenericError", why);
}

static void on_tls_object(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	char why[700];
	if (r->status != 0) {
		mig_step_error(r, "object-add tls-creds-psk", why, sizeof(why));
		tls_fail(g, why);
		return;
	}
	sv_log(SV_LOG_INFO, g->name, "TLS-PSK for this migration (a new key)");
	g->mig->tls_next(g);
}

static bool tls_live(void *ctx)
{
	struct sv_guest *g = ctx;
	return g->mig != NULL && g->mig->psk[0];
}

static const struct sv_step_kind tls_kind = { .live = tls_live };

static void psk_after(uv_work_t *w, int status)
{
	struct pskjob *j = w->data;
	struct sv_guest *g = j->g;
	(void)status;
	explicit_bzero(j->key, sizeof(j->key));
	if (!j->remove && !g->freeing && g->mig && g->mig->psk[0]) {
		if (j->err) {
			char why[700];
			snprintf(why, sizeof(why), "the TLS key in %.500s: %s", j->dir, strerror(j->err));
			tls_fail(g, why);
		} else {
			char dir[64];
			snprintf(dir, sizeof(dir), "/proc/self/fd/%d/tls", SV_FD_QEMUDIR);
			/* an earlier migration's, if any */
			sv_qmp_fire(g->qmp, "object-del", json_pack("{s:s}", "id", "qsup-tls"));
			json_t *a = json_pack("{s:s, s:s, s:s, s:s}", "qom-type", "tls-creds-psk", "id",
			                      "qsup-tls", "endpoint", g->mig->role == ROLE_OUT ? "client"
			                      : "server", "dir", dir);
			if (g->mig->role == ROLE_OUT)   /* the server looks the client's name up */
				json_object_set_new(a, "username", json_string("qsup"));
			sv_step(g->qmp, &tls_kind, "object-add", a, -1, on_tls_object, g);
		}
	}
	sv_guest_unhold(g);
	free(j);
}

/* Write (or remove) the key file; then the object, then m->tls_next. */
static void psk_file(struct sv_guest *g, const char *key, bool remove)
{
	struct pskjob *j = calloc(1, sizeof(*j));
	if (!j) {
		if (!remove)
			tls_fail(g, "out of memory");
		return;
	}
	j->g = g;
	j->remove = remove;
	snprintf(j->dir, sizeof(j->dir), "%s/qemu/tls", g->rundir);
	if (key)
		snprintf(j->key, sizeof(j->key), "%s", key);
	j->work.data = j;
	sv_guest_hold(g);
	if (uv_queue_work(g->env->loop, &j->work, psk_work, psk_after) < 0) {
		sv_guest_unhold(g);
		free(j);
		if (!remove)
			tls_fail(g, "cannot queue the TLS key's file");
	}
}

static void out_go(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	json_t *ret = m->answer;
	m->answer = NULL;
	if (json_is_true(json_object_get(ret, "copy-storage")))
		mc_out_begin(g, ret);
	else
		mig_out_begin(g);
	json_decref(ret);
}

void mc_out_answered(struct sv_guest *g, json_t *ret)
{
	struct sv_mig *m = g->mig;
	json_decref(m->answer);
	m->answer = json_incref(ret);
	if (!m->psk[0]) {
		out_go(g);
		return;
	}
	m->tls_next = out_go;
	psk_file(g, m->psk, false);
}

bool mc_in_tls(struct sv_guest *g, json_t *args)
{
	struct sv_mig *m = g->mig;
	const char *key = json_string_value(json_object_get(args, "tls-psk"));
	const struct sv_profile *p = mig_prof(g);
	if (key && (strlen(key) != 64 || strspn(key, "0123456789abcdef") != 64))
		return mc_refuse(g, "%s: the source's TLS key is not 64 hex digits", g->name);
	if (key) {
		snprintf(m->psk, sizeof(m->psk), "%s", key);
		return false;
	}
	if (p && p->migrate_tls == 1)
		return mc_refuse(g, "%s: the profile here asks for TLS ([migration] tls = psk) but the "
		                 "source sent no key: set it in the source's profile too", g->name);
	return false;
}

void mc_in_tls_setup(struct sv_guest *g, void (*in_next)(struct sv_guest *g))
{
	struct sv_mig *m = g->mig;
	if (!m->psk[0]) {
		in_next(g);
		return;
	}
	m->tls_next = in_next;
	psk_file(g, m->psk, false);
}

void mc_release(struct sv_guest *g, struct sv_mig *m)
{
	if (m->psk[0]) {
		psk_file(g, NULL, true);
		explicit_bzero(m->psk, sizeof(m->psk));
	}
	json_decref(m->answer);
	m->answer = NULL;
	if (m->nbd_fd >= 0)
		close(m->nbd_fd);
	m->nbd_fd = -1;
	if (m->role == ROLE_IN && m->img)
		uv_process_kill(m->img, SIGKILL);
	if (m->role == ROLE_IN && json_array_size(m->created) && !m->in_done)
		remove_created(g, m->created);
	if (m->role == ROLE_OUT && m->copy) {
		mc_record(g, false, NULL);
		if (!m->completed && m->mirroring) {
			json_t *ids = mc_disk_ids(m->disks, m->layers);
			clean_start(g, ids);
			json_decref(ids);
		}
	}
	json_decref(m->disks);
	json_decref(m->created);
	json_decref(m->handover);
	json_decref(m->layers);
	m->disks = m->created = m->handover = m->layers = NULL;
	m->layering = false;
}

/* ---- re-adoption: a copy-storage that a dead qsupd left ---- */

static void on_peer_killed(json_t *reply, const char *why, void *arg)
{
	(void)reply;
	(void)why;
	(void)arg;
}

static void on_record(struct sv_guest *g, json_t *rec)
{
	const char *to = json_string_value(json_object_get(rec, "to"));
	if (!rec)
		return;
	sv_log(SV_LOG_WARN, g->name, "copy-storage to %s was under way when qsupd went away: "
	       "cancelled; the guest runs here", sv_or(to, "?"));
	if (g->mig && g->mig->role == ROLE_OUT && g->qmp)
		qmp_client_execute(g->qmp, "migrate_cancel", NULL, 0, NULL, NULL);
	clean_start(g, json_object_get(rec, "disks"));
	if (to) {
		json_t *a = json_pack("{s:s}", "name", g->name);
		sv_peer_call(g->env->loop, to, "kill", a, PEER_TIMEOUT_MS, on_peer_killed, NULL, NULL);
		json_decref(a);
	}
	mc_record(g, false, NULL);
}

/* Read on the loop, as state.json is at start-up: a small file in the
 * state dir, almost always absent. A thread-pool job per re-adopted guest
 * cost qsupd more than the read (waking a pool thread and being woken
 * back, and the threads' creation when nothing else needs them). */
void mc_adopt(struct sv_guest *g)
{
	char path[4200];
	record_path(g, false, path, sizeof(path));
	json_t *rec = json_load_file(path, 0, NULL);
	if (rec)
		on_record(g, rec);
	json_decref(rec);
}

/* The destination's record, read now (a small file in the state dir, as
 * state.json is at start-up), or NULL. */
static json_t *created_record(struct sv_guest *g)
{
	char path[4200];
	record_path(g, true, path, sizeof(path));
	json_t *rec = json_load_file(path, 0, NULL);
	json_t *c = json_object_get(rec, "created");
	if (!json_is_array(c)) {
		json_decref(rec);
		return NULL;
	}
	json_incref(c);
	json_decref(rec);
	return c;
}

void mc_in_adopt(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	json_t *c = m && m->role == ROLE_IN ? created_record(g) : NULL;
	if (!c)
		return;
	/* The copy goes on: its images stay if the stream comes in (then the
	 * NBD server goes before the guest runs), and go if it fails. */
	m->copy = true;
	json_decref(m->created);
	m->created = c;
	sv_log(SV_LOG_INFO, g->name, "copy-storage in progress when qsupd went away: %zu "
	       "image%s created for it, kept if the stream comes in", json_array_size(c),
	       json_array_size(c) == 1 ? "" : "s");
}

void mc_in_stale(struct sv_guest *g)
{
	json_t *c = created_record(g);
	if (!c)
		return;
	sv_log(SV_LOG_WARN, g->name, "copy-storage in progress when qsupd went away, and its "
	       "QEMU is gone: removing the %zu image%s created for it, which the stream never "
	       "completed", json_array_size(c), json_array_size(c) == 1 ? "" : "s");
	remove_created(g, c);
	json_decref(c);
}
