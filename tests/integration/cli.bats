#!/usr/bin/env bats
# cli.bats - the tcache command on a mount and on a store, mount -t,
# an fstab line, and what meson install puts in place.

load helpers

: "${TCACHE:?TCACHE must name the tcache tool}"

@test "tcache --help, --version and every subcommand's --help" {
	run "$TCACHE" --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"prune"* ]]
	run "$TCACHE" --version
	[ "$status" -eq 0 ]
	[[ "$output" == "tcache "* ]]
	for c in stats ls prune pin unpin key match fsck; do
		run "$TCACHE" "$c" --help
		[ "$status" -eq 0 ]
		[[ "$output" == "usage: tcache $c"* ]]
	done
	run "$TCACHE"
	[ "$status" -eq 2 ]
	run "$TCACHE" nonsense
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown command"* ]]
}

@test "tcache stats: a mount (same numbers as its stats file) and a stopped store" {
	mkdir "$MNT/a" "$MNT/b"
	head -c 100000 /dev/urandom >"$MNT/a/t"
	head -c 50000 /dev/urandom >"$MNT/b/t"
	cat "$MNT/a/t" >/dev/null
	[ -e "$MNT/a" ]
	[ ! -e "$MNT/nope" ]
	run "$TCACHE" stats "$MNT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"capacity"* && "$output" == *"hit rate"* ]]
	"$TCACHE" stats --json "$MNT" >"$TDIR/s1"
	cat "$MNT/.tcache-stats" >"$TDIR/s2"
	"$PY" - "$TDIR/s1" "$TDIR/s2" <<'PYEOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("capacity", "entries", "tensors", "live_bytes", "evictions"):
    assert a[k] == b[k], (k, a[k], b[k])
assert a["entries"] == 2 and a["tensors"] == 2 and a["live_bytes"] == 150000, a
assert a["probes"] >= 3 and a["hits"] >= 1 and a["free"] == a["capacity"] - a["used"], a
assert a["newest_access"] and a["oldest_access"], a
PYEOF
	# not listed, not creatable, read-only
	list=$(ls -A "$MNT")
	run grep -q tcache-stats <<<"$list"
	[ "$status" -eq 1 ]
	run mkdir "$MNT/.tcache-stats"
	[ "$status" -ne 0 ]
	run sh -c "echo x > '$MNT/.tcache-stats'"
	[ "$status" -ne 0 ]
	# a stopped store, read without being changed
	tcfs_unmount
	sum=$(md5sum "$STORE/journal")
	run "$TCACHE" stats --json "$STORE"
	[ "$status" -eq 0 ]
	"$PY" -c 'import json,sys; s=json.loads(sys.argv[1]); assert s["entries"] == 2, s' "$output"
	[ "$(md5sum "$STORE/journal")" = "$sum" ]
	# a mounted store: the live numbers, through its mount
	tcfs_mount
	run "$TCACHE" stats --json "$STORE"
	[ "$status" -eq 0 ]
	"$PY" -c 'import json,sys; s=json.loads(sys.argv[1]); assert s["entries"] == 2, s' "$output"
	run "$TCACHE" stats "$TDIR"
	[ "$status" -eq 2 ]
}

@test "tcache ls sorts by recency and size and shows pins (files at the root too)" {
	head -c 50000 /dev/urandom >"$MNT/flat"
	for e in old mid new; do
		mkdir "$MNT/$e"
	done
	head -c 300000 /dev/urandom >"$MNT/old/t"
	head -c 100000 /dev/urandom >"$MNT/mid/t"
	mkdir "$MNT/new/g"
	head -c 200000 /dev/urandom >"$MNT/new/g/t"
	cat "$MNT/mid/t" >/dev/null
	cat "$MNT/new/g/t" >/dev/null
	chmod +t "$MNT/mid"
	run "$TCACHE" ls "$MNT"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | awk 'NR>1 {print $NF}' | tr '\n' ' ')" = "flat old mid new " ]
	cat "$MNT/flat" >/dev/null
	chmod +t "$MNT/flat"
	run "$TCACHE" ls "$MNT"
	[ "$(echo "$output" | awk 'NR>1 {print $NF}' | tr '\n' ' ')" = "old mid new flat " ]
	run "$TCACHE" ls --sort=size --json "$MNT"
	"$PY" - "$output" <<'PYEOF'
