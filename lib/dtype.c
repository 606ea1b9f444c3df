/*
 * dtype.c - tensor element types and NumPy .npy headers.
 *
 * The dtype table maps enum tc_dtype (stored on disk, never renumbered) to
 * a name and an item size.  tc_npy_parse() reads the header of a .npy file:
 *
 *   offset 0   "\x93NUMPY"                 magic
 *          6   major, minor                1.0, 2.0 or 3.0 (3.0: utf-8 header)
 *          8   header length               v1: u16 LE; v2/v3: u32 LE
 *   10 or 12   header: a Python dict literal, padded with spaces, '\n'
 *              {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *   10/12+len  the array data (data_offset)
 *
 * The dict is read by a small strict recursive-descent parser: exactly the
 * keys descr, fortran_order and shape, once each, in any order; single- or
 * double-quoted strings without escapes; True/False; shape a tuple of
 * decimal integers ("()", "(5,)", "(2, 3)"; "(5)" is not a tuple).  Only
 * whitespace may follow the dict.  A structured descr (a list) is checked
 * for well-formedness, then answered with -ENOTSUP.
 *
 * Invariants: the parser never reads at or past the end of the header (every
 * access goes through struct tc_text, bounded by r->end <= buf + len), recursion
 * is bounded (NPY_MAX_DEPTH), and *out is written only on success.  Pure
 * functions, no state: thread-safe.  Cost: O(header length).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "dtype.h"
#include "textread.h"

static const struct {
	const char *name;
	size_t size;
} dtypes[] = {
	[TC_DT_UINT8] = { "uint8", 1 },
	[TC_DT_BOOL] = { "bool", 1 },
	[TC_DT_INT8] = { "int8", 1 },
	[TC_DT_INT16] = { "int16", 2 },
	[TC_DT_INT32] = { "int32", 4 },
	[TC_DT_INT64] = { "int64", 8 },
	[TC_DT_UINT16] = { "uint16", 2 },
	[TC_DT_UINT32] = { "uint32", 4 },
	[TC_DT_UINT64] = { "uint64", 8 },
	[TC_DT_FLOAT16] = { "float16", 2 },
	[TC_DT_BFLOAT16] = { "bfloat16", 2 },
	[TC_DT_FLOAT32] = { "float32", 4 },
	[TC_DT_FLOAT64] = { "float64", 8 },
	[TC_DT_FLOAT8_E4M3FN] = { "float8_e4m3fn", 1 },
	[TC_DT_FLOAT8_E4M3FNUZ] = { "float8_e4m3fnuz", 1 },
	[TC_DT_FLOAT8_E5M2] = { "float8_e5m2", 1 },
	[TC_DT_FLOAT8_E5M2FNUZ] = { "float8_e5m2fnuz", 1 },
};
_Static_assert(sizeof dtypes / sizeof dtypes[0] == TC_DT_COUNT,
	       "one dtypes[] row per enum tc_dtype");

/* The little-endian (or byte-order free) descrs we type. */
static const struct {
	const char *descr;
	int dtype;
} npy_descrs[] = {
	{ "<f2", TC_DT_FLOAT16 }, { "<f4", TC_DT_FLOAT32 },
	{ "<f8", TC_DT_FLOAT64 }, { "<i1", TC_DT_INT8 },
	{ "<i2", TC_DT_INT16 },   { "<i4", TC_DT_INT32 },
	{ "<i8", TC_DT_INT64 },   { "<u1", TC_DT_UINT8 },
	{ "<u2", TC_DT_UINT16 },  { "<u4", TC_DT_UINT32 },
	{ "<u8", TC_DT_UINT64 },  { "|b1", TC_DT_BOOL },
	{ "|u1", TC_DT_UINT8 },   { "|i1", TC_DT_INT8 },
};

#define NPY_MAX_HEADER (1u << 20) /* a longer header is not one we write */
#define NPY_MAX_DEPTH 32          /* nesting of a structured descr */

size_t tc_dtype_size(int dt)
{
	return dt >= 0 && dt < TC_DT_COUNT ? dtypes[dt].size : 0;
}

const char *tc_dtype_name(int dt)
{
	return dt >= 0 && dt < TC_DT_COUNT ? dtypes[dt].name : NULL;
}

