/*
 * rconn.c - a connection to the remote tier: one Redis (TCP or a unix
 * socket) or a Redis Cluster, over hiredis's blocking API.  See rconn.h.
 *
 * A struct node is one server: its hiredis context (NULL while not
 * connected), its backoff, its address.  A single server is one node; a
 * cluster keeps a node per master it has heard of and a table of which
 * node serves each of the 16384 slots (from CLUSTER SLOTS, asked again
 * after a MOVED or when the node of a slot cannot be reached).
 *
 * Waits: hiredis's connect timeout and its socket timeout (redisSetTimeout)
 * are both the configured timeout, so a connect, each read and each write
 * wait at most that long.  Any failure frees the context and starts the
 * node's backoff; while it runs, commands to the node fail at once with
 * -ENOTCONN.  A connection that was idle may have been closed by the
 * server (a restart): a command that fails on it at once (EOF, reset,
 * broken pipe: not a timeout) is tried once more on a new connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "rconn.h"

#define NSLOTS 16384
#define MAX_NODES 64
#define MAX_REDIRECTS 5
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct node {
	char host[256];
	int port;                /* 0: the unix socket of the conf */
	redisContext *c;
	int64_t retry_at;        /* no connect before (CLOCK_MONOTONIC ms) */
	int backoff_ms;
};

struct rconn {
	struct rconn_conf conf;
	struct node nodes[MAX_NODES];
	int nnodes;
	short *slots;            /* cluster: slot -> node index, -1 unknown */
	int up;
};

static int64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration --------------------------------------------------------- */

/* "HOST:PORT" at @s (up to @end) into @host, @port. */
static int host_port(const char *s, size_t n, char *host, size_t hsize,
		     int *port, const char *url, char *err, size_t errlen)
{
	const char *colon = memrchr(s, ':', n);
	char pbuf[16], *e;
	if (!colon || colon == s || (size_t)(colon - s) >= hsize) {
		snprintf(err, errlen, "remote: expected HOST:PORT in '%s'", url);
		return -EINVAL;
	}
	size_t pl = n - (size_t)(colon + 1 - s);
	if (!pl || pl >= sizeof(pbuf)) {
		snprintf(err, errlen, "remote: no port in '%s'", url);
		return -EINVAL;
	}
	memcpy(pbuf, colon + 1, pl);
	pbuf[pl] = 0;
	long p = strtol(pbuf, &e, 10);
	if (*e || p < 1 || p > 65535) {
		snprintf(err, errlen, "remote: port '%s' out of range 1-65535 in "
			 "'%s'", pbuf, url);
		return -EINVAL;
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	*port = (int)p;
	return 0;
}

int rconn_parse_url(const char *url, struct rconn_conf *c, char *err,
		    size_t errlen)
{
	memset(c->host, 0, sizeof(c->host));
	c->nseeds = 0;
	c->db = 0;
	c->path[0] = 0;
	if (!strncmp(url, "unix:", 5)) {
		const char *p = url + 5;
		if (*p != '/' || strlen(p) >= sizeof(c->path)) {
			snprintf(err, errlen, "remote: '%s': unix: needs an "
				 "absolute socket path (under %zu bytes)", url,
				 sizeof(c->path));
			return -EINVAL;
		}
		c->kind = RCONN_UNIX;
		snprintf(c->path, sizeof(c->path), "%s", p);
		return 0;
	}
	if (!strncmp(url, "redis://", 8)) {
		const char *s = url + 8, *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		c->kind = RCONN_TCP;
		c->nseeds = 1;
		int r = host_port(s, n, c->host[0], sizeof(c->host[0]),
				  &c->port[0], url, err, errlen);
		if (r)
			return r;
		if (slash) {
			char *e;
			long db = strtol(slash + 1, &e, 10);
			if (!slash[1] || *e || db < 0 || db > 15) {
				snprintf(err, errlen, "remote: database '%s' not "
					 "in 0-15 in '%s'", slash + 1, url);
				return -EINVAL;
			}
			c->db = (int)db;
		}
		return 0;
	}
	if (!strncmp(url, "redis-cluster://", 16)) {
		const char *s = url + 16;
		c->kind = RCONN_CLUSTER;
		while (*s) {
			const char *comma = strchr(s, ',');
			size_t n = comma ? (size_t)(comma - s) : strlen(s);
			if (c->nseeds == RCONN_MAX_SEEDS) {
				snprintf(err, errlen, "remote: more than %d "
					 "seeds in '%s'", RCONN_MAX_SEEDS, url);
				return -EINVAL;
			}
			int r = host_port(s, n, c->host[c->nseeds],
					  sizeof(c->host[0]), &c->port[c->nseeds],
					  url, err, errlen);
			if (r)
				return r;
			c->nseeds++;
			s += n + (comma ? 1 : 0);
		}
		if (!c->nseeds) {
			snprintf(err, errlen, "remote: no node in '%s'", url);
			return -EINVAL;
		}
		return 0;
	}
	snprintf(err, errlen, "remote: '%s' is not redis://HOST:PORT[/DB], "
		 "unix:/PATH or redis-cluster://HOST:PORT[,HOST:PORT...]", url);
	return -EINVAL;
}

int rconn_read_password(const char *path, struct rconn_conf *c, char *err,
			size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "remote_password_file %s: %s", path,
			 strerror(e));
		return -e;
	}
	char *line = fgets(c->password, sizeof(c->password), f);
	fclose(f);
	if (line)
		c->password[strcspn(c->password, "\r\n")] = 0;
	if (!line || !c->password[0]) {
		snprintf(err, errlen, "remote_password_file %s: empty (the "
			 "password is its first line)", path);
		c->password[0] = 0;
		return -EINVAL;
	}
	return 0;
}

