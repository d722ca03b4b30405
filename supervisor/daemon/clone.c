/* clone: see clone.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clone.h"
#include "daemon.h"
#include "guest.h"
#include "log.h"
#include "request.h"
#include "snapshot.h"
#include "subproc.h"

struct job {
	char id[SV_ID_MAX + 1];
	char *src, *dst;
	char format[16];        /* the source's */
	const char *how;        /* copied, linked, shared, created at first start */
	bool run;               /* qemu-img runs for it */
	bool made;              /* dst was created by us */
};

struct clone_op {
	struct sv_daemon *d;
	struct sv_guest *g;
	struct sv_request *req;
	char new_name[72];
	char path[4200];        /* PROFILE_DIR/NEW.ini */
	bool linked;
	char *text;             /* the new profile */
	struct job *jobs;
	size_t njobs, next;
	char *vars_src, *vars_dst;
	bool vars_made;
	json_t *nics;
	uv_fs_t fs;
	struct clone_op *link;  /* the clones under way */
};

static struct clone_op *under_way;

static void op_free(struct clone_op *op)
{
	struct clone_op **pp = &under_way;
	while (*pp && *pp != op)
		pp = &(*pp)->link;
	if (*pp)
		*pp = op->link;
	if (op->g) {
		if (op->g->busy_op && !strcmp(op->g->busy_op, "clone"))
			op->g->busy_op = NULL;
		sv_guest_unhold(op->g);
	}
	for (size_t i = 0; i < op->njobs; i++) {
		free(op->jobs[i].src);
		free(op->jobs[i].dst);
	}
	free(op->jobs);
	free(op->text);
	free(op->vars_src);
	free(op->vars_dst);
	json_decref(op->nics);
	free(op);
}

/* Failed: remove what this clone created, answer, free. */
static void op_fail(struct clone_op *op, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void op_fail(struct clone_op *op, const char *cls, const char *fmt, ...)
{
	char msg[1500];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < op->njobs; i++)
		if (op->jobs[i].made)
			unlink(op->jobs[i].dst);
	if (op->vars_made)
		unlink(op->vars_dst);
	sv_log(SV_LOG_WARN, op->g ? op->g->name : NULL, "clone to %s failed: %s", op->new_name,
	       msg);
	sv_reply_err(op->req, cls, "%s", msg);
	op_free(op);
}

/* ---- planning ---- */

/* DIR/BASE of src with the source's name in BASE replaced by NEW (the first
 * time it occurs), else NEW-BASE. */
static char *new_path(const char *src, const char *old, const char *neu)
{
	const char *slash = strrchr(src, '/');
	const char *base = slash ? slash + 1 : src;
	const char *at = strstr(base, old);
	char *out = NULL;
	int dirlen = (int)(base - src);
	if (at && *old) {
		if (asprintf(&out, "%.*s%.*s%s%s", dirlen, src, (int)(at - base), base, neu,
		             at + strlen(old)) < 0)
			out = NULL;
	} else if (asprintf(&out, "%.*s%s-%s", dirlen, src, neu, base) < 0) {
		out = NULL;
	}
	return out;
}

static bool taken(struct clone_op *op, const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0)
		return true;
	for (size_t i = 0; i < op->njobs; i++)
		if (op->jobs[i].dst && !strcmp(op->jobs[i].dst, path))
			return true;
	return false;
}

static const char *key_of(const char *line, size_t *len)
{
	while (*line == ' ' || *line == '\t')
		line++;
	size_t n = strcspn(line, " \t=:\r\n");
	*len = n;
	return line;
}

static bool is_key(const char *line, const char *key)
{
	size_t n;
	const char *k = key_of(line, &n);
	return n == strlen(key) && !strncmp(k, key, n);
}

