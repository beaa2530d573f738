/*
 * test_cache_fetch.c - fetch, verify and quarantine through real file://
 * sources: edge sizes, tampered sources, one fetch per blob, cancel, close
 * while fetching.
 */
#include "tests/unit/cache_fixture.h"

static void fetch_size(struct fx *f, uint64_t size, unsigned seed)
{
	struct pol_registration *r;
	struct cache_info info;
	char path[256], dpath[512];

	r = fx_blob(f, size, seed, path, sizeof(path));
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	assert_int_equal(info.state, CACHE_VERIFIED);
	assert_true(info.size_known);
	assert_int_equal(info.size, size);
	assert_int_equal(info.chunk_size, FX_CHUNK);
	assert_int_equal(info.chunks_total, (size + FX_CHUNK - 1) / FX_CHUNK);
	assert_int_equal(info.chunks_present, info.chunks_total);
	assert_int_equal(info.bytes_present, size);
	assert_true(info.verified_at > 0);
	assert_false(info.fetching);
	assert_string_equal(info.project, "test");
	assert_true(pol_digest_equal(&info.digest, &r->digest));
	fx_assert_cached_equal(f, r, path);
	assert_non_null(cache_blob_path(f->c, &r->digest, dpath,
					sizeof(dpath)));
	assert_true(fx_file_exists(dpath));
	pol_registration_free(r);
}

static void test_sizes(void **state)
{
	struct fx *f = *state;

	fetch_size(f, 0, 1);
	fetch_size(f, 1, 2);
	fetch_size(f, FX_CHUNK - 1, 3);
	fetch_size(f, FX_CHUNK, 4);
	fetch_size(f, FX_CHUNK + 1, 5);
	fetch_size(f, 7 * FX_CHUNK + 1234, 6);
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 6);
	assert_int_equal(fx_audit_count(f, "verify_ok", NULL), 6);
	assert_int_equal(fx_audit_count(f, "fetch_done", "\"duration_ms\""),
			 6);
	assert_int_equal(fx_audit_count(f, "verify_failed", NULL), 0);
}

static void test_verified_is_instant(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_waiter *w = (void *)1;
	struct fx_wait fw;
	char path[256];
	uint64_t before;

	fx_wait_init(&fw);
	r = fx_blob(f, 3 * FX_CHUNK, 7, path, sizeof(path));
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	before = fx_src_bytes(f);
	assert_int_equal(cache_ensure(f->c, r, fx_wait_done, &fw, &w), 0);
	assert_null(w);
	assert_int_equal(fx_wait_calls(&fw), 0);
	assert_int_equal(fx_src_bytes(f), before);
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 1);
	pol_registration_free(r);
}

static void test_sha512_no_size(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256], digest[POL_DIGEST_STR_MAX];
	struct cache_info info;

	snprintf(path, sizeof(path), "%s/s512.bin", f->dir);
	fx_write_random(path, 2 * FX_CHUNK + 17, 8);
	fx_file_digest(path, EVP_sha512(), digest, sizeof(digest));
	r = fx_reg(f, path, digest, false, 0);
	assert_false(r->has_size);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	assert_int_equal(info.size, 2 * FX_CHUNK + 17);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

static void assert_quarantined(struct fx *f, const struct pol_registration *r)
{
	char dpath[512];
	uint64_t size;

	assert_int_equal(fx_state(f, r), CACHE_QUARANTINED);
	assert_int_equal(cache_open_verified(f->c, &r->digest, &size, NULL),
			 -ENOENT);
	assert_non_null(cache_blob_path(f->c, &r->digest, dpath,
					sizeof(dpath)));
	assert_false(fx_file_exists(dpath));
}

static void test_tampered_flip(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256];
	uint64_t before;

	r = fx_blob(f, 5 * FX_CHUNK + 3, 9, path, sizeof(path));
	fx_flip_byte(path, 3 * FX_CHUNK + 10);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_EDIGEST);
	assert_quarantined(f, r);
	assert_int_equal(fx_audit_count(f, "verify_failed",
					"digest mismatch: expected"), 1);
	assert_int_equal(fx_audit_count(f, "verify_ok", NULL), 0);

	/*
	 * The source is fixed, but this registration backs off (DESIGN §6):
	 * the next ensure fails at once, without a byte fetched; once the
	 * backoff is cleared (SIGHUP) it fetches afresh and verifies.
	 */
	fx_flip_byte(path, 3 * FX_CHUNK + 10);
	before = fx_src_bytes(f);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_EBACKOFF);
	assert_int_equal(fx_src_bytes(f), before);
	assert_int_equal(cache_backoff_clear(f->c), 0);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

static void test_tampered_truncated(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256];

	r = fx_blob(f, 4 * FX_CHUNK, 10, path, sizeof(path));
	assert_int_equal(truncate(path, 4 * FX_CHUNK - 1), 0);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_ESIZE);
	assert_quarantined(f, r);
	assert_int_equal(fx_audit_count(f, "verify_failed",
					"size mismatch: registered 262144, "
					"source 262143"), 1);
	pol_registration_free(r);
}

