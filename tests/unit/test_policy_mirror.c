/*
 * test_policy_mirror.c - [fetch] mirrors (DESIGN §11, issue 14): the URL a
 * plain or template mirror gives for a digest, and the entries the config
 * parser refuses at startup, each with an error that names the key and
 * the line (not http(s), http:// off loopback, unknown placeholder,
 * userinfo, a credential in the query, a placeholder in the host).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/af.h"
#include "policy/config.h"
#include "policy/policy.h"

#define HEX256 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static struct pol_digest digest(const char *s)
{
	struct pol_digest d;

	assert_int_equal(pol_digest_parse(s, &d, NULL, 0), 0);
	return d;
}

static void expect_url(const char *mirror, const char *want)
{
	struct pol_digest d = digest("sha256:" HEX256);
	char out[512], err[256] = "";

	if (pol_mirror_url(mirror, &d, out, sizeof(out), err, sizeof(err)))
		fail_msg("%s: %s", mirror, err);
	assert_string_equal(out, want);
}

static void test_expand(void **state)
{
	(void)state;
	expect_url("https://tier.internal/blobs",
		   "https://tier.internal/blobs/sha256/" HEX256);
	expect_url("https://tier.internal/blobs/",
		   "https://tier.internal/blobs/sha256/" HEX256);
	expect_url("https://tier.internal",
		   "https://tier.internal/sha256/" HEX256);
	expect_url("http://127.0.0.1:5000/v2/models/blobs/{digest}",
		   "http://127.0.0.1:5000/v2/models/blobs/sha256:" HEX256);
	expect_url("https://t/{algo}/{hex}/{algo}",
		   "https://t/sha256/" HEX256 "/sha256");
	expect_url("https://t/cas?d={hex}&a={algo}",
		   "https://t/cas?d=" HEX256 "&a=sha256");
	assert_false(pol_mirror_is_template("https://t/blobs"));
	assert_true(pol_mirror_is_template("https://t/b/{hex}"));
	assert_false(pol_mirror_is_template("https://t/b/{sha}"));
}

static void test_expand_sha512_and_limits(void **state)
{
	struct pol_digest d;
	char hex[129], s[140], out[300], small[40], err[256];

	(void)state;
	memset(hex, 'a', 128);
	hex[128] = '\0';
	snprintf(s, sizeof(s), "sha512:%s", hex);
	d = digest(s);
	assert_int_equal(pol_mirror_url("https://t/x", &d, out, sizeof(out),
					err, sizeof(err)), 0);
	assert_int_equal(strncmp(out, "https://t/x/sha512/aaaa", 23), 0);
	assert_int_equal(strlen(out), strlen("https://t/x/sha512/") + 128);
	/* Too small an output buffer: an error, never a truncated URL. */
	assert_int_equal(pol_mirror_url("https://t/x", &d, small,
					sizeof(small), err, sizeof(err)),
			 -ENAMETOOLONG);
	assert_int_equal(pol_mirror_url("https://t/{digest}", &d, small,
					sizeof(small), err, sizeof(err)),
			 -ENAMETOOLONG);
}

static void expect_bad_template(const char *mirror, const char *want)
{
	struct pol_digest d = digest("sha256:" HEX256);
	char out[512], err[256] = "";

	assert_int_equal(pol_mirror_url(mirror, &d, out, sizeof(out), err,
					sizeof(err)), AF_EPARSE);
	assert_string_equal(err, want);
}

static void test_bad_templates(void **state)
{
	(void)state;
	expect_bad_template("https://t/{hex}/{sha}",
			    "unknown placeholder {sha} (known: {algo}, {hex}, {digest})");
	expect_bad_template("https://t/{DIGEST}",
			    "unknown placeholder {DIGEST} (known: {algo}, {hex}, {digest})");
	expect_bad_template("https://t/{hex",
			    "unbalanced \"{\" (placeholders: {algo}, {hex}, {digest})");
	expect_bad_template("https://t/hex}",
			    "unbalanced \"}\" (placeholders: {algo}, {hex}, {digest})");
	expect_bad_template("https://t/{}",
			    "unknown placeholder {} (known: {algo}, {hex}, {digest})");
}

