/* test_store.c - the store end to end: bytes round trip, crash replay,
 * eviction order, pins, ENOSPC, space efficiency, renames, meta, verify. */
#include <fcntl.h>
#include <math.h>
#include <endian.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

#include "check.h"
#include "journal.h"
#include "store_test.h"
#include "tcache.h"
#include "storeutil.h"
#include "testutil.h"


static uint64_t mkentry(tc_store *s, const char *name)
{
	struct tc_stat st;
	int r = tc_mkdir(s, TC_ROOT_ID, name, 0755, 0, 0, &st);
	return r ? 0 : st.id;
}

/* Create (or replace) @name in @dir with @n bytes of seeded data, written in pieces of
 * @chunk, and commit.  Returns 0 or the first error. */
static int put(tc_store *s, uint64_t dir, const char *name, size_t n,
	       uint64_t seed, size_t chunk)
{
	struct tc_stat st;
	tc_file *f;
	int r = tc_lookup(s, dir, name, &st);
	if (r == 0)
		r = tc_open(s, st.id, TC_O_WRITE | TC_O_TRUNC, &f); /* replace */
	else
		r = tc_create(s, dir, name, 0644, 0, 0, &f, &st);
	if (r)
		return r;
	uint8_t *buf = malloc(n ? n : 1);
	fill(buf, n, seed);
	for (size_t at = 0; at < n && !r; at += chunk) {
		size_t k = n - at < chunk ? n - at : chunk;
		ssize_t w = tc_file_write(s, f, buf + at, k, at);
		if (w != (ssize_t)k)
			r = w < 0 ? (int)w : -EIO;
	}
	if (!r)
		r = tc_file_commit(s, f);
	tc_file_close(s, f);
	free(buf);
	return r;
}

/* Does @name in @dir hold exactly @n bytes of @seed's data? */
static int same(tc_store *s, uint64_t dir, const char *name, size_t n,
		uint64_t seed)
{
	struct tc_stat st;
	tc_file *f;
	if (tc_lookup(s, dir, name, &st) || st.size != n)
		return 0;
	if (tc_open(s, st.id, 0, &f))
		return 0;
	uint8_t *want = malloc(n + 1), *got = malloc(n + 1);
	fill(want, n, seed);
	ssize_t r = tc_file_pread(s, f, got, n + 1, 0);
	int ok = r == (ssize_t)n && memcmp(want, got, n) == 0;
	tc_file_close(s, f);
	free(want);
	free(got);
	return ok;
}

static int exists(tc_store *s, uint64_t dir, const char *name)
{
	struct tc_stat st;
	return tc_lookup(s, dir, name, &st) == 0;
}

/* Entries e0..e<n-1>, each with one tensor "t" of @size bytes of seed i,
 * written in 64 KiB pieces; their ids in @ids. */
static void mkentries(tc_store *s, int n, size_t size, uint64_t *ids)
{
	char name[16];
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "e%d", i);
		ids[i] = mkentry(s, name);
		CHECK(put(s, ids[i], "t", size, (uint64_t)i, 64 * KiB) == 0);
	}
}

static const size_t sizes[] = { 0, 1, 4095, 4096, 4097, MiB + 3, 9 * MiB + 17 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static void t_roundtrip_and_reopen(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 64 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "entry");
	REQUIRE(e);
	struct tc_stat g;
	REQUIRE(tc_mkdir(s, e, "group", 0750, 1, 2, &g) == 0);
	CHECK(g.kind == TC_KIND_GROUP && g.uid == 1 && g.gid == 2);
	char name[32];
	for (size_t i = 0; i < NSIZES; i++) {
		snprintf(name, sizeof(name), "t%zu", i);
		CHECK(put(s, e, name, sizes[i], i, 128 * KiB) == 0);
		CHECK(put(s, g.id, name, sizes[i], 100 + i, 4096 + 7) == 0);
	}
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < NSIZES; i++) {
			snprintf(name, sizeof(name), "t%zu", i);
			CHECK(same(s, e, name, sizes[i], i));
			CHECK(same(s, g.id, name, sizes[i], 100 + i));
		}
		struct tc_stats st;
		tc_store_stats(s, &st);
		CHECK(st.entries == 1 && st.groups == 1 && st.tensors == 2 * NSIZES);
		CHECK(st.capacity == 64 * MiB);
		CHECK(tc_store_close(s) == 0);
		s = open_store(d, 0);
		REQUIRE(s);
		struct tc_stat es;
		CHECK(tc_lookup(s, TC_ROOT_ID, "entry", &es) == 0 && es.id == e);
		CHECK(tc_lookup(s, e, "group", &g) == 0 && g.mode == (040000 | 0750));
	}
	/* paths for messages: "entry/group/name", "" for the root */
	char path[64];
	struct tc_stat t;
	REQUIRE(tc_lookup(s, g.id, "t0", &t) == 0);
	CHECK(tc_path(s, t.id, path, sizeof(path)) == 0 &&
	      !strcmp(path, "entry/group/t0"));
	CHECK(tc_path(s, TC_ROOT_ID, path, sizeof(path)) == 0 && !path[0]);
	CHECK(tc_path(s, 999999, path, sizeof(path)) == -ENOENT);
	tc_store_close(s);
	tmpdir_free(d);
}

static void t_second_open_fails(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB), *s2 = NULL;
	REQUIRE(s);
	CHECK(tc_store_open(d, NULL, &s2) == -EBUSY);
	CHECK(s2 == NULL);
	tc_store_close(s);
	CHECK(tc_store_open(d, NULL, &s2) == 0);
	tc_store_close(s2);
	tmpdir_free(d);
}

/* Cut the journal at every byte inside the record of the last commit:
 * earlier commits are intact, the last one is absent, never torn. */
static void t_crash_replay_every_offset(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	char name[16];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		CHECK(put(s, e, name, 5000 + (size_t)i * 3000, (uint64_t)i, 4096) == 0);
	}
	off_t before = journal_size(d);
	CHECK(put(s, e, "last", 70000, 99, 8192) == 0);
	off_t after = journal_size(d);
	CHECK(after > before);
	int bad = 0;
	for (off_t cut = before; cut <= after; cut++) {
		crash_copy(d, c, cut);
		tc_store *s2 = open_store(c, 0);
		if (!s2) {
			bad++;
			continue;
		}
		for (int i = 0; i < 4; i++) {
			snprintf(name, sizeof(name), "t%d", i);
			if (!same(s2, e, name, 5000 + (size_t)i * 3000, (uint64_t)i))
				bad++;
		}
		int last = exists(s2, e, "last");
		if (cut < after ? last : !same(s2, e, "last", 70000, 99))
			bad++;
		tc_store_close(s2);
	}
	CHECK(bad == 0);
	tc_store_close(s);
	tmpdir_free(d);
	tmpdir_free(c);
}

/* A write in progress when the process dies is absent after reopen. */
static void t_uncommitted_absent_after_crash(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "done", 10000, 1, 4096) == 0);
	tc_file *f;
	struct tc_stat st;
	uint8_t buf[8192];
	fill(buf, sizeof(buf), 5);
	REQUIRE(tc_create(s, e, "partial", 0644, 0, 0, &f, &st) == 0);
	CHECK(tc_file_write(s, f, buf, sizeof(buf), 0) == sizeof(buf));
	crash_copy(d, c, -1);
	tc_store *s2 = open_store(c, 0);
	REQUIRE(s2);
	CHECK(same(s2, e, "done", 10000, 1));
	CHECK(!exists(s2, e, "partial"));
	tc_store_close(s2);
	tc_file_close(s, f);
	CHECK(!exists(s, e, "partial")); /* never committed: gone at close */
	tc_store_close(s);
	tmpdir_free(d);
	tmpdir_free(c);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	if (fd < 0 || pread(fd, &b, 1, off) != 1)
		abort();
	b ^= 0xff;
	if (pwrite(fd, &b, 1, off) != 1)
		abort();
	close(fd);
}

/* A flipped byte inside one commit record drops that tensor only.  Where
 * the journal says a sync had covered the record it is damage
 * (journal_dropped); past that it is what a power loss leaves, a page
 * never written (journal_torn), and not damage. */
static void t_flipped_journal_byte(void)
{
	for (int synced = 0; synced < 2; synced++) {
		char *d = tmpdir_new();
		tc_store *s = open_store(d, 16 * MiB);
		REQUIRE(s);
		uint64_t e = mkentry(s, "e");
		CHECK(put(s, e, "a", 3000, 1, 4096) == 0);
		off_t mid = journal_size(d);
		CHECK(put(s, e, "b", 3000, 2, 4096) == 0);
		off_t mid2 = journal_size(d);
		CHECK(put(s, e, "c", 3000, 3, 4096) == 0);
		/* a record is known to be on disk once a mark says that an
		 * fdatasync covering it returned: the second sync's mark */
		if (synced)
			CHECK(tc_store_sync(s) == 0 && tc_store_sync(s) == 0);
		/* simulate a crash: keep the journal as is (no checkpoint) */
		char *c = tmpdir_new(), p[512];
		crash_copy(d, c, -1);
		tc_store_close(s);
		snprintf(p, sizeof(p), "%s/journal", c);
		flip_byte(p, mid + (mid2 - mid) / 2);
		s = open_store(c, 0);
		REQUIRE(s);
		CHECK(same(s, e, "a", 3000, 1));
		CHECK(!exists(s, e, "b"));
		CHECK(same(s, e, "c", 3000, 3));
		struct tc_stats st;
		tc_store_stats(s, &st);
		CHECK(st.journal_dropped == (synced ? 1u : 0u));
		CHECK(st.journal_torn == (synced ? 0u : 1u));
		tc_store_close(s);
		tmpdir_free(d);
		tmpdir_free(c);
	}
}

static void t_eviction_order_and_pins(void)
{
	char *d = tmpdir_new();
	/* 1 MiB: ten 100 KiB entries fit (25 blocks each, 250 of 256) */
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t ids[16];
	mkentries(s, 10, 100 * KiB, ids);
	struct tc_stats st;
	tc_store_stats(s, &st);
	CHECK(st.evictions == 0 && st.entries == 10);
	/* e2 is held open; then e3..e9 and e0 are opened, so the order,
	 * oldest first, is e1 (pinned), e2 (open), e3 ... e9, e0: without
	 * their pins e1 and e2 would be the first to go */
	CHECK(tc_pin(s, ids[1], 1) == 0);     /* pinned */
	tc_file *hold;
	struct tc_stat ts;
	REQUIRE(tc_lookup(s, ids[2], "t", &ts) == 0);
	REQUIRE(tc_open(s, ts.id, 0, &hold) == 0); /* held open */
	for (int i = 3; i < 10; i++)
		CHECK(same(s, ids[i], "t", 100 * KiB, (uint64_t)i));
	CHECK(same(s, ids[0], "t", 100 * KiB, 0));
	ids[10] = mkentry(s, "e10");
	CHECK(put(s, ids[10], "t", 250 * KiB, 10, 64 * KiB) == 0);
	/* needed ~250 KiB: e3, e4, e5 go (e1 pinned, e2 open, e0 young) */
	CHECK(exists(s, TC_ROOT_ID, "e0") && exists(s, TC_ROOT_ID, "e1") &&
	      exists(s, TC_ROOT_ID, "e2"));
	CHECK(!exists(s, TC_ROOT_ID, "e3") && !exists(s, TC_ROOT_ID, "e4"));
	CHECK(exists(s, TC_ROOT_ID, "e9"));
	tc_store_stats(s, &st);
	CHECK(st.evictions >= 2 && st.used <= st.capacity);
	CHECK(same(s, ids[10], "t", 250 * KiB, 10));
	CHECK(same(s, ids[1], "t", 100 * KiB, 1));
	uint8_t b[16];
	CHECK(tc_file_pread(s, hold, b, 16, 0) == 16);
	tc_file_close(s, hold);
	tc_store_close(s);
	tmpdir_free(d);
}

/* Pinned entries live apart from the eviction order (lru.c), yet an
 * unpinned entry takes its place by recency again, also when it was
 * pinned across a restart: from the journal (a crash) and from a
 * checkpoint. */
static void t_unpin_keeps_recency(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	/* 1 MiB, 256 blocks: four 200 KiB entries hold 200 of them */
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t id[4];
	mkentries(s, 4, 200 * KiB, id);
	CHECK(tc_pin(s, id[0], 1) == 0 && tc_pin(s, id[1], 1) == 0);
	CHECK(same(s, id[0], "t", 200 * KiB, 0)); /* e0: the youngest now */
	struct tc_stats st;
	tc_store_stats(s, &st);
	CHECK(st.pinned == 2 && st.entries == 4);
	/* oldest and newest access count the pinned entries too (e1, e0) */
	int64_t oldest = st.oldest_access_ns, newest = st.newest_access_ns;
	CHECK(oldest > 0 && oldest < newest);
	CHECK(tc_store_sync(s) == 0);            /* journals the recency */
	crash_copy(d, c, -1);
	tc_store_close(s);
	for (int k = 0; k < 2; k++) {
		s = open_store(k ? d : c, 0);
		REQUIRE(s);
		tc_store_stats(s, &st);
		CHECK(st.pinned == 2 && st.entries == 4);
		CHECK(st.oldest_access_ns == oldest && st.newest_access_ns == newest);
		CHECK(tc_pin(s, id[0], 0) == 0 && tc_pin(s, id[1], 0) == 0);
		tc_store_stats(s, &st);
		CHECK(st.pinned == 0);
		CHECK(st.oldest_access_ns == oldest && st.newest_access_ns == newest);
		/* least recent first: e1 e2 e3 e0; 250 KiB evicts one... */
		uint64_t x = mkentry(s, "x");
		CHECK(put(s, x, "t", 250 * KiB, 9, 64 * KiB) == 0);
		CHECK(!exists(s, TC_ROOT_ID, "e1") && exists(s, TC_ROOT_ID, "e2"));
		/* ... and 200 KiB more the next one */
		uint64_t y = mkentry(s, "y");
		CHECK(put(s, y, "t", 200 * KiB, 8, 64 * KiB) == 0);
		CHECK(!exists(s, TC_ROOT_ID, "e2") && exists(s, TC_ROOT_ID, "e3") &&
		      exists(s, TC_ROOT_ID, "e0"));
		CHECK(same(s, id[0], "t", 200 * KiB, 0) &&
		      same(s, x, "t", 250 * KiB, 9));
		tc_store_close(s);
	}
	tmpdir_free(c);
	tmpdir_free(d);
}

static int evicted_count;
static void on_evict(void *arg, uint64_t parent, uint64_t id, const char *name)
{
	(void)arg; (void)id; (void)name;
	if (parent == TC_ROOT_ID)
		evicted_count++;
}

/* Everything pinned: the write fails with ENOSPC and nothing changes. */
static void t_enospc_all_pinned(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 512 * KiB);
	REQUIRE(s);
	tc_store_on_evict(s, on_evict, NULL);
	evicted_count = 0;
	uint64_t ids[4];
	char name[8];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "e%d", i);
		ids[i] = mkentry(s, name);
		CHECK(put(s, ids[i], "t", 100 * KiB, (uint64_t)i, 4096) == 0);
	}
	CHECK(tc_pin(s, ids[0], 1) == 0 && tc_pin(s, ids[1], 1) == 0);
	tc_file *h2, *h3;
	struct tc_stat t2, t3;
	tc_lookup(s, ids[2], "t", &t2);
	tc_lookup(s, ids[3], "t", &t3);
	REQUIRE(tc_open(s, t2.id, 0, &h2) == 0 && tc_open(s, t3.id, 0, &h3) == 0);
	struct tc_stats before, after;
	tc_store_stats(s, &before);
	CHECK(put(s, ids[0], "big", 200 * KiB, 9, 64 * KiB) == -ENOSPC);
	tc_store_stats(s, &after);
	CHECK(evicted_count == 0 && after.evictions == 0);
	CHECK(after.used == before.used && after.entries == 4 && after.tensors == 4);
	CHECK(!exists(s, ids[0], "big"));
	for (int i = 0; i < 4; i++)
		CHECK(same(s, ids[i], "t", 100 * KiB, (uint64_t)i));
	/* space comes back once a pin goes */
	tc_file_close(s, h3);
	CHECK(put(s, ids[0], "big", 200 * KiB, 9, 64 * KiB) == 0);
	CHECK(evicted_count == 1 && !exists(s, TC_ROOT_ID, "e3"));
	CHECK(same(s, ids[0], "big", 200 * KiB, 9));
	tc_file_close(s, h2);
	tc_store_close(s);
	tmpdir_free(d);
}

static int first_eviction;
static void note_eviction(void *arg, uint64_t parent, uint64_t id, const char *name)
{
	(void)arg; (void)parent; (void)id; (void)name;
	first_eviction = 1;
}

/* Mixed sizes 1 KiB .. 64 MiB (log-uniform): at least 90% of the capacity
 * holds live bytes when the first eviction happens. */
