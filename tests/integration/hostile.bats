#!/usr/bin/env bats
# hostile.bats - hostile names and paths: ".." inside names, leading
# dashes, spaces, tabs, newlines, control characters, bytes >= 0x80 (and
# invalid UTF-8), names that look like meta.json, 255- and 256-byte names,
# deep nesting and paths near PATH_MAX.  Each one works and round-trips
# through cp, ls, stat and a remount, or is refused with the right errno;
# the daemon never crashes and never creates anything outside its store
# directory (checked after every test: the store holds only lock, pool
# and journal; the daemon's working directory and the test dir stay
# empty of anything else).

load helpers

setup() {
	# the daemon runs in an empty directory of its own: a relative path
	# used by mistake would leave something there
	DCWD=$(mktemp -d "${TMPDIR:-/tmp}/tcfs-cwd.XXXXXX")
	cd "$DCWD"
	tcfs_setup
	cd /
}

teardown() {
	local rc=0
	if [ -n "${TDIR:-}" ] && daemon_alive; then
		store_clean || rc=1
	fi
	tcfs_teardown || rc=1
	[ -z "$(ls -A "$DCWD")" ] || {
		echo "# the daemon created files in its working directory:" >&3
		ls -A "$DCWD" | sed 's/^/#   /' >&3
		rc=1
	}
	rm -rf "$DCWD"
	return $rc
}

# The store holds only what the cache owns; nothing appeared next to it.
store_clean() {
	local extra
	extra=$(ls -A "$STORE" | grep -vxE 'lock|pool|journal|journal\.new')
	if [ -n "$extra" ] || [ -n "$(find "$STORE" -mindepth 1 -type d)" ]; then
		echo "# unexpected in the store directory:" >&3
		ls -lA "$STORE" | sed 's/^/#   /' >&3
		return 1
	fi
	extra=$(ls -A "$TDIR" | grep -vxE 'store|mnt|src|daemon\.log')
	if [ -n "$extra" ]; then
		echo "# unexpected in the test directory: $extra" >&3
		return 1
	fi
}

# The names of the round-trip test, as Python bytes literals.
NAMES='[
    b"a..b", b"..x", b"x..", b"...", b"....", b".. ", b"..\xc3\xa9",
    b"-", b"-rf", b"--help", b"-n", b"--", b"-e\n",
    b" ", b"   ", b" lead", b"trail ", b"in side",
    b"tab\there", b"\t", b"new\nline", b"\n", b"\n\n", b"cr\rret",
    b"\x01\x02ctl\x1b[31m\x7f",
    "\u00f1and\u00fa".encode(), "\u65e5\u672c\u8a9e".encode(),
    "e\u0301".encode(), "\u00e9".encode(), "\U0001f600".encode(),
    b"\xff\xfe", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
    b"q\"uo\x27te\\", b"*?[]{}", b"$(touch x)`touch y`", b"%s%n%x%p",
    b"META.JSON", b"Meta.json", b"meta.json~", b"meta.json.bak",
    b".meta.json", b"meta.json ", b" meta.json", b"meta.jso", b"meta.json\n",
    b"~", b"#", b"!", b"@", b".hidden", b"..hidden",
]'

