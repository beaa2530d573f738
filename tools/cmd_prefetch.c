/*
 * cmd_prefetch.c - artifactfs prefetch [-c FILE] [-j N] [--json]
 * [-f LISTFILE] REF...: fetch and verify into the cache the daemon uses
 * (with or without a running daemon: the index lease keeps them from
 * fetching one blob twice). A progress line on a terminal; one JSON object
 * per event with --json.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cache/cache.h"
#include "../policy/af.h"
#include "../policy/audit.h"
#include "../sources/source.h"
#include "cli.h"

#define PREFETCH_MAX_REFS 100000
#define PREFETCH_MAX_JOBS 64

static const char prefetch_usage[] =
	"usage: artifactfs prefetch [-c FILE] [-j N] [--json] [-f LISTFILE] REF...\n"
	"\n"
	"Fetches and verifies artifacts into the local cache, so that the first\n"
	"open on the mount is instant. REF is project/name@algo:hex or\n"
	"project/name@channel. LISTFILE holds one REF per line (# comments).\n"
	"A malformed REF is a usage error (exit 2); one that is not registered\n"
	"or fails to fetch makes the exit status 1.\n"
	"\n"
	"  -c, --config FILE    config file (default " POL_CONFIG_DEFAULT_PATH ")\n"
	"  -j, --jobs N         fetch N artifacts at once (default 2)\n"
	"  -f, --file LISTFILE  read REFs from LISTFILE (- for standard input)\n"
	"  --json               one JSON object per event on stdout\n"
	"  -h, --help           this help\n";

struct pf_item {
	char *ref;
	const struct pol_registration *reg;	/* owned by the registry */
	_Atomic uint64_t done;
	uint64_t total;
	int result;
	bool finished;
};

struct pf_state {
	struct cli *cli;
	struct cache *cache;
	struct pf_item *items;
	size_t n;
	_Atomic size_t next;
	_Atomic size_t finished;
	_Atomic unsigned failures;
	pthread_mutex_t out_lock;
	long long last_draw_ms;		/* guarded by out_lock */
	bool tty;
};

static void print_json(struct pf_state *st, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	pthread_mutex_lock(&st->out_lock);
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	pthread_mutex_unlock(&st->out_lock);
	free(s);
	json_decref(o);
}

/* One progress line for everything in flight; out_lock held. */
static void draw_progress(struct pf_state *st, bool force)
{
	uint64_t done = 0, total = 0;
	long long now = af_now_ms();
	char a[32], b[32], bar[31];
	int pct, fill;

	if (!st->tty || st->cli->json || (!force && now - st->last_draw_ms < 100))
		return;
	st->last_draw_ms = now;
	for (size_t i = 0; i < st->n; i++) {
		done += atomic_load(&st->items[i].done);
		total += st->items[i].total;
	}
	pct = total ? (int)(done * 100 / total) : 100;
	fill = pct * 30 / 100;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, ' ', (size_t)(30 - fill));
	bar[30] = '\0';
	fprintf(stderr, "\r[%s] %3d%% %s / %s  %zu/%zu artifacts ", bar, pct,
		cli_human_size(done, a, sizeof(a)), cli_human_size(total, b, sizeof(b)),
		atomic_load(&st->finished), st->n);
	fflush(stderr);
}

struct pf_progress {
	struct pf_state *st;
	struct pf_item *it;
	long long last_json_ms;
};

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
	struct pf_progress *pp = arg;
	struct pf_state *st = pp->st;
	long long now;

	atomic_store(&pp->it->done, done);
	if (total)
		pp->it->total = total;
	if (st->cli->json) {
		now = af_now_ms();
		if (now - pp->last_json_ms < 1000)
			return;
		pp->last_json_ms = now;
		print_json(st, json_pack("{s:s, s:s, s:s, s:I, s:I}", "event", "progress",
					 "ref", pp->it->ref, "digest",
					 pp->it->reg->digest.str, "bytes", (json_int_t)done,
					 "total", (json_int_t)total));
		return;
	}
	pthread_mutex_lock(&st->out_lock);
	draw_progress(st, false);
	pthread_mutex_unlock(&st->out_lock);
}

