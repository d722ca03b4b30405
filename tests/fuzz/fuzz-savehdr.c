/*
 * libFuzzer harness for the header of save files (savefile.h), which
 * restore reads from a file anyone may have written:
 *
 * - sv_savefile_parse() on the raw input never crashes, and what it accepts
 *   is a header line inside the input whose MAC verifies;
 * - when the input is a JSON object, the header qsupd writes for it parses
 *   back to the same object, and any one byte of that line changed (the
 *   newline aside) makes it fail: a forged or damaged header never passes.
 *
 * A broken rule prints what is wrong and aborts.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "savefile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fz_key[SV_SAVE_KEY_LEN] = {
	0x71, 0x73, 0x75, 0x70, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x6b, 0x65, 0x79, 0x2d,
	0x30, 0x31, 0x02, 0x03, 0x05, 0x07, 0x0b, 0x0d, 0x11, 0x13, 0x17, 0x1d, 0x1f, 0x25,
	0x29, 0x2b, 0x2f, 0x35,
};

static void fz_fail(const char *what) __attribute__((noreturn));
static void fz_fail(const char *what)
{
	fprintf(stderr, "fuzz-savehdr: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[600];
	size_t hlen = 0;
	json_t *h = sv_savefile_parse(fz_key, (const char *)data, size, &hlen, why, sizeof(why));
	if (h && (hlen == 0 || hlen > size || data[hlen - 1] != '\n' || !json_is_object(h)))
		fz_fail("an accepted header that is not a line of the input");
	if (!h && !why[0])
		fz_fail("a refusal without a reason");
	json_decref(h);

	json_t *o = json_loadb((const char *)data, size, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return 0;
	}
	char *line = sv_savefile_header(fz_key, o);
	if (!line)
		fz_fail("no header for a JSON object");
	size_t n = strlen(line);
	json_t *back = sv_savefile_parse(fz_key, line, n, &hlen, why, sizeof(why));
	if (!back || hlen != n || !json_equal(back, o))
		fz_fail("a header qsupd wrote does not read back");
	json_decref(back);
	/* One byte changed, at a place chosen by the input. */
	size_t at = (size_t)data[0] * 257u % (n - 1);
	line[at] ^= (char)(1u << (data[size - 1] % 7u));
	back = sv_savefile_parse(fz_key, line, n, &hlen, why, sizeof(why));
	if (back)
		fz_fail("a header with a changed byte was accepted");
	free(line);
	json_decref(o);
	return 0;
}
