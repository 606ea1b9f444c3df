/*
 * tcache.c - the tcache command: tools over a tcachefs store.
 *
 *   tcache fsck STORE [--repair] [--json]
 *
 * Each subcommand has --help.  Exit codes: 0 all well, 1 damage found
 * (repaired with --repair), 2 the command could not run (usage, store in
 * use, not a store).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcache.h"

static const char *prog = "tcache";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  fsck STORE [--repair] [--json]   check a stopped store's journal and\n"
		"                                   every tensor's checksum\n"
		"\n"
		"'%s COMMAND --help' tells more; '%s --version' the version.\n",
		prog, prog, prog);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

struct fsck_out {
	int json;
	int n;
};

static void fsck_problem(void *arg, const char *path, const char *problem)
{
	struct fsck_out *o = arg;
	if (o->json) {
		printf("%s\n    {\"path\": ", o->n ? "," : "");
		json_str(stdout, path);
		printf(", \"problem\": ");
		json_str(stdout, problem);
		printf("}");
	} else {
		printf("damaged: %s: %s\n", path, problem);
	}
	o->n++;
}

static int cmd_fsck(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repair", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct fsck_out o = { 0 };
	unsigned flags = 0;
	int c;

	while ((c = getopt_long(argc, argv, "rjh", opts, NULL)) != -1) {
		switch (c) {
		case 'r': flags |= TC_CHECK_REPAIR; break;
		case 'j': o.json = 1; break;
		case 'h':
			printf("usage: %s fsck STORE [--repair] [--json]\n"
			       "\n"
			       "Check a store that no daemon has mounted: replay its journal and\n"
			       "hash every tensor against its xxh3.  Prints each damaged tensor\n"
			       "and what is wrong with it.  Nothing is changed unless --repair:\n"
			       "then damaged tensors are removed and the journal rewritten, so\n"
			       "the store is consistent.\n"
			       "\n"
			       "  --repair   remove what is damaged\n"
			       "  --json     print the result as JSON\n"
			       "\n"
			       "Exit: 0 no damage, 1 damage found (removed with --repair),\n"
			       "2 could not check (usage, store mounted, not a store).\n",
			       prog);
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "%s fsck: expected one STORE (try --help)\n", prog);
		return 2;
	}
	const char *dir = argv[optind];
	struct tc_check r;
	if (o.json)
		printf("{\n  \"problems\": [");
	int err = tc_store_check(dir, flags, fsck_problem, &o, &r);
	if (err) {
		if (o.json)
			printf("]\n}\n");
		fprintf(stderr, "%s fsck: %s: %s\n", prog, dir,
			err == -EBUSY ? "store is in use (unmount it first)"
			: err == -ENOENT ? "no tcachefs store there"
			: err == -EPROTO ? "not a tcachefs store, or of an unknown format version"
			: strerror(-err));
		return 2;
	}
	int bad = r.damaged || r.records_dropped || r.nodes_dropped;
	if (o.json) {
		printf("%s],\n  \"tensors\": %llu, \"bytes\": %llu, \"damaged\": %llu,"
		       " \"records_dropped\": %llu, \"nodes_dropped\": %llu,"
		       " \"repaired\": %llu, \"clean\": %s\n}\n",
		       o.n ? "\n  " : "", (unsigned long long)r.tensors,
		       (unsigned long long)r.bytes, (unsigned long long)r.damaged,
		       (unsigned long long)r.records_dropped,
		       (unsigned long long)r.nodes_dropped,
		       (unsigned long long)r.repaired, bad ? "false" : "true");
	} else {
		printf("%s: %llu tensors, %llu bytes checked; %llu damaged, "
		       "%llu journal records and %llu tensors dropped%s\n",
		       dir, (unsigned long long)r.tensors,
		       (unsigned long long)r.bytes, (unsigned long long)r.damaged,
		       (unsigned long long)r.records_dropped,
		       (unsigned long long)r.nodes_dropped,
		       !bad ? "" : flags & TC_CHECK_REPAIR ? "; repaired"
							 : "; run with --repair to remove them");
	}
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("tcache %s\n", TC_VERSION_STRING);
		return 0;
	}
	if (!strcmp(argv[1], "fsck"))
		return cmd_fsck(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s'\n", prog, argv[1]);
	usage(stderr);
	return 2;
}
