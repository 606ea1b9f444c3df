/*
 * hash.h - xxh3_64 of tensor bytes, at the speed of the CPU (internal).
 *
 * Debian's libxxhash is built for baseline x86-64 (SSE2); on a CPU with
 * AVX2 the same function runs about twice as fast (here: 7 GB/s -> 16 GB/s
 * for 1 MiB updates).  Tensor bytes are hashed on every write and on the
 * first open after a mount (verification), so this matters; short keys
 * and journal records keep calling libxxhash directly.
 *
 * The values are those of XXH3_64bits_update(): the state is a libxxhash
 * XXH3_state_t, made and finished by libxxhash.
 */
#ifndef TC_HASH_H
#define TC_HASH_H

#include <stddef.h>
#include <xxhash.h>

/* XXH3_64bits_update(), by the fastest code this CPU runs. */
void tc_hash_update(XXH3_state_t *st, const void *p, size_t n);

#endif
