/*
 * Unit tests for the guest state machine (supervisor/guest/machine.c): the names,
 * all 100 (from, to) pairs against a table written out here independently,
 * the predicates, sv_guest_transition() itself on a minimal guest (legal
 * changes made, illegal ones refused and logged as bugs), and the table in
 * qsupd(8), which must say the same as the code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest.h"
#include "guest_int.h"
#include "machine.h"

static const char *const names[SV_NSTATES] = {
	"stopped", "starting", "running", "paused", "stopping",
	"backoff", "failed", "migrating", "incoming", "migrated",
};

/* The expected table, by name: from, then every legal to. */
static const char *const expected[SV_NSTATES][SV_NSTATES + 1] = {
	{ "stopped", "starting", "incoming", "stopped", "backoff", "failed", "migrated" },
	{ "starting", "running", "paused", "incoming", "migrating", "stopping", "stopped",
	  "backoff", "failed" },
	{ "running", "paused", "stopping", "migrating", "stopped", "backoff", "failed" },
	{ "paused", "running", "stopping", "migrating", "stopped", "backoff", "failed" },
	{ "stopping", "stopped", "migrated" },
	{ "backoff", "starting", "stopped", "backoff", "failed" },
	{ "failed", "starting", "incoming", "stopped" },
	{ "migrating", "running", "paused", "migrating", "stopping", "stopped", "backoff",
	  "failed", "migrated" },
	{ "incoming", "running", "paused", "stopping", "stopped" },
	{ "migrated", "starting", "incoming" },
};

static enum sv_state by_name(const char *name)
{
	for (int s = 0; s < SV_NSTATES; s++)
		if (strcmp(names[s], name) == 0)
			return (enum sv_state)s;
	fail_msg("no state named '%s'", name);
	return SV_STOPPED;
}

/* want[from][to] from the table above. */
static void expected_table(bool want[SV_NSTATES][SV_NSTATES])
{
	memset(want, 0, sizeof(bool) * SV_NSTATES * SV_NSTATES);
	for (int i = 0; i < SV_NSTATES; i++) {
		enum sv_state from = by_name(expected[i][0]);
		for (int j = 1; j <= SV_NSTATES && expected[i][j]; j++) {
			enum sv_state to = by_name(expected[i][j]);
			assert_false(want[from][to]);   /* listed once */
			want[from][to] = true;
		}
	}
}

static void test_names(void **state)
{
	(void)state;
	for (int s = 0; s < SV_NSTATES; s++)
		assert_string_equal(sv_state_name((enum sv_state)s), names[s]);
	assert_string_equal(sv_state_name((enum sv_state)SV_NSTATES), "?");
	assert_string_equal(sv_state_name((enum sv_state)-1), "?");
}

/* All 100 pairs: legal exactly where the expected table says. */
static void test_all_pairs(void **state)
{
	bool want[SV_NSTATES][SV_NSTATES];
	int n = 0;
	(void)state;
	expected_table(want);
	for (int f = 0; f < SV_NSTATES; f++) {
		for (int t = 0; t < SV_NSTATES; t++) {
			bool got = sv_transition_legal((enum sv_state)f, (enum sv_state)t);
			if (got != want[f][t])
				fail_msg("%s -> %s: %s, expected %s", names[f], names[t],
				         got ? "legal" : "illegal", want[f][t] ? "legal" : "illegal");
			n += got;
		}
	}
	assert_int_equal(n, 49);
	assert_false(sv_transition_legal((enum sv_state)SV_NSTATES, SV_STOPPED));
	assert_false(sv_transition_legal(SV_STOPPED, (enum sv_state)SV_NSTATES));
	assert_false(sv_transition_legal((enum sv_state)-1, SV_STARTING));
}

/* The cases the table exists for, spelled out. */
static void test_hazards(void **state)
{
	(void)state;
	/* An operator's start runs a migrated guest here again... */
	assert_true(sv_transition_legal(SV_MIGRATED, SV_STARTING));
	assert_true(sv_state_can_start(SV_MIGRATED));
	/* ...but qsupd never does on its own: a second QEMU. */
	assert_false(sv_state_may_autostart(SV_MIGRATED));
	assert_false(sv_transition_legal(SV_MIGRATED, SV_BACKOFF));
	assert_false(sv_transition_legal(SV_MIGRATED, SV_STOPPED));
	/* A failed incoming migration is never restarted here. */
	assert_false(sv_transition_legal(SV_INCOMING, SV_BACKOFF));
	assert_false(sv_transition_legal(SV_INCOMING, SV_FAILED));
	/* A stop is never undone by a late reply. */
	assert_false(sv_transition_legal(SV_STOPPING, SV_RUNNING));
	assert_false(sv_transition_legal(SV_STOPPING, SV_PAUSED));
	assert_false(sv_transition_legal(SV_STOPPING, SV_MIGRATING));
	assert_false(sv_transition_legal(SV_STOPPING, SV_BACKOFF));
	/* No same-state change but the three with a new reason. */
	for (int s = 0; s < SV_NSTATES; s++)
		assert_int_equal(sv_transition_legal((enum sv_state)s, (enum sv_state)s),
		                 s == SV_STOPPED || s == SV_BACKOFF || s == SV_MIGRATING);
}

