/* The snapshot record: see snaprec.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "snaprec.h"

bool sv_snap_disk(const struct sv_drive *d)
{
	return !d->cdrom && d->file && !d->read_only;
}

static int dir_path(const struct sv_profile *p, char *buf, size_t size)
{
	const char *slash = strrchr(p->path, '/');
	int n;
	if (!slash)
		n = snprintf(buf, size, "%s.d", p->name);
	else
		n = snprintf(buf, size, "%.*s/%s.d", (int)(slash - p->path), p->path, p->name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int sv_snaprec_path(const struct sv_profile *p, char *buf, size_t size)
{
	char dir[4096];
	if (dir_path(p, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	int n = snprintf(buf, size, "%s/snapshots.json", dir);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

json_t *sv_snaprec_new(void)
{
	return json_pack("{s:i, s:i, s:n, s:{}, s:[]}", "version", 1, "seq", 0, "current",
	                 "active", "snapshots");
}

json_t *sv_snaprec_find(json_t *rec, const char *name)
{
	json_t *s;
	size_t i;
	json_array_foreach(json_object_get(rec, "snapshots"), i, s)
		if (!strcmp(sv_jstr(s, "name", ""), name))
			return s;
	return NULL;
}

json_t *sv_snaprec_active(json_t *rec, const char *id)
{
	return json_object_get(json_object_get(rec, "active"), id);
}

/* {"file": absolute path, "format": a format qsup uses}? */
static bool layer_ok(json_t *l)
{
	const char *f = json_string_value(json_object_get(l, "file"));
	const char *fmt = json_string_value(json_object_get(l, "format"));
	return json_is_object(l) && f && f[0] == '/' && sv_text_clean(f) && fmt &&
	       sv_format_valid(fmt);
}

static bool layers_ok(json_t *o)
{
	const char *id;
	json_t *l;
	if (!json_is_object(o))
		return false;
	json_object_foreach(o, id, l)
		if (!sv_device_id_valid(id) || !layer_ok(l))
			return false;
	return true;
}

int sv_snaprec_shape(json_t *rec, struct sv_error *err)
{
	json_t *snaps = json_object_get(rec, "snapshots"), *s, *cur;
	size_t i;
	if (!json_is_object(rec) || json_integer_value(json_object_get(rec, "version")) != 1)
		return sv_error_set(err, -EINVAL, "not a version 1 snapshot record");
	if (!json_is_integer(json_object_get(rec, "seq")) ||
	    json_integer_value(json_object_get(rec, "seq")) < 0)
		return sv_error_set(err, -EINVAL, "\"seq\" must be a number");
	if (!layers_ok(json_object_get(rec, "active")))
		return sv_error_set(err, -EINVAL, "\"active\" must map disk ids to {\"file\": "
		                    "absolute path, \"format\"}");
	if (!json_is_array(snaps))
		return sv_error_set(err, -EINVAL, "\"snapshots\" must be an array");
	json_array_foreach(snaps, i, s) {
		const char *name = json_string_value(json_object_get(s, "name"));
		json_t *parent = json_object_get(s, "parent"), *mem = json_object_get(s, "memory");
		if (!name || !sv_name_valid(name))
			return sv_error_set(err, -EINVAL, "snapshot %zu: a bad name", i + 1);
		for (size_t k = 0; k < i; k++)
			if (!strcmp(sv_jstr(json_array_get(snaps, k), "name", ""), name))
				return sv_error_set(err, -EINVAL, "snapshot %s: recorded twice", name);
		if (!json_is_null(parent) && (!json_is_string(parent) ||
		    !sv_snaprec_find(rec, json_string_value(parent))))
			return sv_error_set(err, -EINVAL, "snapshot %s: its parent is not a "
			                    "recorded snapshot", name);
		if (!layers_ok(json_object_get(s, "layers")))
			return sv_error_set(err, -EINVAL, "snapshot %s: \"layers\" must map disk "
			                    "ids to {\"file\", \"format\"}", name);
		if (mem && !json_is_null(mem) && (!json_is_string(mem) ||
		    json_string_value(mem)[0] != '/'))
			return sv_error_set(err, -EINVAL, "snapshot %s: \"memory\" must be null "
			                    "or an absolute path", name);
		if (!json_is_string(json_object_get(s, "created")))
			return sv_error_set(err, -EINVAL, "snapshot %s: no \"created\" time", name);
	}
	cur = json_object_get(rec, "current");
	if (!json_is_null(cur) && (!json_is_string(cur) ||
	    !sv_snaprec_find(rec, json_string_value(cur))))
		return sv_error_set(err, -EINVAL, "\"current\" is not a recorded snapshot");
	return 0;
}

int sv_snaprec_read_at(const char *path, json_t **rec, struct sv_error *err)
{
	json_error_t je;
	*rec = NULL;
	json_t *r = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!r) {
		if (access(path, F_OK) < 0 && errno == ENOENT)
			return 0;
		return sv_error_set(err, -EINVAL, "%s: %s", path, je.text);
	}
	struct sv_error e = { 0 };
	if (sv_snaprec_shape(r, &e) < 0) {
		json_decref(r);
		return sv_error_set(err, -EINVAL, "%s: %s", path, e.msg);
	}
	*rec = r;
	return 0;
}

int sv_snaprec_read(const struct sv_profile *p, json_t **rec, struct sv_error *err)
{
	char path[4200];
	*rec = NULL;
	if (sv_snaprec_path(p, path, sizeof(path)) < 0)
		return sv_error_set(err, -ENAMETOOLONG, "the snapshot record's path is too long");
	return sv_snaprec_read_at(path, rec, err);
}

