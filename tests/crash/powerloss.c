/*
 * powerloss.c - power loss at every sync point of the store engine: the
 * states a disk may hold afterwards, each opened and checked.
 *
 * Workloads drive libtcache directly (no FUSE) on a store in a temporary
 * directory.  powerloss_disk.c records what is durable (file images taken
 * at fdatasync/fsync, the directory at its fsync).  At each crash point
 * (after every workload operation, and before/after every sync and rename
 * the engine makes) a set of disk states is built: nothing unsynced, all
 * of it, pool written but journal not and the reverse, each with the
 * directory as synced or as now, and seeded random block subsets and
 * prefixes.  Each state is checked with tc_store_check (fsck must be
 * clean) and then opened (must succeed) and every tensor read back.
 *
 * The model knows, per tensor name, every version written under it since
 * its last durable state (a seed and a length: the bytes are generated),
 * whether one of them must be there (tc_file_sync or tc_store_sync
 * returned 0 after its commit and nothing replaced or removed it since)
 * and whether the name may be absent.  Any tensor read back must be one of
 * those versions, exactly; never EIO; never a name the model never made.
 *
 * Output is TAP, one point per workload, with one line per kind of
 * violation (workload, crash point, strategy, name, expected, found).
 * Usage: powerloss [--seed S] [--states N] [--soak] [--random R]
 *                  [--workload NAME] [--verbose]
 * Each TAP line names its workload's seed: --workload NAME --seed SEED
 * replays that workload alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "powerloss.h"
#include "tcache.h"

#define MAXE 12
#define MAXT 96
#define MAXC 32
#define MAXLEN (512u << 10)
#define KiB 1024u

struct ver {
	uint64_t seed;
	uint32_t len;
};

struct tensor {
	int used, e;
	char name[24];
	int has_cur;
	struct ver cur;
	int nc;
	struct ver cand[MAXC];
	int may_absent;
	int removed; /* unlinked, renamed away or evicted since it had bytes */
};

struct entry {
	int used, live, pinned;
	char name[24];
	uint64_t id;
};

static struct entry ents[MAXE];
static struct tensor tens[MAXT];
static tc_store *S;
static struct tc_options live_opt;
static uint64_t next_seed;
static uint64_t run_seed = 1;
static int random_states = 4;
static int verbose;
static char base_dir[256], state_dir[300];
static uint8_t *wbuf, *rbuf, *vbuf;

/* per workload */
static const char *wl_name;
static char op_desc[160];
static int op_no;
static uint64_t states, violations, torn_tolerated, points;
static uint64_t total_states;
#define KINDS 64
static struct { char key[96]; uint64_t n; } kinds[KINDS];
static int nkinds;
static uint64_t dedup[64];
static int ndedup;

/* ---- the model ----------------------------------------------------------- */

static void ver_fill(struct ver v, uint8_t *p)
{
	uint64_t s = v.seed * 0x9e3779b97f4a7c15ull + 1;
	uint32_t i = 0;
	for (; i + 8 <= v.len; i += 8) {
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		uint64_t x = s * 2685821657736338717ull;
		memcpy(p + i, &x, 8);
	}
	for (; i < v.len; i++)
		p[i] = (uint8_t)(v.seed >> (i % 8));
}

static struct tensor *t_find(int e, const char *name)
{
	for (int i = 0; i < MAXT; i++)
		if (tens[i].used && tens[i].e == e &&
		    !strcmp(tens[i].name, name))
			return &tens[i];
	return NULL;
}

static struct tensor *t_get(int e, const char *name)
{
	struct tensor *t = t_find(e, name);
	for (int i = 0; !t && i < MAXT; i++)
		if (!tens[i].used) {
			t = &tens[i];
			*t = (struct tensor){ .used = 1, .e = e,
					      .may_absent = 1 };
			snprintf(t->name, sizeof(t->name), "%s", name);
		}
	if (!t) {
		fprintf(stderr, "powerloss: model full\n");
		exit(2);
	}
	return t;
}

static void cand_add(struct tensor *t, struct ver v)
{
	for (int i = 0; i < t->nc; i++)
		if (t->cand[i].seed == v.seed && t->cand[i].len == v.len)
			return;
	if (t->nc == MAXC) {
		fprintf(stderr, "powerloss: too many versions of %s\n",
			t->name);
		exit(2);
	}
	t->cand[t->nc++] = v;
}

/* The tensor's current version is durable: only it may be read back. */
static void t_durable(struct tensor *t)
{
	if (t->has_cur) {
		t->nc = 1;
		t->cand[0] = t->cur;
		t->may_absent = 0;
	} else {
		t->nc = 0;
		t->may_absent = 1;
	}
}

