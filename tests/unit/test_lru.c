/* test_lru.c - recency order and victim choice with pins. */
#include "check.h"
#include "lru.h"
#include "testutil.h"

/* Five entries e[0..4], added in order, last_access 10, 20, ... 50. */
static void five(struct tc_lru *l, struct tc_node *e)
{
	memset(l, 0, sizeof(*l));
	memset(e, 0, 5 * sizeof(*e));
	for (int i = 0; i < 5; i++) {
		e[i].kind = TC_KIND_ENTRY;
		e[i].id = (uint64_t)i + 2;
		e[i].last_access = 10 * (i + 1);
		tc_lru_add(l, &e[i]);
	}
}

/* The unpinned list is exactly @want (indexes into @e), oldest first. */
static int order_is(const struct tc_lru *l, const struct tc_node *e,
		    const int *want, int n)
{
	int k = 0;
	for (const struct tc_node *p = l->head; p; p = tc_lru_next(p), k++)
		if (k >= n || p != &e[want[k]])
			return 0;
	return k == n;
}

static void t_order_touch_victim(void)
{
	struct tc_lru l;
	struct tc_node e[5];
	five(&l, e);
	CHECK(l.n == 5 && l.head == &e[0] && l.tail == &e[4]);
	CHECK(tc_lru_victim(&l) == &e[0]);
	tc_lru_touch(&l, &e[0]);
	CHECK(l.head == &e[1] && l.tail == &e[0]);
	CHECK(tc_lru_victim(&l) == &e[1]);
	tc_lru_set_pinned(&l, &e[1], 1); /* explicit pin */
	e[2].opens = 1;                  /* an open file below */
	CHECK(tc_lru_victim(&l) == &e[3]);
	CHECK(!tc_lru_evictable(&e[1]) && !tc_lru_evictable(&e[2]));
	e[3].opens = 2;
	tc_lru_set_pinned(&l, &e[4], 1);
	e[0].opens = 1;
	CHECK(tc_lru_victim(&l) == NULL); /* everything pinned */
	e[2].opens = 0;
	CHECK(tc_lru_victim(&l) == &e[2]);
	tc_lru_remove(&l, &e[2]);
	CHECK(l.n == 4 && l.npinned == 2);
	CHECK(order_is(&l, e, (int[]){ 3, 0 }, 2));
	CHECK(l.phead == &e[1] && l.ptail == &e[4]);
}

/* Pinned entries are not in the victim's list at all, an unpinned one
 * goes back where its last_access puts it, and the iterator yields both
 * lists merged by last_access. */
static void t_pins_apart(void)
{
	struct tc_lru l;
	struct tc_node e[5];
	five(&l, e);
	tc_lru_set_pinned(&l, &e[0], 1);
	tc_lru_set_pinned(&l, &e[1], 1);
	tc_lru_set_pinned(&l, &e[1], 1); /* again: no change */
	CHECK(l.npinned == 2 && l.n == 5 && l.head == &e[2]);
	CHECK(tc_lru_victim(&l) == &e[2] && e[0].pinned && e[1].pinned);
	e[0].last_access = 60;           /* read while pinned */
	tc_lru_touch(&l, &e[0]);
	CHECK(l.phead == &e[1] && l.ptail == &e[0]);
	e[3].last_access = 70;
	tc_lru_touch(&l, &e[3]);         /* unpinned: e2 e4 e3 */
	tc_lru_set_pinned(&l, &e[1], 0); /* 20: the oldest */
	CHECK(order_is(&l, e, (int[]){ 1, 2, 4, 3 }, 4));
	tc_lru_set_pinned(&l, &e[0], 0); /* 60: between e4 (50) and e3 (70) */
	CHECK(order_is(&l, e, (int[]){ 1, 2, 4, 0, 3 }, 5));
	CHECK(l.npinned == 0 && !l.phead && !l.ptail && l.n == 5);

	tc_lru_set_pinned(&l, &e[2], 1); /* 30 */
	tc_lru_set_pinned(&l, &e[3], 1); /* 70 */
	struct tc_lru_iter it;
	int want[] = { 1, 2, 4, 0, 3 }, k = 0;
	tc_lru_iter_start(&l, &it);
	for (struct tc_node *p; (p = tc_lru_iter_next(&it)); k++)
		CHECK(k < 5 && p == &e[want[k]]);
	CHECK(k == 5);
	tc_lru_remove(&l, &e[3]);        /* from the pinned list */
	CHECK(l.npinned == 1 && l.ptail == &e[2] && l.n == 4);
}

/* A parent (kids > 0) is never the victim; the search parks it and
 * never passes it again; when its last child goes it is back at its own
 * recency; a touch makes it the newest; the iterator still yields every
 * entry by last_access. */
static void t_parents_wait_for_children(void)
{
	struct tc_lru l;
	struct tc_node e[5];
	five(&l, e);
	e[0].kids = e[1].kids = 1; /* a chain: e0 <- e1 <- e2 */
	CHECK(tc_lru_victim(&l) == &e[2]);
	CHECK(e[0].parked && e[1].parked && l.nparked == 2 && l.n == 5);
	CHECK(order_is(&l, e, (int[]){ 2, 3, 4 }, 3));
	CHECK(l.khead == &e[0] && l.ktail == &e[1]);
	CHECK(!tc_lru_evictable(&e[0]) && tc_lru_evictable(&e[2]));
	tc_lru_remove(&l, &e[2]);  /* the victim goes ... */
	e[1].kids = 0;              /* ... and with it e1's child */
	tc_lru_unblocked(&l, &e[1]);
	CHECK(!e[1].parked && l.head == &e[1] && l.nparked == 1);
	CHECK(tc_lru_victim(&l) == &e[1]);
	/* a parent touched after its children: back at its own time */
	e[1].kids = 1;
	e[0].last_access = 55;
	tc_lru_touch(&l, &e[0]);   /* leaves the parked list: 1 3 4 0 */
	CHECK(!e[0].parked && l.nparked == 0 && l.tail == &e[0]);
	CHECK(tc_lru_victim(&l) == &e[3] && e[1].parked);
	e[1].kids = 0;
	e[1].last_access = 42;      /* between e3 (40) and e4 (50) */
	tc_lru_unblocked(&l, &e[1]);
	CHECK(order_is(&l, e, (int[]){ 3, 1, 4, 0 }, 4));
	/* unblocking what is not parked changes nothing */
	tc_lru_unblocked(&l, &e[3]);
	CHECK(order_is(&l, e, (int[]){ 3, 1, 4, 0 }, 4));
	/* the iterator merges all three lists */
	e[4].kids = 1;
	e[3].opens = 1;
	e[1].opens = 1;
	e[0].opens = 1;
	CHECK(tc_lru_victim(&l) == NULL && e[4].parked && e[0].parked);
	tc_lru_set_pinned(&l, &e[1], 1);
	int want[] = { 3, 1, 4, 0 }, k = 0;
	struct tc_lru_iter it;
	tc_lru_iter_start(&l, &it);
	for (struct tc_node *p; (p = tc_lru_iter_next(&it)); k++)
		CHECK(k < 4 && p == &e[want[k]]);
	CHECK(k == 4);
	CHECK(tc_lru_oldest(&l) == &e[3] && tc_lru_newest(&l) == &e[0]);
	/* a pin takes a parked entry out of the parked list */
	tc_lru_set_pinned(&l, &e[4], 1);
	CHECK(!e[4].parked && l.nparked == 1 && l.npinned == 2);
}

int main(void)
{
	RUN(t_order_touch_victim);
	RUN(t_pins_apart);
	RUN(t_parents_wait_for_children);
	return check_done();
}
