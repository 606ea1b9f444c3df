/*
 * test_safetensors.c - .safetensors headers: each rule of the reference
 * reader, the listing for meta.json, and the header the view writes.
 *
 * Files are built here from the format's rules (8-byte LE N, N bytes of
 * JSON, data).  Every parse gets a malloc'd copy of exactly the header's
 * 8 + N bytes, so ASan catches a read past its end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtype.h"
#include "safetensors.h"
#include "testutil.h"

/* A file: N = strlen(@json), the JSON, then @data bytes (pattern). */
static unsigned char *mkfile(const char *json, size_t data, size_t *len)
{
	size_t n = strlen(json);
	unsigned char *b = malloc(8 + n + data + 1);

	if (!b)
		abort();
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)n >> (8 * i));
	memcpy(b + 8, json, n);
	for (size_t i = 0; i < data; i++)
		b[8 + n + i] = (unsigned char)i;
	*len = 8 + n + data;
	return b;
}

/* tc_st_parse of the file [@b, @b + @len) as a reader would: the header
 * length first, then exactly 8 + N bytes on the heap. */
static int parse_file(const unsigned char *b, size_t len,
		      struct tc_st_header *h)
{
	uint64_t n;
	unsigned char *copy;
	int rc;

	if (len < 8)
		return tc_st_header_len(b, len, &n);
	if ((rc = tc_st_header_len(b, len, &n)))
		return rc;
	if (!(copy = malloc(8 + n)))
		abort();
	memcpy(copy, b, 8 + n);
	rc = tc_st_parse(copy, 8 + n, len, h);
	free(copy);
	return rc;
}

/* Parse a file of @json and @data bytes; the header is freed. */
static int parse_json(const char *json, size_t data)
{
	struct tc_st_header h;
	size_t len;
	unsigned char *b = mkfile(json, data, &len);
	int rc = parse_file(b, len, &h);

	if (!rc)
		tc_st_header_free(&h);
	free(b);
	return rc;
}

static void t_dtype_table_maps_ours_both_ways(void)
{
	CHECK(!strcmp(tc_st_dtype_name(TC_ST_F32), "F32"));
	CHECK(!strcmp(tc_st_dtype_name(TC_ST_F8_E4M3), "F8_E4M3"));
	CHECK(tc_st_dtype_name(TC_ST_COUNT) == NULL);
	CHECK(tc_st_dtype_name(-1) == NULL);
	CHECK(tc_st_dtype_bits(TC_ST_F4) == 4);
	CHECK(tc_st_dtype_bits(TC_ST_BF16) == 16);
	CHECK(tc_st_dtype_bits(TC_ST_COUNT) == 0);
	CHECK(tc_st_dtype_ours(TC_ST_F8_E4M3) == TC_DT_FLOAT8_E4M3FN);
	CHECK(tc_st_dtype_ours(TC_ST_F8_E5M2) == TC_DT_FLOAT8_E5M2);
	CHECK(tc_st_dtype_ours(TC_ST_BOOL) == TC_DT_BOOL);
	CHECK(tc_st_dtype_ours(TC_ST_C64) == -1);
	/* every dtype of ours has a name in the format, of the same width */
	for (int dt = 0; dt < TC_DT_COUNT; dt++) {
		int st = tc_st_dtype_of(dt);
		CHECK(st >= 0 && tc_st_dtype_ours(st) == dt);
		CHECK(tc_st_dtype_bits(st) == 8 * tc_dtype_size(dt));
	}
	/* the format's order is by width from U8 on (BOOL, then the
	 * sub-byte ones, before it) */
	for (int st = TC_ST_U8 + 1; st < TC_ST_COUNT; st++)
		CHECK(tc_st_dtype_bits(st) >= tc_st_dtype_bits(st - 1));
	CHECK(tc_st_dtype_of(TC_DT_COUNT) == -1);
}