static void on_evict(void *arg, uint64_t parent, uint64_t id,
		     const char *name)
{
	(void)arg;
	(void)parent;
	(void)name;
	for (int e = 0; e < MAXE; e++) {
		if (!ents[e].used || !ents[e].live || ents[e].id != id)
			continue;
		ents[e].live = 0;
		for (int i = 0; i < MAXT; i++)
			if (tens[i].used && tens[i].e == e) {
				tens[i].may_absent = 1;
				tens[i].removed = tens[i].has_cur;
				tens[i].has_cur = 0;
			}
	}
}

/* ---- violations ----------------------------------------------------------- */

static void violation(const char *where, const char *strategy,
		      const char *name, const char *kind, const char *fmt, ...)
{
	char detail[512], key[96];
	va_list ap;
	int k;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	violations++;
	snprintf(key, sizeof(key), "%s|%s", kind, strategy);
	for (k = 0; k < nkinds && strcmp(kinds[k].key, key); k++)
		;
	if (k == nkinds && nkinds < KINDS)
		snprintf(kinds[nkinds++].key, sizeof(key), "%s", key);
	if (k < KINDS && kinds[k].n++ && !verbose)
		return;
	printf("# VIOLATION %s: workload=%s point=\"op %d %s: %s\" "
	       "strategy=%s name=%s %s\n", kind, wl_name, op_no, op_desc,
	       where, strategy, name, detail);
}

/*
 * Is the offline check of a crash state clean?  No damage of any kind:
 * what a crash never wrote whole is counted apart by the store (torn
 * journal records, unsynced tensors left out, replacements that fell
 * back), and those are allowed.  The one place that says what counts as
 * damage.  (@journal_torn: the state's journal holds bytes never synced.)
 */
static int check_clean(const struct tc_check *c, int journal_torn)
{
	if (c->nodes_dropped || c->damaged || c->repaired || c->records_dropped)
		return 0;
	if (c->torn && !journal_torn)
		return 0; /* torn records where every byte was synced */
	if (c->torn)
		torn_tolerated++;
	return 1;
}

static void on_problem(void *arg, const char *path, const char *problem)
{
	char *first = arg;
	if (!first[0])
		snprintf(first, 200, "%s: %s", path, problem);
}

static int matches(const struct tensor *t, const uint8_t *p, uint64_t len)
{
	for (int i = 0; i < t->nc; i++) {
		if (t->cand[i].len != len)
			continue;
		ver_fill(t->cand[i], vbuf);
		if (!memcmp(vbuf, p, len))
			return 1;
	}
	return 0;
}

static void expected(const struct tensor *t, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s", t->may_absent ? "absent" : "");
	for (int i = 0; i < t->nc && n < (int)len - 24; i++)
		n += snprintf(buf + n, len - (size_t)n, "%s%u bytes#%" PRIu64,
			      n ? " or " : "", t->cand[i].len, t->cand[i].seed);
}

/* What the model promises for @t, as a word for reports. */
static const char *t_status(const struct tensor *t)
{
	if (!t->may_absent)
		return t->nc == 1 ? "fsynced" : "fsynced-then-replaced";
	if (t->removed)
		return "removed";
	return "unsynced";
}

