/*
 * hdrs_int.h - private to sources/: pure parsers of the response headers
 * that source types check against a registration (hdrs.c, fuzzed by
 * tests/fuzz/fuzz_http_hdrs.c): the Hugging Face Hub's X-Repo-Commit and
 * X-Linked-Etag, and the WWW-Authenticate challenge of an OCI registry.
 *
 * Like http_parse.c, each takes a header value as (pointer, length), not
 * NUL-terminated, never reads past it, has no side effect but its
 * out-parameters (left untouched on failure) and returns 0 or AF_EPARSE.
 */
#ifndef SRC_HDRS_INT_H
#define SRC_HDRS_INT_H

#include <stdbool.h>
#include <stddef.h>

/* A commit sha: 40 hex digits. */
#define HDRS_COMMIT_LEN		40

/*
 * X-Repo-Commit: exactly 40 hex digits (either case) between optional
 * whitespace. out receives them in lowercase, NUL-terminated.
 */
int hdrs_parse_commit(const char *v, size_t len,
		      char out[HDRS_COMMIT_LEN + 1]);

/*
 * An entity tag (RFC 9110 §8.8.3): ["W/"] DQUOTE *etagc DQUOTE, between
 * optional whitespace. *tag and *taglen are the opaque part inside the
 * quotes (pointing into v); *weak says whether "W/" came first.
 */
int hdrs_parse_etag(const char *v, size_t len, const char **tag,
		    size_t *taglen, bool *weak);

/* Longest auth-param value kept; a longer one is cut and marked. */
#define HDRS_PARAM_MAX		256

/*
 * What a WWW-Authenticate header offers (RFC 9110 §11.6.1, RFC 6750 §3):
 * the first Bearer challenge's realm, service, scope and error params
 * (quoted-string unescaped; bytes outside printable ASCII replaced by '?'
 * so that the values can go to a log), and which other schemes came.
 */
struct hdrs_challenge {
	bool bearer;			/* a Bearer challenge was found */
	bool basic;			/* a Basic challenge was found */
	bool other;			/* some other scheme was found */
	bool cut;			/* a value was longer than kept */
	char realm[HDRS_PARAM_MAX];	/* "" when absent */
	char service[HDRS_PARAM_MAX];
	char scope[HDRS_PARAM_MAX];
	char error[HDRS_PARAM_MAX];
};

/*
 * Parses one WWW-Authenticate field value: one or more challenges
 * separated by commas, each "scheme" alone, "scheme token68" or
 * "scheme param=value, param=value" (token or quoted-string values).
 * Returns 0 when the whole value is well formed, else AF_EPARSE.
 */
int hdrs_parse_challenge(const char *v, size_t len,
			 struct hdrs_challenge *out);

#endif
