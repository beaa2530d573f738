/*
 * test_policy_registration.c - registrations (DESIGN §2) and URIs (§2, §5).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "policy/policy.h"

#define HF_COMMIT "0123456789abcdef0123456789abcdef01234567"
#define HEX64 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static const char base_json[] =
	"{\"project\":\"vision\",\"name\":\"resnet50.safetensors\","
	"\"artifact_kind\":\"blob\",\"digest\":\"sha256:" HEX64 "\","
	"\"source\":{\"source_type\":\"https\","
	"\"uri\":\"https://models.example.internal/resnet50.safetensors\","
	"\"source_ref\":null,\"size_bytes\":102760448,"
	"\"content_encoding\":\"identity\"},"
	"\"lifecycle_state\":\"active\",\"trust_state\":\"verified\","
	"\"channels\":[\"prod\",\"staging\"],"
	"\"allowlist_decision\":{\"decision\":\"allow\",\"policy\":\"default\","
	"\"decided_at\":\"2026-03-09T12:00:00Z\"},"
	"\"attestation\":null,\"registered_at\":\"2026-03-09T12:00:00Z\","
	"\"future_field\":{\"x\":[1,2,3]}}";

/* Parses base_json, lets edit change it, and parses the result. */
static int parse_edited(void (*edit)(json_t *root, void *arg), void *arg,
			struct pol_registration **out, char *err, size_t errlen)
{
	json_t *root = json_loads(base_json, 0, NULL);
	char *text;
	int ret;

	assert_non_null(root);
	if (edit)
		edit(root, arg);
	text = json_dumps(root, JSON_COMPACT);
	assert_non_null(text);
	ret = pol_registration_parse(text, strlen(text), "registry/a.json[2]",
				     out, err, errlen);
	free(text);
	json_decref(root);
	return ret;
}

static void expect_error(void (*edit)(json_t *, void *), void *arg,
			 const char *want)
{
	struct pol_registration *r = (void *)1;
	char err[512] = "";

	assert_int_equal(parse_edited(edit, arg, &r, err, sizeof(err)),
			 AF_EPARSE);
	assert_null(r);
	if (!strstr(err, want))
		fail_msg("got \"%s\", want \"%s\"", err, want);
	assert_non_null(strstr(err, "registry/a.json[2]: "));
}

static void test_valid_full(void **state)
{
	struct pol_registration *r, *d;
	char err[256];

	(void)state;
	assert_int_equal(pol_registration_parse(base_json, strlen(base_json),
						"a.json", &r, err,
						sizeof(err)), 0);
	assert_string_equal(r->project, "vision");
	assert_string_equal(r->name, "resnet50.safetensors");
	assert_string_equal(r->digest.str, "sha256:" HEX64);
	assert_int_equal(r->source_type, POL_SRC_HTTPS);
	assert_string_equal(r->uri,
			    "https://models.example.internal/resnet50.safetensors");
	assert_null(r->source_ref);
	assert_true(r->has_size);
	assert_int_equal(r->size_bytes, 102760448);
	assert_string_equal(r->content_encoding, "identity");
	assert_int_equal(r->lifecycle, POL_LC_ACTIVE);
	assert_int_equal(r->trust, POL_TRUST_VERIFIED);
	assert_int_equal(r->n_channels, 2);
	assert_true(pol_registration_has_channel(r, "prod"));
	assert_true(pol_registration_has_channel(r, "staging"));
	assert_false(pol_registration_has_channel(r, "dev"));
	assert_string_equal(r->allowlist_decision, "allow");
	assert_string_equal(r->registered_at, "2026-03-09T12:00:00Z");
	assert_int_equal(r->registered_at_s, 1773057600);
	assert_string_equal(r->origin, "a.json");
	assert_non_null(r->json);
	/* Compact with sorted keys. */
	assert_int_equal(strncmp(r->json, "{\"allowlist_decision\":", 22), 0);
	assert_null(strchr(r->json, '\n'));
	assert_false(pol_registration_deprecated(r));

	d = pol_registration_dup(r);
	assert_non_null(d);
	assert_string_equal(d->json, r->json);
	assert_string_equal(d->channels[1], "staging");
	assert_true(d->project != r->project);
	pol_registration_free(r);
	assert_string_equal(d->project, "vision");
	pol_registration_free(d);
	pol_registration_free(NULL);
	assert_null(pol_registration_dup(NULL));
}

static void edit_minimal(json_t *root, void *arg)
{
	json_t *src = json_object_get(root, "source");

	(void)arg;
	json_object_del(root, "channels");
	json_object_del(root, "allowlist_decision");
	json_object_del(root, "attestation");
	json_object_del(root, "registered_at");
	json_object_del(src, "source_ref");
	json_object_del(src, "size_bytes");
	json_object_del(src, "content_encoding");
	json_object_set_new(root, "lifecycle_state", json_string("deprecated"));
}

