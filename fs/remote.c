/*
 * remote.c - the shared tier: write-through to Redis, read-through from it.
 *
 * Layout in Redis, for entry NAME under prefix P (all keys of an entry
 * share the hash tag {P:NAME}, so in a cluster they live in one slot):
 *
 *   {P:NAME}:m                      the manifest, a JSON document:
 *     {"v":1, "kind":"dir"|"file",
 *      "files":[{"p":"g/t", "n":SIZE, "h":"XXH3 16 hex", "k":"CHUNKS ID",
 *                "c":NCHUNKS, "dt":"float16", "sh":[2,3]}, ...],
 *      "dirs":["g", ...], "docs":{"": "{user keys, as text}", "g": ...},
 *      "attrs":{...}|null, "parent":"NAME"|null}
 *   {P:NAME}:c:ID:I                 chunk I (TCFS_CHUNK bytes, the last
 *                                   shorter) of one pushed file version
 *
 * Write-through.  The store tells every live change of an entry (its
 * change listener, under the store's lock): its name goes into a queue,
 * once however often it changes before the pusher gets to it, with the
 * bytes the change wrote.  The queue is bounded in bytes (remote_queue):
 * a change that would pass it is dropped and counted, never waited for
 * (but one larger than the whole queue is taken when the queue is empty:
 * the bytes wait in the pool, the queue holds only names).
 * The pusher thread takes a name once it has settled (no change for
 * TCFS_SETTLE_MS and no tensor of it open for writing: a reader elsewhere
 * is not sent an entry half written, which it would keep as it is),
 * reads the entry through the store's API as it is then (each tensor through an open handle: one version,
 * whole), sends its files' chunks (pipelined), and only then the manifest:
 * a reader elsewhere sees the old manifest with the old chunks, or the new
 * with the new ones; chunks of a file version are named by a fresh id, so
 * versions never mix.  Chunks the old manifest named and the new one does
 * not are deleted after it.  A removed entry (rm, or renamed away) has its
 * manifest deleted, then its chunks.  Evictions are local only.  Names
 * beginning ".tcache-" (temporary files of the Python package, fetches in
 * progress) are never pushed.
 *
 * Read-through.  A lookup at the root that finds nothing asks here: the
 * manifest, then every chunk (pipelined), each file's xxh3 checked over
 * the bytes as they are written into a new local entry under a temporary
 * name, which is renamed to NAME only when every file is whole: a local
 * reader sees the entry whole or not at all.  A missing chunk or a bad
 * checksum leaves nothing (counted).  Concurrent lookups of one name wait
 * for the one fetch; a name found absent remotely is not asked again for
 * TCFS_NEG_MS.  What a fetch writes is not pushed back (the change
 * listener ignores the fetching thread).
 *
 * Faults.  Every Redis wait is bounded by remote_timeout (rconn.c); a down
 * Redis is retried after a backoff, and until then a fetch costs nothing;
 * so no request waits on Redis longer than the timeout, a mount keeps
 * working locally, and the log says when the remote goes down and comes
 * back.  A push that failed for want of Redis goes back to the end of the
 * queue (still counted against remote_queue) and the pusher pauses; so
 * pushes resume when Redis does, and while it is away new changes fill
 * the queue and then are dropped (counted).  A push Redis refused (OOM,
 * an error reply) is counted as failed and not retried.
 *
 * Locking: r->lock protects the queue, the fetches in flight and the
 * negative cache; counters are atomics; each thread has its own
 * connection (the pusher one, fetchers one each from a small pool).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <xxhash.h>

#include "rconn.h"
#include "remote.h"
#include "tcfs.h"

#define TCFS_CHUNK (4u << 20)        /* bytes of a chunk */
#define TCFS_BATCH 4                 /* chunks per pipeline */
#define TCFS_NEG_MS 1000             /* an absent name is not asked again
					for this long */
#define TCFS_NEG_SLOTS 1024
#define TCFS_POOL 8                  /* idle fetch connections kept */
#define TEMP_PREFIX ".tcache-"
#define TCFS_JOB_BUCKETS 4096
#define TCFS_SETTLE_MS 200           /* an entry is pushed once it has had
					no change for this long and no
					tensor of it is open for writing */
#define BUSY 2                       /* push_entry: not settled, later */

struct job {
	struct job *next;            /* FIFO */
	struct job *hnext;           /* chain of its bucket in r->jobs */
	int removed;                 /* the last change said: gone */
	uint64_t id;                 /* the entry the last change named */
	int64_t changed_ms;          /* when (CLOCK_MONOTONIC) */
	uint64_t bytes;              /* counted in queue_bytes */
	char name[TC_NAME_MAX + 1];
};

struct flight {
	struct flight *next;
	int done, result;
	int waiters;                 /* the last one out frees it */
	char name[TC_NAME_MAX + 1];
};

struct tcfs_remote {
	tc_store *store;
	struct rconn_conf conf;
	char prefix[128];
	char url[512];
	int read_only;
	uint64_t queue_max;

	pthread_mutex_t lock;
	pthread_cond_t wake;         /* a job was queued, or stop */
	pthread_cond_t landed;       /* a flight ended */
	struct job *head, *tail;
	struct job *jobs[TCFS_JOB_BUCKETS]; /* the same jobs by name */
	uint64_t queue_bytes, queue_n;
	atomic_int stop;             /* the pusher ends (even mid-push) */
	int started;
	pthread_t pusher;
	struct flight *flights;
	struct { uint64_t h; int64_t until; } neg[TCFS_NEG_SLOTS];
	struct rconn *pool[TCFS_POOL];
	int npool;

	atomic_int up;               /* -1 unknown, 0 down, 1 up */
	atomic_uint_fast64_t pushed, pushed_bytes, fetched, fetched_bytes,
		dropped, failed, checksum_failures;
};

static __thread int tl_fetching; /* this thread is writing a fetch */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- state and counters -------------------------------------------------- */

static int is_conn_error(int err)
{
	return err == -ETIMEDOUT || err == -ENOTCONN || err == -ECONNREFUSED ||
	       err == -EIO || err == -EACCES || err == -ECONNRESET;
}

/* Note the outcome @err of a Redis call: log when the remote goes down
 * or comes back. */
static void note(struct tcfs_remote *r, int err)
{
	if (is_conn_error(err)) {
		if (atomic_exchange(&r->up, 0) != 0)
			tcfs_log(LOG_WARNING, "remote: down (%s: %s); serving "
				 "locally, retrying in the background", r->url,
				 strerror(-err));
	} else if (err != -ENOMEM) {
		if (atomic_exchange(&r->up, 1) == 0)
			tcfs_log(LOG_NOTICE, "remote: up again (%s)", r->url);
	}
}

