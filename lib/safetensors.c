/*
 * safetensors.c - .safetensors headers: checked, listed, written.
 *
 * The format (huggingface safetensors, docs and safetensors/src/tensor.rs):
 *
 *   offset 0     N                  u64 little-endian, <= 100,000,000
 *          8     header             N bytes of UTF-8: one JSON object
 *                {"__metadata__": {"k": "v", ...},          optional
 *                 "NAME": {"dtype": "F32", "shape": [2, 3],
 *                          "data_offsets": [BEGIN, END]}, ...}
 *                padded with spaces (writers pad N to a multiple of 8)
 *          8+N   data               tensors' bytes, C order, little-endian;
 *                                   BEGIN/END are relative to 8 + N
 *
 * A reader sorts the tensors by data_offsets and wants them to tile the
 * data exactly: each BEGIN the previous END, each END - BEGIN the tensor's
 * numel x bits / 8, the file ending at the last END.  tc_st_parse() applies
 * those rules (tc_st_header_len, then the JSON, then the tiling) with its
 * own strict recursive-descent JSON reader, which keeps integers exact to
 * 2^64 - 1 and decodes escapes (\uXXXX pairs included) as serde_json does.
 * tc_st_build() writes a header the same rules accept, padded to 8.
 *
 * Invariants: the reader never reads at or past the end of the header
 * (every access goes through struct tc_text, bounded by r->end), recursion is
 * bounded (JSON_MAX_DEPTH), and outputs are written only on success.
 * Pure functions, no state: thread-safe.  Costs: O(N) to read a header,
 * plus O(t log t) for t tensors (the sort); memory O(N).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "safetensors.h"
#include "textread.h"

#define JSON_MAX_DEPTH 128 /* serde_json's recursion limit */

static const struct {
	const char *name;
	unsigned bits;
	int ours;          /* enum tc_dtype, or -1 */
} st_dtypes[] = {
	[TC_ST_BOOL] = { "BOOL", 8, TC_DT_BOOL },
	[TC_ST_F4] = { "F4", 4, -1 },
	[TC_ST_F6_E2M3] = { "F6_E2M3", 6, -1 },
	[TC_ST_F6_E3M2] = { "F6_E3M2", 6, -1 },
	[TC_ST_U8] = { "U8", 8, TC_DT_UINT8 },
	[TC_ST_I8] = { "I8", 8, TC_DT_INT8 },
	[TC_ST_F8_E5M2] = { "F8_E5M2", 8, TC_DT_FLOAT8_E5M2 },
	[TC_ST_F8_E4M3] = { "F8_E4M3", 8, TC_DT_FLOAT8_E4M3FN },
	[TC_ST_F8_E8M0] = { "F8_E8M0", 8, -1 },
	[TC_ST_F8_E4M3FNUZ] = { "F8_E4M3FNUZ", 8, TC_DT_FLOAT8_E4M3FNUZ },
	[TC_ST_F8_E5M2FNUZ] = { "F8_E5M2FNUZ", 8, TC_DT_FLOAT8_E5M2FNUZ },
	[TC_ST_I16] = { "I16", 16, TC_DT_INT16 },
	[TC_ST_U16] = { "U16", 16, TC_DT_UINT16 },
	[TC_ST_F16] = { "F16", 16, TC_DT_FLOAT16 },
	[TC_ST_BF16] = { "BF16", 16, TC_DT_BFLOAT16 },
	[TC_ST_I32] = { "I32", 32, TC_DT_INT32 },
	[TC_ST_U32] = { "U32", 32, TC_DT_UINT32 },
	[TC_ST_F32] = { "F32", 32, TC_DT_FLOAT32 },
	[TC_ST_C64] = { "C64", 64, -1 },
	[TC_ST_F64] = { "F64", 64, TC_DT_FLOAT64 },
	[TC_ST_I64] = { "I64", 64, TC_DT_INT64 },
	[TC_ST_U64] = { "U64", 64, TC_DT_UINT64 },
};
_Static_assert(sizeof st_dtypes / sizeof st_dtypes[0] == TC_ST_COUNT,
	       "one st_dtypes[] row per enum tc_st_dtype");

