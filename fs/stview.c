/*
 * stview.c - each entry's .safetensors view (TC_VIEW_NAME): one
 * safetensors file of the entry's tensors, built by tc_view_open() and
 * served from the pool (lib/stview.c has what it holds).
 *
 *   ino         E | TCFS_META_BIT | TCFS_VIEW_BIT for entry E: with the
 *               generated files' bit, so ops.c's checks of that bit (no
 *               names under it, no directory) hold for it as they are
 *   name        TC_VIEW_NAME in every entry, not in groups or the root:
 *               found by lookup, not listed by readdir (as meta.json, so
 *               that copies of an entry see exactly its tensors); the
 *               store reserves the name (EEXIST for a create)
 *   attributes  the entry's owner and times, mode 0444, no blocks; size:
 *               what an open now would read (tc_view_stat), or through a
 *               handle its own view's; attr timeout TCFS_META_ATTR_TIMEOUT
 *               (it changes with the entry)
 *   open        read-only: EACCES for writing, even for root; the handle
 *               holds a tc_view, fixed until release.  Buffered, with
 *               kcache.c keyed by the view's content digest, so mmap works
 *               (safetensors readers map the file) and a second open of
 *               unchanged content keeps the kernel's pages
 *   read        ops.c: fuse_reply_iov over the header and pool spans
 *               (tc_view_map): tensor bytes are not copied in the daemon;
 *               the header is (reply_iov: a release may free it while a
 *               reply is still being sent)
 *   changes     unlink, rename from or onto it: EPERM; rmdir: ENOTDIR;
 *               chmod/chown to what it is: done, else EPERM; truncate:
 *               EPERM; times: accepted and ignored
 *
 * Like generated.c, a tcfs_view_<op> returns 0 or -errno, or, for a name
 * that is no view's, TCFS_GEN_PASS, and never replies.  No locks of its
 * own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tcfs.h"

#define VIEW_BITS (TCFS_META_BIT | TCFS_VIEW_BIT)

/* Is @name in @parent a view?  0 yes (*@d: the entry), TCFS_GEN_PASS no,
 * or -errno. */
static int view_named(struct tcfs *fs, uint64_t parent, const char *name,
		      struct tc_stat *d)
{
	if ((parent & TCFS_META_BIT) || strcmp(name, TC_VIEW_NAME))
		return TCFS_GEN_PASS;
	int err = tc_getattr(fs->store, parent, d);
	if (err)
		return err;
	return d->kind == TC_KIND_ENTRY ? 0 : TCFS_GEN_PASS;
}

int tcfs_view_named(struct tcfs *fs, uint64_t parent, const char *name)
{
	struct tc_stat d;
	return view_named(fs, parent, name, &d);
}

/* Attributes of the view of entry @d: the size of @h's view, or of one
 * opened now. */
static int view_attr(struct tcfs *fs, const struct tc_stat *d,
		     const struct tcfs_handle *h, struct stat *a)
{
	uint64_t size;
	int err = 0;

	if (h && h->kind == H_VIEW)
		size = tc_view_size(h->view);
	else
		err = tc_view_stat(fs->store, d->id, &size);
	if (err)
		return err;
	memset(a, 0, sizeof(*a));
	a->st_ino = d->id | VIEW_BITS;
	a->st_mode = S_IFREG | 0444;
	a->st_nlink = 1;
	a->st_uid = d->uid;
	a->st_gid = d->gid;
	a->st_size = (off_t)size;
	a->st_blocks = 0; /* holds no pool space of its own: du counts once */
	a->st_blksize = TCFS_IO_SIZE;
	a->st_atim = d->atime;
	a->st_mtim = d->mtime;
	a->st_ctim = d->ctime;
	return 0;
}

/* The entry whose view is @ino. */
static int view_entry(struct tcfs *fs, uint64_t ino, struct tc_stat *d)
{
	int err = tc_getattr(fs->store, ino & ~VIEW_BITS, d);
	if (err)
		return err;
	return d->kind == TC_KIND_ENTRY ? 0 : -ENOENT;
}

int tcfs_view_lookup(struct tcfs *fs, uint64_t parent, const char *name,
		     struct fuse_entry_param *e)
{
	struct tc_stat d;
	int err = view_named(fs, parent, name, &d);
	if (err)
		return err;
	memset(e, 0, sizeof(*e));
	err = view_attr(fs, &d, NULL, &e->attr);
	if (err)
		return err;
	e->ino = e->attr.st_ino;
	e->generation = 1;
	e->entry_timeout = TCFS_ENTRY_TIMEOUT;
	e->attr_timeout = TCFS_META_ATTR_TIMEOUT;
	return 0;
}

int tcfs_view_getattr(struct tcfs *fs, uint64_t ino,
		      const struct tcfs_handle *h, struct stat *a,
		      double *timeout)
{
	struct tc_stat d;
	int err = view_entry(fs, ino, &d);
	if (err)
		return err;
	*timeout = TCFS_META_ATTR_TIMEOUT;
	return view_attr(fs, &d, h, a);
}

int tcfs_view_setattr(struct tcfs *fs, uint64_t ino, const struct stat *attr,
		      int to_set, struct stat *a, double *timeout)
{
	int err = tcfs_view_getattr(fs, ino, NULL, a, timeout);
	if (err)
		return err;
	if ((to_set & FUSE_SET_ATTR_SIZE) ||
	    ((to_set & FUSE_SET_ATTR_MODE) &&
	     (attr->st_mode & 07777) != (a->st_mode & 07777)) ||
	    ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != a->st_uid) ||
	    ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != a->st_gid))
		return -EPERM;
	return 0;
}

int tcfs_view_open(struct tcfs *fs, uint64_t ino, struct fuse_file_info *fi,
		   struct tcfs_handle **hp)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	struct tcfs_handle *h = tcfs_handle_new(H_VIEW, ino);
	if (!h)
		return -ENOMEM;
	int err = tc_view_open(fs->store, ino & ~VIEW_BITS, &h->view);
	if (err) {
		free(h);
		return err == -EINVAL ? -ENOENT : err; /* no longer an entry */
	}
	/* kcache.c's "unknown" is UINT64_MAX: never a version */
	h->version = tc_view_content(h->view) & ~1ull;
	int mode = tcfs_kcache_open(fs->kcache, ino, h->version);
	fi->keep_cache = mode == TCFS_KC_KEEP;
	fi->direct_io = mode == TCFS_KC_DIRECT;
	fi->noflush = 1;
	h->kc_counted = mode != TCFS_KC_DIRECT;
	*hp = h;
	return 0;
}

void tcfs_view_free(struct tcfs *fs, struct tcfs_handle *h)
{
	if (h->kc_counted)
		tcfs_kcache_close(fs->kcache, h->ino);
	tc_view_close(fs->store, h->view);
	free(h);
}
