# claim: meta.json is not listed, so tar/cp -r/rsync copy out only the user's tensors and a copied tree can be copied back in (no O_EXCL create of meta.json refused)
# file: fs/ops.c
# tests: copy_tools
# changes: 4
# killed by: copy_tools.bats (the tar archive holds no meta.json; cp -r back in)
s/^\tsize_t total = 2 + d->n;$/\tsize_t total = (d->ino == 1 ? 2 : 3) + d->n; \/* mutant: lists meta.json *\//
s/^\t\t\tint err = tc_getattr(fs->store, d->ids\[i - 2\], &st);$/\t\t\tint err = i - 2 == d->n ? tc_getattr(fs->store, d->ino, \&st) : tc_getattr(fs->store, d->ids[i - 2], \&st);/
s/^\t\t\tname = st.name;$/\t\t\tname = i - 2 == d->n ? "meta.json" : st.name;\n\t\t\tif (i - 2 == d->n) { e.attr.st_ino |= TCFS_META_BIT; e.attr.st_mode = S_IFREG | 0644; }/
