/*
 * tcache.c - the tcache command: everyday tools for a tcachefs cache.
 *
 *   tcache stats  MNT|STORE [--json]       how full and how useful
 *   tcache ls     MNT [--sort=lru|size|name] [--json]
 *   tcache prune  MNT --older-than AGE [--dry-run]
 *   tcache pin    MNT/ENTRY...             never evict these
 *   tcache unpin  MNT/ENTRY...
 *   tcache key    STRING...                a safe entry name for a key
 *   tcache key    --tokens FILE --page-size N   KV page keys (SGLang's chain)
 *   tcache match  MNT --tokens FILE --page-size N   tokens cached as pages
 *   tcache sync   MNT...                   make every committed tensor durable
 *   tcache fsck   STORE [--repair] [--json]
 *
 * Commands on a mount (MNT) use only the file system: each entry's
 * meta.json, rm, chmod (a pin is the entry's sticky bit) and the root's
 * stats file, so they need no privileges beyond the files' own.  Commands
 * on a STORE directory open it through libtcache and so need it unmounted.
 * Exit codes: 0 fine, 1 the command found a problem (fsck damage, a
 * prune that could not remove something), 2 it could not run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include <cjson/cJSON.h>

#include "tcache.h"
#include "tokens.h"

static const char *prog = "tcache";

/* ---- small helpers ------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static const char *human(double v, char *buf, size_t n)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	int i = 0;
	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
	return buf;
}

/* Read a whole small file (a meta.json, the stats file). */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (len + 4097 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (!nb)
				break;
			buf = nb;
		}
		size_t got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad || !buf) {
		free(buf);
		return NULL;
	}
	buf[len] = 0;
	return buf;
}

static cJSON *read_json(const char *path)
{
	char *txt = slurp(path);
	cJSON *j = txt ? cJSON_Parse(txt) : NULL;
	free(txt);
	return j;
}

/* RFC 3339 UTC "2026-11-23T16:22:12.123456789Z" -> seconds (0 on error). */
static double parse_time(const char *s)
{
	struct tm tm = { 0 };
	double frac = 0;
	if (!s)
		return 0;
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return 0;
	if (*rest == '.')
		frac = strtod(rest, NULL);
	return (double)timegm(&tm) + frac;
}

static const char *ago(double t, char *buf, size_t n)
{
	double d = (double)time(NULL) - t;
	if (t <= 0)
		snprintf(buf, n, "never");
	else if (d < 120)
		snprintf(buf, n, "%.0f s ago", d < 0 ? 0 : d);
	else if (d < 7200)
		snprintf(buf, n, "%.0f min ago", d / 60);
	else if (d < 172800)
		snprintf(buf, n, "%.0f h ago", d / 3600);
	else
		snprintf(buf, n, "%.0f days ago", d / 86400);
	return buf;
}

/* "7d", "12h", "30m", "45s", "2w", "90" (seconds) -> seconds, or -1. */
static double parse_age(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0)
		return -1;
	double mult = 1;
	switch (*end) {
	case 0: break;
	case 's': mult = 1; end++; break;
	case 'm': mult = 60; end++; break;
	case 'h': mult = 3600; end++; break;
	case 'd': mult = 86400; end++; break;
	case 'w': mult = 604800; end++; break;
	default: return -1;
	}
	return *end ? -1 : v * mult;
}

static int is_store(const char *path)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/journal", path);
	return access(p, F_OK) == 0;
}

