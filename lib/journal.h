/*
 * journal.h - the durable record of the index: an append-only log of
 * checksummed records, replayed at open, rewritten as a checkpoint
 * (internal to libtcache).  The format is documented in journal.c.
 */
#ifndef TC_JOURNAL_H
#define TC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pool.h"
#include "tcache.h"

#define TC_JOURNAL_FILE "journal"
/* 2: a tensor at the root (an entry) carries the entry fields; entries
 * and groups carry the user's meta.json keys.  3: an entry carries its
 * parent link.  4: a tensor of at most TC_PACK_MAX bytes may lie in a
 * shared block (one extent of whole units, pool.h).  Older journals are
 * still read (they hold none of what came after them) and rewritten as
 * the current version at open; an older tcachefs refuses a newer one. */
#define TC_JOURNAL_VERSION 4u
#define TC_JREC_MAX (64u << 20) /* largest record payload */

struct tc_journal {
	int dirfd;           /* the store directory (borrowed) */
	int fd;              /* the journal file, O_RDWR|O_APPEND */
	uint64_t size;       /* bytes in the file */
	uint64_t seq;        /* sequence number of the last record */
	uint64_t base;       /* size right after the last checkpoint */
	uint64_t capacity;   /* pool bytes, from the header */
	int data_fd;         /* the pool (borrowed), or -1: fdatasync'd before
	                        a checkpoint's records become durable */
	uint64_t durable_seq; /* records up to this seq are on disk: an
	                        fdatasync of them returned */
	/* what replay dropped, for telling holes a power loss leaves from
	   damage (see struct tc_scan) */
	uint64_t drop_after[16];
	uint32_t ndrops;
	/* a checkpoint being written by a child process (0: none) */
	pid_t bg_pid;
	int bg_fd;           /* its journal.new */
	int bg_pipe;         /* it writes there how far it copied this file */
	uint64_t bg_from;    /* size of this file when it forked */
	uint32_t version;    /* of the file's format (TC_JOURNAL_VERSION once
	                        rewritten) */
};

/* ---- building a record's payload ----------------------------------------- */

struct tc_buf {
	uint8_t *p;
	size_t len, cap;
	int err;             /* -ENOMEM once any put failed */
};
void tc_buf_free(struct tc_buf *b);
/* Append the ops encoded in @ops to @b (its error too). */
void tc_buf_cat(struct tc_buf *b, const struct tc_buf *ops);

/* One operation of a record. */
enum tc_op_type {
	TC_OP_NODE = 1,   /* create or replace a node (a tensor with its
	                     committed version) */
	TC_OP_DEL = 2,    /* remove a node and everything below it */
	TC_OP_TOUCH = 3,  /* an entry was used */
	TC_OP_STATS = 4,  /* counters */
	TC_OP_MARK = 5,   /* records up to a seq name durable pool bytes;
	                     records up to another seq are on disk */
};

#define TC_NSTATS 5       /* the counters a STATS op carries */

/*
 * One op of a record: the one type that both encodes (tc_rec_op) and
 * decodes (tc_rec_next), so a field cannot be written and read back
 * differently.  Which fields an op uses depends on its type and, for a
 * NODE, its kind; tc_rec_next zeroes the rest.
 */
struct tc_op {
	int type;                        /* enum tc_op_type */
	uint64_t id;                     /* the node (NODE, DEL, TOUCH) */
	/* NODE: every kind */
	uint64_t parent;
	int kind;                        /* enum tc_kind, never the root */
	uint32_t mode, uid, gid;
	int64_t atime, mtime, ctime;
	char name[TC_NAME_MAX + 1];
	/* NODE of an entry, a directory or a file at the root (also TOUCH's
	 * time: last_access) */
	int64_t created, last_access;
	int pinned;
	const char *attrs;               /* compact JSON, not NUL-terminated;
	                                    NULL if none */
	uint32_t attrs_len;
	const char *link;                /* the parent entry's name, not
	                                    NUL-terminated; NULL if none */
	uint32_t link_len;
	/* NODE of an entry or a group: the user's meta.json keys */
	const char *doc;                 /* a compact JSON object, not
	                                    NUL-terminated; NULL if none */
	uint32_t doc_len;
	/* NODE of a tensor: its committed version */
	uint64_t size, xxh3, data_offset;
	int32_t dtype;
	int32_t ndim;
	uint32_t nextents;               /* extents; read with tc_op_extent */
	const uint8_t *ext;              /* decoded: as the payload holds them */
	const struct tc_extent *extv;    /* to encode: as a version holds them */
	/* STATS: hits, misses, evictions, evicted_bytes, probes (0 from a
	 * record written before probes were counted) */
	uint64_t stats[TC_NSTATS];
	/* MARK: records up to @synced name durable pool bytes; records up
	 * to @on_disk are themselves on disk */
	uint64_t synced, on_disk;
	/* NODE of a tensor (last: tc_rec_next does not clear it) */
	uint64_t shape[TC_MAX_DIMS];
};

/* Append @op to @b (any type).  A NODE must be one that tc_rec_next
 * accepts (a valid name, extents adding up to the size). */
void tc_rec_op(struct tc_buf *b, const struct tc_op *op);

struct tc_rd {
	const uint8_t *p;
	size_t len, pos;
	uint32_t version;    /* of the journal it is from; 0: the current */
};

/* Decode the next op.  1: *@op filled; 0: end of payload; -EINVAL: the
 * payload is malformed (lengths, names, kinds, dims, alignment). */
int tc_rec_next(struct tc_rd *rd, struct tc_op *op);
void tc_op_extent(const struct tc_op *op, uint32_t i, struct tc_extent *e);

