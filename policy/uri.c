/*
 * uri.c - source URI forms (DESIGN §2) and the secret rules for them
 * (DESIGN §5). Error messages never quote the URI: it may carry a secret.
 */
#include <string.h>
#include <strings.h>

#include "pol_int.h"

#define POL_URI_MAX	4096

/* Query parameters that carry a credential (DESIGN §5), compared caselessly. */
static const char *const secret_params[] = {
	"sig", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
	"x-goog-signature", "x-goog-credential", "token", "access_token",
};

/*
 * Checks the parameter names of the query [q, end). The name is
 * percent-decoded first so "%73ig" is still "sig". Returns the list entry
 * matched, or NULL.
 */
static const char *query_secret(const char *q, const char *end)
{
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *pend = amp ? amp : end;
		const char *eq = memchr(q, '=', (size_t)(pend - q));
		const char *nend = eq ? eq : pend;
		char name[64];
		size_t n = 0;
		bool too_long = false;

		for (const char *p = q; p < nend; p++) {
			char c = *p;

			if (c == '%' && nend - p >= 3 && pol_hex_value(p[1]) >= 0 &&
			    pol_hex_value(p[2]) >= 0) {
				c = (char)(pol_hex_value(p[1]) * 16 + pol_hex_value(p[2]));
				p += 2;
			} else if (c == '+') {
				c = ' ';
			}
			if (n + 1 >= sizeof(name)) {
				too_long = true;
				break;
			}
			name[n++] = c;
		}
		name[n] = '\0';
		if (!too_long)
			for (size_t i = 0; i < sizeof(secret_params) /
					       sizeof(secret_params[0]); i++)
				if (strcasecmp(name, secret_params[i]) == 0)
					return secret_params[i];
		q = amp ? amp + 1 : end;
	}
	return NULL;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Length of the leading segment of [p, end) up to '/' (or end). */
static size_t seg_len(const char *p, const char *end)
{
	const char *slash = memchr(p, '/', (size_t)(end - p));

	return (size_t)((slash ? slash : end) - p);
}

/*
 * True when the segment [p, p + n) is "." or "..", also written with
 * %2e/%2E (RFC 3986 §2.3: an encoded unreserved character is the same
 * character, so a server or curl may remove it as a dot segment, §5.2.4).
 */
static bool is_dot_segment(const char *p, size_t n)
{
	size_t dots = 0, i = 0;

	while (i < n) {
		if (p[i] == '.') {
			i++;
		} else if (n - i >= 3 && p[i] == '%' && p[i + 1] == '2' &&
			   (p[i + 2] == 'e' || p[i + 2] == 'E')) {
			i += 3;
		} else {
			return false;
		}
		dots++;
	}
	return dots == 1 || dots == 2;
}

/* True when [p, end) (authority and path) has a dot segment. */
static bool has_dot_segment(const char *p, const char *end)
{
	while (p < end) {
		size_t n;

		while (p < end && *p == '/')
			p++;
		n = seg_len(p, end);
		if (is_dot_segment(p, n))
			return true;
		p += n;
	}
	return false;
}

