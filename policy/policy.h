/*
 * policy.h - registrations, digests, URIs, the policy document and the
 * embedded file registry (DESIGN §2, §3, §4). Pure data and decisions: no
 * I/O except the loaders that read files, no threads, no globals. Every
 * function here is safe to call from any thread on distinct objects; the
 * objects are immutable once built, so concurrent readers need no lock.
 */
#ifndef POL_POLICY_H
#define POL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "af.h"
#include "attest.h"

/* Digests (DESIGN §2): "<algo>:<lowercase hex>", sha256 or sha512. */
#define POL_DIGEST_RAW_MAX	64
#define POL_DIGEST_STR_MAX	(7 + 1 + 2 * POL_DIGEST_RAW_MAX + 1)

enum pol_algo {
	POL_ALGO_SHA256 = 1,
	POL_ALGO_SHA512 = 2,
};

struct pol_digest {
	enum pol_algo algo;
	size_t raw_len;				/* 32 or 64 */
	unsigned char raw[POL_DIGEST_RAW_MAX];
	char str[POL_DIGEST_STR_MAX];		/* canonical "algo:hex" */
};

/*
 * Parses s as a canonical digest. Only lowercase hex of the exact length
 * for the algorithm is accepted. Returns 0, or AF_EPARSE with a message in
 * err naming what is wrong (err may be NULL).
 */
int pol_digest_parse(const char *s, struct pol_digest *out, char *err,
		     size_t errlen);
/* Builds a digest from raw bytes. Returns 0 or AF_EPARSE (bad length). */
int pol_digest_from_raw(enum pol_algo algo, const unsigned char *raw,
			size_t len, struct pol_digest *out);
/* "sha256" or "sha512"; NULL for an unknown value. */
const char *pol_algo_name(enum pol_algo algo);
/* Returns 0 and sets *out, or AF_EPARSE. */
int pol_algo_parse(const char *name, enum pol_algo *out);
/* The hex part of d->str (after the colon). */
const char *pol_digest_hex(const struct pol_digest *d);
/* Value of hex digit c (either case), or -1. */
int pol_hex_value(char c);
bool pol_digest_equal(const struct pol_digest *a, const struct pol_digest *b);

/* Source types (seed "Source Types", DESIGN §2). */
enum pol_source_type {
	POL_SRC_S3 = 1,
	POL_SRC_GCS,
	POL_SRC_AZURE_BLOB,
	POL_SRC_HTTPS,
	POL_SRC_HUGGINGFACE,
	POL_SRC_ARTIFACT_STORE,
	POL_SRC_FILE,		/* local development only; denied unless allowlisted */
};
const char *pol_source_type_name(enum pol_source_type t);
int pol_source_type_parse(const char *name, enum pol_source_type *out);

enum pol_lifecycle {
	POL_LC_REGISTERED = 1,
	POL_LC_ACTIVE,
	POL_LC_DEPRECATED,
	POL_LC_RETIRED,
	POL_LC_REVOKED,
};
const char *pol_lifecycle_name(enum pol_lifecycle s);
int pol_lifecycle_parse(const char *name, enum pol_lifecycle *out);

/* Trust states, lowest to highest: the enum order is the trust order. */
enum pol_trust {
	POL_TRUST_UNTRUSTED = 1,
	POL_TRUST_VERIFIED,
	POL_TRUST_ATTESTED,
};
const char *pol_trust_name(enum pol_trust s);
int pol_trust_parse(const char *name, enum pol_trust *out);

/*
 * Name rules (DESIGN §2). project: [a-z0-9][a-z0-9-]{0,62}.
 * name: [A-Za-z0-9._-]{1,200}, not starting with '.'. channel: [a-z0-9-]+.
 */
bool pol_project_valid(const char *s);
bool pol_name_valid(const char *s);
bool pol_channel_valid(const char *s);

/* A huggingface source_ref: the full commit sha, lowercase hex (§5b). */
#define POL_HF_COMMIT_LEN	40

/*
 * A validated registration (DESIGN §2). A plain value object: every string
 * is owned by the registration and freed by pol_registration_free.
 */
struct pol_registration {
	char *project;
	char *name;
	struct pol_digest digest;
	enum pol_source_type source_type;
	char *uri;			/* as registered; redact before showing */
	char *source_ref;		/* NULL when absent or null */
	bool has_size;
	uint64_t size_bytes;		/* valid when has_size */
	char *content_encoding;		/* "identity" when absent */
	enum pol_lifecycle lifecycle;
	enum pol_trust trust;
	char **channels;
	size_t n_channels;
	char *allowlist_decision;	/* allowlist_decision.decision, or NULL */
	char *registered_at;		/* as given (RFC 3339), or NULL */
	long long registered_at_s;	/* epoch seconds; 0 when absent */
	char *origin;			/* "path/file.json" or "path/file.json[2]" */
	char *json;			/* compact JSON of the record, for snapshots */
	/*
	 * `attestation` (DESIGN §12): its compact JSON text, NULL when absent
	 * or null. Evidence larger than POL_ATTEST_ENVELOPE_MAX is not kept:
	 * attestation is then NULL and attestation_len its size (it fails as
	 * malformed); otherwise attestation_len is strlen(attestation).
	 */
	char *attestation;
	size_t attestation_len;
	/*
	 * Its check against a key set (attest.h), cached by
	 * pol_registry_attest before the registry is shared: valid when
	 * attest_cached and attest_keys_fp is the fingerprint of the policy's
	 * keys. Never read directly: pol_attest_get.
	 */
	bool attest_cached;
	unsigned char attest_keys_fp[32];
	struct pol_attest_result attest;
};

