# claim: a sync makes the pool durable before it marks the journal (an fsynced tensor survives power loss; unsynced ones are absent or exact)
# file: lib/durable.c
# tests: powerloss
# changes: 1
# killed by: powerloss (fsynced_writes_survive and the random mixes: lost or EIO after a power loss)
s/^\tr = fdatasync(s->pool.fd) < 0 ? -errno : 0;$/\tr = 0; \/* mutant: the pool is not synced *\//
