# claim: replay rebuilds every field a live operation sets (the index after a crash is the index before it)
# file: lib/apply.c
# tests: store
# changes: 1
# killed by: test_store t_replay_equals_live (the dumps of the live and the replayed index differ)
/^static int apply_entry(/,/^}/s/^\tn->created = op->created;$/\tif (!s->replaying) n->created = op->created; \/* mutant: a field applied live, not in replay *\//
