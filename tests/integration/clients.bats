#!/usr/bin/env bats
# clients.bats - the caches people already run work on a mount, unchanged:
# SGLang's HiCache file backend, LMCache's local disk backend, dlm's
# tokenized cache and tensordict-cache.  Each driver in clients/ acts out
# one client's own file I/O (names, calls, order; see its doc and
# clients/clientlib.py for the phases and what check demands).
#
# On a mount of 8 MiB each client writes about three times that while it
# keeps reading a hot set back: the hot set survives, the rest of what is
# there is what was used last, every file present reads back exactly its
# bytes.  Then the daemon gets kill -9 and the store is mounted again:
# nothing is torn or lost, and the recency from before the kill decides
# what the next writes evict.  A second test per client kills the daemon
# while the client writes: what it wrote is whole or absent.  Not for
# tensordict-cache: TensorDict writes a tensor through a shared mapping
# after closing its file, committed when the mapping goes (a kill before
# leaves it absent: tests/crash/kill.bats), and the entry's meta.json may
# be written or not: what such a half-written entry loads as is
# TensorDict's to say.
#
# The first test proves the drivers on a plain directory (everything
# stays, every check passes) and shows that their checks can fail.

load helpers

CLIENTS=$BATS_TEST_DIRNAME/clients
CAP=8M
CAP_BYTES=$((8 * 1024 * 1024))

# client NAME ARGS...: run the driver of client NAME
client() {
	local name=$1
	shift
	"$PY" "$CLIENTS/$name.py" "$@"
}

# what the root lists is what the store counts as entries, for ls, the
# stats file and tcache ls alike
root_entries_agree() {
	local listed counted tls
	listed=$(ls -A "$MNT" | wc -l)
	counted=$(stat_of entries)
	tls=$("$TCACHE" ls "$MNT" --json |
		"$PY" -c 'import json, sys; print(len(json.load(sys.stdin)))')
	echo "root lists $listed names; stats count $counted entries; tcache ls $tls"
	[ "$listed" -gt 0 ]
	[ "$listed" -eq "$counted" ]
	[ "$listed" -eq "$tls" ]
}

# the life of client NAME on a mount of $CAP: fill past the capacity
# (the hot set read back all along), check; kill -9, remount; more
# writes, reading nothing, evict by the recency from before the kill;
# check again
client_on_mount() {
	local name=$1
	tcfs_remount -o capacity=$CAP
	client "$name" "$MNT" fill --mount
	client "$name" "$MNT" check --mount --capacity $CAP_BYTES
	echo "evictions: $(stat_of evictions)"
	[ "$(stat_of evictions)" -gt 0 ]
	root_entries_agree
	# the check read every file: that is recency too, kept back from
	# the journal for up to a second (a kill -9 may lose that second:
	# README, Recency); a sync writes it, so the order the next writes
	# evict by is the check's, exactly, not a mix of it and fill's
	"$TCACHE" sync "$MNT"
	kill9_remount -o capacity=$CAP
	client "$name" "$MNT" more --mount
	client "$name" "$MNT" check --mount --capacity $CAP_BYTES --more
	root_entries_agree
}

# root_holds N: the root lists at least N names
root_holds() {
	[ "$(ls -A "$MNT" | wc -l)" -ge "$1" ]
}

# root_holds_or_gone N PID: the root holds N names, or process PID ended
root_holds_or_gone() {
	root_holds "$1" && return 0
	kill -0 "$2" 2>/dev/null && return 1
	return 0
}

# client NAME killed while it writes: kill -9 of the daemon once the root
# holds N names (the client is to write 4000 items, seconds of work);
# after the remount what the client wrote is whole or absent (check
# --crashed)
client_killed_while_writing() {
	local name=$1 names=$2 pid rc
	tcfs_remount -o capacity=$CAP
	client "$name" "$MNT" fill --mount --items 4000 >"$TDIR/fill.log" 2>&1 &
	pid=$!
	WAIT_S=60 wait_for root_holds_or_gone "$names" "$pid"
	kill -9 "$DAEMON_PID"
	wait "$pid" && rc=0 || rc=$?
	echo "the client exited with $rc; its last words:"
	tail -3 "$TDIR/fill.log"
	# it was writing when the daemon died, and died of that
	[ "$rc" -eq 1 ]
	grep -Eq 'Errno (103|107)' "$TDIR/fill.log"
	remount_after_kill -o capacity=$CAP
	client "$name" "$MNT" check --mount --crashed
}

