/*
 * notify.c - telling the kernel about entries the store evicted.
 *
 * The store calls tcfs_notifier_evicted() for each evicted entry while it
 * holds its own lock, from whatever request needed the room (a write, a
 * truncate).  We must not call the kernel there: a notice takes the kernel's
 * locks of the parent directory and of the victim, and the kernel may be
 * holding one of them while it waits for the very request we are serving.
 * So the callback only appends {parent, id, name} to a queue, and one
 * notifier thread pops notices and calls fuse_lowlevel_notify_delete()
 * (which drops the dentry and everything below it from the dcache).
 *
 *   store lock --> tcfs_notifier.lock      (the callback; lock order)
 *   notifier thread: lock, pop, unlock, notify kernel, lock, done++, unlock
 *
 * "Evicted entries vanish from ls and stat at once": a write or truncate
 * that evicted calls tcfs_notifier_settle() before it replies, which waits
 * (bounded) until the thread has sent every notice queued so far.  That is
 * safe for those requests: the kernel holds only the lock of the file being
 * written, and that file's entry is open, so never a victim.  The wait is
 * bounded anyway so that no unforeseen lock cycle can hang the mount.
 *
 * Memory: one malloc per notice, freed by the thread.
 *
 * The same thread, while it waits for notices, runs the tick it was given
 * once a second (the store's time-bound chores: tc_store_tick()), so that
 * they happen while the mount sits idle too.  It holds no lock of ours
 * then: the tick takes the store's lock, and the order above stays.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "tcfs.h"

struct notice {
	struct notice *next;
	uint64_t parent, id;
	size_t namelen;
	char name[];
};

struct tcfs_notifier {
	pthread_mutex_t lock;
	pthread_cond_t wake;   /* queue not empty or stopping */
	pthread_cond_t sent;   /* done advanced */
	struct notice *head, *tail; /* protected by lock */
	uint64_t queued, done;      /* protected by lock; counters */
	bool stop;                  /* protected by lock */
	bool running;               /* thread started (main thread only) */
	pthread_t thread;
	struct fuse_session *se;
	void (*tick)(void *);       /* once a second when idle, or NULL */
	void *tick_arg;
};

struct tcfs_notifier *tcfs_notifier_new(void)
{
	struct tcfs_notifier *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	pthread_mutex_init(&n->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->wake, &ca);
	pthread_cond_init(&n->sent, &ca);
	pthread_condattr_destroy(&ca);
	return n;
}

void tcfs_notifier_evicted(void *arg, uint64_t parent, uint64_t id,
			   const char *name)
{
	struct tcfs_notifier *n = arg;
	size_t len = strlen(name);
	struct notice *no = malloc(sizeof(*no) + len + 1);
	if (!no)
		return; /* the kernel forgets it after the entry timeout */
	no->next = NULL;
	no->parent = parent;
	no->id = id;
	no->namelen = len;
	memcpy(no->name, name, len + 1);

	pthread_mutex_lock(&n->lock);
	if (n->tail)
		n->tail->next = no;
	else
		n->head = no;
	n->tail = no;
	n->queued++;
	pthread_cond_signal(&n->wake);
	pthread_mutex_unlock(&n->lock);
}

/* *@t = @ms milliseconds from now, on the clock of our condition
 * variables (CLOCK_MONOTONIC) */
static void deadline_in(struct timespec *t, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static void *notifier_main(void *arg)
{
	struct tcfs_notifier *n = arg;
	struct timespec tick_at;
	deadline_in(&tick_at, 1000);

	pthread_mutex_lock(&n->lock);
	for (;;) {
		while (!n->head && !n->stop) {
			if (!n->tick) {
				pthread_cond_wait(&n->wake, &n->lock);
			} else if (pthread_cond_timedwait(&n->wake, &n->lock,
							  &tick_at) == ETIMEDOUT) {
				pthread_mutex_unlock(&n->lock);
				n->tick(n->tick_arg);
				pthread_mutex_lock(&n->lock);
				deadline_in(&tick_at, 1000);
			}
		}
		if (n->stop)
			break;
		struct notice *no = n->head;
		n->head = no->next;
		if (!n->head)
			n->tail = NULL;
		pthread_mutex_unlock(&n->lock);

		int err = fuse_lowlevel_notify_delete(n->se, no->parent, no->id,
						      no->name, no->namelen);
		if (err == -ENOSYS)
			err = fuse_lowlevel_notify_inval_entry(
				n->se, no->parent, no->name, no->namelen);
		/* -ENOENT: the kernel had nothing cached; -ENOTEMPTY: the
		 * dentry is invalidated all the same.  Both are fine. */
		if (err && err != -ENOENT && err != -ENOTEMPTY)
			tcfs_log(LOG_WARNING, "eviction notice for %s: %s",
				 no->name, strerror(-err));
		free(no);

		pthread_mutex_lock(&n->lock);
		n->done++;
		pthread_cond_broadcast(&n->sent);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int tcfs_notifier_start(struct tcfs_notifier *n, struct fuse_session *se,
			void (*tick)(void *), void *tick_arg)
{
	n->se = se;
	n->tick = tick;
	n->tick_arg = tick_arg;
	int err = pthread_create(&n->thread, NULL, notifier_main, n);
	if (err)
		return -err;
	n->running = true;
	return 0;
}

void tcfs_notifier_free(struct tcfs_notifier *n)
{
	if (!n)
		return;
	if (n->running) {
		pthread_mutex_lock(&n->lock);
		n->stop = true;
		pthread_cond_signal(&n->wake);
		pthread_mutex_unlock(&n->lock);
		pthread_join(n->thread, NULL);
	}
	while (n->head) {
		struct notice *no = n->head;
		n->head = no->next;
		free(no);
	}
	pthread_cond_destroy(&n->wake);
	pthread_cond_destroy(&n->sent);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

void tcfs_notifier_settle(struct tcfs_notifier *n, int timeout_ms)
{
	pthread_mutex_lock(&n->lock);
	if (n->done < n->queued && n->running) {
		uint64_t target = n->queued;
		struct timespec dl;
		deadline_in(&dl, timeout_ms);
		while (n->done < target && !n->stop) {
			if (pthread_cond_timedwait(&n->sent, &n->lock, &dl) ==
			    ETIMEDOUT) {
				tcfs_log(LOG_WARNING,
					 "eviction notices slow; not waiting");
				break;
			}
		}
	}
	pthread_mutex_unlock(&n->lock);
}
