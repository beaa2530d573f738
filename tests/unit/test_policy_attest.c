/*
 * test_policy_attest.c - attestation evidence (DESIGN §12): DSSE envelopes
 * with in-toto Statements v1, the policy's attestation_keys, the decision
 * and the cache. Keys and signatures are made by the openssl command in a
 * temporary folder, the way a publisher makes them (docs/ATTESTATION.md);
 * DSSE's own published test vector is read from tests/vectors/dsse/.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/evp.h>

#include "policy/policy.h"

#define HEX64 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HEX64B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
#define D256 "sha256:" HEX64
#define OKURI "https://models.example.internal/m.bin"
#define VECTOR "tests/vectors/dsse/protocol-example.json"

static char dir[] = "/tmp/af-attest-XXXXXX";

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sh(const char *fmt, ...)
{
	char cmd[2048], full[2200];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd %s && { %s; } 2>/dev/null", dir, cmd);
	rc = system(full);
	if (rc != 0)
		fail_msg("command failed (%d): %s", rc, cmd);
}

static char *slurp(const char *name, size_t *len)
{
	char path[256];
	char *buf;
	long n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

static void spit(const char *name, const void *buf, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
}

/* Keys made once: name.key (private) and name.pub (PEM public key). */
static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	sh("openssl genpkey -algorithm ed25519 -out ed1.key && openssl pkey -in ed1.key -pubout -out ed1.pub");
	sh("openssl genpkey -algorithm ed25519 -out ed2.key && openssl pkey -in ed2.key -pubout -out ed2.pub");
	sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec1.key && openssl pkey -in ec1.key -pubout -out ec1.pub");
	sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.key && openssl pkey -in p384.key -pubout -out p384.pub");
	sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa.key && openssl pkey -in rsa.key -pubout -out rsa.pub");
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/*
 * An envelope signed with key (a name from setup) over the PAE that the
 * test writes itself (DSSE protocol.md), keyid as given (NULL: none).
 */
static char *envelope(const char *payload, const char *type, const char *key,
		      const char *keyid)
{
	char pae[8192], *sig, *body;
	json_t *env, *s;
	char *text;
	int n;

	n = snprintf(pae, sizeof(pae), "DSSEv1 %zu %s %zu %s", strlen(type),
		     type, strlen(payload), payload);
	assert_true(n > 0 && (size_t)n < sizeof(pae));
	spit("pae.bin", pae, (size_t)n);
	spit("payload.bin", payload, strlen(payload));
	sh("openssl pkeyutl -sign -inkey %s.key -rawin %s -in pae.bin -out sig.bin",
	   key, strncmp(key, "ec", 2) == 0 ? "-digest sha256" : "");
	sh("openssl base64 -A -in sig.bin -out sig.b64 && openssl base64 -A -in payload.bin -out payload.b64");
	sig = slurp("sig.b64", NULL);
	body = slurp("payload.b64", NULL);
	s = keyid ? json_pack("{s:s, s:s}", "keyid", keyid, "sig", sig)
		  : json_pack("{s:s}", "sig", sig);
	env = json_pack("{s:s, s:s, s:[o]}", "payloadType", type, "payload",
			body, "signatures", s);
	text = json_dumps(env, JSON_COMPACT);
	json_decref(env);
	free(sig);
	free(body);
	return text;
}

/* An in-toto Statement v1 with one subject (and extra, when given). */
static char *statement(const char *subject, const char *algo, const char *hex,
		       const char *extra_subject)
{
	json_t *st, *subj;
	char *text;

	subj = json_pack("[{s:s, s:{s:s}}]", "name", subject, "digest", algo,
			 hex);
	if (extra_subject)
		json_array_insert_new(subj, 0,
				      json_pack("{s:s, s:{s:s}}", "name",
						extra_subject, "digest",
						"sha256", HEX64B));
	st = json_pack("{s:s, s:o, s:s, s:{}}", "_type",
		       "https://in-toto.io/Statement/v1", "subject", subj,
		       "predicateType", "https://example.com/Test/v1",
		       "predicate");
	text = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	return text;
}

#define INTOTO "application/vnd.in-toto+json"

/* A policy with min_trust_state min and the keys given as (keyid, file, projects-json or NULL). */
static struct pol_policy *policy_with(const char *min, const char *const *keys)
{
	json_t *root, *arr = json_array();
	struct pol_policy *p;
	char err[1024], *text;

	for (size_t i = 0; keys && keys[i]; i += 3) {
		char *pem = slurp(keys[i + 1], NULL);
		json_t *k = json_pack("{s:s, s:s}", "keyid", keys[i],
				      "public_key", pem);

		if (keys[i + 2])
			json_object_set_new(k, "projects",
					    json_loads(keys[i + 2], 0, NULL));
		json_array_append_new(arr, k);
		free(pem);
	}
	root = json_pack("{s:s, s:[{s:s, s:s}], s:o}", "min_trust_state", min,
			 "sources", "source_type", "https", "uri_prefix",
			 "https://models.example.internal/",
			 "attestation_keys", arr);
	text = json_dumps(root, 0);
	json_decref(root);
	if (pol_policy_parse(text, strlen(text), "policy.json", &p, err,
			     sizeof(err)) != 0)
		fail_msg("policy: %s", err);
	free(text);
	return p;
}

