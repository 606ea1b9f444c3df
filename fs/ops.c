/*
 * ops.c - the FUSE low-level handlers of tcachefs.
 *
 * Each request has a handler tcfs_<op>(req, ...) that calls a worker
 * op_<op>(...) returning 0 or a negative errno, then replies: errors go
 * through reply_err(), the one place where lib errors become FUSE errors.
 * The workers only translate: every decision about storage is libtcache's.
 *
 * What the kernel sees:
 *   ino                   node id (root 1); generated file of dir D:
 *                         D | TCFS_META_BIT
 *   entry, group          directories; tensor: regular file
 *   meta.json, stats file generated files: regular files found by name,
 *                         never listed (generated.c)
 *   .safetensors          an entry's view: E | TCFS_META_BIT |
 *                         TCFS_VIEW_BIT, found by name, never listed,
 *                         read-only (stview.c; its reads are here)
 *
 * Generated files are generated.c's alone.  A request that concerns one
 * is handed to tcfs_gen_<op> before anything else is done for it here but
 * the checks every file shares (a name's length, an offset, a handle's
 * access mode): by ino (TCFS_META_BIT), by handle (H_META) or by
 * name (tcfs_gen_<op> answers TCFS_GEN_PASS for a name that is no
 * generated file's, and ENOTDIR for a directory that is one).  mkdir,
 * create and opendir need nothing more of generated.c than that ENOTDIR
 * and answer it here, as rename does for its directories (before its
 * flags, its names after them).  The views go to stview.c the same way,
 * just before (tcfs_is_view, H_VIEW, tcfs_view_named).  The rest of this
 * file is tensors and directories.
 *
 * File handles (fi->fh): struct tcfs_handle (tcfs.h), for a tensor (a
 * tc_file), a generated file (generated.c) or a view (a tc_view).  Directory handles:
 * struct tcfs_dir, a snapshot of the children's ids taken by opendir
 * (tc_list); readdir offsets index the listing ".", "..", children....
 *
 * Threads: handlers run on the session loop's worker threads, any number at
 * once; libtcache is thread-safe.  Locks here:
 *   fs->handles_lock      the list of open handles (shutdown closes them)
 * No lib call is made while it is held, and nothing else is locked under
 * it here (generated.c takes a handle's lock under it: see there).
 * Entry notices (notify_delete) are never sent from here (see notify.c),
 * only notify_inval_inode (only spinlocks in the kernel: safe from a
 * request thread).
 */
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>

#include "remote.h"
#include "tcfs.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define READ_SPANS 32          /* spans per read reply before falling back */
#define SETTLE_MS 2000         /* longest wait for eviction notices */

/* The pins of one TC_BATCH_PIN call: read handles, linked into
 * fs->handles like any open file (so an unmount closes them too). */
struct tcfs_pins {
	uint64_t token;
	uint32_t n;
	struct tcfs_handle **h;
};

struct tcfs_dir {
	enum hkind kind;   /* H_DIR */
	uint64_t ino, parent;
	uint64_t *ids;     /* tc_list snapshot, taken at the first readdir */
	size_t n;
	bool listed;
	pthread_mutex_t lock;      /* pins, staged, their counts, next_token */
	struct tcfs_pins *pins;    /* TC_IOC_BATCH pins not yet unpinned */
	size_t npins, cap;
	uint64_t next_token;
	struct tcfs_staging *staged; /* TC_BATCH_STAGE's, not committed */
	size_t nstaged, scap;
	struct tcfs_dir *prev, *next; /* fs->dirs, under fs->handles_lock */
};

static struct tcfs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct tcfs_handle *H(struct fuse_file_info *fi)
{
	struct tcfs_handle *h = (struct tcfs_handle *)(uintptr_t)fi->fh;
	assert(h && (h->kind == H_TENSOR || h->kind == H_META ||
		     h->kind == H_VIEW));
	return h;
}

static struct tcfs_dir *D(struct fuse_file_info *fi)
{
	struct tcfs_dir *d = (struct tcfs_dir *)(uintptr_t)fi->fh;
	assert(d && d->kind == H_DIR);
	return d;
}

/* The file handle of a setattr, if it is one of ours for files (the kernel
 * sends one only for ftruncate). */
static struct tcfs_handle *H_file(struct fuse_file_info *fi)
{
	struct tcfs_handle *h =
		fi ? (struct tcfs_handle *)(uintptr_t)fi->fh : NULL;
	return h && (h->kind == H_TENSOR || h->kind == H_META ||
		     h->kind == H_VIEW) ? h : NULL;
}

/* ---- replies ------------------------------------------------------------ */

/* True at most once a second for each @last (CLOCK_MONOTONIC s + 1 of
 * the last true): a message that a busy client could repeat per request
 * is logged at that rate. */
static bool once_a_second(_Atomic int64_t *last)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t was = *last;
	return was != ts.tv_sec + 1 &&
	       atomic_compare_exchange_strong(last, &was, ts.tv_sec + 1);
}

/* Why a request was refused where its errno alone says little (EPERM
 * for a symlink, EIO for damage): for the log, at most once a second for
 * each kind. */
enum hint { HINT_SPECIAL, HINT_SYMLINK, HINT_LINK, HINT_FIXED, HINT_DAMAGED,
	    HINT_KINDS };

