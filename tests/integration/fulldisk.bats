#!/usr/bin/env bats
# fulldisk.bats - the disk under STORE fills up (a small tmpfs made for
# the test): writers get ENOSPC, never EIO; the daemon's log names the
# cause; nothing committed is lost, and once there is room again the
# store works and remounts with every committed byte.

load helpers

setup() {
	TDIR=$(mktemp -d "${TMPDIR:-/tmp}/tcfs-test.XXXXXX")
	DISK=$TDIR/disk
	STORE=$DISK/store
	MNT=$TDIR/mnt
	SRC=$TDIR/src
	mkdir -p "$DISK" "$MNT" "$SRC"
	mount -t tmpfs -o size=8M tcfs-full-disk "$DISK"
	tcfs_mount -o capacity=4M
}

teardown() {
	local rc=0
	cd /
	tcfs_unmount || rc=1     # the daemon first: it holds the disk
	if grep -qs " $DISK tmpfs" /proc/mounts; then
		umount "$DISK" || umount -l "$DISK" || rc=1
	fi
	tcfs_teardown || rc=1
	return $rc
}

# fill_disk: take every free byte of the disk under STORE
fill_disk() {
	dd if=/dev/zero of="$DISK/filler" bs=4k 2>/dev/null || true
	[ "$(df --output=avail -k "$DISK" | tail -1 | tr -d ' ')" -eq 0 ]
}

@test "a full store disk: writers get ENOSPC, the log names it, nothing committed is lost" {
	mkdir "$MNT/keep"
	random_file "$SRC/k" 100000
	cp "$SRC/k" "$MNT/keep/t"
	fill_disk
	MNT=$MNT "$PY" - <<'PYEOF'
import errno, os
MNT = os.environ['MNT']
errs = []
for i in range(40):
    p = '%s/keep/n%d' % (MNT, i)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, os.urandom(5000 + 300 * i))
        finally:
            os.close(fd)
    except OSError as e:
        errs.append(e.errno)
        assert not os.path.exists(p), p
for i in range(5):
    try:
        os.mkdir('%s/d%d' % (MNT, i))
    except OSError as e:
        errs.append(e.errno)
print('errors:', [errno.errorcode[e] for e in errs])
assert errs, 'the disk never filled'
assert set(errs) == {errno.ENOSPC}, errs
PYEOF
	grep "journal: " "$TDIR/daemon.log"
	grep -q "journal: No space left on device on tcfs-full-disk" "$TDIR/daemon.log"
	cmp "$SRC/k" "$MNT/keep/t"
	# room again: the store works, and every committed tensor is there
	rm "$DISK/filler"
	echo again >"$MNT/keep/after"
	tcfs_remount
	cmp "$SRC/k" "$MNT/keep/t"
	[ "$(cat "$MNT/keep/after")" = again ]
	for f in "$MNT"/keep/n*; do
		[ -e "$f" ] || continue
		# a tensor that is there was committed whole
		[ "$(stat -c %s "$f")" -ge 5000 ]
	done
}
