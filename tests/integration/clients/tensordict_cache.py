#!/usr/bin/python3
"""tensordict-cache (TensorCache over TensorDict.memmap), acted out.

An entry is the directory <prefix>/<sha256(str(key)).hexdigest()[:32]>,
filled the way TensorDict.memmap(dir) fills one: sub-TensorDicts first
(each its own directory, recursively), each tensor leaf as <leaf>.memmap
(the file created empty with O_EXCL, then torch.from_file(shared=True)
of its size and a copy into the mapping: MemoryMappedTensor.from_tensor;
no file for a tensor of no elements), and last the level's meta.json in
TensorDict's schema:

  {"emb": {"device": "cpu", "shape": [768], "dtype": "torch.float32",
           "is_nested": false},
   "nested": {"type": "TensorDict"},
   "shape": [], "device": "cpu", "_type": "<class 'tensordict._td.TensorDict'>"}

It is read back by the rules of TensorDict.load_memmap (load() below):
for each key of meta.json whose value is a dict, one with "type" is a
sub-TensorDict in the directory of that name, else one with "dtype" and
"shape" is the tensor <key>.memmap, memory-mapped with torch.from_file
(shared when the file is writable, as MemoryMappedTensor.from_filename
does); a missing file of no elements is an empty tensor; everything else
(the "__tcache__" a mount adds among them) is skipped.  Without torch,
numpy.memmap does both.

Phases (see clientlib) plus:
  tree OUT          write a TensorDict tree with every dtype we name, a
                    tensor of no elements, a large one and two levels of
                    sub-TensorDicts, for the copy tools
  compare SRC DST   DST is a copy of the tree SRC: the same files, byte
                    for byte; each meta.json value-equal for SRC's keys
                    (with --mount: plus "__tcache__", which types each
                    K.memmap as declared); both load to the same tensors
"""

import hashlib
import json
import math
import os
import sys

import numpy as np

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

ITEMS, HOT, REFRESH, MORE = 80, 4, 6, 8          # about 21 MiB in all
TAIL = 5
MAX_ITEMS = 4096
TD_TYPE = "<class 'tensordict._td.TensorDict'>"

# torch's name -> (our name, numpy dtype holding the same bytes)
DTYPES = {
    "torch.float32": ("float32", "<f4"), "torch.float16": ("float16", "<f2"),
    "torch.bfloat16": ("bfloat16", "<u2"), "torch.float64": ("float64", "<f8"),
    "torch.int64": ("int64", "<i8"), "torch.int32": ("int32", "<i4"),
    "torch.int16": ("int16", "<i2"), "torch.int8": ("int8", "i1"),
    "torch.uint8": ("uint8", "u1"), "torch.bool": ("bool", "?"),
}


def itemsize(dtype):
    return np.dtype(DTYPES[dtype][1]).itemsize


class Leaf:
    """A tensor to write: torch dtype name, shape, its bytes."""

    def __init__(self, dtype, shape, seed):
        self.dtype, self.shape = dtype, list(shape)
        n = math.prod(shape) * itemsize(dtype)
        b = clientlib.payload(seed, n)
        if dtype == "torch.bool":
            b = bytes(np.frombuffer(b, np.uint8) & 1)
        self.data = b


def entry_td(name):
    """The TensorDict a cache entry holds (about 260 KiB)."""
    return {
        "emb": Leaf("torch.float32", [256, 128], name + "/emb"),
        "ids": Leaf("torch.int64", [4000], name + "/ids"),
        "mask": Leaf("torch.bool", [4000], name + "/mask"),
        "empty": Leaf("torch.float32", [0, 16], name + "/empty"),
        "nested": {
            "kv": Leaf("torch.bfloat16", [2, 8, 3000], name + "/nested/kv"),
            "pos": Leaf("torch.uint8", [1001], name + "/nested/pos"),
        },
    }


