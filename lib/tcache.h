/*
 * tcache.h - libtcache, the tcachefs store engine.  This header is the manual.
 *
 * A store is a directory holding one preallocated pool file (tensor bytes),
 * an append-only journal (the durable index) and a lock file.  The store
 * holds a tree of nodes:
 *
 *   root (id TC_ROOT_ID)
 *    +- entry        a top-level directory: the unit of eviction and recency
 *        +- tensor   a file: raw bytes kept in pool extents
 *        +- group    a nested directory inside an entry
 *            +- tensor, group, ...
 *
 * Conventions, for every function below unless it says otherwise:
 *   - Return 0 (or a byte count) on success and a negative errno on failure.
 *   - Output parameters are left untouched on failure.
 *   - Strings passed in are borrowed for the duration of the call only.
 *   - Node ids are never reused while a store is open; an id that no longer
 *     exists yields -ENOENT.
 *   - Every function is thread-safe: one store may be used from any number
 *     of threads at once.  A tc_file may be used from several threads at
 *     once, except that tc_file_close() must be the last call on it.
 *   - No function logs or prints.
 *   - Processes: a store that is written to rewrites its journal now and
 *     then (a checkpoint) in a child process it forks, from a copy of its
 *     memory, and reaps it itself (waitpid on that pid, at a later call).
 *     The child writes one file, holds no other descriptor, and is killed
 *     when the thread that forked it ends.  A caller that reaps every
 *     child (waitpid(-1)) or ignores SIGCHLD does no harm.
 *
 * Names: 1..TC_NAME_MAX bytes, no '/', not "." or "..": otherwise -EINVAL
 * (-ENAMETOOLONG when too long).  Reserved, -EEXIST: "meta.json" and
 * ".safetensors" inside entries and groups and ".tcache-stats" in the root
 * (the daemon shows generated files there).
 */
#ifndef TCACHE_H
#define TCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TC_VERSION_STRING "0.1.0"
#define TC_ROOT_ID 1u
#define TC_NAME_MAX 255
#define TC_MAX_DIMS 32
#define TC_META_NAME "meta.json"
#define TC_META_MAX (16u << 20)        /* largest meta.json taken, bytes */
#define TC_STATS_NAME ".tcache-stats"  /* the mount's stats file (root) */
#define TC_VIEW_NAME ".safetensors"    /* an entry's view (tc_view_open) */
#define TC_BLOCK 4096u                       /* pool allocation unit */
#define TC_DEFAULT_CAPACITY (1ull << 30)     /* for a new store, 1 GiB */
#define TC_DEFAULT_JOURNAL_SLACK (8ull << 20) /* 8 MiB */

typedef struct tc_store tc_store;
typedef struct tc_file tc_file;

enum tc_kind {
	TC_KIND_ROOT = 0,
	TC_KIND_ENTRY = 1,  /* directory directly under the root */
	TC_KIND_GROUP = 2,  /* directory inside an entry or group */
	TC_KIND_TENSOR = 3, /* regular file */
};

/* Attributes of one node, as filled by tc_getattr() and friends. */
struct tc_stat {
	uint64_t id;
	uint64_t parent;       /* 0 for the root */
	uint32_t kind;         /* enum tc_kind */
	uint32_t mode;         /* full st_mode: S_IFDIR or S_IFREG | perms */
	uint32_t uid, gid;
	uint32_t nlink;        /* dirs: 2 + subdirectories; tensors: 1;
	                          0 for a removed tensor still open */
	uint64_t size;         /* tensors: bytes of the pending version when
	                          a writer has one (the larger of it and the
	                          committed one while a reader has the
	                          tensor open: one size must serve both);
	                          dirs: 0 */
	uint64_t blocks;       /* 512-byte units of pool space held */
	uint64_t version;      /* tensors: changes on every commit that
	                          replaces the bytes; dirs: 0 */
	uint32_t writers;      /* tensors: open write handles */
	struct timespec atime, mtime, ctime;
	char name[TC_NAME_MAX + 1]; /* "" for the root */
};

/* ---- store --------------------------------------------------------------- */

/*
 * Eviction listener.  Called once for each evicted entry, while the store's
 * internal lock is held: it must not call back into the store and should
 * only queue the notice (the daemon tells the kernel from another thread).
 */
typedef void (*tc_evict_fn)(void *arg, uint64_t parent, uint64_t id,
			    const char *name);

/* Told of each problem found (tc_store_check, tc_store_verify_start):
 * @path is "entry/group/tensor" (or a description when no name is known),
 * @problem says what is wrong. */
typedef void (*tc_check_fn)(void *arg, const char *path, const char *problem);

struct tc_options {
	/* Pool size in bytes, rounded down to TC_BLOCK.  0: keep the store's
	 * capacity (TC_DEFAULT_CAPACITY for a new store).  A larger value
	 * grows the pool.  A smaller one keeps the rules of any eviction:
	 * pinned entries stay, unpinned ones are evicted least recently used
	 * first until the rest fits (counted as evictions, each told to
	 * @on_evict), the bytes past the new end are moved below it, and
	 * the pool shrinks.  When the pinned entries alone hold more than
	 * it, the open fails with -EFBIG and changes nothing. */
	uint64_t capacity;
	/* Told of each entry a capacity shrink evicts, during the open (the
	 * store is not usable yet: only note the name).  May be NULL. */
	tc_evict_fn on_evict;
	void *evict_arg;
	/* Verify a tensor's xxh3 before its first read after the store is
	 * opened: at its first open for reading, or before it when
	 * tc_store_verify_start finds its bytes in memory; a mismatch makes
	 * that tensor answer -EIO.  Default (0) is on; TC_VERIFY_OFF turns
	 * it off. */
	unsigned verify;
	/* How far the journal may grow past twice its size after the last
	 * checkpoint before the next checkpoint starts (written by a child
	 * process, see tc_store_close for the one at close).  Smaller: faster
	 * opens, more checkpoints.  0: TC_DEFAULT_JOURNAL_SLACK. */
	uint64_t journal_slack;
};
#define TC_VERIFY_ON 0u
#define TC_VERIFY_OFF 1u

