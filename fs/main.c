/*
 * main.c - the tcachefs daemon's entry point.
 *
 *   tcachefs STORE MOUNTPOINT [-o capacity=SIZE] [-o verify=on|off]
 *            [-o spin_us=N] [-o journal_slack=SIZE] [-o uring=on|off]
 *            [-f] [-d] [-s]
 *            [FUSE options]
 *
 * main() is six steps, a function each, sharing a struct daemon; their
 * order is chosen so that every refusal is a one-line message on stderr
 * and exit status 1, with nothing mounted:
 *   1. parse_command_line: fuse_opt (our options are consumed, the rest
 *      goes to libfuse), then fuse_parse_cmdline;
 *   2. open_store: tc_store_open ("in use", bad format, no space...),
 *      then the notice queue and the page-cache table;
 *   3. mount_session: fuse_session_new, signal handlers (SIGINT, SIGTERM,
 *      SIGHUP end the loop), fuse_session_mount, the device read through
 *      devio.c, and with -o uring=on the io_uring transport asked for
 *      (uring.c: made at INIT, if the kernel offers it);
 *   4. daemonize: messages to -o log=FILE, or (unless -f/-d) to syslog
 *      or the stderr of the start (log.c), then fuse_daemonize;
 *   5. serve: fork the watchdog (watchdog.c), raise the mount's
 *      read-ahead, start the eviction notifier thread (it also ticks the
 *      store once a second) and the store's check of the tensors in
 *      memory (lib/verify.c), run the loop (multi-threaded unless -s);
 *   6. shut_down, after SIGTERM/SIGINT or fusermount3 -u and after a
 *      refusal at any step (one cleanup path: it undoes what was done):
 *      unmount, stop the notifier, close handles the kernel never
 *      released, tc_store_close.
 *
 * Threads: only the main thread until step 5; then the loop's workers
 * (ops.c), the ring threads (uring.c, from INIT on), the notifier (notify.c) and the store's verifier (until it is
 * done).  The store is opened before the fork in fuse_daemonize:
 * libtcache must keep its lock across fork() (see
 * fs/API-NOTES.md).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "remote.h"
#include "tcfs.h"

struct cli {
	char *store;
	char *mountpoint;         /* as given (libfuse parses it too) */
	char *capacity;
	char *verify;
	char *loglevel;
	char *log;
	char *spin_us;
	char *journal_slack;
	struct tcfs_remote_opts remote;
	unsigned max_threads; /* 0: not given (libfuse would say 10) */
	char *uring;          /* "on" or "off" */
};

