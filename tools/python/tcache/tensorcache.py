"""TensorCache: a dict of tensor dicts over a tcachefs mount.

    cache = TensorCache("/mnt/tcache")
    cache["prompt-1"] = {"emb": np.zeros((4, 3), np.float32),
                         "kv": {"k": torch.ones(2, 8, dtype=torch.bfloat16)}}
    d = cache["prompt-1"]          # {"emb": memmap, "kv": {"k": tensor}}

The layout on the mount (any tool reads it):

    MNT/<key_to_basename(key)>/          the entry: one directory at the root
        emb                              a leaf: the array's raw bytes, C order
        kv/k                             a nested dict is a group (subdirectory)
        meta.json                        the mount's; we set in it the dtype and
                                         shape of each leaf, and attrs {"key": key}
                                         (and "0d", below) in the entry's own

Leaves are numpy arrays, torch tensors (moved to the CPU; any device) or
anything ``numpy.asarray`` takes; dtypes are those the mount names: bool,
(u)int8..64, float16, bfloat16, float32, float64, float8_*.  A leaf's name
is its file name, so it may not be empty, contain "/" or NUL, start with
".", be "meta.json", or end in ".npy" or ".safetensors" (the mount would
read a header from those).

Reads map the files: each leaf comes back as a read-only ``numpy.memmap``
(no copy; the mount's page cache is shared by every reader).  dtypes numpy
lacks (bfloat16, float8_*) come back as a torch tensor over the same
mapping when torch imports (no copy; torch warns once that the memory is
not writable: do not write to it), else as the raw bits (a uint16 or uint8
memmap).  A leaf of no elements is an empty read-only array (nothing to
map).  A 0-d leaf comes back 0-d: the mount shows its shape as [1], so
the entry's attrs list the 0-d leaves ("0d": their paths in the entry).
While any returned array is alive its file stays open, so the mount never
evicts that entry.  A read resolves every name inside the entry directory
it opened first (file descriptors, not paths from the root), and is
returned only if that directory is still the key's entry when it is done
(else it is read again, or the key is a miss): one version of the entry,
whole, even while the key is being replaced or cleared.

Writing a key is atomic for readers and for crashes: the entry is written
whole under a temporary name at the root (``.tcache-tmp-...``), each
directory's meta.json set last, and renamed to its basename.  A rename of
a directory onto a non-empty one fails on the mount (as on any POSIX file
system) and the mount has no RENAME_EXCHANGE, so replacing a key is two
renames: the old entry to ``.tcache-old-...``, the new one into place,
then the old one removed.  Between the two renames a reader finds the key
absent (a miss, never a mixture of old and new tensors); a reader that
already mapped the old tensors keeps reading them.  A crash at any point
leaves the key old, new or absent, never partly written; temporary and
old entries a crash leaves behind are ordinary entries to the mount (the
least recently used go first when it needs room) and ``clear()`` removes
them.  Two writers of one key: the last rename wins, each entry is whole.
A key written is committed against a kill -9 of the daemon once the
assignment returns (each file's close() committed it); against power loss,
after `tcache sync MNT` (this package does not sync).

What a TensorCache owns on the mount: the entries it wrote (those whose
attrs hold a "key") and its temporary entries.  ``keys()``, ``len()``,
``clear()`` and ``get_cache_size()`` see those alone, so other clients'
files on the same mount are left alone.  Those four read each entry's
meta.json: O(entries).
"""
import errno
import hashlib
import json
import os
import shutil
import uuid
import warnings

import numpy as np

try:
    import torch
except ImportError:  # torch is optional
    torch = None

__all__ = ["TensorCache", "key_to_basename", "human_size"]

TMP_PREFIX = ".tcache-tmp-"
OLD_PREFIX = ".tcache-old-"
META = "meta.json"
OURS = "__tcache__"

# dtypes the mount names that numpy has not: their raw bits' numpy type
_NOT_NUMPY = {
    "bfloat16": np.uint16,
    "float8_e4m3fn": np.uint8, "float8_e4m3fnuz": np.uint8,
    "float8_e5m2": np.uint8, "float8_e5m2fnuz": np.uint8,
}
_NUMPY_KINDS = "biuf"  # bool, int, uint, float
_REPLACE_TRIES = 16
_READ_TRIES = 8


def key_to_basename(key):
    """The entry name of ``key``: ``sha256(str(key)).hexdigest()[:32]``.

    32 hex digits (128 bits), the name tensordict-cache gives the same key
    (its entries are TensorDict memmap directories, not read here, but one
    key names the same entry on a mount both use).  It is not `tcache key`'s
    XXH3-128 (which is length-prefixed over several strings): xxh3 is not
    in Python's standard library, and this package is pure Python.
    """
    return hashlib.sha256(str(key).encode("utf-8")).hexdigest()[:32]


