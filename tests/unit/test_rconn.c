/* test_rconn.c - the remote tier's connection (fs/rconn.c) against real
 * redis-server processes of its own, on loopback ports and a unix socket
 * under a temp directory: URLs, binary values, db, AUTH, pipelines, the
 * bounded wait of a stopped server and the backoff after it, a killed and
 * restarted server, OOM, and a 3-master cluster through a resharding
 * (MOVED), a migration (ASK) and the death of its seed.  Every server is killed at exit, on a fatal
 * signal, and by PR_SET_PDEATHSIG if this process is SIGKILLed. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"
#include "rconn.h"

/* ---- servers ---- */

enum { MAX_PROCS = 32 };
static volatile pid_t procs[MAX_PROCS]; /* running children, 0 = none */
static char *dir;                       /* the temp dir of everything */

static void kill_all(void) /* async-signal-safe */
{
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] > 0) {
			kill(procs[i], SIGKILL);
			kill(procs[i], SIGCONT);
		}
}

static void at_exit(void)
{
	kill_all();
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] > 0)
			waitpid(procs[i], NULL, 0);
	if (dir)
		tmpdir_free(dir);
}

static void on_fatal(int sig)
{
	kill_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Start @argv with its output appended to dir/@log; its pid. */
static pid_t spawn(const char *const *argv, const char *log)
{
	pid_t parent = getpid(), pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		char path[4096];
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		snprintf(path, sizeof(path), "%s/%s", dir, log);
		int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] == 0) {
			procs[i] = pid;
			return pid;
		}
	abort();
}

/* Reap @pid (SIGKILLed first if @sig). */
static void reap(pid_t pid, int sig)
{
	if (sig) {
		kill(pid, sig);
		kill(pid, SIGCONT);
	}
	waitpid(pid, NULL, 0);
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] == pid)
			procs[i] = 0;
}

/* Run a command to its end (30 s at most); its exit status. */
static int run(const char *const *argv)
{
	int st;
	pid_t pid = spawn(argv, "cmd.log");
	int64_t end = now_ms() + 30000;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (now_ms() > end) {
			reap(pid, SIGKILL);
			return -1;
		}
		sleep_ms(20);
	}
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] == pid)
			procs[i] = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int port_free(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* A loopback port free, with its cluster bus port (+10000). */
static int pick_port(void)
{
	for (;;) {
		int p = 20000 + rand() % 20000;
		if (port_free(p) && port_free(p + 10000))
			return p;
	}
}

enum srv_mode { SRV_TCP, SRV_UNIX, SRV_CLUSTER };

struct srv {
	pid_t pid;
	int port;
	char sock[108];  /* SRV_UNIX */
	const char *extra[8];
	enum srv_mode mode;
};

static redisContext *direct_connect(const struct srv *s)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = s->mode == SRV_UNIX
		? redisConnectUnixWithTimeout(s->sock, tv)
		: redisConnectWithTimeout("127.0.0.1", s->port, tv);
	if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK)
		return c;
	redisFree(c);
	return NULL;
}

/* A command to @s outside rconn (hiredis format); NULL on failure. */
static redisReply *direct(const struct srv *s, const char *fmt, ...)
{
	redisContext *c = direct_connect(s);
	redisReply *rep = NULL;
	va_list ap;
	if (!c)
		return NULL;
	va_start(ap, fmt);
	rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	redisFree(c);
	return rep;
}

/* Does @s answer PING (with its password, if any)? */
static int srv_ready(const struct srv *s, const char *password)
{
	redisContext *c = direct_connect(s);
	redisReply *rep = NULL;
	int ok;
	if (!c)
		return 0;
	if (password)
		freeReplyObject(redisCommand(c, "AUTH %s", password));
	rep = redisCommand(c, "PING");
	ok = rep && rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "PONG");
	freeReplyObject(rep);
	redisFree(c);
	return ok;
}

/* (Re)start @s on its port (a new one if 0): 0 when it answers PING. */
static int srv_spawn(struct srv *s, const char *password)
{
	char port[16], conf[4096];
	const char *argv[40] = { "redis-server", "--port", port, "--bind",
				 "127.0.0.1", "--save", "", "--appendonly", "no",
				 "--dir", dir, "--daemonize", "no" };
	int n = 13;

	snprintf(port, sizeof(port), "%d", s->mode == SRV_UNIX ? 0 : s->port);
	if (s->mode == SRV_UNIX) {
		argv[n++] = "--unixsocket";
		argv[n++] = s->sock;
	}
	if (s->mode == SRV_CLUSTER) {
		snprintf(conf, sizeof(conf), "%s/nodes-%d.conf", dir, s->port);
		argv[n++] = "--cluster-enabled";
		argv[n++] = "yes";
		argv[n++] = "--cluster-config-file";
		argv[n++] = conf;
		argv[n++] = "--cluster-node-timeout";
		argv[n++] = "2000";
		/* a dead master's slots fail, not the whole cluster */
		argv[n++] = "--cluster-require-full-coverage";
		argv[n++] = "no";
		argv[n++] = "--repl-diskless-sync-delay";  /* a replica: now */
		argv[n++] = "0";
	}
	for (int i = 0; s->extra[i]; i++)
		argv[n++] = s->extra[i];
	s->pid = spawn(argv, "redis.log");
	for (int64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(10)) {
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			reap(s->pid, 0);
			return -1;  /* exited: the port was taken, or bad args */
		}
		if (srv_ready(s, password))
			return 0;
	}
	reap(s->pid, SIGKILL);
	return -1;
}

/* Start a server; extra args (NULL-terminated) after the standard ones. */
static int srv_start(struct srv *s, enum srv_mode mode, const char *password,
		     ...)
{
	va_list ap;
	int n = 0;
	memset(s, 0, sizeof(*s));
	s->mode = mode;
	va_start(ap, password);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 7;)
		s->extra[n++] = a;
	va_end(ap);
	for (int tries = 0; tries < 5; tries++) {
		static int nsock;
		s->port = pick_port();
		if (mode == SRV_UNIX)
			snprintf(s->sock, sizeof(s->sock), "%s/r%d.sock", dir,
				 nsock++);
		if (srv_spawn(s, password) == 0)
			return 0;
	}
	return -1;
}

