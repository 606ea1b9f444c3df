/*
 * links.c - parent links between entries, and the count of present
 * children that prefix-aware eviction reads (lru.c).
 *
 * An entry may name another top-level entry as its parent (e->link: the
 * extended attribute user.tcache.parent or "parent" in meta.json,
 * journaled with the entry's fields).  The parent may be absent, and may
 * come later under that name, or go and come back; a rename makes an
 * entry the parent of whatever names its new name.  So children are
 * counted by name: a table from a name to the number of present entries
 * whose link is that name (struct kin), and the entry of that name, when
 * there is one, carries the same number in e->kids:
 *
 *   e->kids == count of present entries f with f->link == e->name
 *
 * for every entry e in the index, at all times outside this file.  The
 * three ways it could drift each call in here: an entry comes or goes
 * (links_join, links_leave: apply.c and files.c, where it joins or
 * leaves the lru), gets a new name (links_join again), or gets a new link
 * (links_set, from apply_entry: a live change and replay alike).
 * A cycle would keep its entries from eviction for ever, so a change that
 * would close one is refused (links_loop, -ELOOP) before it is journaled.
 * Cost: O(1) per change; links_loop O(the chain's length).
 * Lock held throughout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "store.h"

/* The present entries whose link is @name: a chain per hash (a 64-bit
 * collision only lengthens a chain). */
struct kin {
	struct kin *next;
	uint32_t n;
	char name[];
};

static uint64_t key_of(const char *name, size_t len)
{
	return XXH3_64bits(name, len);
}

static struct kin *kin_find(const struct tc_store *s, const char *name,
			    size_t len, uint64_t key)
{
	for (struct kin *k = tc_map_get(&s->kin, key); k; k = k->next)
		if (!strncmp(k->name, name, len) && !k->name[len])
			return k;
	return NULL;
}

uint32_t links_count(const struct tc_store *s, const char *name)
{
	if (!s->kin.n)
		return 0; /* no links at all: the usual store pays no hash */
	size_t len = strlen(name);
	struct kin *k = kin_find(s, name, len, key_of(name, len));
	return k ? k->n : 0;
}

/* The entry of top-level name @name, or NULL. */
static struct tc_node *entry_named(struct tc_store *s, const char *name)
{
	struct tc_node *e = tc_index_find(&s->idx, s->idx.root, name);
	return e && tc_node_is_entry(e) ? e : NULL;
}

/* One fewer present child names @name (held in k). */
static void kin_put(struct tc_store *s, struct kin *k, uint64_t key)
{
	struct tc_node *p = entry_named(s, k->name);
	if (p) {
		assert(p->kids > 0);
		if (!--p->kids)
			tc_lru_unblocked(&s->lru, p);
	}
	assert(k->n > 0);
	if (--k->n)
		return;
	struct kin *head = tc_map_get(&s->kin, key), **pp = &head;
	while (*pp != k)
		pp = &(*pp)->next;
	*pp = k->next;
	if (head)
		tc_map_put(&s->kin, key, head); /* a replace: never fails */
	else
		tc_map_del(&s->kin, key);
	free(k);
}

int links_set(struct tc_store *s, struct tc_node *e, const char *link,
	      uint32_t len)
{
	char *copy = NULL;
	struct kin *k = NULL;
	uint64_t key = 0;

	assert_locked(s);
	if (link ? tc_link(e) && strlen(tc_link(e)) == len &&
			   !memcmp(tc_link(e), link, len)
		 : !tc_link(e))
		return 0;
	if (link) {
		/* all that can fail, before anything changes */
		key = key_of(link, len);
		if (!(copy = strndup(link, len)))
			return -ENOMEM;
		if (!tc_extra_get(e))
			goto nomem;
		if (!(k = kin_find(s, link, len, key))) {
			struct kin *head = tc_map_get(&s->kin, key);
			if (!(k = calloc(1, sizeof(*k) + len + 1)))
				goto nomem;
			memcpy(k->name, link, len);
			k->next = head;
			if (tc_map_put(&s->kin, key, k)) {
				free(k);
				goto nomem;
			}
		}
	}
	links_leave(s, e);
	if (link) {
		struct tc_node *p = entry_named(s, k->name);
		/* made above; links_leave() may have freed it, and then its
		 * slot is the first of its size class free: no ENOMEM */
		tc_extra_get(e)->link = copy;
		k->n++;
		if (p)
			p->kids++;
	}
	return 0;
nomem:
	free(copy);
	return -ENOMEM;
}

