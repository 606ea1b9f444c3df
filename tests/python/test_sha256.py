#!/usr/bin/python3
"""tools/sha256.c (the SHA-256 of `tcache key --tokens`) against hashlib.

Run by meson (suite python) with TCACHE_SHA256 naming the driver built
from tests/python/sha256sum.c; prints TAP.
"""
import hashlib
import os
import random
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import tap  # noqa: E402

DRIVER = os.environ.get("TCACHE_SHA256", "")


def c_sha256(data, chunk=4096):
    out = subprocess.run([DRIVER, str(chunk)], input=data, capture_output=True,
                         check=True)
    return out.stdout.decode().strip()


class Sha256(unittest.TestCase):
    def setUp(self):
        self.assertTrue(DRIVER and os.access(DRIVER, os.X_OK),
                        "TCACHE_SHA256 must name the sha256sum driver")

    def test_fips_180_examples(self):
        self.assertEqual(c_sha256(b""), "e3b0c44298fc1c149afbf4c8996fb924"
                                        "27ae41e4649b934ca495991b7852b855")
        self.assertEqual(c_sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223"
                                           "b00361a396177a9cb410ff61f20015ad")
        self.assertEqual(
            c_sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")

    def test_every_length_0_to_200_equals_hashlib(self):
        rng = random.Random(15)
        data = bytes(rng.randrange(256) for _ in range(200))
        # all lengths in one process: the driver hashes each prefix
        for n in range(201):
            with self.subTest(length=n):
                self.assertEqual(c_sha256(data[:n], chunk=1 + n % 7),
                                 hashlib.sha256(data[:n]).hexdigest())

    def test_one_mebibyte_in_odd_and_whole_chunks(self):
        data = random.Random(16).randbytes(1 << 20)
        want = hashlib.sha256(data).hexdigest()
        for chunk in (1 << 20, 4096, 63, 65, 1000):
            with self.subTest(chunk=chunk):
                self.assertEqual(c_sha256(data, chunk), want)


if __name__ == "__main__":
    tap.main()
