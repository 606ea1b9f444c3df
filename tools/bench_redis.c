/*
 * bench_redis.c - tcache-bench-redis: the raw cost of reading an entry's
 * bytes from Redis, for tools/bench phase 10 to compare a mount's first
 * read of a remote entry with.
 *
 *   tcache-bench-redis HOST PORT PREFIX NAME
 *
 * GETs the entry's manifest ({PREFIX:NAME}:m, see fs/remote.c), then
 * every chunk it names, four to a pipeline (as the mount fetches them),
 * into one buffer, and prints "bytes=N s=SECONDS" (the time from the
 * manifest's GET to the last chunk's reply).  hiredis alone: no tcachefs
 * code, no checksum, no copy into a store.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s HOST PORT PREFIX NAME\n", argv[0]);
		return 2;
	}
	struct timeval tv = { 30, 0 };
	redisContext *c = redisConnectWithTimeout(argv[1], atoi(argv[2]), tv);
	if (!c || c->err) {
		fprintf(stderr, "connect: %s\n", c ? c->errstr : "out of memory");
		return 1;
	}
	redisSetTimeout(c, tv);
	double t0 = now_s();
	redisReply *m = redisCommand(c, "GET {%s:%s}:m", argv[3], argv[4]);
	if (!m || m->type != REDIS_REPLY_STRING) {
		fprintf(stderr, "no manifest for %s\n", argv[4]);
		return 1;
	}
	cJSON *man = cJSON_ParseWithLength(m->str, m->len);
	freeReplyObject(m);
	const cJSON *f;
	uint64_t total = 0;
	char *buf = NULL;
	size_t cap = 0;
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(man, "files")) {
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(f, "k"));
		uint64_t n = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(f, "c"));
		uint64_t size = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(f, "n"));
		if (!id)
			return 1;
		if (size > cap) {
			free(buf);
			cap = size;
			if (!(buf = malloc(cap)))
				return 1;
		}
		uint64_t off = 0;
		for (uint64_t i = 0; i < n; i += 4) {
			uint64_t k = n - i < 4 ? n - i : 4;
			for (uint64_t j = 0; j < k; j++)
				redisAppendCommand(c, "GET {%s:%s}:c:%s:%llu", argv[3],
						   argv[4], id,
						   (unsigned long long)(i + j));
			for (uint64_t j = 0; j < k; j++) {
				redisReply *r;
				if (redisGetReply(c, (void **)&r) != REDIS_OK ||
				    r->type != REDIS_REPLY_STRING ||
				    off + r->len > size) {
					fprintf(stderr, "chunk %llu: bad reply\n",
						(unsigned long long)(i + j));
					return 1;
				}
				memcpy(buf + off, r->str, r->len);
				off += r->len;
				freeReplyObject(r);
			}
		}
		total += off;
	}
	printf("bytes=%llu s=%.6f\n", (unsigned long long)total, now_s() - t0);
	free(buf);
	cJSON_Delete(man);
	redisFree(c);
	return 0;
}
