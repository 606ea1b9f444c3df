#!/usr/bin/env bats
# remote.bats - the shared tier: two nodes (daemons with stores and mounts
# of their own) behind one Redis, or one Redis Cluster.  An entry written
# on A is pushed in the background and read on B, whole, after a fetch;
# Redis down, stopped or full never stops a mount; damaged or torn remote
# entries are never served.  Every Redis here is the test's own.

load helpers
load redis

setup() {
	tcfs_setup
	redis_start r
}

teardown() { remote_teardown; }

# the two nodes on Redis r, with more options for both in "$@"
two_nodes() {
	local o="remote=$(redis_url r)${1:+,$1}"
	tcfs_remount -o "$o"
	tcfs_mount_b -o "$o"
}

@test "an entry, a file at the root and 1,000 small entries written on A read identically on B" {
	two_nodes
	random_file "$SRC/t" $((5 * 1024 * 1024 + 7))
	mkdir -p "$MNT/e/g"
	cp "$SRC/t" "$MNT/e/t"
	echo small >"$MNT/e/g/s.txt"
	echo '{"model": "m-1", "__tcache__": {"attrs": {"step": 3}}}' >"$MNT/e/meta.json"
	echo '{"seed": 12345678901234567890, "lr": 0.100000000000000005}' >"$MNT/e/g/meta.json"
	cp "$SRC/t" "$MNT/flat.bin"
	"$PY" - "$MNT" <<'EOF_PY'
import os, sys
m = sys.argv[1]
for i in range(1000):
    os.mkdir(f"{m}/s{i}")
    with open(f"{m}/s{i}/x", "wb") as f:
        f.write(i.to_bytes(4, "little") * 768)
EOF_PY
	WAIT_S=60 wait_for remote_drained "$MNT" 1002
	cmp "$SRC/t" "$MNT_B/e/t"
	[ "$(cat "$MNT_B/e/g/s.txt")" = small ]
	"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["model"] == "m-1" and d["__tcache__"]["attrs"] == {"step": 3}, d' "$MNT_B/e/meta.json"
	# the user's keys as written, to the digit
	grep -q '"seed": 12345678901234567890,' "$MNT_B/e/g/meta.json"
	grep -q '"lr": 0.100000000000000005,' "$MNT_B/e/g/meta.json"
	cmp "$SRC/t" "$MNT_B/flat.bin"
	"$PY" - "$MNT_B" <<'EOF_PY'
import sys
m = sys.argv[1]
for i in range(1000):
    with open(f"{m}/s{i}/x", "rb") as f:
        assert f.read() == i.to_bytes(4, "little") * 768, i
EOF_PY
	[ "$(remote_stat "$MNT_B" fetched)" -eq 1002 ]
	[ "$(remote_stat "$MNT_B" checksum_failures)" -eq 0 ]
	# B's copies are its own now: A's rm removes the remote entry, not B's
	rm -r "$MNT/e"
	WAIT_S=20 wait_for eval '[ -z "$(rcli r --scan --pattern "{tcache:e}:*")" ]'
	cmp "$SRC/t" "$MNT_B/e/t"
	# and a node that never had it finds it absent
	tcfs_unmount_b
	rm -rf "$STORE_B"
	tcfs_mount_b -o "remote=$(redis_url r)"
	run ls "$MNT_B/e"
	[ "$status" -ne 0 ]
	cmp "$SRC/t" "$MNT_B/flat.bin"
}

@test "concurrent lookups of one name on B fetch it once; tcache stats shows the remote" {
	two_nodes
	random_file "$SRC/t" $((32 * 1024 * 1024))
	mkdir "$MNT/hot"
	cp "$SRC/t" "$MNT/hot/t"
	WAIT_S=30 wait_for remote_drained "$MNT" 1
	local i pids=()
	for i in 1 2 3 4 5 6 7 8; do
		cmp -s "$SRC/t" "$MNT_B/hot/t" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i"
	done
	[ "$(remote_stat "$MNT_B" fetched)" -eq 1 ]
	run "$TCACHE" stats "$MNT_B"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"remote        redis://127.0.0.1:${REDIS_PORT[r]}, write-through, connected"* ]]
	[[ "$output" == *"fetched 1 (32.0 MiB)"* ]]
	run "$TCACHE" stats "$MNT"
	[[ "$output" == *"pushed      "* ]]
}