static const char *const std_keys[] = {
	"ed1", "ed1.pub", NULL,
	"ec1", "ec1.pub", NULL,
	"nlp-only", "ed2.pub", "[\"nlp\"]",
	NULL,
};

/* A registration of vision/m.bin (digest D256) carrying att (may be NULL). */
static struct pol_registration *reg_with(const char *project, const char *trust,
					 const char *att)
{
	struct pol_registration *r;
	json_t *o;
	char err[1024], *text;

	o = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s}",
		      "project", project, "name", "m.bin", "artifact_kind",
		      "blob", "digest", D256, "source", "source_type", "https",
		      "uri", OKURI, "lifecycle_state", "active", "trust_state",
		      trust);
	json_object_set_new(o, "attestation",
			    att ? json_loads(att, JSON_DECODE_ANY, NULL)
				: json_null());
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (pol_registration_parse(text, strlen(text), "t.json", &r, err,
				   sizeof(err)) != 0)
		fail_msg("registration: %s", err);
	free(text);
	return r;
}

static void expect_result(const struct pol_policy *p,
			  const struct pol_registration *r,
			  enum pol_attest_status want, const char *want_text)
{
	struct pol_attest_result ar;

	pol_attest_check(p, r, &ar);
	if (ar.status != want || (want_text && !strstr(ar.text, want_text)))
		fail_msg("got %d \"%s\", want %d \"%s\"", ar.status, ar.text,
			 want, want_text ? want_text : "");
}

/* ---- the published vector and the building blocks ----------------- */

static void test_pae(void **state)
{
	unsigned char *out;
	size_t len;

	(void)state;
	assert_int_equal(pol_dsse_pae("http://example.com/HelloWorld", 29,
				      (const unsigned char *)"hello world", 11,
				      &out, &len), 0);
	assert_int_equal(len, strlen("DSSEv1 29 http://example.com/HelloWorld 11 hello world"));
	assert_memory_equal(out, "DSSEv1 29 http://example.com/HelloWorld 11 hello world", len);
	free(out);
	/* An empty body is "... 0 " with its trailing space. */
	assert_int_equal(pol_dsse_pae("t", 1, NULL, 0, &out, &len), 0);
	assert_int_equal(len, 13);
	assert_memory_equal(out, "DSSEv1 1 t 0 ", 13);
	free(out);
}

static void expect_b64(const char *in, int ret, const char *want)
{
	unsigned char *out;
	size_t len;

	assert_int_equal(pol_base64_decode(in, strlen(in), &out, &len), ret);
	if (ret == 0) {
		assert_int_equal(len, strlen(want));
		assert_memory_equal(out, want, len);
		free(out);
	} else {
		assert_null(out);
	}
}

static void test_base64(void **state)
{
	(void)state;
	expect_b64("aGVsbG8gd29ybGQ=", 0, "hello world");
	expect_b64("aGVsbG8gd29ybGQ", 0, "hello world");	/* unpadded */
	expect_b64("", 0, "");
	expect_b64("-_-_Pj8=", 0, "\xfb\xff\xbf\x3e\x3f");	/* URL-safe */
	expect_b64("+/+/Pj8=", 0, "\xfb\xff\xbf\x3e\x3f");	/* standard */
	expect_b64("aGVsbG8gd29ybGQ=\n", AF_EPARSE, NULL);
	expect_b64("aGVs bG8=", AF_EPARSE, NULL);
	expect_b64("aGVsbG8*", AF_EPARSE, NULL);
	expect_b64("a", AF_EPARSE, NULL);
	expect_b64("aGVsbG8gd29ybGQ==", AF_EPARSE, NULL);	/* bad padding */
	expect_b64("aGVsbG8gd29ybGR=", AF_EPARSE, NULL);	/* bits left over */
	expect_b64("====", AF_EPARSE, NULL);
	expect_b64("aG=VsbG8", AF_EPARSE, NULL);
}

/* The P-256 public key of the published vector, as PEM, from X and Y. */
static char *vector_pem(const char *x, const char *y)
{
	static const unsigned char prefix[] = {
		0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
		0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
		0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
	};
	unsigned char der[sizeof(prefix) + 64];
	unsigned char b64[200];
	BIGNUM *bx = NULL, *by = NULL;
	char *pem;

	memcpy(der, prefix, sizeof(prefix));
	assert_true(BN_dec2bn(&bx, x) > 0 && BN_dec2bn(&by, y) > 0);
	assert_int_equal(BN_bn2binpad(bx, der + sizeof(prefix), 32), 32);
	assert_int_equal(BN_bn2binpad(by, der + sizeof(prefix) + 32, 32), 32);
	BN_free(bx);
	BN_free(by);
	assert_true(EVP_EncodeBlock(b64, der, sizeof(der)) > 0);
	assert_true(asprintf(&pem, "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n",
			     b64) > 0);
	return pem;
}

