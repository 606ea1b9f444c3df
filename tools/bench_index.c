/*
 * bench_index.c - tcache-bench-index: the cost of a put and of a lookup as
 * the store grows, straight on libtcache (no FUSE).
 *
 * A put is what caching one item costs: mkdir an entry, create one small
 * tensor in it, write it, commit (journal records included).  The last
 * 10,000 puts before each size are timed in 10 slices of 1,000; the line
 * shows the median slice (and the mean, which includes any checkpoint).
 * put_ms(max) is the slowest single put of all made so far: a stall under
 * the store's lock (a table rehash, a checkpoint) shows there.
 * pool/bytes is the pool space the store uses (tc_stats.used) per byte
 * of tensor data (a tensor of at most 2 KiB shares a block).  A lookup
 * is tc_lookup of a random existing entry followed by tc_lookup of its
 * tensor.
 *
 * Usage: tcache-bench-index [--dir DIR] [--max N] [--tensor-bytes B] [--keep]
 *        tcache-bench-index --open STORE [--runs N]
 *        tcache-bench-index --verify MIB [--dir DIR] [--runs N]
 *        tcache-bench-index --chain N [--plain] [--dir DIR]
 * Prints one line per size (10k, 100k, 1M by default up to --max).  With
 * --keep the store is left in place (its path printed as "store: DIR") for
 * tools/bench to mount.  --open times only tc_store_open of an existing
 * store (N runs, then the median) and the memory the open store holds per
 * entry (rss of the first run only: later runs reuse freed heap; "heap"
 * is malloc's count of bytes in use, for every run); each run's close
 * writes a checkpoint, timed too.  "cpu" is the open's user + system
 * time, steadier than wall time on a busy machine.  --verify writes one
 * tensor of MIB MiB, then N times reopens the store and times the first
 * open for reading (which hashes the whole tensor to verify it).
 * --chain: see chain_only(): prefix-aware eviction's cost at N entries
 * (at least 20,000).  A fresh process per run is what a
 * mount pays (the first run also faults in new heap pages).
 */
#include <errno.h>
#include <ftw.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "tcache.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int rm_one(const char *p, const struct stat *st, int f, struct FTW *w)
{
	(void)st; (void)f; (void)w;
	return remove(p);
}

/* A file @name of @n bytes in directory @dir, committed, with parent
 * link @link (NULL: none; set before the commit, so one record holds
 * both); its id in *@id. */
static int put_file(tc_store *s, uint64_t dir, const char *name,
		    const char *link, const void *buf, size_t n, uint64_t *id)
{
	struct tc_stat st;
	tc_file *f;
	int r = tc_create(s, dir, name, 0644, 0, 0, &f, &st);
	if (r)
		return r;
	if (link)
		r = tc_link_set(s, st.id, link, 0);
	if (!r && n && tc_file_write(s, f, buf, n, 0) != (ssize_t)n)
		r = -EIO;
	if (!r)
		r = tc_file_commit(s, f);
	tc_file_close(s, f);
	*id = st.id;
	return r;
}

/*
 * --chain N: prefix-aware eviction at N entries.  N root files of one
 * block each, page i's parent link naming page i-1 (with --plain: no
 * links), fill a store of exactly that capacity and are read in order,
 * so page 0 is the least recent; then 10,000 more files are put, each
 * needing room: every eviction takes the chain's last page (its end is
 * the only leaf), where plain LRU would take page 0.  Prints the mean
 * cost of those puts and checks that the pages left are a prefix.
 */
