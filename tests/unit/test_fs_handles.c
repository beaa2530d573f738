/*
 * test_fs_handles.c - the open-handle table (fs/handle.c): ids, references
 * held by requests in flight, and the free deferred to the last reference
 * after a release.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "fs/fs_int.h"

static int freed;

static void count_free(void *obj)
{
	freed++;
	free(obj);
}

static void test_add_get_close(void **state)
{
	struct fs_handles t;
	uint64_t a, b;
	int *x = malloc(sizeof(*x)), *y = malloc(sizeof(*y));

	(void)state;
	freed = 0;
	assert_int_equal(fs_handles_init(&t), 0);
	a = fs_handles_add(&t, x, count_free);
	b = fs_handles_add(&t, y, count_free);
	assert_true(a > 0 && b > 0 && a != b);
	assert_ptr_equal(fs_handles_get(&t, a), x);
	fs_handles_put(&t, a);
	fs_handles_close(&t, a);
	assert_int_equal(freed, 1);		/* no reference: freed at once */
	assert_null(fs_handles_get(&t, a));	/* a released id is gone */
	fs_handles_close(&t, a);		/* twice: nothing */
	assert_int_equal(freed, 1);
	assert_null(fs_handles_get(&t, 999999));
	fs_handles_put(&t, 999999);		/* unknown: nothing */
	fs_handles_release_all(&t);
	assert_int_equal(freed, 2);		/* y freed at teardown */
}

static void test_release_while_in_use(void **state)
{
	struct fs_handles t;
	int *x = malloc(sizeof(*x));
	uint64_t a;

	(void)state;
	freed = 0;
	assert_int_equal(fs_handles_init(&t), 0);
	a = fs_handles_add(&t, x, count_free);
	/* Two requests in flight (a read and a readdir, say)... */
	assert_ptr_equal(fs_handles_get(&t, a), x);
	assert_ptr_equal(fs_handles_get(&t, a), x);
	/* ...when the release comes: nothing is freed under them. */
	fs_handles_close(&t, a);
	assert_int_equal(freed, 0);
	assert_null(fs_handles_get(&t, a));	/* no new user after release */
	fs_handles_put(&t, a);
	assert_int_equal(freed, 0);
	fs_handles_put(&t, a);
	assert_int_equal(freed, 1);		/* the last reference frees */
	fs_handles_release_all(&t);
	assert_int_equal(freed, 1);
}

static void test_many_ids(void **state)
{
	struct fs_handles t;
	uint64_t ids[10000];

	(void)state;
	freed = 0;
	assert_int_equal(fs_handles_init(&t), 0);
	for (int i = 0; i < 10000; i++) {
		int *v = malloc(sizeof(*v));

		*v = i;
		ids[i] = fs_handles_add(&t, v, count_free);
		assert_true(ids[i] > 0);
	}
	for (int i = 0; i < 10000; i += 2) {
		int *v = fs_handles_get(&t, ids[i]);

		assert_non_null(v);
		assert_int_equal(*v, i);
		fs_handles_put(&t, ids[i]);
		fs_handles_close(&t, ids[i]);
	}
	assert_int_equal(freed, 5000);
	fs_handles_release_all(&t);
	assert_int_equal(freed, 10000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_get_close),
		cmocka_unit_test(test_release_while_in_use),
		cmocka_unit_test(test_many_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
