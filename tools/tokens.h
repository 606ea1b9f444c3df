/*
 * tokens.h - token ids for `tcache key --tokens` and `tcache match`: read
 * from a file or stdin, as text or as a .npy array, and hashed into the
 * page keys SGLang gives KV pages.
 */
#ifndef TC_TOKENS_H
#define TC_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "sha256.h"

/* A page key: 64 lowercase hex digits and a NUL. */
#define PAGE_KEY_LEN (2 * SHA256_BYTES)

/*
 * Read the token ids of @path ("-": stdin) into *@ids (malloc'd, the
 * caller frees; NULL when there are none) and *@n.  The input is either
 * whitespace-separated unsigned decimal integers below 2^32, or a .npy
 * file (it starts with "\x93NUMPY") holding a 1-d, C-order, little-endian
 * integer array (i1, i2, i4, i8, u1, u2, u4, u8) whose values are all in
 * [0, 2^32).  Returns 0, or -1 with a message naming @path and the cause
 * in @err (@errlen bytes); then *@ids and *@n are untouched.
 */
int tokens_read(const char *path, uint32_t **ids, size_t *n, char *err,
		size_t errlen);

/*
 * The keys of each full page of @ids (@n tokens, @page_size > 0 per page),
 * in order, the way tcache.page_hashes computes them: page i's key is the
 * hex SHA-256 over the namespace seed (when @ns is not NULL: the raw
 * digest of "tcache-namespace:" + @ns), then the raw 32-byte digest of
 * page i-1 (of @prior for page 0, when not NULL), then each token id as 4
 * bytes little-endian.  Calls @page(i, key, arg) for each page, stopping
 * early (and returning) when it returns non-zero; returns 0 otherwise.
 */
int page_keys(const uint32_t *ids, size_t n, size_t page_size,
	      const uint8_t *prior, const char *ns,
	      int (*page)(size_t i, const char *key, void *arg), void *arg);

/* Parse 64 hex digits (either case) into @out: 0, or -1. */
int hex_digest(const char *hex, uint8_t out[SHA256_BYTES]);

#endif
