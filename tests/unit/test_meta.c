/*
 * test_meta.c - meta.json rendering and validation.
 *
 * The fixture is an entry with three tensors (a raw float32 one, a .npy
 * with a 128-byte header, raw bytes) and two groups.  Every parse gets a
 * malloc'd copy of exactly the input bytes, without a NUL, so ASan catches
 * a read past the end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "dtype.h"
#include "meta.h"

static const uint64_t shape_x[] = { 2, 3 };
static const uint64_t shape_y[] = { 5 };
static const uint64_t shape_raw[] = { 10 };
static const uint64_t shape_s[] = { 0 };
static const uint64_t shape_e[] = { 0 };

static const struct tc_meta_tensor tensors[] = {
	{ "x", 24, 0, TC_DT_FLOAT32, 2, shape_x, 0x0123456789abcdefull, NULL },
	{ "y.npy", 168, 128, TC_DT_INT64, 1, shape_y, 0xfedcba9876543210ull, NULL },
	{ "raw", 10, 0, TC_DT_UINT8, 1, shape_raw, 0, NULL },
	{ "s", 4, 0, TC_DT_FLOAT32, 0, shape_s, 42, NULL },  /* a scalar */
	{ "e", 0, 0, TC_DT_UINT8, 1, shape_e, 7, NULL },     /* empty */
};
static const char *const groups[] = { "sub", "g2" };

static struct tc_meta_dir entry(void)
{
	struct tc_meta_dir d = {
		.is_entry = 1,
		.created_ns = 1795450932123456789, /* 2026-11-23T16:22:12.1.. */
		.last_access_ns = 1795450999000000001,
		.pinned = 1,
		.attrs_json = "{\"model\":\"resnet\",\"step\":12,\"tags\":[\"a\",1.5]}",
		.ntensors = sizeof tensors / sizeof tensors[0],
		.tensors = tensors,
		.ngroups = 2,
		.groups = groups,
	};
	return d;
}

static struct tc_meta_dir group(void)
{
	struct tc_meta_dir d = entry();

	d.is_entry = 0;
	d.created_ns = d.last_access_ns = 0;
	d.pinned = 0;
	d.attrs_json = NULL;
	return d;
}

/* tc_meta_parse on an exact-size heap copy of @json[0..len). */
static int parse_raw(const struct tc_meta_dir *d, const char *json, size_t len,
		     struct tc_meta_update *u)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	if (!copy)
		abort();
	memcpy(copy, json, len);
	rc = tc_meta_parse(d, copy, len, u);
	free(copy);
	return rc;
}

/* The same with @json[0..len) as ours: {"__tcache__": json}. */
static int parse_n(const struct tc_meta_dir *d, const char *json, size_t len,
		   struct tc_meta_update *u)
{
	static const char pre[] = "{\"" TC_META_KEY "\": ", post[] = "}";
	size_t n = sizeof(pre) - 1 + len + sizeof(post) - 1;
	char *w = malloc(n);
	int rc;

	if (!w)
		abort();
	memcpy(w, pre, sizeof(pre) - 1);
	memcpy(w + sizeof(pre) - 1, json, len);
	memcpy(w + sizeof(pre) - 1 + len, post, sizeof(post) - 1);
	rc = parse_raw(d, w, n, u);
	free(w);
	return rc;
}

static int parse(const struct tc_meta_dir *d, const char *json,
		 struct tc_meta_update *u)
{
	return parse_n(d, json, strlen(json), u);
}

static void t_render_literal(void)
{
	static const uint64_t sh[] = { 3 };
	static const struct tc_meta_tensor t = { "t", 6, 0, TC_DT_INT16, 1, sh,
						  0xab, NULL };
	static const char *const g[] = { "g" };
	struct tc_meta_dir d = { .ntensors = 1, .tensors = &t,
				 .ngroups = 1, .groups = g };
	char *out = NULL;
	size_t len = 0;

	REQUIRE(tc_meta_render(&d, &out, &len) == 0);
	CHECK(strcmp(out, "{\n"
			  "\t\"__tcache__\": {\n"
			  "\t\t\"tensors\":\t{\n"
			  "\t\t\t\"t\":\t{\n"
			  "\t\t\t\t\"nbytes\":\t6,\n"
			  "\t\t\t\t\"dtype\":\t\"int16\",\n"
			  "\t\t\t\t\"shape\":\t[3],\n"
			  "\t\t\t\t\"xxh3\":\t\"00000000000000ab\"\n"
			  "\t\t\t}\n"
			  "\t\t},\n"
			  "\t\t\"groups\":\t[\"g\"]\n"
			  "\t}\n"
			  "}\n") == 0);
	CHECK(len == strlen(out));
	free(out);

	/* the user's keys first, each as written, compact */
	d.doc = "{\"emb\":{\"dtype\":\"torch.float32\",\"shape\":[3]},\"n\":1.50}";
	REQUIRE(tc_meta_render(&d, &out, &len) == 0);
	CHECK(strncmp(out, "{\n"
			   "\t\"emb\": {\"dtype\":\"torch.float32\",\"shape\":[3]},\n"
			   "\t\"n\": 1.50,\n"
			   "\t\"__tcache__\": {\n", 72) == 0);
	CHECK(len == strlen(out));
	free(out);

	/* an entry with nothing in it; times around the epoch */
	struct tc_meta_dir e = { .is_entry = 1, .created_ns = 0,
				 .last_access_ns = -1, .pinned = 1 };
	REQUIRE(tc_meta_render(&e, &out, &len) == 0);
	CHECK(strcmp(out, "{\n"
			  "\t\"__tcache__\": {\n"
			  "\t\t\"created\":\t\"1970-01-01T00:00:00.000000000Z\",\n"
			  "\t\t\"last_access\":\t\"1969-12-31T23:59:59.999999999Z\",\n"
			  "\t\t\"pinned\":\ttrue,\n"
			  "\t\t\"attrs\":\t{\n"
			  "\t\t},\n"
			  "\t\t\"parent\":\tnull,\n"
			  "\t\t\"tensors\":\t{\n"
			  "\t\t},\n"
			  "\t\t\"groups\":\t[]\n"
			  "\t}\n"
			  "}\n") == 0);
	CHECK(len == strlen(out));
	free(out);
}

