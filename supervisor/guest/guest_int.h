/*
 * Internal to the guest core (guest/): the waiters, the exit handling
 * (supervise.c), the start (launch.c), re-adoption (adopt.c), QEMU's own
 * pauses (runstate.c), and the observers' iteration. daemon/state.c uses it
 * to restore a guest.
 */
#ifndef SV_GUEST_INT_H
#define SV_GUEST_INT_H

#include "guest.h"
#include "restart.h"

/* The i-th observer of g's features (struct sv_guest_observer), or NULL
 * past the last:
 *   for (size_t i = 0; (o = sv_observer(g, i)); i++) if (o->hook) o->hook(g); */
static inline const struct sv_guest_observer *sv_observer(const struct sv_guest *g, size_t i)
{
	return g->env->observers ? g->env->observers[i] : NULL;
}

/* Queue req to be answered when the guest reaches kind (req may be NULL). */
void sv_guest_add_waiter(struct sv_guest *g, struct sv_request *req, enum sv_wait kind);

/* Answer the waiters of kind with the status (ok) or with the reason. */
void sv_guest_finish_waiters(struct sv_guest *g, enum sv_wait kind, bool ok);

/* The guest ended (QEMU exited, or the start failed before QEMU ran) for
 * class c, described by what: classify the next state through the restart
 * policy (stopped, backoff or failed), answer the waiters, run a pending
 * restart. */
void sv_guest_ended(struct sv_guest *g, enum sv_exit_class c, const char *what);

/* Describe QEMU's exit: the class and the words for it. */
enum sv_exit_class sv_guest_classify(struct sv_guest *g, enum sv_state was, int64_t status,
                                     int sig, char *what, size_t size);

/* Stop or kill of a guest waiting in backoff: cancel the restart. Returns
 * true when the guest was in backoff (req answered). */
bool sv_guest_cancel_backoff(struct sv_guest *g, struct sv_request *req);

/* QEMU is gone (status and sig as libuv reports them; both 0 when unknown,
 * for an adopted process): classify and go on as sv_guest_ended(). */
void sv_guest_qemu_gone(struct sv_guest *g, int64_t status, int sig);

/* runstate.c: a BLOCK_IO_ERROR of g's QEMU (one with action stop names the
 * disk in the coming pause, and is logged and emitted once per disk); a
 * STOP event nobody asked for (QEMU is asked why: sv_guest_runstate()). */
void sv_guest_io_error(struct sv_guest *g, json_t *data);
void sv_guest_stopped_by_qemu(struct sv_guest *g);

/* QEMU's run state st (query-status) for a guest whose vCPUs stopped
 * without the operator asking (a STOP event, the health probe, a
 * re-adoption): running again; io-error (paused, with the disk and the
 * error); internal-error (a crash: QEMU is ended, then the restart policy
 * applies); anything else paused, with why (NULL: reason). */
void sv_guest_runstate(struct sv_guest *g, const char *st, const char *reason);

/* Connect to the guest's QMP socket (its callbacks are guest.c's). With cork,
 * what is sent stays queued until qmp_client_uncork(g->qmp) (a batch). */
void sv_guest_qmp_connect(struct sv_guest *g, bool cork);

/* probe.c: set up the health probe timer of a new guest (its handle
 * counts); it runs while the guest has a QMP connection. Kick: (re)arm it
 * now, after QMP connected, a command was sent, or a client began to wait
 * (a wait makes the probe come sooner: probe.h). */
void sv_guest_probe_init(struct sv_guest *g);
void sv_guest_probe_kick(struct sv_guest *g);

/* A QMP command got no reply by its deadline, or a reply came after that:
 * mark the guest unresponsive or responsive again (logged, emitted). */
void sv_guest_set_unresponsive(struct sv_guest *g, bool on);

/* Close the process handle (QEMU itself is not touched). */
void sv_guest_close_proc(struct sv_guest *g);

/* QEMU failed during its start (QMP broke, say): kill it; the start counts
 * as failed with why. */
void sv_guest_start_failed(struct sv_guest *g, const char *why);

/* Take the guest lock unless we hold it already (a restart from backoff).
 * Returns 0 or a negative errno with the reason in err (-EBUSY: another
 * process holds it). */
int sv_guest_hold_lock(struct sv_guest *g, struct sv_error *err);

/* Give the guest lock up when no QEMU of ours holds it (the guest is idle). */
void sv_guest_lock_drop(struct sv_guest *g);

/* Wait delay_ms in backoff, then start again (reason: the state's). */
void sv_guest_backoff(struct sv_guest *g, uint64_t delay_ms, const char *reason);

/* runlog.c: g's log file around a run. begin: a start was accepted
 * (why: g->start_why as it was; "" is the operator's): rotate the file if it is
 * over the cap, write the start line. qemu_fd: the fd for QEMU's stdout
 * and stderr (-1: none, QEMU gets /dev/null), with where its output
 * begins recorded. ended: QEMU (or the start) ended as class c; the line
 * says so with g's reason (the policy's outcome). */
void sv_guest_log_begin(struct sv_guest *g, const char *why);
int sv_guest_log_qemu_fd(struct sv_guest *g);
void sv_guest_log_ended(struct sv_guest *g, enum sv_exit_class c);

/* The last lines the current run of QEMU wrote (from g->log_offset on, in
 * the same file; qsupd's own lines left out), kept for the status
 * (g->last_tail), and the last few joined with "; " into joined (for the
 * exit's description). */
void sv_guest_run_tail(struct sv_guest *g, char *joined, size_t size);

/* g's status members of its log: "log" (the file) and, after a crash or
 * when failed, "log_tail" (the last run's last lines). */
void sv_guest_log_status(struct sv_guest *g, json_t *st);

/* adopt.c: a QEMU an earlier qsupd started. Watch it through g->pidfd
 * (its exit goes to sv_guest_qemu_gone). */
void sv_adopted_watch(struct sv_guest *g);

/* Signal an adopted QEMU through its pidfd. */
void sv_adopted_signal(struct sv_guest *g, int sig);

/* Close the pidfd watch (QEMU itself is left alone). Safe when none. */
void sv_adopted_release(struct sv_guest *g);

/* Connect to the adopted QEMU's QMP and ask its run state in the same
 * breath (eager negotiation: written before this returns). */
void sv_adopted_connect(struct sv_guest *g);

/* guest.c's QMP callbacks hand over while adopting: the connection ended
 * before QEMU's answers. Where they did not come in time (QEMU frozen, or
 * the host overloaded), connect again and ask again: the guest's state is
 * unknown, not paused. Otherwise QMP could not be recovered (kill). */
void sv_adopted_qmp_closed(struct sv_guest *g, int status);

#endif
