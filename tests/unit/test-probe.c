/*
 * The health probe's schedule (supervisor/guest/probe.h): when a probe is
 * due, idle, busy and unresponsive; that traffic puts it off; that the
 * jitter spreads guests and stays within its quarter; when a look at /proc
 * stands for a question, and what that look sees in real processes.
 */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "probe.h"
#include "sysutil.h"

#define T0 1000000u   /* uv_now() of some running loop */

static void test_idle_interval_bounds(void **state)
{
	(void)state;
	assert_int_equal(sv_probe_idle_ms(0), SV_PROBE_IDLE_MS);
	for (uint32_t r = 0; r < 100000; r += 7) {
		uint64_t ms = sv_probe_idle_ms(r);
		assert_true(ms <= SV_PROBE_IDLE_MS);
		assert_true(ms > SV_PROBE_IDLE_MS * 3 / 4);
	}
}

static void test_idle_due_after_silence(void **state)
{
	(void)state;
	struct sv_probe_in in = { .now = T0, .last_input = T0, .rnd = 0 };
	assert_int_equal(sv_probe_due_in(&in), SV_PROBE_IDLE_MS);
	in.now = T0 + SV_PROBE_IDLE_MS - 1;
	assert_int_equal(sv_probe_due_in(&in), 1);
	in.now = T0 + SV_PROBE_IDLE_MS;
	assert_int_equal(sv_probe_due_in(&in), 0);
	in.now = T0 + 10 * SV_PROBE_IDLE_MS;   /* a late timer: due now, not negative */
	assert_int_equal(sv_probe_due_in(&in), 0);
	/* The jitter draws it nearer, never farther. */
	in.now = T0;
	in.rnd = 1234;
	assert_true(sv_probe_due_in(&in) <= sv_probe_idle_ms(1234));
	assert_true(sv_probe_due_in(&in) > sv_probe_idle_ms(1234) - SV_PROBE_SLOT_MS);
	assert_true(sv_probe_due_in(&in) < SV_PROBE_IDLE_MS);
	assert_int_equal((T0 + sv_probe_due_in(&in)) % SV_PROBE_SLOT_MS, 0);
}

/* Any message from QEMU puts the probe off: the timer, when it fires,
 * finds it not due. */
static void test_traffic_puts_probe_off(void **state)
{
	(void)state;
	struct sv_probe_in in = { .now = T0 + SV_PROBE_IDLE_MS, .last_input = T0 };
	assert_int_equal(sv_probe_due_in(&in), 0);
	in.last_input = T0 + 20000;             /* an event came meanwhile */
	assert_int_equal(sv_probe_due_in(&in), 20000);
	/* The last probe's end counts like a message (its reply is one; its
	 * timeout is not, but the next probe waits from then too). */
	in.last_input = T0;
	in.last_probe = T0 + 25000;   /* due at T0 + 55 s, brought to its slot's start */
	assert_int_equal(sv_probe_due_in(&in), 25000 - (T0 + 55000) % SV_PROBE_SLOT_MS);
}

/* Someone waits on QEMU: a probe after SV_PROBE_BUSY_MS of silence from
 * the start of the wait, not at once after a long idle time. */
static void test_busy_probes_soon(void **state)
{
	(void)state;
	struct sv_probe_in in = { .now = T0 + 100000, .last_input = T0,
	                          .busy_since = T0 + 100000 };
	assert_int_equal(sv_probe_due_in(&in), SV_PROBE_BUSY_MS);
	in.now += SV_PROBE_BUSY_MS;
	assert_int_equal(sv_probe_due_in(&in), 0);
	/* A reply (or event) since the wait began puts it off again. */
	in.last_input = in.now - 500;
	assert_int_equal(sv_probe_due_in(&in), SV_PROBE_BUSY_MS - 500);
	/* The bound while busy: BUSY + DEADLINE after the command went out. */
	assert_int_equal(SV_PROBE_BUSY_MS + SV_PROBE_DEADLINE_MS, 5000);
}

