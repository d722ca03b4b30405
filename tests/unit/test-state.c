/*
 * Unit tests for the waits on a guest's record (supervisor/daemon/state.c,
 * sv_guest_persist_then): a real loop and thread pool, a real state.json
 * written in a temporary run dir, a guest as far as state.c reads one.
 *
 * What a migration relies on: each wait is told once, in the order the
 * waits were asked, only after a write that began after it is in place;
 * one cancelled is never told, whether its write is due or in flight; a
 * failed write is told as -errno; a guest going tells -ECANCELED. And what
 * qsupd's exit relies on: a change made during the last write is written.
 * And a start's intent (sv_state_own_begin): the write that was due, with
 * nothing written beside it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "daemon.h"
#include "guest.h"
#include "state.h"
#include "statedir.h"
#include "testutil.h"

struct wait {
	struct sv_persist_wait w;
	struct fx *x;
	int id, err, told;
	char seen[64];          /* the guest's reason in state.json when told */
	struct wait *cancel;    /* cancelled by this one's done */
	struct wait *ask;       /* asked by this one's done */
};

struct fx {
	uv_loop_t loop;
	struct sv_daemon d;
	struct sv_guest_env env;
	struct sv_guest g, *guests[1];
	char *dir;
	int order[16], norder;
};

static void persist(void *owner, struct sv_guest *g)
{
	(void)owner;
	sv_state_save(g);
}

static void persist_then(void *owner, struct sv_guest *g, struct sv_persist_wait *w)
{
	(void)owner;
	sv_state_save_then(g, w);
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	assert_int_equal(uv_loop_init(&x->loop), 0);
	x->dir = t_mkdtemp("qsup-state");
	assert_non_null(x->dir);
	x->d.loop = &x->loop;
	x->guests[0] = &x->g;
	x->d.guests = x->guests;
	x->d.nguests = 1;
	sv_state_flush_init(&x->d);
	x->env.loop = &x->loop;
	x->env.owner = &x->d;
	x->env.persist = persist;
	x->env.persist_then = persist_then;
	x->g.env = &x->env;
	x->g.name = "st";
	x->g.state = SV_STOPPED;
	x->g.pidfd = x->g.lock_fd = -1;
	x->g.handles = 1;   /* the test's own hold: never freed by state.c */
	snprintf(x->g.reason, sizeof(x->g.reason), "r0");
	snprintf(x->g.rundir, sizeof(x->g.rundir), "%s", x->dir);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	sv_state_flush_stop(&x->d);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	t_rmtree(x->dir);
	free(x->dir);
	free(x);
	return 0;
}

/* The reason recorded in the state file now ("" when there is none). */
static void recorded_reason(struct fx *x, char *out, size_t size)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/state.json", x->dir);
	json_t *j = json_load_file(path, 0, NULL);
	const char *r = j ? json_string_value(json_object_get(j, "reason")) : NULL;
	snprintf(out, size, "%s", r ? r : "");
	json_decref(j);
}

static void done(struct sv_persist_wait *pw, struct sv_guest *g, int err)
{
	struct wait *w = (struct wait *)pw;
	struct fx *x = w->x;
	assert_ptr_equal(g, &x->g);
	w->err = err;
	w->told++;
	recorded_reason(x, w->seen, sizeof(w->seen));
	x->order[x->norder++] = w->id;
	if (w->cancel)
		sv_guest_persist_cancel(g, &w->cancel->w);
	if (w->ask)
		sv_guest_persist_then(g, &w->ask->w);
}

static void wait_init(struct fx *x, struct wait *w, int id)
{
	memset(w, 0, sizeof(*w));
	w->w.done = done;
	w->x = x;
	w->id = id;
}

/* A change to the record, then a wait for it. */
static void change_then(struct fx *x, struct wait *w, const char *reason)
{
	snprintf(x->g.reason, sizeof(x->g.reason), "%s", reason);
	sv_guest_persist_then(&x->g, &w->w);
}

/* Three waits asked in one loop turn: one write, told in order, after the
 * file holds what was there when they were asked. */
static void test_told_in_order_after_the_write(void **state)
{
	struct fx *x = *state;
	struct wait w[3];
	for (int i = 0; i < 3; i++)
		wait_init(x, &w[i], i + 1);
	change_then(x, &w[0], "r1");
	change_then(x, &w[1], "r2");
	change_then(x, &w[2], "r3");
	for (int i = 0; i < 3; i++)
		assert_int_equal(w[i].told, 0);   /* never at once */
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(x->norder, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(x->order[i], i + 1);
		assert_int_equal(w[i].told, 1);
		assert_int_equal(w[i].err, 0);
		assert_string_equal(w[i].seen, "r3");
	}
}

/* A wait asked while a write is in flight waits for the next write, which
 * holds its change; the first write's wait is told first. */
