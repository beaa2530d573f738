/*
 * cred.h - credential documents and their rules (DESIGN §5, §5b): the
 * JSON a node agent writes into credentials.dir or a credentials.helper
 * prints, the checks that refuse one (no or bad expires_at, expired,
 * lifetime over credentials.max_lifetime, unknown fields for its type),
 * scope matching and the helper's request. Pure: no I/O, no threads; the
 * provider that reads the folder and runs the helper is in sources/.
 *
 * Secrets: a struct pol_cred holds them in its own heap strings, wiped by
 * pol_cred_free. Messages from this module name the origin and the field,
 * never a secret value.
 */
#ifndef POL_CRED_H
#define POL_CRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/* Largest credential document read (file or helper output). */
#define POL_CRED_DOC_MAX	(64u * 1024)
/* Longest secret value accepted (an STS session token is ~1-2 KiB). */
#define POL_CRED_SECRET_MAX	(16u * 1024)
/* Longest scope. */
#define POL_CRED_SCOPE_MAX	4096

/*
 * One credential. A plain value object: every string is owned and freed
 * (secrets wiped first) by pol_cred_free. Secret fields the type does not
 * use are NULL.
 */
struct pol_cred {
	enum pol_source_type type;
	char *scope;			/* a URI prefix (DESIGN §5b) */
	long long expires_at_s;		/* epoch seconds */
	char *origin;			/* file path or "credentials.helper …" */
	/* s3 */
	char *access_key_id;
	char *secret_access_key;
	char *session_token;		/* NULL when absent */
	/* gcs, azure_blob, https, huggingface, artifact_store */
	char *bearer_token;
	/* azure_blob, instead of bearer_token: without a leading '?' */
	char *sas_token;
};

/*
 * Parses one credential document. origin names it in messages (a file
 * path, or the helper). Returns:
 *   0          *out is a complete credential (the time rules are
 *              pol_cred_check_time's);
 *   1          the document is JSON null: "no credential for this
 *              request" (a helper's answer); *out is NULL;
 *   AF_ECRED   the document names a valid source_type and scope but is
 *              refused (no expires_at, unknown field, missing or bad
 *              secret): *out holds type, scope and origin only (no
 *              secret) so that the caller can tell whether the refusal
 *              concerns a URI; err says why;
 *   AF_EPARSE  not even type and scope could be read (bad JSON, not an
 *              object, …): *out is NULL, err says why;
 *   -ENOMEM.
 * Messages are "<origin>: <field>: <problem>" and never quote a secret.
 */
int pol_cred_parse(const char *buf, size_t len, const char *origin,
		   struct pol_cred **out, char *err, size_t errlen);

/*
 * The time rules of DESIGN §5: refused when expired at now_s, or valid
 * longer than max_lifetime_ms from now. Returns 0 or AF_ECRED with
 * "<origin>: expires_at: <problem>" in err.
 */
int pol_cred_check_time(const struct pol_cred *c, long long now_s,
			uint64_t max_lifetime_ms, char *err, size_t errlen);

/* Frees c, wiping its secrets first. c == NULL does nothing. */
void pol_cred_free(struct pol_cred *c);

/* A deep copy (secrets included), or NULL when out of memory. */
struct pol_cred *pol_cred_dup(const struct pol_cred *c);

/*
 * Whether scope covers uri (DESIGN §5b): scope is a prefix of uri, at a
 * boundary: the scope ends in '/', or uri goes on with '/', '?' or
 * nothing ("s3://acc" never matches "s3://accredit/…"). Both are compared
 * as written (the URI policy checked is free of dot segments).
 */
bool pol_cred_scope_matches(const char *scope, const char *uri);

/*
 * Whether c may serve registration r: same source type and a matching
 * scope. Returns the scope length (the longest wins) or 0 when it may not.
 */
size_t pol_cred_match_len(const struct pol_cred *c,
			  const struct pol_registration *r);

/*
 * The helper's request for r (DESIGN §5): one line of JSON
 * {"source_type","uri","project","name","digest","intent":"pull"}
 * ending in '\n', newly allocated. NULL when out of memory.
 */
char *pol_cred_request_json(const struct pol_registration *r);

#endif
