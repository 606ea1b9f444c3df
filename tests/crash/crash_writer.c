/*
 * crash_writer.c - the writers and the checker of the crash harness
 * (tests/crash/run-crash drives them; model.h says what is logged).
 *
 *   crash_writer run   --mnt MNT --logdir DIR --state FILE --round R
 *                      [--writers W] [--entries E] [--evict]
 *                      [--max-size BYTES] [--seconds S] [--seed S]
 *     W threads write into their own entries of the mount until the
 *     daemon goes away (or S seconds pass): files of known contents
 *     (content.h; O_TRUNC rewrites and rsync-style temp + rename),
 *     renames over existing targets and across entries, unlinks,
 *     meta.json writes, mkdir/rmdir.  Each op is logged to DIR/wT.log
 *     (one write(2) per line) before it starts and when it returns.
 *     All paths are relative to a descriptor of the mount's root taken at
 *     start, so nothing can land in the directory under a lazily
 *     unmounted mount point.  DIR/ready appears when the threads start.
 *
 *   crash_writer check --mnt MNT --logdir DIR --state FILE
 *                      [--writers W] [--entries E] [--evict]
 *                      [--out-state FILE]
 *     Replays FILE (the contents verified last time) plus DIR's logs
 *     into the states the mount may show (an uncertain last op per
 *     writer: done or not done, never half), reads every file and every
 *     meta.json of the mount and checks that each writer's entries match
 *     one of them exactly: every tensor whose close() returned 0 and was
 *     not replaced since is there, byte for byte; no file holds bytes that
 *     no write wrote (torn or corrupt); no unlinked or renamed-away name
 *     is back; meta.json tells the right nbytes, xxh3, dtype, shape and
 *     attrs.  With --evict, whole entries may be gone (evicted), never
 *     part of one.  Prints one "check:" line of counts; exit 0 if clean.
 *     Writes the verified contents to --out-state.  --accept (for soak
 *     runs that go on after a failure): write --out-state even after a
 *     failed check, from what the mount holds, removing files whose bytes
 *     are no version at all.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <xxhash.h>

#include "content.h"
#include "model.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

static struct {
	const char *mnt, *logdir, *state, *out_state;
	int nw, nent, evict, accept;
	uint64_t round, seed, max_size;
	double seconds;
	int rootfd;
} C = { .nw = 4, .nent = 3, .max_size = 256 << 10, .seconds = 60 };

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_root(void)
{
	struct statfs sf;
	int fd = open(C.mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "crash_writer: %s: %s\n", C.mnt,
			strerror(errno));
		return -1;
	}
	if (fstatfs(fd, &sf) != 0 || sf.f_type != FUSE_SUPER_MAGIC) {
		fprintf(stderr, "crash_writer: %s is not a FUSE mount\n",
			C.mnt);
		close(fd);
		return -1;
	}
	return fd;
}

static int daemon_gone(int err)
{
	return err == ENOTCONN || err == ECONNABORTED;
}

/*
 * Did @err come from the daemon's death?  A killed daemon's requests end
 * with ENOTCONN or ECONNABORTED, but one caught half-copied to or from the
 * dying process ends with EIO or ENODEV: for any errno the model does not
 * expect, ask the mount once more (an open of its root goes to the
 * daemon): if that fails with ENOTCONN/ECONNABORTED, the daemon is gone.
 */
static int gone(int err)
{
	if (daemon_gone(err))
		return 1;
	if (err == ENOENT || err == ENOSPC)
		return 0;
	int fd = openat(C.rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return daemon_gone(errno);
}

/* ==== run: the writers =================================================== */

struct writer {
	int id, logfd;
	struct rng r;
	struct model m;
	uint64_t opn;
	int64_t seq;
	int stop;
	uint64_t ops, fails, evicted_seen;
	unsigned char *buf;
};

static void wlog(struct writer *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void wlog(struct writer *w, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line)
		abort();
	for (int off = 0; off < n;) {
		ssize_t r = write(w->logfd, line + off, (size_t)(n - off));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			perror("crash_writer: log");
			abort();
		}
		off += (int)r;
	}
}

static void wlog_op(struct writer *w, const struct op *op)
{
	char line[512];
	op_format(op, line, sizeof line);
	wlog(w, "%s", line);
}

static void epath(char *buf, size_t size, int w, int e)
{
	snprintf(buf, size, "w%de%d", w, e);
}

static void spath(char *buf, size_t size, int w, int e, int s)
{
	snprintf(buf, size, "w%de%d/%s", w, e, slot_name(s));
}

static uint64_t rand_size(struct writer *w)
{
	uint64_t x = rng_below(&w->r, 10), lo, hi;
	if (x < 5) {
		lo = CONTENT_HDR;
		hi = 4096;
	} else if (x < 8) {
		lo = 4096;
		hi = 65536;
	} else {
		lo = 65536;
		hi = C.max_size;
	}
	if (hi <= lo)
		hi = lo + 1;
	uint64_t n = lo + rng_below(&w->r, hi - lo);
	if (rng_below(&w->r, 2))
		n &= ~7ull; /* often a multiple of 8: more dtypes fit */
	return n < CONTENT_HDR ? CONTENT_HDR : n;
}

#define CHUNK_MAX (128u << 10)

/* The syscalls of @op; 0 or an errno.  Sets *partial when a write failed
 * (and logs it) before closing. */
