# claim: a parent's count of present children follows renames, so the entry a child names is the one kept
# file: lib/apply.c
# tests: store
# changes: 1
# killed by: test_store t_replay_equals_live (random links and renames: live kids differ from the replayed)
/^static int apply_node(/,/^}/s/^\t\t\t\tlinks_join(s, n); \/\* children by its new name \*\/$/\t\t\t\t(void)0; \/* mutant: kids kept from the old name *\//
