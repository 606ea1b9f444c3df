/*
 * safetensors.h - .safetensors headers: checked the way the reference
 * reader checks them, listed, and written (internal to libtcache).
 *
 * Pure functions, no state: thread-safe.  Strings are UTF-8 with a
 * length (a name may hold "\u0000").
 */
#ifndef TC_SAFETENSORS_H
#define TC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* The format's dtypes, in its own order (increasing alignment, which a
 * writer sorts by, descending).  Not stored anywhere: may change. */
enum tc_st_dtype {
	TC_ST_BOOL = 0,
	TC_ST_F4,
	TC_ST_F6_E2M3,
	TC_ST_F6_E3M2,
	TC_ST_U8,
	TC_ST_I8,
	TC_ST_F8_E5M2,
	TC_ST_F8_E4M3,
	TC_ST_F8_E8M0,
	TC_ST_F8_E4M3FNUZ,
	TC_ST_F8_E5M2FNUZ,
	TC_ST_I16,
	TC_ST_U16,
	TC_ST_F16,
	TC_ST_BF16,
	TC_ST_I32,
	TC_ST_U32,
	TC_ST_F32,
	TC_ST_C64,
	TC_ST_F64,
	TC_ST_I64,
	TC_ST_U64,
	TC_ST_COUNT
};

#define TC_ST_PREFIX 8u                /* the u64 LE header length N */
#define TC_ST_MAX_HEADER 100000000u    /* the reference's limit on N */

/* The format's name ("F32", "BF16", "F8_E4M3"); NULL for an unknown
 * value.  Static storage. */
const char *tc_st_dtype_name(int st);
/* Bits per element (4, 6, 8 .. 64); 0 for an unknown value. */
unsigned tc_st_dtype_bits(int st);
/* Our dtype (enum tc_dtype) for @st, or -1 when we have none (F4, F6_*,
 * F8_E8M0, C64). */
int tc_st_dtype_ours(int st);
/* The format's dtype for ours (enum tc_dtype @dt), or -1. */
int tc_st_dtype_of(int dt);

/* Is [@s, @s + @n) valid UTF-8 (no surrogates, no overlong forms)?  1/0.
 * O(n). */
int tc_st_utf8(const char *s, size_t n);

struct tc_st_tensor {
	const char *name;      /* UTF-8, @name_len bytes (NUL after them) */
	size_t name_len;
	int dtype;             /* enum tc_st_dtype */
	uint32_t ndim;         /* any rank: the format has no limit */
	const uint64_t *shape; /* ndim values */
	uint64_t begin, end;   /* data_offsets: bytes after the header */
};

/* A checked header.  Everything points into storage it owns. */
struct tc_st_header {
	uint64_t data_start;   /* 8 + N: where the tensors' bytes begin */
	size_t ntensors;
	struct tc_st_tensor *tensors; /* by data_offsets: file order */
	char *names;           /* storage */
	uint64_t *dims;
};

/*
 * The header length N from a file's first 8 bytes @first8, for a file of
 * @file_len bytes: 0 and *@n when N <= TC_ST_MAX_HEADER and the file holds
 * 8 + N bytes; else -EINVAL (also for a file shorter than 8 bytes, whose
 * @first8 is not read).
 */
int tc_st_header_len(const void *first8, uint64_t file_len, uint64_t *n);

/*
 * Check a header as the reference reader (huggingface safetensors,
 * SafeTensors::read_metadata) does, and list its tensors.  @buf holds
 * the file's first @len = 8 + N bytes; @file_len is the whole file's size.
 * The rules:
 *   - N as tc_st_header_len() says; the N bytes are UTF-8 and one JSON
 *     value (RFC 8259, whitespace around it: the padding) that is an
 *     object;
 *   - its key "__metadata__", at most once, is null or an object of
 *     string values; every other key is a tensor: an object with "dtype"
 *     (one of the format's names), "shape" (an array of integers) and
 *     "data_offsets" (an array of two integers [begin, end]), each once;
 *     other keys in it are skipped; integers are decimal, no sign,
 *     fraction or exponent, at most 2^64 - 1;
 *   - sorted by data_offsets, the tensors cover [0, end of the last)
 *     with no gap or overlap (each begin is the previous end, end >=
 *     begin), each end - begin is numel x bits / 8 (a whole number of
 *     bytes; numel folded left to right, overflow is an error), and the
 *     file is exactly 8 + N + the last end bytes long.
 * Stricter than the reference: a tensor name twice is refused (the
 * reference keeps the last), and so is "-0".
 * 0 and *@out (free with tc_st_header_free) on success; -EINVAL when the
 * header breaks a rule (*@out untouched); -ENOMEM.  O(N log tensors);
 * memory O(N).
 */
int tc_st_parse(const void *buf, size_t len, uint64_t file_len,
		struct tc_st_header *out);

/* Free what tc_st_parse() filled in.  NULL-safe; *@h is zeroed. */
void tc_st_header_free(struct tc_st_header *h);

/*
 * A compact JSON object listing @h's tensors in file order, what
 * meta.json shows for the file:
 *   {"NAME":{"dtype":"float32","shape":[2,3],"offset":80},...}
 * dtype: our name (tc_dtype_name), or the format's name when we have none;
 * offset: where its bytes begin in the file (data_start + begin).
 * malloc'd, NUL-terminated, in *@out, its length in *@len.  -ENOMEM.
 */
int tc_st_list_json(const struct tc_st_header *h, char **out, size_t *len);

/* One tensor of a header to write. */
struct tc_st_item {
	const char *name;      /* UTF-8, not "__metadata__" */
	size_t name_len;
	int dtype;             /* enum tc_st_dtype */
	uint32_t ndim;
	const uint64_t *shape;
	uint64_t nbytes;       /* numel x bits / 8, exactly */
};

/* One "__metadata__" member: NUL-terminated UTF-8. */
struct tc_st_kv {
	const char *key, *value;
};

/*
 * Write a header for @n tensors whose bytes follow each other in the
 * given order (data_offsets from 0), with @nmeta "__metadata__" members
 * (none: no "__metadata__" key): the 8-byte length N, then the JSON
 * object padded with spaces to N, a multiple of 8.  malloc'd, in *@out,
 * with a NUL after it; *@len = 8 + N.  -EINVAL: a name or string not UTF-8, a name twice or
 * "__metadata__", an unknown dtype, an nbytes that is not numel x bits /
 * 8; -EFBIG: N would pass TC_ST_MAX_HEADER; -ENOMEM.  Names are written
 * as given, so a reader finds the same bytes.  O(output) (duplicate
 * names: O(n log n)).
 */
int tc_st_build(const struct tc_st_item *t, size_t n,
		const struct tc_st_kv *meta, size_t nmeta, char **out,
		size_t *len);

#endif
