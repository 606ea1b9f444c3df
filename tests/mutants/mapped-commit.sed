# claim: a file only sized through an O_RDWR handle and written through a shared mapping (torch.from_file, TensorDict) is committed at its release, so a crash before the munmap leaves it absent or old, never zeros
# file: fs/ops.c
# tests: kill
# changes: 1
# killed by: kill.bats "a file sized and written through a shared mapping ..." (new.memmap is there, zeros)
/^static int op_flush(/,/^}/s/^\tif (!release \&\& h->rdwr \&\& !h->wrote)$/\tif (0) \/* mutant: committed at close like any file *\//