/*
 * Parses and validates one registration object from JSON text. origin names
 * the record in messages. Returns 0 and a new registration in *out, or
 * AF_EPARSE with "<origin>: <field>: <problem>" in err. Never crashes on
 * hostile input.
 */
int pol_registration_parse(const char *buf, size_t len, const char *origin,
			   struct pol_registration **out, char *err,
			   size_t errlen);
struct pol_registration *pol_registration_dup(const struct pol_registration *r);
void pol_registration_free(struct pol_registration *r);
bool pol_registration_has_channel(const struct pol_registration *r,
				  const char *channel);
/*
 * Fields of r that DESIGN §2 does not define (top level, "source.*",
 * "allowlist_decision.*"): accepted for forward compatibility, but `check`
 * warns about them. Writes their names, comma-separated and truncated to
 * fit, into out (may be NULL). Returns how many there are.
 */
size_t pol_registration_unknown_fields(const struct pol_registration *r,
				       char *out, size_t outlen);

/*
 * URIs (DESIGN §2, §5). pol_uri_check validates the form of uri for the
 * source type (s3://bucket/key, gs://bucket/object, https://…, hf://…,
 * artifact-store://…, file:///abs; https also takes http://) and refuses
 * userinfo and credential-bearing query parameters. Returns 0 or AF_EPARSE
 * with a message in err that never repeats a secret.
 */
int pol_uri_check(enum pol_source_type type, const char *uri, char *err,
		  size_t errlen);
/*
 * Whether a registration problem (a message of pol_uri_check, as the
 * registry loader reports it) is a secret in the URI: userinfo or a
 * credential-bearing query parameter (DESIGN §5: audited as
 * credential_refused).
 */
bool pol_problem_is_credential(const char *msg);
/*
 * Writes uri without userinfo and without query string or fragment into
 * out. Always NUL-terminates (truncating if needed). Returns out.
 */
char *pol_uri_redact(const char *uri, char *out, size_t outlen);

/*
 * Content-addressed mirrors (DESIGN §11). A [fetch] mirrors entry is a
 * plain mirror (the URL for a digest is "{mirror}/{algo}/{hex}", trailing
 * slashes of the mirror dropped) or, when it names {algo}, {hex} or
 * {digest} ("algo:hex", plain colon), a template. pol_mirror_url writes the
 * URL for d into out. Returns 0; AF_EPARSE for an unknown placeholder or a
 * stray brace (message in err); -ENAMETOOLONG when out is too small.
 * Checks nothing else: the config parser validates the entry as a whole.
 */
bool pol_mirror_is_template(const char *mirror);
int pol_mirror_url(const char *mirror, const struct pol_digest *d, char *out,
		   size_t outlen, char *err, size_t errlen);

/* The policy document (DESIGN §4). Immutable once parsed. */
struct pol_policy;

/*
 * Parses a policy document. Returns 0 and *out, or AF_EPARSE with
 * "<origin>: <field>: <problem>" in err.
 */
int pol_policy_parse(const char *buf, size_t len, const char *origin,
		     struct pol_policy **out, char *err, size_t errlen);
/* Reads and parses path. Returns 0, -errno or AF_EPARSE (message in err). */
int pol_policy_load(const char *path, struct pol_policy **out, char *err,
		    size_t errlen);
void pol_policy_free(struct pol_policy *p);

/*
 * Decides whether r may be read on this node: digest algorithm allowed,
 * lifecycle readable, trust at least the minimum (trust_state attested
 * counts as attested only when pol_attest_confirmed, else as verified:
 * DESIGN §12), the registration's own
 * allowlist decision not "deny", and a source rule matching type, URI
 * prefix and project (defense in depth: re-checked here whatever the
 * registration says). p == NULL denies everything (fail closed). Returns 0
 * (allow) or AF_EDENIED with a short reason in reason (no secrets).
 */
int pol_policy_decide(const struct pol_policy *p,
		      const struct pol_registration *r, char *reason,
		      size_t reasonlen);
/* True and *gid set when the policy gives project a gid (DESIGN §4). */
bool pol_policy_project_gid(const struct pol_policy *p, const char *project,
			    gid_t *gid);
/* Whether a deprecated artifact should warn (lifecycle deprecated). */
bool pol_registration_deprecated(const struct pol_registration *r);

