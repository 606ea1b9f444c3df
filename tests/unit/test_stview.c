/*
 * test_stview.c - safetensors in the store: meta.json's listing of a
 * *.safetensors file, and an entry's .safetensors view (what it holds,
 * how long its bytes stay, what it keeps from eviction).
 *
 * The view is read back by a reader written here from the format's rules
 * (cJSON for the header, not lib/safetensors.c) and every tensor is
 * compared byte for byte with what was written.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "check.h"
#include "tcache.h"
#include "storeutil.h"
#include "testutil.h"


static uint64_t mkdir_in(tc_store *s, uint64_t parent, const char *name)
{
	struct tc_stat st;
	return tc_mkdir(s, parent, name, 0755, 0, 0, &st) ? 0 : st.id;
}

/* Create or replace @name in @dir with @buf[0..n), committed. */
static int put(tc_store *s, uint64_t dir, const char *name, const void *buf,
	       size_t n)
{
	struct tc_stat st;
	tc_file *f;
	int r = tc_lookup(s, dir, name, &st);
	if (r == 0)
		r = tc_open(s, st.id, TC_O_WRITE | TC_O_TRUNC, &f);
	else
		r = tc_create(s, dir, name, 0644, 0, 0, &f, &st);
	if (r)
		return r;
	ssize_t w = n ? tc_file_write(s, f, buf, n, 0) : 0;
	if (w != (ssize_t)n)
		r = w < 0 ? (int)w : -EIO;
	if (!r)
		r = tc_file_commit(s, f);
	tc_file_close(s, f);
	return r;
}

static int put_seeded(tc_store *s, uint64_t dir, const char *name, size_t n,
		      uint64_t seed)
{
	uint8_t *b = malloc(n ? n : 1);
	fill(b, n, seed);
	int r = put(s, dir, name, b, n);
	free(b);
	return r;
}

/* A .npy file of float32 [2, 3]: 128-byte header, then 24 bytes. */
static size_t npy_f32_2x3(uint8_t *out)
{
	const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
	memcpy(out, "\x93NUMPY\x01\x00\x76\x00", 10);
	memset(out + 10, ' ', 118);
	memcpy(out + 10, dict, strlen(dict));
	out[127] = '\n';
	fill(out + 128, 24, 77);
	return 152;
}

/* A .safetensors file by the rules: "w" F16 [2] and "b" U8 [3]. */
static size_t st_file(uint8_t *out)
{
	const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
			   "\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
			   "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[4,7]}}";
	size_t n = strlen(json);
	memset(out, 0, 8);
	out[0] = (uint8_t)n;
	memcpy(out + 8, json, n);
	fill(out + 8 + n, 7, 55);
	return 8 + n + 7;
}

/* The whole view of entry @e, read with tc_view_pread in pieces of
 * @chunk; *@len its size. */
static uint8_t *view_bytes(tc_store *s, tc_view *v, size_t chunk, size_t *len)
{
	size_t size = (size_t)tc_view_size(v);
	uint8_t *b = malloc(size + 1);
	for (size_t at = 0; at < size; at += chunk) {
		ssize_t r = tc_view_pread(s, v, b + at, chunk, at);
		CHECK(r == (ssize_t)(size - at < chunk ? size - at : chunk));
	}
	CHECK(tc_view_pread(s, v, b, 1, size) == 0);
	*len = size;
	return b;
}

/* A reader from the format's rules: N, the JSON (cJSON), the tensors'
 * bytes.  *@data: where the data starts.  NULL if it breaks a rule. */
static cJSON *read_view(const uint8_t *b, size_t len, const uint8_t **data)
{
	uint64_t n = 0;
	if (len < 8)
		return NULL;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | b[i];
	if (n % 8 || n > len - 8)
		return NULL;
	cJSON *h = cJSON_ParseWithLength((const char *)b + 8, n);
	if (!cJSON_IsObject(h))
		return NULL;
	/* data_offsets tile [0, len - 8 - n) */
	double end = 0;
	int k = 0;
	for (cJSON *t = h->child; t; t = t->next)
		if (strcmp(t->string, "__metadata__"))
			k++;
	for (int found = 1; found && k;) {
		found = 0;
		for (cJSON *t = h->child; t; t = t->next) {
			cJSON *o = cJSON_GetObjectItem(t, "data_offsets");
			if (o && cJSON_GetArrayItem(o, 0)->valuedouble == end &&
			    cJSON_GetArrayItem(o, 1)->valuedouble >= end &&
			    !cJSON_GetObjectItem(t, "seen")) {
				end = cJSON_GetArrayItem(o, 1)->valuedouble;
				cJSON_AddTrueToObject(t, "seen");
				found = 1;
				k--;
				break;
			}
		}
	}
	if (k || end != (double)(len - 8 - n)) {
		cJSON_Delete(h);
		return NULL;
	}
	*data = b + 8 + n;
	return h;
}

