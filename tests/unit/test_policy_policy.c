/*
 * test_policy_policy.c - the policy document and every deny reason
 * (DESIGN §4).
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

#include "policy/policy.h"

#define HEX64 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HEX128 HEX64 HEX64

static const char policy_json[] =
	"{\"digest_algorithms\":[\"sha256\",\"sha512\"],"
	"\"readable_lifecycle_states\":[\"active\",\"deprecated\"],"
	"\"min_trust_state\":\"verified\","
	"\"sources\":["
	"{\"source_type\":\"https\",\"uri_prefix\":\"https://models.example.internal/\"},"
	"{\"source_type\":\"s3\",\"uri_prefix\":\"s3://ml-weights/\",\"projects\":[\"vision\"]},"
	"{\"source_type\":\"https\",\"uri_prefix\":\"http://127.0.0.1:8080/\",\"projects\":[\"nlp\"]},"
	"{\"source_type\":\"file\",\"uri_prefix\":\"file:///srv/dev/\"},"
	"{\"source_type\":\"gcs\",\"uri_prefix\":\"gs://bucket\"}"
	"],"
	"\"projects\":{\"vision\":{\"gid\":1001},\"nlp\":{}}}";

static struct pol_policy *load_policy(const char *text)
{
	struct pol_policy *p;
	char err[512];

	if (pol_policy_parse(text, strlen(text), "policy.json", &p, err,
			     sizeof(err)) != 0)
		fail_msg("policy: %s", err);
	return p;
}

static struct pol_registration *make_reg(const char *project,
					 const char *digest,
					 const char *type, const char *uri,
					 const char *lifecycle,
					 const char *trust,
					 const char *decision)
{
	struct pol_registration *r;
	char text[2048], dec[128] = "";
	char err[512];

	if (decision)
		snprintf(dec, sizeof(dec),
			 ",\"allowlist_decision\":{\"decision\":\"%s\"}",
			 decision);
	snprintf(text, sizeof(text),
		 "{\"project\":\"%s\",\"name\":\"m.bin\",\"artifact_kind\":\"blob\","
		 "\"digest\":\"%s\",\"source\":{\"source_type\":\"%s\",\"uri\":\"%s\"},"
		 "\"lifecycle_state\":\"%s\",\"trust_state\":\"%s\"%s}",
		 project, digest, type, uri, lifecycle, trust, dec);
	if (pol_registration_parse(text, strlen(text), "t.json", &r, err,
				   sizeof(err)) != 0)
		fail_msg("registration: %s", err);
	return r;
}

static void expect_decision(const struct pol_policy *p,
			    struct pol_registration *r, const char *want)
{
	char reason[512] = "";
	int ret = pol_policy_decide(p, r, reason, sizeof(reason));

	if (!want) {
		if (ret != 0)
			fail_msg("denied: %s", reason);
	} else {
		assert_int_equal(ret, AF_EDENIED);
		if (strcmp(reason, want) != 0)
			fail_msg("got \"%s\", want \"%s\"", reason, want);
	}
	pol_registration_free(r);
}

#define D256 "sha256:" HEX64
#define D512 "sha512:" HEX128
#define OKURI "https://models.example.internal/m.bin"

static void test_allow_and_deny_reasons(void **state)
{
	struct pol_policy *p = load_policy(policy_json);
	struct pol_policy *p256 = load_policy(
		"{\"digest_algorithms\":[\"sha256\"],\"sources\":[{\"source_type\":\"https\","
		"\"uri_prefix\":\"https://models.example.internal/\"}]}");

	(void)state;
	expect_decision(p, make_reg("vision", D256, "https", OKURI, "active",
				    "verified", "allow"), NULL);
	expect_decision(p, make_reg("any", D512, "https", OKURI, "deprecated",
				    "attested", NULL), NULL);
	expect_decision(p256, make_reg("vision", D512, "https", OKURI, "active",
				       "verified", NULL),
			"digest algorithm sha512 not allowed by policy");
	expect_decision(p, make_reg("vision", D256, "https", OKURI, "revoked",
				    "verified", NULL),
			"lifecycle state revoked is not readable");
	expect_decision(p, make_reg("vision", D256, "https", OKURI, "retired",
				    "verified", NULL),
			"lifecycle state retired is not readable");
	expect_decision(p, make_reg("vision", D256, "https", OKURI,
				    "registered", "verified", NULL),
			"lifecycle state registered is not readable");
	expect_decision(p, make_reg("vision", D256, "https", OKURI, "active",
				    "untrusted", NULL),
			"trust state untrusted is below minimum verified");
	expect_decision(p, make_reg("vision", D256, "https", OKURI, "active",
				    "verified", "deny"),
			"registration allowlist decision is deny");
	expect_decision(p, make_reg("vision", D256, "https", OKURI, "active",
				    "verified", "pending"),
			"registration allowlist decision is pending");
	expect_decision(p, make_reg("vision", D256, "https",
				    "https://other.example/m.bin?v=1", "active",
				    "verified", "allow"),
			"source https://other.example/m.bin not allowlisted for project vision");
	expect_decision(NULL, make_reg("vision", D256, "https", OKURI,
				       "active", "verified", NULL),
			"no policy loaded");
	assert_int_equal(pol_policy_decide(p, NULL, NULL, 0), AF_EDENIED);
	pol_policy_free(p);
	pol_policy_free(p256);
}

static void test_project_scoping(void **state)
{
	struct pol_policy *p = load_policy(policy_json);

	(void)state;
	expect_decision(p, make_reg("vision", D256, "s3",
				    "s3://ml-weights/a/m.bin", "active",
				    "verified", NULL), NULL);
	expect_decision(p, make_reg("nlp", D256, "s3",
				    "s3://ml-weights/a/m.bin", "active",
				    "verified", NULL),
			"source s3://ml-weights/a/m.bin not allowlisted for project nlp");
	/* Type must match too: an https rule never allows s3. */
	expect_decision(p, make_reg("vision", D256, "s3",
				    "s3://models.example.internal/m.bin",
				    "active", "verified", NULL),
			"source s3://models.example.internal/m.bin not allowlisted for project vision");
	/* Cleartext only where a rule's prefix is itself http://. */
	expect_decision(p, make_reg("nlp", D256, "https",
				    "http://127.0.0.1:8080/m.bin", "active",
				    "verified", NULL), NULL);
	expect_decision(p, make_reg("vision", D256, "https",
				    "http://127.0.0.1:8080/m.bin", "active",
				    "verified", NULL),
			"source http://127.0.0.1:8080/m.bin not allowlisted for project vision");
	expect_decision(p, make_reg("vision", D256, "https",
				    "http://models.example.internal/m.bin",
				    "active", "verified", NULL),
			"source http://models.example.internal/m.bin not allowlisted for project vision");
	/* file only through an explicit file rule. */
	expect_decision(p, make_reg("vision", D256, "file",
				    "file:///srv/dev/m.bin", "active",
				    "verified", NULL), NULL);
	expect_decision(p, make_reg("vision", D256, "file",
				    "file:///etc/m.bin", "active", "verified",
				    NULL),
			"source file:///etc/m.bin not allowlisted for project vision");
	/* A prefix that ends in the host does not match a longer host. */
	expect_decision(p, make_reg("vision", D256, "gcs",
				    "gs://bucket/m.bin", "active", "verified",
				    NULL), NULL);
	expect_decision(p, make_reg("vision", D256, "gcs",
				    "gs://bucket-evil/m.bin", "active",
				    "verified", NULL),
			"source gs://bucket-evil/m.bin not allowlisted for project vision");
	pol_policy_free(p);
}

