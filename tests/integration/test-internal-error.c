/*
 * QEMU's run state internal-error against a real daemon: on this kind of
 * host (a paravirtual /dev/kvm that runs firmware but not a Linux kernel)
 * the tiny guest under KVM hits a KVM emulation failure about a minute into
 * its boot, and QEMU stops it for good in internal-error (cont is refused
 * there). qsupd must take that for a crash of its own class: end QEMU and
 * apply the restart policy, never leave the guest paused. Where KVM boots
 * the guest fine (its ready marker shows up), there is nothing to provoke
 * and the test is skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define str t_str

/* The tiny guest under KVM, its console logged to DIR/NAME.serial. */
static void kvm_tiny(struct t_fx *x, const char *name, const char *policy)
{
	char extra[1024];
	snprintf(extra, sizeof(extra), "[serial]\nlog = %s/%s.serial\n[restart]\npolicy = %s\n"
	         "delay = 100ms\nburst = 5\n", x->d.dir, name, policy);
	t_daemon_tiny_profile(&x->d, name, extra);
	/* t_daemon_tiny_profile says tcg: this one is for KVM. */
	char path[700], *text = NULL;
	snprintf(path, sizeof(path), "%s/%s.ini", x->d.profiles, name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = 0;
	assert_true(getdelim(&text, &n, '\0', f) > 0);
	fclose(f);
	char *tcg = strstr(text, "accel = tcg");
	assert_non_null(tcg);
	memcpy(tcg, "accel = kvm", 11);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(text);
}

static void test_internal_error_is_a_crash(void **state)
{
	struct t_fx *x = *state;
	if (strcmp(t_accel(), "kvm") != 0) {
		printf("# note: no usable KVM: no internal-error to provoke; skipped\n");
		skip();
	}
	kvm_tiny(x, "never", "never");
	kvm_tiny(x, "retry", "on-failure");
	t_fx_up(x, NULL);
	struct t_ctl ev;
	assert_int_equal(t_ctl_open(&ev, x->d.sock), 0);
	json_decref(t_ctl_call(&ev, "subscribe", NULL, 5000));
	json_t *s = t_fx_must(x, "start", "never", 60000);
	pid_t never_pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	s = t_fx_must(x, "start", "retry", 60000);
	pid_t retry_pid = (pid_t)json_integer_value(json_object_get(s, "pid"));
	json_decref(s);
	for (int i = 0; i < 2; i++) {   /* take these events: later waits are for new ones */
		t_fx_wait_state(x, &ev, i ? "retry" : "never", "starting", 5000);
		t_fx_wait_state(x, &ev, i ? "retry" : "never", "running", 5000);
	}

	/* About a minute of boot under this KVM, then the emulation failure. */
	char serial[700];
	snprintf(serial, sizeof(serial), "%s/never.serial", x->d.dir);
	json_t *e = NULL;
	for (int i = 0; i < 240 && !e; i++) {
		e = t_ctl_wait_state(&ev, "never", "paused", 1000);
		if (!e && strstr(t_file_tail(serial), "QSUP-GUEST-READY")) {
			printf("# note: KVM boots the tiny guest here: no internal-error to "
			       "provoke; skipped\n");
			t_ctl_close(&ev);
			skip();
		}
	}
	if (!e)
		fail_msg("no internal-error within 240 s; log:\n%s", t_daemon_log(&x->d));
	const char *why = str(json_object_get(e, "data"), "reason");
	printf("# note: never: paused (%s)\n", why);
	assert_string_equal(why, "QEMU internal error (run state internal-error): ending QEMU");
	json_decref(e);

	/* policy never: QEMU ended, the guest stopped with the class. */
	why = t_fx_wait_state(x, &ev, "never", "stopped", 30000);
	printf("# note: never: stopped (%s)\n", why);
	assert_non_null(strstr(why, "crashed: QEMU internal error (run state internal-error"));
	s = t_fx_must(x, "status", "never", 5000);
	assert_string_equal(str(s, "state"), "stopped");
	assert_string_equal(str(s, "last_exit"), "internal-error");
	assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 0);
	/* status shows what QEMU said about it (the last run's log tail) */
	json_t *tail = json_object_get(s, "log_tail");
	if (json_array_size(tail) == 0)
		fail_msg("no log_tail in the status of a guest ended by an internal error");
	printf("# note: never: log tail ends with: %s\n",
	       json_string_value(json_array_get(tail, json_array_size(tail) - 1)));
	json_decref(s);
	assert_false(t_pid_alive(never_pid));

	/* on-failure: restarted with a new QEMU, the ending counted. */
	why = t_fx_wait_state(x, &ev, "retry", "backoff", 240000);
	printf("# note: retry: backoff (%s)\n", why);
	assert_non_null(strstr(why, "crashed: QEMU internal error"));
	t_fx_wait_state(x, &ev, "retry", "starting", 60000);
	t_fx_wait_state(x, &ev, "retry", "running", 60000);
	s = t_fx_must(x, "status", "retry", 5000);
	assert_string_equal(str(s, "state"), "running");
	assert_string_equal(str(s, "last_exit"), "internal-error");
	assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 1);
	assert_true(json_integer_value(json_object_get(s, "pid")) != retry_pid);
	json_decref(s);
	assert_false(t_pid_alive(retry_pid));
	assert_true(t_fx_log_has(x, "never: QEMU stopped the guest on an internal error"));
	assert_true(t_fx_log_has(x, "retry: QEMU stopped the guest on an internal error"));
	t_ctl_close(&ev);
	json_decref(t_fx_must(x, "kill", "retry", 10000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_internal_error_is_a_crash, t_fx_setup,
		                                t_fx_teardown),
	};
	return cmocka_run_group_tests_name("internal-error", tests, NULL, NULL);
}
