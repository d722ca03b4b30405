/*
 * Replays a fuzz corpus through its harness, one test per corpus file, so
 * that every input a fuzzer found interesting stays covered by make check
 * (and by make asan, where it counts most). The Makefile builds one program
 * per harness from this file, test-fuzz-replay-NAME, with
 *   -DFUZZ_HARNESS='"../fuzz/fuzz-NAME.c"' -DFUZZ_CORPUS='"NAME"'
 * (every harness defines LLVMFuzzerTestOneInput, so one program holds one).
 * A harness aborts on a broken rule; the program's missing tests then count
 * as failed, and the log names the corpus file running at the time.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"

#if !defined(FUZZ_HARNESS) || !defined(FUZZ_CORPUS)
#error "build through the Makefile: it defines FUZZ_HARNESS and FUZZ_CORPUS"
#endif

#include FUZZ_HARNESS

/* libFuzzer's default -max_len is far below this; larger files are cut. */
#define REPLAY_MAX (1 << 20)

static void replay(void **state)
{
	const char *path = *state;
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(REPLAY_MAX);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, REPLAY_MAX, f);
	fclose(f);
	/* An exact-size copy, so ASan sees a read past the input's end. */
	uint8_t *exact = malloc(n ? n : 1);
	assert_non_null(exact);
	memcpy(exact, buf, n);
	free(buf);
	fprintf(stderr, "# replaying %s\n", path);
	assert_int_equal(LLVMFuzzerTestOneInput(exact, n), 0);
	free(exact);
}

int main(void)
{
	char dir[512];
	struct dirent **ents;
	int n;

	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", t_srcdir(), FUZZ_CORPUS);
	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "cannot read %s\n", dir);
		return 1;
	}
	struct CMUnitTest *tests = calloc((size_t)n + 1, sizeof(*tests));
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
	int rc = _cmocka_run_group_tests("fuzz-replay-" FUZZ_CORPUS, tests, k, NULL, NULL);
	for (size_t i = 0; i < k; i++) {
		free((char *)tests[i].name);
		free(tests[i].initial_state);
	}
	free(tests);
	return rc;
}
