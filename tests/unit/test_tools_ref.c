/*
 * test_tools_ref.c - the command's own parsers: REF
 * ("project/name@digest" or "project/name@channel", DESIGN §9) and sizes
 * for humans.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tools/cli.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static const char registry_json[] =
	"[{\"project\":\"vision\",\"name\":\"m.bin\",\"artifact_kind\":\"blob\","
	"\"digest\":\"" D1 "\",\"source\":{\"source_type\":\"https\","
	"\"uri\":\"https://models.example.internal/m1\"},\"lifecycle_state\":\"active\","
	"\"trust_state\":\"verified\",\"channels\":[\"prod\"],"
	"\"registered_at\":\"2026-03-01T00:00:00Z\"},"
	"{\"project\":\"vision\",\"name\":\"m.bin\",\"artifact_kind\":\"blob\","
	"\"digest\":\"" D2 "\",\"source\":{\"source_type\":\"https\","
	"\"uri\":\"https://models.example.internal/m2\"},\"lifecycle_state\":\"active\","
	"\"trust_state\":\"verified\",\"channels\":[\"prod\"],"
	"\"registered_at\":\"2026-03-05T00:00:00Z\"}]";

static const char policy_json[] =
	"{\"sources\":[{\"source_type\":\"https\","
	"\"uri_prefix\":\"https://models.example.internal/\"}]}";

struct world {
	struct pol_registry *reg;
	struct pol_policy *pol;
};

static int setup(void **state)
{
	static struct world w;
	char err[256];

	if (pol_registry_parse(registry_json, strlen(registry_json), "t.json",
			       NULL, NULL, &w.reg) != 0)
		return -1;
	if (pol_policy_parse(policy_json, strlen(policy_json), "p.json", &w.pol,
			     err, sizeof(err)) != 0)
		return -1;
	*state = &w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	pol_registry_free(w->reg);
	pol_policy_free(w->pol);
	return 0;
}

static void test_resolve(void **state)
{
	struct world *w = *state;
	const struct pol_registration *r;
	char err[512];

	r = cli_resolve_ref(w->reg, w->pol, "vision/m.bin@" D1, err, sizeof(err));
	assert_non_null(r);
	assert_string_equal(r->digest.str, D1);
	/* A channel resolves to the latest readable record. */
	r = cli_resolve_ref(w->reg, w->pol, "vision/m.bin@prod", err, sizeof(err));
	assert_non_null(r);
	assert_string_equal(r->digest.str, D2);
}

static void test_resolve_refused(void **state)
{
	struct world *w = *state;
	static const char *const bad[] = {
		"m.bin@prod",				/* no project */
		"vision/m.bin",				/* no @ */
		"/m.bin@prod",				/* empty project */
		"vision/@prod",				/* empty name */
		"vision/m.bin@dev",			/* no record claims it */
		"vision/m.bin@sha256:12",		/* short digest */
		"vision/m.bin@SHA256:1111111111111111111111111111111111111111111111111111111111111111",
		"vision/other.bin@" D1,			/* not registered */
		"nlp/m.bin@" D1,
	};
	char err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(cli_resolve_ref(w->reg, w->pol, bad[i], err, sizeof(err)));
		/* The message names the REF it refused. */
		assert_non_null(strstr(err, bad[i]));
	}
}

/* Which part of a REF is missing is said in words (issue 12). */
static void test_resolve_says_what_is_missing(void **state)
{
	struct world *w = *state;
	char err[512];

	assert_null(cli_resolve_ref(w->reg, w->pol, "vision/m.bin@staging", err,
				    sizeof(err)));
	assert_string_equal(err, "vision/m.bin@staging: no record claims channel staging");
	assert_null(cli_resolve_ref(w->reg, w->pol, "vision/x.bin@prod", err,
				    sizeof(err)));
	assert_non_null(strstr(err, "not registered"));
	/* Claimed, but by records the policy denies: not readable. */
	assert_null(cli_resolve_ref(w->reg, NULL, "vision/m.bin@prod", err,
				    sizeof(err)));
	assert_non_null(strstr(err, "no readable record claims channel prod"));
}

/* The form of a REF is checked before anything is looked up: usage errors. */
static void test_parse_ref(void **state)
{
	static const char *const bad[] = {
		"m.bin@prod", "vision/m.bin", "/m.bin@prod", "vision/@prod",
		"vision/m.bin@", "Vision/m.bin@prod", "vision/.hidden@prod",
		"vision/a/b@prod", "vision/m.bin@Prod", "vision/m.bin@sha256:12",
		"vision/m.bin@md5:d41d8cd98f00b204e9800998ecf8427e",
	};
	struct cli_ref cr;
	char err[512];

	(void)state;
	assert_int_equal(cli_parse_ref("vision/m.bin@" D1, &cr, err, sizeof(err)), 0);
	assert_true(cr.has_digest);
	assert_string_equal(cr.project, "vision");
	assert_string_equal(cr.name, "m.bin");
	assert_string_equal(cr.digest.str, D1);
	assert_int_equal(cli_parse_ref("vision/m.bin@prod", &cr, err, sizeof(err)), 0);
	assert_false(cr.has_digest);
	assert_string_equal(cr.channel, "prod");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(cli_parse_ref(bad[i], &cr, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, bad[i]));
	}
}

static void test_human_size(void **state)
{
	char b[32];

	(void)state;
	assert_string_equal(cli_human_size(0, b, sizeof(b)), "0 B");
	assert_string_equal(cli_human_size(1023, b, sizeof(b)), "1023 B");
	assert_string_equal(cli_human_size(1536, b, sizeof(b)), "1.5 KiB");
	assert_string_equal(cli_human_size(2ULL << 30, b, sizeof(b)), "2.0 GiB");
	assert_string_equal(cli_human_size(5ULL << 40, b, sizeof(b)), "5.0 TiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_resolve_refused),
		cmocka_unit_test(test_resolve_says_what_is_missing),
		cmocka_unit_test(test_parse_ref),
		cmocka_unit_test(test_human_size),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
