/*
 * sigv4.c - AWS Signature Version 4 (see sigv4_int.h): the canonical
 * request, the string to sign, the signing key chain and the signature,
 * on OpenSSL's HMAC-SHA256. Every buffer that may hold the session token
 * or key material is a secret pol_buf (wiped on growth and release).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "policy/af.h"
#include "policy/buf.h"
#include "policy/policy.h"
#include "sources/sigv4_int.h"

#define SIGV4_ALGO		"AWS4-HMAC-SHA256"
/* Bounds on what one request may carry (canonical request, headers…). */
#define SIGV4_TEXT_MAX		(256u * 1024)
#define SIGV4_HEADERS_MAX	64
#define SIGV4_PARAMS_MAX	256

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/* Appends [s, s + n) percent-encoded; '/' kept when keep_slash. */
static void add_encoded(struct pol_buf *b, const char *s, size_t n,
			bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[3];

		if (unreserved(c) || (keep_slash && c == '/')) {
			pol_buf_add(b, (const char *)&c, 1);
			continue;
		}
		e[0] = '%';
		e[1] = hex[c >> 4];
		e[2] = hex[c & 15];
		pol_buf_add(b, e, 3);
	}
}

/*
 * Percent-decodes [s, s + n) into b (binary-safe: a decoded NUL stays a
 * byte). Returns false for a bad escape.
 */
static bool add_decoded(struct pol_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			if (n - i < 3 || pol_hex_value(s[i + 1]) < 0 ||
			    pol_hex_value(s[i + 2]) < 0)
				return false;
			c = (char)(pol_hex_value(s[i + 1]) * 16 + pol_hex_value(s[i + 2]));
			i += 2;
		}
		pol_buf_add(b, &c, 1);
	}
	return true;
}

char *sigv4_uri_encode(const char *s, size_t n, bool keep_slash, size_t max)
{
	struct pol_buf b;

	pol_buf_init(&b, max);
	pol_buf_add(&b, "", 0);
	add_encoded(&b, s, n, keep_slash);
	return pol_buf_take(&b);
}

char *sigv4_encode_path(const char *path, size_t max)
{
	struct pol_buf b;

	pol_buf_init(&b, max);
	add_encoded(&b, path, strlen(path), true);
	if (b.len == 0)
		pol_buf_add(&b, "/", 1);
	return pol_buf_take(&b);
}

/*
 * The canonical URI: with normalize, "." and ".." segments resolved and
 * empty segments dropped (RFC 3986 §5.2.4; a trailing '/' kept), then
 * every segment encoded once.
 */
static bool canonical_path(struct pol_buf *b, const char *path,
			   bool normalize)
{
	const char *segs[512];
	size_t lens[512], n = 0;
	const char *p = path;
	bool trailing = false;

	if (path[0] != '/')
		return false;
	if (!normalize) {
		add_encoded(b, path, strlen(path), true);
		return true;
	}
	while (*p) {
		size_t len;

		while (*p == '/')
			p++;
		len = strcspn(p, "/");
		trailing = p[len] == '/' || (len == 0 && p > path);
		if (len == 0)
			break;
		if (len == 1 && p[0] == '.') {
			trailing = true;
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (n > 0)
				n--;
			trailing = true;
		} else {
			if (n == sizeof(segs) / sizeof(segs[0]))
				return false;
			segs[n] = p;
			lens[n++] = len;
			trailing = p[len] == '/';
		}
		p += len;
	}
	for (size_t i = 0; i < n; i++) {
		pol_buf_add(b, "/", 1);
		add_encoded(b, segs[i], lens[i], false);
	}
	if (n == 0 || trailing)
		pol_buf_add(b, "/", 1);
	return true;
}

struct qparam {
	char *name;	/* encoded */
	char *value;	/* encoded */
};

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