# flip_byte FILE: change one byte in the middle of FILE
flip_byte() {
	"$PY" - "$1" <<'EOF'
import os, sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(os.path.getsize(p) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x5a]))
EOF
}

@test "the client drivers on a plain directory: everything stays, and their checks can fail" {
	for c in sglang_hicache lmcache_disk dlm_cache tensordict_cache; do
		client $c "$SRC/$c" fill
		client $c "$SRC/$c" check
		# nothing was evicted: a check that expects eviction fails
		run client $c "$SRC/$c" check --capacity $CAP_BYTES
		echo "$output" | head -3
		[ "$status" -eq 1 ]
		[[ "$output" == *"eviction did not run"* ]]
		client $c "$SRC/$c" more
		client $c "$SRC/$c" check --more
		# check without --more misses nothing: the extra items are named
		run client $c "$SRC/$c" check
		[ "$status" -eq 1 ]
	done
	# one changed byte in a file of each client fails its check
	flip_byte "$(ls -d "$SRC"/sglang_hicache/*.bin | head -1)"
	flip_byte "$(ls -d "$SRC"/lmcache_disk/*.pt | tail -1)"
	flip_byte "$(ls -d "$SRC"/dlm_cache/*/entries/shard-001/00003.npz | head -1)"
	flip_byte "$(ls -d "$SRC"/tensordict_cache/*/nested/kv.memmap | head -1)"
	for c in sglang_hicache lmcache_disk dlm_cache tensordict_cache; do
		run client $c "$SRC/$c" check --more
		echo "$output" | head -3
		[ "$status" -eq 1 ]
		[[ "$output" == *"other bytes"* || "$output" == *"differs"* ||
		   "$output" == *"does not load"* || "$output" == *"loads other"* ]]
	done
	# a torn page, a torn log line, a file the client never wrote
	page=$(ls -d "$SRC"/sglang_hicache/*_1_2.bin | tail -1)
	truncate -s 1000 "$page"
	run client sglang_hicache "$SRC/sglang_hicache" check --more --crashed
	[ "$status" -eq 1 ]
	[[ "$output" == *"1000 bytes"* ]]
	rm "$page"
	printf '{"rank": 0, "se' >>"$SRC"/sglang_hicache/__metadata__*/versions_0.jsonl
	echo x >"$SRC/lmcache_disk/stray.pt"
	run client sglang_hicache "$SRC/sglang_hicache" check --more --crashed
	[[ "$output" == *"last line torn"* ]]
	run client lmcache_disk "$SRC/lmcache_disk" check --more --crashed
	[[ "$output" == *"stray.pt: a file the client did not write"* ]]
}

@test "SGLang HiCache file backend (two TP ranks, flat pages at the root): LRU keeps what it reads, kill -9 loses nothing, recency outlives it, clear() empties it" {
	client_on_mount sglang_hicache
	client sglang_hicache "$MNT" clear
	[ "$(ls -A "$MNT")" = __metadata__Qwen3-8B ]
	[ "$(stat_of entries)" -eq 1 ]
}

@test "SGLang HiCache file backend, kill -9 while both ranks write: pages and metadata whole or absent" {
	client_killed_while_writing sglang_hicache 20
}

@test "LMCache local disk backend (flat chunks at the root): LRU keeps what it reads, kill -9 loses nothing, recency outlives it" {
	client_on_mount lmcache_disk
}

@test "LMCache local disk backend, kill -9 while it writes: chunks whole or absent" {
	client_killed_while_writing lmcache_disk 20
}

@test "dlm tokenized cache (a directory per dataset, tmp + os.replace): LRU keeps what it reads, kill -9 loses nothing, recency outlives it" {
	client_on_mount dlm_cache
}

@test "dlm tokenized cache, kill -9 while it writes: every .npz and manifest.json whole or absent, every listed file there" {
	client_killed_while_writing dlm_cache 8
}

@test "tensordict-cache (TensorDict.memmap entries, load_memmap by TensorDict's rules): LRU keeps what it reads, kill -9 loses nothing, recency outlives it" {
	client_on_mount tensordict_cache
}