@test "a 1 GiB entry written on A reads identically on B" {
	redis_stop r
	redis_start r --maxmemory 3gb
	two_nodes "capacity=2G"
	random_file "$SRC/big" $((1024 * 1024 * 1024))
	mkdir "$MNT/big"
	cp "$SRC/big" "$MNT/big/t"
	WAIT_S=120 wait_for remote_drained "$MNT" 1
	cmp "$SRC/big" "$MNT_B/big/t"
	[ "$(remote_stat "$MNT_B" fetched_bytes)" -eq $((1024 * 1024 * 1024)) ]
}

@test "Redis killed mid-push: A keeps serving; pushes resume when it is back" {
	two_nodes "remote_timeout=300"
	random_file "$SRC/t" $((64 * 1024 * 1024))
	mkdir "$MNT/k1"
	cp "$SRC/t" "$MNT/k1/t"
	redis_kill r                 # most likely mid-push of 64 MiB
	mkdir "$MNT/k2"
	cp "$SRC/t" "$MNT/k2/t"      # writes and reads go on locally
	cmp "$SRC/t" "$MNT/k1/t"
	cmp "$SRC/t" "$MNT/k2/t"
	ls "$MNT" >/dev/null
	[ "$(remote_stat "$MNT" connected)" = False ]
	redis_start r                # empty again, on the same port
	WAIT_S=30 wait_for remote_drained "$MNT" 2
	cmp "$SRC/t" "$MNT_B/k2/t"
	cmp "$SRC/t" "$MNT_B/k1/t"
	grep -q "remote: down" "$TDIR/daemon.log"
	grep -q "remote: up again" "$TDIR/daemon.log"
}

# elapsed CMD...: run it, print its wall time in ms
elapsed_ms() {
	local t0=$EPOCHREALTIME
	"$@" >/dev/null 2>&1 || true
	"$PY" -c 'import sys; print(int((float(sys.argv[2]) - float(sys.argv[1])) * 1000))' "$t0" "$EPOCHREALTIME"
}

@test "Redis stopped (SIGSTOP): every request returns within remote_timeout plus a margin" {
	two_nodes "remote_timeout=400"
	echo a >"$MNT/before"
	redis_pause r
	local ms
	ms=$(elapsed_ms ls "$MNT_B/absent1")
	echo "lookup of an absent name on B: $ms ms"
	[ "$ms" -lt 1400 ]
	ms=$(elapsed_ms sh -c "mkdir '$MNT/w' && echo x > '$MNT/w/t'")
	echo "a write on A: $ms ms"
	[ "$ms" -lt 1400 ]
	[ "$(cat "$MNT/w/t")" = x ]
	ms=$(elapsed_ms ls -l "$MNT")
	echo "ls on A: $ms ms"
	[ "$ms" -lt 1400 ]
	ms=$(elapsed_ms ls "$MNT_B/absent2")
	echo "another lookup on B: $ms ms"
	[ "$ms" -lt 1400 ]
	redis_resume r
	WAIT_S=30 wait_for remote_drained "$MNT" 1
	WAIT_S=10 wait_for test -e "$MNT_B/w/t"
	[ "$(cat "$MNT_B/w/t")" = x ]
}

