/*
 * config.c - the INI configuration file (DESIGN §10) through libinih.
 *
 * libinih (r55 on Debian 12) does not pass line numbers to the handler, so
 * the text is fed through our own line reader, which counts lines, refuses
 * lines too long for inih's buffer (rather than letting inih split them)
 * and NUL bytes, and checks section names (an empty unknown section never
 * reaches the handler).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "pol_int.h"

#define CFG_MIRRORS_MAX	16
#define CFG_VALUE_MAX	4096

enum cfg_kind {
	CFG_PATH,
	CFG_URL,		/* http(s)://, no userinfo, no secret query */
	CFG_BASE_URL,		/* CFG_URL without query or fragment: paths go after it */
	CFG_PROXY,		/* any scheme://, no userinfo */
	CFG_SIZE,
	CFG_CHUNK,
	CFG_DURATION,
	CFG_UINT,
	CFG_BOOL,
	CFG_PASSTHROUGH,
	CFG_MIRRORS,
	CFG_USER,
	CFG_LOG_FORMAT,
	CFG_LISTEN,
	CFG_ENDPOINT,		/* §5b endpoint rule */
	CFG_ENDPOINT_ACCOUNT,	/* the same, "{account}" allowed */
	CFG_REGION,
	CFG_ADDRESSING,
};

struct cfg_key {
	const char *section;
	const char *key;
	enum cfg_kind kind;
	size_t off;		/* offset of the field in struct pol_config */
	unsigned min, max;	/* CFG_UINT only */
};

#define F(f) offsetof(struct pol_config, f)
static const struct cfg_key cfg_keys[] = {
	{ "cache", "dir", CFG_PATH, F(cache_dir), 0, 0 },
	{ "cache", "max_size", CFG_SIZE, F(cache_max_size), 0, 0 },
	{ "cache", "chunk_size", CFG_CHUNK, F(chunk_size), 0, 0 },
	{ "registry", "dir", CFG_PATH, F(registry_dir), 0, 0 },
	{ "registry", "url", CFG_BASE_URL, F(registry_url), 0, 0 },
	{ "registry", "token_file", CFG_PATH, F(registry_token_file), 0, 0 },
	{ "registry", "refresh", CFG_DURATION, F(registry_refresh_ms), 0, 0 },
	{ "policy", "file", CFG_PATH, F(policy_file), 0, 0 },
	{ "credentials", "dir", CFG_PATH, F(credentials_dir), 0, 0 },
	{ "credentials", "helper", CFG_PATH, F(credentials_helper), 0, 0 },
	{ "credentials", "max_lifetime", CFG_DURATION,
	  F(credentials_max_lifetime_ms), 0, 0 },
	{ "credentials", "helper_timeout", CFG_DURATION,
	  F(credentials_helper_timeout_ms), 0, 0 },
	{ "fetch", "connections", CFG_UINT, F(fetch_connections), 1, 64 },
	{ "fetch", "retries", CFG_UINT, F(fetch_retries), 0, 100 },
	{ "fetch", "connect_timeout", CFG_DURATION, F(connect_timeout_ms), 0,
	  0 },
	{ "fetch", "ca_file", CFG_PATH, F(ca_file), 0, 0 },
	{ "fetch", "low_speed_timeout", CFG_DURATION, F(low_speed_timeout_ms),
	  0, 0 },
	{ "fetch", "failure_backoff", CFG_DURATION, F(failure_backoff_ms), 0,
	  0 },
	{ "fetch", "proxy", CFG_PROXY, F(proxy), 0, 0 },
	{ "fetch", "mirrors", CFG_MIRRORS, F(mirrors), 0, 0 },
	{ "audit", "log", CFG_PATH, F(audit_log), 0, 0 },
	{ "audit", "syslog", CFG_BOOL, F(audit_syslog), 0, 0 },
	{ "fs", "passthrough", CFG_PASSTHROUGH, F(passthrough), 0, 0 },
	{ "daemon", "run_as", CFG_USER, F(run_as), 0, 0 },
	{ "log", "file", CFG_PATH, F(log_file), 0, 0 },
	{ "log", "format", CFG_LOG_FORMAT, F(log_format), 0, 0 },
	{ "s3", "region", CFG_REGION, F(s3_region), 0, 0 },
	{ "s3", "endpoint", CFG_ENDPOINT, F(s3_endpoint), 0, 0 },
	{ "s3", "addressing", CFG_ADDRESSING, F(s3_addressing), 0, 0 },
	{ "gcs", "endpoint", CFG_ENDPOINT, F(gcs_endpoint), 0, 0 },
	{ "azure_blob", "endpoint", CFG_ENDPOINT_ACCOUNT, F(azure_endpoint), 0,
	  0 },
	{ "huggingface", "endpoint", CFG_ENDPOINT, F(hf_endpoint), 0, 0 },
	{ "artifact_store", "endpoint", CFG_ENDPOINT,
	  F(artifact_store_endpoint), 0, 0 },
	{ "metrics", "listen", CFG_LISTEN, F(metrics_listen), 0, 0 },
};
#undef F