static void test_published_vector(void **state)
{
	struct pol_policy *p, *q;
	struct pol_attest_result ar;
	json_t *v, *env, *pol;
	json_error_t jerr;
	unsigned char *pae;
	size_t pae_len;
	char err[1024], *pem, *text, *ptext;
	const char *type, *body;

	(void)state;
	v = json_load_file(VECTOR, 0, &jerr);
	if (!v)
		fail_msg("%s: %s", VECTOR, jerr.text);
	type = json_string_value(json_object_get(v, "payload_type"));
	body = json_string_value(json_object_get(v, "serialized_body"));
	assert_int_equal(pol_dsse_pae(type, strlen(type),
				      (const unsigned char *)body, strlen(body),
				      &pae, &pae_len), 0);
	assert_int_equal(pae_len, strlen(json_string_value(json_object_get(v, "pae"))));
	assert_memory_equal(pae, json_string_value(json_object_get(v, "pae")), pae_len);
	free(pae);

	pem = vector_pem(json_string_value(json_object_get(v, "x")),
			 json_string_value(json_object_get(v, "y")));
	pol = json_pack("{s:[{s:s, s:s}]}", "attestation_keys", "keyid",
			"dsse-example", "public_key", pem);
	ptext = json_dumps(pol, 0);
	if (pol_policy_parse(ptext, strlen(ptext), "policy.json", &p, err,
			     sizeof(err)) != 0)
		fail_msg("%s", err);
	free(ptext);
	json_decref(pol);
	free(pem);

	/* The signature has no keyid: it is tried with the allowed keys. */
	env = json_object_get(v, "envelope");
	text = json_dumps(env, JSON_COMPACT);
	pol_dsse_verify(p, text, strlen(text), "vision", &ar);
	assert_int_equal(ar.status, POL_ATTEST_VERIFIED);
	assert_string_equal(ar.text, "verified:dsse-example");
	/* Not in-toto: as evidence for a registration it is refused. */
	pol_attest_check_envelope(p, text, strlen(text), "vision", "m.bin", D256, &ar);
	assert_int_equal(ar.status, POL_ATTEST_PAYLOAD_TYPE);
	free(text);

	/* Another body, another type: the signature no longer verifies. */
	json_object_set_new(env, "payload", json_string("aGVsbG8gd29ybGQh"));
	text = json_dumps(env, JSON_COMPACT);
	pol_dsse_verify(p, text, strlen(text), NULL, &ar);
	assert_int_equal(ar.status, POL_ATTEST_BAD_SIGNATURE);
	free(text);
	json_object_set_new(env, "payload", json_string("aGVsbG8gd29ybGQ="));
	json_object_set_new(env, "payloadType", json_string("http://example.com/HelloWorlds"));
	text = json_dumps(env, JSON_COMPACT);
	pol_dsse_verify(p, text, strlen(text), NULL, &ar);
	assert_int_equal(ar.status, POL_ATTEST_BAD_SIGNATURE);
	free(text);

	/* With no key of the policy, nothing verifies. */
	q = policy_with("attested", NULL);
	json_object_set_new(env, "payloadType", json_string("http://example.com/HelloWorld"));
	text = json_dumps(env, JSON_COMPACT);
	pol_dsse_verify(q, text, strlen(text), NULL, &ar);
	assert_int_equal(ar.status, POL_ATTEST_UNKNOWN_KEY);
	pol_dsse_verify(NULL, text, strlen(text), NULL, &ar);
	assert_int_equal(ar.status, POL_ATTEST_NO_POLICY);
	free(text);
	pol_policy_free(q);
	pol_policy_free(p);
	json_decref(v);
}

/* ---- the cases of DESIGN §12 and issue 15 ---------------------------- */

static void test_verified_ed25519_and_p256(void **state)
{
	struct pol_policy *p = policy_with("attested", std_keys);
	char *st = statement("vision/m.bin", "sha256", HEX64, NULL);
	char *e1 = envelope(st, INTOTO, "ed1", "ed1");
	char *e2 = envelope(st, INTOTO, "ec1", "ec1");
	char *e3 = envelope(st, INTOTO, "ec1", NULL);
	struct pol_registration *r1 = reg_with("vision", "attested", e1);
	struct pol_registration *r2 = reg_with("vision", "attested", e2);
	struct pol_registration *r3 = reg_with("vision", "attested", e3);
	char reason[512];

	(void)state;
	expect_result(p, r1, POL_ATTEST_VERIFIED, "verified:ed1");
	expect_result(p, r2, POL_ATTEST_VERIFIED, "verified:ec1");
	/* No keyid: tried with each allowed key; the policy's keyid shows. */
	expect_result(p, r3, POL_ATTEST_VERIFIED, "verified:ec1");
	assert_int_equal(pol_policy_decide(p, r1, reason, sizeof(reason)), 0);
	assert_int_equal(pol_policy_decide(p, r2, reason, sizeof(reason)), 0);
	assert_true(pol_attest_confirmed(p, r1));
	pol_registration_free(r1);
	pol_registration_free(r2);
	pol_registration_free(r3);
	free(e1);
	free(e2);
	free(e3);
	free(st);
	pol_policy_free(p);
}