/* The new profile's text, from the source's (see clone.h). */
static char *rewrite(struct clone_op *op, const char *src, const struct sv_profile *p)
{
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	const char *line = src;
	char section[128] = "";
	if (!f)
		return NULL;
	fprintf(f, "; cloned from %s by qsupctl clone%s\n", p->name, op->linked
	        ? " --linked: its disks are qcow2 overlays on the source's images, which must "
	          "never change from now on" : "");
	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		const char *s = line;
		bool skip = false;
		while (s < line + len && (*s == ' ' || *s == '\t'))
			s++;
		if (*s == '[') {
			const char *close = memchr(s, ']', (size_t)(line + len - s));
			size_t n = close ? (size_t)(close - s - 1) : 0;
			snprintf(section, sizeof(section), "%.*s", (int)(n < 127 ? n : 127), s + 1);
			fprintf(f, "%.*s\n", (int)len, line);
			skip = true;   /* written: the new keys follow it */
			if (!strncmp(section, "disk.", 5)) {
				for (size_t i = 0; i < op->njobs; i++) {
					struct job *j = &op->jobs[i];
					if (strcmp(j->id, section + 5) || strcmp(j->how, "shared") == 0)
						continue;
					fprintf(f, "file = %s\n", j->dst);
					if (!strcmp(j->how, "linked"))
						fprintf(f, "format = qcow2\n");
				}
			} else if (!strncmp(section, "nic.", 4)) {
				json_t *m = json_object_get(op->nics, section + 4);
				if (m)
					fprintf(f, "mac = %s\n", json_string_value(m));
			} else if (!strcmp(section, "guest") && op->vars_dst) {
				fprintf(f, "uefi-vars = %s\n", op->vars_dst);
			}
		} else if (!strncmp(section, "disk.", 5)) {
			for (size_t i = 0; i < op->njobs; i++) {
				struct job *j = &op->jobs[i];
				if (!strcmp(j->id, section + 5) && strcmp(j->how, "shared") &&
				    (is_key(s, "file") || (!strcmp(j->how, "linked") && is_key(s, "format"))))
					skip = true;
			}
		} else if (!strncmp(section, "nic.", 4)) {
			skip = is_key(s, "mac");
		} else if (!strcmp(section, "guest") && op->vars_dst) {
			skip = is_key(s, "uefi-vars");
		}
		if (!skip)
			fprintf(f, "%.*s\n", (int)len, line);
		line += len + (end ? 1 : 0);
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0;
	if (!f)
		return NULL;
	buf = malloc(SV_PROFILE_MAX_BYTES + 1);
	if (buf)
		len = fread(buf, 1, SV_PROFILE_MAX_BYTES, f);
	fclose(f);
	if (buf)
		buf[len] = '\0';
	return buf;
}

/* ---- doing ---- */

static void step(struct clone_op *op);

static void finish(struct clone_op *op)
{
	int fd = open(op->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	size_t n = strlen(op->text);
	if (fd < 0 || write(fd, op->text, n) != (ssize_t)n || close(fd) < 0) {
		int e = errno;
		if (fd >= 0)
			unlink(op->path);
		op_fail(op, "GenericError", "%s: %s", op->path, strerror(e));
		return;
	}
	json_t *disks = json_array();
	for (size_t i = 0; i < op->njobs; i++) {
		struct job *j = &op->jobs[i];
		json_array_append_new(disks, json_pack("{s:s, s:s, s:s, s:s}", "id", j->id, "file",
		                      j->dst ? j->dst : j->src, "from", j->src, "how", j->how));
	}
	sv_log(SV_LOG_INFO, op->g->name, "cloned to %s (%s)%s", op->new_name, op->path,
	       op->linked ? ": linked, the source's images must not change from now on" : "");
	json_decref(sv_daemon_reload(op->d));
	json_t *ret = json_pack("{s:s, s:s, s:s, s:b, s:o, s:O}", "name", op->new_name, "profile",
	                        op->path, "from", op->g->name, "linked", op->linked, "disks",
	                        disks, "nics", op->nics);
	if (op->linked)
		json_object_set_new(ret, "note", json_pack("s++", "the clone's disks are qcow2 overlays "
		                    "backed by the images of ", op->g->name, ": those must never change "
		                    "from now on (do not start the source with them writable, nor "
		                    "resize them)"));
	sv_reply_ok(op->req, ret);
	op->req = NULL;
	op_free(op);
}

static void on_vars(uv_fs_t *req)
{
	struct clone_op *op = req->data;
	ssize_t rc = req->result;
	uv_fs_req_cleanup(req);
	if (rc < 0) {
		op_fail(op, "GenericError", "copying %s to %s: %s", op->vars_src, op->vars_dst,
		        uv_strerror((int)rc));
		return;
	}
	op->vars_made = true;
	finish(op);
}

static void on_qemu_img(int64_t status, int sig, const char *out, void *arg)
{
	struct clone_op *op = arg;
	struct job *j = &op->jobs[op->next];
	if (status != 0 || sig) {
		j->made = access(j->dst, F_OK) == 0;
		op_fail(op, "GenericError", "disk %s: qemu-img %s %s: %s", j->id,
		        !strcmp(j->how, "linked") ? "create" : "convert", j->dst,
		        *out ? out : "failed");
		return;
	}
	j->made = true;
	chmod(j->dst, 0600);   /* as qsupd's own images: QEMU gets an fd */
	op->next++;
	step(op);
}

static void step(struct clone_op *op)
{
	for (; op->next < op->njobs; op->next++) {
		struct job *j = &op->jobs[op->next];
		if (!j->run)
			continue;
		int rc;
		if (!strcmp(j->how, "linked")) {
			char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", j->format, "-b",
			                 j->src, "--", j->dst, NULL };
			rc = sv_run(op->d->loop, argv, on_qemu_img, op);
		} else {
			char *argv[] = { "qemu-img", "convert", "-f", j->format, "-O", j->format, "--",
			                 j->src, j->dst, NULL };
			rc = sv_run(op->d->loop, argv, on_qemu_img, op);
		}
		if (rc < 0)
			op_fail(op, "GenericError", "cannot run qemu-img: %s", uv_strerror(rc));
		return;   /* on_qemu_img goes on */
	}
	if (op->vars_dst && op->vars_src) {
		op->fs.data = op;
		int rc = uv_fs_copyfile(op->d->loop, &op->fs, op->vars_src, op->vars_dst,
		                        UV_FS_COPYFILE_EXCL, on_vars);
		if (rc < 0)
			op_fail(op, "GenericError", "copying %s: %s", op->vars_src, uv_strerror(rc));
		return;
	}
	finish(op);
}

