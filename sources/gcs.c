/*
 * gcs.c - the `gcs` source type (DESIGN §5b): gs://bucket/object is read
 * through the JSON API's media download,
 *   GET {endpoint}/storage/v1/b/{bucket}/o/{object}?alt=media
 * with the object name percent-encoded whole ('/' as %2F) and
 * "Authorization: Bearer" from the credential. [gcs] endpoint defaults
 * to https://storage.googleapis.com. Ranges, retries and redirects are
 * the engine's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/af.h"
#include "policy/buf.h"
#include "policy/config.h"
#include "policy/policy.h"
#include "sources/sigv4_int.h"
#include "sources/src_int.h"

#define GCS_DEFAULT_ENDPOINT	"https://storage.googleapis.com"
#define GCS_URL_MAX		8192

static int gcs_open(struct src *s, const struct pol_registration *r)
{
	const char *ep = s->ctx->cfg->gcs_endpoint ?
			 s->ctx->cfg->gcs_endpoint : GCS_DEFAULT_ENDPOINT;
	const char *bucket = s->uri + 5, *obj, *q;
	char *name = NULL, *enc = NULL, *url = NULL;
	struct pol_buf b;
	int err;

	if (strncmp(s->uri, "gs://", 5) != 0)
		return AF_EPARSE;
	obj = strchr(bucket, '/');
	if (obj == NULL || obj == bucket)
		return AF_EPARSE;
	q = strchr(obj, '?');
	name = src_pct_decode(obj + 1, (size_t)((q ? q : obj + strlen(obj)) -
						 obj - 1));
	if (name == NULL || name[0] == '\0') {
		err = AF_EPARSE;
		goto out;
	}
	enc = sigv4_uri_encode(name, strlen(name), false, GCS_URL_MAX);
	pol_buf_init(&b, GCS_URL_MAX);
	pol_buf_adds(&b, ep);
	pol_buf_adds(&b, "/storage/v1/b/");
	pol_buf_add(&b, bucket, (size_t)(obj - bucket));
	pol_buf_adds(&b, "/o/");
	pol_buf_adds(&b, enc ? enc : "");
	pol_buf_adds(&b, "?alt=media");
	if (q != NULL && q[1] != '\0') {
		pol_buf_add(&b, "&", 1);
		pol_buf_adds(&b, q + 1);
	}
	url = enc ? pol_buf_take(&b) : NULL;
	pol_buf_release(&b);
	if (url == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = src_http_open(s, r, url, src_bearer_hook);
out:
	free(url);
	free(enc);
	free(name);
	return err;
}

const struct src_ops src_gcs_ops = {
	.name = "gcs",
	.type = POL_SRC_GCS,
	.open = gcs_open,
	.size = src_http_size,
	.read_range = src_http_read_range,
	.close = src_http_close,
};
