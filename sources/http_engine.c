/*
 * http_engine.c - the HTTP engine shared by every HTTP-based source type
 * (issue 3): ONE libcurl multi handle driven by ONE thread. Other threads
 * submit jobs to a mutex-protected queue and wake the thread with
 * curl_multi_wakeup; everything else (easy handles, retries, callbacks)
 * lives on the engine thread only, so the per-job state needs no lock.
 *
 * A job is one ranged GET (or a size probe) that may take several
 * attempts. Each attempt is one easy handle asking for the bytes not yet
 * delivered, so a retry never hands a byte out twice. Responses are
 * checked before their first byte is passed on: a 206 must carry exactly
 * the Content-Range asked for; a 200 (the server ignores Range) is read
 * through, dropping what lies before the range and stopping after it.
 *
 * Credentials (DESIGN §5b): each attempt asks its source's header hook for
 * the headers (and an Azure SAS query) to send. The hook only looks at
 * what is already in hand; when nothing is yet (a helper still running),
 * the job is parked on e->parked, costing no connection, until the source
 * is woken (http_src_wake, from the credential provider's thread) or the
 * park limit passes. An error status is read on (bounded) for the
 * service's error code, which the reason carries in words.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "policy/af.h"
#include "policy/policy.h"
#include "sources/http_int.h"
#include "sources/src_int.h"

/* Receive buffer per transfer: large reads, bounded memory (issue 3 §6). */
#define ENG_BUFFER_SIZE		(512L * 1024)
/* DESIGN §5b: at most 5 redirects per attempt. */
#define ENG_MAX_REDIRS		5
/* Response head kept for a type's check hook (http_src_set_check). */
#define ENG_HEAD_MAX		(32 * 1024)
#define ENG_USER_AGENT		"artifactfs/0.1"
/* Active transfers per configured connection (curl queues the rest). */
#define ENG_ACTIVE_PER_CONN	2
/* Longest sleep of the engine loop when nothing is due. */
#define ENG_POLL_MAX_MS		1000
/* Error body kept to find the service's error code in it. */
#define ENG_ERRBODY_MAX		4096

enum job_kind {
	JOB_RANGE,	/* ranged GET delivering bytes */
	JOB_HEAD,	/* size by HEAD */
	JOB_PROBE,	/* size by "Range: bytes=0-0" */
};

/* Blocking size request (http_src_size) waiting for its job. */
struct size_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;		/* lock */
	int err;		/* lock */
	uint64_t size;		/* lock */
	char reason[400];	/* lock */
};

/*
 * One job. Owned by the submitting thread until queued, then by the engine
 * thread alone.
 */
struct job {
	struct job *prev, *next;	/* in exactly one list */
	struct http_src *hs;
	enum job_kind kind;
	uint64_t off, len;		/* the range asked for */
	uint64_t done;			/* bytes delivered so far */
	struct src_range_cb cb;		/* JOB_RANGE */
	struct size_wait *sw;		/* JOB_HEAD, JOB_PROBE */
	uint64_t size;			/* size learned */
	unsigned attempt;		/* attempts started */
	char *url;			/* after a redirect; NULL: hs->url */
	unsigned hops;			/* redirects followed in this attempt */
	char *visited[ENG_MAX_REDIRS];	/* URLs left by a redirect (loops) */
	long long start_at_ms;		/* next attempt not before */
	long long park_until_ms;	/* parked: fails after this; 0: not */
	unsigned park_gen;		/* hs->wake_gen when the hook ran */

	CURL *easy;			/* NULL between attempts */
	struct curl_slist *hdrs;
	char range[48];

	/* The current response (reset at each status line). */
	int status;
	bool have_cr;
	struct http_content_range cr;
	bool have_cl;
	uint64_t cl;
	bool have_ra;
	unsigned ra_s;
	bool checked;			/* response validated */
	char *head;			/* header lines, when hs->check_fn */
	size_t head_len;
	bool head_over;			/* more than ENG_HEAD_MAX */
	bool errbody;			/* an error status: reading its body */
	char *ebuf;			/* the error body (ENG_ERRBODY_MAX) */
	size_t elen;
	char hcode[72];			/* x-ms-error-code, when sent */
	long long progress_ms;		/* last byte of header or body seen */
	bool stalled;			/* aborted by the stall detector */
	uint64_t skip;			/* 200: bytes to drop before the range */

	/* The outcome of the attempt, as decided by the callbacks. */
	bool complete;			/* everything delivered / size known */
	bool restart;			/* switch HEAD -> PROBE, no retry cost */
	bool redirect;			/* a 3xx to follow */
	int fail_err;			/* final failure, no retry */
	bool fail_retry;		/* failure worth another attempt */
	int retry_err;			/* error if the retries run out */
	char what[320];			/* last failure, for the reason */
};

struct jlist {
	struct job *head, *tail;
};

struct http_engine {
	struct http_engine_cfg cfg;
	CURLM *multi;			/* engine thread only (after start) */
	pthread_t thread;

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a job finished (lock) */
	struct jlist queue;		/* submitted jobs (lock) */
	bool stop;			/* lock */
	bool closing;			/* some source is closing (lock) */
	bool dead;			/* thread joined, multi gone (lock) */
	unsigned n_src;			/* http_src alive (lock) */

	/* Engine thread only. */
	struct jlist waiting;		/* new or backing off */
	struct jlist parked;		/* waiting for a credential */
	struct jlist active;		/* with an easy handle in multi */
	unsigned n_active;
	uint64_t rng;
};