static int chain_only(const char *base, uint64_t n, int plain)
{
	char dir[4096], name[32], prev[32];
	const uint64_t more = 10000;
	uint8_t buf[TC_BLOCK] = { 1 };
	uint64_t id;
	tc_store *s;
	int r;

	snprintf(dir, sizeof(dir), "%s/tcache-bench-XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	struct tc_options o = { .capacity = n * TC_BLOCK };
	if ((r = tc_store_open(dir, &o, &s)))
		goto out;
	double t0 = now_s();
	for (uint64_t i = 0; i < n && !r; i++) {
		snprintf(name, sizeof(name), "p%llu", (unsigned long long)i);
		r = put_file(s, TC_ROOT_ID, name, i && !plain ? prev : NULL,
			     buf, sizeof(buf), &id);
		memcpy(prev, name, sizeof(name));
	}
	for (uint64_t i = 0; i < n && !r; i++) {
		struct tc_stat st;
		tc_file *f;
		snprintf(name, sizeof(name), "p%llu", (unsigned long long)i);
		if (!(r = tc_lookup(s, TC_ROOT_ID, name, &st)) &&
		    !(r = tc_open(s, st.id, 0, &f)))
			tc_file_close(s, f);
	}
	double tbuild = now_s() - t0;
	t0 = now_s();
	for (uint64_t j = 0; j < more && !r; j++) {
		snprintf(name, sizeof(name), "u%llu", (unsigned long long)j);
		r = put_file(s, TC_ROOT_ID, name, NULL, buf, sizeof(buf), &id);
	}
	double tput = now_s() - t0;
	if (r)
		goto out;
	/* what is left of the chain: a prefix (linked) or a suffix (plain) */
	uint64_t left = 0, breaks = 0;
	int was = -1;
	for (uint64_t i = 0; i < n; i++) {
		struct tc_stat st;
		snprintf(name, sizeof(name), "p%llu", (unsigned long long)i);
		int here = tc_lookup(s, TC_ROOT_ID, name, &st) == 0;
		left += (uint64_t)here;
		breaks += was >= 0 && here != was;
		was = here;
	}
	int prefix = breaks == 0 || (breaks == 1 && left &&
				     tc_lookup(s, TC_ROOT_ID, "p0", &(struct tc_stat){ 0 }) == 0);
	printf("chain %-8llu %s: evicting put %.2f us (mean of %llu), "
	       "%llu pages left, %s; built and read in %.1f s\n",
	       (unsigned long long)n, plain ? "plain lru" : "linked   ",
	       tput / (double)more * 1e6, (unsigned long long)more,
	       (unsigned long long)left,
	       prefix ? "a prefix" : "not a prefix", tbuild);
	tc_store_close(s);
out:
	if (r)
		fprintf(stderr, "chain: %s\n", strerror(-r));
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return r ? 1 : 0;
}

static int put(tc_store *s, uint64_t i, const void *buf, size_t n)
{
	char name[32];
	struct tc_stat st;
	uint64_t id;

	snprintf(name, sizeof(name), "k%016llx", (unsigned long long)i);
	int r = tc_mkdir(s, TC_ROOT_ID, name, 0755, 0, 0, &st);
	return r ? r : put_file(s, st.id, "t", NULL, buf, n, &id);
}

/* put(), raising *@worst to its time if it took longer. */
static int timed_put(tc_store *s, uint64_t i, const void *buf, size_t n,
		     double *worst)
{
	double t0 = now_s();
	int r = put(s, i, buf, n);
	double dt = now_s() - t0;
	if (dt > *worst)
		*worst = dt;
	return r;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			v = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int open_only(const char *dir, int runs)
{
	double t[64], c[64];
	if (runs < 1 || runs > 64)
		runs = 3;
	for (int i = 0; i < runs; i++) {
		struct tc_stats st;
		tc_store *s;
		long rss0 = rss_kib();
		struct mallinfo2 m0 = mallinfo2();
		double c0 = cpu_s(), t0 = now_s();
		int r = tc_store_open(dir, NULL, &s);
		if (r) {
			fprintf(stderr, "tc_store_open: %s\n", strerror(-r));
			return 1;
		}
		t[i] = now_s() - t0;
		double cpu = cpu_s() - c0;
		long rss = rss_kib() - rss0;
		struct mallinfo2 m1 = mallinfo2();
		double heap = (double)(m1.uordblks + m1.hblkhd) -
			      (double)(m0.uordblks + m0.hblkhd);
		tc_store_stats(s, &st);
		t0 = now_s();
		tc_store_close(s);
		c[i] = now_s() - t0;
		double ne = st.entries ? (double)st.entries : 1.0;
		printf("open %.3f s (cpu %.3f)  close %.3f s  entries %llu  "
		       "heap_B/entry %.0f", t[i], cpu, c[i],
		       (unsigned long long)st.entries, heap / ne);
		if (i == 0)
			printf("  rss_B/entry %.0f", (double)rss * 1024.0 / ne);
		printf("\n");
	}
	qsort(t, (size_t)runs, sizeof(double), cmp_double);
	qsort(c, (size_t)runs, sizeof(double), cmp_double);
	printf("median of %d: open %.3f s  close %.3f s (open range %.3f..%.3f)\n",
	       runs, t[runs / 2], c[runs / 2], t[0], t[runs - 1]);
	return 0;
}

static int verify_only(const char *base, uint64_t mib, int runs)
{
	char dir[4096];
	struct tc_stat st, ts;
	tc_store *s;
	tc_file *f;
	double t[64];
	size_t chunk = 1 << 20;
	int r;

	if (runs < 1 || runs > 64)
		runs = 3;
	snprintf(dir, sizeof(dir), "%s/tcache-bench-XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	struct tc_options o = { .capacity = (mib + 64) << 20 };
	uint8_t *buf = malloc(chunk);
	for (size_t i = 0; i < chunk; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	r = tc_store_open(dir, &o, &s);
	if (!r)
		r = tc_mkdir(s, TC_ROOT_ID, "e", 0755, 0, 0, &st);
	if (!r)
		r = tc_create(s, st.id, "big", 0644, 0, 0, &f, &ts);
	for (uint64_t at = 0; !r && at < mib << 20; at += chunk)
		if (tc_file_write(s, f, buf, chunk, at) != (ssize_t)chunk)
			r = -EIO;
	if (!r) {
		r = tc_file_commit(s, f);
		tc_file_close(s, f);
	}
	if (!r)
		r = tc_store_close(s);
	for (int i = 0; !r && i < runs; i++) {
		r = tc_store_open(dir, NULL, &s);
		if (r)
			break;
		double t0 = now_s();
		r = tc_open(s, ts.id, 0, &f);
		t[i] = now_s() - t0;
		if (!r)
			tc_file_close(s, f);
		tc_store_close(s);
		printf("first open of %llu MiB: %.3f s\n", (unsigned long long)mib,
		       t[i]);
	}
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(buf);
	if (r) {
		fprintf(stderr, "verify: %s\n", strerror(-r));
		return 1;
	}
	qsort(t, (size_t)runs, sizeof(double), cmp_double);
	printf("median of %d: %.3f s (%.3f..%.3f)\n", runs, t[runs / 2], t[0],
	       t[runs - 1]);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t verify_mib = 0, chain = 0;
	int plain = 0;
	const char *open_dir = NULL;
	int runs = 3;
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	uint64_t max = 1000000, tb = 64;
	int keep = 0;
	char dir[4096];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			base = argv[++i];
		else if (!strcmp(argv[i], "--max") && i + 1 < argc)
			max = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--tensor-bytes") && i + 1 < argc)
			tb = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--keep"))
			keep = 1;
		else if (!strcmp(argv[i], "--open") && i + 1 < argc)
			open_dir = argv[++i];
		else if (!strcmp(argv[i], "--verify") && i + 1 < argc)
			verify_mib = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--chain") && i + 1 < argc)
			chain = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--plain"))
			plain = 1;
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--dir DIR] [--max N] "
					"[--tensor-bytes B] [--keep]\n"
					"       %s --open STORE [--runs N]\n"
					"       %s --verify MIB [--dir DIR] [--runs N]\n"
					"       %s --chain N [--plain] [--dir DIR]\n",
				argv[0], argv[0], argv[0], argv[0]);
			return strcmp(argv[i], "--help") ? 2 : 0;
		}
	}
	if (open_dir)
		return open_only(open_dir, runs);
	if (verify_mib)
		return verify_only(base, verify_mib, runs);
	if (chain)
		return chain_only(base, chain < 20000 ? 20000 : chain, plain);
	if (max < 10000 || tb > 1 << 20) {
		fprintf(stderr, "%s: --max must be >= 10000, --tensor-bytes <= 1 MiB\n",
			argv[0]);
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s/tcache-bench-XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	uint64_t per = tb ? (tb + TC_BLOCK - 1) / TC_BLOCK * TC_BLOCK : 0;
	struct tc_options o = { .capacity = (max + 1) * per + (64ull << 20) };
	tc_store *s;
	int r = tc_store_open(dir, &o, &s);
	if (r) {
		fprintf(stderr, "tc_store_open: %s\n", strerror(-r));
		return 1;
	}
	void *buf = calloc(1, tb ? tb : 1);
	long rss0 = rss_kib();
	const uint64_t window = 10000;
	uint64_t marks[] = { 10000, 100000, 1000000, 10000000 };
	printf("%-10s %12s %12s %12s %14s %12s %12s\n", "entries", "put_us(med)",
	       "put_us(mean)", "lookup_us", "rss_B/entry", "put_ms(max)",
	       "pool/bytes");
	uint64_t done = 0;
	double put10k = 0, worst = 0;
	for (size_t m = 0; m < sizeof(marks) / sizeof(marks[0]) && marks[m] <= max; m++) {
		/* fill to mark - window, then time the last window of puts */
		for (; done < marks[m] - window; done++)
			if ((r = timed_put(s, done, buf, tb, &worst)))
				goto fail;
		double slice[10], total = 0;
		for (int k = 0; k < 10; k++) {
			double t0 = now_s();
			for (uint64_t j = 0; j < window / 10; j++, done++)
				if ((r = timed_put(s, done, buf, tb, &worst)))
					goto fail;
			slice[k] = (now_s() - t0) / (double)(window / 10) * 1e6;
			total += slice[k];
		}
		qsort(slice, 10, sizeof(double), cmp_double);
		double put_us = (slice[4] + slice[5]) / 2, mean_us = total / 10;
		uint64_t seed = 88172645463325252ull;
		double t0 = now_s();
		for (uint64_t i = 0; i < window; i++) {
			char name[32];
			struct tc_stat st;
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			snprintf(name, sizeof(name), "k%016llx",
				 (unsigned long long)(seed % done));
			if (tc_lookup(s, TC_ROOT_ID, name, &st) ||
			    tc_lookup(s, st.id, "t", &st)) {
				r = -ENOENT;
				goto fail;
			}
		}
		double lookup_us = (now_s() - t0) / (double)window * 1e6;
		if (m == 0)
			put10k = put_us;
		struct tc_stats ts;
		tc_store_stats(s, &ts);
		printf("%-10llu %12.2f %12.2f %12.3f %14.0f %12.2f %12.2f\n",
		       (unsigned long long)done, put_us, mean_us, lookup_us,
		       (double)(rss_kib() - rss0) * 1024.0 / (double)done,
		       worst * 1e3,
		       tb ? (double)ts.used / ((double)done * (double)tb) : 0.0);
		fflush(stdout);
		if (m > 0)
			printf("  put cost vs 10k: %.2fx\n", put_us / put10k);
	}
	double t0 = now_s();
	tc_store_close(s);
	double tclose = now_s() - t0;
	t0 = now_s();
	r = tc_store_open(dir, NULL, &s);
	if (r)
		goto fail;
	printf("close (checkpoint) %.2f s, reopen with %llu entries %.2f s\n",
	       tclose, (unsigned long long)done, now_s() - t0);
	tc_store_close(s);
	if (keep)
		printf("store: %s\n", dir);
	else
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(buf);
	return 0;
fail:
	fprintf(stderr, "failed after %llu puts: %s\n", (unsigned long long)done,
		strerror(-r));
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 1;
}
