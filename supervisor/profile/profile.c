/*
 * Profile parsing: libinih splits the file into [section] key = value, and
 * table-driven key handlers turn values into struct sv_profile. Cross-key
 * rules and defaults that depend on several keys live in profile_check.c.
 *
 * libinih is fed through our own line reader, which counts lines (inih's
 * handler has no line number in Debian's build), strips indentation (so an
 * indented key is never taken as a continuation of the previous value),
 * reports NUL bytes, over-long lines and malformed lines, and tracks the
 * current section itself (inih truncates long section names).
 */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profile_int.h"

/* ------------------------------------------------------------ messages */

void pc_report(struct pctx *c, int line, const char *sect, const char *key,
               const char *fmt, ...)
{
	struct perr *e;
	char *what = NULL, *msg = NULL, lineno[16] = "";
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&what, fmt, ap);
	va_end(ap);
	if (n < 0)
		goto oom;
	if (line > 0)
		snprintf(lineno, sizeof(lineno), "%d:", line);
	n = asprintf(&msg, "%s:%s%s%s%s%s%s%s %s", c->path, lineno,
	             sect ? " [" : "", sect ? sect : "", sect ? "]" : "",
	             key ? " " : "", key ? key : "", sect || key ? ":" : "", what);
	free(what);
	if (n < 0)
		goto oom;
	e = realloc(c->errs, (c->nerrs + 1) * sizeof(*e));
	if (!e) {
		free(msg);
		goto oom;
	}
	c->errs = e;
	c->errs[c->nerrs] = (struct perr){ line, c->nerrs, msg };
	c->nerrs++;
	return;
oom:
	c->oom = true;
}

void pc_key_error(struct pctx *c, const struct psect *s, const char *key,
                  const char *fmt, ...)
{
	char *what = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&what, fmt, ap) < 0) {
		va_end(ap);
		c->oom = true;
		return;
	}
	va_end(ap);
	pc_report(c, pc_key_line(s, key), s->name, key, "%s", what);
	free(what);
}

int pc_key_line(const struct psect *s, const char *key)
{
	for (size_t i = 0; i < s->nseen; i++)
		if (!strcmp(s->seen[i].key->name, key))
			return s->seen[i].line;
	return s->line;
}

bool pc_key_given(const struct psect *s, const char *key)
{
	for (size_t i = 0; i < s->nseen; i++)
		if (!strcmp(s->seen[i].key->name, key))
			return true;
	return false;
}

struct psect *pc_sect_of(struct pctx *c, enum sect_kind kind, size_t index)
{
	for (size_t i = 0; i < c->nsects; i++)
		if (c->sects[i].kind == kind && c->sects[i].index == index)
			return &c->sects[i];
	return NULL;
}

void *pc_sect_obj(struct pctx *c, const struct psect *s)
{
	switch (s->kind) {
	case SECT_DISK:
	case SECT_CDROM:
		return &c->p->drives[s->index];
	case SECT_NIC:
		return &c->p->nics[s->index];
	default:
		return c->p;
	}
}

/* ------------------------------------------------------------ sections */

static const struct sect_def *sect_def_find(const char *name, const char **id)
{
	for (const struct sect_def *d = pc_sect_defs; d->name; d++) {
		size_t n = strlen(d->name);

		if (d->has_id && !strncmp(name, d->name, n) && name[n] == '.') {
			*id = name + n + 1;
			return d;
		}
		if (!d->has_id && !strcmp(name, d->name)) {
			*id = NULL;
			return d;
		}
	}
	return NULL;
}

bool sv_device_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > SV_ID_MAX || !((id[0] >= 'a' && id[0] <= 'z') ||
	                                  (id[0] >= 'A' && id[0] <= 'Z')))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		            "0123456789_-", id[i]))
			return false;
	return true;
}

/* A section name close to name ("Guest", "guset", "dsk.root"), or NULL. */
static const char *sect_guess(const char *name)
{
	static char guess[96];
	const char *dot = strchr(name, '.');
	size_t n = dot ? (size_t)(dot - name) : strlen(name);
	char head[32];

	if (n >= sizeof(head))
		return NULL;
	memcpy(head, name, n);
	head[n] = '\0';
	for (const struct sect_def *d = pc_sect_defs; d->name; d++) {
		if (d->has_id != (dot != NULL) || (strcasecmp(head, d->name) &&
		    sv_edit_distance(head, d->name, 2) > 2))
			continue;
		snprintf(guess, sizeof(guess), "%s%s", d->name, dot ? dot : "");
		return guess;
	}
	return NULL;
}

