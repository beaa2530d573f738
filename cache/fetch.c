/*
 * fetch.c - fetch jobs (DESIGN §6, issue 3): one job per blob per process,
 * one lease per blob across processes, up to c->cap ranges in flight over
 * all jobs (shared fairly), chunks recorded only after their bytes were
 * written, and the full digest computed in offset order on the job thread
 * while later chunks are still arriving. Every step checks and keeps the
 * job's ownership of the blob (cache_int.h "Ownership").
 *
 * Threads. Each job has one thread (job_main) that takes the lease, learns
 * the size, checks the chunks a previous run left, submits ranges, records
 * landed chunks in the index, and commits; a hasher thread per job feeds
 * the digest with the contiguous prefix of landed chunks (read back in
 * HASH_PIECE pieces). The source's callbacks (range_data, range_done) run
 * on the source's engine thread or inline in src_read_range; they write
 * bytes, hash each chunk's xxh3 and hand the chunk over under c->lock.
 * Waiters' done callbacks run on the job thread without any lock held.
 * One keeper thread per cache writes the heartbeat of the leases its jobs
 * hold.
 *
 * A source that ignores Range (200 with the whole body, DESIGN §5b) would
 * cost the bytes before each range once per chunk: the first range of a
 * job goes out alone until its answer shows whether Range is honoured;
 * when it is not, that same whole-body answer goes on past the range
 * (range_more) and delivers everything missing, once, in order.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "../policy/audit.h"
#include "../policy/config.h"
#include "../sources/source.h"
#include "cache_int.h"
#include "hash_int.h"

/* Chunk states, per job, in j->cstate (guarded by c->lock). */
enum {
	CH_MISSING = 0,
	CH_INFLIGHT,
	CH_LANDED,		/* bytes written, not yet in the index */
	CH_PRESENT,		/* bytes written and recorded */
};

#define RECORD_BATCH	64
/* Heartbeats written by the keeper in one transaction. */
#define BEAT_BATCH	64

struct job {
	struct job *next;		/* c->jobs or c->finished; c->lock */
	struct cache *c;
	pthread_t thread;
	struct pol_registration *r;	/* owned; immutable */
	char key[POL_DIGEST_STR_MAX];	/* digest string */
	struct cache_waiter *waiters;	/* c->lock */
	bool detached;			/* waiters handed to done; c->lock */
	bool owned;			/* holds the lease of generation gen; c->lock */
	uint64_t gen;			/* set with owned, then immutable */
	long long beat_ms;		/* last heartbeat written (monotonic); c->lock */

	/* Set up by the job thread before any range is submitted. */
	struct src *src;
	int fd;
	uint64_t size;
	uint64_t chunk_size;
	uint64_t nchunks;

	uint8_t *cstate;		/* c->lock */
	uint64_t *cxxh;			/* c->lock */
	uint64_t *landed;		/* queue of landed chunks; c->lock */
	uint64_t nlanded;		/* c->lock */
	uint64_t npresent;		/* c->lock */
	uint64_t have_bytes;		/* landed or present; c->lock */
	uint64_t fetched_bytes;		/* c->lock */
	unsigned inflight;		/* c->lock */
	int err;			/* first range error; c->lock */
	char reason[400];		/* c->lock */

	uint64_t hashed;		/* chunks fed to the digest; c->lock */
	bool hash_stop;			/* hasher must stop; c->lock */
	bool probing;			/* first range not answered yet; c->lock */

	/* Job thread only. */
	uint64_t next_submit;
	bool submitted;			/* a range went out */
	bool audited;			/* the failure was already audited */
	bool mirrors_blamed;		/* fetching again from the source alone */
	bool stuck;			/* gave up on a stuck lease holder */
	uint64_t hash_cpu_ns;		/* CPU of its hasher thread */
};

/*
 * One request: chunks [first, first + n), of which those marked in owned
 * were missing when it was submitted and are its to write; the bytes of
 * the others (a sequential range crossing chunks already present) are
 * skipped, never written: a chunk the hasher may have read stays as read.
 */
struct range {
	struct job *j;
	struct src_range_cb cb;
	uint64_t first;
	uint64_t n;
	uint8_t *owned;			/* nchunks - first flags (it may grow) */
	uint64_t off;			/* bytes [off, off + len) */
	uint64_t len;
	uint64_t got;
	uint64_t cur;			/* chunk (relative) receiving bytes */
	uint64_t cur_got;		/* its bytes received */
	bool answered;			/* first byte or end seen */
	int own_err;			/* an error range_data raised itself */
	XXH3_state_t *xs;
	unsigned char *wbuf;		/* bytes of chunk cur not yet written */
	size_t wlen;
	uint64_t woff;			/* file offset of wbuf[0] */
};

/*
 * Bytes a range gathers before one pwrite: the source hands over what each
 * socket read returned (often 16 KiB), and one system call per piece cost
 * more than the copy itself (bench: 131k pwrites for 2 GiB). Bounded:
 * at most [fetch] connections ranges in flight hold one each.
 */
#define WRITE_BATCH	((size_t)512 << 10)

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Writes what rg gathered. Returns 0 or -errno (recorded as ours). */
static int range_flush(struct range *rg)
{
	int rc;

	if (!rg->wlen)
		return 0;
	rc = pwrite_all(rg->j->fd, rg->wbuf, rg->wlen, rg->woff);
	rg->wlen = 0;
	if (rc)
		rg->own_err = rc;	/* ENOSPC and friends are ours */
	return rc;
}

/* Writes len bytes for file offset off (contiguous within one chunk). */
static int range_write(struct range *rg, uint64_t off, const void *buf,
		       size_t len)
{
	int rc;

	if (rg->wbuf && rg->wlen && rg->woff + rg->wlen == off &&
	    rg->wlen + len <= WRITE_BATCH) {
		memcpy(rg->wbuf + rg->wlen, buf, len);
		rg->wlen += len;
		return rg->wlen == WRITE_BATCH ? range_flush(rg) : 0;
	}
	rc = range_flush(rg);
	if (rc)
		return rc;
	if (rg->wbuf && len < WRITE_BATCH) {
		memcpy(rg->wbuf, buf, len);
		rg->wlen = len;
		rg->woff = off;
		return 0;
	}
	rc = pwrite_all(rg->j->fd, buf, len, off);
	if (rc)
		rg->own_err = rc;
	return rc;
}

/*
 * What a waiter sees of a source failure: the source's own codes pass, a
 * plain errno from it (a file source's ENOENT, say) becomes AF_ESOURCE so
 * that fs never mistakes it for "not registered" (DESIGN §7: EIO).
 */
static int source_err(int err)
{
	switch (err) {
	case AF_ESOURCE:
	case AF_ETIMEDOUT:
	case AF_ESIZE:
	case AF_EDIGEST:
	case -ECANCELED:
	case -ENOMEM:
		return err;
	default:
		return AF_ESOURCE;
	}
}

static bool cache_stopping(struct cache *c)
{
	return __atomic_load_n(&c->closing, __ATOMIC_ACQUIRE);
}

static uint64_t chunk_len(const struct job *j, uint64_t i)
{
	uint64_t off = i * j->chunk_size;

	return j->size - off < j->chunk_size ? j->size - off : j->chunk_size;
}

static void test_step(struct job *j, const char *step)
{
	if (j->c->test_hook)
		j->c->test_hook(j->c, step, j->key);
}

