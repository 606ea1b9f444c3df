/*
 * durable.c - the journal's side of the store: appending records,
 * batching touches, syncs, and checkpoints (the write order they keep is
 * in journal.c, "Write order and power loss").
 *
 * Invariants:
 *   - Every record appended is applied before the lock is let go
 *     (store_change appends and applies under one hold), so whenever the
 *     lock is free the index is exactly what the journal replays to,
 *     less the touches kept back (below) and what was never journaled.
 *   - Chores that rewrite or flush the journal (op_chores: touches due,
 *     a child's checkpoint put in place, a new one started) run only
 *     between operations, at op_done(): a checkpoint snapshots an index
 *     that every appended record is in.
 *   - A checkpoint fdatasyncs the pool before its records name any pool
 *     bytes; a sync is: note the last seq, fdatasync the pool, append a
 *     mark, fdatasync the journal; what the pool's quarantine holds is
 *     released only by the sync or checkpoint that covers it.
 *
 * Lock held in every function here.
 */
#include <errno.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store.h"

#define CHECKPOINT_RECORD (1u << 20)  /* payload size of checkpoint records */
#define TOUCH_BATCH 256               /* recency records kept back, at most */
#define TOUCH_DELAY_NS 1000000000     /* ... and for at most this long */

/* Has the journal outgrown its last checkpoint? */
static int journal_big(const struct tc_store *s)
{
	return s->jr.size > 2 * s->jr.base + s->journal_slack;
}

/* A failed journal write's errno as the caller should see it: a write cut
 * short by a full disk is ENOSPC (the journal answers a short write with
 * EIO).  Remembered for tc_store_journal_error(). */
