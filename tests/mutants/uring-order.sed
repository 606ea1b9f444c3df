# claim: with -o uring=on a CPU's requests are served in the order they were made (one ring thread a CPU)
# file: fs/tcfs.h
# tests: uring
# changes: 1
# killed by: uring ("a CPU's requests are served in order": an OPEN overtakes the RELEASE before it, mmap() fails with ENODEV)
s/^#define TCFS_URING_PER_CPU 1$/#define TCFS_URING_PER_CPU 2 \/* mutant: two threads a CPU *\//