static void hint(enum hint kind, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void hint(enum hint kind, int prio, const char *fmt, ...)
{
	static _Atomic int64_t last[HINT_KINDS];
	char line[768];
	va_list ap;
	if (!once_a_second(&last[kind]))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	tcfs_log(prio, "%s", line);
}

/* An operation failed with @err because the journal could not be
 * written (a full disk under the store, an I/O error): say so, naming
 * the file system, at most once a second. */
static void log_journal_error(struct tcfs *fs, int err)
{
	static _Atomic int64_t last;
	if (tc_store_journal_error(fs->store) != err)
		return; /* not the journal: a full pool, a bad request... */
	if (!once_a_second(&last))
		return;
	tcfs_log(LOG_ERR, "journal: %s on %s; operations that change the "
		 "store fail with %s until there is room, committed data is "
		 "kept", strerror(-err), fs->store_dev,
		 err == -ENOSPC ? "ENOSPC" : "this error");
}

/* The one place where an error becomes a reply.  @err is 0 or -errno. */
static void reply_err(fuse_req_t req, int err)
{
	if (err > 0 || err < -4095) {
		tcfs_log(LOG_ERR, "internal error %d, answering EIO", err);
		err = -EIO;
	}
	if (err == -ENOSPC || err == -EIO)
		log_journal_error(FS(req), err);
	fuse_reply_err(req, -err);
}

/* Reply the entry @e, or the error @err. */
static void reply_entry(fuse_req_t req, int err,
			const struct fuse_entry_param *e)
{
	if (err)
		reply_err(req, err);
	else
		fuse_reply_entry(req, e);
}

/* Reply the attributes @a, or the error @err. */
static void reply_attr(fuse_req_t req, int err, const struct stat *a,
		       double timeout)
{
	if (err)
		reply_err(req, err);
	else
		fuse_reply_attr(req, a, timeout);
}

/* Reply @r bytes of @buf, or the error @r < 0; @buf (malloc'd) is
 * freed. */
static void reply_copy(fuse_req_t req, ssize_t r, char *buf)
{
	if (r < 0)
		reply_err(req, (int)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

/* Reply the bytes of @iov[0..n).  With @copy_first, iov[0] is a view's
 * header, its handle's memory: a release may free it as soon as the
 * kernel has the reply (the reply to a readahead ends the kernel's use of
 * the file), before fuse_reply_iov() returns here, so a copy of it is
 * sent (the header only: tensor bytes are the pool's). */
static void reply_iov(fuse_req_t req, struct iovec *iov, int n,
		      bool copy_first)
{
	void *head = NULL;
	if (copy_first) {
		if (!(head = malloc(iov[0].iov_len))) {
			reply_err(req, -ENOMEM);
			return;
		}
		iov[0].iov_base = memcpy(head, iov[0].iov_base, iov[0].iov_len);
	}
	fuse_reply_iov(req, iov, n);
	free(head);
}

/* For a request on an inode the kernel holds that is gone from the store:
 * a path resolved to it just before a rename over it or a removal (the
 * kernel keeps inodes it looked up; the store does not keep removed
 * nodes for it).  ESTALE, not ENOENT: the VFS then walks the path again
 * with revalidation, a fresh LOOKUP finds what the name means now, and
 * open(2) or stat(2) of a path that never stopped existing (renamed
 * over, as rsync and atomic writers do) succeeds. */
static int gone_stale(int err)
{
	return err == -ENOENT ? -ESTALE : err;
}

static void stat_to_attr(const struct tc_stat *st, struct stat *a)
{
	memset(a, 0, sizeof(*a));
	a->st_ino = st->id;
	a->st_mode = st->mode;
	a->st_nlink = st->nlink;
	a->st_uid = st->uid;
	a->st_gid = st->gid;
	a->st_size = (off_t)st->size;
	a->st_blocks = (blkcnt_t)st->blocks;
	a->st_blksize = TCFS_IO_SIZE;
	a->st_atim = st->atime;
	a->st_mtim = st->mtime;
	a->st_ctim = st->ctime;
}

static void stat_to_entry(const struct tc_stat *st, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->id;
	e->generation = 1;
	stat_to_attr(st, &e->attr);
	e->entry_timeout = TCFS_ENTRY_TIMEOUT;
	e->attr_timeout = TCFS_ATTR_TIMEOUT;
}

/* ---- helpers -------------------------------------------------------------- */

static int check_name(const char *name)
{
	return strlen(name) > TC_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* The mode and owner of a new node. */
struct owner {
	uint32_t mode, uid, gid;
};

/* A new node (a directory if @dir) @name in @parent: the checks of its
 * name, its parent (a generated file has no names under it), and its
 * owner: the caller, with the group of a set-gid parent (which also hands
 * its set-gid bit to new directories), as local file systems do. */
static int new_node(struct tcfs *fs, fuse_req_t req, uint64_t parent,
		    const char *name, mode_t mode, bool dir, struct owner *o)
{
	int err = check_name(name);
	if (err)
		return err;
	if (parent & TCFS_META_BIT)
		return -ENOTDIR;
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct tc_stat pst;
	err = tc_getattr(fs->store, parent, &pst);
	if (err)
		return err;
	o->mode = mode & 07777;
	o->uid = ctx->uid;
	o->gid = ctx->gid;
	if (pst.mode & S_ISGID) {
		o->gid = pst.gid;
		if (dir)
			o->mode |= S_ISGID;
	}
	return 0;
}

/* Push @x on the doubly linked list @head, or take it off: for
 * fs->handles and fs->dirs (their members' prev and next). */
#define LIST_PUSH(head, x)                                                   \
	do {                                                                 \
		(x)->prev = NULL;                                            \
		(x)->next = (head);                                          \
		if (head)                                                    \
			(head)->prev = (x);                                  \
		(head) = (x);                                                \
	} while (0)
#define LIST_REMOVE(head, x)                                                 \
	do {                                                                 \
		if ((x)->prev)                                               \
			(x)->prev->next = (x)->next;                         \
		else                                                         \
			(head) = (x)->next;                                  \
		if ((x)->next)                                               \
			(x)->next->prev = (x)->prev;                         \
	} while (0)

static void handle_link(struct tcfs *fs, struct tcfs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	LIST_PUSH(fs->handles, h);
	pthread_mutex_unlock(&fs->handles_lock);
}

static void handle_unlink(struct tcfs *fs, struct tcfs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	LIST_REMOVE(fs->handles, h);
	pthread_mutex_unlock(&fs->handles_lock);
}

struct tcfs_handle *tcfs_handle_new(enum hkind kind, uint64_t ino)
{
	struct tcfs_handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->kind = kind;
	h->ino = ino;
	return h;
}

/* Free a handle that is not (or no longer) linked. */
static void handle_free(struct tcfs *fs, struct tcfs_handle *h)
{
	if (!h)
		return;
	if (h->kind == H_VIEW) {
		tcfs_view_free(fs, h);
	} else if (h->kind == H_META) {
		tcfs_gen_free(h);
	} else {
		if (h->kc_counted)
			tcfs_kcache_close(fs->kcache, h->ino);
		tc_file_close(fs->store, h->f);
		free(h->name);
		free(h);
	}
}

static void dir_free(struct tcfs *fs, struct tcfs_dir *d);

void tcfs_close_all(struct tcfs *fs)
{
	/* directories first: freeing one unpins (and frees) the read
	 * handles of its batches, which are in fs->handles */
	pthread_mutex_lock(&fs->handles_lock);
	struct tcfs_dir *d = fs->dirs;
	fs->dirs = NULL;
	pthread_mutex_unlock(&fs->handles_lock);
	while (d) {
		struct tcfs_dir *next = d->next;
		dir_free(fs, d);
		d = next;
	}
	pthread_mutex_lock(&fs->handles_lock);
	struct tcfs_handle *h = fs->handles;
	fs->handles = NULL;
	pthread_mutex_unlock(&fs->handles_lock);
	while (h) {
		struct tcfs_handle *next = h->next;
		handle_free(fs, h);
		h = next;
	}
}

/* ---- init ------------------------------------------------------------------ */

static void tcfs_init(void *userdata, struct fuse_conn_info *conn)
{
	/* No atomic O_TRUNC: with it the kernel sets the file's size to 0
	 * and drops its cached pages at open(O_TRUNC), so readers of the
	 * committed version would see it vanish while a rewrite runs.
	 * Without it the truncation comes as a SETATTR after the OPEN; the
	 * lib gives it to the newest writer's pending version, and the size
	 * we answer stays the committed one for readers (see tc_getattr). */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* Page-cache validity is decided at open (keep_cache, kcache.c), not
	 * by mtime comparisons that cost a GETATTR before reads. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* Reads are answered from the pool mmap; no splice for now. */
	conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	/* The kernel keeps min(its read-ahead, this): main.c raised the
	 * mount's read-ahead before this reply. */
	conn->max_readahead = TCFS_READAHEAD_KB * 1024;
}

/* ---- names ------------------------------------------------------------------ */

static int op_lookup(struct tcfs *fs, uint64_t parent, const char *name,
		     pid_t pid, struct fuse_entry_param *e)
{
	int err = check_name(name);
	if (err)
		return err;
	err = tcfs_view_lookup(fs, parent, name, e);
	if (err != TCFS_GEN_PASS)
		return err;
	err = tcfs_gen_lookup(fs, parent, name, pid, e);
	if (err != TCFS_GEN_PASS)
		return err;
	struct tc_stat st;
	err = tc_lookup(fs->store, parent, name, &st);
	if (err == -ENOENT && parent == TC_ROOT_ID && fs->remote &&
	    tcfs_remote_fetch(fs->remote, name) == 0)
		err = tc_lookup(fs->store, parent, name, &st);
	if (err)
		return err;
	stat_to_entry(&st, e);
	return 0;
}

static void tcfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int err = op_lookup(FS(req), parent, name, fuse_req_ctx(req)->pid, &e);
	reply_entry(req, err, &e);
}

/* Ids are never reused while mounted: no lookup counts to keep.  The
 * kernel dropping an inode drops its page cache too: what kcache.c knew
 * of it can go. */
static void tcfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	tcfs_kcache_drop(FS(req)->kcache, ino);
	fuse_reply_none(req);
}

static void tcfs_forget_multi(fuse_req_t req, size_t count,
			      struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		tcfs_kcache_drop(FS(req)->kcache, forgets[i].ino);
	fuse_reply_none(req);
}

/* ---- attributes ------------------------------------------------------------ */

static int op_getattr(struct tcfs *fs, uint64_t ino,
		      const struct tcfs_handle *h, struct stat *a,
		      double *timeout)
{
	if (tcfs_is_view(ino))
		return tcfs_view_getattr(fs, ino, h, a, timeout);
	if (ino & TCFS_META_BIT)
		return tcfs_gen_getattr(fs, ino, a, timeout);
	struct tc_stat st;
	int err = tc_getattr(fs->store, ino, &st);
	if (err)
		return gone_stale(err);
	stat_to_attr(&st, a);
	*timeout = TCFS_ATTR_TIMEOUT;
	return 0;
}

static void tcfs_getattr(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct stat a;
	double timeout = 0;
	int err = op_getattr(FS(req), ino, H_file(fi), &a, &timeout);
	reply_attr(req, err, &a, timeout);
}

/* A time a setattr sets: now (@now_bit in @to_set) or @given (@bit);
 * false, *@t untouched, when neither is asked. */
static bool set_time(int to_set, int now_bit, int bit,
		     const struct timespec *given, struct timespec *t)
{
	if (to_set & now_bit)
		clock_gettime(CLOCK_REALTIME, t);
	else if (to_set & bit)
		*t = *given;
	else
		return false;
	return true;
}

static int op_setattr(struct tcfs *fs, uint64_t ino, struct stat *attr,
		      int to_set, struct tcfs_handle *h, struct stat *a,
		      double *timeout)
{
	if (tcfs_is_view(ino))
		return tcfs_view_setattr(fs, ino, attr, to_set, a, timeout);
	if (ino & TCFS_META_BIT)
		return tcfs_gen_setattr(fs, ino, attr, to_set, h, a, timeout);

	struct tc_setattr sa;
	memset(&sa, 0, sizeof(sa));
	if (to_set & FUSE_SET_ATTR_MODE) {
		sa.valid |= TC_SET_MODE;
		sa.mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa.valid |= TC_SET_UID;
		sa.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa.valid |= TC_SET_GID;
		sa.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0)
			return -EINVAL;
		sa.valid |= TC_SET_SIZE;
		sa.size = (uint64_t)attr->st_size;
	}
	if (set_time(to_set, FUSE_SET_ATTR_ATIME_NOW, FUSE_SET_ATTR_ATIME,
		     &attr->st_atim, &sa.atime))
		sa.valid |= TC_SET_ATIME;
	if (set_time(to_set, FUSE_SET_ATTR_MTIME_NOW, FUSE_SET_ATTR_MTIME,
		     &attr->st_mtim, &sa.mtime))
		sa.valid |= TC_SET_MTIME;
	if (to_set & FUSE_SET_ATTR_CTIME) {
		sa.valid |= TC_SET_CTIME;
		sa.ctime = attr->st_ctim;
	}

	tc_file *f = NULL;
	if (h && h->kind == H_TENSOR && h->writable)
		f = h->f;
	struct tc_stat st;
	int err = tc_setattr(fs->store, ino, &sa, f, &st);
	if (to_set & FUSE_SET_ATTR_SIZE)
		tcfs_notifier_settle(fs->notifier, SETTLE_MS);
	if (err)
		return err;
	stat_to_attr(&st, a);
	*timeout = TCFS_ATTR_TIMEOUT;
	return 0;
}

static void tcfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			 int to_set, struct fuse_file_info *fi)
{
	struct stat a;
	double timeout = 0;
	int err = op_setattr(FS(req), ino, attr, to_set, H_file(fi), &a,
			     &timeout);
	reply_attr(req, err, &a, timeout);
}

