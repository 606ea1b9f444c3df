"""tools/bench phase 11: a tensor read through a mapping, on both sides.

    bench_direct.py FILE mount|plain

mount: tcache.load(FILE) (it must come back direct: the pool's pages,
mapped); plain: np.memmap(FILE, mode="r") of a file of a plain directory
(what np.load(mmap_mode="r") does).  Each is timed from the call to the
end of one full pass over the bytes (a sum of them as uint64), twice:
first_s (the first after a remount, for the mount) and hot_s.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
import tcache  # noqa: E402


def once(path, side):
    t0 = time.perf_counter()
    if side == "mount":
        a = tcache.load(path, dtype="uint8")
        if not a.direct:
            sys.exit("bench_direct: %s is not mapped directly" % path)
    else:
        a = np.memmap(path, dtype=np.uint8, mode="r")
    n = a.size // 8 * 8
    a[:n].view(np.uint64).sum()
    del a
    return time.perf_counter() - t0


path, side = sys.argv[1:3]
first = once(path, side)
hot = once(path, side)
print("first_s=%.6f hot_s=%.6f" % (first, hot))
