/*
 * Unit tests for the restart policy's arithmetic (supervisor/profile/restart.c):
 * which endings restart under each policy, the delay formula and its cap,
 * the minimum gap after a start failure, the reset after a stable run, the
 * quarantine window and its ring, re-arming. No I/O, no clock: every test
 * passes its own times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "profile.h"
#include "restart.h"

#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define NO_DELAY UINT64_C(0xdeadbeefdeadbeef)   /* "not written" sentinel */
#define N_CLASSES (SV_EXIT_LAST + 1)

static struct sv_restart_params params(enum sv_restart_policy policy, uint64_t delay,
                                       uint64_t max_delay, unsigned burst,
                                       uint64_t interval, uint64_t stable)
{
	struct sv_restart_params pp = {
		.policy = policy, .delay_ms = delay, .max_delay_ms = max_delay,
		.burst = burst, .interval_ms = interval, .stable_ms = stable,
	};
	return pp;
}

/* A crash-friendly default: restarts on failure, never quarantines in the
 * tests that advance the clock by more than a second per ending. */
static struct sv_restart_params growth_params(uint64_t delay, uint64_t max_delay)
{
	return params(SV_RESTART_ON_FAILURE, delay, max_delay, 1000, SEC, HOUR);
}

/* sv_restart_decide with the delay preset to a sentinel. */
static enum sv_restart_verdict decide(const struct sv_restart_params *pp,
                                      struct sv_restart_state *st,
                                      enum sv_exit_class c, uint64_t now,
                                      uint64_t uptime, uint64_t *delay)
{
	*delay = NO_DELAY;
	return sv_restart_decide(pp, st, c, now, uptime, delay);
}

/* Expect a restart after want_delay. */
static void expect_yes(const struct sv_restart_params *pp, struct sv_restart_state *st,
                       enum sv_exit_class c, uint64_t now, uint64_t uptime,
                       uint64_t want_delay)
{
	uint64_t d;

	assert_int_equal(decide(pp, st, c, now, uptime, &d), SV_RESTART_YES);
	assert_int_equal(d, want_delay);
}

/* Expect a verdict other than YES, with nothing recorded (a new burst may
 * still have resized the ring, which never adds a time). */
static void expect_not(const struct sv_restart_params *pp, struct sv_restart_state *st,
                       enum sv_exit_class c, uint64_t now, enum sv_restart_verdict want)
{
	unsigned total = st->total, count = st->count, head = st->head, cap = st->cap;
	uint64_t d;

	assert_int_equal(decide(pp, st, c, now, 0, &d), want);
	assert_int_equal(d, NO_DELAY);
	assert_int_equal(st->total, total);
	if (st->cap == cap) {
		assert_int_equal(st->count, count);
		assert_int_equal(st->head, head);
	} else {
		assert_true(st->count <= count);
	}
}

/* ------------------------------------------------------------ classes */

static void test_class_names(void **state)
{
	static const char *const want[N_CLASSES] = {
		[SV_EXIT_NONE] = "none", [SV_EXIT_POWEROFF] = "poweroff",
		[SV_EXIT_PANIC] = "panic", [SV_EXIT_CRASH] = "crash",
		[SV_EXIT_OPERATOR] = "operator",
		[SV_EXIT_START_FAILURE] = "start-failure", [SV_EXIT_QUIT] = "quit",
		[SV_EXIT_MIGRATED] = "migrated", [SV_EXIT_SAVED] = "saved",
		[SV_EXIT_INCOMING] = "incoming-failed",
		[SV_EXIT_INTERNAL_ERROR] = "internal-error",
	};

	(void)state;
	for (int c = 0; c < N_CLASSES; c++)
		assert_string_equal(sv_exit_class_name((enum sv_exit_class)c), want[c]);
}