static void test_valid_minimal(void **state)
{
	struct pol_registration *r;
	char err[256];

	(void)state;
	assert_int_equal(parse_edited(edit_minimal, NULL, &r, err,
				      sizeof(err)), 0);
	assert_false(r->has_size);
	assert_string_equal(r->content_encoding, "identity");
	assert_int_equal(r->n_channels, 0);
	assert_null(r->channels);
	assert_null(r->allowlist_decision);
	assert_null(r->registered_at);
	assert_int_equal(r->registered_at_s, 0);
	assert_true(pol_registration_deprecated(r));
	pol_registration_free(r);
}

static void edit_known_only(json_t *root, void *arg)
{
	(void)arg;
	json_object_del(root, "future_field");
}

static void edit_unknown(json_t *root, void *arg)
{
	(void)arg;
	json_object_set_new(root, "zz_future", json_true());
	json_object_set_new(json_object_get(root, "source"), "region_hint",
			    json_string("x"));
	json_object_set_new(json_object_get(root, "allowlist_decision"),
			    "reviewer", json_string("y"));
}

/*
 * Unknown fields are accepted (forward compatibility) but named for
 * check's warning (issue 10); the base record has one, future_field.
 */
static void test_unknown_fields(void **state)
{
	struct pol_registration *r;
	char err[256], names[256], tiny[8];

	(void)state;
	assert_int_equal(pol_registration_parse(base_json, strlen(base_json),
						"a.json", &r, err,
						sizeof(err)), 0);
	assert_int_equal(pol_registration_unknown_fields(r, names,
							 sizeof(names)), 1);
	assert_string_equal(names, "future_field");
	pol_registration_free(r);
	assert_int_equal(parse_edited(edit_known_only, NULL, &r, err,
				      sizeof(err)), 0);
	assert_int_equal(pol_registration_unknown_fields(r, names,
							 sizeof(names)), 0);
	assert_string_equal(names, "");
	assert_int_equal(pol_registration_unknown_fields(r, NULL, 0), 0);
	pol_registration_free(r);

	assert_int_equal(parse_edited(edit_unknown, NULL, &r, err,
				      sizeof(err)), 0);
	assert_int_equal(pol_registration_unknown_fields(r, names,
							 sizeof(names)), 4);
	assert_non_null(strstr(names, "zz_future"));
	assert_non_null(strstr(names, "source.region_hint"));
	assert_non_null(strstr(names, "allowlist_decision.reviewer"));
	/* Truncated, still terminated; the count stays right. */
	assert_int_equal(pol_registration_unknown_fields(r, tiny,
							 sizeof(tiny)), 4);
	assert_true(strlen(tiny) < sizeof(tiny));
	assert_int_equal(pol_registration_unknown_fields(NULL, tiny,
							 sizeof(tiny)), 0);
	pol_registration_free(r);
}

static void edit_del(json_t *root, void *arg)
{
	const char *path = arg;
	const char *dot = strchr(path, '.');

	if (dot) {
		char top[64];

		memcpy(top, path, (size_t)(dot - path));
		top[dot - path] = '\0';
		json_object_del(json_object_get(root, top), dot + 1);
	} else {
		json_object_del(root, path);
	}
}

static void test_missing_required(void **state)
{
	static const char *const fields[] = {
		"project", "name", "artifact_kind", "digest", "source",
		"source.source_type", "source.uri", "lifecycle_state",
		"trust_state",
	};
	char want[128];

	(void)state;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		snprintf(want, sizeof(want), ": %s: missing", fields[i]);
		expect_error(edit_del, (void *)fields[i], want);
	}
}

struct set_arg {
	const char *path;	/* "field" or "source.field" */
	const char *json;	/* new value as JSON text */
};

static void edit_set(json_t *root, void *arg)
{
	struct set_arg *s = arg;
	json_t *v = json_loads(s->json, JSON_DECODE_ANY, NULL);
	const char *dot = strchr(s->path, '.');

	assert_non_null(v);
	if (dot) {
		char top[64];

		memcpy(top, s->path, (size_t)(dot - s->path));
		top[dot - s->path] = '\0';
		json_object_set_new(json_object_get(root, top), dot + 1, v);
	} else {
		json_object_set_new(root, s->path, v);
	}
}

static void expect_set_error(const char *path, const char *json,
			     const char *want)
{
	struct set_arg a = { path, json };

	expect_error(edit_set, &a, want);
}

static void expect_set_ok(const char *path, const char *json,
			  struct pol_registration **out)
{
	struct set_arg a = { path, json };
	char err[512] = "";

	if (parse_edited(edit_set, &a, out, err, sizeof(err)) != 0)
		fail_msg("%s = %s: unexpected error \"%s\"", path, json, err);
}

