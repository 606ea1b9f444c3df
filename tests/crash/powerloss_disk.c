/*
 * powerloss_disk.c - what a power loss may leave of a store directory.
 *
 * The test links libtcache with -Wl,--wrap for the calls that decide
 * durability (fdatasync, fsync, msync, syncfs, renameat, renameat2,
 * unlinkat, openat64).  sync_file_range is not one of them: it promises
 * nothing against power loss, so it makes nothing durable here; nor do
 * O_DSYNC/RWF_DSYNC writes (not seen: a store using them needs a wrapper).  Writes are
 * not intercepted (the pool is also written through a shared mmap);
 * instead each file has a durable image: at fdatasync/fsync of a regular
 * file, after the real call, the file's whole content and size are copied
 * into its image (pread sees the mmap's dirty pages).  The directory's
 * durable state (name -> file) is taken at fsync of the directory; before
 * the first one the directory holds nothing.
 *
 * Images live in one MAP_SHARED anonymous region, so that the checkpoint
 * child (forked by lib/journal.c, which closes all descriptors but three
 * and fdatasyncs journal.new) updates them too.  Files are known by slot,
 * not inode: a slot is made when openat64 creates a file; when a file's
 * last name goes (unlink, renamed over) its content at that moment is kept
 * as "last" and the slot is detached from the inode (which may be reused)
 * but stays while the durable directory still names it.
 *
 * A crash state (pl_disk_state) takes the directory as synced or as now,
 * and each file as its durable image plus some of its dirty 4 KiB blocks
 * (blocks whose content differs from the image), at the synced size or
 * the current one.  Limits: no reordering inside a block, no torn sector,
 * one directory, metadata (size) all-or-nothing per file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "powerloss.h"

#define SLOTS 32
#define IMG_MAX (4u << 20)
#define BLK 4096u
#define NAMES 16
#define NAME_LEN 32

struct slot {
	int used;
	ino_t ino;          /* 0 once its last name is gone */
	uint64_t size;      /* durable size */
	uint64_t last_size; /* size when its last name went */
	uint8_t data[IMG_MAX];
	uint8_t last[IMG_MAX];
};

struct dent {
	char name[NAME_LEN];
	int slot;
};

struct shared {
	pthread_mutex_t mu; /* process-shared: parent and checkpoint child */
	int overflow;
	int ndur;           /* durable directory */
	int dir_synced;
	struct dent dur[NAMES];
	struct slot slot[SLOTS];
};

static struct shared *sh;
static char store_dir[4096];
static int recording;
static pid_t main_pid;
static pl_point_fn point_fn;
static uint8_t *out_buf;

int __real_fdatasync(int fd);
int __real_fsync(int fd);
int __real_renameat(int olddirfd, const char *oldpath, int newdirfd,
		    const char *newpath);
int __real_unlinkat(int dirfd, const char *path, int flags);
int __real_openat64(int dirfd, const char *path, int flags, ...);
int __wrap_fdatasync(int fd);
int __wrap_fsync(int fd);
int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd,
		    const char *newpath);
int __wrap_unlinkat(int dirfd, const char *path, int flags);
int __wrap_openat64(int dirfd, const char *path, int flags, ...);
int __real_msync(void *addr, size_t len, int flags);
int __wrap_msync(void *addr, size_t len, int flags);
int __real_renameat2(int olddirfd, const char *oldpath, int newdirfd,
		     const char *newpath, unsigned flags);
int __wrap_renameat2(int olddirfd, const char *oldpath, int newdirfd,
		     const char *newpath, unsigned flags);
int __real_syncfs(int fd);
int __wrap_syncfs(int fd);

static int active(void)
{
	return recording && sh && getpid() == main_pid;
}

static void point(const char *fmt, const char *a, const char *b)
{
	char buf[256];
	if (!active() || !point_fn)
		return;
	snprintf(buf, sizeof(buf), fmt, a, b);
	point_fn(buf);
}

