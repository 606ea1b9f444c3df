"""tcache.load: a tensor of a tcachefs mount as a read-only numpy array,
mapped straight from the store's pool file where this process may read it.

    a = tcache.load("/mnt/tcache/k1/kv.bin")   # dtype, shape from meta.json
    a.direct                                    # True: the pool's own pages

The mount pins the tensor's bytes while a file of it is open (replacement
and eviction leave them alone until it is closed), and tells, through the
ioctl TC_IOC_MAP on that open file, where they lie in the pool.  The array
keeps that file open for as long as it (or a view of it) lives, and maps
the pool pages itself: no FUSE request per page, and the page cache pages
are the pool's, shared with every other reader.  Only who may open the
pool file (the daemon's user, and root) can; anyone else, and any file not
on a tcachefs mount, gets an ``np.memmap`` of the file (``.direct`` False):
the same bytes, through FUSE.

Linux, 4 KiB pages; the standard library (ctypes, fcntl) and numpy.
"""
import ctypes
import errno
import fcntl
import json
import mmap
import os
import struct
import weakref

import numpy as np

from .tensorcache import META, OURS, _NOT_NUMPY

_ABI = 1
_MAX_EXTENTS = 256
_FMT = "<IIQQ1024s" + "QQ" * _MAX_EXTENTS      # struct tc_ioc_map
_SIZE = struct.calcsize(_FMT)
TC_IOC_MAP = 0x80000000 | (_SIZE << 16) | (ord("t") << 8) | 1
_BLOCK = 4096

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                       ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_PROT_NONE = 0
_MAP_FIXED = 0x10
_MAP_NORESERVE = 0x4000
_MAP_FAILED = ctypes.c_void_p(-1).value


class TensorArray(np.ndarray):
    """A read-only array of a stored tensor; ``.direct`` says whether it
    maps the pool (True) or reads through the mount (False)."""

    direct = False

    def __array_finalize__(self, obj):
        self.direct = getattr(obj, "direct", False)


def extents(fd):
    """Where the tensor open at ``fd`` lies in the pool: ``(size, version,
    pool_path, [(offset, length), ...])``.  OSError: ENOTTY when ``fd`` is
    no tensor of a tcachefs mount, EBADF when it is open for writing."""
    buf = bytearray(_SIZE)
    fcntl.ioctl(fd, TC_IOC_MAP, buf, True)
    f = struct.unpack(_FMT, buf)
    abi, n, size, version, pool = f[:5]
    if abi != _ABI or n > _MAX_EXTENTS:
        raise OSError(errno.ENOTTY, "not a tcachefs tensor of this version")
    ext = [(f[5 + 2 * i], f[6 + 2 * i]) for i in range(n)]
    return size, version, pool.rstrip(b"\0").decode("utf-8", "surrogateescape"), ext


def _page_up(n):
    return (n + _BLOCK - 1) & ~(_BLOCK - 1)


class _Mapping:
    """The pool pages of one open tensor: held open by ``fd``, unmapped
    and closed when the last array of them goes."""

    def __init__(self, fd):
        size, _, pool, ext = extents(fd)
        # a tensor of at most 2 KiB may share its pool block (packed):
        # its one extent starts inside a page
        head = ext[0][0] % _BLOCK if len(ext) == 1 else 0
        if head and head + ext[0][1] > _BLOCK:
            raise OSError(errno.EPROTO, "a packed extent past its page")
        self.size = size
        self.span = _page_up(head + size)
        self.base = None
        self.addr = None
        if size == 0:
            return
        pfd = os.open(pool, os.O_RDONLY | os.O_CLOEXEC)
        try:
            base = _libc.mmap(None, self.span, _PROT_NONE,
                              mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS |
                              _MAP_NORESERVE, -1, 0)
            if base in (None, _MAP_FAILED):
                raise OSError(ctypes.get_errno(), "mmap")
            at = 0
            for off, length in ext:
                if (off - head) % _BLOCK or (at + length < size and length % _BLOCK):
                    _libc.munmap(base, self.span)
                    raise OSError(errno.EPROTO, "extents not block-aligned")
                n = _page_up(head + length)
                got = _libc.mmap(base + at, n, mmap.PROT_READ,
                                 mmap.MAP_SHARED | _MAP_FIXED, pfd, off - head)
                if got in (None, _MAP_FAILED):
                    e = ctypes.get_errno()
                    _libc.munmap(base, self.span)
                    raise OSError(e, "mmap of the pool")
                at += n
        finally:
            os.close(pfd)
        self.base = base
        self.addr = base + head

    def array(self):
        """The bytes as a ctypes array, which keeps this mapping alive."""
        raw = (ctypes.c_ubyte * self.size).from_address(self.addr)
        raw._tcache_mapping = self
        return raw