/* Is tensor @name of the view @h (data at @data) @dtype, @shape (a JSON
 * array as text) and the bytes @want[0..n)? */
static int has(cJSON *h, const uint8_t *data, const char *name,
	       const char *dtype, const char *shape, const void *want,
	       size_t n)
{
	cJSON *t = cJSON_GetObjectItemCaseSensitive(h, name);
	cJSON *o = cJSON_GetObjectItem(t, "data_offsets");
	char *sh = cJSON_PrintUnformatted(cJSON_GetObjectItem(t, "shape"));
	int ok = t && o && sh && !strcmp(sh, shape) &&
		 !strcmp(cJSON_GetObjectItem(t, "dtype")->valuestring, dtype);
	if (ok) {
		double b = cJSON_GetArrayItem(o, 0)->valuedouble;
		double e = cJSON_GetArrayItem(o, 1)->valuedouble;
		ok = e - b == (double)n && !memcmp(data + (size_t)b, want, n);
	}
	if (!ok)
		printf("# %s: not as expected (shape %s)\n", name, sh ? sh : "-");
	free(sh);
	return ok;
}

struct fixture {
	char *dir;
	tc_store *s;
	uint64_t e, g;
	uint8_t npy[160], st[256], raw[10], h[12], deep[2], bad[40];
	size_t npy_len, st_len;
};

/* Entry "e": raw "raw.bin" (uint8), "x.npy" (float32 [2,3]), group "g"
 * with "h" made int32 [3] by meta.json and "n/deep", a valid
 * "m.safetensors", a "bad.safetensors" whose header fails, and attrs. */
static int fixture(struct fixture *f, uint64_t cap)
{
	memset(f, 0, sizeof(*f));
	f->dir = tmpdir_new();
	if (!(f->s = open_store(f->dir, cap)))
		return -1;
	tc_store *s = f->s;
	f->e = mkdir_in(s, TC_ROOT_ID, "e");
	f->g = mkdir_in(s, f->e, "g");
	uint64_t n = mkdir_in(s, f->g, "n");
	f->npy_len = npy_f32_2x3(f->npy);
	f->st_len = st_file(f->st);
	fill(f->raw, sizeof(f->raw), 1);
	fill(f->h, sizeof(f->h), 2);
	fill(f->deep, sizeof(f->deep), 3);
	memcpy(f->bad, f->st, sizeof(f->bad));
	f->bad[0] = 200; /* N past the file */
	const char *gm = "{\"__tcache__\":{\"tensors\":{\"h\":{\"dtype\":\"int32\",\"shape\":[3]}}}}";
	const char *em = "{\"__tcache__\":{\"attrs\":{\"model\":\"demo\",\"step\":12,\"bad\\udcff\":\"x\"}}}";
	if (put(s, f->e, "raw.bin", f->raw, sizeof(f->raw)) ||
	    put(s, f->e, "x.npy", f->npy, f->npy_len) ||
	    put(s, f->g, "h", f->h, sizeof(f->h)) ||
	    put(s, n, "deep", f->deep, sizeof(f->deep)) ||
	    put(s, f->e, "m.safetensors", f->st, f->st_len) ||
	    put(s, f->e, "bad.safetensors", f->bad, sizeof(f->bad)) ||
	    tc_meta_set(s, f->g, gm, strlen(gm)) ||
	    tc_meta_set(s, f->e, em, strlen(em)))
		return -1;
	return 0;
}

static void fixture_done(struct fixture *f)
{
	tc_store_close(f->s);
	tmpdir_free(f->dir);
}

