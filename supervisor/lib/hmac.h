/*
 * SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), for authenticating the
 * header of save files with a host key. Self-contained: no crypto library.
 * Pure functions, no I/O; byte order and alignment of the input do not
 * matter.
 */
#ifndef SV_HMAC_H
#define SV_HMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SV_SHA256_LEN 32
#define SV_SHA256_BLOCK 64

/* A streaming SHA-256 computation. Fill with sv_sha256_init(). */
struct sv_sha256 {
	uint32_t h[8];                  /* the chaining state */
	uint64_t bytes;                 /* message length so far */
	uint8_t block[SV_SHA256_BLOCK]; /* a partial block */
	size_t used;                    /* bytes in block */
};

/* Start a new digest in c. */
void sv_sha256_init(struct sv_sha256 *c);

/* Add len bytes of data (data may be NULL when len is 0). Any split of a
 * message into updates gives the same digest. */
void sv_sha256_update(struct sv_sha256 *c, const void *data, size_t len);

/* Finish: write the 32-byte digest to out and wipe c (init it again to
 * reuse it). */
void sv_sha256_final(struct sv_sha256 *c, uint8_t out[SV_SHA256_LEN]);

/* HMAC-SHA-256 of msg under key (any length; a key longer than 64 bytes is
 * hashed first, as RFC 2104 says). Writes 32 bytes to out; out may overlap
 * neither key nor msg. Intermediate key material is wiped. */
void sv_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                    uint8_t out[SV_SHA256_LEN]);

/* Constant-time comparison of len bytes: true when equal. The time taken
 * depends on len only, never on where a and b differ (for checking a MAC). */
bool sv_digest_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* Lower-case hex of len bytes into out, which holds 2*len+1 bytes (the
 * text and its NUL). */
void sv_hex(const uint8_t *in, size_t len, char *out);

#endif
