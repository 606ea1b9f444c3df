#!/usr/bin/env bats
# docs.bats - what the README and the man pages tell a user holds: their
# examples run as written on a real mount, and where two documents speak
# of the same behaviour they say the same, and it is what a mount does.

load helpers

TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

# The README's fenced block number $1 (from 1) of language $2, its
# /mnt/tcache made $MNT.
readme_block() {
	awk -v want="$1" -v lang="$2" '
		/^```/ { if (inb) { inb = 0; next }
			 if ($0 == "```" lang) { n++; if (n == want) { inb = 1; next } } }
		inb { print }' "$TOP/README.md" | sed "s#/mnt/tcache#$MNT#g"
}

@test "the README's first Python examples run as written on a mount" {
	readme_block 1 python >"$TDIR/quick.py"
	grep -q 'np.save' "$TDIR/quick.py"
	run "$PY" "$TDIR/quick.py"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(stat -c %s "$MNT/k1/kv.bin")" -eq 8192 ]
	# the meta.json line that follows it
	line=$(grep -m1 "^echo '{\"__tcache__\"" "$TOP/README.md" | sed "s#/mnt/tcache#$MNT#g")
	[ -n "$line" ]
	run bash -c "$line"
	[ "$status" -eq 0 ]
	"$PY" - "$MNT/k1/meta.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["__tcache__"]["tensors"]["kv.bin"]
assert t["dtype"] == "float16" and t["shape"] == [32, 128], t
EOF
	readme_block 2 python >"$TDIR/package.py"
	grep -q 'TensorCache' "$TDIR/package.py"
	run env PYTHONPATH="$TOP/tools/python" "$PY" "$TDIR/package.py"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "a rewrite in place as tcachefs(1) and the README both describe it" {
	# both say the same: old or new for a rename; never unfinished, and
	# zeros past the old end for a reader that overlaps a growing rewrite
	for doc in "$TOP/README.md" "$TOP/fs/tcachefs.1"; do
		tr '\n' ' ' <"$doc" | sed 's/ \+/ /g' >"$TDIR/flat"
		grep -q 'a reader that overlaps a rewrite that makes the file longer may read zeros past the end of the old bytes' "$TDIR/flat"
		grep -q 'Replace by rename where readers run concurrently' "$TDIR/flat"
		run grep -c 'atomic for readers' "$TDIR/flat"
		[ "$output" -eq 0 ]
	done
	# and the mount does that: readers opened before and during a cp over
	# a file read old bytes, then zeros; none reads new bytes mixed in;
	# every open after the cp reads the new bytes
	head -c 1048576 /dev/zero | tr '\0' A >"$MNT/t"
	head -c 4194304 /dev/zero | tr '\0' B >"$SRC/new"
	"$PY" - "$MNT/t" "$SRC/new" <<'EOF'
import os, sys
path, new = sys.argv[1], open(sys.argv[2], "rb").read()
before = os.open(path, os.O_RDONLY)
assert os.pread(before, 1 << 20, 0) == b"A" * (1 << 20)
w = os.open(path, os.O_WRONLY | os.O_TRUNC)
os.write(w, new[: len(new) // 2])
during = os.open(path, os.O_RDONLY)
assert os.pread(during, len(new), 0) == b"A" * (1 << 20)   # never unfinished
os.write(w, new[len(new) // 2 :])
os.close(w)
for fd in (before, during):
    got = os.pread(fd, len(new), 0)
    assert got[: 1 << 20] == b"A" * (1 << 20), "old bytes changed"
    assert got[1 << 20 :].count(0) == len(got) - (1 << 20), "new bytes mixed in"
    os.close(fd)
assert open(path, "rb").read() == new
EOF
}

@test "tools/run builds where the README's release build does not" {
	run_dir=$(sed -n 's/^BUILD=\$ROOT\///p' "$TOP/tools/run")
	[ -n "$run_dir" ]
	install=$(grep -m1 '^meson setup .*--buildtype=release' "$TOP/README.md")
	[ -n "$install" ]
	release_dir=$(echo "$install" | awk '{ print $3 }')
	echo "tools/run: $run_dir; README: $release_dir"
	[ "$release_dir" != "$run_dir" ]
	[[ "$install" == *"-C $release_dir"* ]]
	grep -q "meson configure $run_dir -Dbuildtype=release" "$TOP/README.md"
}
