/*
 * index.c - nodes and their lookup tables.
 *
 *   ids:    id -> node                              (O(1) average)
 *   names:  xxh3(name, seed = parent id) -> node    (O(1) average)
 *           nodes whose keys collide are chained through hnext
 *   tree:   each directory keeps its children in a doubly linked list in
 *           creation order (for listing); counts of children and subdirs
 *
 * Invariants: every linked node is in both tables exactly once; a node's
 * name is unique within its parent; the root (id TC_ROOT_ID) is embedded
 * in struct tc_index and never freed; next_id > every id in use.
 * Locking: none here; the store's lock covers the index.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"

static uint64_t name_key(uint64_t parent, const char *name)
{
	return XXH3_64bits_withSeed(name, strlen(name), parent);
}

void tc_index_init(struct tc_index *x)
{
	memset(x, 0, sizeof(*x));
	x->root.id = TC_ROOT_ID;
	x->root.kind = TC_KIND_ROOT;
	x->root.mode = 040755;
	x->next_id = TC_ROOT_ID + 1;
	tc_map_put(&x->ids, TC_ROOT_ID, &x->root); /* 16 slots: cannot fail
						     but for ENOMEM at start */
}

struct tc_node *tc_node_new(uint64_t id, int kind, const char *name)
{
	struct tc_node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return NULL;
	}
	n->id = id;
	n->kind = (uint8_t)kind;
	return n;
}

void tc_node_free(struct tc_node *n)
{
	if (!n)
		return;
	free(n->name);
	free(n->attrs);
	free(n);
}

struct tc_node *tc_index_get(struct tc_index *x, uint64_t id)
{
	return tc_map_get(&x->ids, id);
}

struct tc_node *tc_index_find(struct tc_index *x, const struct tc_node *dir,
			      const char *name)
{
	struct tc_node *n = tc_map_get(&x->names, name_key(dir->id, name));
	for (; n; n = n->hnext)
		if (n->parent == dir && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static int names_add(struct tc_index *x, struct tc_node *n)
{
	uint64_t key = name_key(n->parent->id, n->name);
	struct tc_node *head = tc_map_get(&x->names, key);
	n->hnext = head;
	return tc_map_put(&x->names, key, n);
}

static void names_del(struct tc_index *x, struct tc_node *n)
{
	uint64_t key = name_key(n->parent->id, n->name);
	struct tc_node *head = tc_map_get(&x->names, key);
	if (head == n) {
		if (n->hnext)
			tc_map_put(&x->names, key, n->hnext); /* replace */
		else
			tc_map_del(&x->names, key);
	} else {
		struct tc_node *p = head;
		while (p && p->hnext != n)
			p = p->hnext;
		assert(p);
		if (p)
			p->hnext = n->hnext;
	}
	n->hnext = NULL;
}

static void count(struct tc_index *x, const struct tc_node *n, int delta)
{
	switch (n->kind) {
	case TC_KIND_ENTRY: x->entries += (uint64_t)delta; break;
	case TC_KIND_GROUP: x->groups += (uint64_t)delta; break;
	case TC_KIND_TENSOR: x->tensors += (uint64_t)delta; break;
	}
}

static void children_link(struct tc_node *dir, struct tc_node *n)
{
	n->parent = dir;
	n->sib_next = NULL;
	n->sib_prev = dir->child_tail;
	if (dir->child_tail)
		dir->child_tail->sib_next = n;
	else
		dir->child_head = n;
	dir->child_tail = n;
	dir->nchildren++;
	if (tc_node_isdir(n))
		dir->nsubdirs++;
}

static void children_unlink(struct tc_node *n)
{
	struct tc_node *dir = n->parent;
	if (n->sib_prev)
		n->sib_prev->sib_next = n->sib_next;
	else
		dir->child_head = n->sib_next;
	if (n->sib_next)
		n->sib_next->sib_prev = n->sib_prev;
	else
		dir->child_tail = n->sib_prev;
	n->sib_prev = n->sib_next = NULL;
	assert(dir->nchildren > 0);
	dir->nchildren--;
	if (tc_node_isdir(n))
		dir->nsubdirs--;
}

int tc_index_add(struct tc_index *x, struct tc_node *dir, struct tc_node *n)
{
	int r = tc_map_put(&x->ids, n->id, n);
	if (r)
		return r;
	n->parent = dir;
	r = names_add(x, n);
	if (r) {
		tc_map_del(&x->ids, n->id);
		n->parent = NULL;
		return r;
	}
	children_link(dir, n);
	count(x, n, 1);
	if (n->id >= x->next_id)
		x->next_id = n->id + 1;
	return 0;
}

void tc_index_remove(struct tc_index *x, struct tc_node *n)
{
	tc_index_unname(x, n);
	tc_map_del(&x->ids, n->id);
}

void tc_index_unname(struct tc_index *x, struct tc_node *n)
{
	assert(n->parent);
	names_del(x, n);
	children_unlink(n);
	count(x, n, -1);
	n->parent = NULL;
}

void tc_index_forget(struct tc_index *x, struct tc_node *n)
{
	if (tc_map_get(&x->ids, n->id) == n)
		tc_map_del(&x->ids, n->id);
}

int tc_index_move(struct tc_index *x, struct tc_node *n, struct tc_node *dir,
		  const char *name)
{
	char *nname = strdup(name);
	if (!nname)
		return -ENOMEM;
	/* Make sure the insert below cannot fail before changing anything:
	 * putting a dummy at the new key grows the table if it must. */
	uint64_t key = name_key(dir->id, name);
	struct tc_node *head = tc_map_get(&x->names, key);
	if (tc_map_put(&x->names, key, head ? head : n)) {
		free(nname);
		return -ENOMEM;
	}
	if (!head)
		tc_map_del(&x->names, key);
	names_del(x, n);
	children_unlink(n);
	free(n->name);
	n->name = nname;
	children_link(dir, n);
	names_add(x, n); /* room reserved above */
	return 0;
}

void tc_index_set_kind(struct tc_index *x, struct tc_node *n, int kind)
{
	count(x, n, -1);
	n->kind = (uint8_t)kind;
	count(x, n, 1);
}

struct tc_node *tc_node_next(const struct tc_node *n, const struct tc_node *top)
{
	if (n->child_head)
		return n->child_head;
	while (n != top && !n->sib_next)
		n = n->parent;
	return n == top ? NULL : n->sib_next;
}

struct tc_node *tc_node_entry(struct tc_node *n)
{
	while (n && n->kind != TC_KIND_ENTRY)
		n = n->parent;
	return n;
}

static void free_subtree(struct tc_node *n,
			 void (*put_ver)(void *, struct tc_ver *), void *arg)
{
	struct tc_node *c = n->child_head;
	while (c) {
		struct tc_node *next = c->sib_next;
		free_subtree(c, put_ver, arg);
		c = next;
	}
	if (n->kind == TC_KIND_TENSOR) {
		if (n->ver)
			put_ver(arg, n->ver);
		if (n->pending)
			put_ver(arg, n->pending);
	}
	if (n->kind != TC_KIND_ROOT)
		tc_node_free(n);
}

void tc_index_free(struct tc_index *x, void (*put_ver)(void *, struct tc_ver *),
		   void *arg)
{
	free_subtree(&x->root, put_ver, arg);
	tc_map_free(&x->ids);
	tc_map_free(&x->names);
	memset(&x->root, 0, sizeof(x->root));
}
