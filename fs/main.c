/*
 * main.c - the tcachefs daemon's entry point.
 *
 *   tcachefs STORE MOUNTPOINT [-o capacity=SIZE] [-o verify=on|off]
 *            [-o spin_us=N] [-o journal_slack=SIZE] [-f] [-d] [-s]
 *            [FUSE options]
 *
 * Order of events, chosen so that every refusal is a one-line message on
 * stderr and exit status 1, with nothing mounted:
 *   1. parse the command line (fuse_opt; our options are consumed, the rest
 *      goes to libfuse);
 *   2. open the store (tc_store_open): "in use", bad format, no space...;
 *   3. fuse_session_new, signal handlers (SIGINT, SIGTERM, SIGHUP end the
 *      loop), fuse_session_mount, the device read through devio.c;
 *   4. fuse_daemonize (unless -f/-d), then log to syslog;
 *   5. fork the watchdog (watchdog.c), start the eviction notifier
 *      thread (it also ticks the store once a second), run the loop
 *      (multi-threaded unless -s);
 *   6. on SIGTERM/SIGINT or fusermount3 -u: unmount, stop the notifier,
 *      close handles the kernel never released, tc_store_close.
 *
 * Threads: only the main thread until step 5; then the loop's workers
 * (ops.c) and the notifier (notify.c).  The store is opened before the
 * fork in fuse_daemonize: libtcache must keep its lock across fork() (see
 * fs/API-NOTES.md).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "tcfs.h"

struct cli {
	char *store;
	char *capacity;
	char *verify;
	char *loglevel;
	char *spin_us;
	char *journal_slack;
	unsigned max_threads; /* 0: not given (libfuse would say 10) */
};