/* Read every tensor of the opened crash state and compare. */
static void check_tree(tc_store *s, const char *where, const char *strat)
{
	uint64_t *eids = NULL, *tids = NULL;
	size_t ne = 0, nt = 0;
	char seen[MAXT] = { 0 }, exp[400], kind[64];

	if (tc_list(s, TC_ROOT_ID, &eids, &ne))
		violation(where, strat, "/", "list", "tc_list failed");
	for (size_t i = 0; i < ne; i++) {
		struct tc_stat est;
		int e;
		if (tc_getattr(s, eids[i], &est))
			continue;
		for (e = 0; e < MAXE; e++)
			if (ents[e].used && !strcmp(ents[e].name, est.name))
				break;
		if (e == MAXE) {
			violation(where, strat, est.name, "unknown-name",
				  "expected=nothing found=an entry");
			continue;
		}
		if (tc_list(s, eids[i], &tids, &nt))
			continue;
		for (size_t k = 0; k < nt; k++) {
			struct tc_stat st;
			char path[300];
			tc_file *fh;
			if (tc_getattr(s, tids[k], &st))
				continue;
			snprintf(path, sizeof(path), "%.40s/%.200s", est.name,
				 st.name);
			struct tensor *t = t_find(e, st.name);
			if (!t) {
				violation(where, strat, path, "unknown-name",
					  "expected=nothing found=%" PRIu64
					  " bytes", st.size);
				continue;
			}
			seen[t - tens] = 1;
			expected(t, exp, sizeof(exp));
			int r = tc_open(s, tids[k], 0, &fh);
			if (r) {
				snprintf(kind, sizeof(kind), "%s(%s)",
					 r == -EIO ? "EIO" : "open-error",
					 t_status(t));
				violation(where, strat, path, kind,
					  "expected=%s found=%s", exp,
					  strerror(-r));
				continue;
			}
			ssize_t got = st.size <= MAXLEN
					      ? tc_file_pread(s, fh, rbuf,
							      MAXLEN, 0)
					      : -EFBIG;
			tc_file_close(s, fh);
			snprintf(kind, sizeof(kind), "%s(%s)",
				 got < 0 ? "EIO" : "wrong-bytes", t_status(t));
			if (got < 0)
				violation(where, strat, path, kind,
					  "expected=%s found=read %s", exp,
					  strerror((int)-got));
			else if (!matches(t, rbuf, (uint64_t)got))
				violation(where, strat, path, kind,
					  "expected=%s found=%zd bytes "
					  "matching no version", exp, got);
		}
		free(tids);
		tids = NULL;
	}
	free(eids);
	for (int i = 0; i < MAXT; i++) {
		if (!tens[i].used || seen[i] || tens[i].may_absent)
			continue;
		char path[300];
		snprintf(path, sizeof(path), "%s/%s", ents[tens[i].e].name,
			 tens[i].name);
		expected(&tens[i], exp, sizeof(exp));
		violation(where, strat, path, tens[i].nc == 1 ? "lost(fsynced)"
			  : "lost(fsynced-then-replaced)", "expected=%s found=absent",
			  exp);
	}
}

static void check_state(const char *where, const char *strat, int torn)
{
	struct tc_check chk;
	struct tc_options o = { .capacity = live_opt.capacity };
	char first[200] = "";
	tc_store *s;
	int r = tc_store_check(state_dir, 0, on_problem, first, &chk);
	if (r && r != -ENOENT)
		violation(where, strat, "-", "fsck-failed",
			  "expected=check runs found=%s", strerror(-r));
	else if (!r && !check_clean(&chk, torn))
		violation(where, strat, "-", "fsck-unclean",
			  "expected=clean found=records_dropped %" PRIu64
			  " torn %" PRIu64 " nodes_dropped %" PRIu64
			  " damaged %" PRIu64 " (%s)", chk.records_dropped,
			  chk.torn, chk.nodes_dropped, chk.damaged, first);
	r = tc_store_open(state_dir, &o, &s);
	if (r) {
		violation(where, strat, "-", "open-failed",
			  "expected=open found=%s", strerror(-r));
		return;
	}
	check_tree(s, where, strat);
	tc_store_close(s);
}

/* ---- crash points ---------------------------------------------------------- */

static const struct pl_choice fixed[] = {
	{ "durable-only", 0, PL_DURABLE, PL_DURABLE, 0, 0, 0 },
	{ "everything", 1, PL_ALL, PL_ALL, 1, 0, 0 },
	{ "data-all,dir-synced", 0, PL_ALL, PL_ALL, 1, 0, 0 },
	{ "data-synced,dir-now", 1, PL_DURABLE, PL_DURABLE, 0, 0, 0 },
	{ "pool-written,journal-not", 1, PL_ALL, PL_DURABLE, -1, 0, 0 },
	{ "journal-written,pool-not", 1, PL_DURABLE, PL_ALL, -1, 0, 0 },
	{ "pool-written,journal-not,dir-synced", 0, PL_ALL, PL_DURABLE, -1,
	  0, 0 },
	{ "journal-written,pool-not,dir-synced", 0, PL_DURABLE, PL_ALL, -1,
	  0, 0 },
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Only states where the journal's unsynced bytes reached the disk after
 * all of the pool's (the order a store that syncs the pool before it
 * appends would give): the control run. */
static int pool_first;

static void try_state(const char *where, const struct pl_choice *cc)
{
	struct pl_choice cp = *cc, *c = &cp;
	uint64_t h;
	if (pool_first && c->journal != PL_DURABLE)
		c->pool = PL_ALL;
	int torn, r = pl_disk_state(state_dir, c, 0, &h, &torn);
	for (int i = 0; r >= 0 && i < ndedup; i++)
		if (dedup[i] == h)
			return;
	if (r >= 0)
		r = pl_disk_state(state_dir, c, 1, &h, &torn);
	if (r < 0) {
		fprintf(stderr, "powerloss: building a state: %s\n",
			strerror(-r));
		exit(2);
	}
	if (ndedup < 64)
		dedup[ndedup++] = h;
	states++;
	check_state(where, c->name, torn);
}