/* ---- keys ---------------------------------------------------------------- */

static void key_manifest(const struct tcfs_remote *r, const char *name,
			 char *k, size_t size)
{
	snprintf(k, size, "{%s:%s}:m", r->prefix, name);
}

static void key_chunk(const struct tcfs_remote *r, const char *name,
		      const char *id, uint64_t i, char *k, size_t size)
{
	snprintf(k, size, "{%s:%s}:c:%s:%" PRIu64, r->prefix, name, id, i);
}

#define KEY_MAX (TC_NAME_MAX + 200)

/* ---- small Redis helpers ----------------------------------------------- */

/* GET @key: 0 and *@out (NULL for a nil) or an error. */
static int get(struct tcfs_remote *r, struct rconn *c, const char *key,
	       redisReply **out)
{
	const char *argv[2] = { "GET", key };
	size_t len[2] = { 3, strlen(key) };
	redisReply *rep;
	int err = rconn_cmd(c, key, 2, argv, len, &rep);
	note(r, err);
	*out = NULL;
	if (err)
		return err;
	if (rep->type == REDIS_REPLY_STRING) {
		*out = rep;
		return 0;
	}
	int nil = rep->type == REDIS_REPLY_NIL;
	freeReplyObject(rep);
	return nil ? 0 : -EIO;
}

/* A command with one key and no reply worth keeping. */
static int simple(struct tcfs_remote *r, struct rconn *c, int argc,
		  const char **argv, const size_t *len)
{
	redisReply *rep;
	int err = rconn_cmd(c, argv[1], argc, argv, len, &rep);
	note(r, err);
	if (err)
		return err;
	err = rep->type == REDIS_REPLY_ERROR ? -EIO : 0;
	freeReplyObject(rep);
	return err;
}

static int del(struct tcfs_remote *r, struct rconn *c, const char *key)
{
	const char *argv[2] = { "DEL", key };
	size_t len[2] = { 3, strlen(key) };
	return simple(r, c, 2, argv, len);
}

/* The manifest of @name (parsed), or NULL (absent: *@err 0; else the
 * error). */
static cJSON *manifest_get(struct tcfs_remote *r, struct rconn *c,
			   const char *name, int *err)
{
	char key[KEY_MAX];
	redisReply *rep;
	key_manifest(r, name, key, sizeof(key));
	*err = get(r, c, key, &rep);
	if (*err || !rep)
		return NULL;
	cJSON *m = cJSON_ParseWithLength(rep->str, rep->len);
	freeReplyObject(rep);
	if (!m || !cJSON_IsArray(cJSON_GetObjectItem(m, "files"))) {
		cJSON_Delete(m);
		*err = -EPROTO;
		return NULL;
	}
	return m;
}

/* Delete the chunks @m lists that @keep (NULL: none) does not. */
static void delete_chunks(struct tcfs_remote *r, struct rconn *c,
			  const char *name, const cJSON *m, const cJSON *keep)
{
	const cJSON *f, *g;
	char key[KEY_MAX];
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(m, "files")) {
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(f, "k"));
		const cJSON *n = cJSON_GetObjectItem(f, "c");
		int kept = 0;
		if (!id || !cJSON_IsNumber(n))
			continue;
		const cJSON *kf = keep ? cJSON_GetObjectItem(keep, "files")
				       : NULL;
		cJSON_ArrayForEach(g, kf) {
			const char *gid = cJSON_GetStringValue(cJSON_GetObjectItem(g, "k"));
			kept |= gid && !strcmp(gid, id);
		}
		for (uint64_t i = 0; !kept && i < (uint64_t)n->valuedouble; i++) {
			key_chunk(r, name, id, i, key, sizeof(key));
			if (del(r, c, key))
				return;
		}
	}
}

/* ---- the queue ----------------------------------------------------------- */

/* The store's change listener (store lock held: only the queue here). */
static void changed(void *arg, uint64_t id, const char *name, int removed,
		    uint64_t bytes)
{
	struct tcfs_remote *r = arg;
	if (tl_fetching || !strncmp(name, TEMP_PREFIX, strlen(TEMP_PREFIX)))
		return;
	struct job **b = &r->jobs[XXH3_64bits(name, strlen(name)) %
				  TCFS_JOB_BUCKETS];
	pthread_mutex_lock(&r->lock);
	struct job *j;
	for (j = *b; j; j = j->hnext)
		if (!strcmp(j->name, name))
			break;
	if (!j && r->queue_bytes && r->queue_bytes + bytes > r->queue_max) {
		/* full (an entry larger than the whole queue still goes when
		 * it is empty: the bytes wait in the pool, not here) */
		atomic_fetch_add(&r->dropped, 1);
	} else if (j) {
		j->removed = removed;
		j->id = id;
		j->changed_ms = now_ms();
		j->bytes += bytes;
		r->queue_bytes += bytes;
	} else if ((j = calloc(1, sizeof(*j)))) {
		snprintf(j->name, sizeof(j->name), "%s", name);
		j->removed = removed;
		j->id = id;
		j->changed_ms = now_ms();
		j->bytes = bytes;
		r->queue_bytes += bytes;
		r->queue_n++;
		j->hnext = *b;
		*b = j;
		if (r->tail)
			r->tail->next = j;
		else
			r->head = j;
		r->tail = j;
		pthread_cond_signal(&r->wake);
	} else {
		atomic_fetch_add(&r->dropped, 1);
	}
	pthread_mutex_unlock(&r->lock);
}

/* ---- push ---------------------------------------------------------------- */

/* One file of an entry being pushed. */
struct pfile {
	uint64_t id;
	char path[4096];             /* relative to the entry; "" for a
	                                file at the root */
	char dir[4096];              /* its directory's path ("" the entry) */
	char base[TC_NAME_MAX + 1];
};

struct walk {
	struct pfile *f;
	size_t n, cap;
	cJSON *dirs, *docs;          /* manifest parts */
	cJSON *types;                /* path -> {"dt","sh"} from meta.json */
};

/* The user's keys and our tensors' types of directory @id (@path) into
 * @w (from its meta.json); @entry: also the entry's attrs and parent into
 * @m. */
/* The user's keys of the rendered meta.json @js (@len bytes): each of
 * its members as the user wrote it, one a line before "__tcache__"
 * (meta.c), as the text of a JSON object (malloc'd; NULL on ENOMEM).
 * Never parsed: cJSON would round a number. */