static void t_view_is_a_safetensors_file_of_every_tensor(void)
{
	struct fixture f;
	tc_view *v;
	size_t len;
	uint64_t size = 0;
	const uint8_t *data;

	REQUIRE(fixture(&f, 4 * MiB) == 0);
	REQUIRE(tc_view_open(f.s, f.e, &v) == 0);
	CHECK(tc_view_stat(f.s, f.e, &size) == 0 && size == tc_view_size(v));
	uint8_t *b = view_bytes(f.s, v, 7, &len);
	cJSON *h = read_view(b, len, &data);
	REQUIRE(h);
	CHECK(has(h, data, "x.npy", "F32", "[2,3]", f.npy + 128, 24));
	CHECK(has(h, data, "raw.bin", "U8", "[10]", f.raw, 10));
	CHECK(has(h, data, "g/h", "I32", "[3]", f.h, 12));
	CHECK(has(h, data, "g/n/deep", "U8", "[2]", f.deep, 2));
	/* a valid *.safetensors file: its tensors; a bad one: its bytes */
	CHECK(has(h, data, "m.safetensors/w", "F16", "[2]", f.st + f.st_len - 7, 4));
	CHECK(has(h, data, "m.safetensors/b", "U8", "[3]", f.st + f.st_len - 3, 3));
	CHECK(!cJSON_GetObjectItem(h, "m.safetensors"));
	CHECK(has(h, data, "bad.safetensors", "U8", "[40]", f.bad, 40));
	CHECK(cJSON_GetArraySize(h) == 8);
	/* attrs as strings; a key that is not UTF-8 left out */
	char *meta = cJSON_PrintUnformatted(cJSON_GetObjectItem(h, "__metadata__"));
	CHECK(meta && !strcmp(meta, "{\"model\":\"demo\",\"step\":\"12\"}"));
	free(meta);
	/* widest first: every tensor aligned to its item size */
	for (cJSON *t = h->child; t; t = t->next) {
		cJSON *o = cJSON_GetObjectItem(t, "data_offsets");
		const char *dt = cJSON_GetStringValue(cJSON_GetObjectItem(t, "dtype"));
		size_t item = !dt ? 1 : !strcmp(dt, "F32") || !strcmp(dt, "I32") ? 4
				  : !strcmp(dt, "F16") ? 2 : 1;
		if (o)
			CHECK((size_t)(data - b + cJSON_GetArrayItem(o, 0)->valuedouble) % item == 0);
	}
	/* the padding is spaces */
	CHECK(b[8 + (data - b - 8) - 1] == ' ' || b[8 + (data - b - 8) - 1] == '}');
	cJSON_Delete(h);

	/* map: the head from memory, the rest from the pool, same bytes */
	struct tc_span sp[64];
	int n;
	size_t total;
	REQUIRE(tc_view_map(f.s, v, 0, len + 100, sp, 64, &n, &total) == 0);
	CHECK(total == len && n >= 2 && sp[0].fd == -1 && sp[1].fd >= 0);
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		CHECK(!memcmp(b + at, sp[i].ptr, sp[i].len));
		at += sp[i].len;
	}
	CHECK(at == len);
	CHECK(tc_view_map(f.s, v, 0, len, sp, 1, &n, &total) == -ENOBUFS);
	CHECK(tc_view_map(f.s, v, len, 10, sp, 1, &n, &total) == 0 && total == 0);
	for (size_t off = 0; off < len; off += 13) {
		REQUIRE(tc_view_map(f.s, v, off, 29, sp, 64, &n, &total) == 0);
		at = off;
		for (int i = 0; i < n; i++) {
			CHECK(!memcmp(b + at, sp[i].ptr, sp[i].len));
			at += sp[i].len;
		}
		CHECK(at - off == total && total == (len - off < 29 ? len - off : 29));
	}
	free(b);
	tc_view_close(f.s, v);
	tc_view_close(f.s, NULL);
	fixture_done(&f);
}

/* What a view serves never changes while it is open: rewrites, unlinks
 * and meta.json changes show in the next view. */