static const char *key_at(const cJSON *o, int i)
{
	const cJSON *c = o->child;

	while (c && i-- > 0)
		c = c->next;
	return c ? c->string : "";
}

static void check_tensor(const cJSON *ts, const struct tc_meta_tensor *t)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(ts, t->name), *sh;
	char hex[17];
	int k = 0;

	REQUIRE(cJSON_IsObject(o));
	CHECK(strcmp(key_at(o, k++), "nbytes") == 0);
	CHECK(strcmp(key_at(o, k++), "dtype") == 0);
	CHECK(strcmp(key_at(o, k++), "shape") == 0);
	if (t->data_offset)
		CHECK(strcmp(key_at(o, k++), "offset") == 0);
	CHECK(strcmp(key_at(o, k++), "xxh3") == 0);
	CHECK(cJSON_GetArraySize(o) == k);

	CHECK(cJSON_GetObjectItem(o, "nbytes")->valuedouble == (double)t->nbytes);
	CHECK(strcmp(cJSON_GetObjectItem(o, "dtype")->valuestring,
		     tc_dtype_name(t->dtype)) == 0);
	sh = cJSON_GetObjectItem(o, "shape");
	REQUIRE(cJSON_IsArray(sh));
	CHECK(cJSON_GetArraySize(sh) == t->ndim);
	for (int i = 0; i < t->ndim; i++)
		CHECK(cJSON_GetArrayItem(sh, i)->valuedouble ==
		      (double)t->shape[i]);
	if (t->data_offset)
		CHECK(cJSON_GetObjectItem(o, "offset")->valuedouble ==
		      (double)t->data_offset);
	snprintf(hex, sizeof hex, "%016llx", (unsigned long long)t->xxh3);
	CHECK(strcmp(cJSON_GetObjectItem(o, "xxh3")->valuestring, hex) == 0);
}

static void t_render_entry(void)
{
	struct tc_meta_dir d = entry();
	char *out = NULL;
	size_t len = 0;
	cJSON *top, *j, *attrs, *want, *ts, *gs;

	REQUIRE(tc_meta_render(&d, &out, &len) == 0);
	CHECK(len == strlen(out) && len > 2 && out[len - 1] == '\n');
	top = cJSON_Parse(out);
	REQUIRE(cJSON_IsObject(top) && cJSON_GetArraySize(top) == 1);
	j = cJSON_GetObjectItem(top, TC_META_KEY);
	REQUIRE(cJSON_IsObject(j));
	CHECK(cJSON_GetArraySize(j) == 7);
	CHECK(strcmp(key_at(j, 0), "created") == 0);
	CHECK(strcmp(key_at(j, 1), "last_access") == 0);
	CHECK(strcmp(key_at(j, 2), "pinned") == 0);
	CHECK(strcmp(key_at(j, 3), "attrs") == 0);
	CHECK(strcmp(key_at(j, 4), "parent") == 0);
	CHECK(strcmp(key_at(j, 5), "tensors") == 0);
	CHECK(strcmp(key_at(j, 6), "groups") == 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "parent")));
	CHECK(strcmp(cJSON_GetObjectItem(j, "created")->valuestring,
		     "2026-11-23T16:22:12.123456789Z") == 0);
	CHECK(strcmp(cJSON_GetObjectItem(j, "last_access")->valuestring,
		     "2026-11-23T16:23:19.000000001Z") == 0);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "pinned")));
	attrs = cJSON_GetObjectItem(j, "attrs");
	want = cJSON_Parse(d.attrs_json);
	CHECK(cJSON_Compare(attrs, want, 1));
	cJSON_Delete(want);

	ts = cJSON_GetObjectItem(j, "tensors");
	REQUIRE(cJSON_IsObject(ts));
	CHECK(cJSON_GetArraySize(ts) == (int)d.ntensors);
	for (size_t i = 0; i < d.ntensors; i++) {
		CHECK(strcmp(key_at(ts, (int)i), tensors[i].name) == 0);
		check_tensor(ts, &tensors[i]);
	}
	gs = cJSON_GetObjectItem(j, "groups");
	REQUIRE(cJSON_IsArray(gs) && cJSON_GetArraySize(gs) == 2);
	CHECK(strcmp(cJSON_GetArrayItem(gs, 0)->valuestring, "sub") == 0);
	CHECK(strcmp(cJSON_GetArrayItem(gs, 1)->valuestring, "g2") == 0);
	/* the .npy header offset is shown; raw tensors have none */
	CHECK(strstr(out, "\"offset\":\t128") != NULL);
	CHECK(strstr(out, "\"xxh3\":\t\"fedcba9876543210\"") != NULL);
	CHECK(strstr(out, "\"shape\":\t[]") != NULL);
	cJSON_Delete(top);
	free(out);
}

static void t_render_group(void)
{
	struct tc_meta_dir d = group();
	char *out = NULL;
	size_t len = 0;
	cJSON *top, *j;

	d.pinned = 1;                  /* entry fields are ignored for groups */
	d.attrs_json = "{\"a\":1}";
	REQUIRE(tc_meta_render(&d, &out, &len) == 0);
	top = cJSON_Parse(out);
	j = cJSON_GetObjectItem(top, TC_META_KEY);
	REQUIRE(cJSON_IsObject(j));
	CHECK(cJSON_GetArraySize(j) == 2);
	CHECK(strcmp(key_at(j, 0), "tensors") == 0);
	CHECK(strcmp(key_at(j, 1), "groups") == 0);
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tensors")) == 5);
	check_tensor(cJSON_GetObjectItem(j, "tensors"), &tensors[1]);
	cJSON_Delete(top);
	free(out);
}

/* Integers are exact however large (cJSON alone would give 1e+15 and lose
 * digits above 2^53). */
