/*
 * test_dtype.c - the dtype table and the .npy header parser.
 *
 * Headers are built byte-exact the way numpy.lib.format writes them (magic,
 * version, LE length, dict, spaces to a multiple of 64, '\n').  Every
 * parse is given a malloc'd copy of exactly the bytes under test, so ASan
 * catches a read past the end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtype.h"

/* Build a header like numpy's _wrap_header(): returns its length. */
static size_t npy_build(unsigned char *out, int major, const char *dict)
{
	size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
	size_t hlen = dl + 1, pad = 64 - (pre + hlen) % 64;

	hlen += pad;
	memcpy(out, "\x93NUMPY", 6);
	out[6] = (unsigned char)major;
	out[7] = 0;
	out[8] = (unsigned char)hlen;
	out[9] = (unsigned char)(hlen >> 8);
	if (major != 1) {
		out[10] = (unsigned char)(hlen >> 16);
		out[11] = (unsigned char)(hlen >> 24);
	}
	memcpy(out + pre, dict, dl);
	memset(out + pre + dl, ' ', pad);
	out[pre + hlen - 1] = '\n';
	return pre + hlen;
}

/* tc_npy_parse on an exact-size heap copy of @buf[0..len). */
static int parse(const void *buf, size_t len, struct tc_npy_info *out)
{
	void *copy = malloc(len ? len : 1);
	int rc;

	if (!copy)
		abort();
	memcpy(copy, buf, len);
	rc = tc_npy_parse(copy, len, out);
	free(copy);
	return rc;
}

/* Parse a v1.0 header built from @dict; @info may be NULL. */
static int parse_dict(const char *dict, struct tc_npy_info *info)
{
	unsigned char h[4096];
	struct tc_npy_info tmp;
	size_t n = npy_build(h, 1, dict);

	return parse(h, n, info ? info : &tmp);
}

static void t_dtype_table(void)
{
	static const struct {
		int dt;
		const char *name;
		size_t size;
	} want[] = {
		{ TC_DT_BOOL, "bool", 1 },
		{ TC_DT_INT8, "int8", 1 },
		{ TC_DT_INT16, "int16", 2 },
		{ TC_DT_INT32, "int32", 4 },
		{ TC_DT_INT64, "int64", 8 },
		{ TC_DT_UINT8, "uint8", 1 },
		{ TC_DT_UINT16, "uint16", 2 },
		{ TC_DT_UINT32, "uint32", 4 },
		{ TC_DT_UINT64, "uint64", 8 },
		{ TC_DT_FLOAT16, "float16", 2 },
		{ TC_DT_BFLOAT16, "bfloat16", 2 },
		{ TC_DT_FLOAT32, "float32", 4 },
		{ TC_DT_FLOAT64, "float64", 8 },
		{ TC_DT_FLOAT8_E4M3FN, "float8_e4m3fn", 1 },
		{ TC_DT_FLOAT8_E4M3FNUZ, "float8_e4m3fnuz", 1 },
		{ TC_DT_FLOAT8_E5M2, "float8_e5m2", 1 },
		{ TC_DT_FLOAT8_E5M2FNUZ, "float8_e5m2fnuz", 1 },
	};
	int seen[TC_DT_COUNT] = { 0 };

	CHECK(sizeof want / sizeof want[0] == TC_DT_COUNT);
	CHECK(TC_DT_UINT8 == 0); /* on disk: the raw default */
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		int dt = want[i].dt;
		REQUIRE(dt >= 0 && dt < TC_DT_COUNT);
		seen[dt]++;
		REQUIRE(tc_dtype_name(dt) != NULL);
		CHECK(strcmp(tc_dtype_name(dt), want[i].name) == 0);
		CHECK(tc_dtype_size(dt) == want[i].size);
		CHECK(tc_dtype_from_name(want[i].name) == dt);
		CHECK(tc_dtype_from_name(tc_dtype_name(dt)) == dt);
	}
	for (int dt = 0; dt < TC_DT_COUNT; dt++)
		CHECK(seen[dt] == 1);
}

/* What torch and numpy write for our dtypes (TensorDict's meta.json, an
 * array's __array_interface__ typestr, np.dtype names). */
