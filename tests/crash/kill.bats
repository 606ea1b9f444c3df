#!/usr/bin/env bats
# kill.bats - kill -9 of the daemon at chosen moments (run-crash does it at
# random ones): what close(), rename() and a meta.json write returned 0
# for survives; a write in progress is absent (new tensor) or the old
# bytes (rewrite), never torn; a closed handle's late release commits
# nothing of a newer writer.  Each test: python does the steps and kills
# the daemon itself at the exact point, then the store is remounted.

load ../integration/helpers

# py STATEMENTS: run python with MNT, PID (the daemon) and kill9() defined
py() {
	MNT=$MNT PID=$DAEMON_PID "$PY" -c "
import mmap, os, sys, time
MNT = os.environ['MNT']
def kill9():
    os.kill(int(os.environ['PID']), 9)
$1"
}

@test "kill -9 after close(): the tensor is there, byte for byte" {
	# A dup() of the descriptor stays open across the kill: close() sends
	# FLUSH but no RELEASE reaches the daemon, so the commit must be the
	# FLUSH's (durability at close, not at the last reference's release).
	random_file "$SRC/a" 3000001
	mkdir "$MNT/e"
	py "
data = open('$SRC/a', 'rb').read()
fd = os.open(MNT + '/e/t', os.O_WRONLY | os.O_CREAT)
os.write(fd, data)
kept = os.dup(fd)   # the file stays open until after the kill
os.close(fd)        # returned 0: committed
kill9()
"
	remount_after_kill
	cmp "$SRC/a" "$MNT/e/t"
}

@test "kill -9 during a write: a new tensor is absent, a rewrite leaves the old bytes" {
	random_file "$SRC/old" 1000000
	mkdir "$MNT/e"
	cp "$SRC/old" "$MNT/e/rewritten"
	py "
fd = os.open(MNT + '/e/new', os.O_WRONLY | os.O_CREAT)
os.write(fd, b'x' * 500000)
fd2 = os.open(MNT + '/e/rewritten', os.O_WRONLY | os.O_TRUNC)
os.write(fd2, b'y' * 300000)
kill9()
"
	remount_after_kill
	[ ! -e "$MNT/e/new" ]
	cmp "$SRC/old" "$MNT/e/rewritten"
	[ "$(ls "$MNT/e")" = rewritten ]
}

@test "kill -9 after rename over and meta.json writes: both are there" {
	mkdir "$MNT/a" "$MNT/b"
	head -c 24 /dev/zero >"$MNT/a/t"
	echo old >"$MNT/b/t"
	py "
os.rename(MNT + '/a/t', MNT + '/b/t')
with open(MNT + '/b/meta.json', 'w') as f:
    f.write('{\"__tcache__\": {\"tensors\": {\"t\": {\"dtype\": \"float32\", \"shape\": [2, 3]}},'
            ' \"attrs\": {\"k\": 1}}, \"mine\": [1.50]}')
os.rename(MNT + '/a', MNT + '/c')
kill9()
"
	remount_after_kill
	[ ! -e "$MNT/a" ]
	[ -d "$MNT/c" ]
	[ "$(stat -c %s "$MNT/b/t")" -eq 24 ]
	"$PY" - "$MNT/b/meta.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
m = doc["__tcache__"]
assert m["tensors"]["t"]["dtype"] == "float32", m
assert m["tensors"]["t"]["shape"] == [2, 3], m
assert m["attrs"] == {"k": 1}, m
assert doc["mine"] == [1.5], doc
EOF
}

@test "a closed handle's late release commits nothing of a newer writer" {
	# The release of a closed handle reaches the daemon when the last
	# reference goes, here the munmap of a read-only mapping.  Meanwhile
	# a rewrite (open O_TRUNC, like cp over it) has begun.  Neither a
	# reader nor a crash may see that unfinished rewrite.
	mkdir "$MNT/e"
	py "
p = MNT + '/e/t'
fd = os.open(p, os.O_RDWR | os.O_CREAT)
os.write(fd, b'old version, committed\n' * 200)
m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ)
os.close(fd)                  # flush: committed, close() returned 0
fd2 = os.open(p, os.O_WRONLY | os.O_TRUNC)
os.write(fd2, b'NEW')         # a rewrite begins, not closed
m.close()                     # munmap: RELEASE of the first handle
seen = open(p, 'rb').read()
print('a reader sees %d bytes: %r' % (len(seen), seen[:24]))
kill9()
"
	remount_after_kill
	[ "$(stat -c %s "$MNT/e/t")" -eq 4600 ]
	[ "$(head -c 22 "$MNT/e/t")" = "old version, committed" ]
}

