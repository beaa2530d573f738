/*
 * test_sources_file.c - the `file` source type (local development): size,
 * full and partial ranges equal to the file, ranges past the end, a missing
 * file, malformed URIs, unsupported types, and an on_data abort.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/af.h"
#include "policy/config.h"
#include "policy/policy.h"
#include "sources/source.h"

#define BLOB_SIZE	(3 * 1024 * 1024 + 17)	/* crosses the 1 MiB chunks */

struct fixture {
	char dir[64];
	char path[128];
	char uri[160];
	unsigned char *data;
	struct pol_config cfg;
	struct src_ctx *ctx;
};

struct sink {
	unsigned char *buf;
	uint64_t off, len, got;
	int calls_done;
	int err;
	char reason[128];
	bool order_ok;
	int abort_after;	/* on_data calls before returning an error */
	int data_calls;
};

static int sink_data(void *arg, uint64_t off, const void *buf, size_t len)
{
	struct sink *k = arg;

	if (off != k->off + k->got || k->got + len > k->len) {
		k->order_ok = false;
		return -EIO;
	}
	memcpy(k->buf + k->got, buf, len);
	k->got += len;
	if (k->abort_after && ++k->data_calls >= k->abort_after)
		return -EPIPE;
	return 0;
}

static void sink_done(void *arg, int err, const char *reason)
{
	struct sink *k = arg;

	k->calls_done++;
	k->err = err;
	snprintf(k->reason, sizeof(k->reason), "%s", reason ? reason : "");
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/af-srcfile-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/blob", f->dir);
	snprintf(f->uri, sizeof(f->uri), "file://%s", f->path);
	f->data = malloc(BLOB_SIZE);
	assert_non_null(f->data);
	for (size_t i = 0; i < BLOB_SIZE; i++)
		f->data[i] = (unsigned char)(i * 2654435761u >> 13);
	fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f->data, BLOB_SIZE), BLOB_SIZE);
	close(fd);
	f->cfg.fetch_connections = 2;
	f->cfg.fetch_retries = 1;
	f->cfg.connect_timeout_ms = 1000;
	f->cfg.low_speed_timeout_ms = 1000;
	assert_int_equal(src_ctx_new(&f->cfg, NULL, &f->ctx), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	src_ctx_free(f->ctx);
	unlink(f->path);
	rmdir(f->dir);
	free(f->data);
	free(f);
	return 0;
}

static struct src *open_uri(struct fixture *f, const char *uri)
{
	struct pol_registration r = { 0 };
	struct src *s = NULL;

	r.source_type = POL_SRC_FILE;
	r.uri = (char *)uri;
	assert_int_equal(src_open(f->ctx, &r, &s), 0);
	return s;
}

static void read_ok(struct src *s, const unsigned char *want, uint64_t off,
		    uint64_t len)
{
	struct sink k = { .off = off, .len = len, .order_ok = true };
	struct src_range_cb cb = { sink_data, sink_done, &k, NULL };

	k.buf = malloc(len ? len : 1);
	assert_non_null(k.buf);
	assert_int_equal(src_read_range(s, off, len, &cb), 0);
	assert_int_equal(k.calls_done, 1);
	assert_int_equal(k.err, 0);
	assert_true(k.order_ok);
	assert_int_equal(k.got, len);
	assert_memory_equal(k.buf, want + off, len);
	free(k.buf);
}

static void test_file_size_and_ranges(void **state)
{
	struct fixture *f = *state;
	struct src_stats st;
	uint64_t size = 0;
	char reason[64];
	struct src *s = open_uri(f, f->uri);

	assert_int_equal(src_size(s, &size, reason, sizeof(reason)), 0);
	assert_int_equal(size, BLOB_SIZE);
	read_ok(s, f->data, 0, BLOB_SIZE);
	read_ok(s, f->data, 0, 1);
	read_ok(s, f->data, BLOB_SIZE - 1, 1);
	read_ok(s, f->data, 1024 * 1024 - 3, 1024 * 1024 + 9);
	read_ok(s, f->data, 12345, 0);
	src_ctx_stats(f->ctx, &st);
	assert_true(st.bytes >= BLOB_SIZE);
	assert_string_equal(src_redacted_uri(s), f->uri);
	assert_false(src_range_ignored(s));
	src_close(s);
}

static void test_file_past_end(void **state)
{
	struct fixture *f = *state;
	struct src *s = open_uri(f, f->uri);
	struct sink k = { .off = BLOB_SIZE - 10, .len = 20, .order_ok = true };
	struct src_range_cb cb = { sink_data, sink_done, &k, NULL };

	k.buf = malloc(20);
	assert_int_equal(src_read_range(s, k.off, k.len, &cb), 0);
	assert_int_equal(k.calls_done, 1);
	assert_int_equal(k.err, AF_ESIZE);
	assert_int_equal(k.got, 10);	/* a prefix, never a wrong byte */
	assert_memory_equal(k.buf, f->data + k.off, 10);
	free(k.buf);
	src_close(s);
}

