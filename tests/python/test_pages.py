#!/usr/bin/python3
"""tcache.page_hashes against an independent hashlib computation (no mount).

Run: PYTHONPATH=tools/python:tests/python python3 tests/python/test_pages.py
(prints TAP).
"""
import hashlib
import os
import random
import sys
import unittest

sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..", "..", "tools", "python"),
                os.path.dirname(__file__)]
from tcache import page_hashes  # noqa: E402
import tap  # noqa: E402


def sglang_chain(tokens, page_size, prior=None):
    """SGLang's get_hash_str, page by page, written out again here."""
    keys = []
    for start in range(0, len(tokens) - page_size + 1, page_size):
        h = hashlib.sha256()
        if prior:
            h.update(bytes.fromhex(prior))
        for t in tokens[start:start + page_size]:
            h.update(t.to_bytes(4, byteorder="little", signed=False))
        prior = h.hexdigest()
        keys.append(prior)
    return keys


def tokens(n, seed):
    rng = random.Random(seed)
    return [rng.randrange(2 ** 32) for _ in range(n)]


class PageHashes(unittest.TestCase):
    def test_equal_sglang_chain_for_several_page_sizes(self):
        toks = tokens(1000, 1) + [0, 1, 255, 256, 2 ** 32 - 1]
        for page_size in (1, 2, 3, 16, 64, 100, 1005):
            with self.subTest(page_size=page_size):
                want = sglang_chain(toks, page_size)
                self.assertEqual(len(want), len(toks) // page_size)
                self.assertEqual(page_hashes(toks, page_size), want)

    def test_known_vector_first_page(self):
        # sha256 of 01000000 02000000, computed once by hand with hashlib
        self.assertEqual(page_hashes([1, 2], 2)[0],
                         hashlib.sha256(bytes.fromhex("0100000002000000")).hexdigest())

    def test_partial_last_page_has_no_key(self):
        self.assertEqual(len(page_hashes(tokens(10, 2), 4)), 2)
        self.assertEqual(page_hashes(tokens(3, 3), 4), [])
        self.assertEqual(page_hashes([], 4), [])

    def test_prior_continues_the_chain(self):
        toks = tokens(64, 4)
        whole = page_hashes(toks, 8)
        self.assertEqual(page_hashes(toks[24:], 8, prior=whole[2]), whole[3:])
        self.assertEqual(page_hashes(toks[24:], 8, prior=whole[2]),
                         sglang_chain(toks[24:], 8, prior=whole[2]))

    def test_a_key_names_the_whole_prefix(self):
        a = tokens(32, 5)
        b = list(a)
        b[0] ^= 1  # differ in the first token only
        ka, kb = page_hashes(a, 8), page_hashes(b, 8)
        self.assertTrue(all(x != y for x, y in zip(ka, kb)))

    def test_numpy_and_torch_token_ids_give_the_same_keys(self):
        import numpy as np
        toks = tokens(40, 6)
        want = sglang_chain(toks, 8)
        self.assertEqual(page_hashes(np.array(toks, dtype=np.uint32), 8), want)
        self.assertEqual(page_hashes(np.array(toks, dtype=np.int64), 8), want)
        try:
            import torch
        except ImportError:
            self.skipTest("torch does not import")
        self.assertEqual(page_hashes(torch.tensor(toks, dtype=torch.int64), 8), want)

    def test_namespace_changes_every_key(self):
        toks = tokens(256, 7)
        for page_size in (1, 4, 32):
            plain = page_hashes(toks, page_size)
            a = page_hashes(toks, page_size, namespace="model-a")
            b = page_hashes(toks, page_size, namespace=b"model-b")
            self.assertEqual(len(a), len(plain))
            for x, y, z in zip(plain, a, b):
                self.assertNotEqual(x, y)
                self.assertNotEqual(y, z)
                self.assertNotEqual(x, z)
            # str and its UTF-8 bytes are the same namespace
            self.assertEqual(page_hashes(toks, page_size, namespace=b"model-a"), a)

    def test_namespace_enters_as_documented(self):
        toks = tokens(24, 8)
        seed = hashlib.sha256(b"tcache-namespace:" + b"ns").digest()
        want, prev = [], b""
        for start in range(0, 24, 8):
            h = hashlib.sha256(seed + prev)
            for t in toks[start:start + 8]:
                h.update(t.to_bytes(4, "little"))
            prev = h.digest()
            want.append(h.hexdigest())
        self.assertEqual(page_hashes(toks, 8, namespace="ns"), want)
        # and a namespaced chain continues with prior in the same namespace
        self.assertEqual(page_hashes(toks[8:], 8, prior=want[0], namespace="ns"), want[1:])
        self.assertNotEqual(page_hashes(toks[8:], 8, prior=want[0]), want[1:])

    def test_bad_arguments_are_refused(self):
        with self.assertRaises(ValueError):
            page_hashes([1, 2], 0)
        with self.assertRaises(ValueError):
            page_hashes([-1, 2], 2)
        with self.assertRaises(ValueError):
            page_hashes([2 ** 32, 2], 2)
        with self.assertRaises(ValueError):
            page_hashes([1, 2], 2, prior="abcd")
        with self.assertRaises(ValueError):
            page_hashes([1, 2], 2, prior="zz" * 32)
        with self.assertRaises(TypeError):
            page_hashes([1.5, 2], 2)
        with self.assertRaises(TypeError):
            page_hashes([1, 2], 2, namespace=3)


if __name__ == "__main__":
    tap.main()
