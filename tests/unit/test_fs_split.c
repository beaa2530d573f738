/*
 * test_fs_split.c - the one parser in fs/: "<name>@<ref>" split at the
 * last '@' (DESIGN §7 paths).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fs/fs.h"

static void test_split_valid(void **state)
{
	char name[256];
	const char *ref = NULL;

	(void)state;
	assert_true(fs_split_ref("model.bin@sha256:abcd", name, sizeof(name), &ref));
	assert_string_equal(name, "model.bin");
	assert_string_equal(ref, "sha256:abcd");
	assert_true(fs_split_ref("a@prod", name, sizeof(name), &ref));
	assert_string_equal(name, "a");
	assert_string_equal(ref, "prod");
	/* The last '@' splits: names have none, but be exact about it. */
	assert_true(fs_split_ref("x@y@z", name, sizeof(name), &ref));
	assert_string_equal(name, "x@y");
	assert_string_equal(ref, "z");
}

static void test_split_invalid(void **state)
{
	char name[8];
	const char *ref = NULL;

	(void)state;
	assert_false(fs_split_ref("noref", name, sizeof(name), &ref));
	assert_false(fs_split_ref("@prod", name, sizeof(name), &ref));
	assert_false(fs_split_ref("name@", name, sizeof(name), &ref));
	assert_false(fs_split_ref("", name, sizeof(name), &ref));
	assert_false(fs_split_ref("@", name, sizeof(name), &ref));
	/* A name that does not fit the buffer is refused, never truncated. */
	assert_false(fs_split_ref("12345678@prod", name, sizeof(name), &ref));
	assert_true(fs_split_ref("1234567@prod", name, sizeof(name), &ref));
	assert_string_equal(name, "1234567");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_valid),
		cmocka_unit_test(test_split_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
