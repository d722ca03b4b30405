/*
 * qsupd's ssh processes, on the loop: the system's ssh client spawned with
 * uv_spawn and an argv (sshuri.h builds it, quoting the remote command in
 * one place), one end of a socketpair as its stdin and stdout, its stderr
 * kept in a memfd to say why it failed. The ssh identity and known hosts
 * are those of qsupd's user (root: /root/.ssh), or what the file given by
 * `qsupd --ssh-config FILE` says (ssh -F FILE).
 *
 *   sv_sshproc   one ssh process: spawn, why it failed, release (killed if
 *                it still runs, reaped, freed);
 *   sv_sshlink   an fd connected to a unix socket on another host, through
 *                ssh and `qsupctl --stdio-connect PATH` there (migrate
 *                --tunnel: QEMU's migration stream; reusable for any other
 *                stream, such as an NBD connection).
 */
#ifndef SV_SSHLINK_H
#define SV_SSHLINK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sshuri.h"

/* The ssh -F file (NULL: ssh's defaults); qsupd --ssh-config sets it. */
void sv_ssh_set_config(const char *file);
const char *sv_ssh_config(void);

struct sv_sshproc;

/* Spawn ssh to u running remote (words, quoted for the remote shell
 * here). *fd gets our end of its stdin and stdout (a connected stream
 * socket, close-on-exec, the caller's to close). on_exit, if not NULL, is
 * called once when ssh exits, unless released before. Returns 0 or a
 * negative errno with err set. */
int sv_sshproc_spawn(uv_loop_t *loop, const struct sv_ssh_uri *u, const char *const *remote,
                     void (*on_exit)(struct sv_sshproc *s, void *arg), void *arg, int *fd,
                     struct sv_sshproc **out, struct sv_error *err);
bool sv_sshproc_exited(const struct sv_sshproc *s);
/* Why the link failed, from ssh's stderr and exit status: "ssh to HOST:
 * host key verification failed: ...", or the remote end's last line. */
void sv_sshproc_why(const struct sv_sshproc *s, char *buf, size_t size);
/* Done with it: SIGTERM if it still runs; freed once it is reaped. The
 * same after grace_ms (0: at once), letting it end by itself meanwhile. */
void sv_sshproc_release(struct sv_sshproc *s);
void sv_sshproc_release_after(struct sv_sshproc *s, uint64_t grace_ms);

struct sv_sshlink;

/* Connect to the unix socket path on the host of uri (ssh://...) through
 * ssh: done(fd, NULL, arg) with a blocking, connected stream fd (the
 * caller's to close) once the remote end says it is connected, or
 * done(-1, why, arg) (ssh failed, the socket is not there, or timeout_ms
 * passed). The ssh process lives until sv_sshlink_close(). Returns 0 or a
 * negative errno with err set (done is then never called). */
int sv_sshlink_open(uv_loop_t *loop, const char *uri, const char *path, uint64_t timeout_ms,
                    void (*done)(int fd, const char *why, void *arg), void *arg,
                    struct sv_sshlink **out, struct sv_error *err);
/* End it: done is not called any more; ssh is killed (drain, once the fd
 * was handed over: only if it has not ended within SV_SSHLINK_DRAIN_MS,
 * so that what was written reaches the other end) and reaped. */
#define SV_SSHLINK_DRAIN_MS 60000u
void sv_sshlink_close(struct sv_sshlink *l, bool drain);

#endif
