/*
 * index.h - the in-memory index: nodes (root, entries, groups, tensors),
 * tensor versions, and the two hash tables that find them (internal).
 */
#ifndef TC_INDEX_H
#define TC_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "map.h"
#include "pool.h"
#include "tcache.h"

/*
 * One version of a tensor's bytes.  A committed version is immutable; a
 * pending one belongs to the tensor's writers.  Refcounted: the node holds
 * one reference for its ver and one for its wr->pending, each read handle
 * one more.  The pool extents are freed when the last reference goes.
 * One arena slot in the common case: a single extent and a shape of up to
 * one dimension are kept inside.  Read the extents with tc_ver_ext() and
 * the pool bytes they hold with tc_ver_alloc().
 */
struct tc_ver {
	uint64_t size;           /* bytes */
	uint64_t xxh3;           /* committed: checksum of all size bytes */
	uint64_t seq;            /* journal record that committed it, or 0 */
	uint64_t number;         /* store-wide version number (tc_stat.version);
	                            0 until committed: see tc_ver_committed() */
	union {
		struct tc_extent one;    /* nextents <= 1 */
		struct tc_extent *many;  /* nextents > 1: the e[] of a
		                            malloc'd struct tc_vext */
	} ex;
	union {
		uint64_t one;    /* ndim <= 1 */
		uint64_t *many;  /* ndim > 1: malloc'd; see tc_ver_shape() */
	} shp;
	uint32_t refs;           /* protected by the store lock */
	uint32_t nextents;       /* in file order */
	uint32_t data_offset;    /* bytes before the array data (.npy) */
	uint16_t inflight : 15;  /* writes copying bytes outside the lock */
	uint16_t dirty : 1;      /* pending: changed since the last commit */
	uint8_t dtype;           /* enum tc_dtype */
	uint8_t ndim : 6;        /* <= TC_MAX_DIMS */
	uint8_t verified : 2;    /* enum tc_verified */
};

/* The extents of a version that has more than one, with their room. */
struct tc_vext {
	uint64_t alloc;          /* sum of e[].len */
	uint32_t cap;            /* room in e[] */
	uint32_t pad;
	struct tc_extent e[];
};

static inline struct tc_vext *tc_vext_of(const struct tc_ver *v)
{
	return (struct tc_vext *)(void *)((char *)v->ex.many -
					  offsetof(struct tc_vext, e));
}

/* @v's extents, nextents of them, in file order. */
static inline struct tc_extent *tc_ver_ext(const struct tc_ver *v)
{
	return v->nextents > 1 ? v->ex.many : (struct tc_extent *)&v->ex.one;
}

/* Pool bytes @v holds: the sum of its extents' lengths. */
static inline uint64_t tc_ver_alloc(const struct tc_ver *v)
{
	return v->nextents > 1 ? tc_vext_of(v)->alloc
	       : v->nextents ? v->ex.one.len : 0;
}

static inline int tc_ver_committed(const struct tc_ver *v)
{
	return v->number != 0;
}

/* tc_ver.verified: has its xxh3 been checked against the pool's bytes? */
enum tc_verified {
	TC_UNVERIFIED = 0,
	TC_VERIFIED_GOOD = 1,
	TC_VERIFIED_DAMAGED = 2,
};

/* tc_node.dead */
enum tc_dead {
	TC_LIVE = 0,
	TC_REMOVED = 1,          /* out of the index; open handles keep it */
	TC_DROPPING = 2,         /* replay's build_pool will drop it */
};

/* A tensor's writing state: made when it is first opened for writing (or
 * truncated), freed once it has no writer and no pending version, so a
 * tensor at rest does not carry it. */
struct tc_wr {
	struct tc_ver *pending;        /* writers' version, or NULL */
	struct tc_file *last_writer;   /* the newest write handle */
	uint32_t writers;              /* open write handles */
	uint64_t hashed;               /* bytes [0, hashed) of pending are in hs */
	XXH3_state_t *hs;              /* streaming checksum of pending, or NULL */
	int failed;                    /* errno of a write or reservation that
	                                  failed since the pending version
	                                  began (0: none): it is never
	                                  committed (see tc_file_commit) */
};

/* The ndim values of @v's shape. */
static inline const uint64_t *tc_ver_shape(const struct tc_ver *v)
{
	return v->ndim <= 1 ? &v->shp.one : v->shp.many;
}

