/*
 * store.c - the store as a whole: open (lock, replay, shrink or grow, the
 * pool's free space), close, sync, stats, fsck, and the test hooks.
 *
 * Files in the store directory:
 *   lock      flock()ed exclusively while a process has the store open
 *   pool      the tensor bytes (pool.c), preallocated to the capacity
 *   journal   the durable index (journal.c); journal.new while a
 *             checkpoint is being written (by a child process, forked
 *             between operations once the journal has doubled, put in
 *             place between later ones or at a tick; in place at open
 *             and close)
 *
 * Where the rest is: store.h lists the store's files and what each holds.
 *
 * Invariants of open: nothing is served before the journal is replayed,
 * the unsynced tail settled and the free space rebuilt (replay.c); what
 * open drops (damage, unsynced bytes, a shrink's evictions) is
 * checkpointed before anything else is written, so a regrown pool never
 * brings dropped tensors back.  Open runs under the lock, like every
 * operation, though nothing else can reach the store yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_test.h"

/* The end of every public operation: the chores due between operations
 * (durable.c), then unlock. */
void op_done(struct tc_store *s)
{
	op_chores(s);
	unlock(s);
}

static void store_free(struct tc_store *s)
{
	s->pool_ready = 0; /* the pool may be gone: no frees into it */
	tc_tail_free(&s->tail, ver_put_cb, s);
	tc_index_free(&s->idx, ver_put_cb, s);
	links_free(s);
	tc_buf_free(&s->touches);
	tc_journal_close(&s->jr);
	tc_pool_close(&s->pool);
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->drained);
	free(s);
}

/*
 * Open a store: lock, replay, size the pool, rebuild the free space.  With
 * @rdonly (tc_store_check) nothing on disk changes: the journal and pool
 * are only read, and damage found is dropped in memory alone.
 */
static int store_open(const char *dir, const struct tc_options *opt,
		      int rdonly, tc_check_fn fn, void *arg, tc_store **out)
{
	struct tc_store *s;
	uint64_t want = opt ? opt->capacity & ~(uint64_t)(TC_BLOCK - 1) : 0;
	uint64_t cap = 0, final, valid = 0;
	struct stat st;
	int r, is_new, vfd = -1;

	if (opt && opt->capacity && !want)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = s->lockfd = -1;
	s->pool.fd = -1;
	s->jr.fd = s->jr.data_fd = -1;
	s->sync_gen = 1;
	s->miss_window = MISS_WINDOW_NS;
	s->verify_ahead_max = VERIFY_AHEAD_MAX;
	s->verify = opt ? opt->verify : TC_VERIFY_ON;
	s->journal_slack = opt && opt->journal_slack ? opt->journal_slack
						     : TC_DEFAULT_JOURNAL_SLACK;
	s->rdonly = rdonly;
	s->report = fn;
	s->report_arg = arg;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->drained, NULL);
	if (tc_index_init(&s->idx)) {
		pthread_cond_destroy(&s->drained);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return -ENOMEM;
	}
	s->idx.root->atime = s->idx.root->mtime = s->idx.root->ctime = now_ns();
	lock(s);

	if (!rdonly && mkdir(dir, 0700) < 0 && errno != EEXIST)
		goto fail_errno;
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		goto fail_errno;
	s->lockfd = openat(s->dirfd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC,
			   0600);
	if (s->lockfd < 0)
		goto fail_errno;
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	owner_opened(s);

	/* A store is new until its journal exists: the pool is made first,
	 * so a failed creation leaves no journal that points at nothing. */
	is_new = faccessat(s->dirfd, TC_JOURNAL_FILE, F_OK, 0) < 0;
	if (!is_new) {
		tc_index_reserve(&s->idx, tc_journal_hint(s->dirfd));
		s->replaying = 1;
		r = (rdonly ? tc_journal_open_rdonly : tc_journal_open)(
			&s->jr, s->dirfd, &cap, apply_record, s,
			&s->journal_dropped);
		s->replaying = 0;
		s->replay_dir = NULL;
		if (r)
			goto fail;
		/* A pool file that is missing or was cut short: the tensors
		 * whose bytes it lost are dropped below, the rest served. */
		if (fstatat(s->dirfd, POOL_FILE, &st, 0) == 0)
			valid = (uint64_t)st.st_size & ~(uint64_t)(TC_BLOCK - 1);
		if (valid > cap)
			valid = cap;
		/* What a crash may not have kept whole is checked now, before
		 * anything is rewritten (tail.c). */
		count_drops(s);
		vfd = openat(s->dirfd, POOL_FILE, O_RDONLY | O_CLOEXEC);
		r = settle_tail(s, vfd);
		if (r)
			goto fail;
	} else if (rdonly) {
		r = -ENOENT;
		goto fail;
	}
	if (rdonly) {
		if (vfd >= 0)
			close(vfd);
		vfd = -1;
		r = tc_pool_open_rdonly(&s->pool, s->dirfd, POOL_FILE);
		if (r == -ENOENT)
			r = 0; /* an empty pool: every tensor is dropped */
		if (!r)
			r = build_pool(s, valid);
		if (r)
			goto fail;
		unlock(s);
		*out = s;
		return 0;
	}
	final = want ? want : is_new ? TC_DEFAULT_CAPACITY : cap;
	if (!is_new && final < cap) {
		/* Shrink: record the evictions, the moves and the new
		 * capacity before the pool file loses its tail. */
		s->evict_fn = opt ? opt->on_evict : NULL;
		s->evict_arg = opt ? opt->evict_arg : NULL;
		s->jr.data_fd = vfd; /* synced before a checkpoint names it */
		r = shrink(s, cap, final, &valid);
		s->jr.data_fd = -1;
		s->evict_fn = NULL;
		if (r)
			goto fail;
	}
	if (vfd >= 0)
		close(vfd);
	vfd = -1;
	r = tc_pool_open(&s->pool, s->dirfd, POOL_FILE, final);
	if (r) {
		if (is_new)
			unlinkat(s->dirfd, POOL_FILE, 0);
		goto fail;
	}
	if (is_new) {
		/* the pool's size is durable before a journal names it (the
		 * journal's creation fsyncs the directory for both files) */
		cap = valid = final;
		r = fdatasync(s->pool.fd) < 0 ? -errno : 0;
		if (!r)
			r = tc_journal_open(&s->jr, s->dirfd, &cap, apply_record,
					    s, &s->journal_dropped);
		if (r)
			goto fail;
	}
	s->jr.data_fd = s->pool.fd;
	if (!is_new && final > cap) {
		r = checkpoint(s, final);
		if (r)
			goto fail;
	}
	r = build_pool(s, valid < final ? valid : final);
	if (r)
		goto fail;
	/* Damage dropped at open stays dropped: rewrite the journal without
	 * it (otherwise a regrown pool would bring tensors back as zeros);
	 * so do the versions a crash did not keep. */
	if (s->journal_dropped || s->nodes_dropped || s->unsynced_dropped ||
	    s->fallbacks || s->jr.version != TC_JOURNAL_VERSION) {
		r = checkpoint(s, s->jr.capacity);
		if (r)
			goto fail;
	}
	unlock(s);
	*out = s;
	return 0;
