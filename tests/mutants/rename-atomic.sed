# claim: a rename over a tensor is atomic against crashes and failures: one journal record removes the replaced target and moves the node, so the store (after a remount too) has the old names or the new, never neither
# file: lib/namespace.c
# tests: limits kill
# changes: 1
# killed by: limits.bats "a rename over that cannot be journaled changes nothing, also after kill -9"
# The mutant appends the removal of the target as a record of its own, then the move.
s/^\t\tops\[k++\] = (struct tc_op){ .type = TC_OP_DEL, .id = dst->id };$/\t\t{ struct tc_op del = { .type = TC_OP_DEL, .id = dst->id }; if ((r = store_change(s, \&del, 1, NULL))) goto out; } \/* mutant: two records *\//
