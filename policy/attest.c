/*
 * attest.c - DSSE envelopes, in-toto Statements v1 and the policy's
 * attestation_keys (DESIGN §12). The evidence is outside input: every
 * size is bounded (attest.h), nothing of it reaches a message unquoted
 * (pol_safe), and a PEM is never quoted at all (an operator who pastes a
 * private key by mistake must not find it in a log).
 *
 * Order of the checks, after DSSE's protocol ("To verify"): decode the
 * envelope; refuse a payload type that is not in-toto; verify a signature
 * over PAE(payloadType, payload); only then parse the payload, the bytes
 * that were verified, and match its subject.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pol_int.h"

#define PEM_MAX		(16u * 1024)
#define PEM_PUBKEY_HEAD	"-----BEGIN PUBLIC KEY-----"

/* ---- base64 (RFC 4648 §4 and §5) ---------------------------------- */

static int b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

int pol_base64_decode(const char *s, size_t len, unsigned char **out,
		      size_t *out_len)
{
	unsigned char *buf;
	size_t pad = 0, n, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	*out = NULL;
	*out_len = 0;
	while (pad < 2 && pad < len && s[len - 1 - pad] == '=')
		pad++;
	n = len - pad;
	/* Padded: a multiple of 4 in all. Unpadded: never 1 left over. */
	if ((pad && len % 4 != 0) || n % 4 == 1)
		return AF_EPARSE;
	buf = malloc(n / 4 * 3 + 3);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)s[i]);

		if (v < 0)
			goto out_bad;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* The bits left over must be zero (one encoding per byte string). */
	if (acc != 0)
		goto out_bad;
	if (pad && (n % 4) + pad != 4)
		goto out_bad;
	buf[o] = '\0';
	*out = buf;
	*out_len = o;
	return 0;
out_bad:
	free(buf);
	return AF_EPARSE;
}

/* ---- PAE (DSSE protocol) ------------------------------------------- */

int pol_dsse_pae(const char *type, size_t type_len, const unsigned char *body,
		 size_t body_len, unsigned char **out, size_t *out_len)
{
	char head[32], mid[32];
	unsigned char *p;
	int hl, ml;
	size_t n;

	*out = NULL;
	*out_len = 0;
	hl = snprintf(head, sizeof(head), "DSSEv1 %zu ", type_len);
	ml = snprintf(mid, sizeof(mid), " %zu ", body_len);
	if (hl < 0 || ml < 0 || (size_t)hl >= sizeof(head) ||
	    (size_t)ml >= sizeof(mid))
		return -EOVERFLOW;
	if (type_len > SIZE_MAX / 4 || body_len > SIZE_MAX / 4)
		return -EOVERFLOW;
	n = (size_t)hl + type_len + (size_t)ml + body_len;
	p = malloc(n + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, head, (size_t)hl);
	memcpy(p + hl, type, type_len);
	memcpy(p + hl + type_len, mid, (size_t)ml);
	if (body_len)
		memcpy(p + hl + type_len + ml, body, body_len);
	p[n] = '\0';
	*out = p;
	*out_len = n;
	return 0;
}

/* ---- attestation_keys (policy side) --------------------------------- */

void pol_attest_keys_release(struct pol_attest_keys *keys)
{
	for (size_t i = 0; i < keys->n; i++) {
		struct pol_attest_key *k = &keys->v[i];

		free(k->keyid);
		EVP_PKEY_free(k->pkey);
		for (size_t j = 0; j < k->n_projects; j++)
			free(k->projects[j]);
		free(k->projects);
	}
	free(keys->v);
	keys->v = NULL;
	keys->n = 0;
}

static bool keyid_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > POL_ATTEST_KEYID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/*
 * Reads one PEM public key, Ed25519 or ECDSA P-256 (DESIGN §12). Anything
 * else is refused with a reason that never quotes the text.
 */
