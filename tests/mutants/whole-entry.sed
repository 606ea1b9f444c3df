# claim: entries are evicted whole (never part of one): an entry is there with all its tensors or gone
# file: lib/store.c
# tests: store capacity
# changes: 1
# killed by: capacity.bats "entries are evicted whole"
# The eviction journals the entry as gone but takes only its newest tensor out of the live mount.
s/^\tremove_subtree(s, e);$/\tremove_subtree(s, e->child_tail ? e->child_tail : e); \/* mutant: part of an entry *\//