/* Read all of @fd (at most IMG_MAX) into @buf; its size, or -1. */
static int64_t read_all(int fd, uint8_t *buf)
{
	struct stat st;
	uint64_t at = 0, size;
	if (fstat(fd, &st) < 0)
		return -1;
	size = (uint64_t)st.st_size;
	if (size > IMG_MAX) {
		sh->overflow = 1;
		size = IMG_MAX;
	}
	while (at < size) {
		ssize_t n = pread(fd, buf + at, size - at, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		at += (uint64_t)n;
	}
	return (int64_t)at;
}

static int slot_of_ino(ino_t ino)
{
	for (int i = 0; i < SLOTS; i++)
		if (sh->slot[i].used && sh->slot[i].ino == ino)
			return i;
	return -1;
}

static int durably_named(int s)
{
	for (int i = 0; i < sh->ndur; i++)
		if (sh->dur[i].slot == s)
			return 1;
	return 0;
}

static void slot_new(ino_t ino)
{
	int s = slot_of_ino(ino), i;
	pthread_mutex_lock(&sh->mu);
	if (s >= 0)
		sh->slot[s].ino = 0; /* inode reused: the old file is gone */
	for (i = 0; i < SLOTS; i++) {
		struct slot *sl = &sh->slot[i];
		if (sl->used && !sl->ino && !durably_named(i))
			sl->used = 0;
		if (!sl->used)
			break;
	}
	if (i == SLOTS) {
		sh->overflow = 1;
	} else {
		sh->slot[i].used = 1;
		sh->slot[i].ino = ino;
		sh->slot[i].size = 0;
		sh->slot[i].last_size = 0;
	}
	pthread_mutex_unlock(&sh->mu);
}

/* @path in @dirfd loses its name: keep its content as "last". */
static void name_goes(int dirfd, const char *path)
{
	struct stat st;
	int s, fd;
	if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (s = slot_of_ino(st.st_ino)) < 0)
		return;
	fd = __real_openat64(dirfd, path, O_RDONLY | O_CLOEXEC);
	pthread_mutex_lock(&sh->mu);
	if (fd >= 0) {
		int64_t n = read_all(fd, sh->slot[s].last);
		sh->slot[s].last_size = n > 0 ? (uint64_t)n : 0;
		close(fd);
	}
	sh->slot[s].ino = 0;
	pthread_mutex_unlock(&sh->mu);
}

/* The directory's names now, with their slots; how many. */
static int list_now(struct dent *d)
{
	DIR *dir = opendir(store_dir);
	struct dirent *e;
	int n = 0;
	if (!dir)
		return 0;
	while ((e = readdir(dir)) && n < NAMES) {
		struct stat st;
		if (e->d_name[0] == '.' || strlen(e->d_name) >= NAME_LEN ||
		    fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		int s = slot_of_ino(st.st_ino);
		if (s < 0)
			continue;
		strcpy(d[n].name, e->d_name);
		d[n++].slot = s;
	}
	closedir(dir);
	return n;
}

static const char *name_of_fd(int fd, char *buf, size_t len)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, len - 1);
	if (n < 0)
		return "?";
	buf[n] = 0;
	const char *slash = strrchr(buf, '/');
	return slash ? slash + 1 : buf;
}

static void synced(int fd, const char *call)
{
	struct stat st;
	char nm[4096];
	if (!recording || !sh || fstat(fd, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		struct dent d[NAMES];
		if (!active())
			return;
		int n = list_now(d);
		pthread_mutex_lock(&sh->mu);
		memcpy(sh->dur, d, sizeof(d[0]) * (size_t)n);
		sh->ndur = n;
		sh->dir_synced = 1;
		pthread_mutex_unlock(&sh->mu);
		point("after %s(store dir)%s", call, "");
		return;
	}
	int s = slot_of_ino(st.st_ino);
	if (s < 0)
		return;
	pthread_mutex_lock(&sh->mu);
	int64_t n = read_all(fd, sh->slot[s].data);
	if (n >= 0)
		sh->slot[s].size = (uint64_t)n;
	pthread_mutex_unlock(&sh->mu);
	point("after %s(%s)", call, name_of_fd(fd, nm, sizeof(nm)));
}

static void before_sync(int fd, const char *call)
{
	char nm[4096];
	struct stat st;
	if (active() && fstat(fd, &st) == 0)
		point("before %s(%s)", call,
		      S_ISDIR(st.st_mode) ? "store dir"
					  : name_of_fd(fd, nm, sizeof(nm)));
}

int __wrap_fdatasync(int fd)
{
	before_sync(fd, "fdatasync");
	int r = __real_fdatasync(fd);
	if (r == 0)
		synced(fd, "fdatasync");
	return r;
}

int __wrap_fsync(int fd)
{
	before_sync(fd, "fsync");
	int r = __real_fsync(fd);
	if (r == 0)
		synced(fd, "fsync");
	return r;
}

int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd,
		    const char *newpath)
{
	point("before rename(%s -> %s)", oldpath, newpath);
	if (active())
		name_goes(newdirfd, newpath);
	int r = __real_renameat(olddirfd, oldpath, newdirfd, newpath);
	if (r == 0)
		point("after rename(%s -> %s)", oldpath, newpath);
	return r;
}

