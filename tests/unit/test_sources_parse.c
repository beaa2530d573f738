/*
 * test_sources_parse.c - the pure HTTP header parsers of sources/
 * (http_parse.c): Content-Range, Retry-After, Content-Length, status lines,
 * header matching and the redirect scheme rule. Negative cases first-class
 * (STYLE.md "Tests").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "policy/af.h"
#include "sources/http_int.h"

static int cr(const char *s, struct http_content_range *out)
{
	return http_parse_content_range(s, strlen(s), out);
}

static void test_content_range_valid(void **state)
{
	struct http_content_range c;

	(void)state;
	assert_int_equal(cr("bytes 0-0/1", &c), 0);
	assert_false(c.unsatisfied);
	assert_int_equal(c.first, 0);
	assert_int_equal(c.last, 0);
	assert_true(c.total_known);
	assert_int_equal(c.total, 1);

	assert_int_equal(cr("  bytes 100-199/1000 \r\n", &c), 0);
	assert_int_equal(c.first, 100);
	assert_int_equal(c.last, 199);
	assert_int_equal(c.total, 1000);

	assert_int_equal(cr("BYTES 5-9/*", &c), 0);
	assert_false(c.total_known);
	assert_int_equal(c.last, 9);

	assert_int_equal(cr("bytes */4096", &c), 0);
	assert_true(c.unsatisfied);
	assert_int_equal(c.total, 4096);

	assert_int_equal(cr("bytes 0-9223372036854775806/9223372036854775807",
			    &c), 0);
	assert_int_equal(c.total, INT64_MAX);
}

static void test_content_range_invalid(void **state)
{
	static const char *const bad[] = {
		"", "bytes", "bytes ", "bytes 0-1", "bytes 0-1/", "bytes -1/5",
		"bytes 1-/5", "bytes 5-4/10", "bytes 0-10/10", "bytes 0-1/1",
		"bytes */*", "bytes 0-1/2x", "bits 0-1/2", "bytes=0-1/2",
		"bytes 0 -1/2", "bytes +0-1/2", "bytes 0-1/-2",
		"bytes 0-9223372036854775808/9223372036854775809",
		"bytes 0-99999999999999999999/1", "bytes 0-1/2, bytes 3-4/5",
	};
	struct http_content_range c = { .first = 77 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cr(bad[i], &c) != AF_EPARSE)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(c.first, 77);	/* untouched */
	}
	assert_int_equal(http_parse_content_range(NULL, 0, &c), AF_EPARSE);
	/* The length bounds the read: "bytes 0-1/2" cut before the total. */
	assert_int_equal(http_parse_content_range("bytes 0-1/2", 10, &c),
			 AF_EPARSE);
}

static void test_retry_after(void **state)
{
	unsigned s = 99;
	/* 1994-11-06T08:49:37Z */
	const long long t = 784111777;

	(void)state;
	assert_int_equal(http_parse_retry_after("1", 1, t, 30, &s), 0);
	assert_int_equal(s, 1);
	assert_int_equal(http_parse_retry_after(" 120 ", 5, t, 30, &s), 0);
	assert_int_equal(s, 30);	/* capped */
	assert_int_equal(http_parse_retry_after("99999999999999999999999", 23,
						t, 30, &s), AF_EPARSE);
	assert_int_equal(http_parse_retry_after(
		"Sun, 06 Nov 1994 08:49:47 GMT", 29, t, 30, &s), 0);
	assert_int_equal(s, 10);
	assert_int_equal(http_parse_retry_after(
		"Sun, 06 Nov 1994 08:49:00 GMT", 29, t, 30, &s), 0);
	assert_int_equal(s, 0);		/* in the past */
	assert_int_equal(http_parse_retry_after(
		"Mon, 07 Nov 1994 08:49:37 GMT", 29, t, 30, &s), 0);
	assert_int_equal(s, 30);
	s = 5;
	assert_int_equal(http_parse_retry_after("-1", 2, t, 30, &s), AF_EPARSE);
	assert_int_equal(http_parse_retry_after("1.5", 3, t, 30, &s), AF_EPARSE);
	assert_int_equal(http_parse_retry_after("soon", 4, t, 30, &s),
			 AF_EPARSE);
	assert_int_equal(http_parse_retry_after(
		"Sun, 06 Nov 1994 25:49:00 GMT", 29, t, 30, &s), AF_EPARSE);
	assert_int_equal(http_parse_retry_after(
		"Sun, 06 Nov 1994 08:49:00 UTC", 29, t, 30, &s), AF_EPARSE);
	assert_int_equal(http_parse_retry_after("", 0, t, 30, &s), AF_EPARSE);
	assert_int_equal(s, 5);
}

