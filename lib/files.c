/*
 * files.c - tensor files: create, open, read, write, reserve, commit,
 * sync, close; and a tensor's writing state (struct tc_wr, index.h).
 *
 * The write path: tc_file_write() grows the pending version (version.c,
 * evicting through make_room when the pool is full) under the lock, then
 * copies the bytes into its extents with pwrite outside it; a flush or
 * close reaches tc_file_commit(), whose commit_locked() checksums the
 * pending version and hands it, in one NODE op, to store_change()
 * (apply.c): the record is appended (durable.c, journal.c) and applied,
 * and the version is the tensor's committed one.
 *
 * Invariants:
 *   - Writers share one pending version per tensor; readers hold the
 *     committed version they opened (a reference), never the pending one.
 *   - A pending version is committed only by a handle that changed it
 *     since its own last commit (tc_file.dirty), and never after a write
 *     or reservation into it failed (tc_wr.failed): then the commit drops
 *     it, puts back what that handle found at its open, and returns the
 *     error.  Every byte committed is a byte written.
 *   - A pending version's extents do not shrink or go while a write
 *     copies into them (inflight): commit, truncate and drop wait.
 *   - A tensor created and never committed is in the index but not in
 *     the journal; it goes when its last handle closes.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "hash.h"
#include "store.h"

/* @n's writing state, made if it has none.  NULL on ENOMEM. */
static struct tc_wr *wr_get(struct tc_node *n)
{
	if (!tc_nwr(n))
		tc_set_nwr(n, tc_arena_alloc(n, sizeof(struct tc_wr)));
	return tc_nwr(n);
}

/* Start a streaming checksum of the pending version from byte 0 (it is
 * empty).  Failing only costs a full hash at commit. */
static int wr_start_hash(struct tc_wr *w)
{
	if (!w->hs && !(w->hs = XXH3_createState()))
		return -ENOMEM;
	XXH3_64bits_reset(w->hs);
	w->hashed = 0;
	return 0;
}

static void wr_stop_hash(struct tc_wr *w)
{
	if (w->hs)
		XXH3_freeState(w->hs);
	w->hs = NULL;
}

/* Make @v (new) the pending version.  The checksum streams along with
 * the writes only from an empty start; any state of an earlier pending
 * version goes. */
static void wr_set_pending(struct tc_wr *w, struct tc_ver *v)
{
	w->pending = v;
	wr_stop_hash(w);
	if (!v->size)
		wr_start_hash(w);
}

/* Free @n's writing state and what it holds. */
void wr_free(struct tc_store *s, struct tc_node *n)
{
	struct tc_wr *w = tc_nwr(n);
	if (!w)
		return;
	ver_put(s, w->pending);
	if (w->hs)
		XXH3_freeState(w->hs);
	tc_arena_free(w, sizeof(*w));
	tc_set_nwr(n, NULL);
}

/* Free it once nothing is being written. */
static void wr_idle(struct tc_store *s, struct tc_node *n)
{
	if (tc_nwr(n) && !tc_nwr(n)->writers && !tc_nwr(n)->pending)
		wr_free(s, n);
}


/* Commit the pending version (dirty, no writes in flight).  Lock held. */
int commit_locked(struct tc_store *s, struct tc_node *n)
{
	struct tc_wr *w = tc_nwr(n);
	struct tc_ver *v = w->pending;
	struct tc_op op;
	int r;

	assert_locked(s);
	assert(v && v->inflight == 0 && !n->dead);
	if (w->hs && w->hashed == v->size) {
		v->xxh3 = XXH3_64bits_digest(w->hs);
	} else {
		r = ver_hash(s, v, v->size, &v->xxh3);
		if (r)
			return r;
	}
	ver_trim(s, v);
	ver_pack(s, v);
	ver_type(s, tc_parent(n), tc_node_name(n), v, tc_nver(n));
	if (n->root_file && !node_journaled(n))
		/* an entry the journal first hears of: the most recent, as
		 * replay will make it (after the touches leading the record) */
		touch_entry(s, n, now_ns());
	node_op(n, v, &op);
	r = store_change(s, &op, 1, v); /* the pending reference moves to ver */
	if (r && v->nextents == 1 && tc_extent_packed(v->ex.one)) {
		/* packed, it can take no more writes: it goes, as a failed
		 * commit's pending version goes anyway (tc_file_commit) */
		ver_put(s, v);
		w->pending = NULL;
		wr_stop_hash(w);
		wr_idle(s, n);
	}
	if (r)
		return r;
	wr_stop_hash(w);
	v->verified = TC_VERIFIED_GOOD;
	v->dirty = 0;
	w->pending = NULL;
	wr_idle(s, n);
	return 0;
}