/* A tcachefs mount root: it has the stats file. */
static int is_mount(const char *path)
{
	char p[4096];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", path, TC_STATS_NAME);
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The source of the tcachefs mount at @path (the daemon names its store
 * there): @buf, or NULL. */
static char *mount_source(const char *path, char *buf, size_t size)
{
	char real[PATH_MAX];
	struct tc_mount m;
	if (!realpath(path, real) || tc_mount_at(real, &m) ||
	    strcmp(m.type, "fuse.tcachefs"))
		return NULL;
	snprintf(buf, size, "%s", m.source);
	return buf;
}

static int check_mount(const char *cmd, const char *mnt)
{
	if (is_mount(mnt))
		return 0;
	fprintf(stderr, "%s %s: %s: not a tcachefs mount%s\n", prog, cmd, mnt,
		is_store(mnt) ? " (that is a store: mount it first)" : "");
	return -1;
}

/* An open of @dir answered -EBUSY: wait for a daemon that is still closing
 * it after its unmount (saying so), or name who has it open in @why.
 * 0: open it again. */
static void say_waiting(void *arg, const char *msg)
{
	fprintf(stderr, "%s: %s: %s\n", prog, (const char *)arg, msg);
}

static int store_busy(const char *dir, char *why, size_t n)
{
	return tc_store_busy(dir, TC_BUSY_WAIT_MS, say_waiting, (void *)dir, why,
			     n);
}

static const char *store_err(int err)
{
	switch (err) {
	case -EBUSY: return "store is in use (mounted?)";
	case -ENOENT: return "no tcachefs store there";
	case -EPROTO: return "not a tcachefs store, or of an unknown format version";
	default: return strerror(-err);
	}
}

static int help_wanted(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	return 0;
}

/* ---- stats ------------------------------------------------------------------ */

static uint64_t jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int cmd_stats(int argc, char **argv)
{
	int json = 0;
	if (help_wanted(argc, argv)) {
		printf("usage: %s stats MNT|STORE [--json]\n\n"
		       "How full and how useful the cache is: capacity, used, free,\n"
		       "entries, tensors, probes, hits, misses, hit rate, evictions,\n"
		       "bytes evicted, oldest and newest access.  MNT reads the mount's\n"
		       "%s file (cat it for the same JSON); STORE reads the same\n"
		       "through its mount when it is mounted, else the store itself,\n"
		       "changing nothing.\n\n"
		       "  probes   lookups of top-level names, there or not (stat,\n"
		       "           os.path.exists, a path's first use)\n"
		       "  hits     opens for reading of a stored tensor\n"
		       "  misses   lookups of top-level names that were not there\n"
		       "           and were not made within 2 s (by mkdir, a create,\n"
		       "           a rename); counted once the 2 s are over\n"
		       "  hit rate hits / (hits + misses)\n\n"
		       "  --json   the numbers as JSON\n", prog, TC_STATS_NAME);
		return 0;
	}
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!path && argv[i][0] != '-')
			path = argv[i];
		else {
			fprintf(stderr, "%s stats: unexpected '%s' (try --help)\n", prog, argv[i]);
			return 2;
		}
	}
	if (!path) {
		fprintf(stderr, "%s stats: expected MNT or STORE (try --help)\n", prog);
		return 2;
	}
	char *txt = NULL;
	if (is_mount(path)) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", path, TC_STATS_NAME);
		txt = slurp(p);
	} else if (is_store(path)) {
		struct tc_stats st;
		struct tc_mount m;
		char why[8192] = "", p[8192];
		size_t len;
		if (tc_mount_of(path, &m) == 0) {
			/* mounted: the live numbers, from the mount */
			snprintf(p, sizeof(p), "%s/%s", m.point, TC_STATS_NAME);
			if ((txt = slurp(p)) != NULL)
				goto parse;
		}
		int r = tc_store_peek(path, &st);
		if (r == -EBUSY && store_busy(path, why, sizeof(why)) == 0)
			r = tc_store_peek(path, &st);
		if (r) {
			fprintf(stderr, "%s stats: %s: %s\n", prog, path,
				r == -EBUSY && why[0] ? why : store_err(r));
			return 2;
		}
		if (tc_stats_json(&st, &txt, &len))
			txt = NULL;
	} else {
		fprintf(stderr, "%s stats: %s: neither a tcachefs mount nor a store\n",
			prog, path);
		return 2;
	}