static void unknown_section(struct pctx *c, const char *name)
{
	const char *id;

	if (!strcmp(name, "disk") || !strcmp(name, "cdrom") || !strcmp(name, "nic"))
		pc_report(c, c->lineno, name, NULL, "needs an id: write [%s.ID], for "
		          "example [%s.%s]", name, name, !strcmp(name, "nic") ? "lan" : "root");
	else if (!sect_def_find(name, &id))
		pc_report(c, c->lineno, name, NULL, "unknown section%s%s%s; allowed: "
		          "[guest], [disk.ID], [cdrom.ID], [nic.ID], [serial], [display], "
		          "[restart], [shutdown], [migration], [qemu]",
		          sect_guess(name) ? " (did you mean [" : "",
		          sect_guess(name) ? sect_guess(name) : "",
		          sect_guess(name) ? "]?)" : "");
}

/* Check that a device id is well formed and not taken by another device. */
static bool device_id_ok(struct pctx *c, const char *name, const char *id)
{
	if (!sv_device_id_valid(id)) {
		pc_report(c, c->lineno, name, NULL, "bad id \"%s\"; an id is 1-%d of "
		          "A-Z a-z 0-9 _ -, starting with a letter", id, SV_ID_MAX);
		return false;
	}
	for (size_t i = 0; i < c->nsects; i++) {
		const struct psect *o = &c->sects[i];

		if (o->id && !strcmp(o->id, id)) {
			pc_report(c, c->lineno, name, NULL, "id \"%s\" is already used by "
			          "[%s] at line %d; disks, CD-ROMs and NICs share one set of ids",
			          id, o->name, o->line);
			return false;
		}
	}
	return true;
}

static bool sect_repeated(struct pctx *c, const char *name)
{
	for (size_t i = 0; i < c->nsects; i++)
		if (!strcmp(c->sects[i].name, name)) {
			pc_report(c, c->lineno, name, NULL, "section given twice (first at "
			          "line %d); give each section once", c->sects[i].line);
			return true;
		}
	return false;
}

