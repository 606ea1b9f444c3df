/*
 * index.c - nodes and their lookup tables.
 *
 *   ids:    id -> node                              (O(1) average)
 *   names:  xxh3(name, seed = parent id) -> node    (O(1) average)
 *   tree:   each directory keeps its children in a doubly linked list in
 *           creation order (for listing); counts of children and subdirs
 *
 * Both tables chain their nodes through a link in the node (inext, hnext)
 * from an array of bucket heads, grown to keep at most one node a bucket
 * on average: 8 to 16 bytes a node for the buckets, no allocation per
 * node, and an insert that cannot fail (a table that cannot grow only
 * gets longer chains).  A table doubles a step at a time: new nodes go to
 * the new array at once, and each add or remove moves GROW_STEP of the
 * old buckets, so no operation rehashes the whole table (at 512k nodes
 * that had stalled one put for 119 ms); meanwhile a lookup reads the new
 * bucket and the old one if it is not moved yet.  A name chain compares
 * the 32 bits of the name key kept in the node before it compares parent
 * and name.  The bucket of an
 * id is its low bits (see bucket()).
 *
 * A node is one allocation: the fields of its kind (a tensor's stops
 * before the directory fields), then its name.  A rename to a name longer
 * than that inline room moves the name to an allocation of its own; a
 * rename that fits writes it back inline.
 *
 * Invariants: every linked node is in both tables exactly once; a node's
 * name is unique within its parent; the root (id TC_ROOT_ID) is embedded
 * in struct tc_index, found without the table, and never freed; next_id >
 * every id in use.
 * Locking: none here; the store's lock covers the index.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "index.h"

#define HUGE (2u << 20) /* a transparent huge page */
/* Old buckets moved per add or remove while a table grows: a doubling
 * is spread over cap / GROW_STEP operations instead of stalling one. */
#define GROW_STEP 16

static uint64_t name_key(uint64_t parent, const char *name)
{
	return XXH3_64bits_withSeed(name, strlen(name), parent);
}

/* ---- chained tables ------------------------------------------------------ */

/*
 * A link (a bucket, or a node's inext/hnext) is the address of the next
 * node of the chain with two facts about that node in its low bits, free
 * since nodes are malloc'd (aligned to 16): LAST, it ends the chain, and
 * TAG, two bits of its key.  A name lookup that misses, the usual case
 * in a replay, thus passes over a chain's last node without reading it 3
 * times in 4: a cache miss saved.
 */
#define L_LAST ((uintptr_t)1)
#define L_TAG ((uintptr_t)6)
#define L_BITS (L_LAST | L_TAG)
#define LINK(n, off) (*(uintptr_t *)((char *)(n) + (off)))

static uintptr_t tag_of(uint64_t h)
{
	return (uintptr_t)(h >> 29) & L_TAG; /* bits the bucket does not use */
}

static uintptr_t link_to(const struct tc_node *n, uint64_t h, uintptr_t next)
{
	assert(((uintptr_t)n & L_BITS) == 0);
	return (uintptr_t)n | tag_of(h) | (next ? 0 : L_LAST);
}

static struct tc_node *node_at(uintptr_t l)
{
	return (struct tc_node *)(l & ~L_BITS);
}

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
	t->b[k] = link_to(n, h, t->b[k]);
}

/* Growing: move up to @count more of the old buckets' nodes into t->b,
 * and free the old buckets once all are moved.  @key gives a node's hash,
 * @off is the offset of its chain link. */
