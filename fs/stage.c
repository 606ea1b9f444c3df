/*
 * stage.c - TC_BATCH_STAGE and TC_BATCH_COMMIT: a page tier's puts with
 * the bytes written into the pool by the writer itself (tcache.h).
 *
 *   STAGE  sizes[n]              -> a run of the pool for each (off), a
 *                                   token; the handle keeps them staged
 *   (the writer pwrite()s each page at its off in the pool file)
 *   COMMIT token, n (name, link) -> one journal record naming them all
 *
 * So a batch of pages costs two requests and one record, where files cost
 * several requests and records a page.  Who may do this: root and the
 * pool file's owner, who may write that file anyway; anyone else gets
 * EACCES and writes files (staging space for a caller who cannot write
 * it would let them commit whatever bytes lay there).  A directory handle
 * keeps each STAGE's tensors under its token (ops.c) until its COMMIT,
 * whatever the outcome, or the handle's release, which drops what is not
 * committed: a writer killed mid-batch leaves nothing behind.
 *
 * Locking: a staging is its caller's alone (ops.c takes it off the
 * handle's list before a COMMIT); the store locks itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tcfs.h"

void tcfs_staging_drop(struct tcfs *fs, struct tcfs_staging *st)
{
	for (uint32_t i = 0; i < st->n; i++)
		tc_staged_drop(fs->store, st->t[i]);
	free(st->t);
	free(st->size);
	*st = (struct tcfs_staging){ 0 };
}

/* May @who write the pool file (@path)?  0 or -EACCES. */
static int may_write_pool(const struct fuse_ctx *who, const char *path)
{
	struct stat st;
	if (stat(path, &st))
		return -errno;
	if (who->uid == 0 || (who->uid == st.st_uid && (st.st_mode & S_IWUSR)))
		return 0;
	return -EACCES;
}

int tcfs_stage(struct tcfs *fs, const struct fuse_ctx *who,
	       struct tcfs_staging *out, struct tc_ioc_batch *b)
{
	struct tcfs_staging now = { 0 };
	int err = 0;

	if (!fs->store_path)
		return -ENOTTY;
	if (b->count > TC_BATCH_MAX)
		return -EINVAL;
	if (snprintf(b->pool, sizeof(b->pool), "%s/pool", fs->store_path) >=
	    (int)sizeof(b->pool))
		return -ENAMETOOLONG;
	err = may_write_pool(who, b->pool);
	if (!err && b->count &&
	    (!(now.t = calloc(b->count, sizeof(*now.t))) ||
	     !(now.size = calloc(b->count, sizeof(*now.size)))))
		err = -ENOMEM;
	b->present = 0;
	for (uint32_t i = 0; i < b->count && !err; i++) {
		struct tc_ioc_batch_item *it = &b->item[i];
		int r = tc_stage(fs->store, it->size, &now.t[i], &it->off);
		now.n = i + 1;
		now.size[i] = it->size;
		if (r == -EXDEV) {
			it->off = TC_BATCH_NOMAP; /* this one goes through a file */
			continue;
		}
		if (r)
			err = r;
		else
			b->present++;
	}
	if (err) {
		tcfs_staging_drop(fs, &now);
		return err;
	}
	*out = now;
	return 0;
}

int tcfs_stage_commit(struct tcfs *fs, const struct fuse_ctx *who,
		      uint64_t dir, struct tcfs_staging *st,
		      struct tc_ioc_batch *b)
{
	const char **names = NULL, **links = NULL;
	tc_staged **t = NULL;
	int *made = NULL, err = 0;
	uint32_t k = 0;
	size_t at = 0;

	if (b->count > st->n)
		err = -EINVAL;
	else if (b->count &&
		 (!(names = calloc(b->count, sizeof(*names))) ||
		  !(links = calloc(b->count, sizeof(*links))) ||
		  !(t = calloc(b->count, sizeof(*t))) ||
		  !(made = calloc(b->count, sizeof(*made)))))
		err = -ENOMEM;
	b->present = 0;
	/* names[]: a name and a link ("": none) for each staged item */
	for (uint32_t i = 0; i < b->count && !err; i++) {
		const char *name = tcfs_batch_name(b, &at);
		const char *link = name ? tcfs_batch_name(b, &at) : NULL;
		b->item[i].size = TC_BATCH_ABSENT;
		if (!link)
			err = -EINVAL; /* not NUL-ended inside names[] */
		else if (st->t[i]) { /* (none: the writer uses a file for it) */
			names[k] = name;
			links[k] = *link ? link : NULL;
			t[k++] = st->t[i];
		}
	}
	if (!err)
		err = tc_stage_commit(fs->store, dir, k, t, names, links,
				      0644 & ~who->umask, who->uid, who->gid,
				      made);
	if (!err) {
		/* consumed, made or not: none of them is the handle's now */
		k = 0;
		for (uint32_t i = 0; i < b->count; i++) {
			if (!st->t[i])
				continue;
			st->t[i] = NULL;
			if (made[k++]) {
				b->item[i].size = st->size[i];
				b->present++;
			}
		}
	}
	tcfs_staging_drop(fs, st);
	free(names);
	free(links);
	free(t);
	free(made);
	return err;
}
