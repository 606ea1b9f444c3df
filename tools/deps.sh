# tools/deps.sh - sourced by tools/run and tools/test: install the Debian
# packages tcachefs needs, only when something is missing.
DEB_PACKAGES="libfuse3-dev fuse3 libcjson-dev libxxhash-dev meson ninja-build pkg-config bats python3-numpy python3-torch rsync zip unzip clang attr libhiredis-dev liburing-dev redis-server redis-tools"

deps_missing() {
	local c
	for c in meson ninja pkg-config bats fusermount3 rsync zip unzip clang setfattr getfattr redis-server redis-cli; do
		command -v "$c" >/dev/null 2>&1 || return 0
	done
	pkg-config --exists fuse3 libcjson libxxhash hiredis liburing || return 0
	[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import numpy, torch' 2>/dev/null || return 0
	return 1
}

ensure_deps() {
	deps_missing || return 0
	local sudo=""
	if [ "$(id -u)" != 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo=sudo
		else
			echo "missing packages; as root run: apt-get install $DEB_PACKAGES" >&2
			return 1
		fi
	fi
	echo "installing: $DEB_PACKAGES"
	$sudo apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $DEB_PACKAGES >/dev/null || {
		echo "apt-get install failed" >&2
		return 1
	}
	deps_missing && { echo "packages installed but something is still missing" >&2; return 1; }
	return 0
}
