/*
 * Small shared helpers: error object, string vector, the comma-escaping
 * helper, and parsers for the value types used in profiles. No I/O.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static int error_vset(struct sv_error *err, int code, const char *cls, const char *fmt,
                      va_list ap) __attribute__((format(printf, 4, 0)));
static int error_vset(struct sv_error *err, int code, const char *cls, const char *fmt,
                      va_list ap)
{
	if (!err)
		return code;
	err->code = code;
	err->cls = cls;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int sv_error_set(struct sv_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, code, NULL, fmt, ap);
	va_end(ap);
	return code;
}

int sv_error_setc(struct sv_error *err, int code, const char *cls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, code, cls, fmt, ap);
	va_end(ap);
	return code;
}

int sv_error_wrap(struct sv_error *err, const char *fmt, ...)
{
	char ctx[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return 0;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	size_t n = strlen(ctx);
	if (n > sizeof(err->msg) - 3)
		n = sizeof(err->msg) - 3;
	size_t old = strnlen(err->msg, sizeof(err->msg) - n - 3);
	memmove(err->msg + n + 2, err->msg, old);
	err->msg[n + 2 + old] = '\0';
	memcpy(err->msg, ctx, n);
	memcpy(err->msg + n, ": ", 2);
	return err->code;
}

const char *sv_error_class(const struct sv_error *err)
{
	int c = err->code;
	if (err->cls)
		return err->cls;
	return c == -EBUSY || c == -EEXIST || c == -ENOTCONN || c == -EAGAIN ? "InvalidState"
	     : c == -EINVAL || c == -ENODEV ? "InvalidArgument"
	     : c == -ENOENT ? "NotFound" : "GenericError";
}

void sv_freep(void *pp)
{
	free(*(void **)pp);
}

/* ------------------------------------------------------------ strv */

