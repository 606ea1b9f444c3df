/*
 * powerloss.h - the disk model of the power-loss test (powerloss_disk.c)
 * and what the test program (powerloss.c) gives it.
 */
#ifndef TC_POWERLOSS_H
#define TC_POWERLOSS_H

#include <stddef.h>
#include <stdint.h>

/* Called at each crash point with a description ("after fdatasync(pool)").
 * Only in the recording process, never in a checkpoint child. */
typedef void (*pl_point_fn)(const char *where);

/* Start recording the store directory @dir (absolute, existing, empty):
 * from now on the file sync calls of libtcache (link-time wrapped) update
 * the durable images.  0 or a negative errno. */
int pl_disk_start(const char *dir, pl_point_fn point);
/* Stop recording and forget every image (the next start begins anew). */
void pl_disk_stop(void);
/* Recording off (1) or on again (0) around an exploration: nesting-safe
 * for one level. */
void pl_disk_pause(int paused);

/* How one crash state treats the unsynced part of a file. */
enum pl_mode {
	PL_DURABLE,  /* only what was synced */
	PL_ALL,      /* everything written reached the disk */
	PL_PREFIX,   /* dirty blocks up to a random cut */
	PL_RANDOM,   /* each dirty block with probability p */
};

struct pl_choice {
	const char *name;     /* strategy, for reports */
	int dir_current;      /* names as now (1) or as at the last dir fsync */
	enum pl_mode pool, journal; /* "pool"; "journal" and "journal.new" */
	int cur_size;         /* size as now (1) or as synced (0); -1 random */
	double p;             /* PL_RANDOM probability */
	uint64_t seed;        /* for PL_PREFIX / PL_RANDOM / cur_size -1 */
};

/* Take what the files hold now (once per crash point, before the states). */
void pl_disk_snapshot(void);

/* Write the crash state that @c describes (of the last snapshot) into
 * directory @out, which then holds nothing else; with @write 0 only
 * compute *@hash, which identifies the state (to skip duplicates).
 * *@journal_torn is set when the state's journal files hold bytes that
 * were never synced.  0, 1 when the store directory was never synced
 * (@out is then empty: no store), or a negative errno. */
int pl_disk_state(const char *out, const struct pl_choice *c, int write,
		  uint64_t *hash, int *journal_torn);

/* Set when a file outgrew the image size (the test is then invalid). */
int pl_disk_overflow(void);

#endif
