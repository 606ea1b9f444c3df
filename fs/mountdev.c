/*
 * mountdev.c - what the kernel calls our mount: its device number, found
 * in /proc/self/mountinfo (never by a path lookup on the mount, which is
 * not served yet when these run), and the read-ahead of its bdi; and the
 * name of the file system under the store, for messages.
 *
 * The device of a FUSE mount is anonymous (major 0); its minor is also
 * the connection's number under /sys/fs/fuse/connections, and "MAJ:MIN"
 * names its backing device info under /sys/class/bdi.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "tcfs.h"

/* Undo mountinfo's octal escapes (\040 for a space...) in place. */
static void unescape_octal(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

static int mount_dev_once(const char *mnt, unsigned *majp, unsigned *minp)
{
	char line[8192];
	int found = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char point[PATH_MAX];
		/* ID PARENT MAJ:MIN ROOT POINT ... - FSTYPE ... */
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, point) != 3)
			continue;
		char *dash = strstr(line, " - ");
		unescape_octal(point);
		if (strcmp(point, mnt) || !dash || strncmp(dash + 3, "fuse", 4))
			continue;
		*majp = maj; /* the last mount at that path wins */
		*minp = min;
		found = 0;
	}
	fclose(f);
	return found;
}

int tcfs_mount_dev(const char *mnt, unsigned *majp, unsigned *minp)
{
	/* A read of mountinfo can miss a line while other mounts come and
	 * go (it is read in pieces; seen here: our own mount missing once
	 * in a few tries while tests mounted beside us): look again. */
	int err = -ENOENT;
	for (int i = 0; i < 5 && err == -ENOENT; i++) {
		if (i) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		err = mount_dev_once(mnt, majp, minp);
	}
	return err;
}

int tcfs_raise_readahead(const char *mnt, unsigned kib)
{
	unsigned maj, min, now = 0;
	char path[64], buf[32];
	int err = tcfs_mount_dev(mnt, &maj, &min);
	if (err)
		return err;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj,
		 min);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		sscanf(buf, "%u", &now);
	}
	err = 0;
	if (now < kib) { /* never lower what an administrator set */
		int len = snprintf(buf, sizeof(buf), "%u\n", kib);
		if (pwrite(fd, buf, (size_t)len, 0) != len)
			err = -errno;
	}
	close(fd);
	return err;
}

int tcfs_store_dev(const char *dir, char *buf, size_t size)
{
	char line[8192];
	struct stat st;
	int err = -ENOENT;
	FILE *f;

	if (stat(dir, &st) < 0)
		return -errno;
	f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char point[PATH_MAX], source[PATH_MAX];
		/* ID PARENT MAJ:MIN ROOT POINT ... - FSTYPE SOURCE ... */
		char *dash = strstr(line, " - ");
		if (!dash ||
		    sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, point) != 3 ||
		    sscanf(dash + 3, "%*s %4095s", source) != 1 ||
		    makedev(maj, min) != st.st_dev)
			continue;
		unescape_octal(point);
		unescape_octal(source);
		snprintf(buf, size, "%s (%s)", source, point);
		err = 0; /* the last mount of that device wins */
	}
	fclose(f);
	return err;
}
