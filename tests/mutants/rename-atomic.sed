# claim: a rename over a tensor is atomic against crashes and failures: one journal record removes the replaced target and moves the node, so the store (after a remount too) has the old names or the new, never neither
# file: lib/store.c
# tests: limits kill
# changes: 1
# killed by: limits.bats "a rename over that cannot be journaled changes nothing, also after kill -9"
# The mutant appends the removal of the target as a record of its own, then the move.
s/^\t\ttc_rec_del(&b, dst->id);$/\t\t{ tc_rec_del(\&b, dst->id); r = append(s, \&b, NULL); tc_buf_free(\&b); if (r) goto out; } \/* mutant: two records *\//
