/*
 * test_policy_registry.c - the file registry (DESIGN §3) and channel
 * resolution (DESIGN §7).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "policy/policy.h"

#define HA "aa86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HB "bb86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HC "cc86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HD "dd86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

struct reports {
	char *msg[64];
	size_t n;
};

static void collect(void *arg, const char *msg)
{
	struct reports *r = arg;

	if (r->n < 64)
		r->msg[r->n++] = strdup(msg);
}

static bool reported(const struct reports *r, const char *a, const char *b)
{
	for (size_t i = 0; i < r->n; i++)
		if (strstr(r->msg[i], a) && (!b || strstr(r->msg[i], b)))
			return true;
	return false;
}

static void reports_free(struct reports *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->msg[i]);
	r->n = 0;
}

static char *rec(const char *project, const char *name, const char *hex,
		 const char *lifecycle, const char *channels, const char *at)
{
	char *s;

	if (asprintf(&s,
		     "{\"project\":\"%s\",\"name\":\"%s\",\"artifact_kind\":\"blob\","
		     "\"digest\":\"sha256:%s\",\"source\":{\"source_type\":\"https\","
		     "\"uri\":\"https://models.example.internal/%s\"},"
		     "\"lifecycle_state\":\"%s\",\"trust_state\":\"verified\","
		     "\"channels\":%s,\"registered_at\":\"%s\"}",
		     project, name, hex, name, lifecycle, channels, at) < 0)
		return NULL;
	return s;
}

static void put(const char *dir, const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void putrec(const char *dir, const char *rel, char *text)
{
	assert_non_null(text);
	put(dir, rel, text);
	free(text);
}

static void rm_rf(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void sub(const char *dir, const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static void test_load_dir(void **state)
{
	char dir[] = "/tmp/test_registry_XXXXXX";
	struct pol_registry *g;
	struct reports rep = { { 0 }, 0 };
	const struct pol_registration *r;
	const char *const *projects;
	char *arr;
	size_t n, first;

	(void)state;
	assert_non_null(mkdtemp(dir));
	putrec(dir, "a.json", rec("vision", "m1.bin", HA, "active", "[\"prod\"]",
				  "2026-03-01T00:00:00Z"));
	sub(dir, "b");
	{
		char *r1 = rec("vision", "m1.bin", HB, "active", "[]",
			       "2026-03-02T00:00:00Z");
		char *r3 = rec("nlp", "x.bin", HC, "active", "[]",
			       "2026-03-02T00:00:00Z");

		assert_true(asprintf(&arr,
				     "[%s,\n{\"project\":\"vision\",\"name\":\"bad.bin\","
				     "\"artifact_kind\":\"blob\",\"digest\":\"sha256:%s\"},\n%s]",
				     r1, "AA86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
				     r3) > 0);
		free(r1);
		free(r3);
		put(dir, "b/c.json", arr);
		free(arr);
	}
	put(dir, "bad.json", "{\n  \"project\": ,\n}");
	put(dir, "scalar.json", "42");
	/* The same key twice: the later registered_at wins (issue 9)... */
	putrec(dir, "dup.json", rec("vision", "m1.bin", HA, "active", "[]",
				    "2026-03-05T00:00:00Z"));

	put(dir, "notes.txt", "not json at all");
	put(dir, ".hidden.json", "{");
	sub(dir, ".git");
	put(dir, ".git/x.json", "{");
	sub(dir, "sub");
	sub(dir, "sub/deeper");
	/* ...and among equal ones, the first in path order. */
	putrec(dir, "sub/dup2.json", rec("vision", "m1.bin", HB, "active",
					 "[\"x\"]", "2026-03-02T00:00:00Z"));
	putrec(dir, "sub/deeper/d.json", rec("audio", "w.bin", HD, "revoked",
					     "[]", "2026-03-03T00:00:00Z"));
	put(dir, "empty.json", "[]");

	assert_int_equal(pol_registry_load_dir(dir, collect, &rep, &g), 0);
	for (size_t i = 0; i < rep.n; i++)
		printf("# report: %s\n", rep.msg[i]);
	assert_int_equal(pol_registry_count(g), 4);

	/* Problems named by file (and index, field, line). */
	assert_true(reported(&rep, "bad.json:2:", "invalid JSON"));
	assert_true(reported(&rep, "b/c.json[1]: ", "source: missing") ||
		    reported(&rep, "b/c.json[1]: digest:", "uppercase"));
	assert_true(reported(&rep, "scalar.json: ", NULL));
	assert_true(reported(&rep, "a.json: duplicate of dup.json",
			     "the later registered_at wins"));
	assert_true(reported(&rep, "sub/dup2.json: duplicate of b/c.json[0]",
			     "the first one loaded wins"));
	assert_false(reported(&rep, "hidden", NULL));
	assert_false(reported(&rep, ".git", NULL));
	assert_false(reported(&rep, "notes.txt", NULL));
	assert_int_equal(rep.n, 5);

	/* Sorted by project, name, digest. */
	assert_string_equal(pol_registry_at(g, 0)->project, "audio");
	assert_string_equal(pol_registry_at(g, 1)->project, "nlp");
	assert_string_equal(pol_registry_at(g, 2)->digest.str, "sha256:" HA);
	assert_string_equal(pol_registry_at(g, 3)->digest.str, "sha256:" HB);
	assert_null(pol_registry_at(g, 4));

	r = pol_registry_find(g, "vision", "m1.bin", "sha256:" HA);
	assert_non_null(r);
	assert_string_equal(r->origin, "dup.json");
	assert_int_equal(r->n_channels, 0);
	r = pol_registry_find(g, "vision", "m1.bin", "sha256:" HB);
	assert_non_null(r);
	assert_string_equal(r->origin, "b/c.json[0]");
	r = pol_registry_find(g, "audio", "w.bin", "sha256:" HD);
	assert_non_null(r);
	assert_string_equal(r->origin, "sub/deeper/d.json");
	assert_null(pol_registry_find(g, "vision", "m1.bin", "sha256:" HC));
	assert_null(pol_registry_find(g, "vision", "m2.bin", "sha256:" HA));
	assert_null(pol_registry_find(g, "zzz", "m1.bin", "sha256:" HA));
	assert_null(pol_registry_find(g, NULL, "m1.bin", "sha256:" HA));

	projects = pol_registry_projects(g, &n);
	assert_int_equal(n, 3);
	assert_string_equal(projects[0], "audio");
	assert_string_equal(projects[1], "nlp");
	assert_string_equal(projects[2], "vision");

	assert_int_equal(pol_registry_project_range(g, "vision", &first), 2);
	assert_int_equal(first, 2);
	assert_int_equal(pol_registry_project_range(g, "nlp", &first), 1);
	assert_int_equal(first, 1);
	assert_int_equal(pol_registry_project_range(g, "music", &first), 0);

	pol_registry_free(g);
	reports_free(&rep);
	rm_rf(dir);
}

