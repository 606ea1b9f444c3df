/*
 * uring.c - FUSE over io_uring (-o uring): a request is served by a thread
 * on the CPU that made it.
 *
 * Why: through /dev/fuse a request wakes a worker on another CPU and the
 * reply wakes the caller back; on a VM whose idle vCPUs halt, each such
 * wake-up goes through the host and costs more than a small request
 * itself (tools/BENCH-NOTES.md, F3).  The kernel's FUSE over io_uring
 * (Linux 6.14+, when root has set /sys/module/fuse/parameters/enable_uring)
 * queues each request on the queue of the caller's CPU.  Here a thread
 * pinned to that CPU takes it from its own io_uring, and commits the
 * reply in the same io_uring_enter() that waits for the next request:
 * caller and server take turns on one CPU.
 *
 * libfuse 3.14 has no such transport, so this file adds one beside its
 * session, through the custom I/O of devio.c, which shows us each request
 * read from /dev/fuse (tcfs_uring_saw) and each reply (tcfs_uring_reply):
 *
 *   INIT     When -o uring asks for it and the kernel's INIT offers
 *            FUSE_OVER_IO_URING, the rings, buffers and threads are made
 *            first; only if all of them are there does the INIT reply
 *            carry the flag.  (The kernel holds every request from the
 *            reply until each CPU's queue has an entry; a queue that
 *            never got one would hang the mount.)  After the reply is
 *            written, the threads register their entries.
 *   threads  TCFS_URING_PER_CPU (one) per CPU, pinned to it, at idle
 *            priority (see ring_thread), with its own io_uring (128-byte
 *            SQEs) and one ring entry: a header (fuse_in_header, the
 *            op's first argument, the entry's commit id and payload
 *            size) and a payload buffer of the largest request or
 *            reply.  One thread a CPU serves that CPU's requests in the
 *            order they were made (tcfs.h says why that matters).
 *   request  The header and first argument are copied right before the
 *            payload, so that the request lies as /dev/fuse would give it
 *            (header, argument, the rest), and fuse_session_process_buf()
 *            runs it: the handlers in ops.c are the same for both paths.
 *   reply    The handler's reply comes through devio's writev on the
 *            same thread.  The kernel reads it from the same payload
 *            buffer that holds the request's names or data, which a
 *            handler may still use after replying: a reply to a request
 *            with a payload waits in a side buffer until the handler has
 *            returned.  A reply from another thread (none of ours does
 *            that) is taken the same way and its owner waits for it.
 *   commit   COMMIT_AND_FETCH with the request's commit id, submitted by
 *            the wait for the next one.
 *   /dev/fuse FORGETs, INTERRUPTs and notifications still go through the
 *            device, as does everything before the rings are ready; the
 *            workers of the session loop serve them.
 *   stop     tcfs_uring_stop: an eventfd polled by every ring; at unmount
 *            the kernel ends the entries with ENOTCONN.  A thread that
 *            meets any other error ends the session (SIGTERM to the
 *            daemon), since its queue would no longer be served.
 */
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include "tcfs.h"

/* ---- the kernel's ABI (include/uapi/linux/fuse.h) ------------------------- */

struct k_in_header {
	uint32_t len, opcode;
	uint64_t unique, nodeid;
	uint32_t uid, gid, pid;
	uint16_t total_extlen, padding;
};
struct k_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};
struct k_init_in { /* the first fields */
	uint32_t major, minor, max_readahead, flags, flags2;
};
struct k_init_out {
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2;
};
#define K_FUSE_INIT 26
#define K_INIT_EXT (1u << 30)
#define K_MAX_PAGES (1u << 22)
#define K_OVER_IO_URING2 (1u << 9)  /* FUSE_OVER_IO_URING, 1 << 41, in flags2 */
#define K_DEFAULT_MAX_PAGES 32
#define K_MIN_READ_BUFFER 8192