/*
 * Open (creating if missing) the store in directory @dir.  Replays the
 * journal.  Damage is dropped, counted, and the rest served: a torn or
 * corrupt record (tc_stats.journal_dropped); a tensor whose bytes a
 * missing or cut-short pool file no longer holds, or whose pool space a
 * later record claims (tc_stats.nodes_dropped).  After a crash, tensors
 * committed since the last sync are checked against their xxh3 at once:
 * one whose bytes did not reach the disk is left out as never written
 * (tc_stats.unsynced_dropped), or, if it replaced a version whose bytes
 * are good, that version is kept (tc_stats.fallbacks): never served as
 * EIO.  When anything was dropped the journal is rewritten without it.
 * @opt may be NULL.  On success
 * *@out owns the store until tc_store_close().
 * Errors: -EBUSY another process has the store open; -EPROTO the store is
 * of an unknown format or version; -ENOSPC the pool cannot be
 * preallocated; -EFBIG a smaller capacity than the pinned entries hold
 * (tc_store_peek's pinned_bytes); -EINVAL a capacity below one block;
 * others from the file system.
 */
int tc_store_open(const char *dir, const struct tc_options *opt,
		  tc_store **out);

/*
 * Check, on a thread of the store's own, the xxh3 of every committed
 * tensor whose bytes are all in the page cache now, in the 65,536 most
 * recently used entries, newest first, before anything reads them: the
 * check a first read would make (a damaged tensor then answers -EIO),
 * taken off that read where it costs a pass over bytes in memory.
 * Tensors with a page on disk only, and those of older entries, are left
 * to their first read.  Counts in tc_stats.verified_ahead; no hit,
 * no touch.  @on_damage (may be NULL) is told of each damaged tensor it
 * finds (its path, and why), on that thread with the store's lock held:
 * it must not call into the store.  The thread runs at SCHED_IDLE
 * priority and ends when done or at tc_store_close.  A no-op with
 * TC_VERIFY_OFF or when already started.  Call it after any fork() (a
 * process that daemonizes: after that).  0 or -errno from pthread_create.
 */
int tc_store_verify_start(tc_store *s, tc_check_fn on_damage, void *arg);

/* Write a checkpoint (after an fdatasync of the pool: everything committed
 * is then durable), release the lock and free everything.  Open files
 * must have been closed.  NULL-safe.  Returns the first error met while
 * writing (the store is freed regardless). */
int tc_store_close(tc_store *s);

/*
 * Make every commit so far durable against power loss, and the recency of
 * every open so far: fdatasync of the pool, then a mark in the journal,
 * then fdatasync of the journal.  Space freed before the call becomes
 * reusable (a replaced or evicted tensor's extents wait until the record
 * that frees them is durable).  The lock is not held during the pool's
 * fdatasync.  Cost: two fdatasyncs.
 */
int tc_store_sync(tc_store *s);

/* The store's chores that fall due by time alone: recency that tc_open()
 * kept back for a second reaches the journal.  Operations do this as they
 * pass; a caller that may sit idle calls this about once a second, so that
 * a kill -9 of an idle process loses about two seconds at most.  Cheap when
 * nothing is due (a lock and an unlock). */
void tc_store_tick(tc_store *s);

struct tc_stats {
	uint64_t capacity;        /* pool bytes */
	uint64_t used;            /* pool bytes held by tensors (4 KiB units;
	                             64-byte units for a tensor of at most
	                             2 KiB, which shares a block), including
	                             writes in progress */
	uint64_t live_bytes;      /* sum of committed tensor sizes */
	uint64_t entries, tensors, groups;
	uint64_t pinned;          /* entries pinned explicitly */
	uint64_t pinned_bytes;    /* pool bytes they hold: tc_store_peek only
	                             (0 from tc_store_stats, where it would
	                             cost a walk over them) */
	uint64_t probes;          /* lookups at the root (tc_lookup), of
	                             names there or not: existence checks */
	uint64_t hits;            /* opens for reading of a committed tensor:
	                             bytes served from the cache */
	uint64_t misses;          /* lookups at the root that found nothing,
	                             unless that name was made there (mkdir,
	                             tc_create, a rename onto it) within 2 s
	                             of its first such lookup: what a cache
	                             user then computes, not a write's
	                             check.  Counted once the 2 s are over
	                             (a few earlier when hundreds of names
	                             wait at once), and at close */
	uint64_t evictions;       /* entries evicted */
	uint64_t evicted_bytes;   /* tensor bytes evicted */
	uint64_t journal_bytes;   /* size of the journal file */
	uint64_t checkpoints;     /* checkpoints put in place since the open */
	uint64_t journal_dropped; /* records dropped as torn/corrupt at open */
	uint64_t nodes_dropped;   /* nodes dropped at open (orphans, extents
	                             overlapping a later record) */
	uint64_t journal_torn;    /* records at open that a crash never wrote
	                             whole (past the last sync): not damage */
	uint64_t unsynced_dropped; /* tensors dropped at open as never
	                             written: not yet durable at a crash, and
	                             their bytes did not survive it (not
	                             damage: see tc_store_sync) */
	uint64_t fallbacks;       /* replacements not yet durable at a crash
	                             whose bytes did not survive it: the
	                             version they replaced was kept */
	uint64_t verified_ahead;  /* tensors whose xxh3 was checked since the
	                             open before any read of them, their bytes
	                             being in memory (tc_store_verify_start) */
	uint64_t damaged;         /* tensors found damaged since the open (a
	                             read of one fails with -EIO) */
	int64_t oldest_access_ns; /* least recent entry's last access; 0 if none */
	int64_t newest_access_ns;
};
/* The store's statistics now.  Probes, hits, misses and the evictions are
 * kept across opens (in each checkpoint: a kill -9 loses what came after
 * the last one); the rest are counted at open or are the state now. */
