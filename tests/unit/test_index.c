/* test_index.c - nodes, name and id tables, moves. */
#include "check.h"
#include "index.h"
#include "testutil.h"

static void no_ver(void *a, struct tc_ver *v) { (void)a; (void)v; }

static void t_add_find_remove(void)
{
	struct tc_index x;
	tc_index_init(&x);
	struct tc_node *e = tc_node_new(&x, 2, TC_KIND_ENTRY, "e");
	struct tc_node *f = tc_node_new(&x, 3, TC_KIND_ENTRY, "f");
	CHECK(tc_index_add(&x, x.root, e) == 0);
	CHECK(tc_index_add(&x, x.root, f) == 0);
	struct tc_node *t1 = tc_node_new(&x, 4, TC_KIND_TENSOR, "same");
	struct tc_node *t2 = tc_node_new(&x, 5, TC_KIND_TENSOR, "same");
	CHECK(tc_index_add(&x, e, t1) == 0);
	CHECK(tc_index_add(&x, f, t2) == 0);
	CHECK(tc_index_find(&x, e, "same") == t1);
	CHECK(tc_index_find(&x, f, "same") == t2);
	CHECK(tc_index_find(&x, x.root, "same") == NULL);
	CHECK(tc_index_get(&x, 5) == t2);
	CHECK(x.entries == 2 && x.tensors == 2);
	CHECK(e->nchildren == 1 && x.root->nsubdirs == 2);
	CHECK(tc_node_entry(t1) == e);
	tc_index_remove(&x, t1);
	tc_node_free(t1);
	CHECK(tc_index_find(&x, e, "same") == NULL);
	CHECK(tc_index_get(&x, 4) == NULL);
	CHECK(x.tensors == 1 && e->nchildren == 0);
	CHECK(x.next_id == 6);
	tc_index_free(&x, no_ver, NULL);
}

static void t_move_and_kind(void)
{
	struct tc_index x;
	tc_index_init(&x);
	struct tc_node *e = tc_node_new(&x, 2, TC_KIND_ENTRY, "e");
	struct tc_node *g = tc_node_new(&x, 3, TC_KIND_GROUP, "g");
	struct tc_node *t = tc_node_new(&x, 4, TC_KIND_TENSOR, "t");
	tc_index_add(&x, x.root, e);
	tc_index_add(&x, e, g);
	tc_index_add(&x, g, t);
	CHECK(tc_index_move(&x, g, x.root, "top") == 0);
	tc_index_set_kind(&x, g, TC_KIND_ENTRY);
	CHECK(tc_index_find(&x, e, "g") == NULL);
	CHECK(tc_index_find(&x, x.root, "top") == g);
	CHECK(tc_index_find(&x, g, "t") == t);
	CHECK(x.entries == 2 && x.groups == 0);
	CHECK(e->nsubdirs == 0 && x.root->nsubdirs == 2);
	CHECK(tc_node_entry(t) == g);
	CHECK(tc_index_move(&x, t, e, "t2") == 0);
	CHECK(tc_index_find(&x, e, "t2") == t && tc_index_find(&x, g, "t") == NULL);
	tc_index_free(&x, no_ver, NULL);
}

/* A name lives inside its node; a longer new name moves out of it and a
 * shorter one moves back.  Every name stays findable, the old ones gone. */
static void t_rename_lengths(void)
{
	struct tc_index x;
	tc_index_init(&x);
	struct tc_node *e = tc_node_new(&x, 2, TC_KIND_ENTRY, "e");
	struct tc_node *t = tc_node_new(&x, 3, TC_KIND_TENSOR, "mid");
	REQUIRE(tc_index_add(&x, x.root, e) == 0 && tc_index_add(&x, e, t) == 0);
	CHECK(tc_node_name(t) == tc_node_name0(t));
	const char *names[] = { "a-much-longer-name", "m", "mid", "longer-again!",
				"x", "a-much-longer-name-still" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *prev = i ? names[i - 1] : "mid";
		CHECK(tc_index_move(&x, t, e, names[i]) == 0);
		CHECK(strcmp(tc_node_name(t), names[i]) == 0);
		CHECK(tc_index_find(&x, e, names[i]) == t);
		CHECK(tc_index_find(&x, e, prev) == NULL);
		CHECK((tc_node_name(t) == tc_node_name0(t)) == (strlen(names[i]) <= 3));
	}
	CHECK(e->nchildren == 1);
	tc_index_free(&x, no_ver, NULL); /* ASan: the moved name is freed */
}

