/*
 * ops.c - the FUSE low-level handlers of tcachefs.
 *
 * Each request has a handler tcfs_<op>(req, ...) that calls a worker
 * op_<op>(...) returning 0 or a negative errno, then replies: errors go
 * through reply_err(), the one place where lib errors become FUSE errors.
 * The workers only translate: every decision about storage is libtcache's.
 *
 * What the kernel sees:
 *   ino                   node id (root 1); meta.json of dir D: D|META_BIT
 *   entry, group          directories; tensor: regular file
 *   meta.json             a regular file in every entry and group, found
 *                         by name but not listed by readdir: cp -r, tar,
 *                         rsync and diff -r then see exactly the user's
 *                         tensors, and a tree copied out of the mount can
 *                         be copied back in (a listed meta.json would be
 *                         copied along and its O_EXCL create refused);
 *                         read = a render taken at open, write = bytes
 *                         buffered in the handle and applied with
 *                         tc_meta_set() at flush (its error, EINVAL, is
 *                         what close() returns); opened with direct_io
 *                         because its size changes behind the kernel.
 *
 * File handles (fi->fh): struct tcfs_handle, for a tensor (a tc_file) or
 * for a meta.json (a byte buffer).  Directory handles: struct tcfs_dir, a
 * snapshot of the children's ids taken by opendir (tc_list); readdir
 * offsets index the listing ".", "..", children....
 *
 * Threads: handlers run on the session loop's worker threads, any number at
 * once; libtcache is thread-safe.  Locks here:
 *   fs->handles_lock      the list of open handles (shutdown closes them)
 *   tcfs_handle.lock      a meta.json handle's buffer
 *   gone_lock             the meta.json names removed per process
 * All are leaves: nothing else is locked and no lib call made while held,
 * except that a meta.json handle's lock is held across tc_meta_set().
 * Kernel notifications are never sent from here (see notify.c).
 */
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>

#include "tcfs.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define READ_SPANS 32          /* spans per read reply before falling back */
#define SETTLE_MS 2000         /* longest wait for eviction notices */

/* Every fi->fh points at a struct whose first member is its kind. */
enum hkind { H_TENSOR = 1, H_META, H_DIR };

struct tcfs_handle {
	enum hkind kind;   /* H_TENSOR or H_META */
	struct tcfs_handle *prev, *next; /* protected by fs->handles_lock */
	uint64_t ino;
	bool writable;
	/* H_TENSOR */
	tc_file *f;
	uint64_t version;  /* tensor version when opened */
	bool kc_counted;   /* a buffered reader counted in kcache.c */
	uint64_t parent;   /* created by this handle: its directory and */
	char *name;        /* name, to tell the kernel if it is dropped */
	/* H_META */
	uint64_t dir;
	pthread_mutex_t lock;
	char *buf;         /* protected by lock */
	size_t len, cap;   /* protected by lock */
	bool dirty;        /* protected by lock: to apply at flush */
};

struct tcfs_dir {
	enum hkind kind;   /* H_DIR */
	uint64_t ino, parent;
	uint64_t *ids;     /* tc_list snapshot */
	size_t n;
};

static struct tcfs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct tcfs_handle *H(struct fuse_file_info *fi)
{
	struct tcfs_handle *h = (struct tcfs_handle *)(uintptr_t)fi->fh;
	assert(h && (h->kind == H_TENSOR || h->kind == H_META));
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
	return h && (h->kind == H_TENSOR || h->kind == H_META) ? h : NULL;
}

/* ---- replies ------------------------------------------------------------ */

/* An operation failed with @err because the journal could not be
 * written (a full disk under the store, an I/O error): say so, naming
 * the file system, at most once a second. */
