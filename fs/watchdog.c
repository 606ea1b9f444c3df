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
	unsigned maj, conn;
	pid_t parent = getpid();
	char path[64] = "";
	pid_t pid;

	if (tcfs_mount_dev(mountpoint, &maj, &conn) == 0)
		snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort",
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
