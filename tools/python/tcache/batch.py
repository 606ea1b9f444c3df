"""Batched lookups and reads of many files of one directory of a tcachefs
mount: the ioctl TC_IOC_BATCH (tcache.h) on the directory's fd.

    d = Batch("/mnt/tcache")            # None-like when not a mount: d.ok
    sizes = d.exists(["a.kv", "b.kv"])  # [size or None, ...]: one request
    with d.pinned(names) as pages:      # [(size, memoryview) or None, ...]
        ...copy out of the views...     # the pool's own pages
    made = d.staged_put(views, names, links)  # written into the pool

One request looks up (``exists``) or pins (``pinned``) up to TC_BATCH_MAX
names.  A pin is an open for reading as open(2) makes it: the page counts
as a hit, becomes the most recently used, is verified at its first open,
and is not evicted, replaced or moved under the reader until the pins go
(the with-block's end: a second request; or this process's exit, which
closes the directory).  Its bytes are read straight from the store's pool
file, mapped read-only here: no request per page.  Only who may open the
pool file (the daemon's user, and root) can; ``ok`` is False for anyone
else and for a directory that is not on a tcachefs mount, and the caller
reads the files instead (the same bytes).

``staged_put`` is the way back: the pages' bytes written straight into
the pool file (open for writing here: its owner alone, and root), then
named all at once by one journal record, so a kill -9 leaves the whole
batch or none of it (a power loss before a sync: each page whole or
absent).

Linux; the standard library alone.
"""
import contextlib
import errno
import fcntl
import mmap
import os
import struct
import threading

__all__ = ["Batch", "TC_BATCH_MAX", "TC_BATCH_NAMES", "stage_runs"]

_ABI = 1
TC_BATCH_MAX = 192
TC_BATCH_NAMES = 12032
_HEAD = "<IIIIQ1024s"                       # struct tc_ioc_batch, up to item[]
_HEAD_SIZE = struct.calcsize(_HEAD)
_ITEMS = "<%dQ" % (2 * TC_BATCH_MAX)
_NAMES_AT = _HEAD_SIZE + struct.calcsize(_ITEMS)
_SIZE = _NAMES_AT + TC_BATCH_NAMES
TC_IOC_BATCH = 0xC0000000 | (_SIZE << 16) | (ord("t") << 8) | 2
_EXISTS, _PIN, _UNPIN, _LEADING, _STAGE, _COMMIT = 1, 2, 3, 4, 5, 6
_NONE = (1 << 64) - 1                       # TC_BATCH_ABSENT, TC_BATCH_NOMAP


def chunks(names):
    """Split names (bytes, NUL-free) into runs that fit one request:
    (index of the first, [names]) pairs."""
    start, run, used = 0, [], 0
    for i, n in enumerate(names):
        if run and (len(run) == TC_BATCH_MAX or used + len(n) + 1 > TC_BATCH_NAMES):
            yield start, run
            start, run, used = i, [], 0
        if len(n) + 1 > TC_BATCH_NAMES:
            raise ValueError("name too long: %r" % n)
        run.append(n)
        used += len(n) + 1
    if run:
        yield start, run


def _request(fd, op, count, joined=b"", token=0, sizes=()):
    """One TC_IOC_BATCH request of count names joined (each ended by a
    NUL), or of item sizes: the reply's buffer."""
    buf = bytearray(_SIZE)
    struct.pack_into("<IIIIQ", buf, 0, _ABI, op, count, 0, token)
    buf[_NAMES_AT:_NAMES_AT + len(joined)] = joined
    for i, size in enumerate(sizes):
        struct.pack_into("<Q", buf, _HEAD_SIZE + 16 * i, size)
    fcntl.ioctl(fd, TC_IOC_BATCH, buf, True)
    if struct.unpack_from("<I", buf, 0)[0] != _ABI:
        raise OSError(errno.EPROTO, "not a tcachefs batch of this version")
    return buf


def _present(fd, op, count, joined):
    """The reply's count of names present, and nothing else parsed."""
    return struct.unpack_from("<I", _request(fd, op, count, joined), 12)[0]


