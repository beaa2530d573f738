/*
 * cmd_cache.c - artifactfs cache [-c FILE] [--json] ls | stats |
 * evict (--to SIZE | --older-than DUR | DIGEST...) | verify [--quick]
 * [DIGEST...] | gc
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../cache/cache.h"
#include "../policy/af.h"
#include "../policy/audit.h"
#include "cli.h"

static const char cache_usage[] =
	"usage: artifactfs cache [-c FILE] [--json] COMMAND\n"
	"\n"
	"  ls                          list cached blobs\n"
	"  stats                       totals\n"
	"  evict --to SIZE             evict least recently used blobs down to SIZE\n"
	"  evict --older-than DUR      evict blobs not accessed for DUR (e.g. 7d)\n"
	"  evict DIGEST...             evict these blobs\n"
	"  verify [--quick] [DIGEST...]  re-check verified blobs (all by default);\n"
	"                              --quick checks each chunk's xxh3 only\n"
	"  gc                          drop quarantined records, stale partial\n"
	"                              blobs and data files the index does not know\n"
	"\n"
	"evict, verify and gc end with one summary line (what was removed or\n"
	"verified, and the bytes); evicting a digest that is not cached says so\n"
	"and is not an error.\n"
	"\n"
	"  -c, --config FILE           config file (default " POL_CONFIG_DEFAULT_PATH ")\n"
	"  --json                      one JSON object per line\n"
	"  --to SIZE                   with evict\n"
	"  --older-than DUR            with evict\n"
	"  --quick                     with verify\n"
	"  -h, --help                  this help\n";

struct blob_list {
	struct cache_info *v;
	size_t n;
	size_t cap;
};

static int collect(void *arg, const struct cache_info *info)
{
	struct blob_list *l = arg;

	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		struct cache_info *v = realloc(l->v, nc * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = nc;
	}
	l->v[l->n++] = *info;
	return 0;
}

static int by_last_access(const void *a, const void *b)
{
	const struct cache_info *x = a, *y = b;

	return (x->last_access > y->last_access) - (x->last_access < y->last_access);
}

static void print_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

/* As the cache_state xattr says it: a record with no byte is "none". */
static const char *shown_state(const struct cache_info *in)
{
	if (in->state == CACHE_PARTIAL && in->bytes_present == 0)
		return "none";
	return cache_state_name(in->state);
}

static int do_ls(struct cli *cli, struct blob_list *l)
{
	char when[32], sz[32];

	if (!cli->json)
		printf("%-10s %12s %7s  %-20s  %s\n", "STATE", "SIZE", "HAVE",
		       "LAST ACCESS", "ARTIFACT");
	for (size_t i = 0; i < l->n; i++) {
		const struct cache_info *in = &l->v[i];

		af_rfc3339(in->last_access, when, sizeof(when));
		if (cli->json) {
			print_line(json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:b}",
					     "digest", in->digest.str, "project", in->project,
					     "name", in->name, "size", (json_int_t)in->size,
					     "bytes_present", (json_int_t)in->bytes_present,
					     "chunks_present", (json_int_t)in->chunks_present,
					     "chunks_total", (json_int_t)in->chunks_total,
					     "state", shown_state(in),
					     "last_access", when, "fetching", in->fetching));
			continue;
		}
		printf("%-10s %12s %6.1f%%  %-20s  %s/%s@%s\n", shown_state(in),
		       cli_human_size(in->size, sz, sizeof(sz)),
		       in->size ? 100.0 * (double)in->bytes_present / (double)in->size : 100.0,
		       when, in->project, in->name, in->digest.str);
	}
	return EXIT_OK;
}

static int do_stats(struct cli *cli, struct cache *c)
{
	struct cache_stats s;
	char a[32], b[32];

	if (cache_get_stats(c, &s) < 0) {
		fprintf(stderr, "artifactfs cache: cannot read the index\n");
		return EXIT_FAIL;
	}
	if (cli->json) {
		print_line(json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
				     "dir", cli->cfg.cache_dir, "blobs", (json_int_t)s.blobs,
				     "verified", (json_int_t)s.verified,
				     "partial", (json_int_t)s.partial,
				     "quarantined", (json_int_t)s.quarantined,
				     "bytes", (json_int_t)s.bytes,
				     "max_size", (json_int_t)s.max_size));
		return EXIT_OK;
	}
	printf("cache dir:   %s\n", cli->cfg.cache_dir);
	printf("blobs:       %llu (%llu verified, %llu partial, %llu quarantined)\n",
	       (unsigned long long)s.blobs, (unsigned long long)s.verified,
	       (unsigned long long)s.partial, (unsigned long long)s.quarantined);
	printf("bytes:       %s of %s\n", cli_human_size(s.bytes, a, sizeof(a)),
	       s.max_size ? cli_human_size(s.max_size, b, sizeof(b)) : "no limit");
	return EXIT_OK;
}