import json, sys
v = json.loads(sys.argv[1])
assert [e["name"] for e in v] == ["old", "new", "mid", "flat"], v
assert [e["bytes"] for e in v] == [300000, 200000, 100000, 50000], v
assert [e["pinned"] for e in v] == [False, False, True, True], v
PYEOF
	run "$TCACHE" ls --sort=bogus "$MNT"
	[ "$status" -eq 2 ]
	run "$TCACHE" ls "$TDIR"
	[ "$status" -eq 2 ]
	[[ "$output" == *"not a tcachefs mount"* ]]
}

@test "tcache prune removes what was not used for AGE, keeps pins, --dry-run changes nothing" {
	mkdir "$MNT/a" "$MNT/b" "$MNT/c"
	echo x >"$MNT/a/t"
	echo y >"$MNT/b/t"
	echo f >"$MNT/f"
	echo p >"$MNT/pf"
	mkdir "$MNT/c/g" && echo z >"$MNT/c/g/t"
	"$TCACHE" pin "$MNT/b" "$MNT/pf"
	run "$TCACHE" prune "$MNT" --older-than 1h
	[ "$status" -eq 0 ]
	[[ "$output" == "removed 0 of 5"* ]]
	# make them old: wait 2 s, then prune everything older than 1 s
	WAIT_S=5 wait_for eval '[ $(( $(date +%s) - $(stat -c %Y "$MNT/c/g/t") )) -ge 2 ]'
	run "$TCACHE" prune "$MNT" --older-than 1s --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"would remove a"* && "$output" == *"would remove c"* ]]
	[[ "$output" == *"would remove f"* ]]
	[[ "$output" != *"would remove b"* && "$output" != *"would remove pf"* ]]
	[ -e "$MNT/a/t" ]
	[ -e "$MNT/c/g/t" ]
	[ -e "$MNT/f" ]
	run "$TCACHE" prune "$MNT" --older-than 1s
	[ "$status" -eq 0 ]
	[[ "$output" == "removed 3 of 5"* ]]
	[ ! -e "$MNT/a" ]
	[ ! -e "$MNT/c" ]
	[ ! -e "$MNT/f" ]
	[ -e "$MNT/b/t" ]
	[ -e "$MNT/pf" ]
	run "$TCACHE" prune "$MNT" --older-than soon
	[ "$status" -eq 2 ]
	run "$TCACHE" prune "$MNT"
	[ "$status" -eq 2 ]
}

@test "tcache pin/unpin = chmod +t/-t; a pinned entry is never evicted" {
	tcfs_remount -o capacity=4M
	mkdir "$MNT/keep"
	head -c 1000000 /dev/urandom >"$SRC/k"
	cp "$SRC/k" "$MNT/keep/t"
	"$TCACHE" pin "$MNT/keep"
	[ -k "$MNT/keep" ]
	grep -q '"pinned":.*true' "$MNT/keep/meta.json"
	for i in $(seq 1 8); do
		mkdir "$MNT/e$i"
		head -c 1000000 /dev/urandom >"$MNT/e$i/t"
	done
	cmp "$SRC/k" "$MNT/keep/t"
	"$TCACHE" unpin "$MNT/keep"
	[ ! -k "$MNT/keep" ]
	grep -q '"pinned":.*false' "$MNT/keep/meta.json"
	chmod +t "$MNT/keep"
	grep -q '"pinned":.*true' "$MNT/keep/meta.json"
	run "$TCACHE" pin "$MNT/keep/t"
	[ "$status" -eq 2 ]
	echo r >"$MNT/rootfile"
	"$TCACHE" pin "$MNT/rootfile"
	[ -k "$MNT/rootfile" ]
	"$TCACHE" unpin "$MNT/rootfile"
	[ ! -k "$MNT/rootfile" ]
	run "$TCACHE" pin "$TDIR"
	[ "$status" -eq 2 ]
}