static void t_render_big(void)
{
	static const uint64_t sh[] = { 9007199254740993ull };
	static const uint64_t sh2[] = { 1000000000000000ull };
	const struct tc_meta_tensor t[] = {
		{ "big", 9007199254740993ull, 0, TC_DT_UINT8, 1, sh, 1, NULL },
		{ "max", UINT64_MAX, UINT64_MAX - 1, TC_DT_UINT8, 0, NULL,
		  UINT64_MAX, NULL },
		{ "e15", 1000000000000000ull, 0, TC_DT_UINT8, 1, sh2, 2, NULL },
	};
	struct tc_meta_dir d = { .ntensors = 3, .tensors = t };
	struct tc_meta_update u = { 0 };
	char *out = NULL;
	size_t len = 0;

	REQUIRE(tc_meta_render(&d, &out, &len) == 0);
	CHECK(strstr(out, "\"nbytes\":\t9007199254740993,") != NULL);
	CHECK(strstr(out, "\"shape\":\t[9007199254740993]") != NULL);
	CHECK(strstr(out, "\"nbytes\":\t18446744073709551615,") != NULL);
	CHECK(strstr(out, "\"offset\":\t18446744073709551614,") != NULL);
	CHECK(strstr(out, "\"xxh3\":\t\"ffffffffffffffff\"") != NULL);
	CHECK(strstr(out, "\"nbytes\":\t1000000000000000,") != NULL);
	CHECK(strstr(out, "e+") == NULL);
	/* and it reads back exactly: nbytes 2^53 + 1 matches, 2^53 does not */
	CHECK(parse_raw(&d, out, len, &u) == 0);
	CHECK(u.nset == 0); /* every dtype and shape sent back as it is */
	tc_meta_update_free(&u);
	CHECK(parse(&d, "{\"tensors\": {\"big\": {\"nbytes\": "
			"9007199254740992}}}", &u) == -EINVAL);
	CHECK(parse(&d, "{\"tensors\": {\"big\": {\"shape\": "
			"[9007199254740992]}}}", &u) == -EINVAL);
	CHECK(parse(&d, "{\"tensors\": {\"big\": {\"nbytes\": "
			"9007199254740993, \"shape\": [9007199254740993]}}}",
		    &u) == 0);
	REQUIRE(u.nset == 1);
	CHECK(u.set[0].shape[0] == 9007199254740993ull);
	tc_meta_update_free(&u);
	free(out);
}

static void t_render_bad(void)
{
	struct tc_meta_dir d = entry();
	struct tc_meta_tensor t = tensors[0];
	char *out = (char *)"untouched";
	size_t len = 12345;

	d.attrs_json = "[1, 2]";
	CHECK(tc_meta_render(&d, &out, &len) == -EINVAL);
	d.attrs_json = "{\"a\":";
	CHECK(tc_meta_render(&d, &out, &len) == -EINVAL);
	d = group();
	d.ntensors = 1;
	d.tensors = &t;
	t.dtype = TC_DT_COUNT;
	CHECK(tc_meta_render(&d, &out, &len) == -EINVAL);
	t.dtype = TC_DT_UINT8;
	t.ndim = TC_MAX_DIMS + 1;
	CHECK(tc_meta_render(&d, &out, &len) == -EINVAL);
	CHECK(strcmp(out, "untouched") == 0 && len == 12345);
}

/* render -> parse: valid, and nothing but the pin and attrs (as they are)
 * set. */
static void roundtrip(const struct tc_meta_dir *d)
{
	struct tc_meta_update u = { 0 };
	char *out = NULL;
	size_t len = 0;

	REQUIRE(tc_meta_render(d, &out, &len) == 0);
	REQUIRE(parse_raw(d, out, len, &u) == 0);
	CHECK(u.has_pinned == d->is_entry);
	if (d->is_entry) {
		const char *want = d->attrs_json ? d->attrs_json : "{}";
		cJSON *a = cJSON_Parse(u.attrs_json), *b = cJSON_Parse(want);
		CHECK(u.pinned == d->pinned);
		CHECK(u.attrs_json && !strchr(u.attrs_json, '\n')); /* compact */
		CHECK(a && cJSON_Compare(a, b, 1));
		cJSON_Delete(a);
		cJSON_Delete(b);
	} else {
		CHECK(u.attrs_json == NULL);
	}
	CHECK(u.nset == 0); /* dtypes and shapes as they are: no change */
	for (size_t i = 0; i < u.nset; i++) {
		const struct tc_meta_tensor *t = &d->tensors[u.set[i].index];
		CHECK(u.set[i].index == i);
		CHECK(u.set[i].dtype == t->dtype);
		CHECK(u.set[i].ndim == t->ndim);
		for (int k = 0; k < t->ndim; k++)
			CHECK(u.set[i].shape[k] == t->shape[k]);
	}
	tc_meta_update_free(&u);
	CHECK(u.set == NULL && u.attrs_json == NULL && u.nset == 0);
	free(out);
}

static void t_roundtrip(void)
{
	struct tc_meta_dir d = entry();

	roundtrip(&d);
	d.pinned = 0;
	d.attrs_json = NULL;
	roundtrip(&d);
	d = group();
	roundtrip(&d);
}

