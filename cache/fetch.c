/*
 * fetch.c - fetch jobs (DESIGN §6, issue 3): one job per blob per process,
 * one lease per blob across processes, up to c->cap ranges in flight over
 * all jobs (shared fairly), chunks recorded only after their bytes were
 * written, and the full digest computed in offset order on the job thread
 * while later chunks are still arriving.
 *
 * Threads. Each job has one thread (job_main) that takes the lease, learns
 * the size, checks the chunks a previous run left, submits ranges, records
 * landed chunks in the index, feeds the digest with the contiguous prefix
 * of landed chunks (read back in HASH_PIECE pieces) and commits. The
 * source's callbacks (range_data, range_done) run on the source's engine
 * thread or inline in src_read_range; they write bytes, hash the chunk's
 * xxh3 and hand the chunk over under c->lock. Waiters' done callbacks run
 * on the job thread without any lock held.
 */
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

struct job {
	struct job *next;		/* c->jobs or c->finished; c->lock */
	struct cache *c;
	pthread_t thread;
	struct pol_registration *r;	/* owned; immutable */
	char key[POL_DIGEST_STR_MAX];	/* digest string */
	struct cache_waiter *waiters;	/* c->lock */
	bool detached;			/* waiters handed to done; c->lock */

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

	/* Job thread only. */
	uint64_t next_submit;
	bool audited;			/* the failure was already audited */
};

struct range {
	struct job *j;
	struct src_range_cb cb;
	uint64_t idx;
	uint64_t off;
	uint64_t len;
	uint64_t got;
	int own_err;			/* an error range_data raised itself */
	XXH3_state_t *xs;
	unsigned char *wbuf;		/* bytes not yet written, at off + got - wlen */
	size_t wlen;
};

/*
 * Bytes a range gathers before one pwrite: the source hands over what each
 * socket read returned (often 16 KiB), and one system call per piece cost
 * more than the copy itself (bench: 131k pwrites for 2 GiB). Bounded:
 * at most [fetch] connections ranges in flight hold one each.
 */
