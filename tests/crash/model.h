/*
 * model.h - what the crash writers' entries should hold: the model that
 * crash_writer.c keeps while writing and replays from the logs to check a
 * mount after a kill -9.
 *
 * Writer T owns the entries "wTeK" (K < nent) and nothing else, so the
 * writers never race on a name and each writer's history is one sequence
 * of operations.  Inside an entry a writer uses ten slots:
 *
 *   slot 0..5   "t0".."t5"      tensors in the entry
 *   slot 6..8   "g/t0".."g/t2"  tensors in the group "g"
 *   slot 9      ".tmp"          the temp file of an rsync-style replace
 *
 * A file's bytes are content.h's (seed, len), of which the first `size`
 * bytes are there (size < len only for a write cut short by ENOSPC and
 * committed by its close).
 *
 * The log (one per writer, outside the mount, one write(2) per line,
 * before the next operation starts):
 *
 *   B n W e s seed len             write slot s of entry e (O_TRUNC)
 *   B n R e1 s1 e2 s2              rename (over an existing target too)
 *   B n U e s                      unlink
 *   B n M e grp seq s dt nd d0 d1  write meta.json of the entry (grp 0,
 *                                  attrs {"w":T,"seq":seq}) or of its group
 *                                  (grp 1, seq -1): dtype/shape of slot s
 *                                  (-1: none)
 *   B n K e / G e / D e / Z e      mkdir entry / mkdir g / rmdir g /
 *                                  rmdir entry
 *   P n errno                      a write of op n failed; the file is
 *                                  closed (committing a prefix) next
 *   E n 0 0 | E n 1 errno          op n returned 0 / failed
 *   X e                            entry e was found gone (evicted)
 *   Q text                         something the writer cannot explain
 *
 * An op with no E, or whose E says the daemon went away (ENOTCONN,
 * ECONNABORTED), is uncertain: the mount may show it done or not done,
 * never half (and a writer stops at its first such op, so only its last op
 * can be uncertain).
 */
#ifndef TC_CRASH_MODEL_H
#define TC_CRASH_MODEL_H

#include <stdint.h>
#include <stdio.h>

#define MAXW 16
#define MAXE 8
#define NSLOT 10
#define SLOT_TMP 9
#define NDT 4

struct fst {
	uint8_t present;
	uint8_t dtype;      /* index into dt_name/dt_size */
	uint8_t ndim;       /* 1 or 2 */
	uint8_t fuzzy;      /* checker only: absent, a prefix of (seed, len)
	                       or (oseed, olen) if opresent */
	uint8_t opresent;
	uint64_t seed, len, size;
	uint64_t shape[2];
	uint64_t oseed, olen, osize;
};

struct est {
	uint8_t present, g;
	int64_t attrs;      /* -1: none; else the "seq" attribute */
	struct fst f[NSLOT];
};

struct model {
	struct est e[MAXE];
};

enum opkind { OP_W = 'W', OP_R = 'R', OP_U = 'U', OP_M = 'M', OP_K = 'K',
	      OP_G = 'G', OP_D = 'D', OP_Z = 'Z' };

struct op {
	uint64_t n;
	int kind;
	int e, s, e2, s2;
	uint64_t seed, len;
	int grp;
	int64_t seq;
	int dt, nd;
	uint64_t d[2];
};

extern const char *const dt_name[NDT];
extern const unsigned dt_size[NDT];

/* "t3", "g/t0", ".tmp" */
const char *slot_name(int s);
int slot_in_group(int s);

/* Outcome of an op, as the log tells it. */
enum outcome { OUT_OK, OUT_FAIL };

/*
 * Apply @op with @out (and errno @err, @partial: a P record was seen) to
 * @m.  Returns 0, or -1 when the failure is not one the contract allows
 * (the caller reports it).  @evict: eviction may happen in this round.
 */
int model_apply(struct model *m, const struct op *op, enum outcome out,
		int err, int partial, int evict);

/* The same op as done (no error); for the checker's "it happened" world. */
void model_apply_ok(struct model *m, const struct op *op);

/* Mark slot (e, s) fuzzy: absent, or a prefix of (seed, len), or its old
 * content. */
void model_fuzz(struct model *m, int e, int s, uint64_t seed, uint64_t len);

/* Drop entry @e (found evicted). */
void model_drop(struct model *m, int e);

/* Parse one "B ..." line's op (after "B "); 0 or -1. */
int op_parse(const char *line, struct op *op);
/* Format @op as a "B ..." line (with newline) into @buf. */
int op_format(const struct op *op, char *buf, size_t size);

/* State files: the verified contents of every writer's entries, one line
 * per entry and per file (see model.c).  state_load fills ms[0..nw) (a
 * missing file: all empty) and skips writers >= nw; 0 or -1. */
int state_load(const char *path, struct model *ms, int nw);
int state_save(const char *path, const struct model *ms, int nw, int nent);

#endif /* TC_CRASH_MODEL_H */