static void test_tampered_appended(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256];
	FILE *fp;

	r = fx_blob(f, FX_CHUNK + 5, 11, path, sizeof(path));
	fp = fopen(path, "ab");
	assert_non_null(fp);
	fputc('x', fp);
	fclose(fp);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_ESIZE);
	assert_quarantined(f, r);
	assert_int_equal(fx_audit_count(f, "verify_failed", "size mismatch"),
			 1);
	pol_registration_free(r);
}

static void test_tampered_no_size(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256], digest[POL_DIGEST_STR_MAX];

	snprintf(path, sizeof(path), "%s/nosize.bin", f->dir);
	fx_write_random(path, 3 * FX_CHUNK + 1, 12);
	fx_file_digest(path, EVP_sha256(), digest, sizeof(digest));
	fx_flip_byte(path, 0);
	r = fx_reg(f, path, digest, false, 0);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_EDIGEST);
	assert_quarantined(f, r);
	pol_registration_free(r);
}

static void test_empty_blob_wrong_source(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r, *r2;
	char path[256], digest[POL_DIGEST_STR_MAX];

	/* Registered as the empty blob (size 0), but the source has bytes. */
	snprintf(path, sizeof(path), "%s/empty.bin", f->dir);
	fx_write_random(path, 0, 13);
	fx_file_digest(path, EVP_sha256(), digest, sizeof(digest));
	fx_write_random(path, 10, 13);
	r = fx_reg(f, path, digest, true, 0);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_ESIZE);
	assert_quarantined(f, r);
	/* Without a registered size: the digest catches it. */
	r2 = fx_reg(f, path, digest, false, 0);
	assert_int_equal(cache_ensure_sync(f->c, r2, NULL, NULL), AF_EDIGEST);
	pol_registration_free(r);
	pol_registration_free(r2);
}

static void test_source_missing(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256];

	r = fx_blob(f, 100, 14, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_ESOURCE);
	assert_int_not_equal(fx_state(f, r), CACHE_VERIFIED);
	assert_int_equal(fx_audit_count(f, "fetch_failed", "\"reason\""), 1);
	pol_registration_free(r);
}

struct sync_arg {
	struct cache *c;
	const struct pol_registration *r;
	int rc;
};

static void *sync_thread(void *arg)
{
	struct sync_arg *a = arg;

	a->rc = cache_ensure_sync(a->c, a->r, NULL, NULL);
	return NULL;
}

