/*
 * dirmeta.c - a directory's meta.json in the store: the view rendered
 * from its children (meta.c writes the JSON), and the changes a write of
 * it asks for, checked whole and then applied as one record.
 *
 * Invariants:
 *   - What a write may change: the user's keys (tc_node.doc, kept as
 *     written), a tensor's dtype and shape (ours: when they describe its
 *     bytes exactly; declared by a user's key: as declared), an entry's
 *     pin and attrs; never a tensor's bytes.  meta.c refuses everything
 *     else of ours, and a refused write changes nothing.
 *   - A tensor committed after the document that declares it takes the
 *     declared dtype and shape then (ver_type, version.c).
 *   - All of a write's changes are one record, through store_change()
 *     (apply.c): after a crash they are all there or none.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "meta.h"
#include "store.h"

struct meta_view {
	struct tc_meta_dir d;
	struct tc_meta_tensor *t;
	struct tc_node **tn;
	const char **g;
};

static void meta_view_free(struct meta_view *m)
{
	for (size_t i = 0; m->t && i < m->d.ntensors; i++)
		free(m->t[i].safetensors_json);
	free(m->t);
	free(m->tn);
	free(m->g);
}

static int meta_view(struct tc_node *d, struct meta_view *m)
{
	size_t nt = 0, ng = 0;
	memset(m, 0, sizeof(*m));
	m->t = calloc(d->nchildren + 1, sizeof(*m->t));
	m->tn = calloc(d->nchildren + 1, sizeof(*m->tn));
	m->g = calloc(d->nchildren + 1, sizeof(*m->g));
	if (!m->t || !m->tn || !m->g) {
		meta_view_free(m);
		return -ENOMEM;
	}
	for (struct tc_node *c = tc_child_head(d); c; c = tc_sib_next(c)) {
		if (tc_node_isdir(c)) {
			m->g[ng++] = tc_node_name(c);
		} else if (tc_nver(c)) {
			const struct tc_ver *v = tc_nver(c);
			m->tn[nt] = c;
			m->t[nt++] = (struct tc_meta_tensor){
				.name = tc_node_name(c), .nbytes = v->size,
				.data_offset = v->data_offset, .dtype = v->dtype,
				.ndim = v->ndim, .shape = tc_ver_shape(v),
				.xxh3 = v->xxh3 };
		}
	}
	m->d = (struct tc_meta_dir){
		.is_entry = d->kind == TC_KIND_ENTRY,
		.created_ns = d->created, .last_access_ns = d->last_access,
		.pinned = d->pinned, .attrs_json = tc_attrs(d), .link = tc_link(d),
		.doc = tc_doc(d),
		.ntensors = nt, .tensors = m->t, .ngroups = ng, .groups = m->g };
	return 0;
}

/* The view of directory @dir (not the root: it has no meta.json) into
 * *@m, *@d the directory.  Lock held. */
static int view_of(struct tc_store *s, uint64_t dir, struct tc_node **d,
		   struct meta_view *m)
{
	assert_locked(s);
	int r = get_dir(s, dir, d);
	if (!r && (*d)->kind == TC_KIND_ROOT)
		r = -EINVAL;
	if (!r)
		r = meta_view(*d, m);
	for (size_t i = 0; !r && i < m->d.ntensors; i++)
		if ((r = st_meta_json(s, m->tn[i], &m->t[i].safetensors_json)))
			meta_view_free(m);
	return r;
}

struct render_ctx {
	char **json;
	size_t *len;
};

static int render_fn(const struct tc_meta_dir *d, void *arg)
{
	struct render_ctx *c = arg;
	return tc_meta_render(d, c->json, c->len);
}

struct check_ctx {
	const char *json;
	size_t len;
};

static int check_fn(const struct tc_meta_dir *d, void *arg)
{
	struct check_ctx *c = arg;
	struct tc_meta_update u;
	int r = tc_meta_parse(d, c->json, c->len, &u);
	if (!r)
		tc_meta_update_free(&u);
	return r;
}

/* @fn on the view of directory @dir, under the lock. */
static int with_view(tc_store *s, uint64_t dir,
		     int (*fn)(const struct tc_meta_dir *d, void *arg),
		     void *arg)
{
	struct tc_node *d;
	struct meta_view m;
	int r;

	lock(s);
	r = view_of(s, dir, &d, &m);
	if (!r) {
		r = fn(&m.d, arg);
		meta_view_free(&m);
	}
	op_done(s);
	return r;
}

int tc_meta_get(tc_store *s, uint64_t dir, char **json, size_t *len)
{
	struct render_ctx c = { json, len };
	return with_view(s, dir, render_fn, &c);
}

int tc_meta_check(tc_store *s, uint64_t dir, const char *json, size_t len)
{
	struct check_ctx c = { json, len };
	cJSON *doc = cJSON_ParseWithLength(json, len);

	if (!doc)
		return tc_meta_check_start(json, len) ? -EINVAL : -EAGAIN;
	cJSON_Delete(doc);
	return with_view(s, dir, check_fn, &c);
}

int tc_meta_check_start(const char *json, size_t len)
{
	const char *wanted;
	size_t at;

	if (tc_json_object_prefix(json, len, &at, &wanted))
		return tc_meta_refuse("not JSON at byte %zu: expected %s", at,
				      wanted);
	return 0;
}

