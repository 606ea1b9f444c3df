/* test_journal.c - records, replay, torn tails, corruption, checkpoint. */
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"
#include "journal.h"
#include "testutil.h"

static void rec_del(struct tc_buf *b, uint64_t id)
{
	struct tc_op op = { .type = TC_OP_DEL, .id = id };
	tc_rec_op(b, &op);
}

struct seen {
	int n;
	uint64_t ids[64];
	uint64_t seqs[64];
};

/* Each test record holds one DEL op whose id names it. */
static int on_rec(void *arg, uint32_t version, uint64_t seq, const uint8_t *p,
		  size_t len)
{
	struct seen *s = arg;
	struct tc_rd rd = { p, len, 0, version };
	struct tc_op op;
	if (tc_rec_next(&rd, &op) != 1 || op.type != TC_OP_DEL)
		return 1;
	if (s->n < 64) {
		s->ids[s->n] = op.id;
		s->seqs[s->n] = seq;
	}
	s->n++;
	return 0;
}

static int open_dir(const char *d)
{
	return open(d, O_RDONLY | O_DIRECTORY);
}

/* Write @n records (ids 100.., payload padded by a long entry) and return
 * the offsets where each record starts (ends[i] = end of record i). */
static void write_records(int dfd, int n, uint64_t *ends)
{
	struct tc_journal j;
	struct seen s = { 0 };
	uint64_t cap = 1 << 20, dropped = 0;
	REQUIRE(tc_journal_open(&j, dfd, &cap, on_rec, &s, &dropped) == 0);
	for (int i = 0; i < n; i++) {
		struct tc_buf b = { 0 };
		rec_del(&b, 100 + (uint64_t)i);
		CHECK(tc_journal_append(&j, &b, NULL) == 0);
		tc_buf_free(&b);
		ends[i] = j.size;
	}
	tc_journal_close(&j);
}

static int replay_dir(int dfd, struct seen *s, uint64_t *dropped, uint64_t *size)
{
	struct tc_journal j;
	uint64_t cap = 0;
	memset(s, 0, sizeof(*s));
	*dropped = 0;
	int r = tc_journal_open(&j, dfd, &cap, on_rec, s, dropped);
	if (!r) {
		*size = j.size;
		tc_journal_close(&j);
	}
	return r;
}

static void t_append_replay(void)
{
	char *d = tmpdir_new();
	int dfd = open_dir(d);
	uint64_t ends[10], dropped = 0, size = 0;
	struct seen s;
	write_records(dfd, 10, ends);
	CHECK(replay_dir(dfd, &s, &dropped, &size) == 0);
	CHECK(s.n == 10 && dropped == 0 && size == ends[9]);
	for (int i = 0; i < 10; i++)
		CHECK(s.ids[i] == 100 + (uint64_t)i && s.seqs[i] == (uint64_t)i + 1);
	close(dfd);
	tmpdir_free(d);
}

/* Truncate at every byte offset inside the last record: the journal opens,
 * the nine earlier records replay, the torn one is absent and cut off, and
 * appending afterwards works. */
static void t_torn_tail_every_offset(void)
{
	char *d = tmpdir_new();
	int dfd = open_dir(d);
	uint64_t ends[10], dropped = 0, size = 0;
	struct seen s;
	write_records(dfd, 10, ends);
	char *path;
	REQUIRE(asprintf(&path, "%s/journal", d) > 0);
	int bad = 0;
	for (uint64_t cut = ends[8]; cut < ends[9]; cut++) {
		/* rebuild the 10-record file each round */
		unlink(path);
		write_records(dfd, 10, ends);
		REQUIRE(truncate(path, (off_t)cut) == 0);
		if (replay_dir(dfd, &s, &dropped, &size) != 0 || s.n != 9 ||
		    size != ends[8] || s.ids[8] != 108)
			bad++;
		struct stat st;
		stat(path, &st);
		if ((uint64_t)st.st_size != ends[8])
			bad++;
		/* a record appended now replays after the nine */
		struct tc_journal j;
		uint64_t cap = 0;
		struct seen s2 = { 0 };
		if (tc_journal_open(&j, dfd, &cap, on_rec, &s2, &dropped) == 0) {
			struct tc_buf b = { 0 };
			rec_del(&b, 999);
			tc_journal_append(&j, &b, NULL);
			tc_buf_free(&b);
			tc_journal_close(&j);
		}
		if (replay_dir(dfd, &s, &dropped, &size) != 0 || s.n != 10 ||
		    s.ids[9] != 999 || dropped != 0)
			bad++;
	}
	CHECK(bad == 0);
	free(path);
	close(dfd);
	tmpdir_free(d);
}