static void test_load_dir_missing(void **state)
{
	struct reports rep = { { 0 }, 0 };
	struct pol_registry *g = (void *)1;

	(void)state;
	assert_int_equal(pol_registry_load_dir("/nonexistent/registry", collect,
					       &rep, &g), -ENOENT);
	assert_null(g);
	assert_true(reported(&rep, "/nonexistent/registry", NULL));
	reports_free(&rep);
	assert_int_equal(pol_registry_load_dir("/nonexistent/registry", NULL,
					       NULL, &g), -ENOENT);
}

static void test_empty(void **state)
{
	struct pol_registry *g = pol_registry_new_empty();
	size_t n = 9, first;

	(void)state;
	assert_non_null(g);
	assert_int_equal(pol_registry_count(g), 0);
	assert_null(pol_registry_at(g, 0));
	pol_registry_projects(g, &n);
	assert_int_equal(n, 0);
	assert_int_equal(pol_registry_project_range(g, "x", &first), 0);
	assert_null(pol_registry_find(g, "a", "b", "c"));
	assert_null(pol_registry_channel(g, NULL, "a", "b", "prod", NULL));
	pol_registry_free(g);
	pol_registry_free(NULL);
	assert_int_equal(pol_registry_count(NULL), 0);
}

static const char policy_json[] =
	"{\"sources\":[{\"source_type\":\"https\","
	"\"uri_prefix\":\"https://models.example.internal/\"}]}";

