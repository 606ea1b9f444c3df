/*
 * rconn.h - a connection to the remote tier: one Redis server (TCP or a
 * unix socket) or a Redis Cluster, over hiredis (internal to fs/).
 *
 * One struct rconn belongs to one thread at a time (hiredis contexts are
 * not thread-safe): the pusher has its own, fetchers take one from a
 * pool.  Every wait on Redis is bounded by the configured timeout: a
 * connect, a command, a pipeline's replies.  A failure (timeout, refused,
 * reset, protocol error) closes the connection; the next command
 * reconnects, but not before a backoff has passed (100 ms doubling to
 * 5 s, reset by a success), and until then fails at once with -ENOTCONN,
 * so a dead or stopped Redis costs a caller one timeout, not one per
 * request.
 *
 * Cluster: the slot map comes from CLUSTER SLOTS of any seed node (again
 * after a MOVED, or when a node cannot be reached); a command goes to the
 * master of its key's slot (CRC16 of the key's hash tag, the part between
 * the first { and the next }, as Redis computes it); MOVED and ASK
 * (with ASKING) are followed, a few hops at most.  Keys of one pipeline
 * must share a hash tag (one slot).
 */
#ifndef TCFS_RCONN_H
#define TCFS_RCONN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

enum rconn_kind {
	RCONN_TCP,      /* redis://HOST:PORT[/DB] */
	RCONN_UNIX,     /* unix:/path/to/redis.sock */
	RCONN_CLUSTER,  /* redis-cluster://HOST:PORT[,HOST:PORT...] */
};

#define RCONN_MAX_SEEDS 16

struct rconn_conf {
	int kind;                        /* enum rconn_kind */
	int nseeds;                      /* TCP: 1; cluster: the seeds */
	char host[RCONN_MAX_SEEDS][256];
	int port[RCONN_MAX_SEEDS];
	char path[108];                  /* RCONN_UNIX */
	int db;                          /* SELECT after connecting (not in a
	                                    cluster: always 0 there) */
	char password[512];              /* AUTH after connecting; "" none */
	int timeout_ms;                  /* every wait; > 0 */
};

/* Parse @url into @c (other fields untouched).  0, or -EINVAL with a
 * message naming the problem in @err (room for @errlen bytes). */
int rconn_parse_url(const char *url, struct rconn_conf *c, char *err,
		    size_t errlen);

/* Read the password from the first line of @path (no newline kept) into
 * c->password.  0 or a negative errno (message in @err). */
int rconn_read_password(const char *path, struct rconn_conf *c, char *err,
			size_t errlen);

struct rconn;

/* A connection (not yet connected: the first command connects).  NULL on
 * ENOMEM.  @c is copied. */
struct rconn *rconn_new(const struct rconn_conf *c);
void rconn_free(struct rconn *r);

/*
 * Run one command, binary-safe (argv, argvlen as redisCommandArgv takes
 * them), routed by @key (NULL: any node).  On success 0 and *@out is the
 * reply (the caller frees it with freeReplyObject); a reply of type
 * REDIS_REPLY_ERROR is a success here (the caller reads it), except
 * MOVED/ASK, which are followed, and OOM, which is returned as -ENOMEM
 * (the reply freed).  Failures: -ETIMEDOUT, -ENOTCONN (down, or in
 * backoff), -ECONNREFUSED, -EIO (protocol), -EACCES (AUTH refused),
 * -ENOMEM.
 */
int rconn_cmd(struct rconn *r, const char *key, int argc, const char **argv,
	      const size_t *argvlen, redisReply **out);

/*
 * Run @n commands as one pipeline (all sent, then all replies read),
 * routed by @key, which every command's key must share the hash slot of.
 * outs[i] gets command i's reply (free each); on failure none is left
 * (all freed) and the return is as rconn_cmd's.  The commands answered
 * with a MOVED or ASK (so not run) are sent again, as one pipeline, to
 * the node named; the other replies stand (during a migration a slot's
 * keys are split between two nodes).  @argvlens NULL, or a NULL entry:
 * the arguments are C strings.
 */
int rconn_pipeline(struct rconn *r, const char *key, int n, const int *argcs,
		   const char **const *argvs, const size_t *const *argvlens,
		   redisReply **outs);

/* Is the connection up (the last command reached Redis)? */
int rconn_connected(const struct rconn *r);

/* The Redis hash slot of @key (CRC16 of its hash tag, mod 16384). */
unsigned rconn_slot(const char *key, size_t len);

#endif