static int parse_pem(struct pol_perr *c, const char *field, const char *pem,
		     struct pol_attest_key *k)
{
	char group[64];
	const char *s = pem;
	EVP_PKEY *pkey;
	BIO *bio;
	int id;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if (strlen(pem) > PEM_MAX)
		return pol_perr_fail(c, field, "longer than %u bytes", PEM_MAX);
	if (strncmp(s, PEM_PUBKEY_HEAD, strlen(PEM_PUBKEY_HEAD)) != 0)
		return pol_perr_fail(c, field,
			"not a PEM public key (want \"" PEM_PUBKEY_HEAD "\"; a private key or certificate is refused)");
	bio = BIO_new_mem_buf(s, (int)strlen(s));
	if (!bio)
		return pol_perr_fail(c, field, "out of memory");
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!pkey)
		return pol_perr_fail(c, field, "not a readable PEM public key");
	id = EVP_PKEY_get_base_id(pkey);
	switch (id) {
	case EVP_PKEY_ED25519:
		k->kind = POL_KEY_ED25519;
		break;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) != 1 ||
		    (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
			EVP_PKEY_free(pkey);
			return pol_perr_fail(c, field,
				"ECDSA key not on P-256 (want Ed25519 or ECDSA P-256)");
		}
		k->kind = POL_KEY_P256;
		break;
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		EVP_PKEY_free(pkey);
		return pol_perr_fail(c, field,
			"RSA keys are not supported (want Ed25519 or ECDSA P-256)");
	default:
		EVP_PKEY_free(pkey);
		return pol_perr_fail(c, field,
			"unsupported key type (want Ed25519 or ECDSA P-256)");
	}
	k->pkey = pkey;
	return 0;
}

static int parse_key(struct pol_perr *c, size_t idx, json_t *v,
		     struct pol_attest_key *k)
{
	static const char *const keys[] = { "keyid", "public_key", "projects",
					    NULL };
	char where[48], field[96];
	json_t *pv;
	int ret;

	snprintf(where, sizeof(where), "attestation_keys[%zu]", idx);
	if (!json_is_object(v))
		return pol_perr_fail(c, where, "must be an object");
	ret = pol_perr_keys(c, v, where, keys);
	if (ret < 0)
		return ret;
	snprintf(field, sizeof(field), "%s.keyid", where);
	pv = json_object_get(v, "keyid");
	if (!pv)
		return pol_perr_fail(c, field, "missing");
	if (!json_is_string(pv) || !keyid_valid(json_string_value(pv)))
		return pol_perr_fail(c, field,
			"must be 1 to %d printable ASCII characters",
			POL_ATTEST_KEYID_MAX);
	k->keyid = strdup(json_string_value(pv));
	if (!k->keyid)
		return pol_perr_fail(c, field, "out of memory");

	snprintf(field, sizeof(field), "%s.public_key", where);
	pv = json_object_get(v, "public_key");
	if (!pv)
		return pol_perr_fail(c, field, "missing");
	if (!json_is_string(pv))
		return pol_perr_fail(c, field, "must be a string (PEM)");
	ret = parse_pem(c, field, json_string_value(pv), k);
	if (ret < 0)
		return ret;

	return pol_perr_projects(c, v, where, &k->projects, &k->n_projects);
}

/*
 * The key set's fingerprint: what a cached result depends on (keyid, key,
 * projects of every key, in order). Records are re-checked when it moves.
 */
static int keys_fingerprint(struct pol_attest_keys *keys)
{
	unsigned int len = 0;
	EVP_MD_CTX *md;
	int ok;

	md = EVP_MD_CTX_new();
	if (!md)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (size_t i = 0; ok && i < keys->n; i++) {
		const struct pol_attest_key *k = &keys->v[i];
		unsigned char *der = NULL;
		int dlen = i2d_PUBKEY(k->pkey, &der);
		uint32_t sep = (uint32_t)dlen;

		if (dlen <= 0) {
			ok = 0;
			break;
		}
		ok = EVP_DigestUpdate(md, k->keyid, strlen(k->keyid) + 1) &&
		     EVP_DigestUpdate(md, &sep, sizeof(sep)) &&
		     EVP_DigestUpdate(md, der, (size_t)dlen) &&
		     EVP_DigestUpdate(md, k->projects ? "P" : "*", 1);
		OPENSSL_free(der);
		for (size_t j = 0; ok && j < k->n_projects; j++)
			ok = EVP_DigestUpdate(md, k->projects[j],
					      strlen(k->projects[j]) + 1);
		ok = ok && EVP_DigestUpdate(md, "\n", 1);
	}
	ok = ok && EVP_DigestFinal_ex(md, keys->fp, &len) && len == 32;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -ENOMEM;
}

