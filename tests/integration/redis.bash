# redis.bash - redis-server instances of a test's own, and a second node
# (loaded after helpers by the remote tier's tests).
#
# Every server runs in the foreground of a background job, under
# $TDIR/redis-NAME, on a free loopback port and a unix socket there; never
# the system's service.  teardown (remote_teardown) unmounts node B and
# stops every server, whatever the test did.
#
#   redis_start NAME [redis-server args]   start (sets REDIS_PORT[NAME])
#   redis_stop NAME / redis_kill NAME      SIGTERM / SIGKILL, and reap
#   redis_pause NAME / redis_resume NAME   SIGSTOP / SIGCONT
#   redis_url NAME                         redis://127.0.0.1:PORT
#   redis_sock NAME                        its unix socket
#   rcli NAME ARGS...                      redis-cli on it
#   cluster_start N                        N masters as one cluster
#                                          (cluster0..clusterN-1)
#   cluster_reshard FROM TO SLOTS          move slots between masters
#   tcfs_mount_b [options]                 node B: $STORE_B at $MNT_B
#   tcfs_unmount_b
#   remote_stat MNT FIELD                  the stats file's remote.FIELD
#   remote_drained MNT [N]                 pushed >= N (1) and nothing queued

# -g: bats's load sources this inside a function
declare -gA REDIS_PID REDIS_PORT

# a free loopback port P in 20000-45000 whose P + 10000 is free too (a
# cluster node's bus port)
free_port() {
	"$PY" - <<'EOF_PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randrange(20000, 45000)
    if free(p) and free(p + 10000):
        print(p)
        break
EOF_PY
}

redis_start() {
	local name=$1 dir=$TDIR/redis-$1
	shift
	local port=${REDIS_PORT[$name]:-$(free_port)}
	mkdir -p "$dir"
	redis-server --port "$port" --bind 127.0.0.1 --save '' \
		--appendonly no --dir "$dir" --unixsocket "$dir/r.sock" \
		--daemonize no "$@" >>"$dir/log" 2>&1 3>&- &
	REDIS_PID[$name]=$!
	REDIS_PORT[$name]=$port
	wait_for redis-cli -p "$port" ping >/dev/null 2>&1 || {
		echo "# redis-server $name did not start:" >&3
		sed 's/^/#   /' "$dir/log" >&3
		return 1
	}
}

redis_url() { echo "redis://127.0.0.1:${REDIS_PORT[$1]}"; }
redis_sock() { echo "$TDIR/redis-$1/r.sock"; }
rcli() { local n=$1; shift; redis-cli -p "${REDIS_PORT[$n]}" "$@"; }

redis_signal_wait() {
	local name=$1 sig=$2 pid=${REDIS_PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill -CONT "$pid" 2>/dev/null
	kill "-$sig" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	REDIS_PID[$name]=
}

redis_stop() { redis_signal_wait "$1" TERM; }
redis_kill() { redis_signal_wait "$1" KILL; }
redis_pause() { kill -STOP "${REDIS_PID[$1]}"; }
redis_resume() { kill -CONT "${REDIS_PID[$1]}"; }

redis_stop_all() {
	local name
	for name in "${!REDIS_PID[@]}"; do
		redis_kill "$name"
	done
}

cluster_start() {
	local n=$1 i nodes=()
	for ((i = 0; i < n; i++)); do
		redis_start "cluster$i" --cluster-enabled yes \
			--cluster-config-file "$TDIR/redis-cluster$i/nodes.conf" \
			--cluster-node-timeout 2000 || return 1
		nodes+=("127.0.0.1:${REDIS_PORT[cluster$i]}")
	done
	redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 \
		--cluster-yes >"$TDIR/cluster-create.log" 2>&1 || {
		sed 's/^/#   /' "$TDIR/cluster-create.log" >&3
		return 1
	}
	for ((i = 0; i < n; i++)); do
		wait_for eval "rcli cluster$i cluster info | grep -q cluster_state:ok" ||
			return 1
	done
}

# cluster_reshard FROM TO SLOTS (indexes of cluster_start's masters)
cluster_reshard() {
	local from to
	from=$(rcli "cluster$1" cluster myid)
	to=$(rcli "cluster$2" cluster myid)
	redis-cli --cluster reshard "127.0.0.1:${REDIS_PORT[cluster$1]}" \
		--cluster-from "$from" --cluster-to "$to" --cluster-slots "$3" \
		--cluster-yes >"$TDIR/reshard.log" 2>&1 || {
		sed 's/^/#   /' "$TDIR/reshard.log" >&3
		return 1
	}
}

STORE_B= MNT_B= DAEMON_B=

tcfs_mount_b() {
	local rc=0
	STORE_B=$TDIR/storeB MNT_B=$TDIR/mntB
	mkdir -p "$MNT_B"
	daemon_start "node B" "$STORE_B" "$MNT_B" "$TDIR/daemonB.log" "$@" || rc=$?
	DAEMON_B=$STARTED
	return $rc
}

tcfs_unmount_b() {
	local rc=0
	[ -n "$MNT_B" ] || return 0
	daemon_stop "node B" "$MNT_B" "${DAEMON_B:-}" "$TDIR/daemonB.log" || rc=$?
	DAEMON_B=
	return $rc
}

remote_stat() {
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1] + "/.tcache-stats"))["remote"][sys.argv[2]])' "$1" "$2"
}

# remote_drained MNT [N]: at least N (1) entries pushed, none queued
remote_drained() {
	[ "$(remote_stat "$1" pushed)" -ge "${2:-1}" ] &&
		[ "$(remote_stat "$1" queue_entries)" = 0 ]
}

remote_teardown() {
	local rc=0
	tcfs_unmount_b || rc=1
	redis_stop_all
	tcfs_teardown || rc=1
	return $rc
}