@test "tcache key: stable, safe, distinguishes field boundaries" {
	k1=$("$TCACHE" key "model-a" "What is a tensor?")
	k2=$("$TCACHE" key "model-a" "What is a tensor?")
	k3=$("$TCACHE" key "model-aWhat is a tensor?")
	[ "$k1" = "$k2" ]
	[ "$k1" != "$k3" ]
	[[ "$k1" =~ ^[0-9a-f]{32}$ ]]
	mkdir "$MNT/$k1"
	[ -d "$MNT/$k1" ]
	run "$TCACHE" key
	[ "$status" -eq 2 ]
}

@test "tcache key: STRINGs starting with -- go after --" {
	k1=$("$TCACHE" key -- --weird "b")
	[[ "$k1" =~ ^[0-9a-f]{32}$ ]]
	[ "$k1" != "$("$TCACHE" key -- --weirdb)" ]
	[ "$k1" = "$("$TCACHE" key -- --weird b)" ]
}

@test "tcache key --tokens prints tcache.page_hashes: page sizes, --prior, --namespace, text, stdin, .npy of every integer dtype" {
	TCACHE=$TCACHE TDIR=$TDIR PYTHONPATH=$BATS_TEST_DIRNAME/../../tools/python "$PY" - <<'EOF_PY'
import os, random, subprocess
import numpy as np
from tcache import page_hashes

T, D = os.environ["TCACHE"], os.environ["TDIR"]
rng = random.Random(15)
toks = [rng.randrange(2 ** 32) for _ in range(3000)] + [0, 1, 2 ** 32 - 1]

def key(*args, stdin=None):
    r = subprocess.run([T, "key", *args], input=stdin, capture_output=True)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout.decode().split()

with open(D + "/toks.txt", "w") as f:  # mixed whitespace, a trailing newline
    f.write("\n".join(" ".join(map(str, toks[i:i + 7])) for i in range(0, len(toks), 7)))
    f.write("\t\r\n")
n = 0
for ps in (1, 3, 16, 64, 1000, 3003, 4000):
    want = page_hashes(toks, ps)
    assert key("--tokens", D + "/toks.txt", "--page-size", str(ps)) == want, ps
    assert key("--page-size=%d" % ps, "--tokens=-", stdin=open(D + "/toks.txt", "rb").read()) == want, ps
    for ns in ("model-a", "ünï", ""):
        assert key("--tokens", D + "/toks.txt", "--page-size", str(ps),
                   "--namespace", ns) == page_hashes(toks, ps, namespace=ns), (ps, ns)
    prior = page_hashes(toks[:64], 64)[0]
    assert key("--tokens", D + "/toks.txt", "--page-size", str(ps), "--prior", prior) == \
        page_hashes(toks, ps, prior=prior), ps
    assert key("--tokens", D + "/toks.txt", "--page-size", str(ps), "--prior", prior.upper(),
               "--namespace", "x") == page_hashes(toks, ps, prior=prior, namespace="x"), ps
    n += len(want)
assert n > 3000, n
# .npy: every integer dtype, its range's ends included; format 1.0 and 2.0
for dt in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"):
    info = np.iinfo(dt)
    hi = min(int(info.max), 2 ** 32 - 1)
    vals = [0, hi] + [rng.randrange(hi + 1) for _ in range(498)]
    for version in ((1, 0), (2, 0)):
        path = "%s/t_%s_%d.npy" % (D, dt, version[0])
        with open(path, "wb") as f:
            np.lib.format.write_array(f, np.array(vals, dtype=dt), version=version)
        for ps in (1, 7, 50):
            assert key("--tokens", path, "--page-size", str(ps)) == page_hashes(vals, ps), (dt, ps)
        assert key("--tokens", "-", "--page-size", "10", stdin=open(path, "rb").read()) == \
            page_hashes(vals, 10), dt
# nothing, or less than a page: no key, exit 0
open(D + "/empty.txt", "w").close()
np.save(D + "/empty.npy", np.zeros(0, np.int64))
assert key("--tokens", D + "/empty.txt", "--page-size", "4") == []
assert key("--tokens", D + "/empty.npy", "--page-size", "4") == []
assert key("--tokens", "-", "--page-size", "4", stdin=b"1 2 3") == []
EOF_PY
}

