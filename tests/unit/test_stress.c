/*
 * test_stress.c - many threads on one store: writers replacing tensors,
 * readers verifying every byte they get, a renamer/unlinker, and eviction
 * churn from a small capacity.  Every tensor describes itself (seed and
 * size in its first 16 bytes), so a reader can check any bytes it reads.
 * Runs TC_STRESS_SECONDS (default 3) seconds.  Also run under TSan by
 * tools/test --tsan.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "check.h"
#include "tcache.h"
#include "testutil.h"

#define WRITERS 8
#define READERS 8
#define ENTRIES 24

static tc_store *S;
static atomic_int stop;
static atomic_long writes, reads, verified, mismatches, errors, renames;

static void make(uint8_t *buf, size_t n, uint64_t seed)
{
	memcpy(buf, &seed, 8);
	uint64_t sz = n;
	memcpy(buf + 8, &sz, 8);
	fill(buf + 16, n - 16, seed);
}

static int check_bytes(const uint8_t *buf, size_t n)
{
	uint64_t seed, sz;
	if (n < 16)
		return 0;
	memcpy(&seed, buf, 8);
	memcpy(&sz, buf + 8, 8);
	if (sz != n)
		return 0;
	uint8_t *want = malloc(n);
	fill(want, n - 16, seed);
	int ok = memcmp(want, buf + 16, n - 16) == 0;
	free(want);
	return ok;
}

static uint64_t entry_id(const char *name)
{
	struct tc_stat st;
	if (tc_lookup(S, TC_ROOT_ID, name, &st) == 0)
		return st.id;
	if (tc_mkdir(S, TC_ROOT_ID, name, 0755, 0, 0, &st) == 0)
		return st.id;
	return tc_lookup(S, TC_ROOT_ID, name, &st) == 0 ? st.id : 0;
}

static void *writer(void *arg)
{
	uint64_t r = (uint64_t)(uintptr_t)arg * 7777 + 1;
	uint8_t *buf = malloc(600 * 1024);
	char en[16], tn[16];
	while (!atomic_load(&stop)) {
		snprintf(en, sizeof(en), "e%d", (int)(rnd(&r) % ENTRIES));
		/* only this writer writes names w<i>_*: concurrent writers of
		 * one file would mix their bytes, as on any file system */
		snprintf(tn, sizeof(tn), "w%d_%d", (int)(uintptr_t)arg, (int)(rnd(&r) % 4));
		uint64_t e = entry_id(en);
		if (!e)
			continue;
		size_t n = 16 + rnd(&r) % (512 * 1024);
		uint64_t seed = rnd(&r);
		make(buf, n, seed);
		struct tc_stat st;
		tc_file *f = NULL;
		int rc = tc_lookup(S, e, tn, &st);
		rc = rc == 0 ? tc_open(S, st.id, TC_O_WRITE | TC_O_TRUNC, &f)
			     : tc_create(S, e, tn, 0644, 0, 0, &f, &st);
		if (rc) {
			if (rc != -ENOENT && rc != -EEXIST && rc != -ENOSPC)
				atomic_fetch_add(&errors, 1);
			continue;
		}
		size_t at = 0;
		while (at < n && rc == 0) {
			size_t k = 1 + rnd(&r) % (128 * 1024);
			if (k > n - at)
				k = n - at;
			ssize_t w = tc_file_write(S, f, buf + at, k, at);
			if (w != (ssize_t)k)
				rc = w < 0 ? (int)w : -EIO;
			at += k;
		}
		if (!rc)
			rc = tc_file_commit(S, f);
		if (rc && rc != -ENOSPC)
			atomic_fetch_add(&errors, 1);
		if (!rc)
			atomic_fetch_add(&writes, 1);
		tc_file_close(S, f);
	}
	free(buf);
	return NULL;
}

static void *reader(void *arg)
{
	uint64_t r = (uint64_t)(uintptr_t)arg * 31337 + 1;
	uint8_t *buf = malloc(600 * 1024);
	char en[16], tn[16];
	while (!atomic_load(&stop)) {
		struct tc_stat es, st;
		snprintf(en, sizeof(en), "e%d", (int)(rnd(&r) % ENTRIES));
		snprintf(tn, sizeof(tn), "w%d_%d", (int)(rnd(&r) % WRITERS), (int)(rnd(&r) % 4));
		if (tc_lookup(S, TC_ROOT_ID, en, &es) || tc_lookup(S, es.id, tn, &st))
			continue;
		tc_file *f;
		if (tc_open(S, st.id, 0, &f))
			continue;
		struct tc_stat fs;
		tc_file_stat(S, f, &fs);
		ssize_t got = tc_file_pread(S, f, buf, 600 * 1024, 0);
		atomic_fetch_add(&reads, 1);
		if (got == (ssize_t)fs.size && fs.size > 0) {
			if (check_bytes(buf, (size_t)got))
				atomic_fetch_add(&verified, 1);
			else
				atomic_fetch_add(&mismatches, 1);
		} else if (got != (ssize_t)fs.size) {
			atomic_fetch_add(&mismatches, 1);
		}
		tc_file_close(S, f);
	}
	free(buf);
	return NULL;
}

