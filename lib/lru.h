/*
 * lru.h - recency of entries and the choice of eviction victims (internal).
 */
#ifndef TC_LRU_H
#define TC_LRU_H

#include "index.h"

struct tc_lru {
	struct tc_node *head;  /* least recently used */
	struct tc_node *tail;  /* most recently used */
	uint64_t n;
};

/* Append @e (an entry not in the list) as the most recent.  O(1). */
void tc_lru_add(struct tc_lru *l, struct tc_node *e);
void tc_lru_remove(struct tc_lru *l, struct tc_node *e);
/* Move @e to the most recent end.  O(1). */
void tc_lru_touch(struct tc_lru *l, struct tc_node *e);

/* Can @e be evicted now?  Not when pinned or holding open files (which
 * includes tensors being written). */
int tc_lru_evictable(const struct tc_node *e);

/* The least recently used evictable entry, or NULL.  O(1) plus the
 * number of pinned or open entries older than it. */
struct tc_node *tc_lru_victim(const struct tc_lru *l);

#endif