static void t_space_efficiency_90(void)
{
	char *d = tmpdir_new();
	const uint64_t cap = 1024 * MiB;
	tc_store *s = open_store(d, cap);
	REQUIRE(s);
	tc_store_on_evict(s, note_eviction, NULL);
	first_eviction = 0;
	uint64_t seed = 12345, live_before = 0;
	size_t maxn = 64 * MiB;
	uint8_t *buf = malloc(maxn);
	memset(buf, 0xab, maxn);
	char name[32];
	int i;
	for (i = 0; !first_eviction && i < 100000; i++) {
		struct tc_stats st;
		tc_store_stats(s, &st);
		live_before = st.live_bytes;
		double lg = log(1024.0) + (double)(rnd(&seed) % 1000000) / 1e6 *
					       (log(64.0 * MiB) - log(1024.0));
		size_t n = (size_t)exp(lg);
		snprintf(name, sizeof(name), "e%d", i);
		struct tc_stat es;
		REQUIRE(tc_mkdir(s, TC_ROOT_ID, name, 0755, 0, 0, &es) == 0);
		tc_file *f;
		struct tc_stat ts;
		REQUIRE(tc_create(s, es.id, "x", 0644, 0, 0, &f, &ts) == 0);
		for (size_t at = 0; at < n; at += MiB) {
			size_t k = n - at < MiB ? n - at : MiB;
			REQUIRE(tc_file_write(s, f, buf + at, k, at) == (ssize_t)k);
		}
		REQUIRE(tc_file_commit(s, f) == 0);
		tc_file_close(s, f);
	}
	double fill_ratio = (double)live_before / (double)cap;
	printf("# entries %d, live bytes at first eviction %.4f of capacity\n",
	       i, fill_ratio);
	CHECK(first_eviction);
	CHECK(fill_ratio >= 0.90);
	free(buf);
	tc_store_close(s);
	tmpdir_free(d);
}

/* Readers keep the bytes they opened; replacements are atomic. */
static void t_replace_is_atomic(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "t", 50000, 1, 4096) == 0);
	struct tc_stat st;
	tc_lookup(s, e, "t", &st);
	tc_file *r1;
	REQUIRE(tc_open(s, st.id, 0, &r1) == 0);
	/* overwrite with O_TRUNC, different size */
	tc_file *w;
	REQUIRE(tc_open(s, st.id, TC_O_WRITE | TC_O_TRUNC, &w) == 0);
	uint8_t nb[30000];
	fill(nb, sizeof(nb), 2);
	CHECK(tc_file_write(s, w, nb, sizeof(nb), 0) == sizeof(nb));
	/* not yet committed: a new reader sees the old bytes, and stat the
	 * larger of the two sizes (readers read their version to its end) */
	CHECK(same(s, e, "t", 50000, 1));
	tc_file *r2;
	REQUIRE(tc_open(s, st.id, 0, &r2) == 0);
	uint8_t got[60000], want[60000];
	fill(want, 50000, 1);
	CHECK(tc_file_pread(s, r2, got, sizeof(got), 0) == 50000 &&
	      !memcmp(got, want, 50000));
	CHECK(tc_file_commit(s, w) == 0);
	tc_file_close(s, w);
	CHECK(same(s, e, "t", 30000, 2));
	CHECK(tc_file_pread(s, r1, got, sizeof(got), 0) == 50000 &&
	      !memcmp(got, want, 50000));
	tc_file_close(s, r1);
	tc_file_close(s, r2);
	/* append without truncation: old bytes then new */
	REQUIRE(tc_open(s, st.id, TC_O_WRITE, &w) == 0);
	CHECK(tc_file_write(s, w, "tail", 4, 30000) == 4);
	CHECK(tc_file_commit(s, w) == 0);
	tc_file_close(s, w);
	tc_lookup(s, e, "t", &st);
	CHECK(st.size == 30004);
	REQUIRE(tc_open(s, st.id, 0, &r1) == 0);
	CHECK(tc_file_pread(s, r1, got, sizeof(got), 0) == 30004);
	CHECK(!memcmp(got, nb, 30000) && !memcmp(got + 30000, "tail", 4));
	tc_file_close(s, r1);
	/* a write past the end leaves zeros in the gap */
	REQUIRE(tc_open(s, st.id, TC_O_WRITE, &w) == 0);
	CHECK(tc_file_write(s, w, "Z", 1, 40000) == 1);
	CHECK(tc_file_commit(s, w) == 0);
	tc_file_close(s, w);
	REQUIRE(tc_open(s, st.id, 0, &r1) == 0);
	CHECK(tc_file_pread(s, r1, got, sizeof(got), 0) == 40001);
	int zeros = 1;
	for (int i = 30004; i < 40000; i++)
		zeros &= got[i] == 0;
	CHECK(zeros && got[40000] == 'Z');
	tc_file_close(s, r1);
	/* truncate without a handle commits at once */
	struct tc_setattr sa = { .valid = TC_SET_SIZE, .size = 10 };
	CHECK(tc_setattr(s, st.id, &sa, NULL, &st) == 0 && st.size == 10);
	tc_store_close(s);
	s = open_store(d, 0);
	REQUIRE(s);
	CHECK(tc_lookup(s, e, "t", &st) == 0 && st.size == 10);
	tc_store_close(s);
	tmpdir_free(d);
}

static void t_rename_rules(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	REQUIRE(s);
	uint64_t a = mkentry(s, "a"), b = mkentry(s, "b");
	struct tc_stat g;
	REQUIRE(tc_mkdir(s, a, "g", 0755, 0, 0, &g) == 0);
	CHECK(put(s, a, "x", 1000, 1, 4096) == 0);
	CHECK(put(s, a, "y", 2000, 2, 4096) == 0);
	CHECK(put(s, b, "z", 3000, 3, 4096) == 0);
	/* rename over an existing tensor (rsync's temp file pattern) */
	CHECK(tc_rename(s, a, "x", a, "y", 0) == 0);
	CHECK(!exists(s, a, "x") && same(s, a, "y", 1000, 1));
	/* across entries */
	CHECK(tc_rename(s, a, "y", b, "y2", 0) == 0);
	CHECK(same(s, b, "y2", 1000, 1));
	CHECK(tc_rename(s, b, "z", TC_ROOT_ID, "z", 0) == -EXDEV);
	CHECK(tc_rename(s, TC_ROOT_ID, "a", g.id, "in", 0) == -EINVAL);
	CHECK(tc_rename(s, b, "z", b, "y2", TC_RENAME_NOREPLACE) == -EEXIST);
	CHECK(tc_rename(s, b, "z", b, "meta.json", 0) == -EEXIST);
	CHECK(tc_rename(s, TC_ROOT_ID, "a", TC_ROOT_ID, "b", 0) == -ENOTEMPTY);
	CHECK(tc_rename(s, TC_ROOT_ID, "a", TC_ROOT_ID, "a2", 0) == 0);
	/* a group becomes an entry and back */
	CHECK(tc_rename(s, a, "g", TC_ROOT_ID, "g", 0) == 0);
	struct tc_stat gs;
	CHECK(tc_lookup(s, TC_ROOT_ID, "g", &gs) == 0 && gs.kind == TC_KIND_ENTRY);
	CHECK(tc_rename(s, TC_ROOT_ID, "g", b, "g", 0) == 0);
	CHECK(tc_lookup(s, b, "g", &gs) == 0 && gs.kind == TC_KIND_GROUP);
	struct tc_stats st;
	tc_store_stats(s, &st);
	CHECK(st.entries == 2 && st.groups == 1 && st.tensors == 2);
	tc_store_close(s);
	s = open_store(d, 0);
	REQUIRE(s);
	CHECK(same(s, b, "y2", 1000, 1) && same(s, b, "z", 3000, 3));
	CHECK(exists(s, TC_ROOT_ID, "a2") && !exists(s, TC_ROOT_ID, "a"));
	CHECK(tc_lookup(s, b, "g", &gs) == 0 && gs.kind == TC_KIND_GROUP);
	tc_store_stats(s, &st);
	CHECK(st.entries == 2 && st.groups == 1 && st.tensors == 2);
	tc_store_close(s);
	tmpdir_free(d);
}

static void t_refusals(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 4 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	struct tc_stat st;
	tc_file *f;
	char longname[300];
	memset(longname, 'n', 256);
	longname[256] = 0;
	CHECK(tc_create(s, TC_ROOT_ID, ".tcache-stats", 0644, 0, 0, &f, &st) == -EEXIST);
	CHECK(tc_mkdir(s, TC_ROOT_ID, longname, 0755, 0, 0, &st) == -ENAMETOOLONG);
	longname[255] = 0;
	CHECK(tc_mkdir(s, TC_ROOT_ID, longname, 0755, 0, 0, &st) == 0);
	CHECK(tc_mkdir(s, TC_ROOT_ID, "e", 0755, 0, 0, &st) == -EEXIST);
	CHECK(tc_mkdir(s, TC_ROOT_ID, "..", 0755, 0, 0, &st) == -EINVAL);
	CHECK(tc_mkdir(s, TC_ROOT_ID, "a/b", 0755, 0, 0, &st) == -EINVAL);
	CHECK(tc_create(s, e, "meta.json", 0644, 0, 0, &f, &st) == -EEXIST);
	CHECK(put(s, e, "t", 10, 1, 10) == 0);
	CHECK(tc_rmdir(s, TC_ROOT_ID, "e") == -ENOTEMPTY);
	CHECK(tc_unlink(s, TC_ROOT_ID, "e") == -EISDIR);
	CHECK(tc_rmdir(s, e, "t") == -ENOTDIR);
	CHECK(tc_lookup(s, e, "nope", &st) == -ENOENT);
	CHECK(tc_getattr(s, 999999, &st) == -ENOENT);
	CHECK(tc_unlink(s, e, "t") == 0 && tc_rmdir(s, TC_ROOT_ID, "e") == 0);
	uint64_t v;
	CHECK(tc_parse_size("20G", &v) == 0 && v == 20ull << 30);
	CHECK(tc_parse_size("64K", &v) == 0 && v == 65536);
	CHECK(tc_parse_size("1.5M", &v) == 0 && v == 3ull << 19);
	CHECK(tc_parse_size("512", &v) == 0 && v == 512);
	CHECK(tc_parse_size("2GiB", &v) == 0 && v == 2ull << 30);
	CHECK(tc_parse_size("", &v) == -EINVAL && tc_parse_size("G", &v) == -EINVAL);
	CHECK(tc_parse_size("12X", &v) == -EINVAL && tc_parse_size("0", &v) == -EINVAL);
	CHECK(tc_parse_size("99999999999999999999", &v) == -ERANGE);
	CHECK(tc_parse_size("20000000T", &v) == -ERANGE);
	tc_store_close(s);
	tmpdir_free(d);
}

static void t_unlink_while_open(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "t", 500 * KiB, 4, 64 * KiB) == 0);
	struct tc_stat st;
	tc_lookup(s, e, "t", &st);
	tc_file *r;
	REQUIRE(tc_open(s, st.id, 0, &r) == 0);
	CHECK(tc_unlink(s, e, "t") == 0);
	struct tc_stat fs;
	CHECK(tc_file_stat(s, r, &fs) == 0 && fs.nlink == 0 && fs.size == 500 * KiB);
	/* still found by id while open (the daemon's fstat), gone after */
	CHECK(tc_getattr(s, st.id, &fs) == 0 && fs.nlink == 0 && fs.size == 500 * KiB);
	struct tc_setattr sa = { .valid = TC_SET_SIZE, .size = 1 };
	CHECK(tc_setattr(s, st.id, &sa, NULL, &fs) == -ENOENT);
	sa.valid = TC_SET_MODE;
	sa.mode = 0600;
	CHECK(tc_setattr(s, st.id, &sa, NULL, &fs) == 0 && (fs.mode & 0777) == 0600);
	struct tc_stats a, b;
	tc_store_stats(s, &a);
	CHECK(a.used >= 500 * KiB); /* still held by the reader */
	uint8_t *got = malloc(500 * KiB), *want = malloc(500 * KiB);
	fill(want, 500 * KiB, 4);
	CHECK(tc_file_pread(s, r, got, 500 * KiB, 0) == 500 * KiB &&
	      !memcmp(got, want, 500 * KiB));
	tc_file_close(s, r);
	CHECK(tc_getattr(s, st.id, &fs) == -ENOENT);
	tc_store_stats(s, &b);
	CHECK(b.used == 0);
	/* the same for a tensor renamed over while open */
	CHECK(put(s, e, "a", 1000, 5, 4096) == 0 && put(s, e, "b", 2000, 6, 4096) == 0);
	struct tc_stat as;
	REQUIRE(tc_lookup(s, e, "a", &as) == 0 && tc_open(s, as.id, 0, &r) == 0);
	CHECK(tc_rename(s, e, "b", e, "a", 0) == 0);
	CHECK(tc_getattr(s, as.id, &fs) == 0 && fs.nlink == 0 && fs.size == 1000);
	CHECK(same(s, e, "a", 2000, 6));
	tc_file_close(s, r);
	CHECK(tc_getattr(s, as.id, &fs) == -ENOENT);
	free(got);
	free(want);
	tc_store_close(s);
	tmpdir_free(d);
}

/* A v1.0 .npy header for float32 (2, 3), padded to 128 bytes. */
static size_t npy_f32_2x3(uint8_t *out)
{
	const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
	size_t hl = 128 - 10;
	memcpy(out, "\x93NUMPY\x01\x00", 8);
	out[8] = (uint8_t)hl;
	out[9] = 0;
	memset(out + 10, ' ', hl);
	memcpy(out + 10, dict, strlen(dict));
	out[127] = '\n';
	float v[6] = { 1, 2, 3, 4, 5, 6 };
	memcpy(out + 128, v, sizeof(v));
	return 128 + sizeof(v);
}

static void t_meta_and_npy(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 4 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	uint8_t npy[256];
	size_t n = npy_f32_2x3(npy);
	struct tc_stat st;
	tc_file *f;
	REQUIRE(tc_create(s, e, "a.npy", 0644, 0, 0, &f, &st) == 0);
	CHECK(tc_file_write(s, f, npy, n, 0) == (ssize_t)n);
	CHECK(tc_file_commit(s, f) == 0);
	tc_file_close(s, f);
	CHECK(put(s, e, "raw", 64, 1, 64) == 0);
	char *json;
	size_t len;
	REQUIRE(tc_meta_get(s, e, &json, &len) == 0);
	CHECK(strlen(json) == len);
	CHECK(strstr(json, "\"float32\"") != NULL);
	CHECK(strstr(json, "\"uint8\"") != NULL);
	free(json);
	const char *set = "{\"__tcache__\": {\"tensors\": {\"raw\": {\"dtype\": \"float64\", \"shape\": [2, 4]}},"
			  " \"attrs\": {\"model\": \"m1\"}, \"pinned\": true}}";
	CHECK(tc_meta_set(s, e, set, strlen(set)) == 0);
	CHECK(tc_getattr(s, e, &st) == 0 && (st.mode & S_ISVTX)); /* pinned */
	const char *bad = "{\"__tcache__\": {\"tensors\": {\"raw\": {\"dtype\": \"float64\", \"shape\": [3]}}}}";
	CHECK(tc_meta_set(s, e, bad, strlen(bad)) == -EINVAL);
	CHECK(tc_meta_set(s, e, "{", 1) == -EINVAL);
	const char *f99 = "{\"__tcache__\": {\"tensors\": {\"raw\": {\"dtype\": \"f99\"}}}}";
	CHECK(tc_meta_set(s, e, f99, strlen(f99)) == -EINVAL);
	tc_store_close(s);
	s = open_store(d, 0);
	REQUIRE(s);
	REQUIRE(tc_meta_get(s, e, &json, &len) == 0);
	CHECK(strstr(json, "\"float64\"") != NULL);
	CHECK(strstr(json, "\"m1\"") != NULL);
	CHECK(strstr(json, "\"pinned\":\ttrue") != NULL);
	free(json);
	struct tc_stats sts;
	tc_store_stats(s, &sts);
	CHECK(sts.pinned == 1);
	/* chmod -t unpins, chmod +t pins again: meta.json follows */
	struct tc_setattr sa = { .valid = TC_SET_MODE, .mode = 0755 };
	CHECK(tc_setattr(s, e, &sa, NULL, &st) == 0 && !(st.mode & S_ISVTX));
	tc_store_stats(s, &sts);
	CHECK(sts.pinned == 0);
	REQUIRE(tc_meta_get(s, e, &json, &len) == 0);
	CHECK(strstr(json, "\"pinned\":\tfalse") != NULL);
	free(json);
	sa.mode = 01755;
	CHECK(tc_setattr(s, e, &sa, NULL, &st) == 0 && (st.mode & 07777) == 01755);
	tc_store_close(s);
	s = open_store(d, 0);
	REQUIRE(s);
	tc_store_stats(s, &sts);
	CHECK(sts.pinned == 1);
	CHECK(tc_getattr(s, e, &st) == 0 && (st.mode & 07777) == 01755);
	CHECK(tc_pin(s, e, 0) == 0 && tc_getattr(s, e, &st) == 0 && (st.mode & 07777) == 0755);
	tc_store_close(s);
	tmpdir_free(d);
}

