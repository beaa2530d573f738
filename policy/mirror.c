/*
 * mirror.c - content-addressed mirrors (DESIGN §11): the URL a [fetch]
 * mirrors entry gives for one digest. Pure: no I/O, no allocation.
 *
 * A plain mirror gets "/{algo}/{hex}" appended to its path; a mirror that
 * names {algo}, {hex} or {digest} anywhere is a template instead, and
 * {digest} expands to "algo:hex" with a plain colon (an OCI registry's
 * blob path, e.g. http://tier/v2/models/blobs/{digest}).
 */
#include <errno.h>
#include <string.h>

#include "pol_int.h"
#include "policy.h"

static const char *const mirror_holders[] = { "{algo}", "{hex}",
					      "{digest}" };

/* Index in mirror_holders of the placeholder at p, or -1. */
static int holder_at(const char *p)
{
	for (size_t i = 0; i < sizeof(mirror_holders) / sizeof(*mirror_holders);
	     i++)
		if (strncmp(p, mirror_holders[i], strlen(mirror_holders[i])) ==
		    0)
			return (int)i;
	return -1;
}

bool pol_mirror_is_template(const char *mirror)
{
	for (const char *p = strchr(mirror, '{'); p; p = strchr(p + 1, '{'))
		if (holder_at(p) >= 0)
			return true;
	return false;
}

/* Appends n bytes of s at *o; false when out is full. */
static bool put(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
	if (n >= outlen - *o)
		return false;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
	return true;
}

int pol_mirror_url(const char *mirror, const struct pol_digest *d, char *out,
		   size_t outlen, char *err, size_t errlen)
{
	const char *algo = pol_algo_name(d->algo), *hex = pol_digest_hex(d);
	size_t o = 0, n;
	const char *p;

	if (algo == NULL || outlen == 0) {
		pol_seterr(err, errlen, "internal error");
		return -EINVAL;
	}
	out[0] = '\0';
	if (!pol_mirror_is_template(mirror)) {
		/* Stray braces are no placeholder: refused below all the same. */
		if (strpbrk(mirror, "{}") == NULL) {
			n = strlen(mirror);
			while (n > 0 && mirror[n - 1] == '/')
				n--;
			if (!put(out, outlen, &o, mirror, n) ||
			    !put(out, outlen, &o, "/", 1) ||
			    !put(out, outlen, &o, algo, strlen(algo)) ||
			    !put(out, outlen, &o, "/", 1) ||
			    !put(out, outlen, &o, hex, strlen(hex)))
				goto out_long;
			return 0;
		}
	}
	for (p = mirror; *p; ) {
		int h;

		n = strcspn(p, "{}");
		if (!put(out, outlen, &o, p, n))
			goto out_long;
		p += n;
		if (*p == '\0')
			break;
		h = *p == '{' ? holder_at(p) : -1;
		if (h < 0) {
			char name[POL_SAFE_LEN + 1], safe[POL_SAFE_BUF];
			size_t m = strcspn(p + 1, "{}/?#");

			if (*p == '}' || p[1 + m] != '}') {
				pol_seterr(err, errlen,
					   "unbalanced \"%c\" (placeholders: {algo}, {hex}, {digest})",
					   *p);
				return AF_EPARSE;
			}
			if (m > POL_SAFE_LEN)
				m = POL_SAFE_LEN;
			memcpy(name, p + 1, m);
			name[m] = '\0';
			pol_seterr(err, errlen,
				   "unknown placeholder {%s} (known: {algo}, {hex}, {digest})",
				   pol_safe(name, POL_SAFE_LEN, safe, sizeof(safe)));
			return AF_EPARSE;
		}
		switch (h) {
		case 0:
			if (!put(out, outlen, &o, algo, strlen(algo)))
				goto out_long;
			break;
		case 1:
			if (!put(out, outlen, &o, hex, strlen(hex)))
				goto out_long;
			break;
		case 2:
			if (!put(out, outlen, &o, d->str, strlen(d->str)))
				goto out_long;
			break;
		default:
			pol_seterr(err, errlen, "internal error");
			return -EINVAL;
		}
		p += strlen(mirror_holders[h]);
	}
	return 0;

out_long:
	pol_seterr(err, errlen, "mirror url too long");
	return -ENAMETOOLONG;
}