static int do_syscalls(struct writer *w, const struct op *op, int *partial)
{
	char p[256], p2[256];
	int fd, err = 0;

	switch (op->kind) {
	case OP_W:
		spath(p, sizeof p, w->id, op->e, op->s);
		fd = openat(C.rootfd, p, O_WRONLY | O_CREAT | O_TRUNC |
			    O_CLOEXEC, 0644);
		if (fd < 0)
			return errno;
		for (uint64_t off = 0; off < op->len;) {
			size_t n = 1024 + (size_t)rng_below(&w->r, CHUNK_MAX);
			if (n > op->len - off)
				n = (size_t)(op->len - off);
			content_fill(op->seed, op->len, off, w->buf, n);
			ssize_t r = write(fd, w->buf, n);
			if (r < 0) {
				err = errno;
				*partial = 1;
				wlog(w, "P %" PRIu64 " %d%s\n", op->n, err,
				     gone(err) ? " gone" : "");
				break;
			}
			off += (uint64_t)r;
		}
		if (close(fd) != 0 && !err)
			err = errno;
		return err;
	case OP_R:
		spath(p, sizeof p, w->id, op->e, op->s);
		spath(p2, sizeof p2, w->id, op->e2, op->s2);
		return renameat(C.rootfd, p, C.rootfd, p2) ? errno : 0;
	case OP_U:
		spath(p, sizeof p, w->id, op->e, op->s);
		return unlinkat(C.rootfd, p, 0) ? errno : 0;
	case OP_M: {
		char json[512];
		int n;
		if (op->grp)
			n = snprintf(json, sizeof json,
				     "{\"__tcache__\": {\"tensors\": {");
		else
			n = snprintf(json, sizeof json,
				     "{\"__tcache__\": {\"attrs\": {\"w\": %d, \"seq\": %lld},"
				     " \"pinned\": false, \"tensors\": {",
				     w->id, (long long)op->seq);
		if (op->s >= 0) {
			const char *nm = slot_name(op->s);
			if (slot_in_group(op->s))
				nm += 2;
			n += snprintf(json + n, sizeof json - (size_t)n,
				      "\"%s\": {\"dtype\": \"%s\", \"shape\": [",
				      nm, dt_name[op->dt]);
			for (int i = 0; i < op->nd; i++)
				n += snprintf(json + n, sizeof json - (size_t)n,
					      "%s%" PRIu64, i ? ", " : "",
					      op->d[i]);
			n += snprintf(json + n, sizeof json - (size_t)n, "]}");
		}
		n += snprintf(json + n, sizeof json - (size_t)n, "}}}\n");
		epath(p, sizeof p, w->id, op->e);
		strcat(p, op->grp ? "/g/meta.json" : "/meta.json");
		/* O_CREAT, as any writer of a file does: for the process
		 * that made the directory, its meta.json is absent until
		 * written (see the README) */
		fd = openat(C.rootfd, p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			    0644);
		if (fd < 0)
			return errno;
		for (int off = 0; off < n;) {
			ssize_t r = write(fd, json + off, (size_t)(n - off));
			if (r < 0) {
				err = errno;
				break;
			}
			off += (int)r;
		}
		if (close(fd) != 0 && !err)
			err = errno;
		return err;
	}
	case OP_K:
		epath(p, sizeof p, w->id, op->e);
		return mkdirat(C.rootfd, p, 0755) ? errno : 0;
	case OP_G:
		epath(p, sizeof p, w->id, op->e);
		strcat(p, "/g");
		return mkdirat(C.rootfd, p, 0755) ? errno : 0;
	case OP_D:
		epath(p, sizeof p, w->id, op->e);
		strcat(p, "/g");
		return unlinkat(C.rootfd, p, AT_REMOVEDIR) ? errno : 0;
	case OP_Z:
		epath(p, sizeof p, w->id, op->e);
		return unlinkat(C.rootfd, p, AT_REMOVEDIR) ? errno : 0;
	}
	return EINVAL;
}

/* After ENOENT: log which of our entries are gone (evicted). */
static int scan_gone(struct writer *w)
{
	int gone = 0;
	for (int e = 0; e < C.nent; e++) {
		char p[64];
		if (!w->m.e[e].present)
			continue;
		epath(p, sizeof p, w->id, e);
		/* open asks the daemon; a stat could be answered from a
		 * dentry whose eviction notice is still on its way */
		int fd = openat(C.rootfd, p, O_RDONLY | O_DIRECTORY |
				O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			continue;
		}
		if (errno != ENOENT) {
			w->stop = 1;
			return -1;
		}
		wlog(w, "X %d\n", e);
		model_drop(&w->m, e);
		gone++;
		w->evicted_seen++;
	}
	return gone;
}

/* Do one op: log, syscalls, log, model.  0 done, 1 failed (allowed),
 * -1 stop.  *@partial as for do_syscalls. */
static int do_op(struct writer *w, struct op *op, int *partial)
{
	op->n = ++w->opn;
	*partial = 0;
	wlog_op(w, op);
	int fuzzy_u = op->kind == OP_U && w->m.e[op->e].f[op->s].fuzzy;
	int err = do_syscalls(w, op, partial);
	w->ops++;
	if (!err) {
		wlog(w, "E %" PRIu64 " 0 0\n", op->n);
		model_apply_ok(&w->m, op);
		return 0;
	}
	int g = gone(err);
	wlog(w, "E %" PRIu64 " 1 %d%s\n", op->n, err, g ? " gone" : "");
	w->fails++;
	if (g) {
		w->stop = 1;
		return -1;
	}
	if (model_apply(&w->m, op, OUT_FAIL, err, *partial, C.evict) != 0) {
		wlog(w, "Q op %" PRIu64 " %c failed: %s\n", op->n, op->kind,
		     strerror(err));
		w->stop = 1;
		return -1;
	}
	if (err == ENOENT) {
		int ngone = scan_gone(w);
		if (ngone < 0)
			return -1;
		if (ngone == 0 && !fuzzy_u) {
			wlog(w, "Q op %" PRIu64 " %c: ENOENT, but no entry "
			     "is gone\n", op->n, op->kind);
			w->stop = 1;
			return -1;
		}
	}
	return 1;
}

