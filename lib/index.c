/*
 * index.c - nodes and their lookup tables.
 *
 *   ids:    id -> node                              (O(1) average)
 *   names:  xxh3(name, seed = parent id) -> node    (O(1) average)
 *   tree:   each directory keeps its children in a doubly linked list in
 *           creation order (for listing); counts of children and subdirs
 *
 * Both tables chain their nodes through a link in the node (inext, hnext)
 * from an array of bucket heads (4-byte arena references), grown to keep
 * at most LOAD nodes a bucket on average: 2 to 4 bytes a node for the
 * buckets, no allocation per node, and an insert that cannot fail (a
 * table that cannot grow only gets longer chains).  A table doubles a step at a time: new nodes go to
 * the new array at once, and each add or remove moves GROW_STEP of the
 * old buckets, so no operation rehashes the whole table (at 512k nodes
 * that had stalled one put for 119 ms); meanwhile a lookup reads the new
 * bucket and the old one if it is not moved yet.  A name chain compares
 * 8 bits of the name key kept in the node (htag), then the parent, then
 * the name; a node's whole name key is computed again when a growing
 * table moves it.  The bucket of an id is its low bits (see bucket()).
 *
 * The arena: one reservation of TC_ARENA_SPAN bytes aligned to its size
 * (so an object's arena is its address with the low bits cleared),
 * PROT_NONE until used, made readable and writable ARENA_STEP bytes at a
 * time as its bump pointer passes.  Its first bytes hold struct arena: the
 * bump pointer and a free list per size class (multiples of 8 bytes, up
 * to ARENA_MAX_CLASS, more than a node with a TC_NAME_MAX name needs).
 * No header per object: a caller frees with the size it allocated.  A
 * freed slot goes to its class's free list (the arena never shrinks, as
 * malloc's heap seldom did).  32 GiB of slots: about 100M entries of one
 * tensor each; past that an allocation fails with ENOMEM.  Under ASan a
 * free slot is poisoned (all but the free list's link).
 *
 * A node is one arena slot: the fields of its kind (a tensor's stops
 * before the directory fields), then its name (room for at least
 * TC_NODE_NAME_MIN bytes).  An inline name always fills that room (the
 * room's size is not kept: it is read off the name), so a rename to a
 * name of another length moves the name to a slot of its own, whose
 * reference the room's first bytes then hold (name_ext), and a rename
 * that fills the room exactly writes it back inline.
 *
 * Invariants: every linked node is in both tables exactly once; a node's
 * name is unique within its parent; the root (id TC_ROOT_ID) is the first
 * node of the arena, found without the table, and freed with the arena;
 * next_id > every id in use.
 * Locking: none here; the store's lock covers the index.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "index.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TC_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TC_ASAN 1
#endif
#ifdef TC_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define HUGE (2u << 20) /* a transparent huge page */
/* Old buckets moved per add or remove while a table grows: a doubling
 * is spread over cap / GROW_STEP operations instead of stalling one. */
#define GROW_STEP 16
/* Nodes a bucket at most, on average, before a table doubles: a chain
 * that misses reads about LOAD nodes (most of them only to their htag),
 * and the buckets cost 4 / LOAD to 8 / LOAD bytes a node. */
#define LOAD 2

/* ---- arena --------------------------------------------------------------- */

#define ARENA_STEP ((size_t)1 << 20)   /* made usable at a time */
#define ARENA_MAX_CLASS 1024            /* bytes: the largest slot */
#define ARENA_CLASSES (ARENA_MAX_CLASS / 8 + 1)

struct arena {
	size_t top;                     /* bump pointer: bytes handed out */
	size_t usable;                  /* bytes readable and writable */
	uint32_t free[ARENA_CLASSES];   /* per size / 8: a chain of free
	                                   slots through their first word */
};