void tc_store_stats(tc_store *s, struct tc_stats *st);

/* The statistics as a JSON object (malloc'd, NUL-terminated, ending in a
 * newline; caller frees): every field of tc_stats, plus "free",
 * "hit_rate" (hits / (hits + misses), null while both are 0) and the
 * access times as RFC 3339 UTC strings (null when there is no entry).
 * What `tcache stats --json` prints and the mount's stats file holds. */
int tc_stats_json(const struct tc_stats *st, char **json, size_t *len);

/* Statistics of a store no process has open, read without changing
 * anything.  -EBUSY when it is open (mounted), -ENOENT when @dir holds no
 * store, -EPROTO. */
int tc_store_peek(const char *dir, struct tc_stats *st);

/* ---- who has a store open, and where stores are mounted (owner.c) ------- */

/* Record that this process serves the store at @mountpoint (a daemon, after
 * daemonizing): what tc_store_owner() tells others while it has the store
 * open.  An open records the pid alone.  0 or -errno. */
int tc_store_set_owner(tc_store *s, const char *mountpoint);

struct tc_owner {
	pid_t pid;                /* the process holding the store open */
	char program[32];         /* its name (/proc/PID/comm), or "" */
	char mountpoint[4096];    /* where it serves the store, or "" */
	int exiting;              /* it serves at @mountpoint no longer (an
	                             unmounted daemon still closing) */
};
/* Who holds store @dir open, after an open answered -EBUSY.  0, or
 * -ENOENT when that is not known (the holder exited meanwhile, or is of a
 * version that did not say), -errno. */
int tc_store_owner(const char *dir, struct tc_owner *o);

/* Wait up to @ms milliseconds for store @dir to be free (for an exiting
 * daemon to close it): 0 free now (an open may still lose a race), -EBUSY
 * still held, -errno. */
int tc_store_await(const char *dir, unsigned ms);

/* After an open of @dir answered -EBUSY: when its holder is a daemon
 * that was unmounted and is still closing the store, say so through @say
 * (may be NULL) and wait for it, up to @ms milliseconds.  0 the store is
 * free now (open it again), or -EBUSY with @why (@n bytes) naming the
 * holder: "store is in use by tcachefs (pid 123), mounted at /mnt/c
 * (unmount it first: ...)". */
#define TC_BUSY_WAIT_MS 10000
int tc_store_busy(const char *dir, unsigned ms,
		  void (*say)(void *arg, const char *msg), void *arg,
		  char *why, size_t n);

struct tc_mount {
	char point[4096];         /* the mount point */
	char type[64];            /* e.g. ext4, fuse.tcachefs */
	char source[4096];        /* e.g. /dev/sda1; a tcachefs mount's store */
};
/* The topmost mount whose mount point is @path (absolute, no symlinks),
 * from /proc/self/mountinfo: 0, -ENOENT there is none, -errno. */
int tc_mount_at(const char *path, struct tc_mount *m);
/* The tcachefs mount serving store @dir: 0, -ENOENT none, -errno. */
int tc_mount_of(const char *dir, struct tc_mount *m);

/* Whether the journal could be written at its last append: 0, or the
 * negative errno that made it fail (-ENOSPC: the disk under the store is
 * full), which is also what the operation that needed it returned.  For
 * the caller's log: an operation's -ENOSPC alone may mean a full pool. */
int tc_store_journal_error(tc_store *s);

/* Eviction listener: see tc_evict_fn above. */
void tc_store_on_evict(tc_store *s, tc_evict_fn fn, void *arg);

/*
 * Change listener: told of every live change to an entry (not at replay,
 * not of evictions, which tc_evict_fn hears of): @id and @name are the
 * entry's id and top-level name; @removed 1 when the entry itself went (rm, rmdir, or
 * renamed away from @name), else 0 (a tensor committed, replaced or
 * removed in it, its meta.json, pin or link changed, or it was made or
 * renamed to @name); @bytes the size of the tensor a commit wrote, else
 * 0.  Called with the store's lock held, in the thread that made the
 * change: it must not call back into the store.  A change not yet in
 * the journal (a file not yet committed) may be told too.
 */
typedef void (*tc_change_fn)(void *arg, uint64_t id, const char *name,
			     int removed, uint64_t bytes);
void tc_store_on_change(tc_store *s, tc_change_fn fn, void *arg);

/* ---- checking a store (offline) ------------------------------------------ */

/* tc_check_fn (above, with the store): told of each problem found. */

struct tc_check {
	uint64_t records_dropped;  /* torn or corrupt journal records */
	uint64_t nodes_dropped;    /* tensors/dirs the journal cannot keep:
	                              orphans, bytes past the pool's end,
	                              pool space claimed twice */
	uint64_t tensors;          /* tensors whose bytes were checked */
	uint64_t bytes;            /* bytes hashed */
	uint64_t damaged;          /* tensors whose bytes fail their xxh3 */
	uint64_t repaired;         /* damaged tensors removed (TC_CHECK_REPAIR) */
	uint64_t unsynced;         /* tensors not yet durable at a crash whose
	                              bytes did not survive it: left out as
	                              never written; not damage */
	uint64_t fallbacks;        /* replacements as unsynced: the version
	                              they replaced is kept; not damage */
	uint64_t torn;             /* journal records a crash never wrote
	                              whole (past the last sync); not damage */
	uint64_t links;            /* parent links in a loop (a damaged
	                              journal's; cut by TC_CHECK_REPAIR), or
	                              counts of children that disagree */
};

