/*
 * cache.c - open/close and the public queries of the cache (cache.h):
 * stat, listing, opening verified blobs, eviction (explicit and LRU),
 * re-verification, gc, the failure backoff and the drop generation.
 * Fetching lives in fetch.c, sizes learned off the caller's thread in
 * size.c. Every change here follows the ownership rules of cache_int.h.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "../policy/audit.h"
#include "../policy/config.h"
#include "cache_int.h"
#include "hash_int.h"

const char *cache_state_name(enum cache_state s)
{
	switch (s) {
	case CACHE_NONE:
		return "none";
	case CACHE_PARTIAL:
		return "partial";
	case CACHE_VERIFIED:
		return "verified";
	case CACHE_QUARANTINED:
		return "quarantined";
	default:
		return "unknown";
	}
}

/* <dir>/blobs/<algo>/<hex[0:2]>/<hex> for the digest string key. */
char *cache_data_path(const struct cache *c, const char *key, char *buf,
		      size_t len)
{
	const char *colon = strchr(key, ':');
	int n;

	if (!colon || strlen(colon + 1) < 2)
		return NULL;
	n = snprintf(buf, len, "%s/blobs/%.*s/%.2s/%s", c->dir,
		     (int)(colon - key), key, colon + 1, colon + 1);
	if (n < 0 || (size_t)n >= len)
		return NULL;
	return buf;
}

char *cache_blob_path(struct cache *c, const struct pol_digest *d, char *buf,
		      size_t len)
{
	return cache_data_path(c, d->str, buf, len);
}

static int mkdir_one(const char *path)
{
	if (mkdir(path, 0750) < 0 && errno != EEXIST) {
		int rc = -errno;

		af_err("cache: %s: %s", path, strerror(errno));
		return rc;
	}
	return 0;
}

