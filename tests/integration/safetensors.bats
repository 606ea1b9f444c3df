#!/usr/bin/env bats
# safetensors.bats - .safetensors files stored byte-identical and listed in
# meta.json when their header passes the format's rules, raw when it does
# not; each entry's unlisted, read-only .safetensors view of its tensors.
#
# No safetensors library is used: stlib.py below writes and reads the
# format from its rules (8-byte LE header length N <= 100,000,000, N bytes
# of UTF-8 JSON, data_offsets tiling the data, the file ending at the last
# end), and the views are checked byte for byte with it.

load helpers

setup() {
	tcfs_setup
	cat >"$TDIR/stlib.py" <<'EOF'
"""The safetensors format, from its rules (no safetensors library)."""
import json, struct

BITS = {"BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8,
        "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8,
        "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
        "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64,
        "U64": 64}
# ours (meta.json, numpy) for the format's names
OURS = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16",
        "U16": "uint16", "I32": "int32", "U32": "uint32", "I64": "int64",
        "U64": "uint64", "F16": "float16", "BF16": "bfloat16",
        "F32": "float32", "F64": "float64", "F8_E4M3": "float8_e4m3fn",
        "F8_E5M2": "float8_e5m2"}
NUMPY = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16",
         "uint16": "U16", "int32": "I32", "uint32": "U32", "int64": "I64",
         "uint64": "U64", "float16": "F16", "float32": "F32",
         "float64": "F64"}


def header(tensors, metadata=None):
    """The JSON of (name, dtype, shape, bytes) laid out in that order."""
    h, off = {}, 0
    if metadata is not None:
        h["__metadata__"] = metadata
    for name, dt, shape, raw in tensors:
        h[name] = {"dtype": dt, "shape": list(shape),
                   "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    return h


def pack(h, data, pad=b" "):
    text = h if isinstance(h, bytes) else json.dumps(h).encode()
    text += pad * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write(path, tensors, metadata=None):
    blob = pack(header(tensors, metadata), b"".join(t[3] for t in tensors))
    with open(path, "wb") as f:
        f.write(blob)
    return blob


def _uint(v):
    if type(v) is not int or v < 0 or v >= 2**64:
        raise ValueError("not an unsigned integer: %r" % (v,))
    return v


def read(blob):
    """(N, metadata, {name: (dtype, shape, bytes, begin)}) or ValueError."""
    if len(blob) < 8:
        raise ValueError("shorter than 8 bytes")
    n, = struct.unpack("<Q", blob[:8])
    if n > 100_000_000 or 8 + n > len(blob):
        raise ValueError("header length")

    def no_dups(pairs):
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("a key twice")
        return dict(pairs)
    h = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=no_dups)
    if not isinstance(h, dict):
        raise ValueError("not an object")
    meta = h.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and all(
            isinstance(v, str) for v in meta.values())):
        raise ValueError("metadata")
    ts = []
    for name, t in h.items():
        if not isinstance(t, dict) or t.get("dtype") not in BITS:
            raise ValueError("dtype of %r" % name)
        shape = [_uint(d) for d in t["shape"]]
        b, e = t["data_offsets"]
        ts.append((_uint(b), _uint(e), name, t["dtype"], shape))
    out, pos = {}, 0
    for b, e, name, dt, shape in sorted(ts):
        numel = 1
        for d in shape:
            numel *= d
        nbits = numel * BITS[dt]
        if b != pos or e < b or nbits % 8 or e - b != nbits // 8:
            raise ValueError("offsets of %r" % name)
        pos = e
        out[name] = (dt, shape, blob[8 + n + b:8 + n + e], b)
    if 8 + n + pos != len(blob):
        raise ValueError("file length")
    return n, meta, out
EOF
	export PYTHONPATH=$TDIR
}

