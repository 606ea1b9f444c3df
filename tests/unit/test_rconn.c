/* test_rconn.c - the remote tier's URLs and hash slots (fs/rconn.c); the
 * connection itself is exercised against real Redis servers and a
 * cluster by tests/integration/remote.bats. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "rconn.h"

static int parse(const char *url, struct rconn_conf *c, char *err)
{
	memset(c, 0, sizeof(*c));
	return rconn_parse_url(url, c, err, 256);
}

static void t_urls(void)
{
	struct rconn_conf c;
	char err[256];
	CHECK(parse("redis://127.0.0.1:6379", &c, err) == 0);
	CHECK(c.kind == RCONN_TCP && c.nseeds == 1 && c.port[0] == 6379 &&
	      !strcmp(c.host[0], "127.0.0.1") && c.db == 0);
	CHECK(parse("redis://cache.example:7000/3", &c, err) == 0);
	CHECK(!strcmp(c.host[0], "cache.example") && c.port[0] == 7000 && c.db == 3);
	CHECK(parse("unix:/run/redis/r.sock", &c, err) == 0);
	CHECK(c.kind == RCONN_UNIX && !strcmp(c.path, "/run/redis/r.sock"));
	CHECK(parse("redis-cluster://a:7000,b:7001,10.0.0.3:7002", &c, err) == 0);
	CHECK(c.kind == RCONN_CLUSTER && c.nseeds == 3 && !strcmp(c.host[1], "b") &&
	      c.port[2] == 7002);
	/* and what is refused, saying why */
	CHECK(parse("redis://h:0", &c, err) == -EINVAL && strstr(err, "port"));
	CHECK(parse("redis://h:70000", &c, err) == -EINVAL && strstr(err, "70000"));
	CHECK(parse("redis://h", &c, err) == -EINVAL && strstr(err, "HOST:PORT"));
	CHECK(parse("redis://h:1/16", &c, err) == -EINVAL && strstr(err, "database"));
	CHECK(parse("redis://h:1/", &c, err) == -EINVAL);
	CHECK(parse("unix:relative.sock", &c, err) == -EINVAL && strstr(err, "absolute"));
	CHECK(parse("redis-cluster://", &c, err) == -EINVAL);
	CHECK(parse("redis-cluster://a:1,", &c, err) == 0 && c.nseeds == 1);
	CHECK(parse("http://h:1", &c, err) == -EINVAL && strstr(err, "http://h:1"));
}

/* Redis Cluster's key slots (values from the cluster specification and
 * CLUSTER KEYSLOT): CRC16 of the hash tag when there is one. */
static void t_slots(void)
{
	CHECK(rconn_slot("foo", 3) == 12182);
	CHECK(rconn_slot("bar", 3) == 5061);
	CHECK(rconn_slot("123456789", 9) == (0x31C3 & 16383));
	CHECK(rconn_slot("{user1000}.following", 20) ==
	      rconn_slot("{user1000}.followers", 20));
	CHECK(rconn_slot("{user1000}.following", 20) == rconn_slot("user1000", 8));
	CHECK(rconn_slot("foo{bar}{zap}", 13) == 5061); /* the first tag */
	CHECK(rconn_slot("{}foo", 5) != rconn_slot("", 0)); /* {} is no tag */
	CHECK(rconn_slot("{tcache:e}:m", 12) == rconn_slot("{tcache:e}:c:x:0", 16));
}

int main(void)
{
	RUN(t_urls);
	RUN(t_slots);
	return check_done();
}