/*
 * The index's arena: every node (and its inline name), every tensor
 * version and writing state, every entry's extras live in one reservation
 * of TC_ARENA_SPAN bytes aligned to its size, so the arena of any object in
 * it is its address with the low bits cleared, and a link between them is
 * a 32-bit reference: (address - arena) / 8, 0 for NULL.  index.c.
 */
#define TC_ARENA_SHIFT 35
#define TC_ARENA_SPAN ((uintptr_t)1 << TC_ARENA_SHIFT)

static inline char *tc_arena_of(const void *p)
{
	return (char *)((uintptr_t)p & ~(TC_ARENA_SPAN - 1));
}

/* The object @r refers to, in the arena that holds @near. */
static inline void *tc_deref(const void *near, uint32_t r)
{
	return r ? tc_arena_of(near) + ((size_t)r << 3) : NULL;
}

static inline uint32_t tc_ref(const void *p)
{
	return p ? (uint32_t)(((uintptr_t)p & (TC_ARENA_SPAN - 1)) >> 3) : 0;
}

/* @size zeroed bytes in the arena that holds @near; NULL on ENOMEM. */
void *tc_arena_alloc(const void *near, size_t size);
/* Give back what tc_arena_alloc(, @size) returned (NULL: nothing). */
void tc_arena_free(void *p, size_t size);

/* An entry's rarely set strings, behind one reference (tc_node.extra). */
struct tc_extra {
	char *attrs;                   /* entries: compact JSON or NULL */
	char *link;                    /* entries: the name of the parent
	                                  entry (links.c), or NULL */
	char *doc;                     /* entries and groups: the keys of the
	                                  user's meta.json we do not own, a
	                                  compact JSON object, or NULL */
};

/*
 * A node: one arena slot holding the fields its kind uses and, after
 * them, the name it was created with (at least 4 bytes of room: see
 * tc_node_name).  A tensor's slot ends at TC_NODE_TENSOR_SIZE: the
 * directory fields past it do not exist for a tensor, and only code that
 * checked tc_node_isdir() may touch them; except a file at the root
 * (root_file), which is an entry and so has the entry fields (lru links,
 * created, last_access, extra: see tc_node_is_entry()).  A tensor's ver
 * and wr share their place with a directory's counts: read them with
 * tc_nver() and tc_nwr(), NULL for a directory.  Links to other nodes are
 * arena references, read and written with the helpers below.
 */
struct tc_node {
	/* every node; what a chain walk reads first */
	uint64_t id;
	uint32_t inext;                /* chain of the same id bucket */
	uint32_t hnext;                /* ... of the same name bucket */
	uint32_t parent_r;             /* 0 for the root and dead nodes */
	uint16_t mode : 12;            /* permission bits (07777) */
	uint16_t kind : 4;             /* enum tc_kind */
	uint8_t htag;                  /* 8 bits of the name key (index.c) */
	uint8_t dead : 2;              /* enum tc_dead: 0 while in the index */
	uint8_t root_file : 1;         /* a tensor made at the root: an entry,
	                                  allocated whole; it never moves
	                                  below the root (EXDEV) */
	uint8_t name_ext : 1;          /* the name is in its own slot, whose
	                                  reference the inline room holds */
	uint8_t name_small : 1;        /* with name_ext: the room is
	                                  TC_NODE_NAME_MIN bytes (else it
	                                  is 4 + what follows the reference
	                                  up to its NUL, the created name's
	                                  tail) */
	uint8_t pinned : 1;            /* entries: explicit pin */
	uint8_t parked : 1;            /* entries: in lru.c's parked list */
	int64_t atime, mtime, ctime;   /* ns since the epoch */
	uint32_t sib_prev_r, sib_next_r;
	uint32_t uid, gid;
	union {
		uint32_t refs;         /* tensors: open handles */
		uint32_t opens;        /* dirs: open handles below */
	};
	union {
		struct {               /* tensors */
			uint32_t ver_r;    /* committed, or 0 */
			uint32_t wr_r;     /* writing state, or 0 */
		};
		struct {               /* directories */
			uint32_t nchildren, nsubdirs;
		};
	};
	/* directories and root files only: not allocated for a tensor */
	uint32_t child_head_r, child_tail_r;   /* creation order */
	uint32_t lru_prev_r, lru_next_r;       /* entries: in lru.c */
	uint32_t kids;                 /* entries: present entries whose
	                                  parent link names this one */
	int64_t created, last_access;  /* entries */
	uint32_t extra_r;              /* entries and groups: tc_extra or 0 */
};