/* The first answer of the job's first range: more may go out now. */
static void range_answered(struct range *rg)
{
	struct cache *c = rg->j->c;

	if (rg->answered)
		return;
	rg->answered = true;
	pthread_mutex_lock(&c->lock);
	if (rg->j->probing) {
		rg->j->probing = false;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
}

/* Chunk first + cur is complete: hand it to the job thread. */
static int range_land(struct range *rg)
{
	struct job *j = rg->j;
	struct cache *c = j->c;
	uint64_t i = rg->first + rg->cur, len = chunk_len(j, i), xxh;
	int rc;

	rc = range_flush(rg);
	if (rc)
		return rc;
	xxh = XXH3_64bits_digest(rg->xs);
	XXH3_64bits_reset(rg->xs);
	rg->owned[rg->cur] = 0;		/* landed: no longer ours to undo */
	pthread_mutex_lock(&c->lock);
	j->cstate[i] = CH_LANDED;
	j->cxxh[i] = xxh;
	j->landed[j->nlanded++] = i;
	j->fetched_bytes += len;
	j->have_bytes += len;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	af_hook("cache.chunk.landed");
	return 0;
}

static int range_data(void *arg, uint64_t off, const void *buf, size_t len)
{
	struct range *rg = arg;
	struct job *j = rg->j;
	const unsigned char *p = buf;
	int rc;

	if (cache_stopping(j->c))
		return -ECANCELED;
	if (off != rg->off + rg->got || len > rg->len - rg->got)
		return AF_ESIZE;
	range_answered(rg);
	while (len) {
		uint64_t i = rg->first + rg->cur;
		uint64_t clen = chunk_len(j, i);
		size_t take = clen - rg->cur_got < len ?
			      (size_t)(clen - rg->cur_got) : len;

		if (rg->owned[rg->cur]) {
			XXH3_64bits_update(rg->xs, p, take);
			rc = range_write(rg, i * j->chunk_size + rg->cur_got, p,
					 take);
			if (rc)
				return rc;
		}
		rg->cur_got += take;
		rg->got += take;
		p += take;
		len -= take;
		if (rg->cur_got < clen)
			continue;
		if (rg->owned[rg->cur]) {
			rc = range_land(rg);
			if (rc)
				return rc;
		}
		rg->cur++;
		rg->cur_got = 0;
	}
	return 0;
}

/*
 * The source ignores Range and its whole-body answer has delivered this
 * range (the job's first): take what is missing after it from the same
 * answer, up to the last missing chunk, so the blob is read once (DESIGN
 * §5b). Only while this range is the job's one in flight (no other can
 * own those chunks); the job goes sequential meanwhile and waits for it.
 */
static uint64_t range_more(void *arg)
{
	struct range *rg = arg;
	struct job *j = rg->j;
	struct cache *c = j->c;
	uint64_t end = rg->first + rg->n, last = 0, more;
	bool any = false;

	if (cache_stopping(c))
		return 0;
	pthread_mutex_lock(&c->lock);
	if (j->inflight == 1 && !j->err) {
		for (uint64_t i = end; i < j->nchunks; i++) {
			if (j->cstate[i] == CH_MISSING) {
				last = i;
				any = true;
			}
		}
		for (uint64_t i = end; any && i <= last; i++) {
			if (j->cstate[i] != CH_MISSING)
				continue;
			j->cstate[i] = CH_INFLIGHT;
			rg->owned[i - rg->first] = 1;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (!any)
		return 0;
	rg->n = last - rg->first + 1;
	more = last * j->chunk_size + chunk_len(j, last) - (rg->off + rg->len);
	rg->len += more;
	return more;
}

static void range_free(struct range *rg)
{
	if (rg->xs)
		XXH3_freeState(rg->xs);
	free(rg->wbuf);
	free(rg->owned);
	free(rg);
}

static void range_done(void *arg, int err, const char *reason)
{
	struct range *rg = arg;
	struct job *j = rg->j;
	struct cache *c = j->c;

	range_answered(rg);
	if (!err)
		err = range_flush(rg);
	if (!err && rg->got != rg->len) {
		err = AF_ESIZE;
		reason = "source delivered fewer bytes than the range";
	}
	if (err && err != rg->own_err)
		err = source_err(err);
	pthread_mutex_lock(&c->lock);
	/* Chunks it owned and did not land are missing again. */
	for (uint64_t k = 0; k < rg->n; k++)
		if (rg->owned[k])
			j->cstate[rg->first + k] = CH_MISSING;
	if (err && !j->err) {
		j->err = err;
		snprintf(j->reason, sizeof(j->reason), "%s",
			 reason ? reason : af_strerror(err));
	}
	j->inflight--;
	c->inflight--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	range_free(rg);
}

/*
 * Submits chunks [first, first + n): those missing are marked in flight
 * and become the range's. Called and returns with c->lock held; drops it
 * around the submission.
 */
static int job_submit_locked(struct job *j, uint64_t first, uint64_t n)
{
	struct cache *c = j->c;
	struct range *rg;
	uint64_t last = first + n - 1;
	int rc;

	rg = calloc(1, sizeof(*rg));
	if (!rg)
		return -ENOMEM;
	rg->owned = calloc(j->nchunks - first, 1);
	rg->xs = XXH3_createState();
	if (!rg->owned || !rg->xs) {
		range_free(rg);
		return -ENOMEM;
	}
	XXH3_64bits_reset(rg->xs);
	rg->wbuf = malloc(WRITE_BATCH);	/* without it, writes go unbatched */
	rg->j = j;
	rg->first = first;
	rg->n = n;
	rg->off = first * j->chunk_size;
	rg->len = last * j->chunk_size + chunk_len(j, last) - rg->off;
	rg->cb.on_data = range_data;
	rg->cb.on_done = range_done;
	rg->cb.more = range_more;
	rg->cb.arg = rg;
	for (uint64_t k = 0; k < n; k++) {
		if (j->cstate[first + k] != CH_MISSING)
			continue;
		j->cstate[first + k] = CH_INFLIGHT;
		rg->owned[k] = 1;
	}
	if (!j->submitted) {
		j->submitted = true;
		j->probing = true;
	}
	j->inflight++;
	c->inflight++;
	pthread_mutex_unlock(&c->lock);
	rc = src_read_range(j->src, rg->off, rg->len, &rg->cb);
	pthread_mutex_lock(&c->lock);
	if (rc) {
		for (uint64_t k = 0; k < n; k++)
			if (rg->owned[k])
				j->cstate[first + k] = CH_MISSING;
		j->inflight--;
		c->inflight--;
		j->probing = false;
		pthread_cond_broadcast(&c->cond);
		range_free(rg);
	}
	return rc;
}

/* Waits up to ms on cond (c->lock held), unless closing. */
static void cache_wait_ms(struct cache *c, pthread_cond_t *cond, long ms)
{
	struct timespec ts = af_deadline(CLOCK_REALTIME, ms);

	if (!c->closing)
		pthread_cond_timedwait(cond, &c->lock, &ts);
}

static bool data_file_exists(struct cache *c, const char *key)
{
	char path[4096];

	if (!cache_data_path(c, key, path, sizeof(path)))
		return false;
	return access(path, F_OK) == 0;
}

/* Unlinks key's data file. Returns 0 (also when there is none) or -errno. */
static int unlink_data(struct cache *c, const char *key)
{
	char path[4096];
	int rc;

	if (!cache_data_path(c, key, path, sizeof(path)) ||
	    unlink(path) == 0 || errno == ENOENT)
		return 0;
	rc = -errno;
	af_warn("cache: %s: %s", path, strerror(errno));
	return rc;
}

static void rec_from_reg(struct idx_rec *rec, const struct pol_registration *r)
{
	memset(rec, 0, sizeof(*rec));
	rec->state = CACHE_PARTIAL;
	rec->size_known = r->has_size;
	rec->size = r->has_size ? r->size_bytes : 0;
	rec->last_access = time(NULL);
	snprintf(rec->project, sizeof(rec->project), "%s", r->project);
	snprintf(rec->name, sizeof(rec->name), "%s", r->name);
}

static void job_audit(struct job *j, const char *event, const char *reason,
		      bool has_bytes, uint64_t bytes, long long dur)
{
	cache_audit(j->c, event, j->r, NULL, NULL, NULL, reason, has_bytes,
		    bytes, dur);
}

/* Same holder, same heartbeat: nothing happened. */
static bool lease_same(const struct idx_lease *a, const struct idx_lease *b)
{
	return a->pid == b->pid && a->start == b->start &&
	       a->token == b->token && a->beat == b->beat;
}

/*
 * Takes the lease for the blob, waiting while another live process holds
 * it (DESIGN §6: one fetch per blob across processes), at most until the
 * holder has shown no sign of life for c->stuck_ms (then AF_ETIMEDOUT,
 * reported: a stopped prefetch must not hang every open). Returns 1 when
 * the blob turned out verified (nothing to do), 0 with the lease held and
 * j->gen set, AF_EBACKOFF when this registration backs off (another
 * process's fetch of it failed meanwhile), or another negative error.
 */
static int job_acquire(struct job *j)
{
	struct cache *c = j->c;
	struct idx_lease seen = { 0 };
	long long seen_ms = 0;
	bool logged = false, peek = false;
	int rc;

	for (;;) {
		struct idx_rec rec;
		struct idx_lease l;
		MDB_txn *txn = NULL;
		bool have_rec, bad_rec, had_lease;
		uint64_t gen;

		if (cache_stopping(c))
			return -ECANCELED;
		/*
		 * While another process holds the lease, poll with read txns
		 * (no writer lock); take the write txn only to take over.
		 */
		rc = idx_begin(&c->idx, !peek, &txn);
		if (rc)
			return rc;
		rc = idx_rec_get(&c->idx, txn, j->key, &rec, false);
		bad_rec = rc == -EBADMSG;	/* dropped below, fetched again */
		if (rc && rc != -ENOENT && !bad_rec)
			goto out_abort;
		have_rec = rc == 0;
		if (have_rec && rec.state == CACHE_VERIFIED &&
		    data_file_exists(c, j->key)) {
			idx_abort(txn);
			j->size = rec.size;	/* what waiters are checked against */
			return 1;
		}
		rc = idx_lease_get(&c->idx, txn, j->key, &l);
		if (rc && rc != -ENOENT && rc != -EBADMSG)
			goto out_abort;
		had_lease = rc == 0;	/* one that does not decode is overwritten */
		if (had_lease && l.token != c->me.token && idx_lease_alive(&l)) {
			long long now = af_now_ms();

			idx_abort(txn);
			if (!seen_ms || !lease_same(&seen, &l)) {
				seen = l;
				seen_ms = now;
			} else if (now - seen_ms >= c->stuck_ms) {
				snprintf(j->reason, sizeof(j->reason),
					 "blob held by pid %d with no heartbeat for %lld s (stuck holder: stopped or hung?)",
					 (int)l.pid, (now - seen_ms) / 1000);
				af_warn("cache: %s: %s", j->key, j->reason);
				job_audit(j, "fetch_failed", j->reason, false,
					  0, -1);
				j->audited = true;
				j->stuck = true;
				return AF_ETIMEDOUT;
			}
			if (!logged)
				af_info("cache: %s: fetched by pid %d, waiting",
					j->key, (int)l.pid);
			logged = peek = true;
			pthread_mutex_lock(&c->lock);
			cache_wait_ms(c, &c->cond, CACHE_LEASE_POLL_MS);
			pthread_mutex_unlock(&c->lock);
			continue;
		}
		if (peek) {
			/* Free or dead: look again, this time to take it. */
			idx_abort(txn);
			peek = false;
			continue;
		}
		rc = cache_backoff_check_txn(c, txn, j->r, j->reason,
					     sizeof(j->reason));
		if (rc)
			goto out_abort;
		if (had_lease && l.token != c->me.token)
			af_info("cache: %s: taking over the lease of dead pid %d",
				j->key, (int)l.pid);
		rc = idx_gen_next(&c->idx, txn, &gen);
		if (rc)
			goto out_abort;
		if (bad_rec)
			af_warn("cache: %s: its index record does not decode: "
				"dropped, fetched again", j->key);
		if (!have_rec || rec.state != CACHE_PARTIAL) {
			/* Nothing to resume: no chunk, no file (rule 5). */
			if (have_rec || bad_rec) {
				rc = idx_chunks_del(&c->idx, txn, j->key);
				if (rc)
					goto out_abort;
				(void)unlink_data(c, j->key);	/* prepare retries */
			}
			rec_from_reg(&rec, j->r);
		}
		rec.gen = gen;
		rec.json = j->r->json;
		rc = idx_rec_put(&c->idx, txn, j->key, &rec);
		rec.json = NULL;
		if (rc)
			goto out_abort;
		l = c->me;
		l.beat = af_wall_ms();
		rc = idx_lease_put(&c->idx, txn, j->key, &l);
		if (rc)
			goto out_abort;
		rc = idx_commit(txn);
		if (rc)
			return rc;
		pthread_mutex_lock(&c->lock);
		j->gen = gen;
		j->owned = true;
		j->beat_ms = af_now_ms();
		pthread_mutex_unlock(&c->lock);
		return 0;
out_abort:
		idx_abort(txn);
		return rc;
	}
}

/*
 * Rule 3: inside txn, the record is still the generation this job made
 * and the lease still ours. Returns 0 (rec filled when not NULL, json
 * when want_json) or -ESTALE with the reason.
 */
static int job_own_check(struct job *j, MDB_txn *txn, struct idx_rec *rec,
			 bool want_json)
{
	struct cache *c = j->c;
	struct idx_rec tmp;
	struct idx_lease l;
	const char *why = NULL;
	int rc;

	if (!rec)
		rec = &tmp;
	rc = idx_rec_get(&c->idx, txn, j->key, rec, rec == &tmp ? false :
			 want_json);
	if (rc == -ENOENT || rc == -EBADMSG)
		why = "record dropped";
	else if (rc)
		return rc;
	else if (rec->gen != j->gen)
		why = "record changed";
	if (!why) {
		rc = idx_lease_get(&c->idx, txn, j->key, &l);
		if (rc && rc != -ENOENT && rc != -EBADMSG) {
			idx_rec_release(rec);
			return rc;
		}
		if (rc || l.token != c->me.token || l.pid != c->me.pid)
			why = "lease lost";
	}
	if (!why)
		return 0;
	idx_rec_release(rec);
	pthread_mutex_lock(&c->lock);
	j->owned = false;
	snprintf(j->reason, sizeof(j->reason),
		 "lost ownership of the blob (%s by another process)", why);
	pthread_mutex_unlock(&c->lock);
	return -ESTALE;
}

static int load_chunk(void *arg, uint64_t i, uint64_t xxh)
{
	struct job *j = arg;

	if (i >= j->nchunks)
		return 0;
	j->cstate[i] = CH_PRESENT;
	j->cxxh[i] = xxh;
	return 0;
}

/*
 * Brings the record in line with the size learned from the source and
 * loads the chunks a previous run recorded (kept only when size and chunk
 * size still agree). *resume says whether the data file is kept; when it
 * is not, it is unlinked here (rule 5: a fresh file follows).
 */
static int job_prepare_index(struct job *j, bool *resume)
{
	struct cache *c = j->c;
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	bool keep;
	int rc;

	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = job_own_check(j, txn, &rec, false);
	if (rc)
		goto out_abort;
	keep = rec.state == CACHE_PARTIAL && rec.size_known &&
	       rec.size == j->size && rec.chunk_size >= 4096 &&
	       rec.chunk_size <= ((uint64_t)1 << 30);
	if (keep) {
		j->chunk_size = rec.chunk_size;
	} else {
		rc = idx_chunks_del(&c->idx, txn, j->key);
		if (rc == 0)
			rc = unlink_data(c, j->key);
		if (rc)
			goto out_abort;
		rec_from_reg(&rec, j->r);
		rec.gen = j->gen;
		j->chunk_size = c->default_chunk;
	}
	rec.state = CACHE_PARTIAL;
	rec.size_known = true;
	rec.size = j->size;
	rec.chunk_size = j->chunk_size;
	rec.last_err = 0;
	rec.verified_at = 0;
	rec.json = j->r->json;
	rc = idx_rec_put(&c->idx, txn, j->key, &rec);
	rec.json = NULL;
	if (rc)
		goto out_abort;
	j->nchunks = (j->size + j->chunk_size - 1) / j->chunk_size;
	j->cstate = calloc(j->nchunks ? j->nchunks : 1, 1);
	j->cxxh = calloc(j->nchunks ? j->nchunks : 1, sizeof(*j->cxxh));
	j->landed = calloc(j->nchunks ? j->nchunks : 1, sizeof(*j->landed));
	if (!j->cstate || !j->cxxh || !j->landed) {
		rc = -ENOMEM;
		goto out_abort;
	}
	if (keep) {
		rc = idx_chunks_each(&c->idx, txn, j->key, load_chunk, j);
		if (rc)
			goto out_abort;
	}
	*resume = keep;
	return idx_commit(txn);

out_abort:
	idx_abort(txn);
	return rc;
}

static int job_open_file(struct job *j, bool resume)
{
	char path[4096];
	struct stat st;
	int rc;

	if (!cache_data_path(j->c, j->key, path, sizeof(path)))
		return -ENAMETOOLONG;
	rc = cache_mkdirs_for(j->c, j->key);
	if (rc)
		return rc;
	/* Rule 5: a new file is ours alone (prepare unlinked any other). */
	j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (resume ? 0 : O_EXCL),
		     0640);
	if (j->fd < 0) {
		rc = -errno;
		af_err("cache: %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(j->fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != j->size &&
	    ftruncate(j->fd, (off_t)j->size) < 0) {
		rc = -errno;
		af_err("cache: %s: %s", path, strerror(errno));
		return rc;
	}
	return 0;
}

/*
 * Resume (issue 3 item 4): every chunk the index says is present is read
 * back and checked against its xxh3; a mismatch (torn write, bit rot, a
 * data file lost in a crash) drops the chunk so it is fetched again. The
 * same read feeds the digest while the chunks form a prefix, so a resumed
 * blob is read back once, not twice; a chunk that fails its xxh3 is taken
 * back out of the digest (the state before it is kept aside). All of it
 * outside any transaction (rule 7); the chunks dropped are deleted from
 * the index in one short one at the end.
 */
static int job_check_present(struct job *j, struct hash **hp,
			     unsigned char *buf)
{
	struct cache *c = j->c;
	uint64_t i, present = 0, dropped = 0, *bad = NULL;
	MDB_txn *txn = NULL;
	int rc = 0;

	for (i = 0; i < j->nchunks; i++) {
		struct hash *save = NULL, *h = NULL;
		uint64_t xxh = 0;

		if (j->cstate[i] != CH_PRESENT)
			continue;
		if (cache_stopping(c)) {
			rc = -ECANCELED;
			goto out_free;
		}
		if (i == j->hashed) {
			save = hash_dup(*hp);
			if (save)
				h = *hp;
		}
		test_step(j, "hash");
		af_hook("cache.resume.hash");
		assert(!idx_write_held(&c->idx));	/* rule 7 */
		rc = hash_fd_range(j->fd, i * j->chunk_size, chunk_len(j, i),
				   h, &xxh, buf);
		if (rc == 0 && xxh == j->cxxh[i]) {
			if (h)
				j->hashed++;
			hash_free(save);
			present++;
			continue;
		}
		if (h) {
			hash_free(*hp);
			*hp = save;
		} else {
			hash_free(save);
		}
		if (!bad) {
			bad = calloc(j->nchunks, sizeof(*bad));
			if (!bad) {
				rc = -ENOMEM;
				goto out_free;
			}
		}
		bad[dropped++] = i;
		j->cstate[i] = CH_MISSING;
	}
	rc = 0;
	if (dropped) {
		rc = idx_begin(&c->idx, true, &txn);
		if (rc)
			goto out_free;
		rc = job_own_check(j, txn, NULL, false);
		for (i = 0; rc == 0 && i < dropped; i++)
			rc = idx_chunk_del(&c->idx, txn, j->key, bad[i]);
		if (rc) {
			idx_abort(txn);
			goto out_free;
		}
		rc = idx_commit(txn);
		if (rc)
			goto out_free;
	}
	if (present || dropped)
		af_info("cache: %s: resuming with %" PRIu64 " of %" PRIu64
			" chunks present, %" PRIu64 " dropped (xxh3 mismatch)",
			j->key, present, j->nchunks, dropped);
	pthread_mutex_lock(&c->lock);
	j->npresent = present;
	j->have_bytes = 0;
	for (i = 0; i < j->nchunks; i++)
		if (j->cstate[i] == CH_PRESENT)
			j->have_bytes += chunk_len(j, i);
	pthread_mutex_unlock(&c->lock);

out_free:
	free(bad);
	return rc;
}

/*
 * Records landed chunks in one write txn, with the lease's heartbeat.
 * Called without c->lock.
 */
static int job_record(struct job *j, const uint64_t *idx, const uint64_t *xxh,
		      size_t n)
{
	struct cache *c = j->c;
	MDB_txn *txn = NULL;
	struct idx_lease l;
	size_t k;
	int rc;

	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = job_own_check(j, txn, NULL, false);
	for (k = 0; rc == 0 && k < n; k++)
		rc = idx_chunk_put(&c->idx, txn, j->key, idx[k], xxh[k]);
	if (rc == 0) {
		l = c->me;
		l.beat = af_wall_ms();
		rc = idx_lease_put(&c->idx, txn, j->key, &l);
	}
	if (rc) {
		idx_abort(txn);
		return rc;
	}
	rc = idx_commit(txn);
	af_hook("cache.chunk.recorded");
	if (rc == 0) {
		pthread_mutex_lock(&c->lock);
		j->beat_ms = af_now_ms();
		pthread_mutex_unlock(&c->lock);
	}
	return rc;
}

/* Numbers for cache_ensure_sync callers; c->lock held. */
static void job_progress_locked(struct job *j)
{
	struct cache_waiter *w;

	for (w = j->waiters; w; w = w->next) {
		if (!w->prog)
			continue;
		w->prog->done = j->have_bytes;
		w->prog->total = j->size;
	}
}

/*
 * Takes up to RECORD_BATCH landed chunks off the queue and records them.
 * Called and returns with c->lock held; drops it around the index write.
 */
static void job_flush_landed(struct job *j)
{
	struct cache *c = j->c;
	uint64_t idx[RECORD_BATCH], xxh[RECORD_BATCH];
	size_t n = 0, k;
	int rc;

	while (j->nlanded && n < RECORD_BATCH) {
		uint64_t i = j->landed[--j->nlanded];

		idx[n] = i;
		xxh[n] = j->cxxh[i];
		n++;
	}
	pthread_mutex_unlock(&c->lock);
	rc = job_record(j, idx, xxh, n);
	pthread_mutex_lock(&c->lock);
	if (rc) {
		if (!j->err) {
			j->err = rc;
			if (rc != -ESTALE)
				snprintf(j->reason, sizeof(j->reason),
					 "cache index: %s", af_strerror(rc));
		}
		return;
	}
	/*
	 * Start writeback of what is recorded now, so that the fdatasync
	 * before "verified" finds little left to write (issue 3: the disk
	 * works during the download, not after it). Advisory: errors surface
	 * at that fdatasync.
	 */
	for (k = 0; k < n; k++)
		sync_file_range(j->fd, (off64_t)(idx[k] * j->chunk_size),
				(off64_t)chunk_len(j, idx[k]),
				SYNC_FILE_RANGE_WRITE);
	for (k = 0; k < n; k++)
		j->cstate[idx[k]] = CH_PRESENT;
	j->npresent += n;
	job_progress_locked(j);
}

struct hasher {
	struct job *j;
	struct hash *h;
	unsigned char *buf;
	uint64_t cpu_ns;		/* the thread's CPU; read after the join */
	uint64_t bytes;			/* bytes it hashed; likewise */
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The verification thread of a job (issue 3: overlapped with the
 * download): feeds the digest, in offset order, with each chunk as soon as
 * it and every chunk before it have landed, reading the just-written bytes
 * back from the page cache in bounded pieces. Stops at the end, on the
 * job's first error, or when told to.
 *
 * Many jobs hash at once, one thread each, on at most c->hash_slots CPUs
 * (issue 16: a sharded checkpoint's blobs are opened together, and one
 * core cannot hash what the network brings): a chunk is hashed holding a
 * slot, and a hasher without one waits, with its landed chunks, for the
 * next free slot.
 */
static void *hasher_main(void *arg)
{
	struct hasher *hs = arg;
	struct job *j = hs->j;
	struct cache *c = j->c;
	uint64_t t0 = thread_cpu_ns();

	pthread_setname_np(pthread_self(), "af-hash");
	pthread_mutex_lock(&c->lock);
	while (!c->closing && !j->err && !j->hash_stop &&
	       j->hashed < j->nchunks) {
		uint64_t i = j->hashed;
		int rc;

		if (j->cstate[i] < CH_LANDED || c->hashing >= c->hash_slots) {
			pthread_cond_wait(&c->cond, &c->lock);
			continue;
		}
		c->hashing++;
		if (c->hashing > c->hashing_peak)
			__atomic_store_n(&c->hashing_peak, c->hashing,
					 __ATOMIC_RELAXED);
		pthread_mutex_unlock(&c->lock);
		af_hook("cache.hash.chunk");
		assert(!idx_write_held(&c->idx));	/* rule 7 */
		test_step(j, "hash_chunk");
		rc = hash_fd_range(j->fd, i * j->chunk_size, chunk_len(j, i),
				   hs->h, NULL, hs->buf);
		pthread_mutex_lock(&c->lock);
		c->hashing--;
		pthread_cond_broadcast(&c->cond);	/* a slot is free */
		if (rc) {
			if (!j->err) {
				j->err = rc;
				snprintf(j->reason, sizeof(j->reason),
					 "reading back the data file: %s",
					 af_strerror(rc));
			}
			break;
		}
		j->hashed++;
		hs->bytes += chunk_len(j, i);
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	hs->cpu_ns = thread_cpu_ns() - t0;
	__atomic_add_fetch(&c->ctr_hash_cpu_ns, hs->cpu_ns, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->ctr_hashed_bytes, hs->bytes, __ATOMIC_RELAXED);
	return NULL;
}

/* First and last missing chunk at or after from; false when none. */
static bool missing_span(const struct job *j, uint64_t from, uint64_t *first,
			 uint64_t *last)
{
	bool any = false;

	for (uint64_t i = from; i < j->nchunks; i++) {
		if (j->cstate[i] != CH_MISSING)
			continue;
		if (!any)
			*first = i;
		*last = i;
		any = true;
	}
	return any;
}

/*
 * The transfer loop: submit missing chunks while slots are free and record
 * landed ones, while the hasher thread feeds the digest with the
 * contiguous prefix. The first range goes out alone; once it is answered,
 * a source that honours Range gets up to the fair share of parallel
 * one-chunk ranges, one that ignores it a single sequential range over
 * what is missing. Returns 0 when every chunk is present and hashed, or
 * the first error.
 */
static int job_transfer(struct job *j, struct hash *h, unsigned char *buf)
{
	struct cache *c = j->c;
	struct hasher hs = { .j = j, .h = h, .buf = buf };
	pthread_t hasher;
	int rc = 0;

	rc = pthread_create(&hasher, NULL, hasher_main, &hs);
	if (rc)
		return -rc;
	pthread_mutex_lock(&c->lock);
	c->active++;
	job_progress_locked(j);
	for (;;) {
		unsigned limit;
		uint64_t first = 0, last = 0;

		if (c->closing) {
			rc = -ECANCELED;
			break;
		}
		if (j->err) {
			rc = j->err;
			break;
		}
		if (j->nlanded) {
			job_flush_landed(j);
			continue;
		}
		while (j->next_submit < j->nchunks &&
		       j->cstate[j->next_submit] != CH_MISSING)
			j->next_submit++;
		/* Fair share: each active job gets cap / active slots. */
		limit = c->cap / (c->active ? c->active : 1);
		if (limit < 1)
			limit = 1;
		if (j->probing || c->inflight >= c->cap || c->draining) {
			/* wait below */
		} else if (j->submitted && src_range_ignored(j->src)) {
			/* Sequential: one range over what is missing, once. */
			if (!j->inflight && missing_span(j, 0, &first, &last)) {
				rc = job_submit_locked(j, first,
						       last - first + 1);
				if (rc)
					goto out_submit_failed;
				continue;
			}
		} else if (j->next_submit < j->nchunks &&
			   j->inflight < (j->submitted ? limit : 1)) {
			rc = job_submit_locked(j, j->next_submit++, 1);
			if (rc)
				goto out_submit_failed;
			continue;
		}
		if (j->hashed == j->nchunks && j->npresent == j->nchunks)
			break;
		pthread_cond_wait(&c->cond, &c->lock);
		continue;
out_submit_failed:
		if (!j->err) {
			j->err = rc;
			snprintf(j->reason, sizeof(j->reason), "%s",
				 af_strerror(rc));
		}
		rc = 0;
	}
	j->hash_stop = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(hasher, NULL);
	j->hash_cpu_ns += hs.cpu_ns;
	pthread_mutex_lock(&c->lock);
	c->active--;
	pthread_cond_broadcast(&c->cond);
	/*
	 * On success every range still in flight has delivered its last byte
	 * (each ends in a chunk of its own, now present): only its on_done is
	 * left, and the source stays open for the verdict on the bytes (a
	 * mirror's, DESIGN §11). After a failure, src_close cancels what is in
	 * flight, on_done included.
	 */
	if (j->inflight && rc) {
		pthread_mutex_unlock(&c->lock);
		src_close(j->src);
		j->src = NULL;
		pthread_mutex_lock(&c->lock);
	}
	while (j->inflight)
		pthread_cond_wait(&c->cond, &c->lock);
	/* Keep what landed, so a later run resumes from it. */
	while (j->nlanded && rc != AF_ESIZE && rc != -ESTALE) {
		int saved = j->err;

		job_flush_landed(j);
		if (j->err != saved)
			break;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/*
 * Quarantines the blob (DESIGN §6), starts this registration's backoff
 * and audits verify_failed. Returns err, or -ESTALE when the blob was no
 * longer ours to judge.
 */
static int job_quarantine(struct job *j, int err, const char *reason)
{
	struct cache *c = j->c;
	char why[480];
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	long long delay = 0;
	int rc;

	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		goto out_err;
	rc = job_own_check(j, txn, &rec, true);
	if (rc == 0)
		rc = cache_drop_txn(c, txn, j->key, &rec, CACHE_QUARANTINED,
				    err);
	if (rc == 0)
		rc = cache_backoff_note_txn(c, txn, j->r, err, reason, &delay);
	idx_rec_release(&rec);
	if (rc) {
		idx_abort(txn);
		goto out_err;
	}
	rc = idx_commit(txn);
	if (rc)
		goto out_err;
	pthread_mutex_lock(&c->lock);
	j->owned = false;
	pthread_mutex_unlock(&c->lock);
	snprintf(why, sizeof(why), "%s (backing off %lld s)", reason,
		 delay / 1000);
	cache_count_verify_failure(c);
	af_warn("cache: %s: quarantined: %s", j->key, why);
	job_audit(j, "verify_failed", why, false, 0, -1);
	j->audited = true;
	return err;

out_err:
	if (rc != -ESTALE)
		af_err("cache: %s: quarantine: %s", j->key, af_strerror(rc));
	return rc;
}

/*
 * DESIGN §11: the bytes failed verification and mirrors served some of
 * them. That is neither the blob's fault nor its source's: audit
 * fetch_failed naming the mirrors (redacted), keep them out for a while
 * (src_mirrors_blame: every source of this process skips them), and let
 * the caller fetch the blob again from its source alone, in this same
 * open. No quarantine, no failure backoff. Once per job. Returns true
 * when the caller should start over.
 */
static bool job_blame_mirrors(struct job *j, const char *what)
{
	char names[200], why[480];

	if (j->mirrors_blamed || j->src == NULL ||
	    src_mirrors_served(j->src, names, sizeof(names)) == 0)
		return false;
	j->mirrors_blamed = true;
	src_mirrors_blame(j->src);
	snprintf(why, sizeof(why),
		 "%.200s: bytes from mirror %.200s; fetching again from the source",
		 what, names);
	af_warn("cache: %s: %s", j->key, why);
	job_audit(j, "fetch_failed", why, false, 0, -1);
	return true;
}

/*
 * Before the fetch from the source alone: every chunk is dropped, from the
 * index (under the ownership check) and from the job; the lease and the
 * data file stay (each chunk will be written again before it counts).
 */
static int job_restart(struct job *j)
{
	struct cache *c = j->c;
	MDB_txn *txn = NULL;
	int rc;

	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = job_own_check(j, txn, NULL, false);
	if (rc == 0)
		rc = idx_chunks_del(&c->idx, txn, j->key);
	if (rc) {
		idx_abort(txn);
		return rc;
	}
	rc = idx_commit(txn);
	if (rc)
		return rc;
	if (j->fd >= 0) {
		close(j->fd);
		j->fd = -1;
	}
	pthread_mutex_lock(&c->lock);
	free(j->cstate);
	free(j->cxxh);
	free(j->landed);
	j->cstate = NULL;
	j->cxxh = NULL;
	j->landed = NULL;
	j->nlanded = 0;
	j->npresent = 0;
	j->have_bytes = 0;
	j->hashed = 0;
	j->hash_stop = false;
	j->probing = false;
	j->err = 0;
	j->reason[0] = '\0';
	pthread_mutex_unlock(&c->lock);
	j->next_submit = 0;
	j->submitted = false;
	return 0;
}

static int job_commit(struct job *j, struct hash *h, long long t0,
		      bool *again)
{
	struct cache *c = j->c;
	struct pol_digest got;
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	char reason[400];
	uint64_t fetched, gen;
	long long dur;
	int rc;

	af_hook("cache.hash.final");
	rc = hash_final(h, &got);
	if (rc)
		return rc;
	if (!pol_digest_equal(&got, &j->r->digest)) {
		snprintf(reason, sizeof(reason),
			 "digest mismatch: expected %s, got %s", j->key,
			 got.str);
		if (job_blame_mirrors(j, reason)) {
			*again = true;
			return 0;
		}
		return job_quarantine(j, AF_EDIGEST, reason);
	}
	/* Durable before it is declared verified. */
	if (fdatasync(j->fd) < 0) {
		rc = -errno;
		snprintf(j->reason, sizeof(j->reason), "fdatasync: %s",
			 strerror(errno));
		return rc;
	}
	test_step(j, "commit");
	af_hook("cache.commit");
	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = job_own_check(j, txn, &rec, false);
	if (rc)
		goto out_abort;
	rc = idx_gen_next(&c->idx, txn, &gen);
	if (rc)
		goto out_abort;
	rec.state = CACHE_VERIFIED;
	rec.gen = gen;
	rec.size_known = true;
	rec.size = j->size;
	rec.chunk_size = j->chunk_size;
	rec.verified_at = time(NULL);
	rec.last_access = rec.verified_at;
	rec.last_err = 0;
	rec.json = j->r->json;
	rc = idx_rec_put(&c->idx, txn, j->key, &rec);
	rec.json = NULL;
	if (rc)
		goto out_abort;
	rc = idx_lease_del(&c->idx, txn, j->key);
	if (rc)
		goto out_abort;
	/* Success ends this registration's backoff. */
	rc = idx_fail_del(&c->idx, txn, j->key, cache_reg_fp(j->r));
	if (rc)
		goto out_abort;
	rc = idx_commit(txn);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->lock);
	j->owned = false;
	fetched = j->fetched_bytes;
	pthread_mutex_unlock(&c->lock);
	dur = af_now_ms() - t0;
	job_audit(j, "verify_ok", NULL, true, j->size, -1);
	job_audit(j, "fetch_done", NULL, true, fetched, dur);
	af_info("cache: %s: verified (%" PRIu64 " bytes, %" PRIu64
		" fetched, %lld ms, hashing %" PRIu64 " ms CPU)", j->key,
		j->size, fetched, dur, j->hash_cpu_ns / 1000000);
	return 0;

out_abort:
	idx_abort(txn);
	return rc;
}

/*
 * One fetch of the blob from j->src: size, index, data file, transfer,
 * digest. *again: the bytes failed verification because of mirrors, and
 * the caller is to start over from the source alone.
 */
static int job_fetch_once(struct job *j, long long t0, bool *again)
{
	struct cache *c = j->c;
	unsigned char *buf = NULL;
	struct hash *h = NULL;
	char reason[300] = "";
	bool resume = false;
	int rc;

	rc = src_size(j->src, &j->size, reason, sizeof(reason));
	if (rc) {
		snprintf(j->reason, sizeof(j->reason), "size: %s",
			 reason[0] ? reason : af_strerror(rc));
		return source_err(rc);
	}
	/* DESIGN §2: another size than registered fails like a wrong digest. */
	if (j->r->has_size && j->size != j->r->size_bytes) {
		snprintf(reason, sizeof(reason),
			 "size mismatch: registered %" PRIu64 ", source %"
			 PRIu64, j->r->size_bytes, j->size);
		return job_quarantine(j, AF_ESIZE, reason);
	}
	rc = job_prepare_index(j, &resume);
	if (rc)
		goto out_reason;
	rc = job_open_file(j, resume);
	if (rc)
		goto out_reason;
	buf = malloc(HASH_PIECE);
	h = hash_new(j->r->digest.algo);
	if (!buf || !h) {
		rc = -ENOMEM;
		goto out_reason;
	}
	rc = job_check_present(j, &h, buf);
	if (rc)
		goto out_reason;
	/* Room first, so a max_size below the filesystem's never fills it. */
	if (c->cfg->cache_max_size && !cache_stopping(c)) {
		uint64_t have;

		pthread_mutex_lock(&c->lock);
		have = j->have_bytes;
		pthread_mutex_unlock(&c->lock);
		cache_lru_evict(c, j->key, j->size - have);
	}
	test_step(j, "transfer");
	job_audit(j, "fetch_start", NULL, true, j->size, -1);
	rc = job_transfer(j, h, buf);
	if (rc == AF_ESIZE) {
		snprintf(reason, sizeof(reason), "size mismatch: %.250s",
			 j->reason);
		rc = job_quarantine(j, AF_ESIZE, reason);
		goto out_free;
	}
	if (rc)
		goto out_free;
	rc = job_commit(j, h, t0, again);
	goto out_free;

out_reason:
	if (rc != -ESTALE)
		snprintf(j->reason, sizeof(j->reason), "%s", af_strerror(rc));
out_free:
	hash_free(h);
	free(buf);
	return rc;
}

/* Everything done with the lease held. */
static int job_fetch(struct job *j, long long t0)
{
	struct cache *c = j->c;
	bool again = false;
	int rc;

	rc = src_open(c->srcs, j->r, &j->src);
	if (rc) {
		snprintf(j->reason, sizeof(j->reason), "source: %s",
			 af_strerror(rc));
		return rc == -ENOMEM ? rc : AF_ESOURCE;
	}
	for (;;) {
		rc = job_fetch_once(j, t0, &again);
		if (rc || !again)
			return rc;
		/* DESIGN §11: once more, from the source alone. */
		again = false;
		rc = job_restart(j);
		if (rc) {
			if (rc != -ESTALE)
				snprintf(j->reason, sizeof(j->reason), "%s",
					 af_strerror(rc));
			return rc;
		}
	}
}

/*
 * The write txn of job_release: lease given up, a new generation (*gen),
 * with ENOSPC the chunks forgotten, with a source's fault the backoff
 * noted. Returns 0 when committed, -ESTALE when the blob is no longer
 * ours, or -errno.
 */
static int job_release_txn(struct job *j, int err, uint64_t *gen,
			   long long *delay_ms)
{
	struct cache *c = j->c;
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	int rc;

	*delay_ms = 0;
	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = job_own_check(j, txn, &rec, true);
	if (rc)
		goto out_abort;
	rc = idx_lease_del(&c->idx, txn, j->key);
	if (rc == 0)
		rc = idx_gen_next(&c->idx, txn, gen);
	if (rc == 0 && err == -ENOSPC)
		rc = idx_chunks_del(&c->idx, txn, j->key);
	if (rc == 0 && cache_err_backs_off(err))
		rc = cache_backoff_note_txn(c, txn, j->r, err, j->reason,
					    delay_ms);
	if (rc == 0) {
		rec.last_err = err;
		rec.gen = *gen;
		rc = idx_rec_put(&c->idx, txn, j->key, &rec);
	}
	idx_rec_release(&rec);
	if (rc)
		goto out_abort;
	rc = idx_commit(txn);
	if (rc == 0) {
		pthread_mutex_lock(&c->lock);
		j->owned = false;
		pthread_mutex_unlock(&c->lock);
	} else {
		*delay_ms = 0;
	}
	return rc;

out_abort:
	idx_abort(txn);
	*delay_ms = 0;
	return rc;
}

/*
 * Gives the lease up after a failure that leaves the blob partial: a
 * source's or the bytes' fault starts this registration's backoff; a full
 * cache filesystem drops what landed, so that smaller blobs still fit
 * (DESIGN §6). Nothing is touched when the blob is no longer ours.
 * *delay_ms gets the backoff started (0: none).
 *
 * ENOSPC: the chunks are forgotten first and the data file goes after, in
 * a write txn of its own that finds the record still at the generation
 * released (nobody took it since; rule 5), so a crash in between leaves a
 * file no chunk claims, never recorded chunks whose bytes are gone. When
 * the index itself cannot grow on the full filesystem, the file (ours
 * while our lease stands) goes first to make room, and the txn is tried
 * once more.
 */
static void job_release(struct job *j, int err, long long *delay_ms)
{
	struct cache *c = j->c;
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	uint64_t gen = 0;
	int rc;

	rc = job_release_txn(j, err, &gen, delay_ms);
	if ((rc == -ENOSPC || rc == -EIO) && err == -ENOSPC) {
		if (j->fd >= 0) {
			close(j->fd);	/* an open file keeps its space */
			j->fd = -1;
		}
		(void)unlink_data(c, j->key);
		rc = job_release_txn(j, err, &gen, delay_ms);
	}
	if (rc || err != -ENOSPC)
		return;
	if (idx_begin(&c->idx, true, &txn))
		return;
	if (idx_rec_get(&c->idx, txn, j->key, &rec, false) == 0 &&
	    rec.gen == gen)
		(void)unlink_data(c, j->key);
	idx_abort(txn);
}

static int job_run(struct job *j)
{
	long long t0 = af_now_ms(), delay = 0;
	char why[480];
	int rc;

	rc = job_acquire(j);
	if (rc == 1)
		return 0;
	if (rc)
		return rc;
	test_step(j, "acquired");
	rc = job_fetch(j, t0);
	cache_count_fetch(j->c, rc, af_now_ms() - t0);
	if (j->src) {
		src_close(j->src);
		j->src = NULL;
	}
	if (rc && !j->audited) {
		const char *reason = j->reason[0] ? j->reason : af_strerror(rc);

		job_release(j, rc, &delay);
		if (delay)
			snprintf(why, sizeof(why), "%s (backing off %lld s)",
				 reason, delay / 1000);
		else
			snprintf(why, sizeof(why), "%s", reason);
		if (rc == -ECANCELED)
			af_info("cache: %s: fetch cancelled", j->key);
		else
			af_warn("cache: %s: fetch failed: %s", j->key, why);
		job_audit(j, "fetch_failed", why, false, 0, af_now_ms() - t0);
	}
	return rc;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	pol_registration_free(j->r);
	free(j->cstate);
	free(j->cxxh);
	free(j->landed);
	free(j);
}

/*
 * Issue 10 item 7: a failure of this fetch says nothing of another
 * registration's source (or size): its waiter fetches again with its own.
 * A job that lost the blob to another process (-ESTALE) sends everyone
 * back to look again.
 */
static bool waiter_retries(const struct job *j, const struct cache_waiter *w,
			   int err)
{
	if (w->retries >= CACHE_WAITER_RETRIES || j->stuck)
		return false;
	if (err == -ESTALE)
		return true;
	/* The job's registration backs off; the waiter's may not. */
	if (err == AF_EBACKOFF)
		return cache_reg_fp(j->r) != cache_reg_fp(w->r);
	return cache_err_backs_off(err) && !cache_same_fetch(j->r, w->r);
}

/* What w is told when j ended with err (0: verified). */
static int waiter_verdict(struct job *j, struct cache_waiter *w, int err)
{
	char reason[300];

	if (err == 0 && w->r->has_size && w->r->size_bytes != j->size) {
		/* DESIGN §6: the blob stays verified for the others. */
		snprintf(reason, sizeof(reason),
			 "size mismatch: registered %" PRIu64
			 ", the verified blob has %" PRIu64 " bytes",
			 w->r->size_bytes, j->size);
		cache_audit(j->c, "verify_failed", w->r, NULL, NULL, NULL,
			    reason, false, 0, -1);
		return AF_ESIZE;
	}
	if (err && waiter_retries(j, w, err)) {
		w->retries++;
		return cache_start(j->c, w->r, w);
	}
	if (err == -ESTALE)
		return AF_ESOURCE;
	return err;
}

static void job_finish(struct job *j, int err)
{
	struct cache *c = j->c;
	struct cache_waiter *w, *next;
	struct job **pp;

	if (j->fd >= 0) {
		close(j->fd);
		j->fd = -1;
	}
	/*
	 * Back under max_size before anyone is told (so a prefetch that
	 * returns leaves the cache within its limit); never this blob.
	 */
	if (err == 0 && c->cfg->cache_max_size && !cache_stopping(c))
		cache_lru_evict(c, j->key, 0);
	pthread_mutex_lock(&c->lock);
	for (pp = &c->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	j->next = NULL;
	j->detached = true;
	j->owned = false;
	w = j->waiters;
	j->waiters = NULL;
	pthread_mutex_unlock(&c->lock);
	for (; w; w = next) {
		int werr;

		next = w->next;
		w->next = NULL;
		werr = waiter_verdict(j, w, err);
		if (werr == -EINPROGRESS)
			continue;	/* queued on a fetch of its own */
		w->done(w->arg, werr);
		cache_waiter_free(w);
	}
	/* Only now joinable by fetch_reap: nothing of ours runs after. */
	pthread_mutex_lock(&c->lock);
	j->next = c->finished;
	c->finished = j;
	c->threads--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void *job_main(void *arg)
{
	struct job *j = arg;

	job_finish(j, job_run(j));
	return NULL;
}

bool cache_job_running_locked(struct cache *c, const char *key)
{
	struct job *j;

	for (j = c->jobs; j; j = j->next)
		if (strcmp(j->key, key) == 0)
			return true;
	return false;
}

int fetch_start(struct cache *c, const struct pol_registration *r,
		struct cache_waiter *w)
{
	struct job *j, *nj;
	int rc;

	nj = calloc(1, sizeof(*nj));
	if (!nj)
		return -ENOMEM;
	nj->fd = -1;
	nj->c = c;
	snprintf(nj->key, sizeof(nj->key), "%s", r->digest.str);
	pthread_mutex_lock(&c->lock);
	if (c->closing) {
		rc = -ECANCELED;
		goto out_unlock;
	}
	for (j = c->jobs; j; j = j->next) {
		if (!j->detached && strcmp(j->key, nj->key) == 0) {
			if (w) {
				w->next = j->waiters;
				j->waiters = w;
				if (w->prog) {
					w->prog->done = j->have_bytes;
					w->prog->total = j->size;
				}
			}
			rc = -EINPROGRESS;
			goto out_unlock;
		}
	}
	nj->r = pol_registration_dup(r);
	if (!nj->r) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	nj->waiters = w;
	rc = pthread_create(&nj->thread, NULL, job_main, nj);
	if (rc) {
		rc = -rc;
		nj->waiters = NULL;
		goto out_unlock;
	}
	nj->next = c->jobs;
	c->jobs = nj;
	c->threads++;
	pthread_mutex_unlock(&c->lock);
	return -EINPROGRESS;

out_unlock:
	pthread_mutex_unlock(&c->lock);
	job_free(nj);
	return rc;
}

bool fetch_cancel(struct cache *c, struct cache_waiter *w)
{
	struct cache_waiter **pp;
	struct job *j;

	pthread_mutex_lock(&c->lock);
	for (j = c->jobs; j; j = j->next) {
		if (j->detached)
			continue;
		for (pp = &j->waiters; *pp; pp = &(*pp)->next) {
			if (*pp == w) {
				*pp = w->next;
				pthread_mutex_unlock(&c->lock);
				cache_waiter_free(w);
				return true;
			}
		}
	}
	pthread_mutex_unlock(&c->lock);
	return false;
}

void fetch_reap(struct cache *c)
{
	struct job *list, *j;

	pthread_mutex_lock(&c->lock);
	list = c->finished;
	c->finished = NULL;
	pthread_mutex_unlock(&c->lock);
	while ((j = list)) {
		list = j->next;
		pthread_join(j->thread, NULL);
		job_free(j);
	}
}

struct beat {
	char key[POL_DIGEST_STR_MAX];
	uint64_t gen;
};

/*
 * Writes the heartbeat of the leases our jobs hold (those job_record has
 * not refreshed lately), each only while it is still ours (rule 3).
 */
static void keeper_beat(struct cache *c, const struct beat *b, size_t n)
{
	MDB_txn *txn = NULL;
	int64_t now = af_wall_ms();

	if (idx_begin(&c->idx, true, &txn))
		return;
	for (size_t k = 0; k < n; k++) {
		struct idx_rec rec;
		struct idx_lease l;

		if (idx_rec_get(&c->idx, txn, b[k].key, &rec, false) ||
		    rec.gen != b[k].gen ||
		    idx_lease_get(&c->idx, txn, b[k].key, &l) ||
		    l.token != c->me.token || l.pid != c->me.pid)
			continue;
		l.beat = now;
		if (idx_lease_put(&c->idx, txn, b[k].key, &l)) {
			idx_abort(txn);
			return;
		}
	}
	idx_commit(txn);
}

static void *keeper_main(void *arg)
{
	struct cache *c = arg;
	struct beat b[BEAT_BATCH];

	pthread_mutex_lock(&c->lock);
	while (!c->closing) {
		long long now = af_now_ms();
		size_t n = 0;
		struct job *j;

		for (j = c->jobs; j && n < BEAT_BATCH; j = j->next) {
			if (!j->owned || now - j->beat_ms < c->beat_ms)
				continue;
			snprintf(b[n].key, sizeof(b[n].key), "%s", j->key);
			b[n].gen = j->gen;
			j->beat_ms = now;
			n++;
		}
		if (n) {
			pthread_mutex_unlock(&c->lock);
			keeper_beat(c, b, n);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		cache_wait_ms(c, &c->keeper_cond,
			      c->beat_ms > 1 ? (long)(c->beat_ms / 2) : 1);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int fetch_keeper_start(struct cache *c)
{
	int rc = pthread_create(&c->keeper, NULL, keeper_main, c);

	if (rc)
		return -rc;
	c->keeper_started = true;
	return 0;
}

void fetch_drain(struct cache *c, long max_ms)
{
	long long deadline = af_now_ms() + max_ms;

	pthread_mutex_lock(&c->lock);
	c->draining = true;
	pthread_cond_broadcast(&c->cond);
	while (c->inflight > 0 && af_now_ms() < deadline)
		cache_wait_ms(c, &c->cond, 100);
	pthread_mutex_unlock(&c->lock);
}

void fetch_shutdown(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	__atomic_store_n(&c->closing, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&c->cond);
	pthread_cond_broadcast(&c->keeper_cond);
	pthread_cond_broadcast(&c->size_cond);
	/* Jobs leave c->jobs before their done calls: wait for c->threads. */
	while (c->threads)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	fetch_reap(c);
	if (c->keeper_started) {
		pthread_join(c->keeper, NULL);
		c->keeper_started = false;
	}
}
