#!/usr/bin/env bats
# capacity.bats - the pool never holds more than its capacity; least
# recently opened entries are evicted whole; open entries (read or being
# written) are not; ENOSPC when nothing can go; evicted entries vanish
# from ls and stat at once.

load helpers

MIB=$((1024 * 1024))

# put_entry NAME: a 1 MiB tensor "t" in a new entry NAME
put_entry() {
	mkdir "$MNT/$1"
	cp "$SRC/blob" "$MNT/$1/t"
}

@test "a hundred 1 MiB entries in 64M: LRU eviction, held entry survives" {
	tcfs_remount -o capacity=64M
	random_file "$SRC/blob" $MIB
	cap_kb=$((64 * 1024))

	for i in $(seq -w 0 99); do
		put_entry "e0$i"
		if [ "$i" = 02 ]; then
			exec 7<"$MNT/e002/t"       # held open (fd 3 is bats's)
		fi
		if [ "$i" = 70 ]; then
			[ -e "$MNT/e010" ]         # still there...
			cat "$MNT/e010/t" >/dev/null   # ...and now young
		fi
		if [ $((10#$i % 10)) -eq 9 ]; then
			kb=$(du_kb)
			echo "after e0$i: du ${kb}K"
			[ "$kb" -le "$cap_kb" ]
		fi
	done

	# oldest-opened gone (from ls and from stat)
	for k in e000 e001 e003 e009 e011 e020; do
		[ ! -e "$MNT/$k" ]
		list=$(ls "$MNT")
		run grep -qx "$k" <<<"$list"
		[ "$status" -eq 1 ]
	done
	# newest there, intact
	for k in e099 e098 e080 e071; do
		cmp "$SRC/blob" "$MNT/$k/t"
	done
	# held open and read-made-young: there
	cmp "$SRC/blob" "$MNT/e002/t"
	cmp "$SRC/blob" "$MNT/e010/t"
	exec 7<&-

	n=$(ls "$MNT" | wc -l)
	echo "entries left: $n"
	[ "$n" -le 64 ]
	[ "$n" -ge 50 ]
	[ "$(du_kb)" -le "$cap_kb" ]
	df -k "$MNT"
	[ "$(df -k --output=size "$MNT" | tail -1 | tr -d ' ')" -eq "$cap_kb" ]
}

@test "an entry being written is not evicted while more than the capacity flows through" {
	tcfs_remount -o capacity=16M
	random_file "$SRC/blob" $MIB
	random_file "$SRC/a" $((3 * MIB))
	mkdir "$MNT/a"
	# a is the oldest entry and its file is open for writing only: no
	# reader holds it, nothing of it is committed yet
	exec 7>"$MNT/a/t"
	head -c $((2 * MIB)) "$SRC/a" >&7
	for i in $(seq 0 39); do
		put_entry "f$i"              # 40 MiB through a 16 MiB pool
	done
	[ ! -e "$MNT/f0" ]               # eviction ran
	[ "$(du_kb)" -le $((16 * 1024)) ]
	[ -d "$MNT/a" ]
	tail -c $MIB "$SRC/a" >&7
	exec 7>&-                        # close: commit
	cmp "$SRC/a" "$MNT/a/t"
	tcfs_remount
	cmp "$SRC/a" "$MNT/a/t"
}

@test "an evicted entry vanishes from ls and stat at once" {
	tcfs_remount -o capacity=8M
	random_file "$SRC/blob" $MIB
	gone=0
	for i in $(seq 0 15); do
		# the kernel has fresh dentries and attributes of every entry
		before=$(ls "$MNT")
		for k in $before; do
			stat "$MNT/$k" "$MNT/$k/t" >/dev/null
		done
		put_entry "e$i"
		after=$(ls "$MNT")
		for k in $before; do
			if ! grep -qx "$k" <<<"$after"; then
				# evicted by that write: stat must not find it
				echo "evicted $k by e$i"
				[ ! -e "$MNT/$k/t" ]
				[ ! -e "$MNT/$k" ]
				gone=$((gone + 1))
			fi
		done
	done
	[ "$gone" -ge 6 ]
	run stat "$MNT/e0/t"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No such file or directory"* ]]
	cmp "$SRC/blob" "$MNT/e15/t"
}

@test "ENOSPC when every entry is held open; space comes back after close" {
	tcfs_remount -o capacity=8M
	random_file "$SRC/blob" $MIB
	for i in 0 1 2 3 4 5 6 7; do
		put_entry "e$i"
	done
	# hold every entry that is there
	fds=()
	for d in "$MNT"/*; do
		exec {fd}<"$d/t"
		fds+=("$fd")
	done
	held=$(ls "$MNT" | wc -l)
	[ "$held" -ge 6 ]

	mkdir "$MNT/new"
	run cp "$SRC/blob" "$MNT/new/t"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No space left on device"* ]]

	# every existing byte intact, nothing evicted
	[ "$(ls "$MNT" | wc -l)" -eq $((held + 1)) ]
	for d in "$MNT"/e*; do
		cmp "$SRC/blob" "$d/t"
	done

	for fd in "${fds[@]}"; do
		exec {fd}<&-
	done
	rm -f "$MNT/new/t"
	cp "$SRC/blob" "$MNT/new/t"
	cmp "$SRC/blob" "$MNT/new/t"
	[ "$(du_kb)" -le $((8 * 1024)) ]
}

@test "a write that cannot fit fails with ENOSPC and evicts nothing, not even what it could" {
	tcfs_remount -o capacity=8M
	random_file "$SRC/half" $((MIB / 2))
	random_file "$SRC/one" $MIB
	for i in $(seq 0 15); do            # 16 x 512 KiB: the pool is full
		mkdir "$MNT/h$i"
		cp "$SRC/half" "$MNT/h$i/t"
	done
	[ "$(ls "$MNT" | wc -l)" -eq 16 ]
	fds=()
	for i in $(seq 1 15); do
		exec {fd}<"$MNT/h$i/t"
		fds+=("$fd")
	done
	# h0 alone could go (512 KiB): one 1 MiB write needs more than that
	mkdir "$MNT/big"
	run dd if="$SRC/one" of="$MNT/big/t" bs=1M count=1
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No space left on device"* ]]
	cmp "$SRC/half" "$MNT/h0/t"
	for fd in "${fds[@]}"; do
		exec {fd}<&-
	done
	[ "$(ls "$MNT" | wc -l)" -eq 17 ]
}

@test "entries are evicted whole: each is there with all its tensors, or gone" {
	tcfs_remount -o capacity=8M
	random_file "$SRC/q" $((MIB / 4))
	for i in $(seq 0 23); do            # 24 MiB through 8 MiB
		mkdir "$MNT/w$i"
		for t in a b c d; do
			cp "$SRC/q" "$MNT/w$i/$t"
		done
	done
	check_whole() {
		local i t n=0
		for i in $(seq 0 23); do
			if [ -e "$MNT/w$i" ]; then
				[ "$(ls "$MNT/w$i" | tr '\n' ' ')" = "a b c d " ] || {
					echo "w$i: $(ls "$MNT/w$i" | tr '\n' ' ')"
					return 1
				}
				for t in a b c d; do
					cmp "$SRC/q" "$MNT/w$i/$t" || return 1
				done
			else
				n=$((n + 1))
			fi
		done
		echo "$n entries gone"
		[ "$n" -ge 16 ]
	}
	check_whole
	tcfs_remount
	check_whole
}

@test "a file larger than the capacity fails with an error, leaving the rest" {
	tcfs_remount -o capacity=4M
	random_file "$SRC/blob" $MIB
	put_entry keep
	random_file "$SRC/big" $((5 * MIB))
	mkdir "$MNT/big"
	run cp "$SRC/big" "$MNT/big/t"
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$(du_kb)" -le 4096 ]
}

@test "df shows capacity and use; capacity persists across remounts" {
	tcfs_remount -o capacity=16M
	[ "$(df -k --output=size "$MNT" | tail -1 | tr -d ' ')" -eq 16384 ]
	random_file "$SRC/blob" $MIB
	put_entry a
	[ "$(df -k --output=used "$MNT" | tail -1 | tr -d ' ')" -eq 1024 ]
	tcfs_remount                     # no capacity option: keep the store's
	[ "$(df -k --output=size "$MNT" | tail -1 | tr -d ' ')" -eq 16384 ]
	[ "$(df -k --output=used "$MNT" | tail -1 | tr -d ' ')" -eq 1024 ]
	cmp "$SRC/blob" "$MNT/a/t"
}

@test "a big write is not buffered in the daemon's memory" {
	mkdir "$MNT/big"
	echo x >"$MNT/big/warm"
	anon() { awk '/^RssAnon:/ { print $2 }' "/proc/$DAEMON_PID/status"; }
	before=$(anon)
	dd if=/dev/zero of="$MNT/big/t" bs=1M count=600 status=none
	after=$(anon)
	echo "daemon RssAnon: ${before} kB -> ${after} kB"
	[ $((after - before)) -lt $((64 * 1024)) ]
	[ "$(stat -c %s "$MNT/big/t")" -eq $((600 * 1024 * 1024)) ]
}