int __wrap_renameat2(int olddirfd, const char *oldpath, int newdirfd,
		     const char *newpath, unsigned flags)
{
	point("before rename(%s -> %s)", oldpath, newpath);
	if (active() && !(flags & RENAME_EXCHANGE))
		name_goes(newdirfd, newpath);
	int r = __real_renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
	if (r == 0)
		point("after rename(%s -> %s)", oldpath, newpath);
	return r;
}

/* msync(MS_SYNC) of a shared file mapping: bytes [off, off + len) of the
 * mapped file become durable (and its size, as with fdatasync).  The file
 * is found through /proc/self/maps. */
int __wrap_msync(void *addr, size_t len, int flags)
{
	int r = __real_msync(addr, len, flags);
	FILE *f;
	char line[4400];
	if (r || !(flags & MS_SYNC) || !recording || !sh ||
	    !(f = fopen("/proc/self/maps", "re")))
		return r;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, off, ino;
		char path[4200] = "";
		if (sscanf(line, "%lx-%lx %*s %lx %*s %lu %4199s", &lo, &hi, &off,
			   &ino, path) < 4 || (uintptr_t)addr < lo ||
		    (uintptr_t)addr >= hi)
			continue;
		int s = slot_of_ino((ino_t)ino);
		int fd = s < 0 ? -1 : open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			struct slot *sl = &sh->slot[s];
			uint64_t at = off + ((uintptr_t)addr - lo);
			pthread_mutex_lock(&sh->mu);
			/* the rest of the file as it was synced, this range as now */
			uint64_t old = sl->size;
			int64_t n = read_all(fd, out_buf);
			if (n >= 0) {
				uint64_t end = at + len < (uint64_t)n ? at + len
								      : (uint64_t)n;
				if (old < (uint64_t)n)
					memset(sl->data + old, 0, (uint64_t)n - old);
				if (at < end)
					memcpy(sl->data + at, out_buf + at, end - at);
				sl->size = (uint64_t)n;
			}
			pthread_mutex_unlock(&sh->mu);
			close(fd);
			point("after msync(%s)%s", strrchr(path, '/') ?
				strrchr(path, '/') + 1 : path, "");
		}
		break;
	}
	fclose(f);
	return r;
}

/* syncfs: every file and the directory as they are now. */
int __wrap_syncfs(int fd)
{
	int r = __real_syncfs(fd);
	struct dent d[NAMES];
	if (r || !active())
		return r;
	int n = list_now(d);
	for (int i = 0; i < n; i++) {
		char p[4200];
		int len = snprintf(p, sizeof(p), "%s/%s", store_dir, d[i].name);
		int f = len > 0 && (size_t)len < sizeof(p)
				? open(p, O_RDONLY | O_CLOEXEC) : -1;
		if (f < 0)
			continue;
		pthread_mutex_lock(&sh->mu);
		int64_t got = read_all(f, sh->slot[d[i].slot].data);
		sh->slot[d[i].slot].size = got > 0 ? (uint64_t)got : 0;
		pthread_mutex_unlock(&sh->mu);
		close(f);
	}
	pthread_mutex_lock(&sh->mu);
	memcpy(sh->dur, d, sizeof(d[0]) * (size_t)n);
	sh->ndur = n;
	sh->dir_synced = 1;
	pthread_mutex_unlock(&sh->mu);
	point("after syncfs%s%s", "", "");
	return r;
}

