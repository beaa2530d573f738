/*
 * test_policy_digest.c - digests, enum names, name rules, error codes,
 * timestamps (policy/digest.c, policy/af.c, policy/util.c).
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
#include "policy/policy.h"

#define HEX64 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static void test_digest_valid(void **state)
{
	struct pol_digest d, e;
	char err[256];
	char s512[8 + 128 + 1];

	(void)state;
	assert_int_equal(pol_digest_parse("sha256:" HEX64, &d, err,
					  sizeof(err)), 0);
	assert_int_equal(d.algo, POL_ALGO_SHA256);
	assert_int_equal(d.raw_len, 32);
	assert_int_equal(d.raw[0], 0x9f);
	assert_int_equal(d.raw[31], 0x08);
	assert_string_equal(d.str, "sha256:" HEX64);
	assert_string_equal(pol_digest_hex(&d), HEX64);

	assert_int_equal(pol_digest_from_raw(POL_ALGO_SHA256, d.raw, 32, &e),
			 0);
	assert_string_equal(e.str, d.str);
	assert_true(pol_digest_equal(&d, &e));

	memcpy(s512, "sha512:", 7);
	for (int i = 0; i < 128; i++)
		s512[7 + i] = "0123456789abcdef"[i % 16];
	s512[135] = '\0';
	assert_int_equal(pol_digest_parse(s512, &d, NULL, 0), 0);
	assert_int_equal(d.algo, POL_ALGO_SHA512);
	assert_int_equal(d.raw_len, 64);
	assert_false(pol_digest_equal(&d, &e));
	assert_int_equal(pol_digest_from_raw(POL_ALGO_SHA512, d.raw, 64, &e),
			 0);
	assert_string_equal(e.str, s512);
	assert_int_equal(pol_digest_from_raw(POL_ALGO_SHA512, d.raw, 32, &e),
			 AF_EPARSE);
	assert_int_equal(pol_digest_from_raw((enum pol_algo)9, d.raw, 32, &e),
			 AF_EPARSE);
}

static void expect_bad(const char *s, const char *msg)
{
	struct pol_digest d;
	char err[256];

	memset(err, 0, sizeof(err));
	assert_int_equal(pol_digest_parse(s, &d, err, sizeof(err)), AF_EPARSE);
	if (!strstr(err, msg))
		fail_msg("digest \"%s\": got \"%s\", want \"%s\"", s, err, msg);
}

static void test_digest_invalid(void **state)
{
	(void)state;
	expect_bad("", "empty digest");
	expect_bad(NULL, "empty digest");
	expect_bad("md5:d41d8cd98f00b204e9800998ecf8427e",
		   "unknown algorithm \"md5\"");
	expect_bad("SHA256:" HEX64, "unknown algorithm \"SHA256\"");
	expect_bad(":" HEX64, "unknown algorithm");
	expect_bad("sha256" HEX64, "missing \":\"");
	expect_bad("sha256:" "9F86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		   "uppercase hex not allowed");
	expect_bad("sha256:" "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0",
		   "sha256 needs 64 hex digits, got 63");
	expect_bad("sha256:" HEX64 "0", "sha256 needs 64 hex digits, got 65");
	expect_bad("sha256:", "sha256 needs 64 hex digits, got 0");
	expect_bad("sha512:" HEX64, "sha512 needs 128 hex digits, got 64");
	expect_bad("sha256:" "zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		   "invalid character");
	expect_bad("sha256: " HEX64, "invalid character");
	expect_bad("sha256:" HEX64 "\n", "invalid character");
	expect_bad("averyveryverylongalgorithmname:00", "unknown algorithm");
	/* NULL err is allowed. */
	assert_int_equal(pol_digest_parse("x", &(struct pol_digest){ 0 }, NULL,
					  0), AF_EPARSE);
}

static void test_enum_names(void **state)
{
	enum pol_source_type t;
	enum pol_lifecycle l;
	enum pol_trust tr;
	enum pol_algo a;

	(void)state;
	assert_string_equal(pol_algo_name(POL_ALGO_SHA512), "sha512");
	assert_null(pol_algo_name((enum pol_algo)0));
	assert_int_equal(pol_algo_parse("sha256", &a), 0);
	assert_int_equal(a, POL_ALGO_SHA256);
	assert_int_equal(pol_algo_parse("SHA256", &a), AF_EPARSE);
	assert_int_equal(pol_algo_parse(NULL, &a), AF_EPARSE);

	static const char *const types[] = { "s3", "gcs", "azure_blob",
					     "https", "huggingface",
					     "artifact_store", "file" };
	for (size_t i = 0; i < 7; i++) {
		assert_int_equal(pol_source_type_parse(types[i], &t), 0);
		assert_string_equal(pol_source_type_name(t), types[i]);
	}
	assert_int_equal(pol_source_type_parse("ftp", &t), AF_EPARSE);
	assert_int_equal(pol_source_type_parse("", &t), AF_EPARSE);
	assert_null(pol_source_type_name((enum pol_source_type)99));
	assert_null(pol_source_type_name((enum pol_source_type)-1));

	assert_int_equal(pol_lifecycle_parse("deprecated", &l), 0);
	assert_int_equal(l, POL_LC_DEPRECATED);
	assert_string_equal(pol_lifecycle_name(POL_LC_REVOKED), "revoked");
	assert_int_equal(pol_lifecycle_parse("Active", &l), AF_EPARSE);

	assert_int_equal(pol_trust_parse("attested", &tr), 0);
	assert_int_equal(tr, POL_TRUST_ATTESTED);
	assert_true(POL_TRUST_UNTRUSTED < POL_TRUST_VERIFIED);
	assert_int_equal(pol_trust_parse("trusted", &tr), AF_EPARSE);
	assert_string_equal(pol_trust_name(POL_TRUST_UNTRUSTED), "untrusted");
}

