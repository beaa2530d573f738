/*
 * cache_int.h - private state of the cache, shared by cache.c (open/close,
 * queries, eviction, verification, gc), fetch.c (fetch jobs) and size.c
 * (sizes learned off the caller's thread). Not for use outside cache/
 * (unit tests excepted: they reach the index to simulate crashes and other
 * processes).
 *
 * Ownership (issue 10; the one rule every actor on a blob follows, in
 * every process sharing the cache):
 *
 *  1. A blob's data file and chunk records belong to the holder of its
 *     lease while the holder lives. Only the holder writes them, and only
 *     a fetch takes a lease. A verified record has no lease.
 *  2. Every change of a record's state or owner (lease taken, commit,
 *     quarantine, release) gives it a new generation (idx_gen_next, never
 *     reused, so a record evicted and created again differs too).
 *  3. A write that rests on an earlier read re-checks, inside its write
 *     transaction, what it read: a fetch that its generation is still the
 *     record's and the lease still its own (job_own_check: at every step,
 *     from preparing the index to the commit); `cache verify` and LRU
 *     eviction that the record is still the generation they looked at.
 *     Anything else changed it: the write is abandoned, nothing touched.
 *  4. Nobody drops a blob a live fetch owns: eviction, gc and verify
 *     refuse a blob with a live lease or an in-process job.
 *  5. A data file is unlinked or created only by whoever may change its
 *     record, inside (unlink) or after (create) the write transaction that
 *     changed it; a fetch that does not resume creates a fresh file
 *     (O_EXCL), so no earlier writer's descriptor ever reaches it. A
 *     file whose record is gone may be unlinked by anyone inside a write
 *     transaction that finds no record (gc, and eviction right after its
 *     commit: a crash in between leaves a file no record claims, never a
 *     record whose file is gone).
 *  6. A dropped verified blob bumps the index drop generation and is
 *     logged under it (idx_drop_note), so other processes learn of it.
 *  7. Nothing is hashed under a write transaction, and no callback of a
 *     caller runs under c->lock or a transaction.
 *
 * A lease holder shows it is alive by a heartbeat (the lease's beat,
 * written by job_record and by the keeper thread every CACHE_BEAT_MS); a
 * waiter that sees a live holder's lease unchanged for c->stuck_ms reports
 * it as stuck and gives up (AF_ETIMEDOUT), without taking over.
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
#define CACHE_BEAT_MS		2000
#define CACHE_STUCK_MS		30000
#define CACHE_BACKOFF_MAX_MS	(3600LL * 1000)
/* Fetches one waiter may start with its own registration (issue 10 #7). */
#define CACHE_WAITER_RETRIES	3
/* Size lookups (size.c): threads, entries remembered. */
#define CACHE_SIZE_WORKERS	4
#define CACHE_SIZE_ENTRIES	1024

struct job;
struct size_req;

/* What cache_ensure_sync's caller is shown; written under c->lock. */
struct cache_progress {
	uint64_t done;
	uint64_t total;
};

struct cache_waiter {
	struct cache_waiter *next;	/* job->waiters; c->lock */
	cache_done_fn done;
	void *arg;
	struct pol_registration *r;	/* the waiter's own registration; owned */
	struct cache_progress *prog;	/* NULL, or updated under c->lock */
	unsigned retries;		/* fetches started for it again */
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
	long long backoff_ms;		/* [fetch] failure_backoff */
	long long backoff_max_ms;	/* its ceiling */
	long long stuck_ms;		/* a silent live lease holder is stuck */
	long long beat_ms;		/* heartbeat period of our leases */

	/* Set once, before any fetch (cache_on_drop). */
	void (*on_drop)(void *arg, const struct pol_digest *d);
	void *on_drop_arg;
	/* Unit-test seam: called by a job at named steps, no lock held. */
	void (*test_hook)(struct cache *c, const char *step, const char *key);

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* any job event; waits with c->lock */
	bool closing;			/* c->lock (read atomically too) */
	bool draining;			/* no new range (cache_drain); c->lock */
	struct job *jobs;		/* running jobs; c->lock */
	struct job *finished;		/* jobs to join and free; c->lock */
	unsigned inflight;		/* ranges in flight, all jobs; c->lock */
	unsigned active;		/* jobs in their transfer loop; c->lock */
	/*
	 * Digests computed at once (issue 16): each job hashes its own blob
	 * on its own thread, up to hash_slots of them (the CPUs this process
	 * may run on), so that shards opened together hash on every core
	 * and never on more.
	 */
	unsigned hash_slots;		/* set at open */
	unsigned hashing;		/* hashers now in a chunk; c->lock */
	unsigned hashing_peak;		/* most at once so far; c->lock */
	unsigned threads;		/* job threads not yet on finished; c->lock */