/* A node's arena slot is freed with the size it was made with, whatever
 * names it had since: the next node of that size takes the same slot
 * (its size class's free list), one of another size does not. */
static void t_slot_reuse(void)
{
	struct tc_index x;
	tc_index_init(&x);
	struct tc_node *e = tc_node_new(&x, 2, TC_KIND_ENTRY, "e");
	REQUIRE(tc_index_add(&x, x.root, e) == 0);
	const char *made[] = { "t", "abc", "abcd", "twelve-chars", "k0123456789abcdef" };
	const char *renames[][3] = {
		{ "xy", "a-long-name", "q" },
		{ "a-long-name", "abcdefghijklmnop", "zz" },
		{ "wxyz", "ab", "wxyz" },
		{ "x", "twelve-chaRS", "a-much-longer-one" },
		{ "k0123456789abcdeX", "short", "k0123456789abcdeY" },
	};
	uint64_t id = 10;
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		struct tc_node *t = tc_node_new(&x, id++, TC_KIND_TENSOR, made[i]);
		REQUIRE(t && tc_index_add(&x, e, t) == 0);
		for (int k = 0; k < 3; k++) {
			CHECK(tc_index_move(&x, t, e, renames[i][k]) == 0);
			CHECK(tc_index_find(&x, e, renames[i][k]) == t);
			CHECK(strcmp(tc_node_name(t), renames[i][k]) == 0);
		}
		tc_index_remove(&x, t);
		tc_node_free(t);
		struct tc_node *u = tc_node_new(&x, id++, TC_KIND_TENSOR, made[i]);
		CHECK(u == t);
		tc_node_free(u);
	}
	/* the entry kind too, with its extras */
	struct tc_node *f = tc_node_new(&x, id++, TC_KIND_ENTRY, "entry-f");
	REQUIRE(f && tc_index_add(&x, x.root, f) == 0);
	REQUIRE(tc_extra_get(f) != NULL);
	tc_extra(f)->attrs = strdup("{}");
	CHECK(tc_index_move(&x, f, x.root, "a-longer-entry-name") == 0);
	CHECK(tc_index_find(&x, x.root, "a-longer-entry-name") == f);
	tc_index_remove(&x, f);
	tc_node_free(f);
	struct tc_node *g = tc_node_new(&x, id++, TC_KIND_ENTRY, "entry-g");
	CHECK(g == f && tc_extra(g) == NULL);
	tc_node_free(g);
	tc_index_free(&x, no_ver, NULL);
}

/* Reserving ahead, removing and re-adding: the tables stay exact. */
static void t_reserve_and_churn(void)
{
	struct tc_index x;
	enum { N = 5000 };
	struct tc_node *n[N];
	char name[32];
	tc_index_init(&x);
	tc_index_reserve(&x, N);
	size_t cap = x.ids.cap;
	CHECK(2 * cap >= N && 2 * x.names.cap >= N); /* LOAD 2 */
	CHECK(tc_index_get(&x, TC_ROOT_ID) == x.root);
	for (int round = 0; round < 3; round++) {
		for (uint64_t i = 0; i < N; i++) {
			snprintf(name, sizeof(name), "k%llu", (unsigned long long)i);
			n[i] = tc_node_new(&x, x.next_id, TC_KIND_ENTRY, name);
			REQUIRE(n[i] && tc_index_add(&x, x.root, n[i]) == 0);
		}
		int bad = 0;
		for (uint64_t i = 0; i < N; i++) {
			snprintf(name, sizeof(name), "k%llu", (unsigned long long)i);
			if (tc_index_find(&x, x.root, name) != n[i] ||
			    tc_index_get(&x, n[i]->id) != n[i])
				bad++;
		}
		CHECK(bad == 0);
		for (uint64_t i = 0; i < N; i++) {
			uint64_t id = n[i]->id;
			tc_index_remove(&x, n[i]);
			tc_node_free(n[i]);
			if (tc_index_get(&x, id))
				bad++;
		}
		CHECK(bad == 0 && x.ids.n == 0 && x.names.n == 0 && x.entries == 0);
	}
	CHECK(x.ids.cap == cap); /* no growth past what was reserved */
	tc_index_free(&x, no_ver, NULL);
}