/* Every policy against every class. */
static void test_wanted_table(void **state)
{
	static const struct {
		enum sv_exit_class c;
		bool never, on_failure, always;
	} rows[] = {
		{ SV_EXIT_NONE, false, false, false },
		{ SV_EXIT_POWEROFF, false, false, true },
		{ SV_EXIT_PANIC, false, true, true },
		{ SV_EXIT_CRASH, false, true, true },
		{ SV_EXIT_OPERATOR, false, false, false },
		{ SV_EXIT_START_FAILURE, false, true, true },
		{ SV_EXIT_QUIT, false, false, false },
		{ SV_EXIT_MIGRATED, false, false, false },
		{ SV_EXIT_SAVED, false, false, false },
		{ SV_EXIT_INCOMING, false, false, false },
		{ SV_EXIT_INTERNAL_ERROR, false, true, true },   /* a crash */
	};

	(void)state;
	assert_int_equal(sizeof(rows) / sizeof(rows[0]), N_CLASSES);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(sv_restart_wanted(SV_RESTART_NEVER, rows[i].c), rows[i].never);
		assert_int_equal(sv_restart_wanted(SV_RESTART_ON_FAILURE, rows[i].c),
		                 rows[i].on_failure);
		assert_int_equal(sv_restart_wanted(SV_RESTART_ALWAYS, rows[i].c),
		                 rows[i].always);
	}
}

/* decide agrees with the table, and a NO records nothing. */
static void test_decide_follows_policy(void **state)
{
	static const enum sv_restart_policy policies[] = {
		SV_RESTART_NEVER, SV_RESTART_ON_FAILURE, SV_RESTART_ALWAYS,
	};

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		for (int c = 0; c < N_CLASSES; c++) {
			struct sv_restart_params pp = params(policies[i], 2 * SEC, MIN, 5,
			                                     MIN, MIN);
			struct sv_restart_state st = { 0 };
			enum sv_exit_class cl = (enum sv_exit_class)c;

			if (sv_restart_wanted(policies[i], cl)) {
				expect_yes(&pp, &st, cl, 1000, 0, 2 * SEC);
				assert_int_equal(st.total, 1);
				assert_int_equal(st.consecutive, 1);
				assert_int_equal(st.count, 1);
			} else {
				expect_not(&pp, &st, cl, 1000, SV_RESTART_NO);
				assert_int_equal(st.consecutive, 0);
				assert_null(st.times);
			}
			sv_restart_state_free(&st);
		}
	}
}

static void test_params_from(void **state)
{
	struct sv_profile p;
	struct sv_restart_params pp;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.restart_policy = SV_RESTART_ALWAYS;
	p.restart_delay_ms = 500;
	p.restart_max_delay_ms = 2 * MIN;
	p.restart_burst = 3;
	p.restart_interval_ms = HOUR;
	p.restart_stable_ms = 90 * SEC;
	memset(&pp, 0xff, sizeof(pp));
	sv_restart_params_from(&pp, &p);
	assert_int_equal(pp.policy, SV_RESTART_ALWAYS);
	assert_int_equal(pp.delay_ms, 500);
	assert_int_equal(pp.max_delay_ms, 2 * MIN);
	assert_int_equal(pp.burst, 3);
	assert_int_equal(pp.interval_ms, HOUR);
	assert_int_equal(pp.stable_ms, 90 * SEC);
}

/* ------------------------------------------------------------ delay */

/* Consecutive restarts at delay, delay*2, delay*4... capped at max. */
static void expect_series(uint64_t delay, uint64_t max_delay, enum sv_exit_class c,
                          const uint64_t *want, size_t n)
{
	struct sv_restart_params pp = growth_params(delay, max_delay);
	struct sv_restart_state st = { 0 };

	for (size_t i = 0; i < n; i++) {
		expect_yes(&pp, &st, c, (i + 1) * 10 * SEC, 0, want[i]);
		assert_int_equal(st.consecutive, i + 1);
		assert_int_equal(st.total, i + 1);
	}
	sv_restart_state_free(&st);
}

static void test_delay_doubles_to_cap(void **state)
{
	static const uint64_t s1[] = { 1 * SEC, 2 * SEC, 4 * SEC, 8 * SEC, 10 * SEC, 10 * SEC };
	static const uint64_t s2[] = { 3 * SEC, 6 * SEC, 12 * SEC, 20 * SEC, 20 * SEC };
	static const uint64_t s3[] = { 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000,
	                               120000, 120000 };
	static const uint64_t s4[] = { 1 * SEC, 2 * SEC, 4 * SEC, 8 * SEC, 8 * SEC };

	(void)state;
	expect_series(1 * SEC, 10 * SEC, SV_EXIT_CRASH, s1, 6);
	expect_series(3 * SEC, 20 * SEC, SV_EXIT_CRASH, s2, 5);
	expect_series(500, 2 * MIN, SV_EXIT_PANIC, s3, 10);
	/* A cap that is a power-of-two multiple is reached exactly. */
	expect_series(1 * SEC, 8 * SEC, SV_EXIT_CRASH, s4, 5);
}

