#!/usr/bin/python3
"""tcache's entry names and size strings (no mount; TAP)."""
import hashlib
import os
import sys
import unittest

sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..", "..", "tools", "python"),
                os.path.dirname(__file__)]
from tcache import human_size, key_to_basename  # noqa: E402
import tap  # noqa: E402


class Names(unittest.TestCase):
    def test_basename_is_tensordict_caches_sha256_of_str_key(self):
        for key in ("prompt", "", "ünï", ("prompt", 3), 42):
            with self.subTest(key=key):
                want = hashlib.sha256(str(key).encode()).hexdigest()[:32]
                self.assertEqual(key_to_basename(key), want)
        self.assertEqual(key_to_basename("a"), "ca978112ca1bbdcafac231b39a23dc4d")
        self.assertNotEqual(key_to_basename("a"), key_to_basename("b"))

    def test_human_size_in_binary_units(self):
        self.assertEqual(human_size(0), "0 B")
        self.assertEqual(human_size(1023), "1023 B")
        self.assertEqual(human_size(1024), "1.0 KiB")
        self.assertEqual(human_size(1536), "1.5 KiB")
        self.assertEqual(human_size(int(12.3 * 1024 * 1024)), "12.3 MiB")
        self.assertEqual(human_size(3 * 1024 ** 3), "3.0 GiB")
        self.assertEqual(human_size(2048 * 1024 ** 5), "2048.0 PiB")


if __name__ == "__main__":
    tap.main()
