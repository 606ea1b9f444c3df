/*
 * version.c - tensor versions: the pool extents that hold one version of
 * a tensor's bytes, walked, grown, trimmed, copied and checksummed.
 *
 * Invariants of a struct tc_ver (index.h):
 *   - tc_ver_ext(v)[0 .. nextents) are the version's pool extents in file
 *     order (inside the version while there is one, else in a malloc'd
 *     struct tc_vext): byte i of the tensor is at pool offset
 *     ext[k].off + (i - sum of the lengths before k).
 *     tc_ver_alloc(v) is the sum of their lengths, a multiple
 *     of TC_BLOCK, and alloc >= size; a committed version holds exactly
 *     round_block(size), or, when packed (1 .. TC_PACK_MAX bytes), one
 *     extent of round_slot(size) bytes in a shared block (ver_pack).  A
 *     pending version is never packed.
 *   - A committed version is immutable (bytes, extents, xxh3); only its
 *     dtype and shape may be changed, by a record (apply.c).
 *   - Its extents belong to it alone until its last reference goes
 *     (ver_put); then a committed version's wait in the pool's
 *     quarantine for a sync (journal.c, step 3), a pending one's are
 *     free at once.
 * Every pass over a version's bytes goes through ver_walk(), the one
 * extent walk.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "dtype.h"
#include "hash.h"
#include "meta.h"
#include "store.h"

#define GROW_MIN (64u << 10)          /* files past this grow geometrically */
#define GROW_MAX (64u << 20)
#define NPY_PEEK (1u << 20)           /* header bytes read from a .npy */

struct tc_ver *ver_new(struct tc_store *s)
{
	struct tc_ver *v = tc_arena_alloc(s->idx.arena, sizeof(*v));
	if (v) {
		v->refs = 1;
	}
	return v;
}

/* Give @v a copy of @shape (which may be @v's own).  -ENOMEM: unchanged. */
int ver_set_shape(struct tc_ver *v, int ndim, const uint64_t *shape)
{
	uint64_t *many = NULL;
	if (ndim > 1) {
		many = malloc(sizeof(uint64_t) * (size_t)ndim);
		if (!many)
			return -ENOMEM;
		memcpy(many, shape, sizeof(uint64_t) * (size_t)ndim);
	}
	uint64_t one = ndim == 1 ? shape[0] : 0;
	if (v->ndim > 1)
		free(v->shp.many);
	if (ndim > 1)
		v->shp.many = many;
	else
		v->shp.one = one;
	v->ndim = (uint8_t)ndim;
	return 0;
}

/* Drop a reference; the last one frees @v and hands its extents back. */
void ver_put(struct tc_store *s, struct tc_ver *v)
{
	if (!v)
		return;
	assert(v->refs > 0);
	if (--v->refs)
		return;
	assert(v->inflight == 0);
	/* A committed version is named by a journal record: its extents
	 * wait in quarantine until a sync makes the freeing record durable
	 * (journal.c, step 3), and for a replaced or removed tensor the
	 * bytes of what replaced it too (replay may fall back to these).  A
	 * pending one was never named. */
	if (s->pool_ready)
		for (uint32_t i = 0; i < v->nextents; i++) {
			if (tc_ver_committed(v))
				tc_pool_hold(&s->pool, tc_ver_ext(v)[i].off,
					     tc_ver_ext(v)[i].len, s->sync_gen,
					     s->evicting ? TC_HOLD_RECORD
							 : TC_HOLD_DATA);
			else
				tc_pool_free(&s->pool, tc_ver_ext(v)[i].off,
					     tc_ver_ext(v)[i].len);
		}
	if (v->ndim > 1)
		free(v->shp.many);
	if (v->nextents > 1)
		free(tc_vext_of(v));
	tc_arena_free(v, sizeof(*v));
}

void ver_put_cb(void *arg, struct tc_ver *v)
{
	ver_put(arg, v);
}

/* Count @d more bytes in @v's alloc (its last extent grew by them). */
static void alloc_add(struct tc_ver *v, uint64_t d)
{
	if (v->nextents > 1)
		tc_vext_of(v)->alloc += d;
}

/* Keep only the first @n of @v's extents (their lengths may have
 * shrunk): alloc counted again, a single one kept inside.  O(n). */