/* Damaged pool bytes are never served: -EIO for that tensor only. */
static void t_verify_on_open(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 4 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "a", 8192, 1, 4096) == 0);
	CHECK(put(s, e, "b", 8192, 2, 4096) == 0);
	struct tc_stat st;
	tc_file *f;
	tc_lookup(s, e, "b", &st);
	REQUIRE(tc_open(s, st.id, 0, &f) == 0);
	struct tc_span sp[4];
	int n;
	size_t total;
	REQUIRE(tc_file_map(s, f, 100, 1, sp, 4, &n, &total) == 0 && n == 1);
	off_t where = (off_t)sp[0].fd_off;
	tc_file_close(s, f);
	tc_store_close(s);
	char p[512];
	snprintf(p, sizeof(p), "%s/pool", d);
	flip_byte(p, where);
	s = open_store(d, 0);
	REQUIRE(s);
	CHECK(same(s, e, "a", 8192, 1));
	tc_lookup(s, e, "b", &st);
	CHECK(tc_open(s, st.id, 0, &f) == -EIO);
	CHECK(tc_open(s, st.id, 0, &f) == -EIO);
	tc_store_close(s);
	tmpdir_free(d);
}

static void t_capacity_change(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t e1 = mkentry(s, "e1"), e2 = mkentry(s, "e2");
	CHECK(put(s, e1, "t", 400 * KiB, 1, 64 * KiB) == 0);
	CHECK(put(s, e2, "t", 400 * KiB, 2, 64 * KiB) == 0);
	tc_store_close(s);
	s = open_store(d, 4 * MiB); /* grow */
	REQUIRE(s);
	struct tc_stats st;
	tc_store_stats(s, &st);
	CHECK(st.capacity == 4 * MiB && st.entries == 2);
	CHECK(same(s, e1, "t", 400 * KiB, 1) && same(s, e2, "t", 400 * KiB, 2));
	tc_store_close(s);
	s = open_store(d, 512 * KiB); /* shrink: the least recent goes, */
	REQUIRE(s);                   /* the other moves below the end */
	tc_store_stats(s, &st);
	CHECK(st.capacity == 512 * KiB && st.entries == 1 && st.evictions == 1);
	CHECK(same(s, e2, "t", 400 * KiB, 2) && !exists(s, TC_ROOT_ID, "e1"));
	tc_store_close(s);
	s = open_store(d, 0);
	REQUIRE(s);
	tc_store_stats(s, &st);
	CHECK(st.capacity == 512 * KiB && st.entries == 1);
	CHECK(same(s, e2, "t", 400 * KiB, 2));
	tc_store_close(s);
	tmpdir_free(d);
}

/* Recency survives a restart: the entry opened last is evicted last. */
static void t_recency_survives_restart(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 512 * KiB);
	REQUIRE(s);
	uint64_t a = mkentry(s, "a"), b = mkentry(s, "b");
	CHECK(put(s, a, "t", 200 * KiB, 1, 4096) == 0);
	CHECK(put(s, b, "t", 200 * KiB, 2, 4096) == 0);
	CHECK(same(s, a, "t", 200 * KiB, 1)); /* a is now the youngest */
	CHECK(tc_store_sync(s) == 0);          /* journals the recency */
	char *c = tmpdir_new();
	crash_copy(d, c, -1);                  /* recency from the log */
	tc_store_close(s);
	for (int k = 0; k < 2; k++) {
		s = open_store(k ? d : c, 0);   /* and from a checkpoint */
		REQUIRE(s);
		uint64_t x = mkentry(s, "x");
		CHECK(put(s, x, "t", 200 * KiB, 3, 4096) == 0);
		CHECK(exists(s, TC_ROOT_ID, "a") && !exists(s, TC_ROOT_ID, "b"));
		tc_store_close(s);
	}
	tmpdir_free(c);
	tmpdir_free(d);
}

/* Enough records to force checkpoints while tensors are committed and
 * replaced.  Right after each checkpoint, a crash copy must hold the
 * tensor whose commit record triggered it, and at the end every last
 * version. */
/* Rounds of 6000 puts: enough journal for a few checkpoints. */
#define ROUNDS 10

static void t_checkpoints_keep_every_commit(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	tc_store *s = open_store(d, 64 * MiB);
	REQUIRE(s);
	char name[TC_NAME_MAX + 1];
	uint64_t ents[50];
	memset(name, 'n', 200);
	for (int i = 0; i < 50; i++) {
		snprintf(name + 200, 20, "e%d", i);
		ents[i] = mkentry(s, name);
	}
	off_t prev = journal_size(d);
	int bad = 0, checkpoints = 0;
	for (int round = 0; round < ROUNDS; round++)
		for (int i = 0; i < 50; i++)
			for (int k = 0; k < 120; k++) {
				uint64_t seed = (uint64_t)(round * 100000 + i * 1000 + k);
				snprintf(name + 200, 20, "t%d", k);
				if (put(s, ents[i], name, 100, seed, 100))
					bad++;
				off_t js = journal_size(d);
				if (js < prev) { /* this put checkpointed */
					checkpoints++;
					crash_copy(d, c, -1);
					tc_store *s2 = open_store(c, 0);
					if (!s2 || !same(s2, ents[i], name, 100, seed))
						bad++;
					tc_store_close(s2);
				}
				prev = js;
			}
	CHECK(bad == 0);
	CHECK(checkpoints >= 2);
	crash_copy(d, c, -1);
	tc_store *s2 = open_store(c, 0);
	REQUIRE(s2);
	for (int i = 0; i < 50; i++)
		for (int k = 0; k < 120; k++) {
			snprintf(name + 200, 20, "t%d", k);
			if (!same(s2, ents[i], name, 100,
				  (uint64_t)((ROUNDS - 1) * 100000 + i * 1000 + k)))
				bad++;
		}
	CHECK(bad == 0);
	struct tc_stats st;
	tc_store_stats(s2, &st);
	CHECK(st.tensors == 50 * 120 && st.journal_dropped == 0 && st.nodes_dropped == 0);
	tc_store_close(s2);
	tc_store_close(s);
	tmpdir_free(d);
	tmpdir_free(c);
}

/* What t_checkpoint_in_child expects of each entry. */
struct cw_entry {
	char name[16];
	uint64_t id, seed;
	int gone;
};

/* Every entry as @want says: right name, last bytes, removed ones absent. */
static int cw_check(const char *d, const char *c, const struct cw_entry *want,
		    int n)
{
	int bad = 0;
	crash_copy(d, c, -1);
	tc_store *s2 = open_store(c, 0);
	if (!s2)
		return 1;
	for (int i = 0; i < n; i++) {
		struct tc_stat st;
		int found = tc_lookup(s2, TC_ROOT_ID, want[i].name, &st) == 0;
		if (found != !want[i].gone ||
		    (found && !same(s2, st.id, "t", 100, want[i].seed)))
			bad++;
	}
	struct tc_stats sts;
	tc_store_stats(s2, &sts);
	if (sts.journal_dropped || sts.nodes_dropped)
		bad++;
	tc_store_close(s2);
	return bad;
}

/* A checkpoint written by a child process while replacements, removals
 * and renames go on (they land in the old journal and are copied behind
 * the child's records): a crash right after the switch, and one later,
 * find every entry's last name and bytes and nothing removed. */
static void t_checkpoint_in_child(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new(), jnew[512];
	tc_store *s = open_store(d, 256 * MiB);
	REQUIRE(s);
	enum { N = 3000 };
	static struct cw_entry w[N];
	uint64_t ids[N];
	mkentries(s, N, 100, ids);
	for (int i = 0; i < N; i++) {
		snprintf(w[i].name, sizeof(w[i].name), "e%d", i);
		w[i].id = ids[i];
		w[i].seed = (uint64_t)i;
	}
	snprintf(jnew, sizeof(jnew), "%s/journal.new", d);
	uint64_t rnd = 12345;
	int bad = 0, during = 0, switches = 0, seen = 0, renamed = 0, removed = 0;
	off_t prev = journal_size(d);
	for (int op = 0; op < 400000 && switches < 2; op++) {
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		int k = (int)((rnd >> 33) % N);
		struct cw_entry *e = &w[k];
		if (e->gone) {
			e->id = mkentry(s, e->name);
			e->gone = !e->id;
			e->seed = (uint64_t)op + N;
			bad += e->gone || put(s, e->id, "t", 100, e->seed, 100);
		} else if (op % 13 == 0) {
			bad += tc_unlink(s, e->id, "t") != 0 ||
			       tc_rmdir(s, TC_ROOT_ID, e->name) != 0;
			e->gone = 1;
			removed += seen;
		} else if (op % 11 == 0) {
			char to[16];
			snprintf(to, sizeof(to), "r%d", op);
			bad += tc_rename(s, TC_ROOT_ID, e->name, TC_ROOT_ID,
					 to, 0) != 0;
			memcpy(e->name, to, sizeof(to));
			renamed += seen;
		} else {
			e->seed = (uint64_t)op + N;
			bad += put(s, e->id, "t", 100, e->seed, 100) != 0;
		}
		int running = access(jnew, F_OK) == 0;
		off_t js = journal_size(d);
		during += running;
		if (running)
			seen = 1;
		if (seen && !running && js < prev) { /* switched just now */
			switches++;
			seen = 0;
			bad += cw_check(d, c, w, N);
		}
		prev = js;
	}
	CHECK(bad == 0);
	CHECK(switches == 2 && during > 0);
	struct tc_stats st;
	tc_store_stats(s, &st);
	CHECK(st.checkpoints == 2);
	printf("# %d ops while a child wrote, %d removals, %d renames\n",
	       during, removed, renamed);
	CHECK(cw_check(d, c, w, N) == 0);
	tc_store_close(s);
	CHECK(cw_check(d, c, w, N) == 0);
	tmpdir_free(d);
	tmpdir_free(c);
}

static off_t tensor_pool_off(tc_store *s, uint64_t dir, const char *name)
{
	struct tc_stat st;
	tc_file *f;
	struct tc_span sp[4];
	int n;
	size_t total;
	if (tc_lookup(s, dir, name, &st) || tc_open(s, st.id, 0, &f))
		return -1;
	int r = tc_file_map(s, f, 0, 1, sp, 4, &n, &total);
	tc_file_close(s, f);
	return r || n != 1 ? -1 : (off_t)sp[0].fd_off;
}

static void pool_path(const char *d, char *p, size_t n)
{
	snprintf(p, n, "%s/pool", d);
}

/* A pool cut short under a stopped store: what it still holds is served,
 * what it lost is dropped (and stays dropped), the pool grows back. */
static void t_pool_truncated_or_missing(void)
{
	char *d = tmpdir_new(), p[512];
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t e1 = mkentry(s, "e1"), e2 = mkentry(s, "e2");
	CHECK(put(s, e1, "a", 100 * KiB, 1, 4096) == 0);
	CHECK(put(s, e2, "b", 100 * KiB, 2, 4096) == 0);
	off_t ob = tensor_pool_off(s, e2, "b");
	CHECK(ob >= 100 * (off_t)KiB);
	tc_store_close(s);
	pool_path(d, p, sizeof(p));
	REQUIRE(truncate(p, ob) == 0);
	for (int k = 0; k < 2; k++) {
		s = open_store(d, 0);
		REQUIRE(s);
		struct tc_stats st;
		tc_store_stats(s, &st);
		CHECK(same(s, e1, "a", 100 * KiB, 1));
		CHECK(!exists(s, e2, "b") && exists(s, TC_ROOT_ID, "e2"));
		CHECK(st.capacity == 1 * MiB && st.tensors == 1);
		CHECK(st.nodes_dropped == (k == 0 ? 1u : 0u));
		/* the space it held is free exactly once: fill the pool and
		 * check every byte */
		char nm[16];
		for (int i = 0; i < 7; i++) {
			snprintf(nm, sizeof(nm), "n%d", i);
			CHECK(put(s, e2, nm, 120 * KiB, 50 + (uint64_t)i, 4096) == 0);
		}
		CHECK(same(s, e1, "a", 100 * KiB, 1));
		for (int i = 0; i < 7; i++) {
			snprintf(nm, sizeof(nm), "n%d", i);
			CHECK(!exists(s, e2, nm) || same(s, e2, nm, 120 * KiB, 50 + (uint64_t)i));
			tc_unlink(s, e2, nm);
		}
		tc_store_close(s);
	}
	struct stat sb;
	CHECK(stat(p, &sb) == 0 && sb.st_size == (off_t)MiB);
	/* the pool file deleted: every tensor goes, the entries stay */
	REQUIRE(unlink(p) == 0);
	s = open_store(d, 0);
	REQUIRE(s);
	struct tc_stats st;
	tc_store_stats(s, &st);
	CHECK(st.tensors == 0 && st.entries == 2 && st.nodes_dropped == 1);
	CHECK(put(s, e1, "a", 100 * KiB, 3, 4096) == 0 && same(s, e1, "a", 100 * KiB, 3));
	tc_store_close(s);
	tmpdir_free(d);
}

struct problems {
	int n;
	char last[512];
};

static void on_problem(void *arg, const char *path, const char *problem)
{
	struct problems *p = arg;
	p->n++;
	snprintf(p->last, sizeof(p->last), "%s: %s", path, problem);
}

static void read_all(const char *path, char **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	*buf = NULL;
	*len = 0;
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	*buf = malloc(*len + 1);
	if (fread(*buf, 1, *len, f) != *len)
		*len = 0;
	fclose(f);
}

/* tc_store_check finds damaged bytes and changes nothing; with repair it
 * removes just the damaged tensor. */
static void t_check_and_repair(void)
{
	char *d = tmpdir_new(), p[512], jp[512];
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	struct tc_stat g;
	REQUIRE(tc_mkdir(s, e, "g", 0755, 0, 0, &g) == 0);
	CHECK(put(s, e, "good", 50 * KiB, 1, 4096) == 0);
	CHECK(put(s, g.id, "bad", 50 * KiB, 2, 4096) == 0);
	off_t ob = tensor_pool_off(s, g.id, "bad");
	struct tc_check c;
	struct problems pr = { 0 };
	CHECK(tc_store_check(d, 0, on_problem, &pr, &c) == -EBUSY);
	tc_store_close(s);
	CHECK(tc_store_check(d, 0, on_problem, &pr, &c) == 0);
	CHECK(c.tensors == 2 && c.damaged == 0 && pr.n == 0);
	CHECK(c.bytes == 100 * KiB);
	pool_path(d, p, sizeof(p));
	flip_byte(p, ob + 777);
	snprintf(jp, sizeof(jp), "%s/journal", d);
	char *j0, *j1;
	size_t l0, l1;
	read_all(jp, &j0, &l0);
	CHECK(tc_store_check(d, 0, on_problem, &pr, &c) == 0);
	CHECK(c.damaged == 1 && c.repaired == 0 && pr.n == 1);
	CHECK(strstr(pr.last, "e/g/bad: ") == pr.last);
	read_all(jp, &j1, &l1);
	CHECK(l0 == l1 && l0 && !memcmp(j0, j1, l0)); /* untouched */
	free(j0);
	free(j1);
	pr.n = 0;
	CHECK(tc_store_check(d, TC_CHECK_REPAIR, on_problem, &pr, &c) == 0);
	CHECK(c.damaged == 1 && c.repaired == 1 && pr.n == 1);
	CHECK(tc_store_check(d, 0, on_problem, &pr, &c) == 0);
	CHECK(c.damaged == 0 && c.tensors == 1);
	s = open_store(d, 0);
	REQUIRE(s);
	CHECK(same(s, e, "good", 50 * KiB, 1) && !exists(s, g.id, "bad"));
	tc_store_close(s);
	char *none = tmpdir_new();
	CHECK(tc_store_check(none, 0, NULL, NULL, &c) == -ENOENT);
	tmpdir_free(none);
	tmpdir_free(d);
}

/* After a checkpoint each entry has its own record: a flipped byte in the
 * journal of a stopped store drops one entry, the others are served. */
static void t_checkpoint_damage_costs_one_entry(void)
{
	char *d = tmpdir_new(), jp[512];
	tc_store *s = open_store(d, 4 * MiB);
	REQUIRE(s);
	char name[16];
	uint64_t ids[20];
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "e%02d", i);
		ids[i] = mkentry(s, name);
		CHECK(put(s, ids[i], "t", 3000, (uint64_t)i, 4096) == 0);
		CHECK(put(s, ids[i], "u", 5000, 100 + (uint64_t)i, 4096) == 0);
	}
	tc_store_close(s);
	snprintf(jp, sizeof(jp), "%s/journal", d);
	off_t js = journal_size(d);
	flip_byte(jp, js / 2);
	s = open_store(d, 0);
	REQUIRE(s);
	struct tc_stats st;
	tc_store_stats(s, &st);
	CHECK(st.journal_dropped == 1);
	CHECK(st.entries == 19 && st.tensors == 38);
	int gone = 0;
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "e%02d", i);
		if (!exists(s, TC_ROOT_ID, name)) {
			gone++;
			continue;
		}
		CHECK(same(s, ids[i], "t", 3000, (uint64_t)i));
		CHECK(same(s, ids[i], "u", 5000, 100 + (uint64_t)i));
	}
	CHECK(gone == 1);
	tc_store_close(s);
	tmpdir_free(d);
}