int sv_snaprec_write_at(const char *path, json_t *rec, struct sv_error *err)
{
	char dir[4200], tmp[4300];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (slash && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return sv_error_set(err, -errno, "cannot create %s: %s", dir, strerror(errno));
	char *text = json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text)
		return sv_error_set(err, -ENOMEM, "out of memory");
	size_t len = strlen(text);
	int e = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		e = errno;
	} else {
		errno = 0;
		ssize_t n = write(fd, text, len);
		if (n != (ssize_t)len)
			e = n < 0 ? errno : ENOSPC;
		if (!e && (write(fd, "\n", 1) != 1 || fsync(fd) < 0))
			e = errno ? errno : ENOSPC;
		if (close(fd) < 0 && !e)
			e = errno;
		if (!e && rename(tmp, path) < 0)
			e = errno;
		if (e)
			unlink(tmp);
	}
	free(text);
	if (e)
		return sv_error_set(err, -e, "cannot write %s: %s", path, strerror(e));
	return 0;
}

int sv_snaprec_write(const struct sv_profile *p, json_t *rec, struct sv_error *err)
{
	char path[4200];
	if (sv_snaprec_path(p, path, sizeof(path)) < 0)
		return sv_error_set(err, -ENAMETOOLONG, "the snapshot record's path is too long");
	return sv_snaprec_write_at(path, rec, err);
}

int sv_snaprec_remove(const struct sv_profile *p)
{
	char path[4200];
	if (sv_snaprec_path(p, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

/* ---- qsupd --check ---- */

static void add(char **msgs, int *n, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add(char **msgs, int *n, const char *path, const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	va_start(ap, fmt);
	int k = snprintf(line, sizeof(line), "%s: ", path);
	vsnprintf(line + k, sizeof(line) - (size_t)k, fmt, ap);
	va_end(ap);
	size_t old = *msgs ? strlen(*msgs) : 0;
	char *m = realloc(*msgs, old + strlen(line) + 2);
	if (!m)
		return;
	memcpy(m + old, line, strlen(line));
	m[old + strlen(line)] = '\n';
	m[old + strlen(line) + 1] = '\0';
	*msgs = m;
	(*n)++;
}

/* Disk id's base file: a writable drive of p's, or one of more's; NULL. */
static const char *disk_of(const struct sv_profile *p, json_t *more, const char *id)
{
	int i = sv_profile_find_device(p, id);
	if (i >= 0 && (size_t)i < p->ndrives && sv_snap_disk(&p->drives[i]))
		return p->drives[i].file;
	return json_string_value(json_object_get(json_object_get(more, id), "file"));
}

int sv_snaprec_validate(const struct sv_profile *p, json_t *more, json_t *rec, char **msgs)
{
	char path[4200];
	struct sv_error e = { 0 };
	int n = 0;
	json_t *s, *l;
	const char *id;
	size_t i;
	sv_snaprec_path(p, path, sizeof(path));
	if (sv_snaprec_shape(rec, &e) < 0) {
		add(msgs, &n, path, "%s", e.msg);
		return n;
	}
	json_t *cur = sv_snaprec_find(rec, sv_jstr(rec, "current", ""));
	json_array_foreach(json_object_get(rec, "snapshots"), i, s) {
		const char *mem = json_string_value(json_object_get(s, "memory"));
		if (mem && access(mem, F_OK) < 0)
			add(msgs, &n, path, "snapshot %s: its memory state %s: %s",
			    sv_jstr(s, "name", ""), mem, strerror(errno));
		json_object_foreach(json_object_get(s, "layers"), id, l) {
			const char *f = sv_jstr(l, "file", "");
			if (!disk_of(p, more, id))
				add(msgs, &n, path, "snapshot %s: %s is no writable disk of the "
				    "profile or its hot-plug overlay", sv_jstr(s, "name", ""), id);
			if (access(f, F_OK) < 0)
				add(msgs, &n, path, "snapshot %s: disk %s: its image %s: %s",
				    sv_jstr(s, "name", ""), id, f, strerror(errno));
		}
	}
	json_object_foreach(json_object_get(rec, "active"), id, l) {
		const char *base = disk_of(p, more, id);
		const char *f = sv_jstr(l, "file", "");
		struct sv_chain ch;
		if (!base) {
			add(msgs, &n, path, "active: %s is no writable disk of the profile or its "
			    "hot-plug overlay", id);
			continue;
		}
		if (sv_image_chain(f, sv_jstr(l, "format", ""), &ch, &e) < 0) {
			add(msgs, &n, path, "disk %s: its active image: %s", id, e.msg);
			continue;
		}
		bool reach = !strcmp(f, base);
		for (size_t k = 0; k < ch.n; k++)
			reach |= !strcmp(ch.layers[k].path, base);
		if (!reach)
			add(msgs, &n, path, "disk %s: the backing chain of %s does not reach the "
			    "disk's file %s", id, f, base);
		json_t *cl = cur ? json_object_get(json_object_get(cur, "layers"), id) : NULL;
		if (cl && (ch.n == 0 || strcmp(ch.layers[0].path, sv_jstr(cl, "file", ""))))
			add(msgs, &n, path, "disk %s: %s is not backed by %s, the layer of the "
			    "current snapshot %s", id, f, sv_jstr(cl, "file", ""),
			    sv_jstr(cur, "name", ""));
		sv_chain_free(&ch);
	}
	return n;
}
