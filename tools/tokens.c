/*
 * tokens.c - token ids from text or .npy, and their page keys.
 *
 * A .npy file (format 1.0, 2.0 or 3.0) is
 *
 *   "\x93NUMPY" major minor  header length (v1: u16 LE, else u32 LE)
 *   header: {'descr': '<i8', 'fortran_order': False, 'shape': (N,), }
 *   N items of the descr's size, nothing after them
 *
 * Only what a token array is gets through: a 1-d, C-order array of a
 * little-endian integer type ('<' or, for one byte, '|'), every value in
 * [0, 2^32), and exactly N items after the header.  Anything else is
 * refused with a message that says what was found, never read as
 * something else: a float array, a 2-d array or a truncated file would
 * otherwise hash to keys that match nothing, silently.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokens.h"

#define NPY_MAX_HEADER (1u << 20)

static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "%s: ", !strcmp(path, "-") ? "stdin" : path);
	if (n < 0 || (size_t)n >= errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* The whole of @path ("-": stdin) into *@out (malloc'd), its size *@len. */
static int slurp_all(const char *path, char **out, size_t *len)
{
	int fd = !strcmp(path, "-") ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0, cap = 0;
	char *buf = NULL;
	int rc = -1;

	if (fd < 0)
		return -1;
	for (;;) {
		if (n + 65536 + 1 > cap) {
			cap = cap ? 2 * cap : 1 << 20;
			char *nb = realloc(buf, cap);
			if (!nb)
				goto out;
			buf = nb;
		}
		ssize_t got = read(fd, buf + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto out;
		if (got == 0)
			break;
		n += (size_t)got;
	}
	buf[n] = 0; /* the text reader stops at it */
	*out = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out:
	if (fd > 0)
		close(fd);
	free(buf);
	return rc;
}

/* ---- text ---------------------------------------------------------------- */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int read_text(const char *path, const char *p, const char *end,
		     uint32_t **ids, size_t *count, char *err, size_t errlen)
{
	uint32_t *v = NULL;
	size_t n = 0, cap = 0;

	for (;;) {
		while (p < end && is_space(*p))
			p++;
		if (p == end)
			break;
		const char *b = p;
		uint64_t x = 0;
		int big = 0;
		while (p < end && !is_space(*p)) {
			if (*p < '0' || *p > '9') {
				int len = 0;
				while (b + len < end && !is_space(b[len]) && len < 40)
					len++;
				free(v);
				return fail(err, errlen, path, *b == '-' ?
					    "token %zu is negative ('%.*s'): token ids are in [0, 2^32)" :
					    "token %zu ('%.*s') is not an unsigned decimal integer",
					    n, len, b);
			}
			x = x * 10 + (uint64_t)(*p - '0');
			big |= x > UINT32_MAX;
			p++;
		}
		if (big) {
			free(v);
			return fail(err, errlen, path,
				    "token %zu ('%.*s') is not below 2^32", n,
				    (int)(p - b > 40 ? 40 : p - b), b);
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 4096;
			uint32_t *nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				free(v);
				return fail(err, errlen, path, "%s", strerror(ENOMEM));
			}
			v = nv;
		}
		v[n++] = (uint32_t)x;
	}
	*ids = v;
	*count = n;
	return 0;
}

/* ---- .npy ----------------------------------------------------------------- */

struct cursor {
	const char *p, *end;
};

static void ws(struct cursor *c)
{
	while (c->p < c->end && is_space(*c->p))
		c->p++;
}

static int eat(struct cursor *c, char ch)
{
	ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return 1;
	}
	return 0;
}

/* A quoted string without escapes: *s, *n (not NUL-terminated). */
static int quoted(struct cursor *c, const char **s, size_t *n)
{
	ws(c);
	if (c->p == c->end || (*c->p != '\'' && *c->p != '"'))
		return -1;
	char q = *c->p++;
	*s = c->p;
	while (c->p < c->end && *c->p != q && *c->p != '\\')
		c->p++;
	if (c->p == c->end || *c->p != q)
		return -1;
	*n = (size_t)(c->p - *s);
	c->p++;
	return 0;
}

static int word(struct cursor *c, const char *w)
{
	size_t n = strlen(w);
	ws(c);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n))
		return 0;
	c->p += n;
	return 1;
}

struct npy {
	char descr[16];
	int fortran;
	int ndim;
	uint64_t len; /* of the only dimension, when ndim == 1 */
};

