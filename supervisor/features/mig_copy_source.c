/*
 * Copy-storage: the source (mig_copy_int.h; the whole is told in
 * mig_copy.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mig_copy_int.h"

/* What the source connects to now: a backing layer's export (ID.lK)
 * while those are copied, else the disk's (its active image). */
static const char *cur_id(struct sv_mig *m)
{
	if (m->layering)
		return sv_jstr(json_array_get(m->layers, m->li), "id", "?");
	return mc_disk_id(json_array_get(m->disks, m->ci));
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
			snprintf(id, sizeof(id), "%s.l%zu", mc_disk_id(d), k);
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
			if (!sv_block_of(e, mc_disk_id(d)))
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
	mc_boot_id(boot, sizeof(boot));
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

void mc_out_fail(struct sv_guest *g, const char *why)
{
	struct sv_mig *m = g->mig;
	if (m->started && g->qmp)   /* QEMU resumes the guest (it ran before) */
		qmp_client_execute(g->qmp, "migrate_cancel", NULL, 0, NULL, NULL);
	if (g->state == SV_MIGRATING)
		sv_guest_transition(g, m->was_paused ? SV_PAUSED : SV_RUNNING, why);
	mig_out_abort(g, "MigrationFailed", why);
}

/* The source gives up, saying so: "migration to TO: copy-storage: " and
 * what fmt says. */
static void out_failm(struct sv_guest *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_failm(struct sv_guest *g, const char *fmt, ...)
{
	char why[1400];
	va_list ap;
	int n = snprintf(why, sizeof(why), "migration to %.300s: copy-storage: ", g->mig->to
	                 ? g->mig->to : g->mig->uri);
	va_start(ap, fmt);
	vsnprintf(why + n, sizeof(why) - (size_t)n, fmt, ap);
	va_end(ap);
	mc_out_fail(g, why);
}

static void out_failf(struct sv_guest *g, const char *what, const struct qmp_result *r)
{
	char s[700];
	mig_step_error(r, what, s, sizeof(s));
	out_failm(g, "%s", s);
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
	snprintf(job, sizeof(job), "%s%s", MC_JOB_PREFIX, cur_id(m));
	snprintf(node, sizeof(node), "%s%s", MC_NODE_PREFIX, cur_id(m));
	json_t *a;
	if (m->layering) {   /* a backing layer: its own clusters, from its own node */
		char src[96];
		snprintf(src, sizeof(src), "%s%s", MC_LAYER_PREFIX, cur_id(m));
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
		mc_step(g, "blockdev-backup", a, -1, on_backup);
	else
		mc_step(g, "blockdev-mirror", a, -1, on_mirror);
}

static void add_target(struct sv_guest *g, json_t *server)
{
	struct sv_mig *m = g->mig;
	char node[96];
	snprintf(node, sizeof(node), "%s%s", MC_NODE_PREFIX, cur_id(m));
	json_t *a = json_pack("{s:s, s:s, s:o, s:s}", "driver", "nbd", "node-name", node, "server",
	                      server, "export", cur_id(m));
	if (m->psk[0])
		json_object_set_new(a, "tls-creds", json_string("qsup-tls"));
	mc_step(g, "blockdev-add", a, -1, on_target);
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

/* The NBD connection (fd) of the export cur_id names, to QEMU (getfd). */
static void pass_nbd_fd(struct sv_guest *g, int fd)
{
	char name[96];
	snprintf(name, sizeof(name), "qsup-nbd-%s", cur_id(g->mig));
	mc_step(g, "getfd", json_pack("{s:s}", "fdname", name), fd, on_nbd_fd);
}

static void on_nbd_connected(struct sv_guest *g, int fd, int status)
{
	struct sv_mig *m = g->mig;
	if (!m->copy)
		return;
	if (status < 0) {
		out_failm(g, "the destination's NBD socket %s: %s", m->nbd + 5, uv_strerror(status));
		return;
	}
	pass_nbd_fd(g, fd);
}

/* The destination is an ssh:// host and its NBD export a unix socket
 * there (migrate --tunnel): the connection goes through ssh (sshlink.h),
 * and QEMU gets the fd as for a local socket. */
static void on_nbd_link(int fd, const char *why, void *arg)
{
	struct sv_guest *g = arg;
	struct sv_mig *m = g->mig;
	if (g->freeing || !m || !m->copy || m->ending) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fd < 0) {
		out_failm(g, "the destination's NBD socket %.300s, through ssh: %s", m->nbd + 5, why);
		return;
	}
	sv_log(SV_LOG_INFO, g->name, "copy-storage: disk %s: NBD through ssh to %s", cur_id(m),
	       m->nbd + 5);
	pass_nbd_fd(g, fd);
	close(fd);   /* QEMU has its copy; the link stays until the migration ends */
}

static void nbd_through_ssh(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	struct sv_error err = { 0 };
	struct sv_sshlink **links = realloc(m->nbd_links, (m->nnbd_links + 1) * sizeof(*links));
	if (!links) {
		mc_out_fail(g, "out of memory");
		return;
	}
	m->nbd_links = links;
	if (sv_sshlink_open(g->env->loop, m->to, m->nbd + 5, PEER_TIMEOUT_MS, on_nbd_link, g,
	                    &links[m->nnbd_links], &err) < 0) {
		char msg[1400];
		snprintf(msg, sizeof(msg), "copy-storage: %s", err.msg);
		mc_out_fail(g, msg);
		return;
	}
	m->nnbd_links++;
}

/* The NBD connection to the export cur_id names, then its target node. */
static void connect_target(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	if (!strncmp(m->nbd, "tcp:", 4)) {   /* QEMU connects itself, as for the stream */
		char host[600], *port;
		snprintf(host, sizeof(host), "%s", m->nbd + 4);
		char *h = mc_host_port(host, &port);
		if (!port) {
			mc_out_fail(g, "copy-storage: the destination gave no NBD port");
			return;
		}
		add_target(g, json_pack("{s:s, s:s, s:s}", "type", "inet", "host", h, "port", port));
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

/* The node prefix+id goes (blockdev-del); then fn. */
static void del_node(struct sv_guest *g, const char *prefix, const char *id, sv_step_fn fn)
{
	char node[96];
	snprintf(node, sizeof(node), "%s%s", prefix, id);
	mc_step(g, "blockdev-del", json_pack("{s:s}", "node-name", node), -1, fn);
}

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
	char node[96];
	if (r->status != 0) {
		out_failf(g, "add-fd (a backing layer)", r);
		return;
	}
	snprintf(node, sizeof(node), "%s%s", MC_LAYER_PREFIX, sv_jstr(l, "id", ""));
	mc_layer_node(g, l, node, false, r, on_layer_added);
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
	int rc = mc_layer_fd(g, sv_jstr(l, "file", ""), O_RDONLY, on_layer_fd);
	if (rc < 0)
		out_failm(g, "backing layer %.600s: %s", sv_jstr(l, "file", ""), strerror(-rc));
}

static void on_layer_gone(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	struct sv_mig *m = g->mig;
	mig_step_warn(g, "blockdev-del", r);
	m->li++;
	next_layer(g);
}

static void on_layer_target_gone(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	mig_step_warn(g, "blockdev-del", r);
	del_node(g, MC_LAYER_PREFIX, cur_id(g->mig), on_layer_gone);
}

/* The backup of the current layer completed: its target goes (which
 * flushes it there), then its node here, then the next layer. */
static void layer_done(struct sv_guest *g)
{
	del_node(g, MC_NODE_PREFIX, cur_id(g->mig), on_layer_target_gone);
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
	json_t *rec = json_pack("{s:s, s:o}", "to", m->to, "disks", mc_disk_ids(m->disks,
	                        m->layers));
	mc_record(g, false, json_dumps(rec, JSON_COMPACT));
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
	mig_step_warn(g, "blockdev-del", r);
	if (++m->ci < json_array_size(m->disks)) {
		del_node(g, MC_NODE_PREFIX, mc_disk_id(json_array_get(m->disks, m->ci)),
		         on_target_gone);
		return;
	}
	m->mirroring = false;
	sv_log(SV_LOG_INFO, g->name, "copy-storage: every disk is complete on the destination; "
	       "switching over");
	mc_step(g, "migrate-continue", json_pack("{s:s}", "state", "pre-switchover"), -1, on_continue);
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
		snprintf(job, sizeof(job), "%s%s", MC_JOB_PREFIX, mc_disk_id(d));
		mc_step(g, "block-job-cancel", json_pack("{s:s}", "device", job), -1, on_cancel_ready);
	}
}

void mc_job_event(struct sv_guest *g, const char *name, json_t *data)
{
	struct sv_mig *m = g->mig;
	const char *job = sv_jstr(data, "device", "");
	if (!m || !m->copy || m->role != ROLE_OUT || !m->mirroring || m->ending ||
	    strncmp(job, MC_JOB_PREFIX, strlen(MC_JOB_PREFIX)))
		return;
	const char *err = json_string_value(json_object_get(data, "error"));
	if (m->layering) {   /* a backing layer's backup (no other job runs) */
		if (!strcmp(name, "BLOCK_JOB_COMPLETED") && !err &&
		    !strcmp(job + strlen(MC_JOB_PREFIX), cur_id(m))) {
			layer_done(g);
			return;
		}
		if (!strcmp(name, "BLOCK_JOB_COMPLETED") || !strcmp(name, "BLOCK_JOB_CANCELLED") ||
		    !strcmp(name, "BLOCK_JOB_ERROR")) {
			out_failm(g, "the copy of backing layer %s failed: %s", job +
			          strlen(MC_JOB_PREFIX), err ? err : !strcmp(name, "BLOCK_JOB_ERROR")
			          ? "I/O error" : "cancelled");
		}
		return;
	}
	if (!strcmp(name, "BLOCK_JOB_READY")) {
		if (!m->switching) {
			m->nready++;
			sv_log(SV_LOG_INFO, g->name, "copy-storage: disk %s in sync (%zu of %zu)",
			       job + strlen(MC_JOB_PREFIX), m->nready, json_array_size(m->disks));
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
		out_failm(g, "the mirror of disk %s %s%s", job + strlen(MC_JOB_PREFIX), err
		          ? "failed: " : !strcmp(name, "BLOCK_JOB_ERROR") ? "failed: I/O error on "
		          : "ended early", err ? err : !strcmp(name, "BLOCK_JOB_ERROR")
		          ? sv_jstr(data, "operation", "?") : "");
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
		if (strncmp(sv_jstr(e, "device", ""), MC_JOB_PREFIX, strlen(MC_JOB_PREFIX)))
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
		mc_step(g, "query-block-jobs", NULL, -1, on_block_jobs);
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