static void test_wrong_types(void **state)
{
	(void)state;
	expect_set_error("project", "42", "project: must be a string");
	expect_set_error("name", "[\"a\"]", "name: must be a string");
	expect_set_error("digest", "{}", "digest: must be a string");
	expect_set_error("source", "\"https://x/\"",
			 "source: must be an object");
	expect_set_error("source.uri", "true", "source.uri: must be a string");
	expect_set_error("source.source_ref", "7",
			 "source.source_ref: must be a string");
	expect_set_error("source.content_encoding", "1",
			 "source.content_encoding: must be a string");
	expect_set_error("channels", "\"prod\"", "channels: must be an array");
	expect_set_error("channels", "[\"prod\", 3]",
			 "channels[1]: must be a string");
	expect_set_error("allowlist_decision", "\"allow\"",
			 "allowlist_decision: must be an object");
	expect_set_error("allowlist_decision", "{\"policy\":\"x\"}",
			 "allowlist_decision.decision: missing");
	expect_set_error("registered_at", "1773057600",
			 "registered_at: must be a string");
	expect_set_error("lifecycle_state", "null", "lifecycle_state: missing");
}

static void test_bad_values(void **state)
{
	(void)state;
	expect_set_error("project", "\"Vision\"", "project: invalid project");
	expect_set_error("project", "\"-x\"", "project: invalid project");
	expect_set_error("project", "\"\"", "project: invalid project");
	expect_set_error("name", "\".hidden\"", "name: invalid name");
	expect_set_error("name", "\"a/b\"", "name: invalid name");
	expect_set_error("name", "\"a@b\"", "name: invalid name");
	expect_set_error("artifact_kind", "\"oci\"",
			 "artifact_kind: must be \"blob\", not \"oci\"");
	expect_set_error("digest", "\"md5:d41d8cd98f00b204e9800998ecf8427e\"",
			 "registry/a.json[2]: digest: unknown algorithm \"md5\"");
	expect_set_error("digest", "\"sha256:" "9F86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
			 "digest: uppercase hex not allowed");
	expect_set_error("digest", "\"sha256:" "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0\"",
			 "digest: sha256 needs 64 hex digits, got 63");
	expect_set_error("source.source_type", "\"ftp\"",
			 "source.source_type: unknown source type \"ftp\"");
	expect_set_error("lifecycle_state", "\"gone\"",
			 "lifecycle_state: unknown lifecycle state \"gone\"");
	expect_set_error("trust_state", "\"trusted\"",
			 "trust_state: unknown trust state \"trusted\"");
	expect_set_error("channels", "[\"Prod\"]",
			 "channels[0]: invalid channel name");
	expect_set_error("registered_at", "\"yesterday\"",
			 "registered_at: not an RFC 3339");
	expect_set_error("registered_at", "\"2026-02-30T12:00:00Z\"",
			 "registered_at: not an RFC 3339");
	expect_set_error("registered_at", "\"2026-03-09T12:00:00\"",
			 "registered_at: not an RFC 3339");
	expect_set_error("registered_at", "\"2026-03-09 12:00:00Z\"",
			 "registered_at: not an RFC 3339");
	expect_set_error("source.content_encoding", "\"gzip; rm -rf\"",
			 "source.content_encoding: invalid encoding");
	expect_set_error("source.source_ref", "\"\"",
			 "source.source_ref: must be 1 to");
	/* Hostile bytes are not echoed raw. */
	expect_set_error("project", "\"a\\nb\\u001b[31m\"",
			 "invalid project \"a?b?[31m\"");
}

static void test_size_bytes(void **state)
{
	struct pol_registration *r;

	(void)state;
	expect_set_error("source.size_bytes", "-1",
			 "source.size_bytes: must be a non-negative integer");
	expect_set_error("source.size_bytes", "1.5",
			 "source.size_bytes: must be a non-negative integer");
	expect_set_error("source.size_bytes", "1e30",
			 "source.size_bytes: must be a non-negative integer");
	expect_set_error("source.size_bytes", "\"100\"",
			 "source.size_bytes: must be a non-negative integer");
	expect_set_ok("source.size_bytes", "0", &r);
	assert_true(r->has_size);
	assert_int_equal(r->size_bytes, 0);
	pol_registration_free(r);
	expect_set_ok("source.size_bytes", "9223372036854775807", &r);
	assert_int_equal(r->size_bytes, 9223372036854775807ULL);
	pol_registration_free(r);
	expect_set_ok("source.size_bytes", "null", &r);
	assert_false(r->has_size);
	pol_registration_free(r);
}

static void test_huge_integer_text(void **state)
{
	static const char text[] =
		"{\"project\":\"vision\",\"source\":{\"size_bytes\":"
		"99999999999999999999999}}";
	struct pol_registration *r;
	char err[256];

	(void)state;
	assert_int_equal(pol_registration_parse(text, strlen(text), "big.json",
						&r, err, sizeof(err)),
			 AF_EPARSE);
	assert_non_null(strstr(err, "big.json:1:"));
}

