/*
 * source.h - where blob bytes come from (DESIGN §1 sources/). One
 * struct src_ops per source type, each in its own file, behind this one
 * interface (STYLE.md "One vtable per seam"); HTTP-based types share the
 * libcurl multi engine in http_engine.c.
 *
 * Ranged reads are asynchronous: src_read_range() submits, bytes arrive in
 * offset order within the range through on_data, and on_done is called
 * exactly once. Retries (exponential backoff with jitter, bounded by
 * [fetch] retries), resumption of a broken transfer from the last byte
 * delivered, timeouts, redirect rules and response validation (status,
 * Content-Range, length) all happen inside the source: the caller sees
 * either every byte of the range, in order, once, then on_done(0), or
 * on_done(err) after a prefix.
 */
#ifndef SRC_SOURCE_H
#define SRC_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct audit;
struct pol_config;
struct pol_registration;

/*
 * Per-process source context: config, the HTTP engine thread, TLS setup,
 * the credential provider (DESIGN §5) and its worker threads.
 */
struct src_ctx;

/*
 * Creates the context and starts the HTTP engine thread and, when
 * credentials.dir or credentials.helper is set, the credential workers.
 * cfg and audit (may be NULL: credential refusals then go to the log
 * only) must outlive the context. Returns 0 or -errno.
 */
int src_ctx_new(const struct pol_config *cfg, struct audit *audit,
		struct src_ctx **out);
/*
 * Stops the engine: pending ranges end with on_done(-ECANCELED). Sources
 * still open may only be closed (src_close) afterwards. ctx == NULL does
 * nothing.
 */
void src_ctx_free(struct src_ctx *ctx);

/* One source object for one blob of one registration. */
struct src;

struct src_range_cb {
	/*
	 * Called with consecutive bytes starting at the range offset. Return 0
	 * to go on, or a negative error to abort the range (on_done then gets
	 * that error). Runs on the engine thread: do not block for long.
	 */
	int (*on_data)(void *arg, uint64_t off, const void *buf, size_t len);
	/*
	 * Called exactly once: 0 after the whole range was delivered, or a
	 * negative error (AF_ESOURCE, AF_ETIMEDOUT, AF_ESIZE, -ECANCELED,
	 * the on_data error). May be called from inside src_read_range (file
	 * source, or a submission that fails at once) or from the engine
	 * thread. reason, when not NULL, says why in words fit for the audit
	 * log (no secrets).
	 */
	void (*on_done)(void *arg, int err, const char *reason);
	void *arg;
	/*
	 * May be NULL. Called (engine thread, like on_data) when a response
	 * that ignored Range (200 with the whole body) has delivered the
	 * whole range: returns how many more bytes, right after it, the
	 * caller wants from that same response (the range grows by that
	 * much; on_done comes at its new end), or 0 to stop there. Lets a
	 * caller read such a source once, sequentially (DESIGN §5b), instead
	 * of one whole-body response per range.
	 */
	uint64_t (*more)(void *arg);
};

/*
 * Opens the source for r (picks the vtable by r->source_type; copies what it
 * needs of r). Does no network I/O. Returns 0 and *out, -ENOTSUP for a
 * source type not built in, or AF_EPARSE for a URI the type rejects.
 */
int src_open(struct src_ctx *ctx, const struct pol_registration *r,
	     struct src **out);

/*
 * Learns the object's size (HEAD, or a one-byte ranged GET where HEAD is
 * refused). Blocking, bounded by the timeouts and retries. Returns 0 and
 * *size, or a negative error with reason filled (may be NULL).
 */
int src_size(struct src *s, uint64_t *size, char *reason, size_t reasonlen);

/*
 * Submits a read of [off, off + len). Bounded memory: data is handed on as
 * it arrives, never buffered whole. Returns 0 when submitted (on_done will
 * follow), or a negative error when it could not be (on_done then is not
 * called). Thread-safe.
 */
int src_read_range(struct src *s, uint64_t off, uint64_t len,
		   const struct src_range_cb *cb);

/*
 * Closes the source. Ranges still in flight are cancelled and their on_done
 * called with -ECANCELED before this returns. s == NULL does nothing. Must
 * not be called from an on_data or on_done callback (it waits for the
 * engine thread those run on).
 */
void src_close(struct src *s);

/* Redacted URI of the source, for logs and audit. Valid while s lives. */
const char *src_redacted_uri(const struct src *s);

/*
 * True once a response of this source showed that its server ignores Range
 * (200 with the whole body): each range then costs the bytes before it too,
 * so a caller should fetch such a source sequentially. Thread-safe.
 */
bool src_range_ignored(const struct src *s);

/*
 * Mirrors (DESIGN §11). src_mirrors_served tells how many mirrors
 * delivered bytes of s so far and writes their redacted names into buf
 * (comma-separated; may be NULL), for the audit of a verification
 * failure. src_mirrors_blame is the verdict on those bytes: every mirror
 * that served s is skipped by every source of the context for the mirror
 * backoff, and s reads only from its origin from now on (its size too),
 * so that the caller can fetch the blob again. Both thread-safe; nothing
 * for a source without mirrors.
 */
size_t src_mirrors_served(const struct src *s, char *buf, size_t len);
void src_mirrors_blame(struct src *s);
/* Ends every mirror's backoff (SIGHUP, like the failure backoff of §6). */
void src_mirrors_forgive(struct src_ctx *ctx);

/*
 * Whether two absolute URLs have the same origin (RFC 6454: scheme, host
 * and port, default ports made explicit): the test every HTTP client of
 * ours applies before sending a credential after a redirect (DESIGN §5).
 * False when either cannot be parsed.
 */
bool src_url_same_origin(const char *a, const char *b);

/*
 * libcurl's global set-up, once per process, for every HTTP client of
 * ours (the engine here, the control plane's client). 0 or -ENOMEM.
 */
int src_curl_init(void);

/* Source types counted apart: indexed by enum pol_source_type (< this). */
#define SRC_TYPE_MAX 8

/*
 * Counters since the context was created (tests, bench, metrics). Read
 * with relaxed atomic loads, no lock.
 */
struct src_stats {
	uint64_t requests;	/* HTTP requests started */
	uint64_t retries;	/* requests retried after a failure */
	uint64_t bytes;		/* body bytes delivered to on_data */
	/* Bytes delivered to on_data by ranges of sources of each type. */
	uint64_t type_bytes[SRC_TYPE_MAX];
};
void src_ctx_stats(struct src_ctx *ctx, struct src_stats *out);

/*
 * artifactfs check (DESIGN §9): every problem of credentials.dir (a file
 * unreadable, malformed, refused, expired or valid longer than
 * credentials.max_lifetime at now_s) and of credentials.helper (not an
 * executable file) is reported through report with level "error", named
 * by file, never quoting a secret. Returns 0 when there was none, else
 * AF_ECRED.
 */
typedef void (*src_report_fn)(void *arg, const char *level, const char *msg);
int src_cred_check(const struct pol_config *cfg, long long now_s,
		   src_report_fn report, void *arg);

/* The vtable each source type implements (sources/src_int.h has helpers). */
struct src_ops {
	const char *name;		/* "https", "file", … */
	int type;			/* enum pol_source_type */
	int (*open)(struct src *s, const struct pol_registration *r);
	int (*size)(struct src *s, uint64_t *size, char *reason,
		    size_t reasonlen);
	int (*read_range)(struct src *s, uint64_t off, uint64_t len,
			  const struct src_range_cb *cb);
	void (*close)(struct src *s);
};

#endif
