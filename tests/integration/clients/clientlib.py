"""clientlib - what the client drivers in this directory share.

Each driver acts out the file I/O of one cache client that people run
today (the calls it makes, in its order, on its names), over a cache
directory: a tcachefs mount, or a plain directory as the reference.  It
runs in phases, one process each, so that a test can kill the daemon and
remount between them:

  fill    write `items` items; every `refresh` items, and once more at
          the end, read the hot set (the first `hot` items) back through
          the client's own read path, byte for byte, so that the hot set
          is what was used most recently
  more    write `more` further items and read nothing
  check   every item present reads back exactly the bytes it was written
          with (a generator seeded by its name), nothing is torn, and
          nothing is there that the client did not write; then what
          eviction must have left:
            --capacity BYTES  (a mount of that capacity) the hot set;
                the rest of what is present is a suffix of the write
                order, ending with the last items written; the first item
                after the hot set is gone (eviction ran); the items hold
                no more than the capacity
            no --capacity     (a plain directory) every item written
          --more says that the more phase ran; --crashed that the daemon
          was killed during fill (then only the first part applies: the
          client's own files are whole or absent, never torn)

check reads the items in the order they were last used (the rest in
write order, then the hot set), so that it leaves the recency order as
it found it.
"""

import argparse
import hashlib
import os
import sys

import numpy as np


def payload(name, nbytes):
    """The bytes an item named `name` holds: a stream seeded by the name."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).bytes(nbytes)


def parse_size(text):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def parse_args(doc, items, hot, refresh, more):
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("dir", help="the cache directory")
    p.add_argument("phase", choices=["fill", "more", "check", "clear"])
    p.add_argument("--capacity", type=parse_size, default=None,
                   help="check: the mount's capacity (eviction expected)")
    p.add_argument("--more", action="store_true",
                   help="check: the more phase ran")
    p.add_argument("--crashed", action="store_true",
                   help="check: the daemon was killed during fill")
    p.add_argument("--items", type=int, default=items,
                   help="fill: how many items (default %(default)s)")
    p.add_argument("--mount", action="store_true",
                   help="the directory is on a tcachefs mount")
    a = p.parse_args()
    a.hot, a.refresh, a.nmore = hot, refresh, more
    a.fill_items = items        # what a normal fill wrote; check assumes it
    return a


class Failures:
    """Collects what check found wrong; report() exits 1 if anything."""

    def __init__(self, who):
        self.who = who
        self.msgs = []

    def __call__(self, msg):
        self.msgs.append(msg)

    def expect(self, cond, msg):
        if not cond:
            self.msgs.append(msg)
        return cond

    def report(self, summary):
        print("%s: %s" % (self.who, summary))
        if self.msgs:
            for m in self.msgs[:25]:
                print("  FAIL " + m)
            if len(self.msgs) > 25:
                print("  ... and %d more" % (len(self.msgs) - 25))
            sys.exit(1)


def refresh_due(i, last, refresh):
    """fill reads the hot set after item i when this is true."""
    return (i + 1) % refresh == 0 or i == last


def lru_expectations(fail, present, nitems, hot, tail):
    """What LRU eviction leaves, for one writer (present: set of item
    indices; items 0..nitems-1 written in order, 0..hot-1 read often and
    last; tail: how many of the last items must be there)."""
    beyond_written(fail, present, nitems)
    rest = sorted(i for i in present if i >= hot)
    for i in range(hot):
        fail.expect(i in present, "hot item %d was evicted" % i)
    if rest:
        first = rest[0]
        missing = [i for i in range(first, nitems) if i not in present]
        fail.expect(not missing, "not a suffix: items %s gone while item %d "
                    "(older) is there" % (missing[:5], first))
    for i in range(max(hot, nitems - tail), nitems):
        fail.expect(i in present, "item %d, among the last written, is gone" % i)
    fail.expect(hot not in present,
                "item %d (the oldest not read again) is there: eviction did "
                "not run" % hot)


def within_capacity(fail, used, capacity):
    fail.expect(used <= capacity, "items hold %d bytes, more than the "
                "capacity %d" % (used, capacity))


def beyond_written(fail, present, nitems):
    extra = sorted(i for i in present if i >= nitems)
    fail.expect(not extra, "items %s are there, but only %d were written"
                % (extra[:5], nitems))


def all_expected(fail, present, nitems):
    beyond_written(fail, present, nitems)
    missing = [i for i in range(nitems) if i not in present]
    fail.expect(not missing, "items gone from a plain directory: %s"
                % missing[:10])


def read_all(path):
    with open(path, "rb") as f:
        return f.read()
