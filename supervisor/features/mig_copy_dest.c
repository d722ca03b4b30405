/*
 * Copy-storage: the destination (mig_copy_int.h; the whole is told in
 * mig_copy.c).
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mig_copy_int.h"
#include "subproc.h"

static void in_failf(struct sv_guest *g, const char *what, const struct qmp_result *r)
{
	char why[700];
	mig_step_error(r, what, why, sizeof(why));
	mig_in_abort(g, "GenericError", why);
}

/* Where a hot-plugged disk goes here: STATE-DIR/NAME.copied/ID.img
 * (.qcow2 for qcow2). */
static bool copy_path(struct sv_guest *g, json_t *d, char *buf, size_t size)
{
	const char *id = mc_disk_id(d);
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
bool mc_refuse(struct sv_guest *g, const char *fmt, ...)
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

/* The destination's record: the images it made so far (before each is
 * made, so that one cut short is in it too). */
static void record_created(struct sv_guest *g)
{
	json_t *rec = json_pack("{s:O}", "created", g->mig->created);
	mc_record(g, true, rec ? json_dumps(rec, JSON_COMPACT) : NULL);
	json_decref(rec);
}

static void create_next(struct sv_guest *g);

/* Where qemu-img says why it failed. */
static void img_log(struct sv_guest *g, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s.copy-storage.log", g->env->state_dir, g->name);
}

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
		img_log(g, log, sizeof(log));
		FILE *f = fopen(log, "r");
		if (f) {
			size_t n = fread(tail, 1, sizeof(tail) - 1, f);
			tail[n] = '\0';
			tail[strcspn(tail, "\n")] = '\0';
			fclose(f);
		}
		mc_refuse(g, "%s: copy-storage: qemu-img create %s: %s", g->name,
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
	img_log(g, log, sizeof(log));
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
		mc_refuse(g, "%s: copy-storage: cannot run qemu-img: %s", g->name, strerror(-rc));
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
				         "shared storage", mc_disk_id(d), sbase, f);
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
				         "first, or use shared storage", mc_disk_id(d), f, sbase);
				return false;
			}
			if (snprintf(path, sizeof(path), "%s%s", dbase, tail) >= (int)sizeof(path)) {
				snprintf(why, size, "disk %s: a layer's path is too long", mc_disk_id(d));
				return false;
			}
			struct stat st;
			if (stat(path, &st) == 0 && !force) {
				snprintf(why, size, "copy-storage: %.600s already exists here and would "
				         "be overwritten (disk %s, a snapshot layer); --force to "
				         "overwrite it", path, mc_disk_id(d));
				return false;
			}
		}
		if (!json_integer_value(json_object_get(l, "size"))) {
			snprintf(why, size, "disk %s: a layer without a size", mc_disk_id(d));
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
			snprintf(node, sizeof(node), "qsup-cs.%s.l%zu", mc_disk_id(d), k);
			snprintf(name, sizeof(name), top ? "%s" : "%s.l%zu", mc_disk_id(d), k);
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
		return asked ? mc_refuse(g, "%s: copy-storage: the source sent no disk to copy",
		                         g->name) : false;
	mc_boot_id(boot, sizeof(boot));
	json_t *disks = json_deep_copy(src);
	json_decref(m->disks);
	m->disks = disks;
	json_array_foreach(disks, i, d) {
		const char *id = mc_disk_id(d);
		const char *path = sv_jstr(d, "file", "");
		char hp[4200];
		if (json_is_true(json_object_get(d, "hotplug"))) {
			/* A hot-plugged disk: under this host's state dir (its profile
			 * names no path for it), and the device replayed on it. */
			if (!copy_path(g, d, hp, sizeof(hp)))
				return mc_refuse(g, "%s: copy-storage: hot-plugged disk %s: bad id",
				                 g->name, id);
			path = hp;
		} else {
			const struct sv_drive *dr = profile_drive(g, id);
			if (!dr || !dr->file || dr->cdrom)
				return mc_refuse(g, "%s: the profile here has no disk %s", g->name, id);
			path = dr->file;
		}
		if (path[0] != '/' || !json_integer_value(json_object_get(d, "size")))
			return mc_refuse(g, "%s: copy-storage: disk %s: bad path or size", g->name, id);
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
		return mc_refuse(g, "%s: this host lacks %s but has %s: give --copy-storage (and "
		                 "--force to overwrite what is here), or make both present", g->name,
		                 lack, have);
	json_array_foreach(disks, i, d) {
		const char *path = sv_jstr(d, "path", "");
		if (json_is_true(json_object_get(d, "same")))
			return mc_refuse(g, "%s: copy-storage: %s is the source's own image (shared "
			                 "storage): migrate without --copy-storage", g->name, path);
		if (json_is_true(json_object_get(d, "exists")) && !force)
			return mc_refuse(g, "%s: copy-storage: %s already exists here and would be "
			                 "overwritten (disk %s); --force to overwrite it", g->name, path,
			                 mc_disk_id(d));
		if (json_is_true(json_object_get(d, "backing")) &&
		    json_array_size(json_object_get(d, "layers")) < 2)
			return mc_refuse(g, "%s: copy-storage: disk %s has a backing chain (snapshots "
			                 "or a backing file) the source did not describe: flatten it "
			                 "first, or use shared storage", g->name, mc_disk_id(d));
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
		return mc_refuse(g, "%s: copy-storage: %s", g->name, why);
	json_array_foreach(disks, i, d) {
		if (!json_is_true(json_object_get(d, "hotplug")))
			continue;
		char dir[4200];
		snprintf(dir, sizeof(dir), "%s/%s.copied", g->env->state_dir, g->name);
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return mc_refuse(g, "%s: copy-storage: cannot create %s: %s", g->name, dir,
			                 strerror(errno));
		repoint_device(args, mc_disk_id(d), sv_jstr(d, "path", ""));
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

/* An NBD export of node (its id after what), writable, as name; then fn. */
static void export_add(struct sv_guest *g, const char *what, const char *node,
                       const char *name, sv_step_fn fn)
{
	char id[128];
	snprintf(id, sizeof(id), "qsup-export.%s", what);
	mc_step(g, "block-export-add", json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "nbd", "id",
	        id, "node-name", node, "name", name, "writable", 1), -1, fn);
}

/* The next layer with a node of its own (m->li on it), or NULL. */
static json_t *layer_with_node(struct sv_mig *m)
{
	json_t *l;
	while ((l = json_array_get(m->layers, m->li)) && !json_object_get(l, "node"))
		m->li++;
	return l;
}

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
	if (r->status != 0) {
		in_failf(g, "blockdev-add (a snapshot layer)", r);
		return;
	}
	export_add(g, sv_jstr(l, "node", ""), sv_jstr(l, "node", ""), sv_jstr(l, "export", ""),
	           on_layer_exported);
}

static void on_layer_fd_in(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	json_t *l = json_array_get(g->mig->layers, g->mig->li);
	if (r->status != 0) {
		in_failf(g, "add-fd (a snapshot layer)", r);
		return;
	}
	mc_layer_node(g, l, sv_jstr(l, "node", ""), true, r, on_layer_node);
}

static void export_layer(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	json_t *l = layer_with_node(m);
	if (!l) {
		sv_log(SV_LOG_INFO, g->name, "copy-storage: %zu disk%s exported on %s",
		       json_array_size(m->disks), json_array_size(m->disks) == 1 ? "" : "s", m->nbd);
		mig_in_setup_caps(g);
		return;
	}
	int rc = mc_layer_fd(g, sv_jstr(l, "path", ""), O_RDWR, on_layer_fd_in);
	if (rc < 0) {
		char why[1400];
		snprintf(why, sizeof(why), "copy-storage: %.600s: %s", sv_jstr(l, "path", ""),
		         strerror(-rc));
		mig_in_abort(g, "GenericError", why);
	}
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
	export_add(g, mc_disk_id(d), sv_jstr(d, "node", ""), mc_disk_id(d), on_exported);
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
			if (sv_block_of(e, mc_disk_id(d)))
				json_object_set_new(d, "node", json_string(sv_jstr(json_object_get(e,
				                    "inserted"), "node-name", "")));
		if (!*sv_jstr(d, "node", "")) {
			char why[300];
			snprintf(why, sizeof(why), "copy-storage: disk %s is not in QEMU here",
			         mc_disk_id(d));
			mig_in_abort(g, "GenericError", why);
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
	mc_step(g, "query-block", NULL, -1, on_dest_blocks);
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
	mc_step(g, "nbd-server-start", a, -1, on_nbd_started);
}

/* The NBD server's listening socket on the tcp stream's host (uri:
 * tcp:HOST:PORT, HOST numeric), on a port the kernel picks. */
static int nbd_listen_tcp(struct sv_guest *g, const char *uri, char *err, size_t size)
{
	struct sv_mig *m = g->mig;
	char host[600], *port;
	snprintf(host, sizeof(host), "%s", uri);
	char *h = mc_host_port(host, &port);
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
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(err, size, "NBD socket on %s: %s", h, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int bound = ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
	snprintf(m->nbd, sizeof(m->nbd), ss.ss_family == AF_INET6 ? "tcp:[%s]:%d"
	         : "tcp:%s:%d", h, bound);
	return fd;
}

/* A listening socket for the NBD server, on the stream's address: a unix
 * socket in QEMU's dir, or the tcp host on a port the kernel picks. */
static int nbd_listen(struct sv_guest *g, char *err, size_t size)
{
	struct sv_mig *m = g->mig;
	if (!strncmp(m->uri, "tcp:", 4))
		return nbd_listen_tcp(g, m->uri + 4, err, size);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/qemu/nbd.sock", g->rundir);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		snprintf(err, size, "the run dir is too long for the NBD socket");
		return -1;
	}
	unlink(sa.sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
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
		mig_in_abort(g, "GenericError", err);
		return;
	}
	m->nbd_fd = fd;
	mc_step(g, "getfd", json_pack("{s:s}", "fdname", "qsup-nbd"), fd, on_listen_fd);
}

/* The layers' own nodes go (their exports went with the server), then
 * the guest resumes on its chain. */
static void del_layer_node(struct sv_guest *g);

static void on_layer_node_gone(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	mig_step_warn(g, "blockdev-del", r);
	g->mig->li++;
	del_layer_node(g);
}

static void del_layer_node(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	json_t *l = layer_with_node(m);
	if (!l) {
		mig_in_resume(g);
		return;
	}
	mc_step(g, "blockdev-del", json_pack("{s:s}", "node-name", sv_jstr(l, "node", "")), -1,
	        on_layer_node_gone);
}

static void on_nbd_stopped(void *ctx, const struct qmp_result *r)
{
	struct sv_guest *g = ctx;
	mig_step_warn(g, "nbd-server-stop", r);
	g->mig->li = 0;
	del_layer_node(g);
}

/* The stream is in (and with it every disk, completed at switch-over):
 * the exports go before the guest runs here. */
void mc_in_completed(struct sv_guest *g)
{
	struct sv_mig *m = g->mig;
	m->in_done = true;
	mc_record(g, true, NULL);   /* the images are the guest's now */
	sv_log(SV_LOG_INFO, g->name, "copy-storage: the disks are in; stopping the NBD server");
	mc_step(g, "nbd-server-stop", NULL, -1, on_nbd_stopped);
}

