#!/usr/bin/env bats
# meta.bats - meta.json of entries and groups: found by name (not
# listed), readable by any tool; open-world: the user's keys are kept as
# written, ours are under "__tcache__".

load helpers

@test "every entry and group has a meta.json, not listed; the root has none" {
	mkdir -p "$MNT/e/g"
	echo x >"$MNT/e/a"
	echo y >"$MNT/e/z"
	[ ! -e "$MNT/meta.json" ]
	[ "$("$PY" -c 'import os,sys; print(sorted(os.listdir(sys.argv[1])))' "$MNT/e")" = "['a', 'g', 'z']" ]
	[ "$("$PY" -c 'import os,sys; print(os.listdir(sys.argv[1]))' "$MNT/e/g")" = "[]" ]
	[ "$(ls -A "$MNT/e" | tr '\n' ' ')" = "a g z " ]
	[ -f "$MNT/e/meta.json" ]
	[ -f "$MNT/e/g/meta.json" ]
	"$PY" - "$MNT/e/meta.json" "$MNT/e/g/meta.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
g = json.load(open(sys.argv[2]))
assert list(e) == ["__tcache__"] and list(g) == ["__tcache__"], (e, g)
e, g = e["__tcache__"], g["__tcache__"]
assert set(e["tensors"]) == {"a", "z"}, e
assert e["tensors"]["a"]["nbytes"] == 2 and e["tensors"]["a"]["dtype"] == "uint8"
assert e["groups"] == ["g"], e
assert "created" in e and "last_access" in e and e["pinned"] is False
assert g["tensors"] == {} and "created" not in g, g
EOF
	# stat's size is the size of what a read returns
	[ "$(stat -c %s "$MNT/e/meta.json")" -eq "$(wc -c <"$MNT/e/meta.json")" ]
}

@test "meta.json follows changes at once" {
	mkdir "$MNT/e"
	size0=$(stat -c %s "$MNT/e/meta.json")
	head -c 100 /dev/zero >"$MNT/e/t"
	[ "$(stat -c %s "$MNT/e/meta.json")" -gt "$size0" ]
	grep -q '"t"' "$MNT/e/meta.json"
	rm "$MNT/e/t"
	run grep -q '"t"' "$MNT/e/meta.json"
	[ "$status" -eq 1 ]
}

@test "writing a valid meta.json sets dtype, shape and attrs" {
	mkdir "$MNT/e"
	head -c 24 /dev/zero >"$MNT/e/t"
	cat >"$MNT/e/meta.json" <<'EOF'
{"__tcache__": {"tensors": {"t": {"dtype": "float32", "shape": [2, 3]}},
 "attrs": {"model": "demo", "step": 12}}}
EOF
	"$PY" - "$MNT/e/meta.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["__tcache__"]
t = m["tensors"]["t"]
assert t["dtype"] == "float32" and t["shape"] == [2, 3], t
assert m["attrs"] == {"model": "demo", "step": 12}, m
EOF
	tcfs_remount
	grep -q '"model"' "$MNT/e/meta.json"
	grep -q 'float32' "$MNT/e/meta.json"
}

@test "meta.json takes torch's and numpy's dtype names; it says ours" {
	mkdir "$MNT/e"
	head -c 24 /dev/zero >"$MNT/e/a"
	head -c 24 /dev/zero >"$MNT/e/b"
	head -c 24 /dev/zero >"$MNT/e/c"
	cat >"$MNT/e/meta.json" <<'EOF'
{"__tcache__": {"tensors": {"a": {"dtype": "torch.float16", "shape": [12]},
             "b": {"dtype": "<i8", "shape": [3]},
             "c": {"dtype": "double", "shape": [3]}}}}
EOF
	"$PY" - "$MNT/e/meta.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["__tcache__"]["tensors"]
assert (t["a"]["dtype"], t["a"]["shape"]) == ("float16", [12]), t
assert (t["b"]["dtype"], t["b"]["shape"]) == ("int64", [3]), t
assert (t["c"]["dtype"], t["c"]["shape"]) == ("float64", [3]), t
EOF
	# big-endian is not ours: refused whole, nothing changed
	echo '{"__tcache__": {"tensors": {"b": {"dtype": ">i8", "shape": [3]}}}}' >"$TDIR/big.json"
	run cp "$TDIR/big.json" "$MNT/e/meta.json"
	[ "$status" -ne 0 ]
	grep -q '"int64"' "$MNT/e/meta.json"
}