static void test_timestamps(void **state)
{
	struct pol_registration *r;

	(void)state;
	expect_set_ok("registered_at", "\"2026-03-09T12:00:00.123456Z\"", &r);
	assert_int_equal(r->registered_at_s, 1773057600);
	pol_registration_free(r);
	expect_set_ok("registered_at", "\"2026-03-09T12:00:00+00:00\"", &r);
	assert_int_equal(r->registered_at_s, 1773057600);
	pol_registration_free(r);
	expect_set_ok("registered_at", "\"2026-03-09T14:00:00+02:00\"", &r);
	assert_int_equal(r->registered_at_s, 1773057600);
	pol_registration_free(r);
	expect_set_ok("registered_at", "\"2024-02-29T00:00:00Z\"", &r);
	assert_int_equal(r->registered_at_s, 1709164800);
	pol_registration_free(r);
	expect_set_error("registered_at", "\"2023-02-29T00:00:00Z\"",
			 "registered_at");
	expect_set_error("registered_at", "\"2026-03-09T24:00:00Z\"",
			 "registered_at");
	expect_set_error("registered_at", "\"2026-03-09T12:00:00.Z\"",
			 "registered_at");
	expect_set_error("registered_at", "\"2026-03-09T12:00:00Zjunk\"",
			 "registered_at");
}

static void test_not_object(void **state)
{
	struct pol_registration *r;
	char err[256];

	(void)state;
	assert_int_equal(pol_registration_parse("[]", 2, "x.json", &r, err,
						sizeof(err)), AF_EPARSE);
	assert_non_null(strstr(err, "x.json: must be a JSON object"));
	assert_int_equal(pol_registration_parse("{\"project\":", 11, "x.json",
						&r, err, sizeof(err)),
			 AF_EPARSE);
	assert_non_null(strstr(err, "x.json:1:"));
	assert_int_equal(pol_registration_parse("", 0, "x.json", &r, err,
						sizeof(err)), AF_EPARSE);
	/* Duplicate keys are ambiguous: refused. */
	assert_int_equal(pol_registration_parse("{\"a\":1,\"a\":2}", 13,
						"x.json", &r, err,
						sizeof(err)), AF_EPARSE);
	assert_int_equal(pol_registration_parse(NULL, 0, NULL, &r, err,
						sizeof(err)), AF_EPARSE);
}

struct uri_case {
	const char *type;
	const char *uri;
	const char *ref;	/* source_ref JSON or NULL */
	const char *want;	/* NULL: valid */
};

static void edit_uri(json_t *root, void *arg)
{
	const struct uri_case *c = arg;
	json_t *src = json_object_get(root, "source");

	json_object_set_new(src, "source_type", json_string(c->type));
	json_object_set_new(src, "uri", json_string(c->uri));
	if (c->ref)
		json_object_set_new(src, "source_ref", json_string(c->ref));
}

