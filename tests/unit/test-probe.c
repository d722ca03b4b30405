/*
 * The health probe's schedule (supervisor/guest/probe.h): when a probe is
 * due, idle, busy and unresponsive; that traffic puts it off; that the
 * jitter spreads guests and stays within its quarter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "probe.h"

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
	assert_int_equal(sv_probe_due_in(&in), sv_probe_idle_ms(1234));
	assert_true(sv_probe_due_in(&in) < SV_PROBE_IDLE_MS);
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
	in.last_probe = T0 + 25000;
	assert_int_equal(sv_probe_due_in(&in), 25000);
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
	};
	return cmocka_run_group_tests_name("probe", tests, NULL, NULL);
}
