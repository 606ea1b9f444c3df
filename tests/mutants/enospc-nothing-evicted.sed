# claim: if nothing can be evicted to make room, the write fails with ENOSPC and every existing byte stays
# file: lib/evict.c
# tests: store capacity
# changes: 1
# killed by: capacity.bats "a file larger than the capacity fails with an error, leaving the rest"
# Without the dry run, a write that cannot fit evicts entries before it fails.
/^static int make_room_once(/,/^}/s/^\t\tif (have < need)$/\t\tif (0) \/* mutant: no dry run *\//