/*
 * The file registry (DESIGN §3 embedded default): a set of registrations
 * loaded from every *.json below a directory (subfolders included), each
 * file holding one object or an array. Immutable once loaded.
 */
struct pol_registry;

/* Called once per problem found while loading; msg names file and field. */
typedef void (*pol_report_fn)(void *arg, const char *msg);

/*
 * Loads dir. A bad file or record is reported through report (may be NULL)
 * and skipped; it never hides the good ones. The same project/name@digest
 * twice keeps the one with the later registered_at (the first in sorted
 * path order when equal) and reports the other.
 * Returns 0 and *out (possibly empty), or -errno when dir itself cannot be
 * read (reported too).
 */
int pol_registry_load_dir(const char *dir, pol_report_fn report, void *arg,
			  struct pol_registry **out);
/* Builds a registry from a JSON text holding one object or an array. */
int pol_registry_parse(const char *buf, size_t len, const char *origin,
		       pol_report_fn report, void *arg,
		       struct pol_registry **out);
/*
 * Splits g into one registry per project (in project order), moving the
 * records: g is consumed on success (and left whole on failure). Returns 0
 * with *out (an array of *n registries, caller frees each and the array),
 * or -ENOMEM.
 */
int pol_registry_split(struct pol_registry *g, struct pol_registry ***out,
		       size_t *n);
/*
 * A new registry holding copies of the records of every part (NULL parts
 * skipped); a key present twice keeps the later registered_at, then the
 * one of the earlier part. Returns 0 and *out, or -ENOMEM.
 */
int pol_registry_merge(const struct pol_registry *const *parts, size_t nparts,
		       struct pol_registry **out);
/*
 * Builds a registry from n records, taking them all (recs[i] set to NULL,
 * freed on failure too); duplicates as pol_registry_load_dir, reported.
 * Returns 0 and *out, or -ENOMEM.
 */
int pol_registry_from(struct pol_registration **recs, size_t n,
		      pol_report_fn report, void *arg,
		      struct pol_registry **out);
/*
 * The control plane's documents (DESIGN §3). Pure parsers of outside input
 * (fuzzed by tests/fuzz/fuzz_listing.c).
 *
 * pol_registry_parse_listing: GET /v1/projects/{project}/blobs, an array of
 * registrations. Text that is not JSON, or JSON that is not an array, is
 * AF_EPARSE with the reason in err (the caller keeps what it had). A bad
 * record, or one of another project (when project is not NULL), is
 * reported and skipped; duplicates as pol_registry_load_dir. Returns 0 and
 * *out, AF_EPARSE or -ENOMEM.
 */
int pol_registry_parse_listing(const char *buf, size_t len,
			       const char *origin, const char *project,
			       pol_report_fn report, void *arg,
			       struct pol_registry **out, char *err,
			       size_t errlen);

#define POL_API_PROJECTS_MAX	100000
/*
 * GET /v1/projects: an array of project names. Not JSON, not an array, or
 * more than POL_API_PROJECTS_MAX entries: AF_EPARSE with err. An entry that is
 * not a valid project name is reported and skipped; a name listed twice is
 * kept once. Returns 0 with *out (sorted, distinct; pol_names_free) and *n.
 */
int pol_projects_parse(const char *buf, size_t len, const char *origin,
		       pol_report_fn report, void *arg, char ***out,
		       size_t *n, char *err, size_t errlen);
void pol_names_free(char **v, size_t n);
/*
 * Whether buf is well-formed JSON at all: tells a document cut short or
 * garbled on the way (keep what was known) from a well-formed one that
 * says something wrong (a policy with an unknown field: fail closed).
 */
bool pol_json_wellformed(const char *buf, size_t len);

/* An empty registry (used before anything is loaded). */
struct pol_registry *pol_registry_new_empty(void);
void pol_registry_free(struct pol_registry *g);

size_t pol_registry_count(const struct pol_registry *g);
/* Records are sorted by project, name, digest string. */
const struct pol_registration *pol_registry_at(const struct pol_registry *g,
					       size_t i);
/* Exact lookup; NULL when not registered. */
const struct pol_registration *pol_registry_find(const struct pol_registry *g,
						 const char *project,
						 const char *name,
						 const char *digest);
/* Sorted distinct project names; *n set. Valid while g lives. */
const char *const *pol_registry_projects(const struct pol_registry *g,
					 size_t *n);
/*
 * Range [*first, *first + return) of records of project in index order.
 * Returns the count (0 when none).
 */
size_t pol_registry_project_range(const struct pol_registry *g,
				  const char *project, size_t *first);

/*
 * Channel resolution (DESIGN §7): among the records of project/name that
 * claim channel and that policy p allows (pol_policy_decide == 0), the one
 * with the latest registered_at; a tie goes to the larger digest string and
 * sets *tie (may be NULL). NULL when no readable record claims it.
 */
const struct pol_registration *
pol_registry_channel(const struct pol_registry *g, const struct pol_policy *p,
		     const char *project, const char *name,
		     const char *channel, bool *tie);

#endif
