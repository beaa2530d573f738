/*
 * test_cache_docs.c - documents of other rooms in the cache index
 * (cache.h cache_doc_*): put, get (a copy), replace, delete, names by
 * prefix, bad names and sizes refused, kept across a close and reopen.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cache/cache.h"
#include "policy/config.h"

struct names {
	char v[8][64];
	int n;
};

static int collect(void *arg, const char *name)
{
	struct names *nm = arg;

	if (nm->n < 8)
		snprintf(nm->v[nm->n++], sizeof(nm->v[0]), "%s", name);
	return 0;
}

static void test_docs(void **state)
{
	char dir[] = "/tmp/aftest-docs.XXXXXX", cmd[64], *buf, big[300];
	struct pol_config cfg;
	struct cache *c;
	struct names nm = { .n = 0 };
	size_t len;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(pol_config_init(&cfg), 0);
	free(cfg.cache_dir);
	cfg.cache_dir = strdup(dir);
	assert_int_equal(cache_open(&cfg, NULL, NULL, &c), 0);

	assert_int_equal(cache_doc_get(c, "cp:a:v1/policy", &buf, &len), -ENOENT);
	assert_int_equal(cache_doc_put(c, "cp:a:v1/policy", "{\"x\":1}", 7), 0);
	assert_int_equal(cache_doc_put(c, "cp:a:v1/projects", "[]", 2), 0);
	assert_int_equal(cache_doc_put(c, "cp:b:v1/projects", "[\"z\"]", 5), 0);
	/* Binary-safe, NUL-terminated copy. */
	assert_int_equal(cache_doc_put(c, "cp:a:bin", "a\0b", 3), 0);
	assert_int_equal(cache_doc_get(c, "cp:a:bin", &buf, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "a\0b", 4);
	free(buf);
	/* Replace. */
	assert_int_equal(cache_doc_put(c, "cp:a:v1/projects", "[\"v\"]", 5), 0);
	assert_int_equal(cache_doc_get(c, "cp:a:v1/projects", &buf, &len), 0);
	assert_string_equal(buf, "[\"v\"]");
	free(buf);
	/* Names by prefix, in order. */
	assert_int_equal(cache_doc_names(c, "cp:a:", collect, &nm), 0);
	assert_int_equal(nm.n, 3);
	assert_string_equal(nm.v[0], "cp:a:bin");
	assert_string_equal(nm.v[1], "cp:a:v1/policy");
	assert_string_equal(nm.v[2], "cp:a:v1/projects");
	/* Bad names and sizes. */
	memset(big, 'n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(cache_doc_put(c, "", "x", 1), -EINVAL);
	assert_int_equal(cache_doc_put(c, big, "x", 1), -EINVAL);
	assert_int_equal(cache_doc_put(c, "cp:a:huge", big, CACHE_DOC_MAX + 1),
			 -EINVAL);
	/* Delete. */
	assert_int_equal(cache_doc_del(c, "cp:a:bin"), 0);
	assert_int_equal(cache_doc_del(c, "cp:a:bin"), -ENOENT);
	cache_close(c);

	/* Kept across a close and reopen (a restart). */
	assert_int_equal(cache_open(&cfg, NULL, NULL, &c), 0);
	assert_int_equal(cache_doc_get(c, "cp:b:v1/projects", &buf, &len), 0);
	assert_string_equal(buf, "[\"z\"]");
	free(buf);
	nm.n = 0;
	assert_int_equal(cache_doc_names(c, "cp:", collect, &nm), 0);
	assert_int_equal(nm.n, 3);
	cache_close(c);
	pol_config_release(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_docs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
