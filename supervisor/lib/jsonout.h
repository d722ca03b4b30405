/*
 * The control socket's JSON writer: a value as one line of compact JSON,
 * byte for byte what jansson's json_dumps(v, JSON_COMPACT) gives (the unit
 * test compares them), written straight into one buffer. jansson formats
 * through a callback per piece and snprintf per number; a `list` of 200
 * guests spent half its time there.
 */
#ifndef SV_JSONOUT_H
#define SV_JSONOUT_H

#include <stddef.h>
#include <jansson.h>

/* v as compact JSON followed by a newline (and a NUL, not counted in
 * *len): a malloc'd string, or NULL when out of memory or when a string in
 * v is not valid UTF-8 (as json_dumps refuses it). */
char *sv_json_line(const json_t *v, size_t *len);

#endif
