/*
 * size.c - the size of a blob registered without size_bytes, learned off
 * the caller's thread (DESIGN §2, §7; issue 10 item 8): `stat` and `ls -l`
 * run on FUSE worker threads, which must never wait on the network. One
 * request per blob and source in flight (src_size: a HEAD, or a one-byte
 * GET), the answer shared by every caller and kept in the index; a
 * failure is remembered for [fetch] failure_backoff, so a dead source
 * costs one request per interval whatever the number of stats.
 *
 * Threads: up to CACHE_SIZE_WORKERS, started on demand, each taking the
 * oldest queued request whose server has fewer than SIZE_PER_HOST in
 * flight (a server that never answers holds two threads, not all);
 * joined by cache_close. Entries live in
 * c->sizes under c->lock; a running entry is never freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "../policy/af.h"
#include "../sources/source.h"
#include "cache_int.h"

enum size_state {
	SZ_QUEUED = 0,
	SZ_RUNNING,
	SZ_DONE,
};

struct size_req {
	struct size_req *next;		/* c->sizes; c->lock */
	uint64_t id;			/* digest and source (size_id) */
	uint64_t host;			/* scheme and authority (host_id) */
	struct pol_registration *r;	/* owned */
	enum size_state state;		/* c->lock */
	int err;			/* SZ_DONE: 0 or the failure; c->lock */
	uint64_t size;			/* SZ_DONE, err 0; c->lock */
	long long done_ms;		/* monotonic, when it ended; c->lock */
};

/* A failure is remembered at least this long (failure_backoff = 0 too). */
#define SIZE_NEG_MIN_MS		1000
/* A success, until the index answers instead (it normally does at once). */
#define SIZE_POS_MS		60000
/* Requests in flight to one server, at most (of CACHE_SIZE_WORKERS). */
#define SIZE_PER_HOST		2

/* Which requests are the same one: the digest and where it is fetched. */
static uint64_t size_id(const struct pol_registration *r)
{
	XXH3_state_t *xs = XXH3_createState();
	uint64_t id;

	if (!xs)
		return 0;
	XXH3_64bits_reset(xs);
	XXH3_64bits_update(xs, r->digest.str, strlen(r->digest.str) + 1);
	XXH3_64bits_update(xs, &r->source_type, sizeof(r->source_type));
	if (r->uri)
		XXH3_64bits_update(xs, r->uri, strlen(r->uri) + 1);
	if (r->source_ref)
		XXH3_64bits_update(xs, r->source_ref, strlen(r->source_ref) + 1);
	id = XXH3_64bits_digest(xs);
	XXH3_freeState(xs);
	return id;
}

/*
 * Which server a request goes to (scheme and authority of the URI): a
 * dead server must not hold every size thread while others wait.
 */
static uint64_t host_id(const struct pol_registration *r)
{
	const char *u = r->uri ? r->uri : "";
	const char *sep = strstr(u, "://");
	size_t n = strlen(u);

	if (sep)
		n = (size_t)(sep + 3 - u) + strcspn(sep + 3, "/?#");
	return XXH3_64bits(u, n);
}

static long long neg_ms(const struct cache *c)
{
	return c->backoff_ms > SIZE_NEG_MIN_MS ? c->backoff_ms :
	       SIZE_NEG_MIN_MS;
}

/* An entry whose answer no longer serves; c->lock held. */
static bool size_expired(const struct cache *c, const struct size_req *e,
			 long long now)
{
	if (e->state != SZ_DONE)
		return false;
	return now - e->done_ms >= (e->err ? neg_ms(c) : SIZE_POS_MS);
}

static void size_req_free(struct size_req *e)
{
	pol_registration_free(e->r);
	free(e);
}

/* One request, on a size thread, no lock held. */
static int size_learn(struct cache *c, const struct pol_registration *r,
		      uint64_t *size)
{
	char reason[256] = "";
	struct src *s = NULL;
	int rc;

	rc = src_open(c->srcs, r, &s);
	if (rc)
		return rc == -ENOMEM ? rc : AF_ESOURCE;
	rc = src_size(s, size, reason, sizeof(reason));
	src_close(s);
	if (rc) {
		af_debug("cache: %s: size: %s", r->digest.str,
			 reason[0] ? reason : af_strerror(rc));
		return rc == -ECANCELED || rc == -ENOMEM || rc == AF_ETIMEDOUT ?
		       rc : AF_ESOURCE;
	}
	if (cache_note_size(c, r, *size) < 0)
		af_debug("cache: %s: size not kept in the index", r->digest.str);
	return 0;
}

/* Requests to host in flight; c->lock held. */
static unsigned host_running(const struct cache *c, uint64_t host)
{
	unsigned n = 0;

	for (const struct size_req *e = c->sizes; e; e = e->next)
		if (e->state == SZ_RUNNING && e->host == host)
			n++;
	return n;
}

/*
 * The next request to run: the oldest queued one whose server has fewer
 * than SIZE_PER_HOST in flight, so that a server that never answers holds
 * at most that many threads and the others stay free. c->lock held.
 */
static struct size_req *size_next(struct cache *c)
{
	struct size_req *pick = NULL;

