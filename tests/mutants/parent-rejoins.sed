# claim: a parent whose last child went is evicted at its own recency, not as the oldest
# file: lib/lru.c
# tests: lru links
# changes: 1
# killed by: test_lru t_parents_wait_for_children, links.bats (a parent whose last child went ...)
/^void tc_lru_unblocked(/,/^}/s/^\tinsert(l, place_from_old(list_of(l, e), e), e);$/\tinsert(l, NULL, e); \/* mutant: back as the oldest *\//
