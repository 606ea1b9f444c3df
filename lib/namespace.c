/*
 * namespace.c - names and attributes: lookup, getattr, mkdir, rmdir,
 * unlink, rename, pin, list, setattr.
 *
 * Invariants:
 *   - The root holds entries only: directories, and files that are
 *     entries of one tensor (root_file); entries and groups hold groups
 *     and tensors (tcache.h).  A directory moved under the root becomes
 *     an entry, moved elsewhere a group; a file never moves between the
 *     root and a directory (EXDEV: mv copies it).
 *   - A name is 1..TC_NAME_MAX bytes, no '/', not "." or ".."; the
 *     generated names (TC_STATS_NAME at the root, TC_META_NAME and
 *     TC_VIEW_NAME in every other directory) cannot be created.
 *   - Every lookup at the root is a probe; one that finds nothing waits
 *     in a bounded table until a create of the name forgives it or it
 *     becomes a miss (store.h, "A lookup at the root").
 *   - Each operation validates everything before it builds its ops, and
 *     changes the index through store_change() alone (apply.c): a refusal
 *     changes nothing, and what it changes a replay rebuilds.  Directory
 *     mtime and ctime follow their children here, outside the record.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "meta.h"
#include "store.h"

int check_name(const char *name)
{
	size_t n = strnlen(name, TC_NAME_MAX + 1);
	if (n > TC_NAME_MAX)
		return -ENAMETOOLONG;
	if (n == 0 || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		return -EINVAL;
	return 0;
}

/* A name that may be created in @dir (not reserved there: see tcache.h). */
int check_new_name(const struct tc_node *dir, const char *name)
{
	int r = check_name(name);
	if (r)
		return r;
	if (!strcmp(name, dir->kind == TC_KIND_ROOT ? TC_STATS_NAME : TC_META_NAME))
		return -EEXIST;
	if (dir->kind != TC_KIND_ROOT && !strcmp(name, TC_VIEW_NAME))
		return -EEXIST;
	return 0;
}

/*
 * A tensor's size while a writer has a pending version is the larger of
 * the committed and the pending size: readers that size their reads with
 * stat then read their whole committed version (a shorter read ends at
 * its end), and writers appending still find the end of what they wrote.
 */
void fill_stat(const struct tc_node *n, struct tc_stat *st)
{
	const struct tc_ver *v = n->kind == TC_KIND_TENSOR
					 ? (pending_of(n) ? pending_of(n) : tc_nver(n))
					 : NULL;
	uint64_t size = v ? v->size : 0;
	/* One size per file in the kernel: while a reader holds the
	 * committed version, a shorter pending one must not cut its reads
	 * short; with writers alone the pending size is the file's. */
	if (v && tc_nver(n) && tc_nver(n)->size > size && n->refs > writers_of(n))
		size = tc_nver(n)->size;
	st->id = n->id;
	st->parent = tc_parent(n) ? tc_parent(n)->id : 0;
	st->kind = n->kind;
	st->mode = (tc_node_isdir(n) ? S_IFDIR : S_IFREG) | (n->mode & 07777);
	st->uid = n->uid;
	st->gid = n->gid;
	st->nlink = n->dead ? 0 : tc_node_isdir(n) ? 2 + n->nsubdirs : 1;
	st->size = size;
	st->blocks = v ? (tc_ver_alloc(v) + 511) / 512 : 0;
	st->version = tc_nver(n) ? tc_nver(n)->number : 0;
	st->writers = writers_of(n);
	/* a file at the root: its atime is its last use, what the lru goes by
	 * (it has no meta.json to tell it) */
	st->atime = ts_of(n->root_file ? n->last_access : n->atime);
	st->mtime = ts_of(n->mtime);
	st->ctime = ts_of(n->ctime);
	snprintf(st->name, sizeof(st->name), "%s", n->kind == TC_KIND_ROOT ? "" : tc_node_name(n));
}

/* The directory @id, or an error. */
int get_dir(struct tc_store *s, uint64_t id, struct tc_node **out)
{
	struct tc_node *d = tc_index_get(&s->idx, id);
	if (!d)
		return -ENOENT;
	if (!tc_node_isdir(d))
		return -ENOTDIR;
	*out = d;
	return 0;
}

/* The directory @parent, *@d, where a node named @name may be made:
 * the name valid, not reserved there and not taken.  Lookups that found
 * no @name there were this write's (absent_made), whatever the answer.
 * Lock held. */
