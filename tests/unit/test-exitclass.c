/*
 * Unit tests for the exit classification (supervisor/guest/exitclass.c): one row
 * per case, the facts in and the class and exact description out, covering
 * every branch. The descriptions are what the integration tests and the
 * operators read (state reasons, "last_exit"), so they are pinned here
 * word for word.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "exitclass.h"

#define ADOPTED "ended, exit status unknown (adopted: not our child)"
#define TAIL "qemu-system-x86_64: -device foo: 'foo' is not a valid device model name"

struct row {
	const char *name;
	struct sv_exit_facts f;
	enum sv_exit_class want;
	const char *what;
};

static const struct row rows[] = {
	/* A completed migration or save wins over everything. */
	{ "migrated", { .was = SV_MIGRATING, .shutdown_seen = true,
	  .shutdown_reason = "host-qmp-quit", .migrated = true, .where = "tcp:10.0.0.2:4444" },
	  SV_EXIT_MIGRATED, "migrated to tcp:10.0.0.2:4444" },
	{ "saved", { .was = SV_MIGRATING, .migrated = true, .saved = true,
	  .where = "/srv/web1.save" }, SV_EXIT_SAVED, "saved to /srv/web1.save" },
	{ "migrated while stopping, killed", { .was = SV_STOPPING, .sig = 9, .force_kill = true,
	  .migrated = true, .where = "unix:/run/m.sock" }, SV_EXIT_MIGRATED,
	  "migrated to unix:/run/m.sock" },
	{ "migrated, no where", { .was = SV_MIGRATING, .migrated = true }, SV_EXIT_MIGRATED,
	  "migrated to " },
	/* Incoming: the stream failed; QEMU's own words. */
	{ "incoming, exit 1 with stderr", { .was = SV_INCOMING, .status = 1,
	  .log_tail = "Unknown savevm section" }, SV_EXIT_INCOMING,
	  "incoming migration failed: QEMU exited with status 1: Unknown savevm section" },
	{ "incoming, killed, no stderr", { .was = SV_INCOMING, .sig = 9, .log_tail = "" },
	  SV_EXIT_INCOMING,
	  "incoming migration failed: QEMU killed by signal 9 (SIGKILL): (nothing on stderr)" },
	{ "incoming, kill by operator", { .was = SV_INCOMING, .sig = 9, .force_kill = true,
	  .log_tail = "x" }, SV_EXIT_OPERATOR, "killed by operator" },
	/* Re-adoption: it had been running. */
	{ "re-adopting, panicked", { .was = SV_STARTING, .adopted = true, .panicked = true,
	  .guest_shutdown = true }, SV_EXIT_PANIC,
	  "QEMU crashed while being re-adopted: " ADOPTED },
	{ "re-adopting, powered off", { .was = SV_STARTING, .adopted = true,
	  .guest_shutdown = true, .shutdown_seen = true }, SV_EXIT_POWEROFF,
	  "QEMU crashed while being re-adopted: " ADOPTED },
	{ "re-adopting, crashed", { .was = SV_STARTING, .adopted = true, .log_tail = TAIL },
	  SV_EXIT_CRASH, "QEMU crashed while being re-adopted: " ADOPTED },
	/* A start that failed. */
	{ "start, qsupd ended it, stderr", { .was = SV_STARTING, .sig = 9,
	  .start_fail = "it was not running within 30s ([qemu] start-timeout)",
	  .log_tail = "a; b" }, SV_EXIT_START_FAILURE,
	  "start failed: it was not running within 30s ([qemu] start-timeout) "
	  "(QEMU killed by signal 9 (SIGKILL): a; b)" },
	{ "start, qsupd ended it, no stderr", { .was = SV_STARTING, .sig = 9,
	  .start_fail = "QMP: QMP protocol error" }, SV_EXIT_START_FAILURE,
	  "start failed: QMP: QMP protocol error (QEMU killed by signal 9 (SIGKILL): "
	  "nothing on stderr)" },
	{ "start, QEMU exit 1, stderr", { .was = SV_STARTING, .status = 1, .log_tail = TAIL },
	  SV_EXIT_START_FAILURE, "start failed: QEMU exited with status 1: " TAIL },
	{ "start, QEMU exit 1, no stderr", { .was = SV_STARTING, .status = 1,
	  .start_fail = "" }, SV_EXIT_START_FAILURE,
	  "start failed: QEMU exited with status 1: (nothing on stderr)" },
	{ "start, killed by operator", { .was = SV_STARTING, .sig = 9, .force_kill = true },
	  SV_EXIT_START_FAILURE,
	  "start failed: QEMU killed by signal 9 (SIGKILL): (nothing on stderr)" },
	/* The operator's stop and kill. */
	{ "kill", { .was = SV_STOPPING, .sig = 9, .force_kill = true, .panicked = true },
	  SV_EXIT_OPERATOR, "killed by operator" },
	{ "kill from running", { .was = SV_RUNNING, .sig = 9, .force_kill = true },
	  SV_EXIT_OPERATOR, "killed by operator" },
	{ "stop, powered off", { .was = SV_STOPPING, .guest_shutdown = true,
	  .shutdown_seen = true, .shutdown_reason = "guest-shutdown" }, SV_EXIT_OPERATOR,
	  "stopped by operator (guest powered off)" },
	{ "stop, quit", { .was = SV_STOPPING, .shutdown_seen = true,
	  .shutdown_reason = "host-qmp-quit" }, SV_EXIT_OPERATOR,
	  "stopped by operator (QEMU exited with status 0)" },
	{ "stop, SIGTERM", { .was = SV_STOPPING, .sig = 15 }, SV_EXIT_OPERATOR,
	  "stopped by operator (QEMU killed by signal 15 (SIGTERM))" },
	{ "stop, adopted", { .was = SV_STOPPING, .adopted = true }, SV_EXIT_OPERATOR,
	  "stopped by operator (QEMU " ADOPTED ")" },
	/* QEMU stopped in internal-error (KVM failed) and qsupd ended it: a
	 * crash of its own class, whatever QEMU's quit looked like. */
	{ "internal-error, quit", { .was = SV_PAUSED, .internal_error = true,
	  .shutdown_seen = true, .shutdown_reason = "host-qmp-quit" }, SV_EXIT_INTERNAL_ERROR,
	  "crashed: QEMU internal error (run state internal-error, see QEMU's log); qsupd "
	  "ended QEMU: exited with status 0" },
	{ "internal-error, killed", { .was = SV_PAUSED, .internal_error = true, .sig = 9,
	  .panicked = true }, SV_EXIT_INTERNAL_ERROR,
	  "crashed: QEMU internal error (run state internal-error, see QEMU's log); qsupd "
	  "ended QEMU: killed by signal 9 (SIGKILL)" },
	{ "internal-error, then the operator's stop", { .was = SV_STOPPING,
	  .internal_error = true, .shutdown_seen = true, .shutdown_reason = "host-qmp-quit" },
	  SV_EXIT_OPERATOR, "stopped by operator (QEMU exited with status 0)" },
	/* A guest that had run ended on its own. */
	{ "panic", { .was = SV_RUNNING, .panicked = true, .guest_shutdown = true,
	  .shutdown_seen = true }, SV_EXIT_PANIC,
	  "guest panicked (GUEST_PANICKED; QEMU exited with status 0)" },
	{ "panic, killed", { .was = SV_PAUSED, .panicked = true, .sig = 6 }, SV_EXIT_PANIC,
	  "guest panicked (GUEST_PANICKED; QEMU killed by signal 6 (SIGABRT))" },
	{ "poweroff", { .was = SV_RUNNING, .guest_shutdown = true, .shutdown_seen = true,
	  .shutdown_reason = "guest-shutdown" }, SV_EXIT_POWEROFF, "guest powered off" },
	{ "poweroff, exit 1", { .was = SV_PAUSED, .guest_shutdown = true, .status = 1 },
	  SV_EXIT_POWEROFF, "guest powered off" },
	{ "SIGKILL", { .was = SV_RUNNING, .sig = 9, .log_tail = TAIL }, SV_EXIT_CRASH,
	  "QEMU crashed: killed by signal 9 (SIGKILL)" },
	{ "SIGSEGV after SHUTDOWN", { .was = SV_RUNNING, .sig = 11, .shutdown_seen = true,
	  .shutdown_reason = "host-qmp-quit" }, SV_EXIT_CRASH,
	  "QEMU crashed: killed by signal 11 (SIGSEGV)" },
	{ "unnamed signal", { .was = SV_RUNNING, .sig = 100 }, SV_EXIT_CRASH,
	  "QEMU crashed: killed by signal 100 (SIG?)" },
	{ "exit 1", { .was = SV_RUNNING, .status = 1 }, SV_EXIT_CRASH,
	  "QEMU crashed: exited with status 1" },
	{ "exit -1", { .was = SV_PAUSED, .status = -1 }, SV_EXIT_CRASH,
	  "QEMU crashed: exited with status -1" },
	{ "migrating, crashed", { .was = SV_MIGRATING, .sig = 9 }, SV_EXIT_CRASH,
	  "QEMU crashed: killed by signal 9 (SIGKILL)" },
	{ "exit 0 without SHUTDOWN", { .was = SV_RUNNING }, SV_EXIT_CRASH,
	  "QEMU crashed: it ended without SHUTDOWN (exited with status 0)" },
	{ "adopted, without SHUTDOWN", { .was = SV_RUNNING, .adopted = true },
	  SV_EXIT_CRASH, "QEMU crashed: it ended without SHUTDOWN (" ADOPTED ")" },
	{ "SHUTDOWN host-signal", { .was = SV_RUNNING, .shutdown_seen = true,
	  .shutdown_reason = "host-signal" }, SV_EXIT_CRASH,
	  "QEMU crashed: terminated by a signal from outside qsup (SHUTDOWN host-signal)" },
	{ "quit", { .was = SV_RUNNING, .shutdown_seen = true,
	  .shutdown_reason = "host-qmp-quit" }, SV_EXIT_QUIT,
	  "QEMU quit (SHUTDOWN host-qmp-quit)" },
	{ "quit, paused", { .was = SV_PAUSED, .shutdown_seen = true,
	  .shutdown_reason = "host-qmp-system-reset" }, SV_EXIT_QUIT,
	  "QEMU quit (SHUTDOWN host-qmp-system-reset)" },
	{ "quit, no reason", { .was = SV_RUNNING, .shutdown_seen = true,
	  .shutdown_reason = "" }, SV_EXIT_QUIT, "QEMU quit (SHUTDOWN requested)" },
	{ "quit, NULL reason", { .was = SV_RUNNING, .shutdown_seen = true }, SV_EXIT_QUIT,
	  "QEMU quit (SHUTDOWN requested)" },
};