parse:;
	cJSON *o = txt ? cJSON_Parse(txt) : NULL;
	if (!o) {
		fprintf(stderr, "%s stats: %s: cannot read the statistics\n", prog, path);
		free(txt);
		return 2;
	}
	if (json) {
		fputs(txt, stdout);
	} else {
		char a[32], b[32], c[32], t1[32], t2[32];
		uint64_t cap = jnum(o, "capacity"), used = jnum(o, "used");
		uint64_t hits = jnum(o, "hits"), misses = jnum(o, "misses");
		printf("capacity      %s\n", human((double)cap, a, sizeof(a)));
		printf("used          %s (%.1f%%), free %s\n", human((double)used, b, sizeof(b)),
		       cap ? 100.0 * (double)used / (double)cap : 0.0,
		       human((double)(cap - used), c, sizeof(c)));
		printf("entries       %llu (%llu pinned), tensors %llu, groups %llu\n",
		       (unsigned long long)jnum(o, "entries"), (unsigned long long)jnum(o, "pinned"),
		       (unsigned long long)jnum(o, "tensors"), (unsigned long long)jnum(o, "groups"));
		printf("probes        %llu (lookups of top-level names)\n",
		       (unsigned long long)jnum(o, "probes"));
		printf("hits          %llu, misses %llu", (unsigned long long)hits,
		       (unsigned long long)misses);
		if (hits + misses)
			printf(", hit rate %.1f%%\n",
			       100.0 * (double)hits / (double)(hits + misses));
		else
			printf(" (no hit rate yet)\n");
		printf("evictions     %llu (%s evicted)\n", (unsigned long long)jnum(o, "evictions"),
		       human((double)jnum(o, "evicted_bytes"), a, sizeof(a)));
		const char *old = jstr(o, "oldest_access"), *new = jstr(o, "newest_access");
		printf("oldest access %s%s%s%s\n", old ? old : "-", old ? " (" : "",
		       old ? ago(parse_time(old), t1, sizeof(t1)) : "", old ? ")" : "");
		printf("newest access %s%s%s%s\n", new ? new : "-", new ? " (" : "",
		       new ? ago(parse_time(new), t2, sizeof(t2)) : "", new ? ")" : "");
		if (jnum(o, "journal_dropped") || jnum(o, "nodes_dropped"))
			printf("recovered     %llu damaged journal records, %llu tensors dropped\n",
			       (unsigned long long)jnum(o, "journal_dropped"),
			       (unsigned long long)jnum(o, "nodes_dropped"));
		if (jnum(o, "damaged"))
			printf("damaged       %llu tensors fail their xxh3: reads of them "
			       "fail (EIO); tcache fsck --repair removes them\n",
			       (unsigned long long)jnum(o, "damaged"));
		const cJSON *rm = cJSON_GetObjectItemCaseSensitive(o, "remote");
		if (cJSON_IsObject(rm)) {
			const char *url = jstr(rm, "url"), *mode = jstr(rm, "mode");
			printf("remote        %s, %s, %s\n", url ? url : "?",
			       mode ? mode : "?",
			       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rm, "connected"))
				       ? "connected" : "not connected");
			printf("  queue       %llu entries, %s\n",
			       (unsigned long long)jnum(rm, "queue_entries"),
			       human((double)jnum(rm, "queue_bytes"), a, sizeof(a)));
			printf("  pushed      %llu entries (%s), fetched %llu (%s)\n",
			       (unsigned long long)jnum(rm, "pushed"),
			       human((double)jnum(rm, "pushed_bytes"), a, sizeof(a)),
			       (unsigned long long)jnum(rm, "fetched"),
			       human((double)jnum(rm, "fetched_bytes"), b, sizeof(b)));
			printf("  dropped     %llu, failed %llu, checksum failures %llu\n",
			       (unsigned long long)jnum(rm, "dropped"),
			       (unsigned long long)jnum(rm, "failed"),
			       (unsigned long long)jnum(rm, "checksum_failures"));
		}
		const cJSON *ur = cJSON_GetObjectItemCaseSensitive(o, "uring");
		if (cJSON_IsObject(ur)) {
			if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ur, "on"))) {
				printf("io_uring      on: %llu queues, %llu requests",
				       (unsigned long long)jnum(ur, "queues"),
				       (unsigned long long)jnum(ur, "requests"));
				const cJSON *bq = cJSON_GetObjectItemCaseSensitive(ur, "by_queue");
				const cJSON *q;
				const char *sep = " (per CPU: ";
				cJSON_ArrayForEach(q, bq) {
					printf("%s%.0f", sep, cJSON_IsNumber(q) ? q->valuedouble : 0.0);
					sep = ", ";
				}
				printf("%s\n", cJSON_GetArraySize(bq) ? ")" : "");
			} else {
				const char *why = jstr(ur, "why");
				printf("io_uring      off: %s\n", why ? why : "?");
			}
		}
	}
	cJSON_Delete(o);
	free(txt);
	return 0;
}

/* ---- ls ---------------------------------------------------------------------- */

struct entry {
	char *name;
	double last_access;
	char *last_access_s;
	int pinned;
	uint64_t bytes, tensors;
};

/* The generated part of @dir's meta.json (the user's keys beside it are
 * not ours to read), or NULL. */
static cJSON *read_ours(const char *dir)
{
	char p[8192];
	snprintf(p, sizeof(p), "%s/%s", dir, TC_META_NAME);
	cJSON *doc = read_json(p);
	cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(doc, "__tcache__");
	cJSON_Delete(doc);
	return m;
}

/* Sum nbytes and count tensors of @dir's meta.json, and of its groups. */
static int dir_usage(const char *dir, uint64_t *bytes, uint64_t *tensors,
		     cJSON **meta_out)
{
	char p[8192];
	cJSON *m = read_ours(dir);
	if (!m)
		return -1;
	const cJSON *t;
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(m, "tensors")) {
		*bytes += jnum(t, "nbytes");
		(*tensors)++;
	}
	const cJSON *g;
	cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(m, "groups")) {
		if (!cJSON_IsString(g))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, g->valuestring);
		dir_usage(p, bytes, tensors, NULL);
	}
	if (meta_out)
		*meta_out = m;
	else
		cJSON_Delete(m);
	return 0;
}

/* Read every entry of mount @mnt.  Returns the count, or -1. */
static long read_entries(const char *mnt, struct entry **out)
{
	DIR *d = opendir(mnt);
	struct dirent *de;
	struct entry *v = NULL;
	size_t n = 0, cap = 0;
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char p[8192];
		cJSON *m = NULL;
		struct entry e = { 0 };
		struct statx st;
		snprintf(p, sizeof(p), "%s/%s", mnt, de->d_name);
		/* fresh attributes: the kernel's may predate the last open */
		if (statx(AT_FDCWD, p, AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC,
			  STATX_BASIC_STATS, &st))
			continue; /* evicted or removed meanwhile */
		if (S_ISREG(st.stx_mode)) {
			/* a file is an entry of one tensor: its atime is its
			 * last access, its sticky bit its pin */
			char la[64];
			struct tm tm;
			time_t sec = (time_t)st.stx_atime.tv_sec;
			gmtime_r(&sec, &tm);
			snprintf(la, sizeof(la), "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ",
				 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
				 tm.tm_hour, tm.tm_min, tm.tm_sec, st.stx_atime.tv_nsec);
			e.bytes = st.stx_size;
			e.tensors = 1;
			e.last_access_s = strdup(la);
			e.last_access = (double)st.stx_atime.tv_sec +
					(double)st.stx_atime.tv_nsec / 1e9;
			e.pinned = (st.stx_mode & S_ISVTX) != 0;
		} else {
			if (dir_usage(p, &e.bytes, &e.tensors, &m))
				continue; /* evicted or removed meanwhile */
			const char *la = jstr(m, "last_access");
			e.last_access_s = strdup(la ? la : "-");
			e.last_access = parse_time(la);
			e.pinned = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "pinned"));
			cJSON_Delete(m);
		}
		e.name = strdup(de->d_name);
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct entry *nv = realloc(v, cap * sizeof(*nv));
			if (!nv)
				break;
			v = nv;
		}
		v[n++] = e;
	}
	closedir(d);
	*out = v;
	return (long)n;
}