int __wrap_unlinkat(int dirfd, const char *path, int flags)
{
	if (active() && !(flags & AT_REMOVEDIR))
		name_goes(dirfd, path);
	return __real_unlinkat(dirfd, path, flags);
}

int __wrap_openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	struct stat st;
	int existed = 1, fd;
	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (active() && (flags & O_CREAT))
		existed = fstatat(dirfd, path, &st, 0) == 0;
	fd = __real_openat64(dirfd, path, flags, mode);
	if (fd >= 0 && !existed && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		slot_new(st.st_ino);
	return fd;
}

int pl_disk_start(const char *dir, pl_point_fn fn)
{
	if (!sh) {
		pthread_mutexattr_t a;
		sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (sh == MAP_FAILED) {
			sh = NULL;
			return -ENOMEM;
		}
		pthread_mutexattr_init(&a);
		pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
		pthread_mutex_init(&sh->mu, &a);
		pthread_mutexattr_destroy(&a);
		out_buf = malloc(IMG_MAX);
		if (!out_buf)
			return -ENOMEM;
	}
	if (strlen(dir) >= sizeof(store_dir))
		return -ENAMETOOLONG;
	strcpy(store_dir, dir);
	for (int i = 0; i < SLOTS; i++)
		sh->slot[i].used = 0;
	sh->ndur = 0;
	sh->dir_synced = 0;
	sh->overflow = 0;
	main_pid = getpid();
	point_fn = fn;
	recording = 1;
	return 0;
}

void pl_disk_stop(void)
{
	recording = 0;
	point_fn = NULL;
}

void pl_disk_pause(int paused)
{
	static int was;
	if (paused) {
		was = recording;
		recording = 0;
	} else {
		recording = was;
	}
}

