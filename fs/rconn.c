/*
 * rconn.c - the remote tier's connection: one Redis (TCP or a unix socket)
 * or a Redis Cluster, over blocking hiredis contexts.  See rconn.h.
 *
 * Layout:
 *
 *   struct rconn
 *     conf                  the parsed configuration (copied)
 *     nodes[0..nnodes)      host:port (unix: the path) -> context, backoff
 *                           one node unless a cluster, where the seeds
 *                           come first and CLUSTER SLOTS adds the rest
 *     slots[16384]          cluster: slot -> index in nodes (NO_NODE:
 *                           unknown, the command goes to any node and
 *                           is redirected)
 *
 * Bounded waits: a context is connected with timeout_ms and keeps it as
 * SO_RCVTIMEO/SO_SNDTIMEO, so every connect, write(2) and read(2) returns
 * within it (a big value that keeps flowing, slowly, may take longer in
 * all: it is the silence that is bounded).  A failed node (timeout,
 * refused, reset, EOF, protocol error, AUTH refused) loses its context
 * and may not reconnect before retry_at: 100 ms after the first failure,
 * doubling to 5 s, reset by a command that gets its reply.  Until then
 * its commands fail at once with -ENOTCONN.  A call that fails at once
 * (EOF, reset: not a timeout) on a connection that was open before it,
 * idle, is made once more on a new connection: the server closed it (a
 * restart), and the first fetch after one must not fail for that.
 * After a timeout a call gives
 * up (a map refresh does not try the next node), so one call waits on one
 * timeout at most, besides replies that did come.
 *
 * Redirects (cluster only): a MOVED updates the slot's node and asks for a
 * new map before the next call; an ASK is followed once with ASKING and
 * changes nothing.  In a pipeline only the commands redirected are sent
 * again: during a migration a slot's keys are split between two nodes, so
 * the others were answered by the right node already (sent again to the
 * target, a GET would find nothing and a SET would make the migration's
 * MIGRATE fail with BUSYKEY).  Five redirects at most, then -EIO.
 *
 * hiredis writes with write(2): the caller ignores SIGPIPE (the daemon
 * does, by fuse_set_signal_handlers), or a reset connection kills it.
 *
 * Locking: none; one thread uses an rconn at a time (rconn.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rconn.h"

#define NSLOTS 16384
#define NO_NODE 0xffff
#define MAX_REDIRECTS 5
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct rnode {
	char host[256];      /* RCONN_UNIX: the socket's path */
	int port;
	redisContext *ctx;   /* NULL: not connected */
	int64_t retry_at;    /* CLOCK_MONOTONIC ms: no connect before */
	int backoff_ms;      /* the last wait; 0 after a success */
};

struct rconn {
	struct rconn_conf conf;
	struct rnode *nodes;
	int nnodes, cap;
	int map_stale;       /* cluster: refresh slots before the next call */
	int have_map;        /* cluster: slots came from a CLUSTER SLOTS */
	int connected;       /* the last command reached Redis */
	uint16_t slots[NSLOTS];
};

/* ---- URL and password ---- */

/* -EINVAL, with the message in err */
#define ERRMSG(...) (snprintf(err, errlen, __VA_ARGS__), -EINVAL)

