/*
 * log.c - the daemon's logging.  Where messages go, chosen once:
 *   before the mount is made: stderr, where refusals belong;
 *   -o log=FILE   then appended to FILE, a line each with its time and
 *                 pid, in the foreground too (opened at start, so that a
 *                 bad path is refused before anything is mounted);
 *   foreground    (-f, -d) stderr;
 *   detached      syslog (ident "tcachefs", facility daemon) when the
 *                 syslog socket is there; else the stderr the daemon was
 *                 started with, kept open across daemonizing, when it is
 *                 a terminal or a file (tcfs_log_start).  A pipe is not
 *                 kept: it would hold `$(tcachefs ...)` and `run` open
 *                 until the daemon exits.  Then one line says where the
 *                 messages went no more, and how to keep them.
 * Messages less important than -o loglevel= (default info) are dropped.
 *
 * Threads: any.  The destination is chosen before the session loop
 * starts threads, so it needs no lock; each line is one write().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "tcfs.h"

/* where syslog(3) sends (glibc's _PATH_LOG) */
#define SYSLOG_SOCKET "/dev/log"

static enum { TO_STDERR, TO_SYSLOG, TO_FD } dest;
static int log_fd = -1;       /* TO_FD: the file, or the kept stderr */
static int file_fd = -1;      /* -o log=FILE, opened, not yet in use */
static bool stamped;          /* lines carry a time and the pid */
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

int tcfs_log_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	file_fd = fd;
	return 0;
}

const char *tcfs_log_start(bool detached)
{
	struct stat st;
	if (file_fd >= 0) {
		log_fd = file_fd;
		dest = TO_FD;
		stamped = true;
		return NULL;
	}
	if (!detached)
		return NULL;
	if (stat(SYSLOG_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode)) {
		openlog("tcachefs", LOG_PID, LOG_DAEMON);
		dest = TO_SYSLOG;
		return NULL;
	}
	if (fstat(2, &st) == 0 &&
	    (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) &&
	    (log_fd = fcntl(2, F_DUPFD_CLOEXEC, 3)) >= 0) {
		dest = TO_FD;
		stamped = true;
		return NULL;
	}
	return "no syslog here (" SYSLOG_SOCKET ") and stderr is no terminal "
	       "or file: from now on messages are lost; keep them with "
	       "-o log=FILE, or run in the foreground (-f)";
}

static void vlog(int prio, const char *fmt, va_list ap)
{
	if (prio > max_prio)
		return;
	if (dest == TO_SYSLOG) {
		vsyslog(prio, fmt, ap);
		return;
	}
	char msg[1024], line[1200];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	if (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	int len;
	if (stamped) {
		/* 2026-12-04T19:50:00.123Z tcachefs[123]: message */
		struct timespec ts;
		struct tm tm;
		char when[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		len = snprintf(line, sizeof(line), "%s.%03ldZ tcachefs[%ld]: %s\n",
			       when, ts.tv_nsec / 1000000, (long)getpid(), msg);
	} else {
		len = snprintf(line, sizeof(line), "tcachefs: %s\n", msg);
	}
	if (len > (int)sizeof(line) - 1)
		len = (int)sizeof(line) - 1;
	/* one write per line so threads do not interleave */
	if (write(dest == TO_FD ? log_fd : 2, line, (size_t)len) < 0) {
		/* nowhere left to say it */
	}
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