struct http_src {
	struct http_engine *eng;
	char *url;			/* immutable */
	http_headers_fn hdr_fn;		/* set before the first request */
	void *hdr_arg;
	http_check_fn check_fn;		/* set before the first request */
	void *check_arg;
	int range_ignored;		/* __atomic */
	bool direct;			/* never through cfg.proxy; immutable */
	int retries;			/* < 0: cfg.retries; immutable */
	unsigned wake_gen;		/* __atomic; http_src_wake */
	unsigned inflight;		/* jobs submitted, not finished (eng->lock) */
	bool closing;			/* eng->lock */
};

/* The site proxy the requests of hs go through, or NULL. */
static const char *hs_proxy(const struct http_src *hs)
{
	return hs->direct ? NULL : hs->eng->cfg.proxy;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int src_curl_init(void)
{
	pthread_once(&curl_once, curl_init_once);
	return curl_init_rc == CURLE_OK ? 0 : -ENOMEM;
}

static void jlist_add(struct jlist *l, struct job *j)
{
	j->next = NULL;
	j->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static void jlist_del(struct jlist *l, struct job *j)
{
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		l->head = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	else
		l->tail = j->prev;
	j->prev = j->next = NULL;
}

/* xorshift64*: jitter only, no security use. */
static uint64_t eng_rand(struct http_engine *e)
{
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return e->rng * 2685821657736338717ULL;
}

/* Forgets the URLs of the current attempt's redirect chain. */
static void job_clear_hops(struct job *j)
{
	for (unsigned i = 0; i < j->hops && i < ENG_MAX_REDIRS; i++) {
		free(j->visited[i]);
		j->visited[i] = NULL;
	}
	j->hops = 0;
}

/* Header lines may carry a credential: wiped before they are freed. */
static void slist_wipe_free(struct curl_slist *l)
{
	for (struct curl_slist *n = l; n != NULL; n = n->next)
		if (n->data != NULL)
			OPENSSL_cleanse(n->data, strlen(n->data));
	curl_slist_free_all(l);
}

static void job_free(struct job *j)
{
	job_clear_hops(j);
	free(j->head);
	free(j->url);
	free(j->ebuf);
	slist_wipe_free(j->hdrs);
	free(j);
}

/* Detaches the easy handle of an active job (engine thread). */
static void job_stop_attempt(struct http_engine *e, struct job *j)
{
	if (j->easy == NULL)
		return;
	curl_multi_remove_handle(e->multi, j->easy);
	curl_easy_cleanup(j->easy);
	j->easy = NULL;
	slist_wipe_free(j->hdrs);
	j->hdrs = NULL;
	jlist_del(&e->active, j);
	e->n_active--;
}

/*
 * Ends a job: calls its callback once, then drops it from its source's
 * in-flight count. The job must be in no list (engine thread).
 */
static void job_finish(struct http_engine *e, struct job *j, int err,
		       const char *reason)
{
	struct http_src *hs = j->hs;

	if (j->kind == JOB_RANGE) {
		j->cb.on_done(j->cb.arg, err, reason);
	} else {
		struct size_wait *sw = j->sw;

		pthread_mutex_lock(&sw->lock);
		sw->err = err;
		sw->size = j->size;
		snprintf(sw->reason, sizeof(sw->reason), "%s",
			 reason ? reason : "");
		sw->done = true;
		pthread_cond_signal(&sw->cond);
		pthread_mutex_unlock(&sw->lock);
	}
	job_free(j);
	pthread_mutex_lock(&e->lock);
	hs->inflight--;
	if (hs->inflight == 0)
		pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

static void job_reset_response(struct job *j)
{
	j->status = 0;
	j->have_cr = false;
	j->have_cl = false;
	j->have_ra = false;
	j->checked = false;
	j->errbody = false;
	j->elen = 0;
	j->hcode[0] = '\0';
	j->skip = 0;
	j->head_len = 0;
	j->head_over = false;
}

static void job_fail(struct job *j, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void job_fail(struct job *j, int err, const char *fmt, ...)
{
	va_list ap;

	j->fail_err = err;
	va_start(ap, fmt);
	vsnprintf(j->what, sizeof(j->what), fmt, ap);
	va_end(ap);
}

static void job_retry(struct job *j, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void job_retry(struct job *j, int err, const char *fmt, ...)
{
	va_list ap;

	j->fail_retry = true;
	j->retry_err = err;
	va_start(ap, fmt);
	vsnprintf(j->what, sizeof(j->what), fmt, ap);
	va_end(ap);
}

/*
 * A status that is neither success nor a redirect being followed, in
 * words, with the service's error code when it sent one (DESIGN §5b):
 * "HTTP 403 Forbidden (SignatureDoesNotMatch)". Called once the error
 * body (or as much of it as is kept) is in.
 */
static void job_bad_status(struct job *j)
{
	const char *words = http_status_text(j->status);
	char code[72] = "", what[160];

	if (j->hcode[0] != '\0')
		snprintf(code, sizeof(code), "%s", j->hcode);
	else if (j->ebuf != NULL)
		http_error_code(j->ebuf, j->elen, code, sizeof(code));
	snprintf(what, sizeof(what), "HTTP %d%s%s%s%s%s", j->status,
		 words ? " " : "", words ? words : "", code[0] ? " (" : "",
		 code, code[0] ? ")" : "");
	if (j->status == 429 || (j->status >= 500 && j->status <= 599))
		job_retry(j, AF_ESOURCE, "%s", what);
	else
		job_fail(j, AF_ESOURCE, "%s", what);
}

/*
 * An error status: keep reading its body (bounded) for the error code;
 * job_done classifies it. A 416 needs no body: it is the size rule.
 */
static void job_error_status(struct job *j)
{
	if (j->status == 416) {
		job_fail(j, AF_ESIZE, "HTTP 416 (range not satisfiable)");
		return;
	}
	j->errbody = true;
}


/*
 * The source type's check of a response head (http_src_set_check), before
 * the engine acts on it: a failure ends the job without retry. Returns
 * false when it failed the job.
 */
static bool job_run_check(struct job *j)
{
	struct http_src *hs = j->hs;
	const char *url = j->url ? j->url : hs->url;
	struct http_resp r = {
		.url = url,
		.origin = src_url_same_origin(hs->url, url),
		.method = j->kind == JOB_HEAD ? "HEAD" : "GET",
		.status = j->status,
		.head = j->head ? j->head : "",
		.head_len = j->head_len,
	};
	char reason[sizeof(j->what)] = "";
	int err;

	if (j->head_over) {
		job_fail(j, AF_ESOURCE, "response headers longer than %d KiB",
			 ENG_HEAD_MAX / 1024);
		return false;
	}
	err = hs->check_fn(hs->check_arg, &r, reason, sizeof(reason));
	if (err == 0)
		return true;
	job_fail(j, err, "%s", reason[0] ? reason : "response refused");
	return false;
}

/* Keeps one header line of the current response for job_run_check. */
static void job_keep_header(struct job *j, const char *buf, size_t len)
{
	char *p;

	if (j->head_over)
		return;
	if (len > ENG_HEAD_MAX - j->head_len) {
		j->head_over = true;
		return;
	}
	if (j->head == NULL) {
		p = malloc(ENG_HEAD_MAX);
		if (p == NULL) {
			j->head_over = true;
			return;
		}
		j->head = p;
	}
	memcpy(j->head + j->head_len, buf, len);
	j->head_len += len;
}

/*
 * Decides what the current response means, once, before any of its body
 * is used (or at its end when it had none). Sets complete, restart,
 * fail_err or fail_retry, or leaves them all clear to go on reading.
 */
static void job_check(struct job *j)
{
	uint64_t want_first = j->off + j->done;
	uint64_t want_last = j->off + j->len - 1;

	j->checked = true;
	if (j->hs->check_fn != NULL && !job_run_check(j))
		return;
	if (j->status == 301 || j->status == 302 || j->status == 303 ||
	    j->status == 307 || j->status == 308) {
		j->redirect = true;
		return;
	}
	switch (j->kind) {
	case JOB_RANGE:
		if (j->status == 206) {
			if (!j->have_cr || j->cr.unsatisfied ||
			    (j->have_cl &&
			     j->cl != j->cr.last - j->cr.first + 1)) {
				job_fail(j, AF_ESOURCE, "bad Content-Range");
			} else if (j->cr.first == want_first &&
				   j->cr.last == want_last) {
				/* exactly what was asked */
			} else if (j->cr.total_known &&
				   j->cr.total <= want_last) {
				job_fail(j, AF_ESIZE,
					 "size mismatch (source has %" PRIu64
					 " bytes)", j->cr.total);
			} else {
				job_fail(j, AF_ESOURCE, "bad Content-Range");
			}
		} else if (j->status == 200) {
			__atomic_store_n(&j->hs->range_ignored, 1,
					 __ATOMIC_RELAXED);
			if (j->have_cl && j->cl <= want_last) {
				job_fail(j, AF_ESIZE,
					 "size mismatch (source has %" PRIu64
					 " bytes)", j->cl);
				break;
			}
			j->skip = want_first;
		} else {
			job_error_status(j);
		}
		break;
	case JOB_HEAD:
		if (j->status == 200 && j->have_cl) {
			j->size = j->cl;
			j->complete = true;
		} else if (j->status == 200 || j->status == 403 ||
			   j->status == 405 || j->status == 501 ||
			   (j->status >= 400 && j->status < 500 &&
			    j->hcode[0] == '\0')) {
			/*
			 * HEAD refused, or a client error without a body to
			 * say why: a one-byte GET gets the size or the
			 * service's error code (DESIGN §5b).
			 */
			j->restart = true;
		} else {
			job_error_status(j);
		}
		break;
	case JOB_PROBE:
		if (j->status == 206 && j->have_cr && !j->cr.unsatisfied &&
		    j->cr.total_known && j->cr.first == 0) {
			j->size = j->cr.total;
			j->complete = true;
		} else if (j->status == 206) {
			job_fail(j, AF_ESOURCE, "bad Content-Range");
		} else if (j->status == 200 && j->have_cl) {
			__atomic_store_n(&j->hs->range_ignored, 1,
					 __ATOMIC_RELAXED);
			j->size = j->cl;
			j->complete = true;
		} else if (j->status == 200) {
			job_fail(j, AF_ESOURCE, "no length in response");
		} else if (j->status == 416 && j->have_cr &&
			   j->cr.unsatisfied && j->cr.total_known) {
			/* bytes=0-0 of an empty object. */
			j->size = j->cr.total;
			j->complete = true;
		} else {
			job_error_status(j);
		}
		break;
	default:
		job_fail(j, AF_ESOURCE, "internal error");
		break;
	}
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	size_t len = size * n;
	const char *v;
	size_t vlen;
	int status;

	j->progress_ms = af_now_ms();
	if (http_parse_status_line(buf, len, &status) == 0) {
		job_reset_response(j);
		j->status = status;
		return len;
	}
	if (j->hs->check_fn != NULL)
		job_keep_header(j, buf, len);
	if (http_header_value(buf, len, "Content-Range", &v, &vlen)) {
		j->have_cr = http_parse_content_range(v, vlen, &j->cr) == 0;
	} else if (http_header_value(buf, len, "Content-Length", &v, &vlen)) {
		j->have_cl = http_parse_u64(v, vlen, &j->cl) == 0;
	} else if (http_header_value(buf, len, "Retry-After", &v, &vlen)) {
		j->have_ra = http_parse_retry_after(v, vlen, time(NULL),
			j->hs->eng->cfg.retry_after_cap_s, &j->ra_s) == 0;
	} else if (http_header_value(buf, len, "x-ms-error-code", &v, &vlen)) {
		if (!http_error_token(v, vlen, j->hcode, sizeof(j->hcode)))
			j->hcode[0] = '\0';
	}
	return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	struct http_engine *e = j->hs->eng;
	size_t len = size * n, give;
	const char *p = buf;

	j->progress_ms = af_now_ms();
	if (!j->checked) {
		job_check(j);
		if (j->fail_err || j->fail_retry || j->restart)
			return CURL_WRITEFUNC_ERROR;
	}
	if (j->redirect)
		return len;			/* the body of a 3xx */
	if (j->errbody) {
		size_t take;

		if (j->ebuf == NULL && (j->ebuf = malloc(ENG_ERRBODY_MAX)) == NULL)
			return CURL_WRITEFUNC_ERROR;
		take = ENG_ERRBODY_MAX - j->elen < len ? ENG_ERRBODY_MAX - j->elen
						       : len;
		memcpy(j->ebuf + j->elen, buf, take);
		j->elen += take;
		/* Enough of an error body: stop reading it. */
		return j->elen == ENG_ERRBODY_MAX ? CURL_WRITEFUNC_ERROR : len;
	}
	if (j->complete)
		return CURL_WRITEFUNC_ERROR;	/* size probe: enough */
	if (j->kind != JOB_RANGE)
		return len;			/* the byte of bytes=0-0 */
	if (j->skip > 0) {
		size_t drop = j->skip < len ? (size_t)j->skip : len;

		j->skip -= drop;
		p += drop;
		len -= drop;
	}
	for (;;) {
		give = j->len - j->done < len ? (size_t)(j->len - j->done) :
		       len;
		if (give < len && j->status == 206) {
			job_fail(j, AF_ESOURCE, "body longer than Content-Range");
			return CURL_WRITEFUNC_ERROR;
		}
		if (give > 0) {
			int err = j->cb.on_data(j->cb.arg, j->off + j->done, p,
						give);

			if (err != 0) {
				j->fail_err = err;
				j->what[0] = '\0';
				return CURL_WRITEFUNC_ERROR;
			}
			j->done += give;
			p += give;
			len -= give;
			__atomic_fetch_add(e->cfg.stat_bytes, give,
					   __ATOMIC_RELAXED);
		}
		if (j->done < j->len)
			break;
		/*
		 * The range is delivered. A 200 goes on past it: the caller
		 * may take what follows from this same response (a source
		 * read once, sequentially, DESIGN §5b), or it stops here.
		 */
		if (j->status == 200 && j->cb.more != NULL) {
			uint64_t more = j->cb.more(j->cb.arg);

			if (more > 0) {
				j->len += more;
				if (len > 0)
					continue;
				break;
			}
		}
		j->complete = true;
		if (j->status == 200)
			return CURL_WRITEFUNC_ERROR;
		break;
	}
	return size * n;
}

/*
 * The stall detector: no byte for low_speed_timeout fails the attempt
 * (issue 3 §5). curl's own low-speed check averages over a few seconds,
 * so after a burst it would fire late; it stays on as a backstop. With a
 * low-speed limit set, curl runs this at least once a second.
 */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct job *j = arg;
	const struct http_engine_cfg *c = &j->hs->eng->cfg;
	uint64_t limit = c->low_speed_timeout_ms;

	/* Until the first response byte, connecting has its own timeout. */
	if (j->status == 0)
		limit += c->connect_timeout_ms;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (limit > 0 && af_now_ms() - j->progress_ms > (long long)limit) {
		j->stalled = true;
		return 1;
	}
	return 0;
}

/* Scheme, host and port of both URLs are equal (RFC 6454 origin). */
bool src_url_same_origin(const char *a, const char *b)
{
	static const CURLUPart parts[] = { CURLUPART_SCHEME, CURLUPART_HOST,
					   CURLUPART_PORT };
	CURLU *ua = curl_url(), *ub = curl_url();
	bool same = false;

	if (a == b)
		same = true;
	if (same || ua == NULL || ub == NULL ||
	    curl_url_set(ua, CURLUPART_URL, a, 0) != CURLUE_OK ||
	    curl_url_set(ub, CURLUPART_URL, b, 0) != CURLUE_OK)
		goto out;
	same = true;
	for (size_t i = 0; i < 3 && same; i++) {
		char *pa = NULL, *pb = NULL;

		if (curl_url_get(ua, parts[i], &pa, CURLU_DEFAULT_PORT) !=
		    CURLUE_OK ||
		    curl_url_get(ub, parts[i], &pb, CURLU_DEFAULT_PORT) !=
		    CURLUE_OK || strcasecmp(pa, pb) != 0)
			same = false;
		curl_free(pa);
		curl_free(pb);
	}
out:
	curl_url_cleanup(ua);
	curl_url_cleanup(ub);
	return same;
}

/* url with query appended ('?' or '&'), newly allocated. */
static char *url_with_query(const char *url, const char *query)
{
	size_t a = strlen(url), b = strlen(query);
	char *u = malloc(a + b + 2);

	if (u == NULL)
		return NULL;
	memcpy(u, url, a);
	u[a] = strchr(url, '?') != NULL ? '&' : '?';
	memcpy(u + a + 1, query, b + 1);
	return u;
}

static void wipe_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/*
 * Creates and adds the easy handle of the next attempt (engine thread).
 * Returns 0, HTTP_HOOK_WAIT (the header hook has no credential in hand
 * yet: nothing was started), or a negative error with reason filled.
 */
static int job_start_attempt(struct http_engine *e, struct job *j,
			     char *reason, size_t reasonlen)
{
	struct http_src *hs = j->hs;
	const struct http_engine_cfg *c = &e->cfg;
	const char *url = j->url ? j->url : hs->url;
	struct http_req rq = { 0 };
	char *full_url = NULL;
	long stall_s;
	CURL *h;
	int err;

	j->complete = j->restart = j->fail_retry = j->stalled = false;
	j->redirect = false;
	j->progress_ms = af_now_ms();
	j->fail_err = 0;
	j->what[0] = '\0';
	job_reset_response(j);
	switch (j->kind) {
	case JOB_RANGE:
		snprintf(j->range, sizeof(j->range), "%" PRIu64 "-%" PRIu64,
			 j->off + j->done, j->off + j->len - 1);
		break;
	case JOB_PROBE:
		snprintf(j->range, sizeof(j->range), "0-0");
		break;
	default:
		j->range[0] = '\0';
		break;
	}
	if (hs->hdr_fn != NULL && src_url_same_origin(hs->url, url)) {
		char range[64];

		snprintf(range, sizeof(range), "bytes=%s", j->range);
		rq.url = url;
		rq.method = j->kind == JOB_HEAD ? "HEAD" : "GET";
		rq.range = j->range[0] ? range : NULL;
		/* Read before the hook: a wake after it is not lost. */
		j->park_gen = __atomic_load_n(&hs->wake_gen, __ATOMIC_ACQUIRE);
		err = hs->hdr_fn(hs->hdr_arg, &rq, reason, reasonlen);
		if (err == 0 && rq.url_query != NULL &&
		    (full_url = url_with_query(url, rq.url_query)) == NULL) {
			src_reason(reason, reasonlen, "out of memory");
			err = -ENOMEM;
		}
		wipe_free(rq.url_query);
		if (err != 0) {
			slist_wipe_free(rq.hdrs);
			return err;
		}
		j->hdrs = rq.hdrs;
	}
	j->park_until_ms = 0;
	h = curl_easy_init();
	if (h == NULL) {
		src_reason(reason, reasonlen, "out of memory");
		err = -ENOMEM;
		goto out_cleanup;
	}
	stall_s = (long)((c->low_speed_timeout_ms + 999) / 1000);
	if (stall_s < 1)
		stall_s = 1;
	/* curl copies the URL: ours (it may hold a SAS) is wiped below. */
	curl_easy_setopt(h, CURLOPT_URL, full_url ? full_url : url);
	/*
	 * What policy and the credential scopes checked is what is asked
	 * for: curl must not collapse "/a/../b" (DESIGN §2, §5b).
	 */
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_PRIVATE, j);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, ENG_USER_AGENT);
	/*
	 * Redirects are followed here, not by curl (job_done), so that the
	 * header hook runs for every hop and only for the origin: curl would
	 * keep every custom header but Authorization on a cross-host hop.
	 */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
	/* TLS is always verified (DESIGN §2). */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	/*
	 * Only the configured proxy; "" ignores the environment's. Mirrors
	 * are reached directly (DESIGN §11).
	 */
	curl_easy_setopt(h, CURLOPT_PROXY, hs_proxy(hs) ? hs_proxy(hs) : "");
	/* Every transfer has timeouts (DESIGN §7): connect, then stall. */
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall_s);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, j);
	/* Connection reuse. */
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, ENG_BUFFER_SIZE);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
	if (j->range[0] != '\0')
		curl_easy_setopt(h, CURLOPT_RANGE, j->range);
	if (j->kind == JOB_HEAD)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	if (j->hdrs != NULL)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, j->hdrs);
	if (curl_multi_add_handle(e->multi, h) != CURLM_OK) {
		err = -ENOMEM;
		src_reason(reason, reasonlen, "cannot start transfer");
		goto out_cleanup;
	}
	wipe_free(full_url);
	j->easy = h;
	j->attempt++;
	jlist_add(&e->active, j);
	e->n_active++;
	__atomic_fetch_add(c->stat_requests, 1, __ATOMIC_RELAXED);
	return 0;

