# claim: the check after the open looks at the VERIFY_AHEAD_MAX most recently used entries only (its snapshot of ids stays small)
# file: lib/verify.c
# tests: store
# changes: 1
# killed by: test_store t_only_the_newest_entries_are_checked_ahead (the least recently used entry checked too: its damage told)
s/^\t\t\t\t    ? s->idx.entries : s->verify_ahead_max;$/\t\t\t\t    ? s->idx.entries : s->idx.entries; \/* mutant: every entry *\//