static void test_delay_flat(void **state)
{
	static const uint64_t zero[] = { 0, 0, 0, 0, 0 };
	static const uint64_t five[] = { 5 * SEC, 5 * SEC, 5 * SEC, 5 * SEC };

	(void)state;
	expect_series(0, 0, SV_EXIT_CRASH, zero, 5);
	expect_series(0, MIN, SV_EXIT_CRASH, zero, 5);          /* 0 * 2^n is 0 */
	expect_series(5 * SEC, 5 * SEC, SV_EXIT_CRASH, five, 4); /* delay = max */
	/* delay above max (a profile refuses it): max wins. */
	expect_series(10 * SEC, 5 * SEC, SV_EXIT_CRASH, five, 4);
}

/* After a start failure, never sooner than SV_RESTART_MIN_GAP_MS. */
static void test_start_failure_min_gap(void **state)
{
	static const uint64_t zero_sf[] = { 1000, 1000, 1000 };
	static const uint64_t small_sf[] = { 1000, 1000, 1000, 1600, 3200, 5000, 5000 };
	static const uint64_t big_sf[] = { 5 * SEC, 10 * SEC, 20 * SEC };
	static const uint64_t zero_crash[] = { 0, 0, 0 };

	(void)state;
	assert_int_equal(SV_RESTART_MIN_GAP_MS, 1000);
	expect_series(0, 0, SV_EXIT_START_FAILURE, zero_sf, 3);
	expect_series(0, 0, SV_EXIT_CRASH, zero_crash, 3);
	expect_series(0, 0, SV_EXIT_PANIC, zero_crash, 3);
	/* The floor applies to the grown delay, not to the base. */
	expect_series(200, 5 * SEC, SV_EXIT_START_FAILURE, small_sf, 7);
	expect_series(5 * SEC, MIN, SV_EXIT_START_FAILURE, big_sf, 3);
}

/* The floor does not leak into the next crash's delay. */
static void test_start_failure_then_crash(void **state)
{
	struct sv_restart_params pp = growth_params(0, 0);
	struct sv_restart_state st = { 0 };

	(void)state;
	expect_yes(&pp, &st, SV_EXIT_START_FAILURE, 10 * SEC, 0, 1000);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 20 * SEC, 0, 0);
	expect_yes(&pp, &st, SV_EXIT_START_FAILURE, 30 * SEC, 0, 1000);
	assert_int_equal(st.consecutive, 3);
	sv_restart_state_free(&st);
}

/* delay 1h, max 24h: 1,2,4,8,16,24,24... up to the 100th, no overflow. */
static void test_huge_delays(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ALWAYS, HOUR, 24 * HOUR, 1000,
	                                     SEC, 7 * 24 * HOUR);
	struct sv_restart_state st = { 0 };

	(void)state;
	for (unsigned n = 1; n <= 100; n++) {
		uint64_t want = n <= 5 ? HOUR << (n - 1) : 24 * HOUR;

		expect_yes(&pp, &st, SV_EXIT_CRASH, n * 10 * SEC, 0, want);
	}
	assert_int_equal(st.consecutive, 100);
	sv_restart_state_free(&st);

	/* Without a meaningful cap the doubling saturates instead of wrapping. */
	st = (struct sv_restart_state){ 0 };
	pp = params(SV_RESTART_ALWAYS, HOUR, UINT64_MAX, 1000, SEC, UINT64_MAX);
	for (unsigned n = 1; n <= 100; n++) {
		uint64_t want = n <= 43 ? HOUR << (n - 1) : UINT64_MAX;
		uint64_t d;

		assert_int_equal(decide(&pp, &st, SV_EXIT_CRASH, n * 10 * SEC, 0, &d),
		                 SV_RESTART_YES);
		if (n <= 43)
			assert_int_equal(d, want);
		else
			assert_true(d == UINT64_MAX);
	}
	sv_restart_state_free(&st);

	st = (struct sv_restart_state){ 0 };
	pp = params(SV_RESTART_ALWAYS, UINT64_MAX / 2 + 1, UINT64_MAX - 1, 1000, SEC,
	            UINT64_MAX);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 10 * SEC, 0, UINT64_MAX / 2 + 1);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 20 * SEC, 0, UINT64_MAX - 1);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 30 * SEC, 0, UINT64_MAX - 1);
	sv_restart_state_free(&st);
}

