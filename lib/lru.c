/*
 * lru.c - least-recently-used order of entries, pins, and prefix-aware
 * victims.
 *
 *   unpinned: head (oldest) <-> e <-> e <-> ... <-> tail (newest)
 *   pinned:   phead (oldest) <-> e <-> ... <-> ptail (newest)
 *   parked:   khead (oldest) <-> e <-> ... <-> ktail (newest)
 *
 * Every entry of the index is in exactly one of the three lists: the
 * pinned one while e->pinned (an explicit pin), the parked one while
 * e->parked, else the unpinned one.  Recency is the last open of any
 * tensor in the entry (a touch); creation counts as a touch.  The order
 * survives restarts because the journal records the touches (in batches,
 * see store_touch() in durable.c: a kill -9 may lose the last second of
 * them) and the checkpoint writes entries oldest first (tc_lru_iter: the
 * lists merged by last_access).  Each list is ordered by last_access.
 *
 * Pinned entries live apart so that finding a victim never walks past
 * them: with 100 000 pinned entries older than the rest, a put that
 * evicted cost 1.2 ms when they shared one list, 7 us apart.  A pin or
 * unpin places the entry by its last_access, walking from the young end
 * of the list it joins: cheap for the usual case (pinning what was just
 * used), at worst the length of that list, and only for a pin change.
 * Entries with open files (e->opens > 0; a file at the root: its refs,
 * the same field) stay in the unpinned list and the victim search skips
 * them: there are few, and they come and go.
 *
 * Prefix-aware eviction.  An entry with a present child (e->kids > 0: an
 * entry whose parent link names it, links.c) is never a victim; the
 * victim is the least recently used entry without one.  Such an entry
 * stays in the unpinned list until the victim search reaches it at the
 * old end; the search then moves it to the parked list and goes on, so it
 * is passed once, not at every eviction (a chain of 1M pages read in
 * order: each eviction would pass every page before the last).  A parked
 * entry is older than every entry of the unpinned list when it is parked
 * (it was at its old end), and the unpinned list only grows at its young
 * end, save for the two placements below.  When its last child goes
 * (tc_lru_unblocked) it returns to the unpinned list at its own
 * last_access, placed from the old end: when the child went as a victim,
 * the parent is older than it and so than every evictable entry, and the
 * walk passes only entries with open files.  A touch moves a parked entry
 * to the young end of the unpinned list, as any touch does.
 * So a victim costs O(1) amortized: each entry is parked at most once
 * per touch, unpin or unblock that put it back.
 *
 * Locking: none here; the store's lock covers the lists.
 */
#include <assert.h>
#include <stddef.h>

#include "lru.h"

struct list {
	struct tc_node **head, **tail;
};

static struct list list_of(struct tc_lru *l, const struct tc_node *e)
{
	return e->pinned ? (struct list){ &l->phead, &l->ptail }
	       : e->parked ? (struct list){ &l->khead, &l->ktail }
			   : (struct list){ &l->head, &l->tail };
}

/* Link @e into @li after @prev (NULL: as the oldest). */
static void link_after(struct list li, struct tc_node *prev, struct tc_node *e)
{
	struct tc_node *next = prev ? tc_lru_next(prev) : *li.head;
	tc_set_lru_prev(e, prev);
	tc_set_lru_next(e, next);
	if (prev)
		tc_set_lru_next(prev, e);
	else
		*li.head = e;
	if (next)
		tc_set_lru_prev(next, e);
	else
		*li.tail = e;
}

static void unlink_from(struct list li, struct tc_node *e)
{
	if (tc_lru_prev(e))
		tc_set_lru_next(tc_lru_prev(e), tc_lru_next(e));
	else
		*li.head = tc_lru_next(e);
	if (tc_lru_next(e))
		tc_set_lru_prev(tc_lru_next(e), tc_lru_prev(e));
	else
		*li.tail = tc_lru_prev(e);
	e->lru_prev_r = e->lru_next_r = 0;
}

/* The entry of @li after which @e's last_access puts it, walking from
 * the young end. */
static struct tc_node *place_from_young(struct list li, const struct tc_node *e)
{
	struct tc_node *p = *li.tail;
	while (p && p->last_access > e->last_access)
		p = tc_lru_prev(p);
	return p;
}