int dir_for_new(struct tc_store *s, uint64_t parent, const char *name,
		struct tc_node **d)
{
	assert_locked(s);
	absent_made(s, parent, name);
	int r = get_dir(s, parent, d);
	if (!r)
		r = check_new_name(*d, name);
	if (!r && tc_index_find(&s->idx, *d, name))
		r = -EEXIST;
	return r;
}

/* fill_stat() of @n, or -ENOENT for none. */
static int stat_of(const struct tc_node *n, struct tc_stat *st)
{
	if (!n)
		return -ENOENT;
	fill_stat(n, st);
	return 0;
}

/* The directory @parent, *@d, and its child @name, *@n (NULL: none).
 * Lock held. */
static int find_child(struct tc_store *s, uint64_t parent, const char *name,
		      struct tc_node **d, struct tc_node **n)
{
	assert_locked(s);
	int r = get_dir(s, parent, d);
	*n = r ? NULL : tc_index_find(&s->idx, *d, name);
	return r;
}

/* ---- lookups of absent names: misses or writes (see store.h) ------------ */

/* The set of @hash's slots. */
static struct tc_absent *absent_set(struct tc_store *s, uint64_t hash)
{
	return &s->absent[(hash % ABSENT_SETS) * ABSENT_WAYS];
}

/* Slot @a's lookups become misses; the slot is free.  Lock held. */
static void absent_miss(struct tc_store *s, struct tc_absent *a)
{
	s->misses += a->lookups;
	a->lookups = 0;
	s->nabsent--;
}

/* A lookup at the root found no @name.  Lock held. */
static void absent_note(struct tc_store *s, const char *name)
{
	uint64_t h = XXH3_64bits(name, strlen(name));
	struct tc_absent *set = absent_set(s, h), *a = NULL;
	int64_t now = mono_ns();

	assert_locked(s);
	for (int i = 0; i < ABSENT_WAYS; i++)
		if (set[i].lookups && set[i].hash == h) {
			a = &set[i];
			if (now - a->since < s->miss_window) {
				a->lookups++;
				return;
			}
			absent_miss(s, a); /* its window is over: a new one */
			break;
		}
	if (!a)
		for (int i = 0; i < ABSENT_WAYS; i++)
			if (!a || !set[i].lookups ||
			    (a->lookups && set[i].since < a->since))
				a = &set[i];
	if (a->lookups)
		absent_miss(s, a); /* the oldest of a full set: counted early */
	*a = (struct tc_absent){ .hash = h, .since = now, .lookups = 1 };
	s->nabsent++;
}

/* @name is being made in @parent (mkdir, create, rename onto it): lookups
 * that found it absent in the window were a write's, not misses.  Lock
 * held. */
void absent_made(struct tc_store *s, uint64_t parent, const char *name)
{
	assert_locked(s);
	if (parent != TC_ROOT_ID || !s->nabsent)
		return;
	uint64_t h = XXH3_64bits(name, strlen(name));
	struct tc_absent *set = absent_set(s, h);
	for (int i = 0; i < ABSENT_WAYS; i++)
		if (set[i].lookups && set[i].hash == h) {
			/* in its window: a write's lookups; later: misses */
			if (mono_ns() - set[i].since < s->miss_window)
				set[i].lookups = 0;
			absent_miss(s, &set[i]);
			return;
		}
}

/* The lookups waiting longer than the window (@all: every one) become
 * misses.  Lock held.  O(ABSENT_SETS * ABSENT_WAYS) when any waits. */
void absent_settle(struct tc_store *s, int all)
{
	assert_locked(s);
	if (!s->nabsent)
		return;
	int64_t now = mono_ns();
	for (size_t i = 0; i < ABSENT_SETS * ABSENT_WAYS; i++) {
		struct tc_absent *a = &s->absent[i];
		if (a->lookups && (all || now - a->since >= s->miss_window))
			absent_miss(s, a);
	}
}

int tc_lookup(tc_store *s, uint64_t parent, const char *name,
	      struct tc_stat *st)
{
	struct tc_node *d, *n;
	int r = check_name(name);
	if (r)
		return r;
	lock(s);
	if (!(r = find_child(s, parent, name, &d, &n))) {
		if (d->kind == TC_KIND_ROOT) {
			s->probes++;
			if (!n)
				absent_note(s, name);
		}
		r = stat_of(n, st);
	}
	op_done(s);
	return r;
}

