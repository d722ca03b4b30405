/*
 * The control socket: a unix stream socket speaking newline-delimited,
 * QMP-shaped JSON (see qsupd(8), CONTROL PROTOCOL and SECURITY). Many
 * clients, pipelined requests, replies matched by id and possibly out of
 * order, events for subscribed clients. Bad input gets an error reply; a
 * line over the cap, a client that does not read its output, or one that
 * sends no request in time gets disconnected. Connections are limited per
 * uid, and only root, the daemon's uid and members of --socket-group may
 * use the verbs that change anything.
 */
#ifndef SV_CONTROL_H
#define SV_CONTROL_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <sys/types.h>

struct sv_daemon;
struct sv_client;
struct sv_error;

/* Longest request line. */
#define SV_CONTROL_MAX_LINE (1024 * 1024)

/* The most memory held for one client's unsent output (what its output
 * buffers have allocated): a client over it when another message is due is
 * disconnected. One message to a client with nothing else unsent goes
 * through whatever its size (a QMP reply can be several MiB). */
#define SV_CONTROL_MAX_OUTPUT (4 * 1024 * 1024)

/* Clients served at once: at most SV_CONTROL_MAX_CLIENTS, or half the
 * open-file limit when that is lower. The last SV_CONTROL_RESERVED places
 * are kept for root and the daemon's own uid, and any other uid may hold
 * at most SV_CONTROL_MAX_PER_UID connections. */
#define SV_CONTROL_MAX_CLIENTS 1024
#define SV_CONTROL_RESERVED 64
#define SV_CONTROL_MAX_PER_UID 32

/* The defaults of --socket-mode and --idle-timeout (seconds), and the
 * longest idle timeout accepted. */
#define SV_CONTROL_MODE 0660
#define SV_CONTROL_IDLE_TIMEOUT 30
#define SV_CONTROL_MAX_IDLE_TIMEOUT 86400

/* Listen on path, creating the socket with d->opts.socket_mode (0660 when
 * 0; through the umask before bind, then chmod) and, when d->opts.socket_group
 * is set, giving it that group. A stale socket is replaced; one where a
 * daemon answers is an error (-EADDRINUSE). Also fixes glibc's mmap
 * threshold, so that freed output buffers go back to the system. Returns 0
 * or a negative errno with the reason in err. */
int sv_control_listen(struct sv_daemon *d, const char *path, struct sv_error *err);

/* Send msg (taken: an event object; a timestamp is added) to the client
 * peer alone, whether it subscribed or not; dropped when it has gone. */
void sv_control_notify(struct sv_daemon *d, uint64_t peer, json_t *msg);

/* May the client peer use the verbs that change things? False when it has
 * gone. */
bool sv_control_may_mutate(struct sv_daemon *d, uint64_t peer);

/* Stop listening, remove the socket file and disconnect every client. */
void sv_control_close(struct sv_daemon *d);

#endif