static void crash_point(const char *where)
{
	pl_disk_pause(1);
	points++;
	if (verbose > 1)
		printf("# %s: crash point op %d %s: %s\n", wl_name, op_no,
		       op_desc, where);
	ndedup = 0;
	pl_disk_snapshot();
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		try_state(where, &fixed[i]);
	for (int i = 0; i < random_states; i++) {
		uint64_t x = mix(run_seed ^ mix(points * 1000 + (uint64_t)i));
		struct pl_choice c = {
			.name = i & 1 ? "prefix" : "random-blocks",
			.dir_current = (int)(x & 1),
			.pool = i & 1 ? PL_PREFIX : PL_RANDOM,
			.journal = i & 1 ? PL_PREFIX : PL_RANDOM,
			.cur_size = -1,
			.p = (double)((x >> 8) % 100) / 100.0,
			.seed = x,
		};
		try_state(where, &c);
	}
	pl_disk_pause(0);
}

/* ---- operations (each followed by a crash point) ------------------------ */

static void op(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op_desc, sizeof(op_desc), fmt, ap);
	va_end(ap);
	op_no++;
	if (verbose)
		printf("# %s: op %d %s\n", wl_name, op_no, op_desc);
}

static void done(void)
{
	crash_point("after it returned");
}

static int e_get(int e, int pinned)
{
	struct tc_stat st;
	if (ents[e].used && ents[e].live)
		return 0;
	if (!ents[e].used) {
		ents[e].used = 1;
		snprintf(ents[e].name, sizeof(ents[e].name), "e%d", e);
	}
	op("mkdir %s", ents[e].name);
	int r = tc_mkdir(S, TC_ROOT_ID, ents[e].name, 0755, 0, 0, &st);
	if (r)
		return r;
	ents[e].id = st.id;
	ents[e].live = 1;
	ents[e].pinned = pinned;
	if (pinned)
		r = tc_pin(S, st.id, 1);
	done();
	return r;
}

enum how { COMMIT, FSYNC };

/* Write a new version of @e/@name, @len bytes; commit or fsync it. */
static int write_ver(int e, const char *name, uint32_t len, enum how how)
{
	struct tc_stat st;
	struct ver v = { ++next_seed, len };
	tc_file *fh;
	int r = e_get(e, 0);
	if (r)
		return r;
	op("%s %s/%s %u bytes", how == FSYNC ? "write+fsync" : "write",
	   ents[e].name, name, len);
	r = tc_lookup(S, ents[e].id, name, &st);
	if (r == 0)
		r = tc_open(S, st.id, TC_O_WRITE | TC_O_TRUNC, &fh);
	else if (r == -ENOENT)
		r = tc_create(S, ents[e].id, name, 0644, 0, 0, &fh, &st);
	if (r)
		return r;
	ver_fill(v, wbuf);
	for (uint32_t at = 0; at < len && !r; at += 64 * KiB) {
		uint32_t n = len - at < 64 * KiB ? len - at : 64 * KiB;
		ssize_t w = tc_file_write(S, fh, wbuf + at, n, at);
		r = w < 0 ? (int)w : 0;
	}
	if (!r && ents[e].live) {
		struct tensor *t = t_get(e, name);
		cand_add(t, v);
		r = how == FSYNC ? tc_file_sync(S, fh) : tc_file_commit(S, fh);
		if (!r) {
			t->has_cur = 1;
			t->removed = 0;
			t->cur = v;
			if (how == FSYNC)
				t_durable(t);
		}
	}
	tc_file_close(S, fh);
	done();
	return r;
}

static int rename_t(int e, const char *from, const char *to)
{
	struct tensor *a = t_find(e, from), *b = t_get(e, to);
	op("rename %s/%s -> %s", ents[e].name, from, to);
	if (!a || !a->has_cur)
		return -ENOENT;
	/* the node moves with what it may still show: any version since its
	 * last durable one (a replacement whose bytes are lost falls back,
	 * under the new name) */
	cand_add(b, a->cur);
	for (int i = 0; i < a->nc; i++)
		cand_add(b, a->cand[i]);
	a->may_absent = 1;
	int r = tc_rename(S, ents[e].id, from, ents[e].id, to, 0);
	if (!r) {
		b->cur = a->cur;
		b->has_cur = 1;
		b->removed = 0;
		a->has_cur = 0;
		a->removed = 1;
	}
	done();
	return r;
}