struct k_ring_header {
	char in_out[128];  /* k_in_header, then k_out_header */
	char op_in[128];   /* the op's first argument */
	struct {
		uint64_t flags, commit_id;
		uint32_t payload_sz, padding;
		uint64_t reserved;
	} ent;
};
struct k_ring_cmd { /* in the SQE's command area */
	uint64_t flags, commit_id;
	uint16_t qid;
	uint8_t padding[6];
};
#define K_CMD_REGISTER 1
#define K_CMD_COMMIT_AND_FETCH 2

_Static_assert(sizeof(struct k_in_header) == 40, "fuse_in_header");
_Static_assert(sizeof(struct k_out_header) == 16, "fuse_out_header");
_Static_assert(sizeof(struct k_ring_header) == 288, "fuse_uring_req_header");

/* ---- state ----------------------------------------------------------------- */

#define TAG_CMD 1
#define TAG_STOP 2
#define SLACK 4096 /* room before the payload for the header and argument */

struct rthread {
	struct io_uring ring;
	bool ring_made;
	pthread_t tid;
	bool started;
	unsigned qid;
	struct k_ring_header *hdr; /* its own page */
	char *area;                /* SLACK, then the payload */
	char *payload;
	struct iovec iov[2];
	uint32_t last_cmd;         /* to submit again after EINTR */
	/* the request being served: written by this thread under U.lock,
	 * read by it and by other repliers (under U.lock) */
	_Atomic uint64_t unique;
	bool has_payload;          /* the request came with one */
	atomic_bool replied;
	/* a reply kept until the handler returns */
	char *side;
	size_t side_len, side_cap;
	struct k_out_header out;
};

static struct {
	struct fuse_session *se;
	bool want;                    /* -o uring */
	int fd;                       /* /dev/fuse */
	_Atomic uint64_t init_unique; /* the INIT to answer with the flag */
	atomic_bool seen_init;
	atomic_bool on;               /* the INIT reply carried the flag */
	char why[160];                /* not on: why (stats, log) */
	size_t payload_sz;
	unsigned nq, n;
	struct rthread *t;
	int evfd;
	pthread_mutex_t lock;         /* replies from other threads */
	pthread_cond_t cond;
	atomic_bool go, stop;
	atomic_bool refused;          /* a REGISTER failed: /dev/fuse only */
	_Atomic uint64_t requests;    /* served from the rings */
	_Atomic uint64_t *by_queue;   /* the same per queue (CPU) */
	atomic_uint registered;
} U = { .fd = -1, .evfd = -1, .lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER };

static _Thread_local struct rthread *self;

/* The kernel's queues: one per possible CPU (ids 0..n-1). */
static unsigned possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	unsigned hi = 0, lo;
	char sep;
	int n = f ? fscanf(f, "%u%c%u", &lo, &sep, &hi) : 0;
	if (f)
		fclose(f);
	if (n == 3 && sep == '-')
		return hi + 1;
	if (n >= 1)
		return lo + 1;
	int c = get_nprocs_conf();
	return c > 0 ? (unsigned)c : 1;
}

static void why_not(const char *fmt, const char *detail)
{
	snprintf(U.why, sizeof(U.why), fmt, detail);
}

/* ---- commands ------------------------------------------------------------ */

static void prep_cmd(struct rthread *t, uint32_t op, uint64_t commit_id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
	if (!sqe) /* two in flight at most (the command, the poll) of 4 */
		abort();
	/* 128 bytes with IORING_SETUP_SQE128: the command area follows */
	memset(sqe, 0, 2 * sizeof(*sqe));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = U.fd;
	sqe->cmd_op = op;
	if (op == K_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)t->iov;
		sqe->len = 2;
	}
	struct k_ring_cmd *c = (struct k_ring_cmd *)sqe->cmd;
	c->qid = (uint16_t)t->qid;
	c->commit_id = commit_id;
	io_uring_sqe_set_data64(sqe, TAG_CMD);
	t->last_cmd = op;
}

/* The reply in @iov (its header first) for @t's request: into the
 * payload now, or into the side buffer until the handler returns. */