static void t_parse_lists_tensors_in_file_order(void)
{
	/* keys in no particular order; metadata; padding to 8 */
	const char *json =
		"{\"b\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[24,40]},"
		"\"__metadata__\":{\"format\":\"pt\"},"
		"\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
		"\"c\":{\"shape\":[],\"data_offsets\":[40,42],\"dtype\":\"BF16\"},"
		"\"d\":{\"dtype\":\"BOOL\",\"shape\":[0,5],\"data_offsets\":[42,42]}}"
		"     ";
	struct tc_st_header h;
	size_t len;
	unsigned char *b = mkfile(json, 42, &len);

	REQUIRE(parse_file(b, len, &h) == 0);
	CHECK(h.data_start == 8 + strlen(json));
	REQUIRE(h.ntensors == 4);
	CHECK(!strcmp(h.tensors[0].name, "a") && h.tensors[0].name_len == 1);
	CHECK(h.tensors[0].dtype == TC_ST_F32 && h.tensors[0].ndim == 2);
	CHECK(h.tensors[0].shape[0] == 2 && h.tensors[0].shape[1] == 3);
	CHECK(h.tensors[0].begin == 0 && h.tensors[0].end == 24);
	CHECK(!strcmp(h.tensors[1].name, "b") && h.tensors[1].dtype == TC_ST_I64);
	CHECK(!strcmp(h.tensors[2].name, "c") && h.tensors[2].ndim == 0);
	CHECK(h.tensors[2].dtype == TC_ST_BF16 && h.tensors[2].end == 42);
	CHECK(!strcmp(h.tensors[3].name, "d") && h.tensors[3].begin == 42);
	tc_st_header_free(&h);
	tc_st_header_free(&h); /* zeroed: again is harmless */
	free(b);
}

static void t_parse_accepts_what_the_reference_accepts(void)
{
	/* an empty file of tensors */
	CHECK(parse_json("{}", 0) == 0);
	CHECK(parse_json(" {\t}\n\r  ", 0) == 0);
	CHECK(parse_json("{\"__metadata__\":null}", 0) == 0);
	CHECK(parse_json("{\"__metadata__\":{}}", 0) == 0);
	/* unknown fields of a tensor are skipped, any JSON in them */
	CHECK(parse_json("{\"t\":{\"x\":[1,{\"y\":null}],\"dtype\":\"U8\","
			 "\"shape\":[3],\"z\":-1.5e+3,\"data_offsets\":[0,3]}}",
			 3) == 0);
	/* sub-byte dtypes in whole bytes */
	CHECK(parse_json("{\"t\":{\"dtype\":\"F4\",\"shape\":[4],"
			 "\"data_offsets\":[0,2]}}", 2) == 0);
	CHECK(parse_json("{\"t\":{\"dtype\":\"F6_E2M3\",\"shape\":[4],"
			 "\"data_offsets\":[0,3]}}", 3) == 0);
	/* a dim of zero after a huge one: numel 0 */
	CHECK(parse_json("{\"t\":{\"dtype\":\"F64\",\"shape\":[4294967296,0],"
			 "\"data_offsets\":[0,0]}}", 0) == 0);
}

static void t_parse_decodes_escaped_names(void)
{
	const char *json =
		"{\"a\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\u0000z\":"
		"{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
	static const char want[] = "a\xc3\xa9\xf0\x9f\x98\x80\n\"\\/\0z";
	struct tc_st_header h;
	size_t len;
	unsigned char *b = mkfile(json, 1, &len);

	REQUIRE(parse_file(b, len, &h) == 0);
	CHECK(h.ntensors == 1);
	CHECK(h.tensors[0].name_len == sizeof(want) - 1);
	CHECK(!memcmp(h.tensors[0].name, want, sizeof(want) - 1));
	tc_st_header_free(&h);
	free(b);
}