static const char *const cfg_sections[] = {
	"cache", "registry", "policy", "credentials", "fetch", "audit", "fs",
	"daemon", "log", "metrics",
	"s3", "gcs", "azure_blob", "huggingface", "artifact_store",
};

struct cfg_ctx {
	struct pol_config *cfg;
	const char *origin;
	const char *p, *end;	/* reader cursor */
	int line;		/* line last handed to inih */
	int err_line;		/* line of the first error; 0 when none */
	bool nomem;
	char *err;
	size_t errlen;
};

static void cfg_fail(struct cfg_ctx *c, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cfg_fail(struct cfg_ctx *c, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (c->err_line)
		return;
	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	c->err_line = line;
	pol_seterr(c->err, c->errlen, "%s:%d: %s", c->origin, line, msg);
}

static bool section_known(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(cfg_sections) / sizeof(cfg_sections[0]);
	     i++)
		if (strlen(cfg_sections[i]) == n &&
		    strncmp(cfg_sections[i], s, n) == 0)
			return true;
	return false;
}

/* An ini_reader over the text in memory, one line per call. */
static char *cfg_reader(char *str, int num, void *stream)
{
	struct cfg_ctx *c = stream;
	const char *nl, *s, *close;
	char safe[POL_SAFE_BUF];
	size_t n, skip;

	if (c->p >= c->end || c->err_line)
		return NULL;
	nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
	n = nl ? (size_t)(nl - c->p) + 1 : (size_t)(c->end - c->p);
	c->line++;
	/* inih needs room for "\r\n\0" beyond the longest line. */
	if (num < 4 || n + 3 > (size_t)num) {
		cfg_fail(c, c->line, "line longer than %d characters",
			 num > 3 ? num - 3 : 0);
		return NULL;
	}
	if (memchr(c->p, '\0', n)) {
		cfg_fail(c, c->line, "NUL byte in line");
		return NULL;
	}
	/*
	 * Leading blanks are dropped: inih would take an indented line for
	 * the continuation of the previous value (multi-line values), and
	 * "  max_size = 1G" would silently become part of another key.
	 */
	for (skip = 0; skip < n && (c->p[skip] == ' ' || c->p[skip] == '\t');
	     skip++)
		;
	memcpy(str, c->p + skip, n - skip);
	str[n - skip] = '\0';
	c->p += n;

	s = str;
	if (*s == '[') {
		s++;
		close = strchr(s, ']');
		if (close && !section_known(s, (size_t)(close - s))) {
			char name[POL_SAFE_LEN + 1];
			size_t m = (size_t)(close - s);

			if (m > POL_SAFE_LEN)
				m = POL_SAFE_LEN;
			memcpy(name, s, m);
			name[m] = '\0';
			cfg_fail(c, c->line, "unknown section [%s]",
				 pol_safe(name, POL_SAFE_LEN, safe,
					  sizeof(safe)));
		}
	}
	return str;
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* Parses leading decimal digits; *end points after them. */
static bool parse_u64(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;

	if (!is_digit(*s))
		return false;
	for (; is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*end = s;
	*out = v;
	return true;
}

int pol_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	const char *end, *u;
	uint64_t v, mult = 1;

	if (!s || !parse_u64(s, &end, &v))
		return AF_EPARSE;
	if (*end) {
		u = strchr(units, *end >= 'a' ? *end - 32 : *end);
		if (!u || !*u)
			return AF_EPARSE;
		for (const char *p = units; p <= u; p++)
			mult *= 1024;
		end++;
		if (strcmp(end, "iB") != 0 && strcmp(end, "B") != 0 &&
		    *end != '\0')
			return AF_EPARSE;
	}
	if (v > UINT64_MAX / mult)
		return AF_EPARSE;
	*out = v * mult;
	return 0;
}

int pol_parse_duration_ms(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v, mult;

	if (!s || !parse_u64(s, &end, &v))
		return AF_EPARSE;
	if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0)
		mult = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mult = 3600 * 1000;
	else if (strcmp(end, "d") == 0)
		mult = 86400 * 1000;
	else
		return AF_EPARSE;
	if (v > UINT64_MAX / mult)
		return AF_EPARSE;
	*out = v * mult;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return AF_EPARSE;
}

