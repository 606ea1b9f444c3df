/*
 * stage.c - staged tensors: bytes written straight into the pool by a
 * writer on this machine, named many at a time in one journal record.
 *
 * A put through files costs a create, the writes, a commit at close and
 * a rename per tensor, each a round trip through the kernel and a record
 * of its own.  A writer that may write the pool file (its owner) can
 * instead:
 *
 *   tc_stage(size)       -> a pending version of one run of pool space,
 *                           named by nobody; *off is where its bytes go
 *   (the writer pwrite()s them into the pool file)
 *   tc_stage_commit(dir, names, links)
 *                        -> their xxh3 from the pool, then ONE record of
 *                           a NODE op per tensor, applied as replay does
 *
 * Invariants.  A staged version is pending (number 0) and is no node's:
 * not listed, not a victim, its space counted as used; the tc_staged
 * holds its one reference until the commit moves it to the new node
 * (store_change_each) or tc_staged_drop frees it (a pending version's
 * extents go straight back to the pool: no record ever named them).  A
 * commit is all or nothing: it validates every name and link before it
 * builds the record, and a record is replayed whole or not at all, so a
 * kill -9 at any moment leaves every tensor of it, whole, or none.  A
 * power loss may also lose staged bytes the pool had not yet synced:
 * replay checks the unsynced tail (settle_tail), so each such tensor is
 * then whole or absent, as any unsynced write (powerloss's
 * staged_puts_* workloads).
 *
 * Locking: the store lock, except while hashing in tc_stage_commit: the
 * staged versions are the caller's alone until the record names them.
 *
 * Cost: tc_stage as a write's allocation (eviction included); a commit one
 * xxh3 pass over the bytes, O(n^2) name comparisons within the batch,
 * one record of about 100 bytes plus the name and link a tensor.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

struct tc_staged {
	struct tc_ver *v;
};

int tc_stage(tc_store *s, uint64_t size, tc_staged **out, uint64_t *off)
{
	struct tc_staged *t;
	struct tc_ver *v;
	int r;

	if (!size)
		return -EINVAL;
	if (!(t = malloc(sizeof(*t))))
		return -ENOMEM;
	lock(s);
	v = ver_new(s);
	r = v ? ver_grow(s, v, size) : -ENOMEM;
	if (!r && v->nextents != 1)
		r = -EXDEV;
	if (r) {
		ver_put(s, v);
		free(t);
	} else {
		v->size = size;
		v->dirty = 1;
		t->v = v;
		*out = t;
		*off = v->ex.one.off;
	}
	op_done(s);
	return r;
}

void tc_staged_drop(tc_store *s, tc_staged *t)
{
	if (!t)
		return;
	lock(s);
	ver_put(s, t->v);
	op_done(s);
	free(t);
}

/* Would entry @name's link @link close a loop, with the links that the
 * batch's new entries (names[i] -> links[i] where made[i]) are about to
 * add?  Lock held.  O(n * the chain's length). */
static int batch_loop(struct tc_store *s, const char *name, const char *link,
		      size_t n, const char *const *names,
		      const char *const *links, const int *made)
{
	for (size_t steps = 0; link; steps++) {
		size_t j;
		if (!strcmp(link, name) || steps > n)
			return 1;
		for (j = 0; j < n && !(made[j] && !strcmp(names[j], link)); j++)
			;
		if (j == n) /* out of the batch: the index's links from here */
			return links_loop(s, link, name, NULL);
		link = links[j];
	}
	return 0;
}

/* Check what tc_stage_commit is given, and which names are new (made[]).
 * Lock held. */
static int commit_check(struct tc_store *s, const struct tc_node *d, size_t n,
			const char *const *names, const char *const *links,
			int *made)
{
	int r = 0;

	for (size_t i = 0; i < n && !r; i++) {
		const char *link = links ? links[i] : NULL;
		r = check_new_name(d, names[i]);
		for (size_t j = 0; j < i && !r; j++)
			if (!strcmp(names[j], names[i]))
				r = -EINVAL; /* twice in one batch */
		if (!r && link)
			r = d->kind != TC_KIND_ROOT ? -EINVAL /* entries only */
							  : check_name(link);
		made[i] = !r && !tc_index_find(&s->idx, d, names[i]);
	}
	for (size_t i = 0; i < n && !r; i++)
		if (made[i] && links && links[i] &&
		    batch_loop(s, names[i], links[i], n, names, links, made))
			r = -ELOOP;
	return r;
}

/* The NODE op that makes @v file @name of @d, as replay will read it. */
static void commit_op(const struct tc_node *d, uint64_t id, const char *name,
		      const char *link, const struct tc_ver *v, uint32_t mode,
		      uint32_t uid, uint32_t gid, int64_t now, struct tc_op *op)
{
	memset(op, 0, sizeof(*op));
	op->type = TC_OP_NODE;
	op->id = id;
	op->parent = d->id;
	op->kind = TC_KIND_TENSOR;
	op->mode = mode & 07777;
	op->uid = uid;
	op->gid = gid;
	op->atime = op->mtime = op->ctime = now;
	strcpy(op->name, name);
	if (d->kind == TC_KIND_ROOT) { /* a file at the root is an entry */
		op->created = op->last_access = now;
		op->link = link;
		op->link_len = link ? (uint32_t)strlen(link) : 0;
	}
	op_set_ver(op, v);
}

int tc_stage_commit(tc_store *s, uint64_t dir, size_t n, tc_staged *const *t,
		    const char *const *names, const char *const *links,
		    uint32_t mode, uint32_t uid, uint32_t gid, int *made)
{
	struct tc_op *ops = NULL;
	struct tc_ver **vs = NULL;
	struct tc_node *d;
	size_t k = 0;
	int64_t now;
	int r = 0;

	if (n > TC_STAGE_MAX)
		return -E2BIG;
	for (size_t i = 0; i < n && !r; i++)
		r = ver_hash(s, t[i]->v, t[i]->v->size, &t[i]->v->xxh3);
	if (!r && n && (!(ops = malloc(n * sizeof(*ops))) ||
			!(vs = malloc(n * sizeof(*vs)))))
		r = -ENOMEM;
	if (r) {
		free(ops);
		return r;
	}
	lock(s);
	now = now_ns();
	r = get_dir(s, dir, &d);
	if (!r)
		r = commit_check(s, d, n, names, links, made);
	for (size_t i = 0; i < n && !r; i++) {
		struct tc_ver *v = t[i]->v;
		if (!made[i])
			continue;
		ver_trim(s, v);
		ver_pack(s, v);
		ver_type(s, d, names[i], v, NULL);
		commit_op(d, s->idx.next_id + k, names[i], links ? links[i] : NULL,
			  v, mode, uid, gid, now, &ops[k]);
		vs[k++] = v;
	}
	if (!r && k)
		r = store_change_each(s, ops, k, vs);
	if (r)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (made[i]) {
			t[i]->v->verified = TC_VERIFIED_GOOD;
			t[i]->v->dirty = 0;
			absent_made(s, dir, names[i]);
		} else {
			ver_put(s, t[i]->v);
		}
		free(t[i]);
	}
	if (k) {
		dir_changed(d, now);
		if (d->kind != TC_KIND_ROOT)
			store_touch(s, d); /* the entry: recency, as a write's open */
	}
out:
	op_done(s);
	free(ops);
	free(vs);
	return r;
}