#define WRITE_BATCH	((size_t)512 << 10)

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* Writes what rg gathered. Returns 0 or -errno (recorded as ours). */
static int range_flush(struct range *rg)
{
	int rc;

	if (!rg->wlen)
		return 0;
	rc = pwrite_all(rg->j->fd, rg->wbuf, rg->wlen,
			rg->off + rg->got - rg->wlen);
	rg->wlen = 0;
	if (rc)
		rg->own_err = rc;	/* ENOSPC and friends are ours */
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

static int range_data(void *arg, uint64_t off, const void *buf, size_t len)
{
	struct range *rg = arg;
	int rc;

	if (cache_stopping(rg->j->c))
		return -ECANCELED;
	if (off != rg->off + rg->got || len > rg->len - rg->got)
		return AF_ESIZE;
	XXH3_64bits_update(rg->xs, buf, len);
	if (rg->wbuf && rg->wlen + len <= WRITE_BATCH) {
		memcpy(rg->wbuf + rg->wlen, buf, len);
		rg->wlen += len;
		rg->got += len;
		if (rg->wlen == WRITE_BATCH || rg->got == rg->len)
			return range_flush(rg);
		return 0;
	}
	rc = range_flush(rg);
	if (rc)
		return rc;
	if (rg->wbuf && len < WRITE_BATCH) {
		memcpy(rg->wbuf, buf, len);
		rg->wlen = len;
		rg->got += len;
		return rg->got == rg->len ? range_flush(rg) : 0;
	}
	rc = pwrite_all(rg->j->fd, buf, len, off);
	if (rc) {
		rg->own_err = rc;
		return rc;
	}
	rg->got += len;
	return 0;
}

static void range_done(void *arg, int err, const char *reason)
{
	struct range *rg = arg;
	struct job *j = rg->j;
	struct cache *c = j->c;
	uint64_t xxh = 0;

	if (!err)
		err = range_flush(rg);
	if (!err && rg->got != rg->len) {
		err = AF_ESIZE;
		reason = "source delivered fewer bytes than the range";
	}
	if (err && err != rg->own_err)
		err = source_err(err);
	if (!err)
		xxh = XXH3_64bits_digest(rg->xs);
	pthread_mutex_lock(&c->lock);
	if (!err) {
		j->cstate[rg->idx] = CH_LANDED;
		j->cxxh[rg->idx] = xxh;
		j->landed[j->nlanded++] = rg->idx;
		j->fetched_bytes += rg->len;
		j->have_bytes += rg->len;
	} else {
		j->cstate[rg->idx] = CH_MISSING;
		if (!j->err) {
			j->err = err;
			snprintf(j->reason, sizeof(j->reason), "%s",
				 reason ? reason : af_strerror(err));
		}
	}
	j->inflight--;
	c->inflight--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	XXH3_freeState(rg->xs);
	free(rg->wbuf);
	free(rg);
}

static int job_submit(struct job *j, uint64_t i)
{
	struct range *rg;
	int rc;

	rg = calloc(1, sizeof(*rg));
	if (!rg)
		return -ENOMEM;
	rg->xs = XXH3_createState();
	if (!rg->xs) {
		free(rg);
		return -ENOMEM;
	}
	XXH3_64bits_reset(rg->xs);
	rg->wbuf = malloc(WRITE_BATCH);	/* without it, writes go unbatched */
	rg->j = j;
	rg->idx = i;
	rg->off = i * j->chunk_size;
	rg->len = chunk_len(j, i);
	rg->cb.on_data = range_data;
	rg->cb.on_done = range_done;
	rg->cb.arg = rg;
	rc = src_read_range(j->src, rg->off, rg->len, &rg->cb);
	if (rc) {
		XXH3_freeState(rg->xs);
		free(rg->wbuf);
		free(rg);
	}
	return rc;
}

/* Waits up to ms on c->cond (c->lock held), unless closing. */
static void cache_wait_ms(struct cache *c, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (!c->closing)
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

static bool data_file_exists(struct cache *c, const char *key)
{
	char path[4096];

	if (!cache_data_path(c, key, path, sizeof(path)))
		return false;
	return access(path, F_OK) == 0;
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

/*
 * Takes the lease for the blob, waiting while another live process holds
 * it (DESIGN §6: one fetch per blob across processes). Returns 1 when the
 * blob turned out verified (nothing to do), 0 with the lease held, or a
 * negative error (the holder's failure, or -ECANCELED).
 */
static int job_acquire(struct job *j)
{
	struct cache *c = j->c;
	bool saw_other = false, logged = false, peek = false;
	int rc;

	for (;;) {
		struct idx_rec rec;
		struct idx_lease l;
		MDB_txn *txn = NULL;
		bool have_rec;

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
		if (rc && rc != -ENOENT)
			goto out_abort;
		have_rec = rc == 0;
		if (have_rec && rec.state == CACHE_VERIFIED &&
		    data_file_exists(c, j->key)) {
			idx_abort(txn);
			return 1;
		}
		rc = idx_lease_get(&c->idx, txn, j->key, &l);
		if (rc && rc != -ENOENT)
			goto out_abort;
		if (rc == 0 && l.token != c->me.token && idx_lease_alive(&l)) {
			idx_abort(txn);
			if (!logged)
				af_info("cache: %s: fetched by pid %d, waiting",
					j->key, (int)l.pid);
			logged = saw_other = peek = true;
			pthread_mutex_lock(&c->lock);
			cache_wait_ms(c, CACHE_LEASE_POLL_MS);
			pthread_mutex_unlock(&c->lock);
			continue;
		}
		if (peek) {
			/* Free or dead: look again, this time to take it. */
			idx_abort(txn);
			peek = false;
			continue;
		}
		if (rc == 0 && l.token != c->me.token)
			af_info("cache: %s: taking over the lease of dead pid %d",
				j->key, (int)l.pid);
		/* The holder we waited for failed verification: its verdict. */
		if (saw_other && have_rec && rec.state == CACHE_QUARANTINED) {
			idx_abort(txn);
			return rec.last_err ? rec.last_err : AF_EDIGEST;
		}
		if (!have_rec || rec.state != CACHE_PARTIAL) {
			if (have_rec) {
				rc = idx_chunks_del(&c->idx, txn, j->key);
				if (rc)
					goto out_abort;
			}
			rec_from_reg(&rec, j->r);
			rec.json = j->r->json;
			rc = idx_rec_put(&c->idx, txn, j->key, &rec);
			rec.json = NULL;
			if (rc)
				goto out_abort;
		}
		rc = idx_lease_put(&c->idx, txn, j->key, &c->me);
		if (rc)
			goto out_abort;
		return idx_commit(txn);
out_abort:
		idx_abort(txn);
		return rc;
	}
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
 * size still agree).
 */
static int job_prepare_index(struct job *j)
{
	struct cache *c = j->c;
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	bool keep;
	int rc;

	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = idx_rec_get(&c->idx, txn, j->key, &rec, false);
	if (rc && rc != -ENOENT)
		goto out_abort;
	keep = rc == 0 && rec.state == CACHE_PARTIAL && rec.size_known &&
	       rec.size == j->size && rec.chunk_size >= 4096 &&
	       rec.chunk_size <= ((uint64_t)1 << 30);
	if (keep) {
		j->chunk_size = rec.chunk_size;
	} else {
		rc = idx_chunks_del(&c->idx, txn, j->key);
		if (rc)
			goto out_abort;
		rec_from_reg(&rec, j->r);
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
	return idx_commit(txn);

out_abort:
	idx_abort(txn);
	return rc;
}

static int job_open_file(struct job *j)
{
	char path[4096];
	struct stat st;
	int rc;

	if (!cache_data_path(j->c, j->key, path, sizeof(path)))
		return -ENAMETOOLONG;
	rc = cache_mkdirs_for(j->c, j->key);
	if (rc)
		return rc;
	j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
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
 * back out of the digest (the state before it is kept aside).
 */
static int job_check_present(struct job *j, struct hash **hp,
			     unsigned char *buf)
{
	struct cache *c = j->c;
	uint64_t i, present = 0, dropped = 0;
	MDB_txn *txn = NULL;
	int rc;

	for (i = 0; i < j->nchunks; i++) {
		struct hash *save = NULL, *h = NULL;
		uint64_t xxh = 0;

		if (j->cstate[i] != CH_PRESENT)
			continue;
		if (cache_stopping(c)) {
			rc = -ECANCELED;
			goto out_abort;
		}
		if (i == j->hashed) {
			save = hash_dup(*hp);
			if (save)
				h = *hp;
		}
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
		if (!txn) {
			rc = idx_begin(&c->idx, true, &txn);
			if (rc)
				return rc;
		}
		rc = idx_chunk_del(&c->idx, txn, j->key, i);
		if (rc)
			goto out_abort;
		j->cstate[i] = CH_MISSING;
		dropped++;
	}
	if (txn) {
		rc = idx_commit(txn);
		if (rc)
			return rc;
	}
	if (present || dropped)
		af_info("cache: %s: resuming with %" PRIu64 " of %" PRIu64
			" chunks present, %" PRIu64 " dropped (xxh3 mismatch)",
			j->key, present, j->nchunks, dropped);
	j->npresent = present;
	j->have_bytes = 0;
	for (i = 0; i < j->nchunks; i++)
		if (j->cstate[i] == CH_PRESENT)
			j->have_bytes += chunk_len(j, i);
	return 0;

out_abort:
	idx_abort(txn);
	return rc;
}

/* Records landed chunks in one write txn. Called without c->lock. */
static int job_record(struct job *j, const uint64_t *idx, const uint64_t *xxh,
		      size_t n)
{
	struct cache *c = j->c;
	MDB_txn *txn = NULL;
	size_t k;
	int rc;

	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	for (k = 0; k < n; k++) {
		rc = idx_chunk_put(&c->idx, txn, j->key, idx[k], xxh[k]);
		if (rc) {
			idx_abort(txn);
			return rc;
		}
	}
	return idx_commit(txn);
}

static void job_progress_locked(struct job *j)
{
	struct cache_waiter *w;

	for (w = j->waiters; w; w = w->next)
		if (w->progress)
			w->progress(w->progress_arg, j->have_bytes, j->size);
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
};

/*
 * The verification thread of a job (issue 3: overlapped with the
 * download): feeds the digest, in offset order, with each chunk as soon as
 * it and every chunk before it have landed, reading the just-written bytes
 * back from the page cache in bounded pieces. Stops at the end, on the
 * job's first error, or when told to.
 */
static void *hasher_main(void *arg)
{
	struct hasher *hs = arg;
	struct job *j = hs->j;
	struct cache *c = j->c;

	pthread_mutex_lock(&c->lock);
	while (!c->closing && !j->err && !j->hash_stop &&
	       j->hashed < j->nchunks) {
		uint64_t i = j->hashed;
		int rc;

		if (j->cstate[i] < CH_LANDED) {
			pthread_cond_wait(&c->cond, &c->lock);
			continue;
		}
		pthread_mutex_unlock(&c->lock);
		rc = hash_fd_range(j->fd, i * j->chunk_size, chunk_len(j, i),
				   hs->h, NULL, hs->buf);
		pthread_mutex_lock(&c->lock);
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
		pthread_cond_broadcast(&c->cond);
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/*
 * The transfer loop: submit missing chunks while slots are free and record
 * landed ones, while the hasher thread feeds the digest with the
 * contiguous prefix. Returns 0 when every chunk is present and hashed, or
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
	for (;;) {
		unsigned limit;

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
		if (j->next_submit < j->nchunks && c->inflight < c->cap &&
		    j->inflight < limit) {
			uint64_t i = j->next_submit++;

			j->cstate[i] = CH_INFLIGHT;
			j->inflight++;
			c->inflight++;
			pthread_mutex_unlock(&c->lock);
			rc = job_submit(j, i);
			pthread_mutex_lock(&c->lock);
			if (rc) {
				j->cstate[i] = CH_MISSING;
				j->inflight--;
				c->inflight--;
				pthread_cond_broadcast(&c->cond);
				if (!j->err) {
					j->err = rc;
					snprintf(j->reason, sizeof(j->reason),
						 "%s", af_strerror(rc));
				}
				rc = 0;
			}
			continue;
		}
		if (j->hashed == j->nchunks && j->npresent == j->nchunks)
			break;
		pthread_cond_wait(&c->cond, &c->lock);
	}
	j->hash_stop = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(hasher, NULL);
	pthread_mutex_lock(&c->lock);
	c->active--;
	pthread_cond_broadcast(&c->cond);
	if (j->inflight) {
		/* src_close cancels what is in flight, on_done included. */
		pthread_mutex_unlock(&c->lock);
		src_close(j->src);
		j->src = NULL;
		pthread_mutex_lock(&c->lock);
	}
	while (j->inflight)
		pthread_cond_wait(&c->cond, &c->lock);
	/* Keep what landed, so a later run resumes from it. */
	while (j->nlanded && rc != AF_ESIZE) {
		int saved = j->err;

		job_flush_landed(j);
		if (j->err != saved)
			break;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static void job_audit(struct job *j, const char *event, const char *reason,
		      bool has_bytes, uint64_t bytes, long long dur)
{
	cache_audit(j->c, event, j->r, NULL, NULL, NULL, reason, has_bytes,
		    bytes, dur);
}

/* Quarantines the blob (DESIGN §6) and audits verify_failed. */
static int job_quarantine(struct job *j, int err, const char *reason)
{
	struct cache *c = j->c;
	MDB_txn *txn = NULL;
	int rc;

	rc = idx_begin(&c->idx, true, &txn);
	if (!rc) {
		rc = cache_quarantine_txn(c, txn, j->key, err);
		if (rc)
			idx_abort(txn);
		else
			rc = idx_commit(txn);
	}
	if (rc)
		af_err("cache: %s: quarantine: %s", j->key, af_strerror(rc));
	af_warn("cache: %s: quarantined: %s", j->key, reason);
	job_audit(j, "verify_failed", reason, false, 0, -1);
	j->audited = true;
	return err;
}

static int job_commit(struct job *j, struct hash *h, long long t0)
{
	struct cache *c = j->c;
	struct pol_digest got;
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	char reason[400];
	uint64_t fetched;
	long long dur;
	int rc;

	rc = hash_final(h, &got);
	if (rc)
		return rc;
	if (!pol_digest_equal(&got, &j->r->digest)) {
		snprintf(reason, sizeof(reason),
			 "digest mismatch: expected %s, got %s", j->key,
			 got.str);
		return job_quarantine(j, AF_EDIGEST, reason);
	}
	/* Durable before it is declared verified. */
	if (fdatasync(j->fd) < 0) {
		rc = -errno;
		snprintf(j->reason, sizeof(j->reason), "fdatasync: %s",
			 strerror(errno));
		return rc;
	}
	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = idx_rec_get(&c->idx, txn, j->key, &rec, false);
	if (rc == -ENOENT)
		rec_from_reg(&rec, j->r);
	else if (rc)
		goto out_abort;
	rec.state = CACHE_VERIFIED;
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
	rc = idx_commit(txn);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->lock);
	fetched = j->fetched_bytes;
	pthread_mutex_unlock(&c->lock);
	dur = af_now_ms() - t0;
	job_audit(j, "verify_ok", NULL, true, j->size, -1);
	job_audit(j, "fetch_done", NULL, true, fetched, dur);
	af_info("cache: %s: verified (%" PRIu64 " bytes, %" PRIu64
		" fetched, %lld ms)", j->key, j->size, fetched, dur);
	return 0;

out_abort:
	idx_abort(txn);
	return rc;
}

/* Everything done with the lease held. */
static int job_fetch(struct job *j, long long t0)
{
	struct cache *c = j->c;
	unsigned char *buf = NULL;
	struct hash *h = NULL;
	char reason[300] = "";
	int rc;

	rc = src_open(c->srcs, j->r, &j->src);
	if (rc) {
		snprintf(j->reason, sizeof(j->reason), "source: %s",
			 af_strerror(rc));
		return rc == -ENOMEM ? rc : AF_ESOURCE;
	}
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
	rc = job_prepare_index(j);
	if (rc)
		goto out_reason;
	rc = job_open_file(j);
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
	rc = job_commit(j, h, t0);
	goto out_free;

out_reason:
	snprintf(j->reason, sizeof(j->reason), "%s", af_strerror(rc));
out_free:
	hash_free(h);
	free(buf);
	return rc;
}

/* Drops the lease after a failure that leaves the blob partial. */
static void job_release(struct job *j, int err)
{
	struct cache *c = j->c;
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	struct idx_lease l;
	int rc;

	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return;
	if (idx_lease_get(&c->idx, txn, j->key, &l) == 0 &&
	    l.token == c->me.token && idx_lease_del(&c->idx, txn, j->key))
		goto out_abort;
	if (idx_rec_get(&c->idx, txn, j->key, &rec, true) == 0 &&
	    rec.state == CACHE_PARTIAL) {
		rec.last_err = err;
		rc = idx_rec_put(&c->idx, txn, j->key, &rec);
		idx_rec_release(&rec);
		if (rc)
			goto out_abort;
	}
	idx_commit(txn);
	return;

out_abort:
	idx_abort(txn);
}

static int job_run(struct job *j)
{
	long long t0 = af_now_ms();
	int rc;

	rc = job_acquire(j);
	if (rc == 1)
		return 0;
	if (rc)
		return rc;
	rc = job_fetch(j, t0);
	if (j->src) {
		src_close(j->src);
		j->src = NULL;
	}
	if (rc && !j->audited) {
		const char *reason = j->reason[0] ? j->reason : af_strerror(rc);

		job_release(j, rc);
		if (rc == -ECANCELED)
			af_info("cache: %s: fetch cancelled", j->key);
		else
			af_warn("cache: %s: fetch failed: %s", j->key, reason);
		job_audit(j, "fetch_failed", reason, false, 0,
			  af_now_ms() - t0);
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
		cache_lru_evict(c, j->key);
	pthread_mutex_lock(&c->lock);
	for (pp = &c->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	j->next = NULL;
	j->detached = true;
	w = j->waiters;
	j->waiters = NULL;
	pthread_mutex_unlock(&c->lock);
	for (; w; w = next) {
		next = w->next;
		w->done(w->arg, err);
		free(w);
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
				free(w);
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

void fetch_shutdown(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	__atomic_store_n(&c->closing, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&c->cond);
	/* Jobs leave c->jobs before their done calls: wait for c->threads. */
	while (c->threads)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	fetch_reap(c);
}