fail_errno:
	r = -errno;
fail:
	if (vfd >= 0)
		close(vfd);
	unlock(s);
	store_free(s);
	return r;
}

int tc_store_open(const char *dir, const struct tc_options *opt,
		  tc_store **out)
{
	return store_open(dir, opt, 0, NULL, NULL, out);
}

int tc_store_close(tc_store *s)
{
	int r;
	if (!s)
		return 0;
	verifier_stop(s);
	lock(s);
	absent_settle(s, 1); /* nothing can make those names now */
	r = s->rdonly ? 0 : checkpoint(s, s->jr.capacity);
	unlock(s);
	store_free(s);
	return r;
}

int tc_store_sync(tc_store *s)
{
	int r;
	lock(s);
	r = s->rdonly ? 0 : sync_locked(s, 1);
	op_done(s);
	return r;
}

void tc_store_tick(tc_store *s)
{
	lock(s);
	op_done(s); /* writes the touches once they are due */
}

/* @e's last access, 0 for none. */
static int64_t access_of(const struct tc_node *e)
{
	return e ? e->last_access : 0;
}

void tc_store_stats(tc_store *s, struct tc_stats *st)
{
	lock(s);
	absent_settle(s, 0);
	*st = (struct tc_stats){
		.capacity = s->pool.size,
		.used = s->pool.size - s->pool.free - s->pool.held_bytes -
			s->pool.slack,
		.live_bytes = s->live_bytes,
		.entries = s->idx.entries,
		.tensors = s->idx.tensors,
		.groups = s->idx.groups,
		.probes = s->probes,
		.hits = s->hits,
		.misses = s->misses,
		.evictions = s->evictions,
		.evicted_bytes = s->evicted_bytes,
		.journal_bytes = s->jr.size,
		.journal_dropped = s->journal_dropped,
		.nodes_dropped = s->nodes_dropped,
		.journal_torn = s->journal_torn,
		.unsynced_dropped = s->unsynced_dropped,
		.fallbacks = s->fallbacks,
		.verified_ahead = s->verified_ahead,
		.damaged = s->damaged,
		.checkpoints = s->checkpoints,
		.pinned = s->lru.npinned,
		.oldest_access_ns = access_of(tc_lru_oldest(&s->lru)),
		.newest_access_ns = access_of(tc_lru_newest(&s->lru)),
	};
	unlock(s);
}