/* What one evict, verify or gc run did, for its summary line. */
struct tally {
	const char *action;	/* "evict", "verify", "gc" */
	unsigned done;		/* blobs evicted or verified, records dropped */
	unsigned files;		/* gc: data files the index did not know */
	unsigned not_cached;	/* evict DIGEST: nothing to evict */
	unsigned failed;
	uint64_t bytes;		/* bytes removed or verified */
};

/* One line per blob: "evicted DIGEST (1.0 MiB)", or a JSON object. */
static void report(struct cli *cli, struct tally *t, const char *digest,
		   int rc, uint64_t bytes)
{
	const char *result = rc == 0 ? "ok" :
			     rc == -ENOENT && strcmp(t->action, "evict") == 0 ?
			     "not_cached" : "error";
	char sz[32];

	if (rc == 0) {
		t->done++;
		t->bytes += bytes;
	} else if (strcmp(result, "not_cached") == 0) {
		t->not_cached++;
	} else {
		t->failed++;
	}
	if (cli->json) {
		if (rc == 0 || strcmp(result, "not_cached") == 0)
			print_line(json_pack("{s:s, s:s, s:s, s:I}", "event", t->action,
					     "digest", digest, "result", result,
					     "bytes", (json_int_t)(rc ? 0 : bytes)));
		else
			print_line(json_pack("{s:s, s:s, s:s, s:s}", "event", t->action,
					     "digest", digest, "result", result,
					     "error", af_strerror(rc)));
		return;
	}
	if (rc == 0)
		printf("%s %s (%s)\n",
		       strcmp(t->action, "verify") == 0 ? "verified" :
		       strcmp(t->action, "evict") == 0 ? "evicted" : "removed",
		       digest, cli_human_size(bytes, sz, sizeof(sz)));
	else if (strcmp(result, "not_cached") == 0)
		printf("not cached %s\n", digest);
	else
		fprintf(stderr, "artifactfs cache %s: %s: %s\n", t->action,
			digest, af_strerror(rc));
}

static const char *plural(unsigned n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/*
 * The one closing line of evict, verify and gc: what was removed or
 * verified and the bytes, also when there was nothing to do.
 */
static int summary(struct cli *cli, const struct tally *t)
{
	char sz[32], extra[128] = "";

	if (cli->json) {
		print_line(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "event",
				     "summary", "action", t->action, "count",
				     (json_int_t)t->done, "files",
				     (json_int_t)t->files, "not_cached",
				     (json_int_t)t->not_cached, "failed",
				     (json_int_t)t->failed, "bytes",
				     (json_int_t)t->bytes));
		return t->failed ? EXIT_FAIL : EXIT_OK;
	}
	cli_human_size(t->bytes, sz, sizeof(sz));
	if (t->not_cached)
		snprintf(extra, sizeof(extra), ", %u not cached", t->not_cached);
	if (t->failed)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
			 ", %u failed", t->failed);
	if (strcmp(t->action, "evict") == 0)
		printf("evicted %u %s, %s%s\n", t->done,
		       plural(t->done, "blob", "blobs"), sz, extra);
	else if (strcmp(t->action, "verify") == 0)
		printf("verified %u %s, %s%s\n", t->done,
		       plural(t->done, "blob", "blobs"), sz, extra);
	else
		printf("gc: removed %u %s and %u orphan data %s, %s%s\n",
		       t->done, plural(t->done, "record", "records"), t->files,
		       plural(t->files, "file", "files"), sz, extra);
	return t->failed ? EXIT_FAIL : EXIT_OK;
}

static int parse_digests(int argc, char **argv, int first,
			 struct pol_digest **out, size_t *n)
{
	struct pol_digest *v;

