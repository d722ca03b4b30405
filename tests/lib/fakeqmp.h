/*
 * A scripted fake QMP server for unit tests: one end of a socketpair, driven
 * by uv_poll on the same loop as the client under test. It records every
 * line the client sends (and any fd passed with it), and writes whatever the
 * test tells it to, byte for byte. Test code only.
 */
#ifndef FAKEQMP_H
#define FAKEQMP_H

#include <jansson.h>
#include <uv.h>

#include "qmp_parse.h"

#define FAKEQMP_GREETING \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 1, \"minor\": 2, \"major\": 7}, " \
	"\"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}\r\n"

struct fake_qmp {
	uv_loop_t *loop;
	uv_poll_t poll;
	int fd;                   /* our end */
	int peer_fd;              /* the client's end, until handed over */
	char *out;                /* bytes not yet written */
	size_t out_len, out_off;
	struct qmp_framer framer;
	json_t *received;         /* array of objects received, in order */
	int fds[8];               /* fds received with SCM_RIGHTS */
	int nfds;
	int reads;                /* reads that returned data */
	int eof;                  /* the client closed its end */
	int closed;               /* our poll handle is closed */
	/* Called for each object received, after it is recorded. Optional. */
	void (*on_msg)(struct fake_qmp *f, json_t *msg);
	void *data;
};

/* Create the socketpair; f->peer_fd is the end to give the client. */
int fake_qmp_init(struct fake_qmp *f, uv_loop_t *loop);

/* Queue raw bytes for the client. */
void fake_qmp_send(struct fake_qmp *f, const char *bytes, size_t len);
void fake_qmp_sends(struct fake_qmp *f, const char *text);

/* Reply to msg (a received command) with {"return": ret, "id": <its id>};
 * ret is a JSON text ("{}" when NULL). */
void fake_qmp_return(struct fake_qmp *f, json_t *msg, const char *ret);

/* Reply to msg with {"error": {"class": cls, "desc": desc}, "id": <its id>}. */
void fake_qmp_error(struct fake_qmp *f, json_t *msg, const char *cls, const char *desc);

/* Answer qmp_capabilities automatically: the default on_msg. */
void fake_qmp_auto_caps(struct fake_qmp *f, json_t *msg);

/* Number of lines received whose "execute" is cmd. */
size_t fake_qmp_count(struct fake_qmp *f, const char *cmd);

/* The n-th received object (borrowed) or NULL. */
json_t *fake_qmp_get(struct fake_qmp *f, size_t n);

/* Close our end (the client sees EOF) and free everything. Safe twice. */
void fake_qmp_close(struct fake_qmp *f);

#endif
