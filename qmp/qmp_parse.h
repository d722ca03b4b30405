/*
 * The pure half of libqmp: framing a byte stream into JSON messages, and
 * telling what kind of QMP message an object is. No I/O and no libuv, so the
 * fuzzers and unit tests can drive it with plain buffers.
 */
#ifndef QMP_PARSE_H
#define QMP_PARSE_H

#include <stddef.h>
#include <jansson.h>

/* Splits a stream on '\n' and parses each non-blank line as one JSON object.
 * Lines may arrive cut anywhere, or several in one chunk. */
struct qmp_framer {
	char *buf;        /* the start of an unfinished line */
	size_t len, cap;
	size_t max_line;  /* longest accepted line, newline excluded */
	int error;        /* sticky: once set, the stream is unusable */
	/* When set, a line that is not a JSON object is handed to this instead
	 * of failing the stream (for protocols that answer a bad line and carry
	 * on). Its return value works like the message callback's. */
	int (*on_bad_line)(void *arg);
};

/* Called with each parsed object (borrowed; the framer drops its reference
 * after the call). A non-zero return stops the feed, which then returns it. */
typedef int (*qmp_framer_cb)(json_t *msg, void *arg);

/* Prepare f to accept lines of at most max_line bytes (on_bad_line unset). */
void qmp_framer_init(struct qmp_framer *f, size_t max_line);

/* Release the buffered partial line. f may be reinitialized afterwards. */
void qmp_framer_free(struct qmp_framer *f);

/* Feed len bytes. Calls cb for every complete line, in order. Returns 0 when
 * all bytes were consumed, the callback's non-zero value if it stopped the
 * feed (the remaining bytes are dropped), -EMSGSIZE when a line exceeds
 * max_line, or -EBADMSG when a line is not a JSON object (unless on_bad_line
 * is set, which then gets the line instead). Errors are sticky:
 * every later feed returns the same error. */
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
 * (error class and desc are strings, an event name is a string). */
enum qmp_msg_kind qmp_msg_kind(json_t *msg);

#endif