static int present_slot(struct writer *w, int e, int lo, int hi, int incl_tmp)
{
	int c[NSLOT], n = 0;
	for (int s = lo; s <= hi; s++)
		if (w->m.e[e].f[s].present && !w->m.e[e].f[s].fuzzy)
			c[n++] = s;
	if (incl_tmp && w->m.e[e].f[SLOT_TMP].present &&
	    !w->m.e[e].f[SLOT_TMP].fuzzy)
		c[n++] = SLOT_TMP;
	return n ? c[rng_below(&w->r, (uint64_t)n)] : -1;
}

static uint64_t make_seed(struct writer *w)
{
	return (C.round << 32) | ((uint64_t)w->id << 24) |
	       ((w->opn + 1) & 0xffffff);
}

static int write_op(struct writer *w, int e, int s)
{
	struct op op = { .kind = OP_W, .e = e, .s = s };
	int partial;
	op.seed = make_seed(w);
	op.len = rand_size(w);
	int r = do_op(w, &op, &partial);
	if (r == 1 && partial) {
		/* a prefix may be committed: remove it */
		struct op u = { .kind = OP_U, .e = e, .s = s };
		r = do_op(w, &u, &partial);
	}
	return r;
}

static int meta_op(struct writer *w, int e)
{
	struct op op = { .kind = OP_M, .e = e, .s = -1 };
	int partial;
	op.grp = rng_below(&w->r, 4) == 0;
	int s = op.grp ? present_slot(w, e, 6, 8, 0)
		       : present_slot(w, e, 0, 5, 1);
	if (s >= 0 && rng_below(&w->r, 10) < 8)
		op.s = s;
	if (op.grp && op.s < 0)
		return write_op(w, e, 6 + (int)rng_below(&w->r, 3));
	op.seq = op.grp ? -1 : (int64_t)(C.round * 1000000 + (uint64_t)++w->seq);
	if (op.s >= 0) {
		uint64_t size = w->m.e[e].f[op.s].size;
		int c[NDT], n = 0;
		for (int d = 0; d < NDT; d++)
			if (size % dt_size[d] == 0)
				c[n++] = d;
		op.dt = c[rng_below(&w->r, (uint64_t)n)];
		uint64_t el = size / dt_size[op.dt];
		if (el && el % 2 == 0 && rng_below(&w->r, 2)) {
			op.nd = 2;
			op.d[0] = 2;
			op.d[1] = el / 2;
		} else {
			op.nd = 1;
			op.d[0] = el;
		}
	}
	return do_op(w, &op, &partial);
}

static int writer_step(struct writer *w)
{
	int partial, r;
	int e = (int)rng_below(&w->r, (uint64_t)C.nent);
	struct est *E = &w->m.e[e];

	for (int s = 0; s < NSLOT; s++)
		if (E->present && E->f[s].fuzzy) {
			struct op u = { .kind = OP_U, .e = e, .s = s };
			return do_op(w, &u, &partial);
		}
	if (!E->present) {
		struct op k = { .kind = OP_K, .e = e };
		return do_op(w, &k, &partial);
	}
	if (!E->g) {
		struct op g = { .kind = OP_G, .e = e };
		return do_op(w, &g, &partial);
	}

	uint64_t x = rng_below(&w->r, 100);
	if (x < 25)
		return write_op(w, e, (int)rng_below(&w->r, 9));
	if (x < 37) {
		/* rsync: temp file, then rename over the target */
		r = write_op(w, e, SLOT_TMP);
		if (r != 0 || !E->f[SLOT_TMP].present)
			return r;
		struct op rn = { .kind = OP_R, .e = e, .s = SLOT_TMP, .e2 = e,
				 .s2 = (int)rng_below(&w->r, 9) };
		return do_op(w, &rn, &partial);
	}
	if (x < 57) {
		int s = present_slot(w, e, 0, 8, 1);
		if (s < 0)
			return write_op(w, e, (int)rng_below(&w->r, 9));
		int e2 = (int)rng_below(&w->r, (uint64_t)C.nent);
		if (!w->m.e[e2].present || !w->m.e[e2].g)
			e2 = e;
		int s2 = (int)rng_below(&w->r, NSLOT);
		if (e2 == e && s2 == s)
			s2 = (s2 + 1) % NSLOT;
		if (w->m.e[e2].f[s2].fuzzy)
			return 0;
		struct op rn = { .kind = OP_R, .e = e, .s = s, .e2 = e2,
				 .s2 = s2 };
		return do_op(w, &rn, &partial);
	}
	if (x < 67) {
		int s = present_slot(w, e, 0, 8, 1);
		if (s < 0)
			return write_op(w, e, (int)rng_below(&w->r, 9));
		struct op u = { .kind = OP_U, .e = e, .s = s };
		return do_op(w, &u, &partial);
	}
	if (x < 94)
		return meta_op(w, e);

	/* empty the entry, remove it, make it again */
	for (int s = 0; s < NSLOT; s++)
		if (E->f[s].present) {
			struct op u = { .kind = OP_U, .e = e, .s = s };
			if ((r = do_op(w, &u, &partial)) != 0)
				return r;
		}
	const int seq[] = { OP_D, OP_Z, OP_K, OP_G };
	for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
		struct op o = { .kind = seq[i], .e = e };
		if ((r = do_op(w, &o, &partial)) != 0)
			return r;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	double end = now_s() + C.seconds;
	while (!w->stop && now_s() < end)
		if (writer_step(w) < 0)
			break;
	return NULL;
}