/* ---- directories ------------------------------------------------------------ */

static int op_mkdir(struct tcfs *fs, fuse_req_t req, uint64_t parent,
		    const char *name, mode_t mode, struct fuse_entry_param *e)
{
	struct owner o;
	int err = new_node(fs, req, parent, name, mode, true, &o);
	if (err)
		return err;
	struct tc_stat st;
	err = tc_mkdir(fs->store, parent, name, o.mode, o.uid, o.gid, &st);
	if (err)
		return err;
	tcfs_gen_made(st.id, fuse_req_ctx(req)->pid);
	stat_to_entry(&st, e);
	return 0;
}

static void tcfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode)
{
	struct fuse_entry_param e;
	int err = op_mkdir(FS(req), req, parent, name, mode, &e);
	reply_entry(req, err, &e);
}

static int op_rmdir(struct tcfs *fs, uint64_t parent, const char *name)
{
	int err = check_name(name);
	if (err)
		return err;
	err = tcfs_view_named(fs, parent, name);
	if (err != TCFS_GEN_PASS)
		return err ? err : -ENOTDIR;
	err = tcfs_gen_rmdir(fs, parent, name);
	if (err != TCFS_GEN_PASS)
		return err;
	return tc_rmdir(fs->store, parent, name);
}

static void tcfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	reply_err(req, op_rmdir(FS(req), parent, name));
}

static void unpin(struct tcfs *fs, struct tcfs_pins *p)
{
	for (uint32_t i = 0; i < p->n; i++) {
		handle_unlink(fs, p->h[i]);
		handle_free(fs, p->h[i]);
	}
	free(p->h);
}

/* Free a directory handle: its listing, and the pins of its batches
 * never unpinned (the reader closed it, or was killed). */
static void dir_free(struct tcfs *fs, struct tcfs_dir *d)
{
	for (size_t i = 0; i < d->npins; i++)
		unpin(fs, &d->pins[i]);
	free(d->pins);
	for (size_t i = 0; i < d->nstaged; i++)
		tcfs_staging_drop(fs, &d->staged[i]);
	free(d->staged);
	pthread_mutex_destroy(&d->lock);
	free(d->ids);
	free(d);
}

static void dir_link(struct tcfs *fs, struct tcfs_dir *d)
{
	pthread_mutex_lock(&fs->handles_lock);
	LIST_PUSH(fs->dirs, d);
	pthread_mutex_unlock(&fs->handles_lock);
}

static void dir_unlink(struct tcfs *fs, struct tcfs_dir *d)
{
	pthread_mutex_lock(&fs->handles_lock);
	LIST_REMOVE(fs->dirs, d);
	pthread_mutex_unlock(&fs->handles_lock);
}

static int op_opendir(struct tcfs *fs, uint64_t ino, struct tcfs_dir **out)
{
	if (ino & TCFS_META_BIT)
		return -ENOTDIR;
	struct tc_stat st;
	int err = tc_getattr(fs->store, ino, &st);
	if (err)
		return err;
	if (!S_ISDIR(st.mode))
		return -ENOTDIR;
	struct tcfs_dir *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->kind = H_DIR;
	d->ino = ino;
	d->parent = st.parent ? st.parent : ino;
	*out = d;
	return 0;
}

static void tcfs_opendir(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct tcfs_dir *d = NULL;
	int err = op_opendir(FS(req), ino, &d);
	if (err) {
		reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)d;
	dir_link(FS(req), d);
	if (fuse_reply_open(req, fi) != 0) {
		dir_unlink(FS(req), d);
		dir_free(FS(req), d);
	}
}

/*
 * Fill @buf (@size bytes) with the listing from offset @off: ".", ".." and
 * the snapshot's children (those that vanished since are skipped).
 * generated files are not listed: see generated.c.  Offsets are listing
 * indexes + 1.  Cost: one tc_getattr per child returned.
 */