static void test_u64_and_status(void **state)
{
	uint64_t v = 0;
	int st = 0;

	(void)state;
	assert_int_equal(http_parse_u64(" 42\r\n", 5, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(http_parse_u64("", 0, &v), AF_EPARSE);
	assert_int_equal(http_parse_u64("4 2", 3, &v), AF_EPARSE);
	assert_int_equal(http_parse_u64("-1", 2, &v), AF_EPARSE);
	assert_int_equal(http_parse_u64("18446744073709551616", 20, &v),
			 AF_EPARSE);

	assert_int_equal(http_parse_status_line("HTTP/1.1 206 Partial\r\n", 22,
						&st), 0);
	assert_int_equal(st, 206);
	assert_int_equal(http_parse_status_line("HTTP/2 200\r\n", 12, &st), 0);
	assert_int_equal(st, 200);
	assert_int_equal(http_parse_status_line("HTTP/1.1 20\r\n", 13, &st),
			 AF_EPARSE);
	assert_int_equal(http_parse_status_line("HTTP/1.1 2000\r\n", 15, &st),
			 AF_EPARSE);
	assert_int_equal(http_parse_status_line("Content-Length: 5\r\n", 19,
						&st), AF_EPARSE);
	assert_int_equal(http_parse_status_line("HTTP/x 200", 10, &st),
			 AF_EPARSE);
}

static void test_header_value(void **state)
{
	const char *line = "content-range:  bytes 0-1/2 \r\n";
	const char *v;
	size_t n;

	(void)state;
	assert_true(http_header_value(line, strlen(line), "Content-Range",
				      &v, &n));
	assert_int_equal(n, 11);
	assert_memory_equal(v, "bytes 0-1/2", 11);
	line = "Content-Range-X: 1\r\n";
	assert_false(http_header_value(line, strlen(line), "Content-Range",
				       &v, &n));
	line = "Content-Rang";
	assert_false(http_header_value(line, strlen(line), "Content-Range",
				       &v, &n));
}

static void test_redirect_protocols(void **state)
{
	(void)state;
	assert_string_equal(http_redirect_protocols("https://a/b"), "https");
	assert_string_equal(http_redirect_protocols("HTTPS://a/b"), "https");
	assert_string_equal(http_redirect_protocols("http://a/b"),
			    "http,https");
	assert_null(http_redirect_protocols("ftp://a/b"));
	assert_null(http_redirect_protocols("file:///a"));
	assert_null(http_redirect_protocols(NULL));

	/* https never falls back to cleartext; http may go up to https. */
	assert_true(http_redirect_allowed("https://a/b", "https://c/d"));
	assert_false(http_redirect_allowed("https://a/b", "http://a/b"));
	assert_false(http_redirect_allowed("https://a/b", "HTTP://a/b"));
	assert_true(http_redirect_allowed("http://a/b", "http://c/d"));
	assert_true(http_redirect_allowed("http://a/b", "https://c/d"));
	assert_false(http_redirect_allowed("http://a/b", "ftp://c/d"));
	assert_false(http_redirect_allowed("http://a/b", "file:///etc/passwd"));
	assert_false(http_redirect_allowed("ftp://a/b", "https://c/d"));
	assert_false(http_redirect_allowed("https://a/b", NULL));

	/* The rule says which refusal it is (DESIGN §5b). */
	assert_int_equal(http_redirect_check("https://a/b", "http://a/b"),
			 HTTP_REDIRECT_DOWNGRADE);
	assert_int_equal(http_redirect_check("HTTPS://a/b", "http://c:80/d"),
			 HTTP_REDIRECT_DOWNGRADE);
	assert_int_equal(http_redirect_check("http://a/b", "http://c/d"),
			 HTTP_REDIRECT_OK);
	assert_int_equal(http_redirect_check("https://a/b", "https://c/d"),
			 HTTP_REDIRECT_OK);
	assert_int_equal(http_redirect_check("https://a/b", "ftp://c/d"),
			 HTTP_REDIRECT_SCHEME);
	assert_int_equal(http_redirect_check("https://a/b", "//c/d"),
			 HTTP_REDIRECT_SCHEME);
	assert_int_equal(http_redirect_check("https://a/b", "httpx://c/d"),
			 HTTP_REDIRECT_SCHEME);
	assert_int_equal(http_redirect_check(NULL, "https://c/d"),
			 HTTP_REDIRECT_SCHEME);
	assert_string_equal(http_redirect_refusal(HTTP_REDIRECT_DOWNGRADE),
			    "redirect from https to http refused");
	assert_string_equal(http_redirect_refusal(HTTP_REDIRECT_SCHEME),
			    "redirect to a refused scheme");
}

static void test_head_find(void **state)
{
	static const char head[] =
		"Content-Length: 12\r\n"
		"garbage line without colon\r\n"
		"X-Repo-Commit:  0123abcd \r\n"
		"x-linked-size: 77\r\n"
		"X-Linked-Etag: \"a\"\r\n"
		"\r\n";
	const char *v;
	size_t n;

	(void)state;
	assert_true(http_head_find(head, sizeof(head) - 1, "X-Repo-Commit",
				   &v, &n));
	assert_int_equal(n, 8);
	assert_memory_equal(v, "0123abcd", 8);
	/* Case-insensitive names; the first match wins. */
	assert_true(http_head_find(head, sizeof(head) - 1, "X-LINKED-SIZE",
				   &v, &n));
	assert_memory_equal(v, "77", 2);
	assert_true(http_head_find(head, sizeof(head) - 1, "X-Linked-Etag",
				   &v, &n));
	assert_int_equal(n, 3);
	/* A prefix of a name is not the name. */
	assert_false(http_head_find(head, sizeof(head) - 1, "X-Linked",
				    &v, &n));
	assert_false(http_head_find(head, sizeof(head) - 1, "ETag", &v, &n));
	/* Bounded by the length given: no line past it. */
	assert_false(http_head_find(head, 20, "X-Repo-Commit", &v, &n));
	assert_true(http_head_find(head, 18, "Content-Length", &v, &n));
	assert_int_equal(n, 2);
	/* A last line without its end. */
	assert_true(http_head_find("A: 1\r\nB: 22", 11, "B", &v, &n));
	assert_int_equal(n, 2);
	assert_false(http_head_find("", 0, "A", &v, &n));
	assert_false(http_head_find(NULL, 0, "A", &v, &n));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_range_valid),
		cmocka_unit_test(test_content_range_invalid),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_u64_and_status),
		cmocka_unit_test(test_header_value),
		cmocka_unit_test(test_redirect_protocols),
		cmocka_unit_test(test_head_find),
	};

	return cmocka_run_group_tests_name("sources_parse", tests, NULL, NULL);
}
