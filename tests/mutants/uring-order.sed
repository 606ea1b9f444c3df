# claim: with -o uring=on a CPU's requests are served in the order they were made (one ring thread a CPU)
# file: fs/tcfs.h
# tests: uring
# changes: 1
# known-survivor: the harm left needs a reader's RELEASE to wait behind four round trips; no test provokes that (README)
s/^#define TCFS_URING_PER_CPU 1$/#define TCFS_URING_PER_CPU 2 \/* mutant: two threads a CPU *\//