static void t_open_view_keeps_its_bytes(void)
{
	struct fixture f;
	tc_view *v, *w;
	size_t len, len2;
	struct tc_stat st;

	REQUIRE(fixture(&f, 4 * MiB) == 0);
	REQUIRE(tc_view_open(f.s, f.e, &v) == 0);
	uint8_t *before = view_bytes(f.s, v, 4096, &len);
	CHECK(put_seeded(f.s, f.e, "raw.bin", 10, 99) == 0);
	CHECK(tc_unlink(f.s, f.e, "x.npy") == 0);
	CHECK(put_seeded(f.s, f.g, "big", 300 * KiB, 5) == 0);
	REQUIRE(tc_lookup(f.s, f.g, "n", &st) == 0);
	CHECK(tc_unlink(f.s, st.id, "deep") == 0 && tc_rmdir(f.s, f.g, "n") == 0);
	const char *gm = "{\"__tcache__\":{\"tensors\":{\"h\":{\"dtype\":\"float32\"}}}}";
	CHECK(tc_meta_set(f.s, f.g, gm, strlen(gm)) == 0);
	uint8_t *again = view_bytes(f.s, v, 1000, &len2);
	CHECK(len2 == len && !memcmp(before, again, len));
	REQUIRE(tc_view_open(f.s, f.e, &w) == 0);
	CHECK(tc_view_content(w) != tc_view_content(v));
	free(again);
	again = view_bytes(f.s, w, 4096, &len2);
	const uint8_t *data;
	cJSON *h = read_view(again, len2, &data);
	REQUIRE(h);
	CHECK(!cJSON_GetObjectItem(h, "x.npy") && !cJSON_GetObjectItem(h, "g/n/deep"));
	CHECK(cJSON_GetObjectItem(h, "g/big"));
	uint8_t raw[10];
	fill(raw, 10, 99);
	CHECK(has(h, data, "raw.bin", "U8", "[10]", raw, 10));
	CHECK(has(h, data, "g/h", "F32", "[3]", f.h, 12));
	cJSON_Delete(h);
	tc_view_close(f.s, v);
	/* the same entry unchanged: the same content */
	tc_view *x;
	REQUIRE(tc_view_open(f.s, f.e, &x) == 0);
	CHECK(tc_view_content(x) == tc_view_content(w));
	tc_view_close(f.s, x);
	tc_view_close(f.s, w);
	free(before);
	free(again);
	fixture_done(&f);
}

/* An entry with a view open is not evicted; closed, it is; a tensor
 * removed while a view held it gives its space back at the close. */
static void t_open_view_keeps_its_entry(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t a = mkdir_in(s, TC_ROOT_ID, "a"), b = mkdir_in(s, TC_ROOT_ID, "b");
	REQUIRE(put_seeded(s, a, "t", 600 * KiB, 1) == 0);
	tc_view *v;
	REQUIRE(tc_view_open(s, a, &v) == 0);
	CHECK(put_seeded(s, b, "t", 600 * KiB, 2) == -ENOSPC);
	struct tc_stat st;
	CHECK(tc_lookup(s, TC_ROOT_ID, "a", &st) == 0);
	tc_view_close(s, v);
	CHECK(put_seeded(s, b, "t", 600 * KiB, 2) == 0);
	CHECK(tc_lookup(s, TC_ROOT_ID, "a", &st) == -ENOENT);

	/* removed under an open view: the bytes stay until the close */
	struct tc_stats before, during, after;
	tc_store_sync(s);
	tc_store_stats(s, &before);
	REQUIRE(tc_view_open(s, b, &v) == 0);
	CHECK(tc_unlink(s, b, "t") == 0 && tc_rmdir(s, TC_ROOT_ID, "b") == 0);
	tc_store_sync(s);
	tc_store_stats(s, &during);
	CHECK(during.used == before.used && during.entries == 0);
	size_t len;
	uint8_t *got = view_bytes(s, v, 64 * KiB, &len), *want = malloc(600 * KiB);
	fill(want, 600 * KiB, 2);
	CHECK(len > 600 * KiB && !memcmp(got + len - 600 * KiB, want, 600 * KiB));
	tc_view_close(s, v);
	tc_store_sync(s);
	tc_store_stats(s, &after);
	CHECK(after.used == 0);
	free(got);
	free(want);
	tc_store_close(s);
	tmpdir_free(d);
}

static void t_view_of_what_is_no_entry(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t e = mkdir_in(s, TC_ROOT_ID, "e"), g = mkdir_in(s, e, "g");
	tc_view *v = NULL;
	uint64_t size = 7;
	struct tc_stat st;
	REQUIRE(put_seeded(s, e, "t", 10, 1) == 0);
	REQUIRE(tc_lookup(s, e, "t", &st) == 0);
	CHECK(tc_view_open(s, TC_ROOT_ID, &v) == -EINVAL);
	CHECK(tc_view_open(s, g, &v) == -EINVAL);
	CHECK(tc_view_open(s, st.id, &v) == -ENOTDIR);
	CHECK(tc_view_open(s, 999999, &v) == -ENOENT);
	CHECK(tc_view_stat(s, g, &size) == -EINVAL && size == 7 && v == NULL);
	/* an empty entry: "{}" and spaces */
	uint64_t z = mkdir_in(s, TC_ROOT_ID, "z");
	REQUIRE(tc_view_open(s, z, &v) == 0);
	size_t len;
	uint8_t *b = view_bytes(s, v, 100, &len);
	CHECK(len == 16 && !memcmp(b, "\x08\0\0\0\0\0\0\0{}      ", 16));
	free(b);
	tc_view_close(s, v);
	/* its name is reserved in entries and groups */
	tc_file *f;
	CHECK(tc_create(s, e, TC_VIEW_NAME, 0644, 0, 0, &f, &st) == -EEXIST);
	CHECK(tc_mkdir(s, g, TC_VIEW_NAME, 0755, 0, 0, &st) == -EEXIST);
	CHECK(tc_rename(s, e, "t", e, TC_VIEW_NAME, 0) == -EEXIST);
	tc_store_close(s);
	tmpdir_free(d);
}