/* The record, under min attested: denied with the reason, counts as verified. */
static void expect_denied(const struct pol_policy *p, const char *att,
			  const char *project, enum pol_attest_status want,
			  const char *want_text)
{
	struct pol_policy *lax = policy_with("verified", std_keys);
	struct pol_registration *r = reg_with(project, "attested", att);
	char reason[512];

	expect_result(p, r, want, want_text);
	assert_int_equal(pol_policy_decide(p, r, reason, sizeof(reason)),
			 AF_EDENIED);
	if (!strstr(reason, "attestation not verified: ") ||
	    !strstr(reason, want_text) ||
	    !strstr(reason, "trust counts as verified, below minimum attested"))
		fail_msg("reason \"%s\"", reason);
	/* Counted as verified, it passes a minimum of verified. */
	assert_int_equal(pol_policy_decide(lax, r, reason, sizeof(reason)), 0);
	assert_false(pol_attest_confirmed(p, r));
	pol_registration_free(r);
	pol_policy_free(lax);
}

static void test_each_failure(void **state)
{
	struct pol_policy *p = policy_with("attested", std_keys);
	char *st = statement("vision/m.bin", "sha256", HEX64, NULL);
	char *e;

	(void)state;
	/* A bad signature: signed by ed2, claiming to be ed1. */
	e = envelope(st, INTOTO, "ed2", "ed1");
	expect_denied(p, e, "vision", POL_ATTEST_BAD_SIGNATURE,
		      "bad signature (keyid \"ed1\")");
	free(e);
	/* An unknown key. */
	e = envelope(st, INTOTO, "ed1", "someone-else");
	expect_denied(p, e, "vision", POL_ATTEST_UNKNOWN_KEY,
		      "unknown key (keyid \"someone-else\")");
	free(e);
	/* A key not allowed for that project (nlp-only vouches for nlp). */
	e = envelope(st, INTOTO, "ed2", "nlp-only");
	expect_denied(p, e, "vision", POL_ATTEST_KEY_NOT_ALLOWED,
		      "key \"nlp-only\" not allowed for project vision");
	free(e);
	/* A payload type that is not in-toto. */
	e = envelope(st, "application/json", "ed1", "ed1");
	expect_denied(p, e, "vision", POL_ATTEST_PAYLOAD_TYPE,
		      "payload type is not in-toto");
	free(e);
	free(st);
	/* A subject for another digest. */
	st = statement("vision/m.bin", "sha256", HEX64B, NULL);
	e = envelope(st, INTOTO, "ed1", "ed1");
	expect_denied(p, e, "vision", POL_ATTEST_SUBJECT_MISMATCH,
		      "subject mismatch");
	free(e);
	free(st);
	/* A subject for another name, and another project. */
	st = statement("vision/other.bin", "sha256", HEX64, NULL);
	e = envelope(st, INTOTO, "ed1", "ed1");
	expect_denied(p, e, "vision", POL_ATTEST_SUBJECT_MISMATCH,
		      "subject mismatch");
	free(e);
	free(st);
	st = statement("nlp/m.bin", "sha256", HEX64, NULL);
	e = envelope(st, INTOTO, "ed1", "ed1");
	expect_denied(p, e, "vision", POL_ATTEST_SUBJECT_MISMATCH,
		      "subject mismatch");
	free(e);
	free(st);
	/* The right hex under another algorithm name is no match. */
	st = statement("vision/m.bin", "sha512", HEX64, NULL);
	e = envelope(st, INTOTO, "ed1", "ed1");
	expect_denied(p, e, "vision", POL_ATTEST_SUBJECT_MISMATCH,
		      "subject mismatch");
	free(e);
	free(st);
	/* A Statement of another version is malformed evidence. */
	e = envelope("{\"_type\":\"https://in-toto.io/Statement/v0.1\",\"subject\":[]}",
		     INTOTO, "ed1", "ed1");
	expect_denied(p, e, "vision", POL_ATTEST_MALFORMED,
		      "malformed evidence");
	free(e);
	e = envelope("not json", INTOTO, "ed1", "ed1");
	expect_denied(p, e, "vision", POL_ATTEST_MALFORMED,
		      "malformed evidence: payload is not a JSON object");
	free(e);
	/* No evidence at all, and evidence that is no envelope. */
	expect_denied(p, NULL, "vision", POL_ATTEST_NONE, "none: no attestation");
	expect_denied(p, "\"signed, honest\"", "vision", POL_ATTEST_MALFORMED,
		      "malformed evidence: not a DSSE envelope");
	expect_denied(p, "{\"payloadType\":\"" INTOTO "\",\"payload\":\"e30=\"}",
		      "vision", POL_ATTEST_MALFORMED, "signatures missing");
	pol_policy_free(p);
}

