#!/usr/bin/env bats
# limits.bats - resource limits: a store on a full or small disk, a pool
# file deleted under a stopped daemon, a store of an unknown format.  Each
# gives a clear message and loses nothing that is still intact.

load helpers

# a small file system of our own for the store (root only, as CI runs)
small_fs() {
	mkdir -p "$TDIR/small"
	mount -t tmpfs -o size="$1" tmpfs "$TDIR/small"
	SMALL=$TDIR/small
}

teardown() {
	tcfs_teardown_small
}

tcfs_teardown_small() {
	local rc=0
	tcfs_unmount || rc=1
	if [ -n "${SMALL:-}" ] && grep -qs " $SMALL tmpfs" /proc/mounts; then
		umount "$SMALL" || umount -l "$SMALL" || rc=1
	fi
	tcfs_teardown || rc=1
	return $rc
}

@test "a capacity larger than the disk: a clear message, nothing mounted" {
	small_fs 32M
	mkdir -p "$TDIR/mnt2"
	run "$TCACHEFS" "$SMALL/store" "$TDIR/mnt2" -o capacity=1G -f
	[ "$status" -eq 1 ]
	[[ "$output" == *"not enough disk space"* ]]
	run grep -qs " $TDIR/mnt2 " /proc/mounts
	[ "$status" -eq 1 ]
	# nothing half made: no journal, no pool left behind
	[ ! -e "$SMALL/store/journal" ]
	[ ! -e "$SMALL/store/pool" ]
	[ "$(df --output=used -k "$SMALL" | tail -1)" -lt 1024 ]
}

@test "the disk under the journal fills up: closes fail loudly, nothing is lost" {
	tcfs_unmount
	small_fs 48M
	STORE=$SMALL/store
	tcfs_mount -o capacity=16M
	mkdir "$MNT/e"
	for i in 1 2 3; do
		head -c 300000 /dev/urandom >"$SRC/t$i"
		cp "$SRC/t$i" "$MNT/e/t$i"
	done
	# fill the file system the journal lives on
	dd if=/dev/zero of="$SMALL/filler" bs=1M 2>/dev/null || true
	failed=0
	for i in $(seq 1 300); do
		head -c 4096 /dev/urandom >"$SRC/x"
		if ! cp "$SRC/x" "$MNT/e/x$i" 2>/dev/null; then
			failed=1
			break
		fi
	done
	[ "$failed" -eq 1 ]     # a commit could not be recorded: cp said so
	rm "$SMALL/filler"
	head -c 300000 /dev/urandom >"$SRC/t4"
	cp "$SRC/t4" "$MNT/e/t4"
	tcfs_remount
	for i in 1 2 3 4; do cmp "$SRC/t$i" "$MNT/e/t$i"; done
	# every x that is there is whole (4096 bytes), the failed one absent
	for f in "$MNT"/e/x*; do
		[ -e "$f" ] || continue
		[ "$(stat -c %s "$f")" -eq 4096 ]
	done
}

@test "a rename over that cannot be journaled changes nothing, also after kill -9" {
	# The rename of a tensor over another is one journal record: the
	# target goes and the tensor moves, or neither.  Here the journal's
	# file system is full and the journal's last page has room for a
	# removal record but not for the rename's: the rename must fail whole.
	tcfs_unmount
	small_fs 16M
	STORE=$SMALL/store
	tcfs_mount -o capacity=4M
	long=$(printf 'n%.0s' $(seq 200))        # a 200-byte name
	mkdir "$MNT/e"
	head -c 5000 /dev/urandom >"$SRC/src"
	head -c 7000 /dev/urandom >"$SRC/dst"
	for f in src dst p m1 m2 m3 "${long}1" "${long}2"; do
		cp "$SRC/src" "$MNT/e/$f"
	done
	cp "$SRC/dst" "$MNT/e/$long"
	jsize() { stat -c %s "$STORE/journal"; }
	# every pending recency record written now (fsync writes them)
	"$PY" -c "import os; fd = os.open('$MNT/e/p', os.O_WRONLY); os.fsync(fd); os.close(fd)"
	# D: a removal record; C: a rename over (same name lengths as below)
	j0=$(jsize); rm "$MNT/e/m1"; j1=$(jsize)
	mv "$MNT/e/${long}1" "$MNT/e/${long}2"; j2=$(jsize)
	chmod 600 "$MNT/e/m2"; j3=$(jsize)
	d=$((j1 - j0)) c=$((j2 - j1)) m=$((j3 - j2))
	echo "records: removal $d, rename over $c, chmod $m bytes"
	[ "$d" -gt 0 ]
	[ "$c" -gt $((d + m)) ]
	# chmods move the journal's end until the room left in its last
	# page, L, is in [D, C): a removal fits, the rename's record does not
	room() { echo $(( (4096 - $(jsize) % 4096) % 4096 )); }
	k=0
	while [ "$(room)" -lt "$d" ] || [ "$(room)" -ge "$c" ]; do
		chmod $((k % 2 ? 600 : 644)) "$MNT/e/m3"
		k=$((k + 1))
		[ "$k" -lt 200 ]
	done
	echo "room in the journal's last page: $(room) bytes after $k chmods"
	dd if=/dev/zero of="$SMALL/filler" bs=4k 2>/dev/null || true
	run mv "$MNT/e/src" "$MNT/e/$long"
	echo "$output"
	[ "$status" -ne 0 ]
	cmp "$SRC/src" "$MNT/e/src"
	cmp "$SRC/dst" "$MNT/e/$long"
	rm "$SMALL/filler"
	kill9_remount
	cmp "$SRC/src" "$MNT/e/src"
	cmp "$SRC/dst" "$MNT/e/$long"
}

@test "the pool file deleted under a stopped daemon: entries stay, tensors go, it mounts" {
	mkdir "$MNT/a" "$MNT/b"
	head -c 5000 /dev/urandom >"$MNT/a/t"
	tcfs_unmount
	rm "$STORE/pool"
	tcfs_mount
	[ -d "$MNT/a" ]
	[ -d "$MNT/b" ]
	[ ! -e "$MNT/a/t" ]
	grep -q "recovered" "$TDIR/daemon.log"
	head -c 5000 /dev/urandom >"$SRC/n"
	cp "$SRC/n" "$MNT/a/n"
	tcfs_remount
	cmp "$SRC/n" "$MNT/a/n"
}

@test "a store of an unknown format version: refused with a message, left as it was" {
	mkdir "$MNT/a"
	head -c 5000 /dev/urandom >"$MNT/a/t"
	tcfs_unmount
	# the version field of the journal header (bytes 8..11)
	printf '\x63\x00\x00\x00' | dd of="$STORE/journal" bs=1 seek=8 conv=notrunc 2>/dev/null
	before=$(md5sum "$STORE/journal" "$STORE/pool")
	run "$TCACHEFS" "$STORE" "$MNT" -f
	[ "$status" -eq 1 ]
	[[ "$output" == *"unknown format version"* ]]
	run is_mounted
	[ "$status" -eq 1 ]
	run "$TCACHE" fsck "$STORE"
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown format version"* ]]
	[ "$(md5sum "$STORE/journal" "$STORE/pool")" = "$before" ]
	DAEMON_PID=
}
