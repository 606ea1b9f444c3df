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
 * one reference for node->ver and one for node->wr->pending, each read handle
 * one more.  The pool extents are freed when the last reference goes.
 * One allocation in the common case: the first extent and a shape of up
 * to one dimension are kept inside.
 */
struct tc_ver {
	uint32_t refs;           /* protected by the store lock */
	uint32_t inflight;       /* writes copying bytes outside the lock */
	uint64_t size;           /* bytes */
	uint64_t alloc;          /* pool bytes held: sum of ext[].len */
	uint64_t xxh3;           /* committed: checksum of all size bytes */
	uint64_t seq;            /* journal record that committed it, or 0 */
	uint64_t number;         /* store-wide version number (tc_stat.version) */
	uint64_t data_offset;    /* bytes before the array data (.npy) */
	struct tc_extent *ext;   /* in file order; &ext1 while cap is 1 */
	struct tc_extent ext1;
	union {
		uint64_t one;    /* ndim <= 1 */
		uint64_t *many;  /* ndim > 1: malloc'd; see tc_ver_shape() */
	} shp;
	uint32_t nextents, cap;  /* extents used / room in ext */
	int32_t dtype;           /* enum tc_dtype */
	uint8_t ndim;            /* <= TC_MAX_DIMS */
	uint8_t committed;
	uint8_t dirty;           /* pending: changed since the last commit */
	uint8_t verified;        /* enum tc_verified */
};

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
 * A node: one allocation holding the fields its kind uses and, after
 * them, the name it was created with (name points there; a rename to a
 * longer name moves it to its own allocation).  A tensor's allocation ends
 * at TC_NODE_TENSOR_SIZE: the directory fields past it do not exist for a
 * tensor, and only code that checked tc_node_isdir() may touch them;
 * except a file at the root (root_file), which is an entry and so has
 * the entry fields (pinned, lru links, created, last_access, attrs: see
 * tc_node_is_entry()).  A directory has the tensor fields too, always
 * zero (NULL ver), so code may read those of any node.
 */
struct tc_node {
	/* every node */
	uint64_t id;
	struct tc_node *parent;        /* NULL for the root and dead nodes */
	uintptr_t inext;               /* chain of the same id bucket */
	uintptr_t hnext;               /* ... of the same name bucket (links:
	                                  see index.c) */
	struct tc_node *sib_prev, *sib_next;
	struct tc_node *child_head;    /* dirs: creation order; NULL else */
	char *name;
	int64_t atime, mtime, ctime;   /* ns since the epoch */
	uint32_t mode, uid, gid;
	uint32_t hash;                 /* name key (low 32 bits), for chains */
	union {
		uint32_t refs;         /* tensors: open handles */
		uint32_t opens;        /* dirs: open handles below */
	};
	uint8_t kind;                  /* enum tc_kind */
	uint8_t dead;                  /* enum tc_dead: 0 while in the index */
	uint8_t name0_len;             /* bytes the inline name has room for */
	uint8_t root_file;             /* a tensor made at the root: an entry,
	                                  allocated whole; it never moves
	                                  below the root (EXDEV) */
	/* tensors (zero in directories) */
	struct tc_ver *ver;            /* committed, or NULL */
	struct tc_wr *wr;              /* writing state, or NULL */
	/* directories only: not allocated for a tensor */
	uint32_t nchildren, nsubdirs;
	uint8_t pinned;                /* entries: explicit pin */
	uint8_t parked;                /* entries: in lru.c's parked list */
	uint32_t kids;                 /* entries: present entries whose
	                                  parent link names this one */
	struct tc_node *child_tail;
	struct tc_node *lru_prev, *lru_next;     /* entries: in lru.c */
	int64_t created, last_access;  /* entries */
	char *attrs;                   /* entries: compact JSON or NULL */
	char *link;                    /* entries: the name of the parent
	                                  entry (links.c), or NULL */
	char *doc;                     /* entries and groups: the keys of the
	                                  user's meta.json we do not own, a
	                                  compact JSON object, or NULL */
};

#define TC_NODE_TENSOR_SIZE offsetof(struct tc_node, nchildren)

/* Bytes of a node's struct that exist (the name follows them). */
static inline size_t tc_node_size(int kind, int root_file)
{
	return kind == TC_KIND_TENSOR && !root_file ? TC_NODE_TENSOR_SIZE
						    : sizeof(struct tc_node);
}

/* The name stored inside @n (what tc_node_new was given, or a shorter
 * name written back by a rename). */
static inline char *tc_node_name0(const struct tc_node *n)
{
	return (char *)n + tc_node_size(n->kind, n->root_file);
}

/* A hash table of nodes chained through a link inside the node: a bucket
 * costs 8 bytes and the node needs no separate allocation.  It grows by
 * doubling, a few buckets moved per add or remove (index.c). */
struct tc_chains {
	uintptr_t *b;          /* cap buckets: links (see index.c) */
	size_t cap;            /* a power of two, or 0 */
	size_t n;              /* nodes in the table (in b and old) */
	uintptr_t *old;        /* while growing: the ocap buckets before, of
	                          which [0, moved) are moved to b; else NULL */
	size_t ocap, moved;
};

struct tc_index {
	struct tc_node root;
	struct tc_chains ids;   /* id -> node, through inext */
	struct tc_chains names; /* (parent id, name) -> node, through hnext */
	uint64_t next_id;
	uint64_t entries, groups, tensors; /* a file at the root counts as
	                                     an entry and a tensor */
};

void tc_index_init(struct tc_index *x);

/* Size the tables for @nodes nodes in all (a hint: they grow anyway), so a
 * replay does not rehash while it adds them.  Cost O(nodes) once. */
void tc_index_reserve(struct tc_index *x, uint64_t nodes);

/* Free every node below the root (versions via @put_ver). */
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

/* A new detached node (id, kind, copy of name); NULL on ENOMEM. */
struct tc_node *tc_node_new(uint64_t id, int kind, const char *name);
/* The same for a tensor that will be at the root: root_file set. */
struct tc_node *tc_node_new_file(uint64_t id, const char *name);
void tc_node_free(struct tc_node *n);

/* Link @n (detached, name not present in @dir) under @dir.  Fails only
 * (-ENOMEM) before the first buckets exist: a table that cannot grow later
 * only gets longer chains. */
int tc_index_add(struct tc_index *x, struct tc_node *dir, struct tc_node *n);
/* The same, with @h = tc_name_hash(dir->id, n->name). */
int tc_index_add_hashed(struct tc_index *x, struct tc_node *dir,
			struct tc_node *n, uint32_t h);

/* Unlink @n from its parent and the tables (it keeps no children in the
 * tables: the caller removes a subtree bottom-up).  n->parent = NULL. */
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