static const struct fuse_opt cli_spec[] = {
	{ "capacity=%s", offsetof(struct cli, capacity), 0 },
	{ "verify=%s", offsetof(struct cli, verify), 0 },
	{ "loglevel=%s", offsetof(struct cli, loglevel), 0 },
	{ "log=%s", offsetof(struct cli, log), 0 },
	{ "spin_us=%s", offsetof(struct cli, spin_us), 0 },
	{ "journal_slack=%s", offsetof(struct cli, journal_slack), 0 },
	{ "uring=%s", offsetof(struct cli, uring), 0 },
	{ "remote=%s", offsetof(struct cli, remote.url), 0 },
	{ "remote_prefix=%s", offsetof(struct cli, remote.prefix), 0 },
	{ "remote_password_file=%s", offsetof(struct cli, remote.password_file), 0 },
	{ "remote_mode=%s", offsetof(struct cli, remote.mode), 0 },
	{ "remote_timeout=%s", offsetof(struct cli, remote.timeout), 0 },
	{ "remote_queue=%s", offsetof(struct cli, remote.queue), 0 },
	/* seen here and kept for fuse_parse_cmdline too */
	{ "max_threads=%u", offsetof(struct cli, max_threads), 0 },
	FUSE_OPT_KEY("max_threads=", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_END
};

/* The first non-option is STORE (consumed); the second, MOUNTPOINT, is
 * seen (check_mountpoint) and left for fuse_parse_cmdline. */
static int cli_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct cli *c = data;
	if (key == FUSE_OPT_KEY_NONOPT && !c->store) {
		c->store = strdup(arg);
		return c->store ? 0 : -1;
	}
	if (key == FUSE_OPT_KEY_NONOPT && !c->mountpoint &&
	    !(c->mountpoint = strdup(arg)))
		return -1;
	return 1;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s STORE MOUNTPOINT [options]\n"
		"\n"
		"Mount the tensor cache kept in directory STORE (created if\n"
		"missing) at MOUNTPOINT.  Unmount with: fusermount3 -u MOUNTPOINT\n"
		"\n"
		"tcachefs options:\n"
		"    -o capacity=SIZE       pool size, e.g. 512M, 20G, 1.5T\n"
		"                           (default, or 0: keep the store's;\n"
		"                           %llu MiB for a new store)\n"
		"    -o verify=on|off       check each tensor's xxh3 before its\n"
		"                           first read after mounting (default: on)\n"
		"    -o loglevel=LEVEL      err, warning, notice, info (default)\n"
		"                           or debug\n"
		"    -o log=FILE            append messages to FILE, each line\n"
		"                           with its time and pid (default: stderr\n"
		"                           with -f; else syslog, or the stderr\n"
		"                           tcachefs was started with, a terminal\n"
		"                           or file, when there is no syslog)\n"
		"    -o spin_us=N           after a request, a worker polls for the\n"
		"                           next one for up to N microseconds before\n"
		"                           it sleeps (0-%u, default %u; 0: never)\n"
		"    -o uring=on|off        serve requests over io_uring, each on\n"
		"                           the CPU that made it, when the kernel\n"
		"                           offers it (Linux 6.14+, and as root:\n"
		"                           echo Y > /sys/module/fuse/parameters/\n"
		"                           enable_uring); else through /dev/fuse\n"
		"                           (default: off; the stats file says\n"
		"                           which, and why)\n"
		"    -o journal_slack=SIZE  a checkpoint (written by a child process)\n"
		"                           starts when the journal has grown SIZE\n"
		"                           past twice its size after the last one\n"
		"                           (4K-1T, default %llu MiB)\n"
		"    -o remote=URL          share entries through Redis:\n"
		"                           redis://HOST:PORT[/DB],\n"
		"                           unix:/path/to/redis.sock, or\n"
		"                           redis-cluster://HOST:PORT[\\,HOST:PORT...]\n"
		"                           (committed entries are pushed in the\n"
		"                           background; a lookup of an absent\n"
		"                           name fetches it)\n"
		"    -o remote_prefix=NAME  the key namespace (default tcache)\n"
		"    -o remote_password_file=PATH  AUTH with its first line\n"
		"    -o remote_mode=MODE    write-through (default) or read-only\n"
		"                           (fetch, never push)\n"
		"    -o remote_timeout=MS   the longest wait on Redis (default 500)\n"
		"    -o remote_queue=SIZE   bytes of changes waiting to be pushed;\n"
		"                           past it they are dropped, counted\n"
		"                           (default 256M)\n"
		"    -h, --help             this text\n"
		"    -V, --version          print versions\n"
		"\n",
		prog, (unsigned long long)(TC_DEFAULT_CAPACITY >> 20),
		TCFS_SPIN_MAX_US, TCFS_SPIN_US,
		(unsigned long long)(TC_DEFAULT_JOURNAL_SLACK >> 20));
}

/* An entry evicted by a capacity shrink at open. */
static void log_shrink_eviction(void *arg, uint64_t parent, uint64_t id,
				const char *name)
{
	tcfs_log(LOG_NOTICE, "capacity shrink: evicted entry '%s'", name);
}

/* A message for the errors of tc_store_open(). */
static const char *store_error(int err)
{
	switch (err) {
	case -EBUSY:
		return "store is in use by another process (a tcachefs daemon "
		       "or the tcache tool)";
	case -EPROTO:
		return "not a tcachefs store, or of an unknown format version";
	case -ENOSPC:
		return "not enough disk space to preallocate the pool";
	case -EINVAL:
		return "capacity is below one block";
	default:
		return strerror(-err);
	}
}

/* @path made absolute without requiring it to exist (the store is created
 * by tc_store_open; fuse_daemonize changes directory to /). */
static char *absolute(const char *path)
{
	if (path[0] == '/')
		return strdup(path);
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	size_t n = strlen(cwd) + 1 + strlen(path) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", cwd, path);
	return p;
}

