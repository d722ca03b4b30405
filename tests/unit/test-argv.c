/*
 * Golden tests for profile parsing and the argv builder, one cmocka test per
 * case. A case is tests/argv/NAME.ini (and every profiles/NAME.ini, with its
 * expected files in tests/argv/profiles/). Expected output:
 *   NAME.args  the argv, one element per line (the profile is accepted)
 *   NAME.err   the exact error text (the profile is rejected)
 *   NAME.warn  warnings, when there are any
 * The source dir is written @SRCDIR@ so that the files do not depend on
 * where the repository is. Host facts are fixed: KVM usable, run dir
 * /run/qsup; cases named nokvm-* run with KVM unusable.
 * QSUP_REGENERATE=1 rewrites the expected files (review them in git diff).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "argv.h"
#include "profile.h"
#include "util.h"

struct gcase {
	char *name;             /* test name */
	char *ini;              /* absolute path of the profile */
	char *expect;           /* expected-file path without extension */
	bool nokvm;
};

static char *srcdir;

static char *src_dir(void)
{
	const char *s = getenv("QSUP_SRCDIR");
	char cwd[4096], *p = NULL;

	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (!s || !*s)
		return strdup(cwd);
	if (s[0] == '/')
		p = strdup(s);
	else if (asprintf(&p, "%s/%s", cwd, s) < 0)
		return NULL;
	if (p)
		sv_path_normalize(p);
	return p;
}

/* Every occurrence of from in s replaced by to; malloc'd. */
static char *replace_all(const char *s, const char *from, const char *to)
{
	size_t nf = strlen(from), nt = strlen(to), n = 0;
	const char *p;
	char *out, *o;

	for (p = s; (p = strstr(p, from)); p += nf)
		n++;
	out = malloc(strlen(s) + n * nt + 1);
	assert_non_null(out);
	for (o = out, p = s;;) {
		const char *hit = strstr(p, from);

		if (!hit)
			break;
		memcpy(o, p, (size_t)(hit - p));
		o += hit - p;
		memcpy(o, to, nt);
		o += nt;
		p = hit + nf;
	}
	strcpy(o, p);
	return out;
}

/* s with the source dir written @SRCDIR@; frees s. NULL stays NULL. */
static char *subst(char *s)
{
	char *r = s ? replace_all(s, srcdir, "@SRCDIR@") : NULL;

	free(s);
	return r;
}

/* Join lines with a newline after each; NULL when there are none. */
static char *join(char **v, size_t n)
{
	size_t len = 1;
	char *out, *o;

	if (n == 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	out = o = malloc(len);
	assert_non_null(out);
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "%s\n", v[i]);
	return out;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		return NULL;
	FILE *m = open_memstream(&buf, &len);

	assert_non_null(m);
	for (int c; (c = fgetc(f)) != EOF;)
		fputc(c, m);
	fclose(m);
	fclose(f);
	return buf;
}