int pol_attest_keys_parse(struct pol_perr *c, json_t *v,
			  struct pol_attest_keys *keys)
{
	char field[64];
	size_t i, n;
	json_t *e;
	int ret;

	memset(keys, 0, sizeof(*keys));
	if (v && !json_is_null(v)) {
		if (!json_is_array(v))
			return pol_perr_fail(c, "attestation_keys",
					     "must be an array");
		n = json_array_size(v);
		if (n > POL_ATTEST_KEYS_MAX)
			return pol_perr_fail(c, "attestation_keys",
					     "more than %d keys",
					     POL_ATTEST_KEYS_MAX);
		keys->v = calloc(n ? n : 1, sizeof(*keys->v));
		if (!keys->v)
			return pol_perr_fail(c, "attestation_keys",
					     "out of memory");
		json_array_foreach(v, i, e) {
			keys->n = i + 1;
			ret = parse_key(c, i, e, &keys->v[i]);
			if (ret < 0)
				return ret;
			/* keyid selects the key (§12): two keys, one id, is ambiguous. */
			for (size_t j = 0; j < i; j++) {
				if (strcmp(keys->v[j].keyid, keys->v[i].keyid) != 0)
					continue;
				snprintf(field, sizeof(field),
					 "attestation_keys[%zu].keyid", i);
				return pol_perr_fail(c, field,
					"same keyid as attestation_keys[%zu]", j);
			}
		}
	}
	if (keys_fingerprint(keys) < 0)
		return pol_perr_fail(c, "attestation_keys", "out of memory");
	return 0;
}

/* ---- the envelope ---------------------------------------------------- */

struct dsse_sig {
	const char *keyid;		/* "" when absent or null; points into the JSON */
	unsigned char *sig;
	size_t sig_len;
};

struct dsse_env {
	json_t *root;
	const char *type;		/* payloadType, points into root */
	size_t type_len;
	unsigned char *payload;
	size_t payload_len;
	struct dsse_sig *sigs;
	size_t n_sigs;
};

static void env_release(struct dsse_env *env)
{
	for (size_t i = 0; i < env->n_sigs; i++)
		free(env->sigs[i].sig);
	free(env->sigs);
	free(env->payload);
	json_decref(env->root);
	memset(env, 0, sizeof(*env));
}

