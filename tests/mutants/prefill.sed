# claim: the first read-only open of a tensor of at most 1 MiB since the kernel loaded its inode sends its bytes along (no READ request)
# file: fs/ops.c
# tests: copy_tools
# changes: 1
# killed by: copy_tools ("after a remount a small tensor's bytes come with its open": READ requests counted)
s/^\tif (h->prefill && prefill(fs, h, ino, h->prefill))$/\tif (0 \&\& h->prefill \&\& prefill(fs, h, ino, h->prefill)) \/* mutant: no prefill *\//