static void fetch_one(struct pf_state *st, struct pf_item *it)
{
	struct pf_progress pp = { .st = st, .it = it };
	long long t0 = af_now_ms();
	int rc;

	it->total = it->reg->has_size ? it->reg->size_bytes : 0;
	if (st->cli->json)
		print_json(st, json_pack("{s:s, s:s, s:s, s:I}", "event", "start",
					 "ref", it->ref, "digest", it->reg->digest.str,
					 "size", (json_int_t)it->total));
	rc = cache_ensure_sync(st->cache, it->reg, on_progress, &pp);
	it->result = rc;
	it->finished = true;
	if (rc == 0)
		atomic_store(&it->done, it->total);
	atomic_fetch_add(&st->finished, 1);
	if (rc < 0)
		atomic_fetch_add(&st->failures, 1);
	if (st->cli->json) {
		if (rc == 0)
			print_json(st, json_pack("{s:s, s:s, s:s, s:I, s:I}", "event",
						 "verified", "ref", it->ref, "digest",
						 it->reg->digest.str, "bytes",
						 (json_int_t)it->total, "duration_ms",
						 (json_int_t)(af_now_ms() - t0)));
		else
			print_json(st, json_pack("{s:s, s:s, s:s, s:s}", "event", "failed",
						 "ref", it->ref, "digest",
						 it->reg->digest.str, "error",
						 af_strerror(rc)));
		return;
	}
	pthread_mutex_lock(&st->out_lock);
	if (st->tty)
		fputs("\r\033[K", stderr);
	if (rc == 0)
		printf("verified %s %s\n", it->ref, it->reg->digest.str);
	else
		fprintf(stderr, "artifactfs prefetch: %s: %s\n", it->ref, af_strerror(rc));
	fflush(stdout);
	draw_progress(st, true);
	pthread_mutex_unlock(&st->out_lock);
}

static void *worker(void *arg)
{
	struct pf_state *st = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&st->next, 1);

		if (i >= st->n)
			return NULL;
		if (st->items[i].reg)
			fetch_one(st, &st->items[i]);
	}
}