static void log_journal_error(struct tcfs *fs, int err)
{
	static _Atomic int64_t last; /* CLOCK_MONOTONIC s of the last message */
	struct timespec ts;
	if (tc_store_journal_error(fs->store) != err)
		return; /* not the journal: a full pool, a bad request... */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t was = last;
	if (was == ts.tv_sec + 1 || !atomic_compare_exchange_strong(
					    &last, &was, ts.tv_sec + 1))
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

/*
 * Every directory has one generated file, with ino = dir id | META_BIT:
 * an entry's or group's meta.json, and the root's stats file (read-only,
 * the JSON of tc_stats_json()).  Both are found by name, never listed.
 */
static const char *gen_name(const struct tc_stat *d)
{
	return d->kind == TC_KIND_ROOT ? TC_STATS_NAME : TC_META_NAME;
}

static bool may_be_gen(const char *name)
{
	return !strcmp(name, TC_META_NAME) || !strcmp(name, TC_STATS_NAME);
}

static bool has_meta(const struct tc_stat *st)
{
	return st->kind != TC_KIND_TENSOR;
}

/* The generated file's current contents (malloc'd). */
static int gen_render(struct tcfs *fs, const struct tc_stat *d, char **json,
		      size_t *len)
{
	if (d->kind != TC_KIND_ROOT)
		return tc_meta_get(fs->store, d->id, json, len);
	struct tc_stats st;
	tc_store_stats(fs->store, &st);
	return tc_stats_json(&st, json, len);
}

static int check_name(const char *name)
{
	return strlen(name) > TC_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* Attributes of the generated file of directory @d (size: a fresh
 * render). */
static int meta_attr(struct tcfs *fs, const struct tc_stat *d, struct stat *a)
{
	char *json = NULL;
	size_t len = 0;
	int err = gen_render(fs, d, &json, &len);
	if (err)
		return err;
	free(json);
	memset(a, 0, sizeof(*a));
	a->st_ino = d->id | TCFS_META_BIT;
	a->st_mode = S_IFREG | (d->kind == TC_KIND_ROOT ? 0444 : d->mode & 0666);
	a->st_nlink = 1;
	a->st_uid = d->uid;
	a->st_gid = d->gid;
	a->st_size = (off_t)len;
	a->st_blocks = 0; /* holds no pool space: du stays within capacity */
	a->st_blksize = TC_BLOCK;
	a->st_atim = d->atime;
	a->st_mtim = d->mtime;
	a->st_ctim = d->ctime;
	return 0;
}

static void meta_entry(const struct stat *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->st_ino;
	e->generation = 1;
	e->attr = *a;
	e->entry_timeout = TCFS_ENTRY_TIMEOUT;
	e->attr_timeout = TCFS_META_ATTR_TIMEOUT;
}

/* Is @name in @parent its generated file?  1 yes, 0 no, or -errno.
 * Fills *@pst with the parent's attributes when it answers 1. */
static int names_meta(struct tcfs *fs, uint64_t parent, const char *name,
		      struct tc_stat *pst)
{
	if (!may_be_gen(name))
		return 0;
	struct tc_stat st;
	int err = tc_getattr(fs->store, parent, &st);
	if (err)
		return err;
	if (!has_meta(&st) || strcmp(name, gen_name(&st)))
		return 0;
	if (pst)
		*pst = st;
	return 1;
}

/*
 * unlink(meta.json) succeeds and has its effect for the process that
 * asked: for it the name is absent (lookup ENOENT, a second unlink
 * ENOENT) until it creates the name again, which opens the file for
 * writing from empty, or for META_GONE_S seconds.  Everyone else still
 * finds the generated file, which cannot go.  So tar and unzip -o, which
 * remove a file that is in the way and create it again with O_EXCL, go on
 * and their write is applied at close like any write of meta.json, where
 * otherwise they would find the name again after every removal and loop
 * forever.  (The pid is the kernel's task id of the request.)
 */
#define META_GONE_MAX 64
#define META_GONE_S 10
struct meta_gone {
	uint64_t dir;    /* 0: a free slot */
	pid_t pid;
	int64_t until;   /* CLOCK_MONOTONIC seconds */
};
static struct meta_gone gone_list[META_GONE_MAX]; /* protected by gone_lock */
static pthread_mutex_t gone_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The record that meta.json of @dir is gone for @pid, or NULL.  Lock held. */
static struct meta_gone *gone_find_locked(uint64_t dir, pid_t pid, int64_t now)
{
	for (int i = 0; i < META_GONE_MAX; i++)
		if (gone_list[i].dir == dir && gone_list[i].pid == pid &&
		    gone_list[i].until > now)
			return &gone_list[i];
	return NULL;
}

/* Is meta.json of @dir gone for @pid?  With @take the record goes too
 * (the name is being created again). */
static bool meta_gone(uint64_t dir, pid_t pid, bool take)
{
	pthread_mutex_lock(&gone_lock);
	struct meta_gone *g = gone_find_locked(dir, pid, mono_s());
	if (g && take)
		g->dir = 0;
	pthread_mutex_unlock(&gone_lock);
	return g != NULL;
}

/* unlink of meta.json of @dir by @pid: see above.  0 or -ENOENT. */
static int meta_unlink(uint64_t dir, pid_t pid)
{
	int64_t now = mono_s();
	int err = 0;
	pthread_mutex_lock(&gone_lock);
	if (gone_find_locked(dir, pid, now)) {
		err = -ENOENT;
	} else {
		struct meta_gone *slot = &gone_list[0];
		for (int i = 0; i < META_GONE_MAX; i++)
			if (gone_list[i].until < slot->until)
				slot = &gone_list[i]; /* free, expired or oldest */
		*slot = (struct meta_gone){ dir, pid, now + META_GONE_S };
	}
	pthread_mutex_unlock(&gone_lock);
	return err;
}

/* The owner of a new node: the caller, with the group of a set-gid parent
 * (which also hands its set-gid bit to new directories), as local file
 * systems do. */
static int new_owner(struct tcfs *fs, fuse_req_t req, uint64_t parent,
		     uint32_t *mode, bool dir, uint32_t *uid, uint32_t *gid)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct tc_stat pst;
	int err = tc_getattr(fs->store, parent, &pst);
	if (err)
		return err;
	*uid = ctx->uid;
	*gid = ctx->gid;
	if (pst.mode & S_ISGID) {
		*gid = pst.gid;
		if (dir)
			*mode |= S_ISGID;
	}
	return 0;
}

static void handle_link(struct tcfs *fs, struct tcfs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->prev = NULL;
	h->next = fs->handles;
	if (fs->handles)
		fs->handles->prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->handles_lock);
}

