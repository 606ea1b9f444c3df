/*
 * store.h - the store's private header: struct tc_store, the lock, and
 * what the store's files call of each other (internal to libtcache).
 *
 * The store is cut by concept, one file each, every one opening with
 * what it keeps true:
 *   store.c      open, close, stats, sync, fsck: the store as a whole
 *   namespace.c  names and attributes: lookup, mkdir, rename, unlink, pin
 *   files.c      tensor files: create, open, read, write, commit, close
 *   dirmeta.c    a directory's meta.json: render, check, apply
 *   version.c    tensor versions: extents, the one extent walk, checksum
 *   apply.c      the one way the index changes: an op, journaled, applied
 *   durable.c    the journal's side: append, touches, sync, checkpoints
 *   replay.c     open: records applied, the unsynced tail settled, the
 *                pool's free space rebuilt
 *   evict.c      eviction (make_room) and the capacity shrink at open
 *   stview.c     safetensors: the files meta.json lists, the entry's view
 * Below them: index.c (nodes and tables), links.c (parent links), lru.c,
 * pool.c, journal.c, tail.c, meta.c.
 *
 * Life of a tensor's bytes:
 *   create/open for write -> a pending version (tc_ver) owned by the
 *   writers; writes allocate extents as they go (evicting LRU entries when
 *   the pool is full) and copy bytes with pwrite outside the lock;
 *   commit (flush) -> checksum, .npy header, one journal record, and the
 *   pending version becomes the committed one; after a failed write or
 *   reservation (tc_wr.failed) the commit drops it instead and puts back
 *   what the handle found at its open (tc_file.before).  Readers hold a
 *   reference to the committed version they opened, so a replacement
 *   never changes bytes under them; the old version's extents are freed
 *   when its last reader closes.
 *
 * Locking: one mutex (lock) protects every field of the store and of the
 * index, pool, lru and journal.  Only byte copies into or out of the pool
 * and checksum passes over committed (immutable) versions run unlocked.
 * A pending version's extents never shrink while a write copies into them
 * (ver->inflight > 0): commit and truncate wait on `drained` first.
 * The eviction listener runs with the lock held.  A function whose
 * comment says "lock held" asserts it (assert_locked).
 */
#ifndef TC_STORE_H
#define TC_STORE_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "index.h"
#include "journal.h"
#include "lru.h"
#include "pool.h"
#include "tail.h"
#include "tcache.h"

#define POOL_FILE "pool"
#define LOCK_FILE "lock"

/*
 * A lookup at the root that finds nothing is a miss unless its name is
 * made there (mkdir, a file created, a rename onto it) within
 * MISS_WINDOW_NS of the name's first such lookup: "is it there? no, make
 * it" is a write, not a miss.  Until then it waits in a small table of
 * the names' hashes (namespace.c): ABSENT_SETS sets of ABSENT_WAYS, the
 * set chosen by the hash.  Its lookups become misses when a stats read, a
 * checkpoint, a new lookup or a create of the name finds it older than
 * the window; when its slot is taken for a new name (the oldest of a full
 * set: counted early, not lost); and at close.  O(1) per lookup and
 * create, 96 KiB per store: a batch of TC_BATCH_MAX lookups waits whole
 * (tcache.batch's puts look their pages up, then make them).  The kernel asks again for a name it did not
 * find (fs/ replies ENOENT, which it does not cache): each check is a
 * lookup here.
 */
#define MISS_WINDOW_NS (2 * 1000000000LL)

/* The check of tensors in memory after the open (verify.c) looks at this
 * many of the most recently used entries: its snapshot of their ids is at
 * most 512 KiB. */
#define VERIFY_AHEAD_MAX 65536
#define ABSENT_SETS 1024
#define ABSENT_WAYS 4

struct tc_absent {
	uint64_t hash;               /* XXH3 of the name */
	int64_t since;               /* its first lookup (mono_ns) */
	uint32_t lookups;            /* 0: the slot is free */
};

