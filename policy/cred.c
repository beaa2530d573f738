/*
 * cred.c - credential documents (DESIGN §5): parse, refuse, match scopes,
 * build the helper's request. Secrets are copied out of jansson's tree
 * into our own strings and wiped wherever they were (our copies on free,
 * jansson's before the tree is dropped); the caller wipes its input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cred.h"
#include "pol_int.h"

/* Fields every document has, whatever its type. */
static const char *const common_fields[] = { "source_type", "scope",
					     "expires_at" };

/* Secret fields, and which types take them (bit 1 << type). */
#define T(x) (1u << (x))
static const struct {
	const char *name;
	size_t off;
	unsigned types;
} secret_fields[] = {
	{ "access_key_id", offsetof(struct pol_cred, access_key_id),
	  T(POL_SRC_S3) },
	{ "secret_access_key", offsetof(struct pol_cred, secret_access_key),
	  T(POL_SRC_S3) },
	{ "session_token", offsetof(struct pol_cred, session_token),
	  T(POL_SRC_S3) },
	{ "bearer_token", offsetof(struct pol_cred, bearer_token),
	  T(POL_SRC_GCS) | T(POL_SRC_AZURE_BLOB) | T(POL_SRC_HTTPS) |
	  T(POL_SRC_HUGGINGFACE) | T(POL_SRC_ARTIFACT_STORE) },
	{ "sas_token", offsetof(struct pol_cred, sas_token),
	  T(POL_SRC_AZURE_BLOB) },
};
#undef T
#define N_SECRETS (sizeof(secret_fields) / sizeof(secret_fields[0]))

static char **secret_slot(struct pol_cred *c, size_t i)
{
	return (char **)((char *)c + secret_fields[i].off);
}