void links_join(struct tc_store *s, struct tc_node *e)
{
	assert_locked(s);
	e->kids = links_count(s, tc_node_name(e));
	if (!e->kids)
		tc_lru_unblocked(&s->lru, e);
}

void links_leave(struct tc_store *s, struct tc_node *e)
{
	if (!tc_link(e))
		return;
	size_t len = strlen(tc_link(e));
	uint64_t key = key_of(tc_link(e), len);
	struct kin *k = kin_find(s, tc_link(e), len, key);
	assert(k);
	free(tc_link(e));
	tc_extra(e)->link = NULL;
	tc_extra_tidy(e);
	if (k)
		kin_put(s, k, key);
}

int links_loop(struct tc_store *s, const char *from, const char *self,
	       const struct tc_node *moving)
{
	assert_locked(s);
	/* a loop through @self needs an entry whose link names it */
	if (strcmp(from, self) && !links_count(s, self))
		return 0;
	for (uint64_t steps = 0; from; steps++) {
		if (!strcmp(from, self) || steps > s->idx.entries)
			return 1; /* (more steps than entries: a loop already) */
		struct tc_node *p = entry_named(s, from);
		if (!p || p == moving)
			return 0;
		from = tc_link(p);
	}
	return 0;
}

/* States of links_check's walk, by node id. */
#define ON_PATH ((void *)1)
#define DONE ((void *)2)

int links_check(struct tc_store *s, int repair, uint64_t *bad)
{
	struct tc_map seen = { 0 };
	uint64_t linked = 0, counted = 0;
	int r = 0;

	assert_locked(s);
	*bad = 0;
	for (size_t i = 0; i < s->kin.cap; i++)
		for (struct kin *k = s->kin.vals[i]; k; k = k->next)
			counted += k->n;
	for (struct tc_node *e = tc_child_head(s->idx.root); e; e = tc_sib_next(e)) {
		if (tc_link(e))
			linked++;
		if (e->kids != links_count(s, tc_node_name(e))) {
			report_drop(s, e, "count of children by parent link is wrong");
			++*bad;
		}
	}
	if (linked != counted) {
		report_drop(s, s->idx.root, "parent links: table and entries differ");
		++*bad;
	}
	/* loops: follow each entry's links, marking the path, until a node
	 * already done (no loop there) or one on the path (a loop) */
	for (struct tc_node *e = tc_child_head(s->idx.root); e && !r;
	     e = tc_sib_next(e)) {
		struct tc_node *p = e, *loop = NULL;
		while (p && !tc_map_get(&seen, p->id)) {
			if ((r = tc_map_put(&seen, p->id, ON_PATH)))
				break;
			p = tc_link(p) ? entry_named(s, tc_link(p)) : NULL;
		}
		if (p && tc_map_get(&seen, p->id) == ON_PATH)
			loop = p;
		for (p = e; p && tc_map_get(&seen, p->id) == ON_PATH;
		     p = tc_link(p) ? entry_named(s, tc_link(p)) : NULL)
			tc_map_put(&seen, p->id, DONE); /* a replace */
		if (!loop || r)
			continue;
		report_drop(s, loop, "parent links form a loop");
		++*bad;
		if (repair) {
			struct tc_op op;
			node_op(loop, NULL, &op);
			op.link = NULL;
			op.link_len = 0;
			r = store_change(s, &op, 1, NULL);
		}
	}
	tc_map_free(&seen);
	return r;
}

void links_free(struct tc_store *s)
{
	struct tc_map *m = &s->kin;
	for (size_t i = 0; i < m->cap; i++)
		for (struct kin *k = m->vals[i], *next; k; k = next) {
			next = k->next;
			free(k);
		}
	tc_map_free(m);
}
