/*
 * store.c - the store: ties pool, index, lru and journal together behind
 * the API of tcache.h.
 *
 * Files in the store directory:
 *   lock      flock()ed exclusively while a process has the store open
 *   pool      the tensor bytes (pool.c), preallocated to the capacity
 *   journal   the durable index (journal.c); journal.new while a
 *             checkpoint is being written (by a child process, forked
 *             at an unlock once the journal has doubled, put in place at
 *             a later unlock or tick; in place at open and close)
 *
 * Life of a tensor's bytes:
 *   create/open for write -> a pending version (tc_ver) owned by the
 *   writers; writes allocate extents as they go (evicting LRU entries when
 *   the pool is full) and copy bytes with pwrite outside the lock;
 *   commit (flush) -> checksum, .npy header, one journal record, and the
 *   pending version becomes the committed one; after a failed write or
 *   reservation (tc_wr.failed) the commit drops it instead and puts back
 *   what the handle found at its open (tc_file.before).  Readers hold a reference
 *   to the committed version they opened, so a replacement never changes
 *   bytes under them; the old version's extents are freed when its last
 *   reader closes.
 *
 * Locking: one mutex (lock) protects every field of the store and of the
 * index, pool, lru and journal.  Only byte copies into or out of the pool
 * and checksum passes over committed (immutable) versions run unlocked.
 * A pending version's extents never shrink while a write copies into them
 * (ver->inflight > 0): commit and truncate wait on `drained` first.
 * The eviction listener runs with the lock held.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <xxhash.h>

#include "dtype.h"
#include "hash.h"
#include "journal.h"
#include "lru.h"
#include "meta.h"
#include "pool.h"
#include "store_test.h"
#include "tail.h"
#include "tcache.h"

#define POOL_FILE "pool"
#define LOCK_FILE "lock"
#define CHECKPOINT_RECORD (1u << 20)  /* payload size of checkpoint records */
#define GROW_MIN (64u << 10)          /* files past this grow geometrically */
#define GROW_MAX (64u << 20)
#define NPY_PEEK (1u << 20)           /* header bytes read from a .npy */
#define TOUCH_BATCH 256               /* recency records kept back, at most */
#define TOUCH_DELAY_NS 1000000000     /* ... and for at most this long */

struct tc_store {
	pthread_mutex_t lock;
	pthread_cond_t drained;      /* some ver->inflight reached 0 */
	int dirfd, lockfd;
	struct tc_pool pool;
	struct tc_index idx;
	struct tc_lru lru;
	struct tc_journal jr;
	unsigned verify;
	int replaying;               /* replay: no pool yet, no frees */
	struct tc_node *replay_dir;  /* replay: the directory last applied
	                                (a checkpoint lists a directory's
	                                children right after it), or NULL */
	int want_checkpoint;         /* the journal outgrew its last checkpoint */
	uint64_t journal_slack;      /* see tc_options */
	uint64_t checkpoints;        /* put in place since the open */
	uint64_t sync_gen;           /* generation of the frees held in the
	                                pool's quarantine now (pool.h) */
	uint64_t bg_gen;             /* the generation a running child's
	                                snapshot covers */
	int evicting;                /* evict() is removing an entry: its
	                                extents wait for the record alone */
	struct tc_tail tail;         /* replay: the unsynced tail (tail.c) */
	uint64_t unsynced_dropped;   /* open: tensors not durable at a crash
	                                whose bytes did not survive it */
	uint64_t fallbacks;          /* open: replacements not durable at a
	                                crash; the version before kept */
	int rdonly;                  /* opened by tc_store_check to look only */
	int journal_err;             /* the last append's error, or 0 */
	struct tc_buf touches;       /* TOUCH ops not yet in the journal */
	uint32_t ntouches;
	int64_t touches_since;       /* when the oldest of them happened */
	tc_check_fn report;          /* tc_store_check: told of each drop */
	void *report_arg;
	uint64_t ver_counter;
	uint64_t live_bytes;
	uint64_t hits, misses, evictions, evicted_bytes;
	uint64_t journal_dropped, nodes_dropped;
	uint64_t journal_torn;       /* records a power loss never wrote */
	tc_evict_fn evict_fn;
	void *evict_arg;
};

struct tc_file {
	struct tc_node *node;
	struct tc_ver *ver;          /* read-only handles: the version read */
	unsigned flags;
	int dirty;                   /* changed the pending version since this
	                                handle's last commit: only then does
	                                its commit (flush, release) commit */
	struct tc_ver *before;       /* write handles: the version committed
	                                when it opened (a reference; NULL for
	                                none), put back if a write through it
	                                fails after a commit through it (a
	                                close of a dup'ed descriptor) */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec ts_of(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000,
			       .tv_nsec = ns % 1000000000 };
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += 1000000000;
		ts.tv_sec--;
	}
	return ts;
}

static int64_t ns_of(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int check_name(const char *name)
{
	size_t n = strnlen(name, TC_NAME_MAX + 1);
	if (n > TC_NAME_MAX)
		return -ENAMETOOLONG;
	if (n == 0 || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		return -EINVAL;
	return 0;
}

/* A name that may be created in @dir (not reserved there: see tcache.h). */
static int check_new_name(const struct tc_node *dir, const char *name)
{
	int r = check_name(name);
	if (r)
		return r;
	if (!strcmp(name, dir->kind == TC_KIND_ROOT ? TC_STATS_NAME : TC_META_NAME))
		return -EEXIST;
	return 0;
}

/* An entry's pin is also its sticky bit (chmod +t pins, chmod -t unpins),
 * so a pin is reachable with plain tools and visible in ls -l.  This sets
 * both in a copy of a node (a record to journal); pin_entry() in an entry
 * of the index. */
static void pin_bits(struct tc_node *e, int pinned)
{
	e->pinned = pinned ? 1 : 0;
	e->mode = pinned ? e->mode | S_ISVTX : e->mode & ~(uint32_t)S_ISVTX;
}

static void pin_entry(struct tc_store *s, struct tc_node *e, int pinned)
{
	tc_lru_set_pinned(&s->lru, e, pinned);
	pin_bits(e, pinned);
}

/* ---- versions ------------------------------------------------------------ */

static struct tc_ver *ver_new(void)
{
	struct tc_ver *v = calloc(1, sizeof(*v));
	if (v) {
		v->refs = 1;
		v->ext = &v->ext1;
		v->cap = 1;
	}
	return v;
}

/* Give @v a copy of @shape (which may be @v's own).  -ENOMEM: unchanged. */
static int ver_set_shape(struct tc_ver *v, int ndim, const uint64_t *shape)
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

static void ver_put(struct tc_store *s, struct tc_ver *v)
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
	if (!s->replaying)
		for (uint32_t i = 0; i < v->next; i++) {
			if (v->committed)
				tc_pool_hold(&s->pool, v->ext[i].off,
					     v->ext[i].len, s->sync_gen,
					     s->evicting ? TC_HOLD_RECORD
							 : TC_HOLD_DATA);
			else
				tc_pool_free(&s->pool, v->ext[i].off,
					     v->ext[i].len);
		}
	if (v->ndim > 1)
		free(v->shp.many);
	if (v->ext != &v->ext1)
		free(v->ext);
	free(v);
}

static void put_ver_cb(void *arg, struct tc_ver *v)
{
	ver_put(arg, v);
}

static int ver_push(struct tc_ver *v, struct tc_extent e)
{
	if (v->next && v->ext[v->next - 1].off + v->ext[v->next - 1].len == e.off) {
		v->ext[v->next - 1].len += e.len;
	} else {
		if (v->next == v->cap) {
			uint32_t ncap = v->cap * 2;
			struct tc_extent *ne = v->ext == &v->ext1 ? NULL : v->ext;
			ne = realloc(ne, ncap * sizeof(*ne));
			if (!ne)
				return -ENOMEM;
			if (v->ext == &v->ext1)
				ne[0] = v->ext1;
			v->ext = ne;
			v->cap = ncap;
		}
		v->ext[v->next++] = e;
	}
	v->alloc += e.len;
	return 0;
}

/* Spans of [off, off + len) of @v (within v->alloc); returns the count or
 * -ENOBUFS when more than @max are needed.  O(extents). */
static int ver_spans(const struct tc_store *s, const struct tc_ver *v,
		     uint64_t off, uint64_t len, struct tc_span *sp, int max)
{
	int n = 0;
	uint64_t at = 0;
	for (uint32_t i = 0; i < v->next && len; i++) {
		const struct tc_extent *e = &v->ext[i];
		if (off >= at + e->len) {
			at += e->len;
			continue;
		}
		uint64_t in = off - at;
		uint64_t take = e->len - in < len ? e->len - in : len;
		if (n == max)
			return -ENOBUFS;
		sp[n++] = (struct tc_span){ .fd = s->pool.fd,
					    .fd_off = e->off + in,
					    .ptr = s->pool.map + e->off + in,
					    .len = (size_t)take };
		off += take;
		len -= take;
		at += e->len;
	}
	return n;
}

/* Call @fn on each piece of [off, off + len) of @v in the pool mmap. */
static void ver_each(const struct tc_store *s, const struct tc_ver *v,
		     uint64_t off, uint64_t len,
		     void (*fn)(void *arg, uint8_t *p, size_t n), void *arg)
{
	uint64_t at = 0;
	for (uint32_t i = 0; i < v->next && len; i++) {
		const struct tc_extent *e = &v->ext[i];
		if (off >= at + e->len) {
			at += e->len;
			continue;
		}
		uint64_t in = off - at;
		uint64_t take = e->len - in < len ? e->len - in : len;
		fn(arg, s->pool.map + e->off + in, (size_t)take);
		off += take;
		len -= take;
		at += e->len;
	}
}

static void zero_fn(void *arg, uint8_t *p, size_t n)
{
	memset(p, 0, n);
}

static void hash_fn(void *arg, uint8_t *p, size_t n)
{
	tc_hash_update(arg, p, n);
}

/* xxh3 of the first @size bytes of @v.  Reads the pool: O(size). */
static int ver_hash(const struct tc_store *s, const struct tc_ver *v,
		    uint64_t size, uint64_t *out)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	ver_each(s, v, 0, size, hash_fn, st);
	*out = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return 0;
}

static void ver_default_type(struct tc_ver *v)
{
	ver_set_shape(v, 1, &v->size); /* one dimension: cannot fail */
	v->dtype = TC_DT_UINT8;
	v->data_offset = 0;
}

/* ---- writing state -------------------------------------------------------- */

static struct tc_ver *pending_of(const struct tc_node *n)
{
	return n->wr ? n->wr->pending : NULL;
}

static uint32_t writers_of(const struct tc_node *n)
{
	return n->wr ? n->wr->writers : 0;
}

/* @n's writing state, made if it has none.  NULL on ENOMEM. */
static struct tc_wr *wr_get(struct tc_node *n)
{
	if (!n->wr)
		n->wr = calloc(1, sizeof(*n->wr));
	return n->wr;
}

/* Start a streaming checksum of the pending version from byte 0 (it is
 * empty).  Failing only costs a full hash at commit. */
static int wr_start_hash(struct tc_wr *w)
{
	if (!w->hs && !(w->hs = XXH3_createState()))
		return -ENOMEM;
	XXH3_64bits_reset(w->hs);
	w->hashed = 0;
	return 0;
}

static void wr_stop_hash(struct tc_wr *w)
{
	if (w->hs)
		XXH3_freeState(w->hs);
	w->hs = NULL;
}

/* Make @v (new) the pending version.  The checksum streams along with
 * the writes only from an empty start; any state of an earlier pending
 * version goes. */
static void wr_set_pending(struct tc_wr *w, struct tc_ver *v)
{
	w->pending = v;
	wr_stop_hash(w);
	if (!v->size)
		wr_start_hash(w);
}

/* Free @n's writing state and what it holds. */
static void wr_free(struct tc_store *s, struct tc_node *n)
{
	struct tc_wr *w = n->wr;
	if (!w)
		return;
	ver_put(s, w->pending);
	if (w->hs)
		XXH3_freeState(w->hs);
	free(w);
	n->wr = NULL;
}

/* Free it once nothing is being written. */
static void wr_idle(struct tc_store *s, struct tc_node *n)
{
	if (n->wr && !n->wr->writers && !n->wr->pending)
		wr_free(s, n);
}

/* ---- eviction and removal ------------------------------------------------- */

/* Add @delta to the open counts of @dir and every directory above it. */
static void opens_add(struct tc_node *dir, int64_t delta)
{
	for (; dir; dir = dir->parent) {
		assert(delta >= 0 || dir->opens >= (uint64_t)-delta);
		dir->opens += (uint32_t)delta; /* modulo 2^32: adds a negative delta */
	}
}

static uint64_t opens_of(const struct tc_node *n)
{
	return n->kind == TC_KIND_TENSOR ? n->refs : n->opens;
}

/* Free a node taken out of the index, unless handles keep it: a removed
 * tensor that is still open stays findable by id (fstat of an open file
 * works, nlink 0) until its last close. */
static void node_drop(struct tc_store *s, struct tc_node *n)
{
	if (n->kind == TC_KIND_TENSOR) {
		if (n->refs) {      /* open handles free it at their close */
			n->dead = TC_REMOVED;
			return;
		}
		ver_put(s, n->ver);
		wr_free(s, n);
	}
	if (s->replay_dir == n)
		s->replay_dir = NULL;
	tc_index_forget(&s->idx, n);
	tc_node_free(n);
}

/* Remove @n and everything below it from the index (and the lru).  Open
 * tensors stay alive, dead, until their handles close.  No journaling. */
