#!/usr/bin/env bats
# td_copy.bats - a TensorDict tree goes through each copy tool into a
# mount and comes out whole.  The tree is what TensorDict.memmap() writes
# (clients/tensordict_cache.py tree: a <key>.memmap per tensor of every
# dtype we name, none for a tensor of no elements, a meta.json per level
# in TensorDict's schema, two levels of sub-TensorDicts).  Each tool must
# succeed, and then (clients/tensordict_cache.py compare --mount): every
# file is there with the same bytes and nothing else is; every meta.json
# reads back value-equal for the source's keys, plus "__tcache__", which
# types each K.memmap as its declaration says; and the copy loads by
# TensorDict's rules (torch.from_file of each .memmap) to the same
# tensors as the source.

load helpers

TD=$BATS_TEST_DIRNAME/clients/tensordict_cache.py
TOOL_TIMEOUT=60

setup_file() {
	# one tree, and its tar and zip, for every test
	"$PY" "$TD" tree "$BATS_FILE_TMPDIR/td"
	(cd "$BATS_FILE_TMPDIR" && tar cf td.tar td && zip -qr td.zip td)
}

setup() {
	tcfs_setup
	TREE=$BATS_FILE_TMPDIR/td
}

# same_td DST: DST is the tree, whole (see above)
same_td() {
	"$PY" "$TD" compare "$TREE" "$1" --mount
}

# tool COMMAND...: it ends within TOOL_TIMEOUT and succeeds
tool() {
	timeout "$TOOL_TIMEOUT" "$@"
}

@test "cp -r of a TensorDict tree: whole, and still after a kill -9 and after a clean remount" {
	tool cp -r "$TREE" "$MNT/k"
	same_td "$MNT/k"
	kill9_remount
	same_td "$MNT/k"
	tcfs_remount
	same_td "$MNT/k"
}

@test "cp -a of a TensorDict tree: whole" {
	tool cp -a "$TREE" "$MNT/k"
	same_td "$MNT/k"
}

@test "rsync -a of a TensorDict tree (temp files renamed onto each name, meta.json too), twice: whole, no temp file left" {
	tool rsync -a "$TREE/" "$MNT/r/"
	same_td "$MNT/r"
	tool rsync -a "$TREE/" "$MNT/r/"
	same_td "$MNT/r"
	# and into a group of an entry that is there
	mkdir "$MNT/e"
	tool rsync -a "$TREE" "$MNT/e/"
	same_td "$MNT/e/td"
}

@test "tar x of a TensorDict tree, and tar x again over it: whole" {
	tool tar xf "$BATS_FILE_TMPDIR/td.tar" -C "$MNT"
	same_td "$MNT/td"
	tool tar xf "$BATS_FILE_TMPDIR/td.tar" -C "$MNT"
	same_td "$MNT/td"
}

@test "unzip -o of a TensorDict tree into an entry, twice: whole" {
	mkdir "$MNT/u"
	tool unzip -o -q "$BATS_FILE_TMPDIR/td.zip" -d "$MNT/u" </dev/null
	same_td "$MNT/u/td"
	tool unzip -o -q "$BATS_FILE_TMPDIR/td.zip" -d "$MNT/u" </dev/null
	same_td "$MNT/u/td"
}

@test "shutil.copytree of a TensorDict tree: whole" {
	tool "$PY" -c 'import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2])' \
		"$TREE" "$MNT/p"
	same_td "$MNT/p"
}

@test "a TensorDict's meta.json written before its tensors or after them types them alike" {
	# meta.json first, then the files: by hand, in that order
	"$PY" - "$TREE" "$MNT/before" <<'EOF'
import os, shutil, sys
src, dst = sys.argv[1:]
for d, dirs, files in os.walk(src):
    t = os.path.join(dst, os.path.relpath(d, src))
    os.makedirs(t, exist_ok=True)
    shutil.copyfile(os.path.join(d, "meta.json"), os.path.join(t, "meta.json"))
for d, dirs, files in os.walk(src):
    t = os.path.join(dst, os.path.relpath(d, src))
    for f in sorted(files):
        if f != "meta.json":
            shutil.copyfile(os.path.join(d, f), os.path.join(t, f))
EOF
	same_td "$MNT/before"
	# TensorDict.memmap() straight into the mount: files, then meta.json
	"$PY" "$TD" tree "$MNT/direct"
	same_td "$MNT/direct"
}

@test "rm of meta.json: the user's keys are gone for everyone; the remover sees ENOENT until it writes one, which applies" {
	mkdir "$MNT/e"
	printf 12345678 >"$MNT/e/t"
	echo '{"mine": {"n": 12345678901234567890, "s": "caf\u00e9"}}' >"$MNT/e/meta.json"
	grep -q '"mine"' "$MNT/e/meta.json"
	"$PY" - "$MNT/e" <<'EOF'
import errno, json, os, subprocess, sys
e = sys.argv[1]
m = e + "/meta.json"
os.unlink(m)
for op in (os.stat, os.unlink, open):
    try:
        op(m)
        raise SystemExit("%s after rm succeeded" % op.__name__)
    except OSError as x:
        assert x.errno == errno.ENOENT, (op.__name__, x)
# another process sees the generated document alone
other = json.loads(subprocess.run(["cat", m], check=True, capture_output=True).stdout)
assert list(other) == ["__tcache__"], other
assert "t" in other["__tcache__"]["tensors"], other
doc = {"again": [1, 2.5, None], "t": {"dtype": "torch.float32", "shape": [2],
                                      "device": "cpu", "is_nested": False}}
fd = os.open(m, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, json.dumps(doc).encode())
os.close(fd)
for got in (json.load(open(m)),
            json.loads(subprocess.run(["cat", m], check=True, capture_output=True).stdout)):
    assert {k: got[k] for k in doc} == doc and set(got) == set(doc) | {"__tcache__"}, got
EOF
}