	*n = (size_t)(argc - first);
	*out = NULL;
	if (*n == 0)
		return 0;
	v = calloc(*n, sizeof(*v));
	if (!v)
		return EXIT_FAIL;
	for (size_t i = 0; i < *n; i++) {
		char err[256];

		if (pol_digest_parse(argv[first + (int)i], &v[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "artifactfs cache: %s: %s\n", argv[first + (int)i], err);
			free(v);
			return EXIT_USAGE;
		}
	}
	*out = v;
	return 0;
}

/*
 * Evicts one blob, counting the bytes it held; gen != 0: only while it is
 * still the blob that was listed (a blob fetched again meanwhile is kept).
 */
static void evict_one(struct cli *cli, struct cache *c, struct tally *t,
		      const struct pol_digest *d, uint64_t gen, uint64_t bytes,
		      const char *reason)
{
	report(cli, t, d->str, gen ? cache_evict_if(c, d, gen, reason) :
	       cache_evict(c, d, reason), bytes);
}

static int do_evict(struct cli *cli, struct cache *c, struct blob_list *l,
		    const char *to, const char *older, struct pol_digest *d,
		    size_t nd)
{
	struct tally t = { .action = "evict" };

	if (nd) {
		for (size_t i = 0; i < nd; i++) {
			struct cache_info info;
			uint64_t bytes = 0;

			if (cache_stat(c, &d[i], &info) == 0)
				bytes = info.bytes_present;
			evict_one(cli, c, &t, &d[i], 0, bytes, "cache evict");
		}
		return summary(cli, &t);
	}
	qsort(l->v, l->n, sizeof(*l->v), by_last_access);
	if (to) {
		uint64_t limit, total = 0;

		if (pol_parse_size(to, &limit) < 0) {
			fprintf(stderr, "artifactfs cache evict: --to: bad size \"%s\"\n", to);
			return EXIT_USAGE;
		}
		for (size_t i = 0; i < l->n; i++)
			total += l->v[i].bytes_present;
		for (size_t i = 0; i < l->n && total > limit; i++) {
			unsigned before = t.done;

			if (l->v[i].fetching)
				continue;
			evict_one(cli, c, &t, &l->v[i].digest, l->v[i].gen,
				  l->v[i].bytes_present, "cache evict --to");
			if (t.done > before)
				total -= l->v[i].bytes_present;
		}
		return summary(cli, &t);
	}
	{
		uint64_t ms;
		long long cutoff;

		if (pol_parse_duration_ms(older, &ms) < 0) {
			fprintf(stderr, "artifactfs cache evict: --older-than: bad duration \"%s\"\n",
				older);
			return EXIT_USAGE;
		}
		cutoff = (long long)time(NULL) - (long long)(ms / 1000);
		for (size_t i = 0; i < l->n; i++) {
			if (l->v[i].last_access >= cutoff || l->v[i].fetching)
				continue;
			evict_one(cli, c, &t, &l->v[i].digest, l->v[i].gen,
				  l->v[i].bytes_present, "cache evict --older-than");
		}
	}
	return summary(cli, &t);
}

static int do_verify(struct cli *cli, struct cache *c, struct blob_list *l,
		     bool quick, struct pol_digest *d, size_t nd)
{
	struct tally t = { .action = "verify" };

	if (nd) {
		for (size_t i = 0; i < nd; i++) {
			struct cache_info info;
			uint64_t bytes = 0;

			if (cache_stat(c, &d[i], &info) == 0)
				bytes = info.size;
			report(cli, &t, d[i].str, cache_verify(c, &d[i], quick),
			       bytes);
		}
		return summary(cli, &t);
	}
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].state != CACHE_VERIFIED)
			continue;
		report(cli, &t, l->v[i].digest.str,
		       cache_verify(c, &l->v[i].digest, quick), l->v[i].size);
	}
	return summary(cli, &t);
}

struct gc_ctx {
	struct cli *cli;
	struct tally *t;
};

static void gc_report(void *arg, const char *digest, bool orphan,
		      uint64_t bytes, int rc)
{
	struct gc_ctx *g = arg;

	report(g->cli, g->t, digest, rc, bytes);
	if (rc == 0 && orphan) {
		g->t->done--;
		g->t->files++;
	}
}

/*
 * The cache decides and drops each blob in one index transaction, so a
 * fetch starting meanwhile (daemon, prefetch) is never touched (issue 10).
 */
