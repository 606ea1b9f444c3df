# claim: a staged commit is one journal record: a crash leaves all of its tensors or none
# file: lib/stage.c
# tests: stage
# changes: 1
# killed by: test_stage t_a_commit_is_all_or_nothing
s/^\t\tr = store_change_each(s, ops, k, vs);$/\t\tfor (size_t q = 0; !r \&\& q < k; q++) r = store_change_each(s, ops + q, 1, vs + q); \/* mutant: a record each *\//
