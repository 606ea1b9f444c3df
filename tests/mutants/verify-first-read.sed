# claim: each tensor's xxh3 is checked on its first read after a mount; damage answers EIO
# file: lib/files.c
# tests: store damage
# changes: 1
# killed by: test_store t_verify_on_open (damage.bats's mounts check it ahead, in lib/verify.c)
s/^\t\t\tver_checked(s, v, h == v->xxh3);$/\t\t\tver_checked(s, v, 1 || h == v->xxh3); \/* mutant: damage passes *\//