/* ---- nodes --------------------------------------------------------------- */

struct rconn *rconn_new(const struct rconn_conf *c)
{
	struct rconn *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->conf = *c;
	if (c->kind == RCONN_UNIX) {
		r->nnodes = 1;
	} else {
		for (int i = 0; i < c->nseeds && i < MAX_NODES; i++) {
			snprintf(r->nodes[i].host, sizeof(r->nodes[i].host), "%s",
				 c->host[i]);
			r->nodes[i].port = c->port[i];
		}
		r->nnodes = c->nseeds;
	}
	if (c->kind == RCONN_CLUSTER) {
		if (!(r->slots = malloc(NSLOTS * sizeof(*r->slots)))) {
			free(r);
			return NULL;
		}
		for (int i = 0; i < NSLOTS; i++)
			r->slots[i] = -1;
	}
	return r;
}

static void node_close(struct node *n)
{
	if (n->c)
		redisFree(n->c);
	n->c = NULL;
}

void rconn_free(struct rconn *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nnodes; i++)
		node_close(&r->nodes[i]);
	free(r->slots);
	free(r);
}

int rconn_connected(const struct rconn *r)
{
	return r->up;
}

/* @n failed with @err: closed, and not tried again before its backoff. */
static int node_fail(struct rconn *r, struct node *n, int err)
{
	node_close(n);
	n->backoff_ms = n->backoff_ms ? n->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (n->backoff_ms > BACKOFF_MAX_MS)
		n->backoff_ms = BACKOFF_MAX_MS;
	n->retry_at = ms_now() + n->backoff_ms;
	r->up = 0;
	return err;
}

/* The errno of a failed call on @c: -ETIMEDOUT for a timeout. */
static int ctx_err(const redisContext *c)
{
	if (c->err == REDIS_ERR_IO)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == ETIMEDOUT
			       ? -ETIMEDOUT
			       : errno == ECONNREFUSED ? -ECONNREFUSED : -EIO;
	if (c->err == REDIS_ERR_EOF)
		return -ECONNRESET;
	if (c->err == REDIS_ERR_OOM)
		return -ENOMEM;
	return -EIO;
}

/* A command on a fresh connection, during its setup: 0, or an error
 * (-EACCES for a refused AUTH). */
static int setup_cmd(redisContext *c, int argc, const char **argv)
{
	redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
	if (!rep)
		return ctx_err(c);
	int err = 0;
	if (rep->type == REDIS_REPLY_ERROR)
		err = !strncasecmp(rep->str, "WRONGPASS", 9) ||
		      !strncasecmp(rep->str, "ERR invalid password", 20) ||
		      !strncasecmp(rep->str, "NOAUTH", 6) ||
		      strstr(rep->str, "AUTH")
			      ? -EACCES : -EIO;
	freeReplyObject(rep);
	return err;
}

