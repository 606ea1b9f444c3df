/* test_stage.c - staged tensors (lib/stage.c): bytes written into the
 * pool by the caller, committed many at a time in one record. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "store_test.h"
#include "storeutil.h"
#include "tcache.h"
#include "testutil.h"

/* Write @n bytes of seed @seed at @off of @dir's pool file, as a writer
 * with a staged run does. */
static int pool_put(const char *dir, uint64_t off, size_t n, uint64_t seed)
{
	char p[512];
	uint8_t *buf = malloc(n);
	int fd, ok;

	snprintf(p, sizeof(p), "%s/pool", dir);
	fd = open(p, O_WRONLY);
	fill(buf, n, seed);
	ok = fd >= 0 && pwrite(fd, buf, n, (off_t)off) == (ssize_t)n;
	if (fd >= 0)
		close(fd);
	free(buf);
	return ok;
}

/* Does tensor @name of @dir hold @n bytes of seed @seed? */
static int holds(tc_store *s, uint64_t dir, const char *name, size_t n,
		 uint64_t seed)
{
	struct tc_stat st;
	tc_file *f;
	if (tc_lookup(s, dir, name, &st) || st.size != n || tc_open(s, st.id, 0, &f))
		return 0;
	uint8_t *want = malloc(n + 1), *got = malloc(n + 1);
	fill(want, n, seed);
	int ok = tc_file_pread(s, f, got, n + 1, 0) == (ssize_t)n &&
		 !memcmp(want, got, n);
	tc_file_close(s, f);
	free(want);
	free(got);
	return ok;
}

/* Stage @n tensors of sizes @sz, their bytes seeds 100 + i, into @t. */
static int stage_n(tc_store *s, const char *dir, size_t n, const size_t *sz,
		   tc_staged **t)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t off;
		if (tc_stage(s, sz[i], &t[i], &off) || !pool_put(dir, off, sz[i], 100 + i))
			return 0;
	}
	return 1;
}

static uint64_t used(tc_store *s)
{
	struct tc_stats st;
	tc_store_stats(s, &st);
	return st.used;
}

static const size_t sizes[4] = { 100 * KiB, 256 * KiB, 100, 4096 };
static const char *const names[4] = { "p0.kv", "p1.kv", "p2.kv", "p3.kv" };
static const char *const chain[4] = { NULL, "p0.kv", "p1.kv", "p2.kv" };

/* Committed at the root: bytes, links, entries, space; the same after a
 * reopen, with every xxh3 right (a wrong one would be EIO there). */
static void t_staged_tensors_commit_at_the_root(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	tc_staged *t[4];
	int made[4];
	char link[64];
	struct tc_stat st;
	struct tc_stats ss;
	REQUIRE(s);
	uint64_t before = used(s);
	REQUIRE(stage_n(s, d, 4, sizes, t));
	CHECK(used(s) == before + 100 * KiB + 256 * KiB + 4 * KiB + 4 * KiB);
	tc_store_stats(s, &ss);
	CHECK(ss.entries == 0); /* staged: nobody's */
	CHECK(tc_stage_commit(s, TC_ROOT_ID, 4, t, names, chain, 0644, 7, 8, made) == 0);
	CHECK(made[0] && made[1] && made[2] && made[3]);
	for (int i = 0; i < 4; i++)
		CHECK(holds(s, TC_ROOT_ID, names[i], sizes[i], 100 + (uint64_t)i));
	tc_store_stats(s, &ss);
	CHECK(ss.entries == 4 && ss.tensors == 4);
	CHECK(used(s) == before + 100 * KiB + 256 * KiB + 128 + 4 * KiB); /* 100 B: two units */
	CHECK(tc_lookup(s, TC_ROOT_ID, "p2.kv", &st) == 0);
	CHECK(st.uid == 7 && st.gid == 8 && (st.mode & 07777) == 0644);
	CHECK(tc_link_get(s, st.id, link, sizeof(link)) == 5 && !memcmp(link, "p1.kv", 5));
	char *dump = NULL, *dump2 = NULL;
	size_t len, len2;
	CHECK(tc_store_dump(s, &dump, &len) == 0);
	CHECK(tc_store_close(s) == 0);
	s = open_store(d, 0);
	REQUIRE(s);
	CHECK(tc_store_dump(s, &dump2, &len2) == 0);
	CHECK(dump && dump2 && len == len2 && !memcmp(dump, dump2, len));
	for (int i = 0; i < 4; i++)
		CHECK(holds(s, TC_ROOT_ID, names[i], sizes[i], 100 + (uint64_t)i));
	free(dump);
	free(dump2);
	tc_store_close(s);
	tmpdir_free(d);
}

