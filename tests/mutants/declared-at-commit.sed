# claim: a tensor committed after the meta.json that declares it (TensorDict's K.memmap) takes the declared dtype and shape
# file: lib/version.c
# tests: store
# changes: 1
# killed by: test_store t_open_world_meta (ids.memmap stays uint8)
/^void ver_type(/,/^}/s/^\tif (dir \&\& tc_meta_declared(tc_doc(dir), name, \&set) \&\&$/\tif (0 \&\& tc_meta_declared(tc_doc(dir), name, \&set) \&\& \/* mutant: declarations only at the write *\//
