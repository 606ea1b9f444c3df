/*
 * stview.c - safetensors in the store: the .safetensors files an entry
 * holds, listed in meta.json, and the entry's .safetensors view.
 *
 * A tensor named *.safetensors is stored as any file is (raw bytes, uint8
 * unless told otherwise); when its header passes tc_st_parse() its
 * tensors are what meta.json lists for it (st_meta_json) and what the
 * view serves of it.  Nothing is kept: the header is read from the pool
 * each time (a committed version's bytes never change).
 *
 * The view of an entry is one safetensors file (tcache.h, tc_view_open):
 *
 *   0         N, u64 LE               \  head: built at open,
 *   8         JSON, spaces to 8 | N   /  in memory
 *   8+N       part 0 | part 1 | ...   each part: bytes [from, from + len)
 *                                     of a held version, in the pool
 *
 * Parts are in the header's order: by the format's dtype, widest first
 * (as its reference writer does, so that every tensor starts aligned to
 * its item size), then by name.  A part is a typed tensor's data
 * (numel x itemsize bytes from its data_offset), or one tensor of a
 * *.safetensors file whose header passes (named "FILE/NAME"); such a
 * file whose header does not pass is one part like any other tensor.
 *
 * Invariants:
 *   - A view holds each tensor it serves as a read-only tc_file does: a
 *     reference on the version (its bytes neither change nor go), one on
 *     the node (n->refs) and an open on each directory above it (so the
 *     entry is not evicted); tc_view_close gives them back.
 *   - An open view never changes: head, parts and size are fixed at open,
 *     and tc_view_map() reads them, and the held versions' extents,
 *     without the lock.
 * Locking: the lock is held while holds are taken (with a copy of what
 * the build needs of each node: path, dtype, shape) and given back, and
 * while verification results are recorded; reading headers from the
 * pool, hashing and building the head run unlocked on the held versions.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cjson/cJSON.h>
#include <xxhash.h>

#include "dtype.h"
#include "safetensors.h"
#include "store.h"

#define ST_SUFFIX ".safetensors"
/* meta.json lists the tensors of a header up to this size: it is read at
 * every render of meta.json, under the lock (O(N)). */
#define ST_LIST_MAX (16u << 20)

/* A tensor the view holds, and what the build needs of it. */
struct hold {
	struct tc_node *node;
	struct tc_ver *ver;
	char *path;               /* "group/name" under the entry */
	size_t path_len;
	uint64_t *shape;          /* ndim values (NULL for 0) */
	int dtype, ndim;          /* enum tc_dtype, as at open */
	uint64_t data_offset;
	int verify;               /* its xxh3 is to be checked */
	int bad;                  /* its bytes are damaged (known at open, or
	                             found by the check) */
};

struct part {
	const struct tc_ver *ver; /* its hold's */
	uint64_t from, len;       /* bytes of ver */
	uint64_t at;              /* where they are in the view */
};

struct tc_view {
	uint64_t size;            /* head_len + the parts' bytes */
	uint64_t content;         /* see tc_view_content */
	char *head;
	size_t head_len;
	struct hold *holds;
	size_t nholds;
	struct part *parts;
	size_t nparts;
};

static int st_named(const char *name)
{
	size_t n = strlen(name), k = sizeof(ST_SUFFIX) - 1;
	return n > k && !strcasecmp(name + n - k, ST_SUFFIX);
}

/* Copy bytes [off, off + len) of @v (inside its size) to @buf from the
 * pool mmap.  -ENOMEM.  O(extents + len). */
static int ver_copy(const struct tc_store *s, const struct tc_ver *v,
		    uint64_t off, uint64_t len, void *buf)
{
	struct tc_span stack[8], *sp = stack;
	int n, max = v->nextents < 8 ? 8 : (int)v->nextents + 1;

	if (max > 8 && !(sp = malloc(sizeof(*sp) * (size_t)max)))
		return -ENOMEM;
	n = ver_spans(s, v, off, len, sp, max);
	for (int i = 0; i < n; i++) {
		memcpy(buf, sp[i].ptr, sp[i].len);
		buf = (char *)buf + sp[i].len;
	}
	if (sp != stack)
		free(sp);
	return n < 0 ? n : 0;
}

/* The safetensors header of committed version @v (held, or lock held),
 * if it passes and N <= @max.  -EINVAL when not, -ENOMEM. */
