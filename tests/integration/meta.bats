#!/usr/bin/env bats
# meta.bats - the generated meta.json of entries and groups: found by name
# (not listed), readable by any tool, writable with a valid document.

load helpers

@test "every entry and group has a meta.json, not listed; the root has none" {
	mkdir -p "$MNT/e/g"
	echo x >"$MNT/e/a"
	echo y >"$MNT/e/z"
	[ ! -e "$MNT/meta.json" ]
	[ "$("$PY" -c 'import os,sys; print(sorted(os.listdir(sys.argv[1])))' "$MNT/e")" = "['a', 'g', 'z']" ]
	[ "$("$PY" -c 'import os,sys; print(os.listdir(sys.argv[1]))' "$MNT/e/g")" = "[]" ]
	[ "$(ls -A "$MNT/e" | tr '\n' ' ')" = "a g z " ]
	[ -f "$MNT/e/meta.json" ] && [ -f "$MNT/e/g/meta.json" ]
	"$PY" - "$MNT/e/meta.json" "$MNT/e/g/meta.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
g = json.load(open(sys.argv[2]))
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
{"tensors": {"t": {"dtype": "float32", "shape": [2, 3]}},
 "attrs": {"model": "demo", "step": 12}}
EOF
	"$PY" - "$MNT/e/meta.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
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
{"tensors": {"a": {"dtype": "torch.float16", "shape": [12]},
             "b": {"dtype": "<i8", "shape": [3]},
             "c": {"dtype": "double", "shape": [3]}}}
EOF
	"$PY" - "$MNT/e/meta.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["tensors"]
assert (t["a"]["dtype"], t["a"]["shape"]) == ("float16", [12]), t
assert (t["b"]["dtype"], t["b"]["shape"]) == ("int64", [3]), t
assert (t["c"]["dtype"], t["c"]["shape"]) == ("float64", [3]), t
EOF
	# big-endian is not ours: refused whole, nothing changed
	echo '{"tensors": {"b": {"dtype": ">i8", "shape": [3]}}}' >"$TDIR/big.json"
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
m["tensors"]["t"]["dtype"] = "int16"
m["tensors"]["t"]["shape"] = [2, 4]
m["pinned"] = True
with open(p, "w") as f:
    json.dump(m, f)
m = json.load(open(p))
assert m["tensors"]["t"]["shape"] == [2, 4] and m["pinned"] is True, m
EOF
}

@test "rm of meta.json is a no-op: it is generated" {
	mkdir "$MNT/e"
	echo x >"$MNT/e/t"
	rm "$MNT/e/meta.json"
	[ -f "$MNT/e/meta.json" ]
	grep -q '"t"' "$MNT/e/meta.json"
}

@test "a directory copied out of the mount copies back in, identical" {
	mkdir -p "$MNT/e/g"
	head -c 24 /dev/urandom >"$MNT/e/t"
	echo hi >"$MNT/e/g/u"
	cp -r "$MNT/e" "$TDIR/out"
	# only the user's files leave the mount
	[ ! -e "$TDIR/out/meta.json" ] && [ ! -e "$TDIR/out/g/meta.json" ]
	diff -r "$MNT/e" "$TDIR/out"
	# back into a new directory (cp creates with O_EXCL), and with tar
	cp -r "$TDIR/out" "$MNT/back"
	diff -r "$TDIR/out" "$MNT/back"
	tar -cf "$TDIR/e.tar" -C "$MNT" e
	mkdir "$MNT/untar"
	tar -xf "$TDIR/e.tar" -C "$MNT/untar"
	diff -r "$MNT/e" "$MNT/untar/e"
	# a meta.json copied in by name is applied
	echo '{"attrs": {"k": "v"}, "tensors": {"t": {"dtype": "float64", "shape": [3]}}}' >"$TDIR/m.json"
	cp "$TDIR/m.json" "$MNT/back/meta.json"
	"$PY" - "$MNT/back/meta.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["tensors"]["t"]["dtype"] == "float64", m
assert m["attrs"] == {"k": "v"}, m
EOF
}