#define TC_CHECK_REPAIR (1u << 0)

/*
 * Check the store in @dir, which no process may have open: replay the
 * journal and hash every tensor's bytes against its xxh3.  @fn (may be
 * NULL) hears of each problem.  Without TC_CHECK_REPAIR nothing on disk is
 * changed.  With it, damaged tensors and whatever the journal could not
 * keep are removed, and the journal is rewritten: the store is then
 * consistent.  Returns 0 when the check ran (problems are in *@out), or
 * -EBUSY (the store is open elsewhere), -ENOENT (no store there), -EPROTO.
 * Cost: reads every tensor byte once.
 */
int tc_store_check(const char *dir, unsigned flags, tc_check_fn fn, void *arg,
		   struct tc_check *out);

/* ---- names and attributes ------------------------------------------------ */

/* Find @name in directory @parent: a lookup by a user of the cache (the
 * kernel's LOOKUP).  When @parent is the root it counts a probe, and if
 * @name is not there perhaps a miss (tc_stats.misses); to look for its own
 * ends, a caller uses tc_getattr.  -ENOENT, -ENOTDIR. */
int tc_lookup(tc_store *s, uint64_t parent, const char *name,
	      struct tc_stat *st);

int tc_getattr(tc_store *s, uint64_t id, struct tc_stat *st);
/* The path of node @id below the root, "entry/group/name" ("" for the
 * root), for messages: 0, or -ENOENT. */
int tc_path(tc_store *s, uint64_t id, char *buf, size_t size);

#define TC_SET_MODE  (1u << 0)  /* permission bits only; type is kept */
#define TC_SET_UID   (1u << 1)
#define TC_SET_GID   (1u << 2)
#define TC_SET_SIZE  (1u << 3)  /* tensors only: truncate or extend */
#define TC_SET_ATIME (1u << 4)
#define TC_SET_MTIME (1u << 5)
#define TC_SET_CTIME (1u << 6)
struct tc_setattr {
	unsigned valid;         /* TC_SET_* */
	uint32_t mode, uid, gid;
	uint64_t size;
	struct timespec atime, mtime, ctime;
};
/*
 * Change attributes; ctime is set to now unless TC_SET_CTIME is given.
 * TC_SET_SIZE: if @fh is a write handle of this tensor (or any writer has
 * a pending version), the pending version is resized and committed at its
 * next flush; otherwise a new version is made and committed at once.
 * -EISDIR size on a directory, -ENOSPC, -EPERM attributes of the root.
 */
int tc_setattr(tc_store *s, uint64_t id, const struct tc_setattr *sa,
	       tc_file *fh, struct tc_stat *st);

/* Create a directory: an entry when @parent is the root, else a group.
 * -EEXIST, -ENOENT, -ENOTDIR, -EINVAL, -ENAMETOOLONG. */
int tc_mkdir(tc_store *s, uint64_t parent, const char *name, uint32_t mode,
	     uint32_t uid, uint32_t gid, struct tc_stat *st);

/* Remove an empty directory.  -ENOTEMPTY, -ENOTDIR, -ENOENT. */
int tc_rmdir(tc_store *s, uint64_t parent, const char *name);

/* Remove a tensor.  Open handles keep reading its bytes until closed; the
 * pool space is freed after the last close.  -EISDIR, -ENOENT. */
int tc_unlink(tc_store *s, uint64_t parent, const char *name);

#define TC_RENAME_NOREPLACE (1u << 0)
#define TC_RENAME_EXCHANGE  (1u << 1)
/*
 * Rename, atomically (one journal record).  An existing target is replaced
 * (a tensor by a tensor, a directory by a directory if the target is
 * empty).  A directory moved to the root becomes an entry; an entry moved
 * into an entry becomes a group.  -EPERM a tensor to the root; -EINVAL a
 * directory into itself, or TC_RENAME_EXCHANGE (not supported);
 * -EEXIST with TC_RENAME_NOREPLACE; -ENOTEMPTY; -EISDIR; -ENOTDIR.
 */
int tc_rename(tc_store *s, uint64_t parent, const char *name,
	      uint64_t newparent, const char *newname, unsigned flags);

/* Pin or unpin an entry (a pinned entry is never evicted).  Journaled.
 * An entry's pin is also its sticky bit: tc_setattr of an entry's mode
 * with S_ISVTX pins it (chmod +t), without unpins it; the mode that
 * tc_getattr reports carries S_ISVTX while pinned.  meta.json's "pinned"
 * is the same flag.  -EINVAL if @id is not an entry. */
int tc_pin(tc_store *s, uint64_t id, int pinned);

/*
 * An entry's parent link: the name of another top-level entry (present
 * or not) that eviction must not take before this one (prefix-aware
 * eviction: an entry is never evicted while a child of it is present).
 * The xattr user.tcache.parent and meta.json's "parent" are this link.
 *
 * tc_link_get copies the name into @buf (room for @size bytes, no NUL)
 * and returns its length; with @size 0 only the length.  -ENODATA: no
 * link (or @id is not an entry); -ERANGE: @buf too small; -ENOENT.
 * tc_link_set sets it (@name NULL: removes it).  Journaled.  @flags:
 * TC_LINK_CREATE fails with -EEXIST if there is one, TC_LINK_REPLACE
 * with -ENODATA if there is none.  -ENOTSUP if @id is not an entry;
 * -EINVAL / -ENAMETOOLONG for a name that cannot be an entry's;
 * -ELOOP if following links from @name would come back to this entry
 * (naming itself included).  A rename that would close a loop of links
 * fails with -ELOOP too.
 */