int tc_store_journal_error(tc_store *s)
{
	lock(s);
	int r = s->journal_err;
	unlock(s);
	return r;
}

void tc_store_on_evict(tc_store *s, tc_evict_fn fn, void *arg)
{
	lock(s);
	s->evict_fn = fn;
	s->evict_arg = arg;
	unlock(s);
}

void tc_store_on_change(tc_store *s, tc_change_fn fn, void *arg)
{
	lock(s);
	s->change_fn = fn;
	s->change_arg = arg;
	unlock(s);
}

/* ---- misc ---------------------------------------------------------------- */

int tc_parse_size(const char *str, uint64_t *out)
{
	const char *p = str;
	uint64_t whole = 0, mult = 1;
	double frac = 0, scale = 0.1;
	int digits = 0;

	while (isspace((unsigned char)*p))
		p++;
	for (; isdigit((unsigned char)*p); p++, digits++)
		if (__builtin_mul_overflow(whole, 10, &whole) ||
		    __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
			return -ERANGE;
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, digits++, scale /= 10)
			frac += (*p - '0') * scale;
	}
	if (!digits)
		return -EINVAL;
	switch (toupper((unsigned char)*p)) {
	case 'K': mult = 1ull << 10; p++; break;
	case 'M': mult = 1ull << 20; p++; break;
	case 'G': mult = 1ull << 30; p++; break;
	case 'T': mult = 1ull << 40; p++; break;
	case 'P': mult = 1ull << 50; p++; break;
	}
	if (mult > 1 && (*p == 'i' || *p == 'I'))
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	while (isspace((unsigned char)*p))
		p++;
	if (*p)
		return -EINVAL;
	uint64_t v;
	if (__builtin_mul_overflow(whole, mult, &v))
		return -ERANGE;
	double f = frac * (double)mult;
	if (f >= 18446744073709551615.0 - (double)v)
		return -ERANGE;
	v += (uint64_t)f;
	if (!v)
		return -EINVAL;
	*out = v;
	return 0;
}

int tc_store_peek(const char *dir, struct tc_stats *st)
{
	tc_store *s;
	int r = store_open(dir, NULL, 1, NULL, NULL, &s);
	if (r)
		return r;
	tc_store_stats(s, st);
	st->pinned_bytes = pinned_alloc(s);
	return tc_store_close(s);
}

/* ---- tc_store_check ------------------------------------------------------ */

int tc_store_check(const char *dir, unsigned flags, tc_check_fn fn, void *arg,
		   struct tc_check *out)
{
	int repair = flags & TC_CHECK_REPAIR;
	struct tc_check c = { 0 };
	struct tc_node *n, *next;
	tc_store *s;
	int r;

	r = store_open(dir, NULL, !repair, fn, arg, &s);
	if (r)
		return r;
	c.records_dropped = s->journal_dropped;
	c.nodes_dropped = s->nodes_dropped;
	c.unsynced = s->unsynced_dropped;
	c.torn = s->journal_torn;
	c.fallbacks = s->fallbacks;
	if (fn && s->journal_dropped)
		fn(arg, "journal", "torn or corrupt records dropped");
	lock(s);
	/* Pre-order walk of the whole tree; `next` is found before a damaged
	 * tensor is removed. */
	for (n = tc_node_next(s->idx.root, s->idx.root); n; n = next) {
		next = tc_node_next(n, s->idx.root);
		if (n->kind != TC_KIND_TENSOR || !tc_nver(n))
			continue;
		uint64_t h;
		r = ver_hash(s, tc_nver(n), tc_nver(n)->size, &h);
		if (r)
			break;
		c.tensors++;
		c.bytes += tc_nver(n)->size;
		if (h == tc_nver(n)->xxh3)
			continue;
		c.damaged++;
		report_drop(s, n, "bytes do not match their xxh3 checksum");
		if (repair && node_remove(s, n) == 0)
			c.repaired++;
	}
	if (!r)
		r = links_check(s, repair, &c.links);
	unlock(s);
	if (!r)
		r = tc_store_close(s);
	else
		tc_store_close(s);
	if (!r)
		*out = c;
	return r;
}

/* ---- test hooks (store_test.h) ------------------------------------------- */

static int id_cmp(const void *a, const void *b)
{
	const struct tc_node *x = *(const struct tc_node *const *)a;
	const struct tc_node *y = *(const struct tc_node *const *)b;
	return x->id < y->id ? -1 : x->id > y->id;
}

