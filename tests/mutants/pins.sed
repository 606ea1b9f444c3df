# claim: a pinned entry (tcache pin, chmod +t, "pinned": true) is never evicted
# file: lib/lru.c
# tests: store cli
# changes: 2
# killed by: test_store t_eviction_order_and_pins (e1 pinned and oldest), cli.bats "a pinned entry is never evicted"
# The victim search walks the pinned entries first and ignores the pin.
s/return !e->pinned && e->opens == 0;/return e->opens == 0;/
s/for (struct tc_node \*e = l->head; e; e = e->lru_next)/for (struct tc_node *e = l->phead ? l->phead : l->head; e; e = e->lru_next)/