static int unlink_t(int e, const char *name)
{
	struct tensor *t = t_find(e, name);
	op("unlink %s/%s", ents[e].name, name);
	if (!t || !ents[e].live)
		return -ENOENT;
	t->may_absent = 1;
	int r = tc_unlink(S, ents[e].id, name);
	if (!r) {
		t->has_cur = 0;
		t->removed = 1;
	}
	done();
	return r;
}

static int rmdir_e(int e)
{
	op("rmdir %s", ents[e].name);
	int r = tc_rmdir(S, TC_ROOT_ID, ents[e].name);
	if (!r)
		ents[e].live = 0;
	done();
	return r;
}

static int store_sync(void)
{
	op("tc_store_sync");
	int r = tc_store_sync(S);
	if (!r)
		for (int i = 0; i < MAXT; i++)
			if (tens[i].used)
				t_durable(&tens[i]);
	done();
	return r;
}

static int store_close(void)
{
	op("tc_store_close");
	int r = tc_store_close(S);
	S = NULL;
	done();
	return r;
}

static int store_open(void)
{
	op("tc_store_open");
	int r = tc_store_open(base_dir, &live_opt, &S);
	if (!r)
		tc_store_on_evict(S, on_evict, NULL);
	for (int e = 0; !r && e < MAXE; e++) {
		struct tc_stat st;
		if (ents[e].used && ents[e].live &&
		    tc_lookup(S, TC_ROOT_ID, ents[e].name, &st) == 0)
			ents[e].id = st.id;
	}
	done();
	return r;
}

/* ---- workloads -------------------------------------------------------------- */

static uint64_t wl_rng;

static uint32_t rnd_len(uint32_t lo, uint32_t hi)
{
	wl_rng ^= wl_rng >> 12;
	wl_rng ^= wl_rng << 25;
	wl_rng ^= wl_rng >> 27;
	uint64_t x = wl_rng * 2685821657736338717ull;
	uint32_t len = lo + (uint32_t)(x % (hi - lo + 1));
	return x & (1ull << 40) ? len & ~(4 * KiB - 1) : len; /* some aligned */
}

static unsigned rnd_n(unsigned n)
{
	return (unsigned)(rnd_len(0, 1u << 30) % n);
}

static void name_of(char *buf, int i)
{
	sprintf(buf, "t%d", i);
}

/* Only fsynced writes, no replacement, no close: everything must survive. */
static void fsynced_writes_survive(void)
{
	char n[16];
	for (int i = 0; i < 12; i++) {
		name_of(n, i);
		write_ver(i % 2, n, rnd_len(4 * KiB, 128 * KiB), FSYNC);
	}
}

/* Bug 1: a clean close checkpoints the index of tensors whose bytes were
 * never synced. */
static void clean_close_keeps_unsynced_tensors_absent_or_exact(void)
{
	char n[16];
	write_ver(0, "synced", 64 * KiB, FSYNC);
	for (int i = 0; i < 5; i++) {
		name_of(n, i);
		write_ver(i % 2, n, rnd_len(16 * KiB, 256 * KiB), COMMIT);
	}
	store_close();
}

/* Bug 1 with checkpoints in the background (journal_slack 4 KiB). */
static void background_checkpoints_keep_unsynced_tensors_absent_or_exact(void)
{
	char n[16];
	for (int i = 0; i < 64; i++) {
		name_of(n, i % 16);
		write_ver(i % 3, n, rnd_len(1, 16 * KiB),
			  i == 0 || i == 40 ? FSYNC : COMMIT);
	}
}

/* Bug 2: an fsynced tensor rewritten in place, then a close. */
static void rewrite_in_place_keeps_old_or_new(void)
{
	write_ver(0, "x", 128 * KiB, FSYNC);
	write_ver(0, "y", 32 * KiB, FSYNC);
	write_ver(0, "x", 128 * KiB, COMMIT);
	store_close();
}

/* Bug 2: an fsynced tensor replaced by a temp file renamed over it. */
static void rename_over_fsynced_keeps_old_or_new(void)
{
	write_ver(0, "x", 128 * KiB, FSYNC);
	write_ver(0, "x.tmp", 128 * KiB, COMMIT);
	rename_t(0, "x.tmp", "x");
	store_close();
}

/* Bug 3: the extents a rename freed, reused at once by a new tensor. */
static void freed_extents_not_reused_before_the_free_is_durable(void)
{
	e_get(0, 1);
	write_ver(0, "x", 512 * KiB, FSYNC);
	write_ver(0, "x.tmp", 512 * KiB, COMMIT);
	rename_t(0, "x.tmp", "x");
	write_ver(0, "y", 512 * KiB, COMMIT);
}

