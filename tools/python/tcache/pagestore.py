"""PageStore: KV-cache pages as files at the root of a tcachefs mount.

    store = PageStore("/mnt/tcache", page_size=64, suffix=".kv")
    n = store.match_prefix(tokens)          # tokens already cached as pages
    keys = store.keys_for(tokens)
    with store.lock(keys[:n // 64]):        # not evicted while held
        bufs = store.get(keys[:n // 64])    # bytearrays (or out=your buffers)
    store.put(tokens, new_pages)            # writes the pages not present

The layout (what an SGLang HiCache or LMCache disk tier keeps, one file a
page):

    MNT/<key><suffix>        page i of a token sequence: its bytes, as given;
                             key = page_hashes(tokens, page_size,
                             namespace=namespace)[i] (64 hex digits)
    user.tcache.parent       its extended attribute: the file name of page
                             i-1 (none for a first page), so the mount
                             evicts a chain from its end (below)

Eviction on a mount (the mount's rule, not this module's): never an entry
with an open file (``lock()`` holds pages that way), nor one whose child
(by ``user.tcache.parent``) is present; among the rest, the least recently
used.  A chain therefore loses its last page first, and the pages present
are always a leading run: ``match_prefix`` counts them all the same, one
stat(2) a page in order, never assuming it.

Writing, on a mount whose pool file this process may write (the daemon's
user, or root): per run of up to 192 pages one lookup request, then the
pages absent are staged (their room reserved in the pool), written
straight into the pool file, and named all at once by one journal record
(tcache.batch ``staged_put``): a kill -9 of the daemon or of the writer
leaves the whole run, each page with its link, or none of it (a power
loss before the mount syncs: each page whole or absent).

Writing otherwise (and for a page the pool has no single run for) is
atomic per page: each page is written whole under a temporary
name at the root (``.tcache-tmp-pg-<pid>-<tid>-<n>-<random>.<suffix>``), closed (the
mount commits it), linked to its parent, then renamed onto its final name.
A kill -9 of the daemon or of the writer leaves each page present whole
with its link, or absent; at most temporary files stay behind, which
every method here ignores, ``clean()`` and ``clear()`` remove, and the
mount evicts like any entry.  Page i stays open from before page i+1 is
written until page i+1 is in place, so a put never leaves a gap in its
own chain.

``links=False``: no parent links (``put`` sets none).  For a directory
that is not a tcachefs mount (a plain directory has no prefix-aware
eviction, and its file system may refuse ``user.*`` attributes): the bench
compares the two this way.

This module is the standard library alone.  Page buffers may be bytes,
bytearray, memoryview, numpy arrays or torch tensors (CPU for ``get``'s
``out``).
"""
import contextlib
import errno
import itertools
import os
import re
import threading

from .batch import Batch, chunks, stage_runs
from .pages import page_hashes

__all__ = ["PageStore", "PARENT_XATTR"]

#: The extended attribute naming a page's parent (the previous page's file).
PARENT_XATTR = "user.tcache.parent"
_TMP_PREFIX = ".tcache-tmp-pg-"
_KEY = re.compile(r"[0-9a-f]{64}\Z")
_KEYS = re.compile(r"(?:[0-9a-f]{64}\n)*")
_NAME_MAX = 255
_counter = itertools.count()
_inflight = set()           # temporary names this process is writing
_inflight_lock = threading.Lock()


def _byte_view(buf, writable=False):
    """A flat memoryview of bytes ('B') over buf, without a copy if it can.

    writable: for ``get``'s out buffers; these are never copied (a copy
    would not be the caller's buffer), so they must be C-contiguous, and a
    torch tensor must be on the CPU.
    """
    if hasattr(buf, "element_size") and hasattr(buf, "is_contiguous"):  # torch
        t = buf.detach()
        if writable and (t.device.type != "cpu" or not t.is_contiguous()):
            raise ValueError("an out tensor must be a contiguous CPU tensor")
        t = t.cpu().contiguous().reshape(-1)
        import torch  # only when given a tensor: the caller has torch
        buf = t.view(torch.uint8).numpy()
    try:
        m = memoryview(buf)
    except TypeError:
        raise TypeError("a page is a buffer (bytes, bytearray, memoryview, "
                        "numpy array, torch tensor), not %s"
                        % type(buf).__name__) from None
    if writable and m.readonly:
        raise ValueError("an out buffer must be writable")
    if m.format == "B" and m.ndim == 1 and m.c_contiguous:
        return m
    if m.c_contiguous:
        return m.cast("B")
    if writable:
        raise ValueError("an out buffer must be C-contiguous")
    return memoryview(m.tobytes())