def tree_td():
    """The tree the copy tools copy: every dtype, odd sizes, a large
    tensor, nothing for a tensor of no elements, two levels down."""
    t = "tree"
    return {
        "emb": Leaf("torch.float32", [300, 1000], t + "/emb"),      # 1.2 MB
        "ids": Leaf("torch.int64", [777], t + "/ids"),
        "mask": Leaf("torch.bool", [4097], t + "/mask"),
        "half": Leaf("torch.float16", [17, 3], t + "/half"),
        "bf": Leaf("torch.bfloat16", [5, 7], t + "/bf"),
        "none": Leaf("torch.float32", [0], t + "/none"),
        "i32": Leaf("torch.int32", [1, 1], t + "/i32"),
        "f64": Leaf("torch.float64", [4096], t + "/f64"),
        "layer-0": {
            "k": Leaf("torch.bfloat16", [2, 64, 8], t + "/layer-0/k"),
            "v": Leaf("torch.uint8", [4095], t + "/layer-0/v"),
            "deeper": {"x": Leaf("torch.int8", [3], t + "/layer-0/deeper/x")},
        },
    }


def leaf_meta(leaf):
    return {"device": "cpu", "shape": leaf.shape, "dtype": leaf.dtype,
            "is_nested": False}


def td_meta(td):
    meta = {}
    for k, v in td.items():
        meta[k] = {"type": "TensorDict"} if isinstance(v, dict) else leaf_meta(v)
    meta.update({"shape": [], "device": "cpu", "_type": TD_TYPE})
    return meta


def from_tensor(path, leaf):
    """MemoryMappedTensor.from_tensor(leaf, filename=path); returns the
    mapping, which the TensorDict keeps until it is dropped."""
    numel = math.prod(leaf.shape)
    if numel:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        os.close(fd)
    if torch is not None:
        dt = getattr(torch, leaf.dtype.split(".")[1])
        m = torch.from_file(path, shared=True, size=numel, dtype=dt)
        if numel:
            m.copy_(torch.frombuffer(bytearray(leaf.data), dtype=dt))
        return m.view(leaf.shape)
    if not numel:
        return None
    m = np.memmap(path, dtype=DTYPES[leaf.dtype][1], mode="w+", shape=tuple(leaf.shape))
    m.reshape(-1)[:] = np.frombuffer(leaf.data, dtype=DTYPES[leaf.dtype][1])
    m.flush()
    return m


def memmap(td, prefix, keep):
    """TensorDict.memmap(prefix): sub-TensorDicts and leaves in key
    order, then meta.json."""
    os.makedirs(prefix, exist_ok=True)
    for k, v in td.items():
        if isinstance(v, dict):
            memmap(v, os.path.join(prefix, k), keep)
        else:
            keep.append(from_tensor(os.path.join(prefix, k + ".memmap"), v))
    with open(os.path.join(prefix, "meta.json"), "wb") as f:
        f.write(json.dumps(td_meta(td), separators=(",", ":")).encode())


def from_filename(path, dtype, shape):
    """MemoryMappedTensor.from_filename: the tensor's bytes, mapped."""
    numel = math.prod(shape)
    writable = os.access(path, os.W_OK)
    if torch is not None:
        dt = getattr(torch, dtype.split(".")[1])
        t = torch.from_file(path, shared=writable, size=numel, dtype=dt).view(shape)
        return t.view(torch.uint8).numpy().tobytes() if numel else b""
    m = np.memmap(path, dtype=DTYPES[dtype][1], mode="r+" if writable else "r",
                  shape=tuple(shape))
    return m.tobytes()


def load(prefix, missing, where=""):
    """TensorDict.load_memmap(prefix) by its rules: {key: bytes or dict}.
    Tensors it would leave out because their file is missing (TensorDict
    skips a missing non-empty file) are named in `missing`."""
    with open(os.path.join(prefix, "meta.json"), "rb") as f:
        meta = json.loads(f.read())
    out, subs = {}, []
    for key, value in meta.items():
        if not isinstance(value, dict):
            continue
        if value.get("type") is not None:
            subs.append(key)
            continue
        dtype, shape = value.get("dtype"), value.get("shape")
        if dtype is None or shape is None:
            continue
        path = os.path.join(prefix, key + ".memmap")
        if not os.path.exists(path):
            if math.prod(shape):
                missing.append(where + key)
            else:
                out[key] = b""
            continue
        out[key] = from_filename(path, dtype, shape)
    for key in subs:
        if os.path.isdir(os.path.join(prefix, key)):
            out[key] = load(os.path.join(prefix, key), missing, where + key + "/")
        else:
            missing.append(where + key + "/")
    return out