/* "entry/group/name" of @n (still linked) into @buf. */
void node_path(const struct tc_node *n, char *buf, size_t size)
{
	const struct tc_node *chain[64];
	int k = 0;
	size_t at = 0;
	for (; n && n->kind != TC_KIND_ROOT && k < 64; n = tc_parent(n))
		chain[k++] = n;
	buf[0] = 0;
	if (n && n->kind != TC_KIND_ROOT)
		at = (size_t)snprintf(buf, size, ".../");
	while (k-- > 0 && at < size)
		at += (size_t)snprintf(buf + at, size - at, "%s%s", tc_node_name(chain[k]),
				       k ? "/" : "");
}

int tc_path(tc_store *s, uint64_t id, char *buf, size_t size)
{
	lock(s);
	const struct tc_node *n = tc_index_get(&s->idx, id);
	if (n)
		node_path(n, buf, size);
	op_done(s);
	return n ? 0 : -ENOENT;
}

int tc_getattr(tc_store *s, uint64_t id, struct tc_stat *st)
{
	lock(s);
	int r = stat_of(tc_index_get(&s->idx, id), st);
	op_done(s);
	return r;
}

int tc_mkdir(tc_store *s, uint64_t parent, const char *name, uint32_t mode,
	     uint32_t uid, uint32_t gid, struct tc_stat *st)
{
	struct tc_node *d;
	struct tc_op op = { .type = TC_OP_NODE };
	int64_t now = now_ns();
	int r;

	lock(s);
	if ((r = dir_for_new(s, parent, name, &d)))
		goto out;
	op.id = s->idx.next_id;
	op.parent = d->id;
	op.kind = d->kind == TC_KIND_ROOT ? TC_KIND_ENTRY : TC_KIND_GROUP;
	op.mode = mode & 07777;
	op.uid = uid;
	op.gid = gid;
	op.atime = op.mtime = op.ctime = now;
	op.created = op.last_access = now;
	strcpy(op.name, name);
	r = store_change(s, &op, 1, NULL);
	if (r)
		goto out;
	dir_changed(d, now);
	fill_stat(tc_index_get(&s->idx, op.id), st);
out:
	op_done(s);
	return r;
}

/* Remove @n and all below it (journaled if it ever was).  Lock held. */
int node_remove(struct tc_store *s, struct tc_node *n)
{
	struct tc_node *d = tc_parent(n);
	struct tc_op op = { .type = TC_OP_DEL, .id = n->id };
	int r = store_change(s, &op, 1, NULL); /* asserts the lock */
	if (!r)
		dir_changed(d, now_ns());
	return r;
}

/* rmdir (@dir 1) or unlink (@dir 0) of @name in @parent. */
static int remove_name(tc_store *s, uint64_t parent, const char *name, int dir)
{
	struct tc_node *d, *n;
	int r = check_name(name);
	if (r)
		return r;
	lock(s);
	if ((r = find_child(s, parent, name, &d, &n)))
		goto out;
	if (!n)
		r = -ENOENT;
	else if (tc_node_isdir(n) != dir)
		r = dir ? -ENOTDIR : -EISDIR;
	else if (dir && n->nchildren)
		r = -ENOTEMPTY;
	else
		r = node_remove(s, n);
out:
	op_done(s);
	return r;
}

int tc_rmdir(tc_store *s, uint64_t parent, const char *name)
{
	return remove_name(s, parent, name, 1);
}

int tc_unlink(tc_store *s, uint64_t parent, const char *name)
{
	return remove_name(s, parent, name, 0);
}

/* A tensor's NODE @op, about to be named @name in @dir: the dtype and
 * shape @dir's meta.json declares for that name, if it does. */
static void declared_type(const struct tc_node *dir, const char *name,
			  struct tc_op *op)
{
	struct tc_meta_set set;
	if (!tc_meta_declared(tc_doc(dir), name, &set))
		return;
	op->dtype = set.dtype;
	op->ndim = set.ndim;
	memcpy(op->shape, set.shape, sizeof(uint64_t) * (size_t)set.ndim);
	op->data_offset = 0;
}

/* May @n replace @dst (another node) by a rename?  0 or the error. */
static int may_replace(const struct tc_node *n, const struct tc_node *dst,
		       unsigned flags)
{
	if (flags & TC_RENAME_NOREPLACE)
		return -EEXIST;
	if (tc_node_isdir(n) && !tc_node_isdir(dst))
		return -ENOTDIR;
	if (!tc_node_isdir(n) && tc_node_isdir(dst))
		return -EISDIR;
	if (tc_node_isdir(dst) && dst->nchildren)
		return -ENOTEMPTY;
	return 0;
}

