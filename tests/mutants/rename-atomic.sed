# claim: a rename over a tensor is one journal record (the replaced target goes, the node moves): after a crash, old bytes or new, never both names or neither
# file: lib/store.c
# tests: store kill crash
# changes: 1
# killed by: test_store rename-over replay, kill.bats "kill -9 after rename over", the crash rounds
s/^\tif (dst && dst->journaled)$/\tif (0) \/* mutant: the replaced target is not journaled as gone *\//