@test "tcache key --tokens: bad tokens, files and options exit 2 saying why" {
	"$PY" - "$TDIR" <<'EOF_PY'
import sys
import numpy as np
D = sys.argv[1]
np.save(D + "/float.npy", np.zeros(8, np.float32))
np.save(D + "/neg.npy", np.array([1, 2, -3], np.int32))
np.save(D + "/big.npy", np.array([1, 2 ** 32], np.uint64))
np.save(D + "/bool.npy", np.ones(4, bool))
np.save(D + "/be.npy", np.arange(4, dtype=">i4"))
np.save(D + "/2d.npy", np.zeros((2, 2), np.int32))
np.save(D + "/0d.npy", np.array(5, np.int32))
np.save(D + "/ok.npy", np.arange(100, dtype=np.int64))
ok = open(D + "/ok.npy", "rb").read()
open(D + "/truncated.npy", "wb").write(ok[:-5])
open(D + "/trailing.npy", "wb").write(ok + b"\0")
open(D + "/header.npy", "wb").write(ok[:30])
open(D + "/magic.npy", "wb").write(b"\x93NUMPX" + ok[6:])
# numpy never writes a 1-d array in Fortran order: the header made so
open(D + "/fortran.npy", "wb").write(ok.replace(b"'fortran_order': False", b"'fortran_order': True "))
np.save(D + "/struct.npy", np.zeros(2, dtype=[("a", "<i4")]))
EOF_PY
	bad() {  # bad WHAT ARGS...: exit 2 and a message containing WHAT
		run "$TCACHE" key "${@:2}"
		echo "$*: $status: $output"
		[ "$status" -eq 2 ]
		[[ "$output" == *"$1"* ]]
	}
	bad "negative" --tokens - --page-size 1 <<<"1 2 -3"
	bad "not below 2^32" --tokens - --page-size 1 <<<"1 4294967296"
	bad "not below 2^32" --tokens - --page-size 1 <<<"99999999999999999999999999"
	bad "not an unsigned decimal integer" --tokens - --page-size 1 <<<"1 2.5"
	bad "not an unsigned decimal integer" --tokens - --page-size 1 <<<"1,2"
	bad "float.npy: .npy of dtype '<f4'" --tokens "$TDIR/float.npy" --page-size 1
	bad "bool.npy: .npy of dtype '|b1'" --tokens "$TDIR/bool.npy" --page-size 1
	bad "be.npy: .npy of dtype '>i4'" --tokens "$TDIR/be.npy" --page-size 1
	bad "token 2 is negative (-3)" --tokens "$TDIR/neg.npy" --page-size 1
	bad "token 1 (4294967296) is not below 2^32" --tokens "$TDIR/big.npy" --page-size 1
	bad "2 dimensions" --tokens "$TDIR/2d.npy" --page-size 1
	bad "0 dimensions" --tokens "$TDIR/0d.npy" --page-size 1
	bad "Fortran order" --tokens "$TDIR/fortran.npy" --page-size 1
	bad "truncated .npy: its header says 100 tokens (800 bytes), 795 bytes follow" \
		--tokens "$TDIR/truncated.npy" --page-size 1
	bad "malformed .npy" --tokens "$TDIR/trailing.npy" --page-size 1
	bad "truncated .npy header" --tokens "$TDIR/header.npy" --page-size 1
	bad "malformed .npy" --tokens - --page-size 1 < "$TDIR/magic.npy"
	bad "malformed .npy header" --tokens "$TDIR/struct.npy" --page-size 1
	bad "No such file" --tokens "$TDIR/nope" --page-size 1
	bad "--page-size takes a number" --tokens - --page-size 0 <<<"1 2"
	bad "--page-size takes a number" --tokens - --page-size -4 <<<"1 2"
	bad "--page-size takes a number" --tokens - --page-size 4x <<<"1 2"
	bad "expected --tokens FILE|- and --page-size N" --tokens - <<<"1 2"
	bad "--prior takes a page key" --tokens - --page-size 1 --prior abc <<<"1"
	bad "unknown option '--bogus'" --tokens - --page-size 1 --bogus <<<"1"
	bad "needs a value" --page-size 1 --tokens
	bad "--suffix is for match" --tokens - --page-size 1 --suffix .kv <<<"1"
	bad "unexpected 'extra'" --tokens - --page-size 1 extra <<<"1"
}

