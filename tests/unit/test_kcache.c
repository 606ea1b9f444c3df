/* test_kcache.c - the daemon's record of which tensor version the
 * kernel's page cache holds (fs/kcache.c): open modes, readers, and
 * records dropped at FORGET without losing any other. */
#include "check.h"
#include "tcfs.h"

/* Version, open modes and reader counts of one ino. */
static void t_modes(void)
{
	struct tcfs_kcache *kc = tcfs_kcache_new();
	REQUIRE(kc);
	CHECK(tcfs_kcache_open(kc, 5, 1) == TCFS_KC_FIRST); /* no pages yet */
	CHECK(tcfs_kcache_open(kc, 5, 1) == TCFS_KC_KEEP);
	CHECK(tcfs_kcache_open(kc, 5, 2) == TCFS_KC_DIRECT); /* readers of 1 */
	tcfs_kcache_close(kc, 5);
	tcfs_kcache_close(kc, 5);
	CHECK(tcfs_kcache_open(kc, 5, 2) == TCFS_KC_FRESH); /* none left */
	tcfs_kcache_close(kc, 5);
	tcfs_kcache_forget(kc, 5);
	CHECK(tcfs_kcache_open(kc, 5, 2) == TCFS_KC_FRESH);
	/* a FORGET while a reader is open keeps the record: the reader
	 * still counts against another version */
	tcfs_kcache_drop(kc, 5);
	CHECK(tcfs_kcache_count(kc) == 1);
	CHECK(tcfs_kcache_open(kc, 5, 3) == TCFS_KC_DIRECT);
	tcfs_kcache_close(kc, 5);
	tcfs_kcache_drop(kc, 5);
	CHECK(tcfs_kcache_count(kc) == 0);
	/* the kernel dropped the inode and its pages: a first open again */
	CHECK(tcfs_kcache_open(kc, 5, 2) == TCFS_KC_FIRST);
	tcfs_kcache_close(kc, 5);
	tcfs_kcache_drop(kc, 99); /* never seen: nothing */
	CHECK(tcfs_kcache_count(kc) == 1);
	/* a writer's open (forget) before any reader: the writer may have
	 * filled pages, so the first reader's open is FRESH, not FIRST */
	tcfs_kcache_forget(kc, 7);
	CHECK(tcfs_kcache_count(kc) == 2);
	CHECK(tcfs_kcache_open(kc, 7, 1) == TCFS_KC_FRESH);
	tcfs_kcache_close(kc, 7);
	tcfs_kcache_free(kc);
}

/* Many inos (random ones: sequential ids spread too evenly to collide)
 * opened and dropped in a random order, the table growing: after every
 * few drops each record left is still found (it answers KEEP for its
 * version), and the count is the number left. */
static void t_drop_keeps_the_rest(void)
{
	enum { N = 5000 };
	static uint64_t ino[N];
	static uint8_t live[N];
	struct tcfs_kcache *kc = tcfs_kcache_new();
	REQUIRE(kc);
	uint64_t x = 12345;
	for (int i = 0; i < N; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		ino[i] = x | 1; /* never 0, the empty slot */
		CHECK(tcfs_kcache_open(kc, ino[i], (uint64_t)i) == TCFS_KC_FIRST);
		tcfs_kcache_close(kc, ino[i]);
		live[i] = 1;
	}
	size_t left = N;
	for (int round = 0; round < 4000; round++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int i = (int)(x % N);
		tcfs_kcache_drop(kc, ino[i]);
		left -= live[i];
		live[i] = 0;
		if (round % 200 == 0 || round == 3999) {
			size_t found = 0;
			for (int k = 0; k < N; k++) {
				if (!live[k])
					continue;
				/* KEEP proves the record (and version) is there */
				found += tcfs_kcache_open(kc, ino[k], (uint64_t)k) ==
					 TCFS_KC_KEEP;
				tcfs_kcache_close(kc, ino[k]);
			}
			CHECK(found == left);
			CHECK(tcfs_kcache_count(kc) == left);
		}
	}
	tcfs_kcache_free(kc);
}

/* The table at its fullest (511 records in its first 1024 slots): long
 * probe runs, some wrapping past the last slot to the first.  Each seed
 * fills it, then drops every record in a random order, checking the rest
 * after every few drops. */
static void t_drop_full_table(void)
{
	enum { N = 511 };
	uint64_t ino[N];
	uint8_t live[N];
	uint64_t x = 99;
	for (int seed = 0; seed < 60; seed++) {
		struct tcfs_kcache *kc = tcfs_kcache_new();
		REQUIRE(kc);
		for (int i = 0; i < N; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			ino[i] = x | 1;
			tcfs_kcache_open(kc, ino[i], 7);
			tcfs_kcache_close(kc, ino[i]);
			live[i] = 1;
		}
		size_t left = tcfs_kcache_count(kc);
		CHECK(left == N); /* (two equal random inos: practically never) */
		for (int d = 0; d < 4 * N && left; d++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			int i = (int)(x % N);
			if (!live[i])
				continue;
			tcfs_kcache_drop(kc, ino[i]);
			live[i] = 0;
			left--;
			if (left % 4)
				continue;
			size_t found = 0;
			for (int k = 0; k < N; k++) {
				if (!live[k])
					continue;
				found += tcfs_kcache_open(kc, ino[k], 7) == TCFS_KC_KEEP;
				tcfs_kcache_close(kc, ino[k]);
			}
			CHECK(found == left && tcfs_kcache_count(kc) == left);
		}
		tcfs_kcache_free(kc);
	}
}

int main(void)
{
	RUN(t_modes);
	RUN(t_drop_keeps_the_rest);
	RUN(t_drop_full_table);
	return check_done();
}
