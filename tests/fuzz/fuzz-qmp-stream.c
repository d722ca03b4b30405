/*
 * libFuzzer harness for libqmp's pure layer: an arbitrary byte stream, cut
 * into chunks at places chosen by the input itself, goes through the framer
 * with a small line cap, and every object is classified. Nothing may crash,
 * leak or read out of bounds. `make fuzz` builds it with clang; `make check`
 * replays tests/fuzz/corpus/qmp-stream/ through it (tests/unit/test-fuzz-replay.c).
 */
#include <stddef.h>
#include <stdint.h>

#include "qmp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int classify(json_t *msg, void *arg)
{
	size_t *n = arg;
	enum qmp_msg_kind k = qmp_msg_kind(msg);
	*n += (size_t)k;
	return k == QMP_MSG_INVALID && json_object_size(msg) == 0 ? 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp_framer f;
	size_t n = 0;
	/* The first byte picks the chunk size, the second the line cap. */
	size_t chunk = size > 0 ? (size_t)data[0] % 17 + 1 : 1;
	size_t cap = size > 1 ? (size_t)data[1] * 4 + 2 : 64;
	qmp_framer_init(&f, cap);
	for (size_t off = 2; off < size; off += chunk) {
		size_t len = size - off < chunk ? size - off : chunk;
		if (qmp_framer_feed(&f, (const char *)data + off, len, classify, &n) != 0)
			break;
	}
	qmp_framer_free(&f);
	return 0;
}