static int op_readdir(struct tcfs *fs, fuse_req_t req, struct tcfs_dir *d,
		      char *buf, size_t size, off_t off, bool plus,
		      size_t *filled)
{
	size_t pos = 0;
	size_t total = 2 + d->n;
	if (off < 0)
		return -EINVAL;

	for (size_t i = (size_t)off; i < total; i++) {
		struct fuse_entry_param e;
		struct tc_stat st;
		const char *name;
		memset(&e, 0, sizeof(e));

		if (i < 2) {
			/* no lookup count for "." and "..": ino 0 */
			name = i == 0 ? "." : "..";
			e.attr.st_ino = i == 0 ? d->ino : d->parent;
			e.attr.st_mode = S_IFDIR;
		} else {
			int err = tc_getattr(fs->store, d->ids[i - 2], &st);
			if (err == -ENOENT)
				continue;
			if (err) {
				if (pos)
					break;
				return err;
			}
			stat_to_entry(&st, &e);
			name = st.name;
		}

		size_t need;
		if (plus)
			need = fuse_add_direntry_plus(req, buf + pos, size - pos,
						      name, &e, (off_t)(i + 1));
		else
			need = fuse_add_direntry(req, buf + pos, size - pos,
						 name, &e.attr, (off_t)(i + 1));
		if (need > size - pos)
			break;
		pos += need;
	}
	*filled = pos;
	return 0;
}

static void readdir_common(fuse_req_t req, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	struct tcfs_dir *d = D(fi);
	char *buf = malloc(size ? size : 1);
	size_t filled = 0;
	int err = buf ? 0 : -ENOMEM;
	/* The snapshot is taken by the first readdir, not by opendir: an
	 * opendir for TC_IOC_BATCH alone (the root of a page tier with a
	 * million pages) lists nothing.  The kernel sends one readdir of a
	 * handle at a time. */
	if (!err && (!d->listed || off == 0)) {
		free(d->ids);
		d->ids = NULL;
		d->n = 0;
		err = tc_list(FS(req)->store, d->ino, &d->ids, &d->n);
		d->listed = !err;
	}
	if (!err)
		err = op_readdir(FS(req), req, d, buf, size, off, plus, &filled);
	reply_copy(req, err ? err : (ssize_t)filled, buf);
}

static void tcfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			 off_t off, struct fuse_file_info *fi)
{
	readdir_common(req, size, off, fi, false);
}

static void tcfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			     off_t off, struct fuse_file_info *fi)
{
	readdir_common(req, size, off, fi, true);
}

static void tcfs_releasedir(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	struct tcfs_dir *d = D(fi);
	if (d) {
		dir_unlink(FS(req), d);
		dir_free(FS(req), d);
	}
	reply_err(req, 0);
}

static void tcfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			  struct fuse_file_info *fi)
{
	reply_err(req, tc_store_sync(FS(req)->store));
}

/* ---- files ----------------------------------------------------------------------- */

static int op_create(struct tcfs *fs, fuse_req_t req, uint64_t parent,
		     const char *name, mode_t mode, struct tcfs_handle **hp,
		     struct fuse_entry_param *e)
{
	struct owner o;
	int err = new_node(fs, req, parent, name, mode, false, &o);
	if (err)
		return err;
	struct tcfs_handle *h = tcfs_handle_new(H_TENSOR, 0);
	if (!h)
		return -ENOMEM;
	struct tc_stat st;
	err = tc_create(fs->store, parent, name, o.mode, o.uid, o.gid, &h->f,
			&st);
	if (err) {
		free(h);
		return err;
	}
	h->ino = st.id;
	h->writable = true;
	h->version = st.version;
	h->parent = parent;
	h->name = strdup(name); /* NULL: no notice if dropped (see release) */
	stat_to_entry(&st, e);
	*hp = h;
	return 0;
}

static void tcfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, struct fuse_file_info *fi)
{
	struct tcfs *fs = FS(req);
	struct tcfs_handle *h = NULL;
	struct fuse_entry_param e;
	int err = tcfs_gen_create(fs, parent, name, fuse_req_ctx(req)->pid, fi,
				  &h, &e);
	if (err == TCFS_GEN_PASS)
		err = op_create(fs, req, parent, name, mode, &h, &e);
	if (err) {
		reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->keep_cache = 0;
	if (h->kind == H_TENSOR)
		h->rdwr = (fi->flags & O_ACCMODE) == O_RDWR;
	/* Write-only (cp, dd, tar, Python's open(.., "wb")): direct I/O, as
	 * for rewrites in op_open.  The kernel then sends the writer's own
	 * pages instead of first copying them into page-cache pages, which
	 * the next open would drop anyway (a new version). */
	if ((fi->flags & O_ACCMODE) == O_WRONLY &&
	    !(e.attr.st_mode & (S_ISUID | S_ISGID)))
		fi->direct_io = 1;
	handle_link(fs, h);
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* interrupted: no release will come */
		handle_unlink(fs, h);
		handle_free(fs, h);
	}
}

/* mknod: a regular file is created (and committed empty); device nodes,
 * fifos and sockets cannot be stored. */
static int op_mknod(struct tcfs *fs, fuse_req_t req, uint64_t parent,
		    const char *name, mode_t mode, struct fuse_entry_param *e)
{
	int err = check_name(name);
	if (err)
		return err;
	if (!S_ISREG(mode)) {
		hint(HINT_SPECIAL, LOG_NOTICE, "refused to make %s '%s' (EPERM): "
		     "the cache stores regular files and directories only; "
		     "copy a tree without its device nodes, fifos and sockets",
		     S_ISFIFO(mode) ? "the fifo" : S_ISSOCK(mode) ? "the socket"
						      : "the device node", name);
		return -EPERM;
	}
	struct tcfs_handle *h = NULL;
	err = op_create(fs, req, parent, name, mode, &h, e);
	if (err)
		return err;
	err = tc_file_commit(fs->store, h->f);
	if (!err) {
		struct tc_stat st;
		if (tc_file_stat(fs->store, h->f, &st) == 0)
			stat_to_entry(&st, e);
	}
	handle_free(fs, h);
	return err;
}

static void tcfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, dev_t rdev)
{
	struct fuse_entry_param e;
	int err = op_mknod(FS(req), req, parent, name, mode, &e);
	reply_entry(req, err, &e);
}

/* tc_open, and a damaged tensor's EIO named in the log. */
static int open_tensor(struct tcfs *fs, uint64_t ino, unsigned flags,
		       tc_file **f)
{
	int err = tc_open(fs->store, ino, flags, f);
	if (err == -EIO) {
		char path[PATH_MAX];
		hint(HINT_DAMAGED, LOG_ERR, "%s: its bytes on disk do not match "
		     "their xxh3 (damaged, or a read error of the pool: EIO); "
		     "unmount, then tcache fsck --repair %s",
		     tc_path(fs->store, ino, path, sizeof(path)) ? "?" : path,
		     fs->store_path ? fs->store_path : "STORE");
	}
	return err;
}

static int op_open(struct tcfs *fs, uint64_t ino, struct fuse_file_info *fi,
		   struct tcfs_handle **hp)
{
	if (tcfs_is_view(ino))
		return tcfs_view_open(fs, ino, fi, hp);
	if (ino & TCFS_META_BIT)
		return tcfs_gen_open(fs, ino, fi, hp);