/* Many nodes: every one found by id and by name, children in order. */
static void t_many(void)
{
	struct tc_index x;
	enum { N = 200000 };
	char name[32];
	tc_index_init(&x);
	for (uint64_t i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "k%llu", (unsigned long long)i);
		struct tc_node *n = tc_node_new(&x, i + 2, TC_KIND_ENTRY, name);
		REQUIRE(n && tc_index_add(&x, x.root, n) == 0);
	}
	int bad = 0;
	for (uint64_t i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "k%llu", (unsigned long long)i);
		struct tc_node *n = tc_index_find(&x, x.root, name);
		if (!n || n->id != i + 2 || tc_index_get(&x, i + 2) != n)
			bad++;
		snprintf(name, sizeof(name), "x%llu", (unsigned long long)i);
		if (tc_index_find(&x, x.root, name) || tc_index_get(&x, N + 2 + i))
			bad++; /* misses pass over tagged links */
	}
	CHECK(bad == 0);
	uint64_t expect = 2;
	for (struct tc_node *c = tc_child_head(x.root); c; c = tc_sib_next(c))
		if (c->id != expect++)
			bad++;
	CHECK(bad == 0 && expect == N + 2);
	tc_index_free(&x, no_ver, NULL);
}

/* Tables that double a step at a time: nodes added, looked up and
 * removed while both arrays are in use, through several doublings, each
 * node found by id and by name after every step, none after removal. */
static void t_growth_in_steps(void)
{
	struct tc_index x;
	enum { N = 20000 };
	static struct tc_node *n[N];
	char name[32];
	int bad = 0, grew = 0;
	tc_index_init(&x);
	for (uint64_t i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "g%llu", (unsigned long long)i);
		n[i] = tc_node_new(&x, i + 2, TC_KIND_ENTRY, name);
		REQUIRE(n[i] && tc_index_add(&x, x.root, n[i]) == 0);
		grew += x.ids.old != NULL && x.names.old != NULL;
		if (i % 3 == 2) { /* remove one of the older ones */
			uint64_t j = i / 3;
			uint64_t id = n[j]->id;
			tc_index_remove(&x, n[j]);
			tc_node_free(n[j]);
			n[j] = NULL;
			if (tc_index_get(&x, id))
				bad++;
		}
		if (i % 97 == 0 || (x.ids.old && i % 7 == 0)) {
			for (uint64_t k = 0; k <= i; k++) {
				snprintf(name, sizeof(name), "g%llu", (unsigned long long)k);
				struct tc_node *f = tc_index_find(&x, x.root, name);
				if (f != n[k] || (n[k] && tc_index_get(&x, k + 2) != n[k]))
					bad++;
			}
		}
	}
	CHECK(grew > 0);          /* the checks ran while tables were growing */
	CHECK(bad == 0);
	CHECK(x.ids.n == x.entries && x.names.n == x.entries);
	tc_index_free(&x, no_ver, NULL);
}

int main(void)
{
	RUN(t_add_find_remove);
	RUN(t_move_and_kind);
	RUN(t_rename_lengths);
	RUN(t_slot_reuse);
	RUN(t_reserve_and_churn);
	RUN(t_many);
	RUN(t_growth_in_steps);
	return check_done();
}
