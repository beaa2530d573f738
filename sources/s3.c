/*
 * s3.c - the `s3` source type (DESIGN §5b): s3://bucket/key is read with
 * AWS Signature V4 (service s3, [s3] region, x-amz-content-sha256:
 * UNSIGNED-PAYLOAD, x-amz-date, Range signed, x-amz-security-token when
 * the credential has a session token), path-style
 *   GET {endpoint}/bucket/key
 * or virtual-hosted
 *   GET {scheme}://bucket.{endpoint host}/key.
 * The default endpoint is https://s3.{region}.amazonaws.com, virtual-
 * hosted; with an [s3] endpoint the default is path-style.
 *
 * The request URL is built once at open, the key decoded from the URI and
 * encoded the way SigV4 encodes it, so what is signed is what is sent.
 * Each attempt is signed in the engine's header hook with the credential
 * already in hand (cred_int.h), from the attempt's own URL.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "policy/af.h"
#include "policy/buf.h"
#include "policy/config.h"
#include "policy/cred.h"
#include "policy/policy.h"
#include "sources/sigv4_int.h"
#include "sources/src_int.h"

#define S3_URL_MAX		8192

/* The parts of the attempt's URL that SigV4 signs. */
struct s3_target {
	char *host;		/* host[:port] as curl sends it (malloc) */
	char *path;		/* decoded */
	char *query;		/* as sent, or NULL */
};

static void target_release(struct s3_target *t)
{
	free(t->host);
	curl_free(t->path);
	curl_free(t->query);
}

static int target_parse(const char *url, struct s3_target *t)
{
	char *host = NULL, *port = NULL;
	CURLU *u = curl_url();
	int err = AF_EPARSE;

	memset(t, 0, sizeof(*t));
	if (u == NULL)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &t->path, CURLU_URLDECODE) !=
	    CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_QUERY, &t->query, 0) != CURLUE_OK)
		t->query = NULL;
	/* curl sends the port in Host only when the URL names one. */
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
		if (asprintf(&t->host, "%s:%s", host, port) < 0)
			t->host = NULL;
	} else {
		t->host = strdup(host);
	}
	if (t->host == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = 0;
out:
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	if (err != 0)
		target_release(t);
	return err;
}