	struct tcfs_handle *h = tcfs_handle_new(H_TENSOR, ino);
	if (!h)
		return -ENOMEM;
	unsigned flags = 0;
	h->writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	h->rdwr = (fi->flags & O_ACCMODE) == O_RDWR;
	if (h->writable) {
		flags |= TC_O_WRITE;
		if (fi->flags & O_TRUNC)
			flags |= TC_O_TRUNC;
	}
	int err = open_tensor(fs, ino, flags, &h->f);
	if (err) {
		free(h);
		return gone_stale(err);
	}
	struct tc_stat st;
	err = tc_file_stat(fs->store, h->f, &st);
	if (err) {
		handle_free(fs, h);
		return err;
	}
	h->version = st.version;
	if (h->writable) {
		tcfs_kcache_forget(fs->kcache, ino);
		fi->keep_cache = 0;
		/* A rewrite (cp over, dd, > in a shell: O_WRONLY) bypasses the
		 * page cache, so readers of the committed version never see
		 * its pages before the commit.  O_RDWR keeps the page cache:
		 * a writable shared mmap (np.memmap r+/w+) needs it. */
		if ((fi->flags & O_ACCMODE) == O_WRONLY &&
		    !(st.mode & (S_ISUID | S_ISGID)))
			fi->direct_io = 1; /* (set-id bits: the kernel clears
					    * them on buffered writes only) */
	} else {
		int mode = tcfs_kcache_open(fs->kcache, ino, st.version);
		fi->keep_cache = mode == TCFS_KC_KEEP;
		fi->direct_io = mode == TCFS_KC_DIRECT;
		h->kc_counted = mode != TCFS_KC_DIRECT;
		/* nothing to commit at close(): no FLUSH round trip */
		fi->noflush = 1;
		/* A writer's pending version may have set the kernel's size
		 * below this reader's version: drop the attributes, so that
		 * a read past that size asks again (now the larger of the
		 * two, see tc_stat.size).  Only spinlocks in the kernel. */
		struct tc_stat cur;
		int busy = tc_getattr(fs->store, ino, &cur) == 0 && cur.writers;
		if (busy)
			fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
		if (mode == TCFS_KC_FIRST && !busy &&
		    st.size <= TCFS_PREFILL_MAX)
			h->prefill = st.size;
	}
	*hp = h;
	return 0;
}

/* The first read-only open of a small tensor since the kernel loaded its
 * inode (TCFS_KC_FIRST: the kernel has no page of it): its bytes go to
 * the kernel's page cache before the open's reply (FUSE notify_store),
 * so that reading it needs no READ round trip, and the open keeps them
 * (keep_cache: they are this version's).  The pages also start marked
 * accessed: a second pass over such files then finds them on the active
 * list, as a plain file's are by then (moving 4 KiB pages there is what
 * made the second pass of the plain-file page pattern slower than the
 * third: tools/BENCH-NOTES.md, round 13).  The tensor's xxh3 was
 * checked by the open, as for any read.  True if the kernel took them. */
static bool prefill(struct tcfs *fs, struct tcfs_handle *h, uint64_t ino,
		    uint64_t size)
{
	struct tc_span sp[READ_SPANS];
	int n = 0;
	size_t total = 0;
	/* one pool span (a tensor in one extent, or packed): else the reads
	 * fill the cache as before */
	if (tc_file_map(fs->store, h->f, 0, size, sp, READ_SPANS, &n,
			&total) != 0 || n != 1 || total != size)
		return false;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(total);
	bv.buf[0].mem = (void *)sp[0].ptr;
	return fuse_lowlevel_notify_store(fs->se, ino, 0, &bv, 0) == 0;
}

static void tcfs_open(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi)
{
	struct tcfs *fs = FS(req);
	struct tcfs_handle *h = NULL;
	int err = op_open(fs, ino, fi, &h);
	if (err) {
		reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)h;
	if (h->prefill && prefill(fs, h, ino, h->prefill))
		fi->keep_cache = 1;
	handle_link(fs, h);
	if (fuse_reply_open(req, fi) != 0) {
		handle_unlink(fs, h);
		handle_free(fs, h);
	}
}

static void tcfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct tcfs *fs = FS(req);
	struct tcfs_handle *h = H(fi);
	if (off < 0) {
		reply_err(req, -EINVAL);
		return;
	}

	if (h->kind == H_META) {
		char *copy = NULL;
		ssize_t r = tcfs_gen_read(h, size, off, &copy);
		reply_copy(req, r, copy);
		return;
	}

	if (!h->writable) {
		/* A read-only handle's bytes stay put until close: answer
		 * straight from the pool mmap (one copy, in the kernel). */
		struct tc_span sp[READ_SPANS];
		struct iovec iov[READ_SPANS];
		int n = 0;
		size_t total = 0;
		int err = h->kind == H_VIEW
			? tc_view_map(fs->store, h->view, (uint64_t)off, size,
				      sp, READ_SPANS, &n, &total)
			: tc_file_map(fs->store, h->f, (uint64_t)off, size, sp,
				      READ_SPANS, &n, &total);
		if (err != -ENOBUFS) {
			if (h->kc_counted)
				tcfs_kcache_read(fs->kcache, ino, h->version);
			if (err) {
				reply_err(req, err);
			} else if (n == 0 || total == 0) {
				fuse_reply_buf(req, NULL, 0);
			} else {
				for (int i = 0; i < n; i++) {
					iov[i].iov_base = (void *)sp[i].ptr;
					iov[i].iov_len = sp[i].len;
				}
				reply_iov(req, iov, n, sp[0].fd < 0);
			}
			return;
		}
		/* too fragmented for one reply: copy (below) */
	}

	/* A write handle's bytes may move at the next write: copy them. */
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		reply_err(req, -ENOMEM);
		return;
	}
	ssize_t r = h->kind == H_VIEW
		? tc_view_pread(fs->store, h->view, buf, size, (uint64_t)off)
		: tc_file_pread(fs->store, h->f, buf, size, (uint64_t)off);
	reply_copy(req, r, buf);
}

static ssize_t op_write(struct tcfs *fs, struct tcfs_handle *h,
			const char *buf, size_t size, off_t off)
{
	if (off < 0)
		return -EINVAL;
	if (!h->writable)
		return -EBADF;
	if (h->kind == H_META)
		return tcfs_gen_write(fs, h, buf, size, off);
	ssize_t r = tc_file_write(fs->store, h->f, buf, size, (uint64_t)off);
	if (r > 0)
		h->wrote = true;
	/* room was perhaps made by evicting: let the kernel know first */
	tcfs_notifier_settle(fs->notifier, SETTLE_MS);
	return r;
}

static void tcfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		       size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t r = op_write(FS(req), H(fi), buf, size, off);
	if (r < 0)
		reply_err(req, (int)r);
	else
		fuse_reply_write(req, (size_t)r);
}

/* A tensor created by @h whose commit failed lost its name in the store
 * (tc_file_commit): drop the kernel's dentry before close() returns, so
 * that the name is absent at once (the notice goes through the notifier
 * thread; see notify.c).  Asked by id: a tc_lookup would count a probe
 * (and at the root a miss) that no user made. */
static void forget_failed(struct tcfs *fs, struct tcfs_handle *h)
{
	struct tc_stat st;
	if (tc_getattr(fs->store, h->ino, &st) == 0 && st.nlink &&
	    st.parent == h->parent && !strcmp(st.name, h->name))
		return;
	tcfs_notifier_evicted(fs->notifier, h->parent, h->ino, h->name);
	tcfs_notifier_settle(fs->notifier, SETTLE_MS);
}

/* flush = every close(): commit, so that close() returning 0 means the
 * tensor (or the meta.json) is stored. */
/*
 * Commit at close (@release false) or at release.  A handle opened
 * O_RDWR that was only sized, never written (open, ftruncate, mmap
 * MAP_SHARED, close: torch.from_file, so TensorDict.memmap()), is
 * committed at its release instead: its bytes come through the mapping
 * after close() and until the munmap, and a crash meanwhile must leave it
 * absent (or its old bytes), not zeros that close() committed.
 */
