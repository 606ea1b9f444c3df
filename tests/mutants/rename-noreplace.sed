# claim: rename flags as a local file system: RENAME_NOREPLACE onto an existing name is EEXIST
# file: lib/store.c
# tests: refusals
# changes: 1
# killed by: refusals.bats "rename flags: RENAME_EXCHANGE is EINVAL, RENAME_NOREPLACE is EEXIST"
s/^\t\tif (flags & TC_RENAME_NOREPLACE)$/\t\tif (0) \/* mutant: NOREPLACE ignored *\//