static void handle_unlink(struct tcfs *fs, struct tcfs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_lock);
}

static struct tcfs_handle *handle_new(enum hkind kind, uint64_t ino)
{
	struct tcfs_handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->kind = kind;
	h->ino = ino;
	if (kind == H_META)
		pthread_mutex_init(&h->lock, NULL);
	return h;
}

/* Free a handle that is not (or no longer) linked. */
static void handle_free(struct tcfs *fs, struct tcfs_handle *h)
{
	if (!h)
		return;
	if (h->kind == H_META) {
		pthread_mutex_destroy(&h->lock);
		free(h->buf);
	} else {
		if (h->kc_counted)
			tcfs_kcache_close(fs->kcache, h->ino);
		tc_file_close(fs->store, h->f);
		free(h->name);
	}
	free(h);
}

/* Apply a meta.json handle's buffer if it was written.  Lock held. */
static int meta_apply_locked(struct tcfs *fs, struct tcfs_handle *h)
{
	if (!h->dirty)
		return 0;
	h->dirty = false;
	return tc_meta_set(fs->store, h->dir, h->buf ? h->buf : "", h->len);
}

/* Resize a meta.json buffer to @len, zero-filling.  Lock held. */
static int meta_resize_locked(struct tcfs_handle *h, size_t len)
{
	if (len > TCFS_META_MAX)
		return -EFBIG;
	if (len > h->cap) {
		size_t ncap = h->cap ? h->cap : 4096;
		while (ncap < len)
			ncap *= 2;
		if (ncap > TCFS_META_MAX)
			ncap = TCFS_META_MAX;
		char *nb = realloc(h->buf, ncap);
		if (!nb)
			return -ENOMEM;
		h->buf = nb;
		h->cap = ncap;
	}
	if (len > h->len)
		memset(h->buf + h->len, 0, len - h->len);
	h->len = len;
	return 0;
}

