/*
 * cache.h - the local blob cache (DESIGN §6): one sparse data file per blob
 * under <dir>/blobs/<algo>/<hex[0:2]>/<hex>, and an LMDB environment
 * <dir>/index/ that is the single source of truth for what is there.
 *
 * Stage -> verify -> commit: a blob becomes CACHE_VERIFIED only after the
 * full SHA-256/512 over its bytes, in offset order, matched the registered
 * digest. A mismatch (or a size that differs from the registration)
 * quarantines it: data dropped, audit verify_failed, every waiter gets
 * AF_EDIGEST / AF_ESIZE.
 *
 * Thread-safety: every function may be called from any thread. Threads:
 * one per blob being fetched (it takes the cross-process lease, learns the
 * size, submits up to [fetch] connections ranges shared fairly over all
 * blobs, records chunks, hashes the landed prefix and commits); the
 * source's engine thread writes the bytes. Lock order inside: LMDB's writer
 * lock, then the cache's one mutex; no callback of ours runs under either
 * except progress (see cache_ensure_sync).
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
 * environment, fetch threads. srcs and audit may be NULL (a cache used only
 * for listing and eviction); they and cfg must outlive the cache.
 * Returns 0 and *out, or -errno with a message logged.
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
 * Called exactly once when an ensure finishes: 0 (blob verified), or a
 * negative error (AF_EDIGEST, AF_ESIZE, AF_ESOURCE, AF_ETIMEDOUT,
 * -ECANCELED, -ENOSPC, …). Runs on a cache thread; must not call back into
 * cache_ensure/cache_cancel for the same waiter.
 *
 * Details: it runs on the blob's fetch-job thread with no cache lock held,
 * after the verdict is committed to the index (so cache_open_verified
 * already succeeds when err == 0) and after LRU eviction. It may call
 * cache_open_verified, cache_stat and cache_ensure for other blobs; it
 * must not call cache_close and should not block for long (other waiters
 * of the same blob are told after it returns). Errors a waiter can see:
 * AF_EDIGEST, AF_ESIZE (blob quarantined), AF_ESOURCE (source failed or
 * unreachable; plain errnos of a source are folded into it),
 * AF_ETIMEDOUT, -ECANCELED (cache_close), -ENOSPC/-EIO/-ENOMEM (local).
 */
typedef void (*cache_done_fn)(void *arg, int err);

struct cache_waiter;

/*
 * Makes the blob of r present and verified. If it already is, returns 0 at
 * once and done is not called. Otherwise starts (or joins: one fetch per
 * blob, across threads and, through the index lease, across processes) a
 * fetch and returns -EINPROGRESS; done(arg, err) follows exactly once unless
 * cache_cancel() wins first. *waiter (may be NULL) receives the handle for
 * cache_cancel. Any other negative return means done will not be called.
 * r is copied.
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
 * not NULL, is called from a cache thread as bytes land (done, total),
 * with an internal cache lock held: it must be quick and must not call
 * into the cache. Returns 0 or the error done would have got.
 */
int cache_ensure_sync(struct cache *c, const struct pol_registration *r,
		      void (*progress)(void *arg, uint64_t done, uint64_t total),
		      void *arg);

/*
 * Opens the data file of a verified blob read-only (O_RDONLY|O_CLOEXEC) and
 * records the access time. Returns an fd (caller closes) or -ENOENT when
 * the blob is not verified. The open fd keeps reading correct bytes even if
 * the blob is evicted meanwhile (the file is unlinked, not truncated).
 */
int cache_open_verified(struct cache *c, const struct pol_digest *d,
			uint64_t *size);

/* Iterates every blob the index knows. Stops when fn returns non-zero. */
int cache_foreach(struct cache *c,
		  int (*fn)(void *arg, const struct cache_info *info),
		  void *arg);

/*
 * Removes a blob from the cache (index record and data file), unless a
 * fetch of it is in flight (-EBUSY). Open readers are unaffected. Audited
 * as evict. Returns 0, -ENOENT or -EBUSY.
 */
int cache_evict(struct cache *c, const struct pol_digest *d,
		const char *reason);

/*
 * Re-checks a verified blob: quick = each chunk's xxh3 against the index;
 * otherwise the full digest. A mismatch quarantines it. Returns 0,
 * AF_EDIGEST or -errno.
 */
int cache_verify(struct cache *c, const struct pol_digest *d, bool quick);

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

/* Path of the data file for d into buf. Returns buf, or NULL if too small. */
char *cache_blob_path(struct cache *c, const struct pol_digest *d, char *buf,
		      size_t len);

#endif
