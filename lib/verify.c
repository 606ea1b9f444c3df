/*
 * verify.c - checking, right after the open, the tensors whose bytes are
 * already in memory.
 *
 * A tensor's xxh3 is checked before its first read after the store is
 * opened (tc_file_open, the safetensors view; tcache.h, TC_VERIFY_ON).
 * That check reads the whole tensor.  When its pool pages are still in the
 * page cache (a remount, a daemon restarted on a warm machine) the check
 * is most of that first read's cost: a 1 GiB tensor hashes in about
 * 37 ms on this project's test machine, as long as mapping it and summing
 * its bytes takes.  So a thread of the store's own checks those tensors
 * at once, while no reader waits, entries most recently used first, and
 * records each as good or damaged exactly as a first read would
 * (ver_checked).  A tensor with a page out of memory is left to its first
 * read: checking it here would read the disk and push other pages out of
 * the cache.  A read that comes first checks the tensor itself; both may
 * hash it, and since committed bytes never change, both find the same.
 * Nothing here is a use of the entry: no hit, no touch, no recency.
 *
 *   entries, newest first (a snapshot of the ids of the VERIFY_AHEAD_MAX
 *   most recently used, taken once)
 *     -> under the lock: the entry's tensors still unchecked (their ids)
 *     -> each: under the lock, a reference on its version; unlocked,
 *        mincore() over its extents, and if all resident its xxh3;
 *        under the lock, the result, and the reference dropped
 *
 * Thread: one, at SCHED_IDLE priority (it runs when a CPU is otherwise
 * idle), started by tc_store_verify_start after the caller's fork, ended
 * and joined by tc_store_close (verifier_stop), which it answers within
 * 1 MiB of hashing.
 *
 * Locking: the store lock while choosing and recording, never while
 * hashing: the reference keeps the version's extents, and a committed
 * version's bytes do not change.  Entries removed or replaced meanwhile
 * are found gone (by id) and passed over.
 *
 * Cost: a snapshot of at most VERIFY_AHEAD_MAX entry ids (512 KiB, freed
 * at the end; a snapshot of every id was 8 bytes an entry, 8 MB of the
 * daemon's memory at a million entries for as long as the walk took), a
 * lock round and a mincore() a tensor, and one xxh3 pass over the bytes of
 * the resident ones.  Older entries are left to their first read: they are
 * the least likely to be read soon or to be in memory.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "store.h"
#include "store_test.h"

/* The ids of the s->verify_ahead_max most recently used entries in
 * *@ids (malloc'd; NULL when none), a ring of *@n: the newest at
 * *@newest, each older one at the index before (modulo *@n).  The walk
 * is the LRU's, least recently used first.  Lock held. */
static int entry_ids(struct tc_store *s, uint64_t **ids, size_t *n,
		     size_t *newest)
{
	struct tc_lru_iter it;
	struct tc_node *e;
	size_t k = 0, cap = s->idx.entries < s->verify_ahead_max
				    ? s->idx.entries : s->verify_ahead_max;

	assert_locked(s);
	*ids = NULL;
	*n = *newest = 0;
	if (!cap)
		return 0;
	uint64_t *v = malloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	tc_lru_iter_start(&s->lru, &it);
	while ((e = tc_lru_iter_next(&it)))
		v[k++ % cap] = e->id;
	*ids = v;
	*n = k < cap ? k : cap;
	*newest = k ? (k - 1) % cap : 0;
	return 0;
}

/* The version of tensor @id if it is still to be checked, with a reference
 * taken; else NULL.  Lock held. */
static struct tc_ver *unchecked(struct tc_store *s, uint64_t id)
{
	struct tc_node *n = tc_index_get(&s->idx, id);
	struct tc_ver *v = n && !n->dead && n->kind == TC_KIND_TENSOR
				   ? tc_nver(n) : NULL;

	assert_locked(s);
	if (!v || v->verified != TC_UNVERIFIED)
		return NULL;
	v->refs++;
	return v;
}