void tcfs_close_all(struct tcfs *fs)
{
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
	if (parent & TCFS_META_BIT)
		return -ENOTDIR;
	struct tc_stat st;
	int m = names_meta(fs, parent, name, &st);
	if (m < 0)
		return m;
	if (m) {
		struct stat a;
		if (meta_gone(parent, pid, false))
			return -ENOENT;
		err = meta_attr(fs, &st, &a);
		if (err)
			return err;
		meta_entry(&a, e);
		return 0;
	}
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
	if (err)
		reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
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

static int op_getattr(struct tcfs *fs, uint64_t ino, struct stat *a,
		      double *timeout)
{
	struct tc_stat st;
	if (ino & TCFS_META_BIT) {
		int err = tc_getattr(fs->store, ino & ~TCFS_META_BIT, &st);
		if (err)
			return err;
		if (!has_meta(&st))
			return -ENOENT;
		*timeout = TCFS_META_ATTR_TIMEOUT;
		return meta_attr(fs, &st, a);
	}
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
	int err = op_getattr(FS(req), ino, &a, &timeout);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_attr(req, &a, timeout);
}

static struct timespec now_ts(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

/* setattr of a meta.json: only its size, through a write handle (the
 * ftruncate of an open for writing); times are accepted and ignored (it
 * is generated), owner and mode belong to its directory. */
static int op_setattr_meta(struct tcfs *fs, uint64_t ino, struct stat *attr,
			   int to_set, struct tcfs_handle *h, struct stat *a,
			   double *timeout)
{
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
		      FUSE_SET_ATTR_GID)) {
		/* its mode and owner are its directory's: setting them to
		 * what they are (cp -a, tar, unzip) is done; else EPERM */
		struct stat cur;
		double t;
		int err = op_getattr(fs, ino, &cur, &t);
		if (err)
			return err;
		if (((to_set & FUSE_SET_ATTR_MODE) &&
		     (attr->st_mode & 07777) != (cur.st_mode & 07777)) ||
		    ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != cur.st_uid) ||
		    ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != cur.st_gid))
			return -EPERM;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && !h) {
		/* open(O_TRUNC) arrives as an open, then a truncate without a
		 * handle: it belongs to the newest writable handle. */
		int err = -EPERM;
		pthread_mutex_lock(&fs->handles_lock);
		for (struct tcfs_handle *o = fs->handles; o; o = o->next)
			if (o->kind == H_META && o->ino == ino && o->writable) {
				pthread_mutex_lock(&o->lock);
				err = meta_resize_locked(o, (size_t)attr->st_size);
				if (!err)
					o->dirty = true;
				pthread_mutex_unlock(&o->lock);
				break;
			}
		pthread_mutex_unlock(&fs->handles_lock);
		if (err)
			return err;
		to_set &= ~FUSE_SET_ATTR_SIZE;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (!h || h->kind != H_META || !h->writable)
			return -EPERM;
		if (attr->st_size < 0)
			return -EINVAL;
		pthread_mutex_lock(&h->lock);
		int err = meta_resize_locked(h, (size_t)attr->st_size);
		if (!err)
			h->dirty = true;
		pthread_mutex_unlock(&h->lock);
		if (err)
			return err;
	}
	int err = op_getattr(fs, ino, a, timeout);
	if (!err && h && h->kind == H_META && (to_set & FUSE_SET_ATTR_SIZE))
		a->st_size = attr->st_size;
	return err;
}

static int op_setattr(struct tcfs *fs, uint64_t ino, struct stat *attr,
		      int to_set, struct tcfs_handle *h, struct stat *a,
		      double *timeout)
{
	if (ino & TCFS_META_BIT)
		return op_setattr_meta(fs, ino, attr, to_set, h, a, timeout);

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
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		sa.valid |= TC_SET_ATIME;
		sa.atime = now_ts();
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		sa.valid |= TC_SET_ATIME;
		sa.atime = attr->st_atim;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		sa.valid |= TC_SET_MTIME;
		sa.mtime = now_ts();
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		sa.valid |= TC_SET_MTIME;
		sa.mtime = attr->st_mtim;
	}
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
	if (err)
		reply_err(req, err);
	else
		fuse_reply_attr(req, &a, timeout);
}

/* ---- directories ------------------------------------------------------------ */

