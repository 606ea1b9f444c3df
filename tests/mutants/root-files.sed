# claim: files at the root are refused with EPERM (entries are directories)
# file: lib/namespace.c
# tests: store refusals
# changes: 1
# killed by: refusals.bats "files at the root: EPERM"
/^int dir_for_new(/,/^}/s/^\tif (!r \&\& kind == TC_KIND_TENSOR \&\& (\*d)->kind == TC_KIND_ROOT)$/\tif (0) \/* mutant: a file at the root *\//