/*
 * A URL in the config: "scheme://host…", no spaces, no userinfo (DESIGN
 * §5: secrets never in the config file). http_only: http or https, and no
 * credential-bearing query parameter either. Never quotes the value.
 */
static bool url_ok(const char *s, bool http_only, char *why, size_t whylen)
{
	const char *sep = strstr(s, "://"), *auth, *p;
	char uerr[256];
	size_t alen;

	for (p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			pol_seterr(why, whylen,
				   "space, control or non-ASCII byte in url");
			return false;
		}
	if (!sep || sep == s) {
		pol_seterr(why, whylen, "not a url (want scheme://host/…)");
		return false;
	}
	for (p = s; p < sep; p++)
		if (!((*p >= 'a' && *p <= 'z') || is_digit(*p) || *p == '+' ||
		      *p == '-' || *p == '.')) {
			pol_seterr(why, whylen, "bad url scheme");
			return false;
		}
	auth = sep + 3;
	alen = strcspn(auth, "/?#");
	if (memchr(auth, '@', alen)) {
		pol_seterr(why, whylen,
			   "url must not carry userinfo (secrets never go in the config file)");
		return false;
	}
	if (alen == 0) {
		pol_seterr(why, whylen, "url has no host");
		return false;
	}
	if (!http_only)
		return true;
	if (pol_uri_check(POL_SRC_HTTPS, s, uerr, sizeof(uerr)) < 0) {
		pol_seterr(why, whylen, "%s", uerr);
		return false;
	}
	return true;
}

/*
 * The control plane is reached over https:// except on a loopback address
 * (DESIGN §3): 127.0.0.0/8, [::1] or localhost, with an optional port.
 */
static bool host_is_loopback(const char *auth)
{
	size_t n = strcspn(auth, "/?#");
	const char *colon;

	if (n >= 5 && strncmp(auth, "[::1]", 5) == 0)
		return n == 5 || auth[5] == ':';
	colon = memchr(auth, ':', n);
	if (colon)
		n = (size_t)(colon - auth);
	if (n == 9 && strncmp(auth, "localhost", 9) == 0)
		return true;
	if (n < 4 || strncmp(auth, "127.", 4) != 0)
		return false;
	for (size_t i = 4; i < n; i++)
		if (!is_digit(auth[i]) && auth[i] != '.')
			return false;
	return true;
}

