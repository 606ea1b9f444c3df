/*
 * doc.h - JSON as text: an object's members as the bytes written, and
 * whitespace taken out (internal to libtcache; see doc.c).
 */
#ifndef TC_DOC_H
#define TC_DOC_H

#include <stddef.h>

/* One member of an object: spans of the text it was found in. */
struct tc_doc_member {
	const char *key;  /* the key's string token, quotes included */
	size_t key_len;
	const char *val;  /* the value's text, as written */
	size_t val_len;
};

/* The members of the JSON object text @p (@len bytes; JSON that a parser
 * accepted), in document order: *@out malloc'd (NULL when none), *@n of
 * them.  -EINVAL when @p is no object; -ENOMEM. */
int tc_doc_members(const char *p, size_t len, struct tc_doc_member **out,
		   size_t *n);

/* Copy JSON text @in to @out (room for @len bytes) without the whitespace
 * outside strings; returns the bytes written. */
size_t tc_json_minify(const char *in, size_t len, char *out);

#endif
