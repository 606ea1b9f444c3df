#!/usr/bin/python3
"""bench_tier.py - tools/bench phase 12: a KV page tier as LLM servers use it.

    bench_tier.py put DIR SIDE N        write N pages of 256 KiB
    bench_tier.py get DIR SIDE N        read them back, twice
    bench_tier.py files DIR SIDE N      the plain-file pattern alone
    bench_tier.py clear DIR SIDE N      remove them

SIDE "mount": DIR is the root of a tcachefs mount and the code is the
tcache package's: PageStore.put of 64 pages at a time (parent links
included), PageStore.get of 64 at a time into buffers allocated before.
SIDE "plain": DIR is a plain directory and the code is what a HiCache-style
file tier does there: numpy's tofile() per page, open() + readinto() per
page.  The keys are the same on both sides (a chain of N pages of 16
tokens, "<key>.kv").

put prints put_s= (os.sync() before, not timed).  get prints get_s= (the
first pass: the caller remounts the mount before it, the plain side's
pages are in the page cache), get2_s= (again), file2_s= (the plain-file
pattern, open() + readinto() per page, on either side, after a pass that
warms it: its second pass), exists_s= (batch_exists of the first 1,000
keys, the median of 5; a stat a key on the plain side).  files prints
file2_s= only (for a mount made with other options).  Every page read is
checked; exit 1 with a message when one differs.
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
from tcache import PageStore  # noqa: E402

import numpy as np  # noqa: E402

PAGE = 256 * 1024
BATCH = 64


def page(i):
    a = np.full(PAGE, i % 251, dtype=np.uint8)
    a[:8] = np.frombuffer(i.to_bytes(8, "little"), dtype=np.uint8)
    return a


def main():
    what, path, side, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    mount = side == "mount"
    store = PageStore(path, 16, suffix=".kv", links=mount)
    rng = random.Random(12)
    toks = [rng.randrange(2 ** 32) for _ in range(16 * n)]
    keys = store.keys_for(toks)
    paths = [store.page_path(k) for k in keys]

    if what == "clear":
        store.clear()
        return
    if what == "put":
        pages = [page(i) for i in range(n)]
        os.sync()
        t0 = time.perf_counter()
        if mount:
            for i in range(0, n, BATCH):
                store.put(toks[16 * i:16 * (i + BATCH)], pages[i:i + BATCH],
                          prior=keys[i - 1] if i else None)
        else:
            for p, a in zip(paths, pages):
                a.tofile(p)
        print("put_s=%.6f" % (time.perf_counter() - t0))
        return

    outs = [np.empty(PAGE, dtype=np.uint8) for _ in range(n)]

    def check(tag):
        for i, o in enumerate(outs):
            if o[8] != i % 251 or int.from_bytes(o[:8].tobytes(), "little") != i \
                    or o[-1] != i % 251:
                sys.exit("bench_tier: page %d differs (%s)" % (i, tag))
            o[:9] = 0

    def get_pass():
        t0 = time.perf_counter()
        if mount:
            for i in range(0, n, BATCH):
                got = store.get(keys[i:i + BATCH], out=outs[i:i + BATCH])
                if any(g is None for g in got):
                    sys.exit("bench_tier: a page is missing")
        else:
            file_pass()
        return time.perf_counter() - t0

    def file_pass():
        for p, o in zip(paths, outs):
            with open(p, "rb", buffering=0) as f:
                f.readinto(o)

    if what == "files":
        file_pass()
        check("files")
        t0 = time.perf_counter()
        file_pass()
        print("file2_s=%.6f" % (time.perf_counter() - t0))
        check("files again")
        return
    get_s = get_pass()
    check("first")
    get2_s = get_pass()
    check("second")
    file_pass()
    check("files")
    t0 = time.perf_counter()
    file_pass()
    file2_s = time.perf_counter() - t0
    check("files again")
    ek = keys[:1000]
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        got = store.batch_exists(ek)
        times.append(time.perf_counter() - t0)
        if got != len(ek):
            sys.exit("bench_tier: batch_exists %d, not %d" % (got, len(ek)))
    times.sort()
    print("get_s=%.6f get2_s=%.6f file2_s=%.6f exists_s=%.6f"
          % (get_s, get2_s, file2_s, times[2]))


if __name__ == "__main__":
    main()