/* Grow the drive or NIC array by one zeroed element; returns its index. */
static int device_add(struct pctx *c, enum sect_kind kind)
{
	struct sv_profile *p = c->p;

	if (kind == SECT_NIC) {
		struct sv_nic *n = realloc(p->nics, (p->nnics + 1) * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->nics = n;
		memset(&n[p->nnics], 0, sizeof(*n));
		return (int)p->nnics++;
	}
	struct sv_drive *d = realloc(p->drives, (p->ndrives + 1) * sizeof(*d));

	if (!d)
		return -ENOMEM;
	p->drives = d;
	memset(&d[p->ndrives], 0, sizeof(*d));
	return (int)p->ndrives++;
}

static int sect_begin(struct pctx *c, const char *name)
{
	const struct sect_def *d;
	struct psect *s;
	const char *id;
	int index = 0;

	c->cur = -1;
	d = sect_def_find(name, &id);
	if (!d || (d->has_id && !*id)) {
		unknown_section(c, d ? d->name : name);
		return 0;
	}
	if (sect_repeated(c, name) || (d->has_id && !device_id_ok(c, name, id)))
		return 0;
	if (d->has_id && c->p->ndrives + c->p->nnics >= PC_MAX_DEVICES) {
		pc_report(c, c->lineno, name, NULL, "too many devices; at most %d disks, "
		          "CD-ROMs and NICs together", PC_MAX_DEVICES);
		return 0;
	}
	s = realloc(c->sects, (c->nsects + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	c->sects = s;
	if (d->has_id && (index = device_add(c, d->kind)) < 0)
		return index;
	s = &c->sects[c->nsects];
	memset(s, 0, sizeof(*s));
	s->kind = d->kind;
	s->def = d;
	s->line = c->lineno;
	s->index = (size_t)index;
	s->name = strdup(name);
	s->id = id ? strdup(id) : NULL;
	if (!s->name || (id && !s->id)) {
		free(s->name);
		free(s->id);
		return -ENOMEM;
	}
	c->cur = (int)c->nsects++;
	return pc_sect_init(c, s);
}

/* ------------------------------------------------------------ keys */

static const struct pkey *key_find(const struct sect_def *d, const char *name)
{
	for (const struct pkey *k = d->keys; k->name; k++)
		if (!strcmp(k->name, name))
			return k;
	return NULL;
}

static void unknown_key(struct pctx *c, const struct psect *s, const char *name)
{
	const struct pkey *best = NULL;
	unsigned bestd = 3;
	char list[512] = "";
	size_t off = 0;

	if (s->kind == SECT_GUEST && !strcmp(name, "name")) {
		pc_report(c, c->lineno, s->name, name, "unknown key; the guest's name is "
		          "the profile's file name (web1.ini defines the guest web1)");
		return;
	}
	for (const struct pkey *k = s->def->keys; k->name; k++) {
		unsigned d = sv_edit_distance(name, k->name, 2);

		if (d < bestd) {
			bestd = d;
			best = k;
		}
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
		                        off ? ", " : "", k->name);
		if (off >= sizeof(list))
			off = sizeof(list) - 1;
	}
	if (best)
		pc_report(c, c->lineno, s->name, name, "unknown key; did you mean %s?",
		          best->name);
	else
		pc_report(c, c->lineno, s->name, name, "unknown key; allowed: %s", list);
}

/* Generic checks every value passes before its key's own parser. */
static bool value_ok(struct pctx *c, const struct psect *s, const struct pkey *k,
                     const char *v)
{
	if (!*v)
		pc_report(c, c->lineno, s->name, k->name, "empty value; %s", k->help);
	else if (!sv_text_clean(v))
		pc_report(c, c->lineno, s->name, k->name, "holds a control character "
		          "(newline, tab, ...) or invalid UTF-8; not allowed");
	else if (v[0] == '-' && !(k->flags & PK_DASH))
		pc_report(c, c->lineno, s->name, k->name, "\"%s\" starts with '-', which "
		          "QEMU could take as an option; not allowed", v);
	else
		return true;
	return false;
}

int sv_profile_device_key(const char *section, const char *key, const char *value,
                          struct sv_error *err)
{
	const struct sect_def *def = pc_sect_defs;
	const struct pkey *k = NULL;
	while (def->name && (!def->has_id || strcmp(def->name, section) != 0))
		def++;
	for (const struct pkey *x = def->name ? def->keys : NULL; x && x->name && !k; x++)
		if (strcmp(x->name, key) == 0)
			k = x;
	if (!k)
		return sv_error_setc(err, -ENOENT, "InvalidArgument", "%.40s: not a key for a %s",
		                     key, section);
	/* A profile of one device, parsed as far as this key goes. */
	struct sv_profile *p = calloc(1, sizeof(*p));
	char name[64];
	snprintf(name, sizeof(name), "%s.x", section);
	struct pctx c = { .path = "", .p = p, .cur = -2 };
	struct psect s = { .kind = def->kind, .def = def, .name = name, .id = name };
	int rc = 0;
	if (p && def->kind == SECT_NIC)
		p->nics = calloc(1, sizeof(*p->nics)), p->nnics = p->nics ? 1 : 0;
	else if (p)
		p->drives = calloc(1, sizeof(*p->drives)), p->ndrives = p->drives ? 1 : 0;
	if (!p || (!p->nnics && !p->ndrives)) {
		sv_profile_free(p);
		return sv_error_set(err, -ENOMEM, "out of memory");
	}
	if (value_ok(&c, &s, k, value))
		k->fn(&c, &s, k, value);
	if (c.nerrs || c.oom) {
		/* "path:line: [disk.x] key: what" without its place */
		const char *m = c.nerrs ? strstr(c.errs[0].msg, "] ") : NULL;
		rc = sv_error_setc(err, -EINVAL, "InvalidArgument", "%s",
		                   m ? m + 2 : "out of memory");
	}
	for (size_t i = 0; i < c.nerrs; i++)
		free(c.errs[i].msg);
	free(c.errs);
	sv_profile_free(p);
	return rc;
}

static bool key_repeated(struct pctx *c, struct psect *s, const struct pkey *k)
{
	for (size_t i = 0; i < s->nseen; i++)
		if (s->seen[i].key == k) {
			if (k->flags & PK_REPEAT)
				return false;
			pc_report(c, c->lineno, s->name, k->name, "given twice (first at "
			          "line %d); give each key once", s->seen[i].line);
			return true;
		}
	if (s->nseen < PC_MAX_SEEN)
		s->seen[s->nseen++] = (struct pseen){ k, c->lineno };
	return false;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct pctx *c = user;
	struct psect *s;
	const struct pkey *k;

	(void)section;          /* ours (c->cur) is not truncated */
	if (c->cur == -2) {
		pc_report(c, c->lineno, NULL, name, "keys must follow a [section] "
		          "header such as [guest]");
		return 1;
	}
	if (c->cur < 0)
		return 1;       /* the section header was already reported */
	s = &c->sects[c->cur];
	k = key_find(s->def, name);
	if (!k)
		unknown_key(c, s, name);
	else if (!key_repeated(c, s, k) && value_ok(c, s, k, value))
		k->fn(c, s, k, value);
	return 1;
}

/* ------------------------------------------------------------ reading */

/* Classify a stripped line for inih: returns true if it may be passed on. */
static bool line_ok(struct pctx *c, const char *l)
{
	const char *end;

	if (!*l || *l == ';' || *l == '#')
		return true;
	if (*l == '[') {
		end = strchr(l, ']');
		if (!end) {
			pc_report(c, c->lineno, NULL, NULL, "section header without ']'");
			c->cur = -1;
			return false;
		}
		if (end[1 + strspn(end + 1, " \t")] && end[1 + strspn(end + 1, " \t")] != ';') {
			pc_report(c, c->lineno, NULL, NULL, "text after the section "
			          "header's ']'; only a ; comment may follow");
		}
		char *name = strndup(l + 1, (size_t)(end - l - 1));

		if (!name || sect_begin(c, name) < 0)
			c->oom = true;
		free(name);
		return true;
	}
	for (const char *p = l; *p; p++) {
		if (*p == '=' || *p == ':')
			return true;
		if (*p == ';' && p > l && (p[-1] == ' ' || p[-1] == '\t'))
			break;
	}
	pc_report(c, c->lineno, NULL, NULL, "expected \"key = value\", a [section] "
	          "header or a comment");
	return false;
}

/* inih's line source: one line of c->buf per call, checked and stripped. */
static char *reader(char *str, int num, void *stream)
{
	struct pctx *c = stream;
	const char *start, *nl;
	size_t len, skip;

	if (c->off >= c->len)
		return NULL;
	start = c->buf + c->off;
	nl = memchr(start, '\n', c->len - c->off);
	len = nl ? (size_t)(nl - start) : c->len - c->off;
	c->off += len + (nl != NULL);
	c->lineno++;
	if (c->lineno == 1 && len >= 3 && !memcmp(start, "\xef\xbb\xbf", 3))
		start += 3, len -= 3;
	skip = 0;
	while (skip < len && (start[skip] == ' ' || start[skip] == '\t'))
		skip++;
	start += skip;
	len -= skip;
	while (len && (start[len - 1] == '\r' || start[len - 1] == ' ' ||
	               start[len - 1] == '\t'))
		len--;
	strcpy(str, "\n");
	if (memchr(start, '\0', len))
		pc_report(c, c->lineno, NULL, NULL, "holds a NUL byte; not allowed");
	else if (len + 3 > (size_t)num)
		pc_report(c, c->lineno, NULL, NULL, "line longer than %d characters; "
		          "split long append or extra-arg values over several lines "
		          "(both keys may be repeated)", num - 3);
	else {
		memcpy(str, start, len);
		str[len] = '\0';
		if (!line_ok(c, str))
			strcpy(str, "\n");
		else
			strcat(str, "\n");
	}
	return str;
}

/* ------------------------------------------------------------ driver */

static int perr_cmp(const void *a, const void *b)
{
	const struct perr *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The absolute, normalised directory of path. */
static char *dir_of(const char *path)
{
	char cwd[4096], *abs = NULL, *slash;

	if (path[0] == '/') {
		abs = strdup(path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return NULL;
		if (asprintf(&abs, "%s/%s", cwd, path) < 0)
			abs = NULL;
	}
	if (!abs)
		return NULL;
	slash = strrchr(abs, '/');
	slash[slash == abs] = '\0';
	sv_path_normalize(abs);
	return abs;
}

/* The guest name: the file name without ".ini". */
static void name_check(struct pctx *c)
{
	const char *base = strrchr(c->path, '/');
	size_t n;

	base = base ? base + 1 : c->path;
	n = strlen(base);
	if (n < 5 || strcmp(base + n - 4, ".ini")) {
		pc_report(c, 0, NULL, NULL, "a profile's file name must end in .ini "
		          "(web1.ini defines the guest web1)");
		n += 4;
	}
	c->p->name = strndup(base, n - 4);
	if (!c->p->name)
		c->oom = true;
	else if (!sv_name_valid(c->p->name))
		pc_report(c, 0, NULL, NULL, "\"%s\" (the file name) is not a valid guest "
		          "name; use 1-%d of A-Z a-z 0-9 _ . -, starting with a letter or "
		          "digit", c->p->name, SV_NAME_MAX);
}

static void ctx_free(struct pctx *c)
{
	for (size_t i = 0; i < c->nsects; i++) {
		free(c->sects[i].name);
		free(c->sects[i].id);
	}
	free(c->sects);
	for (size_t i = 0; i < c->nerrs; i++)
		free(c->errs[i].msg);
	free(c->errs);
}

static int ctx_finish(struct pctx *c, struct sv_profile **out, struct sv_strv *errs)
{
	int r = 0;

	if (c->oom) {
		r = -ENOMEM;
	} else if (c->nerrs) {
		qsort(c->errs, c->nerrs, sizeof(*c->errs), perr_cmp);
		for (size_t i = 0; i < c->nerrs; i++) {
			if (sv_strv_push_take(errs, c->errs[i].msg) < 0)
				r = -ENOMEM;
			c->errs[i].msg = NULL;
		}
		r = r ? r : -EINVAL;
	}
	if (r == 0)
		*out = c->p;
	else
		sv_profile_free(c->p);
	ctx_free(c);
	return r;
}

/* Keep where each section and key was written (sv_profile_line()). */
static void record_lines(struct pctx *c)
{
	for (size_t i = 0; !c->oom && i < c->nsects; i++) {
		const struct psect *s = &c->sects[i];

		if (sv_strv_pushf(&c->p->lines, "%s\t\t%d", s->name, s->line) < 0)
			c->oom = true;
		for (size_t j = 0; !c->oom && j < s->nseen; j++)
			if (sv_strv_pushf(&c->p->lines, "%s\t%s\t%d", s->name,
			                  s->seen[j].key->name, s->seen[j].line) < 0)
				c->oom = true;
	}
}

int sv_profile_parse(const char *path, const char *buf, size_t len,
                     struct sv_profile **out, struct sv_strv *errs)
{
	struct pctx c = { .path = path, .buf = buf, .len = len, .cur = -2 };
	int r;

	*out = NULL;
	c.p = pc_profile_new(path);
	if (!c.p || !(c.p->dir = dir_of(path))) {
		sv_profile_free(c.p);
		return -ENOMEM;
	}
	c.p->digest = sv_digest(buf, len);
	name_check(&c);
	r = ini_parse_stream(reader, &c, handler, &c);
	if (r > 0 && r <= c.lineno) {
		bool seen = false;

		for (size_t i = 0; i < c.nerrs; i++)
			seen |= c.errs[i].line == r;
		if (!seen)
			pc_report(&c, r, NULL, NULL, "syntax error");
	} else if (r < 0) {
		c.oom = true;
	}
	if (!c.oom)
		pc_check(&c);
	record_lines(&c);
	return ctx_finish(&c, out, errs);
}

int sv_profile_line(const struct sv_profile *p, const char *section, const char *key)
{
	size_t ls = strlen(section), lk = key ? strlen(key) : 0;
	int header = 0;

	for (size_t i = 0; i < p->lines.n; i++) {
		const char *l = p->lines.v[i];

		if (strncmp(l, section, ls) || l[ls] != '\t')
			continue;
		l += ls + 1;
		if (*l == '\t')
			header = atoi(l + 1);
		else if (key && !strncmp(l, key, lk) && l[lk] == '\t')
			return atoi(l + lk + 1);
	}
	return header;
}

/* A profile that is a symlink takes its relative paths from the target's
 * directory (the file's real home); the link must keep the target's name,
 * which is the guest's. Returns the path to parse (malloc'd) or NULL with a
 * message in errs. */
static char *profile_real_path(const char *path, struct sv_strv *errs)
{
	struct stat st;
	if (lstat(path, &st) < 0 || !S_ISLNK(st.st_mode))
		return strdup(path);
	char *real = realpath(path, NULL);
	if (!real) {
		sv_strv_pushf(errs, "%s: cannot resolve the symlink: %s", path, strerror(errno));
		return NULL;
	}
	const char *a = strrchr(path, '/'), *b = strrchr(real, '/');
	if (strcmp(a ? a + 1 : path, b ? b + 1 : real) != 0) {
		sv_strv_pushf(errs, "%s: a symlink to %s: the link and its target must have "
		              "the same name (the guest's)", path, real);
		free(real);
		return NULL;
	}
	return real;
}

int sv_profile_load(const char *path_in, struct sv_profile **out, struct sv_strv *errs)
{
	sv_autofree char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, r = 0;

	*out = NULL;
	sv_autofree char *path = profile_real_path(path_in, errs);
	if (!path)
		return errs->n ? -EINVAL : -ENOMEM;
	/* A buffer of the file's size, grown if it grows meanwhile: not the
	 * largest allowed at once, which costs a mapping per profile. */
	struct stat st;
	size_t cap = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		r = -errno;
	else if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!(buf = malloc(cap = st.st_size >= 0 && st.st_size < SV_PROFILE_MAX_BYTES
	                              ? (size_t)st.st_size + 2 : SV_PROFILE_MAX_BYTES + 1)))
		r = -ENOMEM;
	while (r == 0 && (n = read(fd, buf + len, cap - len)) != 0) {
		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n > 0 && (len += (size_t)n) > SV_PROFILE_MAX_BYTES)
			r = -EFBIG;
		else if (len == cap) {
			size_t ncap = cap * 2 > SV_PROFILE_MAX_BYTES + 1 ? SV_PROFILE_MAX_BYTES + 1
			            : cap * 2;
			char *nb = realloc(buf, ncap);
			if (!nb)
				r = -ENOMEM;
			else {
				buf = nb;
				cap = ncap;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	if (r == -EFBIG)
		sv_strv_pushf(errs, "%s: larger than %d bytes; not a profile", path,
		              SV_PROFILE_MAX_BYTES);
	else if (r < 0)
		sv_strv_pushf(errs, "%s: cannot read: %s", path, strerror(-r));
	if (r < 0)
		return r;
	return sv_profile_parse(path, buf, len, out, errs);
}

int sv_profile_find_device(const struct sv_profile *p, const char *id)
{
	for (size_t i = 0; i < p->ndrives; i++)
		if (!strcmp(p->drives[i].id, id))
			return (int)i;
	for (size_t i = 0; i < p->nnics; i++)
		if (!strcmp(p->nics[i].id, id))
			return (int)(p->ndrives + i);
	return -1;
}

void sv_profile_free(struct sv_profile *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->ndrives; i++) {
		struct sv_drive *d = &p->drives[i];

		free(d->id);
		free(d->file);
		free(d->format);
		free(d->serial);
	}
	for (size_t i = 0; i < p->nnics; i++) {
		struct sv_nic *n = &p->nics[i];

		free(n->id);
		free(n->bridge);
		free(n->ifname);
		free(n->network);
		free(n->forwards);
	}
	free(p->drives);
	free(p->nics);
	char **strs[] = {
		&p->path, &p->dir, &p->name, &p->machine, &p->cpu_model, &p->bios,
		&p->uefi_code, &p->uefi_vars, &p->uefi_vars_template, &p->kernel,
		&p->initrd, &p->append, &p->serial_log, &p->vnc_listen, &p->vnc_password_file,
		&p->binary,
		&p->user, &p->group, &p->cpu_affinity, &p->emulator_affinity,
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	sv_strv_free(&p->boot_order);
	sv_strv_free(&p->migrate_caps);
	sv_strv_free(&p->extra_args);
	sv_strv_free(&p->lines);
	free(p);
}