static int cmd_run(void)
{
	static struct model ms[MAXW];
	struct writer *ws = calloc((size_t)C.nw, sizeof(*ws));
	pthread_t th[MAXW];
	char p[4096];
	int rc = 0;

	if (!ws)
		return 2;
	if ((C.rootfd = open_root()) < 0)
		return 2;
	if (state_load(C.state, ms, C.nw) != 0)
		return 2;
	for (int i = 0; i < C.nw; i++) {
		struct writer *w = &ws[i];
		w->id = i;
		w->m = ms[i];
		rng_seed(&w->r, C.seed ^ (C.round << 20) ^ (uint64_t)i);
		w->buf = malloc(CHUNK_MAX + 1024);
		snprintf(p, sizeof p, "%s/w%d.log", C.logdir, i);
		w->logfd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				0644);
		if (w->logfd < 0 || !w->buf) {
			fprintf(stderr, "crash_writer: %s: %s\n", p,
				strerror(errno));
			return 2;
		}
	}
	snprintf(p, sizeof p, "%s/ready", C.logdir);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return 2;
	close(fd);
	for (int i = 0; i < C.nw; i++)
		if (pthread_create(&th[i], NULL, writer_main, &ws[i]) != 0)
			return 2;
	uint64_t ops = 0, fails = 0, ev = 0;
	for (int i = 0; i < C.nw; i++) {
		pthread_join(th[i], NULL);
		ops += ws[i].ops;
		fails += ws[i].fails;
		ev += ws[i].evicted_seen;
		close(ws[i].logfd);
		free(ws[i].buf);
	}
	printf("run: writers=%d ops=%" PRIu64 " failed=%" PRIu64
	       " evictions_seen=%" PRIu64 "\n", C.nw, ops, fails, ev);
	free(ws);
	close(C.rootfd);
	return rc;
}

/* ==== check ============================================================= */

struct ofile {
	int present, err;
	unsigned char *buf;
	uint64_t size, xxh;
};

struct oent {
	int present, g, err;
	struct ofile f[NSLOT];
	cJSON *meta, *gmeta;
	int meta_err, gmeta_err;
	char strays[512];
};

static struct oent obs[MAXW][MAXE];

static struct {
	uint64_t tensors, lost, torn, corrupt, stray, meta, evicted, uncertain,
		 unexpected, entries;
	uint64_t inflight[128]; /* uncertain ops by kind */
} S;

