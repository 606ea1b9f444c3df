/*
 * direct_check FILE - map FILE with tc_map_fd (libtcache's direct path)
 * and compare the mapping with the bytes read(2) gives through the mount.
 * Prints "direct SIZE" when they are equal, "fallback: ERRNO-TEXT" when
 * tc_map_fd refuses (the caller reads through the fd then); exit 1 when the
 * bytes differ or FILE cannot be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcache.h"

int main(int argc, char **argv)
{
	const void *addr;
	size_t len, got = 0;
	if (argc != 2) {
		fprintf(stderr, "usage: direct_check FILE\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	int err = tc_map_fd(fd, &addr, &len);
	if (err) {
		printf("fallback: %s\n", strerror(-err));
		return 0;
	}
	char *buf = malloc(len + 1);
	ssize_t n;
	while (buf && (n = pread(fd, buf + got, len + 1 - got, (off_t)got)) > 0)
		got += (size_t)n;
	int same = buf && got == len && memcmp(buf, addr, len) == 0;
	tc_unmap(addr, len);
	close(fd);
	free(buf);
	if (!same) {
		printf("differ: mapped %zu bytes, read %zu\n", len, got);
		return 1;
	}
	printf("direct %zu\n", len);
	return 0;
}
