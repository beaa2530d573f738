/*
 * uri.c - source URI forms (DESIGN §2) and the secret rules for them
 * (DESIGN §5). Error messages never quote the URI: it may carry a secret.
 */
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "pol_int.h"

#define POL_URI_MAX	4096
/* The words of the two refusals pol_problem_is_credential recognizes. */
#define URI_USERINFO_MSG "(credentials come from credentials.dir or the helper)"
#define URI_SECRET_PARAM_MSG "carries a credential (not allowed in a uri)"

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

bool pol_path_has_dot_segment(const char *p, const char *end)
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

/*
 * Percent-decodes [p, end) into out (at most outlen - 1 bytes, then NUL).
 * Returns the decoded length, or -1 for a bad escape, a decoded byte below
 * 0x20 or 0x7f, or an overflow of out.
 */
static ssize_t pct_decode(const char *p, const char *end, char *out,
			  size_t outlen)
{
	size_t o = 0;

	for (; p < end; p++) {
		int c = (unsigned char)*p;

		if (c == '%') {
			if (end - p < 3 || pol_hex_value(p[1]) < 0 ||
			    pol_hex_value(p[2]) < 0)
				return -1;
			c = pol_hex_value(p[1]) * 16 + pol_hex_value(p[2]);
			p += 2;
		}
		if (c < 0x20 || c == 0x7f || o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (ssize_t)o;
}

static bool lower_digit(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/*
 * S3 bucket naming rules (AWS "General purpose bucket naming rules"):
 * 3-63 of [a-z0-9.-], a letter or digit at both ends, no "..", not an
 * IPv4 address, none of the reserved prefixes and suffixes.
 */
static const char *s3_bucket_problem(const char *b, size_t n)
{
	static const char *const bad_prefix[] = { "xn--", "sthree-",
						  "amzn-s3-demo-" };
	static const char *const bad_suffix[] = { "-s3alias", "--ol-s3",
						  ".mrap", "--x-s3",
						  "--table-s3" };
	bool all_ip = true;

	if (n < 3 || n > 63)
		return "bucket name must be 3 to 63 characters";
	for (size_t i = 0; i < n; i++) {
		if (!lower_digit(b[i]) && b[i] != '.' && b[i] != '-')
			return "bucket name takes only a-z, 0-9, '.' and '-'";
		if (b[i] != '.' && (b[i] < '0' || b[i] > '9'))
			all_ip = false;
	}
	if (!lower_digit(b[0]) || !lower_digit(b[n - 1]))
		return "bucket name must start and end with a letter or digit";
	for (size_t i = 0; i + 1 < n; i++)
		if (b[i] == '.' && (b[i + 1] == '.' || b[i + 1] == '-' ||
				    (i > 0 && b[i - 1] == '-')))
			return "bucket name has \"..\", \".-\" or \"-.\"";
	if (all_ip)
		return "bucket name must not look like an IP address";
	for (size_t i = 0; i < sizeof(bad_prefix) / sizeof(bad_prefix[0]); i++)
		if (n >= strlen(bad_prefix[i]) &&
		    strncmp(b, bad_prefix[i], strlen(bad_prefix[i])) == 0)
			return "bucket name has a reserved prefix";
	for (size_t i = 0; i < sizeof(bad_suffix) / sizeof(bad_suffix[0]); i++) {
		size_t k = strlen(bad_suffix[i]);

		if (n >= k && strncmp(b + n - k, bad_suffix[i], k) == 0)
			return "bucket name has a reserved suffix";
	}
	return NULL;
}

/*
 * GCS bucket naming rules: [a-z0-9._-], a letter or digit at both ends,
 * 3-63 characters (up to 222 with dots, each dot-separated part at most
 * 63), no "goog" prefix and no "google" in it.
 */
static const char *gcs_bucket_problem(const char *b, size_t n)
{
	size_t part = 0;

	if (n < 3 || n > 222 || (n > 63 && !memchr(b, '.', n)))
		return "bucket name must be 3 to 63 characters (222 with dots)";
	for (size_t i = 0; i < n; i++) {
		if (!lower_digit(b[i]) && b[i] != '.' && b[i] != '-' &&
		    b[i] != '_')
			return "bucket name takes only a-z, 0-9, '.', '-' and '_'";
		part = b[i] == '.' ? 0 : part + 1;
		if (part > 63)
			return "bucket name has a part longer than 63 characters";
	}
	if (!lower_digit(b[0]) || !lower_digit(b[n - 1]))
		return "bucket name must start and end with a letter or digit";
	if (strncmp(b, "goog", 4) == 0 || memmem(b, n, "google", 6))
		return "bucket name must not contain \"goog\" or \"google\"";
	return NULL;
}

/*
 * Azure container naming rules: 3-63 of [a-z0-9-], a letter or digit
 * first, no "--", no '-' last; "$root" and "$web" are the special ones.
 */
static const char *azure_container_problem(const char *b, size_t n)
{
	if ((n == 5 && strncmp(b, "$root", 5) == 0) ||
	    (n == 4 && strncmp(b, "$web", 4) == 0))
		return NULL;
	if (n < 3 || n > 63)
		return "container name must be 3 to 63 characters";
	for (size_t i = 0; i < n; i++)
		if (!lower_digit(b[i]) && b[i] != '-')
			return "container name takes only a-z, 0-9 and '-'";
	if (!lower_digit(b[0]) || b[n - 1] == '-' || memmem(b, n, "--", 2))
		return "container name must start with a letter or digit, without \"--\" or a '-' last";
	return NULL;
}

/*
 * An object key or blob name: the path [p, end) percent-decoded must be
 * 1..1024 bytes without control characters (S3, GCS and Azure all cap
 * names at 1024 bytes).
 */
static const char *object_name_problem(const char *p, const char *end)
{
	char key[1025];

	if (p >= end)
		return "no object key";
	if (pct_decode(p, end, key, sizeof(key)) < 0)
		return "object name is longer than 1024 bytes, has a bad percent escape or a control character";
	return NULL;
}

/*
 * A Hugging Face organization or repository name, as huggingface_hub's
 * validate_repo_id has it: 1-96 of [A-Za-z0-9_.-], a letter, digit or '_'
 * at both ends, no "--" or "..", not ending in ".git".
 */
static bool hf_name_valid(const char *p, size_t n)
{
	if (n < 1 || n > 96)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
		if (i + 1 < n && (c == '-' || c == '.') && p[i + 1] == c)
			return false;
	}
	if (p[0] == '.' || p[0] == '-' || p[n - 1] == '.' || p[n - 1] == '-')
		return false;
	return !(n >= 4 && strncasecmp(p + n - 4, ".git", 4) == 0);
}

/* Every '%' in [p, end) starts an escape of two hex digits. */
static bool pct_escapes_valid(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p == '%' && (end - p < 3 || pol_hex_value(p[1]) < 0 ||
				  pol_hex_value(p[2]) < 0))
			return false;
	return true;
}

/*
 * hf://[datasets/|spaces/]{org}/{repo}/{path} (DESIGN §2, §5b). The
 * revision is the registration's source_ref, never part of the URI; the
 * path is a file: no empty segment, no trailing '/'.
 */
static const char *hf_uri_problem(const char *auth, const char *path_end,
				  const char *query)
{
	const char *p = auth;
	size_t n;

	if (*query != '\0')
		return "huggingface uri takes no query or fragment";
	if (memchr(auth, '@', (size_t)(path_end - auth)))
		return "huggingface uri must not name a revision with '@' (the commit goes in source_ref)";
	n = seg_len(p, path_end);
	if ((n == 8 && strncmp(p, "datasets", 8) == 0) ||
	    (n == 6 && strncmp(p, "spaces", 6) == 0)) {
		p += n;
		if (p < path_end)
			p++;
		n = seg_len(p, path_end);
	}
	if (n == 0)
		return "huggingface uri has no organization (hf://org/repo/path)";
	if (!hf_name_valid(p, n))
		return "huggingface organization name must be 1-96 of [A-Za-z0-9_.-], without \"--\" or \"..\"";
	p += n;
	if (p < path_end)
		p++;
	n = seg_len(p, path_end);
	if (n == 0)
		return "huggingface uri has no repository (hf://org/repo/path)";
	if (!hf_name_valid(p, n))
		return "huggingface repository name must be 1-96 of [A-Za-z0-9_.-], without \"--\" or \"..\" or a \".git\" end";
	p += n;
	if (path_end - p < 2)
		return "huggingface uri has no valid path in the repository (hf://org/repo/path)";
	for (p++; p < path_end; p += n + 1) {
		n = seg_len(p, path_end);
		if (n == 0)
			break;
	}
	if (n == 0 || path_end[-1] == '/')
		return "huggingface uri path has an empty segment or ends in '/' (it must name a file)";
	if (!pct_escapes_valid(auth, path_end))
		return "huggingface uri has a bad percent escape";
	return NULL;
}

/*
 * One path component of an OCI repository name (distribution/reference):
 * [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*.
 */
static bool oci_component_valid(const char *p, size_t n)
{
	size_t i = 0;

	for (;;) {
		if (i == n || !lower_digit(p[i]))
			return false;
		while (i < n && lower_digit(p[i]))
			i++;
		if (i == n)
			return true;
		if (p[i] == '.') {
			i++;
		} else if (p[i] == '_') {
			i += i + 1 < n && p[i + 1] == '_' ? 2 : 1;
		} else if (p[i] == '-') {
			while (i < n && p[i] == '-')
				i++;
		} else {
			return false;
		}
	}
}

/*
 * artifact-store://{repository}: an OCI distribution repository name, at
 * most 255 characters of lowercase components separated by '/'. The blob
 * is the registration's digest, so a tag or digest is refused (earlier, in
 * pol_uri_check, with its own message).
 */
static const char *store_uri_problem(const char *auth, const char *path_end,
				     const char *query)
{
	const char *p = auth;

	if (*query != '\0')
		return "artifact_store uri takes no query or fragment";
	if (path_end - auth > 255)
		return "artifact_store repository name is longer than 255 characters";
	for (;;) {
		size_t n = seg_len(p, path_end);

		if (!oci_component_valid(p, n))
			return "artifact_store repository must be lowercase [a-z0-9] components joined by '.', '_', \"__\" or '-', separated by '/' (OCI distribution name)";
		p += n;
		if (p == path_end)
			return NULL;
		p++;	/* the '/' */
	}
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
	if (pol_path_has_dot_segment(auth, path_end)) {
		pol_seterr(err, errlen,
			   "uri has a \".\" or \"..\" dot segment (also as %%2e): not a valid registration");
		return AF_EPARSE;
	}
	if (type == POL_SRC_ARTIFACT_STORE &&
	    has_prefix(uri, "artifact-store://") &&
	    strpbrk(auth, "@:") != NULL) {
		pol_seterr(err, errlen,
			   "artifact_store uri names a tag or digest (\":\" or \"@\"): give the repository only, the blob is the registration's digest");
		return AF_EPARSE;
	}
	if (memchr(auth, '@', alen)) {
		pol_seterr(err, errlen, "uri must not carry userinfo %s",
			   URI_USERINFO_MSG);
		return AF_EPARSE;
	}
	if (*path_end == '?') {
		q = path_end + 1;
		hit = query_secret(q, q + strcspn(q, "#"));
		if (hit) {
			pol_seterr(err, errlen, "uri query parameter \"%s\" %s",
				   hit, URI_SECRET_PARAM_MSG);
			return AF_EPARSE;
		}
	}

	switch (type) {
	case POL_SRC_S3:
	case POL_SRC_GCS: {
		const char *scheme = type == POL_SRC_S3 ? "s3://" : "gs://";
		const char *why;

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
		why = type == POL_SRC_S3 ? s3_bucket_problem(auth, alen)
					 : gcs_bucket_problem(auth, alen);
		if (!why)
			why = object_name_problem(auth_end + 1, path_end);
		if (!why && strchr(uri, '#'))
			why = "fragment (\"#\") in uri";
		if (why) {
			pol_seterr(err, errlen, "%s uri: %s", tname, why);
			return AF_EPARSE;
		}
		return 0;
	}
	case POL_SRC_AZURE_BLOB: {
		static const char suffix[] = ".blob.core.windows.net";
		const char *colon = memchr(auth, ':', alen);
		size_t hlen = colon ? (size_t)(colon - auth) : alen;
		size_t slen = sizeof(suffix) - 1, clen;
		const char *p, *why = NULL;

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
		if (hlen - slen < 3 || hlen - slen > 24)
			why = "account name must be 3 to 24 characters";
		for (size_t i = 0; !why && i < hlen - slen; i++)
			if (!lower_digit(auth[i]))
				why = "account name takes only a-z and 0-9";
		if (why) {
			pol_seterr(err, errlen, "azure_blob uri: %s", why);
			return AF_EPARSE;
		}
		p = auth_end;
		if (p < path_end)
			p++;
		clen = seg_len(p, path_end);
		if (clen == 0) {
			pol_seterr(err, errlen, "azure_blob uri has no container");
			return AF_EPARSE;
		}
		why = azure_container_problem(p, clen);
		p += clen;
		if (!why && path_end - p < 2) {
			pol_seterr(err, errlen, "azure_blob uri has no blob name");
			return AF_EPARSE;
		}
		if (!why)
			why = object_name_problem(p + 1, path_end);
		if (!why && strchr(uri, '#'))
			why = "fragment (\"#\") in uri";
		if (why) {
			pol_seterr(err, errlen, "azure_blob uri: %s", why);
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
		const char *why;

		if (!has_prefix(uri, "hf://")) {
			pol_seterr(err, errlen,
				   "huggingface uri must start with \"hf://\"");
			return AF_EPARSE;
		}
		why = hf_uri_problem(auth, path_end, path_end);
		if (why) {
			pol_seterr(err, errlen, "%s", why);
			return AF_EPARSE;
		}
		return 0;
	}
	case POL_SRC_ARTIFACT_STORE: {
		const char *why;

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
		why = store_uri_problem(auth, path_end, path_end);
		if (why) {
			pol_seterr(err, errlen, "%s", why);
			return AF_EPARSE;
		}
		return 0;
	}
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

bool pol_problem_is_credential(const char *msg)
{
	return msg != NULL &&
	       (strstr(msg, URI_USERINFO_MSG) != NULL ||
		strstr(msg, URI_SECRET_PARAM_MSG) != NULL);
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
