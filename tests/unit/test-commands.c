/*
 * The command table against qsupd(8): the read-only verbs that SECURITY
 * lists are exactly the table's entries without SV_CMD_MUTATES, and every
 * verb of the table is described under CONTROL PROTOCOL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "commands.h"
#include "testutil.h"

/* man/qsupd.8, one malloc'd line per element, NULL-terminated. */
static char **man_lines(void)
{
	char path[1024], buf[4096];
	snprintf(path, sizeof(path), "%s/man/qsupd.8", t_srcdir());
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot read %s", path);
	char **v = NULL;
	size_t n = 0;
	while (fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		v = realloc(v, (n + 2) * sizeof(*v));
		v[n++] = strdup(buf);
	}
	fclose(f);
	v[n] = NULL;
	return v;
}

static void free_lines(char **v)
{
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

/* Index of the line that is exactly text, at or after from; -1 if none. */
static long find_line(char **v, long from, const char *text)
{
	for (long i = from; from >= 0 && v[i]; i++)
		if (strcmp(v[i], text) == 0)
			return i;
	return -1;
}

/* The words of a ".Cm a , b , c ." line (punctuation and "and" dropped),
 * joined with single spaces into out. */
static void cm_words(const char *line, char *out, size_t size)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s", line + 4);
	out[0] = '\0';
	for (char *save, *w = strtok_r(tmp, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (!strcmp(w, ",") || !strcmp(w, ".") || !strcmp(w, ";") || !strcmp(w, "and"))
			continue;
		snprintf(out + strlen(out), size - strlen(out), "%s%s", *out ? " " : "", w);
	}
}

/* The table's read-only verbs, sorted, space-separated. */
static void table_readonly(char *out, size_t size)
{
	const char *names[64];
	size_t n = 0;
	const struct sv_command *c;
	for (size_t i = 0; (c = sv_command_at(i)) && n < 64; i++)
		if (!(c->flags & SV_CMD_MUTATES))
			names[n++] = c->name;
	for (size_t i = 1; i < n; i++)   /* insertion sort: a handful */
		for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			const char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? " " : "", names[i]);
}

static void test_readonly_verbs_documented(void **state)
{
	(void)state;
	char **v = man_lines();
	long sec = find_line(v, 0, ".Sh SECURITY");
	assert_true(sec >= 0);
	long at = -1;
	for (long i = sec + 1; v[i] && strncmp(v[i], ".Sh ", 4) != 0; i++)
		if (strstr(v[i], "read-only verbs, which are:")) {
			at = i + 1;
			break;
		}
	if (at < 0 || strncmp(v[at], ".Cm ", 4) != 0)
		fail_msg("SECURITY has no \"read-only verbs, which are:\" then a .Cm line");
	char man[1024], table[1024];
	cm_words(v[at], man, sizeof(man));
	table_readonly(table, sizeof(table));
	printf("# note: read-only verbs: %s\n", table);
	if (strcmp(man, table) != 0)
		fail_msg("qsupd(8) SECURITY lists \"%s\"; the command table's read-only verbs "
		         "(sorted) are \"%s\"", man, table);
	free_lines(v);
}

static void test_every_verb_described(void **state)
{
	(void)state;
	char **v = man_lines();
	long from = find_line(v, 0, ".Sh CONTROL PROTOCOL");
	long to = find_line(v, from, ".Sh SECURITY");
	assert_true(from >= 0 && to > from);
	const struct sv_command *c;
	int missing = 0;
	for (size_t i = 0; (c = sv_command_at(i)); i++) {
		bool found = false;
		for (long k = from; k < to && !found; k++) {
			char words[1024], *w, *save;
			if (strncmp(v[k], ".It Cm ", 7) != 0)
				continue;
			cm_words(v[k] + 3, words, sizeof(words));
			for (w = strtok_r(words, " ", &save); w && !found; w = strtok_r(NULL, " ", &save))
				found = strcmp(w, c->name) == 0;
		}
		if (!found) {
			printf("# %s is not described in qsupd(8), CONTROL PROTOCOL\n", c->name);
			missing++;
		}
	}
	assert_int_equal(missing, 0);
	free_lines(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readonly_verbs_documented),
		cmocka_unit_test(test_every_verb_described),
	};
	return cmocka_run_group_tests_name("commands", tests, NULL, NULL);
}