static int problems; /* of the world being tried */
static int verbose;  /* print problems (for the chosen world) */

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
	problems++;
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("PROBLEM: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static int read_all(int dirfd, const char *name, unsigned char **bufp,
		    uint64_t *sizep)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	size_t cap = 65536, len = 0;
	unsigned char *buf = malloc(cap);
	int err = 0;
	for (;;) {
		if (!buf) {
			err = ENOMEM;
			break;
		}
		if (len == cap) {
			unsigned char *nb = realloc(buf, cap * 2);
			if (!nb) {
				err = ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			break;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (err) {
		free(buf);
		return err;
	}
	*bufp = buf;
	*sizep = len;
	return 0;
}

static void observe_meta(int dirfd, cJSON **out, int *err)
{
	unsigned char *buf = NULL;
	uint64_t size = 0;
	*err = read_all(dirfd, "meta.json", &buf, &size);
	if (*err)
		return;
	/* ours, under "__tcache__" */
	cJSON *doc = cJSON_ParseWithLength((const char *)buf, (size_t)size);
	*out = cJSON_DetachItemFromObjectCaseSensitive(doc, "__tcache__");
	cJSON_Delete(doc);
	if (!*out)
		*err = EBADMSG;
	free(buf);
}

static int slot_of(const char *name, int group)
{
	for (int s = 0; s < NSLOT; s++) {
		const char *n = slot_name(s);
		if (group != slot_in_group(s))
			continue;
		if (group)
			n += 2;
		if (!strcmp(n, name))
			return s;
	}
	return -1;
}

static void add_stray(struct oent *o, const char *dir, const char *name)
{
	size_t n = strlen(o->strays);
	snprintf(o->strays + n, sizeof o->strays - n, " %s%s", dir, name);
}

static void observe_dir(struct oent *o, int dfd, int group)
{
	DIR *d = fdopendir(dup(dfd));
	struct dirent *de;
	if (!d) {
		o->err = errno;
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!group && !strcmp(de->d_name, "g")) {
			o->g = 1;
			continue;
		}
		int s = slot_of(de->d_name, group);
		if (s < 0) {
			add_stray(o, group ? "g/" : "", de->d_name);
			continue;
		}
		struct ofile *f = &o->f[s];
		f->present = 1;
		f->err = read_all(dfd, de->d_name, &f->buf, &f->size);
		if (!f->err)
			f->xxh = XXH3_64bits(f->buf, (size_t)f->size);
	}
	closedir(d);
}

static int observe(void)
{
	DIR *d = opendir(C.mnt);
	struct dirent *de;
	int bad = 0;

	if (!d) {
		printf("PROBLEM: cannot list %s: %s\n", C.mnt, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		int w, e, n = 0;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (sscanf(de->d_name, "w%de%d%n", &w, &e, &n) != 2 ||
		    de->d_name[n] || w < 0 || w >= C.nw || e < 0 ||
		    e >= C.nent) {
			printf("PROBLEM: stray entry '%s' in the mount\n",
			       de->d_name);
			S.stray++;
			bad = 1;
		}
	}
	closedir(d);

	for (int w = 0; w < C.nw; w++)
		for (int e = 0; e < C.nent; e++) {
			struct oent *o = &obs[w][e];
			char p[64];
			epath(p, sizeof p, w, e);
			int fd = openat(C.rootfd, p, O_RDONLY | O_DIRECTORY |
					O_CLOEXEC);
			if (fd < 0) {
				if (errno != ENOENT)
					o->err = errno;
				continue;
			}
			o->present = 1;
			S.entries++;
			observe_dir(o, fd, 0);
			observe_meta(fd, &o->meta, &o->meta_err);
			if (o->g) {
				int gfd = openat(fd, "g", O_RDONLY |
						 O_DIRECTORY | O_CLOEXEC);
				if (gfd < 0) {
					o->err = errno;
				} else {
					observe_dir(o, gfd, 1);
					observe_meta(gfd, &o->gmeta,
						     &o->gmeta_err);
					close(gfd);
				}
			}
			close(fd);
		}
	return bad ? -1 : 0;
}

static int same_bytes(const struct ofile *o, uint64_t seed, uint64_t len,
		      uint64_t size)
{
	return !o->err && o->size == size && size <= len &&
	       content_diff(seed, len, 0, o->buf, (size_t)size) == size;
}

/* What is this file, for a message: "seed S len L" or torn/corrupt. */
static void describe(const struct ofile *o, char *buf, size_t n, int *torn)
{
	uint64_t s, l;
	*torn = 0;
	if (o->err) {
		snprintf(buf, n, "unreadable (%s)", strerror(o->err));
		return;
	}
	if (content_header(o->buf, (size_t)o->size, &s, &l) == 0 &&
	    content_diff(s, l, 0, o->buf, (size_t)o->size) == o->size) {
		if (o->size == l) {
			snprintf(buf, n, "a complete version (seed %#" PRIx64
				 ", %" PRIu64 " bytes)", s, l);
		} else {
			*torn = 1;
			snprintf(buf, n, "TORN: %" PRIu64 " of %" PRIu64
				 " bytes of seed %#" PRIx64, o->size, l, s);
		}
		return;
	}
	snprintf(buf, n, "CORRUPT: %" PRIu64 " bytes matching no version",
		 o->size);
}

/* Count the outcome of one slot (only for the chosen world). */
enum verdict { V_OK, V_LOST, V_TORN, V_CORRUPT, V_STRAY };

static enum verdict check_slot(int w, int e, int s, const struct fst *f,
			       const struct ofile *o)
{
	char d[160];
	int torn;
	if (!f->present && !f->fuzzy) {
		if (!o->present)
			return V_OK;
		describe(o, d, sizeof d, &torn);
		problem("w%de%d/%s: should be absent, holds %s", w, e,
			slot_name(s), d);
		return V_STRAY;
	}
	if (f->fuzzy) {
		if (!o->present)
			return V_OK;
		if (o->size <= f->len && same_bytes(o, f->seed, f->len, o->size))
			return V_OK;
		if (f->opresent && same_bytes(o, f->oseed, f->olen, f->osize))
			return V_OK;
		describe(o, d, sizeof d, &torn);
		problem("w%de%d/%s: after a write cut short, holds %s", w, e,
			slot_name(s), d);
		return torn ? V_TORN : V_CORRUPT;
	}
	if (!o->present) {
		problem("w%de%d/%s: LOST (seed %#" PRIx64 ", %" PRIu64
			" bytes) is missing", w, e, slot_name(s), f->seed,
			f->size);
		return V_LOST;
	}
	if (same_bytes(o, f->seed, f->len, f->size))
		return V_OK;
	describe(o, d, sizeof d, &torn);
	problem("w%de%d/%s: expected seed %#" PRIx64 " (%" PRIu64
		" bytes), holds %s", w, e, slot_name(s), f->seed, f->size, d);
	if (torn)
		return V_TORN;
	return strncmp(d, "CORRUPT", 7) && !o->err ? V_LOST : V_CORRUPT;
}

static void check_meta(int w, int e, const struct est *E,
		       const struct oent *o, int group)
{
	const cJSON *m = group ? o->gmeta : o->meta;
	int err = group ? o->gmeta_err : o->meta_err;
	const char *where = group ? "g/meta.json" : "meta.json";
	char hex[17];

	if (err) {
		problem("w%de%d/%s: %s", w, e, where, strerror(err));
		return;
	}
	if (!group) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "attrs");
		if (!cJSON_IsObject(a)) {
			problem("w%de%d/meta.json: no attrs", w, e);
		} else if (E->attrs < 0) {
			if (a->child)
				problem("w%de%d/meta.json: attrs should be "
					"empty", w, e);
		} else {
			const cJSON *aw = cJSON_GetObjectItemCaseSensitive(a, "w");
			const cJSON *as = cJSON_GetObjectItemCaseSensitive(a, "seq");
			if (cJSON_GetArraySize(a) != 2 || !cJSON_IsNumber(aw) ||
			    !cJSON_IsNumber(as) || aw->valuedouble != w ||
			    as->valuedouble != (double)E->attrs)
				problem("w%de%d/meta.json: attrs are not "
					"{w: %d, seq: %lld}", w, e, w,
					(long long)E->attrs);
		}
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "pinned");
		if (!cJSON_IsFalse(p))
			problem("w%de%d/meta.json: pinned is not false", w, e);
	}
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(m, "tensors");
	const cJSON *gs = cJSON_GetObjectItemCaseSensitive(m, "groups");
	if (!cJSON_IsObject(ts) || !cJSON_IsArray(gs)) {
		problem("w%de%d/%s: no tensors or groups", w, e, where);
		return;
	}
	int want_groups = !group && o->g;
	if (cJSON_GetArraySize(gs) != want_groups ||
	    (want_groups && (!cJSON_IsString(gs->child) ||
			     strcmp(gs->child->valuestring, "g"))))
		problem("w%de%d/%s: groups should be [%s]", w, e, where,
			want_groups ? "\"g\"" : "");
	int nfiles = 0;
	for (int s = 0; s < NSLOT; s++) {
		if (slot_in_group(s) != group || !o->f[s].present)
			continue;
		nfiles++;
		const char *nm = slot_name(s) + (group ? 2 : 0);
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(ts, nm);
		const cJSON *nb = cJSON_GetObjectItemCaseSensitive(t, "nbytes");
		const cJSON *xx = cJSON_GetObjectItemCaseSensitive(t, "xxh3");
		const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
		const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
		if (!t || !cJSON_IsNumber(nb) || !cJSON_IsString(xx) ||
		    !cJSON_IsString(dt) || !cJSON_IsArray(sh)) {
			problem("w%de%d/%s: tensor %s missing or incomplete",
				w, e, where, nm);
			continue;
		}
		if (o->f[s].err)
			continue;
		snprintf(hex, sizeof hex, "%016" PRIx64, o->f[s].xxh);
		if (nb->valuedouble != (double)o->f[s].size ||
		    strcmp(xx->valuestring, hex))
			problem("w%de%d/%s: %s has nbytes %.0f xxh3 %s, the "
				"file %" PRIu64 " bytes xxh3 %s", w, e, where,
				nm, nb->valuedouble, xx->valuestring,
				o->f[s].size, hex);
		const struct fst *f = &E->f[s];
		if (!f->present || f->fuzzy)
			continue;
		int ok = !strcmp(dt->valuestring, dt_name[f->dtype]) &&
			 cJSON_GetArraySize(sh) == f->ndim;
		for (int i = 0; ok && i < f->ndim; i++) {
			const cJSON *d = cJSON_GetArrayItem(sh, i);
			ok = cJSON_IsNumber(d) &&
			     d->valuedouble == (double)f->shape[i];
		}
		if (!ok) {
			char *shs = cJSON_PrintUnformatted(sh);
			problem("w%de%d/%s: %s should be %s %d-d [%" PRIu64
				", %" PRIu64 "], is %s %s", w, e, where, nm,
				dt_name[f->dtype], f->ndim, f->shape[0],
				f->shape[1], dt->valuestring,
				shs ? shs : "?");
			free(shs);
		}
	}
	if (cJSON_GetArraySize(ts) != nfiles)
		problem("w%de%d/%s: lists %d tensors, the directory has %d", w,
			e, where, cJSON_GetArraySize(ts), nfiles);
}