int pl_disk_overflow(void)
{
	return sh && sh->overflow;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static double unit(uint64_t *s)
{
	return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

/* Make @out if missing and remove what it holds but the @n names of @keep
 * (kept files are overwritten in place: cheaper than new ones). */
static int prune_dir(const char *out, const struct dent *keep, int n)
{
	DIR *d;
	struct dirent *e;
	if (mkdir(out, 0700) < 0 && errno != EEXIST)
		return -errno;
	d = opendir(out);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		int i = 0;
		while (i < n && strcmp(keep[i].name, e->d_name))
			i++;
		if (i == n && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			__real_unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
	return 0;
}

/* The content of slot @s now: from its current name, else "last". */
static int64_t content_now(int s, const struct dent *now, int nnow,
			   uint8_t *buf)
{
	struct slot *sl = &sh->slot[s];
	for (int i = 0; sl->ino && i < nnow; i++) {
		if (now[i].slot != s)
			continue;
		char p[4200];
		snprintf(p, sizeof(p), "%s/%s", store_dir, now[i].name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
		int64_t n = read_all(fd, buf);
		close(fd);
		return n;
	}
	memcpy(buf, sl->last, sl->last_size);
	return (int64_t)sl->last_size;
}

/* What the files hold now, read once per crash point. */
static struct dent snap_now[NAMES];
static int snap_n;
static uint8_t *snap_buf[SLOTS];
static int64_t snap_size[SLOTS];

void pl_disk_snapshot(void)
{
	snap_n = list_now(snap_now);
	for (int s = 0; s < SLOTS; s++) {
		snap_size[s] = -1;
		if (!sh->slot[s].used)
			continue;
		if (!snap_buf[s] && !(snap_buf[s] = malloc(IMG_MAX)))
			abort();
		snap_size[s] = content_now(s, snap_now, snap_n, snap_buf[s]);
	}
}

static int write_file(const char *path, const uint8_t *p, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	uint64_t at = 0;
	int r = 0;
	if (fd < 0)
		return -errno;
	while (!r && at < size) {
		ssize_t n = pwrite(fd, p + at, size - at, (off_t)at);
		if (n <= 0)
			r = n < 0 ? -errno : -EIO;
		at += n > 0 ? (uint64_t)n : 0;
	}
	if (!r && ftruncate(fd, (off_t)size) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* Bytes [@at, @at + @n) of @src (@size long, zeros past its end) to @dst. */
static void copy_block(uint8_t *dst, const uint8_t *src, uint64_t size,
		       uint64_t at, size_t n)
{
	size_t have = at >= size ? 0 : size - at < n ? (size_t)(size - at) : n;
	memcpy(dst, src + at, have);
	memset(dst + have, 0, n - have);
}

static int block_differs(const uint8_t *a, uint64_t as, const uint8_t *b,
			 uint64_t bs, uint64_t at)
{
	uint8_t x[BLK], y[BLK];
	if (at + BLK <= as && at + BLK <= bs)
		return memcmp(a + at, b + at, BLK) != 0;
	if (at >= as && at >= bs)
		return 0;
	copy_block(x, a, as, at, BLK);
	copy_block(y, b, bs, at, BLK);
	return memcmp(x, y, BLK) != 0;
}

int pl_disk_state(const char *out, const struct pl_choice *c, int write,
		  uint64_t *hash, int *journal_torn)
{
	struct dent view[NAMES];
	int nview, r;
	uint64_t rs = c->seed | 1;
	XXH3_state_t *h = XXH3_createState();

	if (!h)
		return -ENOMEM;
	XXH3_64bits_reset(h);
	*journal_torn = 0;
	if (c->dir_current) {
		memcpy(view, snap_now, sizeof(view));
		nview = snap_n;
	} else {
		memcpy(view, sh->dur, sizeof(view));
		nview = sh->ndur;
	}
	r = write ? prune_dir(out, view, nview) : 0;
	for (int i = 0; !r && i < nview; i++) {
		struct slot *sl = &sh->slot[view[i].slot];
		int is_pool = !strcmp(view[i].name, "pool");
		int is_journal = !strncmp(view[i].name, "journal", 7);
		enum pl_mode m = is_pool ? c->pool
			       : is_journal ? c->journal : PL_ALL;
		int64_t cn = snap_size[view[i].slot];
		uint64_t csize = cn > 0 ? (uint64_t)cn : 0;
		const uint8_t *cur_buf = snap_buf[view[i].slot];
		int cur_size = c->cur_size < 0 ? (int)(rnd(&rs) & 1)
					       : c->cur_size;
		if (m == PL_DURABLE)
			cur_size = 0;
		else if (m == PL_ALL)
			cur_size = 1;
		uint64_t size = cur_size ? csize : sl->size;
		uint64_t cut = size ? rnd(&rs) % (size + 1) : 0;
		int torn = 0;
		for (uint64_t at = 0; at < size; at += BLK) {
			int take = 0;
			size_t n = size - at < BLK ? (size_t)(size - at) : BLK;
			if (block_differs(sl->data, sl->size, cur_buf, csize,
					  at)) {
				take = m == PL_ALL ||
				       (m == PL_PREFIX && at < cut) ||
				       (m == PL_RANDOM && unit(&rs) < c->p);
			}
			if (take)
				copy_block(out_buf + at, cur_buf, csize, at, n);
			else
				copy_block(out_buf + at, sl->data, sl->size, at, n);
		}
		/* the state differs from the synced image: unsynced bytes */
		torn = size != sl->size || (size && memcmp(out_buf, sl->data,
							   size));
		if (is_journal && torn)
			*journal_torn = 1;
		char p[4200];
		snprintf(p, sizeof(p), "%s/%s", out, view[i].name);
		r = write ? write_file(p, out_buf, size) : 0;
		XXH3_64bits_update(h, view[i].name, strlen(view[i].name) + 1);
		XXH3_64bits_update(h, &size, sizeof(size));
		XXH3_64bits_update(h, out_buf, size);
	}
	*hash = XXH3_64bits_digest(h);
	XXH3_freeState(h);
	if (!r && !c->dir_current && !sh->dir_synced)
		return 1;
	return r;
}