/* A crash that cuts the journal anywhere in a commit's record leaves all
 * of its tensors or none: it is one record. */
static void t_a_commit_is_all_or_nothing(void)
{
	char *d = tmpdir_new(), *c = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	tc_staged *t[4];
	int made[4], seen[2] = { 0, 0 };
	REQUIRE(s);
	REQUIRE(stage_n(s, d, 4, sizes, t));
	CHECK(tc_store_sync(s) == 0); /* the bytes are on disk: not a lost write */
	off_t from = journal_size(d);
	CHECK(tc_stage_commit(s, TC_ROOT_ID, 4, t, names, chain, 0644, 0, 0, made) == 0);
	off_t to = journal_size(d);
	CHECK(to > from);
	off_t step = (to - from) / 24 ? (to - from) / 24 : 1;
	for (off_t cut = from;; cut = cut + step < to ? cut + step : to) {
		crash_copy(d, c, cut);
		tc_store *x = open_store(c, 0);
		REQUIRE(x);
		struct tc_stats st;
		tc_store_stats(x, &st);
		CHECK(st.entries == 0 || st.entries == 4);
		if (st.entries == 4) {
			seen[1]++;
			for (int i = 0; i < 4; i++)
				CHECK(holds(x, TC_ROOT_ID, names[i], sizes[i], 100 + (uint64_t)i));
		} else {
			seen[0]++;
		}
		tc_store_close(x);
		tmpdir_free(c);
		c = tmpdir_new();
		if (cut == to)
			break;
	}
	CHECK(seen[0] > 0 && seen[1] > 0);
	tc_store_close(s);
	tmpdir_free(c);
	tmpdir_free(d);
}

/* Each refusal changes nothing, and the staged tensors stay the caller's
 * to commit or drop; dropping gives their space back. */
static void t_refusals_change_nothing(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	tc_staged *t[2];
	struct tc_stat st;
	struct tc_stats ss;
	int made[2];
	size_t sz[2] = { 8 * KiB, 8 * KiB };
	REQUIRE(s);
	uint64_t e = 0;
	CHECK(tc_mkdir(s, TC_ROOT_ID, "e", 0755, 0, 0, &st) == 0);
	e = st.id;
	tc_file *f;
	CHECK(tc_create(s, TC_ROOT_ID, "a", 0644, 0, 0, &f, &st) == 0);
	CHECK(tc_file_write(s, f, "x", 1, 0) == 1 && tc_file_commit(s, f) == 0);
	tc_file_close(s, f);
	CHECK(tc_link_set(s, st.id, "b", 0) == 0);
	uint64_t before = used(s);
	REQUIRE(stage_n(s, d, 2, sz, t));

	const char *twice[2] = { "q", "q" };
	CHECK(tc_stage_commit(s, TC_ROOT_ID, 2, t, twice, NULL, 0644, 0, 0, made) == -EINVAL);
	const char *two[2] = { "q", "r" }, *links[2] = { "a", NULL };
	CHECK(tc_stage_commit(s, e, 2, t, two, links, 0644, 0, 0, made) == -EINVAL);
	const char *stats[2] = { "q", ".tcache-stats" };
	CHECK(tc_stage_commit(s, TC_ROOT_ID, 2, t, stats, NULL, 0644, 0, 0, made) == -EEXIST);
	const char *meta[2] = { "meta.json", "r" };
	CHECK(tc_stage_commit(s, e, 2, t, meta, NULL, 0644, 0, 0, made) == -EEXIST);
	const char *slash[2] = { "q", "x/y" };
	CHECK(tc_stage_commit(s, TC_ROOT_ID, 2, t, slash, NULL, 0644, 0, 0, made) == -EINVAL);
	/* a -> b exists: b -> a closes a loop; so do q -> r -> q */
	const char *b[2] = { "b", "q" }, *ba[2] = { "a", NULL };
	CHECK(tc_stage_commit(s, TC_ROOT_ID, 2, t, b, ba, 0644, 0, 0, made) == -ELOOP);
	const char *qr[2] = { "q", "r" };
	CHECK(tc_stage_commit(s, TC_ROOT_ID, 2, t, qr, (const char *[]){ "r", "q" },
			      0644, 0, 0, made) == -ELOOP);
	CHECK(tc_stage_commit(s, 999999, 2, t, qr, NULL, 0644, 0, 0, made) == -ENOENT);
	tc_store_stats(s, &ss);
	CHECK(ss.entries == 2 && ss.tensors == 1);
	CHECK(used(s) == before + 16 * KiB);
	tc_staged_drop(s, t[0]);
	tc_staged_drop(s, t[1]);
	tc_staged_drop(s, NULL);
	CHECK(used(s) == before);

	/* inside an entry, without links: fine, and the entry is there */
	REQUIRE(stage_n(s, d, 2, sz, t));
	CHECK(tc_stage_commit(s, e, 2, t, qr, NULL, 0644, 0, 0, made) == 0);
	CHECK(holds(s, e, "q", 8 * KiB, 100) && holds(s, e, "r", 8 * KiB, 101));
	tc_store_close(s);
	tmpdir_free(d);
}