/* One predicate against its set, written as names. */
static void check_set(const char *what, bool (*pred)(enum sv_state), const char *set)
{
	for (int s = 0; s < SV_NSTATES; s++) {
		char padded[128];
		snprintf(padded, sizeof(padded), " %s ", set);
		char word[32];
		snprintf(word, sizeof(word), " %s ", names[s]);
		bool want = strstr(padded, word) != NULL;
		if (pred((enum sv_state)s) != want)
			fail_msg("%s(%s) should be %s", what, names[s], want ? "true" : "false");
	}
	assert_false(pred((enum sv_state)SV_NSTATES));
}

static bool hotplug(enum sv_state s)
{
	return sv_state_can_hotplug(s, false);
}

static bool hotplug_replay(enum sv_state s)
{
	return sv_state_can_hotplug(s, true);
}

static void test_predicates(void **state)
{
	(void)state;
	check_set("can_start", sv_state_can_start, "stopped failed backoff migrated");
	check_set("can_receive", sv_state_can_receive, "stopped failed migrated");
	check_set("start_rearms", sv_state_start_rearms, "stopped failed");
	check_set("may_autostart", sv_state_may_autostart, "stopped");
	check_set("is_up", sv_state_is_up, "running paused");
	check_set("can_pause", sv_state_can_pause, "running");
	check_set("can_resume", sv_state_can_resume, "paused");
	check_set("can_migrate", sv_state_can_migrate, "running paused");
	check_set("can_hotplug", hotplug, "running paused");
	check_set("can_hotplug(replay)", hotplug_replay, "running paused starting incoming");
	check_set("is_launching", sv_state_is_launching, "starting incoming");
	check_set("in_migration", sv_state_in_migration, "migrating incoming");
	check_set("holds_runstate", sv_state_holds_runstate,
	          "starting incoming migrating migrated");
	check_set("is_down", sv_state_is_down, "stopped failed migrated");
}

/* What a predicate allows, the table allows. */
static void test_predicates_agree_with_table(void **state)
{
	(void)state;
	for (int i = 0; i < SV_NSTATES; i++) {
		enum sv_state s = (enum sv_state)i;
		if (sv_state_can_start(s))
			assert_true(sv_transition_legal(s, SV_STARTING));
		if (sv_state_can_receive(s))
			assert_true(sv_transition_legal(s, SV_INCOMING));
		if (sv_state_may_autostart(s))
			assert_true(sv_state_can_start(s));
		if (sv_state_start_rearms(s))
			assert_true(sv_state_can_start(s));
		if (sv_state_can_pause(s))
			assert_true(sv_transition_legal(s, SV_PAUSED));
		if (sv_state_can_resume(s))
			assert_true(sv_transition_legal(s, SV_RUNNING));
		if (sv_state_can_migrate(s))
			assert_true(sv_transition_legal(s, SV_MIGRATING));
		/* Whatever has a QEMU can be stopped; down states have none. */
		if (sv_state_is_up(s) || sv_state_is_launching(s) || s == SV_MIGRATING)
			assert_true(sv_transition_legal(s, SV_STOPPING));
		if (sv_state_is_down(s) || s == SV_BACKOFF)
			assert_false(sv_transition_legal(s, SV_STOPPING));
	}
}

/* ---- sv_guest_transition on a guest without a running daemon ---- */

/* A guest as far as sv_guest_transition reaches: an environment whose
 * persist callback marks the state dirty (which shows that a save was
 * asked for), no route to emit to, no heap trimming. */
struct mini {
	struct sv_guest_env env;
	struct sv_guest g;
};

static void mini_persist(void *owner, struct sv_guest *g)
{
	(void)owner;
	g->state_dirty = true;
}

static void mini_activity(void *owner)
{
	(void)owner;
}

static void mini_init(struct mini *m, enum sv_state s)
{
	memset(m, 0, sizeof(*m));
	m->env.persist = mini_persist;
	m->env.activity = mini_activity;
	m->g.env = &m->env;
	m->g.name = "t";
	m->g.state = s;
	snprintf(m->g.reason, sizeof(m->g.reason), "before");
}

