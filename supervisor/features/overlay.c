/* The hot-plug overlay: see overlay.h. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hotplug.h"
#include "overlay.h"
#include "profile.h"

int sv_overlay_path(const struct sv_profile *p, char *buf, size_t size)
{
	const char *slash = strrchr(p->path, '/');
	int n;
	if (!slash)
		n = snprintf(buf, size, "%s.d/hotplug.ini", p->name);
	else
		n = snprintf(buf, size, "%.*s/%s.d/hotplug.ini", (int)(slash - p->path), p->path,
		             p->name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

struct pctx {
	const struct sv_profile *p;
	const char *path;
	json_t *specs;
	json_t *cur;            /* the section being read */
	json_t *lines;          /* the line of each spec's header */
	int cur_line;
	char *errs;             /* the messages, one per line */
	size_t errs_len, errs_cap;
	size_t nerrs;
	bool broken;            /* an error that rewriting the file would lose */
	const char *text;       /* inih reads it through reader(), which counts lines */
	size_t off;
	int lineno;
};

/* Append a message; the buffer grows by doubling, so that many errors
 * cost linear time (a broken file of many sections must not stall qsupd). */
static void err_add(struct pctx *c, int line, const char *section, const char *fmt,
                    const char *arg)
{
	char msg[512], full[1024];
	snprintf(msg, sizeof(msg), fmt, arg);
	int n = snprintf(full, sizeof(full), "%s:%d: [%s] %s\n", c->path, line, section, msg);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(full) ? (size_t)n : sizeof(full) - 1;
	if (c->errs_len + len + 1 > c->errs_cap) {
		size_t cap = c->errs_cap ? c->errs_cap * 2 : 1024;
		while (cap < c->errs_len + len + 1)
			cap *= 2;
		char *grown = realloc(c->errs, cap);
		if (!grown)
			return;
		c->errs = grown;
		c->errs_cap = cap;
	}
	memcpy(c->errs + c->errs_len, full, len + 1);
	c->errs_len += len;
	c->nerrs++;
}

/* A finished section: check it as the attach verb would. */
static void section_end(struct pctx *c)
{
	if (!c->cur)
		return;
	struct sv_error err = { 0 };
	char sect[64];
	snprintf(sect, sizeof(sect), "%s.%s", json_string_value(json_object_get(c->cur, "kind")),
	         json_string_value(json_object_get(c->cur, "id")));
	/* A section that fails the check is kept all the same (its file may
	 * come back): its replay fails and says so, and a rewrite keeps it. */
	if (sv_hotplug_check(c->p, c->cur, &err) < 0)
		err_add(c, c->cur_line, sect, "%s", err.msg);
	json_array_append(c->specs, c->cur);
	json_array_append_new(c->lines, json_integer(c->cur_line));
	json_decref(c->cur);
	c->cur = NULL;
}

static json_t *value_json(const char *key, const char *v)
{
	if (strcmp(key, "read-only") == 0 || strcmp(key, "readonly") == 0) {
		if (!strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "true"))
			return json_true();
		if (!strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "false"))
			return json_false();
	}
	return json_string(v);
}

/* A [section] line (seen by reader(): inih calls no handler for a
 * section without keys, such as [cpu.vcpu1]). */
static void section_begin(struct pctx *c, const char *l, size_t len)
{
	char sect[64];
	section_end(c);
	const char *end = memchr(l, ']', len);
	size_t n = end ? (size_t)(end - l - 1) : 0;
	snprintf(sect, sizeof(sect), "%.*s", (int)(n < 60 ? n : 60), l + 1);
	const char *dot = strchr(sect, '.');
	if (!end || !dot || dot == sect || !dot[1] || n >= 60) {
		err_add(c, c->lineno, sect, "%s", "sections are KIND.ID: disk.ID, nic.ID, cpu.ID "
		        "or memory.ID");
		c->broken = true;
		return;
	}
	c->cur = json_pack("{s:s%, s:s, s:b}", "kind", sect, (size_t)(dot - sect), "id", dot + 1,
	                   "persist", 1);
	c->cur_line = c->lineno;
}