/* ------------------------------------------------------------ stable */

/* A run of at least `stable` starts the growth over. */
static void test_stable_resets_growth(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ALWAYS, SEC, 10 * SEC, 1000, SEC,
	                                     60 * SEC);
	struct sv_restart_state st = { 0 };

	(void)state;
	expect_yes(&pp, &st, SV_EXIT_CRASH, 100 * SEC, 10 * SEC, 1 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 200 * SEC, 10 * SEC, 2 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 300 * SEC, 60 * SEC - 1, 4 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 400 * SEC, 60 * SEC, 1 * SEC);   /* reset */
	expect_yes(&pp, &st, SV_EXIT_CRASH, 500 * SEC, 0, 2 * SEC);
	/* Any ending that restarts after a stable run resets, not only crashes. */
	expect_yes(&pp, &st, SV_EXIT_PANIC, 600 * SEC, HOUR, 1 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 700 * SEC, 0, 2 * SEC);
	expect_yes(&pp, &st, SV_EXIT_POWEROFF, 800 * SEC, 61 * SEC, 1 * SEC);
	assert_int_equal(st.consecutive, 1);
	assert_int_equal(st.total, 8);
	sv_restart_state_free(&st);
}

/* A start failure never counts as a stable run, whatever its uptime. */
static void test_stable_not_after_start_failure(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ON_FAILURE, 2 * SEC, MIN, 1000,
	                                     SEC, 60 * SEC);
	struct sv_restart_state st = { 0 };

	(void)state;
	expect_yes(&pp, &st, SV_EXIT_START_FAILURE, 10 * SEC, 0, 2 * SEC);
	expect_yes(&pp, &st, SV_EXIT_START_FAILURE, 20 * SEC, HOUR, 4 * SEC);
	expect_yes(&pp, &st, SV_EXIT_START_FAILURE, 30 * SEC, 60 * SEC, 8 * SEC);
	assert_int_equal(st.consecutive, 3);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 40 * SEC, 60 * SEC, 2 * SEC);
	sv_restart_state_free(&st);
}

/* stable = 0: every run is stable, so the delay never grows (except over
 * start failures). */
static void test_stable_zero(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ON_FAILURE, 3 * SEC, MIN, 1000,
	                                     SEC, 0);
	struct sv_restart_state st = { 0 };

	(void)state;
	for (unsigned i = 1; i <= 5; i++)
		expect_yes(&pp, &st, SV_EXIT_CRASH, i * 10 * SEC, 0, 3 * SEC);
	expect_yes(&pp, &st, SV_EXIT_START_FAILURE, 60 * SEC, 0, 6 * SEC);
	expect_yes(&pp, &st, SV_EXIT_START_FAILURE, 70 * SEC, 0, 12 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 80 * SEC, 0, 3 * SEC);
	sv_restart_state_free(&st);
}

/* ------------------------------------------------------------ quarantine */

/* burst B within interval I: B restarts, then the (B+1)-th is quarantined. */
static void check_burst(unsigned burst, enum sv_exit_class c)
{
	struct sv_restart_params pp = params(SV_RESTART_ALWAYS, 0, 0, burst, 10 * SEC, MIN);
	struct sv_restart_state st = { 0 };
	uint64_t d;

	for (unsigned i = 0; i < burst; i++) {
		assert_int_equal(decide(&pp, &st, c, 1000 + i, 0, &d), SV_RESTART_YES);
		assert_int_equal(sv_restart_recent(&st, 1000 + i, pp.interval_ms), i + 1);
	}
	assert_int_equal(st.total, burst);
	expect_not(&pp, &st, c, 1000 + burst, SV_RESTART_QUARANTINE);
	/* and again, as long as the window holds burst restarts */
	expect_not(&pp, &st, SV_EXIT_CRASH, 1000 + 10 * SEC - 1, SV_RESTART_QUARANTINE);
	assert_int_equal(st.total, burst);
	sv_restart_state_free(&st);
}

