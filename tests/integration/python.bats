#!/usr/bin/env bats
# The tcache package (tools/python/tcache) against a real mount: each test
# runs one method of tests/python/test_tensorcache.py on a fresh store.

load helpers

export TOOLS_PY=$BATS_TEST_DIRNAME/../../tools/python

pytest_one() {
	TCACHE_MNT=$MNT PYTHONDONTWRITEBYTECODE=1 \
		"$PY" "$BATS_TEST_DIRNAME/../python/test_tensorcache.py" \
		"TensorCacheOnAMount.$1"
}

@test "TensorCache round trips numpy dtypes, 0-d and empty arrays, read-only memmaps" {
	pytest_one test_round_trips_numpy_dtypes_0d_and_empty
}

@test "TensorCache round trips torch bfloat16 and float16 (torch is required here)" {
	"$PY" -c 'import torch'   # tools/test installs python3-torch: never skipped
	pytest_one test_round_trips_torch_bfloat16_and_float16
}

@test "TensorCache nested dicts are groups (subdirectories with their meta.json)" {
	pytest_one test_nested_dicts_are_groups
}

@test "TensorCache keeps the key in attrs, under sha256(str(key))[:32]" {
	pytest_one test_key_is_kept_in_attrs_under_its_basename
}

@test "TensorCache get, in, len and keys see its own entries only" {
	pytest_one test_get_contains_len_keys
}

@test "TensorCache replace is whole, a held mapping keeps the old bytes, nothing left behind" {
	pytest_one test_replace_is_whole_and_leaves_nothing_behind
}

@test "TensorCache concurrent reader sees old, new or nothing, never a mix" {
	pytest_one test_concurrent_reader_sees_old_new_or_nothing_never_a_mix
}

@test "TensorCache failed write keeps the old entry and leaves nothing" {
	pytest_one test_failed_write_keeps_the_old_entry_and_leaves_nothing
}

@test "TensorCache clear removes its entries and leftovers, not other clients'" {
	pytest_one test_clear_removes_ours_and_leftovers_not_others
}

@test "TensorCache cache size counts tensor bytes, human-readable in MiB" {
	pytest_one test_cache_size_counts_tensor_bytes
}

@test "TensorCache entries survive a remount" {
	TCACHE_MNT=$MNT "$PY" - <<'EOF_PY'
import os, sys
sys.path.insert(0, os.environ["TOOLS_PY"])
import numpy as np
from tcache import TensorCache
c = TensorCache(os.environ["TCACHE_MNT"])
c["persist"] = {"x": np.arange(10, dtype=np.float16), "g": {"y": np.eye(3)}}
EOF_PY
	tcfs_remount
	TCACHE_MNT=$MNT "$PY" - <<'EOF_PY'
import os, sys
sys.path.insert(0, os.environ["TOOLS_PY"])
import numpy as np
from tcache import TensorCache
c = TensorCache(os.environ["TCACHE_MNT"])
d = c["persist"]
assert d["x"].dtype == np.float16 and (d["x"] == np.arange(10)).all(), d
assert (d["g"]["y"] == np.eye(3)).all(), d
assert c.keys() == ["persist"], c.keys()
EOF_PY
}