/* The decimal number of @n bytes at @s, or -1 if not one (or too long). */
static long parse_num(const char *s, size_t n)
{
	long v = 0;
	if (n == 0 || n > 9)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* "HOST:PORT" (@n bytes at @s) into @host and @port. */
static int parse_hostport(const char *s, size_t n, char *host, int *port,
			  const char *url, char *err, size_t errlen)
{
	const char *colon = memrchr(s, ':', n);
	size_t hl = colon ? (size_t)(colon - s) : n;
	const char *p = colon ? colon + 1 : s + n;
	size_t pl = (size_t)(s + n - p);
	long v;

	if (hl == 0)
		return ERRMSG("remote: no host in %s", url);
	if (!colon || pl == 0)
		return ERRMSG("remote: no port in %s (HOST:PORT)", url);
	if (memchr(s, ':', hl))
		return ERRMSG("remote: bad host in %s (IPv6 addresses are "
			       "not supported)", url);
	if (hl > 255)
		return ERRMSG("remote: host name longer than 255 bytes in %s",
			       url);
	v = parse_num(p, pl);
	if (v < 0 && strspn(p, "0123456789") < pl)
		return ERRMSG("remote: bad port \"%.*s\" in %s", (int)pl, p,
			       url);
	if (v < 1 || v > 65535)
		return ERRMSG("remote: port %.*s out of range in %s", (int)pl,
			       p, url);
	memcpy(host, s, hl);
	host[hl] = '\0';
	*port = (int)v;
	return 0;
}

/* A db number 0..15 of @n bytes at @s. */
static int parse_db(const char *s, size_t n, int *db, const char *url,
		    char *err, size_t errlen)
{
	long v = parse_num(s, n);
	if (n == 0)
		return ERRMSG("remote: no db number in %s", url);
	if (v < 0 && strspn(s, "0123456789") < n)
		return ERRMSG("remote: bad db \"%.*s\" in %s", (int)n, s, url);
	if (v < 0 || v > 15)
		return ERRMSG("remote: db %.*s out of range (0..15) in %s",
			       (int)n, s, url);
	*db = (int)v;
	return 0;
}

static int parse_unix(const char *url, struct rconn_conf *c, char *err,
		      size_t errlen)
{
	const char *path = url + strlen("unix:");
	const char *q = strchr(path, '?');
	size_t n = q ? (size_t)(q - path) : strlen(path);

	if (n == 0 || path[0] != '/')
		return ERRMSG("remote: the socket path must be absolute in %s",
			       url);
	if (n >= sizeof(c->path))
		return ERRMSG("remote: socket path longer than %zu bytes in %s",
			       sizeof(c->path) - 1, url);
	if (q && strncmp(q, "?db=", 4) != 0)
		return ERRMSG("remote: unknown option in %s (only ?db=N)", url);
	if (q && parse_db(q + 4, strlen(q + 4), &c->db, url, err, errlen))
		return -EINVAL;
	memcpy(c->path, path, n);
	c->path[n] = '\0';
	c->kind = RCONN_UNIX;
	c->nseeds = 0;
	return 0;
}

static int parse_tcp(const char *url, struct rconn_conf *c, char *err,
		     size_t errlen)
{
	const char *s = url + strlen("redis://");
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);

	if (parse_hostport(s, n, c->host[0], &c->port[0], url, err, errlen))
		return -EINVAL;
	if (slash && parse_db(slash + 1, strlen(slash + 1), &c->db, url, err,
			      errlen))
		return -EINVAL;
	c->kind = RCONN_TCP;
	c->nseeds = 1;
	return 0;
}

static int parse_cluster(const char *url, struct rconn_conf *c, char *err,
			 size_t errlen)
{
	const char *s = url + strlen("redis-cluster://");

	if (strchr(s, '/'))
		return ERRMSG("remote: a cluster has only db 0, in %s", url);
	c->nseeds = 0;
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		if (c->nseeds == RCONN_MAX_SEEDS)
			return ERRMSG("remote: more than %d seeds in %s",
				       RCONN_MAX_SEEDS, url);
		if (parse_hostport(s, n, c->host[c->nseeds], &c->port[c->nseeds],
				   url, err, errlen))
			return -EINVAL;
		c->nseeds++;
		if (!comma)
			break;
		s = comma + 1;
	}
	c->kind = RCONN_CLUSTER;
	c->db = 0;
	return 0;
}

int rconn_parse_url(const char *url, struct rconn_conf *c, char *err,
		    size_t errlen)
{
	struct rconn_conf t = *c; /* @c untouched on failure */
	int rc;

	t.db = 0;
	if (!url || !*url)
		return ERRMSG("remote: empty URL");
	if (strchr(url, '@'))  /* the message does not echo it: a password */
		return ERRMSG("remote: no credentials in the URL, please: "
			       "use remote_password_file");
	if (strncmp(url, "redis://", 8) == 0)
		rc = parse_tcp(url, &t, err, errlen);
	else if (strncmp(url, "redis-cluster://", 16) == 0)
		rc = parse_cluster(url, &t, err, errlen);
	else if (strncmp(url, "unix:", 5) == 0)
		rc = parse_unix(url, &t, err, errlen);
	else
		return ERRMSG("remote: unknown scheme in %s (redis://, unix: or "
			       "redis-cluster://)", url);
	if (rc == 0)
		*c = t;
	return rc;
}

