# claim: a writer's release with nothing left to commit leaves what readers' opens recorded, so they stay mappable
# file: fs/ops.c
# tests: numpy
# changes: 1
# killed by: numpy ("a writer's late release leaves the tensor mappable": np.load(mmap_mode="r") fails with ENODEV)
s/^\tif (!tc_file_changed(fs->store, h->f))$/\tif (0 \&\& !tc_file_changed(fs->store, h->f)) \/* mutant *\//