static void test_wait_during_a_write_takes_the_next(void **state)
{
	struct fx *x = *state;
	struct wait a, b;
	wait_init(x, &a, 1);
	wait_init(x, &b, 2);
	change_then(x, &a, "first");
	sv_state_flush_guest(&x->g);   /* the write begins (deterministic: no loop turn) */
	assert_true(x->g.state_busy);
	change_then(x, &b, "second");
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(x->norder, 2);
	assert_int_equal(x->order[0], 1);
	assert_int_equal(x->order[1], 2);
	assert_string_equal(a.seen, "first");
	assert_string_equal(b.seen, "second");
	assert_int_equal(a.err, 0);
	assert_int_equal(b.err, 0);
}

/* A cancelled wait is never told: while due, and while its write is in
 * flight; the others are. */
static void test_cancelled_never_told(void **state)
{
	struct fx *x = *state;
	struct wait w[4];
	for (int i = 0; i < 4; i++)
		wait_init(x, &w[i], i + 1);
	change_then(x, &w[0], "a");
	change_then(x, &w[1], "b");
	sv_guest_persist_cancel(&x->g, &w[0].w);   /* due */
	sv_state_flush_guest(&x->g);
	assert_true(x->g.state_busy);
	change_then(x, &w[2], "c");
	change_then(x, &w[3], "d");
	sv_guest_persist_cancel(&x->g, &w[1].w);   /* in flight */
	sv_guest_persist_cancel(&x->g, &w[3].w);   /* due, the last of its write */
	sv_guest_persist_cancel(&x->g, &w[3].w);   /* twice: nothing */
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(x->norder, 1);
	assert_int_equal(x->order[0], 3);
	assert_int_equal(w[0].told + w[1].told + w[3].told, 0);
	assert_string_equal(w[2].seen, "d");
}

/* A done may cancel a wait further on in the same write, and ask a new
 * one, which a later write tells. */
static void test_done_cancels_and_asks(void **state)
{
	struct fx *x = *state;
	struct wait w[4];
	for (int i = 0; i < 4; i++)
		wait_init(x, &w[i], i + 1);
	w[0].cancel = &w[1];
	w[0].ask = &w[3];
	change_then(x, &w[0], "one");
	change_then(x, &w[1], "one");
	change_then(x, &w[2], "one");
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(x->norder, 3);
	assert_int_equal(x->order[0], 1);
	assert_int_equal(x->order[1], 3);
	assert_int_equal(x->order[2], 4);
	assert_int_equal(w[1].told, 0);
	assert_int_equal(w[3].err, 0);
	assert_false(x->g.state_busy);
	assert_false(x->g.state_dirty);
}

/* A write that fails is told as -errno, to every wait of that write; the
 * record is not in place. */
static void test_failed_write_told(void **state)
{
	struct fx *x = *state;
	struct wait a, b;
	wait_init(x, &a, 1);
	wait_init(x, &b, 2);
	snprintf(x->g.rundir, sizeof(x->g.rundir), "%s/gone/deeper", x->dir);   /* its parent is missing */
	change_then(x, &a, "lost");
	change_then(x, &b, "lost");
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(x->norder, 2);
	assert_int_equal(a.err, -ENOENT);
	assert_int_equal(b.err, -ENOENT);
}

/* A guest going: a wait not yet written is told -ECANCELED. */
static void test_guest_going_cancels(void **state)
{
	struct fx *x = *state;
	struct wait a, b;
	wait_init(x, &a, 1);
	wait_init(x, &b, 2);
	change_then(x, &a, "x");
	sv_state_flush_guest(&x->g);   /* a's write in flight */
	change_then(x, &b, "y");
	x->g.freeing = true;
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(a.err, 0);
	assert_int_equal(b.err, -ECANCELED);
	assert_int_equal(x->norder, 2);
}

/* qsupd exits while a write is in flight, and the record changed after
 * that write began: the change is taken before the guest is released (its
 * features with it) and written once the write in flight is done. */
static void test_exit_during_a_write_keeps_the_last_change(void **state)
{
	struct fx *x = *state;
	char seen[64];
	snprintf(x->g.reason, sizeof(x->g.reason), "first");
	sv_state_save(&x->g);
	sv_state_flush_guest(&x->g);   /* in flight */
	assert_true(x->g.state_busy);
	snprintf(x->g.reason, sizeof(x->g.reason), "last");
	sv_state_save(&x->g);          /* due after it */
	sv_state_flush_stop(&x->d);    /* qsupd exits... */
	x->g.freeing = true;           /* ...and releases its guests */
	snprintf(x->g.reason, sizeof(x->g.reason), "released");
	uv_run(&x->loop, UV_RUN_DEFAULT);
	recorded_reason(x, seen, sizeof(seen));
	assert_string_equal(seen, "last");
	assert_null(x->g.state_last);
}

/* ---- the start's own write (the intent, prepare.c) ---- */

/* The caller's write of the text record_begin gave (as prepare.c makes it,
 * here on the test's thread). */
