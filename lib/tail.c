/*
 * tail.c - replay's memory of the journal's unsynced tail.
 *
 * A power loss keeps what was fdatasync'd plus any subset of the rest: a
 * record may reach the disk while the pool bytes it names do not.  The
 * store therefore writes marks: MARK(S) says that every record with seq
 * <= S names pool bytes that were made durable before the mark was
 * written (the pool was fdatasync'd after those records were appended).
 * Replay trusts versions at or below the largest mark.  The versions
 * above it (the tail) are checked against their xxh3 when the replay is
 * done; one whose bytes did not survive falls back to the version it
 * replaced, if that one's bytes are good, else the tensor is dropped as
 * never written.  The pool keeps replaced and removed extents out of use
 * until a mark covers the record that freed them (pool.c's quarantine),
 * so the fallback's bytes are still there.
 *
 *   journal:  ... R1(X v1) ... MARK(>=R1) ... R2(X v2) R3(Y) ...   end
 *                                            |<--- tail: news --->|
 *   news = [(X, R2), (Y, R3)]     olds = [(dir, "X", R2, v1)]
 *
 * Both lists are in seq order, so a mark forgets a prefix of each.  Only
 * records past the last mark stay here: the cost is proportional to the
 * tail, not to the index.
 *
 * Locking: none; replay runs alone.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tail.h"

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 64;
	void *np = realloc(*p, ncap * size);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

void tc_tail_add_new(struct tc_tail *t, uint64_t id, uint64_t seq)
{
	if (seq <= t->synced)
		return;
	if (grow((void **)&t->news, &t->news_cap, t->nnews, sizeof(*t->news))) {
		t->err = -ENOMEM;
		return;
	}
	t->news[t->nnews++] = (struct tc_tail_new){ id, seq };
}

void tc_tail_add_old(struct tc_tail *t, uint64_t id, uint64_t parent,
		     const char *name, uint64_t seq, struct tc_ver *v,
		     tc_tail_put_fn put, void *arg)
{
	char *copy = NULL;
	if (seq <= t->synced || !v) {
		put(arg, v);
		return;
	}
	if (grow((void **)&t->olds, &t->olds_cap, t->nolds, sizeof(*t->olds)) ||
	    !(copy = strdup(name))) {
		t->err = -ENOMEM;
		put(arg, v);
		return;
	}
	t->olds[t->nolds++] = (struct tc_tail_old){ id, parent, copy, seq, v };
}

void tc_tail_drop(struct tc_tail *t, uint64_t seq)
{
	if (grow((void **)&t->drops, &t->drops_cap, t->ndrops,
		 sizeof(*t->drops))) {
		t->err = -ENOMEM;
		return;
	}
	t->drops[t->ndrops++] = seq;
}

void tc_tail_mark(struct tc_tail *t, uint64_t synced, uint64_t on_disk,
		  tc_tail_put_fn put, void *arg)
{
	size_t k;
	if (on_disk > t->on_disk)
		t->on_disk = on_disk;
	if (synced <= t->synced)
		return;
	t->synced = synced;
	for (k = 0; k < t->nnews && t->news[k].seq <= synced; k++)
		;
	if (k) {
		memmove(t->news, t->news + k, (t->nnews - k) * sizeof(*t->news));
		t->nnews -= k;
	}
	for (k = 0; k < t->nolds && t->olds[k].seq <= synced; k++) {
		put(arg, t->olds[k].ver);
		free(t->olds[k].name);
	}
	if (k) {
		memmove(t->olds, t->olds + k, (t->nolds - k) * sizeof(*t->olds));
		t->nolds -= k;
	}
}

struct tc_tail_old *tc_tail_old_prev(struct tc_tail *t, uint64_t id,
				     uint64_t parent, const char *name,
				     size_t *at)
{
	while (*at > 0) {
		struct tc_tail_old *o = &t->olds[--*at];
		if (o->ver && (o->id == id || (o->parent == parent &&
					       !strcmp(o->name, name))))
			return o;
	}
	return NULL;
}

void tc_tail_free(struct tc_tail *t, tc_tail_put_fn put, void *arg)
{
	for (size_t k = 0; k < t->nolds; k++) {
		put(arg, t->olds[k].ver);
		free(t->olds[k].name);
	}
	free(t->olds);
	free(t->news);
	free(t->drops);
	*t = (struct tc_tail){ 0 };
}