static void test_uri_forms(void **state)
{
	static const struct uri_case cases[] = {
		{ "s3", "s3://ml-weights/models/a.bin", NULL, NULL },
		{ "s3", "s3://ml-weights/", NULL, "no object key" },
		{ "s3", "s3:///key", NULL, "no bucket" },
		{ "s3", "https://ml-weights/key", NULL, "must start with \"s3://\"" },
		/* S3 naming rules (issue 7, bad input). */
		{ "s3", "s3://ml-weights/a%20b/c+d?versionId=3", NULL, NULL },
		{ "s3", "s3://ab/key", NULL, "3 to 63 characters" },
		{ "s3", "s3://ML-weights/key", NULL, "only a-z, 0-9" },
		{ "s3", "s3://ml_weights/key", NULL, "only a-z, 0-9" },
		{ "s3", "s3://-ml/key", NULL, "start and end" },
		{ "s3", "s3://ml-/key", NULL, "start and end" },
		{ "s3", "s3://ml..w/key", NULL, "\"..\"" },
		{ "s3", "s3://192.168.5.4/key", NULL, "IP address" },
		{ "s3", "s3://xn--bucket/key", NULL, "reserved prefix" },
		{ "s3", "s3://bucket-s3alias/key", NULL, "reserved suffix" },
		{ "s3", "s3://bucket/k%zz", NULL, "bad percent escape" },
		{ "s3", "s3://bucket/k%0a", NULL, "control character" },
		{ "s3", "s3://bucket/k#frag", NULL, "fragment" },
		{ "s3", "s3://bucket/a/...", NULL, NULL },
		{ "s3", "s3://bucket/a/%2ex", NULL, NULL },
		{ "gcs", "gs://bucket/object/x", NULL, NULL },
		{ "gcs", "gs://my_bucket.example/o%2Fx", NULL, NULL },
		{ "gcs", "gs://googlebucket/o", NULL, "goog" },
		{ "gcs", "gs://a/o", NULL, "3 to 63" },
		{ "gcs", "gs://Bucket/o", NULL, "only a-z" },
		{ "gcs", "gs://bucket", NULL, "no object key" },
		{ "gcs", "s3://bucket/x", NULL, "must start with \"gs://\"" },
		{ "azure_blob",
		  "https://acct.blob.core.windows.net/container/blob.bin", NULL,
		  NULL },
		{ "azure_blob", "https://acct.blob.core.windows.net/container",
		  NULL, "no blob name" },
		{ "azure_blob", "https://ac.blob.core.windows.net/c1c/b", NULL,
		  "account name must be 3 to 24" },
		{ "azure_blob", "https://Acct.blob.core.windows.net/c1c/b", NULL,
		  "only a-z and 0-9" },
		{ "azure_blob", "https://acct.blob.core.windows.net/a--b/b", NULL,
		  "container name" },
		{ "azure_blob", "https://acct.blob.core.windows.net/Cont/b", NULL,
		  "container name" },
		{ "azure_blob", "https://acct.blob.core.windows.net/$root/b",
		  NULL, NULL },
		{ "azure_blob", "https://acct.blob.core.windows.net/cont/a/b%20c",
		  NULL, NULL },
		{ "azure_blob", "https://acct.blob.core.windows.net/", NULL,
		  "no container" },
		{ "azure_blob", "https://evil.example/container/blob", NULL,
		  "host must be" },
		{ "azure_blob",
		  "https://a.b.blob.core.windows.net/container/blob", NULL,
		  "host must be" },
		{ "azure_blob", "http://acct.blob.core.windows.net/c/b", NULL,
		  "must start with \"https://\"" },
		{ "https", "https://models.example.internal/a.bin", NULL, NULL },
		{ "https", "http://127.0.0.1:8080/a.bin", NULL, NULL },
		{ "https", "https://host/a.bin?version=3", NULL, NULL },
		{ "https", "ftp://host/a.bin", NULL, "must start with \"https://\"" },
		{ "https", "https:///a.bin", NULL, "no host" },
		{ "https", "https://host/a b", NULL, "space" },
		{ "https", "models.example.internal/a.bin", NULL, "no scheme" },
		{ "huggingface", "hf://org/repo/path/model.safetensors",
		  HF_COMMIT, NULL },
		{ "huggingface", "hf://org/repo/path/model.safetensors", NULL,
		  "source.source_ref: required for huggingface" },
		{ "huggingface", "hf://org/repo", "abc", "no valid path" },
		{ "huggingface", "hf://org", "abc", "no repository" },
		{ "huggingface", "hf://org/repo/../x", "abc", "dot segment" },
		{ "artifact_store", "artifact-store://team/models", NULL, NULL },
		{ "artifact_store", "artifact-store://", NULL,
		  "no repository" },
		{ "artifact_store", "artifact_store://x", NULL,
		  "must start with \"artifact-store://\"" },
		{ "file", "file:///srv/blobs/a.bin", NULL, NULL },
		{ "file", "file://host/srv/a.bin", NULL, "file:///absolute" },
		{ "file", "file:///", NULL, "file:///absolute" },
		{ "file", "file:///srv/../etc/shadow", NULL, "dot segment" },
		{ "file", "file:///srv/a?x=1", NULL, "without query" },
	};
	struct pol_registration *r;
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct uri_case *c = &cases[i];
		int ret;

		err[0] = '\0';
		r = NULL;
		ret = parse_edited(edit_uri, (void *)c, &r, err, sizeof(err));
		if (!c->want) {
			if (ret != 0)
				fail_msg("%s %s: unexpected \"%s\"", c->type,
					 c->uri, err);
			pol_registration_free(r);
			continue;
		}
		if (ret != AF_EPARSE || !strstr(err, c->want))
			fail_msg("%s %s: got %d \"%s\", want \"%s\"", c->type,
				 c->uri, ret, err, c->want);
	}
}

