/*
 * Replays the fuzz corpora through their harnesses, one test per corpus file,
 * so that every input a fuzzer found interesting stays covered by make check
 * (and by make asan, where it counts most).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"

#include "../fuzz/fuzz-qmp-stream.c"

static void replay(void **state)
{
	const char *path = *state;
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static uint8_t buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	assert_int_equal(LLVMFuzzerTestOneInput(buf, n), 0);
}

int main(void)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/qmp-stream", t_srcdir());
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "cannot read %s\n", dir);
		return 1;
	}
	struct CMUnitTest *tests = calloc((size_t)n, sizeof(*tests));
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		if (ents[i]->d_name[0] != '.') {
			char *path;
			if (asprintf(&path, "%s/%s", dir, ents[i]->d_name) < 0)
				return 1;
			tests[k].name = strdup(ents[i]->d_name);
			tests[k].test_func = replay;
			tests[k].initial_state = path;
			k++;
		}
		free(ents[i]);
	}
	free(ents);
	int rc = _cmocka_run_group_tests("fuzz-replay", tests, k, NULL, NULL);
	for (size_t i = 0; i < k; i++) {
		free((char *)tests[i].name);
		free(tests[i].initial_state);
	}
	free(tests);
	return rc;
}