/* Whatever the write pattern, the checksum recorded at commit matches the
 * bytes: after a reopen (verification on) every tensor opens and reads. */
static void t_checksums_match_any_write_pattern(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	enum { N = 300000 };
	uint8_t *want = malloc(N);
	struct tc_stat st;
	tc_file *f;
	fill(want, N, 77);
	for (int pat = 0; pat < 6; pat++) {
		char name[8];
		snprintf(name, sizeof(name), "p%d", pat);
		REQUIRE(tc_create(s, e, name, 0644, 0, 0, &f, &st) == 0);
		uint64_t r = (uint64_t)pat + 1;
		switch (pat) {
		case 0: /* sequential, odd sizes */
			for (size_t at = 0; at < N; at += 4099)
				tc_file_write(s, f, want + at, at + 4099 > N ? N - at : 4099, at);
			break;
		case 1: /* backwards */
			for (size_t at = N; at > 0;) {
				size_t k = at > 10000 ? 10000 : at;
				at -= k;
				tc_file_write(s, f, want + at, k, at);
			}
			break;
		case 2: /* random pieces, then everything once more */
			for (int i = 0; i < 200; i++) {
				size_t at = rnd(&r) % N, k = 1 + rnd(&r) % 5000;
				if (at + k > N)
					k = N - at;
				tc_file_write(s, f, want + at, k, at);
			}
			tc_file_write(s, f, want, N, 0);
			break;
		case 3: /* garbage, truncate to 0, then the real bytes */
			tc_file_write(s, f, want + 1, N - 1, 0);
			{
				struct tc_setattr sa = { .valid = TC_SET_SIZE, .size = 0 };
				CHECK(tc_setattr(s, st.id, &sa, f, &st) == 0);
			}
			tc_file_write(s, f, want, N, 0);
			break;
		case 4: /* longer, then truncated down */
			tc_file_write(s, f, want, N, 0);
			tc_file_write(s, f, want, 5000, N);
			{
				struct tc_setattr sa = { .valid = TC_SET_SIZE, .size = N };
				CHECK(tc_setattr(s, st.id, &sa, f, &st) == 0);
			}
			break;
		case 5: /* commit halfway, then append through a new handle */
			tc_file_write(s, f, want, N / 2, 0);
			CHECK(tc_file_commit(s, f) == 0);
			tc_file_close(s, f);
			REQUIRE(tc_open(s, st.id, TC_O_WRITE, &f) == 0);
			tc_file_write(s, f, want + N / 2, N - N / 2, N / 2);
			break;
		}
		CHECK(tc_file_commit(s, f) == 0);
		tc_file_close(s, f);
	}
	/* replace one by O_TRUNC through a second handle */
	REQUIRE(tc_lookup(s, e, "p0", &st) == 0);
	REQUIRE(tc_open(s, st.id, TC_O_WRITE | TC_O_TRUNC, &f) == 0);
	CHECK(tc_file_write(s, f, want, N, 0) == N);
	CHECK(tc_file_commit(s, f) == 0);
	tc_file_close(s, f);
	tc_store_close(s);
	s = open_store(d, 0);
	REQUIRE(s);
	uint8_t *got = malloc(N + 1);
	for (int pat = 0; pat < 6; pat++) {
		char name[8];
		snprintf(name, sizeof(name), "p%d", pat);
		REQUIRE(tc_lookup(s, e, name, &st) == 0);
		int r = tc_open(s, st.id, 0, &f);
		CHECK(r == 0);
		if (r)
			continue;
		CHECK(tc_file_pread(s, f, got, N + 1, 0) == N && !memcmp(got, want, N));
		tc_file_close(s, f);
	}
	free(got);
	free(want);
	tc_store_close(s);
	tmpdir_free(d);
}

/* tc_store_peek reads a closed store without changing it; tc_stats_json
 * renders every number exactly. */
static void t_peek_and_stats_json(void)
{
	char *d = tmpdir_new(), jp[512];
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "t", 10000, 1, 4096) == 0);
	struct tc_stat st;
	CHECK(tc_lookup(s, TC_ROOT_ID, "e", &st) == 0);
	CHECK(tc_lookup(s, TC_ROOT_ID, "nope", &st) == -ENOENT);
	CHECK(tc_mkdir(s, TC_ROOT_ID, TC_STATS_NAME, 0755, 0, 0, &st) == -EEXIST);
	struct tc_stats a, b;
	CHECK(tc_store_peek(d, &b) == -EBUSY);
	tc_store_stats(s, &a);
	tc_store_close(s);
	snprintf(jp, sizeof(jp), "%s/journal", d);
	char *j0, *j1;
	size_t l0, l1;
	read_all(jp, &j0, &l0);
	CHECK(tc_store_peek(d, &b) == 0);
	read_all(jp, &j1, &l1);
	CHECK(l0 == l1 && !memcmp(j0, j1, l0));
	free(j0);
	free(j1);
	CHECK(b.capacity == MiB && b.entries == 1 && b.tensors == 1);
	CHECK(b.used == a.used && b.live_bytes == 10000);
	/* "nope" was never made: a miss from the close on */
	CHECK(b.hits == a.hits && a.misses == 0 && b.misses == 1);
	CHECK(b.probes == a.probes && b.probes == 2);
	char *json;
	size_t len;
	REQUIRE(tc_stats_json(&b, &json, &len) == 0);
	CHECK(strlen(json) == len && json[len - 1] == '\n');
	CHECK(strstr(json, "\"capacity\":\t1048576") != NULL);
	CHECK(strstr(json, "\"live_bytes\":\t10000") != NULL);
	CHECK(strstr(json, "\"probes\":\t2,") && strstr(json, "\"misses\":\t1,"));
	CHECK(strstr(json, "\"newest_access\":\t\"20") != NULL);
	free(json);
	b.hits = b.misses = 0;
	b.oldest_access_ns = 0;
	REQUIRE(tc_stats_json(&b, &json, &len) == 0);
	CHECK(strstr(json, "\"hit_rate\":\tnull") && strstr(json, "\"oldest_access\":\tnull"));
	free(json);
	char *none = tmpdir_new();
	CHECK(tc_store_peek(none, &b) == -ENOENT);
	tmpdir_free(none);
	tmpdir_free(d);
}

/* A late commit through an old handle (a FUSE release after its close)
 * does not commit another handle's rewrite that has only begun. */
static void t_late_commit_of_old_handle(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	tc_store *s = open_store(d, 4 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	struct tc_stat st;
	tc_file *y, *x;
	uint8_t old[4600], part[3];
	fill(old, sizeof(old), 1);
	memcpy(part, "NEW", 3);
	REQUIRE(tc_create(s, e, "t", 0644, 0, 0, &y, &st) == 0);
	CHECK(tc_file_changed(s, y) == 1);  /* created: commits an empty one */
	CHECK(tc_file_write(s, y, old, sizeof(old), 0) == sizeof(old));
	CHECK(tc_file_changed(s, y) == 1);
	CHECK(tc_file_commit(s, y) == 0);                 /* close() */
	CHECK(tc_file_changed(s, y) == 0);  /* its release: nothing to do */
	REQUIRE(tc_open(s, st.id, TC_O_WRITE | TC_O_TRUNC, &x) == 0);
	CHECK(tc_file_changed(s, x) == 1);
	CHECK(tc_file_write(s, x, part, 3, 0) == 3);     /* a rewrite begins */
	CHECK(tc_file_changed(s, y) == 0);  /* x's rewrite is not y's */
	CHECK(tc_file_commit(s, y) == 0);                 /* y's late release */
	tc_file_close(s, y);
	crash_copy(d, c, -1);
	tc_store *s2 = open_store(c, 0);
	REQUIRE(s2);
	CHECK(same(s2, e, "t", sizeof(old), 1));          /* still the old */
	tc_store_close(s2);
	CHECK(tc_file_commit(s, x) == 0);
	tc_file_close(s, x);
	REQUIRE(tc_lookup(s, e, "t", &st) == 0);
	CHECK(st.size == 3);
	/* open(O_TRUNC) as the kernel sends it without atomic_o_trunc: an
	 * open for writing, then a truncate by path.  The truncation belongs
	 * to the newest writer: its commit commits it, an older one's not. */
	REQUIRE(tc_open(s, st.id, TC_O_WRITE, &y) == 0);   /* older, idle */
	REQUIRE(tc_open(s, st.id, TC_O_WRITE, &x) == 0);
	struct tc_setattr sa = { .valid = TC_SET_SIZE, .size = 0 };
	CHECK(tc_setattr(s, st.id, &sa, NULL, &st) == 0);
	CHECK(st.size == 0); /* writers alone: the pending size */
	tc_file *r;
	REQUIRE(tc_open(s, st.id, 0, &r) == 0);
	CHECK(tc_file_changed(s, r) == 0);  /* a reader never has any */
	REQUIRE(tc_lookup(s, e, "t", &st) == 0);
	CHECK(st.size == 3 && st.writers == 2); /* a reader: the larger */
	CHECK(tc_file_commit(s, y) == 0);
	REQUIRE(tc_lookup(s, e, "t", &st) == 0);
	CHECK(st.size == 3);
	tc_file_close(s, r);
	CHECK(tc_file_commit(s, x) == 0);                  /* ': > t' */
	REQUIRE(tc_lookup(s, e, "t", &st) == 0);
	CHECK(st.size == 0);
	tc_file_close(s, x);
	tc_file_close(s, y);
	tc_store_close(s);
	tmpdir_free(d);
	tmpdir_free(c);
}

/* A 512 KiB store in @d holding entries "a", then "b" (a 200 KiB tensor
 * "t" each), synced; then "a" is read once.  *@before: the journal's size
 * before that read.  *@a, *@b: their ids.  NULL if it cannot be made. */
static tc_store *a_read_after_b(const char *d, uint64_t *a, uint64_t *b,
				off_t *before)
{
	tc_store *s = open_store(d, 512 * KiB);
	CHECK(s != NULL);
	if (!s)
		return NULL;
	*a = mkentry(s, "a");
	*b = mkentry(s, "b");
	CHECK(put(s, *a, "t", 200 * KiB, 1, 4096) == 0);
	CHECK(put(s, *b, "t", 200 * KiB, 2, 4096) == 0);
	CHECK(tc_store_sync(s) == 0);
	*before = journal_size(d);
	CHECK(same(s, *a, "t", 200 * KiB, 1));
	return s;
}

/* The store in @d (made by a_read_after_b) remembers that read: "a" is
 * the more recent, so a third entry evicts "b". */
static void check_a_younger(const char *d)
{
	tc_store *s = open_store(d, 0);
	REQUIRE(s);
	uint64_t x = mkentry(s, "x");
	CHECK(put(s, x, "t", 200 * KiB, 3, 4096) == 0);
	CHECK(exists(s, TC_ROOT_ID, "a") && !exists(s, TC_ROOT_ID, "b"));
	struct tc_stat st;
	CHECK(tc_lookup(s, TC_ROOT_ID, "a", &st) == 0 &&
	      same(s, st.id, "t", 200 * KiB, 1));
	tc_store_close(s);
}

/* Recency reaches the journal in batches: a crash before a batch is
 * written loses only recency (both entries and their bytes are there);
 * enough opens write a batch without a sync. */
static void t_touch_batches(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new(), *c2 = tmpdir_new();
	uint64_t a, b;
	off_t before;
	tc_store *s = a_read_after_b(d, &a, &b, &before);
	REQUIRE(s);
	CHECK(journal_size(d) == before);      /* one open: kept back */
	crash_copy(d, c, -1);
	for (int i = 0; i < 300; i++)        /* a batch fills and is written */
		if (!same(s, a, "t", 200 * KiB, 1))
			CHECK(0);
	CHECK(journal_size(d) > before);
	crash_copy(d, c2, -1);
	tc_store_close(s);

	s = open_store(c, 0);                  /* lost the open: recency only */
	REQUIRE(s);
	CHECK(same(s, a, "t", 200 * KiB, 1) && same(s, b, "t", 200 * KiB, 2));
	tc_store_close(s);
	check_a_younger(c2);                   /* kept it */
	tmpdir_free(c2);
	tmpdir_free(c);
	tmpdir_free(d);
}

/* Recency kept back reaches the journal at the first tick a second after
 * the open, with nothing else happening (the daemon ticks once a second):
 * a crash of an idle store then keeps it. */
static void t_touch_tick(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	uint64_t a, b;
	off_t before;
	tc_store *s = a_read_after_b(d, &a, &b, &before);
	REQUIRE(s);
	struct timespec second = { 1, 100 * 1000 * 1000 };
	nanosleep(&second, NULL);
	tc_store_tick(s);
	CHECK(journal_size(d) > before);
	crash_copy(d, c, -1);
	tc_store_tick(s);                      /* nothing due: nothing written */
	CHECK(journal_size(d) == journal_size(c));
	tc_store_close(s);
	check_a_younger(c);
	tmpdir_free(c);
	tmpdir_free(d);
}

/* A checkpoint writes its node count into the journal header (bytes
 * 32..39); a journal from before that field (zeros there) opens the same. */
static void t_header_node_count(void)
{
	char *d = tmpdir_new();
	char jp[4096];
	struct tc_stats st;
	uint8_t h[64];
	uint64_t nodes;
	tc_store *s = open_store(d, 64 * MiB);
	REQUIRE(s);
	for (int i = 0; i < 50; i++) {
		char name[16];
		snprintf(name, sizeof(name), "e%d", i);
		uint64_t e = mkentry(s, name);
		CHECK(put(s, e, "t", 100 + (size_t)i, (uint64_t)i, 4096) == 0);
	}
	CHECK(tc_store_close(s) == 0);
	snprintf(jp, sizeof(jp), "%s/journal", d);
	int fd = open(jp, O_RDWR);
	REQUIRE(fd >= 0 && pread(fd, h, 64, 0) == 64);
	memcpy(&nodes, h + 32, 8);
	CHECK(le64toh(nodes) == 100);
	/* Make it an old journal: zero the field, fix the header's hash. */
	memset(h + 32, 0, 8);
	uint64_t hash = htole64(XXH3_64bits(h, 56));
	memcpy(h + 56, &hash, 8);
	CHECK(pwrite(fd, h, 64, 0) == 64);
	close(fd);
	s = open_store(d, 0);
	REQUIRE(s);
	tc_store_stats(s, &st);
	CHECK(st.entries == 50 && st.tensors == 50 && st.journal_dropped == 0);
	int bad = 0;
	for (int i = 0; i < 50; i++) {
		char name[16];
		struct tc_stat es;
		snprintf(name, sizeof(name), "e%d", i);
		if (tc_lookup(s, TC_ROOT_ID, name, &es) ||
		    !same(s, es.id, "t", 100 + (size_t)i, (uint64_t)i))
			bad++;
	}
	CHECK(bad == 0);
	CHECK(tc_store_close(s) == 0);
	tmpdir_free(d);
}

/* ---- power loss: marks, the unsynced tail, the quarantine ---------------- */

/* The pool extents of @name's committed version in @dir (at most 8). */
static int extents_of(tc_store *s, uint64_t dir, const char *name,
		      struct tc_span *sp)
{
	struct tc_stat st;
	tc_file *f;
	int n = 0;
	size_t total = 0;
	if (tc_lookup(s, dir, name, &st) || tc_open(s, st.id, 0, &f))
		return -1;
	if (tc_file_map(s, f, 0, st.size, sp, 8, &n, &total) || total != st.size)
		n = -1;
	tc_file_close(s, f);
	return n;
}

/* What a power loss does to bytes that never reached the disk: zero
 * @name's extents (as found in @s) in the pool file of the copy @c. */
static void lose_bytes(tc_store *s, uint64_t dir, const char *name,
		       const char *c)
{
	struct tc_span sp[8];
	char p[512];
	int n = extents_of(s, dir, name, sp);
	snprintf(p, sizeof(p), "%s/pool", c);
	int fd = open(p, O_WRONLY);
	CHECK(n > 0 && fd >= 0);
	for (int i = 0; i < n && fd >= 0; i++) {
		uint8_t *z = calloc(1, sp[i].len);
		CHECK(pwrite(fd, z, sp[i].len, (off_t)sp[i].fd_off) ==
		      (ssize_t)sp[i].len);
		free(z);
	}
	if (fd >= 0)
		close(fd);
}

static int overlaps(const struct tc_span *a, int na, const struct tc_span *b,
		    int nb)
{
	for (int i = 0; i < na; i++)
		for (int k = 0; k < nb; k++)
			if (a[i].fd_off < b[k].fd_off + b[k].len &&
			    b[k].fd_off < a[i].fd_off + a[i].len)
				return 1;
	return 0;
}

/* A tensor committed but never synced, whose bytes a power loss took: it
 * is left out at the next open as never written (not listed, not EIO),
 * the synced one beside it is exact, and fsck calls that clean. */
static void t_unsynced_tensor_lost_at_power_loss_is_absent(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new(), *c2 = tmpdir_new();
	struct tc_stats st;
	struct tc_check chk;
	tc_store *s = open_store(d, 16 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "synced", 300 * KiB, 1, 64 * KiB) == 0);
	CHECK(tc_store_sync(s) == 0);
	CHECK(put(s, e, "unsynced", 200 * KiB + 5, 2, 64 * KiB) == 0);
	crash_copy(d, c, -1);
	crash_copy(d, c2, -1);
	lose_bytes(s, e, "unsynced", c);
	lose_bytes(s, e, "unsynced", c2);
	tc_store_close(s);

	CHECK(tc_store_check(c2, 0, NULL, NULL, &chk) == 0);
	CHECK(chk.damaged == 0 && chk.records_dropped == 0 &&
	      chk.nodes_dropped == 0 && chk.unsynced == 1);
	s = open_store(c, 0);
	REQUIRE(s);
	CHECK(same(s, e, "synced", 300 * KiB, 1));
	CHECK(!exists(s, e, "unsynced"));
	tc_store_stats(s, &st);
	CHECK(st.unsynced_dropped == 1 && st.fallbacks == 0 &&
	      st.nodes_dropped == 0 && st.tensors == 1);
	CHECK(tc_store_close(s) == 0);
	/* the drop was written down: the next open has nothing to settle */
	s = open_store(c, 0);
	REQUIRE(s);
	tc_store_stats(s, &st);
	CHECK(st.unsynced_dropped == 0 && st.tensors == 1);
	tc_store_close(s);
	tmpdir_free(c2);
	tmpdir_free(c);
	tmpdir_free(d);
}

