/*
 * textread.h - a bounded cursor over text, for the small hand-written
 * readers of file headers (.npy's dict in dtype.c, .safetensors' JSON in
 * safetensors.c): every access stays below end (internal to libtcache).
 */
#ifndef TC_TEXTREAD_H
#define TC_TEXTREAD_H

#include <errno.h>
#include <stdint.h>

struct tc_text {
	const char *p, *end; /* p <= end */
};

/* Skip JSON's (and Python's) whitespace. */
static inline void text_ws(struct tc_text *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' ||
				 *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* Skip whitespace, then consume @c if it is next: 1 if it was. */
static inline int text_eat(struct tc_text *r, char c)
{
	text_ws(r);
	if (r->p < r->end && *r->p == c) {
		r->p++;
		return 1;
	}
	return 0;
}

/* Skip whitespace; the next byte, or -1 at the end. */
static inline int text_peek(struct tc_text *r)
{
	text_ws(r);
	return r->p < r->end ? (unsigned char)*r->p : -1;
}

/* A decimal integer without sign or leading zeros, at most UINT64_MAX,
 * into *@v; -EINVAL else.  What may follow it is the caller's to check. */
static inline int text_u64(struct tc_text *r, uint64_t *v)
{
	uint64_t x = 0;
	const char *b;

	text_ws(r);
	b = r->p;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		unsigned d = (unsigned)(*r->p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -EINVAL;
		x = x * 10 + d;
		r->p++;
	}
	if (r->p == b || (*b == '0' && r->p - b > 1))
		return -EINVAL;
	*v = x;
	return 0;
}

#endif
