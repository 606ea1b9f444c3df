# claim: the least recently opened entries are evicted first (an open makes an entry young)
# file: lib/durable.c
# tests: store capacity
# changes: 1
# killed by: test_store t_eviction_order_and_pins, capacity.bats "LRU eviction" (e010 read made young)
/^void store_touch(/,/^}/s/^\ttouch_entry(s, e, op.last_access); \/\* what apply_op does of it \*\/$/\t(void)0; \/* mutant: an open does not move the entry *\//
