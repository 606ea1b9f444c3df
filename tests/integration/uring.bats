#!/usr/bin/env bats
# uring.bats - -o uring=on: requests served over io_uring, each on the CPU
# that made it (fs/uring.c), with every byte back as through /dev/fuse.
#
# The kernel offers FUSE over io_uring only while its global switch
# /sys/module/fuse/parameters/enable_uring is Y (root).  This file turns
# it on for its tests and puts back what it was, even when one fails;
# the integration tests run one file at a time, so no other mount sees
# the switch (and a mount without -o uring=on would not use it anyway).

load helpers

: "${TCACHE:?TCACHE must name the tcache tool}"

SWITCH=/sys/module/fuse/parameters/enable_uring

setup_file() {
	[ -w "$SWITCH" ] || {
		echo "# $SWITCH is missing or not writable: this kernel has no" \
			"FUSE over io_uring, or this is not root" >&3
		return 1
	}
	cat "$SWITCH" >"$BATS_FILE_TMPDIR/switch.was"
	echo Y >"$SWITCH"
}

teardown_file() {
	if [ -s "$BATS_FILE_TMPDIR/switch.was" ]; then
		cat "$BATS_FILE_TMPDIR/switch.was" >"$SWITCH"
	fi
}

setup() {
	TCFS_OPTS="-o uring=on"
	tcfs_setup
}
teardown() { tcfs_teardown; }

# uring_of KEY: a member of the stats file's "uring" object, as JSON
uring_of() {
	"$PY" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["uring"][sys.argv[2]]))' \
		"$MNT/.tcache-stats" "$1"
}

@test "-o uring=on: every queue registered, requests come through the rings, bytes come back" {
	[ "$(uring_of on)" = true ]
	queues=$(uring_of queues)
	[ "$queues" -ge 1 ]
	[ "$(uring_of threads)" -ge "$queues" ]
	[ "$(uring_of registered)" = "$(uring_of threads)" ]
	grep -q "requests come over io_uring" "$TDIR/daemon.log"
	"$TCACHE" stats "$MNT" | grep -Eq "^io_uring +on: $queues queues, [0-9]+ requests \(per CPU: [0-9]"
	before=$(uring_of requests)

	# sizes around the buffers: empty, one byte, a page less one, the
	# 1 MiB payload and past it, many requests
	mkdir "$MNT/e"
	for size in 0 1 4095 1048576 1048579 5000000; do
		random_file "$SRC/f$size" "$size"
		cp "$SRC/f$size" "$MNT/e/f$size"
	done
	echo 3 >/proc/sys/vm/drop_caches
	for size in 0 1 4095 1048576 1048579 5000000; do
		cmp "$SRC/f$size" "$MNT/e/f$size"
	done
	# a mapping, a rename, an unlink, a truncate, xattrs, a big listing
	"$PY" -c '
import mmap, sys
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "rb") as g:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    assert m[:] == g.read()
' "$MNT/e/f5000000" "$SRC/f5000000"
	mv "$MNT/e/f1" "$MNT/e/g1"
	cmp "$SRC/f1" "$MNT/e/g1"
	rm "$MNT/e/f4095"
	[ ! -e "$MNT/e/f4095" ]
	truncate -s 1000 "$MNT/e/f1048576"
	cmp -n 1000 "$SRC/f1048576" "$MNT/e/f1048576"
	[ "$(stat -c %s "$MNT/e/f1048576")" = 1000 ]
	mkdir "$MNT/p" "$MNT/c"
	setfattr -n user.tcache.parent -v p "$MNT/c"
	[ "$(getfattr --only-values -n user.tcache.parent "$MNT/c")" = p ]
	mkdir "$MNT/many"
	for i in $(seq 1 600); do : >"$MNT/many/name-with-some-length-$i"; done
	[ "$(ls "$MNT/many" | wc -l)" = 600 ]
	[ "$(uring_of requests)" -gt $((before + 600)) ]

	# all of it again after a remount, from the pool
	tcfs_remount
	[ "$(uring_of on)" = true ]
	cmp "$SRC/f5000000" "$MNT/e/f5000000"
	cmp "$SRC/f1048579" "$MNT/e/f1048579"
	cmp "$SRC/f1" "$MNT/e/g1"
	[ "$(ls "$MNT/many" | wc -l)" = 600 ]
}

@test "a request is served from the queue of the CPU its caller runs on" {
	mkdir "$MNT/e"
	for i in $(seq 1 50); do echo "$i" >"$MNT/e/t$i"; done
	[ "$(uring_of queues)" -ge 2 ] || {
		echo "# one CPU: nothing to tell apart" >&3
		return 1
	}
	last=$(( $(nproc) - 1 ))
	before=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["uring"]["by_queue"][int(sys.argv[2])])' "$MNT/.tcache-stats" "$last")
	# 200 opens and stats from a process that only runs on the last CPU
	taskset -c "$last" "$PY" -c '
import os, sys
for k in range(4):
    for i in range(1, 51):
        fd = os.open("%s/e/t%d" % (sys.argv[1], i), os.O_RDONLY)
        os.close(fd)
' "$MNT"
	after=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["uring"]["by_queue"][int(sys.argv[2])])' "$MNT/.tcache-stats" "$last")
	echo "# queue $last: $before -> $after" >&3
	[ "$after" -ge $((before + 200)) ]
}

