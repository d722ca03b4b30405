/* Requests and events (request.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "jsonout.h"
#include "log.h"
#include "request.h"
#include "util.h"

struct sv_request *sv_request_new(const struct sv_route *r, uint64_t peer, uid_t uid,
                                  json_t *id, const char *verb)
{
	struct sv_request *req = calloc(1, sizeof(*req));
	if (!req)
		return NULL;
	req->route = r;
	req->peer = peer;
	req->uid = uid;
	req->id = json_incref(id);
	snprintf(req->verb, sizeof(req->verb), "%s", verb);
	req->t0 = uv_hrtime();
	return req;
}

static void finish(struct sv_request *req, json_t *msg)
{
	if (!msg)   /* jansson refused the reply (a string that is not UTF-8?) */
		msg = json_pack("{s:{s:s, s:s}}", "error", "class", "GenericError", "desc",
		                "qsupd could not encode the reply");
	if (req->id && msg)
		json_object_set(msg, "id", req->id);
	if (req->route && req->route->finished)
		req->route->finished(req->route->arg, req, msg);
	if (req->route && req->route->answer)
		req->route->answer(req->route->arg, req->peer, msg);
	else
		json_decref(msg);
	json_decref(req->id);
	free(req);
}

void sv_reply_ok(struct sv_request *req, json_t *ret)
{
	finish(req, json_pack("{s:o}", "return", ret ? ret : json_object()));
}

void sv_reply_ok_text(struct sv_request *req, char *text, size_t len)
{
	struct sv_jsonbuf b = { 0 };
	char *line;
	size_t n;
	if (!text) {
		finish(req, NULL);
		return;
	}
	if (!req->route || !req->route->answer_line) {
		json_t *ret = json_loadb(text, len, JSON_DECODE_ANY, NULL);
		free(text);
		if (ret)
			sv_reply_ok(req, ret);
		else
			finish(req, NULL);
		return;
	}
	sv_jsonbuf_put(&b, "{\"return\":", 10);
	sv_jsonbuf_put(&b, text, len);
	free(text);
	if (req->id) {
		sv_jsonbuf_put(&b, ",\"id\":", 6);
		sv_jsonbuf_value(&b, req->id);
	}
	sv_jsonbuf_put(&b, "}\n", 2);
	if (!(line = sv_jsonbuf_take(&b, &n))) {
		finish(req, NULL);
		return;
	}
	if (req->route->finished) {   /* what the metrics count: an answer, no error */
		json_t *ok = json_pack("{s:b}", "return", 1);
		req->route->finished(req->route->arg, req, ok);
		json_decref(ok);
	}
	req->route->answer_line(req->route->arg, req->peer, line, n);
	json_decref(req->id);
	free(req);
}

void sv_reply_error_obj(struct sv_request *req, json_t *error)
{
	finish(req, json_pack("{s:o}", "error", error));
}

void sv_reply_err(struct sv_request *req, const char *cls, const char *fmt, ...)
{
	char desc[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	sv_utf8_scrub(desc);
	sv_log(SV_LOG_DEBUG, NULL, "%s: %s: %s", req->verb, cls, desc);
	sv_reply_error_obj(req, json_pack("{s:s, s:s}", "class", cls, "desc", desc));
}

void sv_reply_error(struct sv_request *req, const struct sv_error *err)
{
	sv_reply_err(req, sv_error_class(err), "%s", err->msg);
}

void sv_request_subscribe(struct sv_request *req)
{
	if (req->route && req->route->subscribe)
		req->route->subscribe(req->route->arg, req->peer);
}

static void stamp(json_t *event)
{
	uv_timeval64_t tv;
	uv_gettimeofday(&tv);
	json_object_set_new(event, "timestamp", json_pack("{s:I, s:I}",
	                    "seconds", (json_int_t)tv.tv_sec,
	                    "microseconds", (json_int_t)tv.tv_usec));
}

void sv_emit(const struct sv_route *r, json_t *event)
{
	if (!r || !r->event || !event) {
		json_decref(event);
		return;
	}
	stamp(event);
	r->event(r->arg, event);
}

bool sv_emit_to(const struct sv_route *r, uint64_t peer, json_t *event)
{
	if (!r || !r->deliver) {
		json_decref(event);
		return false;
	}
	if (event)
		stamp(event);
	return r->deliver(r->arg, peer, event);
}