	/* c->sizes is newest first: the last match is the oldest. */
	for (struct size_req *e = c->sizes; e; e = e->next)
		if (e->state == SZ_QUEUED &&
		    host_running(c, e->host) < SIZE_PER_HOST)
			pick = e;
	return pick;
}

static void *size_main(void *arg)
{
	struct cache *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->closing) {
		struct size_req *e;
		uint64_t size = 0;
		int rc;

		e = size_next(c);
		if (!e) {
			pthread_cond_wait(&c->size_cond, &c->lock);
			continue;
		}
		e->state = SZ_RUNNING;
		c->size_busy++;
		pthread_mutex_unlock(&c->lock);
		rc = size_learn(c, e->r, &size);
		pthread_mutex_lock(&c->lock);
		c->size_busy--;
		e->state = SZ_DONE;
		e->err = rc;
		e->size = size;
		e->done_ms = af_now_ms();
		pthread_cond_broadcast(&c->cond);
		/* A request held back behind this server may go now. */
		pthread_cond_broadcast(&c->size_cond);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* A thread for a queued request, unless one is idle; c->lock held. */
static void size_kick(struct cache *c)
{
	if (c->size_busy >= c->size_workers &&
	    c->size_workers < CACHE_SIZE_WORKERS &&
	    pthread_create(&c->size_threads[c->size_workers], NULL, size_main,
			   c) == 0)
		c->size_workers++;
	pthread_cond_signal(&c->size_cond);
}

/*
 * Makes room for one more entry (drops answers that no longer serve, then
 * the oldest answer). c->lock held. False when every entry is in flight.
 */
static bool size_make_room(struct cache *c, long long now)
{
	struct size_req **pp, **oldest = NULL;

	for (pp = &c->sizes; *pp;) {
		struct size_req *e = *pp;

		if (size_expired(c, e, now)) {
			*pp = e->next;
			size_req_free(e);
			c->nsizes--;
			continue;
		}
		if (e->state == SZ_DONE &&
		    (!oldest || e->done_ms < (*oldest)->done_ms))
			oldest = pp;
		pp = &e->next;
	}
	if (c->nsizes < CACHE_SIZE_ENTRIES)
		return true;
	if (!oldest)
		return false;
	{
		struct size_req *e = *oldest;

		*oldest = e->next;
		size_req_free(e);
		c->nsizes--;
	}
	return true;
}

/* Queues a request for r; c->lock held. NULL when it cannot. */
static struct size_req *size_queue(struct cache *c,
				   const struct pol_registration *r,
				   uint64_t id, long long now)
{
	struct size_req *e;

	if (!size_make_room(c, now))
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->r = pol_registration_dup(r);
	if (!e->r) {
		free(e);
		return NULL;
	}
	e->id = id;
	e->host = host_id(r);
	e->state = SZ_QUEUED;
	e->next = c->sizes;
	c->sizes = e;
	c->nsizes++;
	size_kick(c);
	return e;
}

static int size_from_index(struct cache *c, const struct pol_registration *r,
			   uint64_t *size)
{
	struct cache_info info;

	if (cache_stat(c, &r->digest, &info) == 0 && info.size_known) {
		*size = info.size;
		return 0;
	}
	return -ENOENT;
}

/* Absolute CLOCK_REALTIME time ms from now, for a timed wait. */
int cache_blob_size(struct cache *c, const struct pol_registration *r,
		    long wait_ms, uint64_t *size)
{
	long long now = af_now_ms(), end = now + (wait_ms > 0 ? wait_ms : 0);
	struct size_req *e;
	uint64_t id;
	int rc;

	if (!c || !r || !size)
		return -EINVAL;
	if (r->has_size) {
		*size = r->size_bytes;
		return 0;
	}
	if (size_from_index(c, r, size) == 0)
		return 0;
	if (!c->srcs)
		return -ENOTSUP;
	id = size_id(r);
	pthread_mutex_lock(&c->lock);
	for (e = c->sizes; e && e->id != id; e = e->next)
		;
	for (;;) {
		if (c->closing) {
			rc = -ECANCELED;
			break;
		}
		now = af_now_ms();
		if (e && size_expired(c, e, now) && e->err) {
			/* Remembered long enough: ask again. */
			e->state = SZ_QUEUED;
			size_kick(c);
		}
		if (!e) {
			e = size_queue(c, r, id, now);
			if (!e) {
				rc = -EAGAIN;
				break;
			}
		}
		if (e->state == SZ_DONE) {
			rc = e->err;
			if (rc == 0)
				*size = e->size;
			break;
		}
		if (now >= end) {
			rc = -EAGAIN;
			break;
		}
		{
			struct timespec ts = af_deadline(CLOCK_REALTIME, end - now);

			pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		}
		/* The entry may have been replaced meanwhile: look it up. */
		for (e = c->sizes; e && e->id != id; e = e->next)
			;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void size_shutdown(struct cache *c)
{
	struct size_req *e;
	unsigned n;

	pthread_mutex_lock(&c->lock);
	pthread_cond_broadcast(&c->size_cond);
	n = c->size_workers;
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < n; i++)
		pthread_join(c->size_threads[i], NULL);
	pthread_mutex_lock(&c->lock);
	c->size_workers = 0;
	while ((e = c->sizes)) {
		c->sizes = e->next;
		size_req_free(e);
	}
	c->nsizes = 0;
	pthread_mutex_unlock(&c->lock);
}
