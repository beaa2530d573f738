/*
 * test_cache_admin.c - eviction (explicit and LRU by max_size), open
 * readers surviving eviction, cache_verify quick and full, stats, listing.
 */
#include "tests/unit/cache_fixture.h"

static void test_evict_keeps_open_fd(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	unsigned char *a, *b;
	char path[256], dpath[512];
	uint64_t size = 3 * FX_CHUNK + 11, got = 0;
	int fd, sfd;

	r = fx_blob(f, size, 41, path, sizeof(path));
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	fd = cache_open_verified(f->c, &r->digest, &got, NULL);
	assert_true(fd >= 0);
	assert_int_equal(got, size);
	assert_int_equal(cache_evict(f->c, &r->digest, "test"), 0);
	assert_non_null(cache_blob_path(f->c, &r->digest, dpath,
					sizeof(dpath)));
	assert_false(fx_file_exists(dpath));
	assert_int_equal(fx_state(f, r), CACHE_NONE);
	assert_int_equal(cache_open_verified(f->c, &r->digest, NULL, NULL), -ENOENT);
	assert_int_equal(cache_evict(f->c, &r->digest, "test"), -ENOENT);
	assert_int_equal(fx_audit_count(f, "evict", "\"reason\":\"test\""), 1);

	/* The open reader still sees every byte. */
	a = malloc(size);
	b = malloc(size);
	sfd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, a, size, 0), (ssize_t)size);
	assert_int_equal(pread(sfd, b, size, 0), (ssize_t)size);
	assert_memory_equal(a, b, size);
	close(sfd);
	close(fd);
	free(a);
	free(b);

	/* Evicted, it is fetched again on demand. */
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

static void test_verify_quick_and_full(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r1, *r2, *r3;
	char p1[256], p2[256], p3[256], dpath[512];

	r1 = fx_blob(f, 4 * FX_CHUNK + 5, 42, p1, sizeof(p1));
	r2 = fx_blob(f, 4 * FX_CHUNK + 5, 43, p2, sizeof(p2));
	r3 = fx_blob(f, 2 * FX_CHUNK, 44, p3, sizeof(p3));
	assert_int_equal(cache_ensure_sync(f->c, r1, NULL, NULL), 0);
	assert_int_equal(cache_ensure_sync(f->c, r2, NULL, NULL), 0);
	assert_int_equal(cache_ensure_sync(f->c, r3, NULL, NULL), 0);
	assert_int_equal(cache_verify(f->c, &r1->digest, true), 0);
	assert_int_equal(cache_verify(f->c, &r1->digest, false), 0);

	/* Bit rot in a verified file: quick (xxh3) catches it. */
	assert_non_null(cache_blob_path(f->c, &r1->digest, dpath,
					sizeof(dpath)));
	fx_flip_byte(dpath, 2 * FX_CHUNK + 100);
	assert_int_equal(cache_verify(f->c, &r1->digest, true), AF_EDIGEST);
	assert_int_equal(fx_state(f, r1), CACHE_QUARANTINED);
	assert_false(fx_file_exists(dpath));
	assert_int_equal(cache_open_verified(f->c, &r1->digest, NULL, NULL), -ENOENT);

	/* And the full digest catches it too. */
	assert_non_null(cache_blob_path(f->c, &r2->digest, dpath,
					sizeof(dpath)));
	fx_flip_byte(dpath, 4 * FX_CHUNK + 4);
	assert_int_equal(cache_verify(f->c, &r2->digest, false), AF_EDIGEST);
	assert_int_equal(fx_state(f, r2), CACHE_QUARANTINED);
	assert_int_equal(fx_audit_count(f, "verify_failed", NULL), 2);

	/* A truncated data file. */
	assert_non_null(cache_blob_path(f->c, &r3->digest, dpath,
					sizeof(dpath)));
	assert_int_equal(truncate(dpath, FX_CHUNK), 0);
	assert_int_equal(cache_verify(f->c, &r3->digest, true), AF_EDIGEST);

	/* Not verified: nothing to re-check. */
	assert_int_equal(cache_verify(f->c, &r1->digest, true), -ENOENT);

	/* Quarantined blobs are fetched afresh by the next ensure. */
	assert_int_equal(cache_ensure_sync(f->c, r1, NULL, NULL), 0);
	fx_assert_cached_equal(f, r1, p1);
	pol_registration_free(r1);
	pol_registration_free(r2);
	pol_registration_free(r3);
}

