/*
 * metrics.h - Prometheus metrics of a mount (DESIGN §13): [metrics] listen
 * serves GET /metrics in the text exposition format (version 0.0.4), with
 * # HELP and # TYPE for every family, through libmicrohttpd (Debian's
 * libmicrohttpd: a kept HTTP server library; one internal thread).
 *
 * The counters live where the events happen and are read lock-free:
 * fs_get_stats (opens), cache_get_counters (fetches, verification
 * failures, evictions, the fetch-time histogram), src_ctx_stats (bytes per
 * source type), ctl_catalog_stats (registry). A scrape takes no lock a
 * FUSE request waits on: it reads those atomics, and the cache gauges
 * (bytes, blobs per state) from a copy that a sampler thread refreshes
 * from the index when the cache's counters moved (checked every second)
 * and at least every METRICS_SAMPLE_MAX_S.
 */
#ifndef TOOLS_METRICS_H
#define TOOLS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "../cache/cache.h"
#include "../control/catalog.h"
#include "../fs/fs.h"
#include "../sources/source.h"

#define METRICS_SAMPLE_MAX_S	60

/* Everything one scrape shows: a plain value, rendered by metrics_render. */
struct metrics_sample {
	struct fs_stats fs;
	struct cache_counters cache;
	struct src_stats src;
	struct ctl_stats ctl;
	uint64_t cache_bytes;			/* sampled */
	uint64_t cache_max_bytes;		/* cache.max_size; 0: none */
	uint64_t cache_blobs[4];		/* by enum cache_state; sampled */
};

/*
 * Renders s in the Prometheus text format into a malloc'd buffer (*out,
 * *len; the caller frees). Pure. Returns 0 or -ENOMEM.
 */
int metrics_render(const struct metrics_sample *s, char **out, size_t *len);

/*
 * A listening TCP socket for [metrics] listen (pol_parse_listen's forms),
 * bound now: before the fork and the privilege drop, so a busy port fails
 * the mount command and a port below 1024 works. Returns the fd or -errno
 * (logged, naming the address).
 */
int metrics_bind(const char *listen);

/* What a scrape reads; all must outlive the server. */
struct metrics_deps {
	const struct pol_config *cfg;
	struct fs_ctx *fs;		/* NULL: no opens counted (tests) */
	struct cache *cache;
	struct src_ctx *srcs;
	struct ctl_catalog *catalog;
};

struct metrics;

/*
 * Serves /metrics on fd (from metrics_bind; taken) and starts the sampler.
 * Returns 0 and *out, or -errno (fd closed).
 */
int metrics_start(int fd, const struct metrics_deps *deps,
		  struct metrics **out);
/* Fills *s as a scrape would (tests). Lock-free. */
void metrics_collect(struct metrics *m, struct metrics_sample *s);
/* Stops the server and the sampler and frees m. m == NULL: nothing. */
void metrics_stop(struct metrics *m);
/*
 * Like metrics_stop, but the listening socket stays open and is returned
 * (-1 if there is none) for the next server (a live upgrade hands it on:
 * no second bind, no port gap).
 */
int metrics_release(struct metrics *m);

#endif