static void test_defaults(void **state)
{
	struct pol_policy *p = load_policy("{}");
	struct pol_policy *q = load_policy(
		"{\"sources\":[{\"source_type\":\"https\",\"uri_prefix\":\"https://models.example.internal/\"}]}");

	(void)state;
	/* No sources: nothing allowed. */
	expect_decision(p, make_reg("vision", D256, "https", OKURI, "active",
				    "verified", NULL),
			"source https://models.example.internal/m.bin not allowlisted for project vision");
	/* Defaults: both algorithms, active+deprecated, min verified. */
	expect_decision(q, make_reg("vision", D512, "https", OKURI,
				    "deprecated", "verified", NULL), NULL);
	expect_decision(q, make_reg("vision", D256, "https", OKURI, "retired",
				    "verified", NULL),
			"lifecycle state retired is not readable");
	expect_decision(q, make_reg("vision", D256, "https", OKURI, "active",
				    "untrusted", NULL),
			"trust state untrusted is below minimum verified");
	pol_policy_free(p);
	pol_policy_free(q);

	q = load_policy("{\"min_trust_state\":\"attested\",\"readable_lifecycle_states\":[],"
			"\"sources\":[{\"source_type\":\"https\",\"uri_prefix\":\"https://\"}]}");
	expect_decision(q, make_reg("vision", D256, "https", OKURI, "active",
				    "attested", NULL),
			"lifecycle state active is not readable");
	pol_policy_free(q);
	q = load_policy("{\"min_trust_state\":\"attested\","
			"\"sources\":[{\"source_type\":\"https\",\"uri_prefix\":\"https://\"}]}");
	expect_decision(q, make_reg("vision", D256, "https", OKURI, "active",
				    "verified", NULL),
			"trust state verified is below minimum attested");
	pol_policy_free(q);
	pol_policy_free(NULL);
}

static void test_gid(void **state)
{
	struct pol_policy *p = load_policy(policy_json);
	gid_t gid = 0;

	(void)state;
	assert_true(pol_policy_project_gid(p, "vision", &gid));
	assert_int_equal(gid, 1001);
	assert_false(pol_policy_project_gid(p, "nlp", &gid));
	assert_false(pol_policy_project_gid(p, "other", &gid));
	assert_false(pol_policy_project_gid(NULL, "vision", &gid));
	pol_policy_free(p);
}

