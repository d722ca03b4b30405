/*
 * Migration without shared storage: copy-storage (migrate_int.h).
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
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/un.h>
#include <unistd.h>

#include "migrate_int.h"
#include "subproc.h"

#define JOB_PREFIX "qsup-mirror-"
#define NODE_PREFIX "qsup-mirror."
#define LAYER_PREFIX "qsup-layer."

static bool mc_live(void *ctx)
{
	struct sv_guest *g = ctx;
	return g->mig != NULL && g->mig->copy;
}

static const struct sv_step_kind mc_kind = { .live = mc_live };

static void step(struct sv_guest *g, const char *cmd, json_t *args, int fd, sv_step_fn fn)
{
	sv_step(g->qmp, &mc_kind, cmd, args, fd, fn, g);
}

static const char *disk_id(json_t *d)
{
	return sv_jstr(d, "id", "?");
}

/* What the source connects to now: a backing layer's export (ID.lK)
 * while those are copied, else the disk's (its active image). */
static const char *cur_id(struct sv_mig *m)
{
	if (m->layering)
		return sv_jstr(json_array_get(m->layers, m->li), "id", "?");
	return disk_id(json_array_get(m->disks, m->ci));
}

static void read_boot_id(char *buf, size_t size)
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

/* ---- the record a source qsupd leaves while the mirrors run ---- */

struct rec_job {
	uv_work_t work;
	char path[4200];
	char *text;             /* NULL: remove */
	char tmp[4300];
	struct sv_guest *g;
	json_t *rec;            /* read: what was there */
	void (*read_done)(struct sv_guest *g, json_t *rec);
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
	if (j->read_done) {
		j->rec = json_load_file(j->path, 0, NULL);
		return;
	}
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
	if (j->read_done && !j->g->freeing)
		j->read_done(j->g, j->rec);
	json_decref(j->rec);
	if (j->g)
		sv_guest_unhold(j->g);
	free(j->text);
	free(j);
}

/* Write (text) or remove (NULL) a record; or read it (read_done). */
static void record_at(struct sv_guest *g, bool in, char *text,
                      void (*read_done)(struct sv_guest *, json_t *))
{
	struct rec_job *j = calloc(1, sizeof(*j));
	if (!j) {
		free(text);
		return;
	}
	record_path(g, in, j->path, sizeof(j->path));
	j->text = text;
	j->read_done = read_done;
	j->g = g;
	j->work.data = j;
	sv_guest_hold(g);
	if (uv_queue_work(g->env->loop, &j->work, rec_work, rec_after) < 0) {
		sv_guest_unhold(g);
		free(j->text);
		free(j);
	}
}

static void record(struct sv_guest *g, char *text, void (*read_done)(struct sv_guest *, json_t *))
{
	record_at(g, false, text, read_done);
}

/* The destination's record: the images it made so far (before each is
 * made, so that one cut short is in it too). */
static void record_created(struct sv_guest *g)
{
	json_t *rec = json_pack("{s:O}", "created", g->mig->created);
	record_at(g, true, rec ? json_dumps(rec, JSON_COMPACT) : NULL, NULL);
	json_decref(rec);
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
			left |= !strncmp(sv_jstr(e, "id", ""), JOB_PREFIX, strlen(JOB_PREFIX)) &&
			        strcmp(sv_jstr(e, "status", ""), "concluded");
	if (left && ++c->tries < 100 && !c->g->freeing) {
		uv_timer_start(&c->timer, clean_tick, 100, 0);
		return;
	}
	/* The jobs are over: the targets go (and an fd never used). */
	json_array_foreach(c->ids, i, e) {
		char name[96];
		snprintf(name, sizeof(name), "%s%s", JOB_PREFIX, json_string_value(e));
		sv_qmp_fire(c->g->qmp, "job-dismiss", json_pack("{s:s}", "id", name));
		snprintf(name, sizeof(name), "%s%s", NODE_PREFIX, json_string_value(e));
		sv_qmp_fire(c->g->qmp, "blockdev-del", json_pack("{s:s}", "node-name", name));
		snprintf(name, sizeof(name), "qsup-nbd-%s", json_string_value(e));
		sv_qmp_fire(c->g->qmp, "closefd", json_pack("{s:s}", "fdname", name));
		snprintf(name, sizeof(name), "%s%s", LAYER_PREFIX, json_string_value(e));
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
		snprintf(job, sizeof(job), "%s%s", JOB_PREFIX, json_string_value(e));
		sv_qmp_fire(g->qmp, "block-job-cancel",
		            json_pack("{s:s, s:b}", "device", job, "force", 1));
	}
	sv_guest_hold(g);
	uv_timer_init(g->env->loop, &c->timer);
	c->timer.data = c;
	uv_timer_start(&c->timer, clean_tick, 100, 0);
}

/* The ids of what is copied: each disk's, and each backing layer's. */
static json_t *disk_ids(json_t *disks, json_t *layers)
{
	json_t *ids = json_array(), *d;
	size_t i;
	json_array_foreach(disks, i, d)
		json_array_append_new(ids, json_string(disk_id(d)));
	json_array_foreach(layers, i, d)
		json_array_append_new(ids, json_string(sv_jstr(d, "id", "?")));
	return ids;
}

/* The backing layers below each disk's active image, bottom first, each
 * with its export's name there: ID.lK (K from 0, the bottom). */
static json_t *backing_layers(json_t *disks)
{
	json_t *out = json_array(), *d, *l;
	size_t i, k;
	json_array_foreach(disks, i, d) {
		json_t *layers = json_object_get(d, "layers");
		json_array_foreach(layers, k, l) {
			char id[96];
			if (k + 1 >= json_array_size(layers))
				break;
			snprintf(id, sizeof(id), "%s.l%zu", disk_id(d), k);
			json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "id", id, "file",
			                      sv_jstr(l, "file", ""), "format", sv_jstr(l, "format",
			                      "raw")));
		}
	}
	return out;
}

/* ---- the source: the disks, the destination's answer ---- */

/* The file under an image's name as QEMU gives it: the name, or in a
 * "json:{...}" one (its options inline), the innermost file's filename. */
static json_t *file_of(const char *name)
{
	if (strncmp(name, "json:", 5))
		return json_string(name);
	json_t *o = json_loads(name + 5, 0, NULL), *f = o, *out = NULL;
	while (json_is_object(json_object_get(f, "file")))
		f = json_object_get(f, "file");
	if (f != o && json_is_string(json_object_get(f, "filename")))
		out = json_incref(json_object_get(f, "filename"));
	json_decref(o);
	return out ? out : json_string("?");
}

/* A disk's chain from query-block's image, bottom to top: [{file, format,
 * size}], the last one the active image. */
static json_t *chain_of(json_t *img)
{
	json_t *l = json_array();
	for (; img; img = json_object_get(img, "backing-image"))
		json_array_insert_new(l, 0, json_pack("{s:o, s:s, s:I}", "file", file_of(sv_jstr(img,
		                      "filename", "")), "format", sv_jstr(img, "format", "raw"),
		                      "size", json_integer_value(json_object_get(img,
		                      "virtual-size"))));
	return l;
}

/* The writable disks: the profile's and the hot-plugged ones, each with
 * QEMU's node, format and virtual size (blk: query-block). */