static char *user_keys(const char *js, size_t len)
{
	const char *k = memmem(js, len, "\n\t\"" "__tcache__" "\":", 15);
	size_t n = k ? (size_t)(k - js) : 0;
	while (n > 1 && (js[n - 1] == ',' || js[n - 1] == '\n'))
		n--;
	char *out = malloc(n + 3);
	if (!out)
		return NULL;
	if (n <= 1) {
		strcpy(out, "{}");
	} else {
		memcpy(out, js, n);
		strcpy(out + n, "\n}");
	}
	return out;
}

static int walk_meta(struct tcfs_remote *r, uint64_t id, const char *path,
		     struct walk *w, cJSON *m, int entry)
{
	char *js;
	size_t len;
	int err = tc_meta_get(r->store, id, &js, &len);
	if (err)
		return err;
	cJSON *doc = cJSON_ParseWithLength(js, len);
	char *keys = user_keys(js, len);
	free(js);
	if (!doc || !keys) {
		cJSON_Delete(doc);
		free(keys);
		return -ENOMEM;
	}
	cJSON *ours = cJSON_DetachItemFromObjectCaseSensitive(doc, "__tcache__");
	cJSON_Delete(doc);
	/* as text: a number of any size or precision stays as written */
	cJSON_AddItemToObject(w->docs, path, cJSON_CreateString(keys));
	free(keys);
	const cJSON *t;
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(ours, "tensors")) {
		cJSON *ty = cJSON_CreateObject();
		char full[4096];
		snprintf(full, sizeof(full), "%s%s%s", path, *path ? "/" : "",
			 t->string);
		cJSON_AddItemToObject(ty, "dt", cJSON_Duplicate(
					      cJSON_GetObjectItem(t, "dtype"), 1));
		cJSON_AddItemToObject(ty, "sh", cJSON_Duplicate(
					      cJSON_GetObjectItem(t, "shape"), 1));
		cJSON_AddItemToObject(ty, "h", cJSON_Duplicate(
					      cJSON_GetObjectItem(t, "xxh3"), 1));
		cJSON_AddItemToObject(w->types, full, ty);
	}
	if (entry) {
		cJSON *a = cJSON_DetachItemFromObjectCaseSensitive(ours, "attrs");
		cJSON *p = cJSON_DetachItemFromObjectCaseSensitive(ours, "parent");
		cJSON_AddItemToObject(m, "attrs", a ? a : cJSON_CreateNull());
		cJSON_AddItemToObject(m, "parent", p ? p : cJSON_CreateNull());
	}
	cJSON_Delete(ours);
	return 0;
}

/* Every tensor and directory below directory @id (@path) into @w. */
static int walk_dir(struct tcfs_remote *r, uint64_t id, const char *path,
		    struct walk *w, cJSON *m, int entry)
{
	uint64_t *ids;
	size_t n;
	int err = walk_meta(r, id, path, w, m, entry);
	if (!err)
		err = tc_list(r->store, id, &ids, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n && !err; i++) {
		struct tc_stat st;
		char sub[4096];
		if (tc_getattr(r->store, ids[i], &st))
			continue; /* gone meanwhile */
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "/" : "",
			 st.name);
		if (st.kind == TC_KIND_TENSOR && st.writers) {
			err = BUSY; /* being written: pushed once it is done */
			break;
		}
		if (st.kind != TC_KIND_TENSOR) {
			cJSON_AddItemToArray(w->dirs, cJSON_CreateString(sub));
			err = walk_dir(r, ids[i], sub, w, m, 0);
			continue;
		}
		if (w->n == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 16;
			struct pfile *f = realloc(w->f, cap * sizeof(*f));
			if (!f) {
				err = -ENOMEM;
				break;
			}
			w->f = f;
			w->cap = cap;
		}
		struct pfile *f = &w->f[w->n++];
		f->id = ids[i];
		snprintf(f->path, sizeof(f->path), "%s", sub);
		snprintf(f->dir, sizeof(f->dir), "%s", path);
		snprintf(f->base, sizeof(f->base), "%s", st.name);
	}
	free(ids);
	return err;
}

/* Send the bytes of @f (open in @fh, @size bytes) as the chunks of id
 * @cid; their xxh3 into @hex.  0 or an error. */
static int push_file(struct tcfs_remote *r, struct rconn *c, const char *name,
		     tc_file *fh, uint64_t size, const char *cid, char *hex,
		     uint64_t *nchunks)
{
	uint64_t n = size ? (size + TCFS_CHUNK - 1) / TCFS_CHUNK : 0;
	char *buf = malloc((size_t)TCFS_BATCH * TCFS_CHUNK);
	char keys[TCFS_BATCH][KEY_MAX];
	XXH3_state_t *hs = XXH3_createState();
	int err = 0;

	if (!buf || !hs) {
		free(buf);
		XXH3_freeState(hs);
		return -ENOMEM;
	}
	XXH3_64bits_reset(hs);
	for (uint64_t i = 0; i < n && !err; i += TCFS_BATCH) {
		int k = 0;
		if (atomic_load(&r->stop)) {
			err = -ECANCELED; /* unmounting: the rest is dropped */
			break;
		}
		const char *argv[TCFS_BATCH][3];
		size_t len[TCFS_BATCH][3];
		const char **argvs[TCFS_BATCH];
		const size_t *lens[TCFS_BATCH];
		int argcs[TCFS_BATCH];
		redisReply *outs[TCFS_BATCH];
		for (; k < TCFS_BATCH && i + (uint64_t)k < n; k++) {
			uint64_t off = (i + (uint64_t)k) * TCFS_CHUNK;
			size_t want = size - off < TCFS_CHUNK ? (size_t)(size - off)
							      : TCFS_CHUNK;
			/* the bytes in place in the pool when they are one
			 * span (a big file's chunks mostly are), else a copy */
			const char *p = buf + (size_t)k * TCFS_CHUNK;
			struct tc_span sp;
			int nsp;
			size_t total;
			if (tc_file_map(r->store, fh, off, want, &sp, 1, &nsp,
					&total) == 0 && nsp == 1 &&
			    total == want && sp.ptr) {
				p = sp.ptr;
			} else {
				ssize_t got = tc_file_pread(r->store, fh,
							    (char *)p, want, off);
				if (got != (ssize_t)want) {
					err = got < 0 ? (int)got : -EIO;
					break;
				}
			}
			XXH3_64bits_update(hs, p, want);
			key_chunk(r, name, cid, i + (uint64_t)k, keys[k], KEY_MAX);
			argv[k][0] = "SET";
			argv[k][1] = keys[k];
			argv[k][2] = p;
			len[k][0] = 3;
			len[k][1] = strlen(keys[k]);
			len[k][2] = want;
			argvs[k] = argv[k];
			lens[k] = len[k];
			argcs[k] = 3;
		}
		if (err || !k)
			break;
		err = rconn_pipeline(c, keys[0], k, argcs, argvs, lens, outs);
		note(r, err);
		if (err)
			break; /* (no replies are left) */
		for (int j = 0; j < k; j++) {
			if (!err && outs[j]->type == REDIS_REPLY_ERROR)
				err = strncmp(outs[j]->str, "OOM", 3) ? -EIO : -ENOMEM;
			freeReplyObject(outs[j]);
		}
	}
	snprintf(hex, 17, "%016llx", (unsigned long long)XXH3_64bits_digest(hs));
	*nchunks = n;
	XXH3_freeState(hs);
	free(buf);
	return err;
}