static const struct fuse_opt cli_spec[] = {
	{ "capacity=%s", offsetof(struct cli, capacity), 0 },
	{ "verify=%s", offsetof(struct cli, verify), 0 },
	{ "loglevel=%s", offsetof(struct cli, loglevel), 0 },
	{ "spin_us=%s", offsetof(struct cli, spin_us), 0 },
	{ "journal_slack=%s", offsetof(struct cli, journal_slack), 0 },
	/* seen here and kept for fuse_parse_cmdline too */
	{ "max_threads=%u", offsetof(struct cli, max_threads), 0 },
	FUSE_OPT_KEY("max_threads=", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_END
};

/* The first non-option is STORE (consumed); the second, MOUNTPOINT, is
 * left for fuse_parse_cmdline. */
static int cli_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct cli *c = data;
	if (key == FUSE_OPT_KEY_NONOPT && !c->store) {
		c->store = strdup(arg);
		return c->store ? 0 : -1;
	}
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
		"                           (default: keep the store's; %llu MiB\n"
		"                           for a new store)\n"
		"    -o verify=on|off       check each tensor's xxh3 on its first\n"
		"                           read after mounting (default: on)\n"
		"    -o loglevel=LEVEL      err, warning, notice, info (default)\n"
		"                           or debug; stderr with -f, else syslog\n"
		"    -o spin_us=N           after a request, a worker polls for the\n"
		"                           next one for up to N microseconds before\n"
		"                           it sleeps (0-%u, default %u; 0: never)\n"
		"    -o journal_slack=SIZE  a checkpoint (written by a child process)\n"
		"                           starts when the journal has grown SIZE\n"
		"                           past twice its size after the last one\n"
		"                           (4K-1T, default %llu MiB)\n"
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

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd;
	struct cli cli = { 0 };
	struct tcfs fs = { 0 };
	struct tc_options topt = { 0 };
	struct fuse_session *se = NULL;
	char *store = NULL;
	const char *prog = argc > 0 ? argv[0] : "tcachefs";
	int ret = 1;
	pid_t watchdog = 0;
	bool mounted = false, handlers = false;

	memset(&cmd, 0, sizeof(cmd));
	pthread_mutex_init(&fs.handles_lock, NULL);

	if (fuse_opt_parse(&args, &cli, cli_spec, cli_proc) != 0)
		goto out;
	if (fuse_parse_cmdline(&args, &cmd) != 0)
		goto out;
	if (cmd.show_help) {
		usage(stdout, prog);
		printf("FUSE options:\n");
		fflush(stdout);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out;
	}
	if (cmd.show_version) {
		printf("tcachefs %s\n", TC_VERSION_STRING);
		printf("FUSE library version %s\n", fuse_pkgversion());
		fflush(stdout);
		fuse_lowlevel_version();
		ret = 0;
		goto out;
	}
	if (!cli.store || !cmd.mountpoint) {
		usage(stderr, prog);
		fprintf(stderr, "%s: STORE and MOUNTPOINT are required\n",
			prog);
		goto out;
	}
	if (cli.capacity) {
		int err = tc_parse_size(cli.capacity, &topt.capacity);
		if (err) {
			fprintf(stderr, "%s: bad capacity '%s': %s\n", prog,
				cli.capacity,
				err == -ERANGE ? "too large"
					       : "expected a size like 512M, "
						 "20G or 1.5T");
			goto out;
		}
	}
	if (cli.journal_slack) {
		int err = tc_parse_size(cli.journal_slack, &topt.journal_slack);
		if (err || topt.journal_slack < 4096 ||
		    topt.journal_slack > (1ull << 40)) {
			fprintf(stderr, "%s: bad journal_slack '%s': a size "
				"from 4K to 1T\n", prog, cli.journal_slack);
			goto out;
		}
	}
	if (cli.verify) {
		if (strcmp(cli.verify, "on") == 0) {
			topt.verify = TC_VERIFY_ON;
		} else if (strcmp(cli.verify, "off") == 0) {
			topt.verify = TC_VERIFY_OFF;
		} else {
			fprintf(stderr, "%s: bad verify '%s': on or off\n",
				prog, cli.verify);
			goto out;
		}
	}

	unsigned spin_us = TCFS_SPIN_US;
	if (cli.spin_us && parse_spin(cli.spin_us, &spin_us) != 0) {
		fprintf(stderr, "%s: bad spin_us '%s': microseconds from 0 to "
			"%u\n", prog, cli.spin_us, TCFS_SPIN_MAX_US);
		goto out;
	}
	if (cli.loglevel && tcfs_log_set_level(cli.loglevel) != 0) {
		fprintf(stderr, "%s: bad loglevel '%s': err, warning, notice, "
			"info or debug\n", prog, cli.loglevel);
		goto out;
	}

	store = absolute(cli.store);
	if (!store) {
		fprintf(stderr, "%s: %s: %s\n", prog, cli.store,
			strerror(errno));
		goto out;
	}
	topt.on_evict = log_shrink_eviction;
	int err = tc_store_open(store, &topt, &fs.store);
	if (err == -EFBIG) {
		struct tc_stats st = { 0 };
		tc_store_peek(store, &st);
		fprintf(stderr, "%s: cannot open store %s: its pinned entries "
			"hold %llu bytes (%.1f MiB), more than the capacity of "
			"%llu bytes (%.1f MiB); unpin some (chmod -t) or give a "
			"larger capacity\n", prog, store,
			(unsigned long long)st.pinned_bytes,
			st.pinned_bytes / 1048576.0,
			(unsigned long long)topt.capacity,
			topt.capacity / 1048576.0);
		goto out;
	}
	if (err) {
		fprintf(stderr, "%s: cannot open store %s: %s\n", prog, store,
			store_error(err));
		goto out;
	}
	if (tcfs_store_dev(store, fs.store_dev, sizeof(fs.store_dev)) != 0)
		snprintf(fs.store_dev, sizeof(fs.store_dev), "%s", store);
	fs.notifier = tcfs_notifier_new();
	fs.kcache = tcfs_kcache_new();
	if (!fs.notifier || !fs.kcache) {
		fprintf(stderr, "%s: out of memory\n", prog);
		goto out;
	}

	/* ours first, so that the user's -o options override them */
	if (fuse_opt_insert_arg(&args, 1, "-odefault_permissions,"
				"fsname=tcachefs,subtype=tcachefs") != 0)
		goto out;
	se = fuse_session_new(&args, &tcfs_ops, sizeof(tcfs_ops), &fs);
	if (!se)
		goto out; /* libfuse said why */
	fs.se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = true;
	if (fuse_session_mount(se, cmd.mountpoint) != 0)
		goto out;
	mounted = true;
	err = tcfs_devio_setup(se, spin_us);
	if (err) {
		fprintf(stderr, "%s: cannot set up the device reads: %s\n",
			prog, strerror(-err));
		goto out;
	}

	if (!cmd.foreground) {
		fuse_set_log_func(tcfs_fuse_log);
		tcfs_log_to_syslog();
	}
	fuse_daemonize(cmd.foreground);

	/* before any thread: the watchdog is a fork of this one */
	err = tcfs_watchdog_start(cmd.mountpoint, &watchdog);
	if (err)
		tcfs_log(LOG_WARNING, "no watchdog (%s): if this daemon is "
			 "killed, umount -f %s may be needed", strerror(-err),
			 cmd.mountpoint);

	/* before the loop answers INIT (see tcfs_init) */
	err = tcfs_raise_readahead(cmd.mountpoint, TCFS_READAHEAD_KB);
	if (err)
		tcfs_log(LOG_INFO, "read-ahead stays at the kernel's default: "
			 "%s", strerror(-err));

	err = tcfs_notifier_start(fs.notifier, se, store_tick, fs.store);
	if (err) {
		tcfs_log(LOG_ERR, "cannot start the notifier thread: %s",
			 strerror(-err));
		goto out;
	}
	tc_store_on_evict(fs.store, tcfs_notifier_evicted, fs.notifier);
	tcfs_log(LOG_INFO, "serving %s at %s", store, cmd.mountpoint);
	{
		struct tc_stats st;
		tc_store_stats(fs.store, &st);
		if (st.journal_dropped || st.nodes_dropped)
			tcfs_log(LOG_WARNING, "recovered %s: dropped %llu damaged "
				 "journal records and %llu tensors whose bytes "
				 "were lost (see tcache fsck); everything else "
				 "is served", store,
				 (unsigned long long)st.journal_dropped,
				 (unsigned long long)st.nodes_dropped);
		if (st.unsynced_dropped || st.fallbacks || st.journal_torn)
			tcfs_log(LOG_NOTICE, "recovered %s after a crash: %llu "
				 "tensors written since the last sync were not "
				 "on disk whole and are left out as never "
				 "written; %llu replaced tensors keep their "
				 "previous bytes; %llu journal records were "
				 "never written whole", store,
				 (unsigned long long)st.unsynced_dropped,
				 (unsigned long long)st.fallbacks,
				 (unsigned long long)st.journal_torn);
	}

	if (cmd.singlethread) {
		err = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		if (!cfg)
			goto out;
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)cmd.clone_fd);
		if (cmd.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(cfg,
						       cmd.max_idle_threads);
		/* Default: one worker per CPU (at least 2, so that one slow
		 * request never holds up all others).  libfuse's 10 made
		 * sequential small-file work hop between threads: creates and
		 * first opens ran ~1.5-2x slower (tools/BENCH-NOTES.md). */
		unsigned threads = cli.max_threads;
		if (!threads) {
			long cpus = sysconf(_SC_NPROCESSORS_ONLN);
			threads = cpus < 2 ? 2 : cpus > 10 ? 10 : (unsigned)cpus;
		}
		fuse_loop_cfg_set_max_threads(cfg, threads);
		err = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	/* > 0: the signal that ended the loop, a clean stop */
	ret = err < 0 ? 1 : 0;
	if (err < 0)
		tcfs_log(LOG_ERR, "session loop: %s", strerror(-err));

out:
	/* an orderly stop: the watchdog must not abort the connection */
	tcfs_watchdog_stop(watchdog);
	/* no more notices, and the notifier done with the session's fd
	 * before unmounting closes it */
	if (fs.store)
		tc_store_on_evict(fs.store, NULL, NULL);
	tcfs_notifier_free(fs.notifier);
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	tcfs_close_all(&fs);
	if (fs.store) {
		err = tc_store_close(fs.store);
		if (err) {
			tcfs_log(LOG_ERR, "closing the store: %s",
				 strerror(-err));
			ret = 1;
		}
	}
	if (se)
		fuse_session_destroy(se);
	tcfs_kcache_free(fs.kcache);
	pthread_mutex_destroy(&fs.handles_lock);
	free(store);
	free(cli.store);
	free(cli.capacity);
	free(cli.verify);
	free(cli.loglevel);
	free(cli.spin_us);
	free(cli.journal_slack);
	free(cmd.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