out_cleanup:
	wipe_free(full_url);
	slist_wipe_free(j->hdrs);
	j->hdrs = NULL;
	curl_easy_cleanup(h);
	return err;
}

/* Full jitter (issue 3): uniform in [0, min(cap, base * 2^(n-1))]. */
static long long backoff_ms(struct http_engine *e, unsigned attempt)
{
	uint64_t ceil = e->cfg.backoff_base_ms;

	for (unsigned i = 1; i < attempt && ceil < e->cfg.backoff_cap_ms; i++)
		ceil *= 2;
	if (ceil > e->cfg.backoff_cap_ms)
		ceil = e->cfg.backoff_cap_ms;
	return (long long)(eng_rand(e) % (ceil + 1));
}

/*
 * A request through the site proxy that could not reach the proxy itself
 * (with an HTTP proxy, curl connects to nothing else): the reason names
 * the proxy, so that "the proxy is down" reads as such in the audit log
 * (issue 14: a clear EIO, no silent direct fallback).
 */
static bool job_proxy_error(struct job *j, CURLcode rc, bool connected)
{
	const char *proxy = hs_proxy(j->hs);
	char shown[96];
	const char *what;

	if (proxy == NULL)
		return false;
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		what = "connection refused";
		break;
	case CURLE_COULDNT_RESOLVE_PROXY:
		what = "cannot resolve host";
		break;
	case CURLE_OPERATION_TIMEDOUT:
		if (connected)
			return false;
		what = "connect timed out";
		break;
	case CURLE_PROXY:
		what = "proxy handshake failed";
		break;
	default:
		return false;
	}
	pol_uri_redact(proxy, shown, sizeof(shown));
	job_retry(j, rc == CURLE_OPERATION_TIMEDOUT ? AF_ETIMEDOUT : AF_ESOURCE,
		  "proxy %s: %s", shown, what);
	return true;
}