static void t_dtype_aliases(void)
{
	static const struct {
		const char *name;
		int dt;
	} ok[] = {
		{ "torch.float32", TC_DT_FLOAT32 }, { "torch.float", TC_DT_FLOAT32 },
		{ "torch.float16", TC_DT_FLOAT16 }, { "torch.half", TC_DT_FLOAT16 },
		{ "torch.bfloat16", TC_DT_BFLOAT16 },
		{ "torch.float64", TC_DT_FLOAT64 }, { "torch.double", TC_DT_FLOAT64 },
		{ "torch.int8", TC_DT_INT8 },       { "torch.int16", TC_DT_INT16 },
		{ "torch.short", TC_DT_INT16 },     { "torch.int32", TC_DT_INT32 },
		{ "torch.int", TC_DT_INT32 },       { "torch.int64", TC_DT_INT64 },
		{ "torch.long", TC_DT_INT64 },      { "torch.uint8", TC_DT_UINT8 },
		{ "torch.uint16", TC_DT_UINT16 },   { "torch.uint64", TC_DT_UINT64 },
		{ "torch.bool", TC_DT_BOOL },
		{ "torch.float8_e4m3fn", TC_DT_FLOAT8_E4M3FN },
		{ "torch.float8_e5m2", TC_DT_FLOAT8_E5M2 },
		{ "torch.float8_e5m2fnuz", TC_DT_FLOAT8_E5M2FNUZ },
		{ "<f4", TC_DT_FLOAT32 }, { "f4", TC_DT_FLOAT32 },
		{ "=f4", TC_DT_FLOAT32 }, { "<f2", TC_DT_FLOAT16 },
		{ "<f8", TC_DT_FLOAT64 }, { "|u1", TC_DT_UINT8 },
		{ "u1", TC_DT_UINT8 },    { "|i1", TC_DT_INT8 },
		{ "<i2", TC_DT_INT16 },   { "<i4", TC_DT_INT32 },
		{ "<i8", TC_DT_INT64 },   { "i8", TC_DT_INT64 },
		{ "<u8", TC_DT_UINT64 },  { "|b1", TC_DT_BOOL },
		{ "b1", TC_DT_BOOL },
		{ "float", TC_DT_FLOAT64 }, { "double", TC_DT_FLOAT64 },
		{ "single", TC_DT_FLOAT32 }, { "half", TC_DT_FLOAT16 },
		{ "bool_", TC_DT_BOOL },  { "int_", TC_DT_INT64 },
		{ "intc", TC_DT_INT32 },  { "ubyte", TC_DT_UINT8 },
		{ "longlong", TC_DT_INT64 }, { "ulonglong", TC_DT_UINT64 },
	};

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int dt = tc_dtype_from_name(ok[i].name);
		if (dt != ok[i].dt)
			printf("# %s: %d\n", ok[i].name, dt);
		CHECK(dt == ok[i].dt);
	}
}