static void srv_stop(struct srv *s)
{
	if (s->pid > 0)
		reap(s->pid, SIGKILL);
	s->pid = 0;
}

/* ---- rconn helpers ---- */

static struct rconn *conn(const char *url, int timeout_ms,
			  const char *password)
{
	struct rconn_conf c = { .timeout_ms = timeout_ms };
	char err[256];
	if (rconn_parse_url(url, &c, err, sizeof(err)) != 0) {
		printf("# %s\n", err);
		return NULL;
	}
	if (password)
		snprintf(c.password, sizeof(c.password), "%s", password);
	return rconn_new(&c);
}

static struct rconn *conn_tcp(const struct srv *s, int db, int timeout_ms)
{
	char url[64];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/%d", s->port, db);
	return conn(url, timeout_ms, NULL);
}

/* SET @key @v: 0, the rconn failure, or -EPROTO if not +OK. */
static int set(struct rconn *r, const char *key, const void *v, size_t n)
{
	const char *argv[] = { "SET", key, v };
	size_t len[] = { 3, strlen(key), n };
	redisReply *rep;
	int err = rconn_cmd(r, key, 3, argv, len, &rep);
	if (err)
		return err;
	err = rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "OK")
		? 0 : -EPROTO;
	if (err)
		printf("# SET %s: type %d %s\n", key, rep->type,
		       rep->str ? rep->str : "");
	freeReplyObject(rep);
	return err;
}

/* GET @key: 0 if its value is @n bytes @v (@v NULL: absent), the rconn
 * failure, or -EPROTO. */
static int get_is(struct rconn *r, const char *key, const void *v, size_t n)
{
	const char *argv[] = { "GET", key };
	size_t len[] = { 3, strlen(key) };
	redisReply *rep;
	int err = rconn_cmd(r, key, 2, argv, len, &rep);
	if (err)
		return err;
	if (!v)
		err = rep->type == REDIS_REPLY_NIL ? 0 : -EPROTO;
	else
		err = rep->type == REDIS_REPLY_STRING && rep->len == n &&
		      memcmp(rep->str, v, n) == 0 ? 0 : -EPROTO;
	freeReplyObject(rep);
	return err;
}

/* ---- URLs and passwords ---- */

/* @url is refused with a message containing @msg, and @c is untouched. */
static int refused(const char *url, const char *msg)
{
	struct rconn_conf c = { .db = 7, .timeout_ms = 99 };
	char err[256] = "";
	int rc = rconn_parse_url(url, &c, err, sizeof(err));
	if (rc != -EINVAL || !strstr(err, msg) || c.db != 7 || c.nseeds)
		printf("# %s: rc %d, \"%s\" (expected \"%s\")\n", url, rc, err,
		       msg);
	return rc == -EINVAL && strstr(err, msg) && c.db == 7 && !c.nseeds;
}

static void t_url_forms_parse_to_their_fields(void)
{
	struct rconn_conf c = { .timeout_ms = 250 };
	char err[256];

	strcpy(c.password, "kept");
	REQUIRE(rconn_parse_url("redis://127.0.0.1:6379", &c, err,
				sizeof(err)) == 0);
	CHECK(c.kind == RCONN_TCP && c.nseeds == 1 && c.port[0] == 6379);
	CHECK(!strcmp(c.host[0], "127.0.0.1") && c.db == 0);
	CHECK(c.timeout_ms == 250 && !strcmp(c.password, "kept"));
	REQUIRE(rconn_parse_url("redis://cache.example.org:7000/15", &c, err,
				sizeof(err)) == 0);
	CHECK(!strcmp(c.host[0], "cache.example.org") && c.port[0] == 7000);
	CHECK(c.db == 15);
	REQUIRE(rconn_parse_url("redis://h:65535/3", &c, err, sizeof(err)) == 0);
	CHECK(c.port[0] == 65535 && c.db == 3);
	REQUIRE(rconn_parse_url("redis://h:1", &c, err, sizeof(err)) == 0);
	CHECK(c.port[0] == 1 && c.db == 0);  /* no db: 0, not the last one */
	REQUIRE(rconn_parse_url("unix:/run/redis/redis.sock", &c, err,
				sizeof(err)) == 0);
	CHECK(c.kind == RCONN_UNIX && !strcmp(c.path, "/run/redis/redis.sock"));
	CHECK(c.db == 0);
	REQUIRE(rconn_parse_url("unix:/tmp/r.sock?db=2", &c, err,
				sizeof(err)) == 0);
	CHECK(c.kind == RCONN_UNIX && !strcmp(c.path, "/tmp/r.sock"));
	CHECK(c.db == 2);
	REQUIRE(rconn_parse_url("redis-cluster://10.0.0.1:7000,node-b:7001,"
				"10.0.0.3:7002", &c, err, sizeof(err)) == 0);
	CHECK(c.kind == RCONN_CLUSTER && c.nseeds == 3 && c.db == 0);
	CHECK(!strcmp(c.host[1], "node-b") && c.port[1] == 7001);
	CHECK(!strcmp(c.host[2], "10.0.0.3") && c.port[2] == 7002);
	REQUIRE(rconn_parse_url("redis-cluster://127.0.0.1:30001", &c, err,
				sizeof(err)) == 0);
	CHECK(c.nseeds == 1 && c.port[0] == 30001);

	char url[1024] = "redis-cluster://h:1";
	for (int i = 2; i <= RCONN_MAX_SEEDS; i++)
		snprintf(url + strlen(url), sizeof(url) - strlen(url),
			 ",h%d:%d", i, i);
	REQUIRE(rconn_parse_url(url, &c, err, sizeof(err)) == 0);
	CHECK(c.nseeds == RCONN_MAX_SEEDS && c.port[15] == 16);
	strcat(url, ",h17:17");
	CHECK(refused(url, "more than 16 seeds in"));
}

