/*
 * Pure QMP stream handling: newline framing with a line cap, JSON parsing,
 * and message classification. See qmp_parse.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmp_parse.h"

void qmp_framer_init(struct qmp_framer *f, size_t max_line)
{
	memset(f, 0, sizeof(*f));
	f->max_line = max_line;
}

void qmp_framer_free(struct qmp_framer *f)
{
	free(f->buf);
	f->buf = NULL;
	f->len = f->cap = 0;
}

static int framer_append(struct qmp_framer *f, const char *data, size_t n)
{
	if (f->len + n > f->max_line)
		return -EMSGSIZE;
	if (f->len + n > f->cap) {
		size_t cap = f->cap ? f->cap : 4096;
		while (cap < f->len + n)
			cap *= 2;
		if (cap > f->max_line)
			cap = f->max_line;
		char *nb = realloc(f->buf, cap);
		if (!nb)
			return -ENOMEM;
		f->buf = nb;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, data, n);
	f->len += n;
	return 0;
}

static int is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/* A copy of line (n bytes) with every integer above INT64_MAX and within
 * UINT64_MAX (outside strings) written as its int64 two's complement:
 * QEMU's uint64 values, such as the -1 that a balloon's guest-stats holds
 * for a statistic not yet reported, which jansson cannot hold. NULL when
 * there is none, or out of memory. */
static char *wrap_u64(const char *line, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0, i = 0;
	int changed = 0, in_str = 0;
	if (!out)
		return NULL;
	while (i < n) {
		char c = line[i];
		if (in_str) {
			out[o++] = c;
			i++;
			if (c == '\\' && i < n)
				out[o++] = line[i++];
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
			out[o++] = line[i++];
			continue;
		}
		size_t j = i;
		while (j < n && line[j] >= '0' && line[j] <= '9')
			j++;
		int number = j > i && (i == 0 || !strchr("0123456789.eE-+", line[i - 1])) &&
		             (j == n || !strchr(".eE", line[j]));
		if (number && j - i >= 19 && j - i <= 20) {
			char digits[24];
			memcpy(digits, line + i, j - i);
			digits[j - i] = '\0';
			errno = 0;
			unsigned long long u = strtoull(digits, NULL, 10);
			if (!errno && u > (unsigned long long)INT64_MAX) {
				o += (size_t)sprintf(out + o, "%lld", (long long)(int64_t)(uint64_t)u);
				i = j;
				changed = 1;
				continue;
			}
		}
		if (j == i)
			j = i + 1;
		memcpy(out + o, line + i, j - i);
		o += j - i;
		i = j;
	}
	out[o] = '\0';
	if (!changed) {
		free(out);
		return NULL;
	}
	return out;
}

/* Parse one complete line (without its newline) and hand it to cb. */
static int framer_line(struct qmp_framer *f, const char *line, size_t n,
                       qmp_framer_cb cb, void *arg)
{
	if (is_blank(line, n))
		return 0;
	json_error_t jerr;
	json_t *msg = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!msg && strstr(jerr.text, "too big")) {
		char *wrapped = wrap_u64(line, n);
		if (wrapped)
			msg = json_loads(wrapped, JSON_REJECT_DUPLICATES, NULL);
		free(wrapped);
	}
	if (!msg || !json_is_object(msg)) {
		json_decref(msg);
		return f->on_bad_line ? f->on_bad_line(arg) : -EBADMSG;
	}
	int rc = cb(msg, arg);
	json_decref(msg);
	return rc;
}

int qmp_framer_feed(struct qmp_framer *f, const char *data, size_t len,
                    qmp_framer_cb cb, void *arg)
{
	if (f->error)
		return f->error;
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) : len;
		int rc;
		if (!nl) {
			rc = framer_append(f, data, n);
		} else if (f->len == 0) {
			/* The whole line is in this chunk: parse it in place. */
			rc = n > f->max_line ? -EMSGSIZE : framer_line(f, data, n, cb, arg);
		} else {
			rc = framer_append(f, data, n);
			if (rc == 0) {
				size_t total = f->len;
				f->len = 0;   /* reset first: cb may stop the feed */
				rc = framer_line(f, f->buf, total, cb, arg);
			}
		}
		if (rc < 0) {
			f->error = rc;
			qmp_framer_free(f);
			return rc;
		}
		if (rc > 0)
			return rc;
		if (!nl)
			break;
		data += n + 1;
		len -= n + 1;
	}
	return 0;
}

enum qmp_msg_kind qmp_msg_kind(json_t *msg)
{
	if (!json_is_object(msg))
		return QMP_MSG_INVALID;
	json_t *v;
	if ((v = json_object_get(msg, "QMP")))
		return json_is_object(v) ? QMP_MSG_GREETING : QMP_MSG_INVALID;
	if (json_object_get(msg, "return"))
		return QMP_MSG_RETURN;
	if ((v = json_object_get(msg, "error"))) {
		if (json_is_string(json_object_get(v, "class")) &&
		    json_is_string(json_object_get(v, "desc")))
			return QMP_MSG_ERROR;
		return QMP_MSG_INVALID;
	}
	if ((v = json_object_get(msg, "event")))
		return json_is_string(v) ? QMP_MSG_EVENT : QMP_MSG_INVALID;
	return QMP_MSG_INVALID;
}
