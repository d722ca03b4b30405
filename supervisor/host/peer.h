/*
 * One request to another qsupd, through its control socket, on the loop:
 * connect, read the greeting, send {"execute", "arguments", "id"}, and hand
 * the reply with that id to done (events on the way are skipped). Used by
 * `migrate --to SOCKET` to prepare the destination. The socket may be an
 * ssh://[USER@]HOST[:PORT][/PATH] URI: the call then goes through ssh
 * (sshlink.h) and `qsupctl [-s PATH] --stdio` on that host.
 */
#ifndef SV_PEER_H
#define SV_PEER_H

#include <stdint.h>
#include <jansson.h>
#include <uv.h>

struct sv_peer;

/* done(reply, NULL, arg) with the reply object ({"return"} or {"error"},
 * borrowed), or done(NULL, why, arg) when the socket could not be reached,
 * the connection ended or timeout_ms passed. args is borrowed. Returns 0,
 * or a negative errno (done is then never called). *out, if not NULL, gets
 * a handle for sv_peer_cancel(); it is invalid once done has run. */
int sv_peer_call(uv_loop_t *loop, const char *sock, const char *verb, json_t *args,
                 uint64_t timeout_ms, void (*done)(json_t *reply, const char *why, void *arg),
                 void *arg, struct sv_peer **out);

/* The same, with prepare(greeting, args, arg) called once the peer's
 * greeting is in, before the request is sent: it may change args (a copy)
 * with what the greeting says (over ssh: its "ssh" member, {"client",
 * "server"}, the addresses of the ssh connection as the remote end sees
 * them). */
typedef void (*sv_peer_prepare_fn)(json_t *greeting, json_t *args, void *arg);
int sv_peer_call_prep(uv_loop_t *loop, const char *sock, const char *verb, json_t *args,
                      uint64_t timeout_ms, sv_peer_prepare_fn prepare,
                      void (*done)(json_t *reply, const char *why, void *arg),
                      void *arg, struct sv_peer **out);

/* Drop a call in flight: done is not called. */
void sv_peer_cancel(struct sv_peer *p);

#endif
