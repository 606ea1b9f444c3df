# claim: an entry with an open file is never evicted
# file: lib/lru.c
# tests: store capacity
# changes: 1
# killed by: test_store t_eviction_order_and_pins (the open entry is the oldest), capacity.bats "held entry survives"
/^int tc_lru_held(/,/^}/s/^\treturn e->pinned || e->opens != 0 || (e->root_file \&\& tc_nwr(e));$/\treturn e->pinned || (e->root_file \&\& tc_nwr(e)); \/* mutant: open files ignored *\//
