# helpers.bash - shared setup and teardown for the tcachefs bats tests.
#
# Every test gets a fresh temp dir (mktemp -d) holding the store, the mount
# point and scratch space, and a daemon running in the foreground (-f) in
# the background of the test shell.  teardown always unmounts (fusermount3
# -u, then -uz), stops the daemon (TERM, then KILL), fails the test if the
# daemon printed a sanitizer report, and removes the temp dir.
#
# Variables for the tests:
#   TCACHEFS   the daemon (set by meson)       PY   /usr/bin/python3 (numpy)
#   TDIR       the temp dir                    STORE, MNT, SRC under it
#   TCFS_OPTS  extra daemon options (set before setup, e.g. in a file's
#              setup() that calls tcfs_setup)
#
# No sleeps as synchronisation: waits poll a condition in a bounded loop.

: "${TCACHEFS:?TCACHEFS must name the tcachefs binary}"
PY=/usr/bin/python3
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

# poll CMD... every 20 ms for at most $WAIT_S seconds (default 10)
wait_for() {
	local i n=$(( ${WAIT_S:-10} * 50 ))
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.02
	done
	return 1
}

# stat_of KEY: a number from the mount's .tcache-stats
stat_of() {
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$MNT/.tcache-stats" "$1"
}

# stat_is KEY N: is that number N now?
stat_is() {
	[ "$(stat_of "$1")" = "$2" ]
}

is_mounted() {
	grep -qs " $MNT fuse" /proc/mounts
}

daemon_alive() {
	[ -n "${DAEMON_PID:-}" ] && kill -0 "$DAEMON_PID" 2>/dev/null
}

mounted_or_dead() {
	is_mounted || ! daemon_alive
}

# daemon_start WHO STORE MNT LOG [options]: a daemon on STORE at MNT (-f,
# in the background of the test shell, its messages appended to LOG);
# STARTED is its pid.  Waits until it has mounted; fails, showing LOG, if
# it died first.  (WHO names it in messages: tcachefs, node B.)
daemon_start() {
	local who=$1 store=$2 mnt=$3 log=$4
	shift 4
	"$TCACHEFS" "$store" "$mnt" -f $TCFS_OPTS "$@" >>"$log" 2>&1 3>&- &
	STARTED=$!
	wait_for eval 'grep -qs " $mnt fuse" /proc/mounts || ! kill -0 $STARTED 2>/dev/null'
	grep -qs " $mnt fuse" /proc/mounts || {
		echo "# $who did not mount; its log:" >&3
		sed 's/^/#   /' "$log" >&3
		return 1
	}
}

# daemon_stop WHO MNT PID LOG: unmount MNT and wait for daemon PID to exit
# (TERM, then KILL, when it does not); fails if it exited badly or LOG
# holds a sanitizer report.
daemon_stop() {
	local who=$1 mnt=$2 pid=$3 log=$4 rc=0
	if grep -qs " $mnt fuse" /proc/mounts; then
		fusermount3 -u "$mnt" 2>/dev/null ||
			wait_for fusermount3 -u "$mnt" 2>/dev/null ||
			fusermount3 -uz "$mnt" || rc=1
	fi
	if [ -n "$pid" ]; then
		WAIT_S=30 wait_for eval '! kill -0 $pid 2>/dev/null' || {
			kill -TERM "$pid" 2>/dev/null
			WAIT_S=5 wait_for eval '! kill -0 $pid 2>/dev/null' ||
				kill -KILL "$pid" 2>/dev/null
			rc=1
		}
		wait "$pid" || rc=$?
	fi
	if grep -Eq 'Sanitizer|runtime error:' "$log" 2>/dev/null; then
		echo "# sanitizer report from $who:" >&3
		sed 's/^/#   /' "$log" >&3
		rc=1
	fi
	return $rc
}

# Start the daemon on $STORE at $MNT with "$@" and wait until mounted.
tcfs_mount() {
	local rc=0
	daemon_start tcachefs "$STORE" "$MNT" "$TDIR/daemon.log" "$@" || rc=$?
	DAEMON_PID=$STARTED
	return $rc
}

# Unmount and wait for the daemon to exit; fails if it exited badly.
tcfs_unmount() {
	local rc=0
	daemon_stop tcachefs "$MNT" "${DAEMON_PID:-}" "$TDIR/daemon.log" || rc=$?
	DAEMON_PID=
	return $rc
}