int tc_rename(tc_store *s, uint64_t parent, const char *name,
	      uint64_t newparent, const char *newname, unsigned flags)
{
	struct tc_node *d, *nd, *n, *dst;
	struct tc_op ops[2], *mv;
	size_t k = 0;
	int r;
	int64_t now = now_ns();

	if (flags & TC_RENAME_EXCHANGE)
		return -EINVAL;
	if ((r = check_name(name)) || (r = check_name(newname)))
		return r;
	lock(s);
	absent_made(s, newparent, newname);
	if ((r = get_dir(s, parent, &d)) || (r = get_dir(s, newparent, &nd)))
		goto out;
	n = tc_index_find(&s->idx, d, name);
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	r = check_new_name(nd, newname);
	if (r)
		goto out;
	if (!tc_node_isdir(n) && n->root_file != (nd->kind == TC_KIND_ROOT)) {
		r = -EXDEV; /* an entry's fields would come or go: mv copies */
		goto out;
	}
	if (tc_node_isdir(n))
		for (struct tc_node *a = nd; a; a = tc_parent(a))
			if (a == n) {
				r = -EINVAL;
				goto out;
			}
	dst = tc_index_find(&s->idx, nd, newname);
	if (dst == n)
		goto out;
	if (dst && (r = may_replace(n, dst, flags)))
		goto out;
	if (nd->kind == TC_KIND_ROOT && tc_node_is_entry(n) && tc_link(n) &&
	    links_loop(s, tc_link(n), newname, n)) {
		r = -ELOOP; /* its parents would lead back to it */
		goto out;
	}

	/* One record: the replaced target goes, the node moves. */
	if (dst)
		ops[k++] = (struct tc_op){ .type = TC_OP_DEL, .id = dst->id };
	mv = &ops[k++];
	node_op(n, NULL, mv);
	mv->parent = nd->id;
	strcpy(mv->name, newname);
	mv->kind = !tc_node_isdir(n) ? TC_KIND_TENSOR
		   : nd->kind == TC_KIND_ROOT ? TC_KIND_ENTRY : TC_KIND_GROUP;
	mv->ctime = now;
	if (mv->kind == TC_KIND_ENTRY && n->kind != TC_KIND_ENTRY)
		mv->created = mv->last_access = now;
	if (mv->kind == TC_KIND_TENSOR && tc_nver(n))
		declared_type(nd, newname, mv); /* rsync's temp file, renamed */
	r = store_change(s, ops, k, NULL);
	if (r)
		goto out;
	dir_changed(d, now);
	dir_changed(nd, now);
out:
	op_done(s);
	return r;
}

int tc_link_get(tc_store *s, uint64_t id, char *buf, size_t size)
{
	int r;

	lock(s);
	struct tc_node *n = tc_index_get(&s->idx, id);
	if (!n || n->dead) {
		r = -ENOENT;
	} else if (!tc_node_is_entry(n) || !tc_link(n)) {
		r = -ENODATA;
	} else {
		size_t len = strlen(tc_link(n));
		r = size && size < len ? -ERANGE : (int)len;
		if (size && r >= 0)
			memcpy(buf, tc_link(n), len);
	}
	op_done(s);
	return r;
}

int tc_link_set(tc_store *s, uint64_t id, const char *name, unsigned flags)
{
	struct tc_op op;
	int r = name ? check_name(name) : 0;

	if (r)
		return r;
	lock(s);
	struct tc_node *n = tc_index_get(&s->idx, id);
	if (!n || n->dead)
		r = -ENOENT;
	else if (!tc_node_is_entry(n))
		r = -ENOTSUP;
	else if ((flags & TC_LINK_CREATE) && tc_link(n))
		r = -EEXIST;
	else if ((flags & TC_LINK_REPLACE) && !tc_link(n))
		r = -ENODATA;
	else if (name && links_loop(s, name, tc_node_name(n), NULL))
		r = -ELOOP;
	if (r)
		goto out;
	node_op(n, NULL, &op);
	op.link = name;
	op.link_len = name ? (uint32_t)strlen(name) : 0;
	op.ctime = now_ns();
	r = store_change(s, &op, 1, NULL);
out:
	op_done(s);
	return r;
}

