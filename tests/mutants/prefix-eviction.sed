# claim: an entry is never evicted while a child of it (by parent link) is present
# file: lib/lru.c
# tests: lru store links
# changes: 1
# killed by: test_lru t_parents_wait_for_children, test_store t_parent_links, links.bats (a chain read in order loses its head first)
/^int tc_lru_evictable(/,/^}/s/^\treturn !tc_lru_held(e) && e->kids == 0;$/\treturn !tc_lru_held(e); \/* mutant: parents go by plain recency *\//
