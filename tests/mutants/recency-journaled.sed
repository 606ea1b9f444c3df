# claim: recency (the last open of any tensor in an entry) survives a restart
# file: lib/durable.c
# tests: store kill
# changes: 1
# killed by: kill.bats "kill -9 of an idle daemon ... keeps its recency", test_store recency after reopen
/^void store_touch(/,/^}/s/^\tif (!node_journaled(e))$/\tif (1) \/* mutant: touches not journaled *\//