/* Decodes and encodes again [s, s + n) into a new string. */
static char *reencode(const char *s, size_t n, bool *bad)
{
	struct pol_buf d, e;
	char *out;

	pol_buf_init_secret(&d, SIGV4_TEXT_MAX);
	pol_buf_init_secret(&e, SIGV4_TEXT_MAX);
	pol_buf_add(&d, "", 0);
	if (!add_decoded(&d, s, n)) {
		*bad = true;
		pol_buf_release(&d);
		return NULL;
	}
	pol_buf_add(&e, "", 0);
	add_encoded(&e, d.p ? d.p : "", d.len, false);
	pol_buf_release(&d);
	out = pol_buf_take(&e);
	pol_buf_release(&e);
	return out;
}

static void qparams_free(struct qparam *q, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (q[i].name)
			OPENSSL_cleanse(q[i].name, strlen(q[i].name));
		if (q[i].value)
			OPENSSL_cleanse(q[i].value, strlen(q[i].value));
		free(q[i].name);
		free(q[i].value);
	}
	free(q);
}

/*
 * Splits query into params (names and values re-encoded), room for
 * `extra` more. Returns 0, AF_EPARSE or -ENOMEM.
 */
static int qparams_parse(const char *query, size_t extra,
			 struct qparam **out, size_t *n_out)
{
	struct qparam *q;
	const char *p = query ? query : "";
	size_t n = 0;
	bool bad = false;

	q = calloc(SIGV4_PARAMS_MAX + extra, sizeof(*q));
	if (!q)
		return -ENOMEM;
	while (*p) {
		size_t len = strcspn(p, "&"), nlen;
		const char *eq;

		if (len > 0) {
			if (n == SIGV4_PARAMS_MAX) {
				qparams_free(q, n);
				return AF_EPARSE;
			}
			eq = memchr(p, '=', len);
			nlen = eq ? (size_t)(eq - p) : len;
			q[n].name = reencode(p, nlen, &bad);
			q[n].value = eq ? reencode(eq + 1, len - nlen - 1, &bad)
					: strdup("");
			n++;
			if (bad || !q[n - 1].name || !q[n - 1].value) {
				qparams_free(q, n);
				return bad ? AF_EPARSE : -ENOMEM;
			}
		}
		p += len;
		if (*p == '&')
			p++;
	}
	*out = q;
	*n_out = n;
	return 0;
}

static void qparams_join(struct pol_buf *b, struct qparam *q, size_t n)
{
	qsort(q, n, sizeof(*q), qparam_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			pol_buf_add(b, "&", 1);
		pol_buf_adds(b, q[i].name);
		pol_buf_add(b, "=", 1);
		pol_buf_adds(b, q[i].value);
	}
}

char *sigv4_canonical_query(const char *query, size_t max)
{
	struct qparam *q;
	struct pol_buf b;
	size_t n;
	char *out;

	if (qparams_parse(query, 0, &q, &n) != 0)
		return NULL;
	pol_buf_init_secret(&b, max);
	pol_buf_add(&b, "", 0);
	qparams_join(&b, q, n);
	qparams_free(q, n);
	out = pol_buf_take(&b);
	pol_buf_release(&b);
	return out;
}

struct chdr {
	char name[64];		/* lowercase */
	const char *value;
	size_t order;
};

static int chdr_cmp(const void *a, const void *b)
{
	const struct chdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static bool token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != ':' && c != '(' && c != ')' &&
	       c != ',' && c != ';' && c != '<' && c != '>' && c != '@' &&
	       c != '[' && c != ']' && c != '\\' && c != '"' && c != '/' &&
	       c != '?' && c != '=' && c != '{' && c != '}';
}

/* Appends v trimmed, runs of whitespace (folded lines too) as one space. */
static bool add_trimmed(struct pol_buf *b, const char *v)
{
	bool space = false, any = false;

	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			space = any;
			continue;
		}
		if (*p < 0x20 || *p == 0x7f)
			return false;
		if (space)
			pol_buf_add(b, " ", 1);
		space = false;
		any = true;
		pol_buf_add(b, (const char *)p, 1);
	}
	return true;
}

