/*
 * tcfs.h - internal interface of the tcachefs daemon (fs/).
 *
 * fs/ translates FUSE low-level requests into libtcache calls and libtcache
 * results into replies; it holds no storage logic.  The pieces:
 *
 *   main.c    command line, store open, session setup, loop, shutdown
 *   ops.c     the FUSE handlers (tcfs_<op>) and their workers
 *   generated.c the generated files (meta.json, the stats file): their
 *             share of every request, which ops.c hands over
 *   stview.c  each entry's .safetensors view: its share, the same way
 *   notify.c  eviction notices: a queue filled under the store's lock and
 *             a thread that tells the kernel (fuse_lowlevel_notify_delete)
 *   kcache.c  which tensor version the kernel's page cache holds (keep_cache)
 *   log.c     logging: stderr in the foreground, syslog as a daemon
 *   mountdev.c the mount's device number; read-ahead of its bdi
 *   devio.c   reading requests: a short poll before a worker sleeps
 *   watchdog.c aborts the connection if the daemon dies without unmounting
 *   remote.c  the shared tier: pushes to Redis, fetches on a lookup at the
 *             root (remote.h), over rconn.c (one Redis or a cluster)
 *
 * Inode numbers: a FUSE ino is a libtcache node id (TC_ROOT_ID ==
 * FUSE_ROOT_ID == 1).  The generated file of directory D (the meta.json
 * of an entry or group, the root's stats file) has the ino
 * D | TCFS_META_BIT; the .safetensors view of entry E has
 * E | TCFS_META_BIT | TCFS_VIEW_BIT.  Ids are never reused while the
 * store is open, so lookup counts need no bookkeeping (forget only lets
 * kcache.c drop what it knew of the inode's page cache).
 */
#ifndef TCFS_H
#define TCFS_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "tcache.h"

#define TCFS_META_BIT (1ull << 63)
#define TCFS_VIEW_BIT (1ull << 62) /* with TCFS_META_BIT: a .safetensors view */

/* Is @ino an entry's .safetensors view (stview.c)? */
static inline bool tcfs_is_view(uint64_t ino)
{
	return (ino & (TCFS_META_BIT | TCFS_VIEW_BIT)) ==
	       (TCFS_META_BIT | TCFS_VIEW_BIT);
}

/* Kernel cache timeouts in seconds, see fs/API-NOTES.md ("Timeouts").
 * Long: every change goes through this mount, and what lib/ drops on its
 * own (evictions, a created tensor whose commit failed) is told to the
 * kernel by notify.c.  Each expiry costs a LOOKUP or GETATTR round trip
 * (~50 us here) on the next open or stat; tools/BENCH-NOTES.md. */
#define TCFS_ENTRY_TIMEOUT 3600.0
#define TCFS_ATTR_TIMEOUT 3600.0
#define TCFS_META_ATTR_TIMEOUT 0.0 /* meta.json's size changes behind it */

/* st_blksize of tensors: the I/O size tools pick (cp, Python's open()),
 * and libfuse's max_write: one WRITE request per 1 MiB instead of eight
 * of 128 KiB.  tools/BENCH-NOTES.md. */
#define TCFS_IO_SIZE (1u << 20)

/* A tensor of at most this size is sent to the kernel's page cache with
 * its first read-only open (ops.c, prefill): one READ's worth. */
#define TCFS_PREFILL_MAX TCFS_IO_SIZE

/* Read-ahead of the mount: buffered reads of a tensor then reach the
 * daemon as TCFS_IO_SIZE READs, not 128 KiB ones.  A first read of 1 GiB
 * after a remount: 1.10 s -> 0.75 s (medians of 5).  Set through sysfs
 * at mount (root only), kept by the INIT reply's max_readahead.  Mmap
 * faults read around by the same window. */
#define TCFS_READAHEAD_KB (TCFS_IO_SIZE / 1024)

/* How long a worker done with a request polls /dev/fuse for the next one
 * before it sleeps (-o spin_us).  Small-file work: 1.4-1.9x the files a
 * second with 50 us than with 0 on this machine (tools/BENCH-NOTES.md). */