static int op_mkdir(struct tcfs *fs, fuse_req_t req, uint64_t parent,
		    const char *name, mode_t mode, struct fuse_entry_param *e)
{
	int err = check_name(name);
	if (err)
		return err;
	if (parent & TCFS_META_BIT)
		return -ENOTDIR;
	uint32_t m = mode & 07777, uid, gid;
	err = new_owner(fs, req, parent, &m, true, &uid, &gid);
	if (err)
		return err;
	struct tc_stat st;
	err = tc_mkdir(fs->store, parent, name, m, uid, gid, &st);
	if (err)
		return err;
	stat_to_entry(&st, e);
	return 0;
}

static void tcfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode)
{
	struct fuse_entry_param e;
	int err = op_mkdir(FS(req), req, parent, name, mode, &e);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static int op_rmdir(struct tcfs *fs, uint64_t parent, const char *name)
{
	int err = check_name(name);
	if (err)
		return err;
	if (parent & TCFS_META_BIT)
		return -ENOTDIR;
	int m = names_meta(fs, parent, name, NULL);
	if (m)
		return m < 0 ? m : -ENOTDIR;
	return tc_rmdir(fs->store, parent, name);
}

static void tcfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	reply_err(req, op_rmdir(FS(req), parent, name));
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
	err = tc_list(fs->store, ino, &d->ids, &d->n);
	if (err) {
		free(d);
		return err;
	}
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
	if (fuse_reply_open(req, fi) != 0) {
		free(d->ids);
		free(d);
	}
}

/*
 * Fill @buf (@size bytes) with the listing from offset @off: ".", ".." and
 * the snapshot's children (those that vanished since are skipped).
 * meta.json is not listed: see the top of this file.  Offsets are listing
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
	int err = buf ? op_readdir(FS(req), req, d, buf, size, off, plus,
				   &filled)
		      : -ENOMEM;
	if (err)
		reply_err(req, err);
	else
		fuse_reply_buf(req, buf, filled);
	free(buf);
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
		free(d->ids);
		free(d);
	}
	reply_err(req, 0);
}

static void tcfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			  struct fuse_file_info *fi)
{
	reply_err(req, tc_store_sync(FS(req)->store));
}

/* ---- tensor and meta.json files ---------------------------------------------- */