int cache_mkdirs_for(const struct cache *c, const char *key)
{
	char path[4096];
	char *slash;
	size_t base = strlen(c->dir) + strlen("/blobs");
	int rc;

	if (!cache_data_path(c, key, path, sizeof(path)))
		return -ENAMETOOLONG;
	/* Create each folder below <dir>/blobs: algo, then hex[0:2]. */
	for (slash = strchr(path + base + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		rc = mkdir_one(path);
		*slash = '/';
		if (rc)
			return rc;
	}
	return 0;
}

static int mkdir_p(const char *dir)
{
	char path[4096];
	char *p;
	int n, rc;

	n = snprintf(path, sizeof(path), "%s", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	for (p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		rc = mkdir_one(path);
		*p = '/';
		if (rc)
			return rc;
	}
	return mkdir_one(path);
}

void cache_audit(struct cache *c, const char *event,
		 const struct pol_registration *r, const char *project,
		 const char *name, const char *digest, const char *reason,
		 bool has_bytes, uint64_t bytes, long long duration_ms)
{
	struct audit_event ev;

	if (!c->audit)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.event = event;
	if (r) {
		ev.project = r->project;
		ev.name = r->name;
		ev.digest = r->digest.str;
		ev.source_type = pol_source_type_name(r->source_type);
		ev.uri = r->uri;	/* audit_emit redacts */
	} else {
		ev.project = project && project[0] ? project : NULL;
		ev.name = name && name[0] ? name : NULL;
		ev.digest = digest;
	}
	ev.reason = reason;
	ev.has_bytes = has_bytes;
	ev.bytes = bytes;
	ev.has_duration = duration_ms >= 0;
	ev.duration_ms = duration_ms >= 0 ? (uint64_t)duration_ms : 0;
	audit_emit(c->audit, &ev);
}

/* The registration snapshot of a record, or NULL. Caller frees. */
static struct pol_registration *rec_registration(const struct idx_rec *rec)
{
	struct pol_registration *r = NULL;

	if (!rec->json)
		return NULL;
	if (pol_registration_parse(rec->json, strlen(rec->json), "cache",
				   &r, NULL, 0))
		return NULL;
	return r;
}

static uint64_t random_token(void)
{
	uint64_t t = 0;

	if (getrandom(&t, sizeof(t), 0) != (ssize_t)sizeof(t))
		t = (uint64_t)af_wall_ms() ^ ((uint64_t)getpid() << 32);
	return t ? t : 1;
}

int cache_open(const struct pol_config *cfg, struct src_ctx *srcs,
	       struct audit *audit, struct cache **out)
{
	char path[4096];
	struct cache *c;
	int n, rc;

	*out = NULL;
	if (!cfg || !cfg->cache_dir || !cfg->cache_dir[0])
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = cfg;
	c->srcs = srcs;
	c->audit = audit;
	c->dir = strdup(cfg->cache_dir);
	if (!c->dir) {
		rc = -ENOMEM;
		goto out_free;
	}
	c->default_chunk = cfg->chunk_size ? cfg->chunk_size :
			   CACHE_DEFAULT_CHUNK;
	c->cap = cfg->fetch_connections ? cfg->fetch_connections : 8;
	c->hash_slots = cache_cpus();
	c->backoff_ms = (long long)cfg->failure_backoff_ms;
	c->backoff_max_ms = CACHE_BACKOFF_MAX_MS;
	if (c->backoff_max_ms < c->backoff_ms)
		c->backoff_max_ms = c->backoff_ms;
	c->stuck_ms = CACHE_STUCK_MS;
	c->beat_ms = CACHE_BEAT_MS;
	c->me.pid = (int32_t)getpid();
	c->me.start = idx_proc_start(getpid());
	c->me.token = random_token();
	rc = mkdir_p(c->dir);
	if (rc)
		goto out_free;
	n = snprintf(path, sizeof(path), "%s/blobs", c->dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		rc = -ENAMETOOLONG;
		goto out_free;
	}
	rc = mkdir_one(path);
	if (rc)
		goto out_free;
	n = snprintf(path, sizeof(path), "%s/index", c->dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		rc = -ENAMETOOLONG;
		goto out_free;
	}
	rc = idx_open(&c->idx, path);
	if (rc)
		goto out_free;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_cond_init(&c->keeper_cond, NULL);
	pthread_cond_init(&c->size_cond, NULL);
	if (srcs) {
		rc = fetch_keeper_start(c);
		if (rc) {
			cache_close(c);
			return rc;
		}
	}
	*out = c;
	return 0;

out_free:
	free(c->dir);
	free(c);
	return rc;
}

void cache_drain(struct cache *c, long max_ms)
{
	if (c)
		fetch_drain(c, max_ms);
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	fetch_shutdown(c);
	size_shutdown(c);
	idx_close(&c->idx);
	pthread_cond_destroy(&c->size_cond);
	pthread_cond_destroy(&c->keeper_cond);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

void cache_on_drop(struct cache *c,
		   void (*fn)(void *arg, const struct pol_digest *d),
		   void *arg)
{
	c->on_drop = fn;
	c->on_drop_arg = arg;
}

void cache_notify_drop(struct cache *c, const char *key)
{
	struct pol_digest d;

	if (!c->on_drop || pol_digest_parse(key, &d, NULL, 0))
		return;
	c->on_drop(c->on_drop_arg, &d);
}

static bool data_exists(struct cache *c, const char *key)
{
	char path[4096];

	return cache_data_path(c, key, path, sizeof(path)) &&
	       access(path, F_OK) == 0;
}

/* Reads the record of key in a short read txn. */
static int rec_read(struct cache *c, const char *key, struct idx_rec *rec,
		    bool want_json)
{
	MDB_txn *txn = NULL;
	int rc;

	rc = idx_begin(&c->idx, false, &txn);
	if (rc)
		return rc;
	rc = idx_rec_get(&c->idx, txn, key, rec, want_json);
	idx_abort(txn);
	return rc;
}

/*
 * Fingerprint of a registration for its backoff (DESIGN §6: a changed
 * registration clears it): the record's canonical JSON, sorted keys.
 */
uint64_t cache_reg_fp(const struct pol_registration *r)
{
	XXH3_state_t *xs;
	uint64_t fp;

	if (r->json)
		return XXH3_64bits(r->json, strlen(r->json));
	/* No snapshot (a hand-made registration): what the fetch depends on. */
	xs = XXH3_createState();
	if (!xs)
		return 0;
	XXH3_64bits_reset(xs);
	XXH3_64bits_update(xs, r->digest.str, strlen(r->digest.str));
	XXH3_64bits_update(xs, &r->source_type, sizeof(r->source_type));
	if (r->uri)
		XXH3_64bits_update(xs, r->uri, strlen(r->uri) + 1);
	if (r->source_ref)
		XXH3_64bits_update(xs, r->source_ref, strlen(r->source_ref) + 1);
	if (r->has_size)
		XXH3_64bits_update(xs, &r->size_bytes, sizeof(r->size_bytes));
	fp = XXH3_64bits_digest(xs);
	XXH3_freeState(xs);
	return fp;
}

bool cache_err_backs_off(int err)
{
	switch (err) {
	case AF_EDIGEST:
	case AF_ESIZE:
	case AF_ESOURCE:
	case AF_ETIMEDOUT:
		return true;
	default:
		return false;	/* local trouble (ENOSPC, ...) is not the source's */
	}
}

static bool str_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool cache_same_fetch(const struct pol_registration *a,
		      const struct pol_registration *b)
{
	return a->source_type == b->source_type && str_same(a->uri, b->uri) &&
	       str_same(a->source_ref, b->source_ref) &&
	       a->has_size == b->has_size &&
	       (!a->has_size || a->size_bytes == b->size_bytes);
}

int cache_backoff_note_txn(struct cache *c, MDB_txn *txn,
			   const struct pol_registration *r, int err,
			   const char *reason, long long *delay_ms)
{
	uint64_t fp = cache_reg_fp(r);
	struct idx_fail f;
	long long delay;
	int rc;

	if (delay_ms)
		*delay_ms = 0;
	if (c->backoff_ms <= 0)
		return 0;	/* failure_backoff = 0: off */
	rc = idx_fail_get(&c->idx, txn, r->digest.str, fp, &f);
	if (rc == -ENOENT || rc == -EBADMSG) {
		memset(&f, 0, sizeof(f));
	} else if (rc) {
		return rc;
	}
	if (f.count < 64)
		f.count++;
	delay = c->backoff_ms;
	for (uint32_t i = 1; i < f.count && delay < c->backoff_max_ms; i++)
		delay *= 2;
	if (delay > c->backoff_max_ms)
		delay = c->backoff_max_ms;
	f.err = err;
	f.until_ms = af_wall_ms() + delay;
	snprintf(f.reason, sizeof(f.reason), "%s",
		 reason && reason[0] ? reason : af_strerror(err));
	rc = idx_fail_put(&c->idx, txn, r->digest.str, fp, &f);
	if (rc == 0 && delay_ms)
		*delay_ms = delay;
	return rc;
}

int cache_backoff_check_txn(struct cache *c, MDB_txn *txn,
			    const struct pol_registration *r, char *reason,
			    size_t reasonlen)
{
	struct idx_fail f;
	long long left;
	int rc;

	rc = idx_fail_get(&c->idx, txn, r->digest.str, cache_reg_fp(r), &f);
	if (rc == -ENOENT || rc == -EBADMSG)
		return 0;	/* one that does not decode is overwritten */
	if (rc)
		return rc;
	left = f.until_ms - af_wall_ms();
	if (left <= 0)
		return 0;
	if (reason && reasonlen)
		snprintf(reason, reasonlen,
			 "backing off for %lld s after %u failed fetch%s: %s",
			 (left + 999) / 1000, f.count, f.count == 1 ? "" : "es",
			 f.reason);
	return AF_EBACKOFF;
}

/*
 * What r may expect of its blob now, in one read txn: 0 verified and
 * servable for r; AF_ESIZE verified with another size (audited, DESIGN
 * §6: the blob stays verified for the others); AF_EBACKOFF; 1 a fetch is
 * needed; or -errno.
 */
static int ensure_check(struct cache *c, const struct pol_registration *r)
{
	char reason[300];
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	int rc;

	rc = idx_begin(&c->idx, false, &txn);
	if (rc)
		return rc;
	rc = idx_rec_get(&c->idx, txn, r->digest.str, &rec, false);
	if (rc && rc != -ENOENT && rc != -EBADMSG)
		goto out_abort;		/* -EBADMSG: the fetch drops it */
	if (rc == 0 && rec.state == CACHE_VERIFIED &&
	    data_exists(c, r->digest.str)) {
		idx_abort(txn);
		if (r->has_size && r->size_bytes != rec.size) {
			snprintf(reason, sizeof(reason),
				 "size mismatch: registered %" PRIu64
				 ", the verified blob has %" PRIu64 " bytes",
				 r->size_bytes, rec.size);
			cache_audit(c, "verify_failed", r, NULL, NULL, NULL,
				    reason, false, 0, -1);
			return AF_ESIZE;
		}
		return 0;
	}
	rc = cache_backoff_check_txn(c, txn, r, NULL, 0);
	if (rc == 0)
		rc = 1;

out_abort:
	idx_abort(txn);
	return rc;
}

void cache_waiter_free(struct cache_waiter *w)
{
	if (!w)
		return;
	pol_registration_free(w->r);
	free(w);
}

int cache_start(struct cache *c, const struct pol_registration *r,
		struct cache_waiter *w)
{
	int rc;

	rc = ensure_check(c, w ? w->r : r);
	if (rc != 1)
		return rc;
	if (!c->srcs)
		return -ENOTSUP;
	return fetch_start(c, w ? w->r : r, w);
}

static int ensure_common(struct cache *c, const struct pol_registration *r,
			 cache_done_fn done, void *arg,
			 struct cache_progress *prog,
			 struct cache_waiter **waiter)
{
	struct cache_waiter *w;
	int rc;

	if (waiter)
		*waiter = NULL;
	if (!c || !r)
		return -EINVAL;
	fetch_reap(c);
	if (!done)
		return cache_start(c, r, NULL);	/* background only */
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->r = pol_registration_dup(r);
	if (!w->r) {
		free(w);
		return -ENOMEM;
	}
	w->done = done;
	w->arg = arg;
	w->prog = prog;
	rc = cache_start(c, r, w);
	if (rc != -EINPROGRESS) {
		cache_waiter_free(w);
		return rc;
	}
	if (waiter)
		*waiter = w;
	return rc;
}

int cache_ensure(struct cache *c, const struct pol_registration *r,
		 cache_done_fn done, void *arg, struct cache_waiter **waiter)
{
	return ensure_common(c, r, done, arg, NULL, waiter);
}

bool cache_cancel(struct cache *c, struct cache_waiter *w)
{
	if (!c || !w)
		return false;
	return fetch_cancel(c, w);
}

struct sync_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;		/* lock */
	int err;		/* lock */
	struct cache_progress prog;	/* the cache's c->lock */
};

static void sync_done(void *arg, int err)
{
	struct sync_wait *s = arg;

	pthread_mutex_lock(&s->lock);
	s->done = true;
	s->err = err;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Progress shown on the caller's thread, never under a cache lock. */
static void sync_progress(struct cache *c, struct sync_wait *s,
			  void (*progress)(void *, uint64_t, uint64_t),
			  void *arg, struct cache_progress *shown)
{
	struct cache_progress now;

	pthread_mutex_lock(&c->lock);
	now = s->prog;
	pthread_mutex_unlock(&c->lock);
	if (now.done == shown->done && now.total == shown->total)
		return;
	*shown = now;
	progress(arg, now.done, now.total);
}

int cache_ensure_sync(struct cache *c, const struct pol_registration *r,
		      void (*progress)(void *arg, uint64_t done, uint64_t total),
		      void *arg)
{
	struct sync_wait s = { .done = false };
	struct cache_progress shown = { 0 };
	int rc;

	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	rc = ensure_common(c, r, sync_done, &s, progress ? &s.prog : NULL,
			   NULL);
	if (rc == -EINPROGRESS) {
		pthread_mutex_lock(&s.lock);
		while (!s.done) {
			struct timespec ts = af_deadline(CLOCK_REALTIME, 200);

			pthread_cond_timedwait(&s.cond, &s.lock, &ts);
			if (s.done || !progress)
				continue;
			pthread_mutex_unlock(&s.lock);
			sync_progress(c, &s, progress, arg, &shown);
			pthread_mutex_lock(&s.lock);
		}
		rc = s.err;
		pthread_mutex_unlock(&s.lock);
		/* The waiter is gone: no job writes s.prog any more. */
		if (progress && rc == 0 && s.prog.total)
			sync_progress(c, &s, progress, arg, &shown);
	}
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	return rc;
}

/* Updates last_access, at most once a minute per blob (one write txn). */
static void touch_access(struct cache *c, const char *key)
{
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	long long now = time(NULL);

	if (idx_begin(&c->idx, true, &txn))
		return;
	if (idx_rec_get(&c->idx, txn, key, &rec, true) == 0 &&
	    rec.state == CACHE_VERIFIED &&
	    now - rec.last_access >= CACHE_ACCESS_GRANULARITY_S) {
		rec.last_access = now;
		if (idx_rec_put(&c->idx, txn, key, &rec) == 0) {
			idx_rec_release(&rec);
			idx_commit(txn);
			return;
		}
	}
	idx_rec_release(&rec);
	idx_abort(txn);
}

int cache_note_size(struct cache *c, const struct pol_registration *r,
		    uint64_t size)
{
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	int rc;

	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = idx_rec_get(&c->idx, txn, r->digest.str, &rec, false);
	if (rc != -ENOENT) {
		idx_abort(txn);
		return rc;	/* 0: already known; leave it */
	}
	memset(&rec, 0, sizeof(rec));
	rc = idx_gen_next(&c->idx, txn, &rec.gen);	/* a new record */
	if (rc) {
		idx_abort(txn);
		return rc;
	}
	rec.state = CACHE_PARTIAL;
	rec.size_known = true;
	rec.size = size;
	rec.chunk_size = c->default_chunk;
	rec.last_access = time(NULL);
	snprintf(rec.project, sizeof(rec.project), "%s", r->project);
	snprintf(rec.name, sizeof(rec.name), "%s", r->name);
	rec.json = r->json;
	rc = idx_rec_put(&c->idx, txn, r->digest.str, &rec);
	rec.json = NULL;
	if (rc) {
		idx_abort(txn);
		return rc;
	}
	return idx_commit(txn);
}

int cache_open_verified(struct cache *c, const struct pol_digest *d,
			uint64_t *size, uint64_t *gen)
{
	char path[4096];
	struct idx_rec rec;
	uint64_t g;
	int fd, rc;

	rc = rec_read(c, d->str, &rec, false);
	if (rc)
		return rc;
	if (rec.state != CACHE_VERIFIED)
		return -ENOENT;
	g = rec.gen;
	if (!cache_data_path(c, d->str, path, sizeof(path)))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	/*
	 * Evicted or reset between the read and the open, a new fetch may
	 * have created a fresh (unverified) file at that path: it commits
	 * a new generation before creating the file (cache_int.h rule 5), so
	 * the same verified generation on a second look means the fd is the
	 * file that was verified.
	 */
	rc = rec_read(c, d->str, &rec, false);
	if (rc || rec.state != CACHE_VERIFIED || rec.gen != g) {
		close(fd);
		return rc && rc != -ENOENT ? rc : -ENOENT;
	}
	if (size)
		*size = rec.size;
	if (gen)
		*gen = g;
	if (time(NULL) - rec.last_access >= CACHE_ACCESS_GRANULARITY_S)
		touch_access(c, d->str);
	return fd;
}

struct count_ctx {
	uint64_t n;
	uint64_t bytes;
	uint64_t size;
	uint64_t chunk_size;
};

static int count_chunk(void *arg, uint64_t i, uint64_t xxh)
{
	struct count_ctx *k = arg;
	uint64_t off = i * k->chunk_size;

	(void)xxh;
	if (!k->chunk_size || off >= k->size)
		return 0;
	k->n++;
	k->bytes += k->size - off < k->chunk_size ? k->size - off :
		    k->chunk_size;
	return 0;
}

static bool lease_live(struct cache *c, MDB_txn *txn, const char *key)
{
	struct idx_lease l;

	if (idx_lease_get(&c->idx, txn, key, &l))
		return false;
	return idx_lease_alive(&l);
}

/* Fills *out for key inside txn. */
static int info_fill(struct cache *c, MDB_txn *txn, const char *key,
		     struct cache_info *out)
{
	struct count_ctx k = { 0 };
	struct idx_rec rec;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = idx_rec_get(&c->idx, txn, key, &rec, false);
	if (rc)
		return rc;
	if (pol_digest_parse(key, &out->digest, NULL, 0))
		return -EIO;
	out->state = rec.state;
	out->gen = rec.gen;
	out->last_err = rec.last_err;
	out->size_known = rec.size_known;
	out->size = rec.size;
	out->chunk_size = rec.chunk_size;
	out->verified_at = rec.verified_at;
	out->last_access = rec.last_access;
	snprintf(out->project, sizeof(out->project), "%s", rec.project);
	snprintf(out->name, sizeof(out->name), "%s", rec.name);
	if (rec.size_known && rec.chunk_size)
		out->chunks_total = (rec.size + rec.chunk_size - 1) /
				    rec.chunk_size;
	k.size = rec.size;
	k.chunk_size = rec.chunk_size;
	if (rec.state != CACHE_QUARANTINED) {
		rc = idx_chunks_each(&c->idx, txn, key, count_chunk, &k);
		if (rc)
			return rc;
	}
	out->chunks_present = k.n;
	out->bytes_present = rec.state == CACHE_VERIFIED ? rec.size : k.bytes;
	pthread_mutex_lock(&c->lock);
	out->fetching = cache_job_running_locked(c, key);
	pthread_mutex_unlock(&c->lock);
	if (!out->fetching)
		out->fetching = lease_live(c, txn, key);
	return 0;
}

int cache_stat(struct cache *c, const struct pol_digest *d,
	       struct cache_info *out)
{
	MDB_txn *txn = NULL;
	int rc;

	rc = idx_begin(&c->idx, false, &txn);
	if (rc)
		return rc;
	rc = info_fill(c, txn, d->str, out);
	idx_abort(txn);
	return rc;
}

/* Copies every blob key out of the index (so callbacks run outside txns). */
static int list_keys(struct cache *c, char (**keys)[POL_DIGEST_STR_MAX],
		     size_t *n)
{
	char (*v)[POL_DIGEST_STR_MAX] = NULL;
	size_t cnt = 0, cap = 0;
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	MDB_val k, val;
	int rc;

	*keys = NULL;
	*n = 0;
	rc = idx_begin(&c->idx, false, &txn);
	if (rc)
		return rc;
	rc = idx_err(mdb_cursor_open(txn, c->idx.blobs, &cur));
	if (rc)
		goto out_txn;
	rc = mdb_cursor_get(cur, &k, &val, MDB_FIRST);
	while (rc == 0) {
		if (k.mv_size > 0 && k.mv_size < POL_DIGEST_STR_MAX) {
			if (cnt == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				void *nv = realloc(v, ncap * sizeof(*v));

				if (!nv) {
					rc = -ENOMEM;
					goto out_cursor;
				}
				v = nv;
				cap = ncap;
			}
			memcpy(v[cnt], k.mv_data, k.mv_size);
			v[cnt][k.mv_size] = '\0';
			cnt++;
		}
		rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT);
	}
	rc = rc == MDB_NOTFOUND ? 0 : idx_err(rc);

out_cursor:
	mdb_cursor_close(cur);
out_txn:
	idx_abort(txn);
	if (rc) {
		free(v);
		return rc;
	}
	*keys = v;
	*n = cnt;
	return 0;
}

int cache_foreach(struct cache *c,
		  int (*fn)(void *arg, const struct cache_info *info),
		  void *arg)
{
	char (*keys)[POL_DIGEST_STR_MAX] = NULL;
	struct cache_info info;
	size_t n = 0, i;
	int rc;

	rc = list_keys(c, &keys, &n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		MDB_txn *txn = NULL;

		rc = idx_begin(&c->idx, false, &txn);
		if (rc)
			break;
		rc = info_fill(c, txn, keys[i], &info);
		idx_abort(txn);
		if (rc == -ENOENT || rc == -EIO || rc == -EBADMSG) {
			rc = 0;		/* evicted meanwhile, or unreadable */
			continue;
		}
		if (rc)
			break;
		rc = fn(arg, &info);
		if (rc)
			break;
	}
	free(keys);
	return rc;
}

static int add_to_stats(void *arg, const struct cache_info *info)
{
	struct cache_stats *out = arg;

	out->blobs++;
	out->bytes += info->bytes_present;
	switch (info->state) {
	case CACHE_VERIFIED:
		out->verified++;
		break;
	case CACHE_PARTIAL:
		out->partial++;
		break;
	case CACHE_QUARANTINED:
		out->quarantined++;
		break;
	default:
		break;
	}
	return 0;
}

int cache_get_stats(struct cache *c, struct cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->max_size = c->cfg->cache_max_size;
	return cache_foreach(c, add_to_stats, out);
}

const uint64_t cache_fetch_bucket_ms[CACHE_FETCH_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000,
	3600000,
};

const char *cache_fetch_result_name(enum cache_fetch_result r)
{
	switch (r) {
	case CACHE_FETCH_OK:
		return "ok";
	case CACHE_FETCH_VERIFY_FAILED:
		return "verify_failed";
	case CACHE_FETCH_SOURCE_FAILED:
		return "source_failed";
	case CACHE_FETCH_CANCELED:
		return "canceled";
	case CACHE_FETCH_ERROR:
		return "error";
	default:
		return "unknown";
	}
}

void cache_count_fetch(struct cache *c, int rc, long long ms)
{
	enum cache_fetch_result r;
	size_t b = 0;

	switch (rc) {
	case 0:
		r = CACHE_FETCH_OK;
		break;
	case AF_EDIGEST:
	case AF_ESIZE:
	case AF_EQUARANTINE:
		r = CACHE_FETCH_VERIFY_FAILED;
		break;
	case AF_ESOURCE:
	case AF_ETIMEDOUT:
	case AF_ECRED:
		r = CACHE_FETCH_SOURCE_FAILED;
		break;
	case -ECANCELED:
		r = CACHE_FETCH_CANCELED;
		break;
	default:
		r = CACHE_FETCH_ERROR;
		break;
	}
	if (ms < 0)
		ms = 0;
	while (b < CACHE_FETCH_BUCKETS && (uint64_t)ms > cache_fetch_bucket_ms[b])
		b++;
	__atomic_add_fetch(&c->ctr_fetches[r], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->ctr_fetch_buckets[b], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->ctr_fetch_ms_sum, (uint64_t)ms, __ATOMIC_RELAXED);
}

void cache_count_verify_failure(struct cache *c)
{
	__atomic_add_fetch(&c->ctr_verify_failures, 1, __ATOMIC_RELAXED);
}

void cache_get_counters(struct cache *c, struct cache_counters *out)
{
	for (int i = 0; i < CACHE_FETCH_RESULTS; i++)
		out->fetches[i] = __atomic_load_n(&c->ctr_fetches[i],
						  __ATOMIC_RELAXED);
	for (int i = 0; i <= CACHE_FETCH_BUCKETS; i++)
		out->fetch_buckets[i] = __atomic_load_n(&c->ctr_fetch_buckets[i],
							__ATOMIC_RELAXED);
	out->fetch_ms_sum = __atomic_load_n(&c->ctr_fetch_ms_sum,
					    __ATOMIC_RELAXED);
	out->verify_failures = __atomic_load_n(&c->ctr_verify_failures,
					       __ATOMIC_RELAXED);
	out->evictions = __atomic_load_n(&c->ctr_evictions, __ATOMIC_RELAXED);
	out->hash_cpu_ns = __atomic_load_n(&c->ctr_hash_cpu_ns,
					   __ATOMIC_RELAXED);
	out->hashed_bytes = __atomic_load_n(&c->ctr_hashed_bytes,
					    __ATOMIC_RELAXED);
	out->hash_slots = c->hash_slots;
	out->hashing_peak = __atomic_load_n(&c->hashing_peak,
					    __ATOMIC_RELAXED);
}

unsigned cache_cpus(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

int cache_drop_txn(struct cache *c, MDB_txn *txn, const char *key,
		   struct idx_rec *rec, enum cache_state state, int err)
{
	char path[4096];
	bool was_verified = rec->state == CACHE_VERIFIED;
	uint64_t gen;
	int rc;

	rc = idx_gen_next(&c->idx, txn, &gen);
	if (rc)
		return rc;
	rec->state = state;
	rec->gen = gen;
	rec->verified_at = 0;
	rec->last_err = err;
	rc = idx_rec_put(&c->idx, txn, key, rec);
	if (rc)
		return rc;
	rc = idx_chunks_del(&c->idx, txn, key);
	if (rc)
		return rc;
	rc = idx_lease_del(&c->idx, txn, key);
	if (rc)
		return rc;
	if (was_verified) {
		rc = idx_drop_note(&c->idx, txn, key,
				   state == CACHE_QUARANTINED);
		if (rc)
			return rc;
	}
	/* Unlinked inside the txn: no fetch can recreate it meanwhile. */
	if (cache_data_path(c, key, path, sizeof(path)) && unlink(path) < 0 &&
	    errno != ENOENT)
		af_warn("cache: %s: %s", path, strerror(errno));
	return 0;
}

/* Live owner of key: an in-process job or another live process's lease. */
static bool key_busy(struct cache *c, MDB_txn *txn, const char *key)
{
	struct idx_lease l;
	bool busy;

	pthread_mutex_lock(&c->lock);
	busy = cache_job_running_locked(c, key);
	pthread_mutex_unlock(&c->lock);
	if (!busy && idx_lease_get(&c->idx, txn, key, &l) == 0)
		busy = l.token != c->me.token && idx_lease_alive(&l);
	return busy;
}

static int gc_orphan(struct cache *c, const char *path, const char *key,
		     uint64_t *bytes);

/*
 * Evicts key unless a fetch of it is in flight here or in a live process
 * (rule 4), or, with gen != 0, unless the record is no longer generation
 * gen (-ESTALE: it changed since the caller looked). The record goes
 * first; the data file right after, in a write txn of its own that finds
 * no record (gc_orphan: a fetch commits a record before it creates a
 * file, so none can be on the way). A crash in between leaves a file no
 * record claims, which gc removes and a fetch replaces; never a record
 * whose file is gone (issue 11: a verified record with no data). Open fds
 * keep their bytes. The blob's failure backoff goes with it (DESIGN §6).
 * *bytes receives what was freed.
 */
static int evict_key(struct cache *c, const char *key, uint64_t gen,
		     const char *reason, uint64_t *bytes)
{
	struct pol_registration *r;
	struct count_ctx k = { 0 };
	char path[4096];
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	uint64_t unused;
	bool was_verified;
	int rc;

	*bytes = 0;
	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	if (key_busy(c, txn, key)) {
		rc = -EBUSY;
		goto out_abort;
	}
	rc = idx_rec_get(&c->idx, txn, key, &rec, true);
	if (rc == -EBADMSG) {
		/* A record that does not decode goes like any other. */
		memset(&rec, 0, sizeof(rec));
		rc = 0;
	}
	if (rc == -ENOENT) {
		/* No record: still clear a backoff (evict DIGEST clears it). */
		rc = idx_fails_del_blob(&c->idx, txn, key);
		if (rc == 0)
			rc = idx_commit(txn);
		else
			idx_abort(txn);
		return rc ? rc : -ENOENT;
	}
	if (rc)
		goto out_abort;
	if (gen && rec.gen != gen) {
		idx_rec_release(&rec);
		rc = -ESTALE;
		goto out_abort;
	}
	was_verified = rec.state == CACHE_VERIFIED;
	k.size = rec.size;
	k.chunk_size = rec.chunk_size;
	if (was_verified)
		*bytes = rec.size;
	else if (idx_chunks_each(&c->idx, txn, key, count_chunk, &k) == 0)
		*bytes = k.bytes;
	rc = idx_blob_del(&c->idx, txn, key);
	if (rc == 0 || rc == -ENOENT)
		rc = idx_fails_del_blob(&c->idx, txn, key);
	if (rc == 0 && was_verified)
		rc = idx_drop_note(&c->idx, txn, key, false);
	if (rc) {
		idx_rec_release(&rec);
		goto out_abort;
	}
	af_hook("cache.evict.txn");
	rc = idx_commit(txn);
	if (rc) {
		idx_rec_release(&rec);
		return rc;
	}
	af_hook("cache.evict.committed");
	if (cache_data_path(c, key, path, sizeof(path)) &&
	    gc_orphan(c, path, key, &unused) < 0)
		af_warn("cache: %s: cannot remove its data file", key);
	if (was_verified)
		cache_notify_drop(c, key);
	r = rec_registration(&rec);
	if (r)
		cache_audit(c, "evict", r, NULL, NULL, NULL, reason, true,
			    *bytes, -1);
	else
		cache_audit(c, "evict", NULL, rec.project, rec.name, key,
			    reason, true, *bytes, -1);
	pol_registration_free(r);
	idx_rec_release(&rec);
	__atomic_add_fetch(&c->ctr_evictions, 1, __ATOMIC_RELAXED);
	af_info("cache: %s: evicted (%s)", key, reason ? reason : "");
	return 0;

out_abort:
	idx_abort(txn);
	return rc;
}

int cache_evict(struct cache *c, const struct pol_digest *d,
		const char *reason)
{
	uint64_t bytes;

	return evict_key(c, d->str, 0, reason ? reason : "evicted", &bytes);
}

int cache_evict_if(struct cache *c, const struct pol_digest *d, uint64_t gen,
		   const char *reason)
{
	uint64_t bytes;

	return evict_key(c, d->str, gen, reason ? reason : "evicted", &bytes);
}

struct lru_ent {
	char key[POL_DIGEST_STR_MAX];
	uint64_t gen;
	long long last_access;
	uint64_t size;
};

static int lru_cmp(const void *a, const void *b)
{
	const struct lru_ent *x = a, *y = b;

	if (x->last_access != y->last_access)
		return x->last_access < y->last_access ? -1 : 1;
	return strcmp(x->key, y->key);
}

void cache_lru_evict(struct cache *c, const char *keep_key, uint64_t incoming)
{
	char (*keys)[POL_DIGEST_STR_MAX] = NULL;
	struct lru_ent *ents = NULL;
	uint64_t max = c->cfg->cache_max_size, low, total = 0;
	size_t n = 0, ne = 0, i;
	char reason[128];

	if (!max || list_keys(c, &keys, &n))
		return;
	low = max / 10 * 9;
	low = low > incoming ? low - incoming : 0;
	ents = calloc(n ? n : 1, sizeof(*ents));
	if (!ents)
		goto out_free;
	for (i = 0; i < n; i++) {
		struct cache_info info;
		MDB_txn *txn = NULL;
		int rc;

		if (idx_begin(&c->idx, false, &txn))
			goto out_free;
		rc = info_fill(c, txn, keys[i], &info);
		idx_abort(txn);
		if (rc)
			continue;
		total += info.bytes_present;
		if (info.state != CACHE_VERIFIED || info.fetching ||
		    strcmp(keys[i], keep_key) == 0)
			continue;
		memcpy(ents[ne].key, keys[i], sizeof(ents[ne].key));
		ents[ne].gen = info.gen;
		ents[ne].last_access = info.last_access;
		ents[ne].size = info.size;
		ne++;
	}
	if (total <= max && incoming <= max - total)
		goto out_free;
	qsort(ents, ne, sizeof(*ents), lru_cmp);
	if (incoming)
		snprintf(reason, sizeof(reason), "lru: room for %" PRIu64
			 " bytes under max_size %" PRIu64, incoming, max);
	else
		snprintf(reason, sizeof(reason),
			 "lru: cache above max_size %" PRIu64, max);
	for (i = 0; i < ne && total > low; i++) {
		uint64_t freed = 0;

		if (evict_key(c, ents[i].key, ents[i].gen, reason, &freed) == 0)
			total -= freed < total ? freed : total;
	}
	if (total > max || incoming > max - total)
		af_warn("cache: still %" PRIu64 " bytes after eviction (%" PRIu64
			" more on the way), above max_size %" PRIu64, total,
			incoming, max);

out_free:
	free(ents);
	free(keys);
}

struct chunk_list {
	uint64_t *xxh;
	uint8_t *have;
	uint64_t n;
};

static int collect_chunk(void *arg, uint64_t i, uint64_t xxh)
{
	struct chunk_list *l = arg;

	if (i < l->n) {
		l->xxh[i] = xxh;
		l->have[i] = 1;
	}
	return 0;
}

/* Quick check: every chunk's xxh3 against the index. */
static int verify_quick(struct cache *c, const char *key, int fd,
			const struct idx_rec *rec, char *reason, size_t rlen)
{
	struct chunk_list l = { 0 };
	unsigned char *buf = NULL;
	MDB_txn *txn = NULL;
	uint64_t i;
	int rc;

	if (!rec->chunk_size)
		return -EIO;
	l.n = (rec->size + rec->chunk_size - 1) / rec->chunk_size;
	l.xxh = calloc(l.n ? l.n : 1, sizeof(*l.xxh));
	l.have = calloc(l.n ? l.n : 1, 1);
	buf = malloc(HASH_PIECE);
	if (!l.xxh || !l.have || !buf) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = idx_begin(&c->idx, false, &txn);
	if (rc)
		goto out_free;
	rc = idx_chunks_each(&c->idx, txn, key, collect_chunk, &l);
	idx_abort(txn);
	if (rc)
		goto out_free;
	for (i = 0; i < l.n; i++) {
		uint64_t off = i * rec->chunk_size, xxh = 0;
		uint64_t len = rec->size - off < rec->chunk_size ?
			       rec->size - off : rec->chunk_size;

		if (!l.have[i]) {
			snprintf(reason, rlen, "chunk %" PRIu64
				 " missing from the index", i);
			rc = AF_EDIGEST;
			goto out_free;
		}
		rc = hash_fd_range(fd, off, len, NULL, &xxh, buf);
		if (rc == -EIO || (rc == 0 && xxh != l.xxh[i])) {
			snprintf(reason, rlen, "chunk %" PRIu64
				 " xxh3 mismatch", i);
			rc = AF_EDIGEST;
			goto out_free;
		}
		if (rc)
			goto out_free;
	}

out_free:
	free(buf);
	free(l.have);
	free(l.xxh);
	return rc;
}

int cache_verify(struct cache *c, const struct pol_digest *d, bool quick)
{
	struct pol_registration *r = NULL;
	char path[4096], reason[400] = "";
	struct pol_digest got;
	struct idx_rec rec, now;
	MDB_txn *txn = NULL;
	struct stat st;
	uint64_t gen;
	int fd = -1, rc;

	rc = rec_read(c, d->str, &rec, true);
	if (rc)
		return rc;
	if (rec.state != CACHE_VERIFIED) {
		rc = -ENOENT;
		goto out_rec;
	}
	gen = rec.gen;
	if (!cache_data_path(c, d->str, path, sizeof(path))) {
		rc = -ENAMETOOLONG;
		goto out_rec;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT) {
		rc = -errno;
		goto out_rec;
	}
	/* Rule 3: the file opened is the generation read (see open_verified). */
	rc = rec_read(c, d->str, &now, false);
	if (rc || now.state != CACHE_VERIFIED || now.gen != gen) {
		rc = rc && rc != -ENOENT ? rc : -ESTALE;
		goto out_close;
	}
	if (fd < 0) {
		snprintf(reason, sizeof(reason), "data file missing");
		rc = AF_EDIGEST;
	} else if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out_close;
	} else if ((uint64_t)st.st_size != rec.size) {
		snprintf(reason, sizeof(reason),
			 "size mismatch: recorded %" PRIu64 ", file %lld",
			 rec.size, (long long)st.st_size);
		rc = AF_EDIGEST;
	} else if (quick) {
		rc = verify_quick(c, d->str, fd, &rec, reason, sizeof(reason));
	} else {
		/* Hashed outside any txn (rule 7). */
		assert(!idx_write_held(&c->idx));
		rc = hash_fd(fd, rec.size, d->algo, &got);
		if (rc == -EIO || (rc == 0 && !pol_digest_equal(&got, d))) {
			snprintf(reason, sizeof(reason),
				 "digest mismatch: expected %s, got %s",
				 d->str, rc ? "(short file)" : got.str);
			rc = AF_EDIGEST;
		}
	}
	if (rc != AF_EDIGEST)
		goto out_close;
	if (c->test_hook)
		c->test_hook(c, "verify_judged", d->str);
	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		goto out_close;
	/* Only the very generation that was checked is quarantined. */
	rc = idx_rec_get(&c->idx, txn, d->str, &now, true);
	if (rc == 0 && (now.state != CACHE_VERIFIED || now.gen != gen ||
			key_busy(c, txn, d->str)))
		rc = -ESTALE;
	if (rc == 0)
		rc = cache_drop_txn(c, txn, d->str, &now, CACHE_QUARANTINED,
				    AF_EDIGEST);
	idx_rec_release(&now);
	if (rc) {
		idx_abort(txn);
		rc = rc == -ENOENT ? -ESTALE : rc;
		goto out_close;
	}
	rc = idx_commit(txn);
	if (rc)
		goto out_close;
	cache_notify_drop(c, d->str);
	cache_count_verify_failure(c);
	af_warn("cache: %s: quarantined by verify: %s", d->str, reason);
	r = rec_registration(&rec);
	if (r)
		cache_audit(c, "verify_failed", r, NULL, NULL, NULL, reason,
			    false, 0, -1);
	else
		cache_audit(c, "verify_failed", NULL, rec.project, rec.name,
			    d->str, reason, false, 0, -1);
	pol_registration_free(r);
	rc = AF_EDIGEST;

out_close:
	if (fd >= 0)
		close(fd);
out_rec:
	idx_rec_release(&rec);
	return rc;
}

/*
 * gc of one blob (cache gc): a quarantined record, or a partial one not
 * touched since stale_before, that no live fetch owns (rule 4), decided
 * and dropped in one write txn. Returns 1 when dropped, 0 when kept.
 */
static int gc_blob(struct cache *c, const char *key, long long stale_before,
		   uint64_t *bytes)
{
	struct pol_registration *r;
	struct count_ctx k = { 0 };
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	char path[4096];
	bool corrupt;
	int rc;

	*bytes = 0;
	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = idx_rec_get(&c->idx, txn, key, &rec, true);
	corrupt = rc == -EBADMSG;	/* does not decode: garbage, dropped */
	if (rc && !corrupt)
		goto out_abort;
	if (key_busy(c, txn, key) ||
	    !(corrupt || rec.state == CACHE_QUARANTINED ||
	      (rec.state == CACHE_PARTIAL && rec.last_access < stale_before))) {
		idx_rec_release(&rec);
		idx_abort(txn);
		return 0;
	}
	k.size = rec.size;
	k.chunk_size = rec.chunk_size;
	if (idx_chunks_each(&c->idx, txn, key, count_chunk, &k) == 0)
		*bytes = k.bytes;
	if (cache_data_path(c, key, path, sizeof(path)) && unlink(path) < 0 &&
	    errno != ENOENT)
		af_warn("cache: %s: %s", path, strerror(errno));
	rc = idx_blob_del(&c->idx, txn, key);
	if (rc && rc != -ENOENT) {
		idx_rec_release(&rec);
		goto out_abort;
	}
	rc = idx_commit(txn);
	if (rc == 0) {
		r = rec_registration(&rec);
		if (r)
			cache_audit(c, "evict", r, NULL, NULL, NULL, "cache gc",
				    true, *bytes, -1);
		else
			cache_audit(c, "evict", NULL, rec.project, rec.name,
				    key, "cache gc", true, *bytes, -1);
		pol_registration_free(r);
		af_info("cache: %s: dropped by gc (%s)", key,
			cache_state_name(rec.state));
	}
	idx_rec_release(&rec);
	return rc ? rc : 1;

out_abort:
	idx_abort(txn);
	return rc == -ENOENT ? 0 : rc;
}

/*
 * A data file under blobs/ that no record backs, unlinked while the
 * writer lock is held (rule 5: a fetch commits its record before it
 * creates its file, so none can be on the way). Returns 1 when removed
 * (*bytes: the space it held), 0 when a record backs it, or -errno.
 */
static int gc_orphan(struct cache *c, const char *path, const char *key,
		     uint64_t *bytes)
{
	struct idx_rec rec;
	MDB_txn *txn = NULL;
	struct stat sb;
	int rc;

	*bytes = 0;
	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = key ? idx_rec_get(&c->idx, txn, key, &rec, false) : -ENOENT;
	if (rc != -ENOENT) {
		idx_abort(txn);
		return rc == 0 ? 0 : rc;
	}
	/* Allocated bytes: the files are sparse. */
	if (lstat(path, &sb) == 0)
		*bytes = (uint64_t)sb.st_blocks * 512;
	rc = unlink(path) < 0 ? -errno : 1;
	idx_abort(txn);
	return rc == -ENOENT ? 0 : rc;
}

static void gc_orphans(struct cache *c, cache_gc_fn report, void *arg)
{
	static const char *const algos[] = { "sha256", "sha512" };

	for (size_t a = 0; a < 2; a++) {
		char dir[4096];
		DIR *top;
		struct dirent *e;

		snprintf(dir, sizeof(dir), "%s/blobs/%s", c->dir, algos[a]);
		top = opendir(dir);
		if (!top)
			continue;
		while ((e = readdir(top))) {
			char sub[4200];
			DIR *d;
			struct dirent *f;

			if (e->d_name[0] == '.')
				continue;
			if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir,
					     e->d_name) >= sizeof(sub))
				continue;
			d = opendir(sub);
			if (!d)
				continue;
			while ((f = readdir(d))) {
				char ds[POL_DIGEST_STR_MAX + 8], path[4400];
				struct pol_digest dg;
				uint64_t bytes = 0;
				bool valid;
				int rc;

				if (f->d_name[0] == '.')
					continue;
				if ((size_t)snprintf(ds, sizeof(ds), "%s:%s",
						     algos[a], f->d_name) >=
				    sizeof(ds) ||
				    (size_t)snprintf(path, sizeof(path), "%s/%s",
						     sub, f->d_name) >=
				    sizeof(path))
					continue;
				valid = pol_digest_parse(ds, &dg, NULL, 0) == 0;
				rc = gc_orphan(c, path, valid ? dg.str : NULL,
					       &bytes);
				if (rc != 0 && report)
					report(arg, ds, true, bytes,
					       rc > 0 ? 0 : rc);
			}
			closedir(d);
		}
		closedir(top);
	}
}

