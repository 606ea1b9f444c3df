/* test_pool.c - extents: allocation, merging, fragmentation, reuse. */
#include <fcntl.h>

#include "check.h"
#include "pool.h"
#include "testutil.h"

#define B TC_BLOCK

static int open_pool(struct tc_pool *p, char **dir, uint64_t size)
{
	*dir = tmpdir_new();
	int fd = open(*dir, O_RDONLY | O_DIRECTORY);
	int r = tc_pool_open(p, fd, "pool", size);
	close(fd);
	if (!r)
		r = tc_pool_build(p, NULL, 0);
	return r;
}

/* Every block is free or owned by exactly one extent. */
static int consistent(struct tc_pool *p, const struct tc_extent *e, size_t n)
{
	size_t blocks = p->size / B;
	uint8_t *own = calloc(blocks, 1);
	uint64_t used = 0;
	int ok = 1;
	for (size_t i = 0; i < n; i++) {
		if (!e[i].len)
			continue;
		for (uint64_t b = e[i].off / B; b < (e[i].off + e[i].len) / B; b++) {
			if (b >= blocks || own[b])
				ok = 0;
			else
				own[b] = 1;
		}
		used += e[i].len;
	}
	if (used + p->free != p->size)
		ok = 0;
	free(own);
	return ok;
}

static void t_alloc_free_merge(void)
{
	struct tc_pool p;
	char *dir;
	REQUIRE(open_pool(&p, &dir, 64 * B) == 0);
	struct tc_extent e[64];
	for (int i = 0; i < 64; i++) {
		CHECK(tc_pool_alloc(&p, B, &e[i]) == 0);
		CHECK(e[i].len == B);
	}
	CHECK(p.free == 0);
	struct tc_extent x;
	CHECK(tc_pool_alloc(&p, B, &x) == -ENOSPC);
	CHECK(consistent(&p, e, 64));
	/* free every other block, then the rest: all merges into one run */
	for (int i = 0; i < 64; i += 2)
		tc_pool_free(&p, e[i].off, e[i].len);
	CHECK(p.free == 32 * B);
	for (int i = 1; i < 64; i += 2)
		tc_pool_free(&p, e[i].off, e[i].len);
	CHECK(p.free == 64 * B);
	CHECK(p.by_start.n == 1 && p.by_end.n == 1);
	CHECK(tc_pool_alloc(&p, 64 * B, &x) == 0);
	CHECK(x.off == 0 && x.len == 64 * B);
	tc_pool_close(&p);
	tmpdir_free(dir);
}

static void t_fragmented_gives_largest_run(void)
{
	struct tc_pool p;
	char *dir;
	REQUIRE(open_pool(&p, &dir, 100 * B) == 0);
	struct tc_extent e[10];
	for (int i = 0; i < 10; i++)
		CHECK(tc_pool_alloc(&p, 10 * B, &e[i]) == 0);
	/* free runs of 10 blocks at 1, 3, 5 (not touching) */
	tc_pool_free(&p, e[1].off, e[1].len);
	tc_pool_free(&p, e[3].off, e[3].len);
	tc_pool_free(&p, e[5].off, 5 * B); /* 5 blocks */
	e[5].off += 5 * B;
	e[5].len = 5 * B;
	/* 25 blocks wanted: no single run; the largest comes back */
	struct tc_extent x, y, z;
	CHECK(tc_pool_alloc(&p, 25 * B, &x) == 0);
	CHECK(x.len == 10 * B);
	CHECK(tc_pool_alloc(&p, 15 * B, &y) == 0);
	CHECK(y.len == 10 * B);
	CHECK(tc_pool_alloc(&p, 5 * B, &z) == 0);
	CHECK(z.len == 5 * B);
	CHECK(p.free == 0);
	struct tc_extent all[13];
	memcpy(all, e, sizeof(e));
	all[1] = x;
	all[3] = y;
	all[10] = z;
	all[11] = all[12] = (struct tc_extent){ 0, 0 };
	CHECK(consistent(&p, all, 11));
	tc_pool_close(&p);
	tmpdir_free(dir);
}

static void t_extend_in_place(void)
{
	struct tc_pool p;
	char *dir;
	REQUIRE(open_pool(&p, &dir, 16 * B) == 0);
	struct tc_extent a, b;
	CHECK(tc_pool_alloc(&p, 2 * B, &a) == 0);
	CHECK(tc_pool_extend(&p, a.off + a.len, 3 * B) == 3 * B);
	a.len += 3 * B;
	CHECK(tc_pool_alloc(&p, B, &b) == 0);
	CHECK(b.off == a.off + a.len);
	CHECK(tc_pool_extend(&p, a.off + a.len, B) == 0); /* b is there */
	CHECK(tc_pool_extend(&p, b.off + b.len, 100 * B) == 10 * B);
	CHECK(p.free == 0);
	tc_pool_close(&p);
	tmpdir_free(dir);
}