/* Accepted inputs and the update each one yields. */
static void t_parse_accept(void)
{
	struct tc_meta_dir d = entry(), g = group();
	struct tc_meta_update u = { 0 };

	/* empty object: nothing changes; whitespace around is fine */
	CHECK(parse(&d, " \t\r\n{}\n \n", &u) == 0);
	CHECK(!u.has_pinned && !u.attrs_json && u.nset == 0);
	tc_meta_update_free(&u);
	CHECK(parse(&g, "{}", &u) == 0);
	CHECK(u.nset == 0);
	tc_meta_update_free(&u);

	/* dtype alone: shape becomes [payload / itemsize] */
	REQUIRE(parse(&d, "{\"tensors\": {\"x\": {\"dtype\": \"int32\"}}}",
		      &u) == 0);
	REQUIRE(u.nset == 1);
	CHECK(u.set[0].index == 0 && u.set[0].dtype == TC_DT_INT32);
	CHECK(u.set[0].ndim == 1 && u.set[0].shape[0] == 6);
	CHECK(!u.has_pinned && !u.attrs_json);
	tc_meta_update_free(&u);

	/* shape alone keeps the dtype */
	REQUIRE(parse(&d, "{\"tensors\": {\"x\": {\"shape\": [3, 1, 2]}}}",
		      &u) == 0);
	REQUIRE(u.nset == 1);
	CHECK(u.set[0].dtype == TC_DT_FLOAT32 && u.set[0].ndim == 3);
	CHECK(u.set[0].shape[0] == 3 && u.set[0].shape[1] == 1 &&
	      u.set[0].shape[2] == 2);
	tc_meta_update_free(&u);

	/* both, for two tensors, the .npy payload excludes its header; the
	 * order of u.set is the order in the input */
	REQUIRE(parse(&d, "{\"tensors\": {\"y.npy\": {\"dtype\": \"int32\"},"
			  " \"raw\": {\"shape\": [5], \"dtype\": \"bfloat16\"},"
			  " \"x\": {\"nbytes\": 24}}}", &u) == 0);
	REQUIRE(u.nset == 2);
	CHECK(u.set[0].index == 1 && u.set[0].dtype == TC_DT_INT32);
	CHECK(u.set[0].ndim == 1 && u.set[0].shape[0] == 10);
	CHECK(u.set[1].index == 2 && u.set[1].dtype == TC_DT_BFLOAT16);
	CHECK(u.set[1].ndim == 1 && u.set[1].shape[0] == 5);
	tc_meta_update_free(&u);

	/* scalar shape [], empty tensors (a 0 dim beside huge ones) */
	REQUIRE(parse(&d, "{\"tensors\": {\"s\": {\"shape\": [], \"dtype\": "
			  "\"int32\"}, \"e\": {\"dtype\": \"float64\", \"shape\":"
			  " [4294967296, 4294967296, 0]}}}", &u) == 0);
	REQUIRE(u.nset == 2);
	CHECK(u.set[0].index == 3 && u.set[0].ndim == 0 &&
	      u.set[0].dtype == TC_DT_INT32);
	CHECK(u.set[1].index == 4 && u.set[1].ndim == 3 &&
	      u.set[1].shape[0] == 4294967296ull && u.set[1].shape[2] == 0);
	tc_meta_update_free(&u);

	/* read-only fields that match set nothing; xxh3 in any case */
	REQUIRE(parse(&d, "{\"created\": 1, \"last_access\": [\"x\", {}],"
			  " \"groups\": [\"sub\", \"other\"], \"tensors\":"
			  " {\"x\": {\"nbytes\": 24, \"offset\": 0, \"xxh3\":"
			  " \"0123456789ABCDEF\"}, \"y.npy\": {\"offset\": 128,"
			  " \"nbytes\": 168, \"xxh3\": \"FEDCBA9876543210\"}}}",
		      &u) == 0);
	CHECK(u.nset == 0 && !u.has_pinned && !u.attrs_json);
	tc_meta_update_free(&u);

	/* pinned and attrs (stored compact) */
	REQUIRE(parse(&d, "{\"pinned\": false, \"attrs\": {\"a\": [1, \"b\","
			  " {\"c\": null}], \"d\": true}}", &u) == 0);
	CHECK(u.has_pinned && u.pinned == 0);
	REQUIRE(u.attrs_json != NULL);
	CHECK(strcmp(u.attrs_json,
		     "{\"a\":[1,\"b\",{\"c\":null}],\"d\":true}") == 0);
	tc_meta_update_free(&u);
	REQUIRE(parse(&d, "{\"pinned\": true, \"attrs\": {}}", &u) == 0);
	CHECK(u.has_pinned && u.pinned == 1);
	CHECK(u.attrs_json && strcmp(u.attrs_json, "{}") == 0);
	tc_meta_update_free(&u);

	/* numbers before and strings with digits, quotes and escapes around
	 * the shape must not confuse the exact integer reading */
	REQUIRE(parse(&d, "{\"created\": -1.5e3, \"attrs\": {\"n\": [1, 2.5, "
			  "-3], \"s\": \"12 \\\"34\\\" -5 \\\\\", \"7\": 8},"
			  " \"tensors\": {\"x\": {\"xxh3\": \"0123456789abcdef\","
			  " \"shape\": [6], \"nbytes\": 24}}, \"last_access\": 9}",
		      &u) == 0);
	REQUIRE(u.nset == 1);
	CHECK(u.set[0].ndim == 1 && u.set[0].shape[0] == 6);
	tc_meta_update_free(&u);
	/* only the first @len bytes count */
	REQUIRE(parse_n(&d, "{\"tensors\":{\"x\":{\"shape\":[6]}}}junk", 31,
			&u) == 0);
	CHECK(u.nset == 1 && u.set[0].shape[0] == 6);
	tc_meta_update_free(&u);
}

