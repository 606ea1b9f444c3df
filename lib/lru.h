/*
 * lru.h - recency of entries and the choice of eviction victims (internal).
 */
#ifndef TC_LRU_H
#define TC_LRU_H

#include "index.h"

/* Two lists, each least recent first, linked through lru_prev/lru_next:
 * the entries that may be evicted (unless they hold open files), and the
 * explicitly pinned ones, which the victim search never has to pass. */
struct tc_lru {
	struct tc_node *head;  /* least recently used unpinned entry */
	struct tc_node *tail;  /* most recently used unpinned entry */
	struct tc_node *phead, *ptail; /* pinned entries, the same order */
	uint64_t n;            /* entries in both lists */
	uint64_t npinned;      /* entries in the pinned list */
};

/* Append @e (an entry in no list; e->pinned says which list) as the most
 * recent.  O(1). */
void tc_lru_add(struct tc_lru *l, struct tc_node *e);
void tc_lru_remove(struct tc_lru *l, struct tc_node *e);
/* Move @e to the most recent end of its list.  O(1). */
void tc_lru_touch(struct tc_lru *l, struct tc_node *e);

/* Pin or unpin @e (in a list): sets e->pinned and moves it to the other
 * list, placed by its last_access.  O(entries of that list used after
 * it): nothing on the eviction path pays for pins. */
void tc_lru_set_pinned(struct tc_lru *l, struct tc_node *e, int pinned);

/* Can @e be evicted now?  Not when pinned or holding open files (which
 * includes tensors being written). */
int tc_lru_evictable(const struct tc_node *e);

/* The least recently used evictable entry, or NULL.  O(1) plus the
 * number of unpinned entries with open files older than it. */
struct tc_node *tc_lru_victim(const struct tc_lru *l);

/* Every entry of both lists, least recently used first (the two merged
 * by last_access).  The entry returned may be removed before the next
 * call; no other change to the lists in between. */
struct tc_lru_iter {
	struct tc_node *a, *b;
};
void tc_lru_iter_start(const struct tc_lru *l, struct tc_lru_iter *it);
struct tc_node *tc_lru_iter_next(struct tc_lru_iter *it);

#endif