static void flip(const char *dir, uint64_t off)
{
	char *path;
	if (asprintf(&path, "%s/journal", dir) < 0)
		abort();
	int fd = open(path, O_RDWR);
	uint8_t c;
	if (pread(fd, &c, 1, (off_t)off) != 1)
		abort();
	c ^= 0x5a;
	if (pwrite(fd, &c, 1, (off_t)off) != 1)
		abort();
	close(fd);
	free(path);
}

/* A flipped byte in the middle (payload or header) drops that record only. */
static void t_flipped_byte_mid_journal(void)
{
	for (int where = 0; where < 2; where++) {
		char *d = tmpdir_new();
		int dfd = open_dir(d);
		uint64_t ends[10], dropped = 0, size = 0;
		struct seen s;
		write_records(dfd, 10, ends);
		/* record 5 spans [ends[4], ends[5]): header first, then payload */
		flip(d, where ? ends[4] + 40 : ends[4] + 6);
		CHECK(replay_dir(dfd, &s, &dropped, &size) == 0);
		CHECK(s.n == 9 && dropped == 1);
		int has5 = 0;
		for (int i = 0; i < s.n && i < 64; i++)
			has5 |= s.ids[i] == 105;
		CHECK(!has5);
		if (!(s.ids[5] == 106 && s.ids[8] == 109))
			for (int i = 0; i < s.n; i++)
				printf("# where %d: id[%d] = %llu\n", where, i,
				       (unsigned long long)s.ids[i]);
		CHECK(s.ids[4] == 104 && s.ids[5] == 106 && s.ids[8] == 109);
		CHECK(size == ends[9]); /* later records kept, nothing cut */
		close(dfd);
		tmpdir_free(d);
	}
}

static void t_bad_header(void)
{
	char *d = tmpdir_new();
	int dfd = open_dir(d);
	uint64_t ends[2], dropped = 0, size = 0;
	struct seen s;
	write_records(dfd, 2, ends);
	flip(d, 9); /* the version field */
	CHECK(replay_dir(dfd, &s, &dropped, &size) == -EPROTO);
	flip(d, 9);
	CHECK(replay_dir(dfd, &s, &dropped, &size) == 0 && s.n == 2);
	flip(d, 0); /* magic */
	CHECK(replay_dir(dfd, &s, &dropped, &size) == -EPROTO);
	close(dfd);
	tmpdir_free(d);
}