static void free_entries(struct entry *v, long n)
{
	for (long i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].last_access_s);
	}
	free(v);
}

static int by_lru(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return x->last_access < y->last_access ? -1 : x->last_access > y->last_access;
}

static int by_size(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return x->bytes > y->bytes ? -1 : x->bytes < y->bytes;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sort", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int (*cmp)(const void *, const void *) = by_lru;
	int json = 0, c;
	while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!strcmp(optarg, "lru"))
				cmp = by_lru;
			else if (!strcmp(optarg, "size"))
				cmp = by_size;
			else if (!strcmp(optarg, "name"))
				cmp = by_name;
			else {
				fprintf(stderr, "%s ls: --sort takes lru, size or name\n", prog);
				return 2;
			}
			break;
		case 'j': json = 1; break;
		case 'h':
			printf("usage: %s ls MNT [--sort=lru|size|name] [--json]\n\n"
			       "The entries of a mount with their size (tensor bytes, groups\n"
			       "included), last access and pin.  --sort=lru (the default)\n"
			       "lists the next to be evicted first; size, largest first.\n",
			       prog);
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "%s ls: expected one MNT (try --help)\n", prog);
		return 2;
	}
	const char *mnt = argv[optind];
	if (check_mount("ls", mnt))
		return 2;
	struct entry *v;
	long n = read_entries(mnt, &v);
	if (n < 0) {
		fprintf(stderr, "%s ls: %s: %s\n", prog, mnt, strerror(errno));
		return 2;
	}
	qsort(v, (size_t)n, sizeof(*v), cmp);
	if (json) {
		printf("[");
		for (long i = 0; i < n; i++) {
			printf("%s\n  {\"name\": ", i ? "," : "");
			json_str(stdout, v[i].name);
			printf(", \"bytes\": %llu, \"tensors\": %llu, \"last_access\": ",
			       (unsigned long long)v[i].bytes, (unsigned long long)v[i].tensors);
			json_str(stdout, v[i].last_access_s);
			printf(", \"pinned\": %s}", v[i].pinned ? "true" : "false");
		}
		printf("%s]\n", n ? "\n" : "");
	} else {
		char a[32], t[32];
		printf("%-10s %8s %-14s %-6s %s\n", "SIZE", "TENSORS", "LAST ACCESS", "PINNED", "NAME");
		for (long i = 0; i < n; i++)
			printf("%-10s %8llu %-14s %-6s %s\n", human((double)v[i].bytes, a, sizeof(a)),
			       (unsigned long long)v[i].tensors, ago(v[i].last_access, t, sizeof(t)),
			       v[i].pinned ? "yes" : "no", v[i].name);
	}
	free_entries(v, n);
	return 0;
}

/* ---- prune -------------------------------------------------------------------- */