static const char *const reject_entry[] = {
	"",                                   /* empty */
	"   \n\t ",                           /* whitespace only */
	"{",                                  /* malformed JSON */
	"{\"pinned\": true,}",
	"{'pinned': true}",
	"{\"pinned\": tru}",
	"/* c */ {}",
	"[]",                                 /* not an object */
	"\"x\"",
	"42",
	"null",
	"{} x",                               /* trailing junk */
	"{}{}",
	"{},",
	"{\"bogus\": 1}",                     /* unknown key */
	"{\"Pinned\": true}",
	"{\"pinned\": true, \"pinned\": true}", /* duplicate keys */
	"{\"tensors\": {\"x\": {\"dtype\": \"int8\"}, \"x\": {}}}",
	"{\"tensors\": {\"x\": {\"dtype\": \"int32\", \"dtype\": \"int32\"}}}",
	"{\"attrs\": {\"a\": 1, \"b\": {\"c\": 1, \"c\": 2}}}",
	"{\"pinned\": 1}",                    /* pinned not bool */
	"{\"pinned\": \"true\"}",
	"{\"pinned\": null}",
	"{\"attrs\": []}",                    /* attrs not object */
	"{\"attrs\": \"x\"}",
	"{\"attrs\": null}",
	"{\"groups\": \"sub\"}",              /* groups not strings */
	"{\"groups\": [1]}",
	"{\"tensors\": []}",                  /* tensors not object */
	"{\"tensors\": null}",
	"{\"tensors\": {\"nope\": {\"dtype\": \"int8\"}}}", /* unknown tensor */
	"{\"tensors\": {\"X\": {}}}",
	"{\"tensors\": {\"x\": 5}}",          /* tensor value not object */
	"{\"tensors\": {\"x\": []}}",
	"{\"tensors\": {\"x\": \"float32\"}}",
	"{\"tensors\": {\"x\": {\"color\": \"red\"}}}", /* unknown field */
	"{\"tensors\": {\"x\": {\"dtype\": \"float33\"}}}", /* unknown dtype */
	"{\"tensors\": {\"x\": {\"dtype\": \"Float32\"}}}",
	"{\"tensors\": {\"x\": {\"dtype\": 5}}}", /* dtype not string */
	"{\"tensors\": {\"x\": {\"dtype\": null}}}",
	"{\"tensors\": {\"x\": {\"shape\": [5]}}}", /* shape mismatch */
	"{\"tensors\": {\"x\": {\"shape\": [2, 3], \"dtype\": \"int8\"}}}",
	"{\"tensors\": {\"x\": {\"shape\": []}}}",
	"{\"tensors\": {\"x\": {\"shape\": [-6]}}}", /* negative dim */
	"{\"tensors\": {\"x\": {\"shape\": [-0, 6]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [2.5, 2.4]}}}", /* float dims */
	"{\"tensors\": {\"x\": {\"shape\": [6.0]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [6e0]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [06]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [6.]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [\"6\"]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [2, null]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [[6]]}}}",
	"{\"tensors\": {\"x\": {\"shape\": \"2,3\"}}}",
	"{\"tensors\": {\"x\": {\"shape\": 6}}}",
	/* too many dims (33) */
	"{\"tensors\": {\"x\": {\"shape\": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,"
	" 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 6]}}}",
	/* overflowing dims */
	"{\"tensors\": {\"x\": {\"shape\": [4294967296, 4294967296, "
	"4294967296]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [4611686018427387904, 4]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [4611686018427387910], "
	"\"dtype\": \"float32\"}}}",
	"{\"tensors\": {\"x\": {\"shape\": [18446744073709551616]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [9007199254740993]}}}",
	"{\"tensors\": {\"x\": {\"shape\": [1e400]}}}",
	"{\"tensors\": {\"raw\": {\"dtype\": \"float32\"}}}", /* 10 % 4 */
	"{\"tensors\": {\"y.npy\": {\"dtype\": \"float8_e5m2\", "
	"\"shape\": [168]}}}",                /* forgets the header */
	"{\"tensors\": {\"x\": {\"nbytes\": 25}}}", /* nbytes mismatch */
	"{\"tensors\": {\"x\": {\"nbytes\": 24.0}}}",
	"{\"tensors\": {\"x\": {\"nbytes\": \"24\"}}}",
	"{\"tensors\": {\"x\": {\"nbytes\": -24}}}",
	"{\"tensors\": {\"y.npy\": {\"offset\": 0}}}", /* offset mismatch */
	"{\"tensors\": {\"x\": {\"offset\": 128}}}",
	"{\"tensors\": {\"x\": {\"xxh3\": \"0123456789abcdee\"}}}", /* xxh3 */
	"{\"tensors\": {\"x\": {\"xxh3\": \"123456789abcdef\"}}}",
	"{\"tensors\": {\"x\": {\"xxh3\": \"0123456789abcdef0\"}}}",
	"{\"tensors\": {\"x\": {\"xxh3\": \"0x23456789abcdef\"}}}",
	"{\"tensors\": {\"x\": {\"xxh3\": \" 123456789abcdef\"}}}",
	"{\"tensors\": {\"x\": {\"xxh3\": 81985529216486895}}}",
	/* all or nothing: a valid part does not survive an invalid one */
	"{\"pinned\": false, \"attrs\": {\"a\": 1}, \"tensors\": {\"x\": "
	"{\"dtype\": \"int32\"}, \"raw\": {\"dtype\": \"nope\"}}}",
	"{\"tensors\": {\"x\": {\"dtype\": \"int32\"}}, \"bogus\": 0}",
};

static const char *const reject_group[] = {
	"{\"pinned\": true}",                 /* entry-only keys */
	"{\"pinned\": false}",
	"{\"attrs\": {}}",
	"{\"created\": 1, \"attrs\": {\"a\": 1}}",
};

static void reject(const struct tc_meta_dir *d, const char *json, size_t len,
		   int line)
{
	struct tc_meta_update u, before;
	int rc;

	memset(&u, 0x5c, sizeof u);
	before = u;
	rc = parse_n(d, json, len, &u);
	if (rc != -EINVAL)
		printf("# line %d: rc %d for: %.*s\n", line, rc, (int)len, json);
	CHECK(rc == -EINVAL);
	CHECK(memcmp(&u, &before, sizeof u) == 0);
	/* every refusal says why */
	if (rc == -EINVAL && !tc_meta_error()[0])
		printf("# line %d: no reason for: %.*s\n", line, (int)len, json);
	CHECK(rc != -EINVAL || tc_meta_error()[0]);
}

static void t_parse_reject(void)
{
	struct tc_meta_dir d = entry(), g = group(), none = group();

	for (size_t i = 0; i < sizeof reject_entry / sizeof reject_entry[0]; i++)
		reject(&d, reject_entry[i], strlen(reject_entry[i]), (int)i);
	for (size_t i = 0; i < sizeof reject_group / sizeof reject_group[0]; i++)
		reject(&g, reject_group[i], strlen(reject_group[i]), (int)i);
	/* embedded NUL, and a value cut short by the length */
	reject(&d, "{}\0", 3, -1);
	reject(&d, "{\"pinned\": true}", 15, -2);
	/* a directory without tensors knows no tensor name */
	none.ntensors = 0;
	none.tensors = NULL;
	reject(&none, "{\"tensors\": {\"x\": {}}}", 22, -3);
	/* NULL buffer of length 0 */
	{
		struct tc_meta_update u = { 0 };
		CHECK(tc_meta_parse(&d, NULL, 0, &u) == -EINVAL);
	}
	CHECK(sizeof reject_entry / sizeof reject_entry[0] >= 20);
}