@test "a file sized and written through a shared mapping (torch.from_file, TensorDict) is committed at munmap: a kill -9 before leaves it absent or old, never zeros" {
	mkdir "$MNT/e"
	py "
import mmap
def mapped(p, data, done):
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)   # torch.from_file(shared=True)
    os.ftruncate(fd, len(data))
    m = mmap.mmap(fd, len(data), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    os.close(fd)                 # flush: nothing written yet
    m[:] = data
    if done:
        m.close()                # munmap: released, committed
    return m
mapped(MNT + '/e/done.memmap', b'D' * 10000, True)
with open(MNT + '/e/old.memmap', 'wb') as f:
    f.write(b'O' * 5000)
# (no msync: that is an fsync, which commits what is there)
keep = [mapped(MNT + '/e/new.memmap', b'N' * 10000, False),
        mapped(MNT + '/e/old.memmap', b'R' * 5000, False)]
kill9()
"
	remount_after_kill
	[ "$(head -c 10000 "$MNT/e/done.memmap" | tr -d D | wc -c)" -eq 0 ]
	[ "$(stat -c %s "$MNT/e/done.memmap")" -eq 10000 ]
	[ ! -e "$MNT/e/new.memmap" ]
	[ "$(cat "$MNT/e/old.memmap" | tr -d O | wc -c)" -eq 0 ]
	[ "$(stat -c %s "$MNT/e/old.memmap")" -eq 5000 ]
}

@test "kill -9 of an idle daemon a few seconds after a read keeps its recency" {
	# One open is kept back from the journal for up to a second; the
	# daemon writes it then even when no request comes (its notifier
	# thread ticks the store once a second).  After the read, "old" is
	# the most recent entry, though it was written first.
	mkdir "$MNT/old" "$MNT/new"
	head -c 4096 /dev/zero >"$MNT/old/t"
	head -c 4096 /dev/zero >"$MNT/new/t"
	cat "$MNT/old/t" >/dev/null
	sleep 3
	kill -9 "$DAEMON_PID"
	remount_after_kill
	"$PY" - "$MNT" <<'PYEOF'
import json, sys
m = sys.argv[1]
old = json.load(open(m + "/old/meta.json"))["__tcache__"]["last_access"]
new = json.load(open(m + "/new/meta.json"))["__tcache__"]["last_access"]
print("old", old, "new", new)
assert old > new, "the read of old was lost"
PYEOF
}

@test "kill -9 while checkpoints are written by child processes: every closed file is there" {
	# journal_slack=4K: a checkpoint starts every few commits, so kills
	# land while a child writes one, at a switch, and between; the child
	# dies with the daemon and leaves no journal.new behind
	for round in 1 2 3 4 5; do
		tcfs_unmount
		tcfs_mount -o journal_slack=4K
		py "
import random
random.seed($round)
os.makedirs(MNT + '/r$round', exist_ok=True)
stop = random.randrange(50, 400)
for i in range(stop):
    with open(MNT + '/r$round/t%d' % i, 'w') as f:
        f.write('$round.%d' % i)
def children():
    kids = []
    for p in os.listdir('/proc'):
        try:
            st = open('/proc/%s/stat' % p).read()
        except (OSError, ValueError):
            continue
        if p.isdigit() and st[st.rindex(')') + 2:].split()[1] == os.environ['PID']:
            kids.append(p)
    return kids
kids = children()     # the watchdog, and a checkpoint's child if one runs
kill9()
print(stop, file=open('$TDIR/stop$round', 'w'))
def alive(k):
    try:
        return open('/proc/%s/stat' % k).read().split(') ')[1][0] != 'Z'
    except OSError:
        return False
for _ in range(500):  # they die with the daemon
    kids = [k for k in kids if alive(k)]
    if not kids:
        break
    time.sleep(0.01)
assert not kids, 'outlived the daemon: %s' % kids
"
		remount_after_kill -o journal_slack=4K
		for r in $(seq "$round"); do
			n=$(cat "$TDIR/stop$r")
			for ((i = 0; i < n; i++)); do
				[ "$(cat "$MNT/r$r/t$i")" = "$r.$i" ] || {
					echo "# r$r/t$i lost" >&3
					return 1
				}
			done
		done
	done
}