static void expect_policy_error(const char *text, const char *want)
{
	struct pol_policy *p = (void *)1;
	char err[512] = "";

	assert_int_equal(pol_policy_parse(text, strlen(text), "policy.json",
					  &p, err, sizeof(err)), AF_EPARSE);
	assert_null(p);
	if (strcmp(err, want) != 0 && !strstr(err, want))
		fail_msg("got \"%s\", want \"%s\"", err, want);
}

static void test_policy_errors(void **state)
{
	(void)state;
	expect_policy_error("{\"sources\":[{\"source_type\":\"https\",\"uri_prefix\":\"https://a/\"},"
			    "{\"source_type\":\"ftp\",\"uri_prefix\":\"ftp://x/\"}]}",
			    "policy.json: sources[1].source_type: unknown source type \"ftp\"");
	expect_policy_error("{\"digest_algorithms\":[\"md5\"]}",
			    "policy.json: digest_algorithms[0]: unknown algorithm \"md5\"");
	expect_policy_error("{\"digest_algorithms\":\"sha256\"}",
			    "policy.json: digest_algorithms: must be an array");
	expect_policy_error("{\"readable_lifecycle_states\":[\"active\",\"zombie\"]}",
			    "policy.json: readable_lifecycle_states[1]: unknown lifecycle state \"zombie\"");
	expect_policy_error("{\"readable_lifecycle_states\":[\"revoked\"]}",
			    "readable_lifecycle_states[0]: revoked is never readable");
	expect_policy_error("{\"min_trust_state\":\"high\"}",
			    "policy.json: min_trust_state: unknown trust state \"high\"");
	expect_policy_error("{\"min_trust_state\":3}",
			    "policy.json: min_trust_state: must be a string");
	expect_policy_error("{\"sources\":{}}",
			    "policy.json: sources: must be an array");
	expect_policy_error("{\"sources\":[\"https://x/\"]}",
			    "policy.json: sources[0]: must be an object");
	expect_policy_error("{\"sources\":[{\"source_type\":\"https\"}]}",
			    "policy.json: sources[0].uri_prefix: missing");
	expect_policy_error("{\"sources\":[{\"uri_prefix\":\"https://x/\"}]}",
			    "policy.json: sources[0].source_type: missing");
	expect_policy_error("{\"sources\":[{\"source_type\":\"https\",\"uri_prefix\":\"\"}]}",
			    "policy.json: sources[0].uri_prefix: must be a uri prefix");
	expect_policy_error("{\"sources\":[{\"source_type\":\"https\",\"uri_prefix\":\"https://x/\",\"projects\":[\"Bad\"]}]}",
			    "policy.json: sources[0].projects[0]: invalid project \"Bad\"");
	expect_policy_error("{\"sources\":[{\"source_type\":\"https\",\"uri_prefix\":\"https://x/\",\"projekts\":[]}]}",
			    "policy.json: sources[0].projekts: unknown field");
	expect_policy_error("{\"min_trust\":\"verified\"}",
			    "policy.json: min_trust: unknown field");
	expect_policy_error("{\"projects\":{\"vision\":{\"gid\":-1}}}",
			    "policy.json: projects.vision: gid must be an integer");
	expect_policy_error("{\"projects\":{\"vision\":{\"gid\":\"1001\"}}}",
			    "policy.json: projects.vision: gid must be an integer");
	expect_policy_error("{\"projects\":{\"vision\":{\"gid\":4294967295}}}",
			    "policy.json: projects.vision: gid must be an integer");
	expect_policy_error("{\"projects\":{\"Vision\":{\"gid\":1}}}",
			    "policy.json: projects.Vision: invalid project name");
	expect_policy_error("{\"projects\":[]}",
			    "policy.json: projects: must be an object");
	expect_policy_error("[]", "policy.json: must be a JSON object");
	expect_policy_error("{\"sources\":", "policy.json:1:");
	expect_policy_error("{\"a\":1,\"a\":1}", "policy.json:1:");
}

static void test_policy_load(void **state)
{
	char path[] = "/tmp/test_policy_XXXXXX";
	struct pol_policy *p;
	char err[512];
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, policy_json, strlen(policy_json)),
			 (ssize_t)strlen(policy_json));
	close(fd);
	assert_int_equal(pol_policy_load(path, &p, err, sizeof(err)), 0);
	pol_policy_free(p);
	unlink(path);
	assert_int_equal(pol_policy_load(path, &p, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_int_equal(pol_policy_load("/tmp", &p, err, sizeof(err)),
			 -EISDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allow_and_deny_reasons),
		cmocka_unit_test(test_project_scoping),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_gid),
		cmocka_unit_test(test_policy_errors),
		cmocka_unit_test(test_policy_load),
	};

	return cmocka_run_group_tests_name("policy_policy", tests, NULL, NULL);
}