static int on_line(void *arg, const char *section, const char *key, const char *value)
{
	struct pctx *c = arg;
	int line = c->lineno;
	char sect[64];
	snprintf(sect, sizeof(sect), "%s", section);
	if (!c->cur)
		return 1;   /* in a bad section: reported once */
	if (!strcmp(key, "kind") || !strcmp(key, "id") || !strcmp(key, "persist") ||
	    !strcmp(key, "name") || !strcmp(key, "count")) {
		err_add(c, line, sect, "%s: not a key here (the section names the device)", key);
		c->broken = true;
		return 1;
	}
	if (json_object_get(c->cur, key)) {
		err_add(c, line, sect, "%s: given twice", key);
		c->broken = true;
		return 1;
	}
	json_object_set_new(c->cur, key, value_json(key, value));
	return 1;
}

/* inih's line source (Debian's inih gives its handler no line numbers);
 * lines are stripped, so an indented line never continues a value. */
static char *reader(char *str, int num, void *stream)
{
	struct pctx *c = stream;
	const char *start = c->text + c->off;
	if (!*start)
		return NULL;
	size_t len = strcspn(start, "\n");
	c->off += len + (start[len] == '\n');
	c->lineno++;
	while (len && (*start == ' ' || *start == '\t'))
		start++, len--;
	while (len && (start[len - 1] == '\r' || start[len - 1] == ' ' || start[len - 1] == '\t'))
		len--;
	if (len && *start == '[')
		section_begin(c, start, len);
	if (len + 2 > (size_t)num) {
		/* Never parse what is left of a cut line: say so, and keep the
		 * file from being rewritten (that would lose the line). */
		char max[16];
		snprintf(max, sizeof(max), "%d", num - 2);
		err_add(c, c->lineno, "?", "a line longer than %s characters", max);
		c->broken = true;
		len = 0;
	}
	memcpy(str, start, len);
	str[len] = '\n';
	str[len + 1] = '\0';
	return str;
}

int sv_overlay_parse(const struct sv_profile *p, const char *path, const char *text,
                     json_t **specs, char **errs)
{
	struct pctx c = { .p = p, .path = path, .specs = json_array(), .lines = json_array(),
	                  .text = text };
	*specs = NULL;
	*errs = NULL;
	int r = ini_parse_stream(reader, &c, on_line, &c);
	section_end(&c);
	if (r > 0) {
		char l[16];
		snprintf(l, sizeof(l), "%d", r);
		err_add(&c, r, "?", "line %s is not INI (KEY = VALUE, or [KIND.ID])", l);
		c.broken = true;
	}
	/* ids are unique among the overlay's devices (a set: linear time) */
	size_t i;
	json_t *a, *seen = json_object();
	json_array_foreach(c.specs, i, a) {
		const char *id = json_string_value(json_object_get(a, "id"));
		if (!id || !seen)
			continue;
		if (json_object_get(seen, id)) {
			char sect[64];
			snprintf(sect, sizeof(sect), "%s.%s",
			         json_string_value(json_object_get(a, "kind")), id);
			err_add(&c, (int)json_integer_value(json_array_get(c.lines, i)), sect,
			        "%s", "a second device with this id");
			c.broken = true;
		}
		json_object_set_new(seen, id, json_true());
	}
	json_decref(seen);
	json_decref(c.lines);
	*specs = c.specs;
	*errs = c.errs;
	return c.broken ? -2 : c.nerrs ? -1 : 0;
}

/* *errs = the message (NULL when out of memory); returns -2. */
__attribute__((format(printf, 2, 3)))
static int read_error(char **errs, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(errs, fmt, ap) < 0)
		*errs = NULL;
	va_end(ap);
	return -2;
}

int sv_overlay_read(const struct sv_profile *p, json_t **specs, char **errs)
{
	char path[1024];
	*specs = NULL;
	*errs = NULL;
	if (sv_overlay_path(p, path, sizeof(path)) < 0)
		return read_error(errs, "%s: overlay path too long\n", p->path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		*specs = json_array();
		return 0;
	}
	char *text = malloc(SV_PROFILE_MAX_BYTES + 1);
	ssize_t n = 0, got;
	while (fd >= 0 && text && n < SV_PROFILE_MAX_BYTES &&
	       (got = read(fd, text + n, SV_PROFILE_MAX_BYTES - (size_t)n)) > 0)
		n += got;
	int e = errno;
	if (fd < 0 || !text) {
		if (fd >= 0)
			close(fd);
		free(text);
		return read_error(errs, "%s: %s\n", path, strerror(fd < 0 ? e : ENOMEM));
	}
	/* A byte the parser would take for the end, or a file over the limit,
	 * would hide what follows it: refuse, and never rewrite the file. */
	if (memchr(text, '\0', (size_t)n) || (n == SV_PROFILE_MAX_BYTES &&
	    fd >= 0 && read(fd, &(char){ 0 }, 1) > 0)) {
		free(text);
		if (fd >= 0)
			close(fd);
		return read_error(errs, "%s: holds a NUL byte, or is larger than %d bytes; fix "
		                  "it (qsupd never rewrites it as it is)\n", path,
		                  SV_PROFILE_MAX_BYTES);
	}
	if (fd >= 0)
		close(fd);
	text[n] = '\0';
	int r = sv_overlay_parse(p, path, text, specs, errs);
	free(text);
	return r;
}