/* Check tensor @id if its bytes are all in memory.  0, or -EINTR when
 * stopped, -errno from mincore. */
static int check_one(struct tc_store *s, uint64_t id)
{
	struct tc_ver *v;
	uint64_t h = 0;
	int r;

	lock(s);
	v = unchecked(s, id);
	unlock(s);
	if (!v)
		return 0;
	r = ver_resident(s, v);
	if (r > 0)
		r = ver_hash_unless(s, v, &s->verifier_stop, &h);
	else if (r == 0)
		r = 1; /* not resident: left to its first read */
	lock(s);
	if (r == 0 && v->verified == TC_UNVERIFIED) {
		ver_checked(s, v, h == v->xxh3);
		s->verified_ahead++;
		struct tc_node *n = tc_index_get(&s->idx, id);
		if (h != v->xxh3 && s->verifier_fn && n && tc_nver(n) == v) {
			char path[4096];
			node_path(n, path, sizeof(path));
			s->verifier_fn(s->verifier_arg, path,
				       "its bytes do not match their xxh3");
		}
	}
	ver_put(s, v);
	unlock(s);
	return r > 0 ? 0 : r;
}

/* The ids of entry @id's tensors still to check, in *@t (grown as
 * needed, *@cap its room).  Lock held. */
static int entry_tensors(struct tc_store *s, uint64_t id, uint64_t **t,
			 size_t *cap, size_t *n)
{
	struct tc_node *e = tc_index_get(&s->idx, id), *c;

	assert_locked(s);
	*n = 0;
	if (!e || e->dead)
		return 0;
	for (c = e; c; c = tc_node_next(c, e)) {
		if (c->kind != TC_KIND_TENSOR || !tc_nver(c) ||
		    tc_nver(c)->verified != TC_UNVERIFIED)
			continue;
		if (*n == *cap) {
			size_t want = *cap ? *cap * 2 : 16;
			uint64_t *g = realloc(*t, want * sizeof(**t));
			if (!g)
				return -ENOMEM;
			*t = g;
			*cap = want;
		}
		(*t)[(*n)++] = c->id;
	}
	return 0;
}

static void *verifier_main(void *arg)
{
	struct tc_store *s = arg;
	struct sched_param idle = { 0 };
	uint64_t *ids = NULL, *t = NULL;
	size_t n = 0, newest = 0, nt = 0, cap = 0;
	int r;

	/* best effort: at normal priority it is only less polite */
	(void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
	lock(s);
	r = entry_ids(s, &ids, &n, &newest);
	unlock(s);
	for (size_t i = 0; !r && i < n; i++) { /* newest first */
		if (atomic_load_explicit(&s->verifier_stop, memory_order_relaxed))
			break;
		lock(s);
		r = entry_tensors(s, ids[(newest + n - i) % n], &t, &cap, &nt);
		unlock(s);
		for (size_t j = 0; !r && j < nt; j++)
			r = check_one(s, t[j]);
	}
	free(t);
	free(ids);
	return NULL;
}

int tc_store_verify_start(tc_store *s, tc_check_fn on_damage, void *arg)
{
	int r;

	if (s->verify != TC_VERIFY_ON || s->rdonly || s->verifier_started)
		return 0;
	s->verifier_fn = on_damage;
	s->verifier_arg = arg;
	atomic_store(&s->verifier_stop, 0);
	r = -pthread_create(&s->verifier, NULL, verifier_main, s);
	if (!r)
		s->verifier_started = 1;
	return r;
}

void tc_store_verify_wait(tc_store *s)
{
	if (!s->verifier_started)
		return;
	pthread_join(s->verifier, NULL);
	s->verifier_started = 0;
}

void verifier_stop(struct tc_store *s)
{
	if (!s->verifier_started)
		return;
	atomic_store(&s->verifier_stop, 1);
	pthread_join(s->verifier, NULL);
	s->verifier_started = 0;
}
