# claim: evicted entries vanish from ls and stat at once (the kernel is told of every eviction)
# file: lib/evict.c
# tests: capacity
# changes: 1
# killed by: capacity.bats "an evicted entry vanishes from ls and stat at once"
s/^\tif (s->evict_fn)$/\tif (0) \/* mutant: the kernel is not told *\//
