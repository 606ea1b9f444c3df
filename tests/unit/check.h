/*
 * check.h - a tiny TAP harness for the unit tests.
 *
 *   static void t_something(void) { CHECK(x == 1); }
 *   int main(void) { RUN(t_something); return check_done(); }
 *
 * Each RUN() is one TAP test point; every failed CHECK prints its file,
 * line and expression as a TAP diagnostic and fails the point.
 */
#ifndef TC_CHECK_H
#define TC_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_point_failed;
static int check_points;
static int check_failed_points;

#define CHECK(expr)                                                        \
	do {                                                               \
		if (!(expr)) {                                             \
			printf("# %s:%d: CHECK(%s) failed\n", __FILE__,    \
			       __LINE__, #expr);                           \
			fflush(stdout);                                    \
			check_point_failed = 1;                            \
		}                                                          \
	} while (0)

/* CHECK that also stops the current test function. */
#define REQUIRE(expr)                                                      \
	do {                                                               \
		CHECK(expr);                                               \
		if (check_point_failed)                                    \
			return;                                            \
	} while (0)

#define RUN(fn)                                                            \
	do {                                                               \
		check_point_failed = 0;                                    \
		fn();                                                      \
		check_points++;                                            \
		if (check_point_failed)                                    \
			check_failed_points++;                             \
		printf("%sok %d - %s\n", check_point_failed ? "not " : "", \
		       check_points, #fn);                                 \
		fflush(stdout);                                            \
	} while (0)

static inline int check_done(void)
{
	printf("1..%d\n", check_points);
	return check_failed_points ? 1 : 0;
}

#endif