static void t_build_from_used(void)
{
	struct tc_pool p;
	char *dir = tmpdir_new();
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	REQUIRE(tc_pool_open(&p, fd, "pool", 32 * B) == 0);
	close(fd);
	struct tc_extent used[] = { { 0, 2 * B }, { 5 * B, 3 * B }, { 30 * B, 2 * B } };
	CHECK(tc_pool_build(&p, used, 3) == 0);
	CHECK(p.free == 25 * B);
	struct tc_extent x;
	CHECK(tc_pool_alloc(&p, 22 * B, &x) == 0);
	CHECK(x.off == 8 * B && x.len == 22 * B);
	CHECK(tc_pool_alloc(&p, 3 * B, &x) == 0);
	CHECK(x.off == 2 * B && x.len == 3 * B);
	CHECK(p.free == 0);
	tc_pool_close(&p);
	tmpdir_free(dir);
}

/* Random allocate/free churn: never two owners, accounting exact, and
 * freed space is reused (the pool fills to the last block). */
static void t_random_churn_and_reuse(void)
{
	struct tc_pool p;
	char *dir;
	const uint64_t blocks = 4096;
	REQUIRE(open_pool(&p, &dir, blocks * B) == 0);
	struct tc_extent *live = calloc(100000, sizeof(*live));
	size_t n = 0;
	uint64_t s = 7;
	for (int step = 0; step < 50000; step++) {
		if (n && (rnd(&s) % 100 < 45 || p.free < 64 * B)) {
			size_t i = rnd(&s) % n;
			tc_pool_free(&p, live[i].off, live[i].len);
			live[i] = live[--n];
		} else {
			uint64_t want = (1 + rnd(&s) % 40) * B;
			while (want) {
				struct tc_extent e;
				int r = tc_pool_alloc(&p, want, &e);
				if (r)
					break;
				live[n++] = e;
				want -= e.len;
			}
		}
		if (step % 5000 == 0)
			CHECK(consistent(&p, live, n));
	}
	CHECK(consistent(&p, live, n));
	/* fill completely: fragmented space is all usable */
	struct tc_extent e;
	while (tc_pool_alloc(&p, 37 * B, &e) == 0)
		live[n++] = e;
	CHECK(p.free == 0);
	CHECK(consistent(&p, live, n));
	for (size_t i = 0; i < n; i++)
		tc_pool_free(&p, live[i].off, live[i].len);
	CHECK(p.free == blocks * B);
	CHECK(p.by_start.n == 1);
	free(live);
	tc_pool_close(&p);
	tmpdir_free(dir);
}

static void t_open_errors(void)
{
	struct tc_pool p;
	char *dir = tmpdir_new();
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	CHECK(tc_pool_open(&p, fd, "pool", 100) == -EINVAL); /* < one block */
	CHECK(tc_pool_open(&p, fd, "pool", 1ull << 62) != 0); /* too big */
	struct stat st;
	CHECK(fstatat(fd, "pool", &st, 0) != 0 || st.st_size == 0);
	close(fd);
	tmpdir_free(dir);
}

/* Held extents are neither free nor handed out until their generation
 * is released, oldest generation first; then they merge back. */
static void t_quarantine_holds_until_released(void)
{
	struct tc_pool p;
	char *dir;
	struct tc_extent e[4], x;
	REQUIRE(open_pool(&p, &dir, 4 * B) == 0);
	for (int i = 0; i < 4; i++)
		CHECK(tc_pool_alloc(&p, B, &e[i]) == 0);
	tc_pool_hold(&p, e[0].off, B, 1, TC_HOLD_DATA);
	tc_pool_hold(&p, e[1].off, B, 1, TC_HOLD_DATA);
	tc_pool_hold(&p, e[2].off, B, 2, TC_HOLD_DATA);
	tc_pool_hold(&p, e[3].off, B, 2, TC_HOLD_RECORD);
	CHECK(p.free == 0 && p.held_bytes == 4 * B);
	CHECK(tc_pool_alloc(&p, B, &x) == -ENOSPC);
	tc_pool_release(&p, 0, 1);
	CHECK(p.free == 0 && p.held_bytes == 4 * B);
	tc_pool_release(&p, 2, 0); /* the record alone frees e[3] only */
	CHECK(p.free == B && p.held_bytes == 3 * B);
	CHECK(tc_pool_alloc(&p, B, &x) == 0 && x.off == e[3].off);
	tc_pool_release(&p, 1, 1);
	CHECK(p.free == 2 * B && p.held_bytes == B);
	CHECK(tc_pool_alloc(&p, 2 * B, &x) == 0 && x.len == 2 * B);
	CHECK(x.off == e[0].off);
	for (int i = 0; i < 1000; i++) { /* many gens: the FIFO slides */
		tc_pool_hold(&p, x.off, B, 3 + (uint64_t)i, TC_HOLD_DATA);
		tc_pool_release(&p, 3 + (uint64_t)i, 1);
		CHECK(tc_pool_alloc(&p, B, &x) == 0);
	}
	tc_pool_release(&p, ~0ull, 1);
	CHECK(p.held_bytes == 0 && p.free == B);
	tc_pool_close(&p);
	tmpdir_free(dir);
}

