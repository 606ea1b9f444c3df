#!/usr/bin/env bats
# posix.bats - what a POSIX file system test suite checks, for the
# operations tcachefs supports: permission checks (the kernel's, with
# default_permissions), times updated by each change, link counts, and the
# errno of each failure - as on a local file system.

load helpers

setup() {
	tcfs_setup
	chmod 0755 "$TDIR"
	tcfs_remount -o allow_other        # other users may use the mount
	mkdir "$MNT/e"
	chmod 0777 "$MNT/e"
}

# as USER_ID cmd...: run as an unprivileged user
as_user() {
	setpriv --reuid="$1" --regid="$1" --clear-groups "${@:2}"
}

# python as an unprivileged user, with MNT set
py_as() {
	local uid=$1
	shift
	MNT=$MNT as_user "$uid" "$PY" -c "$@"
}

@test "permissions: the kernel checks modes for other users" {
	echo secret >"$MNT/e/f"
	chmod 0600 "$MNT/e/f"
	run as_user 1000 cat "$MNT/e/f"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	chmod 0644 "$MNT/e/f"
	[ "$(as_user 1000 cat "$MNT/e/f")" = secret ]
	run as_user 1000 sh -c "echo x >> '$MNT/e/f'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run as_user 1000 chmod 0777 "$MNT/e/f"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run as_user 1000 chown 1000 "$MNT/e/f"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	# a 0755 directory of root: no creating, no removing for others
	mkdir "$MNT/ro"
	chmod 0755 "$MNT/ro"
	echo x >"$MNT/ro/t"
	run as_user 1000 touch "$MNT/ro/new"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run as_user 1000 rm -f "$MNT/ro/t"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run as_user 1000 mkdir "$MNT/other"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	[ -f "$MNT/ro/t" ]
	# meta.json of root's entry is not writable for others either
	run as_user 1000 sh -c "echo '{}' > '$MNT/ro/meta.json'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
}

@test "permissions: sticky directories, and the owner's own files" {
	chmod 1777 "$MNT/e"
	as_user 1000 sh -c "echo a > '$MNT/e/mine'"
	run as_user 1001 rm -f "$MNT/e/mine"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	as_user 1000 rm "$MNT/e/mine"
	[ ! -e "$MNT/e/mine" ]
	# the owner may chmod and utime its file
	as_user 1000 sh -c "echo a > '$MNT/e/m2' && chmod 0600 '$MNT/e/m2' && touch -d @1000000000 '$MNT/e/m2'"
	[ "$(stat -c '%a %Y' "$MNT/e/m2")" = "600 1000000000" ]
}

@test "set-uid is cleared when another user writes; set-gid directories" {
	echo x >"$MNT/e/s"
	chmod 04777 "$MNT/e/s"
	as_user 1000 sh -c "echo y >> '$MNT/e/s'"
	[ "$(stat -c %a "$MNT/e/s")" = 777 ]
	mkdir "$MNT/e/sg"
	chown 0:4242 "$MNT/e/sg"
	chmod 02777 "$MNT/e/sg"
	as_user 1000 sh -c "echo z > '$MNT/e/sg/f' && mkdir '$MNT/e/sg/d'"
	[ "$(stat -c '%u %g' "$MNT/e/sg/f")" = "1000 4242" ]
	[ "$(stat -c '%u %g' "$MNT/e/sg/d")" = "1000 4242" ]
	[ $(( 0$(stat -c %a "$MNT/e/sg/d") & 02000 )) -ne 0 ]
}

@test "times: write, truncate, chmod, create, unlink, rename update them" {
	MNT=$MNT "$PY" - <<'EOF'
import os
M = os.environ["MNT"] + "/e"
OLD = 946684800 * 10**9      # 2000-01-01
def old(*paths):
    for p in paths:
        os.utime(p, ns=(OLD, OLD))
def st(p):
    return os.stat(p)

f = M + "/t"
with open(f, "wb") as fh:
    fh.write(b"abc")
old(f)
c0 = st(f).st_ctime_ns
with open(f, "ab") as fh:                       # write: mtime and ctime
    fh.write(b"d")
s = st(f)
assert s.st_mtime_ns > OLD and s.st_ctime_ns >= c0, s

old(f)
os.truncate(f, 1)                               # truncate: mtime, ctime
assert st(f).st_mtime_ns > OLD

old(f)
c0 = st(f).st_ctime_ns
os.chmod(f, 0o640)                              # chmod: ctime only
s = st(f)
assert s.st_mtime_ns == OLD and s.st_ctime_ns >= c0, s

old(M)
open(M + "/new", "wb").close()                  # create: parent m/ctime
assert st(M).st_mtime_ns > OLD, st(M)
old(M)
os.unlink(M + "/new")                           # unlink: parent mtime
assert st(M).st_mtime_ns > OLD, st(M)
old(M)
os.mkdir(M + "/d")                              # mkdir: parent mtime
assert st(M).st_mtime_ns > OLD, st(M)
old(M)
os.rmdir(M + "/d")                              # rmdir: parent mtime
assert st(M).st_mtime_ns > OLD, st(M)

os.mkdir(M + "/d2")
old(M, M + "/d2")
os.rename(f, M + "/d2/t")                       # rename: both parents
assert st(M).st_mtime_ns > OLD, st(M)
assert st(M + "/d2").st_mtime_ns > OLD, st(M + "/d2")

# utimensat with UTIME_OMIT for one of the two
os.utime(M + "/d2/t", ns=(OLD, OLD))
os.utime(M + "/d2/t", ns=(OLD + 5, OLD + 7))
s = st(M + "/d2/t")
assert (s.st_atime_ns, s.st_mtime_ns) == (OLD + 5, OLD + 7), s
print("ok")
EOF
}