static void test_uri_secrets(void **state)
{
	static const char *const bad[] = {
		"https://alice:hunter2@models.example.internal/a.bin",
		"https://hunter2@models.example.internal/a.bin",
		"https://h.blob.core.windows.net/c/b?sv=1&sig=hunter2",
		"https://host/a?X-Amz-Signature=hunter2",
		"https://host/a?x-amz-credential=hunter2&b=1",
		"https://host/a?X-AMZ-SECURITY-TOKEN=hunter2",
		"https://host/a?X-Goog-Signature=hunter2",
		"https://host/a?x-goog-credential=hunter2",
		"https://host/a?token=hunter2",
		"https://host/a?a=1&access_token=hunter2#frag",
		"https://host/a?%73ig=hunter2",
		"https://host/a?Token",
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(pol_uri_check(POL_SRC_HTTPS, bad[i], err,
					       sizeof(err)), AF_EPARSE);
		assert_null(strstr(err, "hunter2"));
		assert_null(strstr(err, "alice"));
		assert_true(strlen(err) > 0);
		/* The loader tells a secret in a URI from other problems. */
		assert_true(pol_problem_is_credential(err));
	}
	assert_false(pol_problem_is_credential("a.json: source.uri: uri has no scheme"));
	assert_false(pol_problem_is_credential(NULL));
	assert_int_equal(pol_uri_check(POL_SRC_AZURE_BLOB, bad[2], err,
				       sizeof(err)), AF_EPARSE);
	assert_non_null(strstr(err, "\"sig\""));
	/* Through a registration the message still has no secret. */
	{
		struct uri_case c = { "https", bad[0], NULL, NULL };
		struct pol_registration *r;

		assert_int_equal(parse_edited(edit_uri, &c, &r, err,
					      sizeof(err)), AF_EPARSE);
		assert_non_null(strstr(err, "source.uri: uri must not carry userinfo"));
		assert_null(strstr(err, "hunter2"));
	}
	/* Other query parameters are kept. */
	assert_int_equal(pol_uri_check(POL_SRC_HTTPS,
				       "https://host/a?signature_version=2&tokens=1",
				       err, sizeof(err)), 0);
	assert_int_equal(pol_uri_check((enum pol_source_type)77,
				       "https://host/a", err, sizeof(err)),
			 AF_EPARSE);
	assert_int_equal(pol_uri_check(POL_SRC_HTTPS, NULL, err, sizeof(err)),
			 AF_EPARSE);
	assert_int_equal(pol_uri_check(POL_SRC_HTTPS, "", NULL, 0), AF_EPARSE);
}

/*
 * DESIGN §2: a URI with a dot segment, plain or percent-encoded, a
 * backslash or a control character is not a valid registration, for every
 * type: prefix rules and credential scopes compare the URI as written, and
 * "team-a/../team-b/x" must not pass a rule for "team-a/" (issue 10 item 1).
 */