/* Every byte of the pool is free (a free run or a free unit), held by one
 * live extent, or neither (held in quarantine, counted by the caller).
 * Checks byte ownership at unit granularity, and the accounting. */
static int packed_consistent(struct tc_pool *p, const struct tc_extent *e,
			     size_t n)
{
	size_t units = p->size / TC_SLOT;
	uint8_t *own = calloc(units, 1);
	uint64_t used = 0;
	int ok = 1;
	for (size_t i = 0; i < n; i++) {
		if (tc_extent_packed(e[i]) && !tc_extent_packed_ok(e[i]))
			ok = 0;
		for (uint64_t u = e[i].off / TC_SLOT;
		     u < (e[i].off + e[i].len) / TC_SLOT; u++) {
			if (u >= units || own[u])
				ok = 0;
			else
				own[u] = 1;
		}
		used += e[i].len;
	}
	if (used + p->free + p->slack + p->held_bytes != p->size)
		ok = 0;
	free(own);
	return ok;
}

/* Small tensors share blocks: 64 of 64 bytes fill one block; mixed sizes
 * take runs of units; a block goes back to the free space with its last
 * unit, and the accounting (free, slack) stays exact. */
static void t_shared_blocks(void)
{
	struct tc_pool p;
	char *dir;
	struct tc_extent e[200], x;
	REQUIRE(open_pool(&p, &dir, 8 * B) == 0);
	for (int i = 0; i < 64; i++) {
		REQUIRE(tc_pool_slot(&p, 1 + (uint64_t)i % 64, &e[i]) == 0);
		CHECK(e[i].len == TC_SLOT && e[i].off / B == e[0].off / B);
		CHECK(tc_extent_packed(e[i]) || e[i].off % B == 0);
	}
	CHECK(p.shared_blocks == 1 && p.slack == 0 && p.free == 7 * B);
	CHECK(p.partial == NULL);
	CHECK(packed_consistent(&p, e, 64));
	/* the 65th takes a new block */
	CHECK(tc_pool_slot(&p, 64, &e[64]) == 0 && e[64].off / B != e[0].off / B);
	CHECK(p.shared_blocks == 2 && p.slack == B - TC_SLOT);
	/* runs of units: 2 KiB is 32 of them, 65 bytes two */
	CHECK(tc_pool_slot(&p, 2048, &e[65]) == 0 && e[65].len == 2048);
	CHECK(tc_pool_slot(&p, 65, &e[66]) == 0 && e[66].len == 128);
	CHECK(packed_consistent(&p, e, 67));
	/* a freed unit is reused; freeing the rest of a block frees it */
	tc_pool_free(&p, e[10].off, e[10].len);
	CHECK(tc_pool_slot(&p, 1, &x) == 0 && x.off == e[10].off);
	e[10] = x;
	for (int i = 0; i < 64; i++)
		tc_pool_free(&p, e[i].off, e[i].len);
	CHECK(p.shared_blocks == 1 && p.free == 7 * B);
	CHECK(packed_consistent(&p, e + 64, 3));
	for (int i = 64; i < 67; i++)
		tc_pool_free(&p, e[i].off, e[i].len);
	CHECK(p.shared_blocks == 0 && p.slack == 0 && p.free == 8 * B);
	CHECK(p.by_start.n == 1 && p.partial == NULL);
	tc_pool_close(&p);
	tmpdir_free(dir);
}

/* tc_pool_pack: into a shared block with room (copy, the block is the
 * caller's to free), else the block itself becomes shared in place. */
