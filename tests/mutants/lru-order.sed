# claim: the least recently opened entries are evicted first (an open makes an entry young)
# file: lib/store.c
# tests: store capacity
# changes: 1
# killed by: test_store t_eviction_order_and_pins, capacity.bats "LRU eviction" (e010 read made young)
/^static void touch(/,/^}/s/^\ttc_lru_touch(&s->lru, e);$/\t(void)0; \/* mutant: an open does not move the entry *\//
