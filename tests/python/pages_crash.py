#!/usr/bin/python3
"""PageStore.put through a kill -9 of the daemon (run by pages.bats).

    pages_crash.py put MNT PROGRESS     put chain 0, 1, 2, ... until an error;
                                        PROGRESS holds the number of chains
                                        begun (the file is outside the mount)
    pages_crash.py check MNT PROGRESS   after the remount: every page present
                                        is whole, its parent link intact, each
                                        chain's pages a prefix; clean() then
                                        removes every temporary file

Chain c is 40 pages of 16 tokens; a page's bytes are a function of its key
(16 KiB), so the check knows what every page must hold.
"""
import errno
import hashlib
import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "python"))
from tcache import PageStore  # noqa: E402
from tcache.pagestore import PARENT_XATTR  # noqa: E402

PAGES, PAGE_SIZE, BYTES, SUFFIX = 40, 16, 16 * 1024, ".kv"


def chain_tokens(c):
    rng = random.Random(c)
    return [rng.randrange(2 ** 32) for _ in range(PAGES * PAGE_SIZE)]


def page_bytes(key):
    d = hashlib.sha256(key.encode()).digest()
    return d * (BYTES // 32)


def put(store, progress):
    c = 0
    while True:
        with open(progress + ".tmp", "w") as f:
            f.write("%d\n" % (c + 1))
        os.replace(progress + ".tmp", progress)
        toks = chain_tokens(c)
        store.put(toks, [page_bytes(k) for k in store.keys_for(toks)])
        c += 1


def check(store, mnt, progress):
    begun = int(open(progress).read())
    want = {}  # key -> (chain, index, parent file name or None)
    chains = []
    for c in range(begun):
        keys = store.keys_for(chain_tokens(c))
        chains.append(keys)
        for i, k in enumerate(keys):
            want[k] = (c, i, None if i == 0 else keys[i - 1] + SUFFIX)
    names = os.listdir(mnt)
    pages = [n[:64] for n in names if re.fullmatch(r"[0-9a-f]{64}\.kv", n)]
    tmps = [n for n in names if n.startswith(".tcache-tmp-pg-")]
    bad = []
    for k in pages:
        if k not in want:
            bad.append("%s: a page no chain has" % k)
            continue
        with open(store.page_path(k), "rb") as f:
            if f.read() != page_bytes(k):
                bad.append("%s (chain %d page %d): bytes differ" % ((k,) + want[k][:2]))
        try:
            link = os.getxattr(store.page_path(k), PARENT_XATTR).decode()
        except OSError as e:
            if e.errno != errno.ENODATA:
                raise
            link = None
        if link != want[k][2]:
            bad.append("%s (chain %d page %d): parent %r, not %r"
                       % ((k,) + want[k][:2] + (link, want[k][2])))
    present = set(pages)
    for c, keys in enumerate(chains):
        n = sum(k in present for k in keys)
        if store.batch_exists(keys) != n:
            bad.append("chain %d: %d pages present, not a prefix" % (c, n))
    removed = store.clean()
    left = [n for n in os.listdir(mnt) if n.startswith(".tcache-tmp-pg-")]
    print("%d chains begun; %d pages present, all checked; %d temporary files, "
          "%d removed by clean(), %d left" % (begun, len(pages), len(tmps),
                                              removed, len(left)))
    if left:
        bad.append("clean() left %s" % left)
    if not pages:
        bad.append("no page survived: nothing was checked")
    for b in bad:
        print("BAD", b)
    return 1 if bad else 0


def main():
    mode, mnt, progress = sys.argv[1:4]
    store = PageStore(mnt, PAGE_SIZE, suffix=SUFFIX)
    if mode == "put":
        put(store, progress)
    return check(store, mnt, progress)


if __name__ == "__main__":
    sys.exit(main())
