# claim: entries are evicted whole (never part of one): an entry is there with all its tensors or gone
# file: lib/evict.c
# tests: store capacity
# changes: 1
# killed by: capacity.bats "entries are evicted whole"
# The eviction removes (and journals) only the entry's newest tensor.
/^static int evict(/,/^}/s/^\tstruct tc_op op = { .type = TC_OP_DEL, .id = e->id };$/\tstruct tc_op op = { .type = TC_OP_DEL, .id = tc_child_tail(e) ? tc_child_tail(e)->id : e->id }; \/* mutant: part of an entry *\//
