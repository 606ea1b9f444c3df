/*
 * generated.c - the generated files: each entry's and group's meta.json,
 * and the root's stats file (TC_STATS_NAME).
 *
 * Every directory has one generated file; no tensor has one.  Its contents
 * are never stored: they are rendered when asked for, meta.json from
 * tc_meta_get() and the stats file from tc_store_stats() + tc_stats_json().
 *
 *   ino                   D | TCFS_META_BIT for the generated file of
 *                         directory D (D: an entry, a group or the root)
 *   name                  TC_META_NAME in entries and groups, TC_STATS_NAME
 *                         in the root: found by lookup, not listed by
 *                         readdir, so that cp -r, tar, rsync and diff -r
 *                         see exactly the user's tensors, and a tree copied
 *                         out of the mount can be copied back in (a listed
 *                         meta.json would be copied along and its O_EXCL
 *                         create refused)
 *   attributes            its directory's owner, times and mode & 0666
 *                         (the stats file: 0444); size: the length of a fresh render;
 *                         no blocks (it holds no pool space: du stays within
 *                         capacity); attr timeout TCFS_META_ATTR_TIMEOUT
 *                         (0), since its size changes behind the kernel
 *   read                  a render taken at open, held in the handle
 *   write                 bytes buffered in the handle (at most
 *                         TCFS_META_MAX) and applied with tc_meta_set() at
 *                         flush: all or nothing, its error (EINVAL) is what
 *                         close() returns; a whole document already refused,
 *                         or a start nothing can complete, fails at write()
 *                         too; each refusal's reason is logged
 *   open                  always direct_io: its size changes behind the
 *                         kernel, so no read may come from a stale page
 *                         cache; the stats file is read-only, even for root
 *
 * ops.c hands over every request that concerns a generated file, and
 * nothing else (but it answers ENOTDIR itself where one stands for the
 * directory of a mkdir, create, opendir or rename: that needs nothing
 * more): a tcfs_gen_<op> returns 0 or a negative errno like any worker,
 * or, for requests that name a file, TCFS_GEN_PASS when the name is no
 * generated file's.  Nothing here replies: ops.c's reply_err() stays the one place
 * where errors become replies.
 *
 * Invariants: a generated file is there as long as its directory is: it
 * cannot be moved (rename EPERM), no node takes its name (the store
 * answers EEXIST; a file renamed over meta.json becomes its document and
 * goes), it is no directory (ENOTDIR), and unlink of meta.json removes
 * the user's keys, and the name for the calling process alone, for a
 * while (the "gone" list below; the stats file: EPERM).  Its mode and
 * owner are its directory's.
 * A handle's buffer is the whole file as that handle sees it.
 *
 * Locks:
 *   tcfs_handle.lock      a generated file's handle's buffer; held across
 *                         tc_meta_check() at write and tc_meta_set() at
 *                         flush (the lib calls made under a lock of fs/)
 *   gone_lock             the meta.json names removed per process; a leaf
 *   fs->handles_lock --> tcfs_handle.lock   a truncate without a handle
 *                         (open(O_TRUNC)) finds the writable handle in the
 *                         list of open handles (ops.c)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <syslog.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "remote.h"
#include "tcfs.h"

/* ---- names and attributes ------------------------------------------------- */

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
	int err = tc_stats_json(&st, json, len);
	if (err)
		return err;
	/* the store's object, with "remote": {...} and "uring": {...} added
	 * before its end, when there is a remote tier and -o uring=on */
	char rs[1024], us[16384];
	size_t n = fs->remote ? tcfs_remote_stats(fs->remote, rs, sizeof(rs)) : 0;
	size_t m = tcfs_uring_stats(us, sizeof(us));
	if (!fs->remote && !m)
		return 0;
	char *end = strrchr(*json, '}');
	size_t head = end ? (size_t)(end - *json) : 0;
	while (head && (*json)[head - 1] == '\n')
		head--;
	size_t cap = head + n + m + 64;
	char *out = malloc(cap);
	if (!end || !out) {
		free(out);
		return end ? -ENOMEM : 0;
	}
	int k = snprintf(out, cap, "%.*s%s%.*s%s%s%.*s%s\n}\n", (int)head, *json,
			 fs->remote ? ",\n\t\"remote\": {" : "", (int)n, rs,
			 fs->remote ? "}" : "",
			 m ? ",\n\t\"uring\": {" : "", (int)m, us,
			 m ? "}" : "");
	free(*json);
	*json = out;
	*len = (size_t)k;
	return 0;
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

