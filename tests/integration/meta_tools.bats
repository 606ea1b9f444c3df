#!/usr/bin/env bats
# meta_tools.bats - copy tools finish on a tree that holds a meta.json
# (a TensorDict directory, or a tree copied out of a mount), and a tool
# that reports success did what it said: every file is there, and the
# meta.json it wrote is what the mount's meta.json now says.

load helpers

TOOL_TIMEOUT=60

# A TensorDict-like tree in $SRC/td: two tensors, a group, and meta.json
# files in TensorDict's own schema (which the cache does not take yet).
make_td() {
	mkdir -p "$SRC/td/sub"
	random_file "$SRC/td/a.memmap" 4000
	random_file "$SRC/td/sub/c.memmap" 100
	echo '{"a": {"device": "cpu", "shape": [1000], "dtype": "torch.float32"}, "_type": "TensorDict"}' \
		>"$SRC/td/meta.json"
	echo '{"c": {"shape": [100], "dtype": "torch.uint8"}}' >"$SRC/td/sub/meta.json"
	(cd "$SRC" && tar cf "$TDIR/td.tar" td && zip -qr "$TDIR/td.zip" td)
}

# applied SRC DST: every file of SRC is in DST with the same bytes, and
# every key of every meta.json of SRC has the same value in DST's
applied() {
	"$PY" - "$1" "$2" <<'PYEOF'
import json, os, sys
src, dst = sys.argv[1:]
for d, dirs, files in os.walk(src):
    for f in files:
        s = os.path.join(d, f)
        t = os.path.join(dst, os.path.relpath(s, src))
        a = open(s, 'rb').read()
        b = open(t, 'rb').read()
        if f != 'meta.json':
            assert a == b, t
            continue
        want, got = json.loads(a), json.loads(b)
        for k, v in want.items():
            assert got.get(k) == v, (t, k, v, got.get(k))
PYEOF
}

# try_tool NAME DST COMMAND...: run it with a time limit; it must end,
# and if it says it succeeded, $SRC/td must be in DST as written
try_tool() {
	local name=$1 dst=$2
	shift 2
	run timeout "$TOOL_TIMEOUT" "$@"
	echo "# $name: exit $status" >&3
	echo "$output" | head -5
	[ "$status" -ne 124 ] || { echo "$name did not finish"; return 1; }
	if [ "$status" -eq 0 ]; then
		applied "$SRC/td" "$dst" || {
			echo "$name reported success for what it did not do"
			return 1
		}
	fi
}

@test "tar xf of a TensorDict tree finishes, and fails or applies its meta.json" {
	make_td
	mkdir "$MNT/x"
	try_tool tar "$MNT/x/td" tar xf "$TDIR/td.tar" -C "$MNT/x"
	# the tensors did arrive
	cmp "$SRC/td/a.memmap" "$MNT/x/td/a.memmap"
	cmp "$SRC/td/sub/c.memmap" "$MNT/x/td/sub/c.memmap"
}

@test "tar xf over a tree already there finishes too" {
	make_td
	mkdir "$MNT/x"
	timeout "$TOOL_TIMEOUT" tar xf "$TDIR/td.tar" -C "$MNT/x" || true
	try_tool "tar again" "$MNT/x/td" tar xf "$TDIR/td.tar" -C "$MNT/x"
}

@test "rsync -a, cp -a, unzip -o and shutil.copytree of a TensorDict tree finish, and none claims what it did not do" {
	make_td
	try_tool rsync "$MNT/r" rsync -a "$SRC/td/" "$MNT/r/"
	try_tool "cp -a" "$MNT/c" cp -a "$SRC/td" "$MNT/c"
	mkdir "$MNT/u"
	try_tool "unzip -o" "$MNT/u/td" unzip -o -q "$TDIR/td.zip" -d "$MNT/u" </dev/null
	try_tool "unzip -o again" "$MNT/u/td" unzip -o -q "$TDIR/td.zip" -d "$MNT/u" </dev/null
	try_tool copytree "$MNT/p" "$PY" -c 'import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2])' "$SRC/td" "$MNT/p"
}

@test "rm of meta.json removes it for the remover alone: gone for it, then created again and applied" {
	mkdir "$MNT/e"
	printf 12345678 >"$MNT/e/t"
	"$PY" - "$MNT/e" <<'PYEOF'
import errno, json, os, sys
e = sys.argv[1]
m = e + '/meta.json'
os.unlink(m)
assert not os.path.exists(m)
try:
    os.unlink(m)
    raise SystemExit('a second unlink succeeded')
except OSError as x:
    assert x.errno == errno.ENOENT, x
fd = os.open(m, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, json.dumps({"__tcache__": {"tensors": {"t": {"dtype": "float32", "shape": [2]}},
                                         "attrs": {"k": 1}}}).encode())
os.close(fd)
got = json.load(open(m))
got = got["__tcache__"]
assert got["tensors"]["t"]["shape"] == [2] and got["attrs"] == {"k": 1}, got
PYEOF
	# another process never saw it go
	grep -q '"k"' "$MNT/e/meta.json"
}
