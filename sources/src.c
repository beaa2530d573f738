/*
 * src.c - the source context, the dispatch table of source types and the
 * generic half of struct src (DESIGN §1 sources/), including what every
 * HTTP-based type shares: the engine object, the credential subscription
 * and the bearer-token hook. Types not built yet (huggingface,
 * artifact_store) have a NULL slot and src_open answers -ENOTSUP for
 * them; each later type adds one file and fills its slot.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "policy/af.h"
#include "policy/config.h"
#include "policy/cred.h"
#include "policy/policy.h"
#include "sources/source.h"
#include "sources/src_int.h"

/* Backoff and Retry-After bounds (issue 3: full jitter, capped). */
#define SRC_BACKOFF_BASE_MS	100
#define SRC_BACKOFF_CAP_MS	10000
#define SRC_RETRY_AFTER_CAP_S	30

/* Indexed by enum pol_source_type. */
static const struct src_ops *const src_types[] = {
	[POL_SRC_S3] = &src_s3_ops,
	[POL_SRC_GCS] = &src_gcs_ops,
	[POL_SRC_AZURE_BLOB] = &src_azure_ops,
	[POL_SRC_HTTPS] = &src_https_ops,
	[POL_SRC_HUGGINGFACE] = &src_huggingface_ops,
	[POL_SRC_ARTIFACT_STORE] = &src_artifact_store_ops,
	[POL_SRC_FILE] = &src_file_ops,
};

