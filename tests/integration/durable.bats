#!/usr/bin/env bats
# durable.bats - making commits durable from outside: `tcache sync MNT`
# and fsync(2) of a directory of the mount reach the daemon (sync(1) does
# not), which syncs the pool and then writes a mark to the journal.  What
# a mark buys after a power loss is proven below the mount, by
# tests/unit/test_store.c and tests/crash/powerloss.

load helpers

journal_bytes() {
	stat -c %s "$STORE/journal"
}

@test "tcache sync MNT reaches the daemon: the journal gets its mark" {
	mkdir "$MNT/e"
	head -c 100000 /dev/urandom >"$MNT/e/t"
	before=$(journal_bytes)
	run "$TCACHE" sync "$MNT"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	after=$(journal_bytes)
	echo "journal $before -> $after bytes"
	[ "$after" -gt "$before" ]
}

@test "fsync of a directory of the mount syncs the store too" {
	mkdir "$MNT/e"
	head -c 5000 /dev/urandom >"$MNT/e/t"
	before=$(journal_bytes)
	MNT=$MNT "$PY" -c '
import os
for d in (os.environ["MNT"], os.environ["MNT"] + "/e"):
    fd = os.open(d, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
'
	[ "$(journal_bytes)" -gt "$before" ]
}

@test "tcache sync refuses what is not a mount, naming it" {
	run "$TCACHE" sync "$SRC"
	[ "$status" -eq 2 ]
	[[ "$output" == *"$SRC: not a tcachefs mount"* ]]
	run "$TCACHE" sync "$STORE"
	[ "$status" -eq 2 ]
	[[ "$output" == *"that is a store"* ]]
	run "$TCACHE" sync
	[ "$status" -eq 2 ]
	[[ "$output" == *"usage:"* ]]
}