@test "hostile names round-trip through cp -r, ls, stat, diff -r and a remount" {
	# the reference tree on local disk: entry N / tensor N, group g /
	# tensor N, one per name
	"$PY" - "$SRC/ref" <<EOF
import os, sys, hashlib
names = $NAMES
ref = sys.argv[1].encode()
os.mkdir(ref)
for i, n in enumerate(names):
    assert 0 < len(n) <= 255 and b"/" not in n and b"\0" not in n
    os.makedirs(ref + b"/" + n + b"/g")
    for p in (ref + b"/" + n + b"/" + n, ref + b"/" + n + b"/g/" + n):
        with open(p, "wb") as f:
            f.write(hashlib.sha256(p).digest() * (i + 1))
EOF
	cp -r "$SRC/ref/." "$MNT/"
	diff -r "$SRC/ref" "$MNT"

	# listing, stat and bytes, name by name
	check_tree() {
		MNT=$MNT "$PY" - "$SRC/ref" <<EOF
import os, sys
names = $NAMES
ref = sys.argv[1].encode()
mnt = os.environ["MNT"].encode()
assert sorted(os.listdir(mnt)) == sorted(names), os.listdir(mnt)
for n in names:
    assert sorted(os.listdir(mnt + b"/" + n)) == sorted([n, b"g"]), n
    assert os.listdir(mnt + b"/" + n + b"/g") == [n], n
    for rel in (b"/" + n + b"/" + n, b"/" + n + b"/g/" + n):
        st = os.stat(mnt + rel)
        data = open(mnt + rel, "rb").read()
        assert data == open(ref + rel, "rb").read(), rel
        assert st.st_size == len(data), rel
    assert os.path.isdir(mnt + b"/" + n + b"/g")
    # meta.json is there by name and lists the tensor (bytes compared:
    # JSON escapes, UTF-8 or not, are checked in the next test)
    raw = open(mnt + b"/" + n + b"/meta.json", "rb").read()
    assert raw.startswith(b"{") and b'"nbytes"' in raw, n
EOF
	}
	check_tree

	# ls and stat(1) see every name (escaped, one per line)
	[ "$(ls -A --quoting-style=escape "$MNT" | wc -l)" -eq \
	  "$(ls -A --quoting-style=escape "$SRC/ref" | wc -l)" ]
	diff <(cd "$SRC/ref" && ls -AR --quoting-style=escape .) \
	     <(cd "$MNT" && ls -AR --quoting-style=escape .)
	find "$MNT" -mindepth 1 -print0 | xargs -0 stat --printf '%s\n' >/dev/null
	diff <(cd "$SRC/ref" && find . -type f -print0 | sort -z | xargs -0 stat --printf '%n %s\n') \
	     <(cd "$MNT" && find . -type f -print0 | sort -z | xargs -0 stat --printf '%n %s\n')

	# out again with cp, and after a remount
	cp -r "$MNT/." "$SRC/out"
	diff -r "$SRC/ref" "$SRC/out"
	tcfs_remount
	check_tree
	diff -r "$SRC/ref" "$MNT"

	# rename each to another hostile name and back; then remove them all
	"$PY" - "$MNT" <<EOF
import os, sys
names = $NAMES
mnt = sys.argv[1].encode()
for a, b in zip(names, names[1:] + names[:1]):
    os.rename(mnt + b"/" + a + b"/" + a, mnt + b"/" + a + b"/" + b + b".mv")
for a, b in zip(names, names[1:] + names[:1]):
    os.rename(mnt + b"/" + a + b"/" + b + b".mv", mnt + b"/" + a + b"/" + a)
EOF
	diff -r "$SRC/ref" "$MNT"
	rm -rf "$MNT"/* "$MNT"/.[!.]* "$MNT"/..?*
	[ -z "$(ls -A "$MNT")" ]
	tcfs_remount
	[ -z "$(ls -A "$MNT")" ]
}

@test "meta.json stays valid JSON (UTF-8) whatever the tensor names" {
	mkdir "$MNT/e"
	"$PY" - "$MNT/e" <<EOF
import errno, json, os, sys
names = $NAMES
e = sys.argv[1].encode()
refused = []
for n in names:
    try:
        with open(e + b"/" + n, "wb") as f:
            f.write(b"0123")
    except OSError as x:
        # refusing a name is allowed, but only with EINVAL
        assert x.errno == errno.EINVAL, (n, x)
        refused.append(n)
raw = open(e + b"/meta.json", "rb").read()
try:
    m = json.loads(raw)["__tcache__"] # bytes: must be UTF-8 (RFC 8259)
except ValueError as x:
    sys.exit("meta.json is not valid JSON: %s" % x)
# every stored name is in it, told apart from every other one
stored = sorted(set(names) - set(refused))
assert len(m["tensors"]) == len(stored), (len(m["tensors"]), len(stored))
for n in stored:
    if n in [k.encode("utf-8", "surrogatepass") for k in m["tensors"]]:
        continue
    try:
        assert n.decode("utf-8") in m["tensors"], n
    except UnicodeDecodeError:
        pass  # not UTF-8: how it is spelled there is up to the daemon
print("refused:", refused)
EOF
}

@test "a tensor's dtype can be set through meta.json whatever its name" {
	mkdir "$MNT/e"
	"$PY" - "$MNT/e" <<'EOF'
import json, os, sys
e = sys.argv[1]
names = ["new\nline", "tab\there", "q\"uo'te\\", "\u00f1and\u00fa", "-rf",
         "..x", " ", "META.JSON", "meta.json~", "%s%n", "\u0001ctl"]
for n in names:
    with open(os.path.join(e, n), "wb") as f:
        f.write(bytes(8))
doc = {"__tcache__": {"tensors": {n: {"dtype": "float32", "shape": [2]} for n in names},
                      "attrs": {"name\n\t\"": "v\u00e9"}}}
with open(os.path.join(e, "meta.json"), "w") as f:
    f.write(json.dumps(doc))
m = json.loads(open(os.path.join(e, "meta.json"), "rb").read())["__tcache__"]
for n in names:
    t = m["tensors"][n]
    assert t["dtype"] == "float32" and t["shape"] == [2], (n, t)
assert m["attrs"] == {"name\n\t\"": "v\u00e9"}, m["attrs"]
EOF
	tcfs_remount
	grep -q '"new\\nline"' "$MNT/e/meta.json"
	grep -c float32 "$MNT/e/meta.json" | grep -qx 11
}

@test "the name meta.json: an entry may be called so, a tensor or group may not" {
	mkdir "$MNT/meta.json"
	[ -d "$MNT/meta.json" ]
	[ -f "$MNT/meta.json/meta.json" ]
	grep -q '"__tcache__"' "$MNT/meta.json/meta.json"
	echo hi >"$MNT/meta.json/t"
	[ "$(cat "$MNT/meta.json/t")" = hi ]
	expect_errno EEXIST 'os.mkdir(MNT + "/meta.json/meta.json")'
	expect_errno EEXIST 'os.open(MNT + "/meta.json/meta.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY)'
	echo '{"k": 1}' >"$MNT/meta.json/doc"
	os_rename_ok=$("$PY" -c 'import os,sys; os.rename(sys.argv[1] + "/doc", sys.argv[1] + "/meta.json"); print("ok")' "$MNT/meta.json")
	[ "$os_rename_ok" = ok ] && grep -q '"k": 1' "$MNT/meta.json/meta.json"
	mkdir "$MNT/meta.json/grp"
	expect_errno ENOTDIR 'os.rename(MNT + "/meta.json/grp", MNT + "/meta.json/meta.json")'
	expect_errno EPERM 'os.rename(MNT + "/meta.json/meta.json", MNT + "/meta.json/u")'
	mkdir "$MNT/meta.json/g"
	expect_errno EEXIST 'os.mkdir(MNT + "/meta.json/g/meta.json")'
	tcfs_remount
	[ "$(cat "$MNT/meta.json/t")" = hi ]
	[ "$(ls -A "$MNT/meta.json")" = "$(printf 'g\ngrp\nt')" ]
	rm -r "$MNT/meta.json"
	[ ! -e "$MNT/meta.json" ]
}

@test "255-byte names work everywhere; 256 and more: ENAMETOOLONG, nothing created" {
	"$PY" - "$MNT" "$SRC" <<'EOF'
import errno, os, sys
mnt, src = sys.argv[1], sys.argv[2]
n255 = "a" * 255
m255 = "\u00e9" * 127 + "x"          # 255 bytes of UTF-8
assert len(m255.encode()) == 255
for n in (n255, m255):
    os.mkdir(os.path.join(mnt, n))                      # entry
    os.mkdir(os.path.join(mnt, n, n))                   # group
    with open(os.path.join(mnt, n, n, n), "wb") as f:   # tensor in group
        f.write(n.encode() * 3)
    os.rename(os.path.join(mnt, n, n, n), os.path.join(mnt, n, n, n[:-1] + "z"))
    os.rename(os.path.join(mnt, n, n, n[:-1] + "z"), os.path.join(mnt, n, n, n))
    assert open(os.path.join(mnt, n, n, n), "rb").read() == n.encode() * 3
before = sorted(os.listdir(mnt))

def refused(fn, *a):
    try:
        fn(*a)
    except OSError as x:
        assert x.errno == errno.ENAMETOOLONG, (fn, x)
        return
    raise AssertionError("%s%r succeeded" % (fn.__name__, a))

e = os.path.join(mnt, n255)
for long in ("b" * 256, "\u00e9" * 128, "c" * 1000, "d" * 1025, "e" * 4000):
    refused(os.mkdir, os.path.join(mnt, long))
    refused(os.mkdir, os.path.join(e, long))
    refused(os.open, os.path.join(e, long), os.O_CREAT | os.O_WRONLY)
    refused(os.open, os.path.join(mnt, long), os.O_CREAT | os.O_WRONLY)
    refused(os.stat, os.path.join(e, long))
    refused(os.open, os.path.join(e, long), os.O_RDONLY)
    refused(os.rename, os.path.join(e, n255), os.path.join(e, long))
    refused(os.rename, os.path.join(e, long), os.path.join(e, "x"))
    refused(os.rename, e, os.path.join(mnt, long))
    refused(os.unlink, os.path.join(e, long))
    refused(os.rmdir, os.path.join(e, long))
    refused(os.symlink, "target", os.path.join(e, long))
    refused(os.mknod, os.path.join(e, long))
assert sorted(os.listdir(mnt)) == before
assert sorted(os.listdir(e)) == [n255]
assert os.listdir(os.path.join(e, n255)) == [n255]
EOF
	n255=$(printf 'a%.0s' {1..255})
	cp "$MNT/$n255/$n255/$n255" "$SRC/copy"
	tcfs_remount
	cmp "$SRC/copy" "$MNT/$n255/$n255/$n255"
	stat "$MNT/$n255/$n255/$n255" >/dev/null
	[ "$(ls "$MNT" | wc -l)" -eq 2 ]
	run mkdir "$MNT/$n255/${n255}b"
	[ "$status" -ne 0 ]
	[[ "$output" == *"too long"* ]]
}

@test "100 levels of groups: write, read, meta.json, remount, rm -r" {
	deep=$MNT/deep/$(printf 'g%.0s/' {1..100})
	mkdir -p "$deep"
	random_file "$SRC/blob" 100000
	cp "$SRC/blob" "$deep/t"
	cmp "$SRC/blob" "$deep/t"
	grep -q '"t"' "$deep/meta.json"
	[ "$(find "$MNT/deep" -type d | wc -l)" -eq 101 ]
	tcfs_remount
	cmp "$SRC/blob" "$deep/t"
	grep -q '"nbytes":.*100000' "$deep/meta.json"
	cp -r "$MNT/deep" "$SRC/deep"
	diff -r "$SRC/deep" "$MNT/deep"
	mv "$MNT/deep" "$MNT/deeper"
	cmp "$SRC/blob" "$MNT/deeper/$(printf 'g%.0s/' {1..100})t"
	rm -r "$MNT/deeper"
	[ -z "$(ls -A "$MNT")" ]
	tcfs_remount
	[ -z "$(ls -A "$MNT")" ]
}

@test "paths near and beyond PATH_MAX; 2000 levels deep; evicting a deep entry" {
	tcfs_remount -o capacity=8M
	"$PY" - "$MNT" <<'EOF'
import errno, os, sys
mnt = sys.argv[1]
PATH_MAX = os.pathconf("/", "PC_PATH_MAX")

# 1. long names: an absolute path of PATH_MAX - 1 bytes works, one more
#    byte is refused by the kernel; deeper still works through dir fds
os.mkdir(os.path.join(mnt, "long"))
p = os.path.join(mnt, "long")
rem = PATH_MAX - 1 - len(p)        # bytes left for "/name..."
while rem > 256:
    p = os.path.join(p, "n" * min(255, rem - 3))
    os.mkdir(p)
    rem = PATH_MAX - 1 - len(p)
name = "f" * (rem - 1)
assert 0 < len(name) <= 255, len(name)
full = os.path.join(p, name)
assert len(full) == PATH_MAX - 1
with open(full, "wb") as f:
    f.write(b"at PATH_MAX - 1")
assert open(full, "rb").read() == b"at PATH_MAX - 1"
try:
    open(full + "x", "wb")
    raise AssertionError("a path of PATH_MAX bytes was accepted")
except OSError as x:
    assert x.errno == errno.ENAMETOOLONG, x
fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
for i in range(5):                       # beyond PATH_MAX, relative
    os.mkdir("m" * 255, dir_fd=fd)
    nfd = os.open("m" * 255, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
t = os.open("t", os.O_CREAT | os.O_WRONLY, dir_fd=fd)
os.write(t, b"beyond PATH_MAX")
os.close(t)
os.close(fd)

# 2. 2000 levels of one-letter groups: a path of about 4000 bytes
os.mkdir(os.path.join(mnt, "deep"))
fd = os.open(os.path.join(mnt, "deep"), os.O_RDONLY | os.O_DIRECTORY)
for i in range(2000):
    os.mkdir("g", dir_fd=fd)
    nfd = os.open("g", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
t = os.open("t", os.O_CREAT | os.O_WRONLY, dir_fd=fd)
os.write(t, b"2000 levels down")
os.close(t)
os.close(fd)
bottom = os.path.join(mnt, "deep", *(["g"] * 2000), "t")
assert len(bottom) < PATH_MAX
assert open(bottom, "rb").read() == b"2000 levels down"
EOF
	tcfs_remount
	"$PY" - "$MNT" <<'EOF'
import os, sys
mnt = sys.argv[1]
bottom = os.path.join(mnt, "deep", *(["g"] * 2000))
assert open(os.path.join(bottom, "t"), "rb").read() == b"2000 levels down"
assert b'"t"' in open(os.path.join(bottom, "meta.json"), "rb").read()
# walk to the tensor beyond PATH_MAX with dir fds
fd = os.open(os.path.join(mnt, "long"), os.O_RDONLY | os.O_DIRECTORY)
while True:
    names = os.listdir(fd)
    if names == ["t"] or not names:
        break
    sub = [n for n in names if set(n) <= set("nm")]
    assert len(sub) == 1, names
    nfd = os.open(sub[0], os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
t = os.open("t", os.O_RDONLY, dir_fd=fd)
assert os.read(t, 100) == b"beyond PATH_MAX"
os.close(t)
os.close(fd)
EOF
	# the deep entries are the least recently used: filling the
	# capacity evicts them whole
	random_file "$SRC/blob" $((1024 * 1024))
	for i in $(seq 1 12); do
		mkdir "$MNT/fill$i"
		cp "$SRC/blob" "$MNT/fill$i/t"
	done
	[ ! -e "$MNT/deep" ]
	[ ! -e "$MNT/long" ]
	cmp "$SRC/blob" "$MNT/fill12/t"
	tcfs_remount
	[ ! -e "$MNT/deep" ]
	cmp "$SRC/blob" "$MNT/fill12/t"
	# and removing a deep tree with rm -r
	mkdir -p "$MNT/again/$(printf 'g%.0s/' {1..500})"
	rm -r "$MNT/again"
	[ ! -e "$MNT/again" ]
}

@test "path tricks: .. and . in paths stay in the mount; root-level names" {
	mkdir "$MNT/e"
	echo x >"$MNT/e/t"
	# the kernel resolves these; the daemon only ever sees one name
	[ "$(cat "$MNT/e/../e/./t")" = x ]
	cp "$MNT/e/t" "$MNT/e/../e/u"
	[ "$(cat "$MNT/e/u")" = x ]
	echo r >"$MNT/e/../root-file"
	[ "$(cat "$MNT/root-file")" = r ]
	expect_errno EXDEV 'os.rename(MNT + "/e/t", MNT + "/e/../t")'
	expect_errno EEXIST 'os.mkdir(MNT + "/e/..")'
	expect_errno EEXIST 'os.mkdir(MNT + "/e/.")'
	# a root-level file with a hostile name is an entry like any other
	"$PY" -c 'import os,sys; open(sys.argv[1] + "/-rf\n..", "w").write("h"); os.mknod(sys.argv[1] + "/..x")' "$MNT"
	[ "$(cat "$MNT/-rf
..")" = h ] && [ -f "$MNT/..x" ]
	# links and special files with hostile names: EPERM, not created
	expect_errno EPERM 'os.symlink("../../../etc/passwd", MNT + "/e/..x")'
	expect_errno EPERM 'os.symlink("/", MNT + "/e/-rf")'
	expect_errno EPERM 'os.link(MNT + "/e/t", MNT + "/e/..y")'
	expect_errno EPERM 'os.mkfifo(MNT + "/e/\n")'
	[ "$(ls -A "$MNT/e" | tr '\n' ' ')" = "t u " ]
	[ "$("$PY" -c 'import os,sys; print(sorted(os.listdir(sys.argv[1])))' "$MNT")" = "['-rf\n..', '..x', 'e', 'root-file']" ]
}

@test "many hostile operations in a row leave a store that opens and checks" {
	"$PY" - "$MNT" <<EOF
import errno, os, random, sys
names = $NAMES
mnt = sys.argv[1].encode()
rnd = random.Random(4)
ok = bad = 0
for i in range(3000):
    a = rnd.choice(names)
    b = rnd.choice(names)
    op = rnd.randrange(6)
    try:
        if op == 0:
            os.mkdir(mnt + b"/" + a)
        elif op == 1:
            with open(mnt + b"/" + a + b"/" + b, "wb") as f:
                f.write(a + b)
        elif op == 2:
            os.rename(mnt + b"/" + a + b"/" + b, mnt + b"/" + b + b"/" + a)
        elif op == 3:
            os.unlink(mnt + b"/" + a + b"/" + b)
        elif op == 4:
            os.mkdir(mnt + b"/" + a + b"/" + b)
        else:
            os.rename(mnt + b"/" + a, mnt + b"/" + b)
        ok += 1
    except OSError as x:
        assert x.errno in (errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY,
                           errno.EISDIR, errno.ENOTDIR, errno.EINVAL), (op, a, b, x)
        bad += 1
print("ok", ok, "refused", bad)
assert ok > 500
EOF
	find "$MNT" -type f -print0 | sort -z | xargs -0 -r md5sum >"$SRC/before"
	tcfs_remount
	find "$MNT" -type f -print0 | sort -z | xargs -0 -r md5sum >"$SRC/after"
	diff "$SRC/before" "$SRC/after"
}
