/*
 * cache.h - the local blob cache (DESIGN §6): one sparse data file per blob
 * under <dir>/blobs/<algo>/<hex[0:2]>/<hex>, and an LMDB environment
 * <dir>/index/ that is the single source of truth for what is there.
 *
 * Stage -> verify -> commit: a blob becomes CACHE_VERIFIED only after the
 * full SHA-256/512 over its bytes, in offset order, matched the registered
 * digest. A mismatch (or a size that differs from the registration)
 * quarantines it: data dropped, audit verify_failed, every waiter gets
 * AF_EDIGEST / AF_ESIZE, and that registration backs off (DESIGN §6).
 *
 * Ownership: several processes (the daemon, prefetch, the cache tools)
 * share one cache. A fetch owns its blob through a lease in the index
 * (pid, start time, heartbeat), and every actor follows one rule set
 * (cache_int.h "Ownership"): generations checked in each write
 * transaction, nothing dropped that a live fetch owns, data files created
 * and unlinked only by whoever may change the record. A verified blob's
 * data file never changes; it may only be dropped (unlinked), which bumps
 * the index drop generation (cache_generation).
 *
 * Thread-safety: every function may be called from any thread. Threads:
 * one per blob being fetched (it takes the cross-process lease, learns the
 * size, submits up to [fetch] connections ranges shared fairly over all
 * blobs, records chunks and commits) with a hasher beside it; the source's
 * engine thread writes the bytes; one keeper thread writes the leases'
 * heartbeats; up to CACHE_SIZE_WORKERS threads learn sizes. Lock order
 * inside: LMDB's writer lock, then the cache's one mutex. No callback of
 * the caller runs under either.
 */
#ifndef CACHE_CACHE_H
#define CACHE_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../policy/policy.h"

struct pol_config;
struct audit;
struct src_ctx;

struct cache;

/*
 * Opens (creating if needed) the cache at cfg->cache_dir: folders, LMDB
 * environment, and with srcs the heartbeat thread. srcs and audit may be
 * NULL (a cache used only for listing, eviction, verify and gc); they and
 * cfg must outlive the cache. Returns 0 and *out, or -errno with a
 * message logged.
 */
int cache_open(const struct pol_config *cfg, struct src_ctx *srcs,
	       struct audit *audit, struct cache **out);
/*
 * Cancels fetches (waiters get -ECANCELED, or 0 if their blob verified
 * first), joins threads, closes. Safe while fetches are in flight; it waits
 * at most for a source call in progress (bounded by the source's
 * timeouts). Must not be called from a done callback. c == NULL does
 * nothing. Partial blobs stay in the index and resume on the next open.
 */
void cache_close(struct cache *c);
/*
 * Before a cache_close that hands the fetches to another process (a live
 * upgrade, DESIGN §13): no new range is started, and the ranges in flight
 * are waited for, at most max_ms, so that what they bring is recorded and
 * the next fetch resumes after it instead of downloading it again.
 * Waiters are not told anything. Call once, then cache_close.
 */
void cache_drain(struct cache *c, long max_ms);

enum cache_state {
	CACHE_NONE = 0,		/* nothing known */
	CACHE_PARTIAL,		/* some chunks present, not verified */
	CACHE_VERIFIED,		/* full digest matched; servable */
	CACHE_QUARANTINED,	/* failed verification; not servable */
};
const char *cache_state_name(enum cache_state s);

struct cache_info {
	struct pol_digest digest;
	enum cache_state state;
	uint64_t gen;			/* the record's generation */
	int last_err;			/* error of the last failed fetch, 0 */
	bool size_known;
	uint64_t size;
	uint64_t chunk_size;
	uint64_t chunks_present;
	uint64_t chunks_total;
	uint64_t bytes_present;
	long long verified_at;		/* epoch seconds, 0 if never */
	long long last_access;		/* epoch seconds */
	bool fetching;			/* a fetch is in flight (any process) */
	char project[64];		/* from the registration snapshot */
	char name[201];
};

/* Fills *out for digest. Returns 0, -ENOENT when the cache knows nothing. */
int cache_stat(struct cache *c, const struct pol_digest *d,
	       struct cache_info *out);

/*
 * Keeps the size of a blob whose registration has none, once learned from
 * its source (DESIGN §2: learned once, kept in the index), so stat costs no
 * request after a restart either. Creates a partial record with no chunk
 * when the cache knows nothing of the blob; leaves any other record alone.
 * Returns 0 or -errno.
 */
