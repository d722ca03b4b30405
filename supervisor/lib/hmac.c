/*
 * SHA-256 after FIPS 180-4 (sections 4.1.2, 4.2.2, 5.1.1, 5.3.3, 6.2) and
 * HMAC after RFC 2104. Written for clarity over speed: save-file headers are
 * small. Words are read and written big-endian byte by byte, so the input
 * needs no alignment and the host's byte order does not matter.
 */
#include <string.h>

#include "hmac.h"

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* The message schedule W[0..63] of one block (6.2.2 step 1). */
static void schedule(const uint8_t block[SV_SHA256_BLOCK], uint32_t w[64])
{
	for (int t = 0; t < 16; t++)
		w[t] = load_be32(block + 4 * t);
	for (int t = 16; t < 64; t++) {
		uint32_t s0 = ror(w[t - 15], 7) ^ ror(w[t - 15], 18) ^ (w[t - 15] >> 3);
		uint32_t s1 = ror(w[t - 2], 17) ^ ror(w[t - 2], 19) ^ (w[t - 2] >> 10);

		w[t] = w[t - 16] + s0 + w[t - 7] + s1;
	}
}

/* Process one 64-byte block into the chaining state (6.2.2 steps 2-4). */
static void compress(uint32_t h[8], const uint8_t block[SV_SHA256_BLOCK])
{
	uint32_t w[64], v[8];

	schedule(block, w);
	memcpy(v, h, sizeof(v));
	for (int t = 0; t < 64; t++) {
		uint32_t e = v[4], a = v[0];
		uint32_t t1 = v[7] + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) +
		              ((e & v[5]) ^ (~e & v[6])) + K[t] + w[t];
		uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) +
		              ((a & v[1]) ^ (a & v[2]) ^ (v[1] & v[2]));

		memmove(v + 1, v, 7 * sizeof(v[0]));
		v[4] += t1;
		v[0] = t1 + t2;
	}
	for (int i = 0; i < 8; i++)
		h[i] += v[i];
}

void sv_sha256_init(struct sv_sha256 *c)
{
	static const uint32_t h0[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(c->h, h0, sizeof(h0));
	c->bytes = 0;
	c->used = 0;
}

void sv_sha256_update(struct sv_sha256 *c, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (!len)
		return;         /* data may be NULL */
	c->bytes += len;
	if (c->used) {
		size_t n = SV_SHA256_BLOCK - c->used < len ? SV_SHA256_BLOCK - c->used : len;

		memcpy(c->block + c->used, p, n);
		c->used += n;
		p += n;
		len -= n;
		if (c->used < SV_SHA256_BLOCK)
			return;
		compress(c->h, c->block);
		c->used = 0;
	}
	for (; len >= SV_SHA256_BLOCK; p += SV_SHA256_BLOCK, len -= SV_SHA256_BLOCK)
		compress(c->h, p);
	if (len)
		memcpy(c->block, p, len);
	c->used = len;
}

/* Padding (5.1.1): 0x80, zeros, and the length in bits as 64 bits. */
void sv_sha256_final(struct sv_sha256 *c, uint8_t out[SV_SHA256_LEN])
{
	uint64_t bits = c->bytes * 8;

	c->block[c->used++] = 0x80;
	if (c->used > SV_SHA256_BLOCK - 8) {
		memset(c->block + c->used, 0, SV_SHA256_BLOCK - c->used);
		compress(c->h, c->block);
		c->used = 0;
	}
	memset(c->block + c->used, 0, SV_SHA256_BLOCK - 8 - c->used);
	store_be32(c->block + 56, (uint32_t)(bits >> 32));
	store_be32(c->block + 60, (uint32_t)bits);
	compress(c->h, c->block);
	for (int i = 0; i < 8; i++)
		store_be32(out + 4 * i, c->h[i]);
	explicit_bzero(c, sizeof(*c));
}

/* One HMAC pass: SHA-256 of (k0 XOR pad) followed by msg. */
static void hmac_pass(const uint8_t k0[SV_SHA256_BLOCK], uint8_t pad, const void *msg,
                      size_t len, uint8_t out[SV_SHA256_LEN])
{
	uint8_t block[SV_SHA256_BLOCK];
	struct sv_sha256 c;

	for (int i = 0; i < SV_SHA256_BLOCK; i++)
		block[i] = k0[i] ^ pad;
	sv_sha256_init(&c);
	sv_sha256_update(&c, block, sizeof(block));
	sv_sha256_update(&c, msg, len);
	sv_sha256_final(&c, out);
	explicit_bzero(block, sizeof(block));
}

void sv_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                    uint8_t out[SV_SHA256_LEN])
{
	uint8_t k0[SV_SHA256_BLOCK] = { 0 }, inner[SV_SHA256_LEN];

	if (keylen > SV_SHA256_BLOCK) {
		struct sv_sha256 c;

		sv_sha256_init(&c);
		sv_sha256_update(&c, key, keylen);
		sv_sha256_final(&c, k0);
	} else if (keylen) {
		memcpy(k0, key, keylen);
	}
	hmac_pass(k0, 0x36, msg, msglen, inner);
	hmac_pass(k0, 0x5c, inner, sizeof(inner), out);
	explicit_bzero(k0, sizeof(k0));
	explicit_bzero(inner, sizeof(inner));
}

bool sv_digest_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	volatile uint8_t diff = 0;      /* volatile: no early exit */

	for (size_t i = 0; i < len; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

void sv_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}