def _check_name(name, what):
    if not isinstance(name, str):
        raise TypeError("%s names must be str, got %r" % (what, name))
    if (not name or "/" in name or "\0" in name or name.startswith(".")
            or name == META or name.endswith((".npy", ".safetensors"))):
        raise ValueError("%r cannot be a %s name (empty, '/', NUL, a "
                         "leading '.', meta.json, .npy or .safetensors)"
                         % (name, what))


def _leaf_bytes(value):
    """(dtype name, shape, C-contiguous uint8 array of its bytes)."""
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        name = str(t.dtype).replace("torch.", "")
        if name in _NOT_NUMPY:
            raw = t.view(getattr(torch, "int16" if t.element_size() == 2
                                 else "uint8")).numpy()
            return name, list(t.shape), raw.reshape(-1).view(np.uint8)
        value = t.numpy()
    a = np.asarray(value)
    if a.dtype.kind not in _NUMPY_KINDS or a.dtype.itemsize > 8:
        raise TypeError("dtype %s cannot be stored (bool, int, uint and "
                        "float up to 64 bits can)" % a.dtype)
    shape = list(a.shape)  # ascontiguousarray makes a 0-d array 1-d
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return a.dtype.name, shape, a.reshape(-1).view(np.uint8)


def _write_group(path, tree, attrs=None, scalars=None, prefix=""):
    """Make directory path, fill it from tree, set its meta.json last.

    The mount shows a 0-d tensor's shape as [1]: the paths of 0-d leaves
    go to scalars, kept in the entry's attrs as "0d".
    """
    if scalars is None:
        scalars = []
    os.mkdir(path)
    tensors = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            _check_name(name, "group")
            _write_group(os.path.join(path, name), value, None, scalars,
                         prefix + name + "/")
            continue
        _check_name(name, "tensor")
        dtype, shape, raw = _leaf_bytes(value)
        with open(os.path.join(path, name), "wb") as f:
            if raw.size:
                f.write(memoryview(raw))
        tensors[name] = {"dtype": dtype, "shape": shape}
        if not shape:
            scalars.append(prefix + name)
    ours = {"tensors": tensors}
    if attrs is not None:
        ours["attrs"] = dict(attrs, **({"0d": scalars} if scalars else {}))
    with open(os.path.join(path, META), "w") as f:
        json.dump({OURS: ours}, f)


def _opener(dir_fd):
    return lambda name, flags: os.open(name, flags, dir_fd=dir_fd)


def _meta(path, dir_fd=None):
    """The "__tcache__" object of meta.json in path, or in dir_fd."""
    if dir_fd is None:
        f = open(os.path.join(path, META))
    else:
        f = open(META, opener=_opener(dir_fd))
    with f:
        doc = json.load(f)
    ours = doc.get(OURS) if isinstance(doc, dict) else None
    return ours if isinstance(ours, dict) else {}