#define TCFS_SPIN_US 50u
#define TCFS_SPIN_MAX_US 10000u

/* ---- log.c -------------------------------------------------------------- */

/* Messages go to stderr until tcfs_log_start (see log.c).
 * tcfs_log_file: open @path for -o log=FILE, used from tcfs_log_start
 * on; 0, or -errno (-EINVAL: not a regular file).  tcfs_log_start, once
 * mounted and before daemonizing (@detached): to FILE if given; else,
 * @detached, to syslog, or to the stderr of now, kept open; NULL, or why
 * messages will be lost from now on (to say on stderr while it is there). */
int tcfs_log_file(const char *path);
const char *tcfs_log_start(bool detached);
/* Log only messages at least as important as @level ("err", "warning",
 * "notice", "info", "debug"); -EINVAL for another word.  Call before the
 * threads start.  The default is info. */
int tcfs_log_set_level(const char *level);
void tcfs_log(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A fuse_log_func_t that routes libfuse's messages through tcfs_log. */
void tcfs_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap);

/* ---- notify.c ----------------------------------------------------------- */

/* ---- devio.c ------------------------------------------------------------ */

/* Read the requests of @se (mounted, loop not started) through devio.c,
 * polling up to @spin_us after each request.  0 or -errno. */
int tcfs_devio_setup(struct fuse_session *se, unsigned spin_us);

/* ---- uring.c ------------------------------------------------------------ */

/* FUSE over io_uring (-o uring), see uring.c.  Threads per CPU queue:
 * one, so that a CPU's requests are served in the order they were made.
 * With two, an OPEN could be served before the RELEASE of a close(2) just
 * before it on the same CPU.  A reader's handle still counted then makes
 * the open of a newer version bypass the page cache (kcache.c), and a
 * shared mmap() of it fails (ENODEV).  (A writer's late release no longer
 * matters: ops.c op_flush.)  Also faster: BENCH-NOTES round 13. */
#define TCFS_URING_PER_CPU 1
/* Ask for it on @se (mounted, loop not started); whether the kernel
 * offers it is known at INIT. */
void tcfs_uring_want(struct fuse_session *se);
/* devio.c's hooks: each request read from /dev/fuse; each reply, which
 * is ours to send when true (*res: what writev would return). */
void tcfs_uring_saw(const void *buf, size_t len);
bool tcfs_uring_reply(int fd, struct iovec *iov, int count, ssize_t *res);
/* Requests come through the rings (after INIT). */
bool tcfs_uring_on(void);
/* "\"on\": ..." members of the stats file's "uring" object; 0 (nothing)
 * without -o uring=on. */
size_t tcfs_uring_stats(char *buf, size_t size);
/* End the ring threads (after the loop, before the store closes). */
void tcfs_uring_stop(void);

/* ---- mountdev.c ---------------------------------------------------------- */

/* The device number of the FUSE mount at @mnt (absolute, resolved), from
 * /proc/self/mountinfo; the newest mount there wins.  0 or -ENOENT. */
int tcfs_mount_dev(const char *mnt, unsigned *maj, unsigned *min);
/* Raise the read-ahead of that mount's bdi to @kib KiB (never lowers it).
 * 0, or -errno (-EACCES when not root: then it stays 128 KiB). */
int tcfs_raise_readahead(const char *mnt, unsigned kib);
/* "SOURCE (MOUNTPOINT)" of the file system holding @dir, e.g.
 * "/dev/sda1 (/)", from /proc/self/mountinfo, in @buf.  0 or -errno. */
int tcfs_store_dev(const char *dir, char *buf, size_t size);

/* watchdog.c: a process that aborts the FUSE connection if the daemon
 * dies without unmounting.  Start before any thread; stop on a clean
 * shutdown.  -ENOENT/-EACCES... when it cannot (no fusectl). */
int tcfs_watchdog_start(const char *mountpoint, pid_t *pid);
void tcfs_watchdog_stop(pid_t pid);