static void remove_rec(struct tc_store *s, struct tc_node *n)
{
	struct tc_node *c;
	while (tc_node_isdir(n) && (c = n->child_tail))
		remove_rec(s, c);
	if (n->kind == TC_KIND_ENTRY)
		tc_lru_remove(&s->lru, n);
	if (n->kind == TC_KIND_TENSOR && n->ver)
		s->live_bytes -= n->ver->size;
	tc_index_unname(&s->idx, n);
	n->dead = TC_REMOVED;
	n->journaled = 0; /* nothing about it goes to the journal any more */
	node_drop(s, n);
}

static void remove_subtree(struct tc_store *s, struct tc_node *n)
{
	opens_add(n->parent, -(int64_t)opens_of(n));
	remove_rec(s, n);
}

static uint64_t subtree_bytes(const struct tc_node *n)
{
	uint64_t b = n->kind == TC_KIND_TENSOR && n->ver ? n->ver->size : 0;
	for (const struct tc_node *c = n->child_head; c; c = c->sib_next)
		b += subtree_bytes(c);
	return b;
}

static int append(struct tc_store *s, struct tc_buf *b, uint64_t *seq);

static int evict(struct tc_store *s, struct tc_node *e)
{
	struct tc_buf b = { 0 };
	int r;

	tc_rec_del(&b, e->id);
	r = append(s, &b, NULL);
	tc_buf_free(&b);
	if (r)
		return r;
	s->evictions++;
	s->evicted_bytes += subtree_bytes(e);
	if (s->evict_fn)
		s->evict_fn(s->evict_arg, TC_ROOT_ID, e->id, e->name);
	s->evicting = 1;
	remove_subtree(s, e);
	s->evicting = 0;
	return 0;
}

/* Pool bytes that evicting @e would free.  O(nodes in e). */
static uint64_t entry_bytes(const struct tc_node *e)
{
	uint64_t b = 0;
	for (const struct tc_node *n = e; n; n = tc_node_next(n, e))
		if (n->kind == TC_KIND_TENSOR && n->ver && n->ver->refs == 1)
			b += n->ver->alloc;
	return b;
}

static int sync_locked(struct tc_store *s, int may_unlock);
static int sync_journal_locked(struct tc_store *s);

/* How far past a write's need an eviction that ends in a sync frees (a
 * low watermark): the writes after it find free space, so the sync is
 * paid once per this many bytes rather than once per write.  1/64 of the
 * capacity, at most 64 MiB. */
static uint64_t evict_ahead(const struct tc_store *s)
{
	uint64_t m = s->pool.size / 64;
	return (m < (64u << 20) ? m : (64u << 20)) & ~(uint64_t)(TC_BLOCK - 1);
}

/*
 * Make @need bytes free.  Space in the pool's quarantine counts: a sync
 * makes it free, of the journal alone (one fdatasync) when what evicted
 * entries freed is enough, else of the pool and then the journal
 * (sync_locked: two fdatasyncs); both under the lock.  Else evict least
 * recently used entries: a dry run over the same victims first, so that
 * when even evicting every evictable entry would not make room nothing is
 * evicted and -ENOSPC returned; then evict until @need plus
 * evict_ahead() is there (as far as victims allow), and sync.  Cost:
 * proportional to what is evicted (plus the entries with open files
 * skipped; pinned ones are in a list of their own), and a sync per
 * evict_ahead() bytes of evictions.
 */
static int make_room(struct tc_store *s, uint64_t need)
{
	uint64_t have = s->pool.free + s->pool.held_bytes;
	struct tc_node *e;
	int r;

	if (s->pool.free >= need)
		return 0;
	if (have < need) {
		for (e = s->lru.head; e && have < need; e = e->lru_next)
			if (tc_lru_evictable(e))
				have += entry_bytes(e);
		if (have < need)
			return -ENOSPC;
		/* past @need, only while the victim frees something */
		while (s->pool.free + s->pool.held_bytes < need + evict_ahead(s) &&
		       (e = tc_lru_victim(&s->lru)) &&
		       (s->pool.free + s->pool.held_bytes < need || entry_bytes(e)))
			if ((r = evict(s, e)))
				return r;
		if (s->pool.free + s->pool.held_bytes < need)
			return -ENOSPC;
	}
	if (s->pool.free + s->pool.held[TC_HOLD_RECORD].bytes >= need)
		return sync_journal_locked(s);
	return sync_locked(s, 0);
}