/* Whole documents and every start of them: 0; rng: xorshift. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int prefix_ok(const char *buf, size_t len)
{
	size_t at;
	const char *wanted;
	return tc_json_object_prefix(buf, len, &at, &wanted) == 0;
}

static void put_str(char *d, size_t *n, const char *s)
{
	size_t k = strlen(s);
	memcpy(d + *n, s, k);
	*n += k;
}

static void gen_space(char *d, size_t *n)
{
	static const char *const sp[] = { "", "", " ", "\n", "\t ", "\r\n" };
	put_str(d, n, sp[next_rand() % 6]);
}

static void gen_value(char *d, size_t *n, size_t room, int depth);

static void gen_object(char *d, size_t *n, size_t room, int depth)
{
	static const char *const keys[] = { "\"a\"", "\"kv.bin\"", "\"\"",
					    "\"x\\\"y\"", "\"\\u00e9\"" };
	put_str(d, n, "{");
	for (int i = 0, k = (int)(next_rand() % 4); i < k && *n < room; i++) {
		if (i)
			put_str(d, n, ",");
		gen_space(d, n);
		put_str(d, n, keys[next_rand() % 5]);
		gen_space(d, n);
		put_str(d, n, ":");
		gen_space(d, n);
		gen_value(d, n, room, depth + 1);
		gen_space(d, n);
	}
	put_str(d, n, "}");
}

static void gen_value(char *d, size_t *n, size_t room, int depth)
{
	static const char *const atoms[] = {
		"0", "-1", "12.5", "1e9", "-0.25E-3", "true", "false", "null",
		"\"\"", "\"str\"", "\"esc\\n\\t\\\\\\/\\u0041\"",
		"\"\\udcff\"",
	};
	unsigned r = (unsigned)(next_rand() % 10);
	if (depth > 6 || *n > room || r < 6) {
		put_str(d, n, atoms[next_rand() % 12]);
	} else if (r < 8) {
		gen_object(d, n, room, depth);
	} else {
		put_str(d, n, "[");
		for (int i = 0, k = (int)(next_rand() % 4); i < k && *n < room; i++) {
			if (i)
				put_str(d, n, ",");
			gen_space(d, n);
			gen_value(d, n, room, depth + 1);
		}
		put_str(d, n, "]");
	}
}

/* The start of a document being written: refused at the first byte no
 * continuation allows, never before; every start of a document cJSON
 * takes is allowed (random documents, byte mutations of them). */
static void t_json_prefix(void)
{
	static const char *const good[] = {
		"{}", " \n{ } \r\n", "{\"a\":1}", "{\"a\": [1, -2.5e-3, 0, 1E+9, [], {}]}",
		"{\"s\": \"x\\\"y\\\\z\\/\\b\\f\\n\\r\\t\\u00e9\\udc80\"}",
		"{\"t\": true, \"f\": false, \"n\": null}",
		"{\"nested\": {\"a\": {\"b\": [[[{\"c\": \"\\u0041\"}]]]}}}",
		"{\"\xc3\xa9\xff\": \"raw bytes\x01\x1f\"}", "{\"a\":01}",
	};
	static const struct {
		const char *doc;
		size_t bad;
	} bad[] = {
		{ "{bad}", 1 }, { "[1]", 0 }, { "x", 0 }, { "{\"a\":tru,", 8 },
		{ "{\"a\" 1}", 5 }, { "{\"a\":}", 5 }, { "{\"a\":\"\\q\"}", 7 },
		{ "{}}", 2 }, { "{\"a\":1}x", 7 },
		{ "{\"a\":+1}", 5 }, { "{\"a\":[1,]}", 8 }, { "{,}", 1 },
		{ "{\"a\":1,}", 7 }, { "{\"a\":nul}", 8 }, { "{\"a\":[1}", 7 },
		{ "{} \x01", 3 },
	};
	size_t at;
	const char *wanted;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		for (size_t n = 0; n <= strlen(good[i]); n++) {
			if (!prefix_ok(good[i], n))
				printf("# refused: %.*s\n", (int)n, good[i]);
			CHECK(prefix_ok(good[i], n));
		}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t n = strlen(bad[i].doc);
		int rc = tc_json_object_prefix(bad[i].doc, n, &at, &wanted);
		if (rc != -EINVAL || at != bad[i].bad)
			printf("# %s: rc %d at %zu\n", bad[i].doc, rc, at);
		CHECK(rc == -EINVAL && at == bad[i].bad && wanted && *wanted);
		/* every start before the bad byte is still allowed */
		CHECK(prefix_ok(bad[i].doc, bad[i].bad));
	}
	CHECK(tc_json_object_prefix("{\"a\":\0}", 7, &at, &wanted) == -EINVAL &&
	      at == 5);
	{ /* nesting: cJSON's limit of 1000 */
		char deep[1100];
		deep[0] = '{';
		memcpy(deep + 1, "\"a\":", 4);
		memset(deep + 5, '[', sizeof deep - 5);
		CHECK(prefix_ok(deep, 5 + 998));
		CHECK(!prefix_ok(deep, sizeof deep));
	}
	/* random documents, and byte mutations of them, against cJSON */
	char doc[4096];
	int whole_docs = 0;
	for (int round = 0; round < 100000; round++) {
		size_t n = 0;
		gen_object(doc, &n, sizeof doc - 64, 0);
		static const char mutant[] = "{}[]:,\" \\ne1-.xu";
		if (round % 2) /* a mutation: one byte changed */
			doc[next_rand() % n] =
				mutant[next_rand() % (sizeof mutant - 1)];
		const char *end = NULL;
		cJSON *j = cJSON_ParseWithLengthOpts(doc, n, &end, 0);
		int whole = j && cJSON_IsObject(j);
		for (const char *e = end; whole && e < doc + n; e++)
			whole = *e == ' ' || *e == '\n';
		cJSON_Delete(j);
		if (!whole)
			continue;
		whole_docs++;
		for (size_t k = 0; k <= n; k++)
			if (!prefix_ok(doc, k)) {
				printf("# cJSON takes %.*s, refused at %zu\n",
				       (int)n, doc, k);
				CHECK(0);
				break;
			}
	}
	CHECK(whole_docs > 50000);
}

static void t_update_free(void)
{
	struct tc_meta_update u = { 0 };

	tc_meta_update_free(NULL);
	tc_meta_update_free(&u);
	u.attrs_json = malloc(4);
	u.set = malloc(sizeof *u.set);
	u.nset = 1;
	u.has_pinned = 1;
	tc_meta_update_free(&u);
	CHECK(!u.attrs_json && !u.set && !u.nset && !u.has_pinned);
}