static void test_quarantine_burst(void **state)
{
	(void)state;
	check_burst(1, SV_EXIT_CRASH);
	check_burst(2, SV_EXIT_PANIC);
	check_burst(3, SV_EXIT_CRASH);
	check_burst(5, SV_EXIT_START_FAILURE);
	check_burst(5, SV_EXIT_POWEROFF);
	check_burst(1000, SV_EXIT_CRASH);
}

/* The window slides: a restart exactly `interval` ago no longer counts. */
static void test_quarantine_window_slides(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ON_FAILURE, SEC, 10 * SEC, 3,
	                                     10 * SEC, MIN);
	struct sv_restart_state st = { 0 };

	(void)state;
	expect_yes(&pp, &st, SV_EXIT_CRASH, 0, 0, 1 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 2 * SEC, 0, 2 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 4 * SEC, 0, 4 * SEC);
	expect_not(&pp, &st, SV_EXIT_CRASH, 6 * SEC, SV_RESTART_QUARANTINE);
	expect_not(&pp, &st, SV_EXIT_CRASH, 10 * SEC - 1, SV_RESTART_QUARANTINE);
	assert_int_equal(sv_restart_recent(&st, 10 * SEC - 1, pp.interval_ms), 3);
	assert_int_equal(sv_restart_recent(&st, 10 * SEC, pp.interval_ms), 2);
	/* the first restart (t=0) has left the window */
	expect_yes(&pp, &st, SV_EXIT_CRASH, 10 * SEC, 0, 8 * SEC);
	expect_not(&pp, &st, SV_EXIT_CRASH, 11 * SEC, SV_RESTART_QUARANTINE);
	/* t=2s leaves at 12s */
	expect_yes(&pp, &st, SV_EXIT_CRASH, 12 * SEC, 0, 10 * SEC);
	/* far later: the whole window is empty again */
	assert_int_equal(sv_restart_recent(&st, HOUR, pp.interval_ms), 0);
	expect_yes(&pp, &st, SV_EXIT_CRASH, HOUR, 0, 10 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, HOUR + 1, 0, 10 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, HOUR + 2, 0, 10 * SEC);
	expect_not(&pp, &st, SV_EXIT_CRASH, HOUR + 3, SV_RESTART_QUARANTINE);
	assert_int_equal(st.total, 8);
	sv_restart_state_free(&st);
}

/* Endings the policy does not restart do not fill the window. */
static void test_quarantine_counts_restarts_only(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ON_FAILURE, 0, 0, 2, MIN, MIN);
	struct sv_restart_state st = { 0 };

	(void)state;
	for (unsigned i = 0; i < 10; i++) {
		expect_not(&pp, &st, SV_EXIT_POWEROFF, i, SV_RESTART_NO);
		expect_not(&pp, &st, SV_EXIT_OPERATOR, i, SV_RESTART_NO);
		expect_not(&pp, &st, SV_EXIT_QUIT, i, SV_RESTART_NO);
	}
	expect_yes(&pp, &st, SV_EXIT_CRASH, 100, 0, 0);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 200, 0, 0);
	expect_not(&pp, &st, SV_EXIT_CRASH, 300, SV_RESTART_QUARANTINE);
	/* a quarantined ending is not a restart either */
	assert_int_equal(sv_restart_recent(&st, 300, MIN), 2);
	sv_restart_state_free(&st);
}

/* A stable run resets the growth, not the window. */
static void test_quarantine_despite_stable(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ON_FAILURE, SEC, MIN, 3, HOUR, MIN);
	struct sv_restart_state st = { 0 };

	(void)state;
	expect_yes(&pp, &st, SV_EXIT_CRASH, 10 * MIN, 2 * MIN, SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 20 * MIN, 2 * MIN, SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 30 * MIN, 2 * MIN, SEC);
	expect_not(&pp, &st, SV_EXIT_CRASH, 40 * MIN, SV_RESTART_QUARANTINE);
	sv_restart_state_free(&st);
}