/* A synced tensor replaced without a sync (in place, by a rename over it,
 * or in place and then moved to another entry), and the replacement's
 * bytes lost: the old bytes come back, where the tensor is now. */
static void t_unsynced_replacement_falls_back_to_the_old_bytes(void)
{
	for (int how = 0; how < 3; how++) {
		char *d = tmpdir_new(), *c = tmpdir_new();
		struct tc_stats st;
		tc_store *s = open_store(d, 16 * MiB);
		REQUIRE(s);
		uint64_t e = mkentry(s, "e"), e2 = mkentry(s, "e2"), at = e;
		CHECK(put(s, e, "x", 256 * KiB, 1, 64 * KiB) == 0);
		CHECK(tc_store_sync(s) == 0);
		if (how == 1) {
			CHECK(put(s, e, "x.tmp", 100 * KiB, 2, 64 * KiB) == 0);
			CHECK(tc_rename(s, e, "x.tmp", e, "x", 0) == 0);
		} else {
			CHECK(put(s, e, "x", 100 * KiB, 2, 64 * KiB) == 0);
		}
		if (how == 2) {
			CHECK(tc_rename(s, e, "x", e2, "x", 0) == 0);
			at = e2;
		}
		crash_copy(d, c, -1);
		lose_bytes(s, at, "x", c);
		tc_store_close(s);
		s = open_store(c, 0);
		REQUIRE(s);
		CHECK(same(s, at, "x", 256 * KiB, 1));
		CHECK(!exists(s, e, "x.tmp"));
		tc_store_stats(s, &st);
		CHECK(st.fallbacks == 1 && st.unsynced_dropped == 0);
		tc_store_close(s);
		tmpdir_free(c);
		tmpdir_free(d);
	}
}

/* Tensor "x" of entry @e in the store at @dir: there, and its read is
 * EIO (its bytes were durable, so losing them is damage). */
static void expect_eio(const char *dir, uint64_t e)
{
	struct tc_stat ts;
	tc_file *f = NULL;
	tc_store *s = open_store(dir, 0);
	REQUIRE(s);
	CHECK(tc_lookup(s, e, "x", &ts) == 0);
	CHECK(tc_open(s, ts.id, 0, &f) == -EIO);
	tc_store_close(s);
}

/* Damage to bytes that were synced is damage: EIO, as before. */
static void t_synced_damage_reads_eio(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "x", 64 * KiB, 1, 64 * KiB) == 0);
	CHECK(tc_store_sync(s) == 0);
	crash_copy(d, c, -1);
	lose_bytes(s, e, "x", c);
	tc_store_close(s);
	expect_eio(c, e);
	tmpdir_free(c);
	tmpdir_free(d);
}

/* Pool bytes [off, off + len) out of the page cache (1) or not (0). */
static int drop_pages(const char *dir, uint64_t off, uint64_t len)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/pool", dir);
	int fd = open(p, O_RDONLY), r = 0;
	if (fd < 0)
		return 0;
	if (fdatasync(fd) == 0 &&
	    posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED) == 0) {
		unsigned char vec[64];
		long pg = sysconf(_SC_PAGESIZE);
		off_t at = (off_t)(off & ~(uint64_t)(pg - 1));
		size_t mlen = (size_t)(off + len - (uint64_t)at);
		void *m = mmap(NULL, mlen, PROT_READ, MAP_SHARED, fd, at);
		r = m != MAP_FAILED && mlen <= sizeof(vec) * (size_t)pg &&
		    mincore(m, mlen, vec) == 0;
		for (size_t i = 0; r && i < (mlen + (size_t)pg - 1) / (size_t)pg; i++)
			r = !(vec[i] & 1);
		if (m != MAP_FAILED)
			munmap(m, mlen);
	}
	close(fd);
	return r;
}

static char damage_told[256];
static void on_damage(void *arg, const char *path, const char *problem)
{
	snprintf(arg, sizeof(damage_told), "%s: %s", path, problem);
}

/* Flip @bit of the pool byte at @off of the closed store in @d (through
 * the page cache, as damage after the write would be).  1 if done. */
static int flip_pool_bit(const char *d, uint64_t off, uint8_t bit)
{
	char p[512];
	uint8_t x = 0;
	snprintf(p, sizeof(p), "%s/pool", d);
	int fd = open(p, O_RDWR);
	int ok = fd >= 0 && pread(fd, &x, 1, (off_t)off) == 1;
	x ^= bit;
	ok = ok && pwrite(fd, &x, 1, (off_t)off) == 1;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* tc_store_verify_start checks, before any read, the tensors whose bytes
 * are in memory: damage found so answers EIO at the first open, as a
 * first read's own check would; a tensor with pages on disk only is left
 * to that read; and none of it is a use (no hit, no touch). */
static void t_tensors_in_memory_are_checked_before_any_read(void)
{
	char *d = tmpdir_new();
	struct tc_span sp[8];
	struct tc_stats st, after;
	struct tc_stat ts;
	tc_file *f = NULL;
	tc_store *s = open_store(d, 16 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "a", 64 * KiB, 1, 64 * KiB) == 0);
	CHECK(put(s, e, "b", 64 * KiB, 2, 64 * KiB) == 0);
	CHECK(put(s, e, "c", 64 * KiB, 3, 64 * KiB) == 0);
	CHECK(put(s, e, "small", 100, 4, 100) == 0); /* packed: a shared block */
	CHECK(extents_of(s, e, "b", sp) == 1);
	uint64_t b_off = sp[0].fd_off;
	CHECK(extents_of(s, e, "c", sp) == 1);
	uint64_t c_off = sp[0].fd_off, c_len = sp[0].len;
	CHECK(tc_store_close(s) == 0);

	/* b damaged in the page cache; c's pages on disk only */
	CHECK(flip_pool_bit(d, b_off + 5000, 0x40));
	REQUIRE(drop_pages(d, c_off, c_len));

	s = open_store(d, 0);
	REQUIRE(s);
	tc_store_stats(s, &st);
	CHECK(st.verified_ahead == 0 && st.damaged == 0);
	damage_told[0] = 0;
	CHECK(tc_store_verify_start(s, on_damage, damage_told) == 0);
	tc_store_verify_wait(s);
	CHECK(!strcmp(damage_told, "e/b: its bytes do not match their xxh3"));
	tc_store_stats(s, &after);
	CHECK(after.verified_ahead == 3); /* a, b, small */
	CHECK(after.damaged == 1);
	CHECK(after.hits == st.hits);
	CHECK(after.newest_access_ns == st.newest_access_ns);

	CHECK(tc_lookup(s, e, "b", &ts) == 0);
	CHECK(tc_open(s, ts.id, 0, &f) == -EIO);
	CHECK(same(s, e, "a", 64 * KiB, 1));
	CHECK(same(s, e, "small", 100, 4));
	CHECK(same(s, e, "c", 64 * KiB, 3)); /* checked now, at its read */
	tc_store_stats(s, &after);
	CHECK(after.verified_ahead == 3 && after.damaged == 1);
	/* started again: nothing is left to check; stopped by the close */
	CHECK(tc_store_verify_start(s, NULL, NULL) == 0);
	CHECK(tc_store_close(s) == 0);
	tmpdir_free(d);
}

/* The check after the open looks at the most recently used entries only,
 * up to its bound (VERIFY_AHEAD_MAX, 2 here): the older ones are left to
 * their first read, which still checks them. */
static void t_only_the_newest_entries_are_checked_ahead(void)
{
	char *d = tmpdir_new();
	struct tc_span sp[8];
	struct tc_stats st;
	struct tc_stat ts;
	tc_file *f = NULL;
	tc_store *s = open_store(d, 16 * MiB);
	REQUIRE(s);
	const char *names[] = { "old", "mid", "new" };
	uint64_t e[3];
	for (int i = 0; i < 3; i++) {
		e[i] = mkentry(s, names[i]);
		CHECK(put(s, e[i], "t", 64 * KiB, (uint8_t)(10 + i), 64 * KiB) == 0);
	}
	CHECK(extents_of(s, e[0], "t", sp) == 1); /* a use of "old" */
	uint64_t off = sp[0].fd_off;
	CHECK(same(s, e[1], "t", 64 * KiB, 11));      /* then of "mid" */
	CHECK(same(s, e[2], "t", 64 * KiB, 12));      /* and of "new" */
	CHECK(tc_store_close(s) == 0);

	/* "old", the least recently used, damaged in the page cache */
	CHECK(flip_pool_bit(d, off + 100, 0x01));

	s = open_store(d, 0);
	REQUIRE(s);
	tc_store_set_verify_ahead_max(s, 2);
	damage_told[0] = 0;
	CHECK(tc_store_verify_start(s, on_damage, damage_told) == 0);
	tc_store_verify_wait(s);
	tc_store_stats(s, &st);
	CHECK(st.verified_ahead == 2 && st.damaged == 0); /* new and mid */
	CHECK(damage_told[0] == 0);
	CHECK(tc_lookup(s, e[0], "t", &ts) == 0);
	CHECK(tc_open(s, ts.id, 0, &f) == -EIO); /* found at its first read */
	CHECK(same(s, e[2], "t", 64 * KiB, 12));
	CHECK(tc_store_close(s) == 0);
	tmpdir_free(d);
}

/* A clean close syncs the pool before its checkpoint: what it names is
 * on disk, so the checkpoint marks it durable (damage after that is
 * damage, not a lost write). */
static void t_close_makes_every_commit_durable(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "x", 64 * KiB, 1, 64 * KiB) == 0);
	CHECK(tc_store_close(s) == 0);
	s = open_store(d, 0);
	REQUIRE(s);
	lose_bytes(s, e, "x", d);
	tc_store_close(s);
	expect_eio(d, e);
	tmpdir_free(d);
}

/* A replaced version's extents are not handed out again before a sync
 * makes the replacing record durable; when the pool needs them, the
 * write syncs and takes them, evicting nothing. */
static void t_replaced_extents_wait_for_a_sync(void)
{
	char *d = tmpdir_new();
	struct tc_span old[8], now[8];
	struct tc_stats st;
	tc_store *s = open_store(d, 4 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "x", 1 * MiB, 1, 64 * KiB) == 0);
	int nold = extents_of(s, e, "x", old);
	CHECK(nold > 0);
	CHECK(put(s, e, "x", 1 * MiB, 2, 64 * KiB) == 0); /* x v1 held */
	tc_store_stats(s, &st);
	CHECK(st.used == 1 * MiB);
	CHECK(put(s, e, "y", 2 * MiB, 3, 64 * KiB) == 0); /* fits in free */
	int n = extents_of(s, e, "y", now);
	CHECK(n > 0 && !overlaps(now, n, old, nold));
	/* the pool is full but for x v1's held MiB: z needs it */
	CHECK(put(s, e, "z", 1 * MiB, 4, 64 * KiB) == 0);
	n = extents_of(s, e, "z", now);
	CHECK(n > 0 && overlaps(now, n, old, nold));
	tc_store_stats(s, &st);
	CHECK(st.evictions == 0 && st.used == 4 * MiB);
	CHECK(same(s, e, "x", 1 * MiB, 2) && same(s, e, "y", 2 * MiB, 3) &&
	      same(s, e, "z", 1 * MiB, 4));
	tc_store_close(s);
	tmpdir_free(d);
}

static int shrink_evictions;
static void count_shrink_eviction(void *arg, uint64_t parent, uint64_t id,
				  const char *name)
{
	(void)arg; (void)parent; (void)id; (void)name;
	shrink_evictions++;
}

/* A shrink keeps pinned entries wherever they lie, evicts unpinned ones
 * least recently used first (telling the open's listener), and refuses
 * with -EFBIG, changing nothing, when the pinned ones alone do not fit. */
static void t_shrink_keeps_pins_and_lru(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 2 * MiB);
	REQUIRE(s);
	uint64_t ids[5];
	mkentries(s, 5, 300 * KiB, ids);  /* e0..e4, e4 lies highest */
	CHECK(tc_pin(s, ids[4], 1) == 0 && tc_pin(s, ids[3], 1) == 0);
	CHECK(same(s, ids[0], "t", 300 * KiB, 0)); /* e0 is now recent */
	tc_store_close(s);

	struct tc_options o = { .capacity = 512 * KiB };
	CHECK(tc_store_open(d, &o, &s) == -EFBIG); /* pins hold 600 KiB */
	struct tc_stats st;
	CHECK(tc_store_peek(d, &st) == 0 && st.entries == 5 &&
	      st.pinned_bytes == 600 * KiB && st.capacity == 2 * MiB);

	o = (struct tc_options){ .capacity = 1 * MiB,
				 .on_evict = count_shrink_eviction };
	shrink_evictions = 0;
	REQUIRE(tc_store_open(d, &o, &s) == 0);
	tc_store_stats(s, &st);
	CHECK(st.capacity == 1 * MiB && st.entries == 3);
	CHECK(st.evictions == 2 && shrink_evictions == 2);
	CHECK(!exists(s, TC_ROOT_ID, "e1") && !exists(s, TC_ROOT_ID, "e2"));
	CHECK(same(s, ids[0], "t", 300 * KiB, 0));
	CHECK(same(s, ids[3], "t", 300 * KiB, 3));
	CHECK(same(s, ids[4], "t", 300 * KiB, 4));
	tc_store_close(s);
	s = open_store(d, 0);
	REQUIRE(s);
	CHECK(same(s, ids[4], "t", 300 * KiB, 4) && same(s, ids[0], "t", 300 * KiB, 0));
	tc_store_close(s);
	tmpdir_free(d);
}

/* A tensor whose write failed is not committed: new ones are absent after
 * the failed commit, rewritten ones keep their committed bytes, also when
 * the same handle committed in between (a close of a dup'ed descriptor),
 * and also after a reopen of the store. */
static void t_failed_write_is_not_committed(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	uint8_t buf[64 * 1024];
	struct tc_stat st;
	tc_file *f;

	memset(buf, 7, sizeof(buf));
	/* new: EFBIG past the capacity, the commit answers it */
	REQUIRE(tc_create(s, e, "new", 0644, 0, 0, &f, &st) == 0);
	CHECK(tc_file_write(s, f, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf));
	CHECK(tc_file_write(s, f, buf, sizeof(buf), MiB - 4096) == -EFBIG);
	CHECK(tc_file_write(s, f, buf, 10, 0) == 10);
	CHECK(tc_file_commit(s, f) == -EFBIG);
	CHECK(!exists(s, e, "new"));
	CHECK(tc_file_commit(s, f) == 0); /* reported once */
	tc_file_close(s, f);
	CHECK(!exists(s, e, "new"));

	/* rewrite, committed empty through the same handle first */
	CHECK(put(s, e, "old", 5000, 3, 4096) == 0);
	REQUIRE(tc_lookup(s, e, "old", &st) == 0);
	REQUIRE(tc_open(s, st.id, TC_O_WRITE | TC_O_TRUNC, &f) == 0);
	CHECK(tc_file_commit(s, f) == 0);
	CHECK(tc_lookup(s, e, "old", &st) == 0 && st.size == 0);
	CHECK(tc_file_write(s, f, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf));
	CHECK(tc_file_reserve(s, f, 0, 2 * MiB) == -EFBIG);
	CHECK(tc_file_commit(s, f) == -EFBIG);
	tc_file_close(s, f);
	CHECK(same(s, e, "old", 5000, 3));
	tc_store_close(s);
	s = open_store(d, 0);
	REQUIRE(s);
	CHECK(same(s, e, "old", 5000, 3) && !exists(s, e, "new"));
	tc_store_close(s);
	tmpdir_free(d);
}