@test "tcache match MNT prints PageStore.match_prefix, with --suffix and --namespace" {
	TCACHE=$TCACHE TDIR=$TDIR MNT=$MNT PYTHONPATH=$BATS_TEST_DIRNAME/../../tools/python "$PY" - <<'EOF_PY'
import os, random, subprocess
import numpy as np
from tcache import PageStore

T, D, M = os.environ["TCACHE"], os.environ["TDIR"], os.environ["MNT"]
rng = random.Random(16)
toks = [rng.randrange(2 ** 32) for _ in range(16 * 20 + 5)]
np.save(D + "/toks.npy", np.array(toks, np.uint32))
with open(D + "/toks.txt", "w") as f:
    f.write(" ".join(map(str, toks)))

def match(*args):
    r = subprocess.run([T, "match", M, "--tokens", D + "/toks.npy", *args], capture_output=True)
    assert r.returncode == 0, (args, r.stderr)
    r2 = subprocess.run([T, "match", "--tokens", D + "/toks.txt", *args, M], capture_output=True)
    assert r2.stdout == r.stdout, (r.stdout, r2.stdout)
    return int(r.stdout)

plain = PageStore(M, 16)
kv = PageStore(M, 16, suffix=".kv", namespace="model-a")
assert match("--page-size", "16") == plain.match_prefix(toks) == 0
keys = plain.keys_for(toks)
plain.put(toks, [b"p" * 64] * 12)
kv.put(toks, [b"k" * 64] * 7)
cases = [((), plain, 192), (("--suffix", ".kv"), PageStore(M, 16, suffix=".kv"), 0),
         (("--suffix", ".kv", "--namespace", "model-a"), kv, 112),
         (("--namespace", "model-a"), PageStore(M, 16, namespace="model-a"), 0)]
for args, store, want in cases:
    assert store.match_prefix(toks) == want, (args, store.match_prefix(toks))
    assert match("--page-size", "16", *args) == want, args
plain.remove(keys[5])
assert match("--page-size", "16") == plain.match_prefix(toks) == 80
# another page size: other keys, none present
assert match("--page-size", "8") == PageStore(M, 8).match_prefix(toks) == 0
# --prior: the chain continued from page 2
rest = toks[48:]
with open(D + "/rest.txt", "w") as f:
    f.write(" ".join(map(str, rest)))
r = subprocess.run([T, "match", M, "--tokens", D + "/rest.txt", "--page-size", "16",
                    "--prior", keys[2]], capture_output=True)
assert int(r.stdout) == plain.match_prefix(rest, prior=keys[2]) == 32, r
EOF_PY
	run "$TCACHE" match "$TDIR" --tokens - --page-size 4 <<<"1 2 3 4"
	[ "$status" -eq 2 ]
	[[ "$output" == *"not a tcachefs mount"* ]]
	run "$TCACHE" match "$MNT" --tokens - --page-size 4 --suffix a/b <<<"1 2 3 4"
	[ "$status" -eq 2 ]
	[[ "$output" == *"may not contain '/'"* ]]
	run "$TCACHE" match --tokens - --page-size 4 <<<"1 2 3 4"
	[ "$status" -eq 2 ]
	[[ "$output" == *"expected one MNT"* ]]
}

@test "the mount's source in findmnt, df and /proc/mounts is the store's path" {
	[ "$(findmnt -n -o SOURCE "$MNT")" = "$STORE" ]
	[ "$(findmnt -n -o FSTYPE "$MNT")" = fuse.tcachefs ]
	[ "$(df --output=source "$MNT" | tail -1)" = "$STORE" ]
	# a path with a comma (fuse_opt's separator) and a space comes
	# through whole; a backslash too (findmnt shows it escaped: \x5c)
	tcfs_unmount
	STORE="$TDIR/st,o re"
	tcfs_mount
	[ "$(findmnt -n -o SOURCE "$MNT")" = "$STORE" ]
	grep -q '/st,o\\040re '"$MNT"' fuse.tcachefs ' /proc/mounts
	tcfs_unmount
	STORE="$TDIR/b\\s"
	tcfs_mount
	grep -q '/b\\134s '"$MNT"' fuse.tcachefs ' /proc/mounts
}

