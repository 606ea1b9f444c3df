#!/usr/bin/env bats
# tcache.PageStore (tools/python/tcache/pagestore.py) against a real mount:
# each test runs one method of tests/python/test_pagestore.py on a fresh
# store (those about eviction on a 4 MiB one), and PageStore.put through a
# kill -9 of the daemon (tests/python/pages_crash.py).

load helpers

pytest_one() {
	TCACHE_MNT=$MNT PYTHONDONTWRITEBYTECODE=1 \
		"$PY" "$BATS_TEST_DIRNAME/../python/test_pagestore.py" \
		"PageStoreOnAMount.$1"
}

@test "PageStore put and get round trip bytes, numpy arrays and torch tensors" {
	"$PY" -c 'import torch'   # tools/test installs python3-torch: never skipped
	pytest_one test_put_get_round_trip_bytes_numpy_and_torch
}

@test "PageStore get reads into the caller's buffers; an absent page is None, a wrong size ValueError" {
	pytest_one test_get_reads_into_caller_buffers
}

@test "PageStore put skips the pages present" {
	pytest_one test_put_skips_present_pages
}

@test "PageStore exists, batch_exists, remove, and clear of its own pages only" {
	pytest_one test_exists_batch_exists_remove_clear
}

@test "PageStore match_prefix counts the leading pages present, exactly" {
	pytest_one test_match_prefix_counts_leading_pages
}

@test "PageStore match_prefix of a 1,000-page chain" {
	pytest_one test_match_prefix_of_a_thousand_pages
}

@test "PageStore namespaces isolate chains; none is SGLang's keys" {
	pytest_one test_a_namespace_isolates_chains
}

@test "PageStore page i's user.tcache.parent names page i-1 (prior for page 0)" {
	pytest_one test_parent_link_of_page_i_names_page_i_minus_1
}

@test "PageStore refuses bad input before writing anything" {
	pytest_one test_bad_input_is_refused_before_anything_is_written
}

@test "PageStore puts of one chain from 4 threads at once leave whole pages" {
	pytest_one test_puts_from_threads_at_once_leave_whole_pages
}

@test "PageStore clean removes the temporary files of writers that are gone" {
	pytest_one test_clean_removes_leftovers_of_writers_that_are_gone
}

@test "PageStore lock holds pages through eviction pressure; after release they go" {
	tcfs_remount -o capacity=4M
	pytest_one test_locked_pages_survive_eviction_and_go_after_release
}

@test "prefix-aware eviction: a chain read in order, then unrelated writes: the pages present are always a prefix" {
	tcfs_remount -o capacity=4M
	pytest_one test_prefix_aware_eviction_keeps_a_prefix
}

@test "batched get: one pin request per batch, hits and recency as opens, batch_exists counts probes" {
	tcfs_remount -o capacity=4M
	pytest_one test_batched_get_counts_pins_and_refreshes_like_opens
}

@test "batched pins hold pages against eviction until the block ends" {
	tcfs_remount -o capacity=4M
	pytest_one test_batch_pins_hold_pages_until_the_block_ends
}

@test "batches of many pages; pages in several pool runs and readers without pool access read the files" {
	tcfs_remount -o allow_other   # the unprivileged reader reaches the mount
	chmod 755 "$TDIR"
	pytest_one test_batches_of_many_pages_and_the_fallbacks
}

@test "staged puts: pages written into the pool, named in one record; several runs, and writers that may not, use files" {
	tcfs_remount -o capacity=4M -o allow_other   # the unprivileged writer reaches the mount
	chmod 755 "$TDIR"
	pytest_one test_staged_puts_write_the_pool_and_fall_back_to_files
}

# stage 16 pages of 64 KiB through a directory fd and wait (run with &)
stage_and_sleep() {
	PYTHONPATH=$BATS_TEST_DIRNAME/../../tools/python exec "$PY" - "$MNT" "$TDIR" <<'EOF'
import sys, time
from tcache import batch
m, t = sys.argv[1:3]
b = batch.Batch(m)
token, pool, items = batch._call(b._fd, batch._STAGE, count=16, sizes=[65536] * 16)
assert all(off is not None for _, off in items), items
with open(t + "/staged", "w") as f:
    f.write(pool.decode())
time.sleep(600)
EOF
}

@test "kill -9 between a put's STAGE and COMMIT: the writer's staged space comes back; the daemon's leaves nothing" {
	tcfs_remount -o capacity=4M
	head -c 100000 /dev/urandom >"$MNT/kept"
	used=$(stat_of used)
	stage_and_sleep &
	pid=$!
	wait_for test -s "$TDIR/staged"
	stat_is used $((used + 16 * 65536))
	[ "$(ls "$MNT")" = kept ]
	kill -9 "$pid"
	wait "$pid" || true
	wait_for stat_is used "$used"   # its directory closed with it
	rm -f "$TDIR/staged"
	stage_and_sleep &
	pid=$!
	wait_for test -s "$TDIR/staged"
	kill -9 "$DAEMON_PID"
	kill -9 "$pid"
	wait "$pid" || true
	remount_after_kill -o capacity=4M
	stat_is used "$used"
	[ "$(ls "$MNT")" = kept ]
	tcfs_unmount
	run "$TCACHE" fsck "$STORE"
	[ "$status" -eq 0 ]
}