static void t_malformed_payload_rejected(void)
{
	struct tc_extent ext = { 8192, 8192 };
	struct tc_buf b = { 0 };
	struct tc_op rec = { .type = TC_OP_NODE, .id = 3, .parent = 2,
			     .kind = TC_KIND_TENSOR, .name = "t.bin",
			     .size = 5000, .ndim = 1, .shape = { 5000 },
			     .nextents = 1, .extv = &ext };
	tc_rec_op(&b, &rec);
	/* intact: decodes, the same op */
	struct tc_rd rd = { b.p, b.len, 0, 0 };
	struct tc_op op;
	struct tc_extent got;
	CHECK(tc_rec_next(&rd, &op) == 1 && op.size == 5000 && op.nextents == 1);
	CHECK(strcmp(op.name, "t.bin") == 0 && op.parent == 2 && op.id == 3);
	CHECK(op.ndim == 1 && op.shape[0] == 5000 && !op.extv);
	tc_op_extent(&op, 0, &got);
	CHECK(got.off == 8192 && got.len == 8192);
	CHECK(tc_rec_next(&rd, &op) == 0);
	/* every shorter prefix is malformed */
	int bad = 0;
	for (size_t cut = 1; cut < b.len; cut++) {
		struct tc_rd r2 = { b.p, cut, 0, 0 };
		if (tc_rec_next(&r2, &op) != -EINVAL)
			bad++;
	}
	CHECK(bad == 0);
	/* extents that do not add up to the size */
	ext.len = 4096;
	struct tc_buf b2 = { 0 };
	tc_rec_op(&b2, &rec);
	struct tc_rd r3 = { b2.p, b2.len, 0, 0 };
	CHECK(tc_rec_next(&r3, &op) == -EINVAL);
	/* unknown op type */
	uint8_t junk = 77;
	struct tc_rd r4 = { &junk, 1, 0, 0 };
	CHECK(tc_rec_next(&r4, &op) == -EINVAL);
	tc_buf_free(&b);
	tc_buf_free(&b2);
}

/* STATS carries five counters; a record from before probes (four, then
 * its end) still reads, with probes 0. */
static void t_stats_op(void)
{
	struct tc_buf b = { 0 };
	struct tc_op rec = { .type = TC_OP_STATS, .stats = { 1, 2, 3, 4, 5 } };
	struct tc_op op;
	tc_rec_op(&b, &rec);
	REQUIRE(b.len == 1 + 5 * 8);
	struct tc_rd rd = { b.p, b.len, 0, 0 };
	CHECK(tc_rec_next(&rd, &op) == 1 && op.type == TC_OP_STATS);
	for (int i = 0; i < TC_NSTATS; i++)
		CHECK(op.stats[i] == (uint64_t)i + 1);
	CHECK(tc_rec_next(&rd, &op) == 0);
	/* as written before probes: the record ends after evicted_bytes */
	struct tc_rd old = { b.p, 1 + 4 * 8, 0, 0 };
	op.stats[4] = 99;
	CHECK(tc_rec_next(&old, &op) == 1 && op.stats[3] == 4 && op.stats[4] == 0);
	CHECK(tc_rec_next(&old, &op) == 0);
	/* any other cut is malformed */
	int bad = 0;
	for (size_t cut = 1; cut < b.len; cut++) {
		struct tc_rd r2 = { b.p, cut, 0, 0 };
		if (cut != 1 + 4 * 8 && tc_rec_next(&r2, &op) != -EINVAL)
			bad++;
	}
	CHECK(bad == 0);
	tc_buf_free(&b);
}

static int emit_two(void *arg, struct tc_journal *nj)
{
	for (int i = 0; i < 2; i++) {
		struct tc_buf b = { 0 };
		rec_del(&b, 500 + (uint64_t)i);
		int r = tc_journal_append(nj, &b, NULL);
		tc_buf_free(&b);
		if (r)
			return r;
	}
	return 0;
}

static void t_rewrite(void)
{
	char *d = tmpdir_new();
	int dfd = open_dir(d);
	struct tc_journal j;
	struct seen s = { 0 };
	uint64_t cap = 1 << 20, dropped = 0, size;
	uint64_t ends[10];
	write_records(dfd, 10, ends);
	REQUIRE(tc_journal_open(&j, dfd, &cap, on_rec, &s, &dropped) == 0);
	CHECK(tc_journal_rewrite(&j, 2 << 20, 0, emit_two, NULL) == 0);
	struct tc_buf b = { 0 };
	rec_del(&b, 600);
	CHECK(tc_journal_append(&j, &b, NULL) == 0);
	tc_buf_free(&b);
	tc_journal_close(&j);
	CHECK(replay_dir(dfd, &s, &dropped, &size) == 0);
	CHECK(s.n == 3 && s.ids[0] == 500 && s.ids[1] == 501 && s.ids[2] == 600);
	CHECK(s.seqs[0] > 10); /* sequence numbers keep rising */
	CHECK(faccessat(dfd, "journal.new", F_OK, 0) != 0);
	uint64_t cap2 = 0;
	REQUIRE(tc_journal_open(&j, dfd, &cap2, on_rec, &s, &dropped) == 0);
	CHECK(cap2 == 2 << 20);
	tc_journal_close(&j);
	close(dfd);
	tmpdir_free(d);
}