static json_t *source_disks(struct sv_guest *g, json_t *blk)
{
	const struct sv_profile *p = mig_prof(g);
	json_t *list = json_array(), *devs = sv_hotplug_export(g), *e;
	size_t i;
	for (size_t k = 0; p && k < p->ndrives; k++) {
		const struct sv_drive *d = &p->drives[k];
		if (d->cdrom || d->read_only || !d->file)
			continue;
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:b}", "id", d->id, "file",
		                      d->file, "format", d->format, "hotplug", 0));
	}
	json_array_foreach(devs, i, e) {
		json_t *spec = json_object_get(e, "spec");
		if (strcmp(sv_jstr(spec, "kind", ""), "disk") ||
		    json_is_true(json_object_get(spec, "read-only")) || !json_object_get(spec, "file"))
			continue;
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:b}", "id",
		                      sv_jstr(spec, "id", "?"), "file", sv_jstr(spec, "file", ""),
		                      "format", sv_jstr(spec, "format", "raw"), "hotplug", 1));
	}
	json_decref(devs);
	json_t *d;
	json_array_foreach(list, i, d) {
		size_t j;
		json_array_foreach(blk, j, e) {
			if (!sv_block_of(e, disk_id(d)))
				continue;
			json_t *ins = json_object_get(e, "inserted");
			json_t *img = json_object_get(ins, "image");
			json_object_set_new(d, "node", json_string(sv_jstr(ins, "node-name", "")));
			json_object_set(d, "size", json_object_get(img, "virtual-size"));
			if (json_object_get(img, "format"))
				json_object_set(d, "format", json_object_get(img, "format"));
			json_object_set_new(d, "backing", json_boolean(json_object_get(img,
			                    "backing-image") != NULL));
			if (json_object_get(img, "backing-image"))
				json_object_set_new(d, "layers", chain_of(img));
		}
		struct stat st;
		if (stat(sv_jstr(d, "file", ""), &st) == 0) {
			json_object_set_new(d, "dev", json_integer((json_int_t)st.st_dev));
			json_object_set_new(d, "ino", json_integer((json_int_t)st.st_ino));
		}
	}
	return list;
}

static bool hstep_live(void *ctx)
{
	struct sv_guest *g = ctx;
	return g->mig != NULL && g->mig->handover != NULL;
}

static const struct sv_step_kind hstep_kind = { .live = hstep_live };

/* QEMU opens every image through an fd set ("/dev/fdset/N"): the path
 * behind it, from the fd QEMU holds (query-fdsets), into buf. */
static bool fdset_file(struct sv_guest *g, json_t *fdsets, const char *name, char *buf,
                       size_t size)
{
	json_t *set;
	size_t i;
	char *end;
	long id = strtol(name + strlen("/dev/fdset/"), &end, 10);
	if (strncmp(name, "/dev/fdset/", strlen("/dev/fdset/")) || *end) {
		snprintf(buf, size, "%s", name);
		return true;
	}
	json_array_foreach(fdsets, i, set) {
		if (json_integer_value(json_object_get(set, "fdset-id")) != id)
			continue;
		char link[64];
		json_int_t fd = json_integer_value(json_object_get(json_array_get(
		                json_object_get(set, "fds"), 0), "fd"));
		snprintf(link, sizeof(link), "/proc/%d/fd/%lld", g->pid, (long long)fd);
		ssize_t n = g->pid > 0 ? readlink(link, buf, size - 1) : -1;
		if (n <= 0 || (size_t)n >= size - 1)
			return false;
		buf[n] = '\0';
		return buf[0] == '/';
	}
	return false;
}

/* The layers' paths (fdsets: query-fdsets), each overlay named as qsup
 * names it, after its disk's file as the profile spells it. */
static void chain_paths(struct sv_guest *g, json_t *disks, json_t *fdsets)
{
	json_t *d, *l;
	size_t i, k;
	json_array_foreach(disks, i, d) {
		char base[4200] = "", path[4200];
		json_array_foreach(json_object_get(d, "layers"), k, l) {
			if (!fdset_file(g, fdsets, sv_jstr(l, "file", ""), path, sizeof(path))) {
				json_object_set_new(l, "file", json_string("?"));
				continue;
			}
			struct stat st;
			size_t n = strlen(base);
			if (!k && stat(path, &st) == 0 &&
			    json_integer_value(json_object_get(d, "dev")) == (json_int_t)st.st_dev &&
			    json_integer_value(json_object_get(d, "ino")) == (json_int_t)st.st_ino) {
				snprintf(base, sizeof(base), "%s", path);
				snprintf(path, sizeof(path), "%s", sv_jstr(d, "file", ""));
			} else if (n && !strncmp(path, base, n) && !strncmp(path + n, ".snap", 5)) {
				char tail[4200];
				snprintf(tail, sizeof(tail), "%s", path + n);
				snprintf(path, sizeof(path), "%s%s", sv_jstr(d, "file", ""), tail);
			}
			json_object_set_new(l, "file", json_string(path));
		}
	}
}

static void disks_known(struct sv_guest *g, json_t *disks);

static void on_fdsets(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	json_t *disks = g->mig->disks;
	g->mig->disks = NULL;
	chain_paths(g, disks, r->status == 0 ? r->ret : NULL);
	disks_known(g, disks);
}

static void on_query_block(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	json_t *disks = source_disks(g, r->status == 0 ? r->ret : NULL), *d;
	size_t i;
	json_array_foreach(disks, i, d)
		if (json_object_get(d, "layers")) {
			json_decref(m->disks);
			m->disks = disks;
			sv_step(g->qmp, &hstep_kind, "query-fdsets", NULL, -1, on_fdsets, g);
			return;
		}
	disks_known(g, disks);
}

static void disks_known(struct sv_guest *g, json_t *disks)
{
	struct sv_mig *m = g->mig;
	char boot[64];
	json_t *d;
	size_t i;
	/* a disk QEMU does not show (no node): not sent, cannot be mirrored */
	for (i = 0; i < json_array_size(disks);) {
		d = json_array_get(disks, i);
		if (!json_object_get(d, "node") || !json_integer_value(json_object_get(d, "size")))
			json_array_remove(disks, i);
		else
			i++;
	}
	read_boot_id(boot, sizeof(boot));
	json_object_set(m->handover, "disks", disks);
	json_object_set_new(m->handover, "boot-id", json_string(boot));
	json_decref(m->disks);
	m->disks = disks;
	mig_ask_destination(g);
}

void mc_out_prepare(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	json_t *a = m->args;
	if (json_is_true(json_object_get(a, "copy-storage")))
		json_object_set_new(m->handover, "copy-storage", json_true());
	if (json_is_true(json_object_get(a, "force")))
		json_object_set_new(m->handover, "force", json_true());
	const struct sv_profile *p = mig_prof(g);
	if (p && p->migrate_tls == 1) {   /* psk: a fresh key for this migration */
		uint8_t key[32];
		if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
			mig_answer_err(g, "GenericError", "getrandom failed: no TLS key");
			mig_free(g);
			return;
		}
		for (size_t i = 0; i < sizeof(key); i++)
			snprintf(m->psk + 2 * i, 3, "%02x", key[i]);
		explicit_bzero(key, sizeof(key));
		json_object_set_new(m->handover, "tls-psk", json_string(m->psk));
	}
	sv_step(g->qmp, &hstep_kind, "query-block", NULL, -1, on_query_block, g);
}

