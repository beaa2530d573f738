/*
 * test_cache_regs.c - several registrations of one digest (issue 10): a
 * verified blob serves only registrations whose size_bytes is its size,
 * cold or warm, and stays verified for the others (DESIGN §6, item 6); a
 * fetch that fails does not fail the waiters of a registration naming
 * another source, which fetch again with their own (item 7); the failure
 * backoff is per registration and doubles (DESIGN §6, item 3); sizes are
 * learned off the caller's thread, once (item 8).
 */
#include "tests/unit/cache_fixture.h"

/* A tampered copy of path (one byte flipped) at out. */
static void tampered_copy(const char *path, const char *out)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", path, out);
	assert_int_equal(system(cmd), 0);
	fx_flip_byte(out, 17);
}

static void digest_of(const char *path, char *out, size_t len)
{
	fx_file_digest(path, EVP_sha256(), out, len);
}

/* Warm: the blob is verified; another registration says another size. */
static void test_size_warm(void **state)
{
	struct fx *f = *state;
	struct pol_registration *a, *b, *c;
	char path[256], digest[POL_DIGEST_STR_MAX];
	struct fx_wait fw;
	uint64_t before;

	a = fx_blob(f, 3 * FX_CHUNK + 7, 200, path, sizeof(path));
	digest_of(path, digest, sizeof(digest));
	b = fx_reg_at("other", "short.bin", digest, path, true, 3 * FX_CHUNK);
	c = fx_reg_at("other", "nosize.bin", digest, path, false, 0);
	assert_int_equal(cache_ensure_sync(f->c, a, NULL, NULL), 0);
	before = fx_src_bytes(f);
	fx_wait_init(&fw);
	assert_int_equal(cache_ensure(f->c, b, fx_wait_done, &fw, NULL),
			 AF_ESIZE);
	assert_int_equal(fx_wait_calls(&fw), 0);
	assert_int_equal(fx_audit_count(f, "verify_failed",
					"\"project\":\"other\""), 1);
	assert_int_equal(fx_audit_count(f, "verify_failed", "size mismatch"),
			 1);
	/* The blob stays verified for the others; nothing fetched. */
	assert_int_equal(fx_state(f, a), CACHE_VERIFIED);
	assert_int_equal(cache_ensure_sync(f->c, a, NULL, NULL), 0);
	assert_int_equal(cache_ensure_sync(f->c, c, NULL, NULL), 0);
	assert_int_equal(fx_src_bytes(f), before);
	fx_assert_cached_equal(f, a, path);
	pol_registration_free(a);
	pol_registration_free(b);
	pol_registration_free(c);
}

/* Cold, the right size fetching first: the wrong one joins and fails. */
static void test_size_cold_joins(void **state)
{
	struct fx *f = *state;
	struct pol_registration *a, *b;
	char path[256], digest[POL_DIGEST_STR_MAX];
	struct fx_wait fa, fb;

	a = fx_blob(f, 4 * FX_CHUNK, 201, path, sizeof(path));
	digest_of(path, digest, sizeof(digest));
	b = fx_reg_at("other", "long.bin", digest, path, true, 4 * FX_CHUNK + 1);
	gate_set(f, "transfer");
	fx_wait_init(&fa);
	fx_wait_init(&fb);
	assert_int_equal(cache_ensure(f->c, a, fx_wait_done, &fa, NULL),
			 -EINPROGRESS);
	gate_wait();
	assert_int_equal(cache_ensure(f->c, b, fx_wait_done, &fb, NULL),
			 -EINPROGRESS);
	gate_open();
	assert_int_equal(fx_wait_for(&fa), 0);
	assert_int_equal(fx_wait_for(&fb), AF_ESIZE);
	assert_int_equal(fx_state(f, a), CACHE_VERIFIED);
	assert_int_equal(fx_audit_count(f, "verify_failed", "long.bin"), 1);
	fx_assert_cached_equal(f, a, path);
	pol_registration_free(a);
	pol_registration_free(b);
}

/*
 * Cold, the wrong size fetching first: it fails (quarantine), and the
 * right one, which had joined it, fetches with its own registration.
 */
