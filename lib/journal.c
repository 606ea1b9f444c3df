/*
 * journal.c - the append-only, checksummed log that makes the index
 * durable, and its checkpoint.
 *
 * File layout (all integers little-endian):
 *
 *   +------------------------------- 64-byte header ----------------------+
 *   | magic "TCACHEJR" | version u32 | block u32 | capacity u64 |         |
 *   | created_ns u64 | nodes u64 | reserved 16 bytes (0) |              |
 *   | xxh3_64 of bytes 0..55 u64                                          |
 *   +---------------------------------------------------------------------+
 *
 *   nodes: how many nodes the checkpoint that began this file held, a hint
 *   for sizing tables before replay (never trusted for anything else).
 *   0 in journals written before it existed (bytes 32..39 were reserved,
 *   zero, and covered by the hash): both old and new readers open both,
 *   so the version stays 1.
 *   | record | record | record | ...                                     |
 *
 *   record = 32-byte header + payload:
 *     magic u32 "TCRC" | len u32 | seq u64 | xxh3_64(payload) u64 |
 *     xxh3_64(header bytes 0..15) u64
 *   payload = a sequence of ops (one record is one atomic change):
 *     NODE  u8 1, id u64, parent u64, kind u8, mode u32, uid u32, gid u32,
 *           atime i64, mtime i64, ctime i64, namelen u8, name
 *           entry:  ENTRY, doc_len u32, doc
 *           group:  doc_len u32, doc
 *           tensor: size u64, xxh3 u64, data_offset u64, dtype u32,
 *                   ndim u8, shape u64 * ndim, next u32,
 *                   (off u64, len u64) * next   -- pool extents
 *                   (version 4: or, for a tensor of at most
 *                   TC_PACK_MAX bytes, one run of TC_SLOT units inside
 *                   one block, pool.h)
 *                   then, when its parent is the root (a file that is
 *                   an entry): ENTRY
 *           ENTRY = created i64, last_access i64, pinned u8,
 *                   attrs_len u32, attrs (compact JSON),
 *                   link_len u8, link (a parent entry's name; 0: none)
 *           doc:    the user's meta.json keys (a compact JSON object)
 *     Version 1 (still read, rewritten as 3 at open) had no doc_len/doc
 *     and no tensors at the root; version 2 (the same) no link.
 *     DEL   u8 2, id u64                 -- the node and all below it
 *     TOUCH u8 3, id u64, when i64       -- an entry's last access
 *     STATS u8 4, hits, misses, evictions, evicted_bytes, probes (u64
 *           each).  Version 2 records, written before probes was
 *           counted, end after evicted_bytes: a STATS op always ended
 *           its record (a checkpoint's last), so a record that ends
 *           there has no probes (read as 0).
 *     MARK  u8 5, synced u64, on_disk u64 -- records with seq <= synced
 *                                           name durable pool bytes;
 *                                           those <= on_disk are
 *                                           durable themselves
 *
 * Replay reads records in order and applies only those whose two
 * checksums hold and whose seq is larger than the last applied one.  A
 * damaged header is skipped by scanning for the next valid header; a
 * damaged payload is skipped by its length.  Whatever follows the last
 * good record (a torn tail) is cut off, so new records follow good ones.
 * A record is decoded completely before any op of it is applied: a
 * malformed record is dropped whole, never half-applied.
 *
 * Write order and power loss.  kill -9 keeps everything written; a power
 * loss keeps what was fdatasync'd plus any subset of the rest, in any
 * order (a page cache writes back as it likes).  So:
 *   1. commit: the tensor's bytes are written into its pool extents
 *      (pwrite, or the pool mmap), then one record naming those extents
 *      and their xxh3 is appended with a single write(2).  The tensor is
 *      committed: it survives a kill -9.  After a power loss the record
 *      may be there without the bytes.
 *   2. sync (fsync of a tensor, tc_store_sync): note S, the last seq;
 *      fdatasync(pool): every record <= S now names durable bytes;
 *      append MARK(S); fdatasync(journal): the mark and every record
 *      before it are durable.  Replay trusts versions at or below the
 *      largest mark; the ones above it (the tail) are checked against
 *      their xxh3 at open, and one whose bytes did not survive falls back
 *      to the version it replaced, or is dropped as never written
 *      (tail.c).  So an unsynced tensor is absent or exact after a power
 *      loss, never EIO.
 *   3. reuse: extents freed by a record (a replaced version, an evicted
 *      or removed entry) stay in the pool's quarantine until a sync that
 *      started after that record has finished step 2: no durable record
 *      can name bytes that now belong to another tensor, and the replaced
 *      version is there to fall back to.
 *   4. checkpoint: fdatasync(pool) first, then the new file's records and
 *      a MARK covering them, fdatasync(journal.new), rename, fsync(dir):
 *      a checkpoint never makes durable a record whose bytes are not.
 *      The child's checkpoint fdatasyncs the pool before it writes its
 *      snapshot; the records it copies after the snapshot keep the marks
 *      they had.
 * Each fsync covers: fdatasync(pool) the bytes of every record appended
 * before it began; fdatasync(journal) every record and mark before it;
 * fsync(dir) the rename that put a checkpoint in place.

 * Checkpoint: a new file "journal.new" gets a header and records that
 * recreate the whole index (one record per entry, so damage to one record
 * costs one entry), is fdatasync'd, renamed over "journal", and the
 * directory fsync'd.  A crash before the rename leaves the old journal;
 * after it, the new one.  The store checkpoints when the journal grows past
 * twice its size after the previous checkpoint (plus a constant), so the
 * replay cost stays proportional to the live index and appends stay O(1)
 * amortized.
 *
 * Checkpoint in a child (tc_journal_rewrite_bg), so that the store's lock
 * is not held while the whole index is written:
 *   1. journal.new is created with its header; fork().  The child walks
 *      its copy of the index (as it was at the fork), writes records with
 *      seq S+1, S+2, ... (S: the last seq at the fork), fdatasyncs and
 *      exits 0.  The parent goes on appending to the journal, its seqs
 *      now starting at S + 2^32 + 1.
 *   2. The child then copies the records the parent appended since the
 *      fork (seqs past its own) from the journal to journal.new, whole
 *      and intact ones only, round after round while it finds many new
 *      ones; fdatasyncs; tells the parent through a pipe where it
 *      stopped and how long its snapshot is; exits 0.
 *   3. When the child has exited 0 (seen between operations or at a tick), the
 *      parent, under the lock, appends the journal's bytes from there on
 *      to journal.new, fdatasyncs it, renames it over "journal" and
 *      fsyncs the directory.
 * Replay of the new file: the index at the fork, then every change since,
 * in order: the index now.  A crash at any point before the rename leaves
 * the old journal, complete; after it, the new one, complete.  A failed
 * child leaves the old journal too.
 *
 * Locking: none here; the store's lock serializes every call.
 */