static void t_url_bad_forms_say_what_is_wrong(void)
{
	CHECK(refused("redis://h:0", "remote: port 0 out of range in redis://h:0"));
	CHECK(refused("redis://h:65536", "port 65536 out of range"));
	CHECK(refused("redis://h:99999999999", "out of range"));
	CHECK(refused("redis://h:12x", "bad port \"12x\""));
	CHECK(refused("redis://h:-1", "bad port \"-1\""));
	CHECK(refused("redis://h", "no port in redis://h"));
	CHECK(refused("redis://h:", "no port"));
	CHECK(refused("redis://:6379", "no host in redis://:6379"));
	CHECK(refused("redis://", "no host"));
	CHECK(refused("redis://h:1/16", "db 16 out of range (0..15)"));
	CHECK(refused("redis://h:1/x", "bad db \"x\""));
	CHECK(refused("redis://h:1/", "no db number"));
	CHECK(refused("redis://::1:6379", "IPv6"));
	CHECK(refused("redis://user:secret@h:1", "use remote_password_file"));
	struct rconn_conf c = { .timeout_ms = 1 };
	char err[256];
	CHECK(rconn_parse_url("redis://:secret@h:1", &c, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(!strstr(err, "secret"));  /* a password is not echoed to logs */
	CHECK(refused("unix:relative.sock", "must be absolute"));
	CHECK(refused("unix:", "must be absolute"));
	CHECK(refused("unix:/tmp/r.sock?foo=1", "only ?db=N"));
	CHECK(refused("unix:/tmp/r.sock?db=99", "db 99 out of range"));
	char url[200] = "unix:/";
	memset(url + 6, 'a', 120);
	CHECK(refused(url, "socket path longer than 107 bytes"));
	CHECK(refused("redis-cluster://", "no host"));
	CHECK(refused("redis-cluster://a:1,,b:2", "no host"));
	CHECK(refused("redis-cluster://a:1,b", "no port"));
	CHECK(refused("redis-cluster://a:1,b:0", "port 0 out of range"));
	CHECK(refused("redis-cluster://a:1/2", "a cluster has only db 0"));
	CHECK(refused("http://h:1", "unknown scheme in http://h:1"));
	CHECK(refused("rediss://h:1", "unknown scheme"));
	CHECK(refused("", "empty URL"));
}

static void t_password_is_the_first_line_of_its_file(void)
{
	struct rconn_conf c = { .timeout_ms = 100 };
	char path[4096], err[256] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/pw", dir);
	f = fopen(path, "w");
	REQUIRE(f);
	fputs("s3cret pass\nsecond line\n", f);
	fclose(f);
	CHECK(rconn_read_password(path, &c, err, sizeof(err)) == 0);
	CHECK(!strcmp(c.password, "s3cret pass"));

	f = fopen(path, "w");
	REQUIRE(f);
	fputs("no-newline", f);
	fclose(f);
	CHECK(rconn_read_password(path, &c, err, sizeof(err)) == 0);
	CHECK(!strcmp(c.password, "no-newline"));

	f = fopen(path, "w");
	REQUIRE(f);
	fclose(f);
	CHECK(rconn_read_password(path, &c, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "is empty") && strstr(err, path));
	CHECK(!strcmp(c.password, "no-newline"));  /* untouched */

	f = fopen(path, "w");
	REQUIRE(f);
	fputs("\nafter an empty line", f);
	fclose(f);
	CHECK(rconn_read_password(path, &c, err, sizeof(err)) == -EINVAL);

	f = fopen(path, "w");
	REQUIRE(f);
	for (int i = 0; i < 600; i++)
		fputc('x', f);
	fclose(f);
	CHECK(rconn_read_password(path, &c, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "longer than 511 bytes"));

	snprintf(path, sizeof(path), "%s/no-such-file", dir);
	CHECK(rconn_read_password(path, &c, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "No such file") && strstr(err, path));
	CHECK(rconn_read_password(dir, &c, err, sizeof(err)) == -EISDIR);
	CHECK(strstr(err, "Is a directory"));
}

/* The spec's test vector and its hash-tag examples. */
static void t_slot_is_crc16_of_the_hash_tag(void)
{
#define SLOT(s) rconn_slot(s, strlen(s))
	CHECK(SLOT("123456789") == 0x31c3);
	CHECK(SLOT("{user1000}.following") == SLOT("user1000"));
	CHECK(SLOT("{user1000}.followers") == SLOT("user1000"));
	CHECK(SLOT("foo{}{bar}") != SLOT("bar"));  /* "{}": whole key */
	CHECK(SLOT("foo{{bar}}zap") == SLOT("{bar"));
	CHECK(SLOT("foo{bar}{zap}") == SLOT("bar"));
	CHECK(SLOT("") == 0);
	CHECK(rconn_slot("a{b}\0c", 6) == SLOT("b"));
	for (int i = 0; i < 1000; i++) {
		char k[32];
		snprintf(k, sizeof(k), "key:%d", i);
		CHECK(SLOT(k) < 16384);
	}
#undef SLOT
}

/* ---- one server ---- */

/* NUL bytes, an empty value and 5 MiB come back byte-identical. */
static void binary_values(struct rconn *r)
{
	enum { BIG = 5 << 20 };
	char *big = malloc(BIG);
	REQUIRE(big);
	fill(big, BIG, 16);
	CHECK(!rconn_connected(r));  /* nothing sent yet */
	CHECK(set(r, "nul", "a\0b\0\0c", 6) == 0);
	CHECK(rconn_connected(r));
	CHECK(get_is(r, "nul", "a\0b\0\0c", 6) == 0);
	CHECK(get_is(r, "nul", "a", 1) == -EPROTO);  /* get_is can fail */
	CHECK(set(r, "empty", "", 0) == 0);
	CHECK(get_is(r, "empty", "", 0) == 0);       /* "", not nil */
	CHECK(get_is(r, "absent", NULL, 0) == 0);
	CHECK(set(r, "big", big, BIG) == 0);
	CHECK(get_is(r, "big", big, BIG) == 0);
	free(big);
}

static void t_binary_values_over_tcp(void)
{
	struct srv s;
	REQUIRE(srv_start(&s, SRV_TCP, NULL, NULL) == 0);
	struct rconn *r = conn_tcp(&s, 0, 2000);
	REQUIRE(r);
	binary_values(r);
	rconn_free(r);
	srv_stop(&s);
}

static void t_binary_values_and_db_over_a_unix_socket(void)
{
	struct srv s;
	char url[256];
	REQUIRE(srv_start(&s, SRV_UNIX, NULL, NULL) == 0);
	snprintf(url, sizeof(url), "unix:%s", s.sock);
	struct rconn *r = conn(url, 2000, NULL);
	REQUIRE(r);
	binary_values(r);
	snprintf(url, sizeof(url), "unix:%s?db=2", s.sock);
	struct rconn *r2 = conn(url, 2000, NULL);
	REQUIRE(r2);
	CHECK(set(r2, "in2", "two", 3) == 0);
	CHECK(get_is(r2, "in2", "two", 3) == 0);
	CHECK(get_is(r, "in2", NULL, 0) == 0);
	CHECK(get_is(r2, "nul", NULL, 0) == 0);
	rconn_free(r2);
	rconn_free(r);
	srv_stop(&s);
}

static void t_select_keeps_dbs_apart(void)
{
	struct srv s;
	REQUIRE(srv_start(&s, SRV_TCP, NULL, NULL) == 0);
	struct rconn *r0 = conn_tcp(&s, 0, 2000), *r3 = conn_tcp(&s, 3, 2000);
	REQUIRE(r0 && r3);
	CHECK(set(r3, "k", "in db 3", 7) == 0);
	CHECK(get_is(r3, "k", "in db 3", 7) == 0);
	CHECK(get_is(r0, "k", NULL, 0) == 0);
	CHECK(set(r0, "k", "in db 0", 7) == 0);
	CHECK(get_is(r3, "k", "in db 3", 7) == 0);
	redisReply *rep = direct(&s, "INFO keyspace");
	REQUIRE(rep && rep->type == REDIS_REPLY_STRING);
	CHECK(strstr(rep->str, "db0:keys=1") && strstr(rep->str, "db3:keys=1"));
	freeReplyObject(rep);
	rconn_free(r0);
	rconn_free(r3);
	srv_stop(&s);
}

static void t_auth_right_password_works_wrong_one_is_eacces(void)
{
	struct rconn_conf c = { .timeout_ms = 2000 };
	struct srv s;
	char path[4096], url[64], err[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/redis-pw", dir);
	f = fopen(path, "w");
	REQUIRE(f);
	fputs("pw-7f3a9\n", f);
	fclose(f);
	REQUIRE(rconn_read_password(path, &c, err, sizeof(err)) == 0);
	REQUIRE(srv_start(&s, SRV_TCP, c.password, "--requirepass", c.password,
			  NULL) == 0);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", s.port);
	REQUIRE(rconn_parse_url(url, &c, err, sizeof(err)) == 0);

	struct rconn *r = rconn_new(&c);
	REQUIRE(r);
	CHECK(set(r, "k", "v", 1) == 0);
	CHECK(get_is(r, "k", "v", 1) == 0);
	rconn_free(r);

	strcpy(c.password, "wrong");
	r = rconn_new(&c);
	REQUIRE(r);
	CHECK(get_is(r, "k", "v", 1) == -EACCES);
	CHECK(!rconn_connected(r));
	int64_t t0 = now_ms();
	CHECK(get_is(r, "k", "v", 1) == -ENOTCONN);  /* backoff: no retry */
	CHECK(now_ms() - t0 < 5);
	rconn_free(r);

	c.password[0] = '\0';  /* none: NOAUTH */
	r = rconn_new(&c);
	REQUIRE(r);
	CHECK(get_is(r, "k", "v", 1) == -EACCES);
	CHECK(get_is(r, "k", "v", 1) == -ENOTCONN);
	rconn_free(r);
	srv_stop(&s);
}

static void t_pipeline_replies_come_in_order(void)
{
	enum { N = 100 };
	static char keys[N][16], vals[N][32];
	static const char *argvs[2 * N][3];
	static size_t lens[2 * N][3];
	const char **av[2 * N];
	const size_t *lv[2 * N];
	int argcs[2 * N];
	redisReply *outs[2 * N];
	struct srv s;

	REQUIRE(srv_start(&s, SRV_TCP, NULL, NULL) == 0);
	struct rconn *r = conn_tcp(&s, 0, 2000);
	REQUIRE(r);
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "p%d", i);
		snprintf(vals[i], sizeof(vals[i]), "value of %d", i * 7919);
		argvs[i][0] = "SET", argvs[i][1] = keys[i];
		argvs[i][2] = vals[i];
		lens[i][0] = 3, lens[i][1] = strlen(keys[i]);
		lens[i][2] = strlen(vals[i]);
		argcs[i] = 3;
		argvs[N + i][0] = "GET", argvs[N + i][1] = keys[i];
		lens[N + i][0] = 3, lens[N + i][1] = strlen(keys[i]);
		argcs[N + i] = 2;
	}
	for (int i = 0; i < 2 * N; i++)
		av[i] = argvs[i], lv[i] = lens[i];
	REQUIRE(rconn_pipeline(r, NULL, 2 * N, argcs, av, lv, outs) == 0);
	for (int i = 0; i < N; i++) {
		CHECK(outs[i]->type == REDIS_REPLY_STATUS);
		CHECK(!strcmp(outs[i]->str, "OK"));
		CHECK(outs[N + i]->type == REDIS_REPLY_STRING);
		CHECK(!strcmp(outs[N + i]->str, vals[i]));
	}
	for (int i = 0; i < 2 * N; i++)
		freeReplyObject(outs[i]);

	/* an error reply is the caller's, in its place */
	const char *bad[] = { "INCR", "p1" };
	size_t badl[] = { 4, 2 };
	av[1] = bad, lv[1] = badl, argcs[1] = 2;
	REQUIRE(rconn_pipeline(r, NULL, 3, argcs, av, lv, outs) == 0);
	CHECK(outs[0]->type == REDIS_REPLY_STATUS);
	CHECK(outs[1]->type == REDIS_REPLY_ERROR);
	CHECK(!strncmp(outs[1]->str, "ERR value is not an integer", 27));
	CHECK(outs[2]->type == REDIS_REPLY_STATUS);
	for (int i = 0; i < 3; i++)
		freeReplyObject(outs[i]);
	CHECK(rconn_connected(r));
	rconn_free(r);
	srv_stop(&s);
}

/* A stopped server costs one timeout, then nothing until the backoff has
 * passed; resumed, it serves again. */
static void t_stopped_server_times_out_once_then_backs_off(void)
{
	enum { TIMEOUT = 300 };
	struct srv s;
	int64_t t0, dt;
	int err;

	REQUIRE(srv_start(&s, SRV_TCP, NULL, NULL) == 0);
	struct rconn *r = conn_tcp(&s, 0, TIMEOUT);
	REQUIRE(r);
	CHECK(set(r, "k", "v", 1) == 0);
	REQUIRE(kill(s.pid, SIGSTOP) == 0);
	t0 = now_ms();
	err = get_is(r, "k", "v", 1);
	dt = now_ms() - t0;
	CHECK(err == -ETIMEDOUT);
	CHECK(dt >= TIMEOUT - 5 && dt <= TIMEOUT + 200);
	printf("# timed out after %lld ms\n", (long long)dt);
	CHECK(!rconn_connected(r));
	t0 = now_ms();
	CHECK(get_is(r, "k", "v", 1) == -ENOTCONN);
	CHECK(set(r, "k2", "v", 1) == -ENOTCONN);
	CHECK(now_ms() - t0 < 5);

	/* still stopped after the backoff: the reconnect times out again
	 * (the kernel accepts the connection; Redis never answers) */
	sleep_ms(120);
	t0 = now_ms();
	CHECK(get_is(r, "k", "v", 1) == -ETIMEDOUT);
	CHECK(now_ms() - t0 <= TIMEOUT + 200);

	REQUIRE(kill(s.pid, SIGCONT) == 0);
	t0 = now_ms();
	while ((err = get_is(r, "k", "v", 1)) == -ENOTCONN &&
	       now_ms() - t0 < 2000)
		sleep_ms(10);
	CHECK(err == 0);
	dt = now_ms() - t0;
	CHECK(dt >= 150 && dt < 500);  /* the second backoff: 200 ms */
	CHECK(rconn_connected(r));
	rconn_free(r);
	srv_stop(&s);
}

static void t_killed_server_fails_fast_and_restarted_serves_again(void)
{
	struct srv s;
	int64_t t0;
	int err;

	REQUIRE(srv_start(&s, SRV_TCP, NULL, NULL) == 0);
	struct rconn *r = conn_tcp(&s, 0, 1000);
	REQUIRE(r);
	CHECK(set(r, "k", "v", 1) == 0);
	reap(s.pid, SIGKILL);
	t0 = now_ms();
	err = get_is(r, "k", "v", 1);
	CHECK(err == -ENOTCONN || err == -ECONNREFUSED || err == -EIO);
	CHECK(now_ms() - t0 < 100);
	CHECK(!rconn_connected(r));
	CHECK(get_is(r, "k", "v", 1) == -ENOTCONN);  /* backoff */
	sleep_ms(120);
	t0 = now_ms();
	CHECK(get_is(r, "k", "v", 1) == -ECONNREFUSED);  /* nobody listens */
	CHECK(now_ms() - t0 < 100);

	REQUIRE(srv_spawn(&s, NULL) == 0);  /* same port */
	t0 = now_ms();
	while ((err = set(r, "k", "back", 4)) == -ENOTCONN &&
	       now_ms() - t0 < 6000)
		sleep_ms(10);
	CHECK(err == 0);
	CHECK(get_is(r, "k", "back", 4) == 0);
	CHECK(rconn_connected(r));
	rconn_free(r);
	srv_stop(&s);
}

static void t_oom_is_enomem(void)
{
	enum { BIG = 4 << 20 };
	struct srv s;
	char *big = calloc(1, BIG);
	REQUIRE(big);
	REQUIRE(srv_start(&s, SRV_TCP, NULL, "--maxmemory", "2mb",
			  "--maxmemory-policy", "noeviction", NULL) == 0);
	struct rconn *r = conn_tcp(&s, 0, 2000);
	REQUIRE(r);
	CHECK(set(r, "small", "v", 1) == 0);
	CHECK(set(r, "big", big, BIG) == -ENOMEM);
	CHECK(rconn_connected(r));  /* Redis answered: the link is fine */
	CHECK(get_is(r, "big", NULL, 0) == 0);
	CHECK(get_is(r, "small", "v", 1) == 0);
	free(big);
	rconn_free(r);
	srv_stop(&s);
}

/* ---- cluster ---- */

static int cluster_ok(const struct srv *s)
{
	redisReply *rep = direct(s, "CLUSTER INFO");
	int ok = rep && rep->type == REDIS_REPLY_STRING &&
		 strstr(rep->str, "cluster_state:ok");
	freeReplyObject(rep);
	return ok;
}

static void node_id(const struct srv *s, char id[64])
{
	redisReply *rep = direct(s, "CLUSTER MYID");
	snprintf(id, 64, "%s", rep && rep->type == REDIS_REPLY_STRING
		 ? rep->str : "?");
	freeReplyObject(rep);
}

/* The number of keys node @s holds in @slot. */
static long long keys_in_slot(const struct srv *s, unsigned slot)
{
	redisReply *rep = direct(s, "CLUSTER COUNTKEYSINSLOT %u", slot);
	long long n = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer
							      : -1;
	freeReplyObject(rep);
	return n;
}

static int has_info(const struct srv *s, const char *what)
{
	redisReply *rep = direct(s, "INFO");
	int yes = rep && rep->type == REDIS_REPLY_STRING &&
		  strstr(rep->str, what);
	freeReplyObject(rep);
	return yes;
}

/* Does @s see node @id as a master with slots (the failover done, as
 * far as @s knows)? */
static int is_master(const struct srv *s, const char *id)
{
	redisReply *rep = direct(s, "CLUSTER NODES");
	const char *line = rep && rep->type == REDIS_REPLY_STRING
		? strstr(rep->str, id) : NULL;
	const char *eol = line ? strchr(line, '\n') : NULL;
	const char *m = line ? strstr(line, "master") : NULL;
	const char *slots = line ? strstr(line, " connected ") : NULL;
	int yes = m && slots && (!eol || (m < eol && slots < eol));
	freeReplyObject(rep);
	return yes;
}

static long long dbsize(const struct srv *s)
{
	redisReply *rep = direct(s, "DBSIZE");
	long long n = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer
							      : -1;
	freeReplyObject(rep);
	return n;
}

/* EVALs run by the three masters of @s so far. */
static long long eval_calls(const struct srv *s)
{
	long long n = 0;
	for (int i = 0; i < 3; i++) {
		redisReply *rep = direct(&s[i], "INFO commandstats");
		const char *p = rep && rep->type == REDIS_REPLY_STRING
			? strstr(rep->str, "cmdstat_eval:calls=") : NULL;
		n += p ? atoll(p + strlen("cmdstat_eval:calls=")) : 0;
		freeReplyObject(rep);
	}
	return n;
}

/* One pipeline of GETs of @keys (sharing a tag): 0 if each is @vals[i]. */
static int tagged_get_all(struct rconn *r, int n, char (*keys)[32],
			  char (*vals)[32])
{
	const char *argvs[16][2], **av[16];
	int argcs[16] = { 0 };
	redisReply *outs[16];
	int err;
	if (n < 1 || n > 16)
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		argvs[i][0] = "GET", argvs[i][1] = keys[i];
		av[i] = argvs[i], argcs[i] = 2;
	}
	err = rconn_pipeline(r, keys[0], n, argcs, av,
			     NULL, outs);
	if (err)
		return err;
	for (int i = 0; i < n; i++) {
		if (outs[i]->type != REDIS_REPLY_STRING ||
		    strcmp(outs[i]->str, vals[i]))
			err = -EPROTO;
		freeReplyObject(outs[i]);
	}
	return err;
}

