/*
 * test_policy_ratelimit.c - the per-uid rate limit of audit lines (DESIGN
 * §8): a burst per interval, a count of what was suppressed reported once
 * when the interval ends, keys kept apart, a table that cannot overflow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy/ratelimit.h"

struct seen {
	uint32_t key[16];
	uint64_t count[16];
	int n;
};

static void record(void *arg, uint32_t key, uint64_t count)
{
	struct seen *s = arg;

	if (s->n < 16) {
		s->key[s->n] = key;
		s->count[s->n] = count;
	}
	s->n++;
}

static void test_burst_and_count(void **state)
{
	struct pol_ratelimit *rl = pol_ratelimit_new(3, 1000, 8);
	struct seen s = { .n = 0 };
	int allowed = 0;

	(void)state;
	assert_non_null(rl);
	for (int i = 0; i < 10; i++)
		allowed += pol_ratelimit_allow(rl, 1000, 100 + i);
	assert_int_equal(allowed, 3);
	/* Another uid has its own budget. */
	assert_true(pol_ratelimit_allow(rl, 1001, 200));
	/* Within the interval nothing is reported. */
	pol_ratelimit_flush(rl, 900, false, record, &s);
	assert_int_equal(s.n, 0);
	/* At its end, one report: 7 suppressed, for that uid only. */
	pol_ratelimit_flush(rl, 1100, false, record, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.key[0], 1000);
	assert_int_equal(s.count[0], 7);
	/* Reported once; the next interval starts afresh. */
	pol_ratelimit_flush(rl, 1200, false, record, &s);
	assert_int_equal(s.n, 1);
	assert_true(pol_ratelimit_allow(rl, 1000, 1300));
	pol_ratelimit_free(rl);
	pol_ratelimit_free(NULL);
}

static void test_refused_until_reported(void **state)
{
	struct pol_ratelimit *rl = pol_ratelimit_new(1, 1000, 8);
	struct seen s = { .n = 0 };

	(void)state;
	assert_true(pol_ratelimit_allow(rl, 5, 0));
	assert_false(pol_ratelimit_allow(rl, 5, 10));
	/* Past the interval, still counted until the report is made. */
	assert_false(pol_ratelimit_allow(rl, 5, 1500));
	pol_ratelimit_flush(rl, 1600, false, record, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.count[0], 2);
	assert_true(pol_ratelimit_allow(rl, 5, 1700));
	/* all: report what is pending at once (shutdown). */
	assert_false(pol_ratelimit_allow(rl, 5, 1701));
	pol_ratelimit_flush(rl, 1702, true, record, &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.count[1], 1);
	pol_ratelimit_free(rl);
}

static void test_table_full(void **state)
{
	struct pol_ratelimit *rl = pol_ratelimit_new(1, 1000, 2);
	struct seen s = { .n = 0 };

	(void)state;
	/* Two uids fill the table; more share the last slot. */
	assert_true(pol_ratelimit_allow(rl, 1, 0));
	assert_true(pol_ratelimit_allow(rl, 2, 0));
	assert_true(pol_ratelimit_allow(rl, 3, 0));
	assert_false(pol_ratelimit_allow(rl, 4, 0));
	assert_false(pol_ratelimit_allow(rl, 5, 0));
	pol_ratelimit_flush(rl, 2000, false, record, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.key[0], POL_RATELIMIT_OTHERS);
	assert_int_equal(s.count[0], 2);
	/* Idle slots are freed: a new uid gets its own again. */
	assert_true(pol_ratelimit_allow(rl, 6, 5000));
	assert_false(pol_ratelimit_allow(rl, 6, 5001));
	pol_ratelimit_flush(rl, 7000, false, record, &s);
	assert_int_equal(s.key[1], 6);
	pol_ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_and_count),
		cmocka_unit_test(test_refused_until_reported),
		cmocka_unit_test(test_table_full),
	};

	return cmocka_run_group_tests_name("policy_ratelimit", tests, NULL,
					   NULL);
}