int tc_store_dump(tc_store *s, char **out, size_t *len)
{
	const struct tc_node *top = s->idx.root;
	struct tc_node **v = NULL, *e;
	size_t k = 0, cap = 0;
	char *buf = NULL;
	size_t n = 0;
	struct tc_lru_iter it;
	FILE *f = open_memstream(&buf, &n);
	int r = f ? 0 : -ENOMEM;

	lock(s);
	/* by id: a checkpoint lists entries in LRU order, so the order of
	 * children (readdir's) is not something replay keeps */
	for (struct tc_node *x = tc_node_next(top, top); !r && x;
	     x = tc_node_next(x, top)) {
		if (k == cap) {
			struct tc_node **nv = grow_array(v, &cap, sizeof(*v), 64);
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[k++] = x;
	}
	if (!r)
		qsort(v, k, sizeof(*v), id_cmp);
	for (size_t i = 0; !r && i < k; i++) {
		const struct tc_node *x = v[i];
		fprintf(f, "%" PRIu64 " in %" PRIu64 " %s kind %d mode %o "
			"uid %u gid %u atime %" PRId64, x->id, tc_parent(x)->id,
			tc_node_name(x), x->kind, x->mode, x->uid, x->gid, x->atime);
		/* a directory's mtime and ctime follow its children live,
		 * and reach the journal only with its own records */
		if (x->kind == TC_KIND_TENSOR)
			fprintf(f, " mtime %" PRId64 " ctime %" PRId64,
				x->mtime, x->ctime);
		if (tc_node_is_entry(x))
			fprintf(f, " created %" PRId64 " access %" PRId64
				" pinned %d attrs %s link %s kids %u", x->created,
				x->last_access, x->pinned,
				tc_attrs(x) ? tc_attrs(x) : "-",
				tc_link(x) ? tc_link(x) : "-", x->kids);
		if (tc_node_isdir(x))
			fprintf(f, " doc %s", tc_doc(x) ? tc_doc(x) : "-");
		if (x->kind == TC_KIND_TENSOR && tc_nver(x)) {
			const struct tc_ver *ver = tc_nver(x);
			fprintf(f, " size %" PRIu64 " xxh3 %016" PRIx64
				" offset %" PRIu64 " dtype %d shape", ver->size,
				ver->xxh3, (uint64_t)ver->data_offset, ver->dtype);
			for (int d = 0; d < ver->ndim; d++)
				fprintf(f, " %" PRIu64, tc_ver_shape(ver)[d]);
			fprintf(f, " extents");
			for (uint32_t d = 0; d < ver->nextents; d++)
				fprintf(f, " %" PRIu64 "+%" PRIu64, tc_ver_ext(ver)[d].off,
					tc_ver_ext(ver)[d].len);
		}
		fputc('\n', f);
	}
	if (!r) {
		fprintf(f, "lru");
		tc_lru_iter_start(&s->lru, &it);
		while ((e = tc_lru_iter_next(&it)))
			fprintf(f, " %" PRIu64, e->id);
		fputc('\n', f);
	}
	unlock(s);
	free(v);
	if (f && fclose(f) != 0 && !r)
		r = -ENOMEM;
	if (r) {
		free(buf);
		return r;
	}
	*out = buf;
	*len = n;
	return 0;
}

int tc_replay_image(const uint8_t *img, size_t len, struct tc_stats *st)
{
	struct tc_store *s = calloc(1, sizeof(*s));
	struct tc_scan sc;
	int r;

	if (!s)
		return -ENOMEM;
	s->dirfd = s->lockfd = s->pool.fd = s->jr.fd = s->jr.data_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->drained, NULL);
	if (tc_index_init(&s->idx)) {
		pthread_cond_destroy(&s->drained);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return -ENOMEM;
	}
	lock(s);
	s->replaying = 1;
	r = tc_journal_scan(img, len, apply_record, s, &sc);
	s->replaying = 0;
	if (!r) {
		s->journal_dropped = sc.dropped;
		s->jr.ndrops = sc.dropped < 16 ? (uint32_t)sc.dropped : 16;
		memcpy(s->jr.drop_after, sc.drop_after, sizeof(s->jr.drop_after));
		count_drops(s);
		s->pool.size = sc.capacity;
		r = build_pool(s, sc.capacity);
	}
	unlock(s);
	if (!r)
		tc_store_stats(s, st);
	store_free(s);
	return r;
}

void tc_store_set_verify_ahead_max(tc_store *s, size_t n)
{
	lock(s);
	s->verify_ahead_max = n;
	unlock(s);
}

void tc_store_set_miss_window(tc_store *s, int64_t ns)
{
	lock(s);
	s->miss_window = ns;
	unlock(s);
}