/* The header's dict: exactly descr, fortran_order, shape. */
static int npy_dict(struct cursor *c, struct npy *h)
{
	unsigned seen = 0;

	if (!eat(c, '{'))
		return -1;
	while (!eat(c, '}')) {
		const char *k, *s;
		size_t kn, sn;
		if (quoted(c, &k, &kn) || !eat(c, ':'))
			return -1;
		if (kn == 5 && !memcmp(k, "descr", 5) && !(seen & 1)) {
			if (quoted(c, &s, &sn)) /* a structured descr is a list */
				return -1;
			snprintf(h->descr, sizeof h->descr, "%.*s", (int)sn, s);
			seen |= 1;
		} else if (kn == 13 && !memcmp(k, "fortran_order", 13) && !(seen & 2)) {
			if (word(c, "True"))
				h->fortran = 1;
			else if (!word(c, "False"))
				return -1;
			seen |= 2;
		} else if (kn == 5 && !memcmp(k, "shape", 5) && !(seen & 4)) {
			if (!eat(c, '('))
				return -1;
			h->ndim = 0;
			while (!eat(c, ')')) {
				uint64_t x = 0;
				const char *b;
				ws(c);
				b = c->p;
				while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
					if (x > (UINT64_MAX - 9) / 10)
						return -1;
					x = x * 10 + (uint64_t)(*c->p++ - '0');
				}
				if (c->p == b)
					return -1;
				if (h->ndim++ == 0)
					h->len = x;
				if (!eat(c, ',')) {
					if (!eat(c, ')'))
						return -1;
					break;
				}
			}
			seen |= 4;
		} else {
			return -1;
		}
		if (!eat(c, ',')) {
			if (!eat(c, '}'))
				return -1;
			break;
		}
	}
	ws(c);
	return seen == 7 && c->p == c->end ? 0 : -1;
}

static int read_npy(const char *path, const unsigned char *b, size_t len,
		    uint32_t **ids, size_t *count, char *err, size_t errlen)
{
	static const struct {
		const char *descr;
		unsigned size, is_signed;
	} types[] = {
		{ "|i1", 1, 1 }, { "<i1", 1, 1 }, { "|u1", 1, 0 }, { "<u1", 1, 0 },
		{ "<i2", 2, 1 }, { "<u2", 2, 0 }, { "<i4", 4, 1 }, { "<u4", 4, 0 },
		{ "<i8", 8, 1 }, { "<u8", 8, 0 },
	};
	struct npy h = { .ndim = -1 };
	struct cursor c;
	size_t pre, hlen, t;

	if (len < 10 || memcmp(b, "\x93NUMPY", 6))
		return fail(err, errlen, path, "truncated or malformed .npy (no "
			    "complete \\x93NUMPY header)");
	if (b[6] < 1 || b[6] > 3 || b[7] != 0)
		return fail(err, errlen, path, "unknown .npy format version %u.%u",
			    b[6], b[7]);
	pre = b[6] == 1 ? 10 : 12;
	if (len < pre)
		return fail(err, errlen, path, "truncated .npy header");
	hlen = b[6] == 1 ? (size_t)b[8] | (size_t)b[9] << 8
			 : (size_t)b[8] | (size_t)b[9] << 8 |
			   (size_t)b[10] << 16 | (size_t)b[11] << 24;
	if (hlen > NPY_MAX_HEADER || len - pre < hlen)
		return fail(err, errlen, path, "truncated .npy header (%zu bytes "
			    "announced, %zu there)", hlen, len - pre);
	c.p = (const char *)b + pre;
	c.end = c.p + hlen;
	if (npy_dict(&c, &h))
		return fail(err, errlen, path, "malformed .npy header '%.*s'",
			    (int)(hlen > 120 ? 120 : hlen), (const char *)b + pre);
	for (t = 0; t < sizeof types / sizeof types[0]; t++)
		if (!strcmp(types[t].descr, h.descr))
			break;
	if (t == sizeof types / sizeof types[0])
		return fail(err, errlen, path, ".npy of dtype '%s': token ids must be "
			    "a little-endian integer array (i1, i2, i4, i8, u1, u2, "
			    "u4, u8)", h.descr);
	if (h.ndim != 1)
		return fail(err, errlen, path, ".npy of %d dimensions: token ids are "
			    "a 1-d array", h.ndim);
	if (h.fortran)
		return fail(err, errlen, path, ".npy in Fortran order: token ids are "
			    "a C-order array");
	size_t size = types[t].size, data = len - pre - hlen;
	if (h.len > data / size || h.len * size != data)
		return fail(err, errlen, path, "%s .npy: its header says %llu tokens "
			    "(%llu bytes), %zu bytes follow it",
			    h.len > data / size ? "truncated" : "malformed",
			    (unsigned long long)h.len,
			    (unsigned long long)(h.len * size), data);
	const unsigned char *p = b + pre + hlen;
	uint32_t *v = h.len ? malloc(h.len * sizeof(*v)) : NULL;
	if (h.len && !v)
		return fail(err, errlen, path, "%s", strerror(ENOMEM));
	for (size_t i = 0; i < h.len; i++, p += size) {
		uint64_t x = 0;
		for (size_t k = 0; k < size; k++)
			x |= (uint64_t)p[k] << (8 * k);
		if (types[t].is_signed && size < 8 && (x >> (8 * size - 1)) & 1)
			x |= ~0ull << (8 * size); /* sign-extend */
		if (types[t].is_signed && (int64_t)x < 0) {
			free(v);
			return fail(err, errlen, path, "token %zu is negative (%lld): "
				    "token ids are in [0, 2^32)", i, (long long)(int64_t)x);
		}
		if (x > UINT32_MAX) {
			free(v);
			return fail(err, errlen, path, "token %zu (%llu) is not below 2^32",
				    i, (unsigned long long)x);
		}
		v[i] = (uint32_t)x;
	}
	*ids = v;
	*count = h.len;
	return 0;
}