static int ver_grow(struct tc_store *s, struct tc_ver *v, uint64_t end)
{
	uint64_t need, target;
	int r;

	if (end > s->pool.size)
		return -EFBIG;
	need = tc_round_block(end);
	if (need <= v->alloc)
		return 0;
	need -= v->alloc;
	r = make_room(s, need);
	if (r)
		return r;
	target = need;
	if (v->alloc >= GROW_MIN) {
		uint64_t extra = v->alloc < GROW_MAX ? v->alloc : GROW_MAX;
		if (extra > target)
			target = extra;
		if (target > s->pool.free)
			target = s->pool.free & ~(uint64_t)(TC_BLOCK - 1);
		if (target < need)
			target = need;
	}
	if (v->next) {
		struct tc_extent *last = &v->ext[v->next - 1];
		uint64_t got = tc_pool_extend(&s->pool, last->off + last->len,
					      target);
		last->len += got;
		v->alloc += got;
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

/* Shrink @v's extents to exactly round(size). */
static void ver_trim(struct tc_store *s, struct tc_ver *v)
{
	uint64_t keep = tc_round_block(v->size), at = 0;
	uint32_t i;

	assert(v->inflight == 0);
	for (i = 0; i < v->next; i++) {
		struct tc_extent *e = &v->ext[i];
		if (at + e->len <= keep) {
			at += e->len;
			continue;
		}
		uint64_t k = keep > at ? keep - at : 0;
		tc_pool_free(&s->pool, e->off + k, e->len - k);
		v->alloc -= e->len - k;
		e->len = k;
		at += k;
		if (!k)
			break;
		i++;
		break;
	}
	uint32_t kept = i;
	for (; i < v->next; i++) {
		if (!v->ext[i].len)
			continue;
		tc_pool_free(&s->pool, v->ext[i].off, v->ext[i].len);
		v->alloc -= v->ext[i].len;
	}
	v->next = kept;
	while (v->next && !v->ext[v->next - 1].len)
		v->next--;
}

/* Zero bytes [from, to) of @v (inside its allocation). */
static void ver_zero(struct tc_store *s, struct tc_ver *v, uint64_t from,
		     uint64_t to)
{
	if (to > from)
		ver_each(s, v, from, to - from, zero_fn, NULL);
}

struct copy_ctx {
	const struct tc_store *s;
	struct tc_ver *dst;
	uint64_t at;
};

static void copy_fn(void *arg, uint8_t *p, size_t n)
{
	struct copy_ctx *c = arg;
	uint64_t done = 0;
	/* copy [p, p+n) into dst at c->at, across dst's extents */
	uint64_t at = 0;
	for (uint32_t i = 0; i < c->dst->next && done < n; i++) {
		const struct tc_extent *e = &c->dst->ext[i];
		uint64_t off = c->at + done;
		if (off >= at + e->len) {
			at += e->len;
			continue;
		}
		uint64_t in = off - at;
		uint64_t take = e->len - in < n - done ? e->len - in : n - done;
		memcpy(c->s->pool.map + e->off + in, p + done, (size_t)take);
		done += take;
		at += e->len;
	}
	c->at += n;
}

/* A new pending version of @size bytes holding the bytes of @src (NULL:
 * none) up to @size, zeros past src's end.  O(size) copy. */
static int ver_clone(struct tc_store *s, const struct tc_ver *src,
		     uint64_t size, struct tc_ver **out)
{
	struct tc_ver *v = ver_new();
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
		struct copy_ctx c = { s, v, 0 };
		ver_each(s, src, 0, have, copy_fn, &c);
	}
	ver_zero(s, v, have, size);
	v->size = size;
	v->dirty = 1;
	*out = v;
	return 0;
}


/* ---- journal glue ---------------------------------------------------------- */

static int checkpoint(struct tc_store *s, uint64_t capacity);

/* Has the journal outgrown its last checkpoint? */
static int journal_big(const struct tc_store *s)
{
	return s->jr.size > 2 * s->jr.base + s->journal_slack;
}

/* A failed journal write's errno as the caller should see it: a write cut
 * short by a full disk is ENOSPC (the journal answers a short write with
 * EIO).  Remembered for tc_store_journal_error(). */
static int journal_failed(struct tc_store *s, const struct tc_buf *b, int r)
{
	struct statvfs sv;
	if (r == -EIO && fstatvfs(s->jr.fd, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < b->len + 2 * TC_BLOCK)
		r = -ENOSPC;
	s->journal_err = r;
	return r;
}

static int append(struct tc_store *s, struct tc_buf *b, uint64_t *seq)
{
	int r = tc_journal_append(&s->jr, b, seq);
	if (r)
		return journal_failed(s, b, r);
	s->journal_err = 0;
	if (journal_big(s))
		s->want_checkpoint = 1; /* at unlock, when the index is whole */
	return 0;
}

/* Append a record of one node (a tensor with its committed version). */
static int journal_node(struct tc_store *s, const struct tc_node *n)
{
	struct tc_buf b = { 0 };
	tc_rec_node(&b, n);
	int r = append(s, &b, NULL);
	tc_buf_free(&b);
	return r;
}

/* Append a record of tensor @n as it will be with version @v (not yet
 * its own); *@seq gets the record's number. */
static int journal_ver(struct tc_store *s, const struct tc_node *n,
		       struct tc_ver *v, uint64_t *seq)
{
	struct tc_buf b = { 0 };
	struct tc_node tmp;
	tc_node_copy(&tmp, n);
	tmp.ver = v;
	tc_rec_node(&b, &tmp);
	int r = append(s, &b, seq);
	tc_buf_free(&b);
	return r;
}

/* Append the touches kept back, as one record.  Recency is best effort:
 * on failure they are dropped. */
static void touches_flush(struct tc_store *s)
{
	if (s->ntouches && !s->touches.err)
		append(s, &s->touches, NULL);
	s->touches.len = 0;
	s->touches.err = 0;
	s->ntouches = 0;
}

/*
 * An entry was used: it becomes the most recent, in memory at once.  The
 * journal hears of it in batches (TOUCH_BATCH touches, or the first one
 * TOUCH_DELAY_NS old at an unlock or a tc_store_tick(), or a sync or
 * checkpoint) rather than with a write(2) per open.  A kill -9 may so lose
 * the last second or two of recency (the LRU order and last_access of a
 * few entries come back a little older), never data: a touch changes
 * nothing else.
 */
static void touch(struct tc_store *s, struct tc_node *n)
{
	struct tc_node *e = tc_node_entry(n);
	if (!e)
		return;
	e->last_access = now_ns();
	tc_lru_touch(&s->lru, e);
	if (!e->journaled)
		return;
	if (!s->ntouches)
		s->touches_since = e->last_access;
	tc_rec_touch(&s->touches, e->id, e->last_access);
	s->ntouches++;
	if (s->ntouches >= TOUCH_BATCH ||
	    e->last_access - s->touches_since >= TOUCH_DELAY_NS)
		touches_flush(s);
}

/*
 * Make every committed tensor durable, then free what waits in the pool's
 * quarantine since before the sync began (journal.c, steps 2 and 3): note
 * the last seq, fdatasync the pool, append a mark, fdatasync the journal.
 * Called and returns with the lock held; with @may_unlock the lock is let
 * go for the pool's fdatasync (the only part that grows with what was
 * written).  Cost: two fdatasyncs.
 */
static int sync_locked(struct tc_store *s, int may_unlock)
{
	struct tc_buf b = { 0 };
	uint64_t gen = s->sync_gen++, upto;
	int r;

	touches_flush(s);
	upto = s->jr.seq;
	if (may_unlock)
		pthread_mutex_unlock(&s->lock);
	r = fdatasync(s->pool.fd) < 0 ? -errno : 0;
	if (may_unlock)
		pthread_mutex_lock(&s->lock);
	if (r)
		return r;
	tc_rec_mark(&b, upto, s->jr.durable_seq);
	r = append(s, &b, NULL);
	tc_buf_free(&b);
	if (!r)
		r = tc_journal_sync(&s->jr);
	if (!r)
		tc_pool_release(&s->pool, gen, 1);
	return r;
}

/* The journal's part of that alone: what was freed before it by records
 * that nothing falls back to (evictions) becomes free.  One fdatasync,
 * under the lock. */
static int sync_journal_locked(struct tc_store *s)
{
	uint64_t gen = s->sync_gen++;
	int r = tc_journal_sync(&s->jr);
	if (!r)
		tc_pool_release(&s->pool, gen, 0);
	return r;
}

struct emit_ctx {
	struct tc_store *s;
	struct tc_journal *nj;
	struct tc_buf b;        /* the record being built */
	struct tc_buf framed;   /* records ready for one write */
	int err;
};

/* End the record being built; write the framed ones once they add up. */
static void emit_flush(struct emit_ctx *c, int force)
{
	if (!c->err && c->b.len)
		c->err = tc_journal_frame(c->nj, &c->b, &c->framed);
	c->b.len = 0;
	if (!c->err && c->framed.len && (force || c->framed.len >= CHECKPOINT_RECORD))
		c->err = tc_journal_write_framed(c->nj, &c->framed);
	if (force || c->framed.len >= CHECKPOINT_RECORD)
		c->framed.len = 0;
}

static void emit_node(struct emit_ctx *c, struct tc_node *n)
{
	if (n->kind == TC_KIND_TENSOR && !n->ver)
		return; /* never committed: not durable yet */
	tc_rec_node(&c->b, n);
	n->journaled = 1;
	if (n->kind == TC_KIND_TENSOR && n->ver)
		n->ver->seq = c->nj->seq + 1;
	if (c->b.len >= CHECKPOINT_RECORD)
		emit_flush(c, 0);
	for (struct tc_node *ch = n->child_head; ch; ch = ch->sib_next)
		emit_node(c, ch);
}

static int emit_all(void *arg, struct tc_journal *nj)
{
	struct emit_ctx *c = arg;
	c->nj = nj;
	/* Entries oldest first: replay appends each to the lru's young end,
	 * which rebuilds the order.  One record per entry (more for a huge
	 * one), so a damaged record costs that entry alone. */
	struct tc_lru_iter it;
	tc_lru_iter_start(&c->s->lru, &it);
	for (struct tc_node *e; !c->err && (e = tc_lru_iter_next(&it));) {
		emit_node(c, e);
		emit_flush(c, 0);
	}
	uint64_t st[4] = { c->s->hits, c->s->misses, c->s->evictions,
			   c->s->evicted_bytes };
	tc_rec_stats(&c->b, st);
	emit_flush(c, 1);
	if (!c->err)
		c->err = c->b.err;
	return c->err;
}

static int checkpoint(struct tc_store *s, uint64_t capacity)
{
	struct emit_ctx c = { .s = s };
	uint64_t nodes = s->idx.entries + s->idx.groups + s->idx.tensors;
	uint64_t gen = s->sync_gen++;
	int r = tc_journal_rewrite(&s->jr, capacity, nodes, emit_all, &c);
	tc_buf_free(&c.b);
	tc_buf_free(&c.framed);
	if (!r && s->jr.data_fd >= 0) /* the pool was synced, all marked */
		tc_pool_release(&s->pool, gen, 1);
	if (!r) { /* the checkpoint holds the recency they record */
		s->checkpoints++;
		s->touches.len = 0;
		s->touches.err = 0;
		s->ntouches = 0;
	}
	return r;
}

/* The same checkpoint, written by a child process from its copy of the
 * index (journal.c): the lock is held for the fork only.  Where fork
 * fails, written here and now. */
static int checkpoint_bg(struct tc_store *s)
{
	struct emit_ctx c = { .s = s }; /* used in the child only */
	uint64_t nodes = s->idx.entries + s->idx.groups + s->idx.tensors;
	uint64_t gen = s->sync_gen++; /* what its snapshot makes durable */
	int r = tc_journal_rewrite_bg(&s->jr, nodes, emit_all, &c);
	if (!r)
		s->bg_gen = gen;
	return r && r != -EBUSY ? checkpoint(s, s->jr.capacity) : r;
}

/*
 * Every public function releases the lock through here.  A checkpoint
 * starts only at this point, never inside an operation: an operation may
 * append its record before it updates the index, and a checkpoint taken
 * between the two would write the old state and drop the record.  One
 * that a child writes is put in place here too, once the child is done.
 */
static void unlock(struct tc_store *s)
{
	if (s->ntouches && now_ns() - s->touches_since >= TOUCH_DELAY_NS)
		touches_flush(s);
	if (s->jr.bg_pid && tc_journal_bg_poll(&s->jr, 0) == 0) {
		s->checkpoints++; /* on failure the old log stays */
		tc_pool_release(&s->pool, s->bg_gen, 1);
	}
	if (s->want_checkpoint) {
		s->want_checkpoint = 0;
		/* (a checkpoint that just finished may have made it small) */
		if (!s->jr.bg_pid && journal_big(s))
			checkpoint_bg(s); /* on failure the old log stays */
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---- replay ---------------------------------------------------------------- */

/* "entry/group/name" of @n (still linked) into @buf. */
static void node_path(const struct tc_node *n, char *buf, size_t size)
{
	const struct tc_node *chain[64];
	int k = 0;
	size_t at = 0;
	for (; n && n->kind != TC_KIND_ROOT && k < 64; n = n->parent)
		chain[k++] = n;
	buf[0] = 0;
	if (n && n->kind != TC_KIND_ROOT)
		at = (size_t)snprintf(buf, size, ".../");
	while (k-- > 0 && at < size)
		at += (size_t)snprintf(buf + at, size - at, "%s%s", chain[k]->name,
				       k ? "/" : "");
}

/* Tell tc_store_check's caller that @n is dropped, and why. */
static void report(struct tc_store *s, const struct tc_node *n, const char *why)
{
	char path[4096];
	if (!s->report)
		return;
	node_path(n, path, sizeof(path));
	s->report(s->report_arg, path, why);
}

/* Do @a and @b hold the same bytes in the same place? */
static int same_bytes(const struct tc_ver *a, const struct tc_ver *b)
{
	if (a->size != b->size || a->xxh3 != b->xxh3 || a->next != b->next)
		return 0;
	for (uint32_t i = 0; i < a->next; i++)
		if (a->ext[i].off != b->ext[i].off || a->ext[i].len != b->ext[i].len)
			return 0;
	return 1;
}

/*
 * Apply one NODE op.  Replay cost is mostly cache misses in the tables, so
 * lookups that cannot find anything are skipped: the parent is usually the
 * directory applied last; an id at or past next_id is new; a directory
 * without children has no name to clash with.
 */
static int apply_node(struct tc_store *s, uint64_t seq, const struct tc_op *op,
		      uint32_t h)
{
	struct tc_node *dir = s->replay_dir && s->replay_dir->id == op->parent
				      ? s->replay_dir
				      : tc_index_get(&s->idx, op->parent);
	struct tc_node *n = op->id < s->idx.next_id ? tc_index_get(&s->idx, op->id)
						    : NULL;
	struct tc_node *other;
	int want_entry = op->kind == TC_KIND_ENTRY;

	if (!dir || !tc_node_isdir(dir) ||
	    (dir->kind == TC_KIND_ROOT) != want_entry ||
	    (n && (n->kind == TC_KIND_TENSOR) != (op->kind == TC_KIND_TENSOR))) {
		tc_tail_drop(&s->tail, seq);
		return 0;
	}
	if (n && op->kind != TC_KIND_TENSOR) {
		/* a directory must not move below itself */
		for (struct tc_node *a = dir; a; a = a->parent)
			if (a == n) {
				tc_tail_drop(&s->tail, seq);
				return 0;
			}
	}
	other = dir->nchildren ? tc_index_find_hashed(&s->idx, dir, op->name, h)
			       : NULL;
	if (other && other != n) {
		tc_tail_drop(&s->tail, seq); /* a lost record left a stale name */
		report(s, other, "replaced by a later record (journal lost a record)");
		remove_subtree(s, other);
	}
	if (!n) {
		n = tc_node_new(op->id, op->kind, op->name);
		if (!n || tc_index_add_hashed(&s->idx, dir, n, h)) {
			tc_node_free(n);
			return -ENOMEM;
		}
		if (n->kind == TC_KIND_ENTRY)
			tc_lru_add(&s->lru, n);
	} else {
		if (n->parent != dir || strcmp(n->name, op->name))
			if (tc_index_move(&s->idx, n, dir, op->name))
				return -ENOMEM;
		if (n->kind != op->kind) {
			if (n->kind == TC_KIND_ENTRY)
				tc_lru_remove(&s->lru, n);
			tc_index_set_kind(&s->idx, n, op->kind);
			if (n->kind == TC_KIND_ENTRY)
				tc_lru_add(&s->lru, n);
		}
	}
	n->mode = op->mode & 07777;
	n->uid = op->uid;
	n->gid = op->gid;
	n->atime = op->atime;
	n->mtime = op->mtime;
	n->ctime = op->ctime;
	n->journaled = 1;
	if (tc_node_isdir(n))
		s->replay_dir = n;
	if (n->kind == TC_KIND_ENTRY) {
		n->created = op->created;
		n->last_access = op->last_access;
		pin_entry(s, n, op->pinned);
		free(n->attrs);
		n->attrs = op->attrs ? strndup(op->attrs, op->attrs_len) : NULL;
		if (op->attrs && !n->attrs)
			return -ENOMEM;
	} else if (n->kind == TC_KIND_TENSOR) {
		struct tc_ver *v = ver_new();
		if (!v)
			return -ENOMEM;
		v->size = op->size;
		v->xxh3 = op->xxh3;
		v->data_offset = op->data_offset;
		v->dtype = op->dtype;
		v->seq = seq;
		v->committed = 1;
		v->verified = TC_UNVERIFIED;
		v->number = ++s->ver_counter;
		if (ver_set_shape(v, op->ndim, op->shape)) {
			free(v);
			return -ENOMEM;
		}
		for (uint32_t i = 0; i < op->next; i++) {
			struct tc_extent e;
			tc_op_extent(op, i, &e);
			if (ver_push(v, e)) {
				ver_put(s, v);
				return -ENOMEM;
			}
		}
		if (n->ver)
			s->live_bytes -= n->ver->size;
		if (n->ver && same_bytes(n->ver, v)) {
			/* the same bytes recorded again (a rename, a new
			 * dtype): as durable as they were */
			v->seq = n->ver->seq;
			ver_put(s, n->ver);
		} else {
			if (n->ver) /* a fallback, should v not survive */
				tc_tail_add_old(&s->tail, n->id, dir->id,
						n->name, seq, n->ver,
						put_ver_cb, s);
			tc_tail_add_new(&s->tail, n->id, seq);
		}
		n->ver = v;
		s->live_bytes += v->size;
	}
	return 0;
}

/* @h: for a NODE op, the key of its name (tc_name_hash). */
static int apply_op(struct tc_store *s, uint64_t seq, const struct tc_op *op,
		    uint32_t h)
{
	struct tc_node *n;

	switch (op->type) {
	case TC_OP_NODE:
		return apply_node(s, seq, op, h);
	case TC_OP_DEL:
		n = tc_index_get(&s->idx, op->id);
		if (n && n->kind == TC_KIND_TENSOR && n->ver) {
			/* a tensor replaced by a rename over it: its bytes
			 * may be needed back (settle_tail) */
			n->ver->refs++;
			tc_tail_add_old(&s->tail, n->id, n->parent->id,
					n->name, seq, n->ver, put_ver_cb, s);
		}
		if (n)
			remove_subtree(s, n);
		break;
	case TC_OP_TOUCH:
		n = tc_index_get(&s->idx, op->id);
		if (n && n->kind == TC_KIND_ENTRY) {
			n->last_access = op->last_access;
			tc_lru_touch(&s->lru, n);
		}
		break;
	case TC_OP_MARK:
		tc_tail_mark(&s->tail, op->synced, op->on_disk, put_ver_cb, s);
		break;
	case TC_OP_STATS:
		s->hits = op->stats[0];
		s->misses = op->stats[1];
		s->evictions = op->stats[2];
		s->evicted_bytes = op->stats[3];
		break;
	}
	return 0;
}

/* Ops of a record kept from its checking pass (a checkpoint record holds
 * an entry and its few children), so that those are not decoded twice. */
#define KEPT_OPS 4

static int apply_record(void *arg, uint64_t seq, const uint8_t *p, size_t len)
{
	struct tc_store *s = arg;
	struct tc_rd rd = { p, len, 0 };
	struct tc_op ops[KEPT_OPS], spare;
	uint32_t h[KEPT_OPS];
	size_t kept = 0, resume = len;
	int r;

	/* Check the whole record before applying any of it. */
	while ((r = tc_rec_next(&rd, kept < KEPT_OPS ? &ops[kept] : &spare)) == 1)
		if (kept < KEPT_OPS && ++kept == KEPT_OPS)
			resume = rd.pos;
	if (r < 0)
		return 1; /* malformed: dropped whole */
	for (size_t i = 0; i < kept; i++) {
		h[i] = 0;
		if (ops[i].type != TC_OP_NODE)
			continue;
		h[i] = tc_name_hash(ops[i].parent, ops[i].name);
		tc_index_prefetch(&s->idx, ops[i].id, h[i]);
	}
	for (size_t i = 0; i < kept; i++)
		if ((r = apply_op(s, seq, &ops[i], h[i])))
			return r;
	rd.pos = resume;
	while (tc_rec_next(&rd, &spare) == 1) {
		uint32_t hs = spare.type == TC_OP_NODE
				      ? tc_name_hash(spare.parent, spare.name) : 0;
		if ((r = apply_op(s, seq, &spare, hs)))
			return r;
	}
	return 0;
}

/* Are the first v->size bytes of @v in the pool file @fd the ones its
 * xxh3 names?  1 yes, 0 no (or unreadable), -ENOMEM.  O(size). */
static int ver_intact(int fd, const struct tc_ver *v, uint8_t *buf,
		      size_t bufsize)
{
	XXH3_state_t *st = XXH3_createState();
	uint64_t left = v->size;
	int ok = 1;

	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	for (uint32_t i = 0; i < v->next && left && ok; i++) {
		uint64_t off = v->ext[i].off;
		uint64_t len = v->ext[i].len < left ? v->ext[i].len : left;
		left -= len;
		while (len && ok) {
			size_t n = len < bufsize ? (size_t)len : bufsize;
			ssize_t got = fd >= 0 ? pread(fd, buf, n, (off_t)off) : -1;
			if (got < 0 && errno == EINTR)
				continue;
			ok = got == (ssize_t)n;
			if (ok)
				tc_hash_update(st, buf, n);
			off += n;
			len -= n;
		}
	}
	ok = ok && !left && XXH3_64bits_digest(st) == v->xxh3;
	XXH3_freeState(st);
	return ok;
}

/*
 * After replay: tell damage from holes.  A power loss leaves pages of the
 * journal unwritten only past what an fdatasync covered, and a mark says
 * how far that was (on_disk).  A record dropped past it is such a hole
 * (journal_torn), and a node dropped for lack of what a lost record made
 * is as unsynced as that record (unsynced_dropped).  Before it, both are
 * damage.  O(drops).
 */
static void count_drops(struct tc_store *s)
{
	uint64_t on = s->tail.on_disk;
	for (uint32_t i = 0; i < s->jr.ndrops; i++)
		if (s->jr.drop_after[i] != TC_DROP_DAMAGE &&
		    s->jr.drop_after[i] >= on) {
			s->journal_dropped--;
			s->journal_torn++;
		}
	for (size_t i = 0; i < s->tail.ndrops; i++) {
		if (s->tail.drops[i] > on)
			s->unsynced_dropped++;
		else
			s->nodes_dropped++;
	}
	s->tail.ndrops = 0;
}

/*
 * After replay: check the tensors of the unsynced tail (tail.c) against
 * the pool file @fd (-1: none).  One whose bytes did not survive a crash
 * gets the version it replaced back, if that one's are good, or is
 * dropped as never written: unsynced tensors are absent or exact, and a
 * replacement shows the old bytes or the new.  Neither is damage.  Cost:
 * reads the tail's bytes once (nothing after a clean close).
 */
static int settle_tail(struct tc_store *s, int fd)
{
	struct tc_tail *t = &s->tail;
	const size_t bufsize = 1u << 20;
	uint8_t *buf = NULL;
	int r = t->err;

	if (!r && t->nnews && !(buf = malloc(bufsize)))
		r = -ENOMEM;
	for (size_t i = 0; !r && i < t->nnews; i++) {
		struct tc_node *n = tc_index_get(&s->idx, t->news[i].id);
		struct tc_tail_old *o;
		struct tc_ver *good = NULL;
		size_t at = t->nolds;

		if (!n || n->kind != TC_KIND_TENSOR || !n->ver ||
		    n->ver->seq != t->news[i].seq || n->ver->verified)
			continue;
		r = ver_intact(fd, n->ver, buf, bufsize);
		if (r) {
			n->ver->verified = r > 0 ? TC_VERIFIED_GOOD
						  : TC_UNVERIFIED;
			r = r < 0 ? r : 0;
			continue;
		}
		while (!r && (o = tc_tail_old_prev(t, n->id, n->parent->id,
						   n->name, &at))) {
			r = o->ver->seq <= t->synced ? 1
				: ver_intact(fd, o->ver, buf, bufsize);
			if (r > 0) {
				good = o->ver;
				good->verified = good->seq > t->synced
							 ? TC_VERIFIED_GOOD
							 : TC_UNVERIFIED;
				o->ver = NULL;
			}
		}
		if (r < 0)
			break;
		r = 0;
		if (good) {
			s->live_bytes += good->size - n->ver->size;
			ver_put(s, n->ver);
			n->ver = good;
			s->fallbacks++;
		} else {
			remove_subtree(s, n);
			s->unsynced_dropped++;
		}
	}
	free(buf);
	tc_tail_free(t, put_ver_cb, s);
	return r;
}

struct owned {
	struct tc_extent e;
	struct tc_node *owner;
};

static int owned_cmp(const void *a, const void *b)
{
	const struct owned *x = a, *y = b;
	return x->e.off < y->e.off ? -1 : x->e.off > y->e.off;
}

/* Every extent of every tensor, in one walk of the tree: *@o (malloc'd)
 * gets *@k of them.  -ENOMEM. */
static int collect(struct tc_store *s, struct owned **o, size_t *k)
{
	size_t cap = s->idx.tensors + 16, n = 0;
	struct owned *a = malloc(cap * sizeof(*a));
	const struct tc_node *top = &s->idx.root;

	if (!a)
		return -ENOMEM;
	for (struct tc_node *t = tc_node_next(top, top); t; t = tc_node_next(t, top)) {
		if (t->kind != TC_KIND_TENSOR || !t->ver)
			continue;
		for (uint32_t i = 0; i < t->ver->next; i++) {
			if (n == cap) {
				struct owned *b = realloc(a, 2 * cap * sizeof(*a));
				if (!b) {
					free(a);
					return -ENOMEM;
				}
				a = b;
				cap *= 2;
			}
			a[n++] = (struct owned){ t->ver->ext[i], t };
		}
	}
	*o = a;
	*k = n;
	return 0;
}

static int owned_sorted(const struct owned *o, size_t k)
{
	for (size_t i = 1; i < k; i++)
		if (o[i].e.off < o[i - 1].e.off)
			return 0;
	return 1;
}

/*
 * After replay: drop tensors whose extents lie past @valid_end (the bytes
 * the pool file really holds) or overlap a tensor committed later (the
 * journal lost a record), then hand the rest of the pool to the free space.
 * O(n log n) in extents.
 */
static int build_pool(struct tc_store *s, uint64_t valid_end)
{
	for (;;) {
		size_t k = 0, bad = 0;
		struct owned *o = NULL;
		struct tc_extent *used = NULL;
		int r = collect(s, &o, &k);

		if (!r && !(used = malloc((k ? k : 1) * sizeof(*used))))
			r = -ENOMEM;
		if (r) {
			free(o);
			return r;
		}
		/* Extents are mostly in pool order already (a checkpoint lists
		 * old entries first, and space is handed out low first). */
		if (!owned_sorted(o, k))
			qsort(o, k, sizeof(*o), owned_cmp);
		/* Mark losers with a NULL owner; drop them below. */
		for (size_t i = 0; i < k; i++) {
			struct tc_node *t = o[i].owner;
			if (o[i].e.off + o[i].e.len > valid_end) {
				if (t->dead != TC_DROPPING)
					report(s, t, "its bytes lie past the end of the pool file");
				t->dead = TC_DROPPING;
				bad++;
			} else if (i && o[i].e.off < o[i - 1].e.off + o[i - 1].e.len) {
				struct tc_node *u = o[i - 1].owner;
				struct tc_node *older = t->ver->seq < u->ver->seq ? t : u;
				if (older->dead != TC_DROPPING)
					report(s, older, "shares pool space with a later tensor");
				older->dead = TC_DROPPING;
				bad++;
			}
		}
		if (!bad) {
			for (size_t i = 0; i < k; i++)
				used[i] = o[i].e;
			r = tc_pool_build(&s->pool, used, k);
		} else {
			/* The free space is not built yet: dropping must not
			 * hand the extents to it (they become free below). */
			int was = s->replaying;
			s->replaying = 1;
			for (size_t i = 0; i < k; i++) {
				struct tc_node *t = o[i].owner;
				if (t->dead == TC_DROPPING && t->parent) {
					s->nodes_dropped++;
					remove_subtree(s, t);
				}
			}
			s->replaying = was;
		}
		free(o);
		free(used);
		if (!bad || r)
			return r;
	}
}

/* Pool bytes held by the tensors of entry @e.  O(nodes in e). */
static uint64_t entry_alloc(const struct tc_node *e)
{
	uint64_t b = 0;
	for (const struct tc_node *n = e; n; n = tc_node_next(n, e))
		if (n->kind == TC_KIND_TENSOR && n->ver)
			b += n->ver->alloc;
	return b;
}

/* Pool bytes held by pinned entries.  O(nodes in them). */
static uint64_t pinned_alloc(const struct tc_store *s)
{
	uint64_t b = 0;
	for (const struct tc_node *e = s->lru.phead; e; e = e->lru_next)
		b += entry_alloc(e);
	return b;
}

/* Does a tensor of @top's subtree hold pool space at or past @limit? */
static int holds_past(const struct tc_node *top, uint64_t limit)
{
	for (const struct tc_node *n = top; n; n = tc_node_next(n, top))
		if (n->kind == TC_KIND_TENSOR && n->ver)
			for (uint32_t i = 0; i < n->ver->next; i++)
				if (n->ver->ext[i].off + n->ver->ext[i].len > limit)
					return 1;
	return 0;
}

/* Move the parts of @n's version that lie at or past @limit into free
 * pool space (all below @limit: see shrink_relocate); the parts below it
 * stay.  Nothing is freed: until the checkpoint after it the journal still
 * names the old places.  On failure @n is unchanged.  O(bytes moved). */
static int relocate(struct tc_store *s, struct tc_node *n, uint64_t limit)
{
	struct tc_ver *v = n->ver, nv = { .cap = 1 };
	int r = 0;

	nv.ext = &nv.ext1;
	for (uint32_t i = 0; !r && i < v->next; i++) {
		struct tc_extent e = v->ext[i], to;
		if (e.off < limit) {
			struct tc_extent keep = { e.off, e.off + e.len <= limit
							 ? e.len : limit - e.off };
			r = ver_push(&nv, keep);
			e.off += keep.len;
			e.len -= keep.len;
		}
		while (!r && e.len) {
			r = tc_pool_alloc(&s->pool, e.len, &to);
			if (!r && to.off + to.len > limit)
				r = -ENOSPC; /* cannot be: all past it is taken */
			if (r)
				break;
			memcpy(s->pool.map + to.off, s->pool.map + e.off, to.len);
			r = ver_push(&nv, to);
			e.off += to.len;
			e.len -= to.len;
		}
	}
	if (r) {
		if (nv.ext != &nv.ext1)
			free(nv.ext);
		return r;
	}
	if (v->ext != &v->ext1)
		free(v->ext);
	v->ext1 = nv.ext1;
	v->ext = nv.ext == &nv.ext1 ? &v->ext1 : nv.ext;
	v->next = nv.next;
	v->cap = nv.cap;
	v->alloc = nv.alloc;
	return 0;
}

/*
 * The pool (still @cap bytes) keeps only [0, @limit): move what every
 * tensor holds past @limit into free space below it, which the evictions
 * made large enough.  The pool file is opened at @cap, space past @limit
 * is taken out of the free space, the bytes are copied and synced; the
 * checkpoint that follows (shrink) records the new places.  Until then
 * the journal names the old places, which nothing overwrote: the space
 * written was freed by evictions a checkpoint already made durable, and
 * no old place is freed.  A crash meanwhile leaves the store as it was,
 * less those evictions.  The pool is closed again.
 */
static int shrink_relocate(struct tc_store *s, uint64_t cap, uint64_t limit,
			   uint64_t valid)
{
	struct tc_extent e, *taken = NULL;
	size_t n = 0, room = 0;
	int r = tc_pool_open(&s->pool, s->dirfd, POOL_FILE, cap);
	if (r)
		return r;
	r = build_pool(s, valid < cap ? valid : cap);
	/* Take all the free space, then give back what lies below the
	 * limit: the rest stays taken until the pool is closed. */
	while (!r && tc_pool_alloc(&s->pool, s->pool.size, &e) == 0) {
		if (n == room) {
			struct tc_extent *p = realloc(taken, (room * 2 + 16) * sizeof(*p));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			taken = p;
			room = room * 2 + 16;
		}
		taken[n++] = e;
	}
	for (size_t i = 0; i < n; i++)
		if (taken[i].off < limit)
			tc_pool_free(&s->pool, taken[i].off,
				     taken[i].off + taken[i].len <= limit
					     ? taken[i].len : limit - taken[i].off);
	free(taken);
	const struct tc_node *top = &s->idx.root;
	for (struct tc_node *t = tc_node_next(top, top); t && !r;
	     t = tc_node_next(t, top))
		if (t->kind == TC_KIND_TENSOR && t->ver && holds_past(t, limit))
			r = relocate(s, t, limit);
	if (!r && fdatasync(s->pool.fd) < 0)
		r = -errno;
	tc_pool_close(&s->pool);
	return r;
}

/*
 * A capacity shrink from @cap to @limit at open, with the rules of any
 * other time: pinned entries stay (-EFBIG, nothing changed, when they
 * alone hold more than @limit), unpinned ones are evicted least recently
 * used first until the rest fits, each told to the open's eviction
 * listener; what lies past @limit is moved below it; a checkpoint records
 * it all with the new capacity.  *@valid: the pool bytes that hold data
 * afterwards.  Cost: O(nodes) plus copying what is moved.
 */
static int shrink(struct tc_store *s, uint64_t cap, uint64_t limit,
		  uint64_t *valid)
{
	uint64_t used = 0;
	int r;

	if (pinned_alloc(s) > limit)
		return -EFBIG;
	for (struct tc_node *e = s->idx.root.child_head; e; e = e->sib_next)
		used += entry_alloc(e);
	s->replaying = 1; /* no pool open: nothing to free into */
	while (used > limit) {
		struct tc_node *e = tc_lru_victim(&s->lru);
		if (!e)
			break;
		used -= entry_alloc(e);
		s->evictions++;
		s->evicted_bytes += subtree_bytes(e);
		if (s->evict_fn)
			s->evict_fn(s->evict_arg, TC_ROOT_ID, e->id, e->name);
		remove_subtree(s, e);
	}
	s->replaying = 0;
	if (used > limit)
		return -EFBIG; /* cannot be: the pinned entries fit */
	if (holds_past(&s->idx.root, limit)) {
		/* what moves goes into space the evictions freed: they are
		 * durable first, at the old capacity */
		r = checkpoint(s, cap);
		if (!r)
			r = shrink_relocate(s, cap, limit, *valid);
		if (r)
			return r;
		*valid = limit;
	}
	return checkpoint(s, limit);
}

static void store_free(struct tc_store *s)
{
	s->replaying = 1; /* the pool may be gone: no frees into it */
	tc_tail_free(&s->tail, put_ver_cb, s);
	tc_index_free(&s->idx, put_ver_cb, s);
	tc_buf_free(&s->touches);
	tc_journal_close(&s->jr);
	tc_pool_close(&s->pool);
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->drained);
	free(s);
}

/*
 * Open a store: lock, replay, size the pool, rebuild the free space.  With
 * @rdonly (tc_store_check) nothing on disk changes: the journal and pool
 * are only read, and damage found is dropped in memory alone.
 */
static int store_open(const char *dir, const struct tc_options *opt,
		      int rdonly, tc_check_fn fn, void *arg, tc_store **out)
{
	struct tc_store *s;
	uint64_t want = opt ? opt->capacity & ~(uint64_t)(TC_BLOCK - 1) : 0;
	uint64_t cap = 0, final, valid = 0;
	struct stat st;
	int r, is_new, vfd = -1;

	if (opt && opt->capacity && !want)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = s->lockfd = -1;
	s->pool.fd = -1;
	s->jr.fd = s->jr.data_fd = -1;
	s->sync_gen = 1;
	s->verify = opt ? opt->verify : TC_VERIFY_ON;
	s->journal_slack = opt && opt->journal_slack ? opt->journal_slack
						     : TC_DEFAULT_JOURNAL_SLACK;
	s->rdonly = rdonly;
	s->report = fn;
	s->report_arg = arg;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->drained, NULL);
	tc_index_init(&s->idx);
	s->idx.root.atime = s->idx.root.mtime = s->idx.root.ctime = now_ns();

	if (!rdonly && mkdir(dir, 0700) < 0 && errno != EEXIST)
		goto fail_errno;
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		goto fail_errno;
	s->lockfd = openat(s->dirfd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC,
			   0600);
	if (s->lockfd < 0)
		goto fail_errno;
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}

	/* A store is new until its journal exists: the pool is made first,
	 * so a failed creation leaves no journal that points at nothing. */
	is_new = faccessat(s->dirfd, TC_JOURNAL_FILE, F_OK, 0) < 0;
	if (!is_new) {
		tc_index_reserve(&s->idx, tc_journal_hint(s->dirfd));
		s->replaying = 1;
		r = (rdonly ? tc_journal_open_rdonly : tc_journal_open)(
			&s->jr, s->dirfd, &cap, apply_record, s,
			&s->journal_dropped);
		s->replaying = 0;
		s->replay_dir = NULL;
		if (r)
			goto fail;
		/* A pool file that is missing or was cut short: the tensors
		 * whose bytes it lost are dropped below, the rest served. */
		if (fstatat(s->dirfd, POOL_FILE, &st, 0) == 0)
			valid = (uint64_t)st.st_size & ~(uint64_t)(TC_BLOCK - 1);
		if (valid > cap)
			valid = cap;
		/* What a crash may not have kept whole is checked now, before
		 * anything is rewritten (tail.c). */
		count_drops(s);
		vfd = openat(s->dirfd, POOL_FILE, O_RDONLY | O_CLOEXEC);
		s->replaying = 1;
		r = settle_tail(s, vfd);
		s->replaying = 0;
		if (r)
			goto fail;
	} else if (rdonly) {
		r = -ENOENT;
		goto fail;
	}
	if (rdonly) {
		if (vfd >= 0)
			close(vfd);
		vfd = -1;
		r = tc_pool_open_rdonly(&s->pool, s->dirfd, POOL_FILE);
		if (r == -ENOENT)
			r = 0; /* an empty pool: every tensor is dropped */
		if (!r)
			r = build_pool(s, valid);
		if (r)
			goto fail;
		*out = s;
		return 0;
	}
	final = want ? want : is_new ? TC_DEFAULT_CAPACITY : cap;
	if (!is_new && final < cap) {
		/* Shrink: record the evictions, the moves and the new
		 * capacity before the pool file loses its tail. */
		s->evict_fn = opt ? opt->on_evict : NULL;
		s->evict_arg = opt ? opt->evict_arg : NULL;
		s->jr.data_fd = vfd; /* synced before a checkpoint names it */
		r = shrink(s, cap, final, &valid);
		s->jr.data_fd = -1;
		s->evict_fn = NULL;
		if (r)
			goto fail;
	}
	if (vfd >= 0)
		close(vfd);
	vfd = -1;
	r = tc_pool_open(&s->pool, s->dirfd, POOL_FILE, final);
	if (r) {
		if (is_new)
			unlinkat(s->dirfd, POOL_FILE, 0);
		goto fail;
	}
	if (is_new) {
		/* the pool's size is durable before a journal names it (the
		 * journal's creation fsyncs the directory for both files) */
		cap = valid = final;
		r = fdatasync(s->pool.fd) < 0 ? -errno : 0;
		if (!r)
			r = tc_journal_open(&s->jr, s->dirfd, &cap, apply_record,
					    s, &s->journal_dropped);
		if (r)
			goto fail;
	}
	s->jr.data_fd = s->pool.fd;
	if (!is_new && final > cap) {
		r = checkpoint(s, final);
		if (r)
			goto fail;
	}
	r = build_pool(s, valid < final ? valid : final);
	if (r)
		goto fail;
	/* Damage dropped at open stays dropped: rewrite the journal without
	 * it (otherwise a regrown pool would bring tensors back as zeros);
	 * so do the versions a crash did not keep. */
	if (s->journal_dropped || s->nodes_dropped || s->unsynced_dropped ||
	    s->fallbacks) {
		r = checkpoint(s, s->jr.capacity);
		if (r)
			goto fail;
	}
	*out = s;
	return 0;
fail_errno:
	r = -errno;
fail:
	if (vfd >= 0)
		close(vfd);
	store_free(s);
	return r;
}

int tc_store_open(const char *dir, const struct tc_options *opt,
		  tc_store **out)
{
	return store_open(dir, opt, 0, NULL, NULL, out);
}

int tc_store_close(tc_store *s)
{
	int r;
	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	r = s->rdonly ? 0 : checkpoint(s, s->jr.capacity);
	unlock(s);
	store_free(s);
	return r;
}

int tc_store_sync(tc_store *s)
{
	int r;
	pthread_mutex_lock(&s->lock);
	r = s->rdonly ? 0 : sync_locked(s, 1);
	unlock(s);
	return r;
}

void tc_store_tick(tc_store *s)
{
	pthread_mutex_lock(&s->lock);
	unlock(s); /* writes the touches once they are due */
}

/* The last access of @a or @b, the older (@newest 0) or the newer; either
 * may be NULL (an empty list), 0 when both are. */
static int64_t access_of(const struct tc_node *a, const struct tc_node *b,
			 int newest)
{
	if (!a || !b)
		return a ? a->last_access : b ? b->last_access : 0;
	return (a->last_access < b->last_access) == !newest ? a->last_access
							   : b->last_access;
}

void tc_store_stats(tc_store *s, struct tc_stats *st)
{
	pthread_mutex_lock(&s->lock);
	*st = (struct tc_stats){
		.capacity = s->pool.size,
		.used = s->pool.size - s->pool.free - s->pool.held_bytes,
		.live_bytes = s->live_bytes,
		.entries = s->idx.entries,
		.tensors = s->idx.tensors,
		.groups = s->idx.groups,
		.hits = s->hits,
		.misses = s->misses,
		.evictions = s->evictions,
		.evicted_bytes = s->evicted_bytes,
		.journal_bytes = s->jr.size,
		.journal_dropped = s->journal_dropped,
		.nodes_dropped = s->nodes_dropped,
		.journal_torn = s->journal_torn,
		.unsynced_dropped = s->unsynced_dropped,
		.fallbacks = s->fallbacks,
		.checkpoints = s->checkpoints,
		.pinned = s->lru.npinned,
		/* the oldest / newest of the two lists' ends */
		.oldest_access_ns = access_of(s->lru.head, s->lru.phead, 0),
		.newest_access_ns = access_of(s->lru.tail, s->lru.ptail, 1),
	};
	unlock(s);
}

int tc_store_journal_error(tc_store *s)
{
	pthread_mutex_lock(&s->lock);
	int r = s->journal_err;
	pthread_mutex_unlock(&s->lock);
	return r;
}

void tc_store_on_evict(tc_store *s, tc_evict_fn fn, void *arg)
{
	pthread_mutex_lock(&s->lock);
	s->evict_fn = fn;
	s->evict_arg = arg;
	unlock(s);
}

/* ---- names and attributes --------------------------------------------------- */

/*
 * A tensor's size while a writer has a pending version is the larger of
 * the committed and the pending size: readers that size their reads with
 * stat then read their whole committed version (a shorter read ends at
 * its end), and writers appending still find the end of what they wrote.
 */
static void fill_stat(const struct tc_node *n, struct tc_stat *st)
{
	const struct tc_ver *v = n->kind == TC_KIND_TENSOR
					 ? (pending_of(n) ? pending_of(n) : n->ver)
					 : NULL;
	uint64_t size = v ? v->size : 0;
	/* One size per file in the kernel: while a reader holds the
	 * committed version, a shorter pending one must not cut its reads
	 * short; with writers alone the pending size is the file's. */
	if (v && n->ver && n->ver->size > size && n->refs > writers_of(n))
		size = n->ver->size;
	st->id = n->id;
	st->parent = n->parent ? n->parent->id : 0;
	st->kind = n->kind;
	st->mode = (tc_node_isdir(n) ? S_IFDIR : S_IFREG) | (n->mode & 07777);
	st->uid = n->uid;
	st->gid = n->gid;
	st->nlink = n->dead ? 0 : tc_node_isdir(n) ? 2 + n->nsubdirs : 1;
	st->size = size;
	st->blocks = v ? v->alloc / 512 : 0;
	st->version = n->ver ? n->ver->number : 0;
	st->writers = writers_of(n);
	st->atime = ts_of(n->atime);
	st->mtime = ts_of(n->mtime);
	st->ctime = ts_of(n->ctime);
	snprintf(st->name, sizeof(st->name), "%s", n->kind == TC_KIND_ROOT ? "" : n->name);
}

/* The directory @id, or an error. */
static int get_dir(struct tc_store *s, uint64_t id, struct tc_node **out)
{
	struct tc_node *d = tc_index_get(&s->idx, id);
	if (!d)
		return -ENOENT;
	if (!tc_node_isdir(d))
		return -ENOTDIR;
	*out = d;
	return 0;
}

int tc_lookup(tc_store *s, uint64_t parent, const char *name,
	      struct tc_stat *st)
{
	struct tc_node *d, *n = NULL;
	int r = check_name(name);
	if (r)
		return r;
	pthread_mutex_lock(&s->lock);
	r = get_dir(s, parent, &d);
	if (!r) {
		n = tc_index_find(&s->idx, d, name);
		if (d->kind == TC_KIND_ROOT && !n)
			s->misses++;
		if (n)
			fill_stat(n, st);
		else
			r = -ENOENT;
	}
	unlock(s);
	return r;
}

int tc_getattr(tc_store *s, uint64_t id, struct tc_stat *st)
{
	int r = 0;
	pthread_mutex_lock(&s->lock);
	struct tc_node *n = tc_index_get(&s->idx, id);
	if (n)
		fill_stat(n, st);
	else
		r = -ENOENT;
	unlock(s);
	return r;
}

int tc_mkdir(tc_store *s, uint64_t parent, const char *name, uint32_t mode,
	     uint32_t uid, uint32_t gid, struct tc_stat *st)
{
	struct tc_node *d, *n = NULL;
	int r;

	pthread_mutex_lock(&s->lock);
	r = get_dir(s, parent, &d);
	if (r)
		goto out;
	r = check_new_name(d, name);
	if (r)
		goto out;
	if (tc_index_find(&s->idx, d, name)) {
		r = -EEXIST;
		goto out;
	}
	n = tc_node_new(s->idx.next_id, d->kind == TC_KIND_ROOT ? TC_KIND_ENTRY
								: TC_KIND_GROUP,
			name);
	if (!n) {
		r = -ENOMEM;
		goto out;
	}
	n->mode = mode & 07777;
	n->uid = uid;
	n->gid = gid;
	n->atime = n->mtime = n->ctime = now_ns();
	n->created = n->last_access = n->mtime;
	r = tc_index_add(&s->idx, d, n);
	if (r) {
		tc_node_free(n);
		goto out;
	}
	r = journal_node(s, n);
	if (r) {
		tc_index_remove(&s->idx, n);
		tc_node_free(n);
		goto out;
	}
	n->journaled = 1;
	if (n->kind == TC_KIND_ENTRY)
		tc_lru_add(&s->lru, n);
	d->mtime = d->ctime = n->mtime;
	fill_stat(n, st);
out:
	unlock(s);
	return r;
}

/* Journal the removal of @n (if it was ever journaled), then remove it. */
static int remove_node(struct tc_store *s, struct tc_node *n)
{
	struct tc_node *d = n->parent;
	if (n->journaled) {
		struct tc_buf b = { 0 };
		tc_rec_del(&b, n->id);
		int r = append(s, &b, NULL);
		tc_buf_free(&b);
		if (r)
			return r;
	}
	d->mtime = d->ctime = now_ns();
	remove_subtree(s, n);
	return 0;
}

int tc_rmdir(tc_store *s, uint64_t parent, const char *name)
{
	struct tc_node *d, *n;
	int r = check_name(name);
	if (r)
		return r;
	pthread_mutex_lock(&s->lock);
	r = get_dir(s, parent, &d);
	if (r)
		goto out;
	n = tc_index_find(&s->idx, d, name);
	if (!n)
		r = -ENOENT;
	else if (!tc_node_isdir(n))
		r = -ENOTDIR;
	else if (n->nchildren)
		r = -ENOTEMPTY;
	else
		r = remove_node(s, n);
out:
	unlock(s);
	return r;
}

int tc_unlink(tc_store *s, uint64_t parent, const char *name)
{
	struct tc_node *d, *n;
	int r = check_name(name);
	if (r)
		return r;
	pthread_mutex_lock(&s->lock);
	r = get_dir(s, parent, &d);
	if (r)
		goto out;
	n = tc_index_find(&s->idx, d, name);
	if (!n)
		r = -ENOENT;
	else if (tc_node_isdir(n))
		r = -EISDIR;
	else
		r = remove_node(s, n);
out:
	unlock(s);
	return r;
}

int tc_rename(tc_store *s, uint64_t parent, const char *name,
	      uint64_t newparent, const char *newname, unsigned flags)
{
	struct tc_node *d, *nd, *n, *dst, tmp;
	struct tc_buf b = { 0 };
	int r, kind;
	int64_t now = now_ns();

	if (flags & TC_RENAME_EXCHANGE)
		return -EINVAL;
	if ((r = check_name(name)) || (r = check_name(newname)))
		return r;
	pthread_mutex_lock(&s->lock);
	if ((r = get_dir(s, parent, &d)) || (r = get_dir(s, newparent, &nd)))
		goto out;
	n = tc_index_find(&s->idx, d, name);
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	r = check_new_name(nd, newname);
	if (r)
		goto out;
	if (!tc_node_isdir(n) && nd->kind == TC_KIND_ROOT) {
		r = -EPERM;
		goto out;
	}
	if (tc_node_isdir(n))
		for (struct tc_node *a = nd; a; a = a->parent)
			if (a == n) {
				r = -EINVAL;
				goto out;
			}
	dst = tc_index_find(&s->idx, nd, newname);
	if (dst == n)
		goto out;
	if (dst) {
		if (flags & TC_RENAME_NOREPLACE)
			r = -EEXIST;
		else if (tc_node_isdir(n) && !tc_node_isdir(dst))
			r = -ENOTDIR;
		else if (!tc_node_isdir(n) && tc_node_isdir(dst))
			r = -EISDIR;
		else if (tc_node_isdir(dst) && dst->nchildren)
			r = -ENOTEMPTY;
		if (r)
			goto out;
	}
	kind = !tc_node_isdir(n) ? TC_KIND_TENSOR
	       : nd->kind == TC_KIND_ROOT ? TC_KIND_ENTRY : TC_KIND_GROUP;

	/* One record: the replaced target goes, the node moves. */
	if (dst && dst->journaled)
		tc_rec_del(&b, dst->id);
	tc_node_copy(&tmp, n);
	tmp.parent = nd;
	tmp.name = (char *)newname;
	tmp.kind = (uint8_t)kind;
	tmp.ctime = now;
	if (kind == TC_KIND_ENTRY && n->kind != TC_KIND_ENTRY)
		tmp.created = tmp.last_access = now;
	if (kind != TC_KIND_TENSOR || n->ver)
		tc_rec_node(&b, &tmp);
	if (b.len || b.err) {
		r = append(s, &b, NULL);
		if (r)
			goto out;
	}
	if (dst)
		remove_subtree(s, dst);
	uint64_t o = opens_of(n);
	opens_add(n->parent, -(int64_t)o);
	r = tc_index_move(&s->idx, n, nd, newname);
	if (r) {
		opens_add(n->parent, (int64_t)o);
		goto out;
	}
	opens_add(nd, (int64_t)o);
	if (kind != n->kind) {
		if (n->kind == TC_KIND_ENTRY)
			tc_lru_remove(&s->lru, n);
		tc_index_set_kind(&s->idx, n, kind);
		if (kind == TC_KIND_ENTRY) {
			n->created = n->last_access = now;
			tc_lru_add(&s->lru, n);
		}
	}
	if (n->kind != TC_KIND_TENSOR || n->ver)
		n->journaled = 1;
	n->ctime = now;
	d->mtime = d->ctime = nd->mtime = nd->ctime = now;
out:
	tc_buf_free(&b);
	unlock(s);
	return r;
}

int tc_pin(tc_store *s, uint64_t id, int pinned)
{
	int r;
	pthread_mutex_lock(&s->lock);
	struct tc_node *n = tc_index_get(&s->idx, id);
	if (!n || n->kind != TC_KIND_ENTRY) {
		r = n ? -EINVAL : -ENOENT;
		goto out;
	}
	struct tc_node tmp;
	tc_node_copy(&tmp, n);
	pin_bits(&tmp, pinned);
	tmp.ctime = now_ns();
	r = journal_node(s, &tmp);
	if (!r) {
		pin_entry(s, n, pinned);
		n->ctime = tmp.ctime;
	}
out:
	unlock(s);
	return r;
}

int tc_list(tc_store *s, uint64_t dir, uint64_t **ids, size_t *n)
{
	struct tc_node *d;
	uint64_t *a;
	size_t k = 0;
	int r;

	pthread_mutex_lock(&s->lock);
	r = get_dir(s, dir, &d);
	if (r)
		goto out;
	a = malloc((d->nchildren ? d->nchildren : 1) * sizeof(*a));
	if (!a) {
		r = -ENOMEM;
		goto out;
	}
	for (struct tc_node *c = d->child_head; c; c = c->sib_next)
		a[k++] = c->id;
	*ids = a;
	*n = k;
out:
	unlock(s);
	return r;
}

/* ---- tensor versions: commit -------------------------------------------------- */

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

/* Give @v this dtype and shape if they describe exactly its bytes after
 * @data_offset (overflow-safe).  1 when set, 0 when they do not fit (or on
 * ENOMEM), and @v keeps what it had. */
static int ver_set_type(struct tc_ver *v, int dtype, int ndim,
			const uint64_t *shape, uint64_t data_offset)
{
	uint64_t bytes = tc_dtype_size(dtype);
	if (!bytes || data_offset > v->size)
		return 0;
	for (int i = 0; i < ndim; i++)
		if (__builtin_mul_overflow(bytes, shape[i], &bytes))
			return 0;
	if (bytes != v->size - data_offset || ver_set_shape(v, ndim, shape))
		return 0;
	v->dtype = dtype;
	v->data_offset = data_offset;
	return 1;
}

/* dtype/shape for @v: from its .npy header, else kept from @old when the
 * size still fits them, else raw uint8 [size]. */
static void ver_type(struct tc_store *s, struct tc_node *n, struct tc_ver *v,
		     const struct tc_ver *old)
{
	if (name_is_npy(n->name) && v->size) {
		size_t len = v->size < NPY_PEEK ? (size_t)v->size : NPY_PEEK;
		struct peek_ctx c = { malloc(len), 0 };
		struct tc_npy_info info;
		if (c.buf) {
			ver_each(s, v, 0, len, peek_fn, &c);
			int r = tc_npy_parse(c.buf, len, &info);
			free(c.buf);
			if (!r && ver_set_type(v, info.dtype, info.ndim, info.shape,
					       info.data_offset))
				return;
		}
	}
	if (old && old->ndim > 0 && old->dtype != TC_DT_UINT8 &&
	    ver_set_type(v, old->dtype, old->ndim, tc_ver_shape(old),
			 old->data_offset))
		return;
	ver_default_type(v);
}

/* Commit the pending version (dirty, no writes in flight).  Lock held. */
static int commit_locked(struct tc_store *s, struct tc_node *n)
{
	struct tc_wr *w = n->wr;
	struct tc_ver *v = w->pending, *old = n->ver;
	uint64_t seq;
	int r;

	assert(v && v->inflight == 0);
	if (w->hs && w->hashed == v->size) {
		v->xxh3 = XXH3_64bits_digest(w->hs);
	} else {
		r = ver_hash(s, v, v->size, &v->xxh3);
		if (r)
			return r;
	}
	ver_trim(s, v);
	ver_type(s, n, v, old);
	r = journal_ver(s, n, v, &seq);
	if (r)
		return r;
	wr_stop_hash(w);
	v->seq = seq;
	v->committed = 1;
	v->verified = TC_VERIFIED_GOOD;
	v->dirty = 0;
	v->number = ++s->ver_counter;
	n->ver = v;          /* the pending reference moves to ver */
	w->pending = NULL;
	wr_idle(s, n);
	n->journaled = 1;
	s->live_bytes += v->size;
	if (old) {
		s->live_bytes -= old->size;
		ver_put(s, old);
	}
	return 0;
}

/* Wait until no write copies into the pending version.  It may be
 * committed or replaced meanwhile: callers look at n->wr again after. */
static void wait_drained(struct tc_store *s, struct tc_node *n)
{
	struct tc_ver *v;
	while ((v = pending_of(n)) && v->inflight) {
		v->refs++; /* keep it alive across the wait */
		pthread_cond_wait(&s->drained, &s->lock);
		ver_put(s, v);
	}
}

/* Resize the pending version of @n (creating it by copy if needed). */
static int resize_pending(struct tc_store *s, struct tc_node *n, uint64_t size)
{
	struct tc_wr *w;
	struct tc_ver *v;
	int r;

	wait_drained(s, n);
	if (!(w = wr_get(n)))
		return -ENOMEM;
	v = w->pending;
	if (!v) {
		r = ver_clone(s, n->ver, size, &v);
		if (r) {
			wr_idle(s, n);
			return r;
		}
		wr_set_pending(w, v);
		return 0;
	}
	if (size > v->size) {
		r = ver_grow(s, v, size);
		if (r)
			return r;
		ver_zero(s, v, v->size, size);
	}
	if (size < w->hashed || size == 0)
		wr_stop_hash(w);
	if (size == 0)
		wr_start_hash(w);
	v->size = size;
	v->dirty = 1;
	return 0;
}

int tc_setattr(tc_store *s, uint64_t id, const struct tc_setattr *sa,
	       tc_file *fh, struct tc_stat *st)
{
	struct tc_node *n, tmp;
	int r = 0;
	int64_t now = now_ns();

	pthread_mutex_lock(&s->lock);
	n = tc_index_get(&s->idx, id);
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	if (n->kind == TC_KIND_ROOT) {
		r = -EPERM;
		goto out;
	}
	if ((sa->valid & TC_SET_SIZE) && tc_node_isdir(n)) {
		r = -EISDIR;
		goto out;
	}
	if (sa->valid & TC_SET_SIZE) {
		if (sa->size > s->pool.size) {
			r = -EFBIG;
			goto out;
		}
		if (n->dead && !pending_of(n) && !writers_of(n)) {
			r = -ENOENT; /* removed, open only for reading */
			goto out;
		}
		int keep_pending = pending_of(n) || writers_of(n) ||
				   (fh && (fh->flags & TC_O_WRITE));
		if (keep_pending || !n->ver || n->ver->size != sa->size) {
			opens_add(n->parent, 1); /* not evicted while copying */
			r = resize_pending(s, n, sa->size);
			/* The change belongs to the handle given, else to the
			 * newest writer: open(O_TRUNC) reaches a file system
			 * as an open and then a truncate by path. */
			tc_file *owner = fh && (fh->flags & TC_O_WRITE) ? fh
				       : n->wr ? n->wr->last_writer : NULL;
			if (!r && owner)
				owner->dirty = 1;
			if (!r && !keep_pending && !n->dead)
				r = commit_locked(s, n);
			opens_add(n->parent, -1);
			if (r)
				goto out;
		}
		n->mtime = now;
	}
	tc_node_copy(&tmp, n);
	if (sa->valid & TC_SET_MODE) {
		tmp.mode = sa->mode & 07777;
		if (n->kind == TC_KIND_ENTRY)
			tmp.pinned = tmp.mode & S_ISVTX ? 1 : 0;
	}
	if (sa->valid & TC_SET_UID)
		tmp.uid = sa->uid;
	if (sa->valid & TC_SET_GID)
		tmp.gid = sa->gid;
	if (sa->valid & TC_SET_ATIME)
		tmp.atime = ns_of(sa->atime);
	if (sa->valid & TC_SET_MTIME)
		tmp.mtime = ns_of(sa->mtime);
	tmp.ctime = sa->valid & TC_SET_CTIME ? ns_of(sa->ctime) : now;
	if (n->journaled && (n->kind != TC_KIND_TENSOR || n->ver)) {
		r = journal_node(s, &tmp);
		if (r)
			goto out;
	}
	n->mode = tmp.mode;
	if (n->kind == TC_KIND_ENTRY)
		tc_lru_set_pinned(&s->lru, n, tmp.pinned);
	n->uid = tmp.uid;
	n->gid = tmp.gid;
	n->atime = tmp.atime;
	n->mtime = tmp.mtime;
	n->ctime = tmp.ctime;
	fill_stat(n, st);
out:
	unlock(s);
	return r;
}

/* ---- tensor files ----------------------------------------------------------- */

static int file_new(struct tc_node *n, unsigned flags, tc_file **fh)
{
	tc_file *f = calloc(1, sizeof(*f));
	if (!f || ((flags & TC_O_WRITE) && !wr_get(n))) {
		free(f);
		return -ENOMEM;
	}
	f->node = n;
	f->flags = flags;
	n->refs++;
	if (flags & TC_O_WRITE) {
		n->wr->writers++;
		n->wr->last_writer = f;
		if ((f->before = n->ver))
			n->ver->refs++;
	}
	opens_add(n->parent, 1);
	*fh = f;
	return 0;
}

int tc_create(tc_store *s, uint64_t parent, const char *name, uint32_t mode,
	      uint32_t uid, uint32_t gid, tc_file **fh, struct tc_stat *st)
{
	struct tc_node *d, *n = NULL;
	int r;

	pthread_mutex_lock(&s->lock);
	r = get_dir(s, parent, &d);
	if (r)
		goto out;
	if (d->kind == TC_KIND_ROOT) {
		r = -EPERM;
		goto out;
	}
	r = check_new_name(d, name);
	if (r)
		goto out;
	if (tc_index_find(&s->idx, d, name)) {
		r = -EEXIST;
		goto out;
	}
	n = tc_node_new(s->idx.next_id, TC_KIND_TENSOR, name);
	if (!n || !wr_get(n) || !(n->wr->pending = ver_new()) ||
	    wr_start_hash(n->wr)) {
		r = -ENOMEM;
		goto fail;
	}
	n->wr->pending->dirty = 1;
	n->mode = mode & 07777;
	n->uid = uid;
	n->gid = gid;
	n->atime = n->mtime = n->ctime = now_ns();
	r = tc_index_add(&s->idx, d, n);
	if (r)
		goto fail;
	r = file_new(n, TC_O_WRITE, fh);
	if (r) {
		tc_index_remove(&s->idx, n);
		goto fail;
	}
	(*fh)->dirty = 1;
	d->mtime = d->ctime = n->mtime;
	touch(s, n);
	fill_stat(n, st);
	goto out;
fail:
	if (n)
		wr_free(s, n);
	tc_node_free(n);
out:
	unlock(s);
	return r;
}

int tc_open(tc_store *s, uint64_t id, unsigned flags, tc_file **fh)
{
	struct tc_node *n;
	struct tc_ver *v = NULL;
	tc_file *f = NULL;
	int r;

	pthread_mutex_lock(&s->lock);
	n = tc_index_get(&s->idx, id);
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	if (tc_node_isdir(n)) {
		r = -EISDIR;
		goto out;
	}
	r = file_new(n, flags & (TC_O_WRITE | TC_O_TRUNC), &f);
	if (r)
		goto out;
	if (flags & TC_O_WRITE) {
		if (flags & TC_O_TRUNC) {
			r = resize_pending(s, n, 0);
			if (r)
				goto fail;
			f->dirty = 1;
		}
	} else if ((v = n->ver)) {
		v->refs++;
		f->ver = v;
		s->hits++;
		if (s->verify == TC_VERIFY_ON && v->verified == TC_UNVERIFIED) {
			uint64_t h;
			/* Committed bytes are immutable: hash unlocked. */
			unlock(s);
			r = ver_hash(s, v, v->size, &h);
			pthread_mutex_lock(&s->lock);
			if (r)
				goto fail;
			v->verified = h == v->xxh3 ? TC_VERIFIED_GOOD
						   : TC_VERIFIED_DAMAGED;
		}
		if (v->verified == TC_VERIFIED_DAMAGED) {
			r = -EIO;
			goto fail;
		}
	}
	if (!n->dead)
		touch(s, n);
	*fh = f;
	goto out;
fail:
	unlock(s);
	tc_file_close(s, f);
	return r;
out:
	unlock(s);
	return r;
}

/* The version a handle reads.  Lock held for write handles. */
static struct tc_ver *file_ver(tc_file *fh)
{
	if (!(fh->flags & TC_O_WRITE))
		return fh->ver;
	struct tc_ver *p = pending_of(fh->node);
	return p ? p : fh->node->ver;
}

int tc_file_map(tc_store *s, tc_file *fh, uint64_t off, size_t size,
		struct tc_span *sp, int max, int *n, size_t *total)
{
	int w = fh->flags & TC_O_WRITE, r = 0;
	struct tc_ver *v;

	if (w)
		pthread_mutex_lock(&s->lock);
	v = file_ver(fh);
	if (!v || off >= v->size) {
		*n = 0;
		*total = 0;
		goto out;
	}
	if (size > v->size - off)
		size = (size_t)(v->size - off);
	r = ver_spans(s, v, off, size, sp, max);
	if (r >= 0) {
		*n = r;
		*total = size;
		r = 0;
	}
out:
	if (w)
		unlock(s);
	return r;
}

ssize_t tc_file_pread(tc_store *s, tc_file *fh, void *buf, size_t size,
		      uint64_t off)
{
	struct tc_span sp[16];
	size_t done = 0;
	while (done < size) {
		int n;
		size_t total;
		int r = tc_file_map(s, fh, off + done, size - done, sp, 16, &n, &total);
		if (r == -ENOBUFS) {
			r = tc_file_map(s, fh, off + done, sp[0].len ? sp[0].len : TC_BLOCK,
					sp, 16, &n, &total);
		}
		if (r)
			return done ? (ssize_t)done : r;
		if (!total)
			break;
		for (int i = 0; i < n; i++) {
			ssize_t got = pread(sp[i].fd, (uint8_t *)buf + done, sp[i].len,
					    (off_t)sp[i].fd_off);
			if (got < 0)
				return done ? (ssize_t)done : -errno;
			done += (size_t)got;
			if ((size_t)got < sp[i].len)
				return (ssize_t)done;
		}
	}
	return (ssize_t)done;
}

/* A write or reservation through @fh failed with @err: the pending
 * version must not be committed, and @fh's next commit reports it.  Lock
 * held. */
static void write_failed(struct tc_node *n, tc_file *fh, int err)
{
	if (!n->wr->failed)
		n->wr->failed = -err;
	fh->dirty = 1;
}

/* Make @v (NULL: none) the committed version of @n again, journaled: what
 * a failed writer found at its open.  Lock held. */
static int restore_before(struct tc_store *s, struct tc_node *n,
			  struct tc_ver *v)
{
	struct tc_ver *old = n->ver;
	uint64_t seq;
	int r;

	if (!v)
		return remove_node(s, n);
	r = journal_ver(s, n, v, &seq);
	if (r)
		return r;
	v->refs++;
	v->seq = seq;
	n->ver = v;
	n->journaled = 1;
	s->live_bytes += v->size - (old ? old->size : 0);
	ver_put(s, old);
	return 0;
}

/* Drop the pending version of @n after a failed write through @fh; its
 * error.  What @fh found at its open comes back if a commit through it
 * replaced that meanwhile; a tensor never committed loses its name at once
 * (its handles keep it until they close), so that it is absent as soon as
 * close() returns.  Lock held (released while writes in flight drain). */
static int drop_failed(struct tc_store *s, struct tc_node *n, tc_file *fh)
{
	int err = -n->wr->failed, r = 0;
	struct tc_wr *w;

	wait_drained(s, n);
	if ((w = n->wr)) {
		ver_put(s, w->pending);
		w->pending = NULL;
		wr_stop_hash(w);
		w->failed = 0;
	}
	if (!n->dead && (n->ver != fh->before || !n->ver))
		r = restore_before(s, n, fh->before);
	return r ? r : err;
}

ssize_t tc_file_write(tc_store *s, tc_file *fh, const void *buf, size_t size,
		      uint64_t off)
{
	struct tc_span stack[8], *sp = stack;
	struct tc_node *n = fh->node;
	struct tc_wr *wr;
	struct tc_ver *v;
	uint64_t end;
	int nsp, r = 0;

	if (!(fh->flags & TC_O_WRITE))
		return -EBADF;
	if (__builtin_add_overflow(off, (uint64_t)size, &end) || end > INT64_MAX)
		return -EFBIG;
	if (!size)
		return 0;
	pthread_mutex_lock(&s->lock);
	wr = n->wr; /* a write handle keeps it */
	if (!wr->pending) {
		r = ver_clone(s, n->ver, n->ver ? n->ver->size : 0, &v);
		if (r)
			goto out;
		wr_set_pending(wr, v);
	}
	v = wr->pending;
	if (end > v->alloc) {
		r = ver_grow(s, v, end);
		if (r)
			goto out;
	}
	if (wr->hs && (v->inflight || off < wr->hashed))
		wr_stop_hash(wr);
	if (off > v->size)
		ver_zero(s, v, v->size, off);
	if (end > v->size)
		v->size = end;
	v->dirty = 1;
	fh->dirty = 1;
	n->mtime = n->ctime = now_ns();
	nsp = ver_spans(s, v, off, size, sp, 8);
	if (nsp == -ENOBUFS) {
		sp = malloc(sizeof(*sp) * (v->next + 1));
		if (!sp) {
			r = -ENOMEM;
			goto out;
		}
		nsp = ver_spans(s, v, off, size, sp, (int)v->next + 1);
	}
	v->inflight++;
	v->refs++;
	unlock(s);

	size_t done = 0;
	for (int i = 0; i < nsp && !r; i++) {
		size_t at = 0;
		while (at < sp[i].len) {
			ssize_t w = pwrite(sp[i].fd, (const uint8_t *)buf + done + at,
					   sp[i].len - at, (off_t)(sp[i].fd_off + at));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				r = w < 0 ? -errno : -EIO;
				break;
			}
			at += (size_t)w;
		}
		done += sp[i].len;
	}

	pthread_mutex_lock(&s->lock);
	assert(wr->pending == v); /* inflight: neither committed nor dropped */
	if (!r && wr->hs && wr->hashed == off) {
		tc_hash_update(wr->hs, buf, size);
		wr->hashed = end;
	} else if (r) {
		wr_stop_hash(wr);
	}
	if (--v->inflight == 0)
		pthread_cond_broadcast(&s->drained);
	ver_put(s, v);
out:
	if (r)
		write_failed(n, fh, r);
	unlock(s);
	if (sp != stack)
		free(sp);
	return r ? r : (ssize_t)size;
}

