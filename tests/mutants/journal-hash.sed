# claim: a corrupt journal record (payload hash wrong) is dropped at mount, not replayed
# file: lib/journal.c
# tests: journal damage
# changes: 1
# killed by: test_journal corrupt-record tests, damage.bats "a damaged journal record costs one entry"
s/if (XXH3_64bits(payload, r.len) != r.data_hash) {/if (0) { \/* mutant: payload hash not checked *\//
