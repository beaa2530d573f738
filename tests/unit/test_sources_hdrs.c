/*
 * test_sources_hdrs.c - the parsers of sources/hdrs.c: X-Repo-Commit,
 * entity tags (X-Linked-Etag) and WWW-Authenticate challenges, with the
 * hostile and malformed values a server may send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/af.h"
#include "sources/hdrs_int.h"

#define C40 "0123456789abcdef0123456789abcdef01234567"

static int commit(const char *v, char *out)
{
	return hdrs_parse_commit(v, strlen(v), out);
}

static void test_commit(void **state)
{
	char out[HDRS_COMMIT_LEN + 1] = "untouched";

	(void)state;
	assert_int_equal(commit(C40, out), 0);
	assert_string_equal(out, C40);
	assert_int_equal(commit("  " C40 " \r\n", out), 0);
	assert_string_equal(out, C40);
	/* The Hub writes lowercase; uppercase is the same sha. */
	assert_int_equal(commit("0123456789ABCDEF0123456789abcdef01234567",
				out), 0);
	assert_string_equal(out, C40);

	strcpy(out, "untouched");
	assert_int_equal(commit("", out), AF_EPARSE);
	assert_int_equal(commit("main", out), AF_EPARSE);
	assert_int_equal(commit(C40 "8", out), AF_EPARSE);
	assert_int_equal(commit("123456789abcdef0123456789abcdef01234567",
				out), AF_EPARSE);
	assert_int_equal(commit("g123456789abcdef0123456789abcdef01234567",
				out), AF_EPARSE);
	assert_int_equal(commit("\"" C40 "\"", out), AF_EPARSE);
	assert_int_equal(commit("0123456789abcdef 0123456789abcdef0123456",
				out), AF_EPARSE);
	assert_int_equal(hdrs_parse_commit(NULL, 0, out), AF_EPARSE);
	/* Bounded by len: the 40 digits must be inside it. */
	assert_int_equal(hdrs_parse_commit(C40, 39, out), AF_EPARSE);
	assert_string_equal(out, "untouched");
}

static int etag(const char *v, const char **t, size_t *n, bool *weak)
{
	return hdrs_parse_etag(v, strlen(v), t, n, weak);
}

