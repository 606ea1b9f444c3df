#!/usr/bin/env bats
# damage.bats - damaged bytes are never served as good: flipped bytes in the
# pool or the journal of a stopped store, found at mount or by tcache fsck.

load helpers

: "${TCACHE:?TCACHE must name the tcache tool}"

# the offset in the pool file of the first byte of MARKER
pool_offset() {
	"$PY" - "$STORE/pool" "$1" <<'PYEOF'
import mmap, sys
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    print(m.find(sys.argv[2].encode()))
PYEOF
}

flip_at() {
	"$PY" - "$1" "$2" <<'PYEOF'
import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xff]))
PYEOF
}

# a file starting with a marker we can find in the pool, then random bytes
marked_file() {
	{ printf '%s' "$2"; head -c "$3" /dev/urandom; } >"$1"
}

@test "a damaged tensor answers EIO, the others are served; fsck finds and repairs it" {
	mkdir "$MNT/e" "$MNT/f"
	head -c 100000 /dev/urandom >"$SRC/a"
	marked_file "$SRC/b" MARK-B-7f3a9c 200000
	cp "$SRC/a" "$MNT/e/a"
	cp "$SRC/b" "$MNT/e/b"
	cp "$SRC/a" "$MNT/f/c"
	tcfs_unmount
	off=$(pool_offset MARK-B-7f3a9c)
	[ "$off" -ge 0 ]
	flip_at "$STORE/pool" $((off + 150000))

	run "$TCACHE" fsck "$STORE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"damaged: e/b: "* ]]
	[[ "$output" == *"3 tensors"* ]]

	tcfs_mount
	cmp "$SRC/a" "$MNT/e/a"
	cmp "$SRC/a" "$MNT/f/c"
	run cat "$MNT/e/b"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	run dd if="$MNT/e/b" of=/dev/null bs=4k count=1
	[ "$status" -ne 0 ]
	cmp "$SRC/a" "$MNT/e/a"   # still fine after the failed read
	# the log names the tensor, the cause and what to do
	grep -q "e/b: its bytes on disk do not match their xxh3 (damaged, or a read error of the pool: EIO); unmount, then tcache fsck --repair $(realpath "$STORE")" "$TDIR/daemon.log"
	tcfs_unmount

	run "$TCACHE" fsck --repair "$STORE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"repaired"* ]]
	run "$TCACHE" fsck "$STORE"
	[ "$status" -eq 0 ]
	tcfs_mount
	[ ! -e "$MNT/e/b" ]
	cmp "$SRC/a" "$MNT/e/a"
	cmp "$SRC/a" "$MNT/f/c"
}

@test "tensors in memory are checked right after the mount, before any read: damage found so answers EIO" {
	mkdir "$MNT/e"
	head -c 100000 /dev/urandom >"$SRC/a"
	marked_file "$SRC/b" MARK-E-3c3c3c 200000
	cp "$SRC/a" "$MNT/e/a"
	cp "$SRC/b" "$MNT/e/b"
	tcfs_unmount
	off=$(pool_offset MARK-E-3c3c3c)
	[ "$off" -ge 0 ]
	flip_at "$STORE/pool" $((off + 150000))   # through the page cache
	tcfs_mount
	# nothing reads them: the daemon checks both by itself
	wait_for stat_is verified_ahead 2
	stat_is damaged 1
	stat_is hits 0
	grep -q "e/b: its bytes do not match their xxh3 (found by the check after the mount: its reads fail with EIO); unmount, then tcache fsck --repair $(realpath "$STORE")" "$TDIR/daemon.log"
	run cat "$MNT/e/b"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	cmp "$SRC/a" "$MNT/e/a"
	stat_is damaged 1
	run "$TCACHE" stats "$MNT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"damaged       1 tensors fail their xxh3"* ]]
}

@test "-o verify=off serves bytes without checking them" {
	mkdir "$MNT/e"
	marked_file "$SRC/b" MARK-C-11aa22 50000
	cp "$SRC/b" "$MNT/e/b"
	tcfs_unmount
	off=$(pool_offset MARK-C-11aa22)
	[ "$off" -ge 0 ]
	flip_at "$STORE/pool" $((off + 30000))
	tcfs_mount -o verify=off
	cat "$MNT/e/b" >"$SRC/got"
	run cmp -s "$SRC/b" "$SRC/got"
	[ "$status" -eq 1 ]
	[ "$(stat -c %s "$SRC/got")" -eq "$(stat -c %s "$SRC/b")" ]
}

@test "a damaged journal record costs one entry at mount; the rest is served" {
	for i in $(seq 10); do
		mkdir "$MNT/e$i"
		head -c $((i * 1000)) /dev/urandom >"$SRC/t$i"
		cp "$SRC/t$i" "$MNT/e$i/t"
	done
	tcfs_unmount   # a checkpoint: one record per entry
	size=$(stat -c %s "$STORE/journal")
	flip_at "$STORE/journal" $((size / 2))

	run "$TCACHE" fsck --json "$STORE"
	[ "$status" -eq 1 ]
	"$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["records_dropped"] == 1 and not r["clean"], r' "$output"

	tcfs_mount
	[ "$(ls "$MNT" | wc -l)" -eq 9 ]
	for i in $(seq 10); do
		[ -e "$MNT/e$i" ] || continue
		cmp "$SRC/t$i" "$MNT/e$i/t"
	done
	grep -q "recovered" "$TDIR/daemon.log"
	# the damage was dropped for good: a clean store after unmount
	tcfs_unmount
	run "$TCACHE" fsck "$STORE"
	[ "$status" -eq 0 ]
	tcfs_mount
	[ "$(ls "$MNT" | wc -l)" -eq 9 ]
}

@test "a pool file cut short: what it still holds is served" {
	mkdir "$MNT/a" "$MNT/b"
	head -c 300000 /dev/urandom >"$SRC/x"
	cp "$SRC/x" "$MNT/a/x"
	marked_file "$SRC/y" MARK-D-5e5e5e 300000
	cp "$SRC/y" "$MNT/b/y"
	tcfs_unmount
	off=$(pool_offset MARK-D-5e5e5e)
	truncate -s "$off" "$STORE/pool"
	tcfs_mount
	cmp "$SRC/x" "$MNT/a/x"
	[ -d "$MNT/b" ]
	[ ! -e "$MNT/b/y" ]
	grep -q "recovered" "$TDIR/daemon.log"
	# and it is usable at full capacity again
	head -c 1000000 /dev/urandom >"$SRC/z"
	cp "$SRC/z" "$MNT/b/z"
	cmp "$SRC/z" "$MNT/b/z"
}

@test "tcache fsck refuses a mounted store and a directory that is not a store" {
	run "$TCACHE" fsck "$STORE"
	[ "$status" -eq 2 ]
	[[ "$output" == *"in use"* ]]
	mkdir "$TDIR/empty"
	run "$TCACHE" fsck "$TDIR/empty"
	[ "$status" -eq 2 ]
	[[ "$output" == *"no tcachefs store"* ]]
	run "$TCACHE" fsck
	[ "$status" -eq 2 ]
	run "$TCACHE" frobnicate
	[ "$status" -eq 2 ]
}
