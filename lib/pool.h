/*
 * pool.h - space in the pool file (internal to libtcache).
 */
#ifndef TC_POOL_H
#define TC_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "tcache.h"

/*
 * A run of pool bytes: off and len are multiples of TC_BLOCK; or, for a
 * packed tensor (one of at most TC_PACK_MAX bytes), a run of units of
 * TC_SLOT bytes inside one shared block (tc_extent_packed).
 */
struct tc_extent {
	uint64_t off, len;
};

#define TC_SLOT 64u              /* unit of a shared block */
#define TC_PACK_MAX 2048u        /* a tensor this small shares a block */

static inline int tc_extent_packed(struct tc_extent e)
{
	return (e.off | e.len) % TC_BLOCK != 0;
}

static inline uint64_t tc_round_slot(uint64_t n)
{
	return (n + TC_SLOT - 1) & ~(uint64_t)(TC_SLOT - 1);
}

/* Is @e a well-formed packed extent: whole units, inside one block? */
static inline int tc_extent_packed_ok(struct tc_extent e)
{
	return e.len && e.len <= TC_PACK_MAX && e.off % TC_SLOT == 0 &&
	       e.len % TC_SLOT == 0 &&
	       e.off / TC_BLOCK == (e.off + e.len - 1) / TC_BLOCK;
}

struct tc_fext; /* a free run, in pool.c */
struct tc_shared; /* a shared block, in pool.c */

/* An extent waiting in quarantine (see tc_pool_hold). */
struct tc_held {
	uint64_t off, len;
	uint64_t gen;              /* the store's sync generation at the free */
};

/* What must be durable before a held extent may be reused. */
enum tc_hold {
	TC_HOLD_RECORD = 0,        /* the record that freed it (an evicted
	                              entry: nothing falls back to it) */
	TC_HOLD_DATA = 1,          /* that record and the pool bytes of the
	                              version that replaced it (a replaced or
	                              removed tensor: replay may fall back) */
};

/* One FIFO of held extents, in gen order. */
struct tc_held_fifo {
	struct tc_held *v;         /* v[head .. n) are live */
	size_t head, n, cap;
	uint64_t bytes;            /* sum of their lengths */
};

struct tc_pool {
	int fd;                    /* the pool file, O_RDWR (or O_RDONLY) */
	uint8_t *map;              /* MAP_SHARED of the whole file */
	uint64_t size;             /* bytes, a multiple of TC_BLOCK */
	uint64_t free;             /* free bytes */
	struct tc_map by_start;    /* first block of a free run -> run */
	struct tc_map by_end;      /* block after a free run -> run */
	struct tc_fext *bucket[64]; /* free runs by floor(log2(blocks)) */
	uint64_t nonempty;         /* bit k: bucket[k] has a run */
	/* quarantine: freed, not yet reusable, by enum tc_hold */
	struct tc_held_fifo held[2];
	uint64_t held_bytes;       /* held[0].bytes + held[1].bytes */
	/* shared blocks: blocks cut into TC_SLOT units for packed tensors */
	struct tc_map shared;      /* block -> its struct tc_shared */
	struct tc_shared *partial; /* those with a free unit, newest first */
	uint64_t slack;            /* bytes of free units in shared blocks */
	uint64_t shared_blocks;    /* how many there are */
	uint64_t limit;            /* units are handed out only below this
	                              (0: anywhere; a shrink sets it) */
};

/* Open (or create) the pool file @name in @dirfd and size it to @size bytes
 * (preallocating with fallocate when it grows; truncating when it
 * shrinks).  All space starts out free: call tc_pool_build().  -ENOSPC
 * when the disk cannot hold @size; the file is then left as it was. */
int tc_pool_open(struct tc_pool *p, int dirfd, const char *name,
		 uint64_t size);

/* Open an existing pool file read-only, as large as it is (rounded down to
 * TC_BLOCK), without changing it: for checking a store.  -ENOENT. */
int tc_pool_open_rdonly(struct tc_pool *p, int dirfd, const char *name);

/* Make everything free except @used (sorted by off, not overlapping, inside
 * the pool; packed ones make their blocks shared).  -ENOMEM. */
int tc_pool_build(struct tc_pool *p, const struct tc_extent *used, size_t n);

/*
 * Allocate @len bytes (a positive multiple of TC_BLOCK) as one extent when
 * a free run that large exists, else the largest run found (out->len < len:
 * call again for the rest).  -ENOSPC when nothing is free.  O(1) unless the
 * runs are fragmented near @len, then a bounded scan.
 */
int tc_pool_alloc(struct tc_pool *p, uint64_t len, struct tc_extent *out);

/* Take up to @len bytes of free space starting exactly at byte @at (to grow
 * an extent in place).  Returns the bytes taken (0 if @at is not free). */
uint64_t tc_pool_extend(struct tc_pool *p, uint64_t at, uint64_t len);

/* Return an extent to the free space, merging with free neighbours; a
 * packed one frees its units, and its block once no unit is in use.
 * O(1). */
void tc_pool_free(struct tc_pool *p, uint64_t off, uint64_t len);

/*
 * Packing a tensor of @len bytes (1 .. TC_PACK_MAX) that lies at the start
 * of the whole block at @blk: *@out gets the units it should live in.
 * Returns 1 when they are in another shared block (the caller copies the
 * bytes there, then frees the block), 0 when the block itself became a
 * shared block with the tensor in its first units (nothing to copy).
 * -ENOMEM: nothing changed.  O(1): at most a few shared blocks are looked
 * at.
 */
int tc_pool_pack(struct tc_pool *p, uint64_t blk, uint64_t len,
		 struct tc_extent *out);

/* Units for @len bytes (1 .. TC_PACK_MAX) in a shared block with room, or
 * in a new one taken from the free space.  -ENOSPC, -ENOMEM. */
int tc_pool_slot(struct tc_pool *p, uint64_t len, struct tc_extent *out);

/*
 * Quarantine: an extent that a durable journal record may still name (the
 * old version of a replaced tensor, an evicted or removed one) must not be
 * handed out again before the record that frees it is durable, or a power
 * loss could leave the journal naming bytes that now belong to another
 * tensor.  tc_pool_hold() puts it aside, as @what (enum tc_hold), with the
 * caller's generation @gen (gens never decrease between calls).
 * tc_pool_release() frees every extent of generation <= @gen held as
 * TC_HOLD_RECORD, and with @data those held as TC_HOLD_DATA too, once the
 * caller has made durable what they wait for.  Held bytes are not in
 * `free`.  O(1) amortized; on -ENOMEM the extent is leaked until the next
 * open (never reused early).
 */
void tc_pool_hold(struct tc_pool *p, uint64_t off, uint64_t len, uint64_t gen,
		  enum tc_hold what);
void tc_pool_release(struct tc_pool *p, uint64_t gen, int data);

/* Unmap and close.  NULL-safe. */
void tc_pool_close(struct tc_pool *p);

static inline uint64_t tc_round_block(uint64_t n)
{
	return (n + TC_BLOCK - 1) & ~(uint64_t)(TC_BLOCK - 1);
}

#endif
