/*
 * attest.h - attestation evidence checked by the node itself (DESIGN §12):
 * a DSSE envelope whose payload is an in-toto Statement v1, verified with
 * the policy's `attestation_keys` (Ed25519, ECDSA P-256/SHA-256) over
 * DSSE's PAE encoding, with OpenSSL EVP.
 *
 * Pure: no I/O, no threads, no globals. The functions that take const
 * objects are safe to call from any thread at once; pol_registry_attest
 * writes the records of a registry and must run before that registry is
 * shared with readers.
 *
 * Verification is paid once per registration version: pol_registry_attest
 * caches each record's result with the record, keyed by a fingerprint of
 * the policy's key set, and reuses the result of the identical record of
 * the registry loaded before. pol_attest_get answers from that cache, and
 * only when the cache was made for other keys (a policy changed without a
 * new bind) does it verify again, so an answer is never stale.
 */
#ifndef POL_ATTEST_H
#define POL_ATTEST_H

#include <stdbool.h>
#include <stddef.h>

struct pol_policy;
struct pol_registration;
struct pol_registry;

/* DSSE payload type of an in-toto Statement (DESIGN §12). */
#define POL_INTOTO_PAYLOAD_TYPE	"application/vnd.in-toto+json"
#define POL_INTOTO_STATEMENT_V1	"https://in-toto.io/Statement/v1"

/*
 * Bounds on hostile evidence: the envelope's JSON text, its signature list
 * and the signature checks done for one envelope (a signature without a
 * keyid is tried with every key allowed for the project, each try counts).
 */
#define POL_ATTEST_ENVELOPE_MAX	(1024u * 1024)
#define POL_ATTEST_SIGS_MAX	64
#define POL_ATTEST_VERIFY_MAX	8
/* Policy side: keys in attestation_keys, and a keyid's length. */
#define POL_ATTEST_KEYS_MAX	256
#define POL_ATTEST_KEYID_MAX	256

/* Why a record is or is not attested; the order is not meaningful. */
enum pol_attest_status {
	POL_ATTEST_NONE = 0,		/* the registration carries no evidence */
	POL_ATTEST_VERIFIED,		/* a signature verified, the subject matches */
	POL_ATTEST_MALFORMED,		/* envelope or statement unusable */
	POL_ATTEST_PAYLOAD_TYPE,	/* payloadType is not in-toto */
	POL_ATTEST_UNKNOWN_KEY,		/* no signature names a policy key */
	POL_ATTEST_KEY_NOT_ALLOWED,	/* the key may not vouch for the project */
	POL_ATTEST_BAD_SIGNATURE,	/* an allowed key, a signature that fails */
	POL_ATTEST_SUBJECT_MISMATCH,	/* no subject names project/name and digest */
	POL_ATTEST_NO_POLICY,		/* no policy loaded: no keys to check with */
};

#define POL_ATTEST_TEXT_MAX	160

struct pol_attest_result {
	enum pol_attest_status status;
	/*
	 * "verified:<keyid>" (the policy's keyid) or why not, e.g.
	 * "bad signature (keyid \"k1\")". Input is quoted only through
	 * pol_safe. Shown in user.artifact.attestation and audit reasons.
	 */
	char text[POL_ATTEST_TEXT_MAX];
};

/*
 * The full check of DESIGN §12 on envelope text (len bytes, the JSON of
 * the registration's `attestation`) for project/name and digest ("algo:hex")
 * against the keys of p. Never fails: the outcome is in *out. p == NULL
 * gives POL_ATTEST_NO_POLICY; envelope == NULL gives POL_ATTEST_NONE.
 * Work is bounded by the limits above whatever the input.
 */
void pol_attest_check_envelope(const struct pol_policy *p,
			       const char *envelope, size_t len,
			       const char *project, const char *name,
			       const char *digest,
			       struct pol_attest_result *out);

/* pol_attest_check_envelope on r's own evidence, without any cache. */
void pol_attest_check(const struct pol_policy *p,
		      const struct pol_registration *r,
		      struct pol_attest_result *out);

/*
 * r's result under p: the one cached with r when it was computed for p's
 * key set, otherwise computed now (pol_attest_check).
 */
void pol_attest_get(const struct pol_policy *p,
		    const struct pol_registration *r,
		    struct pol_attest_result *out);

/* True when r claims trust_state attested and its evidence verifies. */
bool pol_attest_confirmed(const struct pol_policy *p,
			  const struct pol_registration *r);

/*
 * Checks the evidence of every record of g that carries some against the
 * keys of p, and caches each result with its record. A record of prev
 * (may be NULL: the registry loaded before) with the same key and the same
 * JSON text, whose result was cached for the same key set, lends its
 * result instead of a new check. Writes g's records: call it before g is
 * shared. Returns the number of envelopes checked afresh.
 */
size_t pol_registry_attest(struct pol_registry *g, const struct pol_policy *p,
			   const struct pol_registry *prev);

/*
 * The DSSE layer alone (DSSE protocol, "To verify", threshold 1), for
 * tests against published vectors and for tools: decodes envelope and
 * verifies its signatures over PAE(payloadType, payload) with the keys of
 * p allowed for project (project == NULL: every key). It does not look at
 * payloadType or at the payload. *out is POL_ATTEST_VERIFIED with
 * "verified:<keyid>", or MALFORMED, UNKNOWN_KEY, KEY_NOT_ALLOWED,
 * BAD_SIGNATURE or NO_POLICY with the reason.
 */
void pol_dsse_verify(const struct pol_policy *p, const char *envelope,
		     size_t len, const char *project,
		     struct pol_attest_result *out);

/*
 * DSSE's pre-authentication encoding:
 * "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII
 * decimal bytes. Returns 0 and a new buffer in *out (free it), or -ENOMEM
 * or -EOVERFLOW.
 */
int pol_dsse_pae(const char *type, size_t type_len, const unsigned char *body,
		 size_t body_len, unsigned char **out, size_t *out_len);

/*
 * Decodes base64 in the standard or the URL-safe alphabet (DSSE: verifiers
 * must accept either), padded or not; anything else (whitespace, a bad
 * character, a bad length or padding, bits left over) is refused. Returns
 * 0 and a new buffer in *out (free it; NUL-terminated for convenience, not
 * counted in *out_len), or AF_EPARSE or -ENOMEM.
 */
int pol_base64_decode(const char *s, size_t len, unsigned char **out,
		      size_t *out_len);

#endif
