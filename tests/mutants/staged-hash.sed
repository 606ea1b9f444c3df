# claim: a staged tensor is committed with the xxh3 of the bytes the pool holds, so a read after a reopen verifies it
# file: lib/stage.c
# tests: stage
# changes: 1
# killed by: test_stage t_staged_tensors_commit_at_the_root (EIO after the reopen)
s/^\t\tr = ver_hash(s, t\[i\]->v, t\[i\]->v->size, &t\[i\]->v->xxh3);$/\t\tt[i]->v->xxh3 = 0; \/* mutant: no checksum *\//