static void out_fail(struct sv_guest *g, const char *why)
{
	struct sv_mig *m = g->mig;
	if (m->started && g->qmp)   /* QEMU resumes the guest (it ran before) */
		qmp_client_execute(g->qmp, "migrate_cancel", NULL, 0, NULL, NULL);
	if (g->state == SV_MIGRATING)
		sv_guest_transition(g, m->was_paused ? SV_PAUSED : SV_RUNNING, why);
	mig_out_abort(g, "MigrationFailed", why);
}

static void out_failf(struct sv_guest *g, const char *what, const struct qmp_result *r)
{
	char why[1400], s[700];
	mig_step_error(r, what, s, sizeof(s));
	snprintf(why, sizeof(why), "migration to %.300s: copy-storage: %s", g->mig->to ? g->mig->to
	         : g->mig->uri, s);
	out_fail(g, why);
}

static void next_mirror(struct sv_guest *g);
static void layer_done(struct sv_guest *g);

static void ram_if_ready(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (m->ci < json_array_size(m->disks) || m->nready < json_array_size(m->disks) ||
	    m->started || m->switching)
		return;
	sv_log(SV_LOG_INFO, g->name, "every disk is in sync on the destination; migrating RAM");
	mig_out_begin(g);
}

static void on_mirror(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0) {
		out_failf(g, "blockdev-mirror", r);
		return;
	}
	g->mig->ci++;
	next_mirror(g);
}

static void on_backup(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0)
		out_failf(g, "blockdev-backup", r);   /* else: its BLOCK_JOB_COMPLETED */
}

static void on_target(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	json_t *d = json_array_get(m->disks, m->ci);
	char job[96], node[96];
	if (r->status != 0) {
		out_failf(g, "blockdev-add (nbd)", r);
		return;
	}
	snprintf(job, sizeof(job), "%s%s", JOB_PREFIX, cur_id(m));
	snprintf(node, sizeof(node), "%s%s", NODE_PREFIX, cur_id(m));
	json_t *a;
	if (m->layering) {   /* a backing layer: its own clusters, from its own node */
		char src[96];
		snprintf(src, sizeof(src), "%s%s", LAYER_PREFIX, cur_id(m));
		a = json_pack("{s:s, s:s, s:s, s:s}", "job-id", job, "device", src, "target", node,
		              "sync", "top");
	} else {   /* the active image; over its copied backing layers: its own clusters */
		a = json_pack("{s:s, s:s, s:s, s:s}", "job-id", job, "device", sv_jstr(d, "node",
		              ""), "target", node, "sync", json_array_size(json_object_get(d,
		              "layers")) > 1 ? "top" : "full");
	}
	/* migrate's bandwidth caps each mirror too */
	json_t *bw = json_object_get(m->args, "bandwidth");
	uint64_t speed = 0;
	if (json_is_integer(bw) && json_integer_value(bw) > 0)
		speed = (uint64_t)json_integer_value(bw);
	else if (json_is_string(bw))
		sv_size_parse(json_string_value(bw), &speed);
	if (speed)
		json_object_set_new(a, "speed", json_integer((json_int_t)speed));
	if (m->layering)
		step(g, "blockdev-backup", a, -1, on_backup);
	else
		step(g, "blockdev-mirror", a, -1, on_mirror);
}

static void add_target(struct sv_guest *g, json_t *server)
{
	struct sv_mig *m = g->mig;
	char node[96];
	snprintf(node, sizeof(node), "%s%s", NODE_PREFIX, cur_id(m));
	json_t *a = json_pack("{s:s, s:s, s:o, s:s}", "driver", "nbd", "node-name", node, "server",
	                      server, "export", cur_id(m));
	if (m->psk[0])
		json_object_set_new(a, "tls-creds", json_string("qsup-tls"));
	step(g, "blockdev-add", a, -1, on_target);
}

static void on_nbd_fd(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	char name[96];
	if (r->status != 0) {
		out_failf(g, "getfd", r);
		return;
	}
	snprintf(name, sizeof(name), "qsup-nbd-%s", cur_id(g->mig));
	add_target(g, json_pack("{s:s, s:s}", "type", "fd", "str", name));
}

static void on_nbd_connected(struct sv_guest *g, int fd, int status)
{
	struct sv_mig *m = g->mig;
	char why[1400], name[96];
	if (!m->copy)
		return;
	if (status < 0) {
		snprintf(why, sizeof(why), "migration to %.300s: copy-storage: the destination's "
		         "NBD socket %s: %s", m->to, m->nbd + 5, uv_strerror(status));
		out_fail(g, why);
		return;
	}
	snprintf(name, sizeof(name), "qsup-nbd-%s", cur_id(m));
	step(g, "getfd", json_pack("{s:s}", "fdname", name), fd, on_nbd_fd);
}

/* The destination is an ssh:// host and its NBD export a unix socket
 * there (migrate --tunnel): the connection goes through ssh (sshlink.h),
 * and QEMU gets the fd as for a local socket. */
static void on_nbd_link(int fd, const char *why, void *arg)
{
	struct sv_guest *g = arg;
	struct sv_mig *m = g->mig;
	char msg[1400], name[96];
	if (g->freeing || !m || !m->copy || m->ending) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "migration to %.300s: copy-storage: the destination's "
		         "NBD socket %.300s, through ssh: %s", m->to, m->nbd + 5, why);
		out_fail(g, msg);
		return;
	}
	const char *id = cur_id(m);
	sv_log(SV_LOG_INFO, g->name, "copy-storage: disk %s: NBD through ssh to %s", id,
	       m->nbd + 5);
	snprintf(name, sizeof(name), "qsup-nbd-%s", id);
	step(g, "getfd", json_pack("{s:s}", "fdname", name), fd, on_nbd_fd);
	close(fd);   /* QEMU has its copy; the link stays until the migration ends */
}

static void nbd_through_ssh(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	struct sv_error err = { 0 };
	struct sv_sshlink **links = realloc(m->nbd_links, (m->nnbd_links + 1) * sizeof(*links));
	if (!links) {
		out_fail(g, "out of memory");
		return;
	}
	m->nbd_links = links;
	if (sv_sshlink_open(g->env->loop, m->to, m->nbd + 5, PEER_TIMEOUT_MS, on_nbd_link, g,
	                    &links[m->nnbd_links], &err) < 0) {
		char msg[1400];
		snprintf(msg, sizeof(msg), "copy-storage: %s", err.msg);
		out_fail(g, msg);
		return;
	}
	m->nnbd_links++;
}

/* The NBD connection to the export cur_id names, then its target node. */
static void connect_target(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!strncmp(m->nbd, "tcp:", 4)) {   /* QEMU connects itself, as for the stream */
		char host[600];
		snprintf(host, sizeof(host), "%s", m->nbd + 4);
		char *colon = strrchr(host, ':');
		if (!colon) {
			out_fail(g, "copy-storage: the destination gave no NBD port");
			return;
		}
		*colon = '\0';
		char *h = host;
		if (h[0] == '[' && colon[-1] == ']') {
			h++;
			colon[-1] = '\0';
		}
		add_target(g, json_pack("{s:s, s:s, s:s}", "type", "inet", "host", h, "port",
		                        colon + 1));
		return;
	}
	if (m->to && sv_ssh_uri_is(m->to)) {
		nbd_through_ssh(g);
		return;
	}
	mig_unix_connect(g, m->nbd + 5, on_nbd_connected);
}

/* The next disk: its NBD connection, its target node, its mirror. */
static void next_mirror(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (m->ci >= json_array_size(m->disks)) {
		ram_if_ready(g);
		return;
	}
	connect_target(g);
}

