/*
 * jsonprefix.c - can these bytes still become a meta.json document?
 *
 * A writer sends meta.json in pieces; the whole is judged at close.  What
 * is wrong before its end (`echo '{bad}' > meta.json`) is told at the
 * write() instead, since shells ignore the error of close().  So this
 * answers, for the bytes so far: is there any continuation that makes
 * them a JSON object as tc_meta_parse() reads it?
 *
 * The rule is to be exact in one direction only: never refuse bytes that
 * some continuation would make acceptable at close, since a refusal fails
 * a writer in mid-document.  So the grammar here is cJSON's, where cJSON
 * is looser than RFC 8259: any byte from 1 to 32 is white space between
 * tokens; a number starts with - or a digit and runs on over 0-9 + - . e
 * E (cJSON hands the run to strtod, which close judges); a string holds
 * any byte but NUL, and its escapes are \" \\ \/ \b \f \n \r \t and \u.
 * cJSON finds a string's end first (a backslash hides the next byte, the
 * first unhidden quote ends it), then reads the four bytes after \u as
 * hex, as 0 when they are not: within those four, any escape passes here
 * (close judges them).  After the object only space, tab, newline and
 * carriage return may follow
 * (tc_meta_parse's own rule).  Nesting deeper than cJSON's limit fails.
 *
 * O(len), one pass, a byte of stack per nesting level.
 */
#include <errno.h>
#include <string.h>

#include "meta.h"

#define DEPTH_MAX 1000 /* cJSON's CJSON_NESTING_LIMIT */

enum state {
	S_TOP,        /* before the document: '{' */
	S_VALUE,      /* a value, after ':' or ',' in an array */
	S_FIRST_KEY,  /* after '{': a key or '}' */
	S_KEY,        /* after ',' in an object: a key */
	S_COLON,      /* after a key */
	S_OBJ_NEXT,   /* after a member: ',' or '}' */
	S_FIRST_ELEM, /* after '[': a value or ']' */
	S_ARR_NEXT,   /* after an element: ',' or ']' */
	S_STRING,     /* inside a string */
	S_ESCAPE,     /* after a backslash in a string */
	S_NUMBER,     /* inside a number */
	S_LITERAL,    /* inside true, false or null */
	S_END,        /* after the document */
};

static const char *const wanted[] = {
	[S_TOP] = "'{' (meta.json is a JSON object)",
	[S_VALUE] = "a value",
	[S_FIRST_KEY] = "a string or '}'",
	[S_KEY] = "a string (a key)",
	[S_COLON] = "':'",
	[S_OBJ_NEXT] = "',' or '}'",
	[S_FIRST_ELEM] = "a value or ']'",
	[S_ARR_NEXT] = "',' or ']'",
	[S_ESCAPE] = "an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX",
	[S_END] = "nothing but white space after the object",
};

int tc_json_object_prefix(const char *buf, size_t len, size_t *at,
			  const char **expected)
{
	char stack[DEPTH_MAX]; /* '{' or '[' per open container */
	int depth = 0, key = 0;
	int raw = 0, lax = 0; /* bytes left of a \u's four; an escape in them */
	const char *lit = NULL; /* the literal being read, and where in it */
	size_t li = 0;
	enum state st = S_TOP;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		const char *why = NULL;
		if (c == 0) {
			why = "no NUL byte (JSON has none)";
			goto bad_why;
		}
		/* the tokens that end when another begins */
		if (st == S_NUMBER) {
			if (strchr("0123456789+-.eE", c))
				continue;
			st = depth == 0 ? S_END
			     : stack[depth - 1] == '{' ? S_OBJ_NEXT : S_ARR_NEXT;
		}
		switch (st) {
		case S_STRING:
			if (c == '\\') {
				st = S_ESCAPE;
				lax = raw > 0;
			} else if (c == '"') {
				st = key ? S_COLON
				     : stack[depth - 1] == '{' ? S_OBJ_NEXT
							       : S_ARR_NEXT;
			}
			raw -= raw > 0;
			continue;
		case S_ESCAPE:
			if (!lax && !strchr("\"\\/bfnrtu", c))
				goto bad;
			raw -= raw > 0;
			if (c == 'u' && !lax)
				raw = 4;
			st = S_STRING;
			continue;
		case S_LITERAL:
			if (c != (unsigned char)lit[li]) {
				why = lit[0] == 't'   ? "'true'"
				      : lit[0] == 'f' ? "'false'"
						      : "'null'";
				goto bad_why;
			}
			if (!lit[++li])
				st = depth == 0 ? S_END
				     : stack[depth - 1] == '{' ? S_OBJ_NEXT
							       : S_ARR_NEXT;
			continue;
		case S_END:
			if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
				continue;
			goto bad;
		default:
			break;
		}
		if (c <= 32)
			continue; /* white space, to cJSON */
		switch (st) {
		case S_TOP:
			if (c != '{')
				goto bad;
			stack[depth++] = '{';
			st = S_FIRST_KEY;
			break;
		case S_FIRST_KEY:
		case S_KEY:
			if (c == '}' && st == S_FIRST_KEY)
				goto close;
			if (c != '"')
				goto bad;
			key = 1;
			st = S_STRING;
			break;
		case S_COLON:
			if (c != ':')
				goto bad;
			st = S_VALUE;
			break;
		case S_OBJ_NEXT:
		case S_ARR_NEXT:
			if (c == ',') {
				st = st == S_OBJ_NEXT ? S_KEY : S_VALUE;
				break;
			}
			if (c != (st == S_OBJ_NEXT ? '}' : ']'))
				goto bad;
			goto close;
		case S_FIRST_ELEM:
			if (c == ']')
				goto close;
			__attribute__((fallthrough)); /* a value */
		case S_VALUE:
			if (c == '{' || c == '[') {
				if (depth == DEPTH_MAX) {
					why = "nesting no deeper than 1000";
					goto bad_why;
				}
				stack[depth++] = (char)c;
				st = c == '{' ? S_FIRST_KEY : S_FIRST_ELEM;
			} else if (c == '"') {
				key = 0;
				st = S_STRING;
			} else if (c == '-' || (c >= '0' && c <= '9')) {
				st = S_NUMBER;
			} else if (c == 't' || c == 'f' || c == 'n') {
				lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
				li = 1;
				st = S_LITERAL;
			} else {
				goto bad;
			}
			break;
		default:
			goto bad; /* not reached: every state is handled above */
		}
		continue;
close:
		depth--;
		st = depth == 0 ? S_END
		     : stack[depth - 1] == '{' ? S_OBJ_NEXT : S_ARR_NEXT;
		continue;
bad:
		why = wanted[st];
bad_why:
		*at = i;
		*expected = why;
		return -EINVAL;
	}
	return 0;
}
