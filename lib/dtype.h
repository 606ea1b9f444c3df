/*
 * dtype.h - tensor element types and .npy headers (internal to libtcache).
 */
#ifndef TC_DTYPE_H
#define TC_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "tcache.h"

/* Element types.  The numeric values are stored on disk: never renumber,
 * only append. */
enum tc_dtype {
	TC_DT_UINT8 = 0, /* the default for raw tensors */
	TC_DT_BOOL,
	TC_DT_INT8,
	TC_DT_INT16,
	TC_DT_INT32,
	TC_DT_INT64,
	TC_DT_UINT16,
	TC_DT_UINT32,
	TC_DT_UINT64,
	TC_DT_FLOAT16,
	TC_DT_BFLOAT16,
	TC_DT_FLOAT32,
	TC_DT_FLOAT64,
	TC_DT_FLOAT8_E4M3FN,
	TC_DT_FLOAT8_E4M3FNUZ,
	TC_DT_FLOAT8_E5M2,
	TC_DT_FLOAT8_E5M2FNUZ,
	TC_DT_COUNT
};

/* Bytes per element; 0 for an unknown value. */
size_t tc_dtype_size(int dt);

/* The numpy/torch-style name ("float32", "bfloat16", "float8_e4m3fn");
 * NULL for an unknown value.  Static storage. */
const char *tc_dtype_name(int dt);

/* The dtype for @name, or -EINVAL.  Accepted, case-sensitive, nothing
 * around them: our names (tc_dtype_name()); torch's ("torch." and our
 * name, or torch.float, torch.half, torch.double, torch.short, torch.int,
 * torch.long); numpy's as np.dtype() reads them (half, single, double,
 * float = float64, bool_, byte, ubyte, short, ushort, intc, uintc, int_,
 * longlong, ulonglong) and its little-endian or byte-order-free type
 * strings ("<f4", "f4", "=f4", "|u1", "|b1", "<i8").  Not: big-endian
 * (">f4"), one-letter codes ("f"), complex and wider types. */
int tc_dtype_from_name(const char *name);

struct tc_npy_info {
	int dtype;                  /* enum tc_dtype */
	int ndim;                   /* 0 .. TC_MAX_DIMS (0: a scalar) */
	uint64_t shape[TC_MAX_DIMS];
	int fortran_order;
	uint64_t data_offset;       /* bytes before the array data */
};

/*
 * Parse a .npy header (format versions 1.0, 2.0, 3.0) from the first @len
 * bytes of a file.  Little-endian ('<' or '|') descrs of the types above
 * are understood ('<f2' float16, '<f4', '<f8', '<i1'..'<i8', '<u1'..'<u8',
 * '|b1' bool, '|u1', '|i1').  On success fills *@out and returns 0.
 * -EAGAIN: @len is shorter than the header (give more bytes);
 * -EINVAL: not a .npy header or malformed;
 * -ENOTSUP: well-formed but a dtype we do not type (big-endian, structured,
 *  object...): the file is then stored as raw uint8.
 */
int tc_npy_parse(const void *buf, size_t len, struct tc_npy_info *out);

#endif