/* nftw callback removing a tree bottom-up (meta.json is never listed). */
static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)f;
	return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static int cmd_prune(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "older-than", required_argument, NULL, 'o' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	double age = -1;
	int dry = 0, c;
	while ((c = getopt_long(argc, argv, "o:nh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			age = parse_age(optarg);
			if (age < 0) {
				fprintf(stderr, "%s prune: bad age '%s' (e.g. 7d, 12h, 30m, 45s, 2w)\n",
					prog, optarg);
				return 2;
			}
			break;
		case 'n': dry = 1; break;
		case 'h':
			printf("usage: %s prune MNT --older-than AGE [--dry-run]\n\n"
			       "Remove the entries whose last access is older than AGE\n"
			       "(7d, 12h, 30m, 45s, 2w).  Pinned entries stay.  --dry-run\n"
			       "lists what would go.  Progress shows on a terminal.\n", prog);
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1 || age < 0) {
		fprintf(stderr, "%s prune: expected MNT and --older-than AGE (try --help)\n", prog);
		return 2;
	}
	const char *mnt = argv[optind];
	if (check_mount("prune", mnt))
		return 2;
	struct entry *v;
	long n = read_entries(mnt, &v);
	if (n < 0) {
		fprintf(stderr, "%s prune: %s: %s\n", prog, mnt, strerror(errno));
		return 2;
	}
	double cutoff = (double)time(NULL) - age;
	long gone = 0, failed = 0, todo = 0;
	uint64_t bytes = 0;
	int tty = isatty(2);
	for (long i = 0; i < n; i++)
		todo += !v[i].pinned && v[i].last_access < cutoff;
	for (long i = 0; i < n; i++) {
		if (v[i].pinned || v[i].last_access >= cutoff)
			continue;
		char p[8192];
		snprintf(p, sizeof(p), "%s/%s", mnt, v[i].name);
		if (dry) {
			printf("would remove %s (%llu bytes, last access %s)\n", v[i].name,
			       (unsigned long long)v[i].bytes, v[i].last_access_s);
		} else if (nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0) {
			gone++;
			bytes += v[i].bytes;
		} else {
			fprintf(stderr, "%s prune: %s: %s\n", prog, p, strerror(errno));
			failed++;
		}
		if (tty && !dry)
			fprintf(stderr, "\rpruning: %ld/%ld", gone + failed, todo);
	}
	if (tty && !dry && todo)
		fprintf(stderr, "\n");
	if (dry)
		printf("%ld of %ld entries would be removed\n", todo, n);
	else
		printf("removed %ld of %ld entries (%llu bytes)%s\n", gone, n,
		       (unsigned long long)bytes, failed ? "; some could not be removed" : "");
	free_entries(v, n);
	return failed ? 1 : 0;
}

/* ---- pin / unpin ------------------------------------------------------------- */

static int cmd_pin(int argc, char **argv, int pin)
{
	const char *cmd = pin ? "pin" : "unpin";
	if (help_wanted(argc, argv) || argc < 2) {
		printf("usage: %s %s MNT/ENTRY...\n\n"
		       "%s entries (directories or files at the top of the mount): a\n"
		       "pinned entry is never evicted.  The pin is the entry's sticky bit,\n"
		       "so 'chmod +t MNT/ENTRY' and 'chmod -t' do the same, and it shows\n"
		       "as \"pinned\" in a directory's meta.json.\n",
		       prog, cmd, pin ? "Pin" : "Unpin");
		return argc < 2 ? 2 : 0;
	}
	int bad = 0;
	for (int i = 1; i < argc; i++) {
		char *copy = strdup(argv[i]);
		struct stat st, pst;
		const char *parent = dirname(copy);
		if (stat(argv[i], &st) || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) ||
		    !is_mount(parent) ||
		    stat(parent, &pst) || pst.st_ino != 1) {
			fprintf(stderr, "%s %s: %s: not an entry of a tcachefs mount\n",
				prog, cmd, argv[i]);
			bad = 1;
		} else if (chmod(argv[i], pin ? (st.st_mode & 07777) | S_ISVTX
					      : (st.st_mode & 07777) & ~S_ISVTX)) {
			fprintf(stderr, "%s %s: %s: %s\n", prog, cmd, argv[i], strerror(errno));
			bad = 1;
		}
		free(copy);
	}
	return bad ? 2 : 0;
}

/* ---- key ----------------------------------------------------------------------- */

/* The options of the page commands, key --tokens and match. */
struct page_args {
	const char *tokens, *ns, *suffix;
	size_t page_size;
	int have_prior;
	uint8_t prior[SHA256_BYTES];
};

/* Parse the page options of @cmd (match takes --suffix too) from
 * argv[optind...]; leaves the operands at optind.  0, or 2 (the exit code)
 * after a message. */
static int page_options(const char *cmd, int argc, char **argv, struct page_args *a)
{
	static const struct option opts[] = {
		{ "tokens", required_argument, NULL, 't' },
		{ "page-size", required_argument, NULL, 'p' },
		{ "prior", required_argument, NULL, 'r' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "suffix", required_argument, NULL, 's' },
		{ 0 },
	};
	int c;

	memset(a, 0, sizeof(*a));
	a->suffix = "";
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case 't': a->tokens = optarg; break;
		case 'n': a->ns = optarg; break;
		case 's':
			if (strcmp(cmd, "match") || strchr(optarg, '/')) {
				fprintf(stderr, "%s %s: %s\n", prog, cmd, strcmp(cmd, "match") ?
					"--suffix is for match" : "--suffix may not contain '/'");
				return 2;
			}
			a->suffix = optarg;
			break;
		case 'r':
			if (hex_digest(optarg, a->prior)) {
				fprintf(stderr, "%s %s: --prior takes a page key (64 hex "
					"digits), not '%s'\n", prog, cmd, optarg);
				return 2;
			}
			a->have_prior = 1;
			break;
		case 'p': {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' || *end || errno ||
			    v < 1 || v > (1ull << 30)) {
				fprintf(stderr, "%s %s: --page-size takes a number of tokens, "
					"1 to 2^30, not '%s'\n", prog, cmd, optarg);
				return 2;
			}
			a->page_size = (size_t)v;
			break;
		}
		case ':':
			fprintf(stderr, "%s %s: '%s' needs a value (try --help)\n", prog,
				cmd, argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "%s %s: unknown option '%s' (try --help)\n", prog,
				cmd, argv[optind - 1]);
			return 2;
		}
	}
	if (!a->tokens || !a->page_size) {
		fprintf(stderr, "%s %s: expected --tokens FILE|- and --page-size N "
			"(try --help)\n", prog, cmd);
		return 2;
	}
	return 0;
}

