# claim: a replaced packed tensor's units are not reused before the record that frees them is durable
# file: lib/version.c
# tests: store powerloss
# changes: 1
# killed by: test_store t_small_tensors_share_blocks; powerloss (packed_tensors_share_blocks*, some seeds)
s/^\t\t\tif (tc_ver_committed(v))$/\t\t\tif (tc_ver_committed(v) \&\& !tc_extent_packed(tc_ver_ext(v)[i])) \/* mutant *\//
