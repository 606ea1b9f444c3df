/*
 * watchdog.c - a helper process that aborts the FUSE connection when the
 * daemon dies without unmounting.
 *
 * Why: after a SIGKILL, one daemon thread can be stuck in the kernel
 * sending an eviction notice (fuse_reverse_inval_entry waits for a
 * directory lock) while the lock's holder waits for the answer to a
 * request the dead daemon had already read.  The kernel answers such
 * requests only when the connection's /dev/fuse is released, which needs
 * every daemon thread gone: nothing ends, the zombie keeps the store's
 * lock, and a new mount says "in use".  Aborting the connection
 * (/sys/fs/fuse/connections/N/abort) fails the waiting requests and lets
 * everything finish.
 *
 * How: forked by the main thread after daemonizing and before any other
 * thread starts.  It closes every inherited descriptor (it must hold
 * neither /dev/fuse nor the store's lock), asks for SIGTERM when its parent
 * thread dies (PR_SET_PDEATHSIG: a SIGKILLed daemon's main thread exits
 * even while another thread is stuck), and then writes "1" to the
 * connection's abort file and exits.  It acts only if the daemon is stuck:
 * a daemon whose threads all exit within 2 s releases the connection by
 * itself and leaves the usual stale mount (ENOTCONN until unmounted).
 * Where the abort file is not to be had (fusectl not mounted, or not
 * showing this connection, as in some containers) it calls
 * umount2(MNT_FORCE) instead, which aborts the connection too (root only;
 * the mount stays, being busy with the very request that is stuck).  On a
 * clean shutdown the daemon ends it with SIGKILL before exiting, so an
 * orderly unmount is never aborted.
 * Cost: one sleeping process per mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tcfs.h"

/* Undo mountinfo's octal escapes (\040 for a space...) in place. */
static void unescape_octal(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

/* The minor device number of the FUSE mount at @mnt (an absolute,
 * resolved path: libfuse's command line parser makes it one), i.e. the
 * connection's number under /sys/fs/fuse/connections, from our mountinfo;
 * the last mount at that path wins.  -1 when not found.  No path lookup
 * on the mount itself: it is not served yet. */
static long conn_number(const char *mnt)
{
	char line[8192];
	long found = -1;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char point[PATH_MAX];
		/* ID PARENT MAJ:MIN ROOT POINT ... - FSTYPE ... */
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, point) != 3)
			continue;
		char *dash = strstr(line, " - ");
		unescape_octal(point);
		if (strcmp(point, mnt) || !dash || strncmp(dash + 3, "fuse", 4))
			continue;
		found = (long)min;
	}
	fclose(f);
	return found;
}

/* Has every thread of process @pid exited (the connection released)? */
static int all_threads_gone(pid_t pid)
{
	char path[64], line[256];
	int threads = -1, zombie = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "State:", 6))
			zombie = strchr(line, 'Z') != NULL;
		else if (!strncmp(line, "Threads:", 8))
			threads = atoi(line + 8);
	}
	fclose(f);
	return zombie && threads <= 1;
}

int tcfs_watchdog_start(const char *mountpoint, pid_t *out)
{
	long conn = conn_number(mountpoint);
	pid_t parent = getpid();
	char path[64] = "";
	pid_t pid;

	if (conn >= 0)
		snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%ld/abort",
			 conn);
	if ((!path[0] || access(path, W_OK) != 0) && geteuid() != 0)
		return -EACCES; /* no way to abort the connection */
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		*out = pid;
		return 0;
	}

	/* the watchdog */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	syscall(SYS_close_range, 3, ~0U, 0);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
		_exit(1);
	if (getppid() != parent) /* died before the prctl */
		kill(getpid(), SIGTERM);
	int sig;
	sigwait(&set, &sig);
	for (int i = 0; i < 40; i++) { /* 2 s for an ordinary death */
		if (all_threads_gone(parent))
			_exit(0);
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "tcachefs watchdog: the daemon died but cannot exit "
		"(a thread is stuck in the kernel); aborting the FUSE "
		"connection of %s\n", mountpoint);
	int fd = path[0] ? open(path, O_WRONLY | O_CLOEXEC) : -1;
	int done = fd >= 0 && write(fd, "1", 1) == 1;
	if (fd >= 0)
		close(fd);
	if (!done)
		umount2(mountpoint, MNT_FORCE); /* aborts; EBUSY is fine */
	_exit(0);
}

void tcfs_watchdog_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}
