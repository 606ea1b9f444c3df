# claim: a tensor committed after the meta.json that declares it (TensorDict's K.memmap) takes the declared dtype and shape
# file: lib/version.c
# tests: store
# changes: 1
# killed by: test_store t_open_world_meta (ids.memmap stays uint8)
/^void ver_type(/,/^}/s/^\tif (n->parent \&\& tc_meta_declared(n->parent->doc, n->name, \&set) \&\&$/\tif (0 \&\& tc_meta_declared(n->parent->doc, n->name, \&set) \&\& \/* mutant: declarations only at the write *\//
