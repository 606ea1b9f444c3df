/*
 * kcache.c - which committed version of a tensor the kernel's page cache
 * holds, so that open can set keep_cache safely.
 *
 * Without keep_cache every open makes the kernel drop the file's cached
 * pages; with it, a second read never reaches the daemon.  Keeping is only
 * right when the pages are of the version this open reads, so we remember,
 * per ino, the version of the last open; an open of another version gets
 * keep_cache = 0 (the kernel drops the pages) and becomes the new record.
 * A commit (the pages may mix old and new bytes) and a read through a handle
 * of an older version (it fills pages with old bytes) forget the record.
 *
 * The page cache is one per inode, shared by every open: a reader that
 * opened version 5 must not find pages of version 6 that a later reader
 * brought in.  So buffered readers are counted per ino, and while some are
 * open, an open of another version bypasses the cache (direct_io): each
 * open reads its own version, never a mix.  (Rewrites opened O_WRONLY are
 * direct too: see ops.c.)
 *
 * Layout: an open-addressing hash table (linear probing) of {ino, version,
 * readers}, ino 0 = empty slot; grown at 1/2 load.  Forgetting a version
 * sets it to KC_UNKNOWN.  A record goes when the kernel drops the inode
 * (FORGET: its page cache went with it) and no buffered reader is open;
 * removal shifts the rest of its probe run back, so no tombstones.  The
 * table thus holds the tensors the kernel holds, not every tensor ever
 * opened (a long-running cache with evictions would grow it without end).
 * 24 bytes a record, at most twice that in slots.  O(1) expected a call.
 *
 * Locking: one mutex, a leaf (no other lock is taken while holding it).
 */
#include <stdlib.h>

#include "tcfs.h"

#define KC_UNKNOWN UINT64_MAX

struct kc_slot {
	uint64_t ino;
	uint64_t version;
	uint64_t readers;  /* open buffered read-only handles */
};

struct tcfs_kcache {
	pthread_mutex_t lock;
	struct kc_slot *slots; /* protected by lock */
	size_t cap, used;      /* protected by lock; cap a power of two */
};

struct tcfs_kcache *tcfs_kcache_new(void)
{
	struct tcfs_kcache *kc = calloc(1, sizeof(*kc));
	if (!kc)
		return NULL;
	kc->cap = 1024;
	kc->slots = calloc(kc->cap, sizeof(*kc->slots));
	if (!kc->slots) {
		free(kc);
		return NULL;
	}
	pthread_mutex_init(&kc->lock, NULL);
	return kc;
}

void tcfs_kcache_free(struct tcfs_kcache *kc)
{
	if (!kc)
		return;
	pthread_mutex_destroy(&kc->lock);
	free(kc->slots);
	free(kc);
}

static size_t kc_hash(uint64_t ino, size_t cap)
{
	ino *= 0x9e3779b97f4a7c15ull;
	return (size_t)(ino >> 32) & (cap - 1);
}

/* The slot of @ino, or the empty slot where it would go. */
static struct kc_slot *kc_find(struct kc_slot *slots, size_t cap, uint64_t ino)
{
	size_t i = kc_hash(ino, cap);
	while (slots[i].ino && slots[i].ino != ino)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

/* Make room for one more record.  On out of memory the table stays as it
 * is and the caller simply does not record (keep_cache is then off). */
static bool kc_reserve(struct tcfs_kcache *kc)
{
	if ((kc->used + 1) * 2 <= kc->cap)
		return true;
	size_t ncap = kc->cap * 2;
	struct kc_slot *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return false;
	for (size_t i = 0; i < kc->cap; i++)
		if (kc->slots[i].ino)
			*kc_find(ns, ncap, kc->slots[i].ino) = kc->slots[i];
	free(kc->slots);
	kc->slots = ns;
	kc->cap = ncap;
	return true;
}

/* A new record of @ino (absent), of no known version and no reader; NULL
 * when there is no memory for it.  Lock held. */
static struct kc_slot *kc_add(struct tcfs_kcache *kc, uint64_t ino)
{
	if (!kc_reserve(kc))
		return NULL;
	struct kc_slot *s = kc_find(kc->slots, kc->cap, ino);
	*s = (struct kc_slot){ .ino = ino, .version = KC_UNKNOWN };
	kc->used++;
	return s;
}

int tcfs_kcache_open(struct tcfs_kcache *kc, uint64_t ino, uint64_t version)
{
	int mode = TCFS_KC_FRESH;
	pthread_mutex_lock(&kc->lock);
	struct kc_slot *s = kc_find(kc->slots, kc->cap, ino);
	if (!s->ino) {
		if (!(s = kc_add(kc, ino))) {
			mode = TCFS_KC_DIRECT; /* cannot count: stay out */
			goto out;
		}
		mode = TCFS_KC_FIRST;
	}
	if (s->readers && s->version != version) {
		mode = TCFS_KC_DIRECT;
		goto out;
	}
	if (s->version == version && version != KC_UNKNOWN)
		mode = TCFS_KC_KEEP;
	s->version = version;
	s->readers++;
out:
	pthread_mutex_unlock(&kc->lock);
	return mode;
}

void tcfs_kcache_close(struct tcfs_kcache *kc, uint64_t ino)
{
	pthread_mutex_lock(&kc->lock);
	struct kc_slot *s = kc_find(kc->slots, kc->cap, ino);
	if (s->ino && s->readers)
		s->readers--;
	pthread_mutex_unlock(&kc->lock);
}

void tcfs_kcache_forget(struct tcfs_kcache *kc, uint64_t ino)
{
	pthread_mutex_lock(&kc->lock);
	struct kc_slot *s = kc_find(kc->slots, kc->cap, ino);
	/* without one, a record (KC_UNKNOWN), so that no later open takes
	 * the page cache for empty (TCFS_KC_FIRST): a writer may fill it */
	if (s->ino)
		s->version = KC_UNKNOWN;
	else
		kc_add(kc, ino);
	pthread_mutex_unlock(&kc->lock);
}

/* Empty the slot at @i and move back the records after it in its probe
 * run that may sit there (their home slot is not in (i, j]). */
static void kc_remove_at(struct tcfs_kcache *kc, size_t i)
{
	size_t mask = kc->cap - 1, j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (!kc->slots[j].ino)
			break;
		size_t k = kc_hash(kc->slots[j].ino, kc->cap);
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (!stays) {
			kc->slots[i] = kc->slots[j];
			i = j;
		}
	}
	kc->slots[i] = (struct kc_slot){ 0 };
	kc->used--;
}

void tcfs_kcache_drop(struct tcfs_kcache *kc, uint64_t ino)
{
	pthread_mutex_lock(&kc->lock);
	struct kc_slot *s = kc_find(kc->slots, kc->cap, ino);
	if (s->ino && !s->readers)
		kc_remove_at(kc, (size_t)(s - kc->slots));
	pthread_mutex_unlock(&kc->lock);
}

size_t tcfs_kcache_count(struct tcfs_kcache *kc)
{
	pthread_mutex_lock(&kc->lock);
	size_t n = kc->used;
	pthread_mutex_unlock(&kc->lock);
	return n;
}

void tcfs_kcache_read(struct tcfs_kcache *kc, uint64_t ino, uint64_t version)
{
	pthread_mutex_lock(&kc->lock);
	struct kc_slot *s = kc_find(kc->slots, kc->cap, ino);
	if (s->ino && s->version != version)
		s->version = KC_UNKNOWN;
	pthread_mutex_unlock(&kc->lock);
}
