/*
 * hash_avx2.c - xxh3 compiled for AVX2 (this file alone gets -mavx2; see
 * hash.c for when it runs).
 *
 * libxxhash's own code, inlined from its header: the state layout is the
 * header's, the same one the shared library was built with, so a state
 * reset by libxxhash continues here and is finished by libxxhash.
 */
#include <stddef.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

void tc_hash_update_avx2(XXH3_state_t *st, const void *p, size_t n);

void tc_hash_update_avx2(XXH3_state_t *st, const void *p, size_t n)
{
	XXH3_64bits_update(st, p, n);
}