/* The file of manifest @old at @path that holds what is there now
 * (@size bytes, whose meta.json type @ty says its xxh3), or NULL.  Only a
 * directory entry's tensors are matched: a file at the root has no
 * meta.json, and a change to it is a new version anyway. */
static const cJSON *old_file(const cJSON *old, const char *path,
			     uint64_t size, const cJSON *ty)
{
	const char *h = cJSON_GetStringValue(cJSON_GetObjectItem(ty, "h"));
	const cJSON *f;
	if (!old || !h)
		return NULL;
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(old, "files")) {
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(f, "p"));
		const char *fh = cJSON_GetStringValue(cJSON_GetObjectItem(f, "h"));
		const cJSON *n = cJSON_GetObjectItem(f, "n");
		if (p && fh && cJSON_IsNumber(n) && !strcmp(p, path) &&
		    !strcmp(fh, h) && (uint64_t)n->valuedouble == size)
			return f;
	}
	return NULL;
}

/* A fresh id for one file version's chunks. */
static void chunk_id(char *id, size_t size)
{
	static atomic_uint_fast64_t counter;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(id, size, "%lx%lx%lx", (unsigned long)getpid(),
		 (unsigned long)ts.tv_nsec ^ (unsigned long)ts.tv_sec,
		 (unsigned long)atomic_fetch_add(&counter, 1));
}

/* Push entry @id, @name as it is now; 1 if it is no longer there under
 * that name (the caller deletes it remotely). */
static int push_entry(struct tcfs_remote *r, struct rconn *c, uint64_t id,
		      const char *name, uint64_t *bytes)
{
	struct tc_stat st;
	struct walk w = { 0 };
	char key[KEY_MAX];
	int err;

	*bytes = 0;
	/* by id, not by name: a lookup would count as a user's probe */
	if (tc_getattr(r->store, id, &st) != 0 || st.parent != TC_ROOT_ID ||
	    strcmp(st.name, name))
		return 1;
	if (st.kind == TC_KIND_TENSOR && st.writers)
		return BUSY;
	cJSON *m = cJSON_CreateObject();
	w.dirs = cJSON_AddArrayToObject(m, "dirs");
	w.docs = cJSON_AddObjectToObject(m, "docs");
	w.types = cJSON_CreateObject();
	cJSON *files = cJSON_AddArrayToObject(m, "files");
	cJSON_AddNumberToObject(m, "v", 1);
	cJSON_AddStringToObject(m, "kind", st.kind == TC_KIND_TENSOR ? "file"
								    : "dir");
	if (st.kind == TC_KIND_TENSOR) {
		char link[TC_NAME_MAX + 1];
		int ll = tc_link_get(r->store, st.id, link, sizeof(link) - 1);
		if (ll >= 0)
			link[ll] = 0;
		cJSON_AddItemToObject(m, "parent", ll >= 0
				      ? cJSON_CreateString(link) : cJSON_CreateNull());
		w.f = calloc(1, sizeof(*w.f));
		err = w.f ? 0 : -ENOMEM;
		if (w.f) {
			w.n = w.cap = 1;
			w.f->id = st.id;
		}
	} else {
		err = walk_dir(r, st.id, "", &w, m, 1);
	}
	cJSON *old = NULL;
	if (err == BUSY) {
		cJSON_Delete(m);
		cJSON_Delete(w.types);
		free(w.f);
		return BUSY;
	}
	if (!err)
		old = manifest_get(r, c, name, &err);
	if (err == -EPROTO)
		err = 0; /* a damaged manifest: replaced */
	for (size_t i = 0; i < w.n && !err; i++) {
		struct pfile *f = &w.f[i];
		tc_file *fh;
		struct tc_stat fs;
		char cid[64], hex[17];
		uint64_t nchunks;
		cJSON *ty = cJSON_GetObjectItem(w.types, f->path);
		if (tc_open(r->store, f->id, TC_O_QUIET, &fh) != 0)
			continue; /* removed meanwhile: its own change follows */
		if ((err = tc_file_stat(r->store, fh, &fs)) != 0) {
			tc_file_close(r->store, fh);
			break;
		}
		if (!fs.version) {
			/* being written, never committed: its commit queues
			 * the entry again */
			tc_file_close(r->store, fh);
			continue;
		}
		const cJSON *same = old_file(old, f->path, fs.size, ty);
		if (same) {
			/* pushed before, unchanged: its chunks stay (its
			 * type as meta.json says now) */
			tc_file_close(r->store, fh);
			cJSON *jf = cJSON_Duplicate(same, 1);
			cJSON_DeleteItemFromObject(jf, "dt");
			cJSON_DeleteItemFromObject(jf, "sh");
			cJSON_AddItemToObject(jf, "dt", cJSON_Duplicate(
					       cJSON_GetObjectItem(ty, "dt"), 1));
			cJSON_AddItemToObject(jf, "sh", cJSON_Duplicate(
					       cJSON_GetObjectItem(ty, "sh"), 1));
			cJSON_AddItemToArray(files, jf);
			continue;
		}
		chunk_id(cid, sizeof(cid));
		err = push_file(r, c, name, fh, fs.size, cid, hex, &nchunks);
		tc_file_close(r->store, fh);
		if (err)
			break;
		cJSON *jf = cJSON_CreateObject();
		cJSON_AddStringToObject(jf, "p", f->path);
		cJSON_AddNumberToObject(jf, "n", (double)fs.size);
		cJSON_AddStringToObject(jf, "h", hex);
		cJSON_AddStringToObject(jf, "k", cid);
		cJSON_AddNumberToObject(jf, "c", (double)nchunks);
		if (ty) {
			cJSON_AddItemToObject(jf, "dt", cJSON_Duplicate(
					       cJSON_GetObjectItem(ty, "dt"), 1));
			cJSON_AddItemToObject(jf, "sh", cJSON_Duplicate(
					       cJSON_GetObjectItem(ty, "sh"), 1));
		}
		cJSON_AddItemToArray(files, jf);
		*bytes += fs.size;
	}
	if (!err) {
		/* the manifest last: readers see it only with its chunks */
		char *txt = cJSON_PrintUnformatted(m);
		key_manifest(r, name, key, sizeof(key));
		if (!txt) {
			err = -ENOMEM;
		} else {
			const char *argv[3] = { "SET", key, txt };
			size_t len[3] = { 3, strlen(key), strlen(txt) };
			err = simple(r, c, 3, argv, len);
			free(txt);
		}
	}
	if (old)
		delete_chunks(r, c, name, old, err ? NULL : m);
	cJSON_Delete(old);
	cJSON_Delete(m);
	cJSON_Delete(w.types);
	free(w.f);
	return err;
}

