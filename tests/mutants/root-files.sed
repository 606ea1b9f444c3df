# claim: files at the root are refused with EPERM (entries are directories)
# file: lib/files.c
# tests: store refusals
# changes: 1
# killed by: refusals.bats "files at the root: EPERM"
/^int tc_create(/,/^}/s/^\tif (d->kind == TC_KIND_ROOT) {$/\tif (0) { \/* mutant: a file at the root *\//