/*
 * One cluster for the tests below, in order: 3 masters made by redis-cli
 * --cluster create (s[3] becomes a replica of s[1] for the failover), and
 * one rconn through the seed s[0] that lives through all of it.
 */
enum { NKEYS = 200, NLOW = 20, NTAG = 10 };
static struct {
	struct srv s[4];
	char addr[4][32], ids[4][64], url[64];
	char keys[NKEYS][32], vals[NKEYS][32];  /* NLOW in slots 0..499 */
	struct rconn *r;
	int up;
} cl;

static int get_all(struct rconn *r)
{
	int bad = 0;
	for (int i = 0; i < NKEYS; i++)
		bad += get_is(r, cl.keys[i], cl.vals[i], strlen(cl.vals[i])) != 0;
	return bad;
}

static void t_cluster_of_3_masters_forms(void)
{
	struct srv *s = cl.s;
	for (int i = 0; i < 3; i++) {
		REQUIRE(srv_start(&s[i], SRV_CLUSTER, NULL, NULL) == 0);
		snprintf(cl.addr[i], 32, "127.0.0.1:%d", s[i].port);
	}
	const char *create[] = { "redis-cli", "--cluster", "create",
				 cl.addr[0], cl.addr[1], cl.addr[2],
				 "--cluster-replicas", "0", "--cluster-yes",
				 NULL };
	REQUIRE(run(create) == 0);
	int64_t t0 = now_ms();
	while (!(cluster_ok(&s[0]) && cluster_ok(&s[1]) && cluster_ok(&s[2])) &&
	       now_ms() - t0 < 15000)
		sleep_ms(50);
	REQUIRE(cluster_ok(&s[0]) && cluster_ok(&s[1]) && cluster_ok(&s[2]));
	for (int i = 0; i < 3; i++) {
		node_id(&s[i], cl.ids[i]);
		REQUIRE(strlen(cl.ids[i]) == 40);
	}
	snprintf(cl.url, sizeof(cl.url), "redis-cluster://%s", cl.addr[0]);
	cl.r = conn(cl.url, 2000, NULL);
	REQUIRE(cl.r);
	cl.up = 1;
}