#include <endian.h>
#include <pthread.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "journal.h"

#define JHDR_MAGIC "TCACHEJR"
#define JREC_MAGIC 0x43524354u /* "TCRC" */
#define JNEW_FILE "journal.new"

struct jhdr {
	char magic[8];
	uint32_t version;
	uint32_t block;
	uint64_t capacity;
	uint64_t created_ns;
	uint64_t nodes;
	uint8_t reserved[16];
	uint64_t hash;
};
_Static_assert(sizeof(struct jhdr) == 64, "journal header is 64 bytes");

struct jrec {
	uint32_t magic;
	uint32_t len;
	uint64_t seq;
	uint64_t data_hash;
	uint64_t hdr_hash;
};
_Static_assert(sizeof(struct jrec) == 32, "record header is 32 bytes");

/* ---- payload encoding ---------------------------------------------------- */

void tc_buf_free(struct tc_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

static void put(struct tc_buf *b, const void *v, size_t n)
{
	if (b->err || !n)
		return;
	if (b->len + n > b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 256;
		while (ncap < b->len + n)
			ncap *= 2;
		uint8_t *np = realloc(b->p, ncap);
		if (!np) {
			b->err = -ENOMEM;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, v, n);
	b->len += n;
}

void tc_buf_cat(struct tc_buf *b, const struct tc_buf *ops)
{
	if (ops->err && !b->err)
		b->err = ops->err;
	put(b, ops->p, ops->len);
}

static void put8(struct tc_buf *b, uint8_t v) { put(b, &v, 1); }
static void put32(struct tc_buf *b, uint32_t v)
{
	v = htole32(v);
	put(b, &v, 4);
}
static void put64(struct tc_buf *b, uint64_t v)
{
	v = htole64(v);
	put(b, &v, 8);
}

/* What an entry has: a directory at the root, or a file there. */
static void put_entry(struct tc_buf *b, const struct tc_op *op)
{
	put64(b, (uint64_t)op->created);
	put64(b, (uint64_t)op->last_access);
	put8(b, (uint8_t)op->pinned);
	put32(b, op->attrs ? op->attrs_len : 0);
	put(b, op->attrs, op->attrs ? op->attrs_len : 0);
	put8(b, (uint8_t)(op->link ? op->link_len : 0));
	put(b, op->link, op->link ? op->link_len : 0);
}

static void put_doc(struct tc_buf *b, const struct tc_op *op)
{
	put32(b, op->doc ? op->doc_len : 0);
	put(b, op->doc, op->doc ? op->doc_len : 0);
}

void tc_rec_op(struct tc_buf *b, const struct tc_op *op)
{
	put8(b, (uint8_t)op->type);
	switch (op->type) {
	case TC_OP_NODE:
		break;
	case TC_OP_DEL:
		put64(b, op->id);
		return;
	case TC_OP_TOUCH:
		put64(b, op->id);
		put64(b, (uint64_t)op->last_access);
		return;
	case TC_OP_STATS:
		for (int i = 0; i < TC_NSTATS; i++)
			put64(b, op->stats[i]);
		return;
	case TC_OP_MARK:
		put64(b, op->synced);
		put64(b, op->on_disk);
		return;
	}
	size_t nl = strlen(op->name);
	put64(b, op->id);
	put64(b, op->parent);
	put8(b, (uint8_t)op->kind);
	put32(b, op->mode);
	put32(b, op->uid);
	put32(b, op->gid);
	put64(b, (uint64_t)op->atime);
	put64(b, (uint64_t)op->mtime);
	put64(b, (uint64_t)op->ctime);
	put8(b, (uint8_t)nl);
	put(b, op->name, nl);
	if (op->kind == TC_KIND_ENTRY) {
		put_entry(b, op);
		put_doc(b, op);
	} else if (op->kind == TC_KIND_GROUP) {
		put_doc(b, op);
	} else if (op->kind == TC_KIND_TENSOR) {
		put64(b, op->size);
		put64(b, op->xxh3);
		put64(b, op->data_offset);
		put32(b, (uint32_t)op->dtype);
		put8(b, (uint8_t)op->ndim);
		for (int i = 0; i < op->ndim; i++)
			put64(b, op->shape[i]);
		put32(b, op->nextents);
		for (uint32_t i = 0; i < op->nextents; i++) {
			struct tc_extent e;
			tc_op_extent(op, i, &e);
			put64(b, e.off);
			put64(b, e.len);
		}
		if (op->parent == TC_ROOT_ID)
			put_entry(b, op);
	}
}

/* ---- payload decoding (hostile input: every length is checked) ----------- */

static int get(struct tc_rd *r, void *v, size_t n)
{
	if (r->len - r->pos < n)
		return -EINVAL;
	memcpy(v, r->p + r->pos, n);
	r->pos += n;
	return 0;
}

#define GET8(r, v)                                                         \
	do {                                                               \
		uint8_t t_;                                                \
		if (get(r, &t_, 1))                                        \
			return -EINVAL;                                    \
		(v) = t_;                                                  \
	} while (0)
/* GET32, GET64: a little-endian integer of that many bits into @v */
#define GETLE(r, v, bits)                                                  \
	do {                                                               \
		uint##bits##_t t_;                                         \
		if (get(r, &t_, (bits) / 8))                               \
			return -EINVAL;                                    \
		(v) = le##bits##toh(t_);                                   \
	} while (0)
#define GET32(r, v) GETLE(r, v, 32)
#define GET64(r, v) GETLE(r, v, 64)

static int valid_name(const char *s, size_t n)
{
	if (n == 0 || n > TC_NAME_MAX || memchr(s, '/', n) || memchr(s, 0, n))
		return 0;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	return 1;
}

/* Is @r reading a journal of version 1 (no files at the root, no
 * documents)? */
static int old_format(const struct tc_rd *r)
{
	return r->version == 1;
}

/* Does @r's journal know parent links (version 3 on)? */
static int has_links(const struct tc_rd *r)
{
	return r->version == 0 || r->version >= 3;
}

/* May @r's journal hold packed tensors (version 4 on)? */
static int has_packed(const struct tc_rd *r)
{
	return r->version == 0 || r->version >= 4;
}

static int get_entry(struct tc_rd *r, struct tc_op *op)
{
	uint64_t u;
	uint8_t ll;

	GET64(r, u); op->created = (int64_t)u;
	GET64(r, u); op->last_access = (int64_t)u;
	GET8(r, op->pinned);
	GET32(r, op->attrs_len);
	if (op->pinned > 1 || r->len - r->pos < op->attrs_len)
		return -EINVAL;
	op->attrs = op->attrs_len ? (const char *)r->p + r->pos : NULL;
	r->pos += op->attrs_len;
	if (!has_links(r))
		return 0;
	GET8(r, ll);
	if (r->len - r->pos < ll ||
	    (ll && !valid_name((const char *)r->p + r->pos, ll)))
		return -EINVAL;
	op->link_len = ll;
	op->link = ll ? (const char *)r->p + r->pos : NULL;
	r->pos += ll;
	return 0;
}

static int get_doc(struct tc_rd *r, struct tc_op *op)
{
	if (old_format(r))
		return 0;
	GET32(r, op->doc_len);
	if (r->len - r->pos < op->doc_len)
		return -EINVAL;
	op->doc = op->doc_len ? (const char *)r->p + r->pos : NULL;
	r->pos += op->doc_len;
	return 0;
}

static int get_node(struct tc_rd *r, struct tc_op *op)
{
	uint64_t u;
	uint8_t nl;

	GET64(r, op->id);
	GET64(r, op->parent);
	GET8(r, op->kind);
	GET32(r, op->mode);
	GET32(r, op->uid);
	GET32(r, op->gid);
	GET64(r, u); op->atime = (int64_t)u;
	GET64(r, u); op->mtime = (int64_t)u;
	GET64(r, u); op->ctime = (int64_t)u;
	GET8(r, nl);
	if (r->len - r->pos < nl || !valid_name((const char *)r->p + r->pos, nl))
		return -EINVAL;
	memcpy(op->name, r->p + r->pos, nl);
	op->name[nl] = 0;
	r->pos += nl;
	if (op->id <= TC_ROOT_ID || op->parent < TC_ROOT_ID || op->id == op->parent)
		return -EINVAL;
	switch (op->kind) {
	case TC_KIND_ENTRY:
		return get_entry(r, op) ? -EINVAL : get_doc(r, op);
	case TC_KIND_GROUP:
		return get_doc(r, op);
	case TC_KIND_TENSOR: {
		uint64_t sum = 0;
		GET64(r, op->size);
		GET64(r, op->xxh3);
		GET64(r, op->data_offset);
		GET32(r, u); op->dtype = (int32_t)u;
		GET8(r, op->ndim);
		if (op->ndim > TC_MAX_DIMS || op->dtype < 0 ||
		    op->data_offset > op->size)
			return -EINVAL;
		for (int i = 0; i < op->ndim; i++)
			GET64(r, op->shape[i]);
		GET32(r, op->nextents);
		if ((r->len - r->pos) / 16 < op->nextents)
			return -EINVAL;
		op->ext = r->p + r->pos;
		r->pos += (size_t)op->nextents * 16;
		if (op->nextents == 1) {
			struct tc_extent e;
			tc_op_extent(op, 0, &e);
			if (tc_extent_packed(e) && has_packed(r)) {
				/* a packed tensor: its units of a shared block */
				if (!tc_extent_packed_ok(e) || !op->size ||
				    e.len != tc_round_slot(op->size))
					return -EINVAL;
				goto extents_ok;
			}
		}
		for (uint32_t i = 0; i < op->nextents; i++) {
			struct tc_extent e;
			tc_op_extent(op, i, &e);
			if (!e.len || e.off % TC_BLOCK || e.len % TC_BLOCK ||
			    e.off + e.len < e.off || sum + e.len < sum)
				return -EINVAL;
			sum += e.len;
		}
		if (op->size > UINT64_MAX - TC_BLOCK ||
		    sum != tc_round_block(op->size))
			return -EINVAL;
	extents_ok:
		return op->parent == TC_ROOT_ID && !old_format(r)
			       ? get_entry(r, op) : 0;
	}
	default:
		return -EINVAL;
	}
}

int tc_rec_next(struct tc_rd *r, struct tc_op *op)
{
	uint8_t type;
	uint64_t u;

	if (r->pos == r->len)
		return 0;
	/* Zero what an op may leave unset, but not all of name[] nor
	 * shape[] (only their used part is read). */
	memset(op, 0, offsetof(struct tc_op, name) + 1);
	memset(&op->created, 0, offsetof(struct tc_op, shape) -
				offsetof(struct tc_op, created));
	GET8(r, type);
	op->type = type;
	switch (type) {
	case TC_OP_NODE:
		return get_node(r, op) ? -EINVAL : 1;
	case TC_OP_DEL:
		GET64(r, op->id);
		return op->id > TC_ROOT_ID ? 1 : -EINVAL;
	case TC_OP_TOUCH:
		GET64(r, op->id);
		GET64(r, u);
		op->last_access = (int64_t)u;
		return op->id > TC_ROOT_ID ? 1 : -EINVAL;
	case TC_OP_STATS:
		for (int i = 0; i < 4; i++)
			GET64(r, op->stats[i]);
		if (r->pos < r->len) /* not a record from before probes */
			GET64(r, op->stats[4]);
		return 1;
	case TC_OP_MARK:
		GET64(r, op->synced);
		GET64(r, op->on_disk);
		return 1;
	default:
		return -EINVAL;
	}
}

void tc_op_extent(const struct tc_op *op, uint32_t i, struct tc_extent *e)
{
	uint64_t v[2];
	if (op->extv) {
		*e = op->extv[i];
		return;
	}
	memcpy(v, op->ext + (size_t)i * 16, 16);
	e->off = le64toh(v[0]);
	e->len = le64toh(v[1]);
}

/* ---- the file ------------------------------------------------------------ */

static uint64_t rec_hdr_hash(const struct jrec *h)
{
	return XXH3_64bits(h, offsetof(struct jrec, data_hash));
}

/* Is there a valid record header at @p (with @avail bytes after it)? */
static int rec_ok(const uint8_t *p, size_t avail, uint64_t last_seq,
		  struct jrec *out)
{
	struct jrec h;
	if (avail < sizeof(h))
		return 0;
	memcpy(&h, p, sizeof(h));
	if (le32toh(h.magic) != JREC_MAGIC ||
	    le64toh(h.hdr_hash) != XXH3_64bits(p, offsetof(struct jrec, data_hash)))
		return 0;
	out->magic = JREC_MAGIC;
	out->len = le32toh(h.len);
	out->seq = le64toh(h.seq);
	out->data_hash = le64toh(h.data_hash);
	return out->seq > last_seq && out->len <= TC_JREC_MAX;
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Give up journal.new, open as @fd. */
static void drop_new(int dirfd, int fd)
{
	close(fd);
	unlinkat(dirfd, JNEW_FILE, 0);
}

static void *close_fn(void *arg)
{
	close((int)(intptr_t)arg);
	return NULL;
}

/* Close @fd in a thread of its own: the last close of the replaced journal
 * frees its blocks and page cache (80 ms for 250 MB here), which the
 * caller, holding the store's lock, should not wait for.  Inline if no
 * thread can be had. */
static void close_later(int fd)
{
	pthread_attr_t a;
	pthread_t t;
	int r = pthread_attr_init(&a);
	if (!r) {
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		r = pthread_create(&t, &a, close_fn, (void *)(intptr_t)fd);
		pthread_attr_destroy(&a);
	}
	if (r)
		close(fd);
}

/* Put journal.new (@fd, complete) in place of the journal: fdatasync it,
 * rename it over "journal", fsync the directory; the old file is closed
 * with close_later().  Failing before the rename, it drops journal.new and
 * the old journal stays; once renamed, @fd is j->fd even if the directory
 * fsync fails (that only weakens power-loss durability of the rename,
 * which is reported).  The caller tells the two apart by j->fd. */
static int install(struct tc_journal *j, int fd)
{
	int r = fdatasync(fd) < 0 ? -errno : 0;
	if (!r && renameat(j->dirfd, JNEW_FILE, j->dirfd, TC_JOURNAL_FILE) < 0)
		r = -errno;
	if (r) {
		drop_new(j->dirfd, fd);
		return r;
	}
	r = fsync(j->dirfd) < 0 ? -errno : 0;
	if (j->fd >= 0)
		close_later(j->fd);
	j->fd = fd;
	return r;
}

/* Start a new journal file "journal.new" holding just a header. */
static int new_file(int dirfd, uint64_t capacity, uint64_t nodes, int *fdp)
{
	struct jhdr h;
	int fd, r;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, JHDR_MAGIC, 8);
	h.version = htole32(TC_JOURNAL_VERSION);
	h.block = htole32(TC_BLOCK);
	h.capacity = htole64(capacity);
	h.created_ns = htole64((uint64_t)now_ns());
	h.nodes = htole64(nodes);
	h.hash = htole64(XXH3_64bits(&h, offsetof(struct jhdr, hash)));
	/* a fresh inode: a stray child of a dead daemon writes to its own */
	unlinkat(dirfd, JNEW_FILE, 0);
	fd = openat(dirfd, JNEW_FILE, O_RDWR | O_CREAT | O_TRUNC | O_APPEND |
					  O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, &h, sizeof(h));
	if (r) {
		drop_new(dirfd, fd);
		return r;
	}
	*fdp = fd;
	return 0;
}

/* End a checkpoint's records with a mark covering them all (the pool was
 * fdatasync'd before the first of them was written).  @on_disk: the
 * first seq a record after it may have, less one: the mark's own seq for
 * a checkpoint written here, the parent's seq at the fork for a child's
 * (no record has a seq between the child's last and that). */
static int mark_all(struct tc_journal *nj, uint64_t on_disk)
{
	struct tc_buf b = { 0 }, f = { 0 };
	/* a checkpoint file becomes the journal only once install() has
	 * fdatasync'd all of it: its records are durable whenever used */
	struct tc_op op = { .type = TC_OP_MARK, .synced = nj->seq,
			    .on_disk = on_disk };
	int r;
	tc_rec_op(&b, &op);
	r = tc_journal_frame(nj, &b, &f);
	if (!r)
		r = tc_journal_write_framed(nj, &f);
	tc_buf_free(&b);
	tc_buf_free(&f);
	return r;
}

/* fdatasync the pool, if there is one: before any record naming its
 * bytes is made durable by a checkpoint. */
static int sync_data(const struct tc_journal *j)
{
	return j->data_fd >= 0 && fdatasync(j->data_fd) < 0 ? -errno : 0;
}

int tc_journal_rewrite(struct tc_journal *j, uint64_t capacity, uint64_t nodes,
		       int (*emit)(void *arg, struct tc_journal *nj),
		       void *arg)
{
	struct tc_journal nj;
	int r, fd = -1;

	tc_journal_bg_cancel(j);
	r = sync_data(j);
	if (r)
		return r;
	r = new_file(j->dirfd, capacity, nodes, &fd);
	if (r)
		return r;
	nj = (struct tc_journal){ .dirfd = j->dirfd, .fd = fd,
				  .size = sizeof(struct jhdr), .seq = j->seq,
				  .capacity = capacity, .data_fd = -1 };
	r = emit ? emit(arg, &nj) : 0;
	if (!r && j->data_fd >= 0)
		r = mark_all(&nj, nj.seq + 1);
	if (r) {
		drop_new(j->dirfd, fd);
		return r;
	}
	r = install(j, fd);
	if (j->fd != fd)
		return r; /* not in place: the old journal stays */
	j->size = nj.size;
	j->seq = j->durable_seq = nj.seq;
	j->base = nj.size;
	j->capacity = capacity;
	j->version = TC_JOURNAL_VERSION;
	return r;
}

/* ---- checkpoint in a child process --------------------------------------- */

/* Records the child writes take sequence numbers from j->seq + 1 on; the
 * parent's own appends meanwhile jump past them by this much, so the tail
 * copied behind the child's records still counts upwards. */
#define BG_SEQ_GAP (1ull << 32)
#define BG_READ (16u << 20)      /* the child reads the tail in such pieces */
#define BG_LEFT (64u << 10)      /* ... until less than this was new */

/* Copy whole, intact records of journal @from, starting at byte *@at, to
 * the end of @to, for as long as the file keeps having new ones; *@at is
 * then where copying stopped.  The parent may be appending meanwhile: a
 * record read half-written fails its checksums and is left for later.  In
 * the child. */
static int catch_up(int from, int to, uint64_t *at, uint64_t last_seq)
{
	uint8_t *buf = malloc(BG_READ);
	size_t got;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	do {
		ssize_t n = pread(from, buf, BG_READ, (off_t)*at);
		if (n < 0) {
			r = errno == EINTR ? 0 : -errno;
			got = 1;
			continue;
		}
		size_t pos = 0;
		struct jrec h;
		while (rec_ok(buf + pos, (size_t)n - pos, last_seq, &h) &&
		       (size_t)n - pos - sizeof(h) >= h.len &&
		       XXH3_64bits(buf + pos + sizeof(h), h.len) == h.data_hash) {
			pos += sizeof(h) + h.len;
			last_seq = h.seq;
		}
		r = write_all(to, buf, pos);
		*at += r ? 0 : pos;
		got = pos;
	} while (!r && got >= BG_LEFT);
	free(buf);
	return r;
}

int tc_journal_rewrite_bg(struct tc_journal *j, uint64_t nodes,
			  int (*emit)(void *arg, struct tc_journal *nj),
			  void *arg)
{
	pid_t parent = getpid(), pid;
	int fd, r, pfd[2];

	if (j->bg_pid)
		return -EBUSY;
	if (j->version != TC_JOURNAL_VERSION)
		return -EPROTO; /* the child copies records: same format only */
	if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	r = new_file(j->dirfd, j->capacity, nodes, &fd);
	if (r) {
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		drop_new(j->dirfd, fd);
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	if (pid == 0) {
		/* The child: memory as it was, journal.new, the journal (read
		 * only) and the pipe, nothing else.  It must not outlive the
		 * daemon (a new one could be writing its own journal.new by
		 * then): it dies with the thread that forked it, and holds
		 * neither /dev/fuse nor the store's lock. */
		struct tc_journal nj = { .dirfd = -1, .fd = fd,
					 .size = sizeof(struct jhdr),
					 .seq = j->seq, .capacity = j->capacity,
					 .data_fd = -1 };
		int keep[4] = { j->fd, fd, pfd[1], j->data_fd }, lo = 3;
		int nkeep = j->data_fd >= 0 ? 4 : 3;
		uint64_t at = j->size;
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(1);
		for (int i = 0; i < nkeep; i++) /* sort them */
			for (int k = i + 1; k < nkeep; k++)
				if (keep[k] < keep[i]) {
					int t = keep[i];
					keep[i] = keep[k];
					keep[k] = t;
				}
		for (int i = 0; i < nkeep; lo = keep[i++] + 1)
			if (keep[i] > lo)
				syscall(SYS_close_range, lo, keep[i] - 1, 0);
		syscall(SYS_close_range, lo, ~0U, 0);
		/* every version in this copy of the index was written before
		 * the fork: after this fdatasync the snapshot is durable */
		r = sync_data(j);
		if (!r)
			r = emit(arg, &nj);
		if (!r && j->data_fd >= 0)
			r = mark_all(&nj, j->seq + BG_SEQ_GAP);
		if (!r && nj.seq - j->seq >= BG_SEQ_GAP)
			r = -EOVERFLOW;
		/* what the parent appended meanwhile: most of it copied here,
		 * the rest by the parent under its lock */
		if (!r)
			r = catch_up(j->fd, fd, &at, j->seq + BG_SEQ_GAP);
		if (!r && fdatasync(fd) < 0)
			r = -errno;
		uint64_t said[2] = { at, nj.size }; /* nj.size: the snapshot */
		if (!r && write(pfd[1], said, sizeof(said)) != sizeof(said))
			r = -EIO;
		_exit(r ? 1 : 0);
	}
	close(pfd[1]);
	j->bg_pid = pid;
	j->bg_fd = fd;
	j->bg_pipe = pfd[0];
	j->bg_from = j->size;
	j->seq += BG_SEQ_GAP;
	return 0;
}

/* The child's journal.new (@fd) is complete up to byte @at of this
 * journal: append the rest and install() it; on failure drop it.  @snap:
 * bytes of the new file that are the snapshot (the next checkpoint is due
 * once the journal has outgrown twice that).  Under the store's lock, so
 * nothing is appended meanwhile.  Cost: what the parent appended since
 * the child's last look, one fdatasync of it, a rename and a directory
 * fsync. */
static int bg_switch(struct tc_journal *j, int fd, uint64_t at, uint64_t snap)
{
	static const size_t chunk = 1u << 20;
	uint8_t *buf = NULL;
	struct stat st;
	int r = 0;

	if (at < j->bg_from || at > j->size)
		r = -EIO;
	else if (at < j->size && !(buf = malloc(chunk)))
		r = -ENOMEM;
	while (!r && at < j->size) {
		size_t n = j->size - at < chunk ? (size_t)(j->size - at) : chunk;
		ssize_t got = pread(j->fd, buf, n, (off_t)at);
		if (got < 0 && errno == EINTR)
			continue;
		r = got < 0 ? -errno : got == 0 ? -EIO
					   : write_all(fd, buf, (size_t)got);
		at += got > 0 ? (uint64_t)got : 0;
	}
	free(buf);
	if (!r && fstat(fd, &st) < 0)
		r = -errno;
	if (r) {
		drop_new(j->dirfd, fd);
		return r;
	}
	r = install(j, fd);
	if (j->fd == fd) {
		j->durable_seq = j->seq;
		j->size = (uint64_t)st.st_size;
		j->base = snap >= sizeof(struct jhdr) && snap <= j->size
				  ? snap : j->size;
	}
	return r;
}

int tc_journal_bg_poll(struct tc_journal *j, int wait)
{
	uint64_t said[2] = { 0, 0 }; /* where the child stopped; its snapshot */
	int r, fd = j->bg_fd;
	pid_t w;

	if (!j->bg_pid)
		return 0;
	do
		w = waitpid(j->bg_pid, NULL, wait ? 0 : WNOHANG);
	while (w < 0 && errno == EINTR);
	if (w == 0)
		return 1;
	/* Gone (w < 0: reaped already, SIGCHLD ignored).  Its last act was
	 * to write where it stopped: those 16 bytes, and nothing else, say
	 * that it finished. */
	j->bg_pid = 0;
	j->bg_fd = -1;
	r = read(j->bg_pipe, said, sizeof(said)) == sizeof(said) ? 0 : -EIO;
	close(j->bg_pipe);
	if (r)
		drop_new(j->dirfd, fd);
	else
		r = bg_switch(j, fd, said[0], said[1]);
	if (j->fd != fd)
		j->base = j->size; /* next try once the journal has doubled */
	return r;
}

void tc_journal_bg_cancel(struct tc_journal *j)
{
	if (!j->bg_pid)
		return;
	kill(j->bg_pid, SIGKILL);
	while (waitpid(j->bg_pid, NULL, 0) < 0 && errno == EINTR)
		;
	j->bg_pid = 0;
	close(j->bg_pipe);
	drop_new(j->dirfd, j->bg_fd);
	j->bg_fd = -1;
}

/* Count a dropped record; @after: the last intact seq before it, or
 * TC_DROP_DAMAGE for one that no power loss explains. */
/* The seq that every record after record @seq (@payload, @len) in the
 * file exceeds: @seq, or for a lone MARK its on_disk if larger (the mark
 * that ends a child's checkpoint: the parent's records copied behind it
 * count from past a gap, see BG_SEQ_GAP). */
static uint64_t seq_floor(uint64_t seq, const uint8_t *payload, size_t len)
{
	struct tc_rd rd = { payload, len, 0, 0 };
	struct tc_op op;
	if (len && payload[0] == TC_OP_MARK && tc_rec_next(&rd, &op) == 1 &&
	    rd.pos == len && op.on_disk > seq)
		return op.on_disk;
	return seq;
}

static void drop(struct tc_scan *sc, uint64_t after)
{
	if (sc->dropped < sizeof(sc->drop_after) / sizeof(sc->drop_after[0]))
		sc->drop_after[sc->dropped] = after;
	sc->dropped++;
}

int tc_journal_scan(const uint8_t *m, size_t size, tc_replay_fn fn,
		    void *arg, struct tc_scan *out)
{
	struct jhdr h;
	size_t pos = sizeof(struct jhdr), good_end = pos;
	uint64_t last = 0, floor = 0;
	int in_bad = 0;
	struct tc_scan sc = { 0 };

	if (size < sizeof(h))
		return -EPROTO;
	memcpy(&h, m, sizeof(h));
	if (memcmp(h.magic, JHDR_MAGIC, 8) ||
	    le64toh(h.hash) != XXH3_64bits(&h, offsetof(struct jhdr, hash)) ||
	    le32toh(h.version) < 1 || le32toh(h.version) > TC_JOURNAL_VERSION ||
	    le32toh(h.block) != TC_BLOCK || !le64toh(h.capacity) ||
	    le64toh(h.capacity) % TC_BLOCK)
		return -EPROTO;
	while (pos < size) {
		struct jrec r;
		if (!rec_ok(m + pos, size - pos, last, &r)) {
			/* Resync: the next valid header, if any. */
			if (!in_bad)
				drop(&sc, floor);
			in_bad = 1;
			const uint8_t *q = memmem(m + pos + 1, size - pos - 1,
						  "TCRC", 4);
			if (!q)
				break;
			pos = (size_t)(q - m);
			continue;
		}
		if (size - pos - sizeof(r) < r.len) {
			drop(&sc, floor); /* torn: its bytes run past the end */
			break;
		}
		const uint8_t *payload = m + pos + sizeof(r);
		in_bad = 0;
		if (XXH3_64bits(payload, r.len) != r.data_hash) {
			drop(&sc, floor);
			pos += sizeof(r) + r.len;
			continue;
		}
		int rc = fn(arg, le32toh(h.version), r.seq, payload, r.len);
		if (rc < 0)
			return rc;
		if (rc > 0) /* malformed inside (its sums hold): dropped whole */
			drop(&sc, TC_DROP_DAMAGE);
		last = r.seq;
		floor = seq_floor(r.seq, payload, r.len);
		pos += sizeof(r) + r.len;
		good_end = pos;
	}
	sc.capacity = le64toh(h.capacity);
	sc.version = le32toh(h.version);
	sc.good_end = good_end;
	sc.last_seq = last;
	*out = sc;
	return 0;
}

static int journal_open(struct tc_journal *j, int dirfd, uint64_t *capacity,
			tc_replay_fn fn, void *arg, uint64_t *dropped,
			int rdonly)
{
	struct stat st;
	struct tc_scan sc;
	int fd, r;
	void *m;

	*j = (struct tc_journal){ .dirfd = dirfd, .fd = -1, .data_fd = -1 };
	if (!rdonly)
		unlinkat(dirfd, JNEW_FILE, 0); /* an unfinished checkpoint */
	fd = openat(dirfd, TC_JOURNAL_FILE,
		    (rdonly ? O_RDONLY : O_RDWR | O_APPEND) | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && !rdonly)
		return tc_journal_rewrite(j, *capacity, 0, NULL, NULL);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if ((size_t)st.st_size < sizeof(struct jhdr)) {
		r = -EPROTO;
		goto fail;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	r = tc_journal_scan(m, (size_t)st.st_size, fn, arg, &sc);
	munmap(m, (size_t)st.st_size);
	if (r)
		goto fail;
	/* Cut a torn or damaged tail so new records follow good ones. */
	if (!rdonly && sc.good_end < (uint64_t)st.st_size &&
	    ftruncate(fd, (off_t)sc.good_end) < 0) {
		r = -errno;
		goto fail;
	}
	j->fd = fd;
	j->size = j->base = sc.good_end;
	j->seq = sc.last_seq;
	j->capacity = sc.capacity;
	j->version = sc.version;
	*capacity = sc.capacity;
	*dropped += sc.dropped;
	j->ndrops = sc.dropped < 16 ? (uint32_t)sc.dropped : 16;
	memcpy(j->drop_after, sc.drop_after, sizeof(j->drop_after));
	return 0;
fail:
	close(fd);
	return r;
}

int tc_journal_open(struct tc_journal *j, int dirfd, uint64_t *capacity,
		    tc_replay_fn fn, void *arg, uint64_t *dropped)
{
	return journal_open(j, dirfd, capacity, fn, arg, dropped, 0);
}

int tc_journal_open_rdonly(struct tc_journal *j, int dirfd, uint64_t *capacity,
			   tc_replay_fn fn, void *arg, uint64_t *dropped)
{
	return journal_open(j, dirfd, capacity, fn, arg, dropped, 1);
}

/* Smallest NODE op (a group with a 1-byte name): no journal of @size
 * bytes can hold more than size / JNODE_MIN nodes. */
#define JNODE_MIN 56

uint64_t tc_journal_hint(int dirfd)
{
	struct jhdr h;
	struct stat st;
	uint64_t n = 0;
	int fd = openat(dirfd, TC_JOURNAL_FILE, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0 && pread(fd, &h, sizeof(h), 0) == sizeof(h) &&
	    !memcmp(h.magic, JHDR_MAGIC, 8) &&
	    le64toh(h.hash) == XXH3_64bits(&h, offsetof(struct jhdr, hash))) {
		uint64_t size = (uint64_t)st.st_size;
		n = le64toh(h.nodes);
		if (!n)
			n = size / 128; /* an old journal: about a node a 128 bytes */
		if (n > size / JNODE_MIN)
			n = size / JNODE_MIN;
	}
	close(fd);
	return n;
}

/* The header of the next record, for payload @b. */
static int rec_header(const struct tc_journal *j, const struct tc_buf *b,
		      struct jrec *h)
{
	if (b->err)
		return b->err;
	if (b->len > TC_JREC_MAX)
		return -EFBIG;
	h->magic = htole32(JREC_MAGIC);
	h->len = htole32((uint32_t)b->len);
	h->seq = htole64(j->seq + 1);
	h->data_hash = htole64(XXH3_64bits(b->p, b->len));
	h->hdr_hash = htole64(rec_hdr_hash(h));
	return 0;
}

int tc_journal_append(struct tc_journal *j, const struct tc_buf *b,
		      uint64_t *seq)
{
	struct jrec h;
	struct iovec iov[2];
	ssize_t w;
	int r = rec_header(j, b, &h);

	if (r)
		return r;
	iov[0] = (struct iovec){ &h, sizeof(h) };
	iov[1] = (struct iovec){ b->p, b->len };
	do
		w = writev(j->fd, iov, b->len ? 2 : 1);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)(sizeof(h) + b->len)) {
		r = w < 0 ? -errno : -EIO;
		/* Cut back whatever part reached the file. */
		if (ftruncate(j->fd, (off_t)j->size) < 0) {
			/* replay will drop the partial record anyway */
		}
		return r;
	}
	j->seq++;
	j->size += (uint64_t)w;
	if (seq)
		*seq = j->seq;
	return 0;
}

int tc_journal_frame(struct tc_journal *j, const struct tc_buf *b,
		     struct tc_buf *out)
{
	struct jrec h;
	int r = rec_header(j, b, &h);

	if (r)
		return r;
	put(out, &h, sizeof(h));
	put(out, b->p, b->len);
	if (out->err)
		return out->err;
	j->seq++;
	return 0;
}

int tc_journal_write_framed(struct tc_journal *j, const struct tc_buf *f)
{
	if (f->err)
		return f->err;
	int r = write_all(j->fd, f->p, f->len);
	if (r) {
		if (ftruncate(j->fd, (off_t)j->size) < 0) {
			/* replay drops a partial record anyway */
		}
		return r;
	}
	j->size += f->len;
	return 0;
}

int tc_journal_sync(struct tc_journal *j)
{
	uint64_t seq = j->seq;
	if (fdatasync(j->fd) < 0)
		return -errno;
	j->durable_seq = seq;
	return 0;
}

void tc_journal_close(struct tc_journal *j)
{
	if (j)
		tc_journal_bg_cancel(j);
	if (j && j->fd >= 0) {
		close(j->fd);
		j->fd = -1;
	}
}
