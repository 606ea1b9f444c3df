/*
 * meta.h - meta.json rendering and validation (internal to libtcache).
 *
 * Pure functions over the structs below: the store fills a tc_meta_dir
 * from its index, and applies a tc_meta_update under its lock.
 */
#ifndef TC_META_H
#define TC_META_H

#include <stddef.h>
#include <stdint.h>

#include "tcache.h"

struct tc_meta_tensor {
	const char *name;
	uint64_t nbytes;       /* file size in bytes */
	uint64_t data_offset;  /* bytes before the array data (.npy header) */
	int dtype;             /* enum tc_dtype */
	int ndim;
	const uint64_t *shape; /* ndim values */
	uint64_t xxh3;         /* XXH3_64bits of the whole file */
	char *safetensors_json; /* a *.safetensors file's tensors: a compact
	                           JSON object (st_meta_json), or NULL */
};

struct tc_meta_dir {
	int is_entry;          /* entry fields below are rendered only if set */
	int64_t created_ns, last_access_ns; /* CLOCK_REALTIME ns */
	int pinned;
	const char *attrs_json; /* a JSON object, or NULL for {} */
	const char *link;      /* the parent entry's name, or NULL */
	const char *doc;       /* the user's keys: a compact JSON object, or
	                          NULL for none */
	size_t ntensors;
	const struct tc_meta_tensor *tensors;
	size_t ngroups;
	const char *const *groups;
};

struct tc_meta_set {
	size_t index;          /* into tc_meta_dir.tensors */
	int dtype;
	int ndim;
	uint64_t shape[TC_MAX_DIMS];
};

struct tc_meta_update {
	int has_pinned, pinned;
	char *attrs_json;      /* malloc'd compact JSON object; NULL: unchanged */
	int has_link;          /* "parent" was given: link is the new one */
	char *link;            /* malloc'd name, or NULL for none */
	size_t nset;
	struct tc_meta_set *set; /* malloc'd */
	char *doc;             /* malloc'd: the new user's keys (compact JSON
	                          object, NUL-terminated), or NULL for none;
	                          always replaces tc_meta_dir.doc */
};

/* The one top-level key of meta.json that is ours: every generated field
 * is under it, beside the user's keys. */
#define TC_META_KEY "__tcache__"
/* A tensor that a user's key K declares (TensorDict: {"K": {"dtype": ...,
 * "shape": [...]}}) is the file K followed by this. */
#define TC_META_DECLARED_SUFFIX ".memmap"

/* Render @d (malloc'd, NUL-terminated) in *@out, *@len: the user's keys
 * as written, one a line, then TC_META_KEY with ours, pretty. */
int tc_meta_render(const struct tc_meta_dir *d, char **out, size_t *len);

/* Parse and validate a user's meta.json against @cur: any JSON object.
 * TC_META_KEY, when there, is validated as ours (strictly: unknown keys,
 * dtypes or tensors, sizes that do not add up are -EINVAL); the other
 * keys are kept as written (u->doc), and those declaring a tensor
 * K.memmap of @cur set its dtype and shape, sizes unchecked (unless ours
 * set that tensor).  On success fills *@u (free with
 * tc_meta_update_free); on -EINVAL *@u is untouched. */
int tc_meta_parse(const struct tc_meta_dir *cur, const char *buf, size_t len,
		  struct tc_meta_update *u);

void tc_meta_update_free(struct tc_meta_update *u);

/* Set the reason tc_meta_error() gives (this thread's), and answer
 * -EINVAL: every refusal of a document says why. */
int tc_meta_refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* jsonprefix.c: are @buf's @len bytes the start of a JSON object, as
 * tc_meta_parse reads one (cJSON's grammar)?  0 they are, or may become
 * one; -EINVAL no continuation can make them one: *@at is the offset of
 * the byte that cannot stand there, *@expected what could have. */
int tc_json_object_prefix(const char *buf, size_t len, size_t *at,
			  const char **expected);

/* What the user's keys @doc (a compact JSON object) declare of tensor
 * @name: 1 and *@set (index 0) when a key K with name = K.memmap holds
 * an object with a known "dtype" and a "shape" of at most TC_MAX_DIMS
 * integers (the last such key), else 0.  For a tensor committed after
 * its meta.json was written. */
int tc_meta_declared(const char *doc, const char *name, struct tc_meta_set *set);

#endif