/* ---- the source: the backing layers of snapshot chains ----
 *
 * They do not change while the guest runs (it writes its active image
 * only): each one is opened once more here, on its own (backing: null,
 * read-only), and a backup job (sync=top: its own clusters) copies it into
 * the destination's export of the same layer, one after the other. Then
 * the mirrors of the active images (sync=top) as for any disk. */
static void next_layer(struct sv_guest *g);

static void on_layer_added(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0) {
		out_failf(g, "blockdev-add (a backing layer)", r);
		return;
	}
	connect_target(g);
}

static void on_layer_fd(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	json_t *l = json_array_get(m->layers, m->li);
	char node[96], fname[32];
	if (r->status != 0) {
		out_failf(g, "add-fd (a backing layer)", r);
		return;
	}
	json_int_t set = json_integer_value(json_object_get(r->ret, "fdset-id"));
	snprintf(node, sizeof(node), "%s%s", LAYER_PREFIX, sv_jstr(l, "id", ""));
	snprintf(fname, sizeof(fname), "/dev/fdset/%lld", (long long)set);
	json_t *a = json_pack("{s:s, s:s, s:b, s:{s:s, s:s, s:s}}", "driver", sv_jstr(l, "format",
	                      "raw"), "node-name", node, "read-only", 1, "file", "driver", "file",
	                      "filename", fname, "locking", "off");
	if (!strcmp(sv_jstr(l, "format", ""), "qcow2"))
		json_object_set_new(a, "backing", json_null());
	step(g, "blockdev-add", a, -1, on_layer_added);
	/* the node holds its own fd: the set goes once it is closed */
	sv_qmp_fire(g->qmp, "remove-fd", json_pack("{s:I}", "fdset-id", set));
}

static void next_layer(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (m->li >= json_array_size(m->layers)) {
		m->layering = false;
		m->ci = 0;
		next_mirror(g);
		return;
	}
	json_t *l = json_array_get(m->layers, m->li);
	sv_log(SV_LOG_INFO, g->name, "copy-storage: backing layer %s (%s)", sv_jstr(l, "id", ""),
	       sv_jstr(l, "file", ""));
	int fd = open(sv_jstr(l, "file", ""), O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char why[1400];
		snprintf(why, sizeof(why), "migration to %.300s: copy-storage: backing layer "
		         "%.600s: %s", m->to, sv_jstr(l, "file", ""), strerror(errno));
		out_fail(g, why);
		return;
	}
	step(g, "add-fd", json_pack("{s:s}", "opaque", sv_jstr(l, "file", "")), fd, on_layer_fd);
	close(fd);
}

static void on_layer_gone(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	if (r->status != 0)
		sv_log(SV_LOG_WARN, g->name, "blockdev-del: %s", r->status == QMP_EREPLY
		       ? r->err_desc : qmp_strerror(r->status));
	m->li++;
	next_layer(g);
}

static void on_layer_target_gone(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	char node[96];
	if (r->status != 0)
		sv_log(SV_LOG_WARN, g->name, "blockdev-del: %s", r->status == QMP_EREPLY
		       ? r->err_desc : qmp_strerror(r->status));
	snprintf(node, sizeof(node), "%s%s", LAYER_PREFIX, cur_id(m));
	step(g, "blockdev-del", json_pack("{s:s}", "node-name", node), -1, on_layer_gone);
}

/* The backup of the current layer completed: its target goes (which
 * flushes it there), then its node here, then the next layer. */
static void layer_done(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	char node[96];
	snprintf(node, sizeof(node), "%s%s", NODE_PREFIX, cur_id(m));
	step(g, "blockdev-del", json_pack("{s:s}", "node-name", node), -1, on_layer_target_gone);
}

/* The destination answered copy-storage (ret: its reply). */
void mc_out_begin(struct sv_guest *g, json_t *ret)
{
	struct sv_mig *m = g->mig;
	char why[1400];
	m->copy = true;
	m->was_paused = g->state == SV_PAUSED;
	snprintf(m->nbd, sizeof(m->nbd), "%s", sv_jstr(ret, "nbd", ""));
	if (strncmp(m->nbd, "unix:", 5) && strncmp(m->nbd, "tcp:", 4)) {
		snprintf(why, sizeof(why), "destination %s: copy-storage without an NBD address",
		         m->to);
		mig_out_abort(g, "MigrationFailed", why);
		return;
	}
	json_decref(m->layers);
	m->layers = backing_layers(m->disks);
	json_t *rec = json_pack("{s:s, s:o}", "to", m->to, "disks", disk_ids(m->disks,
	                        m->layers));
	record(g, json_dumps(rec, JSON_COMPACT), NULL);
	json_decref(rec);
	m->mirroring = true;
	m->started_ms = uv_now(g->env->loop);
	snprintf(why, sizeof(why), "copying its disks to %s (%s)", m->to, m->nbd);
	sv_guest_transition(g, SV_MIGRATING, why);
	sv_log(SV_LOG_INFO, g->name, "copy-storage: %zu disk%s to mirror into %s",
	       json_array_size(m->disks), json_array_size(m->disks) == 1 ? "" : "s", m->nbd);
	if (!m->wait)
		mig_answer_ok(g, json_pack("{s:s, s:s, s:b}", "status", "mirroring", "uri", m->uri,
		                           "copy-storage", 1));
	mig_timer_start(g);
	m->ci = 0;
	m->li = 0;
	if (json_array_size(m->layers)) {
		sv_log(SV_LOG_INFO, g->name, "copy-storage: %zu backing layer%s (snapshots) to "
		       "copy first", json_array_size(m->layers), json_array_size(m->layers) == 1
		       ? "" : "s");
		m->layering = true;
		next_layer(g);
		return;
	}
	next_mirror(g);
}

/* ---- the source: switch-over ---- */

static void on_continue(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0)
		out_failf(g, "migrate-continue", r);
}

static void on_target_gone(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	if (r->status != 0)
		sv_log(SV_LOG_WARN, g->name, "blockdev-del: %s", r->status == QMP_EREPLY
		       ? r->err_desc : qmp_strerror(r->status));
	if (++m->ci < json_array_size(m->disks)) {
		char node[96];
		snprintf(node, sizeof(node), "%s%s", NODE_PREFIX,
		         disk_id(json_array_get(m->disks, m->ci)));
		step(g, "blockdev-del", json_pack("{s:s}", "node-name", node), -1, on_target_gone);
		return;
	}
	m->mirroring = false;
	sv_log(SV_LOG_INFO, g->name, "copy-storage: every disk is complete on the destination; "
	       "switching over");
	step(g, "migrate-continue", json_pack("{s:s}", "state", "pre-switchover"), -1, on_continue);
}

static void all_ended(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	m->ci = (size_t)-1;
	struct qmp_result ok = { .status = 0 };
	on_target_gone(g, &ok);
}

static void on_cancel_ready(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0)
		out_failf(g, "block-job-cancel", r);
}

/* pre-switchover: the guest is paused; end every mirror (what is dirty is
 * copied first), then let the migration complete. */
void mc_out_switchover(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!m->copy || m->switching)
		return;
	m->switching = true;
	m->nended = 0;
	json_t *d;
	size_t i;
	if (!json_array_size(m->disks)) {
		all_ended(g);
		return;
	}
	json_array_foreach(m->disks, i, d) {
		char job[96];
		snprintf(job, sizeof(job), "%s%s", JOB_PREFIX, disk_id(d));
		step(g, "block-job-cancel", json_pack("{s:s}", "device", job), -1, on_cancel_ready);
	}
}