@test "tcache fsck of a mountpoint says to give the store and unmount first" {
	run "$TCACHE" fsck "$MNT"
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *"$MNT is a mountpoint; fsck takes the store directory ($STORE); unmount first"* ]]
	tcfs_unmount
	run "$TCACHE" fsck "$STORE"
	[ "$status" -eq 0 ]
	tcfs_mount
}

@test "mount -t fuse.tcachefs and an fstab line" {
	tcfs_unmount
	# mount.fuse3 runs the tcachefs on its PATH: ours, through a link,
	# never another build's that happens to be there
	link=""
	if [ -e /usr/local/bin/tcachefs ] || [ -L /usr/local/bin/tcachefs ]; then
		[ "$(readlink -f /usr/local/bin/tcachefs)" = "$(readlink -f "$TCACHEFS")" ] ||
			skip "another tcachefs is installed at /usr/local/bin"
	else
		ln -s "$TCACHEFS" /usr/local/bin/tcachefs
		link=/usr/local/bin/tcachefs
	fi
	run mount -t fuse.tcachefs "$STORE" "$MNT" -o capacity=32M
	[ -n "$link" ] && rm -f "$link"
	[ "$status" -eq 0 ]
	grep -q " $MNT fuse.tcachefs " /proc/mounts
	[ "$(df --output=size -k "$MNT" | tail -1)" -eq 32768 ]
	mkdir "$MNT/e" && echo hi >"$MNT/e/t"
	umount "$MNT"
	WAIT_S=10 wait_for eval '! is_mounted'
	# the same through an fstab line (mount -T reads another fstab)
	printf '%s %s fuse.tcachefs capacity=32M,nofail 0 0\n' "$STORE" "$MNT" >"$TDIR/fstab"
	[ -z "$link" ] || ln -s "$TCACHEFS" "$link"
	run mount -T "$TDIR/fstab" "$MNT"
	[ -z "$link" ] || rm -f "$link"
	[ "$status" -eq 0 ]
	[ "$(cat "$MNT/e/t")" = hi ]
	umount "$MNT"
	WAIT_S=10 wait_for eval '! is_mounted'
	DAEMON_PID=
}

@test "meson install puts the programs, man pages, header, library and tcache.pc in place" {
	build=$(dirname "$(dirname "$TCACHEFS")")
	meson install -C "$build" --destdir "$TDIR/root" >/dev/null
	for f in bin/tcachefs bin/tcache include/tcache.h share/man/man1/tcachefs.1 \
		 share/man/man1/tcache.1; do
		[ -e "$TDIR/root/usr/local/$f" ]
	done
	pc=$(find "$TDIR/root" -name tcache.pc)
	lib=$(find "$TDIR/root" -name libtcache.a)
	[ -n "$pc" ]
	[ -n "$lib" ]
	grep -q '^Name: tcache' "$pc"
	man -l "$TDIR/root/usr/local/share/man/man1/tcache.1" | grep -q "prune"
	# a program built against the installed header and library
	cat >"$TDIR/t.c" <<'CEOF'
#include <stdio.h>
#include <tcache.h>
int main(void) { unsigned long long v; return tc_parse_size("2G", (void *)&v) || v != 2ull << 30; }
CEOF
	# a library built with sanitizers (tools/test --sanitize) needs them
	# in the program too
	san=""
	nm "$lib" 2>/dev/null | grep -q __asan_ && san="-fsanitize=address,undefined"
	PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR="$TDIR/root" \
		cc $san "$TDIR/t.c" -o "$TDIR/t" $(PKG_CONFIG_PATH=$(dirname "$pc") \
		PKG_CONFIG_SYSROOT_DIR="$TDIR/root" pkg-config --cflags --libs --static tcache)
	"$TDIR/t"
}

