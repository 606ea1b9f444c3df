/*
 * replay.c - open: the journal's records applied to an empty index, then
 * what a crash may have left settled, then the pool's free space rebuilt.
 *
 * The steps of an open (store.c) that are here:
 *   1. apply_record(), for each intact record in order: the record is
 *      decoded whole before any op of it is applied (a malformed one is
 *      dropped whole), then each op goes through apply_op() (apply.c),
 *      the function live operations use: replay rebuilds exactly what
 *      they built.
 *   2. count_drops(): dropped records and nodes past the last durable
 *      mark are holes a power loss leaves (journal_torn,
 *      unsynced_dropped); before it they are damage.
 *   3. settle_tail(): each tensor version set past the last mark whose
 *      bytes did not survive falls back to the one it replaced, or goes.
 *   4. build_pool(): tensors whose extents lie past the pool file's end
 *      or overlap a later tensor's are dropped; the rest of the pool is
 *      free space.
 * Until step 4 is done no extent is freed into the pool (pool_ready).
 * Every drop is told to tc_store_check's caller (report_drop).
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Tell tc_store_check's caller that @n is dropped, and why. */
void report_drop(struct tc_store *s, const struct tc_node *n, const char *why)
{
	char path[4096];
	if (!s->report)
		return;
	node_path(n, path, sizeof(path));
	s->report(s->report_arg, path, why);
}

/* Ops of a record kept from its checking pass (a checkpoint record holds
 * an entry and its few children), so that those are not decoded twice. */
#define KEPT_OPS 4

int apply_record(void *arg, uint32_t version, uint64_t seq, const uint8_t *p,
		 size_t len)
{
	struct tc_store *s = arg;
	struct tc_rd rd = { p, len, 0, version };
	struct tc_op ops[KEPT_OPS], spare;
	uint32_t h[KEPT_OPS];
	size_t kept = 0, resume = len;
	int r;

	/* Check the whole record before applying any of it. */
	while ((r = tc_rec_next(&rd, kept < KEPT_OPS ? &ops[kept] : &spare)) == 1)
		if (kept < KEPT_OPS && ++kept == KEPT_OPS)
			resume = rd.pos;
	if (r < 0)
		return 1; /* malformed: dropped whole */
	for (size_t i = 0; i < kept; i++) {
		h[i] = 0;
		if (ops[i].type != TC_OP_NODE)
			continue;
		h[i] = tc_name_hash(ops[i].parent, ops[i].name);
		tc_index_prefetch(&s->idx, ops[i].id, h[i]);
	}
	for (size_t i = 0; i < kept; i++)
		if ((r = apply_op(s, seq, &ops[i], h[i], NULL)))
			return r;
	rd.pos = resume;
	while (tc_rec_next(&rd, &spare) == 1) {
		uint32_t hs = spare.type == TC_OP_NODE
				      ? tc_name_hash(spare.parent, spare.name) : 0;
		if ((r = apply_op(s, seq, &spare, hs, NULL)))
			return r;
	}
	return 0;
}

/*
 * After replay: tell damage from holes.  A power loss leaves pages of the
 * journal unwritten only past what an fdatasync covered, and a mark says
 * how far that was (on_disk).  A record dropped past it is such a hole
 * (journal_torn), and a node dropped for lack of what a lost record made
 * is as unsynced as that record (unsynced_dropped).  Before it, both are
 * damage.  O(drops).
 */
void count_drops(struct tc_store *s)
{
	uint64_t on = s->tail.on_disk;
	for (uint32_t i = 0; i < s->jr.ndrops; i++)
		if (s->jr.drop_after[i] != TC_DROP_DAMAGE &&
		    s->jr.drop_after[i] >= on) {
			s->journal_dropped--;
			s->journal_torn++;
		}
	for (size_t i = 0; i < s->tail.ndrops; i++) {
		if (s->tail.drops[i] > on)
			s->unsynced_dropped++;
		else
			s->nodes_dropped++;
	}
	s->tail.ndrops = 0;
}

/*
 * After replay: check the tensors of the unsynced tail (tail.c) against
 * the pool file @fd (-1: none).  One whose bytes did not survive a crash
 * gets the version it replaced back, if that one's are good, or is
 * dropped as never written: unsynced tensors are absent or exact, and a
 * replacement shows the old bytes or the new.  Neither is damage.  Cost:
 * reads the tail's bytes once (nothing after a clean close).
 */
