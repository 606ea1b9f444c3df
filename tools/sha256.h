/*
 * sha256.h - SHA-256 (FIPS 180-4), for the page keys of `tcache key
 * --tokens` and `tcache match` (the chain SGLang gives KV pages).
 *
 * Incremental: sha256_init, any number of sha256_update, sha256_final.
 * No allocation, no state outside the struct: thread-safe per struct.
 */
#ifndef TC_SHA256_H
#define TC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32

struct sha256 {
	uint32_t h[8];
	uint64_t len;      /* bytes fed so far */
	uint8_t buf[64];   /* a partial block: len % 64 bytes */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
/* Write the digest to @out; @s must be initialised again before reuse. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_BYTES]);

#endif