static void test_recent(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ON_FAILURE, 0, 0, 4, HOUR, MIN);
	struct sv_restart_state st = { 0 };
	uint64_t d;

	(void)state;
	assert_int_equal(sv_restart_recent(&st, 0, HOUR), 0);    /* no ring yet */
	for (uint64_t t = 1000; t <= 6000; t += 1000)             /* 6 into a ring of 4 */
		assert_int_equal(decide(&pp, &st, SV_EXIT_CRASH, t, 0, &d),
		                 t <= 4000 ? SV_RESTART_YES : SV_RESTART_QUARANTINE);
	/* ring: 1000 2000 3000 4000 */
	assert_int_equal(sv_restart_recent(&st, 4000, 1), 1);
	assert_int_equal(sv_restart_recent(&st, 4000, 1000), 1);
	assert_int_equal(sv_restart_recent(&st, 4000, 1001), 2);
	assert_int_equal(sv_restart_recent(&st, 4000, 3000), 3);
	assert_int_equal(sv_restart_recent(&st, 4000, 3001), 4);
	assert_int_equal(sv_restart_recent(&st, 4500, 1000), 1);
	assert_int_equal(sv_restart_recent(&st, 4500, 2000), 2);
	assert_int_equal(sv_restart_recent(&st, 5000, 1000), 0);
	assert_int_equal(sv_restart_recent(&st, 5000, HOUR), 4);
	assert_int_equal(sv_restart_recent(&st, 5000, 0), 0);
	/* turn the ring: new times replace the oldest */
	pp.interval_ms = 2500;
	expect_yes(&pp, &st, SV_EXIT_CRASH, 6000, 0, 0);     /* only 4000 in */
	expect_yes(&pp, &st, SV_EXIT_CRASH, 7000, 0, 0);     /* only 6000 in */
	assert_int_equal(st.count, 4);
	assert_int_equal(st.head, 2);
	assert_int_equal(sv_restart_recent(&st, 7000, HOUR), 4);  /* 3000 4000 6000 7000 */
	assert_int_equal(sv_restart_recent(&st, 7000, 3500), 3);
	assert_int_equal(sv_restart_recent(&st, 7000, 1000), 1);
	assert_int_equal(sv_restart_recent(&st, 7000, 1001), 2);
	sv_restart_state_free(&st);
}

/* ------------------------------------------------------------ ring resize */

/* Record restarts at each of times[] under pp. */
static void record(const struct sv_restart_params *pp, struct sv_restart_state *st,
                   const uint64_t *times, size_t n)
{
	uint64_t d;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(decide(pp, st, SV_EXIT_CRASH, times[i], 0, &d),
		                 SV_RESTART_YES);
}

/* A larger burst keeps every time, in order, and allows more. */
static void test_ring_grow(void **state)
{
	static const uint64_t t1[] = { 1000, 2000, 3000, 4000, 5000 };
	static const uint64_t t2[] = { 6000, 7000, 8000 };
	struct sv_restart_params pp = params(SV_RESTART_ON_FAILURE, 0, 0, 3, 3 * SEC, MIN);
	struct sv_restart_state st = { 0 };

	(void)state;
	/* 5 restarts through a ring of 3 (the window is short): it wraps */
	record(&pp, &st, t1, 5);
	assert_int_equal(st.cap, 3);
	assert_int_equal(st.count, 3);                 /* 3000 4000 5000 */
	expect_not(&pp, &st, SV_EXIT_CRASH, 5500, SV_RESTART_QUARANTINE);

	pp.burst = 6;
	pp.interval_ms = HOUR;
	record(&pp, &st, t2, 3);                       /* ring resized on the first */
	assert_int_equal(st.cap, 6);
	assert_int_equal(st.count, 6);
	assert_int_equal(sv_restart_recent(&st, 8000, HOUR), 6);
	assert_int_equal(sv_restart_recent(&st, 8000, 2500), 3);
	assert_int_equal(sv_restart_recent(&st, 8000, 4500), 5);
	assert_int_equal(sv_restart_recent(&st, 8000, 5001), 6);
	expect_not(&pp, &st, SV_EXIT_CRASH, 9000, SV_RESTART_QUARANTINE);
	assert_int_equal(st.total, 8);
	sv_restart_state_free(&st);
}

