/* fuzz_meta.c - libFuzzer target: validation of a user's meta.json
 * against an entry with five tensors and a group; the document kept of
 * it must render and read back to itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t s1[] = { 2, 3 }, s2[] = { 4096 }, s3[] = { 1 };
	static const struct tc_meta_tensor t[] = {
		{ "a.npy", 152, 128, TC_DT_FLOAT32, 2, s1, 0x1234, NULL },
		{ "raw", 4096, 0, TC_DT_UINT8, 1, s2, 0xabcdef, NULL },
		{ "x", 8, 0, TC_DT_FLOAT64, 1, s3, 7, NULL },
		{ "m.safetensors", 4096, 0, TC_DT_UINT8, 1, s2, 9,
		  "{\"w\":{\"dtype\":\"float32\",\"shape\":[2],\"offset\":80}}" },
		{ "emb.memmap", 8, 0, TC_DT_UINT8, 1, s3, 9, NULL }, /* declared: any shape */
	};
	static const char *const g[] = { "sub" };
	struct tc_meta_dir d = { .is_entry = 1, .created_ns = 1, .last_access_ns = 2,
				 .attrs_json = "{\"k\":1}", .ntensors = 5,
				 .tensors = t, .ngroups = 1, .groups = g };
	struct tc_meta_update u;
	if (tc_meta_parse(&d, (const char *)data, size, &u) == 0) {
		for (size_t i = 0; i < u.nset; i++) {
			const struct tc_meta_set *m = &u.set[i];
			uint64_t n = tc_dtype_size(m->dtype);
			for (int k = 0; k < m->ndim; k++)
				n *= m->shape[k];
			if (m->index >= 5 || m->ndim > TC_MAX_DIMS ||
			    (m->index < 4 &&
			     n != t[m->index].nbytes - t[m->index].data_offset))
				__builtin_trap(); /* accepted a shape that does not fit */
		}
		/* what is kept renders, and reads back as the same keys */
		struct tc_meta_dir r = d;
		struct tc_meta_update again;
		char *out;
		size_t len;
		r.doc = u.doc;
		if (tc_meta_render(&r, &out, &len) != 0 ||
		    tc_meta_parse(&r, out, len, &again) != 0)
			__builtin_trap();
		if ((u.doc == NULL) != (again.doc == NULL) ||
		    (u.doc && strcmp(u.doc, again.doc)))
			__builtin_trap();
		tc_meta_update_free(&again);
		free(out);
		tc_meta_update_free(&u);
	}
	return 0;
}