# kill -9 mid-batch, the reader's side: a process holding pins
# (tcache.batch) dies inside its with-block (run with &: $! is python's)
pin_and_sleep() {
	PYTHONPATH=$BATS_TEST_DIRNAME/../../tools/python exec "$PY" - "$MNT" "$TDIR" <<'EOF'
import os, sys, time
from tcache.batch import Batch
m, t = sys.argv[1:3]
names = ["p%02d" % i for i in range(16)]
with Batch(m).pinned(names) as got:
    assert all(g and g[1] is not None for g in got), got
    with open(t + "/pinned", "w") as f:
        f.write("1")
    time.sleep(600)
EOF
}

# read batches of q00..q63 in a loop, checking every byte, until the mount
# goes; the count of batches read in $TDIR/batches
read_batches() {
	PYTHONPATH=$BATS_TEST_DIRNAME/../../tools/python exec "$PY" - "$MNT" "$TDIR" <<'EOF'
import os, sys
from tcache.batch import Batch
m, t = sys.argv[1:3]
names = ["q%02d" % i for i in range(64)]
b = Batch(m)
n = 0
while True:
    with b.pinned(names) as got:
        for i, (size, view) in enumerate(got):
            assert size == 16384 and bytes(view) == bytes([i]) * 16384, i
    n += 1
    with open(t + "/batches.new", "w") as f:
        f.write(str(n))
    os.replace(t + "/batches.new", t + "/batches")
EOF
}

batches_at_least() { [ -s "$TDIR/batches" ] && [ "$(cat "$TDIR/batches")" -ge "$1" ]; }

@test "kill -9 mid-batch: a reader's pins go with it; a daemon killed between batches leaves every page whole" {
	tcfs_remount -o capacity=4M
	for i in $(seq -w 0 15); do head -c 65536 /dev/urandom >"$MNT/p$i"; done
	pin_and_sleep &
	pid=$!
	wait_for test -s "$TDIR/pinned"
	# 8 MiB through 4 MiB: everything else goes, the pinned pages stay
	for i in $(seq 128); do head -c 65536 /dev/zero >"$MNT/a$i"; done
	[ ! -e "$MNT/a1" ]
	[ "$(ls "$MNT" | grep -c '^p')" -eq 16 ]
	kill -9 "$pid"
	wait "$pid" || true
	# its directory closed with it: the pins are gone, the pages evictable
	for i in $(seq 128); do head -c 65536 /dev/zero >"$MNT/b$i"; done
	[ "$(ls "$MNT" | grep -c '^p' || true)" -eq 0 ]
	rm -f "$MNT"/[ab]*
	# the daemon's side: killed while a reader pins and reads batches
	for i in $(seq 0 63); do
		printf -v n q%02d "$i"
		head -c 16384 /dev/zero | tr '\0' "\\$(printf %03o "$i")" >"$MNT/$n"
	done
	read_batches >"$TDIR/reader.log" 2>&1 &
	pid=$!
	WAIT_S=60 wait_for batches_at_least 20
	kill -9 "$DAEMON_PID"
	wait "$pid" && rc=0 || rc=$?
	tail -2 "$TDIR/reader.log"
	[ "$rc" -ne 0 ]
	grep -Eq 'Errno (103|107)|Transport endpoint|Software caused' "$TDIR/reader.log"
	remount_after_kill -o capacity=4M
	for i in $(seq 0 63); do
		printf -v n q%02d "$i"
		[ "$(od -An -tu1 -v "$MNT/$n" | tr -s ' \n' '\n' | grep -v '^$' | sort -u)" = "$i" ]
		[ "$(stat -c %s "$MNT/$n")" -eq 16384 ]
	done
}

# the writer has begun at least $1 chains (or has ended)
chains_begun_or_gone() {
	[ -s "$TDIR/progress" ] && [ "$(cat "$TDIR/progress")" -ge "$1" ] && return 0
	kill -0 "$2" 2>/dev/null && return 1
	return 0
}

@test "kill -9 during PageStore.put: every page present is whole with its parent link, chains are prefixes" {
	tcfs_remount -o capacity=16M
	# 40 pages of 16 KiB a chain: 60 chains are 37.5 MiB through 16 MiB,
	# so the kill lands while puts also evict
	PYTHONDONTWRITEBYTECODE=1 "$PY" "$BATS_TEST_DIRNAME/../python/pages_crash.py" \
		put "$MNT" "$TDIR/progress" >"$TDIR/put.log" 2>&1 &
	pid=$!
	WAIT_S=120 wait_for chains_begun_or_gone 60 "$pid"
	kill -9 "$DAEMON_PID"
	wait "$pid" && rc=0 || rc=$?
	echo "the writer exited with $rc after $(cat "$TDIR/progress") chains; its last words:"
	tail -3 "$TDIR/put.log"
	# it was putting when the daemon died, and died of that
	[ "$rc" -eq 1 ]
	grep -Eq 'Errno (103|107)' "$TDIR/put.log"
	[ "$(cat "$TDIR/progress")" -ge 60 ]
	remount_after_kill -o capacity=16M
	PYTHONDONTWRITEBYTECODE=1 "$PY" "$BATS_TEST_DIRNAME/../python/pages_crash.py" \
		check "$MNT" "$TDIR/progress"
}