/* Entry @name is gone here: gone remotely too (manifest first). */
static int delete_entry(struct tcfs_remote *r, struct rconn *c,
			const char *name)
{
	char key[KEY_MAX];
	int err;
	cJSON *old = manifest_get(r, c, name, &err);
	key_manifest(r, name, key, sizeof(key));
	if (!err || err == -EPROTO)
		err = del(r, c, key);
	if (!err && old)
		delete_chunks(r, c, name, old, NULL);
	cJSON_Delete(old);
	return err;
}

/* Put job @j back at the end of the queue: 1, or 0 when a newer change
 * of its name is queued already (the caller drops @j).  Lock held. */
static int requeue(struct tcfs_remote *r, struct job *j)
{
	struct job **b = &r->jobs[XXH3_64bits(j->name, strlen(j->name)) %
				  TCFS_JOB_BUCKETS];
	for (struct job *o = *b; o; o = o->hnext)
		if (!strcmp(o->name, j->name))
			return 0;
	j->hnext = *b;
	*b = j;
	j->next = NULL;
	if (r->tail)
		r->tail->next = j;
	else
		r->head = j;
	r->tail = j;
	return 1;
}

static void *pusher(void *arg)
{
	struct tcfs_remote *r = arg;
	struct rconn *c = rconn_new(&r->conf);
	if (!c) {
		tcfs_log(LOG_ERR, "remote: out of memory; nothing is pushed");
		return NULL;
	}
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->head && !r->stop)
			pthread_cond_wait(&r->wake, &r->lock);
		if (r->stop)
			break;
		struct job *j = r->head, **b;
		int64_t wait = j->changed_ms + TCFS_SETTLE_MS - now_ms();
		if (wait > 0) {
			/* the oldest change is the head's: wait for it to
			 * settle (a newer change or a stop wakes us too) */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&r->wake, &r->lock, &ts);
			continue;
		}
		r->head = j->next;
		if (!r->head)
			r->tail = NULL;
		/* out of the table: a change from now on is queued anew */
		b = &r->jobs[XXH3_64bits(j->name, strlen(j->name)) %
			     TCFS_JOB_BUCKETS];
		while (*b != j)
			b = &(*b)->hnext;
		*b = j->hnext;
		pthread_mutex_unlock(&r->lock);

		uint64_t bytes = 0;
		int err = j->removed ? 1 : push_entry(r, c, j->id, j->name,
						      &bytes);
		if (err == 1)
			err = delete_entry(r, c, j->name);
		if (err == BUSY) {
			/* being written: again once it settles */
			pthread_mutex_lock(&r->lock);
			j->changed_ms = now_ms();
			if (requeue(r, j))
				j = NULL;
			if (j) {
				r->queue_bytes -= j->bytes;
				r->queue_n--;
				free(j);
			}
			continue; /* (the lock held, as at the loop's top) */
		}
		if (!err && !j->removed) {
			atomic_fetch_add(&r->pushed, 1);
			atomic_fetch_add(&r->pushed_bytes, bytes);
		} else if (err && !is_conn_error(err)) {
			atomic_fetch_add(&r->failed, 1);
			tcfs_log(LOG_INFO, "remote: push of '%s' failed: %s",
				 j->name, strerror(-err));
		}

		pthread_mutex_lock(&r->lock);
		if (is_conn_error(err) && !atomic_load(&r->stop)) {
			/* Redis is down: the job waits at the end of the
			 * queue (still counted in it), unless a newer change
			 * of the name is queued, and the pusher pauses */
			if (requeue(r, j))
				j = NULL;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			if (!atomic_load(&r->stop))
				pthread_cond_timedwait(&r->wake, &r->lock, &ts);
		}
		if (j) {
			r->queue_bytes -= j->bytes;
			r->queue_n--;
			free(j);
		}
	}
	pthread_mutex_unlock(&r->lock);
	rconn_free(c);
	return NULL;
}

/* ---- fetch --------------------------------------------------------------- */

static struct rconn *pool_take(struct tcfs_remote *r)
{
	struct rconn *c = NULL;
	pthread_mutex_lock(&r->lock);
	if (r->npool)
		c = r->pool[--r->npool];
	pthread_mutex_unlock(&r->lock);
	return c ? c : rconn_new(&r->conf);
}

static void pool_put(struct tcfs_remote *r, struct rconn *c)
{
	pthread_mutex_lock(&r->lock);
	if (r->npool < TCFS_POOL) {
		r->pool[r->npool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	rconn_free(c);
}

/* Remove what a failed fetch made: the subtree at @name of the root. */
static void remove_tree(tc_store *s, uint64_t parent, const char *name)
{
	struct tc_stat st;
	uint64_t *ids;
	size_t n;
	if (tc_lookup(s, parent, name, &st))
		return;
	if (st.kind == TC_KIND_TENSOR) {
		tc_unlink(s, parent, name);
		return;
	}
	if (tc_list(s, st.id, &ids, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct tc_stat c;
			if (tc_getattr(s, ids[i], &c) == 0)
				remove_tree(s, st.id, c.name);
		}
		free(ids);
	}
	tc_rmdir(s, parent, name);
}

/* The id of directory @path below @top ("" is @top). */
static int dir_id(tc_store *s, uint64_t top, const char *path, uint64_t *id)
{
	char buf[4096], *save = NULL;
	struct tc_stat st;
	*id = top;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		int err = tc_lookup(s, *id, p, &st);
		if (err)
			return err;
		*id = st.id;
	}
	return 0;
}

/* The directory (its id in *@dir, below @top) and the last name (*@base)
 * of the manifest's relative path @p. */
static int place_of(tc_store *s, uint64_t top, const char *p, uint64_t *dir,
		    const char **base)
{
	char parent[4096];
	if (!p)
		return -EPROTO;
	const char *slash = strrchr(p, '/');
	snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - p) : 0, p);
	*base = slash ? slash + 1 : p;
	return dir_id(s, top, parent, dir);
}