/* A reservation that can never fit fails before anything is evicted:
 * EFBIG past the capacity, ENOSPC past the capacity minus what is pinned
 * or open.  One that fits evicts LRU entries and holds the space. */
static void t_reserve_fails_first_or_holds(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t ids[4];
	mkentries(s, 4, 200 * KiB, ids);
	CHECK(tc_pin(s, ids[3], 1) == 0);
	uint64_t big = mkentry(s, "big");
	struct tc_stat st;
	struct tc_stats before, after;
	tc_file *f, *g;

	REQUIRE(tc_create(s, big, "t", 0644, 0, 0, &f, &st) == 0);
	tc_store_stats(s, &before);
	CHECK(tc_file_reserve(s, f, 0, MiB + 1) == -EFBIG);
	CHECK(tc_file_reserve(s, f, 100 * KiB, 750 * KiB) == -ENOSPC);
	tc_store_stats(s, &after);
	CHECK(after.evictions == 0 && after.used == before.used);
	CHECK(tc_file_commit(s, f) == -EFBIG);
	tc_file_close(s, f);

	REQUIRE(tc_create(s, big, "t", 0644, 0, 0, &f, &st) == 0);
	CHECK(tc_file_reserve(s, f, 0, 820 * KiB) == 0); /* 4 KiB left */
	CHECK(tc_file_stat(s, f, &st) == 0 && st.size == 820 * KiB);
	tc_store_stats(s, &after);
	CHECK(after.evictions == 3 && after.entries == 2);
	/* the space is held: another writer finds none */
	REQUIRE(tc_create(s, ids[3], "u", 0644, 0, 0, &g, &st) == 0);
	uint8_t buf[8192] = { 1 };
	CHECK(tc_file_write(s, g, buf, sizeof(buf), 0) == -ENOSPC);
	tc_file_close(s, g);
	for (uint64_t at = 0; at < 820 * KiB; at += 4096)
		CHECK(tc_file_write(s, f, buf, 4096, at) == 4096);
	CHECK(tc_file_commit(s, f) == 0);
	tc_file_close(s, f);
	CHECK(tc_lookup(s, big, "t", &st) == 0 && st.size == 820 * KiB);
	tc_store_close(s);
	tmpdir_free(d);
}

/* ---- live and replayed: one index ------------------------------------- */

/* Print where two dumps first differ. */
static int same_dump(const char *what, const char *a, const char *b)
{
	if (!strcmp(a, b))
		return 1;
	size_t i = 0;
	while (a[i] && a[i] == b[i])
		i++;
	size_t ls = i;
	while (ls && a[ls - 1] != '\n')
		ls--;
	printf("# %s differs at:\n#  live:     %.200s\n#  replayed: %.200s\n",
	       what, a + ls, b + ls);
	return 0;
}

static int id_of(tc_store *s, uint64_t dir, const char *name, uint64_t *id)
{
	struct tc_stat st;
	int r = tc_lookup(s, dir, name, &st);
	if (!r)
		*id = st.id;
	return r;
}

/* One random operation on entries e0..e5, groups g0..g1 in them, tensors
 * t0..t4 in either: what a user does through the mount. */
static void random_op(tc_store *s, uint64_t *seed)
{
	char en[8], gn[8], tn[16], tn2[16];
	uint64_t e, g, dir, id;
	struct tc_stat st;
	snprintf(en, sizeof(en), "e%d", (int)(rnd(seed) % 6));
	snprintf(gn, sizeof(gn), "g%d", (int)(rnd(seed) % 2));
	/* t3.memmap: a tensor a meta.json key "t3" declares (case 9) */
	snprintf(tn, sizeof(tn), "t%d%s", (int)(rnd(seed) % 5),
		 rnd(seed) % 2 ? ".memmap" : "");
	snprintf(tn2, sizeof(tn2), "t%d%s", (int)(rnd(seed) % 5),
		 rnd(seed) % 2 ? ".memmap" : "");
	unsigned op = (unsigned)(rnd(seed) % 15);
	if (id_of(s, TC_ROOT_ID, en, &e)) {
		tc_mkdir(s, TC_ROOT_ID, en, 0755, 0, 0, &st);
		return;
	}
	dir = e;
	if (rnd(seed) % 4 == 0) {
		/* a file at the root: an entry of one tensor */
		snprintf(tn, sizeof(tn), "f%d", (int)(rnd(seed) % 4));
		snprintf(tn2, sizeof(tn2), "f%d", (int)(rnd(seed) % 4));
		e = dir = TC_ROOT_ID;
		if (op == 8 && !id_of(s, dir, tn, &id))
			e = id; /* its pin */
	} else if (rnd(seed) % 3 == 0) {
		if (id_of(s, e, gn, &g))
			tc_mkdir(s, e, gn, 0750, 1, 2, &st);
		else
			dir = g;
	}
	switch (op) {
	case 0: case 1: case 2: /* write (new or a replacement) */
		put(s, dir, tn, (size_t)(rnd(seed) % (300 * KiB)), rnd(seed), 64 * KiB);
		break;
	case 3: /* open for reading: recency */
		if (!id_of(s, dir, tn, &id)) {
			tc_file *f;
			if (!tc_open(s, id, 0, &f))
				tc_file_close(s, f);
		}
		break;
	case 4: /* rename a tensor, maybe over another, maybe elsewhere */
		tc_rename(s, dir, tn, rnd(seed) % 2 ? e : dir, tn2, 0);
		break;
	case 5:
		tc_unlink(s, dir, tn);
		break;
	case 6: { /* truncate or extend through a write handle */
		tc_file *f;
		struct tc_setattr sa = { .valid = TC_SET_SIZE,
					 .size = rnd(seed) % (200 * KiB) };
		if (!id_of(s, dir, tn, &id) && !tc_open(s, id, TC_O_WRITE, &f)) {
			tc_setattr(s, id, &sa, f, &st);
			tc_file_commit(s, f);
			tc_file_close(s, f);
		}
		break;
	}
	case 7: { /* chmod, chown */
		struct tc_setattr sa = { .valid = TC_SET_MODE | TC_SET_UID,
					 .mode = 0600 | (unsigned)(rnd(seed) % 0100),
					 .uid = (uint32_t)(rnd(seed) % 3) };
		tc_setattr(s, dir, &sa, NULL, &st);
		break;
	}
	case 8:
		tc_pin(s, e, (int)(rnd(seed) % 2));
		break;
	case 9: { /* attrs and a dtype through meta.json */
		char js[160];
		int n = snprintf(js, sizeof(js), "{\"__tcache__\": {\"attrs\": {\"k\": %d}}, "
				 "\"t%d\": {\"dtype\": \"torch.int16\", \"shape\": [%d]}}",
				 (int)(rnd(seed) % 100), (int)(rnd(seed) % 5),
				 (int)(rnd(seed) % 9));
		tc_meta_set(s, e, js, (size_t)n);
		if (rnd(seed) % 4 == 0)
			tc_meta_remove(s, e);
		else if (!id_of(s, e, tn, &id) && !tc_getattr(s, id, &st) &&
			 st.size % 4 == 0) {
			n = snprintf(js, sizeof(js), "{\"__tcache__\": {\"tensors\": {\"%s\": "
				     "{\"dtype\": \"float32\"}}}}", tn);
			tc_meta_set(s, e, js, (size_t)n);
		}
		break;
	}
	case 10: /* rename an entry, maybe over an empty one */
		snprintf(gn, sizeof(gn), "e%d", (int)(rnd(seed) % 6));
		tc_rename(s, TC_ROOT_ID, en, TC_ROOT_ID, gn, 0);
		break;
	case 11: /* move a group to another entry */
		if (dir != e) {
			snprintf(en, sizeof(en), "e%d", (int)(rnd(seed) % 6));
			if (!id_of(s, TC_ROOT_ID, en, &id))
				tc_rename(s, e, gn, id, gn, 0);
		}
		break;
	case 12:
		tc_rmdir(s, e, gn);
		break;
	case 13:
		tc_rmdir(s, TC_ROOT_ID, en);
		break;
	case 14: { /* a parent link (or none), by xattr or meta.json */
		char pn[8], js[80];
		snprintf(pn, sizeof(pn), "%c%d", rnd(seed) % 2 ? 'e' : 'f',
			 (int)(rnd(seed) % 6));
		if (dir == TC_ROOT_ID && !id_of(s, dir, tn, &id))
			e = id; /* a file at the root */
		else if (dir == TC_ROOT_ID)
			break;
		if (rnd(seed) % 5 == 0)
			tc_link_set(s, e, NULL, 0);
		else if (rnd(seed) % 2 || dir == TC_ROOT_ID)
			tc_link_set(s, e, pn, 0);
		else
			tc_meta_set(s, e, js, (size_t)snprintf(js, sizeof(js),
				    "{\"__tcache__\": {\"parent\": \"%s\"}}", pn));
		break;
	}
	}
}

/* Every change reaches the index live and again through replay: after
 * random operations (with checkpoints in a child every few), the index a
 * crash copy of the journal replays into, and the one a clean close and
 * reopen give, are the live one, field by field. */
/* Sync @s, close it, and check that its index comes back field by field
 * from a crash copy of its journal (into @c) and from the checkpoint the
 * close wrote (in @d); @must (if not NULL) must be in the dump. */
static void check_replays(tc_store *s, const char *d, const char *c,
			  const char *must)
{
	char *live = NULL, *back = NULL;
	size_t n;
	CHECK(tc_store_sync(s) == 0);
	REQUIRE(tc_store_dump(s, &live, &n) == 0);
	CHECK(!must || strstr(live, must) != NULL);
	crash_copy(d, c, -1);
	CHECK(tc_store_close(s) == 0);
	for (int k = 0; k < 2; k++) {
		s = open_store(k ? d : c, 0);
		REQUIRE(s);
		REQUIRE(tc_store_dump(s, &back, &n) == 0);
		CHECK(same_dump(k ? "a checkpoint replayed" : "the journal replayed",
				live, back));
		free(back);
		tc_store_close(s);
	}
	free(live);
}

/* A file at the root is an entry of one tensor: evicted whole by
 * recency, pinned, held by an open handle, replaced atomically by a
 * rename at the root, never moved into an entry or out of one (EXDEV);
 * all of it as it was after a crash and after a checkpoint. */
static void t_root_files_are_entries(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	char name[16];
	struct tc_stat st, ts;
	struct tc_stats ss;
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		CHECK(put(s, TC_ROOT_ID, name, 100 * KiB, (uint64_t)i, 64 * KiB) == 0);
	}
	tc_store_stats(s, &ss);
	CHECK(ss.entries == 10 && ss.tensors == 10 && ss.evictions == 0);
	REQUIRE(tc_lookup(s, TC_ROOT_ID, "f1", &st) == 0);
	CHECK(st.kind == TC_KIND_TENSOR && st.size == 100 * KiB);
	CHECK(tc_pin(s, st.id, 1) == 0);
	REQUIRE(tc_getattr(s, st.id, &st) == 0);
	CHECK(st.mode & S_ISVTX);
	tc_file *hold;
	REQUIRE(tc_lookup(s, TC_ROOT_ID, "f2", &ts) == 0);
	REQUIRE(tc_open(s, ts.id, 0, &hold) == 0);
	for (int i = 3; i < 10; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		CHECK(same(s, TC_ROOT_ID, name, 100 * KiB, (uint64_t)i));
	}
	CHECK(same(s, TC_ROOT_ID, "f0", 100 * KiB, 0));
	CHECK(put(s, TC_ROOT_ID, "f10", 250 * KiB, 10, 64 * KiB) == 0);
	/* f1 pinned, f2 open, f0 young: f3, f4, f5 go, whole */
	CHECK(exists(s, TC_ROOT_ID, "f0") && exists(s, TC_ROOT_ID, "f1") &&
	      exists(s, TC_ROOT_ID, "f2"));
	CHECK(!exists(s, TC_ROOT_ID, "f3") && !exists(s, TC_ROOT_ID, "f4"));
	CHECK(same(s, TC_ROOT_ID, "f9", 100 * KiB, 9));
	tc_file_close(s, hold);
	tc_store_stats(s, &ss);
	CHECK(ss.evictions >= 2 && ss.used <= ss.capacity);
	/* os.replace(tmp, final) at the root */
	CHECK(put(s, TC_ROOT_ID, "f9.tmp", 5000, 99, 4096) == 0);
	CHECK(tc_rename(s, TC_ROOT_ID, "f9.tmp", TC_ROOT_ID, "f9", 0) == 0);
	CHECK(same(s, TC_ROOT_ID, "f9", 5000, 99) && !exists(s, TC_ROOT_ID, "f9.tmp"));
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "t", 10, 7, 10) == 0);
	CHECK(tc_rename(s, TC_ROOT_ID, "f9", e, "f9", 0) == -EXDEV);
	CHECK(tc_rename(s, e, "t", TC_ROOT_ID, "t", 0) == -EXDEV);
	CHECK(tc_mkdir(s, TC_ROOT_ID, "f0", 0755, 0, 0, &st) == -EEXIST);
	CHECK(tc_unlink(s, TC_ROOT_ID, "f0") == 0 && !exists(s, TC_ROOT_ID, "f0"));
	/* another entry used while a new file is written: the file is the
	 * most recent once committed, in the journal too */
	tc_file *wf;
	REQUIRE(tc_create(s, TC_ROOT_ID, "late", 0644, 0, 0, &wf, &st) == 0);
	CHECK(tc_file_write(s, wf, "x", 1, 0) == 1);
	CHECK(same(s, TC_ROOT_ID, "f8", 100 * KiB, 8));
	CHECK(tc_file_commit(s, wf) == 0);
	tc_file_close(s, wf);
	check_replays(s, d, c, NULL);
	s = open_store(d, 0); /* (the crash copy's index is the same) */
	REQUIRE(s);
	REQUIRE(tc_lookup(s, TC_ROOT_ID, "f1", &st) == 0);
	CHECK((st.mode & S_ISVTX) && same(s, TC_ROOT_ID, "f1", 100 * KiB, 1));
	CHECK(same(s, TC_ROOT_ID, "f9", 5000, 99));
	tc_store_stats(s, &ss);
	CHECK(ss.pinned == 1 && ss.entries == ss.tensors);
	tc_store_close(s);
	tmpdir_free(c);
	tmpdir_free(d);
}

/* Write a journal header of format @version (capacity 1 MiB) to @f. */
static void v1_header(FILE *f, uint32_t version)
{
	uint8_t hdr[64] = "TCACHEJR";
	uint32_t v = htole32(version), blk = htole32(4096);
	uint64_t cap = htole64(1 * MiB);
	memcpy(hdr + 8, &v, 4);
	memcpy(hdr + 12, &blk, 4);
	memcpy(hdr + 16, &cap, 8);
	uint64_t hh = htole64(XXH3_64bits(hdr, 56));
	memcpy(hdr + 56, &hh, 8);
	fwrite(hdr, 1, 64, f);
}

/* Append record @seq of @payload to @f in the journal's framing. */
static void v1_record(FILE *f, uint64_t seq, const struct tc_buf *payload)
{
	uint8_t h[32];
	uint32_t magic = htole32(0x43524354u), len = htole32((uint32_t)payload->len);
	uint64_t sq = htole64(seq), dh = htole64(XXH3_64bits(payload->p, payload->len));
	memcpy(h, &magic, 4);
	memcpy(h + 4, &len, 4);
	memcpy(h + 8, &sq, 8);
	memcpy(h + 16, &dh, 8);
	uint64_t hh = htole64(XXH3_64bits(h, 16));
	memcpy(h + 24, &hh, 8);
	fwrite(h, 1, 32, f);
	fwrite(payload->p, 1, payload->len, f);
}

/* @op as version 1 wrote it: an entry's or a group's NODE had no
 * document (the last 4 bytes, its length 0, of today's encoding). */
static void v1_op(struct tc_buf *b, const struct tc_op *op)
{
	struct tc_buf one = { 0 };
	tc_rec_op(&one, op);
	if (op->type == TC_OP_NODE && op->kind == TC_KIND_ENTRY)
		one.len -= 5; /* link_len (0), doc_len (0) */
	else if (op->type == TC_OP_NODE && op->kind == TC_KIND_GROUP)
		one.len -= 4;
	tc_buf_cat(b, &one);
	tc_buf_free(&one);
}

/* A store whose journal is of version 1 (before files at the root and
 * documents) opens with everything in it, and is rewritten as the
 * current version: it opens again, and takes the new things. */