struct tcfs_notifier;

/* Create the queue (no thread yet).  NULL on out of memory. */
struct tcfs_notifier *tcfs_notifier_new(void);
/* Start the thread that sends queued notices on @se and, when idle, calls
 * @tick(@tick_arg) once a second (@tick may be NULL).  0 or -errno. */
int tcfs_notifier_start(struct tcfs_notifier *n, struct fuse_session *se,
			void (*tick)(void *), void *tick_arg);
/* Stop the thread (queued notices are dropped) and free.  NULL-safe. */
void tcfs_notifier_free(struct tcfs_notifier *n);
/* The tc_evict_fn: queue one notice.  Called with the store's lock held;
 * takes only the queue's lock. */
void tcfs_notifier_evicted(void *arg, uint64_t parent, uint64_t id,
			   const char *name);
/* Wait (at most @timeout_ms) until every notice queued so far has been sent
 * to the kernel.  Call only from requests that hold no kernel lock the
 * notices need (write, truncate: see notify.c).  Returns at once when the
 * queue is empty. */
void tcfs_notifier_settle(struct tcfs_notifier *n, int timeout_ms);

/* ---- kcache.c ------------------------------------------------------------ */

/* Which committed version of each tensor the kernel may hold pages of.
 * All functions take the table's own mutex (a leaf lock). */
struct tcfs_kcache;
struct tcfs_kcache *tcfs_kcache_new(void);
void tcfs_kcache_free(struct tcfs_kcache *kc);
/* A read-only open of @ino reading @version: how it may use the page
 * cache (TCFS_KC_*).  Buffered opens are counted until
 * tcfs_kcache_close(). */
#define TCFS_KC_KEEP 0   /* buffered; the cached pages are this version's */
#define TCFS_KC_FRESH 1  /* buffered; drop the cached pages first */
#define TCFS_KC_DIRECT 2 /* bypass the page cache: it is another version's,
			    still read by open buffered handles */
#define TCFS_KC_FIRST 3  /* buffered; the first open since the kernel loaded
			    the inode, neither read nor written since: the
			    kernel has no page of it */
int tcfs_kcache_open(struct tcfs_kcache *kc, uint64_t ino, uint64_t version);
/* A buffered reader (KEEP or FRESH) closed. */
void tcfs_kcache_close(struct tcfs_kcache *kc, uint64_t ino);
/* The kernel's pages of @ino may no longer be of one known version (a
 * writer opened it: from now on no open of it is TCFS_KC_FIRST). */
void tcfs_kcache_forget(struct tcfs_kcache *kc, uint64_t ino);
/* A read through a handle of @version: forget @ino unless it matches. */
void tcfs_kcache_read(struct tcfs_kcache *kc, uint64_t ino, uint64_t version);
/* The kernel dropped @ino (FORGET): remove its record unless buffered
 * readers are open (a FORGET may give back some lookups of an inode that
 * lives on; the record must keep counting its readers). */
void tcfs_kcache_drop(struct tcfs_kcache *kc, uint64_t ino);
/* Records held (tests). */
size_t tcfs_kcache_count(struct tcfs_kcache *kc);

/* ---- the daemon ---------------------------------------------------------- */

struct tcfs {
	tc_store *store;
	struct fuse_session *se;
	struct tcfs_notifier *notifier;
	struct tcfs_kcache *kcache;

	/* the file system under STORE, named in messages ("" if unknown) */
	char store_dev[512];
	const char *store_path;   /* STORE, its real path (for messages) */

	/* the shared tier (remote.c), or NULL */
	struct tcfs_remote *remote;

	/* every open file and directory handle, so that shutdown can close
	 * them (a stop leaves opens that no release will end) */
	pthread_mutex_t handles_lock;
	struct tcfs_handle *handles; /* protected by handles_lock */
	struct tcfs_dir *dirs;       /* protected by handles_lock (ops.c) */
};

/* Every fi->fh points at a struct whose first member is its kind. */
enum hkind { H_TENSOR = 1, H_META, H_DIR, H_VIEW };