static char *arena_reserve(void)
{
	size_t span = TC_ARENA_SPAN;
	char *p = mmap(NULL, 2 * span, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	char *a = (char *)(((uintptr_t)p + span - 1) & ~(span - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	munmap(a + span, (size_t)(p + 2 * span - (a + span)));
	if (mprotect(a, ARENA_STEP, PROT_READ | PROT_WRITE)) {
		munmap(a, span);
		return NULL;
	}
	struct arena *ar = (struct arena *)a;
	ar->usable = ARENA_STEP;
	ar->top = (sizeof(*ar) + 7) & ~(size_t)7;
	return a;
}

static size_t slot_size(size_t size)
{
	return size ? (size + 7) & ~(size_t)7 : 8;
}

void *tc_arena_alloc(const void *near, size_t size)
{
	struct arena *ar = (struct arena *)tc_arena_of(near);
	size_t sz = slot_size(size);
	char *p;

	assert(sz <= ARENA_MAX_CLASS);
	if (sz > ARENA_MAX_CLASS)
		return NULL;
	uint32_t r = ar->free[sz / 8];
	if (r) {
		p = tc_deref(ar, r);
		UNPOISON(p, sz);
		memcpy(&ar->free[sz / 8], p, sizeof(uint32_t));
	} else {
		if (ar->top + sz > TC_ARENA_SPAN)
			return NULL;
		if (ar->top + sz > ar->usable) {
			size_t grow = ar->top + sz - ar->usable;
			grow = (grow + ARENA_STEP - 1) & ~(ARENA_STEP - 1);
			if (mprotect((char *)ar + ar->usable, grow,
				     PROT_READ | PROT_WRITE))
				return NULL;
			ar->usable += grow;
		}
		p = (char *)ar + ar->top;
		ar->top += sz;
	}
	memset(p, 0, sz);
	return p;
}

void tc_arena_free(void *p, size_t size)
{
	if (!p)
		return;
	struct arena *ar = (struct arena *)tc_arena_of(p);
	size_t sz = slot_size(size);
	memset(p, 0, sz);
	memcpy(p, &ar->free[sz / 8], sizeof(uint32_t));
	ar->free[sz / 8] = tc_ref(p);
	POISON((char *)p + sizeof(uint32_t), sz - sizeof(uint32_t));
}

/* ---- chained tables ------------------------------------------------------ */

#define LINK(n, off) (*(uint32_t *)((char *)(n) + (off)))
/* The bits of a name key a node keeps, to pass over most nodes of a name
 * chain without comparing names: ones the bucket does not use (below
 * 2^24 buckets). */
#define HTAG(h) ((uint8_t)((uint32_t)(h) >> 24))

/* The name table's keys are xxh3 already; ids are handed out in sequence,
 * so taken as they are they fill the buckets evenly, and nodes made one
 * after the other (a replay) land in neighbouring buckets: fewer misses. */
static size_t bucket(const struct tc_chains *t, uint64_t h)
{
	return (size_t)h & (t->cap - 1);
}

/* Put @n (key @h) at the head of its chain in t->b. */
static void chain_push(struct tc_chains *t, struct tc_node *n, uint64_t h,
		       size_t off)
{
	size_t k = bucket(t, h);
	LINK(n, off) = t->b[k];
	t->b[k] = tc_ref(n);
}

/* Growing: move up to @count more of the old buckets' nodes into t->b,
 * and free the old buckets once all are moved.  @key gives a node's hash,
 * @off is the offset of its chain link. */
static void grow_step(struct tc_chains *t, size_t count, size_t off,
		      uint64_t (*key)(const struct tc_node *))
{
	for (; t->old && count; count--) {
		uint32_t l = t->old[t->moved], next;
		for (; l; l = next) {
			struct tc_node *n = tc_deref(t->arena, l);
			next = LINK(n, off);
			chain_push(t, n, key(n), off);
		}
		t->old[t->moved++] = 0;
		if (t->moved == t->ocap) {
			free(t->old);
			t->old = NULL;
			t->ocap = t->moved = 0;
		}
	}
}

/* Grow to @cap buckets (a power of two): new nodes go there at once, the
 * nodes in place follow by grow_step().  Ends a growth under way first.
 * -ENOMEM leaves the table as it was. */
static int grow_start(struct tc_chains *t, size_t cap, size_t off,
		      uint64_t (*key)(const struct tc_node *))
{
	uint32_t *nb = calloc(cap, sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	/* A big table is read at random: huge pages save a TLB miss a
	 * lookup (a hint; calloc's large blocks are fresh mmaps). */
	if (cap * sizeof(*nb) >= (4u << 20))
		madvise((void *)(((uintptr_t)nb + HUGE - 1) & ~(uintptr_t)(HUGE - 1)),
			cap * sizeof(*nb) - HUGE, MADV_HUGEPAGE);
	grow_step(t, SIZE_MAX, off, key);
	t->old = t->cap ? t->b : NULL;
	t->ocap = t->cap;
	t->moved = 0;
	t->b = nb;
	t->cap = cap;
	return 0;
}

/* The old bucket that may still hold key @h while growing, or NULL. */
static uint32_t *old_slot(const struct tc_chains *t, uint64_t h)
{
	if (!t->old)
		return NULL;
	size_t k = (size_t)h & (t->ocap - 1);
	return k >= t->moved ? &t->old[k] : NULL;
}

/* The chain that old_slot() names, or 0. */
static uint32_t old_chain(const struct tc_chains *t, uint64_t h)
{
	uint32_t *o = old_slot(t, h);
	return o ? *o : 0;
}

static void chains_add(struct tc_chains *t, struct tc_node *n, uint64_t h,
		       size_t off, uint64_t (*key)(const struct tc_node *))
{
	assert(t->cap);
	if (t->n >= LOAD * t->cap && !t->old)
		grow_start(t, t->cap * 2, off, key); /* ENOMEM: longer chains */
	grow_step(t, GROW_STEP, off, key);
	chain_push(t, n, h, off);
	t->n++;
}

/* In the chain that starts at @p: the link that points at @n, or the 0
 * that ends the chain. */
static uint32_t *link_at(uint32_t *p, const struct tc_node *n, size_t off)
{
	uint32_t r = tc_ref(n);
	while (*p && *p != r)
		p = &LINK(tc_deref(n, *p), off);
	return p;
}

/* Unlink @n: the link that pointed at it takes over n's own link. */
static void chains_del(struct tc_chains *t, struct tc_node *n, uint64_t h,
		       size_t off, uint64_t (*key)(const struct tc_node *))
{
	uint32_t *o = old_slot(t, h), *p = o ? link_at(o, n, off) : NULL;
	if (!p || !*p)
		p = link_at(&t->b[bucket(t, h)], n, off);
	assert(*p);
	if (*p)
		*p = LINK(n, off);
	LINK(n, off) = 0;
	t->n--;
	grow_step(t, GROW_STEP, off, key);
}

static uint64_t id_of(const struct tc_node *n)
{
	return n->id;
}

static uint64_t hash_of(const struct tc_node *n)
{
	return tc_name_hash(tc_parent(n)->id, tc_node_name(n));
}

#define IDS offsetof(struct tc_node, inext)
#define NAMES offsetof(struct tc_node, hnext)

static size_t pow2_at_least(uint64_t n)
{
	size_t cap = 16;
	while (cap < n && cap < ((size_t)1 << 40))
		cap *= 2;
	return cap;
}

/* Grow @t to @cap buckets at once (an open, before a replay adds nodes). */
static void grow_now(struct tc_chains *t, size_t cap, size_t off,
		     uint64_t (*key)(const struct tc_node *))
{
	if (cap > t->cap && grow_start(t, cap, off, key) == 0)
		grow_step(t, SIZE_MAX, off, key);
}

void tc_index_reserve(struct tc_index *x, uint64_t nodes)
{
	size_t cap = pow2_at_least(nodes / LOAD);
	grow_now(&x->ids, cap, IDS, id_of);
	grow_now(&x->names, cap, NAMES, hash_of);
}

/* ---- nodes --------------------------------------------------------------- */

static size_t node_bytes(int kind, int root_file, size_t len)
{
	size_t room = len + 1 > TC_NODE_NAME_MIN ? len + 1 : TC_NODE_NAME_MIN;
	return tc_node_size(kind, root_file) + room;
}

/* Bytes of @n's inline name room: a name is written inline only when it
 * fills it (a shorter one than the room would hide its size), so this is
 * its name's size; or, with name_ext, see tc_node.name_small. */
static size_t name_room(const struct tc_node *n)
{
	const char *r = tc_node_name0(n);
	size_t l;
	if (n->name_ext)
		l = n->name_small ? TC_NODE_NAME_MIN : 4 + strlen(r + 4) + 1;
	else
		l = strlen(r) + 1;
	return l < TC_NODE_NAME_MIN ? TC_NODE_NAME_MIN : l;
}

/* Bytes of @n's slot. */
static size_t node_slot(const struct tc_node *n)
{
	return tc_node_size(n->kind, n->root_file) + name_room(n);
}

int tc_index_init(struct tc_index *x)
{
	memset(x, 0, sizeof(*x));
	x->arena = arena_reserve();
	if (!x->arena)
		return -ENOMEM;
	x->ids.arena = x->names.arena = x->arena;
	x->root = tc_arena_alloc(x->arena, node_bytes(TC_KIND_ROOT, 0, 0));
	x->root->id = TC_ROOT_ID;
	x->root->kind = TC_KIND_ROOT;
	x->root->mode = 0755;
	x->next_id = TC_ROOT_ID + 1;
	return 0;
}

static struct tc_node *node_new(struct tc_index *x, uint64_t id, int kind,
				int root_file, const char *name)
{
	size_t len = strlen(name);
	struct tc_node *n = tc_arena_alloc(x->arena,
					   node_bytes(kind, root_file, len));
	if (!n)
		return NULL;
	n->id = id;
	n->kind = (uint8_t)kind;
	n->root_file = root_file ? 1 : 0;
	memcpy(tc_node_name0(n), name, len + 1);
	return n;
}

struct tc_node *tc_node_new(struct tc_index *x, uint64_t id, int kind,
			    const char *name)
{
	return node_new(x, id, kind, 0, name);
}

struct tc_node *tc_node_new_file(struct tc_index *x, uint64_t id,
				 const char *name)
{
	return node_new(x, id, TC_KIND_TENSOR, 1, name);
}

/* Free @n's own name slot, if it has one (name_ext stays set). */
static void name_ext_free(struct tc_node *n)
{
	if (n->name_ext) {
		char *p = tc_node_name(n);
		tc_arena_free(p, strlen(p) + 1);
	}
}

void tc_node_free(struct tc_node *n)
{
	if (!n)
		return;
	name_ext_free(n);
	if (tc_node_isdir(n) || n->root_file) {
		struct tc_extra *e = tc_extra(n);
		if (e) {
			free(e->attrs);
			free(e->link);
			free(e->doc);
			tc_arena_free(e, sizeof(*e));
		}
	}
	tc_arena_free(n, node_slot(n));
}

struct tc_extra *tc_extra_get(struct tc_node *n)
{
	struct tc_extra *e = tc_extra(n);
	if (!e && (e = tc_arena_alloc(n, sizeof(*e))))
		n->extra_r = tc_ref(e);
	return e;
}

void tc_extra_tidy(struct tc_node *n)
{
	struct tc_extra *e = tc_extra(n);
	if (e && !e->attrs && !e->link && !e->doc) {
		tc_arena_free(e, sizeof(*e));
		n->extra_r = 0;
	}
}

struct tc_node *tc_index_get(struct tc_index *x, uint64_t id)
{
	if (id == TC_ROOT_ID)
		return x->root;
	if (!x->ids.cap)
		return NULL;
	uint32_t chains[2] = { x->ids.b[bucket(&x->ids, id)],
			       old_chain(&x->ids, id) };
	for (int c = 0; c < 2; c++)
		for (uint32_t l = chains[c]; l;) {
			struct tc_node *n = tc_deref(x->arena, l);
			if (n->id == id)
				return n;
			l = n->inext;
		}
	return NULL;
}

uint32_t tc_name_hash(uint64_t parent, const char *name)
{
	return (uint32_t)XXH3_64bits_withSeed(name, strlen(name), parent);
}

struct tc_node *tc_index_find(struct tc_index *x, const struct tc_node *dir,
			      const char *name)
{
	return tc_index_find_hashed(x, dir, name, tc_name_hash(dir->id, name));
}

struct tc_node *tc_index_find_hashed(struct tc_index *x,
				     const struct tc_node *dir,
				     const char *name, uint32_t h)
{
	if (!x->names.cap)
		return NULL;
	uint32_t d = tc_ref(dir);
	uint32_t chains[2] = { x->names.b[bucket(&x->names, h)],
			       old_chain(&x->names, h) };
	for (int c = 0; c < 2; c++) {
		for (uint32_t l = chains[c]; l;) {
			struct tc_node *n = tc_deref(x->arena, l);
			if (n->htag == HTAG(h) && n->parent_r == d &&
			    strcmp(tc_node_name(n), name) == 0)
				return n;
			l = n->hnext;
		}
	}
	return NULL;
}

void tc_index_prefetch(const struct tc_index *x, uint64_t id, uint32_t h)
{
	if (!x->ids.cap || !x->names.cap)
		return;
	__builtin_prefetch(&x->ids.b[bucket(&x->ids, id)]);
	__builtin_prefetch(&x->names.b[bucket(&x->names, h)]);
}

/* @h: the key of n's name under its parent. */
static void names_add(struct tc_index *x, struct tc_node *n, uint32_t h)
{
	n->htag = HTAG(h);
	chains_add(&x->names, n, h, NAMES, hash_of);
}

static void names_del(struct tc_index *x, struct tc_node *n)
{
	chains_del(&x->names, n, hash_of(n), NAMES, hash_of);
}

static void count(struct tc_index *x, const struct tc_node *n, int delta)
{
	switch (n->kind) {
	case TC_KIND_ENTRY: x->entries += (uint64_t)delta; break;
	case TC_KIND_GROUP: x->groups += (uint64_t)delta; break;
	case TC_KIND_TENSOR:
		x->tensors += (uint64_t)delta;
		x->entries += n->root_file ? (uint64_t)delta : 0;
		break;
	}
}


static void children_link(struct tc_node *dir, struct tc_node *n)
{
	struct tc_node *tail = tc_child_tail(dir);
	tc_set_parent(n, dir);
	tc_set_sib_next(n, NULL);
	tc_set_sib_prev(n, tail);
	if (tail)
		tc_set_sib_next(tail, n);
	else
		tc_set_child_head(dir, n);
	tc_set_child_tail(dir, n);
	dir->nchildren++;
	if (tc_node_isdir(n))
		dir->nsubdirs++;
}

static void children_unlink(struct tc_node *n)
{
	struct tc_node *dir = tc_parent(n);
	struct tc_node *prev = tc_sib_prev(n), *next = tc_sib_next(n);
	if (prev)
		tc_set_sib_next(prev, next);
	else
		tc_set_child_head(dir, next);
	if (next)
		tc_set_sib_prev(next, prev);
	else
		tc_set_child_tail(dir, prev);
	n->sib_prev_r = n->sib_next_r = 0;
	assert(dir->nchildren > 0);
	dir->nchildren--;
	if (tc_node_isdir(n))
		dir->nsubdirs--;
}

int tc_index_add(struct tc_index *x, struct tc_node *dir, struct tc_node *n)
{
	return tc_index_add_hashed(x, dir, n,
				   tc_name_hash(dir->id, tc_node_name(n)));
}

int tc_index_add_hashed(struct tc_index *x, struct tc_node *dir,
			struct tc_node *n, uint32_t h)
{
	if (!x->ids.cap || !x->names.cap) {
		tc_index_reserve(x, 0); /* the first buckets */
		if (!x->ids.cap || !x->names.cap)
			return -ENOMEM;
	}
	chains_add(&x->ids, n, n->id, IDS, id_of);
	tc_set_parent(n, dir);
	names_add(x, n, h);
	children_link(dir, n);
	count(x, n, 1);
	if (n->id >= x->next_id)
		x->next_id = n->id + 1;
	return 0;
}

void tc_index_remove(struct tc_index *x, struct tc_node *n)
{
	tc_index_unname(x, n);
	tc_index_forget(x, n);
}

void tc_index_unname(struct tc_index *x, struct tc_node *n)
{
	assert(n->parent_r);
	names_del(x, n);
	children_unlink(n);
	count(x, n, -1);
	n->parent_r = 0;
}

void tc_index_forget(struct tc_index *x, struct tc_node *n)
{
	if (tc_index_get(x, n->id) == n)
		chains_del(&x->ids, n, n->id, IDS, id_of);
}

int tc_index_move(struct tc_index *x, struct tc_node *n, struct tc_node *dir,
		  const char *name)
{
	size_t len = strlen(name), room = name_room(n);
	size_t want = len + 1 < TC_NODE_NAME_MIN ? TC_NODE_NAME_MIN : len + 1;
	char *own = NULL;

	if (want != room) {
		own = tc_arena_alloc(x->arena, len + 1);
		if (!own)
			return -ENOMEM;
	}
	names_del(x, n);
	children_unlink(n);
	name_ext_free(n);
	if (own) {
		/* the bytes past the reference keep the room's size */
		uint32_t r = tc_ref(own);
		memcpy(own, name, len + 1);
		n->name_small = room == TC_NODE_NAME_MIN;
		memcpy(tc_node_name0(n), &r, sizeof(r));
		n->name_ext = 1;
	} else {
		char *r = tc_node_name0(n);
		memset(r, 0, room);
		memcpy(r, name, len + 1);
		n->name_ext = n->name_small = 0;
	}
	children_link(dir, n);
	names_add(x, n, tc_name_hash(dir->id, tc_node_name(n)));
	return 0;
}

void tc_index_set_kind(struct tc_index *x, struct tc_node *n, int kind)
{
	count(x, n, -1);
	n->kind = (uint8_t)kind;
	count(x, n, 1);
}

struct tc_node *tc_node_next(const struct tc_node *n, const struct tc_node *top)
{
	if (n->kind != TC_KIND_TENSOR && n->child_head_r)
		return tc_child_head(n);
	while (n != top && !n->sib_next_r)
		n = tc_parent(n);
	return n == top ? NULL : tc_sib_next(n);
}

struct tc_node *tc_node_entry(struct tc_node *n)
{
	while (n && !tc_node_is_entry(n))
		n = tc_parent(n);
	return n;
}

static void free_subtree(struct tc_node *n,
			 void (*put_ver)(void *, struct tc_ver *), void *arg)
{
	struct tc_node *c = n->kind != TC_KIND_TENSOR ? tc_child_head(n) : NULL;
	while (c) {
		struct tc_node *next = tc_sib_next(c);
		free_subtree(c, put_ver, arg);
		c = next;
	}
	if (n->kind == TC_KIND_TENSOR) {
		struct tc_wr *wr = tc_nwr(n);
		if (tc_nver(n))
			put_ver(arg, tc_nver(n));
		if (wr) {
			if (wr->pending)
				put_ver(arg, wr->pending);
			if (wr->hs)
				XXH3_freeState(wr->hs);
			tc_arena_free(wr, sizeof(*wr));
		}
	}
	if (n->kind != TC_KIND_ROOT)
		tc_node_free(n);
}

void tc_index_free(struct tc_index *x, void (*put_ver)(void *, struct tc_ver *),
		   void *arg)
{
	if (x->arena) {
		free_subtree(x->root, put_ver, arg);
		/* ASan keeps a poisoned free slot's shadow past munmap: a
		 * later mapping at that address must not inherit it */
		UNPOISON(x->arena, ((struct arena *)x->arena)->top);
		munmap(x->arena, TC_ARENA_SPAN);
	}
	free(x->ids.b);
	free(x->ids.old);
	free(x->names.b);
	free(x->names.old);
	memset(x, 0, sizeof(*x));
}