static void result_set(struct pol_attest_result *out,
		       enum pol_attest_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void result_set(struct pol_attest_result *out,
		       enum pol_attest_status status, const char *fmt, ...)
{
	va_list ap;

	out->status = status;
	va_start(ap, fmt);
	if (vsnprintf(out->text, sizeof(out->text), fmt, ap) < 0)
		out->text[0] = '\0';
	va_end(ap);
}

/*
 * Decodes the JSON envelope (DSSE envelope.md: payload, payloadType,
 * signatures and each sig required; keyid optional, unset and empty the
 * same; unknown fields ignored). Returns 0, or fills *out (MALFORMED).
 */
static int env_parse(const char *text, size_t len, struct dsse_env *env,
		     struct pol_attest_result *out)
{
	json_error_t jerr;
	json_t *v, *sigs, *e;
	size_t i, n;

	memset(env, 0, sizeof(*env));
	if (len > POL_ATTEST_ENVELOPE_MAX) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: envelope larger than %u bytes",
			   POL_ATTEST_ENVELOPE_MAX);
		return AF_EPARSE;
	}
	env->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!env->root || !json_is_object(env->root)) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: not a DSSE envelope (a JSON object)");
		return AF_EPARSE;
	}
	v = json_object_get(env->root, "payloadType");
	if (!json_is_string(v)) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: payloadType missing or not a string");
		return AF_EPARSE;
	}
	env->type = json_string_value(v);
	env->type_len = json_string_length(v);
	v = json_object_get(env->root, "payload");
	if (!json_is_string(v)) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: payload missing or not a string");
		return AF_EPARSE;
	}
	if (pol_base64_decode(json_string_value(v), json_string_length(v),
			      &env->payload, &env->payload_len) < 0) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: payload is not base64");
		return AF_EPARSE;
	}
	sigs = json_object_get(env->root, "signatures");
	if (!json_is_array(sigs) || json_array_size(sigs) == 0) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: signatures missing or empty");
		return AF_EPARSE;
	}
	n = json_array_size(sigs);
	if (n > POL_ATTEST_SIGS_MAX) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: more than %d signatures",
			   POL_ATTEST_SIGS_MAX);
		return AF_EPARSE;
	}
	env->sigs = calloc(n, sizeof(*env->sigs));
	if (!env->sigs) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: out of memory");
		return -ENOMEM;
	}
	json_array_foreach(sigs, i, e) {
		struct dsse_sig *s = &env->sigs[i];
		json_t *kv = json_object_get(e, "keyid");
		json_t *sv = json_object_get(e, "sig");

		env->n_sigs = i + 1;
		if (!json_is_object(e) || !json_is_string(sv) ||
		    (kv && !json_is_null(kv) && !json_is_string(kv))) {
			result_set(out, POL_ATTEST_MALFORMED,
				   "malformed evidence: signatures[%zu] is not {\"keyid\", \"sig\"}",
				   i);
			return AF_EPARSE;
		}
		s->keyid = json_is_string(kv) ? json_string_value(kv) : "";
		if (pol_base64_decode(json_string_value(sv),
				      json_string_length(sv), &s->sig,
				      &s->sig_len) < 0) {
			result_set(out, POL_ATTEST_MALFORMED,
				   "malformed evidence: signatures[%zu].sig is not base64",
				   i);
			return AF_EPARSE;
		}
	}
	return 0;
}

/* ---- signatures ------------------------------------------------------- */

/*
 * ECDSA signatures come DER-encoded (openssl pkeyutl, cosign) or as the
 * raw r||s of 64 bytes (DSSE's own test vector, JOSE style). Returns a
 * DER signature in *der (free with OPENSSL_free when *owned) or -1.
 */
static int ecdsa_der(const unsigned char *sig, size_t len, unsigned char **der,
		     size_t *der_len, bool *owned)
{
	const unsigned char *p = sig;
	ECDSA_SIG *es;
	BIGNUM *r, *s;
	int n;

	*owned = false;
	es = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (es && p == sig + len) {
		ECDSA_SIG_free(es);
		*der = (unsigned char *)sig;
		*der_len = len;
		return 0;
	}
	ECDSA_SIG_free(es);
	if (len != 64)
		return -1;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 32, NULL);
	s = BN_bin2bn(sig + 32, 32, NULL);
	if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return -1;
	}
	*der = NULL;
	n = i2d_ECDSA_SIG(es, der);
	ECDSA_SIG_free(es);
	if (n <= 0)
		return -1;
	*der_len = (size_t)n;
	*owned = true;
	return 0;
}

/* True when sig is k's signature over msg. */
static bool sig_verifies(const struct pol_attest_key *k,
			 const unsigned char *msg, size_t msg_len,
			 const unsigned char *sig, size_t sig_len)
{
	unsigned char *der = NULL;
	size_t der_len = 0;
	bool owned = false, ok = false;
	EVP_MD_CTX *md;

	if (k->kind == POL_KEY_ED25519) {
		if (sig_len != 64)
			return false;
		der = (unsigned char *)sig;
		der_len = sig_len;
	} else if (ecdsa_der(sig, sig_len, &der, &der_len, &owned) < 0) {
		return false;
	}
	md = EVP_MD_CTX_new();
	if (md &&
	    EVP_DigestVerifyInit(md, NULL,
				 k->kind == POL_KEY_P256 ? EVP_sha256() : NULL,
				 NULL, k->pkey) == 1)
		ok = EVP_DigestVerify(md, der, der_len, msg, msg_len) == 1;
	EVP_MD_CTX_free(md);
	if (owned)
		OPENSSL_free(der);
	return ok;
}

