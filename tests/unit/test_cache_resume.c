/*
 * test_cache_resume.c - crash resume (issue 3 item 4), persistence across
 * close/open, and the cross-process lease (a dead holder is taken over, a
 * live one is waited for).
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "tests/unit/cache_fixture.h"

/* Rewrites the record of r as partial, as a crash mid-fetch leaves it. */
static void make_partial(struct fx *f, const struct pol_registration *r)
{
	struct idx_rec rec;
	MDB_txn *txn;

	assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
	assert_int_equal(idx_rec_get(&f->c->idx, txn, r->digest.str, &rec,
				     true), 0);
	rec.state = CACHE_PARTIAL;
	rec.verified_at = 0;
	assert_int_equal(idx_rec_put(&f->c->idx, txn, r->digest.str, &rec),
			 0);
	idx_rec_release(&rec);
	assert_int_equal(idx_commit(txn), 0);
}

static void drop_chunk(struct fx *f, const struct pol_registration *r,
		       uint64_t i)
{
	MDB_txn *txn;

	assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
	assert_int_equal(idx_chunk_del(&f->c->idx, txn, r->digest.str, i), 0);
	assert_int_equal(idx_commit(txn), 0);
}

static void zero_range(const char *path, uint64_t off, uint64_t len)
{
	char *z = calloc(1, (size_t)len);
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, z, (size_t)len, (off_t)off), (ssize_t)len);
	close(fd);
	free(z);
}

static void test_resume_missing_and_corrupt(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_info info;
	char path[256], dpath[512];
	uint64_t before;

	r = fx_blob(f, 10 * FX_CHUNK + 99, 31, path, sizeof(path));
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	assert_non_null(cache_blob_path(f->c, &r->digest, dpath,
					sizeof(dpath)));

	/*
	 * A crash mid-fetch: chunks 3 and 10 (the short last one) were never
	 * recorded (and their bytes are holes), chunk 5 is recorded but its
	 * bytes are torn.
	 */
	make_partial(f, r);
	drop_chunk(f, r, 3);
	drop_chunk(f, r, 10);
	zero_range(dpath, 3 * FX_CHUNK, FX_CHUNK);
	zero_range(dpath, 10 * FX_CHUNK, 99);
	fx_flip_byte(dpath, 5 * FX_CHUNK + 7);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	assert_int_equal(info.state, CACHE_PARTIAL);
	assert_int_equal(info.chunks_present, 9);
	assert_int_equal(cache_open_verified(f->c, &r->digest, NULL, NULL), -ENOENT);

	/* Restart, then resume: only chunks 3, 5 and 10 come from the source. */
	cache_close(f->c);
	fx_open_cache(f);
	before = fx_src_bytes(f);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	assert_int_equal(fx_src_bytes(f) - before, 2 * FX_CHUNK + 99);
	assert_int_equal(fx_audit_count(f, "fetch_done",
					"\"bytes\":131171"), 1);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

static void test_resume_keeps_chunk_size(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_info info;
	char path[256];
	uint64_t before;

	r = fx_blob(f, 6 * FX_CHUNK, 32, path, sizeof(path));
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	make_partial(f, r);
	drop_chunk(f, r, 4);
	/* The configured chunk size changes between runs. */
	cache_close(f->c);
	f->cfg.chunk_size = 4 * FX_CHUNK;
	fx_open_cache(f);
	before = fx_src_bytes(f);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	assert_int_equal(fx_src_bytes(f) - before, FX_CHUNK);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	assert_int_equal(info.chunk_size, FX_CHUNK);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

static void test_verified_survives_restart(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_info info;
	char path[256];
	uint64_t before;

	r = fx_blob(f, 3 * FX_CHUNK + 1, 33, path, sizeof(path));
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	cache_close(f->c);
	fx_open_cache(f);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	assert_int_equal(info.state, CACHE_VERIFIED);
	assert_int_equal(info.size, 3 * FX_CHUNK + 1);
	before = fx_src_bytes(f);
	assert_int_equal(cache_ensure(f->c, r, fx_wait_done, NULL, NULL), 0);
	assert_int_equal(fx_src_bytes(f), before);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

/* A stand-in for another process holding a lease; dies with us. */
static void fake_holder(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;)
		pause();
}

static void put_lease(struct fx *f, const struct pol_registration *r,
		      pid_t pid, uint64_t start)
{
	struct idx_lease l = { .pid = pid, .start = start, .token = 42 };
	struct idx_rec rec;
	MDB_txn *txn;

	/* As a real holder does: lease and a partial record in one txn. */
	memset(&rec, 0, sizeof(rec));
	rec.state = CACHE_PARTIAL;
	snprintf(rec.project, sizeof(rec.project), "%s", r->project);
	snprintf(rec.name, sizeof(rec.name), "%s", r->name);
	assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
	assert_int_equal(idx_rec_put(&f->c->idx, txn, r->digest.str, &rec), 0);
	assert_int_equal(idx_lease_put(&f->c->idx, txn, r->digest.str, &l), 0);
	assert_int_equal(idx_commit(txn), 0);
}

/*
 * Starts a live fake holder of r's lease and an ensure that must wait for
 * it (-EINPROGRESS). Returns the holder's pid; the test ends it.
 */
static pid_t wait_on_live_holder(struct fx *f, const struct pol_registration *r,
				 struct fx_wait *fw)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		fake_holder();
	usleep(10000);
	put_lease(f, r, pid, idx_proc_start(pid));
	assert_int_equal(cache_ensure(f->c, r, fx_wait_done, fw, NULL),
			 -EINPROGRESS);
	return pid;
}

static void test_lease_dead_holder(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256];
	pid_t pid;
	uint64_t start;

	/* A holder that has exited: its pid no longer runs. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	start = idx_proc_start(pid);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	r = fx_blob(f, 2 * FX_CHUNK, 34, path, sizeof(path));
	put_lease(f, r, pid, start ? start : 12345);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	pol_registration_free(r);

	/* A reused pid: ours, but with another start time. */
	r = fx_blob(f, 2 * FX_CHUNK, 35, path, sizeof(path));
	put_lease(f, r, getpid(), idx_proc_start(getpid()) + 1);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

static void test_lease_live_holder(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_info info;
	struct fx_wait fw;
	char path[256];
	pid_t pid;
	int status;

	fx_wait_init(&fw);
	r = fx_blob(f, 4 * FX_CHUNK, 36, path, sizeof(path));
	pid = wait_on_live_holder(f, r, &fw);
	/* The other process fetches: we wait, and so does eviction. */
	usleep(500000);
	assert_int_equal(fx_wait_calls(&fw), 0);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	assert_true(info.fetching);
	assert_int_equal(cache_evict(f->c, &r->digest, "test"), -EBUSY);
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 0);
	/* It dies mid-fetch: we take over. */
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(fx_wait_for(&fw), 0);
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 1);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