static void test_etag(void **state)
{
	const char *t = NULL;
	size_t n = 0;
	bool weak = true;

	(void)state;
	assert_int_equal(etag("\"abc\"", &t, &n, &weak), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(t, "abc", 3);
	assert_false(weak);
	assert_int_equal(etag(" W/\"x-y\" ", &t, &n, &weak), 0);
	assert_int_equal(n, 3);
	assert_true(weak);
	assert_int_equal(etag("\"\"", &t, &n, &weak), 0);
	assert_int_equal(n, 0);

	t = NULL;
	assert_int_equal(etag("abc", &t, &n, &weak), AF_EPARSE);
	assert_int_equal(etag("\"abc", &t, &n, &weak), AF_EPARSE);
	assert_int_equal(etag("\"a\"b\"", &t, &n, &weak), AF_EPARSE);
	assert_int_equal(etag("\"a\" x", &t, &n, &weak), AF_EPARSE);
	assert_int_equal(etag("w/\"a\"", &t, &n, &weak), AF_EPARSE);
	assert_int_equal(etag("W/", &t, &n, &weak), AF_EPARSE);
	assert_int_equal(etag("\"a b\"", &t, &n, &weak), AF_EPARSE);
	assert_int_equal(etag("\"a\x01\"", &t, &n, &weak), AF_EPARSE);
	assert_int_equal(etag("", &t, &n, &weak), AF_EPARSE);
	assert_int_equal(hdrs_parse_etag(NULL, 0, &t, &n, &weak), AF_EPARSE);
	assert_int_equal(hdrs_parse_etag("\"abc\"", 4, &t, &n, &weak),
			 AF_EPARSE);
	assert_null(t);
}

static int chal(const char *v, struct hdrs_challenge *c)
{
	return hdrs_parse_challenge(v, strlen(v), c);
}

static void test_challenge_registry(void **state)
{
	struct hdrs_challenge c;

	(void)state;
	/* What distribution answers with token auth configured. */
	assert_int_equal(chal("Bearer realm=\"https://auth.example/token\","
			      "service=\"registry.example\","
			      "scope=\"repository:team/models:pull\"", &c), 0);
	assert_true(c.bearer);
	assert_false(c.basic);
	assert_string_equal(c.realm, "https://auth.example/token");
	assert_string_equal(c.service, "registry.example");
	assert_string_equal(c.scope, "repository:team/models:pull");
	assert_string_equal(c.error, "");
	assert_false(c.cut);

	/* RFC 6750 §3: an error param, names in any case, spaces. */
	assert_int_equal(chal("bearer  REALM = \"r\" , error=invalid_token ,"
			      " error_description=\"The token expired\"", &c),
			 0);
	assert_true(c.bearer);
	assert_string_equal(c.realm, "r");
	assert_string_equal(c.error, "invalid_token");

	/* Several challenges: the first Bearer one is kept. */
	assert_int_equal(chal("Basic realm=\"basic-realm\", Bearer realm=\"b1\","
			      " Bearer realm=\"b2\"", &c), 0);
	assert_true(c.basic);
	assert_true(c.bearer);
	assert_string_equal(c.realm, "b1");
	assert_int_equal(chal("Negotiate, Basic realm=x", &c), 0);
	assert_true(c.other);
	assert_true(c.basic);
	assert_false(c.bearer);
	assert_string_equal(c.realm, "");
	/* token68 forms. */
	assert_int_equal(chal("Negotiate abc+/de==, Bearer realm=z", &c), 0);
	assert_true(c.bearer);
	assert_string_equal(c.realm, "z");
	assert_int_equal(chal("Bearer", &c), 0);
	assert_true(c.bearer);
	assert_int_equal(chal(", ,Bearer realm=\"a\\\"b\\\\c\",", &c), 0);
	assert_string_equal(c.realm, "a\"b\\c");
}

static void test_challenge_hostile(void **state)
{
	struct hdrs_challenge c;
	char *big;

	(void)state;
	/* Bytes that must not reach a log line come out as '?'. */
	assert_int_equal(hdrs_parse_challenge("Bearer realm=\"a\x80z\"", 18,
					      &c), 0);
	assert_string_equal(c.realm, "a?z");
	/* A long value is cut, and says so. */
	big = malloc(2000);
	assert_non_null(big);
	memcpy(big, "Bearer realm=\"", 14);
	memset(big + 14, 'r', 1000);
	memcpy(big + 1014, "\", scope=s", 11);
	assert_int_equal(chal(big, &c), 0);
	assert_true(c.cut);
	assert_int_equal(strlen(c.realm), HDRS_PARAM_MAX - 1);
	assert_string_equal(c.scope, "s");
	free(big);

	static const char *const bad[] = {
		"",
		"   ",
		",,",
		"Bearer realm=\"unterminated",
		"Bearer realm=\"a\nb\"",
		"Bearer realm=\"a\" scope=b",
		"Bearer =x",
		"Bearer\trealm=x",
		"Bearer realm=a b",
		"Bearer realm=\"x\"junk",
		"\"Bearer\"",
		"Bearer realm=\"a\\",
		"Negotiate abc== x",
		"Bearer realm=x,, =y",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (chal(bad[i], &c) != AF_EPARSE)
			fail_msg("accepted: %s", bad[i]);
	assert_int_equal(hdrs_parse_challenge(NULL, 0, &c), AF_EPARSE);
	/* Bounded by len. */
	assert_int_equal(hdrs_parse_challenge("Bearer realm=\"abc\"", 16, &c),
			 AF_EPARSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit),
		cmocka_unit_test(test_etag),
		cmocka_unit_test(test_challenge_registry),
		cmocka_unit_test(test_challenge_hostile),
	};

	return cmocka_run_group_tests_name("sources_hdrs", tests, NULL, NULL);
}