/* The writer of a fetch: takes batches of chunk replies from the thread
 * that receives them and writes them into the new tensor, so that the
 * pool's copy of one batch overlaps Redis sending the next (a 350 MB
 * fetch: 0.58 s with the two in turn). */
struct writer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	redisReply *batch[2][TCFS_BATCH]; /* full: k[i] > 0 */
	int k[2];
	uint64_t first[2];           /* chunk number of batch[i][0] */
	int put, take;               /* the next slot to fill / to write */
	int end;                     /* no more batches */
	int err;                     /* the writer's first error */
	tc_store *store;
	tc_file *fh;
	uint64_t size;
	XXH3_state_t *hs;
};

static void *write_batches(void *arg)
{
	struct writer *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->k[w->take] && !w->end)
			pthread_cond_wait(&w->cond, &w->lock);
		int t = w->take, k = w->k[t];
		if (!k)
			break;
		pthread_mutex_unlock(&w->lock);
		int err = 0;
		for (int j = 0; j < k; j++) {
			redisReply *rep = w->batch[t][j];
			uint64_t off = (w->first[t] + (uint64_t)j) * TCFS_CHUNK;
			size_t want = w->size - off < TCFS_CHUNK
					      ? (size_t)(w->size - off) : TCFS_CHUNK;
			if (!err && (rep->type != REDIS_REPLY_STRING ||
				     rep->len != want))
				err = -ENOENT; /* aged out, or not a chunk */
			if (!err) {
				XXH3_64bits_update(w->hs, rep->str, want);
				ssize_t n = tc_file_write(w->store, w->fh,
							  rep->str, want, off);
				if (n != (ssize_t)want)
					err = n < 0 ? (int)n : -EIO;
			}
			freeReplyObject(rep);
		}
		pthread_mutex_lock(&w->lock);
		if (err && !w->err)
			w->err = err;
		w->k[t] = 0;
		w->take = !t;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Fetch file @f of the manifest into a new tensor @base of directory
 * @dir: its chunks, checked against its xxh3. */
static int fetch_file(struct tcfs_remote *r, struct rconn *c, const char *name,
		      uint64_t dir, const char *base, const cJSON *f,
		      uint64_t *bytes)
{
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(f, "k"));
	const char *hex = cJSON_GetStringValue(cJSON_GetObjectItem(f, "h"));
	const cJSON *jn = cJSON_GetObjectItem(f, "n"), *jc = cJSON_GetObjectItem(f, "c");
	if (!id || !hex || !cJSON_IsNumber(jn) || !cJSON_IsNumber(jc))
		return -EPROTO;
	uint64_t size = (uint64_t)jn->valuedouble, n = (uint64_t)jc->valuedouble;
	if (n != (size ? (size + TCFS_CHUNK - 1) / TCFS_CHUNK : 0))
		return -EPROTO;
	struct tc_stat st;
	struct writer w = { .store = r->store, .size = size };
	pthread_t wt;
	int err = tc_create(r->store, dir, base, 0644, 0, 0, &w.fh, &st);
	if (err)
		return err;
	if (!(w.hs = XXH3_createState())) {
		tc_file_close(r->store, w.fh);
		return -ENOMEM;
	}
	XXH3_64bits_reset(w.hs);
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	if ((err = -pthread_create(&wt, NULL, write_batches, &w)))
		goto out;
	for (uint64_t i = 0; i < n && !err; i += TCFS_BATCH) {
		char keys[TCFS_BATCH][KEY_MAX];
		const char *argv[TCFS_BATCH][2];
		size_t len[TCFS_BATCH][2];
		const char **argvs[TCFS_BATCH];
		const size_t *lens[TCFS_BATCH];
		int argcs[TCFS_BATCH], k;
		redisReply *outs[TCFS_BATCH];
		for (k = 0; k < TCFS_BATCH && i + (uint64_t)k < n; k++) {
			key_chunk(r, name, id, i + (uint64_t)k, keys[k], KEY_MAX);
			argv[k][0] = "GET";
			argv[k][1] = keys[k];
			len[k][0] = 3;
			len[k][1] = strlen(keys[k]);
			argvs[k] = argv[k];
			lens[k] = len[k];
			argcs[k] = 2;
		}
		err = rconn_pipeline(c, keys[0], k, argcs, argvs, lens, outs);
		note(r, err);
		if (err)
			break;
		/* hand the batch over: wait for its slot to be written */
		pthread_mutex_lock(&w.lock);
		while (w.k[w.put] && !w.err)
			pthread_cond_wait(&w.cond, &w.lock);
		err = w.err;
		if (!err) {
			memcpy(w.batch[w.put], outs, sizeof(outs));
			w.first[w.put] = i;
			w.k[w.put] = k;
			w.put = !w.put;
			pthread_cond_broadcast(&w.cond);
		}
		pthread_mutex_unlock(&w.lock);
		if (err)
			for (int j = 0; j < k; j++)
				freeReplyObject(outs[j]);
	}
	pthread_mutex_lock(&w.lock);
	w.end = 1;
	pthread_cond_broadcast(&w.cond);
	pthread_mutex_unlock(&w.lock);
	pthread_join(wt, NULL);
	if (!err)
		err = w.err;
	char got[17];
	snprintf(got, sizeof(got), "%016llx",
		 (unsigned long long)XXH3_64bits_digest(w.hs));
	if (!err && strcmp(got, hex)) {
		atomic_fetch_add(&r->checksum_failures, 1);
		tcfs_log(LOG_WARNING, "remote: '%s' fetched with a bad checksum "
			 "(xxh3 %s, expected %s): not served", name, got, hex);
		err = -EBADMSG;
	}
	if (!err)
		err = tc_file_commit(r->store, w.fh);
out:
	XXH3_freeState(w.hs);
	tc_file_close(r->store, w.fh);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	*bytes += size;
	return err;
}

/* The user's keys @doc of directory @id, with the types of its tensors
 * in @m's files under @path, and for the entry (@path "") its attrs. */
