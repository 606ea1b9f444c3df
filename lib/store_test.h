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

#endif
