/*
 * The control socket's JSON writer: a value as one line of compact JSON,
 * byte for byte what jansson's json_dumps(v, JSON_COMPACT) gives (the unit
 * test compares them), written straight into one buffer. jansson formats
 * through a callback per piece and snprintf per number; a `list` of 200
 * guests spent half its time there.
 */
#ifndef SV_JSONOUT_H
#define SV_JSONOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/* v as compact JSON followed by a newline (and a NUL, not counted in
 * *len): a malloc'd string, or NULL when out of memory or when a string in
 * v is not valid UTF-8 (as json_dumps refuses it). */
char *sv_json_line(const json_t *v, size_t *len);

/* The same writer, a piece at a time: a value too large to build as one
 * tree (a list of every guest) is written an element at a time, each
 * element's tree freed before the next is made. Start from { 0 }. */
struct sv_jsonbuf {
	char *p;
	size_t len, cap;
	bool bad;               /* out of memory, or not UTF-8 */
};

/* Append text (n bytes, already JSON) as it is. */
void sv_jsonbuf_put(struct sv_jsonbuf *b, const char *text, size_t n);
/* Append v as compact JSON (NULL: b goes bad). */
void sv_jsonbuf_value(struct sv_jsonbuf *b, const json_t *v);
/* What b holds, NUL-terminated, *len its length (the NUL not counted), or
 * NULL when b went bad; b is empty again either way. */
char *sv_jsonbuf_take(struct sv_jsonbuf *b, size_t *len);

#endif