static int fetch_meta(struct tcfs_remote *r, uint64_t id, const char *path,
		      const cJSON *doc, const cJSON *m)
{
	cJSON *ours = cJSON_CreateObject();
	cJSON *ts = cJSON_AddObjectToObject(ours, "tensors");
	const cJSON *f;
	size_t pl = strlen(path);
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(m, "files")) {
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(f, "p"));
		const cJSON *dt = cJSON_GetObjectItem(f, "dt");
		const cJSON *sh = cJSON_GetObjectItem(f, "sh");
		const char *rest = p && !strncmp(p, path, pl) ? p + pl : NULL;
		if (rest && pl && *rest == '/')
			rest++;
		else if (pl)
			rest = NULL;
		if (!rest || strchr(rest, '/') || !cJSON_IsString(dt) ||
		    !cJSON_IsArray(sh))
			continue;
		cJSON *t = cJSON_AddObjectToObject(ts, rest);
		cJSON_AddItemToObject(t, "dtype", cJSON_Duplicate(dt, 1));
		cJSON_AddItemToObject(t, "shape", cJSON_Duplicate(sh, 1));
	}
	const cJSON *a = cJSON_GetObjectItem(m, "attrs");
	if (!pl && cJSON_IsObject(a))
		cJSON_AddItemToObject(ours, "attrs", cJSON_Duplicate(a, 1));
	/* the user's keys as their text (see user_keys), then ours */
	const char *keys = cJSON_IsString(doc) ? doc->valuestring : "{}";
	char *o = cJSON_PrintUnformatted(ours);
	cJSON_Delete(ours);
	size_t kl = strlen(keys);
	while (kl && keys[kl - 1] != '}')
		kl--;
	char *txt = o && kl ? malloc(kl + strlen(o) + 32) : NULL;
	if (!txt) {
		free(o);
		return kl ? -ENOMEM : -EPROTO;
	}
	int has = memchr(keys, ':', kl) != NULL; /* any member at all */
	sprintf(txt, "%.*s%s\"__tcache__\": %s}", (int)(kl - 1), keys,
		has ? ", " : "", o);
	free(o);
	int err = tc_meta_set(r->store, id, txt, strlen(txt));
	free(txt);
	return err;
}

/* Fetch @name as @m says, under the temporary name @tmp, then rename. */
static int fetch_entry(struct tcfs_remote *r, struct rconn *c, const char *name,
		       const cJSON *m, const char *tmp, uint64_t *bytes)
{
	const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(m, "kind"));
	const cJSON *files = cJSON_GetObjectItem(m, "files"), *f, *d;
	const cJSON *docs = cJSON_GetObjectItem(m, "docs");
	struct tc_stat st;
	int err = 0;

	if (!kind || (strcmp(kind, "file") && strcmp(kind, "dir")))
		return -EPROTO;
	if (!strcmp(kind, "file")) {
		if (cJSON_GetArraySize(files) != 1)
			return -EPROTO;
		err = fetch_file(r, c, name, TC_ROOT_ID, tmp,
				 cJSON_GetArrayItem(files, 0), bytes);
	} else {
		uint64_t top, dir;
		err = tc_mkdir(r->store, TC_ROOT_ID, tmp, 0755, 0, 0, &st);
		top = st.id;
		cJSON_ArrayForEach(d, cJSON_GetObjectItem(m, "dirs")) {
			const char *base;
			if (err)
				break;
			if (!(err = place_of(r->store, top, cJSON_GetStringValue(d),
					     &dir, &base)))
				err = tc_mkdir(r->store, dir, base, 0755, 0, 0, &st);
		}
		cJSON_ArrayForEach(f, files) {
			const char *base;
			if (err)
				break;
			if (!(err = place_of(r->store, top, cJSON_GetStringValue(
						cJSON_GetObjectItem(f, "p")),
					     &dir, &base)))
				err = fetch_file(r, c, name, dir, base, f, bytes);
		}
		/* documents after the files: types name committed tensors */
		if (!err && cJSON_IsObject(docs)) {
			const cJSON *doc;
			cJSON_ArrayForEach(doc, docs) {
				if (err)
					break;
				if (!(err = dir_id(r->store, top, doc->string, &dir)))
					err = fetch_meta(r, dir, doc->string, doc, m);
			}
		}
	}
	if (!err) {
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(m, "parent"));
		if (p && !tc_lookup(r->store, TC_ROOT_ID, tmp, &st))
			tc_link_set(r->store, st.id, p, 0); /* a loop: none */
		err = tc_rename(r->store, TC_ROOT_ID, tmp, TC_ROOT_ID, name,
				TC_RENAME_NOREPLACE);
		if (err == -EEXIST)
			err = 0; /* made here meanwhile: that one stays */
	}
	return err;
}

static uint64_t name_hash(const char *name)
{
	return XXH3_64bits(name, strlen(name)) | 1;
}

int tcfs_remote_fetch(struct tcfs_remote *r, const char *name)
{
	struct flight *fl, **pp;
	uint64_t h = name_hash(name);
	int err;

	if (!r || !strncmp(name, TEMP_PREFIX, strlen(TEMP_PREFIX)))
		return -ENOENT;
	pthread_mutex_lock(&r->lock);
	unsigned slot = (unsigned)(h % TCFS_NEG_SLOTS);
	if (r->neg[slot].h == h && r->neg[slot].until > now_ms()) {
		pthread_mutex_unlock(&r->lock);
		return -ENOENT;
	}
	for (fl = r->flights; fl; fl = fl->next)
		if (!strcmp(fl->name, name))
			break;
	if (fl) { /* one fetch at a time per name: wait for it */
		fl->waiters++;
		while (!fl->done)
			pthread_cond_wait(&r->landed, &r->lock);
		err = fl->result;
		if (!--fl->waiters)
			free(fl);
		pthread_mutex_unlock(&r->lock);
		return err;
	}
	fl = calloc(1, sizeof(*fl));
	if (!fl) {
		pthread_mutex_unlock(&r->lock);
		return -ENOENT;
	}
	snprintf(fl->name, sizeof(fl->name), "%s", name);
	fl->next = r->flights;
	r->flights = fl;
	pthread_mutex_unlock(&r->lock);

	struct rconn *c = pool_take(r);
	cJSON *m = NULL;
	err = -ENOMEM;
	if (c)
		m = manifest_get(r, c, name, &err);
	uint64_t bytes = 0;
	if (m) {
		char tmp[64];
		static atomic_uint_fast64_t seq;
		snprintf(tmp, sizeof(tmp), TEMP_PREFIX "fetch-%lx-%lx",
			 (unsigned long)getpid(),
			 (unsigned long)atomic_fetch_add(&seq, 1));
		tl_fetching = 1;
		err = fetch_entry(r, c, name, m, tmp, &bytes);
		if (err)
			remove_tree(r->store, TC_ROOT_ID, tmp);
		tl_fetching = 0;
		if (err && err != -EBADMSG)
			atomic_fetch_add(&r->failed, 1);
		if (!err) {
			atomic_fetch_add(&r->fetched, 1);
			atomic_fetch_add(&r->fetched_bytes, bytes);
		}
		cJSON_Delete(m);
	} else if (!err) {
		err = -ENOENT;
	}
	if (c)
		pool_put(r, c);

	pthread_mutex_lock(&r->lock);
	if (err) {
		r->neg[slot].h = h;
		r->neg[slot].until = now_ms() + TCFS_NEG_MS;
	}
	for (pp = &r->flights; *pp != fl; pp = &(*pp)->next)
		;
	*pp = fl->next;
	fl->done = 1;
	fl->result = err ? -ENOENT : 0;
	if (fl->waiters)
		pthread_cond_broadcast(&r->landed); /* the last frees it */
	else
		free(fl);
	pthread_mutex_unlock(&r->lock);
	return err ? -ENOENT : 0;
}

