#!/usr/bin/python3
"""tcache.PageStore against a tcachefs mount (TAP).

TCACHE_MNT names the mount (tests/integration/pages.bats mounts a fresh
store per test, with the capacity the test needs, and runs one method):

    TCACHE_MNT=/mnt/tcache python3 tests/python/test_pagestore.py [Class.test ...]

Page bytes are a function of their key (page_bytes), so any page read
back can be checked against what was put.
"""
import errno
import hashlib
import os
import random
import subprocess
import sys
import threading
import unittest

sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..", "..", "tools", "python"),
                os.path.dirname(__file__)]
import numpy as np  # noqa: E402
from tcache import PageStore, TensorCache, page_hashes  # noqa: E402
from tcache.batch import Batch  # noqa: E402
from tcache.pagestore import PARENT_XATTR  # noqa: E402
import tap  # noqa: E402

MNT = os.environ.get("TCACHE_MNT", "")
KIB = 1024


def page_bytes(key, size):
    """The bytes a test puts for page key: size bytes derived from key."""
    d = hashlib.sha256(key.encode()).digest()
    return (d * (size // 32 + 1))[:size]


def tokens(n, seed):
    rng = random.Random(seed)
    return [rng.randrange(2 ** 32) for _ in range(n)]


def root():
    return sorted(os.listdir(MNT))


def parent_of(path):
    try:
        return os.getxattr(path, PARENT_XATTR).decode()
    except OSError as e:
        if e.errno == errno.ENODATA:
            return None
        raise


def fill(prefix, count, size):
    """Write count unrelated root files of size bytes (eviction pressure)."""
    blob = os.urandom(size)
    for i in range(count):
        with open(os.path.join(MNT, "%s%04d" % (prefix, i)), "wb") as f:
            f.write(blob)


def stats():
    import json
    with open(os.path.join(MNT, ".tcache-stats")) as f:
        return json.load(f)


def open_fds():
    return len(os.listdir("/proc/self/fd"))


class PageStoreOnAMount(unittest.TestCase):
    def setUp(self):
        self.assertTrue(MNT and os.path.ismount(MNT), "TCACHE_MNT names no mount")

    def chain(self, store, n_pages, seed, size=4 * KIB, put=True):
        """Tokens of n_pages full pages (+ a partial one), their keys, and
        their pages (bytes of page_bytes) put into store when put."""
        toks = tokens(n_pages * store.page_size + store.page_size // 2, seed)
        keys = store.keys_for(toks)
        self.assertEqual(len(keys), n_pages)
        pages = [page_bytes(k, size) for k in keys]
        if put:
            self.assertEqual(store.put(toks, pages), n_pages)
        return toks, keys, pages

    def assertPagesAre(self, store, keys, size):
        got = store.get(keys)
        for k, b in zip(keys, got):
            self.assertIsNotNone(b, k)
            self.assertEqual(bytes(b), page_bytes(k, size), k)

    # -- put, get ---------------------------------------------------------
    def test_put_get_round_trip_bytes_numpy_and_torch(self):
        import torch
        s = PageStore(MNT, 16, suffix=".kv")
        toks = tokens(16 * 6, 1)
        keys = s.keys_for(toks)
        kv = np.random.default_rng(2).standard_normal((2, 8, 64)).astype(np.float16)
        pages = [b"\x01" * 4096, bytearray(b"\x02" * 100), memoryview(b"\x03" * 5000),
                 kv, np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
                 torch.arange(256, dtype=torch.float32).to(torch.bfloat16)]
        self.assertEqual(s.put(toks, pages), 6)
        got = s.get(keys)
        self.assertEqual([bytes(g) for g in got[:3]],
                         [b"\x01" * 4096, b"\x02" * 100, b"\x03" * 5000])
        self.assertTrue(all(isinstance(g, bytearray) for g in got))
        self.assertEqual(bytes(got[3]), kv.tobytes())
        self.assertEqual(np.frombuffer(got[3], np.float16).reshape(2, 8, 64).tolist(),
                         kv.tolist())
        # a Fortran-order array is stored in C order, like tobytes()
        self.assertEqual(bytes(got[4]), np.arange(12, dtype=np.int64).reshape(3, 4).tobytes())
        bf = torch.frombuffer(got[5], dtype=torch.bfloat16)
        self.assertTrue(torch.equal(bf, torch.arange(256, dtype=torch.float32).to(torch.bfloat16)))
        # the files: one per page at the root, named key + suffix
        for k, p in zip(keys, got):
            with open(os.path.join(MNT, k + ".kv"), "rb") as f:
                self.assertEqual(f.read(), bytes(p))
        self.assertEqual(root(), sorted(k + ".kv" for k in keys))

    def test_get_reads_into_caller_buffers(self):
        import torch
        s = PageStore(MNT, 8)
        toks, keys, pages = self.chain(s, 4, 3, size=4096)
        absent = page_hashes(tokens(8, 99), 8)[0]
        outs = [bytearray(4096), np.zeros(1024, np.float32),
                torch.zeros(2048, dtype=torch.int16), memoryview(bytearray(4096)),
                bytearray(b"untouched")]
        got = s.get(keys + [absent], out=outs)
        for i in range(4):
            self.assertIs(got[i], outs[i])  # the caller's own buffer, filled
        self.assertIsNone(got[4])
        self.assertEqual(outs[4], bytearray(b"untouched"))
        self.assertEqual(bytes(outs[0]), pages[0])
        self.assertEqual(outs[1].tobytes(), pages[1])
        self.assertEqual(outs[2].numpy().tobytes(), pages[2])
        self.assertEqual(bytes(outs[3]), pages[3])
        # a buffer of the wrong size: ValueError naming the key
        with self.assertRaises(ValueError) as cm:
            s.get(keys[:2], out=[bytearray(4096), bytearray(4095)])
        self.assertIn(keys[1], str(cm.exception))
        with self.assertRaises(ValueError):
            s.get(keys[:1], out=[b"\0" * 4096])  # read-only
        with self.assertRaises(ValueError):
            s.get(keys[:1], out=[np.zeros((64, 128), np.uint8)[:, ::2]])  # not contiguous
        with self.assertRaises(ValueError):
            s.get(keys[:2], out=[bytearray(4096)])  # one buffer for two keys
        self.assertEqual(s.get([]), [])

    def test_put_skips_present_pages(self):
        s = PageStore(MNT, 4)
        toks = tokens(4 * 6, 4)
        keys = s.keys_for(toks)
        first = [page_bytes(k, 1000) for k in keys]
        self.assertEqual(s.put(toks, first[:3]), 3)
        inodes = [os.stat(s.page_path(k)).st_ino for k in keys[:3]]
        other = [b"\xff" * 1000] * 3 + first[3:]
        self.assertEqual(s.put(toks, other), 3)       # only pages 3..5 written
        self.assertEqual([os.stat(s.page_path(k)).st_ino for k in keys[:3]], inodes)
        self.assertPagesAre(s, keys, 1000)             # 0..2 kept their bytes
        self.assertEqual(s.put(toks, first), 0)
        self.assertEqual(s.put(toks, []), 0)
        self.assertEqual(root(), sorted(keys))          # no temporary left

    def test_exists_batch_exists_remove_clear(self):
        s = PageStore(MNT, 4, suffix="_m_0_1.bin")
        toks, keys, _ = self.chain(s, 8, 5, size=512)
        self.assertTrue(all(s.exists(k) for k in keys))
        self.assertEqual(s.batch_exists(keys), 8)
        self.assertEqual(s.batch_exists([]), 0)
        self.assertTrue(s.remove(keys[5]))
        self.assertFalse(s.remove(keys[5]))            # absent: no error
        self.assertFalse(s.exists(keys[5]))
        self.assertEqual(s.batch_exists(keys), 5)
        self.assertEqual(s.batch_exists(keys[6:]), 2)
        # other files at the root: another suffix, another client, an entry
        other = PageStore(MNT, 4, suffix=".other")
        _, okeys, _ = self.chain(other, 2, 6, size=100)
        with open(os.path.join(MNT, "notes.txt"), "wb") as f:
            f.write(b"keep")
        with open(os.path.join(MNT, keys[0]), "wb") as f:  # no suffix: not ours
            f.write(b"keep")
        TensorCache(MNT)["entry"] = {"x": np.arange(3)}
        # a crash's leftover temporary file of this store, and of the other
        for suffix in ("_m_0_1.bin", ".other"):
            with open(os.path.join(MNT, ".tcache-tmp-pg-1-2-3-0123abcd." + suffix), "wb") as f:
                f.write(b"x")
        before = root()
        self.assertEqual(s.clear(), 7 + 1)            # 7 pages, 1 temporary
        after = root()
        self.assertEqual(sorted(set(before) - set(after)),
                         sorted([k + "_m_0_1.bin" for i, k in enumerate(keys) if i != 5]
                                + [".tcache-tmp-pg-1-2-3-0123abcd._m_0_1.bin"]))
        self.assertEqual(s.batch_exists(keys), 0)
        self.assertEqual(other.batch_exists(okeys), 2)
        self.assertIn("notes.txt", after)
        self.assertIn(keys[0], after)
        self.assertIn(".tcache-tmp-pg-1-2-3-0123abcd..other", after)
        self.assertEqual(s.clear(), 0)
        with self.assertRaises(ValueError):
            s.exists("../notes.txt")
        with self.assertRaises(ValueError):
            s.remove(keys[0].upper())

    def test_match_prefix_counts_leading_pages(self):
        s = PageStore(MNT, 16)
        toks, keys, _ = self.chain(s, 10, 7, size=256)
        self.assertEqual(s.match_prefix(toks), 160)
        self.assertEqual(s.match_prefix(toks[:16 * 4 + 3]), 64)     # a shorter query
        self.assertEqual(s.match_prefix(toks[:15]), 0)              # no full page
        # a sequence sharing the first 3 pages, then differing
        fork = toks[:48] + tokens(64, 8)
        self.assertEqual(s.match_prefix(fork), 48)
        # a partial prefix: page 6 gone, so 6 pages match, not the 9 present
        s.remove(keys[6])
        self.assertEqual(s.match_prefix(toks), 96)
        s.remove(keys[0])
        self.assertEqual(s.match_prefix(toks), 0)
        self.assertEqual(s.batch_exists(keys[1:]), 5)
        # a chain continued with prior: the keys and the match go on
        rest = tokens(32, 9)
        self.assertEqual(s.put(rest, [b"r" * 256] * 2, prior=keys[9]), 2)
        self.assertEqual(s.keys_for(rest, prior=keys[9]),
                         page_hashes(toks[:160] + rest, 16)[10:])
        self.assertEqual(s.match_prefix(rest, prior=keys[9]), 32)

    def test_match_prefix_of_a_thousand_pages(self):
        s = PageStore(MNT, 4)
        toks, keys, _ = self.chain(s, 1000, 10, size=64)
        self.assertEqual(s.match_prefix(toks), 4000)
        s.remove(keys[999])
        self.assertEqual(s.match_prefix(toks), 3996)

    def test_a_namespace_isolates_chains(self):
        toks = tokens(8 * 5, 11)
        a = PageStore(MNT, 8, namespace="model-a")
        b = PageStore(MNT, 8, namespace=b"model-b")
        plain = PageStore(MNT, 8)
        ka, kb, kp = a.keys_for(toks), b.keys_for(toks), plain.keys_for(toks)
        self.assertEqual(kp, page_hashes(toks, 8))     # no namespace: SGLang's
        self.assertEqual(ka, page_hashes(toks, 8, namespace="model-a"))
        self.assertEqual(len(set(ka) | set(kb) | set(kp)), 15)
        self.assertEqual(a.put(toks, [page_bytes(k, 128) for k in ka]), 5)
        self.assertEqual(a.match_prefix(toks), 40)
        self.assertEqual(b.match_prefix(toks), 0)
        self.assertEqual(plain.match_prefix(toks), 0)
        self.assertEqual(b.put(toks, [page_bytes(k, 128) for k in kb]), 5)
        self.assertEqual(b.match_prefix(toks), 40)
        self.assertPagesAre(a, ka, 128)
        self.assertPagesAre(b, kb, 128)

    def test_parent_link_of_page_i_names_page_i_minus_1(self):
        s = PageStore(MNT, 4, suffix=".kv")
        toks, keys, _ = self.chain(s, 6, 12, size=300)
        self.assertIsNone(parent_of(s.page_path(keys[0])))
        for i in range(1, 6):
            self.assertEqual(parent_of(s.page_path(keys[i])), keys[i - 1] + ".kv")
        # continued with prior: the first page's parent is prior's file
        more = tokens(8, 13)
        s.put(more, [b"m" * 300] * 2, prior=keys[5])
        k2 = s.keys_for(more, prior=keys[5])
        self.assertEqual(parent_of(s.page_path(k2[0])), keys[5] + ".kv")
        self.assertEqual(parent_of(s.page_path(k2[1])), k2[0] + ".kv")
        # a present page keeps its link (put skips it)
        s.put(toks, [b"z" * 300] * 6)
        self.assertEqual(parent_of(s.page_path(keys[3])), keys[2] + ".kv")

    def test_bad_input_is_refused_before_anything_is_written(self):
        with self.assertRaises(ValueError):
            PageStore(MNT, 0)
        with self.assertRaises(TypeError):
            PageStore(MNT, 4.0)
        with self.assertRaises(ValueError):
            PageStore(MNT, 4, suffix="a/b")
        with self.assertRaises(ValueError):
            PageStore(MNT, 4, suffix="x" * 200)
        with self.assertRaises(TypeError):
            PageStore(MNT, 4, namespace=5)
        with self.assertRaises(NotADirectoryError):
            PageStore(os.path.join(MNT, "nope"), 4)
        s = PageStore(MNT, 4)
        toks = tokens(12, 14)
        for pages, exc in (([b"a", b"", b"c"], ValueError),       # an empty page
                           ([b"a"] * 4, ValueError),               # 4 pages, 3 full
                           ([b"a", 5, b"c"], TypeError),           # not a buffer
                           ([b"a"] * 3, None)):
            with self.subTest(pages=pages):
                if exc is None:
                    self.assertEqual(s.put(toks, pages), 3)
                    continue
                with self.assertRaises(exc):
                    s.put(toks, pages)
                self.assertEqual(root(), [])
        with self.assertRaises(ValueError):
            s.put([1, 2, 3, -1], [b"x"])
        with self.assertRaises(ValueError):
            s.get(["nothex"])

    def test_puts_from_threads_at_once_leave_whole_pages(self):
        s = PageStore(MNT, 8)
        toks = tokens(8 * 40, 15)
        keys = s.keys_for(toks)
        pages = [page_bytes(k, 8 * KIB) for k in keys]
        errors, counts = [], []

        def put():
            try:
                counts.append(s.put(toks, pages))
            except BaseException as e:
                errors.append(repr(e))
        ts = [threading.Thread(target=put) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        self.assertGreaterEqual(sum(counts), 40)       # each page by one or more
        self.assertPagesAre(s, keys, 8 * KIB)
        for i in range(1, 40):
            self.assertEqual(parent_of(s.page_path(keys[i])), keys[i - 1])
        self.assertEqual(root(), sorted(keys))          # no temporary left

    def test_clean_removes_leftovers_of_writers_that_are_gone(self):
        s = PageStore(MNT, 4)
        dead = subprocess.Popen(["true"])
        dead.wait()
        live = os.getppid()
        names = [".tcache-tmp-pg-%d-1-1-0000abcd." % dead.pid,     # its writer is gone
                 ".tcache-tmp-pg-%d-1-2-0000abcd." % os.getpid(),  # ours, not being written
                 ".tcache-tmp-pg-%d-1-3-0000abcd." % live]          # a live process's
        for n in names:
            with open(os.path.join(MNT, n), "wb") as f:
                f.write(b"t")
        self.assertEqual(s.clean(), 2)
        self.assertEqual(root(), [names[2]])
        self.assertEqual(s.clear(), 1)
        self.assertEqual(root(), [])

    # -- eviction (pages.bats mounts these with -o capacity=4M) ------------
    def test_locked_pages_survive_eviction_and_go_after_release(self):
        s = PageStore(MNT, 16)
        toks, keys, _ = self.chain(s, 16, 16, size=64 * KIB)      # 1 MiB
        absent = page_hashes(tokens(16, 17), 16)[0]
        # a store keeps the root and the pool's mapping open once it has
        # batched a request (two descriptors), and the pool open for
        # writing once it has put pages straight into it (one more);
        # close() lets them go
        s.close()
        before = open_fds()
        s.get([])
        self.assertEqual(open_fds(), before + 2)
        s.put(tokens(16, 19), [page_bytes("x", 4 * KIB)])
        self.assertEqual(open_fds(), before + 3)
        s.close()
        self.assertEqual(open_fds(), before)
        s.get([])
        s.put(tokens(16, 20), [page_bytes("y", 4 * KIB)])
        fds = open_fds()
        with s.lock(keys + [absent]) as locked:
            self.assertEqual(locked, keys)                # the absent one is not
            self.assertEqual(open_fds(), fds + 16)
            fill("a", 128, 64 * KIB)                       # 8 MiB through 4 MiB
            self.assertFalse(os.path.exists(os.path.join(MNT, "a0000")))  # evicted
            self.assertEqual(s.match_prefix(toks), 256)
            self.assertPagesAre(s, keys, 64 * KIB)
        self.assertEqual(open_fds(), fds)
        fill("b", 128, 64 * KIB)
        self.assertEqual(s.batch_exists(keys), 0)
        self.assertFalse(any(s.exists(k) for k in keys))
        # the lock ends on an exception too
        toks, keys, _ = self.chain(s, 4, 18, size=64 * KIB)
        with self.assertRaises(RuntimeError):
            with s.lock(keys):
                self.assertEqual(open_fds(), fds + 4)
                raise RuntimeError("in the block")
        self.assertEqual(open_fds(), fds)

    # -- batched requests (tcache.batch) -----------------------------------
    def test_batched_get_counts_pins_and_refreshes_like_opens(self):
        """A batched get is one pin request per batch: each page present
        counts a hit and becomes most recently used, as its open would, and
        batch_exists counts probes and changes no recency."""
        s = PageStore(MNT, 4, suffix=".kv")
        self.assertTrue(s._batcher().ok, "batches are on for root on a mount")
        _, old, _ = self.chain(s, 8, 30, size=64 * KIB)   # put first
        _, new, _ = self.chain(s, 8, 31, size=64 * KIB)   # then these
        absent = page_hashes(tokens(4, 32), 4)[0]
        h0 = stats()["hits"]
        got = s.get(old + [absent])                      # old: most recent now
        self.assertEqual(stats()["hits"], h0 + 8)
        self.assertIsNone(got[-1])
        for k, b in zip(old, got):
            self.assertEqual(bytes(b), page_bytes(k, 64 * KIB), k)
        p0, h1 = stats()["probes"], stats()["hits"]
        self.assertEqual(s.batch_exists(new + [absent] + old), 8)
        self.assertEqual(stats()["probes"], p0 + 9)      # stopped at the absent
        self.assertEqual(stats()["hits"], h1)
        # pressure: the chain read last stays, the other goes (from its end)
        fill("z", 52, 64 * KIB)            # 1 + 3.25 MiB into 4 MiB: some go
        self.assertEqual(s.batch_exists(old), 8)
        self.assertLess(s.batch_exists(new), 8)

    def test_batch_pins_hold_pages_until_the_block_ends(self):
        """Pinned pages are not evicted, and their pool bytes stay theirs,
        while the block runs, however much is written; after it, they go
        like any page."""
        s = PageStore(MNT, 16)
        _, keys, _ = self.chain(s, 16, 33, size=64 * KIB)       # 1 MiB
        b = Batch(MNT)
        self.assertTrue(b.ok)
        with b.pinned([k for k in keys]) as got:
            self.assertTrue(all(g is not None and g[1] is not None for g in got))
            fill("a", 128, 64 * KIB)                    # 8 MiB through 4 MiB
            self.assertFalse(os.path.exists(os.path.join(MNT, "a0000")))  # evicted
            for k, (size, view) in zip(keys, got):
                self.assertEqual(size, 64 * KIB)
                self.assertEqual(bytes(view), page_bytes(k, 64 * KIB), k)
            self.assertEqual(s.batch_exists(keys), 16)
        fill("b", 128, 64 * KIB)
        self.assertEqual(s.batch_exists(keys), 0)
        b.close()

    def test_batches_of_many_pages_and_the_fallbacks(self):
        """More pages than one request holds; pages of several pool runs
        read through their files; a store on a plain directory and a reader
        that may not read the pool get the same bytes without batches."""
        s = PageStore(MNT, 2)
        _, keys, _ = self.chain(s, 450, 34, size=300)     # packed, 3 requests
        absent = page_hashes(tokens(2, 35), 2)[0]
        got = s.get(keys[:200] + [absent] + keys[200:])
        self.assertIsNone(got[200])
        for k, b in zip(keys, got[:200] + got[201:]):
            self.assertEqual(bytes(b), page_bytes(k, 300), k)
        self.assertEqual(s.batch_exists(keys), 450)
        self.assertEqual(s.batch_exists(keys[:300] + [absent] + keys[300:]), 300)
        # a page grown in pieces between two other files' writes: its
        # bytes lie in several runs of the pool
        name = os.path.join(MNT, keys[0])
        other = os.path.join(MNT, "interleaved")
        with open(name, "wb") as f, open(other, "wb") as g:
            for i in range(8):
                f.write(bytes([i]) * 65536)
                f.flush()
                g.write(bytes([i]) * 65536)
                g.flush()
        want = b"".join(bytes([i]) * 65536 for i in range(8))
        with Batch(MNT).pinned([keys[0]]) as pg:
            self.assertEqual(pg[0][0], len(want))
            several = pg[0][1] is None
        out = [bytearray(len(want))]
        self.assertIs(s.get(keys[:1], out=out)[0], out[0])
        self.assertEqual(bytes(out[0]), want)
        self.assertTrue(several, "the interleaved page should span runs")
        # an unprivileged reader: no pool access, the files instead
        code = ("import sys; sys.path.insert(0, %r); from tcache import PageStore;"
                "s = PageStore(%r, 2); b = s._batcher();"
                "print(b.ok, b.can_exist, s.batch_exists(%r),"
                " bytes(s.get(%r)[0]) == %r)"
                % (os.path.join(os.path.dirname(__file__), "..", "..", "tools", "python"),
                   MNT, keys[1:5], keys[1:2], page_bytes(keys[1], 300)))
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                              "--clear-groups", sys.executable, "-c", code],
                             capture_output=True, text=True)
        self.assertEqual(out.stdout.split(), ["False", "True", "4", "True"], out.stderr)

    def test_staged_puts_write_the_pool_and_fall_back_to_files(self):
        """A put on a mount whose pool this process may write stages its
        pages, writes them into the pool itself and names them in one
        record: no lookup, no temporary file, no open a page.  A page
        present is kept.  A page the pool has no single run for, and a
        writer that may not stage, go through files: the same pages."""
        s = PageStore(MNT, 4)
        st0 = stats()
        toks, keys, pages = self.chain(s, 40, 40, size=64 * KIB)  # 2.5 MiB
        st1 = stats()
        self.assertTrue(s._batcher().can_stage)
        # one run of 40: one lookup of each (a request), then its last page
        # is opened (held for the next run's child): one hit; no misses
        self.assertEqual(st1["probes"], st0["probes"] + 41)
        self.assertEqual(st1["hits"], st0["hits"] + 1)
        self.assertEqual(st1["misses"], st0["misses"])
        self.assertEqual(root(), sorted(keys))                # no temporary
        self.assertPagesAre(s, keys, 64 * KIB)
        for i in range(1, 40):
            self.assertEqual(parent_of(s.page_path(keys[i])), keys[i - 1])
        # 8 more: the 40 present are kept, the new ones link on
        toks2 = toks[:40 * 4] + tokens(8 * 4, 41)
        keys2 = s.keys_for(toks2)
        pages2 = [page_bytes(k, 64 * KIB) for k in keys2]
        pages2[0] = b"not written: present"
        self.assertEqual(s.put(toks2, pages2), 8)
        self.assertPagesAre(s, keys2, 64 * KIB)
        self.assertEqual(parent_of(s.page_path(keys2[40])), keys2[39])
        s.clear()
        # a pool cut into 64 KiB runs: a 256 KiB page has none of its own
        fill("a", 64, 64 * KIB)                               # 4 of 4 MiB
        for i in range(0, 64, 2):
            os.unlink(os.path.join(MNT, "a%04d" % i))
        _, keys3, _ = self.chain(s, 2, 42, size=256 * KIB)
        self.assertPagesAre(s, keys3, 256 * KIB)
        self.assertEqual(parent_of(s.page_path(keys3[1])), keys3[0])
        with Batch(MNT).pinned(keys3) as pg:
            self.assertTrue(all(p[1] is None for p in pg), "several runs each")
        s.clear()
        # staging refused: files, as on any directory
        s._batcher().can_stage = False
        _, keys4, _ = self.chain(s, 6, 43, size=8 * KIB)
        self.assertPagesAre(s, keys4, 8 * KIB)
        self.assertEqual(parent_of(s.page_path(keys4[5])), keys4[4])
        # who may not write the pool may not stage (EACCES): files instead
        code = ("import sys, errno; sys.path.insert(0, %r); from tcache.batch import Batch;"
                "b = Batch(%r)\n"
                "try: b.staged_put([memoryview(b'x')], [b'n'], [b''])\n"
                "except OSError as e: print(errno.errorcode[e.errno], b.can_stage)"
                % (os.path.join(os.path.dirname(__file__), "..", "..", "tools", "python"),
                   MNT))
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                              "--clear-groups", sys.executable, "-c", code],
                             capture_output=True, text=True)
        self.assertEqual(out.stdout.split(), ["EACCES", "False"], out.stderr)

    def test_prefix_aware_eviction_keeps_a_prefix(self):
        s = PageStore(MNT, 16, suffix=".kv")
        toks, keys, _ = self.chain(s, 100, 19, size=16 * KIB)     # 1.6 MiB
        self.assertEqual(len(s.get(keys)), 100)        # read in order: 0 oldest
        seen = set()
        blob = os.urandom(64 * KIB)
        for i in range(100):                             # 6.4 MiB through 4 MiB
            with open(os.path.join(MNT, "other%03d" % i), "wb") as f:
                f.write(blob)
            present = sum(os.path.exists(s.page_path(k)) for k in keys)
            self.assertEqual(s.match_prefix(toks), 16 * present,
                             "after write %d, %d pages present, not a prefix"
                             % (i, present))
            seen.add(present)
        # the chain went from whole to gone through partial prefixes
        self.assertIn(100, seen)
        self.assertIn(0, seen)
        self.assertTrue(any(0 < n < 100 for n in seen), seen)


if __name__ == "__main__":
    tap.main()