static void write_or_remove(const char *base, const char *ext, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s%s", base, ext);
	if (!text) {
		if (unlink(path) < 0 && errno != ENOENT)
			fail_msg("cannot remove %s: %s", path, strerror(errno));
		return;
	}
	f = fopen(path, "w");
	if (!f)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

/* Compare actual (NULL: no such output) with the expected file base+ext. */
static void expect_file(const char *base, const char *ext, const char *actual)
{
	char path[4096];
	char *want;

	snprintf(path, sizeof(path), "%s%s", base, ext);
	want = read_all(path);
	if (!want && !actual)
		return;
	if (!want)
		fail_msg("%s is missing; actual output:\n%s(QSUP_REGENERATE=1 writes it)",
		         path, actual);
	if (!actual)
		fail_msg("%s exists but there is no such output; expected:\n%s", path, want);
	if (strcmp(want, actual)) {
		const char *a = actual, *w = want;
		int line = 1;

		for (; *a && *a == *w; a++, w++)
			line += *a == '\n';
		fail_msg("%s differs at line %d\n--- expected\n%s--- actual\n%s", path,
		         line, want, actual);
	}
	free(want);
}

/* Run one case: the profile's errors, or the builder's error, or the argv
 * and warnings, with the source dir made @SRCDIR@. */
static void run_case(const struct gcase *gc, char **args, char **err, char **warn)
{
	struct sv_strv errs = { 0 };
	struct sv_profile *p = NULL;
	struct sv_error e = { 0 };
	struct sv_facts f;
	struct sv_argv a;
	char *raw = NULL;

	*args = *err = *warn = NULL;
	if (sv_profile_load(gc->ini, &p, &errs) < 0) {
		raw = join(errs.v, errs.n);
	} else {
		assert_int_equal(sv_facts_init(&f, "/run/qsup", p->name), 0);
		f.kvm_usable = !gc->nokvm;
		if (sv_argv_build(p, &f, &a, &e) < 0) {
			assert_true(strlen(e.msg) > 0);
			assert_int_not_equal(asprintf(&raw, "%s\n", e.msg), -1);
		} else {
			*args = subst(join(a.argv, a.argc));
			*warn = subst(join(a.warnings.v, a.warnings.n));
			sv_argv_free(&a);
		}
	}
	*err = subst(raw);
	sv_strv_free(&errs);
	sv_profile_free(p);
}

static void test_golden(void **state)
{
	const struct gcase *gc = *state;
	char *args, *err, *warn, *args2, *err2, *warn2;

	run_case(gc, &args, &err, &warn);
	if (getenv("QSUP_REGENERATE") && *getenv("QSUP_REGENERATE") == '1') {
		write_or_remove(gc->expect, ".args", args);
		write_or_remove(gc->expect, ".err", err);
		write_or_remove(gc->expect, ".warn", warn);
	} else {
		expect_file(gc->expect, ".args", args);
		expect_file(gc->expect, ".err", err);
		expect_file(gc->expect, ".warn", warn);
	}
	/* Determinism: the same input gives the same output. */
	run_case(gc, &args2, &err2, &warn2);
	assert_true(!args == !args2 && (!args || !strcmp(args, args2)));
	assert_true(!err == !err2 && (!err || !strcmp(err, err2)));
	free(args);
	free(err);
	free(warn);
	free(args2);
	free(err2);
	free(warn2);
}

static int ini_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 4 && !strcmp(d->d_name + n - 4, ".ini");
}

/* Append the cases of dir (relative to the source dir) to *cases. */
static void add_cases(const char *dir, const char *expect_dir, const char *prefix,
                      struct gcase **cases, size_t *n)
{
	struct dirent **ents;
	char path[4096];
	int m;

	snprintf(path, sizeof(path), "%s/%s", srcdir, dir);
	m = scandir(path, &ents, ini_filter, alphasort);
	if (m < 0) {
		fprintf(stderr, "cannot list %s: %s\n", path, strerror(errno));
		exit(1);
	}
	*cases = realloc(*cases, (*n + (size_t)m) * sizeof(**cases));
	assert_non_null(*cases);
	for (int i = 0; i < m; i++) {
		struct gcase *gc = &(*cases)[(*n)++];
		size_t len = strlen(ents[i]->d_name) - 4;

		memset(gc, 0, sizeof(*gc));
		if (asprintf(&gc->name, "%s%.*s", prefix, (int)len, ents[i]->d_name) < 0 ||
		    asprintf(&gc->ini, "%s/%s/%s", srcdir, dir, ents[i]->d_name) < 0 ||
		    asprintf(&gc->expect, "%s/%s/%.*s", srcdir, expect_dir, (int)len,
		             ents[i]->d_name) < 0)
			exit(1);
		gc->nokvm = !strncmp(ents[i]->d_name, "nokvm-", 6);
		free(ents[i]);
	}
	free(ents);
}

int main(void)
{
	struct gcase *cases = NULL;
	struct CMUnitTest *tests;
	size_t n = 0;
	int r;

	srcdir = src_dir();
	if (!srcdir)
		return 1;
	add_cases("tests/argv", "tests/argv", "", &cases, &n);
	add_cases("profiles", "tests/argv/profiles", "profiles/", &cases, &n);
	tests = calloc(n, sizeof(*tests));
	if (!tests)
		return 1;
	for (size_t i = 0; i < n; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = test_golden;
		tests[i].initial_state = &cases[i];
	}
	r = _cmocka_run_group_tests("argv", tests, n, NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		free(cases[i].name);
		free(cases[i].ini);
		free(cases[i].expect);
	}
	free(cases);
	free(tests);
	free(srcdir);
	return r;
}
