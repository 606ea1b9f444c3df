#!/usr/bin/python3
"""SGLang's HiCache file backend (HiCacheFile), acted out.

Its storage directory (SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR) holds one
flat file per KV page and tensor-parallel rank,
<64-hex page hash>_<model>_<tp_rank>_<tp_size>.bin, written with numpy's
tofile and read back with readinto into a preallocated buffer; exists()
is os.path.exists, clear() removes every file listed at the top.  Beside
the pages, __metadata__<suffix>/ holds entries/<hash>.json, one per page
(rank 0 writes it), and versions_<rank>.jsonl, which each rank appends a
line to per page.  Page hashes chain as SGLang's get_hash_str does:
sha256 of the prior hash and the page's token ids.

The two ranks are two processes in lock step (a barrier per page, as the
ranks of one model are).  Phases and checks: see clientlib.
"""

import hashlib
import json
import multiprocessing
import os
import sys

import numpy as np

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib  # noqa: E402

MODEL = "Qwen3-8B"
TP = 2
PAGE_TOKENS = 64
# per rank: 64 tokens x (k, v) x 16 layers x 4 heads x 8 dims x bfloat16
PAGE_BYTES = PAGE_TOKENS * 2 * 16 * 4 * 8 * 2           # 128 KiB
ITEMS, HOT, REFRESH, MORE = 96, 4, 8, 8                  # 24 MiB in all
TAIL = 8                                                 # 2 MiB
MAX_STEPS = 4096
META = "__metadata__" + MODEL


def get_hash_str(token_ids, prior_hash=None):
    h = hashlib.sha256()
    if prior_hash:
        h.update(bytes.fromhex(prior_hash))
    for t in token_ids:
        h.update(t.to_bytes(4, byteorder="little", signed=False))
    return h.hexdigest()


def page_hashes(n):
    out, prior = [], None
    for i in range(n):
        tokens = [(i * PAGE_TOKENS + j) * 7919 % 151000 for j in range(PAGE_TOKENS)]
        prior = get_hash_str(tokens, prior)
        out.append(prior)
    return out


HASHES = page_hashes(MAX_STEPS)
STEP_OF = {h: i for i, h in enumerate(HASHES)}


class HiCacheFile:
    """The backend's file calls, one rank."""

    def __init__(self, root, rank):
        self.root, self.rank = root, rank
        self.suffix = "_%s_%d_%d" % (MODEL, rank, TP)
        self.meta = os.path.join(root, META)
        os.makedirs(os.path.join(self.meta, "entries"), exist_ok=True)

    def path(self, key):
        return os.path.join(self.root, key + self.suffix + ".bin")

    def exists(self, key):
        return os.path.exists(self.path(key))

    def set(self, key, value, step, prior):
        if self.exists(key):
            return True
        value.view(np.uint8).tofile(self.path(key))
        if self.rank == 0:
            with open(os.path.join(self.meta, "entries", key + ".json"), "w") as f:
                f.write(entry_json(key, step, prior))
        with open(os.path.join(self.meta, "versions_%d.jsonl" % self.rank), "a") as f:
            f.write(version_line(self.rank, step, key))
        return True

    def get(self, key, target):
        with open(self.path(key), "rb") as f:
            n = f.readinto(memoryview(target).cast("B"))
        return n

    def clear(self):
        for name in os.listdir(self.root):
            p = os.path.join(self.root, name)
            if os.path.isfile(p):
                os.remove(p)


def entry_json(key, step, prior):
    return json.dumps({"hash": key, "prior": prior, "page": step,
                       "tokens": PAGE_TOKENS, "model": MODEL, "tp_size": TP},
                      sort_keys=True)


def version_line(rank, step, key):
    return json.dumps({"rank": rank, "seq": step, "hash": key}, sort_keys=True) + "\n"


def page_name(step, rank):
    return "%s_%s_%d_%d.bin" % (HASHES[step], MODEL, rank, TP)


def page_value(step, rank):
    return np.frombuffer(clientlib.payload(page_name(step, rank), PAGE_BYTES),
                         dtype=np.uint8)