/* Is @s (n bytes) valid UTF-8?  (A strict reference implementation.) */
static int valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
			 : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (!k || i + k > n || (k == 2 && c < 0xc2))
			return 0;
		for (size_t j = 1; j < k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
		if (k == 3 && ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] >= 0xa0)))
			return 0;
		if (k == 4 && ((c == 0xf0 && s[i + 1] < 0x90) || c > 0xf4 || (c == 0xf4 && s[i + 1] >= 0x90)))
			return 0;
		i += k;
	}
	return 1;
}

/* Names that are not UTF-8 render as \udcXX escapes (valid JSON), and a
 * document naming them that way is understood. */
static void t_names_not_utf8(void)
{
	static const uint64_t shape[] = { 16 };
	struct tc_meta_tensor t[] = {
		{ "\xff\xfe", 16, 0, TC_DT_UINT8, 1, shape, 1, NULL },
		{ "caf\xc3\xa9", 16, 0, TC_DT_UINT8, 1, shape, 2, NULL }, /* UTF-8: kept */
		{ "\xed\xa0\x80x", 16, 0, TC_DT_UINT8, 1, shape, 3, NULL }, /* a surrogate */
	};
	struct tc_meta_dir d = { .ntensors = 3, .tensors = t };
	char *out;
	size_t len;
	REQUIRE(tc_meta_render(&d, &out, &len) == 0);
	CHECK(valid_utf8((const unsigned char *)out, len));
	CHECK(strstr(out, "\"\\udcff\\udcfe\"") != NULL);
	CHECK(strstr(out, "\"caf\xc3\xa9\"") != NULL);
	CHECK(strstr(out, "\"\\udced\\udca0\\udc80x\"") != NULL);
	/* (cJSON itself refuses lone surrogate escapes; Python's json reads
	 * them, and os.fsencode turns them back into the bytes.) */
	/* the rendered document parses back as a no-op */
	struct tc_meta_update u;
	CHECK(tc_meta_parse(&d, out, len, &u) == 0);
	tc_meta_update_free(&u);
	free(out);
	const char *set = "{\"__tcache__\": {\"tensors\": {\"\\udcff\\udcFE\": {\"dtype\": \"float32\", \"shape\": [4]}}}}";
	REQUIRE(tc_meta_parse(&d, set, strlen(set), &u) == 0);
	CHECK(u.nset == 1 && u.set[0].index == 0 && u.set[0].dtype == TC_DT_FLOAT32);
	tc_meta_update_free(&u);
	/* an escaped backslash before udcff is a literal backslash, no byte */
	const char *lit = "{\"__tcache__\": {\"tensors\": {\"\\\\udcff\": {\"dtype\": \"float32\"}}}}";
	CHECK(tc_meta_parse(&d, lit, strlen(lit), &u) == -EINVAL); /* no such tensor */
}

/* Any JSON object is taken: the keys that are not ours are kept as
 * written (numbers of any size or precision, escapes, order, nesting,
 * duplicates), without whitespace; a leaf may be named like one of our
 * fields; ours are validated as always. */
static void t_open_world_keeps_user_keys(void)
{
	struct tc_meta_dir d = entry();
	struct tc_meta_update u = { 0 };
	const char *doc =
		"{ \"tensors\" : {\"device\": \"cpu\", \"shape\": [2], \"dtype\": \"torch.float32\"},\n"
		"  \"big\": 123456789012345678901234567890, \"f\": 1.50, \"e\": 1E+400,\n"
		"  \"s\": \"a \\\"q\\\" \\u00e9 \\udcff\", \"pinned\": {\"type\": \"TensorDict\"},\n"
		"  \"n\": null, \"l\": [ 1, [2, {\"x\": []}] ], \"big\": 2 }";
	REQUIRE(parse_raw(&d, doc, strlen(doc), &u) == 0);
	REQUIRE(u.doc);
	CHECK(strcmp(u.doc, "{\"tensors\":{\"device\":\"cpu\",\"shape\":[2],\"dtype\":\"torch.float32\"},"
			    "\"big\":123456789012345678901234567890,\"f\":1.50,\"e\":1E+400,"
			    "\"s\":\"a \\\"q\\\" \\u00e9 \\udcff\",\"pinned\":{\"type\":\"TensorDict\"},"
			    "\"n\":null,\"l\":[1,[2,{\"x\":[]}]],\"big\":2}") == 0);
	CHECK(!u.has_pinned && !u.attrs_json && u.nset == 0); /* not ours */
	/* rendered: each as written, then ours; and taken back unchanged */
	struct tc_meta_dir r = d;
	r.doc = u.doc;
	char *out;
	size_t len;
	REQUIRE(tc_meta_render(&r, &out, &len) == 0);
	CHECK(strstr(out, "\t\"big\": 123456789012345678901234567890,\n") != NULL);
	CHECK(strstr(out, "\t\"f\": 1.50,\n") != NULL);
	CHECK(strstr(out, "\t\"__tcache__\": {\n\t\t\"created\"") != NULL);
	struct tc_meta_update again = { 0 };
	REQUIRE(parse_raw(&r, out, len, &again) == 0);
	CHECK(again.doc && strcmp(again.doc, u.doc) == 0 && again.nset == 0);
	CHECK(again.has_pinned && again.pinned == 1);
	tc_meta_update_free(&again);
	free(out);
	tc_meta_update_free(&u);

	/* ours beside theirs; ours only: no user's keys */
	const char *both = "{\"k\": 1, \"__tcache__\": {\"pinned\": false}}";
	REQUIRE(parse_raw(&d, both, strlen(both), &u) == 0);
	CHECK(u.has_pinned && !u.pinned && strcmp(u.doc, "{\"k\":1}") == 0);
	tc_meta_update_free(&u);
	REQUIRE(parse_raw(&d, "{\"__tcache__\": {}}", 18, &u) == 0);
	CHECK(u.doc == NULL);
	tc_meta_update_free(&u);
	REQUIRE(parse_raw(&d, "{}", 2, &u) == 0);
	CHECK(u.doc == NULL);
	tc_meta_update_free(&u);

	/* refused, and *u untouched */
	static const char *const bad[] = {
		"[1, 2]", "\"x\"", "{\"k\": 1", "{\"k\": 1} x",
		"{\"__tcache__\": {}, \"__tcache__\": {}}",
		"{\"__tcache__\": []}",
		"{\"__tcache__\": {\"nope\": 1}}",
		"{\"k\": 1, \"__tcache__\": {\"tensors\": {\"x\": {\"shape\": [7]}}}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tc_meta_update before;
		memset(&u, 0x5c, sizeof u);
		before = u;
		CHECK(parse_raw(&d, bad[i], strlen(bad[i]), &u) == -EINVAL);
		CHECK(memcmp(&u, &before, sizeof u) == 0);
	}
}

