/*
 * The QEMU guest agent ([guest] agent = yes): qsupd speaks the agent's
 * protocol itself, on the guest's event loop.
 *
 * The channel: QEMU listens on RUNDIR/NAME/agent.sock (a socket qsupd binds
 * and hands over, argv.h), a virtio-serial port org.qemu.guest_agent.0 in
 * the guest. qsupd connects once QMP is up (or back, after a re-adoption),
 * and keeps the stream in sync: after every (re)connect, after the guest
 * opens the port (QMP VSERPORT_CHANGE), after a command timed out, it sends
 * a 0xFF byte (the agent drops a half-read request) and
 * guest-sync-delimited with a fresh id, drops every byte up to the 0xFF
 * sentinel the agent puts before that reply, and only then trusts the
 * stream. Commands go one at a time, each with its own deadline; a guest
 * whose agent does not answer fails them by the deadline, and nothing in
 * qsupd waits on the agent without one. While the agent has not answered,
 * qsupd tries again every 10 s (cheap: one line), and once it answers it
 * asks guest-info (the version) and guest-network-get-interfaces (the
 * guest's addresses), and the addresses again every 30 s, and on a status
 * request when the last ask is 5 s old (the answer shows in the next one).
 *
 * The status of every guest gets "agent": {"channel": bool (the profile
 * asks for one), "connected": bool (the agent answered the last sync, and
 * nothing timed out since), "version": string or null, "frozen": bool
 * (file systems frozen through qsupd)} and "guest_addresses": [{"interface",
 * "address", "prefix", "family": "ipv4" | "ipv6"}] (loopback and
 * link-local left out; [] when not known).
 *
 * Freeze: a guest qsupd froze is thawed by sv_agent_thaw(), and in any case
 * SV_AGENT_FREEZE_MAX_MS after the freeze (a deadline on the loop), after a
 * freeze that failed or timed out (it may have frozen some file systems),
 * and after a reconnect that finds the guest frozen (a qsupd that died
 * holding the freeze: the next qsupd thaws it once it reconnects). The
 * limit: while no qsupd runs, nothing thaws the guest.
 */
#ifndef SV_AGENT_H
#define SV_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

struct sv_guest;
struct sv_request;

/* A command's deadline unless given, and the freeze's own. */
#define SV_AGENT_TIMEOUT_MS 10000
#define SV_AGENT_FREEZE_TIMEOUT_MS 30000
/* The longest qsupd leaves a guest frozen. */
#define SV_AGENT_FREEZE_MAX_MS 60000

/* The outcome of an agent command: status 0 with ret (borrowed: the
 * command's "return", JSON null for a command that answers nothing), or a
 * negative errno with desc saying why: -EREMOTEIO (the agent's error; cls
 * is its class), -ETIMEDOUT (no answer by the deadline), -ENOTCONN (no
 * agent channel, or not connected), -EPIPE (the connection closed first),
 * -ECANCELED (the guest is being released). Called exactly once; only when
 * the socket breaks under the very write (-EPIPE) can that be before the
 * call that queued it has returned. */
typedef void (*sv_agent_cb)(struct sv_guest *g, int status, json_t *ret, const char *cls,
                            const char *desc, void *arg);

/* A freeze around a storage operation (snapshot, backup): the caller's,
 * zeroed. how says what happened, for the reply. */
struct sv_freeze {
	const char *how;
	bool frozen;            /* a thaw is owed */
	const char *what;       /* the operation, in a failed thaw's log line */
	void (*go)(void *arg);
	void *arg;
	char buf[300];
};

/* Freeze g's file systems when g runs (paused: false) and its agent
 * answers, then go(arg), at once or once the agent answered; f->how says
 * whether and why not. */
void sv_freeze_begin(struct sv_guest *g, struct sv_freeze *f, bool paused, const char *what,
                     void (*go)(void *arg), void *arg);

/* Thaw what sv_freeze_begin froze, if it did (a failure is logged: the
 * agent code thaws within SV_AGENT_FREEZE_MAX_MS anyway). */
void sv_freeze_end(struct sv_guest *g, struct sv_freeze *f);

/* Queue one agent command (args taken, NULL: none) with a deadline of
 * timeout_ms (0: SV_AGENT_TIMEOUT_MS). Returns 0 (cb will be called), or
 * -ENOTCONN when g has no agent channel or no connection to it now (cb is
 * not called). guest-sync and guest-sync-delimited are qsupd's own:
 * -EPERM. */
int sv_agent_command(struct sv_guest *g, const char *command, json_t *args,
                     uint64_t timeout_ms, sv_agent_cb cb, void *arg);

/* Freeze the guest's file systems (guest-fsfreeze-freeze): cb gets the
 * number frozen in ret. The guest is thawed by sv_agent_thaw(), or by
 * qsupd SV_AGENT_FREEZE_MAX_MS later at the latest, or at once when the
 * freeze fails. Returns as sv_agent_command(). */
int sv_agent_freeze(struct sv_guest *g, sv_agent_cb cb, void *arg);

/* Thaw them (guest-fsfreeze-thaw): cb gets the number thawed. Returns as
 * sv_agent_command(). */
int sv_agent_thaw(struct sv_guest *g, sv_agent_cb cb, void *arg);

/* True while the agent answers (the status's "connected"). */
bool sv_agent_connected(struct sv_guest *g);

/* The agent verb: args {name, command, arguments (object, optional),
 * timeout (ms, optional)}. Answers req with the agent's "return" (or {}
 * for guest-shutdown and the guest-suspend commands, which answer nothing:
 * sent is all qsupd can tell), or an error: "AgentNotConnected" when the
 * guest has no agent channel or it is not connected, "AgentTimeout",
 * "AgentError" (the agent's class and words in the desc). */
void sv_agent_verb(struct sv_guest *g, struct sv_request *req, json_t *args);

extern const struct sv_guest_observer sv_agent_observer;

#endif