static void t_dtype_unknown(void)
{
	static const char *const bad[] = {
		"", "Float32", "FLOAT32", "float32 ", " float32",
		"int", "uint", "float8", "bfloat", "float8_e4m3", "uint8\n",
		"complex64", "float128", "torch.", "torch.float128",
		"torch.cfloat", "torch.single", "Torch.float32", "torch.bool_",
		"torch.<f4", ">f4", ">i8", "|f4", "<f3", "<c8", "f", "?", "<",
		"<f44", "==f4", "<U4", "O",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(tc_dtype_from_name(bad[i]) == -EINVAL);
	CHECK(tc_dtype_from_name(NULL) == -EINVAL);
	CHECK(tc_dtype_size(-1) == 0);
	CHECK(tc_dtype_size(TC_DT_COUNT) == 0);
	CHECK(tc_dtype_size(1000) == 0);
	CHECK(tc_dtype_name(-1) == NULL);
	CHECK(tc_dtype_name(TC_DT_COUNT) == NULL);
}

/* The builder reproduces numpy's bytes for np.save of float32 (2, 3). */
static void t_npy_numpy_bytes(void)
{
	static const char dict[] =
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
	unsigned char want[128], got[256];
	struct tc_npy_info info;
	size_t n;

	memcpy(want, "\x93NUMPY\x01\x00\x76\x00", 10);
	memcpy(want + 10, dict, sizeof dict - 1);
	memset(want + 10 + sizeof dict - 1, ' ', 128 - 10 - (sizeof dict - 1));
	want[127] = '\n';
	n = npy_build(got, 1, dict);
	REQUIRE(n == 128);
	CHECK(memcmp(got, want, 128) == 0);

	memset(&info, 0, sizeof info);
	CHECK(parse(want, sizeof want, &info) == 0);
	CHECK(info.dtype == TC_DT_FLOAT32);
	CHECK(info.ndim == 2);
	CHECK(info.shape[0] == 2 && info.shape[1] == 3);
	CHECK(info.fortran_order == 0);
	CHECK(info.data_offset == 128);
}

static void t_npy_valid(void)
{
	static const struct {
		int major;
		const char *dict;
		int dtype, ndim;
		uint64_t shape[4];
		int fortran;
	} cases[] = {
		{ 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
		  TC_DT_FLOAT64, 0, { 0 }, 0 },
		{ 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (7,), }",
		  TC_DT_INT64, 1, { 7 }, 0 },
		{ 1, "{'descr': '|u1', 'fortran_order': False, "
		     "'shape': (2, 3, 4, 5), }",
		  TC_DT_UINT8, 4, { 2, 3, 4, 5 }, 0 },
		{ 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }",
		  TC_DT_FLOAT32, 2, { 3, 4 }, 1 },
		{ 2, "{'descr': '<f2', 'fortran_order': False, 'shape': (10,), }",
		  TC_DT_FLOAT16, 1, { 10 }, 0 },
		{ 3, "{'descr': '<u8', 'fortran_order': False, 'shape': (1, 2), }",
		  TC_DT_UINT64, 2, { 1, 2 }, 0 },
		{ 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (8,), }",
		  TC_DT_BOOL, 1, { 8 }, 0 },
		{ 1, "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }",
		  TC_DT_INT8, 1, { 3 }, 0 },
		{ 1, "{'descr': '<i1', 'fortran_order': False, 'shape': (3,), }",
		  TC_DT_INT8, 1, { 3 }, 0 },
		{ 1, "{'descr': '<u1', 'fortran_order': False, 'shape': (3,), }",
		  TC_DT_UINT8, 1, { 3 }, 0 },
		{ 1, "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }",
		  TC_DT_INT16, 1, { 3 }, 0 },
		{ 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }",
		  TC_DT_INT32, 1, { 3 }, 0 },
		{ 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }",
		  TC_DT_UINT16, 1, { 3 }, 0 },
		{ 1, "{'descr': '<u4', 'fortran_order': False, 'shape': (3,), }",
		  TC_DT_UINT32, 1, { 3 }, 0 },
		/* empty arrays; a zero dim makes huge others harmless */
		{ 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }",
		  TC_DT_FLOAT32, 2, { 0, 5 }, 0 },
		{ 1, "{'descr': '<f8', 'fortran_order': False, 'shape': "
		     "(18446744073709551615, 0, 18446744073709551615), }",
		  TC_DT_FLOAT64, 3,
		  { UINT64_MAX, 0, UINT64_MAX }, 0 },
		/* other writers: key order, quotes, whitespace, no commas */
		{ 1, "{\"shape\": (2, 3), \"fortran_order\": False, "
		     "\"descr\": \"<i4\"}",
		  TC_DT_INT32, 2, { 2, 3 }, 0 },
		{ 1, "  {'descr':'<f4','fortran_order':False,'shape':(2,3,)}",
		  TC_DT_FLOAT32, 2, { 2, 3 }, 0 },
		{ 1, "{ 'descr' : '<f4' ,\n\t'fortran_order' : True ,\r\n"
		     "  'shape' : ( 5 , ) , }",
		  TC_DT_FLOAT32, 1, { 5 }, 1 },
		{ 1, "{'fortran_order': False, 'shape': (2, 3), 'descr': '<f4'}",
		  TC_DT_FLOAT32, 2, { 2, 3 }, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned char h[512];
		struct tc_npy_info info;
		size_t n = npy_build(h, cases[i].major, cases[i].dict);
		int rc;

		memset(&info, 0xa5, sizeof info);
		rc = parse(h, n, &info);
		if (rc)
			printf("# case %zu: rc %d\n", i, rc);
		CHECK(rc == 0);
		if (rc)
			continue;
		CHECK(n % 64 == 0);
		CHECK(info.data_offset == n);
		CHECK(info.dtype == cases[i].dtype);
		CHECK(info.ndim == cases[i].ndim);
		CHECK(info.fortran_order == cases[i].fortran);
		for (int d = 0; d < cases[i].ndim; d++)
			CHECK(info.shape[d] == cases[i].shape[d]);
	}
}