/* Names other tools write for our dtypes (see tc_dtype_from_name). */
static const struct {
	const char *name;
	int dtype;
} aliases[] = {
	/* torch's, after "torch." */
	{ "torch.float", TC_DT_FLOAT32 },  { "torch.half", TC_DT_FLOAT16 },
	{ "torch.double", TC_DT_FLOAT64 }, { "torch.short", TC_DT_INT16 },
	{ "torch.int", TC_DT_INT32 },      { "torch.long", TC_DT_INT64 },
	/* numpy's (np.dtype(name): bare "float" is float64 there) */
	{ "half", TC_DT_FLOAT16 },         { "single", TC_DT_FLOAT32 },
	{ "double", TC_DT_FLOAT64 },       { "float", TC_DT_FLOAT64 },
	{ "float_", TC_DT_FLOAT64 },       { "bool_", TC_DT_BOOL },
	{ "byte", TC_DT_INT8 },            { "ubyte", TC_DT_UINT8 },
	{ "short", TC_DT_INT16 },          { "ushort", TC_DT_UINT16 },
	{ "intc", TC_DT_INT32 },           { "uintc", TC_DT_UINT32 },
	{ "int_", TC_DT_INT64 },           { "longlong", TC_DT_INT64 },
	{ "ulonglong", TC_DT_UINT64 },
};

/* A numpy type string ("<f4", "|u1", "=i8", "f4"): a little-endian or
 * byte-order-free kind and size; -EINVAL for others (">f4": big-endian). */
static int from_typestr(const char *name)
{
	char buf[4];
	size_t n = strlen(name);

	if (n == 2) { /* no byte order: the machine's, little-endian here */
		buf[0] = '<';
		memcpy(buf + 1, name, 3);
		name = buf;
	} else if (n == 3 && name[0] == '=') {
		buf[0] = '<';
		memcpy(buf + 1, name + 1, 3);
		name = buf;
	} else if (n != 3) {
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof npy_descrs / sizeof npy_descrs[0]; i++)
		if (!strcmp(npy_descrs[i].descr, name))
			return npy_descrs[i].dtype;
	return strcmp(name, "<b1") ? -EINVAL : TC_DT_BOOL;
}

int tc_dtype_from_name(const char *name)
{
	if (!name)
		return -EINVAL;
	const char *bare = !strncmp(name, "torch.", 6) ? name + 6 : name;
	for (int i = 0; i < TC_DT_COUNT; i++)
		if (!strcmp(dtypes[i].name, bare))
			return i;
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
		if (!strcmp(aliases[i].name, name))
			return aliases[i].dtype;
	return bare == name ? from_typestr(name) : -EINVAL;
}

/* ---- the header dict ----------------------------------------------------- */

/* A quoted string without escapes or line breaks: [*s, *s + *n). */
static int read_str(struct tc_text *r, const char **s, size_t *n)
{
	char q;

	text_ws(r);
	if (r->p >= r->end || (*r->p != '\'' && *r->p != '"'))
		return -EINVAL;
	q = *r->p++;
	*s = r->p;
	while (r->p < r->end && *r->p != q) {
		if (*r->p == '\\' || *r->p == '\n' || *r->p == '\r' ||
		    *r->p == '\0')
			return -EINVAL;
		r->p++;
	}
	if (r->p >= r->end)
		return -EINVAL;
	*n = (size_t)(r->p - *s);
	r->p++;
	return 0;
}

/* A decimal integer without sign, underscores or leading zeros. */
/* True or False.  (What may follow is checked by the caller: "Falsey"
 * fails there, as no ',' or '}' comes next.) */
