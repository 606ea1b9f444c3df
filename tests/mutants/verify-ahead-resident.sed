# claim: the check ahead of a first read reads only bytes in memory; a tensor with pages on disk is left to its read
# file: lib/verify.c
# tests: store
# changes: 1
# killed by: test_store t_tensors_in_memory_are_checked_before_any_read
s/^\tr = ver_resident(s, v);$/\tr = 1; \/* mutant: every tensor, from the disk too *\//