static void t_parse_refuses_each_broken_rule(void)
{
	static const struct {
		const char *json;
		size_t data;
		const char *why;
	} bad[] = {
		{ "", 0, "no JSON" },
		{ "[]", 0, "not an object" },
		{ "\"x\"", 0, "not an object" },
		{ "{} x", 0, "trailing garbage" },
		{ "{", 0, "cut short" },
		{ "{\"t\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "no dtype" },
		{ "{\"t\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, "no shape" },
		{ "{\"t\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, "no data_offsets" },
		{ "{\"t\":{}}", 0, "an empty tensor object" },
		{ "{\"t\":[]}", 0, "a tensor not an object" },
		{ "{\"t\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype" },
		{ "{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype case" },
		{ "{\"t\":{\"dtype\":\"float32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "our dtype name" },
		{ "{\"t\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype a number" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "a fraction" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4, "an exponent" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "a sign" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "a leading zero" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "a string dim" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "shape not an array" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,4]}}", 4, "past 2^64" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, "one offset" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4, "three offsets" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "not from 0" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		  "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, "end before begin" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "a hole" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "an overlap" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "size != numel x itemsize" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 5, "a byte past the data" },
		{ "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 3, "a byte short" },
		{ "{\"t\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2, "a partial byte" },
		{ "{\"t\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}", 0, "numel overflows before the 0" },
		{ "{\"t\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 0, "bits overflow" },
		{ "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
		  "\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, "a name twice" },
		{ "{\"t\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "a field twice" },
		{ "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "metadata twice" },
		{ "{\"__metadata__\":{\"a\":1}}", 0, "metadata not strings" },
		{ "{\"__metadata__\":\"a\"}", 0, "metadata not an object" },
		{ "{\"t\\ud800\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "a lone high surrogate" },
		{ "{\"t\\udc00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "a lone low surrogate" },
		{ "{\"t\\x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "an unknown escape" },
		{ "{\"t\\u12\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "a short \\u" },
		{ "{\"t\n\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "a raw control byte" },
		{ "{\"t\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "not UTF-8" },
		{ "{\"t\xed\xa0\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "an encoded surrogate" },
		{ "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],}}", 1, "a trailing comma" },
		{ "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}", 1, "unclosed" },
		{ "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"x\":tru,\"data_offsets\":[0,1]}}", 1, "a bad literal" },
		{ "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"x\":-,\"data_offsets\":[0,1]}}", 1, "a bad number" },
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len;
		struct tc_st_header h;
		unsigned char *b = mkfile(bad[i].json, bad[i].data, &len);
		int rc = parse_file(b, len, &h);
		if (rc != -EINVAL)
			printf("# %s: %d\n", bad[i].why, rc);
		CHECK(rc == -EINVAL);
		if (!rc)
			tc_st_header_free(&h);
		free(b);
	}
}

static void t_header_length_rules(void)
{
	unsigned char b[8] = { 0 };
	uint64_t n = 7;

	/* N at most 100,000,000 */
	b[0] = 0x00, b[1] = 0xe1, b[2] = 0xf5, b[3] = 0x05; /* 100,000,000 */
	CHECK(tc_st_header_len(b, 8 + 100000000ull, &n) == 0 && n == 100000000);
	b[0] = 0x01; /* 100,000,001 */
	CHECK(tc_st_header_len(b, 1ull << 40, &n) == -EINVAL);
	memset(b, 0xff, 8); /* 2^64 - 1 */
	CHECK(tc_st_header_len(b, UINT64_MAX, &n) == -EINVAL);
	/* the file holds 8 + N */
	memset(b, 0, 8);
	b[0] = 10;
	CHECK(tc_st_header_len(b, 17, &n) == -EINVAL);
	CHECK(tc_st_header_len(b, 18, &n) == 0 && n == 10);
	/* shorter than 8 bytes: not one, and @first8 is not read */
	CHECK(tc_st_header_len(NULL, 7, &n) == -EINVAL);
	CHECK(n == 10);
	/* padding is whitespace: NULs are not */
	{
		static const unsigned char f[12] = "\x04\0\0\0\0\0\0\0{}  ";
		static const unsigned char z[12] = "\x04\0\0\0\0\0\0\0{}\0\0";
		struct tc_st_header h;
		CHECK(parse_file(f, 12, &h) == 0);
		tc_st_header_free(&h);
		CHECK(parse_file(z, 12, &h) == -EINVAL);
	}
	/* parse wants exactly 8 + N bytes */
	{
		size_t len;
		unsigned char *f = mkfile("{}", 0, &len);
		struct tc_st_header h;
		CHECK(tc_st_parse(f, len - 1, len, &h) == -EINVAL);
		CHECK(tc_st_parse(f, 7, len, &h) == -EINVAL);
		free(f);
	}
}

static void t_parse_bounds_nesting(void)
{
	char json[1024];
	size_t at;

	for (int depth = 100; depth <= 200; depth += 100) {
		at = (size_t)sprintf(json, "{\"t\":{\"x\":");
		for (int i = 0; i < depth; i++)
			json[at++] = '[';
		for (int i = 0; i < depth; i++)
			json[at++] = ']';
		sprintf(json + at, ",\"dtype\":\"U8\",\"shape\":[1],"
			"\"data_offsets\":[0,1]}}");
		CHECK(parse_json(json, 1) == (depth == 100 ? 0 : -EINVAL));
	}
}

static void t_list_json_says_our_dtype_and_file_offset(void)
{
	const char *json =
		"{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
		"\"s\\\"x\":{\"dtype\":\"F8_E8M0\",\"shape\":[3],\"data_offsets\":[8,11]}}";
	struct tc_st_header h;
	size_t len, jl;
	char *out = NULL;
	char want[256];
	unsigned char *b = mkfile(json, 11, &len);

	REQUIRE(parse_file(b, len, &h) == 0);
	REQUIRE(tc_st_list_json(&h, &out, &jl) == 0);
	snprintf(want, sizeof want,
		 "{\"w\":{\"dtype\":\"float16\",\"shape\":[2,2],\"offset\":%zu},"
		 "\"s\\\"x\":{\"dtype\":\"F8_E8M0\",\"shape\":[3],\"offset\":%zu}}",
		 8 + strlen(json), 16 + strlen(json));
	CHECK(!strcmp(out, want));
	CHECK(jl == strlen(want));
	free(out);
	tc_st_header_free(&h);
	free(b);
}

static void t_build_writes_what_parse_reads(void)
{
	static const uint64_t s23[] = { 2, 3 }, s4[] = { 4 }, s0[] = { 0 };
	static const char quoted[] = "g/a\"b\\c\n\x01\0z\xc3\xa9";
	const struct tc_st_item items[] = {
		{ "x", 1, TC_ST_F64, 2, s23, 48 },
		{ quoted, sizeof(quoted) - 1, TC_ST_F32, 1, s4, 16 },
		{ "scalar", 6, TC_ST_I16, 0, NULL, 2 },
		{ "empty", 5, TC_ST_BOOL, 1, s0, 0 },
		{ "f4", 2, TC_ST_F4, 1, s4, 2 },
	};
	const struct tc_st_kv meta[] = { { "model", "demo" },
					 { "q\"", "line\nbreak" } };
	char *head;
	size_t len;
	struct tc_st_header h;

	REQUIRE(tc_st_build(items, 5, meta, 2, &head, &len) == 0);
	CHECK((len - 8) % 8 == 0);
	CHECK(head[len - 1] == ' ' || head[len - 1] == '}');
	/* a file: the header, then 68 bytes of data */
	char *file = malloc(len + 68);
	REQUIRE(file);
	memcpy(file, head, len);
	memset(file + len, 0x5a, 68);
	REQUIRE(parse_file((unsigned char *)file, len + 68, &h) == 0);
	REQUIRE(h.ntensors == 5);
	CHECK(h.data_start == len);
	/* in the order given, offsets tiling from 0 */
	uint64_t at = 0;
	for (size_t i = 0; i < 5; i++) {
		CHECK(h.tensors[i].name_len == items[i].name_len);
		CHECK(!memcmp(h.tensors[i].name, items[i].name, items[i].name_len));
		CHECK(h.tensors[i].dtype == items[i].dtype);
		CHECK(h.tensors[i].ndim == items[i].ndim);
		CHECK(h.tensors[i].begin == at);
		at += items[i].nbytes;
		CHECK(h.tensors[i].end == at);
	}
	CHECK(strstr(head + 8, "\"__metadata__\":{\"model\":\"demo\","
			       "\"q\\\"\":\"line\\nbreak\"}"));
	tc_st_header_free(&h);
	free(file);
	free(head);

	/* none at all: "{}" and six spaces */
	REQUIRE(tc_st_build(NULL, 0, NULL, 0, &head, &len) == 0);
	CHECK(len == 16 && !memcmp(head, "\x08\0\0\0\0\0\0\0{}      ", 16));
	free(head);
}

static void t_build_refuses_what_no_reader_takes(void)
{
	static const uint64_t s1[] = { 1 }, s3[] = { 3 };
	char *head = (char *)"untouched";
	size_t len = 99;
	struct tc_st_item it = { "a", 1, TC_ST_F32, 1, s1, 4 };
	struct tc_st_item two[2] = { it, it };
	struct tc_st_kv kv = { "k", "v\xff" };

	CHECK(tc_st_build(&it, 1, NULL, 0, &head, &len) == 0);
	free(head);
	head = (char *)"untouched";
	len = 99;
	CHECK(tc_st_build(two, 2, NULL, 0, &head, &len) == -EINVAL);
	it.nbytes = 5;
	CHECK(tc_st_build(&it, 1, NULL, 0, &head, &len) == -EINVAL);
	it = (struct tc_st_item){ "a\xc0\x80", 3, TC_ST_U8, 1, s1, 1 };
	CHECK(tc_st_build(&it, 1, NULL, 0, &head, &len) == -EINVAL);
	it = (struct tc_st_item){ "__metadata__", 12, TC_ST_U8, 1, s1, 1 };
	CHECK(tc_st_build(&it, 1, NULL, 0, &head, &len) == -EINVAL);
	it = (struct tc_st_item){ "a", 1, TC_ST_COUNT, 1, s1, 1 };
	CHECK(tc_st_build(&it, 1, NULL, 0, &head, &len) == -EINVAL);
	it = (struct tc_st_item){ "a", 1, TC_ST_F4, 1, s3, 1 };
	CHECK(tc_st_build(&it, 1, NULL, 0, &head, &len) == -EINVAL);
	CHECK(tc_st_build(NULL, 0, &kv, 1, &head, &len) == -EINVAL);
	CHECK(!strcmp(head, "untouched") && len == 99);
}

static void t_build_refuses_a_header_past_the_limit(void)
{
	/* 700,000 tensors of ~150 bytes of JSON: past 100,000,000 */
	size_t n = 700000;
	static const uint64_t s1[] = { 1 };
	struct tc_st_item *t = calloc(n, sizeof(*t));
	char *names = malloc(n * 128);
	char *head = NULL;
	size_t len = 0;

	REQUIRE(t && names);
	for (size_t i = 0; i < n; i++) {
		char *nm = names + i * 128;
		int k = snprintf(nm, 128, "%0120zu", i);
		t[i] = (struct tc_st_item){ nm, (size_t)k, TC_ST_U8, 1, s1, 1 };
	}
	CHECK(tc_st_build(t, n, NULL, 0, &head, &len) == -EFBIG);
	CHECK(head == NULL);
	free(names);
	free(t);
}

/* Mutated valid files: parse never reads past the header, and whatever
 * it accepts obeys the tiling rules. */
static void t_hostile_mutations_never_break_the_rules(void)
{
	const char *json =
		"{\"__metadata__\":{\"k\":\"v\"},"
		"\"a\\u00e9\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
		"\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[16,19]},"
		"\"c\":{\"dtype\":\"F4\",\"shape\":[2],\"x\":[1,{\"y\":\"z\"}],\"data_offsets\":[19,20]}}";
	size_t len;
	unsigned char *orig = mkfile(json, 20, &len);
	unsigned char *b = malloc(len + 64);
	uint64_t seed = 14, accepted = 0;
	static const char pick[] = "{}[]\",:0123456789-.eE \\u\x80\xff\ttrufalsn";

	REQUIRE(b);
	for (int iter = 0; iter < 40000; iter++) {
		size_t blen = len;
		memcpy(b, orig, len);
		int muts = 1 + (int)(rnd(&seed) % 4);
		for (int m = 0; m < muts; m++) {
			size_t at = 8 + rnd(&seed) % (len - 8);
			switch (rnd(&seed) % 4) {
			case 0:
				b[at] = (unsigned char)pick[rnd(&seed) % (sizeof pick - 1)];
				break;
			case 1:
				b[at] = (unsigned char)rnd(&seed);
				break;
			case 2: /* the length prefix */
				b[rnd(&seed) % 8] = (unsigned char)rnd(&seed);
				break;
			default: /* the file's length */
				blen = len - 20 + rnd(&seed) % 41;
				if (blen > len)
					memset(b + len, 0, blen - len);
			}
		}
		struct tc_st_header h;
		if (parse_file(b, blen, &h))
			continue;
		accepted++;
		uint64_t at = 0;
		for (size_t i = 0; i < h.ntensors; i++) {
			CHECK(h.tensors[i].begin == at);
			CHECK(h.tensors[i].end >= at);
			CHECK(tc_st_utf8(h.tensors[i].name, h.tensors[i].name_len));
			at = h.tensors[i].end;
		}
		CHECK(h.data_start + at == blen);
		tc_st_header_free(&h);
	}
	printf("# %llu of 40000 mutants accepted\n",
	       (unsigned long long)accepted);
	CHECK(accepted > 0);
	free(b);
	free(orig);
}

int main(void)
{
	RUN(t_dtype_table_maps_ours_both_ways);
	RUN(t_parse_lists_tensors_in_file_order);
	RUN(t_parse_accepts_what_the_reference_accepts);
	RUN(t_parse_decodes_escaped_names);
	RUN(t_parse_refuses_each_broken_rule);
	RUN(t_header_length_rules);
	RUN(t_parse_bounds_nesting);
	RUN(t_list_json_says_our_dtype_and_file_offset);
	RUN(t_build_writes_what_parse_reads);
	RUN(t_build_refuses_what_no_reader_takes);
	RUN(t_build_refuses_a_header_past_the_limit);
	RUN(t_hostile_mutations_never_break_the_rules);
	return check_done();
}