static void test_unresponsive_probes_soon(void **state)
{
	(void)state;
	/* The last probe timed out at T0 + 40 s; QEMU last spoke at T0. */
	struct sv_probe_in in = { .now = T0 + 40000, .last_input = T0,
	                          .last_probe = T0 + 40000, .unresponsive = true,
	                          .rnd = 99 };
	assert_int_equal(sv_probe_due_in(&in), SV_PROBE_BUSY_MS);
	in.now += SV_PROBE_BUSY_MS;
	assert_int_equal(sv_probe_due_in(&in), 0);
}

/* The stated idle bound: a QEMU that hangs right after its last message is
 * probed by SV_PROBE_IDLE_MS later whatever the draw, and reported when the
 * probe's deadline passes. */
static void test_idle_bound(void **state)
{
	(void)state;
	uint32_t seed = 42;
	for (int i = 0; i < 10000; i++) {
		struct sv_probe_in in = { .now = T0, .last_input = T0,
		                          .rnd = sv_probe_rand(&seed) };
		assert_true(sv_probe_due_in(&in) <= SV_PROBE_IDLE_MS);
	}
	assert_int_equal(SV_PROBE_IDLE_MS + SV_PROBE_DEADLINE_MS, 33000);
}

/* Guests started together spread out: the draws of 200 guests' generators
 * (seeded apart) cover the jitter window, not one instant. */
static void test_jitter_spreads(void **state)
{
	(void)state;
	int buckets[8] = { 0 };
	for (uint32_t gidx = 0; gidx < 200; gidx++) {
		uint32_t seed = 1000003u * (gidx + 1);
		uint64_t ms = sv_probe_idle_ms(sv_probe_rand(&seed));
		uint64_t lo = SV_PROBE_IDLE_MS * 3 / 4;
		buckets[(ms - lo - 1) * 8 / (SV_PROBE_IDLE_MS - lo)]++;
	}
	for (int b = 0; b < 8; b++)
		assert_true(buckets[b] > 0);
	/* The generator never sticks at 0. */
	uint32_t z = 0;
	assert_int_not_equal(sv_probe_rand(&z), 0);
	assert_int_not_equal(z, 0);
}

/* Idle guests due at scattered times are seen in one wake-up per slot:
 * 200 guests whose QEMUs last spoke anywhere in a minute, with their own
 * draws, are due at no more instants than there are slots in that span
 * (plus the interval), each due no later than its interval says. */
static void test_idle_slots(void **state)
{
	(void)state;
	uint32_t seed = 7;
	uint64_t instants[200];
	size_t n = 0;
	for (int i = 0; i < 200; i++) {
		uint64_t spoke = T0 + sv_probe_rand(&seed) % 60000;
		struct sv_probe_in in = { .now = T0, .last_input = spoke,
		                          .rnd = sv_probe_rand(&seed) };
		uint64_t at = T0 + sv_probe_due_in(&in);
		assert_true(at <= spoke + sv_probe_idle_ms(in.rnd));
		assert_true(at > spoke + sv_probe_idle_ms(in.rnd) - SV_PROBE_SLOT_MS);
		assert_int_equal(at % SV_PROBE_SLOT_MS, 0);
		size_t k = 0;
		while (k < n && instants[k] != at)
			k++;
		if (k == n)
			instants[n++] = at;
	}
	assert_true(n <= (60000 + SV_PROBE_IDLE_MS) / SV_PROBE_SLOT_MS + 1);
}

/* A look that found QEMU waiting in its event loop counts as an answer:
 * the next idle probe is an interval after it. Busy or unresponsive, only
 * QEMU's messages count. */
static void test_look_puts_probe_off(void **state)
{
	(void)state;
	struct sv_probe_in in = { .now = T0 + SV_PROBE_IDLE_MS, .last_input = T0,
	                          .last_look = T0 + SV_PROBE_IDLE_MS };
	assert_int_equal(sv_probe_due_in(&in), SV_PROBE_IDLE_MS);
	in.busy_since = in.now;
	assert_int_equal(sv_probe_due_in(&in), SV_PROBE_BUSY_MS);
	in.busy_since = 0;
	in.unresponsive = true;
	in.last_probe = in.now;
	assert_int_equal(sv_probe_due_in(&in), SV_PROBE_BUSY_MS);
}

/* A look stands for the question only while idle and answering, and for
 * SV_PROBE_ASK_MS after QEMU last spoke: then it is asked, whatever the
 * looks say (a main loop that waits but does not serve QMP). */