static bool key_allowed(const struct pol_attest_key *k, const char *project)
{
	if (!k->projects || !project)
		return true;
	for (size_t i = 0; i < k->n_projects; i++)
		if (strcmp(k->projects[i], project) == 0)
			return true;
	return false;
}

static const struct pol_attest_key *key_find(const struct pol_attest_keys *keys,
					     const char *keyid)
{
	for (size_t i = 0; i < keys->n; i++)
		if (strcmp(keys->v[i].keyid, keyid) == 0)
			return &keys->v[i];
	return NULL;
}

/* A failure seen so far; a higher rank says more about what went wrong. */
static int fail_rank(enum pol_attest_status s)
{
	switch (s) {
	case POL_ATTEST_BAD_SIGNATURE:
		return 3;
	case POL_ATTEST_KEY_NOT_ALLOWED:
		return 2;
	case POL_ATTEST_UNKNOWN_KEY:
		return 1;
	default:
		return 0;
	}
}

static void note_fail(struct pol_attest_result *best,
		      enum pol_attest_status s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note_fail(struct pol_attest_result *best,
		      enum pol_attest_status s, const char *fmt, ...)
{
	va_list ap;

	if (fail_rank(s) <= fail_rank(best->status))
		return;
	best->status = s;
	va_start(ap, fmt);
	if (vsnprintf(best->text, sizeof(best->text), fmt, ap) < 0)
		best->text[0] = '\0';
	va_end(ap);
}

/*
 * Verifies env's signatures (threshold 1). keyid selects the key (§12); a
 * signature without one is tried with each key allowed for project. At
 * most POL_ATTEST_VERIFY_MAX signature checks in all.
 */
static void env_verify(const struct pol_attest_keys *keys,
		       const struct dsse_env *env, const char *project,
		       struct pol_attest_result *out)
{
	struct pol_attest_result best = { POL_ATTEST_NONE, "" };
	char safe[POL_SAFE_BUF], psafe[POL_SAFE_BUF];
	unsigned char *pae;
	size_t pae_len;
	unsigned budget = POL_ATTEST_VERIFY_MAX;

	if (pol_dsse_pae(env->type, env->type_len, env->payload,
			 env->payload_len, &pae, &pae_len) < 0) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: out of memory");
		return;
	}
	pol_safe(project ? project : "", POL_SAFE_LEN, psafe, sizeof(psafe));
	for (size_t i = 0; i < env->n_sigs && budget > 0; i++) {
		const struct dsse_sig *s = &env->sigs[i];
		const struct pol_attest_key *k;
		bool tried = false;

		if (*s->keyid) {
			pol_safe(s->keyid, POL_SAFE_LEN, safe, sizeof(safe));
			k = key_find(keys, s->keyid);
			if (!k) {
				note_fail(&best, POL_ATTEST_UNKNOWN_KEY,
					  "unknown key (keyid \"%s\")", safe);
				continue;
			}
			if (!key_allowed(k, project)) {
				note_fail(&best, POL_ATTEST_KEY_NOT_ALLOWED,
					  "key \"%s\" not allowed for project %s",
					  safe, psafe);
				continue;
			}
			budget--;
			if (sig_verifies(k, pae, pae_len, s->sig, s->sig_len)) {
				result_set(out, POL_ATTEST_VERIFIED,
					   "verified:%s", k->keyid);
				goto out_pae;
			}
			note_fail(&best, POL_ATTEST_BAD_SIGNATURE,
				  "bad signature (keyid \"%s\")", safe);
			continue;
		}
		for (size_t j = 0; j < keys->n && budget > 0; j++) {
			k = &keys->v[j];
			if (!key_allowed(k, project))
				continue;
			budget--;
			tried = true;
			if (sig_verifies(k, pae, pae_len, s->sig, s->sig_len)) {
				result_set(out, POL_ATTEST_VERIFIED,
					   "verified:%s", k->keyid);
				goto out_pae;
			}
		}
		if (tried)
			note_fail(&best, POL_ATTEST_BAD_SIGNATURE,
				  "bad signature (signatures[%zu] has no keyid and no allowed key verifies it)",
				  i);
		else
			note_fail(&best, POL_ATTEST_UNKNOWN_KEY,
				  "unknown key (signatures[%zu] has no keyid and no key is allowed for project %s)",
				  i, psafe);
	}
	if (best.status == POL_ATTEST_NONE)
		result_set(&best, POL_ATTEST_UNKNOWN_KEY, "unknown key");
	*out = best;
out_pae:
	free(pae);
}

