/*
 * test_fs_inodes.c - the inode table (fs/inode.c): lookup counts and
 * forget (FUSE's inode lifetime), references held by requests, numbers
 * never reused for another name, the root kept, growth and shrinkage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "fs/fs_int.h"

static const char D1[] = "sha256:aa86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
static const char D2[] = "sha256:bb86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

static void test_root(void **state)
{
	struct fs_inodes t;
	struct fs_inode *r;

	(void)state;
	assert_int_equal(fs_inodes_init(&t), 0);
	r = fs_inodes_find(&t, 1);
	assert_non_null(r);
	assert_int_equal(r->kind, FS_ROOT);
	fs_inode_put(&t, r);
	/* The kernel forgetting the root changes nothing. */
	fs_inodes_forget(&t, 1, 100);
	assert_non_null(r = fs_inodes_find(&t, 1));
	fs_inode_put(&t, r);
	assert_int_equal(fs_inodes_count(&t), 1);
	fs_inodes_release(&t);
}

static void test_lookup_forget(void **state)
{
	struct fs_inodes t;
	struct fs_inode *n, *m;
	uint64_t ino;

	(void)state;
	assert_int_equal(fs_inodes_init(&t), 0);
	n = fs_inodes_get(&t, FS_BLOB, "vision", "m.bin", D1);
	assert_non_null(n);
	ino = n->ino;
	assert_true(ino > 1);
	/* The same key gives the same inode while it lives. */
	m = fs_inodes_get(&t, FS_BLOB, "vision", "m.bin", D1);
	assert_ptr_equal(m, n);
	fs_inode_put(&t, m);
	assert_int_equal(fs_inodes_number(&t, FS_BLOB, "vision", "m.bin", D1),
			 ino);

	/* Two lookups handed to the kernel; the request's reference goes. */
	fs_inode_lookup(&t, n);
	fs_inode_lookup(&t, n);
	fs_inode_put(&t, n);
	assert_int_equal(fs_inodes_count(&t), 2);
	m = fs_inodes_find(&t, ino);
	assert_ptr_equal(m, n);
	fs_inode_put(&t, m);

	/* Forgetting one of two keeps it; the second frees it. */
	fs_inodes_forget(&t, ino, 1);
	assert_int_equal(fs_inodes_count(&t), 2);
	fs_inodes_forget(&t, ino, 1);
	assert_int_equal(fs_inodes_count(&t), 1);
	assert_null(fs_inodes_find(&t, ino));
	assert_int_equal(fs_inodes_number(&t, FS_BLOB, "vision", "m.bin", D1), 0);

	/* A later lookup of the same name gets a new number. */
	n = fs_inodes_get(&t, FS_BLOB, "vision", "m.bin", D1);
	assert_non_null(n);
	assert_true(n->ino > ino);
	fs_inode_put(&t, n);
	/* No lookup counted: the last reference frees it at once. */
	assert_int_equal(fs_inodes_count(&t), 1);

	/* Forgetting an unknown number, or more than counted, is harmless. */
	fs_inodes_forget(&t, 999999, 1);
	n = fs_inodes_get(&t, FS_CHANNEL, "vision", "m.bin", "prod");
	fs_inode_lookup(&t, n);
	fs_inode_put(&t, n);
	fs_inodes_forget(&t, n->ino, 5);
	assert_int_equal(fs_inodes_count(&t), 1);
	fs_inodes_release(&t);
}

/* A reference held by a request (or an open handle) outlives the forget. */
static void test_forget_while_held(void **state)
{
	struct fs_inodes t;
	struct fs_inode *n, *again;
	uint64_t ino;

	(void)state;
	assert_int_equal(fs_inodes_init(&t), 0);
	n = fs_inodes_get(&t, FS_BLOB, "vision", "m.bin", D1);
	ino = n->ino;
	fs_inode_lookup(&t, n);
	fs_inode_hold(&t, n);			/* an open handle */
	fs_inode_put(&t, n);			/* the lookup request ends */
	fs_inodes_forget(&t, ino, 1);
	/* Still there, same number, for the handle. */
	again = fs_inodes_find(&t, ino);
	assert_ptr_equal(again, n);
	fs_inode_put(&t, again);
	/* A new lookup in between resurrects the same inode. */
	again = fs_inodes_get(&t, FS_BLOB, "vision", "m.bin", D1);
	assert_ptr_equal(again, n);
	fs_inode_lookup(&t, again);
	fs_inode_put(&t, again);
	fs_inode_put(&t, n);			/* the handle goes */
	assert_int_equal(fs_inodes_count(&t), 2);
	fs_inodes_forget(&t, ino, 1);
	assert_int_equal(fs_inodes_count(&t), 1);
	fs_inodes_release(&t);
}

/* Numbers are never given twice, even to the same key after a forget. */
static void test_numbers_not_reused(void **state)
{
	struct fs_inodes t;
	uint64_t last = 1;
	char name[32];

	(void)state;
	assert_int_equal(fs_inodes_init(&t), 0);
	for (int round = 0; round < 20; round++) {
		uint64_t inos[1000];

		for (int i = 0; i < 1000; i++) {
			struct fs_inode *n;

			snprintf(name, sizeof(name), "f%d.bin", i % 500);
			n = fs_inodes_get(&t, FS_BLOB, "vision", name,
					  i < 500 ? D1 : D2);
			assert_non_null(n);
			assert_true(n->ino > last);
			last = n->ino;
			inos[i] = n->ino;
			fs_inode_lookup(&t, n);
			fs_inode_put(&t, n);
		}
		assert_int_equal(fs_inodes_count(&t), 1001);
		/* Each found by number, then forgotten in a batch. */
		for (int i = 0; i < 1000; i++) {
			struct fs_inode *n = fs_inodes_find(&t, inos[i]);

			assert_non_null(n);
			assert_int_equal(n->ino, inos[i]);
			fs_inode_put(&t, n);
			fs_inodes_forget(&t, inos[i], 1);
		}
		/* Memory follows: only the root is left. */
		assert_int_equal(fs_inodes_count(&t), 1);
	}
	fs_inodes_release(&t);
}

static void count_live(void *arg, const struct fs_inode *n)
{
	(void)n;
	(*(int *)arg)++;
}

static void test_foreach(void **state)
{
	struct fs_inodes t;
	struct fs_inode *a, *b;
	int live = 0;

	(void)state;
	assert_int_equal(fs_inodes_init(&t), 0);
	a = fs_inodes_get(&t, FS_PROJECT, "vision", NULL, NULL);
	b = fs_inodes_get(&t, FS_BLOB, "vision", "m.bin", D1);
	fs_inode_lookup(&t, a);
	/* b is held but the kernel has no lookup of it: not visited. */
	fs_inodes_foreach(&t, count_live, &live);
	assert_int_equal(live, 2);	/* the root and a */
	fs_inode_put(&t, a);
	fs_inode_put(&t, b);
	fs_inodes_release(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root),
		cmocka_unit_test(test_lookup_forget),
		cmocka_unit_test(test_forget_while_held),
		cmocka_unit_test(test_numbers_not_reused),
		cmocka_unit_test(test_foreach),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