/* A damaged tensor is never served through the view either. */
static void t_view_verifies_what_it_serves(void)
{
	char *d = tmpdir_new();
	tc_store *s = open_store(d, 1 * MiB);
	REQUIRE(s);
	uint64_t e = mkdir_in(s, TC_ROOT_ID, "e");
	REQUIRE(put_seeded(s, e, "t", 8192, 1) == 0);
	tc_view *v;
	struct tc_span sp[4];
	int n;
	size_t total;
	REQUIRE(tc_view_open(s, e, &v) == 0);
	REQUIRE(tc_view_map(s, v, tc_view_size(v) - 100, 1, sp, 4, &n, &total) == 0);
	off_t where = (off_t)sp[0].fd_off;
	tc_view_close(s, v);
	tc_store_close(s);
	char p[512];
	snprintf(p, sizeof(p), "%s/pool", d);
	int fd = open(p, O_RDWR);
	uint8_t byte;
	REQUIRE(fd >= 0 && pread(fd, &byte, 1, where) == 1);
	byte ^= 0xff;
	REQUIRE(pwrite(fd, &byte, 1, where) == 1);
	close(fd);
	s = open_store(d, 0);
	REQUIRE(s);
	CHECK(tc_view_open(s, e, &v) == -EIO);
	CHECK(tc_view_open(s, e, &v) == -EIO);
	tc_store_close(s);
	tmpdir_free(d);
}

/* meta.json lists a valid *.safetensors file's tensors (our dtype names,
 * offsets in the file), and takes the listing back unchanged only. */
static void t_meta_lists_a_safetensors_file(void)
{
	struct fixture f;
	char *json;
	size_t len;

	REQUIRE(fixture(&f, 4 * MiB) == 0);
	/* attrs that cJSON reads back (the fixture's key is not UTF-8) */
	REQUIRE(tc_meta_set(f.s, f.e, "{\"__tcache__\":{\"attrs\":{}}}", 27) == 0);
	REQUIRE(tc_meta_get(f.s, f.e, &json, &len) == 0);
	cJSON *m = cJSON_Parse(json);
	REQUIRE(m);
	cJSON *ts = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "__tcache__"), "tensors");
	cJSON *l = cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "m.safetensors"),
				       "safetensors");
	char *txt = cJSON_PrintUnformatted(l);
	char want[256];
	snprintf(want, sizeof want,
		 "{\"w\":{\"dtype\":\"float16\",\"shape\":[2],\"offset\":%zu},"
		 "\"b\":{\"dtype\":\"uint8\",\"shape\":[3],\"offset\":%zu}}",
		 f.st_len - 7, f.st_len - 3);
	CHECK(txt && !strcmp(txt, want));
	free(txt);
	CHECK(!cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "bad.safetensors"),
				   "safetensors"));
	CHECK(!cJSON_GetObjectItem(cJSON_GetObjectItem(ts, "x.npy"), "safetensors"));
	/* sent back as rendered: accepted; changed: refused */
	CHECK(tc_meta_set(f.s, f.e, json, len) == 0);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(l, "w"), "offset",
				  cJSON_CreateNumber(1));
	txt = cJSON_Print(m);
	CHECK(tc_meta_set(f.s, f.e, txt, strlen(txt)) == -EINVAL);
	free(txt);
	cJSON_DeleteItemFromObject(cJSON_GetObjectItem(ts, "m.safetensors"), "safetensors");
	cJSON_AddItemToObject(cJSON_GetObjectItem(ts, "raw.bin"), "safetensors",
			      cJSON_CreateObject());
	txt = cJSON_Print(m);
	CHECK(tc_meta_set(f.s, f.e, txt, strlen(txt)) == -EINVAL);
	free(txt);
	cJSON_Delete(m);
	free(json);
	fixture_done(&f);
}

int main(void)
{
	RUN(t_view_is_a_safetensors_file_of_every_tensor);
	RUN(t_open_view_keeps_its_bytes);
	RUN(t_open_view_keeps_its_entry);
	RUN(t_view_of_what_is_no_entry);
	RUN(t_view_verifies_what_it_serves);
	RUN(t_meta_lists_a_safetensors_file);
	return check_done();
}
