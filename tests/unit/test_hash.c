/*
 * test_hash.c - tc_hash_update gives libxxhash's values, whatever the
 * sizes and alignments of the pieces a stream is fed in.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hash.h"

static uint8_t *data(size_t n)
{
	uint8_t *b = malloc(n + 64);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < n + 64; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		b[i] = (uint8_t)x;
	}
	return b;
}

/* one piece: every length around the block and stripe sizes, every
 * alignment of the start */
static void t_single(void)
{
	uint8_t *b = data(4 << 10);
	size_t lens[] = { 0, 1, 3, 16, 17, 128, 129, 240, 241, 255, 256, 1023,
			  1024, 1025, 2047, 2048, 4096 };
	XXH3_state_t *st = XXH3_createState();
	for (size_t a = 0; a < 64; a += 7) {
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			XXH3_64bits_reset(st);
			tc_hash_update(st, b + a, lens[i]);
			CHECK(XXH3_64bits_digest(st) == XXH3_64bits(b + a, lens[i]));
		}
	}
	XXH3_freeState(st);
	free(b);
}

/* a stream of uneven pieces, as writes and verification feed it, mixed
 * with libxxhash's own update on the same state */
static void t_stream(void)
{
	size_t n = 3 << 20;
	uint8_t *b = data(n);
	XXH3_state_t *st = XXH3_createState();
	uint64_t x = 1;
	for (int round = 0; round < 20; round++) {
		size_t at = 0;
		XXH3_64bits_reset(st);
		while (at < n) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t k = (size_t)(x % (round < 10 ? 5000 : 1100000));
			if (k > n - at)
				k = n - at;
			if (x & 1)
				tc_hash_update(st, b + at, k);
			else
				XXH3_64bits_update(st, b + at, k);
			at += k;
		}
		CHECK(XXH3_64bits_digest(st) == XXH3_64bits(b, n));
	}
	XXH3_freeState(st);
	free(b);
}

int main(void)
{
	RUN(t_single);
	RUN(t_stream);
	return check_done();
}
