/*
 * bench_fs.c - tcache-bench-fs: the timed steps of tools/bench that a shell
 * loop would distort (one process, no fork per file).  Each subcommand does
 * one step on any directory (the mount or a plain one) and prints one line
 * "key=value ..." that tools/bench parses.
 *
 *   gen FILE SIZE             write SIZE pseudo-random bytes (not timed)
 *   read FILE [BS]            read FILE to its end with BS-byte read(2)s
 *                             (default 1 MiB): bytes=, s=
 *   create DIR N SIZE PFX     N entries DIR/PFX<i>, each with two SIZE-byte
 *                             tensors "a" and "b" (mkdir, open O_CREAT,
 *                             write, close ×2): files=, s=
 *   readsmall DIR N SIZE PFX  open, read to EOF, close each of those 2N
 *                             tensors, checking each is SIZE bytes and holds
 *                             the pattern create wrote: files=, s=
 *   space STOREDIR CAP        (libtcache, no FUSE) fill a store of capacity
 *                             CAP with entries of mixed sizes (3 KiB to
 *                             32 MiB, log-uniform) until the first eviction;
 *                             then again on a fresh store after removing a
 *                             third of the entries at half full (holes):
 *                             fill=, holes= (live bytes / capacity when
 *                             the first eviction happened)
 *   put DIR N SIZE PFX SYNC   N tensors DIR/PFX<i> of SIZE bytes each
 *                             (open O_CREAT|O_TRUNC, write, with SYNC 1
 *                             fsync, close): run again, it rewrites them
 *                             in place: files=, s=
 *   use DIR NAME              list DIR (readdir), stat every entry, open
 *                             and read each entry's tensor NAME, close:
 *                             entries=, s= (what a user's first pass over
 *                             a store does to the daemon's memory)
 *   libopen STOREDIR N        (libtcache, no FUSE) the library's share of
 *                             a small read: N entries of one 3 KiB tensor;
 *                             after a reopen (verify on), tc_open + read +
 *                             tc_file_close of each, twice: first_us=,
 *                             second_us= (per tensor), journal_B= (journal
 *                             growth per open)
 *
 * Exit status 0 on success, 1 on any failure (with a message on stderr).
 * Time is CLOCK_MONOTONIC around the work only (no setup, no teardown).
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tcache.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "tcache-bench-fs: %s %s: %s\n", what, path ? path : "",
		strerror(errno));
	return 1;
}

/* The byte pattern of small tensor @i, side @side: cheap, and differs per
 * file so that a mixed-up read is noticed. */
static void pattern(unsigned char *buf, size_t n, unsigned long i, int side)
{
	for (size_t k = 0; k < n; k++)
		buf[k] = (unsigned char)(i * 131u + (unsigned)side * 7u + k);
}

static int cmd_read(int argc, char **argv)
{
	if (argc < 1)
		return 2;
	size_t bs = argc > 1 ? strtoull(argv[1], NULL, 10) : 1u << 20;
	if (!bs)
		return 2;
	char *buf = aligned_alloc(4096, (bs + 4095) / 4096 * 4096);
	if (!buf)
		return fail("malloc", NULL);
	double t0 = now_s();
	int fd = open(argv[0], O_RDONLY);
	if (fd < 0)
		return fail("open", argv[0]);
	uint64_t total = 0;
	for (;;) {
		ssize_t r = read(fd, buf, bs);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail("read", argv[0]);
		if (r == 0)
			break;
		total += (uint64_t)r;
	}
	close(fd);
	double s = now_s() - t0;
	printf("bytes=%llu s=%.6f\n", (unsigned long long)total, s);
	free(buf);
	return 0;
}

static int cmd_gen(int argc, char **argv)
{
	uint64_t size, x = 0x2545f4914f6cdd1dull;
	if (argc < 2 || tc_parse_size(argv[1], &size) != 0)
		return 2;
	uint64_t *buf = malloc(1u << 20);
	int fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (!buf || fd < 0)
		return fail("create", argv[0]);
	for (uint64_t done = 0; done < size;) {
		for (size_t k = 0; k < (1u << 20) / 8; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[k] = x;
		}
		size_t n = size - done < (1u << 20) ? size - done : 1u << 20;
		if (write(fd, buf, n) != (ssize_t)n)
			return fail("write", argv[0]);
		done += n;
	}
	if (close(fd) != 0)
		return fail("close", argv[0]);
	free(buf);
	return 0;
}

