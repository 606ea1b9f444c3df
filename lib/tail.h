/*
 * tail.h - what replay must remember about the part of the journal that a
 * power loss may not have kept whole (internal to libtcache).  See tail.c.
 */
#ifndef TC_TAIL_H
#define TC_TAIL_H

#include <stddef.h>
#include <stdint.h>

#include "index.h"

/* A tensor version set by a record past the last durability mark. */
struct tc_tail_new {
	uint64_t id;             /* the tensor node */
	uint64_t seq;            /* the record that set it (= its ver->seq) */
};

/* A version that a record past the last mark replaced or removed: the one
 * to fall back to if the replacement's bytes did not survive. */
struct tc_tail_old {
	uint64_t id;             /* the tensor node it belonged to */
	uint64_t parent;         /* where it was: directory id ... */
	char *name;              /* ... and name (malloc'd) */
	uint64_t seq;            /* the record that replaced or removed it */
	struct tc_ver *ver;      /* one reference, held here */
};

struct tc_tail {
	uint64_t synced;         /* largest mark: records with seq <= it name
	                            pool bytes that were durable */
	uint64_t on_disk;        /* largest mark's claim that records with
	                            seq <= it are themselves durable */
	uint64_t *drops;         /* seqs of records whose node replay had to
	                            drop (orphaned by a lost record) */
	size_t ndrops, drops_cap;
	struct tc_tail_new *news;
	size_t nnews, news_cap;
	struct tc_tail_old *olds;
	size_t nolds, olds_cap;
	int err;                 /* -ENOMEM once an add failed */
};

typedef void (*tc_tail_put_fn)(void *arg, struct tc_ver *v);

/* Remember that record @seq set the version of tensor @id.  Records come
 * in seq order.  O(1) amortized. */
void tc_tail_add_new(struct tc_tail *t, uint64_t id, uint64_t seq);

/* Remember @v (the caller's reference moves here), the version of tensor
 * @id, replaced or removed by record @seq from @name in directory @parent.
 * O(1) amortized; on -ENOMEM the reference is given back through @put. */
void tc_tail_add_old(struct tc_tail *t, uint64_t id, uint64_t parent,
		     const char *name, uint64_t seq, struct tc_ver *v,
		     tc_tail_put_fn put, void *arg);

/* A mark: every record with seq <= @synced is durable with its bytes, and
 * those <= @on_disk are durable themselves.  Forgets what it covers (old
 * versions through @put).  O(forgotten). */
void tc_tail_mark(struct tc_tail *t, uint64_t synced, uint64_t on_disk,
		  tc_tail_put_fn put, void *arg);

/* Record @seq dropped a node it could not apply (its parent is gone, a
 * stale name): damage if a mark says @seq was on disk, else a hole that a
 * power loss left before it.  O(1) amortized. */
void tc_tail_drop(struct tc_tail *t, uint64_t seq);

/* The old versions of tensor @id, or of whatever was at (@parent, @name)
 * (a tensor a rename replaced), newest first: call with *@at = t->nolds
 * to start; returns the next one or NULL.  O(olds) a walk. */
struct tc_tail_old *tc_tail_old_prev(struct tc_tail *t, uint64_t id,
				     uint64_t parent, const char *name,
				     size_t *at);

/* Forget everything (old versions through @put). */
void tc_tail_free(struct tc_tail *t, tc_tail_put_fn put, void *arg);

#endif