static int st_read(const struct tc_store *s, const struct tc_ver *v,
		   uint64_t max, struct tc_st_header *h)
{
	uint8_t first[TC_ST_PREFIX];
	struct tc_span sp;
	uint64_t n;
	char *buf = NULL;
	int r;

	if (v->size < TC_ST_PREFIX)
		return -EINVAL;
	if ((r = ver_copy(s, v, 0, TC_ST_PREFIX, first)))
		return r;
	if (tc_st_header_len(first, v->size, &n) || n > max)
		return -EINVAL;
	if (ver_spans(s, v, 0, TC_ST_PREFIX + n, &sp, 1) == 1)
		return tc_st_parse(sp.ptr, sp.len, v->size, h);
	if (!(buf = malloc(TC_ST_PREFIX + n)))
		return -ENOMEM;
	r = ver_copy(s, v, 0, TC_ST_PREFIX + n, buf);
	if (!r)
		r = tc_st_parse(buf, TC_ST_PREFIX + n, v->size, h);
	free(buf);
	return r;
}

int st_meta_json(struct tc_store *s, const struct tc_node *n, char **json)
{
	struct tc_st_header h;
	size_t len;
	int r;

	assert_locked(s);
	*json = NULL;
	if (n->kind != TC_KIND_TENSOR || !tc_nver(n) || !st_named(tc_node_name(n)))
		return 0;
	r = st_read(s, tc_nver(n), ST_LIST_MAX, &h);
	if (r)
		return r == -ENOMEM ? r : 0;
	r = tc_st_list_json(&h, json, &len);
	tc_st_header_free(&h);
	return r;
}

/* ---- holds ---------------------------------------------------------------- */

/* Give back what hold_take took.  Lock held. */
static void hold_put(struct tc_store *s, struct hold *h)
{
	struct tc_node *n = h->node;

	assert_locked(s);
	ver_put(s, h->ver);
	assert(n->refs > 0);
	n->refs--;
	if (!n->dead) {
		opens_add(tc_parent(n), -1);
		if (!tc_nver(n) && !pending_of(n) && !writers_of(n) && !n->refs)
			remove_subtree(s, n); /* as tc_file_close */
	} else if (!n->refs) {
		node_drop(s, n);
	}
	free(h->path);
	free(h->shape);
}

/* "a/b/name": @n's path below entry @e. */
static char *path_of(const struct tc_node *n, const struct tc_node *e,
		     size_t *len)
{
	size_t k = 0;
	char *p;

	for (const struct tc_node *c = n; c != e; c = tc_parent(c))
		k += strlen(tc_node_name(c)) + 1;
	if (!k || !(p = malloc(k))) /* k: @n is not @e */
		return NULL;
	*len = --k;
	p[k] = '\0';
	for (const struct tc_node *c = n; c != e; c = tc_parent(c)) {
		size_t m = strlen(tc_node_name(c));
		k -= m;
		memcpy(p + k, tc_node_name(c), m);
		if (k)
			p[--k] = '/';
	}
	return p;
}

/* Hold tensor @n (committed) of entry @e in *@h.  Lock held. */
static int hold_take(struct tc_store *s, struct tc_node *n,
		     const struct tc_node *e, struct hold *h)
{
	const struct tc_ver *v = tc_nver(n);

	memset(h, 0, sizeof(*h));
	if (!(h->path = path_of(n, e, &h->path_len)))
		return -ENOMEM;
	if (v->ndim && !(h->shape = malloc(sizeof(uint64_t) * v->ndim))) {
		free(h->path);
		return -ENOMEM;
	}
	if (v->ndim)
		memcpy(h->shape, tc_ver_shape(v), sizeof(uint64_t) * v->ndim);
	h->dtype = v->dtype;
	h->ndim = v->ndim;
	h->data_offset = v->data_offset;
	h->verify = s->verify == TC_VERIFY_ON && v->verified == TC_UNVERIFIED;
	h->bad = v->verified == TC_VERIFIED_DAMAGED;
	h->node = n;
	h->ver = tc_nver(n);
	h->ver->refs++;
	n->refs++;
	opens_add(tc_parent(n), 1);
	return 0;
}

/* Give back every hold of @v.  Lock held. */
static void holds_put(struct tc_store *s, struct tc_view *v)
{
	for (size_t i = 0; i < v->nholds; i++)
		hold_put(s, &v->holds[i]);
	v->nholds = 0;
}

/* Hold every committed tensor of entry @id, and copy its attrs to
 * *@attrs.  Lock held. */