/* An open file: a tensor (ops.c), a generated file (generated.c) or a
 * view (stview.c).  Linked in fs->handles from open to release. */
struct tcfs_handle {
	enum hkind kind;   /* H_TENSOR, H_META or H_VIEW */
	struct tcfs_handle *prev, *next; /* protected by fs->handles_lock */
	uint64_t ino;
	bool writable;
	/* H_TENSOR */
	tc_file *f;
	bool rdwr;         /* opened O_RDWR: a shared mapping may write it */
	bool wrote;        /* a write() came through it (not only a resize) */
	uint64_t version;  /* tensor version when opened (H_VIEW: content) */
	bool kc_counted;   /* a buffered reader counted in kcache.c (also
			      H_VIEW) */
	uint64_t prefill;  /* its open sends these bytes along (ops.c), or 0 */
	uint64_t parent;   /* created by this handle: its directory and */
	char *name;        /* name, to tell the kernel if it is dropped */
	/* H_META */
	uint64_t dir;
	pthread_mutex_t lock;
	char *buf;         /* protected by lock */
	size_t len, cap;   /* protected by lock */
	bool dirty;        /* protected by lock: to apply at flush */
	size_t written;    /* protected by lock: the buffer's first bytes,
	                      written by this handle in one run from 0 */
	bool holes;        /* protected by lock: a write began past them
	                      (an out-of-order writer): nothing is judged
	                      before close */
	bool told;         /* protected by lock: its refusal was logged */
	/* H_VIEW */
	tc_view *view;
};

/* The name at *@at of a TC_IOC_BATCH request's names[] (@at moves past its
 * NUL), or NULL when it does not end inside names[]. */
static inline const char *tcfs_batch_name(const struct tc_ioc_batch *b,
					  size_t *at)
{
	const char *name = b->names + *at;
	size_t len = strnlen(name, sizeof(b->names) - *at);
	if (*at + len >= sizeof(b->names))
		return NULL;
	*at += len + 1;
	return name;
}

/* ---- staged puts (stage.c) ------------------------------------------------ */

/* A directory handle's tensors staged by TC_BATCH_STAGE, not committed:
 * t[i] NULL where item i got no run of its own. */
struct tcfs_staging {
	uint64_t token;          /* names it in TC_BATCH_COMMIT */
	uint32_t n;
	tc_staged **t;
	uint64_t *size;          /* bytes of each */
};
/* TC_BATCH_STAGE (tcache.h) for the caller @who: *@out (its token is the
 * caller's to give, in *@out and b->token). */
int tcfs_stage(struct tcfs *fs, const struct fuse_ctx *who,
	       struct tcfs_staging *out, struct tc_ioc_batch *b);
/* TC_BATCH_COMMIT of staging @st into directory @dir; @st is dropped
 * after, whatever the outcome. */
int tcfs_stage_commit(struct tcfs *fs, const struct fuse_ctx *who,
		      uint64_t dir, struct tcfs_staging *st,
		      struct tc_ioc_batch *b);
/* Drop what @st holds (releasedir, a new STAGE). */
void tcfs_staging_drop(struct tcfs *fs, struct tcfs_staging *st);

/* A handle of @kind for @ino, every other field zero (calloc), or NULL. */
struct tcfs_handle *tcfs_handle_new(enum hkind kind, uint64_t ino);

extern const struct fuse_lowlevel_ops tcfs_ops;

/* Close every handle the kernel did not release (unmount while busy). */
void tcfs_close_all(struct tcfs *fs);

/* ---- generated.c ---------------------------------------------------------- */

/* Largest meta.json a user may write (EFBIG beyond). */
#define TCFS_META_MAX TC_META_MAX

/* What a tcfs_gen_<op> for a request that names a file answers when the
 * name is no generated file's: the caller serves the request.  Positive,
 * so never taken for an errno (reply_err would answer EIO). */
#define TCFS_GEN_PASS 1