static void test_concurrent_one_fetch(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct sync_arg args[8];
	pthread_t th[8];
	uint64_t before, size = 64 * FX_CHUNK;
	char path[256];
	int i;

	r = fx_blob(f, size, 15, path, sizeof(path));
	before = fx_src_bytes(f);
	for (i = 0; i < 8; i++) {
		args[i] = (struct sync_arg){ .c = f->c, .r = r, .rc = 1 };
		assert_int_equal(pthread_create(&th[i], NULL, sync_thread,
						&args[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].rc, 0);
	}
	/* One fetch: one fetch_start and every byte read from the source once. */
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 1);
	assert_int_equal(fx_src_bytes(f) - before, size);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

static void test_cancel_one_waiter(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_waiter *w[4];
	struct fx_wait fw[4];
	char path[256];
	bool cancelled;
	int i;

	r = fx_blob(f, 256 * FX_CHUNK, 16, path, sizeof(path));
	for (i = 0; i < 4; i++) {
		fx_wait_init(&fw[i]);
		assert_int_equal(cache_ensure(f->c, r, fx_wait_done, &fw[i],
					      &w[i]), -EINPROGRESS);
		assert_non_null(w[i]);
	}
	cancelled = cache_cancel(f->c, w[1]);
	for (i = 0; i < 4; i++) {
		if (i == 1)
			continue;
		assert_int_equal(fx_wait_for(&fw[i]), 0);
	}
	/* Exactly one of: cancelled and never called, or called once. */
	assert_int_equal(fx_wait_calls(&fw[1]), cancelled ? 0 : 1);
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 1);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

static void test_cancel_all_fetch_continues(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_waiter *w;
	struct fx_wait fw;
	char path[256];
	long long end;
	bool cancelled;

	fx_wait_init(&fw);
	r = fx_blob(f, 128 * FX_CHUNK, 17, path, sizeof(path));
	assert_int_equal(cache_ensure(f->c, r, fx_wait_done, &fw, &w),
			 -EINPROGRESS);
	cancelled = cache_cancel(f->c, w);
	/* Nobody waits, yet the fetch completes in the background. */
	end = af_now_ms() + 30000;
	while (fx_state(f, r) != CACHE_VERIFIED && af_now_ms() < end)
		usleep(20000);
	assert_int_equal(fx_state(f, r), CACHE_VERIFIED);
	if (cancelled) {
		usleep(100000);
		assert_int_equal(fx_wait_calls(&fw), 0);
	} else {
		assert_int_equal(fx_wait_for(&fw), 0);
	}
	/* A cancel after done finds nothing. */
	pol_registration_free(r);
}

static void test_close_while_fetching(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r[3];
	struct fx_wait fw[3];
	char path[3][256];
	int i, err;

	for (i = 0; i < 3; i++) {
		fx_wait_init(&fw[i]);
		r[i] = fx_blob(f, 512 * FX_CHUNK, 18 + (unsigned)i, path[i],
			       sizeof(path[i]));
		assert_int_equal(cache_ensure(f->c, r[i], fx_wait_done, &fw[i],
					      NULL), -EINPROGRESS);
	}
	usleep(20000);
	cache_close(f->c);
	f->c = NULL;
	for (i = 0; i < 3; i++) {
		/* Done exactly once, already: success or cancelled. */
		assert_int_equal(fx_wait_calls(&fw[i]), 1);
		err = fw[i].err;
		assert_true(err == 0 || err == -ECANCELED);
	}
	/* Reopened, the fetches finish (resuming whatever landed). */
	fx_open_cache(f);
	for (i = 0; i < 3; i++) {
		assert_int_equal(cache_ensure_sync(f->c, r[i], NULL, NULL), 0);
		fx_assert_cached_equal(f, r[i], path[i]);
		pol_registration_free(r[i]);
	}
}

static void test_no_sources(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache *c2;
	char path[256];

	r = fx_blob(f, 10, 21, path, sizeof(path));
	cache_close(f->c);
	assert_int_equal(cache_open(&f->cfg, NULL, NULL, &c2), 0);
	assert_int_equal(cache_ensure_sync(c2, r, NULL, NULL), -ENOTSUP);
	cache_close(c2);
	fx_open_cache(f);
	pol_registration_free(r);
}

static void test_background_fetch(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_waiter *w = (void *)1;
	struct fx_wait fw;
	char path[256];
	long long end;

	fx_wait_init(&fw);
	r = fx_blob(f, 40 * FX_CHUNK, 23, path, sizeof(path));
	/* O_NONBLOCK style: no waiter, returns at once, fetch goes on. */
	assert_int_equal(cache_ensure(f->c, r, NULL, NULL, &w), -EINPROGRESS);
	assert_null(w);
	/* A waiter joining meanwhile shares the same fetch. */
	assert_true(cache_ensure(f->c, r, fx_wait_done, &fw, &w) == 0 ||
		    fx_wait_for(&fw) == 0);
	end = af_now_ms() + 30000;
	while (fx_state(f, r) != CACHE_VERIFIED && af_now_ms() < end)
		usleep(10000);
	assert_int_equal(fx_state(f, r), CACHE_VERIFIED);
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 1);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

static void test_cancel_after_done(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_waiter *w = NULL;
	struct fx_wait fw;
	char path[256];

	fx_wait_init(&fw);
	r = fx_blob(f, 2 * FX_CHUNK, 24, path, sizeof(path));
	assert_int_equal(cache_ensure(f->c, r, fx_wait_done, &fw, &w),
			 -EINPROGRESS);
	assert_int_equal(fx_wait_for(&fw), 0);
	/* done was called: a cancel now must say so, not call it again. */
	assert_false(cache_cancel(f->c, w));
	assert_int_equal(fx_wait_calls(&fw), 1);
	assert_false(cache_cancel(f->c, NULL));
	pol_registration_free(r);
}

static void test_local_failure(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256], dpath[512];

	/* The data file cannot be created: a local error, not a source one. */
	r = fx_blob(f, 3 * FX_CHUNK, 25, path, sizeof(path));
	assert_non_null(cache_blob_path(f->c, &r->digest, dpath,
					sizeof(dpath)));
	assert_int_equal(cache_mkdirs_for(f->c, r->digest.str), 0);
	assert_int_equal(mkdir(dpath, 0700), 0);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), -EISDIR);
	assert_int_equal(fx_state(f, r), CACHE_PARTIAL);
	assert_int_equal(cache_open_verified(f->c, &r->digest, NULL, NULL), -ENOENT);
	assert_int_equal(fx_audit_count(f, "fetch_failed", "\"reason\""), 1);
	assert_int_equal(rmdir(dpath), 0);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

struct prog {
	uint64_t last;
	uint64_t total;
	int calls;
};

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
	struct prog *p = arg;

	assert_true(done >= p->last);
	p->last = done;
	p->total = total;
	p->calls++;
}

static void test_progress(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct prog p = { 0 };
	char path[256];

	r = fx_blob(f, 10 * FX_CHUNK, 22, path, sizeof(path));
	assert_int_equal(cache_ensure_sync(f->c, r, on_progress, &p), 0);
	assert_true(p.calls >= 1);
	assert_int_equal(p.last, 10 * FX_CHUNK);
	assert_int_equal(p.total, 10 * FX_CHUNK);
	pol_registration_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sizes, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_verified_is_instant,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sha512_no_size, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_tampered_flip, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_tampered_truncated,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tampered_appended,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tampered_no_size,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_empty_blob_wrong_source,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_source_missing, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_one_fetch,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_one_waiter,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_all_fetch_continues,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_while_fetching,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_no_sources, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_progress, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_background_fetch,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_after_done,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_local_failure, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