static void test_size_cold_wrong_first(void **state)
{
	struct fx *f = *state;
	struct pol_registration *a, *b;
	char path[256], digest[POL_DIGEST_STR_MAX];
	struct fx_wait fa, fb;

	a = fx_blob(f, 4 * FX_CHUNK, 202, path, sizeof(path));
	digest_of(path, digest, sizeof(digest));
	b = fx_reg_at("other", "long.bin", digest, path, true, 4 * FX_CHUNK + 1);
	gate_set(f, "acquired");
	fx_wait_init(&fa);
	fx_wait_init(&fb);
	assert_int_equal(cache_ensure(f->c, b, fx_wait_done, &fb, NULL),
			 -EINPROGRESS);
	gate_wait();
	assert_int_equal(cache_ensure(f->c, a, fx_wait_done, &fa, NULL),
			 -EINPROGRESS);
	gate_open();
	assert_int_equal(fx_wait_for(&fb), AF_ESIZE);
	assert_int_equal(fx_wait_for(&fa), 0);
	assert_int_equal(fx_state(f, a), CACHE_VERIFIED);
	fx_assert_cached_equal(f, a, path);
	/* b backs off; a is served. */
	assert_int_equal(cache_ensure_sync(f->c, b, NULL, NULL), AF_ESIZE);
	assert_int_equal(cache_ensure_sync(f->c, a, NULL, NULL), 0);
	pol_registration_free(a);
	pol_registration_free(b);
}

/*
 * Item 7: another project's bogus source fails its own fetch, not the
 * waiters of a registration naming a good source; a waiter with the same
 * bogus source shares the failure.
 */
static void test_other_source_retries(void **state)
{
	struct fx *f = *state;
	struct pol_registration *bad, *good, *same;
	char path[256], bpath[300], digest[POL_DIGEST_STR_MAX];
	struct fx_wait fbad, fgood, fsame;

	good = fx_blob(f, 6 * FX_CHUNK + 1, 210, path, sizeof(path));
	digest_of(path, digest, sizeof(digest));
	snprintf(bpath, sizeof(bpath), "%s.tampered", path);
	tampered_copy(path, bpath);
	bad = fx_reg_at("evil", "m.bin", digest, bpath, true, 6 * FX_CHUNK + 1);
	same = fx_reg_at("evil2", "m.bin", digest, bpath, true,
			 6 * FX_CHUNK + 1);
	gate_set(f, "transfer");
	fx_wait_init(&fbad);
	fx_wait_init(&fgood);
	fx_wait_init(&fsame);
	assert_int_equal(cache_ensure(f->c, bad, fx_wait_done, &fbad, NULL),
			 -EINPROGRESS);
	gate_wait();
	assert_int_equal(cache_ensure(f->c, good, fx_wait_done, &fgood, NULL),
			 -EINPROGRESS);
	assert_int_equal(cache_ensure(f->c, same, fx_wait_done, &fsame, NULL),
			 -EINPROGRESS);
	gate_open();
	assert_int_equal(fx_wait_for(&fbad), AF_EDIGEST);
	assert_int_equal(fx_wait_for(&fsame), AF_EDIGEST);
	assert_int_equal(fx_wait_for(&fgood), 0);
	assert_int_equal(fx_state(f, good), CACHE_VERIFIED);
	fx_assert_cached_equal(f, good, path);
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 2);
	pol_registration_free(bad);
	pol_registration_free(good);
	pol_registration_free(same);
}

/*
 * Item 3: the backoff is per registration, doubles, and ends: after it a
 * failing source is tried again (once), a changed registration is not
 * held back by its predecessor's failure, and evict clears it.
 */
static void test_backoff_doubles(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r, *r2;
	char path[256], digest[POL_DIGEST_STR_MAX];
	uint64_t before;
	long long t0;

	f->c->backoff_ms = 300;
	r = fx_blob(f, 2 * FX_CHUNK, 220, path, sizeof(path));
	digest_of(path, digest, sizeof(digest));
	fx_flip_byte(path, 9);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_EDIGEST);
	/* After the failure: the fetch itself may take long under load. */
	t0 = af_now_ms();
	assert_int_equal(fx_audit_count(f, "verify_failed", "backing off"), 1);
	before = fx_src_bytes(f);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_EBACKOFF);
	assert_int_equal(fx_src_bytes(f), before);
	/* After 300 ms: tried again, fails, now 600 ms. */
	while (af_now_ms() < t0 + 350)
		usleep(20000);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_EDIGEST);
	assert_true(fx_src_bytes(f) > before);
	before = fx_src_bytes(f);
	t0 = af_now_ms();
	usleep(350000);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_EBACKOFF);
	assert_int_equal(fx_src_bytes(f), before);
	/* Another registration of the digest (a changed one) is not held. */
	r2 = fx_reg_at("test", "renamed.bin", digest, path, true,
		       2 * FX_CHUNK);
	assert_int_equal(cache_ensure_sync(f->c, r2, NULL, NULL), AF_EDIGEST);
	assert_true(fx_src_bytes(f) > before);
	/* Fixed source, evict clears every backoff of the blob. */
	fx_flip_byte(path, 9);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), AF_EBACKOFF);
	assert_int_equal(cache_evict(f->c, &r->digest, "test"), 0);
	assert_int_equal(cache_ensure_sync(f->c, r2, NULL, NULL), 0);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
	pol_registration_free(r2);
}