/* Removals: names come back only with a version they had. */
static void removals_bring_back_only_known_versions(void)
{
	char n[16];
	for (int i = 0; i < 6; i++) {
		name_of(n, i);
		write_ver(i % 3, n, rnd_len(4 * KiB, 96 * KiB), FSYNC);
	}
	unlink_t(0, "t0");
	unlink_t(0, "t3");
	rmdir_e(0);
	write_ver(1, "t9", 128 * KiB, COMMIT);
	store_sync();
	unlink_t(1, "t1");
	write_ver(2, "t1", 64 * KiB, COMMIT);
	unlink_t(2, "t2");
	write_ver(1, "t4", 100 * KiB, FSYNC);
}

/* Eviction under pressure: pinned entries keep their synced tensors;
 * evicted tensors are absent or exact. */
static void eviction_keeps_pinned_synced_tensors(void)
{
	char n[16];
	e_get(0, 1);
	write_ver(0, "p0", 128 * KiB, FSYNC);
	write_ver(0, "p1", 64 * KiB, FSYNC);
	for (int i = 0; i < 14; i++) {
		name_of(n, i % 3);
		write_ver(1 + i % 5, n, rnd_len(64 * KiB, 256 * KiB),
			  i % 4 == 3 ? FSYNC : COMMIT);
		if (i == 8)
			store_sync();
	}
}

/* Close and reopen in turns, synced and unsynced writes between. */
static void reopen_cycles_keep_synced_tensors(void)
{
	char n[16];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 4; i++) {
			name_of(n, round * 2 + i);
			write_ver(i % 2, n, rnd_len(4 * KiB, 64 * KiB),
				  i % 2 ? FSYNC : COMMIT);
		}
		if (round == 1)
			store_sync();
		store_close();
		store_open();
	}
}

/* Small tensors share pool blocks (packed): replaced, removed and renamed
 * ones free units that others in the same blocks keep using, and a freed
 * unit is reused only once the record freeing it is durable. */
static void packed_tensors_share_blocks(void)
{
	char n[16], m[16];
	for (int i = 0; i < 48; i++) {
		int e = i % 3;
		name_of(n, (int)rnd_n(10));
		switch (rnd_n(8)) {
		case 0:
			if (t_find(e, n) && t_find(e, n)->has_cur)
				unlink_t(e, n);
			break;
		case 1:
			name_of(m, (int)rnd_n(10));
			if (t_find(e, n) && t_find(e, n)->has_cur && strcmp(n, m))
				rename_t(e, n, m);
			break;
		case 2:
			write_ver(e, n, rnd_len(1, 2 * KiB), FSYNC);
			break;
		case 3:
			write_ver(e, n, rnd_len(2 * KiB, 6 * KiB), COMMIT);
			break;
		default:
			write_ver(e, n, rnd_len(1, 2 * KiB), COMMIT);
			break;
		}
		if (i == 20)
			store_sync();
		if (i == 36) {
			store_close();
			store_open();
		}
	}
}

/* Stage @n new tensors of @e (names t<ids[i]>), write their bytes into the
 * pool file as a writer with staged runs does, and commit them at once
 * (lib/stage.c).  A name present is kept by the commit: the model
 * changes only for those made. */
static int staged_put(int e, int n, const int *ids)
{
	tc_staged *t[8];
	const char *names[8];
	char nb[8][16], pool[300];
	struct ver v[8];
	int made[8], k = 0, r = e_get(e, 0), fd;

	if (r)
		return r;
	op("staged put of %d tensors into %s", n, ents[e].name);
	snprintf(pool, sizeof(pool), "%s/pool", base_dir);
	fd = open(pool, O_WRONLY);
	if (fd < 0)
		return -errno;
	for (int i = 0; i < n && !r; i++) {
		uint64_t off;
		uint32_t len = rnd_len(1, 160 * KiB);
		struct ver vi = { ++next_seed, len ? len : 1 };
		tc_staged *ti;
		r = tc_stage(S, vi.len, &ti, &off);
		if (r == -EXDEV) { /* no single run: not this one */
			r = 0;
			continue;
		}
		if (r)
			break;
		ver_fill(vi, wbuf);
		if (pwrite(fd, wbuf, vi.len, (off_t)off) != (ssize_t)vi.len) {
			tc_staged_drop(S, ti);
			r = -EIO;
			break;
		}
		t[k] = ti;
		v[k] = vi;
		name_of(nb[k], ids[i]);
		names[k] = nb[k];
		k++;
	}
	close(fd);
	if (r) {
		for (int i = 0; i < k; i++)
			tc_staged_drop(S, t[i]);
		done();
		return r;
	}
	r = tc_stage_commit(S, ents[e].id, (size_t)k, t, names, NULL, 0644, 0, 0,
			    made);
	if (r)
		for (int i = 0; i < k; i++)
			tc_staged_drop(S, t[i]);
	for (int i = 0; !r && i < k && ents[e].live; i++) {
		if (!made[i])
			continue;
		struct tensor *x = t_get(e, names[i]);
		cand_add(x, v[i]);
		x->has_cur = 1;
		x->removed = 0;
		x->cur = v[i];
	}
	done();
	return r;
}

