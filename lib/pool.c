/*
 * pool.c - free-space management of the pool file.
 *
 * The pool is one file of `size` bytes, preallocated with fallocate so that
 * writes into it never fail for lack of disk space.  Tensor bytes live in
 * extents: runs of 4 KiB blocks.  A tensor may hold several extents.
 *
 *   block:  0    1    2    3    4    5    6    7    8 ...
 *          [ t1      ][free][ t2 ][ free              ]...
 *
 * Free space is a set of maximal runs (no two free runs touch: a freed
 * extent is merged with the free runs on either side).  Each run is found
 * three ways:
 *   by_start   first block  -> run   (merge with the right neighbour)
 *   by_end     block after  -> run   (merge with the left neighbour)
 *   bucket[k]  runs of 2^k .. 2^(k+1)-1 blocks, a doubly linked list
 * Allocation takes the first run of the smallest non-empty bucket above
 * the request's own (every run there fits), else searches the request's
 * bucket a bounded number of steps, else hands out the largest run seen
 * and lets the caller ask again: a tensor then spans several extents, so
 * an allocation fails only when the pool is truly full.  Space is taken
 * from the front of a run.
 *
 * Shared blocks: a tensor of at most TC_PACK_MAX bytes does not take a
 * block of its own.  Its committed bytes go into a run of TC_SLOT-byte
 * units of a shared block (64 units, one bit each in `used`), so 1M
 * tensors of 64 bytes take 64 MB of the pool, not 4 GB.  A shared block
 * with a free unit is in the `partial` list, and a request looks at the
 * first few of them (PARTIAL_SCAN) before it takes a new block; a block
 * whose last unit is freed goes back to the free runs.  Free units are
 * not in `free` (whole free blocks) but in `slack`.
 *
 *   block 5 (shared): [t3|t3|t4|  |t7|  |  |...]  used = 0b...10111
 *
 * Quarantine: extents freed while a durable journal record may still name
 * them wait in `held`, two FIFOs in generation order (by what they wait
 * for: enum tc_hold), until the store has made that durable
 * (tc_pool_hold/tc_pool_release); they are neither free nor allocated
 * meanwhile.
 *
 * Invariants: free == sum of run lengths; slack == TC_SLOT * (free units
 * of all shared blocks); a shared block is in `partial` iff used != ~0;
 * shared blocks are neither free runs nor held as whole blocks; held[k].bytes == sum of that
 * FIFO's extents, held_bytes == their sum; runs and held extents are disjoint, runs non-adjacent, all
 * inside [0, size); bit k of nonempty <=> bucket[k] != NULL.
 * Locking: none here; the store's lock covers the pool.  The file's bytes
 * are read and written outside that lock by whoever owns an extent.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pool.h"

struct tc_fext {
	uint64_t start, len;       /* in blocks */
	struct tc_fext *prev, *next;
	int bucket;
};

#define SCAN_LIMIT 256

struct tc_shared {
	uint64_t block;                 /* its block number */
	uint64_t used;                  /* bit i: unit i holds bytes */
	struct tc_shared *prev, *next;  /* in partial while a unit is free */
};

#define UNITS (TC_BLOCK / TC_SLOT)  /* 64: one bit each in used */
#define PARTIAL_SCAN 8
_Static_assert(UNITS == 64, "a shared block's units fit one uint64_t");

static int build_units(struct tc_pool *p, struct tc_extent e);

static int bucket_of(uint64_t blocks)
{
	return 63 - __builtin_clzll(blocks);
}

static void list_add(struct tc_pool *p, struct tc_fext *f)
{
	f->bucket = bucket_of(f->len);
	f->prev = NULL;
	f->next = p->bucket[f->bucket];
	if (f->next)
		f->next->prev = f;
	p->bucket[f->bucket] = f;
	p->nonempty |= 1ull << f->bucket;
}

static void list_del(struct tc_pool *p, struct tc_fext *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		p->bucket[f->bucket] = f->next;
	if (f->next)
		f->next->prev = f->prev;
	if (!p->bucket[f->bucket])
		p->nonempty &= ~(1ull << f->bucket);
}

/* Add a run that touches no other free run.  On -ENOMEM the run is lost
 * to the free space until the next open (never handed out twice). */
static int run_add(struct tc_pool *p, uint64_t start, uint64_t len)
{
	struct tc_fext *f = malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->start = start;
	f->len = len;
	if (tc_map_put(&p->by_start, start, f)) {
		free(f);
		return -ENOMEM;
	}
	if (tc_map_put(&p->by_end, start + len, f)) {
		tc_map_del(&p->by_start, start);
		free(f);
		return -ENOMEM;
	}
	list_add(p, f);
	p->free += len * TC_BLOCK;
	return 0;
}

