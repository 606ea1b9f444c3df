/* test_lru.c - recency order and victim choice with pins. */
#include "check.h"
#include "lru.h"
#include "testutil.h"

static void t_order_touch_victim(void)
{
	struct tc_lru l = { 0 };
	struct tc_node e[5];
	memset(e, 0, sizeof(e));
	for (int i = 0; i < 5; i++) {
		e[i].kind = TC_KIND_ENTRY;
		e[i].id = (uint64_t)i + 2;
		tc_lru_add(&l, &e[i]);
	}
	CHECK(l.n == 5 && l.head == &e[0] && l.tail == &e[4]);
	CHECK(tc_lru_victim(&l) == &e[0]);
	tc_lru_touch(&l, &e[0]);
	CHECK(l.head == &e[1] && l.tail == &e[0]);
	CHECK(tc_lru_victim(&l) == &e[1]);
	e[1].pinned = 1;           /* explicit pin */
	e[2].opens = 1;            /* an open file below */
	CHECK(tc_lru_victim(&l) == &e[3]);
	CHECK(!tc_lru_evictable(&e[1]) && !tc_lru_evictable(&e[2]));
	e[3].opens = 2;
	e[4].pinned = 1;
	e[0].opens = 1;
	CHECK(tc_lru_victim(&l) == NULL); /* everything pinned */
	e[2].opens = 0;
	CHECK(tc_lru_victim(&l) == &e[2]);
	tc_lru_remove(&l, &e[2]);
	CHECK(l.n == 4);
	int order[] = { 1, 3, 4, 0 }, k = 0;
	for (struct tc_node *n = l.head; n; n = n->lru_next)
		CHECK(n == &e[order[k++]]);
	CHECK(k == 4);
}

int main(void)
{
	RUN(t_order_touch_victim);
	return check_done();
}
