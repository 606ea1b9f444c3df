/*
 * log.c - the daemon's logging: stderr while in the foreground (-f, -d, and
 * before daemonizing), syslog (ident "tcachefs", facility daemon) after;
 * messages less important than -o loglevel= (default info) are dropped.
 *
 * Threads: any.  The destination is chosen once, before the session loop
 * starts threads, so it needs no lock; stderr and syslog serialise lines.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "tcfs.h"

static bool use_syslog;
static int max_prio = LOG_INFO;

int tcfs_log_set_level(const char *level)
{
	static const struct {
		const char *name;
		int prio;
	} levels[] = { { "err", LOG_ERR }, { "warning", LOG_WARNING },
		       { "notice", LOG_NOTICE }, { "info", LOG_INFO },
		       { "debug", LOG_DEBUG } };
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (!strcmp(level, levels[i].name)) {
			max_prio = levels[i].prio;
			return 0;
		}
	return -EINVAL;
}

void tcfs_log_to_syslog(void)
{
	openlog("tcachefs", LOG_PID, LOG_DAEMON);
	use_syslog = true;
}

static void vlog(int prio, const char *fmt, va_list ap)
{
	if (prio > max_prio)
		return;
	if (use_syslog) {
		vsyslog(prio, fmt, ap);
		return;
	}
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	/* one write per line so threads do not interleave */
	fprintf(stderr, "tcachefs: %s%s", line,
		line[0] && line[strlen(line) - 1] == '\n' ? "" : "\n");
}

void tcfs_log(int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(prio, fmt, ap);
	va_end(ap);
}

void tcfs_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	/* fuse_log_level uses syslog's numbering */
	vlog((int)level, fmt, ap);
}