def _map(dir_fd, name, info):
    """A read-only, no-copy array of the tensor file name in dir_fd."""
    dtname = info.get("dtype")
    shape = tuple(info.get("shape", ()))
    offset = int(info.get("offset", 0))
    if dtname is None:  # not typed by anyone: its bytes
        dtname, shape = "uint8", (int(info.get("nbytes", 0)) - offset,)
    raw_type = _NOT_NUMPY.get(dtname)
    dtype = np.dtype(raw_type if raw_type is not None else dtname)
    if int(np.prod(shape, dtype=np.int64)) == 0:
        a = np.empty(shape, dtype)
        a.flags.writeable = False
    else:
        with open(name, "rb", opener=_opener(dir_fd)) as f:
            a = np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=shape)
    if raw_type is not None and torch is not None and hasattr(torch, dtname):
        signed = a.view(np.int16 if dtype.itemsize == 2 else np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # not writable
            return torch.from_numpy(signed).view(getattr(torch, dtname))
    return a


def _read_group(dir_fd, ours, scalars, prefix=""):
    """The group open as dir_fd (ours: its meta's "__tcache__"), a dict.

    Every name is resolved in dir_fd, never by a path from the root, so
    the tree read is the one directory opened even if the key's entry is
    replaced meanwhile: old and new are never mixed.  scalars: the
    entry's 0-d leaves by their path in it.
    """
    tensors = ours.get("tensors", {})
    out = {}
    with os.scandir(dir_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            fd = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
            try:
                out[e.name] = _read_group(fd, _meta(None, fd), scalars,
                                          prefix + e.name + "/")
            finally:
                os.close(fd)
        elif e.name in tensors:
            a = _map(dir_fd, e.name, tensors[e.name])
            if prefix + e.name in scalars:
                a = a.reshape(())
            out[e.name] = a
    return out


class TensorCache:
    """A dict-like cache of tensor dicts, one mount entry per key.

    ``path`` is the root of a tcachefs mount (entries are its top-level
    directories: that is what the mount evicts whole and renames
    atomically).  Keys are strings, or anything whose ``str()`` names it:
    the entry is ``key_to_basename(key)`` and attrs {"key": str(key)}.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", self.path)

    def __repr__(self):
        return "TensorCache(%r)" % self.path

    def _entry(self, key):
        return os.path.join(self.path, key_to_basename(key))

    # -- writing --------------------------------------------------------
    def __setitem__(self, key, tree):
        """Write ``tree`` (a dict of arrays and dicts) as the entry of key.

        Atomic (see the module's notes): readers and a crash see the old
        entry, the new one, or (only while it is being replaced) none.
        Raises TypeError/ValueError for a leaf or name that cannot be
        stored (nothing is written), OSError from the mount (ENOSPC when
        the cache cannot make room); then the key keeps its old entry.
        """
        if not isinstance(tree, dict):
            raise TypeError("a TensorCache value is a dict of tensors, not %s"
                            % type(tree).__name__)
        base = key_to_basename(key)
        final = os.path.join(self.path, base)
        tmp = os.path.join(self.path, "%s%s-%s" % (TMP_PREFIX, base, uuid.uuid4().hex))
        try:
            _write_group(tmp, tree, attrs={"key": str(key)})
            self._move_into_place(tmp, final, base)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _move_into_place(self, tmp, final, base):
        for _ in range(_REPLACE_TRIES):
            try:
                os.rename(tmp, final)
                return
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            old = os.path.join(self.path, "%s%s-%s" % (OLD_PREFIX, base, uuid.uuid4().hex))
            try:
                os.rename(final, old)
            except FileNotFoundError:  # another writer moved it: try again
                continue
            try:
                os.rename(tmp, final)
            finally:
                shutil.rmtree(old, ignore_errors=True)
            return
        raise OSError(errno.EBUSY, "entry replaced concurrently %d times"
                      % _REPLACE_TRIES, final)

    # -- reading --------------------------------------------------------
    def __getitem__(self, key):
        """The entry of key as a dict of read-only mapped arrays (and dicts).

        KeyError when the key has no entry (never written, evicted, or
        being replaced this instant).
        """
        path = self._entry(key)
        for _ in range(_READ_TRIES):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except (FileNotFoundError, NotADirectoryError):
                break
            try:
                ours = _meta(None, fd)
                attrs = ours.get("attrs", {})
                if attrs.get("key") != str(key):
                    break  # not an entry of ours (or another key's)
                tree = _read_group(fd, ours, set(attrs.get("0d", ())))
                # Whole only if the directory read is still the key's: a
                # replaced entry is renamed away before it is removed, so
                # one still in place was never partly removed meanwhile.
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return tree
            except OSError as e:
                # replaced or evicted while we read (the old directory
                # gone: ENOENT, or ESTALE for the opened one): once more
                if e.errno not in (errno.ENOENT, errno.ESTALE):
                    raise
            finally:
                os.close(fd)
        raise KeyError(key)

    def get(self, key, default=None):
        """``cache[key]``, or default when the key has no entry."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key):
        try:
            return _meta(self._entry(key)).get("attrs", {}).get("key") == str(key)
        except (OSError, ValueError):
            return False

    # -- the whole cache ------------------------------------------------
    def _scan(self):
        """(key or None, path) of each entry we own; None for leftovers."""
        with os.scandir(self.path) as it:
            for e in it:
                if not e.is_dir(follow_symlinks=False):
                    continue
                if e.name.startswith((TMP_PREFIX, OLD_PREFIX)):
                    yield None, e.path
                    continue
                try:
                    key = _meta(e.path).get("attrs", {}).get("key")
                except (OSError, ValueError):
                    continue  # evicted meanwhile, or not JSON
                if isinstance(key, str) and e.name == key_to_basename(key):
                    yield key, e.path

    def keys(self):
        """The keys (as the str they were stored under), in no set order."""
        return [k for k, _ in self._scan() if k is not None]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def clear(self):
        """Remove every entry of this cache, leftovers of crashes too.

        Each entry is renamed away first, then removed: a reader sees it
        whole or absent.
        """
        for key, path in list(self._scan()):
            if key is not None:
                old = os.path.join(self.path, "%s%s-%s" % (
                    OLD_PREFIX, os.path.basename(path), uuid.uuid4().hex))
                try:
                    os.rename(path, old)
                except FileNotFoundError:
                    continue  # gone meanwhile
                path = old
            shutil.rmtree(path, ignore_errors=True)

    def get_cache_size(self):
        """Bytes of tensors in this cache's entries (st_size of each file)."""
        total = 0
        for _, path in self._scan():
            for root, _dirs, files in os.walk(path):
                for name in files:
                    try:
                        total += os.stat(os.path.join(root, name)).st_size
                    except FileNotFoundError:
                        pass  # evicted meanwhile
        return total

    def get_cache_size_human(self):
        """get_cache_size() for people: "512 B", "1.5 KiB", "12.3 MiB"."""
        return human_size(self.get_cache_size())


def human_size(n):
    """n bytes as "512 B", "12.3 MiB" (binary units, one decimal)."""
    if n < 1024:
        return "%d B" % n
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024.0
        if n < 1024 or unit == "PiB":
            return "%.1f %s" % (n, unit)
