/*
 * meta.c - meta.json: render a directory's description, and validate a
 * user's rewrite of it.  Built on cJSON.
 *
 * Rendered layout (tab indents; then a final "\n"):
 *
 *   {
 *     "KEY": VALUE,          the user's keys, each as written (compact)
 *     ...
 *     "__tcache__": {        ours (TC_META_KEY), cJSON's pretty print:
 *       "created": "2026-11-23T16:22:12.123456789Z",   \
 *       "last_access": "2026-11-23T16:22:12.123456789Z", | entries only
 *       "pinned": false,                                 | (UTC, RFC 3339)
 *       "attrs": { ...user's object... },               |
 *       "parent": "NAME" or null,                       /  the link
 *       "tensors": {
 *         "NAME": { "nbytes": 24, "dtype": "float32", "shape": [2, 3],
 *                   "offset": 128,          only when data_offset > 0
 *                   "xxh3": "0123456789abcdef",
 *                   "safetensors": {...} },  a *.safetensors file's
 *                                  tensors (stview.c); read-only
 *         ...                               (in the given order)
 *       },
 *       "groups": ["NAME", ...]
 *     }
 *   }
 *
 * Open world: a user's document may hold any keys.  Ours are all under
 * one key, so that no key a user writes (a TensorDict leaf may well be
 * called "tensors" or "pinned") is taken for one of ours, and every other
 * key reads back as it was written: its text is kept (doc.c), never a
 * parsed tree that would round numbers or reorder keys.  A key K whose
 * value is an object with "dtype" and "shape" (TensorDict's schema)
 * declares the tensor K.memmap; the store gives it that dtype and shape
 * whenever both exist, and never refuses a document over sizes.
 *
 * Integers: cJSON keeps numbers as doubles, which are exact only below 2^53
 * and which it prints as "1e+15" for some.  So integers are rendered as raw
 * decimal digits (cJSON_CreateRaw), and parsed back from the text itself:
 * struct numscan walks the input in document order alongside the tree (the
 * tree keeps document order too), so every number node is matched with its
 * token.  An integer is plain decimal digits, no sign, fraction, exponent
 * or leading zero, at most UINT64_MAX.
 *
 * tc_meta_parse() is all or nothing: the update is built aside and copied
 * to *u only on success.  Duplicate keys are rejected anywhere in the
 * document (cJSON would keep both).  Only whitespace may follow the value.
 *
 * Pure functions, no shared state: thread-safe.  Cost: O(input) plus
 * O(k log k) per object of k keys and O(t log t) for t tensors.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "doc.h"
#include "dtype.h"
#include "meta.h"

/* ---- why a document is refused ------------------------------------------- */

static _Thread_local char why[512];

int tc_meta_refuse(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

const char *tc_meta_error(void)
{
	return why;
}

/* ---- names that are not UTF-8 -------------------------------------------- */

/*
 * Names are bytes, as on any Linux file system, but JSON is UTF-8.  A
 * rendered document escapes each byte that is not part of valid UTF-8 as
 * \udcXX (the "surrogateescape" convention: Python's os.fsencode() turns
 * the decoded name back into the bytes), and a user's document has those
 * escapes turned back into bytes before it is parsed, so such a tensor can
 * still be named.  cJSON writes structural characters in ASCII, so invalid
 * bytes can only stand inside strings.
 */

/* Length of the valid UTF-8 sequence at @p (@n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	static const uint32_t least[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A copy of @txt (@n bytes) with invalid UTF-8 bytes as \udcXX; NULL on
 * ENOMEM.  *@outlen gets the new length.  O(n). */
static char *escape_bytes(const char *txt, size_t n, size_t *outlen)
{
	char *out = malloc(n * 6 + 2); /* + a newline and NUL for the caller */
	size_t o = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq((const unsigned char *)txt + i, n - i);
		if (k) {
			memcpy(out + o, txt + i, k);
			o += k;
			i += k;
		} else {
			o += (size_t)sprintf(out + o, "\\udc%02x", (unsigned char)txt[i]);
			i++;
		}
	}
	out[o] = 0;
	*outlen = o;
	return out;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Is @p (4 bytes) the hex digits of a high surrogate, D800..DBFF? */
static int high_surrogate(const char *p)
{
	return (p[0] == 'd' || p[0] == 'D') && hexval(p[1]) >= 8 &&
	       hexval(p[1]) <= 0xb && hexval(p[2]) >= 0 && hexval(p[3]) >= 0;
}

/* A copy of a user's document with \udc80..\udcff inside strings turned
 * back into the bytes 0x80..0xff, but for one that completes a surrogate
 * pair (\ud83d\udc80 is U+1F480, a character); NULL on ENOMEM.  O(n). */
static char *unescape_bytes(const char *buf, size_t n, size_t *outlen)
{
	char *out = malloc(n + 1);
	size_t o = 0, pair = SIZE_MAX; /* where a pair's low half would be */
	int in_str = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char c = buf[i];
		if (in_str && c == '\\' && i + 1 < n) {
			if (buf[i + 1] == 'u' && i + 5 < n && i != pair &&
			    (buf[i + 2] == 'd' || buf[i + 2] == 'D') &&
			    (buf[i + 3] == 'c' || buf[i + 3] == 'C') &&
			    hexval(buf[i + 4]) >= 8 && hexval(buf[i + 5]) >= 0) {
				out[o++] = (char)(hexval(buf[i + 4]) << 4 |
						  hexval(buf[i + 5]));
				i += 5;
				continue;
			}
			if (buf[i + 1] == 'u' && i + 5 < n && high_surrogate(buf + i + 2))
				pair = i + 6;
			out[o++] = c;
			out[o++] = buf[++i];
			continue;
		}
		if (c == '"')
			in_str = !in_str;
		out[o++] = c;
	}
	out[o] = 0;
	*outlen = o;
	return out;
}

