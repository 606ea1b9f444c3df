/* test_map.c - the uint64 -> pointer hash map against a plain array. */
#include "check.h"
#include "map.h"
#include "testutil.h"

#define N 200000

static void t_put_get_del_against_reference(void)
{
	struct tc_map m = { 0 };
	static uintptr_t ref[N]; /* key i*7919 -> value or 0 */
	uint64_t s = 42;
	size_t live = 0;

	for (int step = 0; step < 3 * N; step++) {
		size_t i = rnd(&s) % N;
		uint64_t key = (uint64_t)i * 7919;
		switch (rnd(&s) % 3) {
		case 0:
		case 1:
			if (!ref[i])
				live++;
			ref[i] = (uintptr_t)step * 2 + 1;
			CHECK(tc_map_put(&m, key, (void *)ref[i]) == 0);
			break;
		case 2: {
			void *v = tc_map_del(&m, key);
			CHECK((uintptr_t)v == ref[i]);
			if (ref[i])
				live--;
			ref[i] = 0;
			break;
		}
		}
	}
	CHECK(m.n == live);
	for (size_t i = 0; i < N; i++)
		CHECK((uintptr_t)tc_map_get(&m, (uint64_t)i * 7919) == ref[i]);
	CHECK(m.n * 4 <= m.cap * 3);
	tc_map_free(&m);
}

static void t_zero_key_and_empty_map(void)
{
	struct tc_map m = { 0 };
	CHECK(tc_map_get(&m, 0) == NULL);
	CHECK(tc_map_del(&m, 0) == NULL);
	int x;
	CHECK(tc_map_put(&m, 0, &x) == 0);
	CHECK(tc_map_get(&m, 0) == &x);
	CHECK(tc_map_del(&m, 0) == &x);
	CHECK(m.n == 0);
	tc_map_free(&m);
}

int main(void)
{
	RUN(t_put_get_del_against_reference);
	RUN(t_zero_key_and_empty_map);
	return check_done();
}