#define TC_NODE_TENSOR_SIZE offsetof(struct tc_node, child_head_r)
#define TC_NODE_NAME_MIN 4u

/* Bytes of a node's struct that exist (the name follows them). */
static inline size_t tc_node_size(int kind, int root_file)
{
	return kind == TC_KIND_TENSOR && !root_file
		       ? TC_NODE_TENSOR_SIZE
		       : offsetof(struct tc_node, extra_r) + sizeof(uint32_t);
}

/* The room inside @n after its fields (the name it was created with, or
 * a shorter name written back by a rename; or, with name_ext, the
 * reference of its own slot). */
static inline char *tc_node_name0(const struct tc_node *n)
{
	return (char *)n + tc_node_size(n->kind, n->root_file);
}

static inline char *tc_node_name(const struct tc_node *n)
{
	if (n->name_ext) {
		uint32_t r;
		memcpy(&r, tc_node_name0(n), sizeof(r));
		return tc_deref(n, r);
	}
	return tc_node_name0(n);
}

#define TC_NODE_LINK(f)                                                     \
	static inline struct tc_node *tc_##f(const struct tc_node *n)       \
	{                                                                   \
		return tc_deref(n, n->f##_r);                               \
	}                                                                   \
	static inline void tc_set_##f(struct tc_node *n, struct tc_node *to) \
	{                                                                   \
		n->f##_r = tc_ref(to);                                      \
	}
TC_NODE_LINK(parent)
TC_NODE_LINK(sib_prev)
TC_NODE_LINK(sib_next)
TC_NODE_LINK(child_tail)
TC_NODE_LINK(lru_prev)
TC_NODE_LINK(lru_next)
#undef TC_NODE_LINK

/* A directory's first child; NULL for a tensor (which has no such
 * field). */
static inline struct tc_node *tc_child_head(const struct tc_node *n)
{
	return n->kind != TC_KIND_TENSOR ? tc_deref(n, n->child_head_r) : NULL;
}

static inline void tc_set_child_head(struct tc_node *n, struct tc_node *to)
{
	n->child_head_r = tc_ref(to);
}

/* A tensor's committed version and writing state; NULL for a directory. */
static inline struct tc_ver *tc_nver(const struct tc_node *n)
{
	return n->kind == TC_KIND_TENSOR ? tc_deref(n, n->ver_r) : NULL;
}

static inline void tc_set_nver(struct tc_node *n, struct tc_ver *v)
{
	n->ver_r = tc_ref(v);
}

static inline struct tc_wr *tc_nwr(const struct tc_node *n)
{
	return n->kind == TC_KIND_TENSOR ? tc_deref(n, n->wr_r) : NULL;
}

static inline void tc_set_nwr(struct tc_node *n, struct tc_wr *w)
{
	n->wr_r = tc_ref(w);
}

/* An entry's or group's extras (NULL: none set). */
static inline struct tc_extra *tc_extra(const struct tc_node *n)
{
	return tc_deref(n, n->extra_r);
}

/* The extras of @n, made if missing; NULL on ENOMEM. */
struct tc_extra *tc_extra_get(struct tc_node *n);
/* Free the extras of @n if none is set any more. */
void tc_extra_tidy(struct tc_node *n);

static inline char *tc_attrs(const struct tc_node *n)
{
	struct tc_extra *e = tc_extra(n);
	return e ? e->attrs : NULL;
}

static inline char *tc_link(const struct tc_node *n)
{
	struct tc_extra *e = tc_extra(n);
	return e ? e->link : NULL;
}

static inline char *tc_doc(const struct tc_node *n)
{
	struct tc_extra *e = tc_extra(n);
	return e ? e->doc : NULL;
}


/* A hash table of nodes chained through a link inside the node: a bucket
 * costs 4 bytes (an arena reference) and the node needs no separate
 * allocation.  It grows by
 * doubling, a few buckets moved per add or remove (index.c). */
struct tc_chains {
	char *arena;           /* of the nodes */
	uint32_t *b;           /* cap buckets: node references */
	size_t cap;            /* a power of two, or 0 */
	size_t n;              /* nodes in the table (in b and old) */
	uint32_t *old;         /* while growing: the ocap buckets before, of
	                          which [0, moved) are moved to b; else NULL */
	size_t ocap, moved;
};

struct tc_index {
	char *arena;            /* TC_ARENA_SPAN bytes reserved (index.c) */
	struct tc_node *root;   /* the first node of the arena */
	struct tc_chains ids;   /* id -> node, through inext */
	struct tc_chains names; /* (parent id, name) -> node, through hnext */
	uint64_t next_id;
	uint64_t entries, groups, tensors; /* a file at the root counts as
	                                     an entry and a tensor */
};

/* -ENOMEM if the arena cannot be reserved. */
int tc_index_init(struct tc_index *x);

/* Size the tables for @nodes nodes in all (a hint: they grow anyway), so a
 * replay does not rehash while it adds them.  Cost O(nodes) once. */
void tc_index_reserve(struct tc_index *x, uint64_t nodes);

/* Free every node below the root (versions via @put_ver), then the
 * arena: nothing of the index may be used after it. */
void tc_index_free(struct tc_index *x, void (*put_ver)(void *, struct tc_ver *),
		   void *arg);

struct tc_node *tc_index_get(struct tc_index *x, uint64_t id);
struct tc_node *tc_index_find(struct tc_index *x, const struct tc_node *dir,
			      const char *name);
/* The same, with @h = tc_name_hash(dir->id, name). */
struct tc_node *tc_index_find_hashed(struct tc_index *x,
				     const struct tc_node *dir,
				     const char *name, uint32_t h);

/* The key of @name in the directory whose id is @parent: what the name
 * table hashes.  For the calls below that take it ready-made (a replay
 * needs it three times a node). */
uint32_t tc_name_hash(uint64_t parent, const char *name);

/* Start loading the buckets that adding node @id with name key @h will
 * read, so that several nodes' cache misses overlap (replay). */
void tc_index_prefetch(const struct tc_index *x, uint64_t id, uint32_t h);

/* A new detached node of @x (id, kind, copy of name); NULL on ENOMEM. */
struct tc_node *tc_node_new(struct tc_index *x, uint64_t id, int kind,
			    const char *name);
/* The same for a tensor that will be at the root: root_file set. */
struct tc_node *tc_node_new_file(struct tc_index *x, uint64_t id,
				 const char *name);
void tc_node_free(struct tc_node *n);

/* Link @n (detached, name not present in @dir) under @dir.  Fails only
 * (-ENOMEM) before the first buckets exist: a table that cannot grow later
 * only gets longer chains. */
int tc_index_add(struct tc_index *x, struct tc_node *dir, struct tc_node *n);
/* The same, with @h = tc_name_hash(dir->id, n->name). */
int tc_index_add_hashed(struct tc_index *x, struct tc_node *dir,
			struct tc_node *n, uint32_t h);

/* Unlink @n from its parent and the tables (it keeps no children in the
 * tables: the caller removes a subtree bottom-up).  Its parent: NULL. */
void tc_index_remove(struct tc_index *x, struct tc_node *n);

/* Take @n out of the tree and the name table but keep it findable by id
 * (a removed tensor that is still open); tc_index_forget() ends that. */
void tc_index_unname(struct tc_index *x, struct tc_node *n);
void tc_index_forget(struct tc_index *x, struct tc_node *n);

/* Move @n under @dir as @name (no node of that name there).  -ENOMEM
 * leaves it where it was. */
int tc_index_move(struct tc_index *x, struct tc_node *n, struct tc_node *dir,
		  const char *name);

/* Change an entry into a group or back (keeps the counts right). */
void tc_index_set_kind(struct tc_index *x, struct tc_node *n, int kind);

/* The node after @n in a pre-order walk of the subtree at @top, or NULL
 * at its end.  No recursion: any depth.  A walk may remove the node it is
 * on if it fetched the next one first and the node has no children. */
struct tc_node *tc_node_next(const struct tc_node *n, const struct tc_node *top);

/* The entry that @n is in (itself for an entry); NULL for the root. */
struct tc_node *tc_node_entry(struct tc_node *n);

static inline int tc_node_isdir(const struct tc_node *n)
{
	return n->kind != TC_KIND_TENSOR;
}

/* Is @n an entry: a directory at the root, or a file there?  Only an
 * entry has the entry fields (pinned, lru links, created, last_access,
 * attrs). */
static inline int tc_node_is_entry(const struct tc_node *n)
{
	return n->kind == TC_KIND_ENTRY || n->root_file;
}

#endif