static void t_version1_journal_opens(void)
{
	char *d = tmpdir_new();
	char path[4096];
	uint8_t data[5000];
	fill(data, sizeof(data), 42);
	snprintf(path, sizeof(path), "%s/pool", d);
	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fwrite(data, 1, sizeof(data), f);
	REQUIRE(ftruncate(fileno(f), (off_t)(1 * MiB)) == 0);
	fclose(f);
	snprintf(path, sizeof(path), "%s/journal", d);
	f = fopen(path, "w");
	REQUIRE(f);
	v1_header(f, 1);
	const char *attrs = "{\"k\":1}";
	struct tc_extent ext = { 0, 8192 };
	struct tc_op ops[3] = {
		{ .type = TC_OP_NODE, .id = 2, .parent = TC_ROOT_ID,
		  .kind = TC_KIND_ENTRY, .mode = 0755, .name = "e",
		  .created = 1, .last_access = 2, .pinned = 1, .attrs = attrs,
		  .attrs_len = (uint32_t)strlen(attrs) },
		{ .type = TC_OP_NODE, .id = 3, .parent = 2, .kind = TC_KIND_GROUP,
		  .mode = 0755, .name = "g" },
		{ .type = TC_OP_NODE, .id = 4, .parent = 3, .kind = TC_KIND_TENSOR,
		  .mode = 0644, .name = "t", .size = sizeof(data),
		  .xxh3 = XXH3_64bits(data, sizeof(data)), .dtype = 0, .ndim = 1,
		  .nextents = 1, .extv = &ext, .shape = { sizeof(data) } },
	};
	struct tc_buf b = { 0 };
	for (int i = 0; i < 3; i++)
		v1_op(&b, &ops[i]);
	v1_record(f, 1, &b);
	tc_buf_free(&b);
	struct tc_op mark = { .type = TC_OP_MARK, .synced = 1, .on_disk = 1 };
	tc_rec_op(&b, &mark);
	v1_record(f, 2, &b);
	tc_buf_free(&b);
	fclose(f);

	for (int round = 0; round < 2; round++) {
		tc_store *s = open_store(d, 0);
		REQUIRE(s);
		struct tc_stat st;
		REQUIRE(tc_lookup(s, TC_ROOT_ID, "e", &st) == 0);
		CHECK(st.kind == TC_KIND_ENTRY && (st.mode & S_ISVTX));
		REQUIRE(tc_lookup(s, st.id, "g", &st) == 0);
		CHECK(st.kind == TC_KIND_GROUP);
		CHECK(same(s, st.id, "t", sizeof(data), 42));
		char *js = NULL;
		size_t n;
		REQUIRE(tc_meta_get(s, 2, &js, &n) == 0);
		CHECK(strstr(js, "\"k\":\t1") || strstr(js, "\"k\": 1"));
		free(js);
		struct tc_stats ss;
		tc_store_stats(s, &ss);
		CHECK(ss.entries == 1u + (unsigned)round &&
		      ss.tensors == 1u + (unsigned)round && ss.journal_dropped == 0);
		if (round == 0)
			CHECK(put(s, TC_ROOT_ID, "file", 100, 5, 100) == 0);
		else
			CHECK(same(s, TC_ROOT_ID, "file", 100, 5));
		tc_store_close(s);
	}
	tmpdir_free(d);
}

/* A STATS record written before probes was counted (four counters, then
 * the record's end) still gives them, with probes 0 and nothing dropped. */
static void t_stats_from_before_probes(void)
{
	char *img = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&img, &len);
	REQUIRE(f);
	v1_header(f, TC_JOURNAL_VERSION);
	struct tc_op op = { .type = TC_OP_STATS, .stats = { 7, 8, 9, 10, 11 } };
	struct tc_buf b = { 0 };
	tc_rec_op(&b, &op);
	b.len -= 8; /* no probes */
	v1_record(f, 1, &b);
	tc_buf_free(&b);
	fclose(f);
	struct tc_stats st;
	CHECK(tc_replay_image((const uint8_t *)img, len, &st) == 0);
	CHECK(st.hits == 7 && st.misses == 8 && st.evictions == 9 &&
	      st.evicted_bytes == 10 && st.probes == 0);
	CHECK(st.journal_dropped == 0);
	free(img);
}

/*
 * Every lookup at the root is a probe; one that finds nothing is a miss
 * unless the name is made there within the window (mkdir, create, a
 * rename onto it), counted once the window is over, when its slot is
 * needed, or at close.  Opens for reading are the hits.  All survive a
 * close.
 */
static void t_probes_and_misses(void)
{
	char *d = tmpdir_new(), name[32];
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	struct tc_stat st;
	struct tc_stats a, b;
	tc_store_set_miss_window(s, INT64_MAX / 2); /* none is over */
	/* writes: "is it there? no, make it", twice for "e" */
	CHECK(tc_lookup(s, TC_ROOT_ID, "e", &st) == -ENOENT);
	CHECK(tc_lookup(s, TC_ROOT_ID, "e", &st) == -ENOENT);
	uint64_t e = mkentry(s, "e");
	REQUIRE(e);
	CHECK(put(s, e, "t", 5000, 1, 4096) == 0);
	CHECK(tc_lookup(s, e, "nope", &st) == -ENOENT); /* not the root */
	CHECK(put(s, TC_ROOT_ID, "tmp", 100, 2, 4096) == 0);
	CHECK(tc_lookup(s, TC_ROOT_ID, "final", &st) == -ENOENT);
	CHECK(tc_rename(s, TC_ROOT_ID, "tmp", TC_ROOT_ID, "final", 0) == 0);
	/* reads: a probe where the name is at the root, a hit per open */
	CHECK(same(s, e, "t", 5000, 1));
	CHECK(same(s, TC_ROOT_ID, "final", 100, 2));
	CHECK(tc_lookup(s, TC_ROOT_ID, "e", &st) == 0);
	/* names never made: three lookups, not counted yet */
	CHECK(tc_lookup(s, TC_ROOT_ID, "n1", &st) == -ENOENT);
	CHECK(tc_lookup(s, TC_ROOT_ID, "n1", &st) == -ENOENT);
	CHECK(tc_lookup(s, TC_ROOT_ID, "n2", &st) == -ENOENT);
	tc_store_stats(s, &a);
	CHECK(a.probes == 9 && a.hits == 2 && a.misses == 0);
	tc_store_close(s); /* nothing can make them now: misses */
	s = open_store(d, 0);
	REQUIRE(s);
	tc_store_stats(s, &a);
	CHECK(a.probes == 9 && a.hits == 2 && a.misses == 3);

	/* window 0: over at once, for a stats read, a lookup, a create */
	tc_store_set_miss_window(s, 0);
	CHECK(tc_lookup(s, TC_ROOT_ID, "r", &st) == -ENOENT);
	CHECK(tc_lookup(s, TC_ROOT_ID, "r", &st) == -ENOENT);
	CHECK(tc_lookup(s, TC_ROOT_ID, "late", &st) == -ENOENT);
	CHECK(mkentry(s, "late") != 0);
	tc_store_stats(s, &a);
	CHECK(a.probes == 12 && a.misses == 6);

	/* more names waiting than slots: the oldest of a full set counted
	 * early; the rest, made in their window, not at all */
	tc_store_set_miss_window(s, INT64_MAX / 2);
	for (int i = 0; i < 4500; i++) { /* 4096 slots */
		snprintf(name, sizeof(name), "x%d", i);
		CHECK(tc_lookup(s, TC_ROOT_ID, name, &st) == -ENOENT);
	}
	tc_store_stats(s, &a);
	CHECK(a.misses >= 6 + 4500 - 4096 && a.misses < 6 + 4500);
	for (int i = 0; i < 4500; i++) {
		snprintf(name, sizeof(name), "x%d", i);
		CHECK(mkentry(s, name) != 0);
	}
	tc_store_stats(s, &b);
	CHECK(b.misses == a.misses && b.probes == 4512);
	tc_store_close(s);
	s = open_store(d, 0);
	REQUIRE(s);
	tc_store_stats(s, &b);
	CHECK(b.misses == a.misses && b.probes == 4512 && b.hits == 2);
	tc_store_close(s);
	tmpdir_free(d);
}

/* Write @txt as file @name of @dir (committed). */
static int put_text(tc_store *s, uint64_t dir, const char *name, const char *txt)
{
	struct tc_stat st;
	tc_file *f;
	int r = tc_create(s, dir, name, 0644, 0, 0, &f, &st);
	if (r)
		return r;
	ssize_t w = tc_file_write(s, f, txt, strlen(txt), 0);
	r = w == (ssize_t)strlen(txt) ? tc_file_commit(s, f) : -EIO;
	tc_file_close(s, f);
	return r;
}

/* The dtype and shape of @name in @dir as meta.json says, e.g.
 * "float16 [3]", into @out. */
static void type_of(tc_store *s, uint64_t dir, const char *name, char *out,
		    size_t size)
{
	char *js;
	size_t n;
	snprintf(out, size, "?");
	if (tc_meta_get(s, dir, &js, &n))
		return;
	char key[300];
	snprintf(key, sizeof(key), "\"%s\":", name);
	const char *p = strstr(js, key), *dt, *sh;
	if (p && (dt = strstr(p, "\"dtype\":\t\"")) && (sh = strstr(p, "\"shape\":\t"))) {
		dt += 10;
		sh += 9;
		snprintf(out, size, "%.*s %.*s", (int)(strchr(dt, '"') - dt), dt,
			 (int)(strchr(sh, ']') - sh + 1), sh);
	}
	free(js);
}

/* meta.json keeps any keys; TensorDict's declare the dtype and shape of
 * K.memmap whether the file comes before the document, after it, or by a
 * rename (rsync); a file renamed over meta.json is taken as it (one
 * record); rm forgets the keys; all of it survives a crash. */
static void t_open_world_meta(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	tc_store *s = open_store(d, 4 * MiB);
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	struct tc_stat g;
	REQUIRE(tc_mkdir(s, e, "sub", 0755, 0, 0, &g) == 0);
	char ty[64], *js;
	size_t n;
	CHECK(put(s, e, "emb.memmap", 8, 1, 8) == 0);
	const char *doc = "{\"emb\": {\"device\": \"cpu\", \"shape\": [3], \"dtype\": \"torch.float16\"},"
			  " \"ids\": {\"shape\": [2], \"dtype\": \"torch.int64\"},"
			  " \"r\": {\"shape\": [2, 2], \"dtype\": \"<f4\"},"
			  " \"sub\": {\"type\": \"TensorDict\"}, \"tensors\": 12345678901234567890,"
			  " \"_type\": \"<class 'tensordict._td.TensorDict'>\"}";
	CHECK(tc_meta_set(s, e, doc, strlen(doc)) == 0);
	type_of(s, e, "emb.memmap", ty, sizeof(ty));
	CHECK(strcmp(ty, "float16 [3]") == 0); /* 6 of its 8 bytes: as declared */
	CHECK(put(s, e, "ids.memmap", 16, 2, 16) == 0);
	type_of(s, e, "ids.memmap", ty, sizeof(ty));
	CHECK(strcmp(ty, "int64 [2]") == 0);
	CHECK(put(s, e, ".r.memmap.Xy12", 16, 3, 16) == 0);
	CHECK(tc_rename(s, e, ".r.memmap.Xy12", e, "r.memmap", 0) == 0);
	type_of(s, e, "r.memmap", ty, sizeof(ty));
	CHECK(strcmp(ty, "float32 [2, 2]") == 0);
	REQUIRE(tc_meta_get(s, e, &js, &n) == 0);
	CHECK(strstr(js, "\t\"tensors\": 12345678901234567890,\n") != NULL);
	CHECK(strstr(js, "\t\"_type\": \"<class 'tensordict._td.TensorDict'>\",\n") != NULL);
	free(js);
	/* a group's own document */
	CHECK(tc_meta_set(s, g.id, "{\"x\": [1, 2]}", 13) == 0);
	/* rsync: a temp file renamed over meta.json */
	CHECK(put_text(s, g.id, ".meta.json.aB3", "{\"y\": true}") == 0);
	CHECK(tc_meta_take(s, g.id, ".meta.json.aB3") == 0);
	CHECK(!exists(s, g.id, ".meta.json.aB3"));
	REQUIRE(tc_meta_get(s, g.id, &js, &n) == 0);
	CHECK(strstr(js, "\"y\": true") && !strstr(js, "\"x\""));
	free(js);
	CHECK(put_text(s, g.id, ".meta.json.bad", "{\"__tcache__\": 1}") == 0);
	CHECK(tc_meta_take(s, g.id, ".meta.json.bad") == -EINVAL);
	CHECK(exists(s, g.id, ".meta.json.bad"));
	CHECK(tc_meta_take(s, g.id, "none") == -ENOENT);
	CHECK(tc_meta_take(s, e, "sub") == -EISDIR);
	/* rm meta.json */
	CHECK(put_text(s, e, "keep", "{}") == 0);
	CHECK(tc_meta_set(s, e, "{\"k\": 1}", 8) == 0);
	CHECK(tc_meta_remove(s, e) == 0);
	REQUIRE(tc_meta_get(s, e, &js, &n) == 0);
	CHECK(strncmp(js, "{\n\t\"__tcache__\": {", 18) == 0);
	free(js);
	type_of(s, e, "emb.memmap", ty, sizeof(ty));
	CHECK(strcmp(ty, "float16 [3]") == 0); /* what it declared stays */
	CHECK(tc_meta_remove(s, TC_ROOT_ID) == -EINVAL);
	CHECK(tc_meta_set(s, e, doc, strlen(doc)) == 0);

	check_replays(s, d, c, "doc {\"y\":true}");
	tmpdir_free(c);
	tmpdir_free(d);
}

/* Are the pages p0..p<n-1> present exactly as a prefix (p0..pk)?  Their
 * count in *@k. */
static int is_prefix(tc_store *s, int n, int *k)
{
	char name[16];
	int gap = 0;
	*k = 0;
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		if (!exists(s, TC_ROOT_ID, name))
			gap = 1;
		else if (gap)
			return 0;
		else
			++*k;
	}
	return 1;
}

/* Parent links: eviction takes leaves first, so a chain read in order
 * stays a prefix while other writes evict it; a parent whose last child
 * went follows at its own recency; links are refused when they would
 * loop (set, meta.json, rename); all of it survives a crash and a
 * checkpoint, counts included. */
static void t_parent_links(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	char name[16], prev[16], buf[64];
	struct tc_stat st;
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		REQUIRE(put(s, TC_ROOT_ID, name, 100 * KiB, (uint64_t)i, 64 * KiB) == 0);
		REQUIRE(tc_lookup(s, TC_ROOT_ID, name, &st) == 0);
		if (i)
			CHECK(tc_link_set(s, st.id, prev, TC_LINK_CREATE) == 0);
		memcpy(prev, name, sizeof(name));
	}
	uint64_t dd = mkentry(s, "d"); /* a directory entry, child of p7 */
	const char *js = "{\"__tcache__\": {\"parent\": \"p7\"}}";
	CHECK(tc_meta_set(s, dd, js, strlen(js)) == 0);
	CHECK(tc_link_get(s, dd, buf, sizeof(buf)) == 2 && !memcmp(buf, "p7", 2));
	CHECK(tc_link_get(s, dd, NULL, 0) == 2);
	CHECK(tc_link_get(s, dd, buf, 1) == -ERANGE);
	REQUIRE(tc_lookup(s, TC_ROOT_ID, "p0", &st) == 0);
	uint64_t p0 = st.id;
	CHECK(tc_link_get(s, p0, buf, sizeof(buf)) == -ENODATA);
	CHECK(tc_link_set(s, p0, "p5", 0) == -ELOOP);   /* p5 -> ... -> p0 */
	CHECK(tc_link_set(s, p0, "p0", 0) == -ELOOP);   /* itself */
	CHECK(tc_link_set(s, p0, "a/b", 0) == -EINVAL);
	CHECK(tc_link_set(s, p0, NULL, TC_LINK_REPLACE) == -ENODATA);
	CHECK(tc_link_set(s, dd, "x", TC_LINK_CREATE) == -EEXIST);
	js = "{\"__tcache__\": {\"parent\": \"d\"}}";
	CHECK(tc_meta_set(s, dd, js, strlen(js)) == -ELOOP);
	js = "{\"__tcache__\": {\"parent\": 7}}";
	CHECK(tc_meta_set(s, dd, js, strlen(js)) == -EINVAL);
	CHECK(put(s, dd, "t", 10, 1, 10) == 0);
	REQUIRE(tc_lookup(s, dd, "t", &st) == 0);
	CHECK(tc_link_set(s, st.id, "p1", 0) == -ENOTSUP); /* not an entry */
	char *m = NULL;
	size_t n;
	REQUIRE(tc_meta_get(s, dd, &m, &n) == 0);
	CHECK(strstr(m, "\"parent\":\t\"p7\"") != NULL);
	free(m);
	/* a rename that would close a loop: q links to "r"; s2 links to q;
	 * s2 renamed to "r" would make r -> q -> r */
	CHECK(put(s, TC_ROOT_ID, "q", 10, 1, 10) == 0);
	CHECK(put(s, TC_ROOT_ID, "s2", 10, 1, 10) == 0);
	REQUIRE(tc_lookup(s, TC_ROOT_ID, "q", &st) == 0);
	CHECK(tc_link_set(s, st.id, "r", 0) == 0);      /* absent: allowed */
	REQUIRE(tc_lookup(s, TC_ROOT_ID, "s2", &st) == 0);
	CHECK(tc_link_set(s, st.id, "q", 0) == 0);
	CHECK(tc_rename(s, TC_ROOT_ID, "s2", TC_ROOT_ID, "r", 0) == -ELOOP);
	CHECK(tc_rename(s, TC_ROOT_ID, "s2", TC_ROOT_ID, "s3", 0) == 0);
	CHECK(tc_unlink(s, TC_ROOT_ID, "q") == 0 && tc_unlink(s, TC_ROOT_ID, "s3") == 0);

	/* read the chain in order: p0 is the least recent */
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		CHECK(same(s, TC_ROOT_ID, name, 100 * KiB, (uint64_t)i));
	}
	int k, ok = 1, last = 8;
	for (int j = 0; j < 5; j++) {
		snprintf(name, sizeof(name), "u%d", j);
		CHECK(put(s, TC_ROOT_ID, name, 100 * KiB, 100 + (uint64_t)j, 64 * KiB) == 0);
		ok &= is_prefix(s, 8, &k);
		ok &= !exists(s, TC_ROOT_ID, "d") || k == 8; /* d holds p7 */
		ok &= k <= last;
		last = k;
		printf("# after u%d: p0..p%d present\n", j, k - 1);
	}
	CHECK(ok && last < 8 && last > 0);
	struct tc_stats ss;
	tc_store_stats(s, &ss);
	CHECK(ss.evictions > 0 && !exists(s, TC_ROOT_ID, "d"));
	/* p1, held by p2 */
	check_replays(s, d, c, " link p0 kids 1");
	/* after a restart the chain still goes from its end */
	s = open_store(d, 0);
	REQUIRE(s);
	for (int j = 5; j < 16; j++) {
		snprintf(name, sizeof(name), "u%d", j);
		CHECK(put(s, TC_ROOT_ID, name, 100 * KiB, 100 + (uint64_t)j, 64 * KiB) == 0);
		CHECK(is_prefix(s, 8, &k) && k <= last);
		last = k;
	}
	CHECK(last == 0);
	CHECK(tc_store_close(s) == 0);
	struct tc_check ck;
	CHECK(tc_store_check(d, 0, NULL, NULL, &ck) == 0 && ck.links == 0);
	tmpdir_free(c);
	tmpdir_free(d);
}

