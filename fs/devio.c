/*
 * devio.c - how the workers read requests from /dev/fuse: a short poll
 * before they sleep.
 *
 * A worker asleep in read() must be woken for each request, and the CPU it
 * sleeps on with it; on a VM whose idle vCPUs halt at once that wake-up
 * goes through the host and costs more than a small request itself
 * (tools/BENCH-NOTES.md, F3).  So a worker that is done with a request
 * first polls the device for up to spin_us before it blocks: a request
 * that comes within that window is taken without a wake-up.
 *
 * Replies, and the INIT request, are shown to uring.c first: a reply to
 * a request that came through an io_uring goes back through it.
 *
 * Bounds: one worker polls at a time, and only while no other worker is
 * busy with a request, so the daemon keeps at most one CPU waiting and
 * never while it works on another (the caller needs a CPU too).  An idle
 * daemon polls once, for spin_us after its last request, then sleeps.  Not
 * at all on a single CPU (the caller could not run meanwhile) or with
 * spin_us=0.
 *
 * State: two atomics shared by the workers (busy: workers between a
 * request read and their next read; polling: one worker polls) and a
 * thread-specific flag, whose destructor uncounts a worker that libfuse
 * ends while it is counted busy.  Set up once before the loop starts.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tcfs.h"

static struct fuse_session *session;
static uint64_t spin_ns;
static atomic_uint busy;
static atomic_bool polling;
static pthread_key_t working; /* non-NULL: this thread is counted busy */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void done_working(void)
{
	if (pthread_getspecific(working)) {
		pthread_setspecific(working, NULL);
		atomic_fetch_sub(&busy, 1);
	}
}

static void worker_ended(void *flag)
{
	(void)flag; /* the value is already NULL for the thread here */
	atomic_fetch_sub(&busy, 1);
}

/* Poll @fd until a request is there, another worker gets busy, spin_ns
 * has passed or the session is told to end.  -1 (errno EINTR...) if
 * poll() failed or the session ends: the loop must see that, not sleep on
 * in read().  A SIGTERM handled while we spin lands between two polls and
 * interrupts none of them: only the flag tells (single-threaded loop). */
static int spin(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t end = now_ns() + spin_ns;
	int r;
	do
		r = poll(&p, 1, 0);
	while (r == 0 && !fuse_session_exited(session) &&
	       atomic_load_explicit(&busy, memory_order_relaxed) == 0 &&
	       now_ns() < end);
	if (r == 0 && fuse_session_exited(session)) {
		errno = EINTR;
		return -1;
	}
	return r < 0 ? -1 : 0;
}

static ssize_t dev_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	done_working();
	/* with the rings on, the device brings only FORGETs and INTERRUPTs */
	if (spin_ns && !tcfs_uring_on() && atomic_load(&busy) == 0 &&
	    !atomic_exchange(&polling, true)) {
		int r = spin(fd);
		atomic_store(&polling, false);
		if (r < 0)
			return -1;
	}
	ssize_t n = read(fd, buf, len);
	if (n > 0) {
		tcfs_uring_saw(buf, (size_t)n);
		atomic_fetch_add(&busy, 1);
		pthread_setspecific(working, &working);
	}
	return n;
}

static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	ssize_t res;
	if (tcfs_uring_reply(fd, iov, count, &res))
		return res;
	return writev(fd, iov, count);
}

int tcfs_devio_setup(struct fuse_session *se, unsigned spin_us)
{
	static const struct fuse_custom_io io = {
		.read = dev_read,
		.writev = dev_writev,
	};
	int err = pthread_key_create(&working, worker_ended);
	if (err)
		return -err;
	session = se;
	spin_ns = sysconf(_SC_NPROCESSORS_ONLN) < 2 ? 0 : (uint64_t)spin_us * 1000;
	/* the fd fuse_session_mount opened, now read through @io */
	return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}