static void expect_config_error(const char *value, const char *want)
{
	struct pol_config c;
	char text[1024], err[512] = "";
	int ret;

	snprintf(text, sizeof(text), "[fetch]\nretries = 1\nmirrors = %s\n",
		 value);
	assert_int_equal(pol_config_init(&c), 0);
	ret = pol_config_parse(&c, text, strlen(text), "a.conf", err,
			       sizeof(err));
	pol_config_release(&c);
	if (ret != AF_EPARSE || strcmp(err, want) != 0)
		fail_msg("%s: got %d \"%s\", want \"%s\"", value, ret, err,
			 want);
}

static void test_config_refuses(void **state)
{
	(void)state;
	expect_config_error("ftp://tier.internal/blobs",
			    "a.conf:3: mirrors: ftp://tier.internal/blobs: not an http:// or https:// url");
	expect_config_error("https://ok.internal/b file:///srv/blobs",
			    "a.conf:3: mirrors: file:///srv/blobs: url has no host");
	expect_config_error("tier.internal/blobs",
			    "a.conf:3: mirrors: tier.internal/blobs: not a url (want scheme://host/…)");
	expect_config_error("http://tier.internal/blobs",
			    "a.conf:3: mirrors: http://tier.internal/blobs: http:// only for a loopback address (use https://)");
	expect_config_error("http://127.0.0.1.evil.example/blobs",
			    "a.conf:3: mirrors: http://127.0.0.1.evil.example/blobs: http:// only for a loopback address (use https://)");
	expect_config_error("https://tier.internal/v2/{sha}",
			    "a.conf:3: mirrors: https://tier.internal/v2/{sha}: unknown placeholder {sha} (known: {algo}, {hex}, {digest})");
	expect_config_error("https://{hex}.tier.internal/b",
			    "a.conf:3: mirrors: https://{hex}.tier.internal/b: placeholder in the host");
	expect_config_error("https://tier.internal/b?x=1",
			    "a.conf:3: mirrors: https://tier.internal/b: a mirror with a query must be a template ({algo}, {hex} or {digest})");
	expect_config_error("https://tier.internal/b#frag",
			    "a.conf:3: mirrors: https://tier.internal/b: url must not have a fragment");
	expect_config_error("https://tier.internal/a/../{hex}",
			    "a.conf:3: mirrors: https://tier.internal/a/../{hex}: uri has a \".\" or \"..\" dot segment (also as %2e): not a valid registration");
	expect_config_error("https://tier.internal/{hex}?X-Amz-Signature=abc",
			    "a.conf:3: mirrors: https://tier.internal/{hex}: uri query parameter \"x-amz-signature\" carries a credential (not allowed in a uri)");
}

static void test_config_accepts(void **state)
{
	static const char text[] =
		"[fetch]\n"
		"mirrors = http://127.0.0.1:8080/blobs/, http://localhost/cas/{algo}/{hex}\n"
		"mirrors = https://tier.internal/v2/models/blobs/{digest} http://[::1]:9/b\n";
	struct pol_config c;
	char err[256];

	(void)state;
	assert_int_equal(pol_config_init(&c), 0);
	if (pol_config_parse(&c, text, strlen(text), "a.conf", err,
			     sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(c.n_mirrors, 4);
	assert_string_equal(c.mirrors[0], "http://127.0.0.1:8080/blobs/");
	assert_string_equal(c.mirrors[1], "http://localhost/cas/{algo}/{hex}");
	assert_string_equal(c.mirrors[2],
			    "https://tier.internal/v2/models/blobs/{digest}");
	assert_string_equal(c.mirrors[3], "http://[::1]:9/b");
	pol_config_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_expand_sha512_and_limits),
		cmocka_unit_test(test_bad_templates),
		cmocka_unit_test(test_config_refuses),
		cmocka_unit_test(test_config_accepts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
