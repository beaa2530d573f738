/*
 * registration.c - one registration (DESIGN §2) from JSON, validated.
 * Every message is "<origin>: <field>: <problem>"; input is quoted only
 * through pol_safe and the URI never (it may carry a secret).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pol_int.h"

#define POL_CHANNELS_MAX	256
#define POL_ENCODING_MAX	64
#define POL_DECISION_MAX	64
#define POL_SOURCE_REF_MAX	256


static const char *json_type_word(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	default:
		return "something else";
	}
}

/*
 * Fetches string member key of obj. required: missing or null is an error;
 * otherwise *out stays NULL. Returns 0 or AF_EPARSE.
 */
static int get_string(struct pol_perr *c, json_t *obj, const char *key,
		      const char *field, bool required, const char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return pol_perr_fail(c, field, "missing");
		return 0;
	}
	if (!json_is_string(v))
		return pol_perr_fail(c, field, "must be a string, not %s",
			    json_type_word(v));
	*out = json_string_value(v);
	return 0;
}

static int dup_str(struct pol_perr *c, const char *field, const char *s,
		   char **out)
{
	*out = strdup(s);
	if (!*out)
		return pol_perr_fail(c, field, "out of memory");
	return 0;
}

void pol_registration_free(struct pol_registration *r)
{
	if (!r)
		return;
	free(r->project);
	free(r->name);
	free(r->uri);
	free(r->source_ref);
	free(r->content_encoding);
	for (size_t i = 0; i < r->n_channels; i++)
		free(r->channels[i]);
	free(r->channels);
	free(r->allowlist_decision);
	free(r->registered_at);
	free(r->origin);
	free(r->json);
	free(r->attestation);
	free(r);
}

/* content_encoding is shown in an xattr: a short HTTP token. */
static bool encoding_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > POL_ENCODING_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		      ch == '.' || ch == '+'))
			return false;
	}
	return true;
}

/*
 * A huggingface registration pins a revision (DESIGN §5b): source_ref is
 * the full commit sha, 40 lowercase hex. A branch or tag name moves, an
 * abbreviated or uppercase sha is not what the Hub answers in
 * X-Repo-Commit: all are registration errors, so the record is never
 * listed and `check` names it.
 */
static int hf_source_ref_check(struct pol_perr *c, const char *ref)
{
	char safe[POL_SAFE_BUF];
	size_t n, upper = 0, other = 0;

	if (!ref)
		return pol_perr_fail(c, "source.source_ref",
			    "required for huggingface (the revision, a 40-hex commit sha)");
	n = strlen(ref);
	for (const char *p = ref; *p; p++) {
		if (*p >= 'A' && *p <= 'F')
			upper++;
		else if (pol_hex_value(*p) < 0)
			other++;
	}
	if (other)
		return pol_perr_fail(c, "source.source_ref",
			    "\"%s\" is not a commit sha: huggingface needs the 40-hex commit (a branch or tag name does not pin a revision)",
			    pol_safe(ref, POL_SAFE_LEN, safe, sizeof(safe)));
	if (n != POL_HF_COMMIT_LEN)
		return pol_perr_fail(c, "source.source_ref",
			    "has %zu hex characters: huggingface needs the full %d-hex commit sha",
			    n, POL_HF_COMMIT_LEN);
	if (upper)
		return pol_perr_fail(c, "source.source_ref",
			    "must be lowercase hex (the commit sha as the Hub writes it)");
	return 0;
}

static int parse_source(struct pol_perr *c, json_t *src,
			struct pol_registration *r)
{
	char safe[POL_SAFE_BUF], uerr[256];
	const char *s;
	json_t *v;
	int ret;

	if (!src || json_is_null(src))
		return pol_perr_fail(c, "source", "missing");
	if (!json_is_object(src))
		return pol_perr_fail(c, "source", "must be an object, not %s",
			    json_type_word(src));
	ret = get_string(c, src, "source_type", "source.source_type", true, &s);
	if (ret < 0)
		return ret;
	if (pol_source_type_parse(s, &r->source_type) < 0)
		return pol_perr_fail(c, "source.source_type",
			    "unknown source type \"%s\"",
			    pol_safe(s, POL_SAFE_LEN, safe, sizeof(safe)));
	ret = get_string(c, src, "uri", "source.uri", true, &s);
	if (ret < 0)
		return ret;
	if (pol_uri_check(r->source_type, s, uerr, sizeof(uerr)) < 0)
		return pol_perr_fail(c, "source.uri", "%s", uerr);
	ret = dup_str(c, "source.uri", s, &r->uri);
	if (ret < 0)
		return ret;

