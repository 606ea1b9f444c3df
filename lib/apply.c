/*
 * apply.c - the one way the index changes: an op (journal.h), applied.
 *
 * Every change to what the journal holds is a record of ops, and one
 * function applies an op whether it was just appended by a live
 * operation (store_change) or read back at open (replay.c): apply_op().
 * So the index after a crash and replay is the index before it, field by
 * field, and a node field is written in two places only: node_op(), which
 * records a node as an op, and apply_node(), which makes a node what an
 * op says.  tc_store_dump() and the unit test t_replay_equals_live hold
 * the two to it.
 *
 * A live operation:
 *   1. validates, under the lock, against the index as it is (names,
 *      kinds, a directory moved below itself, ...): what it refuses
 *      changes nothing;
 *   2. builds its ops, usually node_op() of the node as it is and then
 *      the fields it changes;
 *   3. store_change(): one record appended (durable.c), then apply_op()
 *      on each op.  A failed append changes nothing.
 * What replay applies that a live operation never produces (a record
 * whose parent is gone, a name that a lost record left behind) it drops
 * or repairs here, counted; a live operation that reached that would be
 * a bug (asserted).
 *
 * Only state that the journal does not keep changes outside ops: open
 * counts, pending versions and a tensor created but not yet committed
 * (files.c: its first record is its commit), recency (touches are
 * applied at once and written in batches, durable.c), counters, and a
 * directory's mtime and ctime as its children change (they reach the
 * journal with the directory's own records).
 *
 * Lock held throughout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"

/* An entry's pin is also its sticky bit (chmod +t pins, chmod -t unpins),
 * so a pin is reachable with plain tools and visible in ls -l. */
static uint32_t pin_mode(uint32_t mode, int pinned)
{
	return pinned ? mode | S_ISVTX : mode & ~(uint32_t)S_ISVTX;
}

/* Pin or unpin the entry @op records. */
void op_set_pin(struct tc_op *op, int pinned)
{
	op->pinned = pinned ? 1 : 0;
	op->mode = pin_mode(op->mode, pinned);
}

static void pin_entry(struct tc_store *s, struct tc_node *e, int pinned)
{
	tc_lru_set_pinned(&s->lru, e, pinned);
	e->mode = pin_mode(e->mode, pinned);
}

/* The NODE op that records @n as it is, with version @v (NULL: its
 * committed one, if any).  The caller changes what its operation changes
 * before it hands the op to store_change(). */
void node_op(const struct tc_node *n, const struct tc_ver *v, struct tc_op *op)
{
	op->type = TC_OP_NODE;
	op->id = n->id;
	op->parent = tc_parent(n) ? tc_parent(n)->id : 0; /* 0: removed */
	op->kind = n->kind;
	op->mode = n->mode;
	op->uid = n->uid;
	op->gid = n->gid;
	op->atime = n->atime;
	op->mtime = n->mtime;
	op->ctime = n->ctime;
	strcpy(op->name, tc_node_name(n));
	op->created = op->last_access = 0;
	op->pinned = 0;
	op->attrs = NULL;
	op->attrs_len = 0;
	op->link = NULL;
	op->link_len = 0;
	op->doc = NULL;
	op->doc_len = 0;
	op->size = op->xxh3 = op->data_offset = 0;
	op->dtype = op->ndim = 0;
	op->nextents = 0;
	op->ext = NULL;
	op->extv = NULL;
	if (tc_node_is_entry(n)) {
		op->created = n->created;
		op->last_access = n->last_access;
		op->pinned = n->pinned;
		op->attrs = tc_attrs(n);
		op->attrs_len = tc_attrs(n) ? (uint32_t)strlen(tc_attrs(n)) : 0;
		op->link = tc_link(n);
		op->link_len = tc_link(n) ? (uint32_t)strlen(tc_link(n)) : 0;
	}
	if (tc_node_isdir(n)) {
		op->doc = tc_doc(n);
		op->doc_len = tc_doc(n) ? (uint32_t)strlen(tc_doc(n)) : 0;
	} else if (v || (v = tc_nver(n))) {
		op_set_ver(op, v);
	}
}

/* A tensor op's fields of version @v: what the record says of its bytes. */
void op_set_ver(struct tc_op *op, const struct tc_ver *v)
{
	op->size = v->size;
	op->xxh3 = v->xxh3;
	op->data_offset = v->data_offset;
	op->dtype = v->dtype;
	op->ndim = v->ndim;
	memcpy(op->shape, tc_ver_shape(v), sizeof(uint64_t) * v->ndim);
	op->nextents = v->nextents;
	op->extv = tc_ver_ext(v);
}