/* Grow the pending version of @n (made by copy if there is none) to hold
 * @end bytes, zeros past its size.  Never shrinks.  Lock held. */
static int reserve_locked(struct tc_store *s, struct tc_node *n, uint64_t end)
{
	struct tc_wr *w;
	struct tc_ver *v;
	int r;

	wait_drained(s, n);
	w = n->wr; /* a write handle keeps it */
	if (!(v = w->pending)) {
		uint64_t size = n->ver && n->ver->size > end ? n->ver->size : end;
		r = ver_clone(s, n->ver, size, &v);
		if (!r)
			wr_set_pending(w, v);
		return r;
	}
	if (end > v->alloc) {
		r = ver_grow(s, v, end);
		if (r)
			return r;
	}
	if (end > v->size) {
		ver_zero(s, v, v->size, end);
		v->size = end;
	}
	v->dirty = 1;
	return 0;
}

int tc_file_reserve(tc_store *s, tc_file *fh, uint64_t off, uint64_t len)
{
	struct tc_node *n = fh->node;
	uint64_t end;
	int r;

	if (!(fh->flags & TC_O_WRITE))
		return -EBADF;
	if (__builtin_add_overflow(off, len, &end) || end > INT64_MAX)
		return -EFBIG;
	pthread_mutex_lock(&s->lock);
	r = end > s->pool.size ? -EFBIG : reserve_locked(s, n, end);
	if (r) {
		write_failed(n, fh, r);
	} else {
		fh->dirty = 1;
		n->mtime = n->ctime = now_ns();
	}
	unlock(s);
	return r;
}

