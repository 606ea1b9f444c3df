#!/usr/bin/env bats
# stress.bats - concurrency through the mount: 8 writers and 8 readers
# with a capacity that keeps eviction running (tests/crash/mount_stress.c),
# for TC_STRESS_SECONDS (default 30): every byte read is checked, only
# ENOSPC (and ENOENT for an entry that was evicted) may fail, it ends in
# time (no deadlock), and the daemon exits cleanly on unmount with no
# sanitizer report (helpers.bash's teardown).  Plus two small
# deterministic checks of what readers see while a tensor is replaced.

load helpers

: "${MOUNT_STRESS:?MOUNT_STRESS must name tests/crash/mount_stress}"

@test "8 writers, 8 readers, constant eviction: every byte right, no deadlock, clean exit" {
	secs=${TC_STRESS_SECONDS:-30}
	tcfs_remount -o capacity=32M
	# a deadlock shows as the timeout's status 124
	run timeout -k 10 $((secs + 120)) "$MOUNT_STRESS" --mnt "$MNT" \
		--seconds "$secs" --writers 8 --readers 8
	echo "$output"
	[ "$status" -ne 124 ] || { echo "mount_stress did not end: deadlock"; false; }
	[ "$status" -eq 0 ]
	grep -q 'mismatches=0 unexpected=0 ' <<<"$output"

	num() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$output" | head -1; }
	made=$(sed -n 's/^writers: entries=\([0-9]*\).*/\1/p' <<<"$output")
	left=$(num entries_left)
	reads=$(sed -n 's/^readers: files=\([0-9]*\).*/\1/p' <<<"$output")
	files=$(sed -n 's/^writers: .* files=\([0-9]*\).*/\1/p' <<<"$output")
	echo "entries made $made, left $left; files written $files, read $reads"
	[ "$files" -gt 100 ]
	[ "$reads" -gt 100 ]
	[ "$left" -lt "$made" ]      # eviction ran
	[ "$left" -gt 0 ]

	# the daemon is fine afterwards: it answers, stays within capacity,
	# and what it holds is intact after a clean unmount and a remount
	[ "$(du_kb)" -le $((32 * 1024)) ]
	tcfs_unmount
	tcfs_mount
	"$PY" - "$MNT" <<'EOF'
import os, struct, sys
mnt = sys.argv[1]
n = 0
for e in os.listdir(mnt):
    for f in os.listdir(os.path.join(mnt, e)):
        if not f.startswith("f"):
            continue
        d = open(os.path.join(mnt, e, f), "rb").read()
        magic, seed, length = struct.unpack_from("<QQQ", d)
        assert magic == 0x3148534152434354 and length == len(d), (e, f)
        n += 1
print("files intact after remount:", n)
assert n > 0
EOF
}

@test "fstat of an open tensor works after unlink and rename over" {
	mkdir "$MNT/e"
	echo hello >"$MNT/e/a"
	echo hello >"$MNT/e/b"
	echo world! >"$MNT/e/c"
	"$PY" - "$MNT/e" <<'EOF'
import os, sys
e = sys.argv[1]
f = open(os.path.join(e, "a"), "rb")
os.unlink(os.path.join(e, "a"))
st = os.fstat(f.fileno())            # a local fs: works, st_nlink 0
assert st.st_size == 6, st
assert f.read() == b"hello\n"
g = open(os.path.join(e, "b"), "rb")
os.rename(os.path.join(e, "c"), os.path.join(e, "b"))   # rsync, mv
st = os.fstat(g.fileno())
assert st.st_size == 6, st
assert g.read() == b"hello\n"
assert open(os.path.join(e, "b"), "rb").read() == b"world!\n"
EOF
}

@test "a tensor rewritten in place (cp over it): readers keep the old bytes until close()" {
	# In-place rewrites are atomic against crashes (kill.bats).  Readers
	# never see the unfinished version's bytes: the rewrite bypasses the
	# page cache and the size stays the committed one until close().  (A
	# rewrite that makes the file longer can show overlapping readers
	# zeros past their version's end: README, the contract.)
	mkdir "$MNT/e"
	"$PY" - "$MNT/e/t" <<'EOF'
import os, sys
p = sys.argv[1]
n = 3 << 20
A, B = b"A" * n, b"B" * n
with open(p, "wb") as f:
    f.write(A)
early = open(p, "rb")                  # opened before the rewrite
assert early.read(4096) == A[:4096]
w = open(p, "wb")                      # O_TRUNC, as cp over does
for off in range(0, n, 65536):
    w.write(B[off:off + 65536])
    if off % (1 << 20) == 0:
        w.flush()                      # the bytes reach the daemon
        assert os.stat(p).st_size == n
        during = open(p, "rb").read()  # opened during the rewrite
        assert during == A, (len(during), during[:1], during[-1:])
assert early.read() == A[4096:]        # the early reader: all old
w.close()                              # the commit
assert open(p, "rb").read() == B       # an open after close(): all new
early.close()
EOF
}

@test "a tensor replaced by rename (rsync) reads old or new, never a mix" {
	mkdir "$MNT/e"
	"$PY" - "$MNT/e" <<'EOF'
import os, sys, threading, time
e = sys.argv[1]
p = os.path.join(e, "t")
sizes = [1 << 20, (1 << 20) + 8000, 600000]
def content(i):
    return b"%08d" % i * (sizes[i % 3] // 8)
with open(p, "wb") as f:
    f.write(content(0))
stop = time.monotonic() + 5
stats = {"writes": 0, "reads": 0, "bad": 0}
def writer():
    i = 1
    while time.monotonic() < stop:
        data = content(i)
        tmp = os.path.join(e, ".t.tmp")
        with open(tmp, "wb") as f:
            for off in range(0, len(data), 65536):
                f.write(data[off:off + 65536])
        os.rename(tmp, p)
        stats["writes"] += 1
        i += 1
def reader():
    while time.monotonic() < stop:
        with open(p, "rb") as f:
            d = f.read()
        stats["reads"] += 1
        if len(d) < 8 or d != d[:8] * (len(d) // 8) or \
           len(d) != sizes[int(d[:8]) % 3]:
            stats["bad"] += 1
ts = [threading.Thread(target=writer)]
ts += [threading.Thread(target=reader) for _ in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(stats)
assert stats["writes"] > 5 and stats["reads"] > 50
assert stats["bad"] == 0
EOF
}
