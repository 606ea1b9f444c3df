# claim: a rename over a tensor is atomic against crashes: one journal record removes the replaced target and moves the node, so a remount finds the old bytes or the new, never neither
# file: lib/store.c
# tests: store kill crash
# changes: 1
# known-survivor: see tests/mutants/README (a kill must land between two appends of one request)
# The mutant appends the removal of the target as a record of its own, then the move.
s/^\t\ttc_rec_del(&b, dst->id);$/\t\t{ tc_rec_del(\&b, dst->id); r = append(s, \&b, NULL); tc_buf_free(\&b); if (r) goto out; } \/* mutant: two records *\//