int cache_note_size(struct cache *c, const struct pol_registration *r,
		    uint64_t size);

/*
 * The size of r's blob for stat, never by downloading it (DESIGN §2, §7;
 * issue 10 item 8): r->size_bytes when registered, else what the index
 * knows, else one HEAD (src_size) on a cache thread: one request per blob
 * and source in flight, its answer shared by every caller and kept in the
 * index; a failure is remembered for [fetch] failure_backoff (a negative
 * cache), so a dead source costs one request per interval, not one per
 * stat. Waits at most wait_ms (0: not at all) for the answer.
 *
 * Returns 0 and *size; -EAGAIN when it is not known yet (the request goes
 * on: ask again later); the error of the last attempt (AF_ESOURCE,
 * AF_ETIMEDOUT, ...) while it is remembered; -ENOTSUP for a cache opened
 * without sources; -ECANCELED once cache_close has begun. Never blocks
 * longer than wait_ms plus one short index read.
 */
int cache_blob_size(struct cache *c, const struct pol_registration *r,
		    long wait_ms, uint64_t *size);

/*
 * Called exactly once when an ensure finishes: 0 (blob verified), or a
 * negative error (AF_EDIGEST, AF_ESIZE, AF_ESOURCE, AF_ETIMEDOUT,
 * AF_EBACKOFF, -ECANCELED, -ENOSPC, …). Runs on a cache thread; must not
 * call back into cache_ensure/cache_cancel for the same waiter.
 *
 * Details: it runs on the blob's fetch-job thread with no cache lock held,
 * after the verdict is committed to the index (so cache_open_verified
 * already succeeds when err == 0) and after LRU eviction. It may call
 * cache_open_verified, cache_stat and cache_ensure for other blobs; it
 * must not call cache_close and should not block for long (other waiters
 * of the same blob are told after it returns). Errors a waiter can see:
 * AF_EDIGEST, AF_ESIZE (blob quarantined, or verified with another size
 * than the waiter's registration says: DESIGN §6), AF_ESOURCE (source
 * failed or unreachable; plain errnos of a source are folded into it),
 * AF_ETIMEDOUT (also: the lease holder is stuck), AF_EBACKOFF (the
 * waiter's registration failed recently, DESIGN §6), -ECANCELED
 * (cache_close), -ENOSPC/-EIO/-ENOMEM (local).
 */
typedef void (*cache_done_fn)(void *arg, int err);

struct cache_waiter;

/*
 * Makes the blob of r present and verified. If it already is, and r's
 * size_bytes (when given) is its size, returns 0 at once and done is not
 * called; with another size, AF_ESIZE (audited verify_failed; the blob
 * stays verified for the others). Within r's failure backoff, AF_EBACKOFF
 * at once (DESIGN §6). Otherwise starts (or joins: one fetch per blob,
 * across threads and, through the index lease, across processes) a fetch
 * and returns -EINPROGRESS; done(arg, err) follows exactly once unless
 * cache_cancel() wins first. *waiter (may be NULL) receives the handle for
 * cache_cancel. Any other negative return means done will not be called.
 * r is copied. A waiter that joined the fetch of another registration
 * naming another source (or size) is not failed by that fetch's failure:
 * it fetches again with its own (issue 10 item 7).
 *
 * done == NULL starts (or leaves running) a background fetch with no
 * waiter and returns -EINPROGRESS (open with O_NONBLOCK, DESIGN §7): a
 * fetch nobody waits for still completes. -ENOTSUP when the cache was
 * opened without sources; -ECANCELED once cache_close has begun. Never
 * blocks on the network; it does one short index read.
 */
int cache_ensure(struct cache *c, const struct pol_registration *r,
		 cache_done_fn done, void *arg, struct cache_waiter **waiter);

/*
 * Withdraws a waiter: returns true if done was not and will not be called
 * (the fetch goes on for others); false if done has been or is being
 * called. The waiter handle is invalid after either done or a true return.
 *
 * It never dereferences w (it looks the pointer up among live waiters
 * under the cache lock), so it is safe to race with done: exactly one of
 * "cancel returns true" and "done is called" happens. Do not pass a handle
 * whose done has already returned: its memory may serve a later waiter.
 */