/* Data after the header is ignored; exact version-2 offsets. */
static void t_npy_with_data(void)
{
	unsigned char h[1024];
	struct tc_npy_info info;
	size_t n = npy_build(h, 2,
		"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }");

	memset(h + n, 0x7f, 16);
	CHECK(n == 128);
	CHECK(parse(h, n + 16, &info) == 0);
	CHECK(info.data_offset == 128);
	CHECK(info.ndim == 1 && info.shape[0] == 4);

	/* TC_MAX_DIMS dims, and a version 1.0 length above 255 (both bytes) */
	char dict[512];
	int k = snprintf(dict, sizeof dict,
			 "{'descr': '<f4', 'fortran_order': False, 'shape': (");
	for (int d = 0; d < TC_MAX_DIMS; d++)
		k += snprintf(dict + k, sizeof dict - (size_t)k, "2, ");
	k += snprintf(dict + k, sizeof dict - (size_t)k, ")%200s}", "");
	n = npy_build(h, 1, dict);
	REQUIRE(n > 256 && n <= sizeof h);
	CHECK(h[9] != 0 && (size_t)(h[8] | h[9] << 8) == n - 10);
	CHECK(parse(h, n, &info) == 0);
	CHECK(info.ndim == TC_MAX_DIMS);
	CHECK(info.shape[0] == 2 && info.shape[TC_MAX_DIMS - 1] == 2);
	CHECK(info.data_offset == n);
	/* 32 dims of 4: the element count itself overflows */
	k = snprintf(dict, sizeof dict,
		     "{'descr': '<f4', 'fortran_order': False, 'shape': (");
	for (int d = 0; d < TC_MAX_DIMS; d++)
		k += snprintf(dict + k, sizeof dict - (size_t)k, "4, ");
	snprintf(dict + k, sizeof dict - (size_t)k, ")}");
	CHECK(parse_dict(dict, NULL) == -EINVAL);
}

static void t_npy_truncated(void)
{
	static const char dict[] =
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
	for (int major = 1; major <= 3; major++) {
		unsigned char h[256];
		struct tc_npy_info info;
		size_t n = npy_build(h, major, dict);

		for (size_t len = 0; len < n; len++) {
			memset(&info, 0x5a, sizeof info);
			int rc = parse(h, len, &info);
			if (rc != -EAGAIN)
				printf("# v%d len %zu: rc %d\n", major, len, rc);
			CHECK(rc == -EAGAIN);
		}
		CHECK(parse(h, n, &info) == 0);
	}
	/* NULL with length 0 asks for more */
	{
		struct tc_npy_info info;
		CHECK(tc_npy_parse(NULL, 0, &info) == -EAGAIN);
	}
}

static void t_npy_bad_prefix(void)
{
	static const char dict[] =
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
	unsigned char h[256];
	struct tc_npy_info info;
	size_t n = npy_build(h, 1, dict);

	/* bad magic, each byte; and as soon as it is visible */
	for (size_t i = 0; i < 6; i++) {
		h[i] ^= 0x20;
		CHECK(parse(h, n, &info) == -EINVAL);
		CHECK(parse(h, i + 1, &info) == -EINVAL);
		h[i] ^= 0x20;
	}
	CHECK(parse("PK\x03\x04", 4, &info) == -EINVAL);
	/* unknown versions */
	static const unsigned char vers[][2] = {
		{ 0, 0 }, { 4, 0 }, { 1, 1 }, { 2, 1 }, { 255, 0 }, { 3, 9 },
	};
	for (size_t i = 0; i < sizeof vers / sizeof vers[0]; i++) {
		h[6] = vers[i][0];
		h[7] = vers[i][1];
		CHECK(parse(h, n, &info) == -EINVAL);
		CHECK(parse(h, 8, &info) == -EINVAL);
	}
	/* a header length no writer produces (4 GiB, 16 MiB) */
	n = npy_build(h, 2, dict);
	memset(h + 8, 0xff, 4);
	CHECK(parse(h, n, &info) == -EINVAL);
	h[8] = 0;
	h[9] = 0;
	h[10] = 0;
	h[11] = 1;
	CHECK(parse(h, n, &info) == -EINVAL);
	/* header length 0: no dict at all */
	n = npy_build(h, 1, dict);
	h[8] = h[9] = 0;
	CHECK(parse(h, n, &info) == -EINVAL);
	/* a length that cuts the dict short */
	h[8] = 40;
	CHECK(parse(h, n, &info) == -EINVAL);
}

