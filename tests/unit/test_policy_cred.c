/*
 * test_policy_cred.c - credential documents, refusals, scopes and the
 * helper's request (DESIGN §5, §5b). Every secret here contains
 * "hunter2": no message may ever show it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/af.h"
#include "policy/cred.h"
#include "policy/policy.h"

/* 2026-03-09T12:00:00Z */
#define NOW 1773057600LL

static int parse(const char *doc, struct pol_cred **out, char *err,
		 size_t errlen)
{
	int ret = pol_cred_parse(doc, strlen(doc), "creds/a.json", out, err,
				 errlen);

	assert_null(strstr(err, "hunter2"));
	return ret;
}

static void test_valid_types(void **state)
{
	struct pol_cred *c;
	char err[512] = "";

	(void)state;
	assert_int_equal(parse("{\"source_type\": \"s3\", \"scope\": \"s3://ml-weights/\","
			       " \"expires_at\": \"2026-03-09T13:00:00Z\","
			       " \"access_key_id\": \"AKIAhunter2\","
			       " \"secret_access_key\": \"wJal/hunter2+x\","
			       " \"session_token\": \"FQoG//hunter2==\"}",
			       &c, err, sizeof(err)), 0);
	assert_int_equal(c->type, POL_SRC_S3);
	assert_string_equal(c->scope, "s3://ml-weights/");
	assert_int_equal(c->expires_at_s, NOW + 3600);
	assert_string_equal(c->origin, "creds/a.json");
	assert_string_equal(c->access_key_id, "AKIAhunter2");
	assert_string_equal(c->secret_access_key, "wJal/hunter2+x");
	assert_string_equal(c->session_token, "FQoG//hunter2==");
	assert_null(c->bearer_token);
	assert_int_equal(pol_cred_check_time(c, NOW, 12ULL * 3600 * 1000, err,
					     sizeof(err)), 0);
	{
		struct pol_cred *d = pol_cred_dup(c);

		assert_non_null(d);
		assert_string_equal(d->secret_access_key, "wJal/hunter2+x");
		assert_string_equal(d->scope, c->scope);
		pol_cred_free(d);
	}
	pol_cred_free(c);

	/* No session token: fine for s3. */
	assert_int_equal(parse("{\"source_type\": \"s3\", \"scope\": \"s3://b\","
			       " \"expires_at\": \"2026-03-09T13:00:00+01:00\","
			       " \"access_key_id\": \"AK\", \"secret_access_key\": \"hunter2\"}",
			       &c, err, sizeof(err)), 0);
	assert_null(c->session_token);
	assert_int_equal(c->expires_at_s, NOW);
	pol_cred_free(c);

	assert_int_equal(parse("{\"source_type\": \"gcs\", \"scope\": \"gs://bucket/dir\","
			       " \"expires_at\": \"2026-03-09T13:00:00Z\","
			       " \"bearer_token\": \"ya29.hunter2\"}",
			       &c, err, sizeof(err)), 0);
	assert_string_equal(c->bearer_token, "ya29.hunter2");
	pol_cred_free(c);

	/* A SAS is taken with or without its leading '?'. */
	assert_int_equal(parse("{\"source_type\": \"azure_blob\","
			       " \"scope\": \"https://acct.blob.core.windows.net/c/\","
			       " \"expires_at\": \"2026-03-09T13:00:00Z\","
			       " \"sas_token\": \"?sv=2021&sig=hunter2\"}",
			       &c, err, sizeof(err)), 0);
	assert_string_equal(c->sas_token, "sv=2021&sig=hunter2");
	assert_null(c->bearer_token);
	pol_cred_free(c);
	assert_int_equal(parse("{\"source_type\": \"azure_blob\","
			       " \"scope\": \"https://acct.blob.core.windows.net\","
			       " \"expires_at\": \"2026-03-09T13:00:00Z\","
			       " \"bearer_token\": \"eyJhunter2\"}",
			       &c, err, sizeof(err)), 0);
	assert_string_equal(c->bearer_token, "eyJhunter2");
	pol_cred_free(c);

	assert_int_equal(parse("{\"source_type\": \"https\", \"scope\": \"http://127.0.0.1:8080/blobs/\","
			       " \"expires_at\": \"2026-03-09T13:00:00Z\","
			       " \"bearer_token\": \"hunter2\"}",
			       &c, err, sizeof(err)), 0);
	pol_cred_free(c);
	assert_int_equal(parse("{\"source_type\": \"huggingface\", \"scope\": \"hf://org\","
			       " \"expires_at\": \"2026-03-09T13:00:00Z\","
			       " \"bearer_token\": \"hf_hunter2\"}",
			       &c, err, sizeof(err)), 0);
	pol_cred_free(c);
	assert_int_equal(parse("{\"source_type\": \"artifact_store\", \"scope\": \"artifact-store://team\","
			       " \"expires_at\": \"2026-03-09T13:00:00Z\","
			       " \"bearer_token\": \"hunter2\"}",
			       &c, err, sizeof(err)), 0);
	pol_cred_free(c);
	pol_cred_free(NULL);
}