int tc_file_commit(tc_store *s, tc_file *fh)
{
	struct tc_node *n = fh->node;
	int r = 0;

	if (!(fh->flags & TC_O_WRITE))
		return 0;
	pthread_mutex_lock(&s->lock);
	/* A handle commits only what it changed since its own last commit: a
	 * late release of an old handle must not commit a rewrite that
	 * another handle has only begun. */
	if (fh->dirty && n->wr && n->wr->failed) {
		r = drop_failed(s, n, fh);
		fh->dirty = 0;
	} else if (fh->dirty && pending_of(n) && pending_of(n)->dirty &&
		   !n->dead) {
		wait_drained(s, n);
		if (pending_of(n) && pending_of(n)->dirty)
			r = commit_locked(s, n);
		if (r && n->wr) {
			/* the commit failed (the journal could not take its
			 * record): as a failed write, so a tensor that never
			 * was committed is absent once close() returns */
			write_failed(n, fh, r);
			r = drop_failed(s, n, fh);
			fh->dirty = 0;
		}
	}
	if (!r)
		fh->dirty = 0;
	unlock(s);
	return r;
}

int tc_file_sync(tc_store *s, tc_file *fh)
{
	int r = tc_file_commit(s, fh);
	if (!r)
		r = tc_store_sync(s);
	return r;
}

