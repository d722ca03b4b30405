/*
 * libqmp: an asynchronous QMP (QEMU Machine Protocol) client on libuv and
 * jansson. It knows nothing of guests, profiles or restarts.
 *
 * Life of a client:
 *   qmp_client_new()            allocate, with callbacks and user data
 *   qmp_client_connect()        connect to a unix socket path, or
 *   qmp_client_adopt()          take over an already-connected socket fd
 *   qmp_client_adopt_sent()     or one on which qmp_presend() wrote
 *   -> ready(c, 0)              greeting read, qmp_capabilities accepted
 *   qmp_client_execute()        commands; replies matched by id
 *   -> event(c, name, ...)      asynchronous events, in stream order
 *   qmp_client_close()          or the peer hangs up
 *   -> closed(c, status)        last callback; the client is then freed
 *
 * Rules that hold everywhere (the libuv contract):
 * - A function that takes a callback and returns an error never calls it.
 * - Every accepted command gets its reply callback called exactly once: with
 *   the reply, QEMU's error, a timeout, or the reason the connection ended.
 * - Once qmp_client_connect() or qmp_client_adopt() returned 0, ready() is
 *   called exactly once and closed() exactly once, ready() first.
 * - Callbacks may call any function here, including qmp_client_close().
 * - Errors are negative libuv error codes (UV_E*), which are -errno on Unix.
 * - Every client of a process runs on one loop thread: they share one read
 *   buffer.
 *
 * The line framer and message classifier under the client, with no I/O, are
 * public too: qmp_parse.h (installed as <qsup/qmp_parse.h>). Both headers are
 * documented in libqmp(3).
 */
#ifndef QMP_H
#define QMP_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

struct qmp_client;

/* The longest line accepted from the peer, by default: QEMU can send large
 * replies (query-qmp-schema is about 200 KiB), but nothing near this. */
#define QMP_DEFAULT_MAX_LINE (10u * 1024 * 1024)
/* Default deadline of a command, and of the whole greeting + negotiation. */
#define QMP_DEFAULT_TIMEOUT_MS 30000u

/* The status given to a reply callback when QEMU answered with an error
 * object; it is positive so that it can never be a libuv error code. */
#define QMP_EREPLY 1

enum qmp_log_level { QMP_LOG_DEBUG, QMP_LOG_INFO, QMP_LOG_WARN, QMP_LOG_ERROR };

struct qmp_timestamp {
	int64_t seconds;
	int64_t microseconds;
};

/* What a command produced. Everything in it is borrowed: valid only during
 * the reply callback (json_incref() what you keep).
 *   status == 0           ret holds the "return" value (an object or array)
 *   status == QMP_EREPLY  err_class and err_desc hold QEMU's error
 *   status <  0           no reply: UV_ETIMEDOUT (deadline passed; the
 *                         connection stays usable, and a late reply is
 *                         dropped), UV_ECANCELED (qmp_client_close()),
 *                         UV_EOF (peer hung up), UV_EPROTO (the peer broke
 *                         the protocol), or the socket error. */
struct qmp_result {
	int status;
	json_t *ret;
	const char *err_class;
	const char *err_desc;
};

typedef void (*qmp_reply_cb)(struct qmp_client *c, const struct qmp_result *r,
                             void *arg);

struct qmp_callbacks {
	/* Negotiation done (status 0: commands may now be executed) or failed
	 * (status < 0; closed() follows). Required. */
	void (*ready)(struct qmp_client *c, int status);
	/* An event. data may be NULL when the event has none; name and data are
	 * borrowed for the duration of the call. Events that arrive during
	 * negotiation or between a command and its reply are delivered in the
	 * order they were received. Optional. */
	void (*event)(struct qmp_client *c, const char *name, json_t *data,
	              const struct qmp_timestamp *ts);
	/* The connection is gone and every pending command has been failed.
	 * status: 0 after qmp_client_close(), UV_EOF when the peer hung up
	 * (a connection reset counts: QEMU can exit with input unread),
	 * UV_EPROTO after a protocol violation (malformed JSON, a line over the
	 * cap, a non-QMP greeting), UV_ETIMEDOUT when negotiation timed out, or
	 * a socket error. The client is freed right after this returns. Optional. */
	void (*closed)(struct qmp_client *c, int status);
	/* Diagnostics: dropped replies, protocol errors; full traffic at
	 * QMP_LOG_DEBUG. NULL sends warnings and errors to stderr. Optional. */
	void (*log)(struct qmp_client *c, enum qmp_log_level level, const char *msg);
	/* A reply (a return or an error) to command came, ns nanoseconds after
	 * the command was queued; called before the command's own callback.
	 * command is cut to 31 bytes. For latency figures. Optional. */
	void (*replied)(struct qmp_client *c, const char *command, uint64_t ns);
};

/* Allocate a client on loop. cb is copied; data is the caller's, returned by
 * qmp_client_data(). Returns NULL when out of memory. The client does nothing
 * until qmp_client_connect() or qmp_client_adopt(). A client that is never
 * connected is released with qmp_client_close() (closed() is then called
 * from the loop with status 0). */
struct qmp_client *qmp_client_new(uv_loop_t *loop, const struct qmp_callbacks *cb,
                                  void *data);

/* Connect to the QMP unix socket at path, then negotiate. Returns 0 (ready()
 * follows), UV_EINVAL (path too long for sockaddr_un, or the client was
 * already started) or another negative error from libuv. */
int qmp_client_connect(struct qmp_client *c, const char *path);