@test "a CPU's requests are served in order: np.load(mmap_mode=r) right after each rewrite" {
	mkdir "$MNT/e"
	# each load's close(2) sends a RELEASE; the next rewrite's opens must
	# not overtake it, or the load after it bypasses the page cache and
	# its mmap() fails (ENODEV)
	taskset -c 0 "$PY" - "$MNT/e/x.npy" <<'EOF'
import numpy as np, sys
p = sys.argv[1]
for i in range(60):
    np.save(p, np.full((64, 1024), i, dtype=np.int16))
    for _ in range(2):
        got = np.load(p, mmap_mode="r")
        assert got[0, 0] == i and got[63, 1023] == i, (i, got[0, 0])
        del got
EOF
}

@test "PageStore over io_uring: staged puts, batched gets, the plain-file pattern" {
	"$PY" - "$MNT" "$BATS_TEST_DIRNAME/../../tools/python" <<'EOF'
import os, sys
sys.path.insert(0, sys.argv[2])
import numpy as np
from tcache import PageStore
st = PageStore(sys.argv[1], 16, suffix=".kv", links=True)
toks = list(range(16 * 200))
keys = st.keys_for(toks)
pages = [np.full(65536, i % 251, dtype=np.uint8) for i in range(200)]
for i in range(0, 200, 64):
    st.put(toks[16 * i:16 * (i + 64)], pages[i:i + 64],
           prior=keys[i - 1] if i else None)
assert st.batch_exists(keys) == 200
outs = [np.empty(65536, dtype=np.uint8) for _ in range(200)]
st.get(keys, out=outs)
for i in range(200):
    assert (outs[i] == i % 251).all(), i
for i, k in enumerate(keys):
    with open(st.page_path(k), "rb") as f:
        b = np.empty(65536, dtype=np.uint8)
        assert f.readinto(b) == 65536
        assert (b == i % 251).all(), i
EOF
}

@test "kill -9 of the daemon under traffic over io_uring: the mount goes, nothing hangs, nothing is lost" {
	mkdir "$MNT/e"
	random_file "$SRC/keep" 3000000
	cp "$SRC/keep" "$MNT/e/keep"
	sync "$MNT/e/keep"
	"$PY" - "$MNT" <<'EOF' &
import os, sys
i = 0
while True:
    try:
        with open("%s/e/w%d" % (sys.argv[1], i % 50), "wb") as f:
            f.write(os.urandom(200000))
        with open("%s/e/keep" % sys.argv[1], "rb") as f:
            f.read()
    except OSError:
        break
    i += 1
EOF
	writer=$!
	wait_for eval '[ -e "$MNT/e/w20" ]'
	kill -9 "$DAEMON_PID"
	# the writer sees the mount go instead of hanging
	WAIT_S=20 wait_for eval '! kill -0 $writer 2>/dev/null'
	wait "$writer" || true
	remount_after_kill
	[ "$(uring_of on)" = true ]
	cmp "$SRC/keep" "$MNT/e/keep"
	tcfs_unmount
	run "$TCACHE" fsck "$STORE"
	echo "$output"
	[ "$status" -eq 0 ]
	tcfs_mount
}

@test "SIGTERM and fusermount3 -u with callers waiting: a clean stop" {
	mkdir "$MNT/e"
	for i in $(seq 1 20); do random_file "$MNT/e/f$i" 100000; done
	for j in 1 2 3 4; do
		( for r in $(seq 1 200); do cat "$MNT"/e/f* >/dev/null 2>&1 || break; done ) &
	done
	sleep 0.2
	WAIT_S=30 stop_daemon TERM
	wait
	tcfs_mount
	[ "$(uring_of on)" = true ]
	for j in 1 2 3 4; do
		( for r in $(seq 1 200); do ls -l "$MNT"/e >/dev/null 2>&1 || break; done ) &
	done
	sleep 0.2
	tcfs_unmount
	wait
	tcfs_mount
}

@test "-o uring=on when the kernel does not offer it: served through /dev/fuse; the stats say why" {
	tcfs_unmount
	echo N >"$SWITCH"
	tcfs_mount
	[ "$(uring_of on)" = false ]
	uring_of why | grep -q enable_uring
	"$TCACHE" stats "$MNT" | grep -q "^io_uring      off: the kernel does not offer it"
	mkdir "$MNT/e"
	random_file "$SRC/a" 2000000
	cp "$SRC/a" "$MNT/e/a"
	cmp "$SRC/a" "$MNT/e/a"
	echo Y >"$SWITCH"
}

@test "-o uring: a bad value is refused; without it the stats have no uring object" {
	tcfs_unmount
	run "$TCACHEFS" "$STORE" "$MNT" -o uring=maybe
	[ "$status" -eq 1 ]
	[[ "$output" == *"bad uring 'maybe': on or off"* ]]
	run is_mounted
	[ "$status" -ne 0 ]
	TCFS_OPTS=
	tcfs_mount
	run "$PY" -c 'import json, sys; sys.exit("uring" in json.load(open(sys.argv[1])))' "$MNT/.tcache-stats"
	[ "$status" -eq 0 ]
	"$TCACHEFS" --help | grep -q "uring=on|off"
}