/* ---- life ---------------------------------------------------------------- */

int tcfs_remote_new(const struct tcfs_remote_opts *o, tc_store *s,
		    struct tcfs_remote **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!o->url) {
		if (o->prefix || o->password_file || o->mode || o->timeout ||
		    o->queue) {
			snprintf(err, errlen, "remote_* options need -o remote=URL");
			return -EINVAL;
		}
		return 0;
	}
	struct tcfs_remote *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->store = s;
	r->conf.timeout_ms = 500;
	r->queue_max = 256ull << 20;
	atomic_init(&r->up, -1);
	snprintf(r->url, sizeof(r->url), "%s", o->url);
	snprintf(r->prefix, sizeof(r->prefix), "%s", o->prefix ? o->prefix : "tcache");
	int rc = rconn_parse_url(o->url, &r->conf, err, errlen);
	if (!rc && o->prefix) {
		size_t n = strlen(o->prefix);
		if (!n || n >= sizeof(r->prefix) || strpbrk(o->prefix, "{}: \t\n")) {
			snprintf(err, errlen, "bad remote_prefix '%s': 1 to %zu "
				 "characters, none of {}: or spaces", o->prefix,
				 sizeof(r->prefix) - 1);
			rc = -EINVAL;
		}
	}
	if (!rc && o->timeout) {
		char *end;
		long ms = strtol(o->timeout, &end, 10);
		if (*end || end == o->timeout || ms < 1 || ms > 600000) {
			snprintf(err, errlen, "bad remote_timeout '%s': "
				 "milliseconds from 1 to 600000", o->timeout);
			rc = -EINVAL;
		}
		r->conf.timeout_ms = (int)ms;
	}
	if (!rc && o->queue && (tc_parse_size(o->queue, &r->queue_max) ||
				r->queue_max < TCFS_CHUNK)) {
		snprintf(err, errlen, "bad remote_queue '%s': a size of at "
			 "least 4M, e.g. 256M", o->queue);
		rc = -EINVAL;
	}
	if (!rc && o->mode) {
		if (!strcmp(o->mode, "read-only"))
			r->read_only = 1;
		else if (strcmp(o->mode, "write-through")) {
			snprintf(err, errlen, "bad remote_mode '%s': "
				 "write-through or read-only", o->mode);
			rc = -EINVAL;
		}
	}
	if (!rc && o->password_file)
		rc = rconn_read_password(o->password_file, &r->conf, err, errlen);
	if (rc) {
		free(r);
		return rc;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	pthread_cond_init(&r->landed, NULL);
	*out = r;
	return 0;
}

void tcfs_remote_set_store(struct tcfs_remote *r, tc_store *s)
{
	r->store = s;
}

int tcfs_remote_start(struct tcfs_remote *r)
{
	if (!r || r->read_only)
		return 0;
	int err = pthread_create(&r->pusher, NULL, pusher, r);
	if (err)
		return -err;
	r->started = 1;
	tc_store_on_change(r->store, changed, r);
	return 0;
}

void tcfs_remote_free(struct tcfs_remote *r)
{
	if (!r)
		return;
	if (r->started) {
		tc_store_on_change(r->store, NULL, NULL);
		pthread_mutex_lock(&r->lock);
		r->stop = 1;
		pthread_cond_signal(&r->wake);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->pusher, NULL);
	}
	while (r->head) {
		struct job *j = r->head;
		r->head = j->next;
		free(j);
	}
	for (int i = 0; i < r->npool; i++)
		rconn_free(r->pool[i]);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->wake);
	pthread_cond_destroy(&r->landed);
	free(r);
}

size_t tcfs_remote_stats(struct tcfs_remote *r, char *buf, size_t size)
{
	uint64_t qn, qb;
	pthread_mutex_lock(&r->lock);
	qn = r->queue_n;
	qb = r->queue_bytes;
	pthread_mutex_unlock(&r->lock);
	cJSON *u = cJSON_CreateString(r->url); /* escaped as JSON */
	char *url = u ? cJSON_PrintUnformatted(u) : NULL;
	cJSON_Delete(u);
	int n = snprintf(buf, size,
		"\"url\": %s, \"mode\": \"%s\", \"connected\": %s, "
		"\"queue_entries\": %" PRIu64 ", \"queue_bytes\": %" PRIu64 ", "
		"\"pushed\": %" PRIu64 ", \"pushed_bytes\": %" PRIu64 ", "
		"\"fetched\": %" PRIu64 ", \"fetched_bytes\": %" PRIu64 ", "
		"\"dropped\": %" PRIu64 ", \"failed\": %" PRIu64 ", "
		"\"checksum_failures\": %" PRIu64,
		url ? url : "null", r->read_only ? "read-only" : "write-through",
		atomic_load(&r->up) == 1 ? "true" : "false", qn, qb,
		(uint64_t)atomic_load(&r->pushed),
		(uint64_t)atomic_load(&r->pushed_bytes),
		(uint64_t)atomic_load(&r->fetched),
		(uint64_t)atomic_load(&r->fetched_bytes),
		(uint64_t)atomic_load(&r->dropped),
		(uint64_t)atomic_load(&r->failed),
		(uint64_t)atomic_load(&r->checksum_failures));
	free(url);
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}