@test "an entry's view holds every tensor byte for byte, and loads by the format's rules" {
	mkdir -p "$MNT/e/g/n"
	"$PY" - "$MNT/e" <<'EOF'
import numpy as np, os, sys
e = sys.argv[1]
rng = np.random.default_rng(14)
np.save(e + "/x.npy", rng.standard_normal((2, 3)).astype(np.float32))
np.save(e + "/i.npy", np.arange(5, dtype=np.int64))
np.save(e + "/b.npy", np.array([1, 0, 1, 1, 0, 0, 1], dtype=bool))
np.save(e + "/h.npy", rng.standard_normal((4, 4)).astype(np.float16))
np.save(e + "/s.npy", np.float64(2.5))
np.save(e + "/g/k.npy", np.arange(6, dtype=np.int32).reshape(3, 2))
open(e + "/raw.bin", "wb").write(os.urandom(1000))
open(e + "/big.bin", "wb").write(os.urandom(3 * 2**20 + 5))
open(e + "/g/n/deep.bin", "wb").write(os.urandom(3))
open(e + "/kv.bin", "wb").write(os.urandom(8192))
EOF
	cat >"$MNT/e/meta.json" <<'EOF'
{"__tcache__": {"tensors": {"kv.bin": {"dtype": "bfloat16", "shape": [32, 128]}},
 "attrs": {"model": "demo", "step": 12, "cfg": {"a": [1, 2]}}}}
EOF
	"$PY" - "$MNT/e" <<'EOF'
import numpy as np, os, sys, stlib
e = sys.argv[1]
v = e + "/.safetensors"
blob = open(v, "rb").read()
assert os.stat(v).st_size == len(blob), (os.stat(v).st_size, len(blob))
n, meta, ts = stlib.read(blob)
assert n % 8 == 0 and blob[8 + n - 1:8 + n] in (b" ", b"}"), n
want = {}
for f in ("x.npy", "i.npy", "b.npy", "h.npy", "s.npy", "g/k.npy"):
    a = np.load(e + "/" + f)
    want[f] = (stlib.NUMPY[a.dtype.name], list(a.shape), a.tobytes())
for f in ("raw.bin", "big.bin", "g/n/deep.bin"):
    b = open(e + "/" + f, "rb").read()
    want[f] = ("U8", [len(b)], b)
want["kv.bin"] = ("BF16", [32, 128], open(e + "/kv.bin", "rb").read())
got = {k: t[:3] for k, t in ts.items()}
assert got.keys() == want.keys(), (sorted(got), sorted(want))
for k in want:
    assert got[k] == want[k], (k, got[k][:2], want[k][:2])
assert meta == {"model": "demo", "step": "12", "cfg": '{"a":[1,2]}'}, meta
# widest first: every tensor is aligned to its item size in the file
for k, (dt, shape, raw, begin) in ts.items():
    assert (8 + n + begin) % (stlib.BITS[dt] // 8) == 0, k
# not listed, but there by name; groups have none
assert ".safetensors" not in os.listdir(e)
assert not os.path.exists(e + "/g/.safetensors")
# mmap works (safetensors readers map the file); and reading in pieces
m = np.memmap(v, mode="r")
assert m.tobytes() == blob
with open(v, "rb", buffering=0) as f:
    assert b"".join(iter(lambda: f.read(12345), b"")) == blob
# a float32 tensor read straight from its offset with numpy
dt, shape, raw, begin = ts["x.npy"]
x = np.fromfile(v, dtype="<f4", count=6, offset=8 + n + begin).reshape(2, 3)
assert (x == np.load(e + "/x.npy")).all()
try:
    import torch
except ImportError:
    torch = None
if torch is not None and hasattr(torch, "from_file"):
    t = torch.from_file(v, shared=False, size=len(blob), dtype=torch.uint8)
    assert bytes(t.numpy()) == blob
EOF
	run grep -c safetensors <<<"$(ls -A "$MNT/e")"
	[ "$output" = 0 ]
}

@test "the view is read-only and cannot be moved, removed or replaced" {
	mkdir -p "$MNT/e/g"
	echo hi >"$MNT/e/t"
	v=$MNT/e/.safetensors
	[ -f "$v" ]
	[ "$(stat -c %a "$v")" = 444 ]
	expect_errno EACCES 'open(MNT + "/e/.safetensors", "wb")'
	expect_errno EACCES 'os.open(MNT + "/e/.safetensors", os.O_RDWR)'
	expect_errno EACCES 'os.open(MNT + "/e/.safetensors", os.O_WRONLY | os.O_CREAT)'
	expect_errno EEXIST 'os.open(MNT + "/e/.safetensors", os.O_WRONLY | os.O_CREAT | os.O_EXCL)'
	expect_errno EPERM 'os.truncate(MNT + "/e/.safetensors", 0)'
	expect_errno EPERM 'os.unlink(MNT + "/e/.safetensors")'
	expect_errno EPERM 'os.rename(MNT + "/e/.safetensors", MNT + "/e/x")'
	expect_errno EPERM 'os.rename(MNT + "/e/t", MNT + "/e/.safetensors")'
	expect_errno ENOTDIR 'os.rmdir(MNT + "/e/.safetensors")'
	expect_errno ENOTDIR 'os.listdir(MNT + "/e/.safetensors")'
	expect_errno EEXIST 'os.mkdir(MNT + "/e/.safetensors")'
	expect_errno EEXIST 'os.mkdir(MNT + "/e/g/.safetensors")'
	expect_errno EEXIST 'os.open(MNT + "/e/g/.safetensors", os.O_WRONLY | os.O_CREAT)'
	expect_errno EPERM 'os.chmod(MNT + "/e/.safetensors", 0o644)'
	chmod 444 "$v"
	touch -m -d @0 "$v"
	# the tensor is untouched, and still the view's
	[ "$(cat "$MNT/e/t")" = hi ]
	"$PY" -c 'import stlib, sys; n, m, t = stlib.read(open(sys.argv[1], "rb").read()); assert t["t"][2] == b"hi\n", t' "$v"
	# cp -r, tar and rsync of the entry see only the tensors
	cp -r "$MNT/e" "$SRC/copy"
	[ ! -e "$SRC/copy/.safetensors" ]
	[ ! -e "$SRC/copy/meta.json" ]
	[ -f "$SRC/copy/t" ]
}

@test "a stored .safetensors file is byte-identical and meta.json lists its tensors" {
	mkdir "$MNT/e"
	"$PY" - "$SRC/model.safetensors" <<'EOF'
import numpy as np, os, sys, stlib
rng = np.random.default_rng(1)
def arr(dt, shape, np_dtype):
    n = int(np.prod(shape)) * stlib.BITS[dt] // 8
    return (dt, shape, rng.integers(0, 256, n, dtype=np.uint8).tobytes())
ts = [("emb.weight",) + arr("F32", [4, 3], "f4"),
      ("layers.0.h",) + arr("F16", [2, 8], "f2"),
      ("layers.0.b",) + arr("BF16", [5], None),
      ("pos",) + arr("I64", [3], "i8"),
      ("mask",) + arr("BOOL", [7], "?"),
      ("q.fp8",) + arr("F8_E4M3", [2, 2], None),
      ("k.fp8",) + arr("F8_E5M2", [3], None),
      ("scale",) + arr("F64", [], "f8"),
      ("ids",) + arr("U8", [0], "u1"),
      ("i32",) + arr("I32", [2], "i4"),
      ("u16",) + arr("U16", [2], "u2"),
      ("mx",) + arr("F8_E8M0", [2], None),
      ("caf\u00e9 \"q\"",) + arr("I8", [1], "i1")]
stlib.write(sys.argv[1], ts, {"format": "pt", "note": "x"})
EOF
	cp "$SRC/model.safetensors" "$MNT/e/"
	cmp "$SRC/model.safetensors" "$MNT/e/model.safetensors"
	"$PY" - "$MNT/e" <<'EOF'
import json, sys, stlib
e = sys.argv[1]
blob = open(e + "/model.safetensors", "rb").read()
n, meta, ts = stlib.read(blob)
m = json.load(open(e + "/meta.json"))["__tcache__"]
t = m["tensors"]["model.safetensors"]
assert t["dtype"] == "uint8" and t["nbytes"] == len(blob), t
lst = t["safetensors"]
assert set(lst) == set(ts), (sorted(lst), sorted(ts))
for name, (dt, shape, raw, begin) in ts.items():
    want = {"dtype": stlib.OURS.get(dt, dt), "shape": shape,
            "offset": 8 + n + begin}
    assert lst[name] == want, (name, lst[name], want)
    off = lst[name]["offset"]
    assert blob[off:off + len(raw)] == raw
# listed in file order
assert [k for k in lst] == [k for k, _ in sorted(ts.items(), key=lambda kv: kv[1][3])]
# the view holds the file's tensors as FILE/NAME
vn, vmeta, vts = stlib.read(open(e + "/.safetensors", "rb").read())
assert set(vts) == {"model.safetensors/" + k for k in ts}, sorted(vts)
for k, (dt, shape, raw, begin) in ts.items():
    assert vts["model.safetensors/" + k][:3] == (dt, shape, raw), k
# meta.json written back unchanged is accepted
doc = open(e + "/meta.json").read()
with open(e + "/meta.json", "w") as f:
    f.write(doc)
EOF
	tcfs_remount
	cmp "$SRC/model.safetensors" "$MNT/e/model.safetensors"
	grep -q '"emb.weight"' "$MNT/e/meta.json"
	# a changed listing is refused: it is read-only
	"$PY" - "$MNT/e/meta.json" <<'EOF'
import errno, json, sys
m = json.load(open(sys.argv[1]))
m["__tcache__"]["tensors"]["model.safetensors"]["safetensors"]["pos"]["offset"] += 8
try:
    with open(sys.argv[1], "w") as f:
        json.dump(m, f)
except OSError as e:
    assert e.errno == errno.EINVAL, e
else:
    raise SystemExit("a changed listing was accepted")
EOF
}

@test "a .safetensors file whose header breaks a rule stays a raw tensor" {
	mkdir "$MNT/e"
	"$PY" - "$SRC" <<'EOF'
import json, os, struct, sys, stlib
src = sys.argv[1]
good = [("a", "F32", [2], b"\0" * 8), ("b", "U8", [3], b"abc")]
h = stlib.header(good)
data = b"\0" * 8 + b"abc"
def with_(**kw):
    d = json.loads(json.dumps(h))
    for k, v in kw.items():
        d["a"][k] = v
    return d
cases = {
    "short": b"\x05\0\0\0",
    "n_over_limit": struct.pack("<Q", 100_000_001) + b"{}",
    "n_past_file": struct.pack("<Q", 64) + b"{}      ",
    "not_utf8": stlib.pack(b'{"\xff":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"x"),
    "not_json": stlib.pack(b"{'a': 1}", b""),
    "not_object": stlib.pack(b"[1, 2]", b""),
    "trailing": stlib.pack(b"{} x", b""),
    "nul_padding": stlib.pack(b"{}", b"", pad=b"\0"),
    "no_dtype": stlib.pack({"a": {"shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
    "no_shape": stlib.pack({"a": {"dtype": "F32", "data_offsets": [0, 8]}}, b"\0" * 8),
    "no_offsets": stlib.pack({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),
    "unknown_dtype": stlib.pack(with_(dtype="F31"), data),
    "our_dtype_name": stlib.pack(with_(dtype="float32"), data),
    "float_dim": stlib.pack(with_(shape=[2.0]), data),
    "negative_dim": stlib.pack(with_(shape=[-2]), data),
    "one_offset": stlib.pack(with_(data_offsets=[0]), data),
    "not_from_zero": stlib.pack({"a": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}}, b"\0" * 9),
    "hole": stlib.pack(stlib.header(good) | {"b": {"dtype": "U8", "shape": [3], "data_offsets": [9, 12]}}, data + b"\0"),
    "overlap": stlib.pack(stlib.header(good) | {"b": {"dtype": "U8", "shape": [3], "data_offsets": [7, 10]}}, data[:10]),
    "size_mismatch": stlib.pack(with_(shape=[3]), data),
    "sub_byte": stlib.pack({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0\0"),
    "longer_file": stlib.pack(h, data + b"!"),
    "shorter_file": stlib.pack(h, data[:-1]),
    "name_twice": stlib.pack(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                             b'"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"xy"),
    "metadata_not_strings": stlib.pack(stlib.header(good, {"n": 1}), data),
}
for name, blob in cases.items():
    try:
        stlib.read(blob)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    else:
        raise SystemExit("the test's own reader accepts %s" % name)
    open("%s/bad_%s.safetensors" % (src, name), "wb").write(blob)
stlib.write(src + "/good.safetensors", good)
EOF
	cp "$SRC"/*.safetensors "$MNT/e/"
	for f in "$SRC"/*.safetensors; do
		cmp "$f" "$MNT/e/${f##*/}"
	done
	"$PY" - "$MNT/e" "$SRC" <<'EOF'
import glob, json, os, sys, stlib
e, src = sys.argv[1:]
m = json.load(open(e + "/meta.json"))["__tcache__"]["tensors"]
n, meta, view = stlib.read(open(e + "/.safetensors", "rb").read())
bad = sorted(os.path.basename(p) for p in glob.glob(src + "/bad_*"))
assert len(bad) == 25, bad
for f in bad:
    t = m[f]
    size = os.path.getsize(src + "/" + f)
    assert "safetensors" not in t, f
    assert t["dtype"] == "uint8" and t["shape"] == [size], (f, t)
    assert view[f][:3] == ("U8", [size], open(src + "/" + f, "rb").read()), f
assert set(m["good.safetensors"]["safetensors"]) == {"a", "b"}
assert "good.safetensors/a" in view and "good.safetensors" not in view
EOF
}

@test "an open view keeps serving what it opened, and keeps its entry from eviction" {
	tcfs_remount -o capacity=4M
	mkdir "$MNT/a" "$MNT/b"
	head -c 100000 /dev/urandom >"$MNT/a/t"
	head -c 1000 /dev/urandom >"$MNT/a/u"
	head -c $((2 * 1024 * 1024)) /dev/urandom >"$MNT/a/big"
	MNT=$MNT "$PY" - <<'EOF'
import errno, os, stlib, time
MNT = os.environ["MNT"]
v = MNT + "/a/.safetensors"
before = open(v, "rb").read()
with open(v, "rb", buffering=0) as f:
    head = f.read(50000)
    # rewrite, remove, add: the open view does not change
    with open(MNT + "/a/t", "wb") as g:
        g.write(os.urandom(100000))
    os.unlink(MNT + "/a/u")
    with open(MNT + "/a/new", "wb") as g:
        g.write(b"new")
    rest = f.read()
    assert head + rest == before
    # its entry cannot be evicted: 2.5 MiB more does not fit beside it
    try:
        with open(MNT + "/b/t", "wb") as g:
            g.write(os.urandom(2560 * 1024))
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    else:
        raise SystemExit("the entry of an open view was evicted")
    assert os.path.exists(MNT + "/a/big")
# a new open sees the entry as it is now
n, meta, ts = stlib.read(open(v, "rb").read())
assert set(ts) == {"t", "big", "new"}, sorted(ts)
assert ts["t"][2] == open(MNT + "/a/t", "rb").read()
# closed (the kernel sends the release after close returns): the entry
# may go now
for i in range(500):
    try:
        with open(MNT + "/b/t", "wb") as g:
            g.write(os.urandom(2560 * 1024))
        break
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
        time.sleep(0.02)
else:
    raise SystemExit("the entry stayed after its view was closed")
assert not os.path.exists(MNT + "/a")
EOF
}

@test "a view reads the same after a remount" {
	mkdir -p "$MNT/e/g"
	head -c 5000 /dev/urandom >"$MNT/e/g/t"
	"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.arange(10, dtype=np.float32))' "$MNT/e/x.npy"
	cp "$MNT/e/.safetensors" "$SRC/before"
	tcfs_remount
	cmp "$SRC/before" "$MNT/e/.safetensors"
	[ "$(stat -c %s "$MNT/e/.safetensors")" -eq "$(stat -c %s "$SRC/before")" ]
}

@test "a view of many small tensors reads whole (a read of many pieces is copied)" {
	mkdir -p "$MNT/e/g"
	"$PY" - "$MNT/e" <<'EOF2'
import numpy as np, os, sys, stlib
e = sys.argv[1]
want = {}
for i in range(300):
    name = ("g/t%03d" if i % 2 else "t%03d") % i
    b = os.urandom(i % 7 + 1)
    open(e + "/" + name, "wb").write(b)
    want[name] = ("U8", [len(b)], b)
np.save(e + "/f.npy", np.arange(1000, dtype=np.float32))
want["f.npy"] = ("F32", [1000], np.arange(1000, dtype=np.float32).tobytes())
blob = open(e + "/.safetensors", "rb").read()
n, meta, ts = stlib.read(blob)
assert {k: t[:3] for k, t in ts.items()} == want
with open(e + "/.safetensors", "rb", buffering=0) as f:
    assert b"".join(iter(lambda: f.read(1 << 20), b"")) == blob
EOF2
}
