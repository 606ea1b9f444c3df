#!/usr/bin/env bats
# direct.bats - a reader maps a tensor's pool pages itself (TC_IOC_MAP,
# tc_map_fd, tcache.load): the same bytes as reads through the mount, a
# mapping that stays valid while its fd is open whatever happens to the
# tensor, and a fallback for callers that may not read the pool.

load helpers

: "${DIRECT_CHECK:?DIRECT_CHECK must name the direct_check program}"
TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
export PYTHONPATH=$TOP/tools/python

# Two files grown in turn, 64 KiB at a time: their extents interleave.
interleaved() {
	"$PY" - "$MNT/p" "$MNT/q" <<'EOF'
import os, sys
fp, fq = (os.open(p, os.O_WRONLY | os.O_CREAT, 0o644) for p in sys.argv[1:3])
for i in range(64):
    os.write(fp, bytes([i]) * 65536)
    os.write(fq, bytes([255 - i]) * 65536)
os.close(fp)
os.close(fq)
EOF
}

@test "mapped bytes equal the bytes read through the mount, one extent or many" {
	mkdir "$MNT/e"
	"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.arange(300000, dtype=np.float32))' "$MNT/e/x.npy"
	head -c 8192 /dev/urandom >"$MNT/e/kv.bin"
	echo '{"__tcache__": {"tensors": {"kv.bin": {"dtype": "float16", "shape": [32, 128]}}}}' >"$MNT/e/meta.json"
	: >"$MNT/e/empty"
	interleaved
	run "$DIRECT_CHECK" "$MNT/e/x.npy"
	[ "$output" = "direct 1200128" ]
	run "$DIRECT_CHECK" "$MNT/p"
	[ "$output" = "direct 4194304" ]
	run "$DIRECT_CHECK" "$MNT/e/empty"
	[ "$output" = "direct 0" ]
	"$PY" - "$MNT" <<'EOF'
import os, sys
import numpy as np
import tcache
m = sys.argv[1]
a = tcache.load(m + "/e/x.npy")
assert a.direct and a.dtype == np.float32 and a.shape == (300000,), (a.direct, a.dtype, a.shape)
assert (a == np.arange(300000, dtype=np.float32)).all()
assert not a.flags.writeable
k = tcache.load(m + "/e/kv.bin")
assert k.direct and k.dtype == np.float16 and k.shape == (32, 128)
assert k.tobytes() == open(m + "/e/kv.bin", "rb").read()
fd = os.open(m + "/p", os.O_RDONLY)
size, _, pool, ext = tcache.direct.extents(fd)
os.close(fd)
assert len(ext) > 1 and size == 4 << 20, ext     # many extents, one mapping
p = tcache.load(m + "/p")
assert p.direct and p.tobytes() == open(m + "/p", "rb").read()
assert p[1:10].direct                            # views say it too
e = tcache.load(m + "/e/empty")
assert e.direct and e.size == 0
EOF
	# tensors of at most 2 KiB share pool blocks: their one extent
	# starts inside a page, next to other tensors' bytes
	mkdir "$MNT/s"
	for n in 1 63 64 100 1000 2048; do
		head -c $n /dev/urandom >"$MNT/s/t$n"
	done
	"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.arange(100, dtype=np.int64))' "$MNT/s/small.npy"
	run "$DIRECT_CHECK" "$MNT/s/t100"
	[ "$output" = "direct 100" ]
	"$PY" - "$MNT" <<'EOF'
import os, sys
import numpy as np
import tcache
m = sys.argv[1] + "/s/"
blocks = set()
for n in (1, 63, 64, 100, 1000, 2048):
    fd = os.open(m + "t%d" % n, os.O_RDONLY)
    size, _, pool, ext = tcache.direct.extents(fd)
    os.close(fd)
    assert size == n and len(ext) == 1, (n, ext)
    blocks.add(ext[0][0] // 4096)
    t = tcache.load(m + "t%d" % n)
    assert t.direct and t.tobytes() == open(m + "t%d" % n, "rb").read(), n
assert len(blocks) < 6, blocks                   # blocks are shared
s = tcache.load(m + "small.npy")
assert s.direct and (s == np.arange(100)).all()
EOF
}

@test "a mapping stays valid while its tensor is replaced, removed and space reused" {
	tcfs_remount -o capacity=24M
	head -c 8388608 /dev/urandom >"$SRC/old"
	cp "$SRC/old" "$MNT/t"
	"$PY" - "$MNT" "$SRC/old" <<'EOF'
import hashlib, os, sys
import tcache
m, old = sys.argv[1], open(sys.argv[2], "rb").read()
a = tcache.load(m + "/t", dtype="uint8")
assert a.direct and a.tobytes() == old
with open(m + "/t", "wb") as f:                  # replaced in place
    f.write(b"\x5a" * (8 << 20))
assert open(m + "/t", "rb").read(4) == b"\x5a" * 4
os.unlink(m + "/t")                              # removed
for i in range(6):                               # 24 MiB more: evictions
    with open(m + "/f%d" % i, "wb") as f:
        f.write(os.urandom(4 << 20))
assert a.tobytes() == old, "the mapped bytes changed"
EOF
}

@test "who may not read the pool reads through the mount, the same bytes" {
	tcfs_remount -o allow_other
	chmod 755 "$TDIR"
	mkdir "$MNT/e"
	chmod 755 "$MNT/e"
	head -c 100000 /dev/urandom >"$MNT/e/t"
	chmod 644 "$MNT/e/t"
	# the pool is the daemon's user's alone
	[ "$(stat -c %a "$STORE")" = 700 ]
	[ "$(stat -c %a "$STORE/pool")" = 600 ]
	run runuser -u nobody -- "$DIRECT_CHECK" "$MNT/e/t"
	echo "$output"
	[ "$output" = "fallback: Permission denied" ]
	run runuser -u nobody -- env PYTHONPATH="$PYTHONPATH" "$PY" -c '
import sys, tcache
a = tcache.load(sys.argv[1], dtype="uint8")
assert not a.direct and a.tobytes() == open(sys.argv[1], "rb").read()
print("ok")' "$MNT/e/t"
	echo "$output"
	[ "$output" = ok ]
}

@test "the ioctl: write handles, meta.json and other file systems answer no" {
	mkdir "$MNT/e"
	echo x >"$MNT/e/t"
	"$PY" - "$MNT" <<'EOF'
import errno, os, sys
import tcache
m = sys.argv[1]
for path, flags, want in ((m + "/e/t", os.O_WRONLY, errno.EBADF),
                          (m + "/e/meta.json", os.O_RDONLY, errno.ENOTTY),
                          ("/etc/hostname", os.O_RDONLY, errno.ENOTTY)):
    fd = os.open(path, flags)
    try:
        tcache.direct.extents(fd)
        raise AssertionError(path)
    except OSError as e:
        assert e.errno == want, (path, e)
    finally:
        os.close(fd)
a = tcache.load("/etc/hostname")
assert not a.direct and a.tobytes() == open("/etc/hostname", "rb").read()
EOF
	run "$DIRECT_CHECK" /etc/hostname
	[ "$output" = "fallback: Inappropriate ioctl for device" ]
}