/* Compare writer @w's entries with world @m; counts into S if @count. */
static void compare(int w, const struct model *m, int count)
{
	for (int e = 0; e < C.nent; e++) {
		const struct est *E = &m->e[e];
		struct oent *o = &obs[w][e];
		if (o->err) {
			problem("w%de%d: %s", w, e, strerror(o->err));
			continue;
		}
		if (!o->present) {
			int files = 0;
			for (int s = 0; s < NSLOT; s++)
				files += E->f[s].present && !E->f[s].fuzzy;
			if (!E->present)
				continue;
			if (C.evict) {
				if (count)
					S.evicted += (uint64_t)files;
				continue;
			}
			problem("w%de%d: entry LOST (%d tensors)", w, e, files);
			if (count)
				S.lost += (uint64_t)files;
			continue;
		}
		if (!E->present) {
			problem("w%de%d: entry exists but should not", w, e);
			if (count)
				S.stray++;
			continue;
		}
		if (o->strays[0]) {
			problem("w%de%d: unexpected names:%s", w, e, o->strays);
			if (count)
				S.stray++;
		}
		if (o->g != E->g)
			problem("w%de%d: group g %s", w, e,
				E->g ? "missing" : "should not exist");
		for (int s = 0; s < NSLOT; s++) {
			enum verdict v = check_slot(w, e, s, &E->f[s],
						    &o->f[s]);
			if (!count)
				continue;
			switch (v) {
			case V_OK:
				S.tensors += o->f[s].present;
				break;
			case V_LOST: S.lost++; break;
			case V_TORN: S.torn++; break;
			case V_CORRUPT: S.corrupt++; break;
			case V_STRAY: S.stray++; break;
			}
		}
		int before = problems;
		check_meta(w, e, E, o, 0);
		if (o->g)
			check_meta(w, e, E, o, 1);
		if (count)
			S.meta += (uint64_t)(problems - before);
	}
}