static int holds_take(struct tc_store *s, uint64_t id, struct tc_view *v,
		      char **attrs)
{
	struct tc_node *e, *n;
	size_t k = 0;
	int r = get_dir(s, id, &e);

	assert_locked(s);
	if (r)
		return r;
	if (e->kind != TC_KIND_ENTRY)
		return -EINVAL;
	for (n = e; n; n = tc_node_next(n, e))
		k += n->kind == TC_KIND_TENSOR && tc_nver(n) && !n->dead;
	if (!(v->holds = calloc(k ? k : 1, sizeof(*v->holds))) ||
	    (tc_attrs(e) && !(*attrs = strdup(tc_attrs(e)))))
		return -ENOMEM;
	for (n = e; n; n = tc_node_next(n, e)) {
		if (n->kind != TC_KIND_TENSOR || !tc_nver(n) || n->dead)
			continue;
		if ((r = hold_take(s, n, e, &v->holds[v->nholds])))
			return r; /* the caller puts the holds taken */
		v->nholds++;
	}
	return 0;
}

/* ---- the head ------------------------------------------------------------- */

/* A tensor of the view while it is built. */
struct item {
	struct tc_st_item it;
	char *own;                /* it.name when malloc'd here */
	const struct tc_ver *ver;
	uint64_t from;
};

struct build {
	struct item *items;
	size_t n, cap;
	struct tc_st_header *files; /* headers of *.safetensors files */
	size_t nfiles;
	struct tc_st_kv *kv;       /* __metadata__ */
	size_t nkv;
	char **texts;              /* kv values made here (cJSON's malloc) */
	size_t ntexts;
	cJSON *attrs;
};

static void build_free(struct build *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->items[i].own);
	free(b->items);
	for (size_t i = 0; i < b->nfiles; i++)
		tc_st_header_free(&b->files[i]);
	free(b->files);
	for (size_t i = 0; i < b->ntexts; i++)
		cJSON_free(b->texts[i]);
	free(b->texts);
	free(b->kv);
	cJSON_Delete(b->attrs);
}

static struct item *item_new(struct build *b)
{
	if (b->n == b->cap) {
		struct item *p = grow_array(b->items, &b->cap, sizeof(*p), 16);
		if (!p)
			return NULL;
		b->items = p;
	}
	memset(&b->items[b->n], 0, sizeof(b->items[0]));
	return &b->items[b->n++];
}

/* @h's data as one tensor, if its dtype and shape fit its bytes and its
 * path can be a name in the header; else nothing. */
static int add_plain(struct build *b, const struct hold *h)
{
	int st = tc_st_dtype_of(h->dtype);
	uint64_t nbytes = tc_dtype_size(h->dtype);
	struct item *it;

	for (int i = 0; i < h->ndim; i++)
		if (__builtin_mul_overflow(nbytes, h->shape[i], &nbytes))
			return 0;
	if (st < 0 || h->data_offset > h->ver->size ||
	    nbytes > h->ver->size - h->data_offset ||
	    !tc_st_utf8(h->path, h->path_len) ||
	    !strcmp(h->path, "__metadata__"))
		return 0;
	if (!(it = item_new(b)))
		return -ENOMEM;
	it->it = (struct tc_st_item){ .name = h->path, .name_len = h->path_len,
				      .dtype = st, .ndim = (uint32_t)h->ndim,
				      .shape = h->shape, .nbytes = nbytes };
	it->ver = h->ver;
	it->from = h->data_offset;
	return 0;
}

/* The tensors of *.safetensors file @h whose header is @f, as
 * "PATH/NAME". */
static int add_inner(struct build *b, const struct hold *h,
		     const struct tc_st_header *f)
{
	for (size_t i = 0; i < f->ntensors; i++) {
		const struct tc_st_tensor *t = &f->tensors[i];
		size_t len = h->path_len + 1 + t->name_len;
		struct item *it = item_new(b);
		char *name = malloc(len + 1);
		if (!it || !name) {
			free(name);
			return -ENOMEM;
		}
		memcpy(name, h->path, h->path_len);
		name[h->path_len] = '/';
		memcpy(name + h->path_len + 1, t->name, t->name_len + 1);
		it->own = name;
		it->it = (struct tc_st_item){ .name = name, .name_len = len,
					      .dtype = t->dtype, .ndim = t->ndim,
					      .shape = t->shape,
					      .nbytes = t->end - t->begin };
		it->ver = h->ver;
		it->from = f->data_start + t->begin;
	}
	return 0;
}

/* Hold @h's tensors as items: a *.safetensors file's whose header
 * passes, else its own data. */
