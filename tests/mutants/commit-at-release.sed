# claim: close() returning 0 commits the tensor (FLUSH), not the last reference's RELEASE
# file: fs/ops.c
# tests: kill
# changes: 2
# killed by: kill.bats "kill -9 after close()" (a dup of the fd is open across the kill)
s/^\tint err = tc_file_commit(fs->store, h->f);$/\tint err = 0; \/* mutant: no commit at FLUSH *\//
s/^\t\ttc_file_close(fs->store, h->f);$/\t\ttc_file_commit(fs->store, h->f); \/* mutant: at RELEASE *\/\n\t\ttc_file_close(fs->store, h->f);/