	ret = get_string(c, src, "source_ref", "source.source_ref", false, &s);
	if (ret < 0)
		return ret;
	if (s) {
		if (!*s || strlen(s) > POL_SOURCE_REF_MAX)
			return pol_perr_fail(c, "source.source_ref",
				    "must be 1 to %d characters",
				    POL_SOURCE_REF_MAX);
		for (const char *p = s; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return pol_perr_fail(c, "source.source_ref",
					    "has a control character");
		ret = dup_str(c, "source.source_ref", s, &r->source_ref);
		if (ret < 0)
			return ret;
	}
	if (r->source_type == POL_SRC_HUGGINGFACE) {
		ret = hf_source_ref_check(c, r->source_ref);
		if (ret < 0)
			return ret;
	}

	v = json_object_get(src, "size_bytes");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return pol_perr_fail(c, "source.size_bytes",
				    "must be a non-negative integer");
		r->has_size = true;
		r->size_bytes = (uint64_t)json_integer_value(v);
	}

	ret = get_string(c, src, "content_encoding", "source.content_encoding",
			 false, &s);
	if (ret < 0)
		return ret;
	if (s && !encoding_valid(s))
		return pol_perr_fail(c, "source.content_encoding",
			    "invalid encoding \"%s\"",
			    pol_safe(s, POL_SAFE_LEN, safe, sizeof(safe)));
	return dup_str(c, "source.content_encoding", s ? s : "identity",
		       &r->content_encoding);
}

static int parse_channels(struct pol_perr *c, json_t *v,
			  struct pol_registration *r)
{
	char safe[POL_SAFE_BUF], field[32];
	size_t n, i;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return pol_perr_fail(c, "channels", "must be an array, not %s",
			    json_type_word(v));
	n = json_array_size(v);
	if (n > POL_CHANNELS_MAX)
		return pol_perr_fail(c, "channels", "more than %d channels",
			    POL_CHANNELS_MAX);
	if (n == 0)
		return 0;
	r->channels = calloc(n, sizeof(*r->channels));
	if (!r->channels)
		return pol_perr_fail(c, "channels", "out of memory");
	for (i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i);
		const char *s;

		snprintf(field, sizeof(field), "channels[%zu]", i);
		if (!json_is_string(e))
			return pol_perr_fail(c, field, "must be a string, not %s",
				    json_type_word(e));
		s = json_string_value(e);
		if (!pol_channel_valid(s))
			return pol_perr_fail(c, field,
				    "invalid channel name \"%s\" (want [a-z0-9-]+)",
				    pol_safe(s, POL_SAFE_LEN, safe,
					     sizeof(safe)));
		if (dup_str(c, field, s, &r->channels[i]) < 0)
			return AF_EPARSE;
		r->n_channels = i + 1;
	}
	return 0;
}

static int parse_decision(struct pol_perr *c, json_t *v,
			  struct pol_registration *r)
{
	const char *s;
	int ret;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return pol_perr_fail(c, "allowlist_decision",
			    "must be an object, not %s", json_type_word(v));
	ret = get_string(c, v, "decision", "allowlist_decision.decision", true,
			 &s);
	if (ret < 0)
		return ret;
	if (!*s || strlen(s) > POL_DECISION_MAX || !pol_channel_valid(s))
		return pol_perr_fail(c, "allowlist_decision.decision",
			    "must be a short lowercase word such as \"allow\" or \"deny\"");
	return dup_str(c, "allowlist_decision.decision", s,
		       &r->allowlist_decision);
}

/*
 * `attestation` (DESIGN §12) is kept as text and checked against the
 * policy's keys later (attest.h): whatever it holds, the record stays
 * valid, and evidence that is not a DSSE envelope counts as malformed.
 */
static int keep_attestation(struct pol_perr *c, json_t *v,
			    struct pol_registration *r)
{
	if (!v || json_is_null(v))
		return 0;
	r->attestation = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!r->attestation)
		return pol_perr_fail(c, "attestation", "out of memory");
	r->attestation_len = strlen(r->attestation);
	if (r->attestation_len > POL_ATTEST_ENVELOPE_MAX) {
		free(r->attestation);
		r->attestation = NULL;
	}
	return 0;
}