void src_reason(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

int src_ctx_new(const struct pol_config *cfg, struct audit *audit,
		struct src_ctx **out)
{
	struct http_engine_cfg ec = { 0 };
	struct src_ctx *ctx;
	int err;

	if (cfg == NULL || out == NULL)
		return -EINVAL;
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return -ENOMEM;
	ctx->cfg = cfg;
	ec.connections = cfg->fetch_connections ? cfg->fetch_connections : 1;
	ec.retries = cfg->fetch_retries;
	ec.connect_timeout_ms = cfg->connect_timeout_ms;
	ec.low_speed_timeout_ms = cfg->low_speed_timeout_ms;
	ec.backoff_base_ms = SRC_BACKOFF_BASE_MS;
	ec.backoff_cap_ms = SRC_BACKOFF_CAP_MS;
	ec.retry_after_cap_s = SRC_RETRY_AFTER_CAP_S;
	ec.ca_file = cfg->ca_file;
	ec.proxy = cfg->proxy;
	ec.stat_requests = &ctx->stat_requests;
	ec.stat_retries = &ctx->stat_retries;
	ec.stat_bytes = &ctx->stat_bytes;
	/*
	 * A request waits for its credential as long as a helper may run,
	 * plus a connect timeout.
	 */
	ec.park_max_ms = cfg->credentials_helper_timeout_ms +
			 cfg->connect_timeout_ms;
	ctx->mirror_backoff_ms = cfg->failure_backoff_ms ?
				 cfg->failure_backoff_ms : SRC_MIRROR_BACKOFF_MS;
	err = src_mirror_table_new(ctx, cfg);
	if (err != 0)
		goto out_free;
	err = cred_provider_new(cfg, audit, &ctx->creds);
	if (err != 0)
		goto out_mirrors;
	err = http_engine_new(&ec, &ctx->http);
	if (err != 0)
		goto out_creds;
	*out = ctx;
	return 0;

out_creds:
	cred_provider_free(ctx->creds);
out_mirrors:
	src_mirror_table_free(ctx);
out_free:
	free(ctx);
	return err;
}

void src_ctx_free(struct src_ctx *ctx)
{
	if (ctx == NULL)
		return;
	http_engine_free(ctx->http);
	cred_provider_free(ctx->creds);
	src_mirror_table_free(ctx);
	free(ctx);
}

void src_ctx_count_bytes(struct src_ctx *ctx, uint64_t n)
{
	__atomic_fetch_add(&ctx->stat_bytes, n, __ATOMIC_RELAXED);
}

void src_ctx_stats(struct src_ctx *ctx, struct src_stats *out)
{
	out->requests = __atomic_load_n(&ctx->stat_requests, __ATOMIC_RELAXED);
	out->retries = __atomic_load_n(&ctx->stat_retries, __ATOMIC_RELAXED);
	out->bytes = __atomic_load_n(&ctx->stat_bytes, __ATOMIC_RELAXED);
	for (int t = 0; t < SRC_TYPE_MAX; t++)
		out->type_bytes[t] = __atomic_load_n(&ctx->stat_type_bytes[t],
						     __ATOMIC_RELAXED);
}

int src_open(struct src_ctx *ctx, const struct pol_registration *r,
	     struct src **out)
{
	const struct src_ops *ops = NULL;
	struct src *s;
	int err;

	if (ctx == NULL || r == NULL || r->uri == NULL || out == NULL)
		return -EINVAL;
	if (r->source_type > 0 &&
	    (size_t)r->source_type < sizeof(src_types) / sizeof(src_types[0]))
		ops = src_types[r->source_type];
	if (ops == NULL)
		return -ENOTSUP;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->ctx = ctx;
	s->ops = ops;
	s->type = (int)r->source_type;
	s->has_size = r->has_size;
	s->size_bytes = r->size_bytes;
	s->uri = strdup(r->uri);
	if (s->uri == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	pol_uri_redact(r->uri, s->shown, sizeof(s->shown));
	err = ops->open(s, r);
	if (err != 0)
		goto out_free_uri;
	err = src_mirrors_open(s, r);
	if (err != 0)
		goto out_close;
	*out = s;
	return 0;

out_close:
	ops->close(s);
out_free_uri:
	free(s->uri);
out_free:
	free(s);
	return err;
}

int src_size(struct src *s, uint64_t *size, char *reason, size_t reasonlen)
{
	if (reason != NULL && reasonlen > 0)
		reason[0] = '\0';
	if (s->mir != NULL)
		return src_mirrors_size(s, size, reason, reasonlen);
	return s->ops->size(s, size, reason, reasonlen);
}

/*
 * Bytes per source type (DESIGN §13 artifactfs_fetch_bytes_total): every
 * range goes through this wrapper of the caller's callbacks (all of them,
 * more included), whatever the type's read_range does inside (mirrors,
 * redirects, retries), so each byte delivered is counted once, for the
 * registration's type.
 */
struct counted_range {
	struct src_range_cb cb;		/* the caller's */
	uint64_t *counter;		/* ctx->stat_type_bytes[type] */
};

static int counted_data(void *arg, uint64_t off, const void *buf, size_t len)
{
	struct counted_range *cr = arg;
	int rc = cr->cb.on_data(cr->cb.arg, off, buf, len);

	if (rc == 0)
		__atomic_add_fetch(cr->counter, len, __ATOMIC_RELAXED);
	return rc;
}

static uint64_t counted_more(void *arg)
{
	struct counted_range *cr = arg;

	return cr->cb.more(cr->cb.arg);
}

static void counted_done(void *arg, int err, const char *reason)
{
	struct counted_range *cr = arg;
	struct src_range_cb cb = cr->cb;

	free(cr);
	cb.on_done(cb.arg, err, reason);
}

/* The mirrors first when s has some (DESIGN §11), else the type's own. */
static int src_dispatch_range(struct src *s, uint64_t off, uint64_t len,
			      const struct src_range_cb *cb)
{
	if (s->mir != NULL)
		return src_mirrors_read_range(s, off, len, cb);
	return s->ops->read_range(s, off, len, cb);
}

int src_read_range(struct src *s, uint64_t off, uint64_t len,
		   const struct src_range_cb *cb)
{
	struct src_range_cb wrapped;
	struct counted_range *cr;
	int rc;

	if (cb == NULL || cb->on_data == NULL || cb->on_done == NULL)
		return -EINVAL;
	if (off > UINT64_MAX - len || off + len > (uint64_t)INT64_MAX)
		return -EINVAL;
	if (s->type <= 0 || s->type >= SRC_TYPE_MAX)
		return src_dispatch_range(s, off, len, cb);
	cr = malloc(sizeof(*cr));
	if (cr == NULL)
		return -ENOMEM;
	cr->cb = *cb;
	cr->counter = &s->ctx->stat_type_bytes[s->type];
	wrapped = (struct src_range_cb){ .on_data = counted_data,
		.on_done = counted_done, .arg = cr,
		.more = cb->more ? counted_more : NULL };
	rc = src_dispatch_range(s, off, len, &wrapped);
	/* Not submitted: on_done will not come to free it. */
	if (rc != 0)
		free(cr);
	return rc;
}

void src_close(struct src *s)
{
	if (s == NULL)
		return;
	src_mirrors_close(s);
	s->ops->close(s);
	free(s->uri);
	free(s);
}

const char *src_redacted_uri(const struct src *s)
{
	return s->shown;
}

bool src_range_ignored(const struct src *s)
{
	if (s->mir != NULL)
		return src_mirrors_range_ignored(s);
	return s->http != NULL && http_src_range_ignored(s->http);
}

int src_set_headers_hook(struct src *s, http_headers_fn fn, void *arg)
{
	if (s->http == NULL)
		return -EINVAL;
	http_src_set_headers(s->http, fn, arg);
	return 0;
}

/* A credential's answer changed: the parked requests of s try again. */
static void src_wake(void *arg)
{
	http_src_wake(arg);
}

int src_http_open(struct src *s, const struct pol_registration *r,
		  const char *url, http_headers_fn hook)
{
	int err;

	err = http_src_new(s->ctx->http, url, &s->http);
	if (err != 0)
		return err;
	if (cred_provider_enabled(s->ctx->creds)) {
		err = cred_sub_new(s->ctx->creds, r, src_wake, s->http,
				   &s->cred);
		if (err != 0) {
			http_src_free(s->http);
			s->http = NULL;
			return err;
		}
	}
	http_src_set_headers(s->http, hook, s);
	return 0;
}

/*
 * No wake may reach the engine object once it is freed, and the header
 * hook may run (on the engine thread) until it is: unwake, free the
 * engine object (which waits for its requests), then the subscription.
 */
void src_http_close(struct src *s)
{
	cred_sub_unwake(s->cred);
	http_src_free(s->http);
	s->http = NULL;
	cred_sub_free(s->cred);
	s->cred = NULL;
}

int src_http_size(struct src *s, uint64_t *size, char *reason,
		  size_t reasonlen)
{
	return http_src_size(s->http, size, reason, reasonlen);
}

int src_http_read_range(struct src *s, uint64_t off, uint64_t len,
			const struct src_range_cb *cb)
{
	return http_src_read_range(s->http, off, len, cb);
}

int src_cred_take(struct src *s, struct cred_ref **out, char *reason,
		  size_t reasonlen)
{
	return src_cred_sub_take(s->cred, out, reason, reasonlen);
}

int src_cred_sub_take(struct cred_sub *sub, struct cred_ref **out,
		      char *reason, size_t reasonlen)
{
	*out = NULL;
	if (sub == NULL)
		return 0;
	switch (cred_sub_get(sub, out, reason, reasonlen)) {
	case CRED_READY:
	case CRED_NONE:
		return 0;
	case CRED_PENDING:
		return HTTP_HOOK_WAIT;
	case CRED_REFUSED:
		return AF_ECRED;
	default:
		src_reason(reason, reasonlen, "credential: internal error");
		return AF_ECRED;
	}
}

int src_add_header(struct curl_slist **l, char *reason, size_t reasonlen,
		   const char *fmt, ...)
{
	struct curl_slist *n;
	char line[20000];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(line)) {
		OPENSSL_cleanse(line, sizeof(line));
		src_reason(reason, reasonlen, "header too long");
		return -EINVAL;
	}
	n = curl_slist_append(*l, line);
	OPENSSL_cleanse(line, (size_t)len);
	if (n == NULL) {
		src_reason(reason, reasonlen, "out of memory");
		return -ENOMEM;
	}
	*l = n;
	return 0;
}

int src_add_bearer(struct http_req *rq, struct cred_ref *ref, char *reason,
		   size_t reasonlen)
{
	int err = 0;

	if (ref == NULL)
		return 0;
	if (ref->c->bearer_token != NULL)
		err = src_add_header(&rq->hdrs, reason, reasonlen,
				     "Authorization: Bearer %s",
				     ref->c->bearer_token);
	cred_put(ref);
	return err;
}

int src_bearer_hook(void *arg, struct http_req *rq, char *reason,
		    size_t reasonlen)
{
	struct src *s = arg;
	struct cred_ref *ref;
	int err;

	err = src_cred_take(s, &ref, reason, reasonlen);
	if (err != 0)
		return err;
	return src_add_bearer(rq, ref, reason, reasonlen);
}

char *src_pct_decode(const char *p, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				goto out_bad;
			hi = pol_hex_value(p[i + 1]);
			lo = pol_hex_value(p[i + 2]);
			if (hi < 0 || lo < 0)
				goto out_bad;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c == 0)
			goto out_bad;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;

out_bad:
	free(out);
	return NULL;
}