/* Replay writer @w's log onto @m; fills the alternative worlds. */
static int replay(int w, const struct model *base, struct model *worlds,
		  int *nworlds)
{
	char p[4096], line[1024];
	struct model cur = *base;
	struct op pend;
	int have = 0, partial = 0, uncertain = 0, bad = 0;

	snprintf(p, sizeof p, "%s/w%d.log", C.logdir, w);
	FILE *fp = fopen(p, "r");
	if (fp) {
		while (fgets(line, sizeof line, fp)) {
			uint64_t n;
			int rc, err, e;
			if (uncertain && line[0] != 'X') {
				printf("PROBLEM: w%d log goes on after an "
				       "uncertain op: %s", w, line);
				bad = 1;
				break;
			}
			if (line[0] == 'B') {
				if (have || op_parse(line + 2, &pend) != 0) {
					printf("PROBLEM: w%d log: %s", w, line);
					bad = 1;
					break;
				}
				have = 1;
				partial = 0;
			} else if (line[0] == 'P') {
				/* a write failed: with ENOSPC the close
				 * after it may commit a prefix; if the
				 * daemon was gone, nothing more can be
				 * committed */
				partial = strstr(line, " gone") ? 2 : 1;
			} else if (sscanf(line, "E %" SCNu64 " %d %d", &n, &rc,
					  &err) == 3) {
				if (!have || n != pend.n) {
					printf("PROBLEM: w%d log: %s", w, line);
					bad = 1;
					break;
				}
				if (rc == 0) {
					model_apply_ok(&cur, &pend);
					have = 0;
				} else if (daemon_gone(err) ||
					   strstr(line, " gone")) {
					uncertain = 1;
				} else {
					if (model_apply(&cur, &pend, OUT_FAIL,
							err, partial == 1,
							C.evict) != 0) {
						printf("PROBLEM: w%d op %" PRIu64
						       " %c failed: %s\n", w, n,
						       pend.kind,
						       strerror(err));
						S.unexpected++;
						bad = 1;
					}
					have = 0;
				}
			} else if (sscanf(line, "X %d", &e) == 1 && e >= 0 &&
				   e < MAXE) {
				model_drop(&cur, e);
				if (!C.evict) {
					printf("PROBLEM: w%d saw entry %d "
					       "gone in a round without "
					       "eviction\n", w, e);
					bad = 1;
				}
			} else if (line[0] == 'Q') {
				printf("PROBLEM: w%d: %s", w, line + 2);
				S.unexpected++;
				bad = 1;
			} else {
				printf("PROBLEM: w%d log: %s", w, line);
				bad = 1;
			}
		}
		fclose(fp);
	}
	if (have)
		uncertain = 1;
	worlds[0] = cur;
	*nworlds = 1;
	if (uncertain) {
		S.uncertain++;
		S.inflight[pend.kind & 127]++;
		if (!partial) {
			worlds[1] = cur;
			model_apply_ok(&worlds[1], &pend);
			(*nworlds)++;
		}
		if (pend.kind == OP_W && partial == 1) {
			worlds[*nworlds] = cur;
			model_fuzz(&worlds[*nworlds], pend.e, pend.s,
				   pend.seed, pend.len);
			(*nworlds)++;
		}
	}
	return bad ? -1 : 0;
}

/* dtype/shape of tensor @nm in a parsed meta.json into @f (left as uint8
 * [size] when missing or odd). */
static void meta_type(const cJSON *meta, const char *nm, struct fst *f)
{
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(meta, "tensors");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(ts, nm);
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
	int d = -1, nd;

	f->dtype = 0;
	f->ndim = 1;
	f->shape[0] = f->size;
	f->shape[1] = 0;
	if (!cJSON_IsString(dt) || !cJSON_IsArray(sh))
		return;
	for (int i = 0; i < NDT; i++)
		if (!strcmp(dt->valuestring, dt_name[i]))
			d = i;
	nd = cJSON_GetArraySize(sh);
	if (d < 0 || nd < 1 || nd > 2)
		return;
	f->dtype = (uint8_t)d;
	f->ndim = (uint8_t)nd;
	for (int i = 0; i < nd; i++)
		f->shape[i] = (uint64_t)cJSON_GetArrayItem(sh, i)->valuedouble;
}

/*
 * What the mount holds for writer @w, as a model: the next round starts
 * from it.  After a passing check it is the matching state.  With
 * --accept (soak --keep-going, after a failed check has been reported) a
 * file whose bytes are no version at all is removed from the mount, so
 * that later rounds are checked against a known state again.
 */
static void observed_model(int w, const struct model *chosen,
			   struct model *out, int accept)
{
	memset(out, 0, sizeof(*out));
	for (int e = 0; e < MAXE; e++)
		out->e[e].attrs = -1;
	for (int e = 0; e < C.nent; e++) {
		const struct oent *o = &obs[w][e];
		struct est *E = &out->e[e];
		if (!o->present)
			continue;
		E->present = 1;
		E->g = (uint8_t)o->g;
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(o->meta, "attrs");
		const cJSON *as = cJSON_GetObjectItemCaseSensitive(a, "seq");
		if (cJSON_IsNumber(as))
			E->attrs = (int64_t)as->valuedouble;
		for (int s = 0; s < NSLOT; s++) {
			const struct ofile *of = &o->f[s];
			struct fst *f = &E->f[s];
			const struct fst *c = &chosen->e[e].f[s];
			uint64_t sd, l;
			if (!of->present)
				continue;
			if (!of->err && of->size < CONTENT_HDR && c->fuzzy) {
				/* a short prefix: no header to tell */
				sd = c->seed;
				l = c->len;
			} else if (of->err ||
				   content_header(of->buf, (size_t)of->size,
						  &sd, &l) != 0) {
				sd = l = 0;
			}
			if (of->err || (sd == 0 && l == 0) ||
			    of->size > l ||
			    content_diff(sd, l, 0, of->buf, (size_t)of->size)
				    != of->size) {
				if (accept) {
					char p[256];
					spath(p, sizeof p, w, e, s);
					if (unlinkat(C.rootfd, p, 0) != 0)
						printf("PROBLEM: cannot remove "
						       "%s: %s\n", p,
						       strerror(errno));
				}
				continue;
			}
			f->present = 1;
			f->seed = sd;
			f->len = l;
			f->size = of->size;
			meta_type(slot_in_group(s) ? o->gmeta : o->meta,
				  slot_name(s) + (slot_in_group(s) ? 2 : 0), f);
		}
	}
}

