/*
 * artifact_store.c - the `artifact_store` source type (DESIGN §5b, issue
 * 8): the platform's content-addressed store speaking the OCI distribution
 * blob API. artifact-store://{repository} and the registration's digest
 * are read from
 *   GET {endpoint}/v2/{repository}/blobs/{algo}:{hex}
 * ([artifact_store] endpoint, required) with Range and "Authorization:
 * Bearer" from the credential, to the endpoint only: a registry that
 * keeps its blobs elsewhere answers 307 (or 302) to blob storage, which
 * the engine follows without any credential.
 *
 * The node does not run the registry token dance (asking the realm of a
 * "WWW-Authenticate: Bearer realm=…" challenge for a token): credentials
 * come only from credentials.dir or credentials.helper (DESIGN §5), and a
 * realm is another host. A 401 therefore fails at once, its challenge
 * (realm, service, scope, error) named in the reason so that an operator
 * knows which token the platform agent must deliver.
 *
 * A registry answering with another blob than the digest asked for is
 * caught by the digest check (verify_failed): nothing here trusts
 * Docker-Content-Digest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/af.h"
#include "policy/config.h"
#include "policy/policy.h"
#include "sources/hdrs_int.h"
#include "sources/src_int.h"

#define STORE_URL_MAX	8192
/* Longest challenge value quoted in a reason. */
#define STORE_SHOWN	96

static int store_check(void *arg, const struct http_resp *r, char *reason,
		       size_t reasonlen)
{
	struct hdrs_challenge ch;
	const char *v;
	size_t n;

	(void)arg;
	if (r->status != 401 || !r->origin)
		return 0;
	if (!http_head_find(r->head, r->head_len, "WWW-Authenticate", &v, &n))
		return 0;
	if (hdrs_parse_challenge(v, n, &ch) != 0) {
		src_reason(reason, reasonlen,
			   "HTTP 401 Unauthorized: malformed WWW-Authenticate challenge");
		return AF_ESOURCE;
	}
	if (ch.bearer) {
		char extra[2 * STORE_SHOWN + 64] = "";

		if (ch.service[0] || ch.scope[0])
			snprintf(extra, sizeof(extra), " (service \"%.*s\", scope \"%.*s\")",
				 STORE_SHOWN / 2, ch.service, STORE_SHOWN,
				 ch.scope);
		src_reason(reason, reasonlen,
			   "HTTP 401 Unauthorized: a token from realm \"%.*s\" is required%s%s%s; the node fetches none from a realm: deliver a bearer_token",
			   STORE_SHOWN, ch.realm, extra,
			   ch.error[0] ? ", error " : "",
			   ch.error[0] ? ch.error : "");
		return AF_ESOURCE;
	}
	src_reason(reason, reasonlen,
		   "HTTP 401 Unauthorized: the registry asks for %s credentials, which the node does not send (a bearer_token only)",
		   ch.basic ? "Basic" : "another scheme of");
	return AF_ESOURCE;
}

static int store_open(struct src *s, const struct pol_registration *r)
{
	const char *ep = s->ctx->cfg->artifact_store_endpoint;
	const char *repo = s->uri + 17;
	char *url;
	int err, n;

	/* The policy checked the form (pol_uri_check). */
	if (strncmp(s->uri, "artifact-store://", 17) != 0 || *repo == '\0' ||
	    strpbrk(repo, "?#@:") != NULL)
		return AF_EPARSE;
	/*
	 * DESIGN §5b: there is no default endpoint for this type. The source
	 * opens, and each request fails saying so (check reports it too).
	 */
	if (ep == NULL)
		return 0;
	url = malloc(STORE_URL_MAX);
	if (url == NULL)
		return -ENOMEM;
	n = snprintf(url, STORE_URL_MAX, "%s/v2/%s/blobs/%s", ep, repo,
		     r->digest.str);
	if (n < 0 || n >= STORE_URL_MAX) {
		free(url);
		return AF_EPARSE;
	}
	err = src_http_open(s, r, url, src_bearer_hook);
	free(url);
	if (err != 0)
		return err;
	http_src_set_check(s->http, store_check, s);
	return 0;
}

static const char store_no_endpoint[] =
	"artifact_store: [artifact_store] endpoint is not set in the config";

static int store_size(struct src *s, uint64_t *size, char *reason,
		      size_t reasonlen)
{
	if (s->http == NULL) {
		src_reason(reason, reasonlen, "%s", store_no_endpoint);
		return AF_ESOURCE;
	}
	return src_http_size(s, size, reason, reasonlen);
}

static int store_read_range(struct src *s, uint64_t off, uint64_t len,
			    const struct src_range_cb *cb)
{
	if (s->http == NULL) {
		cb->on_done(cb->arg, AF_ESOURCE, store_no_endpoint);
		return 0;
	}
	return src_http_read_range(s, off, len, cb);
}

static void store_close(struct src *s)
{
	if (s->http != NULL)
		src_http_close(s);
}

const struct src_ops src_artifact_store_ops = {
	.name = "artifact_store",
	.type = POL_SRC_ARTIFACT_STORE,
	.open = store_open,
	.size = store_size,
	.read_range = store_read_range,
	.close = store_close,
};
