/*
 * hash.c - picks the xxh3 code for this CPU once (see hash.h).
 */
#include "hash.h"

#if defined(TC_HASH_AVX2)
/* hash_avx2.c, compiled with -mavx2: called only when the CPU has it. */
void tc_hash_update_avx2(XXH3_state_t *st, const void *p, size_t n);

static int have_avx2(void)
{
	static int known; /* 0 unknown, 1 no, 2 yes; races write the same */
	if (!__atomic_load_n(&known, __ATOMIC_RELAXED)) {
		__builtin_cpu_init();
		__atomic_store_n(&known, __builtin_cpu_supports("avx2") ? 2 : 1,
				 __ATOMIC_RELAXED);
	}
	return __atomic_load_n(&known, __ATOMIC_RELAXED) == 2;
}
#endif

void tc_hash_update(XXH3_state_t *st, const void *p, size_t n)
{
#if defined(TC_HASH_AVX2)
	if (have_avx2()) {
		tc_hash_update_avx2(st, p, n);
		return;
	}
#endif
	XXH3_64bits_update(st, p, n);
}
