/*
 * mount_stress.c - writers and readers hammering a tcachefs mount whose
 * capacity keeps eviction running (tests/integration/stress.bats).
 *
 *   mount_stress --mnt MNT [--seconds S] [--writers 8] [--readers 8]
 *                [--max-size BYTES] [--seed S] [--inplace]
 *
 * Writers make new entries all the time ("wIeK"), each with 1..4 tensors
 * of content.h's self-describing bytes, published the way rsync does it:
 * written to ".tmpN", closed, renamed to "fN".  They also replace tensors
 * of their earlier entries (temp + rename over) and, with --inplace,
 * rewrite them in place (open O_TRUNC, like cp over an existing file).
 * Readers list the root and an entry, open a random "fN" and read it all
 * (random chunk sizes, sometimes through mmap), and check every byte
 * against the header: a published tensor is complete and exact, whatever
 * eviction, replacement and other readers do meanwhile.  They also read
 * meta.json files.
 *
 * Allowed errors: ENOSPC from a writer's write (nothing can be evicted
 * just then), and ENOENT when the entry concerned was evicted (checked:
 * the entry is gone).  Anything else, any byte that differs, a short or
 * long read: counted and reported; exit 1.  Prints the counts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "content.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

#define MAXT 64
#define RECENT 8
#define CHUNK (256u << 10)

static struct {
	const char *mnt;
	double seconds;
	int nw, nr, inplace;
	uint64_t max_size, seed;
	int rootfd;
	double end;
} C = { .seconds = 20, .nw = 8, .nr = 8, .max_size = 512 << 10 };

static atomic_uint_fast64_t n_files, n_bytes_w, n_enospc, n_enoent_w,
	n_reads, n_bytes_r, n_gone_r, n_meta, n_mismatch, n_unexpected,
	n_entries, n_replaced, n_inplace, n_fstat_enoent;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
	static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
	static int printed;
	va_list ap;
	pthread_mutex_lock(&lk);
	if (printed++ < 50) {
		va_start(ap, fmt);
		printf("ERROR: ");
		vprintf(fmt, ap);
		printf("\n");
		va_end(ap);
	}
	pthread_mutex_unlock(&lk);
}

static void unexpected(const char *what, const char *path, int err)
{
	atomic_fetch_add(&n_unexpected, 1);
	report("%s %s: %s", what, path, strerror(err));
}

/* Is entry @name gone (evicted)?  Only then is an ENOENT allowed.  An
 * open asks the daemon; a stat could be answered from a dentry whose
 * eviction notice is still on its way. */
