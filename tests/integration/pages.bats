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
