/*
 * The control socket: a unix stream socket speaking newline-delimited,
 * QMP-shaped JSON (see qsupd(8), CONTROL PROTOCOL). Many clients, pipelined
 * requests, replies matched by id and possibly out of order, events for
 * subscribed clients. Bad input gets an error reply; a line over the cap, or
 * a client that does not read its replies, gets disconnected.
 */
#ifndef SV_CONTROL_H
#define SV_CONTROL_H

#include <stdbool.h>
#include <jansson.h>
#include <sys/types.h>

struct sv_daemon;
struct sv_client;
struct sv_error;

/* Longest request line, and the most output queued for one client. */
#define SV_CONTROL_MAX_LINE (1024 * 1024)
#define SV_CONTROL_MAX_QUEUED (16 * 1024 * 1024)
#define SV_CONTROL_MAX_CLIENTS 256

/* One request being served. It lives until it is answered, even if its
 * client goes away meanwhile (the answer is then dropped). */
struct sv_request {
	struct sv_daemon *d;
	struct sv_client *client;
	json_t *id;                 /* echoed in the reply; NULL: none */
	uid_t uid;                  /* the client's, from SO_PEERCRED */
	char verb[32];
};

/* Listen on path, creating the socket 0660 (umask set before bind). A stale
 * socket is replaced; one where a daemon answers is an error (-EADDRINUSE).
 * Returns 0 or a negative errno with the reason in err. */
int sv_control_listen(struct sv_daemon *d, const char *path, struct sv_error *err);

/* Stop listening, remove the socket file and disconnect every client. */
void sv_control_close(struct sv_daemon *d);

/* Answer req with {"return": ret} (ret is taken) and free req. */
void sv_reply_ok(struct sv_request *req, json_t *ret);

/* Answer req with {"error": {"class": cls, "desc": ...}} and free req. */
void sv_reply_err(struct sv_request *req, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Answer req with a prepared error object (taken) and free req. */
void sv_reply_error_obj(struct sv_request *req, json_t *error);

/* Send an event to every subscribed client. event is taken: {"event": ...,
 * "data": ...}; the timestamp is added here. */
void sv_control_emit(struct sv_daemon *d, json_t *event);

/* The peer's uid, as read with SO_PEERCRED when it connected. */
uid_t sv_client_uid(const struct sv_client *c);

/* Mark the request's client as a subscriber. */
void sv_client_subscribe(struct sv_client *c);

#endif