static void test_channels(void **state)
{
	struct reports rep = { { 0 }, 0 };
	struct pol_registry *g;
	struct pol_policy *p;
	const struct pol_registration *r;
	char *a, *b, *c, *d, *text;
	char err[256];
	bool tie;

	(void)state;
	assert_int_equal(pol_policy_parse(policy_json, strlen(policy_json),
					  "policy.json", &p, err,
					  sizeof(err)), 0);
	a = rec("vision", "m.bin", HA, "active", "[\"prod\",\"dev\"]",
		"2026-03-01T00:00:00Z");
	b = rec("vision", "m.bin", HB, "active", "[\"prod\"]",
		"2026-03-02T00:00:00Z");
	/* Newest for prod but revoked: policy refuses it, so it is skipped. */
	c = rec("vision", "m.bin", HC, "revoked", "[\"prod\",\"staging\"]",
		"2026-03-09T00:00:00Z");
	/* Same time as b: tie, the larger digest string (HD) wins. */
	d = rec("vision", "m.bin", HD, "active", "[\"prod\"]",
		"2026-03-02T00:00:00.000Z");
	assert_true(asprintf(&text, "[%s,%s,%s,%s]", a, b, c, d) > 0);
	assert_int_equal(pol_registry_parse(text, strlen(text), "list.json",
					    collect, &rep, &g), 0);
	assert_int_equal(rep.n, 0);
	assert_int_equal(pol_registry_count(g), 4);

	r = pol_registry_channel(g, p, "vision", "m.bin", "prod", &tie);
	assert_non_null(r);
	assert_string_equal(r->digest.str, "sha256:" HD);
	assert_true(tie);
	r = pol_registry_channel(g, p, "vision", "m.bin", "dev", &tie);
	assert_non_null(r);
	assert_string_equal(r->digest.str, "sha256:" HA);
	assert_false(tie);
	assert_null(pol_registry_channel(g, p, "vision", "m.bin", "staging",
					 &tie));
	assert_false(tie);
	assert_null(pol_registry_channel(g, p, "vision", "other.bin", "prod",
					 &tie));
	/* No policy: nothing readable, no channel (fail closed). */
	assert_null(pol_registry_channel(g, NULL, "vision", "m.bin", "prod",
					 NULL));
	pol_registry_free(g);

	/* Without the tie: b alone is latest. */
	free(text);
	assert_true(asprintf(&text, "[%s,%s]", a, b) > 0);
	assert_int_equal(pol_registry_parse(text, strlen(text), "list.json",
					    NULL, NULL, &g), 0);
	r = pol_registry_channel(g, p, "vision", "m.bin", "prod", &tie);
	assert_non_null(r);
	assert_string_equal(r->digest.str, "sha256:" HB);
	assert_false(tie);
	pol_registry_free(g);

	free(text);
	free(a);
	free(b);
	free(c);
	free(d);
	pol_policy_free(p);
	reports_free(&rep);
}

static void test_parse_errors(void **state)
{
	struct reports rep = { { 0 }, 0 };
	struct pol_registry *g;

	(void)state;
	assert_int_equal(pol_registry_parse("[1, \"x\", null]", 14, "x.json",
					    collect, &rep, &g), 0);
	assert_int_equal(pol_registry_count(g), 0);
	assert_int_equal(rep.n, 3);
	assert_true(reported(&rep, "x.json[0]: must be a JSON object", NULL));
	assert_true(reported(&rep, "x.json[2]: must be a JSON object", NULL));
	pol_registry_free(g);
	reports_free(&rep);
	assert_int_equal(pol_registry_parse("[", 1, "y.json", collect, &rep,
					    &g), 0);
	assert_true(reported(&rep, "y.json:1:", "invalid JSON"));
	pol_registry_free(g);
	reports_free(&rep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_dir),
		cmocka_unit_test(test_load_dir_missing),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_channels),
		cmocka_unit_test(test_parse_errors),
	};

	return cmocka_run_group_tests_name("policy_registry", tests, NULL,
					   NULL);
}