@test "editing meta.json in place (read, change, write back) works" {
	mkdir "$MNT/e"
	head -c 16 /dev/zero >"$MNT/e/t"
	"$PY" - "$MNT/e/meta.json" <<'EOF'
import json, sys
p = sys.argv[1]
m = json.load(open(p))
m["note"] = {"by": "hand", "n": 12345678901234567890}
ours = m["__tcache__"]
ours["tensors"]["t"]["dtype"] = "int16"
ours["tensors"]["t"]["shape"] = [2, 4]
ours["pinned"] = True
with open(p, "w") as f:
    json.dump(m, f)
m = json.load(open(p))
ours = m["__tcache__"]
assert ours["tensors"]["t"]["shape"] == [2, 4] and ours["pinned"] is True, m
assert m["note"] == {"by": "hand", "n": 12345678901234567890}, m
EOF
}

@test "rm of meta.json forgets the user's keys; the name shows ours again" {
	mkdir "$MNT/e"
	echo x >"$MNT/e/t"
	echo '{"mine": [1, 2]}' >"$MNT/e/meta.json"
	grep -q '"mine"' "$MNT/e/meta.json"
	rm "$MNT/e/meta.json"
	[ -f "$MNT/e/meta.json" ]
	grep -q '"t"' "$MNT/e/meta.json"
	run grep -q '"mine"' "$MNT/e/meta.json"
	[ "$status" -eq 1 ]
	tcfs_remount
	run grep -q '"mine"' "$MNT/e/meta.json"
	[ "$status" -eq 1 ]
}

@test "meta.json is open-world: any JSON object reads back value-equal, ours beside it, after a remount too" {
	mkdir -p "$MNT/e/g"
	cat >"$TDIR/doc.json" <<'EOF'
{"tensors": {"device": "cpu", "shape": [2], "dtype": "torch.float32", "is_nested": false},
 "pinned": {"type": "TensorDict"}, "attrs": [1, 2.50, -0.0, 1e-300, 123456789012345678901234567890],
 "groups": null, "created": "x", "s": "caf\u00e9 \"q\" \\", "nested": {"a": {"b": {"c": [true, false, {}]}}},
 "shape": [], "device": "cpu", "_type": "<class 'tensordict._td.TensorDict'>"}
EOF
	cp "$TDIR/doc.json" "$MNT/e/meta.json"
	echo '{"k": 1}' >"$MNT/e/g/meta.json"
	check() {
		"$PY" - "$TDIR/doc.json" "$MNT/e/meta.json" "$MNT/e/g/meta.json" <<'EOF'
import json, sys
want = json.load(open(sys.argv[1]))
got = json.load(open(sys.argv[2]))
assert list(got) == list(want) + ["__tcache__"], list(got)
for k, v in want.items():
    assert got[k] == v and repr(got[k]) == repr(v), (k, v, got[k])
assert got["__tcache__"]["pinned"] is False and "tensors" in got["__tcache__"]
g = json.load(open(sys.argv[3]))
assert g["k"] == 1 and list(g) == ["k", "__tcache__"], g
EOF
	}
	check
	tcfs_remount
	check
	# the key __tcache__ is ours: validated, and refused when wrong
	head -c 8 /dev/zero >"$MNT/e/g/x"
	echo '{"__tcache__": {"tensors": {"x": {"shape": [7]}}}, "k": 2}' >"$TDIR/bad.json"
	run cp "$TDIR/bad.json" "$MNT/e/g/meta.json"
	[ "$status" -ne 0 ]
	grep -q '"k": 1' "$MNT/e/g/meta.json"
}

@test "TensorDict's meta.json gives K.memmap its dtype and shape, before or after the file, sizes unchecked" {
	mkdir "$MNT/e"
	head -c 26 /dev/zero >"$MNT/e/emb.memmap"   # 2 bytes past 6 float32
	cat >"$MNT/e/meta.json" <<'EOF'
{"emb": {"device": "cpu", "shape": [2, 3], "dtype": "torch.float32", "is_nested": false},
 "ids": {"device": "cpu", "shape": [4], "dtype": "torch.int64", "is_nested": false},
 "flags": {"device": "cpu", "shape": [3], "dtype": "torch.bool", "is_nested": false},
 "sub": {"type": "TensorDict"}, "shape": [], "device": "cpu",
 "_type": "<class 'tensordict._td.TensorDict'>"}
EOF
	head -c 32 /dev/zero >"$MNT/e/ids.memmap"
	# rsync's way: a temp file renamed into place
	head -c 3 /dev/zero >"$MNT/e/.flags.memmap.Ab12"
	mv "$MNT/e/.flags.memmap.Ab12" "$MNT/e/flags.memmap"
	"$PY" - "$MNT/e/meta.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["__tcache__"]["tensors"]
got = {k: (v["dtype"], v["shape"], v["nbytes"]) for k, v in t.items()}
assert got == {"emb.memmap": ("float32", [2, 3], 26), "ids.memmap": ("int64", [4], 32),
               "flags.memmap": ("bool", [3], 3)}, got
EOF
	[ "$(stat -c %s "$MNT/e/emb.memmap")" -eq 26 ]
}