/*
 * Canonical headers ("name:value\n" sorted, duplicates joined with ',')
 * into b and the signed header list into sh. Returns 0 or AF_EPARSE.
 */
static int canonical_headers(const struct sigv4_header *h, size_t n,
			     struct pol_buf *b, struct pol_buf *sh)
{
	struct chdr hs[SIGV4_HEADERS_MAX + 2];
	bool host = false;

	if (n > SIGV4_HEADERS_MAX + 2)
		return AF_EPARSE;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(h[i].name);

		if (len == 0 || len >= sizeof(hs[i].name) || !h[i].value)
			return AF_EPARSE;
		for (size_t k = 0; k < len; k++) {
			unsigned char c = (unsigned char)h[i].name[k];

			if (!token_char(c))
				return AF_EPARSE;
			hs[i].name[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		hs[i].name[len] = '\0';
		hs[i].value = h[i].value;
		hs[i].order = i;
		if (strcmp(hs[i].name, "host") == 0)
			host = true;
	}
	if (!host)
		return AF_EPARSE;
	qsort(hs, n, sizeof(hs[0]), chdr_cmp);
	for (size_t i = 0; i < n; i++) {
		bool same = i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0;

		if (same) {
			pol_buf_add(b, ",", 1);
		} else {
			if (i > 0) {
				pol_buf_add(b, "\n", 1);
				pol_buf_add(sh, ";", 1);
			}
			pol_buf_adds(b, hs[i].name);
			pol_buf_add(b, ":", 1);
			pol_buf_adds(sh, hs[i].name);
		}
		if (!add_trimmed(b, hs[i].value))
			return AF_EPARSE;
	}
	pol_buf_add(b, "\n", 1);
	return 0;
}

static void hex_of(const unsigned char *d, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool sha256_hex(const char *s, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return false;
	hex_of(md, 32, out);
	return true;
}

static bool hmac(const void *key, size_t klen, const char *msg,
		 unsigned char out[32])
{
	unsigned int len = 0;

	return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg,
		    strlen(msg), out, &len) != NULL && len == 32;
}

/* kSigning = HMAC chain over date, region, service, "aws4_request". */
static bool signing_key(const char *secret, const char *date,
			const char *region, const char *service,
			unsigned char out[32])
{
	struct pol_buf k;
	unsigned char a[32], b[32];
	bool ok;

	pol_buf_init_secret(&k, 64 * 1024);
	pol_buf_adds(&k, "AWS4");
	pol_buf_adds(&k, secret);
	ok = !k.failed && hmac(k.p, k.len, date, a) &&
	     hmac(a, 32, region, b) && hmac(b, 32, service, a) &&
	     hmac(a, 32, "aws4_request", out);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	pol_buf_release(&k);
	return ok;
}

/* Credential parts that end up in a header or a query: no separators. */
static bool scope_part_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f || *s == '/' || *s == ',' ||
		    *s == '&' || *s == '=')
			return false;
	return true;
}

enum sign_form { FORM_HEADERS, FORM_QUERY };