static void test_may_look(void **state)
{
	(void)state;
	struct sv_probe_in in = { .now = T0 + SV_PROBE_IDLE_MS, .last_input = T0 };
	assert_true(sv_probe_may_look(&in));
	in.busy_since = in.now;
	assert_false(sv_probe_may_look(&in));
	in.busy_since = 0;
	in.unresponsive = true;
	assert_false(sv_probe_may_look(&in));
	in.unresponsive = false;
	in.last_look = T0 + SV_PROBE_ASK_MS - 1;   /* looks do not extend it */
	in.now = T0 + SV_PROBE_ASK_MS - 1;
	assert_true(sv_probe_may_look(&in));
	in.now = T0 + SV_PROBE_ASK_MS;
	assert_false(sv_probe_may_look(&in));
	in.last_probe = in.now;                   /* asked and answered: looks again */
	assert_true(sv_probe_may_look(&in));
	/* The bound for a QEMU whose loop waits but never answers. */
	assert_true(SV_PROBE_ASK_MS + SV_PROBE_IDLE_MS + SV_PROBE_DEADLINE_MS <= 633000);
}

/* A child that does what its mode says until killed. */
static pid_t child(int mode)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a failed assertion leaves none behind */
	struct timespec ts = { 3600, 0 };
	volatile unsigned long spin = 0;
	fd_set none;
	FD_ZERO(&none);
	switch (mode) {
	case 0: ppoll(NULL, 0, NULL, NULL); break;        /* QEMU's main loop waits so */
	case 1: select(0, &none, NULL, NULL, NULL); break;
	case 2: nanosleep(&ts, NULL); break;              /* asleep, not in a loop */
	case 3: for (;;) spin++;                           /* spinning */
	}
	_exit(0);
}

/* Whether the look says so within 2 s (a child needs a moment to get to
 * its wait; a spinning one must never be taken for idle). */
static bool seen_waiting(pid_t pid, bool want)
{
	for (int i = 0; i < 200; i++) {
		if (sv_proc_waits_for_events(pid) == want)
			return true;
		usleep(10000);
	}
	return false;
}

static void end_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_look_at_processes(void **state)
{
	(void)state;
	pid_t p = child(0);
	assert_true(seen_waiting(p, true));
	kill(p, SIGSTOP);   /* stopped in its wait: not idle, it cannot answer */
	assert_true(seen_waiting(p, false));
	for (int i = 0; i < 20; i++) {
		assert_false(sv_proc_waits_for_events(p));
		usleep(5000);
	}
	kill(p, SIGCONT);
	assert_true(seen_waiting(p, true));
	end_child(p);
	p = child(1);
	assert_true(seen_waiting(p, true));
	end_child(p);
	p = child(2);
	usleep(100000);
	for (int i = 0; i < 20; i++) {
		assert_false(sv_proc_waits_for_events(p));
		usleep(5000);
	}
	end_child(p);
	p = child(3);
	for (int i = 0; i < 100; i++) {
		assert_false(sv_proc_waits_for_events(p));
		usleep(2000);
	}
	kill(p, SIGKILL);
	usleep(100000);     /* a zombie now: gone for every purpose */
	assert_false(sv_proc_waits_for_events(p));
	waitpid(p, NULL, 0);
	assert_false(sv_proc_waits_for_events(p));   /* no such process */
	assert_false(sv_proc_waits_for_events(0));
	assert_false(sv_proc_waits_for_events(-1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_interval_bounds),
		cmocka_unit_test(test_idle_due_after_silence),
		cmocka_unit_test(test_traffic_puts_probe_off),
		cmocka_unit_test(test_busy_probes_soon),
		cmocka_unit_test(test_unresponsive_probes_soon),
		cmocka_unit_test(test_idle_bound),
		cmocka_unit_test(test_jitter_spreads),
		cmocka_unit_test(test_idle_slots),
		cmocka_unit_test(test_look_puts_probe_off),
		cmocka_unit_test(test_may_look),
		cmocka_unit_test(test_look_at_processes),
	};
	return cmocka_run_group_tests_name("probe", tests, NULL, NULL);
}
