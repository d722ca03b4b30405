/*
 * Requests and events, between those who ask (the control socket's
 * clients) and those who answer (guests, hot-plug, migration, the qmp
 * passthrough).
 *
 * A request names its asker by a number (the client's id), never by a
 * pointer, and carries the route it came by. Answering hands the message
 * to that route, which looks the asker up and drops the answer when the
 * asker has gone. So the code that answers never calls into the socket
 * server, and an answer that comes late is harmless. (OpenBSD vmd routes
 * its replies back the same way, by peer id.) Events go out through the
 * same route, to its subscribers.
 */
#ifndef SV_REQUEST_H
#define SV_REQUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <sys/types.h>

struct sv_request;

struct sv_route {
	/* Deliver msg (taken) to peer, or drop it when peer has gone. */
	void (*answer)(void *arg, uint64_t peer, json_t *msg);
	/* The same for an answer already written as one line of JSON (line
	 * taken, malloc'd, len bytes with its newline). NULL: answers come as
	 * msg alone (a line is read back into a msg for this route). */
	void (*answer_line)(void *arg, uint64_t peer, char *line, size_t len);
	/* Deliver an event (taken) to every subscriber. */
	void (*event)(void *arg, json_t *event);
	/* Make peer a subscriber. */
	void (*subscribe)(void *arg, uint64_t peer);
	void *arg;
	/* Send msg (taken; NULL: nothing) to peer outside any answer (a
	 * stream for that peer alone, as `log` with follow). Returns false
	 * when peer can get nothing more (gone, or closing): msg is dropped. */
	bool (*deliver)(void *arg, uint64_t peer, json_t *msg);
	/* req is being answered with msg (borrowed; NULL: no answer could be
	 * made): for the metrics. NULL: nobody counts. */
	void (*finished)(void *arg, const struct sv_request *req, json_t *msg);
};

/* One request being served. It lives until it is answered, whatever
 * becomes of its asker meanwhile. */
struct sv_request {
	const struct sv_route *route;
	uint64_t peer;              /* the asker, as the route knows it */
	json_t *id;                 /* echoed in the reply; NULL: none */
	uid_t uid;                  /* the asker's, from SO_PEERCRED */
	char verb[32];
	uint64_t t0;                /* uv_hrtime() when it came (request latency) */
};

/* A request from peer (uid) for verb, with id (borrowed; NULL: none).
 * NULL when out of memory. */
struct sv_request *sv_request_new(const struct sv_route *r, uint64_t peer, uid_t uid,
                                  json_t *id, const char *verb);

/* Answer req with {"return": ret} (ret is taken; NULL: {}) and free req. */
void sv_reply_ok(struct sv_request *req, json_t *ret);

/* Answer req with {"return": R}, where text (taken, malloc'd; NULL: out
 * of memory or not encodable, answered as an error) is R already written
 * as compact JSON, len bytes (sv_jsonbuf in jsonout.h): for a return
 * value too large to build as one tree. Frees req. */
void sv_reply_ok_text(struct sv_request *req, char *text, size_t len);

/* Answer req with {"error": {"class": cls, "desc": ...}} and free req. The
 * text is made valid UTF-8 (a byte that starts no valid sequence becomes
 * '?'), as JSON needs. */
void sv_reply_err(struct sv_request *req, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Answer req with err's class and message (sv_error_class) and free req. */
struct sv_error;
void sv_reply_error(struct sv_request *req, const struct sv_error *err);

/* Answer req with a prepared error object (taken) and free req. */
void sv_reply_error_obj(struct sv_request *req, json_t *error);

/* Make req's asker a subscriber of the events (req is not answered). */
void sv_request_subscribe(struct sv_request *req);

/* Send event (taken: {"event": ..., "data": ...}) to r's subscribers, with
 * a timestamp added here. r may be NULL (nobody listens). */
void sv_emit(const struct sv_route *r, json_t *event);

/* Send event (taken, NULL: none; a timestamp is added as by sv_emit) to
 * peer alone. Returns false when peer is gone (or r cannot deliver): the
 * stream for it should end. */
bool sv_emit_to(const struct sv_route *r, uint64_t peer, json_t *event);

#endif