/* A smaller burst keeps the newest times, and may quarantine at once. */
static void test_ring_shrink(void **state)
{
	static const uint64_t t1[] = { 1000, 2000, 3000, 4000, 5000, 6000 };
	struct sv_restart_params pp = params(SV_RESTART_ON_FAILURE, 0, 0, 4, 2500, MIN);
	struct sv_restart_state st = { 0 };

	(void)state;
	record(&pp, &st, t1, 6);               /* ring of 4, wrapped: head is 2 */
	assert_int_equal(st.head, 2);
	assert_int_equal(st.count, 4);         /* 3000 4000 5000 6000 */

	pp.burst = 2;
	pp.interval_ms = 10 * SEC;
	expect_not(&pp, &st, SV_EXIT_CRASH, 6500, SV_RESTART_QUARANTINE);
	assert_int_equal(st.cap, 2);
	assert_int_equal(st.count, 2);
	/* the newest two survived: 5000 6000 */
	assert_int_equal(sv_restart_recent(&st, 6000, 1), 1);
	assert_int_equal(sv_restart_recent(&st, 6000, 1001), 2);
	assert_int_equal(sv_restart_recent(&st, 15000, 10 * SEC), 1);
	/* and stay in order as the ring turns */
	expect_yes(&pp, &st, SV_EXIT_CRASH, 15000, 0, 0);    /* 5000 left */
	expect_not(&pp, &st, SV_EXIT_CRASH, 15500, SV_RESTART_QUARANTINE);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 16000, 0, 0);    /* 6000 left */
	expect_not(&pp, &st, SV_EXIT_CRASH, 16001, SV_RESTART_QUARANTINE);
	assert_int_equal(sv_restart_recent(&st, 16001, 1000), 1);
	assert_int_equal(sv_restart_recent(&st, 16001, 1002), 2);

	/* shrink to 1, then grow back */
	pp.burst = 1;
	expect_not(&pp, &st, SV_EXIT_CRASH, 17000, SV_RESTART_QUARANTINE);
	assert_int_equal(st.count, 1);
	assert_int_equal(sv_restart_recent(&st, 17000, HOUR), 1);
	assert_int_equal(sv_restart_recent(&st, 16000, 1), 1);  /* it is 16000 */
	pp.burst = 3;
	expect_yes(&pp, &st, SV_EXIT_CRASH, 18000, 0, 0);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 19000, 0, 0);
	expect_not(&pp, &st, SV_EXIT_CRASH, 20000, SV_RESTART_QUARANTINE);
	assert_int_equal(sv_restart_recent(&st, 20000, 3000), 2);
	assert_int_equal(sv_restart_recent(&st, 20000, 4001), 3);
	sv_restart_state_free(&st);
}

/* Shrinking a ring that has not wrapped and holds fewer than the new size. */
static void test_ring_shrink_partial(void **state)
{
	static const uint64_t t1[] = { 1000, 2000 };
	struct sv_restart_params pp = params(SV_RESTART_ON_FAILURE, 0, 0, 10, HOUR, MIN);
	struct sv_restart_state st = { 0 };

	(void)state;
	record(&pp, &st, t1, 2);
	pp.burst = 3;
	expect_yes(&pp, &st, SV_EXIT_CRASH, 3000, 0, 0);
	assert_int_equal(st.cap, 3);
	assert_int_equal(st.count, 3);
	assert_int_equal(st.head, 0);
	assert_int_equal(sv_restart_recent(&st, 3000, 1500), 2);
	expect_not(&pp, &st, SV_EXIT_CRASH, 4000, SV_RESTART_QUARANTINE);
	sv_restart_state_free(&st);
}

/* ------------------------------------------------------------ rearm, free */