bool cache_cancel(struct cache *c, struct cache_waiter *w);

/*
 * Blocking form of cache_ensure (for prefetch and tests). progress, when
 * not NULL, is called on the calling thread (never a cache thread, never
 * under a cache lock: a slow terminal stalls only its caller) with
 * (bytes present, size) when they changed, at most every 200 ms, and once
 * more at the end of a successful fetch. Returns 0 or the error done would
 * have got.
 */
int cache_ensure_sync(struct cache *c, const struct pol_registration *r,
		      void (*progress)(void *arg, uint64_t done, uint64_t total),
		      void *arg);

/*
 * Opens the data file of a verified blob read-only (O_RDONLY|O_CLOEXEC) and
 * records the access time. Returns an fd (caller closes) or -ENOENT when
 * the blob is not verified; *size and *gen (each may be NULL) get its size
 * and the generation the fd belongs to. The open fd keeps reading correct
 * bytes even if the blob is evicted meanwhile (the file is unlinked, not
 * truncated). It checks no registration: call cache_ensure first.
 */
int cache_open_verified(struct cache *c, const struct pol_digest *d,
			uint64_t *size, uint64_t *gen);

/* Iterates every blob the index knows. Stops when fn returns non-zero. */
int cache_foreach(struct cache *c,
		  int (*fn)(void *arg, const struct cache_info *info),
		  void *arg);

/*
 * Removes a blob from the cache (index record, data file and its failure
 * backoff), unless a fetch of it is in flight here or in a live process
 * (-EBUSY). Open readers are unaffected. Audited as evict. Returns 0,
 * -ENOENT (nothing cached; a backoff is cleared all the same) or -EBUSY.
 */
int cache_evict(struct cache *c, const struct pol_digest *d,
		const char *reason);
/*
 * cache_evict, only while the record is still generation gen (from
 * cache_info): -ESTALE when it changed since the caller looked (fetched
 * again, say), so a decision made on a listing never hits a newer blob.
 */
int cache_evict_if(struct cache *c, const struct pol_digest *d, uint64_t gen,
		   const char *reason);

/*
 * Re-checks a verified blob: quick = each chunk's xxh3 against the index;
 * otherwise the full digest, hashed outside any lock. A mismatch
 * quarantines it, only if the record is still the generation that was
 * checked. Returns 0, AF_EDIGEST (quarantined), -ENOENT (not verified),
 * -ESTALE (it changed while being checked: nothing done) or -errno.
 */
int cache_verify(struct cache *c, const struct pol_digest *d, bool quick);

/*
 * gc: drops quarantined records and partial ones not accessed since
 * stale_before (epoch seconds), unless a live fetch owns them (audited as
 * evict, reason "cache gc"); removes data files no record backs; prunes
 * backoffs long over. Each blob is decided and dropped in one write
 * transaction. report (may be NULL) is called, with no lock held, once
 * per record dropped and per orphan data file removed (orphan true), with
 * the bytes it held, or with rc < 0 when that failed. Returns 0 or the
 * last error.
 */
typedef void (*cache_gc_fn)(void *arg, const char *digest, bool orphan,
			    uint64_t bytes, int rc);
int cache_gc(struct cache *c, long long stale_before, cache_gc_fn report,
	     void *arg);

/*
 * Ends every failure backoff (DESIGN §6: SIGHUP clears it; a changed
 * registration and cache evict DIGEST clear theirs by themselves).
 * Returns 0 or -errno.
 */
int cache_backoff_clear(struct cache *c);

/*
 * The index drop generation (issue 10 item 5): bumped whenever a verified
 * blob is dropped (quarantined by verify, evicted, ...) by any process
 * sharing the cache. One short read transaction: cheap enough for every
 * open. Returns 0 and *gen (0 when nothing was ever dropped), or -errno.
 */
int cache_generation(struct cache *c, uint64_t *gen);
/*
 * Calls fn for each verified blob dropped after generation since (oldest
 * first, stops at a non-zero return, which is returned), with bad = its
 * bytes were found wrong (quarantined by verify) rather than dropped
 * intact (evicted: an fd still open on it reads correct bytes). -ERANGE
 * when the log no longer reaches back that far: treat every blob as
 * changed, and bad.
 */
int cache_changes_since(struct cache *c, uint64_t since,
			int (*fn)(void *arg, const struct pol_digest *d,
				  bool bad),
			void *arg);
