/*
 * owner.c - who has a store open, and where stores are mounted.
 *
 * The lock file: whoever holds the store's flock writes "PID\n" into it at
 * open, and a daemon "PID MOUNTPOINT\n" once it serves (tc_store_set_owner:
 * after daemonizing, so the pid is the serving one).  flock() itself names
 * no holder, and /proc/locks names the process that took the lock, which
 * for a daemon is the parent that exited at daemonizing.  The text is
 * read only after an open found the lock taken, so it is the holder's.
 *
 * Mounts are read from /proc/self/mountinfo: the topmost mount at a path,
 * with its type and source (a tcachefs mount's source is its store).
 *
 * Threads: any; nothing here touches a tc_store but tc_store_set_owner,
 * which writes the lock file alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static int write_owner(int fd, const char *mountpoint)
{
	char buf[PATH_MAX + 32];
	int n = snprintf(buf, sizeof(buf), "%ld%s%s\n", (long)getpid(),
			 mountpoint ? " " : "", mountpoint ? mountpoint : "");
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		return -errno;
	return 0;
}

void owner_opened(struct tc_store *s)
{
	/* a store on a read-only medium can still be read: best effort */
	write_owner(s->lockfd, NULL);
}

int tc_store_set_owner(tc_store *s, const char *mountpoint)
{
	return write_owner(s->lockfd, mountpoint);
}

/* Undo mountinfo's octal escapes (\040 for a space...) in place. */
static void unescape_octal(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

/* The last mount in mountinfo (the topmost: mounts stack) whose mount
 * point is @path, or, with @by_source, whose source is @path and type
 * fuse.tcachefs. */
static int find_mount(const char *path, int by_source, struct tc_mount *m)
{
	char line[2 * PATH_MAX + 512];
	int found = -ENOENT;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - TYPE SOURCE */
		struct tc_mount t;
		const char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", t.point) != 1 ||
		    sscanf(dash + 3, "%63s %4095s", t.type, t.source) != 2)
			continue;
		unescape_octal(t.point);
		unescape_octal(t.source);
		if (by_source ? strcmp(t.source, path) ||
					strcmp(t.type, "fuse.tcachefs")
			      : strcmp(t.point, path))
			continue;
		*m = t;
		found = 0;
	}
	fclose(f);
	return found;
}

int tc_mount_at(const char *path, struct tc_mount *m)
{
	return find_mount(path, 0, m);
}

int tc_mount_of(const char *store, struct tc_mount *m)
{
	char real[PATH_MAX];
	if (!realpath(store, real))
		return -errno;
	return find_mount(real, 1, m);
}

int tc_store_owner(const char *dir, struct tc_owner *o)
{
	char path[PATH_MAX], buf[PATH_MAX + 32], *sp, *end;
	struct tc_mount m;
	ssize_t n;
	int fd;

	memset(o, 0, sizeof(*o));
	if (snprintf(path, sizeof(path), "%s/" LOCK_FILE, dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT; /* taken by a version that wrote nothing */
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	errno = 0;
	long pid = strtol(buf, &end, 10);
	if (errno || pid <= 0 || pid > INT_MAX || (*end && *end != ' '))
		return -ENOENT;
	if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		return -ENOENT; /* gone: its lock went with it */
	o->pid = (pid_t)pid;
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, o->program, sizeof(o->program) - 1);
		close(fd);
		o->program[n > 0 ? n : 0] = 0;
		o->program[strcspn(o->program, "\n")] = 0;
	}
	if ((sp = strchr(buf, ' ')) != NULL) {
		snprintf(o->mountpoint, sizeof(o->mountpoint), "%s", sp + 1);
		/* still serving there, or unmounted and closing the store */
		o->exiting = !(tc_mount_at(o->mountpoint, &m) == 0 &&
			       !strcmp(m.type, "fuse.tcachefs") &&
			       realpath(dir, path) && !strcmp(m.source, path));
	}
	return 0;
}

int tc_store_await(const char *dir, unsigned ms)
{
	char path[PATH_MAX];
	struct timespec nap = { 0, 20 * 1000 * 1000 };
	if (snprintf(path, sizeof(path), "%s/" LOCK_FILE, dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (unsigned waited = 0;; waited += 20) {
		if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
			close(fd); /* and with it the lock: free for the caller */
			return 0;
		}
		if (errno != EWOULDBLOCK || waited >= ms) {
			int r = errno == EWOULDBLOCK ? -EBUSY : -errno;
			close(fd);
			return r;
		}
		nanosleep(&nap, NULL);
	}
}

int tc_store_busy(const char *dir, unsigned ms,
		  void (*say)(void *arg, const char *msg), void *arg,
		  char *why, size_t n)
{
	struct tc_owner o;
	char msg[PATH_MAX + 256];
	int r = tc_store_owner(dir, &o);

	if (r == -ENOENT && tc_store_await(dir, 0) == 0)
		return 0; /* its holder has just closed it */
	if (r) {
		snprintf(why, n, "store is in use by another process (a "
			 "tcachefs daemon or the tcache tool)");
		return -EBUSY;
	}
	const char *prog = o.program[0] ? o.program : "a process";
	if (o.exiting) {
		snprintf(msg, sizeof(msg), "waiting up to %u s for %s (pid %d), "
			 "unmounted from %s, to close the store", ms / 1000,
			 prog, (int)o.pid, o.mountpoint);
		if (say)
			say(arg, msg);
		if ((r = tc_store_await(dir, ms)) == 0)
			return 0;
		snprintf(why, n, "store is in use by %s (pid %d), still "
			 "closing it %u s after it was unmounted from %s", prog,
			 (int)o.pid, ms / 1000, o.mountpoint);
		return r;
	}
	if (o.mountpoint[0])
		snprintf(why, n, "store is in use by %s (pid %d), mounted at %s "
			 "(unmount it first: fusermount3 -u %s)", prog,
			 (int)o.pid, o.mountpoint, o.mountpoint);
	else
		snprintf(why, n, "store is in use by %s (pid %d)", prog,
			 (int)o.pid);
	return -EBUSY;
}