static void t_cluster_slot_is_what_redis_computes(void)
{
	const char *probe[] = { "123456789", "a", "tcache:{e1}:m", "{}",
				"foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}",
				"{user1000}.following", "x{y}", "{", "}{a}" };
	REQUIRE(cl.up);
	for (size_t i = 0; i < sizeof(probe) / sizeof(*probe); i++) {
		redisReply *rep = direct(&cl.s[0], "CLUSTER KEYSLOT %s",
					 probe[i]);
		REQUIRE(rep && rep->type == REDIS_REPLY_INTEGER);
		CHECK(rep->integer == rconn_slot(probe[i], strlen(probe[i])));
		freeReplyObject(rep);
	}
}

/* 200 keys through one seed, NLOW of them in slots 0..499, which the
 * reshard below moves (redis-cli takes the lowest slots of a source) */
static void t_cluster_keys_go_to_every_master(void)
{
	REQUIRE(cl.up);
	for (int i = 0, n = 0, low = 0; n < NKEYS; i++) {
		char k[32];
		snprintf(k, sizeof(k), "key:%d", i);
		int is_low = rconn_slot(k, strlen(k)) < 500;
		if (is_low ? low == NLOW : n - low == NKEYS - NLOW)
			continue;
		low += is_low;
		strcpy(cl.keys[n], k);
		snprintf(cl.vals[n], 32, "value-%d-%u", i,
			 rconn_slot(k, strlen(k)));
		n++;
	}
	for (int i = 0; i < NKEYS; i++)
		CHECK(set(cl.r, cl.keys[i], cl.vals[i], strlen(cl.vals[i])) == 0);
	CHECK(get_all(cl.r) == 0);
	long long total = 0;
	for (int i = 0; i < 3; i++) {
		CHECK(dbsize(&cl.s[i]) > 20);
		total += dbsize(&cl.s[i]);
	}
	CHECK(total == NKEYS);
}