int pol_registration_from_json(json_t *obj, const char *origin,
			       struct pol_registration **out, char *err,
			       size_t errlen)
{
	struct pol_perr c = { origin ? origin : "registration", err, errlen };
	struct pol_registration *r;
	char safe[POL_SAFE_BUF], derr[128];
	const char *s;
	int ret;

	*out = NULL;
	if (!json_is_object(obj)) {
		pol_seterr(err, errlen, "%s: must be a JSON object, not %s",
			   c.origin, obj ? json_type_word(obj) : "nothing");
		return AF_EPARSE;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		pol_seterr(err, errlen, "%s: out of memory", c.origin);
		return -ENOMEM;
	}

	ret = get_string(&c, obj, "project", "project", true, &s);
	if (ret < 0)
		goto out_free;
	if (!pol_project_valid(s)) {
		ret = pol_perr_fail(&c, "project",
			   "invalid project \"%s\" (want [a-z0-9][a-z0-9-]{0,62})",
			   pol_safe(s, POL_SAFE_LEN, safe, sizeof(safe)));
		goto out_free;
	}
	ret = dup_str(&c, "project", s, &r->project);
	if (ret < 0)
		goto out_free;

	ret = get_string(&c, obj, "name", "name", true, &s);
	if (ret < 0)
		goto out_free;
	if (!pol_name_valid(s)) {
		ret = pol_perr_fail(&c, "name",
			   "invalid name \"%s\" (want [A-Za-z0-9._-]{1,200}, not starting with \".\")",
			   pol_safe(s, POL_SAFE_LEN, safe, sizeof(safe)));
		goto out_free;
	}
	ret = dup_str(&c, "name", s, &r->name);
	if (ret < 0)
		goto out_free;

	ret = get_string(&c, obj, "artifact_kind", "artifact_kind", true, &s);
	if (ret < 0)
		goto out_free;
	if (strcmp(s, "blob") != 0) {
		ret = pol_perr_fail(&c, "artifact_kind", "must be \"blob\", not \"%s\"",
			   pol_safe(s, POL_SAFE_LEN, safe, sizeof(safe)));
		goto out_free;
	}

	ret = get_string(&c, obj, "digest", "digest", true, &s);
	if (ret < 0)
		goto out_free;
	if (pol_digest_parse(s, &r->digest, derr, sizeof(derr)) < 0) {
		ret = pol_perr_fail(&c, "digest", "%s", derr);
		goto out_free;
	}

	ret = parse_source(&c, json_object_get(obj, "source"), r);
	if (ret < 0)
		goto out_free;

	ret = get_string(&c, obj, "lifecycle_state", "lifecycle_state", true,
			 &s);
	if (ret < 0)
		goto out_free;
	if (pol_lifecycle_parse(s, &r->lifecycle) < 0) {
		ret = pol_perr_fail(&c, "lifecycle_state",
			   "unknown lifecycle state \"%s\"",
			   pol_safe(s, POL_SAFE_LEN, safe, sizeof(safe)));
		goto out_free;
	}

	ret = get_string(&c, obj, "trust_state", "trust_state", true, &s);
	if (ret < 0)
		goto out_free;
	if (pol_trust_parse(s, &r->trust) < 0) {
		ret = pol_perr_fail(&c, "trust_state", "unknown trust state \"%s\"",
			   pol_safe(s, POL_SAFE_LEN, safe, sizeof(safe)));
		goto out_free;
	}

	ret = parse_channels(&c, json_object_get(obj, "channels"), r);
	if (ret < 0)
		goto out_free;
	ret = parse_decision(&c, json_object_get(obj, "allowlist_decision"),
			     r);
	if (ret < 0)
		goto out_free;

	ret = get_string(&c, obj, "registered_at", "registered_at", false, &s);
	if (ret < 0)
		goto out_free;
	if (s) {
		if (!pol_parse_rfc3339(s, &r->registered_at_s)) {
			ret = pol_perr_fail(&c, "registered_at",
				   "not an RFC 3339 timestamp (like 2026-03-09T12:00:00Z): \"%s\"",
				   pol_safe(s, POL_SAFE_LEN, safe,
					    sizeof(safe)));
			goto out_free;
		}
		ret = dup_str(&c, "registered_at", s, &r->registered_at);
		if (ret < 0)
			goto out_free;
	}

	ret = keep_attestation(&c, json_object_get(obj, "attestation"), r);
	if (ret < 0)
		goto out_free;
	ret = dup_str(&c, "origin", c.origin, &r->origin);
	if (ret < 0)
		goto out_free;
	r->json = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	if (!r->json) {
		ret = pol_perr_fail(&c, "json", "out of memory");
		goto out_free;
	}
	*out = r;
	return 0;
out_free:
	pol_registration_free(r);
	return ret;
}