static void ext_settle(struct tc_ver *v, uint32_t n)
{
	if (v->nextents > 1) {
		struct tc_vext *h = tc_vext_of(v);
		if (n <= 1) {
			struct tc_extent one = n ? h->e[0]
						 : (struct tc_extent){ 0, 0 };
			free(h);
			v->ex.one = one;
		} else {
			h->alloc = 0;
			for (uint32_t i = 0; i < n; i++)
				h->alloc += h->e[i].len;
		}
	} else if (!n) {
		v->ex.one = (struct tc_extent){ 0, 0 };
	}
	v->nextents = n;
}

int ver_push(struct tc_ver *v, struct tc_extent e)
{
	struct tc_extent *x = tc_ver_ext(v);
	struct tc_extent *last = v->nextents ? &x[v->nextents - 1] : NULL;
	if (last && last->off + last->len == e.off) {
		last->len += e.len;
		alloc_add(v, e.len);
		return 0;
	}
	if (!v->nextents) {
		v->ex.one = e;
		v->nextents = 1;
		return 0;
	}
	struct tc_vext *h = v->nextents > 1 ? tc_vext_of(v) : NULL;
	uint32_t cap = h ? h->cap : 1;
	if (v->nextents == cap) {
		uint32_t ncap = cap < 4 ? 4 : cap * 2;
		struct tc_vext *nh = realloc(h, sizeof(*nh) +
						   ncap * sizeof(nh->e[0]));
		if (!nh)
			return -ENOMEM;
		if (!h) {
			nh->e[0] = v->ex.one;
			nh->alloc = v->ex.one.len;
		}
		nh->cap = ncap;
		h = nh;
		v->ex.many = nh->e;
	}
	h->e[v->nextents++] = e;
	h->alloc += e.len;
	return 0;
}

/*
 * The one extent walk: call @fn(arg, pool offset, length) on each piece
 * of bytes [off, off + len) of @v, in order, as far as its extents go.  A
 * non-zero return of @fn stops the walk and is returned.  O(extents).
 */
static int ver_walk(const struct tc_ver *v, uint64_t off, uint64_t len,
		    int (*fn)(void *arg, uint64_t pool_off, size_t n),
		    void *arg)
{
	uint64_t at = 0;
	for (uint32_t i = 0; i < v->nextents && len; i++) {
		const struct tc_extent *e = &tc_ver_ext(v)[i];
		if (off >= at + e->len) {
			at += e->len;
			continue;
		}
		uint64_t in = off - at;
		uint64_t take = e->len - in < len ? e->len - in : len;
		int r = fn(arg, e->off + in, (size_t)take);
		if (r)
			return r;
		off += take;
		len -= take;
		at += e->len;
	}
	return 0;
}

struct spans_ctx {
	const struct tc_store *s;
	struct tc_span *sp;
	int n, max;
};

static int span_fn(void *arg, uint64_t pool_off, size_t n)
{
	struct spans_ctx *c = arg;
	if (c->n == c->max)
		return -ENOBUFS;
	c->sp[c->n++] = (struct tc_span){ .fd = c->s->pool.fd,
					  .fd_off = pool_off,
					  .ptr = c->s->pool.map + pool_off,
					  .len = n };
	return 0;
}

/* Spans of [off, off + len) of @v (within tc_ver_alloc(v)); returns the count or
 * -ENOBUFS when more than @max are needed.  O(extents). */
int ver_spans(const struct tc_store *s, const struct tc_ver *v, uint64_t off,
	      uint64_t len, struct tc_span *sp, int max)
{
	struct spans_ctx c = { s, sp, 0, max };
	int r = ver_walk(v, off, len, span_fn, &c);
	return r ? r : c.n;
}

struct map_ctx {
	uint8_t *map;           /* the pool mmap */
	void (*fn)(void *arg, uint8_t *p, size_t n);
	void *arg;
};

static int map_fn(void *arg, uint64_t pool_off, size_t n)
{
	struct map_ctx *c = arg;
	c->fn(c->arg, c->map + pool_off, n);
	return 0;
}

/* @fn on each piece of [off, off + len) of @v in the pool mmap. */
static void ver_each(const struct tc_store *s, const struct tc_ver *v,
		     uint64_t off, uint64_t len,
		     void (*fn)(void *arg, uint8_t *p, size_t n), void *arg)
{
	struct map_ctx c = { s->pool.map, fn, arg };
	ver_walk(v, off, len, map_fn, &c);
}

static void hash_fn(void *arg, uint8_t *p, size_t n)
{
	tc_hash_update(arg, p, n);
}

/* xxh3 of the first @size bytes of @v, in one pass, or (@stop) in pieces
 * of 1 MiB with -EINTR once *@stop is set.  Reads the pool: O(size). */
