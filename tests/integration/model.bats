#!/usr/bin/env bats
# model.bats - size and bytes of a file after any mix of write, pwrite,
# mmap writes, truncate and fallocate are exactly a local file system's,
# on the same descriptor and on others; model.py checks every answer
# against a model of the bytes.  The seed is printed; TC_MODEL_SEED=N
# replays one.

load helpers

MODEL=$BATS_TEST_DIRNAME/model.py

# run_model NAME OPS [--mmap]: run model.py on $MNT/e/NAME, then check the
# committed bytes after a remount
run_model() {
	local name=$1 ops=$2
	shift 2
	mkdir -p "$MNT/e"
	run "$PY" "$MODEL" "$MNT/e/$name" "$ops" "$@" \
		${TC_MODEL_SEED:+--seed "$TC_MODEL_SEED"} --out "$TDIR/want"
	echo "$output"
	[ "$status" -eq 0 ]
	cmp "$TDIR/want" "$MNT/e/$name"
	tcfs_remount
	cmp "$TDIR/want" "$MNT/e/$name"
}

@test "a file written through a shared mmap, then truncated down, reports the new size on the same fd" {
	mkdir "$MNT/e"
	"$PY" - "$MNT/e/t" <<'PYEOF'
import mmap, os, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
os.ftruncate(fd, 0x40000)
m = mmap.mmap(fd, 0x40000)
m[0x3d4bc:] = b'x' * (0x40000 - 0x3d4bc)
m.flush()
m.close()
os.ftruncate(fd, 0x6320)
fd2 = os.open(p, os.O_RDWR)
for f in (fd, fd2):
    assert os.fstat(f).st_size == 0x6320, hex(os.fstat(f).st_size)
    assert os.pread(f, 0x50000, 0) == bytes(0x6320)
os.close(fd2)
os.close(fd)
assert os.stat(p).st_size == 0x6320
PYEOF
	[ "$(stat -c %s "$MNT/e/t")" -eq $((0x6320)) ]
}

@test "20000 random writes, pwrites, truncates, fallocates and reads match the model" {
	run_model plain 20000
}

@test "20000 random operations with mmap writes and reads among them match the model" {
	run_model mapped 20000 --mmap
}