static void test_names(void **state)
{
	char buf[256];

	(void)state;
	assert_true(pol_project_valid("vision"));
	assert_true(pol_project_valid("0a-b"));
	assert_false(pol_project_valid("-vision"));
	assert_false(pol_project_valid("Vision"));
	assert_false(pol_project_valid(""));
	assert_false(pol_project_valid(NULL));
	assert_false(pol_project_valid("a_b"));
	assert_false(pol_project_valid("a/b"));
	memset(buf, 'a', 63);
	buf[63] = '\0';
	assert_true(pol_project_valid(buf));
	buf[63] = 'a';
	buf[64] = '\0';
	assert_false(pol_project_valid(buf));

	assert_true(pol_name_valid("resnet50.safetensors"));
	assert_true(pol_name_valid("A_b-c.9"));
	assert_false(pol_name_valid(".hidden"));
	assert_false(pol_name_valid("."));
	assert_false(pol_name_valid(".."));
	assert_false(pol_name_valid("a/b"));
	assert_false(pol_name_valid("a@b"));
	assert_false(pol_name_valid("a b"));
	assert_false(pol_name_valid(""));
	assert_false(pol_name_valid("caf\xc3\xa9"));
	memset(buf, 'x', 200);
	buf[200] = '\0';
	assert_true(pol_name_valid(buf));
	buf[200] = 'x';
	buf[201] = '\0';
	assert_false(pol_name_valid(buf));

	assert_true(pol_channel_valid("prod"));
	assert_true(pol_channel_valid("staging-2"));
	assert_false(pol_channel_valid("Prod"));
	assert_false(pol_channel_valid(""));
	assert_false(pol_channel_valid("a_b"));
	assert_false(pol_channel_valid(NULL));
}

static void test_errors(void **state)
{
	(void)state;
	assert_int_equal(af_errno(0), 0);
	assert_int_equal(af_errno(AF_EDIGEST), EIO);
	assert_int_equal(af_errno(AF_ESIZE), EIO);
	assert_int_equal(af_errno(AF_ESOURCE), EIO);
	assert_int_equal(af_errno(AF_EQUARANTINE), EIO);
	assert_int_equal(af_errno(AF_ETIMEDOUT), EIO);
	assert_int_equal(af_errno(AF_EDENIED), EACCES);
	assert_int_equal(af_errno(AF_ECRED), EACCES);
	assert_int_equal(af_errno(AF_EUNREG), ENOENT);
	assert_int_equal(af_errno(AF_EPARSE), EINVAL);
	assert_int_equal(af_errno(-ENOSPC), ENOSPC);
	assert_int_equal(af_errno(-EAGAIN), EAGAIN);
	assert_int_equal(af_errno(AF_EBASE - 100), EIO);
	assert_int_equal(af_errno(5), EIO);

	assert_string_equal(af_strerror(AF_EDIGEST), "digest mismatch");
	assert_string_equal(af_strerror(AF_EDENIED), "denied by policy");
	assert_string_equal(af_strerror(-ENOENT), "No such file or directory");
	assert_non_null(af_strerror(AF_EBASE - 100));
	assert_non_null(af_strerror(-4000));
	for (int e = AF_ETIMEDOUT; e <= 0; e++)
		assert_non_null(af_strerror(e));
}

static void test_rfc3339(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(af_rfc3339(0, buf, sizeof(buf)),
			    "1970-01-01T00:00:00Z");
	assert_string_equal(af_rfc3339(1773057600, buf, sizeof(buf)),
			    "2026-03-09T12:00:00Z");
	assert_string_equal(af_rfc3339(1773057600, buf, 21),
			    "2026-03-09T12:00:00Z");
	/* Too small a buffer gives an empty string, never an overflow. */
	assert_string_equal(af_rfc3339(1773057600, buf, 20), "");
	assert_true(af_now_ms() > 0);
	assert_true(af_wall_ms() > 1700000000000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_valid),
		cmocka_unit_test(test_digest_invalid),
		cmocka_unit_test(test_enum_names),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_rfc3339),
	};

	return cmocka_run_group_tests_name("policy_digest", tests, NULL, NULL);
}
