/*
 * http_int.h - private to sources/: the HTTP engine (one libcurl multi
 * handle driven by one thread, http_engine.c) and the pure parsers of
 * response headers it relies on (http_parse.c, fuzzed by
 * tests/fuzz/fuzz_content_range.c). Nothing outside sources/ and its tests
 * includes this header.
 */
#ifndef SRC_HTTP_INT_H
#define SRC_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"

/*
 * Parsers. Each takes a header value as (pointer, length), not
 * NUL-terminated, never reads past it, and has no side effect besides its
 * out-parameters (which it leaves untouched on failure). Returns 0 or
 * AF_EPARSE.
 */

/* A parsed Content-Range (RFC 9110 §14.4). */
struct http_content_range {
	bool unsatisfied;	/* "bytes * /T" (416): first/last unset */
	uint64_t first;		/* first byte position */
	uint64_t last;		/* last byte position, inclusive, >= first */
	bool total_known;	/* false for "bytes A-B/ *" */
	uint64_t total;		/* complete length; last < total when known */
};

/*
 * Content-Range: "bytes A-B/T", "bytes A-B/ *" or "bytes * /T" (written
 * without the space). Optional whitespace around the value is ignored; the
 * unit is case-insensitive; anything else (a missing part, a sign, a number
 * beyond 2^63, B < A, B >= T) is AF_EPARSE.
 */
int http_parse_content_range(const char *v, size_t len,
			     struct http_content_range *out);

/*
 * Retry-After (RFC 9110 §10.2.3): delay-seconds or an IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"). now_s is the current wall clock in
 * epoch seconds; a date in the past gives 0. *secs is capped at max_s.
 */
int http_parse_retry_after(const char *v, size_t len, long long now_s,
			   unsigned max_s, unsigned *secs);

/* A decimal number without sign (Content-Length), below 2^63. */
int http_parse_u64(const char *v, size_t len, uint64_t *out);

/*
 * A status line "HTTP/1.1 206 Partial Content" or "HTTP/2 200": sets the
 * three-digit status code.
 */
int http_parse_status_line(const char *line, size_t len, int *status);

/*
 * When the header line "Name: value\r\n" has the given name
 * (case-insensitive), returns true and the value with surrounding
 * whitespace and the line end removed.
 */
bool http_header_value(const char *line, size_t len, const char *name,
		       const char **val, size_t *vlen);

/*
 * The schemes a redirect may lead to from url (DESIGN §2, §5): "https" for
 * an https:// URL, "http,https" for an http:// one, NULL for anything else.
 */
const char *http_redirect_protocols(const char *url);
/*
 * The scheme rule of DESIGN §5b for a redirect from the URL from (the one
 * that answered 3xx) to the absolute URL loc: https always; http only from
 * an http URL (never down from https); any other scheme never.
 */
enum http_redirect_rule {
	HTTP_REDIRECT_OK = 0,
	HTTP_REDIRECT_SCHEME,		/* not http(s), or from not http(s) */
	HTTP_REDIRECT_DOWNGRADE,	/* https -> http */
};
enum http_redirect_rule http_redirect_check(const char *from,
					    const char *loc);
/* The reason for a refusal, in words for the audit log (static). */
const char *http_redirect_refusal(enum http_redirect_rule rule);
/* http_redirect_check(from, loc) == HTTP_REDIRECT_OK. */
bool http_redirect_allowed(const char *from, const char *loc);

/*
 * The value of the first header line called name (case-insensitive) in
 * head, a block of "Name: value\r\n" lines as received (head_len bytes,
 * not NUL-terminated). Returns true and the value trimmed of surrounding
 * whitespace. Lines without a colon are skipped; never reads past
 * head + head_len.
 */
bool http_head_find(const char *head, size_t head_len, const char *name,
		    const char **val, size_t *vlen);

/*
 * The error code a service put in an error body (DESIGN §5b: the audit
 * reason carries it): S3's and Azure's <Code>…</Code>, GCS's JSON
 * "reason" (or "status"), an OAuth "error". Only a token of 1..64
 * characters [A-Za-z0-9._-] is taken, never the message around it (S3's
 * SignatureDoesNotMatch body echoes the string to sign). Returns true and
 * the code in out.
 */
bool http_error_code(const char *body, size_t len, char *out, size_t outlen);
/* Copies v into out when it is such a token (an x-ms-error-code value). */
bool http_error_token(const char *v, size_t len, char *out, size_t outlen);
/* "Unauthorized" for 401 and the like; NULL for a status without words. */
const char *http_status_text(int status);

/* The engine. */
struct http_engine;

struct http_engine_cfg {
	unsigned connections;		/* per host; also bounds active transfers */
	unsigned retries;		/* extra attempts after the first */
	uint64_t connect_timeout_ms;
	uint64_t low_speed_timeout_ms;	/* no byte for this long = stall */
	unsigned backoff_base_ms;	/* first backoff ceiling (full jitter) */
	unsigned backoff_cap_ms;	/* largest backoff ceiling */
	unsigned retry_after_cap_s;	/* Retry-After honoured up to this */
	const char *ca_file;		/* NULL: system store */
	const char *proxy;		/* NULL: none (curl's env rules off) */
	uint64_t park_max_ms;		/* longest wait for a credential */
	uint64_t *stat_requests;	/* counters, updated atomically */
	uint64_t *stat_retries;
	uint64_t *stat_bytes;
};