static void *renamer(void *arg)
{
	uint64_t r = 99;
	char a[16], b[16];
	(void)arg;
	while (!atomic_load(&stop)) {
		struct tc_stat ea, eb;
		snprintf(a, sizeof(a), "e%d", (int)(rnd(&r) % ENTRIES));
		snprintf(b, sizeof(b), "e%d", (int)(rnd(&r) % ENTRIES));
		if (tc_lookup(S, TC_ROOT_ID, a, &ea) || tc_lookup(S, TC_ROOT_ID, b, &eb))
			continue;
		char t1[16], t2[16];
		int w = (int)(rnd(&r) % WRITERS); /* keeps the writer's prefix */
		snprintf(t1, sizeof(t1), "w%d_%d", w, (int)(rnd(&r) % 4));
		snprintf(t2, sizeof(t2), "w%d_%d", w, (int)(rnd(&r) % 4));
		int rc = rnd(&r) % 4 ? tc_rename(S, ea.id, t1, eb.id, t2, 0)
				     : tc_unlink(S, ea.id, t1);
		if (rc == 0)
			atomic_fetch_add(&renames, 1);
		else if (rc != -ENOENT)
			atomic_fetch_add(&errors, 1);
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL); /* pacing, not synchronisation */
	}
	return NULL;
}

static void t_stress(void)
{
	char *d = tmpdir_new();
	struct tc_options o = { .capacity = 8ull << 20 };
	REQUIRE(tc_store_open(d, &o, &S) == 0);
	const char *env = getenv("TC_STRESS_SECONDS");
	int secs = env ? atoi(env) : 3;
	pthread_t w[WRITERS], rd[READERS], rn;
	for (int i = 0; i < WRITERS; i++)
		pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)i);
	for (int i = 0; i < READERS; i++)
		pthread_create(&rd[i], NULL, reader, (void *)(uintptr_t)i);
	pthread_create(&rn, NULL, renamer, NULL);
	struct timespec ts = { secs, 0 };
	nanosleep(&ts, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	for (int i = 0; i < READERS; i++)
		pthread_join(rd[i], NULL);
	pthread_join(rn, NULL);
	struct tc_stats st;
	tc_store_stats(S, &st);
	printf("# %d s: %ld commits, %ld reads (%ld verified), %ld renames/unlinks, "
	       "%llu evictions, %ld mismatches, %ld errors\n", secs,
	       atomic_load(&writes), atomic_load(&reads), atomic_load(&verified),
	       atomic_load(&renames), (unsigned long long)st.evictions,
	       atomic_load(&mismatches), atomic_load(&errors));
	CHECK(atomic_load(&mismatches) == 0);
	CHECK(atomic_load(&errors) == 0);
	CHECK(atomic_load(&writes) > 0 && atomic_load(&verified) > 0);
	CHECK(st.evictions > 0);
	CHECK(st.used <= st.capacity);
	uint64_t used = st.used, tensors = st.tensors;
	CHECK(tc_store_close(S) == 0);
	/* everything still there after reopen, and every byte right */
	REQUIRE(tc_store_open(d, NULL, &S) == 0);
	tc_store_stats(S, &st);
	CHECK(st.tensors == tensors && st.used == used);
	uint64_t *ents;
	size_t ne;
	int bad = 0, checked = 0;
	REQUIRE(tc_list(S, TC_ROOT_ID, &ents, &ne) == 0);
	uint8_t *buf = malloc(600 * 1024);
	for (size_t i = 0; i < ne; i++) {
		uint64_t *ts2;
		size_t nt;
		if (tc_list(S, ents[i], &ts2, &nt))
			continue;
		for (size_t k = 0; k < nt; k++) {
			tc_file *f;
			struct tc_stat fs;
			if (tc_open(S, ts2[k], 0, &f)) {
				bad++;
				continue;
			}
			tc_file_stat(S, f, &fs);
			ssize_t got = tc_file_pread(S, f, buf, 600 * 1024, 0);
			if (got != (ssize_t)fs.size || !check_bytes(buf, (size_t)got))
				bad++;
			checked++;
			tc_file_close(S, f);
		}
		free(ts2);
	}
	free(ents);
	free(buf);
	printf("# after reopen: %d tensors checked, %d bad\n", checked, bad);
	CHECK(bad == 0 && (uint64_t)checked == tensors);
	tc_store_close(S);
	tmpdir_free(d);
}

int main(void)
{
	RUN(t_stress);
	return check_done();
}