static int emit_hundred(void *arg, struct tc_journal *nj)
{
	for (int i = 0; i < 100; i++) {
		struct tc_buf b = { 0 };
		rec_del(&b, 700 + (uint64_t)i);
		int r = tc_journal_append(nj, &b, NULL);
		tc_buf_free(&b);
		if (r)
			return r;
	}
	return 0;
}

/* The header's node count: written by a checkpoint, read back as a hint,
 * never more than the file could hold; 0 (a journal from before the field)
 * gives an estimate from the size. */
static void t_nodes_hint(void)
{
	char *d = tmpdir_new();
	int dfd = open_dir(d);
	struct tc_journal j;
	struct seen s = { 0 };
	uint64_t cap = 1 << 20, dropped = 0, ends[100];

	CHECK(tc_journal_hint(dfd) == 0); /* no journal */
	write_records(dfd, 100, ends);    /* created with nodes 0 */
	CHECK(tc_journal_hint(dfd) == ends[99] / 128);
	REQUIRE(tc_journal_open(&j, dfd, &cap, on_rec, &s, &dropped) == 0);
	CHECK(tc_journal_rewrite(&j, cap, 7, emit_hundred, NULL) == 0);
	CHECK(tc_journal_hint(dfd) == 7);
	CHECK(tc_journal_rewrite(&j, cap, 1ull << 40, emit_hundred, NULL) == 0);
	CHECK(tc_journal_hint(dfd) == j.size / 56); /* a bogus count is capped */
	tc_journal_close(&j);
	close(dfd);
	tmpdir_free(d);
}

/* A child's emit: records 500 and 501, then wait (at most 20 s) until the
 * file named by @arg exists, so that the parent can look at a running
 * child.  Runs in the child, which has closed every other descriptor. */
static int emit_two_after_go(void *arg, struct tc_journal *nj)
{
	int r = emit_two(NULL, nj);
	for (int i = 0; !r && i < 20000 && access(arg, F_OK) != 0; i++)
		usleep(1000);
	return r;
}

static void append_del(struct tc_journal *j, uint64_t id)
{
	struct tc_buf b = { 0 };
	rec_del(&b, id);
	CHECK(tc_journal_append(j, &b, NULL) == 0);
	tc_buf_free(&b);
}

/* The start of each child checkpoint test: a journal of 10 records (ids
 * 100..109) in a fresh directory, open in @j; @go (in that directory) is
 * the file emit_two_after_go waits for.  The directory, or NULL if the
 * journal did not open. */
static char *bg_setup(struct tc_journal *j, int *dfd, char *go, size_t len,
		      const char *go_name)
{
	char *d = tmpdir_new();
	struct seen s = { 0 };
	uint64_t cap = 1 << 20, dropped = 0, ends[10];
	*dfd = open_dir(d);
	snprintf(go, len, "%s/%s", d, go_name);
	write_records(*dfd, 10, ends);
	if (tc_journal_open(j, *dfd, &cap, on_rec, &s, &dropped) != 0) {
		close(*dfd);
		tmpdir_free(d);
		return NULL;
	}
	return d;
}

/* A checkpoint written by a child: records appended while it runs come
 * after its own; the old journal is whole until the switch. */