static void grow_step(struct tc_chains *t, size_t count, size_t off,
		      uint64_t (*key)(const struct tc_node *))
{
	for (; t->old && count; count--) {
		uintptr_t l = t->old[t->moved], next;
		for (; l; l = next) {
			struct tc_node *n = node_at(l);
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
	uintptr_t *nb = calloc(cap, sizeof(*nb));
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
static uintptr_t *old_slot(const struct tc_chains *t, uint64_t h)
{
	if (!t->old)
		return NULL;
	size_t k = (size_t)h & (t->ocap - 1);
	return k >= t->moved ? &t->old[k] : NULL;
}

/* The chain that old_slot() names, or 0. */
static uintptr_t old_chain(const struct tc_chains *t, uint64_t h)
{
	uintptr_t *o = old_slot(t, h);
	return o ? *o : 0;
}

static void chains_add(struct tc_chains *t, struct tc_node *n, uint64_t h,
		       size_t off, uint64_t (*key)(const struct tc_node *))
{
	assert(t->cap);
	if (t->n >= t->cap && !t->old)
		grow_start(t, t->cap * 2, off, key); /* ENOMEM: longer chains */
	grow_step(t, GROW_STEP, off, key);
	chain_push(t, n, h, off);
	t->n++;
}

/* In the chain that starts at @p: the link that points at @n, or the 0
 * that ends the chain. */
static uintptr_t *link_at(uintptr_t *p, const struct tc_node *n, size_t off)
{
	while (*p && node_at(*p) != n)
		p = &LINK(node_at(*p), off);
	return p;
}

/* Unlink @n: the link that pointed at it takes over n's own link, whose
 * low bits describe the node after n, as they must. */
static void chains_del(struct tc_chains *t, struct tc_node *n, uint64_t h,
		       size_t off, uint64_t (*key)(const struct tc_node *))
{
	uintptr_t *o = old_slot(t, h), *p = o ? link_at(o, n, off) : NULL;
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
	return n->hash;
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
	size_t cap = pow2_at_least(nodes);
	grow_now(&x->ids, cap, IDS, id_of);
	grow_now(&x->names, cap, NAMES, hash_of);
}

/* ---- nodes --------------------------------------------------------------- */

void tc_index_init(struct tc_index *x)
{
	memset(x, 0, sizeof(*x));
	x->root.id = TC_ROOT_ID;
	x->root.kind = TC_KIND_ROOT;
	x->root.mode = 040755;
	x->root.name = (char *)""; /* never renamed nor freed */
	x->next_id = TC_ROOT_ID + 1;
}

static struct tc_node *node_new(uint64_t id, int kind, int root_file,
				const char *name)
{
	size_t len = strlen(name);
	struct tc_node *n = calloc(1, tc_node_size(kind, root_file) + len + 1);
	if (!n)
		return NULL;
	n->id = id;
	n->kind = (uint8_t)kind;
	n->root_file = (uint8_t)root_file;
	n->name = tc_node_name0(n);
	memcpy(n->name, name, len + 1);
	n->name0_len = (uint8_t)(len < 255 ? len : 255);
	return n;
}

struct tc_node *tc_node_new(uint64_t id, int kind, const char *name)
{
	return node_new(id, kind, 0, name);
}

struct tc_node *tc_node_new_file(uint64_t id, const char *name)
{
	return node_new(id, TC_KIND_TENSOR, 1, name);
}

void tc_node_free(struct tc_node *n)
{
	if (!n)
		return;
	if (n->name != tc_node_name0(n))
		free(n->name);
	if (tc_node_isdir(n) || n->root_file) {
		free(n->attrs);
		free(n->link);
		free(n->doc);
	}
	free(n);
}

struct tc_node *tc_index_get(struct tc_index *x, uint64_t id)
{
	if (id == TC_ROOT_ID)
		return &x->root;
	if (!x->ids.cap)
		return NULL;
	uintptr_t chains[2] = { x->ids.b[bucket(&x->ids, id)],
				old_chain(&x->ids, id) };
	for (int c = 0; c < 2; c++)
		for (uintptr_t l = chains[c]; l; l = node_at(l)->inext)
			if (node_at(l)->id == id)
				return node_at(l);
	return NULL;
}

uint32_t tc_name_hash(uint64_t parent, const char *name)
{
	return (uint32_t)name_key(parent, name);
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
	uintptr_t tag = tag_of(h);
	uintptr_t chains[2] = { x->names.b[bucket(&x->names, h)],
				old_chain(&x->names, h) };
	for (int c = 0; c < 2; c++) {
		for (uintptr_t l = chains[c]; l; l = node_at(l)->hnext) {
			if ((l & L_TAG) != tag) {
				if (l & L_LAST)
					break; /* not read: n could not match */
				continue;
			}
			struct tc_node *n = node_at(l);
			if (n->hash == h && n->parent == dir &&
			    strcmp(n->name, name) == 0)
				return n;
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

/* @h: the key of n's name under n->parent. */
static void names_add(struct tc_index *x, struct tc_node *n, uint32_t h)
{
	n->hash = h;
	chains_add(&x->names, n, n->hash, NAMES, hash_of);
}

static void names_del(struct tc_index *x, struct tc_node *n)
{
	chains_del(&x->names, n, n->hash, NAMES, hash_of);
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
	n->parent = dir;
	n->sib_next = NULL;
	n->sib_prev = dir->child_tail;
	if (dir->child_tail)
		dir->child_tail->sib_next = n;
	else
		dir->child_head = n;
	dir->child_tail = n;
	dir->nchildren++;
	if (tc_node_isdir(n))
		dir->nsubdirs++;
}

static void children_unlink(struct tc_node *n)
{
	struct tc_node *dir = n->parent;
	if (n->sib_prev)
		n->sib_prev->sib_next = n->sib_next;
	else
		dir->child_head = n->sib_next;
	if (n->sib_next)
		n->sib_next->sib_prev = n->sib_prev;
	else
		dir->child_tail = n->sib_prev;
	n->sib_prev = n->sib_next = NULL;
	assert(dir->nchildren > 0);
	dir->nchildren--;
	if (tc_node_isdir(n))
		dir->nsubdirs--;
}

int tc_index_add(struct tc_index *x, struct tc_node *dir, struct tc_node *n)
{
	return tc_index_add_hashed(x, dir, n, tc_name_hash(dir->id, n->name));
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
	n->parent = dir;
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
	assert(n->parent);
	names_del(x, n);
	children_unlink(n);
	count(x, n, -1);
	n->parent = NULL;
}

void tc_index_forget(struct tc_index *x, struct tc_node *n)
{
	if (tc_index_get(x, n->id) == n)
		chains_del(&x->ids, n, n->id, IDS, id_of);
}

int tc_index_move(struct tc_index *x, struct tc_node *n, struct tc_node *dir,
		  const char *name)
{
	size_t len = strlen(name);
	char *nname = tc_node_name0(n);

	if (len > n->name0_len) {
		nname = malloc(len + 1);
		if (!nname)
			return -ENOMEM;
	}
	names_del(x, n);
	children_unlink(n);
	if (n->name != tc_node_name0(n))
		free(n->name);
	memcpy(nname, name, len + 1);
	n->name = nname;
	children_link(dir, n);
	names_add(x, n, tc_name_hash(dir->id, nname));
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
	if (n->child_head)
		return n->child_head;
	while (n != top && !n->sib_next)
		n = n->parent;
	return n == top ? NULL : n->sib_next;
}

struct tc_node *tc_node_entry(struct tc_node *n)
{
	while (n && !tc_node_is_entry(n))
		n = n->parent;
	return n;
}

static void free_subtree(struct tc_node *n,
			 void (*put_ver)(void *, struct tc_ver *), void *arg)
{
	struct tc_node *c = n->child_head;
	while (c) {
		struct tc_node *next = c->sib_next;
		free_subtree(c, put_ver, arg);
		c = next;
	}
	if (n->kind == TC_KIND_TENSOR) {
		if (n->ver)
			put_ver(arg, n->ver);
		if (n->wr) {
			if (n->wr->pending)
				put_ver(arg, n->wr->pending);
			if (n->wr->hs)
				XXH3_freeState(n->wr->hs);
			free(n->wr);
		}
	}
	if (n->kind != TC_KIND_ROOT)
		tc_node_free(n);
}

void tc_index_free(struct tc_index *x, void (*put_ver)(void *, struct tc_ver *),
		   void *arg)
{
	free_subtree(&x->root, put_ver, arg);
	free(x->ids.b);
	free(x->ids.old);
	free(x->names.b);
	free(x->names.old);
	memset(&x->root, 0, sizeof(x->root));
}