/* ---- removal ------------------------------------------------------------- */

/* Add @delta to the open counts of @dir and every directory above it. */
void opens_add(struct tc_node *dir, int64_t delta)
{
	for (; dir; dir = tc_parent(dir)) {
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
void node_drop(struct tc_store *s, struct tc_node *n)
{
	if (n->kind == TC_KIND_TENSOR) {
		if (n->refs) {      /* open handles free it at their close */
			n->dead = TC_REMOVED;
			return;
		}
		ver_put(s, tc_nver(n));
		wr_free(s, n);
	}
	if (s->replay_dir == n)
		s->replay_dir = NULL;
	tc_index_forget(&s->idx, n);
	tc_node_free(n);
}

/* Remove @n and everything below it from the index (and the lru). */
static void remove_rec(struct tc_store *s, struct tc_node *n)
{
	struct tc_node *c;
	while (tc_node_isdir(n) && (c = tc_child_tail(n)))
		remove_rec(s, c);
	if (tc_node_is_entry(n)) {
		links_leave(s, n);
		tc_lru_remove(&s->lru, n);
	}
	if (n->kind == TC_KIND_TENSOR && tc_nver(n))
		s->live_bytes -= tc_nver(n)->size;
	tc_index_unname(&s->idx, n);
	n->dead = TC_REMOVED;
	node_drop(s, n);
}

/* Remove @n's subtree.  Open tensors stay alive, removed, until their
 * handles close.  Not journaled: for apply_op, and for evictions a
 * checkpoint records (the shrink at open). */
void remove_subtree(struct tc_store *s, struct tc_node *n)
{
	opens_add(tc_parent(n), -(int64_t)opens_of(n));
	remove_rec(s, n);
}

uint64_t subtree_bytes(const struct tc_node *n)
{
	uint64_t b = n->kind == TC_KIND_TENSOR && tc_nver(n) ? tc_nver(n)->size : 0;
	for (const struct tc_node *c = tc_child_head(n); c; c = tc_sib_next(c))
		b += subtree_bytes(c);
	return b;
}

/* ---- apply --------------------------------------------------------------- */

/* Does @v hold the bytes @op names, in the same place? */
static int same_bytes(const struct tc_ver *v, const struct tc_op *op)
{
	if (v->size != op->size || v->xxh3 != op->xxh3 ||
	    v->nextents != op->nextents)
		return 0;
	for (uint32_t i = 0; i < v->nextents; i++) {
		struct tc_extent e;
		tc_op_extent(op, i, &e);
		if (tc_ver_ext(v)[i].off != e.off || tc_ver_ext(v)[i].len != e.len)
			return 0;
	}
	return 1;
}

/* Replay: the version @op names, as a new committed version. */
static struct tc_ver *ver_of_op(struct tc_store *s, const struct tc_op *op)
{
	struct tc_ver *v = ver_new(s);
	if (!v)
		return NULL;
	v->size = op->size;
	v->xxh3 = op->xxh3;
	v->data_offset = op->data_offset;
	v->dtype = op->dtype;
	v->verified = TC_UNVERIFIED;
	if (ver_set_shape(v, op->ndim, op->shape)) {
		tc_arena_free(v, sizeof(*v));
		return NULL;
	}
	for (uint32_t i = 0; i < op->nextents; i++) {
		struct tc_extent e;
		tc_op_extent(op, i, &e);
		if (ver_push(v, e)) {
			ver_put(s, v);
			return NULL;
		}
	}
	return v;
}

/*
 * Tensor @n's version as @op names it.  The same bytes as its version's
 * (a rename, a chmod, a new dtype or shape): that version stays, as
 * durable as it was, with the op's dtype and shape.  Else the version is
 * @v (the caller's reference moves to the node: a commit) or, in replay,
 * one made from the op; the one it replaces goes (in replay to the tail,
 * to fall back to should the new bytes not have survived a crash).
 */
static int apply_ver(struct tc_store *s, uint64_t seq, const struct tc_op *op,
		     struct tc_node *n, struct tc_ver *v)
{
	struct tc_ver *old = tc_nver(n);

	if (!v && old && same_bytes(old, op)) {
		if (old->dtype == op->dtype && old->ndim == op->ndim &&
		    old->data_offset == op->data_offset &&
		    !memcmp(tc_ver_shape(old), op->shape,
			    sizeof(uint64_t) * old->ndim))
			return 0; /* a rename, a chmod: nothing to change */
		if (ver_set_shape(old, op->ndim, op->shape))
			return -ENOMEM; /* journaled: right again at reopen */
		old->dtype = op->dtype;
		old->data_offset = op->data_offset;
		return 0;
	}
	if (!v && !s->replaying) {
		/* a live op on a tensor never committed: no version to set */
		assert(!old && op->size == 0 && op->nextents == 0);
		return 0;
	}
	if (!v) {
		if (!(v = ver_of_op(s, op)))
			return -ENOMEM;
		if (old) /* a fallback, should v not survive */
			tc_tail_add_old(&s->tail, n->id, tc_parent(n)->id, tc_node_name(n),
					seq, old, ver_put_cb, s);
		tc_tail_add_new(&s->tail, n->id, seq);
	}
	v->seq = seq;
	v->number = ++s->ver_counter;
	tc_set_nver(n, v);
	s->live_bytes += v->size;
	if (old) {
		s->live_bytes -= old->size;
		if (!s->replaying)
			ver_put(s, old);
	}
	return 0;
}

/* A record that cannot apply to the index as it is: in replay, one that
 * lost what it built on (counted, tail.c tells unsynced from damage); a
 * live operation validates before it builds ops, so never there. */
static int drop_op(struct tc_store *s, uint64_t seq)
{
	assert(s->replaying);
	tc_tail_drop(&s->tail, seq);
	return s->replaying ? 0 : -EINVAL;
}

/* TOUCH of entry @e at @when: the most recently used.  Also for a live
 * touch, which has the entry at hand (durable.c). */
void touch_entry(struct tc_store *s, struct tc_node *e, int64_t when)
{
	e->last_access = when;
	tc_lru_touch(&s->lru, e);
}

/* Is @n @dir or above it? */
static int is_above(const struct tc_node *n, const struct tc_node *dir)
{
	for (const struct tc_node *a = dir; a; a = tc_parent(a))
		if (a == n)
			return 1;
	return 0;
}

/* The attributes every kind of node has, as @op says. */
void node_set_attrs(struct tc_node *n, const struct tc_op *op)
{
	n->mode = op->mode & 07777;
	n->uid = op->uid;
	n->gid = op->gid;
	n->atime = op->atime;
	n->mtime = op->mtime;
	n->ctime = op->ctime;
}

/* Set *@field (a malloc'd string or NULL) to @len bytes at @text (NULL:
 * none), copying only when it differs. */
static int set_text(char **field, const char *text, uint32_t len)
{
	if (!text) {
		free(*field);
		*field = NULL;
	} else if (!*field || strlen(*field) != len ||
		   memcmp(*field, text, len)) {
		char *a = strndup(text, len);
		if (!a)
			return -ENOMEM;
		free(*field);
		*field = a;
	}
	return 0;
}

/* set_text() on the field at @off of @n's extras. */
static int set_extra(struct tc_node *n, size_t off, const char *text,
		     uint32_t len)
{
	struct tc_extra *e = text ? tc_extra_get(n) : tc_extra(n);
	if (!e)
		return text ? -ENOMEM : 0;
	int r = set_text((char **)(void *)((char *)e + off), text, len);
	tc_extra_tidy(n);
	return r;
}

/* Make entry @n (a directory or a file at the root) what @op says of
 * its entry fields. */
static int apply_entry(struct tc_store *s, const struct tc_op *op,
		       struct tc_node *n)
{
	n->created = op->created;
	n->last_access = op->last_access;
	pin_entry(s, n, op->pinned);
	int r = links_set(s, n, op->link, op->link_len);
	return r ? r : set_extra(n, offsetof(struct tc_extra, attrs), op->attrs,
				 op->attrs_len);
}

/* Make @n (a directory) what @op says of an entry or a group. */
static int apply_dir(struct tc_store *s, const struct tc_op *op,
		     struct tc_node *n)
{
	if (s->replaying)
		s->replay_dir = n;
	int r = set_extra(n, offsetof(struct tc_extra, doc), op->doc, op->doc_len);
	if (!r && n->kind == TC_KIND_ENTRY)
		r = apply_entry(s, op, n);
	return r;
}

/* Is @op a node at the root, where only entries are (a directory, or a
 * file that is one)? */
static int kind_fits(const struct tc_node *dir, const struct tc_op *op,
		     const struct tc_node *n)
{
	int at_root = dir->kind == TC_KIND_ROOT;
	if (op->kind == TC_KIND_TENSOR)
		return !n || n->root_file == at_root;
	return at_root == (op->kind == TC_KIND_ENTRY);
}

/*
 * NODE: create node op->id, or move, rename, re-kind and update it.  Replay
 * cost is mostly cache misses in the tables, so lookups that cannot find
 * anything are skipped: the parent is usually the directory applied last;
 * an id at or past next_id is new; a directory without children has no
 * name to clash with.
 */
static int apply_node(struct tc_store *s, uint64_t seq, const struct tc_op *op,
		      uint32_t h, struct tc_ver *v)
{
	struct tc_node *n = op->id < s->idx.next_id ? tc_index_get(&s->idx, op->id)
						    : NULL;
	struct tc_node *dir = n && tc_parent(n) && tc_parent(n)->id == op->parent
				      ? tc_parent(n)
			      : s->replay_dir && s->replay_dir->id == op->parent
				      ? s->replay_dir
				      : tc_index_get(&s->idx, op->parent);
	struct tc_node *other;

	if (!dir || !tc_node_isdir(dir) || !kind_fits(dir, op, n) ||
	    (n && (n->kind == TC_KIND_TENSOR) != (op->kind == TC_KIND_TENSOR)) ||
	    (n && tc_node_isdir(n) && is_above(n, dir)))
		return drop_op(s, seq);
	if (n && tc_parent(n) == dir && !strcmp(tc_node_name(n), op->name))
		other = n; /* where it was: names in a directory are unique */
	else
		other = dir->nchildren
				? tc_index_find_hashed(&s->idx, dir, op->name, h)
				: NULL;
	if (other && other != n) {
		/* a lost record left a stale name */
		int r = drop_op(s, seq);
		report_drop(s, other, "replaced by a later record (journal lost a record)");
		remove_subtree(s, other);
		if (r)
			return r;
	}
	if (!n) {
		n = op->kind == TC_KIND_TENSOR && dir->kind == TC_KIND_ROOT
			    ? tc_node_new_file(&s->idx, op->id, op->name)
			    : tc_node_new(&s->idx, op->id, op->kind, op->name);
		if (!n || tc_index_add_hashed(&s->idx, dir, n, h)) {
			tc_node_free(n);
			return -ENOMEM;
		}
		if (tc_node_is_entry(n)) {
			tc_lru_add(&s->lru, n);
			links_join(s, n);
		}
	} else {
		if (tc_parent(n) != dir || strcmp(tc_node_name(n), op->name)) {
			uint64_t o = opens_of(n);
			opens_add(tc_parent(n), -(int64_t)o);
			if (tc_index_move(&s->idx, n, dir, op->name)) {
				opens_add(tc_parent(n), (int64_t)o);
				return -ENOMEM;
			}
			opens_add(dir, (int64_t)o);
			if (tc_node_is_entry(n) && n->kind == op->kind)
				links_join(s, n); /* children by its new name */
		}
		if (n->kind != op->kind) {
			if (n->kind == TC_KIND_ENTRY) {
				links_leave(s, n);
				tc_lru_remove(&s->lru, n);
			}
			tc_index_set_kind(&s->idx, n, op->kind);
			if (n->kind == TC_KIND_ENTRY) {
				tc_lru_add(&s->lru, n);
				links_join(s, n);
			}
		}
	}
	node_set_attrs(n, op);
	if (tc_node_isdir(n))
		return apply_dir(s, op, n);
	int r = apply_ver(s, seq, op, n, v);
	return !r && n->root_file ? apply_entry(s, op, n) : r;
}

/*
 * Apply one op of record @seq (0: an op store_change() did not write).
 * @h: for a NODE op, the key of its name (tc_name_hash).  @v: for a
 * tensor's NODE op, the version it names when the caller holds it (its
 * reference moves to the node), else NULL.  Lock held.
 */
/* Tell the change listener that entry @e changed (or went: @removed). */
static void tell(struct tc_store *s, const struct tc_node *e, int removed,
		 uint64_t bytes)
{
	if (e && s->change_fn && !s->replaying && !s->evicting)
		s->change_fn(s->change_arg, e->id, tc_node_name(e), removed, bytes);
}

/* apply_node, and the listener told of the entries it changed. */
static int apply_node_told(struct tc_store *s, uint64_t seq,
			   const struct tc_op *op, uint32_t h, struct tc_ver *v)
{
	struct tc_node *n = s->change_fn && !s->replaying
				    ? tc_index_get(&s->idx, op->id) : NULL;
	if (n && tc_node_is_entry(n) && tc_parent(n) &&
	    (tc_parent(n)->id != op->parent || strcmp(tc_node_name(n), op->name)))
		tell(s, n, 1, 0); /* renamed or moved away from its name */
	int r = apply_node(s, seq, op, h, v);
	if (!r && s->change_fn && !s->replaying &&
	    (n = tc_index_get(&s->idx, op->id)) && tc_parent(n))
		tell(s, tc_node_entry(n), 0, v ? v->size : 0);
	return r;
}

int apply_op(struct tc_store *s, uint64_t seq, const struct tc_op *op,
	     uint32_t h, struct tc_ver *v)
{
	struct tc_node *n;

	assert_locked(s);
	switch (op->type) {
	case TC_OP_NODE:
		return apply_node_told(s, seq, op, h, v);
	case TC_OP_DEL:
		n = tc_index_get(&s->idx, op->id);
		if (!n)
			break;
		if (tc_parent(n))
			tell(s, tc_node_entry(n), tc_node_is_entry(n), 0);
		if (s->replaying && n->kind == TC_KIND_TENSOR && tc_nver(n)) {
			/* a tensor replaced by a rename over it: its bytes
			 * may be needed back (settle_tail) */
			tc_nver(n)->refs++;
			tc_tail_add_old(&s->tail, n->id, tc_parent(n)->id,
					tc_node_name(n), seq, tc_nver(n), ver_put_cb, s);
		}
		remove_subtree(s, n);
		break;
	case TC_OP_TOUCH:
		n = tc_index_get(&s->idx, op->id);
		if (n && tc_node_is_entry(n))
			touch_entry(s, n, op->last_access);
		break;
	case TC_OP_MARK:
		if (s->replaying)
			tc_tail_mark(&s->tail, op->synced, op->on_disk,
				     ver_put_cb, s);
		break;
	case TC_OP_STATS:
		s->hits = op->stats[0];
		s->misses = op->stats[1];
		s->evictions = op->stats[2];
		s->evicted_bytes = op->stats[3];
		s->probes = op->stats[4];
		break;
	}
	return 0;
}

/* Does @op go into the journal?  Not when the node it changes is not
 * there: a DEL of a node never journaled, a NODE of a tensor whose only
 * version is pending. */
static int op_journaled(struct tc_store *s, const struct tc_op *op,
			const struct tc_ver *v)
{
	struct tc_node *n;
	if (op->type == TC_OP_NODE && (op->kind != TC_KIND_TENSOR || v))
		return 1;
	if (op->type != TC_OP_NODE && op->type != TC_OP_DEL)
		return 1;
	n = tc_index_get(&s->idx, op->id);
	return op->type == TC_OP_DEL ? n && node_journaled(n) : n && tc_nver(n);
}

/*
 * The one way a live operation changes the index: @ops[0 .. k) become
 * one record, appended, then each is applied with apply_op(), as replay
 * applies that record.  Ops about what the journal does not hold (see
 * op_journaled) are applied without being written.  A failed append
 * changes nothing.  @v: the version a tensor's NODE op names when the
 * caller built it (a commit); the node takes over the caller's reference.
 * store_change_each: op i names version vs[i] (NULL: none), so one record
 * commits several tensors.
 * The touches kept back lead the record (durable.c touches_lead).
 * An apply that fails after the append (ENOMEM) leaves memory behind the
 * journal until the next open; the rest of the ops are still applied.
 * Lock held.
 */
/* store_change, with op i's version vs[i] when @vs, else @v for each. */
static int change(struct tc_store *s, const struct tc_op *ops, size_t k,
		  struct tc_ver *v, struct tc_ver *const *vs)
{
	struct tc_buf b = { 0 };
	uint64_t seq = 0;
	int r = 0;

	assert_locked(s);
	for (size_t i = 0; i < k; i++)
		if (op_journaled(s, &ops[i], vs ? vs[i] : v)) {
			if (!b.len)
				touches_lead(s, &b);
			tc_rec_op(&b, &ops[i]);
		}
	if (b.len || b.err) {
		r = store_append(s, &b, &seq);
		tc_buf_free(&b);
		if (r)
			return r;
		touches_sent(s);
	}
	for (size_t i = 0; i < k; i++) {
		const struct tc_op *op = &ops[i];
		uint32_t h = op->type == TC_OP_NODE
				     ? tc_name_hash(op->parent, op->name) : 0;
		int e = apply_op(s, seq, op, h, vs ? vs[i] : v);
		if (e && !r)
			r = e;
	}
	return r;
}

int store_change(struct tc_store *s, const struct tc_op *ops, size_t k,
		 struct tc_ver *v)
{
	return change(s, ops, k, v, NULL);
}

int store_change_each(struct tc_store *s, const struct tc_op *ops, size_t k,
		      struct tc_ver *const *vs)
{
	return change(s, ops, k, NULL, vs);
}
