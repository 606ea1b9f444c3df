/*
 * model.c - the crash writers' model: how each logged op changes what an
 * entry holds (model.h), and the state files that carry the verified
 * contents from one round to the next.
 *
 * State file, one line each, written only after a check passed:
 *   E wTeK G ATTRS                       entry present; G: group "g" too
 *                                        (0/1); ATTRS: -1 or the seq
 *   F wTeK SLOT SEED LEN SIZE DT ND D0 D1  a file
 *
 * The dtype rule mirrors lib/version.c ver_type(): a new version keeps the
 * old version's dtype/shape when that is not uint8 and still fits the new
 * size; otherwise it is uint8 [size].
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

const char *const dt_name[NDT] = { "uint8", "int16", "float32", "float64" };
const unsigned dt_size[NDT] = { 1, 2, 4, 8 };

static const char *const slot_names[NSLOT] = {
	"t0", "t1", "t2", "t3", "t4", "t5", "g/t0", "g/t1", "g/t2", ".tmp",
};

const char *slot_name(int s)
{
	return slot_names[s];
}

int slot_in_group(int s)
{
	return s >= 6 && s <= 8;
}

static void default_type(struct fst *f)
{
	f->dtype = 0;
	f->ndim = 1;
	f->shape[0] = f->size;
	f->shape[1] = 0;
}

void model_apply_ok(struct model *m, const struct op *op)
{
	struct est *e = &m->e[op->e];
	struct fst *f = &e->f[op->s < 0 ? 0 : op->s];

	switch (op->kind) {
	case OP_W: {
		struct fst old = *f, n;
		memset(&n, 0, sizeof(n));
		n.present = 1;
		n.seed = op->seed;
		n.len = n.size = op->len;
		default_type(&n);
		if (old.present && !old.fuzzy && old.dtype != 0 &&
		    old.ndim > 0) {
			uint64_t el = 1;
			for (int i = 0; i < old.ndim; i++)
				el *= old.shape[i];
			if (el * dt_size[old.dtype] == n.size) {
				n.dtype = old.dtype;
				n.ndim = old.ndim;
				n.shape[0] = old.shape[0];
				n.shape[1] = old.shape[1];
			}
		}
		*f = n;
		break;
	}
	case OP_R: {
		struct fst src = *f;
		memset(f, 0, sizeof(*f));
		m->e[op->e2].f[op->s2] = src;
		break;
	}
	case OP_U:
		memset(f, 0, sizeof(*f));
		break;
	case OP_M:
		if (!op->grp)
			e->attrs = op->seq;
		if (op->s >= 0) {
			f->dtype = (uint8_t)op->dt;
			f->ndim = (uint8_t)op->nd;
			f->shape[0] = op->d[0];
			f->shape[1] = op->d[1];
		}
		break;
	case OP_K:
		memset(e, 0, sizeof(*e));
		e->present = 1;
		e->attrs = -1;
		break;
	case OP_G:
		e->g = 1;
		break;
	case OP_D:
		e->g = 0;
		break;
	case OP_Z:
		memset(e, 0, sizeof(*e));
		e->attrs = -1;
		break;
	}
}

void model_fuzz(struct model *m, int e, int s, uint64_t seed, uint64_t len)
{
	struct fst *f = &m->e[e].f[s];
	struct fst old = *f;

	memset(f, 0, sizeof(*f));
	f->fuzzy = 1;
	f->seed = seed;
	f->len = len;
	if (old.present && !old.fuzzy) {
		f->opresent = 1;
		f->oseed = old.seed;
		f->olen = old.len;
		f->osize = old.size;
	}
}

void model_drop(struct model *m, int e)
{
	memset(&m->e[e], 0, sizeof(m->e[e]));
	m->e[e].attrs = -1;
}

int model_apply(struct model *m, const struct op *op, enum outcome out,
		int err, int partial, int evict)
{
	if (out == OUT_OK) {
		model_apply_ok(m, op);
		return 0;
	}
	if (op->kind == OP_W && partial) {
		/* the close after the failed write may have committed a
		 * prefix (or nothing) */
		model_fuzz(m, op->e, op->s, op->seed, op->len);
		return evict && err == ENOSPC ? 0 : -1;
	}
	if (op->kind == OP_U && err == ENOENT && m->e[op->e].f[op->s].fuzzy) {
		/* the prefix was never committed */
		memset(&m->e[op->e].f[op->s], 0, sizeof(struct fst));
		return 0;
	}
	if (evict && (err == ENOENT || (op->kind == OP_W && err == ENOSPC)))
		return 0; /* nothing changed (X records say what is gone) */
	return -1;
}

