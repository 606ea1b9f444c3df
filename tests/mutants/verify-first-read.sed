# claim: each tensor's xxh3 is checked on its first read after a mount; damage answers EIO
# file: lib/store.c
# tests: store damage
# changes: 1
# killed by: damage.bats "a flipped byte ... EIO", test_store damage tests
s/v->verified = h == v->xxh3 ? 1 : 2;/v->verified = 1; (void)h;/
