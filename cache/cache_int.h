/*
 * cache_int.h - private state of the cache, shared by cache.c (open/close,
 * queries, eviction) and fetch.c (fetch jobs). Not for use outside cache/
 * (unit tests excepted: they reach the index to simulate crashes).
 */
#ifndef CACHE_CACHE_INT_H
#define CACHE_CACHE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"
#include "index_int.h"

#define CACHE_DEFAULT_CHUNK	((uint64_t)8 << 20)
#define CACHE_LEASE_POLL_MS	200
#define CACHE_ACCESS_GRANULARITY_S	60

struct job;

struct cache_waiter {
	struct cache_waiter *next;	/* job->waiters; c->lock */
	cache_done_fn done;
	void *arg;
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
};

struct cache {
	const struct pol_config *cfg;
	struct src_ctx *srcs;
	struct audit *audit;
	char *dir;			/* cache_dir, owned */
	struct idx idx;
	struct idx_lease me;		/* this instance's lease identity */
	uint64_t default_chunk;
	unsigned cap;			/* ranges in flight over all jobs */

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* any job event; waits with c->lock */
	bool closing;			/* c->lock */
	struct job *jobs;		/* running jobs; c->lock */
	struct job *finished;		/* jobs to join and free; c->lock */
	unsigned inflight;		/* ranges in flight, all jobs; c->lock */
	unsigned active;		/* jobs in their transfer loop; c->lock */
	unsigned threads;		/* job threads not yet on finished; c->lock */
};

/* cache.c */
char *cache_data_path(const struct cache *c, const char *digest_str,
		      char *buf, size_t len);
int cache_mkdirs_for(const struct cache *c, const char *digest_str);
void cache_audit(struct cache *c, const char *event,
		 const struct pol_registration *r, const char *project,
		 const char *name, const char *digest, const char *reason,
		 bool has_bytes, uint64_t bytes, long long duration_ms);
/* True when an in-process job for key is running; c->lock held. */
bool cache_job_running_locked(struct cache *c, const char *key);
/*
 * Quarantines key inside txn (state quarantined, chunks dropped, lease
 * dropped, data file unlinked). err is kept as the record's last_err.
 */
int cache_quarantine_txn(struct cache *c, MDB_txn *txn, const char *key,
			 int err);
/* LRU eviction down to 90% of max_size, never keep_key. */
void cache_lru_evict(struct cache *c, const char *keep_key);

/* fetch.c */
int fetch_start(struct cache *c, const struct pol_registration *r,
		struct cache_waiter *w);
bool fetch_cancel(struct cache *c, struct cache_waiter *w);
/* Joins finished job threads; called without c->lock. */
void fetch_reap(struct cache *c);
/* Stops every job (waiters get -ECANCELED) and joins them. */
void fetch_shutdown(struct cache *c);

#endif