/* A helper's "no credential for this request". */
static void test_null(void **state)
{
	struct pol_cred *c = (void *)1;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(" null\n", &c, err, sizeof(err)), 1);
	assert_null(c);
}

/* Unreadable: nothing to tie the refusal to a scope. */
static void test_unreadable(void **state)
{
	static const struct {
		const char *doc;
		const char *want;
	} cases[] = {
		{ "", "creds/a.json: document: not valid JSON" },
		{ "{\"bearer_token\": \"hunter2\"", "creds/a.json: document: not valid JSON (line" },
		{ "hunter2", "not valid JSON" },
		{ "[\"hunter2\"]", "document: must be a JSON object" },
		{ "\"hunter2\"", "document: must be a JSON object" },
		{ "{\"scope\": \"s3://b/\", \"bearer_token\": \"hunter2\"}",
		  "creds/a.json: source_type: missing" },
		{ "{\"source_type\": 3, \"scope\": \"s3://b/\"}",
		  "source_type: must be a string" },
		{ "{\"source_type\": \"ftp\", \"scope\": \"s3://b/\"}",
		  "source_type: \"ftp\" is not a source type that takes credentials" },
		{ "{\"source_type\": \"file\", \"scope\": \"file:///x\"}",
		  "is not a source type that takes credentials" },
		{ "{\"source_type\": \"s3\"}", "scope: missing" },
		{ "{\"source_type\": \"s3\", \"scope\": [1]}", "scope: must be a string" },
		{ "{\"source_type\": \"s3\", \"scope\": \"\"}", "scope: empty" },
		{ "{\"source_type\": \"s3\", \"scope\": \"gs://b/\"}",
		  "scope: does not start with the scheme" },
		{ "{\"source_type\": \"azure_blob\", \"scope\": \"http://a.blob.core.windows.net/\"}",
		  "scope: does not start with the scheme" },
		{ "{\"source_type\": \"s3\", \"scope\": \"s3://\"}", "scope: has no host" },
		{ "{\"source_type\": \"s3\", \"scope\": \"s3:///k\"}", "scope: has no host" },
		{ "{\"source_type\": \"https\", \"scope\": \"https://u:hunter2@h/\"}",
		  "scope: must not carry userinfo" },
		{ "{\"source_type\": \"https\", \"scope\": \"https://h/a?sig=hunter2\"}",
		  "scope: must not have a query" },
		{ "{\"source_type\": \"https\", \"scope\": \"https://h/a/../b\"}",
		  "scope: has a dot segment" },
		{ "{\"source_type\": \"https\", \"scope\": \"https://h/a/%2E%2e/b\"}",
		  "scope: has a dot segment" },
		{ "{\"source_type\": \"https\", \"scope\": \"https://h/a b\"}",
		  "scope: has a space" },
		{ "{\"source_type\": \"https\", \"scope\": \"https://h/a\\\\b\"}",
		  "backslash" },
		/* jansson refuses NUL in strings (no JSON_ALLOW_NUL). */
		{ "{\"source_type\": \"https\", \"scope\": \"https://h/a\\u0000b\"}",
		  "not valid JSON" },
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"bearer_token\": \"hunter2\\u0000x\"}",
		  "not valid JSON" },
		/* Duplicate keys: which one would win is ambiguous. */
		{ "{\"source_type\": \"s3\", \"source_type\": \"gcs\", \"scope\": \"s3://b\"}",
		  "not valid JSON" },
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pol_cred *c = (void *)1;
		int ret;

		err[0] = '\0';
		ret = parse(cases[i].doc, &c, err, sizeof(err));
		if (ret != AF_EPARSE || c != NULL ||
		    !strstr(err, cases[i].want))
			fail_msg("case %zu: got %d \"%s\", want \"%s\"", i, ret,
				 err, cases[i].want);
	}
}

/*
 * Refused: the document is about a scope (so a fetch under it fails
 * rather than going on without), but it is not usable.
 */