struct tc_store {
	pthread_mutex_t lock;
	pthread_cond_t drained;      /* some ver->inflight reached 0 */
	pthread_t holder;            /* the thread holding lock, while held */
	int held;                    /* lock is held (for assert_locked) */
	int dirfd, lockfd;
	struct tc_pool pool;
	struct tc_index idx;
	struct tc_lru lru;
	struct tc_journal jr;
	unsigned verify;
	int replaying;               /* the journal is being replayed: a
	                                version comes from its record, and
	                                one it replaces goes to the tail */
	int pool_ready;              /* the pool's free space is built:
	                                freed extents go back to it (or its
	                                quarantine).  Before (replay, the
	                                rest of open) and after (close) they
	                                are only forgotten. */
	struct tc_node *replay_dir;  /* replay: the directory last applied
	                                (a checkpoint lists a directory's
	                                children right after it), or NULL */
	int want_checkpoint;         /* the journal outgrew its last checkpoint */
	uint64_t journal_slack;      /* see tc_options */
	uint64_t checkpoints;        /* put in place since the open */
	uint64_t sync_gen;           /* generation of the frees held in the
	                                pool's quarantine now (pool.h) */
	uint64_t bg_gen;             /* the generation a running child's
	                                snapshot covers */
	int evicting;                /* evict() is removing an entry: its
	                                extents wait for the record alone */
	struct tc_tail tail;         /* replay: the unsynced tail (tail.c) */
	uint64_t unsynced_dropped;   /* open: tensors not durable at a crash
	                                whose bytes did not survive it */
	uint64_t fallbacks;          /* open: replacements not durable at a
	                                crash; the version before kept */
	int rdonly;                  /* opened by tc_store_check to look only */
	int journal_err;             /* the last append's error, or 0 */
	struct tc_buf touches;       /* TOUCH ops not yet in the journal */
	uint32_t ntouches;
	int64_t touches_since;       /* when the oldest of them happened */
	tc_check_fn report;          /* tc_store_check: told of each drop */
	void *report_arg;
	uint64_t ver_counter;
	uint64_t live_bytes;
	uint64_t hits, misses, evictions, evicted_bytes;
	uint64_t probes;             /* lookups at the root */
	struct tc_absent absent[ABSENT_SETS * ABSENT_WAYS];
	uint32_t nabsent;            /* slots in use */
	int64_t miss_window;         /* MISS_WINDOW_NS; tests change it */
	uint64_t journal_dropped, nodes_dropped;
	uint64_t journal_torn;       /* records a power loss never wrote */
	tc_evict_fn evict_fn;
	void *evict_arg;
	struct tc_map kin;           /* parent links by name (links.c) */
	tc_change_fn change_fn;      /* see tc_store_on_change */
	void *change_arg;
	/* the check of tensors in memory after the open (verify.c) */
	pthread_t verifier;
	int verifier_started;        /* it runs, or ended unjoined */
	atomic_int verifier_stop;    /* tc_store_close: end now */
	tc_check_fn verifier_fn;     /* told of damage it finds */
	void *verifier_arg;
	uint64_t verified_ahead;     /* tensors it checked */
	size_t verify_ahead_max;     /* entries it looks at, the most
	                                recently used (VERIFY_AHEAD_MAX) */
	uint64_t damaged;            /* tensors found damaged since the open,
	                                by a read or by it */
};

struct tc_file {
	struct tc_node *node;
	struct tc_ver *ver;          /* read-only handles: the version read */
	unsigned flags;
	int dirty;                   /* changed the pending version since this
	                                handle's last commit: only then does
	                                its commit (flush, release) commit */
	struct tc_ver *before;       /* write handles: the version committed
	                                when it opened (a reference; NULL for
	                                none), put back if a write through it
	                                fails after a commit through it (a
	                                close of a dup'ed descriptor) */
};

/* ---- the lock ------------------------------------------------------------ */

static inline void lock(struct tc_store *s)
{
	pthread_mutex_lock(&s->lock);
	s->holder = pthread_self();
	s->held = 1;
}

/* Only unlocks.  A public operation ends with op_done() instead. */
static inline void unlock(struct tc_store *s)
{
	s->held = 0;
	pthread_mutex_unlock(&s->lock);
}

static inline void assert_locked(const struct tc_store *s)
{
	assert(s->held && pthread_equal(s->holder, pthread_self()));
	(void)s;
}

/* Wait for `drained` (the lock is let go meanwhile).  Lock held. */
static inline void wait_drained_cond(struct tc_store *s)
{
	assert_locked(s);
	s->held = 0;
	pthread_cond_wait(&s->drained, &s->lock);
	s->holder = pthread_self();
	s->held = 1;
}