void mc_job_event(struct sv_guest *g, const char *name, json_t *data)
{
	struct sv_mig *m = g->mig;
	const char *job = sv_jstr(data, "device", "");
	if (!m || !m->copy || m->role != ROLE_OUT || !m->mirroring || m->ending ||
	    strncmp(job, JOB_PREFIX, strlen(JOB_PREFIX)))
		return;
	const char *err = json_string_value(json_object_get(data, "error"));
	char why[1400];
	if (m->layering) {   /* a backing layer's backup (no other job runs) */
		if (!strcmp(name, "BLOCK_JOB_COMPLETED") && !err &&
		    !strcmp(job + strlen(JOB_PREFIX), cur_id(m))) {
			layer_done(g);
			return;
		}
		if (!strcmp(name, "BLOCK_JOB_COMPLETED") || !strcmp(name, "BLOCK_JOB_CANCELLED") ||
		    !strcmp(name, "BLOCK_JOB_ERROR")) {
			snprintf(why, sizeof(why), "migration to %.300s: copy-storage: the copy of "
			         "backing layer %s failed: %s", m->to, job + strlen(JOB_PREFIX), err
			         ? err : !strcmp(name, "BLOCK_JOB_ERROR") ? "I/O error" : "cancelled");
			out_fail(g, why);
		}
		return;
	}
	if (!strcmp(name, "BLOCK_JOB_READY")) {
		if (!m->switching) {
			m->nready++;
			sv_log(SV_LOG_INFO, g->name, "copy-storage: disk %s in sync (%zu of %zu)",
			       job + strlen(JOB_PREFIX), m->nready, json_array_size(m->disks));
			ram_if_ready(g);
		}
		return;
	}
	if (!strcmp(name, "BLOCK_JOB_COMPLETED") && !err && m->switching) {
		if (!m->nended)
			m->disk_done = m->disk_total = 0;
		m->disk_done += json_integer_value(json_object_get(data, "offset"));
		m->disk_total += json_integer_value(json_object_get(data, "len"));
		if (++m->nended == json_array_size(m->disks))
			all_ended(g);
		return;
	}
	if (!strcmp(name, "BLOCK_JOB_COMPLETED") || !strcmp(name, "BLOCK_JOB_CANCELLED") ||
	    (!strcmp(name, "BLOCK_JOB_ERROR"))) {
		snprintf(why, sizeof(why), "migration to %.300s: copy-storage: the mirror of disk %s "
		         "%s%s", m->to, job + strlen(JOB_PREFIX), err ? "failed: " :
		         !strcmp(name, "BLOCK_JOB_ERROR") ? "failed: I/O error on " :
		         "ended early", err ? err : !strcmp(name, "BLOCK_JOB_ERROR")
		         ? sv_jstr(data, "operation", "?") : "");
		out_fail(g, why);
	}
}

/* ---- progress ---- */

static void on_block_jobs(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	json_int_t done = 0, total = 0;
	size_t i;
	json_t *e;
	if (r->status != 0 || !m->mirroring)
		return;
	json_array_foreach(r->ret, i, e) {
		if (strncmp(sv_jstr(e, "device", ""), JOB_PREFIX, strlen(JOB_PREFIX)))
			continue;
		done += json_integer_value(json_object_get(e, "offset"));
		total += json_integer_value(json_object_get(e, "len"));
	}
	m->disk_done = done;
	m->disk_total = total;
	if (m->started)
		return;   /* the RAM's progress carries them */
	json_t *o = json_pack("{s:s, s:s, s:I}", "status", "mirroring", "uri", m->uri,
	                      "elapsed-ms", (json_int_t)(uv_now(g->env->loop) - m->started_ms));
	mc_figures(g, o);
	sv_emit(g->route, json_pack("{s:s, s:s, s:o}", "event", "MIGRATION_PROGRESS", "guest",
	        g->name, "data", o));
}

void mc_poll(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (m && m->copy && m->mirroring && m->role == ROLE_OUT)
		step(g, "query-block-jobs", NULL, -1, on_block_jobs);
}

void mc_figures(struct sv_guest *g, json_t *o)
{
	struct sv_mig *m = g->mig;
	if (!m || !m->copy || m->role != ROLE_OUT)
		return;
	json_object_set_new(o, "copy-storage", json_true());
	json_object_set_new(o, "disk-transferred", json_integer(m->disk_done));
	json_object_set_new(o, "disk-total", json_integer(m->disk_total));
}

/* ---- the destination ---- */

static void in_fail(struct sv_guest *g, const char *cls, const char *why)
{
	mig_answer_err(g, cls, why);
	g->force_kill = true;
	sv_guest_signal(g, SIGKILL);
}

static void in_failf(struct sv_guest *g, const char *what, const struct qmp_result *r)
{
	char why[700];
	mig_step_error(r, what, why, sizeof(why));
	in_fail(g, "GenericError", why);
}

/* Where a hot-plugged disk goes here: STATE-DIR/NAME.copied/ID.img
 * (.qcow2 for qcow2). */
static bool copy_path(struct sv_guest *g, json_t *d, char *buf, size_t size)
{
	const char *id = disk_id(d);
	if (strchr(id, '/') || id[0] == '.')
		return false;
	int n = snprintf(buf, size, "%s/%s.copied/%s.%s", g->env->state_dir, g->name, id,
	                 strcmp(sv_jstr(d, "format", "raw"), "qcow2") ? "img" : "qcow2");
	return n > 0 && (size_t)n < size;
}

/* The handed-over hot-plugged disk id now lives at path. */
static void repoint_device(json_t *args, const char *id, const char *path)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(args, "devices"), i, e) {
		json_t *spec = json_object_get(e, "spec");
		if (!strcmp(sv_jstr(spec, "kind", ""), "disk") && !strcmp(sv_jstr(spec, "id", ""), id))
			json_object_set_new(spec, "file", json_string(path));
	}
}