	pthread_t keeper;		/* heartbeats (fetch.c) */
	bool keeper_started;
	pthread_cond_t keeper_cond;	/* wakes the keeper; c->lock */

	struct size_req *sizes;		/* size lookups (size.c); c->lock */
	unsigned nsizes;		/* entries in sizes; c->lock */
	pthread_t size_threads[CACHE_SIZE_WORKERS];
	unsigned size_workers;		/* threads started; c->lock */
	unsigned size_busy;		/* of them, on a request; c->lock */
	pthread_cond_t size_cond;	/* work for size threads; c->lock */
	/* cache_counters: __atomic, no lock (read by a metrics scrape). */
	uint64_t ctr_fetches[CACHE_FETCH_RESULTS];
	uint64_t ctr_verify_failures;
	uint64_t ctr_evictions;
	uint64_t ctr_fetch_buckets[CACHE_FETCH_BUCKETS + 1];
	uint64_t ctr_fetch_ms_sum;
	uint64_t ctr_hash_cpu_ns;
	uint64_t ctr_hashed_bytes;
};

/* Counts one fetch job's end (rc as job_run returns it) and its duration. */
void cache_count_fetch(struct cache *c, int rc, long long ms);
/* CPUs this process may run on (its affinity mask), at least 1. */
unsigned cache_cpus(void);
/* Counts one quarantine (digest or size mismatch). */
void cache_count_verify_failure(struct cache *c);

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
 * Drops the data of key inside txn (rule 5, 6): chunks and lease deleted,
 * data file unlinked, the record set to state with err as its last_err
 * and a new generation; a verified record's drop is logged. rec is the
 * record as read in txn (updated). Returns 0 or -errno.
 */
int cache_drop_txn(struct cache *c, MDB_txn *txn, const char *key,
		   struct idx_rec *rec, enum cache_state state, int err);
/* Tells the on_drop hook (no lock held). */
void cache_notify_drop(struct cache *c, const char *key);
/*
 * LRU eviction of verified blobs, never keep_key nor one being fetched:
 * when the cache plus incoming bytes (about to be fetched for keep_key)
 * exceed max_size, down to the low watermark (90% of max_size) less
 * incoming, so that the cache is at the watermark once they arrived.
 * Called after a fetch (incoming 0) and before one (issue 11: room is
 * made before the filesystem fills, not after). Best effort: fetches that
 * start at once do not count each other's incoming bytes.
 */
void cache_lru_evict(struct cache *c, const char *keep_key, uint64_t incoming);

/* Failure backoff (DESIGN §6), per blob and registration. */
uint64_t cache_reg_fp(const struct pol_registration *r);
/* True when err is a source's or the bytes' fault (it starts a backoff). */
bool cache_err_backs_off(int err);
/* Same source and size: another fetch would fail the same way. */
bool cache_same_fetch(const struct pol_registration *a,
		      const struct pol_registration *b);
/*
 * Records a failure of r's fetch in txn: the backoff doubles from
 * c->backoff_ms up to c->backoff_max_ms. *delay_ms (may be NULL) gets it.
 */
int cache_backoff_note_txn(struct cache *c, MDB_txn *txn,
			   const struct pol_registration *r, int err,
			   const char *reason, long long *delay_ms);
/* AF_EBACKOFF when r backs off now (reason filled), else 0; or -errno. */
int cache_backoff_check_txn(struct cache *c, MDB_txn *txn,
			    const struct pol_registration *r, char *reason,
			    size_t reasonlen);
/*
 * Starts or joins the fetch of w->r for w (or a background fetch when w
 * is NULL, r given): 0 when the blob is verified and servable for r (w
 * not queued), -EINPROGRESS when queued, or an error (AF_ESIZE, audited;
 * AF_EBACKOFF; -errno).
 */
int cache_start(struct cache *c, const struct pol_registration *r,
		struct cache_waiter *w);
void cache_waiter_free(struct cache_waiter *w);

/* fetch.c */
int fetch_start(struct cache *c, const struct pol_registration *r,
		struct cache_waiter *w);
bool fetch_cancel(struct cache *c, struct cache_waiter *w);
/* Joins finished job threads; called without c->lock. */
void fetch_reap(struct cache *c);
/* Starts the heartbeat thread (cache_open, when fetching is possible). */
int fetch_keeper_start(struct cache *c);
/* No new range; waits up to max_ms for those in flight (cache_drain). */
void fetch_drain(struct cache *c, long max_ms);
/* Stops every job (waiters get -ECANCELED) and joins them and the keeper. */
void fetch_shutdown(struct cache *c);

/* size.c */
/* Stops and joins the size threads (cache_close, after closing is set). */
void size_shutdown(struct cache *c);

#endif