def expected_load(td):
    return {k: expected_load(v) if isinstance(v, dict) else v.data
            for k, v in td.items()}


def check_meta(fail, where, got, want, mount):
    """got: a meta.json as read; want: what was written to it."""
    keys = set(want) | ({"__tcache__"} if mount else set())
    fail.expect(set(got) == keys, "%s: keys %s, want %s"
                % (where, sorted(got), sorted(keys)))
    for k, v in want.items():
        fail.expect(got.get(k) == v, "%s: %r is %r, was written %r"
                    % (where, k, got.get(k), v))
    if not mount:
        return
    gen = got.get("__tcache__")
    tensors = gen.get("tensors") if isinstance(gen, dict) else None
    if not fail.expect(isinstance(tensors, dict),
                       "%s: no __tcache__.tensors: %r" % (where, gen)):
        return
    for k, v in want.items():
        if isinstance(v, dict) and "type" not in v and "dtype" in v and "shape" in v:
            if not math.prod(v["shape"]):
                continue        # no file, so no tensor
            t = tensors.get(k + ".memmap", {})
            fail.expect(t.get("dtype") == DTYPES[v["dtype"]][0] and t.get("shape") == v["shape"],
                        "%s: __tcache__ says %s.memmap is %s %s, declared %s %s"
                        % (where, k, t.get("dtype"), t.get("shape"), v["dtype"], v["shape"]))


def entry_name(i):
    return hashlib.sha256(str(("prompt", i)).encode()).hexdigest()[:32]


NAMES = [entry_name(i) for i in range(MAX_ITEMS)]
INDEX = {n: i for i, n in enumerate(NAMES)}


class TensorCache:
    def __init__(self, prefix):
        self.prefix = prefix
        os.makedirs(prefix, exist_ok=True)

    def put(self, i):
        keep = []
        memmap(entry_td(NAMES[i]), os.path.join(self.prefix, NAMES[i]), keep)
        del keep            # the TensorDict goes: its mappings are unmapped

    def get(self, i):
        p = os.path.join(self.prefix, NAMES[i])
        if not os.path.isdir(p):
            return None
        missing = []
        got = load(p, missing)
        assert not missing, "entry %d: %s missing" % (i, missing)
        return got


def fill(cache, items, hot, refresh):
    last = items[-1]
    for i in items:
        cache.put(i)
        if hot and clientlib.refresh_due(i, last, refresh):
            for h in range(hot):
                assert cache.get(h) == expected_load(entry_td(NAMES[h])), \
                    "hot entry %d loads other tensors" % h


def walk_files(d):
    """{relative path: size} of every file under d but meta.json, and the
    relative directories."""
    files, dirs = {}, []
    for dirpath, dnames, names in os.walk(d):
        rel = os.path.relpath(dirpath, d)
        dirs.append(rel)
        for n in names:
            if n != "meta.json":
                files[os.path.normpath(os.path.join(rel, n))] = \
                    os.path.getsize(os.path.join(dirpath, n))
    return files, dirs


def check_entry(a, fail, i):
    name = NAMES[i]
    d = os.path.join(a.dir, name)
    td = entry_td(name)
    files, dirs = walk_files(d)
    want_files = {"emb.memmap", "ids.memmap", "mask.memmap",
                  "nested/kv.memmap", "nested/pos.memmap"}
    fail.expect(set(files) == want_files, "%s: files %s" % (name, sorted(files)))
    for rel, meta in ((".", td_meta(td)), ("nested", td_meta(td["nested"]))):
        try:
            with open(os.path.join(d, rel, "meta.json"), "rb") as f:
                got = json.loads(f.read())
        except (OSError, ValueError) as e:
            fail("%s/%s/meta.json: %s" % (name, rel, e))
            continue
        check_meta(fail, "%s/%s/meta.json" % (name, rel), got, meta, a.mount)
    missing = []
    try:
        got = load(d, missing)
    except (OSError, ValueError, RuntimeError) as e:
        fail("%s: does not load: %s" % (name, e))
        return sum(files.values())
    fail.expect(not missing, "%s: tensors missing: %s" % (name, missing))
    fail.expect(got == expected_load(td), "%s: loads other tensors" % name)
    return sum(files.values())


