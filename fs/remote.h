/*
 * remote.h - the shared tier behind a mount: entries pushed to Redis in
 * the background (write-through) and fetched from it when a lookup at the
 * root finds nothing (read-through).  See remote.c.
 */
#ifndef TCFS_REMOTE_H
#define TCFS_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "tcache.h"

/* The -o remote* options as given (NULL: not given). */
struct tcfs_remote_opts {
	char *url;            /* remote= */
	char *prefix;         /* remote_prefix= (default "tcache") */
	char *password_file;  /* remote_password_file= */
	char *mode;           /* remote_mode=write-through|read-only */
	char *timeout;        /* remote_timeout=MS (default 500) */
	char *queue;          /* remote_queue=SIZE (default 256M) */
};

struct tcfs_remote;

/* Check the options (NULL url: no remote, *@out NULL, 0); -EINVAL with
 * the reason in @err.  Nothing is connected yet. */
int tcfs_remote_new(const struct tcfs_remote_opts *o, tc_store *s,
		    struct tcfs_remote **out, char *err, size_t errlen);

/* The store, once it is open (the options are checked before). */
void tcfs_remote_set_store(struct tcfs_remote *r, tc_store *s);

/* Start pushing (the store's change listener and the pusher thread).
 * 0 or a negative errno. */
int tcfs_remote_start(struct tcfs_remote *r);

/* Stop the pusher (what is queued is left: the remote tier is a cache)
 * and free everything.  NULL is fine. */
void tcfs_remote_free(struct tcfs_remote *r);

/* A lookup at the root found no @name: fetch it from the remote tier
 * into the store.  0 when it is there now (fetched, or made meanwhile),
 * -ENOENT when not (absent remotely, damaged, Redis down or slow). */
int tcfs_remote_fetch(struct tcfs_remote *r, const char *name);

/* The remote state as the members of a JSON object ("url": ...,
 * "connected": ..., counters), no braces, into @buf; its length. */
size_t tcfs_remote_stats(struct tcfs_remote *r, char *buf, size_t size);

#endif