/* Wait until no write copies into the pending version.  It may be
 * committed or replaced meanwhile: callers look at n->wr again after. */
static void wait_drained(struct tc_store *s, struct tc_node *n)
{
	struct tc_ver *v;
	while ((v = pending_of(n)) && v->inflight) {
		v->refs++; /* keep it alive across the wait */
		wait_drained_cond(s);
		ver_put(s, v);
	}
}

/* Resize the pending version of @n (creating it by copy if needed). */
int resize_pending(struct tc_store *s, struct tc_node *n, uint64_t size)
{
	struct tc_wr *w;
	struct tc_ver *v;
	int r;

	wait_drained(s, n);
	if (!(w = wr_get(n)))
		return -ENOMEM;
	v = w->pending;
	if (!v) {
		r = ver_clone(s, tc_nver(n), size, &v);
		if (r) {
			wr_idle(s, n);
			return r;
		}
		wr_set_pending(w, v);
		return 0;
	}
	if (size > v->size) {
		r = ver_grow(s, v, size);
		if (r)
			return r;
		ver_zero(s, v, v->size, size);
	}
	if (size < w->hashed || size == 0)
		wr_stop_hash(w);
	if (size == 0)
		wr_start_hash(w);
	v->size = size;
	v->dirty = 1;
	return 0;
}

static int file_new(struct tc_node *n, unsigned flags, tc_file **fh)
{
	tc_file *f = calloc(1, sizeof(*f));
	if (!f || ((flags & TC_O_WRITE) && !wr_get(n))) {
		free(f);
		return -ENOMEM;
	}
	f->node = n;
	f->flags = flags;
	n->refs++;
	if (flags & TC_O_WRITE) {
		tc_nwr(n)->writers++;
		tc_nwr(n)->last_writer = f;
		if ((f->before = tc_nver(n)))
			tc_nver(n)->refs++;
	}
	opens_add(tc_parent(n), 1);
	*fh = f;
	return 0;
}

int tc_create(tc_store *s, uint64_t parent, const char *name, uint32_t mode,
	      uint32_t uid, uint32_t gid, tc_file **fh, struct tc_stat *st)
{
	struct tc_node *d, *n = NULL;
	int r;

	lock(s);
	r = dir_for_new(s, parent, name, &d);
	if (r)
		goto out;
	n = d->kind == TC_KIND_ROOT ? tc_node_new_file(&s->idx, s->idx.next_id, name)
				    : tc_node_new(&s->idx, s->idx.next_id, TC_KIND_TENSOR, name);
	if (!n || !wr_get(n) || !(tc_nwr(n)->pending = ver_new(s)) ||
	    wr_start_hash(tc_nwr(n))) {
		r = -ENOMEM;
		goto fail;
	}
	tc_nwr(n)->pending->dirty = 1;
	n->mode = mode & 07777;
	n->uid = uid;
	n->gid = gid;
	n->atime = n->mtime = n->ctime = now_ns();
	r = tc_index_add(&s->idx, d, n);
	if (r)
		goto fail;
	r = file_new(n, TC_O_WRITE, fh);
	if (r) {
		tc_index_remove(&s->idx, n);
		goto fail;
	}
	(*fh)->dirty = 1;
	if (n->root_file) {
		/* an entry, not evictable while open (its refs) */
		n->created = n->last_access = n->mtime;
		tc_lru_add(&s->lru, n);
		links_join(s, n);
	}
	dir_changed(d, n->mtime);
	store_touch(s, n);
	fill_stat(n, st);
	goto out;
fail:
	if (n)
		wr_free(s, n);
	tc_node_free(n);
out:
	op_done(s);
	return r;
}

