/*
 * evict.c - eviction: room made in the pool by evicting least recently
 * used entries (make_room), and the capacity shrink at open.
 *
 * Invariants:
 *   - Only unpinned entries without open files are evicted
 *     (tc_lru_victim), and never one while a child of it (an entry whose
 *     parent link names it, links.c) is present: the least recently
 *     used entry without one goes first, and its parent may then follow
 *     at its own recency.  A write that even evicting all of them would
 *     not make room for fails with ENOSPC having evicted nothing (unless
 *     a pinned or open child keeps a parent that was counted).
 *   - A shrink at open that only parents of pinned entries stand in the
 *     way of fails with EFBIG, as one pinned entries alone stop does.
 *   - An eviction is a DEL record, applied like any other (store_change),
 *     then told to the eviction listener.  Its extents wait in the pool's
 *     quarantine for the record to be durable (TC_HOLD_RECORD: nothing
 *     falls back to an evicted entry), which make_room's sync brings.
 *   - A shrink never drops a pinned entry (EFBIG instead) and never lets
 *     the journal name bytes past the new capacity: evictions and moves
 *     are checkpointed before the pool file is cut.
 * Lock held (at open, the store is not shared yet).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

/* Count the eviction of entry @id, @name, of @bytes, and tell the
 * listener. */
static void evicted(struct tc_store *s, uint64_t id, const char *name,
		    uint64_t bytes)
{
	s->evictions++;
	s->evicted_bytes += bytes;
	if (s->evict_fn)
		s->evict_fn(s->evict_arg, TC_ROOT_ID, id, name);
}

/* Evict entry @e: a DEL record, applied. */
static int evict(struct tc_store *s, struct tc_node *e)
{
	struct tc_op op = { .type = TC_OP_DEL, .id = e->id };
	uint64_t bytes = subtree_bytes(e);
	char name[TC_NAME_MAX + 1];
	int r;

	strcpy(name, tc_node_name(e));
	s->evicting = 1;
	r = store_change(s, &op, 1, NULL);
	s->evicting = 0;
	if (!r)
		evicted(s, op.id, name, bytes);
	return r;
}