int pol_parse_listen(const char *s, char *host, size_t hostlen,
		     uint16_t *port, char *why, size_t whylen)
{
	const char *colon, *p = NULL;
	unsigned char bin[16];
	char h[64];
	uint64_t v = 0;
	size_t n;

	if (!s || !*s) {
		pol_seterr(why, whylen, "empty address");
		return AF_EPARSE;
	}
	colon = strrchr(s, ':');
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':') {
			pol_seterr(why, whylen, "want [IPV6]:PORT");
			return AF_EPARSE;
		}
		n = (size_t)(close - s - 1);
		if (n == 0 || n >= sizeof(h)) {
			pol_seterr(why, whylen, "bad IPv6 address");
			return AF_EPARSE;
		}
		memcpy(h, s + 1, n);
		h[n] = '\0';
		if (inet_pton(AF_INET6, h, bin) != 1) {
			pol_seterr(why, whylen, "bad IPv6 address");
			return AF_EPARSE;
		}
		p = close + 2;
	} else if (!colon) {
		/* A bare port: this node only, never every interface by default. */
		snprintf(h, sizeof(h), "127.0.0.1");
		p = s;
	} else {
		n = (size_t)(colon - s);
		if (n == 0 || (n == 1 && s[0] == '*')) {
			pol_seterr(why, whylen,
				   "give the address to listen on: 127.0.0.1:PORT for this node only, or 0.0.0.0:PORT for every interface");
			return AF_EPARSE;
		}
		if (n >= sizeof(h)) {
			pol_seterr(why, whylen, "bad address");
			return AF_EPARSE;
		}
		memcpy(h, s, n);
		h[n] = '\0';
		if (strcmp(h, "localhost") == 0)
			snprintf(h, sizeof(h), "127.0.0.1");
		else if (inet_pton(AF_INET, h, bin) != 1) {
			pol_seterr(why, whylen,
				   "want an IP address (IPV4:PORT or [IPV6]:PORT), not a host name");
			return AF_EPARSE;
		}
		p = colon + 1;
	}
	if (!is_digit(*p)) {
		pol_seterr(why, whylen, "want ADDRESS:PORT");
		return AF_EPARSE;
	}
	for (; is_digit(*p) && v <= 65535; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (*p || v == 0 || v > 65535) {
		pol_seterr(why, whylen, "port must be a number from 1 to 65535");
		return AF_EPARSE;
	}
	if (strlen(h) >= hostlen) {
		pol_seterr(why, whylen, "address too long");
		return AF_EPARSE;
	}
	memcpy(host, h, strlen(h) + 1);
	*port = (uint16_t)v;
	return 0;
}

/*
 * A source endpoint (DESIGN §5b): an https:// URL, or http:// on a
 * loopback address, without userinfo, query or fragment; "{account}" is
 * the only placeholder and only where allowed (azure_blob).
 */
static bool endpoint_ok(const char *v, bool account, char *why,
			size_t whylen)
{
	const char *p;

	if (!url_ok(v, true, why, whylen))
		return false;
	if (strpbrk(v, "?#")) {
		pol_seterr(why, whylen, "endpoint must not have a query or fragment");
		return false;
	}
	for (p = v; (p = strpbrk(p, "{}")) != NULL; p += 9)
		if (!account || strncmp(p, "{account}", 9) != 0) {
			pol_seterr(why, whylen, account ?
				   "endpoint takes only the {account} placeholder" :
				   "endpoint takes no placeholder");
			return false;
		}
	if (strncmp(v, "http://", 7) == 0 && !host_is_loopback(v + 7)) {
		pol_seterr(why, whylen,
			   "http:// only for a loopback address (use https://)");
		return false;
	}
	if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0) {
		pol_seterr(why, whylen, "endpoint must be https:// (or http:// on loopback)");
		return false;
	}
	return true;
}

bool pol_url_endpoint_ok(const char *url)
{
	if (!url)
		return false;
	if (strncasecmp(url, "https://", 8) == 0)
		return url[8] != '\0';
	return strncasecmp(url, "http://", 7) == 0 && host_is_loopback(url + 7);
}

static int set_string(char **slot, const char *v)
{
	char *d = strdup(v);

	if (!d)
		return -ENOMEM;
	free(*slot);
	*slot = d;
	return 0;
}

/*
 * A [fetch] mirrors entry (DESIGN §11): http(s) only, http:// on a loopback
 * address only (the endpoint rule of §5b), no userinfo, no fragment, known
 * placeholders only and none in the host, a query only in a template (a
 * plain mirror gets /{algo}/{hex} appended to its path), and what it
 * expands to must be a URI that could be registered (no credential in the
 * query, no dot segment).
 */
