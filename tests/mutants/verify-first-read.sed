# claim: each tensor's xxh3 is checked on its first read after a mount; damage answers EIO
# file: lib/files.c
# tests: store damage
# changes: 1
# killed by: damage.bats "a flipped byte ... EIO", test_store damage tests
s/v->verified = h == v->xxh3 ? TC_VERIFIED_GOOD$/v->verified = 1 || h == v->xxh3 ? TC_VERIFIED_GOOD \/* mutant: damage passes *\//