void pol_dsse_verify(const struct pol_policy *p, const char *envelope,
		     size_t len, const char *project,
		     struct pol_attest_result *out)
{
	struct dsse_env env;

	if (!p) {
		result_set(out, POL_ATTEST_NO_POLICY, "no policy loaded");
		return;
	}
	if (!envelope) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: no envelope");
		return;
	}
	if (env_parse(envelope, len, &env, out) == 0)
		env_verify(pol_policy_attest_keys(p), &env, project, out);
	env_release(&env);
}

/* ---- the statement ---------------------------------------------------- */

/*
 * Parses the verified payload as an in-toto Statement v1 and looks for a
 * subject naming project/name with the registration's digest; other
 * subjects are allowed and ignored. Returns 0 on a match, else fills out.
 */
static int statement_match(const unsigned char *payload, size_t len,
			   const char *project, const char *name,
			   const char *digest, struct pol_attest_result *out)
{
	char want[512], algo[16], safe[POL_SAFE_BUF];
	const char *colon = strchr(digest, ':');
	const char *hex;
	json_error_t jerr;
	json_t *root, *v, *subj;
	size_t i;
	int ret = AF_EPARSE;

	if (!colon || (size_t)(colon - digest) >= sizeof(algo)) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: bad registration digest");
		return AF_EPARSE;
	}
	memcpy(algo, digest, (size_t)(colon - digest));
	algo[colon - digest] = '\0';
	hex = colon + 1;
	snprintf(want, sizeof(want), "%s/%s", project, name);

	root = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES,
			  &jerr);
	if (!json_is_object(root)) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: payload is not a JSON object");
		goto out_root;
	}
	v = json_object_get(root, "_type");
	if (!json_is_string(v) ||
	    strcmp(json_string_value(v), POL_INTOTO_STATEMENT_V1) != 0) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: payload _type is not \"%s\"",
			   POL_INTOTO_STATEMENT_V1);
		goto out_root;
	}
	if (!json_is_string(json_object_get(root, "predicateType"))) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: statement has no predicateType");
		goto out_root;
	}
	subj = json_object_get(root, "subject");
	if (!json_is_array(subj) || json_array_size(subj) == 0) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: statement has no subject");
		goto out_root;
	}
	json_array_foreach(subj, i, v) {
		json_t *nv = json_object_get(v, "name");
		json_t *dv = json_object_get(v, "digest");
		json_t *hv;

		if (!json_is_object(v) || !json_is_object(dv)) {
			result_set(out, POL_ATTEST_MALFORMED,
				   "malformed evidence: subject[%zu] is not {\"name\", \"digest\"}",
				   i);
			goto out_root;
		}
		if (!json_is_string(nv) || strcmp(json_string_value(nv), want) != 0)
			continue;
		hv = json_object_get(dv, algo);
		if (json_is_string(hv) && strlen(json_string_value(hv)) == strlen(hex) &&
		    strcasecmp(json_string_value(hv), hex) == 0) {
			ret = 0;
			goto out_root;
		}
	}
	result_set(out, POL_ATTEST_SUBJECT_MISMATCH,
		   "subject mismatch (no subject is %s with its %s digest)",
		   pol_safe(want, POL_SAFE_LEN, safe, sizeof(safe)), algo);
out_root:
	json_decref(root);
	return ret;
}

void pol_attest_check_envelope(const struct pol_policy *p,
			       const char *envelope, size_t len,
			       const char *project, const char *name,
			       const char *digest,
			       struct pol_attest_result *out)
{
	char safe[POL_SAFE_BUF];
	struct pol_attest_result vr;
	struct dsse_env env;

