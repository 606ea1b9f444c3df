#!/usr/bin/python3
"""LMCache's local disk backend, acted out.

Its local_disk directory holds one flat file per KV chunk, named after
the chunk's key, model@world_size@worker_id@chunk_hash@dtype.pt (a "/"
in the model name becomes "-"): the chunk's raw bytes written with one
write() of an opened file and read back with readinto() into a buffer of
the chunk's size.  Chunks are 256 tokens; the last chunk of a request is
shorter (save_unfull_chunk), so sizes vary.  Chunk hashes chain over the
tokens, prefix first.  Phases and checks: see clientlib.
"""

import hashlib
import os
import sys

import numpy as np

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402

MODEL = "meta-llama/Llama-3.1-8B"
WORLD_SIZE, WORKER_ID, DTYPE = 1, 0, "bfloat16"
CHUNK_TOKENS = 256
TOKEN_BYTES = 2 * 2 * 8 * 16 * 2     # (k, v) x 2 layers x 8 heads x 16 dims x bf16
ITEMS, HOT, REFRESH, MORE = 96, 4, 8, 8    # about 21 MiB in all
TAIL = 6
MAX_CHUNKS = 4096


def chunk_tokens(i):
    """Every fourth chunk ends a request and is not full."""
    return CHUNK_TOKENS if i % 4 != 3 else 1 + (i * 37) % (CHUNK_TOKENS - 1)


def chunk_hashes(n):
    out, prior = [], b""
    for i in range(n):
        toks = np.arange(i * CHUNK_TOKENS, i * CHUNK_TOKENS + chunk_tokens(i),
                         dtype=np.int32) * 31 % 128256
        prior = hashlib.sha256(prior + toks.tobytes()).digest()
        out.append("%x" % int.from_bytes(prior[:8], "little", signed=False))
    return out


HASHES = chunk_hashes(MAX_CHUNKS)
INDEX = {h: i for i, h in enumerate(HASHES)}


def key_string(i):
    return "@".join([MODEL, str(WORLD_SIZE), str(WORKER_ID), HASHES[i], DTYPE])


def file_name(i):
    return key_string(i).replace("/", "-") + ".pt"


def nbytes(i):
    return chunk_tokens(i) * TOKEN_BYTES


def chunk_bytes(i):
    return clientlib.payload(file_name(i), nbytes(i))


class LocalDiskBackend:
    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)

    def _key_to_path(self, i):
        return os.path.join(self.path, file_name(i))

    def put(self, i, data):
        with open(self._key_to_path(i), "wb") as f:
            f.write(data)

    def get(self, i, buffer):
        with open(self._key_to_path(i), "rb") as f:
            return f.readinto(buffer)


def read_hot(be, hot):
    for i in range(hot):
        buf = bytearray(nbytes(i))
        n = be.get(i, buf)
        assert n == nbytes(i) and bytes(buf) == chunk_bytes(i), \
            "hot chunk %d reads other bytes (%d)" % (i, n)


def fill(be, items, hot, refresh):
    last = items[-1]
    for i in items:
        be.put(i, chunk_bytes(i))
        if hot and clientlib.refresh_due(i, last, refresh):
            read_hot(be, hot)


def check(a):
    fail = clientlib.Failures("lmcache_disk")
    be = LocalDiskBackend(a.dir)
    n = a.fill_items + (a.nmore if a.more else 0)
    present = {}
    for name in os.listdir(a.dir):
        parts = name[:-3].split("@") if name.endswith(".pt") else []
        if (len(parts) != 5 or parts[3] not in INDEX
                or name != file_name(INDEX[parts[3]])):
            fail("%s: a file the client did not write" % name)
            continue
        present[INDEX[parts[3]]] = os.path.getsize(os.path.join(a.dir, name))
    for i in sorted(present, key=lambda i: (i < a.hot, i)):
        buf = bytearray(nbytes(i))
        try:
            got = be.get(i, buf)
        except OSError as e:
            fail("chunk %d: listed, then %s" % (i, e))
            continue
        fail.expect(present[i] == nbytes(i) and got == nbytes(i)
                    and bytes(buf) == chunk_bytes(i),
                    "chunk %d: torn or other bytes (%d of %d)" % (i, got, nbytes(i)))
    if not a.crashed:
        if a.capacity:
            clientlib.lru_expectations(fail, set(present), n, a.hot, TAIL)
            clientlib.within_capacity(fail, sum(present.values()), a.capacity)
        else:
            clientlib.all_expected(fail, set(present), n)
    fail.report("%d chunks present" % len(present))


def main():
    a = clientlib.parse_args(__doc__, ITEMS, HOT, REFRESH, MORE)
    be = LocalDiskBackend(a.dir)
    if a.phase == "fill":
        fill(be, list(range(a.items)), a.hot, a.refresh)
    elif a.phase == "more":
        fill(be, list(range(a.fill_items, a.fill_items + a.nmore)), 0, 1)
    elif a.phase == "check":
        check(a)
    else:
        sys.exit("lmcache_disk: no clear phase")


if __name__ == "__main__":
    main()