int sv_strv_push_take(struct sv_strv *sv, char *s)
{
	if (!s)
		return -ENOMEM;
	if (sv->n + 2 > sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 16;
		char **v = realloc(sv->v, cap * sizeof(*v));

		if (!v) {
			free(s);
			return -ENOMEM;
		}
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
	return 0;
}

int sv_strv_push(struct sv_strv *sv, const char *s)
{
	return sv_strv_push_take(sv, strdup(s));
}

int sv_strv_vpushf(struct sv_strv *sv, const char *fmt, va_list ap)
{
	char *s = NULL;

	if (vasprintf(&s, fmt, ap) < 0)
		return -ENOMEM;
	return sv_strv_push_take(sv, s);
}

int sv_strv_pushf(struct sv_strv *sv, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = sv_strv_vpushf(sv, fmt, ap);
	va_end(ap);
	return r;
}

void sv_strv_free(struct sv_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

char **sv_strv_steal(struct sv_strv *sv)
{
	char **v = sv->v;

	sv->v = NULL;
	sv->n = sv->cap = 0;
	return v;
}

void sv_strv_free_array(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* ------------------------------------------------------------ escaping */

char *sv_qemu_escape(const char *s)
{
	size_t n = strlen(s), commas = 0;
	char *out, *o;

	for (const char *p = s; *p; p++)
		commas += *p == ',';
	out = malloc(n + commas + 1);
	if (!out)
		return NULL;
	o = out;
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

/* ------------------------------------------------------------ values */

bool sv_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SV_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return false;
	return true;
}

/* Parse the leading decimal digits of s into *v; *end points past them. */
static int parse_digits(const char *s, uint64_t *v, const char **end)
{
	uint64_t x = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (x > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	*v = x;
	*end = p;
	return 0;
}

static int scale(uint64_t v, uint64_t mul, uint64_t limit, uint64_t *out)
{
	if (mul && v > limit / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

int sv_size_parse(const char *s, uint64_t *bytes)
{
	static const struct { const char *sfx; int shift; } units[] = {
		{ "", 0 }, { "b", 0 }, { "k", 10 }, { "kib", 10 }, { "m", 20 },
		{ "mib", 20 }, { "g", 30 }, { "gib", 30 }, { "t", 40 }, { "tib", 40 },
	};
	const char *end;
	uint64_t v;
	int r = parse_digits(s, &v, &end);

	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcasecmp(end, units[i].sfx))
			return scale(v, 1ull << units[i].shift, 1ull << 63, bytes);
	return -EINVAL;
}

int sv_duration_parse(const char *s, uint64_t *ms)
{
	static const struct { const char *sfx; uint64_t mul; } units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	const char *end;
	uint64_t v;
	int r = parse_digits(s, &v, &end);

	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(end, units[i].sfx))
			return scale(v, units[i].mul, UINT32_MAX * 1000ull, ms);
	return -EINVAL;
}

int sv_uint_parse(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int r = parse_digits(s, &v, &end);

	if (r < 0)
		return r;
	if (*end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int sv_bool_parse(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "on", "true", "1" };
	static const char *const no[] = { "no", "off", "false", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int sv_mac_parse(const char *s, uint8_t mac[6])
{
	if (strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);

		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

void sv_mac_stable(const char *name, const char *nic_id, uint8_t mac[6])
{
	uint64_t h = fnv1a(0xcbf29ce484222325ull, name);

	h = fnv1a(h, "/");
	h = fnv1a(h, nic_id);
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 56);
	mac[4] = (uint8_t)(h >> 48);
	mac[5] = (uint8_t)(h >> 40);
}

void sv_mac_format(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x",
	         mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

/* ------------------------------------------------------------ paths */

void sv_path_normalize(char *p)
{
	char *out = p + 1;          /* p[0] is '/' */
	const char *in = p + 1;

	while (*in) {
		const char *e = strchrnul(in, '/');
		size_t len = (size_t)(e - in);
		bool last = !*e;        /* before the copy below overwrites *e */

		if (len == 0 || (len == 1 && in[0] == '.')) {
			/* skip */
		} else if (len == 2 && in[0] == '.' && in[1] == '.') {
			if (out > p + 1) {
				out--;                  /* the '/' after the last part */
				while (out > p + 1 && out[-1] != '/')
					out--;
			}
		} else {
			memmove(out, in, len);
			out += len;
			*out++ = '/';
		}
		if (last)
			break;
		in = e + 1;
	}
	if (out > p + 1)
		out--;                          /* no trailing slash */
	*out = '\0';
}

/* Check the components of v: ".." only as a leading run of a relative path,
 * no protocol-looking first component. Returns a reason, or NULL if fine. */
static const char *path_check(const char *v)
{
	bool relative = v[0] != '/', leading = relative;
	const char *c = v;

	if (v[strlen(v) - 1] == '/')
		return "it ends with '/'; name a file";
	for (size_t i = 0; *c; i++) {
		const char *e = strchrnul(c, '/');
		size_t len = (size_t)(e - c);
		bool dotdot = len == 2 && c[0] == '.' && c[1] == '.';

		if (i == 0 && relative && memchr(c, ':', len))
			return "it looks like a protocol or URL (json:, nbd:, file: ...); "
			       "write ./NAME for a file whose name holds ':'";
		if (dotdot && !leading)
			return "'..' is allowed only at the start of a relative path";
		if (len && !dotdot && !(len == 1 && c[0] == '.'))
			leading = false;
		c = *e ? e + 1 : e;
	}
	return NULL;
}

int sv_path_resolve(const char *dir, const char *v, char **out, const char **why)
{
	char *p;
	int n;

	*why = NULL;
	if (!*v) {
		*why = "it is empty";
		return -EINVAL;
	}
	*why = path_check(v);
	if (*why)
		return -EINVAL;
	if (v[0] == '/')
		n = asprintf(&p, "%s", v);
	else
		n = asprintf(&p, "%s/%s", dir, v);
	if (n < 0)
		return -ENOMEM;
	sv_path_normalize(p);
	if (strlen(p) >= PATH_MAX) {
		free(p);
		*why = "it is too long";
		return -ENAMETOOLONG;
	}
	*out = p;
	return 0;
}

/* ------------------------------------------------------------ text */

/* Length of the UTF-8 sequence starting at s, or 0 if it is malformed. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool sv_text_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = utf8_len(p);

		if (n == 0 || *p < 0x20 || *p == 0x7f)
			return false;
		p += n;
	}
	return true;
}

unsigned sv_edit_distance(const char *a, const char *b, unsigned cap)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[65];

	if (lb > 64 || la > 64)
		return cap + 1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned diag = row[0], best;

		row[0] = (unsigned)i;
		best = row[0];
		for (size_t j = 1; j <= lb; j++) {
			unsigned up = row[j], v = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			diag = up;
			row[j] = v;
			if (v < best)
				best = v;
		}
		if (best > cap)
			return cap + 1;
	}
	return row[lb] > cap ? cap + 1 : row[lb];
}

uint64_t sv_digest(const void *buf, size_t len)
{
	const unsigned char *b = buf;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Make s valid UTF-8 in place, as jansson insists: a byte that starts no
 * valid sequence (a character cut by "%.64s", say) becomes '?'. */
void sv_utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		size_t n = utf8_len(p);
		if (n == 0) {
			*p = '?';
			n = 1;
		}
		p += n;
	}
}
