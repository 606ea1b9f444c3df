/*
 * doc.c - JSON as text: the members of an object, each as the exact bytes
 * written, and whitespace taken out.  meta.json keeps the keys a user
 * wrote that we do not own verbatim (numbers of any size or precision,
 * escapes, key order) by keeping their text, never a parsed tree.
 *
 *   { "a" : [1, 2.50] , "b":{"x":"y"} }
 *     ^^^   ^^^^^^^^^   ^^^ ^^^^^^^^^
 *     key   val         key val          (tc_doc_member spans)
 *
 * The input is always JSON that cJSON has accepted already, so the scan
 * only has to find where values end: strings (with their escapes), and
 * brackets counted outside strings.  It still never reads past @len, and
 * answers -EINVAL for what does not scan as an object.
 *
 * Pure functions, no state: thread-safe.  Cost O(len).
 */
#include <errno.h>
#include <stdlib.h>

#include "doc.h"

/* What the parser skips between tokens: JSON's four whitespace bytes,
 * and (cJSON is lenient) every other byte up to the space. */
static int is_ws(char c)
{
	return (unsigned char)c <= ' ';
}

static size_t skip_ws(const char *p, size_t len, size_t i)
{
	while (i < len && is_ws(p[i]))
		i++;
	return i;
}

/* The end of the string token starting at @i (a '"'), past its closing
 * quote; @len when it does not close. */
static size_t string_end(const char *p, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (p[i] == '\\')
			i++;
		else if (p[i] == '"')
			return i + 1;
	}
	return len;
}

/* The end of the value starting at @i (not whitespace). */
static size_t value_end(const char *p, size_t len, size_t i)
{
	size_t depth = 0;

	if (i >= len)
		return len;
	if (p[i] == '"')
		return string_end(p, len, i);
	if (p[i] != '{' && p[i] != '[') {
		/* a number or a literal: up to a delimiter */
		while (i < len && !is_ws(p[i]) && p[i] != ',' && p[i] != '}' &&
		       p[i] != ']')
			i++;
		return i;
	}
	for (; i < len; i++) {
		if (p[i] == '"') {
			i = string_end(p, len, i) - 1;
		} else if (p[i] == '{' || p[i] == '[') {
			depth++;
		} else if (p[i] == '}' || p[i] == ']') {
			if (--depth == 0)
				return i + 1;
		}
	}
	return len;
}

int tc_doc_members(const char *p, size_t len, struct tc_doc_member **out,
		   size_t *n)
{
	struct tc_doc_member *m = NULL, *nm;
	size_t k = 0, cap = 0, i = skip_ws(p, len, 0);

	if (i >= len || p[i] != '{')
		return -EINVAL;
	i = skip_ws(p, len, i + 1);
	if (i < len && p[i] == '}')
		goto done;
	for (;;) {
		struct tc_doc_member one;
		if (i >= len || p[i] != '"')
			goto bad;
		one.key = p + i;
		i = string_end(p, len, i);
		one.key_len = (size_t)(p + i - one.key);
		i = skip_ws(p, len, i);
		if (i >= len || p[i] != ':')
			goto bad;
		i = skip_ws(p, len, i + 1);
		one.val = p + i;
		i = value_end(p, len, i);
		one.val_len = (size_t)(p + i - one.val);
		if (!one.val_len)
			goto bad;
		if (k == cap) {
			cap = cap ? 2 * cap : 8;
			if (!(nm = realloc(m, cap * sizeof(*m)))) {
				free(m);
				return -ENOMEM;
			}
			m = nm;
		}
		m[k++] = one;
		i = skip_ws(p, len, i);
		if (i < len && p[i] == ',') {
			i = skip_ws(p, len, i + 1);
			continue;
		}
		if (i < len && p[i] == '}')
			break;
		goto bad;
	}
done:
	*out = m;
	*n = k;
	return 0;
bad:
	free(m);
	return -EINVAL;
}

size_t tc_json_minify(const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len;) {
		if (in[i] == '"') {
			size_t e = string_end(in, len, i);
			while (i < e)
				out[o++] = in[i++];
		} else if (is_ws(in[i])) {
			i++;
		} else {
			out[o++] = in[i++];
		}
	}
	return o;
}
