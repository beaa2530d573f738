/*
 * test_cache_hashing.c - blobs fetched together are hashed together
 * (issue 16, shards): one hashing thread per blob in flight, at most
 * c->hash_slots of them at once (the CPUs the process may run on), and
 * the counters that show it (hashed bytes, the hashers' CPU, the peak).
 *
 * The cache's test seam (c->test_hook) runs at "hash_chunk" inside the
 * slot, before a chunk is hashed: the first hashers to arrive wait there
 * until as many are inside as the test expects, then stay a moment so that
 * one too many would show.
 */
#include "cache_fixture.h"

#define NBLOBS 4
#define BLOB_SIZE (8 * FX_CHUNK)

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned inside;	/* hashers in the hook now */
	unsigned peak;		/* most at once */
	unsigned target;	/* the first ones wait for this many */
	bool released;		/* the target was met (or waited for long enough) */
} hk = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, false };

static void hash_hook(struct cache *c, const char *step, const char *key)
{
	long long end = af_now_ms() + 3000;

	(void)c;
	(void)key;
	if (strcmp(step, "hash_chunk") != 0)
		return;
	pthread_mutex_lock(&hk.lock);
	hk.inside++;
	if (hk.inside > hk.peak)
		hk.peak = hk.inside;
	pthread_cond_broadcast(&hk.cond);
	while (!hk.released && hk.inside < hk.target && af_now_ms() < end) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&hk.cond, &hk.lock, &ts);
	}
	if (!hk.released) {
		/* All there: a hasher past the limit would come in now. */
		pthread_mutex_unlock(&hk.lock);
		usleep(100 * 1000);
		pthread_mutex_lock(&hk.lock);
		hk.released = true;
		pthread_cond_broadcast(&hk.cond);
	}
	hk.inside--;
	pthread_mutex_unlock(&hk.lock);
}

static void hook_reset(unsigned target)
{
	pthread_mutex_lock(&hk.lock);
	hk.inside = 0;
	hk.peak = 0;
	hk.target = target;
	hk.released = false;
	pthread_mutex_unlock(&hk.lock);
}

static unsigned hook_peak(void)
{
	unsigned n;

	pthread_mutex_lock(&hk.lock);
	n = hk.peak;
	pthread_mutex_unlock(&hk.lock);
	return n;
}

/* Fetches NBLOBS blobs at once with slots hashing slots; checks bytes. */
static void fetch_together(struct fx *f, unsigned slots, unsigned seed0)
{
	struct pol_registration *r[NBLOBS];
	struct fx_wait w[NBLOBS];
	char path[NBLOBS][256];

	f->c->hash_slots = slots;
	f->c->test_hook = hash_hook;
	for (int i = 0; i < NBLOBS; i++) {
		r[i] = fx_blob(f, BLOB_SIZE, seed0 + (unsigned)i, path[i],
			       sizeof(path[i]));
		fx_wait_init(&w[i]);
	}
	for (int i = 0; i < NBLOBS; i++)
		assert_int_equal(cache_ensure(f->c, r[i], fx_wait_done, &w[i],
					      NULL), -EINPROGRESS);
	for (int i = 0; i < NBLOBS; i++) {
		assert_int_equal(fx_wait_for(&w[i]), 0);
		fx_assert_cached_equal(f, r[i], path[i]);
		pol_registration_free(r[i]);
	}
	f->c->test_hook = NULL;
}

/* Four blobs, three CPUs: three hash at once, never four. */
static void test_blobs_hash_at_once(void **state)
{
	struct fx *f = *state;
	struct cache_counters ctr;

	hook_reset(3);
	fetch_together(f, 3, 700);
	assert_int_equal(hook_peak(), 3);
	cache_get_counters(f->c, &ctr);
	assert_int_equal(ctr.hashing_peak, 3);
	assert_int_equal(ctr.hash_slots, 3);
	assert_int_equal(ctr.hashed_bytes, (uint64_t)NBLOBS * BLOB_SIZE);
	assert_true(ctr.hash_cpu_ns > 0);
}

/* One CPU: the blobs still all verify, hashed one at a time. */
static void test_one_slot(void **state)
{
	struct fx *f = *state;
	struct cache_counters ctr;

	hook_reset(1);
	fetch_together(f, 1, 710);
	assert_int_equal(hook_peak(), 1);
	cache_get_counters(f->c, &ctr);
	assert_int_equal(ctr.hashing_peak, 1);
}

/* By default, as many slots as CPUs the process may run on. */
static void test_default_slots(void **state)
{
	struct fx *f = *state;
	struct cache_counters ctr;
	cpu_set_t set;

	cache_get_counters(f->c, &ctr);
	assert_int_equal(ctr.hash_slots, cache_cpus());
	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	assert_int_equal(cache_cpus(), (unsigned)CPU_COUNT(&set));
	assert_true(cache_cpus() >= 1);
	assert_int_equal(ctr.hashed_bytes, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_blobs_hash_at_once,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_one_slot, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_default_slots, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