void tc_file_close(tc_store *s, tc_file *fh)
{
	struct tc_node *n;
	if (!fh)
		return;
	n = fh->node;
	pthread_mutex_lock(&s->lock);
	if (fh->flags & TC_O_WRITE) {
		struct tc_wr *w = n->wr;
		if (w->last_writer == fh)
			w->last_writer = NULL;
		assert(w->writers > 0);
		if (--w->writers == 0 && w->pending) {
			wait_drained(s, n); /* unlocks: look at n->wr again */
			if ((w = n->wr)) {
				ver_put(s, w->pending); /* uncommitted: dropped */
				w->pending = NULL;
				wr_stop_hash(w);
			}
		}
		wr_idle(s, n);
	}
	ver_put(s, fh->ver);
	ver_put(s, fh->before);
	assert(n->refs > 0);
	n->refs--;
	if (!n->dead) {
		opens_add(n->parent, -1);
		if (!n->ver && !pending_of(n) && !writers_of(n) && !n->refs)
			remove_subtree(s, n); /* created, never committed */
	} else if (!n->refs) {
		node_drop(s, n);
	}
	unlock(s);
	free(fh);
}

int tc_file_stat(tc_store *s, tc_file *fh, struct tc_stat *st)
{
	pthread_mutex_lock(&s->lock);
	fill_stat(fh->node, st);
	if (!(fh->flags & TC_O_WRITE)) {
		st->size = fh->ver ? fh->ver->size : 0;
		st->blocks = fh->ver ? fh->ver->alloc / 512 : 0;
	}
	unlock(s);
	return 0;
}

