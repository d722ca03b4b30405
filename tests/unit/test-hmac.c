/*
 * SHA-256 and HMAC-SHA-256 (supervisor/lib/hmac.c) against published vectors:
 * the NIST FIPS 180-4 examples (empty, "abc", the 448- and 896-bit messages,
 * one million 'a'), lengths around the padding boundaries, streaming in odd
 * chunks, every RFC 4231 HMAC-SHA-256 test case, and the helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hmac.h"

static void sha256_hex(const void *msg, size_t len, char hex[2 * SV_SHA256_LEN + 1])
{
	struct sv_sha256 c;
	uint8_t d[SV_SHA256_LEN];

	sv_sha256_init(&c);
	sv_sha256_update(&c, msg, len);
	sv_sha256_final(&c, d);
	sv_hex(d, sizeof(d), hex);
}

static void hmac_hex(const void *key, size_t keylen, const void *msg, size_t len,
                     char hex[2 * SV_SHA256_LEN + 1])
{
	uint8_t d[SV_SHA256_LEN];

	sv_hmac_sha256(key, keylen, msg, len, d);
	sv_hex(d, sizeof(d), hex);
}

/* ------------------------------------------------------------ SHA-256 */

static void test_nist_short(void **state)
{
	static const struct { const char *msg, *digest; } v[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		/* 448 bits */
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
		/* 896 bits */
		{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
		  "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
	};
	char hex[2 * SV_SHA256_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		sha256_hex(v[i].msg, strlen(v[i].msg), hex);
		assert_string_equal(hex, v[i].digest);
	}
	sha256_hex(NULL, 0, hex);       /* no data at all */
	assert_string_equal(hex, v[0].digest);
}

/* One million 'a', fed 1000 at a time as the NIST example does. */
static void test_nist_million(void **state)
{
	struct sv_sha256 c;
	uint8_t d[SV_SHA256_LEN];
	char a[1000], hex[2 * SV_SHA256_LEN + 1];

	(void)state;
	memset(a, 'a', sizeof(a));
	sv_sha256_init(&c);
	for (int i = 0; i < 1000; i++)
		sv_sha256_update(&c, a, sizeof(a));
	sv_sha256_final(&c, d);
	sv_hex(d, sizeof(d), hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Where the length field does or does not fit in the last block. */
static void test_padding_boundaries(void **state)
{
	static const struct { size_t n; const char *digest; } v[] = {
		{ 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
		{ 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
		{ 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
		{ 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
		{ 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
		{ 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
	};
	char a[128], hex[2 * SV_SHA256_LEN + 1];

	(void)state;
	memset(a, 'a', sizeof(a));
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		sha256_hex(a, v[i].n, hex);
		assert_string_equal(hex, v[i].digest);
	}
}

/* Any split of a message gives the one-shot digest: fixed odd chunk sizes,
 * then pseudo-random ones, over every length up to 300. */
static void test_streaming(void **state)
{
	static const size_t chunks[] = { 1, 3, 7, 13, 63, 64, 65, 127, 129 };
	uint8_t msg[300], whole[SV_SHA256_LEN], part[SV_SHA256_LEN];
	uint32_t seed = 12345;
	struct sv_sha256 c;

	(void)state;
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 131 + 7);
	for (size_t len = 0; len <= sizeof(msg); len++) {
		sv_sha256_init(&c);
		sv_sha256_update(&c, msg, len);
		sv_sha256_final(&c, whole);
		for (size_t k = 0; k <= sizeof(chunks) / sizeof(chunks[0]); k++) {
			sv_sha256_init(&c);
			for (size_t off = 0, n; off < len; off += n) {
				seed = seed * 1103515245 + 12345;
				n = k < sizeof(chunks) / sizeof(chunks[0]) ? chunks[k]
				                                           : (seed >> 16) % 100;
				n = n < len - off ? n : len - off;
				sv_sha256_update(&c, msg + off, n);
			}
			sv_sha256_final(&c, part);
			assert_memory_equal(whole, part, SV_SHA256_LEN);
		}
	}
}

/* ------------------------------------------------------------ HMAC */

/* RFC 4231 section 4, test cases 1-7. */
static void test_rfc4231(void **state)
{
	uint8_t k3[20], d3[50], k4[25], d4[50], k5[20], k6[131];
	char hex[2 * SV_SHA256_LEN + 1];

	(void)state;
	memset(k3, 0x0b, 20);
	hmac_hex(k3, 20, "Hi There", 8, hex);
	assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

	hmac_hex("Jefe", 4, "what do ya want for nothing?", 28, hex);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

	memset(k3, 0xaa, sizeof(k3));
	memset(d3, 0xdd, sizeof(d3));
	hmac_hex(k3, sizeof(k3), d3, sizeof(d3), hex);
	assert_string_equal(hex, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

	for (size_t i = 0; i < sizeof(k4); i++)
		k4[i] = (uint8_t)(i + 1);
	memset(d4, 0xcd, sizeof(d4));
	hmac_hex(k4, sizeof(k4), d4, sizeof(d4), hex);
	assert_string_equal(hex, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");

	/* Case 5 checks the output truncated to 128 bits. */
	memset(k5, 0x0c, sizeof(k5));
	hmac_hex(k5, sizeof(k5), "Test With Truncation", 20, hex);
	assert_memory_equal(hex, "a3b6167473100ee06e0c796c2955552b", 32);

	/* Cases 6 and 7: a 131-byte key, hashed first. */
	memset(k6, 0xaa, sizeof(k6));
	const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
	hmac_hex(k6, sizeof(k6), m6, strlen(m6), hex);
	assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	const char *m7 = "This is a test using a larger than block-size key and a larger "
	                 "than block-size data. The key needs to be hashed before being "
	                 "used by the HMAC algorithm.";
	hmac_hex(k6, sizeof(k6), m7, strlen(m7), hex);
	assert_string_equal(hex, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

/* Keys of exactly one block (used as is) and one byte more (hashed), and
 * the empty key and message. */
static void test_key_lengths(void **state)
{
	char k[65], hex[2 * SV_SHA256_LEN + 1];

	(void)state;
	memset(k, 'k', sizeof(k));
	hmac_hex(k, 64, "msg", 3, hex);
	assert_string_equal(hex, "d62ad25bb128e96ab6ef43464aaf2bb91b5b85f013381e9ba6be747e8d0911b2");
	hmac_hex(k, 65, "msg", 3, hex);
	assert_string_equal(hex, "c65585780e821bd312cfaa440c33cb28d6af6b323d4977ae83934834ce589e38");
	hmac_hex(NULL, 0, NULL, 0, hex);
	assert_string_equal(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* ------------------------------------------------------------ helpers */

static void test_digest_equal(void **state)
{
	uint8_t a[SV_SHA256_LEN], b[SV_SHA256_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = b[i] = (uint8_t)(i * 7);
	assert_true(sv_digest_equal(a, b, sizeof(a)));
	assert_true(sv_digest_equal(a, b, 0));
	for (size_t i = 0; i < sizeof(a); i++) {
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			assert_false(sv_digest_equal(a, b, sizeof(a)));
			b[i] ^= (uint8_t)(1u << bit);
		}
	}
	assert_true(sv_digest_equal(a, b, sizeof(a)));
}

static void test_hex(void **state)
{
	static const uint8_t in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	char out[2 * sizeof(in) + 1];

	(void)state;
	memset(out, 'x', sizeof(out));
	sv_hex(in, sizeof(in), out);
	assert_string_equal(out, "00017f80abff");
	sv_hex(in, 0, out);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nist_short),
		cmocka_unit_test(test_nist_million),
		cmocka_unit_test(test_padding_boundaries),
		cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_rfc4231),
		cmocka_unit_test(test_key_lengths),
		cmocka_unit_test(test_digest_equal),
		cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests_name("hmac", tests, NULL, NULL);
}
