# claim: replay rebuilds every field a live operation sets (the index after a crash is the index before it)
# file: lib/store.c
# tests: store
# changes: 1
# killed by: test_store t_replay_equals_live (the dumps of the live and the replayed index differ)
s/^\tn->gid = op->gid;$/\tn->gid = 0; \/* mutant: replay forgets a field *\//