static int sign(const struct sigv4_request *rq, const struct sigv4_key *key,
		enum sign_form form, unsigned expires_s, int flags,
		struct sigv4_result *out)
{
	struct sigv4_header hdrs[SIGV4_HEADERS_MAX + 2];
	struct pol_buf cr, sh, sts, tmp;
	struct qparam *q = NULL;
	char date[9], scope[256], cr_hash[65], *cred_enc = NULL;
	unsigned char kdate[32], sig[32];
	bool sign_token;
	size_t nq = 0, nh;
	struct tm tm;
	time_t t;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!rq->method || !rq->path || !rq->payload_hash ||
	    !key->access_key_id || !key->secret_access_key ||
	    !scope_part_ok(rq->region) || !scope_part_ok(rq->service) ||
	    !scope_part_ok(key->access_key_id) ||
	    rq->n_headers > SIGV4_HEADERS_MAX)
		return AF_EPARSE;
	for (const char *m = rq->method; *m; m++)
		if (!token_char((unsigned char)*m))
			return AF_EPARSE;
	t = (time_t)rq->time_s;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1000 ||
	    tm.tm_year + 1900 > 9999)
		return AF_EPARSE;
	strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm);
	memcpy(date, out->amz_date, 8);
	date[8] = '\0';
	snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date,
		 rq->region, rq->service);
	sign_token = key->session_token && !(flags & SIGV4_TOKEN_UNSIGNED);

	pol_buf_init_secret(&cr, SIGV4_TEXT_MAX);
	pol_buf_init(&sh, SIGV4_TEXT_MAX);
	pol_buf_init(&sts, SIGV4_TEXT_MAX);
	pol_buf_init_secret(&tmp, SIGV4_TEXT_MAX);

	memcpy(hdrs, rq->headers, rq->n_headers * sizeof(hdrs[0]));
	nh = rq->n_headers;
	if (form == FORM_HEADERS) {
		hdrs[nh].name = "x-amz-date";
		hdrs[nh++].value = out->amz_date;
		if (sign_token) {
			hdrs[nh].name = "x-amz-security-token";
			hdrs[nh++].value = key->session_token;
		}
	}

	/* Method, path. */
	pol_buf_adds(&cr, rq->method);
	pol_buf_add(&cr, "\n", 1);
	if (!canonical_path(&cr, rq->path, rq->normalize)) {
		ret = AF_EPARSE;
		goto out;
	}
	pol_buf_add(&cr, "\n", 1);

	/* The signed header list is part of the query form's query. */
	{
		struct pol_buf ch;

		pol_buf_init_secret(&ch, SIGV4_TEXT_MAX);
		ret = canonical_headers(hdrs, nh, &ch, &sh);
		if (ret == 0 && (ch.failed || sh.failed))
			ret = -ENOMEM;
		if (ret == 0)
			pol_buf_add(&tmp, ch.p, ch.len);
		pol_buf_release(&ch);
		if (ret)
			goto out;
	}

	ret = qparams_parse(rq->query, 6, &q, &nq);
	if (ret)
		goto out;
	if (form == FORM_QUERY) {
		struct pol_buf c;
		char num[24];
		bool bad = false;

		pol_buf_init(&c, 1024);
		pol_buf_adds(&c, key->access_key_id);
		pol_buf_add(&c, "/", 1);
		pol_buf_adds(&c, scope);
		cred_enc = c.failed ? NULL : reencode(c.p, c.len, &bad);
		pol_buf_release(&c);
		snprintf(num, sizeof(num), "%u", expires_s);
		q[nq].name = strdup("X-Amz-Algorithm");
		q[nq++].value = strdup(SIGV4_ALGO);
		q[nq].name = strdup("X-Amz-Credential");
		q[nq++].value = cred_enc ? strdup(cred_enc) : NULL;
		q[nq].name = strdup("X-Amz-Date");
		q[nq++].value = strdup(out->amz_date);
		q[nq].name = strdup("X-Amz-Expires");
		q[nq++].value = strdup(num);
		if (sign_token) {
			q[nq].name = strdup("X-Amz-Security-Token");
			q[nq++].value = reencode(key->session_token,
						 strlen(key->session_token),
						 &bad);
		}
		q[nq].name = strdup("X-Amz-SignedHeaders");
		q[nq++].value = sh.p ? reencode(sh.p, sh.len, &bad) : NULL;
		for (size_t i = 0; i < nq; i++)
			if (!q[i].name || !q[i].value)
				ret = -ENOMEM;
		if (ret)
			goto out;
	}
	qparams_join(&cr, q, nq);
	pol_buf_add(&cr, "\n", 1);
	pol_buf_add(&cr, tmp.p, tmp.len);
	pol_buf_add(&cr, "\n", 1);
	pol_buf_add(&cr, sh.p, sh.len);
	pol_buf_add(&cr, "\n", 1);
	pol_buf_adds(&cr, rq->payload_hash);
	if (cr.failed || sh.failed) {
		ret = -ENOMEM;
		goto out;
	}

	if (!sha256_hex(cr.p, cr.len, cr_hash)) {
		ret = -ENOMEM;
		goto out;
	}
	pol_buf_addf(&sts, SIGV4_ALGO "\n%s\n%s\n%s", out->amz_date, scope,
		     cr_hash);
	if (sts.failed ||
	    !signing_key(key->secret_access_key, date, rq->region,
			 rq->service, kdate) ||
	    !hmac(kdate, 32, sts.p, sig)) {
		ret = -ENOMEM;
		goto out;
	}
	hex_of(sig, 32, out->signature);

	pol_buf_release(&tmp);
	if (form == FORM_HEADERS) {
		pol_buf_addf(&tmp,
			     SIGV4_ALGO " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
			     key->access_key_id, scope, sh.p, out->signature);
		out->authorization = pol_buf_take(&tmp);
		ret = out->authorization ? 0 : -ENOMEM;
	} else {
		bool bad = false;
		char *sh_enc = reencode(sh.p, sh.len, &bad);
		char *tok = key->session_token ?
			    reencode(key->session_token,
				     strlen(key->session_token), &bad) : NULL;

		pol_buf_addf(&tmp,
			     "X-Amz-Algorithm=" SIGV4_ALGO
			     "&X-Amz-Credential=%s&X-Amz-Date=%s&X-Amz-SignedHeaders=%s&X-Amz-Expires=%u",
			     cred_enc, out->amz_date, sh_enc ? sh_enc : "",
			     expires_s);
		if (tok) {
			pol_buf_adds(&tmp, "&X-Amz-Security-Token=");
			pol_buf_adds(&tmp, tok);
			OPENSSL_cleanse(tok, strlen(tok));
		}
		pol_buf_adds(&tmp, "&X-Amz-Signature=");
		pol_buf_adds(&tmp, out->signature);
		free(tok);
		free(sh_enc);
		out->query = (sh_enc && (tok || !key->session_token)) ?
			     pol_buf_take(&tmp) : NULL;
		ret = out->query ? 0 : -ENOMEM;
	}
	if (ret == 0) {
		out->signed_headers = pol_buf_take(&sh);
		out->canonical_request = pol_buf_take(&cr);
		out->string_to_sign = pol_buf_take(&sts);
		if (!out->signed_headers || !out->canonical_request ||
		    !out->string_to_sign)
			ret = -ENOMEM;
	}
out:
	OPENSSL_cleanse(kdate, sizeof(kdate));
	OPENSSL_cleanse(sig, sizeof(sig));
	free(cred_enc);
	if (q)
		qparams_free(q, nq);
	pol_buf_release(&cr);
	pol_buf_release(&sh);
	pol_buf_release(&sts);
	pol_buf_release(&tmp);
	if (ret)
		sigv4_result_release(out);
	return ret;
}

int sigv4_sign_headers(const struct sigv4_request *rq,
		       const struct sigv4_key *key, int flags,
		       struct sigv4_result *out)
{
	return sign(rq, key, FORM_HEADERS, 0, flags, out);
}

int sigv4_presign(const struct sigv4_request *rq, const struct sigv4_key *key,
		  unsigned expires_s, int flags, struct sigv4_result *out)
{
	return sign(rq, key, FORM_QUERY, expires_s, flags, out);
}

static void wipe_free(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

void sigv4_result_release(struct sigv4_result *r)
{
	wipe_free(r->authorization);
	wipe_free(r->query);
	wipe_free(r->signed_headers);
	wipe_free(r->canonical_request);
	wipe_free(r->string_to_sign);
	OPENSSL_cleanse(r, sizeof(*r));
}