/* Connect @n if it is not (unless in backoff): 0 or an error. */
static int node_connect(struct rconn *r, struct node *n)
{
	if (n->c)
		return 0;
	if (ms_now() < n->retry_at)
		return -ENOTCONN;
	int ms = r->conf.timeout_ms > 0 ? r->conf.timeout_ms : 500;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	n->c = r->conf.kind == RCONN_UNIX
		       ? redisConnectUnixWithTimeout(r->conf.path, tv)
		       : redisConnectWithTimeout(n->host, n->port, tv);
	if (!n->c)
		return node_fail(r, n, -ENOMEM);
	if (n->c->err)
		return node_fail(r, n, ctx_err(n->c));
	int err = redisSetTimeout(n->c, tv) == REDIS_OK ? 0 : -EIO;
	if (!err && r->conf.password[0]) {
		const char *argv[2] = { "AUTH", r->conf.password };
		err = setup_cmd(n->c, 2, argv);
	}
	if (!err && r->conf.db && r->conf.kind != RCONN_CLUSTER) {
		char db[8];
		snprintf(db, sizeof(db), "%d", r->conf.db);
		const char *argv[2] = { "SELECT", db };
		err = setup_cmd(n->c, 2, argv);
	}
	return err ? node_fail(r, n, err) : 0;
}

static void node_ok(struct rconn *r, struct node *n)
{
	n->backoff_ms = 0;
	n->retry_at = 0;
	r->up = 1;
}

/* The index of node HOST:PORT, added if new; -1 when the table is full. */
static int node_at(struct rconn *r, const char *host, int port)
{
	for (int i = 0; i < r->nnodes; i++)
		if (r->nodes[i].port == port && !strcmp(r->nodes[i].host, host))
			return i;
	if (r->nnodes == MAX_NODES)
		return -1;
	struct node *n = &r->nodes[r->nnodes];
	memset(n, 0, sizeof(*n));
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	return r->nnodes++;
}

/* ---- cluster ------------------------------------------------------------- */

static uint16_t crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)((uint8_t)buf[i] << 8);
		for (int k = 0; k < 8; k++)
			crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021)
					   : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned rconn_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);
	if (open) {
		const char *close = memchr(open + 1, '}',
					   len - (size_t)(open + 1 - key));
		if (close && close > open + 1) {
			key = open + 1;
			len = (size_t)(close - key);
		}
	}
	return crc16(key, len) & (NSLOTS - 1);
}

/* Ask node @i for CLUSTER SLOTS and fill the table: 0 or an error. */
static int slots_from(struct rconn *r, int i)
{
	struct node *n = &r->nodes[i];
	int err = node_connect(r, n);
	if (err)
		return err;
	redisReply *rep = redisCommand(n->c, "CLUSTER SLOTS");
	if (!rep)
		return node_fail(r, n, ctx_err(n->c));
	node_ok(r, n);
	err = rep->type == REDIS_REPLY_ARRAY ? 0 : -EIO;
	for (size_t k = 0; !err && k < rep->elements; k++) {
		redisReply *e = rep->element[k];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[2]->type != REDIS_REPLY_ARRAY ||
		    e->element[2]->elements < 2)
			continue;
		long long lo = e->element[0]->integer, hi = e->element[1]->integer;
		redisReply *m = e->element[2];
		if (m->element[0]->type != REDIS_REPLY_STRING || lo < 0 ||
		    hi >= NSLOTS || lo > hi)
			continue;
		/* an empty host means the node we asked */
		const char *host = m->element[0]->len ? m->element[0]->str
						      : n->host;
		int j = node_at(r, host, (int)m->element[1]->integer);
		if (j < 0)
			continue;
		for (long long s = lo; s <= hi; s++)
			r->slots[s] = (short)j;
	}
	freeReplyObject(rep);
	return err;
}

/* Refresh the slot map from any node that answers. */
static int refresh_slots(struct rconn *r)
{
	int err = -ENOTCONN;
	for (int i = 0; i < r->nnodes; i++)
		if (!(err = slots_from(r, i)))
			return 0;
	return err;
}

/* The node for @key: 0 and *@out, or an error. */
static int node_for(struct rconn *r, const char *key, int *out)
{
	if (r->conf.kind != RCONN_CLUSTER || !key) {
		*out = 0;
		if (r->conf.kind != RCONN_CLUSTER)
			return 0;
		/* any node of the cluster */
		for (int i = 0; i < r->nnodes; i++)
			if (r->nodes[i].c || ms_now() >= r->nodes[i].retry_at) {
				*out = i;
				return 0;
			}
		return -ENOTCONN;
	}
	unsigned s = rconn_slot(key, strlen(key));
	if (r->slots[s] < 0) {
		int err = refresh_slots(r);
		if (err)
			return err;
		if (r->slots[s] < 0)
			return -EIO; /* a slot no master serves */
	}
	*out = r->slots[s];
	return 0;
}

