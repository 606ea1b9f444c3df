#!/usr/bin/env python3
"""model.py - one file, random operations, every answer checked against a
model of its bytes (what a local file system gives).

    model.py PATH OPS [--mmap] [--seed N] [--out FILE]

Operations on PATH (created empty, opened O_RDWR): write at the position,
pwrite, truncate (down and up), fallocate (mode 0), pread, and with --mmap
also writes and reads through a shared mapping of the whole file.  A
second descriptor, opened now and then, and a close and reopen now and
then (a commit), see the same bytes.  After every operation fstat's size
is compared; every read is compared byte for byte.  Prints the seed first
(replay: --seed N), and on a mismatch the operations that led there.
--out FILE: the model's final bytes are written there (to compare after
a remount).  Exit status 0 when every answer matched.
"""
import argparse
import ctypes
import mmap
import os
import random
import sys

MAX_SIZE = 1 << 20      # the file stays below this
MAX_IO = 96 << 10       # one operation touches at most this many bytes

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long,
                           ctypes.c_long]


def fallocate(fd, off, n):
    if libc.fallocate(fd, 0, off, n) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Mismatch(Exception):
    pass


class Run:
    def __init__(self, path, rng, use_mmap):
        self.path = path
        self.rng = rng
        self.use_mmap = use_mmap
        self.model = bytearray()
        self.pos = 0
        self.log = []
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.fd2 = None

    def data(self, n):
        return self.rng.randbytes(n)

    def span(self, limit=MAX_SIZE):
        off = self.rng.randrange(0, limit)
        n = self.rng.randrange(1, MAX_IO)
        return off, min(n, limit - off)

    def near(self):
        """An offset around the current size (most activity is there)."""
        size = len(self.model)
        lo = max(0, size - MAX_IO)
        hi = min(MAX_SIZE - 1, size + MAX_IO)
        return self.rng.randrange(lo, hi + 1)

    def resize(self, n):
        if n < len(self.model):
            del self.model[n:]
        else:
            self.model.extend(bytes(n - len(self.model)))

    def put(self, off, b):
        if off + len(b) > len(self.model):
            self.resize(off + len(b))
        self.model[off:off + len(b)] = b

    # ---- operations: each does one thing and checks what it can ----------

    def op_write(self):
        self.pos = min(self.pos, len(self.model))
        b = self.data(self.rng.randrange(1, MAX_IO))
        if self.pos + len(b) > MAX_SIZE:
            self.pos = 0
        os.lseek(self.fd, self.pos, os.SEEK_SET)
        assert os.write(self.fd, b) == len(b)
        self.put(self.pos, b)
        self.pos += len(b)
        return "write %d+%d" % (self.pos - len(b), len(b))

    def op_pwrite(self):
        off = self.near()
        n = min(self.rng.randrange(1, MAX_IO), MAX_SIZE - off)
        if n <= 0:
            return "pwrite none"
        b = self.data(n)
        assert os.pwrite(self.fd, b, off) == n
        self.put(off, b)
        return "pwrite %d+%d" % (off, n)

    def op_truncate(self):
        n = self.near() if self.rng.random() < 0.8 else \
            self.rng.randrange(0, MAX_SIZE)
        os.ftruncate(self.fd, n)
        self.resize(n)
        return "truncate %d" % n

    def op_fallocate(self):
        off = self.near()
        n = min(self.rng.randrange(1, MAX_IO), MAX_SIZE - off)
        if n <= 0:
            return "fallocate none"
        fallocate(self.fd, off, n)
        if off + n > len(self.model):
            self.resize(off + n)
        return "fallocate %d+%d" % (off, n)

    def op_pread(self):
        off = self.near()
        n = self.rng.randrange(0, MAX_IO)
        fd = self.fd2 if self.fd2 is not None and self.rng.random() < 0.3 \
            else self.fd
        got = os.pread(fd, n, off)
        want = bytes(self.model[off:off + n])
        if got != want:
            raise Mismatch("pread %d+%d on fd %d: %s" %
                           (off, n, fd, diff(got, want, off)))
        return "pread %d+%d" % (off, n)

    def mapped(self):
        size = len(self.model)
        if size == 0:
            return None
        return mmap.mmap(self.fd, size)

    def op_mmap_write(self):
        m = self.mapped()
        if m is None:
            return "mmap_write none"
        size = len(self.model)
        off = self.rng.randrange(0, size)
        n = min(self.rng.randrange(1, MAX_IO), size - off)
        b = self.data(n)
        m[off:off + n] = b
        if self.rng.random() < 0.5:
            m.flush()
        m.close()
        self.put(off, b)
        return "mmap_write %d+%d" % (off, n)

    def op_mmap_read(self):
        m = self.mapped()
        if m is None:
            return "mmap_read none"
        size = len(self.model)
        off = self.rng.randrange(0, size)
        n = min(self.rng.randrange(1, MAX_IO), size - off)
        got = m[off:off + n]
        m.close()
        want = bytes(self.model[off:off + n])
        if got != want:
            raise Mismatch("mmap read %d+%d: %s" % (off, n, diff(got, want, off)))
        return "mmap_read %d+%d" % (off, n)

    def op_second_fd(self):
        if self.fd2 is not None:
            os.close(self.fd2)
            self.fd2 = None
            return "close second fd"
        self.fd2 = os.open(self.path, os.O_RDWR)
        return "open second fd"

    def op_reopen(self):
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDWR)
        self.check_all("after reopen")
        return "close and reopen"

    # ---- checks ---------------------------------------------------------

    def check_size(self, what):
        for fd in (self.fd, self.fd2):
            if fd is None:
                continue
            got = os.fstat(fd).st_size
            if got != len(self.model):
                raise Mismatch("%s: fstat of fd %d says %d, the model %d" %
                               (what, fd, got, len(self.model)))

    def check_all(self, what):
        self.check_size(what)
        got = os.pread(self.fd, MAX_SIZE + 1, 0)
        if got != bytes(self.model):
            raise Mismatch("%s: whole file: %s" %
                           (what, diff(got, bytes(self.model), 0)))

    def run(self, ops):
        table = [(self.op_write, 10), (self.op_pwrite, 14),
                 (self.op_truncate, 8), (self.op_fallocate, 5),
                 (self.op_pread, 20), (self.op_second_fd, 2),
                 (self.op_reopen, 1)]
        if self.use_mmap:
            table += [(self.op_mmap_write, 10), (self.op_mmap_read, 10)]
        fns = [f for f, w in table for _ in range(w)]
        for i in range(ops):
            fn = self.rng.choice(fns)
            self.log.append(fn())
            self.log = self.log[-30:]
            self.check_size("op %d (%s)" % (i, self.log[-1]))
            if i % 1000 == 999:
                self.check_all("op %d" % i)
        self.check_all("the end")
        if self.fd2 is not None:
            os.close(self.fd2)
        os.close(self.fd)


def diff(got, want, base):
    if len(got) != len(want):
        first = next((i for i in range(min(len(got), len(want)))
                      if got[i] != want[i]), min(len(got), len(want)))
        return "%d bytes, want %d (first difference at %d)" % (
            len(got), len(want), base + first)
    first = next(i for i in range(len(got)) if got[i] != want[i])
    return "byte %d is %r, want %r" % (base + first, got[first:first + 8],
                                      want[first:first + 8])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("ops", type=int)
    ap.add_argument("--mmap", action="store_true")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 32)
    print("seed %d (replay: model.py PATH %d%s --seed %d)" %
          (seed, a.ops, " --mmap" if a.mmap else "", seed), flush=True)
    r = Run(a.path, random.Random(seed), a.mmap)
    try:
        r.run(a.ops)
    except Mismatch as e:
        print("MISMATCH:", e)
        print("the last operations:\n  " + "\n  ".join(r.log))
        return 1
    if a.out:
        with open(a.out, "wb") as f:
            f.write(r.model)
    print("%d operations, every answer as the model; final size %d" %
          (a.ops, len(r.model)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