@test "a file renamed over meta.json (rsync) becomes it, and is gone; a bad one is refused and stays" {
	mkdir "$MNT/e"
	echo '{"a": 1}' >"$MNT/e/.meta.json.x1"
	mv "$MNT/e/.meta.json.x1" "$MNT/e/meta.json"
	[ "$(ls -A "$MNT/e")" = "" ]
	"$PY" -c 'import json,sys; m = json.load(open(sys.argv[1])); assert m["a"] == 1, m' "$MNT/e/meta.json"
	stat "$MNT/e/meta.json" >/dev/null
	echo 'not json' >"$MNT/e/.meta.json.x2"
	expect_errno EINVAL 'os.rename(MNT + "/e/.meta.json.x2", MNT + "/e/meta.json")'
	[ -f "$MNT/e/.meta.json.x2" ]
	mkdir "$MNT/f"
	echo '{}' >"$MNT/f/m"
	expect_errno EXDEV 'os.rename(MNT + "/f/m", MNT + "/e/meta.json")'
	# rsync renames right after close(), and the kernel releases the
	# handle after that: a temp file still open for writing, its bytes
	# committed (fsync), is taken; with writes not yet committed, EBUSY
	"$PY" - "$MNT/e" <<'EOF'
import errno, json, os, sys
d = sys.argv[1]
with open(d + "/.meta.json.x3", "w") as f:
    f.write('{"b": 2}')
    f.flush()
    os.fsync(f.fileno())
    os.rename(d + "/.meta.json.x3", d + "/meta.json")
    assert json.load(open(d + "/meta.json"))["b"] == 2
with open(d + "/.meta.json.x4", "w") as f:
    f.write('{"c": 3}')
    f.flush()                       # (a write handle: no commit before fsync or close)
    try:
        os.rename(d + "/.meta.json.x4", d + "/meta.json")
        raise SystemExit("renamed with writes pending")
    except OSError as e:
        assert e.errno == errno.EBUSY, e
os.rename(d + "/.meta.json.x4", d + "/meta.json")   # closed: committed
assert json.load(open(d + "/meta.json"))["c"] == 3
EOF
}

@test "a directory copied out of the mount copies back in, identical" {
	mkdir -p "$MNT/e/g"
	head -c 24 /dev/urandom >"$MNT/e/t"
	echo hi >"$MNT/e/g/u"
	cp -r "$MNT/e" "$TDIR/out"
	# only the user's files leave the mount
	[ ! -e "$TDIR/out/meta.json" ]
	[ ! -e "$TDIR/out/g/meta.json" ]
	diff -r "$MNT/e" "$TDIR/out"
	# back into a new directory (cp creates with O_EXCL), and with tar
	cp -r "$TDIR/out" "$MNT/back"
	diff -r "$TDIR/out" "$MNT/back"
	tar -cf "$TDIR/e.tar" -C "$MNT" e
	mkdir "$MNT/untar"
	tar -xf "$TDIR/e.tar" -C "$MNT/untar"
	diff -r "$MNT/e" "$MNT/untar/e"
	# a meta.json copied in by name is applied
	echo '{"__tcache__": {"attrs": {"k": "v"}, "tensors": {"t": {"dtype": "float64", "shape": [3]}}}}' >"$TDIR/m.json"
	cp "$TDIR/m.json" "$MNT/back/meta.json"
	"$PY" - "$MNT/back/meta.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["__tcache__"]
assert m["tensors"]["t"]["dtype"] == "float64", m
assert m["attrs"] == {"k": "v"}, m
EOF
}