static int entry_gone(const char *name)
{
	int fd = openat(C.rootfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == ENOENT;
}

static void entry_of(const char *path, char *out, size_t n)
{
	size_t len = strcspn(path, "/");
	if (len >= n)
		len = n - 1;
	memcpy(out, path, len);
	out[len] = 0;
}

/* An error of a writer's op on @path: allowed or not. */
static void writer_err(const char *what, const char *path, int err)
{
	char e[256];
	entry_of(path, e, sizeof e);
	if (err == ENOENT && entry_gone(e)) {
		atomic_fetch_add(&n_enoent_w, 1);
		return;
	}
	unexpected(what, path, err);
}

/* ==== writers ============================================================ */

struct wstate {
	int id;
	struct rng r;
	uint64_t k;                 /* entries made */
	char recent[RECENT][32];    /* our latest entries */
	int nrecent;
	unsigned char *buf;
};

/* Write file (seed, len) at @path (O_TRUNC).  0, or -1 (reported or
 * allowed); *@enospc set when a write hit ENOSPC. */
static int put_file(struct wstate *w, const char *path, uint64_t seed,
		    uint64_t len, int *enospc)
{
	int fd = openat(C.rootfd, path, O_WRONLY | O_CREAT | O_TRUNC |
			O_CLOEXEC, 0644);
	*enospc = 0;
	if (fd < 0) {
		writer_err("create", path, errno);
		return -1;
	}
	for (uint64_t off = 0; off < len;) {
		size_t n = 4096 + (size_t)rng_below(&w->r, CHUNK - 4096);
		if (n > len - off)
			n = (size_t)(len - off);
		content_fill(seed, len, off, w->buf, n);
		ssize_t r = pwrite(fd, w->buf, n, (off_t)off);
		if (r < 0) {
			if (errno == ENOSPC) {
				atomic_fetch_add(&n_enospc, 1);
				*enospc = 1;
			} else {
				unexpected("write", path, errno);
			}
			close(fd);
			return -1;
		}
		off += (uint64_t)r;
		atomic_fetch_add(&n_bytes_w, (uint64_t)r);
	}
	if (close(fd) != 0) {
		unexpected("close", path, errno);
		return -1;
	}
	atomic_fetch_add(&n_files, 1);
	return 0;
}

static uint64_t wsize(struct wstate *w)
{
	uint64_t x = rng_below(&w->r, 10);
	uint64_t hi = x < 6 ? 16384 : x < 9 ? 131072 : C.max_size;
	return 64 + rng_below(&w->r, hi - 64);
}

/* Publish (seed, len) as @ent/fN through ".tmpN" and a rename. */
static void publish(struct wstate *w, const char *ent, int n)
{
	char tmp[96], dst[96];
	int enospc;
	uint64_t seed = ((uint64_t)w->id << 48) ^ rng_next(&w->r) >> 16;
	snprintf(tmp, sizeof tmp, "%s/.tmp%d", ent, n);
	snprintf(dst, sizeof dst, "%s/f%d", ent, n);
	if (put_file(w, tmp, seed, wsize(w), &enospc) != 0) {
		if (enospc && unlinkat(C.rootfd, tmp, 0) != 0)
			writer_err("unlink", tmp, errno);
		return;
	}
	if (renameat(C.rootfd, tmp, C.rootfd, dst) != 0) {
		writer_err("rename", tmp, errno);
		/* the entry is gone, and the temp file with it */
	}
}

static void writer_step(struct wstate *w)
{
	uint64_t x = rng_below(&w->r, 10);
	if (x < 6 || w->nrecent == 0) {
		/* a new entry */
		char ent[32];
		snprintf(ent, sizeof ent, "w%de%" PRIu64, w->id, w->k++);
		if (mkdirat(C.rootfd, ent, 0755) != 0) {
			unexpected("mkdir", ent, errno);
			return;
		}
		atomic_fetch_add(&n_entries, 1);
		int nf = 1 + (int)rng_below(&w->r, 4);
		for (int i = 0; i < nf; i++)
			publish(w, ent, i);
		memcpy(w->recent[w->nrecent < RECENT ? w->nrecent++
			 : (int)rng_below(&w->r, RECENT)], ent, sizeof ent);
		return;
	}
	const char *ent = w->recent[rng_below(&w->r, (uint64_t)w->nrecent)];
	int n = (int)rng_below(&w->r, 4);
	if (C.inplace && x == 9) {
		/* cp over an existing tensor */
		char dst[96];
		struct stat st;
		int enospc;
		snprintf(dst, sizeof dst, "%s/f%d", ent, n);
		if (fstatat(C.rootfd, dst, &st, 0) != 0)
			return;
		uint64_t seed = ((uint64_t)w->id << 48) ^ rng_next(&w->r) >> 16;
		if (put_file(w, dst, seed, wsize(w), &enospc) == 0)
			atomic_fetch_add(&n_inplace, 1);
		return;
	}
	publish(w, ent, n);
	atomic_fetch_add(&n_replaced, 1);
}

static void *writer_main(void *arg)
{
	struct wstate *w = arg;
	while (now_s() < C.end)
		writer_step(w);
	return NULL;
}

/* ==== readers ============================================================ */

struct rstate {
	int id;
	struct rng r;
	unsigned char *buf;
	size_t cap;
};

/* A random name in directory @dirfd whose name starts with @prefix (""
 * for any but "." and ".."): 0 and @out, or -1. */
static int pick(struct rstate *rs, int dirfd, const char *prefix, char *out,
		size_t n)
{
	/* a descriptor of our own: a dup would share the offset */
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	uint64_t seen = 0;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' ||
		    strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		if (rng_below(&rs->r, ++seen) == 0)
			snprintf(out, n, "%s", de->d_name);
	}
	closedir(d);
	return seen ? 0 : -1;
}