static int write_file_sync(const char *path, const unsigned char *buf,
			   size_t n, int sync)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fail("create", path);
	if (write(fd, buf, n) != (ssize_t)n)
		return fail("write", path);
	if (sync && fsync(fd) != 0)
		return fail("fsync", path);
	if (close(fd) != 0)
		return fail("close", path);
	return 0;
}

static int write_file(const char *path, const unsigned char *buf, size_t n)
{
	return write_file_sync(path, buf, n, 0);
}

static int cmd_put(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	const char *dir = argv[0], *pfx = argv[3];
	unsigned long n = strtoul(argv[1], NULL, 10);
	size_t size = strtoull(argv[2], NULL, 10);
	int sync = atoi(argv[4]);
	unsigned char *buf = malloc(size ? size : 1);
	char path[4096];
	if (!buf)
		return fail("malloc", NULL);
	double t0 = now_s();
	for (unsigned long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s%06lu", dir, pfx, i);
		pattern(buf, size, i, sync);
		if (write_file_sync(path, buf, size, sync))
			return 1;
	}
	printf("files=%lu s=%.6f\n", n, now_s() - t0);
	free(buf);
	return 0;
}

static int cmd_create(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	const char *dir = argv[0], *pfx = argv[3];
	unsigned long n = strtoul(argv[1], NULL, 10);
	size_t size = strtoull(argv[2], NULL, 10);
	unsigned char *buf = malloc(size ? size : 1);
	char path[4096];
	if (!buf)
		return fail("malloc", NULL);
	double t0 = now_s();
	for (unsigned long i = 0; i < n; i++) {
		int len = snprintf(path, sizeof(path), "%s/%s%06lu", dir, pfx, i);
		if (mkdir(path, 0755) != 0)
			return fail("mkdir", path);
		for (int side = 0; side < 2; side++) {
			snprintf(path + len, sizeof(path) - (size_t)len, "/%c",
				 side ? 'b' : 'a');
			pattern(buf, size, i, side);
			if (write_file(path, buf, size))
				return 1;
		}
	}
	double s = now_s() - t0;
	printf("files=%lu s=%.6f\n", 2 * n, s);
	free(buf);
	return 0;
}

static int cmd_readsmall(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	const char *dir = argv[0], *pfx = argv[3];
	unsigned long n = strtoul(argv[1], NULL, 10);
	size_t size = strtoull(argv[2], NULL, 10);
	size_t cap = size + 4096;
	unsigned char *buf = malloc(cap), *want = malloc(size ? size : 1);
	char path[4096];
	if (!buf || !want)
		return fail("malloc", NULL);
	double t0 = now_s();
	unsigned long bad = 0;
	for (unsigned long i = 0; i < n; i++) {
		for (int side = 0; side < 2; side++) {
			snprintf(path, sizeof(path), "%s/%s%06lu/%c", dir, pfx,
				 i, side ? 'b' : 'a');
			int fd = open(path, O_RDONLY);
			if (fd < 0)
				return fail("open", path);
			size_t got = 0;
			for (;;) {
				ssize_t r = read(fd, buf + got, cap - got);
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0)
					return fail("read", path);
				if (r == 0 || (got += (size_t)r) == cap)
					break;
			}
			close(fd);
			/* checked outside the timed part would need a second
			 * pass; memcmp of 3 KiB costs ~0.1 us, noise here */
			pattern(want, size, i, side);
			if (got != size || memcmp(buf, want, size) != 0)
				bad++;
		}
	}
	double s = now_s() - t0;
	if (bad) {
		fprintf(stderr, "tcache-bench-fs: %lu files read back wrong\n",
			bad);
		return 1;
	}
	printf("files=%lu s=%.6f\n", 2 * n, s);
	free(buf);
	free(want);
	return 0;
}

/* ---- space: live bytes / capacity at the first eviction ----------------- */