static int print_key(size_t i, const char *key, void *arg)
{
	(void)i; (void)arg;
	return puts(key) < 0;
}

/* tcache key --tokens FILE|- --page-size N [--prior HEX] [--namespace NS] */
static int key_pages(int argc, char **argv)
{
	struct page_args a;
	char err[512];
	uint32_t *ids;
	size_t n;
	int rc;

	optind = 0;
	if ((rc = page_options("key", argc, argv, &a)))
		return rc;
	if (optind != argc) {
		fprintf(stderr, "%s key: unexpected '%s' with --tokens (try --help)\n",
			prog, argv[optind]);
		return 2;
	}
	if (tokens_read(a.tokens, &ids, &n, err, sizeof err)) {
		fprintf(stderr, "%s key: %s\n", prog, err);
		return 2;
	}
	rc = page_keys(ids, n, a.page_size, a.have_prior ? a.prior : NULL, a.ns,
		       print_key, NULL);
	free(ids);
	if (rc || fflush(stdout)) {
		fprintf(stderr, "%s key: writing the keys: %s\n", prog, strerror(errno));
		return 2;
	}
	return 0;
}

static int cmd_key(int argc, char **argv)
{
	if (help_wanted(argc, argv) || argc < 2) {
		printf("usage: %s key STRING...\n"
		       "       %s key --tokens FILE|- --page-size N [--prior HEX] [--namespace NS]\n\n"
		       "A stable, file-system-safe entry name for a key made of one or\n"
		       "more strings: 32 hex digits of XXH3-128 over the strings, each\n"
		       "preceded by its length, so (\"ab\",\"c\") and (\"a\",\"bc\") differ.\n"
		       "  mkdir \"$MNT/$(%s key \"$model\" \"$prompt\")\"\n"
		       "STRINGs that start with \"--\" go after a \"--\" (else they are\n"
		       "options: --tokens below).\n\n"
		       "With --tokens: the keys SGLang gives the KV pages of a token\n"
		       "sequence, one a line (tcache.page_hashes in Python): page i's key\n"
		       "is the hex SHA-256 of page i-1's raw digest (none for the first\n"
		       "page), then each token id as 4 bytes little-endian.  Only full\n"
		       "pages get a key.  Tokens are whitespace-separated integers in\n"
		       "[0, 2^32), or a .npy 1-d integer array (i1..i8, u1..u8), from\n"
		       "FILE or stdin (-).\n"
		       "  --page-size N    tokens per page\n"
		       "  --prior HEX      the key of the page before the first (a chain\n"
		       "                   continued)\n"
		       "  --namespace NS   keep one model's (or tenant's) keys apart: the\n"
		       "                   digest of \"tcache-namespace:\"NS is hashed into\n"
		       "                   every page first; without it the keys are\n"
		       "                   SGLang's exactly\n", prog, prog, prog);
		return argc < 2 ? 2 : 0;
	}
	int strings = 1;
	if (!strcmp(argv[1], "--")) {
		argc--;
		argv++;
	} else {
		for (int i = 1; i < argc; i++)
			if (!strncmp(argv[i], "--", 2))
				strings = 0;
	}
	if (!strings)
		return key_pages(argc, argv);
	if (argc < 2) {
		fprintf(stderr, "%s key: expected STRING... (try --help)\n", prog);
		return 2;
	}
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return 2;
	XXH3_128bits_reset(st);
	for (int i = 1; i < argc; i++) {
		uint64_t n = strlen(argv[i]);
		uint8_t le[8];
		for (int k = 0; k < 8; k++)
			le[k] = (uint8_t)(n >> (8 * k));
		XXH3_128bits_update(st, le, 8);
		XXH3_128bits_update(st, argv[i], n);
	}
	XXH128_hash_t h = XXH3_128bits_digest(st);
	XXH3_freeState(st);
	printf("%016llx%016llx\n", (unsigned long long)h.high64, (unsigned long long)h.low64);
	return 0;
}

/* ---- match -------------------------------------------------------------------- */

struct match {
	const char *mnt, *suffix;
	size_t pages;
	int err; /* errno of a stat that failed other than "absent" */
};

/* stat(2) of one page: no open, so the page's recency is not touched. */
static int match_page(size_t i, const char *key, void *arg)
{
	struct match *m = arg;
	char p[8192];
	struct stat st;
	(void)i;
	snprintf(p, sizeof(p), "%s/%s%s", m->mnt, key, m->suffix);
	if (stat(p, &st) == 0) {
		m->pages++;
		return 0;
	}
	if (errno != ENOENT)
		m->err = errno;
	return 1;
}