/* A name present is kept as it is; its staged bytes go back to the pool. */
static void t_present_names_are_kept(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 16 * MiB);
	tc_staged *t[2];
	struct tc_stat st;
	tc_file *f;
	int made[2];
	size_t sz[2] = { 64 * KiB, 64 * KiB };
	uint8_t old[5000];
	REQUIRE(s);
	fill(old, sizeof(old), 9);
	CHECK(tc_create(s, TC_ROOT_ID, "p", 0644, 0, 0, &f, &st) == 0);
	CHECK(tc_file_write(s, f, old, sizeof(old), 0) == (ssize_t)sizeof(old));
	CHECK(tc_file_commit(s, f) == 0);
	tc_file_close(s, f);
	uint64_t before = used(s);
	REQUIRE(stage_n(s, d, 2, sz, t));
	const char *pq[2] = { "p", "q" };
	CHECK(tc_stage_commit(s, TC_ROOT_ID, 2, t, pq, NULL, 0644, 0, 0, made) == 0);
	CHECK(!made[0] && made[1]);
	CHECK(holds(s, TC_ROOT_ID, "p", sizeof(old), 9));
	CHECK(holds(s, TC_ROOT_ID, "q", 64 * KiB, 101));
	CHECK(used(s) == before + 64 * KiB);
	tc_store_close(s);
	tmpdir_free(d);
}

/* Staging makes room as a write does: least recently used entries are
 * evicted; staged space itself is never a victim, so a pool full of it
 * answers ENOSPC; more than the pool is EFBIG; 0 bytes EINVAL. */
static void t_staging_makes_room_like_a_write(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	tc_staged *t[3];
	struct tc_stat st;
	struct tc_stats ss;
	tc_file *f;
	uint64_t off;
	static uint8_t buf[700 * KiB];
	REQUIRE(s);
	CHECK(tc_stage(s, 0, &t[0], &off) == -EINVAL);
	CHECK(tc_stage(s, 2 * MiB, &t[0], &off) == -EFBIG);
	CHECK(tc_create(s, TC_ROOT_ID, "old", 0644, 0, 0, &f, &st) == 0);
	CHECK(tc_file_write(s, f, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf));
	CHECK(tc_file_commit(s, f) == 0);
	tc_file_close(s, f);
	CHECK(tc_stage(s, 600 * KiB, &t[0], &off) == 0); /* evicts "old" */
	tc_store_stats(s, &ss);
	CHECK(ss.evictions == 1 && ss.entries == 0);
	CHECK(tc_stage(s, 600 * KiB, &t[1], &off) == -ENOSPC);
	tc_staged_drop(s, t[0]);
	CHECK(tc_stage(s, 600 * KiB, &t[1], &off) == 0);
	tc_staged_drop(s, t[1]);
	CHECK(used(s) == 0);
	tc_store_close(s);
	tmpdir_free(d);
}

int main(void)
{
	RUN(t_staged_tensors_commit_at_the_root);
	RUN(t_a_commit_is_all_or_nothing);
	RUN(t_refusals_change_nothing);
	RUN(t_present_names_are_kept);
	RUN(t_staging_makes_room_like_a_write);
	return check_done();
}
