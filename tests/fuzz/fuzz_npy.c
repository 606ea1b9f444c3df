/* fuzz_npy.c - libFuzzer target: .npy header parsing. */
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tc_npy_info info;
	if (tc_npy_parse(data, size, &info) == 0) {
		if (info.ndim < 0 || info.ndim > TC_MAX_DIMS || info.data_offset > size ||
		    !tc_dtype_size(info.dtype))
			__builtin_trap();
	}
	return 0;
}
