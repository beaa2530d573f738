/*
 * sigv4_int.h - private to sources/: AWS Signature Version 4 (the "AWS
 * Signature Version 4 for API requests" reference; HMAC-SHA256 from
 * OpenSSL). Pure: no I/O, no clock (the caller gives the time), no
 * globals; tested against the aws-c-auth signing test suite
 * (tests/unit/test_sources_sigv4.c) and fuzzed (tests/fuzz/fuzz_sigv4.c).
 *
 * The s3 source signs each attempt in the engine's header hook, with the
 * credential it already holds: signing never blocks.
 */
#ifndef SRC_SIGV4_INT_H
#define SRC_SIGV4_INT_H

#include <stdbool.h>
#include <stddef.h>

/* A request header to sign: name (any case) and raw value. */
struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method;		/* "GET", "HEAD", … */
	/*
	 * The path as the server will decode it (not percent-encoded:
	 * "/bucket/my key"), starting with '/'. It is encoded once for the
	 * canonical request (RFC 3986 unreserved characters and '/' kept),
	 * and the caller must send sigv4_encode_path's form of it.
	 */
	const char *path;
	/*
	 * Remove "." and ".." segments and empty segments first. False is
	 * S3's rule (the key is the path, as is).
	 */
	bool normalize;
	/*
	 * The query without '?' (NULL or "" for none), as written: each name
	 * and value is percent-decoded and encoded again, then sorted.
	 */
	const char *query;
	/* The headers to sign; Host must be one of them. */
	const struct sigv4_header *headers;
	size_t n_headers;
	/* Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD". */
	const char *payload_hash;
	const char *region;
	const char *service;
	long long time_s;		/* the signing time, epoch seconds */
};

/* The credential (DESIGN §5 s3 fields). session_token may be NULL. */
struct sigv4_key {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;
};

/*
 * Flags. SIGV4_TOKEN_UNSIGNED adds the session token after signing
 * instead of signing it (some STS flows); S3 signs it (no flag).
 */
#define SIGV4_TOKEN_UNSIGNED	0x1

/*
 * A signature. The strings are owned by the result and wiped by
 * sigv4_result_release (the canonical request holds the session token).
 */
struct sigv4_result {
	char amz_date[17];		/* "20150830T123600Z" */
	char signature[65];		/* lowercase hex */
	char *authorization;		/* header form: Authorization's value */
	char *query;			/* query form: the parameters to append */
	char *signed_headers;		/* "host;x-amz-date" */
	char *canonical_request;
	char *string_to_sign;
};

/*
 * Header form: the request is sent with X-Amz-Date = amz_date, and
 * (unless flags say otherwise) X-Amz-Security-Token = the session token,
 * both signed, and Authorization = authorization. Returns 0, AF_EPARSE
 * for a request that cannot be signed (no Host, a bad header name or
 * value, a path not starting with '/', a bad percent escape in the query,
 * a time out of range) or -ENOMEM. On failure out holds nothing.
 */
int sigv4_sign_headers(const struct sigv4_request *rq,
		       const struct sigv4_key *key, int flags,
		       struct sigv4_result *out);

/*
 * Query form (a presigned URL valid expires_s seconds): out->query holds
 * X-Amz-Algorithm, -Credential, -Date, -SignedHeaders, -Expires, the
 * session token when there is one, and -Signature, to append to the
 * request's own query. Returns as sigv4_sign_headers.
 */
int sigv4_presign(const struct sigv4_request *rq, const struct sigv4_key *key,
		  unsigned expires_s, int flags, struct sigv4_result *out);

/* Wipes and frees the strings of r; r is zeroed. */
void sigv4_result_release(struct sigv4_result *r);

/*
 * [s, s + n) percent-encoded as SigV4 (and RFC 3986) want it: every byte
 * but A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash) as %XX. Returns a new
 * string, or NULL when out of memory or longer than max.
 */
char *sigv4_uri_encode(const char *s, size_t n, bool keep_slash, size_t max);

/*
 * The path as the canonical request encodes it (and as the request must
 * then be sent): every byte but A-Z a-z 0-9 - . _ ~ and '/' as %XX.
 * Returns a new string, or NULL when out of memory or longer than max.
 */
char *sigv4_encode_path(const char *path, size_t max);

/*
 * The canonical query of a raw query (decoded, encoded again, sorted):
 * also the form to send it in. Returns a new string ("" for none), or
 * NULL for a bad percent escape or when out of memory.
 */
char *sigv4_canonical_query(const char *query, size_t max);

#endif
