/*
 * test_sources_cred.c - the credential provider (sources/cred.c, DESIGN
 * §5, §5b): credentials.dir with the longest scope winning, a malformed
 * file named once while the others still work, refusals audited as
 * credential_refused (naming the file or the helper, never a secret), the
 * helper (answer, null, non-zero exit, garbage, a hang killed after the
 * timeout, an answer for another scope), the cache of helper answers,
 * renewal before expiry, and a slow helper delaying only the credential
 * that needs it. A real helper script and real files in a temp folder.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

#include "policy/af.h"
#include "policy/audit.h"
#include "policy/config.h"
#include "policy/cred.h"
#include "policy/policy.h"
#include "sources/cred_int.h"
#include "sources/source.h"

#define SECRET "hunter2-s3cr3t"

struct fx {
	char dir[64];
	char creds[128];
	char helper[128];
	char audit_path[128];
	struct pol_config cfg;
	struct audit *audit;
	struct cred_provider *p;
};

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void iso(long long t, char *buf, size_t len)
{
	af_rfc3339(t, buf, len);
}

static void cred_file(struct fx *f, const char *name, const char *type,
		      const char *scope, long long expires, const char *extra)
{
	char path[256], doc[1024], when[32];

	iso(expires, when, sizeof(when));
	snprintf(path, sizeof(path), "%s/%s", f->creds, name);
	if (strcmp(type, "s3") == 0)
		snprintf(doc, sizeof(doc),
			 "{\"source_type\": \"s3\", \"scope\": \"%s\", "
			 "\"expires_at\": \"%s\", \"access_key_id\": \"%s\", "
			 "\"secret_access_key\": \"" SECRET "\"%s}",
			 scope, when, name, extra ? extra : "");
	else
		snprintf(doc, sizeof(doc),
			 "{\"source_type\": \"%s\", \"scope\": \"%s\", "
			 "\"expires_at\": \"%s\", \"bearer_token\": \"" SECRET
			 "-%s\"%s}", type, scope, when, name,
			 extra ? extra : "");
	write_text(path, doc, 0600);
}

/*
 * The helper: what it answers depends on the uri in its request.
 * It counts its runs in $dir/runs and writes its pid to $dir/pid.
 */
static const char helper_script[] =
	"#!/bin/sh\n"
	"dir=$(dirname \"$0\")\n"
	"echo $$ >\"$dir/pid\"\n"
	"echo run >>\"$dir/runs\"\n"
	"req=$(cat)\n"
	"uri=$(printf '%s' \"$req\" | sed 's/.*\"uri\":\"\\([^\"]*\\)\".*/\\1/')\n"
	"now=$(date +%s)\n"
	"exp=$(date -u -d @$((now + 3600)) +%Y-%m-%dT%H:%M:%SZ)\n"
	"scope=s3://hbkt/\n"
	"case $uri in\n"
	"*/null/*) echo null; exit 0 ;;\n"
	"*/exit3/*) echo '{\"oops\": 1}'; exit 3 ;;\n"
	"*/garbage/*) echo 'token=" SECRET "'; exit 0 ;;\n"
	"*/hang/*) sleep 30; exit 0 ;;\n"
	"*/slow/*) sleep 2 ;;\n"
	"*/short/*) exp=$(date -u -d @$((now + 3)) +%Y-%m-%dT%H:%M:%SZ) ;;\n"
	"*/scope/*) scope=s3://elsewhere/ ;;\n"
	"*/long/*) exp=$(date -u -d @$((now + 86400)) +%Y-%m-%dT%H:%M:%SZ) ;;\n"
	"esac\n"
	"n=$(wc -l <\"$dir/runs\")\n"
	"printf '{\"source_type\": \"s3\", \"scope\": \"%s\", \"expires_at\": \"%s\", "
	"\"access_key_id\": \"AKH%s\", \"secret_access_key\": \"" SECRET "\"}\\n' "
	"\"$scope\" \"$exp\" \"$n\"\n";