int rconn_read_password(const char *path, struct rconn_conf *c, char *err,
			size_t errlen)
{
	char buf[sizeof(c->password) + 1];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		int e = errno;
		snprintf(err, errlen, "remote: cannot read password file %s: %s",
			 path, strerror(e));
		return -e;
	}
	if (!fgets(buf, sizeof(buf), f)) {
		int e = ferror(f) ? errno : 0;
		fclose(f);
		if (e) {
			snprintf(err, errlen, "remote: cannot read password "
				 "file %s: %s", path, strerror(e));
			return -e;
		}
		buf[0] = '\0';
	} else {
		fclose(f);
	}
	n = strcspn(buf, "\n");
	if (n == sizeof(buf) - 1)
		return ERRMSG("remote: the password in %s is longer than %zu "
			       "bytes", path, sizeof(c->password) - 1);
	if (n > 0 && buf[n - 1] == '\r')  /* a file written on Windows */
		n--;
	if (n == 0)
		return ERRMSG("remote: the password file %s is empty", path);
	memcpy(c->password, buf, n);
	c->password[n] = '\0';
	return 0;
}

/* ---- slots ---- */

/* CRC16-CCITT (XMODEM), as the Redis Cluster spec: poly 0x1021, init 0. */
static uint16_t crc16(const unsigned char *p, size_t n)
{
	uint16_t crc = 0;
	while (n--) {
		crc ^= (uint16_t)(*p++ << 8);
		for (int i = 0; i < 8; i++)
			crc = crc & 0x8000 ? (uint16_t)(crc << 1) ^ 0x1021
					   : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned rconn_slot(const char *key, size_t len)
{
	const char *lb = memchr(key, '{', len), *rb;
	if (lb) {
		rb = memchr(lb + 1, '}', len - (size_t)(lb - key) - 1);
		if (rb && rb > lb + 1)  /* "{}" is no tag: the whole key */
			return crc16((const unsigned char *)lb + 1,
				     (size_t)(rb - lb - 1)) & (NSLOTS - 1);
	}
	return crc16((const unsigned char *)key, len) & (NSLOTS - 1);
}

/* ---- nodes ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The index of node @host:@port, added if new; -ENOMEM. */
static int node_get(struct rconn *r, const char *host, int port)
{
	for (int i = 0; i < r->nnodes; i++)
		if (r->nodes[i].port == port && !strcmp(r->nodes[i].host, host))
			return i;
	if (r->nnodes == NO_NODE)
		return -ENOMEM;
	if (r->nnodes == r->cap) {
		int cap = r->cap ? 2 * r->cap : 4;
		struct rnode *n = realloc(r->nodes, (size_t)cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		r->nodes = n;
		r->cap = cap;
	}
	struct rnode *nd = &r->nodes[r->nnodes];
	memset(nd, 0, sizeof(*nd));
	snprintf(nd->host, sizeof(nd->host), "%s", host);
	nd->port = port;
	return r->nnodes++;
}

/* The negative errno of the failure @c->err (errno @e just after it). */
static int ctx_errno(const redisContext *c, int e)
{
	switch (c->err) {
	case REDIS_ERR_IO:
		if (e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT ||
		    e == EINPROGRESS)
			return -ETIMEDOUT;  /* SO_RCVTIMEO/SNDTIMEO, connect */
		if (e == ECONNREFUSED || e == ENOENT)
			return -ECONNREFUSED;
		return -ENOTCONN;
	case REDIS_ERR_EOF:
		return -ENOTCONN;
	case REDIS_ERR_OOM:
		return -ENOMEM;
	case REDIS_ERR_PROTOCOL:
		return -EIO;
	default:  /* OTHER: a name that does not resolve, no socket */
		return -ENOTCONN;
	}
}

/* Node @i failed: drop its context, back off. */
static void node_fail(struct rconn *r, int i)
{
	struct rnode *nd = &r->nodes[i];
	redisFree(nd->ctx);
	nd->ctx = NULL;
	nd->backoff_ms = nd->backoff_ms ? 2 * nd->backoff_ms : BACKOFF_MIN_MS;
	if (nd->backoff_ms > BACKOFF_MAX_MS)
		nd->backoff_ms = BACKOFF_MAX_MS;
	nd->retry_at = now_ms() + nd->backoff_ms;
	r->connected = 0;
	if (r->conf.kind == RCONN_CLUSTER)
		r->map_stale = 1;  /* it may have failed over */
}

/* One command on a fresh context (AUTH, SELECT): 0, @refused if Redis
 * answers with an error, or the I/O error. */
static int setup_cmd(redisContext *c, int argc, const char **argv,
		     int refused)
{
	redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
	int err;
	if (!rep)
		return ctx_errno(c, errno);
	err = rep->type == REDIS_REPLY_ERROR ? refused : 0;
	freeReplyObject(rep);
	return err;
}

/* Connect node @i unless connected: 0, -ENOTCONN in backoff, or the
 * failure (the node then backs off). */
static int node_connect(struct rconn *r, int i)
{
	struct rnode *nd = &r->nodes[i];
	const struct rconn_conf *c = &r->conf;
	struct timeval tv = { c->timeout_ms / 1000,
			      (c->timeout_ms % 1000) * 1000 };
	char db[4];
	int err = 0;

	if (nd->ctx)
		return 0;
	if (now_ms() < nd->retry_at)
		return -ENOTCONN;
	if (c->kind == RCONN_UNIX)
		nd->ctx = redisConnectUnixWithTimeout(nd->host, tv);
	else
		nd->ctx = redisConnectWithTimeout(nd->host, nd->port, tv);
	if (!nd->ctx)
		return -ENOMEM;
	if (nd->ctx->err || redisSetTimeout(nd->ctx, tv) != REDIS_OK)
		err = ctx_errno(nd->ctx, errno);
	if (!err && c->password[0])
		err = setup_cmd(nd->ctx, 2,
				(const char *[]){ "AUTH", c->password },
				-EACCES);
	if (!err && c->kind != RCONN_CLUSTER && c->db) {
		snprintf(db, sizeof(db), "%d", c->db);
		err = setup_cmd(nd->ctx, 2, (const char *[]){ "SELECT", db },
				-EIO);
	}
	if (err)
		node_fail(r, i);
	return err;
}

/* ---- cluster map ---- */

/* One range of CLUSTER SLOTS' reply, [start, end, [host, port, id],
 * replicas...], into its parts (*@host NULL: not known).  0 or -EIO. */
static int slot_range(const redisReply *e, int *lo, int *hi,
		      const char **host, int *port)
{
	const redisReply *m;
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
		return -EIO;
	m = e->element[2];
	if (e->element[0]->type != REDIS_REPLY_INTEGER ||
	    e->element[1]->type != REDIS_REPLY_INTEGER ||
	    m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
	    (m->element[0]->type != REDIS_REPLY_STRING &&
	     m->element[0]->type != REDIS_REPLY_NIL) ||
	    m->element[1]->type != REDIS_REPLY_INTEGER)
		return -EIO;
	if (e->element[0]->integer < 0 || e->element[1]->integer >= NSLOTS ||
	    e->element[0]->integer > e->element[1]->integer ||
	    m->element[1]->integer < 1 || m->element[1]->integer > 65535)
		return -EIO;
	*lo = (int)e->element[0]->integer;
	*hi = (int)e->element[1]->integer;
	*host = m->element[0]->type == REDIS_REPLY_STRING
		? m->element[0]->str : NULL;
	*port = (int)m->element[1]->integer;
	return 0;
}

/* Load CLUSTER SLOTS' reply @rep, got from node @from; a reply that is
 * not one leaves the map as it was. */
static int map_load(struct rconn *r, int from, const redisReply *rep)
{
	const char *h;
	int lo, hi, port;

	if (rep->type != REDIS_REPLY_ARRAY)
		return -EIO;
	for (size_t k = 0; k < rep->elements; k++)
		if (slot_range(rep->element[k], &lo, &hi, &h, &port))
			return -EIO;
	for (int s = 0; s < NSLOTS; s++)
		r->slots[s] = NO_NODE;
	for (size_t k = 0; k < rep->elements; k++) {
		char host[256];
		int i;
		slot_range(rep->element[k], &lo, &hi, &h, &port);
		/* nil, "" or "?": the node does not know its address (nil:
		 * by design, behind a load balancer); use the one we asked */
		snprintf(host, sizeof(host), "%s",
			 h && *h && strcmp(h, "?") ? h : r->nodes[from].host);
		i = node_get(r, host, port);
		if (i < 0) {
			r->have_map = 0;
			return i;
		}
		for (int s = lo; s <= hi; s++)
			r->slots[s] = (uint16_t)i;
	}
	r->have_map = 1;
	return 0;
}

/* Ask the known nodes for CLUSTER SLOTS, the connected ones first (a
 * stopped seed would cost a timeout).  A timeout ends the search: one
 * timeout per call. */
static int map_refresh(struct rconn *r)
{
	static const char *argv[] = { "CLUSTER", "SLOTS" };
	int err = -ENOTCONN, n = r->nnodes;

	for (int k = 0; k < 2 * n; k++) {
		int i = k % n;
		redisReply *rep;
		if ((k < n) != (r->nodes[i].ctx != NULL))
			continue;
		err = node_connect(r, i);
		if (!err) {
			rep = redisCommandArgv(r->nodes[i].ctx, 2, argv, NULL);
			if (!rep) {
				err = ctx_errno(r->nodes[i].ctx, errno);
				node_fail(r, i);
			} else {
				err = map_load(r, i, rep);
				freeReplyObject(rep);
			}
		}
		if (!err) {
			r->map_stale = 0;
			return 0;
		}
		if (err == -ETIMEDOUT || err == -ENOMEM)
			return err;
	}
	return err;
}

/* Some node to send a keyless command to: a connected one if any. */
static int any_node(const struct rconn *r)
{
	int64_t now = now_ms();
	for (int i = 0; i < r->nnodes; i++)
		if (r->nodes[i].ctx)
			return i;
	for (int i = 0; i < r->nnodes; i++)
		if (now >= r->nodes[i].retry_at)
			return i;
	return 0;
}

/* The node for @key (NULL: any). */
static int route(struct rconn *r, const char *key, int *node)
{
	int i = NO_NODE;

	if (r->conf.kind != RCONN_CLUSTER) {
		*node = 0;
		return 0;
	}
	if (r->map_stale) {
		int err = map_refresh(r);
		/* an old map is better than none: its nodes redirect us */
		if (err && (!r->have_map || err == -ETIMEDOUT))
			return err;
	}
	if (key)
		i = r->slots[rconn_slot(key, strlen(key))];
	*node = i == NO_NODE ? any_node(r) : i;
	return 0;
}

/* Is @rep a "MOVED slot host:port" or "ASK slot host:port"?  Then 1, with
 * *@ask, *@slot and the node's index in *@node (-ENOMEM there if none). */
static int redirect_parse(struct rconn *r, int from, const redisReply *rep,
			  int *ask, int *slot, int *node)
{
	const char *p, *colon;
	char host[256];
	char *end;
	long s, port;

	if (!rep || rep->type != REDIS_REPLY_ERROR)
		return 0;
	if (strncmp(rep->str, "MOVED ", 6) == 0)
		*ask = 0, p = rep->str + 6;
	else if (strncmp(rep->str, "ASK ", 4) == 0)
		*ask = 1, p = rep->str + 4;
	else
		return 0;
	s = strtol(p, &end, 10);
	colon = strrchr(end, ':');
	if (end == p || *end != ' ' || s < 0 || s >= NSLOTS || !colon)
		return 0;  /* not a redirect we understand: the caller's */
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return 0;
	/* "MOVED 3999 :6380" or "?:6380": the replier's host */
	if (colon == end + 1 || (colon == end + 2 && end[1] == '?'))
		snprintf(host, sizeof(host), "%s", r->nodes[from].host);
	else
		snprintf(host, sizeof(host), "%.*s", (int)(colon - end - 1),
			 end + 1);
	*slot = (int)s;
	*node = node_get(r, host, (int)port);
	return 1;
}

/* ---- commands ---- */

struct rconn *rconn_new(const struct rconn_conf *c)
{
	struct rconn *r = calloc(1, sizeof(*r));
	int err = 0;

	assert(c->timeout_ms > 0);
	if (!r)
		return NULL;
	r->conf = *c;
	memset(r->slots, 0xff, sizeof(r->slots));  /* NO_NODE */
	if (c->kind == RCONN_UNIX)
		err = node_get(r, c->path, 0);
	else
		for (int i = 0; i < c->nseeds && err >= 0; i++)
			err = node_get(r, c->host[i], c->port[i]);
	r->map_stale = c->kind == RCONN_CLUSTER;
	if (err < 0 || r->nnodes == 0) {
		rconn_free(r);
		return NULL;
	}
	return r;
}

void rconn_free(struct rconn *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nnodes; i++)
		redisFree(r->nodes[i].ctx);
	free(r->nodes);
	free(r);
}

int rconn_connected(const struct rconn *r)
{
	return r->connected;
}

/*
 * Send the commands whose outs[] is NULL to node @i (each after an ASKING
 * if @ask), then read their replies into outs[].  0, or the failure (the
 * node failed; outs[] may hold some replies).
 */
static int node_round(struct rconn *r, int i, int ask, int n,
		      const int *argcs, const char **const *argvs,
		      const size_t *const *argvlens, redisReply **outs)
{
	static const char *asking[] = { "ASKING" };
	redisContext *c;
	int err = node_connect(r, i);

	if (err)
		return err;
	c = r->nodes[i].ctx;
	for (int k = 0; k < n; k++) {
		if (outs[k])
			continue;
		if (ask && redisAppendCommandArgv(c, 1, asking, NULL) != REDIS_OK)
			goto fail;
		if (redisAppendCommandArgv(c, argcs[k], argvs[k],
					   argvlens ? argvlens[k] : NULL) !=
		    REDIS_OK)
			goto fail;
	}
	for (int k = 0; k < n; k++) {
		void *rep;
		if (outs[k])
			continue;
		if (ask) {  /* +OK */
			if (redisGetReply(c, &rep) != REDIS_OK)
				goto fail;
			freeReplyObject(rep);
		}
		if (redisGetReply(c, &rep) != REDIS_OK)
			goto fail;
		outs[k] = rep;
	}
	r->nodes[i].backoff_ms = 0;
	r->connected = 1;
	return 0;
fail:
	err = ctx_errno(c, errno);
	node_fail(r, i);
	return err;
}

/* The failure a reply of Redis stands for, or 0. */
static int reply_errno(const redisReply *rep)
{
	if (rep->type != REDIS_REPLY_ERROR)
		return 0;
	if (strncmp(rep->str, "OOM", 3) == 0)
		return -ENOMEM;
	if (strncmp(rep->str, "NOAUTH", 6) == 0 ||
	    strncmp(rep->str, "WRONGPASS", 9) == 0)
		return -EACCES;
	return 0;
}

int rconn_pipeline(struct rconn *r, const char *key, int n, const int *argcs,
		   const char **const *argvs, const size_t *const *argvlens,
		   redisReply **outs)
{
	int i, ask = 0, err;

	for (int k = 0; k < n; k++)
		outs[k] = NULL;
	if (n <= 0)
		return 0;
	err = route(r, key, &i);
	for (int hops = 0, again = 1; !err; hops++) {
		int redirected = 0, to = -1, to_ask = 0;
		int idle = r->nodes[i].ctx != NULL;
		int backoff = r->nodes[i].backoff_ms;

		err = node_round(r, i, ask, n, argcs, argvs, argvlens, outs);
		if (err && idle && again && err != -ETIMEDOUT &&
		    err != -ENOMEM) {
			/* a connection the server closed while it was idle
			 * (a restart): once more, on a new one, at once (one
			 * failure as far as the backoff goes) */
			again = 0;
			r->nodes[i].retry_at = 0;
			r->nodes[i].backoff_ms = backoff;
			err = node_round(r, i, ask, n, argcs, argvs, argvlens,
					 outs);
		}
		if (err || r->conf.kind != RCONN_CLUSTER)
			break;
		for (int k = 0; k < n; k++) {
			int a, slot, node;
			if (!redirect_parse(r, i, outs[k], &a, &slot, &node))
				continue;
			if (!redirected++) {
				to = node, to_ask = a;
				if (!a && node >= 0) {
					r->slots[slot] = (uint16_t)node;
					r->map_stale = 1;
				}
			}
			freeReplyObject(outs[k]);
			outs[k] = NULL;  /* to send again */
		}
		if (!redirected)
			break;
		if (to < 0)
			err = to;
		else if (hops == MAX_REDIRECTS)
			err = -EIO;
		i = to, ask = to_ask;
	}
	for (int k = 0; k < n && !err; k++) {
		err = reply_errno(outs[k]);
		if (err == -EACCES)  /* back off, as a refused AUTH */
			node_fail(r, i);
	}
	if (err)
		for (int k = 0; k < n; k++) {
			freeReplyObject(outs[k]);
			outs[k] = NULL;
		}
	return err;
}

int rconn_cmd(struct rconn *r, const char *key, int argc, const char **argv,
	      const size_t *argvlen, redisReply **out)
{
	redisReply *rep;
	int err = rconn_pipeline(r, key, 1, &argc, &argv, &argvlen, &rep);
	if (!err)
		*out = rep;
	return err;
}