/* ---- meta.json -------------------------------------------------------------- */

struct meta_view {
	struct tc_meta_dir d;
	struct tc_meta_tensor *t;
	struct tc_node **tn;
	const char **g;
};

static void meta_view_free(struct meta_view *m)
{
	free(m->t);
	free(m->tn);
	free(m->g);
}

static int meta_view(struct tc_node *d, struct meta_view *m)
{
	size_t nt = 0, ng = 0;
	memset(m, 0, sizeof(*m));
	m->t = calloc(d->nchildren + 1, sizeof(*m->t));
	m->tn = calloc(d->nchildren + 1, sizeof(*m->tn));
	m->g = calloc(d->nchildren + 1, sizeof(*m->g));
	if (!m->t || !m->tn || !m->g) {
		meta_view_free(m);
		return -ENOMEM;
	}
	for (struct tc_node *c = d->child_head; c; c = c->sib_next) {
		if (tc_node_isdir(c)) {
			m->g[ng++] = c->name;
		} else if (c->ver) {
			const struct tc_ver *v = c->ver;
			m->tn[nt] = c;
			m->t[nt++] = (struct tc_meta_tensor){
				.name = c->name, .nbytes = v->size,
				.data_offset = v->data_offset, .dtype = v->dtype,
				.ndim = v->ndim, .shape = tc_ver_shape(v),
				.xxh3 = v->xxh3 };
		}
	}
	m->d = (struct tc_meta_dir){
		.is_entry = d->kind == TC_KIND_ENTRY,
		.created_ns = d->created, .last_access_ns = d->last_access,
		.pinned = d->pinned, .attrs_json = d->attrs,
		.ntensors = nt, .tensors = m->t, .ngroups = ng, .groups = m->g };
	return 0;
}