static bool mirror_ok(const char *m, char *why, size_t whylen)
{
	static const struct pol_digest sample = {
		.algo = POL_ALGO_SHA256,
		.raw_len = 32,
		.str = "sha256:0000000000000000000000000000000000000000000000000000000000000000",
	};
	char url[CFG_VALUE_MAX + 256], uerr[256];
	const char *auth;
	size_t alen;

	if (!url_ok(m, false, why, whylen))
		return false;
	if (strncmp(m, "https://", 8) != 0 && strncmp(m, "http://", 7) != 0) {
		pol_seterr(why, whylen, "not an http:// or https:// url");
		return false;
	}
	if (strncmp(m, "http://", 7) == 0 && !host_is_loopback(m + 7)) {
		pol_seterr(why, whylen,
			   "http:// only for a loopback address (use https://)");
		return false;
	}
	if (strchr(m, '#')) {
		pol_seterr(why, whylen, "url must not have a fragment");
		return false;
	}
	auth = strstr(m, "://") + 3;
	alen = strcspn(auth, "/?#");
	if (memchr(auth, '{', alen) || memchr(auth, '}', alen)) {
		pol_seterr(why, whylen, "placeholder in the host");
		return false;
	}
	if (strchr(m, '?') && !pol_mirror_is_template(m)) {
		pol_seterr(why, whylen,
			   "a mirror with a query must be a template ({algo}, {hex} or {digest})");
		return false;
	}
	if (pol_mirror_url(m, &sample, url, sizeof(url), why, whylen) < 0)
		return false;
	if (pol_uri_check(POL_SRC_HTTPS, url, uerr, sizeof(uerr)) < 0) {
		pol_seterr(why, whylen, "%s", uerr);
		return false;
	}
	return true;
}

static int add_mirrors(struct cfg_ctx *c, const char *v)
{
	struct pol_config *cfg = c->cfg;
	char why[256];
	const char *p = v;

	while (*p) {
		char **nv;
		size_t n;
		char *m;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if (cfg->n_mirrors >= CFG_MIRRORS_MAX) {
			cfg_fail(c, c->line, "mirrors: more than %d mirrors",
				 CFG_MIRRORS_MAX);
			return AF_EPARSE;
		}
		m = strndup(p, n);
		if (!m)
			return -ENOMEM;
		if (!mirror_ok(m, why, sizeof(why))) {
			char shown[128], red[CFG_VALUE_MAX + 1];

			pol_uri_redact(m, red, sizeof(red));
			free(m);
			cfg_fail(c, c->line, "mirrors: %s: %s",
				 pol_safe(red, sizeof(shown) - 4, shown,
					  sizeof(shown)), why);
			return AF_EPARSE;
		}
		nv = realloc(cfg->mirrors, (cfg->n_mirrors + 1) * sizeof(*nv));
		if (!nv) {
			free(m);
			return -ENOMEM;
		}
		cfg->mirrors = nv;
		cfg->mirrors[cfg->n_mirrors++] = m;
		p += n;
	}
	return 0;
}

/* Key names that look like a secret: refused with a pointed message. */
static bool looks_secret(const char *k)
{
	static const char *const words[] = { "token", "secret", "password",
					     "passwd", "key", "credential",
					     "sas", "sig" };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasestr(k, words[i]))
			return true;
	return false;
}

/*
 * A system user name ([a-z_][a-z0-9_-]{0,31}, as useradd takes it) or a
 * decimal uid; never root: dropping to root drops nothing (DESIGN §13).
 */
