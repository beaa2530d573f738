/*
 * mirror.c - content-addressed mirrors in front of the registered source
 * (DESIGN §11, issue 14). The seam src_int.h describes: a source object
 * holds one http_src per mirror, then its origin, and each range fails
 * over between them.
 *
 * - Mirrors are tried in the configured order before the source, each at
 *   the URL its entry gives for the blob's digest (pol_mirror_url), with
 *   Range, directly (never through [fetch] proxy) and never with the
 *   source's credentials. A mirror has a credential subscription of its
 *   own, for its URL as an `https` URI: it sends "Authorization: Bearer"
 *   only when a credential's own scope matches the mirror URL (DESIGN
 *   §11), and like every hook, only to the mirror's origin, never after a
 *   redirect to another host.
 * - A mirror that answers 404, fails, stalls or is cut off is skipped for
 *   the rest of that blob: a range it failed goes on from the first byte
 *   not yet delivered at the next mirror, then at the source. Bytes already
 *   delivered are never asked for again.
 * - A mirror whose size differs from the registered size_bytes is skipped
 *   for the blob (a bad mirror must not quarantine a good blob); without
 *   size_bytes the size is asked of the source, never of a mirror.
 * - Bytes from mirrors that fail verification: the cache calls
 *   src_mirrors_blame, after which the source reads only from its origin,
 *   and those mirrors are skipped by every new source of the context for
 *   a while ([fetch] failure_backoff, or SRC_MIRROR_BACKOFF_MS when that
 *   is 0); SIGHUP ends it (src_mirrors_forgive).
 *
 * Locking: a range's failover state (struct mread) belongs to whichever
 * thread runs its callbacks, one at a time. The per-blob flags and the
 * context's skip deadlines are atomics.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/af.h"
#include "policy/config.h"
#include "policy/cred.h"
#include "policy/policy.h"
#include "sources/src_int.h"

/* Extra attempts at a mirror before the next one takes over the range. */
#define MIR_RETRIES	1

struct src_mirror_ep {
	const struct src_mirror *m;	/* the context's entry */
	struct http_src *hs;
	struct cred_sub *cred;		/* its own credential; NULL: none */
	int failed;			/* __atomic: skipped for this blob */
	int served;			/* __atomic: delivered bytes */
};

struct src_mirrors {
	int origin_only;		/* __atomic: after src_mirrors_blame */
	int closing;			/* __atomic: src_close has begun */
	size_t n;
	struct src_mirror_ep ep[];
};

/* One range in flight at a mirror: what to go on with when it fails. */
struct mread {
	struct src *s;
	size_t ep;			/* the mirror serving it */
	uint64_t off, len, done;
	int user_err;			/* what the caller's on_data returned */
	size_t marked;			/* ep + 1 once its served flag is set */
	struct src_range_cb user;	/* the caller's callbacks */
	struct src_range_cb cb;		/* ours, given to the mirror */
};

int src_mirror_table_new(struct src_ctx *ctx, const struct pol_config *cfg)
{
	ctx->n_mirrors = cfg->n_mirrors;
	if (ctx->n_mirrors == 0)
		return 0;
	ctx->mirrors = calloc(ctx->n_mirrors, sizeof(*ctx->mirrors));
	if (ctx->mirrors == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->n_mirrors; i++) {
		ctx->mirrors[i].tmpl = cfg->mirrors[i];
		pol_uri_redact(cfg->mirrors[i], ctx->mirrors[i].shown,
			       sizeof(ctx->mirrors[i].shown));
	}
	return 0;
}

void src_mirror_table_free(struct src_ctx *ctx)
{
	free(ctx->mirrors);
	ctx->mirrors = NULL;
	ctx->n_mirrors = 0;
}

/* The mirror's own credential changed: its parked requests try again. */
static void mirror_wake(void *arg)
{
	http_src_wake(arg);
}

/*
 * The header hook of a mirror (engine thread, never blocks): the bearer
 * token of a credential whose scope matches the mirror's URL, else
 * nothing. Never the source's (that is another subscription).
 */