int pol_registration_parse(const char *buf, size_t len, const char *origin,
			   struct pol_registration **out, char *err,
			   size_t errlen)
{
	json_error_t jerr;
	json_t *obj;
	int ret;

	*out = NULL;
	if (!origin)
		origin = "registration";
	if (!buf) {
		pol_seterr(err, errlen, "%s: no input", origin);
		return AF_EPARSE;
	}
	obj = json_loadb(buf, len,
			  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!obj) {
		pol_seterr(err, errlen, "%s:%d:%d: invalid JSON: %s", origin,
			   jerr.line, jerr.column, jerr.text);
		return AF_EPARSE;
	}
	ret = pol_registration_from_json(obj, origin, out, err, errlen);
	json_decref(obj);
	return ret;
}

struct pol_registration *pol_registration_dup(const struct pol_registration *r)
{
	struct pol_registration *d;
	bool bad = false;

	if (!r)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	*d = *r;
	d->project = d->name = d->uri = d->source_ref = NULL;
	d->content_encoding = d->allowlist_decision = NULL;
	d->registered_at = d->origin = d->json = d->attestation = NULL;
	d->channels = NULL;
	d->n_channels = 0;

#define DUP_FIELD(f) do {						\
		if (r->f && !(d->f = strdup(r->f)))			\
			bad = true;					\
	} while (0)
	DUP_FIELD(project);
	DUP_FIELD(name);
	DUP_FIELD(uri);
	DUP_FIELD(source_ref);
	DUP_FIELD(content_encoding);
	DUP_FIELD(allowlist_decision);
	DUP_FIELD(registered_at);
	DUP_FIELD(origin);
	DUP_FIELD(json);
	DUP_FIELD(attestation);
#undef DUP_FIELD
	if (r->n_channels) {
		d->channels = calloc(r->n_channels, sizeof(*d->channels));
		if (!d->channels)
			bad = true;
		for (size_t i = 0; d->channels && i < r->n_channels; i++) {
			d->channels[i] = strdup(r->channels[i]);
			if (!d->channels[i])
				bad = true;
			d->n_channels = i + 1;
		}
	}
	if (bad) {
		pol_registration_free(d);
		return NULL;
	}
	return d;
}

bool pol_registration_has_channel(const struct pol_registration *r,
				  const char *channel)
{
	if (!r || !channel)
		return false;
	for (size_t i = 0; i < r->n_channels; i++)
		if (strcmp(r->channels[i], channel) == 0)
			return true;
	return false;
}

bool pol_registration_deprecated(const struct pol_registration *r)
{
	return r && r->lifecycle == POL_LC_DEPRECATED;
}

/* The fields DESIGN §2 defines, per object. */
static const char *const known_top[] = {
	"project", "name", "artifact_kind", "digest", "source",
	"lifecycle_state", "trust_state", "channels", "allowlist_decision",
	"attestation", "registered_at",
};
static const char *const known_source[] = {
	"source_type", "uri", "source_ref", "size_bytes", "content_encoding",
};
static const char *const known_decision[] = {
	"decision", "policy", "decided_at",
};

static bool name_known(const char *key, const char *const *known, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, known[i]) == 0)
			return true;
	return false;
}

/* Appends the unknown keys of obj (prefixed) to out; returns their count. */
static size_t unknown_in(json_t *obj, const char *prefix,
			 const char *const *known, size_t nknown, char *out,
			 size_t outlen)
{
	char safe[POL_SAFE_BUF];
	const char *key;
	json_t *v;
	size_t n = 0;

	if (!json_is_object(obj))
		return 0;
	json_object_foreach(obj, key, v) {
		size_t used;

		(void)v;
		if (name_known(key, known, nknown))
			continue;
		n++;
		if (!out || outlen == 0)
			continue;
		used = strlen(out);
		if (used + 1 < outlen)
			snprintf(out + used, outlen - used, "%s%s%s",
				 used ? ", " : "", prefix,
				 pol_safe(key, POL_SAFE_LEN, safe,
					  sizeof(safe)));
	}
	return n;
}

size_t pol_registration_unknown_fields(const struct pol_registration *r,
				       char *out, size_t outlen)
{
	json_t *obj;
	size_t n;

	if (out && outlen)
		out[0] = '\0';
	if (!r || !r->json)
		return 0;
	obj = json_loads(r->json, 0, NULL);
	if (!obj)
		return 0;
	n = unknown_in(obj, "", known_top,
		       sizeof(known_top) / sizeof(known_top[0]), out, outlen);
	n += unknown_in(json_object_get(obj, "source"), "source.",
			known_source,
			sizeof(known_source) / sizeof(known_source[0]), out,
			outlen);
	n += unknown_in(json_object_get(obj, "allowlist_decision"),
			"allowlist_decision.", known_decision,
			sizeof(known_decision) / sizeof(known_decision[0]),
			out, outlen);
	json_decref(obj);
	return n;
}