int cache_gc(struct cache *c, long long stale_before, cache_gc_fn report,
	     void *arg)
{
	char (*keys)[POL_DIGEST_STR_MAX] = NULL;
	MDB_txn *txn = NULL;
	size_t n = 0;
	int rc, bad = 0;

	rc = list_keys(c, &keys, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		uint64_t bytes = 0;

		rc = gc_blob(c, keys[i], stale_before, &bytes);
		if (rc == 0)
			continue;
		if (rc < 0)
			bad = rc;
		if (report)
			report(arg, keys[i], false, bytes, rc > 0 ? 0 : rc);
	}
	free(keys);
	gc_orphans(c, report, arg);
	/* Backoffs long over: their doubling starts afresh. */
	if (idx_begin(&c->idx, true, &txn) == 0) {
		if (idx_fails_prune(&c->idx, txn,
				    af_wall_ms() - c->backoff_max_ms) == 0)
			idx_commit(txn);
		else
			idx_abort(txn);
	}
	return bad;
}

int cache_backoff_clear(struct cache *c)
{
	MDB_txn *txn = NULL;
	int rc;

	rc = idx_begin(&c->idx, true, &txn);
	if (rc)
		return rc;
	rc = idx_fails_clear(&c->idx, txn);
	if (rc) {
		idx_abort(txn);
		return rc;
	}
	return idx_commit(txn);
}

int cache_generation(struct cache *c, uint64_t *gen)
{
	MDB_txn *txn = NULL;
	int rc;

	*gen = 0;
	rc = idx_begin(&c->idx, false, &txn);
	if (rc)
		return rc;
	rc = idx_drops_get(&c->idx, txn, gen);
	idx_abort(txn);
	return rc;
}

struct since_ctx {
	int (*fn)(void *arg, const struct pol_digest *d, bool bad);
	void *arg;
};

static int since_one(void *arg, const char *key, bool bad)
{
	struct since_ctx *s = arg;
	struct pol_digest d;

	if (pol_digest_parse(key, &d, NULL, 0))
		return 0;
	return s->fn(s->arg, &d, bad);
}

int cache_changes_since(struct cache *c, uint64_t since,
			int (*fn)(void *arg, const struct pol_digest *d,
				  bool bad),
			void *arg)
{
	struct since_ctx s = { .fn = fn, .arg = arg };
	MDB_txn *txn = NULL;
	int rc;

	rc = idx_begin(&c->idx, false, &txn);
	if (rc)
		return rc;
	rc = idx_drops_since(&c->idx, txn, since, since_one, &s);
	idx_abort(txn);
	return rc;
}
