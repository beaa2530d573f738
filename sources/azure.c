/*
 * azure.c - the `azure_blob` source type (DESIGN §5b):
 * https://{account}.blob.core.windows.net/{container}/{blob} is read as
 *   GET {endpoint}/{container}/{blob}
 * with x-ms-version: 2021-08-06, x-ms-date and x-ms-range, and either the
 * credential's SAS appended as the query (for that attempt only: it never
 * sits in a URL that could be shown) or "Authorization: Bearer". [azure_blob]
 * endpoint may hold {account} (http://127.0.0.1:10000/{account} for
 * Azurite); the default is https://{account}.blob.core.windows.net.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/af.h"
#include "policy/buf.h"
#include "policy/config.h"
#include "policy/cred.h"
#include "policy/policy.h"
#include "sources/src_int.h"

#define AZ_DEFAULT_ENDPOINT	"https://{account}.blob.core.windows.net"
#define AZ_VERSION		"2021-08-06"
#define AZ_URL_MAX		8192

static int azure_hook(void *arg, struct http_req *rq, char *reason,
		      size_t reasonlen)
{
	struct src *s = arg;
	struct cred_ref *ref;
	char date[64];
	struct tm tm;
	time_t now = time(NULL);
	int err;

	err = src_cred_take(s, &ref, reason, reasonlen);
	if (err != 0)
		return err;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	err = src_add_header(&rq->hdrs, reason, reasonlen,
			     "x-ms-version: " AZ_VERSION);
	if (err == 0)
		err = src_add_header(&rq->hdrs, reason, reasonlen,
				     "x-ms-date: %s", date);
	if (err == 0 && rq->range != NULL)
		err = src_add_header(&rq->hdrs, reason, reasonlen,
				     "x-ms-range: %s", rq->range);
	if (err == 0 && ref != NULL && ref->c->bearer_token != NULL)
		err = src_add_header(&rq->hdrs, reason, reasonlen,
				     "Authorization: Bearer %s",
				     ref->c->bearer_token);
	if (err == 0 && ref != NULL && ref->c->sas_token != NULL) {
		rq->url_query = strdup(ref->c->sas_token);
		if (rq->url_query == NULL) {
			src_reason(reason, reasonlen, "out of memory");
			err = -ENOMEM;
		}
	}
	cred_put(ref);
	return err;
}

/* The request URL: the endpoint with {account} filled, then the path. */
static int azure_url(const struct pol_config *cfg, const char *uri,
		     char **out)
{
	const char *ep = cfg->azure_endpoint ? cfg->azure_endpoint
					     : AZ_DEFAULT_ENDPOINT;
	const char *acct = uri + 8, *dot, *path, *p;
	struct pol_buf b;

	if (strncmp(uri, "https://", 8) != 0)
		return AF_EPARSE;
	dot = strchr(acct, '.');
	path = strchr(acct, '/');
	if (dot == NULL || path == NULL || dot > path || dot == acct)
		return AF_EPARSE;
	pol_buf_init(&b, AZ_URL_MAX);
	for (p = ep; *p;) {
		const char *ph = strstr(p, "{account}");

		if (ph == NULL) {
			pol_buf_adds(&b, p);
			break;
		}
		pol_buf_add(&b, p, (size_t)(ph - p));
		pol_buf_add(&b, acct, (size_t)(dot - acct));
		p = ph + 9;
	}
	pol_buf_adds(&b, path);
	*out = pol_buf_take(&b);
	pol_buf_release(&b);
	return *out ? 0 : -ENOMEM;
}

static int azure_open(struct src *s, const struct pol_registration *r)
{
	char *url = NULL;
	int err;

	err = azure_url(s->ctx->cfg, s->uri, &url);
	if (err != 0)
		return err;
	err = src_http_open(s, r, url, azure_hook);
	free(url);
	return err;
}

const struct src_ops src_azure_ops = {
	.name = "azure_blob",
	.type = POL_SRC_AZURE_BLOB,
	.open = azure_open,
	.size = src_http_size,
	.read_range = src_http_read_range,
	.close = src_http_close,
};
