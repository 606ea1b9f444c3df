# claim: an entry being written is never evicted (write handles count toward the entry's open count)
# file: lib/store.c
# tests: store capacity
# changes: 3
# killed by: capacity.bats "an entry being written is not evicted while more than the capacity flows through"
# The counts stay consistent: opening, closing and renaming all leave write handles out.
s/^\topens_add(n->parent, 1);$/\topens_add(n->parent, (flags \& TC_O_WRITE) ? 0 : 1);/
s/^\t\topens_add(n->parent, -1);$/\t\topens_add(n->parent, (fh->flags \& TC_O_WRITE) ? 0 : -1);/
s/^\treturn n->kind == TC_KIND_TENSOR ? n->refs : n->opens;$/\treturn n->kind == TC_KIND_TENSOR ? n->refs - writers_of(n) : n->opens;/