static void check_bytes(const char *path, const unsigned char *buf,
			uint64_t n)
{
	uint64_t seed, len;
	if (content_header(buf, (size_t)n, &seed, &len) != 0) {
		atomic_fetch_add(&n_mismatch, 1);
		report("%s: %" PRIu64 " bytes without a valid header", path, n);
		return;
	}
	if (n != len) {
		atomic_fetch_add(&n_mismatch, 1);
		report("%s: read %" PRIu64 " bytes of a %" PRIu64
		       "-byte tensor", path, n, len);
		return;
	}
	size_t d = content_diff(seed, len, 0, buf, (size_t)n);
	if (d != n) {
		atomic_fetch_add(&n_mismatch, 1);
		report("%s: byte %zu of %" PRIu64 " differs (seed %#" PRIx64
		       ")", path, d, n, seed);
		return;
	}
	atomic_fetch_add(&n_bytes_r, n);
}

static void read_file(struct rstate *rs, const char *path)
{
	char ent[256];
	int fd = openat(C.rootfd, path, O_RDONLY | O_CLOEXEC);
	entry_of(path, ent, sizeof ent);
	if (fd < 0) {
		if (errno == ENOENT) {
			/* evicted, or replaced between listing and open */
			atomic_fetch_add(&n_gone_r, 1);
			return;
		}
		unexpected("open", path, errno);
		return;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		/* an open file's fstat must work whatever happened to its
		 * name (tests/crash/FINDINGS.md, 2) */
		if (errno == ENOENT)
			atomic_fetch_add(&n_fstat_enoent, 1);
		unexpected("fstat", path, errno);
		close(fd);
		return;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (rng_below(&rs->r, 8) == 0 && size > 0) {
		/* through a mapping */
		void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			unexpected("mmap", path, errno);
		} else {
			check_bytes(path, p, size);
			munmap(p, (size_t)size);
		}
		atomic_fetch_add(&n_reads, 1);
		close(fd);
		return;
	}
	uint64_t got = 0;
	for (;;) {
		if (got + CHUNK > rs->cap) {
			size_t ncap = rs->cap * 2;
			unsigned char *nb = realloc(rs->buf, ncap);
			if (!nb)
				abort();
			rs->buf = nb;
			rs->cap = ncap;
		}
		size_t want = 1 + (size_t)rng_below(&rs->r, CHUNK);
		ssize_t r = read(fd, rs->buf + got, want);
		if (r < 0) {
			unexpected("read", path, errno);
			close(fd);
			return;
		}
		if (r == 0)
			break;
		got += (uint64_t)r;
	}
	close(fd);
	atomic_fetch_add(&n_reads, 1);
	if (got != size) {
		atomic_fetch_add(&n_mismatch, 1);
		report("%s: fstat says %" PRIu64 " bytes, read gave %" PRIu64,
		       path, size, got);
		return;
	}
	check_bytes(path, rs->buf, got);
}

static void read_meta(const char *ent)
{
	char path[300];
	snprintf(path, sizeof path, "%s/meta.json", ent);
	int fd = openat(C.rootfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			unexpected("open", path, errno);
		return;
	}
	char buf[65536];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	if (n < 0) {
		unexpected("read", path, errno);
	} else if (n < 2 || buf[0] != '{' || buf[n - 2] != '}') {
		atomic_fetch_add(&n_mismatch, 1);
		report("%s: not a JSON object (%zd bytes)", path, n);
	} else {
		atomic_fetch_add(&n_meta, 1);
	}
	close(fd);
}