static int do_gc(struct cli *cli, struct cache *c)
{
	long long stale = (long long)time(NULL) - 24 * 3600;
	struct tally t = { .action = "gc" };
	struct gc_ctx g = { .cli = cli, .t = &t };
	int rc;

	rc = cache_gc(c, stale, gc_report, &g);
	if (rc < 0 && !t.failed) {
		fprintf(stderr, "artifactfs cache gc: %s\n", af_strerror(rc));
		t.failed++;
	}
	return summary(cli, &t);
}

int cmd_cache(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'J' },
		{ "to", required_argument, NULL, 'T' },
		{ "older-than", required_argument, NULL, 'O' },
		{ "quick", no_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *to = NULL, *older = NULL, *verb;
	struct blob_list list = { 0 };
	struct pol_digest *digests = NULL;
	struct audit *audit = NULL;
	struct cache *c = NULL;
	size_t nd = 0;
	bool quick = false;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cli->config_path = optarg;
			break;
		case 'J':
			cli->json = true;
			break;
		case 'T':
			to = optarg;
			break;
		case 'O':
			older = optarg;
			break;
		case 'Q':
			quick = true;
			break;
		case 'h':
			fputs(cache_usage, stdout);
			return EXIT_OK;
		default:
			fputs(cache_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "artifactfs cache: missing command\n\n");
		fputs(cache_usage, stderr);
		return EXIT_USAGE;
	}
	verb = argv[optind++];
	if (strcmp(verb, "ls") && strcmp(verb, "stats") && strcmp(verb, "evict") &&
	    strcmp(verb, "verify") && strcmp(verb, "gc")) {
		fprintf(stderr, "artifactfs cache: unknown command \"%s\"\n\n", verb);
		fputs(cache_usage, stderr);
		return EXIT_USAGE;
	}
	if ((to || older) && strcmp(verb, "evict") != 0) {
		fprintf(stderr, "artifactfs cache %s: --to and --older-than go with evict\n", verb);
		return EXIT_USAGE;
	}
	if (quick && strcmp(verb, "verify") != 0) {
		fprintf(stderr, "artifactfs cache %s: --quick goes with verify\n", verb);
		return EXIT_USAGE;
	}
	if (strcmp(verb, "evict") == 0 &&
	    (!!to + !!older + (optind < argc)) != 1) {
		fprintf(stderr, "artifactfs cache evict: give exactly one of --to SIZE, --older-than DUR or DIGEST...\n");
		return EXIT_USAGE;
	}
	if ((strcmp(verb, "evict") == 0 || strcmp(verb, "verify") == 0)) {
		rc = parse_digests(argc, argv, optind, &digests, &nd);
		if (rc)
			return rc;
	} else if (optind < argc) {
		fprintf(stderr, "artifactfs cache %s: unexpected argument \"%s\"\n", verb,
			argv[optind]);
		return EXIT_USAGE;
	}

	if (cli_load_config(cli)) {
		free(digests);
		return EXIT_FAIL;
	}
	if (audit_open(cli->cfg.audit_log, cli->cfg.audit_syslog, &audit) < 0)
		audit = NULL;
	if (cli_run_as(cli)) {
		rc = EXIT_FAIL;
		goto out;
	}
	if (cache_open(&cli->cfg, NULL, audit, &c) < 0) {
		fprintf(stderr, "artifactfs cache: cannot open the cache at %s\n",
			cli->cfg.cache_dir);
		rc = EXIT_FAIL;
		goto out;
	}
	if (cache_foreach(c, collect, &list) < 0) {
		fprintf(stderr, "artifactfs cache: cannot read the index\n");
		rc = EXIT_FAIL;
		goto out;
	}
	if (strcmp(verb, "ls") == 0)
		rc = do_ls(cli, &list);
	else if (strcmp(verb, "stats") == 0)
		rc = do_stats(cli, c);
	else if (strcmp(verb, "evict") == 0)
		rc = do_evict(cli, c, &list, to, older, digests, nd);
	else if (strcmp(verb, "verify") == 0)
		rc = do_verify(cli, c, &list, quick, digests, nd);
	else
		rc = do_gc(cli, c);
out:
	cache_close(c);
	audit_close(audit);
	free(list.v);
	free(digests);
	return rc;
}
