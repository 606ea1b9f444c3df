# claim: the keys of a user's meta.json are kept as written (escapes too), not as a parser read them
# file: lib/meta.c
# tests: meta
# changes: 1
# killed by: test_meta t_open_world_keeps_user_keys (\udcff comes back as the byte it stands for)
/^int tc_meta_parse(/,/^}/s/^\t\to += tc_json_minify(m\[i\].val, m\[i\].val_len, nu.doc + o);$/\t\to += tc_json_minify(rm[i].val, rm[i].val_len, nu.doc + o); \/* mutant: the unescaped text kept *\//