static int mirror_hook(void *arg, struct http_req *rq, char *reason,
		       size_t reasonlen)
{
	struct src_mirror_ep *ep = arg;
	struct cred_ref *ref;
	int err;

	err = src_cred_sub_take(ep->cred, &ref, reason, reasonlen);
	if (err != 0)
		return err;
	return src_add_bearer(rq, ref, reason, reasonlen);
}

/*
 * A credential subscription for the mirror URL url, as the `https` URI
 * it is (DESIGN §5b scopes: the longest matching scope of an `https`
 * credential; the helper is asked with that URI). Nothing when no
 * credentials.dir or helper is configured.
 */
static int mirror_cred(struct src_ctx *ctx, const struct pol_registration *r,
		       const char *url, struct src_mirror_ep *ep)
{
	struct pol_registration mr = *r;
	int rc;

	if (!cred_provider_enabled(ctx->creds))
		return 0;
	mr.source_type = POL_SRC_HTTPS;
	mr.uri = (char *)url;
	rc = cred_sub_new(ctx->creds, &mr, mirror_wake, ep->hs, &ep->cred);
	if (rc != 0)
		return rc;
	http_src_set_headers(ep->hs, mirror_hook, ep);
	return 0;
}

/* No wake once the engine object is gone; the hook runs until it is. */
static void mirror_ep_free(struct src_mirror_ep *ep)
{
	cred_sub_unwake(ep->cred);
	http_src_free(ep->hs);
	cred_sub_free(ep->cred);
	ep->hs = NULL;
	ep->cred = NULL;
}

static bool mirror_skipped(const struct src_mirror *m)
{
	return __atomic_load_n(&m->skip_until_ms, __ATOMIC_RELAXED) >
	       af_now_ms();
}

int src_mirrors_open(struct src *s, const struct pol_registration *r)
{
	struct src_ctx *ctx = s->ctx;
	struct src_mirrors *mir;
	char url[SRC_URI_SHOWN_MAX * 2], err[160];
	size_t n = 0;
	int rc;

	/* A local file is not fetched over a network: nothing to spare. */
	if (ctx->n_mirrors == 0 || r->source_type == POL_SRC_FILE)
		return 0;
	mir = calloc(1, sizeof(*mir) + ctx->n_mirrors * sizeof(mir->ep[0]));
	if (mir == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->n_mirrors; i++) {
		const struct src_mirror *m = &ctx->mirrors[i];
		struct src_mirror_ep *ep = &mir->ep[n];

		if (mirror_skipped(m)) {
			af_info("mirror %s: skipped for %s (its bytes failed verification recently)",
				m->shown, r->digest.str);
			continue;
		}
		rc = pol_mirror_url(m->tmpl, &r->digest, url, sizeof(url),
				    err, sizeof(err));
		if (rc < 0) {
			/* The config parser refused such entries already. */
			af_warn("mirror %s: %s", m->shown, err);
			continue;
		}
		rc = http_src_new(ctx->http, url, &ep->hs);
		if (rc < 0)
			goto out_free;
		http_src_set_direct(ep->hs, MIR_RETRIES);
		rc = mirror_cred(ctx, r, url, ep);
		if (rc < 0) {
			http_src_free(ep->hs);
			ep->hs = NULL;
			goto out_free;
		}
		ep->m = m;
		n++;
	}
	mir->n = n;
	s->mir = mir;
	return 0;

out_free:
	for (size_t i = 0; i < n; i++)
		mirror_ep_free(&mir->ep[i]);
	free(mir);
	return rc;
}

void src_mirrors_close(struct src *s)
{
	struct src_mirrors *mir = s->mir;

	if (mir == NULL)
		return;
	__atomic_store_n(&mir->closing, 1, __ATOMIC_RELEASE);
	/*
	 * In order: a range failing over moves to a later mirror or the
	 * origin only, so each one closed stays closed; the origin is closed
	 * by the caller afterwards.
	 */
	for (size_t i = 0; i < mir->n; i++)
		mirror_ep_free(&mir->ep[i]);
	free(mir);
	s->mir = NULL;
}