static int hash_upto(const struct tc_store *s, const struct tc_ver *v,
		     uint64_t size, const atomic_int *stop, uint64_t *out)
{
	const uint64_t piece = stop ? 1u << 20 : size;
	XXH3_state_t *st = XXH3_createState();
	int r = 0;

	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	for (uint64_t off = 0; off < size && !r; off += piece) {
		if (stop && atomic_load_explicit(stop, memory_order_relaxed))
			r = -EINTR;
		else
			ver_each(s, v, off, size - off < piece ? size - off : piece,
				 hash_fn, st);
	}
	if (!r)
		*out = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return r;
}

/* xxh3 of the first @size bytes of @v.  Reads the pool: O(size). */
int ver_hash(const struct tc_store *s, const struct tc_ver *v, uint64_t size,
	     uint64_t *out)
{
	return hash_upto(s, v, size, NULL, out);
}

/* Like ver_hash, of all of @v, but giving up with -EINTR between pieces of
 * 1 MiB once *@stop is set.  O(size). */
int ver_hash_unless(const struct tc_store *s, const struct tc_ver *v,
		    const atomic_int *stop, uint64_t *out)
{
	return hash_upto(s, v, v->size, stop, out);
}

struct resident_ctx {
	const uint8_t *map;
	unsigned char vec[4096];  /* one byte a page: 16 MiB a call */
};

static int resident_fn(void *arg, uint64_t pool_off, size_t n)
{
	struct resident_ctx *c = arg;
	const uint64_t page = TC_BLOCK, chunk = page * sizeof(c->vec);
	uint64_t at = pool_off & ~(page - 1), end = pool_off + n;

	while (at < end) {
		uint64_t len = end - at < chunk ? end - at : chunk;
		size_t pages = (size_t)((len + page - 1) / page);
		if (mincore((void *)(c->map + at), len, c->vec))
			return -errno;
		for (size_t i = 0; i < pages; i++)
			if (!(c->vec[i] & 1))
				return 1;
		at += len;
	}
	return 0;
}

/* Are all of @v's bytes in the page cache now (a read of them would not
 * wait for the disk)?  1 yes, 0 no, -errno.  One mincore() a 16 MiB of
 * pool: O(size / 4 KiB) bytes looked at, nothing read. */
int ver_resident(const struct tc_store *s, const struct tc_ver *v)
{
	struct resident_ctx c;
	int r;

	c.map = s->pool.map;
	r = v->size ? ver_walk(v, 0, v->size, resident_fn, &c) : 0;
	return r < 0 ? r : !r;
}

/* Record what hashing @v's bytes found (@good: they match its xxh3), unless
 * another check recorded it first; a damaged one is counted once.  Lock
 * held. */
void ver_checked(struct tc_store *s, struct tc_ver *v, int good)
{
	assert_locked(s);
	if (v->verified != TC_UNVERIFIED)
		return;
	v->verified = good ? TC_VERIFIED_GOOD : TC_VERIFIED_DAMAGED;
	s->damaged += !good;
}

struct intact_ctx {
	int fd;
	uint8_t *buf;
	size_t bufsize;
	XXH3_state_t *st;
};

static int intact_fn(void *arg, uint64_t pool_off, size_t len)
{
	struct intact_ctx *c = arg;
	while (len) {
		size_t n = len < c->bufsize ? len : c->bufsize;
		ssize_t got = c->fd >= 0 ? pread(c->fd, c->buf, n, (off_t)pool_off)
					 : -1;
		if (got < 0 && errno == EINTR)
			continue;
		if (got != (ssize_t)n)
			return 1; /* short or unreadable: not intact */
		tc_hash_update(c->st, c->buf, n);
		pool_off += n;
		len -= n;
	}
	return 0;
}

/* Are the first v->size bytes of @v in the pool file @fd the ones its
 * xxh3 names?  1 yes, 0 no (or unreadable), -ENOMEM.  Reads with pread
 * into @buf: the pool is not mapped yet at open.  O(size). */
int ver_intact(int fd, const struct tc_ver *v, uint8_t *buf, size_t bufsize)
{
	struct intact_ctx c = { fd, buf, bufsize, XXH3_createState() };
	int ok;

	if (!c.st)
		return -ENOMEM;
	XXH3_64bits_reset(c.st);
	ok = tc_ver_alloc(v) >= v->size && ver_walk(v, 0, v->size, intact_fn, &c) == 0 &&
	     XXH3_64bits_digest(c.st) == v->xxh3;
	XXH3_freeState(c.st);
	return ok;
}

