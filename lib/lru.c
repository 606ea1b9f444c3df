/*
 * lru.c - least-recently-used order of entries, and pins.
 *
 *   unpinned: head (oldest) <-> e <-> e <-> ... <-> tail (newest)
 *   pinned:   phead (oldest) <-> e <-> ... <-> ptail (newest)
 *
 * Every entry of the index is in exactly one of the two lists: the pinned
 * one while e->pinned (an explicit pin), else the unpinned one.  Recency
 * is the last open of any tensor in the entry (a touch); creation counts
 * as a touch.  The order survives restarts because the journal records the
 * touches (in batches, see store_touch() in durable.c: a kill -9 may
 * lose the last second of them) and the checkpoint writes entries oldest
 * first (tc_lru_iter: both lists merged by last_access).
 *
 * Pinned entries live apart so that finding a victim never walks past
 * them: with 100 000 pinned entries older than the rest, a put that
 * evicted cost 1.2 ms when they shared one list, 7 us apart.  A pin or
 * unpin places the entry by its last_access, walking from the young end
 * of the list it joins: cheap for the usual case (pinning what was just
 * used), at worst the length of that list, and only for a pin change.
 * Entries with open files (e->opens > 0; a file at the root: its refs,
 * the same field) stay in the unpinned list and the
 * victim search skips them: there are few, and they come and go.
 * Locking: none here; the store's lock covers the lists.
 */
#include <assert.h>
#include <stddef.h>

#include "lru.h"

struct list {
	struct tc_node **head, **tail;
};

static struct list list_of(struct tc_lru *l, int pinned)
{
	return pinned ? (struct list){ &l->phead, &l->ptail }
		      : (struct list){ &l->head, &l->tail };
}

/* Link @e into @li after @prev (NULL: as the oldest). */
static void link_after(struct list li, struct tc_node *prev, struct tc_node *e)
{
	struct tc_node *next = prev ? prev->lru_next : *li.head;
	e->lru_prev = prev;
	e->lru_next = next;
	if (prev)
		prev->lru_next = e;
	else
		*li.head = e;
	if (next)
		next->lru_prev = e;
	else
		*li.tail = e;
}

static void unlink_from(struct list li, struct tc_node *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		*li.head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		*li.tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

/* Link @e (in no list) into the list e->pinned names, after @prev of
 * that list (NULL: as the oldest), and count it. */
static void insert(struct tc_lru *l, struct tc_node *prev, struct tc_node *e)
{
	link_after(list_of(l, e->pinned), prev, e);
	l->n++;
	l->npinned += e->pinned;
}

void tc_lru_add(struct tc_lru *l, struct tc_node *e)
{
	struct list li = list_of(l, e->pinned);
	assert(tc_node_is_entry(e));
	assert(!e->lru_prev && !e->lru_next && *li.head != e);
	insert(l, *li.tail, e);
}

void tc_lru_remove(struct tc_lru *l, struct tc_node *e)
{
	unlink_from(list_of(l, e->pinned), e);
	assert(l->n > 0 && l->npinned >= e->pinned);
	l->n--;
	l->npinned -= e->pinned;
}

void tc_lru_touch(struct tc_lru *l, struct tc_node *e)
{
	struct list li = list_of(l, e->pinned);
	if (*li.tail == e)
		return;
	unlink_from(li, e);
	link_after(li, *li.tail, e);
}

void tc_lru_set_pinned(struct tc_lru *l, struct tc_node *e, int pinned)
{
	pinned = pinned ? 1 : 0;
	if (e->pinned == pinned)
		return;
	tc_lru_remove(l, e);
	e->pinned = (uint8_t)pinned;
	struct tc_node *p = *list_of(l, pinned).tail;
	while (p && p->last_access > e->last_access)
		p = p->lru_prev;
	insert(l, p, e);
}

int tc_lru_evictable(const struct tc_node *e)
{
	/* a file at the root: its refs (the same field as opens) count its
	 * handles, and its writing state a truncate without one */
	return !e->pinned && e->opens == 0 && !(e->root_file && e->wr);
}

struct tc_node *tc_lru_victim(const struct tc_lru *l)
{
	for (struct tc_node *e = l->head; e; e = e->lru_next)
		if (tc_lru_evictable(e))
			return e;
	return NULL;
}

void tc_lru_iter_start(const struct tc_lru *l, struct tc_lru_iter *it)
{
	it->a = l->head;
	it->b = l->phead;
}

struct tc_node *tc_lru_iter_next(struct tc_lru_iter *it)
{
	struct tc_node **p;
	if (!it->b || (it->a && it->a->last_access <= it->b->last_access))
		p = &it->a;
	else
		p = &it->b;
	struct tc_node *e = *p;
	if (e)
		*p = e->lru_next;
	return e;
}