int tc_open(tc_store *s, uint64_t id, unsigned flags, tc_file **fh)
{
	struct tc_node *n;
	struct tc_ver *v = NULL;
	tc_file *f = NULL;
	int r;

	lock(s);
	n = tc_index_get(&s->idx, id);
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	if (tc_node_isdir(n)) {
		r = -EISDIR;
		goto out;
	}
	r = file_new(n, flags & (TC_O_WRITE | TC_O_TRUNC), &f);
	if (r)
		goto out;
	if (flags & TC_O_WRITE) {
		if (flags & TC_O_TRUNC) {
			r = resize_pending(s, n, 0);
			if (r)
				goto fail;
			f->dirty = 1;
		}
	} else if ((v = tc_nver(n))) {
		v->refs++;
		f->ver = v;
		s->hits += !(flags & TC_O_QUIET);
		if (s->verify == TC_VERIFY_ON && v->verified == TC_UNVERIFIED) {
			uint64_t h;
			/* Committed bytes are immutable: hash unlocked. */
			unlock(s);
			r = ver_hash(s, v, v->size, &h);
			lock(s);
			if (r)
				goto fail;
			ver_checked(s, v, h == v->xxh3);
		}
		if (v->verified == TC_VERIFIED_DAMAGED) {
			r = -EIO;
			goto fail;
		}
	}
	if (!n->dead && !(flags & TC_O_QUIET))
		store_touch(s, n);
	*fh = f;
	goto out;
fail:
	unlock(s);
	tc_file_close(s, f);
	return r;
out:
	op_done(s);
	return r;
}

/* The version a handle reads.  Lock held for write handles. */
static struct tc_ver *file_ver(tc_file *fh)
{
	if (!(fh->flags & TC_O_WRITE))
		return fh->ver;
	struct tc_ver *p = pending_of(fh->node);
	return p ? p : tc_nver(fh->node);
}

/* Spans of [off, off + size) of @v (NULL: none), cut at its end. */
static int ver_map(const struct tc_store *s, const struct tc_ver *v,
		   uint64_t off, size_t size, struct tc_span *sp, int max,
		   int *n, size_t *total)
{
	if (!v || off >= v->size) {
		*n = 0;
		*total = 0;
		return 0;
	}
	if (size > v->size - off)
		size = (size_t)(v->size - off);
	int r = ver_spans(s, v, off, size, sp, max);
	if (r < 0)
		return r;
	*n = r;
	*total = size;
	return 0;
}

int tc_file_map(tc_store *s, tc_file *fh, uint64_t off, size_t size,
		struct tc_span *sp, int max, int *n, size_t *total)
{
	int w = fh->flags & TC_O_WRITE, r;

	if (w)
		lock(s);
	r = ver_map(s, file_ver(fh), off, size, sp, max, n, total);
	if (w)
		op_done(s);
	return r;
}

/*
 * Copy [off, off + size) out of the pool, up to 16 spans at a time.  A
 * write handle reads the pending version, whose extents a commit may
 * change (ver_pack moves a small one and frees its block): the copy holds
 * it in flight, as a write does, so a commit waits for it.
 */
ssize_t tc_file_pread(tc_store *s, tc_file *fh, void *buf, size_t size,
		      uint64_t off)
{
	struct tc_span sp[16];
	int w = fh->flags & TC_O_WRITE;
	size_t done = 0;
	ssize_t err = 0;

	while (done < size && !err) {
		struct tc_ver *v, *pin = NULL;
		int n;
		size_t total;

		if (w)
			lock(s);
		v = file_ver(fh);
		int r = ver_map(s, v, off + done, size - done, sp, 16, &n, &total);
		if (r == -ENOBUFS)
			r = ver_map(s, v, off + done, sp[0].len ? sp[0].len : TC_BLOCK,
				    sp, 16, &n, &total);
		if (!r && total && w && v == pending_of(fh->node)) {
			pin = v;
			pin->inflight++;
			pin->refs++;
		}
		if (w && (r || !total))
			op_done(s);
		else if (w)
			unlock(s);
		if (r || !total) {
			err = r;
			break;
		}
		for (int i = 0; i < n && !err; i++) {
			ssize_t got = pread(sp[i].fd, (uint8_t *)buf + done, sp[i].len,
					    (off_t)sp[i].fd_off);
			if (got < 0)
				err = -errno;
			else
				done += (size_t)got;
			if (got >= 0 && (size_t)got < sp[i].len)
				size = done; /* short: stop here */
		}
		if (w) {
			lock(s);
			if (pin) {
				if (--pin->inflight == 0)
					pthread_cond_broadcast(&s->drained);
				ver_put(s, pin);
			}
			op_done(s);
		}
	}
	return done ? (ssize_t)done : err;
}

/* A write or reservation through @fh failed with @err: the pending
 * version must not be committed, and @fh's next commit reports it.  Lock
 * held. */
static void write_failed(struct tc_node *n, tc_file *fh, int err)
{
	if (!tc_nwr(n)->failed)
		tc_nwr(n)->failed = -err;
	fh->dirty = 1;
}

