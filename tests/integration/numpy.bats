#!/usr/bin/env bats
# numpy.bats - numpy (Debian's, /usr/bin/python3) reads what the cache
# stores: np.fromfile, np.memmap, np.load(mmap_mode="r"); meta.json
# describes .npy files by their header.

load helpers

setup() {
	tcfs_setup
	"$PY" -c 'import numpy'   # tools/test installs python3-numpy
	"$PY" - "$SRC" <<'EOF'
import numpy as np, sys
src = sys.argv[1]
rng = np.random.default_rng(7)
a = rng.standard_normal((300, 257)).astype(np.float32)     # ~300 KiB
np.save(src + "/weights.npy", a)
b = rng.integers(0, 2**31, size=(5, 7, 11), dtype=np.int64)
np.save(src + "/ids.npy", b)
c = rng.standard_normal(1024 * 1024 // 8 + 5)               # raw, float64
c.tofile(src + "/raw.f64")
EOF
}

@test "np.fromfile, np.memmap and np.load(mmap_mode=r) equal the source" {
	mkdir "$MNT/model"
	cp "$SRC/weights.npy" "$SRC/ids.npy" "$SRC/raw.f64" "$MNT/model/"
	"$PY" - "$SRC" "$MNT/model" <<'EOF'
import numpy as np, sys
src, mnt = sys.argv[1], sys.argv[2]
raw = np.fromfile(src + "/raw.f64", dtype=np.float64)
assert np.array_equal(np.fromfile(mnt + "/raw.f64", dtype=np.float64), raw)
mm = np.memmap(mnt + "/raw.f64", dtype=np.float64, mode="r")
assert mm.shape == raw.shape and np.array_equal(mm, raw)
del mm
for name in ("weights.npy", "ids.npy"):
    want = np.load(src + "/" + name)
    got = np.load(mnt + "/" + name, mmap_mode="r")
    assert got.dtype == want.dtype and got.shape == want.shape, name
    assert np.array_equal(got, want), name
    assert np.array_equal(np.load(mnt + "/" + name), want), name
    del got
print("ok")
EOF
}

@test "meta.json shows the .npy dtype and shape, raw tensors as uint8" {
	mkdir "$MNT/model"
	cp "$SRC/weights.npy" "$SRC/ids.npy" "$SRC/raw.f64" "$MNT/model/"
	"$PY" - "$MNT/model/meta.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["__tcache__"]
t = m["tensors"]
assert t["weights.npy"]["dtype"] == "float32", t["weights.npy"]
assert t["weights.npy"]["shape"] == [300, 257], t["weights.npy"]
assert t["ids.npy"]["dtype"] == "int64", t["ids.npy"]
assert t["ids.npy"]["shape"] == [5, 7, 11], t["ids.npy"]
n = t["raw.f64"]["nbytes"]
assert t["raw.f64"]["dtype"] == "uint8" and t["raw.f64"]["shape"] == [n]
EOF
}

@test "numpy writes into the mount: tofile, np.save, memmap w+" {
	mkdir "$MNT/out"
	"$PY" - "$MNT/out" <<'EOF'
import numpy as np, sys
d = sys.argv[1]
a = np.arange(100000, dtype=np.int32)
a.tofile(d + "/a.i32")
np.save(d + "/a.npy", a.reshape(100, 1000))
m = np.memmap(d + "/m.f32", dtype=np.float32, mode="w+", shape=(512, 512))
m[:] = 1.5
m[7, 9] = -3
m.flush()
del m
assert np.array_equal(np.fromfile(d + "/a.i32", dtype=np.int32), a)
b = np.load(d + "/a.npy", mmap_mode="r")
assert b.shape == (100, 1000) and np.array_equal(b.ravel(), a)
del b
m = np.fromfile(d + "/m.f32", dtype=np.float32).reshape(512, 512)
assert m[7, 9] == -3 and m[0, 0] == 1.5 and (m == 1.5).sum() == 512 * 512 - 1
EOF
	tcfs_remount
	"$PY" -c '
import numpy as np, sys
m = np.fromfile(sys.argv[1], dtype=np.float32).reshape(512, 512)
assert m[7, 9] == -3 and m[511, 511] == 1.5
b = np.load(sys.argv[2], mmap_mode="r")
assert b.shape == (100, 1000) and b[99, 999] == 99999' \
		"$MNT/out/m.f32" "$MNT/out/a.npy"
}

@test "a rewritten tensor reads new bytes through numpy (no stale cache)" {
	mkdir "$MNT/e"
	"$PY" - "$MNT/e/x.npy" <<'EOF'
import numpy as np, sys
p = sys.argv[1]
for i in range(3):
    np.save(p, np.full((64, 1024), i, dtype=np.int16))
    for _ in range(2):
        got = np.load(p, mmap_mode="r")
        assert (got == i).all(), i
        del got
EOF
}

# A writer's release comes after close(2) returns (asynchronously, and
# late when another process shares the file).  Readers that opened in
# between must still map the tensor: the release has nothing to commit and
# must not undo what their opens recorded (it made the next open bypass the
# page cache, and np.memmap fail with ENODEV).
@test "a writer's late release leaves the tensor mappable" {
	mkdir "$MNT/e"
	"$PY" - "$MNT/e/x.npy" <<'EOF'
import numpy as np, os, sys
p = sys.argv[1]
for i in range(3):
    a = np.full((64, 1024), i, dtype=np.int16)
    r, w = os.pipe()
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    pid = os.fork()
    if pid == 0:          # shares the writer's file until the pipe closes
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    with os.fdopen(fd, "wb") as f:   # close(): FLUSH commits; no RELEASE
        np.save(f, a)
    held = open(p, "rb")             # a reader of the new version
    os.close(w)
    os.waitpid(pid, 0)               # the child's exit: the writer's RELEASE
    st = os.stat(p)                  # a round trip after that RELEASE
    for _ in range(2):
        got = np.load(p, mmap_mode="r")
        assert (got == i).all(), i
        del got
    mm = np.memmap(p, dtype=np.uint8, mode="r")
    assert mm.size == st.st_size
    del mm
    held.close()
print("ok")
EOF
}

# One page cache per file, and each reader keeps the version it opened: a
# tensor rewritten in place while an old version is still mapped is read
# without the page cache, and the kernel cannot map such a file (ENODEV;
# README, "Durability").  Replaced by rename, the new version is a file of
# its own: both map, each with its own bytes.
@test "a tensor replaced by rename maps while its old version is still mapped" {
	mkdir "$MNT/e"
	"$PY" - "$MNT/e/x.npy" <<'EOF'
import errno, numpy as np, os, sys
p = sys.argv[1]
np.save(p, np.zeros(100000, dtype=np.float32))
old = np.load(p, mmap_mode="r")
np.save(p, np.ones(100000, dtype=np.float32))        # in place
try:
    np.load(p, mmap_mode="r")
    sys.exit("a shared mapping of another version than the mapped one")
except OSError as e:
    assert e.errno == errno.ENODEV, e
assert (np.load(p) == 1).all()                       # reads work
np.save(p + ".tmp.npy", np.full(100000, 2, dtype=np.float32))
os.rename(p + ".tmp.npy", p)                         # by rename
new = np.load(p, mmap_mode="r")
assert (new == 2).all() and (old == 0).all()
print("ok")
EOF
}
