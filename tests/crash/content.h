/*
 * content.h - self-describing file contents for the crash and stress
 * drivers (crash_writer.c, mount_stress.c).
 *
 * The bytes of a file are a pure function of (seed, len), computable at any
 * offset, so a reader can check any byte of any file without a copy:
 *
 *   offset 0   8        16       24       32                      len
 *          +--------+--------+--------+--------+-----------------------+
 *          | magic  | seed   | len    | check  | word k = mix(seed, k) |
 *          +--------+--------+--------+--------+-----------------------+
 *   (u64 little-endian each; check = mix(seed ^ len, ~0); byte i >= 32 is
 *    byte i % 8 of word i / 8)
 *
 * A file shorter than 32 bytes is the prefix of its header.  A torn file
 * (a prefix of a longer version) still has a valid header, so a checker can
 * tell "torn" (valid header, right bytes, too short) from "corrupt" (bytes
 * that no version ever had).
 *
 * Pure functions, thread-safe.  Cost: O(n) for n bytes, no allocation.
 */
#ifndef TC_CONTENT_H
#define TC_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#define CONTENT_MAGIC 0x3148534152434354ull /* "TCCRASH1" little-endian */
#define CONTENT_HDR 32u

/* Fill @buf with bytes [@off, @off + @n) of file (@seed, @len).  Bytes
 * past @len are not defined: callers stay below it. */
void content_fill(uint64_t seed, uint64_t len, uint64_t off, void *buf,
		  size_t n);

/* Compare @buf (bytes [@off, @off + @n) of a file) with file (@seed,
 * @len): returns the index of the first differing byte, or @n if all
 * match (bytes past @len count as differing). */
size_t content_diff(uint64_t seed, uint64_t len, uint64_t off,
		    const void *buf, size_t n);

/* Parse a header (the first @n >= CONTENT_HDR bytes of a file): 0 and
 * *@seed, *@len if it is one, -1 if not. */
int content_header(const void *buf, size_t n, uint64_t *seed, uint64_t *len);

/* splitmix64: the generator behind the words, also handy as a PRNG step. */
uint64_t content_mix(uint64_t x);

/* A small PRNG for the drivers (xorshift64*; state never 0). */
struct rng {
	uint64_t s;
};
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n) (n > 0). */
uint64_t rng_below(struct rng *r, uint64_t n);

#endif /* TC_CONTENT_H */