/* A local failure (no room for the data file) starts no backoff. */
static void test_local_failure_no_backoff(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256], dpath[512];

	r = fx_blob(f, 2 * FX_CHUNK, 230, path, sizeof(path));
	assert_non_null(cache_blob_path(f->c, &r->digest, dpath,
					sizeof(dpath)));
	assert_int_equal(cache_mkdirs_for(f->c, r->digest.str), 0);
	assert_int_equal(mkdir(dpath, 0700), 0);
	assert_true(cache_ensure_sync(f->c, r, NULL, NULL) < 0);
	assert_int_equal(rmdir(dpath), 0);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	pol_registration_free(r);
}

/* ---- item 8: sizes off the caller's thread ------------------------------ */

static struct pol_registration *http_reg(const char *digest, unsigned port)
{
	struct pol_registration *r = NULL;
	char json[1024], err[256];
	int n;

	n = snprintf(json, sizeof(json),
		     "{\"project\": \"test\", \"name\": \"dead.bin\", "
		     "\"artifact_kind\": \"blob\", \"digest\": \"%s\", "
		     "\"source\": {\"source_type\": \"https\", "
		     "\"uri\": \"http://127.0.0.1:%u/dead.bin\"}, "
		     "\"lifecycle_state\": \"active\", "
		     "\"trust_state\": \"verified\"}", digest, port);
	assert_int_equal(pol_registration_parse(json, (size_t)n, "test", &r,
						err, sizeof(err)), 0);
	return r;
}

static unsigned closed_port(void)
{
	return 1;	/* tcpmux: nothing listens on loopback here */
}

static void test_blob_size(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r, *dead;
	char path[256], digest[POL_DIGEST_STR_MAX];
	struct src_stats st0, st1;
	uint64_t size = 0;
	long long t0;
	int rc;

	/* A reachable source: learned once, kept in the index. */
	r = fx_blob(f, 5 * FX_CHUNK + 3, 240, path, sizeof(path));
	digest_of(path, digest, sizeof(digest));
	pol_registration_free(r);
	r = fx_reg_at("test", "nosize.bin", digest, path, false, 0);
	assert_int_equal(cache_blob_size(f->c, r, 5000, &size), 0);
	assert_int_equal(size, 5 * FX_CHUNK + 3);
	assert_int_equal(fx_state(f, r), CACHE_PARTIAL);
	unlink(path);	/* the index answers now, not the source */
	size = 0;
	assert_int_equal(cache_blob_size(f->c, r, 0, &size), 0);
	assert_int_equal(size, 5 * FX_CHUNK + 3);

	/* A dead source: bounded waits, one request, a negative answer. */
	dead = http_reg("sha256:00000000000000000000000000000000"
			"000000000000000000000000000000aa", closed_port());
	src_ctx_stats(f->srcs, &st0);
	t0 = af_now_ms();
	for (int i = 0; i < 20; i++) {
		rc = cache_blob_size(f->c, dead, 10, &size);
		assert_true(rc == -EAGAIN || rc == AF_ESOURCE);
	}
	assert_true(af_now_ms() - t0 < 2000);
	/* Wait for the answer: a failure, remembered. */
	t0 = af_now_ms();
	do {
		rc = cache_blob_size(f->c, dead, 200, &size);
	} while (rc == -EAGAIN && af_now_ms() - t0 < 30000);
	assert_int_equal(rc, AF_ESOURCE);
	src_ctx_stats(f->srcs, &st1);
	/* One request, with its retries; not one per call. */
	assert_true(st1.requests - st0.requests <= 1 + f->cfg.fetch_retries);
	st0 = st1;
	for (int i = 0; i < 20; i++)
		assert_int_equal(cache_blob_size(f->c, dead, 0, &size),
				 AF_ESOURCE);
	src_ctx_stats(f->srcs, &st1);
	assert_int_equal(st1.requests, st0.requests);
	pol_registration_free(r);
	pol_registration_free(dead);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_size_warm, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_size_cold_joins, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_size_cold_wrong_first,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_other_source_retries,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_backoff_doubles, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_local_failure_no_backoff,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_blob_size, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
