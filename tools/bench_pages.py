#!/usr/bin/python3
"""bench_pages.py - tools/bench phase 9: tcache.PageStore on one directory.

    bench_pages.py DIR LINKS PUT_N MATCH_N

DIR is the root of a mount (LINKS 1: pages get their parent links) or a
plain directory (LINKS 0).  On a store emptied first (not timed), in order:

  match  MATCH_N pages of 16 tokens and 64 bytes put (not timed), then
         match_prefix of their tokens, timed once (hashing and one stat a
         page; the dentries as the put left them): match_s=; and
         batch_exists of the keys computed before (the stats alone):
         exists_s=
  put    PUT_N pages of 256 KiB into an empty store (os.sync() before,
         not timed; the time includes each page's close, where the mount
         commits it): put_s=
  get    those pages read back into buffers allocated before (readinto;
         plain: from the page cache; the mount: its first read of pages
         written with direct I/O, through the daemon): get_s=; and read
         again (the mount too from the page cache, kept across opens):
         get2_s=

Prints one line "match_s=... exists_s=... put_s=... get_s=... get2_s=..."
(seconds)
and empties the store again.  Exit 1 with a message when a result is
wrong (a match short of the chain, a page that reads back different).
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
from tcache import PageStore  # noqa: E402

PAGE_BYTES = 256 * 1024


def timed(f, *args, **kw):
    t0 = time.perf_counter()
    r = f(*args, **kw)
    return r, time.perf_counter() - t0


def main():
    path, links, put_n, match_n = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(9)
    store = PageStore(path, 16, suffix=".kv", links=links)
    store.clear()

    toks = [rng.randrange(2 ** 32) for _ in range(16 * match_n)]
    keys = store.keys_for(toks)
    store.put(toks, [b"m" * 64] * match_n)
    got, match_s = timed(store.match_prefix, toks)
    if got != 16 * match_n:
        sys.exit("bench_pages: match_prefix %d, not %d" % (got, 16 * match_n))
    got, exists_s = timed(store.batch_exists, keys)
    if got != match_n:
        sys.exit("bench_pages: batch_exists %d, not %d" % (got, match_n))
    store.clear()

    toks = [rng.randrange(2 ** 32) for _ in range(16 * put_n)]
    keys = store.keys_for(toks)
    blob = bytearray(os.urandom(PAGE_BYTES))
    pages = []
    for i in range(put_n):  # distinct pages: the first 8 bytes differ
        blob[:8] = i.to_bytes(8, "little")
        pages.append(bytes(blob))
    os.sync()
    n, put_s = timed(store.put, toks, pages)
    if n != put_n:
        sys.exit("bench_pages: put wrote %d pages, not %d" % (n, put_n))
    outs = [bytearray(PAGE_BYTES) for _ in range(put_n)]
    got, get_s = timed(store.get, keys, out=outs)
    if any(g is not o for g, o in zip(got, outs)) or outs != pages:
        sys.exit("bench_pages: a page read back differs")
    for o in outs:
        o[:8] = bytes(8)
    got, get2_s = timed(store.get, keys, out=outs)
    if outs != pages:
        sys.exit("bench_pages: a page read back again differs")
    store.clear()
    print("match_s=%.6f exists_s=%.6f put_s=%.6f get_s=%.6f get2_s=%.6f"
          % (match_s, exists_s, put_s, get_s, get2_s))


if __name__ == "__main__":
    main()