/* ---- time ---------------------------------------------------------------- */

static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* For intervals: never jumps with the wall clock. */
static inline int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline struct timespec ts_of(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000,
			       .tv_nsec = ns % 1000000000 };
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += 1000000000;
		ts.tv_sec--;
	}
	return ts;
}

static inline int64_t ns_of(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- a tensor's writing state (files.c) ---------------------------------- */

static inline struct tc_ver *pending_of(const struct tc_node *n)
{
	return tc_nwr(n) ? tc_nwr(n)->pending : NULL;
}

static inline uint32_t writers_of(const struct tc_node *n)
{
	return tc_nwr(n) ? tc_nwr(n)->writers : 0;
}

/* Is a record of @n in the journal?  Directories are journaled when made,
 * tensors at their first commit; a removed node no longer is. */
static inline int node_journaled(const struct tc_node *n)
{
	return n->kind != TC_KIND_ROOT && n->dead == TC_LIVE &&
	       (tc_node_isdir(n) || tc_nver(n));
}

/* A child of directory @d was added, removed or renamed at @now: its
 * mtime and ctime follow (outside the journal, see apply.c). */
static inline void dir_changed(struct tc_node *d, int64_t now)
{
	d->mtime = d->ctime = now;
}

/* @a (an array of *@cap elements of @size bytes, or NULL) with room for
 * more: twice as many, at least @first; *@cap updated.  NULL on ENOMEM,
 * and @a is as it was. */
static inline void *grow_array(void *a, size_t *cap, size_t size,
			       size_t first)
{
	size_t ncap = *cap ? *cap * 2 : first;
	void *p = realloc(a, ncap * size);
	if (p)
		*cap = ncap;
	return p;
}

/* ---- what the files call of each other ----------------------------------- */

/* verify.c: end the check of tensors in memory, if it runs.  Unlocked. */
void verifier_stop(struct tc_store *s);

/* store.c: the end of every public operation: op_chores(), unlock. */
void op_done(struct tc_store *s);

/* owner.c: write this process's pid into the lock file just taken. */
void owner_opened(struct tc_store *s);

/* version.c */
struct tc_ver *ver_new(struct tc_store *s);
int ver_set_shape(struct tc_ver *v, int ndim, const uint64_t *shape);
void ver_put(struct tc_store *s, struct tc_ver *v);
void ver_put_cb(void *arg, struct tc_ver *v);
int ver_push(struct tc_ver *v, struct tc_extent e);
int ver_spans(const struct tc_store *s, const struct tc_ver *v, uint64_t off,
	      uint64_t len, struct tc_span *sp, int max);
int ver_hash(const struct tc_store *s, const struct tc_ver *v, uint64_t size,
	     uint64_t *out);
int ver_intact(int fd, const struct tc_ver *v, uint8_t *buf, size_t bufsize);
int ver_hash_unless(const struct tc_store *s, const struct tc_ver *v,
		    const atomic_int *stop, uint64_t *out);
int ver_resident(const struct tc_store *s, const struct tc_ver *v);
void ver_checked(struct tc_store *s, struct tc_ver *v, int good);
int ver_grow(struct tc_store *s, struct tc_ver *v, uint64_t end);
void ver_trim(struct tc_store *s, struct tc_ver *v);
void ver_pack(struct tc_store *s, struct tc_ver *v);
void ver_zero(struct tc_store *s, struct tc_ver *v, uint64_t from,
	      uint64_t to);
int ver_clone(struct tc_store *s, const struct tc_ver *src, uint64_t size,
	      struct tc_ver **out);
/* Copy @len bytes of @v from @off (inside its size) to @buf. */
void ver_read(const struct tc_store *s, const struct tc_ver *v, uint64_t off,
	      size_t len, void *buf);
void ver_type(struct tc_store *s, const struct tc_node *dir, const char *name,
	      struct tc_ver *v, const struct tc_ver *old);

/* apply.c */
void node_op(const struct tc_node *n, const struct tc_ver *v,
	     struct tc_op *op);
void op_set_ver(struct tc_op *op, const struct tc_ver *v);
int store_change(struct tc_store *s, const struct tc_op *ops, size_t k,
		 struct tc_ver *v);
int store_change_each(struct tc_store *s, const struct tc_op *ops, size_t k,
		      struct tc_ver *const *vs);
int apply_op(struct tc_store *s, uint64_t seq, const struct tc_op *op,
	     uint32_t h, struct tc_ver *v);
void node_set_attrs(struct tc_node *n, const struct tc_op *op);
void touch_entry(struct tc_store *s, struct tc_node *e, int64_t when);
void op_set_pin(struct tc_op *op, int pinned);
void opens_add(struct tc_node *dir, int64_t delta);
void node_drop(struct tc_store *s, struct tc_node *n);
void remove_subtree(struct tc_store *s, struct tc_node *n);
uint64_t subtree_bytes(const struct tc_node *n);

/* durable.c */
int store_append(struct tc_store *s, struct tc_buf *b, uint64_t *seq);
void store_touch(struct tc_store *s, struct tc_node *n);
void touches_lead(struct tc_store *s, struct tc_buf *b);
void touches_sent(struct tc_store *s);
int sync_locked(struct tc_store *s, int may_unlock);
int sync_journal_locked(struct tc_store *s);
int checkpoint(struct tc_store *s, uint64_t capacity);
void op_chores(struct tc_store *s);

/* namespace.c: "entry/group/name" of @n (still linked) into @buf. */
void node_path(const struct tc_node *n, char *buf, size_t size);

/* replay.c */
int apply_record(void *arg, uint32_t version, uint64_t seq, const uint8_t *p,
		 size_t len);
void count_drops(struct tc_store *s);
int settle_tail(struct tc_store *s, int fd);
int build_pool(struct tc_store *s, uint64_t valid_end);
void report_drop(struct tc_store *s, const struct tc_node *n,
		 const char *why);

/* evict.c */
int make_room(struct tc_store *s, uint64_t need);
uint64_t pinned_alloc(const struct tc_store *s);
int shrink(struct tc_store *s, uint64_t cap, uint64_t limit, uint64_t *valid);

/* namespace.c */
void fill_stat(const struct tc_node *n, struct tc_stat *st);
/* A name a node may have: -ENAMETOOLONG, -EINVAL ("", ".", "..", a '/'). */
int check_name(const char *name);
/* ... and one that may be made in @dir: -EEXIST for a name it reserves. */
int check_new_name(const struct tc_node *dir, const char *name);
int get_dir(struct tc_store *s, uint64_t id, struct tc_node **out);
int dir_for_new(struct tc_store *s, uint64_t parent, const char *name,
		struct tc_node **d);
int node_remove(struct tc_store *s, struct tc_node *n);
void absent_made(struct tc_store *s, uint64_t parent, const char *name);
void absent_settle(struct tc_store *s, int all);

/* links.c */
int links_set(struct tc_store *s, struct tc_node *e, const char *link,
	      uint32_t len);
void links_join(struct tc_store *s, struct tc_node *e);
void links_leave(struct tc_store *s, struct tc_node *e);
uint32_t links_count(const struct tc_store *s, const char *name);
/* Would following parent links from name @from reach name @self?  Names
 * resolve to present entries, except @moving (NULL: none), an entry
 * about to be renamed to @self, which no longer has its old name. */
int links_loop(struct tc_store *s, const char *from, const char *self,
	       const struct tc_node *moving);
/* Check that every entry's count of children matches the links, and
 * that no links loop (a damaged journal could leave one); each problem
 * is told (report_drop) and counted in *@bad; with @repair a loop is cut
 * (one link removed, journaled).  O(entries).  0 or -ENOMEM. */
int links_check(struct tc_store *s, int repair, uint64_t *bad);
void links_free(struct tc_store *s);

/* files.c */
void wr_free(struct tc_store *s, struct tc_node *n);
int resize_pending(struct tc_store *s, struct tc_node *n, uint64_t size);
int commit_locked(struct tc_store *s, struct tc_node *n);

/* stview.c: meta.json's listing of tensor @n's safetensors header (a
 * compact JSON object, tc_st_list_json) in *@json, malloc'd; NULL when @n
 * is not named *.safetensors or its header does not pass.  -ENOMEM.
 * Lock held.  O(header). */
int st_meta_json(struct tc_store *s, const struct tc_node *n, char **json);

#endif