/* ---- the verb ---- */

static int plan(struct clone_op *op, const struct sv_profile *p, char *err, size_t size)
{
	struct stat st;
	op->jobs = calloc(p->ndrives + 1, sizeof(*op->jobs));
	if (!op->jobs)
		return snprintf(err, size, "out of memory"), -ENOMEM;
	for (size_t i = 0; i < p->ndrives; i++) {
		const struct sv_drive *d = &p->drives[i];
		if (d->cdrom)
			continue;
		struct job *j = &op->jobs[op->njobs++];
		snprintf(j->id, sizeof(j->id), "%s", d->id);
		snprintf(j->format, sizeof(j->format), "%s", d->format);
		j->src = strdup(d->file);
		if (!j->src)
			return snprintf(err, size, "out of memory"), -ENOMEM;
		if (d->read_only) {
			j->how = "shared";
			continue;
		}
		bool exists = stat(d->file, &st) == 0;
		if (!exists && !d->size)
			return snprintf(err, size, "disk %s: %s: %s", d->id, d->file, strerror(errno)),
			       -ENOENT;
		if (exists && !S_ISREG(st.st_mode))
			return snprintf(err, size, "disk %s: %s is not an image file: clone copies "
			                "image files only", d->id, d->file), -EINVAL;
		char *dst = new_path(d->file, p->name, op->new_name);
		if (!dst)
			return snprintf(err, size, "out of memory"), -ENOMEM;
		if (taken(op, dst)) {
			snprintf(err, size, "disk %s: %s exists: remove it, or choose another name",
			         d->id, dst);
			free(dst);
			return -EEXIST;
		}
		j->dst = dst;
		j->how = !exists ? "created at first start" : op->linked ? "linked" : "copied";
		j->run = exists;
	}
	if (p->uefi_vars) {
		op->vars_dst = new_path(p->uefi_vars, p->name, op->new_name);
		if (!op->vars_dst)
			return snprintf(err, size, "out of memory"), -ENOMEM;
		if (taken(op, op->vars_dst))
			return snprintf(err, size, "uefi-vars: %s exists", op->vars_dst), -EEXIST;
		if (access(p->uefi_vars, F_OK) == 0 && !(op->vars_src = strdup(p->uefi_vars)))
			return snprintf(err, size, "out of memory"), -ENOMEM;
	}
	op->nics = json_object();
	for (size_t i = 0; i < p->nnics; i++) {
		uint8_t r[3];
		char mac[24];
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return snprintf(err, size, "getrandom: %s", strerror(errno)), -EIO;
		snprintf(mac, sizeof(mac), "52:54:00:%02x:%02x:%02x", r[0], r[1], r[2]);
		json_object_set_new(op->nics, p->nics[i].id, json_string(mac));
	}
	return 0;
}