#define TC_LINK_CREATE  1u
#define TC_LINK_REPLACE 2u
int tc_link_get(tc_store *s, uint64_t id, char *buf, size_t size);
int tc_link_set(tc_store *s, uint64_t id, const char *name, unsigned flags);

/*
 * The children of directory @dir, in creation order: a malloc'd array of
 * ids in *@ids (caller frees) and its length in *@n.  A snapshot: ids may
 * vanish afterwards (tc_getattr then answers -ENOENT).  Cost O(children).
 */
int tc_list(tc_store *s, uint64_t dir, uint64_t **ids, size_t *n);

/* ---- tensor files -------------------------------------------------------- */

#define TC_O_WRITE (1u << 0)  /* open for writing (and reading) */
#define TC_O_TRUNC (1u << 1)  /* with TC_O_WRITE: start from 0 bytes */
#define TC_O_QUIET (1u << 2)  /* for reading, not a use: no hit counted,
                                 recency kept (the daemon's own reads,
                                 e.g. pushing to a remote tier) */

/*
 * Create tensor @name in @parent (an entry or group) and open it for
 * writing.  The tensor is visible at once, with size 0; it becomes durable
 * at its first commit; if the daemon dies first it is absent after reopen.
 * -EPERM @parent is the root; -EEXIST; -ENOENT; -ENOTDIR.
 */
int tc_create(tc_store *s, uint64_t parent, const char *name, uint32_t mode,
	      uint32_t uid, uint32_t gid, tc_file **fh, struct tc_stat *st);

/*
 * Open tensor @id.  Pins its entry against eviction until tc_file_close()
 * and marks the entry as most recently used (the journal hears of that in
 * batches: when 256 are kept back, at the first operation or
 * tc_store_tick() a second after the oldest, or at tc_store_sync(); a
 * kill -9 may cost the last moments of recency, never data).  A read-only
 * handle reads the version committed at open time, whatever happens
 * later.  A write handle shares the tensor's pending version with other
 * writers; the pending version replaces the committed one at
 * tc_file_commit().
 * -EISDIR, -ENOENT, -EIO (verification found the bytes damaged).
 */
int tc_open(tc_store *s, uint64_t id, unsigned flags, tc_file **fh);

/* One piece of a tensor's bytes inside the pool. */
struct tc_span {
	int fd;             /* the pool file: pread/splice at fd_off;
	                       -1: bytes in memory (tc_view_map's header) */
	uint64_t fd_off;
	const void *ptr;    /* the same bytes in the pool mmap */
	size_t len;
};
/*
 * Locate bytes [@off, @off + @size) of the handle's version, clipped at its
 * end: fills up to @max spans and sets *@n and *@total (0 at or past end).
 * The bytes stay valid and unchanged until tc_file_close() for a read-only
 * handle; for a write handle only until the next write or truncate.
 * -ENOBUFS if @max spans do not cover the range (read less).
 */
int tc_file_map(tc_store *s, tc_file *fh, uint64_t off, size_t size,
		struct tc_span *sp, int max, int *n, size_t *total);

/* Copy bytes out (a convenience over tc_file_map).  Returns bytes read. */
ssize_t tc_file_pread(tc_store *s, tc_file *fh, void *buf, size_t size,
		      uint64_t off);

/*
 * Write into the pending version, allocating pool space as needed (and
 * evicting least recently used entries when the pool is full).  A gap past
 * the end reads as zeros.  Returns @size or a negative errno: -EBADF not a
 * write handle; -EFBIG the end would lie past the capacity; -ENOSPC more
 * than the capacity minus what is pinned, open or being written elsewhere
 * (nothing is evicted then); -EIO the pool file could not be written.
 * A failed write fails the pending version: it is never committed (see
 * tc_file_commit).
 */
ssize_t tc_file_write(tc_store *s, tc_file *fh, const void *buf, size_t size,
		      uint64_t off);

/*
 * Reserve: make the pending version at least @off + @len bytes long (zeros
 * past its end; never shorter) and hold pool space for all of it, evicting
 * least recently used entries as needed, so that writes inside it cannot
 * run out of space.  What fallocate(fd, 0, off, len) and posix_fallocate
 * do.  When it can never fit, it fails before evicting anything: -EFBIG
 * past the capacity, -ENOSPC past the capacity minus what is pinned, open
 * or being written elsewhere.  A failed reservation fails the pending
 * version like a failed write.  -EBADF not a write handle.
 * Cost: zeroing the new bytes, O(len).
 */
int tc_file_reserve(tc_store *s, tc_file *fh, uint64_t off, uint64_t len);

/*
 * Commit the pending version if this handle changed it (wrote, truncated,
 * or opened it with TC_O_TRUNC) since its own last commit; a no-op
 * otherwise, so a late commit through an old handle never commits another
 * writer's rewrite that has only begun.  If a write or reservation into
 * the pending version failed, it is dropped instead and the first error
 * returned (-ENOSPC, -EFBIG, -EIO): a new tensor is then absent after its
 * last close, a rewritten one keeps its committed bytes.  Commit means: checksum it,
 * take dtype/shape from a .npy header, append one journal record, make it
 * the version that new opens read.  After it returns 0 the tensor survives
 * a kill -9 of the process.  Cost: O(size) hashing unless the bytes were
 * written sequentially, plus one write(2).
 */
int tc_file_commit(tc_store *s, tc_file *fh);

/* 1 while this handle has changes that tc_file_commit would commit (or
 * drop, when a write failed): written, truncated or opened with TC_O_TRUNC
 * since its own last commit; else 0.  O(1). */
int tc_file_changed(tc_store *s, tc_file *fh);

/* Commit, then make the tensor durable against power loss. */
int tc_file_sync(tc_store *s, tc_file *fh);

/* Release the handle.  Changes not committed are dropped when the last
 * writer closes; a created tensor never committed disappears.  NULL-safe. */
