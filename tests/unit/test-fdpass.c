/*
 * Unit tests for the open of a hot-plugged disk's file on the loop
 * (supervisor/host/fdpass.c, sv_fdpass_file_cached): a regular file on a
 * local file system (ext4 under /tmp, tmpfs under /dev/shm), itself or
 * through a symlink, opens with the access asked and O_NONBLOCK cleared;
 * anything else (a FIFO, a directory, a device, a missing file, a file on
 * procfs) is -EAGAIN, and sv_fdpass_file, which takes over off the loop,
 * gives the reason as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "fdpass.h"
#include "testutil.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = t_mkdtemp("qsup-fdpass");
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	t_rmtree(dir);
	free(dir);
	return 0;
}

static void make_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "disk", 4), 4);
	close(fd);
}

/* fd is open on path's file, with access mode acc, and blocking. */
static void expect_open(int fd, const char *path, int acc)
{
	struct stat a, b;
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(stat(path, &b), 0);
	assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
	int fl = fcntl(fd, F_GETFL);
	assert_int_equal(fl & O_ACCMODE, acc);
	assert_int_equal(fl & O_NONBLOCK, 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
}

static void test_regular_files(void **state)
{
	(void)state;
	char path[600], link[600];
	snprintf(path, sizeof(path), "%s/a.img", dir);
	make_file(path);
	expect_open(sv_fdpass_file_cached(path, O_RDWR), path, O_RDWR);
	expect_open(sv_fdpass_file_cached(path, O_RDONLY), path, O_RDONLY);
	snprintf(link, sizeof(link), "%s/link.img", dir);
	assert_int_equal(symlink(path, link), 0);
	expect_open(sv_fdpass_file_cached(link, O_RDWR), path, O_RDWR);

	/* tmpfs, where /run is */
	struct statfs sf;
	char shm[64];
	snprintf(shm, sizeof(shm), "/dev/shm/qsup-fdpass-%d.img", (int)getpid());
	if (statfs("/dev/shm", &sf) == 0 && sf.f_type == 0x01021994) {
		make_file(shm);
		expect_open(sv_fdpass_file_cached(shm, O_RDWR), shm, O_RDWR);
		unlink(shm);
	} else {
		printf("# /dev/shm is not a tmpfs here: that case is not checked\n");
	}
}

static void test_others_go_off_the_loop(void **state)
{
	(void)state;
	char fifo[600], sub[600], missing[600];
	struct sv_error err = { 0 };
	snprintf(fifo, sizeof(fifo), "%s/fifo.img", dir);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	assert_int_equal(sv_fdpass_file_cached(fifo, O_RDONLY), -EAGAIN);
	assert_int_equal(sv_fdpass_file_cached(fifo, O_RDWR), -EAGAIN);
	assert_int_equal(sv_fdpass_file(fifo, O_RDONLY, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a regular file or block device"));

	snprintf(sub, sizeof(sub), "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(sv_fdpass_file_cached(sub, O_RDONLY), -EAGAIN);

	snprintf(missing, sizeof(missing), "%s/missing.img", dir);
	assert_int_equal(sv_fdpass_file_cached(missing, O_RDWR), -EAGAIN);
	assert_int_equal(sv_fdpass_file(missing, O_RDWR, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "No such file or directory"));

	/* a device (its open could wait), and a regular file on procfs */
	assert_int_equal(sv_fdpass_file_cached("/dev/null", O_RDWR), -EAGAIN);
	assert_int_equal(sv_fdpass_file_cached("/proc/self/status", O_RDONLY), -EAGAIN);
	assert_int_equal(sv_fdpass_file_cached("", O_RDONLY), -EAGAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_regular_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_others_go_off_the_loop, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