int tc_meta_get(tc_store *s, uint64_t dir, char **json, size_t *len)
{
	struct tc_node *d;
	struct meta_view m;
	int r;

	pthread_mutex_lock(&s->lock);
	r = get_dir(s, dir, &d);
	if (!r && d->kind == TC_KIND_ROOT)
		r = -EINVAL;
	if (!r)
		r = meta_view(d, &m);
	if (!r) {
		r = tc_meta_render(&m.d, json, len);
		meta_view_free(&m);
	}
	unlock(s);
	return r;
}

int tc_meta_check(tc_store *s, uint64_t dir, const char *json, size_t len)
{
	struct tc_node *d;
	struct meta_view m;
	struct tc_meta_update u;
	cJSON *doc = cJSON_ParseWithLength(json, len);
	int r;

	if (!doc)
		return -EAGAIN;
	cJSON_Delete(doc);
	pthread_mutex_lock(&s->lock);
	r = get_dir(s, dir, &d);
	if (!r && d->kind == TC_KIND_ROOT)
		r = -EINVAL;
	if (!r && !(r = meta_view(d, &m))) {
		r = tc_meta_parse(&m.d, json, len, &u);
		if (!r)
			tc_meta_update_free(&u);
		meta_view_free(&m);
	}
	unlock(s);
	return r;
}

int tc_meta_set(tc_store *s, uint64_t dir, const char *json, size_t len)
{
	struct tc_node *d;
	struct meta_view m;
	struct tc_meta_update u;
	struct tc_buf b = { 0 };
	struct tc_ver *tv = NULL;
	int r;

	pthread_mutex_lock(&s->lock);
	r = get_dir(s, dir, &d);
	if (!r && d->kind == TC_KIND_ROOT)
		r = -EINVAL;
	if (r)
		goto out;
	r = meta_view(d, &m);
	if (r)
		goto out;
	r = tc_meta_parse(&m.d, json, len, &u);
	if (r)
		goto out_view;
	/* Build the record from copies; apply only after it is appended. */
	tv = calloc(u.nset ? u.nset : 1, sizeof(*tv));
	if (!tv) {
		r = -ENOMEM;
		goto out_update;
	}
	for (size_t i = 0; i < u.nset; i++) {
		struct tc_node tmp;
		tc_node_copy(&tmp, m.tn[u.set[i].index]);
		tv[i] = *tmp.ver; /* borrows: tv is freed, never put */
		tv[i].dtype = u.set[i].dtype;
		tv[i].ndim = (uint8_t)u.set[i].ndim;
		if (u.set[i].ndim > 1)
			tv[i].shp.many = u.set[i].shape;
		else
			tv[i].shp.one = u.set[i].ndim ? u.set[i].shape[0] : 0;
		tmp.ver = &tv[i];
		tc_rec_node(&b, &tmp);
	}
	if (d->kind == TC_KIND_ENTRY && (u.has_pinned || u.attrs_json)) {
		struct tc_node tmp;
		tc_node_copy(&tmp, d);
		if (u.has_pinned)
			pin_bits(&tmp, u.pinned);
		if (u.attrs_json)
			tmp.attrs = u.attrs_json;
		tc_rec_node(&b, &tmp);
	}
	if (b.len || b.err) {
		r = append(s, &b, NULL);
		if (r)
			goto out_update;
	}
	for (size_t i = 0; i < u.nset; i++) {
		struct tc_ver *v = m.tn[u.set[i].index]->ver;
		if (ver_set_shape(v, u.set[i].ndim, u.set[i].shape)) {
			r = -ENOMEM; /* journaled; memory catches up at reopen */
			continue;
		}
		v->dtype = u.set[i].dtype;
	}
	if (d->kind == TC_KIND_ENTRY) {
		if (u.has_pinned)
			pin_entry(s, d, u.pinned);
		if (u.attrs_json) {
			free(d->attrs);
			d->attrs = u.attrs_json;
			u.attrs_json = NULL;
		}
	}
out_update:
	free(tv);
	tc_meta_update_free(&u);
out_view:
	meta_view_free(&m);
out:
	tc_buf_free(&b);
	unlock(s);
	return r;
}

/* ---- misc ------------------------------------------------------------------- */

int tc_parse_size(const char *str, uint64_t *out)
{
	const char *p = str;
	uint64_t whole = 0, mult = 1;
	double frac = 0, scale = 0.1;
	int digits = 0;

	while (isspace((unsigned char)*p))
		p++;
	for (; isdigit((unsigned char)*p); p++, digits++)
		if (__builtin_mul_overflow(whole, 10, &whole) ||
		    __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
			return -ERANGE;
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, digits++, scale /= 10)
			frac += (*p - '0') * scale;
	}
	if (!digits)
		return -EINVAL;
	switch (toupper((unsigned char)*p)) {
	case 'K': mult = 1ull << 10; p++; break;
	case 'M': mult = 1ull << 20; p++; break;
	case 'G': mult = 1ull << 30; p++; break;
	case 'T': mult = 1ull << 40; p++; break;
	case 'P': mult = 1ull << 50; p++; break;
	}
	if (mult > 1 && (*p == 'i' || *p == 'I'))
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	while (isspace((unsigned char)*p))
		p++;
	if (*p)
		return -EINVAL;
	uint64_t v;
	if (__builtin_mul_overflow(whole, mult, &v))
		return -ERANGE;
	double f = frac * (double)mult;
	if (f >= 18446744073709551615.0 - (double)v)
		return -ERANGE;
	v += (uint64_t)f;
	if (!v)
		return -EINVAL;
	*out = v;
	return 0;
}

int tc_store_peek(const char *dir, struct tc_stats *st)
{
	tc_store *s;
	int r = store_open(dir, NULL, 1, NULL, NULL, &s);
	if (r)
		return r;
	tc_store_stats(s, st);
	st->pinned_bytes = pinned_alloc(s);
	return tc_store_close(s);
}

/* ---- tc_store_check ---------------------------------------------------------- */

int tc_store_check(const char *dir, unsigned flags, tc_check_fn fn, void *arg,
		   struct tc_check *out)
{
	int repair = flags & TC_CHECK_REPAIR;
	struct tc_check c = { 0 };
	struct tc_node *n, *next;
	tc_store *s;
	int r;

	r = store_open(dir, NULL, !repair, fn, arg, &s);
	if (r)
		return r;
	c.records_dropped = s->journal_dropped;
	c.nodes_dropped = s->nodes_dropped;
	c.unsynced = s->unsynced_dropped;
	c.torn = s->journal_torn;
	c.fallbacks = s->fallbacks;
	if (fn && s->journal_dropped)
		fn(arg, "journal", "torn or corrupt records dropped");
	pthread_mutex_lock(&s->lock);
	/* Pre-order walk of the whole tree; `next` is found before a damaged
	 * tensor is removed. */
	for (n = tc_node_next(&s->idx.root, &s->idx.root); n; n = next) {
		next = tc_node_next(n, &s->idx.root);
		if (n->kind != TC_KIND_TENSOR || !n->ver)
			continue;
		uint64_t h;
		r = ver_hash(s, n->ver, n->ver->size, &h);
		if (r)
			break;
		c.tensors++;
		c.bytes += n->ver->size;
		if (h == n->ver->xxh3)
			continue;
		c.damaged++;
		report(s, n, "bytes do not match their xxh3 checksum");
		if (repair && remove_node(s, n) == 0)
			c.repaired++;
	}
	unlock(s);
	if (!r)
		r = tc_store_close(s);
	else
		tc_store_close(s);
	if (!r)
		*out = c;
	return r;
}

/* ---- test hooks (store_test.h) ---------------------------------------------- */

static int id_cmp(const void *a, const void *b)
{
	const struct tc_node *x = *(const struct tc_node *const *)a;
	const struct tc_node *y = *(const struct tc_node *const *)b;
	return x->id < y->id ? -1 : x->id > y->id;
}

int tc_store_dump(tc_store *s, char **out, size_t *len)
{
	const struct tc_node *top = &s->idx.root;
	struct tc_node **v = NULL, *e;
	size_t k = 0, cap = 0;
	char *buf = NULL;
	size_t n = 0;
	struct tc_lru_iter it;
	FILE *f = open_memstream(&buf, &n);
	int r = f ? 0 : -ENOMEM;

	pthread_mutex_lock(&s->lock);
	/* by id: a checkpoint lists entries in LRU order, so the order of
	 * children (readdir's) is not something replay keeps */
	for (struct tc_node *x = tc_node_next(top, top); !r && x;
	     x = tc_node_next(x, top)) {
		if (k == cap) {
			struct tc_node **nv = realloc(v, (cap * 2 + 64) * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
			cap = cap * 2 + 64;
		}
		v[k++] = x;
	}
	if (!r)
		qsort(v, k, sizeof(*v), id_cmp);
	for (size_t i = 0; !r && i < k; i++) {
		const struct tc_node *x = v[i];
		fprintf(f, "%" PRIu64 " in %" PRIu64 " %s kind %d mode %o "
			"uid %u gid %u atime %" PRId64, x->id, x->parent->id,
			x->name, x->kind, x->mode, x->uid, x->gid, x->atime);
		/* a directory's mtime and ctime follow its children live,
		 * and reach the journal only with its own records */
		if (x->kind == TC_KIND_TENSOR)
			fprintf(f, " mtime %" PRId64 " ctime %" PRId64,
				x->mtime, x->ctime);
		if (x->kind == TC_KIND_ENTRY)
			fprintf(f, " created %" PRId64 " access %" PRId64
				" pinned %d attrs %s", x->created, x->last_access,
				x->pinned, x->attrs ? x->attrs : "-");
		if (x->kind == TC_KIND_TENSOR && x->ver) {
			const struct tc_ver *ver = x->ver;
			fprintf(f, " size %" PRIu64 " xxh3 %016" PRIx64
				" offset %" PRIu64 " dtype %d shape", ver->size,
				ver->xxh3, ver->data_offset, ver->dtype);
			for (int d = 0; d < ver->ndim; d++)
				fprintf(f, " %" PRIu64, tc_ver_shape(ver)[d]);
			fprintf(f, " extents");
			for (uint32_t d = 0; d < ver->next; d++)
				fprintf(f, " %" PRIu64 "+%" PRIu64, ver->ext[d].off,
					ver->ext[d].len);
		}
		fputc('\n', f);
	}
	if (!r) {
		fprintf(f, "lru");
		tc_lru_iter_start(&s->lru, &it);
		while ((e = tc_lru_iter_next(&it)))
			fprintf(f, " %" PRIu64, e->id);
		fputc('\n', f);
	}
	pthread_mutex_unlock(&s->lock);
	free(v);
	if (f && fclose(f) != 0 && !r)
		r = -ENOMEM;
	if (r) {
		free(buf);
		return r;
	}
	*out = buf;
	*len = n;
	return 0;
}

int tc_replay_image(const uint8_t *img, size_t len, struct tc_stats *st)
{
	struct tc_store *s = calloc(1, sizeof(*s));
	struct tc_scan sc;
	int r;

	if (!s)
		return -ENOMEM;
	s->dirfd = s->lockfd = s->pool.fd = s->jr.fd = s->jr.data_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->drained, NULL);
	tc_index_init(&s->idx);
	s->replaying = 1;
	r = tc_journal_scan(img, len, apply_record, s, &sc);
	s->replaying = 0;
	if (!r) {
		s->journal_dropped = sc.dropped;
		s->jr.ndrops = sc.dropped < 16 ? (uint32_t)sc.dropped : 16;
		memcpy(s->jr.drop_after, sc.drop_after, sizeof(s->jr.drop_after));
		count_drops(s);
		s->pool.size = sc.capacity;
		r = build_pool(s, sc.capacity);
	}
	if (!r)
		tc_store_stats(s, st);
	store_free(s);
	return r;
}