/* rearm forgets the window and the growth, keeps the total. */
static void test_rearm(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ON_FAILURE, SEC, MIN, 3, HOUR, MIN);
	struct sv_restart_state st = { 0 };

	(void)state;
	sv_restart_rearm(&st);                 /* harmless on a fresh state */
	assert_int_equal(st.total, 0);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 1000, 0, 1 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 2000, 0, 2 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 3000, 0, 4 * SEC);
	expect_not(&pp, &st, SV_EXIT_CRASH, 4000, SV_RESTART_QUARANTINE);

	sv_restart_rearm(&st);
	assert_int_equal(st.consecutive, 0);
	assert_int_equal(st.total, 3);
	assert_int_equal(sv_restart_recent(&st, 4000, HOUR), 0);
	/* a full burst again, from the base delay */
	expect_yes(&pp, &st, SV_EXIT_CRASH, 5000, 0, 1 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 6000, 0, 2 * SEC);
	expect_yes(&pp, &st, SV_EXIT_CRASH, 7000, 0, 4 * SEC);
	expect_not(&pp, &st, SV_EXIT_CRASH, 8000, SV_RESTART_QUARANTINE);
	assert_int_equal(st.total, 6);

	/* rearm after a wrapped ring, then a different burst */
	sv_restart_rearm(&st);
	pp.burst = 2;
	expect_yes(&pp, &st, SV_EXIT_START_FAILURE, 9000, 0, 1 * SEC);
	expect_yes(&pp, &st, SV_EXIT_START_FAILURE, 9100, 0, 2 * SEC);
	expect_not(&pp, &st, SV_EXIT_START_FAILURE, 9200, SV_RESTART_QUARANTINE);
	assert_int_equal(st.total, 8);
	sv_restart_state_free(&st);
}

static void test_state_free(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ALWAYS, SEC, MIN, 2, HOUR, MIN);
	struct sv_restart_state st = { 0 };

	(void)state;
	sv_restart_state_free(&st);            /* never used */
	assert_null(st.times);
	expect_yes(&pp, &st, SV_EXIT_POWEROFF, 1000, 0, 1 * SEC);
	expect_yes(&pp, &st, SV_EXIT_POWEROFF, 2000, 0, 2 * SEC);
	assert_non_null(st.times);
	sv_restart_state_free(&st);
	assert_null(st.times);
	assert_int_equal(st.cap, 0);
	assert_int_equal(st.count, 0);
	assert_int_equal(st.head, 0);
	assert_int_equal(sv_restart_recent(&st, 2000, HOUR), 0);
	sv_restart_state_free(&st);            /* twice is fine */

	/* usable again: the ring is rebuilt and the window starts empty; the
	 * counters are kept (only the ring was freed) */
	expect_yes(&pp, &st, SV_EXIT_POWEROFF, 3000, 0, 4 * SEC);
	expect_yes(&pp, &st, SV_EXIT_POWEROFF, 4000, 0, 8 * SEC);
	expect_not(&pp, &st, SV_EXIT_POWEROFF, 5000, SV_RESTART_QUARANTINE);
	sv_restart_state_free(&st);
}

/* burst 0 (a profile refuses it): no restart is allowed, and no crash. */
static void test_burst_zero(void **state)
{
	struct sv_restart_params pp = params(SV_RESTART_ALWAYS, SEC, MIN, 0, HOUR, MIN);
	struct sv_restart_state st = { 0 };

	(void)state;
	expect_not(&pp, &st, SV_EXIT_CRASH, 1000, SV_RESTART_QUARANTINE);
	pp.burst = 2;
	expect_yes(&pp, &st, SV_EXIT_CRASH, 2000, 0, SEC);
	pp.burst = 0;
	expect_not(&pp, &st, SV_EXIT_CRASH, 3000, SV_RESTART_QUARANTINE);
	assert_int_equal(st.total, 1);
	sv_restart_state_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_class_names),
		cmocka_unit_test(test_wanted_table),
		cmocka_unit_test(test_decide_follows_policy),
		cmocka_unit_test(test_params_from),
		cmocka_unit_test(test_delay_doubles_to_cap),
		cmocka_unit_test(test_delay_flat),
		cmocka_unit_test(test_start_failure_min_gap),
		cmocka_unit_test(test_start_failure_then_crash),
		cmocka_unit_test(test_huge_delays),
		cmocka_unit_test(test_stable_resets_growth),
		cmocka_unit_test(test_stable_not_after_start_failure),
		cmocka_unit_test(test_stable_zero),
		cmocka_unit_test(test_quarantine_burst),
		cmocka_unit_test(test_quarantine_window_slides),
		cmocka_unit_test(test_quarantine_counts_restarts_only),
		cmocka_unit_test(test_quarantine_despite_stable),
		cmocka_unit_test(test_recent),
		cmocka_unit_test(test_ring_grow),
		cmocka_unit_test(test_ring_shrink),
		cmocka_unit_test(test_ring_shrink_partial),
		cmocka_unit_test(test_rearm),
		cmocka_unit_test(test_state_free),
		cmocka_unit_test(test_burst_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
