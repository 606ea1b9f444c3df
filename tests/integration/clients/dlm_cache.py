#!/usr/bin/python3
"""dlm's tokenized-dataset cache, acted out.

A cache directory holds entries/<shard>/<name>.npz, each written as
<name>.npz.tmp (np.savez into the open file) and then os.replace'd to its
name, and a top-level manifest.json listing the files done so far,
replaced the same way after each file.  A reader loads manifest.json and
then each file it lists with np.load.

Each tokenized dataset gets its own cache directory, DIR/tok-<hash>: on a
mount that is one entry, evicted whole.  The items of clientlib's phases
are these datasets (2 shards x 2 files of input_ids and attention_mask,
about 240 KiB each).
"""

import hashlib
import json
import os
import sys
import zipfile

import numpy as np

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402

ITEMS, HOT, REFRESH, MORE = 96, 4, 8, 8          # about 23 MiB in all
TAIL = 6
MAX_DATASETS = 4096
SHARDS, PER_SHARD, TOKENS = 2, 2, 12000
FILES = ["entries/shard-%03d/%05d.npz" % (s, s * PER_SHARD + k)
         for s in range(SHARDS) for k in range(PER_SHARD)]


def dataset_dir(i):
    h = hashlib.sha256(("dataset-%d|tokenizer=gpt2|seq_len=2048" % i).encode())
    return "tok-" + h.hexdigest()[:16]


NAMES = [dataset_dir(i) for i in range(MAX_DATASETS)]
INDEX = {n: i for i, n in enumerate(NAMES)}


def arrays(ds, rel):
    ids = np.frombuffer(clientlib.payload(ds + "/" + rel + ":ids", 4 * TOKENS),
                        dtype="<i4") % 50257
    mask = np.frombuffer(clientlib.payload(ds + "/" + rel + ":mask", TOKENS),
                         dtype=np.uint8) & 1
    return {"input_ids": ids.astype("<i4"), "attention_mask": mask}


def manifest(ds, k):
    return {"format": 1, "dataset": ds, "tokenizer": "gpt2",
            "files": [{"path": rel, "tokens": TOKENS} for rel in FILES[:k]]}


def replace_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def write_dataset(root, i):
    ds = NAMES[i]
    d = os.path.join(root, ds)
    for k, rel in enumerate(FILES):
        final = os.path.join(d, rel)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = final + ".tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays(ds, rel))
        os.replace(tmp, final)
        replace_json(os.path.join(d, "manifest.json"), manifest(ds, k + 1))


def load_npz(ds, path, rel):
    """None when the file holds what was written, else what is wrong."""
    want = arrays(ds, rel)
    try:
        with np.load(path) as z:
            if sorted(z.files) != sorted(want):
                return "arrays %s" % z.files
            for k, v in want.items():
                if not np.array_equal(z[k], v) or z[k].dtype != v.dtype:
                    return "%s differs" % k
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        return "does not load: %s" % e
    return None


def read_dataset(root, i):
    """The reader: manifest, then every file it lists."""
    ds = NAMES[i]
    with open(os.path.join(root, ds, "manifest.json")) as f:
        m = json.load(f)
    assert m == manifest(ds, len(FILES)), "dataset %d: manifest %s" % (i, m)
    for e in m["files"]:
        err = load_npz(ds, os.path.join(root, ds, e["path"]), e["path"])
        assert err is None, "dataset %d %s: %s" % (i, e["path"], err)


def fill(root, items, hot, refresh):
    os.makedirs(root, exist_ok=True)
    last = items[-1]
    for i in items:
        write_dataset(root, i)
        if hot and clientlib.refresh_due(i, last, refresh):
            for h in range(hot):
                read_dataset(root, h)


def check_dataset(a, fail, root, i):
    """Checks one present dataset; returns the bytes its files hold."""
    ds = NAMES[i]
    d = os.path.join(root, ds)
    used = 0
    files = {}
    for dirpath, dirs, names in os.walk(d):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), d)
            files[rel] = os.path.join(dirpath, n)
            used += os.path.getsize(files[rel])
    mpath = os.path.join(d, "manifest.json")
    listed = []
    if "manifest.json" in files:
        try:
            with open(mpath) as f:
                m = json.load(f)
        except ValueError as e:
            m = None
            fail("%s/manifest.json torn: %s" % (ds, e))
        k = len(m["files"]) if isinstance(m, dict) and "files" in m else -1
        if fail.expect(1 <= k <= len(FILES) and m == manifest(ds, k),
                       "%s/manifest.json: not one the client wrote" % ds):
            listed = FILES[:k]
    for rel in listed:
        fail.expect(rel in files, "%s: %s is listed but gone" % (ds, rel))
    allowed = set(FILES) | {"manifest.json"}
    if a.crashed:      # written whole, not yet renamed: must be whole too
        allowed |= {r + ".tmp" for r in allowed}
    for rel, path in sorted(files.items()):
        if not fail.expect(rel in allowed, "%s/%s: not the client's" % (ds, rel)):
            continue
        if rel.startswith("manifest.json"):
            if rel.endswith(".tmp"):
                try:
                    with open(path) as f:
                        m = json.load(f)
                    fail.expect(m in [manifest(ds, k) for k in range(1, len(FILES) + 1)],
                                "%s/%s: not one the client wrote" % (ds, rel))
                except ValueError:
                    fail("%s/%s: torn" % (ds, rel))
            continue
        base = rel[:-4] if rel.endswith(".tmp") else rel
        err = load_npz(ds, path, base)
        fail.expect(err is None, "%s/%s: %s" % (ds, rel, err))
    if not a.crashed:
        fail.expect(listed == FILES and set(files) == set(FILES) | {"manifest.json"},
                    "%s: incomplete: %s" % (ds, sorted(files)))
    return used


def check(a):
    fail = clientlib.Failures("dlm_cache")
    n = a.fill_items + (a.nmore if a.more else 0)
    present = set()
    for name in os.listdir(a.dir):
        if fail.expect(name in INDEX and os.path.isdir(os.path.join(a.dir, name)),
                       "%s: not a cache directory of the client" % name):
            present.add(INDEX[name])
    used = 0
    for i in sorted(present, key=lambda i: (i < a.hot, i)):
        used += check_dataset(a, fail, a.dir, i)
    if not a.crashed:
        if a.capacity:
            clientlib.lru_expectations(fail, present, n, a.hot, TAIL)
            clientlib.within_capacity(fail, used, a.capacity)
        else:
            clientlib.all_expected(fail, present, n)
    fail.report("%d datasets present, %d bytes" % (len(present), used))


def main():
    a = clientlib.parse_args(__doc__, ITEMS, HOT, REFRESH, MORE)
    if a.phase == "fill":
        fill(a.dir, list(range(a.items)), a.hot, a.refresh)
    elif a.phase == "more":
        fill(a.dir, list(range(a.fill_items, a.fill_items + a.nmore)), 0, 1)
    elif a.phase == "check":
        check(a)
    else:
        sys.exit("dlm_cache: no clear phase")


if __name__ == "__main__":
    main()
