/*
 * test_sources_sigv4.c - AWS Signature Version 4 (sources/sigv4.c).
 *
 * 1. Every case of the aws-c-auth signing test suite, read at test time
 *    from $AF_SIGV4_DIR (make sets it from SIGV4_TESTDATA, by default
 *    ../shared/testdata/aws-sigv4 beside the repository): header and
 *    query (presigned) forms; canonical request, string to sign,
 *    signature, Authorization header and signed request line compared.
 *    "normalize": false is how S3 signs.
 * 2. The S3 documentation's GET-with-Range example.
 * 3. Requests that cannot be signed.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "policy/af.h"
#include "sources/sigv4_int.h"

static char *read_text(const char *dir, const char *name)
{
	char path[4096];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The suite's files have no trailing newline, but tolerate one. */
static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

struct test_req {
	char *method;
	char *target;		/* path[?query] as written */
	char *path;
	char *query;		/* NULL when none */
	struct sigv4_header hdrs[32];
	char *names[32];
	char *values[32];
	size_t n;
	char *body;
	size_t body_len;
};

/*
 * request.txt: "METHOD target HTTP/1.1", "Name:value" lines (a line that
 * starts with whitespace continues the previous value), an empty line,
 * the body.
 */
static void parse_request(char *text, struct test_req *rq)
{
	char *line = text, *nl, *sp1, *sp2;

	memset(rq, 0, sizeof(*rq));
	nl = strchr(line, '\n');
	assert_non_null(nl);
	*nl = '\0';
	sp1 = strchr(line, ' ');
	sp2 = strrchr(line, ' ');
	assert_true(sp1 && sp2 && sp1 < sp2);
	rq->method = strndup(line, (size_t)(sp1 - line));
	rq->target = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	rq->path = strdup(rq->target);
	if (strchr(rq->path, '?')) {
		*strchr(rq->path, '?') = '\0';
		rq->query = strdup(strchr(rq->target, '?') + 1);
	}
	line = nl + 1;
	while (*line) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (*line == '\0' || *line == '\r') {
			if (nl) {
				rq->body = nl + 1;
				rq->body_len = strlen(rq->body);
			}
			break;
		}
		if (*line == ' ' || *line == '\t') {
			char *v = rq->values[rq->n - 1], *nv;

			assert_true(rq->n > 0);
			assert_true(asprintf(&nv, "%s %s", v, line) > 0);
			free(v);
			rq->values[rq->n - 1] = nv;
		} else {
			char *colon = strchr(line, ':');

			assert_non_null(colon);
			assert_true(rq->n < 32);
			rq->names[rq->n] = strndup(line, (size_t)(colon - line));
			rq->values[rq->n] = strdup(colon + 1);
			rq->n++;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	for (size_t i = 0; i < rq->n; i++) {
		rq->hdrs[i].name = rq->names[i];
		rq->hdrs[i].value = rq->values[i];
	}
}

static void free_request(struct test_req *rq)
{
	free(rq->method);
	free(rq->target);
	free(rq->path);
	free(rq->query);
	for (size_t i = 0; i < rq->n; i++) {
		free(rq->names[i]);
		free(rq->values[i]);
	}
}

static void sha256_hex(const char *s, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int len;

	assert_true(EVP_Digest(s, n, md, &len, EVP_sha256(), NULL));
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static long long parse_time(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return (long long)timegm(&tm);
}

static void expect_file(const char *dir, const char *name, const char *got,
			const char *casename)
{
	char *want = read_text(dir, name);

	if (!want)
		fail_msg("%s: cannot read %s", casename, name);
	chomp(want);
	if (strcmp(want, got) != 0)
		fail_msg("%s: %s differs:\n--- want\n%s\n--- got\n%s", casename,
			 name, want, got);
	free(want);
}

/* The first line of a signed request file, and the Authorization value. */
static char *signed_line(const char *dir, const char *name,
			 const char *prefix)
{
	char *text = read_text(dir, name), *line, *out = NULL;

	assert_non_null(text);
	for (line = text; line && *line;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		chomp(line);
		if (!prefix || strncmp(line, prefix, strlen(prefix)) == 0) {
			out = strdup(prefix ? line + strlen(prefix) : line);
			break;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return out;
}

static void run_case(const char *suite, const char *name)
{
	char dir[4096], hash[65], *ctx_text, *req_text, *want;
	struct sigv4_header hdrs[40];
	struct sigv4_request rq;
	struct sigv4_result res;
	struct sigv4_key key = { 0 };
	struct test_req tr;
	json_t *ctx, *creds;
	json_error_t jerr;
	bool sign_body, omit;
	unsigned expires;
	size_t n;
	int flags;

	snprintf(dir, sizeof(dir), "%s/%s", suite, name);
	ctx_text = read_text(dir, "context.json");
	req_text = read_text(dir, "request.txt");
	assert_non_null(ctx_text);
	assert_non_null(req_text);
	ctx = json_loads(ctx_text, 0, &jerr);
	assert_non_null(ctx);
	creds = json_object_get(ctx, "credentials");
	key.access_key_id = json_string_value(json_object_get(creds, "access_key_id"));
	key.secret_access_key = json_string_value(json_object_get(creds, "secret_access_key"));
	key.session_token = json_string_value(json_object_get(creds, "token"));
	sign_body = json_is_true(json_object_get(ctx, "sign_body"));
	omit = json_is_true(json_object_get(ctx, "omit_session_token"));
	flags = omit ? SIGV4_TOKEN_UNSIGNED : 0;
	expires = (unsigned)json_integer_value(json_object_get(ctx, "expiration_in_seconds"));
	parse_request(req_text, &tr);
	sha256_hex(tr.body ? tr.body : "", tr.body_len, hash);

	memset(&rq, 0, sizeof(rq));
	rq.method = tr.method;
	rq.path = tr.path;
	rq.query = tr.query;
	rq.normalize = json_is_true(json_object_get(ctx, "normalize"));
	rq.payload_hash = hash;
	rq.region = json_string_value(json_object_get(ctx, "region"));
	rq.service = json_string_value(json_object_get(ctx, "service"));
	rq.time_s = parse_time(json_string_value(json_object_get(ctx, "timestamp")));

	/* Header form. */
	memcpy(hdrs, tr.hdrs, tr.n * sizeof(hdrs[0]));
	n = tr.n;
	if (sign_body) {
		hdrs[n].name = "x-amz-content-sha256";
		hdrs[n++].value = hash;
	}
	rq.headers = hdrs;
	rq.n_headers = n;
	if (sigv4_sign_headers(&rq, &key, flags, &res) != 0)
		fail_msg("%s: header form: cannot sign", name);
	expect_file(dir, "header-canonical-request.txt", res.canonical_request, name);
	expect_file(dir, "header-string-to-sign.txt", res.string_to_sign, name);
	expect_file(dir, "header-signature.txt", res.signature, name);
	want = signed_line(dir, "header-signed-request.txt", "Authorization:");
	assert_non_null(want);
	if (strcmp(want, res.authorization) != 0)
		fail_msg("%s: Authorization: want %s, got %s", name, want,
			 res.authorization);
	free(want);
	want = signed_line(dir, "header-signed-request.txt", "X-Amz-Date:");
	assert_non_null(want);
	assert_string_equal(want, res.amz_date);
	free(want);
	sigv4_result_release(&res);

	/* Query form: the request's own headers only. */
	rq.headers = tr.hdrs;
	rq.n_headers = tr.n;
	if (sigv4_presign(&rq, &key, expires, flags, &res) != 0)
		fail_msg("%s: query form: cannot sign", name);
	expect_file(dir, "query-canonical-request.txt", res.canonical_request, name);
	expect_file(dir, "query-string-to-sign.txt", res.string_to_sign, name);
	expect_file(dir, "query-signature.txt", res.signature, name);
	{
		char *line = signed_line(dir, "query-signed-request.txt", NULL);
		char *got;

		assert_true(asprintf(&got, "%s %s%s%s HTTP/1.1", tr.method,
				     tr.target, tr.query ? "&" : "?",
				     res.query) > 0);
		if (strcmp(line, got) != 0)
			fail_msg("%s: signed request line:\n want %s\n got  %s",
				 name, line, got);
		free(got);
		free(line);
	}
	sigv4_result_release(&res);

	free_request(&tr);
	json_decref(ctx);
	free(ctx_text);
	free(req_text);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_suite(void **state)
{
	const char *suite = getenv("AF_SIGV4_DIR");
	char *names[128];
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	(void)state;
	if (!suite || !*suite) {
		print_message("SKIP: AF_SIGV4_DIR not set (make sets it from SIGV4_TESTDATA)\n");
		skip();
	}
	d = opendir(suite);
	if (!d)
		fail_msg("AF_SIGV4_DIR=%s: %s", suite, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char probe[4096];
		FILE *f;

		snprintf(probe, sizeof(probe), "%s/%s/request.txt", suite,
			 de->d_name);
		f = fopen(probe, "r");
		if (!f)
			continue;
		fclose(f);
		assert_true(n < 128);
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), name_cmp);
	/* The suite as published holds 38 cases: all of them run. */
	if (n < 38)
		fail_msg("%s: %zu cases, want the 38 of the suite", suite, n);
	for (size_t i = 0; i < n; i++) {
		run_case(suite, names[i]);
		free(names[i]);
	}
	print_message("sigv4: %zu cases, header and query forms\n", n);
}

/*
 * "Example: GET Object" of the S3 documentation (Signature Version 4,
 * header form): the first 10 bytes of test.txt, UNSIGNED is not used
 * there; the payload hash is the empty body's.
 */
static void test_s3_get_range(void **state)
{
	static const char empty[] =
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	const struct sigv4_header hdrs[] = {
		{ "Host", "examplebucket.s3.amazonaws.com" },
		{ "Range", "bytes=0-9" },
		{ "x-amz-content-sha256", empty },
	};
	const struct sigv4_request rq = {
		.method = "GET",
		.path = "/test.txt",
		.normalize = false,
		.headers = hdrs,
		.n_headers = 3,
		.payload_hash = empty,
		.region = "us-east-1",
		.service = "s3",
		.time_s = 1369353600,	/* 20130524T000000Z */
	};
	const struct sigv4_key key = {
		.access_key_id = "AKIAIOSFODNN7EXAMPLE",
		.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	};
	struct sigv4_result res;

	(void)state;
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), 0);
	assert_string_equal(res.amz_date, "20130524T000000Z");
	assert_string_equal(res.canonical_request,
			    "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
			    "range:bytes=0-9\n"
			    "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
			    "x-amz-date:20130524T000000Z\n\n"
			    "host;range;x-amz-content-sha256;x-amz-date\n"
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_string_equal(res.signature,
			    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	assert_string_equal(res.authorization,
			    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
			    "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
			    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	sigv4_result_release(&res);
}

/* S3's shape: UNSIGNED-PAYLOAD, a session token signed, keys as is. */
static void test_s3_unsigned_token(void **state)
{
	const struct sigv4_header hdrs[] = {
		{ "host", "127.0.0.1:9000" },
		{ "range", "bytes=0-1023" },
		{ "x-amz-content-sha256", "UNSIGNED-PAYLOAD" },
	};
	struct sigv4_request rq = {
		.method = "GET",
		.path = "/ml-weights/a b/../c+d",
		.normalize = false,
		.query = "versionId=a+b%2F",
		.headers = hdrs,
		.n_headers = 3,
		.payload_hash = "UNSIGNED-PAYLOAD",
		.region = "us-east-1",
		.service = "s3",
		.time_s = 1369353600,
	};
	const struct sigv4_key key = {
		.access_key_id = "AKID",
		.secret_access_key = "secret",
		.session_token = "tok/en+=",
	};
	struct sigv4_result res;
	char *p;

	(void)state;
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), 0);
	assert_non_null(strstr(res.canonical_request,
			       "GET\n/ml-weights/a%20b/../c%2Bd\nversionId=a%2Bb%2F\n"));
	assert_non_null(strstr(res.canonical_request,
			       "x-amz-security-token:tok/en+=\n\n"
			       "host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token\n"
			       "UNSIGNED-PAYLOAD"));
	assert_string_equal(res.signed_headers,
			    "host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token");
	sigv4_result_release(&res);
	p = sigv4_encode_path(rq.path, 4096);
	assert_string_equal(p, "/ml-weights/a%20b/../c%2Bd");
	free(p);
	p = sigv4_canonical_query("b=2&a=x y&a=1&c", 4096);
	assert_string_equal(p, "a=1&a=x%20y&b=2&c=");
	free(p);
	p = sigv4_canonical_query(NULL, 4096);
	assert_string_equal(p, "");
	free(p);
	assert_null(sigv4_canonical_query("a=%zz", 4096));
	p = sigv4_encode_path("", 4096);
	assert_string_equal(p, "/");
	free(p);
	assert_null(sigv4_encode_path("/aaaaaaaa", 4));
}

static void test_unsignable(void **state)
{
	struct sigv4_header hdrs[] = {
		{ "host", "h" },
		{ "x", "v" },
	};
	struct sigv4_request rq = {
		.method = "GET",
		.path = "/a",
		.headers = hdrs,
		.n_headers = 2,
		.payload_hash = "UNSIGNED-PAYLOAD",
		.region = "us-east-1",
		.service = "s3",
		.time_s = 1369353600,
	};
	struct sigv4_key key = { .access_key_id = "AK", .secret_access_key = "s" };
	struct sigv4_result res;

	(void)state;
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), 0);
	sigv4_result_release(&res);
	/* No Host. */
	hdrs[0].name = "hostx";
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), AF_EPARSE);
	hdrs[0].name = "host";
	/* Bad header name or value. */
	hdrs[1].name = "a b";
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), AF_EPARSE);
	hdrs[1].name = "";
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), AF_EPARSE);
	hdrs[1].name = "x";
	hdrs[1].value = "a\001b";
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), AF_EPARSE);
	hdrs[1].value = "v";
	/* Path and query. */
	rq.path = "a";
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), AF_EPARSE);
	rq.path = "/a";
	rq.query = "x=%4";
	assert_int_equal(sigv4_presign(&rq, &key, 60, 0, &res), AF_EPARSE);
	rq.query = NULL;
	/* Separators in the credential scope. */
	rq.region = "us/east";
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), AF_EPARSE);
	rq.region = "us-east-1";
	key.access_key_id = "AK,x";
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), AF_EPARSE);
	key.access_key_id = NULL;
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), AF_EPARSE);
	key.access_key_id = "AK";
	rq.method = "G T";
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), AF_EPARSE);
	rq.method = "GET";
	/* Out of range time. */
	rq.time_s = -100000000000LL;
	assert_int_equal(sigv4_sign_headers(&rq, &key, 0, &res), AF_EPARSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suite),
		cmocka_unit_test(test_s3_get_range),
		cmocka_unit_test(test_s3_unsigned_token),
		cmocka_unit_test(test_unsignable),
	};

	return cmocka_run_group_tests_name("sources_sigv4", tests, NULL, NULL);
}