int tokens_read(const char *path, uint32_t **ids, size_t *n, char *err,
		size_t errlen)
{
	char *buf;
	size_t len;
	int rc;

	if (slurp_all(path, &buf, &len))
		return fail(err, errlen, path, "%s", strerror(errno));
	if (len && (unsigned char)buf[0] == 0x93) /* no text starts so */
		rc = read_npy(path, (const unsigned char *)buf, len, ids, n, err, errlen);
	else
		rc = read_text(path, buf, buf + len, ids, n, err, errlen);
	free(buf);
	return rc;
}

/* ---- page keys -------------------------------------------------------------- */

int hex_digest(const char *hex, uint8_t out[SHA256_BYTES])
{
	uint8_t v[SHA256_BYTES];

	if (strlen(hex) != PAGE_KEY_LEN)
		return -1;
	for (int i = 0; i < PAGE_KEY_LEN; i++) {
		char ch = hex[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0' :
			ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 :
			ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v[i / 2] = (uint8_t)(i % 2 ? v[i / 2] | d : d << 4);
	}
	memcpy(out, v, sizeof v);
	return 0;
}

int page_keys(const uint32_t *ids, size_t n, size_t page_size,
	      const uint8_t *prior, const char *ns,
	      int (*page)(size_t i, const char *key, void *arg), void *arg)
{
	static const char prefix[] = "tcache-namespace:";
	static const char hexd[] = "0123456789abcdef";
	uint8_t seed[SHA256_BYTES], prev[SHA256_BYTES], le[4 * 256];
	char key[PAGE_KEY_LEN + 1];
	struct sha256 s;
	int have_prev = prior != NULL, rc;

	if (ns) {
		sha256_init(&s);
		sha256_update(&s, prefix, sizeof prefix - 1);
		sha256_update(&s, ns, strlen(ns));
		sha256_final(&s, seed);
	}
	if (prior)
		memcpy(prev, prior, sizeof prev);
	for (size_t pg = 0; page_size && pg < n / page_size; pg++) {
		const uint32_t *t = ids + pg * page_size;
		sha256_init(&s);
		if (ns)
			sha256_update(&s, seed, sizeof seed);
		if (have_prev)
			sha256_update(&s, prev, sizeof prev);
		for (size_t i = 0; i < page_size; i += 256) {
			size_t m = page_size - i < 256 ? page_size - i : 256;
			for (size_t k = 0; k < m; k++) {
				uint32_t x = t[i + k];
				le[4 * k] = (uint8_t)x;
				le[4 * k + 1] = (uint8_t)(x >> 8);
				le[4 * k + 2] = (uint8_t)(x >> 16);
				le[4 * k + 3] = (uint8_t)(x >> 24);
			}
			sha256_update(&s, le, 4 * m);
		}
		sha256_final(&s, prev);
		have_prev = 1;
		for (int i = 0; i < SHA256_BYTES; i++) {
			key[2 * i] = hexd[prev[i] >> 4];
			key[2 * i + 1] = hexd[prev[i] & 15];
		}
		key[PAGE_KEY_LEN] = 0;
		if ((rc = page(pg, key, arg)))
			return rc;
	}
	return 0;
}