@test "a corrupt remote chunk is never served: the entry is absent on B, and counted" {
	two_nodes
	random_file "$SRC/t" $((9 * 1024 * 1024))
	mkdir "$MNT/c"
	cp "$SRC/t" "$MNT/c/t"
	WAIT_S=30 wait_for remote_drained "$MNT" 1
	local key
	key=$(rcli r --scan --pattern '{tcache:c}:c:*' | head -1)
	[ -n "$key" ]
	rcli r setrange "$key" 1000 CORRUPT >/dev/null
	run cat "$MNT_B/c/t"
	[ "$status" -ne 0 ]
	run ls "$MNT_B"
	[ "$output" = "" ]
	[ "$(remote_stat "$MNT_B" checksum_failures)" -ge 1 ]
	grep -q "bad checksum" "$TDIR/daemonB.log"
	# a missing chunk: absent too
	mkdir "$MNT/d"
	cp "$SRC/t" "$MNT/d/t"
	WAIT_S=30 wait_for remote_drained "$MNT" 2
	key=$(rcli r --scan --pattern '{tcache:d}:c:*' | head -1)
	rcli r del "$key" >/dev/null
	run cat "$MNT_B/d/t"
	[ "$status" -ne 0 ]
}

@test "a 3-master Redis Cluster: A to B, and again after a resharding" {
	cluster_start 3
	local o="remote=redis-cluster://127.0.0.1:${REDIS_PORT[cluster0]}"
	tcfs_remount -o "$o"
	# two seeds: inside -o, the list's comma is written \,
	tcfs_mount_b -o "remote=redis-cluster://127.0.0.1:${REDIS_PORT[cluster1]}\\,127.0.0.1:${REDIS_PORT[cluster2]}"
	random_file "$SRC/t" $((5 * 1024 * 1024 + 3))
	local i
	for i in $(seq 30); do
		mkdir "$MNT/e$i"
		cp "$SRC/t" "$MNT/e$i/t"
	done
	WAIT_S=60 wait_for remote_drained "$MNT" 30
	# the entries are spread over the masters, each entry in one slot
	local n0 n1 n2
	n0=$(rcli cluster0 dbsize) n1=$(rcli cluster1 dbsize) n2=$(rcli cluster2 dbsize)
	echo "keys per master: $n0 $n1 $n2"
	[ "$n0" -gt 0 ]
	[ "$n1" -gt 0 ]
	[ "$n2" -gt 0 ]
	for i in $(seq 30); do
		cmp "$SRC/t" "$MNT_B/e$i/t"
	done
	cluster_reshard 0 1 3000
	for i in $(seq 31 60); do
		mkdir "$MNT/e$i"
		cp "$SRC/t" "$MNT/e$i/t"
	done
	WAIT_S=60 wait_for remote_drained "$MNT" 60
	for i in $(seq 31 60); do
		cmp "$SRC/t" "$MNT_B/e$i/t"
	done
	[ "$(remote_stat "$MNT" failed)" -eq 0 ]
	[ "$(remote_stat "$MNT_B" fetched)" -eq 60 ]
}

@test "kill -9 of A mid-push: whatever B can read is whole" {
	two_nodes
	random_file "$SRC/t" $((48 * 1024 * 1024))
	local i
	for i in 1 2 3 4 5 6; do
		mkdir "$MNT/p$i"
		cp "$SRC/t" "$MNT/p$i/t"
	done
	kill -9 "$DAEMON_PID"        # the queue most likely still holds some
	WAIT_S=10 wait_for eval '! daemon_alive'
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=
	fusermount3 -uz "$MNT"
	local found=0
	for i in 1 2 3 4 5 6; do
		if [ -e "$MNT_B/p$i" ]; then
			cmp "$SRC/t" "$MNT_B/p$i/t"
			found=$((found + 1))
		fi
	done
	echo "B found $found of 6, each whole"
	tcfs_mount -o "remote=$(redis_url r)"
	cmp "$SRC/t" "$MNT/p6/t"     # A's own survive its kill -9
}