/* The first mirror at or after i not skipped for this blob, or mir->n. */
static size_t next_ep(const struct src_mirrors *mir, size_t i)
{
	if (__atomic_load_n(&mir->origin_only, __ATOMIC_ACQUIRE))
		return mir->n;
	for (; i < mir->n; i++)
		if (!__atomic_load_n(&mir->ep[i].failed, __ATOMIC_RELAXED))
			return i;
	return mir->n;
}

static void ep_fail(struct src *s, size_t i, const char *why)
{
	struct src_mirror_ep *ep = &s->mir->ep[i];

	if (__atomic_exchange_n(&ep->failed, 1, __ATOMIC_RELAXED) == 0)
		af_warn("mirror %s: %s: %s; skipped for this blob",
			ep->m->shown, s->shown, why);
}

int src_mirrors_size(struct src *s, uint64_t *size, char *reason,
		     size_t reasonlen)
{
	struct src_mirrors *mir = s->mir;
	char why[160];
	uint64_t got;

	/*
	 * A mirror serves bytes, not the truth about them: without a
	 * registered size, the size is the source's (a mirror that lied about
	 * it could otherwise fail the blob, not itself). With one, a mirror
	 * that disagrees is not used for this blob.
	 */
	if (!s->has_size)
		return s->ops->size(s, size, reason, reasonlen);
	for (size_t i = next_ep(mir, 0); i < mir->n; i = next_ep(mir, i + 1)) {
		why[0] = '\0';
		if (http_src_size(mir->ep[i].hs, &got, why, sizeof(why)) != 0) {
			ep_fail(s, i, why[0] ? why : "size unknown");
			continue;
		}
		if (got != s->size_bytes) {
			snprintf(why, sizeof(why),
				 "size %" PRIu64 ", registered %" PRIu64, got,
				 s->size_bytes);
			ep_fail(s, i, why);
			continue;
		}
		*size = got;
		return 0;
	}
	return s->ops->size(s, size, reason, reasonlen);
}

static int mread_data(void *arg, uint64_t off, const void *buf, size_t len)
{
	struct mread *mr = arg;
	int err;

	/* Before the caller sees the bytes: its verdict may follow at once. */
	if (mr->marked != mr->ep + 1) {
		__atomic_store_n(&mr->s->mir->ep[mr->ep].served, 1,
				 __ATOMIC_RELEASE);
		mr->marked = mr->ep + 1;
	}
	err = mr->user.on_data(mr->user.arg, off, buf, len);
	if (err != 0) {
		mr->user_err = err;
		return err;
	}
	mr->done += len;
	return 0;
}

/*
 * A whole-body (200) answer delivered the range: the caller may take more
 * of it (DESIGN §5b, src_range_cb.more); the range grows by that much, so
 * a failover later goes on at its new end.
 */
static uint64_t mread_more(void *arg)
{
	struct mread *mr = arg;
	uint64_t more = mr->user.more(mr->user.arg);

	mr->len += more;
	return more;
}

/* Hands [off + done, off + len) to the next mirror or the origin. */
static void mread_next(struct mread *mr, int err, const char *reason)
{
	struct src *s = mr->s;
	struct src_mirrors *mir = s->mir;
	struct src_range_cb user = mr->user;
	uint64_t off = mr->off + mr->done, len = mr->len - mr->done;
	size_t i;

	for (i = next_ep(mir, mr->ep + 1); i < mir->n;
	     i = next_ep(mir, i + 1)) {
		mr->ep = i;
		err = http_src_read_range(mir->ep[i].hs, off, len, &mr->cb);
		if (err == 0)
			return;
		if (err == -ECANCELED)
			goto out_done;
		ep_fail(s, i, af_strerror(err));
	}
	free(mr);
	/* The origin: the caller's callbacks take the rest as it is. */
	err = s->ops->read_range(s, off, len, &user);
	if (err == 0)
		return;
	reason = NULL;
	user.on_done(user.arg, err, reason);
	return;

out_done:
	free(mr);
	user.on_done(user.arg, err, reason);
}