/* Classifies a transfer error that the callbacks did not explain. */
static void job_curl_error(struct job *j, CURLcode rc)
{
	const struct http_engine_cfg *c = &j->hs->eng->cfg;
	curl_off_t connect_us = 0;

	if (rc == CURLE_ABORTED_BY_CALLBACK && j->stalled)
		rc = CURLE_OPERATION_TIMEDOUT;
	if (rc == CURLE_OPERATION_TIMEDOUT)
		curl_easy_getinfo(j->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
	if (job_proxy_error(j, rc, connect_us != 0))
		return;
	switch (rc) {
	case CURLE_TOO_MANY_REDIRECTS:
		job_fail(j, AF_ESOURCE, "redirect loop");
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
		job_fail(j, AF_ESOURCE, "unsupported scheme");
		break;
	case CURLE_OPERATION_TIMEDOUT:
		if (connect_us == 0)
			job_retry(j, AF_ETIMEDOUT, "connect timed out");
		else
			job_retry(j, AF_ETIMEDOUT, "stalled for %u s",
				  (unsigned)((c->low_speed_timeout_ms + 999) /
					     1000));
		break;
	case CURLE_COULDNT_CONNECT:
		job_retry(j, AF_ESOURCE, "connection refused");
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		job_retry(j, AF_ESOURCE, "cannot resolve host");
		break;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
		job_retry(j, AF_ESOURCE, "connection reset");
		break;
	case CURLE_PARTIAL_FILE:
		job_retry(j, AF_ESOURCE, "body shorter than announced");
		break;
	case CURLE_SSL_CONNECT_ERROR:
		job_retry(j, AF_ESOURCE, "TLS handshake failed");
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		job_fail(j, AF_ESOURCE, "TLS verification failed");
		break;
	default:
		/* curl's messages are generic: no URL, no secret. */
		job_fail(j, AF_ESOURCE, "%s", curl_easy_strerror(rc));
		break;
	}
}

/*
 * The redirect rules of DESIGN §5b for the hop from the current URL to
 * loc: a Location at all, at most ENG_MAX_REDIRS hops, no URL of this
 * chain twice (a loop), http(s) only and never from https down to http.
 * Sets *next (owned by the caller) or fails the job, without retry.
 * Credential headers are the hook's, called only for the source's origin
 * (job_start_attempt), so a hop to another host carries none.
 */
static void job_follow(struct job *j, const char *loc, char **next)
{
	const char *cur = j->url ? j->url : j->hs->url;
	enum http_redirect_rule rule;

	if (loc == NULL) {
		job_fail(j, AF_ESOURCE, "HTTP %d without Location", j->status);
		return;
	}
	if (j->hops >= ENG_MAX_REDIRS) {
		job_fail(j, AF_ESOURCE, "more than %d redirects",
			 ENG_MAX_REDIRS);
		return;
	}
	rule = http_redirect_check(cur, loc);
	if (rule != HTTP_REDIRECT_OK) {
		job_fail(j, AF_ESOURCE, "%s", http_redirect_refusal(rule));
		return;
	}
	if (strcmp(loc, j->hs->url) == 0) {
		job_fail(j, AF_ESOURCE, "redirect loop (back to the source URL)");
		return;
	}
	for (unsigned i = 0; i < j->hops; i++) {
		if (strcmp(loc, j->visited[i]) == 0) {
			job_fail(j, AF_ESOURCE,
				 "redirect loop (back to hop %u of %u)", i + 1,
				 j->hops);
			return;
		}
	}
	j->visited[j->hops] = strdup(loc);
	*next = strdup(loc);
	if (j->visited[j->hops] == NULL || *next == NULL) {
		free(j->visited[j->hops]);
		j->visited[j->hops] = NULL;
		free(*next);
		*next = NULL;
		job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	j->hops++;
}

/* A transfer of j ended with rc (engine thread). */
static void job_done(struct http_engine *e, struct job *j, CURLcode rc)
{
	char reason[sizeof(j->what) + 32], *next_url = NULL;
	unsigned retries;
	long long delay;

	if (!j->fail_err && !j->fail_retry && !j->complete && !j->restart &&
	    !j->redirect) {
		if (rc == CURLE_OK && !j->checked)
			job_check(j);
		if (j->errbody) {
			/* Whatever ended the error body, the status decides. */
			job_bad_status(j);
		} else if (rc == CURLE_OK) {
			if (!j->fail_err && !j->fail_retry && !j->complete &&
			    !j->restart && !j->redirect) {
				/* A response that ended before the range did. */
				if (j->kind == JOB_RANGE && j->status == 200)
					job_fail(j, AF_ESIZE, "size mismatch");
				else
					job_retry(j, AF_ESOURCE,
						  "body shorter than announced");
			}
		} else {
			job_curl_error(j, rc);
		}
	}
	if (j->redirect && rc == CURLE_OK && !j->fail_err) {
		char *loc = NULL;

		curl_easy_getinfo(j->easy, CURLINFO_REDIRECT_URL, &loc);
		job_follow(j, loc, &next_url);
	} else if (j->redirect && !j->fail_err && !j->fail_retry) {
		job_curl_error(j, rc);
	}
	job_stop_attempt(e, j);
	if (j->fail_err) {
		job_finish(e, j, j->fail_err, j->what[0] ? j->what : NULL);
		return;
	}
	if (j->complete) {
		job_finish(e, j, 0, NULL);
		return;
	}
	if (next_url != NULL) {
		/* A hop is not an attempt: retries stay for failures. */
		free(j->url);
		j->url = next_url;
		j->attempt--;
		j->start_at_ms = 0;
		jlist_add(&e->waiting, j);
		return;
	}
	/* A new attempt starts over at the source URL. */
	free(j->url);
	j->url = NULL;
	job_clear_hops(j);
	if (j->restart) {
		j->kind = JOB_PROBE;
		j->attempt = 0;
		j->start_at_ms = 0;
		jlist_add(&e->waiting, j);
		return;
	}
	/* fail_retry */
	retries = j->hs->retries >= 0 ? (unsigned)j->hs->retries :
		  e->cfg.retries;
	if (j->attempt > retries) {
		snprintf(reason, sizeof(reason), "%s after %u attempt%s",
			 j->what, j->attempt, j->attempt == 1 ? "" : "s");
		job_finish(e, j, j->retry_err, reason);
		return;
	}
	delay = backoff_ms(e, j->attempt);
	if (j->have_ra && (long long)j->ra_s * 1000 > delay)
		delay = (long long)j->ra_s * 1000;
	j->start_at_ms = af_now_ms() + delay;
	__atomic_fetch_add(e->cfg.stat_retries, 1, __ATOMIC_RELAXED);
	jlist_add(&e->waiting, j);
}

/* Ends every job of a closing source with -ECANCELED (engine thread). */
static void eng_cancel_closing(struct http_engine *e, bool all)
{
	struct jlist *lists[] = { &e->waiting, &e->active, &e->parked };

	for (size_t i = 0; i < 3; i++) {
		struct job *j = lists[i]->head, *next;

		for (; j != NULL; j = next) {
			bool closing;

			next = j->next;
			pthread_mutex_lock(&e->lock);
			closing = all || j->hs->closing;
			pthread_mutex_unlock(&e->lock);
			if (!closing)
				continue;
			if (j->easy != NULL)
				job_stop_attempt(e, j);
			else
				jlist_del(lists[i], j);
			job_finish(e, j, -ECANCELED, "cancelled");
		}
	}
}

/* Starts due waiting jobs in FIFO order; returns ms until the next one. */
static long eng_start_due(struct http_engine *e)
{
	unsigned max_active = e->cfg.connections * ENG_ACTIVE_PER_CONN;
	long long now = af_now_ms();
	long wait = ENG_POLL_MAX_MS;
	struct job *j, *next;

	for (j = e->waiting.head; j != NULL; j = next) {
		char reason[400] = "";
		int err;

		next = j->next;
		if (j->start_at_ms > now) {
			if (j->start_at_ms - now < wait)
				wait = (long)(j->start_at_ms - now);
			continue;
		}
		if (e->n_active >= max_active)
			continue;
		jlist_del(&e->waiting, j);
		err = job_start_attempt(e, j, reason, sizeof(reason));
		if (err == HTTP_HOOK_WAIT) {
			if (j->park_until_ms == 0)
				j->park_until_ms = now + (long long)
					e->cfg.park_max_ms;
			jlist_add(&e->parked, j);
		} else if (err != 0) {
			job_finish(e, j, err, reason[0] ? reason : NULL);
		}
	}
	return wait;
}

/*
 * Parked jobs whose source was woken go back to the waiting list; those
 * parked too long fail. Returns ms until the next deadline (engine
 * thread).
 */
static long eng_unpark(struct http_engine *e, long wait)
{
	long long now = af_now_ms();
	struct job *j, *next;

	for (j = e->parked.head; j != NULL; j = next) {
		next = j->next;
		if (__atomic_load_n(&j->hs->wake_gen, __ATOMIC_ACQUIRE) !=
		    j->park_gen) {
			jlist_del(&e->parked, j);
			j->start_at_ms = 0;
			jlist_add(&e->waiting, j);
		} else if (j->park_until_ms <= now) {
			char reason[96];

			jlist_del(&e->parked, j);
			snprintf(reason, sizeof(reason),
				 "no credential within %llu s",
				 (unsigned long long)(e->cfg.park_max_ms / 1000));
			job_finish(e, j, AF_ECRED, reason);
		} else if (j->park_until_ms - now < wait) {
			wait = (long)(j->park_until_ms - now);
		}
	}
	return wait;
}

static void *eng_main(void *arg)
{
	struct http_engine *e = arg;
	struct jlist q;
	bool closing;
	int running;

	pthread_mutex_lock(&e->lock);
	while (!e->stop) {
		q = e->queue;
		e->queue.head = e->queue.tail = NULL;
		closing = e->closing;
		e->closing = false;
		pthread_mutex_unlock(&e->lock);

		while (q.head != NULL) {
			struct job *j = q.head;

			jlist_del(&q, j);
			jlist_add(&e->waiting, j);
		}
		if (closing)
			eng_cancel_closing(e, false);
		eng_unpark(e, ENG_POLL_MAX_MS);
		long wait = eng_start_due(e);

		curl_multi_perform(e->multi, &running);
		for (;;) {
			int left;
			CURLMsg *m = curl_multi_info_read(e->multi, &left);
			struct job *j = NULL;

			if (m == NULL)
				break;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
					  (char **)&j);
			job_done(e, j, m->data.result);
		}
		/* A finished job may have freed a slot or be due now. */
		wait = eng_start_due(e);
		wait = eng_unpark(e, wait);
		curl_multi_poll(e->multi, NULL, 0, (int)wait, NULL);
		pthread_mutex_lock(&e->lock);
	}
	/* Stopping: everything still queued or running is cancelled. */
	q = e->queue;
	e->queue.head = e->queue.tail = NULL;
	pthread_mutex_unlock(&e->lock);
	while (q.head != NULL) {
		struct job *j = q.head;

		jlist_del(&q, j);
		jlist_add(&e->waiting, j);
	}
	eng_cancel_closing(e, true);
	return NULL;
}

int http_engine_new(const struct http_engine_cfg *cfg,
		    struct http_engine **out)
{
	struct http_engine *e;
	int err;

	if (src_curl_init() < 0)
		return -ENOMEM;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	e->cfg = *cfg;
	if (e->cfg.connections == 0)
		e->cfg.connections = 1;
	if (e->cfg.park_max_ms == 0)
		e->cfg.park_max_ms = 60 * 1000;
	if (getrandom(&e->rng, sizeof(e->rng), 0) != sizeof(e->rng) ||
	    e->rng == 0)
		e->rng = (uint64_t)af_wall_ms() | 1;
	e->multi = curl_multi_init();
	if (e->multi == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	curl_multi_setopt(e->multi, CURLMOPT_PIPELINING,
			  (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)e->cfg.connections);
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	err = -pthread_create(&e->thread, NULL, eng_main, e);
	if (err != 0)
		goto out_multi;
	*out = e;
	return 0;

out_multi:
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->lock);
	curl_multi_cleanup(e->multi);
out_free:
	free(e);
	return err;
}

static void eng_destroy(struct http_engine *e)
{
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

/*
 * Sources may outlive the engine (their ranges were cancelled): the last
 * of engine and sources frees the engine's memory.
 */
void http_engine_free(struct http_engine *e)
{
	CURLM *multi;
	bool last;

	if (e == NULL)
		return;
	pthread_mutex_lock(&e->lock);
	e->stop = true;
	pthread_mutex_unlock(&e->lock);
	curl_multi_wakeup(e->multi);
	pthread_join(e->thread, NULL);
	/* Dead first: http_src_wake/free never touch a multi being freed. */
	pthread_mutex_lock(&e->lock);
	multi = e->multi;
	e->multi = NULL;
	e->dead = true;
	last = e->n_src == 0;
	pthread_mutex_unlock(&e->lock);
	curl_multi_cleanup(multi);
	if (last)
		eng_destroy(e);
}

int http_src_new(struct http_engine *e, const char *url,
		 struct http_src **out)
{
	struct http_src *hs;

	hs = calloc(1, sizeof(*hs));
	if (hs == NULL)
		return -ENOMEM;
	hs->eng = e;
	hs->retries = -1;
	hs->url = strdup(url);
	if (hs->url == NULL) {
		free(hs);
		return -ENOMEM;
	}
	pthread_mutex_lock(&e->lock);
	e->n_src++;
	pthread_mutex_unlock(&e->lock);
	*out = hs;
	return 0;
}

void http_src_free(struct http_src *hs)
{
	struct http_engine *e;
	bool last;

	if (hs == NULL)
		return;
	e = hs->eng;
	pthread_mutex_lock(&e->lock);
	hs->closing = true;
	e->closing = true;
	/* A dead engine cancelled everything before its thread ended. */
	while (hs->inflight > 0 && !e->dead) {
		curl_multi_wakeup(e->multi);
		pthread_cond_wait(&e->cond, &e->lock);
	}
	e->n_src--;
	last = e->dead && e->n_src == 0;
	pthread_mutex_unlock(&e->lock);
	if (last)
		eng_destroy(e);
	free(hs->url);
	free(hs);
}

void http_src_set_headers(struct http_src *hs, http_headers_fn fn, void *arg)
{
	hs->hdr_fn = fn;
	hs->hdr_arg = arg;
}

void http_src_set_check(struct http_src *hs, http_check_fn fn, void *arg)
{
	hs->check_fn = fn;
	hs->check_arg = arg;
}

void http_src_set_direct(struct http_src *hs, int retries)
{
	hs->direct = true;
	hs->retries = retries;
}

void http_src_wake(struct http_src *hs)
{
	struct http_engine *e = hs->eng;

	__atomic_fetch_add(&hs->wake_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&e->lock);
	if (!e->dead)
		curl_multi_wakeup(e->multi);
	pthread_mutex_unlock(&e->lock);
}

bool http_src_range_ignored(const struct http_src *hs)
{
	return __atomic_load_n(&hs->range_ignored, __ATOMIC_RELAXED) != 0;
}

/* Queues j (owned by the engine from now on) or refuses it. */
static int eng_submit(struct http_src *hs, struct job *j)
{
	struct http_engine *e = hs->eng;

	pthread_mutex_lock(&e->lock);
	if (hs->closing || e->stop) {
		pthread_mutex_unlock(&e->lock);
		return -ECANCELED;
	}
	hs->inflight++;
	jlist_add(&e->queue, j);
	/* Under the lock: the multi handle lives until the engine is dead. */
	curl_multi_wakeup(e->multi);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int http_src_read_range(struct http_src *hs, uint64_t off, uint64_t len,
			const struct src_range_cb *cb)
{
	struct job *j;
	int err;

	if (len == 0) {
		cb->on_done(cb->arg, 0, NULL);
		return 0;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	j->hs = hs;
	j->kind = JOB_RANGE;
	j->off = off;
	j->len = len;
	j->cb = *cb;
	err = eng_submit(hs, j);
	if (err != 0)
		job_free(j);
	return err;
}

int http_src_size(struct http_src *hs, uint64_t *size, char *reason,
		  size_t reasonlen)
{
	struct size_wait sw = { .done = false };
	struct job *j;
	int err;

	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	j->hs = hs;
	j->kind = JOB_HEAD;
	j->sw = &sw;
	pthread_mutex_init(&sw.lock, NULL);
	pthread_cond_init(&sw.cond, NULL);
	err = eng_submit(hs, j);
	if (err != 0) {
		job_free(j);
		src_reason(reason, reasonlen, "source closing");
		goto out_destroy;
	}
	pthread_mutex_lock(&sw.lock);
	while (!sw.done)
		pthread_cond_wait(&sw.cond, &sw.lock);
	pthread_mutex_unlock(&sw.lock);
	err = sw.err;
	if (err == 0)
		*size = sw.size;
	else
		src_reason(reason, reasonlen, "%s", sw.reason);
out_destroy:
	pthread_cond_destroy(&sw.cond);
	pthread_mutex_destroy(&sw.lock);
	return err;
}