/* Make @v (NULL: none) the committed version of @n again, journaled: what
 * a failed writer found at its open.  Lock held. */
static int restore_before(struct tc_store *s, struct tc_node *n,
			  struct tc_ver *v)
{
	struct tc_op op;
	int r;

	assert_locked(s);
	if (!v)
		return node_remove(s, n);
	node_op(n, v, &op);
	v->refs++; /* the node's, from here */
	r = store_change(s, &op, 1, v);
	if (r)
		ver_put(s, v);
	return r;
}

/* Drop the pending version of @n after a failed write through @fh; its
 * error.  What @fh found at its open comes back if a commit through it
 * replaced that meanwhile; a tensor never committed loses its name at once
 * (its handles keep it until they close), so that it is absent as soon as
 * close() returns.  Lock held (released while writes in flight drain). */
static int drop_failed(struct tc_store *s, struct tc_node *n, tc_file *fh)
{
	int err = -tc_nwr(n)->failed, r = 0;
	struct tc_wr *w;

	assert_locked(s);
	wait_drained(s, n);
	if ((w = tc_nwr(n))) {
		ver_put(s, w->pending);
		w->pending = NULL;
		wr_stop_hash(w);
		w->failed = 0;
	}
	if (!n->dead && (tc_nver(n) != fh->before || !tc_nver(n)))
		r = restore_before(s, n, fh->before);
	return r ? r : err;
}

ssize_t tc_file_write(tc_store *s, tc_file *fh, const void *buf, size_t size,
		      uint64_t off)
{
	struct tc_span stack[8], *sp = stack;
	struct tc_node *n = fh->node;
	struct tc_wr *wr;
	struct tc_ver *v;
	uint64_t end;
	int nsp, r = 0;

	if (!(fh->flags & TC_O_WRITE))
		return -EBADF;
	if (__builtin_add_overflow(off, (uint64_t)size, &end) || end > INT64_MAX)
		return -EFBIG;
	if (!size)
		return 0;
	lock(s);
	wr = tc_nwr(n); /* a write handle keeps it */
	if (!wr->pending) {
		r = ver_clone(s, tc_nver(n), tc_nver(n) ? tc_nver(n)->size : 0, &v);
		if (r)
			goto out;
		wr_set_pending(wr, v);
	}
	v = wr->pending;
	if (end > tc_ver_alloc(v)) {
		r = ver_grow(s, v, end);
		if (r)
			goto out;
	}
	if (wr->hs && (v->inflight || off < wr->hashed))
		wr_stop_hash(wr);
	if (off > v->size)
		ver_zero(s, v, v->size, off);
	if (end > v->size)
		v->size = end;
	v->dirty = 1;
	fh->dirty = 1;
	n->mtime = n->ctime = now_ns();
	nsp = ver_spans(s, v, off, size, sp, 8);
	if (nsp == -ENOBUFS) {
		sp = malloc(sizeof(*sp) * (v->nextents + 1));
		if (!sp) {
			r = -ENOMEM;
			goto out;
		}
		nsp = ver_spans(s, v, off, size, sp, (int)v->nextents + 1);
	}
	v->inflight++;
	v->refs++;
	unlock(s);

	size_t done = 0;
	for (int i = 0; i < nsp && !r; i++) {
		size_t at = 0;
		while (at < sp[i].len) {
			ssize_t w = pwrite(sp[i].fd, (const uint8_t *)buf + done + at,
					   sp[i].len - at, (off_t)(sp[i].fd_off + at));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				r = w < 0 ? -errno : -EIO;
				break;
			}
			at += (size_t)w;
		}
		done += sp[i].len;
	}

	lock(s);
	assert(wr->pending == v); /* inflight: neither committed nor dropped */
	if (!r && wr->hs && wr->hashed == off) {
		tc_hash_update(wr->hs, buf, size);
		wr->hashed = end;
	} else if (r) {
		wr_stop_hash(wr);
	}
	if (--v->inflight == 0)
		pthread_cond_broadcast(&s->drained);
	ver_put(s, v);
out:
	if (r)
		write_failed(n, fh, r);
	op_done(s);
	if (sp != stack)
		free(sp);
	return r ? r : (ssize_t)size;
}

/* Grow the pending version of @n (made by copy if there is none) to hold
 * @end bytes, zeros past its size.  Never shrinks.  Lock held. */
