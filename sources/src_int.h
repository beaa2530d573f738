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
#include "sources/http_int.h"

/* Longest redacted URI kept for logs. */
#define SRC_URI_SHOWN_MAX	1024

struct src_ctx {
	const struct pol_config *cfg;	/* read-only, outlives the context */
	struct http_engine *http;	/* the engine thread; immutable */
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
};

/* The vtables, one per file. */
extern const struct src_ops src_https_ops;
extern const struct src_ops src_file_ops;

/* Counts body bytes delivered to a caller (file source; engine counts its own). */
void src_ctx_count_bytes(struct src_ctx *ctx, uint64_t n);

/* Formats into buf (may be NULL or len 0); always NUL-terminated. */
void src_reason(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Test and type seam: installs a hook adding request headers to every
 * attempt of an HTTP-based source (see http_headers_fn). Returns 0, or
 * -EINVAL for a source that is not HTTP-based.
 */
int src_set_headers_hook(struct src *s, http_headers_fn fn, void *arg);

#endif
