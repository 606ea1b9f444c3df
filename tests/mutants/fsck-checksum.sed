# claim: tcache fsck STORE finds tensors whose bytes do not match their xxh3
# file: lib/store.c
# tests: store damage
# changes: 1
# killed by: damage.bats "fsck ... damaged: e/b"
s/^\t\tif (h == tc_nver(n)->xxh3)$/\t\tif (1) \/* mutant: every tensor passes *\//
