/*
 * map.c - uint64_t -> pointer hash map, open addressing, linear probing.
 *
 * Layout: two parallel arrays of cap slots; a slot is empty when its value
 * is NULL.  The load factor stays at or below 3/4: the table doubles before
 * it would pass that.  Removal shifts later members of the probe run back
 * (no tombstones), so lookups never slow down with churn.
 *
 * Costs: get/put/del O(1) average; a put that grows the table is O(n) once,
 * O(1) amortized.  Memory: 16 bytes a slot, 21..43 bytes a key.
 */
#include <errno.h>
#include <stdlib.h>

#include "map.h"

static size_t slot_of(const struct tc_map *m, uint64_t key)
{
	return (size_t)tc_mix64(key) & (m->cap - 1);
}

void tc_map_free(struct tc_map *m)
{
	if (!m)
		return;
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->cap = m->n = 0;
}

void *tc_map_get(const struct tc_map *m, uint64_t key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = slot_of(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (!m->vals[i])
			return NULL;
		if (m->keys[i] == key)
			return m->vals[i];
	}
}

static void insert_new(struct tc_map *m, uint64_t key, void *val)
{
	size_t i = slot_of(m, key);
	while (m->vals[i])
		i = (i + 1) & (m->cap - 1);
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
}

static int grow(struct tc_map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	uint64_t *nk = calloc(ncap, sizeof(*nk));
	void **nv = calloc(ncap, sizeof(*nv));
	if (!nk || !nv) {
		free(nk);
		free(nv);
		return -ENOMEM;
	}
	struct tc_map old = *m;
	m->keys = nk;
	m->vals = nv;
	m->cap = ncap;
	m->n = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.vals[i])
			insert_new(m, old.keys[i], old.vals[i]);
	free(old.keys);
	free(old.vals);
	return 0;
}

int tc_map_put(struct tc_map *m, uint64_t key, void *val)
{
	if (m->cap) {
		for (size_t i = slot_of(m, key);; i = (i + 1) & (m->cap - 1)) {
			if (!m->vals[i])
				break;
			if (m->keys[i] == key) {
				m->vals[i] = val;
				return 0;
			}
		}
	}
	if ((m->n + 1) * 4 > m->cap * 3) {
		int r = grow(m);
		if (r)
			return r;
	}
	insert_new(m, key, val);
	return 0;
}

void *tc_map_del(struct tc_map *m, uint64_t key)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	size_t i = slot_of(m, key);
	while (m->vals[i] && m->keys[i] != key)
		i = (i + 1) & mask;
	if (!m->vals[i])
		return NULL;
	void *val = m->vals[i];
	/* Backward-shift: pull later members of the run into the hole when
	 * their home slot is not between the hole and themselves. */
	size_t hole = i;
	for (size_t j = (i + 1) & mask; m->vals[j]; j = (j + 1) & mask) {
		size_t home = slot_of(m, m->keys[j]);
		int movable = hole <= j ? (home <= hole || home > j)
					: (home <= hole && home > j);
		if (movable) {
			m->keys[hole] = m->keys[j];
			m->vals[hole] = m->vals[j];
			hole = j;
		}
	}
	m->vals[hole] = NULL;
	m->n--;
	return val;
}