/* TensorDict's meta.json: a key K with "dtype" and "shape" declares the
 * tensor K.memmap: set as declared, sizes unchecked; a "type" object, an
 * unknown dtype or a tensor not there sets nothing; ours wins; of two
 * keys the last. */
static void t_declared_tensors(void)
{
	static const uint64_t s8[] = { 8 }, s4[] = { 4 };
	static const struct tc_meta_tensor t[] = {
		{ "emb.memmap", 8, 0, TC_DT_UINT8, 1, s8, 1, NULL },
		{ "ids.memmap", 8, 0, TC_DT_UINT8, 1, s8, 2, NULL },
		{ "emb", 4, 0, TC_DT_UINT8, 1, s4, 3, NULL },
		{ "both.memmap", 8, 0, TC_DT_UINT8, 1, s8, 4, NULL },
	};
	struct tc_meta_dir d = { .ntensors = 4, .tensors = t };
	struct tc_meta_update u = { 0 };
	const char *doc =
		"{\"emb\": {\"device\": \"cpu\", \"shape\": [3], \"dtype\": \"torch.float16\", \"is_nested\": false},"
		" \"ids\": {\"shape\": [], \"dtype\": \"<i8\"},"
		" \"gone\": {\"shape\": [1], \"dtype\": \"torch.float32\"},"
		" \"sub\": {\"type\": \"TensorDict\", \"dtype\": \"uint8\", \"shape\": [8]},"
		" \"both\": {\"shape\": [2], \"dtype\": \"float32\"},"
		" \"both\": {\"shape\": [1, 2], \"dtype\": \"float32\"},"
		" \"odd\": {\"shape\": [1.5], \"dtype\": \"float32\"},"
		" \"cx\": {\"shape\": [1], \"dtype\": \"torch.complex64\"},"
		" \"shape\": [], \"device\": \"cpu\", \"_type\": \"<class 'tensordict._td.TensorDict'>\"}";
	REQUIRE(parse_raw(&d, doc, strlen(doc), &u) == 0);
	CHECK(u.nset == 3);
	for (size_t i = 0; i < u.nset; i++) {
		const struct tc_meta_set *m = &u.set[i];
		if (m->index == 0)      /* 6 bytes declared of 8: kept as declared */
			CHECK(m->dtype == TC_DT_FLOAT16 && m->ndim == 1 && m->shape[0] == 3);
		else if (m->index == 1) /* a scalar */
			CHECK(m->dtype == TC_DT_INT64 && m->ndim == 0);
		else
			CHECK(m->index == 3 && m->ndim == 2 && m->shape[1] == 2);
	}
	tc_meta_update_free(&u);
	/* ours wins over a declaration of the same tensor */
	const char *ours = "{\"emb\": {\"shape\": [3], \"dtype\": \"float16\"},"
			   " \"__tcache__\": {\"tensors\": {\"emb.memmap\": {\"dtype\": \"int8\"}}}}";
	REQUIRE(parse_raw(&d, ours, strlen(ours), &u) == 0);
	CHECK(u.nset == 1 && u.set[0].index == 0 && u.set[0].dtype == TC_DT_INT8 &&
	      u.set[0].shape[0] == 8);
	tc_meta_update_free(&u);
	/* and for a tensor committed later */
	struct tc_meta_set set;
	const char *kept = "{\"a\":{\"dtype\":\"torch.bfloat16\",\"shape\":[2,2]},\"b\":1}";
	CHECK(tc_meta_declared(kept, "a.memmap", &set) == 1);
	CHECK(set.dtype == TC_DT_BFLOAT16 && set.ndim == 2 && set.shape[0] == 2);
	CHECK(tc_meta_declared(kept, "a", &set) == 0);
	CHECK(tc_meta_declared(kept, "b.memmap", &set) == 0);
	CHECK(tc_meta_declared(kept, ".memmap", &set) == 0);
	CHECK(tc_meta_declared(NULL, "a.memmap", &set) == 0);
}

/* A surrogate pair whose low half is \udc80..\udcff is a character, not
 * the escape of a byte: 💀 is \ud83d\udc80. */
static void t_surrogate_pairs(void)
{
	static const uint64_t shape[] = { 4 };
	struct tc_meta_tensor t[] = {
		{ "\xf0\x9f\x92\x80", 4, 0, TC_DT_UINT8, 1, shape, 1, NULL },
	};
	struct tc_meta_dir d = { .ntensors = 1, .tensors = t };
	struct tc_meta_update u;
	const char *doc = "{\"s\": \"\\ud83d\\udc80\\udc80\", \"__tcache__\": {\"tensors\":"
			  " {\"\\ud83d\\udc80\": {\"dtype\": \"int32\"}}}}";
	REQUIRE(parse_raw(&d, doc, strlen(doc), &u) == 0);
	CHECK(u.nset == 1 && u.set[0].dtype == TC_DT_INT32);
	CHECK(u.doc && !strcmp(u.doc, "{\"s\":\"\\ud83d\\udc80\\udc80\"}"));
	tc_meta_update_free(&u);
}

int main(void)
{
	RUN(t_names_not_utf8);
	RUN(t_render_literal);
	RUN(t_render_entry);
	RUN(t_render_group);
	RUN(t_render_big);
	RUN(t_render_bad);
	RUN(t_roundtrip);
	RUN(t_parse_accept);
	RUN(t_parse_reject);
	RUN(t_update_free);
	RUN(t_json_prefix);
	RUN(t_open_world_keeps_user_keys);
	RUN(t_declared_tensors);
	RUN(t_surrogate_pairs);
	return check_done();
}
