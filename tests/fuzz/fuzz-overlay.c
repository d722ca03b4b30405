/*
 * libFuzzer harness for the hot-plug overlay (NAME.d/hotplug.ini, written by
 * attach --persist): the input, up to its first NUL (the parser takes a C
 * string), is parsed against a small fixed profile. The contract of
 * sv_overlay_parse() must hold:
 *
 * - it returns 0, -1 or -2, always with an array of specs, and messages
 *   exactly when it does not return 0, each line naming the file;
 * - every spec has a kind, an id and "persist": true;
 * - unless it returned -2 ("the file holds something a rewrite would lose"),
 *   rewriting loses nothing: sv_overlay_format() either refuses, or gives a
 *   text that parses back to the same specs and the same result;
 * - a line too long for inih (INI_MAX_LINE) is never cut silently: the
 *   result is -2 (the fuzzer found it was; corpus/overlay/known-line-cut).
 *   FZ_KNOWN_LINE_CUT=1 turns the check off, should it ever be needed.
 *
 * A broken rule prints what is wrong and aborts (libFuzzer and the replay in
 * make check, tests/unit/test-fuzz-replay.c, both notice). Disk files are
 * looked up on the host (the attach verb's check), read-only.
 */
#include <ini.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "overlay.h"
#include "profile.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_OVERLAY "/fuzz/guest.d/hotplug.ini"
#ifndef FZ_KNOWN_LINE_CUT
#define FZ_KNOWN_LINE_CUT 0
#endif

static void fz_fail(const char *what, const char *text) __attribute__((noreturn));
static void fz_fail(const char *what, const char *text)
{
	fprintf(stderr, "fuzz-overlay: %s\n--- overlay text\n%s\n---\n", what,
	        text ? text : "(null)");
	abort();
}

#define FZ_REQUIRE(cond, what, text) \
	do { if (!(cond)) fz_fail(what, text); } while (0)

/* Memory and vCPU hot-plug room, a NIC and a SCSI disk (so that an overlay
 * disk may ask for bus = scsi). */
static struct sv_profile *fz_profile(void)
{
	static const char text[] =
		"[guest]\nmemory = 512M\nmax-memory = 2G\nslots = 4\ncpus = 1\nmax-cpus = 4\n"
		"[disk.root]\nfile = /dev/null\nformat = raw\nbus = scsi\n"
		"[nic.lan]\ntype = user\n";
	struct sv_profile *p = NULL;
	struct sv_strv errs = { 0 };

	if (sv_profile_parse("/fuzz/guest.ini", text, sizeof(text) - 1, &p, &errs) < 0)
		fz_fail("the fixed profile does not parse", errs.n ? errs.v[0] : NULL);
	sv_strv_free(&errs);
	return p;
}

/* Every message line starts with the file's path. */
static void fz_check_errs(const char *errs, const char *text)
{
	const char *l = errs;

	FZ_REQUIRE(*l, "empty messages", text);
	while (*l) {
		FZ_REQUIRE(!strncmp(l, FZ_OVERLAY ":", strlen(FZ_OVERLAY) + 1),
		           "a message line does not name the file", text);
		l = strchrnul(l, '\n');
		l += *l == '\n';
	}
}

static void fz_check_result(int r, json_t *specs, const char *errs, const char *text)
{
	size_t i;
	json_t *s;

	FZ_REQUIRE(r == 0 || r == -1 || r == -2, "unexpected result", text);
	FZ_REQUIRE(json_is_array(specs), "no spec array", text);
	FZ_REQUIRE((r == 0) == (errs == NULL), "messages and result disagree", text);
	if (errs)
		fz_check_errs(errs, text);
	json_array_foreach(specs, i, s) {
		FZ_REQUIRE(json_is_string(json_object_get(s, "kind")) &&
		           json_is_string(json_object_get(s, "id")) &&
		           json_is_true(json_object_get(s, "persist")),
		           "a spec without kind, id or persist", text);
	}
}

/* Does text hold a line that, stripped as overlay.c's reader strips it, does
 * not fit inih's line buffer (the text, '\n' and the NUL)? */
static bool fz_line_too_long(const char *text)
{
	for (const char *l = text; *l; ) {
		size_t len = strcspn(l, "\n"), skip = strspn(l, " \t");
		const char *next = l + len + (l[len] == '\n');

		skip = skip < len ? skip : len;
		while (len > skip && strchr("\r \t", l[len - 1]))
			len--;
		if (len - skip + 2 > INI_MAX_LINE)
			return true;
		l = next;
	}
	return false;
}

/* Unless the file was refused for rewriting: format, parse again, compare. */
static void fz_check_rewrite(const struct sv_profile *p, int r, json_t *specs,
                             const char *text)
{
	char *again_text, *errs = NULL;
	json_t *again = NULL;
	int r2;

	if (r == -2 || !(again_text = sv_overlay_format("guest", specs)))
		return;
	if (FZ_KNOWN_LINE_CUT && fz_line_too_long(again_text)) {
		free(again_text);       /* the known bug again: the reader would cut */
		return;
	}
	r2 = sv_overlay_parse(p, FZ_OVERLAY, again_text, &again, &errs);
	if (r2 != r || !json_equal(specs, again)) {
		fprintf(stderr, "--- rewritten as\n%s\n", again_text);
		fz_fail("the rewritten overlay does not read back the same", text);
	}
	json_decref(again);
	free(errs);
	free(again_text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sv_profile *p = fz_profile();
	char *text = strndup((const char *)data, size), *errs = NULL;
	json_t *specs = NULL;
	int r;

	if (!text)
		abort();
	r = sv_overlay_parse(p, FZ_OVERLAY, text, &specs, &errs);
	fz_check_result(r, specs, errs, text);
	if (fz_line_too_long(text))
		FZ_REQUIRE(FZ_KNOWN_LINE_CUT || r == -2, "a line too long for inih was cut "
		           "and the rest parsed, instead of refusing the file (-2)", text);
	else
		fz_check_rewrite(p, r, specs, text);
	json_decref(specs);
	free(errs);
	free(text);
	sv_profile_free(p);
	return 0;
}
