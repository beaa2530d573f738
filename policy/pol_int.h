/*
 * pol_int.h - private helpers shared by the files of policy/. Nothing
 * outside policy/ includes this header.
 */
#ifndef POL_INT_H
#define POL_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "buf.h"
#include "policy.h"

/* Largest file a policy loader reads (registrations, policy, config). */
#define POL_FILE_MAX	(16u * 1024 * 1024)

/*
 * Formats into err (may be NULL or errlen 0): always NUL-terminated,
 * truncated when too long.
 */
void pol_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Where a parser reports: the record's origin and the caller's buffer. */
struct pol_perr {
	const char *origin;
	char *err;
	size_t errlen;
};

/*
 * Writes "<origin>: <field>: <message>" into c->err. Returns AF_EPARSE, so
 * a parser can "return pol_perr_fail(…)".
 */
int pol_perr_fail(struct pol_perr *c, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Most projects one policy or key may name. */
#define POL_PROJECTS_MAX	4096

/*
 * Every key of obj must be one of allowed (NULL-terminated); otherwise
 * AF_EPARSE naming "<where>.<key>" (or "<key>" when where is NULL).
 */
int pol_perr_keys(struct pol_perr *c, json_t *obj, const char *where,
		  const char *const *allowed);

/*
 * The optional "projects" array of obj, at "<where>.projects": absent or
 * null leaves *out NULL (every project); an empty array gives a non-NULL
 * array of none. At most POL_PROJECTS_MAX valid project names, each copied.
 * On failure what was copied stays in *out and *n for the caller to free.
 */
int pol_perr_projects(struct pol_perr *c, json_t *obj, const char *where,
		      char ***out, size_t *n);

/*
 * Copies at most max characters of untrusted s into out for quoting in a
 * message: printable ASCII kept, anything else '?', "..." when cut. Returns
 * out.
 */
const char *pol_safe(const char *s, size_t max, char *out, size_t outlen);
#define POL_SAFE_LEN	48	/* characters quoted from input in messages */
#define POL_SAFE_BUF	(POL_SAFE_LEN + 4)

/*
 * Reads the whole of path (at most POL_FILE_MAX bytes) into a new
 * NUL-terminated buffer. Returns 0, -errno, or -EFBIG.
 */
int pol_read_file(const char *path, char **out, size_t *len);

/*
 * Parses an RFC 3339 timestamp (Z or numeric offset, optional fraction)
 * into epoch seconds. Returns true on success.
 */
bool pol_parse_rfc3339(const char *s, long long *out);

/*
 * Whether [p, end) (a URI's authority and path) has a "." or ".." segment,
 * also written
 * with %2e / %2E (DESIGN §2: such a URI is not a valid registration, and a
 * credential scope may not have one either).
 */
bool pol_path_has_dot_segment(const char *p, const char *end);

/*
 * Validates one registration object already parsed by jansson. origin is
 * copied. Returns 0 and *out, or AF_EPARSE with "<origin>: <field>:
 * <problem>" in err.
 */
int pol_registration_from_json(json_t *obj, const char *origin,
			       struct pol_registration **out, char *err,
			       size_t errlen);

/*
 * attestation_keys of a policy (DESIGN §12), parsed by attest.c and held
 * by the policy. Immutable once parsed.
 */
enum pol_key_kind {
	POL_KEY_ED25519 = 1,
	POL_KEY_P256,
};

struct pol_attest_key {
	char *keyid;
	enum pol_key_kind kind;
	void *pkey;		/* EVP_PKEY *, kept opaque to the other files */
	char **projects;	/* NULL: every project */
	size_t n_projects;
};

struct pol_attest_keys {
	struct pol_attest_key *v;
	size_t n;
	unsigned char fp[32];	/* SHA-256 over keyids, keys and projects */
};

/*
 * Parses the attestation_keys member v (NULL: no keys) into *keys. Returns
 * 0, or AF_EPARSE through pol_perr_fail naming the field; never quotes a
 * PEM. keys is released by pol_attest_keys_release either way.
 */
int pol_attest_keys_parse(struct pol_perr *c, json_t *v,
			  struct pol_attest_keys *keys);
void pol_attest_keys_release(struct pol_attest_keys *keys);
/*
 * Caches r's attestation result for p's keys (attest.h): copied from prev
 * (the same record in the registry loaded before, may be NULL) when it
 * holds the same evidence checked with the same keys, else checked now.
 * Returns true when an envelope was checked afresh.
 */
bool pol_attest_fill(struct pol_registration *r, const struct pol_policy *p,
		     const struct pol_registration *prev);
/* The policy's keys (policy.c); never NULL for a non-NULL p. */
const struct pol_attest_keys *pol_policy_attest_keys(const struct pol_policy *p);

#endif