static int journal_failed(struct tc_store *s, const struct tc_buf *b, int r)
{
	struct statvfs sv;
	if (r == -EIO && fstatvfs(s->jr.fd, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < b->len + 2 * TC_BLOCK)
		r = -ENOSPC;
	s->journal_err = r;
	return r;
}

/* Append one record (store_change() for a change of the index). */
int store_append(struct tc_store *s, struct tc_buf *b, uint64_t *seq)
{
	assert_locked(s);
	int r = tc_journal_append(&s->jr, b, seq);
	if (r)
		return journal_failed(s, b, r);
	s->journal_err = 0;
	if (journal_big(s))
		s->want_checkpoint = 1; /* at op_done(), between operations */
	return 0;
}

/* ---- touches ------------------------------------------------------------- */

/* Append the touches kept back, as one record.  Recency is best effort:
 * on failure they are dropped. */
static void touches_flush(struct tc_store *s)
{
	assert_locked(s);
	if (s->ntouches && !s->touches.err)
		store_append(s, &s->touches, NULL);
	s->touches.len = 0;
	s->touches.err = 0;
	s->ntouches = 0;
}

/*
 * An entry was used: it becomes the most recent, in memory at once (a
 * TOUCH op, applied).  The journal hears of it in batches (TOUCH_BATCH
 * touches, or the first one TOUCH_DELAY_NS old at op_done() or a
 * tc_store_tick(), or a sync or checkpoint) rather than with a write(2)
 * per open.  A kill -9 may so lose the last second or two of recency (the
 * LRU order and last_access of a few entries come back a little older),
 * never data: a touch changes nothing else.
 */
void store_touch(struct tc_store *s, struct tc_node *n)
{
	struct tc_node *e = tc_node_entry(n);
	struct tc_op op; /* tc_rec_op reads of a TOUCH these three alone */

	assert_locked(s);
	if (!e)
		return;
	op.type = TC_OP_TOUCH;
	op.id = e->id;
	op.last_access = now_ns();
	touch_entry(s, e, op.last_access); /* what apply_op does of it */
	if (!node_journaled(e))
		return;
	if (!s->ntouches)
		s->touches_since = op.last_access;
	tc_rec_op(&s->touches, &op);
	s->ntouches++;
	if (s->ntouches >= TOUCH_BATCH ||
	    op.last_access - s->touches_since >= TOUCH_DELAY_NS)
		touches_flush(s);
}

/* The touches kept back go at the start of @b, a record about to be
 * appended, so that the journal has them in the order they happened
 * relative to its change (replay rebuilds the LRU order exactly: an entry
 * a record adds goes to the young end, after the entries touched before
 * it), at no extra write.  touches_sent() once it is appended. */
void touches_lead(struct tc_store *s, struct tc_buf *b)
{
	assert_locked(s);
	if (s->ntouches && !s->touches.err)
		tc_buf_cat(b, &s->touches);
}

void touches_sent(struct tc_store *s)
{
	s->touches.len = 0;
	s->touches.err = 0;
	s->ntouches = 0;
}

/* ---- syncs --------------------------------------------------------------- */

/* Append a MARK: records up to @synced name durable pool bytes, records
 * up to the journal's durable_seq are on disk. */
static int append_mark(struct tc_store *s, uint64_t synced)
{
	struct tc_op op = { .type = TC_OP_MARK, .synced = synced,
			    .on_disk = s->jr.durable_seq };
	struct tc_buf b = { 0 };
	tc_rec_op(&b, &op);
	int r = store_append(s, &b, NULL);
	tc_buf_free(&b);
	return r;
}

/*
 * Make every committed tensor durable, then free what waits in the pool's
 * quarantine since before the sync began (journal.c, steps 2 and 3): note
 * the last seq, fdatasync the pool, append a mark, fdatasync the journal.
 * Called and returns with the lock held; with @may_unlock the lock is let
 * go for the pool's fdatasync (the only part that grows with what was
 * written).  Cost: two fdatasyncs.
 */
int sync_locked(struct tc_store *s, int may_unlock)
{
	uint64_t gen = s->sync_gen++, upto;
	int r;

	assert_locked(s);
	touches_flush(s);
	upto = s->jr.seq;
	if (may_unlock)
		unlock(s);
	r = fdatasync(s->pool.fd) < 0 ? -errno : 0;
	if (may_unlock)
		lock(s);
	if (r)
		return r;
	r = append_mark(s, upto);
	if (!r)
		r = tc_journal_sync(&s->jr);
	if (!r)
		tc_pool_release(&s->pool, gen, 1);
	return r;
}

/* The journal's part of that alone: what was freed before it by records
 * that nothing falls back to (evictions) becomes free.  One fdatasync,
 * under the lock. */
int sync_journal_locked(struct tc_store *s)
{
	assert_locked(s);
	uint64_t gen = s->sync_gen++;
	int r = tc_journal_sync(&s->jr);
	if (!r)
		tc_pool_release(&s->pool, gen, 0);
	return r;
}

/* ---- checkpoints --------------------------------------------------------- */

struct emit_ctx {
	struct tc_store *s;
	struct tc_journal *nj;
	struct tc_buf b;        /* the record being built */
	struct tc_buf framed;   /* records ready for one write */
	struct tc_op op;        /* the op being encoded */
	int err;
};

/* End the record being built; write the framed ones once they add up. */
static void emit_flush(struct emit_ctx *c, int force)
{
	if (!c->err && c->b.len)
		c->err = tc_journal_frame(c->nj, &c->b, &c->framed);
	c->b.len = 0;
	if (!c->err && c->framed.len && (force || c->framed.len >= CHECKPOINT_RECORD))
		c->err = tc_journal_write_framed(c->nj, &c->framed);
	if (force || c->framed.len >= CHECKPOINT_RECORD)
		c->framed.len = 0;
}

static void emit_node(struct emit_ctx *c, struct tc_node *n)
{
	if (n->kind == TC_KIND_TENSOR && !tc_nver(n))
		return; /* never committed: not durable yet */
	node_op(n, NULL, &c->op);
	tc_rec_op(&c->b, &c->op);
	if (n->kind == TC_KIND_TENSOR)
		tc_nver(n)->seq = c->nj->seq + 1;
	if (c->b.len >= CHECKPOINT_RECORD)
		emit_flush(c, 0);
	for (struct tc_node *ch = tc_child_head(n); ch; ch = tc_sib_next(ch))
		emit_node(c, ch);
}

static int emit_all(void *arg, struct tc_journal *nj)
{
	struct emit_ctx *c = arg;
	c->nj = nj;
	/* Entries oldest first: replay appends each to the lru's young end,
	 * which rebuilds the order.  One record per entry (more for a huge
	 * one), so a damaged record costs that entry alone. */
	struct tc_lru_iter it;
	tc_lru_iter_start(&c->s->lru, &it);
	for (struct tc_node *e; !c->err && (e = tc_lru_iter_next(&it));) {
		emit_node(c, e);
		emit_flush(c, 0);
	}
	c->op = (struct tc_op){ .type = TC_OP_STATS,
				.stats = { c->s->hits, c->s->misses,
					   c->s->evictions, c->s->evicted_bytes,
					   c->s->probes } };
	tc_rec_op(&c->b, &c->op);
	emit_flush(c, 1);
	if (!c->err)
		c->err = c->b.err;
	return c->err;
}

/* Rewrite the journal as a checkpoint of the index, here and now, with
 * @capacity in its header.  O(nodes). */
int checkpoint(struct tc_store *s, uint64_t capacity)
{
	struct emit_ctx c = { .s = s };
	uint64_t nodes = s->idx.entries + s->idx.groups + s->idx.tensors;
	uint64_t gen = s->sync_gen++;
	assert_locked(s);
	absent_settle(s, 0);
	int r = tc_journal_rewrite(&s->jr, capacity, nodes, emit_all, &c);
	tc_buf_free(&c.b);
	tc_buf_free(&c.framed);
	if (!r && s->jr.data_fd >= 0) /* the pool was synced, all marked */
		tc_pool_release(&s->pool, gen, 1);
	if (!r) { /* the checkpoint holds the recency they record */
		s->checkpoints++;
		s->touches.len = 0;
		s->touches.err = 0;
		s->ntouches = 0;
	}
	return r;
}

/* The same checkpoint, written by a child process from its copy of the
 * index (journal.c): the lock is held for the fork only.  Where fork
 * fails, written here and now. */
static int checkpoint_bg(struct tc_store *s)
{
	struct emit_ctx c = { .s = s }; /* used in the child only */
	uint64_t nodes = s->idx.entries + s->idx.groups + s->idx.tensors;
	uint64_t gen = s->sync_gen++; /* what its snapshot makes durable */
	absent_settle(s, 0);
	int r = tc_journal_rewrite_bg(&s->jr, nodes, emit_all, &c);
	if (!r)
		s->bg_gen = gen;
	return r && r != -EBUSY ? checkpoint(s, s->jr.capacity) : r;
}

/*
 * The chores between operations (op_done, tc_store_tick): the touches
 * kept back once the oldest is TOUCH_DELAY_NS old; a child's checkpoint
 * that has finished put in place; a new one started when the journal has
 * outgrown the last.  Only here does a checkpoint start: every record
 * appended is applied by now, so the snapshot holds them all.
 */
void op_chores(struct tc_store *s)
{
	assert_locked(s);
	if (s->ntouches && now_ns() - s->touches_since >= TOUCH_DELAY_NS)
		touches_flush(s);
	if (s->jr.bg_pid && tc_journal_bg_poll(&s->jr, 0) == 0) {
		s->checkpoints++; /* on failure the old log stays */
		tc_pool_release(&s->pool, s->bg_gen, 1);
	}
	if (s->want_checkpoint) {
		s->want_checkpoint = 0;
		/* (a checkpoint that just finished may have made it small) */
		if (!s->jr.bg_pid && journal_big(s))
			checkpoint_bg(s); /* on failure the old log stays */
	}
}