/* Pool bytes that evicting @e would free.  O(nodes in e). */
static uint64_t entry_bytes(const struct tc_node *e)
{
	uint64_t b = 0;
	for (const struct tc_node *n = e; n; n = tc_node_next(n, e))
		if (n->kind == TC_KIND_TENSOR && tc_nver(n) && tc_nver(n)->refs == 1)
			b += tc_ver_alloc(tc_nver(n));
	return b;
}

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
 * One round of make_room.  Space in the pool's quarantine counts: a sync
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
static int make_room_once(struct tc_store *s, uint64_t need)
{
	uint64_t have = s->pool.free + s->pool.held_bytes;
	struct tc_node *e;
	int r;

	assert_locked(s);
	if (s->pool.free >= need)
		return 0;
	if (have < need) {
		/* a parent counts: its children may be evicted first (a
		 * child held by a pin or an open file keeps it, though, and
		 * then fewer bytes come free than counted here) */
		for (e = s->lru.head; e && have < need; e = tc_lru_next(e))
			if (!tc_lru_held(e))
				have += entry_bytes(e);
		for (e = s->lru.khead; e && have < need; e = tc_lru_next(e))
			if (!tc_lru_held(e))
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

/*
 * Make @need bytes free (see make_room_once).  The bytes counted there
 * are what tensors hold; a packed tensor's units come back as a free
 * block only with the last unit of their shared block, so a round can
 * end with less than @need free: then another round evicts more, until
 * it is there or nothing is left to evict (-ENOSPC).
 */
int make_room(struct tc_store *s, uint64_t need)
{
	for (;;) {
		uint64_t free = s->pool.free, held = s->pool.held_bytes;
		uint64_t evictions = s->evictions;
		int r = make_room_once(s, need);
		if (r || s->pool.free >= need)
			return r;
		if (s->pool.free == free && s->pool.held_bytes == held &&
		    s->evictions == evictions)
			return -ENOSPC; /* a round that changed nothing */
	}
}

/* Pool bytes held by the tensors of entry @e.  O(nodes in e). */
static uint64_t entry_alloc(const struct tc_node *e)
{
	uint64_t b = 0;
	for (const struct tc_node *n = e; n; n = tc_node_next(n, e))
		if (n->kind == TC_KIND_TENSOR && tc_nver(n))
			b += tc_ver_alloc(tc_nver(n));
	return b;
}

/* Pool bytes held by pinned entries.  O(nodes in them). */
uint64_t pinned_alloc(const struct tc_store *s)
{
	uint64_t b = 0;
	for (const struct tc_node *e = s->lru.phead; e; e = tc_lru_next(e))
		b += entry_alloc(e);
	return b;
}

/* Does a tensor of @top's subtree hold pool space at or past @limit? */
static int holds_past(const struct tc_node *top, uint64_t limit)
{
	for (const struct tc_node *n = top; n; n = tc_node_next(n, top))
		if (n->kind == TC_KIND_TENSOR && tc_nver(n))
			for (uint32_t i = 0; i < tc_nver(n)->nextents; i++)
				if (tc_ver_ext(tc_nver(n))[i].off + tc_ver_ext(tc_nver(n))[i].len > limit)
					return 1;
	return 0;
}

/* Move the parts of @n's version that lie at or past @limit into free
 * pool space (all below @limit: see shrink_relocate); the parts below it
 * stay.  Nothing is freed: until the checkpoint after it the journal still
 * names the old places.  On failure @n is unchanged.  O(bytes moved). */
static int relocate(struct tc_store *s, struct tc_node *n, uint64_t limit)
{
	struct tc_ver *v = tc_nver(n), nv = { 0 };
	int r = 0;

	for (uint32_t i = 0; !r && i < v->nextents; i++) {
		struct tc_extent e = tc_ver_ext(v)[i], to;
		if (e.off < limit) {
			struct tc_extent keep = { e.off, e.off + e.len <= limit
							 ? e.len : limit - e.off };
			r = ver_push(&nv, keep);
			e.off += keep.len;
			e.len -= keep.len;
		}
		if (!r && e.len && tc_extent_packed(e)) {
			/* a packed tensor's units: into units below @limit */
			r = tc_pool_slot(&s->pool, e.len, &to);
			if (!r && to.off + to.len > limit)
				r = -ENOSPC; /* cannot be: see shrink_relocate */
			if (!r) {
				memcpy(s->pool.map + to.off, s->pool.map + e.off,
				       to.len);
				r = ver_push(&nv, to);
			}
			e.len = 0;
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
		if (nv.nextents > 1)
			free(tc_vext_of(&nv));
		return r;
	}
	if (v->nextents > 1)
		free(tc_vext_of(v));
	v->ex = nv.ex; /* the extents and their alloc move along */
	v->nextents = nv.nextents;
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
	 * limit: the rest stays taken until the pool is closed.  Free
	 * units of shared blocks past it are not handed out either. */
	s->pool.limit = limit;
	while (!r && tc_pool_alloc(&s->pool, s->pool.size, &e) == 0) {
		if (n == room) {
			struct tc_extent *p = grow_array(taken, &room, sizeof(*p), 16);
			if (!p) {
				r = -ENOMEM;
				break;
			}
			taken = p;
		}
		taken[n++] = e;
	}
	for (size_t i = 0; i < n; i++)
		if (taken[i].off < limit)
			tc_pool_free(&s->pool, taken[i].off,
				     taken[i].off + taken[i].len <= limit
					     ? taken[i].len : limit - taken[i].off);
	free(taken);
	const struct tc_node *top = s->idx.root;
	for (struct tc_node *t = tc_node_next(top, top); t && !r;
	     t = tc_node_next(t, top))
		if (t->kind == TC_KIND_TENSOR && tc_nver(t) && holds_past(t, limit))
			r = relocate(s, t, limit);
	if (!r && fdatasync(s->pool.fd) < 0)
		r = -errno;
	tc_pool_close(&s->pool);
	s->pool_ready = 0;
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
int shrink(struct tc_store *s, uint64_t cap, uint64_t limit,
		  uint64_t *valid)
{
	uint64_t used = 0;
	int r;

	assert_locked(s);
	if (pinned_alloc(s) > limit)
		return -EFBIG;
	for (struct tc_node *e = tc_child_head(s->idx.root); e; e = tc_sib_next(e))
		used += entry_alloc(e);
	/* No pool is open (!pool_ready): nothing is freed into it.  The
	 * checkpoint below records these evictions. */
	while (used > limit) {
		struct tc_node *e = tc_lru_victim(&s->lru);
		if (!e)
			break;
		used -= entry_alloc(e);
		evicted(s, e->id, tc_node_name(e), subtree_bytes(e));
		remove_subtree(s, e);
	}
	if (used > limit)
		return -EFBIG; /* cannot be: the pinned entries fit */
	if (holds_past(s->idx.root, limit)) {
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