static void set_last_access(struct fx *f, const struct pol_registration *r,
			    long long when)
{
	struct idx_rec rec;
	MDB_txn *txn;

	assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
	assert_int_equal(idx_rec_get(&f->c->idx, txn, r->digest.str, &rec,
				     true), 0);
	rec.last_access = when;
	assert_int_equal(idx_rec_put(&f->c->idx, txn, r->digest.str, &rec),
			 0);
	idx_rec_release(&rec);
	assert_int_equal(idx_commit(txn), 0);
}

static void test_lru_eviction(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r[4];
	struct cache_stats st;
	char path[4][256];
	long long now = time(NULL);
	int i, fd;

	cache_close(f->c);
	f->cfg.cache_max_size = 12 * FX_CHUNK;
	fx_open_cache(f);
	for (i = 0; i < 3; i++) {
		r[i] = fx_blob(f, 4 * FX_CHUNK, 50 + (unsigned)i, path[i],
			       sizeof(path[i]));
		assert_int_equal(cache_ensure_sync(f->c, r[i], NULL, NULL), 0);
	}
	/* At the limit, not above it: nothing evicted. */
	assert_int_equal(fx_audit_count(f, "evict", NULL), 0);
	/* Access order: 1 oldest, then 0, then 2. */
	set_last_access(f, r[1], now - 3000);
	set_last_access(f, r[0], now - 2000);
	set_last_access(f, r[2], now - 1000);
	/* Opening records the access (at most once a minute). */
	fd = cache_open_verified(f->c, &r[0]->digest, NULL, NULL);
	assert_true(fd >= 0);
	close(fd);
	/* 0 is now the most recent: 1 and then 2 go. */
	r[3] = fx_blob(f, 4 * FX_CHUNK, 53, path[3], sizeof(path[3]));
	assert_int_equal(cache_ensure_sync(f->c, r[3], NULL, NULL), 0);
	assert_int_equal(fx_state(f, r[1]), CACHE_NONE);
	assert_int_equal(fx_state(f, r[2]), CACHE_NONE);
	assert_int_equal(fx_state(f, r[0]), CACHE_VERIFIED);
	assert_int_equal(fx_state(f, r[3]), CACHE_VERIFIED);
	assert_int_equal(fx_audit_count(f, "evict", "lru"), 2);
	assert_int_equal(cache_get_stats(f->c, &st), 0);
	assert_int_equal(st.blobs, 2);
	assert_int_equal(st.bytes, 8 * FX_CHUNK);
	assert_true(st.bytes <= f->cfg.cache_max_size / 10 * 9);
	assert_int_equal(st.max_size, 12 * FX_CHUNK);
	for (i = 0; i < 4; i++)
		pol_registration_free(r[i]);
}

/* Line number (from 1) of the first audit line with event and text, or 0. */
static int audit_line_of(struct fx *f, const char *event, const char *text)
{
	char needle[64], line[8192];
	FILE *fp = fopen(f->audit_path, "r");
	int n = 0;

	assert_non_null(fp);
	snprintf(needle, sizeof(needle), "\"event\":\"%s\"", event);
	while (fgets(line, sizeof(line), fp)) {
		n++;
		if (strstr(line, needle) && strstr(line, text)) {
			fclose(fp);
			return n;
		}
	}
	fclose(fp);
	return 0;
}

/*
 * Issue 11 item 3: room is made before a fetch, for the bytes it is about
 * to bring, so that a max_size below the filesystem's size never lets the
 * filesystem fill: the eviction comes before the new blob's fetch_start,
 * and the cache ends at the low watermark, not above max_size.
 */
static void test_lru_room_before_fetch(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r[3];
	struct cache_stats st;
	char path[3][256];
	long long now = time(NULL);
	int i, ev, start;

	cache_close(f->c);
	f->cfg.cache_max_size = 8 * FX_CHUNK;
	fx_open_cache(f);
	for (i = 0; i < 3; i++)
		r[i] = fx_blob(f, 4 * FX_CHUNK, 70 + (unsigned)i, path[i],
			       sizeof(path[i]));
	for (i = 0; i < 2; i++)
		assert_int_equal(cache_ensure_sync(f->c, r[i], NULL, NULL), 0);
	assert_int_equal(fx_audit_count(f, "evict", NULL), 0);
	set_last_access(f, r[0], now - 2000);
	set_last_access(f, r[1], now - 1000);
	assert_int_equal(cache_ensure_sync(f->c, r[2], NULL, NULL), 0);
	ev = audit_line_of(f, "evict", r[0]->digest.str);
	start = audit_line_of(f, "fetch_start", r[2]->digest.str);
	assert_true(ev > 0);
	assert_true(start > 0);
	assert_true(ev < start);
	/* 90% of 8 chunks less 4 incoming: both older blobs made room. */
	assert_int_equal(fx_state(f, r[0]), CACHE_NONE);
	assert_int_equal(fx_state(f, r[1]), CACHE_NONE);
	assert_int_equal(fx_state(f, r[2]), CACHE_VERIFIED);
	assert_int_equal(cache_get_stats(f->c, &st), 0);
	assert_true(st.bytes <= f->cfg.cache_max_size / 10 * 9);
	for (i = 0; i < 3; i++)
		pol_registration_free(r[i]);
}