static void t_rewrite_bg(void)
{
	char go[512];
	int dfd;
	struct tc_journal j;
	struct seen s = { 0 };
	uint64_t cap = 0, dropped = 0, size;
	char *d = bg_setup(&j, &dfd, go, sizeof(go), "go");
	REQUIRE(d);
	REQUIRE(tc_journal_rewrite_bg(&j, 2, emit_two_after_go, go) == 0);
	CHECK(tc_journal_rewrite_bg(&j, 2, emit_two_after_go, go) == -EBUSY);
	CHECK(tc_journal_bg_poll(&j, 0) == 1);
	CHECK(faccessat(dfd, "journal.new", F_OK, 0) == 0);
	append_del(&j, 600);
	append_del(&j, 601);
	/* a crash now: the old journal, all of it (looked at read-only: an
	 * open for writing would remove the running child's file) */
	struct tc_journal ro;
	memset(&s, 0, sizeof(s));
	REQUIRE(tc_journal_open_rdonly(&ro, dfd, &cap, on_rec, &s, &dropped) == 0);
	tc_journal_close(&ro);
	CHECK(s.n == 12 && s.ids[10] == 600 && s.ids[11] == 601 && dropped == 0);
	close(open(go, O_CREAT | O_WRONLY, 0600));
	/* 600 and 601 the child copies; 602, appended once it has exited
	 * (seen without reaping it), the parent at the switch */
	siginfo_t si;
	CHECK(waitid(P_PID, (id_t)j.bg_pid, &si, WEXITED | WNOWAIT) == 0);
	append_del(&j, 602);
	CHECK(tc_journal_bg_poll(&j, 1) == 0);
	CHECK(j.bg_pid == 0 && faccessat(dfd, "journal.new", F_OK, 0) != 0);
	/* the next checkpoint is due by the snapshot's size (header, 500 and
	 * 501), not the tail's (600-602, records as long as those two) */
	uint64_t rec = (j.base - 64) / 2;
	CHECK(rec > 0 && j.size == j.base + 3 * rec);
	append_del(&j, 603);
	CHECK(replay_dir(dfd, &s, &dropped, &size) == 0);
	CHECK(s.n == 6 && s.ids[0] == 500 && s.ids[1] == 501 &&
	      s.ids[2] == 600 && s.ids[3] == 601 && s.ids[4] == 602 &&
	      s.ids[5] == 603);
	CHECK(dropped == 0 && size == j.size);
	CHECK(s.seqs[0] > 10 && s.seqs[2] > s.seqs[1]);
	CHECK(tc_journal_hint(dfd) == 2);
	tc_journal_close(&j);
	close(dfd);
	tmpdir_free(d);
}

/* A child that dies, one cancelled, one overtaken by a checkpoint in
 * place: the old journal stays, whole and appendable. */
static void t_rewrite_bg_fails(void)
{
	char go[512];
	int dfd;
	struct tc_journal j;
	struct seen s = { 0 };
	uint64_t dropped = 0, size;
	char *d = bg_setup(&j, &dfd, go, sizeof(go), "never");
	REQUIRE(d);
	REQUIRE(tc_journal_rewrite_bg(&j, 2, emit_two_after_go, go) == 0);
	append_del(&j, 600);
	kill(j.bg_pid, SIGKILL);
	CHECK(tc_journal_bg_poll(&j, 1) == -EIO);
	CHECK(j.bg_pid == 0 && faccessat(dfd, "journal.new", F_OK, 0) != 0);
	CHECK(j.base == j.size); /* no new try before the journal doubles */
	append_del(&j, 601);
	CHECK(replay_dir(dfd, &s, &dropped, &size) == 0);
	CHECK(s.n == 12 && s.ids[11] == 601 && size == j.size);

	REQUIRE(tc_journal_rewrite_bg(&j, 2, emit_two_after_go, go) == 0);
	CHECK(tc_journal_rewrite(&j, j.capacity, 0, emit_two, NULL) == 0);
	CHECK(j.bg_pid == 0);
	CHECK(replay_dir(dfd, &s, &dropped, &size) == 0);
	CHECK(s.n == 2 && s.ids[0] == 500);

	REQUIRE(tc_journal_rewrite_bg(&j, 2, emit_two_after_go, go) == 0);
	append_del(&j, 602);
	tc_journal_close(&j); /* cancels */
	CHECK(faccessat(dfd, "journal.new", F_OK, 0) != 0);
	CHECK(replay_dir(dfd, &s, &dropped, &size) == 0);
	CHECK(s.n == 3 && s.ids[2] == 602 && dropped == 0);
	close(dfd);
	tmpdir_free(d);
}