static uint64_t rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* 3 KiB .. 32 MiB, log-uniform, not block-aligned. */
static size_t mixed_size(uint64_t *rng)
{
	double lo = 3072;
	/* lo * 2^(u * log2(32 MiB / lo)), 2^frac by a cubic (no libm) */
	double u = (double)(rng_next(rng) % 1000000) / 1e6;
	double x = lo, steps = 13.415;
	double e = u * steps;
	while (e >= 1) {
		x *= 2;
		e -= 1;
	}
	x *= 1 + e * 0.6931 + e * e * 0.2402 + e * e * e * 0.0555;
	return (size_t)x;
}

/* Put one entry holding one tensor of @size bytes, written in 1 MiB
 * pieces.  *@at_evict is set (once) to the live bytes at the moment the
 * store first evicted: committed bytes plus those of this put so far. */
static int space_put(tc_store *s, uint64_t i, size_t size,
		     const unsigned char *chunk, double *at_evict,
		     uint64_t *entry_id)
{
	char name[32];
	struct tc_stat st, ts;
	struct tc_stats before, now;
	tc_file *f;
	snprintf(name, sizeof(name), "e%08llu", (unsigned long long)i);
	int r = tc_mkdir(s, TC_ROOT_ID, name, 0755, 0, 0, &st);
	if (!r)
		r = tc_create(s, st.id, "t", 0644, 0, 0, &f, &ts);
	if (r)
		return r;
	*entry_id = st.id;
	tc_store_stats(s, &before);
	size_t done = 0;
	while (done < size && !r) {
		size_t n = size - done < (1u << 20) ? size - done : 1u << 20;
		ssize_t w = tc_file_write(s, f, chunk, n, done);
		if (w < 0) {
			r = (int)w;
			break;
		}
		tc_store_stats(s, &now);
		if (now.evictions && *at_evict < 0) {
			/* the bytes of this put before the write that
			 * evicted, plus what was live then */
			*at_evict = (double)(before.live_bytes + done);
		}
		done += n;
	}
	if (!r)
		r = tc_file_commit(s, f);
	tc_file_close(s, f);
	return r;
}

static int rm_one(const char *p, const struct stat *st, int f, struct FTW *w)
{
	(void)st; (void)f; (void)w;
	return remove(p);
}

/* One fill of a fresh store in @dir; with @holes, a third of the entries
 * are removed when the store is half full.  Returns the ratio or < 0. */
static double space_run(const char *dir, uint64_t cap, int holes)
{
	struct tc_options o = { .capacity = cap };
	tc_store *s;
	int r = tc_store_open(dir, &o, &s);
	if (r) {
		fprintf(stderr, "tcache-bench-fs: store %s: %s\n", dir,
			strerror(-r));
		return -1;
	}
	unsigned char *chunk = calloc(1, 1u << 20);
	uint64_t rng = holes ? 0x9e3779b97f4a7c15ull : 88172645463325252ull;
	uint64_t *ids = NULL, nids = 0;
	double at = -1;
	int holed = !holes;
	for (uint64_t i = 0; at < 0 && chunk; i++) {
		uint64_t id;
		r = space_put(s, i, mixed_size(&rng), chunk, &at, &id);
		if (r)
			break;
		uint64_t *nx = realloc(ids, (nids + 1) * sizeof(*ids));
		if (!nx)
			break;
		ids = nx;
		ids[nids++] = id;
		struct tc_stats st;
		tc_store_stats(s, &st);
		if (!holed && st.live_bytes * 2 >= cap) {
			holed = 1;
			for (uint64_t k = 0; k < nids; k++) {
				if (rng_next(&rng) % 3)
					continue;
				struct tc_stat es;
				if (tc_getattr(s, ids[k], &es) == 0) {
					tc_unlink(s, ids[k], "t");
					tc_rmdir(s, TC_ROOT_ID, es.name);
				}
			}
		}
	}
	free(ids);
	free(chunk);
	tc_store_close(s);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (r) {
		fprintf(stderr, "tcache-bench-fs: space: %s\n", strerror(-r));
		return -1;
	}
	return at / (double)cap;
}