/* Refuse before anything was made here. */
static bool refuse(struct sv_guest *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool refuse(struct sv_guest *g, const char *fmt, ...)
{
	char msg[1500];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mig_answer_err(g, "InvalidState", msg);
	mig_free(g);
	return true;
}

static void create_next(struct sv_guest *g);

static void on_created(void *data, bool ok)
{
	struct sv_guest *g = data;
	struct sv_mig *m = g->mig;
	sv_guest_unhold(g);
	if (g->freeing || !m || !m->copy || m->role != ROLE_IN || !m->nready)
		return;   /* the migration went meanwhile (mig_free removed the file) */
	m->nready = 0;
	json_t *d = json_array_get(m->layers, m->li);
	if (!ok) {
		char log[4200], tail[600] = "";
		snprintf(log, sizeof(log), "%s/%s.copy-storage.log", g->env->state_dir, g->name);
		FILE *f = fopen(log, "r");
		if (f) {
			size_t n = fread(tail, 1, sizeof(tail) - 1, f);
			tail[n] = '\0';
			tail[strcspn(tail, "\n")] = '\0';
			fclose(f);
		}
		refuse(g, "%s: copy-storage: qemu-img create %s: %s", g->name,
		       sv_jstr(d, "path", "?"), tail[0] ? tail : "failed");
		return;
	}
	sv_log(SV_LOG_INFO, g->name, "copy-storage: created %s (%s, %lld bytes)",
	       sv_jstr(d, "path", "?"), sv_jstr(d, "format", "?"),
	       (long long)json_integer_value(json_object_get(d, "size")));
	m->li++;
	create_next(g);
}

static void create_next(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (m->li >= json_array_size(m->layers)) {
		mig_dest_start(g, m->args);
		return;
	}
	json_t *d = json_array_get(m->layers, m->li);
	char log[4200], size[32];
	snprintf(log, sizeof(log), "%s/%s.copy-storage.log", g->env->state_dir, g->name);
	snprintf(size, sizeof(size), "%lld", (long long)json_integer_value(json_object_get(d,
	         "size")));
	const char *args[] = { "create", "-q", "-f", sv_jstr(d, "format", "raw"), "--",
	                       sv_jstr(d, "path", ""), size, NULL };
	const char *over[] = { "create", "-q", "-f", "qcow2", "-b", sv_jstr(d, "backing", ""),
	                       "-F", sv_jstr(d, "backing-format", "raw"), "--",
	                       sv_jstr(d, "path", ""), size, NULL };
	json_array_append_new(m->created, json_string(sv_jstr(d, "path", "")));
	record_created(g);
	m->nready = 1;   /* qemu-img runs */
	sv_guest_hold(g);
	int rc = sv_qemu_img(g->env->loop, log, json_object_get(d, "backing") ? over : args,
	                     on_created, g, &m->img);
	if (rc < 0) {
		sv_guest_unhold(g);
		m->nready = 0;
		refuse(g, "%s: copy-storage: cannot run qemu-img: %s", g->name, strerror(-rc));
	}
}

static const struct sv_drive *profile_drive(struct sv_guest *g, const char *id)
{
	const struct sv_profile *p = mig_prof(g);
	for (size_t k = 0; p && k < p->ndrives; k++)
		if (!strcmp(p->drives[k].id, id))
			return &p->drives[k];
	return NULL;
}

/* A disk with a snapshot chain (d's layers, bottom first, the source's
 * paths): each layer's path here, by qsup's own naming (an overlay
 * BASE.snapN.qcow2 next to its disk's file BASE); map gets source path ->
 * path here. False, why set: a chain qsup did not make, or a layer here
 * already (without force). */
static bool map_layers(json_t *d, json_t *map, bool force, char *why, size_t size)
{
	json_t *layers = json_object_get(d, "layers"), *l;
	const char *sbase = sv_jstr(d, "file", ""), *dbase = sv_jstr(d, "path", "");
	size_t k, n = strlen(sbase);
	json_array_foreach(layers, k, l) {
		const char *f = sv_jstr(l, "file", ""), *tail = f + n;
		char path[4200];
		if (!k) {
			if (strcmp(f, sbase)) {
				snprintf(why, size, "disk %s has a backing chain that is not qsup's "
				         "snapshots (its file %.500s is backed by %.500s): copy-storage "
				         "carries snapshot overlays only: flatten it first, or use "
				         "shared storage", disk_id(d), sbase, f);
				return false;
			}
			snprintf(path, sizeof(path), "%s", dbase);
		} else {
			size_t digits = strncmp(f, sbase, n) || strncmp(tail, ".snap", 5) ? 0
			                : strspn(tail + 5, "0123456789");
			if (!digits || strcmp(tail + 5 + digits, ".qcow2") ||
			    strcmp(sv_jstr(l, "format", ""), "qcow2")) {
				snprintf(why, size, "disk %s has a backing chain that is not qsup's "
				         "snapshots (%.500s is no snapshot overlay of %.500s): "
				         "copy-storage carries snapshot overlays only: flatten it "
				         "first, or use shared storage", disk_id(d), f, sbase);
				return false;
			}
			if (snprintf(path, sizeof(path), "%s%s", dbase, tail) >= (int)sizeof(path)) {
				snprintf(why, size, "disk %s: a layer's path is too long", disk_id(d));
				return false;
			}
			struct stat st;
			if (stat(path, &st) == 0 && !force) {
				snprintf(why, size, "copy-storage: %.600s already exists here and would "
				         "be overwritten (disk %s, a snapshot layer); --force to "
				         "overwrite it", path, disk_id(d));
				return false;
			}
		}
		if (!json_integer_value(json_object_get(l, "size"))) {
			snprintf(why, size, "disk %s: a layer without a size", disk_id(d));
			return false;
		}
		json_object_set_new(l, "path", json_string(path));
		json_object_set_new(map, f, json_string(path));
	}
	return true;
}

/* One image of the snapshot record (rec's {file}), now at its path here. */
static bool map_file(json_t *map, json_t *l)
{
	json_t *to = json_object_get(map, sv_jstr(l, "file", ""));
	if (!to)
		return false;
	json_object_set(l, "file", to);
	return true;
}

/* The source's snapshot record, its images at their paths here. False,
 * why set: an image outside the chains copied, or a memory state. */
static bool map_record(json_t *rec, json_t *map, char *why, size_t size)
{
	json_t *s, *l;
	const char *id;
	size_t i;
	if (!json_is_object(rec))
		return true;
	json_array_foreach(json_object_get(rec, "snapshots"), i, s) {
		const char *name = sv_jstr(s, "name", "?");
		if (json_is_string(json_object_get(s, "memory"))) {
			snprintf(why, size, "snapshot %s has a memory state (%.500s): copy-storage "
			         "does not carry memory states; delete the snapshot first, or use "
			         "shared storage", name, sv_jstr(s, "memory", ""));
			return false;
		}
		json_object_foreach(json_object_get(s, "layers"), id, l)
			if (!map_file(map, l)) {
				snprintf(why, size, "snapshot %s: disk %s's image %.500s is not in the "
				         "chain the guest runs on (a snapshot of another branch, since a "
				         "revert): copy-storage carries that chain only; delete snapshot "
				         "%s first, or use shared storage", name, id, sv_jstr(l, "file",
				         ""), name);
				return false;
			}
	}
	json_object_foreach(json_object_get(rec, "active"), id, l)
		if (!map_file(map, l)) {
			snprintf(why, size, "disk %s's active image %.500s was not copied", id,
			         sv_jstr(l, "file", ""));
			return false;
		}
	return true;
}

/* The images to create, bottom first: a disk's own, or each layer of its
 * chain (those exported through a node of their own: node, export). */
static json_t *images_to_create(json_t *disks)
{
	json_t *out = json_array(), *d, *l;
	size_t i, k;
	json_array_foreach(disks, i, d) {
		json_t *layers = json_object_get(d, "layers");
		if (json_array_size(layers) < 2) {
			json_array_append_new(out, json_pack("{s:s, s:s, s:O}", "path", sv_jstr(d,
			                      "path", ""), "format", sv_jstr(d, "format", "raw"),
			                      "size", json_object_get(d, "size")));
			continue;
		}
		json_array_foreach(layers, k, l) {
			char node[96], name[96];
			bool top = k + 1 == json_array_size(layers);
			snprintf(node, sizeof(node), "qsup-cs.%s.l%zu", disk_id(d), k);
			snprintf(name, sizeof(name), top ? "%s" : "%s.l%zu", disk_id(d), k);
			json_t *e = json_pack("{s:s, s:s, s:O, s:s, s:s}", "path", sv_jstr(l, "path",
			                      ""), "format", sv_jstr(l, "format", "raw"), "size",
			                      json_object_get(l, "size"), "node", node, "export", name);
			if (k) {
				json_t *below = json_array_get(layers, k - 1);
				json_object_set_new(e, "backing", json_string(sv_jstr(below, "path", "")));
				json_object_set_new(e, "backing-format", json_string(sv_jstr(below,
				                    "format", "raw")));
			}
			json_array_append_new(out, e);
		}
	}
	return out;
}

bool mc_in_prepare(struct sv_guest *g, json_t *args)
{
	struct sv_mig *m = g->mig;
	json_t *src = json_object_get(args, "disks"), *d;
	bool asked = json_is_true(json_object_get(args, "copy-storage"));
	bool force = json_is_true(json_object_get(args, "force"));
	size_t i, missing = 0;
	char boot[64], have[600] = "", lack[600] = "";
	if (!json_is_array(src) || !json_array_size(src))
		return asked ? refuse(g, "%s: copy-storage: the source sent no disk to copy",
		                      g->name) : false;
	read_boot_id(boot, sizeof(boot));
	json_t *disks = json_deep_copy(src);
	json_decref(m->disks);
	m->disks = disks;
	json_array_foreach(disks, i, d) {
		const char *id = disk_id(d);
		const char *path = sv_jstr(d, "file", "");
		char hp[4200];
		if (json_is_true(json_object_get(d, "hotplug"))) {
			/* A hot-plugged disk: under this host's state dir (its profile
			 * names no path for it), and the device replayed on it. */
			if (!copy_path(g, d, hp, sizeof(hp)))
				return refuse(g, "%s: copy-storage: hot-plugged disk %s: bad id", g->name,
				              id);
			path = hp;
		} else {
			const struct sv_drive *dr = profile_drive(g, id);
			if (!dr || !dr->file || dr->cdrom)
				return refuse(g, "%s: the profile here has no disk %s", g->name, id);
			path = dr->file;
		}
		if (path[0] != '/' || !json_integer_value(json_object_get(d, "size")))
			return refuse(g, "%s: copy-storage: disk %s: bad path or size", g->name, id);
		json_object_set_new(d, "path", json_string(path));
		struct stat st;
		bool exists = stat(path, &st) == 0;
		json_object_set_new(d, "exists", json_boolean(exists));
		if (!exists) {
			missing++;
			snprintf(lack, sizeof(lack), "%.500s", path);
		} else {
			snprintf(have, sizeof(have), "%.500s", path);
			/* the source's own file (same host, or shared storage) */
			if (!strcmp(boot, sv_jstr(args, "boot-id", "")) &&
			    json_integer_value(json_object_get(d, "dev")) == (json_int_t)st.st_dev &&
			    json_integer_value(json_object_get(d, "ino")) == (json_int_t)st.st_ino)
				json_object_set_new(d, "same", json_true());
		}
	}
	if (!asked && !missing)
		return false;   /* shared storage: the stream only */
	json_array_foreach(disks, i, d)
		if (!asked && json_is_true(json_object_get(d, "backing")))
			return false;   /* not automatic with a chain (--copy-storage carries
			                   it): the snapshot record's own checks say what is
			                   missing */
	if (!asked && missing < json_array_size(disks))
		return refuse(g, "%s: this host lacks %s but has %s: give --copy-storage (and "
		              "--force to overwrite what is here), or make both present", g->name,
		              lack, have);
	json_array_foreach(disks, i, d) {
		const char *path = sv_jstr(d, "path", "");
		if (json_is_true(json_object_get(d, "same")))
			return refuse(g, "%s: copy-storage: %s is the source's own image (shared "
			              "storage): migrate without --copy-storage", g->name, path);
		if (json_is_true(json_object_get(d, "exists")) && !force)
			return refuse(g, "%s: copy-storage: %s already exists here and would be "
			              "overwritten (disk %s); --force to overwrite it", g->name, path,
			              disk_id(d));
		if (json_is_true(json_object_get(d, "backing")) &&
		    json_array_size(json_object_get(d, "layers")) < 2)
			return refuse(g, "%s: copy-storage: disk %s has a backing chain (snapshots "
			              "or a backing file) the source did not describe: flatten it "
			              "first, or use shared storage", g->name, disk_id(d));
	}
	/* Snapshot chains: every layer here, and the record naming them. */
	json_t *map = json_object();
	char why[1400];
	bool ok = true;
	json_array_foreach(disks, i, d)
		if (ok && json_array_size(json_object_get(d, "layers")) > 1)
			ok = map_layers(d, map, force, why, sizeof(why));
	if (ok)
		ok = map_record(json_object_get(args, "snapshots"), map, why, sizeof(why));
	json_decref(map);
	if (!ok)
		return refuse(g, "%s: copy-storage: %s", g->name, why);
	json_array_foreach(disks, i, d) {
		if (!json_is_true(json_object_get(d, "hotplug")))
			continue;
		char dir[4200];
		snprintf(dir, sizeof(dir), "%s/%s.copied", g->env->state_dir, g->name);
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return refuse(g, "%s: copy-storage: cannot create %s: %s", g->name, dir,
			              strerror(errno));
		repoint_device(args, disk_id(d), sv_jstr(d, "path", ""));
	}
	m->copy = true;
	m->created = json_array();
	json_decref(m->layers);
	m->layers = images_to_create(disks);
	m->ci = m->li = 0;
	sv_log(SV_LOG_INFO, g->name, "copy-storage%s: creating %zu image%s", asked ? ""
	       : " (this host lacks the disks)", json_array_size(m->layers),
	       json_array_size(m->layers) == 1 ? "" : "s");
	create_next(g);
	return true;
}

/* The exports, one disk after the other, then the migration's setup. */
static void export_next(struct sv_guest *g);

static void on_exported(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0) {
		in_failf(g, "block-export-add", r);
		return;
	}
	g->mig->ci++;
	export_next(g);
}

