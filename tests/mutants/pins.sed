# claim: a pinned entry (tcache pin, chmod +t, "pinned": true) is never evicted
# file: lib/lru.c
# tests: store cli
# changes: 2
# killed by: test_store t_eviction_order_and_pins (e1 pinned and oldest), cli.bats "a pinned entry is never evicted"
# The victim search walks the pinned entries first and ignores the pin.
/^int tc_lru_held(/,/^}/s/^\treturn e->pinned || e->opens != 0 || (e->root_file \&\& tc_nwr(e));$/\treturn e->opens != 0 || (e->root_file \&\& tc_nwr(e)); \/* mutant: the pin ignored *\//
/^struct tc_node \*tc_lru_victim(/,/^}/s/^\tstruct tc_node \*e = l->head;$/\tstruct tc_node *e = l->phead ? l->phead : l->head; \/* mutant: pinned ones walked first *\//
