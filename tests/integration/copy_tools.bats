#!/usr/bin/env bats
# copy_tools.bats - the everyday file tools against a mounted cache:
# cp -r, rsync -a, tar, cp -a, mv, rm, overwrite/append/truncate.

load helpers

@test "cp -r of a tree is identical, also after unmount and remount" {
	make_tree "$SRC/tree"
	cp -r "$SRC/tree" "$MNT/key"
	same_tree "$SRC/tree" "$MNT/key"
	# every size made it, including the empty files
	[ "$(stat -c %s "$MNT/key/s0")" -eq 0 ]
	[ "$(stat -c %s "$MNT/key/s9m")" -eq 9000001 ]
	[ "$(stat -c %s "$MNT/key/group/nested/n65536")" -eq 65536 ]
	[ -d "$MNT/key/group/nested" ]

	tcfs_remount
	same_tree "$SRC/tree" "$MNT/key"
	# and once more, read cold from a fresh mount
	cmp "$SRC/tree/s1m3" "$MNT/key/s1m3"
}

@test "after a remount a small tensor's bytes come with its open: no READ request, the same bytes" {
	mkdir "$MNT/e"
	for i in 1 2 3; do
		random_file "$SRC/s$i" $((i * 300000))
		cp "$SRC/s$i" "$MNT/e/s$i"
	done
	random_file "$SRC/big" 3000000
	cp "$SRC/big" "$MNT/e/big"
	: >"$SRC/empty"
	cp "$SRC/empty" "$MNT/e/empty"
	tcfs_unmount
	tcfs_mount -d -o loglevel=debug
	for f in s1 s2 s3 empty; do cmp "$SRC/$f" "$MNT/e/$f"; done
	[ "$(grep -c "opcode: OPEN" "$TDIR/daemon.log")" -eq 4 ]
	run grep -c "opcode: READ " "$TDIR/daemon.log"
	[ "$output" = 0 ]
	# a second pass finds them cached; a tensor over 1 MiB is read as before
	for f in s1 s2 s3; do cmp "$SRC/$f" "$MNT/e/$f"; done
	cmp "$SRC/big" "$MNT/e/big"
	run grep -c "opcode: READ " "$TDIR/daemon.log"
	[ "$output" -ge 1 ]
	# rewritten in this mount: its next reader is not sent bytes that
	# may differ from what the writer left in the page cache
	random_file "$SRC/s1" 200000
	cp "$SRC/s1" "$MNT/e/s1"
	cmp "$SRC/s1" "$MNT/e/s1"
	"$PY" -c 'import mmap, sys
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "rb") as g:
    assert mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)[:] == g.read()' "$MNT/e/s1" "$SRC/s1"
}

@test "cp -r of several entries at once, then ls and du" {
	make_tree "$SRC/a"
	mkdir "$SRC/b"
	random_file "$SRC/b/x" 12345
	cp -r "$SRC/a" "$SRC/b" "$MNT/"
	same_tree "$SRC/a" "$MNT/a"
	same_tree "$SRC/b" "$MNT/b"
	[ "$(ls "$MNT" | tr '\n' ' ')" = "a b " ]
	# du counts pool blocks: at least the bytes, at most bytes + a block each
	kb=$(du_kb)
	[ "$kb" -ge $(( (9000001 + 1048579) / 1024 )) ]
	[ "$kb" -le $(( (9000001 + 1048579 + 12345 + 65536 + 3 * 4097 + 2 * 4096) / 1024 + 16 * 4 )) ]
}