static void test_several_subjects(void **state)
{
	struct pol_policy *p = policy_with("attested", std_keys);
	char *st = statement("vision/m.bin", "sha256", HEX64, "vision/other.bin");
	char *e = envelope(st, INTOTO, "ec1", "ec1");
	struct pol_registration *r = reg_with("vision", "attested", e);
	struct pol_registration *other;
	json_t *o;
	char *text, err[512], reason[512];

	(void)state;
	expect_result(p, r, POL_ATTEST_VERIFIED, "verified:ec1");
	/*
	 * Only the matching subject counts: the other subject's name with the
	 * digest of this record (not its own) is no match for it.
	 */
	o = json_loads(r->json, 0, NULL);
	json_object_set_new(o, "name", json_string("other.bin"));
	text = json_dumps(o, JSON_COMPACT);
	assert_int_equal(pol_registration_parse(text, strlen(text), "o.json",
						&other, err, sizeof(err)), 0);
	expect_result(p, other, POL_ATTEST_SUBJECT_MISMATCH, "subject mismatch");
	assert_int_equal(pol_policy_decide(p, other, reason, sizeof(reason)),
			 AF_EDENIED);
	pol_registration_free(other);
	json_decref(o);
	free(text);
	pol_registration_free(r);
	free(e);
	free(st);
	pol_policy_free(p);
}

/* Two signatures: an unknown one first, then a good one. */
static void test_multiple_signatures(void **state)
{
	struct pol_policy *p = policy_with("attested", std_keys);
	char *st = statement("vision/m.bin", "sha256", HEX64, NULL);
	char *good = envelope(st, INTOTO, "ec1", "ec1");
	char *bad = envelope(st, INTOTO, "ed2", "ed1");
	json_t *g = json_loads(good, 0, NULL), *b = json_loads(bad, 0, NULL);
	json_t *sigs = json_object_get(g, "signatures");
	struct pol_registration *r;
	char *text;

	(void)state;
	json_array_insert(sigs, 0, json_array_get(json_object_get(b, "signatures"), 0));
	json_array_insert_new(sigs, 0, json_pack("{s:s, s:s}", "keyid", "x", "sig", "AAAA"));
	text = json_dumps(g, JSON_COMPACT);
	r = reg_with("vision", "attested", text);
	expect_result(p, r, POL_ATTEST_VERIFIED, "verified:ec1");
	pol_registration_free(r);
	free(text);
	/* Without the good one, the most telling failure is reported. */
	json_array_remove(sigs, 2);
	text = json_dumps(g, JSON_COMPACT);
	r = reg_with("vision", "attested", text);
	expect_result(p, r, POL_ATTEST_BAD_SIGNATURE, "bad signature (keyid \"ed1\")");
	pol_registration_free(r);
	free(text);
	json_decref(g);
	json_decref(b);
	free(good);
	free(bad);
	free(st);
	pol_policy_free(p);
}

/* ---- bad input -------------------------------------------------------- */

static void test_bad_base64(void **state)
{
	struct pol_policy *p = policy_with("attested", std_keys);
	char *st = statement("vision/m.bin", "sha256", HEX64, NULL);
	char *e = envelope(st, INTOTO, "ed1", "ed1");
	json_t *o = json_loads(e, 0, NULL), *s;
	char *text;

	(void)state;
	json_object_set_new(o, "payload", json_string("not base64!"));
	text = json_dumps(o, JSON_COMPACT);
	expect_denied(p, text, "vision", POL_ATTEST_MALFORMED,
		      "malformed evidence: payload is not base64");
	free(text);
	json_decref(o);
	o = json_loads(e, 0, NULL);
	s = json_array_get(json_object_get(o, "signatures"), 0);
	json_object_set_new(s, "sig", json_string("%%%%"));
	text = json_dumps(o, JSON_COMPACT);
	expect_denied(p, text, "vision", POL_ATTEST_MALFORMED,
		      "malformed evidence: signatures[0].sig is not base64");
	free(text);
	/* Decodes, but is no signature of the right shape. */
	json_object_set_new(s, "sig", json_string("AAAA"));
	text = json_dumps(o, JSON_COMPACT);
	expect_denied(p, text, "vision", POL_ATTEST_BAD_SIGNATURE,
		      "bad signature (keyid \"ed1\")");
	free(text);
	json_decref(o);
	free(e);
	free(st);
	pol_policy_free(p);
}