	if (!envelope) {
		result_set(out, POL_ATTEST_NONE, "none: no attestation");
		return;
	}
	if (!p) {
		result_set(out, POL_ATTEST_NO_POLICY, "no policy loaded");
		return;
	}
	if (!project || !name || !digest) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: no registration");
		return;
	}
	if (env_parse(envelope, len, &env, out) < 0)
		goto out_env;
	if (env.type_len != strlen(POL_INTOTO_PAYLOAD_TYPE) ||
	    memcmp(env.type, POL_INTOTO_PAYLOAD_TYPE, env.type_len) != 0) {
		result_set(out, POL_ATTEST_PAYLOAD_TYPE,
			   "payload type is not in-toto (\"%s\")",
			   pol_safe(env.type, POL_SAFE_LEN, safe, sizeof(safe)));
		goto out_env;
	}
	env_verify(pol_policy_attest_keys(p), &env, project, &vr);
	if (vr.status != POL_ATTEST_VERIFIED) {
		*out = vr;
		goto out_env;
	}
	if (statement_match(env.payload, env.payload_len, project, name,
			    digest, out) == 0)
		*out = vr;
out_env:
	env_release(&env);
}

void pol_attest_check(const struct pol_policy *p,
		      const struct pol_registration *r,
		      struct pol_attest_result *out)
{
	if (!r) {
		result_set(out, POL_ATTEST_MALFORMED,
			   "malformed evidence: no registration");
		return;
	}
	if (!r->attestation && r->attestation_len) {
		if (!p)
			result_set(out, POL_ATTEST_NO_POLICY, "no policy loaded");
		else
			result_set(out, POL_ATTEST_MALFORMED,
				   "malformed evidence: envelope larger than %u bytes",
				   POL_ATTEST_ENVELOPE_MAX);
		return;
	}
	pol_attest_check_envelope(p, r->attestation, r->attestation_len,
				  r->project, r->name, r->digest.str, out);
}

void pol_attest_get(const struct pol_policy *p,
		    const struct pol_registration *r,
		    struct pol_attest_result *out)
{
	if (p && r && r->attest_cached &&
	    memcmp(r->attest_keys_fp, pol_policy_attest_keys(p)->fp,
		   sizeof(r->attest_keys_fp)) == 0) {
		*out = r->attest;
		return;
	}
	pol_attest_check(p, r, out);
}

bool pol_attest_confirmed(const struct pol_policy *p,
			  const struct pol_registration *r)
{
	struct pol_attest_result ar;

	if (!p || !r || r->trust != POL_TRUST_ATTESTED)
		return false;
	pol_attest_get(p, r, &ar);
	return ar.status == POL_ATTEST_VERIFIED;
}

bool pol_attest_fill(struct pol_registration *r, const struct pol_policy *p,
		     const struct pol_registration *prev)
{
	const unsigned char *fp;
	bool fresh = false;

	if (!p) {
		r->attest_cached = false;
		return false;
	}
	fp = pol_policy_attest_keys(p)->fp;
	if (r->attest_cached && memcmp(r->attest_keys_fp, fp, 32) == 0)
		return false;
	/* The same record, the same evidence, the same keys: the same answer. */
	if (prev && prev->attest_cached &&
	    memcmp(prev->attest_keys_fp, fp, 32) == 0 &&
	    prev->attestation_len == r->attestation_len &&
	    !prev->attestation == !r->attestation &&
	    strcmp(prev->project, r->project) == 0 &&
	    strcmp(prev->name, r->name) == 0 &&
	    strcmp(prev->digest.str, r->digest.str) == 0 &&
	    (!r->attestation ||
	     memcmp(prev->attestation, r->attestation,
		    r->attestation_len) == 0)) {
		r->attest = prev->attest;
	} else {
		pol_attest_check(p, r, &r->attest);
		fresh = r->attestation != NULL;
	}
	memcpy(r->attest_keys_fp, fp, 32);
	r->attest_cached = true;
	return fresh;
}
