# claim: rename flags as a local file system: RENAME_NOREPLACE onto an existing name is EEXIST
# file: lib/namespace.c
# tests: store refusals
# changes: 1
# killed by: test_store t_rename_rules (through a mount the kernel answers EEXIST itself
# when it knows the target, so refusals.bats "rename flags" cannot see this check)
/^static int may_replace(/,/^}/s/^\tif (flags & TC_RENAME_NOREPLACE)$/\tif (0) \/* mutant: NOREPLACE ignored *\//