static void t_npy_malformed(void)
{
	static const char *const bad[] = {
		"",
		"{}",
		"[]",
		"{'descr': '<f4', 'fortran_order': False}",          /* shape */
		"{'fortran_order': False, 'shape': (2,)}",           /* descr */
		"{'descr': '<f4', 'shape': (2,)}",                   /* fortran */
		"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
		"'shape': (2,)}",                                    /* dup */
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
		"'shape': (2,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
		"'extra': 1}",                                       /* key */
		"{'descr': '<f4', 'fortran_order': False, 'shape': (5)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': 5}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': [5]}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': ('2',)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2, x)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2,,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (03,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (3L,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (1_0,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}",
		/* 33 dims */
		"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, "
		"1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
		"1, 1, 1, 1, 1, 1, 1, 1)}",
		/* dims overflowing: 2^64 itself, a product, times itemsize */
		"{'descr': '<f4', 'fortran_order': False, "
		"'shape': (18446744073709551616,)}",
		"{'descr': '|u1', 'fortran_order': False, "
		"'shape': (4294967296, 4294967296)}",
		"{'descr': '<f8', 'fortran_order': False, "
		"'shape': (2305843009213693952,)}",
		"{'descr': '<f4', 'fortran_order': 'False', 'shape': (2,)}",
		"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,)}",
		"{'descr': '<f4', 'fortran_order': false, 'shape': (2,)}",
		"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
		"{'descr': 4, 'fortran_order': False, 'shape': (2,)}",
		"{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}",
		"{'descr': '<f4\", 'fortran_order': False, 'shape': (2,)}",
		"{'descr': '<\\x66\\x34', 'fortran_order': False, 'shape': (2,)}",
		"{descr: '<f4', 'fortran_order': False, 'shape': (2,)}",
		"{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}",
		"{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)};",
		"{, 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2,),,}",
		"x{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
		/* broken structured descrs */
		"{'descr': [('x', '<f4'), 'fortran_order': False, 'shape': (2,)}",
		"{'descr': [('x', '<f4']), 'fortran_order': False, "
		"'shape': (2,)}",
		"{'descr': [('x', -1)], 'fortran_order': False, 'shape': (2,)}",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct tc_npy_info info, before;
		int rc;

		memset(&info, 0x3c, sizeof info);
		before = info;
		rc = parse_dict(bad[i], &info);
		if (rc != -EINVAL)
			printf("# case %zu: rc %d: %s\n", i, rc, bad[i]);
		CHECK(rc == -EINVAL);
		CHECK(memcmp(&info, &before, sizeof info) == 0);
	}
	/* the data offset plus the array size must fit in a uint64 */
	CHECK(parse_dict("{'descr': '|u1', 'fortran_order': False, "
			 "'shape': (18446744073709551615,)}", NULL) == -EINVAL);
	CHECK(parse_dict("{'descr': '|u1', 'fortran_order': False, "
			 "'shape': (18446744073709551487,)}", NULL) == 0);
	/* a NUL inside the header */
	{
		unsigned char h[256];
		struct tc_npy_info info;
		size_t n = npy_build(h, 1, "{'descr': '<f4', 'fortran_order': "
					   "False, 'shape': (2,)}");
		h[n - 2] = '\0';
		CHECK(parse(h, n, &info) == -EINVAL);
		h[n - 2] = ' ';
		h[12] = '\0'; /* inside 'descr' */
		CHECK(parse(h, n, &info) == -EINVAL);
	}
}