static int cmd_space(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	uint64_t cap;
	if (tc_parse_size(argv[1], &cap) != 0)
		return 2;
	char d1[4096], d2[4096];
	snprintf(d1, sizeof(d1), "%s/fill", argv[0]);
	snprintf(d2, sizeof(d2), "%s/holes", argv[0]);
	double fill = space_run(d1, cap, 0);
	double holes = fill < 0 ? -1 : space_run(d2, cap, 1);
	if (fill < 0 || holes < 0)
		return 1;
	printf("fill=%.4f holes=%.4f\n", fill, holes);
	return 0;
}

static int cmd_libopen(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	unsigned long n = strtoul(argv[1], NULL, 10);
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/libopen", argv[0]);
	struct tc_options o = { .capacity = (uint64_t)(n + 16) * 8192 };
	unsigned char buf[3072];
	uint64_t *ids = calloc(n ? n : 1, sizeof(*ids));
	tc_store *s;
	int r = tc_store_open(dir, &o, &s);
	for (unsigned long i = 0; !r && i < n; i++) {
		char name[32];
		struct tc_stat st, ts;
		tc_file *f;
		snprintf(name, sizeof(name), "e%08lu", i);
		pattern(buf, sizeof(buf), i, 0);
		r = tc_mkdir(s, TC_ROOT_ID, name, 0755, 0, 0, &st);
		if (!r)
			r = tc_create(s, st.id, "a", 0644, 0, 0, &f, &ts);
		if (r)
			break;
		ids[i] = ts.id;
		if (tc_file_write(s, f, buf, sizeof(buf), 0) != sizeof(buf))
			r = -EIO;
		if (!r)
			r = tc_file_commit(s, f);
		tc_file_close(s, f);
	}
	if (!r)
		r = tc_store_close(s);
	if (!r)
		r = tc_store_open(dir, NULL, &s);
	double us[2] = { 0, 0 };
	uint64_t jb = 0;
	for (int pass = 0; pass < 2 && !r; pass++) {
		struct tc_stats a, b;
		tc_store_stats(s, &a);
		double t0 = now_s();
		for (unsigned long i = 0; i < n && !r; i++) {
			tc_file *f;
			r = tc_open(s, ids[i], 0, &f);
			if (r)
				break;
			if (tc_file_pread(s, f, buf, sizeof(buf), 0) != sizeof(buf))
				r = -EIO;
			tc_file_close(s, f);
		}
		us[pass] = (now_s() - t0) / (double)n * 1e6;
		tc_store_stats(s, &b);
		jb += b.journal_bytes - a.journal_bytes;
	}
	if (!r)
		tc_store_close(s);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(ids);
	if (r) {
		fprintf(stderr, "tcache-bench-fs: libopen: %s\n", strerror(-r));
		return 1;
	}
	printf("first_us=%.2f second_us=%.2f journal_B=%.1f\n", us[0], us[1],
	       (double)jb / (2.0 * (double)n));
	return 0;
}

static int cmd_use(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *dir = argv[0], *tensor = argv[1];
	char path[4096], buf[65536];
	unsigned long n = 0;
	double t0 = now_s();
	DIR *d = opendir(dir);
	if (!d)
		return fail("opendir", dir);
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) < 0)
			return fail("stat", path);
		snprintf(path, sizeof(path), "%s/%s/%s", dir, de->d_name, tensor);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return fail("open", path);
		ssize_t r;
		while ((r = read(fd, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR))
			;
		if (r < 0)
			return fail("read", path);
		close(fd);
		n++;
	}
	if (errno)
		return fail("readdir", dir);
	closedir(d);
	printf("entries=%lu s=%.6f\n", n, now_s() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	int r = 2;
	if (argc >= 2 && !strcmp(argv[1], "gen"))
		r = cmd_gen(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "read"))
		r = cmd_read(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "create"))
		r = cmd_create(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "readsmall"))
		r = cmd_readsmall(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "libopen"))
		r = cmd_libopen(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "space"))
		r = cmd_space(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "use"))
		r = cmd_use(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "put"))
		r = cmd_put(argc - 2, argv + 2);
	if (r == 2)
		fprintf(stderr, "usage: tcache-bench-fs gen FILE SIZE | read FILE [BS] | create "
				"DIR N SIZE PFX | readsmall DIR N SIZE PFX | "
				"space STOREDIR CAP | libopen STOREDIR N | use DIR NAME | "
				"put DIR N SIZE PFX SYNC\n");
	return r;
}