/* An entry's keys (one tag, in slots 0..499) set in one pipeline; then
 * 500 slots move to another master: every key is found again (MOVED). */
static void t_cluster_reshard_is_followed(void)
{
	static char tkeys[NTAG][32], tvals[NTAG][32];
	const char *argvs[NTAG][3], **av[NTAG];
	int argcs[NTAG], from = -1, to;
	redisReply *outs[NTAG];
	struct srv *s = cl.s;
	unsigned tslot;
	char tag[16];

	REQUIRE(cl.up);
	for (int i = 0;; i++) {
		snprintf(tag, sizeof(tag), "e%d", i);
		if ((tslot = rconn_slot(tag, strlen(tag))) < 500)
			break;
	}
	for (int i = 0; i < NTAG; i++) {
		snprintf(tkeys[i], 32, "tc:{%s}:chunk%d", tag, i);
		snprintf(tvals[i], 32, "chunk %d of %s", i, tag);
		argvs[i][0] = "SET", argvs[i][1] = tkeys[i];
		argvs[i][2] = tvals[i];
		av[i] = argvs[i], argcs[i] = 3;
	}
	REQUIRE(rconn_pipeline(cl.r, tkeys[0], NTAG, argcs, av, NULL, outs) ==
		0);
	for (int i = 0; i < NTAG; i++) {
		CHECK(outs[i]->type == REDIS_REPLY_STATUS);
		freeReplyObject(outs[i]);
	}
	CHECK(tagged_get_all(cl.r, NTAG, tkeys, tvals) == 0);
	for (int i = 0; i < 3; i++)
		if (keys_in_slot(&s[i], tslot) == NTAG)
			from = i;
	REQUIRE(from >= 0);

	to = (from + 1) % 3;
	const char *reshard[] = { "redis-cli", "--cluster", "reshard",
				  cl.addr[0], "--cluster-from", cl.ids[from],
				  "--cluster-to", cl.ids[to], "--cluster-slots",
				  "500", "--cluster-yes", NULL };
	int64_t t0 = now_ms();
	REQUIRE(run(reshard) == 0);
	printf("# reshard took %lld ms\n", (long long)(now_ms() - t0));
	CHECK(keys_in_slot(&s[to], tslot) == NTAG);  /* they did move */
	CHECK(keys_in_slot(&s[from], tslot) == 0);
	int moved = 0;
	for (int i = 0; i < NKEYS; i++) {
		unsigned slot = rconn_slot(cl.keys[i], strlen(cl.keys[i]));
		moved += slot < 500 && keys_in_slot(&s[to], slot) > 0;
	}
	CHECK(moved >= NLOW / 2);
	CHECK(get_all(cl.r) == 0);
	CHECK(tagged_get_all(cl.r, NTAG, tkeys, tvals) == 0);
}