static int op_flush(struct tcfs *fs, struct tcfs_handle *h, bool release)
{
	if (!h->writable)
		return 0;
	if (h->kind == H_META)
		return tcfs_gen_flush(fs, h);
	if (!release && h->rdwr && !h->wrote)
		return 0;
	/* Nothing since this handle's last commit (the usual release, after
	 * close() committed): the kernel's pages and size are still right.
	 * Forgetting them here would undo what a reader that opened since
	 * recorded, and a release comes asynchronously, after that open: the
	 * next open would then bypass the page cache, and a shared mmap of
	 * it fail with ENODEV (np.save, then np.load(mmap_mode="r")). */
	if (!tc_file_changed(fs->store, h->f))
		return 0;
	int err = tc_file_commit(fs->store, h->f);
	tcfs_kcache_forget(fs->kcache, h->ino);
	/* The kernel's size may be of the old version, or of a failed
	 * write's that was dropped: drop its attributes (no pages: offset
	 * -1), so the next stat or open sees the committed size.  Only
	 * spinlocks in the kernel: safe from a request thread. */
	fuse_lowlevel_notify_inval_inode(fs->se, h->ino, -1, 0);
	if (err && h->name)
		forget_failed(fs, h);
	return err;
}

static void tcfs_flush(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	reply_err(req, op_flush(FS(req), H(fi), false));
}

/* release: commit what arrived after the last flush (a shared mapping's
 * pages are written back between close() and munmap()), then close. */
static void tcfs_release(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct tcfs *fs = FS(req);
	struct tcfs_handle *h = H(fi);
	int err = op_flush(fs, h, true);
	if (err)
		tcfs_log(LOG_WARNING, "commit at release of inode %llu: %s",
			 (unsigned long long)ino, strerror(-err));
	uint64_t parent = h->parent;
	char *name = h->kind == H_TENSOR ? h->name : NULL;
	if (name)
		h->name = NULL;
	handle_unlink(fs, h);
	handle_free(fs, h);
	/* A tensor created by this handle and never committed (its commit
	 * failed) is gone now: drop the kernel's dentry, which the long entry
	 * timeout would otherwise keep.  Cost: one tc_getattr per release of
	 * a created file; a notice only when it is gone (also after an
	 * unlink, where the kernel answers ENOENT: harmless). */
	struct tc_stat st;
	if (name && tc_getattr(fs->store, ino, &st) == -ENOENT)
		tcfs_notifier_evicted(fs->notifier, parent, ino, name);
	free(name);
	reply_err(req, 0);
}

static int op_fsync(struct tcfs *fs, struct tcfs_handle *h)
{
	if (h->kind == H_TENSOR && h->writable) {
		int err = tc_file_sync(fs->store, h->f);
		tcfs_kcache_forget(fs->kcache, h->ino);
		return err;
	}
	int err = op_flush(fs, h, false);
	return err ? err : tc_store_sync(fs->store);
}

static void tcfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		       struct fuse_file_info *fi)
{
	reply_err(req, op_fsync(FS(req), H(fi)));
}

/* fallocate(fd, 0, off, len) and posix_fallocate: reserve the pool space
 * (tc_file_reserve).  Other modes (keep size, punch or zero a range,
 * collapse, insert) are not offered: EOPNOTSUPP, nothing changed. */
static int op_fallocate(struct tcfs *fs, struct tcfs_handle *h, int mode,
			off_t off, off_t len)
{
	if (mode != 0 || h->kind != H_TENSOR)
		return -EOPNOTSUPP;
	if (off < 0 || len <= 0)
		return -EINVAL;
	if (!h->writable)
		return -EBADF;
	int err = tc_file_reserve(fs->store, h->f, (uint64_t)off, (uint64_t)len);
	/* room was perhaps made by evicting: let the kernel know first */
	tcfs_notifier_settle(fs->notifier, SETTLE_MS);
	return err;
}

static void tcfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			   off_t offset, off_t length, struct fuse_file_info *fi)
{
	reply_err(req, op_fallocate(FS(req), H(fi), mode, offset, length));
}

/* ---- namespace changes ------------------------------------------------------- */

static int op_unlink(struct tcfs *fs, uint64_t parent, const char *name,
		     pid_t pid)
{
	int err = check_name(name);
	if (err)
		return err;
	err = tcfs_view_named(fs, parent, name);
	if (err == TCFS_GEN_PASS)
		err = tcfs_gen_unlink(fs, parent, name, pid);
	else if (!err)
		err = -EPERM;
	if (err == -EPERM)
		hint(HINT_FIXED, LOG_NOTICE, "refused to remove '%s' (EPERM): it "
		     "is made by tcachefs (a .safetensors view, the statistics "
		     "file) and goes with what it shows", name);
	if (err != TCFS_GEN_PASS)
		return err;
	return tc_unlink(fs->store, parent, name);
}

static void tcfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	reply_err(req, op_unlink(FS(req), parent, name, fuse_req_ctx(req)->pid));
}

static int op_rename(struct tcfs *fs, uint64_t parent, const char *name,
		     uint64_t newparent, const char *newname,
		     unsigned int flags, pid_t pid)
{
	int err = check_name(name);
	if (!err)
		err = check_name(newname);
	if (err)
		return err;
	/* the directories, the flags, then the names: a bad flag is EINVAL
	 * for a generated file's name too */
	if ((parent | newparent) & TCFS_META_BIT)
		return -ENOTDIR;
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL; /* RENAME_EXCHANGE, RENAME_WHITEOUT */
	err = tcfs_view_named(fs, parent, name);
	if (err == TCFS_GEN_PASS)
		err = tcfs_view_named(fs, newparent, newname);
	if (err == TCFS_GEN_PASS) {
		unsigned tflags =
			flags & RENAME_NOREPLACE ? TC_RENAME_NOREPLACE : 0;
		err = tcfs_gen_rename(fs, parent, name, newparent, newname,
				      tflags, pid);
		if (err == TCFS_GEN_PASS)
			return tc_rename(fs->store, parent, name, newparent,
					 newname, tflags);
	} else if (!err) {
		err = -EPERM; /* a view cannot move or be replaced */
	}
	if (err == -EPERM)
		hint(HINT_FIXED, LOG_NOTICE, "refused to rename '%s' to '%s' "
		     "(EPERM): a file made by tcachefs (meta.json, a "
		     ".safetensors view, the statistics file) neither moves nor "
		     "is replaced; copy it instead", name, newname);
	return err;
}

static void tcfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			fuse_ino_t newparent, const char *newname,
			unsigned int flags)
{
	reply_err(req, op_rename(FS(req), parent, name, newparent, newname,
				 flags, fuse_req_ctx(req)->pid));
}

/* What the cache cannot be: symlinks and hard links. */
static void tcfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			 const char *name)
{
	int err = check_name(name);
	if (!err)
		hint(HINT_SYMLINK, LOG_NOTICE, "refused the symlink '%s' -> '%s' "
		     "(EPERM): the cache stores no symlinks; copy what they "
		     "point to (cp -rL, rsync -L)", name, link);
	reply_err(req, err ? err : -EPERM);
}

static void tcfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		      const char *newname)
{
	int err = check_name(newname);
	if (!err)
		hint(HINT_LINK, LOG_NOTICE, "refused the hard link '%s' (EPERM): "
		     "the cache stores no hard links; copy the file instead "
		     "(cp without -l, rsync without -H)", newname);
	reply_err(req, err ? err : -EPERM);
}

/* ---- file system ------------------------------------------------------------- */

