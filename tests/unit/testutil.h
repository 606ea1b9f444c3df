/* testutil.h - temp directories and deterministic random data for tests. */
#ifndef TC_TESTUTIL_H
#define TC_TESTUTIL_H

#include <ftw.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline char *tmpdir_new(void)
{
	const char *base = getenv("TMPDIR");
	char *p;
	if (asprintf(&p, "%s/tcache-test-XXXXXX", base ? base : "/tmp") < 0)
		abort();
	if (!mkdtemp(p))
		abort();
	return p;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static inline void tmpdir_free(char *p)
{
	nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(p);
}

/* xorshift64*: reproducible data from a seed */
static inline uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static inline void fill(void *buf, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
	uint8_t *p = buf;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd(&s) >> 56);
}

#endif