/* A snapshot chain's layers: each file opened once more, writable and on
 * its own (backing: null), and exported. The chain QEMU will run on stays
 * inactive until the guest resumes here, and then reads what came. */
static void export_layer(struct sv_guest *g);

static void on_layer_exported(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0) {
		in_failf(g, "block-export-add (a snapshot layer)", r);
		return;
	}
	g->mig->li++;
	export_layer(g);
}

static void on_layer_node(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	json_t *l = json_array_get(g->mig->layers, g->mig->li);
	char id[128];
	if (r->status != 0) {
		in_failf(g, "blockdev-add (a snapshot layer)", r);
		return;
	}
	snprintf(id, sizeof(id), "qsup-export.%s", sv_jstr(l, "node", ""));
	step(g, "block-export-add", json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "nbd", "id", id,
	     "node-name", sv_jstr(l, "node", ""), "name", sv_jstr(l, "export", ""), "writable", 1),
	     -1, on_layer_exported);
}

static void on_layer_fd_in(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	json_t *l = json_array_get(g->mig->layers, g->mig->li);
	char fname[32];
	if (r->status != 0) {
		in_failf(g, "add-fd (a snapshot layer)", r);
		return;
	}
	json_int_t set = json_integer_value(json_object_get(r->ret, "fdset-id"));
	snprintf(fname, sizeof(fname), "/dev/fdset/%lld", (long long)set);
	json_t *a = json_pack("{s:s, s:s, s:b, s:{s:s, s:s, s:s}}", "driver", sv_jstr(l, "format",
	                      "raw"), "node-name", sv_jstr(l, "node", ""), "read-only", 0, "file",
	                      "driver", "file", "filename", fname, "locking", "off");
	if (!strcmp(sv_jstr(l, "format", ""), "qcow2"))
		json_object_set_new(a, "backing", json_null());
	step(g, "blockdev-add", a, -1, on_layer_node);
	sv_qmp_fire(g->qmp, "remove-fd", json_pack("{s:I}", "fdset-id", set));
}