static void tcfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct tc_stats ts;
	struct statvfs sv;
	tc_store_stats(FS(req)->store, &ts);
	memset(&sv, 0, sizeof(sv));
	uint64_t freeb = ts.capacity > ts.used ? ts.capacity - ts.used : 0;
	sv.f_bsize = TC_BLOCK;
	sv.f_frsize = TC_BLOCK;
	sv.f_blocks = ts.capacity / TC_BLOCK;
	sv.f_bfree = freeb / TC_BLOCK;
	sv.f_bavail = sv.f_bfree;
	sv.f_files = ts.entries + ts.tensors + ts.groups;
	sv.f_ffree = UINT32_MAX; /* nodes are not a limited resource */
	sv.f_favail = sv.f_ffree;
	sv.f_namemax = TC_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* Extended attributes: one, user.tcache.parent, an entry's parent link
 * (tc_link_get / tc_link_set).  Every other name is absent (ENODATA) and
 * cannot be set (ENOTSUP: cp -a and rsync -aX take that as "not
 * supported here").  getxattr used to answer ENOSYS, which the kernel
 * takes as "none on this mount" for good, so that writes would not each
 * ask for "security.capability" first; answered now, the kernel still
 * does not ask on writes (tcachefs -d: dd of 100 4 KiB writes, 101
 * WRITEs, no GETXATTR). */
#define TCFS_XATTR_PARENT "user.tcache.parent"

static int is_parent_xattr(const char *name)
{
	return !strcmp(name, TCFS_XATTR_PARENT);
}

/* ---- direct mapping ------------------------------------------------------------ */

/*
 * TC_IOC_MAP (tcache.h): where the bytes of the version a read-only
 * handle pins lie in the pool, for a reader to map them itself.  The
 * handle keeps them in place until it is released; who may open the pool
 * file is the file system's to say, not ours.
 */
static int op_ioctl_map(struct tcfs *fs, struct tcfs_handle *h,
			struct tc_ioc_map *m)
{
	struct tc_span sp[TC_IOC_MAX_EXTENTS];
	struct tc_stat st;
	size_t total;
	int n, err;

	if (h->kind != H_TENSOR)
		return -ENOTTY; /* meta.json, a view: no pool bytes of their own */
	if (h->writable)
		return -EBADF; /* its bytes move with each write */
	if (!fs->store_path)
		return -ENOTTY;
	err = tc_getattr(fs->store, h->ino, &st);
	if (err)
		return err;
	memset(m, 0, sizeof(*m));
	err = tc_file_map(fs->store, h->f, 0, SIZE_MAX / 2, sp,
			  TC_IOC_MAX_EXTENTS, &n, &total);
	if (err)
		return err == -ENOBUFS ? -E2BIG : err;
	for (int i = 0; i < n; i++) {
		struct tc_ioc_extent *last =
			m->nextents ? &m->ext[m->nextents - 1] : NULL;
		if (last && last->off + last->len == sp[i].fd_off)
			last->len += sp[i].len; /* adjacent in the pool */
		else
			m->ext[m->nextents++] =
				(struct tc_ioc_extent){ sp[i].fd_off, sp[i].len };
	}
	m->abi = TC_IOC_ABI;
	m->size = total;
	m->version = st.version;
	if (snprintf(m->pool, sizeof(m->pool), "%s/pool", fs->store_path) >=
	    (int)sizeof(m->pool))
		return -ENAMETOOLONG;
	return 0;
}

/* Open @ino for reading as op_open does for a read-only open(2) (a hit,
 * recency, verification), without the kernel's page-cache bookkeeping:
 * the reader copies from the pool itself. */
static int pin_one(struct tcfs *fs, uint64_t ino, struct tcfs_handle **out)
{
	struct tcfs_handle *h = tcfs_handle_new(H_TENSOR, ino);
	if (!h)
		return -ENOMEM;
	int err = open_tensor(fs, ino, 0, &h->f);
	if (err) {
		free(h);
		return err;
	}
	handle_link(fs, h);
	*out = h;
	return 0;
}

/* Array @a of @n elements of @size, with room for *@cap: itself while
 * there is room for one more, else a copy of twice the room (*@cap
 * updated; @a freed).  NULL when there is no memory (@a untouched). */
static void *grown(void *a, size_t n, size_t *cap, size_t size)
{
	size_t ncap = *cap ? *cap * 2 : 4;
	if (n < *cap)
		return a;
	if (!(a = realloc(a, ncap * size)))
		return NULL;
	*cap = ncap;
	return a;
}

/* TC_BATCH_STAGE and TC_BATCH_COMMIT on @d (stage.c): each staging kept
 * under its token until its COMMIT or the handle's release. */
static int op_ioctl_stage(struct tcfs *fs, const struct fuse_ctx *who,
			  struct tcfs_dir *d, struct tc_ioc_batch *b)
{
	struct tcfs_staging st = { 0 }, *ns;
	int err;

	if (b->op == TC_BATCH_COMMIT) {
		err = -ENOENT;
		pthread_mutex_lock(&d->lock);
		for (size_t i = 0; i < d->nstaged && err; i++)
			if (d->staged[i].token == b->token) {
				st = d->staged[i];
				d->staged[i] = d->staged[--d->nstaged];
				err = 0;
			}
		pthread_mutex_unlock(&d->lock);
		return err ? err : tcfs_stage_commit(fs, who, d->ino, &st, b);
	}
	err = tcfs_stage(fs, who, &st, b);
	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	ns = grown(d->staged, d->nstaged, &d->scap, sizeof(*ns));
	if (ns) {
		d->staged = ns;
		st.token = b->token = ++d->next_token;
		d->staged[d->nstaged++] = st;
	} else {
		err = -ENOMEM;
	}
	pthread_mutex_unlock(&d->lock);
	if (err)
		tcfs_staging_drop(fs, &st);
	return err;
}

/*
 * TC_IOC_BATCH on directory @d (tcache.h).  EXISTS and PIN look each name
 * up as the kernel's LOOKUP does (a file tcachefs makes, meta.json or a
 * view, is no node of the store: absent, it has no pool bytes of its
 * own); PIN opens each present
 * tensor as op_open does and keeps the handles under a new token until
 * UNPIN or releasedir.  A name that vanishes between its lookup and its
 * open is absent.  On an error nothing stays pinned.
 */
static int op_ioctl_batch(struct tcfs *fs, const struct fuse_ctx *who,
			  struct tcfs_dir *d, struct tc_ioc_batch *b)
{
	if (b->abi != TC_IOC_ABI)
		return -EPROTO;
	if (b->op == TC_BATCH_STAGE || b->op == TC_BATCH_COMMIT)
		return op_ioctl_stage(fs, who, d, b);
	if (b->op == TC_BATCH_UNPIN) {
		struct tcfs_pins p = { 0 };
		pthread_mutex_lock(&d->lock);
		for (size_t i = 0; i < d->npins; i++)
			if (d->pins[i].token == b->token) {
				p = d->pins[i];
				d->pins[i] = d->pins[--d->npins];
				break;
			}
		pthread_mutex_unlock(&d->lock);
		if (!p.token)
			return -ENOENT;
		unpin(fs, &p);
		return 0;
	}
	if ((b->op != TC_BATCH_EXISTS && b->op != TC_BATCH_LEADING &&
	     b->op != TC_BATCH_PIN) || b->count > TC_BATCH_MAX)
		return -EINVAL;
	if (b->op == TC_BATCH_PIN && !fs->store_path)
		return -ENOTTY;
	struct tcfs_pins p = { 0 };
	if (b->op == TC_BATCH_PIN && b->count &&
	    !(p.h = calloc(b->count, sizeof(*p.h))))
		return -ENOMEM;
	size_t at = 0;
	int err = 0;
	b->present = 0;
	for (uint32_t i = 0; i < b->count && !err; i++) {
		const char *name = tcfs_batch_name(b, &at);
		struct tc_ioc_batch_item *it = &b->item[i];
		struct tc_stat st;

		if (!name) {
			err = -EINVAL; /* not NUL-ended inside names[] */
			break;
		}
		it->size = TC_BATCH_ABSENT;
		it->off = TC_BATCH_NOMAP;
		/* LEADING: once a name was absent, present stays below i */
		if ((b->op == TC_BATCH_LEADING && b->present < i) ||
		    check_name(name))
			continue; /* not looked up, or no name a tensor can have */
		int r = tc_lookup(fs->store, d->ino, name, &st);
		if (r == -ENOENT && d->ino == TC_ROOT_ID && fs->remote &&
		    tcfs_remote_fetch(fs->remote, name) == 0)
			r = tc_lookup(fs->store, d->ino, name, &st);
		if (r == -ENOENT || (!r && S_ISDIR(st.mode)))
			continue;
		if (r) {
			err = r;
			break;
		}
		if (b->op == TC_BATCH_PIN) {
			struct tcfs_handle *h;
			struct tc_span sp[2];
			int n = -1; /* ENOBUFS: several runs */
			size_t total;
			r = pin_one(fs, st.id, &h);
			if (r == -ENOENT)
				continue; /* removed since its lookup */
			if (r) {
				err = r;
				break;
			}
			p.h[p.n++] = h;
			/* the version pinned (it may be newer than the lookup's):
			 * its size is the map's total, or, in more than one run,
			 * its stat's */
			r = tc_file_map(fs->store, h->f, 0, SIZE_MAX / 2, sp, 2,
					&n, &total);
			if (r == -ENOBUFS)
				r = tc_file_stat(fs->store, h->f, &st);
			else if (!r)
				st.size = total;
			if (r) {
				err = r;
				break;
			}
			if (n == 1)
				it->off = sp[0].fd_off;
			else if (n == 0)
				it->off = 0; /* empty: nothing to copy */
		}
		it->size = st.size;
		b->present++;
	}
	if (!err && b->op == TC_BATCH_PIN &&
	    snprintf(b->pool, sizeof(b->pool), "%s/pool", fs->store_path) >=
		    (int)sizeof(b->pool))
		err = -ENAMETOOLONG;
	if (!err && b->op == TC_BATCH_PIN) {
		pthread_mutex_lock(&d->lock);
		struct tcfs_pins *np = grown(d->pins, d->npins, &d->cap,
					     sizeof(*np));
		if (np) {
			d->pins = np;
			p.token = ++d->next_token;
			d->pins[d->npins++] = p;
			b->token = p.token;
		} else {
			err = -ENOMEM;
		}
		pthread_mutex_unlock(&d->lock);
	}
	if (!p.token)
		unpin(fs, &p); /* an error's pins, or none (EXISTS) */
	return err;
}

static void tcfs_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd,
		       void *arg, struct fuse_file_info *fi, unsigned flags,
		       const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	struct tc_ioc_map *m;
	int err;

	if ((flags & FUSE_IOCTL_COMPAT) ||
	    (cmd != TC_IOC_MAP && cmd != TC_IOC_BATCH) ||
	    !(flags & FUSE_IOCTL_DIR) != (cmd == TC_IOC_MAP)) {
		reply_err(req, -ENOTTY); /* MAP on files, BATCH on dirs */
		return;
	}
	if (cmd == TC_IOC_BATCH) {
		struct tc_ioc_batch *b;
		if (in_bufsz < sizeof(*b) || out_bufsz < sizeof(*b) || !fi) {
			reply_err(req, -EINVAL);
			return;
		}
		if (!(b = malloc(sizeof(*b)))) {
			reply_err(req, -ENOMEM);
			return;
		}
		memcpy(b, in_buf, sizeof(*b));
		err = op_ioctl_batch(FS(req), fuse_req_ctx(req), D(fi), b);
		if (err)
			reply_err(req, err);
		else
			fuse_reply_ioctl(req, 0, b, sizeof(*b));
		free(b);
		return;
	}
	if (out_bufsz < sizeof(*m) || !fi) {
		reply_err(req, -EINVAL);
		return;
	}
	if (!(m = malloc(sizeof(*m)))) {
		reply_err(req, -ENOMEM);
		return;
	}
	err = op_ioctl_map(FS(req), H(fi), m);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_ioctl(req, 0, m, sizeof(*m));
	free(m);
}