static int cmd_match(int argc, char **argv)
{
	if (help_wanted(argc, argv) || argc < 2) {
		printf("usage: %s match MNT --tokens FILE|- --page-size N [--suffix S]\n"
		       "       [--namespace NS] [--prior HEX]\n\n"
		       "How many tokens of a sequence the cache holds as leading KV pages:\n"
		       "the page size times the number of leading pages present as files\n"
		       "MNT/KEY+S, KEY as '%s key --tokens' prints them (the pages\n"
		       "tcache.PageStore(MNT, N, suffix=S, namespace=NS) writes).\n"
		       "It stops at the first absent page.  Only stat(2): no page's\n"
		       "recency changes.  Tokens and options as for '%s key --tokens'.\n",
		       prog, prog, prog);
		return argc < 2 ? 2 : 0;
	}
	struct page_args a;
	struct match m = { 0 };
	char err[512];
	uint32_t *ids;
	size_t n;
	int rc;

	optind = 0;
	if ((rc = page_options("match", argc, argv, &a)))
		return rc;
	if (optind != argc - 1) {
		fprintf(stderr, "%s match: expected one MNT (try --help)\n", prog);
		return 2;
	}
	m.mnt = argv[optind];
	m.suffix = a.suffix;
	if (strlen(a.suffix) + PAGE_KEY_LEN > NAME_MAX) {
		fprintf(stderr, "%s match: --suffix is too long for a file name\n", prog);
		return 2;
	}
	if (check_mount("match", m.mnt))
		return 2;
	if (tokens_read(a.tokens, &ids, &n, err, sizeof err)) {
		fprintf(stderr, "%s match: %s\n", prog, err);
		return 2;
	}
	page_keys(ids, n, a.page_size, a.have_prior ? a.prior : NULL, a.ns,
		  match_page, &m);
	free(ids);
	if (m.err) {
		fprintf(stderr, "%s match: %s: %s\n", prog, m.mnt, strerror(m.err));
		return 2;
	}
	printf("%zu\n", m.pages * a.page_size);
	return 0;
}

/* ---- sync -------------------------------------------------------------------- */

/* fsync(2) of a directory of the mount reaches the daemon (FUSE's
 * FSYNCDIR), which makes the whole store durable: sync(1) does not reach
 * a FUSE daemon at all on this libfuse. */