void tc_file_close(tc_store *s, tc_file *fh);

/* Attributes of the handle's tensor (size of the handle's version), also
 * after its name is gone (unlinked or renamed over: nlink 0). */
int tc_file_stat(tc_store *s, tc_file *fh, struct tc_stat *st);

/* ---- meta.json ----------------------------------------------------------- */

/*
 * meta.json is open-world: a user's document is any JSON object, and
 * reads back with every key it had, each value as written, and one key
 * more, "__tcache__", that holds ours (created, last_access, pinned,
 * attrs, tensors, groups: see lib/meta.c).  Writing "__tcache__" sets
 * ours; the others are kept as they are.  A key K whose value has
 * "dtype" and "shape" (TensorDict's schema; our dtype names, torch's or
 * numpy's) gives tensor K.memmap that dtype and shape, now or when it is
 * committed or renamed to that name later, whatever its size.
 */

/* Render meta.json of entry or group @dir: malloc'd, NUL-terminated JSON in
 * *@json (caller frees), its length in *@len.  A tensor named
 * *.safetensors whose header is valid (and at most 16 MiB) also lists the
 * file's tensors: "safetensors": {NAME: {dtype, shape, offset}}. */
int tc_meta_get(tc_store *s, uint64_t dir, char **json, size_t *len);

/* Apply a user's meta.json to @dir: the user's keys replace the ones
 * kept; "__tcache__" sets dtype/shape per tensor, attrs, pinned; keys
 * declaring tensors set theirs.  All or nothing: -EINVAL (not a JSON
 * object; in "__tcache__": an unknown key, dtype or tensor, a shape that
 * does not match nbytes) changes nothing.  One journal record. */
int tc_meta_set(tc_store *s, uint64_t dir, const char *json, size_t len);

/* Forget the user's keys of @dir's meta.json (rm meta.json): it reads as
 * ours alone again.  What the keys declared of tensors stays.  0, or
 * -ENOENT, -ENOTDIR, -EINVAL (the root).  One journal record, if any. */
int tc_meta_remove(tc_store *s, uint64_t dir);

/* Take file @name of @dir as its meta.json (a rename over meta.json):
 * its bytes are applied as tc_meta_set() would, and it goes, in one
 * record.  -EINVAL refused (nothing changes), -ENOENT, -EISDIR, -EBUSY
 * (it is open for writing), -EFBIG (over TC_META_MAX). */
int tc_meta_take(tc_store *s, uint64_t dir, const char *name);

/* What tc_meta_set would answer for @json now, changing nothing: 0 it
 * would apply it, -EINVAL it would refuse it, or no bytes added to it
 * could make it a JSON object ("{bad"), -EAGAIN @json is not yet a whole
 * JSON document (a writer may still be sending it). */
int tc_meta_check(tc_store *s, uint64_t dir, const char *json, size_t len);

/* -EINVAL when no bytes added to @json (@len bytes, the start of a
 * document being written) can make it a JSON object; 0 otherwise. */
int tc_meta_check_start(const char *json, size_t len);

/* Why the last -EINVAL of tc_meta_set, tc_meta_check, tc_meta_check_start
 * or tc_meta_take in
 * this thread refused its document, e.g. "__tcache__.tensors.kv.bin.shape:
 * 32×128×2 bytes ≠ 8190" or "not JSON at byte 1: expected a string or
 * '}'"; "" when it did not say. */
const char *tc_meta_error(void);

/* ---- the .safetensors view ----------------------------------------------- */

typedef struct tc_view tc_view;

/*
 * Open the view of entry @entry: one .safetensors file (8-byte
 * little-endian header length N, N bytes of JSON padded with spaces to a
 * multiple of 8, then the data) of the entry's tensors, as they are now:
 *   - each tensor whose dtype we know and whose dtype and shape fit its
 *     bytes (numel x itemsize <= size - data_offset), named by its path
 *     in the entry ("group/name"), its data the numel x itemsize bytes
 *     from its data_offset (a .npy file's array, not its header);
 *   - a tensor named *.safetensors whose header is valid (the reference
 *     reader's rules: see lib/safetensors.h) is not one tensor but its
 *     own tensors, named "path/NAME", dtypes as the file says;
 *   - left out: a path that is not UTF-8, and a tensor named
 *     "__metadata__" at the entry's top;
 *   - "__metadata__": the entry's attrs, string values as they are, others
 *     as their compact JSON text (members not UTF-8 left out); absent when
 *     there are none;
 *   - order: the format's dtype order, widest first, then by name (as the
 *     reference writer orders them), so every tensor is aligned to its
 *     item size.
 * The view holds what it serves as tc_open() holds a tensor: until
 * tc_view_close() its bytes never change (a rewrite, rename or unlink of
 * a tensor changes later views, not this one) and its entry is not
 * evicted.  Opening counts as an open of the entry's tensors for recency,
 * and verifies the ones not yet verified (see tc_options.verify).
 * On success *@out owns the view until tc_view_close().
 * Errors: -ENOENT; -EINVAL @entry is no entry (a group, a tensor, the
 * root); -ENOTDIR @entry is a tensor; -EIO a tensor of the entry is
 * damaged; -EFBIG the header would pass the format's 100,000,000 bytes;
 * -ENOMEM.  Cost: O(t log t) for t tensors, plus reading the header of
 * each *.safetensors file, plus hashing what is not yet verified.
 */
int tc_view_open(tc_store *s, uint64_t entry, tc_view **out);

/* The size in bytes that a view of @entry opened now would have, in
 * *@size, without opening one (no verification, no recency).  Errors as
 * tc_view_open but -EIO.  Cost: as tc_view_open without hashing. */
int tc_view_stat(tc_store *s, uint64_t entry, uint64_t *size);

