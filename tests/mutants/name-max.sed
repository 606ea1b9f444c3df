# claim: names over 255 bytes get ENAMETOOLONG
# file: lib/namespace.c
# tests: store refusals hostile
# changes: 1
# killed by: test_store name checks (the kernel refuses >255-byte names before they reach the daemon)
/^int check_name(/,/^}/s/^\tif (n > TC_NAME_MAX)$/\tif (0) \/* mutant: no length check *\//
