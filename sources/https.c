/*
 * https.c - the `https` source type (DESIGN §2, §5b): an https:// URI, or
 * a plain http:// one where policy opts in per prefix, fetched as written.
 * "Authorization: Bearer" when a credential's scope matches, nothing
 * otherwise. All the transfer work (ranges, retries, redirects, TLS,
 * timeouts) is the shared engine's.
 */
#include <errno.h>
#include <strings.h>

#include "policy/af.h"
#include "policy/policy.h"
#include "sources/src_int.h"

static int https_open(struct src *s, const struct pol_registration *r)
{
	/* Only the scheme matters here; the policy checked the rest. */
	if (http_redirect_protocols(s->uri) == NULL)
		return AF_EPARSE;
	return src_http_open(s, r, s->uri, src_bearer_hook);
}

const struct src_ops src_https_ops = {
	.name = "https",
	.type = POL_SRC_HTTPS,
	.open = https_open,
	.size = src_http_size,
	.read_range = src_http_read_range,
	.close = src_http_close,
};
