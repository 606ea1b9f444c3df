#!/usr/bin/env bats
# shrink.bats - a remount with a smaller -o capacity keeps the rules of
# any eviction: pinned entries stay, unpinned ones go least recently used
# first until the rest fits, each named in the log; when the pinned
# entries alone do not fit the mount is refused, naming both sizes, and
# nothing changes.

load helpers

MIB=$((1024 * 1024))

setup() {
	tcfs_setup
	tcfs_remount -o capacity=16M
}

# put NAME SIZE_MIB: entry NAME with one tensor t of random bytes, kept
# in $SRC/NAME to compare
put() {
	random_file "$SRC/$1" $(($2 * MIB))
	mkdir "$MNT/$1"
	cp "$SRC/$1" "$MNT/$1/t"
}

@test "a shrink keeps pinned entries and evicts unpinned ones oldest first, each named in the log" {
	put u1 4
	put u2 4
	put p 4          # pinned, and lying past the new end
	chmod +t "$MNT/p"
	put u3 2
	cat "$MNT/u2/t" >/dev/null   # u2 is now the most recent
	tcfs_remount -o capacity=8M
	cmp "$SRC/p" "$MNT/p/t"
	cmp "$SRC/u2" "$MNT/u2/t"
	[ ! -e "$MNT/u1" ]
	[ ! -e "$MNT/u3" ]
	[ -k "$MNT/p" ]
	grep -q "capacity shrink: evicted entry 'u1'" "$TDIR/daemon.log"
	grep -q "capacity shrink: evicted entry 'u3'" "$TDIR/daemon.log"
	run grep -c "evicted entry '\(p\|u2\)'" "$TDIR/daemon.log"
	[ "$output" = 0 ]
	[ "$(df -k --output=size "$MNT" | tail -1 | tr -d ' ')" -eq 8192 ]
	[ "$(du_kb)" -le 8192 ]
	# and it stays so: a remount without -o capacity, a check of the bytes
	tcfs_remount
	cmp "$SRC/p" "$MNT/p/t"
	cmp "$SRC/u2" "$MNT/u2/t"
	# the store works at its new size: a new entry evicts u2, not p
	put n 3
	cmp "$SRC/p" "$MNT/p/t"
	[ ! -e "$MNT/u2" ]
}

@test "a shrink below what the pinned entries hold is refused with both sizes, and changes nothing" {
	put p1 4
	put p2 4
	put u 2
	chmod +t "$MNT/p1" "$MNT/p2"
	tcfs_unmount
	if tcfs_mount -o capacity=6M 3>/dev/null; then
		echo "mounted with a capacity below the pinned entries"
		return 1
	fi
	wait "$DAEMON_PID" || true
	DAEMON_PID=
	grep "pinned" "$TDIR/daemon.log"
	grep -q "hold 8388608 bytes.*capacity of 6291456 bytes" "$TDIR/daemon.log"
	tcfs_mount
	for e in p1 p2 u; do cmp "$SRC/$e" "$MNT/$e/t"; done
	[ "$(df -k --output=size "$MNT" | tail -1 | tr -d ' ')" -eq 16384 ]
}