@test "rsync -a into the mount, and again after changing one file" {
	make_tree "$SRC/tree"
	touch -d '2001-02-03 04:05:06' "$SRC/tree/s4096"
	chmod 0600 "$SRC/tree/s4095"
	rsync -a "$SRC/tree/" "$MNT/r/"
	same_tree "$SRC/tree" "$MNT/r"
	[ "$(stat -c %Y "$MNT/r/s4096")" = "$(stat -c %Y "$SRC/tree/s4096")" ]
	[ "$(stat -c %a "$MNT/r/s4095")" = 600 ]

	# change one file (same size, new bytes, new mtime): rsync writes a
	# temp file and renames it over the old one
	random_file "$SRC/tree/group/g4097" 4097
	touch -d '2002-03-04 05:06:07' "$SRC/tree/group/g4097"
	run rsync -a -i "$SRC/tree/" "$MNT/r/"
	[ "$status" -eq 0 ]
	echo "$output"
	[[ "$output" == *"group/g4097"* ]]
	same_tree "$SRC/tree" "$MNT/r"
	[ "$(stat -c %Y "$MNT/r/group/g4097")" = "$(stat -c %Y "$SRC/tree/group/g4097")" ]
	# no temp files left behind
	[ -z "$(find "$MNT/r" -name '.*')" ]

	# a third run has nothing to do
	run rsync -a -i "$SRC/tree/" "$MNT/r/"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "tar -x into the mount and tar -c out of it" {
	make_tree "$SRC/tree"
	tar -cf "$TDIR/in.tar" -C "$SRC" tree
	tar -xf "$TDIR/in.tar" -C "$MNT"
	same_tree "$SRC/tree" "$MNT/tree"
	[ "$(stat -c %Y "$MNT/tree/s4097")" = "$(stat -c %Y "$SRC/tree/s4097")" ]

	tar -cf "$TDIR/out.tar" -C "$MNT" tree
	mkdir "$TDIR/x"
	tar -xf "$TDIR/out.tar" -C "$TDIR/x"
	same_tree "$SRC/tree" "$TDIR/x/tree"
	# the archive holds the user's files only (meta.json is not listed)
	list=$(tar -tf "$TDIR/out.tar")
	[[ "$list" == *tree/s4097* ]]
	run grep -q meta.json <<<"$list"
	[ "$status" -eq 1 ]
}

@test "cp -a keeps modes and times" {
	make_tree "$SRC/tree"
	chmod 0640 "$SRC/tree/s1"
	chmod 0750 "$SRC/tree/group"
	touch -d '1999-12-31 23:59:59' "$SRC/tree/s1m3" "$SRC/tree/group"
	cp -a "$SRC/tree" "$MNT/ca"
	same_tree "$SRC/tree" "$MNT/ca"
	for f in s1 s1m3 group group/nested/n0; do
		[ "$(stat -c '%a %Y %u %g' "$MNT/ca/$f")" = \
		  "$(stat -c '%a %Y %u %g' "$SRC/tree/$f")" ]
	done
}

@test "mv of entries, tensors, across entries, and of a group" {
	make_tree "$SRC/tree"
	cp -r "$SRC/tree" "$MNT/a"
	mkdir "$MNT/b"

	mv "$MNT/a" "$MNT/a2"                       # an entry
	[ ! -e "$MNT/a" ]
	same_tree "$SRC/tree" "$MNT/a2"

	mv "$MNT/a2/s4097" "$MNT/a2/renamed"         # a tensor, same entry
	cmp "$SRC/tree/s4097" "$MNT/a2/renamed"
	[ ! -e "$MNT/a2/s4097" ]

	mv "$MNT/a2/s1m3" "$MNT/b/"                  # across entries
	cmp "$SRC/tree/s1m3" "$MNT/b/s1m3"
	[ ! -e "$MNT/a2/s1m3" ]

	mv "$MNT/a2/renamed" "$MNT/b/s1m3"           # over an existing tensor
	cmp "$SRC/tree/s4097" "$MNT/b/s1m3"
	[ ! -e "$MNT/a2/renamed" ]

	mv "$MNT/a2/group" "$MNT/g"                  # a group becomes an entry
	cmp "$SRC/tree/group/g4097" "$MNT/g/g4097"
	[ -f "$MNT/g/meta.json" ]

	mv "$MNT/g" "$MNT/b/sub"                     # an entry becomes a group
	cmp "$SRC/tree/group/nested/n65536" "$MNT/b/sub/nested/n65536"

	# all of it survives a remount
	tcfs_remount
	cmp "$SRC/tree/s4097" "$MNT/b/s1m3"
	cmp "$SRC/tree/group/g1" "$MNT/b/sub/g1"
	cmp "$SRC/tree/s9m" "$MNT/a2/s9m"
}

@test "rm, rm -r and rm -rf mnt/* free the space" {
	make_tree "$SRC/tree"
	cp -r "$SRC/tree" "$MNT/a"
	cp -r "$SRC/tree" "$MNT/b"
	cp -r "$SRC/tree" "$MNT/c"

	rm "$MNT/a/s9m"
	[ ! -e "$MNT/a/s9m" ]
	rm -r "$MNT/a"
	[ ! -e "$MNT/a" ]
	[ "$(ls "$MNT" | tr '\n' ' ')" = "b c " ]

	rm -rf "$MNT"/*
	[ -z "$(ls -A "$MNT")" ]
	[ "$(du_kb)" -eq 0 ]
	# df agrees: nothing used
	used=$(df -k --output=used "$MNT" | tail -1 | tr -d ' ')
	[ "$used" -eq 0 ]
	tcfs_remount
	[ -z "$(ls -A "$MNT")" ]
}

@test "overwrite, append and truncate" {
	mkdir "$MNT/e"
	random_file "$SRC/one" 10000
	random_file "$SRC/two" 5000
	cp "$SRC/one" "$MNT/e/t"
	cmp "$SRC/one" "$MNT/e/t"

	cp "$SRC/two" "$MNT/e/t"                     # overwrite, shorter
	cmp "$SRC/two" "$MNT/e/t"
	[ "$(stat -c %s "$MNT/e/t")" -eq 5000 ]

	cat "$SRC/one" >>"$MNT/e/t"                  # append
	cat "$SRC/two" "$SRC/one" >"$SRC/both"
	cmp "$SRC/both" "$MNT/e/t"

	# overwrite in the middle without truncating
	printf 'XYZ' | dd of="$MNT/e/t" bs=1 seek=100 conv=notrunc status=none
	printf 'XYZ' | dd of="$SRC/both" bs=1 seek=100 conv=notrunc status=none
	cmp "$SRC/both" "$MNT/e/t"

	truncate -s 4097 "$MNT/e/t"                  # shrink
	truncate -s 4097 "$SRC/both"
	cmp "$SRC/both" "$MNT/e/t"
	truncate -s 20000 "$MNT/e/t"                 # grow: zeros
	truncate -s 20000 "$SRC/both"
	cmp "$SRC/both" "$MNT/e/t"

	# ftruncate through an open descriptor, then write
	"$PY" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.ftruncate(fd, 10)
os.pwrite(fd, b"abc", 20)
os.close(fd)' "$MNT/e/t"
	"$PY" -c '
import sys
d = open(sys.argv[1], "rb").read()
src = open(sys.argv[2], "rb").read()
assert d == src[:10] + bytes(10) + b"abc", d' "$MNT/e/t" "$SRC/both"

	: >"$MNT/e/t"                                # O_TRUNC to empty
	[ "$(stat -c %s "$MNT/e/t")" -eq 0 ]
	[ -z "$(cat "$MNT/e/t")" ]

	tcfs_remount
	[ "$(stat -c %s "$MNT/e/t")" -eq 0 ]
}

@test "chmod, chown and touch update attributes" {
	mkdir "$MNT/e"
	echo data >"$MNT/e/t"
	chmod 0604 "$MNT/e/t"
	[ "$(stat -c %a "$MNT/e/t")" = 604 ]
	chown 1234:5678 "$MNT/e/t"
	[ "$(stat -c '%u %g' "$MNT/e/t")" = "1234 5678" ]
	touch -m -d '2010-01-01 00:00:00 UTC' "$MNT/e/t"
	[ "$(stat -c %Y "$MNT/e/t")" = 1262304000 ]
	before=$(date +%s)
	touch "$MNT/e/t"                             # UTIME_NOW
	[ "$(stat -c %Y "$MNT/e/t")" -ge "$before" ]
	chmod 0700 "$MNT/e"
	[ "$(stat -c %a "$MNT/e")" = 700 ]
	tcfs_remount
	[ "$(stat -c '%a %u %g' "$MNT/e/t")" = "604 1234 5678" ]
}

@test "a new file takes the caller's uid and gid" {
	chmod 0755 "$TDIR"
	tcfs_remount -o allow_other     # let other users in at all
	mkdir "$MNT/e"
	chmod 0777 "$MNT/e"
	setpriv --reuid=4321 --regid=8765 --clear-groups \
		sh -c "echo x > '$MNT/e/mine' && mkdir '$MNT/e/dir'"
	[ "$(stat -c '%u %g' "$MNT/e/mine")" = "4321 8765" ]
	[ "$(stat -c '%u %g' "$MNT/e/dir")" = "4321 8765" ]
	# default_permissions: the kernel checks modes
	chmod 0600 "$MNT/e/mine"
	chown 0:0 "$MNT/e/mine"
	run setpriv --reuid=4321 --regid=8765 --clear-groups cat "$MNT/e/mine"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
}
