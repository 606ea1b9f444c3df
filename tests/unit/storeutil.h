/* storeutil.h - opening a store, for the tests that need a whole one. */
#ifndef TC_STOREUTIL_H
#define TC_STOREUTIL_H

#include <stdio.h>

#include "tcache.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)

/* The store in @dir with capacity @cap (0: as it is), or NULL (said). */
static inline tc_store *open_store(const char *dir, uint64_t cap)
{
	struct tc_options o = { .capacity = cap };
	tc_store *s = NULL;
	int r = tc_store_open(dir, &o, &s);
	if (r)
		printf("# tc_store_open(%s): %d\n", dir, r);
	return s;
}

#endif