static void test_ten_megabyte_envelope(void **state)
{
	struct pol_policy *p = policy_with("attested", std_keys);
	size_t big = 10u * 1024 * 1024;
	char *pad = malloc(big + 1);
	struct pol_registration *r, *d;
	json_t *o;
	char *text;

	(void)state;
	assert_non_null(pad);
	memset(pad, 'A', big);
	pad[big] = '\0';
	o = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "payloadType", INTOTO,
		      "payload", pad, "signatures", "keyid", "ed1", "sig", "AAAA");
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	free(pad);
	/* The record stays valid; its evidence is not kept, and fails. */
	r = reg_with("vision", "attested", text);
	assert_null(r->attestation);
	assert_true(r->attestation_len > big);
	expect_result(p, r, POL_ATTEST_MALFORMED, "envelope larger than 1048576 bytes");
	d = pol_registration_dup(r);
	assert_non_null(d);
	expect_result(p, d, POL_ATTEST_MALFORMED, "envelope larger than");
	pol_registration_free(d);
	pol_registration_free(r);
	/* Given straight to the checker, refused before parsing. */
	struct pol_attest_result ar;
	pol_attest_check_envelope(p, text, strlen(text), "vision", "m.bin", D256, &ar);
	assert_int_equal(ar.status, POL_ATTEST_MALFORMED);
	free(text);
	pol_policy_free(p);
}

static void test_ten_thousand_signatures(void **state)
{
	struct pol_policy *p = policy_with("attested", std_keys);
	char *st = statement("vision/m.bin", "sha256", HEX64, NULL);
	char *e = envelope(st, INTOTO, "ed1", "ed1");
	json_t *o = json_loads(e, 0, NULL);
	json_t *sigs = json_object_get(o, "signatures");
	json_t *good = json_incref(json_array_get(sigs, 0));
	json_t *bad = json_pack("{s:s, s:s}", "keyid", "ed1", "sig",
				"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==");
	char *text;

	(void)state;
	/* 10,000 entries, the good one last: refused whole, no crypto done. */
	json_array_clear(sigs);
	for (int i = 0; i < 9999; i++)
		json_array_append_new(sigs, json_pack("{s:s, s:s}", "keyid",
						      "ed1", "sig", "AAAA"));
	json_array_append(sigs, good);
	text = json_dumps(o, JSON_COMPACT);
	assert_true(strlen(text) < POL_ATTEST_ENVELOPE_MAX);
	expect_denied(p, text, "vision", POL_ATTEST_MALFORMED,
		      "malformed evidence: more than 64 signatures");
	free(text);
	/*
	 * At the limit, 64 signatures by an allowed key that all fail: the
	 * work is bounded by POL_ATTEST_VERIFY_MAX checks, so the good
	 * signature past that budget is never reached.
	 */
	json_array_clear(sigs);
	for (int i = 0; i < POL_ATTEST_SIGS_MAX - 1; i++)
		json_array_append(sigs, bad);
	json_array_append(sigs, good);
	text = json_dumps(o, JSON_COMPACT);
	expect_denied(p, text, "vision", POL_ATTEST_BAD_SIGNATURE,
		      "bad signature (keyid \"ed1\")");
	free(text);
	/* Within the budget, it is. */
	json_array_clear(sigs);
	for (int i = 0; i < POL_ATTEST_VERIFY_MAX - 1; i++)
		json_array_append(sigs, bad);
	json_array_append(sigs, good);
	text = json_dumps(o, JSON_COMPACT);
	{
		struct pol_registration *r = reg_with("vision", "attested", text);

		expect_result(p, r, POL_ATTEST_VERIFIED, "verified:ed1");
		pol_registration_free(r);
	}
	free(text);
	json_decref(bad);
	json_decref(good);
	json_decref(o);
	free(e);
	free(st);
	pol_policy_free(p);
}

static void expect_policy_error(const char *keyid, const char *pem_text,
				const char *extra, const char *want)
{
	struct pol_policy *p = NULL;
	json_t *root, *k;
	char err[1024], *text;

	k = json_pack("{s:s, s:s}", "keyid", keyid, "public_key", pem_text);
	root = json_pack("{s:[o]}", "attestation_keys", k);
	if (extra) {
		json_t *more = json_loads(extra, 0, NULL);

		assert_non_null(more);
		json_array_append_new(json_object_get(root, "attestation_keys"), more);
	}
	text = json_dumps(root, 0);
	json_decref(root);
	assert_int_equal(pol_policy_parse(text, strlen(text), "policy.json", &p,
					  err, sizeof(err)), AF_EPARSE);
	assert_null(p);
	if (!strstr(err, want))
		fail_msg("got \"%s\", want \"%s\"", err, want);
	/* A PEM is never quoted back, whatever it holds. */
	assert_null(strstr(err, "MII"));
	assert_null(strstr(err, "MC4"));
	free(text);
}

