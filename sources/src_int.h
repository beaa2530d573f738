/*
 * src_int.h - private to sources/: the fields every source object shares,
 * and the helpers the per-type files (https.c, file.c, …) use. Nothing
 * outside sources/ and its unit tests includes this header.
 */
#ifndef SRC_INT_H
#define SRC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"
#include "sources/cred_int.h"
#include "sources/http_int.h"

/* Longest redacted URI kept for logs. */
#define SRC_URI_SHOWN_MAX	1024

/* One [fetch] mirrors entry (DESIGN §11), shared by every source. */
struct src_mirror {
	const char *tmpl;		/* cfg->mirrors[i]; immutable */
	char shown[SRC_URI_SHOWN_MAX];	/* redacted, for logs and audit */
	long long skip_until_ms;	/* __atomic: its bytes failed verification */
};

struct src_ctx {
	const struct pol_config *cfg;	/* read-only, outlives the context */
	struct http_engine *http;	/* the engine thread; immutable */
	struct cred_provider *creds;	/* credentials (DESIGN §5); immutable */
	struct src_mirror *mirrors;	/* immutable but skip_until_ms */
	size_t n_mirrors;
	uint64_t mirror_backoff_ms;	/* how long a blamed mirror is skipped */
	/* Counters: updated with __atomic builtins, no lock. */
	uint64_t stat_requests;
	uint64_t stat_retries;
	uint64_t stat_bytes;
	uint64_t stat_type_bytes[SRC_TYPE_MAX];
};

struct src {
	struct src_ctx *ctx;
	const struct src_ops *ops;
	int type;			/* enum pol_source_type */
	char *uri;			/* as registered (may carry a query) */
	char shown[SRC_URI_SHOWN_MAX];	/* redacted, for logs and audit */
	void *priv;			/* owned by ops; freed by ops->close */
	/*
	 * HTTP-based types: the engine object of this source. The seam for
	 * credentialed types is http_src_set_headers(); the seam for mirrors
	 * and a proxy (DESIGN §11) is that a type may hold several http_src
	 * (one per mirror, then the origin) and fail over between them in its
	 * read_range; the site proxy is engine-wide (cfg->proxy).
	 */
	struct http_src *http;
	/*
	 * The credential of this registration (DESIGN §5), kept fresh by
	 * the provider; NULL when no credentials.dir or helper is set.
	 */
	struct cred_sub *cred;
	/* The mirrors in front of it (mirror.c); NULL: none. */
	struct src_mirrors *mir;
	bool has_size;			/* registered size_bytes */
	uint64_t size_bytes;
};

/* The vtables, one per file. */
extern const struct src_ops src_https_ops;
extern const struct src_ops src_file_ops;
extern const struct src_ops src_s3_ops;
extern const struct src_ops src_gcs_ops;
extern const struct src_ops src_azure_ops;
extern const struct src_ops src_huggingface_ops;
extern const struct src_ops src_artifact_store_ops;

/*
 * Mirrors (mirror.c, DESIGN §11). The table is built from cfg->mirrors
 * with the context (0 or -ENOMEM). src_mirrors_open gives s its mirrors
 * (none for a file source, or when none is configured; s->mir stays
 * NULL); the other calls are made only when s->mir is set, in place of
 * the type's own, and fall back to it.
 */
#define SRC_MIRROR_BACKOFF_MS	(30 * 1000)
int src_mirror_table_new(struct src_ctx *ctx, const struct pol_config *cfg);
void src_mirror_table_free(struct src_ctx *ctx);
int src_mirrors_open(struct src *s, const struct pol_registration *r);
void src_mirrors_close(struct src *s);
int src_mirrors_size(struct src *s, uint64_t *size, char *reason,
		     size_t reasonlen);
int src_mirrors_read_range(struct src *s, uint64_t off, uint64_t len,
			   const struct src_range_cb *cb);
bool src_mirrors_range_ignored(const struct src *s);

/* Counts body bytes delivered to a caller (file source; engine counts its own). */
void src_ctx_count_bytes(struct src_ctx *ctx, uint64_t n);

/* Formats into buf (may be NULL or len 0); always NUL-terminated. */
void src_reason(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The common half of an HTTP-based type's open: the engine object for the
 * request URL url (not the registration URI: §5b, the endpoint is the
 * node's business), the credential subscription for r, and hook as the
 * header hook (arg: s). Returns 0 or -errno.
 */
int src_http_open(struct src *s, const struct pol_registration *r,
		  const char *url, http_headers_fn hook);
/* Its close: no wake, then the engine's object, then the subscription. */
void src_http_close(struct src *s);
/* The size and read_range of an HTTP-based type. */
int src_http_size(struct src *s, uint64_t *size, char *reason,
		  size_t reasonlen);
int src_http_read_range(struct src *s, uint64_t off, uint64_t len,
			const struct src_range_cb *cb);

/*
 * For a header hook (engine thread, never blocks): the credential in
 * hand. Returns 0 with *out a reference (cred_put it) or NULL when no
 * credential applies (the request goes without: the server answers),
 * HTTP_HOOK_WAIT when it is still being fetched or renewed, or AF_ECRED
 * with the refusal in reason.
 */
int src_cred_take(struct src *s, struct cred_ref **out, char *reason,
		  size_t reasonlen);
/* The same for a subscription of its own (a mirror's); NULL: none. */
int src_cred_sub_take(struct cred_sub *sub, struct cred_ref **out,
		      char *reason, size_t reasonlen);

/*
 * Appends a header line "Name: value" to *l. The value may be a secret:
 * the formatted line is wiped after curl copied it. Returns 0 or -ENOMEM
 * (reason filled).
 */
int src_add_header(struct curl_slist **l, char *reason, size_t reasonlen,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Adds "Authorization: Bearer" from ref's credential to rq when it has a
 * bearer token, and releases ref (NULL: nothing). 0 or -errno.
 */
int src_add_bearer(struct http_req *rq, struct cred_ref *ref, char *reason,
		   size_t reasonlen);

/* The hook of types whose credential is a bearer token (https, gcs). */
int src_bearer_hook(void *arg, struct http_req *rq, char *reason,
		    size_t reasonlen);

/*
 * Percent-decodes [p, p + n) into a new string. NULL for a bad escape, an
 * encoded NUL or no memory.
 */
char *src_pct_decode(const char *p, size_t n);

/*
 * Test and type seam: installs a hook adding request headers to every
 * attempt of an HTTP-based source (see http_headers_fn). Returns 0, or
 * -EINVAL for a source that is not HTTP-based.
 */
int src_set_headers_hook(struct src *s, http_headers_fn fn, void *arg);

#endif
