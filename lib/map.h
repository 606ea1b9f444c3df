/*
 * map.h - an open-addressing hash map from uint64_t keys to non-NULL
 * pointers (internal to libtcache).  Not thread-safe: the owner locks.
 */
#ifndef TC_MAP_H
#define TC_MAP_H

#include <stddef.h>
#include <stdint.h>

struct tc_map {
	uint64_t *keys;
	void **vals;     /* NULL marks an empty slot */
	size_t cap;      /* a power of two, or 0 before the first put */
	size_t n;
};

/* A zeroed struct tc_map is an empty map; no init call is needed. */
void tc_map_free(struct tc_map *m);

/* The value for @key, or NULL.  O(1) average. */
void *tc_map_get(const struct tc_map *m, uint64_t key);

/* Insert or replace.  @val must not be NULL.  -ENOMEM (map unchanged). */
int tc_map_put(struct tc_map *m, uint64_t key, void *val);

/* Remove @key; returns its value, or NULL if absent. */
void *tc_map_del(struct tc_map *m, uint64_t key);

/* A 64-bit mixer (splitmix64's finalizer), used as the slot hash. */
static inline uint64_t tc_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

#endif
