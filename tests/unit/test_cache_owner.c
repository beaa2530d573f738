/*
 * test_cache_owner.c - the ownership rules of the cache (cache_int.h,
 * issue 10): a fetch checks and keeps its lease and generation at every
 * step; verify, gc and eviction never touch a blob a live fetch owns; a
 * second cache instance (another process, as far as the index knows) never
 * fetches the same blob at once; nothing is hashed under a write
 * transaction; a stuck lease holder is reported within a bound; progress
 * is never reported under a cache lock; a file that shrinks while hashed
 * is an error, not SIGBUS.
 *
 * Races are made deterministic with the cache's test seam (c->test_hook):
 * a job stops at a named step until the test lets it go.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cache/hash_int.h"
#include "tests/unit/cache_fixture.h"

static uint64_t rec_gen(struct fx *f, const struct pol_registration *r)
{
	struct cache_info info;

	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	return info.gen;
}

/* ---- item 10: progress, SIGBUS, stuck holder --------------------------- */

struct blocking_progress {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool called;
	bool release;
};

static void progress_blocks(void *arg, uint64_t done, uint64_t total)
{
	struct blocking_progress *b = arg;

	(void)done;
	(void)total;
	pthread_mutex_lock(&b->lock);
	b->called = true;
	pthread_cond_broadcast(&b->cond);
	while (!b->release)
		pthread_cond_wait(&b->cond, &b->lock);
	pthread_mutex_unlock(&b->lock);
}

struct sync_arg {
	struct fx *f;
	struct pol_registration *r;
	struct blocking_progress *b;
	int rc;
};

static void *sync_thread(void *arg)
{
	struct sync_arg *a = arg;

	a->rc = cache_ensure_sync(a->f->c, a->r,
				  a->b ? progress_blocks : NULL, a->b);
	return NULL;
}

/*
 * A progress callback that blocks (a paused terminal) stalls only its own
 * caller: another blob's fetch in the same cache completes meanwhile.
 */
static void test_progress_off_lock(void **state)
{
	struct fx *f = *state;
	struct blocking_progress b = { .called = false };
	struct sync_arg a = { 0 };
	struct pol_registration *r2;
	char path[256], path2[256];
	struct fx_wait fw;
	pthread_t t;

	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cond, NULL);
	a.f = f;
	a.r = fx_blob(f, 64 * FX_CHUNK, 101, path, sizeof(path));
	a.b = &b;
	r2 = fx_blob(f, 8 * FX_CHUNK, 102, path2, sizeof(path2));
	assert_int_equal(pthread_create(&t, NULL, sync_thread, &a), 0);
	pthread_mutex_lock(&b.lock);
	while (!b.called)
		pthread_cond_wait(&b.cond, &b.lock);
	pthread_mutex_unlock(&b.lock);
	/* The progress callback is stuck now. */
	fx_wait_init(&fw);
	assert_int_equal(cache_ensure(f->c, r2, fx_wait_done, &fw, NULL),
			 -EINPROGRESS);
	assert_int_equal(fx_wait_for(&fw), 0);
	fx_assert_cached_equal(f, r2, path2);
	pthread_mutex_lock(&b.lock);
	b.release = true;
	pthread_cond_broadcast(&b.cond);
	pthread_mutex_unlock(&b.lock);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	fx_assert_cached_equal(f, a.r, path);
	pol_registration_free(a.r);
	pol_registration_free(r2);
}

struct shrink_arg {
	const char *path;
	long long after_ms;
};

static void *shrinker(void *arg)
{
	struct shrink_arg *s = arg;

	usleep((useconds_t)(s->after_ms * 1000));
	assert_int_equal(truncate(s->path, 4096), 0);
	return NULL;
}

/*
 * A data file that shrinks while it is hashed gives an error, never
 * SIGBUS (a mapping would fault on the pages past the new end).
 */
static void test_hash_shrinking_file(void **state)
{
	struct fx *f = *state;
	const uint64_t size = (uint64_t)96 << 20;
	unsigned char *buf = malloc(HASH_PIECE);
	struct shrink_arg s;
	char path[256];
	pthread_t t;
	int fd, rc = 0, tries;

	assert_non_null(buf);
	snprintf(path, sizeof(path), "%s/shrinking.bin", f->dir);
	for (tries = 0; tries < 5 && rc == 0; tries++) {
		struct hash *h = hash_new(POL_ALGO_SHA256);

		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, (off_t)size), 0);
		s.path = path;
		s.after_ms = 5 + tries * 10;
		assert_int_equal(pthread_create(&t, NULL, shrinker, &s), 0);
		rc = hash_fd_range(fd, 0, size, h, NULL, buf);
		pthread_join(t, NULL);
		hash_free(h);
		close(fd);
	}
	/* Reaching here is the point: the process is alive. */
	assert_int_equal(rc, -EIO);
	free(buf);
}

