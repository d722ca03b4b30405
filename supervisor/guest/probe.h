/*
 * When the health probe of a guest is due: a pure function, so that the
 * policy is tested without a QEMU (tests/unit/test-probe.c).
 *
 * qsupd asks QEMU `query-status` only when nothing else proved it alive:
 * any message from QEMU (a reply, a late one, an event) counts as an answer.
 *   idle      a probe at most SV_PROBE_IDLE_MS after QEMU last spoke, less a
 *             random part of up to a quarter (so that guests started
 *             together do not wake together), brought forward to the start
 *             of its SV_PROBE_SLOT_MS slot of the loop's clock (so that qsupd
 *             wakes once for all the guests due in a slot);
 *   busy      someone waits on QEMU (a command of qsupd's without its reply
 *             yet, a client waiting for the guest's state): a probe
 *             SV_PROBE_BUSY_MS after the later of QEMU's last message and
 *             the start of the wait;
 *   unresponsive  a probe SV_PROBE_BUSY_MS after the last one ended, so
 *             that QEMU is seen back soon.
 * When an idle probe is due, qsupd first looks at QEMU without waking it:
 * a main thread asleep in its event loop's wait (/proc: sleeping, in
 * ppoll or the like) will answer, and counts as an answer, up to
 * SV_PROBE_ASK_MS after QEMU last spoke; otherwise (QEMU stopped, blocked
 * on a lock, spinning, or /proc unreadable) `query-status` goes out. So an
 * idle QEMU is asked once in SV_PROBE_ASK_MS, not once in SV_PROBE_IDLE_MS
 * (each question costs QEMU a wake-up: bench/idle).
 * A probe without a reply within SV_PROBE_DEADLINE_MS marks the guest
 * unresponsive. So a QEMU that hangs is reported at most
 * SV_PROBE_IDLE_MS + SV_PROBE_DEADLINE_MS (33 s) after its last message
 * when idle (stopped, blocked or spinning; one whose main loop waits for
 * events yet does not answer, at most SV_PROBE_ASK_MS + SV_PROBE_IDLE_MS +
 * SV_PROBE_DEADLINE_MS), and SV_PROBE_BUSY_MS + SV_PROBE_DEADLINE_MS (5 s)
 * after a command sent to it when busy (qsupd.8, SUPERVISION).
 */
#ifndef SV_PROBE_H
#define SV_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#define SV_PROBE_IDLE_MS 30000u         /* idle: the longest silence */
#define SV_PROBE_BUSY_MS 2000u          /* busy or unresponsive */
#define SV_PROBE_DEADLINE_MS 3000u      /* a probe's reply deadline */
#define SV_PROBE_ASK_MS 600000u         /* idle: the longest without a question */
#define SV_PROBE_SLOT_MS 2000u          /* idle: due at the start of such a slot */

struct sv_probe_in {
	uint64_t now;           /* uv_now() */
	uint64_t last_input;    /* QEMU's last message (qmp_client_last_input) */
	uint64_t last_probe;    /* the last probe ended (replied or timed out); 0: none */
	uint64_t busy_since;    /* someone waits on QEMU since; 0: nobody */
	uint64_t last_look;     /* the last look found QEMU waiting for events; 0: none */
	bool unresponsive;
	uint32_t rnd;           /* a random draw (the idle jitter) */
};

/* The idle interval that rnd picks: in (3/4 SV_PROBE_IDLE_MS, SV_PROBE_IDLE_MS]. */
uint64_t sv_probe_idle_ms(uint32_t rnd);

/* Milliseconds from in->now until the probe is due; 0: send it now. */
uint64_t sv_probe_due_in(const struct sv_probe_in *in);

/* Whether a due probe may be a look at QEMU (/proc) rather than a
 * question: idle, answering, and asked or heard from within
 * SV_PROBE_ASK_MS. */
bool sv_probe_may_look(const struct sv_probe_in *in);

/* The next draw of a xorshift32 generator (*state never 0). */
uint32_t sv_probe_rand(uint32_t *state);

#endif