static int add_ref(char ***refs, size_t *n, size_t *cap, const char *ref)
{
	if (*n >= PREFETCH_MAX_REFS)
		return -E2BIG;
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		char **v = realloc(*refs, nc * sizeof(*v));

		if (!v)
			return -ENOMEM;
		*refs = v;
		*cap = nc;
	}
	(*refs)[*n] = strdup(ref);
	if (!(*refs)[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int read_list(const char *path, char ***refs, size_t *n, size_t *cap)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	char line[4096];
	unsigned lineno = 0;
	int rc = 0;

	if (!f) {
		fprintf(stderr, "artifactfs prefetch: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		char *s = line, *e;

		lineno++;
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strcspn(s, "#\r\n");
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*e = '\0';
		if (!*s)
			continue;
		if (strchr(s, ' ') || strchr(s, '\t')) {
			fprintf(stderr, "artifactfs prefetch: %s:%u: one REF per line\n",
				path, lineno);
			rc = -EINVAL;
			break;
		}
		rc = add_ref(refs, n, cap, s);
	}
	if (f != stdin)
		fclose(f);
	return rc;
}

int cmd_prefetch(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'J' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "file", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pf_state st;
	struct pol_registry *reg = NULL;
	const struct pol_policy *pol = NULL;
	struct audit *audit = NULL;
	struct src_ctx *srcs = NULL;
	pthread_t threads[PREFETCH_MAX_JOBS];
	char **refs = NULL;
	size_t nrefs = 0, cap = 0;
	unsigned jobs = 2, started = 0;
	int c, rc = EXIT_FAIL;

	memset(&st, 0, sizeof(st));
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:j:f:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cli->config_path = optarg;
			break;
		case 'J':
			cli->json = true;
			break;
		case 'j': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || v < 1 || v > PREFETCH_MAX_JOBS) {
				fprintf(stderr, "artifactfs prefetch: -j: expected 1..%d, got \"%s\"\n",
					PREFETCH_MAX_JOBS, optarg);
				return EXIT_USAGE;
			}
			jobs = (unsigned)v;
			break;
		}
		case 'f':
			if (read_list(optarg, &refs, &nrefs, &cap) < 0)
				goto out_refs;
			break;
		case 'h':
			fputs(prefetch_usage, stdout);
			return EXIT_OK;
		default:
			fputs(prefetch_usage, stderr);
			rc = EXIT_USAGE;
			goto out_refs;
		}
	}
	for (int i = optind; i < argc; i++)
		if (add_ref(&refs, &nrefs, &cap, argv[i]) < 0)
			goto out_refs;
	if (nrefs == 0) {
		fprintf(stderr, "artifactfs prefetch: no REF given\n\n");
		fputs(prefetch_usage, stderr);
		rc = EXIT_USAGE;
		goto out_refs;
	}
	/* A malformed REF is a usage error (DESIGN §9: exit 2), before any work. */
	for (size_t i = 0; i < nrefs; i++) {
		struct cli_ref cr;
		char err[512];

		if (cli_parse_ref(refs[i], &cr, err, sizeof(err)) < 0) {
			fprintf(stderr, "artifactfs prefetch: %s\n", err);
			rc = EXIT_USAGE;
		}
	}
	if (rc == EXIT_USAGE)
		goto out_refs;
	if (cli_load_config(cli))
		goto out_refs;

	st.cli = cli;
	st.tty = isatty(STDERR_FILENO);
	pthread_mutex_init(&st.out_lock, NULL);
	st.items = calloc(nrefs, sizeof(*st.items));
	if (!st.items)
		goto out_cache;
	st.n = nrefs;
	if (audit_open(cli->cfg.audit_log, cli->cfg.audit_syslog, &audit) < 0)
		af_warn("audit log %s cannot be opened: events go to no file",
			cli->cfg.audit_log);
	if (cli_run_as(cli))
		goto out_cache;
	if (src_ctx_new(&cli->cfg, audit, &srcs) < 0 ||
	    cache_open(&cli->cfg, srcs, audit, &st.cache) < 0) {
		fprintf(stderr, "artifactfs prefetch: cannot open the cache at %s\n",
			cli->cfg.cache_dir);
		goto out_cache;
	}
	/*
	 * The registry after the drop (run_as: the control plane's answers
	 * are parsed unprivileged) and with the cache open: during an outage
	 * the answers it kept resolve the REFs, as in the daemon.
	 */
	if (cli_load_registry(cli, st.cache, true, NULL, NULL, false, &reg,
			      &pol))
		goto out_cache;
	for (size_t i = 0; i < nrefs; i++) {
		char err[512], reason[256];
		const struct pol_registration *r;

		st.items[i].ref = refs[i];
		r = cli_resolve_ref(reg, pol, refs[i], err, sizeof(err));
		if (!r) {
			fprintf(stderr, "artifactfs prefetch: %s\n", err);
			atomic_fetch_add(&st.failures, 1);
			continue;
		}
		if (pol_policy_decide(pol, r, reason, sizeof(reason)) < 0) {
			fprintf(stderr, "artifactfs prefetch: %s: denied: %s\n", refs[i], reason);
			atomic_fetch_add(&st.failures, 1);
			continue;
		}
		st.items[i].reg = r;
	}
	if (jobs > nrefs)
		jobs = (unsigned)nrefs;
	for (started = 0; started < jobs; started++)
		if (pthread_create(&threads[started], NULL, worker, &st) != 0)
			break;
	if (started == 0)
		worker(&st);
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (st.tty && !cli->json)
		fputs("\r\033[K", stderr);
	rc = atomic_load(&st.failures) ? EXIT_FAIL : EXIT_OK;

out_cache:
	cache_close(st.cache);
	src_ctx_free(srcs);
	audit_close(audit);
	pthread_mutex_destroy(&st.out_lock);
	free(st.items);
	pol_registry_free(reg);
out_refs:
	for (size_t i = 0; i < nrefs; i++)
		free(refs[i]);
	free(refs);
	return rc;
}
