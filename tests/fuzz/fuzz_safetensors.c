/* fuzz_safetensors.c - libFuzzer target: .safetensors headers.  The input
 * is a whole file; whatever tc_st_parse() accepts must tile the file, and
 * tc_st_build() of its tensors must parse back to the same tensors. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rebuild(const struct tc_st_header *h)
{
	struct tc_st_item *it = malloc((h->ntensors + 1) * sizeof(*it));
	struct tc_st_header again;
	char *head;
	size_t len;
	uint64_t data = h->tensors && h->ntensors
				? h->tensors[h->ntensors - 1].end : 0;

	if (!it)
		return;
	for (size_t i = 0; i < h->ntensors; i++) {
		const struct tc_st_tensor *t = &h->tensors[i];
		it[i] = (struct tc_st_item){ t->name, t->name_len, t->dtype,
					     t->ndim, t->shape, t->end - t->begin };
	}
	if (tc_st_build(it, h->ntensors, NULL, 0, &head, &len) == 0) {
		if (tc_st_parse(head, len, len + data, &again) != 0 ||
		    again.ntensors != h->ntensors || (len - 8) % 8)
			__builtin_trap();
		for (size_t i = 0; i < h->ntensors; i++)
			if (again.tensors[i].end - again.tensors[i].begin !=
				    it[i].nbytes ||
			    again.tensors[i].name_len != it[i].name_len ||
			    memcmp(again.tensors[i].name, it[i].name,
				   it[i].name_len))
				__builtin_trap();
		tc_st_header_free(&again);
		free(head);
	}
	free(it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tc_st_header h;
	uint64_t n, at = 0;
	char *json;
	size_t len;

	if (tc_st_header_len(data, size, &n) ||
	    tc_st_parse(data, 8 + n, size, &h))
		return 0;
	for (size_t i = 0; i < h.ntensors; i++) {
		if (h.tensors[i].begin != at || h.tensors[i].end < at ||
		    !tc_st_utf8(h.tensors[i].name, h.tensors[i].name_len))
			__builtin_trap();
		at = h.tensors[i].end;
	}
	if (h.data_start + at != size)
		__builtin_trap();
	if (tc_st_list_json(&h, &json, &len) == 0)
		free(json);
	check_rebuild(&h);
	tc_st_header_free(&h);
	return 0;
}