/* The same, walking from the old end. */
static struct tc_node *place_from_old(struct list li, const struct tc_node *e)
{
	struct tc_node *p = *li.head;
	if (!p || p->last_access > e->last_access)
		return NULL;
	if ((*li.tail)->last_access <= e->last_access)
		return *li.tail;
	while (tc_lru_next(p) && tc_lru_next(p)->last_access <= e->last_access)
		p = tc_lru_next(p);
	return p;
}

/* Link @e (in no list) into the list its flags name, after @prev of that
 * list (NULL: as the oldest), and count it. */
static void insert(struct tc_lru *l, struct tc_node *prev, struct tc_node *e)
{
	link_after(list_of(l, e), prev, e);
	l->n++;
	l->npinned += e->pinned;
	l->nparked += e->parked;
}

void tc_lru_add(struct tc_lru *l, struct tc_node *e)
{
	assert(tc_node_is_entry(e));
	e->parked = 0;
	struct list li = list_of(l, e);
	assert(!tc_lru_prev(e) && !tc_lru_next(e) && *li.head != e);
	insert(l, *li.tail, e);
}

void tc_lru_remove(struct tc_lru *l, struct tc_node *e)
{
	unlink_from(list_of(l, e), e);
	assert(l->n > 0 && l->npinned >= e->pinned && l->nparked >= e->parked);
	l->n--;
	l->npinned -= e->pinned;
	l->nparked -= e->parked;
}

void tc_lru_touch(struct tc_lru *l, struct tc_node *e)
{
	if (e->parked) {
		tc_lru_remove(l, e);
		e->parked = 0;
		insert(l, l->tail, e);
		return;
	}
	struct list li = list_of(l, e);
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
	e->parked = 0; /* an unpinned parent is parked again when passed */
	insert(l, place_from_young(list_of(l, e), e), e);
}

void tc_lru_unblocked(struct tc_lru *l, struct tc_node *e)
{
	if (!e->parked || e->kids)
		return;
	tc_lru_remove(l, e);
	e->parked = 0;
	insert(l, place_from_old(list_of(l, e), e), e);
}

int tc_lru_held(const struct tc_node *e)
{
	/* a file at the root: its refs (the same field as opens) count its
	 * handles, and its writing state a truncate without one */
	return e->pinned || e->opens != 0 || (e->root_file && tc_nwr(e));
}

int tc_lru_evictable(const struct tc_node *e)
{
	return !tc_lru_held(e) && e->kids == 0;
}

struct tc_node *tc_lru_victim(struct tc_lru *l)
{
	struct tc_node *e = l->head;
	while (e) {
		struct tc_node *next = tc_lru_next(e);
		if (e->kids) {
			/* a parent: parked, never passed again until it
			 * comes back (see above) */
			tc_lru_remove(l, e);
			e->parked = 1;
			insert(l, place_from_young(list_of(l, e), e), e);
		} else if (!tc_lru_held(e)) {
			return e;
		}
		e = next;
	}
	return NULL;
}

struct tc_node *tc_lru_oldest(const struct tc_lru *l)
{
	struct tc_node *o = NULL;
	struct tc_node *c[3] = { l->head, l->phead, l->khead };
	for (int i = 0; i < 3; i++)
		if (c[i] && (!o || c[i]->last_access < o->last_access))
			o = c[i];
	return o;
}

struct tc_node *tc_lru_newest(const struct tc_lru *l)
{
	struct tc_node *o = NULL;
	struct tc_node *c[3] = { l->tail, l->ptail, l->ktail };
	for (int i = 0; i < 3; i++)
		if (c[i] && (!o || c[i]->last_access > o->last_access))
			o = c[i];
	return o;
}

void tc_lru_iter_start(const struct tc_lru *l, struct tc_lru_iter *it)
{
	it->c[0] = l->head;
	it->c[1] = l->phead;
	it->c[2] = l->khead;
}

struct tc_node *tc_lru_iter_next(struct tc_lru_iter *it)
{
	int k = -1;
	for (int i = 0; i < 3; i++)
		if (it->c[i] && (k < 0 || it->c[i]->last_access <
						  it->c[k]->last_access))
			k = i;
	if (k < 0)
		return NULL;
	struct tc_node *e = it->c[k];
	it->c[k] = tc_lru_next(e);
	return e;
}