/* Take ownership of fd, an already-connected stream socket to a QMP server
 * (a socketpair end, or a connection accepted elsewhere), then negotiate.
 * Returns 0, or a negative error; on error the caller still owns fd. */
int qmp_client_adopt(struct qmp_client *c, int fd);

/* At most this many commands for qmp_presend(). */
#define QMP_PRESEND_MAX 4

/* Write on fd, a connected stream socket that no client has yet, what an
 * eager client sends first: qmp_capabilities, then each of the n commands
 * in cmds (without arguments), with the ids the client that adopts fd by
 * qmp_client_adopt_sent() gives them. For a caller that connects before it
 * knows whether it will use the connection: the server works on them
 * meanwhile. Never blocks. Returns 0 once all of it went out, or a negative
 * error (UV_EAGAIN when the socket took only part, UV_EINVAL for n over
 * QMP_PRESEND_MAX or an empty name): fd is then unusable, as part of a
 * line may be on it. */
int qmp_presend(int fd, const char *const *cmds, size_t n);

/* qmp_client_adopt() of fd, on which qmp_presend() wrote qmp_capabilities
 * and the n commands of cmds (the same n names, in order): the client is
 * eager and writes no qmp_capabilities of its own, and the commands
 * executed first (without arguments or fd) are taken as written already
 * while they match cmds in order: their replies go to their callbacks.
 * Execute them before the loop runs again. The first command that does not
 * match ends the matching, and the replies to the rest of cmds are dropped
 * quietly. Returns as qmp_client_adopt(). */
int qmp_client_adopt_sent(struct qmp_client *c, int fd, const char *const *cmds, size_t n);

/* Send command with args (a JSON object, or NULL for none; borrowed: the
 * client takes its own reference). The reply reaches cb(c, result, arg),
 * matched by the id the client puts on every command. timeout_ms is the
 * deadline (0: the client's default). Returns 0, or UV_ENOTCONN (not ready,
 * or closing), UV_EINVAL (empty command, args not an object), UV_ENOMEM; on
 * error cb is never called. */
int qmp_client_execute(struct qmp_client *c, const char *command, json_t *args,
                       uint64_t timeout_ms, qmp_reply_cb cb, void *arg);

/* Like qmp_client_execute(), but passes fd along with the command as
 * SCM_RIGHTS ancillary data (for getfd, add-fd). The fd is duplicated: the
 * caller keeps ownership of fd and may close it once this returns. QEMU
 * receives it together with the first byte of the command. */
int qmp_client_execute_fd(struct qmp_client *c, const char *command, json_t *args,
                          int fd, uint64_t timeout_ms, qmp_reply_cb cb, void *arg);

/* Close the connection: every pending command is failed with UV_ECANCELED,
 * ready() gets UV_ECANCELED if negotiation was under way, then closed(c, 0)
 * is called from the loop and the client freed. Idempotent. */
void qmp_client_close(struct qmp_client *c);

/* The user data given to qmp_client_new(). */
void *qmp_client_data(const struct qmp_client *c);

/* The greeting's "QMP" object ({"version": ..., "capabilities": [...]}),
 * borrowed, or NULL before the greeting arrived. */
json_t *qmp_client_greeting(const struct qmp_client *c);

/* QEMU's version from the greeting as major*10000 + minor*100 + micro (7.2.0
 * is 70200), or 0 before the greeting. */
int qmp_client_version(const struct qmp_client *c);

/* Non-zero once negotiation succeeded and until the connection ends. */
int qmp_client_is_ready(const struct qmp_client *c);

/* Log every line sent and received at QMP_LOG_DEBUG through the log
 * callback (off by default: serializing traffic costs time). */
void qmp_client_set_debug(struct qmp_client *c, int on);

/* Number of commands sent and still waiting for a reply. */
size_t qmp_client_pending(const struct qmp_client *c);

/* When the peer last sent a message (the greeting, any reply, a late one
 * included, or an event), in uv_now() milliseconds of the client's loop; 0
 * before the first. A caller that watches the peer's health can take any
 * message as proof of life instead of asking. */
uint64_t qmp_client_last_input(const struct qmp_client *c);

/* Negotiate without waiting for the greeting (off by default): from
 * qmp_client_connect() on, qmp_capabilities is sent at once (written before
 * it returns when the socket accepts at once), and qmp_client_execute() is
 * accepted before ready(): those commands follow qmp_capabilities on the
 * stream, and QEMU runs them, in order, once negotiated. A round trip less
 * per connection, and the peer works on them while the caller goes on.
 * ready() still comes first, before any of their replies; if negotiation
 * fails, they fail with its status after ready(). Call before connecting. */
void qmp_client_set_eager(struct qmp_client *c, int on);

/* Hold the commands sent from now on (any time, before connecting too) until
 * qmp_client_uncork(), which writes them all at once: one write, so one
 * wake-up of the peer, for a batch such as negotiation and the first
 * queries. Replies and deadlines are not affected. */
void qmp_client_cork(struct qmp_client *c);
void qmp_client_uncork(struct qmp_client *c);

/* Set the default command deadline (also used for negotiation) and the line
 * cap; 0 keeps the current value. The deadline counts for the commands sent
 * from then on, and the negotiation takes the one set when it begins. */
void qmp_client_set_limits(struct qmp_client *c, uint64_t timeout_ms, size_t max_line);

/* A readable name for a status given to a reply or closed() callback. */
const char *qmp_strerror(int status);

#endif