int tc_pin(tc_store *s, uint64_t id, int pinned)
{
	struct tc_op op;
	int r;

	lock(s);
	struct tc_node *n = tc_index_get(&s->idx, id);
	if (!n || !tc_node_is_entry(n)) {
		r = n ? -EINVAL : -ENOENT;
		goto out;
	}
	node_op(n, NULL, &op);
	op_set_pin(&op, pinned);
	op.ctime = now_ns();
	r = store_change(s, &op, 1, NULL);
out:
	op_done(s);
	return r;
}

int tc_list(tc_store *s, uint64_t dir, uint64_t **ids, size_t *n)
{
	struct tc_node *d;
	uint64_t *a;
	size_t k = 0;
	int r;

	lock(s);
	r = get_dir(s, dir, &d);
	if (r)
		goto out;
	a = malloc((d->nchildren ? d->nchildren : 1) * sizeof(*a));
	if (!a) {
		r = -ENOMEM;
		goto out;
	}
	for (struct tc_node *c = tc_child_head(d); c; c = tc_sib_next(c))
		a[k++] = c->id;
	*ids = a;
	*n = k;
out:
	op_done(s);
	return r;
}

/* A truncate of tensor @n to @size (the handle @fh, may be NULL, did
 * it).  Lock held. */
static int set_size(struct tc_store *s, struct tc_node *n, uint64_t size,
		    tc_file *fh)
{
	int r = 0;

	assert_locked(s);
	if (size > s->pool.size)
		return -EFBIG;
	if (n->dead && !pending_of(n) && !writers_of(n))
		return -ENOENT; /* removed, open only for reading */
	int keep_pending = pending_of(n) || writers_of(n) ||
			   (fh && (fh->flags & TC_O_WRITE));
	if (keep_pending || !tc_nver(n) || tc_nver(n)->size != size) {
		opens_add(tc_parent(n), 1); /* not evicted while copying */
		r = resize_pending(s, n, size);
		/* The change belongs to the handle given, else to the
		 * newest writer: open(O_TRUNC) reaches a file system as an
		 * open and then a truncate by path. */
		tc_file *owner = fh && (fh->flags & TC_O_WRITE) ? fh
			       : tc_nwr(n) ? tc_nwr(n)->last_writer : NULL;
		if (!r && owner)
			owner->dirty = 1;
		if (!r && !keep_pending && !n->dead)
			r = commit_locked(s, n);
		opens_add(tc_parent(n), -1);
	}
	return r;
}

/* What @sa sets of @n, as changes to @op (its NODE op). */
static void attrs_op(const struct tc_node *n, const struct tc_setattr *sa,
		     int64_t now, struct tc_op *op)
{
	if (sa->valid & TC_SET_MODE) {
		op->mode = sa->mode & 07777;
		if (tc_node_is_entry(n))
			op->pinned = op->mode & S_ISVTX ? 1 : 0;
	}
	if (sa->valid & TC_SET_UID)
		op->uid = sa->uid;
	if (sa->valid & TC_SET_GID)
		op->gid = sa->gid;
	if (sa->valid & TC_SET_ATIME)
		op->atime = ns_of(sa->atime);
	if (sa->valid & TC_SET_MTIME)
		op->mtime = ns_of(sa->mtime);
	op->ctime = sa->valid & TC_SET_CTIME ? ns_of(sa->ctime) : now;
}

int tc_setattr(tc_store *s, uint64_t id, const struct tc_setattr *sa,
	       tc_file *fh, struct tc_stat *st)
{
	struct tc_node *n;
	struct tc_op op;
	int r = 0;
	int64_t now = now_ns();

	lock(s);
	n = tc_index_get(&s->idx, id);
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	if (n->kind == TC_KIND_ROOT) {
		r = -EPERM;
		goto out;
	}
	if ((sa->valid & TC_SET_SIZE) && tc_node_isdir(n)) {
		r = -EISDIR;
		goto out;
	}
	if (sa->valid & TC_SET_SIZE) {
		r = set_size(s, n, sa->size, fh);
		if (r)
			goto out;
		n->mtime = now;
	}
	node_op(n, NULL, &op);
	attrs_op(n, sa, now, &op);
	if (n->dead) /* removed, still open: what fstat shows changes alone */
		node_set_attrs(n, &op);
	else if ((r = store_change(s, &op, 1, NULL)))
		goto out;
	fill_stat(n, st);
out:
	op_done(s);
	return r;
}