static void run_del(struct tc_pool *p, struct tc_fext *f)
{
	list_del(p, f);
	tc_map_del(&p->by_start, f->start);
	tc_map_del(&p->by_end, f->start + f->len);
	p->free -= f->len * TC_BLOCK;
	free(f);
}

/* Take @n blocks from the front of run @f (n <= f->len). */
static uint64_t run_take(struct tc_pool *p, struct tc_fext *f, uint64_t n)
{
	uint64_t start = f->start;
	if (n == f->len) {
		run_del(p, f);
		return start;
	}
	list_del(p, f);
	tc_map_del(&p->by_start, f->start);
	f->start += n;
	f->len -= n;
	/* Re-keying into a slot just vacated cannot need memory: the map
	 * only grows when it holds more keys than before. */
	tc_map_put(&p->by_start, f->start, f);
	list_add(p, f);
	p->free -= n * TC_BLOCK;
	return start;
}

int tc_pool_open(struct tc_pool *p, int dirfd, const char *name,
		 uint64_t size)
{
	struct stat st;
	int r, fd;
	void *map;

	size &= ~(uint64_t)(TC_BLOCK - 1);
	if (!size)
		return -EINVAL;
	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		goto fail_errno;
	if ((uint64_t)st.st_size < size) {
		r = fallocate(fd, 0, 0, (off_t)size);
		if (r < 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
			r = ftruncate(fd, (off_t)size);
		if (r < 0) {
			r = -errno;
			if (ftruncate(fd, st.st_size) < 0) {
				/* the file stays longer: harmless */
			}
			close(fd);
			return r;
		}
	} else if ((uint64_t)st.st_size > size) {
		if (ftruncate(fd, (off_t)size) < 0)
			goto fail_errno;
	}
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		goto fail_errno;
	*p = (struct tc_pool){ .fd = fd, .map = map, .size = size };
	return 0;
fail_errno:
	r = -errno;
	close(fd);
	return r;
}

int tc_pool_open_rdonly(struct tc_pool *p, int dirfd, const char *name)
{
	struct stat st;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	void *map = NULL;
	uint64_t size;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		goto fail_errno;
	size = (uint64_t)st.st_size & ~(uint64_t)(TC_BLOCK - 1);
	if (size) {
		map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED)
			goto fail_errno;
	}
	*p = (struct tc_pool){ .fd = fd, .map = map, .size = size };
	return 0;
fail_errno:;
	int r = -errno;
	close(fd);
	return r;
}

int tc_pool_build(struct tc_pool *p, const struct tc_extent *used, size_t n)
{
	uint64_t at = 0; /* first block not yet accounted for */
	for (size_t i = 0; i <= n; i++) {
		uint64_t next = i < n ? used[i].off / TC_BLOCK : p->size / TC_BLOCK;
		if (next > at) {
			int r = run_add(p, at, next - at);
			if (r)
				return r;
		}
		if (i < n && tc_extent_packed(used[i])) {
			int r = build_units(p, used[i]);
			if (r)
				return r;
			at = next + 1;
		} else if (i < n) {
			at = (used[i].off + used[i].len) / TC_BLOCK;
		}
	}
	return 0;
}

int tc_pool_alloc(struct tc_pool *p, uint64_t len, struct tc_extent *out)
{
	uint64_t n = len / TC_BLOCK;
	struct tc_fext *f = NULL;
	int k;

	if (!n || !p->nonempty)
		return n ? -ENOSPC : -EINVAL;
	k = bucket_of(n);
	uint64_t above = k >= 63 ? 0 : p->nonempty & ~((2ull << k) - 1);
	if (above) {
		f = p->bucket[__builtin_ctzll(above)];
	} else {
		int steps = 0;
		for (struct tc_fext *g = p->bucket[k]; g && steps < SCAN_LIMIT;
		     g = g->next, steps++)
			if (g->len >= n) {
				f = g;
				break;
			}
	}
	if (!f) {
		/* No single run fits: hand out the largest run seen. */
		int top = 63 - __builtin_clzll(p->nonempty);
		int steps = 0;
		for (struct tc_fext *g = p->bucket[top]; g && steps < SCAN_LIMIT;
		     g = g->next, steps++)
			if (!f || g->len > f->len)
				f = g;
		n = f->len < n ? f->len : n;
	}
	out->off = run_take(p, f, n) * TC_BLOCK;
	out->len = n * TC_BLOCK;
	return 0;
}

uint64_t tc_pool_extend(struct tc_pool *p, uint64_t at, uint64_t len)
{
	struct tc_fext *f = tc_map_get(&p->by_start, at / TC_BLOCK);
	if (!f)
		return 0;
	uint64_t n = len / TC_BLOCK;
	if (n > f->len)
		n = f->len;
	run_take(p, f, n);
	return n * TC_BLOCK;
}

