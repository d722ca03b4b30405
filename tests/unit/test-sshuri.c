/*
 * The pure parts of the SSH transport (sshuri.h): ssh:// URIs, the one
 * quoting of the remote command for the remote shell (checked by running
 * the quoted words through sh -c, as sshd does), the ssh argv, and what
 * ssh's error output means.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "sshuri.h"

static void test_uri_forms(void **state)
{
	(void)state;
	struct sv_ssh_uri u;
	struct sv_error err = { 0 };

	assert_int_equal(sv_ssh_uri_parse("ssh://hostb", &u, &err), 0);
	assert_string_equal(u.host, "hostb");
	assert_string_equal(u.user, "");
	assert_int_equal(u.port, 0);
	assert_string_equal(u.path, "");
	assert_int_equal(sv_ssh_uri_parse("ssh://ops@hostb:2222/run/qsup/qsupd.sock", &u, &err), 0);
	assert_string_equal(u.user, "ops");
	assert_string_equal(u.host, "hostb");
	assert_int_equal(u.port, 2222);
	assert_string_equal(u.path, "/run/qsup/qsupd.sock");
	assert_int_equal(sv_ssh_uri_parse("ssh://[fe80::1]:22/", &u, &err), 0);
	assert_string_equal(u.host, "fe80::1");
	assert_int_equal(u.port, 22);
	assert_string_equal(u.path, "");
	assert_int_equal(sv_ssh_uri_parse("ssh://h/a%20b%27c", &u, &err), 0);
	assert_string_equal(u.path, "/a b'c");
	assert_true(sv_ssh_uri_is("ssh://x"));
	assert_false(sv_ssh_uri_is("unix:///x"));
}

static void test_uri_refused(void **state)
{
	(void)state;
	struct sv_ssh_uri u;
	struct sv_error err = { 0 };
	static const char *const bad[] = {
		"ssh://", "ssh://-oProxyCommand=x", "ssh://h:0", "ssh://h:65536", "ssh://h:",
		"ssh://h:2x", "ssh://@h", "ssh://-u@h", "ssh://h o", "ssh://[::1", "ssh://h/%zz",
		"ssh://h/%00", "unix:///x", "ssh://a'b",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		if (sv_ssh_uri_parse(bad[i], &u, &err) >= 0)
			fail_msg("%s was accepted", bad[i]);
		assert_true(err.msg[0] != '\0');
	}
	char longp[300] = "ssh://h/";
	memset(longp + 8, 'x', 200);
	assert_int_equal(sv_ssh_uri_parse(longp, &u, &err), -ENAMETOOLONG);
}

/* What sh -c makes of the quoted words, each word on a line. */
static void through_shell(const char *cmd, char *out, size_t size)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		char *full;
		if (asprintf(&full, "printf '%%s\\n' %s", cmd) < 0)
			_exit(1);
		execl("/bin/sh", "sh", "-c", full, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	while (n < size - 1 && (r = read(p[0], out + n, size - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_quote_survives_a_shell(void **state)
{
	(void)state;
	const char *words[] = { "qsupctl", "-s", "/tmp/a b'c\"d$HOME;e`x`\\f*", "--stdio",
	                        "", "it's", NULL };
	char *q = sv_shell_quote(words), out[512];
	assert_non_null(q);
	through_shell(q, out, sizeof(out));
	assert_string_equal(out, "qsupctl\n-s\n/tmp/a b'c\"d$HOME;e`x`\\f*\n--stdio\n\nit's\n");
	free(q);
}

static void test_argv(void **state)
{
	(void)state;
	struct sv_ssh_uri u;
	assert_int_equal(sv_ssh_uri_parse("ssh://root@10.0.0.2:2222/x y", &u, NULL), 0);
	const char *remote[] = { "qsupctl", "-s", u.path, "--stdio", NULL };
	char **argv = sv_ssh_argv(NULL, "/etc/cfg", &u, remote);
	const char *want[] = { "ssh", "-F", "/etc/cfg", "-o", "BatchMode=yes", "-T", "-e", "none",
	                       "-p", "2222", "-l", "root", "--", "10.0.0.2",
	                       "'qsupctl' '-s' '/x y' '--stdio'", NULL };
	for (size_t i = 0; want[i]; i++)
		assert_string_equal(argv[i], want[i]);
	assert_null(argv[sizeof(want) / sizeof(want[0]) - 1]);
	sv_ssh_argv_free(argv);
	assert_int_equal(sv_ssh_uri_parse("ssh://h", &u, NULL), 0);
	argv = sv_ssh_argv("/usr/bin/ssh", NULL, &u, remote);
	assert_string_equal(argv[0], "/usr/bin/ssh");
	assert_string_equal(argv[1], "-o");
	assert_string_equal(argv[6], "--");
	assert_string_equal(argv[7], "h");
	sv_ssh_argv_free(argv);
}

static void test_classify(void **state)
{
	(void)state;
	char buf[64];
	assert_int_equal(sv_ssh_classify("No ED25519 host key is known for [h]:22 and you have "
	                                 "requested strict checking.\nHost key verification "
	                                 "failed.\n"), SV_SSH_HOSTKEY);
	assert_int_equal(sv_ssh_classify("root@h: Permission denied (publickey).\n"),
	                 SV_SSH_AUTH);
	assert_int_equal(sv_ssh_classify("ssh: connect to host h port 2 : Connection refused\n"),
	                 SV_SSH_NETWORK);
	assert_int_equal(sv_ssh_classify("ssh: Could not resolve hostname x: Name or service "
	                                 "not known\n"), SV_SSH_NETWORK);
	assert_int_equal(sv_ssh_classify("qsupctl: cannot connect to /x: No such file\n"),
	                 SV_SSH_OTHER);
	assert_int_equal(sv_ssh_classify(NULL), SV_SSH_OTHER);
	assert_string_equal(sv_last_line("a\nb c\n\n", buf, sizeof(buf)), "b c");
	assert_string_equal(sv_last_line("", buf, sizeof(buf)), "");
	assert_string_equal(sv_last_line("one", buf, sizeof(buf)), "one");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_forms),
		cmocka_unit_test(test_uri_refused),
		cmocka_unit_test(test_quote_survives_a_shell),
		cmocka_unit_test(test_argv),
		cmocka_unit_test(test_classify),
	};
	return cmocka_run_group_tests_name("sshuri", tests, NULL, NULL);
}