@test "tcachefs -o loglevel: fewer messages at warning, a bad level refused" {
	tcfs_unmount
	: >"$TDIR/daemon.log"
	tcfs_mount -o loglevel=warning
	run grep -q "serving" "$TDIR/daemon.log"
	[ "$status" -eq 1 ]
	tcfs_unmount
	tcfs_mount -o loglevel=info
	grep -q "serving" "$TDIR/daemon.log"
	run "$TCACHEFS" "$TDIR/s2" "$TDIR/src" -f -o loglevel=loud
	[ "$status" -eq 1 ]
	[[ "$output" == *"bad loglevel"* ]]
}

# cpu_ticks PID: user + system clock ticks the process has used
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# write and read back 200 small files, then check that the daemon, idle,
# uses (almost) no CPU: its polling ends spin_us after the last request
small_work_then_idle() {
	mkdir "$MNT/w$1"
	for i in $(seq 200); do echo "$i" >"$MNT/w$1/t$i"; done
	for i in $(seq 200); do [ "$(cat "$MNT/w$1/t$i")" = "$i" ]; done
	local t0 t1
	t0=$(cpu_ticks "$DAEMON_PID")
	sleep 1 # measuring idleness: one second without requests
	t1=$(cpu_ticks "$DAEMON_PID")
	echo "# spin_us=$1: $((t1 - t0)) ticks in an idle second" >&3
	[ $((t1 - t0)) -le 5 ]
}

@test "tcachefs -o spin_us: serves at 0, default and the largest value; idle it does not poll" {
	for us in 0 "" 10000; do
		tcfs_unmount
		if [ -n "$us" ]; then tcfs_mount -o spin_us=$us; else tcfs_mount; fi
		small_work_then_idle "${us:-default}"
	done
	# single-threaded too; SIGTERM ends a polling daemon promptly, also
	# when it comes while the daemon polls (right after a request)
	tcfs_unmount
	tcfs_mount -s -o spin_us=10000
	small_work_then_idle single
	for i in 1 2 3 4 5; do
		echo "$i" >"$MNT/wsingle/last"
		WAIT_S=5 stop_daemon TERM
		tcfs_mount -s -o spin_us=10000
		[ "$(cat "$MNT/wsingle/last")" = "$i" ]
	done
	for bad in abc -1 10001 1e3 ""; do
		run "$TCACHEFS" "$TDIR/s2" "$TDIR/src" -f -o spin_us=$bad
		[ "$status" -eq 1 ]
		[[ "$output" == *"bad spin_us"* ]]
	done
}

@test "tcachefs -o journal_slack: checkpoints by a child while files are written; all there after remounts; bad sizes refused" {
	tcfs_unmount
	tcfs_mount -o journal_slack=4K
	for e in 1 2 3 4; do
		mkdir "$MNT/e$e"
		for i in $(seq 100); do
			echo "$e.$i" >"$MNT/e$e/t$i"
			[ $((i % 10)) -ne 0 ] || mv "$MNT/e$e/t$i" "$MNT/e$e/m$i"
		done
		rm "$MNT/e$e/t55"
	done
	local cps
	cps=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["checkpoints"])' "$MNT/.tcache-stats")
	echo "# $cps checkpoints" >&3
	[ "$cps" -ge 5 ]
	check_all() {
		for e in 1 2 3 4; do
			for i in $(seq 100); do
				local f=t$i
				[ $((i % 10)) -ne 0 ] || f=m$i
				if [ "$i" = 55 ]; then
					[ ! -e "$MNT/e$e/t55" ] || return 1
				else
					[ "$(cat "$MNT/e$e/$f")" = "$e.$i" ] || return 1
				fi
			done
		done
	}
	check_all
	tcfs_remount
	check_all
	tcfs_unmount
	[ ! -e "$STORE/journal.new" ]
	for bad in abc 0 4095 2T ""; do
		run "$TCACHEFS" "$TDIR/s2" "$TDIR/src" -f -o journal_slack=$bad
		[ "$status" -eq 1 ]
		[[ "$output" == *"bad journal_slack"* ]]
	done
}
