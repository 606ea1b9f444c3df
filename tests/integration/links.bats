#!/usr/bin/env bats
# links.bats - parent links (the xattr user.tcache.parent, "parent" in
# meta.json) and prefix-aware eviction: an entry is never evicted while
# a child of it is present, so a chain read in order is evicted from its
# end and what stays is always a prefix.

load helpers

KIB=1024

# page NAME [PARENT]: a 100 KiB root file NAME (bytes: NAME repeated)
# whose parent link is PARENT, written the way a page tier writes one:
# a temporary file, the link, then a rename.
page() {
	"$PY" - "$MNT" "$1" "${2:-}" <<'EOF_PY'
import os, sys
mnt, name, parent = sys.argv[1:4]
tmp = os.path.join(mnt, ".tmp-" + name)
with open(tmp, "wb") as f:
    f.write((name.encode() * 102400)[:102400])
    if parent:
        os.setxattr(tmp, "user.tcache.parent", parent.encode())
os.replace(tmp, os.path.join(mnt, name))
EOF_PY
}

# present N: how many of p0..p<N-1> are present; fails if they are not
# a prefix (p0..pk)
present() {
	local i k=0 gap=0
	for i in $(seq 0 $(($1 - 1))); do
		if [ -e "$MNT/p$i" ]; then
			[ $gap = 0 ] || { echo "p$i present after a gap" >&2; return 1; }
			k=$((k + 1))
		else
			gap=1
		fi
	done
	echo $k
}

@test "setfattr / getfattr set and read the parent link; other names are refused" {
	page p0
	page p1 p0
	mkdir "$MNT/d"
	setfattr -n user.tcache.parent -v p1 "$MNT/d"
	[ "$(getfattr --only-values -n user.tcache.parent "$MNT/d")" = p1 ]
	[ "$(getfattr --only-values -n user.tcache.parent "$MNT/p1")" = p0 ]
	getfattr -d "$MNT/p1" | grep -qx 'user.tcache.parent="p0"'
	[ -z "$(getfattr -d "$MNT/p0")" ]
	run getfattr -n user.tcache.parent "$MNT/p0"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No such attribute"* ]]
	# meta.json shows it under __tcache__
	"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["__tcache__"]["parent"] == "p1", d' "$MNT/d/meta.json"
	expect_errno ELOOP 'os.setxattr(MNT + "/p0", "user.tcache.parent", b"d")'
	expect_errno ELOOP 'os.setxattr(MNT + "/p0", "user.tcache.parent", b"p0")'
	expect_errno EINVAL 'os.setxattr(MNT + "/p0", "user.tcache.parent", b"a/b")'
	expect_errno ENAMETOOLONG 'os.setxattr(MNT + "/p0", "user.tcache.parent", b"x" * 256)'
	expect_errno ENOTSUP 'os.setxattr(MNT + "/p0", "user.other", b"x")'
	expect_errno EEXIST 'os.setxattr(MNT + "/p1", "user.tcache.parent", b"x", os.XATTR_CREATE)'
	expect_errno ENODATA 'os.setxattr(MNT + "/p0", "user.tcache.parent", b"x", os.XATTR_REPLACE)'
	echo 1 > "$MNT/d/t"
	expect_errno ENOTSUP 'os.setxattr(MNT + "/d/t", "user.tcache.parent", b"p0")'
	# a rename that would close a loop: x's parent is p1, whose is p0
	page x p1
	expect_errno ELOOP 'os.rename(MNT + "/x", MNT + "/p0")'
	[ -e "$MNT/x" ]
	[ -e "$MNT/p0" ]
	setfattr -x user.tcache.parent "$MNT/d"
	run getfattr -n user.tcache.parent "$MNT/d"
	[ "$status" -ne 0 ]
	mv "$MNT/d" "$MNT/p0x"   # no link: any name
	# an absent parent is allowed, and found once it comes
	setfattr -n user.tcache.parent -v later "$MNT/p0x"
	[ "$(getfattr --only-values -n user.tcache.parent "$MNT/p0x")" = later ]
}

@test "meta.json's parent sets the link of a directory entry; null removes it" {
	mkdir "$MNT/a" "$MNT/b"
	echo '{"__tcache__": {"parent": "a"}, "note": 1}' > "$MNT/b/meta.json"
	[ "$(getfattr --only-values -n user.tcache.parent "$MNT/b")" = a ]
	# a loop: refused at close
	expect_errno ELOOP 'f = open(MNT + "/a/meta.json", "w"); f.write("{\"__tcache__\": {\"parent\": \"b\"}}"); f.close()'
	run getfattr -n user.tcache.parent "$MNT/a"
	[ "$status" -ne 0 ]
	echo '{"__tcache__": {"parent": null}}' > "$MNT/b/meta.json"
	run getfattr -n user.tcache.parent "$MNT/b"
	[ "$status" -ne 0 ]
}

@test "a chain read in order is evicted from its end: what stays is a prefix, across restarts" {
	tcfs_remount -o capacity=2M
	page p0
	for i in $(seq 1 11); do page "p$i" "p$((i - 1))"; done
	mkdir "$MNT/leaf"; echo x > "$MNT/leaf/t"
	setfattr -n user.tcache.parent -v p11 "$MNT/leaf"
	for i in $(seq 0 11); do cat "$MNT/p$i" >/dev/null; done   # p0 least recent
	cat "$MNT/leaf/t" >/dev/null
	[ "$(present 12)" = 12 ]
	last=12
	for j in $(seq 0 11); do
		page "u$j"
		k=$(present 12)
		echo "after u$j: $k pages"
		[ "$k" -le "$last" ]
		if [ -e "$MNT/leaf" ]; then [ "$k" = 12 ]; fi
		last=$k
	done
	[ "$last" -lt 12 ]
	[ "$last" -gt 0 ]
	# every page left is whole, its link intact
	for i in $(seq 1 $((last - 1))); do
		[ "$(getfattr --only-values -n user.tcache.parent "$MNT/p$i")" = "p$((i - 1))" ]
		cmp -s "$MNT/p$i" <("$PY" -c "import sys; sys.stdout.buffer.write((b'p$i' * 102400)[:102400])")
	done
	kill9_remount -o capacity=2M
	[ "$(present 12)" = "$last" ]
	[ "$(getfattr --only-values -n user.tcache.parent "$MNT/p1")" = p0 ]
	for j in $(seq 12 44); do
		page "u$j"
		k=$(present 12)
		[ "$k" -le "$last" ]
		last=$k
	done
	[ "$last" = 0 ]
	tcfs_unmount
	"$TCACHE" fsck "$STORE" | tee "$TDIR/fsck.out"
	run grep -q "parent links" "$TDIR/fsck.out"
	[ "$status" -eq 1 ]
	tcfs_mount
}

@test "a parent whose last child went is evicted at its own recency, not before" {
	tcfs_remount -o capacity=1M
	page p0
	page p1 p0
	page o1
	cat "$MNT/p0" >/dev/null     # recency, old to new: p1 o1 p0
	for i in 1 2 3 4 5 6 7; do page "f$i"; done   # full: 10 pages
	page n1                      # the oldest leaf goes: p1 (not p0)
	[ ! -e "$MNT/p1" ]
	[ -e "$MNT/p0" ]
	[ -e "$MNT/o1" ]
	page n2                      # p0, a leaf now, is younger than o1
	[ ! -e "$MNT/o1" ]
	[ -e "$MNT/p0" ]
	page n3
	[ ! -e "$MNT/p0" ]
	[ -e "$MNT/f1" ]
}