/* ---- render -------------------------------------------------------------- */

/* Add @item (NULL: allocation failed) to object @obj under @key, or to
 * array @obj if @key is NULL.  On failure @item is freed. */
static int put(cJSON *obj, const char *key, cJSON *item)
{
	if (!item)
		return -ENOMEM;
	if (!(key ? cJSON_AddItemToObject(obj, key, item)
		  : cJSON_AddItemToArray(obj, item))) {
		cJSON_Delete(item);
		return -ENOMEM;
	}
	return 0;
}

static cJSON *json_u64(uint64_t v)
{
	char s[24];

	snprintf(s, sizeof s, "%" PRIu64, v);
	return cJSON_CreateRaw(s);
}

/* "2026-11-23T16:22:12.123456789Z" */
static cJSON *json_time(int64_t ns)
{
	int64_t sec = ns / 1000000000, frac = ns % 1000000000;
	struct tm tm;
	time_t t;
	char s[64];

	if (frac < 0) {
		frac += 1000000000;
		sec--;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm))
		return NULL;
	snprintf(s, sizeof s, "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)frac);
	return cJSON_CreateString(s);
}

static int render_tensor(cJSON *ts, const struct tc_meta_tensor *t)
{
	const char *dt = tc_dtype_name(t->dtype);
	cJSON *o, *shape;
	char hex[17];
	int rc;

	if (!dt || t->ndim < 0 || t->ndim > TC_MAX_DIMS)
		return -EINVAL;
	if ((rc = put(ts, t->name, o = cJSON_CreateObject())) ||
	    (rc = put(o, "nbytes", json_u64(t->nbytes))) ||
	    (rc = put(o, "dtype", cJSON_CreateString(dt))) ||
	    (rc = put(o, "shape", shape = cJSON_CreateArray())))
		return rc;
	for (int i = 0; i < t->ndim; i++)
		if ((rc = put(shape, NULL, json_u64(t->shape[i]))))
			return rc;
	if (t->data_offset > 0 &&
	    (rc = put(o, "offset", json_u64(t->data_offset))))
		return rc;
	snprintf(hex, sizeof hex, "%016" PRIx64, t->xxh3);
	if ((rc = put(o, "xxh3", cJSON_CreateString(hex))))
		return rc;
	return t->safetensors_json ? put(o, "safetensors",
				 cJSON_CreateRaw(t->safetensors_json)) : 0;
}

/* The document: "{", the user's members @m (of @doc) each on a line of
 * its own, then TC_META_KEY with @ours (@n bytes, pretty, indented one
 * level more here), "}" and a newline.  Malloc'd in *@out, *@len. */
static int join(const struct tc_doc_member *m, size_t nm, const char *ours,
		size_t n, char **out, size_t *len)
{
	static const char key[] = "\t\"" TC_META_KEY "\": ";
	size_t need = 2 + sizeof(key) + 2 * n + 4, o = 0;
	char *res;

	for (size_t i = 0; i < nm; i++)
		need += m[i].key_len + m[i].val_len + 5;
	if (!(res = malloc(need)))
		return -ENOMEM;
	res[o++] = '{';
	res[o++] = '\n';
	for (size_t i = 0; i < nm; i++) {
		res[o++] = '\t';
		memcpy(res + o, m[i].key, m[i].key_len);
		o += m[i].key_len;
		res[o++] = ':';
		res[o++] = ' ';
		memcpy(res + o, m[i].val, m[i].val_len);
		o += m[i].val_len;
		res[o++] = ',';
		res[o++] = '\n';
	}
	memcpy(res + o, key, sizeof(key) - 1);
	o += sizeof(key) - 1;
	for (size_t i = 0; i < n; i++) {
		res[o++] = ours[i];
		if (ours[i] == '\n')
			res[o++] = '\t';
	}
	memcpy(res + o, "\n}\n", 4); /* with the NUL */
	*out = res;
	*len = o + 3;
	return 0;
}