/* Run one transition with stderr captured into log. */
static bool transition_logged(struct mini *m, enum sv_state to, const char *reason,
                              char *log, size_t size)
{
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	bool done = sv_guest_transition(&m->g, to, reason);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	size_t n = fread(log, 1, size - 1, tmp);
	log[n] = '\0';
	fclose(tmp);
	return done;
}

static void test_transition_function(void **state)
{
	bool want[SV_NSTATES][SV_NSTATES];
	(void)state;
	expected_table(want);
	for (int f = 0; f < SV_NSTATES; f++) {
		for (int t = 0; t < SV_NSTATES; t++) {
			struct mini m;
			char log[2048], line[256];
			mini_init(&m, (enum sv_state)f);
			bool done = transition_logged(&m, (enum sv_state)t, "why", log, sizeof(log));
			assert_int_equal(done, want[f][t]);
			if (done) {
				assert_int_equal(m.g.state, t);
				assert_string_equal(m.g.reason, "why");
				assert_true(m.g.state_dirty);     /* saved */
				snprintf(line, sizeof(line), "info: t: %s -> %s (why)\n",
				         names[f], names[t]);
			} else {
				assert_int_equal(m.g.state, f);   /* unchanged */
				assert_string_equal(m.g.reason, "before");
				assert_false(m.g.state_dirty);    /* nothing saved */
				snprintf(line, sizeof(line), "error: t: BUG: illegal "
				         "transition %s -> %s (why)\n", names[f], names[t]);
			}
			/* "2026-11-30T10:36:23.123+01:00 qsupd[PID]: " first (log.h) */
			const char *text = strstr(log, "]: ");
			assert_non_null(text);
			assert_string_equal(text + 3, line);
		}
	}
}

/* ---- qsupd(8) ---- */

static char *read_man(void)
{
	const char *dir = getenv("QSUP_SRCDIR");
	char path[4200];
	snprintf(path, sizeof(path), "%s/man/qsupd.8", dir && *dir ? dir : ".");
	FILE *f = fopen(path, "re");
	if (!f)
		fail_msg("%s: cannot open (set QSUP_SRCDIR)", path);
	char *text = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&text, &cap, '\0', f);
	fclose(f);
	assert_true(n > 0);
	return text;
}

/* The man page's list between its transitions-begin and -end comments:
 * ".It Cm FROM" then ".Cm TO , TO ...". */
static void parse_man(const char *text, bool got[SV_NSTATES][SV_NSTATES],
                      bool row[SV_NSTATES])
{
	const char *begin = strstr(text, ".\\\" transitions-begin\n");
	const char *end = begin ? strstr(begin, ".\\\" transitions-end\n") : NULL;
	assert_non_null(begin);
	assert_non_null(end);
	char *list = strndup(begin, (size_t)(end - begin)), *save = NULL;
	int from = -1;
	for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *w = NULL;
		if (strncmp(line, ".It Cm ", 7) == 0) {
			from = by_name(line + 7);
			assert_false(row[from]);    /* one row per state */
			row[from] = true;
		} else if (strncmp(line, ".Cm ", 4) == 0) {
			assert_true(from >= 0);
			for (char *t = strtok_r(line + 4, " ,", &w); t; t = strtok_r(NULL, " ,", &w))
				got[from][by_name(t)] = true;
			from = -1;                  /* one line of targets */
		}
	}
	free(list);
}

static void test_man_page_agrees(void **state)
{
	bool got[SV_NSTATES][SV_NSTATES] = { { false } }, row[SV_NSTATES] = { false };
	char *text = read_man();
	(void)state;
	parse_man(text, got, row);
	free(text);
	for (int f = 0; f < SV_NSTATES; f++) {
		if (!row[f])
			fail_msg("qsupd(8) has no row for %s", names[f]);
		for (int t = 0; t < SV_NSTATES; t++) {
			bool code = sv_transition_legal((enum sv_state)f, (enum sv_state)t);
			if (got[f][t] != code)
				fail_msg("%s -> %s: qsupd(8) says %s, machine.c %s", names[f], names[t],
				         got[f][t] ? "legal" : "illegal", code ? "legal" : "illegal");
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_all_pairs),
		cmocka_unit_test(test_hazards),
		cmocka_unit_test(test_predicates),
		cmocka_unit_test(test_predicates_agree_with_table),
		cmocka_unit_test(test_transition_function),
		cmocka_unit_test(test_man_page_agrees),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