/* The view's size in bytes: fixed at open. */
uint64_t tc_view_size(const tc_view *v);

/* A 64-bit digest of what the view holds (its header and the version of
 * each tensor served), for a cache of its bytes: two views with the same
 * content while the store is open hold the same bytes (barring a digest
 * collision, ~2^-64). */
uint64_t tc_view_content(const tc_view *v);

/*
 * Locate bytes [@off, @off + @size) of the view, clipped at its end, as
 * tc_file_map() does: fills up to @max spans, *@n and *@total.  Header
 * bytes are the view's own memory (span fd -1, fd_off 0); the rest are in
 * the pool.  Valid until tc_view_close().  No lock taken: any thread, any
 * number at once.  -ENOBUFS when @max spans do not cover the range.
 * Cost: O(log t + spans).
 */
int tc_view_map(tc_store *s, tc_view *v, uint64_t off, size_t size,
		struct tc_span *sp, int max, int *n, size_t *total);

/* Copy bytes out of the view (from the pool mmap).  Returns the number
 * copied (0 at or past the end) or -ENOMEM. */
ssize_t tc_view_pread(tc_store *s, tc_view *v, void *buf, size_t size,
		      uint64_t off);

/* Release the view and what it holds.  Views, like files, must be closed
 * before tc_store_close().  NULL-safe. */
void tc_view_close(tc_store *s, tc_view *v);

/* ---- staged tensors: bytes written straight into the pool (stage.c) ----- */

/*
 * A writer on this machine that may write the pool file can put many
 * tensors with a constant number of calls.  tc_stage reserves pool space
 * for one tensor of @size bytes, named by nobody yet, as one run of the
 * pool file at *@off; the caller writes the bytes there itself (pwrite on
 * the pool file).  tc_stage_commit then names any number of staged
 * tensors of one directory at once, in one journal record: once it
 * returns 0 they are committed as a close(2) commits a file: a kill -9 at
 * any moment leaves all of them, whole, or none; a power loss before the
 * next sync leaves each whole or absent, as for any write not yet
 * synced (tc_store_sync makes them durable).  Until then a staged
 * tensor is not listed and never evicted, and its space counts as used;
 * tc_staged_drop gives it back.  Who writes into a staged run is the
 * caller's to control: the store hashes what the pool holds at commit.
 *
 * tc_stage: 0; -EINVAL @size 0; -EFBIG more than the pool; -ENOSPC no
 * room can be made (evicting as any write does); -EXDEV the room came in
 * more than one run (nothing is kept: write this one through a file);
 * -ENOMEM.  Thread-safe.
 */
#define TC_STAGE_MAX 1024
typedef struct tc_staged tc_staged;
int tc_stage(tc_store *s, uint64_t size, tc_staged **out, uint64_t *off);
/* Free a staged tensor not committed.  NULL-safe. */
void tc_staged_drop(tc_store *s, tc_staged *t);
/*
 * Commit staged @t[0 .. n) as tensors @names[i] of directory @dir, with
 * @mode, @uid, @gid and, at the root, the parent links @links[i] (@links
 * or @links[i] NULL: none).  Their xxh3 is computed from the pool here.
 * A name present in @dir now is left as it is, and its staged bytes
 * dropped: @made[i] is 0 for it, 1 for a tensor made.  On success every
 * @t[i] is consumed, made or not; on an error none is and nothing
 * changed (tc_staged_drop them).  Made files at the root are entries,
 * the most recently used; in an entry, the entry is touched.
 * -ENOENT, -ENOTDIR @dir; -EINVAL a name twice, a link below the root;
 * a name no tensor may have there (-EINVAL, -ENAMETOOLONG, -EEXIST for a
 * reserved one, as tc_create); -ELOOP a link would close a loop; -E2BIG
 * @n > TC_STAGE_MAX; journal errors (-ENOSPC, -EIO).  Thread-safe, but
 * each @t[i] belongs to one caller.
 */
int tc_stage_commit(tc_store *s, uint64_t dir, size_t n, tc_staged *const *t,
		    const char *const *names, const char *const *links,
		    uint32_t mode, uint32_t uid, uint32_t gid, int *made);

/* ---- direct mapping: a reader maps a tensor's pool pages itself --------- */

/*
 * A reader on this machine may map an open tensor straight from the pool:
 * no FUSE request per page, and the pool's own page cache pages.  The
 * ioctl TC_IOC_MAP on a read-only fd of a tensor on a tcachefs mount
 * answers where its bytes lie in the pool (TC_BLOCK-aligned extents, in
 * order; or, for a tensor of at most 2 KiB that shares a block with
 * others, one extent inside one block) and the pool file's path.  The open fd pins that version, as any
 * open does: replacement and eviction leave those pool bytes alone until
 * it is closed, so a mapping is valid while the fd stays open.  Whoever
 * may open the pool file (mode 0600 in a 0700 store: the daemon's user,
 * and root) can map; anyone else gets EACCES from tc_map_fd and reads
 * through the fd, the same bytes.  allow_other widens nothing: the ioctl
 * tells where bytes lie, the pool's own permissions decide who reads them.
 */
#define TC_IOC_ABI 1
#define TC_IOC_MAX_EXTENTS 256
struct tc_ioc_extent {
	uint64_t off;             /* in the pool file, TC_BLOCK-aligned
	                             (but for a packed tensor's one) */
	uint64_t len;             /* bytes of the tensor there */
};
struct tc_ioc_map {
	uint32_t abi;             /* TC_IOC_ABI */
	uint32_t nextents;
	uint64_t size;            /* the tensor's bytes (sum of the lens) */
	uint64_t version;         /* changes when the tensor is replaced */
	char pool[1024];          /* the pool file's path */
	struct tc_ioc_extent ext[TC_IOC_MAX_EXTENTS];
};
/* _IOR('t', 1, struct tc_ioc_map), spelt out so that no header is needed
 * to compute it (Python: 0x80000000 | sizeof << 16 | 't' << 8 | 1) */