static void take_reply(struct rthread *t, const struct iovec *iov, int count,
		       bool later)
{
	size_t len = 0;
	for (int i = 1; i < count; i++)
		len += iov[i].iov_len;
	memcpy(&t->out, iov[0].iov_base, sizeof(t->out));
	if (len > U.payload_sz) {
		tcfs_log(LOG_ERR, "uring: a reply of %zu bytes does not fit "
			 "the %zu-byte buffer; answering EIO", len,
			 U.payload_sz);
		t->out.error = -EIO;
		len = 0;
	}
	char *dst = t->payload;
	if (later && len) {
		if (len > t->side_cap) {
			char *p = realloc(t->side, len);
			if (!p) {
				t->out.error = -ENOMEM;
				len = 0;
			} else {
				t->side = p;
				t->side_cap = len;
			}
		}
		dst = t->side;
	}
	size_t off = 0;
	for (int i = 1; i < count && len; i++) {
		memcpy(dst + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	t->out.len = (uint32_t)(sizeof(t->out) + len);
	t->side_len = later ? len : 0;
	t->hdr->ent.payload_sz = (uint32_t)len;
	atomic_store_explicit(&t->replied, true, memory_order_release);
}

/* Serve the request now in @t's entry; the commit is left prepared. */
static void serve_one(struct rthread *t)
{
	struct k_ring_header *h = t->hdr;
	struct k_in_header in;
	memcpy(&in, h->in_out, sizeof(in));
	uint64_t commit_id = h->ent.commit_id;
	size_t psz = h->ent.payload_sz;
	size_t op = in.len - sizeof(in) - psz;
	if (in.len < sizeof(in) + psz || psz > U.payload_sz ||
	    op > sizeof(h->op_in)) {
		tcfs_log(LOG_ERR, "uring: request %" PRIu64 " (opcode %u) has "
			 "sizes that do not add up (%u = 40 + ? + %zu); "
			 "answering EIO", in.unique, in.opcode, in.len, psz);
		struct k_out_header out = { sizeof(out), -EIO, in.unique };
		memcpy(h->in_out, &out, sizeof(out));
		h->ent.payload_sz = 0;
		prep_cmd(t, K_CMD_COMMIT_AND_FETCH, commit_id);
		return;
	}
	/* the request as /dev/fuse would give it, ending at the payload's end */
	char *start = t->payload - op - sizeof(in);
	memcpy(start, &in, sizeof(in));
	memcpy(start + sizeof(in), h->op_in, op);
	struct fuse_buf buf = { .mem = start, .size = in.len };

	pthread_mutex_lock(&U.lock);
	atomic_store_explicit(&t->unique, in.unique, memory_order_relaxed);
	t->has_payload = psz > 0;
	atomic_store_explicit(&t->replied, false, memory_order_relaxed);
	pthread_mutex_unlock(&U.lock);
	atomic_fetch_add_explicit(&U.requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&U.by_queue[t->qid], 1, memory_order_relaxed);
	fuse_session_process_buf(U.se, &buf);

	pthread_mutex_lock(&U.lock);
	while (!atomic_load(&t->replied) && !atomic_load(&U.stop))
		pthread_cond_wait(&U.cond, &U.lock);
	atomic_store_explicit(&t->unique, 0, memory_order_relaxed);
	bool replied = atomic_load(&t->replied);
	pthread_mutex_unlock(&U.lock);
	if (!replied) { /* stopping: the unmount ends it */
		t->out = (struct k_out_header){ sizeof(t->out), -EIO, in.unique };
		t->hdr->ent.payload_sz = 0;
	}
	if (t->side_len)
		memcpy(t->payload, t->side, t->side_len);
	t->side_len = 0;
	memcpy(h->in_out, &t->out, sizeof(t->out));
	prep_cmd(t, K_CMD_COMMIT_AND_FETCH, commit_id);
}

/* A ring thread's fatal error: its queue is no longer served, so the
 * daemon stops (unmounts) rather than leave callers on that CPU hanging. */
static void *fail(struct rthread *t, const char *what, int err)
{
	tcfs_log(LOG_ERR, "uring: queue %u: %s: %s; stopping the daemon",
		 t->qid, what, strerror(-err));
	fuse_session_exit(U.se);
	kill(getpid(), SIGTERM);
	return NULL;
}

/* The kernel refused an entry: it then serves the connection through
 * /dev/fuse (it gives up the rings at a failed REGISTER), and so do we. */
static void *refused(struct rthread *t, int err)
{
	if (!atomic_exchange(&U.refused, true)) {
		pthread_mutex_lock(&U.lock);
		why_not("the kernel refused a ring entry (%s): served through "
			"/dev/fuse", strerror(-err));
		pthread_mutex_unlock(&U.lock);
		tcfs_log(LOG_WARNING, "uring: queue %u: %s", t->qid, U.why);
	}
	atomic_store(&U.on, false);
	return NULL;
}

static void *ring_thread(void *arg)
{
	struct rthread *t = arg;
	self = t;
	cpu_set_t cpus;
	CPU_ZERO(&cpus);
	CPU_SET(t->qid, &cpus);
	/* an offline CPU's queue still needs its entry; it runs anywhere */
	(void)sched_setaffinity(0, sizeof(cpus), &cpus);
	/* Idle priority: when this thread wakes the caller with its reply,
	 * the scheduler counts this CPU as idle and keeps the caller here,
	 * rather than moving it to the other CPU, which a halted vCPU makes
	 * slow.  Open of a cached page, 400 files: 19 us (55 at normal
	 * priority, 31 through /dev/fuse).  With every CPU busy (4 spinning
	 * processes on 2 CPUs) opens still took 17 us at the median and
	 * 4.7-8.6 ms at most, as through /dev/fuse (4.7 ms):
	 * tools/BENCH-NOTES.md. */
	struct sched_param idle = { 0 };
	(void)sched_setscheduler(0, SCHED_IDLE, &idle);

	pthread_mutex_lock(&U.lock);
	while (!atomic_load(&U.go) && !atomic_load(&U.stop))
		pthread_cond_wait(&U.cond, &U.lock);
	pthread_mutex_unlock(&U.lock);
	if (atomic_load(&U.stop))
		return NULL;

	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
	io_uring_prep_poll_add(sqe, U.evfd, POLLIN);
	io_uring_sqe_set_data64(sqe, TAG_STOP);
	prep_cmd(t, K_CMD_REGISTER, 0);
	int r;
	do
		r = io_uring_submit(&t->ring);
	while (r == -EINTR || r == -EAGAIN);
	if (r < 0)
		return fail(t, "registering its entry", r);
	atomic_fetch_add(&U.registered, 1);
	for (;;) {
		r = io_uring_submit_and_wait(&t->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			return fail(t, "io_uring_enter", r);
		struct io_uring_cqe *cqe;
		while (io_uring_peek_cqe(&t->ring, &cqe) == 0) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;
			io_uring_cqe_seen(&t->ring, cqe);
			if (tag == TAG_STOP)
				return NULL;
			if (res == -EINTR || res == -EAGAIN) {
				prep_cmd(t, t->last_cmd,
					 t->last_cmd == K_CMD_REGISTER
						 ? 0 : t->hdr->ent.commit_id);
				continue;
			}
			if (res == -ENOTCONN || res == -ECONNABORTED ||
			    res == -ECANCELED)
				return NULL; /* unmounted */
			if (res < 0 && t->last_cmd == K_CMD_REGISTER)
				return refused(t, res);
			if (res < 0)
				return fail(t, "committing a reply", res);
			serve_one(t);
		}
	}
}

/* ---- making and ending the threads ----------------------------------------- */

static void free_all(void)
{
	for (unsigned i = 0; U.t && i < U.n; i++) {
		struct rthread *t = &U.t[i];
		if (t->ring_made)
			io_uring_queue_exit(&t->ring);
		if (t->hdr)
			munmap(t->hdr, 4096);
		if (t->area)
			munmap(t->area, SLACK + U.payload_sz);
		free(t->side);
	}
	free(U.t);
	U.t = NULL;
	free(U.by_queue);
	U.by_queue = NULL;
	U.n = 0;
	if (U.evfd >= 0)
		close(U.evfd);
	U.evfd = -1;
}

static void join_all(void)
{
	pthread_mutex_lock(&U.lock);
	atomic_store(&U.stop, true);
	pthread_cond_broadcast(&U.cond);
	pthread_mutex_unlock(&U.lock);
	if (U.evfd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(U.evfd, &one, sizeof(one));
		(void)w;
	}
	for (unsigned i = 0; U.t && i < U.n; i++)
		if (U.t[i].started)
			pthread_join(U.t[i].tid, NULL);
}

/* Rings, buffers and (waiting) threads for every queue; false with
 * U.why set and nothing left over if any of it cannot be made. */
static bool make_all(void)
{
	U.nq = possible_cpus();
	U.n = U.nq * TCFS_URING_PER_CPU;
	U.t = calloc(U.n, sizeof(*U.t));
	U.by_queue = calloc(U.nq, sizeof(*U.by_queue));
	U.evfd = eventfd(0, EFD_CLOEXEC);
	if (!U.t || !U.by_queue || U.evfd < 0) {
		why_not("no memory or eventfd: %s", strerror(errno));
		free_all();
		return false;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	bool ok = true;
	for (unsigned i = 0; ok && i < U.n; i++) {
		struct rthread *t = &U.t[i];
		t->qid = i / TCFS_URING_PER_CPU;
		int r = io_uring_queue_init(4, &t->ring, IORING_SETUP_SQE128);
		if (r < 0) {
			why_not("io_uring_setup: %s", strerror(-r));
			ok = false;
			break;
		}
		t->ring_made = true;
		t->hdr = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		t->area = mmap(NULL, SLACK + U.payload_sz,
			       PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (t->hdr == MAP_FAILED || t->area == MAP_FAILED) {
			if (t->hdr == MAP_FAILED)
				t->hdr = NULL;
			if (t->area == MAP_FAILED)
				t->area = NULL;
			why_not("no memory for the ring buffers: %s",
				strerror(ENOMEM));
			ok = false;
			break;
		}
		/* a checkpoint's fork() needs none of it */
		madvise(t->hdr, 4096, MADV_DONTFORK);
		madvise(t->area, SLACK + U.payload_sz, MADV_DONTFORK);
		t->payload = t->area + SLACK;
		t->iov[0] = (struct iovec){ t->hdr, sizeof(*t->hdr) };
		t->iov[1] = (struct iovec){ t->payload, U.payload_sz };
		r = pthread_create(&t->tid, NULL, ring_thread, t);
		if (r) {
			why_not("cannot start its threads: %s", strerror(r));
			ok = false;
			break;
		}
		t->started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ok) {
		join_all();
		free_all();
		atomic_store(&U.stop, false);
	}
	return ok;
}

/* ---- devio.c's hooks ------------------------------------------------------- */

void tcfs_uring_saw(const void *buf, size_t len)
{
	if (!U.want || atomic_load_explicit(&U.seen_init, memory_order_relaxed))
		return;
	struct k_in_header in;
	struct k_init_in init;
	if (len < sizeof(in) + sizeof(init))
		return;
	memcpy(&in, buf, sizeof(in));
	if (in.opcode != K_FUSE_INIT)
		return;
	memcpy(&init, (const char *)buf + sizeof(in), sizeof(init));
	atomic_store(&U.seen_init, true);
	if (!(init.flags & K_INIT_EXT) || !(init.flags2 & K_OVER_IO_URING2)) {
		why_not("%s", "the kernel does not offer it (as root: echo Y "
			"> /sys/module/fuse/parameters/enable_uring, then "
			"mount again; Linux 6.14+)");
		return;
	}
	atomic_store(&U.init_unique, in.unique);
}

/* The INIT reply: with the flag if everything for the rings is made. */
static ssize_t init_reply(int fd, struct iovec *iov, int count)
{
	struct k_out_header *out = iov[0].iov_base;
	struct k_init_out *o = count == 2 && iov[1].iov_len >= sizeof(*o)
				       ? iov[1].iov_base : NULL;
	atomic_store(&U.init_unique, 0);
	if (out->error || !o) {
		why_not("%s", "the INIT reply cannot carry it");
		return writev(fd, iov, count);
	}
	unsigned pages = o->flags & K_MAX_PAGES ? o->max_pages
						: K_DEFAULT_MAX_PAGES;
	size_t sz = (size_t)pages * 4096;
	if (sz < o->max_write)
		sz = o->max_write;
	if (sz < K_MIN_READ_BUFFER)
		sz = K_MIN_READ_BUFFER;
	U.payload_sz = (sz + 4095) & ~(size_t)4095;
	U.fd = fd;
	if (!make_all())
		return writev(fd, iov, count);
	o->flags |= K_INIT_EXT;
	o->flags2 |= K_OVER_IO_URING2;
	ssize_t r = writev(fd, iov, count);
	if (r >= 0) { /* before the threads register: a refusal clears it */
		atomic_store(&U.on, true);
		tcfs_log(LOG_INFO, "requests come over io_uring: %u queues, "
			 "%u thread(s) each, %zu KiB buffers", U.nq,
			 TCFS_URING_PER_CPU, U.payload_sz >> 10);
	}
	pthread_mutex_lock(&U.lock);
	if (r < 0)
		atomic_store(&U.stop, true);
	else
		atomic_store(&U.go, true);
	pthread_cond_broadcast(&U.cond);
	pthread_mutex_unlock(&U.lock);
	return r;
}

bool tcfs_uring_reply(int fd, struct iovec *iov, int count, ssize_t *res)
{
	if (!U.want || count < 1 || iov[0].iov_len < sizeof(struct k_out_header))
		return false;
	struct k_out_header out;
	memcpy(&out, iov[0].iov_base, sizeof(out));
	if (out.unique == 0) /* a notification: the device */
		return false;
	struct rthread *t = self;
	if (t && atomic_load_explicit(&t->unique, memory_order_relaxed) ==
			 out.unique &&
	    !atomic_load_explicit(&t->replied, memory_order_relaxed)) {
		*res = (ssize_t)out.len;
		take_reply(t, iov, count, t->has_payload);
		return true;
	}
	if (atomic_load(&U.on)) { /* a ring request's reply from elsewhere */
		bool found = false;
		pthread_mutex_lock(&U.lock);
		for (unsigned i = 0; i < U.n && !found; i++) {
			t = &U.t[i];
			if (atomic_load(&t->unique) == out.unique &&
			    !atomic_load(&t->replied)) {
				take_reply(t, iov, count, true);
				found = true;
			}
		}
		if (found)
			pthread_cond_broadcast(&U.cond);
		pthread_mutex_unlock(&U.lock);
		if (found) {
			*res = (ssize_t)out.len;
			return true;
		}
	}
	uint64_t init = atomic_load(&U.init_unique);
	if (init && out.unique == init) {
		*res = init_reply(fd, iov, count);
		return true;
	}
	return false;
}

/* ---- the daemon's side ------------------------------------------------------- */

void tcfs_uring_want(struct fuse_session *se)
{
	U.se = se;
	U.want = true;
	why_not("%s", "not yet mounted");
}

bool tcfs_uring_on(void)
{
	return atomic_load(&U.on);
}

size_t tcfs_uring_stats(char *buf, size_t size)
{
	int n;
	if (!U.want)
		return 0;
	if (atomic_load(&U.on)) {
		n = snprintf(buf, size, "\"on\": true, \"queues\": %u, "
			     "\"threads\": %u, \"registered\": %u, "
			     "\"requests\": %" PRIu64 ", \"by_queue\": [", U.nq,
			     U.n, atomic_load(&U.registered),
			     (uint64_t)atomic_load(&U.requests));
		for (unsigned q = 0; q < U.nq && n > 0 && (size_t)n < size; q++)
			n += snprintf(buf + n, size - (size_t)n, "%s%" PRIu64,
				      q ? ", " : "",
				      (uint64_t)atomic_load(&U.by_queue[q]));
		if (n > 0 && (size_t)n < size)
			n += snprintf(buf + n, size - (size_t)n, "]");
	} else
		n = snprintf(buf, size, "\"on\": false, \"why\": \"%s\"",
			     U.why);
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

void tcfs_uring_stop(void)
{
	if (!U.t)
		return;
	atomic_store(&U.on, false);
	join_all();
	free_all();
}