static void t_npy_unsupported(void)
{
	static const char *const descrs[] = {
		"'>f4'", "'>i8'", "'>u2'", "'>i1'", "'<c8'", "'<c16'", "'|O'",
		"'<U5'", "'|S3'", "'|V16'", "'<M8[ns]'", "'<m8[s]'", "'=f4'",
		"'<b1'", "'<f16'", "'bfloat16'", "'float32'", "''",
		"[('x', '<f4'), ('y', '<i4', (2,))]",
		"[('a', [('b', '<f8'), ('c', '|u1')]), ('d', '<i2', (2, 3))]",
		"[(('title', 'x'), '<f4'),]",
		"[]",
	};
	for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++) {
		char dict[256];
		struct tc_npy_info info, before;
		int rc;

		snprintf(dict, sizeof dict, "{'descr': %s, 'fortran_order': "
			 "False, 'shape': (2, 3), }", descrs[i]);
		memset(&info, 0x11, sizeof info);
		before = info;
		rc = parse_dict(dict, &info);
		if (rc != -ENOTSUP)
			printf("# case %zu: rc %d: %s\n", i, rc, dict);
		CHECK(rc == -ENOTSUP);
		CHECK(memcmp(&info, &before, sizeof info) == 0);
	}
	/* nesting: 31 levels are a (strange) structured descr, 40 too deep */
	for (int depth = 31; depth <= 40; depth += 9) {
		char dict[256];
		int k = snprintf(dict, sizeof dict, "{'descr': ");
		for (int d = 0; d < depth; d++)
			dict[k++] = '[';
		for (int d = 0; d < depth; d++)
			dict[k++] = ']';
		snprintf(dict + k, sizeof dict - (size_t)k,
			 ", 'fortran_order': False, 'shape': (2,)}");
		CHECK(parse_dict(dict, NULL) ==
		      (depth == 31 ? -ENOTSUP : -EINVAL));
	}
	/* a malformed header stays -EINVAL whatever its descr */
	CHECK(parse_dict("{'descr': '>f4', 'fortran_order': False, "
			 "'shape': (5)}", NULL) == -EINVAL);
	CHECK(parse_dict("{'descr': '>f4', 'shape': (5,)}", NULL) == -EINVAL);
}

/* Hostile bytes: every single-byte change and every cut of a valid header
 * gives one of the documented answers, and ASan sees no bad read. */
static void t_npy_mutations(void)
{
	static const unsigned char vals[] = {
		0, ' ', '\'', '"', '(', ')', ',', ':', '[', ']', '{', '}',
		'0', '9', 'T', '\n', 0x80, 0xff,
	};
	unsigned char h[256];
	size_t n = npy_build(h, 2, "{'descr': [('x', '<f4', (2,))], "
				   "'fortran_order': True, 'shape': (2, 3), }");
	int counts[4] = { 0 };

	for (size_t i = 0; i < n; i++) {
		unsigned char keep = h[i];
		for (size_t v = 0; v < sizeof vals; v++) {
			struct tc_npy_info info;
			int rc;

			h[i] = vals[v];
			rc = parse(h, n, &info);
			CHECK(rc == 0 || rc == -EAGAIN || rc == -EINVAL ||
			      rc == -ENOTSUP);
			counts[rc == 0 ? 0 : rc == -EAGAIN ? 1
				: rc == -EINVAL ? 2 : 3]++;
			rc = parse(h, i + 1, &info);
			CHECK(rc == 0 || rc == -EAGAIN || rc == -EINVAL ||
			      rc == -ENOTSUP);
		}
		h[i] = keep;
	}
	CHECK(counts[2] > 0 && counts[3] > 0);
}

int main(void)
{
	RUN(t_dtype_table);
	RUN(t_dtype_aliases);
	RUN(t_dtype_unknown);
	RUN(t_npy_numpy_bytes);
	RUN(t_npy_valid);
	RUN(t_npy_with_data);
	RUN(t_npy_truncated);
	RUN(t_npy_bad_prefix);
	RUN(t_npy_malformed);
	RUN(t_npy_unsupported);
	RUN(t_npy_mutations);
	return check_done();
}
