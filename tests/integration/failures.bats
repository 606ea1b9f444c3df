#!/usr/bin/env bats
# failures.bats - a tensor whose write failed is never committed (absent if
# new, its old bytes if rewritten, close() returns the error); a writer
# that says its size with fallocate reserves the pool space up front, or
# fails at once before anything is evicted; unsupported fallocate modes
# answer EOPNOTSUPP.

load helpers

MIB=$((1024 * 1024))

setup() {
	tcfs_setup
	tcfs_remount -o capacity=16M
	random_file "$SRC/4m" $((4 * MIB))
}

# three entries a b c of one 4 MiB tensor t each, opened in that order
three_entries() {
	for e in a b c; do
		mkdir "$MNT/$e"
		cp "$SRC/4m" "$MNT/$e/t"
	done
}

# run_py CODE: python with os, errno, ctypes imported; MNT and SRC set;
# fallocate(fd, off, len, mode=0) is the system call (posix_fallocate
# falls back to writing zeros where fallocate is not supported)
run_py() {
	MNT=$MNT SRC=$SRC "$PY" -c "import os, errno, ctypes, sys
MNT = os.environ['MNT']; SRC = os.environ['SRC']
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
def fallocate(fd, off, n, mode=0):
    if libc.fallocate(fd, mode, off, n) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
$1"
}

@test "a write past the capacity evicts, fails, and leaves nothing committed" {
	three_entries
	mkdir "$MNT/big"
	run dd if=/dev/urandom of="$MNT/big/t" bs=1M count=20
	echo "$output"
	[ "$status" -ne 0 ]
	[ ! -e "$MNT/big/t" ]
	run ls "$MNT/big"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	tcfs_remount
	[ ! -e "$MNT/big/t" ]
	[ "$(du_kb)" -eq 0 ]
}

@test "with every entry pinned a write gets ENOSPC, and close() returns it, and no empty file stays" {
	three_entries
	chmod +t "$MNT/a" "$MNT/b" "$MNT/c"
	mkdir "$MNT/new"
	run_py "
fd = os.open(MNT + '/new/t', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
err = None
try:
    for i in range(8):
        os.write(fd, b'x' * (1 << 20))
except OSError as e:
    err = e.errno
assert err == errno.ENOSPC, err
try:
    os.close(fd)
    raise SystemExit('close() returned 0 after a failed write')
except OSError as e:
    assert e.errno == errno.ENOSPC, e
"
	[ ! -e "$MNT/new/t" ]
	tcfs_remount
	[ ! -e "$MNT/new/t" ]
	for e in a b c; do cmp "$SRC/4m" "$MNT/$e/t"; done
}

@test "a rewrite that fails keeps the previous bytes, also after a remount" {
	mkdir "$MNT/big"
	random_file "$SRC/old" 12345
	cp "$SRC/old" "$MNT/big/t"
	run dd if=/dev/urandom of="$MNT/big/t" bs=1M count=20
	[ "$status" -ne 0 ]
	cmp "$SRC/old" "$MNT/big/t"
	tcfs_remount
	cmp "$SRC/old" "$MNT/big/t"
}

@test "a failed write in the middle fails the whole tensor, even if later writes succeed" {
	three_entries
	chmod +t "$MNT/a" "$MNT/b" "$MNT/c"
	mkdir "$MNT/n"
	run_py "
fd = os.open(MNT + '/n/t', os.O_WRONLY | os.O_CREAT)
os.write(fd, b'y' * 4096)
try:
    for i in range(8):
        os.write(fd, b'x' * (1 << 20))
    raise SystemExit('8 MiB fit in 4 free')
except OSError as e:
    assert e.errno == errno.ENOSPC, e
os.pwrite(fd, b'z' * 10, 0)
try:
    os.close(fd)
    raise SystemExit('close() returned 0')
except OSError as e:
    assert e.errno == errno.ENOSPC, e
"
	[ ! -e "$MNT/n/t" ]
}

@test "fallocate of a size that can never fit fails at once: EFBIG past the capacity, ENOSPC past what is pinned or open; nothing evicted" {
	three_entries
	chmod +t "$MNT/c"
	mkdir "$MNT/big"
	run_py "
fd = os.open(MNT + '/big/t', os.O_WRONLY | os.O_CREAT)
for n, want, call in ((17 << 20, errno.EFBIG, fallocate),
                      (13 << 20, errno.ENOSPC, fallocate),
                      (13 << 20, errno.ENOSPC, os.posix_fallocate)):
    try:
        call(fd, 0, n)
        raise SystemExit('fallocate of %d succeeded' % n)
    except OSError as e:
        assert e.errno == want, (n, e)
try:
    os.close(fd)
    raise SystemExit('close() returned 0 after a failed fallocate')
except OSError as e:
    assert e.errno == errno.EFBIG, e  # the first failure
"
	for e in a b c; do cmp "$SRC/4m" "$MNT/$e/t"; done
	[ ! -e "$MNT/big/t" ]
}

@test "fallocate that fits evicts LRU entries up front, sets the size, and the writes that follow cannot run out" {
	three_entries
	chmod +t "$MNT/c"
	mkdir "$MNT/big" "$MNT/other"
	random_file "$SRC/12m" $((12 * MIB))
	run_py "
fd = os.open(MNT + '/big/t', os.O_WRONLY | os.O_CREAT)
fallocate(fd, 0, 12 << 20)
assert os.fstat(fd).st_size == 12 << 20, os.fstat(fd)
assert not os.path.exists(MNT + '/a') and not os.path.exists(MNT + '/b')
# the space is this writer's: another writer cannot take it
try:
    with open(MNT + '/other/t', 'wb') as f:
        f.write(b'o' * 8192)
    raise SystemExit('the reserved space was handed out')
except OSError as e:
    assert e.errno == errno.ENOSPC, e
src = open(SRC + '/12m', 'rb').read()
for off in range(0, len(src), 1 << 20):
    os.pwrite(fd, src[off:off + (1 << 20)], off)
os.close(fd)
"
	cmp "$SRC/12m" "$MNT/big/t"
	cmp "$SRC/4m" "$MNT/c/t"
	tcfs_remount
	cmp "$SRC/12m" "$MNT/big/t"
}

@test "fallocate extends with zeros and keeps the bytes below" {
	mkdir "$MNT/e"
	run_py "
fd = os.open(MNT + '/e/t', os.O_RDWR | os.O_CREAT)
os.write(fd, b'abc')
fallocate(fd, 0, 10000)
assert os.fstat(fd).st_size == 10000
fallocate(fd, 0, 10)   # inside: no change
assert os.fstat(fd).st_size == 10000
assert os.pread(fd, 10000, 0) == b'abc' + bytes(9997)
os.close(fd)
assert open(MNT + '/e/t', 'rb').read() == b'abc' + bytes(9997)
"
}

@test "fallocate modes other than 0 answer EOPNOTSUPP and change nothing" {
	mkdir "$MNT/e"
	printf abc >"$MNT/e/t"
	run_py "
fd = os.open(MNT + '/e/t', os.O_RDWR)
for mode in (0x01, 0x03, 0x10, 0x20):  # KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE, INSERT_RANGE
    r = libc.fallocate(fd, mode, 0, 4096)
    assert r == -1 and ctypes.get_errno() == errno.EOPNOTSUPP, (mode, r, ctypes.get_errno())
os.close(fd)
assert open(MNT + '/e/t', 'rb').read() == b'abc'
"
}