static bool user_ok(const char *v)
{
	size_t n = strlen(v);
	bool digits = n > 0;

	if (n == 0 || n > 32 || strcmp(v, "root") == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		digits &= v[i] >= '0' && v[i] <= '9';
	if (digits)
		return strspn(v, "0") < n && n <= 10;
	if (!((v[0] >= 'a' && v[0] <= 'z') || v[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
		      v[i] == '_' || v[i] == '-'))
			return false;
	return true;
}

static int set_value(struct cfg_ctx *c, const struct cfg_key *k,
		     const char *v)
{
	char *base = (char *)c->cfg;
	char why[256];
	uint64_t u;
	bool b;

	switch (k->kind) {
	case CFG_PATH:
		if (!*v) {
			cfg_fail(c, c->line, "%s: empty path", k->key);
			return AF_EPARSE;
		}
		for (const char *p = v; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				cfg_fail(c, c->line,
					 "%s: control character in path",
					 k->key);
				return AF_EPARSE;
			}
		return set_string((char **)(base + k->off), v);
	case CFG_BASE_URL:
		if (strpbrk(v, "?#")) {
			cfg_fail(c, c->line,
				 "%s: a query string or fragment is not allowed (the API paths are appended to it)",
				 k->key);
			return AF_EPARSE;
		}
		/* fall through */
	case CFG_URL:
	case CFG_PROXY:
		if (!url_ok(v, k->kind != CFG_PROXY, why, sizeof(why))) {
			cfg_fail(c, c->line, "%s: %s", k->key, why);
			return AF_EPARSE;
		}
		if (k->kind != CFG_PROXY && strncmp(v, "http://", 7) == 0 &&
		    !host_is_loopback(v + 7)) {
			cfg_fail(c, c->line,
				 "%s: http:// only for a loopback address (use https://)",
				 k->key);
			return AF_EPARSE;
		}
		return set_string((char **)(base + k->off), v);
	case CFG_LOG_FORMAT:
		if (strcmp(v, "text") == 0)
			c->cfg->log_format = AF_LOG_TEXT;
		else if (strcmp(v, "json") == 0)
			c->cfg->log_format = AF_LOG_JSON;
		else {
			cfg_fail(c, c->line, "%s: must be text or json", k->key);
			return AF_EPARSE;
		}
		c->cfg->log_format_set = true;
		return 0;
	case CFG_LISTEN: {
		char host[64];
		uint16_t port;

		if (pol_parse_listen(v, host, sizeof(host), &port, why,
				     sizeof(why)) < 0) {
			cfg_fail(c, c->line, "%s: %s", k->key, why);
			return AF_EPARSE;
		}
		return set_string((char **)(base + k->off), v);
	}
	case CFG_USER:
		if (!user_ok(v)) {
			cfg_fail(c, c->line,
				 "%s: not a user name or a uid other than 0",
				 k->key);
			return AF_EPARSE;
		}
		return set_string((char **)(base + k->off), v);
	case CFG_SIZE:
		if (pol_parse_size(v, &u) < 0) {
			cfg_fail(c, c->line,
				 "%s: not a size (a number with K, M, G or T)",
				 k->key);
			return AF_EPARSE;
		}
		*(uint64_t *)(base + k->off) = u;
		return 0;
	case CFG_CHUNK:
		if (pol_parse_size(v, &u) < 0) {
			cfg_fail(c, c->line,
				 "%s: not a size (a number with K, M, G or T)",
				 k->key);
			return AF_EPARSE;
		}
		if (u < 64 * 1024 || u > 1024 * 1024 * 1024 || (u & (u - 1))) {
			cfg_fail(c, c->line,
				 "%s: must be a power of two from 64K to 1G",
				 k->key);
			return AF_EPARSE;
		}
		*(uint64_t *)(base + k->off) = u;
		return 0;
	case CFG_DURATION:
		if (pol_parse_duration_ms(v, &u) < 0 || u == 0) {
			cfg_fail(c, c->line,
				 "%s: not a positive duration (a number with s, m, h or d)",
				 k->key);
			return AF_EPARSE;
		}
		*(uint64_t *)(base + k->off) = u;
		return 0;
	case CFG_UINT: {
		const char *end;

		if (!parse_u64(v, &end, &u) || *end || u < k->min ||
		    u > k->max) {
			cfg_fail(c, c->line,
				 "%s: must be an integer from %u to %u",
				 k->key, k->min, k->max);
			return AF_EPARSE;
		}
		*(unsigned *)(base + k->off) = (unsigned)u;
		return 0;
	}
	case CFG_BOOL:
		if (parse_bool(v, &b) < 0) {
			cfg_fail(c, c->line,
				 "%s: must be true or false (yes/no, 1/0)",
				 k->key);
			return AF_EPARSE;
		}
		*(bool *)(base + k->off) = b;
		return 0;
	case CFG_PASSTHROUGH:
		if (strcmp(v, "auto") == 0)
			c->cfg->passthrough = POL_PASSTHROUGH_AUTO;
		else if (strcmp(v, "on") == 0)
			c->cfg->passthrough = POL_PASSTHROUGH_ON;
		else if (strcmp(v, "off") == 0)
			c->cfg->passthrough = POL_PASSTHROUGH_OFF;
		else {
			cfg_fail(c, c->line, "%s: must be auto, on or off",
				 k->key);
			return AF_EPARSE;
		}
		return 0;
	case CFG_MIRRORS:
		return add_mirrors(c, v);
	case CFG_ENDPOINT:
	case CFG_ENDPOINT_ACCOUNT: {
		char *d;
		size_t n;
		int ret;

		if (!endpoint_ok(v, k->kind == CFG_ENDPOINT_ACCOUNT, why,
				 sizeof(why))) {
			cfg_fail(c, c->line, "%s: %s", k->key, why);
			return AF_EPARSE;
		}
		d = strdup(v);
		if (!d)
			return -ENOMEM;
		/* Stored without trailing '/': requests append "/path". */
		n = strlen(d);
		while (n > (size_t)(strstr(d, "://") + 4 - d) && d[n - 1] == '/')
			d[--n] = '\0';
		ret = set_string((char **)(base + k->off), d);
		free(d);
		return ret;
	}
	case CFG_REGION:
		if (!*v || strlen(v) > 32 ||
		    strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
		    strlen(v)) {
			cfg_fail(c, c->line,
				 "%s: not a region name (such as us-east-1)",
				 k->key);
			return AF_EPARSE;
		}
		return set_string((char **)(base + k->off), v);
	case CFG_ADDRESSING:
		if (strcmp(v, "path") == 0)
			c->cfg->s3_addressing = POL_S3_ADDR_PATH;
		else if (strcmp(v, "virtual") == 0)
			c->cfg->s3_addressing = POL_S3_ADDR_VIRTUAL;
		else {
			cfg_fail(c, c->line, "%s: must be path or virtual",
				 k->key);
			return AF_EPARSE;
		}
		return 0;
	default:
		cfg_fail(c, c->line, "%s: internal error", k->key);
		return AF_EPARSE;
	}
}

static int cfg_handler(void *user, const char *section, const char *name,
		       const char *value)
{
	struct cfg_ctx *c = user;
	char ssafe[POL_SAFE_BUF], ksafe[POL_SAFE_BUF];
	const struct cfg_key *k = NULL;
	int ret;

	if (c->err_line || c->nomem)
		return 0;
	pol_safe(section, POL_SAFE_LEN, ssafe, sizeof(ssafe));
	pol_safe(name, POL_SAFE_LEN, ksafe, sizeof(ksafe));
	if (!*section) {
		cfg_fail(c, c->line, "key \"%s\" outside any [section]", ksafe);
		return 0;
	}
	if (!section_known(section, strlen(section))) {
		cfg_fail(c, c->line, "unknown section [%s]", ssafe);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cfg_keys) / sizeof(cfg_keys[0]); i++)
		if (strcmp(cfg_keys[i].section, section) == 0 &&
		    strcmp(cfg_keys[i].key, name) == 0)
			k = &cfg_keys[i];
	if (!k) {
		if (looks_secret(name))
			cfg_fail(c, c->line,
				 "unknown key \"%s\" in [%s]: secrets never go in the config file (use credentials.dir or registry.token_file)",
				 ksafe, ssafe);
		else
			cfg_fail(c, c->line, "unknown key \"%s\" in [%s]",
				 ksafe, ssafe);
		return 0;
	}
	if (strlen(value) > CFG_VALUE_MAX) {
		cfg_fail(c, c->line, "%s: value too long", k->key);
		return 0;
	}
	ret = set_value(c, k, value);
	if (ret == -ENOMEM)
		c->nomem = true;
	return ret == 0;
}

int pol_config_init(struct pol_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->chunk_size = 8 * 1024 * 1024;
	cfg->registry_refresh_ms = 30 * 1000;
	cfg->credentials_max_lifetime_ms = 12ULL * 3600 * 1000;
	cfg->credentials_helper_timeout_ms = 30 * 1000;
	cfg->fetch_connections = 8;
	cfg->fetch_retries = 5;
	cfg->connect_timeout_ms = 10 * 1000;
	cfg->low_speed_timeout_ms = 30 * 1000;
	cfg->failure_backoff_ms = 30 * 1000;
	cfg->audit_syslog = false;
	cfg->passthrough = POL_PASSTHROUGH_AUTO;
	cfg->cache_dir = strdup("/var/cache/artifactfs");
	cfg->registry_dir = strdup("/etc/artifactfs/registry");
	cfg->audit_log = strdup("/var/log/artifactfs/audit.jsonl");
	cfg->s3_region = strdup("us-east-1");
	if (!cfg->cache_dir || !cfg->registry_dir || !cfg->audit_log ||
	    !cfg->s3_region) {
		pol_config_release(cfg);
		return -ENOMEM;
	}
	return 0;
}

int pol_config_parse(struct pol_config *cfg, const char *buf, size_t len,
		     const char *origin, char *err, size_t errlen)
{
	struct cfg_ctx c;
	int ret;

	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.origin = origin ? origin : "config";
	c.p = buf ? buf : "";
	c.end = c.p + (buf ? len : 0);
	c.err = err;
	c.errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
	ret = ini_parse_stream(cfg_reader, &c, cfg_handler, &c);
	if (c.nomem || ret == -2) {
		pol_seterr(err, errlen, "%s: out of memory", c.origin);
		return -ENOMEM;
	}
	if (ret > 0 && (!c.err_line || ret < c.err_line)) {
		c.err_line = 0;
		cfg_fail(&c, ret,
			 "syntax error (want \"key = value\" or \"[section]\")");
	}
	if (c.err_line)
		return AF_EPARSE;
	if (ret != 0) {
		pol_seterr(err, errlen, "%s: cannot parse", c.origin);
		return AF_EPARSE;
	}
	return 0;
}

int pol_config_load(const char *path, struct pol_config *cfg, char *err,
		    size_t errlen)
{
	size_t len;
	char *buf;
	int ret;

	ret = pol_config_init(cfg);
	if (ret < 0) {
		pol_seterr(err, errlen, "%s: out of memory", path);
		return ret;
	}
	ret = set_string(&cfg->path, path);
	if (ret < 0) {
		pol_seterr(err, errlen, "%s: out of memory", path);
		goto out_release;
	}
	ret = pol_read_file(path, &buf, &len);
	if (ret < 0) {
		pol_seterr(err, errlen, "%s: %s", path, af_strerror(ret));
		goto out_release;
	}
	ret = pol_config_parse(cfg, buf, len, path, err, errlen);
	free(buf);
	if (ret == 0)
		return 0;
out_release:
	pol_config_release(cfg);
	return ret;
}

void pol_config_release(struct pol_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->cache_dir);
	free(cfg->registry_dir);
	free(cfg->registry_url);
	free(cfg->registry_token_file);
	free(cfg->policy_file);
	free(cfg->credentials_dir);
	free(cfg->credentials_helper);
	free(cfg->ca_file);
	free(cfg->proxy);
	for (size_t i = 0; i < cfg->n_mirrors; i++)
		free(cfg->mirrors[i]);
	free(cfg->mirrors);
	free(cfg->audit_log);
	free(cfg->run_as);
	free(cfg->log_file);
	free(cfg->metrics_listen);
	free(cfg->s3_region);
	free(cfg->s3_endpoint);
	free(cfg->gcs_endpoint);
	free(cfg->azure_endpoint);
	free(cfg->hf_endpoint);
	free(cfg->artifact_store_endpoint);
	memset(cfg, 0, sizeof(*cfg));
}
