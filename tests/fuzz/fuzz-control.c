/*
 * libFuzzer harness for control requests, the daemon's most exposed input
 * (any user who may connect): the bytes go through the control socket's
 * framer (one JSON object per line, 1 MiB cap), then every message through
 * the checks each request passes before its handler runs
 * (sv_request_parse: the request's shape and verb; sv_command_check: the
 * guest's name and the verb's own argument checks), and an attach's device
 * through sv_hotplug_check against a fixed profile, as the attach verb does.
 * Nothing may crash or leak, every refusal has a class and a reason, and a
 * request they accept names a verb of the table with an object (or no)
 * "arguments".
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "control.h"
#include "hotplug.h"
#include "profile.h"
#include "qmp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_fail(const char *what) __attribute__((noreturn));
static void fz_fail(const char *what)
{
	fprintf(stderr, "fuzz-control: %s\n", what);
	abort();
}

static const struct sv_profile *fz_profile(void)
{
	static struct sv_profile *p;
	static const char text[] =
		"[guest]\nmemory = 512M\nmax-memory = 2G\nslots = 4\ncpus = 1\nmax-cpus = 4\n"
		"[disk.root]\nfile = /dev/null\nformat = raw\nbus = scsi\n[nic.lan]\ntype = user\n";
	struct sv_strv errs = { 0 };
	if (!p && sv_profile_parse("/nonexistent/qsup-fuzz/web1.ini", text, sizeof(text) - 1, &p,
	                           &errs) < 0)
		fz_fail("the fixed profile does not parse");
	sv_strv_free(&errs);
	return p;
}

static int on_message(json_t *msg, void *arg)
{
	const struct sv_command *cmd = NULL;
	json_t *args = NULL;
	struct sv_error err = { 0 }, hperr = { 0 };
	(void)arg;
	if (sv_request_parse(msg, &cmd, &args, &err) < 0) {
		if (!err.msg[0] || !err.cls || cmd)
			fz_fail("a refused request without a reason, or with a verb");
		return 0;
	}
	if (!cmd || sv_command_find(cmd->name) != cmd || (args && !json_is_object(args)))
		fz_fail("an accepted request without a verb of the table");
	int rc = sv_command_check(cmd, args, &err);
	if (rc < 0 && (!err.msg[0] || !err.cls))
		fz_fail("refused arguments without a reason");
	if (rc == 0 && (cmd->flags & SV_CMD_GUEST) && !json_is_string(json_object_get(args, "name")))
		fz_fail("a guest verb accepted without a name");
	if (rc == 0 && !strcmp(cmd->name, "attach") &&
	    sv_hotplug_check(fz_profile(), args, &hperr) < 0 && (!hperr.msg[0] || !hperr.cls))
		fz_fail("a refused device without a reason");
	return 0;
}

/* As the control socket does: a line that is not JSON is answered, and
 * the stream goes on. */
static int on_bad_line(void *arg)
{
	(void)arg;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp_framer f;
	qmp_framer_init(&f, SV_CONTROL_MAX_LINE);
	f.on_bad_line = on_bad_line;
	qmp_framer_feed(&f, (const char *)data, size, on_message, NULL);
	qmp_framer_free(&f);
	return 0;
}