@test "a process that made many directories writes the meta.json of each (O_CREAT, not O_EXCL)" {
	"$PY" - "$MNT" <<'PYEOF'
import json, os, sys
m = sys.argv[1]
for i in range(1100):
    os.mkdir("%s/d%d" % (m, i))
for i in (0, 500, 1099):
    with open("%s/d%d/meta.json" % (m, i), "w") as f:   # O_CREAT | O_TRUNC
        json.dump({"i": i}, f)
    got = json.load(open("%s/d%d/meta.json" % (m, i)))
    assert got["i"] == i and "__tcache__" in got, got
PYEOF
}

@test "a meta.json malformed before its end fails at write(), so the shell says so; the document stays" {
	mkdir "$MNT/e"
	head -c 8192 /dev/zero >"$MNT/e/kv.bin"
	before=$(cat "$MNT/e/meta.json")
	run bash -c "echo '{bad}' >'$MNT/e/meta.json'"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"write error: Invalid argument"* ]]
	[ "$(cat "$MNT/e/meta.json")" = "$before" ]
	grep -qF "meta.json of e refused: not JSON at byte 1: expected a string or '}'" "$TDIR/daemon.log"
	# refused at the first byte that cannot be: a writer is told at once
	"$PY" - "$MNT/e/meta.json" <<'PYEOF'
import errno, os, sys
for doc, bad in ((b'{"a": tru,', 9), (b'{"a" 1}', 5), (b'[1]', 0), (b'{"a": "\\q"}', 8),
                 (b'{}}', 2), (b'{"a": 1}x', 8), (b'{"a": +1}', 6)):
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
    try:
        for i in range(len(doc)):
            try:
                os.write(fd, doc[i:i + 1])
            except OSError as e:
                assert e.errno == errno.EINVAL and i == bad, (doc, i, e)
                break
        else:
            raise AssertionError(("not refused", doc))
    finally:
        try:
            os.close(fd)
        except OSError as e:
            assert e.errno == errno.EINVAL
PYEOF
	[ "$(cat "$MNT/e/meta.json")" = "$before" ]
}

@test "meta.json written a byte at a time, or out of order, is judged whole at close" {
	mkdir "$MNT/e"
	head -c 8192 /dev/zero >"$MNT/e/kv.bin"
	"$PY" - "$MNT/e/meta.json" <<'PYEOF'
import json, os, sys
doc = json.dumps({"a": [1, -2.5e3, {"b": None}], "c": "x\u00e9\\\"", "d": True,
                  "__tcache__": {"tensors": {"kv.bin": {"dtype": "float16", "shape": [32, 128]}}}}).encode()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
for i in range(len(doc)):
    os.write(fd, doc[i:i + 1])
os.close(fd)
t = json.load(open(sys.argv[1]))
assert t["a"][1] == -2500.0 and t["__tcache__"]["tensors"]["kv.bin"]["shape"] == [32, 128], t
# the end first, then the start: only close judges
doc = json.dumps({"z": 1}).encode()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.pwrite(fd, doc[4:], 4)
os.pwrite(fd, doc[:4], 0)
os.close(fd)
assert json.load(open(sys.argv[1]))["z"] == 1
# in place without O_TRUNC: the old document's bytes follow the new start
with open(sys.argv[1], "r+b") as f:
    f.write(json.dumps({"y": 2}).encode())
    f.truncate()
assert json.load(open(sys.argv[1]))["y"] == 2
PYEOF
}

@test "a whole meta.json refused says why in the log, with the numbers" {
	mkdir "$MNT/e"
	head -c 8190 /dev/zero >"$MNT/e/kv.bin"
	run bash -c "echo '{\"__tcache__\": {\"tensors\": {\"kv.bin\": {\"dtype\": \"float16\", \"shape\": [32, 128]}}}}' >'$MNT/e/meta.json'"
	[ "$status" -ne 0 ]
	grep -qF "meta.json of e refused: __tcache__.tensors.kv.bin.shape: 32×128×2 bytes ≠ 8190, the tensor's size" "$TDIR/daemon.log"
	run bash -c "echo '{\"__tcache__\": {\"tensors\": {\"nope\": {}}}}' >'$MNT/e/meta.json'"
	[ "$status" -ne 0 ]
	grep -qF "meta.json of e refused: __tcache__.tensors.nope: no such tensor here" "$TDIR/daemon.log"
	run bash -c "echo '{\"__tcache__\": {\"pinned\": 1}}' >'$MNT/e/meta.json'"
	[ "$status" -ne 0 ]
	grep -qF "meta.json of e refused: __tcache__.pinned: expected true or false" "$TDIR/daemon.log"
}
