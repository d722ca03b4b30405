/*
 * Golden tests for profile parsing and the argv builder, one cmocka test per
 * case. A case is tests/argv/NAME.ini (and every profiles/NAME.ini, with its
 * expected files in tests/argv/profiles/). Expected output:
 *   NAME.args  the argv, one element per line (the profile is accepted)
 *   NAME.err   the exact error text (the profile is rejected)
 *   NAME.warn  warnings, when there are any
 *   NAME.fds   the fds qsupd must hand QEMU, one per line
 * Input besides the profile: NAME.chains, when present, gives drives
 * backing chains (lines "DRIVE-ID PATH FORMAT", top-down).
 * The source dir is written @SRCDIR@ so that the files do not depend on
 * where the repository is. Host facts are fixed: KVM usable, run dir
 * /run/qsup; cases named nokvm-* run with KVM unusable, vhost-* with
 * /dev/vhost-net usable. One managed network exists, "default", on the
 * bridge qsup-default (any other network name is unknown to the host).
 * QSUP_REGENERATE=1 rewrites the expected files (review them in git diff).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* The host's managed networks in these tests: "default" alone. */
static const char *net_bridge(void *ctx, const char *network)
{
	(void)ctx;
	return network && !strcmp(network, "default") ? "qsup-default" : NULL;
}
#include "util.h"

struct gcase {
	char *name;             /* test name */
	char *ini;              /* absolute path of the profile */
	char *expect;           /* expected-file path without extension */
	bool nokvm;
	bool vhost;
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

/* The case's backing chains (NAME.chains), or NULL when it has none. */
static struct sv_chain *read_chains(const struct gcase *gc, const struct sv_profile *p)
{
	char path[4096], id[64], file[1024], fmt[32];
	struct sv_chain *ch;
	FILE *f;