def _release(addr, span, fd):
    if addr:
        _libc.munmap(addr, span)
    os.close(fd)


def _typed(path, dtype, shape, offset):
    """dtype, shape and data offset of the tensor at ``path``: given, or
    from its directory's meta.json (raw bytes when nothing says)."""
    info = {}
    if dtype is None or shape is None:
        d, name = os.path.split(os.path.abspath(path))
        try:
            with open(os.path.join(d, META), "rb") as f:
                info = json.load(f).get(OURS, {}).get("tensors", {}).get(name, {})
        except (FileNotFoundError, NotADirectoryError, ValueError):
            info = {}
    if not info and dtype is None and path.endswith(".npy"):
        # meta.json not there (for 10 s, to the process that made the
        # directory: see tcachefs(1)): the file's own header says
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if major == 1
                    else np.lib.format.read_array_header_2_0)
            shape_, fortran, dtype_ = read(f)
            if fortran:
                raise ValueError("%s: Fortran order is not mapped" % path)
            info = {"offset": f.tell()}
            dtype = dtype_ if dtype is None else dtype
            shape = shape_ if shape is None else shape
    if offset is None:
        offset = int(info.get("offset", 0))
    if dtype is None:
        dtype = info.get("dtype")
        if shape is None and "shape" in info:
            shape = info["shape"]
    if dtype is None:
        dtype = "uint8"
    if isinstance(dtype, str):
        dtype = _NOT_NUMPY.get(dtype, dtype)
    dtype = np.dtype(dtype)
    if shape is None:
        shape = ((os.stat(path).st_size - offset) // dtype.itemsize,)
    return dtype, tuple(int(x) for x in shape), offset


def load(path, dtype=None, shape=None, offset=None):
    """The tensor at ``path`` as a read-only ``TensorArray``.

    dtype, shape and the data's offset in the file (a .npy header) come
    from the directory's meta.json unless given; a bfloat16 or float8
    tensor comes back as its raw bits (uint16, uint8).  ``.direct`` is True
    when the array maps the pool pages (the file stays open, and its bytes
    pinned, while the array or a view of it lives), False when it reads
    through the mount (np.memmap).
    """
    dtype, shape, offset = _typed(path, dtype, shape, offset)
    count = int(np.prod(shape, dtype=np.int64))
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        m = _Mapping(fd)
    except OSError:
        os.close(fd)
        if count == 0:
            a = np.empty(shape, dtype)
            a.flags.writeable = False
        else:
            a = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
        return a.view(TensorArray)
    weakref.finalize(m, _release, m.base, m.span, fd)
    if offset + count * dtype.itemsize > m.size:
        raise ValueError("%s: %d bytes, too few for %s of %s at offset %d"
                         % (path, m.size, shape, dtype, offset))
    if m.size == 0:
        a = np.empty(shape, dtype)
    else:
        a = np.frombuffer(m.array(), dtype=dtype, count=count,
                          offset=offset).reshape(shape)
    a.flags.writeable = False
    t = a.view(TensorArray)
    t.direct = True
    return t
