/*
 * The pure half of libqmp: framing a byte stream into JSON messages, and
 * telling what kind of QMP message an object is. No I/O and no libuv, so the
 * fuzzers and unit tests can drive it with plain buffers, and any
 * newline-delimited JSON protocol can reuse it (qsupd's control socket and
 * qsupctl do). Part of libqmp's public API: installed as <qsup/qmp_parse.h>
 * next to <qsup/qmp.h>, documented in libqmp(3). Errors are negative errno
 * values.
 */
#ifndef QMP_PARSE_H
#define QMP_PARSE_H

#include <stddef.h>
#include <jansson.h>

/* Splits a stream on '\n' and parses each non-blank line as one JSON object.
 * Lines may arrive cut anywhere, or several in one chunk. A line made only of
 * spaces, tabs and '\r' is skipped; a '\r' before the newline is accepted
 * (it is JSON whitespace) but counts toward max_line. An object with a
 * duplicate key is not accepted (JSON_REJECT_DUPLICATES). An integer above
 * INT64_MAX, up to UINT64_MAX, is QEMU's uint64 (jansson holds no larger
 * integer): it arrives as its int64 two's complement, so that QEMU's
 * uint64 -1 ("not known", as in a balloon's guest-stats) reads -1.
 *
 * The caller allocates the struct (typically inside its connection) and may
 * set on_bad_line after qmp_framer_init() and read error; the other fields
 * belong to the framer. */
struct qmp_framer {
	char *buf;        /* the start of an unfinished line */
	size_t len, cap;
	size_t max_line;  /* longest accepted line, newline excluded */
	int error;        /* sticky: once set (< 0), the stream is unusable */
	/* When set, a line that is not a JSON object calls this (the line
	 * itself is dropped) instead of failing the stream, for protocols that
	 * answer a bad line and carry on; arg is the one given to
	 * qmp_framer_feed(). Its return value works
	 * like the message callback's: 0 carries on, > 0 stops the feed, < 0
	 * fails the stream. */
	int (*on_bad_line)(void *arg);
};

/* Called with each parsed object (borrowed; the framer drops its reference
 * after the call: json_incref() what you keep) and the arg given to
 * qmp_framer_feed(). 0 carries on with the next line. A positive return
 * stops the feed, which returns it; the framer stays usable. A negative
 * return stops the feed too and becomes the framer's sticky error. */
typedef int (*qmp_framer_cb)(json_t *msg, void *arg);

/* Prepare f to accept lines of at most max_line bytes (on_bad_line unset, no
 * error, nothing buffered). Allocates nothing: cannot fail. */
void qmp_framer_init(struct qmp_framer *f, size_t max_line);

/* Release the buffered partial line. Safe to call twice, and after an error.
 * It does not clear the sticky error: call qmp_framer_init() to use f for a
 * new stream. */
void qmp_framer_free(struct qmp_framer *f);

/* Feed len bytes. Calls cb for every complete line, in order; the bytes after
 * the last newline are kept until a later feed completes their line. Returns:
 *   0           all bytes were consumed
 *   > 0         the callback's (or on_bad_line's) positive value: it stopped
 *               the feed; the rest of data, and any partial line it began,
 *               is dropped. Not an error: the next feed starts a new line.
 *   -EMSGSIZE   a line exceeds max_line (found as soon as the unfinished
 *               line does, without waiting for its newline)
 *   -EBADMSG    a line is not a JSON object (unless on_bad_line is set:
 *               it is then called instead, and the line skipped)
 *   -ENOMEM     the line buffer could not grow
 *   < 0         the callback's (or on_bad_line's) negative value
 * Errors (< 0) are sticky: the partial line is freed, f->error is set, and
 * every later feed returns the same error without calling cb. */
int qmp_framer_feed(struct qmp_framer *f, const char *data, size_t len,
                    qmp_framer_cb cb, void *arg);

enum qmp_msg_kind {
	QMP_MSG_INVALID,   /* none of the below, or malformed */
	QMP_MSG_GREETING,  /* {"QMP": {"version": ..., "capabilities": [...]}} */
	QMP_MSG_RETURN,    /* {"return": ..., "id": ...} */
	QMP_MSG_ERROR,     /* {"error": {"class": s, "desc": s}, "id": ...} */
	QMP_MSG_EVENT,     /* {"event": s, "data": ..., "timestamp": ...} */
};

/* Classify msg by its keys, checking the types that the client relies on
 * (error class and desc are strings, an event name is a string). The keys
 * are tried in the order "QMP", "return", "error", "event": the first one
 * present decides, and a wrong type then gives QMP_MSG_INVALID. The greeting's
 * contents, "id" and "data" are not checked. msg is not modified; NULL or a
 * non-object gives QMP_MSG_INVALID. */
enum qmp_msg_kind qmp_msg_kind(json_t *msg);

#endif