static void mread_done(void *arg, int err, const char *reason)
{
	struct mread *mr = arg;
	struct src_range_cb user = mr->user;

	/*
	 * Success, the caller's own abort, or a cancellation (src_close, the
	 * engine stopping): the caller hears it as it is.
	 */
	if (err == 0 || (mr->user_err != 0 && err == mr->user_err) ||
	    err == -ECANCELED ||
	    __atomic_load_n(&mr->s->mir->closing, __ATOMIC_ACQUIRE)) {
		free(mr);
		user.on_done(user.arg, err, reason);
		return;
	}
	ep_fail(mr->s, mr->ep, reason ? reason : af_strerror(err));
	mread_next(mr, err, reason);
}

int src_mirrors_read_range(struct src *s, uint64_t off, uint64_t len,
			   const struct src_range_cb *cb)
{
	struct src_mirrors *mir = s->mir;
	struct mread *mr;
	size_t i;
	int err;

	i = next_ep(mir, 0);
	if (i == mir->n || len == 0)
		return s->ops->read_range(s, off, len, cb);
	mr = calloc(1, sizeof(*mr));
	if (mr == NULL)
		return -ENOMEM;
	mr->s = s;
	mr->off = off;
	mr->len = len;
	mr->user = *cb;
	mr->cb.on_data = mread_data;
	mr->cb.on_done = mread_done;
	mr->cb.more = cb->more != NULL ? mread_more : NULL;
	mr->cb.arg = mr;
	for (; i < mir->n; i = next_ep(mir, i + 1)) {
		mr->ep = i;
		err = http_src_read_range(mir->ep[i].hs, off, len, &mr->cb);
		if (err == 0)
			return 0;
		if (err == -ECANCELED) {
			free(mr);
			return err;
		}
		ep_fail(s, i, af_strerror(err));
	}
	free(mr);
	return s->ops->read_range(s, off, len, cb);
}

bool src_mirrors_range_ignored(const struct src *s)
{
	const struct src_mirrors *mir = s->mir;
	size_t i = next_ep(mir, 0);

	if (i < mir->n)
		return http_src_range_ignored(mir->ep[i].hs);
	return s->http != NULL && http_src_range_ignored(s->http);
}

size_t src_mirrors_served(const struct src *s, char *buf, size_t len)
{
	const struct src_mirrors *mir = s->mir;
	size_t n = 0, o = 0;

	if (buf != NULL && len > 0)
		buf[0] = '\0';
	if (mir == NULL)
		return 0;
	for (size_t i = 0; i < mir->n; i++) {
		int w;

		if (!__atomic_load_n(&mir->ep[i].served, __ATOMIC_ACQUIRE))
			continue;
		if (buf != NULL && o < len) {
			w = snprintf(buf + o, len - o, "%s%s", n ? ", " : "",
				     mir->ep[i].m->shown);
			o = w < 0 ? len : o + (size_t)w;
		}
		n++;
	}
	return n;
}

void src_mirrors_forgive(struct src_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_mirrors; i++)
		__atomic_store_n(&ctx->mirrors[i].skip_until_ms, 0,
				 __ATOMIC_RELAXED);
}

void src_mirrors_blame(struct src *s)
{
	struct src_mirrors *mir = s->mir;
	long long until;

	if (mir == NULL)
		return;
	until = af_now_ms() + (long long)s->ctx->mirror_backoff_ms;
	for (size_t i = 0; i < mir->n; i++) {
		/* The entry lives in the context: skipped by every source. */
		struct src_mirror *m = (struct src_mirror *)mir->ep[i].m;

		if (!__atomic_load_n(&mir->ep[i].served, __ATOMIC_RELAXED))
			continue;
		__atomic_store_n(&m->skip_until_ms, until, __ATOMIC_RELAXED);
		af_warn("mirror %s: bytes for %s failed verification; skipped for %" PRIu64 " s",
			m->shown, s->shown,
			(s->ctx->mirror_backoff_ms + 999) / 1000);
	}
	__atomic_store_n(&mir->origin_only, 1, __ATOMIC_RELEASE);
}
