# claim: a rewrite in place is never seen unfinished: readers open the committed version
# file: lib/files.c
# tests: store posix kill
# changes: 1
# killed by: test_store reader/rewriter tests, posix.bats
s/^\t} else if ((v = tc_nver(n))) {$/\t} else if ((v = pending_of(n) ? pending_of(n) : tc_nver(n))) { \/* mutant *\//