static void block_free(struct tc_pool *p, uint64_t off, uint64_t len)
{
	uint64_t start = off / TC_BLOCK, n = len / TC_BLOCK;
	struct tc_fext *left, *right;

	if (!n)
		return;
	/* a run already starting or ending here means a double free */
	assert(!tc_map_get(&p->by_start, start) &&
	       !tc_map_get(&p->by_end, start + n));
	left = tc_map_get(&p->by_end, start);
	right = tc_map_get(&p->by_start, start + n);
	if (left) {
		start = left->start;
		n += left->len;
		run_del(p, left);
	}
	if (right) {
		n += right->len;
		run_del(p, right);
	}
	/* The maps just lost keys, so this put finds room without growing
	 * when a neighbour merged; a lone free may fail only on -ENOMEM,
	 * which leaks the space until the next open, never corrupts. */
	run_add(p, start, n);
}

/* ---- shared blocks -------------------------------------------------------- */

static void partial_add(struct tc_pool *p, struct tc_shared *sh)
{
	sh->prev = NULL;
	sh->next = p->partial;
	if (sh->next)
		sh->next->prev = sh;
	p->partial = sh;
}

static void partial_del(struct tc_pool *p, struct tc_shared *sh)
{
	if (sh->prev)
		sh->prev->next = sh->next;
	else
		p->partial = sh->next;
	if (sh->next)
		sh->next->prev = sh->prev;
	sh->prev = sh->next = NULL;
}

static uint64_t units_mask(unsigned i, unsigned k)
{
	return (k >= UNITS ? ~0ull : (1ull << k) - 1) << i;
}

/* The first unit of a run of @k (1 .. UNITS / 2) free units in @used, or
 * -1.  Bit i of f after the loop: units i .. i + k - 1 are free. */
static int free_run(uint64_t used, unsigned k)
{
	uint64_t f = ~used;
	for (unsigned have = 1; have < k && f;) {
		unsigned step = have < k - have ? have : k - have;
		f &= f >> step;
		have += step;
	}
	return f ? __builtin_ctzll(f) : -1;
}

/* Block @block (taken from the free space) as a shared block, all its
 * units free.  NULL on ENOMEM. */
static struct tc_shared *shared_new(struct tc_pool *p, uint64_t block)
{
	struct tc_shared *sh = calloc(1, sizeof(*sh));
	if (!sh)
		return NULL;
	sh->block = block;
	if (tc_map_put(&p->shared, block, sh)) {
		free(sh);
		return NULL;
	}
	partial_add(p, sh);
	p->slack += TC_BLOCK;
	p->shared_blocks++;
	return sh;
}

/* Take units i .. i + k - 1 of @sh (free) as *@out. */
static void units_take(struct tc_pool *p, struct tc_shared *sh, unsigned i,
		       unsigned k, struct tc_extent *out)
{
	uint64_t m = units_mask(i, k);
	assert(!(sh->used & m));
	sh->used |= m;
	p->slack -= (uint64_t)k * TC_SLOT;
	if (sh->used == ~0ull)
		partial_del(p, sh);
	*out = (struct tc_extent){ sh->block * TC_BLOCK + (uint64_t)i * TC_SLOT,
				   (uint64_t)k * TC_SLOT };
}

/* A shared block with @k free units in a row (below the limit), among
 * the first PARTIAL_SCAN with room; *@at the first of them. */
static struct tc_shared *room_for(struct tc_pool *p, unsigned k, unsigned *at)
{
	int steps = 0;
	for (struct tc_shared *sh = p->partial; sh && steps < PARTIAL_SCAN;
	     sh = sh->next, steps++) {
		if (p->limit && (sh->block + 1) * TC_BLOCK > p->limit)
			continue;
		int i = free_run(sh->used, k);
		if (i >= 0) {
			*at = (unsigned)i;
			return sh;
		}
	}
	return NULL;
}

static unsigned units_of(uint64_t len)
{
	assert(len && len <= TC_PACK_MAX);
	return (unsigned)(tc_round_slot(len) / TC_SLOT);
}

int tc_pool_pack(struct tc_pool *p, uint64_t blk, uint64_t len,
		 struct tc_extent *out)
{
	unsigned k = units_of(len), at;
	struct tc_shared *sh = room_for(p, k, &at);

	assert(blk % TC_BLOCK == 0);
	if (sh) {
		units_take(p, sh, at, k, out);
		return 1;
	}
	sh = shared_new(p, blk / TC_BLOCK);
	if (!sh)
		return -ENOMEM;
	units_take(p, sh, 0, k, out);
	return 0;
}

int tc_pool_slot(struct tc_pool *p, uint64_t len, struct tc_extent *out)
{
	unsigned k = units_of(len), at = 0;
	struct tc_shared *sh = room_for(p, k, &at);

	if (!sh) {
		struct tc_extent e;
		int r = tc_pool_alloc(p, TC_BLOCK, &e);
		if (r)
			return r;
		if (!(sh = shared_new(p, e.off / TC_BLOCK))) {
			block_free(p, e.off, e.len);
			return -ENOMEM;
		}
		at = 0;
	}
	units_take(p, sh, at, k, out);
	return 0;
}

