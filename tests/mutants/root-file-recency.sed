# claim: a file at the root is an entry, the most recent once committed, and replay rebuilds that order
# file: lib/files.c
# tests: store
# changes: 1
# killed by: test_store t_root_files_are_entries (the dumps of the live and the replayed index differ)
/^int commit_locked(/,/^}/s/^\t\ttouch_entry(s, n, now_ns());$/\t\t(void)0; \/* mutant: its place in the lru left where its creation put it *\//
