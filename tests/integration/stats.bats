#!/usr/bin/env bats
# stats.bats - the counters of a cache through a mount: probes (lookups
# of top-level names), hits (opens of stored tensors for reading), misses
# (lookups of top-level names that were not there and were not made
# within 2 s), and that a remount keeps them.
#
# What reaches the daemon is what the kernel asks: it keeps a name it
# found (an hour) and asks again for a name it did not find, every time.

load helpers

: "${TCACHE:?TCACHE must name the tcache tool}"

# counters KEY...: those numbers of the stats file, on one line
counters() {
	"$PY" - "$MNT/.tcache-stats" "$@" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(" ".join(str(s[k]) for k in sys.argv[2:]))
EOF
}

# counters_are KEY VALUE
counters_are() {
	[ "$(counters "$1")" = "$2" ]
}

@test "writes then reads: a probe per new name, a hit per open, no misses" {
	local i
	for i in $(seq 50); do
		mkdir "$MNT/e$i"
		head -c 4096 /dev/urandom >"$MNT/e$i/t"
	done
	for i in $(seq 20); do
		echo "$i" >"$MNT/f$i"
	done
	for i in $(seq 50); do
		cat "$MNT/e$i/t" >/dev/null
	done
	for i in $(seq 20); do
		cat "$MNT/f$i" >/dev/null
	done
	# each new name: one lookup (absent) before its mkdir or create; the
	# reads find their names in the kernel's cache
	[ "$(counters probes hits misses)" = "70 70 0" ]
	# the close counts every lookup still waiting: none was
	tcfs_remount
	[ "$(counters probes hits misses)" = "70 70 0" ]
	# a fresh mount knows no name: each read looks its name up once
	cat "$MNT/e1/t" "$MNT/f1" "$MNT/e1/t" >/dev/null
	[ "$(counters probes hits misses)" = "72 73 0" ]
}

@test "lookups of names never made are misses once 2 s are over; a write's check is not" {
	local i
	mkdir "$MNT/e"
	echo x >"$MNT/e/t"
	for i in 1 2 3; do
		cat "$MNT/e/t" >/dev/null
	done
	# writes that check first, then make the name: in the shell, in
	# Python, and onto the name by a rename
	[ -e "$MNT/w1" ] || mkdir "$MNT/w1"
	"$PY" -c 'import os, sys; p = sys.argv[1]; os.path.exists(p) or os.makedirs(p)' "$MNT/w2"
	echo y >"$MNT/tmp.w3"
	"$PY" -c 'import os, sys; a, b = sys.argv[1:3]; os.path.exists(b) or os.rename(a, b)' \
		"$MNT/tmp.w3" "$MNT/w3"
	[ -d "$MNT/w1" ]
	[ -d "$MNT/w2" ]
	[ -f "$MNT/w3" ]
	# ten names looked for and never made
	for i in $(seq 10); do
		[ ! -e "$MNT/nope$i" ]
	done
	# probes: e 1, w1 2 (test, mkdir), w2 2 (exists, mkdir), tmp.w3 1,
	# w3 2 (exists, rename), nope* 10
	[ "$(counters probes hits)" = "18 3" ]
	# counted once their window (2 s) is over: poll, at most 10 s
	WAIT_S=10 wait_for counters_are misses 10
	[ "$(counters probes hits misses hit_rate)" = "18 3 10 0.23076923076923078" ]
	# a name made after its window stays a miss
	mkdir "$MNT/nope1"
	[ "$(counters probes misses)" = "19 10" ]
	run "$TCACHE" stats "$MNT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"probes        19 "* ]]
	[[ "$output" == *"hits          3, misses 10, hit rate 23.1%"* ]]
	tcfs_remount
	[ "$(counters probes hits misses)" = "19 3 10" ]
	# a stopped store reads the same numbers
	tcfs_unmount
	run "$TCACHE" stats --json "$STORE"
	[ "$status" -eq 0 ]
	"$PY" -c 'import json, sys; s = json.loads(sys.argv[1]); assert (s["probes"], s["hits"], s["misses"]) == (19, 3, 10), s' "$output"
	tcfs_mount
}