static void tcfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  size_t size)
{
	char buf[TC_NAME_MAX];
	int r = is_parent_xattr(name)
			? tc_link_get(FS(req)->store, ino, buf, sizeof(buf))
			: -ENODATA;
	if (r == -ENOENT) /* meta.json, the stats file, a view: none */
		r = -ENODATA;
	if (r < 0)
		reply_err(req, r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else if (size < (size_t)r)
		reply_err(req, -ERANGE);
	else
		fuse_reply_buf(req, buf, (size_t)r);
}

static void tcfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char list[] = TCFS_XATTR_PARENT; /* with its NUL */
	int has = tc_link_get(FS(req)->store, ino, NULL, 0) >= 0;
	size_t len = has ? sizeof(list) : 0;
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		reply_err(req, -ERANGE);
	else
		fuse_reply_buf(req, list, len);
}

static void tcfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  const char *value, size_t size, int flags)
{
	char link[TC_NAME_MAX + 1];
	int r;

	if (!is_parent_xattr(name)) {
		r = -ENOTSUP;
	} else if (size > TC_NAME_MAX) {
		r = -ENAMETOOLONG;
	} else if (memchr(value, 0, size)) {
		r = -EINVAL;
	} else {
		memcpy(link, value, size);
		link[size] = 0;
		r = tc_link_set(FS(req)->store, ino, link,
				(flags & XATTR_CREATE ? TC_LINK_CREATE : 0) |
				(flags & XATTR_REPLACE ? TC_LINK_REPLACE : 0));
		if (r == -ENOENT) /* not a node of the store */
			r = -ENOTSUP;
	}
	reply_err(req, r);
}

static void tcfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	int r = !is_parent_xattr(name) ? -ENODATA
		: tc_link_set(FS(req)->store, ino, NULL, TC_LINK_REPLACE);
	if (r == -ENOENT || r == -ENOTSUP)
		r = -ENODATA;
	reply_err(req, r);
}

const struct fuse_lowlevel_ops tcfs_ops = {
	.init = tcfs_init,
	.lookup = tcfs_lookup,
	.forget = tcfs_forget,
	.forget_multi = tcfs_forget_multi,
	.getattr = tcfs_getattr,
	.setattr = tcfs_setattr,
	.mknod = tcfs_mknod,
	.mkdir = tcfs_mkdir,
	.unlink = tcfs_unlink,
	.rmdir = tcfs_rmdir,
	.symlink = tcfs_symlink,
	.rename = tcfs_rename,
	.link = tcfs_link,
	.create = tcfs_create,
	.open = tcfs_open,
	.read = tcfs_read,
	.write = tcfs_write,
	.flush = tcfs_flush,
	.release = tcfs_release,
	.fsync = tcfs_fsync,
	.fallocate = tcfs_fallocate,
	.opendir = tcfs_opendir,
	.readdir = tcfs_readdir,
	.readdirplus = tcfs_readdirplus,
	.releasedir = tcfs_releasedir,
	.fsyncdir = tcfs_fsyncdir,
	.statfs = tcfs_statfs,
	.getxattr = tcfs_getxattr,
	.ioctl = tcfs_ioctl,
	.listxattr = tcfs_listxattr,
	.setxattr = tcfs_setxattr,
	.removexattr = tcfs_removexattr,
};
