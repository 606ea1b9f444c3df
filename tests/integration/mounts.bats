#!/usr/bin/env bats
# mounts.bats - what a mount point and a store may already be in use by:
# a dead mount left by a killed daemon (detached at start), a live one or
# another file system (refused, named), a daemon still closing the store
# after its unmount (waited for), a store in use (its holder named),
# statistics of a mounted store, capacity=0.

load helpers

teardown() {
	# a test that stopped the daemon must not leave it stopped
	[ -n "${STOPPED:-}" ] && kill -CONT $STOPPED 2>/dev/null
	[ -n "${OTHER_FS:-}" ] && umount -l "$OTHER_FS" 2>/dev/null
	# a second mount stacked on ours (what a refusal must prevent)
	local i
	for i in 1 2 3; do
		[ "$(grep -c " $MNT fuse" /proc/mounts)" -gt 1 ] || break
		fusermount3 -uz "$MNT"
	done
	tcfs_teardown
}

# The daemon and its watchdog stopped (SIGSTOP): an unmount then leaves a
# daemon that has not yet closed the store.
stop_daemon_and_watchdog() {
	STOPPED="$DAEMON_PID $(pgrep -P "$DAEMON_PID" | tr '\n' ' ')"
	kill -STOP $STOPPED
}

@test "a dead tcachefs mount left by kill -9 is detached at start, logged" {
	echo kept >"$MNT/f"
	kill9_leave_dead
	# the mount as it is: no fusermount3 -u first.  Not tcfs_mount: its
	# wait for a mount line is met by the dead mount at once, which the
	# new daemon then detaches; wait for its word that it serves instead
	"$TCACHEFS" "$STORE" "$MNT" -f >>"$TDIR/daemon.log" 2>&1 3>&- &
	DAEMON_PID=$!
	wait_for eval '[ "$(grep -c "tcachefs: serving" "$TDIR/daemon.log")" -eq 2 ]'
	is_mounted
	[ "$(cat "$MNT/f")" = kept ]
	grep -q "detached the dead tcachefs mount of $(realpath "$STORE") at $MNT (its daemon had exited)" "$TDIR/daemon.log"
	# one mount there, not two stacked
	[ "$(grep -c " $MNT fuse.tcachefs " /proc/mounts)" -eq 1 ]
}

@test "a live mount is refused with a message that names it" {
	run timeout 10 "$TCACHEFS" "$TDIR/other" "$MNT" -f
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$MNT is already mounted: tcachefs is serving $(realpath "$STORE") there; unmount it first (fusermount3 -u $MNT)"* ]]
	[ "$(grep -c " $MNT fuse" /proc/mounts)" -eq 1 ]
	[ ! -e "$TDIR/other/journal" ]
	echo still >"$MNT/f"
	[ "$(cat "$MNT/f")" = still ]
}

@test "any other file system at the mount point is refused, named" {
	OTHER_FS=$TDIR/tmp
	mkdir "$OTHER_FS"
	mount -t tmpfs tcfs-test-tmpfs "$OTHER_FS"
	run timeout 10 "$TCACHEFS" "$TDIR/other" "$OTHER_FS" -f
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$OTHER_FS is already a mount point (tmpfs, tcfs-test-tmpfs); mount elsewhere, or unmount that first"* ]]
	[ "$(grep -c " $OTHER_FS " /proc/mounts)" -eq 1 ]
}

@test "in use: the daemon's pid and mountpoint are named" {
	mkdir "$TDIR/mnt2"
	run timeout 10 "$TCACHEFS" "$STORE" "$TDIR/mnt2" -f
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"store is in use by tcachefs (pid $DAEMON_PID), mounted at $MNT (unmount it first: fusermount3 -u $MNT)"* ]]
	run "$TCACHE" fsck "$STORE"
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *"store is in use by tcachefs (pid $DAEMON_PID), mounted at $MNT"* ]]
}

@test "fusermount3 -u, then fsck: waits for the daemon still closing the store" {
	echo x >"$MNT/f"
	stop_daemon_and_watchdog
	fusermount3 -u "$MNT"
	# the daemon goes on (and closes the store) a second later
	(sleep 1; kill -CONT $STOPPED) &
	cont=$!
	run "$TCACHE" fsck "$STORE"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"waiting up to 10 s for tcachefs (pid $DAEMON_PID), unmounted from $MNT, to close the store"* ]]
	[[ "$output" == *"1 tensors, 2 bytes checked; 0 damaged"* ]]
	wait "$cont"
	STOPPED=
}

@test "fusermount3 -u, then a remount: waits for the daemon still closing" {
	echo y >"$MNT/f"
	stop_daemon_and_watchdog
	fusermount3 -u "$MNT"
	old=$DAEMON_PID
	(sleep 1; kill -CONT $STOPPED) &
	cont=$!
	# detached (no -f): its messages to a file, which it may keep
	"$TCACHEFS" "$STORE" "$MNT" >"$TDIR/second.log" 2>&1 3>&-
	wait "$cont"
	STOPPED=
	wait "$old"
	DAEMON_PID=
	cat "$TDIR/second.log"
	grep -qF "waiting up to 10 s for tcachefs (pid $old), unmounted from $MNT, to close the store" "$TDIR/second.log"
	# the new daemon serves in the background: stop it by an unmount
	[ "$(cat "$MNT/f")" = y ]
	fusermount3 -u "$MNT"
	WAIT_S=10 wait_for flock -n "$STORE/lock" true
	tcfs_mount
}

@test "tcache stats STORE while it is mounted reads the live numbers" {
	mkdir "$MNT/e"
	echo abc >"$MNT/e/t"
	cat "$MNT/e/t" >/dev/null
	run "$TCACHE" stats --json "$STORE"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["entries"])')" -eq 1 ]
	[ "$(echo "$output" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["hits"])')" -ge 1 ]
	run "$TCACHE" stats "$STORE"
	[ "$status" -eq 0 ]
	[[ "$output" == *"entries       1 "* ]]
}

@test "capacity=0 keeps the store's capacity; a new store gets the default" {
	tcfs_remount -o capacity=32M
	tcfs_remount -o capacity=0
	[ "$(df --output=size -k "$MNT" | tail -1)" -eq 32768 ]
	tcfs_unmount
	STORE=$TDIR/new
	tcfs_mount -o capacity=0
	[ "$(df --output=size -k "$MNT" | tail -1)" -eq 1048576 ]
}