@test "remote_mode=read-only fetches but never pushes; remote_prefix keeps caches apart" {
	tcfs_remount -o "remote=$(redis_url r)"
	tcfs_mount_b -o "remote=$(redis_url r),remote_mode=read-only"
	echo from-a >"$MNT/a.txt"
	WAIT_S=30 wait_for remote_drained "$MNT" 1
	[ "$(cat "$MNT_B/a.txt")" = from-a ]
	echo from-b >"$MNT_B/b.txt"
	[ "$(remote_stat "$MNT_B" mode)" = read-only ]
	[ "$(remote_stat "$MNT_B" pushed)" -eq 0 ]
	[ "$(remote_stat "$MNT_B" queue_entries)" -eq 0 ]   # nothing is queued
	[ -z "$(rcli r --scan --pattern '{tcache:b.txt}:*')" ]
	# another prefix: A's entries are not there
	tcfs_unmount_b
	rm -rf "$STORE_B"
	tcfs_mount_b -o "remote=$(redis_url r),remote_prefix=other"
	run cat "$MNT_B/a.txt"
	[ "$status" -ne 0 ]
}

@test "a unix socket and AUTH from a password file" {
	redis_stop r
	printf 's3cret-pw\n' >"$TDIR/pw"
	redis_start r --requirepass s3cret-pw
	local o="remote=unix:$(redis_sock r),remote_password_file=$TDIR/pw"
	tcfs_remount -o "$o"
	tcfs_mount_b -o "$o"
	echo over-socket >"$MNT/u.txt"
	WAIT_S=30 wait_for remote_drained "$MNT" 1
	[ "$(cat "$MNT_B/u.txt")" = over-socket ]
	# a wrong password: the mount works locally, says why, pushes nothing
	printf 'wrong\n' >"$TDIR/pw2"
	tcfs_unmount_b
	tcfs_mount_b -o "remote=unix:$(redis_sock r),remote_password_file=$TDIR/pw2"
	echo local >"$MNT_B/l.txt"
	[ "$(cat "$MNT_B/l.txt")" = local ]
	WAIT_S=10 wait_for grep -q "remote: down" "$TDIR/daemonB.log"
	[ "$(remote_stat "$MNT_B" connected)" = False ]
}

@test "a full queue drops changes and counts them; writers never wait" {
	two_nodes "remote_queue=4M,remote_timeout=200"
	redis_pause r
	random_file "$SRC/t" $((3 * 1024 * 1024))
	local i ms
	ms=$(elapsed_ms sh -c "for i in 1 2 3 4 5 6; do mkdir '$MNT'/q\$i && cp '$SRC/t' '$MNT'/q\$i/t; done")
	echo "six 3 MiB entries with Redis stopped: $ms ms"
	[ "$ms" -lt 5000 ]
	[ "$(remote_stat "$MNT" dropped)" -ge 1 ]
	redis_resume r
	WAIT_S=30 wait_for eval '[ "$(remote_stat "$MNT" queue_entries)" = 0 ]'
	for i in 1 2 3 4 5 6; do
		cmp "$SRC/t" "$MNT/q$i/t"
	done
}

@test "bad remote options fail at mount with a message naming them" {
	tcfs_unmount
	run "$TCACHEFS" "$STORE" "$MNT" -f -o remote=bogus://x
	[ "$status" -eq 1 ]
	[[ "$output" == *"bogus://x"* ]]
	run "$TCACHEFS" "$STORE" "$MNT" -f -o "remote=$(redis_url r),remote_timeout=0"
	[ "$status" -eq 1 ]
	[[ "$output" == *"remote_timeout"* ]]
	run "$TCACHEFS" "$STORE" "$MNT" -f -o "remote=$(redis_url r),remote_password_file=$TDIR/none"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$TDIR/none"* ]]
	run "$TCACHEFS" "$STORE" "$MNT" -f -o "remote=$(redis_url r),remote_mode=sideways"
	[ "$status" -eq 1 ]
	[[ "$output" == *"remote_mode"* ]]
	run "$TCACHEFS" "$STORE" "$MNT" -f -o remote_prefix=x
	[ "$status" -eq 1 ]
	[[ "$output" == *"remote=URL"* ]]
	run "$TCACHEFS" "$STORE" "$MNT" -f -o "remote=redis://127.0.0.1:0"
	[ "$status" -eq 1 ]
	[[ "$output" == *"port"* ]]
	run grep -qs " $MNT " /proc/mounts
	[ "$status" -eq 1 ]
	tcfs_mount
}