static int direct_ok(const struct srv *s, const char *fmt, ...)
{
	redisContext *c = direct_connect(s);
	redisReply *rep = NULL;
	va_list ap;
	int ok;
	if (!c)
		return 0;
	va_start(ap, fmt);
	rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	ok = rep && rep->type == REDIS_REPLY_STATUS;
	if (!ok)
		printf("# %s: %s\n", fmt, rep && rep->str ? rep->str : c->errstr);
	freeReplyObject(rep);
	redisFree(c);
	return ok;
}

/* A migration by hand, half done: of one slot's keys half are on the
 * target; one pipeline gets values from the source and ASKs for the rest,
 * which the target serves; a new key is created there.  Then finished:
 * the slot is the target's (MOVED). */
static void t_cluster_half_done_migration_is_followed(void)
{
	static char mkeys[NTAG + 1][32], mvals[NTAG + 1][32];
	struct srv *s = cl.s;
	const char *mtag = "m1";
	unsigned mslot = rconn_slot(mtag, strlen(mtag));
	int src = -1, dst;

	REQUIRE(cl.up);
	struct rconn *r = conn(cl.url, 2000, NULL);  /* a fresh map */
	REQUIRE(r);
	for (int i = 0; i < NTAG; i++) {
		snprintf(mkeys[i], 32, "tc:{%s}:chunk%d", mtag, i);
		snprintf(mvals[i], 32, "m chunk %d", i);
		CHECK(set(r, mkeys[i], mvals[i], strlen(mvals[i])) == 0);
	}
	CHECK(tagged_get_all(r, NTAG, mkeys, mvals) == 0);
	for (int i = 0; i < 3; i++)
		if (keys_in_slot(&s[i], mslot) == NTAG)
			src = i;
	REQUIRE(src >= 0);
	dst = (src + 1) % 3;
	CHECK(direct_ok(&s[dst], "CLUSTER SETSLOT %u IMPORTING %s", mslot,
			cl.ids[src]));
	CHECK(direct_ok(&s[src], "CLUSTER SETSLOT %u MIGRATING %s", mslot,
			cl.ids[dst]));
	for (int i = 0; i < NTAG / 2; i++)
		CHECK(direct_ok(&s[src], "MIGRATE 127.0.0.1 %d %s 0 5000 KEYS %s",
				s[dst].port, "", mkeys[i]));
	CHECK(keys_in_slot(&s[src], mslot) == NTAG / 2);
	CHECK(keys_in_slot(&s[dst], mslot) == NTAG / 2);
	CHECK(tagged_get_all(r, NTAG, mkeys, mvals) == 0);
	CHECK(get_is(r, mkeys[0], mvals[0], strlen(mvals[0])) == 0);
	snprintf(mkeys[NTAG], 32, "tc:{%s}:new", mtag);
	snprintf(mvals[NTAG], 32, "new during migration");
	CHECK(set(r, mkeys[NTAG], mvals[NTAG], strlen(mvals[NTAG])) == 0);
	CHECK(keys_in_slot(&s[dst], mslot) == NTAG / 2 + 1);  /* ASKed */
	CHECK(tagged_get_all(r, NTAG + 1, mkeys, mvals) == 0);

	for (int i = NTAG / 2; i < NTAG; i++)
		CHECK(direct_ok(&s[src], "MIGRATE 127.0.0.1 %d %s 0 5000 KEYS %s",
				s[dst].port, "", mkeys[i]));
	for (int i = 0; i < 3; i++)
		CHECK(direct_ok(&s[i], "CLUSTER SETSLOT %u NODE %s", mslot,
				cl.ids[dst]));
	CHECK(keys_in_slot(&s[dst], mslot) == NTAG + 1);
	CHECK(tagged_get_all(r, NTAG + 1, mkeys, mvals) == 0);
	CHECK(tagged_get_all(cl.r, NTAG + 1, mkeys, mvals) == 0);
	CHECK(get_all(r) == 0);
	rconn_free(r);
}

/* Lua makes the replies: a redirect to a node that redirects again ends
 * after 5 hops (6 EVALs in all); an error that only looks like one is the
 * caller's. */