static void test_refused(void **state)
{
	static const struct {
		const char *doc;
		const char *want;
	} cases[] = {
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"bearer_token\": \"hunter2\"}",
		  "creds/a.json: expires_at: missing (credentials must be short-lived)" },
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": null, \"bearer_token\": \"hunter2\"}",
		  "expires_at: missing" },
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": \"tomorrow\", \"bearer_token\": \"hunter2\"}",
		  "expires_at: not an RFC 3339 time" },
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": 1773057600, \"bearer_token\": \"hunter2\"}",
		  "expires_at: not an RFC 3339 time" },
		{ "{\"source_type\": \"s3\", \"scope\": \"s3://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"access_key_id\": \"AK\", \"secret_access_key\": \"hunter2\", \"bearer_token\": \"hunter2\"}",
		  "creds/a.json: bearer_token: unknown field for source type s3" },
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"bearer_token\": \"hunter2\", \"password\": \"hunter2\"}",
		  "password: unknown field for source type gcs" },
		{ "{\"source_type\": \"https\", \"scope\": \"https://h/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"sas_token\": \"hunter2\"}",
		  "sas_token: unknown field for source type https" },
		{ "{\"source_type\": \"s3\", \"scope\": \"s3://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"secret_access_key\": \"hunter2\"}",
		  "access_key_id: missing" },
		{ "{\"source_type\": \"s3\", \"scope\": \"s3://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"access_key_id\": \"AK\"}",
		  "secret_access_key: missing" },
		{ "{\"source_type\": \"s3\", \"scope\": \"s3://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"access_key_id\": \"AK/hunter2\", \"secret_access_key\": \"hunter2\"}",
		  "access_key_id: must not contain '/'" },
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\"}",
		  "bearer_token: missing" },
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"bearer_token\": \"\"}",
		  "bearer_token: empty" },
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"bearer_token\": 42}",
		  "bearer_token: must be a string" },
		/* Header injection. */
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"bearer_token\": \"hunter2\\r\\nX-Evil: 1\"}",
		  "bearer_token: must be printable ASCII without spaces" },
		{ "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\","
		  " \"bearer_token\": \"hunter2 x\"}",
		  "bearer_token: must be printable ASCII without spaces" },
		{ "{\"source_type\": \"azure_blob\", \"scope\": \"https://a.blob.core.windows.net/\","
		  " \"expires_at\": \"2026-03-09T13:00:00Z\", \"sas_token\": \"sig=hunter2\", \"bearer_token\": \"hunter2\"}",
		  "azure_blob takes exactly one of sas_token and bearer_token" },
		{ "{\"source_type\": \"azure_blob\", \"scope\": \"https://a.blob.core.windows.net/\","
		  " \"expires_at\": \"2026-03-09T13:00:00Z\"}",
		  "azure_blob takes exactly one of sas_token and bearer_token" },
		{ "{\"source_type\": \"azure_blob\", \"scope\": \"https://a.blob.core.windows.net/\","
		  " \"expires_at\": \"2026-03-09T13:00:00Z\", \"sas_token\": \"sig=hunter2#x\"}",
		  "sas_token: is not a query string" },
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pol_cred *c = NULL;
		int ret;

		err[0] = '\0';
		ret = parse(cases[i].doc, &c, err, sizeof(err));
		if (ret != AF_ECRED || !strstr(err, cases[i].want))
			fail_msg("case %zu: got %d \"%s\", want \"%s\"", i, ret,
				 err, cases[i].want);
		/* The scope is known; no secret is kept. */
		assert_non_null(c);
		assert_non_null(c->scope);
		assert_null(c->access_key_id);
		assert_null(c->secret_access_key);
		assert_null(c->bearer_token);
		assert_null(c->sas_token);
		pol_cred_free(c);
	}
}

static void test_too_big(void **state)
{
	size_t n = POL_CRED_DOC_MAX + 10;
	char *doc = malloc(n + 1), err[256] = "";
	struct pol_cred *c = NULL;
	char *tok = malloc(POL_CRED_SECRET_MAX + 200);

	(void)state;
	memset(doc, ' ', n);
	doc[n] = '\0';
	assert_int_equal(pol_cred_parse(doc, n, "big.json", &c, err,
					sizeof(err)), AF_EPARSE);
	assert_non_null(strstr(err, "big.json: document: larger than"));
	snprintf(tok, POL_CRED_SECRET_MAX + 200,
		 "{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\", \"bearer_token\": \"");
	memset(tok + strlen(tok), 'x', POL_CRED_SECRET_MAX + 1);
	tok[strlen("{\"source_type\": \"gcs\", \"scope\": \"gs://b/\", \"expires_at\": \"2026-03-09T13:00:00Z\", \"bearer_token\": \"") + POL_CRED_SECRET_MAX + 1] = '\0';
	strcat(tok, "\"}");
	assert_int_equal(pol_cred_parse(tok, strlen(tok), "t.json", &c, err,
					sizeof(err)), AF_ECRED);
	assert_non_null(strstr(err, "bearer_token: too long"));
	pol_cred_free(c);
	free(tok);
	free(doc);
}

