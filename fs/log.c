/*
 * log.c - the daemon's logging: stderr while in the foreground (-f, -d, and
 * before daemonizing), syslog (ident "tcachefs", facility daemon) after.
 *
 * Threads: any.  The destination is chosen once, before the session loop
 * starts threads, so it needs no lock; stderr and syslog serialise lines.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "tcfs.h"

static bool use_syslog;

void tcfs_log_to_syslog(void)
{
	openlog("tcachefs", LOG_PID, LOG_DAEMON);
	use_syslog = true;
}

static void vlog(int prio, const char *fmt, va_list ap)
{
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