/* A stand-in for another process holding a lease; dies with us. */
static pid_t live_holder(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	usleep(10000);
	return pid;
}

static void put_foreign_lease(struct fx *f, const struct pol_registration *r,
			      pid_t pid)
{
	struct idx_lease l = { .pid = pid, .start = idx_proc_start(pid),
			       .token = 42 };
	MDB_txn *txn;

	assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
	assert_int_equal(idx_lease_put(&f->c->idx, txn, r->digest.str, &l), 0);
	assert_int_equal(idx_commit(txn), 0);
}

/*
 * A live lease holder that shows no sign of life (a stopped prefetch) is
 * reported and given up on after the bound, not waited for forever; one
 * that beats is waited for.
 */
static void test_stuck_holder(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct fx_wait fw;
	char path[256];
	long long t0;
	pid_t pid;

	f->c->stuck_ms = 400;
	r = fx_blob(f, 2 * FX_CHUNK, 110, path, sizeof(path));
	pid = live_holder();
	put_foreign_lease(f, r, pid);
	fx_wait_init(&fw);
	t0 = af_now_ms();
	assert_int_equal(cache_ensure(f->c, r, fx_wait_done, &fw, NULL),
			 -EINPROGRESS);
	assert_int_equal(fx_wait_for(&fw), AF_ETIMEDOUT);
	assert_true(af_now_ms() - t0 < 5000);
	assert_int_equal(fx_audit_count(f, "fetch_failed", "stuck holder"), 1);
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 0);
	/* It is not a source failure: no backoff; a beating holder is fine. */
	f->c->stuck_ms = 1500;
	fx_wait_init(&fw);
	assert_int_equal(cache_ensure(f->c, r, fx_wait_done, &fw, NULL),
			 -EINPROGRESS);
	for (int i = 0; i < 8; i++) {
		struct idx_lease l = { .pid = pid, .start = idx_proc_start(pid),
				       .token = 42, .beat = af_wall_ms() };
		MDB_txn *txn;

		usleep(300000);
		assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
		assert_int_equal(idx_lease_put(&f->c->idx, txn, r->digest.str,
					       &l), 0);
		assert_int_equal(idx_commit(txn), 0);
	}
	assert_int_equal(fx_wait_calls(&fw), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_int_equal(fx_wait_for(&fw), 0);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

/* ---- item 9: no hashing under a write transaction ---------------------- */

static void make_partial(struct fx *f, const struct pol_registration *r)
{
	struct idx_rec rec;
	MDB_txn *txn;

	assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
	assert_int_equal(idx_rec_get(&f->c->idx, txn, r->digest.str, &rec,
				     true), 0);
	rec.state = CACHE_PARTIAL;
	assert_int_equal(idx_rec_put(&f->c->idx, txn, r->digest.str, &rec), 0);
	idx_rec_release(&rec);
	assert_int_equal(idx_commit(txn), 0);
}

/*
 * A resume that finds a bad chunk early hashes every later chunk with no
 * write transaction held (other writers in every process go on), and
 * drops the bad ones in one short transaction afterwards.
 */
static void test_hash_outside_write_txn(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256], dpath[512];

	r = fx_blob(f, 16 * FX_CHUNK, 120, path, sizeof(path));
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	make_partial(f, r);
	assert_non_null(cache_blob_path(f->c, &r->digest, dpath,
					sizeof(dpath)));
	fx_flip_byte(dpath, 10);		/* chunk 0 */
	fx_flip_byte(dpath, 9 * FX_CHUNK + 3);	/* chunk 9 */
	gate_set(f, NULL);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	pthread_mutex_lock(&gate.lock);
	assert_int_equal(gate.hashes, 16);
	assert_false(gate.write_held);
	pthread_mutex_unlock(&gate.lock);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

/* ---- item 4: ownership -------------------------------------------------- */

struct verify_race {
	struct fx *f;
	struct pol_registration *r;
	struct fx_wait fw;
	bool done;
};

static struct verify_race *vrace;

/*
 * While verify has judged the corrupted blob and is about to quarantine
 * it, the blob is evicted and a new fetch of it starts and creates its
 * file: verify must leave that fetch alone.
 */
static void verify_race_step(struct cache *c, const char *step,
			     const char *key)
{
	(void)c;
	(void)key;
	if (strcmp(step, "verify_judged") != 0 || vrace->done)
		return;
	vrace->done = true;
	assert_int_equal(cache_evict(vrace->f->c, &vrace->r->digest, "test"),
			 0);
	pthread_mutex_lock(&gate.lock);
	gate.step = "transfer";
	pthread_mutex_unlock(&gate.lock);
	assert_int_equal(cache_ensure(vrace->f->c, vrace->r, fx_wait_done,
				      &vrace->fw, NULL), -EINPROGRESS);
	gate_wait();
}

static void test_verify_spares_new_fetch(void **state)
{
	struct fx *f = *state;
	struct verify_race vr = { .f = f };
	char path[256], dpath[512];

	vr.r = fx_blob(f, 6 * FX_CHUNK, 130, path, sizeof(path));
	fx_wait_init(&vr.fw);
	assert_int_equal(cache_ensure_sync(f->c, vr.r, NULL, NULL), 0);
	assert_non_null(cache_blob_path(f->c, &vr.r->digest, dpath,
					sizeof(dpath)));
	fx_flip_byte(dpath, 3 * FX_CHUNK);
	vrace = &vr;
	gate_set(f, NULL);
	gate.on_step = verify_race_step;
	assert_int_equal(cache_verify(f->c, &vr.r->digest, false), -ESTALE);
	/* The new fetch kept its file and its lease. */
	assert_true(fx_file_exists(dpath));
	assert_int_equal(fx_state(f, vr.r), CACHE_PARTIAL);
	assert_int_equal(fx_audit_count(f, "verify_failed", NULL), 0);
	gate_open();
	assert_int_equal(fx_wait_for(&vr.fw), 0);
	fx_assert_cached_equal(f, vr.r, path);
	/* And verify judges the new one sound. */
	f->c->test_hook = NULL;
	assert_int_equal(cache_verify(f->c, &vr.r->digest, false), 0);
	pol_registration_free(vr.r);
}

/*
 * A fetch whose lease was taken from it (a rule-breaking neighbour) stops
 * at its next step without writing the index; it never commits.
 */
static void test_lease_lost_midway(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct cache_info info;
	struct idx_lease l;
	struct fx_wait fw;
	char path[256];
	MDB_txn *txn;
	pid_t pid;

	f->c->stuck_ms = 300;
	r = fx_blob(f, 5 * FX_CHUNK, 140, path, sizeof(path));
	gate_set(f, "transfer");
	fx_wait_init(&fw);
	assert_int_equal(cache_ensure(f->c, r, fx_wait_done, &fw, NULL),
			 -EINPROGRESS);
	gate_wait();
	pid = live_holder();
	put_foreign_lease(f, r, pid);
	gate_open();
	/* Its waiter looks again, finds the other holder, which is stuck. */
	assert_int_equal(fx_wait_for(&fw), AF_ETIMEDOUT);
	assert_int_equal(cache_stat(f->c, &r->digest, &info), 0);
	assert_int_not_equal(info.state, CACHE_VERIFIED);
	assert_int_equal(info.chunks_present, 0);
	assert_int_equal(fx_audit_count(f, "verify_ok", NULL), 0);
	assert_int_equal(fx_audit_count(f, "fetch_failed", "lost ownership"),
			 1);
	assert_int_equal(idx_begin(&f->c->idx, false, &txn), 0);
	assert_int_equal(idx_lease_get(&f->c->idx, txn, r->digest.str, &l), 0);
	assert_int_equal(l.token, 42);
	idx_abort(txn);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	f->c->test_hook = NULL;
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

/*
 * The commit re-checks the generation in its transaction: a record that
 * changed hands meanwhile is not marked verified; the waiter fetches again
 * and gets a sound blob.
 */
static void test_commit_rechecks_generation(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	struct idx_rec rec;
	struct fx_wait fw;
	char path[256];
	uint64_t gen;
	MDB_txn *txn;

	r = fx_blob(f, 3 * FX_CHUNK, 150, path, sizeof(path));
	gate_set(f, "commit");
	fx_wait_init(&fw);
	assert_int_equal(cache_ensure(f->c, r, fx_wait_done, &fw, NULL),
			 -EINPROGRESS);
	gate_wait();
	assert_int_equal(idx_begin(&f->c->idx, true, &txn), 0);
	assert_int_equal(idx_rec_get(&f->c->idx, txn, r->digest.str, &rec,
				     true), 0);
	assert_int_equal(idx_gen_next(&f->c->idx, txn, &gen), 0);
	rec.gen = gen;
	assert_int_equal(idx_rec_put(&f->c->idx, txn, r->digest.str, &rec), 0);
	idx_rec_release(&rec);
	assert_int_equal(idx_commit(txn), 0);
	f->c->test_hook = NULL;
	gate_open();
	assert_int_equal(fx_wait_for(&fw), 0);
	assert_int_equal(fx_audit_count(f, "fetch_failed", "lost ownership"),
			 1);
	assert_int_equal(fx_audit_count(f, "verify_ok", NULL), 1);
	assert_true(rec_gen(f, r) > gen);
	fx_assert_cached_equal(f, r, path);
	pol_registration_free(r);
}

/*
 * gc removes a data file no record backs, and the records that are stale
 * or quarantined, but never a file or record a live fetch owns.
 */
static void test_gc_spares_fetch(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r, *bad;
	char path[256], dpath[512], orphan[512], bpath[256];
	const char *ohex = "00000000000000000000000000000000"
			   "00000000000000000000000000000abc";
	char odigest[80];
	struct pol_digest od;
	struct fx_wait fw;
	FILE *fp;

	/* An orphan data file. */
	snprintf(odigest, sizeof(odigest), "sha256:%s", ohex);
	assert_int_equal(pol_digest_parse(odigest, &od, NULL, 0), 0);
	assert_int_equal(cache_mkdirs_for(f->c, od.str), 0);
	assert_non_null(cache_blob_path(f->c, &od, orphan, sizeof(orphan)));
	fp = fopen(orphan, "w");
	assert_non_null(fp);
	fputs("stray", fp);
	fclose(fp);
	/* A quarantined blob. */
	bad = fx_blob(f, FX_CHUNK, 160, bpath, sizeof(bpath));
	fx_flip_byte(bpath, 5);
	assert_int_equal(cache_ensure_sync(f->c, bad, NULL, NULL), AF_EDIGEST);
	assert_int_equal(fx_state(f, bad), CACHE_QUARANTINED);
	/* A fetch in flight, its record and file in place. */
	r = fx_blob(f, 4 * FX_CHUNK, 161, path, sizeof(path));
	gate_set(f, "transfer");
	fx_wait_init(&fw);
	assert_int_equal(cache_ensure(f->c, r, fx_wait_done, &fw, NULL),
			 -EINPROGRESS);
	gate_wait();
	assert_non_null(cache_blob_path(f->c, &r->digest, dpath,
					sizeof(dpath)));
	assert_true(fx_file_exists(dpath));
	/* gc with everything partial counted as stale. */
	assert_int_equal(cache_gc(f->c, time(NULL) + 3600, NULL, NULL), 0);
	assert_false(fx_file_exists(orphan));
	assert_int_equal(fx_state(f, bad), CACHE_NONE);
	assert_true(fx_file_exists(dpath));
	assert_int_equal(fx_state(f, r), CACHE_PARTIAL);
	gate_open();
	assert_int_equal(fx_wait_for(&fw), 0);
	fx_assert_cached_equal(f, r, path);
	/* A verified blob is never gc's business. */
	assert_int_equal(cache_gc(f->c, time(NULL) + 3600, NULL, NULL), 0);
	assert_int_equal(fx_state(f, r), CACHE_VERIFIED);
	pol_registration_free(r);
	pol_registration_free(bad);
}

/* A listing's decision never evicts a newer generation. */
static void test_evict_if_generation(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r;
	char path[256];
	uint64_t gen;

	r = fx_blob(f, 2 * FX_CHUNK, 170, path, sizeof(path));
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	gen = rec_gen(f, r);
	assert_int_equal(cache_evict(f->c, &r->digest, "test"), 0);
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	assert_true(rec_gen(f, r) != gen);
	assert_int_equal(cache_evict_if(f->c, &r->digest, gen, "test"),
			 -ESTALE);
	assert_int_equal(fx_state(f, r), CACHE_VERIFIED);
	assert_int_equal(cache_evict_if(f->c, &r->digest, rec_gen(f, r),
					"test"), 0);
	assert_int_equal(fx_state(f, r), CACHE_NONE);
	pol_registration_free(r);
}

struct inst_arg {
	struct cache *c;
	struct pol_registration *r;
	int rc;
};

static void *inst_thread(void *arg)
{
	struct inst_arg *a = arg;

	a->rc = cache_ensure_sync(a->c, a->r, NULL, NULL);
	return NULL;
}

/*
 * Two cache instances on one cache dir (two processes as far as the index
 * knows: their own lease tokens) never fetch one blob at once.
 */
static void test_two_instances_one_fetch(void **state)
{
	struct fx *f = *state;
	struct inst_arg a = { 0 }, b = { 0 };
	struct cache *c2 = NULL;
	char path[256];
	pthread_t ta, tb;

	assert_int_equal(cache_open(&f->cfg, f->srcs, f->audit, &c2), 0);
	a.c = f->c;
	b.c = c2;
	a.r = fx_blob(f, 48 * FX_CHUNK, 180, path, sizeof(path));
	b.r = a.r;
	assert_int_equal(pthread_create(&ta, NULL, inst_thread, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, inst_thread, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_int_equal(fx_audit_count(f, "fetch_start", NULL), 1);
	assert_int_equal(fx_audit_count(f, "verify_ok", NULL), 1);
	fx_assert_cached_equal(f, a.r, path);
	cache_close(c2);
	pol_registration_free(a.r);
}

/* ---- item 5 (cache half): the drop generation --------------------------- */

static int count_drops(void *arg, const struct pol_digest *d, bool bad)
{
	(void)d;
	(*(int *)arg) += bad ? 10 : 1;
	return 0;
}

static int drops_heard;

static void on_drop(void *arg, const struct pol_digest *d)
{
	(void)arg;
	(void)d;
	drops_heard++;
}

static void test_drop_generation(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r, *r2;
	char path[256], path2[256], dpath[512];
	uint64_t g0, g1, g2;
	int n = 0;

	drops_heard = 0;
	cache_on_drop(f->c, on_drop, NULL);
	assert_int_equal(cache_generation(f->c, &g0), 0);
	r = fx_blob(f, 2 * FX_CHUNK, 190, path, sizeof(path));
	r2 = fx_blob(f, 2 * FX_CHUNK, 191, path2, sizeof(path2));
	assert_int_equal(cache_ensure_sync(f->c, r, NULL, NULL), 0);
	assert_int_equal(cache_ensure_sync(f->c, r2, NULL, NULL), 0);
	/* Fetching is no drop. */
	assert_int_equal(cache_generation(f->c, &g1), 0);
	assert_int_equal(g1, g0);
	assert_int_equal(cache_evict(f->c, &r->digest, "test"), 0);
	assert_non_null(cache_blob_path(f->c, &r2->digest, dpath,
					sizeof(dpath)));
	fx_flip_byte(dpath, 7);
	assert_int_equal(cache_verify(f->c, &r2->digest, false), AF_EDIGEST);
	assert_int_equal(cache_generation(f->c, &g2), 0);
	assert_int_equal(g2, g0 + 2);
	assert_int_equal(drops_heard, 2);
	assert_int_equal(cache_changes_since(f->c, g0, count_drops, &n), 0);
	assert_int_equal(n, 11);	/* one evicted intact, one quarantined */
	n = 0;
	assert_int_equal(cache_changes_since(f->c, g2, count_drops, &n), 0);
	assert_int_equal(n, 0);
	/* Evicting what is not verified is no drop of servable bytes. */
	assert_int_equal(cache_evict(f->c, &r2->digest, "test"), 0);
	assert_int_equal(cache_generation(f->c, &g1), 0);
	assert_int_equal(g1, g2);
	pol_registration_free(r);
	pol_registration_free(r2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_progress_off_lock,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_hash_shrinking_file,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stuck_holder, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_hash_outside_write_txn,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_verify_spares_new_fetch,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lease_lost_midway,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_commit_rechecks_generation,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_gc_spares_fetch, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_evict_if_generation,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_two_instances_one_fetch,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_drop_generation, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