static void test_policy_keys_refused(void **state)
{
	char *rsa = slurp("rsa.pub", NULL), *p384 = slurp("p384.pub", NULL);
	char *priv = slurp("ed1.key", NULL), *ed1 = slurp("ed1.pub", NULL);
	char *dup, *cert;

	(void)state;
	expect_policy_error("r", rsa, NULL,
			    "policy.json: attestation_keys[0].public_key: RSA keys are not supported");
	expect_policy_error("p", p384, NULL,
			    "attestation_keys[0].public_key: ECDSA key not on P-256");
	expect_policy_error("k", priv, NULL,
			    "attestation_keys[0].public_key: not a PEM public key");
	expect_policy_error("k", "hello", NULL, "not a PEM public key");
	expect_policy_error("k", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
			    NULL, "not a readable PEM public key");
	sh("openssl req -x509 -new -key ed1.key -subj /CN=t -days 1 -out cert.pem");
	cert = slurp("cert.pem", NULL);
	expect_policy_error("k", cert, NULL, "not a PEM public key");
	/* Two keys, one keyid: ambiguous, refused. */
	{
		json_t *k = json_pack("{s:s, s:s}", "keyid", "k", "public_key", ed1);

		dup = json_dumps(k, JSON_COMPACT);
		json_decref(k);
	}
	expect_policy_error("k", ed1, dup,
			    "attestation_keys[1].keyid: same keyid as attestation_keys[0]");
	free(dup);
	expect_policy_error("", ed1, NULL, "attestation_keys[0].keyid: must be 1 to");
	expect_policy_error("k", ed1, "{\"keyid\":\"j\",\"public_key\":\"x\",\"scope\":1}",
			    "attestation_keys[1].scope: unknown field");
	expect_policy_error("k", ed1, "{\"keyid\":\"j\"}", "attestation_keys[1].public_key: missing");
	free(rsa);
	free(p384);
	free(priv);
	free(ed1);
	free(cert);
}

/* ---- the cache: once per registration version --------------------------- */

static char *registry_text(size_t n, const char *trust, const char *const *atts)
{
	json_t *arr = json_array();
	char *text, name[32];

	for (size_t i = 0; i < n; i++) {
		json_t *o;

		snprintf(name, sizeof(name), "m%zu.bin", i);
		o = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s}",
			      "project", "vision", "name", name,
			      "artifact_kind", "blob", "digest", D256, "source",
			      "source_type", "https", "uri", OKURI,
			      "lifecycle_state", "active", "trust_state", trust);
		json_object_set_new(o, "attestation",
				    atts[i] ? json_loads(atts[i], 0, NULL)
					    : json_null());
		json_array_append_new(arr, o);
	}
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return text;
}

static void test_cache(void **state)
{
	static const char *const other_keys[] = { "ed1", "ed1.pub", NULL, NULL };
	struct pol_policy *p = policy_with("attested", std_keys);
	struct pol_policy *p2 = policy_with("attested", std_keys);
	struct pol_policy *q = policy_with("attested", other_keys);
	char *st[3], *e[3], *text;
	const char *atts[4];
	struct pol_registry *g1, *g2, *g3;
	struct pol_registration *r;
	struct pol_attest_result ar;
	char reason[512];

	(void)state;
	for (int i = 0; i < 3; i++) {
		char nm[32];

		snprintf(nm, sizeof(nm), "vision/m%d.bin", i);
		st[i] = statement(nm, "sha256", HEX64, NULL);
	}
	e[0] = envelope(st[0], INTOTO, "ed1", "ed1");
	e[1] = envelope(st[1], INTOTO, "ec1", "ec1");
	e[2] = envelope(st[2], INTOTO, "ed2", "ed1");
	atts[0] = e[0];
	atts[1] = e[1];
	atts[2] = e[2];
	atts[3] = NULL;
	text = registry_text(4, "attested", atts);
	assert_int_equal(pol_registry_parse(text, strlen(text), "g", NULL, NULL, &g1), 0);
	assert_int_equal(pol_registry_parse(text, strlen(text), "g", NULL, NULL, &g2), 0);
	assert_int_equal(pol_registry_parse(text, strlen(text), "g", NULL, NULL, &g3), 0);
	assert_int_equal(pol_registry_count(g1), 4);

	/* First load: every envelope checked once. */
	assert_int_equal(pol_registry_attest(g1, p, NULL), 3);
	assert_int_equal(pol_registry_attest(g1, p, NULL), 0);
	/* A reload of the same records with the same keys borrows them all. */
	assert_int_equal(pol_registry_attest(g2, p2, g1), 0);
	r = (struct pol_registration *)pol_registry_find(g2, "vision", "m1.bin", D256);
	assert_non_null(r);
	pol_attest_get(p2, r, &ar);
	assert_string_equal(ar.text, "verified:ec1");
	r = (struct pol_registration *)pol_registry_find(g2, "vision", "m2.bin", D256);
	pol_attest_get(p2, r, &ar);
	assert_int_equal(ar.status, POL_ATTEST_BAD_SIGNATURE);

	/*
	 * The cached answer is the one used (no check at open): planting a
	 * result in the cache shows through pol_attest_get and the decision.
	 */
	r = (struct pol_registration *)pol_registry_find(g2, "vision", "m0.bin", D256);
	r->attest.status = POL_ATTEST_BAD_SIGNATURE;
	snprintf(r->attest.text, sizeof(r->attest.text), "planted");
	pol_attest_get(p, r, &ar);
	assert_string_equal(ar.text, "planted");
	assert_int_equal(pol_policy_decide(p, r, reason, sizeof(reason)), AF_EDENIED);
	assert_non_null(strstr(reason, "planted"));
	/* Under other keys the cache does not apply: checked anew. */
	pol_attest_get(q, r, &ar);
	assert_string_equal(ar.text, "verified:ed1");
	/* A policy change with other keys: every envelope checked again. */
	assert_int_equal(pol_registry_attest(g3, q, g2), 3);
	r = (struct pol_registration *)pol_registry_find(g3, "vision", "m1.bin", D256);
	pol_attest_get(q, r, &ar);
	assert_int_equal(ar.status, POL_ATTEST_UNKNOWN_KEY);
	/* No policy: nothing cached, everything says so. */
	assert_int_equal(pol_registry_attest(g3, NULL, NULL), 0);
	pol_attest_get(NULL, r, &ar);
	assert_int_equal(ar.status, POL_ATTEST_NO_POLICY);
	/* A registration copied (as fs/ does at open) keeps its result. */
	assert_int_equal(pol_registry_attest(g3, q, NULL), 3);
	{
		struct pol_registration *d = pol_registration_dup(r);

		assert_non_null(d);
		assert_true(d->attest_cached);
		assert_string_equal(d->attestation, r->attestation);
		pol_attest_get(q, d, &ar);
		assert_int_equal(ar.status, POL_ATTEST_UNKNOWN_KEY);
		pol_registration_free(d);
	}
	pol_registry_free(g1);
	pol_registry_free(g2);
	pol_registry_free(g3);
	free(text);
	for (int i = 0; i < 3; i++) {
		free(st[i]);
		free(e[i]);
	}
	pol_policy_free(p);
	pol_policy_free(p2);
	pol_policy_free(q);
}