static int add_hold(const struct tc_store *s, struct build *b,
		    const struct hold *h)
{
	struct tc_st_header f, *p;
	int r;

	if (!st_named(h->path) || !tc_st_utf8(h->path, h->path_len))
		return add_plain(b, h);
	r = st_read(s, h->ver, TC_ST_MAX_HEADER, &f);
	if (r)
		return r == -EINVAL ? add_plain(b, h) : r;
	if (!(p = realloc(b->files, (b->nfiles + 1) * sizeof(*p)))) {
		tc_st_header_free(&f);
		return -ENOMEM;
	}
	b->files = p;
	b->files[b->nfiles] = f; /* its names and dims stay where they are */
	return add_inner(b, h, &b->files[b->nfiles++]);
}

/* The entry's attrs (compact JSON, or NULL) as __metadata__: strings as
 * they are, other values as their compact JSON; a member whose key or
 * value is not UTF-8 is left out (the header must be UTF-8). */
static int add_meta(struct build *b, const char *attrs)
{
	size_t n = 0;

	if (!attrs)
		return 0;
	if (!(b->attrs = cJSON_Parse(attrs))) /* they parsed when stored */
		return -ENOMEM;
	for (const cJSON *c = b->attrs->child; c; c = c->next)
		n++;
	if (!(b->kv = calloc(n + 1, sizeof(*b->kv))) ||
	    !(b->texts = calloc(n + 1, sizeof(*b->texts))))
		return -ENOMEM;
	for (const cJSON *c = b->attrs->child; c; c = c->next) {
		const char *val = c->valuestring;
		if (!cJSON_IsString(c)) {
			if (!(val = cJSON_PrintUnformatted(c)))
				return -ENOMEM;
			b->texts[b->ntexts++] = (char *)val;
		}
		if (tc_st_utf8(c->string, strlen(c->string)) &&
		    tc_st_utf8(val, strlen(val)))
			b->kv[b->nkv++] = (struct tc_st_kv){ c->string, val };
	}
	return 0;
}