/* The workers for generated files, called from ops.c for the same
 * request once it has checked what every file shares (a name's length, an
 * offset >= 0, a handle's access mode).  Each returns 0 (read and write: a
 * count) or -errno, or, as said, TCFS_GEN_PASS; none replies.  @ino is a
 * generated file's (TCFS_META_BIT set); @h a handle of kind H_META. */
int tcfs_gen_lookup(struct tcfs *fs, uint64_t parent, const char *name,
		    pid_t pid, struct fuse_entry_param *e);
int tcfs_gen_getattr(struct tcfs *fs, uint64_t ino, struct stat *a,
		     double *timeout);
/* @h: the setattr's handle if it is a file's (ftruncate), else NULL. */
int tcfs_gen_setattr(struct tcfs *fs, uint64_t ino, struct stat *attr,
		     int to_set, struct tcfs_handle *h, struct stat *a,
		     double *timeout);
int tcfs_gen_rmdir(struct tcfs *fs, uint64_t parent, const char *name);
/* A new H_META handle in *@hp, to link in fs->handles. */
int tcfs_gen_open(struct tcfs *fs, uint64_t ino, struct fuse_file_info *fi,
		  struct tcfs_handle **hp);
int tcfs_gen_create(struct tcfs *fs, uint64_t parent, const char *name,
		    pid_t pid, struct fuse_file_info *fi,
		    struct tcfs_handle **hp, struct fuse_entry_param *e);
/* A copy of the bytes read (malloc'd, NULL when none) in *@copy; their
 * number, or -errno. */
ssize_t tcfs_gen_read(struct tcfs_handle *h, size_t size, off_t off,
		      char **copy);
/* @h writable.  @size, or -errno. */
ssize_t tcfs_gen_write(struct tcfs *fs, struct tcfs_handle *h,
		       const char *buf, size_t size, off_t off);
/* @h writable: apply what was written (its error is close()'s). */
int tcfs_gen_flush(struct tcfs *fs, struct tcfs_handle *h);
/* Free a handle that is not (or no longer) linked. */
void tcfs_gen_free(struct tcfs_handle *h);
int tcfs_gen_unlink(struct tcfs *fs, uint64_t parent, const char *name,
		    pid_t pid);
/* Directory @dir was just made by @pid (its meta.json: gone for it). */
void tcfs_gen_made(uint64_t dir, pid_t pid);
int tcfs_gen_rename(struct tcfs *fs, uint64_t parent, const char *name,
		    uint64_t newparent, const char *newname, unsigned flags,
		    pid_t pid);

/* ---- stview.c ------------------------------------------------------------- */

/* The .safetensors views, as generated.c's workers: 0 or -errno, or
 * TCFS_GEN_PASS for a name that is no view's; none replies.  @ino is a
 * view's (tcfs_is_view).  Reads are ops.c's (tc_view_map). */
int tcfs_view_lookup(struct tcfs *fs, uint64_t parent, const char *name,
		     struct fuse_entry_param *e);
/* Is @name in @parent a view?  0 yes, TCFS_GEN_PASS no, or -errno (ops.c
 * answers unlink and rename EPERM, rmdir ENOTDIR). */
int tcfs_view_named(struct tcfs *fs, uint64_t parent, const char *name);
/* @h: the request's handle if it has one (its view's size), else NULL. */
int tcfs_view_getattr(struct tcfs *fs, uint64_t ino,
		      const struct tcfs_handle *h, struct stat *a,
		      double *timeout);
int tcfs_view_setattr(struct tcfs *fs, uint64_t ino, const struct stat *attr,
		      int to_set, struct stat *a, double *timeout);
/* A new H_VIEW handle in *@hp, to link in fs->handles. */
int tcfs_view_open(struct tcfs *fs, uint64_t ino, struct fuse_file_info *fi,
		   struct tcfs_handle **hp);
/* Free a handle of kind H_VIEW that is not (or no longer) linked. */
void tcfs_view_free(struct tcfs *fs, struct tcfs_handle *h);

#endif /* TCFS_H */
