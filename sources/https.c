/*
 * https.c - the `https` source type (DESIGN §2): an https:// URI, or a
 * plain http:// one where policy opts in per prefix. All the transfer work
 * (ranges, retries, redirects, TLS, timeouts) is the shared engine's.
 */
#include <errno.h>
#include <strings.h>

#include "policy/af.h"
#include "policy/policy.h"
#include "sources/src_int.h"

static int https_open(struct src *s, const struct pol_registration *r)
{
	(void)r;
	/* Only the scheme matters here; the policy checked the rest. */
	if (http_redirect_protocols(s->uri) == NULL)
		return AF_EPARSE;
	return http_src_new(s->ctx->http, s->uri, &s->http);
}

static int https_size(struct src *s, uint64_t *size, char *reason,
		      size_t reasonlen)
{
	return http_src_size(s->http, size, reason, reasonlen);
}

static int https_read_range(struct src *s, uint64_t off, uint64_t len,
			    const struct src_range_cb *cb)
{
	return http_src_read_range(s->http, off, len, cb);
}

static void https_close(struct src *s)
{
	http_src_free(s->http);
	s->http = NULL;
}

const struct src_ops src_https_ops = {
	.name = "https",
	.type = POL_SRC_HTTPS,
	.open = https_open,
	.size = https_size,
	.read_range = https_read_range,
	.close = https_close,
};