static void test_uri_dot_segments(void **state)
{
	static const struct {
		enum pol_source_type type;
		const char *uri;
	} bad[] = {
		{ POL_SRC_HTTPS, "https://h/team-a/../team-b/x" },
		{ POL_SRC_HTTPS, "https://h/team-a/./x" },
		{ POL_SRC_HTTPS, "https://h/team-a/.." },
		{ POL_SRC_HTTPS, "https://h/team-a/." },
		{ POL_SRC_HTTPS, "https://h/../x" },
		{ POL_SRC_HTTPS, "https://h/team-a/%2e%2e/team-b/x" },
		{ POL_SRC_HTTPS, "https://h/team-a/%2E%2E/team-b/x" },
		{ POL_SRC_HTTPS, "https://h/team-a/.%2e/team-b/x" },
		{ POL_SRC_HTTPS, "https://h/team-a/%2E./team-b/x" },
		{ POL_SRC_HTTPS, "https://h/team-a/%2e/x" },
		{ POL_SRC_HTTPS, "https://h/team-a/%2e%2e?x=1" },
		{ POL_SRC_HTTPS, "http://127.0.0.1:8080/a/../b" },
		{ POL_SRC_HTTPS, "https://h/team-a\\..\\team-b/x" },
		{ POL_SRC_HTTPS, "https://h/a\\b" },
		{ POL_SRC_S3, "s3://bucket/team-a/../team-b/key" },
		{ POL_SRC_S3, "s3://bucket/%2e%2e/key" },
		{ POL_SRC_GCS, "gs://bucket/a/./b" },
		{ POL_SRC_AZURE_BLOB,
		  "https://acct.blob.core.windows.net/c/a/../b" },
		{ POL_SRC_AZURE_BLOB,
		  "https://acct.blob.core.windows.net/../c/b" },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo/a/%2e%2e/b" },
		{ POL_SRC_HUGGINGFACE, "hf://org/../repo/b" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://team/../other" },
		{ POL_SRC_FILE, "file:///srv/%2e%2e/etc/shadow" },
	};
	static const struct {
		enum pol_source_type type;
		const char *uri;
	} good[] = {
		{ POL_SRC_HTTPS, "https://h/team-a/..x/y" },
		{ POL_SRC_HTTPS, "https://h/team-a/x../y" },
		{ POL_SRC_HTTPS, "https://h/team-a/.hidden" },
		{ POL_SRC_HTTPS, "https://h/team-a/...x" },
		{ POL_SRC_HTTPS, "https://h/team-a/%2e%2ex" },
		{ POL_SRC_HTTPS, "https://h/a.b/c..d/e.bin" },
		{ POL_SRC_HTTPS, "https://h/a?path=../b" },
		{ POL_SRC_S3, "s3://bucket/dir/file.tar.gz" },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (pol_uri_check(bad[i].type, bad[i].uri, err, sizeof(err)) !=
		    AF_EPARSE)
			fail_msg("%s: accepted", bad[i].uri);
		assert_true(strlen(err) > 0);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (pol_uri_check(good[i].type, good[i].uri, err,
				  sizeof(err)) != 0)
			fail_msg("%s: refused: %s", good[i].uri, err);
	/* The message says what is wrong. */
	assert_int_equal(pol_uri_check(POL_SRC_HTTPS,
				       "https://h/team-a/%2e%2e/team-b/x",
				       err, sizeof(err)), AF_EPARSE);
	assert_non_null(strstr(err, "dot segment"));
	assert_int_equal(pol_uri_check(POL_SRC_HTTPS, "https://h/a\\b", err,
				       sizeof(err)), AF_EPARSE);
	assert_non_null(strstr(err, "backslash"));
}

static void test_uri_too_long(void **state)
{
	char *u = malloc(5000);
	char err[256];

	(void)state;
	memcpy(u, "https://h/", 10);
	memset(u + 10, 'a', 4989);
	u[4999] = '\0';
	assert_int_equal(pol_uri_check(POL_SRC_HTTPS, u, err, sizeof(err)),
			 AF_EPARSE);
	assert_non_null(strstr(err, "longer than"));
	free(u);
}

static void test_uri_redact(void **state)
{
	char out[256], small[12];

	(void)state;
	assert_string_equal(pol_uri_redact("https://u:p@host/a/b?sig=x#f", out,
					   sizeof(out)),
			    "https://host/a/b");
	assert_string_equal(pol_uri_redact("https://host/a?x=1", out,
					   sizeof(out)),
			    "https://host/a");
	assert_string_equal(pol_uri_redact("s3://bucket/key", out,
					   sizeof(out)),
			    "s3://bucket/key");
	assert_string_equal(pol_uri_redact("https://a@b@host:8/x", out,
					   sizeof(out)),
			    "https://host:8/x");
	assert_string_equal(pol_uri_redact("https://host/a@b", out,
					   sizeof(out)),
			    "https://host/a@b");
	assert_string_equal(pol_uri_redact("https://user@", out, sizeof(out)),
			    "https://");
	assert_string_equal(pol_uri_redact("noscheme?q", out, sizeof(out)),
			    "noscheme");
	assert_string_equal(pol_uri_redact(NULL, out, sizeof(out)), "");
	assert_string_equal(pol_uri_redact("https://host/abcdefghijkl",
					   small, sizeof(small)),
			    "https://hos");
	assert_string_equal(pol_uri_redact("https://u:p@h/?q", small, 1), "");
	assert_null(pol_uri_redact("x", NULL, 0));
}

/* Issue 8: a huggingface registration pins a revision by its commit sha. */
static void test_hf_source_ref(void **state)
{
	static const struct uri_case cases[] = {
		{ "huggingface", "hf://org/repo/m.bin", HF_COMMIT, NULL },
		{ "huggingface", "hf://org/repo/m.bin", "main",
		  "\"main\" is not a commit sha" },
		{ "huggingface", "hf://org/repo/m.bin", "v1.0",
		  "a branch or tag name does not pin a revision" },
		{ "huggingface", "hf://org/repo/m.bin", "refs/pr/1",
		  "is not a commit sha" },
		/* 39 and 41 hex characters. */
		{ "huggingface", "hf://org/repo/m.bin",
		  "0123456789abcdef0123456789abcdef0123456",
		  "has 39 hex characters" },
		{ "huggingface", "hf://org/repo/m.bin",
		  "0123456789abcdef0123456789abcdef012345678",
		  "has 41 hex characters" },
		{ "huggingface", "hf://org/repo/m.bin", "0123abcd",
		  "has 8 hex characters" },
		{ "huggingface", "hf://org/repo/m.bin",
		  "0123456789ABCDEF0123456789abcdef01234567",
		  "must be lowercase hex" },
		{ "huggingface", "hf://org/repo/m.bin", " " HF_COMMIT,
		  "is not a commit sha" },
		{ "huggingface", "hf://org/repo/m.bin", NULL,
		  "source.source_ref: required for huggingface" },
		/* Other types keep a free-form source_ref. */
		{ "https", "https://h/a.bin", "main", NULL },
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct uri_case *c = &cases[i];
		struct pol_registration *r = NULL;
		int ret;

		err[0] = '\0';
		ret = parse_edited(edit_uri, (void *)c, &r, err, sizeof(err));
		if (!c->want) {
			if (ret != 0)
				fail_msg("%s: unexpected \"%s\"", c->ref, err);
			assert_string_equal(r->source_ref, c->ref);
			pol_registration_free(r);
			continue;
		}
		if (ret != AF_EPARSE || !strstr(err, c->want) ||
		    !strstr(err, "registry/a.json[2]: source.source_ref: "))
			fail_msg("%s: got %d \"%s\", want \"%s\"",
				 c->ref ? c->ref : "(null)", ret, err,
				 c->want);
	}
}

static void test_hf_and_store_uris(void **state)
{
	static const struct {
		enum pol_source_type type;
		const char *uri;
		const char *want;	/* NULL: valid */
	} cases[] = {
		{ POL_SRC_HUGGINGFACE, "hf://org/repo/m.safetensors", NULL },
		{ POL_SRC_HUGGINGFACE, "hf://Org_1/Repo.v2-x/a/b/c.bin", NULL },
		{ POL_SRC_HUGGINGFACE, "hf://datasets/org/repo/data/t.parquet",
		  NULL },
		{ POL_SRC_HUGGINGFACE, "hf://spaces/org/app/app.py", NULL },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo/with%20space.bin", NULL },
		/* Fewer than three parts. */
		{ POL_SRC_HUGGINGFACE, "hf://org/repo", "no valid path" },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo/", "no valid path" },
		{ POL_SRC_HUGGINGFACE, "hf://org", "no repository" },
		{ POL_SRC_HUGGINGFACE, "hf://org/", "no repository" },
		{ POL_SRC_HUGGINGFACE, "hf://", "no organization" },
		{ POL_SRC_HUGGINGFACE, "hf:///repo/x", "no organization" },
		{ POL_SRC_HUGGINGFACE, "hf://datasets/org/repo",
		  "no valid path" },
		{ POL_SRC_HUGGINGFACE, "hf://org//x", "no repository" },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo/dir/", "ends in '/'" },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo/a//b", "empty segment" },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo@main/m.bin",
		  "source_ref" },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo/m.bin?revision=main",
		  "no query" },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo/m.bin#x", "no query" },
		{ POL_SRC_HUGGINGFACE, "hf://o--rg/repo/m.bin",
		  "organization name" },
		{ POL_SRC_HUGGINGFACE, "hf://-org/repo/m.bin",
		  "organization name" },
		{ POL_SRC_HUGGINGFACE, "hf://org/re..po/m.bin",
		  "repository name" },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo.git/m.bin",
		  "repository name" },
		{ POL_SRC_HUGGINGFACE, "hf://org/re%70o/m.bin",
		  "repository name" },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo/m%zz.bin",
		  "bad percent escape" },
		{ POL_SRC_HUGGINGFACE, "hf://org/repo/m%2", "bad percent" },
		{ POL_SRC_HUGGINGFACE, "https://huggingface.co/org/repo/m",
		  "must start with \"hf://\"" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://models", NULL },
		{ POL_SRC_ARTIFACT_STORE,
		  "artifact-store://team-a/vision/resnet_50.v2", NULL },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://a__b/c---d/e.f",
		  NULL },
		/* A tag or digest in the URI. */
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://team/models:v1",
		  "tag or digest" },
		{ POL_SRC_ARTIFACT_STORE,
		  "artifact-store://team/models@sha256:" HEX64,
		  "tag or digest" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://models:latest",
		  "tag or digest" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://Team/models",
		  "lowercase" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://team//models",
		  "lowercase" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://team/models/",
		  "lowercase" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://team/-models",
		  "lowercase" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://team/a._b",
		  "lowercase" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://team/a___b",
		  "lowercase" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://team/a%2fb",
		  "lowercase" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://team/m?tag=v1",
		  "no query" },
		{ POL_SRC_ARTIFACT_STORE, "artifact-store://team/m#v1",
		  "no query" },
	};
	char err[512], *longname;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret;

		err[0] = '\0';
		ret = pol_uri_check(cases[i].type, cases[i].uri, err,
				    sizeof(err));
		if (!cases[i].want && ret != 0)
			fail_msg("%s: refused: %s", cases[i].uri, err);
		if (cases[i].want &&
		    (ret != AF_EPARSE || !strstr(err, cases[i].want)))
			fail_msg("%s: got %d \"%s\", want \"%s\"",
				 cases[i].uri, ret, err, cases[i].want);
	}
	/* 255 characters of repository name at most. */
	longname = malloc(300);
	assert_non_null(longname);
	memcpy(longname, "artifact-store://", 17);
	memset(longname + 17, 'a', 255);
	longname[17 + 255] = '\0';
	assert_int_equal(pol_uri_check(POL_SRC_ARTIFACT_STORE, longname, err,
				       sizeof(err)), 0);
	longname[17 + 255] = 'a';
	longname[17 + 256] = '\0';
	assert_int_equal(pol_uri_check(POL_SRC_ARTIFACT_STORE, longname, err,
				       sizeof(err)), AF_EPARSE);
	assert_non_null(strstr(err, "longer than 255"));
	free(longname);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_full),
		cmocka_unit_test(test_valid_minimal),
		cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_size_bytes),
		cmocka_unit_test(test_huge_integer_text),
		cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_not_object),
		cmocka_unit_test(test_uri_forms),
		cmocka_unit_test(test_uri_secrets),
		cmocka_unit_test(test_uri_dot_segments),
		cmocka_unit_test(test_uri_too_long),
		cmocka_unit_test(test_uri_redact),
		cmocka_unit_test(test_hf_source_ref),
		cmocka_unit_test(test_hf_and_store_uris),
	};

	return cmocka_run_group_tests_name("policy_registration", tests, NULL,
					   NULL);
}