static int s3_hook(void *arg, struct http_req *rq, char *reason,
		   size_t reasonlen)
{
	struct src *s = arg;
	struct sigv4_header hdrs[3];
	struct sigv4_request sr = { 0 };
	struct sigv4_result res;
	struct sigv4_key key;
	struct s3_target t;
	struct cred_ref *ref;
	size_t n = 0;
	int err;

	err = src_cred_take(s, &ref, reason, reasonlen);
	if (err != 0 || ref == NULL)
		return err;	/* no credential: asked anonymously */
	err = target_parse(rq->url, &t);
	if (err != 0) {
		src_reason(reason, reasonlen, "s3: cannot parse the request URL");
		goto out_put;
	}
	hdrs[n++] = (struct sigv4_header){ "host", t.host };
	if (rq->range != NULL)
		hdrs[n++] = (struct sigv4_header){ "range", rq->range };
	hdrs[n++] = (struct sigv4_header){ "x-amz-content-sha256",
					   "UNSIGNED-PAYLOAD" };
	sr.method = rq->method;
	sr.path = t.path;
	sr.normalize = false;
	sr.query = t.query;
	sr.headers = hdrs;
	sr.n_headers = n;
	sr.payload_hash = "UNSIGNED-PAYLOAD";
	sr.region = s->ctx->cfg->s3_region ? s->ctx->cfg->s3_region
					    : "us-east-1";
	sr.service = "s3";
	sr.time_s = (long long)time(NULL);
	key.access_key_id = ref->c->access_key_id;
	key.secret_access_key = ref->c->secret_access_key;
	key.session_token = ref->c->session_token;
	err = sigv4_sign_headers(&sr, &key, 0, &res);
	if (err != 0) {
		src_reason(reason, reasonlen, "s3: cannot sign the request");
		if (err == AF_EPARSE)
			err = AF_ECRED;
		goto out_target;
	}
	/* The Host curl would send, made explicit: it is signed. */
	err = src_add_header(&rq->hdrs, reason, reasonlen, "Host: %s", t.host);
	if (err == 0)
		err = src_add_header(&rq->hdrs, reason, reasonlen,
				     "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	if (err == 0)
		err = src_add_header(&rq->hdrs, reason, reasonlen,
				     "x-amz-date: %s", res.amz_date);
	if (err == 0 && key.session_token != NULL)
		err = src_add_header(&rq->hdrs, reason, reasonlen,
				     "x-amz-security-token: %s",
				     key.session_token);
	if (err == 0)
		err = src_add_header(&rq->hdrs, reason, reasonlen,
				     "Authorization: %s", res.authorization);
	sigv4_result_release(&res);
out_target:
	target_release(&t);
out_put:
	cred_put(ref);
	return err;
}

/*
 * The request URL: the key decoded from the URI and encoded as SigV4
 * does, the query in its canonical form, on the endpoint path-style or
 * virtual-hosted.
 */
static int s3_url(const struct pol_config *cfg, const char *uri,
		  char **out)
{
	const char *bucket = uri + 5, *key, *q, *ep = cfg->s3_endpoint;
	char *dkey = NULL, *ekey = NULL, *cq = NULL, *def = NULL;
	bool virt;
	struct pol_buf b;
	int err = AF_EPARSE;

	key = strchr(bucket, '/');
	if (strncmp(uri, "s3://", 5) != 0 || key == NULL || key == bucket)
		return AF_EPARSE;
	q = strchr(key, '?');
	dkey = src_pct_decode(key + 1, (size_t)((q ? q : key + strlen(key)) -
						 key - 1));
	if (dkey == NULL || dkey[0] == '\0')
		goto out;
	ekey = sigv4_uri_encode(dkey, strlen(dkey), true, S3_URL_MAX);
	cq = sigv4_canonical_query(q ? q + 1 : NULL, S3_URL_MAX);
	if (ekey == NULL || cq == NULL) {
		err = -ENOMEM;
		goto out;
	}
	if (ep == NULL) {
		if (asprintf(&def, "https://s3.%s.amazonaws.com",
			     cfg->s3_region ? cfg->s3_region : "us-east-1") < 0)
			def = NULL;
		if (def == NULL) {
			err = -ENOMEM;
			goto out;
		}
		ep = def;
	}
	virt = cfg->s3_addressing == POL_S3_ADDR_VIRTUAL ||
	       (cfg->s3_addressing == POL_S3_ADDR_DEFAULT &&
		cfg->s3_endpoint == NULL);
	pol_buf_init(&b, S3_URL_MAX);
	if (virt) {
		const char *host = strstr(ep, "://") + 3;

		pol_buf_add(&b, ep, (size_t)(host - ep));
		pol_buf_add(&b, bucket, (size_t)(key - bucket));
		pol_buf_add(&b, ".", 1);
		pol_buf_adds(&b, host);
	} else {
		pol_buf_adds(&b, ep);
		pol_buf_add(&b, "/", 1);
		pol_buf_add(&b, bucket, (size_t)(key - bucket));
	}
	pol_buf_add(&b, "/", 1);
	pol_buf_adds(&b, ekey);
	if (cq[0] != '\0') {
		pol_buf_add(&b, "?", 1);
		pol_buf_adds(&b, cq);
	}
	*out = pol_buf_take(&b);
	pol_buf_release(&b);
	err = *out ? 0 : -ENOMEM;
out:
	free(def);
	free(cq);
	free(ekey);
	free(dkey);
	return err;
}

static int s3_open(struct src *s, const struct pol_registration *r)
{
	char *url = NULL;
	int err;

	err = s3_url(s->ctx->cfg, s->uri, &url);
	if (err != 0)
		return err;
	err = src_http_open(s, r, url, s3_hook);
	free(url);
	return err;
}

const struct src_ops src_s3_ops = {
	.name = "s3",
	.type = POL_SRC_S3,
	.open = s3_open,
	.size = src_http_size,
	.read_range = src_http_read_range,
	.close = src_http_close,
};