int pol_uri_check(enum pol_source_type type, const char *uri, char *err,
		  size_t errlen)
{
	const char *tname = pol_source_type_name(type);
	const char *sep, *auth, *auth_end, *path_end, *hit, *q;
	size_t len, alen;

	if (!tname) {
		pol_seterr(err, errlen, "unknown source type");
		return AF_EPARSE;
	}
	if (!uri || !*uri) {
		pol_seterr(err, errlen, "empty uri");
		return AF_EPARSE;
	}
	len = strnlen(uri, POL_URI_MAX + 1);
	if (len > POL_URI_MAX) {
		pol_seterr(err, errlen, "uri longer than %d bytes",
			   POL_URI_MAX);
		return AF_EPARSE;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)uri[i];

		if (c <= 0x20 || c >= 0x7f) {
			pol_seterr(err, errlen,
				   "uri has a space, control or non-ASCII byte at offset %zu (percent-encode it)",
				   i);
			return AF_EPARSE;
		}
		if (c == '\\') {
			pol_seterr(err, errlen,
				   "uri has a backslash at offset %zu (not a valid registration: it may be read as a path separator)",
				   i);
			return AF_EPARSE;
		}
	}
	sep = strstr(uri, "://");
	if (!sep) {
		pol_seterr(err, errlen, "uri has no scheme (\"scheme://\")");
		return AF_EPARSE;
	}
	auth = sep + 3;
	auth_end = auth + strcspn(auth, "/?#");
	path_end = auth_end + strcspn(auth_end, "?#");
	alen = (size_t)(auth_end - auth);
	/*
	 * DESIGN §2: policy prefixes and credential scopes compare the URI as
	 * written, so it must mean what it says: no "." or ".." segment.
	 */
	if (has_dot_segment(auth, path_end)) {
		pol_seterr(err, errlen,
			   "uri has a \".\" or \"..\" dot segment (also as %%2e): not a valid registration");
		return AF_EPARSE;
	}
	if (memchr(auth, '@', alen)) {
		pol_seterr(err, errlen,
			   "uri must not carry userinfo (credentials come from credentials.dir or the helper)");
		return AF_EPARSE;
	}
	if (*path_end == '?') {
		q = path_end + 1;
		hit = query_secret(q, q + strcspn(q, "#"));
		if (hit) {
			pol_seterr(err, errlen,
				   "uri query parameter \"%s\" carries a credential (not allowed in a uri)",
				   hit);
			return AF_EPARSE;
		}
	}

	switch (type) {
	case POL_SRC_S3:
	case POL_SRC_GCS: {
		const char *scheme = type == POL_SRC_S3 ? "s3://" : "gs://";

		if (!has_prefix(uri, scheme)) {
			pol_seterr(err, errlen, "%s uri must start with \"%s\"",
				   tname, scheme);
			return AF_EPARSE;
		}
		if (alen == 0) {
			pol_seterr(err, errlen, "%s uri has no bucket", tname);
			return AF_EPARSE;
		}
		if (path_end - auth_end < 2) {
			pol_seterr(err, errlen, "%s uri has no object key",
				   tname);
			return AF_EPARSE;
		}
		return 0;
	}
	case POL_SRC_AZURE_BLOB: {
		static const char suffix[] = ".blob.core.windows.net";
		const char *colon = memchr(auth, ':', alen);
		size_t hlen = colon ? (size_t)(colon - auth) : alen;
		size_t slen = sizeof(suffix) - 1;
		const char *p;

		if (!has_prefix(uri, "https://")) {
			pol_seterr(err, errlen,
				   "azure_blob uri must start with \"https://\"");
			return AF_EPARSE;
		}
		if (hlen <= slen ||
		    strncasecmp(auth + hlen - slen, suffix, slen) != 0 ||
		    memchr(auth, '.', hlen - slen)) {
			pol_seterr(err, errlen,
				   "azure_blob uri host must be <account>%s",
				   suffix);
			return AF_EPARSE;
		}
		p = auth_end;
		if (p < path_end)
			p++;
		if (seg_len(p, path_end) == 0) {
			pol_seterr(err, errlen, "azure_blob uri has no container");
			return AF_EPARSE;
		}
		p += seg_len(p, path_end);
		if (path_end - p < 2) {
			pol_seterr(err, errlen, "azure_blob uri has no blob name");
			return AF_EPARSE;
		}
		return 0;
	}
	case POL_SRC_HTTPS:
		if (!has_prefix(uri, "https://") &&
		    !has_prefix(uri, "http://")) {
			pol_seterr(err, errlen,
				   "https uri must start with \"https://\" (or \"http://\")");
			return AF_EPARSE;
		}
		if (alen == 0 || auth[0] == ':') {
			pol_seterr(err, errlen, "https uri has no host");
			return AF_EPARSE;
		}
		return 0;
	case POL_SRC_HUGGINGFACE: {
		const char *p = auth_end;

		if (!has_prefix(uri, "hf://")) {
			pol_seterr(err, errlen,
				   "huggingface uri must start with \"hf://\"");
			return AF_EPARSE;
		}
		if (alen == 0) {
			pol_seterr(err, errlen,
				   "huggingface uri has no organization (hf://org/repo/path)");
			return AF_EPARSE;
		}
		if (p < path_end)
			p++;
		if (seg_len(p, path_end) == 0) {
			pol_seterr(err, errlen,
				   "huggingface uri has no repository (hf://org/repo/path)");
			return AF_EPARSE;
		}
		p += seg_len(p, path_end);
		if (path_end - p < 2) {
			pol_seterr(err, errlen,
				   "huggingface uri has no valid path in the repository (hf://org/repo/path)");
			return AF_EPARSE;
		}
		return 0;
	}
	case POL_SRC_ARTIFACT_STORE:
		if (!has_prefix(uri, "artifact-store://")) {
			pol_seterr(err, errlen,
				   "artifact_store uri must start with \"artifact-store://\"");
			return AF_EPARSE;
		}
		if (alen == 0) {
			pol_seterr(err, errlen,
				   "artifact_store uri has no repository");
			return AF_EPARSE;
		}
		return 0;
	case POL_SRC_FILE:
		if (!has_prefix(uri, "file:///")) {
			pol_seterr(err, errlen,
				   "file uri must be \"file:///absolute/path\"");
			return AF_EPARSE;
		}
		if (path_end - auth_end < 2 || *path_end != '\0') {
			pol_seterr(err, errlen,
				   "file uri must be \"file:///absolute/path\" without query or fragment");
			return AF_EPARSE;
		}
		return 0;
	default:
		pol_seterr(err, errlen, "unknown source type");
		return AF_EPARSE;
	}
}

char *pol_uri_redact(const char *uri, char *out, size_t outlen)
{
	const char *sep, *auth, *auth_end, *at, *end, *p;
	size_t o = 0;

	if (!out || outlen == 0)
		return out;
	out[0] = '\0';
	if (!uri)
		return out;
	end = uri + strcspn(uri, "?#");
	sep = strstr(uri, "://");
	if (sep && sep < end) {
		auth = sep + 3;
		auth_end = auth + strcspn(auth, "/?#");
		at = NULL;
		for (p = auth; p < auth_end; p++)
			if (*p == '@')
				at = p;
		for (p = uri; p < end && o + 1 < outlen; p++) {
			if (at && p == auth)
				p = at + 1;
			if (p >= end)
				break;
			out[o++] = *p;
		}
	} else {
		for (p = uri; p < end && o + 1 < outlen; p++)
			out[o++] = *p;
	}
	out[o] = '\0';
	return out;
}