int settle_tail(struct tc_store *s, int fd)
{
	struct tc_tail *t = &s->tail;
	const size_t bufsize = 1u << 20;
	uint8_t *buf = NULL;
	int r = t->err;

	if (!r && t->nnews && !(buf = malloc(bufsize)))
		r = -ENOMEM;
	for (size_t i = 0; !r && i < t->nnews; i++) {
		struct tc_node *n = tc_index_get(&s->idx, t->news[i].id);
		struct tc_tail_old *o;
		struct tc_ver *good = NULL;
		size_t at = t->nolds;

		if (!n || n->kind != TC_KIND_TENSOR || !tc_nver(n) ||
		    tc_nver(n)->seq != t->news[i].seq || tc_nver(n)->verified)
			continue;
		r = ver_intact(fd, tc_nver(n), buf, bufsize);
		if (r) {
			tc_nver(n)->verified = r > 0 ? TC_VERIFIED_GOOD
						  : TC_UNVERIFIED;
			r = r < 0 ? r : 0;
			continue;
		}
		while (!r && (o = tc_tail_old_prev(t, n->id, tc_parent(n)->id,
						   tc_node_name(n), &at))) {
			r = o->ver->seq <= t->synced ? 1
				: ver_intact(fd, o->ver, buf, bufsize);
			if (r > 0) {
				good = o->ver;
				good->verified = good->seq > t->synced
							 ? TC_VERIFIED_GOOD
							 : TC_UNVERIFIED;
				o->ver = NULL;
			}
		}
		if (r < 0)
			break;
		r = 0;
		if (good) {
			s->live_bytes += good->size - tc_nver(n)->size;
			ver_put(s, tc_nver(n));
			tc_set_nver(n, good);
			s->fallbacks++;
		} else {
			remove_subtree(s, n);
			s->unsynced_dropped++;
		}
	}
	free(buf);
	tc_tail_free(t, ver_put_cb, s);
	return r;
}

struct owned {
	struct tc_extent e;
	struct tc_node *owner;
};

static int owned_cmp(const void *a, const void *b)
{
	const struct owned *x = a, *y = b;
	return x->e.off < y->e.off ? -1 : x->e.off > y->e.off;
}

/* Every extent of every tensor, in one walk of the tree: *@o (malloc'd)
 * gets *@k of them.  -ENOMEM. */
static int collect(struct tc_store *s, struct owned **o, size_t *k)
{
	size_t cap = s->idx.tensors + 16, n = 0;
	struct owned *a = malloc(cap * sizeof(*a));
	const struct tc_node *top = s->idx.root;

	if (!a)
		return -ENOMEM;
	for (struct tc_node *t = tc_node_next(top, top); t; t = tc_node_next(t, top)) {
		if (t->kind != TC_KIND_TENSOR || !tc_nver(t))
			continue;
		for (uint32_t i = 0; i < tc_nver(t)->nextents; i++) {
			if (n == cap) {
				struct owned *b = grow_array(a, &cap, sizeof(*a), 0);
				if (!b) {
					free(a);
					return -ENOMEM;
				}
				a = b;
			}
			a[n++] = (struct owned){ tc_ver_ext(tc_nver(t))[i], t };
		}
	}
	*o = a;
	*k = n;
	return 0;
}

static int owned_sorted(const struct owned *o, size_t k)
{
	for (size_t i = 1; i < k; i++)
		if (o[i].e.off < o[i - 1].e.off)
			return 0;
	return 1;
}

/*
 * After replay: drop tensors whose extents lie past @valid_end (the bytes
 * the pool file really holds) or overlap a tensor committed later (the
 * journal lost a record), then hand the rest of the pool to the free space.
 * O(n log n) in extents.
 */
int build_pool(struct tc_store *s, uint64_t valid_end)
{
	assert(!s->pool_ready);
	for (;;) {
		size_t k = 0, bad = 0;
		struct owned *o = NULL;
		struct tc_extent *used = NULL;
		int r = collect(s, &o, &k);

		if (!r && !(used = malloc((k ? k : 1) * sizeof(*used))))
			r = -ENOMEM;
		if (r) {
			free(o);
			return r;
		}
		/* Extents are mostly in pool order already (a checkpoint lists
		 * old entries first, and space is handed out low first). */
		if (!owned_sorted(o, k))
			qsort(o, k, sizeof(*o), owned_cmp);
		/* Mark the losers TC_DROPPING; drop them below. */
		for (size_t i = 0; i < k; i++) {
			struct tc_node *t = o[i].owner;
			if (o[i].e.off + o[i].e.len > valid_end) {
				if (t->dead != TC_DROPPING)
					report_drop(s, t, "its bytes lie past the end of the pool file");
				t->dead = TC_DROPPING;
				bad++;
			} else if (i && o[i].e.off < o[i - 1].e.off + o[i - 1].e.len) {
				struct tc_node *u = o[i - 1].owner;
				struct tc_node *older = tc_nver(t)->seq < tc_nver(u)->seq ? t : u;
				if (older->dead != TC_DROPPING)
					report_drop(s, older, "shares pool space with a later tensor");
				older->dead = TC_DROPPING;
				bad++;
			}
		}
		if (!bad) {
			for (size_t i = 0; i < k; i++)
				used[i] = o[i].e;
			r = tc_pool_build(&s->pool, used, k);
			if (!r)
				s->pool_ready = 1;
		} else {
			/* The free space is not built yet (!pool_ready):
			 * dropping does not hand the extents to it; they
			 * become free in the next round. */
			for (size_t i = 0; i < k; i++) {
				struct tc_node *t = o[i].owner;
				if (t->dead == TC_DROPPING && tc_parent(t)) {
					s->nodes_dropped++;
					remove_subtree(s, t);
				}
			}
		}
		free(o);
		free(used);
		if (!bad || r) {
			/* That scratch (24 + 16 bytes a tensor) would stay in
			 * malloc's heap, and count in the RSS: the index's
			 * nodes, in their arena, do not reuse it. */
			malloc_trim(0);
			return r;
		}
	}
}