static int cmd_sync(int argc, char **argv)
{
	if (help_wanted(argc, argv) || argc < 2) {
		printf("usage: %s sync MNT...\n\n"
		       "Make every tensor committed so far (every close() that returned\n"
		       "0) durable against power loss, at once: fdatasync of the pool,\n"
		       "then of the journal.  sync(1) does not reach a FUSE daemon; this\n"
		       "does.  A program does the same with fsync() of any directory\n"
		       "of the mount, e.g. os.fsync(os.open(MNT, os.O_RDONLY)).\n", prog);
		return argc < 2 ? 2 : 0;
	}
	int bad = 0;
	for (int i = 1; i < argc; i++) {
		int fd = -1;
		if (check_mount("sync", argv[i])) {
			bad = 1;
			continue;
		}
		fd = open(argv[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0) {
			fprintf(stderr, "%s sync: %s: %s\n", prog, argv[i],
				strerror(errno));
			bad = 1;
		}
		if (fd >= 0)
			close(fd);
	}
	return bad ? 2 : 0;
}

/* ---- fsck -------------------------------------------------------------------- */

struct fsck_out {
	int json;
	int n;
	int tty;
};

static void fsck_problem(void *arg, const char *path, const char *problem)
{
	struct fsck_out *o = arg;
	if (o->json) {
		printf("%s\n    {\"path\": ", o->n ? "," : "");
		json_str(stdout, path);
		printf(", \"problem\": ");
		json_str(stdout, problem);
		printf("}");
	} else {
		printf("damaged: %s: %s\n", path, problem);
	}
	o->n++;
}

static int cmd_fsck(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repair", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct fsck_out o = { 0 };
	unsigned flags = 0;
	int c;

	while ((c = getopt_long(argc, argv, "rjh", opts, NULL)) != -1) {
		switch (c) {
		case 'r': flags |= TC_CHECK_REPAIR; break;
		case 'j': o.json = 1; break;
		case 'h':
			printf("usage: %s fsck STORE [--repair] [--json]\n"
			       "\n"
			       "Check a store that no daemon has mounted: replay its journal and\n"
			       "hash every tensor against its xxh3.  Prints each damaged tensor\n"
			       "and what is wrong with it.  Nothing is changed unless --repair:\n"
			       "then damaged tensors are removed and the journal rewritten, so\n"
			       "the store is consistent.\n"
			       "\n"
			       "  --repair   remove what is damaged\n"
			       "  --json     print the result as JSON\n"
			       "\n"
			       "Exit: 0 no damage, 1 damage found (removed with --repair),\n"
			       "2 could not check (usage, store mounted, not a store).\n",
			       prog);
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "%s fsck: expected one STORE (try --help)\n", prog);
		return 2;
	}
	const char *dir = argv[optind];
	struct tc_check r;
	if (is_mount(dir)) {
		char src[4096];
		fprintf(stderr, "%s fsck: %s is a mountpoint; fsck takes the store "
			"directory (%s); unmount first: fusermount3 -u %s\n", prog,
			dir, mount_source(dir, src, sizeof(src)) ? src : "STORE",
			dir);
		return 2;
	}
	if (o.json)
		printf("{\n  \"problems\": [");
	if (!o.json && isatty(2))
		fprintf(stderr, "checking %s ...\n", dir);
	char why[8192] = "";
	int err = tc_store_check(dir, flags, fsck_problem, &o, &r);
	if (err == -EBUSY && store_busy(dir, why, sizeof(why)) == 0)
		err = tc_store_check(dir, flags, fsck_problem, &o, &r);
	if (err) {
		if (o.json)
			printf("]\n}\n");
		fflush(stdout);
		fprintf(stderr, "%s fsck: %s: %s\n", prog, dir,
			err == -EBUSY && why[0] ? why : store_err(err));
		return 2;
	}
	int bad = r.damaged || r.records_dropped || r.nodes_dropped || r.links;
	if (o.json) {
		printf("%s],\n  \"tensors\": %llu, \"bytes\": %llu, \"damaged\": %llu,"
		       " \"records_dropped\": %llu, \"nodes_dropped\": %llu,"
		       " \"repaired\": %llu, \"unsynced\": %llu,"
		       " \"fallbacks\": %llu, \"torn\": %llu, \"links\": %llu,"
		       " \"clean\": %s\n}\n",
		       o.n ? "\n  " : "", (unsigned long long)r.tensors,
		       (unsigned long long)r.bytes, (unsigned long long)r.damaged,
		       (unsigned long long)r.records_dropped,
		       (unsigned long long)r.nodes_dropped,
		       (unsigned long long)r.repaired,
		       (unsigned long long)r.unsynced,
		       (unsigned long long)r.fallbacks,
		       (unsigned long long)r.torn, (unsigned long long)r.links,
		       bad ? "false" : "true");
	} else {
		printf("%s: %llu tensors, %llu bytes checked; %llu damaged, "
		       "%llu journal records and %llu tensors dropped%s\n",
		       dir, (unsigned long long)r.tensors,
		       (unsigned long long)r.bytes, (unsigned long long)r.damaged,
		       (unsigned long long)r.records_dropped,
		       (unsigned long long)r.nodes_dropped,
		       !bad ? "" : flags & TC_CHECK_REPAIR ? "; repaired"
							 : "; run with --repair to remove them");
		if (r.links)
			printf("%s: %llu parent links loop or disagree with their "
			       "counts%s\n", dir, (unsigned long long)r.links,
			       flags & TC_CHECK_REPAIR ? "; loops cut" : "");
		if (r.unsynced || r.fallbacks || r.torn)
			printf("%s: after a crash, %llu tensors written since the last "
			       "sync were not on disk whole (left out as never written), "
			       "%llu replaced tensors keep their previous bytes and %llu "
			       "journal records were never written whole; that is not "
			       "damage\n", dir,
			       (unsigned long long)r.unsynced,
			       (unsigned long long)r.fallbacks,
			       (unsigned long long)r.torn);
	}
	return bad ? 1 : 0;
}

/* ---- main --------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s COMMAND [ARGS]\n"
		"\n"
		"  stats MNT|STORE [--json]          capacity, use, hits, evictions\n"
		"  ls MNT [--sort=lru|size|name]     entries with size, last access, pin\n"
		"  prune MNT --older-than AGE        remove entries not used for AGE\n"
		"  pin MNT/ENTRY... | unpin ...      never evict these (chmod +t does too)\n"
		"  key STRING...                     a safe entry name for any key\n"
		"  key --tokens FILE --page-size N   the KV page keys of token ids\n"
		"  match MNT --tokens FILE --page-size N  tokens held as leading pages\n"
		"  sync MNT...                       make every committed tensor durable\n"
		"  fsck STORE [--repair]             check a stopped store's checksums\n"
		"\n"
		"'%s COMMAND --help' tells more; '%s --version' the version.\n",
		prog, prog, prog);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("tcache %s\n", TC_VERSION_STRING);
		return 0;
	}
	argc--;
	argv++;
	if (!strcmp(cmd, "stats"))
		return cmd_stats(argc, argv);
	if (!strcmp(cmd, "ls"))
		return cmd_ls(argc, argv);
	if (!strcmp(cmd, "prune"))
		return cmd_prune(argc, argv);
	if (!strcmp(cmd, "pin"))
		return cmd_pin(argc, argv, 1);
	if (!strcmp(cmd, "unpin"))
		return cmd_pin(argc, argv, 0);
	if (!strcmp(cmd, "key"))
		return cmd_key(argc, argv);
	if (!strcmp(cmd, "match"))
		return cmd_match(argc, argv);
	if (!strcmp(cmd, "fsck"))
		return cmd_fsck(argc, argv);
	if (!strcmp(cmd, "sync"))
		return cmd_sync(argc, argv);
	fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
	usage(stderr);
	return 2;
}