static void own_write(struct fx *x, char *text)
{
	assert_non_null(text);
	assert_int_equal(sv_state_file_write(x->dir, ".state.json.intent", text), 0);
	free(text);
}

static bool recorded(struct fx *x)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/state.json", x->dir);
	return access(path, F_OK) == 0;
}

/* The intent is the write that was due: state.c writes nothing itself,
 * and the wait asked before is told once the intent is in place. */
static void test_own_write_is_the_due_one(void **state)
{
	struct fx *x = *state;
	struct wait a;
	wait_init(x, &a, 1);
	change_then(x, &a, "starting");
	char *text = sv_state_own_begin(&x->g);
	assert_true(x->g.state_own);
	uv_run(&x->loop, UV_RUN_DEFAULT);   /* the turn's flush: nothing to write */
	assert_false(recorded(x));
	assert_int_equal(a.told, 0);
	own_write(x, text);
	sv_state_own_end(&x->g, 0);
	assert_int_equal(a.told, 1);
	assert_int_equal(a.err, 0);
	assert_string_equal(a.seen, "starting");
	assert_false(x->g.state_busy);
	assert_false(x->g.state_dirty);
	char path[600];
	snprintf(path, sizeof(path), "%s/state.json", x->dir);
	assert_int_equal(unlink(path), 0);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_false(recorded(x));   /* not written twice */
}

/* A change while the intent is being written is written after it (never
 * beside it, where the older text could be renamed last). */
static void test_change_during_own_written_after(void **state)
{
	struct fx *x = *state;
	struct wait b;
	wait_init(x, &b, 2);
	snprintf(x->g.reason, sizeof(x->g.reason), "starting");
	sv_state_save(&x->g);
	char *text = sv_state_own_begin(&x->g);
	change_then(x, &b, "changed");
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_false(recorded(x));   /* held back while the intent is written */
	assert_int_equal(b.told, 0);
	own_write(x, text);
	sv_state_own_end(&x->g, 0);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(b.told, 1);
	assert_int_equal(b.err, 0);
	assert_string_equal(b.seen, "changed");
	char seen[64];
	recorded_reason(x, seen, sizeof(seen));
	assert_string_equal(seen, "changed");
}

/* An intent not written (the start failed first, or images are made
 * first): the write that was due is made the usual way, and its waits are
 * told after it. */
static void test_own_not_written_makes_the_due_write(void **state)
{
	struct fx *x = *state;
	struct wait a;
	wait_init(x, &a, 1);
	change_then(x, &a, "starting");
	free(sv_state_own_begin(&x->g));
	sv_state_own_end(&x->g, -EAGAIN);
	assert_int_equal(a.told, 0);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(a.told, 1);
	assert_int_equal(a.err, 0);
	assert_string_equal(a.seen, "starting");
	assert_false(x->g.state_own);
}

/* A write of state.c's in flight already: the intent is written beside
 * it, and what was due is written again after it. */
static void test_own_beside_a_write_in_flight(void **state)
{
	struct fx *x = *state;
	snprintf(x->g.reason, sizeof(x->g.reason), "older");
	sv_state_save(&x->g);
	sv_state_flush_guest(&x->g);   /* in flight */
	snprintf(x->g.reason, sizeof(x->g.reason), "starting");
	sv_state_save(&x->g);
	char *text = sv_state_own_begin(&x->g);
	assert_false(x->g.state_own);
	own_write(x, text);
	sv_state_own_end(&x->g, 0);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	char seen[64];
	recorded_reason(x, seen, sizeof(seen));
	assert_string_equal(seen, "starting");
	assert_false(x->g.state_busy);
}

/* qsupd exits while the intent is being written, after a change: the
 * change is written once the intent is in place. */
static void test_exit_during_own_keeps_the_last_change(void **state)
{
	struct fx *x = *state;
	snprintf(x->g.reason, sizeof(x->g.reason), "starting");
	sv_state_save(&x->g);
	char *text = sv_state_own_begin(&x->g);
	snprintf(x->g.reason, sizeof(x->g.reason), "last");
	sv_state_save(&x->g);
	sv_state_flush_stop(&x->d);
	x->g.freeing = true;
	snprintf(x->g.reason, sizeof(x->g.reason), "released");
	own_write(x, text);
	sv_state_own_end(&x->g, 0);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	char seen[64];
	recorded_reason(x, seen, sizeof(seen));
	assert_string_equal(seen, "last");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_told_in_order_after_the_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_during_a_write_takes_the_next, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_cancelled_never_told, setup, teardown),
		cmocka_unit_test_setup_teardown(test_done_cancels_and_asks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_told, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_going_cancels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_during_a_write_keeps_the_last_change, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_own_write_is_the_due_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_during_own_written_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_not_written_makes_the_due_write, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_own_beside_a_write_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_during_own_keeps_the_last_change, setup,
		                                teardown),
	};
	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