/* Is @name in @parent its generated file?  0 yes (*@pst, if given, gets
 * the parent's attributes), TCFS_GEN_PASS no, or -errno: -ENOTDIR when
 * @parent is a generated file itself (nothing is named under one). */
static int gen_named(struct tcfs *fs, uint64_t parent, const char *name,
		     struct tc_stat *pst)
{
	if (parent & TCFS_META_BIT)
		return -ENOTDIR;
	if (!may_be_gen(name))
		return TCFS_GEN_PASS;
	struct tc_stat st;
	int err = tc_getattr(fs->store, parent, &st);
	if (err)
		return err;
	if (!has_meta(&st) || strcmp(name, gen_name(&st)))
		return TCFS_GEN_PASS;
	if (pst)
		*pst = st;
	return 0;
}

/* The directory whose generated file is @ino: -ENOENT when that node has
 * none (a tensor). */
static int gen_dir(struct tcfs *fs, uint64_t ino, struct tc_stat *d)
{
	int err = tc_getattr(fs->store, ino & ~TCFS_META_BIT, d);
	if (err)
		return err;
	return has_meta(d) ? 0 : -ENOENT;
}

/* ---- meta.json removed for one process ---------------------------------------- */

/*
 * unlink(meta.json) succeeds and has its effect for the process that
 * asked: for it the name is absent (lookup ENOENT, a second unlink
 * ENOENT) until it creates the name again, which opens the file for
 * writing from empty, or for META_GONE_S seconds.  Everyone else still
 * finds the generated file, which cannot go.  So tar and unzip -o, which
 * remove a file that is in the way and create it again with O_EXCL, go on
 * and their write is applied at close like any write of meta.json, where
 * otherwise they would find the name again after every removal and loop
 * forever.  A process that makes a directory finds its meta.json gone the
 * same way (tcfs_gen_made), so that cp -r and cp -a, which create every
 * file of a directory they made with O_EXCL and never remove one, copy a
 * tree holding meta.json files.  (The pid is the kernel's task id of the
 * request.)
 */
#define META_GONE_MAX 1024
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

/* A directory @pid just made: its meta.json is gone for that process, as
 * after an unlink, so that cp -r, cp -a and tar, which create each file of
 * a directory they made with O_EXCL, can create it (the kernel answers
 * EEXIST for a name a lookup found, before asking us). */
void tcfs_gen_made(uint64_t dir, pid_t pid)
{
	meta_unlink(dir, pid);
}

/* ---- handles ------------------------------------------------------------------ */

static struct tcfs_handle *gen_handle_new(uint64_t ino)
{
	struct tcfs_handle *h = tcfs_handle_new(H_META, ino);
	if (h)
		pthread_mutex_init(&h->lock, NULL);
	return h;
}

void tcfs_gen_free(struct tcfs_handle *h)
{
	pthread_mutex_destroy(&h->lock);
	free(h->buf);
	free(h);
}

/* A refusal of @h's document, in the log with its reason, once a
 * handle.  Not an empty one: a shell's `>` closes a copy of the new
 * descriptor before it writes (an empty document flushed, refused). Lock
 * held. */
static void meta_refused_locked(struct tcfs *fs, struct tcfs_handle *h)
{
	char path[PATH_MAX];
	if (h->told || h->len == 0)
		return;
	h->told = true;
	const char *why = tc_meta_error();
	tcfs_log(LOG_WARNING, "meta.json of %s refused: %s",
		 tc_path(fs->store, h->dir, path, sizeof(path)) == 0 && path[0]
			 ? path : "the root",
		 why[0] ? why : "invalid");
}