#define TC_IOC_MAP                                                          \
	(0x80000000u | ((uint32_t)sizeof(struct tc_ioc_map) << 16) |        \
	 ((uint32_t)'t' << 8) | 1u)

/*
 * Batched lookups and pins of many tensors of one directory (a page
 * tier's pages at the root, an entry's tensors): the ioctl TC_IOC_BATCH
 * on a directory fd (open(DIR, O_RDONLY | O_DIRECTORY)) of a tcachefs
 * mount, one request for up to TC_BATCH_MAX names (names[]: each ended by
 * a NUL, count of them).  item[i].size is name i's size, or
 * TC_BATCH_ABSENT (no such name, or not a tensor); present counts the
 * others.
 *   TC_BATCH_EXISTS  a lookup each, as stat(2) makes: at the root a
 *                    probe, and a miss for an absent name.
 *   TC_BATCH_LEADING the same, stopping at the first absent name (those
 *                    after it are not looked up, and answer ABSENT).
 *   TC_BATCH_PIN     the same, and each present tensor is opened for
 *                    reading as open(2) would: a hit, its entry most
 *                    recently used and kept from eviction, its bytes
 *                    verified at their first open (EIO is an error of the
 *                    call).  item[i].off is where its bytes lie in the pool
 *                    file (pool[]), as one run, or TC_BATCH_NOMAP when
 *                    they lie in several (read that one through its
 *                    file).  token names the pins.
 *   TC_BATCH_UNPIN   closes the pins of token (count and names unused).
 * Pins last until UNPIN or until the directory fd is closed: a reader
 * killed mid-batch leaves none.  Meanwhile the bytes at off stay that
 * version's, whatever replaces or removes the tensor.  Who may not open
 * the pool file reads through the files instead (the same bytes).
 *
 * Puts (tc_stage, tc_stage_commit), for root and the pool file's owner
 * (anyone else: EACCES; write files instead):
 *   TC_BATCH_STAGE   item[i].size in: bytes of tensor i (count of them).
 *                    Out: item[i].off, where in the pool file (pool[]) to
 *                    write its bytes, or TC_BATCH_NOMAP when it got no
 *                    single run (write that one through a file); present
 *                    counts the others; token names them.  An error
 *                    (ENOSPC, EFBIG, EINVAL a size of 0) stages nothing.
 *   TC_BATCH_COMMIT  token, count (at most STAGE's), names[]: for each
 *                    staged i a name and its parent link, each ended by
 *                    a NUL ("" for no link; links at the root only).
 *                    Commits them in one journal record: after a kill
 *                    -9 all are there, whole, or none (after a power
 *                    loss before a sync: each whole or absent).  Out:
 *                    item[i].size,
 *                    its size if made, TC_BATCH_ABSENT if not (a name
 *                    present is kept as it is; a NOMAP item); present
 *                    counts those made.  Errors as tc_stage_commit's.
 * A STAGE's tensors wait under its token for its COMMIT, which ends
 * them whatever its outcome (those not made are dropped), or for the
 * directory fd's close, which drops them: a writer killed mid-batch
 * leaves nothing.
 */
#define TC_BATCH_MAX 192
#define TC_BATCH_NAMES 12032
#define TC_BATCH_EXISTS 1
#define TC_BATCH_PIN 2
#define TC_BATCH_UNPIN 3
#define TC_BATCH_LEADING 4
#define TC_BATCH_STAGE 5
#define TC_BATCH_COMMIT 6
#define TC_BATCH_ABSENT UINT64_MAX
#define TC_BATCH_NOMAP UINT64_MAX
struct tc_ioc_batch_item {
	uint64_t size;
	uint64_t off;
};
struct tc_ioc_batch {
	uint32_t abi;             /* TC_IOC_ABI (in and out) */
	uint32_t op;              /* TC_BATCH_* */
	uint32_t count;           /* names in */
	uint32_t present;         /* out */
	uint64_t token;           /* PIN, STAGE out; UNPIN, COMMIT in */
	char pool[1024];          /* PIN, STAGE out: the pool file's path */
	struct tc_ioc_batch_item item[TC_BATCH_MAX];
	char names[TC_BATCH_NAMES];
};
/* _IOWR('t', 2, struct tc_ioc_batch), spelt out as TC_IOC_MAP is */
#define TC_IOC_BATCH                                                        \
	(0xC0000000u | ((uint32_t)sizeof(struct tc_ioc_batch) << 16) |      \
	 ((uint32_t)'t' << 8) | 2u)

/*
 * Map the tensor open at @fd (read-only, on a tcachefs mount) from the
 * pool, read-only, as one contiguous range: *@addr, *@len (its bytes).
 * Keep @fd open until tc_unmap(): it is what keeps the bytes in place.
 * 0, or -errno: -ENOTTY @fd is no tensor of a tcachefs mount, -EBADF it
 * is open for writing, -EACCES (or another open() error) this process may
 * not read the pool file (read through @fd instead), -E2BIG more extents
 * than TC_IOC_MAX_EXTENTS.  An empty tensor maps to a non-NULL @addr of
 * length 0.
 */
int tc_map_fd(int fd, const void **addr, size_t *len);
/* Undo tc_map_fd (then @fd may be closed). */
void tc_unmap(const void *addr, size_t len);

/* ---- misc ---------------------------------------------------------------- */

/* Parse a size such as "512", "64K", "20G", "1.5T" (powers of 1024).
 * -EINVAL when malformed or zero, -ERANGE on overflow. */
int tc_parse_size(const char *s, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif /* TCACHE_H */