# stop_daemon SIGNAL: send it, wait (at most WAIT_S, default 20 s) until
# the daemon exited cleanly (exit status 0) and nothing is mounted
stop_daemon() {
	kill -"$1" "$DAEMON_PID"
	WAIT_S=${WAIT_S:-20} wait_for eval '! daemon_alive'
	wait "$DAEMON_PID"
	DAEMON_PID=
	! is_mounted
}

tcfs_remount() {
	tcfs_unmount && tcfs_mount "$@"
}

# After the daemon was killed: reap it (bounded), unmount lazily, mount
# again with "$@".
remount_after_kill() {
	WAIT_S=10 wait_for eval '! daemon_alive' || {
		echo "# tcachefs did not exit after SIGKILL" >&3
		return 1
	}
	wait "$DAEMON_PID" 2>/dev/null || true   # 137: killed
	DAEMON_PID=
	fusermount3 -uz "$MNT"
	tcfs_mount "$@"
}

# kill -9 of the daemon, reaped, its mount left dead as a crash leaves it
# ("Transport endpoint is not connected"): what a restart must cope with.
kill9_leave_dead() {
	kill -9 "$DAEMON_PID"
	WAIT_S=10 wait_for eval '! daemon_alive'
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=
	stat "$MNT" 2>&1 | grep -q "Transport endpoint is not connected"
}

# kill -9 of the daemon (its journal as it is: a clean unmount would
# checkpoint the index in memory instead), then mount again with "$@".
kill9_remount() {
	kill -9 "$DAEMON_PID"
	remount_after_kill "$@"
}

tcfs_setup() {
	TDIR=$(mktemp -d "${TMPDIR:-/tmp}/tcfs-test.XXXXXX")
	STORE=$TDIR/store
	MNT=$TDIR/mnt
	SRC=$TDIR/src
	mkdir -p "$MNT" "$SRC"
	tcfs_mount
}

tcfs_teardown() {
	local rc=0
	cd /
	# close descriptors a test may have left open on the mount
	local fd
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		if [ "$fd" -gt 2 ] &&
		   [[ "$(readlink "/proc/$BASHPID/fd/$fd" 2>/dev/null)" == "$MNT"/* ]]; then
			eval "exec $fd<&-"
		fi
	done
	if [ -n "${TDIR:-}" ]; then
		tcfs_unmount || rc=1
		if is_mounted; then
			fusermount3 -uz "$MNT" 2>/dev/null
			rc=1
		fi
		rm -rf "$TDIR"
	fi
	return $rc
}

setup() { tcfs_setup; }
teardown() { tcfs_teardown; }

# expect_errno ERRNO_NAME PYTHON_STATEMENTS
# Runs the statements (os, errno, sys imported; MNT and SRC set) and
# passes only if they raise OSError with that errno.
expect_errno() {
	local want=$1 code=$2
	MNT=$MNT SRC=$SRC "$PY" - "$want" <<EOF
import errno, os, sys
MNT = os.environ["MNT"]; SRC = os.environ["SRC"]
want = getattr(errno, sys.argv[1])
try:
$(printf '%s\n' "$code" | sed 's/^/    /')
except OSError as e:
    if e.errno == want:
        sys.exit(0)
    print("expected %s, got %s (%s)" % (sys.argv[1],
          errno.errorcode.get(e.errno), e))
    sys.exit(1)
print("expected %s, but it succeeded" % sys.argv[1])
sys.exit(1)
EOF
}

# random_file PATH SIZE
random_file() {
	head -c "$2" /dev/urandom >"$1"
}

# The tree the copy tests use: sizes 0, 1, 4095, 4096, 4097, 1 MiB+3,
# ~9 MB, and a nested group.
make_tree() {
	local t=$1
	mkdir -p "$t/group/nested"
	random_file "$t/s0" 0
	random_file "$t/s1" 1
	random_file "$t/s4095" 4095
	random_file "$t/s4096" 4096
	random_file "$t/s4097" 4097
	random_file "$t/s1m3" $((1024 * 1024 + 3))
	random_file "$t/s9m" 9000001
	random_file "$t/group/g4097" 4097
	random_file "$t/group/g1" 1
	random_file "$t/group/nested/n65536" 65536
	random_file "$t/group/nested/n0" 0
}

# same_tree A B: identical file names and bytes, meta.json aside
same_tree() {
	diff -r "$1" "$2"
}

# kilobytes of pool the mount reports in use (du of the mount)
du_kb() {
	du -sk "$MNT" | cut -f1
}