static void test_file_missing(void **state)
{
	struct fixture *f = *state;
	char uri[200], reason[64] = "";
	struct sink k = { .len = 10, .order_ok = true };
	struct src_range_cb cb = { sink_data, sink_done, &k, NULL };
	uint64_t size = 0;
	struct src *s;

	snprintf(uri, sizeof(uri), "file://%s/nope", f->dir);
	s = open_uri(f, uri);
	assert_int_equal(src_size(s, &size, reason, sizeof(reason)), -ENOENT);
	assert_non_null(strstr(reason, "open"));
	k.buf = malloc(10);
	assert_int_equal(src_read_range(s, 0, 10, &cb), 0);
	assert_int_equal(k.calls_done, 1);
	assert_int_equal(k.err, -ENOENT);
	assert_int_equal(k.got, 0);
	free(k.buf);
	src_close(s);
}

static void test_file_abort(void **state)
{
	struct fixture *f = *state;
	struct src *s = open_uri(f, f->uri);
	struct sink k = { .len = BLOB_SIZE, .order_ok = true, .abort_after = 1 };
	struct src_range_cb cb = { sink_data, sink_done, &k, NULL };

	k.buf = malloc(BLOB_SIZE);
	assert_int_equal(src_read_range(s, 0, BLOB_SIZE, &cb), 0);
	assert_int_equal(k.calls_done, 1);
	assert_int_equal(k.err, -EPIPE);
	assert_true(k.got <= 1024 * 1024);	/* bounded chunks */
	free(k.buf);
	src_close(s);
}

static void test_bad_uris_and_types(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"file://relative/path", "file:relative", "http://x/y",
		"file:///a?b", "file:///a%00b", "file:///a%zz",
	};
	struct pol_registration r = { 0 };
	struct src *s = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r.source_type = POL_SRC_FILE;
		r.uri = (char *)bad[i];
		if (src_open(f->ctx, &r, &s) != AF_EPARSE)
			fail_msg("accepted %s", bad[i]);
	}
	/* The object stores open without I/O (issue 7)… */
	r.uri = (char *)"s3://bucket/key";
	r.source_type = POL_SRC_S3;
	assert_int_equal(src_open(f->ctx, &r, &s), 0);
	src_close(s);
	r.uri = (char *)"gs://bucket/key";
	r.source_type = POL_SRC_GCS;
	assert_int_equal(src_open(f->ctx, &r, &s), 0);
	src_close(s);
	r.uri = (char *)"https://acct.blob.core.windows.net/c0n/b";
	r.source_type = POL_SRC_AZURE_BLOB;
	assert_int_equal(src_open(f->ctx, &r, &s), 0);
	src_close(s);
	/* …and refuse a URI of another form. */
	r.source_type = POL_SRC_S3;
	assert_int_equal(src_open(f->ctx, &r, &s), AF_EPARSE);
	r.uri = (char *)"s3://bucket/k%zz";
	assert_int_equal(src_open(f->ctx, &r, &s), AF_EPARSE);
	r.uri = (char *)"s3://bucket/key";
	r.source_type = POL_SRC_HUGGINGFACE;
	assert_int_equal(src_open(f->ctx, &r, &s), AF_EPARSE);
	r.source_type = POL_SRC_ARTIFACT_STORE;
	assert_int_equal(src_open(f->ctx, &r, &s), AF_EPARSE);
	r.source_type = (enum pol_source_type)99;
	assert_int_equal(src_open(f->ctx, &r, &s), -ENOTSUP);
	r.source_type = POL_SRC_HTTPS;
	r.uri = (char *)"ftp://host/x";
	assert_int_equal(src_open(f->ctx, &r, &s), AF_EPARSE);
	src_close(NULL);
}

static void test_file_percent_path(void **state)
{
	struct fixture *f = *state;
	char uri[200];
	uint64_t size = 0;
	struct src *s;

	snprintf(uri, sizeof(uri), "file://%s/%%62lob", f->dir);	/* b */
	s = open_uri(f, uri);
	assert_int_equal(src_size(s, &size, NULL, 0), 0);
	assert_int_equal(size, BLOB_SIZE);
	src_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_size_and_ranges),
		cmocka_unit_test(test_file_past_end),
		cmocka_unit_test(test_file_missing),
		cmocka_unit_test(test_file_abort),
		cmocka_unit_test(test_bad_uris_and_types),
		cmocka_unit_test(test_file_percent_path),
	};

	return cmocka_run_group_tests_name("sources_file", tests, setup,
					   teardown);
}