/* Staged puts (bytes written into the pool by the caller, many tensors
 * named in one record) among writes, removals, syncs and a reopen: each
 * tensor of them after a power loss is absent or whole (synced: whole),
 * exactly as a tensor written through a file. */
static void staged_puts_whole_or_absent(void)
{
	char n[16];
	for (int i = 0; i < 24; i++) {
		int e = (int)rnd_n(3), ids[6], k = 1 + (int)rnd_n(6);
		ids[0] = (int)rnd_n(12);
		for (int j = 1; j < k; j++)
			ids[j] = (ids[j - 1] + 1 + (int)rnd_n(3)) % 40; /* distinct */
		name_of(n, (int)rnd_n(12));
		switch (rnd_n(6)) {
		case 0:
			if (t_find(e, n) && t_find(e, n)->has_cur)
				unlink_t(e, n);
			break;
		case 1:
			write_ver(e, n, rnd_len(1, 64 * KiB), COMMIT);
			break;
		default:
			staged_put(e, k, ids);
			break;
		}
		if (i == 9)
			store_sync();
		if (i == 17) {
			store_close();
			store_open();
		}
	}
}

/* Everything at random. */
static void random_mix(void)
{
	char n[16], m[16];
	for (int i = 0; i < 30; i++) {
		int e = (int)rnd_n(4);
		name_of(n, (int)rnd_n(8));
		switch (rnd_n(10)) {
		case 0:
		case 1:
		case 2:
			write_ver(e, n, rnd_len(1, 160 * KiB), COMMIT);
			break;
		case 3:
		case 4:
			write_ver(e, n, rnd_len(1, 160 * KiB), FSYNC);
			break;
		case 5:
			if (t_find(e, n) && t_find(e, n)->has_cur)
				unlink_t(e, n);
			break;
		case 6:
			name_of(m, (int)rnd_n(8));
			if (t_find(e, n) && t_find(e, n)->has_cur &&
			    strcmp(n, m))
				rename_t(e, n, m);
			break;
		case 7:
			store_sync();
			break;
		case 8:
			if (rnd_n(3) == 0) {
				store_close();
				store_open();
			}
			break;
		default:
			write_ver(e, n, rnd_len(256 * KiB, 512 * KiB), COMMIT);
			break;
		}
	}
}

struct workload {
	const char *name;
	void (*fn)(void);
	uint64_t capacity, slack;
	int pool_first;
};

static const struct workload workloads[] = {
	{ "fsynced_writes_survive_when_pool_bytes_reach_disk_first",
	  fsynced_writes_survive, 2 << 20, 0, 1 },
	{ "fsynced_writes_survive", fsynced_writes_survive, 2 << 20, 0, 0 },
	{ "clean_close_keeps_unsynced_tensors_absent_or_exact",
	  clean_close_keeps_unsynced_tensors_absent_or_exact, 2 << 20, 0, 0 },
	{ "background_checkpoints_keep_unsynced_tensors_absent_or_exact",
	  background_checkpoints_keep_unsynced_tensors_absent_or_exact,
	  2 << 20, 4096, 0 },
	{ "rewrite_in_place_keeps_old_or_new",
	  rewrite_in_place_keeps_old_or_new, 2 << 20, 0, 0 },
	{ "rename_over_fsynced_keeps_old_or_new",
	  rename_over_fsynced_keeps_old_or_new, 2 << 20, 0, 0 },
	{ "freed_extents_not_reused_before_the_free_is_durable",
	  freed_extents_not_reused_before_the_free_is_durable, 1 << 20, 0, 0 },
	{ "removals_bring_back_only_known_versions",
	  removals_bring_back_only_known_versions, 2 << 20, 0, 0 },
	{ "eviction_keeps_pinned_synced_tensors",
	  eviction_keeps_pinned_synced_tensors, 1 << 20, 0, 0 },
	{ "reopen_cycles_keep_synced_tensors",
	  reopen_cycles_keep_synced_tensors, 2 << 20, 0, 0 },
	{ "packed_tensors_share_blocks", packed_tensors_share_blocks,
	  2 << 20, 4096, 0 },
	{ "packed_tensors_share_blocks_under_eviction",
	  packed_tensors_share_blocks, 64 << 10, 0, 0 },
	{ "staged_puts_whole_or_absent", staged_puts_whole_or_absent,
	  2 << 20, 4096, 0 },
	{ "staged_puts_under_eviction", staged_puts_whole_or_absent,
	  512 << 10, 0, 0 },
	{ "random_mix", random_mix, 2 << 20, 4096, 0 },
};