/* ---- the file ------------------------------------------------------------ */

/* Called for each intact record at replay, with the format @version of
 * the file (decode with a tc_rd of it); a negative return aborts the open
 * with that error, a positive one counts the record as dropped. */
typedef int (*tc_replay_fn)(void *arg, uint32_t version, uint64_t seq,
			    const uint8_t *payload, size_t len);

struct tc_scan {
	uint64_t capacity;   /* from the header */
	uint32_t version;    /* from the header */
	uint64_t good_end;   /* end of the last intact record */
	uint64_t last_seq;   /* its sequence number */
	uint64_t dropped;    /* damaged or malformed records skipped */
	/* For the first 16 of them, a seq that the dropped record's
	 * exceeds: the last intact record's before it (0: none), or the
	 * on_disk of a mark ending a child's checkpoint, if that is the
	 * last (the seqs after it jump).  A power loss leaves holes (pages
	 * never written) only past what an fdatasync covered: a drop at or
	 * past the largest MARK on_disk is such a hole, one before it is
	 * damage. */
	uint64_t drop_after[16];
};
#define TC_DROP_DAMAGE UINT64_MAX /* drop_after of a malformed record */

/* Replay a whole journal image (header and records) from memory: what
 * tc_journal_open does after mapping the file.  -EPROTO for a bad header;
 * a negative return of @fn aborts with it. */
int tc_journal_scan(const uint8_t *m, size_t size, tc_replay_fn fn,
		    void *arg, struct tc_scan *out);

/*
 * Open the journal in @dirfd, creating it (with capacity *@capacity) when
 * missing, and replay it through @fn.  Damaged records are skipped and
 * counted in *@dropped; a torn tail is cut off.  *@capacity is set to the
 * capacity in the header.  -EPROTO for a file that is not a journal of a
 * version we know.
 */
int tc_journal_open(struct tc_journal *j, int dirfd, uint64_t *capacity,
		    tc_replay_fn fn, void *arg, uint64_t *dropped);

/* Replay only: the file is opened read-only and left exactly as it is (no
 * creation, no cut tail); the journal cannot be appended to.  -ENOENT when
 * there is no journal. */
int tc_journal_open_rdonly(struct tc_journal *j, int dirfd, uint64_t *capacity,
			   tc_replay_fn fn, void *arg, uint64_t *dropped);

/* Append one record (one write(2); on failure the file is cut back and
 * nothing was appended).  *@seq gets its sequence number if non-NULL. */
int tc_journal_append(struct tc_journal *j, const struct tc_buf *payload,
		      uint64_t *seq);

/* For a checkpoint's many small records: frame @payload as the next record
 * (taking its sequence number) at the end of @out, to be written later
 * with one tc_journal_write_framed().  Nothing reaches the file here. */
int tc_journal_frame(struct tc_journal *j, const struct tc_buf *payload,
		     struct tc_buf *out);
/* Write framed records (one write(2) loop); on failure the file is cut
 * back.  Only for a journal nobody else reads yet (a checkpoint's). */
int tc_journal_write_framed(struct tc_journal *j, const struct tc_buf *framed);

/* How many nodes the journal in @dirfd will replay into, about: the
 * count its checkpoint wrote in the header, else an estimate from its
 * size; never more than its size could hold.  0 when there is none.  For
 * sizing tables before the replay; cost one open and one pread. */
uint64_t tc_journal_hint(int dirfd);

/* fdatasync the journal; then durable_seq is the last seq. */
int tc_journal_sync(struct tc_journal *j);

/*
 * Checkpoint: fdatasync the pool (j->data_fd, when set), write a new
 * journal (header with @capacity and the @nodes hint, then whatever @emit
 * appends to it with tc_journal_append, then a mark covering all of it
 * when the pool was synced), make it durable, and atomically put it in
 * place of the old one (rename, then fsync of the directory).  On failure the old journal stays and is still
 * appended to.  A child's checkpoint (below) that is still running is
 * cancelled first.
 */
int tc_journal_rewrite(struct tc_journal *j, uint64_t capacity, uint64_t nodes,
		       int (*emit)(void *arg, struct tc_journal *nj),
		       void *arg);

/*
 * The same checkpoint, written by a child process so that the caller (who
 * holds the store's lock) pays only the fork: O(1) in the index, about
 * 2 ms per 100 MiB of heap.  The child sees the index as it was at the
 * fork; records appended meanwhile go on to this journal as always; the
 * child copies most of them behind its own, tc_journal_bg_poll() the
 * rest before it renames.  The child fdatasyncs the pool before it
 * writes the snapshot, and marks the snapshot durable.
 * @emit runs in the child only: it may read the caller's memory but what
 * it changes there stays in the child.  -EBUSY when one already runs; a
 * negative errno when fork failed (nothing changed).  The child closes
 * every other descriptor and dies with the thread that forked it.
 */
int tc_journal_rewrite_bg(struct tc_journal *j, uint64_t nodes,
			  int (*emit)(void *arg, struct tc_journal *nj),
			  void *arg);

/*
 * Has the child finished?  With @wait, wait for it.  1: it still runs.
 * 0: none runs (any that finished is now the journal).  Negative: it or
 * the switch failed; the old journal stays and the next try comes only
 * once the journal has doubled again.
 */
int tc_journal_bg_poll(struct tc_journal *j, int wait);

/* Kill a running child and forget its file.  No-op when none runs. */
void tc_journal_bg_cancel(struct tc_journal *j);

/* Cancels a running child first. */
void tc_journal_close(struct tc_journal *j);

#endif