static void t_pack_in_place_or_into_room(void)
{
	struct tc_pool p;
	char *dir;
	struct tc_extent b1, b2, x, y;
	REQUIRE(open_pool(&p, &dir, 4 * B) == 0);
	REQUIRE(tc_pool_alloc(&p, B, &b1) == 0);
	CHECK(tc_pool_pack(&p, b1.off, 100, &x) == 0); /* no room: in place */
	CHECK(x.off == b1.off && x.len == 128 && p.shared_blocks == 1);
	REQUIRE(tc_pool_alloc(&p, B, &b2) == 0);
	CHECK(tc_pool_pack(&p, b2.off, 700, &y) == 1); /* room in b1 */
	CHECK(y.off == b1.off + 128 && y.len == 704);
	tc_pool_free(&p, b2.off, B);
	CHECK(p.free == 3 * B && p.slack == B - 128 - 704);
	/* quarantine holds units as it holds blocks */
	tc_pool_hold(&p, x.off, x.len, 1, TC_HOLD_RECORD);
	CHECK(p.held_bytes == 128);
	struct tc_extent live[1] = { y };
	CHECK(packed_consistent(&p, live, 1));
	tc_pool_release(&p, 1, 0);
	CHECK(p.held_bytes == 0 && p.slack == B - 704);
	tc_pool_free(&p, y.off, y.len);
	CHECK(p.free == 4 * B && p.slack == 0 && p.shared_blocks == 0);
	tc_pool_close(&p);
	tmpdir_free(dir);
}

/* Building from used extents that include packed ones: their blocks are
 * shared with exactly those units taken, the rest free. */
static void t_build_with_packed(void)
{
	struct tc_pool p;
	char *dir = tmpdir_new();
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	REQUIRE(tc_pool_open(&p, fd, "pool", 16 * B) == 0);
	close(fd);
	struct tc_extent used[] = {
		{ 0, 2 * B },
		{ 2 * B, 64 }, { 2 * B + 128, 256 }, { 2 * B + 4032, 64 },
		{ 3 * B, B },
		{ 9 * B + 1024, 2048 },
	};
	REQUIRE(tc_pool_build(&p, used, 6) == 0);
	CHECK(p.shared_blocks == 2);
	CHECK(p.free == (16 - 5) * B);
	CHECK(p.slack == (B - 384) + (B - 2048));
	CHECK(packed_consistent(&p, used, 6));
	struct tc_extent x;
	CHECK(tc_pool_slot(&p, 64, &x) == 0);
	CHECK(x.off / B == 2 || x.off / B == 9);
	tc_pool_close(&p);
	tmpdir_free(dir);
}

/* Random churn of mixed small and large extents: never two owners of a
 * unit, accounting exact; everything freed, the pool is one free run. */
static void t_packed_random_churn(void)
{
	struct tc_pool p;
	char *dir;
	const uint64_t blocks = 512;
	REQUIRE(open_pool(&p, &dir, blocks * B) == 0);
	struct tc_extent *live = calloc(200000, sizeof(*live));
	size_t n = 0;
	uint64_t s = 11;
	for (int step = 0; step < 60000; step++) {
		if (n && (rnd(&s) % 100 < 48 || p.free < 8 * B)) {
			size_t i = rnd(&s) % n;
			tc_pool_free(&p, live[i].off, live[i].len);
			live[i] = live[--n];
		} else if (rnd(&s) % 4) {
			struct tc_extent e;
			if (tc_pool_slot(&p, 1 + rnd(&s) % TC_PACK_MAX, &e) == 0)
				live[n++] = e;
		} else {
			struct tc_extent e;
			if (tc_pool_alloc(&p, (1 + rnd(&s) % 4) * B, &e) == 0)
				live[n++] = e;
		}
		if (step % 6000 == 0)
			CHECK(packed_consistent(&p, live, n));
	}
	CHECK(packed_consistent(&p, live, n));
	for (size_t i = 0; i < n; i++)
		tc_pool_free(&p, live[i].off, live[i].len);
	CHECK(p.free == blocks * B && p.slack == 0 && p.shared_blocks == 0);
	CHECK(p.by_start.n == 1);
	free(live);
	tc_pool_close(&p);
	tmpdir_free(dir);
}

int main(void)
{
	RUN(t_alloc_free_merge);
	RUN(t_fragmented_gives_largest_run);
	RUN(t_extend_in_place);
	RUN(t_build_from_used);
	RUN(t_random_churn_and_reuse);
	RUN(t_open_errors);
	RUN(t_quarantine_holds_until_released);
	RUN(t_shared_blocks);
	RUN(t_pack_in_place_or_into_room);
	RUN(t_build_with_packed);
	RUN(t_packed_random_churn);
	return check_done();
}