struct list_ctx {
	int n;
	int verified;
	int stop_after;
};

static int list_fn(void *arg, const struct cache_info *info)
{
	struct list_ctx *l = arg;

	l->n++;
	if (info->state == CACHE_VERIFIED)
		l->verified++;
	return l->stop_after && l->n >= l->stop_after ? 7 : 0;
}

static void test_stats_and_foreach(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r[3];
	struct list_ctx l = { 0 };
	struct cache_stats st;
	char path[3][256];
	int i;

	for (i = 0; i < 3; i++)
		r[i] = fx_blob(f, (uint64_t)(i + 1) * FX_CHUNK,
			       60 + (unsigned)i, path[i], sizeof(path[i]));
	fx_flip_byte(path[2], 0);
	assert_int_equal(cache_ensure_sync(f->c, r[0], NULL, NULL), 0);
	assert_int_equal(cache_ensure_sync(f->c, r[1], NULL, NULL), 0);
	assert_int_equal(cache_ensure_sync(f->c, r[2], NULL, NULL),
			 AF_EDIGEST);
	assert_int_equal(cache_get_stats(f->c, &st), 0);
	assert_int_equal(st.blobs, 3);
	assert_int_equal(st.verified, 2);
	assert_int_equal(st.quarantined, 1);
	assert_int_equal(st.partial, 0);
	assert_int_equal(st.bytes, 3 * FX_CHUNK);
	assert_int_equal(cache_foreach(f->c, list_fn, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.verified, 2);
	l = (struct list_ctx){ .stop_after = 1 };
	assert_int_equal(cache_foreach(f->c, list_fn, &l), 7);
	assert_int_equal(l.n, 1);
	for (i = 0; i < 3; i++)
		pol_registration_free(r[i]);
}

static void test_blob_path(void **state)
{
	struct fx *f = *state;
	struct pol_digest d;
	char buf[512], want[512], small[8];
	const char *s = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822"
			"cd15d6c15b0f00a08";

	assert_int_equal(pol_digest_parse(s, &d, NULL, 0), 0);
	snprintf(want, sizeof(want), "%s/cache/blobs/sha256/9f/%s", f->dir,
		 s + 7);
	assert_non_null(cache_blob_path(f->c, &d, buf, sizeof(buf)));
	assert_string_equal(buf, want);
	assert_null(cache_blob_path(f->c, &d, small, sizeof(small)));
	assert_string_equal(cache_state_name(CACHE_VERIFIED), "verified");
	assert_string_equal(cache_state_name(CACHE_PARTIAL), "partial");
	assert_string_equal(cache_state_name(CACHE_NONE), "none");
	assert_string_equal(cache_state_name(CACHE_QUARANTINED),
			    "quarantined");
	assert_int_equal(cache_stat(f->c, &d, &(struct cache_info){ 0 }),
			 -ENOENT);
	assert_int_equal(cache_evict(f->c, &d, NULL), -ENOENT);
	assert_int_equal(cache_verify(f->c, &d, false), -ENOENT);
}


/*
 * DESIGN §2: a size learned for a registration without size_bytes is kept
 * in the index; a later fetch starts from that record and verifies.
 */
static void test_note_size(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_info info;
	char path[256], digest[POL_DIGEST_STR_MAX];
	uint64_t size = 3 * FX_CHUNK + 7;

	snprintf(path, sizeof(path), "%s/src-note.bin", f->dir);
	fx_write_random(path, size, 77);
	fx_file_digest(path, EVP_sha256(), digest, sizeof(digest));
	r = fx_reg(f, path, digest, false, 0);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), -ENOENT);
	assert_int_equal(cache_note_size(f->c, r, size), 0);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	assert_true(info.size_known);
	assert_int_equal(info.size, size);
	assert_int_equal(info.bytes_present, 0);
	/* Known already: a second note changes nothing. */
	assert_int_equal(cache_note_size(f->c, r, size + 1), 0);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	assert_int_equal(info.size, size);
	/* Kept across a restart of the cache. */
	cache_close(f->c);
	f->c = NULL;
	fx_open_cache(f);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	assert_int_equal(info.size, size);
	/* And a fetch from that record verifies the right bytes. */
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_evict_keeps_open_fd,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_verify_quick_and_full,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lru_room_before_fetch,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lru_eviction, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_stats_and_foreach,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_note_size, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_blob_path, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