static void test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char what[1024];
		memset(what, 'x', sizeof(what));
		enum sv_exit_class c = sv_exit_classify(&rows[i].f, what, sizeof(what));
		if (c != rows[i].want || strcmp(what, rows[i].what) != 0)
			fail_msg("%s: got %s \"%s\", expected %s \"%s\"", rows[i].name,
			         sv_exit_class_name(c), what, sv_exit_class_name(rows[i].want),
			         rows[i].what);
	}
}

/* Every class an ending can have is reached by some row. */
static void test_rows_cover_classes(void **state)
{
	bool seen[SV_EXIT_LAST + 1] = { false };
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		seen[rows[i].want] = true;
	for (int c = SV_EXIT_POWEROFF; c <= SV_EXIT_LAST; c++)
		if (!seen[c])
			fail_msg("no row ends in %s", sv_exit_class_name((enum sv_exit_class)c));
	assert_false(seen[SV_EXIT_NONE]);
}

/* A small buffer is cut, and always terminated; the class is the same. */
static void test_truncated(void **state)
{
	struct sv_exit_facts f = { .was = SV_STARTING, .status = 1, .log_tail = TAIL };
	char what[16];
	(void)state;
	assert_int_equal(sv_exit_classify(&f, what, sizeof(what)), SV_EXIT_START_FAILURE);
	assert_string_equal(what, "start failed: Q");
}

/* The facts are only read. */
static void test_pure(void **state)
{
	struct sv_exit_facts f = { .was = SV_RUNNING, .sig = 9, .shutdown_seen = true,
	                           .shutdown_reason = "host-signal", .log_tail = TAIL };
	struct sv_exit_facts copy = f;
	char a[256], b[256];
	(void)state;
	assert_int_equal(sv_exit_classify(&f, a, sizeof(a)), SV_EXIT_CRASH);
	assert_int_equal(sv_exit_classify(&f, b, sizeof(b)), SV_EXIT_CRASH);
	assert_string_equal(a, b);
	assert_memory_equal(&f, &copy, sizeof(f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_rows_cover_classes),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_pure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