/* With SIGCHLD ignored the child is reaped by the kernel: its pipe still
 * says it finished, and the switch happens. */
static void t_rewrite_bg_sigchld_ignored(void)
{
	char go[512];
	int dfd;
	struct tc_journal j;
	struct seen s = { 0 };
	uint64_t dropped = 0, size;
	char *d = bg_setup(&j, &dfd, go, sizeof(go), "go");
	REQUIRE(d);
	close(open(go, O_CREAT | O_WRONLY, 0600));
	signal(SIGCHLD, SIG_IGN);
	REQUIRE(tc_journal_rewrite_bg(&j, 2, emit_two_after_go, go) == 0);
	append_del(&j, 600);
	CHECK(tc_journal_bg_poll(&j, 1) == 0);
	signal(SIGCHLD, SIG_DFL);
	CHECK(j.bg_pid == 0 && faccessat(dfd, "journal.new", F_OK, 0) != 0);
	tc_journal_close(&j);
	CHECK(replay_dir(dfd, &s, &dropped, &size) == 0);
	CHECK(s.n == 3 && s.ids[0] == 500 && s.ids[2] == 600);
	close(dfd);
	tmpdir_free(d);
}

/* The child must not outlive the process that forked it (a new daemon
 * would write its own journal.new meanwhile): it gets SIGKILL. */
static void t_rewrite_bg_dies_with_parent(void)
{
	char *d = tmpdir_new(), go[512];
	int p[2];
	pid_t helper, child = 0;
	snprintf(go, sizeof(go), "%s/never", d);
	REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); /* we reap orphans */
	REQUIRE(pipe(p) == 0);
	helper = fork();
	REQUIRE(helper >= 0);
	if (helper == 0) {
		struct tc_journal j;
		struct seen s = { 0 };
		uint64_t cap = 1 << 20, dropped = 0;
		int dfd = open_dir(d);
		if (tc_journal_open(&j, dfd, &cap, on_rec, &s, &dropped) ||
		    tc_journal_rewrite_bg(&j, 2, emit_two_after_go, go))
			_exit(1);
		if (write(p[1], &j.bg_pid, sizeof(j.bg_pid)) != sizeof(j.bg_pid))
			_exit(1);
		_exit(0); /* without cancelling: as if killed */
	}
	close(p[1]);
	CHECK(read(p[0], &child, sizeof(child)) == sizeof(child));
	close(p[0]);
	int st = 0;
	CHECK(waitpid(helper, &st, 0) == helper && WIFEXITED(st) &&
	      WEXITSTATUS(st) == 0);
	pid_t w = 0;
	for (int i = 0; child > 0 && i < 500 && w == 0; i++) {
		w = waitpid(child, &st, WNOHANG);
		if (w == 0)
			usleep(10000);
	}
	/* killed, or (parent gone before its prctl) it gave up at once */
	CHECK(child > 0 && w == child &&
	      ((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) ||
	       (WIFEXITED(st) && WEXITSTATUS(st) == 1)));
	if (w != child && child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	tmpdir_free(d);
}

int main(void)
{
	RUN(t_append_replay);
	RUN(t_torn_tail_every_offset);
	RUN(t_flipped_byte_mid_journal);
	RUN(t_bad_header);
	RUN(t_malformed_payload_rejected);
	RUN(t_stats_op);
	RUN(t_rewrite);
	RUN(t_nodes_hint);
	RUN(t_rewrite_bg);
	RUN(t_rewrite_bg_fails);
	RUN(t_rewrite_bg_sigchld_ignored);
	RUN(t_rewrite_bg_dies_with_parent);
	return check_done();
}