def read_hot(be, rank, hot):
    buf = np.empty(PAGE_BYTES // 2, dtype=np.uint16)     # the host pool's slot
    for i in range(hot):
        n = be.get(HASHES[i], buf)
        assert n == PAGE_BYTES, "rank %d: hot page %d read %d bytes" % (rank, i, n)
        assert buf.tobytes() == page_value(i, rank).tobytes(), \
            "rank %d: hot page %d reads other bytes" % (rank, i)


def rank_main(root, rank, steps, hot, refresh, barrier):
    be = HiCacheFile(root, rank)
    last = steps[-1]
    for i in steps:
        prior = HASHES[i - 1] if i else None
        be.set(HASHES[i], page_value(i, rank), i, prior)
        if hot and clientlib.refresh_due(i, last, refresh):
            read_hot(be, rank, hot)
        barrier.wait(timeout=60)


def run_ranks(root, steps, hot, refresh):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(TP)
    os.makedirs(root, exist_ok=True)
    procs = [ctx.Process(target=rank_main,
                         args=(root, r, steps, hot, refresh, barrier))
             for r in range(TP)]
    for p in procs:
        p.start()
    failed = False
    while any(p.is_alive() for p in procs):
        for p in procs:
            p.join(0.05)
            if p.exitcode not in (None, 0) and not failed:
                failed = True
                barrier.abort()     # the other rank stops at its next page
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        sys.exit("a rank failed: exit codes %s" % [p.exitcode for p in procs])


def check(a):
    fail = clientlib.Failures("sglang_hicache")
    root = a.dir
    nsteps = a.fill_items + (a.nmore if a.more else 0)
    present = [dict() for _ in range(TP)]        # step -> size, per rank
    meta_seen = False
    for name in os.listdir(root):
        p = os.path.join(root, name)
        if name == META and os.path.isdir(p):
            meta_seen = True
            continue
        parts = name[:-4].split("_") if name.endswith(".bin") else []
        if (len(parts) != 4 or parts[0] not in STEP_OF or parts[1] != MODEL
                or parts[3] != str(TP) or parts[2] not in ("0", "1")):
            fail("%s: a file the client did not write" % name)
            continue
        present[int(parts[2])][STEP_OF[parts[0]]] = os.path.getsize(p)
    # read what is there in the order it was last used
    order = sorted(range(MAX_STEPS), key=lambda i: (i < a.hot, i))
    buf = np.empty(PAGE_BYTES, dtype=np.uint8)
    for i in order:
        for r in range(TP):
            if i not in present[r]:
                continue
            if not fail.expect(present[r][i] == PAGE_BYTES,
                               "rank %d page %d: %d bytes" % (r, i, present[r][i])):
                continue
            try:
                n = HiCacheFile(root, r).get(HASHES[i], buf)
            except OSError as e:
                fail("rank %d page %d: listed, then %s" % (r, i, e))
                continue
            fail.expect(n == PAGE_BYTES and buf.tobytes() == page_value(i, r).tobytes(),
                        "rank %d page %d: torn or other bytes" % (r, i))
    sets = check_metadata(a, fail, root, meta_seen, nsteps)
    for r in range(TP):
        for i in present[r]:
            fail.expect(i <= sets[r], "rank %d page %d is there but its rank "
                        "logged only %d pages" % (r, i, sets[r]))
    if not a.crashed:
        used = 0
        for r in range(TP):
            if a.capacity:
                clientlib.lru_expectations(fail, set(present[r]), nsteps,
                                           a.hot, TAIL)
            else:
                clientlib.all_expected(fail, set(present[r]), nsteps)
            used += sum(present[r].values())
        if a.capacity:
            clientlib.within_capacity(fail, used, a.capacity)
        lows = [min((i for i in present[r] if i >= a.hot), default=nsteps)
                for r in range(TP)]
        fail.expect(max(lows) - min(lows) <= 1,
                    "the ranks' oldest pages differ by more than one page: %s" % lows)
    fail.report("%d + %d pages present" % (len(present[0]), len(present[1])))


def check_metadata(a, fail, root, meta_seen, nsteps):
    """entries/<hash>.json whole and exact; each versions file a whole
    run of lines from seq 0.  Returns how many pages each rank logged."""
    sets = [0] * TP
    meta = os.path.join(root, META)
    if not meta_seen:
        fail.expect(a.crashed, "%s is gone" % META)
        return sets
    for name in os.listdir(meta):
        if name == "entries" or name in ("versions_%d.jsonl" % r for r in range(TP)):
            continue
        fail("%s/%s: a file the client did not write" % (META, name))
    for r in range(TP):
        p = os.path.join(meta, "versions_%d.jsonl" % r)
        if not os.path.exists(p):
            continue
        data = clientlib.read_all(p).decode()
        if not fail.expect(data.endswith("\n"), "%s: last line torn" % p):
            continue
        for seq, line in enumerate(data.splitlines(keepends=True)):
            if not fail.expect(line == version_line(r, seq, HASHES[seq]),
                               "%s line %d: %r" % (p, seq, line[:80])):
                break
            sets[r] = seq + 1
    ent = os.path.join(meta, "entries")
    names = os.listdir(ent) if os.path.isdir(ent) else []
    for name in names:
        key = name[:-5]
        if not fail.expect(name.endswith(".json") and key in STEP_OF,
                           "entries/%s: not the client's" % name):
            continue
        i = STEP_OF[key]
        want = entry_json(key, i, HASHES[i - 1] if i else None)
        fail.expect(clientlib.read_all(os.path.join(ent, name)).decode() == want,
                    "entries/%s: torn or other bytes" % name)
    if not a.crashed:
        fail.expect(sets == [nsteps] * TP, "versions logged %s pages, not %d"
                    % (sets, nsteps))
        fail.expect(len(names) == nsteps, "%d entries/*.json, not %d"
                    % (len(names), nsteps))
    return sets


def clear(a):
    HiCacheFile(a.dir, 0).clear()
    left = sorted(os.listdir(a.dir))
    be = [HiCacheFile(a.dir, r) for r in range(TP)]
    gone = not any(be[r].exists(h) for r in range(TP) for h in HASHES[:ITEMS + MORE])
    if left != [META] or not gone:
        sys.exit("sglang_hicache: after clear(): %s left" % left)
    print("sglang_hicache: clear() left %s" % left)


def main():
    a = clientlib.parse_args(__doc__, ITEMS, HOT, REFRESH, MORE)
    if a.phase == "fill":
        run_ranks(a.dir, list(range(a.items)), a.hot, a.refresh)
    elif a.phase == "more":
        run_ranks(a.dir, list(range(a.fill_items, a.fill_items + a.nmore)), 0, 1)
    elif a.phase == "clear":
        clear(a)
    else:
        check(a)


if __name__ == "__main__":
    main()
