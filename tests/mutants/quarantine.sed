# claim: freed extents are not reused before the record that frees them is durable
# file: lib/version.c
# tests: store powerloss
# changes: 1
# killed by: test_store t_replaced_extents_wait_for_a_sync; powerloss (freed_extents_not_reused_before_the_free_is_durable, rename_over_fsynced_keeps_old_or_new)
s/^\t\t\tif (tc_ver_committed(v))$/\t\t\tif (0) \/* mutant: no quarantine *\//