int op_parse(const char *line, struct op *op)
{
	struct op o;
	char k;
	int n;
	long long seq;

	memset(&o, 0, sizeof(o));
	if (sscanf(line, "%" SCNu64 " %c%n", &o.n, &k, &n) != 2)
		return -1;
	line += n;
	o.kind = k;
	o.s = -1;
	switch (k) {
	case OP_W:
		if (sscanf(line, "%d %d %" SCNu64 " %" SCNu64, &o.e, &o.s,
			   &o.seed, &o.len) != 4)
			return -1;
		break;
	case OP_R:
		if (sscanf(line, "%d %d %d %d", &o.e, &o.s, &o.e2, &o.s2) != 4)
			return -1;
		break;
	case OP_U:
		if (sscanf(line, "%d %d", &o.e, &o.s) != 2)
			return -1;
		break;
	case OP_M:
		if (sscanf(line, "%d %d %lld %d %d %d %" SCNu64 " %" SCNu64,
			   &o.e, &o.grp, &seq, &o.s, &o.dt, &o.nd, &o.d[0],
			   &o.d[1]) != 8)
			return -1;
		o.seq = seq;
		break;
	case OP_K: case OP_G: case OP_D: case OP_Z:
		if (sscanf(line, "%d", &o.e) != 1)
			return -1;
		break;
	default:
		return -1;
	}
	if (o.e < 0 || o.e >= MAXE || o.s < -1 || o.s >= NSLOT ||
	    (k == OP_R && (o.e2 < 0 || o.e2 >= MAXE || o.s2 < 0 ||
			   o.s2 >= NSLOT || o.s < 0)) ||
	    ((k == OP_W || k == OP_U) && o.s < 0) ||
	    (k == OP_M && (o.dt < 0 || o.dt >= NDT || o.nd < 0 || o.nd > 2)))
		return -1;
	*op = o;
	return 0;
}

int op_format(const struct op *o, char *buf, size_t size)
{
	switch (o->kind) {
	case OP_W:
		return snprintf(buf, size, "B %" PRIu64 " W %d %d %" PRIu64
				" %" PRIu64 "\n", o->n, o->e, o->s, o->seed,
				o->len);
	case OP_R:
		return snprintf(buf, size, "B %" PRIu64 " R %d %d %d %d\n",
				o->n, o->e, o->s, o->e2, o->s2);
	case OP_U:
		return snprintf(buf, size, "B %" PRIu64 " U %d %d\n", o->n,
				o->e, o->s);
	case OP_M:
		return snprintf(buf, size, "B %" PRIu64 " M %d %d %lld %d %d"
				" %d %" PRIu64 " %" PRIu64 "\n", o->n, o->e,
				o->grp, (long long)o->seq, o->s, o->dt, o->nd,
				o->d[0], o->d[1]);
	default:
		return snprintf(buf, size, "B %" PRIu64 " %c %d\n", o->n,
				o->kind, o->e);
	}
}

int state_load(const char *path, struct model *ms, int nw)
{
	char line[512];
	FILE *fp;

	for (int w = 0; w < nw; w++) {
		memset(&ms[w], 0, sizeof(ms[w]));
		for (int e = 0; e < MAXE; e++)
			ms[w].e[e].attrs = -1;
	}
	fp = fopen(path, "r");
	if (!fp)
		return errno == ENOENT ? 0 : -1;
	while (fgets(line, sizeof line, fp)) {
		int w, e, g, s, dt, nd;
		long long attrs;
		uint64_t seed, len, size, d0, d1;
		if (sscanf(line, "E w%de%d %d %lld", &w, &e, &g, &attrs) == 4) {
			if (w < 0 || w >= MAXW || e < 0 || e >= MAXE)
				goto bad;
			if (w >= nw)
				continue;
			ms[w].e[e].present = 1;
			ms[w].e[e].g = (uint8_t)g;
			ms[w].e[e].attrs = attrs;
		} else if (sscanf(line, "F w%de%d %d %" SCNu64 " %" SCNu64
				  " %" SCNu64 " %d %d %" SCNu64 " %" SCNu64,
				  &w, &e, &s, &seed, &len, &size, &dt, &nd,
				  &d0, &d1) == 10) {
			if (w < 0 || w >= MAXW || e < 0 || e >= MAXE ||
			    s < 0 || s >= NSLOT || dt < 0 || dt >= NDT ||
			    nd < 0 || nd > 2)
				goto bad;
			if (w >= nw)
				continue;
			struct fst *f = &ms[w].e[e].f[s];
			memset(f, 0, sizeof(*f));
			f->present = 1;
			f->seed = seed;
			f->len = len;
			f->size = size;
			f->dtype = (uint8_t)dt;
			f->ndim = (uint8_t)nd;
			f->shape[0] = d0;
			f->shape[1] = d1;
		} else {
			goto bad;
		}
	}
	fclose(fp);
	return 0;
bad:
	fprintf(stderr, "%s: bad line: %s", path, line);
	fclose(fp);
	return -1;
}

int state_save(const char *path, const struct model *ms, int nw, int nent)
{
	char tmp[4096];
	FILE *fp;

	snprintf(tmp, sizeof tmp, "%s.new", path);
	fp = fopen(tmp, "w");
	if (!fp)
		return -1;
	for (int w = 0; w < nw; w++)
		for (int e = 0; e < nent; e++) {
			const struct est *E = &ms[w].e[e];
			if (!E->present)
				continue;
			fprintf(fp, "E w%de%d %d %lld\n", w, e, E->g,
				(long long)E->attrs);
			for (int s = 0; s < NSLOT; s++) {
				const struct fst *f = &E->f[s];
				if (!f->present)
					continue;
				fprintf(fp, "F w%de%d %d %" PRIu64 " %" PRIu64
					" %" PRIu64 " %d %d %" PRIu64 " %"
					PRIu64 "\n", w, e, s, f->seed, f->len,
					f->size, f->dtype, f->ndim,
					f->shape[0], f->shape[1]);
			}
		}
	if (fclose(fp) != 0)
		return -1;
	return rename(tmp, path);
}
