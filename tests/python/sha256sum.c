/*
 * sha256sum.c - tools/sha256.c over stdin, for tests/python/test_sha256.py
 * (which compares it with Python's hashlib).
 *
 *   sha256sum-tc [CHUNK]   feed stdin to sha256_update CHUNK bytes at a
 *                          time (default 4096; odd sizes cross the 64-byte
 *                          block boundary at every offset); print the hex
 */
#include <stdio.h>
#include <stdlib.h>

#include "sha256.h"

int main(int argc, char **argv)
{
	size_t chunk = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096;
	unsigned char *buf = malloc(chunk ? chunk : 1), d[SHA256_BYTES];
	struct sha256 s;
	size_t n;

	if (!buf || !chunk)
		return 2;
	sha256_init(&s);
	while ((n = fread(buf, 1, chunk, stdin)) > 0)
		sha256_update(&s, buf, n);
	if (ferror(stdin))
		return 2;
	sha256_final(&s, d);
	for (int i = 0; i < SHA256_BYTES; i++)
		printf("%02x", d[i]);
	printf("\n");
	free(buf);
	return 0;
}