static int reserve_locked(struct tc_store *s, struct tc_node *n, uint64_t end)
{
	struct tc_wr *w;
	struct tc_ver *v;
	int r;

	assert_locked(s);
	wait_drained(s, n);
	w = tc_nwr(n); /* a write handle keeps it */
	if (!(v = w->pending)) {
		uint64_t size = tc_nver(n) && tc_nver(n)->size > end ? tc_nver(n)->size : end;
		r = ver_clone(s, tc_nver(n), size, &v);
		if (!r)
			wr_set_pending(w, v);
		return r;
	}
	if (end > tc_ver_alloc(v)) {
		r = ver_grow(s, v, end);
		if (r)
			return r;
	}
	if (end > v->size) {
		ver_zero(s, v, v->size, end);
		v->size = end;
	}
	v->dirty = 1;
	return 0;
}

int tc_file_reserve(tc_store *s, tc_file *fh, uint64_t off, uint64_t len)
{
	struct tc_node *n = fh->node;
	uint64_t end;
	int r;

	if (!(fh->flags & TC_O_WRITE))
		return -EBADF;
	if (__builtin_add_overflow(off, len, &end) || end > INT64_MAX)
		return -EFBIG;
	lock(s);
	r = end > s->pool.size ? -EFBIG : reserve_locked(s, n, end);
	if (r) {
		write_failed(n, fh, r);
	} else {
		fh->dirty = 1;
		n->mtime = n->ctime = now_ns();
	}
	op_done(s);
	return r;
}

int tc_file_commit(tc_store *s, tc_file *fh)
{
	struct tc_node *n = fh->node;
	int r = 0;

	if (!(fh->flags & TC_O_WRITE))
		return 0;
	lock(s);
	/* A handle commits only what it changed since its own last commit: a
	 * late release of an old handle must not commit a rewrite that
	 * another handle has only begun. */
	if (fh->dirty && tc_nwr(n) && tc_nwr(n)->failed) {
		r = drop_failed(s, n, fh);
		fh->dirty = 0;
	} else if (fh->dirty && pending_of(n) && pending_of(n)->dirty &&
		   !n->dead) {
		wait_drained(s, n);
		if (pending_of(n) && pending_of(n)->dirty)
			r = commit_locked(s, n);
		if (r && tc_nwr(n)) {
			/* the commit failed (the journal could not take its
			 * record): as a failed write, so a tensor that never
			 * was committed is absent once close() returns */
			write_failed(n, fh, r);
			r = drop_failed(s, n, fh);
			fh->dirty = 0;
		}
	}
	if (!r)
		fh->dirty = 0;
	op_done(s);
	return r;
}

int tc_file_changed(tc_store *s, tc_file *fh)
{
	if (!(fh->flags & TC_O_WRITE))
		return 0;
	lock(s);
	int dirty = fh->dirty != 0;
	unlock(s);
	return dirty;
}

int tc_file_sync(tc_store *s, tc_file *fh)
{
	int r = tc_file_commit(s, fh);
	if (!r)
		r = tc_store_sync(s);
	return r;
}

void tc_file_close(tc_store *s, tc_file *fh)
{
	struct tc_node *n;
	if (!fh)
		return;
	n = fh->node;
	lock(s);
	if (fh->flags & TC_O_WRITE) {
		struct tc_wr *w = tc_nwr(n);
		if (w->last_writer == fh)
			w->last_writer = NULL;
		assert(w->writers > 0);
		if (--w->writers == 0 && w->pending) {
			wait_drained(s, n); /* unlocks: look at n->wr again */
			if ((w = tc_nwr(n))) {
				ver_put(s, w->pending); /* uncommitted: dropped */
				w->pending = NULL;
				wr_stop_hash(w);
			}
		}
		wr_idle(s, n);
	}
	ver_put(s, fh->ver);
	ver_put(s, fh->before);
	assert(n->refs > 0);
	n->refs--;
	if (!n->dead) {
		opens_add(tc_parent(n), -1);
		if (!tc_nver(n) && !pending_of(n) && !writers_of(n) && !n->refs)
			remove_subtree(s, n); /* created, never committed */
	} else if (!n->refs) {
		node_drop(s, n);
	}
	op_done(s);
	free(fh);
}

int tc_file_stat(tc_store *s, tc_file *fh, struct tc_stat *st)
{
	lock(s);
	fill_stat(fh->node, st);
	if (!(fh->flags & TC_O_WRITE)) {
		st->size = fh->ver ? fh->ver->size : 0;
		st->blocks = fh->ver ? (tc_ver_alloc(fh->ver) + 511) / 512 : 0;
	}
	op_done(s);
	return 0;
}