/* Is @rep a MOVED or ASK redirect?  Into @host, @port, *@ask. */
static int redirect(const redisReply *rep, char *host, size_t hsize, int *port,
		    int *ask)
{
	if (rep->type != REDIS_REPLY_ERROR)
		return 0;
	int moved = !strncmp(rep->str, "MOVED ", 6);
	*ask = !strncmp(rep->str, "ASK ", 4);
	if (!moved && !*ask)
		return 0;
	const char *sp = strchr(rep->str + (moved ? 6 : 4), ' ');
	if (!sp)
		return 0;
	const char *colon = strrchr(sp + 1, ':');
	if (!colon || (size_t)(colon - sp - 1) >= hsize)
		return 0;
	memcpy(host, sp + 1, (size_t)(colon - sp - 1));
	host[colon - sp - 1] = 0;
	*port = atoi(colon + 1);
	return *port > 0;
}

/* ---- commands ------------------------------------------------------------ */

/* Send @n commands (each preceded by ASKING when @asking) to node @i and
 * read the replies into @outs (the ASKING ones freed): 0 or an error
 * (no reply left then). */
static int send_all(struct rconn *r, int i, int n, const int *argcs,
		    const char **const *argvs, const size_t *const *argvlens,
		    redisReply **outs, int asking)
{
	for (int tries = 0;; tries++) {
		struct node *nd = &r->nodes[i];
		int was_open = nd->c != NULL;
		int err = node_connect(r, nd);
		if (err)
			return err;
		for (int k = 0; k < n; k++) {
			if (asking)
				redisAppendCommand(nd->c, "ASKING");
			redisAppendCommandArgv(nd->c, argcs[k], (const char **)argvs[k],
					       argvlens[k]);
		}
		int got = 0;
		for (; got < n; got++) {
			void *rep;
			if (asking) {
				if (redisGetReply(nd->c, &rep) != REDIS_OK)
					break;
				freeReplyObject(rep);
			}
			if (redisGetReply(nd->c, &rep) != REDIS_OK)
				break;
			outs[got] = rep;
		}
		if (got == n) {
			node_ok(r, nd);
			return 0;
		}
		err = ctx_err(nd->c);
		for (int k = 0; k < got; k++)
			freeReplyObject(outs[k]);
		node_fail(r, nd, err);
		/* an idle connection the server closed: once more, anew */
		if (!(was_open && tries == 0 && err != -ETIMEDOUT))
			return err;
		nd->retry_at = 0;
	}
}

int rconn_pipeline(struct rconn *r, const char *key, int n, const int *argcs,
		   const char **const *argvs, const size_t *const *argvlens,
		   redisReply **outs)
{
	int i, asking = 0, err = node_for(r, key, &i);
	if (err)
		return err;
	for (int hop = 0;; hop++) {
		err = send_all(r, i, n, argcs, argvs, argvlens, outs, asking);
		if (err) {
			if (r->conf.kind == RCONN_CLUSTER)
				for (int s = 0; s < NSLOTS; s++)
					if (r->slots[s] == i)
						r->slots[s] = -1; /* ask again */
			return err;
		}
		char host[256];
		int port, ask = 0, re = -1;
		for (int k = 0; k < n && re < 0; k++)
			if (redirect(outs[k], host, sizeof(host), &port, &ask))
				re = k;
		if (re < 0) {
			for (int k = 0; k < n; k++)
				if (outs[k]->type == REDIS_REPLY_ERROR &&
				    !strncmp(outs[k]->str, "OOM", 3)) {
					for (int j = 0; j < n; j++)
						freeReplyObject(outs[j]);
					return -ENOMEM;
				}
			return 0;
		}
		for (int k = 0; k < n; k++)
			freeReplyObject(outs[k]);
		if (hop == MAX_REDIRECTS)
			return -EIO;
		int j = node_at(r, host, port);
		if (j < 0)
			return -EIO;
		if (!ask && key) { /* the slot moved for good: others too */
			r->slots[rconn_slot(key, strlen(key))] = (short)j;
			refresh_slots(r);
		}
		asking = ask;
		i = j;
	}
}

int rconn_cmd(struct rconn *r, const char *key, int argc, const char **argv,
	      const size_t *argvlen, redisReply **out)
{
	const char **argvs[1] = { argv };
	const size_t *lens[1] = { argvlen };
	int argcs[1] = { argc };
	return rconn_pipeline(r, key, 1, argcs, (const char **const *)argvs,
			      lens, out);
}