static void test_time_rules(void **state)
{
	struct pol_cred c = { .type = POL_SRC_GCS, .origin = "creds/a.json" };
	char err[256];

	(void)state;
	c.expires_at_s = NOW - 1;
	assert_int_equal(pol_cred_check_time(&c, NOW, 12ULL * 3600000, err,
					     sizeof(err)), AF_ECRED);
	assert_string_equal(err, "creds/a.json: expires_at: expired at 2026-03-09T11:59:59Z");
	c.expires_at_s = NOW;
	assert_int_equal(pol_cred_check_time(&c, NOW, 12ULL * 3600000, err,
					     sizeof(err)), AF_ECRED);
	c.expires_at_s = NOW + 12 * 3600;
	assert_int_equal(pol_cred_check_time(&c, NOW, 12ULL * 3600000, err,
					     sizeof(err)), 0);
	c.expires_at_s = NOW + 12 * 3600 + 1;
	assert_int_equal(pol_cred_check_time(&c, NOW, 12ULL * 3600000, err,
					     sizeof(err)), AF_ECRED);
	assert_string_equal(err, "creds/a.json: expires_at: valid for 43201s, longer than credentials.max_lifetime (43200s)");
	c.expires_at_s = NOW + 5;
	assert_int_equal(pol_cred_check_time(&c, NOW, 4000, err,
					     sizeof(err)), AF_ECRED);
	assert_int_equal(pol_cred_check_time(&c, NOW, 5000, err,
					     sizeof(err)), 0);
}

static void test_scope_match(void **state)
{
	(void)state;
	assert_true(pol_cred_scope_matches("s3://acc", "s3://acc/key"));
	assert_true(pol_cred_scope_matches("s3://acc", "s3://acc"));
	assert_true(pol_cred_scope_matches("s3://acc", "s3://acc?x=1"));
	assert_false(pol_cred_scope_matches("s3://acc", "s3://accredit/key"));
	assert_false(pol_cred_scope_matches("s3://acc", "s3://acc.evil/key"));
	assert_true(pol_cred_scope_matches("s3://acc/", "s3://acc/key"));
	assert_true(pol_cred_scope_matches("s3://acc/mod", "s3://acc/mod/a"));
	assert_false(pol_cred_scope_matches("s3://acc/mod", "s3://acc/models/a"));
	assert_true(pol_cred_scope_matches("s3://acc/mod", "s3://acc/mod"));
	assert_true(pol_cred_scope_matches("https://h:8443/a/", "https://h:8443/a/b"));
	assert_false(pol_cred_scope_matches("https://h", "https://h:8443/a/b"));
	assert_false(pol_cred_scope_matches("https://h/a/", "https://h/a"));
	assert_false(pol_cred_scope_matches("", "s3://a/b"));
	assert_false(pol_cred_scope_matches(NULL, "s3://a/b"));
	assert_false(pol_cred_scope_matches("s3://a", NULL));
}

static void test_match_len(void **state)
{
	struct pol_cred c = { .type = POL_SRC_S3, .scope = "s3://ml-weights/" };
	struct pol_registration r = { .source_type = POL_SRC_S3,
				      .uri = "s3://ml-weights/a.bin" };

	(void)state;
	assert_int_equal(pol_cred_match_len(&c, &r), strlen(c.scope));
	c.scope = "s3://ml-weights/a.bin";
	assert_int_equal(pol_cred_match_len(&c, &r), strlen(c.scope));
	c.scope = "s3://ml-weights/b";
	assert_int_equal(pol_cred_match_len(&c, &r), 0);
	c.scope = "s3://ml-weights/";
	r.source_type = POL_SRC_GCS;
	assert_int_equal(pol_cred_match_len(&c, &r), 0);
	assert_int_equal(pol_cred_match_len(NULL, &r), 0);
}

static void test_request_json(void **state)
{
	struct pol_registration r = {
		.project = "vision",
		.name = "m\"x.bin",
		.source_type = POL_SRC_S3,
		.uri = "s3://ml-weights/a.bin?versionId=1",
	};
	char *s;

	(void)state;
	assert_int_equal(pol_digest_parse("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
					  &r.digest, NULL, 0), 0);
	s = pol_cred_request_json(&r);
	assert_non_null(s);
	assert_string_equal(s, "{\"source_type\":\"s3\",\"uri\":\"s3://ml-weights/a.bin?versionId=1\","
			    "\"project\":\"vision\",\"name\":\"m\\\"x.bin\","
			    "\"digest\":\"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\","
			    "\"intent\":\"pull\"}\n");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_types),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_time_rules),
		cmocka_unit_test(test_scope_match),
		cmocka_unit_test(test_match_len),
		cmocka_unit_test(test_request_json),
	};

	return cmocka_run_group_tests_name("policy_cred", tests, NULL, NULL);
}
