/* fuzz_journal.c - libFuzzer target: replay of a whole journal image
 * (header, records, ops), then the free-space rebuild an open does. */
#include <stddef.h>
#include <stdint.h>

#include "store_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tc_stats st;
	if (tc_replay_image(data, size, &st) == 0) {
		/* whatever replays must be self-consistent */
		if (st.used > st.capacity || st.live_bytes > st.used + st.tensors * 4096)
			__builtin_trap();
	}
	return 0;
}