static void *reader_main(void *arg)
{
	struct rstate *rs = arg;
	char ent[256], f[256], path[600];
	while (now_s() < C.end) {
		if (pick(rs, C.rootfd, "", ent, sizeof ent) != 0)
			continue;
		if (rng_below(&rs->r, 16) == 0) {
			read_meta(ent);
			continue;
		}
		int dfd = openat(C.rootfd, ent, O_RDONLY | O_DIRECTORY |
				 O_CLOEXEC);
		if (dfd < 0) {
			if (errno != ENOENT)
				unexpected("opendir", ent, errno);
			continue;
		}
		int r = pick(rs, dfd, "f", f, sizeof f);
		close(dfd);
		if (r != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", ent, f);
		read_file(rs, path);
	}
	return NULL;
}

/* ==== main =============================================================== */

static void usage(void)
{
	fprintf(stderr, "usage: mount_stress --mnt MNT [--seconds S] "
		"[--writers N] [--readers N] [--max-size BYTES] [--seed S] "
		"[--inplace]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mnt", required_argument, NULL, 'm' },
		{ "seconds", required_argument, NULL, 't' },
		{ "writers", required_argument, NULL, 'w' },
		{ "readers", required_argument, NULL, 'r' },
		{ "max-size", required_argument, NULL, 'x' },
		{ "seed", required_argument, NULL, 's' },
		{ "inplace", no_argument, NULL, 'i' },
		{ 0 },
	};
	pthread_t th[2 * MAXT];
	struct wstate ws[MAXT];
	struct rstate rs[MAXT];
	struct statfs sf;
	int c;

	C.seed = (uint64_t)time(NULL);
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm': C.mnt = optarg; break;
		case 't': C.seconds = atof(optarg); break;
		case 'w': C.nw = atoi(optarg); break;
		case 'r': C.nr = atoi(optarg); break;
		case 'x': C.max_size = strtoull(optarg, NULL, 0); break;
		case 's': C.seed = strtoull(optarg, NULL, 0); break;
		case 'i': C.inplace = 1; break;
		default: usage();
		}
	}
	if (!C.mnt || C.nw < 1 || C.nw > MAXT || C.nr < 0 || C.nr > MAXT ||
	    C.max_size < 128)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	C.rootfd = open(C.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (C.rootfd < 0 || fstatfs(C.rootfd, &sf) != 0 ||
	    sf.f_type != FUSE_SUPER_MAGIC) {
		fprintf(stderr, "mount_stress: %s is not a FUSE mount\n", C.mnt);
		return 2;
	}
	printf("mount_stress: %d writers, %d readers, %.0f s, seed %" PRIu64
	       "%s\n", C.nw, C.nr, C.seconds, C.seed,
	       C.inplace ? ", in-place rewrites" : "");
	C.end = now_s() + C.seconds;
	for (int i = 0; i < C.nw; i++) {
		memset(&ws[i], 0, sizeof(ws[i]));
		ws[i].id = i;
		rng_seed(&ws[i].r, C.seed * 131 + (uint64_t)i);
		ws[i].buf = malloc(CHUNK);
		if (!ws[i].buf || pthread_create(&th[i], NULL, writer_main,
						 &ws[i]) != 0)
			return 2;
	}
	for (int i = 0; i < C.nr; i++) {
		rs[i].id = i;
		rng_seed(&rs[i].r, C.seed * 131 + 1000 + (uint64_t)i);
		rs[i].cap = 2 * CHUNK;
		rs[i].buf = malloc(rs[i].cap);
		if (!rs[i].buf || pthread_create(&th[C.nw + i], NULL,
						 reader_main, &rs[i]) != 0)
			return 2;
	}
	for (int i = 0; i < C.nw + C.nr; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < C.nw; i++)
		free(ws[i].buf);
	for (int i = 0; i < C.nr; i++)
		free(rs[i].buf);

	/* entries still there: the rest were evicted */
	uint64_t left = 0;
	DIR *d = opendir(C.mnt); /* a fresh listing, not rootfd's snapshot */
	struct dirent *de;
	while (d && (de = readdir(d)))
		left += de->d_name[0] != '.';
	if (d)
		closedir(d);
	close(C.rootfd);

	printf("writers: entries=%" PRIu64 " files=%" PRIu64 " MiB=%" PRIu64
	       " replaced=%" PRIu64 " inplace=%" PRIu64 " enospc=%" PRIu64
	       " enoent_evicted=%" PRIu64 "\n", n_entries, n_files,
	       n_bytes_w >> 20, n_replaced, n_inplace, n_enospc, n_enoent_w);
	printf("readers: files=%" PRIu64 " MiB=%" PRIu64 " meta=%" PRIu64
	       " gone=%" PRIu64 "\n", n_reads, n_bytes_r >> 20, n_meta,
	       n_gone_r);
	printf("entries_left=%" PRIu64 " mismatches=%" PRIu64
	       " unexpected=%" PRIu64 " (of which fstat ENOENT: %" PRIu64
	       ")\n", left, n_mismatch, n_unexpected, n_fstat_enoent);
	return n_mismatch || n_unexpected ? 1 : 0;
}