/*
 * fn is called when this cache instance drops a verified blob (after the
 * commit, on the dropping thread, no lock held), so the daemon can tell
 * the kernel at once. Set before any fetch; fn must not block for long.
 */
void cache_on_drop(struct cache *c,
		   void (*fn)(void *arg, const struct pol_digest *d),
		   void *arg);

/* Totals over the whole cache. */
struct cache_stats {
	uint64_t blobs;
	uint64_t verified;
	uint64_t partial;
	uint64_t quarantined;
	uint64_t bytes;		/* bytes present in data files */
	uint64_t max_size;	/* configured limit, 0 = none */
};
int cache_get_stats(struct cache *c, struct cache_stats *out);

/*
 * Event counters of this cache instance (DESIGN §13 metrics), kept with
 * atomics and read without any lock: a scrape never waits on a fetch.
 * A fetch is one fetch job that ran (not an ensure that found the blob
 * verified); its result: ok, verify_failed (digest or size mismatch:
 * quarantined), source_failed (the source, a timeout or a refused
 * credential, after retries), canceled (cache_close), error (local:
 * ENOSPC, EIO, ENOMEM). Its duration, start to verdict, goes into a
 * histogram with the bounds below (milliseconds; the last bucket is +Inf).
 */
enum cache_fetch_result {
	CACHE_FETCH_OK = 0,
	CACHE_FETCH_VERIFY_FAILED,
	CACHE_FETCH_SOURCE_FAILED,
	CACHE_FETCH_CANCELED,
	CACHE_FETCH_ERROR,
	CACHE_FETCH_RESULTS
};
const char *cache_fetch_result_name(enum cache_fetch_result r);

#define CACHE_FETCH_BUCKETS 12
extern const uint64_t cache_fetch_bucket_ms[CACHE_FETCH_BUCKETS];

struct cache_counters {
	uint64_t fetches[CACHE_FETCH_RESULTS];
	uint64_t verify_failures;	/* quarantines: fetches and cache_verify */
	uint64_t evictions;		/* by this instance: LRU and explicit */
	/* Not cumulative: [i] counts fetches of at most bucket_ms[i] and
	 * more than [i-1]; [CACHE_FETCH_BUCKETS] the rest. */
	uint64_t fetch_buckets[CACHE_FETCH_BUCKETS + 1];
	uint64_t fetch_ms_sum;
	/* Full digests of fetches (issue 16): CPU of the hashing threads. */
	uint64_t hash_cpu_ns;
	uint64_t hashed_bytes;
	unsigned hash_slots;		/* hashing threads allowed at once */
	unsigned hashing_peak;		/* most seen at once */
};
/* Copies the counters (relaxed atomic loads; no lock). */
void cache_get_counters(struct cache *c, struct cache_counters *out);

/*
 * Documents of other rooms kept in the index (DESIGN §3: the control
 * plane's registrations and policy last seen, kept across restarts), so
 * that one LMDB environment holds the node's state. The cache does not
 * look inside: a document is opaque bytes under a name (1..255 bytes, no
 * NUL), at most CACHE_DOC_MAX bytes. Every call is one short transaction.
 */
#define CACHE_DOC_MAX	((size_t)64 << 20)

/* Stores (replaces) the document name. Returns 0, -EINVAL, -ENOSPC, -errno. */
int cache_doc_put(struct cache *c, const char *name, const void *buf,
		  size_t len);
/*
 * Reads the document name into a new buffer (*buf, NUL-terminated past
 * *len; caller frees). Returns 0, -ENOENT or -errno.
 */
int cache_doc_get(struct cache *c, const char *name, char **buf,
		  size_t *len);
/* Deletes the document name. Returns 0 or -ENOENT. */
int cache_doc_del(struct cache *c, const char *name);
/*
 * Calls fn with the name of every document whose name starts with prefix
 * (in name order); stops at a non-zero return, which is returned. fn may
 * not call into the cache (the read transaction is open).
 */
int cache_doc_names(struct cache *c, const char *prefix,
		    int (*fn)(void *arg, const char *name), void *arg);

/* Path of the data file for d into buf. Returns buf, or NULL if too small. */
char *cache_blob_path(struct cache *c, const struct pol_digest *d, char *buf,
		      size_t len);

#endif
