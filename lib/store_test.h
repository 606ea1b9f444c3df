/*
 * store_test.h - hooks for tests and fuzzing (internal, not part of the
 * API in tcache.h).
 */
#ifndef TC_STORE_TEST_H
#define TC_STORE_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "tcache.h"

/*
 * Replay the journal image @img (a whole journal file) into a store that
 * has no files behind it, rebuild the free space as an open would (dropping
 * damaged and overlapping tensors), fill *@st and free everything.
 * Returns 0, -EPROTO for a bad header, or -ENOMEM.
 */
int tc_replay_image(const uint8_t *img, size_t len, struct tc_stats *st);

/*
 * The index as text, every field the journal keeps, one line per node in
 * id order (the order of a directory's children is not kept: a checkpoint
 * lists entries oldest first), then the entries in LRU order: what a replay of the journal must rebuild exactly.  Left out:
 * what the journal does not keep per node (version numbers, open counts,
 * pending writes, counters, a directory's mtime and ctime: they follow
 * its children live and reach the journal only with its own records).  *@out is malloc'd, NUL-terminated.  -ENOMEM.
 */
int tc_store_dump(tc_store *s, char **out, size_t *len);

/* The window in which a create of a name forgives the lookups that found
 * it absent (MISS_WINDOW_NS; store.h), for tests that must not wait. */
void tc_store_set_miss_window(tc_store *s, int64_t ns);

/* How many of the most recently used entries tc_store_verify_start's
 * thread looks at (VERIFY_AHEAD_MAX), for tests of that bound. */
void tc_store_set_verify_ahead_max(tc_store *s, size_t n);

/* Wait for tc_store_verify_start's thread to finish by itself (it is not
 * told to stop); at once when none runs. */
void tc_store_verify_wait(tc_store *s);

#endif