/* Grow @v's extents to hold @end bytes (evicting to make room), more
 * than asked for a file past GROW_MIN so that appends allocate rarely.
 * Lock held. */
int ver_grow(struct tc_store *s, struct tc_ver *v, uint64_t end)
{
	uint64_t need, target;
	int r;

	assert_locked(s);
	if (end > s->pool.size)
		return -EFBIG;
	assert(!v->nextents || !tc_extent_packed(tc_ver_ext(v)[0]));
	need = tc_round_block(end);
	if (need <= tc_ver_alloc(v))
		return 0;
	need -= tc_ver_alloc(v);
	r = make_room(s, need);
	if (r)
		return r;
	target = need;
	if (tc_ver_alloc(v) >= GROW_MIN) {
		uint64_t extra = tc_ver_alloc(v) < GROW_MAX ? tc_ver_alloc(v) : GROW_MAX;
		if (extra > target)
			target = extra;
		if (target > s->pool.free)
			target = s->pool.free & ~(uint64_t)(TC_BLOCK - 1);
		if (target < need)
			target = need;
	}
	if (v->nextents) {
		struct tc_extent *last = &tc_ver_ext(v)[v->nextents - 1];
		uint64_t got = tc_pool_extend(&s->pool, last->off + last->len,
					      target);
		last->len += got;
		alloc_add(v, got);
		target -= got < target ? got : target;
	}
	while (target) {
		struct tc_extent e;
		r = tc_pool_alloc(&s->pool, target, &e);
		if (r)
			return r; /* cannot happen: free >= need checked */
		r = ver_push(v, e);
		if (r) {
			tc_pool_free(&s->pool, e.off, e.len);
			return r;
		}
		target -= e.len;
	}
	return 0;
}

/* Shrink @v's extents to exactly round(size).  Lock held. */
void ver_trim(struct tc_store *s, struct tc_ver *v)
{
	uint64_t keep = tc_round_block(v->size), at = 0;
	uint32_t i;

	assert_locked(s);
	assert(v->inflight == 0);
	for (i = 0; i < v->nextents; i++) {
		struct tc_extent *e = &tc_ver_ext(v)[i];
		if (at + e->len <= keep) {
			at += e->len;
			continue;
		}
		uint64_t k = keep > at ? keep - at : 0;
		tc_pool_free(&s->pool, e->off + k, e->len - k);
		e->len = k;
		at += k;
		if (!k)
			break;
		i++;
		break;
	}
	uint32_t kept = i;
	struct tc_extent *x = tc_ver_ext(v);
	for (; i < v->nextents; i++) {
		if (!x[i].len)
			continue;
		tc_pool_free(&s->pool, x[i].off, x[i].len);
	}
	while (kept && !x[kept - 1].len)
		kept--;
	ext_settle(v, kept);
}

/* Move @v (about to be committed: trimmed, nothing in flight) into units
 * of a shared block when it is small enough (pool.h), so that it does not
 * take a block of its own.  Its block, never named by a record, is free
 * at once: a read of a pending version holds it in flight (see
 * tc_file_pread).  On ENOMEM it stays where it is.  Lock held. */
void ver_pack(struct tc_store *s, struct tc_ver *v)
{
	struct tc_extent to;

	assert_locked(s);
	assert(v->inflight == 0);
	if (!v->size || v->size > TC_PACK_MAX || v->nextents != 1 ||
	    tc_extent_packed(v->ex.one))
		return;
	assert(v->ex.one.len == TC_BLOCK);
	int r = tc_pool_pack(&s->pool, v->ex.one.off, v->size, &to);
	if (r < 0)
		return;
	if (r == 1) {
		memcpy(s->pool.map + to.off, s->pool.map + v->ex.one.off,
		       (size_t)v->size);
		tc_pool_free(&s->pool, v->ex.one.off, v->ex.one.len);
	}
	v->ex.one = to; /* one extent: its length is the version's alloc */
}

static void zero_fn(void *arg, uint8_t *p, size_t n)
{
	memset(p, 0, n);
}

/* Zero bytes [from, to) of @v (inside its allocation). */
void ver_zero(struct tc_store *s, struct tc_ver *v, uint64_t from, uint64_t to)
{
	if (to > from)
		ver_each(s, v, from, to - from, zero_fn, NULL);
}

struct copy_ctx {
	const struct tc_store *s;
	struct tc_ver *dst;
	uint64_t at;            /* where in dst the next piece goes */
	const uint8_t *src;     /* the piece being copied */
};