/*
 * Starts the engine thread. cfg's strings must outlive the engine. Returns
 * 0 or -errno.
 */
int http_engine_new(const struct http_engine_cfg *cfg,
		    struct http_engine **out);
/* Cancels everything pending (on_done(-ECANCELED)) and joins the thread. */
void http_engine_free(struct http_engine *e);

/*
 * One attempt of a request as the header hook sees it: the seam for
 * credentialed source types (bearer tokens, SigV4 signing, an Azure SAS).
 */
struct curl_slist;
struct http_req {
	const char *url;	/* this attempt's (a same-origin hop's) URL */
	const char *method;	/* "GET" or "HEAD" */
	const char *range;	/* the Range header's value, or NULL */
	/* Out: "Name: value" lines to send (curl_slist_append). */
	struct curl_slist *hdrs;
	/*
	 * Out: a query to append to url for this attempt only (a SAS),
	 * malloc'd; the engine wipes and frees it. Never shown anywhere.
	 */
	char *url_query;
};

/* The hook's answer: the credential is not in hand yet (see below). */
#define HTTP_HOOK_WAIT	1

/*
 * Called on the engine thread before each attempt and each same-origin
 * redirect hop. It must not block: it may only use what it already holds.
 * Returns 0 (send), HTTP_HOOK_WAIT (nothing to send with yet: the job is
 * parked without cost until http_src_wake(), at most park_max_ms, then
 * fails with AF_ECRED), or a negative error that fails the request
 * without retry (reason filled, no secrets). The engine follows redirects
 * itself (DESIGN §5b: at most 5, no loop, https only or http too from an
 * http URL, never https to http) and calls the hook only for URLs of the
 * source URL's origin (scheme, host, port): a hop to another host carries
 * no credential at all (DESIGN §5). Every header line the hook added is
 * wiped when the attempt ends.
 */
typedef int (*http_headers_fn)(void *arg, struct http_req *rq, char *reason,
			       size_t reasonlen);

/*
 * One response head as a source type's check sees it (http_src_set_check):
 * valid only during the call.
 */
struct http_resp {
	const char *url;	/* the URL that answered (may carry a query) */
	bool origin;		/* url has the source URL's origin */
	const char *method;	/* "GET" or "HEAD" */
	int status;
	const char *head;	/* header lines as received, not NUL-ended */
	size_t head_len;
};

/*
 * A source type's check of every response head (redirects included),
 * called on the engine thread once the head is complete and before the
 * engine acts on it. Returns 0 to go on, or a negative error that fails
 * the request without retry, with the reason in words (no secrets: the
 * audit log shows it).
 */
typedef int (*http_check_fn)(void *arg, const struct http_resp *resp,
			     char *reason, size_t reasonlen);

/* One remote object served by the engine (per struct src). */
struct http_src;

/* Copies url. Returns 0 or -ENOMEM. */
int http_src_new(struct http_engine *e, const char *url,
		 struct http_src **out);
/*
 * Cancels the ranges of hs still in flight, waits until their on_done ran,
 * and frees hs. Must not be called from an on_data/on_done callback.
 */
void http_src_free(struct http_src *hs);
/* Installs the header hook (before the first request). */
void http_src_set_headers(struct http_src *hs, http_headers_fn fn, void *arg);
/* Installs the response check (before the first request). */
void http_src_set_check(struct http_src *hs, http_check_fn fn, void *arg);
/*
 * Makes hs reach its server directly, never through the site proxy, and
 * gives up after retries extra attempts (not [fetch] retries): the seam
 * for mirrors (DESIGN §11), whose failover to the next mirror or the
 * source is the real retry. Before the first request.
 */
void http_src_set_direct(struct http_src *hs, int retries);
/*
 * Retries the jobs of hs parked by HTTP_HOOK_WAIT (their hook runs
 * again). Any thread; never blocks for long (takes the engine's lock).
 */
void http_src_wake(struct http_src *hs);
/* True once a response showed that the server ignores Range. */
bool http_src_range_ignored(const struct http_src *hs);

/* Asynchronous ranged GET with the contract of src_read_range. */
int http_src_read_range(struct http_src *hs, uint64_t off, uint64_t len,
			const struct src_range_cb *cb);
/*
 * Blocking size: HEAD, then a "Range: bytes=0-0" GET where HEAD is refused
 * (405, 403, 501), gives no length, or fails with a 4xx that says no
 * error code (a HEAD has no body to carry it). Returns 0 and *size, or an
 * error with reason filled.
 */
int http_src_size(struct http_src *hs, uint64_t *size, char *reason,
		  size_t reasonlen);

#endif