/* Apply a meta.json handle's buffer if it was written.  Lock held. */
static int meta_apply_locked(struct tcfs *fs, struct tcfs_handle *h)
{
	if (!h->dirty)
		return 0;
	h->dirty = false;
	int err = tc_meta_set(fs->store, h->dir, h->buf ? h->buf : "", h->len);
	if (err == -EINVAL)
		meta_refused_locked(fs, h);
	return err;
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

/* Set the size of @h's buffer (a truncate): applied at flush. */
static int meta_truncate(struct tcfs_handle *h, size_t len)
{
	pthread_mutex_lock(&h->lock);
	if (len < h->written)
		h->written = len;
	if (len == 0)
		h->holes = false;
	int err = meta_resize_locked(h, len);
	if (!err)
		h->dirty = true;
	pthread_mutex_unlock(&h->lock);
	return err;
}

/* ---- requests ------------------------------------------------------------------- */

int tcfs_gen_lookup(struct tcfs *fs, uint64_t parent, const char *name,
		    pid_t pid, struct fuse_entry_param *e)
{
	struct tc_stat st;
	struct stat a;
	int err = gen_named(fs, parent, name, &st);
	if (err)
		return err;
	if (meta_gone(parent, pid, false))
		return -ENOENT;
	err = meta_attr(fs, &st, &a);
	if (err)
		return err;
	meta_entry(&a, e);
	return 0;
}

int tcfs_gen_getattr(struct tcfs *fs, uint64_t ino, struct stat *a,
		     double *timeout)
{
	struct tc_stat st;
	int err = gen_dir(fs, ino, &st);
	if (err)
		return err;
	*timeout = TCFS_META_ATTR_TIMEOUT;
	return meta_attr(fs, &st, a);
}

/* Only its size, through a write handle (the ftruncate of an open for
 * writing).  Times, mode and owner are accepted and change nothing: its
 * mode and owner are its directory's, its times too, and the tools that
 * copy a tree set them on every file they made (cp -a, tar, rsync -a,
 * shutil.copytree), often while the directory still has a mode of their
 * own choosing. */
int tcfs_gen_setattr(struct tcfs *fs, uint64_t ino, struct stat *attr,
		     int to_set, struct tcfs_handle *h, struct stat *a,
		     double *timeout)
{
	if ((to_set & FUSE_SET_ATTR_SIZE) && !h) {
		/* open(O_TRUNC) arrives as an open, then a truncate without a
		 * handle: it belongs to the newest writable handle. */
		int err = -EPERM;
		pthread_mutex_lock(&fs->handles_lock);
		for (struct tcfs_handle *o = fs->handles; o; o = o->next)
			if (o->kind == H_META && o->ino == ino && o->writable) {
				err = meta_truncate(o, (size_t)attr->st_size);
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
		int err = meta_truncate(h, (size_t)attr->st_size);
		if (err)
			return err;
	}
	int err = tcfs_gen_getattr(fs, ino, a, timeout);
	if (!err && h && h->kind == H_META && (to_set & FUSE_SET_ATTR_SIZE))
		a->st_size = attr->st_size;
	return err;
}

/* A generated file is no directory. */
int tcfs_gen_rmdir(struct tcfs *fs, uint64_t parent, const char *name)
{
	int err = gen_named(fs, parent, name, NULL);
	return err ? err : -ENOTDIR;
}

int tcfs_gen_open(struct tcfs *fs, uint64_t ino, struct fuse_file_info *fi,
		  struct tcfs_handle **hp)
{
	struct tc_stat st;
	int err = gen_dir(fs, ino, &st);
	if (err)
		return err;
	if (st.kind == TC_KIND_ROOT && (fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES; /* the stats file is read-only, even for root */
	struct tcfs_handle *h = gen_handle_new(ino);
	if (!h)
		return -ENOMEM;
	h->dir = ino & ~TCFS_META_BIT;
	h->writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	if (h->writable && (fi->flags & O_TRUNC)) {
		h->dirty = true; /* an empty meta.json is applied (EINVAL) */
	} else {
		err = gen_render(fs, &st, &h->buf, &h->len);
		if (err) {
			tcfs_gen_free(h);
			return err;
		}
		h->cap = h->len;
	}
	fi->direct_io = 1;
	*hp = h;
	return 0;
}

/* Create meta.json of @parent again after the calling process removed it
 * or made the directory (see meta_unlink): a write handle that starts
 * empty.  The kernel asks to create a name only when its lookup found
 * none, so that is what happened, even if the record of it has since
 * been recycled (many directories made at once).  Any other create is no
 * generated file's: TCFS_GEN_PASS. */
int tcfs_gen_create(struct tcfs *fs, uint64_t parent, const char *name,
		    pid_t pid, struct fuse_file_info *fi,
		    struct tcfs_handle **hp, struct fuse_entry_param *e)
{
	if (gen_named(fs, parent, name, NULL) != 0 || parent == TC_ROOT_ID)
		return TCFS_GEN_PASS;
	meta_gone(parent, pid, true);
	struct tc_stat st;
	struct stat a;
	int flags = fi->flags;
	fi->flags |= O_TRUNC;
	int err = tcfs_gen_open(fs, parent | TCFS_META_BIT, fi, hp);
	fi->flags = flags;
	if (err)
		return err;
	err = tc_getattr(fs->store, parent, &st);
	if (!err)
		err = meta_attr(fs, &st, &a);
	if (err) {
		tcfs_gen_free(*hp);
		return err;
	}
	a.st_size = 0;
	meta_entry(&a, e);
	return 0;
}

ssize_t tcfs_gen_read(struct tcfs_handle *h, size_t size, off_t off,
		      char **copy)
{
	/* copy out: a release may free the buffer as soon as the kernel has
	 * our reply */
	char *c = NULL;
	pthread_mutex_lock(&h->lock);
	size_t o = (size_t)off < h->len ? (size_t)off : h->len;
	size_t n = h->len - o < size ? h->len - o : size;
	if (n && (c = malloc(n)))
		memcpy(c, h->buf + o, n);
	pthread_mutex_unlock(&h->lock);
	*copy = c;
	return n && !c ? -ENOMEM : (ssize_t)n;
}

ssize_t tcfs_gen_write(struct tcfs *fs, struct tcfs_handle *h,
		       const char *buf, size_t size, off_t off)
{
	if ((uint64_t)off + size > TCFS_META_MAX)
		return -EFBIG;
	pthread_mutex_lock(&h->lock);
	size_t end = (size_t)off + size;
	int err = end > h->len ? meta_resize_locked(h, end) : 0;
	if (!err) {
		memcpy(h->buf + off, buf, size);
		h->dirty = true;
		if ((size_t)off > h->written)
			h->holes = true;
		else if (end > h->written)
			h->written = end;
		/* A document already refused, whole or by its start ("{bad"),
		 * fails here, not only at close(), which shells and some
		 * tools (unzip) ignore.  Its bytes stay: close() fails too.
		 * Bytes of the document it replaces may follow what this
		 * handle wrote (no O_TRUNC yet): then only its start is
		 * judged. */
		int r = h->holes ? 0
			: h->written == h->len
				? tc_meta_check(fs->store, h->dir, h->buf, h->len)
				: tc_meta_check_start(h->buf, h->written);
		if (r == -EINVAL) {
			err = -EINVAL;
			meta_refused_locked(fs, h);
		}
	}
	pthread_mutex_unlock(&h->lock);
	return err ? err : (ssize_t)size;
}

int tcfs_gen_flush(struct tcfs *fs, struct tcfs_handle *h)
{
	pthread_mutex_lock(&h->lock);
	int err = meta_apply_locked(fs, h);
	pthread_mutex_unlock(&h->lock);
	return err;
}

/* rm meta.json: the user's keys go (tc_meta_remove); the name shows
 * ours alone again, and for the caller it is gone for a while
 * (meta_unlink), so that tools that remove and create again never loop.
 * See fs/API-NOTES.md.  The stats file: EPERM. */
int tcfs_gen_unlink(struct tcfs *fs, uint64_t parent, const char *name,
		    pid_t pid)
{
	int err = gen_named(fs, parent, name, NULL);
	if (err)
		return err;
	if (parent == TC_ROOT_ID)
		return -EPERM;
	if (meta_gone(parent, pid, false))
		return -ENOENT;
	err = tc_meta_remove(fs->store, parent);
	return err ? err : meta_unlink(parent, pid);
}

/*
 * A file renamed over meta.json in its own directory (rsync's temp file)
 * becomes it: tc_meta_take() applies its bytes and removes it, or refuses
 * (EINVAL) and nothing changes.  The kernel has moved its dentry to the
 * name meta.json: the notifier drops it (a lookup then finds the
 * generated file; until then a stale inode answers ESTALE, and the VFS
 * looks again).  From another directory: EXDEV (mv copies).  A generated
 * file itself never moves, nor does a directory take its place: EPERM.
 */
int tcfs_gen_rename(struct tcfs *fs, uint64_t parent, const char *name,
		    uint64_t newparent, const char *newname, unsigned flags,
		    pid_t pid)
{
	struct tc_stat src;
	int err = gen_named(fs, parent, name, NULL);
	if (err != TCFS_GEN_PASS)
		return err ? err : -EPERM;
	err = gen_named(fs, newparent, newname, NULL);
	if (err)
		return err;
	if (newparent == TC_ROOT_ID)
		return -EPERM;
	if (flags & TC_RENAME_NOREPLACE)
		return -EEXIST;
	if (parent != newparent)
		return -EXDEV;
	err = tc_lookup(fs->store, parent, name, &src);
	if (err)
		return err;
	if (src.kind != TC_KIND_TENSOR)
		return -EPERM;
	err = tc_meta_take(fs->store, parent, name);
	if (err)
		return err;
	meta_gone(parent, pid, true); /* there again for a caller who removed it */
	tcfs_notifier_evicted(fs->notifier, parent, src.id, TC_META_NAME);
	return 0;
}