static void wipe_free(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

void pol_cred_free(struct pol_cred *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < N_SECRETS; i++)
		wipe_free(*secret_slot(c, i));
	free(c->scope);
	free(c->origin);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

struct pol_cred *pol_cred_dup(const struct pol_cred *c)
{
	struct pol_cred *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->type = c->type;
	d->expires_at_s = c->expires_at_s;
	d->scope = c->scope ? strdup(c->scope) : NULL;
	d->origin = c->origin ? strdup(c->origin) : NULL;
	if ((c->scope && !d->scope) || (c->origin && !d->origin))
		goto out_free;
	for (size_t i = 0; i < N_SECRETS; i++) {
		const char *s = *secret_slot((struct pol_cred *)c, i);

		if (s && !(*secret_slot(d, i) = strdup(s)))
			goto out_free;
	}
	return d;

out_free:
	pol_cred_free(d);
	return NULL;
}

/* The scheme a type's URIs (and so its scopes) start with. */
static bool scope_scheme_ok(enum pol_source_type t, const char *s)
{
	switch (t) {
	case POL_SRC_S3:
		return strncmp(s, "s3://", 5) == 0;
	case POL_SRC_GCS:
		return strncmp(s, "gs://", 5) == 0;
	case POL_SRC_AZURE_BLOB:
		return strncmp(s, "https://", 8) == 0;
	case POL_SRC_HTTPS:
		return strncmp(s, "https://", 8) == 0 ||
		       strncmp(s, "http://", 7) == 0;
	case POL_SRC_HUGGINGFACE:
		return strncmp(s, "hf://", 5) == 0;
	case POL_SRC_ARTIFACT_STORE:
		return strncmp(s, "artifact-store://", 17) == 0;
	default:
		return false;
	}
}

/*
 * A scope is a URI prefix as registrations write them: the type's scheme,
 * an authority (bucket, host, org, repository), no userinfo, no query or
 * fragment, no dot segment, no backslash, no byte outside printable ASCII.
 * Returns NULL or what is wrong.
 */
static const char *scope_problem(enum pol_source_type t, const char *s)
{
	const char *auth, *p;
	size_t n = strlen(s);

	if (n == 0)
		return "empty";
	if (n > POL_CRED_SCOPE_MAX)
		return "too long";
	for (p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    *p == '\\')
			return "has a space, control, non-ASCII byte or backslash";
	if (!scope_scheme_ok(t, s))
		return "does not start with the scheme of the source type";
	auth = strstr(s, "://") + 3;
	if (*auth == '\0' || *auth == '/')
		return "has no host, bucket or repository";
	if (memchr(auth, '@', strcspn(auth, "/")))
		return "must not carry userinfo";
	if (strpbrk(s, "?#"))
		return "must not have a query or fragment";
	if (pol_path_has_dot_segment(auth, auth + strlen(auth)))
		return "has a dot segment";
	return NULL;
}

/*
 * A secret value goes into a request header or query: printable ASCII
 * without spaces (no header injection), bounded.
 */
static const char *secret_problem(const char *field, const char *v)
{
	size_t n = strlen(v);

	if (n == 0)
		return "empty";
	if (n > POL_CRED_SECRET_MAX)
		return "too long";
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return "must be printable ASCII without spaces";
	/* The key id is a field of "Credential=<id>/<date>/…". */
	if (strcmp(field, "access_key_id") == 0 && strpbrk(v, "/,;="))
		return "must not contain '/', ',', ';' or '='";
	if (strcmp(field, "sas_token") == 0 && (strchr(v, '#') || v[0] == '&'))
		return "is not a query string";
	return NULL;
}

static void wipe_json_secrets(json_t *root)
{
	for (size_t i = 0; i < N_SECRETS; i++) {
		json_t *v = json_object_get(root, secret_fields[i].name);

		if (json_is_string(v))
			OPENSSL_cleanse((char *)json_string_value(v),
					json_string_length(v));
	}
}

/* Fills the secrets of c from root; AF_ECRED (message in err) when refused. */
static int take_secrets(struct pol_perr *pe, json_t *root, struct pol_cred *c)
{
	unsigned bit = 1u << c->type;
	const char *key, *why;
	char safe[POL_SAFE_BUF];
	json_t *v;
	bool known;

	json_object_foreach(root, key, v) {
		known = false;
		for (size_t i = 0; i < sizeof(common_fields) /
				       sizeof(common_fields[0]); i++)
			if (strcmp(key, common_fields[i]) == 0)
				known = true;
		for (size_t i = 0; i < N_SECRETS && !known; i++)
			if (strcmp(key, secret_fields[i].name) == 0 &&
			    (secret_fields[i].types & bit))
				known = true;
		if (!known) {
			pol_perr_fail(pe, pol_safe(key, POL_SAFE_LEN, safe,
						   sizeof(safe)),
				      "unknown field for source type %s",
				      pol_source_type_name(c->type));
			return AF_ECRED;
		}
	}
	for (size_t i = 0; i < N_SECRETS; i++) {
		const char *name = secret_fields[i].name, *s;

		if (!(secret_fields[i].types & bit))
			continue;
		v = json_object_get(root, name);
		if (!v || json_is_null(v))
			continue;
		if (!json_is_string(v)) {
			pol_perr_fail(pe, name, "must be a string");
			return AF_ECRED;
		}
		s = json_string_value(v);
		if (strcmp(name, "sas_token") == 0 && s[0] == '?')
			s++;
		if (strlen(s) != json_string_length(v) - (s != json_string_value(v))) {
			pol_perr_fail(pe, name, "has a NUL byte");
			return AF_ECRED;
		}
		why = secret_problem(name, s);
		if (why) {
			pol_perr_fail(pe, name, "%s", why);
			return AF_ECRED;
		}
		*secret_slot(c, i) = strdup(s);
		if (!*secret_slot(c, i))
			return -ENOMEM;
	}
	switch (c->type) {
	case POL_SRC_S3:
		if (!c->access_key_id || !c->secret_access_key) {
			pol_perr_fail(pe, c->access_key_id ? "secret_access_key"
							   : "access_key_id",
				      "missing (s3 takes access_key_id and secret_access_key)");
			return AF_ECRED;
		}
		return 0;
	case POL_SRC_AZURE_BLOB:
		if (!c->bearer_token == !c->sas_token) {
			pol_perr_fail(pe, "sas_token",
				      "azure_blob takes exactly one of sas_token and bearer_token");
			return AF_ECRED;
		}
		return 0;
	default:
		if (!c->bearer_token) {
			pol_perr_fail(pe, "bearer_token", "missing");
			return AF_ECRED;
		}
		return 0;
	}
}

/* Drops every secret of c (a refused credential keeps none). */
static void drop_secrets(struct pol_cred *c)
{
	for (size_t i = 0; i < N_SECRETS; i++) {
		wipe_free(*secret_slot(c, i));
		*secret_slot(c, i) = NULL;
	}
}

int pol_cred_parse(const char *buf, size_t len, const char *origin,
		   struct pol_cred **out, char *err, size_t errlen)
{
	struct pol_perr pe = { origin ? origin : "credential", err, errlen };
	char safe[POL_SAFE_BUF];
	struct pol_cred *c = NULL;
	const char *s, *why;
	json_error_t jerr;
	json_t *root, *v;
	int ret;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (len > POL_CRED_DOC_MAX)
		return pol_perr_fail(&pe, "document", "larger than %u bytes",
				     POL_CRED_DOC_MAX);
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			  &jerr);
	if (!root)
		/* jansson's message may quote the input: give the place only. */
		return pol_perr_fail(&pe, "document",
				     "not valid JSON (line %d, column %d)",
				     jerr.line, jerr.column);
	if (json_is_null(root)) {
		json_decref(root);
		return 1;
	}
	if (!json_is_object(root)) {
		ret = pol_perr_fail(&pe, "document", "must be a JSON object");
		goto out_root;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->origin = strdup(pe.origin))) {
		ret = -ENOMEM;
		goto out_root;
	}
	v = json_object_get(root, "source_type");
	if (!json_is_string(v)) {
		ret = pol_perr_fail(&pe, "source_type", v ? "must be a string"
							: "missing");
		goto out_root;
	}
	s = json_string_value(v);
	if (pol_source_type_parse(s, &c->type) < 0 ||
	    c->type == POL_SRC_FILE) {
		ret = pol_perr_fail(&pe, "source_type",
				    "\"%s\" is not a source type that takes credentials",
				    pol_safe(s, POL_SAFE_LEN, safe,
					     sizeof(safe)));
		goto out_root;
	}
	v = json_object_get(root, "scope");
	if (!json_is_string(v)) {
		ret = pol_perr_fail(&pe, "scope", v ? "must be a string"
						  : "missing");
		goto out_root;
	}
	s = json_string_value(v);
	why = strlen(s) != json_string_length(v) ? "has a NUL byte"
						 : scope_problem(c->type, s);
	if (why) {
		ret = pol_perr_fail(&pe, "scope", "%s", why);
		goto out_root;
	}
	c->scope = strdup(s);
	if (!c->scope) {
		ret = -ENOMEM;
		goto out_root;
	}
	/* From here on the document is about a known scope: refusals. */
	v = json_object_get(root, "expires_at");
	if (!v || json_is_null(v)) {
		pol_perr_fail(&pe, "expires_at",
			      "missing (credentials must be short-lived)");
		ret = AF_ECRED;
		goto out_refused;
	}
	if (!json_is_string(v) ||
	    !pol_parse_rfc3339(json_string_value(v), &c->expires_at_s)) {
		pol_perr_fail(&pe, "expires_at",
			      "not an RFC 3339 time (\"2026-03-09T12:00:00Z\")");
		ret = AF_ECRED;
		goto out_refused;
	}
	ret = take_secrets(&pe, root, c);
	if (ret == AF_ECRED)
		goto out_refused;
	if (ret < 0)
		goto out_root;
	*out = c;
	c = NULL;
	ret = 0;
	goto out_root;