static void export_layer(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	json_t *l;
	while ((l = json_array_get(m->layers, m->li)) && !json_object_get(l, "node"))
		m->li++;
	if (!l) {
		sv_log(SV_LOG_INFO, g->name, "copy-storage: %zu disk%s exported on %s",
		       json_array_size(m->disks), json_array_size(m->disks) == 1 ? "" : "s", m->nbd);
		mig_in_setup_caps(g);
		return;
	}
	int fd = open(sv_jstr(l, "path", ""), O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		char why[1400];
		snprintf(why, sizeof(why), "copy-storage: %.600s: %s", sv_jstr(l, "path", ""),
		         strerror(errno));
		in_fail(g, "GenericError", why);
		return;
	}
	step(g, "add-fd", json_pack("{s:s}", "opaque", sv_jstr(l, "path", "")), fd, on_layer_fd_in);
	close(fd);
}

static void export_next(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	while (m->ci < json_array_size(m->disks) &&
	       json_array_size(json_object_get(json_array_get(m->disks, m->ci), "layers")) > 1)
		m->ci++;   /* a chain: its layers, below */
	if (m->ci >= json_array_size(m->disks)) {
		m->li = 0;
		export_layer(g);
		return;
	}
	json_t *d = json_array_get(m->disks, m->ci);
	char id[96];
	snprintf(id, sizeof(id), "qsup-export.%s", disk_id(d));
	step(g, "block-export-add", json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "nbd", "id", id,
	     "node-name", sv_jstr(d, "node", ""), "name", disk_id(d), "writable", 1), -1,
	     on_exported);
}

static void on_dest_blocks(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	json_t *d, *e;
	size_t i, j;
	if (r->status != 0) {
		in_failf(g, "query-block", r);
		return;
	}
	json_array_foreach(m->disks, i, d) {
		json_array_foreach(r->ret, j, e)
			if (sv_block_of(e, disk_id(d)))
				json_object_set_new(d, "node", json_string(sv_jstr(json_object_get(e,
				                    "inserted"), "node-name", "")));
		if (!*sv_jstr(d, "node", "")) {
			char why[300];
			snprintf(why, sizeof(why), "copy-storage: disk %s is not in QEMU here",
			         disk_id(d));
			in_fail(g, "GenericError", why);
			return;
		}
	}
	m->ci = 0;
	export_next(g);
}

static void on_nbd_started(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0) {
		in_failf(g, "nbd-server-start", r);
		return;
	}
	step(g, "query-block", NULL, -1, on_dest_blocks);
}

static void on_listen_fd(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	close(m->nbd_fd);
	m->nbd_fd = -1;
	if (r->status != 0) {
		in_failf(g, "getfd", r);
		return;
	}
	json_t *a = json_pack("{s:{s:s, s:{s:s}}}", "addr", "type", "fd", "data", "str",
	                      "qsup-nbd");
	if (m->psk[0])   /* only the holder of this migration's key gets in */
		json_object_set_new(a, "tls-creds", json_string("qsup-tls"));
	step(g, "nbd-server-start", a, -1, on_nbd_started);
}

/* A listening socket for the NBD server, on the stream's address: a unix
 * socket in QEMU's dir, or the tcp host on a port the kernel picks. */
static int nbd_listen(struct sv_guest *g, char *err, size_t size)
{
	struct sv_mig *m = g->mig;
	int fd = -1;
	if (!strncmp(m->uri, "tcp:", 4)) {
		char host[600];
		snprintf(host, sizeof(host), "%s", m->uri + 4);
		char *colon = strrchr(host, ':');
		if (colon)
			*colon = '\0';
		char *h = host;
		if (h[0] == '[' && strlen(h) > 1 && h[strlen(h) - 1] == ']') {
			h[strlen(h) - 1] = '\0';
			h++;
		}
		struct sockaddr_storage ss = { 0 };
		socklen_t len;
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		if (inet_pton(AF_INET, h, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			len = sizeof(*s4);
		} else if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			len = sizeof(*s6);
		} else {
			snprintf(err, size, "copy-storage needs a numeric address in the tcp URI, "
			         "not '%.200s'", h);
			return -1;
		}
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0 ||
		    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
			snprintf(err, size, "NBD socket on %s: %s", h, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		int port = ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
		snprintf(m->nbd, sizeof(m->nbd), ss.ss_family == AF_INET6 ? "tcp:[%s]:%d"
		         : "tcp:%s:%d", h, port);
		return fd;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/qemu/nbd.sock", g->rundir);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		snprintf(err, size, "the run dir is too long for the NBD socket");
		return -1;
	}
	unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		snprintf(err, size, "NBD socket %s: %s", sa.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	chmod(sa.sun_path, 0600);
	snprintf(m->nbd, sizeof(m->nbd), "unix:%s", sa.sun_path);
	return fd;
}

void mc_in_export(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	char err[700];
	int fd = nbd_listen(g, err, sizeof(err));
	if (fd < 0) {
		in_fail(g, "GenericError", err);
		return;
	}
	m->nbd_fd = fd;
	step(g, "getfd", json_pack("{s:s}", "fdname", "qsup-nbd"), fd, on_listen_fd);
}

/* The layers' own nodes go (their exports went with the server), then
 * the guest resumes on its chain. */
static void del_layer_node(struct sv_guest *g);

static void on_layer_node_gone(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0)
		sv_log(SV_LOG_WARN, g->name, "blockdev-del: %s", r->status == QMP_EREPLY
		       ? r->err_desc : qmp_strerror(r->status));
	g->mig->li++;
	del_layer_node(g);
}

static void del_layer_node(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	json_t *l;
	while ((l = json_array_get(m->layers, m->li)) && !json_object_get(l, "node"))
		m->li++;
	if (!l) {
		mig_in_resume(g);
		return;
	}
	step(g, "blockdev-del", json_pack("{s:s}", "node-name", sv_jstr(l, "node", "")), -1,
	     on_layer_node_gone);
}

static void on_nbd_stopped(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	if (r->status != 0)
		sv_log(SV_LOG_WARN, g->name, "nbd-server-stop: %s", r->status == QMP_EREPLY
		       ? r->err_desc : qmp_strerror(r->status));
	g->mig->li = 0;
	del_layer_node(g);
}

/* The stream is in (and with it every disk, completed at switch-over):
 * the exports go before the guest runs here. */
void mc_in_completed(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	m->in_done = true;
	record_at(g, true, NULL, NULL);   /* the images are the guest's now */
	sv_log(SV_LOG_INFO, g->name, "copy-storage: the disks are in; stopping the NBD server");
	step(g, "nbd-server-stop", NULL, -1, on_nbd_stopped);
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
		out_fail(g, why);
	else
		in_fail(g, "GenericError", why);
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
		return refuse(g, "%s: the source's TLS key is not 64 hex digits", g->name);
	if (key) {
		snprintf(m->psk, sizeof(m->psk), "%s", key);
		return false;
	}
	if (p && p->migrate_tls == 1)
		return refuse(g, "%s: the profile here asks for TLS ([migration] tls = psk) but the "
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
		record(g, NULL, NULL);
		if (!m->completed && m->mirroring) {
			json_t *ids = disk_ids(m->disks, m->layers);
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
	record(g, NULL, NULL);
}

void mc_adopt(struct sv_guest *g)
{
	record(g, NULL, on_record);
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