static void test_lease_holder_completes(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct idx_rec rec;
	struct fx_wait fw;
	char path[256], dpath[512], cmd[1200];
	MDB_txn *txn;
	pid_t pid;

	fx_wait_init(&fw);
	r = fx_blob(f, 3 * FX_CHUNK, 37, path, sizeof(path));
	pid = wait_on_live_holder(f, r, &fw);
	usleep(300000);
	/* The other process finishes: data in place, record verified. */
	assert_non_null(cache_blob_path(f->c, &r->digest, dpath,
					sizeof(dpath)));
	assert_int_equal(cache_mkdirs_for(f->c, r->digest.str), 0);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", path, dpath);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
	assert_int_equal(idx_rec_get(&f->c->idx, txn, r->digest.str, &rec,
				     false), 0);
	rec.state = CACHE_VERIFIED;
	rec.size_known = true;
	rec.size = 3 * FX_CHUNK;
	rec.chunk_size = FX_CHUNK;
	rec.verified_at = time(NULL);
	assert_int_equal(idx_rec_put(&f->c->idx, txn, r->digest.str, &rec),
			 0);
	assert_int_equal(idx_lease_del(&f->c->idx, txn, r->digest.str), 0);
	assert_int_equal(idx_commit(txn), 0);
	assert_int_equal(fx_wait_for(&fw), 0);
	/* We never fetched it ourselves. */
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 0);
	fx_assert_cached_equal(f, r, path);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	pol_registration_free(r);
}

static void test_index_records(void **state)
{
	struct fx *f = *state;
	struct idx_rec rec, out;
	const char *key = "sha256:00000000000000000000000000000000"
			  "00000000000000000000000000000000";
	const char *key2 = "sha256:00000000000000000000000000000000"
			   "00000000000000000000000000000001";
	uint64_t xxh = 0;
	MDB_txn *txn;

	memset(&rec, 0, sizeof(rec));
	rec.state = CACHE_PARTIAL;
	rec.size_known = true;
	rec.size = 1000;
	rec.chunk_size = 100;
	rec.last_access = 77;
	rec.last_err = AF_ESOURCE;
	snprintf(rec.project, sizeof(rec.project), "proj");
	snprintf(rec.name, sizeof(rec.name), "n.bin");
	rec.json = "{\"a\":1}";
	assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
	assert_int_equal(idx_rec_put(&f->c->idx, txn, key, &rec), 0);
	assert_int_equal(idx_chunk_put(&f->c->idx, txn, key, 0, 11), 0);
	assert_int_equal(idx_chunk_put(&f->c->idx, txn, key, 9, 99), 0);
	assert_int_equal(idx_chunk_put(&f->c->idx, txn, key2, 0, 5), 0);
	assert_int_equal(idx_commit(txn), 0);

	assert_int_equal(idx_begin(&f->c->idx, false, &txn), 0);
	assert_int_equal(idx_rec_get(&f->c->idx, txn, key, &out, true), 0);
	assert_int_equal(out.size, 1000);
	assert_int_equal(out.chunk_size, 100);
	assert_int_equal(out.last_access, 77);
	assert_int_equal(out.last_err, AF_ESOURCE);
	assert_string_equal(out.project, "proj");
	assert_string_equal(out.name, "n.bin");
	assert_string_equal(out.json, "{\"a\":1}");
	idx_rec_release(&out);
	assert_int_equal(idx_chunk_get(&f->c->idx, txn, key, 9, &xxh), 0);
	assert_int_equal(xxh, 99);
	assert_int_equal(idx_chunk_get(&f->c->idx, txn, key, 5, &xxh),
			 -ENOENT);
	assert_int_equal(idx_rec_get(&f->c->idx, txn, key2, &out, false),
			 -ENOENT);
	idx_abort(txn);

	/* Deleting one blob's chunks leaves the neighbour's alone. */
	assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
	assert_int_equal(idx_blob_del(&f->c->idx, txn, key), 0);
	assert_int_equal(idx_chunk_get(&f->c->idx, txn, key, 0, &xxh),
			 -ENOENT);
	assert_int_equal(idx_chunk_get(&f->c->idx, txn, key2, 0, &xxh), 0);
	assert_int_equal(xxh, 5);
	assert_int_equal(idx_blob_del(&f->c->idx, txn, key), -ENOENT);
	assert_int_equal(idx_commit(txn), 0);

	assert_true(idx_proc_start(getpid()) > 0);
	assert_int_equal(idx_proc_start(-1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resume_missing_and_corrupt,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_resume_keeps_chunk_size,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_verified_survives_restart,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lease_dead_holder,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lease_live_holder,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lease_holder_completes,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_index_records, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