/* A changed record (new evidence) is checked again; an identical one is not. */
static void test_cache_changed_record(void **state)
{
	struct pol_policy *p = policy_with("attested", std_keys);
	char *st = statement("vision/m0.bin", "sha256", HEX64, NULL);
	char *e1 = envelope(st, INTOTO, "ed2", "ed1"), *e2 = envelope(st, INTOTO, "ed1", "ed1");
	const char *a1[] = { e1 }, *a2[] = { e2 };
	char *t1 = registry_text(1, "attested", a1), *t2 = registry_text(1, "attested", a2);
	struct pol_registry *g1, *g2;
	struct pol_attest_result ar;

	(void)state;
	assert_int_equal(pol_registry_parse(t1, strlen(t1), "g", NULL, NULL, &g1), 0);
	assert_int_equal(pol_registry_parse(t2, strlen(t2), "g", NULL, NULL, &g2), 0);
	assert_int_equal(pol_registry_attest(g1, p, NULL), 1);
	pol_attest_get(p, pol_registry_at(g1, 0), &ar);
	assert_int_equal(ar.status, POL_ATTEST_BAD_SIGNATURE);
	assert_int_equal(pol_registry_attest(g2, p, g1), 1);
	pol_attest_get(p, pol_registry_at(g2, 0), &ar);
	assert_string_equal(ar.text, "verified:ed1");
	pol_registry_free(g1);
	pol_registry_free(g2);
	free(t1);
	free(t2);
	free(e1);
	free(e2);
	free(st);
	pol_policy_free(p);
}

/* A verified record with valid evidence stays below a minimum of attested. */
static void test_trust_claim_needed(void **state)
{
	struct pol_policy *p = policy_with("attested", std_keys);
	char *st = statement("vision/m.bin", "sha256", HEX64, NULL);
	char *e = envelope(st, INTOTO, "ed1", "ed1");
	struct pol_registration *r = reg_with("vision", "verified", e);
	char reason[512];

	(void)state;
	expect_result(p, r, POL_ATTEST_VERIFIED, "verified:ed1");
	assert_int_equal(pol_policy_decide(p, r, reason, sizeof(reason)), AF_EDENIED);
	assert_string_equal(reason, "trust state verified is below minimum attested");
	assert_false(pol_attest_confirmed(p, r));
	pol_registration_free(r);
	free(e);
	free(st);
	pol_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pae),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_published_vector),
		cmocka_unit_test(test_verified_ed25519_and_p256),
		cmocka_unit_test(test_each_failure),
		cmocka_unit_test(test_several_subjects),
		cmocka_unit_test(test_multiple_signatures),
		cmocka_unit_test(test_bad_base64),
		cmocka_unit_test(test_ten_megabyte_envelope),
		cmocka_unit_test(test_ten_thousand_signatures),
		cmocka_unit_test(test_policy_keys_refused),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_changed_record),
		cmocka_unit_test(test_trust_claim_needed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