@test "link counts and sizes of directories" {
	mkdir -p "$MNT/e/a/b" "$MNT/e/a/c"
	echo x >"$MNT/e/a/f"
	[ "$(stat -c %h "$MNT/e/a")" -eq 4 ]
	[ "$(stat -c %h "$MNT/e/a/b")" -eq 2 ]
	[ "$(stat -c %h "$MNT/e/a/f")" -eq 1 ]
	rmdir "$MNT/e/a/b"
	[ "$(stat -c %h "$MNT/e/a")" -eq 3 ]
	# the root counts its entries
	n=$(stat -c %h "$MNT")
	mkdir "$MNT/e2"
	[ "$(stat -c %h "$MNT")" -eq $((n + 1)) ]
}

@test "errno of each failure, like a local file system" {
	mkdir -p "$MNT/e/d/sub" "$MNT/e/empty"
	echo x >"$MNT/e/f"
	expect_errno EEXIST 'os.open(MNT + "/e/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY)'
	expect_errno ENOENT 'os.mkdir(MNT + "/e/nope/x")'
	expect_errno ENOENT 'os.open(MNT + "/e/nope", os.O_RDONLY)'
	expect_errno EISDIR 'os.open(MNT + "/e/d", os.O_WRONLY)'
	expect_errno ENOTDIR 'os.listdir(MNT + "/e/f")'
	expect_errno ENOTDIR 'os.open(MNT + "/e/f/x", os.O_RDONLY)'
	expect_errno EINVAL 'os.rename(MNT + "/e/d", MNT + "/e/d/sub/x")'
	expect_errno EISDIR 'os.rename(MNT + "/e/f", MNT + "/e/empty")'
	expect_errno ENOTDIR 'os.rename(MNT + "/e/empty", MNT + "/e/f")'
	expect_errno ENOTEMPTY 'os.rename(MNT + "/e/empty", MNT + "/e/d")'
	expect_errno ENOENT 'os.rename(MNT + "/e/nope", MNT + "/e/x")'
	expect_errno EBADF 'fd = os.open(MNT + "/e/f", os.O_RDONLY); os.write(fd, b"x")'
	expect_errno EBADF 'fd = os.open(MNT + "/e/f", os.O_WRONLY); os.read(fd, 1)'
	# a directory over an empty directory is fine
	mkdir "$MNT/e/d2"
	mv -T "$MNT/e/d2" "$MNT/e/empty"
	[ -d "$MNT/e/empty" ]
	[ ! -e "$MNT/e/d2" ]
}

@test "statfs: block size, name length, counts" {
	"$PY" - "$MNT" <<'EOF'
import os, sys
v = os.statvfs(sys.argv[1])
assert v.f_bsize == 4096 and v.f_namemax == 255, v
assert v.f_blocks * v.f_frsize == 1 << 30, v      # a new store: 1 GiB
assert v.f_bfree == v.f_bavail <= v.f_blocks, v
assert v.f_files >= 1, v
EOF
}

@test "readdir of a large directory streams every name once" {
	mkdir "$MNT/big"
	(cd "$MNT/big" && for i in $(seq 1 3000); do : >"f$i"; done)
	[ "$(ls "$MNT/big" | wc -l)" -eq 3000 ]
	[ "$(ls "$MNT/big" | sort -u | wc -l)" -eq 3000 ]
	[ "$(find "$MNT/big" -type f | wc -l)" -eq 3000 ]
	# removing while listing: every remaining name still listed once
	"$PY" - "$MNT/big" <<'EOF'
import os, sys
d = sys.argv[1]
seen = []
with os.scandir(d) as it:
    for i, e in enumerate(it):
        seen.append(e.name)
        if i == 10:
            for k in range(2000, 2100):
                os.unlink(os.path.join(d, "f%d" % k))
assert len(seen) == len(set(seen)), "duplicates"
left = set(os.listdir(d))
assert len(left) == 3000 - 100, len(left)
EOF
}
