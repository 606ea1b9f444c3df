/* storeutil.h - opening a store, for the tests that need a whole one. */
#ifndef TC_STOREUTIL_H
#define TC_STOREUTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tcache.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)

/* The store in @dir with capacity @cap (0: as it is), or NULL (said). */
static inline tc_store *open_store(const char *dir, uint64_t cap)
{
	struct tc_options o = { .capacity = cap };
	tc_store *s = NULL;
	int r = tc_store_open(dir, &o, &s);
	if (r)
		printf("# tc_store_open(%s): %d\n", dir, r);
	return s;
}

static inline void copy_file(const char *from, const char *to, off_t limit)
{
	int a = open(from, O_RDONLY), b = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	static uint8_t buf[1 << 16];
	off_t done = 0;
	ssize_t n;
	if (a < 0 || b < 0)
		abort();
	while ((limit < 0 || done < limit) &&
	       (n = read(a, buf, limit < 0 || limit - done > (off_t)sizeof(buf)
					? sizeof(buf) : (size_t)(limit - done))) > 0) {
		if (write(b, buf, (size_t)n) != n)
			abort();
		done += n;
	}
	close(a);
	close(b);
}

/* A "crash": the files as the kernel has them while the store is open
 * (no close, no checkpoint), with the journal cut at @jlimit. */
static inline void crash_copy(const char *d, const char *to, off_t jlimit)
{
	char a[512], b[512];
	mkdir(to, 0700);
	snprintf(a, sizeof(a), "%s/pool", d);
	snprintf(b, sizeof(b), "%s/pool", to);
	copy_file(a, b, -1);
	snprintf(a, sizeof(a), "%s/journal", d);
	snprintf(b, sizeof(b), "%s/journal", to);
	copy_file(a, b, jlimit);
}

static inline off_t journal_size(const char *d)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/journal", d);
	return stat(p, &st) ? -1 : st.st_size;
}

#endif