static int op_create(struct tcfs *fs, fuse_req_t req, uint64_t parent,
		     const char *name, mode_t mode, struct tcfs_handle **hp,
		     struct fuse_entry_param *e)
{
	int err = check_name(name);
	if (err)
		return err;
	if (parent & TCFS_META_BIT)
		return -ENOTDIR;
	uint32_t m = mode & 07777, uid, gid;
	err = new_owner(fs, req, parent, &m, false, &uid, &gid);
	if (err)
		return err;
	struct tcfs_handle *h = handle_new(H_TENSOR, 0);
	if (!h)
		return -ENOMEM;
	struct tc_stat st;
	err = tc_create(fs->store, parent, name, m, uid, gid, &h->f, &st);
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

static int op_open_meta(struct tcfs *fs, uint64_t ino,
			struct fuse_file_info *fi, struct tcfs_handle **hp);

/* Create meta.json of @dir again after its caller removed it (see
 * meta_unlink): a write handle that starts empty. */
static int op_create_meta(struct tcfs *fs, uint64_t dir,
			  struct fuse_file_info *fi, struct tcfs_handle **hp,
			  struct fuse_entry_param *e)
{
	struct tc_stat st;
	struct stat a;
	int flags = fi->flags;
	fi->flags |= O_TRUNC;
	int err = op_open_meta(fs, dir | TCFS_META_BIT, fi, hp);
	fi->flags = flags;
	if (err)
		return err;
	err = tc_getattr(fs->store, dir, &st);
	if (!err)
		err = meta_attr(fs, &st, &a);
	if (err) {
		handle_free(fs, *hp);
		return err;
	}
	a.st_size = 0;
	meta_entry(&a, e);
	return 0;
}

static void tcfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, struct fuse_file_info *fi)
{
	struct tcfs *fs = FS(req);
	struct tcfs_handle *h = NULL;
	struct fuse_entry_param e;
	int err;
	if (names_meta(fs, parent, name, NULL) == 1 &&
	    meta_gone(parent, fuse_req_ctx(req)->pid, true))
		err = op_create_meta(fs, parent, fi, &h, &e);
	else
		err = op_create(fs, req, parent, name, mode, &h, &e);
	if (err) {
		reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->keep_cache = 0;
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
	if (!S_ISREG(mode))
		return -EPERM;
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
	if (err)
		reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static int op_open_meta(struct tcfs *fs, uint64_t ino,
			struct fuse_file_info *fi, struct tcfs_handle **hp)
{
	uint64_t dir = ino & ~TCFS_META_BIT;
	struct tc_stat st;
	int err = tc_getattr(fs->store, dir, &st);
	if (err)
		return err;
	if (!has_meta(&st))
		return -ENOENT;
	if (st.kind == TC_KIND_ROOT && (fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES; /* the stats file is read-only, even for root */
	struct tcfs_handle *h = handle_new(H_META, ino);
	if (!h)
		return -ENOMEM;
	h->dir = dir;
	h->writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	if (h->writable && (fi->flags & O_TRUNC)) {
		h->dirty = true; /* an empty meta.json is applied (EINVAL) */
	} else {
		err = gen_render(fs, &st, &h->buf, &h->len);
		if (err) {
			handle_free(fs, h);
			return err;
		}
		h->cap = h->len;
	}
	fi->direct_io = 1;
	*hp = h;
	return 0;
}

static int op_open(struct tcfs *fs, uint64_t ino, struct fuse_file_info *fi,
		   struct tcfs_handle **hp)
{
	if (ino & TCFS_META_BIT)
		return op_open_meta(fs, ino, fi, hp);

	struct tcfs_handle *h = handle_new(H_TENSOR, ino);
	if (!h)
		return -ENOMEM;
	unsigned flags = 0;
	h->writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	if (h->writable) {
		flags |= TC_O_WRITE;
		if (fi->flags & O_TRUNC)
			flags |= TC_O_TRUNC;
	}
	int err = tc_open(fs->store, ino, flags, &h->f);
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
		if (tc_getattr(fs->store, ino, &cur) == 0 && cur.writers)
			fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
	}
	*hp = h;
	return 0;
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
		/* copy out: a release may free the buffer as soon as the
		 * kernel has our reply */
		char *copy = NULL;
		pthread_mutex_lock(&h->lock);
		size_t o = (size_t)off < h->len ? (size_t)off : h->len;
		size_t n = h->len - o < size ? h->len - o : size;
		if (n && (copy = malloc(n)))
			memcpy(copy, h->buf + o, n);
		pthread_mutex_unlock(&h->lock);
		if (n && !copy)
			reply_err(req, -ENOMEM);
		else
			fuse_reply_buf(req, copy, n);
		free(copy);
		return;
	}

	if (!h->writable) {
		/* A read-only handle's bytes stay put until close: answer
		 * straight from the pool mmap (one copy, in the kernel). */
		struct tc_span sp[READ_SPANS];
		struct iovec iov[READ_SPANS];
		int n = 0;
		size_t total = 0;
		int err = tc_file_map(fs->store, h->f, (uint64_t)off, size, sp,
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
				fuse_reply_iov(req, iov, n);
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
	ssize_t r = tc_file_pread(fs->store, h->f, buf, size, (uint64_t)off);
	if (r < 0)
		reply_err(req, (int)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static ssize_t op_write(struct tcfs *fs, struct tcfs_handle *h,
			const char *buf, size_t size, off_t off)
{
	if (off < 0)
		return -EINVAL;
	if (!h->writable)
		return -EBADF;
	if (h->kind == H_META) {
		if ((uint64_t)off + size > TCFS_META_MAX)
			return -EFBIG;
		pthread_mutex_lock(&h->lock);
		size_t end = (size_t)off + size;
		int err = end > h->len ? meta_resize_locked(h, end) : 0;
		if (!err) {
			memcpy(h->buf + off, buf, size);
			h->dirty = true;
			/* A whole document already refused fails here, not
			 * only at close(), which some tools ignore (unzip). */
			if (tc_meta_check(fs->store, h->dir, h->buf, h->len) ==
			    -EINVAL)
				err = -EINVAL;
		}
		pthread_mutex_unlock(&h->lock);
		return err ? err : (ssize_t)size;
	}
	ssize_t r = tc_file_write(fs->store, h->f, buf, size, (uint64_t)off);
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
 * thread; see notify.c). */
static void forget_failed(struct tcfs *fs, struct tcfs_handle *h)
{
	struct tc_stat st;
	if (tc_lookup(fs->store, h->parent, h->name, &st) == 0 &&
	    st.id == h->ino)
		return;
	tcfs_notifier_evicted(fs->notifier, h->parent, h->ino, h->name);
	tcfs_notifier_settle(fs->notifier, SETTLE_MS);
}

/* flush = every close(): commit, so that close() returning 0 means the
 * tensor (or the meta.json) is stored. */
static int op_flush(struct tcfs *fs, struct tcfs_handle *h)
{
	if (!h->writable)
		return 0;
	if (h->kind == H_META) {
		pthread_mutex_lock(&h->lock);
		int err = meta_apply_locked(fs, h);
		pthread_mutex_unlock(&h->lock);
		return err;
	}
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
	reply_err(req, op_flush(FS(req), H(fi)));
}

/* release: commit what arrived after the last flush (a shared mapping's
 * pages are written back between close() and munmap()), then close. */
static void tcfs_release(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct tcfs *fs = FS(req);
	struct tcfs_handle *h = H(fi);
	int err = op_flush(fs, h);
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
	int err = op_flush(fs, h);
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
	if (parent & TCFS_META_BIT)
		return -ENOTDIR;
	/* meta.json is generated: removing it succeeds, and removes it for
	 * the caller alone (meta_unlink), so that rm of it works and tools
	 * that remove and create again never loop.  See fs/API-NOTES.md. */
	int m = names_meta(fs, parent, name, NULL);
	if (m)
		return m < 0 ? m : parent == TC_ROOT_ID ? -EPERM
						   : meta_unlink(parent, pid);
	return tc_unlink(fs->store, parent, name);
}

static void tcfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	reply_err(req, op_unlink(FS(req), parent, name, fuse_req_ctx(req)->pid));
}

static int op_rename(struct tcfs *fs, uint64_t parent, const char *name,
		     uint64_t newparent, const char *newname,
		     unsigned int flags)
{
	int err = check_name(name);
	if (!err)
		err = check_name(newname);
	if (err)
		return err;
	if ((parent | newparent) & TCFS_META_BIT)
		return -ENOTDIR;
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL; /* RENAME_EXCHANGE, RENAME_WHITEOUT */
	int m = names_meta(fs, parent, name, NULL);
	if (m)
		return m < 0 ? m : -EPERM;
	m = names_meta(fs, newparent, newname, NULL);
	if (m)
		return m < 0 ? m : -EPERM;
	return tc_rename(fs->store, parent, name, newparent, newname,
			 flags & RENAME_NOREPLACE ? TC_RENAME_NOREPLACE : 0);
}

static void tcfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			fuse_ino_t newparent, const char *newname,
			unsigned int flags)
{
	reply_err(req, op_rename(FS(req), parent, name, newparent, newname,
				 flags));
}

/* What the cache cannot be: symlinks and hard links. */
static void tcfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			 const char *name)
{
	int err = check_name(name);
	reply_err(req, err ? err : -EPERM);
}

static void tcfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		      const char *newname)
{
	int err = check_name(newname);
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

/* No extended attributes are stored.  getxattr answers ENOSYS: the kernel
 * then stops asking for the whole mount (callers get EOPNOTSUPP), which
 * saves the GETXATTR "security.capability" round trip it makes before
 * every write(2).  Writes are refused (cp -a and rsync -a treat ENOTSUP as
 * "not supported here"). */
static void tcfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  size_t size)
{
	reply_err(req, -ENOSYS);
}

static void tcfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

static void tcfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  const char *value, size_t size, int flags)
{
	reply_err(req, -ENOTSUP);
}

static void tcfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	reply_err(req, -ENOTSUP);
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
	.listxattr = tcfs_listxattr,
	.setxattr = tcfs_setxattr,
	.removexattr = tcfs_removexattr,
};