/* spin_us: a decimal number of microseconds up to TCFS_SPIN_MAX_US. */
static int parse_spin(const char *s, unsigned *us)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > TCFS_SPIN_MAX_US)
		return -EINVAL;
	*us = (unsigned)v;
	return 0;
}

/* the notifier thread's once-a-second call (notify.c) */
static void store_tick(void *store)
{
	tc_store_tick(store);
}

/* The mount point as the kernel names it in mountinfo: absolute, with
 * symlinks resolved, but for its last component when that is a dead
 * mount (realpath fails there with ENOTCONN).  NULL: libfuse will say
 * what is wrong with it. */
static char *mountpoint_path(const char *arg)
{
	char *r = realpath(arg, NULL), *dir, *base, *out = NULL;
	if (r || errno != ENOTCONN)
		return r;
	size_t n = strlen(arg);
	char *a = strdup(arg);
	if (!a)
		return NULL;
	while (n > 1 && a[n - 1] == '/')
		a[--n] = 0;
	base = strrchr(a, '/');
	if (base) {
		*base++ = 0;
		dir = realpath(*a ? a : "/", NULL);
	} else {
		base = a;
		dir = realpath(".", NULL);
	}
	if (dir && strcmp(base, ".") && strcmp(base, "..") &&
	    (out = malloc(strlen(dir) + strlen(base) + 2)))
		sprintf(out, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", base);
	free(dir);
	free(a);
	return out;
}

/* Detach the mount at @path from the tree (lazily: nothing can be using
 * a dead one).  Root does it itself; others through fusermount3, which
 * lets a user detach the FUSE mounts they made.  0 or -errno. */
static int detach(const char *path)
{
	if (geteuid() == 0)
		return umount2(path, MNT_DETACH) < 0 ? -errno : 0;
	char *argv[] = { "fusermount3", "-u", "-z", "--", (char *)path, NULL };
	pid_t pid;
	int status, err = posix_spawnp(&pid, argv[0], NULL, NULL, argv,
				       environ);
	if (err)
		return -err;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPERM;
}

/* Step 1, before libfuse sees MOUNTPOINT: a dead tcachefs mount there
 * (its daemon killed) is detached, so that a restart recovers by itself;
 * a live mount, or any other file system mounted there, is refused,
 * named.  False to stop (status 1). */
static bool check_mountpoint(const char *prog, const char *arg)
{
	char *mp = mountpoint_path(arg);
	struct tc_mount m;
	bool ok = true;
	/* mounts stack: look again after each detach */
	for (int i = 0; ok && mp && tc_mount_at(mp, &m) == 0; i++) {
		/* statfs, not stat: the kernel may answer a stat of a dead
		 * mount's root from its attribute cache, never a statfs */
		struct statfs sf;
		bool dead = statfs(mp, &sf) < 0 &&
			    (errno == ENOTCONN || errno == ECONNABORTED);
		bool ours = !strcmp(m.type, "fuse.tcachefs");
		if (dead && ours && i < 16) {
			int err = detach(mp);
			if (err) {
				fprintf(stderr, "%s: %s is a dead tcachefs mount "
					"(of %s) and could not be detached: %s; "
					"try: fusermount3 -u -z %s\n", prog, mp,
					m.source, strerror(-err), mp);
				ok = false;
			} else {
				tcfs_log(LOG_NOTICE, "detached the dead tcachefs "
					 "mount of %s at %s (its daemon had "
					 "exited)", m.source, mp);
			}
		} else if (ours) {
			fprintf(stderr, "%s: %s is already mounted: tcachefs is "
				"serving %s there; unmount it first "
				"(fusermount3 -u %s)\n", prog, mp, m.source, mp);
			ok = false;
		} else {
			fprintf(stderr, "%s: %s is already a mount point (%s, "
				"%s%s); mount elsewhere, or unmount that first\n",
				prog, mp, m.type, m.source,
				dead ? ", dead: not connected" : "");
			ok = false;
		}
	}
	free(mp);
	return ok;
}

/* -h, --help, -V or --version among the arguments: nothing is checked
 * or changed then. */
static bool only_asking(const struct fuse_args *args)
{
	for (int i = 1; i < args->argc; i++)
		if (!strcmp(args->argv[i], "-h") ||
		    !strcmp(args->argv[i], "--help") ||
		    !strcmp(args->argv[i], "-V") ||
		    !strcmp(args->argv[i], "--version"))
			return true;
	return false;
}

/* What the steps of main() share. */
struct daemon {
	const char *prog;         /* argv[0], for messages */
	struct fuse_args args;
	struct cli cli;
	struct fuse_cmdline_opts cmd;
	struct tc_options topt;
	unsigned spin_us;
	char *store;              /* STORE made absolute */
	struct tcfs fs;           /* fs.se: the session, once made */
	bool handlers, mounted;   /* signal handlers set; mounted */
	pid_t watchdog;           /* 0: none */
	int status;               /* the exit status */
};

/* Step 1: our options, then libfuse's.  False to stop: a refusal (status
 * 1), or --help and --version done (status 0). */
static bool parse_command_line(struct daemon *d)
{
	struct tc_options *topt = &d->topt;
	struct cli *cli = &d->cli;
	if (fuse_opt_parse(&d->args, cli, cli_spec, cli_proc) != 0)
		return false;
	if (cli->mountpoint && !only_asking(&d->args) &&
	    !check_mountpoint(d->prog, cli->mountpoint))
		return false;
	if (fuse_parse_cmdline(&d->args, &d->cmd) != 0)
		return false;
	if (d->cmd.show_help) {
		usage(stdout, d->prog);
		printf("FUSE options:\n");
		fflush(stdout);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		d->status = 0;
		return false;
	}
	if (d->cmd.show_version) {
		printf("tcachefs %s\n", TC_VERSION_STRING);
		printf("FUSE library version %s\n", fuse_pkgversion());
		fflush(stdout);
		fuse_lowlevel_version();
		d->status = 0;
		return false;
	}
	if (!cli->store || !d->cmd.mountpoint) {
		usage(stderr, d->prog);
		fprintf(stderr, "%s: STORE and MOUNTPOINT are required\n",
			d->prog);
		return false;
	}
	/* capacity=0, like no capacity=, keeps the store's */
	if (cli->capacity && strcmp(cli->capacity, "0") != 0) {
		int err = tc_parse_size(cli->capacity, &topt->capacity);
		if (err) {
			fprintf(stderr, "%s: bad capacity '%s': %s\n", d->prog,
				cli->capacity,
				err == -ERANGE ? "too large"
					       : "expected a size like 512M, "
						 "20G or 1.5T");
			return false;
		}
	}
	if (cli->journal_slack) {
		int err = tc_parse_size(cli->journal_slack, &topt->journal_slack);
		if (err || topt->journal_slack < 4096 ||
		    topt->journal_slack > (1ull << 40)) {
			fprintf(stderr, "%s: bad journal_slack '%s': a size "
				"from 4K to 1T\n", d->prog, cli->journal_slack);
			return false;
		}
	}
	if (cli->verify) {
		if (strcmp(cli->verify, "on") == 0) {
			topt->verify = TC_VERIFY_ON;
		} else if (strcmp(cli->verify, "off") == 0) {
			topt->verify = TC_VERIFY_OFF;
		} else {
			fprintf(stderr, "%s: bad verify '%s': on or off\n",
				d->prog, cli->verify);
			return false;
		}
	}

	d->spin_us = TCFS_SPIN_US;
	if (cli->spin_us && parse_spin(cli->spin_us, &d->spin_us) != 0) {
		fprintf(stderr, "%s: bad spin_us '%s': microseconds from 0 to "
			"%u\n", d->prog, cli->spin_us, TCFS_SPIN_MAX_US);
		return false;
	}
	if (cli->uring && strcmp(cli->uring, "on") != 0 &&
	    strcmp(cli->uring, "off") != 0) {
		fprintf(stderr, "%s: bad uring '%s': on or off\n", d->prog,
			cli->uring);
		return false;
	}
	if (cli->loglevel && tcfs_log_set_level(cli->loglevel) != 0) {
		fprintf(stderr, "%s: bad loglevel '%s': err, warning, notice, "
			"info or debug\n", d->prog, cli->loglevel);
		return false;
	}
	if (cli->log) {
		int err = tcfs_log_file(cli->log);
		if (err) {
			fprintf(stderr, "%s: bad log '%s': %s\n", d->prog,
				cli->log, err == -EINVAL ? "not a regular file"
							 : strerror(-err));
			return false;
		}
	}
	char err[512];
	if (tcfs_remote_new(&cli->remote, NULL, &d->fs.remote, err,
			    sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", d->prog, err);
		return false;
	}
	return true;
}

/* tc_store_busy's message that it waits for an exiting daemon. */
static void say_waiting(void *arg, const char *msg)
{
	const struct daemon *d = arg;
	fprintf(stderr, "%s: %s: %s\n", d->prog, d->store, msg);
}

/* Step 2: the store, and the notice queue and page-cache table that serve
 * it.  False to stop (status 1). */
static bool open_store(struct daemon *d)
{
	struct tcfs *fs = &d->fs;
	d->store = absolute(d->cli.store);
	if (!d->store) {
		fprintf(stderr, "%s: %s: %s\n", d->prog, d->cli.store,
			strerror(errno));
		return false;
	}
	d->topt.on_evict = log_shrink_eviction;
	int err = tc_store_open(d->store, &d->topt, &fs->store);
	char why[PATH_MAX + 256] = "";
	if (err == -EBUSY &&
	    tc_store_busy(d->store, TC_BUSY_WAIT_MS, say_waiting, d, why,
			  sizeof(why)) == 0)
		err = tc_store_open(d->store, &d->topt, &fs->store);
	if (err == -EFBIG) {
		struct tc_stats st = { 0 };
		tc_store_peek(d->store, &st);
		fprintf(stderr, "%s: cannot open store %s: its pinned entries "
			"hold %llu bytes (%.1f MiB), more than the capacity of "
			"%llu bytes (%.1f MiB); unpin some (chmod -t) or give a "
			"larger capacity\n", d->prog, d->store,
			(unsigned long long)st.pinned_bytes,
			st.pinned_bytes / 1048576.0,
			(unsigned long long)d->topt.capacity,
			d->topt.capacity / 1048576.0);
		return false;
	}
	if (err) {
		fprintf(stderr, "%s: cannot open store %s: %s\n", d->prog,
			d->store, err == -EBUSY && why[0] ? why : store_error(err));
		return false;
	}
	/* it exists now: its real path is what mountinfo will show */
	char *real = realpath(d->store, NULL);
	if (real) {
		free(d->store);
		d->store = real;
	}
	fs->store_path = d->store;
	if (tcfs_store_dev(d->store, fs->store_dev, sizeof(fs->store_dev)) != 0)
		snprintf(fs->store_dev, sizeof(fs->store_dev), "%s", d->store);
	fs->notifier = tcfs_notifier_new();
	fs->kcache = tcfs_kcache_new();
	if (!fs->notifier || !fs->kcache) {
		fprintf(stderr, "%s: out of memory\n", d->prog);
		return false;
	}
	return true;
}

/* Step 3: the session, its signal handlers, the mount, the device reads.
 * False to stop (status 1; libfuse said why where we do not). */
static bool mount_session(struct daemon *d)
{
	/* ours first, so that the user's -o options override them; the
	 * source findmnt, df and /proc/mounts show is the store's path (its
	 * commas and backslashes escaped for fuse_opt) */
	size_t n = strlen(d->store);
	char *opts = malloc(2 * n + 64), *o;
	if (!opts)
		return false;
	o = opts + sprintf(opts, "-odefault_permissions,subtype=tcachefs,fsname=");
	for (size_t i = 0; i < n; i++) {
		if (d->store[i] == ',' || d->store[i] == '\\')
			*o++ = '\\';
		*o++ = d->store[i];
	}
	*o = 0;
	int err = fuse_opt_insert_arg(&d->args, 1, opts);
	free(opts);
	if (err != 0)
		return false;
	d->fs.se = fuse_session_new(&d->args, &tcfs_ops, sizeof(tcfs_ops),
				    &d->fs);
	if (!d->fs.se)
		return false;
	if (fuse_set_signal_handlers(d->fs.se) != 0)
		return false;
	d->handlers = true;
	if (fuse_session_mount(d->fs.se, d->cmd.mountpoint) != 0)
		return false;
	d->mounted = true;
	err = tcfs_devio_setup(d->fs.se, d->spin_us);
	if (err) {
		fprintf(stderr, "%s: cannot set up the device reads: %s\n",
			d->prog, strerror(-err));
		return false;
	}
	if (d->cli.uring && strcmp(d->cli.uring, "on") == 0)
		tcfs_uring_want(d->fs.se);
	return true;
}

/* Step 4: messages to where they go from now on (log.c), then into the
 * background (unless -f or -d). */
static void daemonize(struct daemon *d)
{
	const char *lost = tcfs_log_start(!d->cmd.foreground);
	if (lost)
		fprintf(stderr, "%s: %s\n", d->prog, lost);
	fuse_set_log_func(tcfs_fuse_log);
	fuse_daemonize(d->cmd.foreground);
	/* for "in use" messages: the pid that serves, after the fork */
	tc_store_set_owner(d->fs.store, d->cmd.mountpoint);
}

/* What a mount after a crash or damage left out (tc_store_stats). */
static void log_recovery(struct daemon *d)
{
	struct tc_stats st;
	tc_store_stats(d->fs.store, &st);
	if (st.journal_dropped || st.nodes_dropped)
		tcfs_log(LOG_WARNING, "recovered %s: dropped %llu damaged "
			 "journal records and %llu tensors whose bytes "
			 "were lost (see tcache fsck); everything else "
			 "is served", d->store,
			 (unsigned long long)st.journal_dropped,
			 (unsigned long long)st.nodes_dropped);
	if (st.unsynced_dropped || st.fallbacks || st.journal_torn)
		tcfs_log(LOG_NOTICE, "recovered %s after a crash: %llu "
			 "tensors written since the last sync were not "
			 "on disk whole and are left out as never "
			 "written; %llu replaced tensors keep their "
			 "previous bytes; %llu journal records were "
			 "never written whole", d->store,
			 (unsigned long long)st.unsynced_dropped,
			 (unsigned long long)st.fallbacks,
			 (unsigned long long)st.journal_torn);
}

/* The session loop, until a signal or an unmount: the exit status. */
static int run_loop(struct daemon *d)
{
	struct fuse_session *se = d->fs.se;
	int err;
	if (d->cmd.singlethread) {
		err = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		if (!cfg)
			return 1;
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)d->cmd.clone_fd);
		if (d->cmd.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(cfg,
						       d->cmd.max_idle_threads);
		/* Default: one worker per CPU (at least 2, so that one slow
		 * request never holds up all others).  libfuse's 10 made
		 * sequential small-file work hop between threads: creates and
		 * first opens ran ~1.5-2x slower (tools/BENCH-NOTES.md). */
		unsigned threads = d->cli.max_threads;
		if (!threads) {
			long cpus = sysconf(_SC_NPROCESSORS_ONLN);
			threads = cpus < 2 ? 2 : cpus > 10 ? 10 : (unsigned)cpus;
		}
		fuse_loop_cfg_set_max_threads(cfg, threads);
		err = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	/* > 0: the signal that ended the loop, a clean stop */
	if (err < 0)
		tcfs_log(LOG_ERR, "session loop: %s", strerror(-err));
	return err < 0 ? 1 : 0;
}

/* A tensor the check after the mount found damaged (lib/verify.c; called
 * with the store locked: no store calls here). */
static void log_damage(void *arg, const char *path, const char *problem)
{
	struct tcfs *fs = arg;
	tcfs_log(LOG_ERR, "%s: %s (found by the check after the mount: its "
		 "reads fail with EIO); unmount, then tcache fsck --repair %s",
		 path, problem, fs->store_path ? fs->store_path : "STORE");
}

/* Step 5: the watchdog, the read-ahead, the notifier thread, then the
 * loop; its end sets the exit status. */
static void serve(struct daemon *d)
{
	struct tcfs *fs = &d->fs;
	const char *mnt = d->cmd.mountpoint;

	/* before any thread: the watchdog is a fork of this one */
	int err = tcfs_watchdog_start(mnt, &d->watchdog);
	if (err)
		tcfs_log(LOG_WARNING, "no watchdog (%s): if this daemon is "
			 "killed, umount -f %s may be needed", strerror(-err),
			 mnt);

	/* before the loop answers INIT (see tcfs_init) */
	err = tcfs_raise_readahead(mnt, TCFS_READAHEAD_KB);
	if (err)
		tcfs_log(LOG_INFO, "read-ahead stays at the kernel's default: "
			 "%s", strerror(-err));

	err = tcfs_notifier_start(fs->notifier, fs->se, store_tick, fs->store);
	if (err) {
		tcfs_log(LOG_ERR, "cannot start the notifier thread: %s",
			 strerror(-err));
		return;
	}
	tc_store_on_evict(fs->store, tcfs_notifier_evicted, fs->notifier);
	err = tc_store_verify_start(fs->store, log_damage, fs);
	if (err)
		tcfs_log(LOG_WARNING, "tensors in memory are checked at their "
			 "first read: no thread for it (%s)", strerror(-err));
	if (fs->remote) {
		tcfs_remote_set_store(fs->remote, fs->store);
		err = tcfs_remote_start(fs->remote);
		if (err) {
			tcfs_log(LOG_ERR, "cannot start the remote tier: %s",
				 strerror(-err));
			return;
		}
		tcfs_log(LOG_INFO, "remote tier: %s", d->cli.remote.url);
	}
	tcfs_log(LOG_INFO, "serving %s at %s", d->store, mnt);
	log_recovery(d);
	d->status = run_loop(d);
}

/* Step 6, also after a refusal: undo whatever the steps before did. */
static void shut_down(struct daemon *d)
{
	struct tcfs *fs = &d->fs;
	/* the ring threads run handlers too: done before anything goes */
	tcfs_uring_stop();
	/* an orderly stop: the watchdog must not abort the connection */
	tcfs_watchdog_stop(d->watchdog);
	/* no more notices, and the notifier done with the session's fd
	 * before unmounting closes it */
	if (fs->store)
		tc_store_on_evict(fs->store, NULL, NULL);
	tcfs_notifier_free(fs->notifier);
	/* after the loop: no fetch runs now; what is queued is dropped */
	tcfs_remote_free(fs->remote);
	fs->remote = NULL;
	if (d->mounted)
		fuse_session_unmount(fs->se);
	tcfs_close_all(fs);
	if (fs->store) {
		int err = tc_store_close(fs->store);
		if (err) {
			tcfs_log(LOG_ERR, "closing the store: %s",
				 strerror(-err));
			d->status = 1;
		}
	}
	/* only now: a SIGTERM during the shutdown (systemd sends one right
	 * after its ExecStop's fusermount3 -u) must not end the checkpoint
	 * that tc_store_close writes; the handlers ignore it after the loop */
	if (d->handlers)
		fuse_remove_signal_handlers(fs->se);
	if (fs->se)
		fuse_session_destroy(fs->se);
	tcfs_kcache_free(fs->kcache);
	pthread_mutex_destroy(&fs->handles_lock);
	free(d->store);
	free(d->cli.store);
	free(d->cli.mountpoint);
	free(d->cli.capacity);
	free(d->cli.verify);
	free(d->cli.loglevel);
	free(d->cli.log);
	free(d->cli.spin_us);
	free(d->cli.journal_slack);
	free(d->cli.uring);
	free(d->cli.remote.url);
	free(d->cli.remote.prefix);
	free(d->cli.remote.password_file);
	free(d->cli.remote.mode);
	free(d->cli.remote.timeout);
	free(d->cli.remote.queue);
	free(d->cmd.mountpoint);
	fuse_opt_free_args(&d->args);
}

int main(int argc, char *argv[])
{
	struct daemon d = {
		.prog = argc > 0 ? argv[0] : "tcachefs",
		.args = FUSE_ARGS_INIT(argc, argv),
		.status = 1,
	};
	pthread_mutex_init(&d.fs.handles_lock, NULL);
	if (parse_command_line(&d) && open_store(&d) && mount_session(&d)) {
		daemonize(&d);
		serve(&d);
	}
	shut_down(&d);
	return d.status;
}