def check(a):
    fail = clientlib.Failures("tensordict_cache (%s)"
                              % ("torch.from_file" if torch else "numpy.memmap"))
    n = a.fill_items + (a.nmore if a.more else 0)
    present = set()
    for name in os.listdir(a.dir):
        if fail.expect(name in INDEX and os.path.isdir(os.path.join(a.dir, name)),
                       "%s: not an entry of the client" % name):
            present.add(INDEX[name])
    used = 0
    for i in sorted(present, key=lambda i: (i < a.hot, i)):
        used += check_entry(a, fail, i)
    if a.capacity:
        clientlib.lru_expectations(fail, present, n, a.hot, TAIL)
        clientlib.within_capacity(fail, used, a.capacity)
    else:
        clientlib.all_expected(fail, present, n)
    fail.report("%d entries present, %d bytes" % (len(present), used))


def compare(src, dst, mount):
    """dst is a copy of the tree src (see the module's doc)."""
    fail = clientlib.Failures("compare %s %s" % (src, dst))
    sfiles, sdirs = walk_files(src)
    dfiles, ddirs = walk_files(dst)
    fail.expect(sorted(sdirs) == sorted(ddirs), "directories %s, want %s"
                % (sorted(ddirs), sorted(sdirs)))
    fail.expect(sorted(sfiles) == sorted(dfiles), "files %s, want %s"
                % (sorted(dfiles), sorted(sfiles)))
    for rel in sfiles:
        if rel in dfiles:
            fail.expect(clientlib.read_all(os.path.join(src, rel)) ==
                        clientlib.read_all(os.path.join(dst, rel)),
                        "%s: other bytes" % rel)
    for rel in sdirs:
        with open(os.path.join(src, rel, "meta.json"), "rb") as f:
            want = json.loads(f.read())
        try:
            with open(os.path.join(dst, rel, "meta.json"), "rb") as f:
                got = json.loads(f.read())
        except (OSError, ValueError) as e:
            fail("%s/meta.json: %s" % (rel, e))
            continue
        check_meta(fail, os.path.join(rel, "meta.json"), got, want, mount)
    smissing, dmissing = [], []
    want = load(src, smissing)
    try:
        got = load(dst, dmissing)
    except (OSError, ValueError, RuntimeError) as e:
        fail("the copy does not load: %s" % e)
        got = None
    fail.expect(not smissing and not dmissing, "tensors missing: %s %s"
                % (smissing, dmissing))
    fail.expect(got == want, "the copy loads other tensors")

    def count(t):
        return sum(count(v) if isinstance(v, dict) else 1 for v in t.values())
    fail.expect(count(want) >= 3, "the source loads %d tensors" % count(want))
    fail.report("%d files, %d meta.json, %d tensors loaded alike (%s)"
                % (len(sfiles), len(sdirs), count(want),
                   "torch.from_file" if torch else "numpy.memmap"))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "tree":
        keep = []
        memmap(tree_td(), sys.argv[2], keep)
        return
    if len(sys.argv) >= 2 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3], "--mount" in sys.argv[4:])
        return
    a = clientlib.parse_args(__doc__, ITEMS, HOT, REFRESH, MORE)
    cache = TensorCache(a.dir)
    if a.phase == "fill":
        fill(cache, list(range(a.items)), a.hot, a.refresh)
    elif a.phase == "more":
        fill(cache, list(range(a.fill_items, a.fill_items + a.nmore)), 0, 1)
    elif a.phase == "check":
        check(a)
    else:
        sys.exit("tensordict_cache: no clear phase")


if __name__ == "__main__":
    main()