static void t_cluster_redirect_loop_ends_after_5_hops(void)
{
	const char *kinds[] = { "MOVED", "ASK" };
	redisReply *rep = NULL;
	REQUIRE(cl.up);
	for (int k = 0; k < 2; k++) {
		char script[128];
		snprintf(script, sizeof(script),
			 "return redis.error_reply('%s 3999 127.0.0.1:%d')",
			 kinds[k], cl.s[1].port);
		const char *eval[] = { "EVAL", script, "0" };
		long long calls = eval_calls(cl.s);
		CHECK(rconn_cmd(cl.r, NULL, 3, eval, NULL, &rep) == -EIO);
		CHECK(eval_calls(cl.s) - calls == 1 + 5);
		CHECK(rconn_connected(cl.r));
	}
	const char *eval[] = { "EVAL", "return redis.error_reply('MOVED x')",
			       "0" };
	CHECK(rconn_cmd(cl.r, NULL, 3, eval, NULL, &rep) == 0);
	CHECK(rep && rep->type == REDIS_REPLY_ERROR &&
	      !strcmp(rep->str, "MOVED x"));
	freeReplyObject(rep);
	CHECK(get_all(cl.r) == 0);  /* the MOVED to 3999 was undone */
}

/* s[1] dies and its replica takes its slots: the first command to s[1]
 * fails (its node's failure makes the map be asked again), and the rest,
 * s[1]'s keys too, are served. */
static void t_cluster_failover_is_followed(void)
{
	struct srv *s = cl.s;
	int failed = 0;

	REQUIRE(cl.up);
	CHECK(get_all(cl.r) == 0);  /* a fresh map, every master connected */
	REQUIRE(srv_start(&s[3], SRV_CLUSTER, NULL, NULL) == 0);
	snprintf(cl.addr[3], 32, "127.0.0.1:%d", s[3].port);
	const char *add[] = { "redis-cli", "--cluster", "add-node", cl.addr[3],
			      cl.addr[0], "--cluster-slave",
			      "--cluster-master-id", cl.ids[1], NULL };
	REQUIRE(run(add) == 0);
	node_id(&s[3], cl.ids[3]);
	int64_t t0 = now_ms();
	while (!(has_info(&s[3], "master_link_status:up") &&
		 dbsize(&s[3]) == dbsize(&s[1])) && now_ms() - t0 < 10000)
		sleep_ms(50);
	REQUIRE(dbsize(&s[3]) == dbsize(&s[1]) && dbsize(&s[1]) > 0);
	srv_stop(&s[1]);
	t0 = now_ms();
	while (!(is_master(&s[0], cl.ids[3]) && is_master(&s[2], cl.ids[3])) &&
	       now_ms() - t0 < 15000)
		sleep_ms(50);
	REQUIRE(is_master(&s[0], cl.ids[3]) && is_master(&s[2], cl.ids[3]));
	printf("# failover took %lld ms\n", (long long)(now_ms() - t0));
	for (int i = 0; i < NKEYS; i++) {
		int e = get_is(cl.r, cl.keys[i], cl.vals[i], strlen(cl.vals[i]));
		failed += e != 0;
		/* refused: the dead node's connection, closed while idle, is
		 * tried once more at once (rconn.c) */
		CHECK(e == 0 || e == -ENOTCONN || e == -ECONNREFUSED);
	}
	CHECK(failed == 1);
	CHECK(get_all(cl.r) == 0);
}

/* The seed stops, then dies: the map comes from the other masters, whose
 * keys are served; the seed's keys fail (one timeout, then at once while
 * its node backs off). */
static void t_cluster_dead_seed_costs_only_its_keys(void)
{
	static char on0[NKEYS];
	int n0 = 0, timeouts = 0;

	REQUIRE(cl.up);
	struct rconn *r = conn(cl.url, 300, NULL);
	REQUIRE(r);
	CHECK(get_all(r) == 0);
	for (int i = 0; i < NKEYS; i++)
		n0 += on0[i] = keys_in_slot(&cl.s[0], rconn_slot(cl.keys[i],
					    strlen(cl.keys[i]))) > 0;
	REQUIRE(n0 > 0 && n0 < NKEYS);
	REQUIRE(kill(cl.s[0].pid, SIGSTOP) == 0);
	for (int i = 0; i < NKEYS; i++) {
		int e = get_is(r, cl.keys[i], cl.vals[i], strlen(cl.vals[i]));
		timeouts += e == -ETIMEDOUT;
		CHECK(on0[i] ? e == -ETIMEDOUT || e == -ENOTCONN : e == 0);
	}
	CHECK(timeouts >= 1);
	srv_stop(&cl.s[0]);
	int64_t t0 = now_ms();
	for (int i = 0; i < NKEYS; i++) {
		int e = get_is(cl.r, cl.keys[i], cl.vals[i], strlen(cl.vals[i]));
		CHECK(on0[i] ? e == -ENOTCONN || e == -ECONNREFUSED : e == 0);
	}
	CHECK(now_ms() - t0 < 1000);
	rconn_free(r);
}

static void cluster_stop(void)
{
	rconn_free(cl.r);
	for (int i = 0; i < 4; i++)
		srv_stop(&cl.s[i]);
}

int main(void)
{
	static const int fatal[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT,
				     SIGSEGV, SIGBUS, SIGFPE, SIGALRM };
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);  /* as the daemon: hiredis writes with write() */
	for (size_t i = 0; i < sizeof(fatal) / sizeof(*fatal); i++)
		signal(fatal[i], on_fatal);
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	dir = tmpdir_new();
	atexit(at_exit);

	RUN(t_url_forms_parse_to_their_fields);
	RUN(t_url_bad_forms_say_what_is_wrong);
	RUN(t_password_is_the_first_line_of_its_file);
	RUN(t_slot_is_crc16_of_the_hash_tag);
	RUN(t_binary_values_over_tcp);
	RUN(t_binary_values_and_db_over_a_unix_socket);
	RUN(t_select_keeps_dbs_apart);
	RUN(t_auth_right_password_works_wrong_one_is_eacces);
	RUN(t_pipeline_replies_come_in_order);
	RUN(t_stopped_server_times_out_once_then_backs_off);
	RUN(t_killed_server_fails_fast_and_restarted_serves_again);
	RUN(t_oom_is_enomem);
	RUN(t_cluster_of_3_masters_forms);
	RUN(t_cluster_slot_is_what_redis_computes);
	RUN(t_cluster_keys_go_to_every_master);
	RUN(t_cluster_reshard_is_followed);
	RUN(t_cluster_half_done_migration_is_followed);
	RUN(t_cluster_redirect_loop_ends_after_5_hops);
	RUN(t_cluster_failover_is_followed);
	RUN(t_cluster_dead_seed_costs_only_its_keys);
	cluster_stop();
	return check_done();
}