void sv_clone(struct sv_daemon *d, struct sv_request *req, json_t *args)
{
	const char *name = json_string_value(json_object_get(args, "name"));
	const char *neu = json_string_value(json_object_get(args, "new"));
	struct sv_guest *g = name ? sv_daemon_guest(d, name) : NULL;
	char err[1400];
	struct stat st;

	if (!g) {
		sv_reply_err(req, "NotFound", "no profile named %.64s", name ? name : "");
		return;
	}
	if (!neu || !sv_name_valid(neu)) {
		sv_reply_err(req, "InvalidArgument", "clone: the new name %.80s is not valid: use "
		             "1-64 of A-Z a-z 0-9 _ . - (not starting with . _ -)", neu ? neu : "");
		return;
	}
	if (sv_daemon_guest(d, neu)) {
		sv_reply_err(req, "Exists", "clone: a guest named %s exists", neu);
		return;
	}
	for (struct clone_op *o = under_way; o; o = o->link)
		if (!strcmp(o->new_name, neu)) {
			sv_reply_err(req, "Exists", "clone: a clone to %s is under way", neu);
			return;
		}
	if (!g->profile) {
		sv_reply_err(req, "NotFound", "%s: its profile was removed", g->name);
		return;
	}
	if (sv_guest_active(g) || g->prepping ||
	    (g->state != SV_STOPPED && g->state != SV_FAILED)) {
		sv_reply_err(req, "Busy", "%s is %s: stop it first (a copy of a running guest's "
		             "disks would not be consistent)", g->name, sv_state_name(g->state));
		return;
	}
	if (g->busy_op) {
		sv_reply_err(req, "Busy", "%s: a %s runs on its disks", g->name, g->busy_op);
		return;
	}
	if (sv_snapshot_refuse(g, req))
		return;
	struct clone_op *op = calloc(1, sizeof(*op));
	if (!op) {
		sv_reply_err(req, "GenericError", "out of memory");
		return;
	}
	op->d = d;
	op->req = req;
	op->linked = json_is_true(json_object_get(args, "linked"));
	snprintf(op->new_name, sizeof(op->new_name), "%s", neu);
	snprintf(op->path, sizeof(op->path), "%s/%s.ini", d->profile_dir, neu);
	if (lstat(op->path, &st) == 0) {
		sv_reply_err(req, "Exists", "clone: %s exists", op->path);
		free(op);
		return;
	}
	op->g = g;
	sv_guest_hold(g);
	op->link = under_way;
	under_way = op;
	int rc = plan(op, g->profile, err, sizeof(err));
	char *src = rc < 0 ? NULL : read_text(g->profile_path);
	if (rc >= 0 && !src) {
		snprintf(err, sizeof(err), "%s: %s", g->profile_path, strerror(errno));
		rc = -EIO;
	}
	if (rc >= 0 && !(op->text = rewrite(op, src, g->profile))) {
		snprintf(err, sizeof(err), "out of memory");
		rc = -ENOMEM;
	}
	free(src);
	if (rc >= 0) {
		/* The new text must make a valid profile: parse it as NEW.ini. */
		struct sv_profile *np = NULL;
		struct sv_strv errs = { 0 };
		if (sv_profile_parse(op->path, op->text, strlen(op->text), &np, &errs) < 0) {
			snprintf(err, sizeof(err), "the new profile would not be valid: %s",
			         errs.n ? errs.v[0] : "?");
			rc = -EINVAL;
		}
		sv_profile_free(np);
		sv_strv_free(&errs);
	}
	if (rc < 0) {
		sv_reply_err(req, rc == -EEXIST ? "Exists" : rc == -ENOENT ? "NotFound"
		             : rc == -EINVAL ? "InvalidArgument" : "GenericError", "clone %s %s: %s",
		             g->name, neu, err);
		op->req = NULL;
		op_free(op);
		return;
	}
	g->busy_op = "clone";
	sv_log(SV_LOG_INFO, g->name, "cloning to %s%s", neu, op->linked ? " (linked)" : "");
	step(op);
}
