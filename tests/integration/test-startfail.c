/*
 * A start that fails before the guest ever ran is a configuration error:
 * it fails once, with its message (qsupd's, or QEMU's own stderr), the
 * guest is stopped with no restart (whatever the restart policy), and the
 * daemon stays up; once the cause is gone the same guest starts. A real
 * qsupd and real QEMU (firmware-only guests: KVM where it works, else TCG).
 * The restart policy itself (guests that ran and crashed) is in
 * test-supervise.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define str t_str
/* policy = always with a short delay: a retry, if there were one, would
 * come at once. */
#define FW "[guest]\nmemory = 64M\naccel = kvm:tcg\n[shutdown]\ntimeout = 1s\n" \
	"[restart]\npolicy = always\ndelay = 100ms\n"

static void subscribe(struct t_fx *x, struct t_ctl *ev)
{
	assert_int_equal(t_ctl_open(ev, x->d.sock), 0);
	json_decref(t_ctl_call(ev, "subscribe", NULL, 5000));
}

/* start name must fail; returns its error's desc (static copy). */
static const char *start_fails(struct t_fx *x, const char *name)
{
	static char desc[1024];
	json_t *r = t_ctl_call(&x->c, "start", json_pack("{s:s}", "name", name), 30000);
	json_t *err = json_object_get(r, "error");
	if (!err)
		fail_msg("start %s succeeded; log:\n%s", name, t_daemon_log(&x->d));
	snprintf(desc, sizeof(desc), "%s", str(err, "desc"));
	assert_string_equal(str(err, "class"), "GuestFailed");
	json_decref(r);
	printf("# start %s: %s\n", name, desc);
	return desc;
}

/* The guest is stopped after one failed start: never restarted, restart
 * count 0, its status says why; no further start within ten restart
 * delays; the daemon still answers. */
static void not_retried(struct t_fx *x, struct t_ctl *ev, const char *name,
                        const char *why)
{
	t_fx_wait_state(x, ev, name, "starting", 5000);   /* the one start */
	t_fx_wait_state(x, ev, name, "stopped", 5000);
	json_t *e = t_ctl_wait_state(ev, name, "starting", 1000);
	if (e)
		fail_msg("%s was started again; log:\n%s", name, t_daemon_log(&x->d));
	json_t *s = t_fx_must(x, "status", name, 5000);
	assert_string_equal(str(s, "state"), "stopped");
	assert_string_equal(str(s, "last_exit"), "start-failure");
	assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 0);
	if (!strstr(str(s, "reason"), why) || !strstr(str(s, "reason"), "not restarted"))
		fail_msg("status reason: %s", str(s, "reason"));
	json_decref(s);
	char text[128];
	snprintf(text, sizeof(text), "%s: stopped -> backoff", name);
	assert_false(t_fx_log_has(x, text));
	snprintf(text, sizeof(text), "%s: starting -> backoff", name);
	assert_false(t_fx_log_has(x, text));
	json_decref(t_fx_must(x, "status", name, 5000));   /* the daemon is up */
}

/* A disk whose file is missing: the start fails at once, naming the file,
 * and is not retried; once the file is there the same guest runs. */
static void test_missing_disk_fails_once(void **state)
{
	struct t_fx *x = *state;
	struct t_ctl ev;
	char img[700];
	t_daemon_profile(&x->d, "nodisk", FW "[disk.root]\nfile = root.img\nformat = raw\n");
	t_fx_up(x, NULL);
	subscribe(x, &ev);
	snprintf(img, sizeof(img), "%s/root.img", x->d.profiles);
	const char *desc = start_fails(x, "nodisk");
	if (!strstr(desc, img) || !strstr(desc, "No such file or directory"))
		fail_msg("the reply does not name %s: %s", img, desc);
	not_retried(x, &ev, "nodisk", img);

	FILE *f = fopen(img, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 1 << 20), 0);
	fclose(f);
	json_t *s = t_fx_must(x, "start", "nodisk", 30000);
	assert_string_equal(str(s, "state"), "running");
	assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 0);
	json_decref(s);
	json_decref(t_fx_must(x, "stop", "nodisk", 30000));
	t_ctl_close(&ev);
}

/* A port in use (the VNC display's): QEMU refuses to start, and its own
 * words reach the reply and status; not retried; started again once the
 * port is free. */
static void test_port_in_use_reports_qemu(void **state)
{
	struct t_fx *x = *state;
	struct t_ctl ev;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), display = -1;
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int d = 60; d < 100 && display < 0; d++) {   /* a free one, to hold */
		sa.sin_port = htons((uint16_t)(5900 + d));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			display = d;
	}
	assert_true(display >= 0);
	assert_int_equal(listen(fd, 1), 0);
	char profile[512];
	snprintf(profile, sizeof(profile), FW "[display]\nvnc = yes\nvnc-listen = 127.0.0.1\n"
	         "vnc-display = %d\n", display);
	t_daemon_profile(&x->d, "vncbusy", profile);
	t_fx_up(x, NULL);
	subscribe(x, &ev);
	const char *desc = start_fails(x, "vncbusy");
	if (!strstr(desc, "Address already in use"))
		fail_msg("QEMU's words are not in the reply: %s", desc);
	not_retried(x, &ev, "vncbusy", "Address already in use");
	close(fd);
	json_t *s = t_fx_must(x, "start", "vncbusy", 30000);
	assert_string_equal(str(s, "state"), "running");
	json_decref(s);
	json_decref(t_fx_must(x, "stop", "vncbusy", 30000));
	t_ctl_close(&ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_disk_fails_once, t_fx_setup,
		                                t_fx_teardown),
		cmocka_unit_test_setup_teardown(test_port_in_use_reports_qemu, t_fx_setup,
		                                t_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
