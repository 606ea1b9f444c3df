#!/usr/bin/python3
"""tcache.TensorCache against a tcachefs mount (TAP).

TCACHE_MNT names the mount (tests/integration/python.bats mounts a fresh
store per test and runs one test method each):

    TCACHE_MNT=/mnt/tcache python3 tests/python/test_tensorcache.py [Class.test ...]
"""
import hashlib
import json
import os
import sys
import threading
import unittest

sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..", "..", "tools", "python"),
                os.path.dirname(__file__)]
import numpy as np  # noqa: E402
from tcache import TensorCache, key_to_basename  # noqa: E402
import tap  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

MNT = os.environ.get("TCACHE_MNT", "")


def meta(*parts):
    with open(os.path.join(MNT, *parts, "meta.json")) as f:
        return json.load(f)["__tcache__"]


def leftovers():
    return [n for n in os.listdir(MNT) if n.startswith(".tcache-")]


@unittest.skipUnless(MNT and os.path.ismount(MNT), "TCACHE_MNT names no mount")
class TensorCacheOnAMount(unittest.TestCase):
    def setUp(self):
        self.cache = TensorCache(MNT)

    def assertSameArray(self, got, want):
        self.assertEqual(got.dtype, want.dtype)
        self.assertEqual(got.shape, want.shape)
        self.assertTrue(np.array_equal(np.asarray(got), want))

    def test_round_trips_numpy_dtypes_0d_and_empty(self):
        rng = np.random.default_rng(1)
        tree = {}
        for dt in ("float16", "float32", "float64", "int8", "int16", "int32",
                   "int64", "uint8", "uint16", "uint32", "uint64"):
            tree[dt] = (rng.standard_normal((3, 5)) * 100).astype(dt)
        tree["bool"] = rng.standard_normal((7,)) > 0
        tree["int64_min_max"] = np.array([np.iinfo(np.int64).min, -1, np.iinfo(np.int64).max])
        tree["zero_d"] = np.array(3.25, dtype=np.float32)
        tree["empty"] = np.zeros((0, 4), dtype=np.float16)
        tree["big_endian"] = np.arange(6, dtype=">i4").reshape(2, 3)
        tree["fortran"] = np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4))
        self.cache["dtypes"] = tree
        got = self.cache["dtypes"]
        self.assertEqual(sorted(got), sorted(tree))
        for name, want in tree.items():
            with self.subTest(name=name):
                want = want.astype(want.dtype.newbyteorder("="))
                self.assertSameArray(got[name], want)
                with self.assertRaises(ValueError):  # read-only
                    got[name][...] = 0
                if want.size:
                    self.assertIsInstance(got[name], np.memmap)
        m = meta(key_to_basename("dtypes"))
        self.assertEqual(m["tensors"]["float16"]["dtype"], "float16")
        self.assertEqual(m["tensors"]["float16"]["shape"], [3, 5])
        self.assertEqual(m["attrs"]["0d"], ["zero_d"])
        self.assertEqual(m["tensors"]["empty"]["nbytes"], 0)
        self.assertEqual(m["tensors"]["bool"]["dtype"], "bool")
        # the files are the raw bytes, C order, little-endian
        with open(os.path.join(MNT, key_to_basename("dtypes"), "big_endian"), "rb") as f:
            self.assertEqual(f.read(), np.arange(6, dtype="<i4").tobytes())

    @unittest.skipIf(torch is None, "torch does not import")
    def test_round_trips_torch_bfloat16_and_float16(self):
        bf = torch.linspace(-3, 3, 24, dtype=torch.float32).reshape(2, 3, 4).to(torch.bfloat16)
        hf = torch.arange(10, dtype=torch.float16)
        bf0 = torch.tensor(1.5, dtype=torch.bfloat16)
        self.cache["torch"] = {"bf": bf, "hf": hf, "bf0": bf0,
                               "bf_empty": torch.zeros(0, dtype=torch.bfloat16)}
        got = self.cache["torch"]
        self.assertIsInstance(got["bf"], torch.Tensor)
        self.assertEqual(got["bf"].dtype, torch.bfloat16)
        self.assertEqual(tuple(got["bf"].shape), (2, 3, 4))
        self.assertTrue(torch.equal(got["bf"], bf))
        self.assertTrue(torch.equal(got["bf0"], bf0))
        self.assertEqual(tuple(got["bf_empty"].shape), (0,))
        self.assertSameArray(got["hf"], hf.numpy())
        base = key_to_basename("torch")
        self.assertEqual(meta(base)["tensors"]["bf"]["dtype"], "bfloat16")
        with open(os.path.join(MNT, base, "bf"), "rb") as f:
            self.assertEqual(f.read(), bf.view(torch.int16).numpy().tobytes())

    def test_nested_dicts_are_groups(self):
        x, y, z = np.arange(4), np.ones((2, 2), np.float32), np.array([True])
        self.cache["nested"] = {"x": x, "g": {"y": y, "h": {"z": z}}, "e": {}}
        got = self.cache["nested"]
        self.assertEqual(sorted(got), ["e", "g", "x"])
        self.assertEqual(got["e"], {})
        self.assertSameArray(got["x"], x)
        self.assertSameArray(got["g"]["y"], y)
        self.assertSameArray(got["g"]["h"]["z"], z)
        base = key_to_basename("nested")
        self.assertTrue(os.path.isfile(os.path.join(MNT, base, "g", "h", "z")))
        self.assertEqual(meta(base, "g")["tensors"]["y"]["shape"], [2, 2])
        self.assertEqual(sorted(meta(base)["groups"]), ["e", "g"])

    def test_key_is_kept_in_attrs_under_its_basename(self):
        self.cache[("prompt", 7)] = {"x": np.zeros(2)}
        base = hashlib.sha256(str(("prompt", 7)).encode()).hexdigest()[:32]
        self.assertEqual(key_to_basename(("prompt", 7)), base)
        self.assertEqual(meta(base)["attrs"], {"key": "('prompt', 7)"})
        self.assertIn(("prompt", 7), self.cache)
        self.assertIn("('prompt', 7)", self.cache.keys())

    def test_get_contains_len_keys(self):
        self.assertEqual(len(self.cache), 0)
        self.assertIsNone(self.cache.get("a"))
        self.assertEqual(self.cache.get("a", 5), 5)
        self.assertNotIn("a", self.cache)
        with self.assertRaises(KeyError):
            self.cache["a"]
        for k in ("a", "b", "c"):
            self.cache[k] = {"v": np.array([ord(k)])}
        self.assertEqual(len(self.cache), 3)
        self.assertEqual(sorted(self.cache.keys()), ["a", "b", "c"])
        self.assertIn("b", self.cache)
        self.assertEqual(int(self.cache.get("b")["v"][0]), ord("b"))
        # another client's entries are not ours
        os.mkdir(os.path.join(MNT, "other"))
        with open(os.path.join(MNT, "other", "f"), "wb") as f:
            f.write(b"x" * 10)
        with open(os.path.join(MNT, "flat.bin"), "wb") as f:
            f.write(b"y" * 10)
        self.assertEqual(len(self.cache), 3)
        self.assertNotIn("other", self.cache)

    def test_replace_is_whole_and_leaves_nothing_behind(self):
        self.cache["k"] = {"x": np.full(1000, 1, np.int32), "y": np.zeros(3)}
        held = self.cache["k"]["x"]  # a reader of the old entry
        self.cache["k"] = {"z": np.full(5, 2, np.int8)}
        got = self.cache["k"]
        self.assertEqual(sorted(got), ["z"])
        self.assertSameArray(got["z"], np.full(5, 2, np.int8))
        self.assertEqual(leftovers(), [])
        self.assertEqual(len(self.cache), 1)
        self.assertTrue((np.asarray(held) == 1).all())  # still the old bytes

    def test_concurrent_reader_sees_old_new_or_nothing_never_a_mix(self):
        def version(v):
            return {"a": np.full(4096, v, np.int64), "g": {"b": np.full(100, v, np.int64)}}
        self.cache["hot"] = version(0)
        stop, first_read = threading.Event(), threading.Event()
        seen, bad = set(), []

        def read_once():
            d = self.cache.get("hot")
            if d is None:
                seen.add(None)
                return
            va, vb = set(np.asarray(d["a"]).tolist()), set(np.asarray(d["g"]["b"]).tolist())
            if len(va) != 1 or va != vb or sorted(d) != ["a", "g"]:
                bad.append((va, vb, sorted(d)))
            seen.update(va)

        def reader():
            try:
                while not stop.is_set():
                    read_once()
                    first_read.set()
            except BaseException as e:  # the test fails on it, below
                bad.append(repr(e))
                first_read.set()
        t = threading.Thread(target=reader)
        t.start()
        first_read.wait()
        try:
            for v in range(1, 41):
                self.cache["hot"] = version(v)
        finally:
            stop.set()
            t.join()
        self.assertEqual(bad, [])
        self.assertIn(0, seen)  # its first read, before any replace
        self.assertEqual(int(self.cache["hot"]["a"][0]), 40)
        self.assertEqual(leftovers(), [])

    def test_failed_write_keeps_the_old_entry_and_leaves_nothing(self):
        self.cache["k"] = {"x": np.arange(3)}
        for tree in ({"ok": np.arange(2), "bad": np.array(["str"])},
                     {"ok": np.arange(2), "meta.json": np.arange(2)},
                     {"a/b": np.arange(2)},
                     {".hidden": np.arange(2)},
                     {"x.npy": np.arange(2)},
                     {"g": {"obj": np.array([object()])}}):
            with self.subTest(tree=sorted(tree)):
                with self.assertRaises((TypeError, ValueError)):
                    self.cache["k"] = tree
                self.assertSameArray(self.cache["k"]["x"], np.arange(3))
                self.assertEqual(leftovers(), [])
        with self.assertRaises(TypeError):
            self.cache["k"] = np.arange(3)

    def test_clear_removes_ours_and_leftovers_not_others(self):
        for k in ("a", "b"):
            self.cache[k] = {"v": np.zeros(1000, np.uint8)}
        os.mkdir(os.path.join(MNT, "other"))
        with open(os.path.join(MNT, "other", "f"), "wb") as f:
            f.write(b"x")
        left = os.path.join(MNT, ".tcache-tmp-" + "0" * 32 + "-crash")
        os.mkdir(left)
        with open(os.path.join(left, "v"), "wb") as f:
            f.write(b"z" * 7)
        self.assertEqual(self.cache.get_cache_size(), 2007)
        self.cache.clear()
        self.assertEqual(len(self.cache), 0)
        self.assertEqual(self.cache.keys(), [])
        self.assertEqual(leftovers(), [])
        self.assertEqual(self.cache.get_cache_size(), 0)
        self.assertTrue(os.path.isfile(os.path.join(MNT, "other", "f")))
        self.cache["a"] = {"v": np.ones(3, np.uint8)}  # usable after clear
        self.assertEqual(list(self.cache["a"]["v"]), [1, 1, 1])

    def test_cache_size_counts_tensor_bytes(self):
        self.assertEqual(self.cache.get_cache_size(), 0)
        self.assertEqual(self.cache.get_cache_size_human(), "0 B")
        self.cache["a"] = {"x": np.zeros((1024, 1024), np.float32), "g": {"y": np.zeros(3, np.int16)}}
        self.cache["b"] = {"x": np.zeros(1024 * 1024 * 9, np.uint8)}
        want = 4 * 1024 * 1024 + 6 + 9 * 1024 * 1024
        self.assertEqual(self.cache.get_cache_size(), want)
        self.assertEqual(self.cache.get_cache_size_human(), "13.0 MiB")
        du = sum(os.stat(os.path.join(r, f)).st_size
                 for r, _, fs in os.walk(MNT) for f in fs if r != MNT)
        self.assertEqual(du, want)


if __name__ == "__main__":
    tap.main()