def _call(fd, op, names=(), token=0, count=None, sizes=()):
    """One TC_IOC_BATCH request: (token, pool path, [(size, off), ...])
    with None for TC_BATCH_ABSENT and TC_BATCH_NOMAP.  count: items, when
    not one a name."""
    joined = b"\0".join(names) + b"\0" if names else b""
    count = len(names) if count is None else count
    buf = _request(fd, op, count, joined, token, sizes)
    _, _, _, _, token, pool = struct.unpack_from(_HEAD, buf, 0)
    raw = struct.unpack_from("<%dQ" % (2 * count), buf, _HEAD_SIZE)
    items = [(None if raw[2 * i] == _NONE else raw[2 * i],
              None if raw[2 * i + 1] == _NONE else raw[2 * i + 1])
             for i in range(count)]
    return token, pool.split(b"\0", 1)[0], items


class Batch:
    """Batched requests on the directory at path (see the module)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._fd = None
        self._pool = None        # (path, memoryview of its mmap) once mapped
        self._wpool = None       # (path, fd open for writing) once staged
        self._rpool = None       # (path, fd open for reading) once read
        self.ok = False
        self.can_stage = True    # until a STAGE is refused (put()s files)
        self.can_exist = False   # exists() works (the directory is a mount's)
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            _call(self._fd, _EXISTS)
            self.can_exist = True
            _, pool, _ = self._pin_call([])
            self._reader(pool)  # may this process read it? (mapped when pinned())
            self.ok = True
        except OSError:
            pass

    def close(self):
        with self._lock:
            self._unmap()
            for w in (self._wpool, self._rpool):
                if w is not None:
                    os.close(w[1])
            self._wpool = self._rpool = None
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.ok = self.can_exist = False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _pin_call(self, names):
        token, pool, items = _call(self._fd, _PIN, names)
        if not names:
            _call(self._fd, _UNPIN, token=token)
        return token, pool, items

    def _unmap(self):
        # Dropped, not closed: views of it handed out may still live (the
        # mapping goes with the last of them).
        self._pool = None

    def _map(self, pool, end):
        """A view of the pool file at path pool covering [0, end): mapped
        once, again when the pool grew or moved (a remount)."""
        with self._lock:
            p = self._pool
            if p and p[0] == pool and len(p[1]) >= end:
                return p[1]
            f = os.open(pool, os.O_RDONLY | os.O_CLOEXEC)
            try:
                m = mmap.mmap(f, 0, prot=mmap.PROT_READ)  # (keeps its own fd)
            finally:
                os.close(f)
            v = memoryview(m)
            if len(v) < end:
                raise OSError(errno.EPROTO, "the pool is shorter than a page in it")
            self._pool = (pool, v)
            return v

    def exists(self, names):
        """Per name (bytes or str), its size or None (absent, or no
        tensor): one request per TC_BATCH_MAX names."""
        names = [os.fsencode(n) for n in names]
        out = [None] * len(names)
        for start, run in chunks(names):
            _, _, items = _call(self._fd, _EXISTS, run)
            for i, (size, _) in enumerate(items):
                out[start + i] = size
        return out

    def leading(self, names):
        """How many of names, from the first, are present (the count
        before the first absent one): one request per TC_BATCH_MAX names,
        none after the request that finds an absent one, and no lookup past
        it (TC_BATCH_LEADING: its reply's count present is the index of
        the first absent name)."""
        runs = None
        if names and isinstance(names[0], str) and \
                all(len(n) == len(names[0]) for n in names):
            width = len(names[0]) + 1
            joined = ("\0".join(names) + "\0").encode()
            if len(joined) == len(names) * width and width <= TC_BATCH_NAMES:
                # names of one length, ASCII (a page store's): joined
                # once, cut into requests by count
                per = min(TC_BATCH_MAX, TC_BATCH_NAMES // width)
                runs = ((i, min(per, len(names) - i),
                         joined[i * width:(i + per) * width])
                        for i in range(0, len(names), per))
        if runs is None:
            runs = ((start, len(run), b"\0".join(run) + b"\0")
                    for start, run in chunks([os.fsencode(n) for n in names]))
        for start, k, run in runs:
            got = _present(self._fd, _LEADING, k, run)
            if got < k:
                return start + got
        return len(names)

    @contextlib.contextmanager
    def pinned_runs(self, names):
        """As pinned(), but per name None (absent) or (size, off): its
        bytes lie at off in the file pool_fd() reads (None: in several
        runs, read that file), for a reader that copies with preadv
        rather than through a mapping (no page faults on a first pass)."""
        names = [os.fsencode(n) for n in names]
        if len(names) > TC_BATCH_MAX or sum(len(n) + 1 for n in names) > TC_BATCH_NAMES:
            raise ValueError("too many names for one request (see chunks())")
        token, pool, items = _call(self._fd, _PIN, names)
        try:
            self._reader(pool)
            yield [None if size is None else (size, off) for size, off in items]
        finally:
            _call(self._fd, _UNPIN, token=token)

    def pool_fd(self):
        """The pool file open for reading (pinned_runs() opened it)."""
        return self._rpool[1]

    def _reader(self, pool):
        return self._opened("_rpool", pool, os.O_RDONLY)

    def _opened(self, slot, pool, flags):
        """The pool file at path pool open with flags, kept in attribute
        slot (once; again when the path changed: a remount)."""
        with self._lock:
            r = getattr(self, slot)
            if r and r[0] == pool:
                return r[1]
            fd = os.open(pool, flags | os.O_CLOEXEC)
            if r:
                os.close(r[1])
            setattr(self, slot, (pool, fd))
            return fd

    @contextlib.contextmanager
    def pinned(self, names):
        """Pin up to TC_BATCH_MAX names (bytes or str) for the with-block:
        per name None (absent), or (size, view): view a read-only
        memoryview of its bytes in the pool, or None when they lie in
        several runs (read that file instead).  The views are valid only
        inside the block."""
        with self.pinned_runs(names) as runs:
            end = max((off + size for size, off in filter(None, runs)
                       if off is not None), default=0)
            v = self._map(self._rpool[0], end)
            yield [None if r is None else
                   (r[0], v[r[1]:r[1] + r[0]] if r[1] is not None else None)
                   for r in runs]

    def staged_put(self, pages, names, links):
        """Store pages (byte views) as files names (bytes) with parent
        links (bytes, b"" for none) of this directory: their bytes written
        straight into the pool, then all named in one journal record (two
        requests; TC_BATCH_STAGE, TC_BATCH_COMMIT).  At most TC_BATCH_MAX
        pages whose names and links fit one request (see stage_runs()).
        Per page: True made, False kept (the name was present: left as it
        is), None not staged (no single run of the pool: write that one
        through a file).  Raises OSError: EACCES (this process may not
        write the pool: can_stage turns False; write files), ENOSPC (no
        room: nothing was written), others from the mount."""
        try:
            token, pool, items = _call(self._fd, _STAGE, count=len(pages),
                                       sizes=[p.nbytes for p in pages])
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM, errno.EINVAL, errno.ENOTTY):
                self.can_stage = False
            raise
        try:
            fd = self._writer(pool)
            for (_, off), page in zip(items, pages):
                at = 0
                while off is not None and at < page.nbytes:
                    at += os.pwrite(fd, page[at:], off + at)
        except BaseException as e:
            _request(self._fd, _COMMIT, 0, b"", token)  # none: dropped
            if isinstance(e, PermissionError):
                self.can_stage = False
            raise
        joined = b"".join(n + b"\0" + l + b"\0" for n, l in zip(names, links))
        buf = _request(self._fd, _COMMIT, len(pages), joined, token)
        made = struct.unpack_from("<%dQ" % (2 * len(pages)), buf, _HEAD_SIZE)[::2]
        return [None if off is None else size != _NONE
                for (_, off), size in zip(items, made)]

    def _writer(self, pool):
        return self._opened("_wpool", pool, os.O_WRONLY)


def stage_runs(names, links):
    """Split pages (their names and links, bytes) into runs that one
    staged_put takes: (index of the first, count) pairs."""
    start, k, used = 0, 0, 0
    for i, (n, l) in enumerate(zip(names, links)):
        need = len(n) + len(l) + 2
        if need > TC_BATCH_NAMES:
            raise ValueError("name too long: %r" % n)
        if k and (k == TC_BATCH_MAX or used + need > TC_BATCH_NAMES):
            yield start, k
            start, k, used = i, 0, 0
        k += 1
        used += need
    if k:
        yield start, k
