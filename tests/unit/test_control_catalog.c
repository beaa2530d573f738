/*
 * test_control_catalog.c - the catalog (control/catalog.h): snapshots that
 * outlive a reload, the last good registry and policy kept through errors
 * (issue 10: a transient registry load error never empties the registry),
 * reload on change and on request.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "control/catalog.h"
#include "policy/af.h"
#include "policy/config.h"
#include "policy/policy.h"

#define HA "aa86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HB "bb86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

struct world {
	char dir[64];
	char reg[128];
	char policy[128];
	struct pol_config cfg;
	struct ctl_catalog *cat;
};

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void put_rec(struct world *w, const char *file, const char *name,
		    const char *hex)
{
	char path[256], *s;

	snprintf(path, sizeof(path), "%s/%s", w->reg, file);
	assert_true(asprintf(&s,
		"{\"project\":\"vision\",\"name\":\"%s\",\"artifact_kind\":\"blob\","
		"\"digest\":\"sha256:%s\",\"source\":{\"source_type\":\"https\","
		"\"uri\":\"https://models.example.internal/%s\"},"
		"\"lifecycle_state\":\"active\",\"trust_state\":\"verified\","
		"\"channels\":[\"prod\"],\"registered_at\":\"2026-03-09T12:00:00Z\"}",
		name, hex, name) > 0);
	put(path, s);
	free(s);
}

static const char good_policy[] =
	"{\"digest_algorithms\":[\"sha256\"],"
	"\"readable_lifecycle_states\":[\"active\"],"
	"\"min_trust_state\":\"verified\","
	"\"sources\":[{\"source_type\":\"https\","
	"\"uri_prefix\":\"https://models.example.internal/\"}]}";

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	snprintf(w->dir, sizeof(w->dir), "/tmp/aftest-catalog.XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	snprintf(w->reg, sizeof(w->reg), "%s/registry", w->dir);
	snprintf(w->policy, sizeof(w->policy), "%s/policy.json", w->dir);
	assert_int_equal(mkdir(w->reg, 0755), 0);
	put(w->policy, good_policy);
	put_rec(w, "a.json", "a.bin", HA);
	assert_int_equal(pol_config_init(&w->cfg), 0);
	free(w->cfg.registry_dir);
	w->cfg.registry_dir = strdup(w->reg);
	w->cfg.policy_file = strdup(w->policy);
	w->cfg.registry_refresh_ms = 50;
	assert_int_equal(ctl_catalog_new(&w->cfg, NULL, &w->cat), 0);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	char cmd[128];

	ctl_catalog_free(w->cat);
	pol_config_release(&w->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", w->dir);
	assert_int_equal(system(cmd), 0);
	free(w);
	return 0;
}

static size_t count(struct ctl_catalog *cat)
{
	struct ctl_snap *s = ctl_catalog_snap(cat);
	size_t n = ctl_snap_count(s);

	ctl_snap_put(s);
	return n;
}

static bool has_policy(struct ctl_catalog *cat)
{
	struct ctl_snap *s = ctl_catalog_snap(cat);
	bool yes = ctl_snap_policy(s) != NULL;

	ctl_snap_put(s);
	return yes;
}

static void test_empty_before_load(void **state)
{
	struct world *w = *state;

	assert_int_equal(count(w->cat), 0);
	assert_false(has_policy(w->cat));
}

static void test_load_and_snapshot_outlives_reload(void **state)
{
	struct world *w = *state;
	struct ctl_snap *old;
	uint64_t gen;

	assert_int_equal(ctl_catalog_load(w->cat, true), 0);
	assert_int_equal(count(w->cat), 1);
	assert_true(has_policy(w->cat));
	old = ctl_catalog_snap(w->cat);
	gen = ctl_snap_generation(old);
	put_rec(w, "b.json", "b.bin", HB);
	assert_int_equal(ctl_catalog_load(w->cat, false), 0);
	assert_int_equal(count(w->cat), 2);
	/* The reader's snapshot is intact and still the old one. */
	assert_int_equal(ctl_snap_count(old), 1);
	assert_non_null(ctl_snap_find(old, "vision", "a.bin", "sha256:" HA));
	ctl_snap_put(old);
	old = ctl_catalog_snap(w->cat);
	assert_true(ctl_snap_generation(old) > gen);
	ctl_snap_put(old);
}

static void test_registry_dir_gone_keeps_last_good(void **state)
{
	struct world *w = *state;
	char moved[160];

	assert_int_equal(ctl_catalog_load(w->cat, true), 0);
	assert_int_equal(count(w->cat), 1);
	snprintf(moved, sizeof(moved), "%s.moved", w->reg);
	assert_int_equal(rename(w->reg, moved), 0);
	assert_int_equal(ctl_catalog_load(w->cat, false), 0);
	assert_int_equal(count(w->cat), 1);	/* not emptied */
	assert_true(has_policy(w->cat));
	assert_int_equal(rename(moved, w->reg), 0);
	put_rec(w, "b.json", "b.bin", HB);
	assert_int_equal(ctl_catalog_load(w->cat, false), 0);
	assert_int_equal(count(w->cat), 2);
}

static void test_bad_policy(void **state)
{
	struct world *w = *state;
	struct ctl_snap *s;

	put(w->policy, "{\"digest_algorithms\": [\"md5\"]}");
	/* At mount time a broken policy is fatal... */
	assert_int_equal(ctl_catalog_load(w->cat, true), AF_EPARSE);
	put(w->policy, good_policy);
	assert_int_equal(ctl_catalog_load(w->cat, true), 0);
	/* ...later the last good one stays, and the registry still reloads. */
	put(w->policy, "not json");
	put_rec(w, "b.json", "b.bin", HB);
	assert_int_equal(ctl_catalog_load(w->cat, false), 0);
	assert_int_equal(count(w->cat), 2);
	s = ctl_catalog_snap(w->cat);
	assert_non_null(ctl_snap_policy(s));
	/* The kept policy still decides. */
	assert_int_equal(pol_policy_decide(ctl_snap_policy(s),
		ctl_snap_find(s, "vision", "b.bin", "sha256:" HB), NULL, 0),
		0);
	ctl_snap_put(s);
}

struct hook {
	int calls;
	char why[16];
};

static void on_reload(void *arg, const char *why)
{
	struct hook *h = arg;

	snprintf(h->why, sizeof(h->why), "%s", why);
	__atomic_add_fetch(&h->calls, 1, __ATOMIC_SEQ_CST);
}

static bool wait_calls(struct hook *h, int n)
{
	for (int i = 0; i < 300; i++) {
		if (__atomic_load_n(&h->calls, __ATOMIC_SEQ_CST) >= n)
			return true;
		usleep(10000);
	}
	return false;
}

static void test_thread_reloads_on_change_and_request(void **state)
{
	struct world *w = *state;
	struct hook h = { 0 };

	assert_int_equal(ctl_catalog_load(w->cat, true), 0);
	ctl_catalog_on_reload(w->cat, on_reload, &h);
	assert_int_equal(ctl_catalog_start(w->cat), 0);
	put_rec(w, "b.json", "b.bin", HB);
	assert_true(wait_calls(&h, 1));
	assert_string_equal(h.why, "change");
	assert_int_equal(count(w->cat), 2);
	ctl_catalog_request_reload(w->cat);
	assert_true(wait_calls(&h, 2));
	assert_string_equal(h.why, "signal");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_before_load, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_load_and_snapshot_outlives_reload,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_dir_gone_keeps_last_good,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread_reloads_on_change_and_request,
						setup, teardown),
	};

	af_log_setup(AF_LOG_ERROR, AF_LOG_TEXT, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