out_refused:
	drop_secrets(c);
	*out = c;
	c = NULL;
out_root:
	wipe_json_secrets(root);
	json_decref(root);
	pol_cred_free(c);
	if (ret == -ENOMEM)
		pol_seterr(err, errlen, "%s: out of memory", pe.origin);
	return ret;
}

int pol_cred_check_time(const struct pol_cred *c, long long now_s,
			uint64_t max_lifetime_ms, char *err, size_t errlen)
{
	char when[32];
	long long left = c->expires_at_s - now_s;

	if (left <= 0) {
		pol_seterr(err, errlen, "%s: expires_at: expired at %s",
			   c->origin ? c->origin : "credential",
			   af_rfc3339(c->expires_at_s, when, sizeof(when)));
		return AF_ECRED;
	}
	if ((uint64_t)left > max_lifetime_ms / 1000) {
		pol_seterr(err, errlen,
			   "%s: expires_at: valid for %llds, longer than credentials.max_lifetime (%llus)",
			   c->origin ? c->origin : "credential", left,
			   (unsigned long long)(max_lifetime_ms / 1000));
		return AF_ECRED;
	}
	return 0;
}

bool pol_cred_scope_matches(const char *scope, const char *uri)
{
	size_t n;
	char next;

	if (!scope || !uri)
		return false;
	n = strlen(scope);
	if (n == 0 || strncmp(scope, uri, n) != 0)
		return false;
	if (scope[n - 1] == '/')
		return true;
	next = uri[n];
	return next == '\0' || next == '/' || next == '?';
}

size_t pol_cred_match_len(const struct pol_cred *c,
			  const struct pol_registration *r)
{
	if (!c || !r || c->type != r->source_type)
		return 0;
	return pol_cred_scope_matches(c->scope, r->uri) ? strlen(c->scope) : 0;
}

char *pol_cred_request_json(const struct pol_registration *r)
{
	struct pol_buf b;

	pol_buf_init(&b, 3 * 4096 + 1024);
	pol_buf_adds(&b, "{\"source_type\":");
	pol_buf_add_json_string(&b, pol_source_type_name(r->source_type));
	pol_buf_adds(&b, ",\"uri\":");
	pol_buf_add_json_string(&b, r->uri);
	pol_buf_adds(&b, ",\"project\":");
	pol_buf_add_json_string(&b, r->project);
	pol_buf_adds(&b, ",\"name\":");
	pol_buf_add_json_string(&b, r->name);
	pol_buf_adds(&b, ",\"digest\":");
	pol_buf_add_json_string(&b, r->digest.str);
	pol_buf_adds(&b, ",\"intent\":\"pull\"}\n");
	if (b.failed) {
		pol_buf_release(&b);
		return NULL;
	}
	return b.p;
}
