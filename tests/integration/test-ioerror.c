/*
 * A disk whose host file system is full, against a real daemon, real QEMU
 * and the tiny guest (TCG): the guest writes to a raw image on a tiny tmpfs
 * that a filler file has almost filled. QEMU pauses it (virtio's default
 * werror=enospc) and qsupd says which disk of the profile and why, in the
 * status and as events; once the operator frees space, resume lets the
 * guest finish its write. The tmpfs is mounted in a private mount
 * namespace of this test process (and of the qsupd it spawns), so nothing
 * shows outside. Needs root (mount).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "tdaemon.h"
#include "tfixture.h"
#include "testutil.h"

#define str t_str

/* A private mount namespace with a 4 MiB tmpfs at dir, nearly full: a
 * sparse 16 MiB raw image and a 3.5 MiB filler. Skips when not root. */
static void full_tmpfs(const char *dir, char *image, size_t isize, char *filler,
                       size_t fsize)
{
	if (geteuid() != 0) {
		printf("# note: not root: cannot mount a tmpfs; skipped\n");
		skip();
	}
	assert_int_equal(unshare(CLONE_NEWNS), 0);
	assert_int_equal(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0755"), 0);
	snprintf(image, isize, "%s/data.img", dir);
	snprintf(filler, fsize, "%s/filler", dir);
	int fd = open(image, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 << 20), 0);
	close(fd);
	fd = open(filler, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	static char block[64 << 10];
	memset(block, 0x5a, sizeof(block));
	for (int i = 0; i < 56; i++)   /* 3.5 MiB */
		assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	close(fd);
}

static bool is_io_event(json_t *m, const void *arg)
{
	(void)arg;
	return !strcmp(str(m, "event"), "GUEST_IO_ERROR");
}


static void test_full_disk_pauses_then_resume(void **state)
{
	struct t_fx *x = *state;
	char mnt[600], image[700], filler[700], extra[1024];
	snprintf(mnt, sizeof(mnt), "%s/full", x->d.dir);
	full_tmpfs(mnt, image, sizeof(image), filler, sizeof(filler));
	snprintf(extra, sizeof(extra), "[disk.data]\nfile = %s\nformat = raw\n"
	         "[restart]\npolicy = never\n", image);
	t_daemon_tiny_profile(&x->d, "io", extra);
	t_fx_up(x, NULL);
	struct t_ctl ev;
	assert_int_equal(t_ctl_open(&ev, x->d.sock), 0);
	json_decref(t_ctl_call(&ev, "subscribe", NULL, 5000));
	json_decref(t_fx_must(x, "start", "io", 60000));

	uv_loop_t loop;
	struct t_serial ser;
	size_t seen = 0;
	assert_int_equal(t_ctl_console(&x->c, "io", &loop, &ser), 0);
	if (t_serial_wait(&ser, "QSUP-GUEST-READY", &seen, 60000) < 0)
		fail_msg("no ready marker:\n%s", ser.buf ? ser.buf : "");
	size_t from = 0;
	if (!strstr(ser.buf, "write DEV MIB") && (t_serial_write(&ser, "help") < 0 ||
	    t_serial_wait(&ser, "write DEV MIB", &from, 10000) < 0))
		fail_msg("the guest in %s has no write command: an old build? (make guest)",
		         t_guestdir());
	/* 2 MiB onto the disk: the tmpfs has about half a MiB left. */
	assert_int_equal(t_serial_write(&ser, "write vda 2"), 0);
	const char *why = t_fx_wait_state(x, &ev, "io", "paused", 60000);
	printf("# note: %s\n", why);
	assert_string_equal(why, "I/O error on disk data: No space left on device");
	json_t *e = NULL, *m;   /* GUEST_IO_ERROR came first (it is queued) */
	while (!e && (m = t_ctl_next(&ev, 5000)))
		if (is_io_event(m, NULL))
			e = m;
		else
			json_decref(m);
	assert_non_null(e);
	json_t *d = json_object_get(e, "data");
	assert_string_equal(str(d, "name"), "io");
	assert_string_equal(str(d, "disk"), "data");
	assert_string_equal(str(d, "operation"), "write");
	assert_string_equal(str(d, "error"), "No space left on device");
	assert_true(json_is_true(json_object_get(d, "nospace")));
	json_decref(e);
	json_t *s = t_fx_must(x, "status", "io", 5000);
	assert_string_equal(str(s, "state"), "paused");
	assert_string_equal(str(s, "reason"), "I/O error on disk data: No space left on device");
	assert_string_equal(str(json_object_get(s, "io_error"), "disk"), "data");
	json_decref(s);
	assert_null(strstr(ser.buf + seen, "QSUP-WRITE"));   /* the write waits */

	/* Resumed with the disk still full: QEMU retries, and it pauses again. */
	s = t_fx_must(x, "resume", "io", 10000);
	json_decref(s);
	assert_string_equal(t_fx_wait_state(x, &ev, "io", "paused", 30000),
	                    "I/O error on disk data: No space left on device");

	/* The operator frees space: resume, and the guest's write completes. */
	assert_int_equal(unlink(filler), 0);
	s = t_fx_must(x, "resume", "io", 10000);
	assert_string_equal(str(s, "state"), "running");
	json_decref(s);
	if (t_serial_wait(&ser, "QSUP-WRITE vda 2 ok", &seen, 60000) < 0)
		fail_msg("the write did not complete:\n%s", ser.buf ? ser.buf : "");
	s = t_fx_must(x, "status", "io", 5000);
	assert_string_equal(str(s, "state"), "running");
	assert_true(json_is_null(json_object_get(s, "io_error")));
	json_decref(s);
	const char *log = t_daemon_log(&x->d);
	assert_non_null(strstr(log, "io: I/O error on disk data (write): No space left on "
	                       "device"));
	t_serial_close(&ser);
	t_loop_finish(&loop);
	t_ctl_close(&ev);
	json_decref(t_fx_must(x, "kill", "io", 10000));
	umount2(mnt, MNT_DETACH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_disk_pauses_then_resume, t_fx_setup,
		                                t_fx_teardown),
	};
	return cmocka_run_group_tests_name("ioerror", tests, NULL, NULL);
}
