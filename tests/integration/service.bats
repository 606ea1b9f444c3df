#!/usr/bin/env bats
# service.bats - what ops need: the systemd template unit (verified,
# installed, and recovering from a kill -9 when its Exec lines are run by
# hand as systemd runs them), and where a detached daemon's messages go:
# -o log=FILE, syslog, or else the stderr it was started with.

load helpers

: "${TCACHEFS_UNIT:?TCACHEFS_UNIT must name the configured tcachefs@.service}"
: "${BUILD_ROOT:?BUILD_ROOT must name the build directory}"

setup() {
	tcfs_setup
	tcfs_unmount
	: >"$TDIR/daemon.log"   # its lines are counted below
	# the unit as built, its daemon the one under test
	sed "s#^ExecStart=[^ ]*/tcachefs #ExecStart=$TCACHEFS #" "$TCACHEFS_UNIT" \
		>"$TDIR/tcachefs@test.service"
	printf 'STORE=%s\nMOUNTPOINT=%s\nOPTIONS=capacity=64M\n' "$STORE" "$MNT" \
		>"$TDIR/test.conf"
}

# Run the unit's ExecStartPre lines, then its ExecStart in the background
# (as systemd does, Type=simple), with the environment file's variables:
# a failing line stops the start unless it begins with '-'.
unit_start() {
	local line cmd ignore
	local -a argv
	while IFS= read -r line; do
		case "$line" in
		ExecStartPre=*|ExecStart=*) ;;
		*) continue ;;
		esac
		cmd=${line#*=}
		ignore=0
		if [[ "$cmd" == -* ]]; then
			ignore=1
			cmd=${cmd#-}
		fi
		cmd=$(OPTIONS=capacity=0; set -a; . "$TDIR/test.conf"; set +a; eval "echo \"$cmd\"")
		read -ra argv <<<"$cmd"
		if [[ "$line" == ExecStart=* ]]; then
			# exec: $! must be the daemon's pid, for the kill -9
			(exec "${argv[@]}" >>"$TDIR/daemon.log" 2>&1 3>&-) &
			DAEMON_PID=$!
			SERVING=$1
			wait_for eval '[ "$(grep -c "tcachefs: serving" "$TDIR/daemon.log")" -ge "$SERVING" ]' ||
				{ cat "$TDIR/daemon.log"; return 1; }
			return
		fi
		echo "$line" >>"$TDIR/pre.log"
		"${argv[@]}" 2>>"$TDIR/pre.log" || [ "$ignore" -eq 1 ] || return 1
	done <"$TDIR/tcachefs@test.service"
}

@test "the unit passes systemd-analyze verify, with nothing to say" {
	cd "$TDIR"
	run systemd-analyze verify --man=no ./tcachefs@test.service
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	grep -q '^EnvironmentFile=/etc/tcachefs/%i.conf$' tcachefs@test.service
	grep -q '^Restart=on-failure$' tcachefs@test.service
}

@test "meson install puts the unit in systemd's directory, the daemon's path in it" {
	run meson install -C "$BUILD_ROOT" --no-rebuild --destdir "$TDIR/dest"
	[ "$status" -eq 0 ]
	unit=$(find "$TDIR/dest" -name 'tcachefs@.service')
	echo "$unit"
	[[ "$unit" == */lib/systemd/system/tcachefs@.service ]]
	prefix=$(meson introspect --buildoptions "$BUILD_ROOT" |
		"$PY" -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
	grep -q "^ExecStart=$prefix/bin/tcachefs \${STORE} \${MOUNTPOINT} -f -o \${OPTIONS}$" "$unit"
	[ -x "$TDIR/dest$prefix/bin/tcachefs" ]
	[ -n "$(find "$TDIR/dest" -name tcachefs.conf.example)" ]
}

@test "after a kill -9 the unit's own lines start it again: the store recovers" {
	rmdir "$MNT" "$STORE" 2>/dev/null || true
	unit_start 1
	is_mounted
	mkdir "$MNT/e"
	echo kept >"$MNT/e/t"
	df -k --output=size "$MNT" | tail -1 | grep -q 65536
	# the crash, as Restart=on-failure sees it
	kill9_leave_dead
	# what systemd runs next, unchanged
	unit_start 2
	is_mounted
	cat "$TDIR/daemon.log" "$TDIR/pre.log"
	[ "$(cat "$MNT/e/t")" = kept ]
	grep -q "detached the dead tcachefs mount of $STORE at $MNT" "$TDIR/daemon.log"
	[ "$(grep -c " $MNT fuse.tcachefs " /proc/mounts)" -eq 1 ]
}

@test "-o log=FILE: a detached daemon's messages, with time and pid; a bad FILE is refused" {
	"$TCACHEFS" "$STORE" "$MNT" -o log="$TDIR/tc.log" 2>"$TDIR/stderr" 3>&-
	is_mounted
	pid=$(sed -n 's/^[^ ]* tcachefs\[\([0-9]*\)\]: serving .*/\1/p' "$TDIR/tc.log")
	[ -n "$pid" ]
	grep -Eq "^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z tcachefs\[$pid\]: serving $STORE at $MNT$" "$TDIR/tc.log"
	[ ! -s "$TDIR/stderr" ]
	fusermount3 -u "$MNT"
	WAIT_S=10 wait_for eval '! kill -0 "$pid" 2>/dev/null'
	run "$TCACHEFS" "$STORE" "$MNT" -o log="$TDIR/no/such/dir/tc.log"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"bad log '$TDIR/no/such/dir/tc.log': No such file or directory"* ]]
	run is_mounted
	[ "$status" -eq 1 ]
}

@test "a detached daemon logs to syslog, or without it to the stderr it was started with" {
	"$TCACHEFS" "$STORE" "$MNT" 2>"$TDIR/stderr" 3>&-
	is_mounted
	mkdir "$MNT/e"
	fusermount3 -u "$MNT"
	WAIT_S=10 wait_for flock -n "$STORE/lock" true
	cat "$TDIR/stderr"
	if [ -S /dev/log ]; then
		# syslog's: nothing after daemonizing comes here
		run grep -c serving "$TDIR/stderr"
		[ "$output" -eq 0 ]
		return
	fi
	# after daemonizing: stamped lines from the daemon's own pid
	grep -Eq "Z tcachefs\[[0-9]+\]: serving $STORE at $MNT$" "$TDIR/stderr"
	# a pipe is not kept open (it would hold `$(tcachefs ...)` until the
	# daemon exits): that is said, with how to keep the messages
	out=$(timeout 20 "$TCACHEFS" "$STORE" "$MNT" 2>&1 3>&-)
	echo "$out"
	is_mounted
	[[ "$out" == *"stderr is no terminal or file: from now on messages are lost; keep them with -o log=FILE"* ]]
	fusermount3 -u "$MNT"
}
