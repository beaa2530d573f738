/*
 * digest.c - canonical digests and the enumerations and names of DESIGN §2.
 */
#include <string.h>

#include "pol_int.h"

static size_t algo_raw_len(enum pol_algo algo)
{
	switch (algo) {
	case POL_ALGO_SHA256:
		return 32;
	case POL_ALGO_SHA512:
		return 64;
	default:
		return 0;
	}
}

const char *pol_algo_name(enum pol_algo algo)
{
	switch (algo) {
	case POL_ALGO_SHA256:
		return "sha256";
	case POL_ALGO_SHA512:
		return "sha512";
	default:
		return NULL;
	}
}

int pol_algo_parse(const char *name, enum pol_algo *out)
{
	if (!name)
		return AF_EPARSE;
	if (strcmp(name, "sha256") == 0) {
		*out = POL_ALGO_SHA256;
		return 0;
	}
	if (strcmp(name, "sha512") == 0) {
		*out = POL_ALGO_SHA512;
		return 0;
	}
	return AF_EPARSE;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int pol_digest_parse(const char *s, struct pol_digest *out, char *err,
		     size_t errlen)
{
	char safe[POL_SAFE_BUF], algo_s[16];
	const char *colon, *hex;
	struct pol_digest d;
	size_t alen, hlen, want;
	enum pol_algo algo;

	if (!s || !*s) {
		pol_seterr(err, errlen, "empty digest");
		return AF_EPARSE;
	}
	colon = strchr(s, ':');
	if (!colon) {
		pol_seterr(err, errlen,
			   "missing \":\" between algorithm and hex in \"%s\"",
			   pol_safe(s, 16, safe, sizeof(safe)));
		return AF_EPARSE;
	}
	alen = (size_t)(colon - s);
	if (alen == 0 || alen >= sizeof(algo_s)) {
		pol_seterr(err, errlen, "unknown algorithm \"%s\"",
			   pol_safe(s, alen < 16 ? alen : 16, safe,
				    sizeof(safe)));
		return AF_EPARSE;
	}
	memcpy(algo_s, s, alen);
	algo_s[alen] = '\0';
	if (pol_algo_parse(algo_s, &algo) < 0) {
		pol_seterr(err, errlen, "unknown algorithm \"%s\"",
			   pol_safe(algo_s, 16, safe, sizeof(safe)));
		return AF_EPARSE;
	}
	hex = colon + 1;
	want = 2 * algo_raw_len(algo);
	for (hlen = 0; hex[hlen]; hlen++) {
		char c = hex[hlen];

		if (c >= 'A' && c <= 'F') {
			pol_seterr(err, errlen, "uppercase hex not allowed");
			return AF_EPARSE;
		}
		if (hexval(c) < 0) {
			pol_seterr(err, errlen,
				   "invalid character at offset %zu of the hex",
				   hlen);
			return AF_EPARSE;
		}
	}
	if (hlen != want) {
		pol_seterr(err, errlen, "%s needs %zu hex digits, got %zu",
			   algo_s, want, hlen);
		return AF_EPARSE;
	}
	memset(&d, 0, sizeof(d));
	d.algo = algo;
	d.raw_len = want / 2;
	for (size_t i = 0; i < d.raw_len; i++)
		d.raw[i] = (unsigned char)(hexval(hex[2 * i]) << 4 |
					   hexval(hex[2 * i + 1]));
	memcpy(d.str, s, alen + 1 + want);
	d.str[alen + 1 + want] = '\0';
	*out = d;
	return 0;
}

int pol_digest_from_raw(enum pol_algo algo, const unsigned char *raw,
			size_t len, struct pol_digest *out)
{
	static const char digits[] = "0123456789abcdef";
	const char *name = pol_algo_name(algo);
	struct pol_digest d;
	size_t nlen, o;

	if (!name || len != algo_raw_len(algo))
		return AF_EPARSE;
	memset(&d, 0, sizeof(d));
	d.algo = algo;
	d.raw_len = len;
	memcpy(d.raw, raw, len);
	nlen = strlen(name);
	memcpy(d.str, name, nlen);
	d.str[nlen] = ':';
	o = nlen + 1;
	for (size_t i = 0; i < len; i++) {
		d.str[o++] = digits[raw[i] >> 4];
		d.str[o++] = digits[raw[i] & 15];
	}
	d.str[o] = '\0';
	*out = d;
	return 0;
}

const char *pol_digest_hex(const struct pol_digest *d)
{
	const char *colon = strchr(d->str, ':');

	return colon ? colon + 1 : d->str;
}

bool pol_digest_equal(const struct pol_digest *a, const struct pol_digest *b)
{
	return a->algo == b->algo && a->raw_len == b->raw_len &&
	       memcmp(a->raw, b->raw, a->raw_len) == 0;
}

/* Name tables: the index is the enum value. */
static const char *const source_names[] = {
	[POL_SRC_S3] = "s3",
	[POL_SRC_GCS] = "gcs",
	[POL_SRC_AZURE_BLOB] = "azure_blob",
	[POL_SRC_HTTPS] = "https",
	[POL_SRC_HUGGINGFACE] = "huggingface",
	[POL_SRC_ARTIFACT_STORE] = "artifact_store",
	[POL_SRC_FILE] = "file",
};

static const char *const lifecycle_names[] = {
	[POL_LC_REGISTERED] = "registered",
	[POL_LC_ACTIVE] = "active",
	[POL_LC_DEPRECATED] = "deprecated",
	[POL_LC_RETIRED] = "retired",
	[POL_LC_REVOKED] = "revoked",
};

static const char *const trust_names[] = {
	[POL_TRUST_UNTRUSTED] = "untrusted",
	[POL_TRUST_VERIFIED] = "verified",
	[POL_TRUST_ATTESTED] = "attested",
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *table_name(const char *const *t, size_t n, int v)
{
	if (v <= 0 || (size_t)v >= n)
		return NULL;
	return t[v];
}

static int table_parse(const char *const *t, size_t n, const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 1; i < n; i++)
		if (t[i] && strcmp(t[i], name) == 0)
			return (int)i;
	return -1;
}

const char *pol_source_type_name(enum pol_source_type t)
{
	return table_name(source_names, N_OF(source_names), (int)t);
}

int pol_source_type_parse(const char *name, enum pol_source_type *out)
{
	int v = table_parse(source_names, N_OF(source_names), name);

	if (v < 0)
		return AF_EPARSE;
	*out = (enum pol_source_type)v;
	return 0;
}

const char *pol_lifecycle_name(enum pol_lifecycle s)
{
	return table_name(lifecycle_names, N_OF(lifecycle_names), (int)s);
}

int pol_lifecycle_parse(const char *name, enum pol_lifecycle *out)
{
	int v = table_parse(lifecycle_names, N_OF(lifecycle_names), name);

	if (v < 0)
		return AF_EPARSE;
	*out = (enum pol_lifecycle)v;
	return 0;
}

const char *pol_trust_name(enum pol_trust s)
{
	return table_name(trust_names, N_OF(trust_names), (int)s);
}

int pol_trust_parse(const char *name, enum pol_trust *out)
{
	int v = table_parse(trust_names, N_OF(trust_names), name);

	if (v < 0)
		return AF_EPARSE;
	*out = (enum pol_trust)v;
	return 0;
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool pol_project_valid(const char *s)
{
	size_t i;

	if (!s || !is_lower_alnum(s[0]))
		return false;
	for (i = 1; s[i]; i++) {
		if (i >= 63)
			return false;
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	}
	return true;
}

bool pol_name_valid(const char *s)
{
	size_t i;

	if (!s || !s[0] || s[0] == '.')
		return false;
	for (i = 0; s[i]; i++) {
		char c = s[i];

		if (i >= 200)
			return false;
		if (!((c >= 'A' && c <= 'Z') || is_lower_alnum(c) ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/*
 * DESIGN §2 says [a-z0-9-]+; the length is capped at 63 (like a project)
 * so that <name>@<channel> stays a usable file name.
 */
bool pol_channel_valid(const char *s)
{
	size_t i;

	if (!s || !s[0])
		return false;
	for (i = 0; s[i]; i++) {
		if (i >= 63)
			return false;
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	}
	return true;
}