static int cmd_check(void)
{
	static struct model base[MAXW], worlds[MAXW][3], verified[MAXW];
	int nworlds[MAXW], bad = 0;

	if ((C.rootfd = open_root()) < 0)
		return 2;
	if (state_load(C.state, base, C.nw) != 0)
		return 2;
	for (int w = 0; w < C.nw; w++)
		if (replay(w, &base[w], worlds[w], &nworlds[w]) != 0)
			bad = 1;
	if (observe() != 0)
		bad = 1;
	for (int w = 0; w < C.nw; w++) {
		int best = 0, best_n = -1;
		for (int i = 0; i < nworlds[w]; i++) {
			problems = 0;
			verbose = 0;
			compare(w, &worlds[w][i], 0);
			if (best_n < 0 || problems < best_n) {
				best_n = problems;
				best = i;
			}
		}
		problems = 0;
		verbose = 1;
		compare(w, &worlds[w][best], 1);
		if (problems) {
			printf("PROBLEM: writer %d matches none of its %d "
			       "possible states (closest: %s)\n", w,
			       nworlds[w], best == 0 ? "last op not done"
						     : "last op done");
			bad = 1;
		}
		observed_model(w, &worlds[w][best], &verified[w], C.accept);
	}
	printf("check: entries=%" PRIu64 " tensors=%" PRIu64 " lost=%" PRIu64
	       " torn=%" PRIu64 " corrupt=%" PRIu64 " stray=%" PRIu64
	       " meta=%" PRIu64 " evicted=%" PRIu64 " uncertain=%" PRIu64
	       " unexpected=%" PRIu64, S.entries, S.tensors, S.lost,
	       S.torn, S.corrupt, S.stray, S.meta, S.evicted, S.uncertain,
	       S.unexpected);
	for (const char *k = "WRUMKGDZ"; *k; k++)
		printf(" inflight_%c=%" PRIu64, *k, S.inflight[(int)*k]);
	printf("\n");
	if ((!bad || C.accept) && C.out_state &&
	    state_save(C.out_state, verified, C.nw, C.nent) != 0) {
		fprintf(stderr, "crash_writer: %s: %s\n", C.out_state,
			strerror(errno));
		bad = 1;
	}
	for (int w = 0; w < C.nw; w++)
		for (int e = 0; e < C.nent; e++) {
			cJSON_Delete(obs[w][e].meta);
			cJSON_Delete(obs[w][e].gmeta);
			for (int s = 0; s < NSLOT; s++)
				free(obs[w][e].f[s].buf);
		}
	close(C.rootfd);
	return bad ? 1 : 0;
}

/* ==== main ============================================================== */

static void usage(void)
{
	fprintf(stderr,
		"usage: crash_writer run|check --mnt MNT --logdir DIR "
		"--state FILE [--round R] [--writers W] [--entries E]\n"
		"       [--evict] [--max-size BYTES] [--seconds S] [--seed S] "
		"[--out-state FILE] [--accept]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mnt", required_argument, NULL, 'm' },
		{ "logdir", required_argument, NULL, 'l' },
		{ "state", required_argument, NULL, 's' },
		{ "out-state", required_argument, NULL, 'o' },
		{ "round", required_argument, NULL, 'r' },
		{ "writers", required_argument, NULL, 'w' },
		{ "entries", required_argument, NULL, 'e' },
		{ "evict", no_argument, NULL, 'v' },
		{ "accept", no_argument, NULL, 'a' },
		{ "max-size", required_argument, NULL, 'x' },
		{ "seconds", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 'S' },
		{ 0 },
	};
	int c;

	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm': C.mnt = optarg; break;
		case 'l': C.logdir = optarg; break;
		case 's': C.state = optarg; break;
		case 'o': C.out_state = optarg; break;
		case 'r': C.round = strtoull(optarg, NULL, 0); break;
		case 'w': C.nw = atoi(optarg); break;
		case 'e': C.nent = atoi(optarg); break;
		case 'v': C.evict = 1; break;
		case 'a': C.accept = 1; break;
		case 'x': C.max_size = strtoull(optarg, NULL, 0); break;
		case 't': C.seconds = atof(optarg); break;
		case 'S': C.seed = strtoull(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (!C.mnt || !C.logdir || !C.state || C.nw < 1 || C.nw > MAXW ||
	    C.nent < 1 || C.nent > MAXE || C.max_size < CONTENT_HDR + 1)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "run"))
		return cmd_run();
	if (!strcmp(cmd, "check"))
		return cmd_check();
	usage();
}