static int same_doc(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* The NODE op of tensor @t with the dtype and shape @set gives it. */
static void set_op(const struct tc_node *t, const struct tc_meta_set *set,
		   struct tc_op *op)
{
	node_op(t, NULL, op);
	op->dtype = set->dtype;
	op->ndim = set->ndim;
	memcpy(op->shape, set->shape, sizeof(uint64_t) * (size_t)set->ndim);
}

/* The NODE op of directory @d as update @u leaves it.  The op points into
 * @u: store_change() before freeing it. */
static void dir_op(const struct tc_node *d, const struct tc_meta_update *u,
		   struct tc_op *op)
{
	node_op(d, NULL, op);
	if (d->kind == TC_KIND_ENTRY && u->has_pinned)
		op_set_pin(op, u->pinned);
	if (d->kind == TC_KIND_ENTRY && u->attrs_json) {
		op->attrs = u->attrs_json;
		op->attrs_len = (uint32_t)strlen(u->attrs_json);
	}
	if (d->kind == TC_KIND_ENTRY && u->has_link) {
		op->link = u->link;
		op->link_len = u->link ? (uint32_t)strlen(u->link) : 0;
	}
	op->doc = u->doc;
	op->doc_len = u->doc ? (uint32_t)strlen(u->doc) : 0;
}

/*
 * Apply document @json (@len bytes) to directory @d, seen as @m: its
 * changes as one record, with the removal of file @taken (not NULL: the
 * file the document came from, renamed over meta.json) in the same
 * record.  Lock held.
 */
static int meta_apply(struct tc_store *s, struct tc_node *d,
		      const struct meta_view *m, const char *json, size_t len,
		      struct tc_node *taken)
{
	struct tc_meta_update u;
	struct tc_op *ops;
	size_t k = 0;
	int r = tc_meta_parse(&m->d, json, len, &u);

	if (r)
		return r;
	if (d->kind == TC_KIND_ENTRY && u.link &&
	    links_loop(s, u.link, tc_node_name(d), NULL)) {
		tc_meta_update_free(&u);
		return -ELOOP;
	}
	ops = malloc((u.nset + 2) * sizeof(*ops));
	if (!ops) {
		tc_meta_update_free(&u);
		return -ENOMEM;
	}
	for (size_t i = 0; i < u.nset; i++)
		if (m->tn[u.set[i].index] != taken) /* it goes */
			set_op(m->tn[u.set[i].index], &u.set[i], &ops[k++]);
	if ((d->kind == TC_KIND_ENTRY &&
	     (u.has_pinned || u.attrs_json || u.has_link)) ||
	    !same_doc(tc_doc(d), u.doc))
		dir_op(d, &u, &ops[k++]);
	if (taken)
		ops[k++] = (struct tc_op){ .type = TC_OP_DEL, .id = taken->id };
	if (k)
		r = store_change(s, ops, k, NULL);
	if (!r && taken)
		dir_changed(d, now_ns());
	free(ops);
	tc_meta_update_free(&u);
	return r;
}

int tc_meta_set(tc_store *s, uint64_t dir, const char *json, size_t len)
{
	struct tc_node *d;
	struct meta_view m;
	int r;

	lock(s);
	r = view_of(s, dir, &d, &m);
	if (!r) {
		r = meta_apply(s, d, &m, json, len, NULL);
		meta_view_free(&m);
	}
	op_done(s);
	return r;
}

int tc_meta_remove(tc_store *s, uint64_t dir)
{
	struct tc_node *d;
	struct tc_op op;
	int r;

	lock(s);
	r = get_dir(s, dir, &d);
	if (!r && d->kind == TC_KIND_ROOT)
		r = -EINVAL;
	if (!r && tc_doc(d)) {
		node_op(d, NULL, &op);
		op.doc = NULL;
		op.doc_len = 0;
		r = store_change(s, &op, 1, NULL);
	}
	op_done(s);
	return r;
}

/*
 * tc_meta_take: the document is file @name of @dir, which goes: its bytes
 * parsed as a write of meta.json would be, then every change and the
 * removal of @name as one record (rsync's temp file renamed over
 * meta.json).  Its committed bytes are taken: only writes not yet
 * committed make it EBUSY.  A write handle may still be open with
 * nothing pending, because the kernel sends RELEASE after close()
 * returns, and rsync renames at once; EBUSY there failed rsync now and
 * then (td_copy.bats).
 */
int tc_meta_take(tc_store *s, uint64_t dir, const char *name)
{
	struct tc_node *d, *n;
	struct meta_view m;
	char *buf = NULL;
	size_t len;
	int r;

	lock(s);
	r = view_of(s, dir, &d, &m);
	if (r)
		goto out;
	n = tc_index_find(&s->idx, d, name);
	r = !n ? -ENOENT : tc_node_isdir(n) ? -EISDIR
	    : pending_of(n) ? -EBUSY
	    : tc_nver(n) && tc_nver(n)->size > TC_META_MAX ? -EFBIG : 0;
	if (r)
		goto out_view;
	len = tc_nver(n) ? (size_t)tc_nver(n)->size : 0;
	if (!(buf = malloc(len + 1))) {
		r = -ENOMEM;
		goto out_view;
	}
	if (len)
		ver_read(s, tc_nver(n), 0, len, buf);
	r = meta_apply(s, d, &m, buf, len, n);
out_view:
	free(buf);
	meta_view_free(&m);
out:
	op_done(s);
	return r;
}