const char *tc_st_dtype_name(int st)
{
	return st >= 0 && st < TC_ST_COUNT ? st_dtypes[st].name : NULL;
}

unsigned tc_st_dtype_bits(int st)
{
	return st >= 0 && st < TC_ST_COUNT ? st_dtypes[st].bits : 0;
}

int tc_st_dtype_ours(int st)
{
	return st >= 0 && st < TC_ST_COUNT ? st_dtypes[st].ours : -1;
}

int tc_st_dtype_of(int dt)
{
	for (int i = 0; dt >= 0 && i < TC_ST_COUNT; i++)
		if (st_dtypes[i].ours == dt)
			return i;
	return -1;
}

int tc_st_utf8(const char *s, size_t n)
{
	static const uint32_t least[] = { 0, 0, 0x80, 0x800, 0x10000 };
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		size_t len;
		uint32_t cp;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			len = 2;
			cp = p[i] & 0x1f;
		} else if ((p[i] & 0xf0) == 0xe0) {
			len = 3;
			cp = p[i] & 0x0f;
		} else if ((p[i] & 0xf8) == 0xf0) {
			len = 4;
			cp = p[i] & 0x07;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < least[len] || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* The size in bytes of @ndim dims of @dtype: numel folded left to right
 * (as the reference does: [2^40, 2^40, 0] overflows), times bits, a whole
 * number of bytes.  -EINVAL on overflow or a partial byte. */
static int st_nbytes(int dtype, const uint64_t *shape, uint32_t ndim,
		     uint64_t *out)
{
	uint64_t numel = 1, bits;

	for (uint32_t i = 0; i < ndim; i++)
		if (__builtin_mul_overflow(numel, shape[i], &numel))
			return -EINVAL;
	if (__builtin_mul_overflow(numel, (uint64_t)tc_st_dtype_bits(dtype),
				   &bits) || bits % 8)
		return -EINVAL;
	*out = bits / 8;
	return 0;
}

/* ---- a growing buffer with a sticky error --------------------------------- */

struct sb {
	char *p;
	size_t n, cap;
	size_t max;        /* 0: no limit; past it, err = -EFBIG */
	int err;           /* the first -ENOMEM or -EFBIG: puts then do nothing */
};

static void sb_put(struct sb *b, const void *s, size_t n)
{
	if (b->err || !n)
		return;
	if (b->max && n > b->max - b->n) {
		b->err = -EFBIG;
		return;
	}
	if (n > b->cap - b->n) {
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap - b->n < n) {
			if (ncap > SIZE_MAX / 2) {
				b->err = -ENOMEM;
				return;
			}
			ncap *= 2;
		}
		char *np = realloc(b->p, ncap);
		if (!np) {
			b->err = -ENOMEM;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void sb_ch(struct sb *b, char c)
{
	sb_put(b, &c, 1);
}

static void sb_s(struct sb *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void sb_u64(struct sb *b, uint64_t v)
{
	char s[24];
	int k = snprintf(s, sizeof s, "%" PRIu64, v);
	sb_put(b, s, (size_t)k);
}

/* @s (@n bytes of UTF-8) as a JSON string, escaped as serde_json writes
 * it: '"', '\\' and control bytes (\n, \t.. or \u00XX), the rest as is. */
static void sb_jstr(struct sb *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	static const char ctl[] = "\b\t\n\f\r", short_[] = "btnfr";
	size_t from = 0;

	sb_ch(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *k;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_put(b, s + from, i - from);
		char e[6] = { '\\', (char)c, '0', '0', hex[c >> 4], hex[c & 15] };
		if (c && c < 0x20 && (k = strchr(ctl, c)))
			e[1] = short_[k - ctl];
		else if (c < 0x20)
			e[1] = 'u';
		sb_put(b, e, e[1] == 'u' ? 6 : 2);
		from = i + 1;
	}
	sb_put(b, s + from, n - from);
	sb_ch(b, '"');
}

/* ---- the JSON reader ------------------------------------------------------ */

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int read_hex4(struct tc_text *r, uint32_t *v)
{
	uint32_t x = 0;

	if (r->end - r->p < 4)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		int d = hexval(r->p[i]);
		if (d < 0)
			return -EINVAL;
		x = x << 4 | (uint32_t)d;
	}
	r->p += 4;
	*v = x;
	return 0;
}

static void sb_utf8(struct sb *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	sb_put(b, u, n);
}

/* The escape after a '\\': its bytes to @out (NULL: only checked). */
static int read_escape(struct tc_text *r, struct sb *out)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	uint32_t cp, lo;
	const char *k;

	if (r->p >= r->end)
		return -EINVAL;
	if (*r->p != 'u') {
		if (!*r->p || !(k = strchr(from, *r->p)))
			return -EINVAL;
		r->p++;
		if (out)
			sb_ch(out, to[k - from]);
		return 0;
	}
	r->p++;
	if (read_hex4(r, &cp) || (cp >= 0xdc00 && cp <= 0xdfff))
		return -EINVAL;
	if (cp >= 0xd800 && cp <= 0xdbff) { /* a pair, or an error */
		if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
			return -EINVAL;
		r->p += 2;
		if (read_hex4(r, &lo) || lo < 0xdc00 || lo > 0xdfff)
			return -EINVAL;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (out)
		sb_utf8(out, cp);
	return 0;
}

/* A string; its decoded bytes appended to @out (NULL: only checked).  Raw
 * bytes are not checked here: the caller checked the text is UTF-8. */
static int read_str(struct tc_text *r, struct sb *out)
{
	const char *from;

	if (!text_eat(r, '"'))
		return -EINVAL;
	from = r->p;
	while (r->p < r->end) {
		unsigned char c = (unsigned char)*r->p;
		if (c == '"') {
			if (out)
				sb_put(out, from, (size_t)(r->p - from));
			r->p++;
			return out ? out->err : 0;
		}
		if (c < 0x20)
			return -EINVAL;
		if (c != '\\') {
			r->p++;
			continue;
		}
		if (out)
			sb_put(out, from, (size_t)(r->p - from));
		r->p++;
		if (read_escape(r, out))
			return -EINVAL;
		from = r->p;
	}
	return -EINVAL;
}

static int is_digit(struct tc_text *r)
{
	return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

/* (Integers: text_u64, as serde reads a u64: digits, no leading zero, at
 * most UINT64_MAX; a '.' or 'e' after one fails where the caller wants ','
 * or ']'.) */

/* A number by JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int skip_number(struct tc_text *r)
{
	const char *b;

	if (r->p < r->end && *r->p == '-')
		r->p++;
	b = r->p;
	while (is_digit(r))
		r->p++;
	if (r->p == b || (*b == '0' && r->p - b > 1))
		return -EINVAL;
	if (r->p < r->end && *r->p == '.') {
		b = ++r->p;
		while (is_digit(r))
			r->p++;
		if (r->p == b)
			return -EINVAL;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		b = r->p;
		while (is_digit(r))
			r->p++;
		if (r->p == b)
			return -EINVAL;
	}
	return 0;
}

static int skip_word(struct tc_text *r, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n))
		return -EINVAL;
	r->p += n;
	return 0;
}

/* Any JSON value, checked and skipped; @depth: arrays and objects
 * around it. */
static int skip_value(struct tc_text *r, int depth)
{
	int c = text_peek(r);
	char close;

	if (c == '"')
		return read_str(r, NULL);
	if (c == '-' || (c >= '0' && c <= '9'))
		return skip_number(r);
	if (c == 't' || c == 'f' || c == 'n')
		return skip_word(r, c == 't' ? "true" : c == 'f' ? "false" : "null");
	if ((c != '[' && c != '{') || depth >= JSON_MAX_DEPTH)
		return -EINVAL;
	r->p++;
	close = c == '[' ? ']' : '}';
	if (text_eat(r, close))
		return 0;
	for (;;) {
		if (c == '{' && (read_str(r, NULL) || !text_eat(r, ':')))
			return -EINVAL;
		if (skip_value(r, depth + 1))
			return -EINVAL;
		if (text_eat(r, close))
			return 0;
		if (!text_eat(r, ','))
			return -EINVAL;
	}
}

/* ---- parse ---------------------------------------------------------------- */

/* A tensor while parsing: offsets into the growing buffers. */
struct pt {
	size_t name_at, name_len, dims_at;
	uint32_t ndim;
	int dtype;
	uint64_t begin, end;
};

struct parse {
	struct sb names;   /* decoded names, each NUL-terminated */
	struct sb dims;    /* uint64_t values */
	struct sb ts;      /* struct pt values */
	struct sb key;     /* scratch: a field name or dtype */
};

/* "__metadata__": null, or an object of strings. */
static int read_metadata(struct tc_text *r)
{
	if (text_peek(r) == 'n')
		return skip_word(r, "null");
	if (!text_eat(r, '{'))
		return -EINVAL;
	if (text_eat(r, '}'))
		return 0;
	for (;;) {
		if (read_str(r, NULL) || !text_eat(r, ':') || read_str(r, NULL))
			return -EINVAL;
		if (text_eat(r, '}'))
			return 0;
		if (!text_eat(r, ','))
			return -EINVAL;
	}
}

static int read_dtype(struct tc_text *r, struct parse *ps, int *dtype)
{
	ps->key.n = 0;
	int rc = read_str(r, &ps->key);
	if (rc)
		return rc;
	for (int i = 0; i < TC_ST_COUNT; i++)
		if (strlen(st_dtypes[i].name) == ps->key.n &&
		    !memcmp(st_dtypes[i].name, ps->key.p, ps->key.n)) {
			*dtype = i;
			return 0;
		}
	return -EINVAL;
}

/* An array of integers, appended to ps->dims; *@n of them.  With @two,
 * exactly two (data_offsets, into @pair). */
static int read_ints(struct tc_text *r, struct parse *ps, uint32_t *n,
		     uint64_t *pair)
{
	uint64_t v;
	uint32_t k = 0;

	if (!text_eat(r, '['))
		return -EINVAL;
	if (!text_eat(r, ']')) {
		for (;;) {
			if (text_u64(r, &v) || k == UINT32_MAX)
				return -EINVAL;
			if (pair) {
				if (k == 2)
					return -EINVAL;
				pair[k] = v;
			} else {
				sb_put(&ps->dims, &v, sizeof v);
			}
			k++;
			if (text_eat(r, ']'))
				break;
			if (!text_eat(r, ','))
				return -EINVAL;
		}
	}
	if (pair && k != 2)
		return -EINVAL;
	*n = k;
	return ps->dims.err;
}

/* A tensor's object into *@t (its name is set by the caller). */
static int read_tensor(struct tc_text *r, struct parse *ps, struct pt *t)
{
	enum { DTYPE = 1, SHAPE = 2, OFFSETS = 4 };
	unsigned seen = 0, f;
	uint64_t pair[2];
	uint32_t two;
	int rc;

	if (!text_eat(r, '{'))
		return -EINVAL;
	if (text_eat(r, '}'))
		return -EINVAL;
	for (;;) {
		ps->key.n = 0;
		if ((rc = read_str(r, &ps->key)) || !text_eat(r, ':'))
			return rc ? rc : -EINVAL;
#define KEY_IS(s) (ps->key.n == sizeof(s) - 1 && !memcmp(ps->key.p, s, ps->key.n))
		f = KEY_IS("dtype") ? DTYPE : KEY_IS("shape") ? SHAPE
		    : KEY_IS("data_offsets") ? OFFSETS : 0;
#undef KEY_IS
		if (f & seen)
			return -EINVAL;
		seen |= f;
		if (f == DTYPE) {
			rc = read_dtype(r, ps, &t->dtype);
		} else if (f == SHAPE) {
			t->dims_at = ps->dims.n / sizeof(uint64_t);
			rc = read_ints(r, ps, &t->ndim, NULL);
		} else if (f == OFFSETS) {
			rc = read_ints(r, ps, &two, pair);
			t->begin = pair[0];
			t->end = pair[1];
		} else {
			rc = skip_value(r, 2);
		}
		if (rc)
			return rc;
		if (text_eat(r, '}'))
			break;
		if (!text_eat(r, ','))
			return -EINVAL;
	}
	return seen == (DTYPE | SHAPE | OFFSETS) ? 0 : -EINVAL;
}

/* The top-level object: tensors into ps->ts. */
static int read_top(struct tc_text *r, struct parse *ps)
{
	int meta = 0, rc;

	if (!text_eat(r, '{'))
		return -EINVAL;
	if (text_eat(r, '}'))
		return 0;
	for (;;) {
		size_t at = ps->names.n;
		if ((rc = read_str(r, &ps->names)) || !text_eat(r, ':'))
			return rc ? rc : -EINVAL;
		size_t klen = ps->names.n - at;
		if (klen == 12 && !memcmp(ps->names.p + at, "__metadata__", 12)) {
			ps->names.n = at;
			if (meta++)
				return -EINVAL;
			rc = read_metadata(r);
		} else {
			struct pt t = { .name_at = at, .name_len = klen };
			sb_ch(&ps->names, '\0');
			rc = read_tensor(r, ps, &t);
			sb_put(&ps->ts, &t, sizeof t);
			if (!rc)
				rc = ps->names.err ? ps->names.err : ps->ts.err;
		}
		if (rc)
			return rc;
		if (text_eat(r, '}'))
			return 0;
		if (!text_eat(r, ','))
			return -EINVAL;
	}
}

static int cmp_offsets(const void *a, const void *b)
{
	const struct pt *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

/* Name-ordered view of the tensors, to find one named twice. */
struct byname {
	const char *name;
	size_t len;
};

static int cmp_byname(const void *a, const void *b)
{
	const struct byname *x = a, *y = b;
	int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
	return c ? c : x->len < y->len ? -1 : x->len > y->len;
}

/* -EINVAL if two of the @n names are the same bytes.  O(n log n). */
static int check_unique(struct byname *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_byname);
	for (size_t i = 1; i < n; i++)
		if (!cmp_byname(&v[i - 1], &v[i]))
			return -EINVAL;
	return 0;
}

/* The tiling rules on ps's tensors, then *@out.  O(t log t). */
static int finish(struct parse *ps, uint64_t n, uint64_t file_len,
		  struct tc_st_header *out)
{
	size_t nt = ps->ts.n / sizeof(struct pt);
	struct pt *pt = (struct pt *)(void *)ps->ts.p;
	const uint64_t *dims = (const uint64_t *)(void *)ps->dims.p;
	struct tc_st_tensor *t = NULL;
	struct byname *bn = NULL;
	uint64_t start = 0, size;
	int rc = -ENOMEM;

	if (!(bn = malloc((nt ? nt : 1) * sizeof *bn)) ||
	    !(t = malloc((nt ? nt : 1) * sizeof *t)))
		goto out;
	for (size_t i = 0; i < nt; i++)
		bn[i] = (struct byname){ ps->names.p + pt[i].name_at,
					 pt[i].name_len };
	rc = -EINVAL;
	if (check_unique(bn, nt))
		goto out;
	if (nt)
		qsort(pt, nt, sizeof *pt, cmp_offsets);
	for (size_t i = 0; i < nt; i++) {
		if (pt[i].begin != start || pt[i].end < pt[i].begin ||
		    st_nbytes(pt[i].dtype, dims + pt[i].dims_at, pt[i].ndim,
			      &size) ||
		    pt[i].end - pt[i].begin != size)
			goto out;
		start = pt[i].end;
		t[i] = (struct tc_st_tensor){
			.name = ps->names.p + pt[i].name_at,
			.name_len = pt[i].name_len, .dtype = pt[i].dtype,
			.ndim = pt[i].ndim, .shape = dims + pt[i].dims_at,
			.begin = pt[i].begin, .end = pt[i].end };
	}
	if (start != file_len - TC_ST_PREFIX - n) /* tc_st_header_len: >= 0 */
		goto out;
	*out = (struct tc_st_header){ .data_start = TC_ST_PREFIX + n,
				      .ntensors = nt, .tensors = t,
				      .names = ps->names.p,
				      .dims = (uint64_t *)(void *)ps->dims.p };
	ps->names.p = NULL;
	ps->dims.p = NULL;
	t = NULL;
	rc = 0;
out:
	free(t);
	free(bn);
	return rc;
}

int tc_st_header_len(const void *first8, uint64_t file_len, uint64_t *n)
{
	const unsigned char *b = first8;
	uint64_t v = 0;

	if (file_len < TC_ST_PREFIX)
		return -EINVAL;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	if (v > TC_ST_MAX_HEADER || v > file_len - TC_ST_PREFIX)
		return -EINVAL;
	*n = v;
	return 0;
}

int tc_st_parse(const void *buf, size_t len, uint64_t file_len,
		struct tc_st_header *out)
{
	struct parse ps;
	struct tc_text r;
	uint64_t n;
	int rc;

	if (len < TC_ST_PREFIX || tc_st_header_len(buf, file_len, &n) ||
	    len - TC_ST_PREFIX != n)
		return -EINVAL;
	r.p = (const char *)buf + TC_ST_PREFIX;
	r.end = r.p + n;
	if (!tc_st_utf8(r.p, (size_t)n))
		return -EINVAL;
	memset(&ps, 0, sizeof ps);
	rc = read_top(&r, &ps);
	text_ws(&r);
	if (!rc && r.p != r.end)
		rc = -EINVAL;
	if (!rc)
		rc = finish(&ps, n, file_len, out);
	free(ps.names.p);
	free(ps.dims.p);
	free(ps.ts.p);
	free(ps.key.p);
	return rc;
}

void tc_st_header_free(struct tc_st_header *h)
{
	if (!h)
		return;
	free(h->tensors);
	free(h->names);
	free(h->dims);
	memset(h, 0, sizeof *h);
}

/* ---- write ---------------------------------------------------------------- */

static void sb_shape(struct sb *b, const uint64_t *shape, uint32_t ndim)
{
	sb_ch(b, '[');
	for (uint32_t i = 0; i < ndim; i++) {
		if (i)
			sb_ch(b, ',');
		sb_u64(b, shape[i]);
	}
	sb_ch(b, ']');
}

/* Hand @b's text, NUL-terminated, to *@out and *@len (its length). */
static int sb_finish(struct sb *b, char **out, size_t *len)
{
	sb_ch(b, '\0');
	if (b->err) {
		free(b->p);
		return b->err;
	}
	*out = b->p;
	*len = b->n - 1;
	return 0;
}

int tc_st_list_json(const struct tc_st_header *h, char **out, size_t *len)
{
	struct sb b = { 0 };

	sb_ch(&b, '{');
	for (size_t i = 0; i < h->ntensors; i++) {
		const struct tc_st_tensor *t = &h->tensors[i];
		int ours = tc_st_dtype_ours(t->dtype);
		const char *dt = ours >= 0 ? tc_dtype_name(ours)
					   : tc_st_dtype_name(t->dtype);
		if (i)
			sb_ch(&b, ',');
		sb_jstr(&b, t->name, t->name_len);
		sb_s(&b, ":{\"dtype\":\"");
		sb_s(&b, dt);
		sb_s(&b, "\",\"shape\":");
		sb_shape(&b, t->shape, t->ndim);
		sb_s(&b, ",\"offset\":");
		sb_u64(&b, h->data_start + t->begin);
		sb_ch(&b, '}');
	}
	sb_ch(&b, '}');
	return sb_finish(&b, out, len);
}

/* The items as tc_st_build() wants them: -EINVAL otherwise. */
static int check_items(const struct tc_st_item *t, size_t n,
		       const struct tc_st_kv *meta, size_t nmeta)
{
	struct byname *bn;
	uint64_t size;
	int rc = -EINVAL;

	for (size_t i = 0; i < nmeta; i++)
		if (!tc_st_utf8(meta[i].key, strlen(meta[i].key)) ||
		    !tc_st_utf8(meta[i].value, strlen(meta[i].value)))
			return -EINVAL;
	if (!(bn = malloc((n ? n : 1) * sizeof *bn)))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!tc_st_utf8(t[i].name, t[i].name_len) ||
		    (t[i].name_len == 12 &&
		     !memcmp(t[i].name, "__metadata__", 12)) ||
		    st_nbytes(t[i].dtype, t[i].shape, t[i].ndim, &size) ||
		    size != t[i].nbytes)
			goto out;
		bn[i] = (struct byname){ t[i].name, t[i].name_len };
	}
	rc = check_unique(bn, n);
out:
	free(bn);
	return rc;
}

int tc_st_build(const struct tc_st_item *t, size_t n,
		const struct tc_st_kv *meta, size_t nmeta, char **out,
		size_t *len)
{
	struct sb b = { .max = TC_ST_PREFIX + TC_ST_MAX_HEADER + 1 }; /* + NUL */
	uint64_t at = 0, hl;
	int rc = check_items(t, n, meta, nmeta);

	if (rc)
		return rc;
	sb_put(&b, "\0\0\0\0\0\0\0\0", TC_ST_PREFIX); /* N, below */
	sb_ch(&b, '{');
	if (nmeta) {
		sb_s(&b, "\"__metadata__\":{");
		for (size_t i = 0; i < nmeta; i++) {
			if (i)
				sb_ch(&b, ',');
			sb_jstr(&b, meta[i].key, strlen(meta[i].key));
			sb_ch(&b, ':');
			sb_jstr(&b, meta[i].value, strlen(meta[i].value));
		}
		sb_s(&b, n ? "}," : "}");
	}
	for (size_t i = 0; i < n; i++) {
		if (__builtin_add_overflow(at, t[i].nbytes, &at)) {
			free(b.p);
			return -EFBIG;
		}
		if (i)
			sb_ch(&b, ',');
		sb_jstr(&b, t[i].name, t[i].name_len);
		sb_s(&b, ":{\"dtype\":\"");
		sb_s(&b, tc_st_dtype_name(t[i].dtype));
		sb_s(&b, "\",\"shape\":");
		sb_shape(&b, t[i].shape, t[i].ndim);
		sb_s(&b, ",\"data_offsets\":[");
		sb_u64(&b, at - t[i].nbytes);
		sb_ch(&b, ',');
		sb_u64(&b, at);
		sb_s(&b, "]}");
	}
	sb_ch(&b, '}');
	while (!b.err && (b.n - TC_ST_PREFIX) % 8)
		sb_ch(&b, ' ');
	if (!b.err && b.n - TC_ST_PREFIX > TC_ST_MAX_HEADER)
		b.err = -EFBIG;
	if (b.err) {
		free(b.p);
		return b.err;
	}
	hl = b.n - TC_ST_PREFIX;
	for (int i = 0; i < 8; i++)
		b.p[i] = (char)(hl >> (8 * i));
	return sb_finish(&b, out, len);
}