static int read_bool(struct tc_text *r, int *v)
{
	static const char *const words[2] = { "False", "True" };

	text_ws(r);
	for (int i = 0; i < 2; i++) {
		size_t n = strlen(words[i]);
		if ((size_t)(r->end - r->p) >= n && !memcmp(r->p, words[i], n)) {
			r->p += n;
			*v = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* A literal made of strings, integers, lists and tuples (a structured
 * descr such as [('x', '<f4'), ('y', '<i4', (2,))]).  Trailing commas ok. */
static int skip_literal(struct tc_text *r, int depth)
{
	const char *s;
	size_t n;
	uint64_t v;
	char close;
	int c = text_peek(r), rc;

	if (c == '\'' || c == '"')
		return read_str(r, &s, &n);
	if (c >= '0' && c <= '9')
		return text_u64(r, &v);
	if ((c != '[' && c != '(') || depth >= NPY_MAX_DEPTH)
		return -EINVAL;
	close = c == '[' ? ']' : ')';
	r->p++;
	for (;;) {
		if (text_eat(r, close))
			return 0;
		if ((rc = skip_literal(r, depth + 1)))
			return rc;
		if (text_eat(r, close))
			return 0;
		if (!text_eat(r, ','))
			return -EINVAL;
	}
}

/* A tuple of integers: "()", "(5,)", "(2, 3)", "(2, 3,)"; not "(5)". */
static int read_shape(struct tc_text *r, uint64_t *shape, int *ndim)
{
	int n = 0, comma = 0, rc;

	if (!text_eat(r, '('))
		return -EINVAL;
	for (;;) {
		if (text_eat(r, ')'))
			break;
		if (n == TC_MAX_DIMS)
			return -EINVAL;
		if ((rc = text_u64(r, &shape[n++])))
			return rc;
		comma = text_eat(r, ',');
		if (!comma) {
			if (!text_eat(r, ')'))
				return -EINVAL;
			break;
		}
	}
	if (n == 1 && !comma)
		return -EINVAL;
	*ndim = n;
	return 0;
}

/* The descr value: a string (mapped, or *unsup) or a structured list. */
static int read_descr(struct tc_text *r, int *dtype, int *unsup)
{
	const char *s;
	size_t n;
	int rc;

	if (text_peek(r) == '[') {
		*unsup = 1;
		return skip_literal(r, 0);
	}
	if ((rc = read_str(r, &s, &n)))
		return rc;
	for (size_t i = 0; i < sizeof npy_descrs / sizeof npy_descrs[0]; i++) {
		if (strlen(npy_descrs[i].descr) == n &&
		    !memcmp(npy_descrs[i].descr, s, n)) {
			*dtype = npy_descrs[i].dtype;
			return 0;
		}
	}
	*unsup = 1;
	return 0;
}

/* Parse the dict in [r->p, r->end) into *info (dtype, ndim, shape,
 * fortran_order). */
static int parse_dict(struct tc_text *r, struct tc_npy_info *info)
{
	enum { DESCR = 1, FORTRAN = 2, SHAPE = 4 };
	unsigned seen = 0, key;
	const char *k;
	size_t kn;
	uint64_t bytes = 1;
	int unsup = 0, rc, zero = 0;

	if (!text_eat(r, '{'))
		return -EINVAL;
	for (;;) {
		if (text_eat(r, '}'))
			break;
		if ((rc = read_str(r, &k, &kn)))
			return rc;
		if (kn == 5 && !memcmp(k, "descr", 5))
			key = DESCR;
		else if (kn == 13 && !memcmp(k, "fortran_order", 13))
			key = FORTRAN;
		else if (kn == 5 && !memcmp(k, "shape", 5))
			key = SHAPE;
		else
			return -EINVAL;
		if ((seen & key) || !text_eat(r, ':'))
			return -EINVAL;
		seen |= key;
		if (key == DESCR)
			rc = read_descr(r, &info->dtype, &unsup);
		else if (key == FORTRAN)
			rc = read_bool(r, &info->fortran_order);
		else
			rc = read_shape(r, info->shape, &info->ndim);
		if (rc)
			return rc;
		if (!text_eat(r, ',')) {
			if (!text_eat(r, '}'))
				return -EINVAL;
			break;
		}
	}
	text_ws(r);
	if (seen != (DESCR | FORTRAN | SHAPE) || r->p != r->end)
		return -EINVAL;

	/* The array's byte size must fit in a uint64 (an empty array always
	 * does, however large its other dims). */
	for (int i = 0; i < info->ndim; i++)
		zero |= info->shape[i] == 0;
	for (int i = 0; i < info->ndim && !zero; i++)
		if (__builtin_mul_overflow(bytes, info->shape[i], &bytes))
			return -EINVAL;
	if (!unsup && !zero &&
	    __builtin_mul_overflow(bytes, (uint64_t)tc_dtype_size(info->dtype),
				   &bytes))
		return -EINVAL;
	if (zero)
		bytes = 0;
	if (bytes > UINT64_MAX - info->data_offset)
		return -EINVAL;
	return unsup ? -ENOTSUP : 0;
}

int tc_npy_parse(const void *buf, size_t len, struct tc_npy_info *out)
{
	static const unsigned char magic[6] = { 0x93, 'N', 'U', 'M', 'P', 'Y' };
	const unsigned char *b = buf;
	struct tc_npy_info info;
	struct tc_text r;
	size_t pre;
	uint32_t hlen;
	int rc;

	if (len && memcmp(b, magic, len < 6 ? len : 6))
		return -EINVAL;
	if (len > 6 && (b[6] < 1 || b[6] > 3))
		return -EINVAL;
	if (len > 7 && b[7] != 0)
		return -EINVAL;
	if (len < 8)
		return -EAGAIN;
	pre = b[6] == 1 ? 10 : 12;
	if (len < pre)
		return -EAGAIN;
	if (b[6] == 1)
		hlen = (uint32_t)b[8] | (uint32_t)b[9] << 8;
	else
		hlen = (uint32_t)b[8] | (uint32_t)b[9] << 8 |
		       (uint32_t)b[10] << 16 | (uint32_t)b[11] << 24;
	if (hlen > NPY_MAX_HEADER)
		return -EINVAL;
	if (len - pre < hlen)
		return -EAGAIN;

	memset(&info, 0, sizeof info);
	info.data_offset = pre + hlen;
	r.p = (const char *)b + pre;
	r.end = r.p + hlen;
	if ((rc = parse_dict(&r, &info)))
		return rc;
	*out = info;
	return 0;
}