/* Can v be written as an INI value that reads back the same? */
static bool ini_safe(const char *v)
{
	if (!*v || strchr(v, '\n') || strchr(v, '\r') || strstr(v, " ;") || strstr(v, "\t;") ||
	    strstr(v, " #") || v[0] == ' ' || v[0] == '\t' || v[0] == ';' || v[0] == '#')
		return false;
	size_t n = strlen(v);
	return v[n - 1] != ' ' && v[n - 1] != '\t';
}

char *sv_overlay_format(const char *name, json_t *specs)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	if (!f)
		return NULL;
	bool ok = true;
	fprintf(f, "; %s.d/hotplug.ini: devices attached to guest %s with --persist.\n"
	        "; qsupd writes this file; `qsupd --check` validates it.\n", name, name);
	size_t i;
	json_t *s;
	json_array_foreach(specs, i, s) {
		const char *kind = json_string_value(json_object_get(s, "kind"));
		const char *id = json_string_value(json_object_get(s, "id"));
		ok &= kind && id;
		fprintf(f, "\n[%s.%s]\n", kind ? kind : "?", id ? id : "?");
		const char *key;
		json_t *v;
		json_object_foreach(s, key, v) {
			if (!strcmp(key, "kind") || !strcmp(key, "id") || !strcmp(key, "persist") ||
			    !strcmp(key, "name"))
				continue;
			if (json_is_string(v)) {
				/* What the reader would refuse as too long is no value
				 * for the file either. */
				ok &= ini_safe(json_string_value(v)) &&
				      strlen(key) + 3 + strlen(json_string_value(v)) + 2 <=
				      INI_MAX_LINE;
				fprintf(f, "%s = %s\n", key, json_string_value(v));
			} else if (json_is_boolean(v)) {
				fprintf(f, "%s = %s\n", key, json_is_true(v) ? "yes" : "no");
			} else if (json_is_integer(v)) {
				fprintf(f, "%s = %lld\n", key, (long long)json_integer_value(v));
			} else {
				ok = false;
			}
		}
	}
	if (fclose(f) != 0 || !ok) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- the write, off the loop ---- */

struct wjob {
	uv_work_t work;
	char *path, *text;
	int err;
	void (*done)(int err, void *arg);
	void *arg;
};

static void write_work(uv_work_t *w)
{
	struct wjob *j = w->data;
	char dir[1024], tmp[1100];
	const char *slash = strrchr(j->path, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - j->path) : 1,
	         slash ? j->path : ".");
	snprintf(tmp, sizeof(tmp), "%s/.hotplug.ini.tmp", dir);
	errno = 0;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		j->err = errno;
		return;
	}
	errno = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t len = strlen(j->text);
	if (fd < 0 || write(fd, j->text, len) != (ssize_t)len || fsync(fd) < 0 ||
	    rename(tmp, j->path) < 0)
		j->err = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	if (j->err)
		unlink(tmp);
}

static void write_done(uv_work_t *w, int status)
{
	struct wjob *j = w->data;
	j->done(j->err ? j->err : status < 0 ? ECANCELED : 0, j->arg);
	free(j->path);
	free(j->text);
	free(j);
}

int sv_overlay_write_async(uv_loop_t *loop, const char *path, char *text,
                           void (*done)(int err, void *arg), void *arg)
{
	struct wjob *j = calloc(1, sizeof(*j));
	if (!j || !(j->path = strdup(path))) {
		free(j);
		free(text);
		return -ENOMEM;
	}
	j->text = text;
	j->done = done;
	j->arg = arg;
	j->work.data = j;
	int r = uv_queue_work(loop, &j->work, write_work, write_done);
	if (r < 0) {
		free(j->path);
		free(j->text);
		free(j);
	}
	return r;
}