int tc_meta_render(const struct tc_meta_dir *d, char **out, size_t *len)
{
	cJSON *root, *attrs, *ts, *gs;
	char *txt = NULL, *res = NULL;
	struct tc_doc_member *m = NULL;
	size_t n, nm = 0;
	int rc = -ENOMEM;

	if (!(root = cJSON_CreateObject()))
		goto out;
	if (d->is_entry) {
		if ((rc = put(root, "created", json_time(d->created_ns))) ||
		    (rc = put(root, "last_access",
			      json_time(d->last_access_ns))) ||
		    (rc = put(root, "pinned", cJSON_CreateBool(d->pinned))))
			goto out;
		if (d->attrs_json) {
			/* NULL: malformed or out of memory; cJSON cannot tell */
			attrs = cJSON_Parse(d->attrs_json);
			if (!cJSON_IsObject(attrs)) {
				cJSON_Delete(attrs);
				rc = -EINVAL;
				goto out;
			}
		} else {
			attrs = cJSON_CreateObject();
		}
		if ((rc = put(root, "attrs", attrs)) ||
		    (rc = put(root, "parent", d->link
					? cJSON_CreateString(d->link)
					: cJSON_CreateNull())))
			goto out;
	}
	if ((rc = put(root, "tensors", ts = cJSON_CreateObject())))
		goto out;
	for (size_t i = 0; i < d->ntensors; i++)
		if ((rc = render_tensor(ts, &d->tensors[i])))
			goto out;
	if ((rc = put(root, "groups", gs = cJSON_CreateArray())))
		goto out;
	for (size_t i = 0; i < d->ngroups; i++)
		if ((rc = put(gs, NULL, cJSON_CreateString(d->groups[i]))))
			goto out;

	if (d->doc && (rc = tc_doc_members(d->doc, strlen(d->doc), &m, &nm)))
		goto out;
	rc = -ENOMEM;
	if (!(txt = cJSON_Print(root)))
		goto out;
	if (!(res = escape_bytes(txt, strlen(txt), &n)))
		goto out;
	rc = join(m, nm, res, n, out, len);
out:
	free(m);
	free(res);
	cJSON_free(txt);
	cJSON_Delete(root);
	return rc;
}

/* ---- parse --------------------------------------------------------------- */

/* Number tokens of the (already validated) input, in document order. */
struct numscan {
	const char *buf;
	size_t len, pos;
};

static int is_numch(char c)
{
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
	       c == 'e' || c == 'E';
}

static int num_next(struct numscan *s, const char **tok, size_t *n)
{
	while (s->pos < s->len) {
		char c = s->buf[s->pos];
		if (c == '"') {
			for (s->pos++; s->pos < s->len && s->buf[s->pos] != '"';
			     s->pos++)
				if (s->buf[s->pos] == '\\')
					s->pos++;
			s->pos++;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t b = s->pos;
			while (s->pos < s->len && is_numch(s->buf[s->pos]))
				s->pos++;
			*tok = s->buf + b;
			*n = s->pos - b;
			return 0;
		} else {
			s->pos++;
		}
	}
	return -EINVAL;
}

static size_t count_numbers(const cJSON *j)
{
	size_t n = cJSON_IsNumber(j);

	for (const cJSON *c = j->child; c; c = c->next)
		n += count_numbers(c);
	return n;
}

/* Step the scan over every number inside @j. */
static int skip_numbers(struct numscan *s, const cJSON *j)
{
	const char *tok;
	size_t n;

	for (size_t k = count_numbers(j); k > 0; k--)
		if (num_next(s, &tok, &n))
			return -EINVAL;
	return 0;
}

/* Number node @j, the next in document order, as an exact uint64. */
static int exact_u64(struct numscan *s, const cJSON *j, uint64_t *v)
{
	const char *tok;
	size_t n;
	uint64_t x = 0;

	if (!cJSON_IsNumber(j) || num_next(s, &tok, &n))
		return -EINVAL;
	if (n == 0 || (tok[0] == '0' && n > 1))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(tok[i] - '0');
		if (d > 9 || x > (UINT64_MAX - d) / 10)
			return -EINVAL;
		x = x * 10 + d;
	}
	if ((double)x != j->valuedouble) /* the scan lost step with cJSON */
		return -EINVAL;
	*v = x;
	return 0;
}

