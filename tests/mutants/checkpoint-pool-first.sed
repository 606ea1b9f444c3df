# claim: a checkpoint (clean unmount, background child) syncs the pool before its records become durable
# file: lib/journal.c
# tests: powerloss
# changes: 1
# killed by: powerloss (clean_close_keeps_unsynced_tensors_absent_or_exact, background_checkpoints_...: EIO after the power loss)
s/^\treturn j->data_fd >= 0 \&\& fdatasync(j->data_fd) < 0 ? -errno : 0;$/\treturn 0; \/* mutant: checkpoints do not sync the pool *\//