/* Free the units of packed extent [off, off + len); the block too once
 * none is in use. */
static void units_free(struct tc_pool *p, uint64_t off, uint64_t len)
{
	struct tc_shared *sh = tc_map_get(&p->shared, off / TC_BLOCK);
	unsigned i = (unsigned)(off % TC_BLOCK / TC_SLOT);
	uint64_t m = units_mask(i, (unsigned)(len / TC_SLOT));

	assert(sh && (sh->used & m) == m); /* else a double free */
	if (!sh)
		return;
	if (sh->used == ~0ull)
		partial_add(p, sh);
	sh->used &= ~m;
	p->slack += len;
	if (sh->used)
		return;
	partial_del(p, sh);
	tc_map_del(&p->shared, sh->block);
	p->slack -= TC_BLOCK;
	p->shared_blocks--;
	block_free(p, sh->block * TC_BLOCK, TC_BLOCK);
	free(sh);
}

void tc_pool_free(struct tc_pool *p, uint64_t off, uint64_t len)
{
	if (tc_extent_packed((struct tc_extent){ off, len }))
		units_free(p, off, len);
	else
		block_free(p, off, len);
}

/* Mark packed extent @e used while building (its block is not free). */
static int build_units(struct tc_pool *p, struct tc_extent e)
{
	struct tc_shared *sh = tc_map_get(&p->shared, e.off / TC_BLOCK);
	struct tc_extent out;

	assert(tc_extent_packed_ok(e));
	if (!sh && !(sh = shared_new(p, e.off / TC_BLOCK)))
		return -ENOMEM;
	units_take(p, sh, (unsigned)(e.off % TC_BLOCK / TC_SLOT),
		   (unsigned)(e.len / TC_SLOT), &out);
	return 0;
}

void tc_pool_hold(struct tc_pool *p, uint64_t off, uint64_t len, uint64_t gen,
		  enum tc_hold what)
{
	struct tc_held_fifo *q = &p->held[what];
	if (!len)
		return;
	if (q->n == q->cap) {
		size_t live = q->n - q->head;
		if (q->head && live <= q->cap / 2) {
			/* slide the live ones to the front: no growth needed */
			memmove(q->v, q->v + q->head, live * sizeof(*q->v));
		} else {
			size_t ncap = q->cap ? q->cap * 2 : 64;
			struct tc_held *nv = malloc(ncap * sizeof(*nv));
			if (!nv)
				return; /* leaked until the next open */
			if (live)
				memcpy(nv, q->v + q->head, live * sizeof(*nv));
			free(q->v);
			q->v = nv;
			q->cap = ncap;
		}
		q->head = 0;
		q->n = live;
	}
	assert(!q->n || q->v[q->n - 1].gen <= gen);
	q->v[q->n++] = (struct tc_held){ off, len, gen };
	q->bytes += len;
	p->held_bytes += len;
}

static void fifo_release(struct tc_pool *p, struct tc_held_fifo *q,
			 uint64_t gen)
{
	while (q->head < q->n && q->v[q->head].gen <= gen) {
		struct tc_held *h = &q->v[q->head++];
		q->bytes -= h->len;
		p->held_bytes -= h->len;
		tc_pool_free(p, h->off, h->len);
	}
	if (q->head == q->n)
		q->head = q->n = 0;
}

void tc_pool_release(struct tc_pool *p, uint64_t gen, int data)
{
	fifo_release(p, &p->held[TC_HOLD_RECORD], gen);
	if (data)
		fifo_release(p, &p->held[TC_HOLD_DATA], gen);
}

void tc_pool_close(struct tc_pool *p)
{
	if (!p)
		return;
	for (int k = 0; k < 2; k++) {
		free(p->held[k].v);
		p->held[k] = (struct tc_held_fifo){ 0 };
	}
	p->held_bytes = 0;
	for (size_t i = 0; i < p->shared.cap; i++)
		free(p->shared.vals[i]);
	tc_map_free(&p->shared);
	p->partial = NULL;
	p->slack = 0;
	p->shared_blocks = 0;
	for (int k = 0; k < 64; k++) {
		struct tc_fext *f = p->bucket[k];
		while (f) {
			struct tc_fext *next = f->next;
			free(f);
			f = next;
		}
		p->bucket[k] = NULL;
	}
	tc_map_free(&p->by_start);
	tc_map_free(&p->by_end);
	if (p->map && p->map != MAP_FAILED)
		munmap(p->map, p->size);
	if (p->fd >= 0)
		close(p->fd);
	p->map = NULL;
	p->fd = -1;
}