/* The reference writer's order: widest dtype first, then by name. */
static int cmp_items(const void *a, const void *b)
{
	const struct tc_st_item *x = &((const struct item *)a)->it;
	const struct tc_st_item *y = &((const struct item *)b)->it;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c;

	if (x->dtype != y->dtype)
		return x->dtype > y->dtype ? -1 : 1;
	if ((c = memcmp(x->name, y->name, n)))
		return c;
	return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

/* Head, parts, size and content of @v from its holds and the entry's
 * @attrs.  Unlocked: reads only held versions.  O(tensors log tensors +
 * headers read). */
static int view_build(const struct tc_store *s, struct tc_view *v,
		      const char *attrs)
{
	struct build b = { 0 };
	struct tc_st_item *sti = NULL;
	uint64_t at;
	int r = 0;

	for (size_t i = 0; i < v->nholds && !r; i++)
		r = add_hold(s, &b, &v->holds[i]);
	if (!r)
		r = add_meta(&b, attrs);
	if (r)
		goto out;
	if (b.n)
		qsort(b.items, b.n, sizeof(*b.items), cmp_items);
	r = -ENOMEM;
	if (!(sti = malloc((b.n + 1) * sizeof(*sti))) ||
	    !(v->parts = malloc((b.n + 1) * sizeof(*v->parts))))
		goto out;
	for (size_t i = 0; i < b.n; i++)
		sti[i] = b.items[i].it;
	r = tc_st_build(sti, b.n, b.kv, b.nkv, &v->head, &v->head_len);
	if (r)
		goto out;
	at = v->head_len;
	v->content = XXH3_64bits(v->head, v->head_len);
	for (size_t i = 0; i < b.n; i++) {
		const struct item *it = &b.items[i];
		uint64_t key[3] = { it->ver->number, it->from, it->it.nbytes };
		v->parts[i] = (struct part){ .ver = it->ver, .from = it->from,
					     .len = it->it.nbytes, .at = at };
		at += it->it.nbytes;
		v->content = XXH3_64bits_withSeed(key, sizeof(key), v->content);
	}
	v->nparts = b.n;
	v->size = at;
out:
	free(sti);
	build_free(&b);
	return r;
}

/* ---- the calls ------------------------------------------------------------ */

/* Hash the held versions still to verify (unlocked: committed bytes are
 * immutable), then record what was found under the lock.  -EIO if any is
 * damaged, found now or before.  O(their bytes). */
static int view_verify(struct tc_store *s, struct tc_view *v)
{
	int r = 0;

	for (size_t i = 0; i < v->nholds; i++)
		if (v->holds[i].bad)
			return -EIO;
	for (size_t i = 0; i < v->nholds && !r; i++) {
		struct hold *h = &v->holds[i];
		uint64_t x;
		if (h->verify && !(r = ver_hash(s, h->ver, h->ver->size, &x)))
			h->bad = x != h->ver->xxh3;
	}
	if (r)
		return r;
	lock(s);
	for (size_t i = 0; i < v->nholds; i++) {
		struct hold *h = &v->holds[i];
		if (h->verify)
			ver_checked(s, h->ver, !h->bad);
		if (h->ver->verified == TC_VERIFIED_DAMAGED)
			r = -EIO;
	}
	unlock(s);
	return r;
}

/* Build the view of entry @id in *@out: holds taken under the lock, the
 * rest unlocked; with @open, verified first and the entry touched. */
static int view_make(tc_store *s, uint64_t id, int open, tc_view **out)
{
	struct tc_view *v = calloc(1, sizeof(*v));
	char *attrs = NULL;
	int r;

	if (!v)
		return -ENOMEM;
	lock(s);
	r = holds_take(s, id, v, &attrs);
	unlock(s);
	if (!r && open)
		r = view_verify(s, v);
	if (!r)
		r = view_build(s, v, attrs);
	lock(s);
	if (!r && open) {
		struct tc_node *e = tc_index_get(&s->idx, id);
		if (e && e->kind == TC_KIND_ENTRY)
			store_touch(s, e); /* recency: as an open of its tensors */
	}
	op_done(s);
	free(attrs);
	if (r)
		tc_view_close(s, v);
	else
		*out = v;
	return r;
}

int tc_view_open(tc_store *s, uint64_t entry, tc_view **out)
{
	return view_make(s, entry, 1, out);
}

int tc_view_stat(tc_store *s, uint64_t entry, uint64_t *size)
{
	tc_view *v;
	int r = view_make(s, entry, 0, &v);

	if (!r) {
		*size = v->size;
		tc_view_close(s, v);
	}
	return r;
}

uint64_t tc_view_size(const tc_view *v)
{
	return v->size;
}

uint64_t tc_view_content(const tc_view *v)
{
	return v->content;
}

/* The first part that ends past @off (parts tile [head_len, size), so it
 * holds @off unless @off is past the last).  O(log parts). */
static size_t part_at(const tc_view *v, uint64_t off)
{
	size_t lo = 0, hi = v->nparts;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->parts[mid].at + v->parts[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int tc_view_map(tc_store *s, tc_view *v, uint64_t off, size_t size,
		struct tc_span *sp, int max, int *n, size_t *total)
{
	uint64_t at = off, end;
	int k = 0, r;

	if (off >= v->size)
		size = 0;
	else if (size > v->size - off)
		size = (size_t)(v->size - off);
	end = off + size;
	if (at < end && at < v->head_len) {
		size_t len = (end < v->head_len ? (size_t)end : v->head_len) -
			     (size_t)at;
		if (max < 1)
			return -ENOBUFS;
		sp[k++] = (struct tc_span){ .fd = -1, .ptr = v->head + at,
					    .len = len };
		at += len;
	}
	for (size_t i = part_at(v, at); at < end && i < v->nparts; i++) {
		const struct part *p = &v->parts[i];
		uint64_t in = at - p->at;
		uint64_t take = p->len - in < end - at ? p->len - in : end - at;
		if (!take)
			continue;
		r = ver_spans(s, p->ver, p->from + in, take, sp + k, max - k);
		if (r < 0)
			return r;
		k += r;
		at += take;
	}
	*n = k;
	*total = size;
	return 0;
}

ssize_t tc_view_pread(tc_store *s, tc_view *v, void *buf, size_t size,
		      uint64_t off)
{
	uint64_t at = off, end;
	int r;

	if (off >= v->size)
		return 0;
	if (size > v->size - off)
		size = (size_t)(v->size - off);
	end = off + size;
	if (at < v->head_len) {
		size_t len = (end < v->head_len ? (size_t)end : v->head_len) -
			     (size_t)at;
		memcpy(buf, v->head + at, len);
		at += len;
	}
	for (size_t i = part_at(v, at); at < end && i < v->nparts; i++) {
		const struct part *p = &v->parts[i];
		uint64_t in = at - p->at;
		uint64_t take = p->len - in < end - at ? p->len - in : end - at;
		if (take && (r = ver_copy(s, p->ver, p->from + in, take,
					  (char *)buf + (at - off))))
			return r;
		at += take;
	}
	return (ssize_t)size;
}

void tc_view_close(tc_store *s, tc_view *v)
{
	if (!v)
		return;
	if (v->nholds) {
		lock(s);
		holds_put(s, v);
		op_done(s);
	}
	free(v->holds);
	free(v->parts);
	free(v->head);
	free(v);
}