/* A journal that holds a loop of links (only damage could leave one):
 * fsck finds it and --repair cuts it. */
static void t_link_loop_found_by_fsck(void)
{
	char *d = tmpdir_new();
	char path[4096];
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	CHECK(mkentry(s, "a") && mkentry(s, "b"));
	CHECK(tc_store_close(s) == 0);
	/* append a record with a -> b and b -> a, framed as the journal's */
	snprintf(path, sizeof(path), "%s/journal", d);
	FILE *f = fopen(path, "a");
	REQUIRE(f);
	struct tc_buf b = { 0 };
	struct tc_op ops[2] = {
		{ .type = TC_OP_NODE, .id = 2, .parent = TC_ROOT_ID,
		  .kind = TC_KIND_ENTRY, .mode = 0755, .name = "a",
		  .link = "b", .link_len = 1 },
		{ .type = TC_OP_NODE, .id = 3, .parent = TC_ROOT_ID,
		  .kind = TC_KIND_ENTRY, .mode = 0755, .name = "b",
		  .link = "a", .link_len = 1 },
	};
	for (int i = 0; i < 2; i++)
		tc_rec_op(&b, &ops[i]);
	v1_record(f, 1000, &b);
	tc_buf_free(&b);
	fclose(f);
	struct tc_check ck;
	REQUIRE(tc_store_check(d, 0, NULL, NULL, &ck) == 0);
	CHECK(ck.links == 1);
	REQUIRE(tc_store_check(d, TC_CHECK_REPAIR, NULL, NULL, &ck) == 0);
	CHECK(ck.links == 1);
	REQUIRE(tc_store_check(d, 0, NULL, NULL, &ck) == 0);
	CHECK(ck.links == 0);
	tmpdir_free(d);
}

/* What the change listener heard: "name:removed:bytes" joined by " ". */
struct heard {
	char buf[4096];
};

static void hear(void *arg, uint64_t id, const char *name, int removed,
		 uint64_t bytes)
{
	struct heard *h = arg;
	size_t n = strlen(h->buf);
	snprintf(h->buf + n, sizeof(h->buf) - n, "%s%s:%d:%llu", n ? " " : "",
		 name, removed, (unsigned long long)bytes);
}

/* The change listener hears each live change of an entry (commits with
 * their bytes, renames as a removal and a change, rm), not evictions
 * nor replay; a quiet open is no hit and no use. */
static void t_change_listener(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	struct heard h = { "" };
	tc_store_on_change(s, hear, &h);
	uint64_t e = mkentry(s, "e");
	CHECK(put(s, e, "t", 5000, 1, 5000) == 0);
	CHECK(strcmp(h.buf, "e:0:0 e:0:5000") == 0);
	h.buf[0] = 0;
	CHECK(tc_rename(s, TC_ROOT_ID, "e", TC_ROOT_ID, "f", 0) == 0);
	CHECK(strcmp(h.buf, "e:1:0 f:0:0") == 0);
	h.buf[0] = 0;
	CHECK(put(s, TC_ROOT_ID, "r", 100, 2, 100) == 0);
	CHECK(tc_unlink(s, e, "t") == 0);
	CHECK(tc_rmdir(s, TC_ROOT_ID, "f") == 0);
	CHECK(strcmp(h.buf, "r:0:100 f:0:0 f:1:0") == 0); /* a root file:
							       its commit */
	/* quiet: no hit, the LRU order kept (r stays the oldest) */
	struct tc_stats a, b;
	struct tc_stat st;
	tc_file *f;
	CHECK(put(s, TC_ROOT_ID, "y", 100 * KiB, 3, 100 * KiB) == 0);
	tc_store_stats(s, &a);
	REQUIRE(tc_lookup(s, TC_ROOT_ID, "r", &st) == 0);
	REQUIRE(tc_open(s, st.id, TC_O_QUIET, &f) == 0);
	tc_file_close(s, f);
	tc_store_stats(s, &b);
	CHECK(b.hits == a.hits && b.oldest_access_ns == a.oldest_access_ns);
	/* evictions are not heard */
	h.buf[0] = 0;
	for (int i = 0; i < 12; i++) {
		char name[16];
		snprintf(name, sizeof(name), "z%d", i);
		CHECK(put(s, TC_ROOT_ID, name, 100 * KiB, 10 + (uint64_t)i, 100 * KiB) == 0);
	}
	tc_store_stats(s, &b);
	CHECK(b.evictions > 0 && !strstr(h.buf, ":1:"));
	tc_store_on_change(s, NULL, NULL);
	CHECK(tc_store_close(s) == 0);
	tmpdir_free(d);
}

static void t_replay_equals_live(void)
{
	for (uint64_t round = 0; round < 6; round++) {
		char *d = tmpdir_new(), *c = tmpdir_new();
		struct tc_options o = { .capacity = 64 * MiB,
					.journal_slack = round % 2 ? 4096 : 0 };
		tc_store *s = NULL, *r = NULL;
		char *live = NULL, *back = NULL;
		size_t n;
		uint64_t seed = 1000 + round;
		REQUIRE(tc_store_open(d, &o, &s) == 0);
		for (int i = 0; i < 400; i++)
			random_op(s, &seed);
		CHECK(tc_store_sync(s) == 0); /* recency kept back: written */
		REQUIRE(tc_store_dump(s, &live, &n) == 0);
		crash_copy(d, c, -1);
		CHECK(tc_store_close(s) == 0);
		REQUIRE(tc_store_open(c, NULL, &r) == 0);
		REQUIRE(tc_store_dump(r, &back, &n) == 0);
		CHECK(same_dump("the journal replayed", live, back));
		tc_store_close(r);
		free(back);
		REQUIRE(tc_store_open(d, NULL, &r) == 0);
		REQUIRE(tc_store_dump(r, &back, &n) == 0);
		CHECK(same_dump("a checkpoint replayed", live, back));
		tc_store_close(r);
		free(back);
		free(live);
		tmpdir_free(c);
		tmpdir_free(d);
	}
}

/* Small tensors share pool blocks (packed): 2,000 of 64 bytes take 2,000
 * units of 64 bytes, not 2,000 blocks; replaced, grown, shrunk and removed
 * ones keep every byte, through a reopen, a check and a shrink; a pool
 * full of them still makes room for a large tensor by eviction. */
static void t_small_tensors_share_blocks(void)
{
	char *d = tmpdir_new(), name[32];
	tc_store *s = open_store(d, 8 * MiB);
	struct tc_stats st;
	REQUIRE(s);
	uint64_t e = mkentry(s, "e");
	REQUIRE(e);
	/* a replaced packed tensor's units wait for a sync, like blocks */
	uint64_t q = mkentry(s, "q");
	REQUIRE(q);
	CHECK(put(s, q, "a", 64, 1, 64) == 0);
	off_t oa = tensor_pool_off(s, q, "a");
	CHECK(oa >= 0 && oa % TC_BLOCK == 0);
	CHECK(tc_store_sync(s) == 0);
	CHECK(put(s, q, "a", 64, 2, 64) == 0);
	CHECK(tensor_pool_off(s, q, "a") == oa + 64);
	CHECK(put(s, q, "b", 64, 3, 64) == 0);
	CHECK(tensor_pool_off(s, q, "b") == oa + 128); /* not oa: held */
	CHECK(tc_store_sync(s) == 0);
	CHECK(put(s, q, "c", 64, 4, 64) == 0);
	CHECK(tensor_pool_off(s, q, "c") == oa); /* free after the sync */
	CHECK(tc_unlink(s, q, "a") == 0 && tc_unlink(s, q, "b") == 0);
	CHECK(tc_unlink(s, q, "c") == 0 && tc_rmdir(s, TC_ROOT_ID, "q") == 0);
	CHECK(tc_store_sync(s) == 0);
	/* the small ones land past 3 MiB, so that the shrink below moves
	 * shared blocks */
	CHECK(put(s, e, "first", 3 * MiB, 5, 64 * KiB) == 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		CHECK(put(s, e, name, 64, (uint64_t)i, 64) == 0);
	}
	tc_store_stats(s, &st);
	CHECK(st.used == 3 * MiB + 2000 * 64);
	/* packed: the first tensor's bytes lie inside a block */
	off_t o0 = tensor_pool_off(s, e, "s0"), o1 = tensor_pool_off(s, e, "s1");
	CHECK(o0 >= 0 && o1 >= 0 && o0 / TC_BLOCK == o1 / TC_BLOCK);
	/* every size up to a block and past it: packed up to 2 KiB */
	static const size_t small[] = { 1, 63, 64, 65, 1000, 2047, 2048, 2049, 4095 };
	for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
		snprintf(name, sizeof(name), "z%zu", small[i]);
		CHECK(put(s, e, name, small[i], 7000 + i, 100) == 0);
	}
	/* replace some, grow one past a block by appending, shrink one,
	 * remove some */
	for (int i = 0; i < 2000; i += 7) {
		snprintf(name, sizeof(name), "s%d", i);
		CHECK(put(s, e, name, 100 + (size_t)i % 900, 10000 + (uint64_t)i, 37) == 0);
	}
	CHECK(put(s, e, "s1", 64, 1, 64) == 0);
	struct tc_stat t;
	tc_file *f;
	REQUIRE(tc_lookup(s, e, "s1", &t) == 0 && tc_open(s, t.id, TC_O_WRITE, &f) == 0);
	uint8_t big[20000];
	fill(big, sizeof(big), 1);
	CHECK(tc_file_write(s, f, big + 64, sizeof(big) - 64, 64) == (ssize_t)(sizeof(big) - 64));
	uint8_t back[64];
	CHECK(tc_file_pread(s, f, back, 64, 0) == 64 && !memcmp(back, big, 64));
	CHECK(tc_file_commit(s, f) == 0);
	tc_file_close(s, f);
	CHECK(same(s, e, "s1", sizeof(big), 1));
	CHECK(put(s, e, "s2", 3 * 4096, 2, 4096) == 0);
	REQUIRE(tc_lookup(s, e, "s2", &t) == 0);
	struct tc_setattr sa = { .valid = TC_SET_SIZE, .size = 10 };
	CHECK(tc_setattr(s, t.id, &sa, NULL, &t) == 0 && t.size == 10);
	for (int i = 3; i < 2000; i += 11) {
		snprintf(name, sizeof(name), "s%d", i);
		CHECK(tc_unlink(s, e, name) == 0);
	}
	CHECK(tensor_pool_off(s, e, "s0") >= (off_t)(3 * MiB));
	CHECK(tc_unlink(s, e, "first") == 0);
	for (int round = 0; round < 2; round++) {
		int ok = 1;
		for (int i = 3; i < 2000; i++) {
			snprintf(name, sizeof(name), "s%d", i);
			if (i % 11 == 3)
				ok &= !exists(s, e, name);
			else if (i % 7 == 0)
				ok &= same(s, e, name, 100 + (size_t)i % 900, 10000 + (uint64_t)i);
			else
				ok &= same(s, e, name, 64, (uint64_t)i);
		}
		CHECK(ok);
		CHECK(same(s, e, "s1", sizeof(big), 1));
		REQUIRE(tc_lookup(s, e, "s2", &t) == 0);
		uint8_t ten[11], want[4096 * 3];
		tc_file *g;
		fill(want, sizeof(want), 2);
		CHECK(t.size == 10 && tc_open(s, t.id, 0, &g) == 0);
		CHECK(tc_file_pread(s, g, ten, 11, 0) == 10 && !memcmp(ten, want, 10));
		tc_file_close(s, g);
		for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
			snprintf(name, sizeof(name), "z%zu", small[i]);
			CHECK(same(s, e, name, small[i], 7000 + i));
		}
		tc_store_close(s);
		struct tc_check c;
		CHECK(tc_store_check(d, 0, NULL, NULL, &c) == 0);
		CHECK(c.damaged == 0 && c.nodes_dropped == 0 && c.records_dropped == 0);
		/* the second round reopens at a quarter of the capacity: what
		 * lies past it moves, packed units into shared blocks below */
		s = open_store(d, round ? 0 : 2 * MiB);
		REQUIRE(s);
	}
	tc_store_stats(s, &st);
	CHECK(st.evictions == 0 && st.capacity == 2 * MiB);
	CHECK(tensor_pool_off(s, e, "s0") < (off_t)(2 * MiB));
	/* a pool full of small entries: a large tensor evicts its way in */
	for (int i = 0; i < 3000; i++) {
		char en[32];
		snprintf(en, sizeof(en), "f%d", i);
		uint64_t x = mkentry(s, en);
		CHECK(x && put(s, x, "t", 1 + (size_t)i % 2048, (uint64_t)i, 4096) == 0);
	}
	uint64_t b = mkentry(s, "big");
	CHECK(b && put(s, b, "t", MiB + 5, 77, 64 * KiB) == 0);
	CHECK(same(s, b, "t", MiB + 5, 77));
	tc_store_stats(s, &st);
	CHECK(st.evictions > 0 && st.used <= st.capacity);
	tc_store_close(s);
	tmpdir_free(d);
}

int main(void)
{
	RUN(t_roundtrip_and_reopen);
	RUN(t_second_open_fails);
	RUN(t_crash_replay_every_offset);
	RUN(t_uncommitted_absent_after_crash);
	RUN(t_flipped_journal_byte);
	RUN(t_eviction_order_and_pins);
	RUN(t_unpin_keeps_recency);
	RUN(t_enospc_all_pinned);
	RUN(t_space_efficiency_90);
	RUN(t_replace_is_atomic);
	RUN(t_rename_rules);
	RUN(t_refusals);
	RUN(t_unlink_while_open);
	RUN(t_meta_and_npy);
	RUN(t_verify_on_open);
	RUN(t_capacity_change);
	RUN(t_recency_survives_restart);
	RUN(t_checkpoints_keep_every_commit);
	RUN(t_checkpoint_in_child);
	RUN(t_pool_truncated_or_missing);
	RUN(t_check_and_repair);
	RUN(t_checkpoint_damage_costs_one_entry);
	RUN(t_checksums_match_any_write_pattern);
	RUN(t_peek_and_stats_json);
	RUN(t_late_commit_of_old_handle);
	RUN(t_header_node_count);
	RUN(t_touch_batches);
	RUN(t_touch_tick);
	RUN(t_unsynced_tensor_lost_at_power_loss_is_absent);
	RUN(t_unsynced_replacement_falls_back_to_the_old_bytes);
	RUN(t_synced_damage_reads_eio);
	RUN(t_tensors_in_memory_are_checked_before_any_read);
	RUN(t_only_the_newest_entries_are_checked_ahead);
	RUN(t_close_makes_every_commit_durable);
	RUN(t_replaced_extents_wait_for_a_sync);
	RUN(t_shrink_keeps_pins_and_lru);
	RUN(t_failed_write_is_not_committed);
	RUN(t_reserve_fails_first_or_holds);
	RUN(t_root_files_are_entries);
	RUN(t_version1_journal_opens);
	RUN(t_stats_from_before_probes);
	RUN(t_probes_and_misses);
	RUN(t_open_world_meta);
	RUN(t_parent_links);
	RUN(t_link_loop_found_by_fsck);
	RUN(t_change_listener);
	RUN(t_replay_equals_live);
	RUN(t_small_tensors_share_blocks);
	return check_done();
}
