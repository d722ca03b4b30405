/* The control socket's JSON writer: see jsonout.h. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"

static bool room(struct sv_jsonbuf *o, size_t n)
{
	if (o->bad)
		return false;
	if (o->len + n <= o->cap)
		return true;
	size_t cap = o->cap ? o->cap : 256;
	while (cap < o->len + n)
		cap *= 2;
	char *p = realloc(o->p, cap);
	if (!p) {
		o->bad = true;
		return false;
	}
	o->p = p;
	o->cap = cap;
	return true;
}

static void put(struct sv_jsonbuf *o, const char *s, size_t n)
{
	if (room(o, n)) {
		memcpy(o->p + o->len, s, n);
		o->len += n;
	}
}

static void putc1(struct sv_jsonbuf *o, char c)
{
	if (room(o, 1))
		o->p[o->len++] = c;
}

/* The length of the UTF-8 sequence at s (n bytes left), 0 when invalid
 * (overlong forms, surrogates and code points past U+10FFFF included, as
 * jansson's utf8 checks refuse them). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0xC2 || c > 0xF4)
		return 0;
	len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
	if (n < len)
		return 0;
	cp = c & (0x7F >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/* A JSON string: runs of plain bytes copied at once; '"', '\\' and control
 * characters escaped as jansson escapes them. */
static void put_string(struct sv_jsonbuf *o, const char *str, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str;
	size_t run = 0;
	putc1(o, '"');
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t l = utf8_len(s + i, n - i);
			if (!l) {
				o->bad = true;
				return;
			}
			i += l;
			continue;
		}
		put(o, str + run, i - run);
		char esc[6] = { '\\', 0 };
		size_t el = 2;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			el = 6;
		}
		put(o, esc, el);
		run = ++i;
	}
	put(o, str + run, n - run);
	putc1(o, '"');
}

static void put_integer(struct sv_jsonbuf *o, json_int_t v)
{
	char buf[24], *e = buf + sizeof(buf), *p = e;
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10));
	if (v < 0)
		*--p = '-';
	put(o, p, (size_t)(e - p));
}

/* As jansson writes a real: 17 significant digits, ".0" when that reads as
 * an integer, the exponent without '+' and leading zeros. */
static void put_real(struct sv_jsonbuf *o, double v)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf) - 3, "%.17g", v);
	if (n < 0 || (size_t)n >= sizeof(buf) - 3) {
		o->bad = true;
		return;
	}
	size_t len = (size_t)n;
	char *e = strchr(buf, 'e');
	if (!e && !strchr(buf, '.')) {
		memcpy(buf + len, ".0", 3);
		len += 2;
	}
	if (e) {
		char *start = e + 1, *end = start + 1;
		if (*start == '-')
			start++;
		while (*end == '0')
			end++;
		if (end != start) {
			memmove(start, end, len - (size_t)(end - buf) + 1);
			len -= (size_t)(end - start);
		}
	}
	put(o, buf, len);
}

static void put_value(struct sv_jsonbuf *o, const json_t *v, int depth)
{
	const char *key;
	json_t *e;
	size_t i;
	if (o->bad)
		return;
	if (depth > 2048) {   /* as jansson's JSON_PARSER_MAX_DEPTH, about */
		o->bad = true;
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		bool first = true;
		void *it;
		putc1(o, '{');
		for (it = json_object_iter((json_t *)v); it;
		     it = json_object_iter_next((json_t *)v, it)) {
			key = json_object_iter_key(it);
			if (!first)
				putc1(o, ',');
			first = false;
			put_string(o, key, json_object_iter_key_len(it));
			putc1(o, ':');
			put_value(o, json_object_iter_value(it), depth + 1);
		}
		putc1(o, '}');
		break;
	}
	case JSON_ARRAY:
		putc1(o, '[');
		json_array_foreach((json_t *)v, i, e) {
			if (i)
				putc1(o, ',');
			put_value(o, e, depth + 1);
		}
		putc1(o, ']');
		break;
	case JSON_STRING:
		put_string(o, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		put_integer(o, json_integer_value(v));
		break;
	case JSON_REAL:
		put_real(o, json_real_value(v));
		break;
	case JSON_TRUE:
		put(o, "true", 4);
		break;
	case JSON_FALSE:
		put(o, "false", 5);
		break;
	case JSON_NULL:
		put(o, "null", 4);
		break;
	}
}

void sv_jsonbuf_put(struct sv_jsonbuf *b, const char *text, size_t n)
{
	put(b, text, n);
}

void sv_jsonbuf_value(struct sv_jsonbuf *b, const json_t *v)
{
	if (!v)
		b->bad = true;
	else
		put_value(b, v, 0);
}

char *sv_jsonbuf_take(struct sv_jsonbuf *b, size_t *len)
{
	char *p = NULL;
	put(b, "", 1);   /* the NUL */
	if (!b->bad) {
		p = b->p;
		*len = b->len - 1;
	} else {
		free(b->p);
	}
	*b = (struct sv_jsonbuf){ 0 };
	return p;
}

char *sv_json_line(const json_t *v, size_t *len)
{
	struct sv_jsonbuf o = { 0 };
	if (!v)
		return NULL;
	put_value(&o, v, 0);
	put(&o, "\n", 1);
	return sv_jsonbuf_take(&o, len);
}