static int rm_cb(const char *p, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/af-cred-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->creds, sizeof(f->creds), "%s/creds", f->dir);
	snprintf(f->helper, sizeof(f->helper), "%s/helper", f->dir);
	snprintf(f->audit_path, sizeof(f->audit_path), "%s/audit.jsonl",
		 f->dir);
	mkdir(f->creds, 0700);
	write_text(f->helper, helper_script, 0755);
	if (pol_config_init(&f->cfg) != 0)
		return -1;
	f->cfg.credentials_dir = strdup(f->creds);
	f->cfg.credentials_helper = strdup(f->helper);
	f->cfg.credentials_helper_timeout_ms = 4000;
	if (audit_open(f->audit_path, false, &f->audit) != 0)
		return -1;
	if (cred_provider_new(&f->cfg, f->audit, &f->p) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	cred_provider_free(f->p);
	audit_close(f->audit);
	pol_config_release(&f->cfg);
	nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct pol_registration *reg(const char *type, const char *uri)
{
	struct pol_registration *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	assert_int_equal(pol_source_type_parse(type, &r->source_type), 0);
	r->uri = strdup(uri);
	r->project = strdup("vision");
	r->name = strdup("m.bin");
	assert_int_equal(pol_digest_parse("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
					  &r->digest, NULL, 0), 0);
	return r;
}

struct waker {
	pthread_mutex_t lock;
	int calls;
};

static void on_wake(void *arg)
{
	struct waker *w = arg;

	pthread_mutex_lock(&w->lock);
	w->calls++;
	pthread_mutex_unlock(&w->lock);
}

/* Waits until the subscription leaves CRED_PENDING; at most limit_ms. */
static enum cred_state settle(struct cred_sub *s, struct cred_ref **out,
			      char *reason, size_t len, long limit_ms)
{
	long long t0 = af_now_ms();
	enum cred_state st;

	for (;;) {
		st = cred_sub_get(s, out, reason, len);
		if (st != CRED_PENDING)
			return st;
		if (af_now_ms() - t0 > limit_ms)
			return st;
		usleep(20000);
	}
}

static struct cred_sub *subscribe(struct fx *f, const char *type,
				  const char *uri, struct waker *w)
{
	struct pol_registration *r = reg(type, uri);
	struct cred_sub *s = NULL;

	assert_int_equal(cred_sub_new(f->p, r, w ? on_wake : NULL, w, &s), 0);
	pol_registration_free(r);
	return s;
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	if (!fp)
		return strdup("");
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return buf;
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static int helper_runs(struct fx *f)
{
	struct cred_stats st;

	cred_provider_stats(f->p, &st);
	return (int)st.helper_runs;
}

static void test_dir_longest_scope(void **state)
{
	struct fx *f = *state;
	long long now = time(NULL);
	struct waker w = { PTHREAD_MUTEX_INITIALIZER, 0 };
	struct cred_ref *ref;
	struct cred_sub *s;
	char reason[512], *audit;

	cred_file(f, "a.json", "s3", "s3://bkt/", now + 3600, NULL);
	cred_file(f, "b.json", "s3", "s3://bkt/models", now + 3600, NULL);
	cred_file(f, "c.json", "gcs", "gs://bkt/", now + 3600, NULL);
	{
		char p[256];

		snprintf(p, sizeof(p), "%s/bad.json", f->creds);
		write_text(p, "{\"source_type\": \"s3\", \"bearer_token\": \"" SECRET "\"", 0600);
		snprintf(p, sizeof(p), "%s/.tmp.json", f->creds);
		write_text(p, "garbage being written", 0600);
		snprintf(p, sizeof(p), "%s/notes.txt", f->creds);
		write_text(p, "not a credential", 0600);
	}
	s = subscribe(f, "s3", "s3://bkt/models/x.bin", &w);
	assert_int_equal(settle(s, &ref, reason, sizeof(reason), 3000),
			 CRED_READY);
	assert_string_equal(ref->c->access_key_id, "b.json");
	cred_put(ref);
	assert_true(w.calls >= 1);
	cred_sub_free(s);
	/* The boundary: "s3://bkt/models" does not cover "models2/". */
	s = subscribe(f, "s3", "s3://bkt/models2/x.bin", NULL);
	assert_int_equal(settle(s, &ref, reason, sizeof(reason), 3000),
			 CRED_READY);
	assert_string_equal(ref->c->access_key_id, "a.json");
	cred_put(ref);
	cred_sub_free(s);
	/* Another type never borrows a credential. */
	s = subscribe(f, "gcs", "gs://bkt/o", NULL);
	assert_int_equal(settle(s, &ref, reason, sizeof(reason), 3000),
			 CRED_READY);
	assert_string_equal(ref->c->bearer_token, SECRET "-c.json");
	cred_put(ref);
	cred_sub_free(s);
	/* The helper was never asked: a file matched each time. */
	assert_int_equal(helper_runs(f), 0);
	audit = slurp(f->audit_path);
	/* The malformed file is named, once, without its contents. */
	assert_int_equal(count_of(audit, "bad.json"), 1);
	assert_non_null(strstr(audit, "\"event\":\"credential_refused\""));
	assert_null(strstr(audit, SECRET));
	assert_null(strstr(audit, ".tmp.json"));
	assert_null(strstr(audit, "notes.txt"));
	free(audit);
}

static void test_dir_refused(void **state)
{
	struct fx *f = *state;
	long long now = time(NULL);
	struct cred_ref *ref;
	struct cred_sub *s;
	char reason[512], p[256], *audit;

	cred_file(f, "wide.json", "s3", "s3://rbkt/", now + 3600, NULL);
	snprintf(p, sizeof(p), "%s/noexp.json", f->creds);
	write_text(p, "{\"source_type\": \"s3\", \"scope\": \"s3://rbkt/noexp/\", "
		   "\"access_key_id\": \"AK\", \"secret_access_key\": \"" SECRET "\"}", 0600);
	cred_file(f, "expired.json", "s3", "s3://rbkt/expired/", now - 10, NULL);
	cred_file(f, "long.json", "s3", "s3://rbkt/long/", now + 13 * 3600, NULL);
	cred_file(f, "unknown.json", "s3", "s3://rbkt/unknown/", now + 3600,
		  ", \"password\": \"" SECRET "\"");
	static const struct {
		const char *uri, *want;
	} cases[] = {
		{ "s3://rbkt/noexp/x", "noexp.json: expires_at: missing" },
		{ "s3://rbkt/expired/x", "expired.json: expires_at: expired at" },
		{ "s3://rbkt/long/x", "long.json: expires_at: valid for" },
		{ "s3://rbkt/unknown/x", "unknown.json: password: unknown field for source type s3" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = subscribe(f, "s3", cases[i].uri, NULL);
		assert_int_equal(settle(s, &ref, reason, sizeof(reason), 3000),
				 CRED_REFUSED);
		assert_null(ref);
		if (!strstr(reason, cases[i].want))
			fail_msg("%s: got \"%s\"", cases[i].uri, reason);
		assert_null(strstr(reason, SECRET));
		cred_sub_free(s);
	}
	/* The wider valid one still serves the rest of the bucket. */
	s = subscribe(f, "s3", "s3://rbkt/other/x", NULL);
	assert_int_equal(settle(s, &ref, reason, sizeof(reason), 3000),
			 CRED_READY);
	cred_put(ref);
	cred_sub_free(s);
	audit = slurp(f->audit_path);
	assert_int_equal(count_of(audit, "\"event\":\"credential_refused\""), 4);
	assert_non_null(strstr(audit, "\"project\":\"vision\""));
	assert_non_null(strstr(audit, "\"uri\":\"s3://rbkt/expired/x\""));
	assert_non_null(strstr(audit, "noexp.json: expires_at: missing"));
	assert_null(strstr(audit, SECRET));
	free(audit);
}

static void test_helper_answers(void **state)
{
	struct fx *f = *state;
	struct cred_ref *ref;
	struct cred_sub *s, *s2;
	char reason[512], *audit;

	s = subscribe(f, "s3", "s3://hbkt/a/x", NULL);
	assert_int_equal(settle(s, &ref, reason, sizeof(reason), 5000),
			 CRED_READY);
	assert_string_equal(ref->c->secret_access_key, SECRET);
	assert_int_equal(helper_runs(f), 1);
	cred_put(ref);
	/* The same request again: the cached answer, no new run. */
	s2 = subscribe(f, "s3", "s3://hbkt/a/x", NULL);
	assert_int_equal(settle(s2, &ref, reason, sizeof(reason), 5000),
			 CRED_READY);
	assert_int_equal(helper_runs(f), 1);
	cred_put(ref);
	cred_sub_free(s2);
	cred_sub_free(s);

	s = subscribe(f, "s3", "s3://hbkt/null/x", NULL);
	assert_int_equal(settle(s, &ref, reason, sizeof(reason), 5000),
			 CRED_NONE);
	cred_sub_free(s);

	static const struct {
		const char *uri, *want;
	} bad[] = {
		{ "s3://hbkt/exit3/x", "exited with status 3" },
		{ "s3://hbkt/garbage/x", "document: not valid JSON" },
		{ "s3://hbkt/scope/x", "answered a credential whose source_type or scope does not cover this uri" },
		{ "s3://hbkt/long/x", "expires_at: valid for" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = subscribe(f, "s3", bad[i].uri, NULL);
		assert_int_equal(settle(s, &ref, reason, sizeof(reason), 5000),
				 CRED_REFUSED);
		if (!strstr(reason, bad[i].want) ||
		    !strstr(reason, "credentials.helper "))
			fail_msg("%s: got \"%s\"", bad[i].uri, reason);
		assert_null(strstr(reason, SECRET));
		cred_sub_free(s);
	}
	audit = slurp(f->audit_path);
	assert_non_null(strstr(audit, "exited with status 3"));
	assert_null(strstr(audit, SECRET));
	free(audit);
}

/* Whether a process of group pgid runs (zombies do not count). */
static bool group_running(pid_t pgid)
{
	char path[300], buf[512];
	struct dirent *de;
	bool found = false;
	DIR *d = opendir("/proc");

	assert_non_null(d);
	while (!found && (de = readdir(d)) != NULL) {
		FILE *fp;
		char *rp, state;
		int pg;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fp = fopen(path, "r");
		if (!fp)
			continue;
		if (fgets(buf, sizeof(buf), fp) && (rp = strrchr(buf, ')')) &&
		    sscanf(rp + 1, " %c %*d %d", &state, &pg) == 2 &&
		    pg == pgid && state != 'Z')
			found = true;
		fclose(fp);
	}
	closedir(d);
	return found;
}

static void test_helper_hang_killed(void **state)
{
	struct fx *f = *state;
	struct cred_ref *ref;
	struct cred_sub *s;
	char reason[512], pidfile[256], *pid_text;
	long long t0 = af_now_ms();
	pid_t pid;

	f->cfg.credentials_helper_timeout_ms = 1000;
	s = subscribe(f, "s3", "s3://hbkt/hang/x", NULL);
	assert_int_equal(settle(s, &ref, reason, sizeof(reason), 5000),
			 CRED_REFUSED);
	assert_true(af_now_ms() - t0 < 4000);
	assert_non_null(strstr(reason, "no answer within 1s (killed)"));
	snprintf(pidfile, sizeof(pidfile), "%s/pid", f->dir);
	pid_text = slurp(pidfile);
	pid = (pid_t)atoi(pid_text);
	free(pid_text);
	assert_true(pid > 0);
	/*
	 * The helper and its sleep are gone: its process group was killed
	 * (the orphaned sleep may linger a moment as a zombie of init, and
	 * on a loaded machine take a moment to act on its SIGKILL: a sleep
	 * not killed would still run 30 s from now).
	 */
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	for (int i = 0; i < 100 && group_running(pid); i++)
		usleep(20 * 1000);
	assert_false(group_running(pid));
	cred_sub_free(s);
}

/* A slow helper delays only the credential that needs its answer. */
static void test_slow_helper_alone(void **state)
{
	struct fx *f = *state;
	long long now = time(NULL), t0;
	struct cred_ref *ref;
	struct cred_sub *slow, *fast, *file;
	char reason[512];

	cred_file(f, "fbkt.json", "s3", "s3://fbkt/", now + 3600, NULL);
	t0 = af_now_ms();
	slow = subscribe(f, "s3", "s3://hbkt/slow/x", NULL);
	usleep(100000);
	fast = subscribe(f, "s3", "s3://hbkt/b/x", NULL);
	file = subscribe(f, "s3", "s3://fbkt/x", NULL);
	assert_int_equal(settle(fast, &ref, reason, sizeof(reason), 1500),
			 CRED_READY);
	cred_put(ref);
	assert_int_equal(settle(file, &ref, reason, sizeof(reason), 1500),
			 CRED_READY);
	cred_put(ref);
	assert_true(af_now_ms() - t0 < 1800);
	assert_int_equal(cred_sub_get(slow, &ref, NULL, 0), CRED_PENDING);
	assert_int_equal(settle(slow, &ref, reason, sizeof(reason), 5000),
			 CRED_READY);
	assert_true(af_now_ms() - t0 >= 2000);
	cred_put(ref);
	cred_sub_free(slow);
	cred_sub_free(fast);
	cred_sub_free(file);
}

/*
 * 3-second tokens: the next one is in hand before the current one
 * expires, so a long fetch never finds itself without (never PENDING).
 */
static void test_renewal(void **state)
{
	struct fx *f = *state;
	struct cred_ref *ref;
	struct cred_sub *s;
	char reason[512], first[64] = "";
	long long t0, first_exp = 0;
	bool changed = false;

	s = subscribe(f, "s3", "s3://hbkt/short/x", NULL);
	assert_int_equal(settle(s, &ref, reason, sizeof(reason), 5000),
			 CRED_READY);
	snprintf(first, sizeof(first), "%s", ref->c->access_key_id);
	first_exp = ref->c->expires_at_s;
	cred_put(ref);
	t0 = af_now_ms();
	while (af_now_ms() - t0 < 7000) {
		enum cred_state st = cred_sub_get(s, &ref, reason,
						  sizeof(reason));

		if (st != CRED_READY)
			fail_msg("state %d at %lld ms", st, af_now_ms() - t0);
		assert_true(ref->c->expires_at_s * 1000 > af_wall_ms());
		if (strcmp(ref->c->access_key_id, first) != 0)
			changed = true;
		cred_put(ref);
		usleep(50000);
	}
	assert_true(changed);
	assert_true(helper_runs(f) >= 3);
	(void)first_exp;
	cred_sub_free(s);
}

/* With no dir or helper, everything goes without a credential. */
static void test_disabled(void **state)
{
	struct pol_config cfg;
	struct cred_provider *p;

	(void)state;
	assert_int_equal(pol_config_init(&cfg), 0);
	assert_int_equal(cred_provider_new(&cfg, NULL, &p), 0);
	assert_false(cred_provider_enabled(p));
	cred_provider_free(p);
	pol_config_release(&cfg);
}

struct reports {
	int errors;
	char last[1024];
	bool leaked;
};

static void on_report(void *arg, const char *level, const char *msg)
{
	struct reports *r = arg;

	if (strcmp(level, "error") == 0)
		r->errors++;
	snprintf(r->last, sizeof(r->last), "%s", msg);
	if (strstr(msg, SECRET))
		r->leaked = true;
}

static void test_check(void **state)
{
	struct fx *f = *state;
	struct reports r = { 0 };
	long long now = time(NULL);
	char p[256];

	cred_file(f, "ok.json", "s3", "s3://cbkt/", now + 3600, NULL);
	assert_int_equal(src_cred_check(&f->cfg, now, on_report, &r), 0);
	assert_int_equal(r.errors, 0);
	cred_file(f, "old.json", "s3", "s3://cbkt/old/", now - 5, NULL);
	snprintf(p, sizeof(p), "%s/junk.json", f->creds);
	write_text(p, SECRET, 0600);
	assert_int_equal(src_cred_check(&f->cfg, now, on_report, &r), AF_ECRED);
	assert_int_equal(r.errors, 2);
	assert_false(r.leaked);
	free(f->cfg.credentials_helper);
	f->cfg.credentials_helper = strdup("/nonexistent/helper");
	memset(&r, 0, sizeof(r));
	assert_int_equal(src_cred_check(&f->cfg, now, on_report, &r), AF_ECRED);
	assert_int_equal(r.errors, 3);
	assert_non_null(strstr(r.last, "/nonexistent/helper: credentials.helper is not an executable file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dir_longest_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helper_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helper_hang_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_helper_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renewal, setup, teardown),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
	};

	return cmocka_run_group_tests_name("sources_cred", tests, NULL, NULL);
}