def _write_all(fd, m):
    while m:
        m = m[os.write(fd, m):]


def _read_into(fd, m, name):
    pos = 0
    while pos < len(m):
        n = os.readv(fd, [m[pos:]])
        if n == 0:
            raise OSError(errno.EIO, "page %s ended after %d of %d bytes"
                          % (name, pos, len(m)))
        pos += n


class PageStore:
    """KV-cache pages of ``page_size`` tokens as files at the root of path.

    path       the root of a tcachefs mount (or, with links=False, any
               directory)
    page_size  tokens per page, > 0 (the keys' chain; the bytes of a page
               may be any non-zero length)
    suffix     appended to each key to make the page's file name (e.g.
               ".kv" or "_llama_0_1.bin"); no "/" or NUL
    namespace  None, or str/bytes hashed into every key (a model, a LoRA
               adapter, a multimodal hash: pymllm's extra_key), so chains
               of different namespaces never share a page.  None keeps the
               keys byte-identical to SGLang's (see tcache.page_hashes)
    links      set the ``user.tcache.parent`` link of each page put (the
               default); False for a plain directory

    A store is its suffix on its mount: two stores with the same suffix
    (whatever their namespace) see and ``clear()`` each other's pages.
    Methods are safe to call from several threads and processes at once.
    """

    def __init__(self, path, page_size, suffix="", namespace=None, links=True):
        self.path = os.fspath(path)
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise TypeError("page_size must be an int")
        if page_size < 1:
            raise ValueError("page_size must be at least 1, got %d" % page_size)
        if not isinstance(suffix, str):
            raise TypeError("suffix must be a str")
        if "/" in suffix or "\0" in suffix:
            raise ValueError("suffix %r may not contain '/' or NUL" % suffix)
        # the longest temporary name: pid, thread id and counter of 20 digits
        if len(_TMP_PREFIX) + 3 * 20 + 8 + 4 + len(os.fsencode(suffix)) > _NAME_MAX:
            raise ValueError("suffix %r is too long for a file name" % suffix)
        if namespace is not None:
            page_hashes([], 1, namespace=namespace)  # TypeError if malformed
        if not os.path.isdir(self.path):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", self.path)
        self.page_size = page_size
        self.suffix = suffix
        self.namespace = namespace
        self.links = bool(links)
        self._batch = None       # a tcache.batch.Batch, made at first use
        self._batch_lock = threading.Lock()
        self._page_re = re.compile(r"[0-9a-f]{64}%s\Z" % re.escape(suffix))
        self._tmp_re = re.compile(r"%s(\d+)-\d+-\d+-[0-9a-f]{8}\.%s\Z"
                                  % (re.escape(_TMP_PREFIX), re.escape(suffix)))

    def __repr__(self):
        return "PageStore(%r, %d, suffix=%r, namespace=%r)" % (
            self.path, self.page_size, self.suffix, self.namespace)

    def _tmp_name(self):
        """A temporary name no other writer uses: pid, thread, counter, and
        random bits (a leftover of a crashed process of the same pid, as in
        a container restarted, or a writer in another PID namespace)."""
        return "%s%d-%d-%d-%s.%s" % (_TMP_PREFIX, os.getpid(),
                                     threading.get_native_id(), next(_counter),
                                     os.urandom(4).hex(), self.suffix)

    # -- names ----------------------------------------------------------
    def _name(self, key):
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError("a page key is 64 lowercase hex digits, not %r"
                             % (key,))
        return key + self.suffix

    def _names(self, keys):
        """[_name(k) for k in keys], checked in one pass of the regex
        engine over them all (a thousand keys: a few dozen µs, not a few
        hundred); on a bad key, _name's error for the first one."""
        try:
            joined = "\n".join(keys) + "\n"
            if len(joined) == 65 * len(keys) and _KEYS.fullmatch(joined):
                return [k + self.suffix for k in keys]
        except TypeError:
            pass
        return [self._name(k) for k in keys]

    def page_path(self, key):
        """The path of the file of page ``key``."""
        return os.path.join(self.path, self._name(key))

    def keys_for(self, token_ids, prior=None):
        """The keys of the full pages of token_ids, in order.

        ``page_hashes(token_ids, page_size, prior, namespace)`` with this
        store's page size and namespace; prior is the key of the page
        before token_ids[0] (a chain continued), None at a sequence's start.
        """
        return page_hashes(token_ids, self.page_size, prior=prior,
                           namespace=self.namespace)

    # -- batches --------------------------------------------------------
    def _batcher(self):
        """The directory's Batch (tcache.batch): ``can_exist`` on a
        tcachefs mount, ``ok`` where this process may also map the pool."""
        b = self._batch
        if b is None:
            with self._batch_lock:
                if self._batch is None:
                    self._batch = Batch(self.path)
                b = self._batch
        return b

    def close(self):
        """Close the directory and pool files batches use (a later call
        opens them again)."""
        with self._batch_lock:
            b, self._batch = self._batch, None
        if b is not None:
            b.close()

    # -- lookups --------------------------------------------------------
    def _present(self, name):
        try:
            os.stat(os.path.join(self.path, name))
            return True
        except FileNotFoundError:
            return False

    def exists(self, key):
        """True if page ``key`` is present (one stat: its recency is not
        touched)."""
        return self._present(self._name(key))

    def batch_exists(self, keys):
        """How many of keys, from the first, are present: the count before
        the first absent one (SGLang's batch_exists).  On a tcachefs mount
        one request per up to 192 keys (tcache.batch), each a lookup as a
        stat makes; elsewhere one stat a key.  In order, stopping at the
        first absent page; no page's recency changes."""
        names = self._names(list(keys))
        b = self._batcher()
        if b.can_exist:
            return b.leading(names)
        for i, name in enumerate(names):
            if not self._present(name):
                return i
        return len(names)

    def match_prefix(self, token_ids, prior=None):
        """Tokens of token_ids held as leading pages: page_size times the
        number of leading full pages present.

        One stat a page in order, stopping at the first absent one (so a
        1,000-page chain costs 1,000 stats at most, and no page's recency
        changes).  prior as for keys_for.
        """
        return self.page_size * self.batch_exists(self.keys_for(token_ids, prior))

    # -- writing --------------------------------------------------------
    def put(self, token_ids, pages, prior=None):
        """Store the pages of token_ids that are not present; return how
        many were written.

        pages: one buffer per full page, in order (bytes, bytearray,
        memoryview, numpy array, torch tensor); fewer than the full pages
        stores the first len(pages).  Each page's file gets the parent link
        to the page before it (page 0's is ``prior + suffix`` when prior is
        given, none otherwise).  A page present is kept as it is (and
        opened, which makes it recently used).  The pages go straight into
        the pool, many in one record, or each through a temporary file
        renamed into place (see the module's notes): either way a crash
        leaves pages whole, with their link, or absent.

        Raises ValueError for more pages than full pages or an empty page,
        TypeError for a page that is not a buffer (before anything is
        written); OSError from the mount (ENOSPC when it cannot make room:
        the pages before the failing one stay stored).
        """
        keys = self.keys_for(token_ids, prior)
        pages = list(pages)
        if len(pages) > len(keys):
            raise ValueError("%d pages given for %d full pages of %d tokens"
                             % (len(pages), len(keys), self.page_size))
        views = [_byte_view(p) for p in pages]
        for i, v in enumerate(views):
            if not v.nbytes:
                raise ValueError("page %d (%s) is empty: a page has bytes"
                                 % (i, keys[i]))
        parent = None if prior is None else self._name(prior)
        b = self._batcher()
        if b.ok and b.can_stage and self.links:
            return self._put_staged(b, keys, views, parent)
        return self._put_files(keys, views, parent)

    def _put_files(self, keys, views, parent):
        """put() through files: each page written under a temporary name,
        linked, renamed into place."""
        written = 0
        held = -1  # the previous page, open: not evicted before its child lands
        try:
            for key, view in zip(keys, views):
                name = self._name(key)
                fd = self._hold(name)
                if fd < 0:
                    fd = self._write_page(name, view, parent)
                    written += 1
                if held >= 0:
                    os.close(held)
                held = fd
                parent = name
        finally:
            if held >= 0:
                os.close(held)
        return written

    def _put_staged(self, b, keys, views, parent):
        """put() straight into the pool (tcache.batch staged_put): per run
        of up to TC_BATCH_MAX pages, three requests: the pages looked up,
        those absent staged, written, and named in one journal record (one
        present by then is kept, its staged bytes dropped).  The
        page before a run stays open while it is staged, so that making
        room never evicts it before its child lands; within a run every
        page but the last has its child in the same record.  A page the
        pool has no single run for, and every page when staging is refused
        or finds no room for the whole run, goes through a file."""
        names = [self._name(k) for k in keys[:len(views)]]
        enc = [n.encode() for n in names]
        links = [(enc[i - 1] if i else
                  (parent.encode() if parent is not None else b""))
                 for i in range(len(enc))]
        written = 0
        held = self._hold(parent) if parent is not None else -1
        try:
            for start, k in stage_runs(enc, links):
                run = range(start, start + k)
                sizes = b.exists([enc[i] for i in run])
                new = [i for i, size in zip(run, sizes) if size is None]
                made = dict.fromkeys(run, False)   # present: kept
                made.update(dict.fromkeys(new))    # None: through a file
                if new and b.can_stage:
                    try:
                        made.update(zip(new, b.staged_put(
                            [views[i] for i in new], [enc[i] for i in new],
                            [links[i] for i in new])))
                    except OSError as e:
                        if e.errno != errno.ENOSPC and b.can_stage:
                            raise
                        # refused, or no room for the whole run: page by
                        # page (ENOSPC, if so, at the page that needs it)
                written += sum(1 for i in run if made[i])
                for i in run:
                    m = made[i]
                    if m is False:  # present: kept; opened: recently used
                        fd = self._hold(names[i])
                        if fd >= 0:
                            os.close(fd)
                    elif m is None:  # through a file: refused, or no run
                        fd = self._hold(names[i])
                        if fd < 0:
                            fd = self._write_page(names[i], views[i],
                                                  links[i].decode() or None)
                            written += 1
                        os.close(fd)
                last = self._hold(names[start + k - 1])
                if held >= 0:
                    os.close(held)
                held = last
        finally:
            if held >= 0:
                os.close(held)
        return written

    def _hold(self, name):
        """An O_RDONLY fd of page name if present, else -1."""
        try:
            return os.open(os.path.join(self.path, name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return -1

    def _write_page(self, name, view, parent):
        """Write one page atomically; return an O_RDONLY fd of it, in place."""
        tmp_name = self._tmp_name()
        tmp = os.path.join(self.path, tmp_name)
        with _inflight_lock:
            _inflight.add(tmp_name)
        fd = -1
        try:
            # O_EXCL: never another writer's file (nor unlinked below)
            wfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                          0o644)
            try:
                try:
                    _write_all(wfd, view)
                finally:
                    os.close(wfd)  # the mount commits the page here
                # held open from here on: not evicted before it is in place
                fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
                if self.links and parent is not None:
                    self._link(fd, parent)
                os.replace(tmp, os.path.join(self.path, name))
                return fd
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        finally:
            with _inflight_lock:
                _inflight.discard(tmp_name)

    def _link(self, fd, parent):
        try:
            os.setxattr(fd, PARENT_XATTR, os.fsencode(parent))
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            raise OSError(e.errno, "%s keeps no %s links (not a tcachefs "
                          "mount, or one too old): use PageStore(..., "
                          "links=False) there" % (self.path, PARENT_XATTR)) from None

    # -- reading --------------------------------------------------------
    def get(self, keys, out=None):
        """Read pages; return a list, per key, of its buffer or None.

        out: None (each page read into a new bytearray of its size), or one
        writable buffer per key (bytearray, memoryview, numpy array, CPU
        torch tensor; C-contiguous) that the page is read into with
        readinto, no copy in between; its byte size must equal the page's.
        The list holds out[i] (or the new bytearray) for a page present and
        None for one absent: a missing page is not an error.  Reading
        opens the page (it becomes the most recently used) and holds it
        until read, so it is never evicted half-read.

        Raises ValueError (naming the key) when out[i]'s size differs from
        the page's, or when len(out) != len(keys).

        On a tcachefs mount whose pool this process may read, up to 192
        pages are opened in one request and copied straight from the pool
        (tcache.batch): the same bytes, counts and recency as opening each
        page, and two requests per batch instead of several per page.
        """
        keys = list(keys)
        names = self._names(keys)
        if out is not None:
            out = list(out)
            if len(out) != len(keys):
                raise ValueError("%d out buffers for %d keys" % (len(out), len(keys)))
        b = self._batcher()
        if b.ok:
            return self._get_batched(b, keys, names, out)
        return [self._get_one(key, name, None if out is None else out[i])
                for i, (key, name) in enumerate(zip(keys, names))]

    @staticmethod
    def _out_view(key, size, buf):
        """(buffer, writable byte view) for a page of size bytes: a new
        bytearray, or buf checked."""
        if buf is None:
            buf = bytearray(size)
            return buf, memoryview(buf)
        view = _byte_view(buf, writable=True)
        if view.nbytes != size:
            raise ValueError("page %s is %d bytes, its out buffer %d"
                             % (key, size, view.nbytes))
        return buf, view

    def _get_one(self, key, name, buf):
        """Page name read through its file into buf (None: a new one);
        None when absent."""
        fd = self._hold(name)
        if fd < 0:
            return None
        try:
            buf, view = self._out_view(key, os.fstat(fd).st_size, buf)
            _read_into(fd, view, key)
        finally:
            os.close(fd)
        return buf

    def _get_batched(self, b, keys, names, out):
        result = [None] * len(keys)
        enc = [os.fsencode(n) for n in names]
        for start, run in chunks(enc):
            with b.pinned_runs(run) as got:
                fd = b.pool_fd()
                for j, g in enumerate(got):
                    i = start + j
                    if g is None:
                        continue
                    size, off = g
                    buf = None if out is None else out[i]
                    if off is None:  # in several runs of the pool: its file
                        result[i] = self._get_one(keys[i], names[i], buf)
                        continue
                    buf, view = self._out_view(keys[i], size, buf)
                    # preadv, not a copy from a mapping: a first pass takes
                    # no page faults on the pool's side
                    at = 0
                    while at < size:
                        got_n = os.preadv(fd, [view[at:]], off + at)
                        if got_n <= 0:
                            raise OSError(errno.EIO, "the pool is shorter "
                                          "than page %s in it" % keys[i])
                        at += got_n
                    result[i] = buf
        return result

    @contextlib.contextmanager
    def lock(self, keys):
        """Hold pages against eviction while the with-block runs.

        Opens each page of keys that is present (O_RDONLY) and keeps the
        descriptors until the block ends (exception or not): the mount
        never evicts an entry with an open file.  A page absent at lock
        time is not locked (and not created); the block gets the list of
        the keys that were.  Locking opens the pages, so they also become
        recently used.  Each lock costs a descriptor a page.
        """
        fds, locked = [], []
        try:
            for key in keys:
                fd = self._hold(self._name(key))
                if fd >= 0:
                    fds.append(fd)
                    locked.append(key)
            yield locked
        finally:
            for fd in fds:
                os.close(fd)

    # -- removing -------------------------------------------------------
    def remove(self, key):
        """Remove page ``key``: True if it was there, False if absent."""
        try:
            os.unlink(self.page_path(key))
            return True
        except FileNotFoundError:
            return False

    def _scan(self):
        """(name, temporary?, writer pid) of this store's files at the root."""
        with os.scandir(self.path) as it:
            for e in it:
                if self._page_re.match(e.name):
                    yield e.name, False, None
                    continue
                m = self._tmp_re.match(e.name)
                if m:
                    yield e.name, True, int(m.group(1))

    def _unlink(self, name):
        try:
            os.unlink(os.path.join(self.path, name))
            return 1
        except FileNotFoundError:
            return 0

    def clean(self):
        """Remove this store's temporary files left by writers that are
        gone (a crash, a kill); return how many.

        A temporary file of a process alive here is left alone (it may be
        writing it), unless it is this process's and none of its threads
        is.  Leftovers of processes in another PID namespace (a container
        sharing the mount) look alive or gone by their pid here: clear()
        removes them, and the mount evicts them like any entry.
        """
        with _inflight_lock:
            inflight = set(_inflight)
        n = 0
        for name, tmp, pid in list(self._scan()):
            if not tmp:
                continue
            if pid <= 0:
                pass  # no process's: a leftover
            elif pid == os.getpid():
                if name in inflight:
                    continue
            else:
                try:
                    os.kill(pid, 0)
                    continue  # alive: may be writing it
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue  # alive, another user's
            n += self._unlink(name)
        return n

    def clear(self):
        """Remove every page of this store (the files named 64 hex digits
        and its suffix) and its temporary files; return how many files.

        Other files on the mount are left alone.  A put running meanwhile
        may fail (its temporary file gone) or put pages back.
        """
        return sum(self._unlink(name) for name, _, _ in list(self._scan()))
