/*
 * lru.c - least-recently-used order of entries, and pins.
 *
 *   head (oldest) <-> e <-> e <-> ... <-> tail (newest)
 *
 * Every entry of the index is in the list exactly once.  Recency is the
 * last open of any tensor in the entry (a touch); creation counts as a
 * touch.  The order survives restarts because the journal records the
 * touches (in batches, see touch() in store.c: a kill -9 may lose the
 * last second of them) and the checkpoint writes entries oldest first.
 *
 * Pins are not separate lists: an entry is pinned while e->pinned (an
 * explicit pin) or e->opens > 0 (open handles below it, writers included).
 * The victim search skips pinned entries from the old end.
 * Locking: none here; the store's lock covers the list.
 */
#include <assert.h>
#include <stddef.h>

#include "lru.h"

void tc_lru_add(struct tc_lru *l, struct tc_node *e)
{
	assert(e->kind == TC_KIND_ENTRY);
	assert(!e->lru_prev && !e->lru_next && l->head != e);
	e->lru_prev = l->tail;
	e->lru_next = NULL;
	if (l->tail)
		l->tail->lru_next = e;
	else
		l->head = e;
	l->tail = e;
	l->n++;
}

void tc_lru_remove(struct tc_lru *l, struct tc_node *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		l->head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		l->tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
	assert(l->n > 0);
	l->n--;
}

void tc_lru_touch(struct tc_lru *l, struct tc_node *e)
{
	if (l->tail == e)
		return;
	tc_lru_remove(l, e);
	tc_lru_add(l, e);
}

int tc_lru_evictable(const struct tc_node *e)
{
	return !e->pinned && e->opens == 0;
}

struct tc_node *tc_lru_victim(const struct tc_lru *l)
{
	for (struct tc_node *e = l->head; e; e = e->lru_next)
		if (tc_lru_evictable(e))
			return e;
	return NULL;
}
