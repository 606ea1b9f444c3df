/*
 * content.c - self-describing file contents; layout in content.h.
 */
#include <string.h>

#include "content.h"

uint64_t content_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Word @k (8 bytes at offset 8k) of file (@seed, @len). */
static uint64_t word(uint64_t seed, uint64_t len, uint64_t k)
{
	switch (k) {
	case 0:
		return CONTENT_MAGIC;
	case 1:
		return seed;
	case 2:
		return len;
	case 3:
		return content_mix(seed ^ len) ^ ~0ull;
	default:
		return content_mix(seed ^ (k * 0xd1b54a32d192ed03ull));
	}
}

static void put_le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void content_fill(uint64_t seed, uint64_t len, uint64_t off, void *buf,
		  size_t n)
{
	uint8_t *p = buf, w[8];
	size_t i = 0;

	while (i < n) {
		uint64_t at = off + i, k = at / 8;
		size_t o = (size_t)(at % 8);
		size_t take = 8 - o < n - i ? 8 - o : n - i;
		put_le(w, word(seed, len, k));
		memcpy(p + i, w + o, take);
		i += take;
	}
}

size_t content_diff(uint64_t seed, uint64_t len, uint64_t off,
		    const void *buf, size_t n)
{
	const uint8_t *p = buf;
	uint8_t w[8];
	size_t i = 0;

	while (i < n) {
		uint64_t at = off + i, k = at / 8;
		size_t o = (size_t)(at % 8);
		size_t take = 8 - o < n - i ? 8 - o : n - i;
		put_le(w, word(seed, len, k));
		for (size_t j = 0; j < take; j++)
			if (at + j >= len || p[i + j] != w[o + j])
				return i + j;
		i += take;
	}
	return n;
}

int content_header(const void *buf, size_t n, uint64_t *seed, uint64_t *len)
{
	const uint8_t *p = buf;
	if (n < CONTENT_HDR || get_le(p) != CONTENT_MAGIC)
		return -1;
	uint64_t s = get_le(p + 8), l = get_le(p + 16);
	if (get_le(p + 24) != (content_mix(s ^ l) ^ ~0ull))
		return -1;
	*seed = s;
	*len = l;
	return 0;
}

void rng_seed(struct rng *r, uint64_t seed)
{
	r->s = content_mix(seed) | 1;
}

uint64_t rng_next(struct rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}