static char root_dir[200];

/* Run one workload on a fresh store; 1 when it met no violation. */
static int run(const struct workload *w, uint64_t seed, int tap_no)
{
	char stats[128];
	memset(ents, 0, sizeof(ents));
	memset(tens, 0, sizeof(tens));
	memset(kinds, 0, sizeof(kinds));
	nkinds = 0;
	states = violations = torn_tolerated = points = 0;
	op_no = 0;
	wl_name = w->name;
	wl_rng = mix(seed) | 1;
	run_seed = seed;
	pool_first = w->pool_first;
	next_seed = seed << 20;
	live_opt = (struct tc_options){ .capacity = w->capacity,
					.journal_slack = w->slack };
	snprintf(base_dir, sizeof(base_dir), "%s/store-%d", root_dir, tap_no);
	if (mkdir(base_dir, 0700) < 0 || pl_disk_start(base_dir, crash_point)) {
		fprintf(stderr, "powerloss: cannot set up %s\n", base_dir);
		exit(2);
	}
	if (store_open()) {
		fprintf(stderr, "powerloss: cannot create the store\n");
		exit(2);
	}
	w->fn();
	pl_disk_stop();
	if (S)
		tc_store_close(S);
	S = NULL;
	total_states += states;
	snprintf(stats, sizeof(stats),
		 "seed %" PRIu64 ", %" PRIu64 " crash points, %" PRIu64
		 " states, %" PRIu64 " violations", seed, points, states,
		 violations);
	if (pl_disk_overflow()) {
		printf("not ok %d - %s (%s): a file outgrew the disk model\n",
		       tap_no, w->name, stats);
		return 0;
	}
	for (int k = 0; k < nkinds; k++)
		printf("# %s: %" PRIu64 " x %s\n", w->name, kinds[k].n,
		       kinds[k].key);
	if (torn_tolerated)
		printf("# %s: %" PRIu64 " states with a torn journal tail "
		       "(records dropped, allowed)\n", w->name, torn_tolerated);
	printf("%s %d - %s (%s)\n", violations ? "not ok" : "ok", tap_no,
	       w->name, stats);
	fflush(stdout);
	return !violations;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: powerloss [--seed S] [--states N] [--soak] "
		"[--random R] [--workload NAME] [--verbose]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t seed = (uint64_t)time(NULL), want = 10000;
	const char *only = NULL;
	int ok = 1, n = 0;
	struct timespec t0, t1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--states") && i + 1 < argc)
			want = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--soak"))
			want = 1000000;
		else if (!strcmp(argv[i], "--random") && i + 1 < argc)
			random_states = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--workload") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--verbose"))
			verbose++;
		else
			usage();
	}
	if (getenv("POWERLOSS_SEED"))
		seed = strtoull(getenv("POWERLOSS_SEED"), NULL, 0);
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm"
			  : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(root_dir, sizeof(root_dir), "%s/tcache-powerloss-XXXXXX", tmp);
	wbuf = malloc(MAXLEN);
	rbuf = malloc(MAXLEN);
	vbuf = malloc(MAXLEN);
	if (!wbuf || !rbuf || !vbuf || !mkdtemp(root_dir))
		return 2;
	snprintf(state_dir, sizeof(state_dir), "%s/state", root_dir);
	printf("# powerloss: seed %" PRIu64 " (replay: --seed %" PRIu64
	       "), scratch %s\n", seed, seed, root_dir);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (!only || !strcmp(only, workloads[i].name))
			ok &= run(&workloads[i], only ? seed : seed + i, ++n);
	/* more random mixes, with the seeds that follow, up to the budget */
	for (uint64_t k = 1; !only && total_states < want; k++)
		ok &= run(&workloads[sizeof(workloads) / sizeof(workloads[0]) - 1],
			  seed + 1000 * k, ++n);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("1..%d\n", n);
	printf("# powerloss: %d workloads, %" PRIu64 " states in %.1f s, "
	       "seed %" PRIu64 ": %s\n", n, total_states,
	       (double)(t1.tv_sec - t0.tv_sec) +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       seed, ok ? "no violation" : "VIOLATIONS");
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "powerloss: could not remove %s\n", root_dir);
	return ok ? 0 : 1;
}
