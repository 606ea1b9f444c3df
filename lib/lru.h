/*
 * lru.h - recency of entries and the choice of eviction victims (internal).
 */
#ifndef TC_LRU_H
#define TC_LRU_H

#include "index.h"

/* Three lists, each least recent first, linked through lru_prev/lru_next:
 * the entries that may be evicted (unless they hold open files or have a
 * present child), the explicitly pinned ones, which the victim search
 * never has to pass, and the parked ones: parents the search passed
 * (see lru.c). */
struct tc_lru {
	struct tc_node *head;  /* least recently used unpinned entry */
	struct tc_node *tail;  /* most recently used unpinned entry */
	struct tc_node *phead, *ptail; /* pinned entries, the same order */
	struct tc_node *khead, *ktail; /* parked entries, the same order */
	uint64_t n;            /* entries in all lists */
	uint64_t npinned;      /* entries in the pinned list */
	uint64_t nparked;      /* entries in the parked list */
};

/* Append @e (an entry in no list; e->pinned says which list) as the most
 * recent.  O(1). */
void tc_lru_add(struct tc_lru *l, struct tc_node *e);
void tc_lru_remove(struct tc_lru *l, struct tc_node *e);
/* Move @e to the most recent end of its list (a parked one: of the
 * unpinned list).  O(1). */
void tc_lru_touch(struct tc_lru *l, struct tc_node *e);

/* Pin or unpin @e (in a list): sets e->pinned and moves it to the other
 * list, placed by its last_access.  O(entries of that list used after
 * it): nothing on the eviction path pays for pins. */
void tc_lru_set_pinned(struct tc_lru *l, struct tc_node *e, int pinned);

/* @e's last present child went (e->kids is 0): a parked @e goes back to
 * the unpinned list at its own last_access.  O(unpinned entries older
 * than it): none but open ones when its child was the victim. */
void tc_lru_unblocked(struct tc_lru *l, struct tc_node *e);

/* Is @e kept from eviction by a pin or open files (which includes
 * tensors being written)? */
int tc_lru_held(const struct tc_node *e);

/* Can @e be evicted now?  Not when held, nor while it has a present
 * child. */
int tc_lru_evictable(const struct tc_node *e);

/* The least recently used evictable entry, or NULL.  Parks the parents
 * it passes.  O(1) amortized plus the number of unpinned entries with
 * open files older than it. */
struct tc_node *tc_lru_victim(struct tc_lru *l);

/* The least and the most recently used entry of all lists, or NULL. */
struct tc_node *tc_lru_oldest(const struct tc_lru *l);
struct tc_node *tc_lru_newest(const struct tc_lru *l);

/* Every entry of all lists, least recently used first (merged by
 * last_access).  The entry returned may be removed before the next
 * call; no other change to the lists in between. */
struct tc_lru_iter {
	struct tc_node *c[3];
};
void tc_lru_iter_start(const struct tc_lru *l, struct tc_lru_iter *it);
struct tc_node *tc_lru_iter_next(struct tc_lru_iter *it);

#endif