	snprintf(path, sizeof(path), "%s.chains", gc->expect);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	ch = calloc(p->ndrives + 1, sizeof(*ch));
	assert_non_null(ch);
	while (fscanf(f, "%63s %1023s %31s", id, file, fmt) == 3) {
		int i = sv_profile_find_device(p, id);

		assert_true(i >= 0 && (size_t)i < p->ndrives && ch[i].n < SV_CHAIN_MAX);
		ch[i].layers[ch[i].n].path = strdup(file);
		ch[i].layers[ch[i].n++].format = strdup(fmt);
	}
	fclose(f);
	return ch;
}

/* The fds, one line each: "FD KIND [MODE] WHAT: SOURCE". */
static char *fds_text(const struct sv_argv *a)
{
	static const char *const kinds[] = { "file", "read", "tap", "bridge", "vhost" };
	char *buf = NULL;
	size_t len = 0;
	FILE *m;

	if (!a->nfds)
		return NULL;
	m = open_memstream(&buf, &len);
	assert_non_null(m);
	for (size_t i = 0; i < a->nfds; i++) {
		const struct sv_fd_need *n = &a->fds[i];
		int acc = n->flags & O_ACCMODE;
		char mac[18];

		sv_mac_format(n->mac, mac);
		fprintf(m, "%d %s%s %s: %s%s%s\n", n->fd, kinds[n->kind],
		        n->kind != SV_FD_FILE ? "" : acc == O_RDWR ? " rw"
		        : acc == O_WRONLY ? " append" : " ro", n->what,
		        n->path ? n->path : n->ifname ? n->ifname : n->bridge,
		        n->kind == SV_FD_BRIDGE ? " mac " : "",
		        n->kind == SV_FD_BRIDGE ? mac : "");
	}
	fclose(m);
	return buf;
}

/* Run one case: the profile's errors, or the builder's error, or the argv,
 * fds and warnings, with the source dir made @SRCDIR@. */
static void run_case(const struct gcase *gc, char **args, char **err, char **warn,
                     char **fds)
{
	struct sv_strv errs = { 0 };
	struct sv_profile *p = NULL;
	struct sv_error e = { 0 };
	struct sv_chain *chains = NULL;
	struct sv_facts f;
	struct sv_argv a;
	char *raw = NULL;

	*args = *err = *warn = *fds = NULL;
	if (sv_profile_load(gc->ini, &p, &errs) < 0) {
		raw = join(errs.v, errs.n);
	} else {
		assert_int_equal(sv_facts_init(&f, "/run/qsup", p->name), 0);
		f.kvm_usable = !gc->nokvm;
		f.vhost_net = gc->vhost;
		f.net_bridge = net_bridge;
		f.chains = chains = read_chains(gc, p);
		if (sv_argv_build(p, &f, &a, &e) < 0) {
			assert_true(strlen(e.msg) > 0);
			assert_int_not_equal(asprintf(&raw, "%s\n", e.msg), -1);
		} else {
			*args = subst(join(a.argv, a.argc));
			*warn = subst(join(a.warnings.v, a.warnings.n));
			*fds = subst(fds_text(&a));
			sv_argv_free(&a);
		}
		for (size_t i = 0; chains && i < p->ndrives; i++)
			sv_chain_free(&chains[i]);
		free(chains);
	}
	*err = subst(raw);
	sv_strv_free(&errs);
	sv_profile_free(p);
}

static void test_golden(void **state)
{
	const struct gcase *gc = *state;
	char *args, *err, *warn, *fds, *args2, *err2, *warn2, *fds2;

	run_case(gc, &args, &err, &warn, &fds);
	if (getenv("QSUP_REGENERATE") && *getenv("QSUP_REGENERATE") == '1') {
		write_or_remove(gc->expect, ".args", args);
		write_or_remove(gc->expect, ".err", err);
		write_or_remove(gc->expect, ".warn", warn);
		write_or_remove(gc->expect, ".fds", fds);
	} else {
		expect_file(gc->expect, ".args", args);
		expect_file(gc->expect, ".err", err);
		expect_file(gc->expect, ".warn", warn);
		expect_file(gc->expect, ".fds", fds);
	}
	/* Determinism: the same input gives the same output. */
	run_case(gc, &args2, &err2, &warn2, &fds2);
	assert_true(!args == !args2 && (!args || !strcmp(args, args2)));
	assert_true(!err == !err2 && (!err || !strcmp(err, err2)));
	free(args);
	free(err);
	free(warn);
	free(args2);
	free(err2);
	free(warn2);
	free(fds);
	free(fds2);
}

static int ini_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 4 && !strcmp(d->d_name + n - 4, ".ini");
}

/* BLOCK_IO_ERROR names a block node: the disk id comes back from the
 * names the builder (and hot-plug) give. */
static void test_node_device(void **state)
{
	static const struct { const char *node, *id; bool ok; } rows[] = {
		{ "drive.data", "data", true }, { "file.data", "data", true },
		{ "drive.root.b2", "root", true }, { "file.root.b10", "root", true },
		{ "hpdrive.scratch-1", "scratch-1", true }, { "drive.a_b", "a_b", true },
		{ "drive.data.x", "drive.data.x", false }, { "drive.data.b", "drive.data.b", false },
		{ "drive.9x", "drive.9x", false }, { "drive.", "drive.", false },
		{ "nodots", "nodots", false }, { "", "", false },
		{ "#block123", "#block123", false },
	};
	char id[64];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(sv_argv_node_device(rows[i].node, id, sizeof(id)), rows[i].ok);
		assert_string_equal(id, rows[i].id);
	}
	assert_true(sv_argv_node_device("drive.data", id, 3));   /* cut, terminated */
	assert_string_equal(id, "da");
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
		gc->vhost = !strncmp(ents[i]->d_name, "vhost-", 6);
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
	tests = calloc(n + 1, sizeof(*tests));
	if (!tests)
		return 1;
	for (size_t i = 0; i < n; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = test_golden;
		tests[i].initial_state = &cases[i];
	}
	tests[n].name = "node_device";
	tests[n].test_func = test_node_device;
	r = _cmocka_run_group_tests("argv", tests, n + 1, NULL, NULL);
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