static int copy_to_fn(void *arg, uint64_t pool_off, size_t n)
{
	struct copy_ctx *c = arg;
	memcpy(c->s->pool.map + pool_off, c->src, n);
	c->src += n;
	return 0;
}

static void copy_fn(void *arg, uint8_t *p, size_t n)
{
	struct copy_ctx *c = arg;
	c->src = p;
	ver_walk(c->dst, c->at, n, copy_to_fn, c);
	c->at += n;
}

/* A new pending version of @size bytes holding the bytes of @src (NULL:
 * none) up to @size, zeros past src's end.  O(size) copy.  Lock held. */
int ver_clone(struct tc_store *s, const struct tc_ver *src, uint64_t size,
	      struct tc_ver **out)
{
	struct tc_ver *v = ver_new(s);
	int r;

	if (!v)
		return -ENOMEM;
	r = ver_grow(s, v, size);
	if (r) {
		ver_put(s, v);
		return r;
	}
	uint64_t have = src ? (src->size < size ? src->size : size) : 0;
	if (have) {
		struct copy_ctx c = { s, v, 0, NULL };
		ver_each(s, src, 0, have, copy_fn, &c);
	}
	ver_zero(s, v, have, size);
	v->size = size;
	v->dirty = 1;
	*out = v;
	return 0;
}

/* ---- dtype and shape ----------------------------------------------------- */

static int name_is_npy(const char *name)
{
	size_t n = strlen(name);
	return n >= 4 && !strcasecmp(name + n - 4, ".npy");
}

struct peek_ctx {
	uint8_t *buf;
	size_t at;
};

static void peek_fn(void *arg, uint8_t *p, size_t n)
{
	struct peek_ctx *c = arg;
	memcpy(c->buf + c->at, p, n);
	c->at += n;
}

void ver_read(const struct tc_store *s, const struct tc_ver *v, uint64_t off,
	      size_t len, void *buf)
{
	struct peek_ctx c = { buf, 0 };
	ver_each(s, v, off, len, peek_fn, &c);
}

/* Give @v this dtype and shape if they describe exactly its bytes after
 * @data_offset (overflow-safe).  1 when set, 0 when they do not fit (or on
 * ENOMEM), and @v keeps what it had. */
static int ver_set_type(struct tc_ver *v, int dtype, int ndim,
			const uint64_t *shape, uint64_t data_offset)
{
	uint64_t bytes = tc_dtype_size(dtype);
	/* tc_ver keeps data_offset in 32 bits: a header of 4 GiB is not
	 * taken for one (the bytes stay raw) */
	if (!bytes || data_offset > v->size || data_offset > UINT32_MAX)
		return 0;
	for (int i = 0; i < ndim; i++)
		if (__builtin_mul_overflow(bytes, shape[i], &bytes))
			return 0;
	if (bytes != v->size - data_offset || ver_set_shape(v, ndim, shape))
		return 0;
	v->dtype = (uint8_t)dtype;
	v->data_offset = (uint32_t)data_offset;
	return 1;
}

/* dtype/shape for @v, the new version of tensor @name in directory @dir:
 * from its .npy header, else as @dir's meta.json declares it (any size:
 * a document is not refused over sizes, and neither is the file), else
 * kept from @old when the size still fits them, else raw uint8 [size]. */
void ver_type(struct tc_store *s, const struct tc_node *dir, const char *name,
	      struct tc_ver *v, const struct tc_ver *old)
{
	struct tc_meta_set set;

	if (name_is_npy(name) && v->size) {
		size_t len = v->size < NPY_PEEK ? (size_t)v->size : NPY_PEEK;
		uint8_t *buf = malloc(len);
		struct tc_npy_info info;
		if (buf) {
			ver_read(s, v, 0, len, buf);
			int r = tc_npy_parse(buf, len, &info);
			free(buf);
			if (!r && ver_set_type(v, info.dtype, info.ndim, info.shape,
					       info.data_offset))
				return;
		}
	}
	if (dir && tc_meta_declared(tc_doc(dir), name, &set) &&
	    !ver_set_shape(v, set.ndim, set.shape)) {
		v->dtype = (uint8_t)set.dtype;
		v->data_offset = 0;
		return;
	}
	if (old && old->ndim > 0 && old->dtype != TC_DT_UINT8 &&
	    ver_set_type(v, old->dtype, old->ndim, tc_ver_shape(old),
			 old->data_offset))
		return;
	ver_set_shape(v, 1, &v->size); /* one dimension: cannot fail */
	v->dtype = TC_DT_UINT8;
	v->data_offset = 0;
}