/* Exactly 16 hex digits, either case, equal to @want. */
static int xxh3_equal(const char *s, uint64_t want)
{
	uint64_t x = 0;
	size_t i;

	for (i = 0; s[i] && i < 16; i++) {
		char c = s[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return 0;
		x = x << 4 | d;
	}
	return i == 16 && !s[16] && x == want;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* -EINVAL if any object in @j has a key twice. */
static int check_dups(const cJSON *j)
{
	const char **keys;
	size_t n = 0, i;
	int rc = 0;

	if (cJSON_IsObject(j) && j->child && j->child->next) {
		for (const cJSON *c = j->child; c; c = c->next)
			n++;
		if (!(keys = malloc(n * sizeof *keys)))
			return -ENOMEM;
		i = 0;
		for (const cJSON *c = j->child; c; c = c->next)
			keys[i++] = c->string;
		qsort(keys, n, sizeof *keys, cmp_name);
		for (i = 1; i < n && !rc; i++)
			if (!strcmp(keys[i - 1], keys[i]))
				rc = tc_meta_refuse("%s: the key \"%s\" twice",
						    TC_META_KEY, keys[i]);
		free(keys);
	}
	for (const cJSON *c = j->child; c && !rc; c = c->next)
		rc = check_dups(c);
	return rc;
}

/* Is @j the value that the JSON text @txt (NULL: none) holds? */
static int same_json(const cJSON *j, const char *txt)
{
	cJSON *t = txt ? cJSON_Parse(txt) : NULL;
	int same = t && cJSON_Compare(j, t, 1);
	cJSON_Delete(t);
	return same;
}

/* product(shape) * size, or -EINVAL on overflow; 0 if any dim is 0. */
static int shape_bytes(const uint64_t *shape, int ndim, size_t size,
		       uint64_t *out)
{
	uint64_t b = size;

	for (int i = 0; i < ndim; i++)
		if (shape[i] == 0) {
			*out = 0;
			return 0;
		}
	for (int i = 0; i < ndim; i++)
		if (__builtin_mul_overflow(b, shape[i], &b))
			return -EINVAL;
	*out = b;
	return 0;
}

/* One tensor's object.  Sets *has if it names a dtype or shape. */
static int parse_tensor(struct numscan *s, const struct tc_meta_tensor *t,
			const cJSON *o, struct tc_meta_set *set, int *has)
{
	uint64_t shape[TC_MAX_DIMS], v, payload, b;
	int dt = -1, ndim = -1;
	size_t size;
	const char *tn = t->name;
#define TENSOR TC_META_KEY ".tensors.%s"

	if (!cJSON_IsObject(o))
		return tc_meta_refuse(TENSOR ": expected an object", tn);
	for (const cJSON *c = o->child; c; c = c->next) {
		const char *k = c->string;
		if (!strcmp(k, "nbytes") || !strcmp(k, "offset")) {
			uint64_t is = k[0] == 'n' ? t->nbytes : t->data_offset;
			if (exact_u64(s, c, &v) || v != is)
				return tc_meta_refuse(TENSOR ".%s: read-only, and "
						      "%llu here", tn, k,
						      (unsigned long long)is);
		} else if (!strcmp(k, "xxh3")) {
			if (!cJSON_IsString(c) ||
			    !xxh3_equal(c->valuestring, t->xxh3))
				return tc_meta_refuse(TENSOR ".xxh3: read-only, "
						      "and %016llx here", tn,
						      (unsigned long long)t->xxh3);
		} else if (!strcmp(k, "dtype")) {
			if (!cJSON_IsString(c) ||
			    (dt = tc_dtype_from_name(c->valuestring)) < 0)
				return tc_meta_refuse(TENSOR ".dtype: %s%s%s", tn,
						      cJSON_IsString(c) ? "unknown, \"" : "expected a string",
						      cJSON_IsString(c) ? c->valuestring : "",
						      cJSON_IsString(c) ? "\"" : "");
		} else if (!strcmp(k, "safetensors")) { /* read-only */
			if (!same_json(c, t->safetensors_json) ||
			    skip_numbers(s, c))
				return tc_meta_refuse(TENSOR ".safetensors: "
						      "read-only", tn);
		} else if (!strcmp(k, "shape")) {
			if (!cJSON_IsArray(c))
				return tc_meta_refuse(TENSOR ".shape: expected "
						      "an array", tn);
			ndim = 0;
			for (const cJSON *e = c->child; e; e = e->next)
				if (ndim == TC_MAX_DIMS ||
				    exact_u64(s, e, &shape[ndim++]))
					return tc_meta_refuse(
						TENSOR ".shape: expected at most "
						"%d integers", tn, TC_MAX_DIMS);
		} else {
			return tc_meta_refuse(TENSOR ": unknown key \"%s\" "
					      "(dtype and shape can be set)", tn, k);
		}
	}
	*has = dt >= 0 || ndim >= 0;
	if (dt == t->dtype && ndim == t->ndim &&
	    (ndim == 0 || !memcmp(shape, t->shape, (size_t)ndim * sizeof(shape[0]))))
		*has = 0; /* sent back as it is (a declared one may not add up) */
	if (!*has)
		return 0;

	if (t->data_offset > t->nbytes)
		return tc_meta_refuse(TENSOR ": its header is longer than "
				      "the file", tn);
	payload = t->nbytes - t->data_offset;
	if (dt < 0)
		dt = t->dtype;
	if (!(size = tc_dtype_size(dt)))
		return tc_meta_refuse(TENSOR ".dtype: %s has no size of its "
				      "own: give one", tn, tc_dtype_name(dt));
	if (ndim < 0) {
		if (payload % size)
			return tc_meta_refuse(TENSOR ".dtype: %s is %zu bytes "
					      "an element; %llu bytes are no "
					      "whole number of them", tn,
					      tc_dtype_name(dt), size,
					      (unsigned long long)payload);
		ndim = 1;
		shape[0] = payload / size;
	} else if (shape_bytes(shape, ndim, size, &b) || b != payload) {
		/* e.g. "shape: 32×128×2 bytes ≠ 8190" */
		char dims[TC_MAX_DIMS * 24 + 32];
		size_t at = 0;
		for (int i = 0; i < ndim; i++)
			at += (size_t)snprintf(dims + at, sizeof(dims) - at,
					       "%llu×", (unsigned long long)shape[i]);
		snprintf(dims + at, sizeof(dims) - at, "%zu", size);
		return tc_meta_refuse(TENSOR ".shape: %s bytes ≠ %llu, the "
				      "tensor's size%s", tn, dims,
				      (unsigned long long)payload,
				      t->data_offset ? " past its header" : "");
	}
#undef TENSOR
	memset(set, 0, sizeof *set);
	set->dtype = dt;
	set->ndim = ndim;
	memcpy(set->shape, shape, (size_t)ndim * sizeof shape[0]);
	return 0;
}

static int cmp_tensor(const void *a, const void *b)
{
	return strcmp((*(const struct tc_meta_tensor *const *)a)->name,
		      (*(const struct tc_meta_tensor *const *)b)->name);
}

/* The "tensors" object: appends to u->set (room for every key). */
static int parse_tensors(struct numscan *s, const struct tc_meta_dir *cur,
			 const cJSON *ts, struct tc_meta_update *u)
{
	const struct tc_meta_tensor **byname = NULL, *const *hit;
	size_t n = 0;
	int rc = -EINVAL, has = 0;

	if (!cJSON_IsObject(ts))
		return tc_meta_refuse(TC_META_KEY ".tensors: expected an object");
	for (const cJSON *c = ts->child; c; c = c->next)
		n++;
	if (n == 0)
		return 0;
	if (cur->ntensors == 0)
		return tc_meta_refuse(TC_META_KEY ".tensors.%s: no such tensor "
				      "here", ts->child->string);
	rc = -ENOMEM;
	if (!(u->set = malloc(n * sizeof *u->set)) ||
	    !(byname = malloc(cur->ntensors * sizeof *byname)))
		goto out;
	for (size_t i = 0; i < cur->ntensors; i++)
		byname[i] = &cur->tensors[i];
	qsort(byname, cur->ntensors, sizeof *byname, cmp_tensor);

	rc = -EINVAL;
	for (const cJSON *c = ts->child; c; c = c->next) {
		struct tc_meta_tensor key = { .name = c->string };
		const struct tc_meta_tensor *kp = &key;
		struct tc_meta_set *set = &u->set[u->nset];

		hit = bsearch(&kp, byname, cur->ntensors, sizeof *byname,
			      cmp_tensor);
		if (!hit) {
			rc = tc_meta_refuse(TC_META_KEY ".tensors.%s: no such "
					    "tensor here", c->string);
			goto out;
		}
		if (parse_tensor(s, *hit, c, set, &has))
			goto out;
		if (has) {
			set->index = (size_t)(*hit - cur->tensors);
			u->nset++;
		}
	}
	rc = 0;
out:
	free(byname);
	return rc;
}

/* Is @c a string that can name an entry (a parent link)? */
static int valid_link(const cJSON *c)
{
	if (!cJSON_IsString(c))
		return 0;
	const char *v = c->valuestring;
	size_t n = strlen(v);
	return n > 0 && n <= TC_NAME_MAX && !strchr(v, '/') &&
	       strcmp(v, ".") && strcmp(v, "..");
}

/* Our object: @buf, @len, the text of TC_META_KEY's value (unescaped),
 * into *@nu. */
static int parse_ours(const struct tc_meta_dir *cur, const char *buf,
		      size_t len, struct tc_meta_update *nu)
{
	const char *end = NULL;
	cJSON *root = NULL;
	int rc = -EINVAL;
	struct numscan s = { buf, len, 0 };

	/* NULL: malformed, or out of memory (cJSON cannot tell us which) */
	root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (!root || !cJSON_IsObject(root)) {
		rc = tc_meta_refuse(TC_META_KEY ": expected an object");
		goto out;
	}
	for (; end < buf + len; end++)
		if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')
			goto out; /* cannot be: its text came from the scan */
	if ((rc = check_dups(root)))
		goto out;

	rc = -EINVAL;
	for (const cJSON *c = root->child; c; c = c->next) {
		const char *k = c->string;
		if (!cur->is_entry && (!strcmp(k, "pinned") ||
				       !strcmp(k, "attrs") || !strcmp(k, "parent"))) {
			rc = tc_meta_refuse(TC_META_KEY ".%s: only an entry "
					    "(a top-level directory) has it", k);
			goto out;
		}
		if (!strcmp(k, "created") || !strcmp(k, "last_access")) {
			if (skip_numbers(&s, c))
				goto out;
		} else if (!strcmp(k, "pinned")) {
			if (!cJSON_IsBool(c)) {
				rc = tc_meta_refuse(TC_META_KEY ".pinned: "
						    "expected true or false");
				goto out;
			}
			nu->has_pinned = 1;
			nu->pinned = cJSON_IsTrue(c);
		} else if (!strcmp(k, "attrs")) {
			if (!cJSON_IsObject(c) || skip_numbers(&s, c)) {
				rc = tc_meta_refuse(TC_META_KEY ".attrs: "
						    "expected an object");
				goto out;
			}
			/* cJSON's default allocator is malloc */
			if (!(nu->attrs_json = cJSON_PrintUnformatted(c))) {
				rc = -ENOMEM;
				goto out;
			}
		} else if (!strcmp(k, "parent")) {
			if (!(cJSON_IsNull(c) || valid_link(c))) {
				rc = tc_meta_refuse(TC_META_KEY ".parent: "
						    "expected null or an "
						    "entry's name");
				goto out;
			}
			nu->has_link = 1;
			if (cJSON_IsString(c) &&
			    !(nu->link = strdup(c->valuestring))) {
				rc = -ENOMEM;
				goto out;
			}
		} else if (!strcmp(k, "groups")) {
			int strings = cJSON_IsArray(c);
			for (const cJSON *g = c->child; strings && g; g = g->next)
				strings = cJSON_IsString(g);
			if (!strings) {
				rc = tc_meta_refuse(TC_META_KEY ".groups: "
						    "expected an array of "
						    "strings");
				goto out;
			}
		} else if (!strcmp(k, "tensors")) {
			if ((rc = parse_tensors(&s, cur, c, nu)))
				goto out;
			rc = -EINVAL;
		} else {
			rc = tc_meta_refuse(TC_META_KEY ": unknown key \"%s\" "
					    "(created, last_access, pinned, "
					    "attrs, parent, groups, tensors)", k);
			goto out;
		}
	}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

/* Does @v (a user's value) declare a tensor, TensorDict's way: an
 * object with a "dtype" we know and a "shape" of at most TC_MAX_DIMS
 * integers, and no "type" (that is a sub-TensorDict)?  Into *@set. */
static int declares(const cJSON *v, struct tc_meta_set *set)
{
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(v, "dtype");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(v, "shape");
	int ndim = 0;

	if (!cJSON_IsObject(v) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) ||
	    cJSON_GetObjectItemCaseSensitive(v, "type"))
		return 0;
	memset(set, 0, sizeof(*set));
	if ((set->dtype = tc_dtype_from_name(dt->valuestring)) < 0)
		return 0;
	for (const cJSON *e = sh->child; e; e = e->next) {
		double x = e->valuedouble;
		if (!cJSON_IsNumber(e) || ndim == TC_MAX_DIMS || x < 0 ||
		    x > 9007199254740992.0 || x != (double)(uint64_t)x)
			return 0;
		set->shape[ndim++] = (uint64_t)x;
	}
	set->ndim = ndim;
	return 1;
}

/* Key @key + TC_META_DECLARED_SUFFIX into @name (TC_NAME_MAX + 1 bytes);
 * 0 when too long. */
static int declared_name(const char *key, char *name)
{
	size_t k = strlen(key), s = sizeof(TC_META_DECLARED_SUFFIX) - 1;
	if (k == 0 || k + s > TC_NAME_MAX)
		return 0;
	memcpy(name, key, k);
	memcpy(name + k, TC_META_DECLARED_SUFFIX, s + 1);
	return 1;
}

/* The tensors the user's keys of @root declare, into u->set after the
 * ones ours set (which win; of two keys declaring one tensor, the last
 * wins, as a JSON reader keeps it). */
static int parse_declared(const struct tc_meta_dir *cur, const cJSON *root,
			  struct tc_meta_update *u)
{
	const struct tc_meta_tensor **byname = NULL, *const *hit;
	struct tc_meta_set *ns;
	size_t n = 0, nours = u->nset;
	char name[TC_NAME_MAX + 1];

	for (const cJSON *c = root->child; c; c = c->next)
		n++;
	if (!cur->ntensors || !n)
		return 0;
	if (!(ns = realloc(u->set, (u->nset + n) * sizeof(*ns))))
		return -ENOMEM;
	u->set = ns;
	if (!(byname = malloc(cur->ntensors * sizeof(*byname))))
		return -ENOMEM;
	for (size_t i = 0; i < cur->ntensors; i++)
		byname[i] = &cur->tensors[i];
	qsort(byname, cur->ntensors, sizeof(*byname), cmp_tensor);
	for (const cJSON *c = root->child; c; c = c->next) {
		struct tc_meta_set set;
		struct tc_meta_tensor key = { .name = name };
		const struct tc_meta_tensor *kp = &key;
		size_t j;
		if (!strcmp(c->string, TC_META_KEY) || !declared_name(c->string, name) ||
		    !declares(c, &set))
			continue;
		hit = bsearch(&kp, byname, cur->ntensors, sizeof(*byname), cmp_tensor);
		if (!hit)
			continue;
		set.index = (size_t)(*hit - cur->tensors);
		for (j = 0; j < u->nset && u->set[j].index != set.index; j++)
			;
		if (j < nours)
			continue;
		u->set[j] = set;
		if (j == u->nset)
			u->nset++;
	}
	free(byname);
	return 0;
}

int tc_meta_parse(const struct tc_meta_dir *cur, const char *buf, size_t len,
		  struct tc_meta_update *u)
{
	struct tc_meta_update nu = { 0 };
	struct tc_doc_member *m = NULL, *rm = NULL;
	size_t nm = 0, nrm = 0, rawlen, o = 0, i = 0;
	const char *end = NULL;
	cJSON *root = NULL;
	int rc, ours = 0;
	char *raw;

	why[0] = 0;
	const char *nul = len ? memchr(buf, 0, len) : NULL;
	if (nul) /* JSON has no NUL; the kept keys are C strings */
		return tc_meta_refuse("not JSON: a NUL byte at byte %zu",
				      (size_t)(nul - buf));
	if (!(raw = unescape_bytes(buf, len, &rawlen)))
		return -ENOMEM;
	rc = -EINVAL;
	/* NULL: malformed, or out of memory (cJSON cannot tell us which) */
	root = cJSON_ParseWithLengthOpts(raw, rawlen, &end, 0);
	if (!root || !cJSON_IsObject(root)) {
		size_t at;
		const char *wanted;
		if (tc_json_object_prefix(buf, len, &at, &wanted))
			rc = tc_meta_refuse("not JSON at byte %zu: expected %s",
					    at, wanted);
		else if (!root)
			rc = tc_meta_refuse("not JSON: it ends at byte %zu, "
					    "inside the object", len);
		goto out;
	}
	for (; end < raw + rawlen; end++)
		if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
			rc = tc_meta_refuse("not JSON: more after the object "
					    "(byte %zu)", (size_t)(end - raw));
			goto out;
		}
	/* the members as written (kept), and unescaped (ours is parsed) */
	if ((rc = tc_doc_members(buf, len, &m, &nm)) ||
	    (rc = tc_doc_members(raw, rawlen, &rm, &nrm)))
		goto out;
	rc = -ENOMEM;
	if (!(nu.doc = malloc(len + 2)))
		goto out;
	rc = -EINVAL;
	nu.doc[o++] = '{';
	for (const cJSON *c = root->child; c; c = c->next, i++) {
		if (i >= nm || nm != nrm)
			goto out; /* the scan and the parser disagree */
		if (!strcmp(c->string, TC_META_KEY)) {
			if (ours++) {
				rc = tc_meta_refuse("the key \"%s\" twice",
						    TC_META_KEY);
				goto out;
			}
			if ((rc = parse_ours(cur, rm[i].val, rm[i].val_len, &nu)))
				goto out;
			rc = -EINVAL;
			continue;
		}
		if (o > 1)
			nu.doc[o++] = ',';
		o += tc_json_minify(m[i].key, m[i].key_len, nu.doc + o);
		nu.doc[o++] = ':';
		o += tc_json_minify(m[i].val, m[i].val_len, nu.doc + o);
	}
	if (i != nm)
		goto out;
	if (o == 1) {
		free(nu.doc);
		nu.doc = NULL;
	} else {
		nu.doc[o++] = '}';
		nu.doc[o] = 0;
	}
	if ((rc = parse_declared(cur, root, &nu)))
		goto out;
	*u = nu;
	memset(&nu, 0, sizeof nu);
out:
	tc_meta_update_free(&nu);
	free(m);
	free(rm);
	cJSON_Delete(root);
	free(raw);
	return rc;
}

int tc_meta_declared(const char *doc, const char *name, struct tc_meta_set *set)
{
	size_t len, k = strlen(name), s = sizeof(TC_META_DECLARED_SUFFIX) - 1;
	char *raw;
	cJSON *root;
	int found = 0;

	if (!doc || k <= s || strcmp(name + k - s, TC_META_DECLARED_SUFFIX))
		return 0;
	if (!(raw = unescape_bytes(doc, strlen(doc), &len)))
		return 0;
	root = cJSON_ParseWithLength(raw, len);
	for (const cJSON *c = root ? root->child : NULL; c; c = c->next) {
		struct tc_meta_set one;
		if (strlen(c->string) == k - s && !memcmp(c->string, name, k - s) &&
		    declares(c, &one)) {
			*set = one;
			found = 1;
		}
	}
	cJSON_Delete(root);
	free(raw);
	return found;
}

void tc_meta_update_free(struct tc_meta_update *u)
{
	if (!u)
		return;
	free(u->attrs_json);
	free(u->link);
	free(u->set);
	free(u->doc);
	memset(u, 0, sizeof *u);
}

/* ---- store statistics ---------------------------------------------------- */

int tc_stats_json(const struct tc_stats *st, char **out, size_t *len)
{
	cJSON *o = cJSON_CreateObject();
	char *txt = NULL;
	int r = o ? 0 : -ENOMEM;
	const struct {
		const char *key;
		uint64_t v;
	} nums[] = {
		{ "capacity", st->capacity },
		{ "used", st->used },
		{ "free", st->capacity - st->used },
		{ "live_bytes", st->live_bytes },
		{ "entries", st->entries },
		{ "tensors", st->tensors },
		{ "groups", st->groups },
		{ "pinned", st->pinned },
		{ "probes", st->probes },
		{ "hits", st->hits },
		{ "misses", st->misses },
		{ "evictions", st->evictions },
		{ "evicted_bytes", st->evicted_bytes },
		{ "journal_bytes", st->journal_bytes },
		{ "checkpoints", st->checkpoints },
		{ "journal_dropped", st->journal_dropped },
		{ "nodes_dropped", st->nodes_dropped },
		{ "journal_torn", st->journal_torn },
		{ "unsynced_dropped", st->unsynced_dropped },
		{ "fallbacks", st->fallbacks },
		{ "verified_ahead", st->verified_ahead },
		{ "damaged", st->damaged },
	};
	for (size_t i = 0; !r && i < sizeof(nums) / sizeof(nums[0]); i++)
		r = put(o, nums[i].key, json_u64(nums[i].v));
	if (!r) {
		uint64_t looks = st->hits + st->misses;
		r = put(o, "hit_rate", looks ? cJSON_CreateNumber((double)st->hits / (double)looks)
					     : cJSON_CreateNull());
	}
	if (!r)
		r = put(o, "oldest_access", st->oldest_access_ns
				? json_time(st->oldest_access_ns) : cJSON_CreateNull());
	if (!r)
		r = put(o, "newest_access", st->newest_access_ns
				? json_time(st->newest_access_ns) : cJSON_CreateNull());
	if (!r && !(txt = cJSON_Print(o)))
		r = -ENOMEM;
	cJSON_Delete(o);
	if (r)
		return r;
	size_t n = strlen(txt);
	char *buf = malloc(n + 2);
	if (!buf) {
		free(txt);
		return -ENOMEM;
	}
	memcpy(buf, txt, n);
	buf[n] = '\n';
	buf[n + 1] = 0;
	free(txt);
	*out = buf;
	*len = n + 1;
	return 0;
}
