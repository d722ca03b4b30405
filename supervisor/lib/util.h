/*
 * Small helpers shared by the supervisor: the error object, a growable
 * string vector, THE comma-escaping helper for QEMU option strings, and the
 * parsers and validators for the values that appear in profiles (names,
 * sizes, durations, paths, MAC addresses). Nothing here does I/O.
 */
#ifndef SV_UTIL_H
#define SV_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define SV_VERSION "0.1.0"

/* Longest guest name, and the sockaddr_un limit for socket paths (107
 * characters plus the NUL). */
#define SV_NAME_MAX 64
#define SV_SOCK_PATH_MAX 108

/* qsup's one error type, from the code that fails up to the reply on the
 * control socket: a code, the protocol's error class, and a message that
 * each level may prefix with its context on the way up (as crun's
 * crun_error_wrap does). Touched only on failure; every function taking
 * one accepts NULL. */
struct sv_error {
	int code;               /* a negative errno value */
	const char *cls;        /* the error class ("InvalidState"...); NULL: from code */
	char msg[512];
};

/* Record code and a printf-style message in err (if not NULL), with the
 * class that code implies. Returns code, so that callers can write
 * `return sv_error_set(err, -EINVAL, ...)`. */
int sv_error_set(struct sv_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The same with an explicit class (a string constant). */
int sv_error_setc(struct sv_error *err, int code, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Prefix err's message with context and ": " (what the caller was doing),
 * cutting the message's end when it would not fit. Returns err's code. */
int sv_error_wrap(struct sv_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* err's class: the one given, or the one its code implies (-EBUSY,
 * -EEXIST, -ENOTCONN, -EAGAIN: InvalidState; -EINVAL, -ENODEV:
 * InvalidArgument; -ENOENT: NotFound; anything else: GenericError). */
const char *sv_error_class(const struct sv_error *err);

/* A growable vector of malloc'd strings, always NULL-terminated once it has
 * an element (v[n] == NULL). Zero-initialise it; release with sv_strv_free(). */
struct sv_strv {
	char **v;
	size_t n, cap;
};

/* Append a copy of s. Returns 0 or -ENOMEM. */
int sv_strv_push(struct sv_strv *sv, const char *s);

/* Append s itself, taking ownership (freed here on failure). Returns 0 or
 * -ENOMEM. */
int sv_strv_push_take(struct sv_strv *sv, char *s);

/* Append a printf-formatted string. Returns 0 or -ENOMEM. */
int sv_strv_pushf(struct sv_strv *sv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int sv_strv_vpushf(struct sv_strv *sv, const char *fmt, va_list ap);

/* Free every string and the vector; leaves it empty and reusable. */
void sv_strv_free(struct sv_strv *sv);

/* Hand the NULL-terminated array to the caller (who frees each string and
 * the array) and leave sv empty. Returns NULL for an empty vector. */
char **sv_strv_steal(struct sv_strv *sv);

/* Free a NULL-terminated array of malloc'd strings (NULL is fine). */
void sv_strv_free_array(char **v);

/* The one escaping helper for QEMU's comma-separated option strings: a copy
 * of s with every ',' doubled, so that QEMU reads it back as one value and
 * it can never add an option. Returns a malloc'd string, or NULL when out of
 * memory. */
char *sv_qemu_escape(const char *s);

/* A 64-bit FNV-1a digest of len bytes (not cryptographic: it tells whether
 * a file changed). */
uint64_t sv_digest(const void *buf, size_t len);

/* Non-zero if s is a valid guest name: [A-Za-z0-9][A-Za-z0-9_.-]{0,63}. */
bool sv_name_valid(const char *s);

/* Parse a size: digits with an optional binary suffix K, M, G, T (also KiB,
 * MiB, GiB, TiB, any case; no suffix means bytes). Returns 0, -EINVAL (not a
 * size) or -ERANGE (over 2^63). */
int sv_size_parse(const char *s, uint64_t *bytes);

/* Parse a duration: digits with an optional unit ms, s, m, h (no unit means
 * seconds). Returns 0, -EINVAL or -ERANGE; *ms is in milliseconds. */
int sv_duration_parse(const char *s, uint64_t *ms);

/* Parse a decimal integer in [min, max]. Returns 0, -EINVAL or -ERANGE. */
int sv_uint_parse(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parse yes/no, on/off, true/false, 1/0 (case-insensitive). 0 or -EINVAL. */
int sv_bool_parse(const char *s, bool *out);

/* Parse a MAC address "xx:xx:xx:xx:xx:xx" (hex, any case). 0 or -EINVAL. */
int sv_mac_parse(const char *s, uint8_t mac[6]);

/* The stable MAC of NIC nic_id of guest name: 52:54:00 followed by the first
 * three bytes of the 64-bit FNV-1a hash of "name/nic_id". */
void sv_mac_stable(const char *name, const char *nic_id, uint8_t mac[6]);

/* Format mac as "52:54:00:ab:cd:ef" into buf (at least 18 bytes). */
void sv_mac_format(const uint8_t mac[6], char buf[18]);

/* Lexically normalise the absolute path p in place: collapse "//" and "/./",
 * and apply ".." (never above "/"). No filesystem access. */
void sv_path_normalize(char *p);

/* Resolve the profile value v to an absolute, canonical path. An absolute v
 * is kept; a relative one is taken relative to dir (absolute, normalised).
 * ".." components are allowed only at the start of a relative path; "." and
 * repeated slashes are dropped; a trailing slash, a ".." anywhere else, and
 * a first component holding ':' (json:, nbd:, file: ...) are refused.
 * Returns 0 with *out malloc'd, -EINVAL with *why set to a static reason,
 * -ENAMETOOLONG or -ENOMEM. */
int sv_path_resolve(const char *dir, const char *v, char **out, const char **why);

/* Non-zero if s is valid UTF-8 without control characters (tab included). */
bool sv_text_clean(const char *s);

/* Make s valid UTF-8 in place, as JSON (jansson) insists: a byte that
 * starts no valid sequence (a character cut by "%.64s", a stray byte in a
 * log) becomes '?'. */
void sv_utf8_scrub(char *s);

/* Edit distance between a and b, capped at cap+1 (for "did you mean"). */
unsigned sv_edit_distance(const char *a, const char *b, unsigned cap);

/* Cleanup helper for synchronous code: `sv_autofree char *p = NULL;`. */
void sv_freep(void *pp);
#define sv_autofree __attribute__((cleanup(sv_freep)))

/* s, or dflt when s is NULL (ISO C's spelling of GNU's `s ?: dflt`). */
static inline const char *sv_or(const char *s, const char *dflt)
{
	return s ? s : dflt;
}

/* The string member key of JSON object o, or dflt when o has none. */
#define sv_jstr(o, key, dflt) sv_or(json_string_value(json_object_get((o), (key))), (dflt))

#endif
